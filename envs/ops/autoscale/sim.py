"""Batched simulation core of the service autoscaler (numpy and numba only).

Each decision step of ``step_minutes`` minutes, for every service of every replica, in order:

1. the start-up pipeline advances (replicas whose delay is over become ready) and failed
   replicas whose detection delay is over are removed;
2. a zone outage may start: the replicas of one zone (round-robin placement over ``zones``)
   fail at once and that zone's share of the replica cap is unavailable until it ends;
3. ready replicas fail independently with probability ``1 - exp(-step / MTBF)``;
4. the action sets the desired replica count (a bounded change of the current one, or a
   target), clamped to ``[min_replicas, max_replicas]``; the controller starts replicas up to
   ``min(desired, available cap)`` or removes the excess (failed first, then starting
   replicas newest first, then ready ones). New replicas become ready after the start-up delay;
5. the step's arrivals join the queue; ready replicas serve up to their capacity
   (``ready * service_rate * step``, whole requests with the fraction carried over); what
   exceeds ``queue_limit`` is dropped. Requests are conserved: arrived = served + dropped +
   change of the queue;
6. latency: the SLO percentile of the response time of an M/M/c queue (Erlang C) at the
   step's arrival rate with ``c`` ready replicas (the rate is capped at 99 % of capacity when
   overloaded), plus the time the ready replicas need to clear the remaining queue; a step in
   which it exceeds ``slo_latency`` counts as ``step_minutes`` minutes of SLO violation;
7. costs: ready and starting replicas are billed ``replica_cost`` per hour; SLO-violation
   minutes and dropped requests pay their penalties.

All randomness of an episode (arrivals, failure draws, outages) is drawn at reset from the
replica's generator (:func:`sample_episode`), so replica ``i`` of a batch reproduces a single
env seeded the same way. The step of all replicas is one compiled kernel (numba).
"""

from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np

from envs.core.sim import BatchedSim, Snapshot, StepResult, readonly
from envs.ops.autoscale.scenario import MINUTES_PER_DAY, AutoscaleScenario

HISTORY = 120
"""Steps of history kept for rendering and moving-window forecasts."""
RHO_MAX = 0.99
"""Largest utilisation the M/M/c latency model is evaluated at (overload adds queue time)."""
LOAD_CAP = 10.0
"""Largest offered load reported (a service without ready replicas but with arrivals)."""

# history channels, per service: [B, K, H_CHANNELS, HISTORY]
H_RATE, H_CAPACITY, H_READY, H_STARTING, H_FAILED, H_LATENCY = range(6)
H_CHANNELS = 6
# last step per service: [B, K, L_CHANNELS]
L_ARRIVED, L_SERVED, L_DROPPED, L_LATENCY, L_UTIL, L_LOAD, L_VIOLATED = range(7)
L_CHANNELS = 7
# episode accumulators per service: [B, K, A_CHANNELS]
A_ARRIVED, A_SERVED, A_DROPPED, A_VIOLATION_MIN, A_REPLICA_COST, A_PENALTY = range(6)
A_CHANNELS = 6

QUANTITIES = ("replica_cost", "slo_violation", "dropped_requests")
"""Per-step quantities reward terms are built from, currency units."""
METRICS = (
    "cost",
    "episode_cost",
    "episode_replica_cost",
    "p95_latency",
    "slo_violation_minutes",
    "episode_slo_violation_minutes",
    "slo_violation_rate",
    "dropped",
    "episode_dropped",
    "arrived",
    "served",
    "queued",
    "episode_arrived",
    "episode_served",
    "utilisation",
    "ready",
    "starting",
    "failed",
    "desired",
    "outage",
)


