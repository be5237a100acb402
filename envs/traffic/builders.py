"""Builders of signalised road networks and their demand, laid out the way netconvert would.

Every builder returns a :class:`~envs.traffic.scenario.TrafficScenario`. The geometry follows
SUMO's defaults so that built and imported networks look and drive alike:

- right-hand traffic; an edge runs from node to node and its lanes lie to the right of that
  line, lane 0 outermost, each :data:`LANE_WIDTH` wide (lane ``i`` of ``n`` is centred
  ``(n - i - 0.5) * LANE_WIDTH`` to the right);
- roads meet at right angles (arms point north, east, south or west); at a junction every lane
  stops where the crossing road ends plus :data:`JUNCTION_RADIUS`, so the junction box is the
  convex hull of the lane ends; dead-end (boundary) nodes cut nothing;
- a connection runs from the end of a lane to the start of a lane of another edge: a straight
  line for straight-on movements between aligned lanes, a cubic Bézier for straight-on movements
  that shift lanes, and a quadratic Bézier whose control point is where the two lanes' lines
  meet for turns, each sampled at five points as netconvert does; its speed limit is the mean of
  the two lane speeds, capped for turns at ``sqrt(TURN_LAT_ACCEL * r)`` with netconvert's radius
  estimate ``r = length / (angle - 15°) + width / 4`` (about 6.5 m/s for a tight right turn,
  11 m/s for a left turn across a 3-lane road);
- two connections of a junction conflict when they leave different lanes and either enter the
  same lane or their paths cross. A connection yields to (``conn_foes``) the conflicting ones of
  higher rank (straight over right over left, then the approach on the right, then the rightmost
  lane), and to any conflicting connection that has priority green ``G`` in a phase where it has
  a minor state (``g`` or right-on-red ``s``);
- links are numbered per junction as SUMO does: incoming edges clockwise from north, then lanes
  from the right, then right, straight and left turns, then target lanes from the right;
- signal programs are NEMA-like: per axis (north-south, then east-west) a green for through and
  right movements with permissive left turns (``g`` where they are opposed), then, if some left
  turn was permissive and ``protected_left`` is set, a protected-left green; every green is
  followed by a yellow for the links that stop (permissive lefts running on into their
  protected green keep ``g``) and, if ``all_red`` is set, by an all-red clearance (then every
  link stops). Clearance phases are never green in sumo-rl's sense, so the agent's choices are
  exactly the through and protected-left greens.

Node and edge names: a single intersection has centre ``t`` and arm nodes ``n``, ``e``, ``s``,
``w`` with edges ``n_t`` (incoming from the north) and ``t_n`` (outgoing to the north), as in
sumo-rl. Grids follow netgenerate: junction ``B1`` is column 1, row 1; boundary nodes are
``left{row}``, ``right{row}``, ``bottom{col}`` and ``top{col}``; edge ``A0B0`` runs from ``A0``
to ``B0``.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from envs.traffic.network import LINK_STATES, MAJOR, Network, Phase, SignalProgram
from envs.traffic.scenario import FLOW_KINDS, Flow, Route, SignalSettings, TrafficScenario

LANE_WIDTH = 3.2
"""Lane width, metres (SUMO's default)."""
JUNCTION_RADIUS = 4.0
"""Distance between a lane's end and the crossing road, metres (netconvert's default radius)."""
TURN_LAT_ACCEL = 5.5
"""Lateral acceleration that caps turning speeds, m/s² (``--junctions.limit-turn-speed``)."""
TURN_MIN_ANGLE = math.radians(15.0)
"""Turns flatter than this keep the lane speed (netconvert's ``limitTurnSpeedMinAngle``)."""
URBAN_SPEED = 13.89
"""50 km/h in m/s."""
COMPASS: dict[str, tuple[float, float]] = {
    "n": (0.0, 1.0),
    "e": (1.0, 0.0),
    "s": (0.0, -1.0),
    "w": (-1.0, 0.0),
}
"""Unit vectors from a junction towards its arms."""
TURNS = "rsl"
"""Turn movements: right, straight, left (SUMO ``dir`` letters)."""
DEFAULT_TURNING: dict[str, float] = {"r": 0.15, "s": 0.7, "l": 0.15}
"""Turning ratios used when none are given (renormalised over the movements that exist)."""

_RANK = {"s": 2, "r": 1, "l": 0}
_AXES = (("n", "s"), ("e", "w"))
_CLOCKWISE = ("n", "e", "s", "w")


# --- configuration ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Arm:
    """One approach of a single intersection.

    Attributes:
        name: compass direction from the junction: ``n``, ``e``, ``s`` or ``w``.
        in_lanes: lanes towards the junction (0: the arm is exit only).
        out_lanes: lanes away from the junction (0: the arm is entry only).
        length: distance from the arm's end node to the junction centre, metres.
        speed: speed limit of both edges, m/s.
        lanes: turn movements of every incoming lane, rightmost first, e.g. ``("rs", "s", "l")``
            for a shared right/straight lane, a straight lane and a dedicated left lane; empty for
            the default (one lane: all turns; two: ``rs``, ``sl``; more: ``rs``, ``s``..., ``l``),
            dropping turns towards arms that do not exist.
    """

    name: str
    in_lanes: int = 2
    out_lanes: int = 2
    length: float = 200.0
    speed: float = URBAN_SPEED
    lanes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        f = f"arms[{self.name}]"
        if self.name not in COMPASS:
            raise ValueError(f"arms: unknown arm {self.name!r}; allowed: {', '.join(COMPASS)}")
        for attr in ("in_lanes", "out_lanes"):
            v = getattr(self, attr)
            if not (isinstance(v, int | np.integer) and v >= 0):
                raise ValueError(f"{f}.{attr}: must be an integer >= 0, got {v!r}")
        if self.in_lanes == 0 and self.out_lanes == 0:
            raise ValueError(f"{f}.in_lanes: an arm needs at least one lane in or out")
        _positive(f"{f}.length", self.length)
        _positive(f"{f}.speed", self.speed)
        object.__setattr__(self, "lanes", tuple(self.lanes))
        if self.lanes:
            _check_moves(f"{f}.lanes", self.lanes, self.in_lanes)


@dataclasses.dataclass(frozen=True)
class SignalTiming:
    """Durations and options of the generated fixed-time programs.

    Attributes:
        green: seconds of each through green.
        left_green: seconds of each protected-left green.
        yellow: seconds of yellow after every green (0: none).
        all_red: seconds of all-red clearance after every yellow (0: none).
        protected_left: add a protected-left green after each through green whose left turns
            are permissive.
        right_on_red: right turns may go after stopping (``s``) while their approach is red.
        offset: offset of the cycle, seconds.
    """

    green: float = 30.0
    left_green: float = 10.0
    yellow: float = 3.0
    all_red: float = 0.0
    protected_left: bool = True
    right_on_red: bool = False
    offset: float = 0.0

    def __post_init__(self) -> None:
        _positive("timing.green", self.green)
        _positive("timing.left_green", self.left_green)
        _nonneg("timing.yellow", self.yellow)
        _nonneg("timing.all_red", self.all_red)
        _nonneg("timing.offset", self.offset)


def _positive(name: str, value: object) -> None:
    if not (
        isinstance(value, int | float | np.number) and math.isfinite(value) and float(value) > 0
    ):
        raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")


def _nonneg(name: str, value: object) -> None:
    if not (
        isinstance(value, int | float | np.number) and math.isfinite(value) and float(value) >= 0
    ):
        raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")


def _count(name: str, value: object, minimum: int = 1) -> int:
    if not (isinstance(value, int | np.integer) and not isinstance(value, bool)) or value < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_moves(field: str, moves: Sequence[str], n_lanes: int) -> None:
    if len(moves) != n_lanes:
        raise ValueError(f"{field}: expected movements for {n_lanes} lanes, got {len(moves)}")
    for i, m in enumerate(moves):
        if not m:
            raise ValueError(f"{field}: lane {i} has no turn movement")
        for ch in m:
            if ch not in TURNS:
                raise ValueError(
                    f"{field}: unknown turn {ch!r} on lane {i}; allowed: r (right), s (straight), "
                    "l (left)"
                )


def _default_moves(n_lanes: int, available: str) -> tuple[str, ...]:
    if n_lanes == 1:
        pattern: list[str] = ["rsl"]
    elif n_lanes == 2:
        pattern = ["rs", "sl"]
    else:
        pattern = ["rs"] + ["s"] * (n_lanes - 2) + ["l"]
    out = []
    for m in pattern:
        kept = "".join(ch for ch in m if ch in available)
        if not kept:
            # the lane's own turns do not exist here: give it the nearest ones that do
            kept = "s" if "s" in available else available
        out.append(kept)
    return tuple(out)


# --- geometry helpers -------------------------------------------------------------------------
def _right(u: np.ndarray) -> np.ndarray:
    return np.array([u[1], -u[0]])


def _cross(a: np.ndarray, b: np.ndarray) -> float:
    return float(a[0] * b[1] - a[1] * b[0])


def _bezier(points: Sequence[np.ndarray], n: int = 5) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    if len(points) == 3:
        p0, p1, p2 = points
        return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * p1 + t**2 * p2
    p0, p1, p2, p3 = points
    return (1 - t) ** 3 * p0 + 3 * t * (1 - t) ** 2 * p1 + 3 * t**2 * (1 - t) * p2 + t**3 * p3


def _polyline_length(shape: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(shape, axis=0), axis=1).sum())


