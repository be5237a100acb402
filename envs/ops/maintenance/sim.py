"""Batched simulation core of a fleet of degrading machines (numpy and numba only).

Each step, for every replica:

1. a machine out of production (being repaired or replaced) ignores its decision, produces
   nothing and does not degrade; its remaining downtime drops by one step, and at zero it is
   available again at the condition the work left it in;
2. repair requests of available machines are granted while repair crews are free (a repair holds
   one crew for all of its ``repair_time`` steps). When more repairs are requested than crews
   are free, the machines in the worst condition are repaired first, ties going to the lower
   machine index; a denied request runs the machine instead (deterministic, no randomness);
3. a machine that *runs* produces ``output[condition]`` and then moves to a new condition drawn
   from its transition matrix; entering the failed state costs ``failure_cost``;
4. a *repair* costs ``repair_cost`` at once, improves the condition by ``repair_levels``
   (at best to new) and takes the machine out of production for ``repair_time`` steps,
   including this one;
5. a *replacement* costs ``replace_cost`` at once, restores the condition to new and takes the
   machine out of production for ``replace_time`` steps, including this one (no crew needed).

Reward quantities of the step: ``output`` (value produced), ``repair_cost``, ``replace_cost``
and ``failure_cost``; the episode ends after ``horizon`` steps.

Randomness: at reset, every replica draws the initial conditions of its machines and one uniform
number per machine and step of the episode from its own generator; the step kernel reads these
uniforms (step ``t``, machine ``i``), so a replica of a batch equals a single environment seeded
the same way bit for bit, and every policy faces the same random numbers on a given seed. The
update of all replicas is one compiled kernel (numba).
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np

from envs.core.sim import BatchedSim, Snapshot, StepResult, readonly
from envs.ops.maintenance.scenario import MachineConfig, MaintenanceScenario

RUN, REPAIR, REPLACE = 0, 1, 2
"""Decisions per machine (the action values)."""
DOWN = 3
"""Operation code of a machine that was out of production during the step."""
NONE = -1
"""Operation code before the first step of an episode."""
DECISIONS = ("run", "repair", "replace")
OPERATIONS = {NONE: "none", RUN: "run", REPAIR: "repair", REPLACE: "replace", DOWN: "down"}

QUANTITIES = ("output", "repair_cost", "replace_cost", "failure_cost")
METRICS = (
    "profit",
    "episode_profit",
    "output",
    "cost",
    "failures",
    "failed",
    "availability",
    "repairs",
    "replacements",
    "denied_repairs",
    "crews_busy",
    "mean_condition",
)


@dataclasses.dataclass(frozen=True)
class MaintenanceState(Snapshot):
    """State of all replicas after the last step (arrays ``[B, ...]``).

    The arrays are read-only views of the simulator's state, valid until its next ``step`` or
    ``reset``; :meth:`~envs.core.sim.Snapshot.replica` returns an independent copy.

    Attributes:
        condition: condition state of every machine, ``[B, N]`` (``0`` new .. ``K - 1`` failed);
            for a machine out of production, the condition it will be back in.
        downtime: steps each machine is still out of production, ``[B, N]`` (0: available).
        work: what keeps a machine out of production, ``[B, N]``: ``0`` nothing,
            ``1`` a repair (holding a crew), ``2`` a replacement.
        t: steps elapsed, ``[B]``; horizon: episode length, ``[B]``; crews: repair crews, ``[B]``.
        last_op: what each machine did in the last step, ``[B, N]``: ``0`` ran, ``1`` started a
            repair, ``2`` started a replacement, ``3`` was out of production, ``-1`` none yet.
        last_denied: a repair request was denied for lack of a crew (the machine ran),
            ``[B, N]``.
        last_failed: the machine broke down in the last step, ``[B, N]``.
        episode_profit: value produced minus all costs so far, ``[B]``.
    """

    condition: np.ndarray
    downtime: np.ndarray
    work: np.ndarray
    t: np.ndarray
    horizon: np.ndarray
    crews: np.ndarray
    last_op: np.ndarray
    last_denied: np.ndarray
    last_failed: np.ndarray
    episode_profit: np.ndarray


def transition_matrix(machine: MachineConfig) -> np.ndarray:
    """The machine's transition matrix ``[K, K]`` with rows renormalised to sum to exactly one."""
    p = np.asarray(machine.transition, dtype=np.float64)
    return p / p.sum(axis=1, keepdims=True)


