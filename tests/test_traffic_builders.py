"""Traffic network builders: geometry, connections, conflicts, signal programs and demand."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from envs.traffic.builders import (
    PRESETS,
    Arm,
    SignalTiming,
    arterial,
    build,
    grid,
    single_intersection,
    sumo_rl_single_intersection,
)
from envs.traffic.nets import sumo_rl_nets_dir
from envs.traffic.network import LINK_STATES, Network
from envs.traffic.scenario import TrafficScenario

VARIANTS = {
    **{name: (name, {}) for name in PRESETS},
    "single4_shared": ("single4", {"lanes_per_arm": 1}),
    "single4_allred_ror": (
        "single4",
        {"timing": SignalTiming(all_red=2.0, right_on_red=True), "fan_out": True},
    ),
    "single3_no_left_phase": ("single3", {"timing": SignalTiming(protected_left=False)}),
    "arterial2_wide": ("arterial4", {"n": 2, "main_lanes": 3, "side_lanes": 2}),
    "grid2x3_turning": ("grid2x2", {"cols": 3, "demand": "turning", "lanes": 2}),
    "grid3x1_one_lane": ("grid2x2", {"rows": 3, "cols": 1, "lanes": 1, "fan_out": False}),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def scenario(request: pytest.FixtureRequest) -> TrafficScenario:
    preset, overrides = VARIANTS[request.param]
    return build(preset, **overrides)


# --- independent geometry for the checks ------------------------------------------------------
def _orient(a, b, c) -> float:
    return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))


def _touch(p, q, r, s) -> bool:
    o1, o2, o3, o4 = _orient(p, q, r), _orient(p, q, s), _orient(r, s, p), _orient(r, s, q)
    if o1 * o2 < 0 and o3 * o4 < 0:
        return True

    def within(a, b, c) -> bool:
        return bool(np.all(np.minimum(a, b) - 1e-9 <= c) and np.all(c <= np.maximum(a, b) + 1e-9))

    eps = 1e-9
    return (
        (abs(o1) < eps and within(p, q, r))
        or (abs(o2) < eps and within(p, q, s))
        or (abs(o3) < eps and within(r, s, p))
        or (abs(o4) < eps and within(r, s, q))
    )


def _geometric_conflict(net: Network, c: int, f: int) -> bool:
    if net.conn_from[c] == net.conn_from[f]:
        return False
    if net.conn_to[c] == net.conn_to[f]:
        return True
    a, b = net.conn_shapes[c], net.conn_shapes[f]
    return any(
        _touch(a[i], a[i + 1], b[j], b[j + 1]) for i in range(len(a) - 1) for j in range(len(b) - 1)
    )


# --- network validity -------------------------------------------------------------------------
def test_network_is_valid(scenario: TrafficScenario) -> None:
    net = scenario.network
    net.validate()
    assert net.num_signals >= 1
    assert (net.conn_tls >= 0).all(), "every connection of a built junction is signalised"
    signal_nodes = {s.id for s in net.signals}
    for lane in range(net.num_lanes):
        edge = int(net.lane_edge[lane])
        is_exit = net.edge_to[edge] not in signal_nodes
        assert bool(net.lane_outgoing[lane]) != is_exit, net.lane_ids[lane]
    for shape, length in zip(net.lane_shapes, net.lane_length, strict=True):
        assert np.isclose(np.linalg.norm(np.diff(shape, axis=0), axis=1).sum(), length)
    for lane, width in zip(net.lane_ids, net.lane_width, strict=True):
        assert width > 0, lane
    for c in range(net.num_connections):
        shape = net.conn_shapes[c]
        assert np.allclose(shape[0], net.lane_shapes[net.conn_from[c]][-1])
        assert np.allclose(shape[-1], net.lane_shapes[net.conn_to[c]][0])
        assert net.conn_length[c] > 0
        assert net.conn_dir[c] in "rsl"
        assert net.conn_speed[c] <= max(net.lane_speed) + 1e-9
        if net.conn_dir[c] != "s":
            assert net.conn_speed[c] < 12.0, "turns are slower than the lane speed"


def test_routes_are_connected(scenario: TrafficScenario) -> None:
    net = scenario.network
    signal_nodes = {s.id for s in net.signals}
    for route in scenario.routes:
        edges = [net.edge_index[e] for e in route.edges]
        for a, b in zip(edges, edges[1:], strict=False):
            assert b in net.edge_successors[a], route
        assert net.edge_from[edges[0]] not in signal_nodes, f"{route.id} starts at the boundary"
        assert net.edge_to[edges[-1]] not in signal_nodes, f"{route.id} ends at the boundary"
    used = {f.route for f in scenario.flows}
    assert used <= {r.id for r in scenario.routes}
    assert scenario.flows, "every preset has demand"


def test_signal_programs(scenario: TrafficScenario) -> None:
    net = scenario.network
    for s, program in enumerate(net.signals):
        links = net.signal_links[s]
        assert all(len(p.state) == program.num_links for p in program.phases)
        assert all(len(conns) == 1 for conns in links), "every link index drives one connection"
        assert len(program.green_phases) >= 2
        for k, phase in enumerate(program.phases):
            if phase.is_green:
                nxt = program.phases[(k + 1) % len(program.phases)]
                assert nxt.is_yellow or scenario.signals.yellow_time == 0, phase
        # every link gets a green at some point
        for link in range(program.num_links):
            assert any(p.state[link] in "Gg" for p in program.phases), (program.id, link)


def test_no_unresolved_conflict_in_any_phase(scenario: TrafficScenario) -> None:
    """Two conflicting connections may go together only if one of them gives way to the other."""
    net = scenario.network
    minor = set("gs")
    for s, program in enumerate(net.signals):
        conns = [c for (c,) in net.signal_links[s]]
        for phase in program.phases:
            for x, c in enumerate(conns):
                for f in conns[x + 1 :]:
                    sc, sf = phase.state[net.conn_link[c]], phase.state[net.conn_link[f]]
                    if sc not in "Ggs" or sf not in "Ggs" or not _geometric_conflict(net, c, f):
                        continue
                    ok = (sc in minor and f in net.conn_foes[c]) or (
                        sf in minor and c in net.conn_foes[f]
                    )
                    assert ok, (program.id, phase.name, c, f, sc, sf)
                    assert not (sc == "G" and sf == "G"), (program.id, phase.name, c, f)


def test_foes_conflict_geometrically(scenario: TrafficScenario) -> None:
    net = scenario.network
    for c, foes in enumerate(net.conn_foes):
        assert c not in foes
        for f in foes:
            assert net.conn_tls[f] == net.conn_tls[c], "foes share the junction"
            assert _geometric_conflict(net, c, f), (c, f)
            # never both ways under the static right of way unless a phase needs it
            if c in net.conn_foes[f]:
                assert net.conn_dir[c] != net.conn_dir[f] or net.conn_dir[c] == "r"


def test_permissive_left_yields_to_opposing_through_and_right() -> None:
    net = single_intersection(4, lanes_per_arm=3).network
    ids = {
        (net.lane_ids[net.conn_from[c]], net.lane_ids[net.conn_to[c]]): c
        for c in range(net.num_connections)
    }
    n_left = ids[("n_t_2", "t_e_2")]
    s_through = {ids[("s_t_0", "t_n_0")], ids[("s_t_1", "t_n_1")]}
    assert s_through <= set(net.conn_foes[n_left])
    # the opposing right turn merges into the left turn's target edge
    tight = single_intersection(4, lanes_per_arm=1).network
    ids = {
        (tight.lane_ids[tight.conn_from[c]], tight.lane_ids[tight.conn_to[c]]): c
        for c in range(tight.num_connections)
    }
    assert ids[("s_t_0", "t_e_0")] in tight.conn_foes[ids[("n_t_0", "t_e_0")]]
    assert ids[("n_t_0", "t_e_0")] not in tight.conn_foes[ids[("s_t_0", "t_e_0")]]
    program = net.signals[0]
    through = program.phases[0].state
    assert through[net.conn_link[n_left]] == "g"
    assert [p.name for p in program.phases if p.is_green] == ["NS", "NS-left", "EW", "EW-left"]
    assert program.phases[1].is_yellow and program.phases[1].duration == 3.0


def test_geometry_matches_netconvert_defaults() -> None:
    """3-lane approaches, 300 m blocks: RESCO grid4x4's lane lengths and turn speeds."""
    net = grid(2, 2, fan_out=True).network
    lane = net.lane_id_index
    assert net.lane_length[lane["A0B0_0"]] == pytest.approx(272.8)
    assert net.lane_length[lane["left0A0_0"]] == pytest.approx(286.4)
    assert net.lane_shapes[lane["A0B0_0"]][0] == pytest.approx([313.6, 292.0])
    by_pair = {
        (net.lane_ids[net.conn_from[c]], net.lane_ids[net.conn_to[c]]): c
        for c in range(net.num_connections)
    }
    right = by_pair[("A1A0_0", "A0left0_0")]
    assert net.conn_length[right] == pytest.approx(9.03, abs=0.01)
    assert net.conn_speed[right] == pytest.approx(6.51)
    left = by_pair[("A1A0_2", "A0B0_2")]
    assert net.conn_speed[left] == pytest.approx(10.36)
    assert net.signals[0].num_links == 36


