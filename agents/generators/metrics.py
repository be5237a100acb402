"""How realistic, diverse and valid generated scenarios are, measured on their features.

All functions take feature matrices ``[n, dim]`` (see :class:`~agents.generators.base.ScenarioCodec`).
Distances are computed on features standardised with the *real* data's mean and standard
deviation, so that every feature counts alike and the scale is fixed by the real data.

- :func:`mmd` (RBF kernel, median-heuristic bandwidth) and :func:`energy_distance`;
- :func:`band_test`: the distance between generated and held-out real scenarios, judged
  against the *real-vs-real band*: the distribution of the same distance between two random
  halves of the real data;
- :func:`permutation_test`: the classic permutation p-value of either distance;
- :func:`classifier_test`: a classifier two-sample test (held-out accuracy near 0.5, exact
  binomial p-value);
- :func:`diversity` and :func:`coverage`; :func:`evaluate` gathers everything.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from agents.generators.base import ScenarioGenerator

Distance = Callable[[np.ndarray, np.ndarray], float]


# --- distances ----------------------------------------------------------------------------
def standardiser(real: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function that standardises features with ``real``'s per-feature mean and std."""
    real = np.asarray(real, dtype=np.float64)
    mean = real.mean(axis=0)
    std = real.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return lambda x: (np.asarray(x, dtype=np.float64) - mean) / std


def _sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(d, 0.0)


def median_bandwidth(x: np.ndarray) -> float:
    """The median heuristic: median pairwise Euclidean distance among the rows of ``x``."""
    d = np.sqrt(_sq_dists(x, x))
    d = d[np.triu_indices(len(x), k=1)]
    med = float(np.median(d)) if d.size else 1.0
    return med if med > 0 else 1.0


