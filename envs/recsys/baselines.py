"""Classic recommenders of the slate recommendation family.

Every recommender reads the state snapshot of all replicas (:class:`~envs.recsys.sim.RecState`,
arrays ``[B, ...]``), picks ``k`` distinct candidate positions per replica and encodes them in
the env's action mode through :meth:`RecSlateEnv.slates_to_actions`, so the same recommender
drives a single env, a native vector env or an SB3 ``VecEnv``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from envs.core.baselines import Baseline
from envs.core.registry import Registry
from envs.recsys.env import RecSlateEnv
from envs.recsys.scenario import CHOICE_MODELS
from envs.recsys.sim import (
    CASCADE,
    FEATURE_BOUND,
    P_ATTENTION,
    P_CLICKBAIT_APPEAL,
    P_MIN_NORM,
    P_MODEL,
    P_NO_CLICK,
    P_SCORE_SCALE,
    P_SCORE_SCALING,
    P_WATCH_BASE,
    P_WATCH_QUALITY,
    P_WATCH_SAT,
    RecState,
    choice_probabilities_np,
)

BASELINES: Registry[type[Baseline]] = Registry("baseline")
"""Classic recommenders of ``lepton/RecSlate-v0`` and its variants by name."""

MAX_ENUMERATED = 20_000
"""Most candidate subsets the myopic oracle scores exactly; beyond, it builds slates greedily."""


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest ``values[B, C]`` per row, best first (ties: lower index)."""
    return np.argsort(-values, axis=1, kind="stable")[:, :k]


def item_scores(state: RecState) -> np.ndarray:
    """The user's score of every candidate under the true model, ``[B, C]``."""
    p = state.params
    match = np.einsum("bt,bct->bc", state.interests, state.candidate_topics)
    return p[:, P_SCORE_SCALE, None] * match + p[:, P_CLICKBAIT_APPEAL, None] * (
        state.candidate_clickbait
    )


def expected_watch(state: RecState) -> np.ndarray:
    """Expected watch time of every candidate if clicked, ``[B, C]`` minutes."""
    p = state.params
    frac = (
        p[:, P_WATCH_BASE, None]
        + p[:, P_WATCH_QUALITY, None] * state.candidate_quality
        + p[:, P_WATCH_SAT, None] * (state.satisfaction[:, None] - 0.5)
    )
    watch = state.candidate_length * np.clip(frac, 0.0, 1.0)
    return np.minimum(watch, state.budget[:, None])


class RecBaseline(Baseline):
    """A recommender choosing candidate positions, encoded in the env's action mode.

    Args:
        env: the environment the baseline acts in; it must wrap a :class:`RecSlateEnv`.
        seed: seed of the baseline's own generator.
    """

    def __init__(self, env: Any, seed: int | None = None) -> None:
        super().__init__(env, seed)
        if not isinstance(self.lepton, RecSlateEnv):
            raise TypeError(
                f"env: {type(self).__name__} needs a recommendation environment, got "
                f"{type(self.lepton).__name__}"
            )
        self.rec: RecSlateEnv = self.lepton
        self.slate_size = self.rec.structure.slate_size
        self.num_candidates = self.rec.structure.num_candidates

    def slates(self, state: RecState) -> np.ndarray:
        """Candidate positions ``[B, k]`` of every replica."""
        raise NotImplementedError

    def act(self, snapshot: RecState) -> np.ndarray:  # type: ignore[override]
        return self.rec.slates_to_actions(self.slates(snapshot))


@BASELINES.register("random")
class RandomRecommender(RecBaseline):
    """``k`` distinct candidates uniformly at random (the baseline's own generator)."""

    name = "random"
    description = "k distinct candidates uniformly at random"

    def slates(self, state: RecState) -> np.ndarray:
        b = state.candidates.shape[0]
        keys = self.draw(b, lambda rng, n: rng.random((n, self.num_candidates)))
        return top_k(keys, self.slate_size)


@BASELINES.register("most_popular")
class MostPopular(RecBaseline):
    """The ``k`` most popular candidates (catalogue popularity; ties: lower position)."""

    name = "most_popular"
    description = "the k most popular candidates"

    def slates(self, state: RecState) -> np.ndarray:
        return top_k(np.asarray(state.candidate_popularity), self.slate_size)


