"""Typed scenarios of the serial multi-echelon supply chain.

Stages are numbered from the customer upwards: stage 0 is the retailer, stage ``N - 1`` the
last stage that holds stock; stage ``N`` is the raw-material supplier with unlimited supply.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

DEMAND_KINDS = ("poisson", "normal", "seasonal", "series")


def _finite(value: Any) -> bool:
    """Whether ``value`` is a finite real number (``True``/``False`` are not numbers here)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class DemandConfig:
    """Customer demand at the retailer, one draw per period.

    Attributes:
        kind: ``poisson`` (default), ``normal`` (rounded, truncated at 0), ``seasonal`` (Poisson
            with a sinusoidal mean) or ``series`` (the user's values, period by period).
        mean: mean demand, units/period.
        std: standard deviation for ``normal``, units/period.
        amplitude: relative amplitude of the seasonal swing (0.3 = +-30 % of ``mean``).
        cycle: length of one seasonal cycle, periods.
        series: demand per period for ``series``, units/period (at least ``horizon`` values).
    """

    kind: str = "poisson"
    mean: float = 20.0
    std: float = 5.0
    amplitude: float = 0.3
    cycle: int = 12
    series: tuple[float, ...] = ()

    def validate(self, horizon: int) -> None:
        """Raise ``ValueError`` naming the field if the demand is not usable for ``horizon``."""
        if self.kind not in DEMAND_KINDS:
            raise ValueError(f"demand.kind: {self.kind!r} is not allowed; allowed: {DEMAND_KINDS}")
        if not _finite(self.mean) or self.mean < 0:
            raise ValueError(f"demand.mean: must be a finite number >= 0, got {self.mean!r}")
        if not _finite(self.std) or self.std < 0:
            raise ValueError(f"demand.std: must be a finite number >= 0, got {self.std!r}")
        if not _finite(self.amplitude) or not 0 <= self.amplitude <= 1:
            raise ValueError(f"demand.amplitude: must lie in [0, 1], got {self.amplitude!r}")
        if not _finite(self.cycle) or self.cycle < 1:
            raise ValueError(
                f"demand.cycle: must be a finite number >= 1 period, got {self.cycle!r}"
            )
        if self.kind == "series":
            if not isinstance(self.series, Sequence) or isinstance(self.series, str):
                raise ValueError(
                    f"demand.series: expected a list of demands per period, got {self.series!r}"
                )
            if len(self.series) < horizon:
                raise ValueError(
                    f"demand.series: needs at least horizon={horizon} values, got {len(self.series)}"
                )
            for t, v in enumerate(self.series):
                if not _finite(v):
                    raise ValueError(
                        f"demand.series[{t}]: is {v!r}; values must be finite numbers (no NaN)"
                    )
                if v < 0:
                    raise ValueError(f"demand.series[{t}]: is {v}; values must be >= 0")


@dataclasses.dataclass(frozen=True)
class InventoryScenario:
    """A serial supply chain with ``N`` stocking stages and an unlimited supplier on top.

    Attributes:
        name: label used in logs and reports.
        horizon: number of periods of an episode.
        initial_inventory: on-hand stock at the start, units, stages ``0..N-1``.
        capacities: most units stage ``i + 1`` can ship to stage ``i`` per period, ``N`` values.
        lead_times: periods between an order of stage ``i`` and its arrival, ``N`` values.
        price: retail price, currency/unit.
        unit_costs: replenishment cost per unit bought by stage ``i``; the last of the ``N + 1``
            values is the raw-material cost of the top supplier (OR-Gym's ``r``).
        shortage_costs: cost per unfulfilled unit per period at each of the ``N + 1`` stages
            (backlog cost, or goodwill loss with lost sales; OR-Gym's ``k``).
        holding_costs: cost per unit on hand at the end of a period, ``N`` values.
        backlog: unmet demand and unfilled orders are carried over (``True``) or lost.
        discount: per-period discount applied inside the reward (OR-Gym's ``alpha``; 1 = none).
        demand: the customer demand process.
    """

    name: str = "serial4"
    horizon: int = 30
    initial_inventory: tuple[float, ...] = (100.0, 100.0, 200.0)
    capacities: tuple[float, ...] = (100.0, 90.0, 80.0)
    lead_times: tuple[int, ...] = (3, 5, 10)
    price: float = 2.0
    unit_costs: tuple[float, ...] = (1.5, 1.0, 0.75, 0.5)
    shortage_costs: tuple[float, ...] = (0.10, 0.075, 0.05, 0.025)
    holding_costs: tuple[float, ...] = (0.15, 0.10, 0.05)
    backlog: bool = True
    discount: float = 1.0
    demand: DemandConfig = dataclasses.field(default_factory=DemandConfig)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_stages(self) -> int:
        """Number of stocking stages ``N``."""
        return len(self.initial_inventory)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        if not isinstance(self.initial_inventory, Sequence) or isinstance(
            self.initial_inventory, str
        ):
            raise ValueError(
                "initial_inventory: expected a list of on-hand stock per stage, got "
                f"{self.initial_inventory!r}"
            )
        n = self.num_stages
        if n < 1:
            raise ValueError("initial_inventory: need at least one stocking stage")
        if (
            isinstance(self.horizon, bool)
            or not isinstance(self.horizon, numbers.Integral)
            or self.horizon < 1
        ):
            raise ValueError(f"horizon: must be an integer >= 1 period, got {self.horizon!r}")
        lengths = {
            "capacities": (self.capacities, n),
            "lead_times": (self.lead_times, n),
            "holding_costs": (self.holding_costs, n),
            "unit_costs": (self.unit_costs, n + 1),
            "shortage_costs": (self.shortage_costs, n + 1),
        }
        for field, (values, expected) in lengths.items():
            if not isinstance(values, Sequence) or isinstance(values, str):
                raise ValueError(f"{field}: expected a list of {expected} numbers, got {values!r}")
            if len(values) != expected:
                raise ValueError(
                    f"{field}: expected {expected} values for {n} stages, got {len(values)}"
                )
        nonneg = {
            "initial_inventory": self.initial_inventory,
            "lead_times": self.lead_times,
            "holding_costs": self.holding_costs,
            "unit_costs": self.unit_costs,
            "shortage_costs": self.shortage_costs,
        }
        for field, values in nonneg.items():
            for i, v in enumerate(values):
                if not _finite(v) or v < 0:
                    raise ValueError(f"{field}[{i}]: must be a finite number >= 0, got {v!r}")
        for i, v in enumerate(self.capacities):
            if not _finite(v) or v <= 0:
                raise ValueError(f"capacities[{i}]: must be a finite number > 0, got {v!r}")
        for i, v in enumerate(self.lead_times):
            if int(v) != v:
                raise ValueError(f"lead_times[{i}]: must be a whole number of periods, got {v}")
        if not _finite(self.price) or self.price < 0:
            raise ValueError(f"price: must be a finite number >= 0, got {self.price!r}")
        if not _finite(self.discount) or not 0 < self.discount <= 1:
            raise ValueError(f"discount: must lie in (0, 1], got {self.discount!r}")
        if not isinstance(self.backlog, bool):
            raise ValueError(
                f"backlog: must be true (backlog) or false (lost sales), got {self.backlog!r}"
            )
        if not isinstance(self.demand, DemandConfig):
            raise ValueError(
                "demand: expected a mapping of demand fields (allowed: "
                f"{[f.name for f in dataclasses.fields(DemandConfig)]}) or a DemandConfig, "
                f"got {self.demand!r}"
            )
        self.demand.validate(self.horizon)