@dataclasses.dataclass(frozen=True)
class AutoscaleState(Snapshot):
    """State of all replicas after the last step (arrays ``[B, ...]``, ``K`` services).

    The arrays are read-only views of the simulator's state, valid until its next ``step`` or
    ``reset``; :meth:`~envs.core.sim.Snapshot.replica` returns an independent copy.

    Attributes:
        t: steps elapsed, ``[B]``; horizon: steps per episode, ``[B]``.
        step_minutes: minutes per step, ``[B]``; start_minute: minute of the day at step 0
            (may exceed 1440), ``[B]``.
        zones: availability zones, ``[B]``; outage_zone: zone down (``-1``: none), ``[B]``;
            outage_left: steps until the outage ends, ``[B]``.
        service_rate: requests/s per replica, ``[B, K]``; min_replicas, max_replicas:
            ``[B, K]``; available_cap: replica cap left by the current outage, ``[B, K]``.
        startup_steps: start-up delay in steps, ``[B, K]``; queue_limit: ``[B, K]`` requests;
            slo_latency: ``[B, K]`` seconds; peak_rate: planning peak of the arrival rate,
            ``[B, K]`` requests/s.
        desired: desired replicas, ``[B, K]``; ready: ``[B, K]``; starting: replicas by steps
            until ready, ``[B, K, D]`` (index ``j`` is ready in ``j + 1`` steps); failed:
            failed replicas by steps until replaced, ``[B, K, F]``.
        queue: waiting requests, ``[B, K]``.
        rate: arrival rate of the last step and its means over the last 5 and 15 steps,
            ``[B, K, 3]`` requests/s (at step 0: the rate of the arrival profile).
        last: the last step per service, ``[B, K, 7]``: arrived, served, dropped (requests),
            latency at the SLO percentile (s), utilisation (served / capacity, at most 1, and
            1 while requests are left over), offered load (arrival rate / ready capacity, at
            most ``LOAD_CAP``), SLO violated (0/1).
        history: the last ``HISTORY`` steps, ``[B, K, 6, HISTORY]``: arrival rate, ready
            capacity (requests/s), ready, starting, failed replicas, latency (s); step ``s`` is
            at index ``s % HISTORY``.
        totals: episode sums per service, ``[B, K, 6]``: arrived, served, dropped, SLO
            violation minutes, replica cost, penalties.
    """

    t: np.ndarray
    horizon: np.ndarray
    step_minutes: np.ndarray
    start_minute: np.ndarray
    zones: np.ndarray
    outage_zone: np.ndarray
    outage_left: np.ndarray
    service_rate: np.ndarray
    min_replicas: np.ndarray
    max_replicas: np.ndarray
    available_cap: np.ndarray
    startup_steps: np.ndarray
    queue_limit: np.ndarray
    slo_latency: np.ndarray
    peak_rate: np.ndarray
    desired: np.ndarray
    ready: np.ndarray
    starting: np.ndarray
    failed: np.ndarray
    queue: np.ndarray
    rate: np.ndarray
    last: np.ndarray
    history: np.ndarray
    totals: np.ndarray

    def minute_of_day(self) -> np.ndarray:
        """Clock time at the current step, minutes since midnight in [0, 1440), ``[B]``."""
        return np.mod(self.start_minute + self.t * self.step_minutes, MINUTES_PER_DAY)


# --- queueing formulas -----------------------------------------------------------------------


@numba.njit(cache=True)
def erlang_c(c: int, a: float) -> float:  # pragma: no cover - compiled
    """Probability that an arrival waits in an M/M/c queue (Erlang C).

    Computed through the Erlang B recurrence ``B(n) = a B(n-1) / (n + a B(n-1))`` in its
    inverse form ``1 / B(n) = 1 + n / (a B(n-1))``, which is stable for large ``c``.

    Args:
        c: servers (ready replicas), >= 1.
        a: offered load ``lambda / mu`` in Erlangs, ``0 <= a < c``.
    """
    if a <= 0.0:
        return 0.0
    # 1 / B(n) = 1 + n / a * (1 / B(n - 1)): multiply-adds only (overflow gives B = 0)
    inv_a = 1.0 / a
    inv_b = 1.0
    for n in range(1, c + 1):
        inv_b = 1.0 + n * inv_a * inv_b
    b = 1.0 / inv_b
    rho = a / c
    return b / (1.0 - rho * (1.0 - b))


@numba.njit(cache=True)
def wait_tail(c: int, lam: float, mu: float, t: float) -> float:  # pragma: no cover - compiled
    """``P(W > t)`` for the waiting time ``W`` of an M/M/c queue: ``C e^{-(c mu - lam) t}``."""
    return erlang_c(c, lam / mu) * math.exp(-(c * mu - lam) * t)


@numba.njit(cache=True)
def _sojourn_tail(cw: float, theta: float, mu: float, t: float) -> float:  # pragma: no cover
    if abs(theta - mu) <= 1e-9 * mu:
        return math.exp(-mu * t) * (1.0 + cw * mu * t)
    k = cw * mu / (theta - mu)
    return math.exp(-mu * t) + k * (math.exp(-mu * t) - math.exp(-theta * t))


@numba.njit(cache=True)
def sojourn_tail(c: int, lam: float, mu: float, t: float) -> float:  # pragma: no cover - compiled
    """``P(T > t)`` for the response time ``T = W + S`` of an M/M/c queue.

    With ``C`` the Erlang C probability and ``theta = c mu - lam``:
    ``P(T > t) = e^{-mu t} + C mu / (theta - mu) (e^{-mu t} - e^{-theta t})`` (and
    ``e^{-mu t} (1 + C mu t)`` when ``theta = mu``).
    """
    return _sojourn_tail(erlang_c(c, lam / mu), c * mu - lam, mu, t)


