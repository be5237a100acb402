"""Typed access to composed configurations, and the seeds every run derives from them.

:func:`as_config` is where every tool (``lepton-train``, ``-evaluate``, ``-render``, ``-tune``,
``-transfer``) turns the composed configuration into its schema. Composition checks keys and
types; :func:`as_config` adds the keys appended with ``+`` (:func:`unknown_keys`) and the
ranges of numeric and textual fields (:data:`RULES`, :func:`out_of_range`), so a bad value
fails before anything is built, naming the field and what it allows.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from conf.schema import (
    A2CConfig,
    DQNConfig,
    EnvConfig,
    EvalConfig,
    EvaluateConfig,
    InventoryKwargs,
    NormalizeConfig,
    OffPolicyConfig,
    PolicyKwargsConfig,
    PPOConfig,
    PrunerConfig,
    RenderConfig,
    SACConfig,
    SB3AgentConfig,
    StudyConfig,
    TD3Config,
    TrainConfig,
)
from envs.core.registry import suggest

ConfigT = TypeVar("ConfigT", bound=TrainConfig)


def as_config(cfg: DictConfig | TrainConfig, schema: type[ConfigT]) -> ConfigT:
    """Return ``cfg`` as an instance of the root ``schema`` (interpolations resolved).

    Args:
        cfg: a configuration composed from ``conf/`` (or an instance of the schema).
        schema: the expected root schema (``TrainConfig``, ``EvaluateConfig``, ...).

    Raises:
        TypeError: if ``cfg`` was not composed from ``schema`` (e.g. a train config given to
            the renderer).
        KeyError: naming keys the schemas do not declare (added with Hydra's ``+key=value``).
        omegaconf.errors.MissingMandatoryValue: naming a required key left unset (``???``).
        ValueError: naming every field whose value lies outside its range (:data:`RULES`),
            with the range and the value, e.g. ``agent.gamma: must be in [0, 1], got 2``.
    """
    if isinstance(cfg, DictConfig):
        extra = unknown_keys(cfg)
        if extra:
            raise KeyError("; ".join(extra))
    obj = OmegaConf.to_object(cfg) if isinstance(cfg, DictConfig) else cfg
    if not isinstance(obj, schema):
        raise TypeError(
            f"expected a configuration composed with the {schema.__name__} schema, got "
            f"{type(obj).__name__}; compose it from conf/ (e.g. config_name='config')"
        )
    problems = out_of_range(obj)
    if problems:
        raise ValueError("; ".join(problems))
    return obj


def unknown_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Describe every key of ``node`` that its dataclass schema does not declare.

    Composition rejects misspelt keys, but Hydra's append syntax (``+agent.learning_rat=1``)
    adds keys to structured configs on purpose; this finds them before anything runs.

    Returns:
        One message per unknown key, naming the key, the declared keys and the closest ones.
    """
    schema = OmegaConf.get_type(node)
    declared = None
    if isinstance(schema, type) and dataclasses.is_dataclass(schema):
        declared = [f.name for f in dataclasses.fields(schema)]
    found: list[str] = []
    for key, value in node.items_ex(resolve=False):
        path = prefix + str(key)
        if declared is not None and key not in declared:
            assert isinstance(schema, type)
            found.append(
                f"{path}: not a key of {schema.__name__}; allowed: {declared}."
                f"{suggest(str(key), declared)}"
            )
        elif isinstance(value, DictConfig) and _holds_keys(node, str(key)):
            found += unknown_keys(value, f"{path}.")
    return found


def _holds_keys(parent: DictConfig, key: str) -> bool:
    """Whether ``parent[key]`` holds keys (is not ``None``, ``???`` or an interpolation)."""
    if OmegaConf.is_missing(parent, key) or OmegaConf.is_interpolation(parent, key):
        return False
    return OmegaConf.get_type(parent, key) is not None


# --- ranges ------------------------------------------------------------------------------------

SEED_MAX = 2**32 - 1
"""Largest seed numpy's legacy generators take (SB3's ``set_random_seed``, Optuna's samplers)."""

Rule = Callable[[Any], str | None]
"""Checks one field's value: ``None`` when allowed, else what it must be (``must be >= 1``)."""


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


@dataclasses.dataclass(frozen=True)
class Interval:
    """A finite number in a range.

    ``Interval(0, 1)`` is [0, 1], ``Interval(0, open_low=True)`` is > 0 and ``Interval()`` any
    finite number.
    """

    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False

    def __call__(self, value: Any) -> str | None:
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return None if math.isfinite(value) and above and below else f"must be {self}"

    def __str__(self) -> str:
        low = f"{'>' if self.open_low else '>='} {_number(self.low)}"
        high = f"{'<' if self.open_high else '<='} {_number(self.high)}"
        if math.isinf(self.low) and math.isinf(self.high):
            return "a finite number"
        if math.isinf(self.high):
            return low
        if math.isinf(self.low):
            return high
        return (
            f"in {'(' if self.open_low else '['}{_number(self.low)}, "
            f"{_number(self.high)}{')' if self.open_high else ']'}"
        )


AT_LEAST_0 = Interval(0)
AT_LEAST_1 = Interval(1)
POSITIVE = Interval(0, open_low=True)
UNIT = Interval(0, 1)
SEED = Interval(0, SEED_MAX)
DEVICES = "auto, cpu, cuda, cuda:<index> (e.g. cuda:0) or mps"


def _device(value: str) -> str | None:
    """A device torch and SB3 take (``auto``: CUDA when available, else the CPU)."""
    if re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        return None
    return f"must be {DEVICES}"


SB3_POLICIES = ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")
"""The policy names every SB3 algorithm of :data:`conf.schema.AGENT_SCHEMAS` takes (its
``policy_aliases``): flat observations, images and ``Dict`` observations."""


def _policy(value: str) -> str | None:
    return None if value in SB3_POLICIES else f"must be one of {list(SB3_POLICIES)}"


def _layer_sizes(value: list[int]) -> str | None:
    return None if all(size >= 1 for size in value) else "every layer size must be >= 1"


def _gradient_steps(value: int) -> str | None:
    return None if value == -1 or value >= 1 else "must be >= 1, or -1 (one per env step)"


def _float_or_none(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _sac_ent_coef(value: str) -> str | None:
    """SAC's entropy coefficient: a number >= 0, ``auto`` or ``auto_<initial value > 0>``."""
    if value == "auto":
        return None
    if value.startswith("auto_"):
        initial = _float_or_none(value[len("auto_") :])
        if initial is not None and initial > 0:
            return None
    else:
        number = _float_or_none(value)
        if number is not None and number >= 0:
            return None
    return "must be a number >= 0, 'auto' or 'auto_<initial value > 0>' (e.g. auto_0.1)"


def _number_or_auto(value: str) -> str | None:
    if value == "auto" or _float_or_none(value) is not None:
        return None
    return "must be a finite number or 'auto'"


RULES: dict[type, dict[str, Rule]] = {
    TrainConfig: {
        "seed": SEED,
        "total_timesteps": AT_LEAST_1,
        "n_envs": AT_LEAST_1,
        "device": _device,
        "torch_threads": AT_LEAST_1,
        "checkpoint_freq": AT_LEAST_0,
        "verbose": Interval(0, 2),
    },
    EvaluateConfig: {"episodes": AT_LEAST_1},
    RenderConfig: {"fps": AT_LEAST_1},
    EvalConfig: {
        "episodes": AT_LEAST_1,
        "seed_offset": AT_LEAST_0,
        "eval_freq": AT_LEAST_0,
        "curve_episodes": AT_LEAST_1,
        "fit_episodes": AT_LEAST_1,
        "batch_size": AT_LEAST_1,
    },
    InventoryKwargs: {"order_levels": Interval(2)},
    SB3AgentConfig: {"policy": _policy, "learning_rate": POSITIVE, "gamma": UNIT},
    NormalizeConfig: {"clip_obs": POSITIVE, "clip_reward": POSITIVE},
    PolicyKwargsConfig: {"net_arch": _layer_sizes, "log_std_init": Interval()},
    PPOConfig: {
        "n_steps": AT_LEAST_1,
        "batch_size": AT_LEAST_1,
        "n_epochs": AT_LEAST_1,
        "gae_lambda": UNIT,
        "clip_range": POSITIVE,
        "ent_coef": AT_LEAST_0,
        "vf_coef": AT_LEAST_0,
        "max_grad_norm": POSITIVE,
        "target_kl": POSITIVE,
    },
    A2CConfig: {
        "n_steps": AT_LEAST_1,
        "gae_lambda": UNIT,
        "ent_coef": AT_LEAST_0,
        "vf_coef": AT_LEAST_0,
        "max_grad_norm": POSITIVE,
        "rms_prop_eps": POSITIVE,
    },
    OffPolicyConfig: {
        "buffer_size": AT_LEAST_1,
        "learning_starts": AT_LEAST_0,
        "batch_size": AT_LEAST_1,
        "tau": Interval(0, 1, open_low=True),
        "train_freq": AT_LEAST_1,
        "gradient_steps": _gradient_steps,
    },
    DQNConfig: {
        "target_update_interval": AT_LEAST_1,
        "exploration_fraction": Interval(0, 1, open_low=True),
        "exploration_initial_eps": UNIT,
        "exploration_final_eps": UNIT,
        "max_grad_norm": POSITIVE,
    },
    SACConfig: {
        "ent_coef": _sac_ent_coef,
        "target_entropy": _number_or_auto,
        "target_update_interval": AT_LEAST_1,
    },
    TD3Config: {
        "policy_delay": AT_LEAST_1,
        "target_policy_noise": AT_LEAST_0,
        "target_noise_clip": AT_LEAST_0,
        "action_noise_std": AT_LEAST_0,
    },
    StudyConfig: {
        "n_trials": AT_LEAST_1,
        "timeout": POSITIVE,
        "startup_trials": AT_LEAST_0,
        "sampler_seed": SEED,
    },
    PrunerConfig: {"startup_trials": AT_LEAST_0, "warmup_steps": AT_LEAST_0},
}
"""Schema -> field -> the values it allows; a schema's rules apply to its subclasses too.

``null`` passes every rule (optional fields). Fields of other schemas are checked where they
are used (``transfer``'s own by :mod:`agents.transfer`, ``adversarial`` by the curriculum).
"""


def out_of_range(obj: Any, prefix: str = "") -> list[str]:
    """Describe every field of the dataclass ``obj`` (nested ones included) that breaks its rule.

    Returns:
        One message per field, naming its full key, what it must be and the value:
        ``agent.gamma: must be in [0, 1], got 2``.
    """
    rules: dict[str, Rule] = {}
    for cls in reversed(type(obj).__mro__):
        rules.update(RULES.get(cls, {}))
    found: list[str] = []
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        path = prefix + field.name
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            found += out_of_range(value, f"{path}.")
            continue
        rule = rules.get(field.name)
        problem = None if rule is None or value is None else rule(value)
        if problem is not None:
            shown = _number(value) if isinstance(value, float) else repr(value)
            found.append(f"{path}: {problem}, got {shown}")
    if isinstance(obj, TrainConfig) and not found:
        found += _ppo_advantage_batches(obj)
    return found


def _ppo_advantage_batches(config: TrainConfig) -> list[str]:
    """PPO normalises advantages per minibatch, which needs two samples (SB3 asserts it)."""
    agent = config.agent
    if not isinstance(agent, PPOConfig) or not agent.normalize_advantage:
        return []
    found = []
    if agent.batch_size < 2:
        found.append(
            f"agent.batch_size: must be >= 2 with agent.normalize_advantage=true, "
            f"got {agent.batch_size}"
        )
    if agent.n_steps * config.n_envs < 2:
        found.append(
            "agent.n_steps: agent.n_steps * n_envs must be >= 2 with "
            f"agent.normalize_advantage=true, got {agent.n_steps} * {config.n_envs}"
        )
    return found


def plain(value: Any) -> Any:
    """``value`` with dataclasses, enums and containers turned into plain Python data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def env_kwargs(env: EnvConfig) -> dict[str, Any]:
    """The constructor arguments of ``env`` as plain data (enums by value)."""
    kwargs = plain(getattr(env, "kwargs", {}))
    if not isinstance(kwargs, dict):
        raise TypeError(f"env.kwargs: expected a mapping, got {type(kwargs).__name__}")
    return kwargs


@dataclasses.dataclass(frozen=True)
class Seeds:
    """The seeds of one run; training and evaluation seeds never overlap.

    Attributes:
        train: seeds of the training replicas, ``seed + i`` for ``i < n_envs``.
        fit: training episodes the baselines are fitted on, ``seed + i`` for
            ``i < eval.fit_episodes``.
        eval_start: seed of the first evaluation episode, ``seed + eval.seed_offset``; episode
            ``k`` uses ``eval_start + k``.
        episodes: number of evaluation episodes.
    """

    train: tuple[int, ...]
    fit: tuple[int, ...]
    eval_start: int
    episodes: int

    @property
    def eval(self) -> tuple[int, ...]:
        """Seeds of the evaluation episodes."""
        return tuple(range(self.eval_start, self.eval_start + self.episodes))


def make_seeds(seed: int, n_envs: int, ev: EvalConfig, episodes: int | None = None) -> Seeds:
    """Derive the training, fitting and evaluation seeds of a run.

    Args:
        seed: the master seed.
        n_envs: training replicas.
        ev: the evaluation protocol.
        episodes: evaluation episodes (default ``ev.episodes``).

    Raises:
        ValueError: naming ``eval.seed_offset`` when evaluation seeds would reuse training ones,
            or the count that is not positive.
    """
    episodes = ev.episodes if episodes is None else episodes
    for field, value in (("n_envs", n_envs), ("episodes", episodes)):
        if value < 1:
            raise ValueError(f"{field}: must be >= 1, got {value}")
    if ev.fit_episodes < 1:
        raise ValueError(f"eval.fit_episodes: must be >= 1, got {ev.fit_episodes}")
    span = max(n_envs, ev.fit_episodes)
    if ev.seed_offset < span:
        raise ValueError(
            f"eval.seed_offset: must be >= max(n_envs, eval.fit_episodes) = {span} so that "
            f"evaluation seeds differ from training seeds, got {ev.seed_offset}"
        )
    return Seeds(
        train=tuple(seed + i for i in range(n_envs)),
        fit=tuple(seed + i for i in range(ev.fit_episodes)),
        eval_start=seed + ev.seed_offset,
        episodes=episodes,
    )


def check_curve_episodes(ev: EvalConfig) -> int:
    """The episodes of every learning-curve point: ``ev.curve_episodes``, checked.

    They are the first ``curve_episodes`` of the evaluation episodes' seeds, so there cannot be
    more of them than ``ev.episodes``.

    Raises:
        ValueError: naming ``eval.curve_episodes`` and ``eval.episodes`` with their values when
            ``curve_episodes`` exceeds ``episodes``.
    """
    if ev.curve_episodes > ev.episodes:
        raise ValueError(
            f"eval.curve_episodes: must be <= eval.episodes, got eval.curve_episodes="
            f"{ev.curve_episodes} > eval.episodes={ev.episodes} (a curve point takes the first "
            "evaluation episodes' seeds); lower eval.curve_episodes or raise eval.episodes"
        )
    return ev.curve_episodes


def refuse_init_model(config: TrainConfig, tool: str) -> None:
    """Refuse ``init_model`` in ``tool``, which evaluates a saved model instead of training.

    Raises:
        ValueError: naming ``init_model`` and the field to use.
    """
    if config.init_model is not None:
        raise ValueError(
            f"init_model: {tool} does not train; give the saved model as "
            "model_path=<run folder>/model.zip"
        )