def test_t_junction() -> None:
    sc = single_intersection(3)
    net = sc.network
    assert set(net.nodes) == {"t", "e", "s", "w"}
    assert {r.id for r in sc.routes} == {
        "route_ew",
        "route_es",
        "route_we",
        "route_ws",
        "route_se",
        "route_sw",
    }
    greens = [p.name for p in net.signals[0].phases if p.is_green]
    # the stem's left turn is unopposed: no protected phase for it
    assert greens == ["S", "EW", "EW-left"]


# --- demand -----------------------------------------------------------------------------------
def test_turning_flows_sum_to_arm_inflow() -> None:
    inflow = {"n": 500.0, "e": 300.0, "s": 450.0, "w": 0.0}
    turning = {
        "n": {"l": 0.2, "s": 0.7, "r": 0.1},
        "e": {"s": 1.0},
        "s": {"l": 0.25, "s": 0.5, "r": 0.25},
    }
    sc = single_intersection(4, arm_flows=inflow, turning=turning, flow_kind="vehs_per_hour")
    per_arm: dict[str, float] = {}
    routes = {r.id: r for r in sc.routes}
    for f in sc.flows:
        arm = routes[f.route].edges[0].removesuffix("_t")
        per_arm[arm] = per_arm.get(arm, 0.0) + f.value
    assert per_arm == pytest.approx({"n": 500.0, "e": 300.0, "s": 450.0})
    assert routes["route_nw"].edges == ("n_t", "t_w")
    flows = {f.id: f for f in sc.flows}
    assert flows["flow_ne"].value == pytest.approx(100.0)


