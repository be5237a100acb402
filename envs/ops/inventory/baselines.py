"""Classic controllers of the serial supply chain.

Every controller reads the state snapshot of all replicas (``InventoryState``, arrays
``[B, ...]``) and returns actions ``[B, N]`` in the environment's action space through
:meth:`InventoryEnv.quantities_to_actions`, so the same controller drives a single env, a native
vector env or an SB3 ``VecEnv`` in any ``action_mode``.

The two rule-based policies act on the *echelon inventory position* of each stage (Clark and
Scarf, 1960): everything at or below the stage, on hand or in transit, minus the customers'
backlog, plus the stage's order that its supplier still owes. Their levels are tuned by a
deterministic pattern search that evaluates many candidate level vectors in one batched
simulation with common random numbers (every candidate sees the same demand on a given seed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from envs.core.baselines import Baseline
from envs.core.env import BatchRunner
from envs.core.registry import Registry
from envs.ops.inventory.env import InventoryEnv
from envs.ops.inventory.sim import InventoryState

BASELINES: Registry[type[Baseline]] = Registry("baseline")
"""Classic controllers of ``lepton/Inventory-v0`` by name."""

Policy = Callable[[InventoryState, np.ndarray], np.ndarray]
"""Order quantities ``[B, N]`` of all replicas from a snapshot and per-replica parameters."""


def echelon_position(state: InventoryState) -> np.ndarray:
    """Echelon inventory position of every stage, ``[B, N]`` units.

    For echelon ``i`` (stages ``0..i``): the stock on hand and in transit to those stages, minus
    the retail backlog ``owed[:, 0]``, plus the order of stage ``i`` that its supplier still owes
    (``owed[:, i + 1]``; the simulator re-requests it automatically, so counting it as already
    ordered avoids ordering it twice). Orders owed between stages of the echelon move stock
    inside the echelon and do not change its position. With lost sales ``owed`` is zero.

    Args:
        state: snapshot of all replicas.
    """
    local = state.on_hand + state.pipeline.sum(axis=2)
    return np.cumsum(local, axis=1) - state.owed[:, :1] + state.owed[:, 1:]


def base_stock_orders(state: InventoryState, levels: np.ndarray) -> np.ndarray:
    """Echelon order-up-to orders ``clip(levels - IP, 0, capacity)``, ``[B, N]``.

    Args:
        state: snapshot of all replicas.
        levels: order-up-to levels, ``[N]`` or ``[B, N]`` units.
    """
    gap = np.asarray(levels, dtype=np.float64) - echelon_position(state)
    return np.clip(gap, 0.0, state.capacities)


def s_s_orders(state: InventoryState, reorder: np.ndarray, order_up_to: np.ndarray) -> np.ndarray:
    """(s, S) orders: up to ``S`` where the echelon position is at most ``s``, else none.

    Args:
        state: snapshot of all replicas.
        reorder: reorder points ``s``, ``[N]`` or ``[B, N]`` units.
        order_up_to: order-up-to levels ``S``, ``[N]`` or ``[B, N]`` units.
    """
    position = echelon_position(state)
    gap = np.asarray(order_up_to, dtype=np.float64) - position
    orders = np.where(position <= np.asarray(reorder, dtype=np.float64), gap, 0.0)
    return np.clip(orders, 0.0, state.capacities)


def analytic_levels(demand_mean: float, lead_times: Sequence[int]) -> np.ndarray:
    """Starting order-up-to levels: mean demand over each echelon's cumulative lead time + 1.

    Echelon ``i`` must cover the demand of the periods an order needs to reach the retailer
    through stages ``i..0`` plus the review period (whole units).

    Args:
        demand_mean: mean demand, units/period.
        lead_times: lead time of every stage, periods.
    """
    cover = np.cumsum(np.asarray(lead_times, dtype=np.float64)) + 1.0
    levels = np.rint(demand_mean * cover)
    return np.maximum(levels, 0.0)


class InventoryBaseline(Baseline):
    """A controller that decides order quantities and encodes them in the env's action mode.

    Args:
        env: the environment the baseline acts in; it must wrap an :class:`InventoryEnv`.
        seed: seed of the baseline's own generator.
    """

    def __init__(self, env: Any, seed: int | None = None) -> None:
        super().__init__(env, seed)
        if not isinstance(self.lepton, InventoryEnv):
            raise TypeError(
                f"env: {type(self).__name__} needs a supply-chain environment, got "
                f"{type(self.lepton).__name__}"
            )
        self.chain: InventoryEnv = self.lepton

    def to_actions(self, quantities: np.ndarray) -> np.ndarray:
        """Encode order quantities ``[B, N]`` as actions of the env's ``action_mode``."""
        return self.chain.quantities_to_actions(quantities)


