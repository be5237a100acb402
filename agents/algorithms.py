"""Stable-Baselines3 algorithms built from agent configs, with action-space checks.

Also where a saved model lives: :func:`model_file` turns a run folder into its ``model.zip``
and :func:`run_config_path` finds the ``config.yaml`` of the run that wrote a model (next to
it, or one level up for a checkpoint in ``<run folder>/checkpoints/``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from agents.checkpoints import CHECKPOINT_DIR
from agents.runs import CONFIG_FILE
from conf.schema import (
    Activation,
    AgentConfig,
    OffPolicyConfig,
    PretrainedFields,
    SACConfig,
    SB3AgentConfig,
    Schedule,
    TD3Config,
)

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "dqn": DQN,
    "sac": SAC,
    "td3": TD3,
}
"""SB3 algorithm class of every ``agent.algo``."""

ACTION_SPACES: dict[str, tuple[type[spaces.Space[Any]], ...]] = {
    "ppo": (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
    "a2c": (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
    "dqn": (spaces.Discrete,),
    "sac": (spaces.Box,),
    "td3": (spaces.Box,),
}
"""Action spaces each algorithm supports."""

MODEL_FILE = "model.zip"
"""Name of the model ``lepton-train`` saves in its run folder."""

MODEL_FORMS = (
    "<run folder>/model.zip",
    f"<run folder>/{CHECKPOINT_DIR}/model_<n>_steps.zip",
    "<run folder>",
)
"""What a saved model may be given as, for messages."""

ACTIVATIONS: dict[Activation, type[nn.Module]] = {
    Activation.tanh: nn.Tanh,
    Activation.relu: nn.ReLU,
    Activation.elu: nn.ELU,
    Activation.leaky_relu: nn.LeakyReLU,
}

_ON_POLICY = ("ppo", "a2c")
_NOT_ALGORITHM_ARGS = {
    "name",
    "algo",
    "policy",
    "normalize",
    "policy_kwargs",
    "lr_schedule",
    *(f.name for f in dataclasses.fields(PretrainedFields)),
}


class IncompatibleAgentError(ValueError):
    """The agent cannot act in the environment's action space."""


