"""Classic signal controllers of the traffic family.

Every controller reads the state snapshot of all replicas (``TrafficState``, arrays
``[B, ...]``) and returns one green phase per controlled signal, indexed like the env's actions
(phase ``i`` is the ``i``-th green phase of the signal's program), so the same controller drives
a single env (``Discrete``), a grid (``MultiDiscrete``), a native vector env, an SB3
``VecEnv`` or the PettingZoo env (``predict`` of a ``{agent: obs}`` dict returns
``{agent: phase}``). The env applies the choices with its usual rules: a change waits for
``yellow_time + all_red_time + min_green`` since the last one (every green lasts at least
``min_green``), runs through yellow (and all-red), and a green held for ``max_green`` moves on
to the next green phase.

What each controller needs from the network (per signal and green phase: its green links as
``(incoming lane, outgoing lane)`` pairs and the lanes it serves) is computed once at
construction; :meth:`act` is vectorised over replicas and signals.

Controllers:

- ``fixed_time``: the network's own fixed-time program (SUMO running the program unchanged,
  sumo-rl's ``fixed_ts=True``);
- ``max_pressure``: Varaiya's max-pressure rule on vehicle counts;
- ``longest_queue``: greedy service of the most halting vehicles;
- ``actuated``: vehicle-actuated gap-out control (SUMO's ``actuated`` logic at decision
  resolution, with phase skipping);
- ``sotl``: Gershenson's self-organising traffic lights (``sotl-platoon``);
- ``random``: uniformly random green phases.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from envs.core.baselines import Baseline
from envs.core.registry import Registry
from envs.traffic.env import TrafficSignalEnv
from envs.traffic.sim import (
    F_POS,
    I_ALIVE,
    I_LANE,
    L_COUNT,
    L_HALT,
    S_CUR,
    S_GREEN,
    S_PHASE,
    S_STAGE,
    S_TARGET,
    TrafficState,
)

BASELINES: Registry[type[Baseline]] = Registry("baseline")
"""Classic controllers of ``lepton/TrafficSignal-v0`` (and the other traffic ids) by name."""

GREEN_CHARS = "Gg"
"""Link states that let a link's vehicles go (priority and permissive green)."""


