"""Typed scenarios of the machine-maintenance family.

A fleet of machines degrades through ``K`` condition states numbered from ``0`` (as new) to
``K - 1`` (failed). While a machine runs it produces output worth ``output[condition]`` per step
and its condition moves by a Markov chain with the machine's transition matrix; the failed state
is absorbing. A repair (partial: ``repair_levels`` conditions better, taking ``repair_time``
steps and one of the fleet's ``crews``) or a replacement (as new, taking ``replace_time`` steps)
takes the machine out of production. Money is in currency units, time in steps.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

ROW_TOLERANCE = 1e-6
"""Largest accepted deviation of a transition-matrix row sum (or a distribution) from one."""


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_sequence(v: Any) -> bool:
    return isinstance(v, Sequence) and not isinstance(v, str | bytes)


def default_condition_names(num_conditions: int) -> tuple[str, ...]:
    """Labels of ``num_conditions`` condition states: ``new, good, worn, poor, failed`` for five.

    Other sizes are labelled ``c0 .. c{K-2}`` followed by ``failed``.
    """
    if num_conditions == 5:
        return ("new", "good", "worn", "poor", "failed")
    return (*(f"c{k}" for k in range(num_conditions - 1)), "failed")


@dataclasses.dataclass(frozen=True)
class MachineConfig:
    """One machine: its degradation chain, its output and the costs of looking after it.

    Attributes:
        transition: ``K x K`` row-stochastic matrix; ``transition[i][j]`` is the probability that
            a machine running one step in condition ``i`` ends it in condition ``j``. The last
            state is *failed* and must be absorbing (its row is ``[0, ..., 0, 1]``).
        output: value produced by one step of running in each condition, currency/step
            (``K`` values).
        failure_cost: one-off cost when the machine breaks down (enters the failed state),
            currency.
        repair_cost: cost of one repair, paid when it starts, currency.
        repair_time: steps the machine is out of production for a repair (>= 1).
        repair_levels: conditions a repair restores: condition ``c`` becomes
            ``max(c - repair_levels, 0)`` (>= 1).
        replace_cost: cost of a replacement, paid when it starts, currency.
        replace_time: steps the machine is out of production while being replaced (>= 1).
    """

    transition: tuple[tuple[float, ...], ...] = (
        (0.90, 0.07, 0.02, 0.00, 0.01),
        (0.00, 0.85, 0.10, 0.03, 0.02),
        (0.00, 0.00, 0.80, 0.14, 0.06),
        (0.00, 0.00, 0.00, 0.75, 0.25),
        (0.00, 0.00, 0.00, 0.00, 1.00),
    )
    output: tuple[float, ...] = (1.0, 0.9, 0.7, 0.4, 0.0)
    failure_cost: float = 8.0
    repair_cost: float = 3.0
    repair_time: int = 2
    repair_levels: int = 2
    replace_cost: float = 6.0
    replace_time: int = 2

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_conditions(self) -> int:
        """Number of condition states ``K`` (the last one is *failed*)."""
        return len(self.transition)

    def validate(self, field: str = "machine") -> None:
        """Raise ``ValueError`` naming the first invalid field (prefixed with ``field``)."""
        if not _is_sequence(self.transition):
            raise ValueError(
                f"{field}.transition: expected a K x K matrix (a list of rows), got "
                f"{self.transition!r}"
            )
        k = self.num_conditions
        if k < 2:
            raise ValueError(
                f"{field}.transition: need at least 2 condition states (one working, one "
                f"failed), got {k}"
            )
        for i, row in enumerate(self.transition):
            if not _is_sequence(row):
                raise ValueError(
                    f"{field}.transition[{i}]: expected a row of {k} probabilities, got {row!r}"
                )
            if len(row) != k:
                raise ValueError(
                    f"{field}.transition: expected a square {k} x {k} matrix, row {i} has "
                    f"{len(row)} entries"
                )
            for j, p in enumerate(row):
                if not _is_number(p) or not math.isfinite(p) or p < 0 or p > 1:
                    raise ValueError(
                        f"{field}.transition[{i}][{j}]: must be a probability in [0, 1], got {p!r}"
                    )
            total = math.fsum(row)
            if abs(total - 1.0) > ROW_TOLERANCE:
                raise ValueError(
                    f"{field}.transition[{i}]: row sums to {total:.9g}; every row must sum to 1"
                )
        failed = self.transition[k - 1]
        if failed[k - 1] < 1.0 - ROW_TOLERANCE:
            raise ValueError(
                f"{field}.transition[{k - 1}]: the failed state must be absorbing (row "
                f"[0, ..., 0, 1]); got {list(failed)}"
            )
        if not _is_sequence(self.output) or len(self.output) != k:
            raise ValueError(
                f"{field}.output: expected {k} values (one per condition state), got "
                f"{self.output!r}"
            )
        for c, v in enumerate(self.output):
            if not _is_number(v) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{field}.output[{c}]: must be a finite number >= 0, got {v!r}")
        for name in ("failure_cost", "repair_cost", "replace_cost"):
            v = getattr(self, name)
            if not _is_number(v) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{field}.{name}: must be a finite number >= 0, got {v!r}")
        for name in ("repair_time", "replace_time", "repair_levels"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{field}.{name}: must be an integer >= 1, got {v!r}")


@dataclasses.dataclass(frozen=True)
class MaintenanceScenario:
    """A fleet of machines sharing a limited number of repair crews over a finite horizon.

    Attributes:
        name: label used in logs and reports.
        machines: the machines of the fleet (at least one); all have the same number of
            condition states ``K``.
        crews: repair crews; at most this many repairs are in progress at once (replacements
            need no crew). ``0`` disables repairs.
        horizon: number of steps of an episode.
        initial_condition: distribution of every machine's condition at the start of an
            episode, ``K`` probabilities summing to one (drawn independently per machine).
        condition_names: labels of the ``K`` condition states for reports and rendering
            (empty: ``new, good, worn, poor, failed`` for ``K = 5``, else ``c0 .. failed``).
    """

    name: str = "single"
    machines: tuple[MachineConfig, ...] = (MachineConfig(),)
    crews: int = 1
    horizon: int = 100
    initial_condition: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 0.0)
    condition_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_machines(self) -> int:
        """Number of machines ``N``."""
        return len(self.machines)

    @property
    def num_conditions(self) -> int:
        """Number of condition states ``K`` (the last one is *failed*)."""
        return self.machines[0].num_conditions

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels of the condition states (``condition_names`` or the defaults)."""
        return self.condition_names or default_condition_names(self.num_conditions)

    @property
    def max_downtime(self) -> int:
        """Longest repair or replacement of any machine, steps."""
        return max(max(m.repair_time, m.replace_time) for m in self.machines)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        if len(self.machines) < 1:
            raise ValueError("machines: the fleet needs at least one machine")
        for i, m in enumerate(self.machines):
            if not isinstance(m, MachineConfig):
                raise ValueError(f"machines[{i}]: expected a MachineConfig, got {type(m).__name__}")
            m.validate(f"machines[{i}]")
        k = self.machines[0].num_conditions
        for i, m in enumerate(self.machines):
            if m.num_conditions != k:
                raise ValueError(
                    f"machines[{i}].transition: every machine needs the same number of "
                    f"condition states; machine 0 has {k}, machine {i} has {m.num_conditions}"
                )
        if not isinstance(self.crews, int) or isinstance(self.crews, bool) or self.crews < 0:
            raise ValueError(f"crews: must be an integer >= 0, got {self.crews!r}")
        if not isinstance(self.horizon, int) or isinstance(self.horizon, bool) or self.horizon < 1:
            raise ValueError(f"horizon: must be an integer >= 1 step, got {self.horizon!r}")
        if not _is_sequence(self.initial_condition) or len(self.initial_condition) != k:
            raise ValueError(
                f"initial_condition: expected {k} probabilities (one per condition state), got "
                f"{self.initial_condition!r}"
            )
        for c, p in enumerate(self.initial_condition):
            if not _is_number(p) or not math.isfinite(p) or p < 0 or p > 1:
                raise ValueError(
                    f"initial_condition[{c}]: must be a probability in [0, 1], got {p!r}"
                )
        total = math.fsum(self.initial_condition)
        if abs(total - 1.0) > ROW_TOLERANCE:
            raise ValueError(f"initial_condition: sums to {total:.9g}; it must sum to 1")
        names = self.condition_names
        if names and (
            not _is_sequence(names)
            or len(names) != k
            or not all(isinstance(label, str) for label in names)
        ):
            raise ValueError(
                f"condition_names: expected {k} labels (one string per condition state), got "
                f"{names!r}"
            )


