"""Pluggable observation builders and weighted, named reward terms."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.core.registry import Registry, suggest
from envs.core.sim import Columns, Snapshot, StepResult

RewardTerm = Callable[[StepResult], np.ndarray]
"""A pure function of one step's result returning a ``[B]`` array (higher is better)."""


class QuantityTerm:
    """The reward term ``sign * result.quantities[quantity]``, the common case.

    Being plain data (not a closure), such terms are picklable, and when every term of a family
    is one, :class:`RewardFunction` evaluates them all with one array operation.

    Args:
        quantity: name of the per-replica quantity of :class:`~envs.core.sim.StepResult`.
        sign: ``+1`` for a gain, ``-1`` for a cost (any finite factor is allowed).
    """

    def __init__(self, quantity: str, sign: float = 1.0) -> None:
        self.quantity = quantity
        self.sign = float(sign)
        self.__name__ = f"{quantity}_term"

    def __call__(self, result: StepResult) -> np.ndarray:
        return self.sign * np.asarray(result.quantities[self.quantity])

    def __repr__(self) -> str:
        return f"QuantityTerm({self.quantity!r}, sign={self.sign})"


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

    def encode_rows(self, snapshot: Snapshot, mask: np.ndarray, out: np.ndarray) -> None:
        """Write the observations of the replicas in ``mask`` (``[B]`` bool) into ``out``.

        Used after an autoreset, when only some replicas changed; builders override it when
        they can encode a subset of replicas for less than all of them.
        """
        out[mask] = self.encode(snapshot)[mask]


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
            try:
                w = float(weight)
            except (TypeError, ValueError):
                raise ValueError(
                    f"reward_weights.{name}: weight must be a number, got {weight!r}"
                ) from None
            if not np.isfinite(w):
                raise ValueError(f"reward_weights.{name}: weight must be finite, got {weight!r}")
            self.weights[name] = w
        self.fns = {name: registry.get(name) for name in registry.names()}
        self.names = tuple(self.fns)
        # every term a signed quantity: all terms are one gather-and-scale of the quantities
        self._linear = all(isinstance(fn, QuantityTerm) for fn in self.fns.values())
        self._signs = np.array(
            [fn.sign if isinstance(fn, QuantityTerm) else 0.0 for fn in self.fns.values()]
        )
        self._cols: tuple[tuple[str, ...], Any] | None = None
        self._weighted = [
            (self.names.index(name), w) for name, w in self.weights.items() if w != 0.0
        ]

    def terms(self, result: StepResult) -> Mapping[str, np.ndarray]:
        """Evaluate every registered term (weighted or not), each ``[B]``."""
        quantities = result.quantities
        if self._linear and isinstance(quantities, Columns):
            if self._cols is None or self._cols[0] is not quantities.names:
                cols: Any = [quantities.column(fn.quantity) for fn in self.fns.values()]  # type: ignore[attr-defined]
                if cols == list(range(len(cols))):
                    cols = slice(0, len(cols))  # the terms are the first quantities, in order
                self._cols = (quantities.names, cols)
            values = quantities.array[:, self._cols[1]] * self._signs
            return Columns(self.names, values.astype(np.float64, copy=False))
        return {name: np.asarray(fn(result), dtype=np.float64) for name, fn in self.fns.items()}

    def total(self, terms: Mapping[str, np.ndarray]) -> np.ndarray:
        """Return the weighted sum ``[B]`` of ``terms``."""
        if isinstance(terms, Columns) and terms.names is self.names:
            values = terms.array
            if not self._weighted:
                return np.zeros(values.shape[0])
            j, w = self._weighted[0]
            total = w * values[:, j]
            for j, w in self._weighted[1:]:
                total = total + w * values[:, j]
            return total
        out: np.ndarray | None = None
        for name, w in self.weights.items():
            if w == 0.0:
                continue
            part = w * terms[name]
            out = part if out is None else out + part
        if out is None:
            return np.zeros_like(next(iter(terms.values())))
        return out
