"""Import SUMO networks (``.net.xml``) and demand (``.rou.xml``) as a :class:`TrafficScenario`.

The network is read with ``sumolib`` (the optional ``sumo`` extra); the junction rows that
``sumolib`` keeps only privately (``incLanes`` and the ``<request>`` rows) are read directly from
the XML in one extra pass, which also checks that every element is one a network file may hold
where it stands (:data:`NET_CHILDREN`), every element's required attributes and that every
connection's edges and lanes exist, so a broken file is reported by element rather than by a
bare ``KeyError`` or silently ignored. Demand files are plain XML and need nothing beyond the
standard library.

Mapping rules (SUMO → :mod:`envs.traffic.network` / :mod:`envs.traffic.scenario`):

- **Elements.** Those that change how vehicles drive and are not imported raise
  (``<restriction>`` speed limits for ``vclass``, switching conditions of a light's program),
  close approximations warn (``<stopOffset>``, ``<neigh>``, the ``<param>`` settings of an
  actuated program) and metadata (``<location>``, ``<type>``, ``<prohibition>``,
  ``<roundabout>``, ``<taz>``, ``<conflict>``, ``<param>``) is ignored; see
  :data:`NET_CHILDREN`. Elements unknown to network files raise, naming the file, the element
  and its parent.
- **Attributes.** Those that change how vehicles drive are checked on the imported edges,
  lanes and connections and in the program a light runs, and only where their value differs
  from SUMO's default (see :data:`NET_ATTRS`): an edge ``bidi``, a lane ``changeLeft`` or
  ``changeRight`` that forbids ``vclass`` to change to another imported lane, a connection
  ``indirect``/``linkIndex2`` or a ``type`` with a ``<restriction>`` for ``vclass``, and a
  phase ``next`` other than the following phase raise, naming the file, the element and the
  attribute with its value; a lane ``acceleration="1"``, a connection ``keepClear="0"`` with a
  foe towards another lane and the varying durations of an actuated program warn. What
  netconvert already applied to the lanes, internal lanes, ``<request>`` rows, states and
  phases (e.g. connection ``pass``, ``uncontrolled``, ``speed``, junction ``type``,
  ``lefthand``) is read from there, and names and geometry are ignored.
- **Edges and lanes.** Only normal edges become edges (internal, crossing, walking-area and
  connector edges do not). A lane is kept when its ``allow``/``disallow`` permits ``vclass``;
  an edge without such a lane is dropped. Lanes keep SUMO's index and name, so the rightmost
  kept lane of an edge whose sidewalk was dropped has index 1.
- **Connections.** Kept when both lanes are kept and the connection's own permissions allow
  ``vclass``. The path through the junction is the chain of internal lanes starting at ``via``
  (a chain has two lanes when an internal junction splits it): ``conn_length`` is the sum of
  their lengths, ``conn_speed`` their smallest speed limit, ``conn_shape`` their shapes joined.
  A connection without ``via`` (networks built without internal links) has length 0, the
  smaller speed limit of its two lanes and a straight shape.
- **Right of way.** A junction numbers its links by walking its ``incLanes`` in order and, for
  each lane, the lane's connections in file order (pedestrian links come after all vehicle
  links and are not counted). ``<request index=k response=...>`` belongs to link ``k``, and the
  response string is read right to left (its last character is link 0): ``conn_foes[c]`` are
  the kept connections whose link has a ``1`` in ``c``'s response. For a junction controlled
  by one traffic light this index equals the light's ``linkIndex``.
- **Unsignalled states** (``state`` of a connection without ``tl``): ``M``, ``m``, ``s``,
  ``o``, ``O`` are kept; SUMO's all-way stop ``w`` becomes ``=`` (this package's all-way stop);
  SUMO's ``=`` (right-before-left, equal priority, no stop) becomes ``m`` (minor: yield to
  the response's foes, which encode the right-before-left rule); zipper ``Z`` becomes ``m``;
  the signal states ``G``, ``g``, ``r``, ``y`` are kept and ``u`` (red-yellow) becomes ``r``.
  Dead-end ``-`` and anything else raise ``ValueError`` naming the connection.
- **Traffic lights.** Every ``<tlLogic>`` of type ``static``, ``actuated`` or
  ``delay_based`` (phases keep ``minDur``/``maxDur``; an actuated program runs each phase for
  its ``duration`` and warns when a phase could vary); ``NEMA`` programs are taken as their
  phase list with a warning and raise when they have no phases; other types raise. When a
  light has several programs the one SUMO runs by default, the last loaded, is used. Phase
  states map ``u`` to ``r`` and ``Y`` to ``y``. Lights that control no kept connection are
  dropped. A program with switching conditions (``<condition>``, ``<assignment>``,
  ``<function>``, ``earlyTarget``, ``finalTarget``) or a phase order changed by ``next``
  raises; the ``<param>`` settings of an ``actuated`` or ``delay_based`` program are ignored
  with a warning.
- **Vehicle types.** Unset parameters take SUMO's defaults for the ``vClass`` (as reported by
  SUMO 1.28, see :data:`VCLASS_DEFAULTS`). ``carFollowModel`` (attribute or nested
  ``<carFollowing-*>``) ``Krauss`` and ``IDM`` map directly; ``KraussOrig1``, ``KraussPS``,
  ``EIDM`` and ``IDMM`` map to the nearest of the two with a warning; others raise. IDM has no
  dawdling, so ``sigma`` is 0 for it. ``speedFactor`` may be a number or
  ``norm(mean, dev)``/``normc(mean, dev[, min, max])``.
- **Demand.** ``<route>``, ``<vehicle>`` (``route`` attribute or nested ``<route>``),
  ``<trip from to [via]>`` and ``<flow>`` (``vehsPerHour``, ``period`` including
  ``exp(rate)``, ``probability``, ``number``; with a route or ``from``/``to``). Trips and
  ``from``/``to`` flows are routed by the fastest free-flow path over the imported
  (``vclass``) network, at the speed limits capped by the type's ``maxSpeed``, with SUMO's
  routing penalties (``--weights.minor-penalty`` 1.5 s for an unsignalled link without
  priority and for a waiting point without priority inside a junction,
  ``--weights.turnaround-penalty`` 5 s for an unsignalled turnaround): the routes SUMO's
  ``findRoute`` gives in the empty network. Each vehicle of a trip or flow without ``via`` is
  routed again when it departs, on the travel times of that moment, as SUMO routes trips
  (``Route.at_departure``).
  ``<vTypeDistribution>``/``<routeDistribution>`` are resolved without randomness: vehicles
  are assigned to members in proportion to the probabilities (largest deficit first) and
  flows are split into one flow per member with the rate scaled by its probability.
  Missing ``departLane``/``departSpeed`` take SUMO 1.28's defaults (its options
  ``--default.departlane best_prob`` and ``--default.departspeed avg``): ``best``, which
  places the vehicles exactly as SUMO's ``best_prob`` does on the RESCO networks, and
  ``avg``; ``allowed`` becomes ``random`` (only allowed lanes are imported). ``departPos``
  ``base`` is the only exact position; ``random``, ``free`` and ``random_free`` are inserted
  at the lane start with one warning per file. Vehicles are kept when
  ``begin <= depart < end``; flows are clipped to the window keeping the phase of evenly
  spaced departures. Only routes that a kept vehicle or flow uses are imported.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import os
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from envs.traffic.network import LINK_STATES, Network, Phase, SignalProgram
from envs.traffic.scenario import (
    Departure,
    Flow,
    Route,
    SignalSettings,
    TrafficScenario,
    VehicleType,
)

PathLike = str | os.PathLike
RouteFiles = PathLike | Sequence[PathLike] | None

_INSTALL_HINT = 'run `pip install "lepton-gym[sumo]"` (or `pip install sumolib==1.28.0`)'

CONN_STATES = {
    "M": "M",
    "m": "m",
    "s": "s",
    "o": "o",
    "O": "O",
    "w": "=",
    "=": "m",
    "Z": "m",
    "G": "G",
    "g": "g",
    "r": "r",
    "y": "y",
    "Y": "y",
    "u": "r",
}
"""SUMO link state of a connection → this package's link state (see the module docstring)."""

PHASE_STATES = {"u": "r", "Y": "y"}
"""Phase-state characters SUMO has and this package does not, and their replacements."""

SIGNAL_TYPES = ("static", "actuated", "delay_based")

_KMH = 1.0 / 3.6
_CAR: dict[str, float] = {
    "length": 5.0,
    "min_gap": 2.5,
    "accel": 2.6,
    "decel": 4.5,
    "sigma": 0.5,
    "tau": 1.0,
    "max_speed": 200 * _KMH,
    "speed_dev": 0.1,
}
VCLASS_DEFAULTS: dict[str, dict[str, float]] = {
    "passenger": _CAR,
    "private": _CAR,
    "vip": _CAR,
    "hov": _CAR,
    "evehicle": _CAR,
    "custom1": _CAR,
    "custom2": _CAR,
    "taxi": {**_CAR, "speed_dev": 0.05},
    "delivery": {**_CAR, "length": 6.5, "speed_dev": 0.05},
    "emergency": {**_CAR, "length": 6.5, "speed_dev": 0.0},
    "bus": {**_CAR, "length": 12.0, "accel": 1.2, "decel": 4.0, "max_speed": 100 * _KMH,
            "speed_dev": 0.0},
    "coach": {**_CAR, "length": 14.0, "accel": 2.0, "decel": 4.0, "max_speed": 100 * _KMH,
              "speed_dev": 0.05},
    "truck": {**_CAR, "length": 7.1, "accel": 1.3, "decel": 4.0, "max_speed": 130 * _KMH,
              "speed_dev": 0.05},
    "trailer": {**_CAR, "length": 16.5, "accel": 1.1, "decel": 4.0, "max_speed": 130 * _KMH,
                "speed_dev": 0.05},
    "motorcycle": {**_CAR, "length": 2.2, "accel": 6.0, "decel": 10.0},
    "moped": {**_CAR, "length": 2.1, "accel": 1.1, "decel": 7.0, "max_speed": 60 * _KMH},
}  # fmt: skip
"""SUMO's vehicle-type defaults per ``vClass`` (values SUMO 1.28 reports through ``libsumo``)."""