WORN_MACHINE = MachineConfig(
    transition=(
        (0.80, 0.12, 0.05, 0.01, 0.02),
        (0.00, 0.75, 0.15, 0.06, 0.04),
        (0.00, 0.00, 0.70, 0.20, 0.10),
        (0.00, 0.00, 0.00, 0.65, 0.35),
        (0.00, 0.00, 0.00, 0.00, 1.00),
    ),
    output=(1.2, 1.05, 0.8, 0.45, 0.0),
    failure_cost=10.0,
    repair_cost=3.0,
    repair_time=2,
    repair_levels=2,
    replace_cost=8.0,
    replace_time=3,
)
"""An older, faster-degrading but more productive machine type (used in the ``five`` preset)."""

PRESETS: dict[str, MaintenanceScenario] = {
    "single": MaintenanceScenario(),
    "five": MaintenanceScenario(
        name="five",
        machines=(MachineConfig(), MachineConfig(), MachineConfig(), WORN_MACHINE, WORN_MACHINE),
        crews=2,
        horizon=100,
        initial_condition=(0.4, 0.3, 0.2, 0.1, 0.0),
    ),
}
"""Named scenarios: ``single`` (one machine, exactly solvable) and ``five`` (a fleet, 2 crews)."""


def _freeze(value: Any) -> Any:
    """Turn lists (and other non-string sequences, e.g. from YAML) into nested tuples."""
    if isinstance(value, str | bytes | MachineConfig) or not isinstance(value, Sequence):
        return value
    return tuple(_freeze(v) for v in value)