def _check_positive(field: str, value: float, *, allow_zero: bool = False) -> float:
    value = float(value)
    if not (value >= 0.0 if allow_zero else value > 0.0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{field}: must be {bound}, got {value}")
    return value


class SignalBaseline(Baseline):
    """Base class of the signal controllers: the network's phase structure as arrays.

    Attributes (``K`` controlled signals, ``G`` most green phases of one, ``L`` lanes):
        controlled: ``[K]`` network indices of the controlled signals.
        num_greens: ``[K]`` green phases of every controlled signal.
        valid: ``[K, G]`` whether green phase ``g`` exists for signal ``k``.
        links: ``K`` lists of ``G`` lists of the distinct ``(in_lane, out_lane)`` pairs whose
            link is green (``G`` or ``g``) in that phase.
        served: ``[K, G, L]`` 1 where the lane is the incoming lane of a green link of the phase.
        pressure_weights: ``[K, G, L]`` per lane, the phase's green pairs entering from it minus
            those leaving into it, so that ``counts @ weights`` is the phase's pressure.
        green_of_phase: ``[P]`` green index of every phase of the simulator's phase table (all
            signals' programs one after the other), -1 for yellow and red phases.
    """

    description: ClassVar[str] = ""

    def __init__(self, env: Any, seed: int | None = None) -> None:
        super().__init__(env, seed)
        if not isinstance(self.lepton, TrafficSignalEnv):
            raise TypeError(
                f"{type(self).__name__} controls traffic signals: it needs a traffic env "
                f"(TrafficSignalEnv, e.g. lepton/TrafficSignal-v0), got "
                f"{type(self.lepton).__name__}"
            )
        self.signal_ids: tuple[str, ...] = self.lepton.signal_ids
        sc = self.lepton.structure
        net = sc.network
        self.settings = sc.signals
        self.controlled = np.asarray(sc.controlled_signals, dtype=np.int64)
        k_n = self.controlled.size
        programs = [net.signals[s] for s in self.controlled.tolist()]
        self.num_greens = np.array([len(p.green_phases) for p in programs], dtype=np.int64)
        g_n = int(self.num_greens.max()) if k_n else 0
        n_lanes = net.num_lanes
        starts = np.cumsum([0] + [len(sig.phases) for sig in net.signals])
        self.phase_start = starts[self.controlled]
        self.green_of_phase = np.full(max(int(starts[-1]), 1), -1, dtype=np.int64)
        for s, sig in enumerate(net.signals):
            for g, p in enumerate(sig.green_phases):
                self.green_of_phase[starts[s] + p] = g
        self.valid = np.arange(g_n)[None, :] < self.num_greens[:, None]
        self.served = np.zeros((k_n, g_n, n_lanes), dtype=np.float64)
        self.pressure_weights = np.zeros((k_n, g_n, n_lanes), dtype=np.float64)
        self.links: list[list[list[tuple[int, int]]]] = []
        for k, (s, sig) in enumerate(zip(self.controlled.tolist(), programs, strict=True)):
            per_phase = []
            for g, p in enumerate(sig.green_phases):
                state = sig.phases[p].state
                pairs: dict[tuple[int, int], None] = {}
                for link, conns in enumerate(net.signal_links[s]):
                    if state[link] in GREEN_CHARS:
                        for c in conns:
                            pairs.setdefault((int(net.conn_from[c]), int(net.conn_to[c])), None)
                for lane_in, lane_out in pairs:
                    self.served[k, g, lane_in] = 1.0
                    self.pressure_weights[k, g, lane_in] += 1.0
                    self.pressure_weights[k, g, lane_out] -= 1.0
                per_phase.append(list(pairs))
            self.links.append(per_phase)
        self.lane_length = np.asarray(net.lane_length, dtype=np.float64)
        self.lane_speed = np.asarray(net.lane_speed, dtype=np.float64)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[Any, None]:
        """SB3-style ``predict``; a PettingZoo observation ``{agent: obs}`` gets ``{agent: phase}``.

        The dict form drives :class:`~envs.traffic.multi.TrafficParallelEnv` (one agent per
        signal, named by its id); every other observation is answered as
        :meth:`Baseline.predict` does.

        Raises:
            ValueError: a key of a dict observation is not a controlled signal's id, or the
                env runs more than one replica.
        """
        if not isinstance(observation, Mapping):
            return super().predict(observation, state, episode_start, deterministic)
        unknown = [a for a in observation if a not in self.signal_ids]
        if unknown:
            raise ValueError(
                f"observation: keys {unknown} are not controlled signals; the agents are "
                f"{list(self.signal_ids)}"
            )
        actions = np.asarray(self.act(self.source.snapshot()))
        if actions.shape[0] != 1:
            raise ValueError(
                f"observation: a dict {{agent: obs}} is one replica's, but the env runs "
                f"{actions.shape[0]} replicas"
            )
        phases = actions.reshape(-1).tolist()
        return {a: phases[k] for k, a in enumerate(self.signal_ids) if a in observation}, None

    # --- helpers -----------------------------------------------------------------------------
    def current_green(self, snapshot: TrafficState) -> np.ndarray:
        """``[B, K]`` green index each signal shows now (its target while changing)."""
        sig = snapshot.signal_int[:, self.controlled]
        phase = np.where(sig[..., S_STAGE] == 0, sig[..., S_CUR], sig[..., S_TARGET])
        green = self.green_of_phase[phase]
        return np.where(green >= 0, green, 0)

    def changing(self, snapshot: TrafficState) -> np.ndarray:
        """``[B, K]`` bool: the signal is in yellow or all-red (decisions are ignored)."""
        return snapshot.signal_int[:, self.controlled, S_STAGE] != 0

    def phase_sum(self, values: np.ndarray) -> np.ndarray:
        """``[B, K, G]`` sums of per-lane ``values [B, L]`` over every phase's served lanes."""
        return np.einsum("bl,kgl->bkg", values, self.served)

    def near_stop_line(self, snapshot: TrafficState, distance: np.ndarray | float) -> np.ndarray:
        """``[B, L]`` vehicles on every lane within ``distance`` metres of its stop line.

        ``distance`` is a scalar or one value per lane; vehicles inside a junction are not on
        any lane and do not count.
        """
        alive = snapshot.veh_int[..., I_ALIVE] == 1
        lane = snapshot.veh_int[..., I_LANE]
        pos = snapshot.veh_float[..., F_POS]
        lane = np.where(alive, lane, 0)
        limit = np.broadcast_to(np.asarray(distance, dtype=np.float64), self.lane_length.shape)
        to_go = self.lane_length[lane] - pos
        hit = alive & (pos >= 0.0) & (to_go <= limit[lane])
        b, n_lanes = hit.shape[0], self.lane_length.size
        rows = np.broadcast_to(np.arange(b)[:, None], hit.shape)
        flat = rows[hit] * n_lanes + lane[hit]
        return np.bincount(flat, minlength=b * n_lanes).reshape(b, n_lanes).astype(np.float64)

    def best_phase(self, scores: np.ndarray, current: np.ndarray) -> np.ndarray:
        """``[B, K]`` phase of the highest score; ties keep ``current`` (else the lowest index)."""
        scores = np.where(self.valid[None], scores, -np.inf)
        best = scores.argmax(axis=2)
        top = scores.max(axis=2)
        at_current = np.take_along_axis(scores, current[..., None], axis=2)[..., 0]
        return np.where(at_current >= top - 1e-9, current, best)

    def to_actions(self, greens: np.ndarray) -> np.ndarray:
        """Turn ``[B, K]`` green indices into the env's actions ``[B, *action_shape]``."""
        space = self.lepton.action_space
        if isinstance(space, spaces.Discrete):
            return (greens[:, 0] + space.start).astype(space.dtype)
        assert isinstance(space, spaces.MultiDiscrete)
        return (greens.reshape(greens.shape[0], *space.shape) + space.start).astype(space.dtype)


class _Timed(SignalBaseline):
    """A controller with per-replica memory, cleared when a replica starts a new episode."""

    def __init__(self, env: Any, seed: int | None = None) -> None:
        super().__init__(env, seed)
        self._last_t: np.ndarray | None = None

    def elapsed(self, snapshot: TrafficState) -> tuple[np.ndarray, np.ndarray]:
        """``[B]`` seconds since the last call and ``[B]`` bool of replicas that restarted."""
        t = np.asarray(snapshot.time, dtype=np.float64)
        if self._last_t is None or self._last_t.shape != t.shape:
            fresh = np.ones(t.shape, dtype=bool)
        else:
            fresh = t < self._last_t - 1e-9
        dt = np.where(fresh, 0.0, t - (self._last_t if self._last_t is not None else t))
        self._last_t = t.copy()
        return dt, fresh


@BASELINES.register("fixed_time")
class FixedTimeBaseline(SignalBaseline):
    """The network's own fixed-time program, exactly as SUMO runs it (sumo-rl's ``fixed_ts``).

    The controller does not choose phases: on every call it switches the controlled signals of
    all replicas to the simulator's program mode (``TrafficSim.program_mode``), in which they
    run their programs' phases and durations from the cycle position of the episode start,
    as the uncontrolled signals do. The simulator clears the flag whenever a replica resets
    (including autoresets inside a vector env's ``step``), so it is set again before every
    decision. The returned actions (the green phase the program shows or comes to next) are
    valid but ignored.
    """

    description: ClassVar[str] = "the network's fixed-time signal program (SUMO / sumo-rl fixed_ts)"

    def act(self, snapshot: TrafficState) -> np.ndarray:  # type: ignore[override]
        """Put the controlled signals in program mode; return the program's green phases."""
        sim = self.source.runner.sim
        sim.program_mode[:, self.controlled] = True
        phase = snapshot.signal_int[:, self.controlled, S_PHASE]
        green = self.green_of_phase[phase]
        # a yellow or red phase of the program reports the next green in program order
        starts = self.phase_start[None, :]
        lengths = np.array(
            [len(self.lepton.structure.network.signals[s].phases) for s in self.controlled.tolist()]
        )[None, :]
        for step in range(1, int(lengths.max(initial=1)) + 1):
            missing = green < 0
            if not missing.any():
                break
            nxt = starts + (phase - starts + step) % lengths
            green = np.where(missing, self.green_of_phase[nxt], green)
        return self.to_actions(np.maximum(green, 0))


@BASELINES.register("max_pressure")
class MaxPressureBaseline(SignalBaseline):
    """Varaiya's max-pressure control on vehicle counts.

    At every decision each signal picks the green phase of largest pressure
    ``sum over (i, o) of (n_i - n_o)``, where ``(i, o)`` runs over the distinct
    (incoming lane, outgoing lane) pairs of the phase's green links (``G`` or ``g``) and ``n``
    counts the vehicles on a lane. Ties keep the current phase. The env enforces the minimum
    green (changes before ``yellow_time + all_red_time + min_green`` are ignored) and
    ``max_green``.
    """

    description: ClassVar[str] = "max-pressure (Varaiya): green phase of largest in-out count"

    def pressure(self, snapshot: TrafficState) -> np.ndarray:
        """``[B, K, G]`` pressure of every green phase (``-inf`` for padding)."""
        counts = np.asarray(snapshot.lane_stats[..., L_COUNT], dtype=np.float64)
        out = np.einsum("bl,kgl->bkg", counts, self.pressure_weights)
        return np.where(self.valid[None], out, -np.inf)

    def act(self, snapshot: TrafficState) -> np.ndarray:  # type: ignore[override]
        """Return the max-pressure phases ``[B, *action_shape]``."""
        return self.to_actions(
            self.best_phase(self.pressure(snapshot), self.current_green(snapshot))
        )


@BASELINES.register("longest_queue")
class LongestQueueBaseline(SignalBaseline):
    """Greedy: the green phase serving the most halting vehicles.

    A phase's queue is the number of halting vehicles (slower than 0.1 m/s) on the incoming
    lanes of its green links, each lane counted once. Ties keep the current phase.
    """

    description: ClassVar[str] = "greedy: green phase with the most halting vehicles"

    def act(self, snapshot: TrafficState) -> np.ndarray:  # type: ignore[override]
        """Return the longest-queue phases ``[B, *action_shape]``."""
        queue = self.phase_sum(np.asarray(snapshot.lane_stats[..., L_HALT], dtype=np.float64))
        return self.to_actions(self.best_phase(queue, self.current_green(snapshot)))


@BASELINES.register("actuated")
class ActuatedBaseline(SignalBaseline):
    """Vehicle-actuated control with gap-out and phase skipping.

    SUMO's ``actuated`` signals extend a green while detectors upstream of the stop line see
    vehicles arriving closer together than a maximum gap. At decision resolution this reads:
    the green phase is *called* while a lane it serves holds a vehicle that can reach the stop
    line within ``passage_time`` at the lane's speed limit, i.e. within
    ``passage_time * speed limit`` metres of it (moving or queued). Each decision, per signal:

    - before ``min_green`` seconds of green, keep the phase;
    - while the phase is called and its green is shorter than ``max_green``, extend it;
    - otherwise (gap-out, or max-out), change to the phase with the most vehicles on lanes the
      current phase does not serve; with no such demand, rest in the current green.

    Args:
        env: the environment the baseline acts in.
        seed: unused (the rule is deterministic).
        passage_time: look-ahead of the extension detector, s (SUMO's default maximum gap
            between vehicles, 3 s; longer values hold greens for sparse arrivals and do worse on
            the built-in presets at 5-s decisions).
        min_green: shortest green, s (default: the env's ``min_green``).
        max_green: longest green, s (default: the env's ``max_green``, which the env enforces
            anyway).
    """

    description: ClassVar[str] = "vehicle-actuated gap-out control with phase skipping"

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        *,
        passage_time: float = 3.0,
        min_green: float | None = None,
        max_green: float | None = None,
    ) -> None:
        super().__init__(env, seed)
        self.passage_time = _check_positive("passage_time", passage_time)
        self.min_green = _check_positive(
            "min_green",
            self.settings.min_green if min_green is None else min_green,
            allow_zero=True,
        )
        self.max_green = _check_positive(
            "max_green", self.settings.max_green if max_green is None else max_green
        )
        if self.max_green < self.min_green:
            raise ValueError(
                f"max_green: must be >= min_green ({self.min_green}), got {self.max_green}"
            )

    def params(self) -> dict[str, Any]:
        """The controller's settings."""
        return {
            "passage_time": self.passage_time,
            "min_green": self.min_green,
            "max_green": self.max_green,
        }

    def act(self, snapshot: TrafficState) -> np.ndarray:  # type: ignore[override]
        """Return the actuated phases ``[B, *action_shape]``."""
        current = self.current_green(snapshot)
        green_time = snapshot.signal_float[:, self.controlled, S_GREEN]
        near = self.near_stop_line(snapshot, self.passage_time * self.lane_speed)
        calls = np.take_along_axis(self.phase_sum(near), current[..., None], axis=2)[..., 0]
        counts = np.asarray(snapshot.lane_stats[..., L_COUNT], dtype=np.float64)
        served_now = self.served[np.arange(self.controlled.size)[None, :], current]  # [B, K, L]
        demand = np.einsum("bl,kgl,bkl->bkg", counts, self.served, 1.0 - served_now)
        demand = np.where(self.valid[None], demand, -np.inf)
        idx = current[..., None]
        np.put_along_axis(demand, idx, -np.inf, axis=2)
        other = demand.argmax(axis=2)
        has_other = demand.max(axis=2) > 0
        hold = (
            (green_time < self.min_green - 1e-9)
            | ((calls > 0) & (green_time < self.max_green - 1e-9))
            | ~has_other
            | self.changing(snapshot)
        )
        return self.to_actions(np.where(hold, current, other))


