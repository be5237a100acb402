"""Transfer a source agent to a target env and compare it with training from scratch.

``run(cfg)`` (``lepton-transfer``) reads top to bottom: configuration, the source (a run folder,
or an experiment/env preset trained first), a space check before anything is written, the
baselines of the target (the best one that is not an oracle sets the default threshold, scored
again on each seed's curve episodes), then for every seed a *scratch* arm (the
agent from random weights) and a *transfer* arm (the same agent, budget, training replicas and
evaluation seeds, started from the source's weights and normalisation statistics), and the
run folder::

    <run_dir>/config.yaml   resolved configuration
    <run_dir>/command.txt   working directory and exact command line
    <run_dir>/source/       the source run when it was trained here (model.zip, config.yaml,
                            vecnormalize.pkl, curve.csv, progress.csv, tb/, source.json): pass
                            it as ``source=`` next time; in a multirun,
                            ``<sweep_dir>/sources/<key>/`` instead
    <run_dir>/transfer.json zero-shot scores, baselines, threshold, metrics per seed and over
                            seeds (mean and bootstrap interval), verdicts, commands
    <run_dir>/seeds/<seed>.json  both arms of a finished seed (curves, zero-shot score), written
                            as the seed finishes
    <run_dir>/arms/<seed>/<arm>/ an unfinished arm: ``arm.json`` (its budget and source model),
                            ``checkpoints/`` (see :mod:`agents.checkpoints`), and for the
                            transfer arm ``zero_shot.json``; removed when the seed finishes
    <run_dir>/logs/<seed>/<arm>/ SB3's training log of an arm (``progress.csv``; TensorBoard in
                            ``tb/`` with ``tensorboard=true``; SB3's tables on stdout with
                            ``verbose=1``), kept like ``lepton-train``'s across a resume
    <run_dir>/curves.csv    arm, seed, timesteps, mean and std of the evaluation return
    <run_dir>/curves.png    transfer against scratch: mean over seeds with interval bands

A source trained here is keyed by a SHA-256 of its training configuration (:func:`source_key`:
every key but the run-only ones of :data:`conf.resolvers.RUN_ONLY_KEYS`, ``device`` kept) and
trained under an exclusive lock on the hidden file ``.<folder name>.lock`` next to its folder
(see :func:`source_lock`). In a multirun (``lepton-transfer -m
mode=zero_shot,finetune,freeze_features``) every job shares ``<sweep_dir>/sources/<first 16 hex
digits of the key>/``: the first job to take the lock trains the source, the others wait for the
lock and load it, with any launcher (the joblib launcher's processes included; the lock needs a
local file system). A finished source there is reused by any later job of the same key, with or
without ``resume``; remove the folder to train it again. A single run trains into
``<run_dir>/source/`` and reuses it only with ``resume=true``. Reuse checks ``source.json``
(written last): its key must be the one of this configuration and its ``model.zip`` digest the
saved one, otherwise the run stops with an error naming the folder, so a source of another
configuration is never taken for this one.

``resume=true`` continues an interrupted run in its ``run_dir`` (the same configuration, see
:func:`agents.runs.check_resume`): a source trained there that finished is kept, and so is every
seed whose two arms finished with the same ``total_timesteps`` and source model. With
``checkpoint_freq > 0`` an arm writes a checkpoint every ``checkpoint_freq`` steps and one when
it finishes (:class:`agents.checkpoints.ResumableCheckpoint`); a resumed arm continues from its
latest one (:func:`train_arm`), a finished arm of an unfinished seed is kept as it is, and an arm
without a checkpoint (``checkpoint_freq=0``, or killed before its first one) runs again from its
start. A source being trained checkpoints the same way (``<source>/checkpoints``, removed when
it finishes): an unfinished source of the same key continues from its latest checkpoint wherever
a finished one would be reused (with ``resume=true``, or in a multirun's shared folder). Without
``resume`` a rerun in the folder starts afresh and drops the earlier attempt's seeds and arms.

The learning-curve points an arm took up to its checkpoint are kept as they were recorded: the
same records as an uninterrupted run. The checkpoint restores the model (weights and optimiser
state), the step count, the normalisation statistics and an off-policy agent's replay buffer
exactly; it does not hold the replicas' episodes in progress, the random generators' states or
SB3's episode logs. A resumed arm restarts its training replicas from fresh episodes on a new
seed (:func:`agents.checkpoints.continuation_seed`, as ``lepton-train`` does), so its points
after the checkpoint are those of a reproducible run of the same budget, not a bit-identical
replay of the uninterrupted one.

Budget: SB3 trains in whole rollouts (``n_steps * n_envs`` steps on-policy, ``train_freq *
n_envs`` off-policy), so an arm trains ``total_timesteps`` rounded up to its next rollout and
its last curve point is taken there. ``transfer.json`` keeps the asked ``budget``
(``total_timesteps``) and reports ``trained_timesteps``, the steps every trained arm actually ran
(the last point of its curve, what the metrics span). The arms are not cut at
``total_timesteps``: both arms of a seed have the same agent rollout, so they train the same
number of steps and their curves end at the same point (the metrics compare like with like),
whereas stopping inside a rollout would leave its steps collected but never learned from.

Modes (``mode``): ``zero_shot`` keeps the source policy unchanged (its curve is flat at its
step-0 score, so the metrics ask whether deploying it beats training for the budget);
``finetune`` trains every weight (``finetune_lr_scale`` scales the learning rate);
``freeze_features`` keeps the feature extractor and the first ``freeze_layers`` hidden layers
of every policy/value trunk fixed and trains the rest (:func:`freeze_features`).

Every score on the target (the baselines and threshold, the curve points, the zero-shot
score) runs on ``eval.scenarios`` when it is set, as ``lepton-train`` does
(:func:`agents.envs.make_eval_env`); a source trained here keeps its own evaluation settings.

One source agent serves every seed, so the intervals describe the variation of fine-tuning and
evaluation, not of pretraining. The metrics are defined in :mod:`agents.transfer_metrics`.

A source fits a target when the observation and action spaces have the same kind and shape
(:func:`check_spaces`); otherwise a :class:`IncompatibleSourceError` names the mismatch and
the encoding that makes the two fit (traffic: ``env.kwargs.obs_lanes``/``obs_phases`` or
``parameter_sharing``; recommendation: ``action_mode=linear``; operations: the same stages and
action mode).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import importlib.util
import json
import logging
import shlex
import shutil
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from torch import nn

from agents.algorithms import MODEL_FILE, as_sb3_agent, build_model
from agents.callbacks import LearningCurveCallback
from agents.checkpoints import (
    CHECKPOINT_DIR,
    CheckpointError,
    ResumableCheckpoint,
    continuation_seed,
    latest_checkpoint,
    reading,
    restore_model,
)
from agents.config import as_config, env_kwargs, make_seeds, plain
from agents.envs import (
    VECNORMALIZE_FILE,
    evaluation_env,
    make_eval_env,
    make_training_env,
    make_vec_env,
    resolve_env_id,
)
from agents.evaluation import run_episodes
from agents.jobs import file_lock, write_json_atomic
from agents.logs import training_logger
from agents.policies import baseline_names, make_baseline
from agents.report import write_json
from agents.runs import (
    check_resume,
    command_line,
    job_folder,
    run_folder,
    save_command,
    save_config,
)
from agents.stats import mean as mean_of
from agents.stats import stratified_bootstrap
from agents.transfer_metrics import Curve, compare, interval
from agents.warmstart import (
    check_normalization,
    check_weights_fit,
    load_source_stats,
    load_source_weights,
    source_state,
    start_from_stats,
)
from conf.resolvers import RUN_ONLY_KEYS, covered
from conf.schema import (
    EnvConfig,
    EvalConfig,
    SB3AgentConfig,
    TrainConfig,
    TransferConfig,
    TransferMode,
)

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
"""The configuration folder (presets named by ``source``)."""

ARMS = ("transfer", "scratch")


class IncompatibleSourceError(ValueError):
    """The source agent's observation or action space does not fit the target env."""


