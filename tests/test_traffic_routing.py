"""Trips routed when they depart, on the edge travel times of that moment (SUMO's trips)."""

from __future__ import annotations

import dataclasses
import heapq
import math
from typing import Any

import numpy as np
from test_traffic_sim import check_lane_lists, every_second, make_sim

from envs.traffic import builders
from envs.traffic.scenario import TrafficScenario, VehicleType
from envs.traffic.sim import (
    A_INSERTED,
    BEST_LANE_LOOKAHEAD,
    F_POS,
    F_SPEED,
    I_ALIVE,
    I_LANE,
    I_ROUTE,
    I_RPOS,
    ROUTING_MIN_SPEED,
    ROUTING_STEPS,
    TrafficSim,
    _route_at_departure,
)

VMAX = VehicleType().max_speed  # the builders' vehicles


def trips(sc: TrafficScenario) -> TrafficScenario:
    """``sc`` with every route a trip's: routed again at each departure."""
    return sc.replace(routes=tuple(dataclasses.replace(r, at_departure=True) for r in sc.routes))


def route_now(sim: TrafficSim, r: int, b: int = 0) -> int:
    """The route a departure on route ``r`` takes now in replica ``b`` (the kernel's call)."""
    si, sf = sim._si.views, sim._sf.views
    n_e, n_link = sim.edge_speed.shape[1], si["esucc"].size
    return int(
        _route_at_departure(
            r,
            b,
            si["route_dyn"].size,
            VMAX,
            sim.edge_speed,
            sf["edge_f"],
            si["esucc_ptr"],
            si["esucc"],
            sf["esucc_t"],
            sim.route_i[b],
            sim.route_edges[b],
            sim.route_fill,
            sf["lane_f"],
            si["lane_i"],
            si["lout"],
            si["conn_i"],
            si["edge_i"],
            si["edge_lanes"],
            np.empty(n_e),
            np.empty(sf["lane_f"].shape[0]),
            np.empty(n_e, dtype=np.int64),
            np.empty(n_link + 1),
            np.empty(n_link + 1, dtype=np.int64),
            np.empty(n_e, dtype=np.int64),
        )
    )


def fastest(sim: TrafficSim, src: int, dst: int, speed: np.ndarray) -> list[int]:
    """Dijkstra over the edges with SUMO's rerouting effort, written plainly."""
    c = sim.compiled
    dist, prev = {src: 0.0}, {}
    heap = [(0.0, src)]
    while heap:
        d, a = heapq.heappop(heap)
        if a == dst:
            break
        if d > dist[a]:
            continue
        for j in range(c.esucc_ptr[a], c.esucc_ptr[a + 1]):
            e = int(c.esucc[j])
            length, limit = c.edge_f[e]
            effort = max(length / max(speed[e], ROUTING_MIN_SPEED), length / min(limit, VMAX))
            if d + c.esucc_t[j] + effort < dist.get(e, math.inf):
                dist[e], prev[e] = d + c.esucc_t[j] + effort, a
                heapq.heappush(heap, (dist[e], e))
    path = [dst]
    while path[-1] != src:
        path.append(prev[path[-1]])
    return path[::-1]


def best_lanes_plainly(net: Any, edges: list[int]) -> list[int]:
    """Every edge's lanes that lead farthest along the rest of ``edges`` (SUMO's best lanes)."""
    masks = [0] * len(edges)
    reach: dict[int, float] = {}  # lane of the next edge: metres on from its start
    for k in range(len(edges) - 1, -1, -1):
        here = {}
        for lane in net.edge_lanes[edges[k]]:
            on = [
                reach[int(net.conn_to[c])]
                for c in net.lane_outgoing[lane]
                if k + 1 < len(edges) and net.lane_edge[net.conn_to[c]] == edges[k + 1]
            ]
            here[lane] = float(net.lane_length[lane]) + max(on, default=0.0)
        top = max(min(r, BEST_LANE_LOOKAHEAD) for r in here.values())
        for lane, r in here.items():
            if min(r, BEST_LANE_LOOKAHEAD) >= top - 1e-9:
                masks[k] |= 1 << int(net.lane_index[lane])
        reach = here
    return masks


def edges_of(sim: TrafficSim, q: int, b: int = 0) -> list[int]:
    start, end = sim.route_i[b, q]
    return sim.route_edges[b, start:end, 0].tolist()


def test_a_trip_takes_the_fastest_path_on_the_edge_speeds_of_its_departure() -> None:
    sc = trips(builders.grid(3, 3, lanes=2, seconds=600))
    sim = make_sim(sc)
    net, n_static = sc.network, len(sc.routes)
    r = sc.route_index["route_left0A0__C2right2"]
    own = [net.edge_index[e] for e in sc.routes[r].edges]
    # in the empty network: the scenario's route, the import's fastest free-flow path
    assert route_now(sim, r) == r
    assert sim.route_fill[0, 0] == n_static
    # an edge of it crawls: the fastest path around it, kept with its best lanes
    slow = net.edge_index["A1A2"]
    sim.edge_speed[0, slow] = 0.5
    q = route_now(sim, r)
    assert q == n_static and sim.route_fill[0, 0] == n_static + 1
    path = edges_of(sim, q)
    assert path == fastest(sim, own[0], own[-1], sim.edge_speed[0])
    assert slow not in path and (path[0], path[-1]) == (own[0], own[-1])
    for a, b in zip(path, path[1:], strict=False):
        assert b in net.edge_successors[a]
    start, end = sim.route_i[0, q]
    assert sim.route_edges[0, start:end, 1].tolist() == best_lanes_plainly(net, path)
    # the next departure on these speeds takes that route again, without a copy
    assert route_now(sim, r) == q and sim.route_fill[0, 0] == n_static + 1
    # once the edge flows again, the scenario's route
    sim.edge_speed[0, slow] = sim._empty_speed[slow]
    assert route_now(sim, r) == r
    # with the replica's route space full, a new path falls back on the scenario's route
    sim.edge_speed[0, slow] = 0.5
    sim.edge_speed[0, path[2]] = 0.5
    other = fastest(sim, own[0], own[-1], sim.edge_speed[0])
    assert other not in (own, path)
    sim.route_fill[0, 0] = sim.route_i.shape[1]
    assert route_now(sim, r) == r