@numba.njit(cache=True)
def _sojourn_tail_slope(
    cw: float, theta: float, mu: float, t: float
) -> tuple[float, float]:  # pragma: no cover - compiled
    """:func:`_sojourn_tail` and its derivative in ``t`` (minus the density of ``T``)."""
    e_mu = math.exp(-mu * t)
    if abs(theta - mu) <= 1e-9 * mu:
        return e_mu * (1.0 + cw * mu * t), -mu * e_mu * (1.0 + cw * mu * t - cw)
    e_theta = math.exp(-theta * t)
    k = cw * mu / (theta - mu)
    return e_mu + k * (e_mu - e_theta), -mu * e_mu + k * (theta * e_theta - mu * e_mu)


@numba.njit(cache=True)
def sojourn_percentile(c: int, lam: float, mu: float, q: float) -> float:  # pragma: no cover
    """The ``q`` quantile of the M/M/c response time, seconds (requires ``lam < c mu``).

    The quantile lies between the larger of the waiting-time and service-time quantiles and
    their sum at ``(1 - q) / 2`` each. Inside that bracket, Newton steps on ``log P(T > t)``
    (nearly linear in ``t``) converge in a few iterations; a step leaving the bracket is
    replaced by bisection. Accurate to a relative 1e-10.
    """
    cw = erlang_c(c, lam / mu)
    theta = c * mu - lam
    tail = 1.0 - q
    log_tail = math.log(tail)
    s_q = -log_tail / mu
    w_q = math.log(cw / tail) / theta if cw > tail else 0.0
    lo = max(s_q, w_q)
    hi = s_q + math.log(2.0) / mu
    if cw > 0.5 * tail:
        hi += math.log(2.0 * cw / tail) / theta
    x = lo
    for _ in range(100):
        value, slope = _sojourn_tail_slope(cw, theta, mu, x)
        if value <= tail and x == lo:
            return lo
        if value > tail:
            lo = x
        else:
            hi = x
        nxt = 0.5 * (lo + hi)
        if value > 0.0 and slope < 0.0:
            candidate = x - (math.log(value) - log_tail) * value / slope
            if lo < candidate < hi:
                nxt = candidate
        if abs(nxt - x) <= 1e-10 * nxt or hi - lo <= 1e-10 * hi:
            return nxt
        x = nxt
    return x


LOG_PMF_FLOOR = -700.0
"""Below this ``log P(0)`` (``q ** n`` near underflow) the binomial inversion starts at the mode."""


@numba.njit(cache=True)
def _binomial_inverse(n: int, p: float, u: float) -> int:  # pragma: no cover - compiled
    """The ``u`` quantile of Binomial(n, p): failures among ``n`` replicas from one uniform.

    The smallest ``k`` with ``P(X <= k) >= u``, summing the probabilities from ``k = 0``.
    When ``P(X = 0) = q ** n`` would underflow (``n`` large or ``p`` near one), the sum
    starts at the mode instead, whose probability (from ``lgamma``) is representable, and
    walks down or up from there.
    """
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    q = 1.0 - p
    log_q = math.log1p(-p)
    up = p / q
    if n * log_q > LOG_PMF_FLOOR:
        pmf = q**n
        cdf = pmf
        k = 0
    else:
        k = min(int((n + 1) * p), n)
        pmf = math.exp(
            math.lgamma(n + 1.0)
            - math.lgamma(k + 1.0)
            - math.lgamma(n - k + 1.0)
            + k * math.log(p)
            + (n - k) * log_q
        )
        # P(X <= mode): the probabilities below the mode fall off faster than geometrically
        cdf = pmf
        below = pmf
        j = k
        while j > 0 and below > 1e-18 * cdf:
            below *= j / (n - j + 1.0) / up
            j -= 1
            cdf += below
        if u <= cdf:
            while k > 0:
                cdf -= pmf
                if u > cdf:
                    return k
                pmf *= k / (n - k + 1.0) / up
                k -= 1
            return 0
    while u > cdf and k < n and pmf > 0.0:
        pmf *= (n - k) / (k + 1.0) * up
        k += 1
        cdf += pmf
    return k


@numba.njit(cache=True)
def _zone_share(n: int, zone: int, zones: int) -> int:  # pragma: no cover - compiled
    """Replicas of zone ``zone`` among ``n`` placed round robin over ``zones`` zones."""
    return n // zones + (1 if zone < n % zones else 0)


@numba.njit(cache=True)
def _ar1(eps: np.ndarray, phi: float, sigma: float) -> np.ndarray:  # pragma: no cover
    out = np.empty_like(eps)
    x = sigma * eps[0]
    out[0] = x
    scale = sigma * math.sqrt(1.0 - phi * phi)
    for i in range(1, eps.size):
        x = phi * x + scale * eps[i]
        out[i] = x
    return out


# --- the step kernel ---------------------------------------------------------------------------


