"""Environment construction for training, evaluation and rendering from an env config."""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

import envs as lepton_envs
from agents.config import env_kwargs
from conf.schema import EnvConfig, EvalConfig, NormalizeConfig
from envs.core.sb3 import make_sb3_vec_env
from envs.core.scenario import ScenarioSource

log = logging.getLogger(__name__)

VECNORMALIZE_FILE = "vecnormalize.pkl"
"""Name of the normalisation statistics saved next to a model."""

CHECKPOINT_MODEL = re.compile(r"^(?P<prefix>.+)_(?P<steps>\d+)_steps\.zip$")
"""A checkpoint's model, ``<prefix>_<n>_steps.zip`` (SB3's ``CheckpointCallback`` naming)."""

RUNTIME_ENV_KWARGS = frozenset({"threads"})
"""Constructor arguments that change how an env runs, not what it computes (nor its spaces)."""


def resolve_env_id(env: EnvConfig) -> str:
    """The registered id of ``env.id`` (raises with the closest ids when unknown)."""
    return lepton_envs.resolve_id(env.id)


PARAMETER_SHARING = "parameter_sharing"
"""Key of ``env.kwargs`` that asks for the env's parameter-sharing vector env."""


def make_vec_env(
    env: EnvConfig, n_envs: int, seed: int | None = None, *, allow_sharing: bool = True
) -> VecEnv:
    """A batched SB3 ``VecEnv`` of ``n_envs`` replicas (native for Lepton envs).

    With ``env.kwargs.parameter_sharing: true`` it is the env class's parameter-sharing vector
    env (its ``shared_vec_env``, e.g. every traffic signal of every replica one slot), which
    one policy trains and is evaluated on; ``allow_sharing=False`` builds the ordinary one
    instead (what the family's baselines act on). With ``env.scenarios`` set, every replica
    of either draws its scenarios from that source (see :func:`scenario_source`).

    Args:
        env: the environment config.
        n_envs: number of replicas.
        seed: the first reset gives replica ``i`` the seed ``seed + i``.
        allow_sharing: honour ``env.kwargs.parameter_sharing``.

    Raises:
        ValueError: naming ``env.kwargs.parameter_sharing`` when the env class has no
            parameter-sharing vector env.
    """
    env_id = resolve_env_id(env)
    kwargs, sharing = _sharing_kwargs(env)
    _add_scenario_source(env, env_id, kwargs)
    return _vec_env(env_id, kwargs, n_envs, seed, sharing=sharing and allow_sharing)


def make_eval_env(
    env: EnvConfig,
    ev: EvalConfig,
    n_envs: int,
    first_seed: int,
    *,
    allow_sharing: bool = True,
) -> VecEnv:
    """The batched env evaluation episodes run on: :func:`make_vec_env` on ``ev.scenarios``.

    With ``ev.scenarios`` null it is ``make_vec_env(env, n_envs)``. Otherwise evaluation
    episode ``k`` (seed ``first_seed + k``, ``k < ev.episodes``) runs on a scenario of that
    source (see :func:`eval_source`) and every other reset (fitting the baselines on training
    seeds) draws from the training env's source, so baselines are fitted on what the agent
    trains on. The env's spaces are the training env's.

    Args:
        env: the training environment config (``env.scenarios`` is the training source).
        ev: the evaluation protocol; ``ev.scenarios`` picks the evaluation scenarios.
        n_envs: number of replicas.
        first_seed: seed of evaluation episode 0.
        allow_sharing: honour ``env.kwargs.parameter_sharing``.
    """
    if ev.scenarios is None:
        return make_vec_env(env, n_envs, allow_sharing=allow_sharing)
    env_id = resolve_env_id(env)
    kwargs, sharing = _sharing_kwargs(env)
    kwargs["scenario"] = eval_source(env, ev.scenarios, first_seed, ev.episodes)
    return _vec_env(env_id, kwargs, n_envs, None, sharing=sharing and allow_sharing)


def _vec_env(
    env_id: str, kwargs: dict[str, Any], n_envs: int, seed: int | None, *, sharing: bool
) -> VecEnv:
    """Build the vector env; an env's error about one of its arguments names ``env.kwargs``.

    Envs name the argument a bad value was given as (``observation: unknown observation ...``);
    every tool builds its envs here, where that argument is ``env.kwargs.<name>`` of the config.
    """
    try:
        return _build_vec_env(env_id, kwargs, n_envs, seed, sharing=sharing)
    except (KeyError, ValueError) as exc:
        message = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else ""
        if not any(message.startswith((f"{key}:", f"{key}.")) for key in kwargs):
            raise
        kind = KeyError if isinstance(exc, KeyError) else ValueError
        raise kind(f"env.kwargs.{message}") from exc