# --- the source -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Source:
    """Where the source agent comes from and what it acts on.

    Attributes:
        description: ``source`` as given, for messages and ``transfer.json``.
        observation_space: the space the source policy reads.
        action_space: the space it acts in.
        folder: the run folder holding ``model.zip`` (``None`` until a source is trained).
        algo: the source's ``agent.algo`` (``None`` when its folder has no ``config.yaml``).
        env: the source env as plain data (``id``, ``name``, ``kwargs``), when known.
        train: the training config of a source trained here (``None`` for a run folder).
    """

    description: str
    observation_space: spaces.Space[Any]
    action_space: spaces.Space[Any]
    folder: Path | None = None
    algo: str | None = None
    env: dict[str, Any] | None = None
    train: TrainConfig | None = None


def plan_source(spec: str, overrides: Sequence[str], target: TransferConfig) -> Source:
    """Resolve ``source``: a run folder (or its ``model.zip``), an experiment or env preset.

    A preset is composed with ``lepton-train``'s root config (``experiment=<spec>`` or
    ``env=<spec>``, then ``overrides``); an env preset keeps the target's agent. Nothing is
    trained here: the spaces of a preset's env are read from a one-replica env.

    Raises:
        ValueError: naming ``source`` when ``spec`` is neither a run folder nor a preset.
    """
    path = Path(spec)
    folder = path.parent if path.suffix == ".zip" else path
    if (folder / "model.zip").is_file():
        data, _, _ = load_from_zip_file(folder / "model.zip", load_data=True, device="cpu")
        assert data is not None
        saved = folder / "config.yaml"
        algo: str | None = None
        env: dict[str, Any] | None = None
        if saved.is_file():
            run_cfg: Any = OmegaConf.load(saved)
            algo = OmegaConf.select(run_cfg, "agent.algo")
            env_node = OmegaConf.select(run_cfg, "env")
            if env_node is not None:
                env = dict(OmegaConf.to_container(env_node, resolve=True))  # type: ignore[arg-type]
        return Source(
            spec, data["observation_space"], data["action_space"], folder, algo, env, None
        )
    if (CONF_DIR / "experiment" / f"{spec}.yaml").is_file():
        train = compose_train_config([f"experiment={spec}", *overrides])
    elif (CONF_DIR / "env" / f"{spec}.yaml").is_file():
        train = compose_train_config([f"env={spec}", *overrides])
        train = dataclasses.replace(train, agent=target.agent)
    elif (folder / "source" / MODEL_FILE).is_file():
        raise ValueError(
            f"source: {spec!r} is a lepton-transfer run; its source agent is "
            f"source={folder / 'source'}"
        )
    else:
        raise ValueError(
            f"source: {spec!r} is neither a run folder holding model.zip nor a preset "
            f"(conf/experiment/{spec}.yaml or conf/env/{spec}.yaml); pass source=<run folder>, "
            "source=<experiment preset> or source=<env preset>, or pick a pair with "
            "experiment=transfer/<pair> (its source preset is transfer/<pair>__source)"
        )
    venv = make_vec_env(train.env, 1)
    obs_space, act_space = venv.observation_space, venv.action_space
    venv.close()
    agent = as_sb3_agent(train.agent, "training a source agent")
    return Source(spec, obs_space, act_space, None, agent.algo, plain(train.env), train)


