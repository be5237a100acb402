"""Batched simulation core of slate recommendation (numpy + numba, one user session per replica).

Every replica holds one user session. Each step, in order:

1. the recommender's slate (``k`` positions into the ``C`` candidates) is repaired: without
   ``allow_repeats`` a candidate picked again is replaced by the lowest-numbered candidate no
   position picked;
2. the user scores each slate item, ``score = score_scale * interest . topic + clickbait_appeal *
   clickbait``, and picks one item or none by the choice model (:func:`choice_probabilities`);
3. a click yields watch time ``min(budget, length * fraction)`` with ``fraction = clip(watch_base
   + watch_quality * quality + watch_satisfaction * (satisfaction - 0.5), 0, 1)``, a rating in
   1..5, a drift of the interests towards (or, with probability ``1 - p``, away from) the item's
   topic (RecSim's ``interest_evolution`` rule, the step scaled by ``max(1 + drift_quality *
   quality, 0)``), a satisfaction change ``satisfaction_quality * quality - satisfaction_clickbait
   * clickbait`` and a budget spend of ``watch * max(1 - budget_quality_gain * quality, 0.05)``;
   a step without a click spends ``skip_penalty`` minutes and ``satisfaction_skip``;
4. the user leaves with probability ``leave_base + leave_scale * (1 - satisfaction)``;
5. the session ends (terminated) when the budget is gone or the user left, and is truncated
   after ``max_steps``; otherwise a fresh candidate set is drawn from the corpus.

The budget never increases. Every random number comes from the replica's generator: at reset
(uniform interests included, see :func:`drawn_start`) and whenever a replica has used up its
buffer, the core draws a block of uniforms from that generator, and every step consumes a fixed
number of them (choice, drift direction, leaving, rating noise, then one per sampled candidate),
so replica ``i`` of a batch is bit for bit a single env with the same generator. The kernels draw
those blocks themselves through numpy's ctypes interface of the generators' bit generators
(:func:`next_double`, the function behind ``Generator.random``), so the uniforms are the very
numbers ``rng.random(out=...)`` would give. The per-step update of all replicas is one numba
kernel; the state lives in three packed buffers (float64, int64, bool; :func:`unpack_state`
binds the named arrays, whose columns are also named views) so that the kernel's calls stay
cheap, and the recommender may give a slate as positions or as a linear ranking rule over the
candidates' features (:meth:`RecSim.linear_slates`).
"""

from __future__ import annotations

import ctypes
import dataclasses
import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic
from numba.np.random import _constants as _zig

from envs.core.sim import BatchedSim, Columns, Snapshot, StepResult, readonly
from envs.recsys.catalogue import Catalogue, load_catalogue
from envs.recsys.scenario import CANDIDATE_SAMPLING, CHOICE_MODELS, RecScenario

MNL, PROPORTIONAL, CASCADE = range(3)
UNIFORM, POPULARITY, ALL = range(3)

# per-replica scenario parameters, columns of ``params``
(
    P_MODEL,
    P_SCORE_SCALE,
    P_CLICKBAIT_APPEAL,
    P_NO_CLICK,
    P_MIN_NORM,
    P_ATTENTION,
    P_SCORE_SCALING,
    P_WATCH_BASE,
    P_WATCH_QUALITY,
    P_WATCH_SAT,
    P_RATING_NOISE,
    P_SKIP,
    P_BUDGET_GAIN,
    P_DRIFT,
    P_DRIFT_QUALITY,
    P_SAT_QUALITY,
    P_SAT_CLICKBAIT,
    P_SAT_SKIP,
    P_LEAVE_BASE,
    P_LEAVE_SCALE,
    P_MAX_STEPS,
    P_BUDGET0,
    P_SAMPLING,
    P_REPEATS,
    P_LENGTH_SCALE,
    P_SAT0,
    P_DRAWN_START,
) = range(27)
NUM_PARAMS = 27
LINEAR_FEATURES = 5
"""Features of the linear ranking rule besides the topic vector: interest match, quality,
clickbait, length and popularity (see :meth:`RecSim.linear_slates`)."""
LINEAR_GAIN = 4.0
"""Scale of the linear ranking rule's weighted features against its per-candidate scores."""
QUALITY_SCALE = 3.4
"""Quality is divided by this in observations and ranking features (RecSim's utility range)."""
FEATURE_BOUND = 4.0
"""Observable user features are clipped to ``[-FEATURE_BOUND, FEATURE_BOUND]``."""
MIN_SPEND = 0.05
"""Smallest share of its watch time a click spends from the budget."""
# columns of RecSim.ints (cursor into the uniforms, steps taken, catalogue), of RecSim.acc
# (episode sums, last response) and of a candidate's features after its topic vector
I_CURSOR, I_T, I_CORPUS = range(3)
# columns of RecSim.gens: a replica's bit generator, as numpy's ctypes interface gives it
G_NEXT_DOUBLE, G_STATE = range(2)
A_WATCH, A_CLICKS, A_SAT, A_DIV, A_SHOWN, A_LAST_WATCH, A_LAST_RATING = range(7)
NUM_ACC = 7
F_QUALITY, F_CLICKBAIT, F_LENGTH, F_POPULARITY = range(4)
DRAWS_FIXED = 4
"""Uniforms every step consumes before the candidates: choice, drift, leave, rating."""
BUFFER_STEPS = 64
"""Steps of uniforms drawn at once from a replica's generator."""
PREFETCH = 4
"""Replicas ahead whose scattered reads (uniforms, items, permutation) a kernel pass requests."""

QUANTITIES = ("watch_time", "click", "rating", "satisfaction_change", "left")
METRICS = (
    "watch_time",
    "click",
    "rating",
    "quality",
    "episode_watch_time",
    "clicks",
    "ctr",
    "session_length",
    "left",
    "budget",
    "satisfaction",
    "mean_satisfaction",
    "coverage",
    "diversity",
    "mean_diversity",
)


@dataclasses.dataclass(frozen=True)
class RecState(Snapshot):
    """State of all replicas after the last step (arrays ``[B, ...]``, read-only views).

    Attributes:
        interests: the users' latent topic interests, ``[B, T]``.
        features: the users' observable features (interests plus a per-session noise), ``[B, T]``.
        budget: time budget left, ``[B]`` minutes; initial_budget: ``[B]``.
        satisfaction: ``[B]`` in [0, 1].
        t: steps elapsed, ``[B]``; max_steps: ``[B]``.
        candidates: corpus ids of the current candidates, ``[B, C]``.
        candidate_features: ``[B, C, T + 4]`` raw candidate features: topic vector, quality,
            clickbait, length (minutes), popularity scaled to [0, 1].
        candidate_topics, candidate_quality, candidate_clickbait, candidate_length,
            candidate_popularity: views of the columns of ``candidate_features``.
        last_slate: candidate positions shown last step after repair, ``[B, k]`` (-1 before the
            first step); last_slate_items: their corpus ids; last_slate_features: their
            features, ``[B, k, T + 4]`` (laid out like ``candidate_features``).
        last_click: slate position clicked last step (-1: none), ``[B]``; last_click_item: its
            corpus id (-1: none).
        last_watch: watch time of the last step, ``[B]`` minutes; last_rating: ``[B]`` (0: no
            click); left: ``[B]`` whether the user left.
        episode_watch: watch time so far, ``[B]``; clicks: clicks so far, ``[B]``.
        params: per-replica scenario parameters, ``[B, NUM_PARAMS]`` (columns ``P_*``).
    """

    interests: np.ndarray
    features: np.ndarray
    budget: np.ndarray
    initial_budget: np.ndarray
    satisfaction: np.ndarray
    t: np.ndarray
    max_steps: np.ndarray
    candidates: np.ndarray
    candidate_features: np.ndarray
    candidate_topics: np.ndarray
    candidate_quality: np.ndarray
    candidate_clickbait: np.ndarray
    candidate_length: np.ndarray
    candidate_popularity: np.ndarray
    last_slate: np.ndarray
    last_slate_items: np.ndarray
    last_slate_features: np.ndarray
    last_click: np.ndarray
    last_click_item: np.ndarray
    last_watch: np.ndarray
    last_rating: np.ndarray
    left: np.ndarray
    episode_watch: np.ndarray
    clicks: np.ndarray
    params: np.ndarray


# --- the choice models -------------------------------------------------------------------------


