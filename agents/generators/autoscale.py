"""The autoscaling family's load: each service's request rate over an episode, in time bins.

:class:`AutoscaleLoadCodec` turns an :class:`~envs.ops.autoscale.scenario.AutoscaleScenario`
into ``services x bins`` features (requests/s, service-major) and back. Everything but the
arrival process comes from the codec's base scenario. A decoded scenario replays its rates as a
trace (one bin per trace interval, no noise or bursts of its own: the features already hold
them) with Poisson arrivals around them, as every trace-driven service has.

Real load comes in two forms:

- :func:`realise_load`: scenarios with any arrival process (diurnal profiles with noise and
  bursts, traces) become the rates of one drawn episode each, by the simulator's own
  :func:`~envs.ops.autoscale.sim.arrival_rates`;
- :func:`bank_calls_days`: every business day of the ``fpp3/bank_calls`` call-centre arrivals
  (the ``data`` extra), scaled as the base's services scale that trace.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from agents.generators.codecs import repair
from envs.ops.autoscale.scenario import (
    ArrivalConfig,
    AutoscaleScenario,
    bank_calls_trace,
)
from envs.ops.autoscale.sim import arrival_rates

BIN_MINUTES = 5.0
"""Shortest bin by default, minutes (the bank calls' interval)."""
BANK_CALLS_SOURCE = "fpp3/bank_calls"
GENERATED_SOURCE = "generated"


def default_bins(base: AutoscaleScenario) -> int:
    """Bins of at least :data:`BIN_MINUTES` that split the base's horizon into whole steps.

    The fewest steps per bin ``s`` that divides the horizon with ``s * step_minutes >= 5``
    (the whole horizon when none does): 169 bins of 5 minutes on the bank-calls preset, 288 on
    the one-day presets of one-minute steps.
    """
    h = base.horizon
    for steps in range(1, h + 1):
        if h % steps == 0 and steps * base.step_minutes >= BIN_MINUTES - 1e-9:
            return h // steps
    return 1


class AutoscaleLoadCodec:
    """Every service's arrival rate in ``bins`` equal time bins of the episode, requests/s.

    Args:
        base: the scenario the generated load is put into; fixes the services, horizon and
            start time.
        bins: time bins per service; they must split the horizon into whole decision steps
            (default :func:`default_bins`).
        max_rate: largest valid rate, requests/s (default: twice the largest of the base's
            services' planning peaks, :meth:`~envs.ops.autoscale.scenario.ArrivalConfig.peak_rate`).
            Larger rates by more than ``tolerance`` are rejected.
        tolerance: how far below 0 or above ``max_rate`` a rate may lie and be clipped back,
            requests/s (default 1 % of ``max_rate``).
    """

    def __init__(
        self,
        base: AutoscaleScenario,
        *,
        bins: int | None = None,
        max_rate: float | None = None,
        tolerance: float | None = None,
    ) -> None:
        self.base = base
        if bins is None:
            bins = default_bins(base)
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"bins: must be an integer >= 1, got {bins!r}")
        if base.horizon % bins:
            divisors = [d for d in range(1, min(base.horizon, 400) + 1) if base.horizon % d == 0]
            raise ValueError(
                f"bins: {bins} bins do not split the horizon of {base.horizon} steps into whole "
                f"steps; allowed: a divisor of {base.horizon}, e.g. {divisors[-6:]}"
            )
        if max_rate is None:
            max_rate = 2.0 * max(s.arrivals.peak_rate() for s in base.services)
        if not (isinstance(max_rate, int | float) and math.isfinite(max_rate) and max_rate > 0):
            raise ValueError(f"max_rate: must be a finite number > 0, got {max_rate!r}")
        if tolerance is None:
            tolerance = 0.01 * max_rate
        if not (isinstance(tolerance, int | float) and math.isfinite(tolerance) and tolerance >= 0):
            raise ValueError(f"tolerance: must be a finite number >= 0, got {tolerance!r}")
        self.bins = bins
        self.max_rate = float(max_rate)
        self.tolerance = float(tolerance)

    @property
    def name(self) -> str:
        b = self.base
        return f"autoscale_load/k{b.num_services}/h{b.horizon}x{b.step_minutes:g}min/b{self.bins}"

    @property
    def num_services(self) -> int:
        return self.base.num_services

    @property
    def dim(self) -> int:
        return self.num_services * self.bins

    @property
    def steps_per_bin(self) -> int:
        return self.base.horizon // self.bins

    @property
    def bin_minutes(self) -> float:
        return self.steps_per_bin * self.base.step_minutes

    @property
    def structure(self) -> AutoscaleScenario:
        """The base with every service at ``max_rate`` throughout: the highest planning peak."""
        return self._with_rates(np.full((self.num_services, self.bins), self.max_rate))

    def encode(self, scenario: AutoscaleScenario) -> np.ndarray:
        """The rates of a scenario this codec decoded (or built alike), ``[services * bins]``.

        Raises:
            ValueError: for a scenario whose arrivals are not such a trace (see
                :func:`realise_load` for any other).
        """
        if scenario.num_services != self.num_services:
            raise ValueError(
                f"scenario {scenario.name!r}: {scenario.num_services} services, the codec has "
                f"{self.num_services}"
            )
        rows = []
        for k, service in enumerate(scenario.services):
            a = service.arrivals
            if (
                a.kind != "trace"
                or len(a.trace) != self.bins
                or a.segment_length != self.bins
                or not math.isclose(a.trace_interval, self.bin_minutes)
                or a.noise > 0
                or a.burst_rate > 0
            ):
                raise ValueError(
                    f"scenario {scenario.name!r}: services[{k}] is not a trace of {self.bins} "
                    f"bins of {self.bin_minutes:g} minutes without noise or bursts; realise its "
                    "load first (realise_load)"
                )
            rows.append(a.trace_array * a.trace_scale / (60.0 * a.trace_interval))
        return np.concatenate(rows).astype(np.float64)

    def decode(self, features: np.ndarray) -> AutoscaleScenario | None:
        """The base with the repaired rates as every service's trace, or ``None`` if invalid."""
        x = repair(features, lower=0.0, upper=self.max_rate, tolerance=self.tolerance)
        if x is None or x.shape != (self.dim,):
            return None
        try:
            return self._with_rates(x.reshape(self.num_services, self.bins))
        except ValueError:
            return None

    def rates(self, scenario: AutoscaleScenario) -> np.ndarray:
        """A realised scenario's rates as ``[services, bins]`` requests/s."""
        return self.encode(scenario).reshape(self.num_services, self.bins)

    def bin_rates(self, rates: np.ndarray) -> np.ndarray:
        """Per-step rates ``[horizon, services]`` averaged into features ``[services * bins]``."""
        per = np.asarray(rates, dtype=np.float64).reshape(self.bins, self.steps_per_bin, -1)
        return per.mean(axis=1).T.reshape(-1)

    def _with_rates(self, rates: np.ndarray) -> AutoscaleScenario:
        interval = self.bin_minutes
        services = tuple(
            dataclasses.replace(
                s,
                arrivals=ArrivalConfig(
                    kind="trace",
                    noise=0.0,
                    burst_rate=0.0,
                    # requests per bin: the trace's unit; spread over the bin again on replay
                    trace=tuple(float(v) * 60.0 * interval for v in row),
                    trace_interval=interval,
                    trace_segment=0,
                    trace_scale=1.0,
                    trace_source=GENERATED_SOURCE,
                ),
            )
            for s, row in zip(self.base.services, rates, strict=True)
        )
        return dataclasses.replace(
            self.base,
            name=f"{self.base.name.removesuffix('_generated')}_generated",
            random_start=False,
            services=services,
        )