def test_grid_and_arterial_flows_sum_to_inflow() -> None:
    for sc, rates in (
        (arterial(3, main_inflow=900.0, side_inflow=120.0), {"ew": 900.0, "ns": 120.0}),
        (grid(2, 3, demand="turning", inflow=250.0), {"ew": 250.0, "ns": 250.0}),
        (grid(3, 2, demand="od", ew_inflow=400.0, ns_inflow=100.0), {"ew": 400.0, "ns": 100.0}),
    ):
        net = sc.network
        routes = {r.id: r for r in sc.routes}
        per_entry: dict[str, float] = {}
        for f in sc.flows:
            entry = routes[f.route].edges[0]
            per_entry[entry] = per_entry.get(entry, 0.0) + f.value
        for entry, total in per_entry.items():
            src = net.edge_from[net.edge_index[entry]]
            kind = "ew" if src.startswith(("left", "right")) else "ns"
            assert total == pytest.approx(rates[kind]), entry
        n_entries = sum(1 for e in net.edge_from if e.rstrip("0123456789") in ("left", "right"))
        assert len(per_entry) >= n_entries


def test_arterial_main_road_carries_most_traffic() -> None:
    sc = PRESETS["arterial4"]()
    routes = {r.id: r for r in sc.routes}
    through = sum(
        f.value
        for f in sc.flows
        if routes[f.route].edges[0] == "left0A0" and routes[f.route].edges[-1] == "D0right0"
    )
    side = sum(f.value for f in sc.flows if routes[f.route].edges[0] == "bottom1B0")
    assert through > 2 * side
    assert sc.network.lane_id_index["A0B0_1"] >= 0
    assert "A0B0_2" not in sc.network.lane_id_index
    assert "A0top0_1" not in sc.network.lane_id_index


