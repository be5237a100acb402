"""Exact optimal maintenance policies by finite-horizon value iteration (backward induction).

For one machine the environment is a finite MDP. Its state at a decision point is the number of
steps left ``s`` (``horizon - t``), the condition ``c`` and the remaining downtime ``d`` (steps
the machine is still out of production). With the environment's dynamics and its weighted,
undiscounted reward ``r = w_output * output - w_repair * repair_cost - w_replace * replace_cost
- w_failure * failure_cost`` (see :mod:`envs.ops.maintenance.sim`):

- ``V_0 = 0``;
- a machine out of production earns nothing and does not degrade:
  ``V_s(c, d) = V_{s-1}(c, d - 1)`` for ``d > 0``;
- an available machine takes the best of

  * run: ``w_output * output[c] - w_failure * failure_cost * P[c, F] [c != F]
    + sum_c' P[c, c'] V_{s-1}(c', 0)``,
  * repair: ``-w_repair * repair_cost + V_{s-1}(max(c - levels, 0), repair_time - 1)``
    (with no crew at all a repair request runs the machine, as in the environment),
  * replace: ``-w_replace * replace_cost + V_{s-1}(0, replace_time - 1)``,

  ties going to the earlier decision (run, then repair, then replace).

The expected return of an episode is ``sum_c p0[c] V_horizon(c, 0)``. When the crews can never
be short (``crews >= number of machines``) the machines of a fleet are independent, so solving
each machine alone gives the exact optimum of the whole fleet. With fewer crews than machines
the crew limit couples them (the joint state space is exponential): :func:`solve` then refuses,
or, with ``relax_crews=True``, solves the relaxation without the crew limit, whose value is an
upper bound on the fleet's optimum.

The same recursion with a fixed decision rule instead of the maximum evaluates any policy of
one machine exactly (:func:`evaluate_rule`), e.g. the threshold rule, so its gap to the optimum
is known without sampling noise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from envs.ops.maintenance.scenario import MachineConfig, MaintenanceScenario
from envs.ops.maintenance.sim import REPAIR, REPLACE, RUN, transition_matrix

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "output": 1.0,
    "repair_cost": 1.0,
    "replace_cost": 1.0,
    "failure_cost": 1.0,
}
"""The environment's default reward weights (the reward is the period profit)."""


@dataclasses.dataclass(frozen=True)
class MachineSolution:
    """Optimal values and decisions of one machine over a finite horizon.

    Attributes:
        values: ``[T + 1, K, D]`` optimal expected return-to-go with ``s`` steps left, condition
            ``c`` and remaining downtime ``d`` (``D`` = longest downtime of the machine).
        q: ``[T + 1, K, 3]`` expected return-to-go of deciding run / repair / replace for an
            available machine (row ``s = 0`` is zero).
        policy: ``[T + 1, K]`` optimal decision of an available machine with ``s`` steps left in
            condition ``c`` (0 run, 1 repair, 2 replace).
        value: expected episode return from the scenario's initial condition distribution.
    """

    values: np.ndarray
    q: np.ndarray
    policy: np.ndarray
    value: float


@dataclasses.dataclass(frozen=True)
class FleetSolution:
    """Optimal policy of a fleet whose machines are independent (one machine, or enough crews).

    Attributes:
        machines: the solution of every machine.
        value: expected episode return of the fleet (the sum over machines).
        horizon: the horizon ``T`` the policies were solved for.
    """

    machines: tuple[MachineSolution, ...]
    value: float
    horizon: int

    @property
    def policy(self) -> np.ndarray:
        """Decisions ``[N, T + 1, K]`` of every machine by steps left and condition."""
        return np.stack([m.policy for m in self.machines])

    def decisions(self, condition: np.ndarray, steps_left: np.ndarray) -> np.ndarray:
        """Optimal decisions ``[B, N]`` for conditions ``[B, N]`` and steps left ``[B]``.

        Steps left are clipped to ``[0, horizon]``; with zero steps left the decision is run.
        """
        table = self.policy
        s = np.clip(np.asarray(steps_left, dtype=np.int64), 0, self.horizon)
        n = table.shape[0]
        machine = np.arange(n)[None, :]
        return table[machine, s[:, None], np.asarray(condition, dtype=np.int64)]


def _weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    out = dict(DEFAULT_WEIGHTS)
    if weights is not None:
        out = {name: float(weights.get(name, 0.0)) for name in DEFAULT_WEIGHTS}
    return out


