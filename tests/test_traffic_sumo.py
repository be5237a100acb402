"""Tests of the SUMO importer: a hand-written network, the sumo-rl networks, broken files."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from envs.traffic import nets as nets_mod
from envs.traffic.nets import SUMO_RL_NETS, resco_scenario
from envs.traffic.network import LINK_STATES, MAJOR, MINOR, OFF
from envs.traffic.sumo_import import (
    load_sumo,
    load_sumo_network,
    read_sumocfg,
)

sumolib = pytest.importorskip("sumolib", reason="the SUMO importer needs sumolib (extra `sumo`)")


# A traffic light C (W->E straight, W->N left split by an internal junction, S->E right, S->N
# straight, S->E bike lane) and a priority junction E where the minor road M yields to C->E.
# WC_0 is a sidewalk and CE_1 a bike lane; SUMO 1.28 loads and runs this network.
NET_XML = """<?xml version="1.0" encoding="UTF-8"?>
<net version="1.20" junctionCornerDetail="5" limitTurnSpeed="5.50">
    <location netOffset="0.00,0.00" convBoundary="-100.00,-100.00,200.00,100.00" origBoundary="-100.00,-100.00,200.00,100.00" projParameter="!"/>

    <edge id=":C_0" function="internal">
        <lane id=":C_0_0" index="0" speed="13.89" length="14.40" shape="-7.20,-1.60 7.20,-1.60"/>
    </edge>
    <edge id=":C_1" function="internal">
        <lane id=":C_1_0" index="0" speed="8.00" length="6.00" shape="-7.20,-1.60 -1.20,-1.20"/>
    </edge>
    <edge id=":C_2" function="internal">
        <lane id=":C_2_0" index="0" speed="6.50" length="7.00" shape="1.60,-7.20 7.20,-1.60"/>
    </edge>
    <edge id=":C_3" function="internal">
        <lane id=":C_3_0" index="0" speed="6.50" length="8.00" shape="1.60,-7.20 7.20,-4.80"/>
    </edge>
    <edge id=":C_4" function="internal">
        <lane id=":C_4_0" index="0" speed="13.89" length="14.40" shape="1.60,-7.20 1.60,7.20"/>
    </edge>
    <edge id=":C_5" function="internal">
        <lane id=":C_5_0" index="0" speed="7.50" length="5.50" shape="-1.20,-1.20 -1.60,7.20"/>
    </edge>
    <edge id=":E_0" function="internal">
        <lane id=":E_0_0" index="0" speed="13.89" length="5.00" shape="97.50,-1.60 102.50,-1.60"/>
    </edge>
    <edge id=":E_1" function="internal">
        <lane id=":E_1_0" index="0" speed="13.89" length="5.00" shape="97.50,-4.80 102.50,-1.60"/>
    </edge>
    <edge id=":E_2" function="internal">
        <lane id=":E_2_0" index="0" speed="6.00" length="6.00" shape="98.40,3.00 102.50,-1.60"/>
    </edge>

    <edge id="CE" from="C" to="E" priority="2">
        <lane id="CE_0" index="0" disallow="pedestrian bicycle" speed="13.89" length="90.30" shape="7.20,-1.60 97.50,-1.60"/>
        <lane id="CE_1" index="1" allow="bicycle" speed="13.89" length="90.30" shape="7.20,-4.80 97.50,-4.80"/>
    </edge>
    <edge id="CN" from="C" to="N" priority="1">
        <lane id="CN_0" index="0" speed="13.89" length="92.80" shape="-1.60,7.20 -1.60,100.00"/>
    </edge>
    <edge id="EX" from="E" to="X" priority="2">
        <lane id="EX_0" index="0" speed="13.89" length="97.50" shape="102.50,-1.60 200.00,-1.60"/>
    </edge>
    <edge id="ME" from="M" to="E" priority="1">
        <lane id="ME_0" index="0" speed="8.33" length="97.00" shape="98.40,100.00 98.40,3.00"/>
    </edge>
    <edge id="SC" from="S" to="C" priority="1">
        <lane id="SC_0" index="0" allow="passenger bus bicycle" speed="13.89" length="92.80" shape="1.60,-100.00 1.60,-7.20"/>
    </edge>
    <edge id="WC" from="W" to="C" priority="2">
        <lane id="WC_0" index="0" allow="pedestrian" speed="2.00" length="92.80" width="2.00" shape="-100.00,-5.60 -7.20,-5.60"/>
        <lane id="WC_1" index="1" disallow="pedestrian" speed="13.89" length="92.80" shape="-100.00,-1.60 -7.20,-1.60"/>
    </edge>

    <tlLogic id="C" type="actuated" programID="0" offset="0">
        <phase duration="30" state="GGrrr" minDur="30" maxDur="30"/>
        <phase duration="3"  state="yyrrr"/>
        <phase duration="30" state="rrGGG" minDur="30" maxDur="30"/>
        <phase duration="3"  state="rryyy"/>
    </tlLogic>

    <junction id="C" type="traffic_light" x="0.00" y="0.00" incLanes="WC_0 WC_1 SC_0" intLanes=":C_0_0 :C_1_0 :C_2_0 :C_3_0 :C_4_0 :C_5_0" shape="-7.20,-7.20 7.20,-7.20 7.20,7.20 -7.20,7.20">
        <request index="0" response="00000" foes="11100" cont="0"/>
        <request index="1" response="00000" foes="10000" cont="1"/>
        <request index="2" response="00001" foes="00001" cont="0"/>
        <request index="3" response="00001" foes="00001" cont="0"/>
        <request index="4" response="00011" foes="00011" cont="0"/>
    </junction>
    <junction id="E" type="priority" x="100.00" y="0.00" incLanes="CE_0 CE_1 ME_0" intLanes=":E_0_0 :E_1_0 :E_2_0" shape="97.50,-6.40 102.50,-6.40 102.50,3.00 97.50,3.00">
        <request index="0" response="000" foes="100" cont="0"/>
        <request index="1" response="000" foes="100" cont="0"/>
        <request index="2" response="011" foes="011" cont="0"/>
    </junction>
    <junction id="M" type="dead_end" x="100.00" y="100.00" incLanes="" intLanes="" shape="96.80,100.00 100.00,100.00"/>
    <junction id="N" type="dead_end" x="0.00" y="100.00" incLanes="CN_0" intLanes="" shape="0.00,100.00 -3.20,100.00"/>
    <junction id="S" type="dead_end" x="0.00" y="-100.00" incLanes="" intLanes="" shape="0.00,-100.00 3.20,-100.00"/>
    <junction id="W" type="dead_end" x="-100.00" y="0.00" incLanes="" intLanes="" shape="-100.00,0.00 -100.00,-6.40"/>
    <junction id="X" type="dead_end" x="200.00" y="0.00" incLanes="EX_0" intLanes="" shape="200.00,-3.20 200.00,0.00"/>
    <junction id=":C_5_0" type="internal" x="-1.20" y="-1.20" incLanes=":C_1_0 SC_0" intLanes=":C_4_0"/>

    <connection from="CE" to="EX" fromLane="0" toLane="0" via=":E_0_0" dir="s" state="M"/>
    <connection from="CE" to="EX" fromLane="1" toLane="0" via=":E_1_0" dir="s" state="M"/>
    <connection from="ME" to="EX" fromLane="0" toLane="0" via=":E_2_0" dir="r" state="m"/>
    <connection from="SC" to="CE" fromLane="0" toLane="0" via=":C_2_0" tl="C" linkIndex="2" dir="r" state="O"/>
    <connection from="SC" to="CE" fromLane="0" toLane="1" via=":C_3_0" tl="C" linkIndex="3" dir="r" state="O"/>
    <connection from="SC" to="CN" fromLane="0" toLane="0" via=":C_4_0" tl="C" linkIndex="4" dir="s" state="O"/>
    <connection from="WC" to="CE" fromLane="1" toLane="0" via=":C_0_0" tl="C" linkIndex="0" dir="s" state="O"/>
    <connection from="WC" to="CN" fromLane="1" toLane="0" via=":C_1_0" tl="C" linkIndex="1" dir="l" state="O"/>

    <connection from=":C_0" to="CE" fromLane="0" toLane="0" dir="s" state="M"/>
    <connection from=":C_1" to="CN" fromLane="0" toLane="0" via=":C_5_0" dir="l" state="m"/>
    <connection from=":C_5" to="CN" fromLane="0" toLane="0" dir="l" state="M"/>
    <connection from=":C_2" to="CE" fromLane="0" toLane="0" dir="r" state="M"/>
    <connection from=":C_3" to="CE" fromLane="0" toLane="1" dir="r" state="M"/>
    <connection from=":C_4" to="CN" fromLane="0" toLane="0" dir="s" state="M"/>
    <connection from=":E_0" to="EX" fromLane="0" toLane="0" dir="s" state="M"/>
    <connection from=":E_1" to="EX" fromLane="0" toLane="0" dir="s" state="M"/>
    <connection from=":E_2" to="EX" fromLane="0" toLane="0" dir="r" state="M"/>
