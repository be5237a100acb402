"""A synthetic ground-truth family: daily demand profiles with a known distribution.

Generators are judged against it because any number of fresh, independent "real" scenarios can
be drawn from the truth. A profile is a demand rate (vehicles/hour, requests/hour, units/hour) for
each of ``periods`` equal slices of a day, drawn from a two-component mixture:

- ``weekday`` (probability ``weekday_prob``): a morning and an evening peak;
- ``weekend``: one broad midday peak.

Each peak is a Gaussian bump whose centre, width and height are random (normal centres,
log-normal heights), on top of a log-normal base rate; every period then gets independent
log-normal noise. All rates are positive; their distribution is fully specified by
:class:`SyntheticProfileFamily`'s fields.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from agents.generators.codecs import repair

LABELS = ("weekday", "weekend")


@dataclasses.dataclass(frozen=True)
class DemandProfile:
    """A daily demand profile.

    Attributes:
        rates: demand rate of each period of the day, units/hour (all finite and >= 0).
        label: ``weekday``, ``weekend`` or ``""`` when unknown (e.g. generated).
    """

    rates: tuple[float, ...]
    label: str = ""

    def __post_init__(self) -> None:
        if not self.rates:
            raise ValueError("rates: need at least one period")
        for t, v in enumerate(self.rates):
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"rates[{t}]: must be a finite number >= 0, got {v}")


@dataclasses.dataclass(frozen=True)
class SyntheticProfileFamily:
    """The known distribution of :class:`DemandProfile` (all times in hours of the day).

    Attributes:
        periods: number of equal periods in a day.
        weekday_prob: probability of a ``weekday`` profile.
        base_rate: median base rate, units/hour; log-normal with sigma ``base_sigma``.
        base_sigma: log-scale spread of the base rate.
        peak_height: median peak heights (morning, evening, weekend midday), units/hour.
        peak_sigma: log-scale spread of every peak height.
        peak_centre: mean peak centres (morning, evening, weekend midday), hours.
        centre_std: standard deviation of every peak centre, hours.
        peak_width: peak widths (standard deviation of the bump), hours: weekday, weekend.
        noise_sigma: log-scale spread of the independent per-period noise.
    """

    periods: int = 24
    weekday_prob: float = 0.6
    base_rate: float = 80.0
    base_sigma: float = 0.2
    peak_height: tuple[float, float, float] = (400.0, 450.0, 250.0)
    peak_sigma: float = 0.25
    peak_centre: tuple[float, float, float] = (8.0, 17.5, 13.5)
    centre_std: float = 0.6
    peak_width: tuple[float, float] = (1.5, 3.0)
    noise_sigma: float = 0.05

    def sample_rates(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` profiles: rates ``[n, periods]`` and labels ``[n]`` (0 weekday, 1 weekend)."""
        t = (np.arange(self.periods) + 0.5) * (24.0 / self.periods)
        weekend = rng.random(n) >= self.weekday_prob
        base = self.base_rate * np.exp(self.base_sigma * rng.standard_normal(n))
        heights = np.asarray(self.peak_height) * np.exp(
            self.peak_sigma * rng.standard_normal((n, 3))
        )
        centres = np.asarray(self.peak_centre) + self.centre_std * rng.standard_normal((n, 3))

        def bump(k: int, width: float) -> np.ndarray:
            z = (t[None, :] - centres[:, k : k + 1]) / width
            return heights[:, k : k + 1] * np.exp(-0.5 * z * z)

        w_day, w_end = self.peak_width
        weekday_curve = bump(0, w_day) + bump(1, w_day)
        weekend_curve = bump(2, w_end)
        curve = np.where(weekend[:, None], weekend_curve, weekday_curve) + base[:, None]
        noise = np.exp(self.noise_sigma * rng.standard_normal((n, self.periods)))
        return curve * noise, weekend.astype(np.int64)

    def sample(self, n: int, rng: np.random.Generator) -> list[DemandProfile]:
        """Draw ``n`` labelled profiles from the true distribution."""
        rates, labels = self.sample_rates(n, rng)
        return [
            DemandProfile(tuple(float(v) for v in r), LABELS[k])
            for r, k in zip(rates, labels, strict=True)
        ]


class ProfileCodec:
    """Features of a :class:`DemandProfile`: its ``periods`` rates, units/hour.

    Args:
        periods: number of periods of a profile.
        max_rate: largest valid rate, units/hour.
        tolerance: how far below 0 or above ``max_rate`` a rate may lie and be clipped back;
            anything further out is rejected.
    """

    def __init__(self, periods: int = 24, *, max_rate: float = 5000.0, tolerance: float = 1.0):
        if periods < 1:
            raise ValueError(f"periods: must be >= 1, got {periods}")
        if not (math.isfinite(max_rate) and max_rate > 0):
            raise ValueError(f"max_rate: must be a finite number > 0, got {max_rate}")
        if not (math.isfinite(tolerance) and tolerance >= 0):
            raise ValueError(f"tolerance: must be a finite number >= 0, got {tolerance}")
        self.periods = periods
        self.max_rate = float(max_rate)
        self.tolerance = float(tolerance)

    @property
    def name(self) -> str:
        return f"demand_profile/p{self.periods}"

    @property
    def dim(self) -> int:
        return self.periods

    @property
    def structure(self) -> DemandProfile:
        return DemandProfile((self.max_rate,) * self.periods)

    def encode(self, scenario: DemandProfile) -> np.ndarray:
        if len(scenario.rates) != self.periods:
            raise ValueError(f"rates: expected {self.periods} periods, got {len(scenario.rates)}")
        return np.asarray(scenario.rates, dtype=np.float64)

    def decode(self, features: np.ndarray) -> DemandProfile | None:
        x = repair(features, lower=0.0, upper=self.max_rate, tolerance=self.tolerance)
        if x is None or x.shape != (self.periods,):
            return None
        return DemandProfile(tuple(float(v) for v in x))
