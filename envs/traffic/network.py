"""Road networks: lanes, lane-to-lane connections through junctions, and signal programs.

The layout follows SUMO's network model so imported ``.net.xml`` files and the built-in builders
produce the same structure:

- a **lane** belongs to an edge (a directed road between two nodes) and has a length, a speed
  limit and a shape (polyline, for drawing); lanes of an edge are indexed from the right;
- a **connection** leads from the end of one lane to the start of another through a junction,
  along an internal path of ``length`` metres driven at no more than ``speed``; a connection is
  either controlled by a link of a traffic light (``tls``, ``link``) or has a fixed right of way
  (``state``: ``M`` major, ``m`` minor, ``=`` all-way stop, ``s`` stop);
- ``foes[c]`` lists the connections that ``c`` must yield to whenever ``c``'s current state is a
  minor one (permissive green ``g``, ``m``, ``s``, ``=``), SUMO's junction ``response`` matrix;
- a **traffic light** runs a program of phases, each a duration and a SUMO state string with one
  character per link (``G`` priority green, ``g`` permissive green, ``y`` yellow, ``r`` red,
  ``s`` stop then go, ``o``/``O`` off).

Everything here is plain numpy and Python; the simulation core reads the arrays directly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from functools import cached_property

import numpy as np

LINK_STATES = "rysgGoOmM="
"""Link state characters in code order: the simulator stores ``LINK_STATES.index(char)``."""
RED, YELLOW, STOP, MINOR_GREEN, GREEN, OFF_MINOR, OFF, MINOR, MAJOR, ALLWAY = range(10)
PASSABLE = frozenset({MINOR_GREEN, GREEN, OFF_MINOR, OFF, MINOR, MAJOR, STOP, ALLWAY})
YIELDING = frozenset({MINOR_GREEN, OFF_MINOR, MINOR, STOP, ALLWAY})
"""States under which a vehicle must give way to the connection's foes."""


def state_codes(state: str, *, field: str = "state") -> np.ndarray:
    """Encode a SUMO state string as link-state codes (``uint8``).

    Raises:
        ValueError: naming ``field`` and the allowed characters for an unknown character.
    """
    out = np.empty(len(state), dtype=np.uint8)
    for i, ch in enumerate(state):
        code = LINK_STATES.find(ch)
        if code < 0:
            raise ValueError(
                f"{field}: unknown link state {ch!r} at position {i} of {state!r}; "
                f"allowed: {', '.join(LINK_STATES)}"
            )
        out[i] = code
    return out


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of a signal program.

    Attributes:
        duration: seconds the phase lasts in the fixed-time program.
        state: SUMO link-state string, one character per link of the signal.
        min_dur: shortest duration of an actuated phase (defaults to ``duration``).
        max_dur: longest duration of an actuated phase (defaults to ``duration``).
        name: optional label.
    """

    duration: float
    state: str
    min_dur: float | None = None
    max_dur: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not self.duration > 0:
            raise ValueError(f"phase.duration: must be > 0, got {self.duration}")
        state_codes(self.state, field="phase.state")

    @property
    def is_yellow(self) -> bool:
        return "y" in self.state.lower()

    @property
    def is_green(self) -> bool:
        """A green phase in sumo-rl's sense: no yellow and not everything red or stop."""
        return not self.is_yellow and any(ch in "Gg" for ch in self.state)


@dataclasses.dataclass(frozen=True)
class SignalProgram:
    """A traffic light: its id, its phases and the offset of its fixed-time cycle (s)."""

    id: str
    phases: tuple[Phase, ...]
    offset: float = 0.0

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValueError(f"tlLogic {self.id!r}: a program needs at least one phase")
        n = len(self.phases[0].state)
        for k, p in enumerate(self.phases):
            if len(p.state) != n:
                raise ValueError(
                    f"tlLogic {self.id!r}: phase {k} has {len(p.state)} links, phase 0 has {n}"
                )

    @property
    def num_links(self) -> int:
        return len(self.phases[0].state)

    @property
    def green_phases(self) -> tuple[int, ...]:
        """Indices of the green phases (the agent's choices), in program order."""
        return tuple(k for k, p in enumerate(self.phases) if p.is_green)

    @property
    def cycle(self) -> float:
        return float(sum(p.duration for p in self.phases))


def _f64(values: Sequence[float] | np.ndarray) -> np.ndarray:
    out = np.array(values, dtype=np.float64)
    out.flags.writeable = False
    return out


def _i32(values: Sequence[int] | np.ndarray) -> np.ndarray:
    out = np.array(values, dtype=np.int32)
    out.flags.writeable = False
    return out