@BASELINES.register("interest_match")
class InterestMatch(RecBaseline):
    """Content-based ranking: the ``k`` candidates whose topics best match the user's features.

    Scores each candidate by the dot product of the user's observable features (the noisy
    interests the agent sees, clipped like the observation) and its topic vector, the myopic
    content-based recommender; it reads nothing the agent does not observe.
    """

    name = "interest_match"
    description = "the k candidates best matching the user's observed interests"

    def slates(self, state: RecState) -> np.ndarray:
        user = np.clip(state.features, -FEATURE_BOUND, FEATURE_BOUND)
        match = np.einsum("bt,bct->bc", user, state.candidate_topics)
        return top_k(match, self.slate_size)


@BASELINES.register("quality_first")
class QualityFirst(RecBaseline):
    """The ``k`` candidates of highest true quality, best first.

    An oracle where the scenario hides quality from the recommender (``observe_quality=False``,
    as in RecSim's ``interest_evolution``).
    """

    name = "quality_first"
    description = "the k highest-quality candidates"

    def reads_hidden_state(self) -> bool:
        return not self.rec.structure.observe_quality

    def slates(self, state: RecState) -> np.ndarray:
        return top_k(np.asarray(state.candidate_quality), self.slate_size)


@BASELINES.register("greedy_myopic")
class GreedyMyopic(RecBaseline):
    """The slate of highest expected immediate watch time under the true user model.

    An oracle for myopic play: it knows the user's latent interests and the choice model, and
    maximises ``sum_j P(click j | slate) * E[watch_j]`` over every ``k``-subset of the
    candidates (ordered by expected watch time, which is optimal for the cascade model and
    irrelevant for the others). With more than :data:`MAX_ENUMERATED` subsets it adds the item
    that raises the expected watch time most, one position at a time.
    """

    name = "greedy_myopic"
    description = "oracle: highest expected immediate watch time (true model)"
    oracle = True

    def __init__(self, env: Any, seed: int | None = None) -> None:
        super().__init__(env, seed)
        c, k = self.num_candidates, self.slate_size
        count = 1
        for i in range(k):
            count = count * (c - i) // (i + 1)
        self.subsets: np.ndarray | None = (
            np.asarray(list(itertools.combinations(range(c), k)), dtype=np.int64)
            if count <= MAX_ENUMERATED
            else None
        )

    def _value(self, state: RecState, slates: np.ndarray, scores: np.ndarray, watch: np.ndarray):
        """Expected watch time of ``slates[B, S, j]`` (positions ordered as shown)."""
        p = state.params
        s = np.take_along_axis(scores[:, None, :], slates, axis=2)
        w = np.take_along_axis(watch[:, None, :], slates, axis=2)
        out = np.empty(slates.shape[:2])
        for m, model in enumerate(CHOICE_MODELS):
            rows = p[:, P_MODEL] == m
            if not rows.any():
                continue
            pr = p[rows]
            probs, _ = choice_probabilities_np(
                model,
                s[rows],
                pr[:, P_NO_CLICK, None],
                pr[:, P_MIN_NORM, None],
                pr[:, P_ATTENTION, None],
                pr[:, P_SCORE_SCALING, None],
            )
            out[rows] = (probs * w[rows]).sum(axis=2)
        return out

    def slates(self, state: RecState) -> np.ndarray:
        scores = item_scores(state)
        watch = expected_watch(state)
        b = scores.shape[0]
        cascade = state.params[:, P_MODEL] == CASCADE
        if self.subsets is not None:
            subsets = np.broadcast_to(self.subsets, (b, *self.subsets.shape))
            # best order within a subset: descending expected watch time (cascade-optimal)
            w = np.take_along_axis(watch[:, None, :], subsets, axis=2)
            order = np.argsort(-w, axis=2, kind="stable")
            ordered = np.take_along_axis(subsets, order, axis=2)
            ordered = np.where(cascade[:, None, None], ordered, subsets)
            values = self._value(state, ordered, scores, watch)
            best = np.argmax(values, axis=1)
            return ordered[np.arange(b), best]
        chosen = np.zeros((b, 0), dtype=np.int64)
        for _ in range(self.slate_size):
            trials = []
            for c in range(self.num_candidates):
                col = np.full((b, 1), c, dtype=np.int64)
                trials.append(np.concatenate([chosen, col], axis=1))
            cand = np.stack(trials, axis=1)
            values = self._value(state, cand, scores, watch)
            used = (cand[:, :, :-1] == cand[:, :, -1:]).any(axis=2)
            values = np.where(used, -np.inf, values)
            pick = np.argmax(values, axis=1)
            chosen = cand[np.arange(b), pick]
        return chosen
