"""Batched microscopic traffic simulation (numpy + numba; no gymnasium, pygame or torch).

Each of ``B`` replicas simulates vehicles on the lanes of one :class:`~envs.traffic.network.Network`
at a fixed sub-step (SUMO's ``--step-length``, 1 s by default):

- **Car following**: SUMO's default Krauss model (safe speed
  ``v_safe = -b τ + sqrt((b τ)² + v_l² + 2 b g)``, acceleration limit, dawdling by
  ``σ min(v, a) dt u`` as SUMO's ``dawdle2`` (a vehicle slower than its acceleration dawdles in
  proportion to its speed) bounded below by the comfortable deceleration, Euler position
  update) or IDM, with SUMO's passenger-car parameters and a per-vehicle speed factor.
- **Junctions**: a vehicle at the end of its lane crosses along its chosen connection when the
  link allows it: green ``G``/``M`` always; permissive ``g``/``m``/``s``/``=`` only if no vehicle
  on a foe connection is in the junction or due at its stop line within the vehicle's own
  arrival time plus a 3 s gap, where a vehicle that has waited counts on foes that can still
  stop to do so (SUMO's impatience: such a foe arrives up to 30 s later, in proportion to the
  wait over 180 s); yellow if it cannot stop comfortably; red never. It keeps off
  the junction while the target lane has no room for it (SUMO's ``checkRewindLinkLanes``: the
  room behind the lane's last standing vehicle, less the vehicles moving up to it; a lane with
  none standing adds the room of the lanes after it along the route while their links are
  open), unless it could no longer stop; such a vehicle is no foe for the others. So queues
  spill back, junctions stay clear and grids can lock up. Vehicles slow down to the
  connection's speed before the stop line and drive the internal path (negative positions on
  the target lane).
- **Routes and lanes**: at every junction a vehicle takes the connection towards its route's next
  edge whose target lane continues best; a vehicle on a lane without such a connection changes
  to the adjacent lane when the gaps allow it (forced after 10 s at the stop line). Two vehicles
  stuck side by side, each on the lane the other needs, swap lanes (SUMO's lane-change swap).
- **Routing at departure**: a trip's departure (a route with ``at_departure``, SUMO's
  ``<trip>``) takes the fastest path to its destination on the travel times of that moment, as
  SUMO's rerouting device routes trips: an edge's time is its length over the mean of its mean
  speed sampled each second over the last :data:`ROUTING_STEPS` seconds, at least the drive at
  the speed limit, plus the junction's internal path and SUMO's routing penalties. A replica
  keeps the routes its departures found, with their best lanes, until it is reset.
- **Insertion**: departures wait in a queue until their first lane has room
  (SUMO's insertion), counted as depart delay; ``departSpeed=max`` inserts at SUMO's insertion
  speed (its discrete safe speed behind the lane's last vehicle, ``insertionFollowSpeed``).
- **Teleports**: a vehicle stopped at the front of its lane for ``teleport_time`` jumps to its next
  edge (SUMO's ``--time-to-teleport``).
- **Signals**: uncontrolled signals (and controlled ones in ``program_mode``) run their fixed-time
  program; controlled ones take a green phase per decision (sumo-rl's semantics: a change needs
  ``yellow_time + all_red_time + min_green`` since the last change and runs through yellow and
  optional all-red; ``max_green`` is enforced by moving to the next green phase).

Vehicles are conserved: ``inserted = on network + arrived``. The random draws of replica ``i``
come from its own stream (SplitMix64, drawn inside the compiled step and seeded from the replica's
generator at every reset), so replica ``i`` of a batch equals a single simulation seeded the same
way.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time as _time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import numba
import numpy as np

from envs.core import team as team_mod
from envs.core.sim import BatchedSim, Columns, Snapshot, StepResult, readonly
from envs.traffic.network import YIELDING, state_codes
from envs.traffic.scenario import TrafficScenario

# vehicle float fields
(
    F_POS,
    F_SPEED,
    F_SF,
    F_DEPART,
    F_INSERT,
    F_WAIT,
    F_LWAIT,
    F_LOSS,
    F_STUCK,
    F_ROUTELEN,
    F_LCPOS,
) = range(11)
NVF = 11
# vehicle int fields
I_ALIVE, I_LANE, I_ROUTE, I_RPOS, I_CONN, I_INCONN, I_TYPE, I_PASS, I_KEEP = range(9)
NVI = 9
# vehicle-type fields
T_LEN, T_GAP, T_ACC, T_DEC, T_SIGMA, T_TAU, T_VMAX, T_MODEL, T_SF_MEAN, T_SF_DEV = range(10)
NTF = 10
# per-replica accumulators
(
    A_INSERTED,
    A_ARRIVED,
    A_TT,
    A_WAIT,
    A_LOSS,
    A_DDELAY,
    A_SPEED_SUM,
    A_COUNT_SUM,
    A_TELEPORTS,
    A_STEP_ARRIVED,
    A_STEP_LOSS,
    A_ROUTELEN,
) = range(12)
NACC = 12
# lane statistics
L_COUNT, L_HALT, L_WAIT, L_SPEED = range(4)
NLS = 4
# signal state: ints
S_PHASE, S_STAGE, S_TARGET, S_CUR = range(4)
# signal state: floats
S_ELAPSED, S_TSC, S_GREEN, S_STAGE_T = range(4)

RED, YELLOW, STOP, MINOR_GREEN, GREEN, OFF_MINOR, OFF, MINOR, MAJOR, ALLWAY = range(10)
HALT_SPEED = 0.1
"""Vehicles slower than this (m/s) are halting (SUMO's waiting threshold)."""
YIELD_GAP = 3.0
"""Seconds of clearance a yielding vehicle needs before a foe's arrival."""
TIME_TO_IMPATIENCE = 180.0
"""Seconds of waiting after which a yielding vehicle is fully impatient (SUMO's
``--time-to-impatience``): it takes a foe that can still stop as arriving
:data:`IMPATIENCE_DELAY` later, in proportion to the time it has waited."""
IMPATIENCE_DELAY = 30.0
"""How much later a foe that brakes now arrives, for an impatient vehicle (SUMO's
``arrivalTimeBraking``)."""
FORCE_CHANGE = 10.0
"""Seconds at the stop line after which a lane change ignores the follower's safety gap."""
LC_LOOK_FORWARD = 10.0
"""Seconds of driving at the lane's speed a vehicle keeps in hand, per lane to cross, for a
strategic lane change towards its best lanes (SUMO LC2013's ``LOOK_FORWARD``)."""
LC_LOOKAHEAD_LEFT = 2.0
"""Factor on that distance for a change to the left (SUMO LC2013's ``lcLookaheadLeft``)."""

# SplitMix64 (Steele, Lea and Flood, 2014; Java's ``SplittableRandom``): a replica's state moves
# by the golden gamma per draw and the output mixes it. A draw is a dozen integer operations in
# the compiled step, where a buffer of uniforms from numpy cost a refill every few hundred
# decisions and 512 KiB per replica.
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S11, _S27, _S30, _S31 = (np.uint64(k) for k in (11, 27, 30, 31))
_TO_UNIT = 2.0**-53


METRICS = (
    "time",
    "arrived",
    "arrived_total",
    "inserted_total",
    "on_network",
    "waiting_to_insert",
    "mean_travel_time",
    "mean_waiting_time",
    "mean_delay",
    "mean_depart_delay",
    "queue",
    "mean_speed",
    "episode_mean_speed",
    "teleports",
)
QUANTITIES = ("wait_diff", "queue", "pressure", "speed", "delay", "arrived")


@dataclasses.dataclass(frozen=True)
class TrafficState(Snapshot):
    """State of all replicas (read-only views).

    Attributes:
        time: ``[B]`` simulation clock, s.
        veh_int: ``[B, V, 9]`` alive, lane, route, route position, next connection (-2 arriving,
            -1 must change lanes), connection being driven, type, allowed to pass, keeps its
            lane (no strategic lane change wanted).
        veh_float: ``[B, V, 10]`` position (m, negative inside a junction), speed, speed factor,
            desired departure, insertion time, waiting time, waiting time on the current lane,
            time loss, time stopped, route length driven.
        link_state: ``[B, links]`` current state code of every signal link (``LINK_STATES``).
        lane_stats: ``[B, L, 4]`` vehicles, halting vehicles, summed waiting time on the lane,
            summed speed (vehicles inside junctions are not counted on any lane).
        signal_int: ``[B, S, 4]`` program phase, stage (0 green, 1 yellow, 2 all red), target
            phase, current green phase (program indices).
        signal_float: ``[B, S, 4]`` time in program phase, time since last change, time in
            green, time in stage.
        acc: ``[B, 12]`` episode accumulators (inserted, arrived, summed trip times, ...).
        pending: ``[B]`` departures due but not yet inserted.
        signal_obs: ``[B, K, F]`` sumo-rl's observation of every controlled signal.
        metrics: ``[B, M]`` the last step's metrics (``METRICS`` order).
    """

    time: np.ndarray
    veh_int: np.ndarray
    veh_float: np.ndarray
    link_state: np.ndarray
    lane_stats: np.ndarray
    signal_int: np.ndarray
    signal_float: np.ndarray
    acc: np.ndarray
    pending: np.ndarray
    signal_obs: np.ndarray
    metrics: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class Compiled:
    """A scenario's network, routes and signals as flat arrays for the kernel."""

    lane_f: np.ndarray  # [L, 3] length, speed, 1 where a connection leads onto the lane
    lane_i: np.ndarray  # [L, 4] edge, out start, out end, lane index
    lout: np.ndarray  # connection ids, CSR
    conn_f: np.ndarray  # [C, 2] length, speed
    conn_i: np.ndarray  # [C, 8] from, to, global link, static state, foe start, foe end,
    # merging yielder start, end
    foes: np.ndarray
    yielders: np.ndarray  # connections that yield to one and enter the same lane, CSR by conn_i
    edge_i: np.ndarray  # [E, 2] lane start, end into edge_lanes
    edge_lanes: np.ndarray
    route_i: np.ndarray  # [R, 2] start, end into route_edges
    route_edges: np.ndarray  # [K, 2] edge, its best lanes for the rest of the route (bit mask)
    route_dyn: np.ndarray  # [R] 1 where a departure takes the fastest path of its time
    esucc_ptr: np.ndarray  # [E + 1] successor edges for routing, CSR
    esucc: np.ndarray  # successor edge
    esucc_t: np.ndarray  # seconds through the junction to it, with SUMO's routing penalties
    edge_f: np.ndarray  # [E, 2] length, speed limit (the longest and fastest lane's)
    sig_i: np.ndarray  # [S, 6] link offset, links, phase start, phases, green start, greens
    phase_state: np.ndarray  # [P, max links] uint8
    phase_dur: np.ndarray  # [P]
    greens: np.ndarray  # program phase index of every green, CSR by sig_i[:, 4:6]
    sig_offset: np.ndarray  # [S]
    params: np.ndarray  # dt, delta, yellow, all red, min green, max green, teleport, end, begin,
    # sources, whether some link ever yields
    vtypes: np.ndarray  # [T, 8]
    num_links: int


_T = TypeVar("_T")


def _cached_on_scenario(
    key: str,
) -> Callable[[Callable[[TrafficScenario], _T]], Callable[[TrafficScenario], _T]]:
    """Build ``f(sc)`` once per scenario object and keep it there, under ``key``.

    Scenarios are frozen, so what is derived from one stays valid while it lives.
    """

    def wrap(build: Callable[[TrafficScenario], _T]) -> Callable[[TrafficScenario], _T]:
        @functools.wraps(build)
        def cached(sc: TrafficScenario) -> _T:
            out = sc.__dict__.get(key)
            if out is None:
                out = build(sc)
                object.__setattr__(sc, key, out)
            return out

        return cached

    return wrap


@_cached_on_scenario("_compiled")
def compile_scenario(sc: TrafficScenario) -> Compiled:
    """Flatten ``sc`` into the kernel's arrays (cached on the scenario object)."""
    net = sc.network
    n_l, n_c = net.num_lanes, net.num_connections
    entered = np.zeros(n_l)
    entered[np.asarray(net.conn_to, dtype=np.int64)] = 1.0
    lane_f = np.stack([net.lane_length, net.lane_speed, entered], axis=1).astype(np.float64)
    lout_lists = net.lane_outgoing
    lout = np.array([c for cs in lout_lists for c in cs], dtype=np.int32)
    lane_i = np.zeros((n_l, 4), dtype=np.int32)
    pos = 0
    for lane, cs in enumerate(lout_lists):
        lane_i[lane] = (net.lane_edge[lane], pos, pos + len(cs), net.lane_index[lane])
        pos += len(cs)
    offsets = np.zeros(net.num_signals + 1, dtype=np.int32)
    for s, sig in enumerate(net.signals):
        offsets[s + 1] = offsets[s] + sig.num_links
    conn_f = np.stack([net.conn_length, net.conn_speed], axis=1).astype(np.float64)
    conn_i = np.zeros((n_c, 8), dtype=np.int32)
    foes = np.array([f for fs in net.conn_foes for f in fs], dtype=np.int32)
    merging: list[list[int]] = [[] for _ in range(n_c)]
    for f in range(n_c):
        for c in net.conn_foes[f]:
            if net.conn_to[c] == net.conn_to[f]:
                merging[int(c)].append(f)
    pos = ypos = 0
    for c in range(n_c):
        s = int(net.conn_tls[c])
        glink = offsets[s] + int(net.conn_link[c]) if s >= 0 else -1
        nf, ny = len(net.conn_foes[c]), len(merging[c])
        conn_i[c] = (
            net.conn_from[c],
            net.conn_to[c],
            glink,
            net.conn_state[c],
            pos,
            pos + nf,
            ypos,
            ypos + ny,
        )
        pos += nf
        ypos += ny
    edge_lanes = np.array([lane for ls in net.edge_lanes for lane in ls], dtype=np.int32)
    edge_i = np.zeros((net.num_edges, 2), dtype=np.int32)
    pos = 0
    for e, ls in enumerate(net.edge_lanes):
        edge_i[e] = (pos, pos + len(ls))
        pos += len(ls)
    route_i = np.zeros((len(sc.routes), 2), dtype=np.int32)
    ids = [net.edge_index[e] for route in sc.routes for e in route.edges]
    route_edges = np.zeros((len(ids), 2), dtype=np.int32)
    route_edges[:, 0] = ids
    reach = np.zeros(n_l)
    start = 0
    for r, route in enumerate(sc.routes):
        route_i[r] = (start, start + len(route.edges))
        _mark_best_lanes(
            route_edges,
            start,
            len(route.edges),
            lane_f,
            lane_i,
            lout,
            conn_i,
            edge_i,
            edge_lanes,
            reach,
        )
        start += len(route.edges)
    esucc_ptr, esucc, esucc_t = net.routing_links
    edge_f = np.stack(net.edge_extent, axis=1)
    max_links = max([sig.num_links for sig in net.signals] or [1])
    phases = [p for sig in net.signals for p in sig.phases]
    phase_state = np.full((max(len(phases), 1), max_links), RED, dtype=np.uint8)
    phase_dur = np.ones(max(len(phases), 1), dtype=np.float64)
    sig_i = np.zeros((net.num_signals, 6), dtype=np.int32)
    greens_l: list[int] = []
    k = 0
    for s, sig in enumerate(net.signals):
        gs = sig.green_phases
        sig_i[s] = (offsets[s], sig.num_links, k, len(sig.phases), len(greens_l), len(gs))
        greens_l.extend(k + g for g in gs)  # program phase indices across all signals
        for p in sig.phases:
            phase_state[k, : sig.num_links] = state_codes(p.state)
            phase_dur[k] = p.duration
            k += 1
    st = sc.signals
    params = np.array(
        [
            sc.step_length,
            st.delta_time,
            st.yellow_time,
            st.all_red_time,
            st.min_green,
            st.max_green,
            sc.teleport_time,
            sc.end,
            sc.begin,
            len({r.edges[0] for r in sc.routes}),
            1.0 if _some_link_yields(phase_state, conn_i) else 0.0,
        ],
        dtype=np.float64,
    )
    vtypes = np.array(
        [
            [
                v.length,
                v.min_gap,
                v.accel,
                v.decel,
                v.sigma,
                v.tau,
                v.max_speed,
                0.0 if v.model == "krauss" else 1.0,
                v.speed_factor,
                v.speed_dev,
            ]
            for v in sc.vtypes.values()
        ],
        dtype=np.float64,
    )
    return Compiled(
        lane_f=lane_f,
        lane_i=lane_i,
        lout=lout,
        conn_f=conn_f,
        conn_i=conn_i,
        foes=foes,
        yielders=np.array([f for fs in merging for f in fs], dtype=np.int32),
        edge_i=edge_i,
        edge_lanes=edge_lanes,
        route_i=route_i,
        route_edges=route_edges,
        route_dyn=np.array([r.at_departure for r in sc.routes], dtype=np.int32),
        esucc_ptr=esucc_ptr,
        esucc=esucc,
        esucc_t=esucc_t,
        edge_f=edge_f,
        sig_i=sig_i,
        phase_state=phase_state,
        phase_dur=phase_dur,
        greens=np.array(greens_l, dtype=np.int32),
        sig_offset=np.array([sig.offset for sig in net.signals], dtype=np.float64),
        params=params,
        vtypes=vtypes,
        num_links=int(offsets[-1]),
    )


def _some_link_yields(phase_state: np.ndarray, conn_i: np.ndarray) -> bool:
    """Whether some link of a program phase, or some link without a signal, makes vehicles yield.

    Without one, no vehicle ever waits for foes, and the kernel skips their approach times.
    """
    states = np.concatenate([phase_state.ravel(), conn_i[conn_i[:, 2] < 0, 3].astype(np.uint8)])
    return not YIELDING.isdisjoint(np.unique(states).tolist())


BEST_LANE_LOOKAHEAD = 3000.0
"""Metres along its route over which a vehicle compares lanes (SUMO's ``BEST_LANE_LOOKAHEAD``)."""


@numba.njit(cache=True)
def _mark_best_lanes(
    route_edges: np.ndarray,
    start: int,
    n: int,
    lane_f: np.ndarray,
    lane_i: np.ndarray,
    lout: np.ndarray,
    conn_i: np.ndarray,
    edge_i: np.ndarray,
    edge_lanes: np.ndarray,
    reach: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Write the best lanes of the ``n`` route edges from ``route_edges[start]`` on.

    Each edge's entry gets the bit mask, over lane indices, of its lanes that lead farthest
    along the rest of the route without a lane change, up to :data:`BEST_LANE_LOOKAHEAD`
    (SUMO's best lanes). ``departLane="best"`` inserts on the freest of the first edge's best
    lanes, and a vehicle crossing a junction takes a connection onto one of the next edge's
    best lanes where it can. ``reach`` (one entry per lane) is scratch.
    """
    for k in range(n - 1, -1, -1):
        e = route_edges[start + k, 0]
        top = -1.0
        for j in range(edge_i[e, 0], edge_i[e, 1]):
            lane = edge_lanes[j]
            on = 0.0  # metres on from the lane's end: the best connected lane of the next edge
            if k + 1 < n:
                nxt = route_edges[start + k + 1, 0]
                for jj in range(lane_i[lane, 1], lane_i[lane, 2]):
                    to = conn_i[lout[jj], 1]
                    if lane_i[to, 0] == nxt:
                        on = max(on, reach[to])
            reach[lane] = lane_f[lane, 0] + on
            top = max(top, min(reach[lane], BEST_LANE_LOOKAHEAD))
        mask = 0
        for j in range(edge_i[e, 0], edge_i[e, 1]):
            lane = edge_lanes[j]
            if min(reach[lane], BEST_LANE_LOOKAHEAD) >= top - 1e-9:
                mask |= 1 << lane_i[lane, 3]
        route_edges[start + k, 1] = mask


def best_lanes(c: Compiled, edges: list[int]) -> np.ndarray:
    """The best lanes' bit masks of a route along ``edges`` (see :func:`_mark_best_lanes`)."""
    route = np.zeros((len(edges), 2), dtype=np.int32)
    route[:, 0] = edges
    _mark_best_lanes(
        route,
        0,
        len(edges),
        c.lane_f,
        c.lane_i,
        c.lout,
        c.conn_i,
        c.edge_i,
        c.edge_lanes,
        np.zeros(c.lane_f.shape[0]),
    )
    return route[:, 1]


DEPART_LANE_CODES = {"best": -1, "free": -2, "random": -3, "first": -4}
DEPART_SPEED_CODES = {"max": -1.0, "desired": -2.0, "random": -3.0, "avg": -4.0, "0": 0.0}


@dataclasses.dataclass(frozen=True, eq=False)
class Demand:
    """Departures as arrays: time, route and vehicle type rows, lane and speed codes."""

    time: np.ndarray
    route: np.ndarray
    vtype: np.ndarray
    lane: np.ndarray
    speed: np.ndarray


@_cached_on_scenario("_fixed_demand")
def _fixed_demand(sc: TrafficScenario) -> Demand:
    codes = _departure_codes(sc)
    flows: list[tuple[float, int, int, int, float]] = []
    for v in sc.vehicles:
        if sc.begin <= v.depart < sc.end:
            flows.append((v.depart, *codes(v)))
    for f in sc.flows:
        if f.kind in ("period", "vehs_per_hour", "number"):
            for t in _regular_times(f):
                if sc.begin <= t < sc.end:
                    flows.append((t, *codes(f)))
    flows.sort(key=lambda x: x[0])
    arr = np.array(flows, dtype=np.float64).reshape(-1, 5)
    return Demand(
        arr[:, 0].copy(),
        arr[:, 1].astype(np.int32),
        arr[:, 2].astype(np.int32),
        arr[:, 3].astype(np.int32),
        arr[:, 4].copy(),
    )


def _departure_codes(sc: TrafficScenario) -> Callable[[Any], tuple[int, int, int, float]]:
    """``codes(x)``: route row, vehicle type row, lane code and speed code of a vehicle or flow."""
    routes = sc.route_index
    types = {t: i for i, t in enumerate(sc.vtypes)}

    def codes(x: Any) -> tuple[int, int, int, float]:
        lane, speed = _lane_code(x.depart_lane), _speed_code(x.depart_speed)
        return routes[x.route], types[x.vtype], lane, speed

    return codes


def _lane_code(lane: str | int) -> int:
    return DEPART_LANE_CODES[lane] if isinstance(lane, str) else int(lane)


def _speed_code(speed: str | float) -> float:
    return DEPART_SPEED_CODES[speed] if isinstance(speed, str) else float(speed)


def _regular_times(f: Any) -> np.ndarray:
    if f.kind == "period":
        period = f.value
    elif f.kind == "vehs_per_hour":
        period = 3600.0 / f.value if f.value > 0 else math.inf
    else:  # number
        period = (f.end - f.begin) / f.value if f.value > 0 else math.inf
    if not math.isfinite(period) or period <= 0:
        return np.zeros(0)
    n = int(math.floor((f.end - f.begin) / period - 1e-9)) + 1
    if f.kind == "number":
        n = int(f.value)
    return f.begin + period * np.arange(n)


def _profile_factor(profile: tuple[tuple[float, float], ...], t: np.ndarray) -> np.ndarray:
    if not profile:
        return np.ones_like(t)
    times = np.array([p[0] for p in profile])
    factors = np.array([p[1] for p in profile])
    idx = np.searchsorted(times, t, side="right") - 1
    return np.where(idx >= 0, factors[np.maximum(idx, 0)], 1.0)


@dataclasses.dataclass(frozen=True, eq=False)
class _DeparturePlan:
    """What an episode's departures are drawn from (cached on the scenario).

    ``rows`` describes the fixed departures first, then one row per random flow (whose
    ``time`` is NaN); ``flows`` holds each random flow's draw: ``("probability", times, p)`` (a
    Bernoulli trial per second) or ``("poisson", lo, hi, rate, peak, profile)``.
    """

    fixed: Demand
    flows: tuple[tuple[Any, ...], ...]
    rows: Demand


@_cached_on_scenario("_departure_plan")
def _departure_plan(sc: TrafficScenario) -> _DeparturePlan:
    fixed = _fixed_demand(sc)
    codes = _departure_codes(sc)
    flows: list[tuple[Any, ...]] = []
    rows: list[tuple[int, int, int, float]] = []
    for f in sc.flows:
        if f.kind not in ("probability", "poisson"):
            continue
        lo, hi = max(f.begin, sc.begin), min(f.end, sc.end)
        if hi <= lo:
            continue
        if f.kind == "probability":
            t = np.arange(math.ceil(lo), math.ceil(hi), dtype=np.float64)
            flows.append(("probability", t, f.value * _profile_factor(f.profile, t)))
        else:
            rate = f.value / 3600.0
            peak = rate * max([1.0] + [fac for _, fac in f.profile])
            flows.append(("poisson", lo, hi, rate, peak, f.profile))
        rows.append(codes(f))
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    rows_of = Demand(
        np.concatenate([fixed.time, np.full(len(rows), np.nan)]),
        np.concatenate([fixed.route, table[:, 0].astype(np.int32)]),
        np.concatenate([fixed.vtype, table[:, 1].astype(np.int32)]),
        np.concatenate([fixed.lane, table[:, 2].astype(np.int32)]),
        np.concatenate([fixed.speed, table[:, 3]]),
    )
    return _DeparturePlan(fixed, tuple(flows), rows_of)


def _draw_departures(
    plan: _DeparturePlan, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """An episode's departure times and their rows in ``plan``, fixed ones first (unsorted)."""
    n_fixed = plan.fixed.time.size
    times = [plan.fixed.time]
    rows = [np.arange(n_fixed)]
    for k, flow in enumerate(plan.flows):
        if flow[0] == "probability":
            _, t, p = flow
            drawn = t[rng.random(t.size) < p]
        else:
            _, lo, hi, rate, peak, profile = flow
            n = rng.poisson(peak * (hi - lo))
            cand = np.sort(rng.uniform(lo, hi, size=n))
            keep = rng.random(n) * peak < rate * _profile_factor(profile, cand)
            drawn = np.floor(cand[keep])
        times.append(drawn)
        rows.append(np.full(drawn.size, n_fixed + k))
    return np.concatenate(times), np.concatenate(rows)


def sample_demand(sc: TrafficScenario, rng: np.random.Generator) -> Demand:
    """All departures of an episode: the fixed ones plus random draws of random flows.

    Sorted by time (the fixed ones first, then flow by flow, where times tie); a simulation
    reset with the same generator draws the same departures.
    """
    plan = _departure_plan(sc)
    if not plan.flows:
        return plan.fixed
    time, rows = _draw_departures(plan, rng)
    order = np.argsort(time, kind="stable")
    rows = rows[order]
    t = plan.rows
    return Demand(time[order], t.route[rows], t.vtype[rows], t.lane[rows], t.speed[rows])


# --------------------------------------------------------------------------------------------
# compiled kernel
# --------------------------------------------------------------------------------------------


@numba.njit(cache=True, _nrt=False)
def _sort_order(
    vi: np.ndarray,
    vf: np.ndarray,
    order: np.ndarray,
    n: int,
    first: np.ndarray,
    count: np.ndarray,
    klane: np.ndarray,
    kpos: np.ndarray,
) -> None:  # pragma: no cover
    """Sort the alive vehicles by (lane ascending, position descending); set each lane's range.

    An insertion sort (the order is nearly sorted from the sub-step before) over keys gathered
    once into ``klane`` and ``kpos``; lane ``l`` holds ``order[first[l]:first[l] + count[l]]``.
    """
    count[:] = 0
    for k in range(n):
        v = order[k]
        lane = vi[v, I_LANE]
        klane[k] = lane
        kpos[k] = vf[v, F_POS]
        count[lane] += 1
    for k in range(1, n):
        lane = klane[k]
        pos = kpos[k]
        lu = klane[k - 1]
        if lu < lane or (lu == lane and kpos[k - 1] >= pos):
            continue
        v = order[k]
        j = k - 1
        while j >= 0:
            lu = klane[j]
            if lu > lane or (lu == lane and kpos[j] < pos):
                order[j + 1] = order[j]
                klane[j + 1] = lu
                kpos[j + 1] = kpos[j]
                j -= 1
            else:
                break
        order[j + 1] = v
        klane[j + 1] = lane
        kpos[j + 1] = pos
    # lanes ascend in the order: each starts where the ones before it end
    start = 0
    for lane in range(count.shape[0]):
        first[lane] = start
        start += count[lane]


@numba.njit(cache=True, inline="always")
def _place_tail(
    order: np.ndarray, n: int, v: int, lane: int, first: np.ndarray, count: np.ndarray
) -> None:  # pragma: no cover
    """Put vehicle ``v`` at the tail of ``lane`` in the sorted ``order[:n]`` (``n`` before it).

    The caller guarantees that ``v`` is behind every vehicle of the lane, so this is where a
    sort would put it; lanes after ``lane`` shift by one. Every lane's start is the count of
    the lanes before it, empty lanes' too.
    """
    p = first[lane] + count[lane]
    for j in range(n, p, -1):
        order[j] = order[j - 1]
    order[p] = v
    count[lane] += 1
    for m in range(lane + 1, count.shape[0]):
        first[m] += 1


@numba.njit(cache=True, inline="always")
def _cross(
    v: int,
    c: int,
    llen: float,
    vib: np.ndarray,
    vfb: np.ndarray,
    conn_i: np.ndarray,
    conn_f: np.ndarray,
    lane_f: np.ndarray,
) -> int:  # pragma: no cover
    """Vehicle ``v``, past the end (``llen``) of its lane, crosses the junction on connection ``c``.

    It goes on by what it overshot along the connection onto the connection's lane, which it
    returns, and chooses its next connection later.
    """
    to = conn_i[c, 1]
    vfb[v, F_POS] = min(vfb[v, F_POS] - llen - conn_f[c, 0], lane_f[to, 0] - 0.01)
    vib[v, I_LANE] = to
    vib[v, I_INCONN] = c
    vib[v, I_RPOS] += 1
    vfb[v, F_LWAIT] = 0.0
    vib[v, I_CONN] = -1
    vib[v, I_KEEP] = 0
    return to


@numba.njit(cache=True, inline="always")
def _move_head(
    order: np.ndarray,
    vf: np.ndarray,
    k: int,
    src: int,
    dst: int,
    first: np.ndarray,
    count: np.ndarray,
) -> None:  # pragma: no cover
    """Move ``order[k]``, the head of lane ``src``, into lane ``dst`` by its (new) position.

    It goes behind every vehicle of ``dst`` at least as far along, where a stable sort by (lane
    ascending, position descending) would put it; the lane ranges follow.
    """
    v = order[k]
    pos = vf[v, F_POS]
    p = first[dst] + count[dst]  # before the first vehicle of dst behind it
    while p > first[dst] and vf[order[p - 1], F_POS] < pos:
        p -= 1
    if dst > src:
        for j in range(k, p - 1):
            order[j] = order[j + 1]
        order[p - 1] = v
        for m in range(src + 1, dst + 1):
            first[m] -= 1
    else:
        for j in range(k, p, -1):
            order[j] = order[j - 1]
        order[p] = v
        for m in range(dst + 1, src + 1):
            first[m] += 1
    count[src] -= 1
    count[dst] += 1


# Helpers called per vehicle are inlined in Numba's IR (``inline="always"``): a compiled call
# counts references on each array it passes, which cost about a fifth of the step. Inlining
# alone still counts them: every inlined helper takes and drops a reference on each array
# argument (20 atomic updates per ``_choose_pending``, run twice per sub-step), about 14 % of
# the step. The kernels that allocate nothing are therefore compiled without reference
# counting (``_nrt=False``, the flag Numba's own string kernels use): they only borrow arrays
# their caller holds, so no count is needed.
@numba.njit(cache=True, inline="always")
def _lane_continues(
    lane: int,
    edge: int,
    lane_i: np.ndarray,
    lout: np.ndarray,
    conn_i: np.ndarray,
    lane_edge_of_to: np.ndarray,
) -> bool:  # pragma: no cover
    for j in range(lane_i[lane, 1], lane_i[lane, 2]):  # noqa: SIM110
        if lane_edge_of_to[lout[j]] == edge:
            return True
    return False


@numba.njit(cache=True, inline="always")
def _choose_conn(
    lane: int,
    route: int,
    rpos: int,
    lane_i: np.ndarray,
    lout: np.ndarray,
    conn_i: np.ndarray,
    conn_edge: np.ndarray,
    route_i: np.ndarray,
    route_edges: np.ndarray,
    lane_count: np.ndarray,
) -> int:  # pragma: no cover
    """The connection from ``lane`` towards the route's next edge (-2 last edge, -1 none).

    It leads onto one of the next edge's best lanes if one does, else onto a lane that
    continues to the edge after, else onto any; the least occupied lane among equals.
    """
    start = route_i[route, 0]
    n_edges = route_i[route, 1] - start
    if rpos >= n_edges - 1:
        return -2
    nxt = route_edges[start + rpos + 1, 0]
    after = route_edges[start + rpos + 2, 0] if rpos + 2 < n_edges else -1
    best = -1
    best_score = -1e18
    for j in range(lane_i[lane, 1], lane_i[lane, 2]):
        c = lout[j]
        if conn_edge[c] != nxt:
            continue
        to = conn_i[c, 1]
        score = -float(lane_count[to])
        if (route_edges[start + rpos + 1, 1] >> lane_i[to, 3]) & 1:
            score += 2e6
        if after >= 0 and _lane_continues(to, after, lane_i, lout, conn_i, conn_edge):
            score += 1e6
        if score > best_score:
            best_score = score
            best = c
    return best


@numba.njit(cache=True, inline="always")
def _along(
    lane: int,
    route: int,
    rpos: int,
    limit: float,
    lane_i: np.ndarray,
    lout: np.ndarray,
    conn_i: np.ndarray,
    conn_edge: np.ndarray,
    route_i: np.ndarray,
    route_edges: np.ndarray,
    lane_f: np.ndarray,
    count: np.ndarray,
) -> tuple[float, int]:  # pragma: no cover
    """Metres and vehicles on the lanes a vehicle drives from ``lane`` without changing lanes.

    From the start of ``lane`` (route edge ``rpos``) it follows the connections
    :func:`_choose_conn` takes until ``limit`` metres (also where the route ends first).
    """
    total = lane_f[lane, 0]
    vehicles = count[lane]
    r = rpos
    while total < limit:
        c = _choose_conn(
            lane, route, r, lane_i, lout, conn_i, conn_edge, route_i, route_edges, count
        )
        if c == -2:
            return limit, vehicles
        if c < 0:
            break
        lane = conn_i[c, 1]
        r += 1
        total += lane_f[lane, 0]
        vehicles += count[lane]
    return total, vehicles


@numba.njit(cache=True, inline="always")
def _set_conn(
    v: int,
    c: int,
    vib: np.ndarray,
    vfb: np.ndarray,
    lane_i: np.ndarray,
    lout: np.ndarray,
    conn_i: np.ndarray,
    conn_edge: np.ndarray,
    edge_i: np.ndarray,
    edge_lanes: np.ndarray,
    route_i: np.ndarray,
    route_edges: np.ndarray,
    lane_f: np.ndarray,
    tp: np.ndarray,
    count: np.ndarray,
) -> None:  # pragma: no cover
    """Give vehicle ``v`` connection ``c`` and note whether it keeps its lane (``I_KEEP``).

    A vehicle keeps its lane (wants no strategic change) on its route's last edge (``-2``) and on
    a connection whose target lane leads on to the edge after its next one, or when there is no
    such edge, unless its lane is not one of the edge's best lanes and leads too short a way
    along the route. That is SUMO LC2013's strategic rule: a vehicle ``n`` lanes away from its
    best lanes changes once the distance left on its lane, less the queue on the nearest best
    lane, is under ``n`` times its look-ahead, :data:`LC_LOOK_FORWARD` seconds at the lane's
    speed (twice that to the left) plus twice its length and gap. ``F_LCPOS`` is the position
    on the lane from which it wants to change (0: at once). That depends only on the
    connection, route, route position and the queue when the connection is set, so the
    lane-change pass reads the flag instead of testing every vehicle in every sub-step; every
    change of ``I_CONN`` goes through here or clears the flag.
    """
    vib[v, I_CONN] = c
    vfb[v, F_LCPOS] = 0.0
    keep = c == -2
    if c >= 0:
        route = vib[v, I_ROUTE]
        rpos = vib[v, I_RPOS]
        k = route_i[route, 0] + rpos + 2
        keep = k >= route_i[route, 1] or _lane_continues(
            conn_i[c, 1], route_edges[k, 0], lane_i, lout, conn_i, conn_edge
        )
        lane = vib[v, I_LANE]
        here = route_edges[route_i[route, 0] + rpos, 1]
        mine = lane_i[lane, 3]
        if keep and not (here >> mine) & 1:
            e = lane_i[lane, 0]
            target = -1
            for j in range(edge_i[e, 0], edge_i[e, 1]):
                other = edge_lanes[j]
                if (here >> lane_i[other, 3]) & 1 and (
                    target < 0 or abs(lane_i[other, 3] - mine) < abs(lane_i[target, 3] - mine)
                ):
                    target = other
            if target >= 0:
                t = vib[v, I_TYPE]
                lanes = abs(lane_i[target, 3] - mine)
                speed = min(lane_f[lane, 1] * vfb[v, F_SF], tp[t, T_VMAX])
                look = speed * LC_LOOK_FORWARD * (
                    LC_LOOKAHEAD_LEFT if lane_i[target, 3] > mine else 1.0
                ) + 2.0 * (tp[t, T_LEN] + tp[t, T_GAP])
                reach, _ = _along(
                    lane,
                    route,
                    rpos,
                    BEST_LANE_LOOKAHEAD,
                    lane_i,
                    lout,
                    conn_i,
                    conn_edge,
                    route_i,
                    route_edges,
                    lane_f,
                    count,
                )
                # the queue along the best lanes over that distance (SUMO's occupation)
                _, queued = _along(
                    target,
                    route,
                    rpos,
                    reach,
                    lane_i,
                    lout,
                    conn_i,
                    conn_edge,
                    route_i,
                    route_edges,
                    lane_f,
                    count,
                )
                at = reach - queued * (tp[t, T_LEN] + tp[t, T_GAP]) - lanes * look
                if at < lane_f[lane, 0]:
                    keep = False
                    vfb[v, F_LCPOS] = max(at, 0.0)
    vib[v, I_KEEP] = 1 if keep else 0


@numba.njit(cache=True, inline="always")
def _take_conn(
    v: int,
    vib: np.ndarray,
    vfb: np.ndarray,
    lane_i: np.ndarray,
    lout: np.ndarray,
    conn_i: np.ndarray,
    conn_edge: np.ndarray,
    edge_i: np.ndarray,
    edge_lanes: np.ndarray,
    route_i: np.ndarray,
    route_edges: np.ndarray,
    lane_f: np.ndarray,
    tp: np.ndarray,
    count: np.ndarray,
) -> None:  # pragma: no cover
    """Choose vehicle ``v``'s connection from its lane and route position and set it."""
    c = _choose_conn(
        vib[v, I_LANE],
        vib[v, I_ROUTE],
        vib[v, I_RPOS],
        lane_i,
        lout,
        conn_i,
        conn_edge,
        route_i,
        route_edges,
        count,
    )
    _set_conn(
        v,
        c,
        vib,
        vfb,
        lane_i,
        lout,
        conn_i,
        conn_edge,
        edge_i,
        edge_lanes,
        route_i,
        route_edges,
        lane_f,
        tp,
        count,
    )


@numba.njit(cache=True, inline="always")
def _choose_pending(
    n: int,
    ob: np.ndarray,
    vib: np.ndarray,
    vfb: np.ndarray,
    on_lane_only: bool,
    lane_i: np.ndarray,
    lout: np.ndarray,
    conn_i: np.ndarray,
    conn_edge: np.ndarray,
    edge_i: np.ndarray,
    edge_lanes: np.ndarray,
    route_i: np.ndarray,
    route_edges: np.ndarray,
    lane_f: np.ndarray,
    tp: np.ndarray,
    count: np.ndarray,
) -> None:  # pragma: no cover
    """Choose a connection for every vehicle without one (-1), in order.

    ``on_lane_only`` leaves out vehicles still inside a junction.
    """
    for k in range(n):
        v = ob[k]
        if vib[v, I_CONN] == -1 and (not on_lane_only or vfb[v, F_POS] >= 0.0):
            _take_conn(
                v,
                vib,
                vfb,
                lane_i,
                lout,
                conn_i,
                conn_edge,
                edge_i,
                edge_lanes,
                route_i,
                route_edges,
                lane_f,
                tp,
                count,
            )


@numba.njit(cache=True, inline="always")
def _continues_as_well(
    v: int,
    c: int,
    target: int,
    vib: np.ndarray,
    lane_i: np.ndarray,
    lout: np.ndarray,
    conn_i: np.ndarray,
    conn_edge: np.ndarray,
    route_i: np.ndarray,
    route_edges: np.ndarray,
    count: np.ndarray,
) -> bool:  # pragma: no cover
    """Whether lane ``target`` serves vehicle ``v``'s next two edges as well as connection ``c``."""
    route = vib[v, I_ROUTE]
    start = route_i[route, 0]
    k = vib[v, I_RPOS] + 2
    if start + k >= route_i[route, 1]:
        return True
    after = route_edges[start + k, 0]
    mine = _lane_continues(conn_i[c, 1], after, lane_i, lout, conn_i, conn_edge)
    other = _choose_conn(
        target, route, vib[v, I_RPOS], lane_i, lout, conn_i, conn_edge, route_i, route_edges, count
    )
    if other < 0:
        return False
    return _lane_continues(conn_i[other, 1], after, lane_i, lout, conn_i, conn_edge) or not mine


@numba.njit(cache=True, inline="always")
def _change_blockers(
    v: int,
    target: int,
    forced: bool,
    first: np.ndarray,
    count: np.ndarray,
    ob: np.ndarray,
    vib: np.ndarray,
    vfb: np.ndarray,
    tp: np.ndarray,
    lane_i: np.ndarray,
    edge_i: np.ndarray,
    edge_lanes: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover
    """The vehicles on lane ``target`` too close for ``v`` to change onto it: (count, the last).

    ``v`` needs its gap to the vehicle ahead and the one behind its safe gap at its speed
    (both 0 when ``forced``). Vehicles that changed onto ``target`` earlier in the same pass are
    still in the ranges of the lanes beside it, which are read as well.
    """
    pos = vfb[v, F_POS]
    t = vib[v, I_TYPE]
    length = tp[t, T_LEN]
    blockers = 0
    blocker = -1
    side = lane_i[target, 3]
    e = lane_i[target, 0]
    for jj in range(edge_i[e, 0], edge_i[e, 1]):
        src = edge_lanes[jj]
        if abs(lane_i[src, 3] - side) > 1:
            continue
        for j in range(first[src], first[src] + count[src]):
            u = ob[j]
            if u == v or vib[u, I_LANE] != target:
                continue
            up = vfb[u, F_POS]
            ut = vib[u, I_TYPE]
            if up >= pos:  # ahead
                blocked = up - tp[ut, T_LEN] - pos < (0.0 if forced else tp[t, T_GAP])
            else:  # behind
                need = 0.0 if forced else tp[ut, T_GAP] + vfb[u, F_SPEED] * tp[ut, T_TAU]
                blocked = pos - length - up < need
            if blocked:
                blockers += 1
                blocker = u
    return blockers, blocker


@numba.njit(cache=True, inline="always")
def _swaps(
    v: int,
    u: int,
    lane: int,
    target: int,
    first: np.ndarray,
    count: np.ndarray,
    ob: np.ndarray,
    vib: np.ndarray,
    vfb: np.ndarray,
    tp: np.ndarray,
    lane_i: np.ndarray,
    lout: np.ndarray,
    conn_i: np.ndarray,
    conn_edge: np.ndarray,
    route_i: np.ndarray,
    route_edges: np.ndarray,
) -> bool:  # pragma: no cover
    """Whether ``v``, forced to change from ``lane`` to ``target``, can swap with ``u``.

    ``u`` is the one vehicle on ``target`` in ``v``'s way. It must be stuck too, without a
    connection from ``target`` to its next edge but with one from ``lane``, and fit on ``lane``
    beside the vehicles other than ``v`` (no overlap).
    """
    if vib[u, I_CONN] != -1 or vfb[u, F_STUCK] < FORCE_CHANGE or vfb[u, F_POS] < 0.0:
        return False
    route = vib[u, I_ROUTE]
    k = route_i[route, 0] + vib[u, I_RPOS] + 1
    if k >= route_i[route, 1]:
        return False
    nxt = route_edges[k, 0]
    if _lane_continues(target, nxt, lane_i, lout, conn_i, conn_edge) or not _lane_continues(
        lane, nxt, lane_i, lout, conn_i, conn_edge
    ):
        return False
    up = vfb[u, F_POS]
    ulen = tp[vib[u, I_TYPE], T_LEN]
    for j in range(first[lane], first[lane] + count[lane]):
        w = ob[j]
        if w == v or vib[w, I_LANE] != lane:
            continue
        wp = vfb[w, F_POS]
        if wp >= up:
            if wp - tp[vib[w, I_TYPE], T_LEN] < up:
                return False
        elif up - ulen < wp:
            return False
    return True


@numba.njit(cache=True, inline="always")
def _yields(st: int) -> bool:  # pragma: no cover
    return st == MINOR_GREEN or st == OFF_MINOR or st == MINOR or st == STOP or st == ALLWAY  # noqa: SIM109


@numba.njit(cache=True, inline="always")
def _foes_clear(
    c: int,
    own: float,
    imp: float,
    conn_i: np.ndarray,
    foes: np.ndarray,
    links: np.ndarray,
    conn_eta: np.ndarray,
    conn_busy: np.ndarray,
) -> bool:  # pragma: no cover
    """Whether a vehicle ``own`` seconds from yielding link ``c`` may go before its foes.

    Every foe not at red must be ``YIELD_GAP`` seconds behind it, and none crossing its path
    inside the junction. With impatience ``imp`` (0 to 1, SUMO's), a foe that can still brake
    is taken as arriving that share of :data:`IMPATIENCE_DELAY` later; a foe inside the
    junction on a path into the same lane is a leader to follow, not a block.
    """
    for j in range(conn_i[c, 4], conn_i[c, 5]):
        f = foes[j]
        gf = conn_i[f, 2]
        if (links[gf] if gf >= 0 else conn_i[f, 3]) == RED:
            continue
        eta_f = conn_eta[f, 0] + imp * (conn_eta[f, 1] - conn_eta[f, 0])
        if (conn_busy[f] == 1 and conn_i[f, 1] != conn_i[c, 1]) or eta_f < own + YIELD_GAP:
            return False
    return True


@numba.njit(cache=True, inline="always")
def _merger_goes(
    c: int,
    yielders: np.ndarray,
    conn_i: np.ndarray,
    foes: np.ndarray,
    links: np.ndarray,
    conn_eta: np.ndarray,
    conn_busy: np.ndarray,
    ob: np.ndarray,
    first: np.ndarray,
    count: np.ndarray,
    vib: np.ndarray,
    vfb: np.ndarray,
    lane_f: np.ndarray,
) -> bool:  # pragma: no cover
    """Whether a head waiting at a link that yields to ``c`` into the same lane goes now.

    Its impatience counts on the vehicles of ``c`` that can still stop to let it go first.
    """
    for j in range(conn_i[c, 6], conn_i[c, 7]):
        f = yielders[j]
        fl = conn_i[f, 0]
        if count[fl] == 0:
            continue
        h = ob[first[fl]]
        dist = lane_f[fl, 0] - vfb[h, F_POS]
        if vib[h, I_CONN] != f or vfb[h, F_SPEED] >= HALT_SPEED or dist > 1.0:
            continue
        gf = conn_i[f, 2]
        if not _yields(links[gf] if gf >= 0 else conn_i[f, 3]):
            continue
        imp = min(1.0, vfb[h, F_STUCK] / TIME_TO_IMPATIENCE)
        if imp > 0.0 and _foes_clear(f, dist, imp, conn_i, foes, links, conn_eta, conn_busy):
            return True
    return False


@numba.njit(cache=True, inline="always")
def _safe_speed(v: float, vl: float, gap: float, tau: float, b: float) -> float:  # pragma: no cover
    g = max(gap, 0.0)
    bt = b * tau
    return -bt + math.sqrt(bt * bt + vl * vl + 2.0 * b * g)


NUMERICAL_EPS = 0.001
"""SUMO's slack on stopping gaps (``NUMERICAL_EPS``)."""


@numba.njit(cache=True, inline="always")
def _brake_gap(speed: float, b: float, dt: float) -> float:  # pragma: no cover
    """Distance to stop from ``speed`` braking by ``b dt`` per sub-step (SUMO's ``brakeGapEuler``)."""
    reduction = b * dt
    steps = int(speed / reduction)
    return dt * (steps * speed - reduction * steps * (steps + 1) / 2.0)


@numba.njit(cache=True, inline="always")
def _stop_speed(gap: float, b: float, tau: float, dt: float) -> float:  # pragma: no cover
    """The highest speed from which a vehicle can still stop within ``gap``.

    SUMO's ``maximumSafeStopSpeedEuler``: the vehicle covers ``gap`` braking by ``b dt`` per
    sub-step after a reaction time ``tau``.
    """
    g = gap - NUMERICAL_EPS
    if g < 0.0:
        return 0.0
    bs = b * dt
    root = math.sqrt(max(dt * dt + 4.0 * (dt * (2.0 * g / bs - tau) + tau * tau), 0.0))
    n = math.floor(0.5 - (tau - 0.5 * root) / dt)
    h = 0.5 * n * (n - 1.0) * bs * dt + n * bs * tau
    return n * bs + (g - h) / (n * dt + tau)


@numba.njit(cache=True, inline="always")
def _insertion_speed(
    vl: float, gap: float, tau: float, b: float, dt: float
) -> float:  # pragma: no cover
    """The safe speed of a vehicle inserted ``gap`` metres behind a leader at speed ``vl``.

    SUMO's ``insertionFollowSpeed`` (``maximumSafeFollowSpeed`` with the Euler update): the
    vehicle can stop within the gap plus the distance the leader needs to stop, both counted in
    whole sub-steps of braking.
    """
    return _stop_speed(gap + _brake_gap(vl, b, dt), b, tau, dt)


@numba.njit(cache=True, inline="always")
def _next_speed(
    v: float,
    vmax: float,
    vl: float,
    gap: float,
    has_leader: bool,
    tp: np.ndarray,
    t: int,
    dt: float,
    u: float,
) -> float:  # pragma: no cover
    acc = tp[t, T_ACC]
    dec = tp[t, T_DEC]
    tau = tp[t, T_TAU]
    if tp[t, T_MODEL] > 0.5:  # IDM
        s0 = tp[t, T_GAP]
        free = 1.0 - (v / max(vmax, 1e-6)) ** 4
        inter = 0.0
        if has_leader:
            s_star = s0 + max(0.0, v * tau + v * (v - vl) / (2.0 * math.sqrt(acc * dec)))
            s = max(gap + s0, 0.01)
            inter = (s_star / s) ** 2
        a = acc * (free - inter)
        vn = max(0.0, v + a * dt)
        vn = min(vn, vmax)
        if has_leader:
            vn = min(vn, _safe_speed(v, vl, gap, tau, 9.0))
        return max(vn, 0.0)
    vsafe = _safe_speed(v, vl, gap, tau, dec) if has_leader else 1e9
    vm = min(v + acc * dt, vsafe, vmax)
    vmin = min(max(0.0, v - dec * dt), vm)
    # SUMO's dawdle2: below the acceleration a vehicle dawdles in proportion to its speed, so
    # one that is starting does start
    vd = max(0.0, vm - tp[t, T_SIGMA] * min(vm, acc) * dt * u)
    return max(vmin, vd)


@numba.njit(cache=True, inline="always")
def _space_till_standing(
    lane: int,
    f: int,
    n: int,
    ob: np.ndarray,
    vib: np.ndarray,
    vfb: np.ndarray,
    tp: np.ndarray,
    lane_f: np.ndarray,
    room: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Room on ``lane`` for vehicles entering it: ``room[lane] = (metres, whether one stands)``.

    SUMO's ``MSLane::getSpaceTillLastStanding``: the lane's vehicles ``ob[f : f + n]`` (front
    first) are walked from the back; the first one that stands (on the lane, not inside the
    junction before it) leaves the room behind its rear, and every vehicle behind it takes its
    length and minimum gap of that room. With none standing, the lane's length less all of them.
    """
    lengths = 0.0
    for k in range(f + n - 1, f - 1, -1):
        u = ob[k]
        t = vib[u, I_TYPE]
        if vfb[u, F_SPEED] < HALT_SPEED and vfb[u, F_POS] >= 0.0:
            room[lane, 0] = vfb[u, F_POS] - tp[t, T_LEN] - lengths
            room[lane, 1] = 1.0
            return
        lengths += tp[t, T_LEN] + tp[t, T_GAP]
    room[lane, 0] = lane_f[lane, 0] - lengths
    room[lane, 1] = 0.0


LOOKAHEAD_LANES = 4
"""Lanes beyond a junction whose room a vehicle about to enter it adds up (:func:`_room_ahead`)."""


@numba.njit(cache=True, inline="always")
def _room_ahead(
    room: float,
    to: int,
    route: int,
    rpos: int,
    need: float,
    links: np.ndarray,
    lane_room: np.ndarray,
    count: np.ndarray,
    lane_f: np.ndarray,
    lane_i: np.ndarray,
    lout: np.ndarray,
    conn_i: np.ndarray,
    conn_edge: np.ndarray,
    route_i: np.ndarray,
    route_edges: np.ndarray,
) -> float:  # pragma: no cover - compiled
    """The room a vehicle entering lane ``to`` (route position ``rpos``) finds to leave the junction.

    SUMO's ``checkRewindLinkLanes``: ``room`` on ``to``, and while no vehicle stands there and
    the next link of the route is open (not red or yellow), the room on the lane after it,
    and so on for up to :data:`LOOKAHEAD_LANES` lanes, until ``need`` is found. ``inf`` when
    none of those lanes holds a vehicle: a vehicle keeps off a junction only for a queue.
    """
    seen = room
    had = count[to] > 0 or room < lane_f[to, 0]
    stopped = lane_room[to, 1] > 0.0
    lane = to
    r = rpos
    for _ in range(LOOKAHEAD_LANES):
        if stopped or seen >= need:
            break
        c = _choose_conn(
            lane, route, r, lane_i, lout, conn_i, conn_edge, route_i, route_edges, count
        )
        if c < 0:
            break
        gl = conn_i[c, 2]
        st = links[gl] if gl >= 0 else conn_i[c, 3]
        if st in (RED, YELLOW):
            break
        lane = conn_i[c, 1]
        seen += lane_room[lane, 0]
        stopped = lane_room[lane, 1] > 0.0
        had = had or count[lane] > 0
        r += 1
    return seen if had else math.inf


@numba.njit(cache=True, inline="always")
def _no_room(
    v: int,
    to: int,
    need: float,
    vib: np.ndarray,
    links: np.ndarray,
    lane_room: np.ndarray,
    count: np.ndarray,
    lane_f: np.ndarray,
    lane_i: np.ndarray,
    lout: np.ndarray,
    conn_i: np.ndarray,
    conn_edge: np.ndarray,
    route_i: np.ndarray,
    route_edges: np.ndarray,
) -> bool:  # pragma: no cover - compiled
    """Whether vehicle ``v`` finds less than ``need`` metres beyond the junction into ``to``."""
    room = lane_room[to, 0]
    return (
        room < need
        and _room_ahead(
            room,
            to,
            vib[v, I_ROUTE],
            vib[v, I_RPOS] + 1,
            need,
            links,
            lane_room,
            count,
            lane_f,
            lane_i,
            lout,
            conn_i,
            conn_edge,
            route_i,
            route_edges,
        )
        < need
    )


ROUTING_STEPS = 180
"""Samples, one a second, of every edge's mean speed that the travel times a trip is routed on
at departure average (SUMO's rerouting device: ``--device.rerouting.adaptation-steps`` 180 at
``--device.rerouting.adaptation-interval`` 1 s). A simulation whose scenario has trips keeps
them for every replica and edge: ``8 * 180`` bytes per edge and replica (1.2 MB a replica on
ingolstadt21's 853 edges)."""
ROUTING_MIN_SPEED = 0.001
"""m/s: the least mean speed the router divides an edge's length by (SUMO's NUMERICAL_EPS)."""


@numba.njit(cache=True)
def _sample_edge_speeds(
    b: int,
    samples: int,
    vfb: np.ndarray,
    ob: np.ndarray,
    first: np.ndarray,
    count: np.ndarray,
    lane_f: np.ndarray,
    edge_i: np.ndarray,
    edge_lanes: np.ndarray,
    edge_speed: np.ndarray,
    edge_hist: np.ndarray,
    route_fill: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Push ``samples`` copies of every edge's mean speed into replica ``b``'s moving average.

    An edge's mean speed is SUMO's ``MSEdge::getMeanSpeed``: its lanes' mean speeds weighted by
    their vehicles, where an empty lane counts once, at its speed limit, and vehicles still
    inside the junction are not on the lane.
    """
    steps = edge_hist.shape[2]
    start = route_fill[b, 2]
    for e in range(edge_speed.shape[1]):
        total = 0.0
        weight = 0.0
        for j in range(edge_i[e, 0], edge_i[e, 1]):
            lane = edge_lanes[j]
            n = 0
            for k in range(first[lane], first[lane] + count[lane]):
                u = ob[k]
                if vfb[u, F_POS] >= 0.0:
                    total += vfb[u, F_SPEED]
                    n += 1
            if n == 0:
                total += lane_f[lane, 1]
                n = 1
            weight += n
        cur = total / weight if weight > 0.0 else 0.0
        at = start
        for _ in range(samples):
            edge_speed[b, e] += (cur - edge_hist[b, e, at]) / steps
            edge_hist[b, e, at] = cur
            at = (at + 1) % steps
    route_fill[b, 2] = (start + samples) % steps


@numba.njit(cache=True, inline="always")
def _same_path(
    q: int, path: np.ndarray, n: int, route_i: np.ndarray, route_edges: np.ndarray
) -> bool:  # pragma: no cover - compiled
    """Whether route ``q`` is the ``n`` edges of ``path``, which holds them last first."""
    if route_i[q, 1] - route_i[q, 0] != n:
        return False
    for k in range(n):  # noqa: SIM110 - a loop compiles, a generator does not
        if route_edges[route_i[q, 0] + k, 0] != path[n - 1 - k]:
            return False
    return True


@numba.njit(cache=True, inline="always")
def _first(ka: float, na: int, kb: float, nb: int) -> bool:  # pragma: no cover - compiled
    """Whether heap entry ``(ka, na)`` comes before ``(kb, nb)``: time, then edge index."""
    return ka < kb or (ka == kb and na < nb)


@numba.njit(cache=True)
def _route_at_departure(
    r: int,
    b: int,
    n_static: int,
    vmax: float,
    edge_speed: np.ndarray,
    edge_f: np.ndarray,
    esucc_ptr: np.ndarray,
    esucc: np.ndarray,
    esucc_t: np.ndarray,
    route_i: np.ndarray,
    route_edges: np.ndarray,
    route_fill: np.ndarray,
    lane_f: np.ndarray,
    lane_i: np.ndarray,
    lout: np.ndarray,
    conn_i: np.ndarray,
    edge_i: np.ndarray,
    edge_lanes: np.ndarray,
    dist: np.ndarray,
    reach: np.ndarray,
    prev: np.ndarray,
    heap_key: np.ndarray,
    heap_node: np.ndarray,
    path: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """The route a trip on route ``r`` takes when it departs in replica ``b``.

    The fastest path from ``r``'s first edge to its last on replica ``b``'s edge travel times
    (SUMO's rerouting effort: length over the moving-average mean speed, at least the drive at
    the speed limit capped by ``vmax``, plus the junction times and penalties of
    ``esucc_t``), by Dijkstra with ties to the lower edge index (as the import's router).
    It is ``r`` itself, a route an earlier departure took, or a new one appended to the
    replica's routes (after the ``n_static`` of the scenario) with its best lanes; ``r`` if the
    replica's route space were full (:meth:`TrafficSim._room_for_routes` grows it first).
    """
    rs, re_ = route_i[r, 0], route_i[r, 1]
    src = route_edges[rs, 0]
    dst = route_edges[re_ - 1, 0]
    for e in range(dist.shape[0]):
        dist[e] = np.inf
        prev[e] = -1
    dist[src] = 0.0
    heap_key[0] = 0.0
    heap_node[0] = src
    size = 1
    while size > 0:
        d = heap_key[0]
        a = heap_node[0]
        size -= 1
        if size > 0:  # sift the last entry down from the root
            kx, nx = heap_key[size], heap_node[size]
            i = 0
            while True:
                c = 2 * i + 1
                if c >= size:
                    break
                if c + 1 < size and _first(
                    heap_key[c + 1], heap_node[c + 1], heap_key[c], heap_node[c]
                ):
                    c += 1
                if not _first(heap_key[c], heap_node[c], kx, nx):
                    break
                heap_key[i], heap_node[i] = heap_key[c], heap_node[c]
                i = c
            heap_key[i] = kx
            heap_node[i] = nx
        if a == dst:
            break
        if d > dist[a]:
            continue
        for j in range(esucc_ptr[a], esucc_ptr[a + 1]):
            e = esucc[j]
            length = edge_f[e, 0]
            effort = max(
                length / max(edge_speed[b, e], ROUTING_MIN_SPEED),
                length / min(edge_f[e, 1], vmax),
            )
            nd = d + esucc_t[j] + effort
            if nd < dist[e]:
                dist[e] = nd
                prev[e] = a
                i = size  # sift up
                size += 1
                while i > 0 and _first(nd, e, heap_key[(i - 1) // 2], heap_node[(i - 1) // 2]):
                    p = (i - 1) // 2
                    heap_key[i], heap_node[i] = heap_key[p], heap_node[p]
                    i = p
                heap_key[i] = nd
                heap_node[i] = e
    if src != dst and prev[dst] < 0:
        return r
    n = 0
    x = dst
    while True:
        path[n] = x
        n += 1
        if x == src:
            break
        x = prev[x]
    # path holds the edges last first: r itself, or a route an earlier departure took
    if _same_path(r, path, n, route_i, route_edges):
        return r
    for q in range(n_static, route_fill[b, 0]):
        if _same_path(q, path, n, route_i, route_edges):
            return q
    q = route_fill[b, 0]
    start = route_fill[b, 1]
    if q >= route_i.shape[0] or start + n > route_edges.shape[0]:
        return r
    for k in range(n):
        route_edges[start + k, 0] = path[n - 1 - k]
    _mark_best_lanes(route_edges, start, n, lane_f, lane_i, lout, conn_i, edge_i, edge_lanes, reach)
    route_i[q, 0] = start
    route_i[q, 1] = start + n
    route_fill[b, 0] = q + 1
    route_fill[b, 1] = start + n
    return q


@numba.njit(cache=True, _nrt=False)
def _advance_replicas(
    n_sub: int,
    actions: np.ndarray,
    program_mode: np.ndarray,
    controlled: np.ndarray,
    vi: np.ndarray,
    vf: np.ndarray,
    order: np.ndarray,
    n_alive: np.ndarray,
    free_stack: np.ndarray,
    n_free: np.ndarray,
    dep_time: np.ndarray,
    dep_i: np.ndarray,
    dep_speed: np.ndarray,
    seg_ptr: np.ndarray,
    seg_end: np.ndarray,
    sig_int: np.ndarray,
    sig_float: np.ndarray,
    link_state: np.ndarray,
    time: np.ndarray,
    acc: np.ndarray,
    lane_stats: np.ndarray,
    pending: np.ndarray,
    rng_state: np.ndarray,
    lane_f: np.ndarray,
    lane_i: np.ndarray,
    lout: np.ndarray,
    conn_f: np.ndarray,
    conn_i: np.ndarray,
    conn_edge: np.ndarray,
    foes: np.ndarray,
    yielders: np.ndarray,
    edge_i: np.ndarray,
    edge_lanes: np.ndarray,
    route_i_all: np.ndarray,
    route_edges_all: np.ndarray,
    sig_i: np.ndarray,
    phase_state: np.ndarray,
    phase_dur: np.ndarray,
    greens: np.ndarray,
    params: np.ndarray,
    tp: np.ndarray,
    first_all: np.ndarray,
    count_all: np.ndarray,
    conn_eta_all: np.ndarray,
    conn_busy_all: np.ndarray,
    vt_pos_all: np.ndarray,
    vt_len_all: np.ndarray,
    vt_speed_all: np.ndarray,
    vt_room_all: np.ndarray,
    vt_set_all: np.ndarray,
    seg_due: np.ndarray,
    klane: np.ndarray,
    kpos: np.ndarray,
    route_fill: np.ndarray,
    route_dyn: np.ndarray,
    esucc_ptr: np.ndarray,
    esucc: np.ndarray,
    esucc_t: np.ndarray,
    edge_f: np.ndarray,
    edge_speed: np.ndarray,
    edge_hist: np.ndarray,
    scratch_f: np.ndarray,
    scratch_i: np.ndarray,
    b0: int,
    b1: int,
) -> None:  # pragma: no cover - compiled
    """Advance replicas ``b0 .. b1 - 1`` by one decision: their actions, then ``n_sub`` sub-steps.

    The replicas are stepped one after the other inside this one call: a compiled call passes
    each of its ~50 arrays as a struct and counts references on it, about 1,600 cycles, which
    cost some 7 % of the step while it was called once per replica (so is :func:`_summarise`).
    """
    # routing at departure: Dijkstra's and the best lanes' scratch (see _route_at_departure)
    n_edges_r = edge_speed.shape[1]
    rt_dist = scratch_f[:n_edges_r]
    rt_reach = scratch_f[n_edges_r : n_edges_r + lane_f.shape[0]]
    rt_heap_key = scratch_f[n_edges_r + lane_f.shape[0] :]
    rt_prev = scratch_i[:n_edges_r]
    rt_path = scratch_i[n_edges_r : 2 * n_edges_r]
    rt_heap_node = scratch_i[2 * n_edges_r :]
    routing = n_edges_r > 0
    n_static = route_dyn.shape[0]
    for b in range(b0, b1):
        first = first_all[b]
        count = count_all[b]
        route_i = route_i_all[b]
        route_edges = route_edges_all[b]
        conn_eta = conn_eta_all[b]
        conn_busy = conn_busy_all[b]
        vt_pos = vt_pos_all[b]
        vt_len = vt_len_all[b]
        vt_speed = vt_speed_all[b]
        vt_room = vt_room_all[b]
        vt_set = vt_set_all[b]
        dt = params[0]
        yellow = params[2]
        all_red = params[3]
        min_green = params[4]
        max_green = params[5]
        teleport = params[6]
        n_sources = int(params[9])
        some_yield = params[10] > 0.0
        n_lanes = lane_f.shape[0]
        n_sig = sig_i.shape[0]
        acc[b, A_STEP_ARRIVED] = 0.0
        acc[b, A_STEP_LOSS] = 0.0
        vib = vi[b]
        vfb = vf[b]
        ob = order[b]
        # --- decisions of the controlled signals ---
        for k in range(controlled.shape[0]):
            s = controlled[k]
            if program_mode[b, s]:
                continue
            a = actions[b, k]
            gs = sig_i[s, 4]
            ng = sig_i[s, 5]
            target = greens[gs + a % ng]
            cur = sig_int[b, s, S_CUR]
            if sig_int[b, s, S_STAGE] != 0:
                continue
            if target == cur and sig_float[b, s, S_GREEN] >= max_green and ng > 1:
                # max green reached: move on to the next green phase in program order
                for j in range(ng):
                    if greens[gs + j] == cur:
                        target = greens[gs + (j + 1) % ng]
                        break
            if target != cur and sig_float[b, s, S_TSC] >= yellow + all_red + min_green:
                sig_int[b, s, S_TARGET] = target
                sig_float[b, s, S_TSC] = 0.0
                sig_float[b, s, S_STAGE_T] = 0.0
                if yellow > 0:
                    sig_int[b, s, S_STAGE] = 1
                elif all_red > 0:
                    sig_int[b, s, S_STAGE] = 2
                else:
                    sig_int[b, s, S_CUR] = target
                    sig_float[b, s, S_GREEN] = 0.0
        for _ in range(n_sub):
            t_now = time[b]
            # --- link states ---
            for s in range(n_sig):
                off = sig_i[s, 0]
                nl = sig_i[s, 1]
                is_ctrl = False
                for k in range(controlled.shape[0]):
                    if controlled[k] == s and not program_mode[b, s]:
                        is_ctrl = True
                if not is_ctrl:
                    p = sig_int[b, s, S_PHASE]
                    for j in range(nl):
                        link_state[b, off + j] = phase_state[p, j]
                else:
                    cur = sig_int[b, s, S_CUR]
                    stage = sig_int[b, s, S_STAGE]
                    tgt = sig_int[b, s, S_TARGET]
                    for j in range(nl):
                        c0 = phase_state[cur, j]
                        if stage == 0:
                            link_state[b, off + j] = c0
                        else:
                            c1 = phase_state[tgt, j]
                            going = (c0 == GREEN or c0 == MINOR_GREEN) and (c1 == RED or c1 == STOP)  # noqa: SIM109
                            if not going:
                                link_state[b, off + j] = c0
                            elif stage == 1:
                                link_state[b, off + j] = YELLOW
                            else:
                                link_state[b, off + j] = RED
            # every sub-step starts from the order and lane ranges the one before left (a reset
            # empties them)
            n = n_alive[b]
            # --- strategic lane changes ---
            changed = False
            # a vehicle whose lane does not lead to its next edge must change lanes; one whose lane
            # leads there but not on to the edge after (two edges of lookahead) changes if it can;
            # one on a lane that leads too short a way along its route moves towards its best
            # lanes from F_LCPOS on; the others are flagged to keep their lane when their
            # connection is set (_set_conn)
            for k in range(n):
                v = ob[k]
                if vib[v, I_KEEP] == 1 or vfb[v, F_POS] < 0.0:
                    continue
                c = vib[v, I_CONN]
                if c >= 0 and vfb[v, F_POS] < vfb[v, F_LCPOS]:
                    continue
                lane = vib[v, I_LANE]
                route = vib[v, I_ROUTE]
                rpos = vib[v, I_RPOS]
                rs = route_i[route, 0]
                nxt = route_edges[rs + rpos + 1, 0]
                after = route_edges[rs + rpos + 2, 0] if rs + rpos + 2 < route_i[route, 1] else -1
                here = route_edges[rs + rpos, 1]
                towards_best = c >= 0 and (
                    after < 0
                    or _lane_continues(conn_i[c, 1], after, lane_i, lout, conn_i, conn_edge)
                )
                e = lane_i[lane, 0]
                my_idx = lane_i[lane, 3]
                best_d = 1 << 30
                direction = 0
                for j in range(edge_i[e, 0], edge_i[e, 1]):
                    other = edge_lanes[j]
                    if other == lane or not _lane_continues(
                        other, nxt, lane_i, lout, conn_i, conn_edge
                    ):
                        continue
                    if towards_best:
                        if not (here >> lane_i[other, 3]) & 1:
                            continue
                    elif c >= 0:
                        oc = _choose_conn(
                            other,
                            route,
                            rpos,
                            lane_i,
                            lout,
                            conn_i,
                            conn_edge,
                            route_i,
                            route_edges,
                            count,
                        )
                        if oc < 0 or not _lane_continues(
                            conn_i[oc, 1], after, lane_i, lout, conn_i, conn_edge
                        ):
                            continue
                    d = abs(lane_i[other, 3] - my_idx)
                    if d < best_d:
                        best_d = d
                        direction = 1 if lane_i[other, 3] > my_idx else -1
                if direction == 0:
                    continue
                target = -1
                for j in range(edge_i[e, 0], edge_i[e, 1]):
                    if lane_i[edge_lanes[j], 3] == my_idx + direction:
                        target = edge_lanes[j]
                if target < 0:
                    continue
                t = vib[v, I_TYPE]
                pos = vfb[v, F_POS]
                length = tp[t, T_LEN]
                forced = c == -1 and vfb[v, F_STUCK] >= FORCE_CHANGE
                blockers, blocker = _change_blockers(
                    v, target, forced, first, count, ob, vib, vfb, tp, lane_i, edge_i, edge_lanes
                )
                ok = pos <= lane_f[target, 0] and blockers == 0
                if ok:
                    vib[v, I_LANE] = target
                    vib[v, I_CONN] = -1
                    vib[v, I_KEEP] = 0
                    vfb[v, F_LWAIT] = 0.0
                    changed = True
                elif (
                    forced
                    and blockers == 1
                    and _swaps(
                        v,
                        blocker,
                        lane,
                        target,
                        first,
                        count,
                        ob,
                        vib,
                        vfb,
                        tp,
                        lane_i,
                        lout,
                        conn_i,
                        conn_edge,
                        route_i,
                        route_edges,
                    )
                ):
                    # two vehicles stuck side by side, each wanting the other's lane: they swap
                    # (SUMO's lane-change swap), else neither could ever move on
                    vib[v, I_LANE] = target
                    vib[blocker, I_LANE] = lane
                    for side in range(2):
                        w = v if side == 0 else blocker
                        vfb[w, F_LWAIT] = 0.0
                        vfb[w, F_STUCK] = 0.0
                        _take_conn(
                            w,
                            vib,
                            vfb,
                            lane_i,
                            lout,
                            conn_i,
                            conn_edge,
                            edge_i,
                            edge_lanes,
                            route_i,
                            route_edges,
                            lane_f,
                            tp,
                            count,
                        )
                    changed = True
            # --- queue balancing: the last vehicle of a lane moves to a neighbouring lane that
            # also leads to its next edge and holds at least two vehicles fewer ---
            for lane in range(n_lanes):
                cnt = count[lane]
                if cnt < 3:
                    continue
                v = ob[first[lane] + cnt - 1]
                c = vib[v, I_CONN]
                pos = vfb[v, F_POS]
                if c < 0 or pos < 0.0 or vib[v, I_LANE] != lane:
                    continue
                route = vib[v, I_ROUTE]
                nxt = route_edges[route_i[route, 0] + vib[v, I_RPOS] + 1, 0]
                e = lane_i[lane, 0]
                my_idx = lane_i[lane, 3]
                t = vib[v, I_TYPE]
                length = tp[t, T_LEN]
                for j in range(edge_i[e, 0], edge_i[e, 1]):
                    target = edge_lanes[j]
                    if abs(lane_i[target, 3] - my_idx) != 1 or count[target] + 2 > cnt:
                        continue
                    if pos > lane_f[target, 0] or not _lane_continues(
                        target, nxt, lane_i, lout, conn_i, conn_edge
                    ):
                        continue
                    # ... and from there on to the edge after next, as well as the current lane
                    if not _continues_as_well(
                        v,
                        c,
                        target,
                        vib,
                        lane_i,
                        lout,
                        conn_i,
                        conn_edge,
                        route_i,
                        route_edges,
                        count,
                    ):
                        continue
                    blockers, _ = _change_blockers(
                        v, target, False, first, count, ob, vib, vfb, tp, lane_i, edge_i, edge_lanes
                    )
                    if blockers == 0:
                        vib[v, I_LANE] = target
                        vib[v, I_CONN] = -1
                        vib[v, I_KEEP] = 0
                        vfb[v, F_LWAIT] = 0.0
                        changed = True
                        break
            if changed:
                _sort_order(vib, vfb, ob, n, first, count, klane, kpos)
                # choose connections for the vehicles that changed lanes (any other without one
                # has a lane without a connection towards its next edge: it still has none)
                _choose_pending(
                    n,
                    ob,
                    vib,
                    vfb,
                    True,
                    lane_i,
                    lout,
                    conn_i,
                    conn_edge,
                    edge_i,
                    edge_lanes,
                    route_i,
                    route_edges,
                    lane_f,
                    tp,
                    count,
                )
            # the tail of every lane as seen by vehicles entering it; a vehicle granted entry
            # becomes the tail for the next one, so two streams never merge into the same space
            for lane in range(n_lanes):
                if count[lane] > 0:
                    u = ob[first[lane] + count[lane] - 1]
                    vt_pos[lane] = vfb[u, F_POS]
                    vt_len[lane] = tp[vib[u, I_TYPE], T_LEN]
                    vt_speed[lane] = vfb[u, F_SPEED]
                    # 1: a tail on the lane; c + 2: a tail inside the junction on connection c
                    vt_set[lane] = 1 if vfb[u, F_POS] >= 0.0 else vib[u, I_INCONN] + 2
                    if lane_f[lane, 2] > 0.0:  # only vehicles entering a lane look at its room
                        _space_till_standing(
                            lane, first[lane], count[lane], ob, vib, vfb, tp, lane_f, vt_room
                        )
                else:
                    vt_set[lane] = 0
                    vt_room[lane, 0] = lane_f[lane, 0]
                    vt_room[lane, 1] = 0.0
            # --- foe approach times (for yielding; none where no link ever yields) ---
            conn_eta[:, :] = 1e9
            conn_busy[:] = 0
            for lane in range(n_lanes if some_yield else 0):
                if count[lane] == 0:
                    continue
                # vehicles still inside the junction (negative positions) trail their lane
                for k in range(first[lane] + count[lane] - 1, first[lane] - 1, -1):
                    v = ob[k]
                    if vfb[v, F_POS] >= 0.0:
                        break
                    conn_busy[vib[v, I_INCONN]] = 1
                v = ob[first[lane]]
                c = vib[v, I_CONN]
                if c >= 0:
                    dist = lane_f[lane, 0] - vfb[v, F_POS]
                    eta = dist / max(vfb[v, F_SPEED], 0.1)
                    if vfb[v, F_SPEED] < HALT_SPEED:
                        gl = conn_i[c, 2]
                        st = link_state[b, gl] if gl >= 0 else conn_i[c, 3]
                        if dist > 1.0 or st == RED or st == YELLOW or _yields(st):  # noqa: SIM109
                            eta = 1e8
                        else:
                            # a head kept off the junction by the queue beyond it is not coming
                            to = conn_i[c, 1]
                            t = vib[v, I_TYPE]
                            need = tp[t, T_LEN] + tp[t, T_GAP]
                            if _no_room(
                                v,
                                to,
                                need,
                                vib,
                                link_state[b],
                                vt_room,
                                count,
                                lane_f,
                                lane_i,
                                lout,
                                conn_i,
                                conn_edge,
                                route_i,
                                route_edges,
                            ):
                                eta = 1e8
                    if eta < conn_eta[c, 0]:
                        conn_eta[c, 0] = eta
                    # ... and if it brakes now: SUMO's arrivalTimeBraking, 30 s later for a
                    # vehicle that can still stop before the junction (impatience below)
                    if dist >= _brake_gap(vfb[v, F_SPEED], tp[vib[v, I_TYPE], T_DEC], dt):
                        eta += IMPATIENCE_DELAY
                    if eta < conn_eta[c, 1]:
                        conn_eta[c, 1] = eta
            # --- plan speeds ---
            # the random stream's state and the step's time loss stay in registers through the loop
            stream = np.uint64(rng_state[b])
            step_loss = acc[b, A_STEP_LOSS]
            # whether some vehicle moved ahead of the one before it on its lane (then the
            # transfers below take the general path and a full sort)
            disordered = False
            for lane in range(n_lanes):
                cnt = count[lane]
                if cnt == 0:
                    continue
                llen = lane_f[lane, 0]
                lead_pos = lead_speed = lead_len = 0.0  # the vehicle ahead, before its move
                lead_new = math.inf  # ... and after it
                for k in range(first[lane], first[lane] + cnt):
                    v = ob[k]
                    stream += _GAMMA  # one draw per vehicle and sub-step (its dawdling)
                    u = _unit(stream)
                    t = vib[v, I_TYPE]
                    pos = vfb[v, F_POS]
                    speed = vfb[v, F_SPEED]
                    sf = vfb[v, F_SF]
                    if pos < 0.0:
                        vmax = min(conn_f[vib[v, I_INCONN], 1] * sf, tp[t, T_VMAX])
                    else:
                        vmax = min(lane_f[lane, 1] * sf, tp[t, T_VMAX])
                    ideal = vmax
                    vib[v, I_PASS] = 0
                    if k > first[lane]:
                        gap = lead_pos - lead_len - pos - tp[t, T_GAP]
                        vn = _next_speed(
                            speed,
                            vmax,
                            lead_speed,
                            gap,
                            True,
                            tp,
                            t,
                            dt,
                            u,
                        )
                    else:
                        dist = llen - pos
                        c = vib[v, I_CONN]
                        if c == -2:
                            vn = _next_speed(
                                speed,
                                vmax,
                                0.0,
                                0.0,
                                False,
                                tp,
                                t,
                                dt,
                                u,
                            )
                        else:
                            allowed = False
                            if c >= 0:
                                gl = conn_i[c, 2]
                                st = link_state[b, gl] if gl >= 0 else conn_i[c, 3]
                                dec = tp[t, T_DEC]
                                if st == RED:
                                    allowed = False
                                elif st == YELLOW:
                                    allowed = speed * speed / (2.0 * dec) > dist
                                else:
                                    allowed = True
                                    if _yields(st):
                                        # SUMO's impatience: after waiting, a vehicle counts on
                                        # foes that can still brake to do so
                                        stop_far = st == STOP and dist > 1.0 + speed
                                        if stop_far or not _foes_clear(
                                            c,
                                            dist / max(speed, 1.0),
                                            min(1.0, vfb[v, F_STUCK] / TIME_TO_IMPATIENCE),
                                            conn_i,
                                            foes,
                                            link_state[b],
                                            conn_eta,
                                            conn_busy,
                                        ):
                                            allowed = False
                                    elif conn_i[c, 7] > conn_i[c, 6] and (
                                        dist >= _brake_gap(speed, dec, dt) or speed < dec * dt
                                    ):
                                        # an impatient vehicle waiting at a link that yields to
                                        # this one into the same lane counts on this one, which
                                        # can still stop, to let it go first (SUMO's impatience)
                                        allowed = not _merger_goes(
                                            c,
                                            yielders,
                                            conn_i,
                                            foes,
                                            link_state[b],
                                            conn_eta,
                                            conn_busy,
                                            ob,
                                            first,
                                            count,
                                            vib,
                                            vfb,
                                            lane_f,
                                        )
                                to = conn_i[c, 1]
                                if allowed:
                                    # room on the target lane for the whole vehicle and its gap
                                    # (less what the vehicles granted entry before took)
                                    need = tp[t, T_LEN] + tp[t, T_GAP]
                                    # a vehicle still inside the junction on another path into
                                    # the same lane merges first
                                    if (
                                        vt_set[to] >= 2
                                        and vt_set[to] != c + 2
                                        and vt_pos[to] - vt_len[to] - tp[t, T_GAP] < -conn_f[c, 0]
                                    ):
                                        allowed = False
                                    # none: the vehicle waits before the junction, unless it
                                    # can no longer stop there, or the lanes beyond it have
                                    # room enough
                                    if (
                                        vt_room[to, 0] < need
                                        and dist > 0.0
                                        and (dist >= _brake_gap(speed, dec, dt) or speed < dec * dt)
                                        and _no_room(
                                            v,
                                            to,
                                            need,
                                            vib,
                                            link_state[b],
                                            vt_room,
                                            count,
                                            lane_f,
                                            lane_i,
                                            lout,
                                            conn_i,
                                            conn_edge,
                                            route_i,
                                            route_edges,
                                        )
                                    ):
                                        allowed = False
                            if allowed:
                                vib[v, I_PASS] = 1
                                to = conn_i[c, 1]
                                clen = conn_f[c, 0]
                                vc = conn_f[c, 1] * sf
                                vmax = min(
                                    vmax,
                                    math.sqrt(vc * vc + 2.0 * tp[t, T_DEC] * max(dist, 0.0)),
                                )
                                if vt_set[to] >= 1:
                                    gap = dist + clen + vt_pos[to] - vt_len[to] - tp[t, T_GAP]
                                    vn = _next_speed(
                                        speed,
                                        vmax,
                                        vt_speed[to],
                                        gap,
                                        True,
                                        tp,
                                        t,
                                        dt,
                                        u,
                                    )
                                else:
                                    vn = _next_speed(
                                        speed,
                                        vmax,
                                        0.0,
                                        0.0,
                                        False,
                                        tp,
                                        t,
                                        dt,
                                        u,
                                    )
                                vt_pos[to] = pos - llen - clen
                                vt_len[to] = tp[t, T_LEN]
                                vt_speed[to] = speed
                                vt_set[to] = c + 2
                                vt_room[to, 0] -= tp[t, T_LEN] + tp[t, T_GAP]
                            else:
                                vn = _next_speed(
                                    speed,
                                    vmax,
                                    0.0,
                                    dist - 0.1,
                                    True,
                                    tp,
                                    t,
                                    dt,
                                    u,
                                )
                                if pos + vn * dt > llen - 0.05:
                                    vn = max(0.0, (llen - 0.05 - pos) / dt)
                    lead_pos = pos
                    lead_speed = speed
                    lead_len = tp[t, T_LEN]
                    # --- move: every vehicle planned on the positions before this sub-step ---
                    vfb[v, F_SPEED] = vn
                    new_pos = pos + vn * dt
                    vfb[v, F_POS] = new_pos
                    disordered |= new_pos > lead_new
                    lead_new = new_pos
                    vfb[v, F_ROUTELEN] += vn * dt
                    loss = dt * max(0.0, 1.0 - vn / ideal)
                    vfb[v, F_LOSS] += loss
                    step_loss += loss
                    # selects, not branches: whether a vehicle halts is hard to predict
                    halted = vn < HALT_SPEED
                    waited = dt if halted else 0.0
                    vfb[v, F_WAIT] += waited
                    vfb[v, F_LWAIT] += waited
                    vfb[v, F_STUCK] = vfb[v, F_STUCK] + dt if halted else 0.0
            rng_state[b] = np.int64(stream)
            acc[b, A_STEP_LOSS] = step_loss
            # --- transfers and arrivals ---
            t_next = t_now + dt  # the end of the sub-step
            # each lane's order held through the move: only the vehicles at the head of a lane
            # past its end can leave it; they move (or arrive) one by one and the lane ranges
            # follow, without a sort. Otherwise (or a vehicle held at the stop line) the general
            # path updates every vehicle past its lane's end, then sorts.
            k = 0
            # whether some vehicle entered a junction (it then chooses its next connection)
            crossed = False
            if not disordered:
                held = False
                for lane in range(n_lanes):
                    llen = lane_f[lane, 0]
                    while count[lane] > 0:
                        k = first[lane]
                        v = ob[k]
                        if vfb[v, F_POS] < llen:
                            break
                        c = vib[v, I_CONN]
                        if c == -2:
                            _arrive(b, v, k, vib, vfb, ob, n_alive, free_stack, n_free, acc, t_next)
                            n -= 1
                            count[lane] -= 1
                            for m in range(lane + 1, n_lanes):
                                first[m] -= 1
                            continue
                        if c < 0 or vib[v, I_PASS] != 1:
                            held = True  # held at the stop line
                            break
                        to = _cross(v, c, llen, vib, vfb, conn_i, conn_f, lane_f)
                        crossed = True
                        if to == lane:
                            held = True  # back onto its own lane: only a sort places it
                            break
                        _move_head(ob, vfb, k, lane, to, first, count)
                    if held:
                        break
                # the general path takes over from the vehicle at ``k``; those before it are done
                disordered = held
            if disordered:
                while k < n:
                    v = ob[k]
                    lane = vib[v, I_LANE]
                    llen = lane_f[lane, 0]
                    if vfb[v, F_POS] >= llen:
                        c = vib[v, I_CONN]
                        if c == -2:
                            _arrive(b, v, k, vib, vfb, ob, n_alive, free_stack, n_free, acc, t_next)
                            n -= 1
                            continue
                        if c >= 0 and vib[v, I_PASS] == 1:
                            _cross(v, c, llen, vib, vfb, conn_i, conn_f, lane_f)
                            crossed = True
                        else:
                            vfb[v, F_POS] = llen - 0.01
                            vfb[v, F_SPEED] = 0.0
                    k += 1
                _sort_order(vib, vfb, ob, n, first, count, klane, kpos)
            if crossed:
                _choose_pending(
                    n,
                    ob,
                    vib,
                    vfb,
                    False,
                    lane_i,
                    lout,
                    conn_i,
                    conn_edge,
                    edge_i,
                    edge_lanes,
                    route_i,
                    route_edges,
                    lane_f,
                    tp,
                    count,
                )
            # --- teleports of vehicles stuck at the front of their lane ---
            if teleport > 0.0:
                lane = 0
                while lane < n_lanes:
                    if count[lane] == 0:
                        lane += 1
                        continue
                    k = first[lane]
                    v = ob[k]
                    if vfb[v, F_STUCK] < teleport or vfb[v, F_POS] < 0.0:
                        lane += 1
                        continue
                    route = vib[v, I_ROUTE]
                    rs = route_i[route, 0]
                    rn = route_i[route, 1] - rs
                    rpos = vib[v, I_RPOS]
                    if rpos >= rn - 1:
                        acc[b, A_TELEPORTS] += 1.0
                        _arrive(
                            b, v, k, vib, vfb, ob, n_alive, free_stack, n_free, acc, time[b] + dt
                        )
                        n -= 1
                        # the lane ranges lost a vehicle: later teleports and insertions read
                        # them; the lane's next vehicle is checked next
                        _sort_order(vib, vfb, ob, n, first, count, klane, kpos)
                        continue
                    nxt = route_edges[rs + rpos + 1, 0]
                    dest = -1
                    for j in range(edge_i[nxt, 0], edge_i[nxt, 1]):
                        cand = edge_lanes[j]
                        room = lane_f[cand, 0]
                        if count[cand] > 0:
                            u = ob[first[cand] + count[cand] - 1]
                            room = vfb[u, F_POS] - tp[vib[u, I_TYPE], T_LEN]
                        if room >= tp[vib[v, I_TYPE], T_LEN] + tp[vib[v, I_TYPE], T_GAP]:
                            dest = cand
                            break
                    if dest >= 0:
                        acc[b, A_TELEPORTS] += 1.0
                        vib[v, I_LANE] = dest
                        vib[v, I_RPOS] += 1
                        vib[v, I_INCONN] = -1
                        vfb[v, F_POS] = min(tp[vib[v, I_TYPE], T_LEN], lane_f[dest, 0] - 0.01)
                        vfb[v, F_STUCK] = 0.0
                        vfb[v, F_LWAIT] = 0.0
                        vib[v, I_CONN] = -1
                        vib[v, I_KEEP] = 0
                        _sort_order(vib, vfb, ob, n, first, count, klane, kpos)
                        _take_conn(
                            v,
                            vib,
                            vfb,
                            lane_i,
                            lout,
                            conn_i,
                            conn_edge,
                            edge_i,
                            edge_lanes,
                            route_i,
                            route_edges,
                            lane_f,
                            tp,
                            count,
                        )
                        lane = 0  # from the first lane again: the ranges changed
                        continue
                    lane += 1
            # --- insertion ---
            # departures are grouped by source edge (time order within a group): each source
            # inserts its due vehicles in order until one does not fit (SUMO's insertion order);
            # a departure due by the end of the sub-step enters then, as SUMO inserts a vehicle
            # in the step of its depart time, after the others moved
            for src in range(n_sources):
                while (
                    seg_due[b, src] < seg_end[b, src]
                    and dep_time[b, seg_due[b, src]] <= t_next + 1e-9
                ):
                    j = seg_due[b, src]
                    r = dep_i[b, j, 0]
                    if routing and r < n_static and route_dyn[r]:
                        # a trip takes the fastest path on the travel times of its departure
                        dep_i[b, j, 0] = _route_at_departure(
                            r,
                            b,
                            n_static,
                            tp[dep_i[b, j, 1], T_VMAX],
                            edge_speed,
                            edge_f,
                            esucc_ptr,
                            esucc,
                            esucc_t,
                            route_i,
                            route_edges,
                            route_fill,
                            lane_f,
                            lane_i,
                            lout,
                            conn_i,
                            edge_i,
                            edge_lanes,
                            rt_dist,
                            rt_reach,
                            rt_prev,
                            rt_heap_key,
                            rt_heap_node,
                            rt_path,
                        )
                    seg_due[b, src] += 1
                while seg_ptr[b, src] < seg_due[b, src]:
                    j = seg_ptr[b, src]
                    route = dep_i[b, j, 0]
                    rs = route_i[route, 0]
                    e0 = route_edges[rs, 0]
                    t = dep_i[b, j, 1]
                    mode = dep_i[b, j, 2]
                    length = tp[t, T_LEN]
                    mingap = tp[t, T_GAP]
                    best = -1
                    best_room = -1e18
                    n_cand = edge_i[e0, 1] - edge_i[e0, 0]
                    pick = -1
                    if mode == -3:
                        pick = int(_draw(rng_state, b) * n_cand)
                    for jj in range(edge_i[e0, 0], edge_i[e0, 1]):
                        cand = edge_lanes[jj]
                        idx = jj - edge_i[e0, 0]
                        if mode >= 0 and lane_i[cand, 3] != mode:
                            continue
                        if mode == -4 and idx != 0:
                            continue
                        if mode == -3 and idx != pick:
                            continue
                        # best: one of the lanes that lead farthest along the route
                        if mode == -1 and not (route_edges[rs, 1] >> lane_i[cand, 3]) & 1:
                            continue
                        room = lane_f[cand, 0]
                        if count[cand] > 0:
                            u = ob[first[cand] + count[cand] - 1]
                            room = vfb[u, F_POS] - tp[vib[u, I_TYPE], T_LEN]
                        if room > best_room:
                            best_room = room
                            best = cand
                    if best < 0 and mode == -1:
                        # no lane continues: take the freest lane of the edge
                        for jj in range(edge_i[e0, 0], edge_i[e0, 1]):
                            cand = edge_lanes[jj]
                            room = lane_f[cand, 0]
                            if count[cand] > 0:
                                u = ob[first[cand] + count[cand] - 1]
                                room = vfb[u, F_POS] - tp[vib[u, I_TYPE], T_LEN]
                            if room > best_room:
                                best_room = room
                                best = cand
                    pos = min(length, lane_f[best, 0]) if best >= 0 else 0.0
                    if best < 0 or best_room - mingap < pos or n_free[b] == 0:
                        break
                    # speed at insertion
                    vmax_t = tp[t, T_VMAX]
                    sf = _speed_factor(b, t, tp, rng_state)
                    vmax = min(lane_f[best, 1] * sf, vmax_t)
                    code = dep_speed[b, j]
                    if code == -1.0 or code == -2.0:
                        v0 = vmax
                    elif code == -3.0:
                        v0 = vmax * _draw(rng_state, b)
                    elif code == -4.0:
                        # SUMO's departSpeed="avg": the mean speed on the lane (its limit when
                        # empty), at most the vehicle's own
                        v0 = min(vmax, lane_f[best, 1])
                        if count[best] > 0:
                            total = 0.0
                            for jj in range(first[best], first[best] + count[best]):
                                total += vfb[ob[jj], F_SPEED]
                            v0 = min(v0, total / count[best])
                    else:
                        v0 = min(code, vmax)
                    if count[best] > 0:
                        u = ob[first[best] + count[best] - 1]
                        gap = vfb[u, F_POS] - tp[vib[u, I_TYPE], T_LEN] - pos - mingap
                        v0 = min(
                            v0,
                            _insertion_speed(vfb[u, F_SPEED], gap, tp[t, T_TAU], tp[t, T_DEC], dt),
                        )
                    n_free[b] -= 1
                    v = free_stack[b, n_free[b]]
                    vib[v, I_ALIVE] = 1
                    vib[v, I_LANE] = best
                    vib[v, I_ROUTE] = route
                    vib[v, I_RPOS] = 0
                    vib[v, I_INCONN] = -1
                    vib[v, I_TYPE] = t
                    vib[v, I_PASS] = 0
                    vfb[v, F_POS] = pos
                    vfb[v, F_SPEED] = max(v0, 0.0)
                    vfb[v, F_SF] = sf
                    vfb[v, F_DEPART] = dep_time[b, j]
                    vfb[v, F_INSERT] = t_next
                    vfb[v, F_WAIT] = 0.0
                    vfb[v, F_LWAIT] = 0.0
                    vfb[v, F_LOSS] = 0.0
                    vfb[v, F_STUCK] = 0.0
                    vfb[v, F_ROUTELEN] = 0.0
                    # it enters behind the lane's last vehicle: the lane lists stay sorted
                    _place_tail(ob, n, v, best, first, count)
                    n += 1
                    n_alive[b] = n
                    acc[b, A_INSERTED] += 1.0
                    acc[b, A_DDELAY] += t_next - dep_time[b, j]
                    seg_ptr[b, src] += 1
                    _take_conn(
                        v,
                        vib,
                        vfb,
                        lane_i,
                        lout,
                        conn_i,
                        conn_edge,
                        edge_i,
                        edge_lanes,
                        route_i,
                        route_edges,
                        lane_f,
                        tp,
                        count,
                    )
            # --- clock, signals, accumulators ---
            time[b] = t_next
            if routing and acc[b, A_INSERTED] > 0.0:
                # the edge speeds trips are routed on: one sample a second, from the first
                # departure on (SUMO's rerouting device samples at the end of each step)
                since = t_next - params[8] + 1e-9
                samples = int(math.floor(since)) - int(math.floor(since - dt))
                if samples > 0:
                    _sample_edge_speeds(
                        b,
                        samples,
                        vfb,
                        ob,
                        first,
                        count,
                        lane_f,
                        edge_i,
                        edge_lanes,
                        edge_speed,
                        edge_hist,
                        route_fill,
                    )
            speed_sum = 0.0
            for k in range(n):
                speed_sum += vfb[ob[k], F_SPEED]
            acc[b, A_SPEED_SUM] += speed_sum
            acc[b, A_COUNT_SUM] += n
            for s in range(n_sig):
                is_ctrl = False
                for k in range(controlled.shape[0]):
                    if controlled[k] == s and not program_mode[b, s]:
                        is_ctrl = True
                if not is_ctrl:
                    sig_float[b, s, S_ELAPSED] += dt
                    p = sig_int[b, s, S_PHASE]
                    if sig_float[b, s, S_ELAPSED] >= phase_dur[p] - 1e-9:
                        sig_float[b, s, S_ELAPSED] = 0.0
                        ps = sig_i[s, 2]
                        sig_int[b, s, S_PHASE] = ps + (p - ps + 1) % sig_i[s, 3]
                else:
                    sig_float[b, s, S_TSC] += dt
                    sig_float[b, s, S_STAGE_T] += dt
                    stage = sig_int[b, s, S_STAGE]
                    if stage == 0:
                        sig_float[b, s, S_GREEN] += dt
                    elif stage == 1 and sig_float[b, s, S_STAGE_T] >= yellow - 1e-9:
                        sig_float[b, s, S_STAGE_T] = 0.0
                        if all_red > 0:
                            sig_int[b, s, S_STAGE] = 2
                        else:
                            sig_int[b, s, S_STAGE] = 0
                            sig_int[b, s, S_CUR] = sig_int[b, s, S_TARGET]
                            sig_float[b, s, S_GREEN] = 0.0
                    elif stage == 2 and sig_float[b, s, S_STAGE_T] >= all_red - 1e-9:
                        sig_int[b, s, S_STAGE] = 0
                        sig_int[b, s, S_CUR] = sig_int[b, s, S_TARGET]
                        sig_float[b, s, S_GREEN] = 0.0
        # --- lane statistics for observations and rewards ---
        n = n_alive[b]
        for lane in range(n_lanes):
            lane_stats[b, lane, L_COUNT] = 0.0
            lane_stats[b, lane, L_HALT] = 0.0
            lane_stats[b, lane, L_WAIT] = 0.0
            lane_stats[b, lane, L_SPEED] = 0.0
        for k in range(n):
            v = ob[k]
            if vfb[v, F_POS] < 0.0:
                continue
            lane = vib[v, I_LANE]
            lane_stats[b, lane, L_COUNT] += 1.0
            lane_stats[b, lane, L_WAIT] += vfb[v, F_LWAIT]
            lane_stats[b, lane, L_SPEED] += vfb[v, F_SPEED]
            if vfb[v, F_SPEED] < HALT_SPEED:
                lane_stats[b, lane, L_HALT] += 1.0
        due = 0
        for src in range(seg_ptr.shape[1]):
            due += seg_due[b, src] - seg_ptr[b, src]
        pending[b] = due


@numba.njit(cache=True, inline="always")
def _unit(state: np.uint64) -> float:  # pragma: no cover
    """SplitMix64's output for ``state``, as a double in ``[0, 1)`` (its top 53 bits)."""
    z = (state ^ (state >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return np.int64(z >> _S11) * _TO_UNIT


@numba.njit(cache=True, inline="always")
def _draw(rng_state: np.ndarray, b: int) -> float:  # pragma: no cover
    """The next uniform of replica ``b``'s stream (its state is int64 bits in ``rng_state``)."""
    state = np.uint64(rng_state[b]) + _GAMMA
    rng_state[b] = np.int64(state)
    return _unit(state)


@numba.njit(cache=True, inline="always")
def _speed_factor(
    b: int,
    t: int,
    tp: np.ndarray,
    rng_state: np.ndarray,
) -> float:  # pragma: no cover
    """A vehicle's speed factor: SUMO's ``normc(mean, dev, 0.2, 2)`` (redrawn when outside)."""
    mean = tp[t, T_SF_MEAN]
    dev = tp[t, T_SF_DEV]
    if dev <= 0.0:
        return mean
    for _ in range(16):
        u1 = max(_draw(rng_state, b), 1e-12)
        u2 = _draw(rng_state, b)
        x = mean + dev * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        if 0.2 <= x <= 2.0:
            return x
    return min(max(mean, 0.2), 2.0)


@numba.njit(cache=True, inline="always")
def _arrive(
    b: int,
    v: int,
    k: int,
    vib: np.ndarray,
    vfb: np.ndarray,
    ob: np.ndarray,
    n_alive: np.ndarray,
    free_stack: np.ndarray,
    n_free: np.ndarray,
    acc: np.ndarray,
    t_arrive: float,
) -> None:  # pragma: no cover
    acc[b, A_ARRIVED] += 1.0
    acc[b, A_STEP_ARRIVED] += 1.0
    acc[b, A_TT] += t_arrive - vfb[v, F_INSERT]
    acc[b, A_WAIT] += vfb[v, F_WAIT]
    acc[b, A_LOSS] += vfb[v, F_LOSS]
    acc[b, A_ROUTELEN] += vfb[v, F_ROUTELEN]
    vib[v, I_ALIVE] = 0
    n = n_alive[b]
    for j in range(k, n - 1):
        ob[j] = ob[j + 1]
    n_alive[b] = n - 1
    free_stack[b, n_free[b]] = v
    n_free[b] += 1


@numba.njit(cache=True, _nrt=False)
def _summarise(
    controlled: np.ndarray,
    program_mode: np.ndarray,
    n_alive: np.ndarray,
    sig_int: np.ndarray,
    sig_float: np.ndarray,
    time: np.ndarray,
    acc: np.ndarray,
    lane_stats: np.ndarray,
    pending: np.ndarray,
    lane_f: np.ndarray,
    sig_i: np.ndarray,
    params: np.ndarray,
    sig_in_ptr: np.ndarray,
    sig_in: np.ndarray,
    sig_out_ptr: np.ndarray,
    sig_out: np.ndarray,
    lane_cap: np.ndarray,
    green_of_phase: np.ndarray,
    obs_dims: np.ndarray,
    metrics: np.ndarray,
    per_sig: np.ndarray,
    last_wait: np.ndarray,
    obs: np.ndarray,
    b0: int,
    b1: int,
) -> None:  # pragma: no cover - compiled
    """Metrics ``[B, M]``, per-signal quantities ``[B, K, 6]`` and the default observation.

    Replicas ``b0 .. b1 - 1``, one after the other (see :func:`_advance_replicas`).
    """
    for b in range(b0, b1):
        arrived = max(acc[b, A_ARRIVED], 1.0)
        halt = 0.0
        speed = 0.0
        on_lanes = 0.0
        for lane in range(lane_stats.shape[1]):
            halt += lane_stats[b, lane, L_HALT]
            speed += lane_stats[b, lane, L_SPEED]
            on_lanes += lane_stats[b, lane, L_COUNT]
        metrics[b, 0] = time[b]
        metrics[b, 1] = acc[b, A_STEP_ARRIVED]
        metrics[b, 2] = acc[b, A_ARRIVED]
        metrics[b, 3] = acc[b, A_INSERTED]
        metrics[b, 4] = n_alive[b]
        metrics[b, 5] = pending[b]
        metrics[b, 6] = acc[b, A_TT] / arrived
        metrics[b, 7] = acc[b, A_WAIT] / arrived
        metrics[b, 8] = acc[b, A_LOSS] / arrived
        metrics[b, 9] = acc[b, A_DDELAY] / max(acc[b, A_INSERTED], 1.0)
        metrics[b, 10] = halt
        metrics[b, 11] = speed / max(on_lanes, 1.0)
        metrics[b, 12] = acc[b, A_SPEED_SUM] / max(acc[b, A_COUNT_SUM], 1.0)
        metrics[b, 13] = acc[b, A_TELEPORTS]
        k_n = controlled.shape[0]
        yellow = params[2]
        all_red = params[3]
        min_green = params[4]
        for k in range(k_n):
            wait = 0.0
            q = 0.0
            n_in = 0.0
            rel = 0.0
            for j in range(sig_in_ptr[k], sig_in_ptr[k + 1]):
                lane = sig_in[j]
                wait += lane_stats[b, lane, L_WAIT]
                q += lane_stats[b, lane, L_HALT]
                n_in += lane_stats[b, lane, L_COUNT]
                rel += lane_stats[b, lane, L_SPEED] / lane_f[lane, 1]
            n_out = 0.0
            for j in range(sig_out_ptr[k], sig_out_ptr[k + 1]):
                n_out += lane_stats[b, sig_out[j], L_COUNT]
            wait /= 100.0
            per_sig[b, k, 0] = last_wait[b, k] - wait
            last_wait[b, k] = wait
            per_sig[b, k, 1] = q
            per_sig[b, k, 2] = n_in - n_out
            per_sig[b, k, 3] = rel / n_in if n_in > 0 else 1.0
            per_sig[b, k, 4] = acc[b, A_STEP_LOSS] / k_n
            per_sig[b, k, 5] = acc[b, A_STEP_ARRIVED] / k_n
        if obs.shape[2] == 0:
            continue
        for k in range(k_n):
            _encode_signal(
                b,
                k,
                controlled[k],
                program_mode,
                sig_int,
                sig_float,
                lane_stats,
                sig_i,
                sig_in_ptr,
                sig_in,
                lane_cap,
                green_of_phase,
                yellow + all_red + min_green,
                obs_dims[0],
                obs_dims[1],
                obs,
            )


@numba.njit(cache=True, _nrt=False)
def _encode_signal(
    b: int,
    k: int,
    s: int,
    program_mode: np.ndarray,
    sig_int: np.ndarray,
    sig_float: np.ndarray,
    lane_stats: np.ndarray,
    sig_i: np.ndarray,
    sig_in_ptr: np.ndarray,
    sig_in: np.ndarray,
    lane_cap: np.ndarray,
    green_of_phase: np.ndarray,
    change_after: float,
    g_pad: int,
    n_lanes_pad: int,
    obs: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """sumo-rl's observation of signal ``s``: phase one-hot, min-green flag, density, queue.

    ``obs[b, k]`` holds ``G`` phase slots, the flag, then ``L`` densities and ``L`` queues
    (``G`` and ``L`` are the padded sizes; missing phases and lanes stay zero).
    """
    for j in range(obs.shape[2]):
        obs[b, k, j] = 0.0
    if program_mode[b, s]:
        p = sig_int[b, s, S_PHASE]
        g = green_of_phase[p]
        if g < 0:  # yellow or red phase of the program: report the next green
            ps = sig_i[s, 2]
            n = sig_i[s, 3]
            for d in range(1, n + 1):
                q = ps + (p - ps + d) % n
                if green_of_phase[q] >= 0:
                    g = green_of_phase[q]
                    break
        flag = 1.0
    else:
        phase = sig_int[b, s, S_CUR] if sig_int[b, s, S_STAGE] == 0 else sig_int[b, s, S_TARGET]
        g = green_of_phase[phase]
        flag = 1.0 if sig_float[b, s, S_TSC] >= change_after - 1e-9 else 0.0
    if 0 <= g < g_pad:
        obs[b, k, g] = 1.0
    obs[b, k, g_pad] = flag
    base = g_pad + 1
    j0 = sig_in_ptr[k]
    n = min(sig_in_ptr[k + 1] - j0, n_lanes_pad)
    for j in range(n):
        lane = sig_in[j0 + j]
        obs[b, k, base + j] = min(1.0, lane_stats[b, lane, L_COUNT] / lane_cap[lane])
        obs[b, k, base + n_lanes_pad + j] = min(1.0, lane_stats[b, lane, L_HALT] / lane_cap[lane])


# the arrays of a simulation live in a few flat buffers, one per dtype, so that a decision is a
# single compiled call with a handful of arguments (each argument costs time to pass)
STATE_F64 = (
    "vf",
    "time",
    "acc",
    "lane_stats",
    "sig_float",
    "metrics",
    "per_signal",
    "last_wait",
    "quantities",
    "conn_eta",
    "vt_pos",
    "vt_len",
    "vt_speed",
    "vt_room",
    "edge_speed",
    "edge_hist",
)
STATE_I32 = ("vi", "order", "free_stack", "sig_int")
STATE_I64 = (
    "n_alive",
    "n_free",
    "seg_ptr",
    "seg_end",
    "pending",
    "rng_state",
    "first",
    "count",
    "conn_busy",
    "vt_set",
    "seg_due",
)
STATE_U8 = ("link_state", "program_mode", "truncated")
STATE_LAYOUT = (STATE_F64, STATE_I32, STATE_I64, STATE_U8)
LAYOUT_VERSION = 5
"""Version of the shapes and meaning of the state and static arrays, saved with a pickled
simulation; raised with every change to them (2: ``route_i`` holds the best first lanes,
``conn_eta`` the braking arrival times, ``params`` whether some link yields; 3: ``route_edges``
holds every route edge's best lanes, ``route_i`` only the ranges, vehicles ``F_LCPOS``; 4:
``conn_i`` the ranges of ``yielders``; 5: every replica holds its routes, with those its trips
took at departure (``route_i``, ``route_edges``, ``route_fill``, beside the buffers), and the
edge speeds they were routed on)."""
_FIELDS = {"vf": NVF, "vi": NVI, "acc": NACC, "lane_stats": NLS}
"""State arrays whose last axis holds the fields named above (per vehicle, replica or lane)."""
"""The state arrays of :attr:`TrafficSim.ARENAS`, buffer by buffer."""
STATIC_I64 = (
    "lane_i",
    "lout",
    "conn_i",
    "conn_edge",
    "foes",
    "edge_i",
    "edge_lanes",
    "route_dyn",
    "esucc_ptr",
    "sig_i",
    "phase_state",
    "greens",
    "sig_in_ptr",
    "sig_in",
    "sig_out_ptr",
    "sig_out",
    "green_of_phase",
    "obs_dims",
    "controlled",
    "yielders",
    "esucc",
)
STATIC_F64 = ("lane_f", "conn_f", "phase_dur", "params", "tp", "lane_cap", "esucc_t", "edge_f")


class Arena:
    """Named arrays carved out of one flat buffer per dtype.

    ``layout`` rows are ``(offset, d0, d1, d2)`` in the order the arrays were added, so compiled
    code rebuilds each view with :func:`_v1`, :func:`_v2` or :func:`_v3`.
    """

    def __init__(self, dtype: type, specs: list[tuple[str, tuple[int, ...]]]) -> None:
        self.specs = [(name, tuple(int(d) for d in shape)) for name, shape in specs]
        sizes = [int(np.prod(shape)) for _, shape in self.specs]
        self.buffer = np.zeros(max(sum(sizes), 1), dtype=dtype)
        self.layout = np.zeros((max(len(specs), 1), 4), dtype=np.int64)
        offset = 0
        for k, ((_, shape), size) in enumerate(zip(self.specs, sizes, strict=True)):
            dims = list(shape) + [1] * (3 - len(shape))
            self.layout[k] = (offset, *dims)
            offset += size
        self.views = self._carve()

    def _carve(self) -> dict[str, np.ndarray]:
        views = {}
        for k, (name, shape) in enumerate(self.specs):
            offset = int(self.layout[k, 0])
            views[name] = self.buffer[offset : offset + int(np.prod(shape))].reshape(shape)
        return views

    def __getstate__(self) -> dict[str, Any]:
        # views would be pickled as copies; they are carved again from the buffer
        return {k: v for k, v in self.__dict__.items() if k != "views"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.views = self._carve()


@numba.njit(cache=True)
def _v1(buf: np.ndarray, lay: np.ndarray, k: int) -> np.ndarray:  # pragma: no cover
    """Array ``k`` of a packed buffer (``[n]``), carved in one slice."""
    o = lay[k, 0]
    return buf[o : o + lay[k, 1]]


@numba.njit(cache=True)
def _v2(buf: np.ndarray, lay: np.ndarray, k: int) -> np.ndarray:  # pragma: no cover
    """Array ``k`` of a packed buffer (``[n, d1]``)."""
    n, row = lay[k, 1], lay[k, 2]
    o = lay[k, 0]
    return buf[o : o + n * row].reshape((n, row))


@numba.njit(cache=True)
def _v3(buf: np.ndarray, lay: np.ndarray, k: int) -> np.ndarray:  # pragma: no cover
    """Array ``k`` of a packed buffer (``[n, d1, d2]``)."""
    n, row = lay[k, 1], lay[k, 2] * lay[k, 3]
    o = lay[k, 0]
    return buf[o : o + n * row].reshape((n, lay[k, 2], lay[k, 3]))


@numba.njit(cache=True)
def _step_replicas(
    n_sub: int,
    actions: np.ndarray,
    f64: np.ndarray,
    lay_f64: np.ndarray,
    i32: np.ndarray,
    lay_i32: np.ndarray,
    i64: np.ndarray,
    lay_i64: np.ndarray,
    u8: np.ndarray,
    lay_u8: np.ndarray,
    signal_obs: np.ndarray,
    si: np.ndarray,
    lay_si: np.ndarray,
    sf: np.ndarray,
    lay_sf: np.ndarray,
    dep_time: np.ndarray,
    dep_i: np.ndarray,
    dep_speed: np.ndarray,
    routes: tuple,
    episode: tuple,
    bounds: np.ndarray,
    ctrl: np.ndarray,
    g: int,
) -> None:  # pragma: no cover - compiled
    """Advance chunks of replicas by one decision and write their outputs.

    Chunk ``i`` is replicas ``bounds[i] .. bounds[i + 1] - 1``. With an empty ``ctrl`` this
    thread steps every chunk; else it claims chunks of generation ``g`` of a
    :class:`~envs.core.team.Team` until none is left. The views into the packed buffers are
    carved once per call and the kernels it calls loop over a chunk's replicas themselves (see
    :func:`_advance_all` for ``episode``).
    """
    nvec, term_q, term_sign, term_weight, episode_steps, max_steps, rewards, terms, flags = episode
    # views, in the order of STATE_* and STATIC_*
    vf = _v3(f64, lay_f64, 0)
    time = _v1(f64, lay_f64, 1)
    acc = _v2(f64, lay_f64, 2)
    lane_stats = _v3(f64, lay_f64, 3)
    sig_float = _v3(f64, lay_f64, 4)
    metrics = _v2(f64, lay_f64, 5)
    per_sig = _v3(f64, lay_f64, 6)
    last_wait = _v2(f64, lay_f64, 7)
    quantities = _v2(f64, lay_f64, 8)
    conn_eta_all = _v3(f64, lay_f64, 9)
    vt_pos_all = _v2(f64, lay_f64, 10)
    vt_len_all = _v2(f64, lay_f64, 11)
    vt_speed_all = _v2(f64, lay_f64, 12)
    vt_room_all = _v3(f64, lay_f64, 13)
    edge_speed = _v2(f64, lay_f64, 14)
    edge_hist = _v3(f64, lay_f64, 15)
    vi = _v3(i32, lay_i32, 0)
    # unsigned: a vehicle index read from the order then indexes without Numba's negative-index
    # wraparound (a shift, an and and an add per access; 5 % of the step)
    order = _v2(i32, lay_i32, 1).view(np.uint32)
    free_stack = _v2(i32, lay_i32, 2)
    sig_int = _v3(i32, lay_i32, 3)
    n_alive = _v1(i64, lay_i64, 0)
    n_free = _v1(i64, lay_i64, 1)
    seg_ptr = _v2(i64, lay_i64, 2)
    seg_end = _v2(i64, lay_i64, 3)
    pending = _v1(i64, lay_i64, 4)
    rng_state = _v1(i64, lay_i64, 5)
    first_all = _v2(i64, lay_i64, 6)
    count_all = _v2(i64, lay_i64, 7)
    conn_busy_all = _v2(i64, lay_i64, 8)
    vt_set_all = _v2(i64, lay_i64, 9)
    seg_due = _v2(i64, lay_i64, 10)
    route_i_all, route_edges_all, route_fill = routes
    link_state = _v2(u8, lay_u8, 0)
    program_mode = _v2(u8, lay_u8, 1)
    truncated = _v1(u8, lay_u8, 2)
    lane_i = _v2(si, lay_si, 0)
    lout = _v1(si, lay_si, 1)
    conn_i = _v2(si, lay_si, 2)
    conn_edge = _v1(si, lay_si, 3)
    foes = _v1(si, lay_si, 4)
    edge_i = _v2(si, lay_si, 5)
    edge_lanes = _v1(si, lay_si, 6)
    route_dyn = _v1(si, lay_si, 7)
    esucc_ptr = _v1(si, lay_si, 8)
    sig_i = _v2(si, lay_si, 9)
    phase_state = _v2(si, lay_si, 10)
    greens = _v1(si, lay_si, 11)
    sig_in_ptr = _v1(si, lay_si, 12)
    sig_in = _v1(si, lay_si, 13)
    sig_out_ptr = _v1(si, lay_si, 14)
    sig_out = _v1(si, lay_si, 15)
    green_of_phase = _v1(si, lay_si, 16)
    obs_dims = _v1(si, lay_si, 17)
    controlled = _v1(si, lay_si, 18)
    yielders = _v1(si, lay_si, 19)
    esucc = _v1(si, lay_si, 20)
    lane_f = _v2(sf, lay_sf, 0)
    conn_f = _v2(sf, lay_sf, 1)
    phase_dur = _v1(sf, lay_sf, 2)
    params = _v1(sf, lay_sf, 3)
    tp = _v2(sf, lay_sf, 4)
    lane_cap = _v1(sf, lay_sf, 5)
    esucc_t = _v1(sf, lay_sf, 6)
    edge_f = _v2(sf, lay_sf, 7)
    # sort keys, scratch of this call's replicas (stepped one after the other)
    klane = np.empty(vi.shape[1], dtype=np.int32)
    kpos = np.empty(vi.shape[1])
    n_er = edge_speed.shape[1]
    scratch_f = np.empty(n_er + lane_f.shape[0] + esucc.shape[0] + 1 if n_er else 0)
    scratch_i = np.empty(2 * n_er + esucc.shape[0] + 1 if n_er else 0, dtype=np.int64)
    n = bounds.shape[0] - 1
    shared = ctrl.shape[0] > 0
    i = team_mod.claim(ctrl, g, n) if shared else 0
    while 0 <= i < n:
        b0 = bounds[i]
        b1 = bounds[i + 1]
        _advance_replicas(
            n_sub,
            actions,
            program_mode,
            controlled,
            vi,
            vf,
            order,
            n_alive,
            free_stack,
            n_free,
            dep_time,
            dep_i,
            dep_speed,
            seg_ptr,
            seg_end,
            sig_int,
            sig_float,
            link_state,
            time,
            acc,
            lane_stats,
            pending,
            rng_state,
            lane_f,
            lane_i,
            lout,
            conn_f,
            conn_i,
            conn_edge,
            foes,
            yielders,
            edge_i,
            edge_lanes,
            route_i_all,
            route_edges_all,
            sig_i,
            phase_state,
            phase_dur,
            greens,
            params,
            tp,
            first_all,
            count_all,
            conn_eta_all,
            conn_busy_all,
            vt_pos_all,
            vt_len_all,
            vt_speed_all,
            vt_room_all,
            vt_set_all,
            seg_due,
            klane,
            kpos,
            route_fill,
            route_dyn,
            esucc_ptr,
            esucc,
            esucc_t,
            edge_f,
            edge_speed,
            edge_hist,
            scratch_f,
            scratch_i,
            b0,
            b1,
        )
        _summarise(
            controlled,
            program_mode,
            n_alive,
            sig_int,
            sig_float,
            time,
            acc,
            lane_stats,
            pending,
            lane_f,
            sig_i,
            params,
            sig_in_ptr,
            sig_in,
            sig_out_ptr,
            sig_out,
            lane_cap,
            green_of_phase,
            obs_dims,
            metrics,
            per_sig,
            last_wait,
            signal_obs,
            b0,
            b1,
        )
        for b in range(b0, b1):
            for q in range(quantities.shape[1]):
                total = 0.0
                for k in range(per_sig.shape[1]):
                    total += per_sig[b, k, q]
                quantities[b, q] = total
            truncated[b] = 1 if time[b] >= params[7] - 1e-9 else 0
            if nvec.shape[0] > 0:
                total = 0.0
                for j in range(term_q.shape[0]):
                    value = quantities[b, term_q[j]] * term_sign[j]
                    terms[b, j] = value
                    total += term_weight[j] * value
                rewards[b] = total
                episode_steps[b] += 1
                cut = truncated[b] == 1 or (max_steps > 0 and episode_steps[b] >= max_steps)
                flags[0, b] = False
                flags[1, b] = cut
                flags[2, b] = cut
        if shared:
            team_mod.finish(ctrl)
            i = team_mod.claim(ctrl, g, n)
        else:
            i += 1


@numba.njit(cache=True)
def _actions_valid(actions: np.ndarray, nvec: np.ndarray) -> bool:  # pragma: no cover
    for b in range(actions.shape[0]):
        for k in range(nvec.shape[0]):
            if actions[b, k] < 0 or actions[b, k] >= nvec[k]:
                return False
    return True


@numba.njit(cache=True)
def _advance_all(
    n_sub: int,
    actions: np.ndarray,
    f64: np.ndarray,
    lay_f64: np.ndarray,
    i32: np.ndarray,
    lay_i32: np.ndarray,
    i64: np.ndarray,
    lay_i64: np.ndarray,
    u8: np.ndarray,
    lay_u8: np.ndarray,
    signal_obs: np.ndarray,
    si: np.ndarray,
    lay_si: np.ndarray,
    sf: np.ndarray,
    lay_sf: np.ndarray,
    dep_time: np.ndarray,
    dep_i: np.ndarray,
    dep_speed: np.ndarray,
    routes: tuple,
    episode: tuple,
    b0: int,
    b1: int,
) -> int:  # pragma: no cover - compiled
    """One decision of replicas ``b0 .. b1 - 1``, one after the other.

    :func:`_team_step` runs it on chunks of the replicas, without the GIL.

    ``episode`` is ``(nvec, term_q, term_sign, term_weight, episode_steps, max_steps, rewards,
    terms, flags)`` for a fused environment step (empty ``nvec``: the core step alone): the
    actions are checked against ``nvec`` first (nothing changes if one is out of range), then
    every replica's reward terms ``terms[b, j] = quantities[b, term_q[j]] * term_sign[j]``, its
    reward (weighted sum), step count and ``flags`` (terminated, truncated, done) are written.

    Returns:
        -1 for an action out of range, else 0.
    """
    if episode[0].shape[0] > 0 and not _actions_valid(actions, episode[0]):
        return -1
    _step_replicas(
        n_sub,
        actions,
        f64,
        lay_f64,
        i32,
        lay_i32,
        i64,
        lay_i64,
        u8,
        lay_u8,
        signal_obs,
        si,
        lay_si,
        sf,
        lay_sf,
        dep_time,
        dep_i,
        dep_speed,
        routes,
        episode,
        np.array([b0, b1]),
        np.zeros(0, dtype=np.int64),
        0,
    )
    return 0


@numba.njit(cache=True, nogil=True)
def _team_step(
    n_sub: int,
    actions: np.ndarray,
    f64: np.ndarray,
    lay_f64: np.ndarray,
    i32: np.ndarray,
    lay_i32: np.ndarray,
    i64: np.ndarray,
    lay_i64: np.ndarray,
    u8: np.ndarray,
    lay_u8: np.ndarray,
    signal_obs: np.ndarray,
    si: np.ndarray,
    lay_si: np.ndarray,
    sf: np.ndarray,
    lay_sf: np.ndarray,
    dep_time: np.ndarray,
    dep_i: np.ndarray,
    dep_speed: np.ndarray,
    routes: tuple,
    episode: tuple,
    bounds: np.ndarray,
    ctrl: np.ndarray,
    lead: bool,
    seen: int,
    job: int,
    budget: int,
) -> int:  # pragma: no cover - compiled
    """A :class:`~envs.core.team.Team`'s compiled side: chunks ``bounds`` of a decision.

    The caller (``lead``) steps chunks until none is left and waits for the helpers' ones; a
    helper serves every new decision of ``job`` until another job is published or it has been
    idle for ``budget`` cycles, and returns the last one it served (see
    :class:`~envs.core.team.Team`). The actions were checked before the decision was
    published. Chunks are disjoint and each replica's state, random stream and outputs are its
    own rows, the scratch per thread.
    """
    served = seen
    g = team_mod.decision(ctrl, lead, -1 if lead else seen, bounds.shape[0] - 1, job, budget)
    while g >= 0:
        served = g
        _step_replicas(
            n_sub,
            actions,
            f64,
            lay_f64,
            i32,
            lay_i32,
            i64,
            lay_i64,
            u8,
            lay_u8,
            signal_obs,
            si,
            lay_si,
            sf,
            lay_sf,
            dep_time,
            dep_i,
            dep_speed,
            routes,
            episode,
            bounds,
            ctrl,
            g,
        )
        g = team_mod.decision(ctrl, lead, g, bounds.shape[0] - 1, job, budget)
    return served


def vehicle_capacity(sc: TrafficScenario) -> int:
    """Upper bound on the vehicles a network holds (no overlap, shortest vehicle type)."""
    net = sc.network
    shortest = min(v.length + v.min_gap for v in sc.vtypes.values())
    extra = np.zeros(net.num_lanes)
    if net.num_connections:
        np.maximum.at(extra, net.conn_to, net.conn_length)
    per_lane = np.floor((net.lane_length + extra) / max(shortest, 0.5)) + 2
    return int(per_lane.sum()) + 8


class TrafficSim(BatchedSim[TrafficScenario, TrafficState]):
    """``B`` replicas of a traffic network stepped one decision (``delta_time``) at a time.

    ``step(actions)`` takes ``[B, K]`` green-phase choices (indices into each controlled signal's
    green phases, taken modulo their number) for the ``K`` controlled signals; replicas and
    signals flagged in :attr:`program_mode` run their fixed-time program instead.

    Args:
        batch_size: number of replicas ``B``.
        scenario: the scenario that fixes the network, routes and signal settings.
        obs_phases: phase slots of the per-signal observation (default: the most green phases
            of any controlled signal); signals with fewer phases are padded with zeros.
        obs_lanes: lane slots of the per-signal observation (default: the most incoming lanes
            of any controlled signal); a signal with more lanes than slots raises.
        threads: threads that step the replicas (at most one per replica): this one and a
            :class:`~envs.core.team.Team` of helpers, each claiming chunks of replicas until
            none is left. Replicas are independent and draw from their own generators, so the
            results do not depend on it. Helpers spin between decisions for a while
            (:data:`envs.core.team.SPIN_SECONDS`), then park. Handing a decision to them
            costs some tens of µs (more to wake a parked one), more than a few replicas of a
            small network take to step, so a decision runs on one thread while the last one
            took less than :attr:`threaded_min_seconds` of work.
    """

    threaded_min_seconds: float = 1e-4
    """Work (seconds on one thread) of a decision below which ``threads`` are not used.

    On sumo-rl's single intersection, 16 replicas (about 0.07 ms of work) step as fast on one
    thread as on two, and 24 replicas 1.13 times faster on two. 64 replicas, which the earlier
    threshold of 0.5 ms kept on one thread, step 1.2 times faster now
    (``scripts/bench_threads.py --batch 64``).
    """

    def __init__(
        self,
        batch_size: int,
        scenario: TrafficScenario,
        *,
        obs_phases: int | None = None,
        obs_lanes: int | None = None,
        threads: int = 1,
    ) -> None:
        super().__init__(batch_size, scenario)
        self.threads = min(team_mod.check_threads(threads), batch_size)
        self._chunks = team_mod.chunk_bounds(batch_size, self.threads)
        self.threads_used = 1
        """Threads the last decision ran on."""
        self._work = 0.0  # seconds of the last decision, times the threads it ran on
        self.compiled = c = compile_scenario(scenario)
        self._fits: weakref.WeakValueDictionary[int, TrafficScenario] = (
            weakref.WeakValueDictionary()
        )  # scenarios that passed check_compatible, by id
        net = scenario.network
        b = batch_size
        self.controlled = np.array(scenario.controlled_signals, dtype=np.int32)
        k = len(self.controlled)
        self.n_sub = int(round(scenario.signals.delta_time / scenario.step_length))
        self.capacity = v = vehicle_capacity(scenario)
        n_sig = net.num_signals
        # per controlled signal: incoming and outgoing lanes, green phases
        sig_lanes = [net.signal_lanes[s] for s in self.controlled.tolist()]
        sig_outs = [net.signal_out_lanes[s] for s in self.controlled.tolist()]
        self.signal_lanes = tuple(sig_lanes)
        self.num_greens = np.array(
            [len(net.signals[s].green_phases) for s in self.controlled.tolist()], dtype=np.int64
        )
        most_lanes = max([len(x) for x in sig_lanes] or [0])
        most_phases = int(self.num_greens.max()) if k else 0
        self.obs_lanes = most_lanes if obs_lanes is None else int(obs_lanes)
        self.obs_phases = most_phases if obs_phases is None else int(obs_phases)
        if self.obs_lanes < most_lanes:
            raise ValueError(
                f"obs_lanes: {self.obs_lanes} slots cannot hold the {most_lanes} incoming lanes "
                f"of a signal of {net.name!r}; use obs_lanes >= {most_lanes}"
            )
        if self.obs_phases < most_phases:
            raise ValueError(
                f"obs_phases: {self.obs_phases} slots cannot hold the {most_phases} green phases "
                f"of a signal of {net.name!r}; use obs_phases >= {most_phases}"
            )
        green_of_phase = np.full(max(c.phase_dur.size, 1), -1, dtype=np.int64)
        for s in range(n_sig):
            for g, p in enumerate(c.greens[c.sig_i[s, 4] : c.sig_i[s, 4] + c.sig_i[s, 5]]):
                green_of_phase[p] = g
        n_l, n_c = net.num_lanes, max(net.num_connections, 1)
        # routes: the scenario's, then those departures take on the travel times of their time
        n_r, n_k = c.route_i.shape[0], c.route_edges.shape[0]
        dyn = c.route_dyn.astype(bool)
        n_e = net.num_edges if dyn.any() else 0
        more_r = int(dyn.sum()) + (64 if n_e else 0)
        more_k = 2 * int(np.diff(c.route_i[dyn], axis=1).sum()) + (256 if n_e else 0)
        firsts = sorted({r.edges[0] for r in scenario.routes})
        self.route_src = np.array(
            [firsts.index(r.edges[0]) for r in scenario.routes], dtype=np.int64
        )
        n_src = max(len(firsts), 1)
        self.obs_width = self.obs_phases + 1 + 2 * self.obs_lanes
        shapes = {
            "vf": (b, v, NVF),
            "time": (b,),
            "acc": (b, NACC),
            "lane_stats": (b, n_l, NLS),
            "sig_float": (b, n_sig, 4),
            "metrics": (b, len(METRICS)),
            "per_signal": (b, k, len(QUANTITIES)),
            "last_wait": (b, k),
            "quantities": (b, len(QUANTITIES)),
            "conn_eta": (b, n_c, 2),
            "vt_pos": (b, n_l),
            "vt_len": (b, n_l),
            "vt_speed": (b, n_l),
            "vt_room": (b, n_l, 2),
            "edge_speed": (b, n_e),
            "edge_hist": (b, n_e, ROUTING_STEPS),
            "vi": (b, v, NVI),
            "order": (b, v),
            "free_stack": (b, v),
            "sig_int": (b, n_sig, 4),
            "n_alive": (b,),
            "n_free": (b,),
            "seg_ptr": (b, n_src),
            "seg_end": (b, n_src),
            "pending": (b,),
            "rng_state": (b,),
            "first": (b, n_l),
            "count": (b, n_l),
            "conn_busy": (b, n_c),
            "vt_set": (b, n_l),
            "seg_due": (b, n_src),
            "link_state": (b, max(c.num_links, 1)),
            "program_mode": (b, n_sig),
            "truncated": (b,),
        }
        self._f64 = Arena(np.float64, [(n, shapes[n]) for n in STATE_F64])
        self._i32 = Arena(np.int32, [(n, shapes[n]) for n in STATE_I32])
        self._i64 = Arena(np.int64, [(n, shapes[n]) for n in STATE_I64])
        self._u8 = Arena(np.uint8, [(n, shapes[n]) for n in STATE_U8])
        self._bind_views()
        # every replica holds the scenario's routes, then those its departures found (grown
        # before a decision could fill them, see _room_for_routes)
        self.route_i = np.zeros((b, n_r + more_r, 2), dtype=np.int32)
        self.route_edges = np.zeros((b, n_k + more_k, 2), dtype=np.int32)
        self.route_fill = np.zeros((b, 3), dtype=np.int64)
        """``[B, 3]`` per replica: routes in use, route edges in use, next edge-speed sample."""
        self.route_i[:, :n_r] = c.route_i
        self.route_edges[:, :n_k] = c.route_edges
        self._route_start = (n_r, n_k)
        self._route_margin = (0, 0)  # routes and edges one decision can add, at most
        # an empty edge's mean speed: the mean of its lanes' limits
        lanes = np.bincount(net.lane_edge, minlength=net.num_edges)
        self._empty_speed = (
            np.bincount(net.lane_edge, weights=net.lane_speed, minlength=net.num_edges)
            / np.maximum(lanes, 1)
        )[:n_e]
        self.signal_obs = np.zeros((b, k, self.obs_width), dtype=np.float32)
        self.dep_time = np.full((b, 1), np.inf, dtype=np.float64)
        self.dep_i = np.zeros((b, 1, 3), dtype=np.int32)
        self.dep_speed = np.zeros((b, 1), dtype=np.float64)
        static_i = {
            "lane_i": c.lane_i,
            "lout": c.lout,
            "conn_i": c.conn_i,
            "conn_edge": net.lane_edge[net.conn_to],
            "foes": c.foes,
            "edge_i": c.edge_i,
            "edge_lanes": c.edge_lanes,
            "route_dyn": c.route_dyn,
            "esucc_ptr": c.esucc_ptr,
            "esucc": c.esucc,
            "sig_i": c.sig_i,
            "phase_state": c.phase_state,
            "greens": c.greens,
            "sig_in_ptr": _csr_ptr(sig_lanes),
            "sig_in": _csr_values(sig_lanes),
            "sig_out_ptr": _csr_ptr(sig_outs),
            "sig_out": _csr_values(sig_outs),
            "green_of_phase": green_of_phase,
            "obs_dims": np.array([self.obs_phases, self.obs_lanes]),
            "controlled": self.controlled,
            "yielders": c.yielders,
        }
        static_f = {
            "lane_f": c.lane_f,
            "conn_f": c.conn_f,
            "phase_dur": c.phase_dur,
            "params": c.params,
            "tp": c.vtypes,
            "lane_cap": net.lane_length / 7.5,  # sumo-rl: lane length / (min gap + length)
            "esucc_t": c.esucc_t,
            "edge_f": c.edge_f,
        }
        self._si = Arena(np.int64, [(n, np.shape(static_i[n])) for n in STATIC_I64])
        self._sf = Arena(np.float64, [(n, np.shape(static_f[n])) for n in STATIC_F64])
        for name in STATIC_I64:
            self._si.views[name][...] = static_i[name]
        for name in STATIC_F64:
            self._sf.views[name][...] = static_f[name]
        self._terminated = np.zeros(b, dtype=bool)
        self._no_episode = (
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            np.zeros(0),
            np.zeros(0),
            np.zeros(b, dtype=np.int64),
            0,
            np.zeros(b),
            np.zeros((b, 0)),
            np.zeros((3, b), dtype=np.bool_),
        )

    ARENAS = ("_f64", "_i32", "_i64", "_u8")

    def _bind_views(self) -> None:
        """Expose every array of the state buffers as an attribute (views, no copies)."""
        for name in self.ARENAS:
            self.__dict__.update(getattr(self, name).views)
        self.program_mode = self._u8.views["program_mode"].view(np.bool_)
        """``[B, S]`` signals that run their fixed-time program (cleared at every reset)."""
        self._truncated = self._u8.views["truncated"].view(np.bool_)
        self._q_columns = Columns(QUANTITIES, self.quantities)
        self._m_columns = Columns(METRICS, self.metrics)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_layout"] = LAYOUT_VERSION
        for name in self.ARENAS:
            for view in getattr(self, name).views:
                state.pop(view, None)
        for name in ("program_mode", "_truncated", "_q_columns", "_m_columns", "_fits", "_stage"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # the compiled step finds each array by its place in a buffer: a simulation saved with
        # other state arrays, or arrays of another shape, would be read wrongly, so it is refused
        if state.get("_layout") != LAYOUT_VERSION:
            raise ValueError(
                f"TrafficSim state: saved with array layout {state.get('_layout', 1)}, but this "
                f"version steps layout {LAYOUT_VERSION}; create the environment again instead "
                "of loading this pickle"
            )
        for name, names in zip(self.ARENAS, STATE_LAYOUT, strict=True):
            arena = state.get(name)
            specs = arena.specs if isinstance(arena, Arena) else []
            saved = [spec[0] for spec in specs]
            if saved != list(names):
                raise ValueError(
                    f"TrafficSim state {name[1:]}: saved with the arrays {saved}, but this "
                    f"version steps {list(names)}; create the environment again instead of "
                    "loading this pickle"
                )
            # ... and so would one with other fields per vehicle or replica
            for array, shape in specs:
                fields = _FIELDS.get(array)
                if fields is not None and shape[-1] != fields:
                    raise ValueError(
                        f"TrafficSim state {array}: saved with {shape[-1]} fields per row, but "
                        f"this version has {fields}; create the environment again instead of "
                        "loading this pickle"
                    )
        self.__dict__.update(state)
        self._fits = weakref.WeakValueDictionary()
        if "_chunks" not in state:  # saved when each thread stepped a fixed share
            self.__dict__.pop("_shares", None)
            self._chunks = team_mod.chunk_bounds(self.batch_size, self.threads)
        self._bind_views()

    def check_compatible(self, scenario: TrafficScenario) -> None:
        """A scenario may change the demand and ``begin``; what the core compiled must match.

        That is the network (lanes, connections, signal programs), the routes, the vehicle
        types, the signal settings, ``step_length``, ``end`` and ``teleport_time``. A scenario
        that passed is remembered (weakly), so a source drawing the same objects checks once.
        """
        if scenario is self.structure or self._fits.get(id(scenario)) is scenario:
            return
        a, s = scenario.network, self.structure.network
        if a is not s and (a.num_lanes, a.num_connections, a.num_signals) != (
            s.num_lanes,
            s.num_connections,
            s.num_signals,
        ):
            raise ValueError(
                f"scenario {scenario.name!r}: its network ({a.num_lanes} lanes, "
                f"{a.num_signals} signals) differs from this simulation's ({s.num_lanes} "
                f"lanes, {s.num_signals} signals); build a new environment for it"
            )
        if (
            scenario.signals != self.structure.signals
            or scenario.step_length != self.structure.step_length
        ):
            raise ValueError(
                f"scenario {scenario.name!r}: signal settings and step_length must equal the "
                "environment's"
            )
        if [r.edges for r in scenario.routes] != [r.edges for r in self.structure.routes] or (
            list(scenario.vtypes) != list(self.structure.vtypes)
        ):
            raise ValueError(
                f"scenario {scenario.name!r}: a scenario drawn for this environment must keep "
                "its network, routes and vehicle types (demand, profiles and departures may "
                "change)"
            )
        fixed = {
            "end": (scenario.end, self.structure.end),
            "teleport_time": (scenario.teleport_time, self.structure.teleport_time),
            "vtypes": (scenario.vtypes, self.structure.vtypes),
        }
        differ = [f"{k} ({x!r} vs {y!r})" for k, (x, y) in fixed.items() if x != y]
        if a is not s:  # another network object: compare what the kernel reads of it
            own, mine = compile_scenario(scenario), self.compiled
            differ += [
                f"network.{f.name}"
                for f in dataclasses.fields(Compiled)
                if f.name not in ("params", "vtypes")
                and not np.array_equal(getattr(own, f.name), getattr(mine, f.name))
            ]
        if differ:
            raise ValueError(
                f"scenario {scenario.name!r}: {'; '.join(differ)} must equal the environment's "
                f"(scenario {self.structure.name!r}); a drawn or forced scenario may change "
                "its demand and begin, not what the simulation was built for; build a new "
                "environment for it"
            )
        self._fits[id(scenario)] = scenario

    # --- reset -------------------------------------------------------------------------------
    def _reset(self, idx: np.ndarray) -> None:
        if idx.size == 0:
            return
        # the state every episode starts from, set for all these replicas at once; metrics and
        # per-signal quantities keep the last step's values: they are the final info of an
        # episode that ended in this step (autoreset), and every step rewrites them
        for name in ("vi", "vf", "n_alive", "first", "count", "acc", "lane_stats", "pending"):
            getattr(self, name)[idx] = 0
        for name in ("last_wait", "link_state", "signal_obs", "program_mode"):
            getattr(self, name)[idx] = 0
        self.free_stack[idx] = np.arange(self.capacity - 1, -1, -1, dtype=np.int32)
        # the routes departures found and the edge speeds they were found on start again
        self.route_fill[idx] = (*self._route_start, 0)
        self.edge_speed[idx] = self._empty_speed
        self.edge_hist[idx] = self._empty_speed[:, None]
        self.n_free[idx] = self.capacity
        if self.obs_phases:  # the first observation: green phase 0, no vehicles yet
            self.signal_obs[idx[:, None], np.flatnonzero(self.num_greens > 0), 0] = 1.0
        for i in idx.tolist():
            self._reset_one(i)

    def _reset_one(self, i: int) -> None:
        """Replica ``i``'s departures, clock, random stream and signals for a new episode."""
        sc = self.scenarios[i]
        rng = self.rngs[i]
        assert rng is not None
        plan = _departure_plan(sc)
        time, rows = _draw_departures(plan, rng)
        n = time.size
        if n > self.dep_time.shape[1]:
            self._grow_departures(n)
        # grouped by source edge, in time order within each group (ties: as drawn)
        table = plan.rows
        src = self.route_src[table.route[rows]]
        order = np.lexsort((time, src))
        rows = rows[order]
        src = src[order]
        self.dep_time[i, :n] = time[order]
        self.dep_time[i, n:] = np.inf
        self.dep_i[i, :n, 0] = table.route[rows]
        self.dep_i[i, :n, 1] = table.vtype[rows]
        self.dep_i[i, :n, 2] = table.lane[rows]
        self.dep_speed[i, :n] = table.speed[rows]
        trips = self.compiled.route_dyn[self.dep_i[i, :n, 0]] > 0
        if trips.any():
            # the most trips one decision routes: each adds at most a route of at most every edge
            t = np.sort(self.dep_time[i, :n][trips])
            window = self.n_sub * sc.step_length + 1e-9
            most = int((np.searchsorted(t, t + window, side="right") - np.arange(t.size)).max())
            more_r, more_k = self._route_margin
            self._route_margin = (max(more_r, most), max(more_k, most * self.edge_speed.shape[1]))
        sources = np.arange(self.seg_ptr.shape[1])
        self.seg_ptr[i] = self.seg_due[i] = np.searchsorted(src, sources, side="left")
        self.seg_end[i] = np.searchsorted(src, sources, side="right")
        self.time[i] = sc.begin
        self.rng_state[i] = rng.integers(-(2**63), 2**63, dtype=np.int64)
        sig_int, sig_float = self._signal_start(sc)
        self.sig_int[i] = sig_int
        self.sig_float[i] = sig_float

    def _room_for_routes(self) -> None:
        """Grow the replicas' route space where the next decision could fill what is left.

        A trip's departure adds at most one route, of at most one entry per edge of the network,
        when it falls due, so the kernel's fallback to the trip's own route never happens.
        """
        more_r, more_k = self._route_margin
        if more_r == 0:
            return
        need = {
            "route_i": int(self.route_fill[:, 0].max()) + more_r,
            "route_edges": int(self.route_fill[:, 1].max()) + more_k,
        }
        for name, size in need.items():
            old = getattr(self, name)
            if size > old.shape[1]:
                new = np.zeros((old.shape[0], max(size, 2 * old.shape[1]), 2), dtype=old.dtype)
                new[:, : old.shape[1]] = old
                setattr(self, name, new)

    def _signal_start(self, sc: TrafficScenario) -> tuple[np.ndarray, np.ndarray]:
        """Every signal's state at ``sc.begin`` (its program's phase then; the first green)."""
        cached = sc.__dict__.get("_signal_start")
        if cached is not None:
            return cached
        c = self.compiled
        n_sig = len(sc.network.signals)
        sig_int = np.zeros((n_sig, 4), dtype=np.int32)
        sig_float = np.zeros((n_sig, 4))
        for s, sig in enumerate(sc.network.signals):
            start = int(c.sig_i[s, 2])
            pos = (sc.begin - sig.offset) % sig.cycle
            k = 0
            while pos >= sig.phases[k].duration - 1e-9:
                pos -= sig.phases[k].duration
                k = (k + 1) % len(sig.phases)
            greens = sig.green_phases
            cur = start + (greens[0] if greens else 0)
            sig_int[s] = (start + k, 0, cur, cur)
            sig_float[s] = (pos, 0.0, 0.0, 0.0)
        object.__setattr__(sc, "_signal_start", (sig_int, sig_float))
        return sig_int, sig_float

    def _grow_departures(self, n: int) -> None:
        b = self.batch_size
        size = max(n, 2 * self.dep_time.shape[1])
        old = self.dep_time.shape[1]
        for name, shape, dtype in (
            ("dep_time", (b, size), np.float64),
            ("dep_i", (b, size, 3), np.int32),
            ("dep_speed", (b, size), np.float64),
        ):
            new = np.zeros(shape, dtype=dtype)
            new[:, :old] = getattr(self, name)
            if name == "dep_time":
                new[:, old:] = np.inf
            setattr(self, name, new)

    # --- step --------------------------------------------------------------------------------
    def advance(self, actions: np.ndarray, episode: tuple | None = None) -> bool:
        """Run one decision of every replica (``actions``: ``[B, K]`` int64).

        ``episode`` makes it a fused environment step (see :func:`_advance_all`); returns
        ``False`` (and changes nothing) when an action is out of range there.
        """
        self._room_for_routes()
        args = (
            self.n_sub,
            actions,
            self._f64.buffer,
            self._f64.layout,
            self._i32.buffer,
            self._i32.layout,
            self._i64.buffer,
            self._i64.layout,
            self._u8.buffer,
            self._u8.layout,
            self.signal_obs,
            self._si.buffer,
            self._si.layout,
            self._sf.buffer,
            self._sf.layout,
            self.dep_time,
            self.dep_i,
            self.dep_speed,
            (self.route_i, self.route_edges, self.route_fill),
            self._no_episode if episode is None else episode,
        )
        if self.threads == 1:
            code = _advance_all(*args, 0, self.batch_size)
        else:
            code = self._advance_threaded(args)
        return code >= 0

    def _advance_threaded(self, args: tuple) -> int:
        """:func:`_advance_all` on a :class:`~envs.core.team.Team` of ``threads``.

        The actions are checked first, so an invalid one changes nothing in any chunk. A
        decision whose predecessor was too little work runs on this thread alone.
        """
        start = _time.perf_counter()
        if self._work < self.threaded_min_seconds:
            self.threads_used = 1
            code = int(_advance_all(*args, 0, self.batch_size))
        else:
            nvec = args[-1][0]
            if nvec.shape[0] > 0 and not _actions_valid(args[1], nvec):
                return -1
            self.threads_used = self.threads
            # the team's helpers keep the arguments of the last decision while they are the
            # same arrays: the actions and the episode's outputs go through buffers of their own
            actions, episode = args[1], args[-1]
            staged = self._staged(actions, episode)
            np.copyto(staged[0], actions)
            team_mod.team(self.threads, _team_step).run(
                (args[0], staged[0], *args[2:-1], (*episode[:6], *staged[1:]), self._chunks)
            )
            for out, buf in zip(episode[6:], staged[1:], strict=True):
                np.copyto(out, buf)
            code = 0
        if code >= 0:
            self._work = (_time.perf_counter() - start) * self.threads_used
        return code

    def _staged(self, actions: np.ndarray, episode: tuple) -> tuple[np.ndarray, ...]:
        """Buffers shaped as ``actions`` and the episode's outputs (rewards, terms, flags)."""
        like = (actions, *episode[6:])
        found = self.__dict__.get("_stage")
        if found is None or any(
            a.shape != b.shape or a.dtype != b.dtype for a, b in zip(found, like, strict=True)
        ):
            found = self._stage = tuple(np.zeros_like(a) for a in like)
        return found

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.ascontiguousarray(actions, dtype=np.int64).reshape(self.batch_size, -1)
        self.advance(actions)
        return self.result()

    def result(self) -> StepResult:
        """Metrics, reward quantities and episode ends of the decision just simulated.

        Reward quantities are summed over the controlled signals (see
        :attr:`per_signal` for each signal's): ``wait_diff`` is the drop in the summed
        waiting time (s / 100) of vehicles on the signal's incoming lanes since the last
        decision (sumo-rl's ``diff-waiting-time``); ``queue`` the halting vehicles on its
        incoming lanes; ``pressure`` vehicles on incoming minus outgoing lanes; ``speed`` the
        mean speed over the speed limit on incoming lanes (1 when empty); ``delay`` the time
        lost by all vehicles in the decision and ``arrived`` the trips finished in it (both
        split evenly over the signals).
        """
        return StepResult(self._q_columns, self._m_columns, self._terminated, self._truncated)

    def views(self) -> TrafficState:
        return TrafficState(
            time=readonly(self.time),
            veh_int=readonly(self.vi),
            veh_float=readonly(self.vf),
            link_state=readonly(self.link_state),
            lane_stats=readonly(self.lane_stats),
            signal_int=readonly(self.sig_int),
            signal_float=readonly(self.sig_float),
            acc=readonly(self.acc),
            pending=readonly(self.pending),
            signal_obs=readonly(self.signal_obs),
            metrics=readonly(self.metrics),
        )

    def conservation(self) -> np.ndarray:
        """``[B]`` inserted - on network - arrived (zero when vehicles are conserved)."""
        return self.acc[:, A_INSERTED] - self.n_alive - self.acc[:, A_ARRIVED]


def _csr_ptr(lists: list[tuple[int, ...]]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)


def _csr_values(lists: list[tuple[int, ...]]) -> np.ndarray:
    return np.array([v for x in lists for v in x], dtype=np.int64)