def _tuple_fields(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _freeze(v) for k, v in data.items()}


def make_machine(obj: Any, base: MachineConfig | None = None, field: str = "machine") -> Any:
    """Build a :class:`MachineConfig` from a mapping of fields (over ``base``) or a config.

    Args:
        obj: a ``MachineConfig`` or a mapping of its fields (lists are accepted for tuples).
        base: the machine whose fields a mapping overrides (default: ``MachineConfig()``).
        field: name used in error messages, e.g. ``machines[2]``.
    """
    if isinstance(obj, MachineConfig):
        return obj
    if isinstance(obj, Mapping):
        data = dict(obj)
        allowed = {f.name for f in dataclasses.fields(MachineConfig)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"{field}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
        try:
            return dataclasses.replace(base or MachineConfig(), **_tuple_fields(data))
        except ValueError as exc:
            # name the field as the caller knows it (``machines[2].repair_cost``)
            message = str(exc)
            if message.startswith("machine."):
                message = field + message[len("machine") :]
            raise ValueError(message) from None
    raise TypeError(
        f"{field}: expected a mapping of fields or MachineConfig, got {type(obj).__name__}"
    )


def fleet(machines: Sequence[MachineConfig], num_machines: int) -> tuple[MachineConfig, ...]:
    """Repeat the machine types ``machines`` cyclically to a fleet of ``num_machines``."""
    if not isinstance(num_machines, int) or isinstance(num_machines, bool) or num_machines < 1:
        raise ValueError(f"num_machines: must be an integer >= 1, got {num_machines!r}")
    return tuple(machines[i % len(machines)] for i in range(num_machines))


def make_scenario(obj: Any = None, preset: str = "single") -> MaintenanceScenario:
    """Build a scenario from ``None``, a preset name, a mapping or a scenario.

    A mapping may name a ``preset`` to start from and override any field. ``machines`` is a
    list whose items are mappings of machine fields (over the preset's machine at the same
    position, or its first machine) or ``MachineConfig`` s; ``machine`` (one mapping) overrides
    fields of every machine; ``num_machines`` repeats the machine types cyclically to that size.
    Unknown fields raise ``ValueError`` with the allowed names.

    Args:
        obj: what to build the scenario from.
        preset: the preset of ``None`` and of a mapping that names none (an env's own preset).

    Example:
        >>> make_scenario({"preset": "single", "num_machines": 3, "crews": 1}).num_machines
        3
        >>> make_scenario({"crews": 1}, preset="five").num_machines
        5
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"preset: unknown preset {preset!r}; allowed values: {sorted(PRESETS)}")
    if obj is None:
        return PRESETS[preset]
    if isinstance(obj, MaintenanceScenario):
        return obj
    if isinstance(obj, str):
        if obj not in PRESETS:
            raise ValueError(f"scenario: unknown preset {obj!r}; allowed values: {sorted(PRESETS)}")
        return PRESETS[obj]
    if isinstance(obj, Mapping):
        data = dict(obj)
        base = make_scenario(data.pop("preset", None), preset)
        allowed = {f.name for f in dataclasses.fields(MaintenanceScenario)}
        extra = {"machine", "num_machines"}
        unknown = sorted(set(data) - allowed - extra)
        if unknown:
            raise ValueError(
                f"scenario: unknown field(s) {unknown}; allowed: {sorted(allowed | extra)}"
            )
        machines = list(base.machines)
        if "machines" in data:
            items = data.pop("machines")
            if isinstance(items, Mapping | str) or not isinstance(items, Sequence):
                raise ValueError("machines: expected a list of machines (mappings of fields)")
            machines = [
                make_machine(m, machines[i] if i < len(machines) else machines[0], f"machines[{i}]")
                for i, m in enumerate(items)
            ]
        if "num_machines" in data:
            machines = list(fleet(machines, data.pop("num_machines")))
        if "machine" in data:
            override = data.pop("machine")
            if not isinstance(override, Mapping):
                raise ValueError("machine: expected a mapping of machine fields")
            machines = [make_machine(override, m, f"machines[{i}]") for i, m in enumerate(machines)]
        data["machines"] = tuple(machines)
        return dataclasses.replace(base, **_tuple_fields(data))
    raise TypeError(
        "scenario: expected a preset name, a mapping or MaintenanceScenario, got "
        f"{type(obj).__name__}"
    )
