"""Item corpora and user populations of the recommendation scenarios (numpy only).

A :class:`Catalogue` is the part of a scenario that is data rather than configuration: the
items' topic vectors, quality, clickbait, length and popularity, and the distribution of the
users' initial interests. Synthetic catalogues are generated from the scenario's
``corpus_seed``; the MovieLens catalogue is fitted from the ratings (see
:mod:`envs.recsys.movielens`). Catalogues are cached per process, so every env of a scenario
shares one.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from envs.recsys.scenario import RecScenario

MIN_LENGTH = 0.5
"""Shortest item, minutes."""


@dataclasses.dataclass(frozen=True, eq=False)
class Catalogue:
    """The corpus of one scenario and its user population (read-only arrays).

    Attributes:
        topics: ``[N, T]`` topic vectors (entries in [-1, 1]).
        quality: ``[N]`` item quality.
        clickbait: ``[N]`` clickbait in [0, 1].
        length: ``[N]`` item length, minutes.
        popularity: ``[N]`` non-negative popularity (rating counts for MovieLens, the mean score
            over the user population for synthetic corpora, shifted to be >= 0).
        popularity_feature: ``[N]`` popularity scaled to [0, 1] for observations.
        interest_mean: ``[T]`` mean of ``normal`` initial interests.
        interest_chol: ``[T, T]`` Cholesky factor of their covariance.
        score_gain: multiplies the scenario's ``score_scale`` (MovieLens rescales its factors
            into [-1, 1] and restores their product here).
        key: identifies the catalogue (scenarios sharing a key share the corpus).
    """

    topics: np.ndarray
    quality: np.ndarray
    clickbait: np.ndarray
    length: np.ndarray
    popularity: np.ndarray
    popularity_feature: np.ndarray
    interest_mean: np.ndarray
    interest_chol: np.ndarray
    score_gain: float
    key: tuple[object, ...]

    @property
    def num_items(self) -> int:
        """Corpus size ``N``."""
        return int(self.topics.shape[0])


CATALOGUE_FIELDS = (
    "catalogue",
    "num_items",
    "num_topics",
    "corpus_seed",
    "topic_kind",
    "topic_concentration",
    "quality_means",
    "quality_mean",
    "quality_std",
    "clickbait_max",
    "quality_clickbait",
    "length_mean",
    "length_std",
    "interest_kind",
    "interest_std",
    "clickbait_appeal",
)
"""Scenario fields that determine the catalogue."""


def catalogue_key(scenario: RecScenario) -> tuple[object, ...]:
    """The fields of ``scenario`` that determine its catalogue."""
    return tuple(getattr(scenario, f) for f in CATALOGUE_FIELDS)


def _frozen(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.flags.writeable = False


def popularity_feature(popularity: np.ndarray) -> np.ndarray:
    """``log1p(popularity) / log1p(max)``: popularity scaled to [0, 1]."""
    top = float(np.log1p(popularity.max())) if popularity.size else 0.0
    if top <= 0:
        return np.zeros_like(popularity, dtype=np.float64)
    return np.log1p(popularity) / top


def synthetic_catalogue(scenario: RecScenario) -> Catalogue:
    """Generate the corpus of a synthetic scenario from its ``corpus_seed``.

    Topics are one-hot clusters (RecSim's videos) or Dirichlet mixtures; quality is normal
    around the topic's mean (``quality_means``), minus ``quality_clickbait`` per unit of
    clickbait; lengths are normal, at least :data:`MIN_LENGTH` minutes.
    """
    rng = np.random.default_rng(scenario.corpus_seed)
    n, t = scenario.num_items, scenario.num_topics
    if scenario.topic_kind == "onehot":
        cluster = rng.integers(0, t, size=n)
        topics = np.zeros((n, t))
        topics[np.arange(n), cluster] = 1.0
    else:
        topics = rng.dirichlet(np.full(t, scenario.topic_concentration), size=n)
        cluster = topics.argmax(axis=1)
    means = (
        np.asarray(scenario.quality_means, dtype=np.float64)
        if scenario.quality_means
        else np.full(t, scenario.quality_mean)
    )
    clickbait = rng.uniform(0.0, scenario.clickbait_max, size=n)
    quality = (
        topics @ means
        + scenario.quality_std * rng.standard_normal(n)
        - scenario.quality_clickbait * clickbait
    )
    length = np.maximum(
        scenario.length_mean + scenario.length_std * rng.standard_normal(n), MIN_LENGTH
    )
    # the mean score over the user population (interests have mean zero): the clickbait appeal
    popularity = scenario.clickbait_appeal * clickbait
    popularity = popularity - min(0.0, float(popularity.min()))
    std = scenario.interest_std if scenario.interest_kind == "normal" else 0.0
    mean = np.zeros(t)
    chol = np.eye(t) * std
    pop_feature = popularity_feature(popularity)
    _frozen(topics, quality, clickbait, length, popularity, pop_feature, mean, chol)
    return Catalogue(
        topics=topics,
        quality=quality,
        clickbait=clickbait,
        length=length,
        popularity=popularity,
        popularity_feature=pop_feature,
        interest_mean=mean,
        interest_chol=chol,
        score_gain=1.0,
        key=catalogue_key(scenario),
    )


_CACHE: dict[tuple[object, ...], Catalogue] = {}


def load_catalogue(scenario: RecScenario) -> Catalogue:
    """The catalogue of ``scenario`` (built once per process for each distinct catalogue)."""
    key = catalogue_key(scenario)
    found = _CACHE.get(key)
    if found is None:
        if scenario.catalogue == "movielens":
            from envs.recsys.movielens import movielens_catalogue

            found = movielens_catalogue(scenario)
        else:
            found = synthetic_catalogue(scenario)
        _CACHE[key] = found
    return found