def test_od_demand_is_seeded() -> None:
    def pairs(seed: int) -> set[tuple[str, ...]]:
        return {r.edges for r in grid(3, 3, seed=seed).routes}

    assert pairs(1) == pairs(1)
    assert pairs(1) != pairs(2)


def test_flow_kinds_scale_and_profile() -> None:
    movement = {"ns": 360.0, "we": 720.0}
    prob = single_intersection(4, movement_flows=movement, flow_kind="probability")
    assert {f.id: f.value for f in prob.flows} == pytest.approx({"flow_ns": 0.1, "flow_we": 0.2})
    period = single_intersection(4, movement_flows=movement, flow_kind="period", scale=2.0)
    assert {f.id: f.value for f in period.flows} == pytest.approx({"flow_ns": 5.0, "flow_we": 2.5})
    prof = ((0.0, 0.5), (1800.0, 1.5))
    sc = single_intersection(4, movement_flows=movement, profile=prof, seconds=7200)
    assert all(f.profile == prof and f.kind == "poisson" and f.end == 7200 for f in sc.flows)
    assert sc.end == 7200


def test_presets_take_overrides() -> None:
    sc = PRESETS["grid4x4"](scale=0.5, seconds=600, lanes=2)
    assert sc.end == 600
    assert "A0B0_2" not in sc.network.lane_id_index
    assert PRESETS["single4"](lanes_per_arm=2).network.num_lanes == 16
    assert PRESETS["sumo_rl_single"](seconds=1000).end == 1000
    with pytest.raises(ValueError, match="preset"):
        build("nope")


# --- sumo-rl's single intersection ------------------------------------------------------------
@pytest.fixture(scope="module")
def sumo_rl_nets() -> Path:
    """sumo-rl's ``nets`` folder (``SUMO_RL_NETS``, else fetched and cached on first use)."""
    if os.environ.get("SUMO_RL_NETS"):
        return Path(os.environ["SUMO_RL_NETS"])
    try:
        return sumo_rl_nets_dir()
    except RuntimeError as exc:  # no sumo-rl wheel reachable: nothing to compare with
        pytest.skip(f"sumo-rl's networks are not available: {exc}")


def _shape(text: str) -> np.ndarray:
    return np.array([[float(v) for v in p.split(",")] for p in text.split()])


def test_sumo_rl_preset_structure() -> None:
    sc = sumo_rl_single_intersection()
    net = sc.network
    assert net.edge_ids == ("n_t", "t_e", "t_s", "w_t")
    assert [p.state for p in net.signals[0].phases] == ["GGrr", "yyrr", "rrGG", "rryy"]
    assert [p.duration for p in net.signals[0].phases] == [42, 2, 42, 2]
    assert {f.id: f.value for f in sc.flows} == {"flow_ns": 0.2, "flow_we": 0.5}
    assert sc.teleport_time <= 0 and sc.end == 20000
    with pytest.raises(ValueError, match="scale"):
        sumo_rl_single_intersection(scale=3.0)


