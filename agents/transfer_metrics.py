"""Transfer metrics over learning curves: jumpstart, time to threshold, asymptote, area, ratio.

Every metric compares a *transfer* arm (started from a source agent) with a *scratch* arm (the
same agent, budget, evaluation schedule and seeds, started from random weights), following
Taylor & Stone (2009), "Transfer learning for reinforcement learning domains: a survey":

- **jumpstart**: transfer minus scratch at step 0 (before any training on the target);
- **time to threshold**: first evaluation step whose return reaches the threshold (``None``
  when the curve never does);
- **asymptotic performance**: mean of the last ``k`` points of a curve;
- **total reward**: area under the curve (trapezoid) divided by the steps it spans, i.e. the
  average evaluation return over training (so it reads in return units);
- **transfer ratio**: ``(AUC_transfer - AUC_scratch) / |AUC_scratch|``, the relative gain in
  area. Returns are often negative (costs), where the plain ratio ``AUC_t / AUC_s`` inverts its
  meaning; this form is positive exactly when transfer accumulated more reward, whatever the
  sign of the returns (``None`` when ``AUC_scratch`` is 0).

Per-seed values are paired (the same seed in both arms) and summarised over seeds by the mean
and a percentile-bootstrap confidence interval (:func:`agents.stats.stratified_bootstrap` with a
single task). With few seeds the bootstrap interval is narrow and under-covers; it is the
interval of the seeds at hand, not a guarantee.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from agents.stats import mean, stratified_bootstrap

HELPED = "transfer helped"
DID_NOT_HELP = "transfer did not help"
HURT = "transfer hurt"
ONE_SEED = "transfer cannot be judged from one seed"
"""Verdicts: the transfer interval lies above / overlaps / lies below the scratch interval."""


@dataclasses.dataclass(frozen=True)
class Curve:
    """A learning curve: mean evaluation return at increasing environment steps.

    Attributes:
        timesteps: environment steps of every point, increasing.
        values: mean evaluation return of every point.
    """

    timesteps: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        t = np.asarray(self.timesteps, dtype=np.float64)
        y = np.asarray(self.values, dtype=np.float64)
        if t.ndim != 1 or t.shape != y.shape or t.size == 0:
            raise ValueError(
                f"a curve needs matching non-empty 1-d timesteps and values, got shapes "
                f"{t.shape} and {y.shape}"
            )
        if np.any(np.diff(t) < 0):
            raise ValueError("curve timesteps must increase")
        bad = ~(np.isfinite(t) & np.isfinite(y))
        if bad.any():
            raise ValueError(
                f"a curve needs finite timesteps and values, got {y[bad].tolist()} at "
                f"timesteps {t[bad].tolist()} (a diverged evaluation: no metric can be read "
                "from it)"
            )
        object.__setattr__(self, "timesteps", t)
        object.__setattr__(self, "values", y)

    @classmethod
    def from_points(cls, points: Sequence[Mapping[str, float]]) -> Curve:
        """From :class:`agents.callbacks.LearningCurveCallback` points (``timesteps``, ``mean``)."""
        return cls(
            np.array([p["timesteps"] for p in points], dtype=np.float64),
            np.array([p["mean"] for p in points], dtype=np.float64),
        )

    def on(self, timesteps: np.ndarray) -> Curve:
        """This curve linearly interpolated at ``timesteps`` (constant beyond its ends)."""
        t = np.asarray(timesteps, dtype=np.float64)
        return Curve(t, np.interp(t, self.timesteps, self.values))


def jumpstart(transfer: Curve, scratch: Curve) -> float:
    """Transfer minus scratch at the first point (step 0: before training on the target)."""
    return float(transfer.values[0] - scratch.values[0])


def time_to_threshold(curve: Curve, threshold: float) -> float | None:
    """First timestep whose value reaches ``threshold`` (``>=``), or ``None`` if none does."""
    reached = np.flatnonzero(curve.values >= threshold)
    return float(curve.timesteps[reached[0]]) if reached.size else None


def asymptotic(curve: Curve, points: int = 3) -> float:
    """Mean of the last ``points`` values (all of them when the curve is shorter)."""
    if points < 1:
        raise ValueError(f"asymptote_points: must be >= 1, got {points}")
    return float(curve.values[-points:].mean())


def total_reward(curve: Curve) -> float:
    """Area under the curve (trapezoid) divided by the steps it spans (its mean level).

    A curve of one point has no span; its value is returned.
    """
    t, y = curve.timesteps, curve.values
    span = t[-1] - t[0]
    if span <= 0:
        return float(y.mean())
    area = float(np.sum((y[1:] + y[:-1]) * np.diff(t)) / 2.0)
    return area / float(span)


def transfer_ratio(auc_transfer: float, auc_scratch: float) -> float | None:
    """``(AUC_transfer - AUC_scratch) / |AUC_scratch|`` (``None`` when ``AUC_scratch`` is 0)."""
    if auc_scratch == 0:
        return None
    return (auc_transfer - auc_scratch) / abs(auc_scratch)


def interval(
    values: Sequence[float | None],
    *,
    confidence: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean and percentile-bootstrap interval over seeds; ``None`` values are left out.

    Returns:
        ``{"mean", "low", "high", "n", "confidence"}``; ``mean``, ``low`` and ``high`` are
        ``None`` when no value is given (with one value the interval is that value).
    """
    kept = np.array([v for v in values if v is not None], dtype=np.float64)
    if kept.size == 0:
        return {"mean": None, "low": None, "high": None, "n": 0, "confidence": confidence}
    point, low, high = stratified_bootstrap(
        [kept], mean, reps=reps, confidence=confidence, seed=seed
    )
    return {"mean": point, "low": low, "high": high, "n": int(kept.size), "confidence": confidence}