</net>
"""

ROU_XML = """<routes>
    <vType id="car" accel="2.0" decel="4.0" sigma="0.3" length="4.5" minGap="2.0" maxSpeed="30" speedFactor="normc(1.1,0.2,0.2,2)"/>
    <vType id="bus" vClass="bus"/>
    <vType id="idm" carFollowModel="IDM" tau="1.5"/>
    <route id="r_we" edges="WC CE EX"/>
    <route id="r_sn" edges="SC CN"/>
    <flow id="f0" route="r_sn" begin="0" end="100" vehsPerHour="360" departSpeed="desired"/>
    <flow id="f2" route="r_we" begin="0" end="600" number="6"/>
    <vehicle id="v0" type="car" route="r_we" depart="5" departLane="best" departSpeed="max"/>
    <vehicle id="v1" depart="12.5"><route edges="ME EX"/></vehicle>
    <trip id="t0" type="bus" depart="20" from="SC" to="EX"/>
    <trip id="t1" depart="30" from="WC" to="CN" departLane="free"/>
    <flow id="f1" type="idm" from="WC" to="EX" begin="50" end="400" probability="0.1"/>
    <vehicle id="late" route="r_sn" depart="500"/>
</routes>
"""


def write(
    tmp_path: Path, net: str = NET_XML, rou: str | None = ROU_XML
) -> tuple[Path, Path | None]:
    net_file = tmp_path / "hand.net.xml"
    net_file.write_text(net)
    rou_file = None
    if rou is not None:
        rou_file = tmp_path / "hand.rou.xml"
        rou_file.write_text(rou)
    return net_file, rou_file


def _plain_network(tmp_path: Path):
    """The hand-written network without a test's additions, imported (from ``tmp_path/plain``)."""
    folder = tmp_path / "plain"
    folder.mkdir()
    return load_sumo_network(write(folder, rou=None)[0])


def conn_index(net, a: str, b: str) -> int:
    for c in range(net.num_connections):
        if (net.lane_ids[net.conn_from[c]], net.lane_ids[net.conn_to[c]]) == (a, b):
            return c
    raise KeyError((a, b))