def _backward(
    machine: MachineConfig,
    horizon: int,
    repairs_allowed: bool,
    weights: Mapping[str, float] | None,
    rule: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward induction for one machine; ``rule`` ``[T + 1, K]`` fixes the decisions."""
    w = _weights(weights)
    p = transition_matrix(machine)
    k = p.shape[0]
    failed = k - 1
    downtime = max(machine.repair_time, machine.replace_time)
    out = np.asarray(machine.output, dtype=np.float64)
    # expected immediate reward of running in each condition
    breakdown = p[:, failed].copy()
    breakdown[failed] = 0.0
    run_reward = w["output"] * out - w["failure_cost"] * machine.failure_cost * breakdown
    repaired = np.maximum(np.arange(k) - machine.repair_levels, 0)
    values = np.zeros((horizon + 1, k, downtime))
    q = np.zeros((horizon + 1, k, 3))
    policy = np.zeros((horizon + 1, k), dtype=np.int64)
    for s in range(1, horizon + 1):
        nxt = values[s - 1]
        values[s, :, 1:] = nxt[:, :-1]
        q[s, :, RUN] = run_reward + p @ nxt[:, 0]
        if repairs_allowed:
            q[s, :, REPAIR] = (
                -w["repair_cost"] * machine.repair_cost + nxt[repaired, machine.repair_time - 1]
            )
        else:
            q[s, :, REPAIR] = q[s, :, RUN]
        q[s, :, REPLACE] = -w["replace_cost"] * machine.replace_cost + nxt[
            0, machine.replace_time - 1
        ] * np.ones(k)
        if rule is None:
            policy[s] = np.argmax(q[s], axis=1)
        else:
            policy[s] = rule[s]
        values[s, :, 0] = q[s, np.arange(k), policy[s]]
    return values, q, policy


def solve_machine(
    machine: MachineConfig,
    horizon: int,
    initial_condition: np.ndarray,
    *,
    repairs_allowed: bool = True,
    weights: Mapping[str, float] | None = None,
) -> MachineSolution:
    """Solve one machine exactly by backward induction.

    Args:
        machine: the machine.
        horizon: episode length ``T``, steps.
        initial_condition: distribution of the condition at the start, ``[K]``.
        repairs_allowed: at least one crew exists (else a repair request runs the machine).
        weights: reward weights of the terms ``output``, ``repair_cost``, ``replace_cost`` and
            ``failure_cost`` (``None``: all 1; a missing term has weight 0).

    Returns:
        The optimal values, Q-values and decisions, and the expected episode return.
    """
    values, q, policy = _backward(machine, horizon, repairs_allowed, weights, None)
    p0 = np.asarray(initial_condition, dtype=np.float64)
    value = float(p0 @ values[horizon, :, 0])
    return MachineSolution(values=values, q=q, policy=policy, value=value)


def evaluate_rule(
    machine: MachineConfig,
    horizon: int,
    initial_condition: np.ndarray,
    rule: np.ndarray,
    *,
    repairs_allowed: bool = True,
    weights: Mapping[str, float] | None = None,
) -> float:
    """Exact expected episode return of one machine under a fixed decision rule.

    Args:
        machine: the machine.
        horizon: episode length ``T``, steps.
        initial_condition: distribution of the condition at the start, ``[K]``.
        rule: decisions of an available machine by condition, ``[K]`` (stationary) or by steps
            left and condition, ``[T + 1, K]``.
        repairs_allowed: at least one crew exists.
        weights: reward weights (see :func:`solve_machine`).

    Raises:
        ValueError: if ``rule`` has the wrong shape or a decision other than 0, 1 or 2.
    """
    k = machine.num_conditions
    table = np.asarray(rule, dtype=np.int64)
    if table.shape == (k,):
        table = np.broadcast_to(table, (horizon + 1, k))
    if table.shape != (horizon + 1, k):
        raise ValueError(
            f"rule: expected shape ({k},) or ({horizon + 1}, {k}), got {np.shape(rule)}"
        )
    if table.min() < RUN or table.max() > REPLACE:
        raise ValueError("rule: decisions must be 0 (run), 1 (repair) or 2 (replace)")
    values, _, _ = _backward(machine, horizon, repairs_allowed, weights, table)
    return float(np.asarray(initial_condition, dtype=np.float64) @ values[horizon, :, 0])


def is_decoupled(scenario: MaintenanceScenario) -> bool:
    """Whether the machines are independent: one machine, or a crew for every machine."""
    return scenario.num_machines == 1 or scenario.crews >= scenario.num_machines


def solve(
    scenario: MaintenanceScenario,
    weights: Mapping[str, float] | None = None,
    *,
    relax_crews: bool = False,
) -> FleetSolution:
    """The exact optimal policy and value of ``scenario`` by value iteration.

    Args:
        scenario: one machine, or a fleet with at least as many crews as machines.
        weights: reward weights (see :func:`solve_machine`).
        relax_crews: for a fleet with fewer crews than machines, solve every machine as if it
            had a crew of its own instead of raising. The policy is then a heuristic for the
            real fleet and ``value`` an upper bound on its optimum (dropping the crew limit
            only adds options: a denied repair runs the machine, which is allowed anyway).

    Raises:
        ValueError: if the crew limit couples the machines and ``relax_crews`` is false.
    """
    if not is_decoupled(scenario) and not relax_crews:
        raise ValueError(
            f"scenario {scenario.name!r}: the exact optimum is computed for one machine or for "
            f"independent machines (crews >= machines); this fleet has {scenario.num_machines} "
            f"machines and {scenario.crews} crews (relax_crews=True gives an upper bound)"
        )
    p0 = np.asarray(scenario.initial_condition, dtype=np.float64)
    p0 = p0 / p0.sum()
    solutions = tuple(
        solve_machine(
            m,
            scenario.horizon,
            p0,
            repairs_allowed=scenario.crews >= 1,
            weights=weights,
        )
        for m in scenario.machines
    )
    return FleetSolution(
        machines=solutions,
        value=float(sum(s.value for s in solutions)),
        horizon=scenario.horizon,
    )


def threshold_rule(num_conditions: int, repair_at: int, replace_at: int) -> np.ndarray:
    """Decisions ``[K]`` of the threshold rule for one machine.

    Replace at or above ``replace_at``, else repair at or above ``repair_at``, else run; a
    threshold of ``K`` never triggers.
    """
    c = np.arange(num_conditions)
    return np.where(c >= replace_at, REPLACE, np.where(c >= repair_at, REPAIR, RUN))