def test_sumo_rl_preset_matches_the_shipped_files(sumo_rl_nets: Path) -> None:
    folder = sumo_rl_nets / "single-intersection"
    root = ET.parse(folder / "single-intersection.net.xml").getroot()
    net = sumo_rl_single_intersection().network
    internal = {}
    for edge in root.iter("edge"):
        for lane in edge.iter("lane"):
            if edge.get("function") == "internal":
                internal[lane.get("id")] = lane
                continue
            i = net.lane_id_index[lane.get("id")]
            assert net.edge_ids[net.lane_edge[i]] == edge.get("id")
            assert net.lane_index[i] == int(lane.get("index"))
            assert net.lane_length[i] == pytest.approx(float(lane.get("length")))
            assert net.lane_speed[i] == pytest.approx(float(lane.get("speed")))
            assert net.lane_shapes[i] == pytest.approx(_shape(lane.get("shape")))
        if edge.get("function") != "internal":
            k = net.edge_index[edge.get("id")]
            assert (net.edge_from[k], net.edge_to[k]) == (edge.get("from"), edge.get("to"))
    n_external = sum(1 for e in root.iter("edge") if e.get("function") != "internal")
    assert net.num_edges == n_external
    conns = [c for c in root.iter("connection") if c.get("tl")]
    assert net.num_connections == len(conns)
    for conn in conns:
        link = int(conn.get("linkIndex"))
        (c,) = net.signal_links[0][link]
        assert net.lane_ids[net.conn_from[c]] == f"{conn.get('from')}_{conn.get('fromLane')}"
        assert net.lane_ids[net.conn_to[c]] == f"{conn.get('to')}_{conn.get('toLane')}"
        assert net.conn_dir[c] == conn.get("dir")
        via = internal[conn.get("via")]
        assert net.conn_length[c] == pytest.approx(float(via.get("length")))
        assert net.conn_speed[c] == pytest.approx(float(via.get("speed")))
        assert net.conn_shapes[c] == pytest.approx(_shape(via.get("shape")))
    junction = next(j for j in root.iter("junction") if j.get("id") == "t")
    n_links = net.signals[0].num_links
    for req in junction.iter("request"):
        c = net.signal_links[0][int(req.get("index"))][0]
        response = req.get("response")
        expected = {
            net.signal_links[0][n_links - 1 - p][0] for p, b in enumerate(response) if b == "1"
        }
        assert set(net.conn_foes[c]) == expected
    assert net.junction_shapes["t"] == pytest.approx(_shape(junction.get("shape")))
    tl = root.find("tlLogic")
    assert [(float(p.get("duration")), p.get("state")) for p in tl.iter("phase")] == [
        (p.duration, p.state) for p in net.signals[0].phases
    ]
    for node in root.iter("junction"):
        assert net.nodes[node.get("id")] == pytest.approx(
            (float(node.get("x")), float(node.get("y")))
        )

    sc = sumo_rl_single_intersection()
    rou = ET.parse(folder / "single-intersection.rou.xml").getroot()
    assert {r.get("id"): tuple(r.get("edges").split()) for r in rou.iter("route")} == {
        r.id: r.edges for r in sc.routes
    }
    flows = {f.id: f for f in sc.flows}
    for f in rou.iter("flow"):
        mine = flows[f.get("id")]
        assert mine.route == f.get("route")
        assert (mine.begin, mine.end) == (float(f.get("begin")), float(f.get("end")))
        assert mine.kind == "probability" and mine.value == float(f.get("probability"))
        assert mine.depart_speed == f.get("departSpeed")
        assert mine.depart_lane == f.get("departLane")


def test_grid_links_match_resco_grid4x4(sumo_rl_nets: Path) -> None:
    path = sumo_rl_nets / "RESCO" / "grid4x4" / "grid4x4.net.xml"
    root = ET.parse(path).getroot()
    internal = {lane.get("id"): lane for lane in root.iter("lane")}
    net = PRESETS["grid4x4"]().network
    assert {e for e in net.edge_ids} == {
        e.get("id") for e in root.iter("edge") if e.get("function") != "internal"
    }
    signal = [s.id for s in net.signals].index("B1")
    for conn in root.iter("connection"):
        if conn.get("tl") != "B1":
            continue
        (c,) = net.signal_links[signal][int(conn.get("linkIndex"))]
        assert net.lane_ids[net.conn_from[c]] == f"{conn.get('from')}_{conn.get('fromLane')}"
        assert net.lane_ids[net.conn_to[c]] == f"{conn.get('to')}_{conn.get('toLane')}"
        assert net.conn_dir[c] == conn.get("dir")
        via = internal[conn.get("via")]
        assert net.conn_speed[c] == pytest.approx(float(via.get("speed")))
    for edge in root.iter("edge"):
        if edge.get("function") == "internal":
            continue
        for lane in edge.iter("lane"):
            i = net.lane_id_index[lane.get("id")]
            assert net.lane_length[i] == pytest.approx(float(lane.get("length")))
            assert net.lane_shapes[i] == pytest.approx(_shape(lane.get("shape")))