@pytest.fixture
def hand(tmp_path):
    net_file, rou_file = write(tmp_path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*vClass 'bus'")
        return load_sumo(net_file, rou_file, begin=0, end=300)


# --- hand-written network --------------------------------------------------------------------


def test_lanes_and_edges_for_passenger_cars(hand):
    net = hand.network
    assert set(net.edge_ids) == {"WC", "SC", "CE", "CN", "ME", "EX"}
    # the sidewalk WC_0 and the bike lane CE_1 are dropped; lanes keep SUMO's index and name
    assert set(net.lane_ids) == {"WC_1", "SC_0", "CE_0", "CN_0", "ME_0", "EX_0"}
    wc1 = net.lane_id_index["WC_1"]
    assert net.lane_index[wc1] == 1 and net.edge_ids[net.lane_edge[wc1]] == "WC"
    assert net.lane_length[wc1] == pytest.approx(92.8)
    assert net.lane_speed[wc1] == pytest.approx(13.89)
    np.testing.assert_allclose(net.lane_shapes[wc1], [[-100.0, -1.6], [-7.2, -1.6]])
    assert net.edge_from[net.edge_index["ME"]] == "M" and net.edge_to[net.edge_index["ME"]] == "E"
    assert net.nodes["E"] == (100.0, 0.0)
    assert net.junction_shapes["C"].shape == (4, 2)
    assert net.name == "hand"


def test_connections_internal_chain_tls_and_states(hand):
    net = hand.network
    assert net.num_connections == 6  # the two connections onto / from the bike lane are dropped
    left = conn_index(net, "WC_1", "CN_0")
    # :C_1_0 (6 m, 8 m/s) continues through the internal junction into :C_5_0 (5.5 m, 7.5 m/s)
    assert net.conn_length[left] == pytest.approx(11.5)
    assert net.conn_speed[left] == pytest.approx(7.5)
    np.testing.assert_allclose(net.conn_shapes[left], [[-7.2, -1.6], [-1.2, -1.2], [-1.6, 7.2]])
    assert net.conn_dir[left] == "l"
    assert (net.conn_tls[left], net.conn_link[left]) == (0, 1)
    assert net.conn_link[conn_index(net, "SC_0", "CN_0")] == 4
    assert net.conn_state[left] == OFF  # the signalled connection's own state attribute "O"
    minor = conn_index(net, "ME_0", "EX_0")
    major = conn_index(net, "CE_0", "EX_0")
    assert net.conn_tls[minor] == -1 and net.conn_link[minor] == -1
    assert net.conn_state[minor] == MINOR and net.conn_state[major] == MAJOR
    assert net.conn_length[minor] == pytest.approx(6.0) and net.conn_speed[minor] == 6.0


def test_foes_follow_the_response_rows(hand):
    net = hand.network

    def foes(a, b):
        return {(net.lane_ids[net.conn_from[f]], net.lane_ids[net.conn_to[f]]) for f in
                net.conn_foes[conn_index(net, a, b)]}  # fmt: skip

    # junction C: link 4 (S->N) has response 00011 -> links 0 and 1; link 2 has 00001 -> link 0
    assert foes("SC_0", "CN_0") == {("WC_1", "CE_0"), ("WC_1", "CN_0")}
    assert foes("SC_0", "CE_0") == {("WC_1", "CE_0")}
    assert foes("WC_1", "CE_0") == set()
    # junction E: link 2 (M->X) yields to links 0 and 1; link 1 starts on the dropped bike lane
    assert foes("ME_0", "EX_0") == {("CE_0", "EX_0")}


def test_signal_program(hand):
    (sig,) = hand.network.signals
    assert sig.id == "C" and sig.num_links == 5 and sig.offset == 0.0
    assert [p.state for p in sig.phases] == ["GGrrr", "yyrrr", "rrGGG", "rryyy"]
    assert [p.duration for p in sig.phases] == [30, 3, 30, 3]
    assert (sig.phases[0].min_dur, sig.phases[0].max_dur) == (30.0, 30.0)
    assert sig.green_phases == (0, 2)
    assert hand.controlled_signals == (0,)


def test_vehicle_types(hand):
    vt = hand.vtypes
    car = vt["car"]
    assert (car.length, car.min_gap, car.accel, car.decel, car.sigma) == (4.5, 2.0, 2.0, 4.0, 0.3)
    assert (car.max_speed, car.speed_factor, car.speed_dev) == (30.0, 1.1, 0.2)
    bus = vt["bus"]
    assert (bus.length, bus.accel, bus.decel, bus.speed_dev) == (12.0, 1.2, 4.0, 0.0)
    assert bus.max_speed == pytest.approx(100 / 3.6)
    assert vt["idm"].model == "idm" and vt["idm"].sigma == 0.0 and vt["idm"].tau == 1.5
    assert "DEFAULT_VEHTYPE" in vt


def test_vehicles_trips_and_flows(hand):
    assert (hand.begin, hand.end) == (0.0, 300.0)
    routes = {r.id: r.edges for r in hand.routes}
    veh = {v.id: v for v in hand.vehicles}
    assert list(veh) == ["v0", "v1", "t0", "t1"]  # "late" departs after the window
    assert (veh["v0"].route, veh["v0"].vtype) == ("r_we", "car")
    assert (veh["v0"].depart_lane, veh["v0"].depart_speed) == ("best", "max")
    # unset departLane / departSpeed take SUMO's defaults (best_prob, imported as best; avg)
    assert (veh["v1"].depart_lane, veh["v1"].depart_speed) == ("best", "avg")
    assert routes[veh["v1"].route] == ("ME", "EX")
    assert routes[veh["t0"].route] == ("SC", "CE", "EX") and veh["t0"].vtype == "bus"
    assert routes[veh["t1"].route] == ("WC", "CN") and veh["t1"].depart_lane == "free"
    flows = {f.id: f for f in hand.flows}
    f0, f1, f2 = flows["f0"], flows["f1"], flows["f2"]
    assert (f0.kind, f0.value, f0.begin, f0.end, f0.depart_speed) == (
        "vehs_per_hour", 360.0, 0.0, 100.0, "desired")  # fmt: skip
    assert (f1.kind, f1.value, f1.begin, f1.end, f1.vtype) == (
        "probability",
        0.1,
        50.0,
        300.0,
        "idm",
    )
    assert routes[f1.route] == ("WC", "CE", "EX")
    # 6 vehicles evenly over [0, 600) clipped to [0, 300): one every 100 s from 0
    assert (f2.kind, f2.value, f2.begin, f2.end) == ("period", 100.0, 0.0, 300.0)
    # trips and from/to flows are routed again at departure; routes given as edges are not,
    # even where a trip's free-flow path is a defined route's (f1's is r_we's)
    dyn = {r.id: r.at_departure for r in hand.routes}
    assert dyn[veh["t0"].route] and dyn[veh["t1"].route] and dyn[f1.route]
    assert not dyn["r_we"] and not dyn["r_sn"] and not dyn[veh["v1"].route]


def test_a_trip_with_vias_keeps_its_path(tmp_path):
    rou = '<routes><trip id="tv" depart="1" from="WC" to="EX" via="CE"/></routes>'
    sc = load_sumo(*write(tmp_path, rou=rou), begin=0, end=10)
    (route,) = sc.routes
    assert route.edges == ("WC", "CE", "EX") and not route.at_departure


def test_default_window_and_network_only(tmp_path):
    net_file, rou_file = write(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc = load_sumo(net_file, rou_file)
    assert (sc.begin, sc.end) == (0.0, 600.0)
    assert "late" in {v.id for v in sc.vehicles}
    bare = load_sumo(net_file, name="bare", teleport_time=-1)
    assert bare.teleport_time == -1
    assert (bare.begin, bare.end, bare.vehicles, bare.flows) == (0.0, 3600.0, (), ())
    assert bare.name == "bare" and bare.network.name == "bare"


def test_flow_clipping_keeps_the_phase_of_periodic_departures(tmp_path):
    rou = ROU_XML.replace('begin="0" end="600" number="6"', 'begin="10" end="600" period="40"')
    net_file, rou_file = write(tmp_path, rou=rou)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc = load_sumo(net_file, rou_file, begin=100, end=300)
    f2 = {f.id: f for f in sc.flows}["f2"]
    assert (f2.kind, f2.value, f2.begin, f2.end) == ("period", 40.0, 130.0, 300.0)
    assert "f0" not in {f.id for f in sc.flows}  # ends at 100


def test_distributions_are_resolved_deterministically(tmp_path):
    rou = """<routes>
    <vTypeDistribution id="mix">
        <vType id="small" length="4" probability="3"/>
        <vType id="big" vClass="truck" probability="1"/>
    </vTypeDistribution>
    <routeDistribution id="rd">
        <route id="a" edges="WC CE EX" probability="0.5"/>
        <route id="b" edges="WC CN" probability="0.5"/>
    </routeDistribution>
    <flow id="f" type="mix" route="rd" begin="0" end="100" vehsPerHour="800"/>
    <vehicle id="v0" type="mix" route="rd" depart="1"/>
    <vehicle id="v1" type="mix" route="rd" depart="2"/>
    <vehicle id="v2" type="mix" route="rd" depart="3"/>
    <vehicle id="v3" type="mix" route="rd" depart="4"/>
</routes>"""
    net_file, rou_file = write(tmp_path, rou=rou)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc = load_sumo(net_file, rou_file, begin=0, end=100)
    assert [v.vtype for v in sc.vehicles].count("small") == 3
    assert sorted(v.route for v in sc.vehicles) == ["a", "a", "b", "b"]
    flows = sorted((f.vtype, f.route, f.value) for f in sc.flows)
    assert flows == [("big", "a", 100.0), ("big", "b", 100.0), ("small", "a", 300.0),
                     ("small", "b", 300.0)]  # fmt: skip
    assert sc.vtypes["big"].length == 7.1


@pytest.mark.parametrize(
    ("sumo_state", "code"), [("m", "m"), ("w", "="), ("=", "m"), ("Z", "m"), ("s", "s")]
)
def test_unsignalled_state_mapping(tmp_path, sumo_state, code):
    net_xml = NET_XML.replace(
        'via=":E_2_0" dir="r" state="m"', f'via=":E_2_0" dir="r" state="{sumo_state}"'
    )
    net = load_sumo_network(write(tmp_path, net=net_xml, rou=None)[0])
    assert net.conn_state[conn_index(net, "ME_0", "EX_0")] == LINK_STATES.index(code)


def test_network_cache_returns_the_same_object(tmp_path):
    net_file, _ = write(tmp_path, rou=None)
    assert load_sumo_network(net_file) is load_sumo_network(net_file)


def test_sumocfg(tmp_path):
    net_file, rou_file = write(tmp_path)
    cfg = tmp_path / "hand.sumocfg"
    cfg.write_text(
        '<configuration><input><net-file value="hand.net.xml"/>'
        '<route-files value="hand.rou.xml"/></input>'
        '<time><begin value="10"/><end value="200"/></time></configuration>'
    )
    parsed = read_sumocfg(cfg)
    assert (parsed.net_file, parsed.route_files) == (net_file, (rou_file,))
    assert (parsed.begin, parsed.end) == (10.0, 200.0)


# --- broken files ----------------------------------------------------------------------------


NET_ERRORS = [
    ('<lane id="CE_0" index="0" disallow="pedestrian bicycle" speed="13.89" ',
     '<lane id="CE_0" index="0" disallow="pedestrian bicycle" ',
     r'<lane id="CE_0"> in <edge id=\'CE\'> is missing the required attribute \'speed\''),
    ('<junction id="E" type="priority"', '<junction id="E"',
     r"<junction id=\"E\">.*missing the required attribute 'type'"),
    ('via=":E_2_0" dir="r" state="m"', 'via=":E_2_0" dir="r" state="-"',
     r'<connection from="ME_0" to="EX_0">: link state \'-\''),
    ('type="actuated"', 'type="rail_crossing"', r'<tlLogic id="C" programID="0">.*rail_crossing'),
    ("</net>", "<bogus", "malformed XML"),
    ('<edge id="CE" from="C" to="E"', '<edge id="CE" from="C"',
     r'<edge id="CE"> is missing the required attribute \'to\''),
    ('<edge id="ME" from="M" to="E"', '<edge id="ME" to="E"',
     r'<edge id="ME"> is missing the required attribute \'from\''),
    ('<connection from="CE" to="EX" fromLane="1"', '<connection from="CE" to="EX" fromLane="7"',
     r'<connection from="CE" fromLane="7" to="EX" toLane="0">: edge \'CE\' has no lane 7'),
    ('<connection from="ME" to="EX"', '<connection from="ME" to="NOPE"',
     r'<connection from="ME" fromLane="0" to="NOPE" toLane="0">: unknown edge \'NOPE\''),
    ('speed="8.33" length="97.00"', 'speed="8.33" length="-5"',
     r"hand.net.xml: lane_length: lane 'ME_0' has length -5.0"),
    ('tl="C" linkIndex="4"', 'tl="C" linkIndex="99"', r"hand.net.xml: conn_link: .* uses link 99"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "match"), NET_ERRORS)
def test_broken_network(tmp_path, old, new, match):
    assert old in NET_XML
    _, message = _refused(tmp_path, NET_XML.replace(old, new), match)
    assert "hand.net.xml" in message


def _refused(tmp_path, net: str, match: str) -> tuple[Path, str]:
    """Importing the network ``net`` raises ``match``; returns the file and the message."""
    net_file, _ = write(tmp_path, net=net, rou=None)
    with pytest.raises(ValueError, match=match) as info:
        load_sumo_network(net_file)
    return net_file, str(info.value)


EDGE_CE = '<edge id="CE" from="C" to="E" priority="2">'
LANE_WC_1 = 'shape="-100.00,-1.60 -7.20,-1.60"/>'
PHASE_1 = '<phase duration="3"  state="yyrrr"/>'
CONN_ME = 'via=":E_2_0" dir="r" state="m"/>'
TYPED_CE = (EDGE_CE, EDGE_CE.replace(">", ' type="road">'))


def with_type(net: str, body: str) -> str:
    """The hand-written network with edge CE of type ``road`` defined as ``body``."""
    return net.replace(*TYPED_CE).replace("<edge", f'<type id="road">{body}</type><edge', 1)


NET_ELEMENT_ERRORS = [
    # not elements of a network file
    pytest.param("</net>", '<bogus id="x"/></net>',
                 r'<bogus id="x"> is not an element of SUMO network files \(a <net> holds '
                 r"<location>, ", id="unknown-top-level"),
    pytest.param(LANE_WC_1, LANE_WC_1[:-2] + "><frobnicate/></lane>",
                 r'<frobnicate> in <lane id="WC_1"> is not an element of SUMO network files \(a '
                 r"<lane> holds <neigh>, <stopOffset>, <param>\)", id="unknown-in-lane"),
    pytest.param('<request index="2" response="011"',
                 '<lane id="q" index="0" speed="1" length="1"/><request index="2" response="011"',
                 r'<lane id="q"> in <junction id="E"> is misplaced: a <junction> holds <request>, '
                 r"<param>", id="lane-in-junction"),
    pytest.param(PHASE_1, PHASE_1[:-2] + '><param key="k" value="v"/></phase>',
                 r'<param key="k"> in <phase state="yyrrr"> is misplaced: a <phase> holds no '
                 r"elements", id="param-in-phase"),
    pytest.param("</net>", '<busStop id="b" lane="CE_0" startPos="0" endPos="10"/></net>',
                 r'<busStop id="b"> is a SUMO additional-file element, which this importer does '
                 r"not support", id="additional"),
    pytest.param("</net>", '<crossing node="C" edges="CE"/></net>',
                 r"<crossing> is a netconvert input element", id="netconvert-input"),
    pytest.param("</net>", '<vehicle id="v" depart="0"/></net>',
                 r'<vehicle id="v"> is a SUMO demand element, which belongs in a route file',
                 id="demand"),
    # SUMO features that change how vehicles drive and are not imported
    pytest.param(PHASE_1, PHASE_1 + '<condition id="c" value="1"/>',
                 r'<tlLogic id="C" programID="0">: <condition id="c"> is not supported: programs '
                 r"with switching conditions", id="condition"),
    pytest.param(PHASE_1, PHASE_1 + '<function id="f" nArgs="0"><assignment id="a" check="1" '
                 'value="2"/></function>',
                 r'<tlLogic id="C" programID="0">: <function id="f"> is not supported',
                 id="function"),
    pytest.param(PHASE_1, PHASE_1.replace("/>", ' earlyTarget="c"/>'),
                 r'<phase state="yyrrr"> attribute earlyTarget is not supported', id="earlyTarget"),
    pytest.param(NET_XML, with_type(NET_XML, '<restriction vClass="passenger" speed="5"/>'),
                 r'<restriction vClass="passenger" speed="5"> in <type id="road">: '
                 r"vClass-specific speed limits are not supported \(edge 'CE' has this type",
                 id="restriction"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "match"), NET_ELEMENT_ERRORS)
def test_unknown_or_unsupported_net_element(tmp_path, old, new, match):
    assert old in NET_XML
    net_file, message = _refused(tmp_path, NET_XML.replace(old, new), match)
    assert message.startswith(f"{net_file}: ")


def network_arrays(net) -> tuple:
    signals = tuple((s.id, s.offset, s.phases) for s in net.signals)
    return (net.lane_ids, net.lane_speed.tolist(), net.lane_length.tolist(), net.conn_from.tolist(),
            net.conn_to.tolist(), net.conn_state.tolist(), net.conn_foes, signals)  # fmt: skip


def test_metadata_elements_import_unchanged(tmp_path):
    net = NET_XML.replace(
        "</net>",
        '<prohibition prohibitor="CE->EX" prohibited="ME->EX"/>'
        '<roundabout nodes="C E" edges="CE EX"/>'
        '<taz id="t" edges="CE"><tazSource id="CE" weight="1"/><tazSink id="EX" weight="1"/>'
        '<param key="a" value="b"/></taz><param key="k" value="v"/></net>',
    )
    net = net.replace(EDGE_CE, EDGE_CE + '<param key="origId" value="1"/>')
    net = net.replace(LANE_WC_1, LANE_WC_1[:-2] + '><param key="a" value="b"/></lane>')
    conflict = '<conflict from="CE" to="EX" fromLane="0" toLane="0" startPos="1" endPos="2"/>'
    net = net.replace(CONN_ME, f'{CONN_ME[:-2]}>{conflict}<param key="c" value="d"/></connection>')
    net = net.replace(
        'cont="0"/>\n    </junction>', 'cont="0"/><param key="j" value="k"/></junction>'
    )
    # speed limits and stop offsets for other vehicle classes
    lane_type = '<laneType index="0"><restriction vClass="bus" speed="4"/></laneType>'
    net = with_type(net, f'<restriction vClass="truck" speed="5"/><meso tauff="1.1"/>{lane_type}')
    net = net.replace(EDGE_CE, EDGE_CE + '<stopOffset value="3" vClasses="bicycle"/>')
    except_cars = '<stopOffset value="2" exceptions="passenger"/>'
    net = net.replace(LANE_WC_1, f"{LANE_WC_1[:-2]}>{except_cars}</lane>")
    net_file, _ = write(tmp_path, net=net, rou=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert network_arrays(load_sumo_network(net_file)) == network_arrays(
            _plain_network(tmp_path)
        )
        # a passenger speed limit on a type no imported edge has
        unused = with_type(NET_XML, '<restriction vClass="passenger" speed="5"/>')
        unused = unused.replace('type="road"', 'type="unused"')
        assert load_sumo_network(write(tmp_path, net=unused, rou=None)[0]).num_lanes == 6
        # the settings of a fixed-time program
        static = NET_XML.replace('type="actuated"', 'type="static"')
        static = static.replace(PHASE_1, PHASE_1 + '<param key="max-gap" value="4"/>')
        assert load_sumo_network(write(tmp_path, net=static, rou=None)[0]).num_signals == 1


def test_switching_conditions_of_a_program_not_run_are_ignored(tmp_path):
    second = '<tlLogic id="C" type="actuated" programID="1" offset="0">'
    net = NET_XML.replace(PHASE_1, PHASE_1 + '<condition id="c" value="1"/>')
    block = net[net.index("<tlLogic") : net.index("</tlLogic>") + len("</tlLogic>")]
    net = net.replace(block, block + block.replace('<condition id="c" value="1"/>', "").replace(
        '<tlLogic id="C" type="actuated" programID="0" offset="0">', second))  # fmt: skip
    (sig,) = load_sumo_network(write(tmp_path, net=net, rou=None)[0]).signals
    assert [p.state for p in sig.phases] == ["GGrrr", "yyrrr", "rrGGG", "rryyy"]


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (EDGE_CE, EDGE_CE + '<stopOffset value="3"/>',
         r'<stopOffset value="3"> in <edge id="CE"> ignored: vehicles of vClass \'passenger\' '
         r"stop at the lane end"),
        (LANE_WC_1, LANE_WC_1[:-2] + '><stopOffset value="1" vClasses="passenger bus"/></lane>',
         r'<stopOffset value="1" vClasses="passenger bus"> in <lane id="WC_1"> ignored'),
        (LANE_WC_1, LANE_WC_1[:-2] + '><neigh lane="CE_0"/></lane>',
         r'<neigh lane="CE_0"> in <lane id="WC_1"> ignored: overtaking through the opposite lane'),
        (PHASE_1, PHASE_1 + '<param key="max-gap" value="4"/><param key="detector-gap" value="2"/>',
         r'<tlLogic id="C" programID="0">: <param key="max-gap">, <param key="detector-gap"> '
         r"ignored: actuated switching is not simulated"),
    ],
)  # fmt: skip
def test_approximated_net_elements_warn(tmp_path, old, new, match):
    _imports_with_one_warning(tmp_path, old, new, match)


def _imports_with_one_warning(tmp_path, old, new, match):
    """The test network with ``old`` replaced by ``new`` imports whole, warning once."""
    assert old in NET_XML
    net_file, _ = write(tmp_path, net=NET_XML.replace(old, new), rou=None)
    with pytest.warns(UserWarning, match=match) as caught:
        net = load_sumo_network(net_file)
    assert net.num_lanes == 6 and net.num_connections == 6
    assert [str(w.message).startswith(f"{net_file}: ") for w in caught] == [True]


CONN_WC_CE = '<connection from="WC" to="CE" fromLane="1" toLane="0" via=":C_0_0"'
CONN_CE_EX = '<connection from="CE" to="EX" fromLane="0" toLane="0"'
LANE_CE_1 = '<lane id="CE_1" index="1" allow="bicycle"'
PHASE_0 = '<phase duration="30" state="GGrrr" minDur="30" maxDur="30"/>'

NET_ATTR_ERRORS = [
    pytest.param(EDGE_CE, EDGE_CE.replace(">", ' bidi="CN">'),
                 r'<edge id="CE"> attribute bidi="CN" is not supported: the edge shares its lanes '
                 r"with edge 'CN' in the opposite direction", id="bidi"),
    pytest.param(LANE_CE_1, '<lane id="CE_1" index="1" changeRight="bus"',
                 r'<lane id="CE_1"> in <edge id="CE"> attribute changeRight="bus" is not '
                 r"supported: it forbids vClass 'passenger' to change lanes", id="changeRight"),
    pytest.param(LANE_CE_1, '<lane id="CE_1" index="1" changeRight=""',
                 r'<lane id="CE_1"> in <edge id="CE"> attribute changeRight="" is not supported',
                 id="changeRight-none"),
    pytest.param(CONN_ME, CONN_ME.replace("/>", ' indirect="1"/>'),
                 r'<connection from="ME" fromLane="0" to="EX" toLane="0"> attribute indirect="1" '
                 r"is not supported: an indirect turn waits inside the junction", id="indirect"),
    pytest.param('tl="C" linkIndex="4"', 'tl="C" linkIndex="4" linkIndex2="2"',
                 r'<connection from="SC" fromLane="0" to="CN" toLane="0"> attribute '
                 r'linkIndex2="2" is not supported', id="linkIndex2"),
    pytest.param(CONN_ME, CONN_ME.replace("via=", 'type="slow" via='),
                 r'<restriction vClass="passenger" speed="5"> in <type id="slow">: '
                 r'vClass-specific speed limits are not supported \(<connection from="ME" '
                 r'fromLane="0" to="EX" toLane="0"> has this type', id="connection-type"),
    pytest.param(PHASE_1, PHASE_1.replace("/>", ' next="0"/>'),
                 r'<tlLogic id="C" programID="0">: <phase state="yyrrr"> \(phase 1\) attribute '
                 r'next="0" is not supported: phases run in program order \(phase 1 is followed '
                 r"by phase 2\)", id="next"),
    pytest.param(CONN_ME, CONN_ME.replace("/>", ' keepClear="maybe"/>'),
                 r'<connection from="ME" fromLane="0" to="EX" toLane="0">: keepClear=\'maybe\' '
                 r"is not a boolean", id="bad-boolean"),
]  # fmt: skip
SLOW_TYPE = '<type id="slow"><restriction vClass="passenger" speed="5"/></type>'


@pytest.mark.parametrize(("old", "new", "match"), NET_ATTR_ERRORS)
def test_unsupported_net_attribute(tmp_path, old, new, match):
    assert old in NET_XML
    net = NET_XML.replace(old, new)
    # CE_1 carries cars (a second lane to change to); the type "slow" exists
    net = net.replace(LANE_CE_1, '<lane id="CE_1" index="1"')
    net = net.replace("<edge", SLOW_TYPE + "<edge", 1)
    net_file, message = _refused(tmp_path, net, match)
    assert message.startswith(f"{net_file}: ")


def test_default_or_inert_net_attributes_import_unchanged(tmp_path):
    net = NET_XML.replace("<net ", '<net lefthand="false" tlsIgnoreInternalJunctionJam="1" ')
    net = net.replace(EDGE_CE, EDGE_CE.replace(">", ' bidi="" name="main" spreadType="center">'))
    # a lane change restriction towards no imported lane, one that allows cars, defaults
    net = net.replace(
        '<lane id="CE_0" index="0"',
        '<lane id="CE_0" index="0" changeLeft="bus" changeRight="" acceleration="0" '
        'friction="0.5" prefer="bus"',
    )
    net = net.replace(LANE_WC_1, LANE_WC_1.replace("/>", ' changeLeft="all passenger"/>'))
    # the sidewalk is not imported, so its acceleration lane and lane rules do not matter
    net = net.replace('allow="pedestrian" speed="2.00"',
                      'allow="pedestrian" acceleration="1" changeLeft="" speed="2.00"')  # fmt: skip
    # keepClear="0" towards CE_0->EX's foe ME->EX, which merges into the same lane
    net = net.replace(CONN_CE_EX, CONN_CE_EX + ' keepClear="0"')
    net = net.replace(
        CONN_ME,
        CONN_ME.replace(
            "/>",
            ' keepClear="true" pass="0" uncontrolled="0" indirect="no" linkIndex2="-1" '
            'visibility="4.50" contPos="-1" type=""/>',
        ),
    )
    net = net.replace(PHASE_1, PHASE_1.replace("/>", ' next="2" earliestEnd="-1"/>'))
    net = net.replace(PHASE_0, PHASE_0.replace("/>", ' next="1" vehext="2"/>'))
    net = net.replace('<phase duration="3"  state="rryyy"/>',
                      '<phase duration="3"  state="rryyy" next="0"/>')  # fmt: skip
    net_file, _ = write(tmp_path, net=net, rou=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = _plain_network(tmp_path)
        assert network_arrays(load_sumo_network(net_file)) == network_arrays(plain)
        # the right-hand network mirrored by netconvert imports as well
        lefthand = NET_XML.replace("<net ", '<net lefthand="true" ')
        assert network_arrays(load_sumo_network(write(tmp_path, net=lefthand, rou=None)[0])) == (
            network_arrays(plain)
        )


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (CONN_WC_CE, CONN_WC_CE.replace("via=", 'keepClear="0" via='),
         r'<connection from="WC" fromLane="1" to="CE" toLane="0"> attribute keepClear="0" '
         r"ignored: vehicles wait before the junction until there is room behind it"),
        ('<lane id="CE_0" index="0"', '<lane id="CE_0" index="0" acceleration="1"',
         r'<lane id="CE_0"> attribute acceleration="1" ignored: a motorway acceleration lane is '
         r"driven like any other lane"),
        (PHASE_0, PHASE_0.replace('minDur="30" maxDur="30"', 'minDur="10" maxDur="50"'),
         r'<tlLogic id="C" programID="0">: <phase state="GGrrr"> \(phase 0\) minDur="10" '
         r'maxDur="50" ignored: actuated switching is not simulated'),
        (PHASE_1, PHASE_1.replace("/>", ' latestEnd="40"/>'),
         r'<tlLogic id="C" programID="0">: <phase state="yyrrr"> \(phase 1\) latestEnd="40" '
         r"ignored: actuated switching is not simulated"),
    ],
)  # fmt: skip
def test_approximated_net_attributes_warn(tmp_path, old, new, match):
    _imports_with_one_warning(tmp_path, old, new, match)


