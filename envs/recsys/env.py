"""Gymnasium adapters of slate recommendation."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numba
import numpy as np
from gymnasium import spaces

from envs.core import team as team_mod
from envs.core.env import BatchRunner, BatchStep, LeptonEnv
from envs.core.features import ObservationBuilder, QuantityTerm, RewardTerm
from envs.core.registry import Registry
from envs.core.scenario import FixedScenario
from envs.core.sim import Columns
from envs.core.vector import LeptonVectorEnv
from envs.recsys.scenario import PRESETS, RecScenario, make_scenario
from envs.recsys.sim import (
    A_LAST_WATCH,
    DRAWS_FIXED,
    FEATURE_BOUND,
    I_CORPUS,
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
    check_positions,
    copy_items,
    draw_candidates,
    draw_start,
    missing_generator,
    start_row,
    step_rows,
    unpack_state,
)

OBSERVATIONS: Registry[type[ObservationBuilder]] = Registry("observation")
REWARDS: Registry[RewardTerm] = Registry("reward term")
ACTION_MODES = ("slate", "scores", "linear")
USER_EXTRA = ("budget_left", "satisfaction", "last_click", "last_watch", "time")
CANDIDATE_EXTRA = ("quality", "clickbait", "length", "popularity")
N_OUT = len(QUANTITIES) + len(METRICS)
_NO_STEPS = np.zeros(0, dtype=np.int64)
_INT64 = np.dtype(np.int64)
_NO_PLAN = np.zeros(0)
_NO_START = np.zeros(0)
_NO_ROWS = np.zeros((0, 0), dtype=np.float32)
# the vector env's info keys in their order (filled in by copies of these dicts): each metric
# and its mask, then the reward terms and their mask; the final metrics, then their masks
_METRIC_MASKS = tuple(f"_{name}" for name in METRICS)
_METRIC_KEYS = tuple(zip(METRICS, _METRIC_MASKS, strict=True))
_INFOS: dict[str, Any] = dict.fromkeys(
    (
        *(key for pair in _METRIC_KEYS for key in pair),
        "reward_terms",
        "_reward_terms",
    )
)
_FINAL_INFO: dict[str, Any] = dict.fromkeys(METRICS + _METRIC_MASKS)


@numba.njit(cache=True, error_model="numpy")
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


@numba.njit(cache=True, error_model="numpy")
def write_user_obs(
    rows: np.ndarray,
    params: np.ndarray,
    user: np.ndarray,
    acc: np.ndarray,
    ints: np.ndarray,
    slots: np.ndarray,
    obs: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """The user block of the ``default`` observation of the replicas where ``rows`` is true."""
    n_topics = user.shape[1] // 3
    k = slots.shape[1] // 2 - 1
    for b in range(obs.shape[0]):
        if not rows[b]:
            continue
        budget0 = max(params[b, P_BUDGET0], 1e-9)
        scale = max(params[b, P_LENGTH_SCALE], 1e-9)
        for d in range(n_topics):
            obs[b, d] = min(max(user[b, 2 * n_topics + d], -FEATURE_BOUND), FEATURE_BOUND)
        obs[b, n_topics] = min(max(user[b, 3 * n_topics] / budget0, 0.0), 1.0)
        obs[b, n_topics + 1] = user[b, 3 * n_topics + 1]
        obs[b, n_topics + 2] = 1.0 if slots[b, 2 * k] >= 0 else 0.0
        obs[b, n_topics + 3] = min(max(acc[b, A_LAST_WATCH] / scale, 0.0), 5.0)
        obs[b, n_topics + 4] = min(max(ints[b, I_T] / max(params[b, P_MAX_STEPS], 1.0), 0.0), 1.0)


@numba.njit(cache=True, error_model="numpy")
def write_candidate_obs(
    rows: np.ndarray, ints: np.ndarray, cands: np.ndarray, table: np.ndarray, obs: np.ndarray
) -> None:  # pragma: no cover - compiled
    """The candidates' block of the ``default`` observation where ``rows`` is true (table rows)."""
    f = table.shape[2]
    for b in range(obs.shape[0]):
        if not rows[b]:
            continue
        row = ints[b, I_CORPUS] * table.shape[1]
        o = (b + 1) * obs.shape[1] - cands.shape[1] * f
        for j in range(cands.shape[1]):
            copy_items(obs, o, table, (row + cands[b, j]) * f, f)
            o += f


