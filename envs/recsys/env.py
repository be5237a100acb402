"""Gymnasium adapters of slate recommendation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numba
import numpy as np
from gymnasium import spaces

from envs.core.env import LeptonEnv
from envs.core.features import ObservationBuilder, QuantityTerm, RewardTerm
from envs.core.registry import Registry
from envs.core.vector import LeptonVectorEnv
from envs.recsys.scenario import RecScenario, make_scenario
from envs.recsys.sim import (
    A_LAST_WATCH,
    FEATURE_BOUND,
    I_T,
    LINEAR_FEATURES,
    METRICS,
    P_BUDGET0,
    P_LENGTH_SCALE,
    P_MAX_STEPS,
    QUALITY_SCALE,
    QUANTITIES,
    RecSim,
    RecState,
    _step,
)

OBSERVATIONS: Registry[type[ObservationBuilder]] = Registry("observation")
REWARDS: Registry[RewardTerm] = Registry("reward term")
ACTION_MODES = ("slate", "scores", "linear")
_ROW0 = np.zeros(1, dtype=np.int64)
USER_EXTRA = ("budget_left", "satisfaction", "last_click", "last_watch", "time")
CANDIDATE_EXTRA = ("quality", "clickbait", "length", "popularity")


@numba.njit(cache=True)
def _encode_flat(
    features: np.ndarray,
    budget: np.ndarray,
    sat: np.ndarray,
    last_click: np.ndarray,
    last_watch: np.ndarray,
    t: np.ndarray,
    params: np.ndarray,
    feats: np.ndarray,
    rows: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """The ``default`` observation of the replicas ``rows`` into ``out`` (as the numpy path)."""
    n_topics = features.shape[1]
    c, f = feats.shape[1], feats.shape[2]
    for b in rows:
        budget0 = max(params[b, P_BUDGET0], 1e-9)
        scale = max(params[b, P_LENGTH_SCALE], 1e-9)
        for d in range(n_topics):
            out[b, d] = min(max(features[b, d], -FEATURE_BOUND), FEATURE_BOUND)
        out[b, n_topics] = min(max(budget[b] / budget0, 0.0), 1.0)
        out[b, n_topics + 1] = sat[b]
        out[b, n_topics + 2] = 1.0 if last_click[b] >= 0 else 0.0
        out[b, n_topics + 3] = min(max(last_watch[b] / scale, 0.0), 5.0)
        out[b, n_topics + 4] = min(max(t[b] / max(params[b, P_MAX_STEPS], 1.0), 0.0), 1.0)
        base = n_topics + 5
        for j in range(c):
            o = base + j * f
            for d in range(n_topics):
                out[b, o + d] = feats[b, j, d]
            out[b, o + n_topics] = min(max(feats[b, j, n_topics] / QUALITY_SCALE, -3.0), 3.0)
            out[b, o + n_topics + 1] = feats[b, j, n_topics + 1]
            out[b, o + n_topics + 2] = min(max(feats[b, j, n_topics + 2] / scale, 0.0), 5.0)
            out[b, o + n_topics + 3] = feats[b, j, n_topics + 3]


@numba.njit(cache=True)
def _step_encode(
    slate: np.ndarray,
    params: np.ndarray,
    ints: np.ndarray,
    u: np.ndarray,
    perm: np.ndarray,
    cdfs: np.ndarray,
    cands: np.ndarray,
    corpus_f: np.ndarray,
    feats: np.ndarray,
    user: np.ndarray,
    shown: np.ndarray,
    acc: np.ndarray,
    slots: np.ndarray,
    slate_feats: np.ndarray,
    left: np.ndarray,
    out: np.ndarray,
    flags: np.ndarray,
    rows: np.ndarray,
    obs: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """One core step (:func:`envs.recsys.sim._step`) and the ``default`` observation, fused.

    Reads the observation from the core's packed state exactly as :meth:`FlatObservation.encode`
    reads it from the snapshot (whose fields are views of the same arrays).
    """
    status = _step(
        slate,
        params,
        ints,
        u,
        perm,
        cdfs,
        cands,
        corpus_f,
        feats,
        user,
        shown,
        acc,
        slots,
        slate_feats,
        left,
        out,
        flags,
    )
    if status >= 0:
        t = (user.shape[1] - 2) // 3
        k = slate.shape[1]
        _encode_flat(
            user[:, 2 * t : 3 * t],
            user[:, 3 * t],
            user[:, 3 * t + 1],
            slots[:, 2 * k],
            acc[:, A_LAST_WATCH],
            ints[:, I_T],
            params,
            feats,
            rows,
            obs,
        )
    return status


def _user_block(snapshot: RecState) -> np.ndarray:
    params = snapshot.params
    budget0 = np.maximum(params[:, P_BUDGET0], 1e-9)
    length_scale = np.maximum(params[:, P_LENGTH_SCALE], 1e-9)
    extra = np.stack(
        [
            np.clip(snapshot.budget / budget0, 0.0, 1.0),
            snapshot.satisfaction,
            (snapshot.last_click >= 0).astype(np.float64),
            np.clip(snapshot.last_watch / length_scale, 0.0, 5.0),
            np.clip(snapshot.t / np.maximum(snapshot.max_steps, 1.0), 0.0, 1.0),
        ],
        axis=1,
    )
    features = np.clip(snapshot.features, -FEATURE_BOUND, FEATURE_BOUND)
    return np.concatenate([features, extra], axis=1)


def _candidate_block(snapshot: RecState) -> np.ndarray:
    feats = snapshot.candidate_features
    t = feats.shape[2] - len(CANDIDATE_EXTRA)
    length_scale = np.maximum(snapshot.params[:, P_LENGTH_SCALE], 1e-9)[:, None]
    out = np.empty(feats.shape)
    out[:, :, :t] = feats[:, :, :t]
    out[:, :, t] = np.clip(feats[:, :, t] / QUALITY_SCALE, -3.0, 3.0)
    out[:, :, t + 1] = feats[:, :, t + 1]
    out[:, :, t + 2] = np.clip(feats[:, :, t + 2] / length_scale, 0.0, 5.0)
    out[:, :, t + 3] = feats[:, :, t + 3]
    return out


def _bounds(structure: RecScenario) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    t = structure.num_topics
    user_low = np.concatenate([np.full(t, -FEATURE_BOUND), np.zeros(len(USER_EXTRA))])
    user_high = np.concatenate([np.full(t, FEATURE_BOUND), [1.0, 1.0, 1.0, 5.0, 1.0]])
    cand_low = np.concatenate([np.full(t, -1.0), [-3.0, 0.0, 0.0, 0.0]])
    cand_high = np.concatenate([np.full(t, 1.0), [3.0, 1.0, 5.0, 1.0]])
    return user_low, user_high, cand_low, cand_high


@OBSERVATIONS.register("default")
class FlatObservation(ObservationBuilder):
    """The user's features and the candidate feature matrix, flattened into one ``Box``.

    Layout (``T`` topics, ``C`` candidates): the user's observable features ``[T]`` (clipped to
    +-4), budget left as a share of the initial budget, satisfaction, whether the last slate was
    clicked, the last watch time over the mean item length and the share of ``max_steps``
    elapsed; then for each candidate its topic vector ``[T]``, quality / 3.4, clickbait, length
    over the mean length and popularity in [0, 1].
    """

    def __init__(self, structure: RecScenario) -> None:
        super().__init__(structure)
        ul, uh, cl, ch = _bounds(structure)
        c = structure.num_candidates
        self.low = np.concatenate([ul, np.tile(cl, c)]).astype(np.float32)
        self.high = np.concatenate([uh, np.tile(ch, c)]).astype(np.float32)

    @property
    def space(self) -> spaces.Box:
        return spaces.Box(self.low, self.high, dtype=np.float32)

    def encode(self, snapshot: RecState) -> np.ndarray:  # type: ignore[override]
        b = snapshot.budget.shape[0]
        out = np.empty((b, self.low.size), dtype=np.float32)
        self._encode(snapshot, np.arange(b), out)
        return out

    def encode_rows(self, snapshot: RecState, mask: np.ndarray, out: np.ndarray) -> None:  # type: ignore[override]
        self._encode(snapshot, np.asarray(mask).nonzero()[0], out)

    @staticmethod
    def _encode(s: RecState, rows: np.ndarray, out: np.ndarray) -> None:
        _encode_flat(
            s.features,
            s.budget,
            s.satisfaction,
            s.last_click,
            s.last_watch,
            s.t,
            s.params,
            s.candidate_features,
            rows,
            out,
        )

    def encode_numpy(self, snapshot: RecState) -> np.ndarray:
        """The same observation with numpy operations (the reference of the compiled path)."""
        user = _user_block(snapshot)
        cands = _candidate_block(snapshot)
        b = user.shape[0]
        out = np.concatenate([user, cands.reshape(b, -1)], axis=1)
        return out.astype(np.float32)


@OBSERVATIONS.register("user")
class UserObservation(ObservationBuilder):
    """The user block of ``default`` only (for policies that score candidates separately)."""

    def __init__(self, structure: RecScenario) -> None:
        super().__init__(structure)
        ul, uh, _, _ = _bounds(structure)
        self.low, self.high = ul.astype(np.float32), uh.astype(np.float32)

    @property
    def space(self) -> spaces.Box:
        return spaces.Box(self.low, self.high, dtype=np.float32)

    def encode(self, snapshot: RecState) -> np.ndarray:  # type: ignore[override]
        return _user_block(snapshot).astype(np.float32)


REWARDS.register("watch_time", QuantityTerm("watch_time"))
REWARDS.register("click", QuantityTerm("click"))
REWARDS.register("rating", QuantityTerm("rating"))
REWARDS.register("satisfaction", QuantityTerm("satisfaction_change"))
REWARDS.register("leave", QuantityTerm("left", -1.0))


class RecSlateEnv(LeptonEnv):
    """Slate recommendation to one user session: interests drift, satisfaction, churn.

    ## Description
    Each step the recommender sees ``C`` candidate items drawn from a corpus and shows a slate
    of ``k`` of them. The user (latent topic interests, a time budget, a satisfaction level)
    picks one item or none by a choice model (multinomial logit with a no-click option,
    RecSim's multinomial proportional model, or a cascade with position bias), watches part of
    it and rates it. Interests drift towards consumed topics (RecSim ``interest_evolution``'s
    rule, scaled by quality), satisfaction rises with quality and falls with clickbait, the
    budget is spent by watching and by skipping, and the user may leave, more often when
    dissatisfied. The dynamics are in :mod:`envs.recsys.sim`; the ``recsim_ie`` preset mirrors
    RecSim's ``interest_evolution`` defaults.

    ## Action Space
    Selected by ``action_mode``:

    | mode     | space                       | slate                                             |
    |----------|-----------------------------|---------------------------------------------------|
    | `slate`  | `MultiDiscrete([C] * k)`    | position ``j`` shows candidate ``a_j``            |
    | `scores` | `Box(-1, 1, (C,), float32)` | the ``k`` highest-scored candidates, best first   |
    | `linear` | `Box(-1, 1, (T + 5 + C,))`  | a linear ranking rule: weights ``w`` of the       |
    |          |                             | candidate features plus one score per candidate   |

    ``linear`` (see :meth:`envs.recsys.sim.RecSim.linear_slates`) ranks candidate ``j`` by
    ``4 w . x_j + s_j`` with ``x_j = [interest match, topic (T), quality / 3.4, clickbait,
    length / mean length, popularity]``: one set of weights scores every candidate, so a policy
    learns how to rank items rather than which position to pick, and the per-candidate scores
    ``s`` express any slate (the baselines set ``w = 0``).

    Repeated picks (``slate`` mode): unless the scenario sets ``allow_repeats``, a candidate
    picked by an earlier position is replaced by the lowest-numbered candidate that no position
    picked, so a slate never shows an item twice. Ties in ``scores`` go to the lower index.

    ## Observation Space
    Selected by ``observation``:

    | name      | shape                    | content                                               |
    |-----------|--------------------------|-------------------------------------------------------|
    | `default` | `(T + 5 + C * (T + 4),)` | user features, budget, satisfaction, last click and   |
    |           |                          | watch, time; per candidate topic, quality, clickbait, |
    |           |                          | length, popularity                                    |
    | `user`    | `(T + 5,)`               | the user block only                                   |

    ## Rewards
    The weighted sum of the terms ``watch_time`` (minutes watched, weight 1), ``click``,
    ``rating`` (1..5 when clicked, else 0), ``satisfaction`` (change in satisfaction) and
    ``leave`` (-1 when the user leaves); the other weights default to 0. Every term is in
    ``info["reward_terms"]``.

    ## Starting State
    A user drawn from the scenario's population: interests uniform on [-1, 1] (or the fitted
    normal distribution), observable features = interests + noise, the full time budget and the
    initial satisfaction; a first candidate set is drawn.

    ## Episode End
    - Termination: the time budget is used up, or the user leaves.
    - Truncation: after the scenario's ``max_steps`` (time is observed), or through
      ``max_episode_steps``.

    ## Info
    Per step: ``watch_time``, ``click``, ``rating``, ``quality`` (of the clicked item),
    ``left``, ``budget``, ``satisfaction``, ``diversity`` (intra-list: mean ``1 - cosine`` of the
    slate's topic vectors). Episode to date: ``episode_watch_time`` (engagement), ``clicks``,
    ``ctr`` (clicks per slate), ``session_length`` (steps), ``mean_satisfaction``,
    ``mean_diversity``, ``coverage`` (share of the catalogue shown). The leave rate over
    episodes is the mean of ``left`` at episode ends. Plus ``reward_terms``.

    ## Arguments
    ```python
    >>> import gymnasium as gym
    >>> import envs
    >>> env = gym.make("lepton/RecSlate-v0", scenario={"preset": "slate", "slate_size": 4})
    >>> env.action_space
    MultiDiscrete([10 10 10 10])

    ```

    | parameter        | default     | meaning                                                  |
    |------------------|-------------|----------------------------------------------------------|
    | `scenario`       | `"slate"`   | preset name, mapping of fields, scenario, list or source |
    | `observation`    | `"default"` | observation builder (`default`, `user`)                  |
    | `action_mode`    | `"slate"`   | `slate`, `scores` or `linear`                            |
    | `reward_weights` | watch time  | weight per reward term                                   |
    | `render_mode`    | `None`      | `human` or `rgb_array`                                   |

    Presets: `slate` (interest evolution, 10 topics, MNL), `long_term` (clickbait against
    quality), `movielens` (fitted from MovieLens), `recsim_ie` (RecSim ``interest_evolution``
    defaults), `cascade` (position-biased cascade, slate of 5).

    ## Version History
    - v0: initial release.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 4}  # noqa: RUF012
    observation_builders = OBSERVATIONS
    reward_terms = REWARDS
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        "watch_time": 1.0,
        "click": 0.0,
        "rating": 0.0,
        "satisfaction": 0.0,
        "leave": 0.0,
    }
    scenario_type = RecScenario
    renderer = "envs.recsys.render:RecRenderer"
    baselines = "envs.recsys.baselines:BASELINES"

    def __init__(
        self,
        scenario: Any = None,
        *,
        observation: str = "default",
        action_mode: str = "slate",
        reward_weights: Mapping[str, float] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if action_mode not in ACTION_MODES:
            raise ValueError(
                f"action_mode: {action_mode!r} is not allowed; allowed values: {ACTION_MODES}"
            )
        self.action_mode = action_mode
        self._plan: Any = None
        self._plan_for: Any = None
        super().__init__(
            scenario,
            observation=observation,
            reward_weights=reward_weights,
            render_mode=render_mode,
        )
        self._obs_size = int(np.prod(self.observation_space.shape or (1,)))
        self._buffers = (
            np.empty((1, len(QUANTITIES) + len(METRICS))),
            np.empty((1, 2), dtype=np.bool_),
        )

    def coerce_scenario(self, obj: Any) -> RecScenario:
        return make_scenario(obj)

    def make_sim(self, batch_size: int) -> RecSim:
        return RecSim(batch_size, self.structure)

    def make_action_space(self) -> spaces.Space:
        c, k = self.structure.num_candidates, self.structure.slate_size
        if self.action_mode == "slate":
            return spaces.MultiDiscrete(np.full(k, c))
        if self.action_mode == "linear":
            size = self.structure.num_topics + LINEAR_FEATURES + c
            return spaces.Box(-1.0, 1.0, shape=(size,), dtype=np.float32)
        return spaces.Box(-1.0, 1.0, shape=(c,), dtype=np.float32)

    def actions_to_sim(self, actions: np.ndarray) -> np.ndarray:
        if self.action_mode == "slate":
            return actions
        if self.action_mode == "linear":
            # the core ranks the candidates by the rule (it holds their features)
            return actions.astype(np.float64)
        k = self.structure.slate_size
        # stable sort of the negated scores: ties go to the lower candidate index
        return np.argsort(-actions.astype(np.float64), axis=1, kind="stable")[:, :k]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Take one step; see :meth:`LeptonEnv.step`.

        With the ``default`` observation, reward terms that are signed quantities and a slate
        of integer positions, the core step and the encoding run as one compiled call and the
        ``info`` dict is built from one row of numbers: the same values, bit for bit, as the
        generic path, which handles every other case (and reports invalid actions).
        """
        runner = self._runner
        a = np.asarray(action)
        plan = self._fused_plan()
        if (
            plan is None
            or runner is None
            or runner.obs is None
            or a.shape != (self.structure.slate_size,)
            or a.dtype.kind not in "iu"
        ):
            return super().step(action)
        slate = a.reshape(1, -1) if a.dtype == np.int64 else a.astype(np.int64).reshape(1, -1)
        # the single env reuses its result buffers: they are read into Python numbers below
        fused = self._fused_step(runner.sim, slate, self._buffers)  # type: ignore[arg-type]
        if fused is None:
            return super().step(action)  # nothing changed; raises naming the position
        out, flags, obs = fused
        runner.episode_steps += 1
        runner.obs = obs
        values = out[0].tolist()
        names, columns, weighted = plan
        terms = [values[j] * sign for j, sign in columns]
        reward = 0.0
        if weighted:
            j, w = weighted[0]
            reward = w * terms[j]
            for j, w in weighted[1:]:
                reward = reward + w * terms[j]
        info: dict[str, Any] = dict(zip(METRICS, values[len(QUANTITIES) :], strict=True))
        info["reward_terms"] = dict(zip(names, terms, strict=True))
        self._last_info = info
        terminated, truncated = flags[0].tolist()
        if self.render_mode == "human":
            self.render()
        return obs[0], reward, terminated, truncated, info

    def sim_step(self, sim: Any, actions: np.ndarray) -> tuple[Any, np.ndarray]:
        """Step the core and encode the ``default`` observation in one compiled call.

        Applies to slates of integer positions with the ``default`` observation; every other
        case (and an invalid slate, for its error message) takes the generic path.
        """
        fused = None
        if (
            self.action_mode == "slate"
            and type(self.observation_builder) is FlatObservation
            and actions.dtype == np.int64
            and actions.ndim == 2
            and actions.flags.c_contiguous
        ):
            fused = self._fused_step(sim, actions)
        if fused is None:
            return super().sim_step(sim, actions)
        out, flags, obs = fused
        return sim.result(out, flags), obs

    def _fused_step(
        self,
        sim: RecSim,
        slates: np.ndarray,
        buffers: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Run :func:`_step_encode` on ``slates[B, k]``.

        Args:
            sim: the core.
            slates: candidate positions, int64.
            buffers: ``(out, flags)`` to write the results into (fresh arrays by default).

        Returns:
            ``(out, flags, obs)``, or ``None`` (nothing changed) when a position is outside the
            candidates.
        """
        b = slates.shape[0]
        if sim._refills:
            sim.refill_due()
        if buffers is None:
            out = np.empty((b, len(QUANTITIES) + len(METRICS)))
            flags = np.empty((b, 2), dtype=np.bool_)
        else:
            out, flags = buffers
        obs = np.empty((b, self._obs_size), dtype=np.float32)
        rows = _ROW0 if b == 1 else np.arange(b)
        status = _step_encode(
            slates,
            sim.params,
            sim.ints,
            sim.u,
            sim.perm,
            sim.cdfs,
            sim.cands,
            sim.corpus_f,
            sim.feats,
            sim.user,
            sim.shown,
            sim.acc,
            sim.slots,
            sim.slate_feats,
            sim.left,
            out,
            flags,
            rows,
            obs,
        )
        if status < 0:
            return None
        sim._refills = status
        return out, flags, obs

    def _fused_plan(
        self,
    ) -> tuple[tuple[str, ...], list[tuple[int, float]], list[tuple[int, float]]] | None:
        """How the fused step computes the reward terms, or ``None`` when it does not apply."""
        reward = self.reward
        if self._plan_for is reward:
            return self._plan
        plan = None
        fns = list(reward.fns.values())
        if (
            type(self.observation_builder) is FlatObservation
            and self.action_mode == "slate"
            and all(isinstance(fn, QuantityTerm) for fn in fns)
            and all(fn.quantity in QUANTITIES for fn in fns)  # type: ignore[attr-defined]
        ):
            names = tuple(reward.fns)
            columns = [(QUANTITIES.index(fn.quantity), fn.sign) for fn in fns]  # type: ignore[attr-defined]
            weighted = [(names.index(n), w) for n, w in reward.weights.items() if w != 0.0]
            plan = (names, columns, weighted)
        self._plan, self._plan_for = plan, reward
        return plan

    def slates_to_actions(self, slates: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`actions_to_sim`: the action showing candidate positions ``[B, k]``."""
        slates = np.asarray(slates, dtype=np.int64)
        if self.action_mode == "slate":
            return slates
        b, k = slates.shape
        c = self.structure.num_candidates
        scores = np.full((b, c), -1.0, dtype=np.float32)
        rank = np.linspace(1.0, 0.0, k, endpoint=False, dtype=np.float32)
        np.put_along_axis(scores, slates, rank[None, :], axis=1)
        if self.action_mode == "linear":
            weights = np.zeros((b, self.structure.num_topics + LINEAR_FEATURES), np.float32)
            return np.concatenate([weights, scores], axis=1)
        return scores


class RecSlateVectorEnv(LeptonVectorEnv):
    """Native vector env of :class:`RecSlateEnv` (all sessions in one core)."""

    env_cls = RecSlateEnv
