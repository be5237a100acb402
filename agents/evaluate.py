"""Evaluate a saved model or a baseline on seeded evaluation episodes.

``run(cfg)`` evaluates ``model_path`` (an SB3 agent, with its normalisation statistics) or the
baseline ``agent=<name>`` for ``episodes`` episodes on the evaluation seeds and writes
``metrics.json``, ``eval.csv`` and ``table.md`` into its run folder.

A saved model is ``<run>/model.zip``, a checkpoint ``<run>/checkpoints/model_<n>_steps.zip`` or
the run folder itself. The run's ``config.yaml`` (next to the model, or in the run folder above
a checkpoint) decides what the command line leaves open (see :func:`follow_saved_run`): without
``env=...``, ``env.<key>=...`` or ``experiment=...`` the model is evaluated on the env it was
trained on, without ``agent=...`` with the run's agent. An env chosen on the command line that
differs from the run's is a transfer evaluation: it runs, says so, and fails when the model's
spaces do not fit. A model trained with observation normalisation is refused when its
statistics (``vecnormalize.pkl``, or the checkpoint's ``model_vecnormalize_<n>_steps.pkl``) are
missing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from agents.algorithms import MODEL_FILE, as_sb3_agent, load_model, model_file, run_config_path
from agents.config import Seeds, as_config, make_seeds, plain, refuse_init_model
from agents.envs import (
    RUNTIME_ENV_KWARGS,
    load_normalization,
    make_eval_env,
    saved_normalization,
)
from agents.evaluation import run_episodes
from agents.jobs import RUN, STATUS_FILE, RunFolderError
from agents.policies import Policy, make_baseline
from agents.pretrained import check_fits, resolve_model_path
from agents.report import (
    Metrics,
    markdown_table,
    metrics_of,
    print_table,
    write_episodes,
    write_metrics,
)
from agents.runs import job_folder, run_folder, save_command, save_config
from conf.resolvers import override_key, without_idle_preset
from conf.schema import (
    AGENT_SCHEMAS,
    ENV_SCHEMAS,
    EvaluateConfig,
    GenericEnvConfig,
    PretrainedFields,
    SB3AgentConfig,
)

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> Metrics:
    """Evaluate the configured policy and write ``metrics.json`` and ``eval.csv``.

    Args:
        cfg: a configuration composed from ``conf/evaluate.yaml``.

    Returns:
        ``{agent name: {metric: {"mean", "std", "n"}}}``.

    Raises:
        FileExistsError: naming ``run_dir`` when it holds a ``lepton-train`` run (see
            :func:`refuse_training_run_folder`).
    """
    follow_saved_run(cfg)
    config = as_config(cfg, EvaluateConfig)
    refuse_init_model(config, "lepton-evaluate")
    refuse_training_run_folder(job_folder(cfg))
    seeds = make_seeds(config.seed, config.n_envs, config.eval, config.episodes)

    set_random_seed(config.seed)
    torch.set_num_threads(config.torch_threads)

    # a model trained with parameter sharing acts in the shared env, a baseline in the plain one
    venv = make_eval_env(
        config.env,
        dataclasses.replace(config.eval, episodes=seeds.episodes),
        min(seeds.episodes, config.eval.batch_size),
        seeds.eval_start,
        allow_sharing=isinstance(config.agent, SB3AgentConfig),
    )
    policy, venv, transfer = _load_policy(config, venv, seeds)
    folder = run_folder(cfg)
    save_config(folder, cfg)
    save_command(folder)
    results = {
        config.agent.name: run_episodes(
            policy,
            venv,
            seeds.eval_start,
            seeds.episodes,
            metrics=config.env.metrics,
            deterministic=config.eval.deterministic,
        )
    }
    venv.close()

    metrics = metrics_of(results)
    columns = ["return", *config.env.metrics]
    write_metrics(folder / "metrics.json", metrics)
    write_episodes(folder / "eval.csv", results)
    (folder / "table.md").write_text(markdown_table(metrics, columns))
    title = f"{config.env.id}: {seeds.episodes} evaluation episodes (seeds {seeds.eval_start}..)"
    if transfer is not None:
        title += f"; transfer: {transfer}"
    print_table(metrics, columns, title)
    log.info("run folder: %s", folder)
    return metrics


TRAINING_RUN_FILES = (STATUS_FILE, MODEL_FILE)
"""Files that only ``lepton-train`` writes into a run folder: their presence marks its run."""


def refuse_training_run_folder(folder: Path) -> None:
    """Refuse to write an evaluation into ``folder`` when it holds a ``lepton-train`` run.

    An evaluation writes ``config.yaml``, ``command.txt``, ``metrics.json``, ``eval.csv`` and
    ``table.md``, which would replace the training run's own (its baselines' scores, the
    configuration its model and ``resume`` rely on). A folder of an earlier evaluation is
    written again.

    Raises:
        RunFolderError: (a ``FileExistsError``) naming ``run_dir``, the files that mark the run
            and the folders to use.
    """
    found = [name for name in TRAINING_RUN_FILES if (folder / name).is_file()]
    if found:
        raise RunFolderError(
            f"run_dir: {str(folder)!r} holds a lepton-train run ({', '.join(found)}), whose "
            "config.yaml, metrics.json and eval.csv an evaluation would replace; allowed: a "
            f"folder without a training run, e.g. run_dir={folder / 'evaluate'}, or no run_dir "
            "(runs/evaluate/<env>__<agent>__<seed>__<time>)"
        )


def plan_evaluation(folder: Path, cfg: DictConfig) -> str:
    """Whether ``lepton-evaluate`` writes into ``folder`` (:class:`~agents.jobs.KeepRunRecord`).

    Args:
        folder: the job's run folder.
        cfg: the job's configuration.

    Returns:
        :data:`~agents.jobs.RUN`: an evaluation always runs where it is not refused.

    Raises:
        RunFolderError: when ``folder`` holds a ``lepton-train`` run (see
            :func:`refuse_training_run_folder`).
    """
    refuse_training_run_folder(folder)
    return RUN


def load_policy(config: EvaluateConfig, venv: VecEnv, seeds: Seeds) -> tuple[Policy, VecEnv]:
    """The policy to evaluate on ``venv``, and ``venv`` (normalised for a model that needs it).

    A baseline agent is built on ``venv`` and fitted on the training seeds; an SB3 agent is
    loaded from ``model_path`` (a pretrained agent, ``agent=pretrained/<name>``, from its
    packaged model when ``model_path`` is ``null``) with its normalisation statistics (see
    :func:`saved_model`).

    Raises:
        ValueError: naming ``model_path`` when it is missing for an SB3 agent or given for a
            baseline, when the run that wrote it used another algorithm, or when the model
            does not fit the env.
        FileNotFoundError: naming ``model_path`` when there is no model there, or when the
            model was trained with observation normalisation and its statistics are missing.
    """
    policy, venv, _ = _load_policy(config, venv, seeds)
    return policy, venv


def _load_policy(
    config: EvaluateConfig, venv: VecEnv, seeds: Seeds
) -> tuple[Policy, VecEnv, str | None]:
    """:func:`load_policy`, and the transfer :attr:`SavedModel.transfer` of a saved model."""
    if not isinstance(config.agent, SB3AgentConfig):
        if config.model_path is not None:
            raise ValueError(
                f"model_path: a saved model needs an SB3 agent (agent=ppo, a2c, ...), but "
                f"agent={config.agent.name} is a baseline; drop model_path or pick the "
                "model's algorithm"
            )
        baseline = make_baseline(
            config.agent.name, venv, seed=config.seed, fit_seeds=seeds.fit, field="agent"
        )
        log.info("baseline %s: %s", config.agent.name, baseline.params())
        return baseline, venv, None
    agent = as_sb3_agent(config.agent, "evaluating a model")
    saved = saved_model(config, "evaluating a model")
    check_fits(agent, venv, config.env.id)
    model, stats = load_saved_model(agent, saved, venv, config.device)
    return model, stats if stats is not None else venv, saved.transfer


# --- the run that saved a model --------------------------------------------------------------

RUN_GROUPS = ("env", "agent")
"""Config groups a saved model's run decides when the command line leaves them open."""