@numba.njit(cache=True, error_model="numpy")
def choice_probabilities(
    model: int,
    scores: np.ndarray,
    no_click: float,
    min_normalizer: float,
    attention: float,
    scaling: float,
    out: np.ndarray,
) -> float:  # pragma: no cover - compiled
    """Click probability of each slate position into ``out``; return the no-click probability.

    - ``MNL``: ``p_j = exp(s_j) / (sum_i exp(s_i) + exp(no_click))``;
    - ``PROPORTIONAL``: ``p_j = (s_j - m) / (sum_i (s_i - m) + no_click - m)`` with ``m =
      min_normalizer`` (scores below ``m`` count as ``m``);
    - ``CASCADE``: the user examines the positions in order, each with probability
      ``attention``, and clicks an examined item with ``c_j = clip(scaling * (s_j - m), 0, 1)``:
      ``p_j = attention c_j prod_{i<j} (1 - attention c_i)``.
    """
    k = scores.shape[0]
    if model == MNL:
        top = no_click
        for j in range(k):
            top = max(top, scores[j])
        total = np.exp(no_click - top)
        for j in range(k):
            out[j] = np.exp(scores[j] - top)
            total += out[j]
        for j in range(k):
            out[j] /= total
        return np.exp(no_click - top) / total
    if model == PROPORTIONAL:
        w0 = max(no_click - min_normalizer, 0.0)
        total = w0
        for j in range(k):
            out[j] = max(scores[j] - min_normalizer, 0.0)
            total += out[j]
        if total <= 0.0:
            for j in range(k):
                out[j] = 0.0
            return 1.0
        for j in range(k):
            out[j] /= total
        return w0 / total
    rest = 1.0
    for j in range(k):
        c = scaling * (scores[j] - min_normalizer)
        c = min(max(c, 0.0), 1.0) * attention
        out[j] = rest * c
        rest *= 1.0 - c
    return rest


def choice_probabilities_np(
    model: str,
    scores: np.ndarray,
    no_click: np.ndarray | float,
    min_normalizer: np.ndarray | float,
    attention: np.ndarray | float,
    scaling: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`choice_probabilities` over leading axes: ``scores[..., k]``.

    Parameter arrays broadcast against ``scores[..., 0]``. Returns ``(probs[..., k], p0[...])``.
    """
    if model not in CHOICE_MODELS:
        raise ValueError(f"choice_model: {model!r} is not allowed; allowed values: {CHOICE_MODELS}")
    s = np.asarray(scores, dtype=np.float64)
    no_click = np.asarray(no_click, dtype=np.float64)
    m = np.asarray(min_normalizer, dtype=np.float64)
    if model == "mnl":
        top = np.maximum(s.max(axis=-1), no_click)
        e = np.exp(s - top[..., None])
        e0 = np.exp(no_click - top)
        total = e.sum(axis=-1) + e0
        return e / total[..., None], e0 / total
    if model == "proportional":
        w = np.maximum(s - m[..., None], 0.0)
        w0 = np.broadcast_to(np.maximum(no_click - m, 0.0), s.shape[:-1])
        total = w.sum(axis=-1) + w0
        safe = np.where(total > 0, total, 1.0)
        probs = np.where(total[..., None] > 0, w / safe[..., None], 0.0)
        return probs, np.where(total > 0, w0 / safe, 1.0)
    c = np.clip(np.asarray(scaling)[..., None] * (s - m[..., None]), 0.0, 1.0)
    c = c * np.asarray(attention)[..., None]
    rest = np.cumprod(1.0 - c, axis=-1)
    before = np.concatenate([np.ones_like(rest[..., :1]), rest[..., :-1]], axis=-1)
    return before * c, rest[..., -1]


# --- kernels -----------------------------------------------------------------------------------


@intrinsic
def next_double(typingctx, fn, state):  # type: ignore[no-untyped-def]  # pragma: no cover
    """``fn(state)``: the next uniform of a bit generator, the number ``Generator.random`` gives.

    ``fn`` and ``state`` are the bit generator's ``ctypes.next_double`` and
    ``ctypes.state_address`` as integers (:func:`generator_address`).
    """

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ptr = ir.IntType(8).as_pointer()
        call = builder.inttoptr(args[0], ir.FunctionType(ir.DoubleType(), [ptr]).as_pointer())
        return builder.call(call, [builder.inttoptr(args[1], ptr)])

    return types.float64(types.int64, types.int64), codegen


@intrinsic
def next_uint64(typingctx, fn, state):  # type: ignore[no-untyped-def]  # pragma: no cover
    """``fn(state)``: the next 64 random bits of a bit generator (its ``ctypes.next_uint64``)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ptr = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.IntType(64), [ptr])
        call = builder.inttoptr(args[0], fnty.as_pointer())
        return builder.call(call, [builder.inttoptr(args[1], ptr)])

    return types.uint64(types.int64, types.int64), codegen


_ZIG_KI = np.ascontiguousarray(_zig.ki_double, dtype=np.uint64)
_ZIG_WI = np.ascontiguousarray(_zig.wi_double, dtype=np.float64)
_ZIG_FI = np.ascontiguousarray(_zig.fi_double, dtype=np.float64)
_ZIG_R = _zig.ziggurat_nor_r
_ZIG_INV_R = _zig.ziggurat_nor_inv_r


@numba.njit(cache=True, error_model="numpy", inline="always")
def standard_normal(fn64: int, fnd: int, state: int) -> float:  # pragma: no cover - compiled
    """The next ``Generator.standard_normal()`` of a bit generator: numpy's ziggurat, exactly.

    ``fn64`` and ``fnd`` are its ``ctypes.next_uint64`` and ``next_double``, ``state`` its
    ``ctypes.state_address`` (:func:`generator_address`). This is numpy's
    ``random_standard_normal``, with numba's copies of its tables.
    """
    while True:
        r = next_uint64(fn64, state)
        idx = np.int64(r & np.uint64(0xFF))
        r >>= np.uint64(8)
        sign = r & np.uint64(1)
        rabs = (r >> np.uint64(1)) & np.uint64(0x000FFFFFFFFFFFFF)
        x = np.float64(rabs) * _ZIG_WI[idx]
        if sign:
            x = -x
        if rabs < _ZIG_KI[idx]:
            return x  # 99.3 % of the draws
        if idx == 0:
            while True:
                # 1 - U, not U, so the logarithm never sees 0 (numpy's GH 13361)
                xx = -_ZIG_INV_R * math.log1p(-next_double(fnd, state))
                yy = -math.log1p(-next_double(fnd, state))
                if yy + yy > xx * xx:
                    return -(_ZIG_R + xx) if (rabs >> np.uint64(8)) & np.uint64(1) else _ZIG_R + xx
        elif (_ZIG_FI[idx - 1] - _ZIG_FI[idx]) * next_double(fnd, state) + _ZIG_FI[idx] < math.exp(
            -0.5 * x * x
        ):
            return x


@intrinsic
def prefetch(typingctx, array, index):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Hint the cache to load element ``index`` of C-contiguous ``array`` (flat), soon read."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, types.intp), codegen


@intrinsic
def copy_items(  # type: ignore[no-untyped-def]  # pragma: no cover
    typingctx, dst, dst_start, src, src_start, count
):
    """Copy ``count`` elements of ``src`` into ``dst`` as one ``memcpy``.

    Both arrays are C-contiguous, of one dtype and apart; ``src_start`` and ``dst_start`` are
    flat element indices.
    """
    if dst.dtype != src.dtype:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ta, _, tb, _, _ = signature.args
        a = context.make_array(ta)(context, builder, args[0]).data
        b = context.make_array(tb)(context, builder, args[2]).data
        size = context.get_abi_sizeof(context.get_data_type(ta.dtype))
        cgutils.raw_memcpy(
            builder, builder.gep(a, [args[1]]), builder.gep(b, [args[3]]), args[4], size
        )
        return context.get_dummy_value()

    return types.void(dst, types.intp, src, types.intp, types.intp), codegen


def generator_address(rng: np.random.Generator) -> tuple[int, int]:
    """``(next_double, state)`` addresses of ``rng``'s bit generator (see :func:`next_double`)."""
    c = rng.bit_generator.ctypes
    fn = ctypes.cast(c.next_double, ctypes.c_void_p).value
    assert fn is not None
    return fn, int(c.state_address)


def generator_u64(rng: np.random.Generator) -> int:
    """The address of ``rng``'s bit generator's ``next_uint64`` (see :func:`standard_normal`)."""
    fn = ctypes.cast(rng.bit_generator.ctypes.next_uint64, ctypes.c_void_p).value
    assert fn is not None
    return fn


# The kernels use numpy's error model (no division-by-zero checks): every divisor is positive by
# construction (steps taken, corpus size, normalisers bounded away from zero).