def realise_load(
    codec: AutoscaleLoadCodec,
    scenarios: Sequence[AutoscaleScenario],
    rng: np.random.Generator,
    per_scenario: int = 1,
) -> tuple[np.ndarray, list[AutoscaleScenario]]:
    """The load of ``per_scenario`` drawn episodes of each scenario, as features and scenarios.

    Each episode's rates come from the simulator's own arrival process (profile or trace, the
    noise and the bursts, a random start where the scenario has one), averaged into the codec's
    bins; the scenarios are their decoded forms. Every scenario must have the base's services,
    horizon and step.

    Raises:
        ValueError: naming the scenario that does not fit the codec.
    """
    b = codec.base
    for sc in scenarios:
        if (sc.num_services, sc.horizon, sc.step_minutes) != (
            b.num_services,
            b.horizon,
            b.step_minutes,
        ):
            raise ValueError(
                f"scenario {sc.name!r}: {sc.num_services} services, horizon {sc.horizon} of "
                f"{sc.step_minutes:g}-minute steps; the base {b.name!r} has {b.num_services}, "
                f"{b.horizon} and {b.step_minutes:g}"
            )
    rows = [
        codec.bin_rates(arrival_rates(sc, rng)[1]) for sc in scenarios for _ in range(per_scenario)
    ]
    features = np.stack(rows)
    return features, _decoded(codec, features)


def bank_calls_days(codec: AutoscaleLoadCodec) -> tuple[np.ndarray, list[AutoscaleScenario]]:
    """Every business day of ``fpp3/bank_calls`` as the load of the base's services.

    Each service of the base must replay that trace (``arrivals.trace_source`` is
    ``fpp3/bank_calls``, as in the ``trace`` preset); it gets the day's counts scaled by its
    own ``trace_scale``. The base's episode must cover one day in the codec's bins, and the
    episode starts at the day's first interval as the preset's does.

    Raises:
        ValueError: naming what does not fit; ImportError: without the ``data`` extra.
    """
    b = codec.base
    others = [s.name for s in b.services if s.arrivals.trace_source != BANK_CALLS_SOURCE]
    if others:
        raise ValueError(
            f"the base {b.name!r} has services {others} that do not replay the bank calls; "
            "use an env whose services all do (env=ops/autoscale_trace)"
        )
    counts, per_day = bank_calls_trace()
    interval = 5.0
    if b.horizon * b.step_minutes > per_day * interval + interval - 1e-9:
        raise ValueError(
            f"the base {b.name!r} runs {b.horizon * b.step_minutes:g} minutes; a bank-calls "
            f"day has {per_day * interval:g}"
        )
    days = np.asarray(counts, dtype=np.float64).reshape(-1, per_day)
    elapsed = (np.arange(b.horizon) + 0.5) * b.step_minutes
    idx = np.minimum((elapsed // interval).astype(np.int64), per_day - 1)
    rows = []
    for day in days:
        per_step = np.stack(
            [day[idx] * s.arrivals.trace_scale / (60.0 * interval) for s in b.services], axis=1
        )
        rows.append(codec.bin_rates(per_step))
    features = np.stack(rows)
    return features, _decoded(codec, features)


def _decoded(codec: AutoscaleLoadCodec, features: np.ndarray) -> list[AutoscaleScenario]:
    out = []
    for row in features:
        sc = codec.decode(row)
        if sc is None:
            raise ValueError(
                f"real load outside the codec's range [0, {codec.max_rate:g}] requests/s (peak "
                f"{float(row.max()):g}); raise params.max_rate"
            )
        out.append(sc)
    return out