CHOOSES_EVERY_GROUP = "experiment"
"""Override that chooses every group of :data:`RUN_GROUPS` (an experiment names its env and
agent)."""


@dataclasses.dataclass(frozen=True)
class SavedModel:
    """A saved SB3 model to act with, and what the run that saved it recorded.

    Attributes:
        path: the model file (``model.zip`` or a checkpoint's ``model_<n>_steps.zip``).
        run_config: the run's ``config.yaml`` (``None``: not found).
        stats: the normalisation statistics to load (``None``: none).
        transfer: set when the configured env differs from the run's, describing both
            (``trained on ... (see config.yaml), evaluated on ...``); ``None`` otherwise.
    """

    path: Path
    run_config: Path | None
    stats: Path | None
    transfer: str | None


def command_line_overrides() -> list[str] | None:
    """The command-line overrides of this Hydra job (``hydra.overrides.task``).

    ``None`` outside a Hydra app: a configuration composed in-process (tests, ``lepton-zoo``)
    chose everything it holds.
    """
    if not HydraConfig.initialized():
        return None
    return [str(override) for override in HydraConfig.get().overrides.task]


def chooses(group: str, overrides: Sequence[str]) -> bool:
    """Whether ``overrides`` choose the config group ``group`` itself.

    ``<group>=<option>`` (with ``+``/``++``/``~``) or ``experiment=<name>`` choose it;
    ``<group>.<key>=<value>`` only changes one key of it.
    """
    keys = {override_key(override) for override in overrides}
    return group in keys or CHOOSES_EVERY_GROUP in keys


