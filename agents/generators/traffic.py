"""The traffic family's demand codec, and real demand profiles cut from imported route files.

:class:`TrafficDemandCodec` describes a scenario's demand as the rate (vehicles/hour) on each
route of a base scenario in each of ``bins`` equal slices of the base's time window. Fixed
departures (vehicles, trips and evenly spaced flows) are counted; random flows (``poisson``,
``probability``) contribute their expected number of departures, computed exactly from the rate
and the time profile as the simulator draws them. Decoding gives one Poisson flow per route
whose piecewise-constant profile reproduces the rates bin by bin, so ``encode(decode(x))``
equals ``x`` and the expected departures of a decoded scenario are the features.

:func:`extract_demand_profiles` slides the base's window across a route file's whole time span
and returns each window both as features (GAN training data) and as a scenario holding the
window's real departures re-timed into the base's window (held-out evaluation);
:func:`resco_demand_profiles` does both for an imported RESCO city network.

Per-route features are sparse (most routes of a city see a few vehicles an hour) and must stay
non-negative: generators should model them so, e.g. ``WGANConfig(log_scale=True)``, and keep
their draws near the data's range (``bound_margin``, so that rejecting out-of-range draws does
not bias the accepted ones low). A
generator that adds symmetric noise to every feature (``ParametricGenerator`` with ``normal``)
puts some of hundreds of features below ``-tolerance`` in nearly every draw, and those draws are
rejected.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from agents.generators.codecs import repair
from envs.traffic.nets import RESCO_NETS
from envs.traffic.scenario import Departure, Flow, TrafficScenario
from envs.traffic.sim import _fixed_demand, _profile_factor, _regular_times

RESCO_CITY_NETS = tuple(n for n in RESCO_NETS if n.startswith(("cologne", "ingolstadt")))
"""RESCO networks whose route files hold real, explicitly timed vehicles and trips."""

RANDOM_FLOWS = ("poisson", "probability")
"""Flow kinds whose departures are drawn at reset (encoded by their expected counts)."""

MAX_ROUTE_RATE = 3600.0
"""Default ceiling of a route's rate, vehicles/hour: one departure a second, the most a
``probability`` flow carries."""

_WHOLE_FILE_END = 10 * 86400.0
"""An ``end`` after every departure of a route file, s (ten days)."""

_EdgeKey = tuple[str, ...]


class TrafficDemandCodec:
    """Vehicles per hour on each route of ``base`` in each of ``bins`` equal time bins.

    Features are route-major: ``x[r * bins + k]`` is the rate on ``base.routes[r]`` during bin
    ``k`` of ``[base.begin, base.end)``, vehicles/hour, summed over vehicle types. Routes of an
    encoded scenario are matched to the base's by their edges (see :meth:`route_rows`), so
    scenarios imported separately, whose route ids differ, encode alike. Network, routes, vehicle types, signal settings and
    step length of decoded scenarios are the base's, which makes every decoded scenario
    acceptable at reset to an environment built on the base.

    Args:
        base: the scenario whose routes and time window the features cover.
        bins: number of equal time bins; each must span at least 1 s (the resolution of random
            departures).
        max_rate: largest valid rate, vehicles/hour (default: the larger of
            :data:`MAX_ROUTE_RATE` and twice the base's peak rate). Values above it by more than
            ``tolerance`` are rejected.
        tolerance: how far below 0 or above ``max_rate`` a rate may lie and be clipped back,
            vehicles/hour (default: half a vehicle per bin).
    """

    def __init__(
        self,
        base: TrafficScenario,
        *,
        bins: int = 12,
        max_rate: float | None = None,
        tolerance: float | None = None,
    ) -> None:
        if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
            raise ValueError(f"bins: must be an integer >= 1, got {bins!r}")
        if not base.routes:
            raise ValueError(f"base: scenario {base.name!r} has no routes to carry demand")
        seconds = base.end - base.begin
        if seconds / bins < 1.0:
            raise ValueError(
                f"bins: each bin must span at least 1 s; {bins} bins over the base's "
                f"{seconds:g} s window are {seconds / bins:.3g} s long"
            )
        self.base = base
        self.bins = int(bins)
        self.edges = np.linspace(base.begin, base.end, self.bins + 1)
        """Bin boundaries ``[bins + 1]``, s (scenario clock)."""
        self.bin_seconds = seconds / self.bins
        self._by_id = {r.id: (i, r.edges) for i, r in enumerate(base.routes)}
        self._by_edges: dict[_EdgeKey, int] = {}
        for i, r in enumerate(base.routes):
            self._by_edges.setdefault(r.edges, i)
        self._attrs = _route_attributes(base)
        if max_rate is None:
            max_rate = max(MAX_ROUTE_RATE, 2.0 * float(self.encode(base).max(initial=0.0)))
        if not (isinstance(max_rate, int | float) and math.isfinite(max_rate) and max_rate > 0):
            raise ValueError(f"max_rate: must be a finite number > 0, got {max_rate!r}")
        if tolerance is None:
            tolerance = 0.5 * 3600.0 / self.bin_seconds
        if not (isinstance(tolerance, int | float) and math.isfinite(tolerance) and tolerance >= 0):
            raise ValueError(f"tolerance: must be a finite number >= 0, got {tolerance!r}")
        self.max_rate = float(max_rate)
        self.tolerance = float(tolerance)
        # random departures happen at whole seconds: bin k holds the draws in
        # [ceil(edge_k), ceil(edge_k+1)) clipped to the window, which is this long
        lo = np.maximum(np.ceil(self.edges[:-1]), base.begin)
        hi = np.minimum(np.ceil(self.edges[1:]), base.end)
        self._draw_seconds = hi - lo

    @property
    def name(self) -> str:
        seconds = self.base.end - self.base.begin
        return f"traffic_demand/{self.base.name}/r{self.num_routes}b{self.bins}w{seconds:g}"

    @property
    def num_routes(self) -> int:
        """Number of routes of the base."""
        return len(self.base.routes)

    @property
    def dim(self) -> int:
        return self.num_routes * self.bins

    @property
    def structure(self) -> TrafficScenario:
        """The base: the network fixes the spaces, whatever the demand."""
        return self.base

    def route_rows(self, scenario: TrafficScenario) -> np.ndarray:
        """Base route index ``[len(scenario.routes)]`` of each route of ``scenario``, -1: none.

        A route maps to the base route with its id and edges, else to the first base route with
        its edges.
        """
        rows = []
        for r in scenario.routes:
            i, edges = self._by_id.get(r.id, (-1, ()))
            rows.append(i if edges == r.edges else self._by_edges.get(r.edges, -1))
        return np.array(rows, dtype=np.int64)

    def encode(self, scenario: TrafficScenario) -> np.ndarray:
        """Rates ``[routes * bins]`` of ``scenario``'s departures, vehicles/hour.

        Fixed departures are counted; ``poisson`` and ``probability`` flows give their expected
        counts (the simulator's draw averaged over seeds).

        Raises:
            ValueError: if the scenario's time window differs from the base's, or demand uses a
                route the base lacks.
        """
        if scenario.begin != self.base.begin or scenario.end != self.base.end:
            raise ValueError(
                f"scenario {scenario.name!r}: its window [{scenario.begin:g}, {scenario.end:g}) s "
                f"differs from the codec's [{self.base.begin:g}, {self.base.end:g}) s; re-time it "
                "(see extract_demand_profiles)"
            )
        to_base = self.route_rows(scenario)
        counts = np.zeros((self.num_routes, self.bins))
        fixed = _fixed_demand(scenario)
        if fixed.time.size:
            rows = to_base[fixed.route]
            if (rows < 0).any():
                self._unknown_route(scenario, scenario.routes[fixed.route[rows < 0][0]].id)
            k = np.clip(np.searchsorted(self.edges, fixed.time, side="right") - 1, 0, self.bins - 1)
            np.add.at(counts, (rows, k), 1.0)
        index = scenario.route_index
        for f in scenario.flows:
            if f.kind not in RANDOM_FLOWS:
                continue
            expected = self._expected(f)
            if not expected.any():
                continue
            row = to_base[index[f.route]]
            if row < 0:
                self._unknown_route(scenario, f.route)
            counts[row] += expected
        return (counts * (3600.0 / self.bin_seconds)).reshape(-1)

    def decode(self, features: np.ndarray) -> TrafficScenario | None:
        """The base with one Poisson flow per route of nonzero rate, or ``None`` if invalid.

        Each flow runs over the whole window at its route's peak rate; its profile scales the
        rate bin by bin so that the expected departures in each bin are the features. Fixed
        departures and the base's flows are dropped.
        """
        x = repair(features, lower=0.0, upper=self.max_rate, tolerance=self.tolerance)
        if x is None or x.shape != (self.dim,):
            return None
        try:
            return self._with_rates(x.reshape(self.num_routes, self.bins))
        except ValueError:
            return None

    # --- helpers ---------------------------------------------------------------------------
    def _with_rates(self, rates: np.ndarray) -> TrafficScenario:
        base = self.base
        # rate while draws are made, so that each bin gets rate * bin_seconds / 3600 vehicles
        drawn = rates * (self.bin_seconds / self._draw_seconds)
        starts = np.maximum(np.ceil(self.edges[:-1]), base.begin)
        lead = ((base.begin, 0.0),) if starts[0] > base.begin else ()
        flows = []
        for route, row in zip(base.routes, drawn, strict=True):
            peak = float(row.max())
            if peak <= 0.0:
                continue
            vtype, lane, speed = self._attrs.get(route.id, self._attrs[""])
            profile = lead + tuple(
                (float(t), float(v / peak)) for t, v in zip(starts, row, strict=True)
            )
            flows.append(
                Flow(
                    id=f"generated_{route.id}",
                    route=route.id,
                    begin=base.begin,
                    end=base.end,
                    kind="poisson",
                    value=peak,
                    vtype=vtype,
                    depart_lane=lane,
                    depart_speed=speed,
                    profile=profile,
                )
            )
        return base.replace(name=f"{base.name}_generated", flows=tuple(flows), vehicles=())

    def _expected(self, f: Flow) -> np.ndarray:
        """Expected departures ``[bins]`` of a random flow, as :func:`sample_demand` draws them."""
        out = np.zeros(self.bins)
        lo, hi = max(f.begin, self.base.begin), min(f.end, self.base.end)
        if hi <= lo or f.value <= 0:
            return out
        if f.kind == "probability":
            t = np.arange(math.ceil(lo), math.ceil(hi), dtype=np.float64)
            p = np.clip(f.value * _profile_factor(f.profile, t), 0.0, 1.0)
            k = np.clip(np.searchsorted(self.edges, t, side="right") - 1, 0, self.bins - 1)
            return np.bincount(k, weights=p, minlength=self.bins)
        # poisson: a draw at time c departs at floor(c), so bin k gets the draws in
        # [ceil(edge_k), ceil(edge_k+1)) within [lo, hi)
        a = np.clip(np.ceil(self.edges[:-1]), lo, hi)
        b = np.clip(np.ceil(self.edges[1:]), lo, hi)
        return f.value / 3600.0 * _profile_integral(f.profile, a, b)

    def _unknown_route(self, scenario: TrafficScenario, route_id: str) -> None:
        raise ValueError(
            f"scenario {scenario.name!r}: route {route_id!r} carries demand but is not a route of "
            f"the codec's base {self.base.name!r} (routes are matched by their edges)"
        )


def _profile_integral(
    profile: tuple[tuple[float, float], ...], a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Integral of a flow's piecewise-constant rate factor over each ``[a_i, b_i)``, s."""
    if not profile:
        return b - a
    times = np.array([-np.inf] + [t for t, _ in profile] + [np.inf])
    factors = np.array([1.0] + [v for _, v in profile])
    lo = np.maximum(a[:, None], times[None, :-1])
    hi = np.minimum(b[:, None], times[None, 1:])
    return (np.maximum(hi - lo, 0.0) * factors[None, :]).sum(axis=1)


def _route_attributes(sc: TrafficScenario) -> dict[str, tuple[str, str | int, str | float]]:
    """Most common (vehicle type, depart lane, depart speed) per route id; ``""``: overall."""
    per_route: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    items: list[Departure | Flow] = [*sc.vehicles, *sc.flows]
    for item in items:
        per_route[item.route][(item.vtype, item.depart_lane, item.depart_speed)] += 1
    overall: collections.Counter = collections.Counter()
    for counter in per_route.values():
        overall.update(counter)
    out = {route: counter.most_common(1)[0][0] for route, counter in per_route.items()}
    out[""] = overall.most_common(1)[0][0] if overall else ("DEFAULT_VEHTYPE", "best", "max")
    return out


# --- real demand windows ---------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class DemandProfiles:
    """Real demand windows of one scenario, laid out like a :class:`TrafficDemandCodec`.

    Window ``i`` covers ``[starts[i], starts[i] + L)`` of the source's clock, ``L`` being the
    length of the codec's base window.

    Attributes:
        features: ``[n, dim]`` rates of each window, vehicles/hour (the codec's layout): fit a
            generator on these.
        starts: ``[n]`` first second of each window on the source's clock, s.
        scenarios: each window as a scenario of the base holding its real departures moved by
            ``base.begin - starts[i]`` into the base's window (random flows of the source are
            moved likewise); accepted at reset by an environment built on the base.
        span: ``(first, last)`` seconds the windows were cut from.
        dropped: ``[n]`` vehicles of each window on routes the base lacks, which are left out
            (expected numbers for random flows).
        missing_routes: ids of the source's routes that carry demand and that the base lacks.
    """

    features: np.ndarray
    starts: np.ndarray
    scenarios: tuple[TrafficScenario, ...]
    span: tuple[float, float]
    dropped: np.ndarray
    missing_routes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.scenarios)


@dataclasses.dataclass(frozen=True)
class _Timed:
    time: float
    route: str  # source route id
    id: str
    vtype: str
    lane: str | int
    speed: str | float


def _source_departures(sc: TrafficScenario) -> list[_Timed]:
    """Fixed departures of ``sc`` in ``[begin, end)``: vehicles and expanded regular flows."""
    out = [
        _Timed(v.depart, v.route, v.id, v.vtype, v.depart_lane, v.depart_speed)
        for v in sc.vehicles
        if sc.begin <= v.depart < sc.end
    ]
    for f in sc.flows:
        if f.kind in RANDOM_FLOWS:
            continue
        for k, t in enumerate(_regular_times(f).tolist()):
            if sc.begin <= t < sc.end:
                out.append(
                    _Timed(t, f.route, f"{f.id}.{k}", f.vtype, f.depart_lane, f.depart_speed)
                )
    out.sort(key=lambda d: d.time)
    return out


def extract_demand_profiles(
    codec: TrafficDemandCodec,
    source: TrafficScenario,
    *,
    stride: float | None = None,
    span: tuple[float, float] | None = None,
) -> DemandProfiles:
    """Cut windows of the base's length from ``source``'s demand, aligned on the base's window.

    Windows start at ``base.begin + j * stride`` for every integer ``j`` (negative too) that
    keeps the window inside ``span``, so the base's own window is one of them whenever it lies
    inside the span. Each window's departures are re-timed into the base's window and kept on
    the base route with the same edges; departures on other routes are dropped and counted.

    Args:
        codec: fixes the base (routes, window length and alignment) and the bins.
        source: a scenario holding the whole demand, e.g. a route file imported over all its
            departures (``resco_scenario(name, begin=0, end=864000)``); its network must be the
            base's.
        stride: seconds between window starts (default: the window length, no overlap).
        span: ``(first, last)`` seconds to cut windows from (default: from the base's window
            and the source's first departure, whichever is earlier, to the later of the base's
            end and the second after the source's last departure).

    Raises:
        ValueError: for a non-positive stride, a span holding no window, or a source vehicle
            type the base lacks.
    """
    base = codec.base
    length = base.end - base.begin
    if stride is None:
        stride = length
    if not (isinstance(stride, int | float) and math.isfinite(stride) and stride > 0):
        raise ValueError(f"stride: must be a finite number > 0, got {stride!r}")
    departures = _source_departures(source)
    flows = [f for f in source.flows if f.kind in RANDOM_FLOWS]
    if span is None:
        first, last = base.begin, base.end
        if departures:
            first = min(first, math.floor(departures[0].time))
            last = max(last, math.floor(departures[-1].time) + 1.0)
        for f in flows:
            first = min(first, max(f.begin, source.begin))
            last = max(last, min(f.end, source.end))
    else:
        first, last = (float(v) for v in span)
    j_lo = math.ceil((first - base.begin) / stride - 1e-9)
    j_hi = math.floor((last - length - base.begin) / stride + 1e-9)
    if j_hi < j_lo:
        raise ValueError(
            f"span: [{first:g}, {last:g}) s holds no {length:g} s window aligned on the base's "
            f"begin ({base.begin:g} s) with stride {stride:g} s"
        )
    starts = base.begin + stride * np.arange(j_lo, j_hi + 1, dtype=np.float64)
    to_base = dict(zip(source.route_index, codec.route_rows(source).tolist(), strict=True))
    times = np.array([d.time for d in departures])
    last_second = math.nextafter(base.end, -math.inf)
    scenarios: list[TrafficScenario] = []
    dropped = np.zeros(len(starts))
    missing: set[str] = set()
    for i, start in enumerate(starts.tolist()):
        offset = start - base.begin
        lo, hi = np.searchsorted(times, [start, start + length], side="left")
        vehicles = []
        for d in departures[lo:hi]:
            row = to_base[d.route]
            if row < 0:
                dropped[i] += 1
                missing.add(d.route)
                continue
            _check_vtype(base, d.vtype, d.id)
            t = min(max(d.time - offset, base.begin), last_second)
            vehicles.append(Departure(d.id, t, base.routes[row].id, d.vtype, d.lane, d.speed))
        moved = []
        for f in flows:
            shifted = _shift_flow(f, source, start, start + length, offset)
            if shifted is None:
                continue
            row = to_base[f.route]
            if row < 0:
                dropped[i] += codec._expected(shifted).sum()
                missing.add(f.route)
                continue
            _check_vtype(base, f.vtype, f.id)
            moved.append(dataclasses.replace(shifted, route=base.routes[row].id))
        scenarios.append(
            base.replace(
                name=f"{base.name}@{start:.10g}", flows=tuple(moved), vehicles=tuple(vehicles)
            )
        )
    features = np.stack([codec.encode(sc) for sc in scenarios])
    return DemandProfiles(
        features=features,
        starts=starts,
        scenarios=tuple(scenarios),
        span=(float(first), float(last)),
        dropped=dropped,
        missing_routes=tuple(r.id for r in source.routes if r.id in missing),
    )


def _check_vtype(base: TrafficScenario, vtype: str, owner: str) -> None:
    if vtype not in base.vtypes:
        raise ValueError(
            f"source vehicle/flow {owner!r}: vehicle type {vtype!r} is not a type of the base "
            f"{base.name!r}; known: {', '.join(base.vtypes)}"
        )


def _shift_flow(
    f: Flow, source: TrafficScenario, start: float, stop: float, offset: float
) -> Flow | None:
    """The part of a random flow inside ``[start, stop)``, moved ``offset`` seconds earlier."""
    lo = max(f.begin, source.begin, start)
    hi = min(f.end, source.end, stop)
    if hi <= lo:
        return None
    profile: tuple[tuple[float, float], ...] = ()
    if f.profile:
        at_lo = float(_profile_factor(f.profile, np.array([lo]))[0])
        inside = tuple((t - offset, v) for t, v in f.profile if lo < t < hi)
        profile = ((lo - offset, at_lo), *inside)
    return dataclasses.replace(f, begin=lo - offset, end=hi - offset, profile=profile)


def profiles_to_scenarios(
    codec: TrafficDemandCodec, features: np.ndarray | Sequence[Sequence[float]]
) -> list[TrafficScenario]:
    """Decode each row of ``features`` ``[n, dim]`` into a Poisson-demand scenario.

    Raises:
        ValueError: naming the first row the codec rejects.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != codec.dim:
        raise ValueError(f"features: expected shape [n, {codec.dim}], got {list(x.shape)}")
    out = []
    for i, row in enumerate(x):
        sc = codec.decode(row)
        if sc is None:
            raise ValueError(
                f"features[{i}]: not a valid demand (rates must be finite and within "
                f"[0, {codec.max_rate:g}] veh/h up to a tolerance of {codec.tolerance:g})"
            )
        out.append(sc)
    return out


def resco_demand_profiles(
    name: str,
    *,
    seconds: float | None = None,
    start: float | None = None,
    bins: int = 12,
    stride: float | None = None,
    all_routes: bool = False,
    max_rate: float | None = None,
    tolerance: float | None = None,
) -> tuple[TrafficDemandCodec, DemandProfiles]:
    """The codec of a RESCO city scenario and the real demand windows of its route file.

    The base is the network imported over ``[start, start + seconds)``; windows of that length
    slide across the route file's span, from its first departure (or the configured ``begin``,
    if earlier) to the second after its last departure (or the configured ``end``, if later);
    see :func:`extract_demand_profiles`.

    Args:
        name: one of :data:`RESCO_CITY_NETS`.
        seconds: window length, s (default: the ``.sumocfg``'s episode, 3600).
        start: first second of the base window (default: the ``.sumocfg``'s ``begin``).
        bins: time bins of the codec.
        stride: seconds between window starts (default: ``seconds``).
        all_routes: give the base every route of the route file (nothing is dropped) rather
            than only the routes its own window uses, as ``resco_scenario`` imports it.
        max_rate: see :class:`TrafficDemandCodec`.
        tolerance: see :class:`TrafficDemandCodec`.

    Returns:
        The codec (its base is the environment's scenario) and the windows.

    Raises:
        ValueError: for a name outside :data:`RESCO_CITY_NETS`.
        RuntimeError: when the sumo-rl networks cannot be fetched.
    """
    from envs.traffic.nets import resco_scenario, sumocfg_path
    from envs.traffic.sumo_import import read_sumocfg

    if name not in RESCO_CITY_NETS:
        raise ValueError(
            f"name: {name!r} has no real route file; allowed: {', '.join(RESCO_CITY_NETS)}"
        )
    cfg = read_sumocfg(sumocfg_path(name))
    begin = float(cfg.begin or 0.0) if start is None else float(start)
    if seconds is None:
        seconds = (cfg.end if cfg.end is not None else begin + 3600.0) - float(cfg.begin or 0.0)
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds: must be a finite number > 0, got {seconds!r}")
    source = resco_scenario(name, begin=0.0, end=_WHOLE_FILE_END)
    if all_routes:
        end = begin + seconds
        base = source.replace(
            begin=begin,
            end=end,
            vehicles=tuple(v for v in source.vehicles if begin <= v.depart < end),
        )
    else:
        base = resco_scenario(name, begin=begin, end=begin + seconds)
    codec = TrafficDemandCodec(base, bins=bins, max_rate=max_rate, tolerance=tolerance)
    # the file's span: its departures and the configured episode (the last vehicles of most
    # files leave a second or two before the episode ends)
    first = float(cfg.begin or 0.0)
    last = float(cfg.end) if cfg.end is not None else first + 3600.0
    if source.vehicles:
        first = min(first, math.floor(source.vehicles[0].depart))
        last = max(last, math.floor(source.vehicles[-1].depart) + 1.0)
    return codec, extract_demand_profiles(codec, source, stride=stride, span=(first, last))