def test_actuated_durations_are_kept_and_static_ones_ignored(tmp_path):
    varying = NET_XML.replace('minDur="30" maxDur="30"', 'minDur="10" maxDur="50"')
    with pytest.warns(UserWarning, match=r"\(and 1 more phases\) ignored: actuated"):
        (sig,) = load_sumo_network(write(tmp_path, net=varying, rou=None)[0]).signals
    assert (sig.phases[0].min_dur, sig.phases[0].max_dur) == (10.0, 50.0)
    static = varying.replace('type="actuated"', 'type="static"')
    static = static.replace(PHASE_1, PHASE_1.replace("/>", ' earliestEnd="5" latestEnd="9"/>'))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a static program runs its durations, as in SUMO
        (sig,) = load_sumo_network(write(tmp_path, net=static, rou=None)[0]).signals
    assert (sig.phases[0].min_dur, sig.phases[0].max_dur) == (None, None)


NETCONVERT_NODES = """<nodes>
    <node id="C" x="0" y="0" type="traffic_light"/>
    <node id="W" x="-100" y="0"/><node id="E" x="100" y="0"/>
    <node id="S" x="0" y="-100"/><node id="N" x="0" y="100"/>
</nodes>"""
NETCONVERT_EDGES = """<edges>
    <edge id="WC" from="W" to="C" numLanes="2" speed="13.89" priority="2"/>
    <edge id="CE" from="C" to="E" numLanes="2" speed="13.89" priority="2"/>
    <edge id="SC" from="S" to="C" speed="13.89" priority="1"/>
    <edge id="NC" from="N" to="C" speed="13.89" priority="1"/>
    <edge id="CN" from="C" to="N" speed="13.89" priority="1"/>
</edges>"""
NETCONVERT_CONNECTIONS = """<connections>
    <connection from="WC" to="CE" fromLane="0" toLane="0" uncontrolled="1" speed="5"/>
    <connection from="WC" to="CE" fromLane="1" toLane="1"/>
    <connection from="WC" to="CN" fromLane="1" toLane="0"/>
    <connection from="SC" to="CE" fromLane="0" toLane="0" pass="1"/>
    <connection from="SC" to="CN" fromLane="0" toLane="0"/>
    <connection from="NC" to="CE" fromLane="0" toLane="1"/>
</connections>"""