def verdict(transfer: Mapping[str, Any], scratch: Mapping[str, Any]) -> str:
    """Compare two :func:`interval` summaries: helped / did not help / hurt.

    Transfer *helped* when its whole interval lies above the scratch interval, *hurt* when it
    lies below, and *did not help* when the intervals overlap (or one is empty).
    """
    if transfer["low"] is None or scratch["low"] is None:
        return DID_NOT_HELP
    if transfer["low"] > scratch["high"]:
        return HELPED
    if transfer["high"] < scratch["low"]:
        return HURT
    return DID_NOT_HELP


def paired_verdict(gain: Mapping[str, Any]) -> str:
    """The verdict of a paired gain's :func:`interval` (transfer minus scratch, seed by seed).

    Transfer *helped* when the whole interval lies above 0, *hurt* when it lies below, and
    *did not help* when it holds 0 (or is empty). The arms share their seeds, so the paired
    gain sees an effect that the two arms' own intervals, each as wide as the seeds spread,
    can hide by overlapping (:func:`verdict`). One seed gives no interval (its "interval" is
    the one difference): such a gain *cannot be judged*, whatever its sign.
    """
    if gain["low"] is None:
        return DID_NOT_HELP
    if gain["n"] < 2:
        return ONE_SEED
    if gain["low"] > 0:
        return HELPED
    if gain["high"] < 0:
        return HURT
    return DID_NOT_HELP