@numba.njit(cache=True, error_model="numpy")
def _step_encode(
    slate_in: np.ndarray,
    fstate: np.ndarray,
    istate: np.ndarray,
    bstate: np.ndarray,
    perm: np.ndarray,
    corpus_f: np.ndarray,
    hot: np.ndarray,
    cdfs: np.ndarray,
    table: np.ndarray,
    c: int,
    width: int,
    gen64: np.ndarray,
    plan: np.ndarray,
    episode_steps: np.ndarray,
    max_episode_steps: int,
    out: np.ndarray,
    flags: np.ndarray,
    obs: np.ndarray,
    final: np.ndarray,
    start: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """One core step of every replica, its reward and its ``default`` observation, fused.

    The step is :func:`envs.recsys.sim.step_all`. The observation holds what
    :meth:`FlatObservation.encode` reads from the snapshot; the candidates' block is copied from
    ``table``, the encoded corpus (:func:`encoded_corpus`), since a candidate's features are its
    corpus item's. With ``final`` given, an episode that ends is reset here as the runner's
    autoreset would (the caller ensures that every replica's reset only draws, see
    :meth:`envs.recsys.sim.RecSim.common_start`): its last observation goes to ``final``, its
    generator draws the new session's start (:func:`envs.recsys.sim.draw_start`) and a fresh
    buffer, its step count restarts and ``obs`` gets the first observation of the new episode.

    Args:
        slate_in: ``[B * k]`` candidate positions, replica by replica.
        fstate: the core's packed float64 state (:func:`envs.recsys.sim.unpack_state`).
        istate: its packed int64 state.
        bstate: its packed bool state.
        perm: ``[B, N]`` the replicas' corpus permutations.
        corpus_f: ``[K, N, T + 4]`` the items' features per catalogue.
        hot: ``[K, N]`` the items' single topics (:attr:`envs.recsys.sim.RecSim.hot`).
        cdfs: ``[K, N]`` popularity sampling CDFs.
        table: ``[K, N, T + 4]`` float32 encoded corpus.
        c: candidates per step.
        width: uniforms per replica buffer.
        gen64: ``[B]`` the generators' ``next_uint64`` (:attr:`envs.recsys.sim.RecSim.gen64`).
        plan: reward terms and weights (:meth:`RecSlateEnv._fused_plan`), or empty: no reward.
        episode_steps: ``[B]`` steps of the current episodes, counted here, or empty.
        max_episode_steps: truncate an episode after this many steps (``-1``: never).
        out: ``[B, QUANTITIES + METRICS (+ terms + reward)]`` results.
        flags: ``[3, B]`` terminated, truncated, done.
        obs: ``[B, D]`` observations.
        final: ``[B, D]``: when an episode ends, the last observations of the episodes that
            end and zeros in the other rows (nothing is written when none ends), or empty: no
            reset here.
        start: with ``final``, how the sessions start
            (:meth:`envs.recsys.sim.RecSim.start_plan`).

    Returns:
        ``(status, done)``: ``status`` is ``-1 - b`` when replica ``b``'s slate holds a position
        outside the candidates, ``1 + b`` when replica ``b`` must draw uniforms but has no
        generator (nothing is changed then), else ``0``; ``done`` counts the episodes that ended.
    """
    # the checks first: an invalid slate or a missing generator changes nothing
    status = _check_step(slate_in, fstate, istate, bstate, perm, corpus_f, c, width)
    if status != 0:
        return status, 0
    done = _encode_rows(
        slate_in,
        fstate,
        istate,
        bstate,
        perm,
        corpus_f,
        hot,
        cdfs,
        table,
        c,
        width,
        gen64,
        plan,
        episode_steps,
        max_episode_steps,
        out,
        flags,
        obs,
        final,
        start,
        0,
        perm.shape[0],
        False,
    )
    return 0, done


@numba.njit(cache=True, error_model="numpy")
def _check_step(
    slate_in: np.ndarray,
    fstate: np.ndarray,
    istate: np.ndarray,
    bstate: np.ndarray,
    perm: np.ndarray,
    corpus_f: np.ndarray,
    c: int,
    width: int,
) -> int:  # pragma: no cover - compiled
    """:func:`_step_encode`'s status before any change (``0``: every replica can step)."""
    b_size = perm.shape[0]
    k = slate_in.shape[0] // b_size
    status = check_positions(slate_in, k, c)
    if status < 0:
        return status
    _, _, _, _, _, _, ints, _, _, gens, _, _ = unpack_state(
        fstate, istate, bstate, b_size, corpus_f.shape[2] - 4, perm.shape[1], c, k, width
    )
    return missing_generator(ints, gens, width, DRAWS_FIXED + c)


@numba.njit(cache=True, error_model="numpy")
def _encode_rows(
    slate_in: np.ndarray,
    fstate: np.ndarray,
    istate: np.ndarray,
    bstate: np.ndarray,
    perm: np.ndarray,
    corpus_f: np.ndarray,
    hot: np.ndarray,
    cdfs: np.ndarray,
    table: np.ndarray,
    c: int,
    width: int,
    gen64: np.ndarray,
    plan: np.ndarray,
    episode_steps: np.ndarray,
    max_episode_steps: int,
    out: np.ndarray,
    flags: np.ndarray,
    obs: np.ndarray,
    final: np.ndarray,
    start: np.ndarray,
    b0: int,
    b1: int,
    every_final: bool,
) -> int:  # pragma: no cover - compiled
    """:func:`_step_encode`'s work on replicas ``b0 .. b1 - 1``, checked; the episodes that ended.

    Every pass reads and writes these replicas' rows only (the corpus, its encoding and the
    popularity are read by all), so chunks of a batch can run on several threads at once. The
    final observations (with ``final``) are written where an episode of these rows ended, or
    with ``every_final`` always.
    """
    # in passes over the replicas (each one's order of work is kept): the core step with the
    # next candidates' draws, the reward and episode ends, the observations, the resets; the
    # candidates' features are the core's to copy when they are read (RecSim.features_stale)
    b_size = perm.shape[0]
    k = slate_in.shape[0] // b_size
    params, user, acc, _, slate_feats, u, ints, cands, slots, gens, shown, left = unpack_state(
        fstate, istate, bstate, b_size, corpus_f.shape[2] - 4, perm.shape[1], c, k, width
    )
    params, user, acc, slate_feats = params[b0:b1], user[b0:b1], acc[b0:b1], slate_feats[b0:b1]
    u, ints, cands, slots, gens = u[b0:b1], ints[b0:b1], cands[b0:b1], slots[b0:b1], gens[b0:b1]
    shown, left, perm, gen64 = shown[b0:b1], left[b0:b1], perm[b0:b1], gen64[b0:b1]
    counting = episode_steps.shape[0] > 0
    restart = final.shape[0] > 0
    episode_steps, final = episode_steps[b0:b1], final[b0:b1]
    out, flags, obs = out[b0:b1], flags[:, b0:b1], obs[b0:b1]
    rows = b1 - b0
    step_rows(
        slate_in[b0 * k : b1 * k],
        (params, user, acc, slate_feats, u, ints, cands, slots, gens, shown, left, perm),
        corpus_f,
        hot,
        cdfs,
        out,
        flags,
    )
    n_out = N_OUT
    n_terms = np.int64(plan[0]) if plan.shape[0] > 0 else -1
    done = 0
    for b in range(rows):
        term, trunc = flags[0, b], flags[1, b]
        if n_terms >= 0:
            # terms: signed quantities; reward: their weighted sum, in the order of the weights
            for i in range(n_terms):
                out[b, n_out + i] = out[b, np.int64(plan[1 + 2 * i])] * plan[2 + 2 * i]
            o = 1 + 2 * n_terms
            reward = 0.0
            for i in range(np.int64(plan[o])):
                part = plan[o + 2 + 2 * i] * out[b, n_out + np.int64(plan[o + 1 + 2 * i])]
                reward = part if i == 0 else reward + part
            out[b, n_out + n_terms] = reward
        if counting:
            episode_steps[b] += 1
            if max_episode_steps >= 0 and episode_steps[b] >= max_episode_steps:
                trunc = True
        flags[1, b] = trunc
        flags[2, b] = term or trunc
        done += term or trunc
    every = np.ones(rows, dtype=np.bool_)
    write_user_obs(every, params, user, acc, ints, slots, obs)
    write_candidate_obs(every, ints, cands, table, obs)
    if restart and (done > 0 or every_final):
        ended = flags[2]
        for b in range(rows):
            if not ended[b]:
                final[b, :] = 0.0
            else:
                final[b, :] = obs[b, :]
                draw_start(b, start, gens, gen64, u, user)
                start_row(
                    b, params, user, acc, slate_feats, u, ints, cands, slots, shown, left, perm
                )
                if counting:
                    episode_steps[b] = 0
        draw_candidates(ended, params, u, ints, cands, perm, cdfs)
        write_user_obs(ended, params, user, acc, ints, slots, obs)
        write_candidate_obs(ended, ints, cands, table, obs)
    return done


# slots of the stage array of a threaded step: the addresses of the step's slates and outputs,
# then the episodes that ended (the caller's thread writes it last)
_ST_SLATE, _ST_OUT, _ST_FLAGS, _ST_OBS, _ST_FINAL, _ST_DONE = range(6)


@numba.njit(cache=True, error_model="numpy")
def _stage_step(
    stage: np.ndarray,
    slate_in: np.ndarray,
    out: np.ndarray,
    flags: np.ndarray,
    obs: np.ndarray,
    final: np.ndarray,
    fstate: np.ndarray,
    istate: np.ndarray,
    bstate: np.ndarray,
    perm: np.ndarray,
    corpus_f: np.ndarray,
    c: int,
    width: int,
) -> int:  # pragma: no cover - compiled
    """Check a threaded step (:func:`_check_step`) and, when it can run, note its arrays' addresses."""
    status = _check_step(slate_in, fstate, istate, bstate, perm, corpus_f, c, width)
    if status == 0:
        stage[_ST_SLATE] = slate_in.ctypes.data
        stage[_ST_OUT] = out.ctypes.data
        stage[_ST_FLAGS] = flags.ctypes.data
        stage[_ST_OBS] = obs.ctypes.data
        stage[_ST_FINAL] = final.ctypes.data
    return status


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _team_encode(
    stage: np.ndarray,
    fstate: np.ndarray,
    istate: np.ndarray,
    bstate: np.ndarray,
    perm: np.ndarray,
    corpus_f: np.ndarray,
    hot: np.ndarray,
    cdfs: np.ndarray,
    table: np.ndarray,
    c: int,
    width: int,
    gen64: np.ndarray,
    plan: np.ndarray,
    episode_steps: np.ndarray,
    max_episode_steps: int,
    start: np.ndarray,
    shape: np.ndarray,
    bounds: np.ndarray,
    ctrl: np.ndarray,
    lead: bool,
    seen: int,
    job: int,
    budget: int,
) -> int:  # pragma: no cover - compiled
    """The compiled side of a threaded :func:`_step_encode` (see :class:`~envs.core.team.Team`).

    The step's slates and outputs are new arrays every step: their addresses are in ``stage``
    (:func:`_stage_step`), ``shape`` holds ``(k, out columns, observation size, final rows)``.
    Each chunk ``bounds[i] .. bounds[i + 1] - 1`` is :func:`_encode_rows`, which writes every
    final row (zeros where no episode ended), since no chunk knows whether another ended one.
    The caller's thread, after every chunk, writes the episodes that ended to ``stage``.
    """
    n = bounds.shape[0] - 1
    b_size = perm.shape[0]
    k, n_out, n_obs, n_final = shape[0], shape[1], shape[2], shape[3]
    # the threads' chunks take views and pass arrays all the time: of arrays that count no
    # references, else the counters of these shared ones bounce between the threads' cores
    fstate, istate, bstate = (
        team_mod.borrowed(fstate),
        team_mod.borrowed(istate),
        team_mod.borrowed(bstate),
    )
    perm, corpus_f, hot = (
        team_mod.borrowed(perm),
        team_mod.borrowed(corpus_f),
        team_mod.borrowed(hot),
    )
    cdfs, table, plan = team_mod.borrowed(cdfs), team_mod.borrowed(table), team_mod.borrowed(plan)
    episode_steps, gen64 = team_mod.borrowed(episode_steps), team_mod.borrowed(gen64)
    start = team_mod.borrowed(start)
    served = seen
    g = team_mod.decision(ctrl, lead, -1 if lead else seen, n, job, budget)
    while g >= 0:
        served = g
        slate_in = numba.carray(team_mod.pointer(stage[_ST_SLATE]), b_size * k, np.int64)
        out = numba.carray(team_mod.pointer(stage[_ST_OUT]), (b_size, n_out), np.float64)
        flags = numba.carray(team_mod.pointer(stage[_ST_FLAGS]), (3, b_size), np.bool_)
        obs = numba.carray(team_mod.pointer(stage[_ST_OBS]), (b_size, n_obs), np.float32)
        final = numba.carray(team_mod.pointer(stage[_ST_FINAL]), (n_final, n_obs), np.float32)
        i = team_mod.claim(ctrl, g, n)
        while i >= 0:
            _encode_rows(
                slate_in,
                fstate,
                istate,
                bstate,
                perm,
                corpus_f,
                hot,
                cdfs,
                table,
                c,
                width,
                gen64,
                plan,
                episode_steps,
                max_episode_steps,
                out,
                flags,
                obs,
                final,
                start,
                bounds[i],
                bounds[i + 1],
                True,
            )
            team_mod.finish(ctrl)
            i = team_mod.claim(ctrl, g, n)
        g = team_mod.decision(ctrl, lead, g, n, job, budget)
    if lead:
        flags = numba.carray(team_mod.pointer(stage[_ST_FLAGS]), (3, b_size), np.bool_)
        done = 0
        for b in range(b_size):
            done += flags[2, b]
        stage[_ST_DONE] = done
    return served


def encoded_corpus(corpus_f: np.ndarray, length_means: list[float]) -> np.ndarray:
    """Every corpus item encoded as a candidate of the ``default`` observation, ``[K, N, T + 4]``.

    The same operations as :func:`_encode_flat` (float64, then rounded to float32), so a
    candidate's block is its item's row, bit for bit.
    """
    t = corpus_f.shape[2] - len(CANDIDATE_EXTRA)
    scale = np.maximum(np.asarray(length_means, dtype=np.float64), 1e-9)[:, None]
    out = np.empty(corpus_f.shape, dtype=np.float32)
    out[:, :, :t] = corpus_f[:, :, :t]
    out[:, :, t] = np.minimum(np.maximum(corpus_f[:, :, t] / QUALITY_SCALE, -3.0), 3.0)
    out[:, :, t + 1] = corpus_f[:, :, t + 1]
    out[:, :, t + 2] = np.minimum(np.maximum(corpus_f[:, :, t + 2] / scale, 0.0), 5.0)
    out[:, :, t + 3] = corpus_f[:, :, t + 3]
    return out


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
    over the mean length and popularity in [0, 1]. A scenario that hides quality
    (``observe_quality=False``) reads 0 in every quality column; the space is unchanged, so a
    policy moves between scenarios that show and hide it.
    """

    def __init__(self, structure: RecScenario) -> None:
        super().__init__(structure)
        ul, uh, cl, ch = _bounds(structure)
        c, t = structure.num_candidates, structure.num_topics
        self.low = np.concatenate([ul, np.tile(cl, c)]).astype(np.float32)
        self.high = np.concatenate([uh, np.tile(ch, c)]).astype(np.float32)
        # columns of a candidate's block that read 0, and where they lie in the flat vector
        self.hidden_columns = np.array([] if structure.observe_quality else [t], dtype=np.int64)
        width = t + len(CANDIDATE_EXTRA)
        starts = t + len(USER_EXTRA) + width * np.arange(c)
        self.hidden = (starts[:, None] + self.hidden_columns[None, :]).reshape(-1)

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

    def _encode(self, s: RecState, rows: np.ndarray, out: np.ndarray) -> None:
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
        if self.hidden.size:
            out[np.ix_(rows, self.hidden)] = 0.0

    def encode_numpy(self, snapshot: RecState) -> np.ndarray:
        """The same observation with numpy operations (the reference of the compiled path)."""
        user = _user_block(snapshot)
        cands = _candidate_block(snapshot)
        b = user.shape[0]
        out = np.concatenate([user, cands.reshape(b, -1)], axis=1)
        out[:, self.hidden] = 0.0
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

    A ``Dict`` of the user block and the candidate matrix ``[C, T + 4]`` (for SB3's
    ``MultiInputPolicy``): wrap the env in :class:`envs.recsys.wrappers.DictObservation`, an SB3
    ``VecEnv`` in :class:`~envs.recsys.wrappers.VecDictObservation`.

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
    Per step: ``watch_time``, ``click``, ``rating``, ``quality`` (of the clicked item; 0 on a
    step without a click, so average it over the steps where ``click`` is 1), ``left``,
    ``budget``, ``satisfaction``, ``diversity`` (intra-list: mean ``1 - cosine`` of the slate's
    topic vectors). Episode to date: ``episode_watch_time`` (engagement), ``clicks``,
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
    | `scenario`       | `preset`    | preset name, mapping of fields, scenario, list or source |
    | `preset`         | `"slate"`   | preset of a mapping without ``preset`` (and of ``None``) |
    | `observation`    | `"default"` | observation builder (`default`, `user`)                  |
    | `action_mode`    | `"slate"`   | `slate`, `scores` or `linear`                            |
    | `reward_weights` | watch time  | weight per reward term                                   |
    | `render_mode`    | `None`      | `human` or `rgb_array`                                   |
    | `threads`        | `1`         | threads that step a batch (a vector env of this env)     |

    With ``threads`` > 1, the vector env's compiled batch step (the ``default`` observation,
    slates of positions) hands chunks of the batch to helper threads
    (:class:`~envs.core.team.Team`); results are the same on any number of threads. A step of
    little work (:attr:`threaded_min_seconds`; fewer than about 128 replicas of ``recsim_ie``)
    stays on one thread.

    Presets: `slate` (interest evolution, 10 topics, MNL), `long_term` (clickbait against
    quality), `movielens` (fitted from MovieLens), `recsim_ie` (RecSim ``interest_evolution``
    defaults), `cascade` (position-biased cascade, slate of 5). A registered variant passes its
    own ``preset`` (``lepton/RecLongTerm-v0``: `long_term`, ``lepton/RecMovieLens-v0``:
    `movielens`, ``lepton/RecSimIE-v0``: `recsim_ie`), so a mapping such as
    ``scenario={"max_steps": 50}`` changes that variant's scenario.

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
    reference_baseline = "interest_match"
    threaded_min_seconds: float = 5e-5
    """A batch step goes to several threads (``threads``) only when the last one took at least
    this much work (seconds, times the threads it ran on).

    ``lepton/RecSimIE-v0`` stepped by ``gymnasium.make_vec`` with random slates, two threads
    against one on two cores, every step threaded: 0.89x at B = 64, 1.21x at B = 128, 1.48x
    at B = 192 and 1.67x at B = 256. With this threshold B = 64 stays on one thread and
    B = 128 mostly goes to the threads."""

    def __init__(
        self,
        scenario: Any = None,
        *,
        preset: str = "slate",
        observation: str = "default",
        action_mode: str = "slate",
        reward_weights: Mapping[str, float] | None = None,
        render_mode: str | None = None,
        threads: int = 1,
    ) -> None:
        if action_mode not in ACTION_MODES:
            raise ValueError(
                f"action_mode: {action_mode!r} is not allowed; allowed values: {ACTION_MODES}"
            )
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ValueError(
                f"preset: unknown preset {preset!r}; allowed values: {sorted(PRESETS)}"
            )
        self.action_mode = action_mode
        self.preset = preset
        self._plan: tuple[tuple[str, ...], np.ndarray] | None = None
        self._plan_for: Any = None
        self._buffers: tuple[np.ndarray, ...] = ()
        self._compiled: tuple[Any, ...] | None = None
        self.threads = team_mod.check_threads(threads)
        self.threads_used = 1
        """Threads the last batch step ran on."""
        self._work = 0.0  # seconds of the last batch step, times the threads it ran on
        self._stage = np.zeros(_ST_DONE + 1, dtype=np.int64)
        self._team: tuple[Any, ...] | None = None
        super().__init__(
            scenario,
            observation=observation,
            reward_weights=reward_weights,
            render_mode=render_mode,
        )
        self._obs_size = int(np.prod(self.observation_space.shape or (1,)))
        self._slate_shape = (self.structure.slate_size,)
        self._table: np.ndarray | None = None
        self._table_of: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_compiled"] = None  # a runner's arrays: bound again on first use
        return state

    def coerce_scenario(self, obj: Any) -> RecScenario:
        return make_scenario(obj, self.preset)

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
        of integer positions, the core step, the reward and the encoding run as one compiled
        call and the ``info`` dict is built from one row of numbers: the same values, bit for
        bit, as the generic path, which handles every other case (and reports invalid actions).
        """
        runner = self._runner
        a = np.asarray(action)
        if runner is None or runner.obs is None or a.shape != self._slate_shape:
            return super().step(action)
        if a.dtype is not _INT64 or not a.flags.c_contiguous:
            if a.dtype.kind not in "iu":
                return super().step(action)
            a = np.ascontiguousarray(a, dtype=np.int64)
        bound = self._bound(runner)
        names, args = bound[4], bound[5]
        if args is None:
            return super().step(action)
        sim: RecSim = runner.sim  # type: ignore[assignment]
        out, row, flags, flag_row = self._buffers
        obs = np.empty((1, self._obs_size), dtype=np.float32)
        status, _ = _step_encode(a, *args, out, flags, obs, _NO_ROWS, _NO_START)
        if status != 0:
            return super().step(action)  # nothing changed; raises naming the problem
        sim.features_stale = True
        runner.obs = obs
        values = row.tolist()
        info: dict[str, Any] = dict(zip(METRICS, values[len(QUANTITIES) : N_OUT], strict=True))
        info["reward_terms"] = dict(zip(names, values[N_OUT:-1], strict=True))
        self._last_info = info
        terminated, truncated, _ = flag_row.tolist()
        if self.render_mode == "human":
            self.render()
        return obs[0], values[-1], terminated, truncated, info

    def sim_step(self, sim: Any, actions: np.ndarray) -> tuple[Any, np.ndarray]:
        """Step the core and encode the ``default`` observation in one compiled call.

        Applies to slates of integer positions with the ``default`` observation; every other
        case (and an invalid slate, for its error message) takes the generic path.
        """
        if self._fusable(actions):
            b = actions.shape[0]
            out = np.empty((b, N_OUT))
            flags = np.empty((3, b), dtype=np.bool_)
            fused = self._fused_step(sim, actions, _NO_PLAN, _NO_STEPS, -1, out, flags, _NO_ROWS)
            if fused is not None:
                return sim.result(out, flags), fused[0]
        return super().sim_step(sim, actions)

    def fused_batch_step(self, runner: BatchRunner, actions: np.ndarray) -> BatchStep | None:
        """The whole batch step in one compiled call: core step, reward, episode count, encoding.

        See :meth:`compiled_batch_step`, whose arrays this wraps; ``None`` where it does not apply.
        """
        step = self.compiled_batch_step(runner, actions)
        if step is None:
            return None
        obs, out, flags, final_obs, names = step
        n, n_terms = len(QUANTITIES), len(names)
        return BatchStep(
            obs=obs,
            rewards=out[:, N_OUT + n_terms].copy(),
            terminated=flags[0],
            truncated=flags[1],
            terms=Columns(names, out[:, N_OUT : N_OUT + n_terms]),
            metrics=Columns(METRICS, out[:, n:N_OUT]),
            done=flags[2],
            final_obs=final_obs,
        )

    def compiled_batch_step(
        self, runner: BatchRunner, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, tuple[str, ...]] | None:
        """:meth:`BatchRunner.step`'s work as one compiled call, as fresh arrays.

        Applies to the ``default`` observation, reward terms that are signed quantities and
        slates of int64 positions ``[B, k]``; returns ``None`` (nothing changed) otherwise and
        for an invalid slate, which the generic path then reports. When every reset would only
        draw (a fixed scenario whose sessions' start is drawn, see
        :meth:`~envs.recsys.sim.RecSim.common_start`), the compiled call also resets the ended
        episodes, as :meth:`~envs.core.env.BatchRunner.reset_rows` would.

        Returns:
            ``(obs, out, flags, final_obs, names)``: the observations ``[B, D]`` (the reset ones
            of the ended episodes); ``out[B, QUANTITIES + METRICS + terms + 1]`` the quantities,
            the metrics, the reward terms and the reward; ``flags[3, B]`` terminated, truncated
            and done; ``final_obs`` the last observations of the ended episodes and zeros in the
            other rows (which spares a copy of all observations), or ``None`` when none ended or
            there is no autoreset; the reward terms' names.
        """
        sim: RecSim = runner.sim  # type: ignore[assignment]
        bound = self._bound(runner)
        args, shapes = bound[5], bound[6]
        if (
            args is None
            or runner.obs is None
            or (actions.dtype is not _INT64 and actions.dtype != _INT64)
            or actions.shape != shapes[0]
            or not actions.flags.c_contiguous
        ):
            return None
        source = self.source
        restart = (
            runner.autoreset
            and type(source) is FixedScenario
            and sim.common_start() is source.scenario
            and runner.rngs == sim.rngs
        )
        out = np.empty(shapes[1])
        flags = np.empty(shapes[2], dtype=np.bool_)
        obs = np.empty(shapes[3], dtype=np.float32)
        # the compiled resets write the ended episodes' last observations here, zeros elsewhere
        final = np.empty(shapes[3], dtype=np.float32) if restart else _NO_ROWS
        start = sim.start_plan() if restart else _NO_START
        slates = actions.reshape(-1)
        status, n_done = self._encode_batch(sim, slates, args, out, flags, obs, final, start)
        if status != 0:
            return None
        sim.features_stale = True
        final_obs = None
        if n_done and restart:
            final_obs = final
        elif n_done and runner.autoreset:
            # the final observations of the ended episodes (the other rows stay zero), then the
            # first ones of the new episodes in their place
            done = flags[2]
            final_obs = np.zeros(obs.shape, dtype=obs.dtype)
            final_obs[done] = obs[done]
            obs = runner.reset_rows(done, obs)
        runner.obs = obs
        return obs, out, flags, final_obs, bound[4]

    def _encode_batch(
        self,
        sim: RecSim,
        slates: np.ndarray,
        args: tuple[Any, ...],
        out: np.ndarray,
        flags: np.ndarray,
        obs: np.ndarray,
        final: np.ndarray,
        start: np.ndarray,
    ) -> tuple[int, int]:
        """:func:`_step_encode` with ``args`` (:meth:`_bind_compiled`), on this env's threads.

        On several threads, chunks of the batch go to a :class:`~envs.core.team.Team`; the
        results are the same (every replica's step reads and writes its own rows). A step runs
        on this thread alone when the last one was less than :attr:`threaded_min_seconds` of
        work, or when two replicas share a generator (their draws then follow their order).
        """
        threads = min(self.threads, sim.batch_size)
        if threads == 1:
            return _step_encode(slates, *args, out, flags, obs, final, start)
        began = time.perf_counter()
        if self._work < self.threaded_min_seconds or not sim.distinct_generators():
            self.threads_used = 1
            status, done = _step_encode(slates, *args, out, flags, obs, final, start)
        else:
            stage = self._stage
            status = _stage_step(stage, slates, out, flags, obs, final, *args[:5], *args[8:10])
            if status != 0:
                return status, 0
            self.threads_used = threads
            shape = (slates.shape[0] // out.shape[0], out.shape[1], obs.shape[1], final.shape[0])
            team_args = self._team_args(args, threads, shape, start)
            team_mod.team(threads, _team_encode).run(team_args)
            done = int(stage[_ST_DONE])
        if status == 0:
            self._work = (time.perf_counter() - began) * self.threads_used
        return status, done

    def _team_args(
        self, args: tuple[Any, ...], threads: int, shape: tuple[int, ...], start: np.ndarray
    ) -> tuple:
        """:func:`_team_encode`'s arguments, the same objects while these arguments are.

        ``shape``: the slate size, the columns of ``out``, the observation size and the rows of
        ``final``; ``start``: the sessions' start plan. The team's helpers keep their
        arguments while they are the same objects, so they stay in compiled code from one
        step to the next.
        """
        found = self._team
        if (
            found is None
            or found[0] is not args
            or found[1] != (threads, shape)
            or found[2] is not start
        ):
            # one chunk per thread: each chunk starts its passes (and their prefetching) cold,
            # and RecSimIE at B = 256 on two threads ran 4.6 M replica-steps/s on two chunks
            # against 3.2 M on the team's shrinking ones
            b = args[3].shape[0]
            bounds = team_mod.chunk_bounds(b, threads, -(-b // threads))
            team_args = (
                self._stage,
                *args,
                start,
                np.array(shape, dtype=np.int64),
                bounds,
            )
            found = self._team = (args, (threads, shape), start, team_args)
        return found[3]

    def _bound(self, runner: BatchRunner) -> tuple[Any, ...]:
        """:meth:`_bind_compiled`'s tuple for ``runner``, bound again when it is stale."""
        bound = self._compiled
        if (
            bound is None
            or bound[0] is not runner.episode_steps
            or bound[1] is not runner.sim.corpus_f  # type: ignore[attr-defined]
            or bound[2] is not self.reward
            or bound[3] != runner.max_episode_steps
        ):
            bound = self._bind_compiled(runner)
        return bound

    def _bind_compiled(self, runner: BatchRunner) -> tuple[Any, ...]:
        """What :meth:`compiled_batch_step` hands :func:`_step_encode` for ``runner``, kept.

        Returns:
            ``(episode steps, corpus, reward, max_episode_steps, term names, arguments,
            shapes)``: the first four tell when to bind again (the runner's step counts stand
            for the runner, which is not held); the arguments are those between the slate and
            the outputs, ``None`` when the compiled step does not apply; the shapes those of
            the slates, ``out``, ``flags`` and the observations.
        """
        sim: RecSim = runner.sim  # type: ignore[assignment]
        plan = self._fused_plan()
        max_steps = runner.max_episode_steps
        names: tuple[str, ...] = ()
        args = None
        if plan is not None:
            names, vector = plan
            args = (
                *self._sim_args(sim),
                vector,
                runner.episode_steps,
                -1 if max_steps is None else int(max_steps),
            )
        b = runner.batch_size
        shapes = ((b, sim.slate_size), (b, N_OUT + len(names) + 1), (3, b), (b, self._obs_size))
        self._compiled = (
            runner.episode_steps,
            sim.corpus_f,
            self.reward,
            max_steps,
            names,
            args,
            shapes,
        )
        return self._compiled

    def _fusable(self, actions: np.ndarray) -> bool:
        return (
            self.action_mode == "slate"
            and type(self.observation_builder) is FlatObservation
            and actions.dtype == np.int64
            and actions.ndim == 2
            and actions.flags.c_contiguous
        )

    def _fused_step(
        self,
        sim: RecSim,
        slates: np.ndarray,
        plan: np.ndarray,
        episode_steps: np.ndarray,
        max_episode_steps: int,
        out: np.ndarray,
        flags: np.ndarray,
        final: np.ndarray,
    ) -> tuple[np.ndarray, int] | None:
        """Run :func:`_step_encode` on ``slates[B, k]``; see there for the arguments.

        Returns:
            the fresh observations and the number of episodes that ended, or ``None`` (nothing
            changed) when a position is outside the candidates or a replica has no generator.
        """
        if slates.shape != (sim.batch_size, sim.slate_size):
            return None
        obs = np.empty((sim.batch_size, self._obs_size), dtype=np.float32)
        status, n_done = _step_encode(
            slates.reshape(-1),
            *self._sim_args(sim),
            plan,
            episode_steps,
            max_episode_steps,
            out,
            flags,
            obs,
            final,
            _NO_START,
        )
        if status != 0:
            return None
        sim.features_stale = True
        return obs, n_done

    def _sim_args(self, sim: RecSim) -> tuple[Any, ...]:
        """:func:`_step_encode`'s arguments that ``sim`` holds (after the slates, to ``gen64``)."""
        return (
            sim.fstate,
            sim.istate,
            sim.bstate,
            sim.perm,
            sim.corpus_f,
            sim.hot,
            sim.cdfs,
            self._table if self._table_of is sim.corpus_f else self._encoded(sim),
            sim.num_candidates,
            sim.width,
            sim.gen64,
        )

    def _encoded(self, sim: RecSim) -> np.ndarray:
        """The encoded corpus of ``sim``'s catalogues (:func:`encoded_corpus`), cached."""
        self._table = encoded_corpus(sim.corpus_f, sim.length_means)
        # the fused paths run with the default observation only (see _fusable)
        builder = self.observation_builder
        assert isinstance(builder, FlatObservation)
        self._table[:, :, builder.hidden_columns] = 0.0
        self._table_of = sim.corpus_f
        return self._table

    def _fused_plan(self) -> tuple[tuple[str, ...], np.ndarray] | None:
        """The reward terms' names and how the fused step computes them, or ``None``.

        The vector holds the number of terms, then each term's quantity column and sign, then
        the number of weighted terms and each one's term number and weight, in the order of
        the weights (the order in which :class:`~envs.core.features.RewardFunction` sums them).
        """
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
            vector = [float(len(fns))]
            for fn in fns:
                vector += [float(QUANTITIES.index(fn.quantity)), fn.sign]  # type: ignore[attr-defined]
            weighted = [(names.index(n), w) for n, w in reward.weights.items() if w != 0.0]
            vector.append(float(len(weighted)))
            for j, w in weighted:
                vector += [float(j), w]
            plan = (names, np.array(vector))
            # the single env's result buffers, read into Python numbers every step
            out = np.empty((1, N_OUT + len(names) + 1))
            flags = np.empty((3, 1), dtype=np.bool_)
            self._buffers = (out, out[0], flags, flags[:, 0])
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
    env: RecSlateEnv

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, **kwargs: Any):
        super().__init__(num_envs, max_episode_steps, **kwargs)
        self._ones = np.ones(num_envs, dtype=bool)

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every replica; see :class:`~envs.core.vector.LeptonVectorEnv`.

        Where :meth:`RecSlateEnv.compiled_batch_step` applies, its arrays go straight into the
        results: the same ones, key for key and bit for bit, as the generic path gives.
        """
        step = self.env.compiled_batch_step(self.runner, np.asarray(actions))
        if step is None:
            return super().step(actions)
        obs, out, flags, final_obs, names = step
        # views of the metrics' columns, then of the terms' (each zip stops at its keys, leaving
        # the next columns to the next one); the masks (every replica) are fresh
        columns = iter(out.T[len(QUANTITIES) : N_OUT + len(names)])
        ones = self._ones.copy()
        infos = _INFOS.copy()
        if final_obs is None:
            for (key, mask), column in zip(_METRIC_KEYS, columns, strict=False):
                infos[key] = column
                infos[mask] = ones
            infos["reward_terms"] = dict(zip(names, columns, strict=False))
            infos["_reward_terms"] = ones
        else:
            done = flags[2]
            final_info = _FINAL_INFO.copy()
            for (key, mask), column in zip(_METRIC_KEYS, columns, strict=False):
                infos[key] = final_info[key] = column
                infos[mask] = ones
                final_info[mask] = done
            infos["reward_terms"] = dict(zip(names, columns, strict=False))
            infos["_reward_terms"] = ones
            infos["final_obs"] = final_obs
            infos["_final_obs"] = done.copy()
            infos["final_info"] = final_info
            infos["_final_info"] = done.copy()
        # every array handed out is fresh and never written again
        return obs, out[:, N_OUT + len(names)].copy(), flags[0], flags[1], infos