def compose_train_config(overrides: Sequence[str]) -> TrainConfig:
    """Compose ``conf/config.yaml`` (``lepton-train``'s root) with ``overrides``."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        cfg = compose("config", overrides=list(overrides))
    else:
        with initialize_config_module(config_module="conf", version_base="1.3"):
            cfg = compose("config", overrides=list(overrides))
    return as_config(cfg, TrainConfig)


# --- space check ----------------------------------------------------------------------------


def describe_space(space: spaces.Space[Any]) -> str:
    """A short name: ``Box(41,)``, ``Discrete(4)``, ``MultiDiscrete([4 4 4 4])``."""
    if isinstance(space, spaces.Discrete):
        return f"Discrete({int(space.n)})"
    if isinstance(space, spaces.MultiDiscrete):
        return f"MultiDiscrete({space.nvec.tolist()})"
    if isinstance(space, spaces.Dict):
        return "Dict(" + ", ".join(f"{k}: {describe_space(v)}" for k, v in space.items()) + ")"
    return f"{type(space).__name__}{space.shape}"


def spaces_fit(a: spaces.Space[Any], b: spaces.Space[Any]) -> bool:
    """Whether a policy of space ``a`` can read (or act in) space ``b``: same kind and shape."""
    if type(a) is not type(b):
        return False
    if isinstance(a, spaces.Discrete):
        return isinstance(b, spaces.Discrete) and int(a.n) == int(b.n)
    if isinstance(a, spaces.MultiDiscrete):
        return isinstance(b, spaces.MultiDiscrete) and np.array_equal(a.nvec, b.nvec)
    if isinstance(a, spaces.Dict) and isinstance(b, spaces.Dict):
        return a.keys() == b.keys() and all(spaces_fit(a[k], b[k]) for k in a.spaces)
    return a.shape == b.shape


def check_spaces(
    source_obs: spaces.Space[Any],
    source_act: spaces.Space[Any],
    target_obs: spaces.Space[Any],
    target_act: spaces.Space[Any],
    *,
    target_env: Mapping[str, Any],
    source_env: Mapping[str, Any] | None = None,
    field: str = "source",
) -> None:
    """Raise :class:`IncompatibleSourceError` unless the source's spaces fit the target's.

    The message names the space that differs, both shapes and the encoding that makes source
    and target share one (chosen from the env family of the target).

    Args:
        source_obs: observation space of the source policy.
        source_act: action space of the source policy.
        target_obs: observation space of the target (the VecEnv the arms train on).
        target_act: action space of the target.
        target_env: the target env config as plain data (``id``, ``kwargs``).
        source_env: the source env config as plain data, when known.
        field: the config field that named the source, for the message.
    """
    problems = []
    if not spaces_fit(source_obs, target_obs):
        problems.append(("observation", source_obs, target_obs))
    if not spaces_fit(source_act, target_act):
        problems.append(("action", source_act, target_act))
    if not problems:
        return
    src_id = (source_env or {}).get("id", "the source env")
    tgt_id = target_env.get("id", "the target env")
    what = "; ".join(
        f"{kind} space {describe_space(s)} (source, {src_id}) vs {describe_space(t)} "
        f"(target, {tgt_id})"
        for kind, s, t in problems
    )
    kinds = {kind for kind, _, _ in problems}
    hint = _encoding_hint(kinds, source_act, target_act, target_env, source_env)
    raise IncompatibleSourceError(
        f"{field}: the source agent cannot act on the target: {what}. {hint}"
    )


def _encoding_hint(
    kinds: set[str],
    source_act: spaces.Space[Any],
    target_act: spaces.Space[Any],
    target_env: Mapping[str, Any],
    source_env: Mapping[str, Any] | None,
) -> str:
    """The encoding that gives source and target the same spaces, by env family."""
    env_id = str(target_env.get("id", ""))
    src_kwargs = dict((source_env or {}).get("kwargs") or {})
    if "Traffic" in env_id:
        hints = []
        multi = isinstance(source_act, spaces.MultiDiscrete) or isinstance(
            target_act, spaces.MultiDiscrete
        )
        if multi and not target_env.get("kwargs", {}).get("parameter_sharing"):
            hints.append(
                "networks with different numbers of signals share a policy only per signal: "
                "set env.kwargs.parameter_sharing=true for the source and the target"
            )
        if "observation" in kinds:
            used = ", ".join(f"{k}={src_kwargs.get(k)}" for k in ("obs_lanes", "obs_phases"))
            hints.append(
                "per-signal observations need one padding: set env.kwargs.obs_lanes and "
                "env.kwargs.obs_phases to the same values for the source and the target (at "
                f"least the larger lane and phase counts; the source used {used}) and train "
                "the source with them"
            )
        if (
            "action" in kinds
            and isinstance(source_act, spaces.Discrete)
            and isinstance(target_act, spaces.Discrete)
        ):
            hints.append(
                f"the signals have different numbers of green phases ({int(source_act.n)} vs "
                f"{int(target_act.n)}): a phase-indexed policy cannot act on the target; pick a "
                f"source whose signals have {int(target_act.n)} green phases"
            )
        return "; ".join(hints) + "."
    if "Rec" in env_id:
        return (
            "Use the per-candidate encoding: env.kwargs.action_mode=linear for the source and "
            "the target (one scoring rule for every candidate, so the catalogue can change) "
            "and the same num_topics and num_candidates in both scenarios (e.g. "
            "env.kwargs.scenario={preset: slate, num_topics: 8} against MovieLens' 8)."
        )
    if any(name in env_id for name in ("Inventory", "Autoscale", "Maintenance")):
        chosen = {k: src_kwargs[k] for k in ("observation", "action_mode") if k in src_kwargs}
        return (
            "Per-stage encodings must match: give the source and the target the same number "
            "of stages (services, machines) and the same env.kwargs.observation and "
            f"env.kwargs.action_mode (the source used {chosen or 'its defaults'})."
        )
    return (
        "Choose a source trained on an env with the same observation and action spaces (the "
        "same env.kwargs.observation and action_mode), or train one with the target's encoding."
    )


def check_network(
    source: Source, agent: SB3AgentConfig, probe: VecEnv, config: TransferConfig
) -> None:
    """Raise unless the transfer arm can start from the source: its network and normalisation.

    Checked on a one-replica ``probe`` of the target before anything is written or trained:
    the weights saved in a source folder (or those of the network a source preset would train)
    must fit the network of ``agent``, and observations the source saw normalised must be
    normalised for the transfer arm too.

    Raises:
        ValueError: naming ``agent.policy_kwargs.net_arch`` or ``agent.normalize.obs``.
    """
    env_id = resolve_env_id(config.env)
    kwargs = env_kwargs(config.env)

    def build(algo: SB3AgentConfig) -> BaseAlgorithm:
        # the probe has one replica: SB3's warnings about its rollout size do not apply
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return build_model(algo, probe, env_id=env_id, env_kwargs=kwargs, seed=config.seed)

    target = build(agent)
    if source.folder is not None:
        check_normalization(agent, load_source_stats(source.folder), source.folder)
        check_weights_fit(source_state(source.folder), target, str(source.folder / MODEL_FILE))
        return
    assert source.train is not None
    trained = as_sb3_agent(source.train.agent, "training a source agent")
    model = build(trained)
    check_weights_fit(
        model.policy.state_dict(), target, f"the one source={source.description} trains"
    )
    source_obs = trained.normalize is not None and trained.normalize.obs
    if source_obs and not (agent.normalize is not None and agent.normalize.obs):
        raise ValueError(
            f"agent.normalize.obs: the source ({source.description}) is trained on normalised "
            "observations; set agent.normalize.obs=true (training starts from its statistics)"
        )


# --- weights ------------------------------------------------------------------------------


def freeze_features(policy: nn.Module, layers: int) -> dict[str, int]:
    """Freeze the feature extractors and the first ``layers`` hidden layers of every trunk.

    Trunks are the actor and critic MLPs of an actor-critic policy (``mlp_extractor.policy_net``
    and ``value_net``); for other policies every MLP (``nn.Sequential`` of linear layers) that
    is not a target network, keeping at least its last linear layer trainable. The action and
    value heads always train.

    Returns:
        ``{"frozen": parameters frozen, "trainable": parameters still trained}``.

    Raises:
        ValueError: naming ``freeze_layers`` when it is below 1 or nothing could be frozen.
    """
    if layers < 1:
        raise ValueError(f"freeze_layers: must be >= 1, got {layers}")
    frozen: list[nn.Parameter] = []
    for name, module in policy.named_modules():
        if name.endswith("features_extractor") and "target" not in name:
            frozen += list(module.parameters())
    for trunk, keep in _trunks(policy):
        linears = [m for m in trunk if isinstance(m, nn.Linear)]
        for layer in linears[: max(0, min(layers, len(linears) - keep))]:
            frozen += list(layer.parameters())
    if not frozen:
        raise ValueError(
            f"freeze_layers: nothing to freeze in {type(policy).__name__} (no feature extractor "
            "weights and no hidden layers); use mode=finetune"
        )
    for p in frozen:
        p.requires_grad_(False)
    counts = {"frozen": 0, "trainable": 0}
    for p in policy.parameters():
        counts["trainable" if p.requires_grad else "frozen"] += p.numel()
    return counts


def _trunks(policy: nn.Module) -> list[tuple[nn.Sequential, int]]:
    """The MLPs whose first layers count as features, and how many layers each must keep."""
    extractor = getattr(policy, "mlp_extractor", None)
    if extractor is not None:
        return [
            (net, 0)
            for net in (
                getattr(extractor, "policy_net", None),
                getattr(extractor, "value_net", None),
            )
            if isinstance(net, nn.Sequential)
        ]
    found: list[tuple[nn.Sequential, int]] = []
    for name, module in policy.named_modules():
        if "target" in name or not isinstance(module, nn.Sequential):
            continue
        if any(isinstance(m, nn.Linear) for m in module.children()):
            found.append((module, 1))
    return found


# --- one arm --------------------------------------------------------------------------------


@dataclasses.dataclass
class Arm:
    """A trained (or evaluated) model and its learning curve on the target."""

    model: BaseAlgorithm
    venv: VecEnv
    points: list[dict[str, float]]


def trained_timesteps(points: Sequence[Mapping[str, float]]) -> int:
    """The steps an arm trained: its last curve point, taken when training ended.

    SB3 trains whole rollouts, so this is ``total_timesteps`` rounded up to the arm's next
    rollout (``n_steps * n_envs`` on-policy, ``train_freq * n_envs`` off-policy).
    """
    return int(points[-1]["timesteps"])


def train_arm(
    agent: SB3AgentConfig,
    env: EnvConfig,
    *,
    seed: int,
    n_envs: int,
    total_timesteps: int,
    ev: EvalConfig,
    device: str = "cpu",
    stats: VecNormalize | None = None,
    prepare: Callable[[BaseAlgorithm, VecEnv], None] | None = None,
    restore: Callable[[BaseAlgorithm, VecEnv], None] | None = None,
    learn: bool = True,
    progress_bar: bool = False,
    folder: Path | None = None,
    checkpoint_freq: int = 0,
    logs: Path | None = None,
    tensorboard: bool = False,
    verbose: int = 0,
) -> Arm:
    """Build ``agent`` on ``env`` with seed ``seed`` and train it, recording the learning curve.

    Every arm of a seed gets the same training replicas (``seed + i``), the same evaluation
    seeds (``seed + eval.seed_offset + k``) and the same schedule of curve points.

    SB3 trains whole rollouts: the arm trains ``total_timesteps`` rounded up to its next
    rollout and takes its last point there (:func:`trained_timesteps`). It is not cut at
    ``total_timesteps``: the arms of a seed share the agent's rollout, so they train the same
    number of steps and their curves end at the same step.

    With ``folder`` and ``checkpoint_freq > 0`` the arm writes a checkpoint to
    ``folder/checkpoints`` every ``checkpoint_freq`` steps and one when it finishes
    (:class:`agents.checkpoints.ResumableCheckpoint`: model, normalisation statistics, replay
    buffer, the curve so far). When ``folder`` holds a checkpoint already, the arm continues
    from the latest one instead of starting afresh: the model, its step count, normalisation
    statistics and replay buffer are restored exactly and the curve points taken up to the
    checkpoint are kept as recorded; the training replicas restart from fresh episodes seeded
    by :func:`agents.checkpoints.continuation_seed`, so the steps after the checkpoint do not
    replay the interrupted attempt step for step. A checkpoint written when the arm finished
    gives its model and whole curve without training.

    Args:
        agent: the algorithm and its hyperparameters.
        env: the env to train on.
        seed: seed of the arm.
        n_envs: training replicas.
        total_timesteps: training steps (all replicas together).
        ev: evaluation schedule (``eval_freq``, ``curve_episodes``, ...).
        device: torch device.
        stats: normalisation statistics to start from (the source's).
        prepare: called on the fresh model and its training env before training (loads the
            source's weights, freezes layers, evaluates zero-shot).
        restore: called instead of ``prepare`` on a model restored from a checkpoint (whose
            weights are the checkpoint's): what a saved model does not hold, e.g. frozen layers.
        learn: train; otherwise only the step-0 point is taken (a zero-shot arm).
        progress_bar: show SB3's progress bar.
        folder: the arm's folder (its checkpoints); ``None``: none are written or read.
        checkpoint_freq: environment steps between checkpoints (0: none).
        logs: the folder of its training logs (:func:`agents.logs.training_logger`:
            ``progress.csv``, TensorBoard in ``tb/`` with ``tensorboard``); a resumed arm
            keeps the log up to its checkpoint. ``None``: none are written.
        tensorboard: write TensorBoard logs into ``logs``.
        verbose: print SB3's training tables.
    """
    seeds = make_seeds(seed, n_envs, ev, episodes=ev.curve_episodes)
    with _arm_checkpoint(folder):
        checkpoint = latest_checkpoint(folder) if learn and folder is not None else None
    train_seed = seed if checkpoint is None else continuation_seed(seed, checkpoint.num_timesteps)
    set_random_seed(train_seed)
    venv = make_training_env(env, n_envs, train_seed, agent.normalize, agent.gamma)
    if checkpoint is None:
        start_from_stats(venv, stats)
        model = build_model(
            agent,
            venv,
            env_id=resolve_env_id(env),
            env_kwargs=env_kwargs(env),
            seed=seed,
            device=device,
        )
        if prepare is not None:
            prepare(model, venv)
    else:
        with _arm_checkpoint(folder):
            model = restore_model(checkpoint, agent.algo, venv, device, train_seed)
            if restore is not None:
                restore(model, venv)
        if checkpoint.num_timesteps >= total_timesteps:  # written when the arm finished
            log.info("%s: the arm finished earlier (%d steps); kept", folder, model.num_timesteps)
            return Arm(model, venv, [dict(p) for p in checkpoint.curve])
        log.info("%s: resuming the arm at %d steps", folder, checkpoint.num_timesteps)
    curve_env = evaluation_env(env, ev, ev.curve_episodes, venv, seeds.eval_start)
    curve = LearningCurveCallback(
        curve_env,
        seeds.eval_start,
        ev.curve_episodes,
        ev.eval_freq,
        metrics=env.metrics,
        deterministic=ev.deterministic,
        points=checkpoint.curve if checkpoint is not None else (),
    )
    if learn:
        model.set_logger(
            training_logger(
                logs,
                tensorboard=tensorboard,
                verbose=verbose,
                resumed_at=checkpoint.num_timesteps if checkpoint is not None else None,
            )
        )
        callbacks: list[BaseCallback] = [curve]
        saver = None
        if folder is not None and checkpoint_freq > 0:
            saver = ResumableCheckpoint(folder, checkpoint_freq, curve_points=lambda: curve.points)
            callbacks.append(saver)
        if checkpoint is None:
            # the step-0 point scores the policy on the statistics it starts from (the
            # source's): learn's first reset updates them
            curve.evaluate_before_training(model)
        try:
            model.learn(
                total_timesteps=max(total_timesteps - model.num_timesteps, 0),
                callback=callbacks,
                progress_bar=progress_bar,
                reset_num_timesteps=checkpoint is None,
            )
        finally:
            model.logger.close()  # its files and TensorBoard's writer thread
        if saver is not None:
            saver.save()  # the finished arm: a resumed run keeps it as it is
        points = curve.points
    else:
        episodes = run_episodes(
            model,
            curve_env,
            seeds.eval_start,
            ev.curve_episodes,
            metrics=env.metrics,
            deterministic=ev.deterministic,
        ).summary()
        points = [
            {
                "timesteps": 0,
                "mean": episodes["return"]["mean"],
                "std": episodes["return"]["std"],
                **{m: episodes[m]["mean"] for m in env.metrics},
            }
        ]
    curve_env.close()
    return Arm(model, venv, points)


@contextlib.contextmanager
def _arm_checkpoint(folder: Path | None) -> Iterator[None]:
    """Add to a :class:`~agents.checkpoints.CheckpointError` how to lose only this arm.

    The arm's own files (its checkpoints, the transfer arm's ``zero_shot.json``) are read
    inside it.
    """
    try:
        yield
    except CheckpointError as exc:
        raise CheckpointError(
            f"{exc}; or remove {folder} to train only this arm again from its start (with "
            "resume=true the run keeps its other seeds and arms)"
        ) from exc


def evaluate_model(
    model: BaseAlgorithm, venv: VecEnv, env: EnvConfig, seed: int, n_envs: int, ev: EvalConfig
) -> np.ndarray:
    """Returns of ``eval.episodes`` evaluation episodes of seed ``seed`` (normalised like ``venv``)."""
    seeds = make_seeds(seed, n_envs, ev)
    eval_env = evaluation_env(env, ev, ev.episodes, venv, seeds.eval_start)
    episodes = run_episodes(
        model, eval_env, seeds.eval_start, seeds.episodes, deterministic=ev.deterministic
    )
    eval_env.close()
    return episodes.returns


# --- the run --------------------------------------------------------------------------------


def run(cfg: DictConfig) -> dict[str, Any]:
    """Transfer the source to the target, train the scratch control, write the run folder.

    Args:
        cfg: a configuration composed from ``conf/transfer.yaml``.

    Returns:
        The content of ``transfer.json``.

    Raises:
        IncompatibleSourceError: before anything is written or trained, when the source's
            spaces do not fit the target.
        ValueError: naming the key of any other setting that cannot work.
    """
    # --- configuration ----------------------------------------------------------------------
    config = as_config(cfg, TransferConfig)
    agent = as_sb3_agent(config.agent, "transfer")
    mode = config.mode
    _check_settings(config)
    torch.set_num_threads(config.torch_threads)
    env_id = resolve_env_id(config.env)
    progress = config.progress_bar and _progress_bar_available()

    # --- the source and the space check, before anything is written ----------------------
    source = plan_source(config.source, config.source_overrides, config)
    probe = make_vec_env(config.env, 1)
    check_spaces(
        source.observation_space,
        source.action_space,
        probe.observation_space,
        probe.action_space,
        target_env=plain(config.env),
        source_env=source.env,
    )
    if source.algo is not None and source.algo != agent.algo:
        probe.close()
        raise ValueError(
            f"agent: the source was trained with agent.algo={source.algo!r} but the transfer "
            f"agent is {agent.algo!r}; pass agent={source.algo} (or the source's agent preset)"
        )
    try:
        check_network(source, agent, probe, config)
    finally:
        probe.close()

    if config.resume:  # only the run's own configuration continues its seeds and arms
        check_resume(job_folder(cfg), cfg, required=False)
    folder = run_folder(cfg)
    save_config(folder, cfg)
    save_command(folder)
    source_folder = source.folder
    source_points: list[dict[str, float]] = []
    trained: TrainedSource | None = None
    if source.train is not None:
        home, reuse = source_home(folder, source_key(source_identity(source.train)), config.resume)
        trained = cached_source(
            source.train,
            home,
            reuse=reuse,
            progress=progress,
            checkpoint_freq=config.checkpoint_freq,
            tensorboard=config.tensorboard,
            verbose=config.verbose,
        )
        source_folder, source_points = trained.folder, trained.points
    assert source_folder is not None
    stats = load_source_stats(source_folder)
    if source.train is not None:  # a source folder was checked before anything was written
        check_normalization(agent, stats, source_folder)
    fingerprint = _fingerprint(source_folder)
    done = _finished_seeds(folder, config, fingerprint)

    # --- the target's baselines: the default threshold ------------------------------------
    # The best baseline is picked on the evaluation episodes; its score is then measured on
    # each seed's curve episodes, the very episodes that seed's curve points are scored on, so
    # time to threshold compares like with like.
    oracles: set[str] = set()
    baselines = _baseline_scores(config, oracles=oracles)
    threshold = config.threshold
    threshold_from = "threshold"
    per_seed_threshold: dict[int, float] | None = None
    best = best_baseline(baselines, oracles)
    if threshold is None and best is not None:
        per_seed_threshold = {
            seed: _baseline_scores(config, [best], seed=seed, episodes=config.eval.curve_episodes)[
                best
            ]
            for seed in config.seeds
        }
        threshold = float(np.mean(list(per_seed_threshold.values())))
        threshold_from = f"best baseline ({best}) on each seed's curve episodes"

    # --- the arms -------------------------------------------------------------------------
    transfer_agent = dataclasses.replace(
        agent, learning_rate=agent.learning_rate * config.finetune_lr_scale
    )
    curves: dict[str, dict[int, list[dict[str, float]]]] = {arm: {} for arm in ARMS}
    zero_shot: dict[int, float] = {}
    params: dict[str, int] = {}
    frozen = mode is TransferMode.freeze_features
    for seed in config.seeds:
        if seed in done:  # resume: both arms of this seed finished in an earlier attempt
            record = done[seed]
            curves["scratch"][seed] = record["scratch"]
            curves["transfer"][seed] = record["transfer"]
            zero_shot[seed] = record["zero_shot"]
            params.update(record["parameters"] or {})
            shutil.rmtree(folder / ARMS_DIR / str(seed), ignore_errors=True)
            log.info("seed %d: both arms finished earlier (resume); kept", seed)
            continue
        # both arms of a seed: the same env, replicas, budget and evaluation schedule
        arm = functools.partial(
            train_arm,
            env=config.env,
            seed=seed,
            n_envs=config.n_envs,
            total_timesteps=config.total_timesteps,
            ev=config.eval,
            device=config.device,
            progress_bar=progress,
            checkpoint_freq=config.checkpoint_freq,
            tensorboard=config.tensorboard,
            verbose=config.verbose,
        )
        logs = folder / LOGS_DIR / str(seed)
        log.info("seed %d: scratch arm (%d steps on %s)", seed, config.total_timesteps, env_id)
        scratch = arm(
            agent,
            folder=_arm_folder(folder, seed, "scratch", config, None),
            logs=logs / "scratch",
        )
        scratch.venv.close()
        curves["scratch"][seed] = scratch.points
        if trained_timesteps(scratch.points) != config.total_timesteps:
            log.info(
                "seed %d: SB3 trains whole rollouts: the arms train %d steps for "
                "total_timesteps=%d (trained_timesteps in transfer.json)",
                seed,
                trained_timesteps(scratch.points),
                config.total_timesteps,
            )
        arm_folder = _arm_folder(folder, seed, "transfer", config, fingerprint)

        def prepare(
            model: BaseAlgorithm, venv: VecEnv, seed: int = seed, arm_folder: Path = arm_folder
        ) -> None:
            load_source_weights(model, source_folder, config.device)
            if frozen:
                params.update(freeze_features(model.policy, config.freeze_layers))
            returns = evaluate_model(model, venv, config.env, seed, config.n_envs, config.eval)
            zero_shot[seed] = float(returns.mean())
            write_json_atomic(arm_folder / ZERO_SHOT_FILE, {"zero_shot": zero_shot[seed]})

        def restore(
            model: BaseAlgorithm, venv: VecEnv, seed: int = seed, arm_folder: Path = arm_folder
        ) -> None:
            # a checkpoint holds the weights, not which of them are frozen, nor the score the
            # source had before training started
            if frozen:
                params.update(freeze_features(model.policy, config.freeze_layers))
            path = arm_folder / ZERO_SHOT_FILE
            with reading(path):
                zero_shot[seed] = float(json.loads(path.read_text())["zero_shot"])

        log.info("seed %d: transfer arm (%s)", seed, mode.value)
        transfer = arm(
            transfer_agent,
            stats=stats,
            prepare=prepare,
            restore=restore,
            learn=mode is not TransferMode.zero_shot,
            folder=arm_folder,
            logs=logs / "transfer",
        )
        transfer.venv.close()
        points = transfer.points
        if mode is TransferMode.zero_shot:  # the policy never changes: flat at its score
            points = [{**points[0], "timesteps": p["timesteps"]} for p in scratch.points]
        curves["transfer"][seed] = points
        _write_seed(
            folder,
            seed,
            {
                "seed": seed,
                "total_timesteps": config.total_timesteps,
                "trained_timesteps": {
                    "scratch": trained_timesteps(scratch.points),
                    "transfer": (
                        0 if mode is TransferMode.zero_shot else trained_timesteps(points)
                    ),
                },
                "source": fingerprint,
                "scratch": curves["scratch"][seed],
                "transfer": points,
                "zero_shot": zero_shot[seed],
                "parameters": dict(params) or None,
            },
        )
        shutil.rmtree(folder / ARMS_DIR / str(seed), ignore_errors=True)  # kept in the record
        log.info(
            "seed %d: zero-shot %.3f, final transfer %.3f, final scratch %.3f",
            seed,
            zero_shot[seed],
            points[-1]["mean"],
            scratch.points[-1]["mean"],
        )

    if (folder / ARMS_DIR).is_dir() and not any((folder / ARMS_DIR).iterdir()):
        (folder / ARMS_DIR).rmdir()  # every seed finished: its record holds both arms

    # --- metrics and the run folder -------------------------------------------------------
    write_curves(folder / "curves.csv", curves)  # first: kept even if a curve is unusable
    metrics = compare(
        {s: Curve.from_points(p) for s, p in curves["transfer"].items()},
        {s: Curve.from_points(p) for s, p in curves["scratch"].items()},
        threshold=threshold if per_seed_threshold is None else per_seed_threshold,
        asymptote_points=config.asymptote_points,
        confidence=config.confidence,
        reps=config.bootstrap_reps,
        seed=config.seed,
    )
    result = {
        "source": {
            "spec": source.description,
            "folder": str(source_folder),
            "trained_here": source.train is not None,
            "env": source.env,
            "algo": source.algo,
            "final_return": source_points[-1]["mean"] if source_points else None,
            "key": trained.key if trained is not None else None,
            "reused": trained.reused if trained is not None else None,
        },
        "target": {"env": plain(config.env), "id": env_id},
        "mode": mode.value,
        "agent": agent.name,
        "budget": config.total_timesteps,
        "trained_timesteps": max(trained_timesteps(p) for p in curves["scratch"].values()),
        "seeds": list(config.seeds),
        "eval": plain(config.eval),
        "finetune_lr_scale": config.finetune_lr_scale,
        "parameters": params or None,
        "zero_shot": {
            "per_seed": {str(s): v for s, v in zero_shot.items()},
            **interval(
                list(zero_shot.values()),
                confidence=config.confidence,
                reps=config.bootstrap_reps,
                seed=config.seed,
            ),
        },
        "baselines": baselines,
        "oracles": sorted(oracles),
        "threshold": {
            "value": threshold,
            "per_seed": per_seed_threshold,
            "from": threshold_from if threshold is not None else None,
        },
        "metrics": metrics,
        "verdict": metrics["verdict"],
        "ratio_definition": "(AUC_transfer - AUC_scratch) / |AUC_scratch|",
        "commands": _commands(config, source, source_folder),
    }
    write_json(folder / "transfer.json", _jsonable(result))
    plot_transfer(
        folder / "curves.png",
        curves,
        threshold=threshold,
        zero_shot=result["zero_shot"]["mean"],
        title=f"{Path(source.description).name} -> {config.env.name} ({mode.value}, {agent.name})",
        confidence=config.confidence,
        reps=min(config.bootstrap_reps, 1000),
        episodes=config.eval.curve_episodes,
    )
    log.info("%s", metrics["verdict"])
    print(summary(result))
    log.info("run folder: %s", folder)
    return result


def _check_settings(config: TransferConfig) -> None:
    if config.init_model is not None:
        raise ValueError(
            "init_model: lepton-transfer starts its transfer arm from source=<run folder>; "
            "init_model is for lepton-train and lepton-tune"
        )
    if not config.seeds:
        raise ValueError("seeds: give at least one seed, e.g. seeds=[0,1,2]")
    if len(set(config.seeds)) != len(config.seeds):
        raise ValueError(f"seeds: must differ, got {list(config.seeds)}")
    if config.finetune_lr_scale <= 0:
        raise ValueError(f"finetune_lr_scale: must be > 0, got {config.finetune_lr_scale}")
    if config.total_timesteps < 1:
        raise ValueError(f"total_timesteps: must be >= 1, got {config.total_timesteps}")
    if config.asymptote_points < 1:
        raise ValueError(f"asymptote_points: must be >= 1, got {config.asymptote_points}")
    if not 0 < config.confidence < 1:
        raise ValueError(f"confidence: must be in (0, 1), got {config.confidence}")
    if config.bootstrap_reps < 1:
        raise ValueError(f"bootstrap_reps: must be >= 1, got {config.bootstrap_reps}")
    if config.threshold is not None and not np.isfinite(config.threshold):
        raise ValueError(f"threshold: must be a finite return or null, got {config.threshold}")
    if config.mode is TransferMode.freeze_features and config.freeze_layers < 1:
        raise ValueError(f"freeze_layers: must be >= 1, got {config.freeze_layers}")
    for seed in config.seeds:
        make_seeds(seed, config.n_envs, config.eval)  # raises naming eval.seed_offset


SEEDS_DIR = "seeds"
"""Folder of a run's finished seeds (``seeds/<seed>.json``: both arms' curves, zero-shot score)."""


def _seed_file(folder: Path, seed: int) -> Path:
    return folder / SEEDS_DIR / f"{seed}.json"


def _write_seed(folder: Path, seed: int, record: Mapping[str, Any]) -> None:
    """Record both finished arms of ``seed`` at once (atomically: never one arm without the other)."""
    path = _seed_file(folder, seed)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write_json(tmp, _jsonable(dict(record)))
    tmp.replace(path)


def _finished_seeds(
    folder: Path, config: TransferConfig, fingerprint: str
) -> dict[int, dict[str, Any]]:
    """The seeds whose two arms an earlier attempt of this run finished, with ``resume=true``.

    A seed is kept only when its record was made with the same budget and the same source
    model; otherwise it runs again. Without ``resume`` the records and arm checkpoints of
    earlier attempts are removed (and their training logs), so that a later resume cannot mix
    them with this attempt's.
    """
    records = folder / SEEDS_DIR
    if not config.resume:
        for earlier in (records, folder / ARMS_DIR, folder / LOGS_DIR):
            if earlier.is_dir():
                shutil.rmtree(earlier)
        return {}
    done: dict[int, dict[str, Any]] = {}
    for seed in config.seeds:
        path = _seed_file(folder, seed)
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        if record.get("total_timesteps") != config.total_timesteps:
            log.info(
                "seed %d: finished earlier with total_timesteps=%s, not %d: runs again",
                seed,
                record.get("total_timesteps"),
                config.total_timesteps,
            )
        elif record.get("source") != fingerprint:
            log.info("seed %d: finished earlier from another source model: runs again", seed)
        else:
            done[seed] = record
    return done


ARMS_DIR = "arms"
"""Folder of a run's unfinished arms (``arms/<seed>/<arm>/``: checkpoints and what they need)."""

LOGS_DIR = "logs"
"""Folder of the arms' training logs (``logs/<seed>/<arm>/``: ``progress.csv``, ``tb/``)."""

ARM_FILE = "arm.json"
"""What an arm's checkpoints continue: seed, arm, ``total_timesteps`` and source model."""

ZERO_SHOT_FILE = "zero_shot.json"
"""The transfer arm's zero-shot score, taken before it trains (a resumed arm reads it)."""


def _arm_folder(
    folder: Path, seed: int, arm: str, config: TransferConfig, source: str | None
) -> Path:
    """The folder of one arm (``arms/<seed>/<arm>``), holding only what continues this arm.

    Checkpoints an earlier attempt wrote with another ``total_timesteps`` or source model
    (``source``: its digest; ``None`` for the scratch arm, which does not read it) are removed:
    the arm then starts afresh.
    """
    path = folder / ARMS_DIR / str(seed) / arm
    record = {"seed": seed, "arm": arm, "total_timesteps": config.total_timesteps}
    record["source"] = source
    saved = path / ARM_FILE
    if path.is_dir():
        try:
            earlier = json.loads(saved.read_text())
        except (OSError, ValueError):  # none, or unreadable: nothing says what they continue
            earlier = None
        if earlier != record:
            log.info(
                "seed %d: the %s arm's checkpoints are of another budget or source model: it "
                "starts afresh",
                seed,
                arm,
            )
            shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(saved, record)
    return path


def _fingerprint(folder: Path) -> str:
    """SHA-256 of the source's ``model.zip`` (a resumed seed must come from the same weights)."""
    return hashlib.sha256((folder / MODEL_FILE).read_bytes()).hexdigest()


SOURCE_FILE = "source.json"
"""Written last into the folder of a source trained here: its key, configuration and digest."""

SOURCE_PENDING_FILE = "source-pending.json"
"""Written into the folder of a source before it trains: its key, so that a later attempt
resumes the source from its checkpoint only when it trains the same one."""

SOURCES_DIR = "sources"
"""Folder of a multirun's shared sources (``<sweep_dir>/sources/<key>/``)."""

SOURCE_KEY_IGNORED = RUN_ONLY_KEYS - {"device"}
"""Keys of a source's training configuration left out of its key: how its run goes, not what
it trains (:data:`conf.resolvers.RUN_ONLY_KEYS`), but for the device, whose arithmetic may
give other weights."""


def source_identity(train: TrainConfig) -> dict[str, Any]:
    """What determines a source trained here: its training configuration as plain data.

    Every key but those of :data:`SOURCE_KEY_IGNORED` (``run_dir``, ``resume``, ``tensorboard``,
    ...): env, agent, seed, budget, replicas, evaluation and the rest.
    """

    def kept(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        out = {}
        for key, value in data.items():
            name = f"{prefix}{key}"
            if covered(name, SOURCE_KEY_IGNORED):
                continue
            out[str(key)] = kept(value, f"{name}.") if isinstance(value, Mapping) else value
        return out

    data: dict[str, Any] = json.loads(json.dumps(kept(plain(train)), default=str))
    return data


def source_key(identity: Mapping[str, Any]) -> str:
    """SHA-256 of a source's :func:`source_identity` (canonical JSON, keys sorted)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def source_home(folder: Path, key: str, resume: bool) -> tuple[Path, bool]:
    """Where the source of ``key`` is trained, and whether a finished one there is reused.

    In a multirun every job shares ``<sweep_dir>/sources/<key[:16]>`` and reuses what is
    there; a single run trains into ``<run_dir>/source`` and reuses it with ``resume`` only.

    Args:
        folder: the run folder.
        key: the source's :func:`source_key`.
        resume: the run's ``resume``.
    """
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(str(HydraConfig.get().sweep.dir)) / SOURCES_DIR / key[:16], True
    return folder / "source", resume


@contextlib.contextmanager
def source_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the source ``folder`` (``.<name>.lock`` next to it).

    :func:`~agents.jobs.file_lock` (``fcntl.flock``; ``msvcrt.locking`` on Windows): a job
    that finds the lock taken logs that it waits and blocks until the job holding it ends (or
    dies: the lock goes with its process).
    """

    def waiting() -> None:
        log.info("waiting for the source in %s: another job is training it", folder)

    with file_lock(folder.parent / f".{folder.name}.lock", waiting):
        yield


@dataclasses.dataclass(frozen=True)
class TrainedSource:
    """A source trained here (or earlier, with the same key).

    Attributes:
        folder: its run folder.
        points: its learning curve.
        key: its :func:`source_key`.
        reused: whether it was trained earlier and loaded, not trained by this run.
    """

    folder: Path
    points: list[dict[str, float]]
    key: str
    reused: bool


def cached_source(
    train: TrainConfig,
    folder: Path,
    *,
    reuse: bool,
    progress: bool = False,
    checkpoint_freq: int = 0,
    tensorboard: bool = False,
    verbose: int = 0,
) -> TrainedSource:
    """The source of ``train`` in ``folder``: loaded when finished there and ``reuse``, else trained.

    Everything happens under :func:`source_lock`, so of concurrent jobs with the same
    ``folder`` one trains and the others wait and load. A source is finished when its
    :data:`SOURCE_FILE` (written last) is there. With ``checkpoint_freq > 0`` the source
    writes a checkpoint every ``checkpoint_freq`` steps (``folder/checkpoints``, removed when it
    finishes); an unfinished source of the same key (:data:`SOURCE_PENDING_FILE`) continues
    from its latest checkpoint when ``reuse``, as an arm does (:func:`train_arm`). Any other
    unfinished folder is trained again from the start. A finished folder of a run from before
    :data:`SOURCE_FILE` existed (``curve.csv`` last) is adopted as it is. Its training logs are
    written into ``folder`` as a ``lepton-train`` run's (``progress.csv``, TensorBoard in
    ``tb/`` with ``tensorboard``).

    Raises:
        ValueError: naming ``source`` and the folder when the finished source there has
            another key (another configuration) or its ``model.zip`` is not the one recorded.
    """
    identity = source_identity(train)
    key = source_key(identity)
    with source_lock(folder):
        if reuse and _legacy_source(folder):
            _write_source_file(folder, key, identity)
        if reuse and _source_complete(folder):
            _check_source(folder, key)
            log.info("the source in %s (key %s) is reused", folder, key[:16])
            return TrainedSource(folder, _read_curve(folder / "curve.csv"), key, True)
        if folder.exists() and not (reuse and _resumable_source(folder, key, checkpoint_freq)):
            shutil.rmtree(folder)  # an unfinished attempt, or a fresh run's
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / SOURCE_PENDING_FILE, {"key": key})
        _, points = _train_source(
            train, folder, progress, checkpoint_freq, tensorboard=tensorboard, verbose=verbose
        )
        _write_source_file(folder, key, identity)
        shutil.rmtree(folder / CHECKPOINT_DIR, ignore_errors=True)
        (folder / SOURCE_PENDING_FILE).unlink(missing_ok=True)
        return TrainedSource(folder, points, key, False)


def _resumable_source(folder: Path, key: str, checkpoint_freq: int) -> bool:
    """Whether the unfinished source in ``folder`` is ``key``'s with a checkpoint to go on from."""
    if checkpoint_freq <= 0:
        return False
    try:
        pending = json.loads((folder / SOURCE_PENDING_FILE).read_text())["key"]
    except Exception:
        return False
    try:
        found = pending == key and latest_checkpoint(folder) is not None
    except CheckpointError as exc:
        raise CheckpointError(
            f"{exc}; or remove {folder} to train the source again from its start"
        ) from exc
    if found:
        log.info(
            "the unfinished source in %s (key %s) goes on from its checkpoint", folder, key[:16]
        )
    return found


def _write_source_file(folder: Path, key: str, identity: Mapping[str, Any]) -> None:
    record = {"key": key, "model_sha256": _fingerprint(folder), "config": dict(identity)}
    write_json_atomic(folder / SOURCE_FILE, record)


def _check_source(folder: Path, key: str) -> None:
    """Raise unless the finished source in ``folder`` has ``key`` and its recorded model."""
    path = folder / SOURCE_FILE
    try:
        record = json.loads(path.read_text())
        saved, config, digest = record["key"], record["config"], record["model_sha256"]
    except Exception as exc:
        raise ValueError(
            f"source: {path} cannot be read ({type(exc).__name__}: {exc}), so the source in "
            f"{folder} cannot be checked; it is not reused: remove that folder to train the "
            "source again"
        ) from exc
    if saved != key or source_key(config) != key:
        raise ValueError(
            f"source: {folder} holds a source trained with another configuration (key "
            f"{str(saved)[:16]}, this configuration's {key[:16]}; see its {SOURCE_FILE}); it is "
            "not reused: remove that folder to train this source there, or choose another "
            "run_dir or sweep_dir"
        )
    if digest != _fingerprint(folder):
        raise ValueError(
            f"source: {folder / MODEL_FILE} is not the model recorded in {path} (it changed "
            "after training); it is not reused: remove that folder to train the source again"
        )


def _source_complete(folder: Path) -> bool:
    """Whether a source trained here finished (:data:`SOURCE_FILE` is written last)."""
    names = (MODEL_FILE, "config.yaml", "curve.csv", SOURCE_FILE)
    return all((folder / name).is_file() for name in names)


def _legacy_source(folder: Path) -> bool:
    """A finished source written before :data:`SOURCE_FILE` existed (``curve.csv`` last)."""
    names = (MODEL_FILE, "config.yaml", "curve.csv")
    return not (folder / SOURCE_FILE).exists() and all((folder / n).is_file() for n in names)


def _read_curve(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _train_source(
    train: TrainConfig,
    folder: Path,
    progress: bool,
    checkpoint_freq: int = 0,
    *,
    tensorboard: bool = False,
    verbose: int = 0,
) -> tuple[Path, list[dict[str, float]]]:
    """Train the source agent of ``train`` into ``folder`` (a reusable run folder).

    With ``checkpoint_freq > 0`` it checkpoints into ``folder`` and goes on from a checkpoint
    found there (:func:`train_arm`).
    """
    agent = as_sb3_agent(train.agent, "training a source agent")
    log.info(
        "training the source: %s on %s for %d steps -> %s",
        agent.name,
        train.env.name,
        train.total_timesteps,
        folder,
    )
    folder.mkdir(parents=True, exist_ok=True)
    arm = train_arm(
        agent,
        train.env,
        seed=train.seed,
        n_envs=train.n_envs,
        total_timesteps=train.total_timesteps,
        ev=train.eval,
        device=train.device,
        progress_bar=progress,
        folder=folder,
        checkpoint_freq=checkpoint_freq,
        logs=folder,
        tensorboard=tensorboard,
        verbose=verbose,
    )
    arm.model.save(folder / "model.zip")
    if isinstance(arm.venv, VecNormalize):
        arm.venv.save(str(folder / VECNORMALIZE_FILE))
    arm.venv.close()
    saved = OmegaConf.structured(dataclasses.replace(train, run_dir=str(folder)))
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(saved, resolve=True))
    with (folder / "curve.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timesteps", "mean", "std"])
        writer.writerows([p["timesteps"], p["mean"], p["std"]] for p in arm.points)
    return folder, arm.points