@numba.njit(cache=True)
def _step(
    actions: np.ndarray,
    is_delta: bool,
    # per-replica parameters
    horizon: np.ndarray,
    step_minutes: np.ndarray,
    zones: np.ndarray,
    detect: np.ndarray,
    latency_cap: np.ndarray,
    mu: np.ndarray,
    min_rep: np.ndarray,
    max_rep: np.ndarray,
    startup: np.ndarray,
    queue_limit: np.ndarray,
    slo: np.ndarray,
    percentile: np.ndarray,
    cost_h: np.ndarray,
    slo_pen: np.ndarray,
    drop_pen: np.ndarray,
    p_fail: np.ndarray,
    # pre-drawn episode randomness
    arrivals: np.ndarray,
    fail_u: np.ndarray,
    outage_at: np.ndarray,
    outage_len: np.ndarray,
    # state
    t: np.ndarray,
    outage_zone: np.ndarray,
    outage_left: np.ndarray,
    cap_eff: np.ndarray,
    desired: np.ndarray,
    ready: np.ndarray,
    starting: np.ndarray,
    failed: np.ndarray,
    queue: np.ndarray,
    credit: np.ndarray,
    rate: np.ndarray,
    last: np.ndarray,
    history: np.ndarray,
    totals: np.ndarray,
    # outputs
    quantities: np.ndarray,
    metrics: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Advance every replica by one decision step, in place (see the module docstring)."""
    b_size, k_size = desired.shape
    d_max = starting.shape[2]
    f_max = failed.shape[2]
    w = history.shape[3]
    h_max = arrivals.shape[1]
    for b in range(b_size):
        h = t[b] if t[b] < h_max else h_max - 1
        dtm = step_minutes[b]
        sec = 60.0 * dtm
        n_zones = zones[b]
        det = detect[b]
        # outage bookkeeping: the running one ticks down, a new one may start
        if outage_left[b] > 0:
            outage_left[b] -= 1
            if outage_left[b] == 0:
                outage_zone[b] = -1
        new_outage = False
        if outage_at[b, h] >= 0 and outage_zone[b] < 0:
            outage_zone[b] = outage_at[b, h]
            outage_left[b] = outage_len[b, h]
            new_outage = True
        zone = outage_zone[b]
        step_cost = 0.0
        step_replica = 0.0
        step_slo = 0.0
        step_drop = 0.0
        worst_latency = 0.0
        sum_arrived = 0.0
        sum_served = 0.0
        sum_dropped = 0.0
        sum_queue = 0.0
        sum_capacity = 0.0
        sum_busy = 0.0
        sum_ready = 0
        sum_starting = 0
        sum_failed = 0
        sum_desired = 0
        viol_minutes = 0.0
        for k in range(k_size):
            # 1. start-up and detection pipelines advance
            ready[b, k] += starting[b, k, 0]
            for j in range(d_max - 1):
                starting[b, k, j] = starting[b, k, j + 1]
            starting[b, k, d_max - 1] = 0
            for j in range(f_max - 1):
                failed[b, k, j] = failed[b, k, j + 1]
            failed[b, k, f_max - 1] = 0
            # 2. a new outage takes down one zone's ready and starting replicas
            newly_failed = 0
            if new_outage:
                lost = _zone_share(ready[b, k], zone, n_zones)
                ready[b, k] -= lost
                newly_failed += lost
                for j in range(d_max):
                    lost = _zone_share(starting[b, k, j], zone, n_zones)
                    starting[b, k, j] -= lost
                    newly_failed += lost
            # 3. independent failures of ready replicas
            n_fail = _binomial_inverse(ready[b, k], p_fail[b, k], fail_u[b, h, k])
            ready[b, k] -= n_fail
            newly_failed += n_fail
            if det > 0:
                failed[b, k, det - 1] += newly_failed
            # 4. desired count and the replica controller
            cap = max_rep[b, k]
            if zone >= 0:
                cap -= _zone_share(max_rep[b, k], zone, n_zones)
            cap_eff[b, k] = cap
            want = desired[b, k] + actions[b, k] if is_delta else actions[b, k]
            want = min(max(want, min_rep[b, k]), max_rep[b, k])
            desired[b, k] = want
            target = min(want, cap)
            n_start = 0
            for j in range(d_max):
                n_start += starting[b, k, j]
            n_failed = 0
            for j in range(f_max):
                n_failed += failed[b, k, j]
            allocated = ready[b, k] + n_start + n_failed
            if allocated < target:
                new = target - allocated
                if startup[b, k] > 0:
                    starting[b, k, startup[b, k] - 1] += new
                    n_start += new
                else:
                    ready[b, k] += new
            elif allocated > target:
                excess = allocated - target
                for j in range(f_max):
                    cut = min(excess, failed[b, k, j])
                    failed[b, k, j] -= cut
                    n_failed -= cut
                    excess -= cut
                for j in range(d_max - 1, -1, -1):
                    cut = min(excess, starting[b, k, j])
                    starting[b, k, j] -= cut
                    n_start -= cut
                    excess -= cut
                cut = min(excess, ready[b, k])
                ready[b, k] -= cut
            # 5. queue and service
            c = ready[b, k]
            m = mu[b, k]
            arrived = arrivals[b, h, k]
            work = queue[b, k] + arrived
            if c > 0:
                units = c * m * sec + credit[b, k]
                whole = np.floor(units)
                credit[b, k] = units - whole
            else:
                whole = 0.0
                credit[b, k] = 0.0
            served = min(work, whole)
            left = work - served
            dropped = max(left - queue_limit[b, k], 0.0)
            queue[b, k] = left - dropped
            # 6. latency at the SLO percentile
            lam = arrived / sec
            if c > 0:
                lam_eff = min(lam, RHO_MAX * c * m)
                latency = sojourn_percentile(c, lam_eff, m, percentile[b, k])
                latency += queue[b, k] / (c * m)
                latency = min(latency, latency_cap[b])
                # busy share: saturated while requests are left over (with a fractional
                # capacity per step, the whole requests served may exceed that capacity)
                util = 1.0 if left > 0.0 else min(served / (c * m * sec), 1.0)
                load = min(lam / (c * m), LOAD_CAP)
            else:
                latency = latency_cap[b] if work > 0.0 else 0.0
                util = 1.0 if work > 0.0 else 0.0
                load = LOAD_CAP if lam > 0.0 else 0.0
            violated = 1.0 if latency > slo[b, k] else 0.0
            # 7. costs
            billed = c + n_start
            replica_cost = billed * cost_h[b, k] * dtm / 60.0
            slo_cost = violated * dtm * slo_pen[b, k]
            drop_cost = dropped * drop_pen[b, k]
            # records
            last[b, k, 0] = arrived
            last[b, k, 1] = served
            last[b, k, 2] = dropped
            last[b, k, 3] = latency
            last[b, k, 4] = util
            last[b, k, 5] = load
            last[b, k, 6] = violated
            pos = t[b] % w
            history[b, k, 0, pos] = lam
            history[b, k, 1, pos] = c * m
            history[b, k, 2, pos] = c
            history[b, k, 3, pos] = n_start
            history[b, k, 4, pos] = n_failed
            history[b, k, 5, pos] = latency
            n_hist = min(t[b] + 1, w)
            mean5 = 0.0
            mean15 = 0.0
            for j in range(min(n_hist, 15)):
                value = history[b, k, 0, (t[b] - j) % w]
                mean15 += value
                if j < 5:
                    mean5 += value
            rate[b, k, 0] = lam
            rate[b, k, 1] = mean5 / min(n_hist, 5)
            rate[b, k, 2] = mean15 / min(n_hist, 15)
            totals[b, k, 0] += arrived
            totals[b, k, 1] += served
            totals[b, k, 2] += dropped
            totals[b, k, 3] += violated * dtm
            totals[b, k, 4] += replica_cost
            totals[b, k, 5] += slo_cost + drop_cost
            step_replica += replica_cost
            step_slo += slo_cost
            step_drop += drop_cost
            worst_latency = max(worst_latency, latency)
            sum_arrived += arrived
            sum_served += served
            sum_dropped += dropped
            sum_queue += queue[b, k]
            sum_capacity += c * m * sec
            sum_busy += util * c * m * sec
            sum_ready += c
            sum_starting += n_start
            sum_failed += n_failed
            sum_desired += want
            viol_minutes += violated * dtm
        t[b] += 1
        step_cost = step_replica + step_slo + step_drop
        ep_cost = 0.0
        ep_replica = 0.0
        ep_viol = 0.0
        ep_dropped = 0.0
        ep_arrived = 0.0
        ep_served = 0.0
        for k in range(k_size):
            ep_replica += totals[b, k, 4]
            ep_cost += totals[b, k, 4] + totals[b, k, 5]
            ep_viol += totals[b, k, 3]
            ep_dropped += totals[b, k, 2]
            ep_arrived += totals[b, k, 0]
            ep_served += totals[b, k, 1]
        quantities[b, 0] = step_replica
        quantities[b, 1] = step_slo
        quantities[b, 2] = step_drop
        metrics[b, 0] = step_cost
        metrics[b, 1] = ep_cost
        metrics[b, 2] = ep_replica
        metrics[b, 3] = worst_latency
        metrics[b, 4] = viol_minutes
        metrics[b, 5] = ep_viol
        metrics[b, 6] = ep_viol / (t[b] * dtm * k_size)
        metrics[b, 7] = sum_dropped
        metrics[b, 8] = ep_dropped
        metrics[b, 9] = sum_arrived
        metrics[b, 10] = sum_served
        metrics[b, 11] = sum_queue
        metrics[b, 12] = ep_arrived
        metrics[b, 13] = ep_served
        metrics[b, 14] = sum_busy / sum_capacity if sum_capacity > 0.0 else 0.0
        metrics[b, 15] = sum_ready
        metrics[b, 16] = sum_starting
        metrics[b, 17] = sum_failed
        metrics[b, 18] = sum_desired
        metrics[b, 19] = 1.0 if zone >= 0 else 0.0


# --- episode draws -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EpisodeDraws:
    """Everything random about one episode, drawn at reset from the replica's generator.

    Attributes:
        start_minute: minute of the day at step 0 (``start_hour * 60`` plus the random offset).
        arrivals: requests arriving in each step, ``[H, K]`` whole numbers.
        rate0: the arrival rate of the profile at step 0, ``[K]`` requests/s.
        fail_u: uniforms turned into failure counts by inverse CDF, ``[H, K]``.
        outage_at: zone whose outage starts at each step (``-1``: none), ``[H]``.
        outage_len: length in steps of the outage starting at each step, ``[H]``.
    """

    start_minute: float
    arrivals: np.ndarray
    rate0: np.ndarray
    fail_u: np.ndarray
    outage_at: np.ndarray
    outage_len: np.ndarray


def arrival_rates(
    scenario: AutoscaleScenario, rng: np.random.Generator
) -> tuple[float, np.ndarray]:
    """Draw the start time and the arrival rate of every step and service.

    Args:
        scenario: the episode's scenario.
        rng: the episode's generator.

    Returns:
        The minute of the day at step 0 and the rates ``[H, K]`` in requests/s (noise and
        bursts included; the arrivals are Poisson around them).
    """
    h, dtm = scenario.horizon, scenario.step_minutes
    episode = h * dtm
    traces = [s.arrivals for s in scenario.services if s.arrivals.kind == "trace"]
    offset = 0.0
    if scenario.random_start:
        if traces:
            room = min(a.segment_length * a.trace_interval for a in traces) - episode
            offset = float(rng.integers(0, int(math.floor(room + 1e-9)) + 1))
        else:
            offset = float(rng.integers(0, int(MINUTES_PER_DAY)))
    start_minute = 60.0 * scenario.start_hour + offset
    elapsed = (np.arange(h) + 0.5) * dtm
    rates = np.empty((h, scenario.num_services))
    for k, service in enumerate(scenario.services):
        arr = service.arrivals
        if arr.kind == "trace":
            seg = int(rng.integers(0, arr.num_segments))
            length = arr.segment_length
            idx = np.minimum(
                ((offset + elapsed) // arr.trace_interval).astype(np.int64), length - 1
            )
            counts = arr.trace_array[seg * length + idx]
            base = counts * arr.trace_scale / (60.0 * arr.trace_interval)
        else:
            hours = (start_minute + elapsed) / 60.0
            base = arr.mean_rate * (
                1.0 + arr.amplitude * np.cos(2.0 * np.pi * (hours - arr.peak_hour) / 24.0)
            )
        if arr.noise > 0.0:
            phi = math.exp(-dtm / arr.noise_minutes)
            x = _ar1(rng.standard_normal(h), phi, arr.noise)
            base = base * np.exp(x - 0.5 * arr.noise**2)
        if arr.burst_rate > 0.0 and arr.burst_size > 1.0:
            n = int(rng.poisson(arr.burst_rate * episode / 60.0))
            starts = rng.uniform(0.0, episode, size=n)
            lengths = rng.exponential(arr.burst_minutes, size=n)
            factors = 1.0 + (arr.burst_size - 1.0) * rng.uniform(0.5, 1.5, size=n)
            first = np.searchsorted(elapsed, starts, side="left")
            stop = np.searchsorted(elapsed, starts + lengths, side="left")
            surge = np.ones(h)
            for i0, i1, f in zip(first.tolist(), stop.tolist(), factors.tolist(), strict=True):
                np.maximum(surge[i0:i1], f, out=surge[i0:i1])  # overlaps do not compound
            base = base * surge
        rates[:, k] = base
    return start_minute, rates


def sample_episode(scenario: AutoscaleScenario, rng: np.random.Generator) -> EpisodeDraws:
    """Draw all the randomness of one episode (in a fixed order) from ``rng``.

    Args:
        scenario: the episode's scenario.
        rng: the episode's generator.
    """
    h, dtm = scenario.horizon, scenario.step_minutes
    start_minute, rates = arrival_rates(scenario, rng)
    arrivals = rng.poisson(rates * (60.0 * dtm)).astype(np.float64)
    fail_u = rng.random((h, scenario.num_services))
    outage_at = np.full(h, -1, dtype=np.int64)
    outage_len = np.zeros(h, dtype=np.int64)
    if scenario.outage_rate > 0.0:
        n = int(rng.poisson(scenario.outage_rate * h * dtm / MINUTES_PER_DAY))
        starts = rng.integers(0, h, size=n)
        zones = rng.integers(0, scenario.zones, size=n)
        lengths = rng.exponential(scenario.outage_minutes, size=n)
        for s, z, d in zip(starts.tolist(), zones.tolist(), lengths.tolist(), strict=True):
            if outage_at[s] < 0:
                outage_at[s] = z
                # an outage cannot outlast the episode (and a huge mean must not overflow)
                outage_len[s] = max(1, math.ceil(min(d / dtm, h)))
    return EpisodeDraws(start_minute, arrivals, rates[0].copy(), fail_u, outage_at, outage_len)


# --- the simulator -------------------------------------------------------------------------------


class AutoscaleSim(BatchedSim[AutoscaleScenario, AutoscaleState]):
    """``B`` replicas of an autoscaled cluster.

    Actions are integers ``[B, K]``: changes of the desired replica count when ``is_delta``,
    else desired counts; both are clamped to ``[min_replicas, max_replicas]``.

    Args:
        batch_size: number of replicas ``B``.
        scenario: scenario that fixes the shapes (services, horizon, delays).
        is_delta: interpret actions as changes of the desired count.
    """

    def __init__(
        self, batch_size: int, scenario: AutoscaleScenario, *, is_delta: bool = True
    ) -> None:
        super().__init__(batch_size, scenario)
        b, k = batch_size, scenario.num_services
        self.k = k
        self.is_delta = bool(is_delta)
        self.max_horizon = scenario.horizon
        self.d_max = max(1, *scenario.startup_steps)
        self.f_max = max(1, scenario.detection_steps)
        h = self.max_horizon
        # per-replica parameters
        self.horizon = np.zeros(b, dtype=np.int64)
        self.step_minutes = np.ones(b)
        self.start_minute = np.zeros(b)
        self.zones = np.ones(b, dtype=np.int64)
        self.detect = np.zeros(b, dtype=np.int64)
        self.latency_cap = np.ones(b)
        self.mu = np.ones((b, k))
        self.min_rep = np.zeros((b, k), dtype=np.int64)
        self.max_rep = np.ones((b, k), dtype=np.int64)
        self.startup = np.zeros((b, k), dtype=np.int64)
        self.queue_limit = np.zeros((b, k))
        self.slo = np.ones((b, k))
        self.percentile = np.full((b, k), 0.95)
        self.cost_h = np.zeros((b, k))
        self.slo_pen = np.zeros((b, k))
        self.drop_pen = np.zeros((b, k))
        self.p_fail = np.zeros((b, k))
        self.peak_rate = np.ones((b, k))
        # episode draws
        self.arrivals = np.zeros((b, h, k))
        self.fail_u = np.ones((b, h, k))
        self.outage_at = np.full((b, h), -1, dtype=np.int64)
        self.outage_len = np.zeros((b, h), dtype=np.int64)
        # state
        self.t = np.zeros(b, dtype=np.int64)
        self.outage_zone = np.full(b, -1, dtype=np.int64)
        self.outage_left = np.zeros(b, dtype=np.int64)
        self.cap_eff = np.zeros((b, k), dtype=np.int64)
        self.desired = np.zeros((b, k), dtype=np.int64)
        self.ready = np.zeros((b, k), dtype=np.int64)
        self.starting = np.zeros((b, k, self.d_max), dtype=np.int64)
        self.failed = np.zeros((b, k, self.f_max), dtype=np.int64)
        self.queue = np.zeros((b, k))
        self.credit = np.zeros((b, k))
        self.rate = np.zeros((b, k, 3))
        self.last = np.zeros((b, k, L_CHANNELS))
        self.history = np.zeros((b, k, H_CHANNELS, HISTORY))
        self.totals = np.zeros((b, k, A_CHANNELS))
        self._loaded: list[AutoscaleScenario | None] = [None] * b

    def views(self) -> AutoscaleState:
        # every state array is updated in place, so one set of views stays current
        return AutoscaleState(
            t=readonly(self.t),
            horizon=readonly(self.horizon),
            step_minutes=readonly(self.step_minutes),
            start_minute=readonly(self.start_minute),
            zones=readonly(self.zones),
            outage_zone=readonly(self.outage_zone),
            outage_left=readonly(self.outage_left),
            service_rate=readonly(self.mu),
            min_replicas=readonly(self.min_rep),
            max_replicas=readonly(self.max_rep),
            available_cap=readonly(self.cap_eff),
            startup_steps=readonly(self.startup),
            queue_limit=readonly(self.queue_limit),
            slo_latency=readonly(self.slo),
            peak_rate=readonly(self.peak_rate),
            desired=readonly(self.desired),
            ready=readonly(self.ready),
            starting=readonly(self.starting),
            failed=readonly(self.failed),
            queue=readonly(self.queue),
            rate=readonly(self.rate),
            last=readonly(self.last),
            history=readonly(self.history),
            totals=readonly(self.totals),
        )

    def check_compatible(self, scenario: AutoscaleScenario) -> None:
        if scenario.num_services != self.k:
            raise ValueError(
                f"scenario {scenario.name!r} has {scenario.num_services} services; this "
                f"environment was built for {self.k}"
            )
        if (
            scenario.horizon > self.max_horizon
            or max(scenario.startup_steps) > self.d_max
            or scenario.detection_steps > self.f_max
        ):
            raise ValueError(
                f"scenario {scenario.name!r} needs horizon <= {self.max_horizon}, start-up "
                f"delays <= {self.d_max} steps and failure detection <= {self.f_max} steps "
                "(the environment's structure scenario)"
            )

    def _load(self, i: int, sc: AutoscaleScenario) -> None:
        self._loaded[i] = sc
        self.horizon[i] = sc.horizon
        self.step_minutes[i] = sc.step_minutes
        self.zones[i] = sc.zones
        self.detect[i] = sc.detection_steps
        self.latency_cap[i] = sc.latency_cap
        for k, s in enumerate(sc.services):
            self.mu[i, k] = s.service_rate
            self.min_rep[i, k] = s.min_replicas
            self.max_rep[i, k] = s.max_replicas
            self.startup[i, k] = sc.startup_steps[k]
            self.queue_limit[i, k] = s.queue_limit
            self.slo[i, k] = s.slo_latency
            self.percentile[i, k] = s.slo_percentile
            self.cost_h[i, k] = s.replica_cost
            self.slo_pen[i, k] = s.slo_penalty
            self.drop_pen[i, k] = s.drop_penalty
            self.p_fail[i, k] = (
                -math.expm1(-sc.step_minutes / (60.0 * s.mtbf_hours)) if s.mtbf_hours > 0 else 0.0
            )
            self.peak_rate[i, k] = max(s.arrivals.peak_rate(), 1e-9)

    def _reset(self, idx: np.ndarray) -> None:
        for i in idx.tolist():
            sc = self.scenarios[i]
            rng = self.rngs[i]
            assert rng is not None
            if self._loaded[i] is not sc:
                self._load(i, sc)
            draws = sample_episode(sc, rng)
            h = sc.horizon
            self.start_minute[i] = draws.start_minute
            self.arrivals[i, :h] = draws.arrivals
            self.arrivals[i, h:] = 0.0
            self.fail_u[i, :h] = draws.fail_u
            self.fail_u[i, h:] = 1.0
            self.outage_at[i, :h] = draws.outage_at
            self.outage_at[i, h:] = -1
            self.outage_len[i, :h] = draws.outage_len
            self.outage_len[i, h:] = 0
            initial = [s.initial_replicas for s in sc.services]
            self.desired[i] = initial
            self.ready[i] = initial
            self.cap_eff[i] = self.max_rep[i]
            self.rate[i] = draws.rate0[:, None]
        for arr in (self.t, self.outage_left, self.starting, self.failed, self.queue, self.credit):
            arr[idx] = 0
        for stats in (self.last, self.history, self.totals):
            stats[idx] = 0.0
        self.outage_zone[idx] = -1

    def step(self, actions: np.ndarray) -> StepResult:
        """Advance one step; ``actions`` are ``[B, K]`` integer changes or desired counts."""
        acts = np.ascontiguousarray(actions, dtype=np.int64).reshape(self.batch_size, self.k)
        quantities = np.empty((self.batch_size, len(QUANTITIES)))
        metrics = np.empty((self.batch_size, len(METRICS)))
        _step(
            acts,
            self.is_delta,
            self.horizon,
            self.step_minutes,
            self.zones,
            self.detect,
            self.latency_cap,
            self.mu,
            self.min_rep,
            self.max_rep,
            self.startup,
            self.queue_limit,
            self.slo,
            self.percentile,
            self.cost_h,
            self.slo_pen,
            self.drop_pen,
            self.p_fail,
            self.arrivals,
            self.fail_u,
            self.outage_at,
            self.outage_len,
            self.t,
            self.outage_zone,
            self.outage_left,
            self.cap_eff,
            self.desired,
            self.ready,
            self.starting,
            self.failed,
            self.queue,
            self.credit,
            self.rate,
            self.last,
            self.history,
            self.totals,
            quantities,
            metrics,
        )
        return StepResult(
            quantities={name: quantities[:, j] for j, name in enumerate(QUANTITIES)},
            metrics={name: metrics[:, j] for j, name in enumerate(METRICS)},
            terminated=np.zeros(self.batch_size, dtype=bool),
            truncated=self.t >= self.horizon,
        )