def _build_vec_env(
    env_id: str, kwargs: dict[str, Any], n_envs: int, seed: int | None, *, sharing: bool
) -> VecEnv:
    if not sharing:
        return make_sb3_vec_env(env_id, n_envs, seed=seed, **kwargs)
    from envs.registration import env_class, spec

    cls = env_class(env_id)
    path = getattr(cls, "shared_vec_env", "")
    if not path:
        name = cls.__name__ if cls is not None else env_id
        raise ValueError(
            f"env.kwargs.{PARAMETER_SHARING}: {env_id} ({name}) has no parameter-sharing vector "
            f"env (its class declares no shared_vec_env); drop {PARAMETER_SHARING} or set it "
            "to false"
        )
    module, _, attr = path.partition(":")
    vec_cls = getattr(importlib.import_module(module), attr)
    env_spec = spec(env_id)
    assert cls is not None
    kwargs = dict(kwargs)
    limit = kwargs.pop("max_episode_steps", None)  # as make_sb3_vec_env takes it
    if limit is None:
        limit = env_spec.max_episode_steps
    venv: VecEnv = vec_cls(cls(**{**env_spec.kwargs, **kwargs}), n_envs, limit)
    if seed is not None:
        venv.seed(seed)
    return venv


SCENARIOS_FORMS = (
    "gan:<folder>",
    "adversarial:<folder>",
    "real:<folder>@<k>",
    "train:<folder>",
    "null",
)
"""Allowed values of ``env.scenarios``, for messages."""

EVAL_SCENARIOS_FORMS = (
    "heldout:<folder>",
    "train:<folder>",
    "gan:<folder>",
    "real:<folder>@<k>",
    "null",
)
"""Allowed values of ``eval.scenarios``, for messages."""


def scenario_source(env: EnvConfig) -> ScenarioSource[Any] | None:
    """The scenario source ``env.scenarios`` asks for (``None``: the env's own scenario).

    ``gan:<folder>`` loads the generator a ``lepton-generate fit`` wrote into ``<folder>``:
    its codec is rebuilt on this env's own scenario (``env.kwargs.scenario``, read from the
    env built once without a source) and must be the one the generator was fitted for. The
    source draws a new scenario at each reset from the episode's random generator.

    ``adversarial:<folder>`` loads the same generator into an
    :class:`~agents.generators.adversarial.AdversarialSource`: its buffer of high-regret
    scenarios starts empty (so it draws what ``gan:<folder>`` draws) and is filled during
    training by the curriculum callback (see :func:`agents.train.run`). Its structure is the
    env's own scenario, so a model trained on the env fits the env with this source.

    ``real:<folder>@<k>`` always gives the ``k``-th real training scenario of the folder (its
    ``data.npz``, decoded by the codec) and ``train:<folder>`` draws one of the real training
    scenarios at each reset. Both keep the codec's structure, as ``gan:<folder>`` does, so
    models trained on any of the three fit each other's envs.

    Raises:
        ValueError: naming ``env.scenarios`` for an unknown form, a missing folder, a family no
            env takes, or a codec that differs from the generator's.
    """
    spec = env.scenarios
    if spec is None:
        return None
    kwargs, _ = _sharing_kwargs(env)
    return _source(spec, resolve_env_id(env), kwargs)


def _add_scenario_source(env: EnvConfig, env_id: str, kwargs: dict[str, Any]) -> None:
    if env.scenarios is not None:
        kwargs["scenario"] = _source(env.scenarios, env_id, kwargs)


def _source(spec: str, env_id: str, kwargs: dict[str, Any]) -> ScenarioSource[Any]:
    field = "env.scenarios"
    kind, folder, index = _parse_scenarios(spec, field, ("gan", "adversarial", "real", "train"))
    base = env_scenario(env_id, kwargs)
    loaded = _load(folder, base, field, env_id)
    if kind == "gan":
        return loaded.generator.as_source()
    if kind == "adversarial":
        from agents.generators.adversarial import AdversarialSource

        return AdversarialSource(loaded.generator.as_source(), structure=base, family=loaded.family)
    from agents.generators.sources import RealScenarios

    structure = loaded.codec.structure
    scenarios = _real_scenarios(loaded, "train", field)
    if kind == "real":
        return RealScenarios([_pick(scenarios, index, spec, field)], structure)
    return RealScenarios(scenarios, structure)