def cumulative(p: np.ndarray) -> np.ndarray:
    """Row-wise cumulative probabilities of ``p`` with the last column exactly one."""
    cum = np.cumsum(p, axis=-1)
    cum = cum / cum[..., -1:]
    cum[..., -1] = 1.0
    return cum


@numba.njit(cache=True)
def _step(
    decisions: np.ndarray,
    condition: np.ndarray,
    downtime: np.ndarray,
    work: np.ndarray,
    t: np.ndarray,
    crews: np.ndarray,
    uniforms: np.ndarray,
    cum: np.ndarray,
    output: np.ndarray,
    failure_cost: np.ndarray,
    repair_cost: np.ndarray,
    repair_time: np.ndarray,
    repair_levels: np.ndarray,
    replace_cost: np.ndarray,
    replace_time: np.ndarray,
    last_op: np.ndarray,
    last_denied: np.ndarray,
    last_failed: np.ndarray,
    acc: np.ndarray,
    quantities: np.ndarray,
    metrics: np.ndarray,
) -> bool:  # pragma: no cover - compiled
    """Advance every replica by one step, in place (see the module docstring).

    Returns ``False``, changing nothing, if a decision is not 0, 1 or 2.
    """
    b_size, n = condition.shape
    for b in range(b_size):
        for i in range(n):
            if decisions[b, i] < 0 or decisions[b, i] > 2:
                return False
    k_failed = cum.shape[3] - 1
    max_t = uniforms.shape[1]
    granted = np.zeros(n, dtype=np.bool_)
    for b in range(b_size):
        # crews held by repairs in progress at the start of the step
        in_use = 0
        requests = 0
        for i in range(n):
            granted[i] = False
            if downtime[b, i] > 0:
                if work[b, i] == 1:
                    in_use += 1
            elif decisions[b, i] == 1:
                requests += 1
        free = crews[b] - in_use
        # grant repairs, worst condition first, ties to the lower machine index
        grants = min(free, requests)
        for _ in range(grants):
            best = -1
            for i in range(n):
                if (
                    downtime[b, i] == 0
                    and decisions[b, i] == 1
                    and not granted[i]
                    and (best < 0 or condition[b, i] > condition[b, best])
                ):
                    best = i
            granted[best] = True
        period = t[b] if t[b] < max_t else max_t - 1
        produced = 0.0
        repairs_paid = 0.0
        replaces_paid = 0.0
        failures_paid = 0.0
        failures = 0
        producing = 0
        repairs = 0
        replacements = 0
        denied = 0
        for i in range(n):
            last_denied[b, i] = False
            last_failed[b, i] = False
            c = condition[b, i]
            if downtime[b, i] > 0:
                downtime[b, i] -= 1
                if downtime[b, i] == 0:
                    work[b, i] = 0
                last_op[b, i] = 3
                continue
            op = decisions[b, i]
            if op == 1 and not granted[i]:
                op = 0
                last_denied[b, i] = True
                denied += 1
            last_op[b, i] = op
            if op == 0:
                produced += output[b, i, c]
                if c < k_failed:
                    producing += 1
                u = uniforms[b, period, i]
                nc = 0
                while nc < k_failed and u >= cum[b, i, c, nc]:
                    nc += 1
                if nc == k_failed and c != k_failed:
                    failures_paid += failure_cost[b, i]
                    failures += 1
                    last_failed[b, i] = True
                condition[b, i] = nc
            elif op == 1:
                repairs_paid += repair_cost[b, i]
                repairs += 1
                nc = c - repair_levels[b, i]
                condition[b, i] = nc if nc > 0 else 0
                downtime[b, i] = repair_time[b, i] - 1
                work[b, i] = 1 if downtime[b, i] > 0 else 0
            else:
                replaces_paid += replace_cost[b, i]
                replacements += 1
                condition[b, i] = 0
                downtime[b, i] = replace_time[b, i] - 1
                work[b, i] = 2 if downtime[b, i] > 0 else 0
        t[b] += 1
        profit = produced - repairs_paid - replaces_paid - failures_paid
        acc[b, 0] += profit
        acc[b, 1] += failures
        failed = 0
        busy = 0
        total_condition = 0
        for i in range(n):
            total_condition += condition[b, i]
            if condition[b, i] == k_failed and downtime[b, i] == 0:
                failed += 1
            if downtime[b, i] > 0 and work[b, i] == 1:
                busy += 1
        quantities[b, 0] = produced
        quantities[b, 1] = repairs_paid
        quantities[b, 2] = replaces_paid
        quantities[b, 3] = failures_paid
        metrics[b, 0] = profit
        metrics[b, 1] = acc[b, 0]
        metrics[b, 2] = produced
        metrics[b, 3] = repairs_paid + replaces_paid + failures_paid
        metrics[b, 4] = failures
        metrics[b, 5] = failed
        metrics[b, 6] = producing / n
        metrics[b, 7] = repairs
        metrics[b, 8] = replacements
        metrics[b, 9] = denied
        metrics[b, 10] = busy
        metrics[b, 11] = total_condition / n
    return True


