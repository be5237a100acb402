"""Statistics over runs: interquartile mean, stratified bootstrap intervals, performance profiles.

Follows Agarwal et al. (2021), "Deep RL at the edge of the statistical precipice" (the
``rliable`` library): scores are per run (one per seed and task), the interquartile mean (IQM)
is the mean of the middle 50 % of them, and 95 % confidence intervals come from a percentile
bootstrap that resamples runs within each task (stratified), so every task keeps its weight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]
"""Maps samples ``[..., runs]`` to one value per leading index ``[...]``."""


def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean over the last axis: the mean after cutting 25 % from each end.

    ``floor(0.25 * n)`` values are cut from each end, as ``scipy.stats.trim_mean(x, 0.25)``
    and rliable do: with fewer than 4 runs nothing is cut and the IQM is the mean. A NaN score
    makes the IQM NaN, as it makes the mean (sorting would otherwise cut it as the largest).
    """
    x = np.sort(np.asarray(scores, dtype=np.float64), axis=-1)
    n = x.shape[-1]
    if n == 0:
        raise ValueError("iqm: no scores")
    cut = int(np.floor(0.25 * n))
    # np.sort puts NaN last, so the last value is NaN exactly when any score is
    trimmed = x[..., cut : n - cut].mean(axis=-1)
    return np.where(np.isnan(x[..., -1]), np.nan, trimmed)[()]


def mean(scores: np.ndarray) -> np.ndarray:
    """Mean over the last axis."""
    return np.asarray(scores, dtype=np.float64).mean(axis=-1)


def stratified_bootstrap(
    scores: Sequence[np.ndarray],
    statistic: Statistic,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Point estimate and percentile-bootstrap interval of ``statistic`` over all runs.

    Args:
        scores: one array of run scores per task (tasks may have different numbers of runs).
        statistic: computed over the runs of all tasks together (e.g. :func:`iqm`).
        reps: bootstrap resamples.
        confidence: coverage of the interval.
        seed: seed of the resampling.

    Returns:
        ``(estimate, low, high)``; with a single run per task the interval is the estimate.

    Raises:
        ValueError: if a task has no score, ``reps`` is below 1 or ``confidence`` is not in
            ``(0, 1)``.
    """
    _check_resampling(reps, confidence)
    tasks = [np.asarray(s, dtype=np.float64).ravel() for s in scores]
    if not tasks or any(t.size == 0 for t in tasks):
        raise ValueError("stratified_bootstrap: every task needs at least one score")
    point = float(statistic(np.concatenate(tasks)))
    rng = np.random.default_rng(seed)
    samples = np.concatenate(
        [t[rng.integers(0, t.size, size=(reps, t.size))] for t in tasks], axis=1
    )
    values = statistic(samples)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return point, float(low), float(high)


def performance_profile(
    runs: Sequence[np.ndarray],
    taus: np.ndarray,
    *,
    reps: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fraction of episodes scoring above each threshold, averaged over runs, with a band.

    Args:
        runs: the episode scores of every run (e.g. evaluation returns of each seed).
        taus: thresholds.
        reps: bootstrap resamples of the runs for the band.
        confidence: coverage of the band.
        seed: seed of the resampling.

    Returns:
        ``(profile, low, high)``, each ``[len(taus)]``.

    Raises:
        ValueError: if there is no run or a run has no episode, ``reps`` is below 1 or
            ``confidence`` is not in ``(0, 1)``.
    """
    _check_resampling(reps, confidence)
    if not runs or any(np.asarray(r).size == 0 for r in runs):
        raise ValueError("performance_profile: needs at least one run, each with an episode")
    taus = np.asarray(taus, dtype=np.float64)
    fractions = np.stack(
        [(np.asarray(r, dtype=np.float64)[:, None] > taus[None, :]).mean(axis=0) for r in runs]
    )  # [runs, taus]
    profile = fractions.mean(axis=0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(runs), size=(reps, len(runs)))
    boot = fractions[idx].mean(axis=1)  # [reps, taus]
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
    return profile, low, high


def _check_resampling(reps: int, confidence: float) -> None:
    if reps < 1:
        raise ValueError(f"reps: must be >= 1, got {reps}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: must be in (0, 1), got {confidence}")
