"""Feature codecs of the scenario families, and the repair rules they share.

Implemented: the supply-chain family's demand series (:class:`InventoryDemandCodec`). The
synthetic ground-truth family's codec lives with the family in
:mod:`agents.generators.synthetic`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from envs.ops.inventory.scenario import DemandConfig, InventoryScenario
from envs.ops.inventory.sim import sample_demand


def repair(
    features: np.ndarray,
    *,
    lower: float | np.ndarray | None = None,
    upper: float | np.ndarray | None = None,
    tolerance: float = 0.0,
    total: float | None = None,
) -> np.ndarray | None:
    """Apply the common repair rules to a feature vector, or reject it.

    A vector is rejected (``None``) if any value is not finite, lies more than ``tolerance``
    below ``lower`` or above ``upper``, or (with ``total``) sums to zero or less. Otherwise the
    values are clipped into ``[lower, upper]`` and, with ``total``, rescaled to sum to it.

    Args:
        features: the raw vector ``[dim]``.
        lower: smallest valid value (scalar or per feature); ``None``: unbounded.
        upper: largest valid value (scalar or per feature); ``None``: unbounded.
        tolerance: how far outside the bounds a value may lie and still be clipped back.
        total: the sum the values must have (shares, volumes spread over a horizon).

    Returns:
        The repaired copy, or ``None`` when the vector is rejected.
    """
    x = np.array(features, dtype=np.float64)
    if not np.isfinite(x).all():
        return None
    if lower is not None:
        if (x < np.asarray(lower) - tolerance).any():
            return None
        x = np.maximum(x, lower)
    if upper is not None:
        if (x > np.asarray(upper) + tolerance).any():
            return None
        x = np.minimum(x, upper)
    if total is not None:
        s = float(x.sum())
        if s <= 0.0:
            return None
        x *= total / s
    return x


class InventoryDemandCodec:
    """The supply chain's per-period customer demand: ``horizon`` features, units/period.

    Every other field comes from ``base``; decoded scenarios have ``demand.kind == "series"``.
    Stochastic demand (Poisson, normal, seasonal) is encoded through a realised series, see
    :func:`realise_demand`.

    Args:
        base: the scenario the generated demand is put into; fixes the horizon.
        max_demand: largest valid demand per period, units (default: four times the base's
            peak mean demand plus 50, or the peak mean plus ten standard deviations plus 10
            when that is larger, as for a widely spread normal demand; a Poisson demand's
            standard deviation is the square root of its mean). Values above it by more than
            ``tolerance`` are rejected.
        tolerance: how far below 0 or above ``max_demand`` a value may lie and be clipped back.
        integer: round decoded demands to whole units (at most ``floor(max_demand)``).
    """

    def __init__(
        self,
        base: InventoryScenario,
        *,
        max_demand: float | None = None,
        tolerance: float = 0.5,
        integer: bool = True,
    ) -> None:
        self.base = base
        d = base.demand
        if max_demand is None:
            if d.kind == "series":
                peak = max(d.series[: base.horizon], default=0.0)
                spread = 0.0
            else:
                peak = d.mean * (1.0 + (d.amplitude if d.kind == "seasonal" else 0.0))
                spread = d.std if d.kind == "normal" else math.sqrt(peak)
            max_demand = max(4.0 * peak + 50.0, peak + 10.0 * spread + 10.0)
        if not math.isfinite(max_demand) or max_demand <= 0:
            raise ValueError(f"max_demand: must be a finite number > 0, got {max_demand}")
        if not (math.isfinite(tolerance) and tolerance >= 0):
            raise ValueError(f"tolerance: must be a finite number >= 0, got {tolerance}")
        self.max_demand = float(max_demand)
        self.tolerance = float(tolerance)
        self.integer = integer

    @property
    def name(self) -> str:
        return f"inventory_demand/h{self.base.horizon}"

    @property
    def dim(self) -> int:
        return self.base.horizon

    @property
    def structure(self) -> InventoryScenario:
        """The base with ``max_demand`` every period: its spaces bound every decoded scenario."""
        return self._with_series(np.full(self.dim, self.max_demand))

    def encode(self, scenario: InventoryScenario) -> np.ndarray:
        """The demand series of a ``series`` scenario, ``[horizon]`` units/period."""
        d = scenario.demand
        if d.kind != "series":
            raise ValueError(
                f"scenario {scenario.name!r}: demand.kind is {d.kind!r}; encode needs a 'series' "
                "scenario (see realise_demand for stochastic demand)"
            )
        if scenario.horizon != self.dim:
            raise ValueError(
                f"scenario {scenario.name!r}: horizon {scenario.horizon} != codec horizon {self.dim}"
            )
        return np.asarray(d.series[: self.dim], dtype=np.float64)

    def decode(self, features: np.ndarray) -> InventoryScenario | None:
        """The base scenario with the repaired demand series, or ``None`` if invalid."""
        x = repair(features, lower=0.0, upper=self.max_demand, tolerance=self.tolerance)
        if x is None or x.shape != (self.dim,):
            return None
        if self.integer:
            # the nearest whole unit, kept at most max_demand when that is not a whole number
            x = np.minimum(np.rint(x), math.floor(self.max_demand))
        try:
            return self._with_series(x)
        except ValueError:
            return None

    def _with_series(self, series: np.ndarray) -> InventoryScenario:
        values = tuple(float(v) for v in series)
        demand = DemandConfig(kind="series", mean=float(np.mean(values)), series=values)
        return dataclasses.replace(self.base, name=f"{self.base.name}_generated", demand=demand)


def realise_demand(
    scenarios: Sequence[InventoryScenario], rng: np.random.Generator, per_scenario: int = 1
) -> list[InventoryScenario]:
    """Turn scenarios with stochastic demand into ``series`` scenarios by drawing demand.

    Each scenario gives ``per_scenario`` copies, each with one realised demand series drawn by
    the simulator's own demand process; ``series`` scenarios are copied unchanged.
    """
    out: list[InventoryScenario] = []
    for sc in scenarios:
        for _ in range(per_scenario):
            series = tuple(float(v) for v in sample_demand(sc, rng))
            demand = DemandConfig(kind="series", mean=float(np.mean(series)), series=series)
            out.append(dataclasses.replace(sc, demand=demand))
    return out