def eval_source(env: EnvConfig, spec: str, first_seed: int, episodes: int) -> ScenarioSource[Any]:
    """The source of an evaluation env for ``eval.scenarios=spec`` (see :func:`make_eval_env`).

    ``heldout:<folder>`` and ``train:<folder>``: the folder's held-out (or training) real
    scenarios, decoded by the codec rebuilt on the env's own scenario; evaluation episode ``k``
    gets scenario ``order[k % n]`` of a fixed seeded permutation, so every one of the ``n`` is
    used equally often (or a seeded subset once each when there are fewer episodes than
    scenarios). ``gan:<folder>``: a generated scenario drawn from the episode's generator.
    ``real:<folder>@<k>``: the ``k``-th training real scenario in every episode. The structure
    is that of the training env's source (``env.scenarios``, else the env's own scenario), so
    the spaces match the training env's.

    Raises:
        ValueError: naming ``eval.scenarios`` for an unknown form, a missing folder or a bad
            index, or ``env.scenarios`` for a bad training source.
    """
    from agents.generators.sources import EvaluationScenarios, cycle

    field = "eval.scenarios"
    kind, folder, index = _parse_scenarios(spec, field, ("heldout", "train", "gan", "real"))
    env_id = resolve_env_id(env)
    kwargs, _ = _sharing_kwargs(env)
    training = (
        _source(env.scenarios, env_id, kwargs) if env.scenarios else _own_source(env_id, kwargs)
    )
    loaded = _load(folder, env_scenario(env_id, kwargs, field), field, env_id)
    draw: Callable[[int, np.random.Generator], Any]
    if kind == "gan":
        generator = loaded.generator
        draw = lambda k, rng: generator.sample(1, rng)[0]  # noqa: E731
    else:
        scenarios = _real_scenarios(loaded, "held_out" if kind == "heldout" else "train", field)
        if kind == "real":
            scenarios = [_pick(scenarios, index, spec, field)]
        draw = cycle(scenarios)
    return EvaluationScenarios(draw, first_seed, episodes, training, training.structure)


def _parse_scenarios(spec: str, field: str, kinds: tuple[str, ...]) -> tuple[str, str, int | None]:
    """``(kind, folder, index)`` of ``<kind>:<folder>`` or ``real:<folder>@<k>``."""
    forms = SCENARIOS_FORMS if field == "env.scenarios" else EVAL_SCENARIOS_FORMS
    kind, sep, rest = spec.partition(":")
    if kind not in kinds or not sep or not rest:
        raise ValueError(f"{field}: {spec!r} is not allowed; allowed: {', '.join(forms)}")
    if kind != "real":
        return kind, rest, None
    sep_at = max(rest.rfind("@"), rest.rfind("#"))  # '#' needs quoting on Hydra's command line
    folder, text = rest[:sep_at], rest[sep_at + 1 :]
    if sep_at < 1 or not text.isdigit():
        raise ValueError(
            f"{field}: {spec!r} needs the index of a training real scenario, "
            f"real:<folder>@<k> with k = 0, 1, ... (e.g. real:{folder or rest}@0); "
            f"allowed: {', '.join(forms)}"
        )
    return kind, folder, int(text)


def _load(folder: str, base: Any, field: str, env_id: str) -> Any:
    from agents.generate import load_generator

    return load_generator(folder, base=base, field=field, env_label=env_id)


def _real_scenarios(loaded: Any, part: str, field: str) -> list[Any]:
    from agents.generators.sources import decode_all

    train, held = loaded.real_features()
    features = held if part == "held_out" else train
    return decode_all(loaded.codec, features, field, f"{loaded.folder} {part}")


def _pick(scenarios: list[Any], index: int | None, spec: str, field: str) -> Any:
    assert index is not None
    if index >= len(scenarios):
        raise ValueError(
            f"{field}: {spec!r}: the folder holds {len(scenarios)} training real scenarios; "
            f"k must be in 0..{len(scenarios) - 1}"
        )
    return scenarios[index]