def follow_saved_run(cfg: DictConfig) -> list[str]:
    """Take the env and the agent of the run that saved ``model_path`` where the command line chose none.

    For an SB3 agent with a saved model whose run left its ``config.yaml`` (next to the model,
    or in the run folder above a checkpoint), every group of :data:`RUN_GROUPS` that the
    command line does not choose (see :func:`chooses`) is replaced in ``cfg`` by the run's, and
    the command line's ``<group>.<key>=<value>`` overrides are applied on top of it. ``run_dir``
    is pinned first, so the run folder stays the one Hydra opened for this job (whose default
    name already names the run's env and agent: see :func:`evaluated_names`). Outside a Hydra
    app (:func:`command_line_overrides` is ``None``) ``cfg`` is left as it is.

    Args:
        cfg: a configuration composed from ``conf/evaluate.yaml`` or ``conf/render.yaml``;
            changed in place.

    Returns:
        The groups taken from the run.

    Raises:
        FileNotFoundError: naming ``model_path`` when there is no model there.
        ValueError: naming ``model_path`` when the run's env or agent fits no schema.
    """
    found = _saved_run_groups(cfg)
    if found is None:
        return []
    saved, nodes = found
    with open_dict(cfg):
        cfg.run_dir = str(cfg.run_dir)
        for group, node in nodes.items():
            cfg[group] = node
    log.info(
        "using the %s of the run that saved the model (%s): %s; choose another on the command "
        "line (%s)",
        " and ".join(nodes),
        saved,
        ", ".join(f"{group} {_group_label(cfg, group)}" for group in nodes),
        ", ".join(f"{group}=..." for group in nodes),
    )
    return list(nodes)


