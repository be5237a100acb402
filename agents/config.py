"""Typed access to composed configurations, and the seeds every run derives from them."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from conf.schema import EnvConfig, EvalConfig, TrainConfig
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
