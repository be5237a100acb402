"""The batched simulation contract shared by every scenario family.

A simulation core steps ``B`` independent replicas at once with arrays shaped ``[B, ...]``.
Cores are plain numpy: they never import gymnasium, pygame or torch. All randomness comes from
one :class:`numpy.random.Generator` per replica, handed in by the adapter at reset, so replica
``i`` of a batch behaves exactly like a single environment seeded with the same generator.
"""

from __future__ import annotations

import dataclasses
import functools
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

ScenarioT = TypeVar("ScenarioT")
SnapshotT = TypeVar("SnapshotT", bound="Snapshot")


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Read-only view of the state of all replicas.

    Subclasses declare array fields shaped ``[B, ...]``. Observation builders, reward terms and
    renderers read snapshots only, never the live simulator.
    """

    def replica(self: SnapshotT, i: int) -> SnapshotT:
        """Return the state of replica ``i`` alone, keeping a leading batch axis of one."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and value.ndim > 0:
                values[f.name] = value[i : i + 1].copy()
            else:
                values[f.name] = value
        return type(self)(**values)


def readonly(array: np.ndarray) -> np.ndarray:
    """Return a non-writeable view of ``array`` (no copy)."""
    view = array.view()
    view.flags.writeable = False
    return view


@functools.cache
def _column_index(names: tuple[str, ...]) -> dict[str, int]:
    return {name: j for j, name in enumerate(names)}


class Columns(Mapping[str, np.ndarray]):
    """Named columns of one ``[B, M]`` array, read as a mapping of ``[B]`` column views.

    Cores that produce their per-replica quantities or metrics in one array return them this
    way: the mapping costs nothing to build, and adapters convert a whole replica's row to
    Python numbers at once (:meth:`row`) instead of one numpy scalar per name.

    Args:
        names: one name per column of ``array``.
        array: ``[B, len(names)]`` values.
    """

    __slots__ = ("_index", "array", "names")

    def __init__(self, names: tuple[str, ...], array: np.ndarray) -> None:
        if array.ndim != 2 or array.shape[1] != len(names):
            raise ValueError(f"Columns: expected an array [B, {len(names)}], got {array.shape}")
        self.names = names
        self.array = array
        self._index = _column_index(names)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.array[:, self._index[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def column(self, key: str) -> int:
        """The column number of ``key``."""
        return self._index[key]

    def row(self, i: int) -> dict[str, Any]:
        """Replica ``i``'s values as ``{name: Python number}``."""
        return dict(zip(self.names, self.array[i].tolist(), strict=True))


@dataclasses.dataclass(frozen=True)
class StepResult:
    """What one call to :meth:`BatchedSim.step` produced, per replica.

    Attributes:
        quantities: named per-replica quantities (each ``[B]``) that reward terms are built from,
            e.g. revenue or holding cost of the period.
        metrics: the family's standard metrics (each ``[B]``), reported in ``info``.
        terminated: ``[B]`` bool, the replica reached a terminal state of the MDP.
        truncated: ``[B]`` bool, the replica was cut off for a reason outside the MDP.
    """

    quantities: Mapping[str, np.ndarray]
    metrics: Mapping[str, np.ndarray]
    terminated: np.ndarray
    truncated: np.ndarray


class BatchedSim(ABC, Generic[ScenarioT, SnapshotT]):
    """Base class of the simulation cores.

    A core is built once for a batch size and a *structure* scenario (which fixes array shapes);
    every reset may load a different scenario of the same structure into each replica.

    Args:
        batch_size: number of replicas ``B``.
        scenario: scenario that fixes the shapes of the state arrays.
    """

    def __init__(self, batch_size: int, scenario: ScenarioT) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.structure = scenario
        self.rngs: list[np.random.Generator | None] = [None] * batch_size
        self.scenarios: list[ScenarioT] = [scenario] * batch_size

    def reset(
        self,
        mask: np.ndarray,
        rngs: Sequence[np.random.Generator | None],
        scenarios: Sequence[ScenarioT | None],
    ) -> None:
        """Start a new episode in every replica where ``mask`` is true.

        Args:
            mask: ``[B]`` bool, which replicas to reset.
            rngs: one generator per replica (entries where ``mask`` is false are ignored).
            scenarios: one scenario per replica, or ``None`` to keep the current one.
        """
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.batch_size,):
            raise ValueError(f"mask must have shape ({self.batch_size},), got {mask.shape}")
        idx = mask.nonzero()[0]
        for i in idx.tolist():
            rng = rngs[i]
            if rng is None:
                raise ValueError(f"replica {i} is reset without a random generator")
            self.rngs[i] = rng
            scenario = scenarios[i]
            if scenario is not None and scenario is not self.scenarios[i]:
                self.check_compatible(scenario)
                self.scenarios[i] = scenario
        self._reset(idx)

    def check_compatible(self, scenario: ScenarioT) -> None:
        """Raise ``ValueError`` if ``scenario`` cannot be loaded into this core's arrays."""

    @abstractmethod
    def _reset(self, idx: np.ndarray) -> None:
        """Reset replicas ``idx`` using ``self.rngs[i]`` and ``self.scenarios[i]``."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> StepResult:
        """Advance all replicas by one decision step."""

    def views(self) -> SnapshotT:
        """Build the read-only views of the state arrays that :meth:`snapshot` returns."""
        raise NotImplementedError(f"{type(self).__name__} must implement views() or snapshot()")

    def snapshot(self) -> SnapshotT:
        """Return a read-only view of the state of all replicas.

        The default builds :meth:`views` once and returns the same views ever after, which is
        right for cores that update every state array in place; cores that reallocate their
        arrays override this method. The views are not pickled: they are rebuilt on first use.
        """
        snap: SnapshotT | None = self.__dict__.get("_snapshot")
        if snap is None:
            snap = self.views()
            self._snapshot = snap
        return snap

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_snapshot", None)
        return state