# --- bad inputs -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: single_intersection(length=-5.0), "length"),
        (lambda: single_intersection([Arm("n", length=-1), "e", "s", "w"]), r"arms\[n\]\.length"),
        (lambda: single_intersection(lanes_per_arm=0), "lanes_per_arm"),
        (lambda: single_intersection(speed=0), "speed"),
        (lambda: single_intersection(arms=5), "arms"),
        (lambda: single_intersection(arms=("n", "x", "s")), "arms"),
        (lambda: single_intersection(arms=("n", "n", "s", "w")), "arms"),
        (
            lambda: single_intersection([Arm("n", in_lanes=1, lanes=("x",)), "e", "s", "w"]),
            r"arms\[n\]\.lanes",
        ),
        (
            lambda: single_intersection([Arm("n", in_lanes=2, lanes=("rs",)), "e", "s", "w"]),
            r"arms\[n\]\.lanes",
        ),
        (lambda: Arm("s", 0, 0), r"arms\[s\]\.in_lanes"),
        (
            lambda: single_intersection([Arm("e", lanes=("rs", "l")), "s", "w"]),
            r"arms\[e\]\.lanes",
        ),
        (lambda: single_intersection(turning={"n": {"u": 1.0}}), r"turning\[n\]"),
        (lambda: single_intersection(turning={"n": {"l": 0.5, "s": 0.4}}), r"turning\[n\]"),
        (lambda: single_intersection(3, turning={"s": {"s": 1.0}}), r"turning\[s\]"),
        (lambda: single_intersection(arm_flows={"x": 100.0}), "arm_flows"),
        (lambda: single_intersection(arm_flows={"n": -1.0}), r"arm_flows\[n\]"),
        (lambda: single_intersection(movement_flows={"nn": 100.0}), "movement_flows"),
        (
            lambda: single_intersection(movement_flows={"ns": 1}, arm_flows={"n": 1}),
            "movement_flows",
        ),
        (
            lambda: single_intersection(movement_flows={"ns": 4000.0}, flow_kind="probability"),
            "flow_kind",
        ),
        (lambda: single_intersection(flow_kind="burst"), "flow_kind"),
        (lambda: single_intersection(profile=((10.0, 1.0), (5.0, 2.0))), "profile"),
        (lambda: single_intersection(scale=-1.0), "scale"),
        (lambda: single_intersection(seconds=0), "seconds"),
        (lambda: single_intersection(length=10.0), "length"),
        (lambda: SignalTiming(yellow=-1.0), r"timing\.yellow"),
        (lambda: SignalTiming(green=0.0), r"timing\.green"),
        (lambda: grid(0, 2), "rows"),
        (lambda: grid(2, 2, lanes=0), "lanes"),
        (lambda: grid(2, 2, spacing=20.0), "spacing"),
        (lambda: grid(2, 2, attach=-3.0), "attach"),
        (lambda: grid(2, 2, demand="magic"), "demand"),
        (lambda: grid(2, 2, moves=("r", "s")), "moves"),
        (lambda: grid(2, 2, demand="turning", turning={"s": 0.9}), "turning"),
        (lambda: arterial(0), "n"),
        (lambda: arterial(2, rows=3), "rows"),
    ],
)
def test_bad_inputs_name_the_field(call, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        call()


def test_conn_state_is_a_known_code() -> None:
    net = grid(2, 2).network
    assert all(0 <= s < len(LINK_STATES) for s in net.conn_state)
