"""Classic maintenance policies of the machine fleet.

Every controller reads the state snapshot of all replicas (``MaintenanceState``, arrays
``[B, ...]``) and returns actions in the environment's action space through
:meth:`MaintenanceEnv.decisions_to_actions`, so the same controller drives a single env, a
native vector env or an SB3 ``VecEnv`` in either ``action_mode``.

- ``run_to_failure``: corrective maintenance only; run every machine until it fails, then
  replace it.
- ``threshold``: condition-based maintenance; replace at or above one condition, repair at or
  above a lower one. Its thresholds are chosen by an exhaustive, batched search on training
  seeds (and refined per machine for a fleet).
- ``random``: uniformly random actions.
- ``optimal``: the exact optimal policy by value iteration (one machine, or a fleet with a crew
  for every machine), together with its expected return, so the gap of any policy to the
  optimum is known; for a fleet coupled by its crew limit, the per-machine optimal policies
  with an upper bound on the optimum.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, ClassVar, cast

import numpy as np
from gymnasium import spaces

from envs.core.baselines import Baseline
from envs.core.env import BatchRunner
from envs.core.registry import Registry
from envs.core.scenario import FixedScenario
from envs.ops.maintenance.env import MaintenanceEnv
from envs.ops.maintenance.optimal import FleetSolution, is_decoupled, solve
from envs.ops.maintenance.sim import DECISIONS, REPAIR, REPLACE, RUN, MaintenanceState

BASELINES: Registry[type[Baseline]] = Registry("baseline")
"""Classic controllers of ``lepton/Maintenance-v0`` by name."""


def _env(baseline: Baseline) -> MaintenanceEnv:
    return cast(MaintenanceEnv, baseline.lepton)


def policy_segments(table: np.ndarray) -> list[dict[str, Any]]:
    """Stretches of steps left with the same decisions in a ``[T + 1, K]`` decision table.

    Args:
        table: decisions of one machine by steps left (row 0, the end, is skipped) and condition.

    Returns:
        ``[{"steps_left": [first, last], "decisions": [name per condition]}, ...]``, by
        increasing steps left.
    """
    segments: list[dict[str, Any]] = []
    for s in range(1, table.shape[0]):
        names = [DECISIONS[int(d)] for d in table[s]]
        if segments and segments[-1]["decisions"] == names:
            segments[-1]["steps_left"][1] = s
        else:
            segments.append({"steps_left": [s, s], "decisions": names})
    return segments


def threshold_decisions(
    condition: np.ndarray, repair_at: np.ndarray, replace_at: np.ndarray
) -> np.ndarray:
    """Decisions ``[B, N]`` of the threshold rule.

    A machine is replaced when its condition is at least ``replace_at``, else repaired when it
    is at least ``repair_at``, else run; a threshold of ``K`` (or more) never triggers.

    Args:
        condition: conditions ``[B, N]``.
        repair_at: repair thresholds, ``[N]`` or ``[B, N]``.
        replace_at: replacement thresholds, ``[N]`` or ``[B, N]``.
    """
    return np.where(
        condition >= replace_at, REPLACE, np.where(condition >= repair_at, REPAIR, RUN)
    ).astype(np.int64)


@BASELINES.register("random")
class RandomBaseline(Baseline):
    """Uniformly random actions in the action space, drawn from the baseline's own generator."""

    description: ClassVar[str] = "uniformly random actions (own seeded generator)"

    def act(self, snapshot: MaintenanceState) -> np.ndarray:  # type: ignore[override]
        """Return random actions ``[B, *action_shape]``."""
        batch = snapshot.condition.shape[0]
        space = self.lepton.action_space
        if isinstance(space, spaces.MultiDiscrete):
            draws = self.draw(
                batch, lambda rng, n: rng.integers(0, space.nvec, size=(n, *space.shape))
            )
            return draws.astype(np.int64)
        if isinstance(space, spaces.Discrete):
            draws = self.draw(batch, lambda rng, n: rng.integers(0, space.n, size=n))
            return (space.start + draws).astype(np.int64)
        raise TypeError(f"random baseline: unsupported action space {space}")


@BASELINES.register("run_to_failure")
class RunToFailureBaseline(Baseline):
    """Corrective maintenance: run every machine until it fails, then replace it."""

    description: ClassVar[str] = "run until failure, then replace"

    def act(self, snapshot: MaintenanceState) -> np.ndarray:  # type: ignore[override]
        """Return the run-to-failure actions."""
        failed = self.lepton.structure.num_conditions - 1
        decisions = np.where(snapshot.condition >= failed, REPLACE, RUN)
        return _env(self).decisions_to_actions(decisions)