CAR_FOLLOW_MODELS = {"Krauss": "krauss", "IDM": "idm"}
CAR_FOLLOW_APPROX = {"KraussOrig1": "krauss", "KraussPS": "krauss", "EIDM": "idm", "IDMM": "idm"}

_VTYPE_ATTRS = {
    "length": "length",
    "minGap": "min_gap",
    "accel": "accel",
    "decel": "decel",
    "sigma": "sigma",
    "tau": "tau",
    "maxSpeed": "max_speed",
    "speedDev": "speed_dev",
}
_NET_REQUIRED = {
    "edge": ("id",),
    "lane": ("id", "index", "speed", "length"),
    "junction": ("id", "type", "x", "y", "incLanes", "intLanes"),
    "connection": ("from", "to", "fromLane", "toLane", "dir", "state"),
    "request": ("index", "response", "foes"),
    "tlLogic": ("id", "programID", "offset", "type"),
    "phase": ("duration", "state"),
    "restriction": ("vClass", "speed"),
    "stopOffset": ("value",),
    "neigh": ("lane",),
}
_NET_REQUIRED_NORMAL = {"edge": ("from", "to")}
"""Further required attributes of an element without ``function`` (a normal edge; internal,
crossing and walking-area edges have no end nodes)."""
NET_CHILDREN: dict[str, tuple[str, ...]] = {
    "net": ("location", "type", "edge", "tlLogic", "junction", "connection", "prohibition",
            "roundabout", "taz", "param"),
    "type": ("restriction", "meso", "laneType"),
    "laneType": ("restriction",),
    "edge": ("lane", "stopOffset", "param"),
    "lane": ("neigh", "stopOffset", "param"),
    "tlLogic": ("phase", "condition", "assignment", "function", "param"),
    "function": ("assignment",),
    "junction": ("request", "param"),
    "connection": ("conflict", "param"),
    "taz": ("tazSource", "tazSink", "param"),
}  # fmt: skip
"""The elements of a SUMO network file and the children each may hold (SUMO's ``net_file.xsd``,
plus ``<param>`` at the top level, where SUMO ignores it); elements not listed hold none. Any
other element raises. How each is read:

- **Used**: ``edge``, ``lane``, ``junction``, ``request``, ``connection``, ``tlLogic``, ``phase``.
- **Ignored** (no effect on the simulated vehicles): ``location`` (geo-projection), ``type`` with
  ``meso`` and ``laneType`` (netconvert's edge types, already applied to the lanes),
  ``prohibition`` (already encoded in the junctions' ``<request>`` rows), ``roundabout``,
  ``taz``/``tazSource``/``tazSink`` (only for ``fromTaz``/``toTaz`` demand, which is not
  supported), ``conflict`` (positions of conflicts inside a junction; foes are per connection
  here) and ``param``.
- **Checked where they apply**: ``restriction`` (a vClass-specific speed limit of an edge type)
  raises when an imported edge has the type and the restriction is for ``vclass``;
  ``stopOffset`` on an imported lane or its edge that applies to ``vclass`` is ignored with a
  warning (vehicles stop at the lane end); ``neigh`` (overtaking through the opposite lane) on
  an imported lane is ignored with a warning; in the program a light runs, ``condition``,
  ``assignment`` and ``function`` (and the phase attributes ``earlyTarget``/``finalTarget``)
  raise, and the ``param`` settings of an ``actuated`` or ``delay_based`` program are ignored
  with a warning (the program runs its phases for their durations).
"""
NET_ATTRS: dict[str, dict[str, str | None]] = {
    "edge": {"bidi": ""},
    "lane": {"changeLeft": None, "changeRight": None, "acceleration": "false"},
    "connection": {"keepClear": "true", "indirect": "false", "linkIndex2": "-1", "type": ""},
    "phase": dict.fromkeys(("next", "minDur", "maxDur", "earliestEnd", "latestEnd")),
}
"""The attributes of network elements that change how vehicles drive and that the import checks,
with SUMO's default (``None``: no fixed default, the value is checked where it applies). They are
read for normal edges, their lanes and the connections between them; the other attributes of
SUMO's ``net_file.xsd`` need no check. How each attribute is read:

- **Used**: ``<edge>`` ``id``, ``function``, ``from``, ``to``, ``type`` (for its
  ``<restriction>``); ``<lane>`` ``id``, ``index``,
  ``allow``, ``disallow``, ``speed``, ``length``, ``shape``, ``width`` (drawing);
  ``<junction>`` ``id``, ``x``, ``y``, ``incLanes``, ``shape`` (drawing); ``<request>``
  ``index``, ``response``, ``foes`` (for ``keepClear``); ``<connection>`` ``from``, ``to``, ``fromLane``,
  ``toLane``, ``via``, ``tl``, ``linkIndex``, ``dir``, ``state``, ``allow``, ``disallow``;
  ``<tlLogic>`` ``id``, ``programID``, ``type``, ``offset``; ``<phase>`` ``duration``,
  ``state``, ``minDur``/``maxDur`` (kept on the phases of actuated programs), ``name``.
- **Already applied** by netconvert to what is used, so not read again: the connection's
  ``pass`` and ``uncontrolled`` (its ``<request>`` row and ``state``; an uncontrolled
  connection has no ``tl``), ``speed``, ``length``, ``shape`` and ``contPos`` (its internal
  lanes; SUMO ignores them on a connection without ``via``); the edge's ``length`` and
  ``priority`` (its lanes' lengths and the junctions' rows); the lane's
  ``endOffset`` (lane and internal-lane geometry); the junction's ``type`` (the states of its
  connections and the phases of its light, e.g. ``s`` for ``traffic_light_right_on_red``),
  ``rightOfWay`` and ``roundabout``; the network's ``lefthand`` (geometry, lane indices and right
  of way describe left-hand traffic, and the simulator has no side-specific rule),
  ``limitTurnSpeed``, ``junctionHigherSpeed``, ``tlsIgnoreInternalJunctionJam`` and
  ``internalJunctionsVehicleWidth``.
- **Ignored** (no effect on the simulated vehicles): names, ids of origin and geometry
  (``name``, ``shape``, ``spreadType``, ``distance``, ``customShape``, ``outlineShape``,
  ``radius``, ``z``, the network's ``version`` and geometry options), the edge's
  ``routingType`` and ``crossingEdges``, the lane's ``type``, ``prefer`` and ``friction``
  (used only by SUMO's friction device, which imported demand does not have), the junction's
  ``fringe``, the network's ``checkLaneFoesAll``/``checkLaneFoesRoundabout`` (lateral
  conflicts; vehicles here have no lateral position), the connection's ``visibility`` (the
  yield rule here has no sight distance), ``changeLeft``/``changeRight`` (vehicles do not
  change lanes inside junctions) and ``cont`` of a ``<request>``; the ``<tlLogic>``
  ``nodes``/``pos`` and ``<phase>`` ``yellow``/``red``/``vehext`` (NEMA settings, see the
  NEMA rule).
- **Checked** (on imported edges, lanes and connections, and in the program a light runs):
  ``bidi`` (an edge sharing its lanes with the opposite direction) raises; ``changeLeft`` or
  ``changeRight`` raises when it forbids ``vclass`` to change towards another imported lane of
  the edge (higher index for left, lower for right); ``acceleration="1"`` (a motorway
  acceleration lane) is ignored with a warning; connection ``indirect="1"`` or ``linkIndex2``
  (a turn that waits inside the junction for a second link of the light) raises; connection
  ``type`` raises when the type has a ``<restriction>`` for ``vclass``; ``keepClear="0"`` is
  ignored with a warning when the connection has a foe towards another lane (SUMO lets such a
  vehicle wait inside the junction, blocking that foe; here it waits before the junction until
  there is room); ``next`` other than the following phase raises (phases run in order); in an
  ``actuated`` or ``delay_based`` program, ``minDur`` < ``maxDur`` and
  ``earliestEnd``/``latestEnd`` are ignored with a warning (with the program's ``<param>``
  settings). Boolean values follow SUMO (``1``/``true``/``yes``/``on``/``x`` and
  ``0``/``false``/``no``/``off``/``-``); anything else raises.
"""
_SWITCHING_TAGS = ("condition", "assignment", "function")
_SWITCHING_ATTRS = ("earlyTarget", "finalTarget")
_TRUE = ("1", "true", "yes", "on", "x")
_FALSE = ("0", "false", "no", "off", "-")
_OTHER_FILE_TAGS = {
    **dict.fromkeys(("vType", "vTypeDistribution", "route", "routeDistribution", "vehicle",
                     "trip", "flow", "person", "personFlow", "container", "containerFlow"),
                    "a SUMO demand element, which belongs in a route file"),
    **dict.fromkeys(("busStop", "trainStop", "containerStop", "chargingStation", "parkingArea",
                     "inductionLoop", "e1Detector", "laneAreaDetector", "e2Detector",
                     "entryExitDetector", "e3Detector", "instantInductionLoop",
                     "variableSpeedSign", "calibrator", "rerouter", "vaporizer", "routeProbe",
                     "WAUT", "poly", "poi", "railSignalConstraints"),
                    "a SUMO additional-file element, which this importer does not support"),
    **dict.fromkeys(("node", "crossing", "walkingArea", "split", "customShape", "delete"),
                    "a netconvert input element, which a built network does not hold (build "
                    "the network with netconvert)"),
}  # fmt: skip
"""SUMO elements of other file kinds, which a network file cannot hold."""
_DEMAND_TAGS = ("vType", "vTypeDistribution", "route", "routeDistribution", "vehicle", "trip",
                "flow")  # fmt: skip
_UNSUPPORTED_TRIP_ATTRS = {
    **dict.fromkeys(("fromJunction", "toJunction", "fromTaz", "toTaz", "fromXY", "toXY",
                     "fromLonLat", "toLonLat"), ""),
    "speedFactor": "; give it on the vehicle's <vType>",
    "departEdge": "; vehicles depart on the route's first edge",
}  # fmt: skip
"""Vehicle, trip and flow attributes that change where or how vehicles drive, and a hint."""
_IGNORED_ARRIVAL_ATTRS = ("arrivalEdge", "arrivalLane", "arrivalPos", "arrivalSpeed")
_ID_SPACES = {"vType": "vehicle type", "vTypeDistribution": "vehicle type", "route": "route",
              "routeDistribution": "route", "vehicle": "vehicle", "trip": "vehicle",
              "flow": "flow"}  # fmt: skip