MINOR_PENALTY = 1.5
"""Seconds SUMO's router adds for a link without priority (``--weights.minor-penalty``)."""
TURNAROUND_PENALTY = 5.0
"""Seconds SUMO's router adds for a turnaround (``--weights.turnaround-penalty``)."""


def link_penalties(net: Network) -> np.ndarray:
    """SUMO's routing time penalty of every connection, seconds.

    An unsignalled link without priority costs :data:`TURNAROUND_PENALTY` as a turnaround,
    else :data:`MINOR_PENALTY`; a waiting point without priority inside the junction (a left
    turn's internal junction, also at a signal) costs :data:`MINOR_PENALTY` more.
    """
    lower = [c for c in range(len(LINK_STATES)) if LINK_STATES[c].islower()]
    minor = (np.asarray(net.conn_tls) < 0) & np.isin(net.conn_state, lower)
    turn = np.array([d == "t" for d in net.conn_dir], dtype=bool)
    own = np.where(turn, TURNAROUND_PENALTY, MINOR_PENALTY) * minor
    return own + MINOR_PENALTY * (net.conn_waits > 0)


@dataclasses.dataclass(frozen=True, eq=False)
class Network:
    """A road network as flat arrays (one entry per lane, edge, connection, signal).

    Build one with the builders in :mod:`envs.traffic.builders` or import one with
    :func:`envs.traffic.load_sumo`; the constructor validates cross references.

    Attributes:
        lane_ids: ``L`` lane names (SUMO ``<edge>_<index>``).
        lane_edge: ``[L]`` edge of every lane.
        lane_index: ``[L]`` index of the lane within its edge (0 = rightmost).
        lane_length: ``[L]`` metres.
        lane_speed: ``[L]`` speed limit, m/s.
        lane_shapes: ``L`` polylines ``[P, 2]`` (x, y in metres), from start to end.
        lane_width: ``[L]`` metres (drawing only).
        edge_ids: ``E`` edge names.
        edge_from: ``E`` names of the nodes where edges start.
        edge_to: ``E`` names of the nodes where edges end.
        conn_from: ``[C]`` lane a connection leaves.
        conn_to: ``[C]`` lane a connection enters.
        conn_length: ``[C]`` length of the path through the junction (0 if none), metres.
        conn_speed: ``[C]`` speed limit through the junction, m/s.
        conn_dir: ``C`` SUMO directions (``s`` straight, ``l``/``r`` left/right, ``t`` turn,
            ``L``/``R`` partially left/right).
        conn_tls: ``[C]`` signal index controlling the connection, -1 when unsignalled.
        conn_link: ``[C]`` link index within that signal's state string, -1 when unsignalled.
        conn_state: ``[C]`` fixed right-of-way code (``LINK_STATES`` index) of unsignalled
            connections (ignored for signalled ones).
        conn_foes: ``C`` tuples of connections that ``c`` yields to in a minor state.
        conn_shapes: ``C`` polylines through the junction (drawing only).
        signals: the traffic lights, in the order ``conn_tls`` refers to.
        nodes: ``{node: (x, y)}``.
        junction_shapes: ``{node: polygon [P, 2]}`` (drawing only; may be empty).
        name: label for messages and rendering.
        conn_waits: ``[C]`` 1 where the path through the junction has a waiting point inside
            it without priority (a SUMO internal junction, where a left turn waits for the
            opposing stream); empty means none (routing only).
    """

    lane_ids: tuple[str, ...]
    lane_edge: np.ndarray
    lane_index: np.ndarray
    lane_length: np.ndarray
    lane_speed: np.ndarray
    lane_shapes: tuple[np.ndarray, ...]
    lane_width: np.ndarray
    edge_ids: tuple[str, ...]
    edge_from: tuple[str, ...]
    edge_to: tuple[str, ...]
    conn_from: np.ndarray
    conn_to: np.ndarray
    conn_length: np.ndarray
    conn_speed: np.ndarray
    conn_dir: tuple[str, ...]
    conn_tls: np.ndarray
    conn_link: np.ndarray
    conn_state: np.ndarray
    conn_foes: tuple[tuple[int, ...], ...]
    conn_shapes: tuple[np.ndarray, ...]
    signals: tuple[SignalProgram, ...]
    nodes: dict[str, tuple[float, float]]
    junction_shapes: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    name: str = "network"
    conn_waits: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.uint8))

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for f in ("lane_length", "lane_speed", "lane_width", "conn_length", "conn_speed"):
            set_(self, f, _f64(getattr(self, f)))
        for f in ("lane_edge", "lane_index", "conn_from", "conn_to", "conn_tls", "conn_link"):
            set_(self, f, _i32(getattr(self, f)))
        state = np.array(self.conn_state, dtype=np.uint8)
        state.flags.writeable = False
        set_(self, "conn_state", state)
        waits = np.array(self.conn_waits, dtype=np.uint8).reshape(-1)
        if waits.size == 0:
            waits = np.zeros(len(state), dtype=np.uint8)
        waits.flags.writeable = False
        set_(self, "conn_waits", waits)
        set_(self, "lane_shapes", tuple(np.asarray(s, dtype=np.float64) for s in self.lane_shapes))
        set_(self, "conn_shapes", tuple(np.asarray(s, dtype=np.float64) for s in self.conn_shapes))
        self.validate()

    # --- sizes ------------------------------------------------------------------------------
    @property
    def num_lanes(self) -> int:
        return len(self.lane_ids)

    @property
    def num_edges(self) -> int:
        return len(self.edge_ids)

    @property
    def num_connections(self) -> int:
        return int(self.conn_from.shape[0])

    @property
    def num_signals(self) -> int:
        return len(self.signals)

    def validate(self) -> None:
        """Check shapes and cross references; raise ``ValueError`` naming the field."""
        n_l, n_e, n_c = self.num_lanes, self.num_edges, self.num_connections
        for f in ("lane_edge", "lane_index", "lane_length", "lane_speed", "lane_width"):
            if getattr(self, f).shape != (n_l,):
                raise ValueError(f"{f}: expected {n_l} entries, got {getattr(self, f).shape}")
        if len(self.lane_shapes) != n_l:
            raise ValueError(f"lane_shapes: expected {n_l} polylines, got {len(self.lane_shapes)}")
        if len(self.edge_from) != n_e or len(self.edge_to) != n_e:
            raise ValueError(f"edge_from/edge_to: expected {n_e} entries")
        if len(set(self.lane_ids)) != n_l:
            raise ValueError("lane_ids: lane names must be unique")
        if len(set(self.edge_ids)) != n_e:
            raise ValueError("edge_ids: edge names must be unique")
        if n_l and (self.lane_edge.min() < 0 or self.lane_edge.max() >= n_e):
            raise ValueError("lane_edge: refers to an edge that does not exist")
        bad = np.flatnonzero(~(self.lane_length > 0))
        if bad.size:
            raise ValueError(
                f"lane_length: lane {self.lane_ids[bad[0]]!r} has length "
                f"{self.lane_length[bad[0]]}; lengths must be > 0"
            )
        bad = np.flatnonzero(~(self.lane_speed > 0))
        if bad.size:
            raise ValueError(
                f"lane_speed: lane {self.lane_ids[bad[0]]!r} has speed "
                f"{self.lane_speed[bad[0]]}; speed limits must be > 0"
            )
        for f in (
            "conn_to",
            "conn_length",
            "conn_speed",
            "conn_tls",
            "conn_link",
            "conn_state",
            "conn_waits",
        ):
            if getattr(self, f).shape != (n_c,):
                raise ValueError(f"{f}: expected {n_c} entries, got {getattr(self, f).shape}")
        for f in ("conn_dir", "conn_foes", "conn_shapes"):
            if len(getattr(self, f)) != n_c:
                raise ValueError(f"{f}: expected {n_c} entries, got {len(getattr(self, f))}")
        if n_c:
            for f in ("conn_from", "conn_to"):
                arr = getattr(self, f)
                if arr.min() < 0 or arr.max() >= n_l:
                    raise ValueError(f"{f}: refers to a lane that does not exist")
            if (self.conn_length < 0).any():
                raise ValueError("conn_length: must be >= 0")
            if not (self.conn_speed > 0).all():
                raise ValueError("conn_speed: must be > 0")
            if self.conn_tls.max() >= self.num_signals or self.conn_tls.min() < -1:
                raise ValueError("conn_tls: refers to a traffic light that does not exist")
        for c in range(n_c):
            s = int(self.conn_tls[c])
            if s >= 0:
                link = int(self.conn_link[c])
                if not 0 <= link < self.signals[s].num_links:
                    raise ValueError(
                        f"conn_link: connection {c} ({self.lane_ids[self.conn_from[c]]} -> "
                        f"{self.lane_ids[self.conn_to[c]]}) uses link {link} of traffic light "
                        f"{self.signals[s].id!r}, which has {self.signals[s].num_links} links"
                    )
            for foe in self.conn_foes[c]:
                if not 0 <= foe < n_c:
                    raise ValueError(f"conn_foes: connection {c} lists unknown foe {foe}")

    # --- derived lookups --------------------------------------------------------------------
    @cached_property
    def edge_index(self) -> dict[str, int]:
        return {e: i for i, e in enumerate(self.edge_ids)}

    @cached_property
    def lane_id_index(self) -> dict[str, int]:
        return {lane: i for i, lane in enumerate(self.lane_ids)}

    @cached_property
    def edge_lanes(self) -> tuple[tuple[int, ...], ...]:
        """Lanes of every edge, ordered by lane index (rightmost first)."""
        lanes: list[list[int]] = [[] for _ in range(self.num_edges)]
        for lane in np.argsort(self.lane_index, kind="stable").tolist():
            lanes[int(self.lane_edge[lane])].append(lane)
        return tuple(tuple(x) for x in lanes)

    @cached_property
    def lane_outgoing(self) -> tuple[tuple[int, ...], ...]:
        """Connections leaving every lane."""
        out: list[list[int]] = [[] for _ in range(self.num_lanes)]
        for c, lane in enumerate(self.conn_from.tolist()):
            out[lane].append(c)
        return tuple(tuple(x) for x in out)

    @cached_property
    def edge_successors(self) -> tuple[tuple[int, ...], ...]:
        """Edges reachable from every edge through one junction."""
        succ: list[set[int]] = [set() for _ in range(self.num_edges)]
        for a, b in zip(self.conn_from.tolist(), self.conn_to.tolist(), strict=True):
            succ[int(self.lane_edge[a])].add(int(self.lane_edge[b]))
        return tuple(tuple(sorted(s)) for s in succ)

    @cached_property
    def edge_extent(self) -> tuple[np.ndarray, np.ndarray]:
        """Every edge's length and speed limit: its longest lane's and its fastest lane's."""
        length = np.zeros(self.num_edges)
        speed = np.zeros(self.num_edges)
        np.maximum.at(length, self.lane_edge, self.lane_length)
        np.maximum.at(speed, self.lane_edge, self.lane_speed)
        return length, speed

    @cached_property
    def routing_links(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Edge-to-edge links as SUMO's router weighs them: ``(ptr, to, seconds)``.

        ``ptr`` (``[E + 1]``) indexes, for every edge, its successors ``to`` and the seconds
        spent crossing the junction to each: the fastest connection's internal length over its
        speed plus SUMO's routing penalties (:func:`link_penalties`).
        """
        times = self.conn_length / self.conn_speed + link_penalties(self)
        best: list[dict[int, float]] = [{} for _ in range(self.num_edges)]
        for a, b, t in zip(
            self.lane_edge[self.conn_from].tolist(),
            self.lane_edge[self.conn_to].tolist(),
            times.tolist(),
            strict=True,
        ):
            best[a][b] = min(best[a].get(b, math.inf), t)
        ptr = np.zeros(self.num_edges + 1, dtype=np.int64)
        ptr[1:] = np.cumsum([len(d) for d in best])
        to = np.array([b for d in best for b in sorted(d)], dtype=np.int64)
        secs = np.array([d[b] for d in best for b in sorted(d)], dtype=np.float64)
        return ptr, to, secs

    @cached_property
    def signal_links(self) -> tuple[tuple[tuple[int, ...], ...], ...]:
        """For every signal and link index, the connections that link controls."""
        links: list[list[list[int]]] = [[[] for _ in range(s.num_links)] for s in self.signals]
        for c in range(self.num_connections):
            s = int(self.conn_tls[c])
            if s >= 0:
                links[s][int(self.conn_link[c])].append(c)
        return tuple(tuple(tuple(x) for x in sig) for sig in links)

    @cached_property
    def signal_lanes(self) -> tuple[tuple[int, ...], ...]:
        """Incoming (controlled) lanes of every signal, unique, in link order (as sumo-rl)."""
        out = []
        for sig in self.signal_links:
            seen: dict[int, None] = {}
            for conns in sig:
                for c in conns:
                    seen.setdefault(int(self.conn_from[c]), None)
            out.append(tuple(seen))
        return tuple(out)

    @cached_property
    def signal_out_lanes(self) -> tuple[tuple[int, ...], ...]:
        """Outgoing lanes of every signal, unique, in link order."""
        out = []
        for sig in self.signal_links:
            seen: dict[int, None] = {}
            for conns in sig:
                for c in conns:
                    seen.setdefault(int(self.conn_to[c]), None)
            out.append(tuple(seen))
        return tuple(out)

    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of all lane shapes."""
        pts = np.concatenate([s for s in self.lane_shapes if len(s)] or [np.zeros((1, 2))])
        return (
            float(pts[:, 0].min()),
            float(pts[:, 1].min()),
            float(pts[:, 0].max()),
            float(pts[:, 1].max()),
        )

    def edge_of(self, edge: str, *, field: str = "edge") -> int:
        """Index of edge ``edge``; raise ``ValueError`` naming ``field`` if unknown."""
        try:
            return self.edge_index[edge]
        except KeyError:
            raise ValueError(
                f"{field}: unknown edge {edge!r} in network {self.name!r}"
                f" (it has {self.num_edges} edges, e.g. {', '.join(self.edge_ids[:5])})"
            ) from None