def mmd(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """Unbiased squared maximum mean discrepancy with an RBF kernel.

    Args:
        x: samples ``[n, dim]``.
        y: samples ``[m, dim]``.
        bandwidth: kernel length scale ``sigma`` in ``exp(-|a - b|^2 / (2 sigma^2))``;
            ``None``: the median heuristic on the pooled samples.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if bandwidth is None:
        bandwidth = median_bandwidth(np.concatenate([x, y]))
    gamma = 1.0 / (2.0 * bandwidth**2)
    kxx = np.exp(-gamma * _sq_dists(x, x))
    kyy = np.exp(-gamma * _sq_dists(y, y))
    kxy = np.exp(-gamma * _sq_dists(x, y))
    n, m = len(x), len(y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2.0 * kxy.mean()
    )


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` (within terms unbiased)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, m = len(x), len(y)
    dxy = np.sqrt(_sq_dists(x, y)).mean()
    dxx = np.sqrt(_sq_dists(x, x)).sum() / (n * (n - 1))
    dyy = np.sqrt(_sq_dists(y, y)).sum() / (m * (m - 1))
    return float(2.0 * dxy - dxx - dyy)


def make_distance(name: str, real: np.ndarray) -> Distance:
    """``"mmd"`` (bandwidth fixed by the median heuristic on standardised ``real``) or ``"energy"``.

    The returned function expects features already standardised with :func:`standardiser`.
    """
    if name == "mmd":
        bw = median_bandwidth(standardiser(real)(real))
        return lambda a, b: mmd(a, b, bw)
    if name == "energy":
        return energy_distance
    raise ValueError(f"distance: {name!r} is not allowed; allowed: ['mmd', 'energy']")


# --- tests --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BandResult:
    """Outcome of :func:`band_test`.

    Attributes:
        distance: name of the distance.
        generated: median over splits of the distance between a real half and generated
            samples of the same size.
        band: the real-vs-real distances, one per split.
        threshold: the ``1 - alpha`` quantile of ``band``.
        p_value: fraction of real-vs-real distances at least as large as ``generated``.
        passed: ``generated <= threshold``.
    """

    distance: str
    generated: float
    band: np.ndarray
    threshold: float
    p_value: float
    passed: bool

    def summary(self) -> dict[str, float | bool | str]:
        """Scalars for logs and reports."""
        return {
            "distance": self.distance,
            "generated": self.generated,
            "band_median": float(np.median(self.band)),
            "threshold": self.threshold,
            "p_value": self.p_value,
            "passed": self.passed,
            "band_low": float(np.quantile(self.band, 0.05)),
            "band_high": float(np.quantile(self.band, 0.95)),
        }


def band_test(
    real: np.ndarray,
    generated: np.ndarray,
    rng: np.random.Generator,
    *,
    distance: str = "mmd",
    splits: int = 100,
    alpha: float = 0.05,
) -> BandResult:
    """Is the generated-vs-real distance within the real-vs-real band?

    ``real`` (held out: not used to fit the generator) is split ``splits`` times into two
    random halves A and B of size ``m = len(real) // 2``. The band is the distance between A and
    B; the generated statistic pairs each A with ``m`` generated samples drawn without
    replacement, and takes the median over splits. The set passes if that median is at most
    the ``1 - alpha`` quantile of the band.

    Args:
        real: held-out real features ``[n, dim]``, ``n >= 4``.
        generated: generated features ``[k, dim]``, ``k >= len(real) // 2``.
        rng: draws the splits.
        distance: ``"mmd"`` or ``"energy"``.
        splits: number of random halvings.
        alpha: level of the test.
    """
    real = np.asarray(real, dtype=np.float64)
    generated = np.asarray(generated, dtype=np.float64)
    m = len(real) // 2
    if m < 2 or len(generated) < m:
        raise ValueError(
            f"band_test: need >= 4 real and >= {m} generated samples, "
            f"got {len(real)} and {len(generated)}"
        )
    std = standardiser(real)
    dist = make_distance(distance, real)
    r, g = std(real), std(generated)
    band = np.empty(splits)
    gen = np.empty(splits)
    for s in range(splits):
        perm = rng.permutation(len(real))
        a, b = r[perm[:m]], r[perm[m : 2 * m]]
        band[s] = dist(a, b)
        gen[s] = dist(a, g[rng.choice(len(g), size=m, replace=False)])
    stat = float(np.median(gen))
    threshold = float(np.quantile(band, 1.0 - alpha))
    p_value = float((1 + np.sum(band >= stat)) / (1 + splits))
    return BandResult(distance, stat, band, threshold, p_value, stat <= threshold)


def band_tests(
    real: np.ndarray,
    generated: np.ndarray,
    rng: np.random.Generator,
    *,
    splits: int = 100,
    alpha: float = 0.05,
) -> dict[str, dict[str, float | bool | str]]:
    """:func:`band_test` with MMD, then energy distance: ``{"mmd": summary, "energy": summary}``."""
    return {
        name: band_test(real, generated, rng, distance=name, splits=splits, alpha=alpha).summary()
        for name in ("mmd", "energy")
    }


def permutation_test(
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    distance: str = "mmd",
    permutations: int = 200,
) -> tuple[float, float]:
    """Permutation two-sample test: ``(distance, p-value)`` of ``x`` against ``y``.

    Features are standardised with ``x``'s statistics (pass the real data as ``x``).
    """
    std = standardiser(x)
    dist = make_distance(distance, x)
    pooled = np.concatenate([std(x), std(y)])
    n = len(x)
    stat = dist(pooled[:n], pooled[n:])
    count = 0
    for _ in range(permutations):
        perm = rng.permutation(len(pooled))
        count += dist(pooled[perm[:n]], pooled[perm[n:]]) >= stat
    return stat, (1 + count) / (1 + permutations)


@dataclasses.dataclass(frozen=True)
class ClassifierResult:
    """Outcome of :func:`classifier_test`.

    Attributes:
        accuracy: held-out accuracy of telling real from generated.
        n_test: number of held-out samples.
        p_value: one-sided binomial p-value of that accuracy under chance (0.5).
        passed: ``p_value > alpha``.
    """

    accuracy: float
    n_test: int
    p_value: float
    passed: bool


def binomial_tail(k: int, n: int) -> float:
    """``P[Binomial(n, 1/2) >= k]``, computed exactly (in integers, for any ``n``)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    term, total = math.comb(n, k), 0
    for i in range(k, n + 1):
        total += term
        term = term * (n - i) // (i + 1)
    return total / 2**n


def _quadratic(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, x * x, np.ones((len(x), 1))], axis=1)


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, iterations: int = 25) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method; returns the weights."""
    w = np.zeros(x.shape[1])
    reg = l2 * np.eye(x.shape[1])
    reg[-1, -1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + reg @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + reg + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def classifier_test(
    real: np.ndarray,
    generated: np.ndarray,
    rng: np.random.Generator,
    *,
    classifier: str = "logistic",
    alpha: float = 0.05,
    train_fraction: float = 0.5,
    l2: float = 1.0,
    k: int = 5,
) -> ClassifierResult:
    """Classifier two-sample test (Lopez-Paz and Oquab, 2017).

    Equal numbers of real and generated samples are labelled, shuffled and split; a classifier
    is fitted on one part and its accuracy on the other is compared with chance by an exact
    one-sided binomial test. Indistinguishable sets give accuracy near 0.5.

    Args:
        real: real features ``[n, dim]``.
        generated: generated features ``[m, dim]``; both are cut to ``min(n, m)`` samples.
        rng: shuffles and splits.
        classifier: ``"logistic"`` (logistic regression on standardised features and their
            squares, so shifts in mean and in spread are both visible) or ``"knn"``
            (``k``-nearest-neighbour vote, sees any difference given enough samples).
        alpha: level of the test.
        train_fraction: share of the samples used for fitting.
        l2: ridge penalty of the logistic regression.
        k: neighbours of the k-NN vote.
    """
    n = min(len(real), len(generated))
    std = standardiser(real)
    r = std(np.asarray(real)[rng.permutation(len(real))[:n]])
    g = std(np.asarray(generated)[rng.permutation(len(generated))[:n]])
    x = np.concatenate([r, g])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    perm = rng.permutation(2 * n)
    cut = int(round(train_fraction * 2 * n))
    tr, te = perm[:cut], perm[cut:]
    if classifier == "logistic":
        w = _fit_logistic(_quadratic(x[tr]), y[tr], l2)
        pred = (_quadratic(x[te]) @ w > 0).astype(float)
    elif classifier == "knn":
        d = _sq_dists(x[te], x[tr])
        nearest = np.argpartition(d, min(k, len(tr) - 1), axis=1)[:, :k]
        votes = y[tr][nearest].mean(axis=1)
        pred = np.where(votes == 0.5, rng.integers(0, 2, len(te)), votes > 0.5).astype(float)
    else:
        raise ValueError(f"classifier: {classifier!r} is not allowed; allowed: ['logistic', 'knn']")
    correct = int((pred == y[te]).sum())
    p = binomial_tail(correct, len(te))
    return ClassifierResult(correct / len(te), len(te), p, p > alpha)


# --- diversity and coverage ---------------------------------------------------------------
def diversity(features: np.ndarray, reference: np.ndarray | None = None) -> float:
    """Mean pairwise Euclidean distance, on features standardised by ``reference`` (or themselves)."""
    x = standardiser(features if reference is None else reference)(features)
    d = np.sqrt(_sq_dists(x, x))
    n = len(x)
    return float(d.sum() / (n * (n - 1))) if n > 1 else 0.0


def coverage(real: np.ndarray, generated: np.ndarray, k: int = 5) -> float:
    """Fraction of real points with a generated point inside their real k-NN ball.

    The ball of a real point has the radius of its ``k``-th nearest other real point
    (Naeem et al., 2020). 1 means every region of the real data is reached; a collapsed
    generator scores low.

    Raises:
        ValueError: naming ``k`` unless ``1 <= k <= len(real) - 1`` (each real point needs
            ``k`` other real points).
    """
    if not 1 <= k <= len(real) - 1:
        raise ValueError(
            f"k: must be between 1 and len(real) - 1 = {len(real) - 1} (each real point needs k "
            f"other real points), got {k}"
        )
    std = standardiser(real)
    r, g = std(real), std(generated)
    drr = np.sqrt(_sq_dists(r, r))
    np.fill_diagonal(drr, np.inf)
    radius = np.partition(drr, k - 1, axis=1)[:, k - 1]
    nearest_gen = np.sqrt(_sq_dists(r, g)).min(axis=1)
    return float(np.mean(nearest_gen <= radius))


# --- all together -------------------------------------------------------------------------
def evaluate(
    generator: ScenarioGenerator[Any],
    real: np.ndarray,
    rng: np.random.Generator,
    *,
    n: int | None = None,
    splits: int = 100,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Realism, diversity, coverage and invalid rate of ``generator`` against held-out ``real``.

    Generates ``n`` (default ``len(real)``) valid scenarios, encodes them and measures them;
    the invalid rate counts only the draws of this call. The report gives the sample sizes
    (``n_real``, ``n_generated``), ``splits``, ``alpha`` and the neighbours ``k`` of the k-NN
    test and of coverage (``coverage_k``: 5, fewer with under 6 real scenarios).
    """
    real = np.asarray(real, dtype=np.float64)
    n = len(real) if n is None else n
    k = max(1, min(5, len(real) - 1))
    before = dataclasses.replace(generator.stats)
    scenarios = generator.sample(n, rng)
    proposed = generator.stats.proposed - before.proposed
    rejected = generator.stats.rejected - before.rejected
    gen = np.stack([generator.codec.encode(s) for s in scenarios])
    out: dict[str, Any] = {"n_real": len(real), "n_generated": n, "alpha": alpha, "splits": splits}
    out.update(band_tests(real, gen, rng, splits=splits, alpha=alpha))
    for name in ("logistic", "knn"):
        c = classifier_test(real, gen, rng, classifier=name, alpha=alpha, k=k)
        out[f"c2st_{name}"] = dataclasses.asdict(c)
    out["diversity"] = diversity(gen, real)
    out["diversity_real"] = diversity(real)
    out["coverage"] = coverage(real, gen, k=k)
    out["coverage_k"] = k
    out["invalid_rate"] = rejected / proposed if proposed else 0.0
    return out