@numba.njit(cache=True, error_model="numpy")
def unpack_state(
    fstate: np.ndarray,
    istate: np.ndarray,
    bstate: np.ndarray,
    b_size: int,
    n_topics: int,
    n_items: int,
    c: int,
    k: int,
    width: int,
) -> tuple[np.ndarray, ...]:  # pragma: no cover - compiled
    """The named state arrays inside the packed buffers (views; the one definition of the layout).

    Returns:
        ``params [B, NUM_PARAMS]``, ``user [B, 3T + 2]``, ``acc [B, NUM_ACC]``, ``feats [B, C,
        T + 4]``, ``slate_feats [B, k, T + 4]``, ``u [B, width]`` (float64, in ``fstate``), then
        ``ints [B, 3]``, ``cands [B, C]``, ``slots [B, 2k + 2]``, ``gens [B, 2]`` (the bit
        generators, columns ``G_*``), ``shown [B, ceil(N / 64)]`` (the items shown, one bit
        each; int64, in ``istate``), then ``left [B]`` (bool, in ``bstate``).
    """
    f = n_topics + 4
    nu = 3 * n_topics + 2
    o = 0
    params = fstate[o : o + b_size * NUM_PARAMS].reshape((b_size, NUM_PARAMS))
    o += b_size * NUM_PARAMS
    user = fstate[o : o + b_size * nu].reshape((b_size, nu))
    o += b_size * nu
    acc = fstate[o : o + b_size * NUM_ACC].reshape((b_size, NUM_ACC))
    o += b_size * NUM_ACC
    feats = fstate[o : o + b_size * c * f].reshape((b_size, c, f))
    o += b_size * c * f
    slate_feats = fstate[o : o + b_size * k * f].reshape((b_size, k, f))
    o += b_size * k * f
    u = fstate[o : o + b_size * width].reshape((b_size, width))
    ints = istate[: b_size * 3].reshape((b_size, 3))
    o = b_size * 3
    cands = istate[o : o + b_size * c].reshape((b_size, c))
    o += b_size * c
    slots = istate[o : o + b_size * (2 * k + 2)].reshape((b_size, 2 * k + 2))
    o += b_size * (2 * k + 2)
    gens = istate[o : o + b_size * 2].reshape((b_size, 2))
    o += b_size * 2
    words = (n_items + 63) // 64
    shown = istate[o : o + b_size * words].reshape((b_size, words))
    left = bstate[:b_size]
    return params, user, acc, feats, slate_feats, u, ints, cands, slots, gens, shown, left