def best_baseline(scores: Mapping[str, float], oracles: Collection[str] = ()) -> str | None:
    """The baseline that sets the default threshold: the best one that is not an oracle.

    An oracle reads state the agent's observation hides (e.g. the users' latent interests): a
    reference, not a level an agent can be expected to reach, so it never sets the threshold.
    ``None`` when no other baseline was scored.
    """
    candidates = [name for name in scores if name not in oracles]
    return max(candidates, key=lambda name: scores[name]) if candidates else None


def _baseline_scores(
    config: TransferConfig,
    names: Sequence[str] | None = None,
    seed: int | None = None,
    episodes: int | None = None,
    oracles: set[str] | None = None,
) -> dict[str, float]:
    """Mean return of baselines on the target over the evaluation episodes of ``seed``.

    Args:
        config: the transfer configuration (its ``baselines`` by default).
        names: the baselines to run (default: every configured one).
        seed: whose evaluation episodes (``seed + eval.seed_offset + k``; default ``seed``).
        episodes: how many (default ``eval.episodes``).
        oracles: when given, receives the names of the baselines that read hidden state.
    """
    seed = config.seed if seed is None else seed
    seeds = make_seeds(seed, config.n_envs, config.eval, episodes=episodes)
    env = make_eval_env(
        config.env,
        config.eval,
        min(seeds.episodes, config.eval.batch_size),
        seeds.eval_start,
        allow_sharing=False,
    )
    fit = make_seeds(config.seed, config.n_envs, config.eval).fit
    scores = {}
    for name in baseline_names(env, config.baselines) if names is None else names:
        baseline = make_baseline(name, env, seed=config.seed, fit_seeds=fit, field="baselines")
        if oracles is not None and getattr(baseline, "reads_hidden_state", lambda: False)():
            oracles.add(name)
        returns = run_episodes(
            baseline,
            env,
            seeds.eval_start,
            seeds.episodes,
            deterministic=config.eval.deterministic,
        ).returns
        scores[name] = float(returns.mean())
        log.info(
            "baseline %s on the target (seed %d, %d episodes): %.3f",
            name,
            seed,
            seeds.episodes,
            scores[name],
        )
    env.close()
    return scores