def available_devices() -> list[str]:
    """The torch devices this machine can run on (``auto`` and ``cpu`` always)."""
    found = ["auto", "cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        found += ["cuda", *(f"cuda:{i}" for i in range(count))]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def check_device(device: str, field: str = "device") -> None:
    """Raise unless this machine has ``device``, naming ``field`` and the devices it has.

    ``auto`` takes CUDA when available and the CPU otherwise; a device named explicitly
    (``cuda``, ``cuda:<index>``, ``mps``) must exist: SB3 would otherwise train on the CPU
    without a word (``cuda``) or fail deep inside torch (``cuda:<index>``, ``mps``).
    """
    if device in ("auto", "cpu"):
        return
    has = available_devices()
    if device in has:
        return
    cuda = device.split(":")[0] == "cuda"
    if cuda and torch.cuda.is_available():
        why = f"this machine has {torch.cuda.device_count()} CUDA device(s)"
    elif cuda:
        build = f"torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}"
        why = f"torch sees no CUDA device on this machine ({build})"
    elif device == "mps":
        why = "torch has no MPS (Apple GPU) backend on this machine"
    else:
        why = "torch does not know this device"
    raise ValueError(f"{field}: {device!r} is not available: {why}; allowed here: {', '.join(has)}")


def algorithm_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class of ``algo``; raises naming ``agent.algo`` and the allowed values."""
    try:
        return ALGORITHMS[algo]
    except KeyError:
        raise ValueError(
            f"agent.algo: unknown algorithm {algo!r}; allowed values: {sorted(ALGORITHMS)}"
        ) from None


def agents_that_fit(action_space: spaces.Space[Any]) -> list[str]:
    """The algorithms that support ``action_space``."""
    return [name for name, kinds in ACTION_SPACES.items() if isinstance(action_space, kinds)]


def check_action_space(
    agent: SB3AgentConfig,
    action_space: spaces.Space[Any],
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
) -> None:
    """Raise :class:`IncompatibleAgentError` if ``agent`` cannot act in ``action_space``.

    The message names the algorithm, the space, the algorithms that fit, and the env's
    ``action_mode`` when it has one (it decides the action space of the supply chain).
    """
    cls = algorithm_class(agent.algo)
    kinds = ACTION_SPACES[agent.algo]
    if isinstance(action_space, kinds):
        return
    needs = " or ".join(k.__name__ for k in kinds)
    fits = agents_that_fit(action_space)
    mode = (env_kwargs or {}).get("action_mode")
    hint = f" (env.kwargs.action_mode={mode!r})" if mode is not None else ""
    raise IncompatibleAgentError(
        f"agent {agent.name!r} ({cls.__name__}) needs a {needs} action space, but {env_id}"
        f"{hint} has {action_space}; agents that fit this env: "
        f"{', '.join(fits) if fits else 'none of the SB3 algorithms'} "
        "(the family's baselines act in any action mode)"
    )


def policies_that_fit(observation_space: spaces.Space[Any]) -> list[str]:
    """The SB3 policies (``agent.policy``) that can read ``observation_space``.

    ``MultiInputPolicy`` reads ``Dict`` observations and only those; ``CnnPolicy`` reads images
    (a 3-D ``uint8`` ``Box`` in [0, 255], channels first or last); ``MlpPolicy`` any other.
    """
    if isinstance(observation_space, spaces.Dict):
        return ["MultiInputPolicy"]
    if is_image_space(observation_space, check_channels=False):
        return ["MlpPolicy", "CnnPolicy"]
    return ["MlpPolicy"]


def check_policy(agent: SB3AgentConfig, observation_space: spaces.Space[Any], env_id: str) -> None:
    """Raise unless ``agent.policy`` can read ``observation_space``, before a model is built.

    SB3 would otherwise fail deep inside the policy's feature extractor.

    Raises:
        ValueError: naming ``agent.policy``, the observation space and its shape, and the
            policies that fit it.
    """
    fits = policies_that_fit(observation_space)
    if agent.policy in fits:
        return
    needs = {
        "CnnPolicy": "image observations (a 3-D uint8 Box in [0, 255])",
        "MultiInputPolicy": "Dict observations",
    }.get(agent.policy, "observations that are not a Dict")
    if isinstance(observation_space, spaces.Dict):
        observes = f"Dict observations with keys {list(observation_space.spaces)}"
    else:
        kind, dtype = type(observation_space).__name__, observation_space.dtype
        observes = f"{kind} observations of shape {observation_space.shape} ({dtype})"
    raise ValueError(
        f"agent.policy: {agent.policy!r} needs {needs}, but {env_id} observes {observes}; "
        f"allowed for this env: {', '.join(fits)} (MlpPolicy for flat observations, "
        "MultiInputPolicy for Dict ones)"
    )


def _learning_rate(agent: SB3AgentConfig) -> Any:
    if agent.lr_schedule == Schedule.linear:
        return LinearSchedule(agent.learning_rate, 0.0, 1.0)
    return agent.learning_rate


def _number_or_auto(field: str, value: str) -> float | str:
    if value == "auto" or value.startswith("auto_"):
        return value
    try:
        return float(value)
    except ValueError:
        raise ValueError(
            f"agent.{field}: expected a number, 'auto' or 'auto_<initial value>', got {value!r}"
        ) from None


def algorithm_kwargs(agent: SB3AgentConfig, action_space: spaces.Space[Any]) -> dict[str, Any]:
    """Constructor arguments of the SB3 algorithm for ``agent`` (besides policy, env, seed).

    Every hyperparameter field of the agent's schema is passed under its own name; the
    network goes into ``policy_kwargs``, the schedule into ``learning_rate``, SAC's
    ``ent_coef``/``target_entropy`` become numbers unless ``auto`` and TD3's
    ``action_noise_std`` becomes Gaussian action noise.
    """
    kwargs = {
        f.name: getattr(agent, f.name)
        for f in dataclasses.fields(agent)
        if f.name not in _NOT_ALGORITHM_ARGS
    }
    kwargs["learning_rate"] = _learning_rate(agent)
    net = agent.policy_kwargs
    policy_kwargs: dict[str, Any] = {
        "net_arch": list(net.net_arch),
        "activation_fn": ACTIVATIONS[net.activation_fn],
    }
    if agent.algo in _ON_POLICY:
        policy_kwargs["ortho_init"] = net.ortho_init
        if isinstance(action_space, spaces.Box):
            policy_kwargs["log_std_init"] = net.log_std_init
    kwargs["policy_kwargs"] = policy_kwargs
    if isinstance(agent, SACConfig):
        kwargs["ent_coef"] = _number_or_auto("ent_coef", agent.ent_coef)
        kwargs["target_entropy"] = _number_or_auto("target_entropy", agent.target_entropy)
    if isinstance(agent, TD3Config):
        std = kwargs.pop("action_noise_std")
        if std < 0:
            raise ValueError(f"agent.action_noise_std: must be >= 0, got {std}")
        if std > 0:
            shape = action_space.shape or (1,)
            kwargs["action_noise"] = NormalActionNoise(np.zeros(shape), np.full(shape, std))
    if isinstance(agent, OffPolicyConfig) and agent.buffer_size < agent.batch_size:
        raise ValueError(
            f"agent.buffer_size: must be >= agent.batch_size={agent.batch_size}, "
            f"got {agent.buffer_size}"
        )
    return kwargs


def as_sb3_agent(agent: AgentConfig, purpose: str) -> SB3AgentConfig:
    """``agent`` as an SB3 agent config, or a clear error when it is a baseline.

    Args:
        agent: the composed agent.
        purpose: what needs an SB3 agent, for the message (``"training"``).
    """
    if not isinstance(agent, SB3AgentConfig):
        raise ValueError(
            f"agent={agent.name}: {purpose} needs an SB3 algorithm "
            f"({', '.join(sorted(ALGORITHMS))}); baselines are fitted, not trained "
            f"(evaluate them with `lepton-evaluate agent={agent.name}`)"
        )
    return agent


def build_model(
    agent: SB3AgentConfig,
    venv: VecEnv,
    *,
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    seed: int,
    device: str = "cpu",
    verbose: int = 0,
) -> BaseAlgorithm:
    """Build the SB3 algorithm of ``agent`` on ``venv``.

    Args:
        agent: the agent config (``agent.algo`` selects the class).
        venv: the training env.
        env_id: id of the env, for error messages.
        env_kwargs: the env's constructor arguments, for error messages.
        seed: seeds the algorithm (networks, action sampling) and the env's replicas.
        device: torch device.
        verbose: SB3 verbosity.

    Raises:
        IncompatibleAgentError: if the algorithm does not support the env's action space.
        ValueError: naming ``agent.policy`` when the policy cannot read the env's observations
            (:func:`check_policy`), or ``device`` when this machine does not have it.
    """
    check_action_space(agent, venv.action_space, env_id, env_kwargs)
    check_policy(agent, venv.observation_space, env_id)
    check_device(device)
    cls = algorithm_class(agent.algo)
    return cls(
        agent.policy,
        venv,
        seed=seed,
        device=device,
        verbose=verbose,
        **algorithm_kwargs(agent, venv.action_space),
    )


def model_file(model_path: str | Path, field: str = "model_path") -> Path:
    """The model file of ``model_path``: the file itself, or the ``model.zip`` of a run folder.

    Raises:
        FileNotFoundError: naming ``field`` and the allowed forms when there is no such file.
    """
    path = Path(model_path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        what = f" (a folder without {MODEL_FILE})" if Path(model_path).is_dir() else ""
        raise FileNotFoundError(
            f"{field}: no model at {str(model_path)!r}{what}; allowed: {', '.join(MODEL_FORMS)}"
        )
    return path


def run_config_path(model: str | Path) -> Path | None:
    """The ``config.yaml`` of the run that saved ``model`` (a model file), ``None`` if none.

    It is next to the model, or in the run folder above it for a checkpoint (a model in the
    run's ``checkpoints/`` folder).
    """
    folder = Path(model).parent
    candidates = [folder / CONFIG_FILE]
    if folder.name == CHECKPOINT_DIR:
        candidates.append(folder.parent / CONFIG_FILE)
    return next((path for path in candidates if path.is_file()), None)


def load_model(
    agent: SB3AgentConfig, model_path: str | Path, venv: VecEnv | None, device: str = "cpu"
) -> BaseAlgorithm:
    """Load a model saved by ``lepton-train`` with the class of ``agent.algo``.

    Args:
        agent: the agent config (``agent.algo`` selects the class).
        model_path: a model file, or a run folder holding ``model.zip`` (see :func:`model_file`).
        venv: the env the model will act in (its spaces are checked), or ``None``.
        device: torch device.

    Raises:
        FileNotFoundError: naming ``model_path`` when there is no such file.
        ValueError: when the model's spaces differ from ``venv``'s, naming both, or naming
            ``device`` when this machine does not have it.
    """
    check_device(device)
    path = model_file(model_path)
    cls = algorithm_class(agent.algo)
    try:
        return cls.load(str(path), env=venv, device=device)
    except ValueError as exc:
        what = f"model_path: {str(path)!r}"
        if isinstance(agent, PretrainedFields):
            what = f"agent={agent.name}: the pretrained model {str(path)!r}"
        raise ValueError(
            f"{what} does not fit the configured env "
            f"(trained on another env or observation/action mode?): {exc}"
        ) from exc