def test_connection_attributes_netconvert_applies_are_honoured(tmp_path):
    sumo = pytest.importorskip("sumo", reason="building a network needs netconvert")
    netconvert = Path(sumo.SUMO_HOME) / "bin" / "netconvert"
    if not netconvert.is_file():
        pytest.skip("netconvert is not installed")
    files = {"n.nod.xml": NETCONVERT_NODES, "n.edg.xml": NETCONVERT_EDGES,
             "n.con.xml": NETCONVERT_CONNECTIONS}  # fmt: skip
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    net_file = tmp_path / "built.net.xml"
    subprocess.run(
        [str(netconvert), "-n", "n.nod.xml", "-e", "n.edg.xml", "-x", "n.con.xml", "-o",
         net_file.name, "--no-turnarounds"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = load_sumo_network(net_file)
    # uncontrolled: not controlled by the light, a minor link that yields; speed: its path
    unc = conn_index(net, "WC_0", "CE_0")
    assert (net.conn_tls[unc], net.conn_link[unc], LINK_STATES[net.conn_state[unc]]) == (
        -1,
        -1,
        "m",
    )
    assert net.conn_foes[unc] and net.conn_speed[unc] == pytest.approx(5.0)
    # pass: never yields, although the straight SC->CN yields to WC->CE
    assert net.conn_foes[conn_index(net, "SC_0", "CE_0")] == ()
    assert net.conn_foes[conn_index(net, "SC_0", "CN_0")]
    assert net.conn_tls[conn_index(net, "SC_0", "CE_0")] == 0


ROUTE_ERRORS = [
    ('<route id="r_sn" edges="SC CN"/>', '<route id="r_sn" edges="SC NOPE"/>',
     r"route 'r_sn': unknown edge 'NOPE'"),
    ('<route id="r_sn" edges="SC CN"/>', '<route id="r_sn" edges="SC EX"/>',
     r"route 'r_sn': no connection from edge 'SC' to edge 'EX'"),
    ('<vehicle id="v1" depart="12.5">', '<vehicle id="v1">', r"<vehicle id='v1'> is missing .*'depart'"),
    ("</routes>", '<person id="p" depart="0"/></routes>', r"<person> is not supported"),
    ('<route edges="ME EX"/>', '<route edges="ME EX"/><stop lane="EX_0" duration="5"/>',
     r"<stop> inside <vehicle id=\"v1\"> is not supported"),
    ('from="SC" to="EX"', 'from="EX" to="SC"', r"<trip id='t0'>: no path from edge 'EX' to 'SC'"),
    ('type="car" route="r_we"', 'type="van" route="r_we"', r"unknown vehicle type 'van'"),
    ('departLane="best"', 'departPos="last"', r"<vehicle id='v0'>: departPos='last' is not supported"),
    ('departLane="best"', 'departLane="left"', r"departLane='left' is not supported"),
    ('departLane="best"', 'departLane="0"', r"<vehicle id='v0'>: departLane=0 is not a lane of edge 'WC'"),
    ('carFollowModel="IDM"', 'carFollowModel="W99"', r"<vType id='idm'>: carFollowModel='W99'"),
    ('vehsPerHour="360"', 'vehsPerHour="360" probability="0.1"', r"<flow id='f0'>: give only one"),
    ("</routes>", "", "malformed XML"),
    ('<route id="r_sn" edges="SC CN"/>', '<route id="r_sn" edges="SC CN"/><route id="r_sn" edges="ME EX"/>',
     r"<route id='r_sn'>: another route with the id 'r_sn' exists \(earlier in this file\)"),
    ('<vehicle id="v1" depart="12.5">', '<vehicle id="v0" depart="12.5">',
     r"<vehicle id='v0'>: another vehicle with the id 'v0' exists"),
    ('<trip id="t1"', '<trip id="v0"', r"<trip id='v0'>: another vehicle with the id 'v0' exists"),
    ('<flow id="f2"', '<flow id="f0"', r"<flow id='f0'>: another flow with the id 'f0' exists"),
    ('<vType id="bus" vClass="bus"/>', '<vType id="car" vClass="bus"/>',
     r"<vType id='car'>: another vehicle type with the id 'car' exists"),
    ('vehsPerHour="360"', 'vehsPerHour="-10"', r"<flow id='f0'>: vehsPerHour must be >= 0, got -10"),
    ('probability="0.1"', 'probability="1.5"', r"<flow id='f1'>: probability must be in \[0, 1\]"),
    ('vehsPerHour="360"', 'period="0"', r"<flow id='f0'>: period must be > 0, got 0"),
    ('vehsPerHour="360"', 'period="exp(-0.5)"', r"<flow id='f0'>: period='exp\(-0.5\)': the rate"),
    ('type="car" route="r_we"', 'type="car" route="r_we" speedFactor="0.3"',
     r"<vehicle id='v0'>: attribute 'speedFactor' is not supported; give it on the vehicle's <vType>"),
    ('<flow id="f2"', '<flow id="f2" departEdge="1"',
     r"<flow id='f2'>: attribute 'departEdge' is not supported"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "match"), ROUTE_ERRORS)
def test_broken_routes(tmp_path, old, new, match):
    assert old in ROU_XML
    net_file, rou_file = write(tmp_path, rou=ROU_XML.replace(old, new, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=match) as info:
            load_sumo(net_file, rou_file, begin=0, end=300)
    assert "hand.rou.xml" in str(info.value)


def test_duplicate_ids_across_route_files(tmp_path):
    net_file, rou_file = write(tmp_path)
    more = tmp_path / "more.rou.xml"
    more.write_text('<routes><route id="r_we" edges="ME EX"/></routes>')
    with pytest.raises(ValueError, match=r"more.rou.xml: <route id='r_we'>: another route .*hand"):
        load_sumo(net_file, [rou_file, more])


def test_arrival_edge_is_ignored_with_a_warning(tmp_path):
    rou = ROU_XML.replace('departLane="free"', 'departLane="free" arrivalEdge="1"')
    net_file, rou_file = write(tmp_path, rou=rou)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sc = load_sumo(net_file, rou_file, begin=0, end=300)
    assert "t1" in {v.id for v in sc.vehicles}
    assert any("hand.rou.xml: arrivalEdge is ignored" in str(w.message) for w in caught)


def test_window_without_demand_warns(tmp_path):
    rou = """<routes>
    <route id="r" edges="WC CE EX"/>
    <flow id="f" route="r" begin="1000" end="2000" period="5"/>
    <vehicle id="v" route="r" depart="1500"/>
</routes>"""
    net_file, rou_file = write(tmp_path, rou=rou)
    with pytest.warns(UserWarning) as caught:
        sc = load_sumo(net_file, rou_file, begin=0, end=500)
    assert (sc.vehicles, sc.flows) == ((), ())
    messages = [str(w.message) for w in caught]
    assert any(
        "hand.rou.xml: no vehicle departs in the window [0.0, 500.0) s; the demand covers "
        "[1000.0, 2000.0) s" in m
        for m in messages
    ), messages
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_sumo(net_file, rou_file, begin=1000, end=1600).vehicles) == 1


def test_missing_files(tmp_path):
    net_file, _ = write(tmp_path, rou=None)
    with pytest.raises(FileNotFoundError, match="nope.net.xml"):
        load_sumo(tmp_path / "nope.net.xml")
    with pytest.raises(FileNotFoundError, match="nope.rou.xml"):
        load_sumo(net_file, tmp_path / "nope.rou.xml")


def test_missing_sumolib_names_the_extra(tmp_path, monkeypatch):
    net_file, _ = write(tmp_path, rou=None)
    monkeypatch.setitem(sys.modules, "sumolib", None)
    with pytest.raises(ImportError, match=r'pip install "lepton-gym\[sumo\]"'):
        load_sumo_network(net_file)


# --- the sumo-rl networks --------------------------------------------------------------------


@pytest.fixture(scope="module")
def nets_dir() -> Path:
    try:
        return nets_mod.sumo_rl_nets_dir()
    except RuntimeError as exc:
        pytest.skip(f"the sumo-rl networks cannot be fetched: {exc}")


def sumolib_counts(net_file: Path) -> tuple[int, int, dict[str, int]]:
    """Passenger lanes, passenger connections and tls link counts, straight from sumolib."""
    net = sumolib.net.readNet(str(net_file), withInternal=True, withPrograms=True)
    lanes = [ln for e in net.getEdges(withInternal=False) if not e.getFunction()
             for ln in e.getLanes() if ln.allows("passenger")]  # fmt: skip
    ids = {ln.getID() for ln in lanes}
    conns = [c for ln in lanes for c in ln.getOutgoing()
             if c.getToLane().getID() in ids and c.allows("passenger")]  # fmt: skip
    links = {t.getID(): len(list(t.getPrograms().values())[-1].getPhases()[0].state)
             for t in net.getTrafficLights()}  # fmt: skip
    return len(lanes), len(conns), links


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n == "ingolstadt21" else n for n in SUMO_RL_NETS],
)
def test_sumo_rl_network_imports(nets_dir, name):
    cfg = read_sumocfg(nets_mod.sumocfg_path(name))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(departPos|vClass 'bus')")
        sc = resco_scenario(name)
    assert (sc.begin, sc.end) == (cfg.begin, cfg.end)
    assert sc.name == name and sc.network.num_signals >= 1
    assert sc.vehicles or sc.flows
    assert all(cfg.begin <= v.depart < cfg.end for v in sc.vehicles)
    net = sc.network
    lanes, conns, links = sumolib_counts(cfg.net_file)
    assert (net.num_lanes, net.num_connections) == (lanes, conns)
    for s in net.signals:
        assert s.num_links == links[s.id]
    assert (net.conn_length[net.conn_tls >= 0] > 0).all()
    assert len(sc.controlled_signals) >= 1