"""The id namespace of each demand element; SUMO rejects a second definition of an id in one."""
_FLOW_END_DEFAULT = 86400.0
"""SUMO's default ``end`` of a flow without ``number`` (24 h)."""


def _sumolib() -> Any:
    try:
        import sumolib
    except ImportError as exc:
        raise ImportError(f"importing SUMO networks needs `sumolib`: {_INSTALL_HINT}") from exc
    return sumolib


def _existing(path: PathLike, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"SUMO {what} file not found: {p}")
    return p


def _parse_xml(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{path}: malformed XML: {exc}") from exc


_DESCRIBE_KEYS = {
    "connection": ("from", "fromLane", "to", "toLane"),
    "conflict": ("from", "fromLane", "to", "toLane"),
    "request": ("index",),
    "phase": ("state",),
    "tlLogic": ("id", "programID"),
    "param": ("key",),
    "restriction": ("vClass", "speed"),
    "stopOffset": ("value", "vClasses", "exceptions"),
    "neigh": ("lane",),
}
"""The attributes that identify an element in messages (others: ``id``)."""


def _describe(el: ET.Element) -> str:
    keys = _DESCRIBE_KEYS.get(el.tag, ("id",))
    shown = " ".join(f'{k}="{el.get(k)}"' for k in keys if el.get(k) is not None)
    return f"<{el.tag}{' ' + shown if shown else ''}>"


# --- network ---------------------------------------------------------------------------------


@dataclasses.dataclass
class _StopOffset:
    described: str
    value: float
    vclasses: list[str] | None
    exceptions: list[str]

    def applies(self, vclass: str) -> bool:
        if self.value <= 0 or vclass in self.exceptions:
            return False
        return self.vclasses is None or vclass in self.vclasses or "all" in self.vclasses


@dataclasses.dataclass
class _NetScan:
    junction_lanes: dict[str, list[str]]
    requests: dict[str, dict[int, str]]
    restrictions: dict[str, list[tuple[str, str]]] = dataclasses.field(default_factory=dict)
    """Edge type → (vClass, described ``<restriction>``) of its vClass-specific speed limits."""
    stop_offsets: dict[str, _StopOffset] = dataclasses.field(default_factory=dict)
    """Edge or lane id → its ``<stopOffset>``."""
    neighs: dict[str, str] = dataclasses.field(default_factory=dict)
    """Lane id → its ``<neigh>`` (the opposite-direction lane), described."""
    switching: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    """(light, programID) → the first switching condition of that program, described."""
    phases_seen: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    """(light, programID) → the number of its ``<phase>`` elements read so far."""
    foes: dict[str, dict[int, str]] = dataclasses.field(default_factory=dict)
    """Junction → link index → its ``<request>`` ``foes`` row."""
    attrs: dict[tuple[str, ...], tuple[str, dict[str, str]]] = dataclasses.field(
        default_factory=dict
    )
    """Element key → (the element described, its :data:`NET_ATTRS` values that differ from
    SUMO's default). Keys: ``("edge", id)``, ``("lane", id)``, ``("connection", from,
    fromLane, to, toLane)``, ``("phase", light, programID, index)``."""


def _check_placement(path: Path, parents: list[ET.Element]) -> None:
    """Raise unless a network file may hold the element ``parents[-1]`` inside its parent."""
    el, parent = parents[-1], parents[-2]
    allowed = NET_CHILDREN.get(parent.tag, ())
    if el.tag in allowed:
        return
    where = f"{path}: {_describe(el)}{' in ' + _describe(parent) if len(parents) > 2 else ''}"
    if el.tag in _OTHER_FILE_TAGS:
        raise ValueError(f"{where} is {_OTHER_FILE_TAGS[el.tag]}")
    holds = ", ".join(f"<{t}>" for t in allowed) or "no elements"
    if el.tag in NET_CHILDREN or any(el.tag in tags for tags in NET_CHILDREN.values()):
        raise ValueError(f"{where} is misplaced: a <{parent.tag}> holds {holds}")
    raise ValueError(
        f"{where} is not an element of SUMO network files (a <{parent.tag}> holds {holds})"
    )


def _bool(path: Path, described: str, attr: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise ValueError(f"{path}: {described}: {attr}={raw!r} is not a boolean (use 1 or 0)")


def _scan_attrs(path: Path, el: ET.Element, parents: list[ET.Element], scan: _NetScan) -> None:
    """Record the :data:`NET_ATTRS` of ``el`` whose value differs from SUMO's default."""
    checked = NET_ATTRS.get(el.tag)
    if checked is None:
        return
    owner = parents[-2]
    if el.tag == "edge":
        if el.get("function") is not None:
            return
        key: tuple[str, ...] = ("edge", el.get("id", ""))
    elif el.tag == "lane":
        if owner.tag != "edge" or owner.get("function") is not None:
            return
        key = ("lane", el.get("id", ""))
    elif el.tag == "connection":
        if el.get("from", "").startswith(":"):
            return
        key = ("connection", *(el.get(a, "") for a in ("from", "fromLane", "to", "toLane")))
    else:
        if owner.tag != "tlLogic":
            return
        program = (owner.get("id", ""), owner.get("programID", ""))
        index = scan.phases_seen.get(program, 0)
        scan.phases_seen[program] = index + 1
        key = ("phase", *program, str(index))
    described = _describe(el)
    found: dict[str, str] = {}
    for attr, default in checked.items():
        raw = el.get(attr)
        if raw is None:
            continue
        if default in ("true", "false"):
            if _bool(path, described, attr, raw) != (default == "true"):
                found[attr] = raw
        elif raw.strip() != default:
            found[attr] = raw
    if found:
        scan.attrs[key] = (described, found)


def _stop_offset(el: ET.Element, owner: ET.Element, path: Path) -> _StopOffset:
    described = f"{_describe(el)} in {_describe(owner)}"
    try:
        value = float(el.get("value", ""))
    except ValueError:
        raise ValueError(f"{path}: {described}: the value must be a number") from None
    classes = el.get("vClasses")
    return _StopOffset(
        described,
        value,
        None if classes is None else classes.split(),
        el.get("exceptions", "").split(),
    )


def _scan_net(path: Path) -> _NetScan:
    """Check the elements and their required attributes; read what ``sumolib`` does not keep.

    That is the junctions' ``incLanes`` and ``<request>`` rows, the elements that
    :data:`NET_CHILDREN` checks where they apply and the attributes of :data:`NET_ATTRS` that
    differ from SUMO's defaults.
    """
    scan = _NetScan({}, {})
    edge_lanes: dict[str, set[str]] = {}
    connections: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    junction = None
    parents: list[ET.Element] = []
    try:
        for event, el in ET.iterparse(path, events=("start", "end")):
            if event == "end":
                parents.pop()
                if len(parents) <= 1:
                    el.clear()
                continue
            if not parents and el.tag != "net":
                raise ValueError(f"{path}: not a SUMO network (root element <{el.tag}>, not <net>)")
            parents.append(el)
            if len(parents) > 1:
                _check_placement(path, parents)
            required = _NET_REQUIRED.get(el.tag, ())
            if el.get("function") is None:
                required += _NET_REQUIRED_NORMAL.get(el.tag, ())
            for attr in required:
                if el.get(attr) is None:
                    where = f" in <{parents[-2].tag} id={parents[-2].get('id')!r}>"
                    raise ValueError(
                        f"{path}: {_describe(el)}{where if len(parents) > 2 else ''} is missing "
                        f"the required attribute {attr!r}"
                    )
            _scan_attrs(path, el, parents, scan)
            if el.tag == "edge":
                edge_lanes[el.get("id", "")] = set()
            elif el.tag == "lane":
                edge_lanes.setdefault(parents[-2].get("id", ""), set()).add(el.get("index", ""))
            elif el.tag == "connection":
                ends = ((el.get("from", ""), el.get("fromLane", "")),
                        (el.get("to", ""), el.get("toLane", "")))  # fmt: skip
                connections.append((_describe(el), ends))
            elif el.tag == "junction":
                junction = el.get("id", "")
                if not junction.startswith(":"):
                    scan.junction_lanes[junction] = el.get("incLanes", "").split()
            elif el.tag == "request" and junction is not None and not junction.startswith(":"):
                try:
                    index = int(el.get("index", ""))
                except ValueError:
                    raise ValueError(
                        f"{path}: <request index={el.get('index')!r}> of junction {junction!r}: "
                        "the index must be an integer"
                    ) from None
                scan.requests.setdefault(junction, {})[index] = el.get("response", "")
                scan.foes.setdefault(junction, {})[index] = el.get("foes", "")
            elif el.tag == "restriction":
                described = f"{_describe(el)} in {_describe(parents[1])}"
                entry = (el.get("vClass", ""), described)
                scan.restrictions.setdefault(parents[1].get("id", ""), []).append(entry)
            elif el.tag == "stopOffset":
                owner = parents[-2]
                scan.stop_offsets[owner.get("id", "")] = _stop_offset(el, owner, path)
            elif el.tag == "neigh":
                described = f"{_describe(el)} in {_describe(parents[-2])}"
                scan.neighs[parents[-2].get("id", "")] = described
            elif len(parents) > 2 and parents[1].tag == "tlLogic":
                attrs = [a for a in _SWITCHING_ATTRS if el.get(a) is not None]
                if el.tag in _SWITCHING_TAGS or (el.tag == "phase" and attrs):
                    key = (parents[1].get("id", ""), parents[1].get("programID", ""))
                    found = f"{_describe(el)}{' attribute ' + attrs[0] if attrs else ''}"
                    scan.switching.setdefault(key, found)
    except ET.ParseError as exc:
        raise ValueError(f"{path}: malformed XML: {exc}") from exc
    for described, ends in connections:
        for edge, index in ends:
            if edge not in edge_lanes:
                raise ValueError(f"{path}: {described}: unknown edge {edge!r}")
            if index not in edge_lanes[edge]:
                raise ValueError(
                    f"{path}: {described}: edge {edge!r} has no lane {index} (its lanes: "
                    f"{', '.join(sorted(edge_lanes[edge], key=lambda i: (len(i), i)))})"
                )
    return scan


def _permits(permissions: Any, vclass: str) -> bool:
    return vclass in permissions or "all" in permissions


def _xy(shape: Any) -> np.ndarray:
    arr = np.asarray(shape, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        return np.zeros((0, 2))
    return arr[:, :2]


def _join(shapes: Sequence[np.ndarray]) -> np.ndarray:
    pts: list[tuple[float, float]] = []
    for s in shapes:
        for x, y in s.tolist():
            if not pts or abs(pts[-1][0] - x) > 1e-6 or abs(pts[-1][1] - y) > 1e-6:
                pts.append((x, y))
    return np.array(pts, dtype=np.float64).reshape(-1, 2)


def _map_conn_state(state: str, where: str) -> str:
    try:
        return CONN_STATES[state]
    except KeyError:
        raise ValueError(
            f"{where}: link state {state!r} is not supported; supported SUMO states: "
            f"{', '.join(CONN_STATES)}"
        ) from None


def _signal(path: Path, tls: Any, scan: _NetScan) -> SignalProgram:
    programs = tls.getPrograms()
    if not programs:
        raise ValueError(f"{path}: traffic light {tls.getID()!r} has no <tlLogic> program")
    program_id, program = list(programs.items())[-1]
    where = f'{path}: <tlLogic id="{tls.getID()}" programID="{program_id}">'
    kind = program.getType()
    phases = program.getPhases()
    if kind == "NEMA":
        if not phases:
            raise ValueError(f"{where}: a NEMA program without <phase> elements is not supported")
        warnings.warn(
            f"{where}: NEMA controller logic is not modelled; its phases are used in order",
            stacklevel=4,
        )
    elif kind not in SIGNAL_TYPES:
        raise ValueError(
            f"{where}: type {kind!r} is not supported; supported: {', '.join(SIGNAL_TYPES)} "
            "(and NEMA with phases)"
        )
    found = scan.switching.get((tls.getID(), program_id))
    if found is not None:
        raise ValueError(
            f"{where}: {found} is not supported: programs with switching conditions "
            f"({', '.join(f'<{t}>' for t in _SWITCHING_TAGS)}, {', '.join(_SWITCHING_ATTRS)}) "
            "cannot be imported"
        )
    phase_attrs = [
        scan.attrs.get(("phase", tls.getID(), program_id, str(k))) for k in range(len(phases))
    ]
    for k, entry in enumerate(phase_attrs):
        raw = entry[1].get("next") if entry is not None else None
        if entry is not None and raw is not None and raw.split() != [str((k + 1) % len(phases))]:
            raise ValueError(
                f'{where}: {entry[0]} (phase {k}) attribute next="{raw}" is not supported: '
                f"phases run in program order (phase {k} is followed by phase "
                f"{(k + 1) % len(phases)})"
            )
    if kind in ("actuated", "delay_based"):
        ignored = [f'<param key="{k}">' for k in program.getParams()]
        varying = [
            _varying(k, p, e) for k, (p, e) in enumerate(zip(phases, phase_attrs, strict=True))
        ]
        varying = [v for v in varying if v]
        if varying:
            more = f" (and {len(varying) - 1} more phases)" if len(varying) > 1 else ""
            ignored.append(varying[0] + more)
        if ignored:
            warnings.warn(
                f"{where}: {', '.join(ignored)} ignored: {kind} switching is not simulated (a "
                "light running this program keeps each phase for its duration)",
                stacklevel=4,
            )
    out = []
    for k, p in enumerate(phases):
        state = "".join(PHASE_STATES.get(ch, ch) for ch in p.state)
        actuated = kind != "static"
        min_dur = float(p.minDur) if actuated and p.minDur is not None and p.minDur >= 0 else None
        max_dur = float(p.maxDur) if actuated and p.maxDur is not None and p.maxDur >= 0 else None
        try:
            out.append(Phase(float(p.duration), state, min_dur, max_dur, p.name or ""))
        except ValueError as exc:
            raise ValueError(f"{where}: phase {k}: {exc}") from None
    try:
        return SignalProgram(tls.getID(), tuple(out), float(program.getOffset()))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _varying(k: int, phase: Any, entry: tuple[str, dict[str, str]] | None) -> str:
    """The attributes that let an actuated program vary phase ``k`` (described), or ``""``."""
    if entry is None:
        return ""
    described, found = entry
    value = {a: _seconds(found.get(a)) for a in ("minDur", "maxDur", "earliestEnd", "latestEnd")}
    shown = [a for a in ("earliestEnd", "latestEnd") if value[a] is not None]
    dur = float(phase.duration)
    lo, hi = value["minDur"], value["maxDur"]
    if (dur if lo is None else lo) < (dur if hi is None else hi):
        shown = [*(a for a in ("minDur", "maxDur") if value[a] is not None), *shown]
    if not shown:
        return ""
    return f"{described} (phase {k}) " + " ".join(f'{a}="{found[a]}"' for a in shown)


def _seconds(raw: str | None) -> float | None:
    """A phase time, or ``None`` when unset (absent, ``-1`` or not a number >= 0)."""
    try:
        value = float(raw) if raw is not None else -1.0
    except ValueError:
        return None
    return value if value >= 0 else None


def _warn_ignored(path: Path, found: Sequence[str], reason: str) -> None:
    """One warning for the elements ``found`` (described) that the import ignores."""
    unique = list(dict.fromkeys(found))
    if unique:
        more = f" (and {len(unique) - 1} more)" if len(unique) > 1 else ""
        warnings.warn(f"{path}: {unique[0]}{more} ignored: {reason}", stacklevel=4)


def _unsupported_attr(path: Path, described: str, attr: str, raw: str, reason: str) -> ValueError:
    return ValueError(f'{path}: {described} attribute {attr}="{raw}" is not supported: {reason}')


def _check_edge_attrs(
    path: Path, edge: Any, lanes: Sequence[Any], scan: _NetScan, vclass: str
) -> list[str]:
    """Check the :data:`NET_ATTRS` of an imported edge and its imported ``lanes``.

    Raises for those the simulator cannot reproduce; returns the acceleration lanes, described.
    """
    entry = scan.attrs.get(("edge", edge.getID()))
    if entry is not None and "bidi" in entry[1]:
        raw = entry[1]["bidi"]
        raise _unsupported_attr(
            path, entry[0], "bidi", raw,
            f"the edge shares its lanes with edge {raw!r} in the opposite direction (it is "
            f"imported for vClass {vclass!r})",
        )  # fmt: skip
    indices = [ln.getIndex() for ln in lanes]
    accel = []
    for ln in lanes:
        entry = scan.attrs.get(("lane", ln.getID()))
        if entry is None:
            continue
        described, found = entry
        for attr, side in (("changeLeft", 1), ("changeRight", -1)):
            raw = found.get(attr)
            if raw is None or _permits(raw.split(), vclass):
                continue
            if any((i - ln.getIndex()) * side > 0 for i in indices):
                raise _unsupported_attr(
                    path, f"{described} in {_describe_edge(edge)}", attr, raw,
                    f"it forbids vClass {vclass!r} to change lanes, which the simulator cannot "
                    "prohibit",
                )  # fmt: skip
        if "acceleration" in found:
            accel.append(f'{described} attribute acceleration="{found["acceleration"]}"')
    return accel


def _check_conn_attrs(path: Path, conn: Any, scan: _NetScan, vclass: str) -> str | None:
    """Check the :data:`NET_ATTRS` of an imported connection.

    Raises for those the simulator cannot reproduce; returns the connection described when it
    has ``keepClear="0"``.
    """
    a, b = conn.getFromLane(), conn.getToLane()
    key = ("connection", a.getEdge().getID(), str(a.getIndex()), b.getEdge().getID(),
           str(b.getIndex()))  # fmt: skip
    entry = scan.attrs.get(key)
    if entry is None:
        return None
    described, found = entry
    for attr in ("indirect", "linkIndex2"):
        if attr in found:
            raise _unsupported_attr(
                path, described, attr, found[attr],
                "an indirect turn waits inside the junction for a second link of the traffic "
                f"light, which is not simulated (it is imported for vClass {vclass!r})",
            )  # fmt: skip
    for restricted, restriction in scan.restrictions.get(found.get("type", ""), ()):
        if restricted == vclass:
            raise ValueError(
                f"{path}: {restriction}: vClass-specific speed limits are not supported "
                f"({described} has this type and is imported for vClass {vclass!r})"
            )
    if "keepClear" in found:
        return f'{described} attribute keepClear="{found["keepClear"]}"'
    return None


def _crossing_foe(
    c: dict[str, Any], conns: list[dict[str, Any]], by_link: dict[Any, int], scan: _NetScan
) -> bool:
    """Whether connection ``c`` has an imported foe that leads to another lane.

    Foes are the ``<request>`` ``foes`` row; only a foe towards another lane is blocked by a
    vehicle that waits inside the junction for room on ``c``'s lane.
    """
    if c["junction"] is None:
        return False
    jid, k = c["junction"]
    row = scan.foes.get(jid, {}).get(k, "")
    n = len(row)
    return any(
        row[n - 1 - j] == "1" and (jid, j) in by_link and conns[by_link[(jid, j)]]["to"] != c["to"]
        for j in range(n)
    )


def _describe_edge(edge: Any) -> str:
    return f'<edge id="{edge.getID()}">'


def _via_chain(net: Any, conn: Any, where: str) -> list[Any]:
    chain = []
    via = conn.getViaLaneID()
    target = conn.getToLane().getID()
    while via:
        try:
            lane = net.getLane(via)
        except KeyError:
            raise ValueError(f"{where}: unknown internal lane {via!r}") from None
        chain.append(lane)
        if len(chain) > 16:
            raise ValueError(f"{where}: the internal lanes from 'via' form a loop")
        nxt = [c for c in lane.getOutgoing() if c.getToLane().getID() == target]
        via = nxt[0].getViaLaneID() if nxt else ""
    return chain


def _waits_inside(chain: list[Any], target: str) -> bool:
    """Whether a path through a junction has a waiting point without priority inside it.

    ``chain`` is its internal lanes; a link from one to the next is an internal junction.
    """
    for lane in chain[:-1]:
        nxt = [c for c in lane.getOutgoing() if c.getToLane().getID() == target]
        if nxt and nxt[0].getState().islower():
            return True
    return False


def load_sumo_network(
    net_file: PathLike, *, vclass: str = "passenger", name: str | None = None
) -> Network:
    """Read a SUMO ``.net.xml`` as a :class:`Network` for vehicles of class ``vclass``.

    Results are cached by path, modification time, ``vclass`` and ``name`` (a network is
    immutable), so loading the same file again is free.

    Raises:
        ImportError: with the install command when ``sumolib`` is missing.
        FileNotFoundError: naming the file.
        ValueError: naming the file and element for malformed or unsupported content.
    """
    path = _existing(net_file, "network")
    sumolib = _sumolib()
    if vclass not in sumolib.net.lane.SUMO_VEHICLE_CLASSES:
        raise ValueError(
            f"vclass: unknown SUMO vehicle class {vclass!r}; e.g. passenger, bus, truck"
        )
    st = path.stat()
    label = name if name is not None else path.name.removesuffix(".xml").removesuffix(".net")
    return _load_network(str(path.resolve()), st.st_mtime_ns, st.st_size, vclass, label)


@lru_cache(maxsize=16)
def _load_network(path_str: str, _mtime: int, _size: int, vclass: str, name: str) -> Network:
    path = Path(path_str)
    scan = _scan_net(path)
    sumolib = _sumolib()
    try:
        net = sumolib.net.readNet(
            path_str, withInternal=True, withPrograms=True, withConnections=True
        )
    except Exception as exc:  # sumolib's SAX handler raises bare KeyError/IndexError/ValueError
        raise ValueError(f"{path}: sumolib could not read the network: {exc!r}") from exc

    lane_ids: list[str] = []
    lane_edge: list[int] = []
    lane_index: list[int] = []
    lane_length: list[float] = []
    lane_speed: list[float] = []
    lane_width: list[float] = []
    lane_shapes: list[np.ndarray] = []
    edge_ids: list[str] = []
    edge_from: list[str] = []
    edge_to: list[str] = []
    lane_pos: dict[str, int] = {}
    kept_lanes = []
    stop_offsets: list[str] = []
    neighs: list[str] = []
    accel_lanes: list[str] = []
    for edge in net.getEdges(withInternal=False):
        if edge.getFunction():
            continue
        lanes = [ln for ln in edge.getLanes() if _permits(ln.getPermissions(), vclass)]
        if not lanes:
            continue
        for restricted, described in scan.restrictions.get(edge.getType(), ()):
            if restricted == vclass:
                raise ValueError(
                    f"{path}: {described}: vClass-specific speed limits are not supported "
                    f"(edge {edge.getID()!r} has this type and is imported for vClass "
                    f"{vclass!r})"
                )
        accel_lanes += _check_edge_attrs(path, edge, lanes, scan, vclass)
        for ln in lanes:
            offset = scan.stop_offsets.get(ln.getID(), scan.stop_offsets.get(edge.getID()))
            if offset is not None and offset.applies(vclass):
                stop_offsets.append(offset.described)
            if ln.getID() in scan.neighs:
                neighs.append(scan.neighs[ln.getID()])
        e = len(edge_ids)
        edge_ids.append(edge.getID())
        edge_from.append(edge.getFromNode().getID())
        edge_to.append(edge.getToNode().getID())
        for ln in lanes:
            lane_pos[ln.getID()] = len(lane_ids)
            kept_lanes.append(ln)
            lane_ids.append(ln.getID())
            lane_edge.append(e)
            lane_index.append(ln.getIndex())
            lane_length.append(float(ln.getLength()))
            lane_speed.append(float(ln.getSpeed()))
            lane_width.append(float(ln.getWidth()))
            shape = _xy(ln.getShape())
            if len(shape) < 2:
                shape = _xy([edge.getFromNode().getCoord(), edge.getToNode().getCoord()])
            lane_shapes.append(shape)
    _warn_ignored(path, stop_offsets, f"vehicles of vClass {vclass!r} stop at the lane end")
    _warn_ignored(path, neighs, "overtaking through the opposite lane is not simulated")
    _warn_ignored(
        path,
        accel_lanes,
        "a motorway acceleration lane is driven like any other lane (SUMO's merging rules "
        "for it are not simulated)",
    )

    # junction link index of every connection; pedestrian links (from walking areas) come last
    junction_link: dict[Any, tuple[str, int]] = {}
    for jid, inc in scan.junction_lanes.items():
        k = 0
        for lane_id in inc:
            if lane_id.startswith(":"):
                continue
            try:
                lane = net.getLane(lane_id)
            except KeyError:
                raise ValueError(
                    f"{path}: <junction id={jid!r}> lists unknown incoming lane {lane_id!r}"
                ) from None
            for conn in lane.getOutgoing():
                if conn.getTo().getFunction() == "walkingarea":
                    continue
                junction_link[conn] = (jid, k)
                k += 1

    signals_all = list(net.getTrafficLights())
    tls_order = {t.getID(): i for i, t in enumerate(signals_all)}
    conns: list[dict[str, Any]] = []
    for ln in kept_lanes:
        for conn in ln.getOutgoing():
            to_id = conn.getToLane().getID()
            if to_id not in lane_pos or not conn.allows(vclass):
                continue
            where = f'{path}: <connection from="{ln.getID()}" to="{to_id}">'
            chain = _via_chain(net, conn, where)
            a, b = lane_pos[ln.getID()], lane_pos[to_id]
            if chain:
                length = float(sum(x.getLength() for x in chain))
                speed = float(min(x.getSpeed() for x in chain))
                shape = _join([_xy(x.getShape()) for x in chain])
            else:
                length = 0.0
                speed = min(lane_speed[a], lane_speed[b])
                shape = np.array([lane_shapes[a][-1], lane_shapes[b][0]])
            tls = conn.getTLSID()
            if tls and tls not in tls_order:
                raise ValueError(f"{where}: unknown traffic light {tls!r}")
            keep_clear_off = _check_conn_attrs(path, conn, scan, vclass)
            conns.append(
                {
                    "from": a,
                    "to": b,
                    "length": length,
                    "speed": speed,
                    "shape": shape,
                    "dir": conn.getDirection(),
                    "tls": tls,
                    "link": conn.getTLLinkIndex() if tls else -1,
                    "state": _map_conn_state(conn.getState(), where),
                    "junction": junction_link.get(conn),
                    "waits": _waits_inside(chain, to_id),
                    "where": where,
                    "keep_clear_off": keep_clear_off,
                }
            )

    by_link = {c["junction"]: i for i, c in enumerate(conns) if c["junction"] is not None}
    foes: list[tuple[int, ...]] = []
    for c in conns:
        if c["junction"] is None:
            foes.append(())
            continue
        jid, k = c["junction"]
        rows = scan.requests.get(jid, {})
        if not rows:
            foes.append(())
            continue
        response = rows.get(k)
        if response is None or k >= len(response):
            raise ValueError(
                f"{c['where']}: junction {jid!r} has no <request> row for its link {k} "
                f"({len(rows)} rows); the junction's links do not match its incLanes"
            )
        n = len(response)
        foes.append(
            tuple(
                by_link[(jid, j)]
                for j in range(n)
                if response[n - 1 - j] == "1" and (jid, j) in by_link
            )
        )

    blocking = [
        c["keep_clear_off"]
        for c in conns
        if c["keep_clear_off"] is not None and _crossing_foe(c, conns, by_link, scan)
    ]
    _warn_ignored(
        path,
        blocking,
        "vehicles wait before the junction until there is room behind it (SUMO lets them "
        "enter and wait inside, blocking crossing traffic)",
    )
    used = {c["tls"] for c in conns if c["tls"]}
    programs = [_signal(path, t, scan) for t in signals_all if t.getID() in used]
    sig_index = {p.id: i for i, p in enumerate(programs)}
    nodes: dict[str, tuple[float, float]] = {}
    junction_shapes: dict[str, np.ndarray] = {}
    for node in net.getNodes():
        x, y = node.getCoord()
        nodes[node.getID()] = (float(x), float(y))
        shape = _xy(node.getShape())
        if len(shape) >= 3:
            junction_shapes[node.getID()] = shape

    try:
        return Network(
            lane_ids=tuple(lane_ids),
            lane_edge=lane_edge,
            lane_index=lane_index,
            lane_length=lane_length,
            lane_speed=lane_speed,
            lane_shapes=tuple(lane_shapes),
            lane_width=lane_width,
            edge_ids=tuple(edge_ids),
            edge_from=tuple(edge_from),
            edge_to=tuple(edge_to),
            conn_from=[c["from"] for c in conns],
            conn_to=[c["to"] for c in conns],
            conn_length=[c["length"] for c in conns],
            conn_speed=[c["speed"] for c in conns],
            conn_dir=tuple(c["dir"] for c in conns),
            conn_tls=[sig_index[c["tls"]] if c["tls"] else -1 for c in conns],
            conn_link=[c["link"] for c in conns],
            conn_state=[_code(c["state"]) for c in conns],
            conn_foes=tuple(foes),
            conn_shapes=tuple(c["shape"] for c in conns),
            signals=tuple(programs),
            nodes=nodes,
            junction_shapes=junction_shapes,
            name=name,
            conn_waits=[c["waits"] for c in conns],
        )
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _code(state: str) -> int:
    return LINK_STATES.index(state)


# --- demand ----------------------------------------------------------------------------------


@dataclasses.dataclass
class _Depart:
    lane: str | int
    speed: str | float


@dataclasses.dataclass
class _Item:
    """A vehicle, trip or flow before routing and windowing."""

    tag: str
    id: str
    file: Path
    vtype: str
    depart: _Depart
    route: str | None = None
    edges: tuple[str, ...] | None = None
    trip: tuple[str, ...] | None = None
    time: float = 0.0
    begin: float = 0.0
    end: float = 0.0
    kind: str = ""
    value: float = 0.0


@dataclasses.dataclass
class _Demand:
    vtypes: dict[str, VehicleType] = dataclasses.field(default_factory=dict)
    vtype_dists: dict[str, list[tuple[str, float]]] = dataclasses.field(default_factory=dict)
    vtype_class: dict[str, tuple[str, Path]] = dataclasses.field(default_factory=dict)
    routes: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    route_dists: dict[str, list[tuple[str, float]]] = dataclasses.field(default_factory=dict)
    items: list[_Item] = dataclasses.field(default_factory=list)
    warned: set[tuple[Path, str]] = dataclasses.field(default_factory=set)
    defined: dict[tuple[str, str], Path] = dataclasses.field(default_factory=dict)

    def define(self, el: ET.Element, path: Path) -> str:
        """The element's id, after checking that its namespace has no element with that id."""
        key = (_ID_SPACES[el.tag], _req(el, "id", path))
        if key in self.defined:
            first = self.defined[key]
            where = "earlier in this file" if first == path else f"in {first}"
            raise ValueError(
                f"{_owner(el, path)}: another {key[0]} with the id {key[1]!r} exists ({where})"
            )
        self.defined[key] = path
        return key[1]

    def warn_once(self, path: Path, key: str, message: str) -> None:
        if (path, key) not in self.warned:
            self.warned.add((path, key))
            warnings.warn(f"{path}: {message}", stacklevel=4)


def _owner(el: ET.Element, path: Path) -> str:
    return f"{path}: <{el.tag} id={el.get('id')!r}>"


def _req(el: ET.Element, attr: str, path: Path) -> str:
    value = el.get(attr)
    if value is None:
        raise ValueError(f"{_owner(el, path)} is missing the required attribute {attr!r}")
    return value


def _num(el: ET.Element, attr: str, path: Path, default: float | None = None) -> float:
    raw = el.get(attr)
    if raw is None:
        if default is None:
            raise ValueError(f"{_owner(el, path)} is missing the required attribute {attr!r}")
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{_owner(el, path)}: {attr}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{_owner(el, path)}: {attr}={raw!r} is not finite")
    return value


def _time(el: ET.Element, attr: str, path: Path, default: float | None = None) -> float:
    raw = el.get(attr)
    if raw is not None and ":" in raw:
        try:
            parts = [float(x) for x in raw.split(":")]
        except ValueError:
            parts = []
        if 2 <= len(parts) <= 4:
            value = 0.0
            for p, scale in zip(reversed(parts), (1, 60, 3600, 86400), strict=False):
                value += p * scale
            return value
    if raw is not None and not re.fullmatch(r"\s*[-+0-9.eE]+\s*", raw):
        raise ValueError(
            f"{_owner(el, path)}: {attr}={raw!r} is not supported; give a time in seconds"
        )
    return _num(el, attr, path, default)


_DIST_RE = re.compile(r"\s*(normc|norm)\s*\(([^)]*)\)\s*")


def _speed_factor(el: ET.Element, raw: str, path: Path) -> tuple[float, float | None]:
    m = _DIST_RE.fullmatch(raw)
    if m:
        try:
            args = [float(x) for x in m.group(2).split(",")]
        except ValueError:
            args = []
        if len(args) in (2, 4):
            return args[0], args[1]
    else:
        try:
            return float(raw), None
        except ValueError:
            pass
    raise ValueError(
        f"{_owner(el, path)}: speedFactor={raw!r} is not supported; give a number, "
        "norm(mean,dev) or normc(mean,dev[,min,max])"
    )


def _vtype(el: ET.Element, path: Path, demand: _Demand) -> VehicleType:
    vid = _req(el, "id", path)
    vclass = el.get("vClass", "passenger")
    if vclass not in VCLASS_DEFAULTS:
        raise ValueError(
            f"{_owner(el, path)}: vClass={vclass!r} is not supported; supported: "
            f"{', '.join(VCLASS_DEFAULTS)}"
        )
    params: dict[str, Any] = dict(VCLASS_DEFAULTS[vclass])
    model = el.get("carFollowModel", "Krauss")
    sources = [el]
    for child in el:
        if child.tag.startswith("carFollowing-"):
            model = child.tag.removeprefix("carFollowing-")
            sources.append(child)
        elif child.tag != "param":
            raise ValueError(f"{_owner(el, path)}: nested <{child.tag}> is not supported")
    for src in sources:
        for attr, field in _VTYPE_ATTRS.items():
            if src.get(attr) is not None:
                params[field] = _num(src, attr, path)
        if src.get("speedFactor") is not None:
            mean, dev = _speed_factor(src, src.get("speedFactor", ""), path)
            params["speed_factor"] = mean
            if dev is not None and src.get("speedDev") is None:
                params["speed_dev"] = dev
    if model in CAR_FOLLOW_MODELS:
        params["model"] = CAR_FOLLOW_MODELS[model]
    elif model in CAR_FOLLOW_APPROX:
        params["model"] = CAR_FOLLOW_APPROX[model]
        demand.warn_once(
            path, f"cf:{model}", f"carFollowModel {model!r} is approximated by {params['model']!r}"
        )
    else:
        raise ValueError(
            f"{_owner(el, path)}: carFollowModel={model!r} is not supported; supported: "
            f"{', '.join([*CAR_FOLLOW_MODELS, *CAR_FOLLOW_APPROX])}"
        )
    if params["model"] == "idm":
        params["sigma"] = 0.0
    try:
        return VehicleType(id=vid, **params)
    except ValueError as exc:
        raise ValueError(f"{_owner(el, path)}: {exc}") from None


def _members(
    el: ET.Element, path: Path, ref_attr: str, child_tag: str
) -> tuple[list[str], list[float], list[ET.Element]]:
    """Members of a distribution: ids, probabilities and inline definitions."""
    ids: list[str] = []
    probs: list[float] = []
    inline: list[ET.Element] = []
    for k, child in enumerate(el):
        if child.tag == "param":
            continue
        if child.tag != child_tag:
            raise ValueError(f"{_owner(el, path)}: nested <{child.tag}> is not supported")
        if child.get("id") is None:
            child.set("id", f"{el.get('id')}#{k}")
        ids.append(child.get("id", ""))
        probs.append(_num(child, "probability", path, 1.0))
        inline.append(child)
    if el.get(ref_attr):
        refs = el.get(ref_attr, "").split()
        raw = el.get("probabilities")
        if raw is not None:
            try:
                ref_probs = [float(x) for x in raw.split()]
            except ValueError:
                ref_probs = []
            if len(ref_probs) != len(refs):
                raise ValueError(
                    f"{_owner(el, path)}: 'probabilities' needs one number per entry of "
                    f"{ref_attr!r}"
                )
        else:
            ref_probs = [1.0] * len(refs)
        ids += refs
        probs += ref_probs
    if not ids:
        raise ValueError(f"{_owner(el, path)}: a distribution needs at least one member")
    if any(p < 0 for p in probs) or sum(probs) <= 0:
        raise ValueError(f"{_owner(el, path)}: probabilities must be >= 0 with a positive sum")
    return ids, probs, inline


def _route_edges(el: ET.Element, path: Path) -> tuple[str, ...]:
    for child in el:
        if child.tag != "param":
            raise ValueError(
                f"{path}: <{child.tag}> inside {_describe(el)} is not supported (routes with "
                "stops cannot be imported)"
            )
    if el.get("repeat") not in (None, "0"):
        raise ValueError(f"{_owner(el, path)}: 'repeat' is not supported")
    edges = tuple(_req(el, "edges", path).split())
    if not edges:
        raise ValueError(f"{_owner(el, path)}: 'edges' is empty")
    return edges


def _depart(el: ET.Element, path: Path, demand: _Demand) -> _Depart:
    owner = _owner(el, path)
    raw_lane = el.get("departLane", "best")
    lane: str | int
    if raw_lane in ("best", "free", "random", "first"):
        lane = raw_lane
    elif raw_lane == "best_prob":
        lane = "best"
    elif raw_lane == "allowed":
        lane = "random"
    elif raw_lane.isdigit():
        lane = int(raw_lane)
    else:
        raise ValueError(
            f"{owner}: departLane={raw_lane!r} is not supported; supported: best, best_prob, "
            "free, random, first, allowed or a lane index"
        )
    raw_speed = el.get("departSpeed", "avg")
    speed: str | float
    if raw_speed in ("max", "desired", "avg", "random"):
        speed = raw_speed
    else:
        try:
            speed = float(raw_speed)
        except ValueError:
            speed = -1.0
        if not (math.isfinite(speed) and speed >= 0):
            raise ValueError(
                f"{owner}: departSpeed={raw_speed!r} is not supported; supported: max, "
                "desired, avg, random or a speed >= 0"
            )
    pos = el.get("departPos", "base")
    if pos in ("random", "free", "random_free"):
        demand.warn_once(
            path, f"pos:{pos}", f"departPos={pos!r} is approximated by inserting at the lane start"
        )
    elif pos != "base":
        try:
            at_start = float(pos) == 0.0
        except ValueError:
            at_start = False
        if not at_start:
            raise ValueError(
                f"{owner}: departPos={pos!r} is not supported; supported: base, 0, random, "
                "free, random_free"
            )
    for attr in _IGNORED_ARRIVAL_ATTRS:
        if el.get(attr) is not None:
            demand.warn_once(path, attr, f"{attr} is ignored (vehicles leave at the route's end)")
    return _Depart(lane, speed)


def _item(el: ET.Element, path: Path, demand: _Demand) -> _Item:
    vid = _req(el, "id", path)
    item = _Item(el.tag, vid, path, el.get("type", "DEFAULT_VEHTYPE"), _depart(el, path, demand))
    nested = []
    for child in el:
        if child.tag == "route":
            nested.append(child)
        elif child.tag != "param":
            raise ValueError(f"{path}: <{child.tag}> inside {_describe(el)} is not supported")
    for attr, hint in _UNSUPPORTED_TRIP_ATTRS.items():
        if el.get(attr) is not None:
            raise ValueError(f"{_owner(el, path)}: attribute {attr!r} is not supported{hint}")
    has_trip = el.get("from") is not None or el.get("to") is not None
    if el.tag == "trip" and (nested or el.get("route") is not None):
        raise ValueError(f"{_owner(el, path)}: a trip takes 'from'/'to', not a route")
    if len(nested) > 1 or (nested and el.get("route") is not None):
        raise ValueError(f"{_owner(el, path)}: give either a 'route' attribute or one <route>")
    if nested:
        item.edges = _route_edges(nested[0], path)
    elif el.get("route") is not None:
        item.route = el.get("route")
    elif has_trip or el.tag == "trip":
        via = tuple(el.get("via", "").split())
        item.trip = (_req(el, "from", path), *via, _req(el, "to", path))
    else:
        raise ValueError(f"{_owner(el, path)} needs a 'route' attribute, a <route> or from/to")
    if el.tag == "flow":
        _flow_rate(el, path, item)
    else:
        item.time = _time(el, "depart", path)
        if item.time < 0:
            raise ValueError(f"{_owner(el, path)}: depart must be >= 0")
    return item


def _flow_rate(el: ET.Element, path: Path, item: _Item) -> None:
    owner = _owner(el, path)
    given = [a for a in ("vehsPerHour", "period", "probability") if el.get(a) is not None]
    if len(given) > 1:
        raise ValueError(f"{owner}: give only one of {', '.join(given)}")
    item.begin = _time(el, "begin", path, 0.0)
    end = _time(el, "end", path) if el.get("end") is not None else None
    number = _num(el, "number", path) if el.get("number") is not None else None
    if number is not None and (number < 0 or number != int(number)):
        raise ValueError(f"{owner}: number must be a whole number >= 0")
    if given:
        attr = given[0]
        raw = el.get(attr, "")
        spacing = None
        if attr == "period" and (m := re.fullmatch(r"\s*exp\((.*)\)\s*", raw)):
            try:
                rate = float(m.group(1))
            except ValueError:
                raise ValueError(f"{owner}: period={raw!r} is not a valid exp(rate)") from None
            if not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"{owner}: period={raw!r}: the rate must be > 0")
            item.kind, item.value = "poisson", rate * 3600.0
        elif attr == "period":
            item.kind, item.value = "period", _num(el, "period", path)
            spacing = item.value
            if not item.value > 0:
                raise ValueError(f"{owner}: period must be > 0, got {item.value}")
        elif attr == "vehsPerHour":
            item.kind, item.value = "vehs_per_hour", _num(el, "vehsPerHour", path)
            if item.value < 0:
                raise ValueError(f"{owner}: vehsPerHour must be >= 0, got {item.value}")
            spacing = 3600.0 / item.value if item.value > 0 else None
        else:
            item.kind, item.value = "probability", _num(el, "probability", path)
            if not 0 <= item.value <= 1:
                raise ValueError(f"{owner}: probability must be in [0, 1], got {item.value}")
        if number is not None:
            if spacing is None:
                raise ValueError(f"{owner}: 'number' together with {attr!r} is not supported")
            by_number = item.begin + number * spacing
            end = by_number if end is None else min(end, by_number)
        item.end = end if end is not None else max(_FLOW_END_DEFAULT, item.begin)
    elif number is not None:
        if end is None:
            raise ValueError(f"{owner}: 'number' needs 'end' (or a period/vehsPerHour)")
        item.kind, item.value, item.end = "number", number, end
    else:
        raise ValueError(f"{owner} needs one of vehsPerHour, period, probability or number")
    if item.end < item.begin:
        raise ValueError(f"{owner}: end ({item.end}) is before begin ({item.begin})")


def _read_demand(path: Path, demand: _Demand) -> None:
    root = _parse_xml(path)
    if root.tag not in ("routes", "additional"):
        raise ValueError(f"{path}: not a SUMO route file (root element <{root.tag}>)")
    for el in root:
        tag = el.tag
        if tag == "param" or not isinstance(tag, str):
            continue
        if tag in _ID_SPACES:
            did = demand.define(el, path)
        if tag == "vType":
            vt = _vtype(el, path, demand)
            demand.vtypes[vt.id] = vt
            demand.vtype_class[vt.id] = (el.get("vClass", "passenger"), path)
        elif tag == "vTypeDistribution":
            ids, probs, inline = _members(el, path, "vTypes", "vType")
            for child in inline:
                demand.define(child, path)
                vt = _vtype(child, path, demand)
                demand.vtypes[vt.id] = vt
                demand.vtype_class[vt.id] = (child.get("vClass", "passenger"), path)
            demand.vtype_dists[did] = list(zip(ids, probs, strict=True))
        elif tag == "route":
            demand.routes[did] = _route_edges(el, path)
        elif tag == "routeDistribution":
            ids, probs, inline = _members(el, path, "routes", "route")
            for child in inline:
                demand.routes[demand.define(child, path)] = _route_edges(child, path)
            demand.route_dists[did] = list(zip(ids, probs, strict=True))
        elif tag in ("vehicle", "trip", "flow"):
            demand.items.append(_item(el, path, demand))
        else:
            raise ValueError(
                f"{path}: <{tag}> is not supported; supported elements: {', '.join(_DEMAND_TAGS)}"
            )


class _Quota:
    """Deterministic assignment to weighted members: the member furthest below its share."""

    def __init__(self, weights: Sequence[float]) -> None:
        total = float(sum(weights))
        self.share = [w / total for w in weights]
        self.count = [0] * len(weights)

    def next(self) -> int:
        n = sum(self.count) + 1
        k = max(range(len(self.share)), key=lambda i: self.share[i] * n - self.count[i])
        self.count[k] += 1
        return k


class _Router:
    """Fastest free-flow paths between edges of a network, as SUMO's router takes them."""

    def __init__(self, net: Network) -> None:
        n = net.num_edges
        self.length, self.speed = (x.tolist() for x in net.edge_extent)
        self.top_speed = max(self.speed, default=1.0)
        ptr, to, secs = net.routing_links
        self.succ: list[dict[int, float]] = [
            dict(
                zip(
                    to[ptr[a] : ptr[a + 1]].tolist(),
                    secs[ptr[a] : ptr[a + 1]].tolist(),
                    strict=True,
                )
            )
            for a in range(n)
        ]
        self._adjacency: dict[float, list[list[tuple[int, float]]]] = {}
        self._trees: dict[tuple[int, float], list[int]] = {}

    def _adj(self, vmax: float) -> list[list[tuple[int, float]]]:
        if vmax not in self._adjacency:
            drive = [ln / min(v, vmax) for ln, v in zip(self.length, self.speed, strict=True)]
            self._adjacency[vmax] = [
                [(b, t + drive[b]) for b, t in succ.items()] for succ in self.succ
            ]
        return self._adjacency[vmax]

    def _tree(self, src: int, vmax: float) -> list[int]:
        key = (src, vmax)
        if key not in self._trees:
            adj = self._adj(vmax)
            dist = [math.inf] * len(adj)
            prev = [-1] * len(adj)
            dist[src] = 0.0
            heap = [(0.0, src)]
            pop, push = heapq.heappop, heapq.heappush
            while heap:
                d, a = pop(heap)
                if d > dist[a]:
                    continue
                for b, t in adj[a]:
                    nd = d + t
                    if nd < dist[b]:
                        dist[b] = nd
                        prev[b] = a
                        push(heap, (nd, b))
            self._trees[key] = prev
        return self._trees[key]

    def path(self, stops: Sequence[int], vmax: float) -> list[int] | None:
        vmax = min(float(vmax), self.top_speed)
        out = [stops[0]]
        for a, b in zip(stops, stops[1:], strict=False):
            prev = self._tree(a, vmax)
            leg = [b]
            while leg[-1] != a:
                p = prev[leg[-1]]
                if p < 0:
                    return None
                leg.append(p)
            out += leg[::-1][1:]
        return out


@dataclasses.dataclass
class _Resolver:
    """Turns parsed demand into scenario routes, departures and flows for one network."""

    net: Network
    demand: _Demand
    vclass: str
    routes: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    by_edges: dict[tuple[str, ...], str] = dataclasses.field(default_factory=dict)
    quotas: dict[str, _Quota] = dataclasses.field(default_factory=dict)
    router: _Router | None = None
    trips: set[str] = dataclasses.field(default_factory=set)

    def check_route(self, rid: str, edges: tuple[str, ...], owner: str) -> None:
        net = self.net
        prev = None
        for e in edges:
            if e not in net.edge_index:
                raise ValueError(
                    f"{owner}: route {rid!r}: unknown edge {e!r} (not in the network, or no "
                    f"lane of it allows vClass {self.vclass!r})"
                )
            cur = net.edge_index[e]
            if prev is not None and cur not in net.edge_successors[prev]:
                raise ValueError(
                    f"{owner}: route {rid!r}: no connection from edge {net.edge_ids[prev]!r} to "
                    f"edge {e!r} for vClass {self.vclass!r}"
                )
            prev = cur

    def add_route(self, rid: str, edges: tuple[str, ...], owner: str) -> str:
        if rid in self.routes:
            return rid
        if edges in self.by_edges:
            return self.by_edges[edges]
        self.check_route(rid, edges, owner)
        self.routes[rid] = edges
        self.by_edges[edges] = rid
        return rid

    def members(
        self, ref: str, dists: dict[str, list[tuple[str, float]]]
    ) -> list[tuple[str, float]]:
        if ref not in dists:
            return [(ref, 1.0)]
        members = dists[ref]
        total = sum(p for _, p in members)
        return [(m, p / total) for m, p in members if p > 0]

    def pick(self, ref: str, dists: dict[str, list[tuple[str, float]]], kind: str) -> str:
        members = self.members(ref, dists)
        if len(members) == 1:
            return members[0][0]
        key = f"{kind}:{ref}"
        if key not in self.quotas:
            self.quotas[key] = _Quota([p for _, p in members])
        return members[self.quotas[key].next()][0]

    def vtype(self, name: str, owner: str) -> VehicleType:
        if name in self.demand.vtype_dists:
            raise ValueError(f"{owner}: vehicle-type distribution {name!r} inside a distribution")
        if name == "DEFAULT_VEHTYPE" and name not in self.demand.vtypes:
            return VehicleType()
        if name not in self.demand.vtypes:
            raise ValueError(
                f"{owner}: unknown vehicle type {name!r}; known: "
                f"{', '.join(sorted({*self.demand.vtypes, *self.demand.vtype_dists})) or 'none'}"
            )
        vclass, path = self.demand.vtype_class.get(name, (self.vclass, Path()))
        if vclass != self.vclass:
            self.demand.warn_once(
                path,
                f"vclass:{vclass}",
                f"vehicles of vClass {vclass!r} use the lanes imported for {self.vclass!r}",
            )
        return self.demand.vtypes[name]

    def route_for(self, item: _Item, vt: VehicleType, member: str | None = None) -> str:
        rid = self._route_for(item, vt, member)
        lane = item.depart.lane
        if isinstance(lane, int):
            first = self.net.edge_index[self.routes[rid][0]]
            kept = [int(self.net.lane_index[ln]) for ln in self.net.edge_lanes[first]]
            if lane not in kept:
                raise ValueError(
                    f"{_owner_item(item)}: departLane={lane} is not a lane of edge "
                    f"{self.routes[rid][0]!r} that allows vClass {self.vclass!r} (those are "
                    f"{', '.join(map(str, kept))})"
                )
        return rid

    def _route_for(self, item: _Item, vt: VehicleType, member: str | None) -> str:
        owner = _owner_item(item)
        if item.edges is not None:
            return self.add_route(f"!{item.id}", item.edges, owner)
        if item.trip is not None:
            for e in item.trip:
                if e not in self.net.edge_index:
                    raise ValueError(
                        f"{owner}: unknown edge {e!r} (not in the network, or no lane of it "
                        f"allows vClass {self.vclass!r})"
                    )
            if self.router is None:
                self.router = _Router(self.net)
            stops = [self.net.edge_index[e] for e in item.trip]
            path = self.router.path(stops, vt.max_speed)
            if path is None:
                raise ValueError(
                    f"{owner}: no path from edge {item.trip[0]!r} to {item.trip[-1]!r}"
                    f"{' via ' + ' '.join(item.trip[1:-1]) if len(item.trip) > 2 else ''} "
                    f"for vClass {self.vclass!r}"
                )
            edges = tuple(self.net.edge_ids[e] for e in path)
            if len(stops) > 2:  # a trip with vias keeps its path: it is routed through them
                return self.add_route(f"!{item.id}", edges, owner)
            key = ("<trip>", *edges)
            if key not in self.by_edges:
                self.routes[f"!{item.id}"] = edges
                self.by_edges[key] = f"!{item.id}"
                self.trips.add(f"!{item.id}")
            return self.by_edges[key]
        rid = member if member is not None else item.route
        assert rid is not None
        if rid not in self.demand.routes:
            raise ValueError(f"{owner}: unknown route {rid!r}")
        return self.add_route(rid, self.demand.routes[rid], owner)


def _owner_item(item: _Item) -> str:
    return f"{item.file}: <{item.tag} id={item.id!r}>"


def _clip_flow(item: _Item, begin: float, end: float) -> tuple[str, float, float, float] | None:
    """Restrict a flow to ``[begin, end)``; evenly spaced flows keep their departure times."""
    kind, value, b, e = item.kind, item.value, item.begin, item.end
    if e <= begin or b >= end or e <= b:
        return None
    if kind in ("period", "vehs_per_hour", "number"):
        if value <= 0:
            return None
        spacing = (
            value
            if kind == "period"
            else 3600.0 / value
            if kind == "vehs_per_hour"
            else ((e - b) / value)
        )
        if b < begin or e > end:
            if b < begin:
                b += math.ceil((begin - b) / spacing - 1e-9) * spacing
            e = min(e, end)
            if kind == "number":
                kind, value = "period", spacing
            if b >= e:
                return None
    else:
        b, e = max(b, begin), min(e, end)
    return kind, value, b, e


def _split_value(kind: str, value: float, shares: Sequence[float]) -> list[float]:
    if kind == "period":
        return [value / q for q in shares]
    if kind != "number":
        return [value * q for q in shares]
    raw = [value * q for q in shares]
    out = [math.floor(r) for r in raw]
    for k in sorted(range(len(raw)), key=lambda i: out[i] - raw[i])[: int(value) - sum(out)]:
        out[k] += 1
    return [float(x) for x in out]


def _window(items: Sequence[_Item]) -> tuple[float, float]:
    starts = [it.time if it.tag != "flow" else it.begin for it in items]
    stops = [it.time + 1.0 if it.tag != "flow" else it.end for it in items]
    if not starts:
        return 0.0, 3600.0
    return float(math.floor(min(starts))), float(math.ceil(max(stops)))


def _route_files(route_file: RouteFiles) -> list[Path]:
    if route_file is None:
        return []
    if isinstance(route_file, str | os.PathLike):
        return [_existing(route_file, "route")]
    return [_existing(p, "route") for p in route_file]


def load_sumo(
    net_file: PathLike,
    route_file: RouteFiles = None,
    *,
    begin: float | None = None,
    end: float | None = None,
    vclass: str = "passenger",
    signals: SignalSettings | None = None,
    name: str | None = None,
    teleport_time: float = 300.0,
) -> TrafficScenario:
    """Import a SUMO network and its demand as a :class:`TrafficScenario`.

    Args:
        net_file: the ``.net.xml`` file.
        route_file: a ``.rou.xml`` file, several (read in order, later files may use types
            and routes of earlier ones), or ``None`` for a network without demand.
        begin: first second of the scenario; defaults to the earliest departure (or 0).
        end: the scenario ends here; defaults to just after the latest departure or flow end
            (3600 without demand). Vehicles with ``begin <= depart < end`` are kept and flows
            are clipped to the window.
        vclass: SUMO vehicle class whose lanes and connections are imported.
        signals: signal-control settings (defaults to :class:`SignalSettings`).
        name: label of the scenario and the network (defaults to the network file's stem).
        teleport_time: SUMO's ``--time-to-teleport`` (s; <= 0 disables), see
            :class:`TrafficScenario`.

    Returns:
        The scenario; see the module docstring for how SUMO's elements are mapped.

    Raises:
        ImportError: with the install command when ``sumolib`` is missing.
        FileNotFoundError: naming a missing file.
        ValueError: naming the file and element for malformed XML, missing attributes,
            duplicate ids, unknown edges, routes or types, unroutable trips and unsupported
            elements or values.

    Warns:
        UserWarning: for approximated or ignored attributes, and when no vehicle departs in
            the window.

    Example:
        >>> sc = load_sumo("grid.net.xml", "grid.rou.xml", begin=0, end=3600)  # doctest: +SKIP
        >>> sc.network.num_signals  # doctest: +SKIP
        16
    """
    net_path = _existing(net_file, "network")
    files = _route_files(route_file)
    label = name if name is not None else net_path.name.removesuffix(".xml").removesuffix(".net")
    demand = _Demand()
    for path in files:
        _read_demand(path, demand)
    lo, hi = _window(demand.items)
    begin = lo if begin is None else float(begin)
    if end is None:
        end = hi if hi > begin else begin + 3600.0
    end = float(end)
    if not end > begin:
        raise ValueError(f"end: must be > begin ({begin}), got {end}")

    net = load_sumo_network(net_path, vclass=vclass, name=label)
    res = _Resolver(net, demand, vclass)
    vehicles: list[Departure] = []
    flows: list[Flow] = []
    for item in demand.items:
        owner = _owner_item(item)
        if item.tag != "flow":
            if not begin <= item.time < end:
                continue
            vt = res.vtype(res.pick(item.vtype, demand.vtype_dists, "type"), owner)
            member = None
            if item.route is not None:
                member = res.pick(item.route, demand.route_dists, "route")
            rid = res.route_for(item, vt, member)
            try:
                vehicles.append(
                    Departure(item.id, item.time, rid, vt.id, item.depart.lane, item.depart.speed)
                )
            except ValueError as exc:
                raise ValueError(f"{owner}: {exc}") from None
            continue
        clipped = _clip_flow(item, begin, end)
        if clipped is None:
            continue
        kind, value, b, e = clipped
        types = res.members(item.vtype, demand.vtype_dists)
        routes = res.members(item.route, demand.route_dists) if item.route else [(None, 1.0)]
        parts = [(t, r, pt * pr) for t, pt in types for r, pr in routes]
        values = _split_value(kind, value, [q for *_, q in parts])
        for k, ((t, r, _), v) in enumerate(zip(parts, values, strict=True)):
            if kind == "number" and v == 0:
                continue
            vt = res.vtype(t, owner)
            rid = res.route_for(item, vt, r)
            fid = item.id if len(parts) == 1 else f"{item.id}#{k}"
            try:
                flows.append(
                    Flow(fid, rid, b, e, kind, v, vt.id, item.depart.lane, item.depart.speed)
                )
            except ValueError as exc:
                raise ValueError(f"{owner}: {exc}") from None
    if demand.items and not vehicles and not flows:
        warnings.warn(
            f"{', '.join(map(str, files))}: no vehicle departs in the window [{begin}, {end}) s; "
            f"the demand covers [{lo}, {hi}) s",
            stacklevel=2,
        )
    vehicles.sort(key=lambda d: d.depart)
    vtypes = dict(demand.vtypes)
    vtypes.setdefault("DEFAULT_VEHTYPE", VehicleType())
    return TrafficScenario(
        network=net,
        routes=tuple(Route(rid, edges, rid in res.trips) for rid, edges in res.routes.items()),
        flows=tuple(flows),
        vehicles=tuple(vehicles),
        vtypes=vtypes,
        begin=begin,
        end=end,
        signals=signals if signals is not None else SignalSettings(),
        teleport_time=teleport_time,
        name=label,
    )


@dataclasses.dataclass(frozen=True)
class SumoConfig:
    """The parts of a ``.sumocfg`` the importer uses (paths resolved against its folder)."""

    net_file: Path
    route_files: tuple[Path, ...]
    begin: float | None
    end: float | None


def read_sumocfg(cfg_file: PathLike) -> SumoConfig:
    """Read the network, route files and time window of a SUMO configuration file.

    Raises:
        FileNotFoundError: naming the file.
        ValueError: for malformed XML, a missing ``net-file`` or a non-numeric time.
    """
    path = _existing(cfg_file, "configuration")
    root = _parse_xml(path)
    values = {el.tag: el.get("value") for el in root.iter() if el.get("value") is not None}
    if "net-file" not in values:
        raise ValueError(f"{path}: no <net-file value=...> given")
    base = path.parent
    routes = tuple(
        base / p.strip() for p in (values.get("route-files") or "").split(",") if p.strip()
    )
    if values.get("additional-files"):
        warnings.warn(f"{path}: additional-files are not imported", stacklevel=2)
    times: dict[str, float | None] = {}
    for key in ("begin", "end"):
        raw = values.get(key)
        try:
            times[key] = float(raw) if raw is not None else None
        except ValueError:
            raise ValueError(f"{path}: <{key} value={raw!r}> is not a number of seconds") from None
    end = times["end"]
    return SumoConfig(
        base / str(values["net-file"]),
        routes,
        times["begin"],
        None if end is None or end < 0 else end,
    )


def load_sumocfg(
    cfg_file: PathLike, *, begin: float | None = None, end: float | None = None, **kwargs: Any
) -> TrafficScenario:
    """:func:`load_sumo` on the files and time window of a ``.sumocfg`` (``begin``/``end`` override it)."""
    cfg = read_sumocfg(cfg_file)
    return load_sumo(
        cfg.net_file,
        cfg.route_files or None,
        begin=cfg.begin if begin is None else begin,
        end=cfg.end if end is None else end,
        **kwargs,
    )