def _own_source(
    env_id: str,
    kwargs: dict[str, Any],
    field: str = "eval.scenarios",
    purpose: str = "be evaluated on other scenarios",
) -> ScenarioSource[Any]:
    """The scenario source of the env built without ``env.scenarios``.

    Raises:
        ValueError: naming ``field`` when the env has no scenario source (not a Lepton Gym
            env), saying what it then cannot ``purpose``.
    """
    probe = lepton_envs.make(env_id, **kwargs)
    try:
        source = getattr(probe.unwrapped, "source", None)
        if not isinstance(source, ScenarioSource):
            raise ValueError(
                f"{field}: {env_id} takes no scenario source (not a Lepton Gym env), so it "
                f"cannot {purpose}"
            )
        return source
    finally:
        probe.close()


def env_scenario(env_id: str, kwargs: dict[str, Any], field: str = "env.scenarios") -> Any:
    """The base scenario of an env: ``unwrapped.source.structure`` of it built once.

    Raises:
        ValueError: naming ``field`` when the env has no scenario source (not a Lepton Gym
            env).
    """
    return _own_source(env_id, kwargs, field, "take generated scenarios").structure


def _sharing_kwargs(env: EnvConfig) -> tuple[dict[str, Any], bool]:
    """The constructor arguments of ``env`` without ``parameter_sharing``, and its value."""
    kwargs = env_kwargs(env)
    sharing = kwargs.pop(PARAMETER_SHARING, None)
    if sharing is None:  # the env configs declare it as null: no sharing
        sharing = False
    if not isinstance(sharing, bool):
        raise ValueError(f"env.kwargs.{PARAMETER_SHARING}: expected true or false, got {sharing!r}")
    return kwargs, sharing


def wants_normalization(normalize: NormalizeConfig | None) -> bool:
    """Whether ``normalize`` asks for a ``VecNormalize`` wrapper."""
    return normalize is not None and (normalize.obs or normalize.reward)


def make_training_env(
    env: EnvConfig,
    n_envs: int,
    seed: int,
    normalize: NormalizeConfig | None,
    gamma: float,
) -> VecEnv:
    """Training env: the batched env in ``VecMonitor`` (raw episode returns for the logs).

    With observation or reward normalisation the monitor is wrapped in ``VecNormalize``
    (statistics updated during training, saved next to the model).

    Args:
        env: the environment config.
        n_envs: number of replicas.
        seed: replica ``i`` starts with seed ``seed + i``.
        normalize: normalisation settings of the agent (``None``: none).
        gamma: discount of the agent (for reward scaling).
    """
    venv: VecEnv = VecMonitor(make_vec_env(env, n_envs, seed=seed))
    if normalize is not None and wants_normalization(normalize):
        venv = VecNormalize(
            venv,
            training=True,
            norm_obs=normalize.obs,
            norm_reward=normalize.reward,
            clip_obs=normalize.clip_obs,
            clip_reward=normalize.clip_reward,
            gamma=gamma,
        )
    return venv


def evaluation_env(
    env: EnvConfig, ev: EvalConfig, episodes: int, training_env: VecEnv, first_seed: int
) -> VecEnv:
    """A batched env for ``episodes`` evaluation episodes, normalised like ``training_env``.

    Its scenarios are ``ev.scenarios`` (see :func:`make_eval_env`); observations are normalised
    with ``training_env``'s statistics (frozen) when it is a ``VecNormalize``.
    """
    venv = make_eval_env(env, ev, min(episodes, ev.batch_size), first_seed)
    if isinstance(training_env, VecNormalize):
        return frozen_normalization(venv, training_env)
    return venv


def frozen_normalization(venv: VecEnv, like: VecNormalize) -> VecNormalize:
    """Wrap ``venv`` in a ``VecNormalize`` that applies ``like``'s settings without updating.

    Rewards stay raw so evaluation reports true returns; :func:`sync_normalization` copies the
    running statistics in before each evaluation.
    """
    frozen = VecNormalize(
        venv,
        training=False,
        norm_obs=like.norm_obs,
        norm_reward=False,
        clip_obs=like.clip_obs,
        clip_reward=like.clip_reward,
        gamma=like.gamma,
        epsilon=like.epsilon,
    )
    sync_normalization(like, frozen)
    return frozen


def sync_normalization(source: VecNormalize, target: VecNormalize) -> None:
    """Copy the observation statistics of ``source`` into ``target``."""
    target.obs_rms = source.obs_rms.copy()
    target.ret_rms = source.ret_rms.copy()