def evaluated_names(cfg: DictConfig) -> tuple[str, str]:
    """``env.name`` and ``agent.name`` of what the job of ``cfg`` evaluates or renders.

    Those of the run that saved the model wherever :func:`follow_saved_run` takes its groups,
    those of ``cfg`` elsewhere; ``cfg`` itself is not changed. The default ``run_dir`` of
    ``lepton-evaluate`` and ``lepton-render`` is named with them (resolver
    ``lepton.evaluated``), so the folder names the env actually evaluated. A model or a run
    record that cannot be read leaves the names of ``cfg``: the job then reports the error.
    """
    names = {group: str(OmegaConf.select(cfg, f"{group}.name")) for group in RUN_GROUPS}
    try:
        found = _saved_run_groups(cfg)
    except Exception:  # the job reports it with its own message
        found = None
    if found is not None:
        names.update({group: str(node.name) for group, node in found[1].items()})
    return names["env"], names["agent"]


def _saved_run_groups(cfg: DictConfig) -> tuple[Path, dict[str, DictConfig]] | None:
    """The ``config.yaml`` of the run that saved ``cfg``'s model and the groups it decides.

    The groups are those of :data:`RUN_GROUPS` the command line does not choose, typed and with
    the command line's ``<group>.<key>=<value>`` overrides applied; ``None`` when there are
    none (outside a Hydra app, for a baseline, or without a saved run).
    """
    overrides = command_line_overrides()
    if overrides is None:
        return None
    try:  # the rest is validated (with clearer messages) once the groups are final
        agent = OmegaConf.to_object(cfg.agent)
    except OmegaConfBaseException:
        return None
    if not isinstance(agent, SB3AgentConfig):
        return None
    model_path = resolve_model_path(agent, OmegaConf.select(cfg, "model_path"))
    if model_path is None:
        return None
    saved = run_config_path(model_file(model_path))
    if saved is None:
        return None
    run_cfg: Any = OmegaConf.load(saved)
    nodes = {
        group: _saved_node(group, run_cfg[group], saved)
        for group in RUN_GROUPS
        if not chooses(group, overrides) and isinstance(run_cfg.get(group), DictConfig)
    }
    if "agent" in nodes and OmegaConf.select(run_cfg, "agent.algo") is None:
        del nodes["agent"]  # not an SB3 agent's run
    if not nodes:
        return None
    for group, node in nodes.items():
        _apply_group_overrides(node, group, overrides, cfg)
    return saved, nodes


def _group_label(cfg: DictConfig, group: str) -> str:
    """A short label of ``cfg[group]``: the env's ``id`` and ``kwargs``, the agent's ``name``."""
    if group == "env":
        return _env_label(OmegaConf.to_container(cfg.env, resolve=True))
    return str(OmegaConf.select(cfg, f"{group}.name"))


def _saved_node(group: str, saved: DictConfig, path: Path) -> DictConfig:
    """``saved`` (the run's ``env`` or ``agent``) typed with the schema it was composed from."""
    keys = {str(key) for key in saved}
    if group == "env":
        candidates: list[type] = [GenericEnvConfig, *ENV_SCHEMAS.values()]
    else:
        algo = OmegaConf.select(saved, "algo")
        pretrained = {f.name for f in dataclasses.fields(PretrainedFields)}
        candidates = [
            schema
            for schema in AGENT_SCHEMAS.values()
            if issubclass(schema, SB3AgentConfig)
            and getattr(schema, "algo", None) == algo
            and issubclass(schema, PretrainedFields) == bool(keys & pretrained)
        ]
    errors = []
    for schema in candidates:
        fields = {f.name for f in dataclasses.fields(schema)}
        if not keys <= fields:
            errors.append(f"{schema.__name__} has no {sorted(keys - fields)}")
            continue
        try:
            node = OmegaConf.merge(OmegaConf.structured(schema), saved)
        except OmegaConfBaseException as exc:
            errors.append(f"{schema.__name__}: {exc}")
            continue
        assert isinstance(node, DictConfig)
        return node
    raise ValueError(
        f"model_path: the {group} recorded in {path} fits no {group} schema "
        f"({'; '.join(errors) or 'none for it'}); choose the {group} on the command line "
        f"({group}=...)"
    )


