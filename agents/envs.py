"""Environment construction for training, evaluation and rendering from an env config."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

import envs as lepton_envs
from agents.config import env_kwargs
from conf.schema import EnvConfig, NormalizeConfig
from envs.core.sb3 import make_sb3_vec_env
from envs.core.scenario import ScenarioSource

VECNORMALIZE_FILE = "vecnormalize.pkl"
"""Name of the normalisation statistics saved next to a model."""


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
    if not (sharing and allow_sharing):
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
    venv: VecEnv = vec_cls(cls(**{**env_spec.kwargs, **kwargs}), n_envs, env_spec.max_episode_steps)
    if seed is not None:
        venv.seed(seed)
    return venv


SCENARIOS_FORMS = ("gan:<folder>", "adversarial:<folder>", "null")
"""Allowed values of ``env.scenarios``, for messages."""


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
    kind, sep, rest = spec.partition(":")
    if kind not in ("gan", "adversarial") or not sep or not rest:
        raise ValueError(
            f"env.scenarios: {spec!r} is not allowed; allowed: {', '.join(SCENARIOS_FORMS)}"
        )
    from agents.generate import load_generator

    base = env_scenario(env_id, kwargs)
    loaded = load_generator(rest, base=base, field="env.scenarios", env_label=env_id)
    if kind == "gan":
        return loaded.generator.as_source()
    from agents.generators.adversarial import AdversarialSource

    return AdversarialSource(loaded.generator.as_source(), structure=base)


def env_scenario(env_id: str, kwargs: dict[str, Any], field: str = "env.scenarios") -> Any:
    """The base scenario of an env: ``unwrapped.source.structure`` of it built once.

    Raises:
        ValueError: naming ``field`` when the env has no scenario source (not a Lepton Gym
            env).
    """
    probe = lepton_envs.make(env_id, **kwargs)
    try:
        source = getattr(probe.unwrapped, "source", None)
        if not isinstance(source, ScenarioSource):
            raise ValueError(
                f"{field}: {env_id} takes no scenario source (not a Lepton Gym env), so it "
                "cannot take generated scenarios"
            )
        return source.structure
    finally:
        probe.close()


def _sharing_kwargs(env: EnvConfig) -> tuple[dict[str, Any], bool]:
    """The constructor arguments of ``env`` without ``parameter_sharing``, and its value."""
    kwargs = env_kwargs(env)
    sharing = kwargs.pop(PARAMETER_SHARING, False)
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
        ValueError: if the statistics were saved for another observation space.
    """
    stats = VecNormalize.load(str(path), venv)
    stats.training = False
    stats.norm_reward = False
    return stats


def load_normalization_stats(path: str | Path, into: VecNormalize) -> None:
    """Load the statistics saved at ``path`` into the training wrapper ``into`` (resume)."""
    saved = VecNormalize.load(str(path), into.venv)
    into.obs_rms = saved.obs_rms
    into.ret_rms = saved.ret_rms


def normalization_path(model_path: str | Path) -> Path:
    """Where the normalisation statistics of the model at ``model_path`` are stored."""
    return Path(model_path).with_name(VECNORMALIZE_FILE)


def make_single_env(env: EnvConfig, render_mode: str | None = None) -> gym.Env[Any, Any]:
    """A single Gymnasium env (with the registered wrappers), e.g. for rendering."""
    env_id = resolve_env_id(env)
    kwargs, _ = _sharing_kwargs(env)
    _add_scenario_source(env, env_id, kwargs)
    return lepton_envs.make(env_id, render_mode=render_mode, **kwargs)
