"""Batched simulation core of a serial multi-echelon supply chain (numpy only).

Each period, in OR-Gym ``InvManagement``'s order of events:

1. every stage ``i < N`` orders from stage ``i + 1``; with backlog the unfilled part of last
   period's order is re-requested. Shipments are capped by the supplier's capacity and by the
   supplier's on-hand stock at the start of the period (the top supplier is unlimited);
2. shipments placed ``lead_times[i]`` periods ago arrive;
3. customer demand (plus retail backlog, which is served first) is met from the retailer's stock;
4. unmet demand and unfilled orders are backlogged or lost, both at a per-unit shortage cost;
5. stock left on hand pays a holding cost.

Period profit = sum over stages of sales revenue - replenishment cost - shortage cost - holding
cost, discounted by ``discount ** t`` (exactly OR-Gym's reward for its default parameters).
Stock is conserved: on hand + in transit = initial + produced by the top supplier - retail sales.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from envs.core.sim import BatchedSim, Snapshot, StepResult
from envs.ops.inventory.scenario import InventoryScenario


@dataclasses.dataclass(frozen=True)
class InventoryState(Snapshot):
    """State of all replicas after the last step (arrays ``[B, ...]``).

    Attributes:
        on_hand: stock on hand per stage, ``[B, N]`` units.
        pipeline: units in transit to each stage by periods until arrival, ``[B, N, W]``
            (index 0 arrives at the next step).
        owed: unfilled demand (index 0) and unfilled orders of stage ``i - 1`` at supplier ``i``
            carried into the next period, ``[B, N + 1]`` (zero with lost sales).
        t: periods elapsed, ``[B]``.
        horizon: episode length, ``[B]``.
        capacities: ``[B, N]``; lead_times: ``[B, N]``; backlog: ``[B]`` bool.
        demand_mean: mean demand of each replica's scenario, ``[B]`` units/period.
        action_log: the last ``W - 1`` raw orders, oldest first, ``[B, W - 1, N]``.
        last_demand, last_sales, last_lost: customer demand, retail sales and lost units of the
            last period, ``[B]``.
        last_orders: shipments placed last period, ``[B, N]``; last_arrivals: ``[B, N]``.
        episode_profit: undiscounted profit so far, ``[B]``.
    """

    on_hand: np.ndarray
    pipeline: np.ndarray
    owed: np.ndarray
    t: np.ndarray
    horizon: np.ndarray
    capacities: np.ndarray
    lead_times: np.ndarray
    backlog: np.ndarray
    demand_mean: np.ndarray
    action_log: np.ndarray
    last_demand: np.ndarray
    last_sales: np.ndarray
    last_lost: np.ndarray
    last_orders: np.ndarray
    last_arrivals: np.ndarray
    episode_profit: np.ndarray


def sample_demand(scenario: InventoryScenario, rng: np.random.Generator) -> np.ndarray:
    """Draw the customer demand of one episode, ``[horizon]`` whole units."""
    d = scenario.demand
    h = scenario.horizon
    if d.kind == "poisson":
        return rng.poisson(d.mean, size=h).astype(np.float64)
    if d.kind == "normal":
        return np.maximum(np.rint(rng.normal(d.mean, d.std, size=h)), 0.0)
    if d.kind == "seasonal":
        t = np.arange(h)
        mean = d.mean * (1.0 + d.amplitude * np.sin(2.0 * np.pi * t / d.cycle))
        return rng.poisson(mean).astype(np.float64)
    return np.asarray(d.series[:h], dtype=np.float64)


class InventorySim(BatchedSim[InventoryScenario, InventoryState]):
    """``B`` replicas of a serial supply chain; actions are order quantities ``[B, N]``."""

    def __init__(self, batch_size: int, scenario: InventoryScenario) -> None:
        super().__init__(batch_size, scenario)
        b, n = batch_size, scenario.num_stages
        self.n = n
        self.max_lead = int(max(scenario.lead_times))
        self.width = self.max_lead + 1
        self.max_horizon = scenario.horizon
        self._b = np.arange(b)[:, None]
        self._s = np.arange(n)[None, :]
        self.head = 0
        self.on_hand = np.zeros((b, n))
        self.pipe = np.zeros((b, n, self.width))
        self.owed = np.zeros((b, n + 1))
        self.t = np.zeros(b, dtype=np.int64)
        self.demand = np.zeros((b, self.max_horizon))
        self.action_log = np.zeros((b, self.max_lead, n))
        # per-replica scenario parameters
        self.horizon = np.zeros(b, dtype=np.int64)
        self.cap = np.zeros((b, n))
        self.lead = np.zeros((b, n), dtype=np.int64)
        self.stage_price = np.zeros((b, n + 1))
        self.unit_cost = np.zeros((b, n + 1))
        self.short_cost = np.zeros((b, n + 1))
        self.hold_cost = np.zeros((b, n))
        self.is_backlog = np.zeros(b, dtype=bool)
        self.discount = np.ones(b)
        self.demand_mean = np.zeros(b)
        # episode accumulators and last-period records
        self.cum_profit = np.zeros(b)
        self.cum_demand = np.zeros(b)
        self.cum_immediate = np.zeros(b)
        self.stockout_free = np.zeros(b)
        self.last_demand = np.zeros(b)
        self.last_sales = np.zeros(b)
        self.last_lost = np.zeros(b)
        self.last_orders = np.zeros((b, n))
        self.last_arrivals = np.zeros((b, n))

    def check_compatible(self, scenario: InventoryScenario) -> None:
        if scenario.num_stages != self.n:
            raise ValueError(
                f"scenario {scenario.name!r} has {scenario.num_stages} stages; this environment "
                f"was built for {self.n}"
            )
        if max(scenario.lead_times) > self.max_lead or scenario.horizon > self.max_horizon:
            raise ValueError(
                f"scenario {scenario.name!r} needs lead times <= {self.max_lead} and "
                f"horizon <= {self.max_horizon} (the environment's structure scenario)"
            )

    def _reset(self, idx: np.ndarray) -> None:
        for i in idx:
            sc = self.scenarios[i]
            rng = self.rngs[i]
            assert rng is not None
            h = sc.horizon
            self.demand[i] = 0.0
            self.demand[i, :h] = sample_demand(sc, rng)
            self.horizon[i] = h
            self.cap[i] = sc.capacities
            self.lead[i] = sc.lead_times
            self.stage_price[i, 0] = sc.price
            self.stage_price[i, 1:] = sc.unit_costs[:-1]
            self.unit_cost[i] = sc.unit_costs
            self.short_cost[i] = sc.shortage_costs
            self.hold_cost[i] = sc.holding_costs
            self.is_backlog[i] = sc.backlog
            self.discount[i] = sc.discount
            self.demand_mean[i] = (
                float(np.mean(sc.demand.series[:h]))
                if sc.demand.kind == "series"
                else sc.demand.mean
            )
            self.on_hand[i] = sc.initial_inventory
        self.pipe[idx] = 0.0
        self.owed[idx] = 0.0
        self.t[idx] = 0
        self.action_log[idx] = 0.0
        for arr in (self.cum_profit, self.cum_demand, self.cum_immediate, self.stockout_free):
            arr[idx] = 0.0
        for arr in (self.last_demand, self.last_sales, self.last_lost):
            arr[idx] = 0.0
        self.last_orders[idx] = 0.0
        self.last_arrivals[idx] = 0.0

    def step(self, actions: np.ndarray) -> StepResult:
        """Advance one period; ``actions`` are order quantities ``[B, N]`` (floored, >= 0)."""
        raw = np.floor(np.maximum(np.asarray(actions, dtype=np.float64), 0.0))
        on_hand = self.on_hand
        owed = self.owed
        # 1. orders, re-requesting backlogged ones, capped by capacity and supplier stock
        requested = raw + owed[:, 1:]
        shipped = np.minimum(requested, self.cap)
        np.minimum(shipped[:, :-1], on_hand[:, 1:], out=shipped[:, :-1])
        slot = (self.head + self.lead) % self.width
        self.pipe[self._b, self._s, slot] += shipped
        # 2. arrivals
        arrivals = self.pipe[:, :, self.head].copy()
        self.pipe[:, :, self.head] = 0.0
        self.head = (self.head + 1) % self.width
        on_hand += arrivals
        # 3. demand at the retailer, backlog first
        rows = np.arange(self.batch_size)
        t = np.minimum(self.t, self.max_horizon - 1)
        new_demand = self.demand[rows, t]
        prior_backlog = owed[:, 0]
        wanted = new_demand + prior_backlog
        sales = np.minimum(on_hand[:, 0], wanted)
        on_hand[:, 0] -= sales
        on_hand[:, 1:] -= shipped[:, :-1]
        # 4. unfulfilled demand and orders
        unmet = np.empty_like(owed)
        unmet[:, 0] = wanted - sales
        unmet[:, 1:] = requested - shipped
        backlog = self.is_backlog[:, None]
        self.owed = np.where(backlog, unmet, 0.0)
        lost = np.where(self.is_backlog, 0.0, unmet[:, 0])
        # 5. profit terms (OR-Gym's accounting)
        sold = np.concatenate([sales[:, None], shipped], axis=1)
        bought = np.concatenate([shipped, shipped[:, -1:]], axis=1)
        revenue = (self.stage_price * sold).sum(axis=1)
        procurement = (self.unit_cost * bought).sum(axis=1)
        shortage = (self.short_cost * unmet).sum(axis=1)
        holding = (self.hold_cost * on_hand).sum(axis=1)
        profit = revenue - procurement - shortage - holding
        disc = self.discount**self.t
        # records
        immediate = np.minimum(new_demand, np.maximum(sales - prior_backlog, 0.0))
        self.cum_profit += profit
        self.cum_demand += new_demand
        self.cum_immediate += immediate
        self.stockout_free += unmet[:, 0] <= 0.0
        self.action_log[:, :-1] = self.action_log[:, 1:]
        if self.max_lead > 0:
            self.action_log[:, -1] = raw
        self.last_demand = new_demand
        self.last_sales = sales
        self.last_lost = lost
        self.last_orders = shipped
        self.last_arrivals = arrivals
        self.t += 1
        terminated = self.t >= self.horizon
        with np.errstate(invalid="ignore", divide="ignore"):
            fill_rate = np.where(self.cum_demand > 0, self.cum_immediate / self.cum_demand, 1.0)
        return StepResult(
            quantities={
                "revenue": revenue * disc,
                "procurement_cost": procurement * disc,
                "shortage_cost": shortage * disc,
                "holding_cost": holding * disc,
                "produced": shipped[:, -1].copy(),
                "sales": sales,
            },
            metrics={
                "profit": profit,
                "episode_profit": self.cum_profit.copy(),
                "fill_rate": fill_rate,
                "service_level": self.stockout_free / self.t,
                "on_hand": on_hand.sum(axis=1),
                "in_transit": self.pipe.sum(axis=(1, 2)),
                "backlog": self.owed[:, 0].copy(),
                "lost_sales": lost,
                "demand": new_demand,
                "sales": sales,
            },
            terminated=terminated,
            truncated=np.zeros(self.batch_size, dtype=bool),
        )

    def snapshot(self) -> InventoryState:
        order = (self.head + np.arange(self.width)) % self.width
        return InventoryState(
            on_hand=self.on_hand.copy(),
            pipeline=self.pipe[:, :, order],
            owed=self.owed.copy(),
            t=self.t.copy(),
            horizon=self.horizon.copy(),
            capacities=self.cap.copy(),
            lead_times=self.lead.copy(),
            backlog=self.is_backlog.copy(),
            demand_mean=self.demand_mean.copy(),
            action_log=self.action_log.copy(),
            last_demand=self.last_demand.copy(),
            last_sales=self.last_sales.copy(),
            last_lost=self.last_lost.copy(),
            last_orders=self.last_orders.copy(),
            last_arrivals=self.last_arrivals.copy(),
            episode_profit=self.cum_profit.copy(),
        )