def _commands(config: TransferConfig, source: Source, folder: Path) -> dict[str, str]:
    """The command of this run, and the equivalent ``lepton-train`` runs of its parts.

    ``folder`` is the source's folder (``<run_dir>/source``, or a multirun's shared one).
    """
    out = {"this_run": command_line()}
    if source.train is not None:
        # the source trained here is a run folder of its own: later runs can start from it
        out["reuse_source"] = f"{command_line()} source={folder}"
        if (CONF_DIR / "experiment" / f"{source.description}.yaml").is_file():
            overrides = " ".join(shlex.quote(o) for o in config.source_overrides)
            out["source_alone"] = f"lepton-train experiment={source.description} {overrides}"
    return {k: v.strip() for k, v in out.items()}


def _progress_bar_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("tqdm", "rich"))


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars turned into Python numbers and keys into strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- artefacts ------------------------------------------------------------------------------


def write_curves(
    path: Path, curves: Mapping[str, Mapping[int, Sequence[Mapping[str, float]]]]
) -> None:
    """Write ``curves.csv``: one row per arm, seed and point."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arm", "seed", "timesteps", "mean", "std"])
        for arm, by_seed in curves.items():
            for seed, points in by_seed.items():
                for p in points:
                    writer.writerow([arm, seed, int(p["timesteps"]), p["mean"], p["std"]])


def plot_transfer(
    path: Path,
    curves: Mapping[str, Mapping[int, Sequence[Mapping[str, float]]]],
    *,
    threshold: float | None,
    zero_shot: float | None,
    title: str,
    confidence: float = 0.95,
    reps: int = 1000,
    episodes: int = 1,
) -> None:
    """Plot the mean curve of each arm over seeds with a bootstrap interval band.

    Curves are put on the scratch timesteps of the first seed; the threshold and the zero-shot
    score are drawn as horizontal lines.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    first = sorted(curves["scratch"])[0]
    grid = Curve.from_points(curves["scratch"][first]).timesteps
    for k, arm in enumerate(ARMS):
        by_seed = curves[arm]
        values = np.stack([Curve.from_points(p).on(grid).values for p in by_seed.values()])
        mid = values.mean(axis=0)
        bands = [
            stratified_bootstrap([values[:, j]], mean_of, reps=reps, confidence=confidence)
            for j in range(grid.size)
        ]
        ax.plot(grid, mid, marker="o", markersize=3, color=f"C{k}", label=f"{arm} (mean)")
        ax.fill_between(
            grid,
            [b[1] for b in bands],
            [b[2] for b in bands],
            color=f"C{k}",
            alpha=0.2,
            label=f"{arm} {confidence:.0%} interval",
        )
    if zero_shot is not None:
        ax.axhline(zero_shot, color="C2", linestyle=":", linewidth=1.3, label="zero-shot")
    if threshold is not None:
        ax.axhline(threshold, color="C3", linestyle="--", linewidth=1.3, label="threshold")
    _symlog_if_spread(ax, [v for arm in ARMS for p in curves[arm].values() for v in _means(p)])
    n = len(curves["scratch"])
    ax.set_xlabel("environment steps on the target")
    ax.set_ylabel(f"evaluation return (mean over {episodes} episodes)")
    ax.set_title(f"{title}: {n} seed{'s' if n != 1 else ''}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.savefig(path, dpi=120)


def _means(points: Sequence[Mapping[str, float]]) -> list[float]:
    return [float(p["mean"]) for p in points]


def _symlog_if_spread(ax: Any, values: Sequence[float]) -> None:
    """A symmetric-log y axis when a few points (e.g. a random start) dwarf the rest.

    Linear inside the typical magnitude of the values (their median absolute value), so the
    differences that matter near the end stay visible next to a start 100x lower.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 4:
        return
    q1, median, q3 = np.percentile(v, [25, 50, 75])
    spread = max(q3 - q1, 1e-12)
    if v.min() < median - 20 * spread or v.max() > median + 20 * spread:
        ax.set_yscale("symlog", linthresh=max(abs(median), spread, 1e-9))
        low, high = ax.get_ylim()
        ax.set_ylim(low, min(high, v.max() + spread))


def summary(result: Mapping[str, Any]) -> str:
    """The main numbers as a markdown table, with the verdict."""
    agg = result["metrics"]["aggregate"]

    def cell(s: Mapping[str, Any]) -> str:
        if s["mean"] is None:
            return "-"
        return f"{s['mean']:.3g} [{s['low']:.3g}, {s['high']:.3g}]"

    rows = [
        ("zero-shot return", cell(result["zero_shot"]), ""),
        ("initial return", cell(agg["initial"]["transfer"]), cell(agg["initial"]["scratch"])),
        ("jumpstart", cell(agg["jumpstart"]), ""),
        (
            "asymptotic return",
            cell(agg["asymptotic"]["transfer"]),
            cell(agg["asymptotic"]["scratch"]),
        ),
        (
            "total reward (AUC / steps)",
            cell(agg["total_reward"]["transfer"]),
            cell(agg["total_reward"]["scratch"]),
        ),
        ("transfer ratio", cell(agg["transfer_ratio"]), ""),
        (
            "time to threshold (reached)",
            f"{cell(agg['time_to_threshold']['transfer'])} "
            f"({agg['time_to_threshold']['transfer']['reached']})",
            f"{cell(agg['time_to_threshold']['scratch'])} "
            f"({agg['time_to_threshold']['scratch']['reached']})",
        ),
        (
            "time to threshold (never reached = trained steps)",
            cell(agg["time_to_threshold_censored"]["transfer"]),
            cell(agg["time_to_threshold_censored"]["scratch"]),
        ),
    ]
    lines = ["| metric | transfer | scratch |", "|---|---:|---:|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    trained = result.get("trained_timesteps")
    budget = f"\n\nBudget: total_timesteps={result['budget']}"
    if trained is not None and trained != result["budget"]:
        budget += f"; SB3 trains whole rollouts, so every trained arm ran {trained} steps"
    return "\n".join(lines) + f"{budget}.\n\n{result['verdict']}\n"
