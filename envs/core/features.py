"""Pluggable observation builders and weighted, named reward terms."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.core.registry import Registry, suggest
from envs.core.sim import Snapshot, StepResult

RewardTerm = Callable[[StepResult], np.ndarray]
"""A pure function of one step's result returning a ``[B]`` array (higher is better)."""


class ObservationBuilder(ABC):
    """Owns an observation space and the encoder from a state snapshot into it.

    Args:
        structure: the scenario that fixes the shapes (number of stages, lanes, ...).
    """

    def __init__(self, structure: Any) -> None:
        self.structure = structure

    @property
    @abstractmethod
    def space(self) -> spaces.Space:
        """The single-env observation space."""

    @abstractmethod
    def encode(self, snapshot: Snapshot) -> np.ndarray:
        """Return the observations of all replicas, shaped ``[B, *space.shape]``."""


class RewardFunction:
    """The weighted sum of named reward terms taken from a family's registry.

    Args:
        registry: the family's reward-term registry.
        weights: ``{term name: weight}``; terms with weight 0 are still reported.
    """

    def __init__(self, registry: Registry[RewardTerm], weights: Mapping[str, float]) -> None:
        self.weights: dict[str, float] = {}
        for name, weight in dict(weights).items():
            if name not in registry:
                allowed = registry.names()
                raise KeyError(
                    f"reward_weights: unknown reward term {name!r}; allowed values: {allowed}."
                    f"{suggest(name, allowed)}"
                )
            w = float(weight)
            if not np.isfinite(w):
                raise ValueError(f"reward_weights.{name}: weight must be finite, got {weight!r}")
            self.weights[name] = w
        self.fns = {name: registry.get(name) for name in registry.names()}

    def terms(self, result: StepResult) -> dict[str, np.ndarray]:
        """Evaluate every registered term (weighted or not), each ``[B]``."""
        return {name: np.asarray(fn(result), dtype=np.float64) for name, fn in self.fns.items()}

    def total(self, terms: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return the weighted sum ``[B]`` of ``terms``."""
        out: np.ndarray | None = None
        for name, w in self.weights.items():
            if w == 0.0:
                continue
            part = w * terms[name]
            out = part if out is None else out + part
        if out is None:
            return np.zeros_like(next(iter(terms.values())))
        return out
