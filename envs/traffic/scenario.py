"""Traffic scenarios: a network, vehicle types, routes, demand and the signal-control settings."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from envs.traffic.network import Network

DEPART_LANES = ("best", "free", "random", "first")
"""Lane choice at insertion (SUMO ``departLane``), or a lane index."""
DEPART_SPEEDS = ("max", "desired", "avg", "random", "0")
"""Speed at insertion (SUMO ``departSpeed``), or a number: ``avg`` is the mean speed of the
vehicles on the lane, at most the lane's limit and the vehicle's own (SUMO's default)."""
FLOW_KINDS = ("probability", "period", "vehs_per_hour", "poisson", "number")
"""How a flow spaces its vehicles (SUMO flow attributes, plus ``poisson`` arrivals at a rate)."""


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")


def _nonneg(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class VehicleType:
    """Vehicle-type parameters, defaulting to SUMO's passenger car (Krauss model).

    Attributes:
        id: name.
        length: metres.
        min_gap: standstill gap to the leader, metres.
        accel: maximum acceleration, m/s².
        decel: comfortable deceleration, m/s².
        sigma: driver imperfection (dawdling) in ``[0, 1]``.
        tau: desired time headway (reaction time), s.
        max_speed: m/s.
        speed_factor: mean multiplier of the lane speed limit.
        speed_dev: standard deviation of the per-vehicle speed factor (truncated to
            ``[0.2, 2]`` as SUMO's ``normc(1, 0.1, 0.2, 2)``).
        model: ``"krauss"`` (SUMO's default) or ``"idm"``.
    """

    id: str = "DEFAULT_VEHTYPE"
    length: float = 5.0
    min_gap: float = 2.5
    accel: float = 2.6
    decel: float = 4.5
    sigma: float = 0.5
    tau: float = 1.0
    max_speed: float = 55.55
    speed_factor: float = 1.0
    speed_dev: float = 0.1
    model: str = "krauss"

    def __post_init__(self) -> None:
        for f in ("length", "accel", "decel", "tau", "max_speed", "speed_factor"):
            _positive(f"vtype[{self.id}].{f}", getattr(self, f))
        _nonneg(f"vtype[{self.id}].min_gap", self.min_gap)
        _nonneg(f"vtype[{self.id}].speed_dev", self.speed_dev)
        if not 0.0 <= self.sigma <= 1.0:
            raise ValueError(f"vtype[{self.id}].sigma: must be in [0, 1], got {self.sigma}")
        if self.model not in ("krauss", "idm"):
            raise ValueError(
                f"vtype[{self.id}].model: {self.model!r} is not supported; allowed: krauss, idm"
            )


@dataclasses.dataclass(frozen=True)
class Route:
    """A sequence of edge names driven in order.

    ``at_departure``: the route of a trip (SUMO ``<trip from to>``): ``edges`` is the fastest
    path from the first edge to the last in the empty network, and each departure on it takes
    the fastest path on the travel times of its departure instead (see
    :data:`envs.traffic.sim.ROUTING_STEPS`), as SUMO routes trips when they depart.
    """

    id: str
    edges: tuple[str, ...]
    at_departure: bool = False

    def __post_init__(self) -> None:
        if not self.edges:
            raise ValueError(f"route[{self.id}].edges: a route needs at least one edge")


@dataclasses.dataclass(frozen=True)
class Flow:
    """Repeated departures on one route between ``begin`` and ``end`` (s, scenario clock).

    ``kind`` and ``value``: ``probability`` (a departure each second with this probability,
    SUMO's ``probability``), ``period`` (one every ``value`` s), ``vehs_per_hour`` (evenly
    spaced), ``poisson`` (exponential gaps at ``value`` vehicles per hour) or ``number`` (this
    many, evenly spaced). ``profile`` optionally scales the rate over time: ``((t, factor),
    ...)`` piecewise constant from each ``t`` on (``probability``, ``vehs_per_hour`` and
    ``poisson`` flows).
    """

    id: str
    route: str
    begin: float
    end: float
    kind: str
    value: float
    vtype: str = "DEFAULT_VEHTYPE"
    depart_lane: str | int = "best"
    depart_speed: str | float = "max"
    profile: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in FLOW_KINDS:
            raise ValueError(
                f"flow[{self.id}].kind: {self.kind!r} is not supported; allowed: "
                f"{', '.join(FLOW_KINDS)}"
            )
        _nonneg(f"flow[{self.id}].begin", self.begin)
        if not self.end >= self.begin:
            raise ValueError(
                f"flow[{self.id}].end: must be >= begin ({self.begin}), got {self.end}"
            )
        if self.kind == "probability":
            if not 0.0 <= self.value <= 1.0:
                raise ValueError(
                    f"flow[{self.id}].value: a probability in [0, 1], got {self.value}"
                )
        else:
            _nonneg(f"flow[{self.id}].value", self.value)
        _check_depart(f"flow[{self.id}]", self.depart_lane, self.depart_speed)
        for t, factor in self.profile:
            _nonneg(f"flow[{self.id}].profile time", t)
            _nonneg(f"flow[{self.id}].profile factor", factor)


@dataclasses.dataclass(frozen=True)
class Departure:
    """One vehicle with a fixed departure time (SUMO ``<vehicle>`` or routed ``<trip>``)."""

    id: str
    depart: float
    route: str
    vtype: str = "DEFAULT_VEHTYPE"
    depart_lane: str | int = "best"
    depart_speed: str | float = "max"

    def __post_init__(self) -> None:
        _nonneg(f"vehicle[{self.id}].depart", self.depart)
        _check_depart(f"vehicle[{self.id}]", self.depart_lane, self.depart_speed)


def _check_depart(owner: str, lane: str | int, speed: str | float) -> None:
    if isinstance(lane, str) and lane not in DEPART_LANES:
        raise ValueError(
            f"{owner}.depart_lane: {lane!r} is not supported; allowed: "
            f"{', '.join(DEPART_LANES)} or a lane index"
        )
    if isinstance(speed, str) and speed not in DEPART_SPEEDS:
        raise ValueError(
            f"{owner}.depart_speed: {speed!r} is not supported; allowed: "
            f"{', '.join(DEPART_SPEEDS)} or a number"
        )


@dataclasses.dataclass(frozen=True)
class SignalSettings:
    """How agents drive the signals (sumo-rl's conventions, with ``max_green`` enforced).

    Attributes:
        delta_time: seconds between two decisions.
        yellow_time: seconds of yellow when the green phase changes.
        all_red_time: seconds of all-red after the yellow (0: none).
        min_green: a green phase is kept at least this long.
        max_green: a green phase is ended after this long even if the agent keeps it
            (the next green phase in program order follows).
        controlled: ids of the signals the agent drives (empty: all); others run their
            fixed-time program.
    """

    delta_time: float = 5.0
    yellow_time: float = 2.0
    all_red_time: float = 0.0
    min_green: float = 5.0
    max_green: float = 50.0
    controlled: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _positive("signals.delta_time", self.delta_time)
        _nonneg("signals.yellow_time", self.yellow_time)
        _nonneg("signals.all_red_time", self.all_red_time)
        _nonneg("signals.min_green", self.min_green)
        if not self.max_green >= self.min_green:
            raise ValueError(
                f"signals.max_green: must be >= min_green ({self.min_green}), got {self.max_green}"
            )


@dataclasses.dataclass(frozen=True, eq=False)
class TrafficScenario:
    """A network, its demand over ``[begin, end)`` seconds and the control settings.

    Attributes:
        network: the road network.
        routes: named routes.
        flows: repeated departures.
        vehicles: single departures (already routed).
        vtypes: vehicle types by id (``DEFAULT_VEHTYPE`` is SUMO's passenger car).
        begin: simulation time of the first second, s.
        end: simulation time at which the episode is truncated, s.
        step_length: simulation sub-step, s (SUMO's ``--step-length``).
        signals: signal-control settings.
        teleport_time: a vehicle stuck this long at the front of a lane is moved on to its
            next lane (SUMO's ``--time-to-teleport``; <= 0 disables).
        name: label.
    """

    network: Network
    routes: tuple[Route, ...] = ()
    flows: tuple[Flow, ...] = ()
    vehicles: tuple[Departure, ...] = ()
    vtypes: Mapping[str, VehicleType] = dataclasses.field(
        default_factory=lambda: {"DEFAULT_VEHTYPE": VehicleType()}
    )
    begin: float = 0.0
    end: float = 3600.0
    step_length: float = 1.0
    signals: SignalSettings = dataclasses.field(default_factory=SignalSettings)
    teleport_time: float = 300.0
    name: str = "traffic"

    def __post_init__(self) -> None:
        _nonneg("begin", self.begin)
        if not self.end > self.begin:
            raise ValueError(f"end: must be > begin ({self.begin}), got {self.end}")
        _positive("step_length", self.step_length)
        ratio = self.signals.delta_time / self.step_length
        if abs(ratio - round(ratio)) > 1e-9:
            raise ValueError(
                f"signals.delta_time: must be a multiple of step_length ({self.step_length}), "
                f"got {self.signals.delta_time}"
            )
        if "DEFAULT_VEHTYPE" not in self.vtypes:
            object.__setattr__(
                self, "vtypes", {"DEFAULT_VEHTYPE": VehicleType(), **dict(self.vtypes)}
            )
        net = self.network
        route_ids = set()
        for r in self.routes:
            if r.id in route_ids:
                raise ValueError(f"routes: duplicate route id {r.id!r}")
            route_ids.add(r.id)
            edges = [net.edge_of(e, field=f"route[{r.id}].edges") for e in r.edges]
            for a, b in zip(edges, edges[1:], strict=False):
                if b not in net.edge_successors[a]:
                    raise ValueError(
                        f"route[{r.id}].edges: no connection from edge {net.edge_ids[a]!r} "
                        f"to edge {net.edge_ids[b]!r}"
                    )
        for owner, items in (("flow", self.flows), ("vehicle", self.vehicles)):
            for item in items:
                if item.route not in route_ids:
                    raise ValueError(f"{owner}[{item.id}].route: unknown route {item.route!r}")
                if item.vtype not in self.vtypes:
                    raise ValueError(
                        f"{owner}[{item.id}].vtype: unknown vehicle type {item.vtype!r}; "
                        f"known: {', '.join(self.vtypes)}"
                    )
        controlled = self.signals.controlled
        ids = [s.id for s in net.signals]
        for s in controlled:
            if s not in ids:
                raise ValueError(
                    f"signals.controlled: unknown traffic light {s!r}; known: {', '.join(ids)}"
                )

    @property
    def controlled_signals(self) -> tuple[int, ...]:
        """Indices of the signals the agent drives (all signals with a green phase by default)."""
        ids = self.signals.controlled or tuple(
            s.id for s in self.network.signals if len(s.green_phases) > 1
        )
        index = {s.id: i for i, s in enumerate(self.network.signals)}
        return tuple(index[s] for s in ids)

    @property
    def route_index(self) -> dict[str, int]:
        return {r.id: i for i, r in enumerate(self.routes)}

    def replace(self, **changes: Any) -> TrafficScenario:
        return dataclasses.replace(self, **changes)