def test_foes_match_libsumo(nets_dir):
    libsumo = pytest.importorskip("libsumo", reason="cross-check against SUMO needs libsumo")
    net_file = read_sumocfg(nets_mod.sumocfg_path("cologne8")).net_file
    net = load_sumo_network(net_file)
    libsumo.start(["sumo", "-n", str(net_file), "--no-step-log", "--no-warnings"])
    try:
        for c in range(net.num_connections):
            a, b = net.lane_ids[net.conn_from[c]], net.lane_ids[net.conn_to[c]]
            mine = {net.lane_ids[net.conn_from[f]] for f in net.conn_foes[c]}
            # SUMO also lists internal lanes (vehicles already inside the junction)
            theirs = {x for x in libsumo.lane.getFoes(a, b) if x in net.lane_id_index}
            assert mine == theirs, (a, b)
    finally:
        libsumo.close()


def test_default_departure_options_are_sumos(tmp_path):
    """The importer's defaults for a missing departLane / departSpeed are SUMO's own."""
    sumo = pytest.importorskip("sumo", reason="reading SUMO's option defaults needs sumo")
    binary = Path(sumo.SUMO_HOME) / "bin" / "sumo"
    if not binary.is_file():
        pytest.skip("the sumo binary is not installed")
    template = tmp_path / "template.sumocfg"
    subprocess.run(
        [str(binary), "--save-template", str(template)],
        capture_output=True,
        check=True,
        env={**os.environ, "SUMO_HOME": str(sumo.SUMO_HOME)},
    )
    defaults = {el.tag: el.get("value") for el in ET.parse(template).iter()}
    assert defaults["default.departlane"] == "best_prob"  # imported as best (see below)
    assert defaults["default.departspeed"] == "avg"