class MaintenanceSim(BatchedSim[MaintenanceScenario, MaintenanceState]):
    """``B`` replicas of a machine fleet; actions are decisions ``[B, N]``.

    Decisions are ``0`` run, ``1`` repair and ``2`` replace (see the module docstring).
    """

    def __init__(self, batch_size: int, scenario: MaintenanceScenario) -> None:
        super().__init__(batch_size, scenario)
        b, n, k = batch_size, scenario.num_machines, scenario.num_conditions
        self.n, self.k = n, k
        self.max_horizon = scenario.horizon
        self.condition = np.zeros((b, n), dtype=np.int64)
        self.downtime = np.zeros((b, n), dtype=np.int64)
        self.work = np.zeros((b, n), dtype=np.int64)
        self.t = np.zeros(b, dtype=np.int64)
        self.uniforms = np.zeros((b, self.max_horizon, n))
        # per-replica scenario parameters
        self.horizon = np.zeros(b, dtype=np.int64)
        self.crews = np.zeros(b, dtype=np.int64)
        self.cum = np.ones((b, n, k, k))
        self.output = np.zeros((b, n, k))
        self.failure_cost = np.zeros((b, n))
        self.repair_cost = np.zeros((b, n))
        self.repair_time = np.ones((b, n), dtype=np.int64)
        self.repair_levels = np.ones((b, n), dtype=np.int64)
        self.replace_cost = np.zeros((b, n))
        self.replace_time = np.ones((b, n), dtype=np.int64)
        self.initial_cum = np.ones((b, k))
        # last step and episode accumulators (profit, failures)
        self.last_op = np.full((b, n), NONE, dtype=np.int64)
        self.last_denied = np.zeros((b, n), dtype=np.bool_)
        self.last_failed = np.zeros((b, n), dtype=np.bool_)
        self.acc = np.zeros((b, 2))
        self._loaded: list[MaintenanceScenario | None] = [None] * b

    def views(self) -> MaintenanceState:
        # every state array is updated in place, so one set of views stays current
        return MaintenanceState(
            condition=readonly(self.condition),
            downtime=readonly(self.downtime),
            work=readonly(self.work),
            t=readonly(self.t),
            horizon=readonly(self.horizon),
            crews=readonly(self.crews),
            last_op=readonly(self.last_op),
            last_denied=readonly(self.last_denied),
            last_failed=readonly(self.last_failed),
            episode_profit=readonly(self.acc[:, 0]),
        )

    def check_compatible(self, scenario: MaintenanceScenario) -> None:
        if scenario.num_machines != self.n or scenario.num_conditions != self.k:
            raise ValueError(
                f"scenario {scenario.name!r} has {scenario.num_machines} machines with "
                f"{scenario.num_conditions} condition states; this environment was built for "
                f"{self.n} machines with {self.k}"
            )
        if scenario.horizon > self.max_horizon:
            raise ValueError(
                f"scenario {scenario.name!r} needs horizon <= {self.max_horizon} (the "
                f"environment's structure scenario), got {scenario.horizon}"
            )

    def _load(self, i: int, sc: MaintenanceScenario) -> None:
        self._loaded[i] = sc
        self.horizon[i] = sc.horizon
        self.crews[i] = sc.crews
        for j, m in enumerate(sc.machines):
            self.cum[i, j] = cumulative(transition_matrix(m))
            self.output[i, j] = m.output
            self.failure_cost[i, j] = m.failure_cost
            self.repair_cost[i, j] = m.repair_cost
            self.repair_time[i, j] = m.repair_time
            self.repair_levels[i, j] = m.repair_levels
            self.replace_cost[i, j] = m.replace_cost
            self.replace_time[i, j] = m.replace_time
        p0 = np.asarray(sc.initial_condition, dtype=np.float64)
        self.initial_cum[i] = cumulative(p0 / p0.sum())

    def _reset(self, idx: np.ndarray) -> None:
        for i in idx.tolist():
            sc = self.scenarios[i]
            rng = self.rngs[i]
            assert rng is not None
            if self._loaded[i] is not sc:
                self._load(i, sc)
            draws = rng.random(self.n)
            start = np.searchsorted(self.initial_cum[i], draws, side="right")
            self.condition[i] = np.minimum(start, self.k - 1)
            h = sc.horizon
            self.uniforms[i, :h] = rng.random((h, self.n))
            self.uniforms[i, h:] = 0.0
        for arr in (self.downtime, self.work, self.t, self.acc, self.last_denied, self.last_failed):
            arr[idx] = 0
        self.last_op[idx] = NONE

    def step(self, actions: np.ndarray) -> StepResult:
        """Advance one step; ``actions`` are decisions ``[B, N]`` (0 run, 1 repair, 2 replace).

        Raises:
            ValueError: if a decision is not 0, 1 or 2.
        """
        decisions = np.ascontiguousarray(actions, dtype=np.int64).reshape(self.batch_size, self.n)
        quantities = np.empty((self.batch_size, len(QUANTITIES)))
        metrics = np.empty((self.batch_size, len(METRICS)))
        ok = _step(
            decisions,
            self.condition,
            self.downtime,
            self.work,
            self.t,
            self.crews,
            self.uniforms,
            self.cum,
            self.output,
            self.failure_cost,
            self.repair_cost,
            self.repair_time,
            self.repair_levels,
            self.replace_cost,
            self.replace_time,
            self.last_op,
            self.last_denied,
            self.last_failed,
            self.acc,
            quantities,
            metrics,
        )
        if not ok:
            raise ValueError(
                f"decisions: every entry must be 0 (run), 1 (repair) or 2 (replace), got "
                f"values in [{decisions.min()}, {decisions.max()}]"
            )
        return StepResult(
            quantities={name: quantities[:, j] for j, name in enumerate(QUANTITIES)},
            metrics={name: metrics[:, j] for j, name in enumerate(METRICS)},
            terminated=self.t >= self.horizon,
            truncated=np.zeros(self.batch_size, dtype=bool),
        )