def compare(
    transfer: Mapping[int, Curve],
    scratch: Mapping[int, Curve],
    *,
    threshold: float | Mapping[int, float] | None,
    asymptote_points: int = 3,
    confidence: float = 0.95,
    reps: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """All transfer metrics, per seed and over seeds.

    The transfer curve of each seed is put on the timesteps of that seed's scratch curve
    (:meth:`Curve.on`; the arms share an evaluation schedule, so this only matters when a
    point was taken a few steps apart). Both curves of a seed must span the same steps (their
    first and last points at most half the scratch curve's smallest evaluation interval apart):
    a curve that stops early, or starts late, would otherwise be extended flat, and the metrics
    would compare a guess with a measurement.

    Args:
        transfer: seed -> curve of the transfer arm.
        scratch: seed -> curve of the scratch arm (the same seeds).
        threshold: return that counts as solved for the time to threshold (``None``: skipped),
            one for every seed or ``seed -> threshold`` (e.g. a baseline's score on the very
            episodes that seed's curve points are evaluated on).
        asymptote_points: points averaged for the asymptotic performance.
        confidence: coverage of the intervals.
        reps: bootstrap resamples.
        seed: seed of the resampling.

    Raises:
        ValueError: when the arms have other seeds, a seed's curves span other steps, or a
            threshold is missing or not finite.

    Returns:
        ``{"seeds", "threshold", "per_seed": {seed: {...}}, "aggregate": {metric: {...}},
        "verdicts": {...}, "verdict": str}``. In ``aggregate`` every arm metric has a
        ``transfer`` and a ``scratch`` interval; paired metrics (``jumpstart``,
        ``asymptotic_gain``, ``total_reward_gain``, ``transfer_ratio``) have one interval;
        ``time_to_threshold`` intervals cover the seeds that reached the threshold
        (``reached`` counts them); ``time_to_threshold_censored`` counts a seed that never
        reached it at the last curve point (the budget: the steps the arm trained, i.e.
        ``total_timesteps`` rounded up to SB3's next whole rollout; ``per_seed`` rows hold it
        as ``budget``), a lower bound of its time.
        ``verdicts`` (at the start, at the end, over the whole budget) read the paired
        ``jumpstart``, ``asymptotic_gain`` and ``total_reward_gain`` (:func:`paired_verdict`).
    """
    if sorted(transfer) != sorted(scratch):
        raise ValueError(
            f"transfer and scratch curves need the same seeds, got {sorted(transfer)} and "
            f"{sorted(scratch)}"
        )
    seeds = sorted(scratch)
    if not seeds:
        raise ValueError("no curves to compare")
    if isinstance(threshold, Mapping) and sorted(threshold) != seeds:
        raise ValueError(f"threshold: expected one value per seed {seeds}, got {sorted(threshold)}")
    if reps < 1:
        raise ValueError(f"bootstrap_reps: must be >= 1, got {reps}")
    per_seed: dict[int, dict[str, Any]] = {}
    for s in seeds:
        level = threshold[s] if isinstance(threshold, Mapping) else threshold
        if level is not None and not np.isfinite(level):
            raise ValueError(f"threshold: must be a finite return, got {level} for seed {s}")
        sc = scratch[s]
        _check_span(transfer[s], sc, s)
        tr = transfer[s].on(sc.timesteps)
        auc_t, auc_s = total_reward(tr), total_reward(sc)
        asym_t, asym_s = asymptotic(tr, asymptote_points), asymptotic(sc, asymptote_points)
        per_seed[s] = {
            "jumpstart": jumpstart(tr, sc),
            "initial": {"transfer": float(tr.values[0]), "scratch": float(sc.values[0])},
            "threshold": level,
            "budget": float(sc.timesteps[-1]),
            "time_to_threshold": {
                "transfer": None if level is None else time_to_threshold(tr, level),
                "scratch": None if level is None else time_to_threshold(sc, level),
            },
            "asymptotic": {"transfer": asym_t, "scratch": asym_s},
            "asymptotic_gain": asym_t - asym_s,
            "total_reward": {"transfer": auc_t, "scratch": auc_s},
            "total_reward_gain": auc_t - auc_s,
            "transfer_ratio": transfer_ratio(auc_t, auc_s),
        }

    def over_seeds(get: Any) -> dict[str, Any]:
        return interval(
            [get(per_seed[s]) for s in seeds], confidence=confidence, reps=reps, seed=seed
        )

    aggregate: dict[str, Any] = {}
    for name in ("initial", "asymptotic", "total_reward", "time_to_threshold"):
        aggregate[name] = {
            arm: over_seeds(lambda row, n=name, a=arm: row[n][a]) for arm in ("transfer", "scratch")
        }
    for arm in ("transfer", "scratch"):
        aggregate["time_to_threshold"][arm]["reached"] = sum(
            per_seed[s]["time_to_threshold"][arm] is not None for s in seeds
        )
    # a seed that never reached the threshold counts at the budget: a lower bound of its time,
    # so an arm that often fails to reach it is not flattered by averaging only its successes
    aggregate["time_to_threshold_censored"] = {
        arm: over_seeds(
            lambda row, a=arm: (
                None
                if row["threshold"] is None
                else (
                    row["time_to_threshold"][a]
                    if row["time_to_threshold"][a] is not None
                    else row["budget"]
                )
            )
        )
        for arm in ("transfer", "scratch")
    }
    for name in ("jumpstart", "asymptotic_gain", "total_reward_gain", "transfer_ratio"):
        aggregate[name] = over_seeds(lambda row, n=name: row[n])

    # from the paired gains: the same seeds on both arms (see paired_verdict)
    verdicts = {
        name: paired_verdict(aggregate[gain])
        for name, gain in (
            ("initial", "jumpstart"),
            ("asymptotic", "asymptotic_gain"),
            ("total_reward", "total_reward_gain"),
        )
    }
    return {
        "seeds": seeds,
        "threshold": dict(threshold) if isinstance(threshold, Mapping) else threshold,
        "asymptote_points": asymptote_points,
        "per_seed": per_seed,
        "aggregate": aggregate,
        "verdicts": verdicts,
        "verdict": sentence(verdicts, len(seeds), confidence),
    }


def _check_span(transfer: Curve, scratch: Curve, seed: int) -> None:
    """Raise unless both curves of ``seed`` start and end at the same steps (within a point)."""
    steps = np.diff(scratch.timesteps)
    steps = steps[steps > 0]
    tolerance = float(steps.min()) / 2.0 if steps.size else 0.0
    t, s = transfer.timesteps, scratch.timesteps
    if abs(t[0] - s[0]) > tolerance or abs(t[-1] - s[-1]) > tolerance:
        raise ValueError(
            f"seed {seed}: the transfer curve spans steps {t[0]:g} to {t[-1]:g} and the "
            f"scratch curve {s[0]:g} to {s[-1]:g}; the arms of a seed must be evaluated on "
            "the same schedule over the same budget (total_timesteps, eval.eval_freq)"
        )


def sentence(verdicts: Mapping[str, str], seeds: int, confidence: float) -> str:
    """One plain-language line from the verdicts (total reward first, then start and end)."""
    if seeds < 2:
        return (
            "Transfer cannot be judged from one seed: a paired difference needs two or more "
            "seeds for an interval (set seeds to a list of several)."
        )
    pct = f"{confidence:.0%}"
    main = verdicts["total_reward"]
    detail = (
        f"at the start: {verdicts['initial'].removeprefix('transfer ')}; "
        f"at the end: {verdicts['asymptotic'].removeprefix('transfer ')}"
    )
    return (
        f"{main[0].upper()}{main[1:]} over the whole budget (total reward, {pct} intervals "
        f"over {seeds} seed{'s' if seeds != 1 else ''}; {detail})."
    )