def test_best_departure_lanes_match_libsumo(nets_dir):
    """SUMO's lane for every departure of cologne1 and grid4x4 is one of our best lanes."""
    libsumo = pytest.importorskip("libsumo", reason="cross-check against SUMO needs libsumo")
    from envs.traffic.scenario import TrafficScenario
    from envs.traffic.sim import best_lanes, compile_scenario

    for name in ("cologne1", "grid4x4"):
        cfg = read_sumocfg(nets_mod.sumocfg_path(name))
        net = load_sumo_network(cfg.net_file)
        compiled = compile_scenario(TrafficScenario(network=net))
        begin = int(cfg.begin or 0)
        files = ["-n", str(cfg.net_file), "-r", str(cfg.route_files[0])]
        libsumo.start(["sumo", *files, "-b", str(begin), "--no-step-log", "--no-warnings"])
        departures = 0
        try:
            while libsumo.simulation.getTime() < begin + 600:
                libsumo.simulationStep()
                for v in libsumo.simulation.getDepartedIDList():
                    edges = [net.edge_index[e] for e in libsumo.vehicle.getRoute(v)]
                    lane = libsumo.vehicle.getLaneIndex(v)
                    assert best_lanes(compiled, edges)[0] >> lane & 1, (name, v, lane)
                    departures += 1
        finally:
            libsumo.close()
        assert departures > 100