@BASELINES.register("threshold")
class ThresholdBaseline(Baseline):
    """Condition-based maintenance: replace at or above one condition, repair above another.

    Machine ``i`` in condition ``c`` is replaced when ``c >= replace_at[i]``, else repaired when
    ``c >= repair_at[i]``, else run (a threshold of ``K`` never triggers; the rule ignores the
    time left, unlike the optimal finite-horizon policy).

    Algorithm of :meth:`fit`:

    1. Exhaustive search over the thresholds shared by all machines: every pair
       ``1 <= repair_at <= replace_at <= K`` (plus "never repair") is evaluated on all training
       seeds in one batched simulation (``B = candidates x seeds``) with common random numbers
       (the simulator's uniforms are drawn per seed, so every candidate faces the same
       degradation draws), and the best mean episode return is kept.
    2. For a fleet, coordinate descent per machine: every round evaluates, in one batch, every
       change of one machine's pair to another valid pair and keeps the single best change,
       until none improves the mean return.

    Ties go to the earliest candidate, so the result is deterministic given the seeds. Without
    :meth:`fit` the rule repairs from the middle condition and replaces failed machines.

    Args:
        env: the environment the baseline acts in.
        seed: unused (the policy is deterministic).
        repair_at: repair thresholds, one per machine or one for all.
        replace_at: replacement thresholds, one per machine or one for all.
        max_batch: most replicas simulated at once while fitting.
    """

    description: ClassVar[str] = "repair/replace condition thresholds tuned by batched search"

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        *,
        repair_at: int | Sequence[int] | None = None,
        replace_at: int | Sequence[int] | None = None,
        max_batch: int = 4096,
    ) -> None:
        super().__init__(env, seed)
        if max_batch < 1:
            raise ValueError(f"max_batch: must be >= 1, got {max_batch}")
        self.max_batch = int(max_batch)
        structure = self.lepton.structure
        self.num_machines = structure.num_machines
        self.num_conditions = structure.num_conditions
        k = self.num_conditions
        self.repair_at = self._check("repair_at", repair_at, max(1, (k - 1) // 2))
        self.replace_at = self._check("replace_at", replace_at, k - 1)
        self.train_return: float | None = None
        self._runners: dict[int, BatchRunner] = {}

    def _check(self, field: str, value: int | Sequence[int] | None, default: int) -> np.ndarray:
        n, k = self.num_machines, self.num_conditions
        arr = np.full(n, default if value is None else 0, dtype=np.int64)
        if value is not None:
            given = np.atleast_1d(np.asarray(value))
            if given.shape not in ((1,), (n,)):
                raise ValueError(
                    f"{field}: expected one threshold or {n} (one per machine), got shape "
                    f"{given.shape}"
                )
            if not np.all(np.mod(given, 1) == 0) or given.min() < 0 or given.max() > k:
                raise ValueError(
                    f"{field}: thresholds must be integers in [0, {k}] ({k} = never), got "
                    f"{given.tolist()}"
                )
            arr[:] = given.astype(np.int64)
        return arr

    def pairs(self) -> list[tuple[int, int]]:
        """The distinct ``(repair_at, replace_at)`` pairs searched, ``1 <= r <= q <= K``.

        ``K`` never triggers, and ``(q, q)`` never repairs (replacement takes precedence), so
        these ``K (K + 1) / 2`` pairs cover every distinct rule that runs new machines.
        """
        k = self.num_conditions
        return [(r, q) for q in range(1, k + 1) for r in range(1, q + 1)]

    def evaluate(self, candidates: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        """Mean episode return of each threshold candidate over ``seeds``.

        Args:
            candidates: ``[C, 2, N]`` repair and replacement thresholds per machine.
            seeds: episode seeds; replica ``c * len(seeds) + j`` runs candidate ``c`` on
                ``seeds[j]`` (common random numbers), in chunks of at most ``max_batch``.

        Returns:
            ``[C]`` mean episode returns (the env's weighted reward summed over the episode).
        """
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("seeds: need at least one training seed")
        candidates = np.asarray(candidates, dtype=np.int64)
        per_chunk = max(1, self.max_batch // len(seeds))
        means = []
        for start in range(0, len(candidates), per_chunk):
            chunk = candidates[start : start + per_chunk]
            params = np.repeat(chunk, len(seeds), axis=0)
            returns = self._rollout(params, seeds * len(chunk))
            means.append(returns.reshape(len(chunk), len(seeds)).mean(axis=1))
        return np.concatenate(means)

    def _rollout(self, params: np.ndarray, seeds: list[int]) -> np.ndarray:
        batch = len(seeds)
        runner = self._runners.get(batch)
        if runner is None:
            runner = self._runners[batch] = BatchRunner(self.lepton, batch, autoreset=False)
        runner.seed(seeds)
        runner.reset()
        returns = np.zeros(batch)
        done = np.zeros(batch, dtype=bool)
        while not done.all():
            state = runner.snapshot()
            decisions = threshold_decisions(state.condition, params[:, 0], params[:, 1])  # type: ignore[attr-defined]
            out = runner.step(_env(self).decisions_to_actions(decisions))
            returns += np.where(done, 0.0, out.rewards)
            done |= out.terminated | out.truncated
        return returns

    def fit(self, seeds: list[int]) -> ThresholdBaseline:
        """Tune the thresholds on the training episodes ``seeds`` (see the class docstring)."""
        n = self.num_machines
        pairs = self.pairs()
        shared = np.array([[[r] * n, [q] * n] for r, q in pairs], dtype=np.int64)
        values = self.evaluate(shared, seeds)
        best_k = int(np.argmax(values))
        x, best = shared[best_k].copy(), float(values[best_k])
        while n > 1:
            cands = []
            for i, (r, q) in itertools.product(range(n), pairs):
                if (x[0, i], x[1, i]) != (r, q):
                    trial = x.copy()
                    trial[:, i] = (r, q)
                    cands.append(trial)
            values = self.evaluate(np.stack(cands), seeds)
            k = int(np.argmax(values))
            if values[k] <= best + 1e-9:
                break
            x, best = cands[k], float(values[k])
        self.repair_at, self.replace_at = x[0].copy(), x[1].copy()
        self.train_return = best
        return self

    def params(self) -> dict[str, Any]:
        """Thresholds per machine (and the mean training return once fitted)."""
        out: dict[str, Any] = {
            "repair_at": self.repair_at.tolist(),
            "replace_at": self.replace_at.tolist(),
        }
        if self.train_return is not None:
            out["train_return"] = self.train_return
        return out

    def act(self, snapshot: MaintenanceState) -> np.ndarray:  # type: ignore[override]
        """Return the threshold rule's actions."""
        decisions = threshold_decisions(snapshot.condition, self.repair_at, self.replace_at)
        return _env(self).decisions_to_actions(decisions)


@BASELINES.register("optimal")
class OptimalBaseline(Baseline):
    """The exact optimal policy by finite-horizon value iteration, with its expected return.

    Solved at construction by backward induction over (steps left, condition, downtime) with the
    environment's dynamics and reward weights (:func:`envs.ops.maintenance.optimal.solve`). It
    acts on the steps left and each machine's condition; ``value`` is the expected episode
    return, so ``value - return`` of any policy is its gap to the optimum.

    Exact (``exact`` is true) for one machine and for fleets with a crew for every machine,
    whose machines are independent. For a fleet whose crew limit couples the machines, every
    machine follows its own optimal policy as if crews were unlimited (the environment's crew
    rule settles conflicting repairs): a heuristic, and ``value`` is then an upper bound on the
    fleet's optimal return, so ``value - return`` bounds any policy's gap from above.

    Args:
        env: the environment the baseline acts in (a fixed scenario).
        seed: unused (the policy is deterministic).

    Raises:
        ValueError: if the environment draws scenarios from a family or a list.
    """

    description: ClassVar[str] = "optimal policy by value iteration (exact for one machine)"

    def __init__(self, env: Any, seed: int | None = None) -> None:
        super().__init__(env, seed)
        if not isinstance(self.lepton.source, FixedScenario):
            raise ValueError(
                "optimal: needs a fixed scenario (the policy is solved for one scenario), got "
                f"{type(self.lepton.source).__name__}"
            )
        structure = self.lepton.structure
        self.exact = is_decoupled(structure)
        self.solution: FleetSolution = solve(
            structure, self.lepton.reward.weights, relax_crews=True
        )
        self.value = self.solution.value

    def params(self) -> dict[str, Any]:
        """The expected episode return (exact, or an upper bound) and the policy in brief.

        ``policy`` lists, per machine, the stretches of steps left over which the decisions by
        condition stay the same, e.g. ``{"steps_left": [14, 100], "decisions": ["run", "run",
        "repair", "replace", "replace"]}``.
        """
        return {
            "value": self.value,
            "exact": self.exact,
            "policy": [policy_segments(table) for table in self.solution.policy],
        }

    def act(self, snapshot: MaintenanceState) -> np.ndarray:  # type: ignore[override]
        """Return the optimal actions."""
        steps_left = snapshot.horizon - snapshot.t
        decisions = self.solution.decisions(snapshot.condition, steps_left)
        return _env(self).decisions_to_actions(decisions)