def _apply_group_overrides(
    node: DictConfig, group: str, overrides: Sequence[str], cfg: DictConfig
) -> None:
    """Apply the ``<group>.<key>`` overrides of the command line (composed into ``cfg``) to ``node``."""
    prefix = f"{group}."
    for override in overrides:
        key = override_key(override)
        if not key.startswith(prefix):
            continue
        sub = key[len(prefix) :]
        with open_dict(node):
            if override.startswith("~"):
                parent, _, last = sub.rpartition(".")
                container = OmegaConf.select(node, parent) if parent else node
                if isinstance(container, DictConfig) and last in container:
                    del container[last]
                continue
            value = OmegaConf.select(cfg, key)
            if isinstance(value, DictConfig | ListConfig):
                value = OmegaConf.to_container(value, resolve=True)
            OmegaConf.update(node, sub, plain(value), merge=False)


def saved_model(config: EvaluateConfig, purpose: str) -> SavedModel:
    """The saved model of ``config`` (an SB3 agent), checked against the run that saved it.

    The model is ``model_path`` (a file or a run folder) or a pretrained agent's own. With the
    run's ``config.yaml``: another ``agent.algo`` fails; another env (``id``, ``kwargs`` but
    :data:`~agents.envs.RUNTIME_ENV_KWARGS`, ``scenarios``) is a transfer evaluation, logged as
    a warning. The normalisation statistics are the model's own (see
    :func:`~agents.envs.saved_normalization`); they are required when the run normalised
    observations (its ``agent.normalize.obs``, or a pretrained preset's when the run left no
    config).

    Args:
        config: the evaluation (or rendering) configuration.
        purpose: what needs the model, for messages (``"evaluating a model"``).

    Raises:
        ValueError: naming ``model_path`` when it is missing for the agent, or when the run
            used another algorithm.
        FileNotFoundError: naming ``model_path`` when there is no model, or no statistics for a
            model that needs them.
    """
    agent = as_sb3_agent(config.agent, purpose)
    given = resolve_model_path(agent, config.model_path)  # a pretrained agent's own
    if given is None:
        raise ValueError(
            f"model_path: agent={agent.name} needs model_path=<run folder>/model.zip (written by "
            "lepton-train) or the run folder; or use a baseline, e.g. agent=base_stock, or a "
            "pretrained agent, e.g. agent=pretrained/traffic-single"
        )
    path = model_file(given)
    run_config = run_config_path(path)
    run_cfg: Any = OmegaConf.load(run_config) if run_config is not None else None
    transfer = _check_run_config(path, run_config, run_cfg, config) if run_cfg else None
    if run_cfg is not None:
        normalized = OmegaConf.select(run_cfg, "agent.normalize.obs")
    elif isinstance(agent, PretrainedFields):
        normalized = agent.normalize.obs
    else:
        normalized = None
    known = None if normalized is None else bool(normalized)
    stats = saved_normalization(path, known, run_config)
    return SavedModel(path, run_config, stats, transfer)


def load_saved_model(
    agent: SB3AgentConfig, saved: SavedModel, venv: VecEnv, device: str
) -> tuple[BaseAlgorithm, VecNormalize | None]:
    """Load ``saved`` to act in ``venv``: the model, and its statistics around ``venv``.

    Raises:
        ValueError: when the model or its statistics do not fit ``venv``'s spaces; for a
            transfer evaluation naming both envs.
    """
    try:  # the model first: SB3 checks both spaces against the env itself
        model = load_model(agent, saved.path, venv, device=device)
        stats = load_normalization(saved.stats, venv) if saved.stats is not None else None
    except ValueError as exc:
        if saved.transfer is None:
            raise
        detail = exc.__cause__ or exc  # SB3's own words, without load_model's preamble
        raise ValueError(
            f"model_path: transfer evaluation refused: the model was {saved.transfer}, and it "
            f"does not fit that env: {detail} (drop the env=..., env.<key>=... and "
            "experiment=... overrides to evaluate on the env it was trained on)"
        ) from exc
    return model, stats


