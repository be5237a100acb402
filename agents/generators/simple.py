"""Generators without learning: the fixed list, and domain randomisation."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from agents.generators.base import ScenarioCodec, ScenarioGenerator, ScenarioT

DISTRIBUTIONS = ("uniform", "normal", "lognormal")


class ListGenerator(ScenarioGenerator[ScenarioT]):
    """Resamples the training scenarios uniformly with replacement.

    Scenarios are stored as features, so what it returns are the decoded training scenarios
    (the codec's base plus the encoded fields), one of them per draw.
    """

    kind: ClassVar[str] = "list"

    def __init__(self, codec: ScenarioCodec[ScenarioT], *, max_rounds: int = 50) -> None:
        super().__init__(codec, max_rounds=max_rounds)
        self.features = np.zeros((0, codec.dim))
        self.labels = np.zeros(0, dtype=np.int64)

    def _fit(self, features: np.ndarray, labels: np.ndarray | None) -> None:
        self.features = features.copy()
        self.labels = np.zeros(len(features), dtype=np.int64) if labels is None else labels

    def sample_features(
        self, n: int, rng: np.random.Generator, label: Hashable | None = None
    ) -> np.ndarray:
        if label is None:
            return self.features[rng.integers(len(self.features), size=n)]
        rows = np.flatnonzero(self.labels == self.label_index(label, 1, rng)[0])
        return self.features[rows[rng.integers(len(rows), size=n)]]

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {"features": self.features, "labels": self.labels}

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.features = np.asarray(arrays["features"], dtype=np.float64)
        self.labels = np.asarray(arrays["labels"], dtype=np.int64)


class ParametricGenerator(ScenarioGenerator[ScenarioT]):
    """Domain randomisation: every feature drawn independently from its own distribution.

    ``uniform`` draws from ``[low, high]``; :meth:`fit` sets them to each feature's range in the
    data, widened by ``margin`` times the range on each side. ``normal`` and ``lognormal`` fit
    each feature's mean and standard deviation (of the log for ``lognormal``, which needs
    positive features). Fitted with labels, it keeps one set of parameters per label.
    Correlations between features are deliberately ignored.

    Args:
        codec: the family's codec.
        distribution: one of ``uniform``, ``normal`` or ``lognormal``.
        margin: widening of fitted uniform ranges, as a fraction of the range.
        max_rounds: see :class:`~agents.generators.base.ScenarioGenerator`.
    """

    kind: ClassVar[str] = "parametric"

    def __init__(
        self,
        codec: ScenarioCodec[ScenarioT],
        *,
        distribution: str = "uniform",
        margin: float = 0.0,
        max_rounds: int = 50,
    ) -> None:
        super().__init__(codec, max_rounds=max_rounds)
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"distribution: {distribution!r} is not allowed; allowed: {DISTRIBUTIONS}"
            )
        if margin < 0:
            raise ValueError(f"margin: must be >= 0, got {margin}")
        self.distribution = distribution
        self.margin = float(margin)
        self.params = np.zeros((2, 1, codec.dim))
        """``[2, labels, dim]``: (low, high) or (mean, std), per label and feature."""

    @classmethod
    def from_ranges(
        cls,
        codec: ScenarioCodec[ScenarioT],
        low: float | Sequence[float] | np.ndarray,
        high: float | Sequence[float] | np.ndarray,
        *,
        max_rounds: int = 50,
    ) -> ParametricGenerator[ScenarioT]:
        """A uniform generator over given per-feature ranges, ready without :meth:`fit`."""
        lo = np.broadcast_to(np.asarray(low, dtype=np.float64), (codec.dim,))
        hi = np.broadcast_to(np.asarray(high, dtype=np.float64), (codec.dim,))
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()) or (hi < lo).any():
            raise ValueError("low/high: need finite ranges with low <= high for every feature")
        gen = cls(codec, distribution="uniform", max_rounds=max_rounds)
        gen.params = np.stack([lo, hi])[:, None, :].copy()
        gen.fitted = True
        return gen

    def _fit(self, features: np.ndarray, labels: np.ndarray | None) -> None:
        groups = (
            [features]
            if labels is None
            else [features[labels == k] for k in range(labels.max() + 1)]
        )
        params = np.zeros((2, len(groups), self.codec.dim))
        for k, x in enumerate(groups):
            if self.distribution == "uniform":
                lo, hi = x.min(axis=0), x.max(axis=0)
                pad = self.margin * (hi - lo)
                params[0, k], params[1, k] = lo - pad, hi + pad
            else:
                if self.distribution == "lognormal":
                    if (x <= 0).any():
                        raise ValueError("features: lognormal needs strictly positive features")
                    x = np.log(x)
                params[0, k], params[1, k] = x.mean(axis=0), x.std(axis=0)
        self.params = params

    def sample_features(
        self, n: int, rng: np.random.Generator, label: Hashable | None = None
    ) -> np.ndarray:
        k = self.label_index(label, n, rng) if self.conditional else np.zeros(n, dtype=np.int64)
        a, b = self.params[0, k], self.params[1, k]
        if self.distribution == "uniform":
            return a + (b - a) * rng.random((n, self.codec.dim))
        z = a + b * rng.standard_normal((n, self.codec.dim))
        return np.exp(z) if self.distribution == "lognormal" else z

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"distribution": self.distribution, "margin": self.margin}, {"params": self.params}

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.params = np.asarray(arrays["params"], dtype=np.float64)