def edge_mean_speeds(sim: TrafficSim, net: object, b: int = 0) -> np.ndarray:
    """SUMO's edge mean speed from the vehicles of replica ``b``, written plainly."""
    vi, vf = sim.vi[b], sim.vf[b]
    alive = np.flatnonzero((vi[:, I_ALIVE] == 1) & (vf[:, F_POS] >= 0.0))
    out = np.zeros(net.num_edges)  # type: ignore[attr-defined]
    for e, lanes in enumerate(net.edge_lanes):  # type: ignore[attr-defined]
        total = weight = 0.0
        for lane in lanes:
            on = alive[vi[alive, I_LANE] == lane]
            if on.size:
                total += vf[on, F_SPEED].sum()
                weight += on.size
            else:
                total += net.lane_speed[lane]  # type: ignore[attr-defined]
                weight += 1
        out[e] = total / weight
    return out


def test_edge_speeds_average_the_last_180_seconds_of_mean_speeds() -> None:
    sc = every_second(trips(builders.grid(2, 2, lanes=2, inflow=600, seconds=600)))
    sim = make_sim(sc)
    net = sc.network
    samples = [sim._empty_speed.copy() for _ in range(ROUTING_STEPS)]
    for _ in range(300):
        sim.step(np.zeros((1, len(sim.controlled)), dtype=np.int64))
        if sim.acc[0, A_INSERTED] > 0:  # sampled from the first departure on
            samples.append(edge_mean_speeds(sim, net))
    assert len(samples) > ROUTING_STEPS + 250
    expected = np.mean(samples[-ROUTING_STEPS:], axis=0)
    np.testing.assert_allclose(sim.edge_speed[0], expected, rtol=1e-9, atol=1e-9)
    assert (expected < sim._empty_speed - 1.0).any()  # traffic slowed some edge


def test_departures_drive_the_routes_they_found_and_replicas_keep_their_own() -> None:
    sc = trips(builders.grid(3, 3, lanes=2, inflow=900, seconds=900))
    single = [make_sim(sc, seed=s) for s in (3, 4)]
    batch = TrafficSim(2, sc)
    batch.reset(np.ones(2, dtype=bool), [np.random.default_rng(s) for s in (3, 4)], [sc, sc])
    n_static = len(sc.routes)
    found = 0
    actions = np.zeros((1, len(batch.controlled)), dtype=np.int64)
    for _ in range(180):
        batch.step(np.repeat(actions, 2, axis=0))
        for b, sim in enumerate(single):
            sim.step(actions)
            check_lane_lists(sim)
            vi = sim.vi[0]
            for v in np.flatnonzero(vi[:, I_ALIVE] == 1):
                start, end = sim.route_i[0, vi[v, I_ROUTE]]
                assert start + vi[v, I_RPOS] < end
                edge = sim.route_edges[0, start + vi[v, I_RPOS], 0]
                assert sc.network.lane_edge[vi[v, I_LANE]] == edge
            found = max(found, int(sim.route_fill[0, 0]) - n_static)
            np.testing.assert_array_equal(batch.vf[b], sim.vf[0])
            used_r, used_k, _ = sim.route_fill[0]
            np.testing.assert_array_equal(batch.route_fill[b], sim.route_fill[0])
            np.testing.assert_array_equal(batch.route_i[b, :used_r], sim.route_i[0, :used_r])
            np.testing.assert_array_equal(
                batch.route_edges[b, :used_k], sim.route_edges[0, :used_k]
            )
    assert found > 0  # congestion sent some departures another way


def test_route_space_grows_before_a_decision_could_fill_it() -> None:
    sc = trips(builders.grid(3, 3, lanes=2, inflow=900, seconds=900))
    grown, kept = make_sim(sc, seed=3), make_sim(sc, seed=3)
    assert grown._route_margin[0] > 0  # the most trips one decision routes
    actions = np.zeros((1, len(kept.controlled)), dtype=np.int64)
    for step in range(120):
        if step == 60:
            # as if the next decision could route as many trips as there are routes
            size = grown.route_i.shape[1]
            before = grown.route_i[0, : grown.route_fill[0, 0]].copy()
            grown._route_margin = (size, grown._route_margin[1])
            grown.step(actions)
            kept.step(actions)
            assert grown.route_i.shape[1] >= 2 * size
            np.testing.assert_array_equal(grown.route_i[0, : before.shape[0]], before)
            continue
        grown.step(actions)
        kept.step(actions)
        np.testing.assert_array_equal(grown.vf, kept.vf)
    assert kept.route_fill[0, 0] > len(sc.routes)
    np.testing.assert_array_equal(grown.route_fill, kept.route_fill)