@BASELINES.register("sotl")
class SOTLBaseline(_Timed):
    """Self-organising traffic lights (Gershenson's ``sotl-platoon``, with Cools et al.'s rule 4).

    Every red phase keeps a counter ``kappa`` of vehicle-seconds: each decision adds the
    elapsed time times the vehicles within ``distance`` metres of the stop line on the lanes the
    phase serves and the current green does not; the counter of the green phase stays zero.
    Each decision, per signal, after ``min_green`` seconds of green:

    - *threshold*: if the largest counter reaches ``theta``, change to that phase, unless
    - *platoon protection*: more than zero and at most ``mu`` vehicles are within ``omega``
      metres of the green's stop lines (a short platoon about to cross is not cut; a longer
      one is, so that red lanes are not starved);
    - *empty green*: if no vehicle is within ``distance`` of the green's stop lines while one
      is on a red lane, change to the red phase with the largest counter.

    Args:
        env: the environment the baseline acts in.
        seed: unused (the rule is deterministic).
        theta: switching threshold, vehicle-seconds of demand accumulated by a red phase.
        mu: platoon size that protects a green from being cut, vehicles.
        omega: platoon-protection distance before the stop line, metres.
        distance: distance before the stop line in which vehicles are counted, metres.
        min_green: shortest green, s (default: the env's ``min_green``).
    """

    description: ClassVar[str] = "self-organising traffic lights (sotl-platoon, Gershenson)"

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        *,
        theta: float = 60.0,
        mu: int = 3,
        omega: float = 25.0,
        distance: float = 50.0,
        min_green: float | None = None,
    ) -> None:
        super().__init__(env, seed)
        self.theta = _check_positive("theta", theta)
        if int(mu) != mu or mu < 0:
            raise ValueError(f"mu: must be a whole number >= 0, got {mu}")
        self.mu = int(mu)
        self.omega = _check_positive("omega", omega)
        self.distance = _check_positive("distance", distance)
        self.min_green = _check_positive(
            "min_green",
            self.settings.min_green if min_green is None else min_green,
            allow_zero=True,
        )
        self.kappa: np.ndarray | None = None

    def params(self) -> dict[str, Any]:
        """The controller's settings."""
        return {
            "theta": self.theta,
            "mu": self.mu,
            "omega": self.omega,
            "distance": self.distance,
            "min_green": self.min_green,
        }

    def act(self, snapshot: TrafficState) -> np.ndarray:  # type: ignore[override]
        """Return the SOTL phases ``[B, *action_shape]``."""
        dt, fresh = self.elapsed(snapshot)
        b = dt.shape[0]
        shape = (b, *self.valid.shape)
        if self.kappa is None or self.kappa.shape != shape:
            self.kappa = np.zeros(shape)
        self.kappa[fresh] = 0.0
        current = self.current_green(snapshot)
        served_now = self.served[np.arange(self.controlled.size)[None, :], current]  # [B, K, L]
        approaching = self.near_stop_line(snapshot, self.distance)
        red_demand = np.einsum("bl,kgl,bkl->bkg", approaching, self.served, 1.0 - served_now)
        red_demand = np.where(self.valid[None], red_demand, 0.0)
        self.kappa += dt[:, None, None] * red_demand
        np.put_along_axis(self.kappa, current[..., None], 0.0, axis=2)
        green_near = np.einsum("bl,bkl->bk", approaching, served_now)
        platoon = np.einsum("bl,bkl->bk", self.near_stop_line(snapshot, self.omega), served_now)
        # the red phase of the largest counter (of the most approaching vehicles on a tie)
        kappa = np.where(self.valid[None], self.kappa, -np.inf)
        np.put_along_axis(kappa, current[..., None], -np.inf, axis=2)
        target = (kappa + 1e-6 * red_demand).argmax(axis=2)
        protected = (platoon > 0) & (platoon <= self.mu)
        by_threshold = (kappa.max(axis=2) >= self.theta) & ~protected
        red_waiting = np.take_along_axis(red_demand, target[..., None], axis=2)[..., 0] > 0
        empty_green = (green_near == 0) & red_waiting
        green_time = snapshot.signal_float[:, self.controlled, S_GREEN]
        switch = (
            (by_threshold | empty_green)
            & (green_time >= self.min_green - 1e-9)
            & ~self.changing(snapshot)
        )
        return self.to_actions(np.where(switch, target, current))


@BASELINES.register("random")
class RandomBaseline(SignalBaseline):
    """Uniformly random green phases, drawn from the baseline's own generator."""

    description: ClassVar[str] = "uniformly random green phases (own seeded generator)"

    def act(self, snapshot: TrafficState) -> np.ndarray:  # type: ignore[override]
        """Return random phases ``[B, *action_shape]``."""
        b = snapshot.time.shape[0]
        draws = self.draw(
            b, lambda rng, n: rng.integers(0, self.num_greens, size=(n, self.num_greens.size))
        )
        return self.to_actions(draws)