def _segments_cross(p: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    eps = 1e-9
    d1 = _cross(q - p, a - p)
    d2 = _cross(q - p, b - p)
    d3 = _cross(b - a, p - a)
    d4 = _cross(b - a, q - a)
    if ((d1 > eps and d2 < -eps) or (d1 < -eps and d2 > eps)) and (
        (d3 > eps and d4 < -eps) or (d3 < -eps and d4 > eps)
    ):
        return True

    def on(s0: np.ndarray, s1: np.ndarray, x: np.ndarray, d: float) -> bool:
        return (
            abs(d) <= eps
            and bool(np.all(x >= np.minimum(s0, s1) - eps))
            and bool(np.all(x <= np.maximum(s0, s1) + eps))
        )

    return on(p, q, a, d1) or on(p, q, b, d2) or on(a, b, p, d3) or on(a, b, q, d4)


def paths_cross(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two polylines ``[P, 2]`` touch or cross anywhere."""
    for i in range(len(a) - 1):
        for j in range(len(b) - 1):
            if _segments_cross(a[i], a[i + 1], b[j], b[j + 1]):
                return True
    return False


def _convex_hull(points: np.ndarray) -> np.ndarray:
    pts = sorted({(round(float(x), 6), round(float(y), 6)) for x, y in points})
    if len(pts) <= 2:
        return np.array(pts, dtype=np.float64)

    def half(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for p in seq:
            while (
                len(out) >= 2
                and (out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])
                <= 0
            ):
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def _direction(a: tuple[float, float], b: tuple[float, float], field: str) -> str:
    dx, dy = b[0] - a[0], b[1] - a[1]
    for name, (ux, uy) in COMPASS.items():
        if abs(dx * uy - dy * ux) < 1e-9 and dx * ux + dy * uy > 0:
            return name
    raise ValueError(f"{field}: roads must run north-south or east-west, got {a} -> {b}")


# --- the generic network core -----------------------------------------------------------------
@dataclasses.dataclass
class _EdgeSpec:
    id: str
    src: str
    dst: str
    lanes: int
    speed: float
    moves: tuple[str, ...] = ()
    field: str = "edges"
    length_field: str = "length"


@dataclasses.dataclass
class _Built:
    network: Network
    turns: dict[str, dict[str, str]]
    """For every edge that ends at a junction: turn letter -> next edge."""
    exits: frozenset[str]
    entries: tuple[str, ...]


def _turn_of(u_in: np.ndarray, u_out: np.ndarray) -> str:
    c = _cross(u_in, u_out)
    if abs(c) < 1e-9:
        return "s" if float(u_in @ u_out) > 0 else "t"
    return "l" if c > 0 else "r"


def _target_lanes(turn: str, from_lanes: list[int], m: int, fan_out: bool) -> dict[int, list[int]]:
    if fan_out:
        return {f: list(range(m)) for f in from_lanes}
    k = len(from_lanes)
    out: dict[int, list[int]] = {}
    for i, f in enumerate(from_lanes):
        if turn == "r":
            to = min(i, m - 1)
        elif turn == "l":
            to = max(m - k + i, 0) if k <= m else max(m - 1 - (k - 1 - i), 0)
        else:
            offset = min(max(from_lanes[0], 0), max(m - k, 0))
            to = min(offset + i, m - 1)
        out[f] = [to]
    return out


def _build_network(
    name: str,
    nodes: Mapping[str, tuple[float, float]],
    edges: Sequence[_EdgeSpec],
    timing: SignalTiming,
    *,
    fan_out: bool = False,
    lane_width: float = LANE_WIDTH,
    radius: float = JUNCTION_RADIUS,
) -> _Built:
    """Lay out lanes, junctions, connections, conflicts and signal programs."""
    w = lane_width
    incoming: dict[str, dict[str, _EdgeSpec]] = {n: {} for n in nodes}
    outgoing: dict[str, dict[str, _EdgeSpec]] = {n: {} for n in nodes}
    edge_dir: dict[str, np.ndarray] = {}
    for e in edges:
        for end in (e.src, e.dst):
            if end not in nodes:
                raise ValueError(f"{e.field}: edge {e.id!r} refers to unknown node {end!r}")
        _count(f"{e.field}.lanes", e.lanes)
        _positive(f"{e.field}.speed", e.speed)
        d = _direction(nodes[e.src], nodes[e.dst], e.field)
        edge_dir[e.id] = np.array(COMPASS[d])
        back = _direction(nodes[e.dst], nodes[e.src], e.field)
        if back in incoming[e.dst] or d in outgoing[e.src]:
            raise ValueError(f"{e.field}: two edges share the arm {e.src} -> {e.dst}")
        incoming[e.dst][back] = e
        outgoing[e.src][d] = e
    # junctions: nodes where three or four roads meet; every other node is a dead end
    junctions = [n for n in nodes if len(set(incoming[n]) | set(outgoing[n])) >= 3]

    # how far lanes stop short of every junction, per arm
    cut: dict[tuple[str, str], float] = {}
    for j in junctions:
        for arm, u in COMPASS.items():
            r = _right(np.array(u))
            side_r = _name_of(r)
            side_l = _name_of(-r)
            n_in = incoming[j][side_r].lanes if side_r in incoming[j] else 0
            n_out = outgoing[j][side_l].lanes if side_l in outgoing[j] else 0
            cut[(j, arm)] = radius + w * max(n_in, n_out)

    lane_ids: list[str] = []
    lane_edge: list[int] = []
    lane_index: list[int] = []
    lane_length: list[float] = []
    lane_speed: list[float] = []
    lane_shapes: list[np.ndarray] = []
    lane_of: dict[tuple[str, int], int] = {}
    for k, e in enumerate(edges):
        u = edge_dir[e.id]
        r = _right(u)
        p0 = np.array(nodes[e.src], dtype=np.float64)
        p1 = np.array(nodes[e.dst], dtype=np.float64)
        if e.src in junctions:
            p0 = p0 + u * cut[(e.src, _name_of(u))]
        if e.dst in junctions:
            p1 = p1 - u * cut[(e.dst, _name_of(-u))]
        length = float((p1 - p0) @ u)
        if not length > 0:
            raise ValueError(
                f"{e.length_field}: edge {e.id!r} is too short for its junctions "
                f"({length:.2f} m left after cutting the junction boxes)"
            )
        for i in range(e.lanes):
            off = r * (e.lanes - i - 0.5) * w
            lane_of[(e.id, i)] = len(lane_ids)
            lane_ids.append(f"{e.id}_{i}")
            lane_edge.append(k)
            lane_index.append(i)
            lane_length.append(length)
            lane_speed.append(float(e.speed))
            lane_shapes.append(np.stack([p0 + off, p1 + off]))

    conn_from: list[int] = []
    conn_to: list[int] = []
    conn_len: list[float] = []
    conn_speed: list[float] = []
    conn_dir: list[str] = []
    conn_tls: list[int] = []
    conn_link: list[int] = []
    conn_shapes: list[np.ndarray] = []
    conn_arm: list[str] = []
    conn_foes: list[tuple[int, ...]] = []
    signals: list[SignalProgram] = []
    junction_shapes: dict[str, np.ndarray] = {}
    turns: dict[str, dict[str, str]] = {}

    for j in junctions:
        corners = []
        for arm, u_t in COMPASS.items():
            if arm not in incoming[j] and arm not in outgoing[j]:
                continue
            u = np.array(u_t)
            base = np.array(nodes[j]) + u * cut[(j, arm)]
            n_out = outgoing[j][arm].lanes if arm in outgoing[j] else 0
            n_in = incoming[j][arm].lanes if arm in incoming[j] else 0
            corners += [base + _right(u) * n_out * w, base - _right(u) * n_in * w]
        junction_shapes[j] = _convex_hull(np.array(corners))

        first = len(conn_from)
        for arm in _CLOCKWISE:
            if arm not in incoming[j]:
                continue
            e = incoming[j][arm]
            u_in = edge_dir[e.id]
            targets: dict[str, _EdgeSpec] = {}
            for oe in outgoing[j].values():
                t = _turn_of(u_in, edge_dir[oe.id])
                if t != "t":
                    targets[t] = oe
            available = "".join(t for t in TURNS if t in targets)
            if not available:
                raise ValueError(f"{e.field}: edge {e.id!r} has no way out of junction {j!r}")
            if e.moves:
                _check_moves(e.field + ".lanes", e.moves, e.lanes)
                moves = e.moves
                for i, m in enumerate(moves):
                    for ch in m:
                        if ch not in targets:
                            raise ValueError(
                                f"{e.field}.lanes: lane {i} turns {ch!r} at junction {j!r}, where "
                                f"only {', '.join(available)} lead somewhere"
                            )
            else:
                moves = _default_moves(e.lanes, available)
            turns[e.id] = {t: targets[t].id for t in TURNS if any(t in m for m in moves)}
            plan: dict[int, list[tuple[str, int]]] = {i: [] for i in range(e.lanes)}
            for t in TURNS:
                from_lanes = [i for i, m in enumerate(moves) if t in m]
                if not from_lanes:
                    continue
                for f, tos in _target_lanes(t, from_lanes, targets[t].lanes, fan_out).items():
                    plan[f] += [(t, to) for to in tos]
            for i in range(e.lanes):
                for t, to in plan[i]:
                    oe = targets[t]
                    a, b = lane_of[(e.id, i)], lane_of[(oe.id, to)]
                    shape = _connection_shape(lane_shapes[a], lane_shapes[b], t)
                    length = _polyline_length(shape)
                    speed = 0.5 * (lane_speed[a] + lane_speed[b])
                    angle = math.acos(float(np.clip(u_in @ edge_dir[oe.id], -1.0, 1.0)))
                    angle -= TURN_MIN_ANGLE
                    if angle > 0 and length > 1:
                        speed = min(speed, math.sqrt(TURN_LAT_ACCEL * (length / angle + w / 4)))
                    conn_from.append(a)
                    conn_to.append(b)
                    conn_len.append(length)
                    conn_speed.append(round(speed, 2))
                    conn_dir.append(t)
                    conn_tls.append(len(signals))
                    conn_link.append(len(conn_from) - 1 - first)
                    conn_shapes.append(shape)
                    conn_arm.append(arm)
        ids = list(range(first, len(conn_from)))
        program, foes = _junction_program(
            j, ids, conn_from, conn_to, conn_dir, conn_shapes, conn_arm, timing
        )
        signals.append(program)
        conn_foes += [tuple(foes[c]) for c in ids]

    network = Network(
        lane_ids=tuple(lane_ids),
        lane_edge=lane_edge,
        lane_index=lane_index,
        lane_length=lane_length,
        lane_speed=lane_speed,
        lane_shapes=tuple(lane_shapes),
        lane_width=[w] * len(lane_ids),
        edge_ids=tuple(e.id for e in edges),
        edge_from=tuple(e.src for e in edges),
        edge_to=tuple(e.dst for e in edges),
        conn_from=conn_from,
        conn_to=conn_to,
        conn_length=conn_len,
        conn_speed=conn_speed,
        conn_dir=tuple(conn_dir),
        conn_tls=conn_tls,
        conn_link=conn_link,
        conn_state=[MAJOR] * len(conn_from),
        conn_foes=tuple(conn_foes),
        conn_shapes=tuple(conn_shapes),
        signals=tuple(signals),
        nodes={n: (float(x), float(y)) for n, (x, y) in nodes.items()},
        junction_shapes=junction_shapes,
        name=name,
    )
    exits = frozenset(e.id for e in edges if e.dst not in junctions)
    entries = tuple(e.id for e in edges if e.src not in junctions)
    return _Built(network, turns, exits, entries)


def _name_of(u: np.ndarray) -> str:
    for name, v in COMPASS.items():
        if abs(u[0] - v[0]) < 1e-9 and abs(u[1] - v[1]) < 1e-9:
            return name
    raise AssertionError(u)


def _connection_shape(from_shape: np.ndarray, to_shape: np.ndarray, turn: str) -> np.ndarray:
    p0, p2 = from_shape[-1], to_shape[0]
    u_in = from_shape[-1] - from_shape[-2]
    u_in = u_in / np.linalg.norm(u_in)
    u_out = to_shape[1] - to_shape[0]
    u_out = u_out / np.linalg.norm(u_out)
    if turn == "s":
        gap = p2 - p0
        if abs(_cross(u_in, gap)) < 1e-9:
            return np.stack([p0, p2])
        half = 0.5 * float(np.linalg.norm(gap))
        return _bezier([p0, p0 + u_in * half, p2 - u_out * half, p2])
    # control point: where the line along the incoming lane meets the line along the outgoing one
    denom = _cross(u_in, u_out)
    s = _cross(p2 - p0, u_out) / denom
    return _bezier([p0, p0 + u_in * s, p2])


def _junction_program(
    node: str,
    ids: list[int],
    conn_from: list[int],
    conn_to: list[int],
    conn_dir: list[str],
    shapes: list[np.ndarray],
    conn_arm: list[str],
    timing: SignalTiming,
) -> tuple[SignalProgram, dict[int, set[int]]]:
    n = len(ids)
    pos = {c: k for k, c in enumerate(ids)}
    conflict = np.zeros((n, n), dtype=bool)
    for x, c in enumerate(ids):
        for y in range(x + 1, n):
            f = ids[y]
            if conn_from[c] == conn_from[f]:
                continue
            if conn_to[c] == conn_to[f] or paths_cross(shapes[c], shapes[f]):
                conflict[x, y] = conflict[y, x] = True

    def ahead(f: int, c: int) -> bool:
        """Whether ``f`` has the right of way over ``c`` (when both could go)."""
        if _RANK[conn_dir[f]] != _RANK[conn_dir[c]]:
            return _RANK[conn_dir[f]] > _RANK[conn_dir[c]]
        af, ac = conn_arm[f], conn_arm[c]
        turn = (_CLOCKWISE.index(ac) - _CLOCKWISE.index(af)) % 4
        if turn == 1:  # f approaches from c's right
            return True
        if turn == 3:
            return False
        return (conn_from[f], f) < (conn_from[c], c)

    yields = np.zeros((n, n), dtype=bool)
    for x, c in enumerate(ids):
        for y, f in enumerate(ids):
            yields[x, y] = conflict[x, y] and ahead(f, c)

    def green(served: list[int]) -> list[str]:
        states = []
        for x, c in enumerate(ids):
            if c in served:
                states.append("g" if any(yields[x, pos[f]] for f in served) else "G")
            elif timing.right_on_red and conn_dir[c] == "r":
                states.append("s")
            else:
                states.append("r")
        return states

    greens: list[tuple[str, float, list[str]]] = []
    for axis in _AXES:
        served = [c for c in ids if conn_arm[c] in axis]
        if not served:
            continue
        label = "".join(a.upper() for a in axis if any(conn_arm[c] == a for c in served))
        through = green(served)
        greens.append((label, timing.green, through))
        lefts = [c for c in served if conn_dir[c] == "l"]
        if timing.protected_left and any(through[pos[c]] == "g" for c in lefts):
            greens.append((label + "-left", timing.left_green, green(lefts)))

    phases: list[Phase] = []
    for k, (label, duration, state) in enumerate(greens):
        nxt = greens[(k + 1) % len(greens)][2]
        phases.append(Phase(duration, "".join(state), name=label))
        go = [ch in "Gg" for ch in state]
        go_next = [ch in "Gg" for ch in nxt]
        if len(greens) == 1:
            continue
        # with an all-red clearance every moving link stops; without one, links that keep
        # going into the next green keep their state through the yellow
        stop = [g and (timing.all_red > 0 or not gn) for g, gn in zip(go, go_next, strict=True)]
        if timing.yellow > 0:
            yellow = ["y" if st else ch for ch, st in zip(state, stop, strict=True)]
            phases.append(Phase(timing.yellow, "".join(yellow), name=label + "-yellow"))
        if timing.all_red > 0:
            red = ["s" if ch == "s" else "r" for ch in state]
            phases.append(Phase(timing.all_red, "".join(red), name=label + "-red"))

    foes: dict[int, set[int]] = {
        c: {f for y, f in enumerate(ids) if yields[x, y]} for x, c in enumerate(ids)
    }
    for p in phases:
        for x, c in enumerate(ids):
            if p.state[x] in "gs":
                foes[c] |= {f for y, f in enumerate(ids) if conflict[x, y] and p.state[y] == "G"}
    program = SignalProgram(id=node, phases=tuple(phases), offset=timing.offset)
    return program, foes


# --- demand -----------------------------------------------------------------------------------
def _check_turning(field: str, ratios: Mapping[str, float], available: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for t, v in ratios.items():
        if t not in TURNS:
            raise ValueError(
                f"{field}: unknown turn {t!r}; allowed: r (right), s (straight), l (left)"
            )
        _nonneg(f"{field}[{t}]", v)
        if v > 0 and t not in available:
            raise ValueError(
                f"{field}: turn {t!r} has ratio {v} but only {', '.join(available)} lead somewhere"
            )
        out[t] = float(v)
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"{field}: turning ratios must sum to 1, got {total:g}")
    return out


def _default_turning(available: str) -> dict[str, float]:
    total = sum(DEFAULT_TURNING[t] for t in available)
    return {t: DEFAULT_TURNING[t] / total for t in available}


def _routes_from_turning(
    built: _Built,
    entry: str,
    ratios: Callable[[str], Mapping[str, float]],
    *,
    min_share: float = 1e-3,
    max_edges: int = 64,
) -> list[tuple[tuple[str, ...], float]]:
    """All routes from ``entry`` to an exit with their shares under per-edge turning ratios.

    Routes less likely than ``min_share``, or revisiting an edge, are dropped and the rest
    renormalised.
    """
    found: list[tuple[tuple[str, ...], float]] = []
    stack: list[tuple[tuple[str, ...], float]] = [((entry,), 1.0)]
    while stack:
        path, p = stack.pop()
        last = path[-1]
        if last in built.exits:
            found.append((path, p))
            continue
        nxt = built.turns.get(last, {})
        weights = {t: float(v) for t, v in ratios(last).items() if t in nxt and v > 0}
        total = sum(weights.values())
        if total <= 0:
            weights = {t: 1.0 for t in nxt}
            total = float(len(nxt))
        for t in reversed(TURNS):
            if t not in weights:
                continue
            q = p * weights[t] / total
            edge = nxt[t]
            if q >= min_share and edge not in path and len(path) < max_edges:
                stack.append((path + (edge,), q))
    kept = sum(p for _, p in found)
    if kept <= 0:
        raise ValueError(f"turning: no route from edge {entry!r} reaches an exit")
    found.sort(key=lambda rp: -rp[1])
    return [(path, p / kept) for path, p in found]


def _flow(
    fid: str,
    route: str,
    rate: float,
    kind: str,
    end: float,
    profile: tuple[tuple[float, float], ...],
) -> Flow:
    if kind == "probability":
        if rate > 3600:
            raise ValueError(
                f"flow_kind: a probability flow carries at most 3600 veh/h, flow {fid!r} needs "
                f"{rate:.1f}"
            )
        value = rate / 3600.0
    elif kind == "period":
        value = 3600.0 / rate
    elif kind == "number":
        value = float(round(rate * end / 3600.0))
    else:
        value = rate
    return Flow(
        id=fid,
        route=route,
        begin=0.0,
        end=end,
        kind=kind,
        value=value,
        depart_lane="best",
        depart_speed="max",
        profile=profile,
    )


def _check_demand_args(
    flow_kind: str, scale: float, seconds: float, profile: Sequence[tuple[float, float]]
) -> tuple[tuple[float, float], ...]:
    if flow_kind not in FLOW_KINDS:
        raise ValueError(
            f"flow_kind: {flow_kind!r} is not supported; allowed: {', '.join(FLOW_KINDS)}"
        )
    _nonneg("scale", scale)
    _positive("seconds", seconds)
    prof = tuple((float(t), float(f)) for t, f in (profile or ()))
    for t, f in prof:
        _nonneg("profile time", t)
        _nonneg("profile factor", f)
    if any(b[0] <= a[0] for a, b in zip(prof, prof[1:], strict=False)):
        raise ValueError("profile: times must increase")
    if prof and flow_kind not in ("probability", "vehs_per_hour", "poisson"):
        raise ValueError(f"profile: not supported by flow_kind {flow_kind!r}")
    return prof


def _settings(signals: SignalSettings | None, timing: SignalTiming) -> SignalSettings:
    if signals is not None:
        return signals
    return SignalSettings(yellow_time=timing.yellow, all_red_time=timing.all_red)


# --- single intersection ----------------------------------------------------------------------
def single_intersection(
    arms: int | Sequence[Arm | str] = 4,
    *,
    lanes_per_arm: int = 2,
    length: float = 200.0,
    speed: float = URBAN_SPEED,
    movement_flows: Mapping[str, float] | None = None,
    arm_flows: Mapping[str, float] | None = None,
    turning: Mapping[str, Mapping[str, float]] | None = None,
    timing: SignalTiming | None = None,
    flow_kind: str = "poisson",
    scale: float = 1.0,
    profile: Sequence[tuple[float, float]] = (),
    seconds: float = 3600.0,
    signals: SignalSettings | None = None,
    fan_out: bool = False,
    name: str = "single_intersection",
) -> TrafficScenario:
    """A signalised 4-arm (or 3-arm T) intersection with its demand.

    Demand is either per movement (``movement_flows``: ``{"ns": 300, "we": 500}`` in veh/h, the
    key being the entry arm then the exit arm) or per arm (``arm_flows``: veh/h entering from
    each arm, split by ``turning``: ``{"n": {"l": 0.2, "s": 0.7, "r": 0.1}}``). Each movement
    becomes one route ``route_<from><to>`` and one flow ``flow_<from><to>``.

    Args:
        arms: ``4`` (n, e, s, w), ``3`` (a T: e, s, w), arm names, or :class:`Arm` specs.
        lanes_per_arm: incoming and outgoing lanes of arms given by count or name.
        length: node-to-centre distance of arms given by count or name, metres.
        speed: speed limit of arms given by count or name, m/s.
        movement_flows: veh/h per movement; exclusive with ``arm_flows``.
        arm_flows: veh/h entering per arm (default 600 on every entry arm).
        turning: turning ratios per arm (default :data:`DEFAULT_TURNING` over the turns that
            exist); every given mapping must sum to 1.
        timing: signal program durations and options.
        flow_kind: how each flow spaces its vehicles (``poisson``: random arrivals).
        scale: multiplies every rate.
        profile: piecewise-constant rate factors ``((t, factor), ...)`` over the episode.
        seconds: episode length, s.
        signals: agent-control settings (default: yellow and all-red times of ``timing``).
        fan_out: connect every lane of a movement to every target lane (as RESCO's nets).
        name: scenario and network name.

    Returns:
        The scenario.

    Raises:
        ValueError: naming the offending argument.
    """
    timing = timing or SignalTiming()
    prof = _check_demand_args(flow_kind, scale, seconds, profile)
    _count("lanes_per_arm", lanes_per_arm)
    _positive("length", length)
    _positive("speed", speed)
    if isinstance(arms, int | np.integer) and not isinstance(arms, bool):
        if arms not in (3, 4):
            raise ValueError(f"arms: a count must be 3 or 4, got {arms}")
        arms = ("n", "e", "s", "w") if arms == 4 else ("e", "s", "w")
    specs = [
        a
        if isinstance(a, Arm)
        else Arm(a, lanes_per_arm, lanes_per_arm, length=length, speed=speed)
        for a in arms
    ]
    names = [a.name for a in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"arms: duplicate arm in {names}")
    if len(specs) < 3:
        raise ValueError(f"arms: an intersection needs 3 or 4 arms, got {len(specs)}")
    reach = max(a.length for a in specs)
    centre = (reach, reach)
    nodes = {"t": centre}
    edges = []
    for a in specs:
        u = COMPASS[a.name]
        nodes[a.name] = (centre[0] + u[0] * a.length, centre[1] + u[1] * a.length)
    for inbound in (True, False):
        for a in specs:
            n_lanes = a.in_lanes if inbound else a.out_lanes
            if n_lanes:
                src, dst = (a.name, "t") if inbound else ("t", a.name)
                moves = a.lanes if inbound else ()
                field = f"arms[{a.name}]"
                edges.append(
                    _EdgeSpec(
                        f"{src}_{dst}", src, dst, n_lanes, a.speed, moves, field, field + ".length"
                    )
                )
    built = _build_network(name, nodes, edges, timing, fan_out=fan_out)

    entry_arms = [a.name for a in specs if a.in_lanes]
    exit_of = {f"t_{a.name}": a.name for a in specs if a.out_lanes}
    rates: dict[tuple[str, str], float] = {}
    if movement_flows is not None:
        if arm_flows is not None or turning is not None:
            raise ValueError("movement_flows: give either movement_flows or arm_flows/turning")
        possible = {(a, exit_of[out]) for a in entry_arms for out in built.turns[f"{a}_t"].values()}
        for key, rate in movement_flows.items():
            if len(key) != 2 or (key[0], key[1]) not in possible:
                raise ValueError(
                    f"movement_flows: unknown movement {key!r}; possible: "
                    f"{', '.join(sorted(a + b for a, b in possible))}"
                )
            _nonneg(f"movement_flows[{key}]", rate)
            rates[(key[0], key[1])] = float(rate)
    else:
        inflow = dict(arm_flows) if arm_flows is not None else dict.fromkeys(entry_arms, 600.0)
        for a, v in inflow.items():
            if a not in entry_arms:
                raise ValueError(
                    f"arm_flows: unknown entry arm {a!r}; entry arms: {', '.join(entry_arms)}"
                )
            _nonneg(f"arm_flows[{a}]", v)
        for a in turning or {}:
            if a not in entry_arms:
                raise ValueError(
                    f"turning: unknown entry arm {a!r}; entry arms: {', '.join(entry_arms)}"
                )
        for a in entry_arms:
            nxt = built.turns[f"{a}_t"]
            available = "".join(t for t in TURNS if t in nxt)
            if turning is not None and a in turning:
                ratio = _check_turning(f"turning[{a}]", turning[a], available)
            else:
                ratio = _default_turning(available)
            for t, share in ratio.items():
                if share > 0:
                    rates[(a, exit_of[nxt[t]])] = float(inflow.get(a, 0.0)) * share

    routes, flows = [], []
    for (a, b), rate in rates.items():
        routes.append(Route(f"route_{a}{b}", (f"{a}_t", f"t_{b}")))
        if rate * scale > 0:
            flows.append(
                _flow(f"flow_{a}{b}", f"route_{a}{b}", rate * scale, flow_kind, seconds, prof)
            )
    return TrafficScenario(
        network=built.network,
        routes=tuple(routes),
        flows=tuple(flows),
        end=float(seconds),
        signals=_settings(signals, timing),
        name=name,
    )


def sumo_rl_single_intersection(
    *,
    seconds: float = 20000.0,
    scale: float = 1.0,
    signals: SignalSettings | None = None,
    teleport_time: float = -1.0,
    name: str = "sumo_rl_single",
) -> TrafficScenario:
    """sumo-rl's ``single-intersection`` network and demand, number for number.

    Two 2-lane one-way roads cross at node ``t`` (150, 150): ``n_t`` southwards into ``t_s``
    and ``w_t`` eastwards into ``t_e``, four straight connections through 9.5 m internal lanes,
    the fixed-time program ``GGrr 42 / yyrr 2 / rrGG 42 / rryy 2``, and Bernoulli flows of 0.2
    (north-south) and 0.5 (west-east) vehicles per second. The lane spacing (3.3 m) and junction
    size are those of the shipped file, which netconvert 0.32 wrote. Defaults (20000 s, no
    teleporting, sumo-rl's control settings) match ``SumoEnvironment``'s.

    Args:
        seconds: episode length, s.
        scale: multiplies both departure probabilities (the result must stay <= 1).
        signals: agent-control settings (default: sumo-rl's).
        teleport_time: SUMO's ``--time-to-teleport`` (sumo-rl disables it).
        name: scenario and network name.

    Returns:
        The scenario.
    """
    _nonneg("scale", scale)
    _positive("seconds", seconds)
    lanes = {
        # edge: (from node, to node, length, [(x0, y0, x1, y1) per lane])
        "n_t": (
            "n",
            "t",
            148.55,
            [(145.05, 300.0, 145.05, 151.45), (148.35, 300.0, 148.35, 151.45)],
        ),
        "t_e": (
            "t",
            "e",
            148.55,
            [(151.45, 145.05, 300.0, 145.05), (151.45, 148.35, 300.0, 148.35)],
        ),
        "t_s": ("t", "s", 141.95, [(145.05, 141.95, 145.05, 0.0), (148.35, 141.95, 148.35, 0.0)]),
        "w_t": ("w", "t", 141.95, [(0.0, 145.05, 141.95, 145.05), (0.0, 148.35, 141.95, 148.35)]),
    }
    lane_ids, lane_edge, lane_index, lane_length, lane_shapes = [], [], [], [], []
    for k, (edge, (_, _, length, shapes)) in enumerate(lanes.items()):
        for i, (x0, y0, x1, y1) in enumerate(shapes):
            lane_ids.append(f"{edge}_{i}")
            lane_edge.append(k)
            lane_index.append(i)
            lane_length.append(length)
            lane_shapes.append(np.array([[x0, y0], [x1, y1]]))
    idx = {lane: i for i, lane in enumerate(lane_ids)}
    pairs = [("n_t_0", "t_s_0"), ("n_t_1", "t_s_1"), ("w_t_0", "t_e_0"), ("w_t_1", "t_e_1")]
    program = SignalProgram(
        id="t",
        phases=(
            Phase(42.0, "GGrr"),
            Phase(2.0, "yyrr"),
            Phase(42.0, "rrGG"),
            Phase(2.0, "rryy"),
        ),
    )
    network = Network(
        lane_ids=tuple(lane_ids),
        lane_edge=lane_edge,
        lane_index=lane_index,
        lane_length=lane_length,
        lane_speed=[13.90] * len(lane_ids),
        lane_shapes=tuple(lane_shapes),
        lane_width=[LANE_WIDTH] * len(lane_ids),
        edge_ids=tuple(lanes),
        edge_from=tuple(v[0] for v in lanes.values()),
        edge_to=tuple(v[1] for v in lanes.values()),
        conn_from=[idx[a] for a, _ in pairs],
        conn_to=[idx[b] for _, b in pairs],
        conn_length=[9.50] * 4,
        conn_speed=[13.90] * 4,
        conn_dir=("s", "s", "s", "s"),
        conn_tls=[0] * 4,
        conn_link=[0, 1, 2, 3],
        conn_state=[LINK_STATES.index("O")] * 4,
        # the junction's response matrix: links 0 and 1 give way to links 2 and 3
        conn_foes=((2, 3), (2, 3), (), ()),
        conn_shapes=(
            np.array([[145.05, 151.45], [145.05, 141.95]]),
            np.array([[148.35, 151.45], [148.35, 141.95]]),
            np.array([[141.95, 145.05], [151.45, 145.05]]),
            np.array([[141.95, 148.35], [151.45, 148.35]]),
        ),
        signals=(program,),
        nodes={
            "e": (300.0, 150.0),
            "n": (150.0, 300.0),
            "s": (150.0, 0.0),
            "t": (150.0, 150.0),
            "w": (0.0, 150.0),
        },
        junction_shapes={
            "t": np.array(
                [
                    [143.45, 151.45],
                    [149.95, 151.45],
                    [151.45, 149.95],
                    [151.45, 143.45],
                    [149.95, 141.95],
                    [143.45, 141.95],
                    [141.95, 143.45],
                    [141.95, 149.95],
                ]
            )
        },
        name=name,
    )
    flows = []
    for route, p in (("route_ns", 0.2), ("route_we", 0.5)):
        value = p * scale
        if value > 1:
            raise ValueError(f"scale: {route} would depart with probability {value:g} > 1")
        flows.append(
            Flow(
                id="flow_" + route.removeprefix("route_"),
                route=route,
                begin=0.0,
                end=100000.0,
                kind="probability",
                value=value,
                depart_lane="best",
                depart_speed="max",
            )
        )
    return TrafficScenario(
        network=network,
        routes=(Route("route_ns", ("n_t", "t_s")), Route("route_we", ("w_t", "t_e"))),
        flows=tuple(flows),
        end=float(seconds),
        signals=signals or SignalSettings(),
        teleport_time=teleport_time,
        name=name,
    )


# --- grids and arterials ----------------------------------------------------------------------
def _grid_layout(
    rows: int,
    cols: int,
    *,
    spacing: float,
    attach: float,
    ew_lanes: int,
    ns_lanes: int,
    ew_speed: float,
    ns_speed: float,
    ew_moves: tuple[str, ...],
    ns_moves: tuple[str, ...],
) -> tuple[dict[str, tuple[float, float]], list[_EdgeSpec]]:
    def jid(c: int, r: int) -> str:
        return f"{_column(c)}{r}"

    xs = [attach + c * spacing for c in range(cols)]
    ys = [attach + r * spacing for r in range(rows)]
    nodes: dict[str, tuple[float, float]] = {}
    for c in range(cols):
        for r in range(rows):
            nodes[jid(c, r)] = (xs[c], ys[r])
    right_x = xs[-1] + attach
    top_y = ys[-1] + attach
    for r in range(rows):
        nodes[f"left{r}"] = (0.0, ys[r])
        nodes[f"right{r}"] = (right_x, ys[r])
    for c in range(cols):
        nodes[f"bottom{c}"] = (xs[c], 0.0)
        nodes[f"top{c}"] = (xs[c], top_y)

    def horizontal(a: str, b: str, boundary: bool) -> _EdgeSpec:
        moves = () if _is_boundary(b) else ew_moves
        field = "attach" if boundary else "spacing"
        return _EdgeSpec(a + b, a, b, ew_lanes, ew_speed, moves, "ew_lanes", field)

    def vertical(a: str, b: str, boundary: bool) -> _EdgeSpec:
        moves = () if _is_boundary(b) else ns_moves
        field = "attach" if boundary else "spacing"
        return _EdgeSpec(a + b, a, b, ns_lanes, ns_speed, moves, "ns_lanes", field)

    edges: list[_EdgeSpec] = []
    for c in range(cols):
        for r in range(rows):
            j = jid(c, r)
            up = jid(c, r + 1) if r + 1 < rows else f"top{c}"
            down = jid(c, r - 1) if r > 0 else f"bottom{c}"
            east = jid(c + 1, r) if c + 1 < cols else f"right{r}"
            west = jid(c - 1, r) if c > 0 else f"left{r}"
            edges.append(vertical(j, up, r + 1 == rows))
            edges.append(horizontal(j, east, c + 1 == cols))
            edges.append(vertical(j, down, r == 0))
            edges.append(horizontal(j, west, c == 0))
    for r in range(rows):
        edges.append(horizontal(f"left{r}", jid(0, r), True))
        edges.append(horizontal(f"right{r}", jid(cols - 1, r), True))
    for c in range(cols):
        edges.append(vertical(f"bottom{c}", jid(c, 0), True))
        edges.append(vertical(f"top{c}", jid(c, rows - 1), True))
    edges.sort(key=lambda e: e.id)
    return nodes, edges


def _is_boundary(node: str) -> bool:
    return node.rstrip("0123456789") in ("left", "right", "top", "bottom")


def _column(c: int) -> str:
    name = ""
    c += 1
    while c:
        c, rem = divmod(c - 1, 26)
        name = chr(65 + rem) + name
    return name


def _moves_for(field: str, lanes: int, moves: Sequence[str] | None) -> tuple[str, ...]:
    if moves is None:
        return ()
    moves = tuple(moves)
    _check_moves(field, moves, lanes)
    return moves


def _travel_time(net: Network) -> dict[str, float]:
    tt = {}
    for e, lanes in zip(net.edge_ids, net.edge_lanes, strict=True):
        lane = lanes[0]
        tt[e] = float(net.lane_length[lane] / net.lane_speed[lane])
    return tt


def _shortest_route(built: _Built, src: str, dst: str) -> tuple[str, ...]:
    tt = _travel_time(built.network)
    best = {src: tt[src]}
    prev: dict[str, str] = {}
    heap = [(tt[src], src)]
    while heap:
        d, e = heapq.heappop(heap)
        if e == dst:
            break
        if d > best[e]:
            continue
        for nxt in sorted(built.turns.get(e, {}).values()):
            nd = d + tt[nxt]
            if nd < best.get(nxt, math.inf) - 1e-9:
                best[nxt] = nd
                prev[nxt] = e
                heapq.heappush(heap, (nd, nxt))
    if dst not in best:
        raise ValueError(f"od: no route from {src!r} to {dst!r}")
    path = [dst]
    while path[-1] != src:
        path.append(prev[path[-1]])
    return tuple(reversed(path))


def grid(
    rows: int = 4,
    cols: int = 4,
    *,
    spacing: float = 300.0,
    attach: float = 300.0,
    lanes: int = 3,
    ns_lanes: int | None = None,
    ew_lanes: int | None = None,
    moves: Sequence[str] | None = None,
    ns_moves: Sequence[str] | None = None,
    ew_moves: Sequence[str] | None = None,
    speed: float = URBAN_SPEED,
    ns_speed: float | None = None,
    ew_speed: float | None = None,
    demand: str = "od",
    inflow: float = 300.0,
    ns_inflow: float | None = None,
    ew_inflow: float | None = None,
    destinations: int = 3,
    turning: Mapping[str, float] | None = None,
    ns_turning: Mapping[str, float] | None = None,
    ew_turning: Mapping[str, float] | None = None,
    min_route_share: float = 1e-3,
    seed: int = 0,
    timing: SignalTiming | None = None,
    fan_out: bool = False,
    flow_kind: str = "poisson",
    scale: float = 1.0,
    profile: Sequence[tuple[float, float]] = (),
    seconds: float = 3600.0,
    signals: SignalSettings | None = None,
    name: str = "grid",
) -> TrafficScenario:
    """A ``rows`` x ``cols`` grid of signalised junctions with boundary entry and exit edges.

    Junctions are ``spacing`` apart and each boundary node lies ``attach`` beyond the outer
    junctions (netgenerate's ``--grid.attach-length``). Every road has ``lanes`` lanes per
    direction; with three lanes they are a right, a straight and a left lane as in RESCO's
    ``grid4x4``. North-south (``ns_*``) and east-west (``ew_*``) roads can differ.

    Demand: ``"od"`` sends ``inflow`` veh/h into every entry edge, split evenly over
    ``destinations`` exits drawn at random (``seed``) and routed by the fastest path;
    ``"turning"`` lets vehicles turn at every junction by ``turning`` ratios and turns those
    into routes (paths less likely than ``min_route_share`` are dropped and the rest
    renormalised).

    Args:
        rows: junction rows (north-south extent).
        cols: junction columns (east-west extent).
        spacing: distance between neighbouring junction centres, metres.
        attach: distance from the outer junctions to the boundary nodes, metres.
        lanes: lanes per direction of every road.
        ns_lanes: lanes of north-south roads (default ``lanes``).
        ew_lanes: lanes of east-west roads (default ``lanes``).
        moves: turns per incoming lane, rightmost first (default: ``("r", "s", "l")`` for
            three lanes, otherwise as for :class:`Arm`).
        ns_moves: turns per lane of north-south roads (default ``moves``).
        ew_moves: turns per lane of east-west roads (default ``moves``).
        speed: speed limit, m/s.
        ns_speed: speed limit of north-south roads (default ``speed``).
        ew_speed: speed limit of east-west roads (default ``speed``).
        demand: ``"od"`` or ``"turning"``.
        inflow: veh/h into every entry edge.
        ns_inflow: veh/h into north and south entries (default ``inflow``).
        ew_inflow: veh/h into east and west entries (default ``inflow``).
        destinations: exits per entry for ``"od"`` demand.
        turning: turning ratios at every junction for ``"turning"`` demand.
        ns_turning: turning ratios of vehicles on north-south roads (default ``turning``).
        ew_turning: turning ratios of vehicles on east-west roads (default ``turning``).
        min_route_share: smallest share of an entry's flow a ``"turning"`` route keeps.
        seed: seed of the random O-D draw.
        timing: signal program durations and options.
        fan_out: connect every lane of a movement to every target lane (RESCO's nets do).
        flow_kind: how each flow spaces its vehicles (``poisson``: random arrivals).
        scale: multiplies every rate.
        profile: piecewise-constant rate factors ``((t, factor), ...)``.
        seconds: episode length, s.
        signals: agent-control settings (default: yellow and all-red times of ``timing``).
        name: scenario and network name.

    Returns:
        The scenario.

    Raises:
        ValueError: naming the offending argument.
    """
    timing = timing or SignalTiming()
    prof = _check_demand_args(flow_kind, scale, seconds, profile)
    rows = _count("rows", rows)
    cols = _count("cols", cols)
    _positive("spacing", spacing)
    _positive("attach", attach)
    _count("lanes", lanes)
    ns_l = _count("ns_lanes", lanes if ns_lanes is None else ns_lanes)
    ew_l = _count("ew_lanes", lanes if ew_lanes is None else ew_lanes)
    _positive("speed", speed)
    ns_v = speed if ns_speed is None else ns_speed
    ew_v = speed if ew_speed is None else ew_speed
    _positive("ns_speed", ns_v)
    _positive("ew_speed", ew_v)
    ns_m = _moves_for("ns_moves", ns_l, ns_moves if ns_moves is not None else moves)
    ew_m = _moves_for("ew_moves", ew_l, ew_moves if ew_moves is not None else moves)
    # three lanes per approach: a right, a straight and a left lane, as in RESCO's grids
    ns_m = ns_m or (("r", "s", "l") if ns_l == 3 else ())
    ew_m = ew_m or (("r", "s", "l") if ew_l == 3 else ())
    _nonneg("inflow", inflow)
    ns_q = inflow if ns_inflow is None else ns_inflow
    ew_q = inflow if ew_inflow is None else ew_inflow
    _nonneg("ns_inflow", ns_q)
    _nonneg("ew_inflow", ew_q)
    nodes, edges = _grid_layout(
        rows,
        cols,
        spacing=spacing,
        attach=attach,
        ew_lanes=ew_l,
        ns_lanes=ns_l,
        ew_speed=ew_v,
        ns_speed=ns_v,
        ew_moves=ew_m,
        ns_moves=ns_m,
    )
    built = _build_network(name, nodes, edges, timing, fan_out=fan_out)
    net = built.network

    def is_ns(edge: str) -> bool:
        i = net.edge_index[edge]
        return abs(nodes[net.edge_from[i]][0] - nodes[net.edge_to[i]][0]) < 1e-9

    entries = [e for e in built.entries]
    rate = {e: float(ns_q if is_ns(e) else ew_q) for e in entries}
    route_list: list[tuple[str, tuple[str, ...], float]] = []
    if demand == "od":
        n_dest = _count("destinations", destinations)
        exits = sorted(built.exits)
        rng = np.random.default_rng(seed)
        for e in entries:
            src_node = net.edge_from[net.edge_index[e]]
            options = [x for x in exits if net.edge_to[net.edge_index[x]] != src_node]
            k = min(n_dest, len(options))
            picks = sorted(rng.choice(len(options), size=k, replace=False).tolist())
            for p in picks:
                dst = options[p]
                route_list.append((f"{e}__{dst}", _shortest_route(built, e, dst), rate[e] / k))
    elif demand == "turning":
        _positive("min_route_share", min_route_share)
        checked = {}
        for field, ratios in (
            ("turning", turning),
            ("ns_turning", ns_turning if ns_turning is not None else turning),
            ("ew_turning", ew_turning if ew_turning is not None else turning),
        ):
            checked[field] = (
                _check_turning(field, ratios, TURNS)
                if ratios is not None
                else dict(DEFAULT_TURNING)
            )

        def ratio_of(edge: str) -> Mapping[str, float]:
            return checked["ns_turning"] if is_ns(edge) else checked["ew_turning"]

        for e in entries:
            found = _routes_from_turning(built, e, ratio_of, min_share=min_route_share)
            for k, (path, share) in enumerate(found):
                route_list.append((f"{e}_{k}", path, rate[e] * share))
    else:
        raise ValueError(f"demand: {demand!r} is not supported; allowed: od, turning")

    routes, flows = [], []
    for rid, path, q in route_list:
        routes.append(Route(f"route_{rid}", path))
        if q * scale > 0:
            flows.append(_flow(f"flow_{rid}", f"route_{rid}", q * scale, flow_kind, seconds, prof))
    return TrafficScenario(
        network=net,
        routes=tuple(routes),
        flows=tuple(flows),
        end=float(seconds),
        signals=_settings(signals, timing),
        name=name,
    )


def arterial(
    n: int = 4,
    *,
    spacing: float = 300.0,
    attach: float = 200.0,
    main_lanes: int = 2,
    side_lanes: int = 1,
    main_speed: float = URBAN_SPEED,
    side_speed: float = 11.11,
    main_inflow: float = 800.0,
    side_inflow: float = 150.0,
    main_turning: Mapping[str, float] | None = None,
    side_turning: Mapping[str, float] | None = None,
    **kwargs: object,
) -> TrafficScenario:
    """A corridor of ``n`` signalised junctions along an east-west main road.

    The main road has ``main_lanes`` lanes per direction and carries ``main_inflow`` veh/h into
    each end, mostly through traffic; every side street has ``side_lanes`` lanes and
    ``side_inflow`` veh/h from each side. Junctions are ``A0``, ``B0``, ... from west to east.

    Args:
        n: number of junctions.
        spacing: distance between neighbouring junctions, metres.
        attach: length of the main-road ends and side streets to the boundary, metres.
        main_lanes: main-road lanes per direction.
        side_lanes: side-street lanes per direction.
        main_speed: main-road speed limit, m/s.
        side_speed: side-street speed limit, m/s.
        main_inflow: veh/h into each main-road end.
        side_inflow: veh/h into each side-street end.
        main_turning: turning ratios on the main road (default 0.1 right, 0.8 straight,
            0.1 left).
        side_turning: turning ratios on side streets (default 0.3 right, 0.4 straight,
            0.3 left).
        **kwargs: passed on to :func:`grid` (``timing``, ``flow_kind``, ``scale``, ``profile``,
            ``seconds``, ``signals``, ``fan_out``, ``min_route_share``, ``name``).

    Returns:
        The scenario.
    """
    n = _count("n", n)
    for forbidden in ("rows", "cols", "demand", "ns_lanes", "ew_lanes", "lanes"):
        if forbidden in kwargs:
            raise ValueError(f"{forbidden}: not an argument of arterial()")
    kwargs.setdefault("name", f"arterial{n}")
    return grid(
        1,
        n,
        spacing=spacing,
        attach=attach,
        ew_lanes=main_lanes,
        ns_lanes=side_lanes,
        ew_speed=main_speed,
        ns_speed=side_speed,
        ew_inflow=main_inflow,
        ns_inflow=side_inflow,
        demand="turning",
        ew_turning=main_turning or {"r": 0.1, "s": 0.8, "l": 0.1},
        ns_turning=side_turning or {"r": 0.3, "s": 0.4, "l": 0.3},
        **kwargs,  # type: ignore[arg-type]
    )


# --- presets ----------------------------------------------------------------------------------
def _preset(
    func: Callable[..., TrafficScenario], **defaults: object
) -> Callable[..., TrafficScenario]:
    def build(**overrides: object) -> TrafficScenario:
        return func(**{**defaults, **overrides})

    build.__name__ = func.__name__
    build.__doc__ = f"{func.__name__}({defaults}) with keyword overrides."
    build.__wrapped__ = func  # type: ignore[attr-defined]  # its signature is the preset's
    return build


PRESETS: dict[str, Callable[..., TrafficScenario]] = {
    "sumo_rl_single": _preset(sumo_rl_single_intersection),
    "single4": _preset(single_intersection, arms=4, lanes_per_arm=3, name="single4"),
    "single3": _preset(single_intersection, arms=3, lanes_per_arm=2, name="single3"),
    "arterial4": _preset(arterial, n=4, name="arterial4"),
    "grid2x2": _preset(grid, rows=2, cols=2, fan_out=True, inflow=200.0, name="grid2x2"),
    "grid4x4": _preset(grid, rows=4, cols=4, fan_out=True, inflow=200.0, name="grid4x4"),
}
"""Named scenarios; call with keyword overrides, e.g. ``PRESETS["grid4x4"](scale=1.5)``."""


def build(name: str, **overrides: object) -> TrafficScenario:
    """Build preset ``name`` with keyword overrides.

    Raises:
        ValueError: for an unknown preset name.
    """
    if name not in PRESETS:
        raise ValueError(f"preset: unknown traffic preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name](**overrides)