def _check_run_config(
    model_path: Path, saved: Path | None, run_cfg: Any, config: EvaluateConfig
) -> str | None:
    """Compare with the run that saved the model: another algorithm fails, another env is a transfer.

    Returns:
        The transfer's description when the envs differ (also logged as a warning), else
        ``None``.
    """
    agent = as_sb3_agent(config.agent, "evaluating a model")
    algo = OmegaConf.select(run_cfg, "agent.algo")
    if algo is not None and algo != agent.algo:
        raise ValueError(
            f"model_path: {str(model_path)!r} was trained with agent.algo={algo!r} "
            f"(see {saved}); pass agent={algo} (without agent=... or experiment=... on the "
            "command line the run's agent is used)"
        )
    trained_env = OmegaConf.select(run_cfg, "env")
    if trained_env is None:
        return None
    trained_on = _env_identity(OmegaConf.to_container(trained_env, resolve=True))
    evaluating = _env_identity(plain(config.env))
    if trained_on == evaluating:
        return None
    before, after = _env_difference(trained_on, evaluating)
    transfer = f"trained on {before} (see {saved}), evaluated on {after}"
    log.warning(
        "transfer evaluation: the model was %s, the configured env (without env=..., "
        "env.<key>=... or experiment=... on the command line it runs on the env it was trained "
        "on)",
        transfer,
    )
    return transfer


def _env_identity(env: Any) -> dict[str, Any]:
    """What decides an env's dynamics and spaces: ``id``, ``kwargs`` but runtime-only keys, ``scenarios``."""
    env = env if isinstance(env, dict) else {}
    # a null argument is the constructor's default, as an absent one (a config that declares it)
    kwargs = {
        k: v
        for k, v in without_idle_preset(env.get("kwargs") or {}).items()
        if k not in RUNTIME_ENV_KWARGS and v is not None
    }
    defaults = _default_reward_weights(env.get("id"))
    if defaults is not None:  # null, {} and the family's own weights are the same reward
        weights = {**defaults, **dict(kwargs.get("reward_weights") or {})}
        kwargs["reward_weights"] = {k: float(w) for k, w in sorted(weights.items())}
    return {"id": env.get("id"), "kwargs": kwargs, "scenarios": env.get("scenarios")}


def _default_reward_weights(env_id: Any) -> dict[str, float] | None:
    """The reward weights env ``env_id`` uses when given none (``None`` if not a Lepton env)."""
    import gymnasium as gym

    from envs.core.env import LeptonEnv
    from envs.registration import env_class

    try:
        cls = env_class(str(env_id))
    except gym.error.Error:  # an unknown id: compared as given
        return None
    if cls is None or not issubclass(cls, LeptonEnv):
        return None
    return dict(cls.default_reward_weights)


def _env_difference(trained: dict[str, Any], evaluating: dict[str, Any]) -> tuple[str, str]:
    """Labels of two env identities that name only what differs (both envs when the ids do)."""
    if trained["id"] != evaluating["id"]:
        return _env_label(trained), _env_label(evaluating)

    def differing(env: dict[str, Any], other: dict[str, Any]) -> str:
        keys = sorted(set(env["kwargs"]) | set(other["kwargs"]))
        parts = [
            f"env.kwargs.{key}={env['kwargs'].get(key)!r}"
            for key in keys
            if env["kwargs"].get(key) != other["kwargs"].get(key)
        ]
        if env["scenarios"] != other["scenarios"]:
            parts.append(f"env.scenarios={env['scenarios']!r}")
        return f"{env['id']} with {', '.join(parts)}"

    return differing(trained, evaluating), differing(evaluating, trained)


def _env_label(env: Any) -> str:
    identity = _env_identity(env)
    label = f"{identity['id']} {identity['kwargs']}"
    if identity["scenarios"] is not None:
        label += f" scenarios={identity['scenarios']}"
    return label