class _EchelonBaseline(InventoryBaseline):
    """Shared machinery of the searched echelon policies: batched, common-random-number rollouts.

    Args:
        env: the environment the baseline acts in.
        seed: unused by the deterministic policies (kept for a uniform constructor).
        max_batch: most replicas simulated at once while fitting (candidates x seeds are
            split into chunks of at most this many).
    """

    def __init__(self, env: Any, seed: int | None = None, *, max_batch: int = 2048) -> None:
        super().__init__(env, seed)
        if max_batch < 1:
            raise ValueError(f"max_batch: must be >= 1, got {max_batch}")
        self.max_batch = int(max_batch)
        structure = self.chain.structure
        self.num_stages = structure.num_stages
        self.demand_mean = _mean_demand(structure)
        self._runners: dict[int, BatchRunner] = {}

    def evaluate(self, policy: Policy, candidates: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        """Mean episode return of each candidate parameter vector over ``seeds``.

        All candidates run in one batched simulation (in chunks of at most ``max_batch``
        replicas): replica ``c * len(seeds) + k`` runs candidate ``c`` on seed ``seeds[k]``, so
        every candidate faces the same demand on a given seed (common random numbers).

        Args:
            policy: maps a snapshot and per-replica parameters ``[B, P]`` to orders ``[B, N]``.
            candidates: parameter vectors ``[C, P]``.
            seeds: episode seeds.

        Returns:
            ``[C]`` mean episode returns (the env's weighted reward, summed over the episode).
        """
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("seeds: need at least one training seed")
        candidates = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
        per_chunk = max(1, self.max_batch // len(seeds))
        means = []
        for start in range(0, len(candidates), per_chunk):
            chunk = candidates[start : start + per_chunk]
            returns = self._rollout(
                policy, np.repeat(chunk, len(seeds), axis=0), seeds * len(chunk)
            )
            means.append(returns.reshape(len(chunk), len(seeds)).mean(axis=1))
        return np.concatenate(means)

    def _rollout(self, policy: Policy, params: np.ndarray, seeds: list[int]) -> np.ndarray:
        batch = len(seeds)
        runner = self._runners.get(batch)
        if runner is None:
            runner = self._runners[batch] = BatchRunner(self.chain, batch, autoreset=False)
        runner.seed(seeds)
        runner.reset()
        returns = np.zeros(batch)
        done = np.zeros(batch, dtype=bool)
        # every scenario of the env has a horizon of at most the structure's
        for _ in range(self.chain.structure.horizon):
            state = runner.snapshot()
            assert isinstance(state, InventoryState)
            out = runner.step(self.to_actions(policy(state, params)))
            returns += np.where(done, 0.0, out.rewards)
            done |= out.terminated | out.truncated
            if done.all():
                break
        return returns

    def pattern_search(
        self,
        policy: Policy,
        start: np.ndarray,
        steps: np.ndarray,
        seeds: Sequence[int],
        *,
        lower: np.ndarray | None = None,
        max_iters: int = 60,
    ) -> tuple[np.ndarray, float]:
        """Maximise the mean episode return over integer parameter vectors by pattern search.

        Each iteration evaluates, in one batched simulation, the incumbent and every move of one
        coordinate by ``-2, -1, +1, +2`` times its step, plus the moves of all coordinates
        together by ``-1`` and ``+1`` step. The best candidate replaces the incumbent when it is
        strictly better; otherwise all steps are halved (rounded, at least one unit). The search
        stops when the unit steps bring no improvement or after ``max_iters`` iterations. Ties
        go to the earliest candidate, so the result is deterministic given the seeds.

        Args:
            policy: maps a snapshot and per-replica parameters to orders.
            start: initial parameters ``[P]``.
            steps: initial step per coordinate ``[P]``, units.
            seeds: training episode seeds.
            lower: smallest allowed value per coordinate (default 0).
            max_iters: most iterations.

        Returns:
            The best parameters and their mean return.
        """
        x = np.rint(np.asarray(start, dtype=np.float64))
        size = x.size
        low = np.zeros(size) if lower is None else np.asarray(lower, dtype=np.float64)
        step = np.maximum(np.rint(np.asarray(steps, dtype=np.float64)), 1.0)
        best = float(self.evaluate(policy, x[None], seeds)[0])
        for _ in range(max_iters):
            moves = [np.zeros(size)]
            for j in range(size):
                for k in (-2.0, -1.0, 1.0, 2.0):
                    move = np.zeros(size)
                    move[j] = k * step[j]
                    moves.append(move)
            moves.extend([-step, step])
            cands = np.maximum(x[None] + np.stack(moves[1:]), low)
            cands = _unique_rows(cands, exclude=x)
            improved = False
            if len(cands):
                values = self.evaluate(policy, cands, seeds)
                k = int(np.argmax(values))
                if values[k] > best + 1e-9:
                    x, best, improved = cands[k], float(values[k]), True
            if not improved:
                if np.all(step <= 1.0):
                    break
                step = np.maximum(np.rint(step / 2.0), 1.0)
        return x, best


@BASELINES.register("random")
class RandomBaseline(Baseline):
    """Uniformly random actions in the action space, drawn from the baseline's own generator.

    Box spaces are sampled uniformly between their bounds and (multi-)discrete spaces uniformly
    over their values, for all replicas at once.
    """

    description: ClassVar[str] = "uniformly random actions (own seeded generator)"

    def act(self, snapshot: InventoryState) -> np.ndarray:  # type: ignore[override]
        """Return random actions ``[B, *action_shape]``."""
        batch = snapshot.on_hand.shape[0]
        space = self.lepton.action_space
        if isinstance(space, spaces.Box):
            uniform = self.draw(
                batch, lambda rng, n: rng.uniform(space.low, space.high, size=(n, *space.shape))
            )
            return np.clip(uniform, space.low, space.high).astype(space.dtype)
        if isinstance(space, spaces.MultiDiscrete):
            levels = self.draw(
                batch, lambda rng, n: rng.integers(0, space.nvec, size=(n, *space.shape))
            )
            return (levels + space.start).astype(space.dtype)
        if isinstance(space, spaces.Discrete):
            draws = self.draw(batch, lambda rng, n: rng.integers(0, space.n, size=n))
            return (space.start + draws).astype(space.dtype)
        raise TypeError(f"random baseline: unsupported action space {space}")


@BASELINES.register("order_nothing")
class OrderNothingBaseline(InventoryBaseline):
    """Orders zero units at every stage: the chain lives off its initial stock."""

    description: ClassVar[str] = "never orders (sells the initial stock only)"

    def act(self, snapshot: InventoryState) -> np.ndarray:  # type: ignore[override]
        """Return the actions that order nothing, ``[B, N]``."""
        return self.to_actions(np.zeros(snapshot.on_hand.shape))


@BASELINES.register("base_stock")
class BaseStockBaseline(_EchelonBaseline):
    """Echelon order-up-to (base-stock) policy with levels tuned by batched pattern search.

    Every period stage ``i`` orders ``clip(z_i - IP_i, 0, capacity_i)`` where ``IP_i`` is the
    echelon inventory position of stages ``0..i`` (see :func:`echelon_position`) and ``z_i`` its
    order-up-to level.

    Algorithm of :meth:`fit`: start from the analytic levels ``mean demand x (cumulative lead
    time + 1)`` and run :meth:`pattern_search` over integer level vectors with initial steps of
    one mean demand (per coordinate, halved down to one unit). Every iteration evaluates the
    incumbent and ``4 N + 2`` neighbours on all training seeds in a single batched simulation
    (``B = candidates x seeds``) with common random numbers, and maximises the mean episode
    return. The result is deterministic given the seeds. Without :meth:`fit` the analytic levels
    are used.

    Args:
        env: the environment the baseline acts in.
        seed: unused (the policy is deterministic).
        levels: order-up-to levels ``[N]`` to use instead of the analytic ones.
        max_batch: most replicas simulated at once while fitting.
    """

    description: ClassVar[str] = "echelon order-up-to levels tuned by batched pattern search"

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        *,
        levels: Sequence[float] | None = None,
        max_batch: int = 2048,
    ) -> None:
        super().__init__(env, seed, max_batch=max_batch)
        structure = self.chain.structure
        if levels is None:
            self.levels = analytic_levels(self.demand_mean, structure.lead_times)
        else:
            self.levels = _check_levels("levels", levels, self.num_stages)
        self.train_return: float | None = None

    def fit(self, seeds: list[int]) -> BaseStockBaseline:
        """Tune the order-up-to levels on the training episodes ``seeds``."""
        structure = self.chain.structure
        start = analytic_levels(self.demand_mean, structure.lead_times)
        steps = np.full(self.num_stages, max(1.0, self.demand_mean))
        self.levels, self.train_return = self.pattern_search(
            _base_stock_policy, start, steps, seeds
        )
        return self

    def params(self) -> dict[str, Any]:
        """The order-up-to levels (and the mean training return once fitted)."""
        out: dict[str, Any] = {"levels": self.levels.tolist()}
        if self.train_return is not None:
            out["train_return"] = self.train_return
        return out

    def act(self, snapshot: InventoryState) -> np.ndarray:  # type: ignore[override]
        """Return the base-stock actions ``[B, N]``."""
        return self.to_actions(base_stock_orders(snapshot, self.levels))


@BASELINES.register("s_s")
class SSBaseline(_EchelonBaseline):
    """(s, S) policy per stage on the echelon inventory position, tuned by batched search.

    Stage ``i`` orders up to ``S_i`` (within its capacity) when its echelon position ``IP_i`` is
    at most ``s_i`` and orders nothing otherwise; ``s = S - 1`` is the base-stock policy.

    Algorithm of :meth:`fit`:

    1. ``S`` starts at the fitted base-stock levels (:class:`BaseStockBaseline` on the same
       seeds) and ``s = S - 1``.
    2. Reorder points: coordinate descent over the grid ``s_i = S_i - k x mean demand`` for
       ``k`` in :attr:`grid` (plus ``s_i = S_i - 1``); every round evaluates the grid points of
       all stages in one batched simulation and keeps the single best change, until no change
       helps (at most ``len(grid) x N`` rounds).
    3. Refinement: :meth:`pattern_search` over ``(S, S - s)`` jointly (gaps of at least one
       unit), with steps of a quarter of the mean demand.

    All evaluations use common random numbers; the result is deterministic given the seeds and
    its training return is never below the base-stock policy's.

    Args:
        env: the environment the baseline acts in.
        seed: unused (the policy is deterministic).
        reorder: reorder points ``s`` ``[N]`` (default: ``S`` minus one mean demand).
        order_up_to: order-up-to levels ``S`` ``[N]`` (default: the analytic base-stock levels).
        max_batch: most replicas simulated at once while fitting.
    """

    description: ClassVar[str] = "echelon (s, S) reorder policy tuned by batched search"
    grid: ClassVar[tuple[float, ...]] = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
    """Gaps ``S - s`` tried per stage, in mean demands (besides one unit)."""

    def __init__(
        self,
        env: Any,
        seed: int | None = None,
        *,
        reorder: Sequence[float] | None = None,
        order_up_to: Sequence[float] | None = None,
        max_batch: int = 2048,
    ) -> None:
        super().__init__(env, seed, max_batch=max_batch)
        structure = self.chain.structure
        if order_up_to is None:
            self.order_up_to = analytic_levels(self.demand_mean, structure.lead_times)
        else:
            self.order_up_to = _check_levels("order_up_to", order_up_to, self.num_stages)
        if reorder is None:
            self.reorder = self.order_up_to - max(1.0, np.rint(self.demand_mean))
        else:
            self.reorder = _check_levels("reorder", reorder, self.num_stages, allow_negative=True)
        if np.any(self.reorder >= self.order_up_to):
            raise ValueError(
                f"reorder: every s must be below its S; got s={self.reorder.tolist()}, "
                f"S={self.order_up_to.tolist()}"
            )
        self.train_return: float | None = None

    def fit(self, seeds: list[int]) -> SSBaseline:
        """Tune ``(s, S)`` on the training episodes ``seeds``."""
        n = self.num_stages
        base = BaseStockBaseline(self.env, max_batch=self.max_batch).fit(seeds)
        big = base.levels.copy()
        gaps = np.ones(n)
        best = float(self.evaluate(_s_s_policy, np.concatenate([big, gaps])[None], seeds)[0])
        options = sorted(
            {1.0, *(max(1.0, float(np.rint(k * self.demand_mean))) for k in self.grid)}
        )
        # 2. coordinate descent over the reorder-point grid, all stages' moves in one batch
        for _ in range(len(self.grid) * n):
            cands = []
            for i in range(n):
                for g in options:
                    if g != gaps[i]:
                        trial = gaps.copy()
                        trial[i] = g
                        cands.append(np.concatenate([big, trial]))
            if not cands:
                break
            values = self.evaluate(_s_s_policy, np.stack(cands), seeds)
            k = int(np.argmax(values))
            if values[k] <= best + 1e-9:
                break
            best = float(values[k])
            gaps = cands[k][n:].copy()
        # 3. joint refinement of (S, S - s)
        steps = np.full(2 * n, max(1.0, self.demand_mean / 4.0))
        lower = np.concatenate([np.zeros(n), np.ones(n)])
        x, value = self.pattern_search(
            _s_s_policy, np.concatenate([big, gaps]), steps, seeds, lower=lower
        )
        self.order_up_to = x[:n].copy()
        self.reorder = x[:n] - x[n:]
        self.train_return = value
        return self

    def params(self) -> dict[str, Any]:
        """Reorder points ``s`` and order-up-to levels ``S`` (and the mean training return)."""
        out: dict[str, Any] = {
            "reorder": self.reorder.tolist(),
            "order_up_to": self.order_up_to.tolist(),
        }
        if self.train_return is not None:
            out["train_return"] = self.train_return
        return out

    def act(self, snapshot: InventoryState) -> np.ndarray:  # type: ignore[override]
        """Return the (s, S) actions ``[B, N]``."""
        orders = s_s_orders(snapshot, self.reorder, self.order_up_to)
        return self.to_actions(orders)


def _base_stock_policy(state: InventoryState, params: np.ndarray) -> np.ndarray:
    return base_stock_orders(state, params)


def _s_s_policy(state: InventoryState, params: np.ndarray) -> np.ndarray:
    n = state.on_hand.shape[1]
    big = params[:, :n]
    return s_s_orders(state, big - params[:, n:], big)


def _mean_demand(structure: Any) -> float:
    demand = structure.demand
    if demand.kind == "series":
        return float(np.mean(demand.series[: structure.horizon]))
    return float(demand.mean)


def _check_levels(
    field: str, values: Sequence[float], n: int, *, allow_negative: bool = False
) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{field}: expected {n} values (one per stage), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{field}: values must be finite, got {arr.tolist()}")
    if not allow_negative and np.any(arr < 0):
        raise ValueError(f"{field}: values must be >= 0, got {arr.tolist()}")
    return arr


def _unique_rows(cands: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    keep: list[np.ndarray] = []
    seen = {tuple(exclude.tolist())}
    for row in cands:
        key = tuple(row.tolist())
        if key not in seen:
            seen.add(key)
            keep.append(row)
    return np.stack(keep) if keep else np.empty((0, cands.shape[1]))