def state_sizes(b: int, t: int, n: int, c: int, k: int, width: int) -> tuple[int, int, int]:
    """Lengths of the packed ``(float64, int64, bool)`` state buffers of :func:`unpack_state`."""
    f = t + 4
    floats = b * (NUM_PARAMS + 3 * t + 2 + NUM_ACC + c * f + k * f + width)
    return floats, b * (3 + c + 2 * k + 2 + 2 + (n + 63) // 64), b


@numba.njit(cache=True, error_model="numpy")
def draw_candidates(
    rows: np.ndarray,
    params: np.ndarray,
    u: np.ndarray,
    ints: np.ndarray,
    cands: np.ndarray,
    perm: np.ndarray,
    cdfs: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Draw the candidate ids of the replicas where ``rows`` is true into ``cands``.

    A replica's draws are the ``C`` uniforms just before its cursor (an episode's start and
    :func:`advance` move the cursor past them): a partial Fisher-Yates shuffle of its
    permutation of the corpus (``uniform``), draws by popularity where an item drawn twice is
    replaced by the next item of the corpus not drawn yet (``popularity``), or the first ``C``
    items (``all``, which draws nothing).
    """
    b_size, c = cands.shape
    n = perm.shape[1]
    for b in range(b_size):
        # the permutation entries a later replica's shuffle swaps
        a = b + PREFETCH
        if a < b_size and rows[a] and params[a, P_SAMPLING] == UNIFORM:
            start = ints[a, I_CURSOR] - c
            for j in range(c):
                prefetch(perm, a * n + min(j + np.int64(u[a, start + j] * (n - j)), n - 1))
        if not rows[b]:
            continue
        sampling = params[b, P_SAMPLING]
        start = ints[b, I_CURSOR] - c
        if sampling == ALL:
            for j in range(c):
                cands[b, j] = j
        elif sampling == UNIFORM:
            for j in range(c):
                r = min(j + np.int64(u[b, start + j] * (n - j)), n - 1)
                tmp = perm[b, j]
                perm[b, j] = perm[b, r]
                perm[b, r] = tmp
                cands[b, j] = perm[b, j]
        else:
            corpus = ints[b, I_CORPUS]
            for j in range(c):
                x = u[b, start + j]
                lo, hi = 0, n - 1
                while lo < hi:
                    mid = (lo + hi) // 2
                    if cdfs[corpus, mid] <= x:
                        lo = mid + 1
                    else:
                        hi = mid
                item = lo
                clash = True
                while clash:
                    clash = False
                    for i in range(j):
                        if cands[b, i] == item:
                            clash = True
                            item = (item + 1) % n
                            break
                cands[b, j] = item


@numba.njit(cache=True, error_model="numpy")
def fill_features(
    rows: np.ndarray, ints: np.ndarray, cands: np.ndarray, corpus_f: np.ndarray, feats: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Copy the features of the candidates of the replicas where ``rows`` is true into ``feats``."""
    f = corpus_f.shape[2]
    for b in range(cands.shape[0]):
        if rows[b]:
            corpus = ints[b, I_CORPUS]
            for j in range(cands.shape[1]):
                item = cands[b, j]
                for d in range(f):
                    feats[b, j, d] = corpus_f[corpus, item, d]


@numba.njit(cache=True, error_model="numpy", inline="always")
def start_row(
    b: int,
    params: np.ndarray,
    user: np.ndarray,
    acc: np.ndarray,
    slate_feats: np.ndarray,
    u: np.ndarray,
    ints: np.ndarray,
    cands: np.ndarray,
    slots: np.ndarray,
    shown: np.ndarray,
    left: np.ndarray,
    perm: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Start replica ``b``'s episode from its drawn buffer, up to its first candidates.

    See :func:`_start`; the cursor is left past the candidates' uniforms, for
    :func:`draw_candidates`.
    """
    n_topics = user.shape[1] // 3
    if params[b, P_DRAWN_START] != 0.0:
        for d in range(n_topics):
            user[b, d] = -1.0 + 2.0 * u[b, d]
            user[b, n_topics + d] = 0.0
    for d in range(n_topics):
        user[b, 2 * n_topics + d] = user[b, d] + user[b, n_topics + d]
    user[b, 3 * n_topics] = params[b, P_BUDGET0]
    user[b, 3 * n_topics + 1] = params[b, P_SAT0]
    for j in range(perm.shape[1]):
        perm[b, j] = j
    shown[b, :] = 0
    acc[b, :] = 0.0
    slots[b, :] = -1
    slate_feats[b, :, :] = 0.0
    left[b] = False
    ints[b, I_CURSOR] = n_topics
    if params[b, P_SAMPLING] != ALL:
        ints[b, I_CURSOR] += cands.shape[1]
    ints[b, I_T] = 0


@numba.njit(cache=True, error_model="numpy")
def _start(
    idx: np.ndarray,
    fstate: np.ndarray,
    istate: np.ndarray,
    bstate: np.ndarray,
    perm: np.ndarray,
    corpus_f: np.ndarray,
    cdfs: np.ndarray,
    c: int,
    k: int,
    width: int,
) -> None:  # pragma: no cover - compiled
    """Start the episodes of the replicas ``idx`` whose uniforms (and interests) are drawn.

    A replica with ``P_DRAWN_START`` takes its interests from the first ``T`` uniforms of its
    buffer (``-1 + 2 u``, which is numpy's ``uniform(-1, 1)``) and has no feature noise; the
    others hold theirs already. Sets the observable features, budget and satisfaction, clears
    the episode's counters and draws the first candidate set from the buffer's next uniforms.
    """
    b_size = perm.shape[0]
    n_topics = corpus_f.shape[2] - 4
    params, user, acc, feats, slate_feats, u, ints, cands, slots, _, shown, left = unpack_state(
        fstate, istate, bstate, b_size, n_topics, perm.shape[1], c, k, width
    )
    rows = np.zeros(b_size, dtype=np.bool_)
    for b in idx:
        start_row(b, params, user, acc, slate_feats, u, ints, cands, slots, shown, left, perm)
        rows[b] = True
    draw_candidates(rows, params, u, ints, cands, perm, cdfs)
    fill_features(rows, ints, cands, corpus_f, feats)


@numba.njit(cache=True, error_model="numpy", inline="always")
def draw_row(b: int, u: np.ndarray, gens: np.ndarray, start: int) -> None:  # pragma: no cover
    """Fill ``u[b, start:]`` with the next uniforms of replica ``b``'s generator, in order."""
    fn, state = gens[b, G_NEXT_DOUBLE], gens[b, G_STATE]
    for i in range(start, u.shape[1]):
        u[b, i] = next_double(fn, state)


@numba.njit(cache=True, error_model="numpy", inline="always")
def normal_interests(
    mean: np.ndarray, chol: np.ndarray, z: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """``out = clip(mean + chol @ z, -1, 1)``, each sum taken in column order.

    The same bits on every machine and in every path (a BLAS product's order of summation
    depends on the library and the processor).
    """
    for r in range(mean.shape[0]):
        total = 0.0
        for j in range(mean.shape[0]):
            total += chol[r, j] * z[j]
        out[r] = min(max(mean[r] + total, -1.0), 1.0)


@numba.njit(cache=True, error_model="numpy")
def normal_interests_of(
    mean: np.ndarray, chol: np.ndarray, z: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """:func:`normal_interests` as a new array."""
    out = np.empty(mean.shape[0])
    normal_interests(mean, chol, z, out)
    return out


START_DRAWN, START_UNIFORM, START_NORMAL = range(3)
"""Kinds of a session's random start (:meth:`RecSim.start_plan`): the interests are the first
``T`` uniforms of the buffer (no feature noise), ``uniform(-1, 1)`` draws, or normal draws."""
_NO_START = np.zeros(0)


@numba.njit(cache=True, error_model="numpy", inline="always")
def draw_start(
    b: int, start: np.ndarray, gens: np.ndarray, gen64: np.ndarray, u: np.ndarray, user: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Replica ``b``'s draws for a new session, as :meth:`RecSim._reset` makes them.

    ``start`` is :meth:`RecSim.start_plan`; the interests go to ``user[b, :T]``, the feature
    noise to ``user[b, T:2T]`` and the uniforms to the buffer, in the generator's order:
    interests, noise, uniforms (a drawn start: the whole buffer, see :func:`start_row`).
    """
    kind = np.int64(start[0])
    if kind == START_DRAWN:
        draw_row(b, u, gens, 0)
        return
    t = user.shape[1] // 3
    fn, state, fn64 = gens[b, G_NEXT_DOUBLE], gens[b, G_STATE], gen64[b]
    if kind == START_UNIFORM:
        for d in range(t):
            user[b, d] = -1.0 + 2.0 * next_double(fn, state)  # numpy's uniform(-1, 1)
    else:
        for d in range(t):  # z, in the noise's place until the interests are made of it
            user[b, t + d] = standard_normal(fn64, fn, state)
        chol = start[2 + t : 2 + t + t * t].reshape((t, t))
        normal_interests(start[2 : 2 + t], chol, user[b, t : 2 * t], user[b, :t])
    noise = start[1]
    for d in range(t):
        user[b, t + d] = noise * standard_normal(fn64, fn, state) if noise > 0.0 else 0.0
    draw_row(b, u, gens, t)


@numba.njit(cache=True, error_model="numpy")
def missing_generator(
    ints: np.ndarray, gens: np.ndarray, width: int, draws: int
) -> int:  # pragma: no cover - compiled
    """``1 + b`` for the first replica ``b`` that must draw uniforms but has no generator, else 0.

    A replica draws a fresh buffer (after its reset's ``T`` interest draws) before a step when
    its cursor has passed ``width - draws``, like ``rng.random(out=u[b, T:])`` would.
    """
    for b in range(ints.shape[0]):
        if ints[b, I_CURSOR] > width - draws and gens[b, G_STATE] == 0:
            return 1 + b
    return 0


@numba.njit(cache=True, error_model="numpy")
def check_positions(slate: np.ndarray, k: int, c: int) -> int:  # pragma: no cover - compiled
    """``-1 - b`` for the first replica ``b`` with a position outside ``0..c-1``, else ``0``.

    ``slate`` holds ``k`` positions per replica, flat.
    """
    for i in range(slate.shape[0]):
        if slate[i] < 0 or slate[i] >= c:
            return -1 - i // k
    return 0


@numba.njit(cache=True, error_model="numpy")
def advance(
    slate_in: np.ndarray,
    params: np.ndarray,
    user: np.ndarray,
    acc: np.ndarray,
    slate_feats: np.ndarray,
    u: np.ndarray,
    ints: np.ndarray,
    cands: np.ndarray,
    slots: np.ndarray,
    gens: np.ndarray,
    shown: np.ndarray,
    left: np.ndarray,
    corpus_f: np.ndarray,
    hot: np.ndarray,
    out: np.ndarray,
    flags: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Advance every replica by one step up to its next candidate set, in place.

    See the module docstring. ``slate_in`` holds every replica's ``k`` valid positions, flat;
    the state arrays are :func:`unpack_state`'s; ``corpus_f`` and ``hot`` are the items' features
    and single topics (:attr:`RecSim.hot`) per catalogue; the quantities and metrics go to ``out[b]``
    (``QUANTITIES``, then ``METRICS``) and whether the episode is terminated and truncated to
    ``flags[0, b]`` and ``flags[1, b]``. A replica whose buffer cannot cover the step first
    draws a fresh one (:func:`missing_generator` checks that it can). The cursor moves past
    the step's uniforms, candidate draws included, but drawing the next candidates is left to
    :func:`draw_candidates` (for the episodes that go on) and copying their features to
    :func:`fill_features` (or :meth:`RecSim.refresh_features`).

    The work is one pass over the replicas whose body calls no function taking arrays but
    where it must (a refill, the choice model): numba counts references to the arrays such a
    call takes, which would cost more than the step itself.
    """
    b_size, c = cands.shape
    k = slots.shape[1] // 2 - 1
    n_items = corpus_f.shape[1]
    f = corpus_f.shape[2]
    n_topics = f - 4
    width = u.shape[1]
    draws = DRAWS_FIXED + c
    o_int, o_feat = 0, 2 * n_topics
    o_budget, o_sat = 3 * n_topics, 3 * n_topics + 1
    scores = np.empty(k)
    probs = np.empty(k)
    picked = np.empty(c, dtype=np.bool_)
    for b in range(b_size):
        # what a later replica's step reads from scattered places: its uniforms, the items
        # of its slate and whether they were shown
        a = b + PREFETCH
        if a < b_size:
            for i in range(0, draws + 7, 8):
                prefetch(u, a * width + min(ints[a, I_CURSOR] + i, width - 1))
            row = ints[a, I_CORPUS] * n_items
            for j in range(k):
                item = cands[a, slate_in[a * k + j]]
                prefetch(corpus_f, (row + item) * f)
                prefetch(corpus_f, (row + item) * f + n_topics + 3)
                prefetch(shown, a * shown.shape[1] + (item >> 6))
        if ints[b, I_CURSOR] > width - draws:
            draw_row(b, u, gens, n_topics)
            ints[b, I_CURSOR] = n_topics
        corpus = ints[b, I_CORPUS]
        cur = ints[b, I_CURSOR]
        # 1. slate repair
        for j in range(c):
            picked[j] = False
        for j in range(k):
            picked[slate_in[b * k + j]] = True
        for j in range(k):
            pos = slate_in[b * k + j]
            if params[b, P_REPEATS] == 0.0:
                for i in range(j):
                    if slots[b, i] == pos:
                        pos = -1
                        break
                if pos < 0:
                    for free in range(c):
                        if not picked[free]:
                            pos = free
                            picked[free] = True
                            break
            slots[b, j] = pos
            item = cands[b, pos]
            slots[b, k + j] = item
            for d in range(f):
                slate_feats[b, j, d] = corpus_f[corpus, item, d]
        # 2. scores and choice
        for j in range(k):
            item = slots[b, k + j]
            h = hot[corpus, item]
            if h >= 0:
                dot = 0.0 + user[b, o_int + h] * corpus_f[corpus, item, h]
            else:
                dot = 0.0
                for d in range(n_topics):
                    dot += user[b, o_int + d] * corpus_f[corpus, item, d]
            scores[j] = (
                params[b, P_SCORE_SCALE] * dot
                + params[b, P_CLICKBAIT_APPEAL] * corpus_f[corpus, item, n_topics + F_CLICKBAIT]
            )
        choice_probabilities(
            np.int64(params[b, P_MODEL]),
            scores,
            params[b, P_NO_CLICK],
            params[b, P_MIN_NORM],
            params[b, P_ATTENTION],
            params[b, P_SCORE_SCALING],
            probs,
        )
        x = u[b, cur]
        chosen = -1
        cum = 0.0
        for j in range(k):
            cum += probs[j]
            if x < cum:
                chosen = j
                break
        # 3. response and state update
        watch = 0.0
        rating = 0.0
        q = 0.0
        sat_before = user[b, o_sat]
        if chosen >= 0:
            item = slots[b, k + chosen]
            q = corpus_f[corpus, item, n_topics + F_QUALITY]
            cb = corpus_f[corpus, item, n_topics + F_CLICKBAIT]
            frac = (
                params[b, P_WATCH_BASE]
                + params[b, P_WATCH_QUALITY] * q
                + params[b, P_WATCH_SAT] * (user[b, o_sat] - 0.5)
            )
            frac = min(max(frac, 0.0), 1.0)
            watch = min(user[b, o_budget], corpus_f[corpus, item, n_topics + F_LENGTH] * frac)
            h = hot[corpus, item]
            if h >= 0:
                topic = corpus_f[corpus, item, h]
                m = abs(topic)
                match = 0.0 + user[b, o_int + h] * topic
                mask_sum = 0.0 + m
                pos_prob = 0.0 + (user[b, o_int + h] + 1.0) * 0.5 * m
            else:
                match = 0.0
                mask_sum = 0.0
                pos_prob = 0.0
                for d in range(n_topics):
                    topic = corpus_f[corpus, item, d]
                    match += user[b, o_int + d] * topic
                    m = abs(topic)
                    mask_sum += m
                    pos_prob += (user[b, o_int + d] + 1.0) * 0.5 * m
            latent = (
                3.0
                + 0.75 * q
                + 1.5 * match
                + params[b, P_RATING_NOISE] * (2.0 * u[b, cur + 3] - 1.0)
            )
            rating = min(max(np.floor(latent + 0.5), 1.0), 5.0)
            # interest drift towards (or away from) the consumed topic; the observable
            # features (interests plus noise) change with the interests only
            scale = max(1.0 + params[b, P_DRIFT_QUALITY] * q, 0.0) * params[b, P_DRIFT]
            if mask_sum > 0.0:
                pos_prob /= mask_sum
            sign = 1.0 if u[b, cur + 1] < pos_prob else -1.0
            for d in range(n_topics):
                x_d = user[b, o_int + d]
                alpha = scale * max(1.0 - abs(x_d), 0.0)
                topic = corpus_f[corpus, item, d]
                v = min(max(x_d + sign * alpha * abs(topic) * (topic - x_d), -1.0), 1.0)
                user[b, o_int + d] = v
                user[b, o_feat + d] = v + user[b, n_topics + d]
            spend = watch * max(1.0 - params[b, P_BUDGET_GAIN] * q, MIN_SPEND)
            user[b, o_budget] = max(user[b, o_budget] - spend, 0.0)
            s = user[b, o_sat] + params[b, P_SAT_QUALITY] * q - params[b, P_SAT_CLICKBAIT] * cb
            user[b, o_sat] = min(max(s, 0.0), 1.0)
        else:
            user[b, o_budget] = max(user[b, o_budget] - params[b, P_SKIP], 0.0)
            user[b, o_sat] = max(user[b, o_sat] - params[b, P_SAT_SKIP], 0.0)
        # 4. leaving
        sat = user[b, o_sat]
        leave_p = params[b, P_LEAVE_BASE] + params[b, P_LEAVE_SCALE] * (1.0 - sat)
        gone = u[b, cur + 2] < leave_p
        left[b] = gone
        ints[b, I_T] += 1
        # coverage and intra-list diversity
        for j in range(k):
            item = slots[b, k + j]
            word = shown[b, item >> 6]
            bit = np.int64(1) << (item & 63)
            if word & bit == 0:
                shown[b, item >> 6] = word | bit
                acc[b, A_SHOWN] += 1.0
        div = 0.0
        pairs = 0
        for i in range(k):
            ia = slots[b, k + i]
            for j in range(i + 1, k):
                ie = slots[b, k + j]
                ha, he = hot[corpus, ia], hot[corpus, ie]
                if ha >= 0 and he >= 0:
                    ta = corpus_f[corpus, ia, ha]
                    te = corpus_f[corpus, ie, he]
                    dot = 0.0 + ta * te if ha == he else 0.0
                    na = 0.0 + ta * ta
                    ne = 0.0 + te * te
                else:
                    dot = 0.0
                    na = 0.0
                    ne = 0.0
                    for d in range(n_topics):
                        ta = corpus_f[corpus, ia, d]
                        te = corpus_f[corpus, ie, d]
                        dot += ta * te
                        na += ta * ta
                        ne += te * te
                cos = dot / np.sqrt(na * ne) if na > 0.0 and ne > 0.0 else 0.0
                div += 1.0 - cos
                pairs += 1
        if pairs > 0:
            div /= pairs
        clicked = 1.0 if chosen >= 0 else 0.0
        acc[b, A_WATCH] += watch
        acc[b, A_CLICKS] += clicked
        acc[b, A_SAT] += sat
        acc[b, A_DIV] += div
        acc[b, A_LAST_WATCH] = watch
        acc[b, A_LAST_RATING] = rating
        steps = float(ints[b, I_T])
        slots[b, 2 * k] = chosen
        slots[b, 2 * k + 1] = slots[b, k + chosen] if chosen >= 0 else -1
        # 5. episode end (the next candidate set is draw_candidates' to draw)
        term = user[b, o_budget] <= 0.0 or gone
        flags[0, b] = term
        flags[1, b] = (not term) and steps >= params[b, P_MAX_STEPS]
        cur += DRAWS_FIXED
        if params[b, P_SAMPLING] != ALL:
            cur += c
        ints[b, I_CURSOR] = cur
        # quantities (QUANTITIES), then metrics (METRICS)
        out[b, 0] = watch
        out[b, 1] = clicked
        out[b, 2] = rating
        out[b, 3] = sat - sat_before
        out[b, 4] = 1.0 if gone else 0.0
        out[b, 5] = watch
        out[b, 6] = clicked
        out[b, 7] = rating
        out[b, 8] = q
        out[b, 9] = acc[b, A_WATCH]
        out[b, 10] = acc[b, A_CLICKS]
        out[b, 11] = acc[b, A_CLICKS] / steps
        out[b, 12] = steps
        out[b, 13] = out[b, 4]
        out[b, 14] = user[b, o_budget]
        out[b, 15] = sat
        out[b, 16] = acc[b, A_SAT] / steps
        out[b, 17] = acc[b, A_SHOWN] / n_items
        out[b, 18] = div
        out[b, 19] = acc[b, A_DIV] / steps


@numba.njit(cache=True, error_model="numpy")
def step_all(
    slate_in: np.ndarray,
    fstate: np.ndarray,
    istate: np.ndarray,
    bstate: np.ndarray,
    perm: np.ndarray,
    corpus_f: np.ndarray,
    hot: np.ndarray,
    cdfs: np.ndarray,
    c: int,
    width: int,
    out: np.ndarray,
    flags: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """Advance every replica by one step, in place (see :func:`advance`).

    The candidates' features (``feats``) are left to :func:`fill_all_features`.

    Args:
        slate_in: ``[B * k]`` candidate positions, replica by replica.
        fstate: packed float64 state (:func:`unpack_state`).
        istate: packed int64 state.
        bstate: packed bool state.
        perm: ``[B, N]`` the replicas' corpus permutations.
        corpus_f: ``[K, N, T + 4]`` the items' features per catalogue.
        hot: ``[K, N]`` the items' single topics (:attr:`RecSim.hot`).
        cdfs: ``[K, N]`` popularity sampling CDFs.
        c: candidates per step.
        width: uniforms per replica buffer.
        out: ``[B, QUANTITIES + METRICS]`` results.
        flags: ``[2, B]`` terminated, truncated.

    Returns:
        ``-1 - b`` when replica ``b``'s slate holds a position outside the candidates, ``1 + b``
        when replica ``b`` must draw uniforms but has no generator (nothing is changed then);
        otherwise ``0``.
    """
    b_size = perm.shape[0]
    k = slate_in.shape[0] // b_size
    n_topics = corpus_f.shape[2] - 4
    status = check_positions(slate_in, k, c)
    if status < 0:
        return status
    params, user, acc, _, slate_feats, u, ints, cands, slots, gens, shown, left = unpack_state(
        fstate, istate, bstate, b_size, n_topics, perm.shape[1], c, k, width
    )
    status = missing_generator(ints, gens, width, DRAWS_FIXED + c)
    if status > 0:
        return status
    step_rows(
        slate_in,
        (params, user, acc, slate_feats, u, ints, cands, slots, gens, shown, left, perm),
        corpus_f,
        hot,
        cdfs,
        out,
        flags,
    )
    return 0


@numba.njit(cache=True, error_model="numpy")
def step_rows(
    slate_in: np.ndarray,
    rows: tuple,
    corpus_f: np.ndarray,
    hot: np.ndarray,
    cdfs: np.ndarray,
    out: np.ndarray,
    flags: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """:func:`advance` the replicas of ``rows``, then draw the next candidates where episodes go on.

    ``rows``: the state arrays ``(params, user, acc, slate_feats, u, ints, cands, slots, gens,
    shown, left, perm)`` of these replicas (all of a batch, or views of some of them), whose
    slates ``slate_in`` holds, flat; ``out`` and ``flags`` are theirs too.
    """
    params, user, acc, slate_feats, u, ints, cands, slots, gens, shown, left, perm = rows
    advance(
        slate_in,
        params,
        user,
        acc,
        slate_feats,
        u,
        ints,
        cands,
        slots,
        gens,
        shown,
        left,
        corpus_f,
        hot,
        out,
        flags,
    )
    goes_on = np.empty(ints.shape[0], dtype=np.bool_)
    for b in range(ints.shape[0]):
        goes_on[b] = not (flags[0, b] or flags[1, b])
    draw_candidates(goes_on, params, u, ints, cands, perm, cdfs)


@numba.njit(cache=True, error_model="numpy")
def fill_all_features(
    fstate: np.ndarray,
    istate: np.ndarray,
    bstate: np.ndarray,
    perm: np.ndarray,
    corpus_f: np.ndarray,
    c: int,
    k: int,
    width: int,
) -> None:  # pragma: no cover - compiled
    """Copy every replica's candidate features from the corpus (see :func:`fill_features`)."""
    b_size = perm.shape[0]
    _, _, _, feats, _, _, ints, cands, _, _, _, _ = unpack_state(
        fstate, istate, bstate, b_size, corpus_f.shape[2] - 4, perm.shape[1], c, k, width
    )
    fill_features(np.ones(b_size, dtype=np.bool_), ints, cands, corpus_f, feats)


def scenario_params(scenario: RecScenario, catalogue: Catalogue) -> np.ndarray:
    """The ``[NUM_PARAMS]`` parameter row of ``scenario`` (columns ``P_*``)."""
    p = np.zeros(NUM_PARAMS)
    p[P_MODEL] = CHOICE_MODELS.index(scenario.choice_model)
    p[P_SCORE_SCALE] = scenario.score_scale * catalogue.score_gain
    p[P_CLICKBAIT_APPEAL] = scenario.clickbait_appeal
    p[P_NO_CLICK] = scenario.no_click_mass
    p[P_MIN_NORM] = scenario.min_normalizer
    p[P_ATTENTION] = scenario.attention_prob
    p[P_SCORE_SCALING] = scenario.score_scaling
    p[P_WATCH_BASE] = scenario.watch_base
    p[P_WATCH_QUALITY] = scenario.watch_quality
    p[P_WATCH_SAT] = scenario.watch_satisfaction
    p[P_RATING_NOISE] = scenario.rating_noise
    p[P_SKIP] = scenario.skip_penalty
    p[P_BUDGET_GAIN] = scenario.budget_quality_gain
    p[P_DRIFT] = scenario.drift_rate
    p[P_DRIFT_QUALITY] = scenario.drift_quality
    p[P_SAT_QUALITY] = scenario.satisfaction_quality
    p[P_SAT_CLICKBAIT] = scenario.satisfaction_clickbait
    p[P_SAT_SKIP] = scenario.satisfaction_skip
    p[P_LEAVE_BASE] = scenario.leave_base
    p[P_LEAVE_SCALE] = scenario.leave_scale
    p[P_MAX_STEPS] = scenario.max_steps
    p[P_BUDGET0] = scenario.budget
    p[P_SAMPLING] = CANDIDATE_SAMPLING.index(scenario.candidate_sampling)
    p[P_REPEATS] = 1.0 if scenario.allow_repeats else 0.0
    p[P_LENGTH_SCALE] = scenario.length_mean
    p[P_SAT0] = scenario.initial_satisfaction
    p[P_DRAWN_START] = 1.0 if drawn_start(scenario) else 0.0
    return p


def popularity_weights(popularity: np.ndarray, exponent: float) -> np.ndarray:
    """Sampling weights ``popularity ** exponent`` of ``popularity``-weighted candidates.

    The weights are taken relative to the most popular item, ``(p / p_max) ** exponent``, so a
    sharp exponent cannot overflow; every item keeps a weight of at least ``1e-12``.
    """
    p = np.asarray(popularity, dtype=np.float64)
    top = float(p.max()) if p.size else 0.0
    if top <= 0.0:
        return np.ones_like(p)
    return np.power(p / top, exponent) + 1e-12


def draw_interests(
    scenario: RecScenario, catalogue: Catalogue, rng: np.random.Generator
) -> np.ndarray:
    """A session user's initial interests ``[T]``: the scenario's own, else drawn by its kind.

    ``uniform`` draws ``uniform(-1, 1)`` per topic; ``normal`` draws from the catalogue's
    interest distribution (``N(0, interest_std^2)`` or the fitted MovieLens one), clipped to
    [-1, 1]. A scenario with ``interests`` draws nothing.
    """
    t = scenario.num_topics
    if scenario.interests:
        return np.asarray(scenario.interests, dtype=np.float64)
    if scenario.interest_kind == "uniform":
        return rng.uniform(-1.0, 1.0, t)
    z = rng.standard_normal(t)
    return normal_interests_of(catalogue.interest_mean, catalogue.interest_chol, z)


def drawn_start(scenario: RecScenario) -> bool:
    """Whether a session's random start is the first ``T`` uniforms of its buffer alone.

    Uniform interests without feature noise are ``uniform(-1, 1)`` draws, which are ``-1 + 2 u``
    for the generator's next uniforms ``u``: the reset then draws them and the buffer in one call.
    """
    return (
        scenario.interest_kind == "uniform"
        and not scenario.interests
        and not scenario.feature_noise > 0
    )


def draws_per_step(scenario: RecScenario) -> int:
    """Uniforms one step consumes from the replica's buffer."""
    return DRAWS_FIXED + (0 if scenario.candidate_sampling == "all" else scenario.num_candidates)


class RecSim(BatchedSim[RecScenario, RecState]):
    """``B`` user sessions; actions are slates of candidate positions ``[B, k]``."""

    def __init__(self, batch_size: int, scenario: RecScenario) -> None:
        super().__init__(batch_size, scenario)
        b = batch_size
        self.num_topics = t = scenario.num_topics
        self.num_items = n = scenario.num_items
        self.num_candidates = c = scenario.num_candidates
        self.slate_size = k = scenario.slate_size
        self.draws = DRAWS_FIXED + c
        # uniforms: T drawn at reset (the interests, see drawn_start), then BUFFER_STEPS steps
        self.width = t + self.draws * BUFFER_STEPS
        # packed state (three buffers keep the kernels' calls cheap; _bind names the views):
        # float64 parameters, user, episode sums, candidate and slate features, uniforms;
        # int64 counters, candidates, slots, generators, items shown (bits); bool left
        floats, ints, bools = state_sizes(b, t, n, c, k, self.width)
        self.fstate = np.zeros(floats)
        self.istate = np.zeros(ints, dtype=np.int64)
        self.bstate = np.zeros(bools, dtype=np.bool_)
        # the replicas' permutations of the corpus (partial Fisher-Yates draws), compact
        self.perm = np.tile(np.arange(n, dtype=np.int16 if n <= 2**15 else np.int32), (b, 1))
        self.catalogues: list[Catalogue] = []
        self.exponents: list[float] = []
        self.length_means: list[float] = []
        self.corpus_f = np.zeros((0, n, t + 4))
        self.hot = np.zeros((0, n), dtype=np.int64)
        """``[K, N]``: the one topic of each item whose topic vector has a single nonzero entry
        (-1: none). The kernels' sums over such a vector take that entry alone, since adding
        the products of the zeros changes no bit of them."""
        self.cdfs = np.zeros((0, n))
        self._loaded: list[RecScenario | None] = [None] * b
        self._drawn_start = [False] * b
        # (changes to _loaded, the scenario every replica starts from or None, its start plan),
        # see common_start
        self._loads = 0
        self._common: tuple[int, RecScenario | None, np.ndarray] = (-1, None, _NO_START)
        self.gen64 = np.zeros(b, dtype=np.int64)
        """``[B]``: the address of each replica's generator's ``next_uint64`` (normal draws)."""
        self.features_stale = False
        """Whether steps drew candidates whose features are not copied yet (the step's
        results never need them): :meth:`snapshot` and :meth:`linear_slates` copy them first."""
        self._bind()
        self.cursor[:] = self.width
        self.slots[:] = -1
        self._add_catalogue(load_catalogue(scenario), scenario)

    def _bind(self) -> None:
        """Bind the state arrays inside the packed buffers, name their columns (all views).

        ``user``: interests, feature noise, observable features, budget, satisfaction;
        ``ints``: cursor into the uniforms, steps taken, catalogue (columns ``I_*``); ``acc``:
        episode sums and the last response (columns ``A_*``); ``slots``: last slate positions,
        their items, the clicked position and item (-1: none); ``gens``: the addresses of the
        replicas' bit generators (0: none yet).
        """
        t, k = self.num_topics, self.slate_size
        (
            self.params,
            self.user,
            self.acc,
            self.feats,
            self.slate_feats,
            self.u,
            self.ints,
            self.cands,
            self.slots,
            self.gens,
            self.shown,
            self.left,
        ) = unpack_state(
            self.fstate,
            self.istate,
            self.bstate,
            self.batch_size,
            t,
            self.num_items,
            self.num_candidates,
            k,
            self.width,
        )
        # where a reset without a drawn start draws its buffer: after the interests
        self._tails = [row[t:] for row in self.u]
        self.interests = self.user[:, :t]
        self.noise = self.user[:, t : 2 * t]
        self.features = self.user[:, 2 * t : 3 * t]
        self.budget = self.user[:, 3 * t]
        self.sat = self.user[:, 3 * t + 1]
        self.cursor = self.ints[:, I_CURSOR]
        self.t = self.ints[:, I_T]
        self.corpus_id = self.ints[:, I_CORPUS]
        self.last_slate = self.slots[:, :k]
        self.last_items = self.slots[:, k : 2 * k]
        self.last_int = self.slots[:, 2 * k :]
        self.last = self.acc[:, A_LAST_WATCH:]
        self._snapshot = self._views()

    # --- catalogues ------------------------------------------------------------------------
    def _add_catalogue(self, cat: Catalogue, scenario: RecScenario) -> int:
        exponent = scenario.popularity_exponent
        for i, known in enumerate(self.catalogues):
            if known.key == cat.key and self.exponents[i] == exponent:
                return i
        self.catalogues.append(cat)
        self.exponents.append(float(exponent))
        # the length unit of observations (the catalogue's key holds the scenario's length_mean)
        self.length_means.append(float(scenario.length_mean))
        self._restack()
        return len(self.catalogues) - 1

    def _restack(self) -> None:
        cats = self.catalogues
        weights = [
            popularity_weights(c.popularity, e) for c, e in zip(cats, self.exponents, strict=True)
        ]
        # every item's features laid out like a candidate's: topic vector, then F_* columns
        extra = [
            np.stack([c.quality, c.clickbait, c.length, c.popularity_feature], axis=1) for c in cats
        ]
        self.corpus_f = np.ascontiguousarray(
            np.stack(
                [np.concatenate([c.topics, e], axis=1) for c, e in zip(cats, extra, strict=True)]
            )
        )
        self.cdfs = np.stack([np.cumsum(w) / w.sum() for w in weights])
        nonzero = self.corpus_f[:, :, : self.num_topics] != 0.0
        self.hot = np.where(nonzero.sum(axis=2) == 1, nonzero.argmax(axis=2), -1).astype(np.int64)

    def _views(self) -> RecState:
        t = self.num_topics
        f = self.feats
        return RecState(
            interests=readonly(self.interests),
            features=readonly(self.features),
            budget=readonly(self.budget),
            initial_budget=readonly(self.params[:, P_BUDGET0]),
            satisfaction=readonly(self.sat),
            t=readonly(self.t),
            max_steps=readonly(self.params[:, P_MAX_STEPS]),
            candidates=readonly(self.cands),
            candidate_features=readonly(f),
            candidate_topics=readonly(f[:, :, :t]),
            candidate_quality=readonly(f[:, :, t]),
            candidate_clickbait=readonly(f[:, :, t + 1]),
            candidate_length=readonly(f[:, :, t + 2]),
            candidate_popularity=readonly(f[:, :, t + 3]),
            last_slate=readonly(self.last_slate),
            last_slate_items=readonly(self.last_items),
            last_slate_features=readonly(self.slate_feats),
            last_click=readonly(self.last_int[:, 0]),
            last_click_item=readonly(self.last_int[:, 1]),
            last_watch=readonly(self.last[:, 0]),
            last_rating=readonly(self.last[:, 1]),
            left=readonly(self.left),
            episode_watch=readonly(self.acc[:, A_WATCH]),
            clicks=readonly(self.acc[:, A_CLICKS]),
            params=readonly(self.params),
        )

    _VIEWS = (
        "params",
        "user",
        "acc",
        "feats",
        "slate_feats",
        "u",
        "ints",
        "cands",
        "slots",
        "gens",
        "shown",
        "left",
        "_tails",
        "interests",
        "noise",
        "features",
        "budget",
        "sat",
        "cursor",
        "t",
        "corpus_id",
        "last_slate",
        "last_items",
        "last_int",
        "last",
        "_snapshot",
    )

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        for name in self._VIEWS:
            del state[name]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._bind()
        # the generators are new objects: point the kernels at them
        self.gens[:] = 0
        self._gen_of = None
        if "gen64" not in state:  # pickled before the kernels drew normals
            self.gen64 = np.zeros(self.batch_size, dtype=np.int64)
        if len(self._common) == 2:
            self._common = (-1, None, _NO_START)
        self._set_generators([i for i, rng in enumerate(self.rngs) if rng is not None])

    def _set_generators(self, idx: list[int]) -> None:
        # a replica reset with the generator it had keeps its addresses (a vector env resets
        # each replica with its own generator every episode)
        had = self.__dict__.get("_gen_of")
        if had is None:
            had = self._gen_of = [None] * self.batch_size
        for i in idx:
            rng = self.rngs[i]
            assert rng is not None
            if had[i] is not rng:
                self.gens[i] = generator_address(rng)
                self.gen64[i] = generator_u64(rng)
                had[i] = rng
        self._distinct = None

    def distinct_generators(self) -> bool:
        """Whether no two replicas draw from one generator, so their steps may run at once.

        One generator for several replicas is allowed; their draws then follow the replicas'
        order, which only a step on one thread keeps.
        """
        distinct = self.__dict__.get("_distinct")
        if distinct is None:
            ids = [id(rng) for rng in self.rngs if rng is not None]
            distinct = self._distinct = len(set(ids)) == len(ids)
        return distinct

    def catalogue(self, i: int) -> Catalogue:
        """The catalogue replica ``i`` draws its candidates from."""
        return self.catalogues[int(self.corpus_id[i])]

    def check_compatible(self, scenario: RecScenario) -> None:
        shape = (scenario.num_topics, scenario.num_items, scenario.num_candidates)
        mine = (self.num_topics, self.num_items, self.num_candidates)
        if shape != mine or scenario.slate_size != self.slate_size:
            raise ValueError(
                f"scenario {scenario.name!r} has (num_topics, num_items, num_candidates, "
                f"slate_size) = {(*shape, scenario.slate_size)}; this environment was built for "
                f"{(*mine, self.slate_size)}"
            )
        if scenario.observe_quality != self.structure.observe_quality:
            raise ValueError(
                f"scenario {scenario.name!r} has observe_quality={scenario.observe_quality}; "
                f"this environment was built for observe_quality={self.structure.observe_quality} "
                "(what the recommender sees is part of its observation and action spaces)"
            )

    def common_start(self) -> RecScenario | None:
        """The scenario every replica is loaded with, if its sessions' start is all drawn.

        Such a replica's reset draws its interests, feature noise and buffer and nothing else,
        which a kernel can do itself (:func:`draw_start`, :func:`start_row`,
        :func:`draw_candidates`) with :meth:`start_plan`. ``None`` otherwise, and for a
        scenario that gives its own ``interests``.
        """
        if self._common[0] != self._loads:
            first = self._loaded[0]
            same = first is not None and all(sc is first for sc in self._loaded)
            common, plan = None, _NO_START
            if same and first is not None and not first.interests:
                common = first
                plan = self._start_plan(first, self.catalogues[int(self.corpus_id[0])])
            self._common = (self._loads, common, plan)
        return self._common[1]

    def start_plan(self) -> np.ndarray:
        """How a session of :meth:`common_start` starts, for :func:`draw_start` (empty: none).

        ``[kind, feature noise, interest mean (T), Cholesky factor (T x T, row by row)]``, kind
        one of ``START_*``.
        """
        self.common_start()
        return self._common[2]

    @staticmethod
    def _start_plan(scenario: RecScenario, catalogue: Catalogue) -> np.ndarray:
        if drawn_start(scenario):
            kind = START_DRAWN
        elif scenario.interest_kind == "uniform":
            kind = START_UNIFORM
        else:
            kind = START_NORMAL
        return np.concatenate(
            [
                [float(kind), float(scenario.feature_noise)],
                np.asarray(catalogue.interest_mean, dtype=np.float64).reshape(-1),
                np.asarray(catalogue.interest_chol, dtype=np.float64).reshape(-1),
            ]
        )

    def refill_missing(self, status: int) -> None:
        """Raise for a kernel's status ``1 + b``: replica ``b`` has no generator to draw from."""
        raise RuntimeError(
            f"replica {status - 1} has no random generator: reset it before stepping"
        )

    def _reset(self, idx: np.ndarray) -> None:
        t = self.num_topics
        interests, noise, u, tails = self.interests, self.noise, self.u, self._tails
        rows = idx.tolist()
        self._set_generators(rows)
        for i in rows:
            sc = self.scenarios[i]
            rng = self.rngs[i]
            assert rng is not None
            if self._loaded[i] is not sc:
                cat = load_catalogue(sc)
                self.corpus_id[i] = self._add_catalogue(cat, sc)
                self.params[i] = scenario_params(sc, cat)
                self._loaded[i] = sc
                self._drawn_start[i] = drawn_start(sc)
                self._loads += 1
            # the replica's draws, in a fixed order: interests, feature noise, uniforms
            if self._drawn_start[i]:
                rng.random(out=u[i])  # _start turns the first T into the interests
                continue
            interests[i] = draw_interests(sc, self.catalogues[int(self.corpus_id[i])], rng)
            if sc.feature_noise > 0:
                noise[i] = sc.feature_noise * rng.standard_normal(t)
            else:
                noise[i] = 0.0
            rng.random(out=tails[i])
        _start(
            np.ascontiguousarray(idx, dtype=np.int64),
            self.fstate,
            self.istate,
            self.bstate,
            self.perm,
            self.corpus_f,
            self.cdfs,
            self.num_candidates,
            self.slate_size,
            self.width,
        )

    def check_slate(self, actions: np.ndarray) -> np.ndarray:
        """Return ``actions`` as ``[B, k]`` int64 positions or raise ``ValueError`` naming them."""
        a = np.asarray(actions)
        shape = (self.batch_size, self.slate_size)
        if a.size != self.batch_size * self.slate_size:
            raise ValueError(f"slate: expected {shape} candidate positions, got shape {a.shape}")
        a = a.reshape(shape)
        if not np.issubdtype(a.dtype, np.integer) and (
            not np.all(np.isfinite(a)) or np.any(np.mod(a, 1) != 0)
        ):
            raise ValueError(f"slate: positions must be whole numbers, got {a.tolist()}")
        a = a.astype(np.int64, copy=False)
        bad = (a < 0) | (a >= self.num_candidates)
        if bad.any():
            b, j = (int(v[0]) for v in np.nonzero(bad))
            raise ValueError(
                f"slate[{j}]: position {a[b, j]} (replica {b}) is outside the candidates; "
                f"allowed values are 0..{self.num_candidates - 1}"
            )
        return np.ascontiguousarray(a)

    @property
    def linear_size(self) -> int:
        """Length ``T + 5 + C`` of a linear ranking rule (see :meth:`linear_slates`)."""
        return self.num_topics + LINEAR_FEATURES + self.num_candidates

    def linear_slates(self, rules: np.ndarray) -> np.ndarray:
        """Slates ``[B, k]`` ranked by linear scoring rules ``rules[B, T + 5 + C]``.

        A rule holds weights ``w`` for the features ``x_j`` every candidate ``j`` shares in
        meaning: ``[match, topic (T), quality / 3.4, clickbait, length / mean length,
        popularity]`` with ``match`` the dot product of the user's observable features (clipped
        to +-4) and the candidate's topic vector, then one score ``s_j`` per candidate. The score
        ``LINEAR_GAIN * w . x_j + s_j`` ranks the candidates; the ``k`` best fill the slate, best
        first, ties going to the lower position. The same weights therefore score any candidate,
        wherever it appears in the candidate set. A scenario that hides quality
        (``observe_quality=False``) ignores the quality weight.
        """
        r = np.asarray(rules, dtype=np.float64).reshape(self.batch_size, self.linear_size)
        if not np.all(np.isfinite(r)):
            raise ValueError(f"linear rule: entries must be finite, got {r.tolist()}")
        t = self.num_topics
        if self.features_stale:
            self.refresh_features()
        f = self.feats
        w = r[:, : t + LINEAR_FEATURES]
        user = np.clip(self.features, -FEATURE_BOUND, FEATURE_BOUND)
        scale = np.maximum(self.params[:, P_LENGTH_SCALE], 1e-9)[:, None]
        topics = f[:, :, :t]
        score = w[:, :1] * np.einsum("bt,bct->bc", user, topics)
        score += np.einsum("bt,bct->bc", w[:, 1 : t + 1], topics)
        if self.structure.observe_quality:
            score += w[:, t + 1, None] * np.clip(f[:, :, t] / QUALITY_SCALE, -3.0, 3.0)
        score += w[:, t + 2, None] * f[:, :, t + 1]
        score += w[:, t + 3, None] * np.clip(f[:, :, t + 2] / scale, 0.0, 5.0)
        score += w[:, t + 4, None] * f[:, :, t + 3]
        score = LINEAR_GAIN * score + r[:, t + LINEAR_FEATURES :]
        return np.argsort(-score, axis=1, kind="stable")[:, : self.slate_size]

    def step(self, actions: np.ndarray) -> StepResult:
        """Advance one step showing ``actions``: slates or linear ranking rules.

        Args:
            actions: candidate positions ``[B, k]``, or linear ranking rules ``[B, T + 5 + C]``
                (floats, see :meth:`linear_slates`); the sizes differ since ``k <= C``.
        """
        a = np.asarray(actions)
        b = self.batch_size
        if a.dtype != np.int64 or a.shape != (b, self.slate_size) or not a.flags.c_contiguous:
            if a.size == b * self.linear_size and a.dtype.kind == "f":
                a = self.linear_slates(a)
            a = self.check_slate(a)
        out = np.empty((b, len(QUANTITIES) + len(METRICS)))
        flags = np.empty((2, b), dtype=np.bool_)
        status = step_all(
            a.reshape(-1),
            self.fstate,
            self.istate,
            self.bstate,
            self.perm,
            self.corpus_f,
            self.hot,
            self.cdfs,
            self.num_candidates,
            self.width,
            out,
            flags,
        )
        if status < 0:
            self.check_slate(a)  # raises, naming the position
        if status > 0:
            self.refill_missing(status)
        self.features_stale = True
        return self.result(out, flags)

    @staticmethod
    def result(out: np.ndarray, flags: np.ndarray) -> StepResult:
        """The step result of the kernel's outputs.

        Args:
            out: ``[B, QUANTITIES + METRICS + ...]`` values (further columns are ignored).
            flags: ``[2 or more, B]`` terminated, truncated, ...
        """
        n = len(QUANTITIES)
        return StepResult(
            quantities=Columns(QUANTITIES, out[:, :n]),
            metrics=Columns(METRICS, out[:, n : n + len(METRICS)]),
            terminated=flags[0],
            truncated=flags[1],
        )

    def snapshot(self) -> RecState:
        if self.features_stale:
            self.refresh_features()
        return self._snapshot

    def refresh_features(self) -> None:
        """Copy the current candidates' features into ``feats`` (see :attr:`features_stale`)."""
        fill_all_features(
            self.fstate,
            self.istate,
            self.bstate,
            self.perm,
            self.corpus_f,
            self.num_candidates,
            self.slate_size,
            self.width,
        )
        self.features_stale = False
