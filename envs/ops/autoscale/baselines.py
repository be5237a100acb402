"""Classic autoscalers of the service cluster.

Every controller reads the state snapshot of all replicas (``AutoscaleState``, arrays
``[B, K, ...]``), decides a desired replica count per service and turns it into the
environment's action through :meth:`AutoscaleEnv.targets_to_actions`, so the same controller
drives a single env, a native vector env or an SB3 ``VecEnv`` in any ``action_mode`` (in
``step`` mode a change larger than ``max_step`` takes several steps, as for any agent).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from envs.core.baselines import Baseline
from envs.core.registry import Registry
from envs.ops.autoscale.sim import H_RATE, L_LOAD, L_UTIL, AutoscaleState

BASELINES: Registry[type[Baseline]] = Registry("baseline")
"""Classic controllers of ``lepton/Autoscale-v0`` by name."""

HPA_METRICS = ("utilisation", "load")


def _check_fraction(field: str, value: float, *, upper: float = 1.0) -> float:
    value = float(value)
    if not 0.0 < value <= upper:
        raise ValueError(f"{field}: must lie in (0, {upper:g}], got {value}")
    return value


class _Stateful(Baseline):
    """A controller with per-replica memory, cleared when a replica starts a new episode."""

    def __init__(self, env: Any, seed: int | None = None) -> None:
        super().__init__(env, seed)
        self._last_t: np.ndarray | None = None

    def _new_episodes(self, snapshot: AutoscaleState) -> np.ndarray:
        """``[B]`` bool: replicas whose episode restarted since the last call."""
        t = np.asarray(snapshot.t)
        if self._last_t is None or self._last_t.shape != t.shape:
            fresh = np.ones(t.shape, dtype=bool)
        else:
            fresh = (t == 0) | (t < self._last_t)
        self._last_t = t.copy()
        return fresh


@BASELINES.register("hpa")
class HPABaseline(_Stateful):
    """The Kubernetes Horizontal Pod Autoscaler rule on replica utilisation.

    Each step, per service, with ``R`` ready replicas, ``S`` starting ones, ``u`` the mean
    utilisation of the ready replicas over the last step and ``ratio = u / target``, where for
    the ``utilisation`` metric both are whole percentages and ``u`` is truncated, as Kubernetes
    computes resource utilisation (``int32(100 * usage / requests)``):

    - within the tolerance (``|ratio - 1| <= tolerance``) the recommendation is the current
      desired count;
    - scaling up, starting replicas count as idle (Kubernetes' treatment of not-ready pods):
      ``ratio' = u R / ((R + S) target)``; if ``ratio'`` is within the tolerance or below 1
      nothing changes, else the recommendation is ``ceil(ratio' (R + S))``, and never below
      the current desired count when ``S > 0`` (as in Kubernetes, not-ready pods never turn a
      scale-up into a scale-down; failed replicas are not pods the rule counts);
    - scaling down, the recommendation is ``ceil(ratio R)``;
    - with no ready replica, or before the first step, nothing changes (no metrics).

    Recommendations are clamped to ``[min_replicas, max_replicas]`` and stabilised like the
    controller's default behaviour: scaling down goes no lower than the largest recommendation
    of the last ``stabilisation_minutes``; scaling up is immediate. A step without metrics
    records no recommendation (Kubernetes skips the whole reconciliation then), so a new
    episode is not held at its initial count for a window. Kubernetes' default
    scale-up rate limit (double or +4 pods per 15 s, i.e. up to 16-fold per minute) is not
    modelled.

    Args:
        env: the environment the baseline acts in.
        seed: unused (the rule is deterministic).
        target_utilisation: the utilisation the rule aims for, in (0, 1].
        tolerance: relative dead band around the target (Kubernetes' default 0.1).
        stabilisation_minutes: scale-down stabilisation window (Kubernetes' default 5 min).
        metric: ``utilisation`` (busy share of the ready replicas, like CPU, at most 1) or
            ``load`` (arrival rate over ready capacity, like a requests-per-second metric).
    """

    description: ClassVar[str] = "Kubernetes HPA rule (tolerance 0.1, 5-minute scale-down window)"

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        *,
        target_utilisation: float = 0.6,
        tolerance: float = 0.1,
        stabilisation_minutes: float = 5.0,
        metric: str = "utilisation",
    ) -> None:
        super().__init__(env, seed)
        self.target = _check_fraction("target_utilisation", target_utilisation)
        if not 0.0 <= tolerance < 1.0:
            raise ValueError(f"tolerance: must lie in [0, 1), got {tolerance}")
        if not 0.0 <= stabilisation_minutes < np.inf:
            raise ValueError(
                f"stabilisation_minutes: must be a finite number >= 0, got {stabilisation_minutes}"
            )
        if metric not in HPA_METRICS:
            raise ValueError(f"metric: {metric!r} is not allowed; allowed: {HPA_METRICS}")
        if metric == "utilisation" and abs(100.0 * self.target - round(100.0 * self.target)) > 1e-9:
            raise ValueError(
                "target_utilisation: the utilisation metric's target is a whole percentage "
                f"(Kubernetes' averageUtilization), e.g. 0.6; got {target_utilisation}"
            )
        self.tolerance = float(tolerance)
        self.window_minutes = float(stabilisation_minutes)
        self.metric = metric
        self._recs: np.ndarray | None = None

    def params(self) -> dict[str, Any]:
        """The rule's settings."""
        return {
            "target_utilisation": self.target,
            "tolerance": self.tolerance,
            "stabilisation_minutes": self.window_minutes,
            "metric": self.metric,
        }

    @staticmethod
    def has_metrics(snapshot: AutoscaleState) -> np.ndarray:
        """``[B, K]`` bool: a step has been served by at least one ready replica.

        Before the first step of an episode, or without a ready replica, there is no metric
        and the rule keeps the current count.
        """
        return (snapshot.ready > 0) & (np.asarray(snapshot.t)[:, None] > 0)

    def recommend(self, snapshot: AutoscaleState) -> np.ndarray:
        """The unstabilised recommendation per service, ``[B, K]`` replicas."""
        ready = snapshot.ready.astype(np.float64)
        starting = snapshot.starting.sum(axis=2).astype(np.float64)
        current = snapshot.desired.astype(np.float64)
        channel = L_UTIL if self.metric == "utilisation" else L_LOAD
        usage = snapshot.last[:, :, channel]
        pods = ready + starting
        # starting pods count as idle when scaling up
        usage_up = np.divide(usage * ready, pods, out=np.zeros_like(usage), where=pods > 0)
        if self.metric == "utilisation":
            # Kubernetes' resource utilisation is a whole percentage, truncated, against a
            # whole-percent target (GetResourceUtilizationRatio); the ratios and counts below
            # then come out of the same floating-point operations as the controller's
            target = round(100.0 * self.target)
            ratio = np.floor(100.0 * usage + 1e-9) / target
            ratio_up = np.floor(100.0 * usage_up + 1e-9) / target
            slack = 0.0
        else:
            ratio = usage / self.target
            ratio_up = usage_up / self.target
            slack = 1e-9  # a continuous ratio's rounding must not add a replica
        has_metrics = self.has_metrics(snapshot)
        # Kubernetes' dead band: math.Abs(1.0 - usageRatio) <= tolerance keeps the count
        outside = np.abs(1.0 - ratio) > self.tolerance
        up = has_metrics & (ratio > 1.0) & outside
        up &= (ratio_up > 1.0) & (np.abs(1.0 - ratio_up) > self.tolerance)
        down = has_metrics & (ratio < 1.0) & outside
        rec = current.copy()
        grow = np.ceil(ratio_up * pods - slack)
        # with not-ready pods a scale-up recommendation never falls below the current count
        grow = np.where(starting > 0, np.maximum(grow, current), grow)
        rec = np.where(up, grow, rec)
        rec = np.where(down, np.ceil(ratio * ready - slack), rec)
        return np.clip(rec, snapshot.min_replicas, snapshot.max_replicas)

    def act(self, snapshot: AutoscaleState) -> np.ndarray:  # type: ignore[override]
        """Return the HPA actions ``[B, K]``."""
        fresh = self._new_episodes(snapshot)
        b, k = snapshot.desired.shape
        step = np.asarray(snapshot.step_minutes, dtype=np.float64)
        # recommendations younger than the window (Kubernetes keeps those after the cutoff),
        # counted in each replica's own steps
        width = np.maximum(1, np.ceil(self.window_minutes / step - 1e-9)).astype(np.int64)
        size = int(width.max())
        if self._recs is None or self._recs.shape[:2] != (b, k):
            self._recs = np.full((b, k, size), -np.inf)
        elif self._recs.shape[2] < size:
            grown = np.full((b, k, size - self._recs.shape[2]), -np.inf)
            self._recs = np.concatenate([self._recs, grown], axis=2)
        self._recs[fresh] = -np.inf
        rec = self.recommend(snapshot)
        self._recs = np.roll(self._recs, 1, axis=2)
        self._recs[:, :, 0] = np.where(self.has_metrics(snapshot), rec, -np.inf)
        current = snapshot.desired.astype(np.float64)
        # Kubernetes' stabilizeRecommendation: never below the scale-up recommendation (window
        # 0: the current one), never above the largest of it and the recommendations of the
        # scale-down window
        in_window = np.arange(self._recs.shape[2])[None, :] < width[:, None]
        down_limit = np.where(in_window[:, None, :], self._recs, -np.inf).max(axis=2)
        final = np.minimum(np.maximum(current, rec), np.maximum(down_limit, rec))
        return self.lepton.targets_to_actions(final, snapshot)


@BASELINES.register("static_peak")
class StaticPeakBaseline(Baseline):
    """Static provisioning for the peak: a constant replica count sized for the busiest time.

    Per service, ``ceil(peak_rate / (service_rate * target_utilisation))`` replicas within the
    cap, where ``peak_rate`` is the planning peak of the arrival process (the profile's
    maximum with two standard deviations of noise and the mean burst, or the trace's largest
    count; see ``ArrivalConfig.peak_rate``).

    Args:
        env: the environment the baseline acts in.
        seed: unused (the rule is deterministic).
        target_utilisation: utilisation at the peak, in (0, 1].
    """

    description: ClassVar[str] = "constant replicas sized for the peak arrival rate"

    def __init__(
        self, env: Any, seed: int | None = None, *, target_utilisation: float = 0.7
    ) -> None:
        super().__init__(env, seed)
        self.target = _check_fraction("target_utilisation", target_utilisation)

    def params(self) -> dict[str, Any]:
        """The target utilisation at the peak."""
        return {"target_utilisation": self.target}

    def act(self, snapshot: AutoscaleState) -> np.ndarray:  # type: ignore[override]
        """Return the actions that hold the peak provisioning ``[B, K]``."""
        need = np.ceil(snapshot.peak_rate / (snapshot.service_rate * self.target) - 1e-9)
        return self.lepton.targets_to_actions(need, snapshot)


@BASELINES.register("predictive")
class PredictiveBaseline(Baseline):
    """Provision for a forecast of the arrival rate one start-up delay ahead.

    The forecast fits a straight line (least squares) to the arrival rates of the last
    ``window_minutes`` and extrapolates it to the step when replicas started now become ready
    (start-up delay plus one step); it never goes below the last step's rate. The target is
    ``ceil((forecast + queue / drain) / (service_rate * target_utilisation))`` where the
    queue is to be cleared within ``drain_minutes``. Scaling down is immediate.

    Args:
        env: the environment the baseline acts in.
        seed: unused (the rule is deterministic).
        target_utilisation: utilisation to provision for, in (0, 1].
        window_minutes: length of the moving window the trend is fitted on.
        drain_minutes: time to clear a backlog.
    """

    description: ClassVar[str] = "linear trend of a moving window, one start-up delay ahead"

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        *,
        target_utilisation: float = 0.6,
        window_minutes: float = 15.0,
        drain_minutes: float = 2.0,
    ) -> None:
        super().__init__(env, seed)
        self.target = _check_fraction("target_utilisation", target_utilisation)
        if not window_minutes > 0:
            raise ValueError(f"window_minutes: must be > 0, got {window_minutes}")
        if not drain_minutes > 0:
            raise ValueError(f"drain_minutes: must be > 0, got {drain_minutes}")
        self.window_minutes = float(window_minutes)
        self.drain_minutes = float(drain_minutes)

    def params(self) -> dict[str, Any]:
        """The rule's settings."""
        return {
            "target_utilisation": self.target,
            "window_minutes": self.window_minutes,
            "drain_minutes": self.drain_minutes,
        }

    def forecast(self, snapshot: AutoscaleState) -> np.ndarray:
        """Forecast arrival rate per service when replicas started now are ready, ``[B, K]``."""
        step = np.asarray(snapshot.step_minutes, dtype=np.float64)
        width = snapshot.history.shape[3]
        # the window in each replica's own steps (at least two points for a trend)
        span = np.minimum(width, np.maximum(2, np.ceil(self.window_minutes / step - 1e-9)))
        span = span.astype(np.int64)
        n_max = int(span.max())
        t = np.asarray(snapshot.t)
        n = np.minimum(t, span)  # valid points per replica
        # ages 0 (last step) .. n_max - 1, gathered from the ring
        ages = np.arange(n_max)
        idx = (t[:, None] - 1 - ages[None, :]) % width
        rates = np.take_along_axis(
            snapshot.history[:, :, H_RATE, :],
            idx[:, None, :].repeat(snapshot.desired.shape[1], 1),
            axis=2,
        )
        valid = ages[None, :] < n[:, None]  # [B, n_max]
        w = valid[:, None, :].astype(np.float64)
        x = -ages.astype(np.float64)[None, None, :]
        count = w.sum(axis=2)
        safe = np.maximum(count, 1.0)
        mx = (w * x).sum(axis=2) / safe
        my = (w * rates).sum(axis=2) / safe
        sxx = (w * (x - mx[..., None]) ** 2).sum(axis=2)
        sxy = (w * (x - mx[..., None]) * (rates - my[..., None])).sum(axis=2)
        slope = np.divide(sxy, sxx, out=np.zeros_like(sxy), where=sxx > 0)
        ahead = snapshot.startup_steps.astype(np.float64) + 1.0
        trend = my + slope * (ahead - mx)
        last = snapshot.rate[:, :, 0]
        out = np.maximum(trend, last)
        return np.where(count > 0, out, last)

    def act(self, snapshot: AutoscaleState) -> np.ndarray:  # type: ignore[override]
        """Return the predictive actions ``[B, K]``."""
        backlog = snapshot.queue / (60.0 * self.drain_minutes)
        need = (self.forecast(snapshot) + backlog) / (snapshot.service_rate * self.target)
        return self.lepton.targets_to_actions(np.ceil(need - 1e-9), snapshot)


@BASELINES.register("random")
class RandomBaseline(Baseline):
    """Uniformly random actions in the action space, drawn from the baseline's own generator."""

    description: ClassVar[str] = "uniformly random actions (own seeded generator)"

    def act(self, snapshot: AutoscaleState) -> np.ndarray:  # type: ignore[override]
        """Return random actions ``[B, *action_shape]``."""
        batch = snapshot.t.shape[0]
        space = self.lepton.action_space
        if isinstance(space, spaces.MultiDiscrete):
            draws = self.draw(
                batch, lambda rng, n: rng.integers(0, space.nvec, size=(n, *space.shape))
            )
            return (draws + space.start).astype(space.dtype)
        if isinstance(space, spaces.Box):
            draws = self.draw(
                batch, lambda rng, n: rng.uniform(space.low, space.high, size=(n, *space.shape))
            )
            return np.clip(draws, space.low, space.high).astype(space.dtype)
        raise TypeError(f"random baseline: unsupported action space {space}")