ORGYM = InventoryScenario(name="orgym", discount=0.97)
"""OR-Gym ``InvManagement-v0`` defaults: returns are directly comparable with OR-Gym's."""

PRESETS: dict[str, InventoryScenario] = {
    "serial4": InventoryScenario(),
    "orgym": ORGYM,
    "orgym_lost_sales": dataclasses.replace(ORGYM, name="orgym_lost_sales", backlog=False),
    "lost_sales": InventoryScenario(name="lost_sales", backlog=False),
    "seasonal": InventoryScenario(
        name="seasonal", horizon=52, demand=DemandConfig(kind="seasonal", mean=20.0, cycle=26)
    ),
    "two_stage": InventoryScenario(
        name="two_stage",
        initial_inventory=(60.0, 120.0),
        capacities=(60.0, 60.0),
        lead_times=(2, 4),
        unit_costs=(1.2, 0.8, 0.5),
        shortage_costs=(0.2, 0.1, 0.05),
        holding_costs=(0.1, 0.05),
    ),
}


def _tuple_fields(data: dict[str, Any]) -> dict[str, Any]:
    for k, v in list(data.items()):
        if isinstance(v, list):
            data[k] = tuple(v)
    return data


def make_scenario(obj: Any = None, preset: str = "serial4") -> InventoryScenario:
    """Build a scenario from ``None``, a preset name, a mapping or a scenario.

    A mapping may name a ``preset`` to start from and override any field; ``demand`` may itself
    be a mapping. Unknown fields raise ``ValueError`` with the allowed names.

    Args:
        obj: what to build the scenario from.
        preset: the preset of ``None`` and of a mapping that names none (an env's own preset).
    """
    if preset not in PRESETS:
        raise ValueError(f"preset: unknown preset {preset!r}; allowed values: {sorted(PRESETS)}")
    if obj is None:
        return PRESETS[preset]
    if isinstance(obj, InventoryScenario):
        return obj
    if isinstance(obj, str):
        if obj not in PRESETS:
            raise ValueError(f"scenario: unknown preset {obj!r}; allowed values: {sorted(PRESETS)}")
        return PRESETS[obj]
    if isinstance(obj, Mapping):
        data = dict(obj)
        base = make_scenario(data.pop("preset", preset))
        allowed = {f.name for f in dataclasses.fields(InventoryScenario)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"scenario: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
        demand = data.pop("demand", None)
        if isinstance(demand, Mapping):
            dallowed = {f.name for f in dataclasses.fields(DemandConfig)}
            dunknown = sorted(set(demand) - dallowed)
            if dunknown:
                raise ValueError(
                    f"scenario.demand: unknown field(s) {dunknown}; allowed: {sorted(dallowed)}"
                )
            demand = dataclasses.replace(base.demand, **_tuple_fields(dict(demand)))
        if demand is not None:
            data["demand"] = demand
        return dataclasses.replace(base, **_tuple_fields(data))
    raise TypeError(
        f"scenario: expected a preset name, a mapping or InventoryScenario, got {type(obj).__name__}"
    )