def test_unknown_network_name():
    with pytest.raises(ValueError, match="unknown sumo-rl network 'nope'"):
        resco_scenario("nope")


def test_nets_dir_reports_a_failed_download(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_GYM_CACHE", str(tmp_path))
    monkeypatch.setattr(nets_mod, "_installed_nets", lambda: None)

    def fail(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(nets_mod.subprocess, "run", fail)
    with pytest.raises(
        RuntimeError, match=r"(?s)No matching distribution.*pip install sumo-rl==1.4.5"
    ):
        nets_mod.sumo_rl_nets_dir()


def test_nets_dir_extracts_a_cached_wheel(tmp_path, monkeypatch):
    import zipfile

    monkeypatch.setenv("LEPTON_GYM_CACHE", str(tmp_path))
    monkeypatch.setattr(nets_mod, "_installed_nets", lambda: None)
    with zipfile.ZipFile(tmp_path / nets_mod._WHEEL, "w") as zf:
        zf.writestr("sumo_rl/nets/RESCO/grid4x4/grid4x4.sumocfg", "<configuration/>")
        zf.writestr("sumo_rl/env.py", "")
    nets = nets_mod.sumo_rl_nets_dir()
    assert nets == tmp_path / "sumo-rl-1.4.5" / "nets"
    assert (nets / "RESCO" / "grid4x4" / "grid4x4.sumocfg").is_file()
    assert not (nets.parent / "env.py").exists()


def test_trips_take_the_routes_sumo_finds_in_the_empty_network(nets_dir):
    """Trips are routed as SUMO's router does before any traffic: free-flow times with its
    penalties for links without priority and for a left turn's waiting point inside a
    junction (also at a signal). Without the penalties 105 of ingolstadt21's 1,129 and 31 of
    cologne8's 579 origin-destination pairs took another route than ``findRoute``."""
    libsumo = pytest.importorskip("libsumo", reason="cross-check against SUMO needs libsumo")

    net = resco_scenario("ingolstadt21").network
    waits = {
        (net.lane_ids[a], net.lane_ids[b]): bool(w)
        for a, b, w in zip(net.conn_from, net.conn_to, net.conn_waits, strict=True)
    }
    assert waits[("-174800513_2", "201201950#0_2")]  # a left turn
    assert not waits[("-174800513_1", "-201238718#1_1")]  # straight on at the same signal
    for name in ("ingolstadt21", "cologne8"):
        sc = resco_scenario(name)
        cfg = read_sumocfg(nets_mod.sumocfg_path(name))
        edges = {r.id: r.edges for r in sc.routes}
        ours = {}
        for d in sc.vehicles:
            e = edges[d.route]
            ours.setdefault((e[0], e[-1], d.vtype), e)
        files = ["-n", str(cfg.net_file), "-r", str(cfg.route_files[0])]
        libsumo.start(["sumo", *files, "--no-step-log", "--no-warnings"])
        try:
            same = sum(
                tuple(libsumo.simulation.findRoute(a, b, vType=vt).edges) == tuple(route)
                for (a, b, vt), route in ours.items()
            )
        finally:
            libsumo.close()
        assert same >= 0.99 * len(ours), (name, same, len(ours))