def load_normalization(path: str | Path, venv: VecEnv) -> VecNormalize:
    """Load saved ``VecNormalize`` statistics around ``venv``, frozen and with raw rewards.

    Raises:
        ValueError: if the statistics were saved for another observation or action space.
    """
    try:
        stats = VecNormalize.load(str(path), venv)
    except AssertionError as exc:  # SB3 checks the observation shape with an assert
        raise ValueError(
            f"the normalisation statistics {str(path)!r} were saved for another observation "
            f"space than the env's {venv.observation_space}: {exc}"
        ) from exc
    if stats.action_space != venv.action_space:  # the wrapper keeps the pickled spaces
        raise ValueError(
            f"the normalisation statistics {str(path)!r} were saved for the action space "
            f"{stats.action_space}, but the env acts in {venv.action_space}"
        )
    stats.training = False
    stats.norm_reward = False
    return stats


def load_normalization_stats(path: str | Path, into: VecNormalize) -> None:
    """Load the statistics saved at ``path`` into the training wrapper ``into`` (resume)."""
    saved = VecNormalize.load(str(path), into.venv)
    into.obs_rms = saved.obs_rms
    into.ret_rms = saved.ret_rms


def normalization_path(model_path: str | Path) -> Path:
    """Where the normalisation statistics of the model at ``model_path`` are stored.

    A checkpoint ``<prefix>_<n>_steps.zip`` (``checkpoints/model_<n>_steps.zip``, see
    :mod:`agents.checkpoints`) has its own, ``<prefix>_vecnormalize_<n>_steps.pkl`` next to it;
    any other model (``model.zip``), or a run folder, the run's ``vecnormalize.pkl``.
    """
    path = Path(model_path)
    if path.is_dir():
        return path / VECNORMALIZE_FILE
    checkpoint = CHECKPOINT_MODEL.match(path.name)
    if checkpoint is not None:
        prefix, steps = checkpoint["prefix"], checkpoint["steps"]
        return path.with_name(f"{prefix}_vecnormalize_{steps}_steps.pkl")
    return path.with_name(VECNORMALIZE_FILE)


def saved_normalization(
    model_path: str | Path,
    normalized: bool | None,
    run_config: str | Path | None = None,
    field: str = "model_path",
) -> Path | None:
    """The normalisation statistics to load for the model at ``model_path``.

    Args:
        model_path: the model file.
        normalized: whether the model was trained with observation normalisation (its run's
            ``agent.normalize.obs``); ``None`` when that is unknown (no run config).
        run_config: the run's ``config.yaml`` that says so, for the message.
        field: config field named in messages.

    Returns:
        The statistics file (see :func:`normalization_path`), or ``None`` when there is none;
        a warning is logged when ``normalized`` is unknown.

    Raises:
        FileNotFoundError: naming ``field`` and the missing file when ``normalized`` is true:
            the policy would act on observations it was never trained on.
    """
    stats = normalization_path(model_path)
    if stats.is_file():
        return stats
    if normalized:
        where = str(run_config) if run_config is not None else "its run's config.yaml"
        raise FileNotFoundError(
            f"{field}: {str(model_path)!r} was trained with observation normalisation "
            f"(agent.normalize.obs=true in {where}) but its statistics "
            f"{str(stats)!r} are missing; without them the policy sees observations it was "
            f"never trained on (lepton-train saves {VECNORMALIZE_FILE} next to model.zip and "
            "model_vecnormalize_<n>_steps.pkl next to each checkpoint)"
        )
    if normalized is None:
        log.warning(
            "%s: found no config.yaml of the run that saved %s, so whether it needs "
            "normalisation statistics is unknown; acting without them (none at %s)",
            field,
            model_path,
            stats,
        )
    return None


def make_single_env(
    env: EnvConfig,
    render_mode: str | None = None,
    *,
    ev: EvalConfig | None = None,
    first_seed: int = 0,
) -> gym.Env[Any, Any]:
    """A single Gymnasium env (with the registered wrappers), e.g. for rendering.

    With ``ev.scenarios`` set, episodes seeded ``first_seed`` to ``first_seed + ev.episodes - 1``
    run on the evaluation scenarios, as in :func:`make_eval_env`; other seeds draw from the
    training env's source.
    """
    env_id = resolve_env_id(env)
    kwargs, _ = _sharing_kwargs(env)
    if ev is not None and ev.scenarios is not None:
        kwargs["scenario"] = eval_source(env, ev.scenarios, first_seed, ev.episodes)
    else:
        _add_scenario_source(env, env_id, kwargs)
    return lepton_envs.make(env_id, render_mode=render_mode, **kwargs)
