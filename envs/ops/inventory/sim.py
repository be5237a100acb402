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

The period update of all replicas is one compiled kernel (numba): at small batch sizes a
numpy version spends its time dispatching some fifty tiny array operations per period.
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np

from envs.core.sim import BatchedSim, Snapshot, StepResult, readonly
from envs.ops.inventory.scenario import InventoryScenario


@dataclasses.dataclass(frozen=True)
class InventoryState(Snapshot):
    """State of all replicas after the last step (arrays ``[B, ...]``).

    The arrays are read-only views of the simulator's state, valid until its next ``step`` or
    ``reset``; :meth:`~envs.core.sim.Snapshot.replica` returns an independent copy.

    Attributes:
        on_hand: stock on hand per stage, ``[B, N]`` units.
        pipeline: units in transit to each stage by periods until arrival, ``[B, N, W]``
            (index ``d`` arrives ``d + 1`` periods from now).
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


Q_REVENUE, Q_PROCUREMENT, Q_SHORTAGE, Q_HOLDING, Q_PRODUCED, Q_SALES = range(6)
QUANTITIES = ("revenue", "procurement_cost", "shortage_cost", "holding_cost", "produced", "sales")
METRICS = (
    "profit",
    "episode_profit",
    "fill_rate",
    "service_level",
    "on_hand",
    "in_transit",
    "backlog",
    "lost_sales",
    "demand",
    "sales",
)


@numba.njit(cache=True)
def _period(
    raw: np.ndarray,
    on_hand: np.ndarray,
    pipe: np.ndarray,
    owed: np.ndarray,
    t: np.ndarray,
    demand: np.ndarray,
    horizon: np.ndarray,
    cap: np.ndarray,
    lead: np.ndarray,
    stage_price: np.ndarray,
    unit_cost: np.ndarray,
    short_cost: np.ndarray,
    hold_cost: np.ndarray,
    is_backlog: np.ndarray,
    discount: np.ndarray,
    action_log: np.ndarray,
    acc: np.ndarray,
    last_orders: np.ndarray,
    last_arrivals: np.ndarray,
    last: np.ndarray,
    quantities: np.ndarray,
    metrics: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Advance every replica by one period, in place (see the module docstring)."""
    b_size, n = on_hand.shape
    width = pipe.shape[2]
    n_log = action_log.shape[1]
    max_h = demand.shape[1]
    for b in range(b_size):
        prior = owed[b, 0]
        backlog = is_backlog[b]
        shortage = 0.0
        revenue = 0.0
        procurement = 0.0
        # 1. orders (re-requesting backlogged ones), capped by capacity and supplier stock
        for i in range(n):
            order = raw[b, i]
            if order < 0.0:
                order = 0.0
            order = np.floor(order)
            requested = order + owed[b, i + 1]
            shipped = min(requested, cap[b, i])
            if i < n - 1 and on_hand[b, i + 1] < shipped:
                shipped = on_hand[b, i + 1]
            last_orders[b, i] = shipped
            unfilled = requested - shipped
            shortage += short_cost[b, i + 1] * unfilled
            owed[b, i + 1] = unfilled if backlog else 0.0
            pipe[b, i, lead[b, i]] += shipped
            revenue += stage_price[b, i + 1] * shipped
            procurement += unit_cost[b, i] * shipped
            if n_log > 0:
                for k in range(n_log - 1):
                    action_log[b, k, i] = action_log[b, k + 1, i]
                action_log[b, n_log - 1, i] = order
        procurement += unit_cost[b, n] * last_orders[b, n - 1]
        # 2. arrivals; the pipeline moves one period closer
        in_transit = 0.0
        for i in range(n):
            arrived = pipe[b, i, 0]
            for d in range(width - 1):
                pipe[b, i, d] = pipe[b, i, d + 1]
                in_transit += pipe[b, i, d]
            pipe[b, i, width - 1] = 0.0
            last_arrivals[b, i] = arrived
            on_hand[b, i] += arrived
        # 3. customer demand, backlog served first
        period = t[b] if t[b] < max_h else max_h - 1
        new_demand = demand[b, period]
        wanted = new_demand + prior
        sales = min(on_hand[b, 0], wanted)
        on_hand[b, 0] -= sales
        for i in range(1, n):
            on_hand[b, i] -= last_orders[b, i - 1]
        revenue += stage_price[b, 0] * sales
        # 4. unmet demand
        unmet = wanted - sales
        shortage += short_cost[b, 0] * unmet
        owed[b, 0] = unmet if backlog else 0.0
        lost = 0.0 if backlog else unmet
        # 5. holding cost and records
        holding = 0.0
        stock = 0.0
        for i in range(n):
            holding += hold_cost[b, i] * on_hand[b, i]
            stock += on_hand[b, i]
        profit = revenue - procurement - shortage - holding
        disc = discount[b] ** t[b]
        immediate = min(new_demand, max(sales - prior, 0.0))
        acc[b, 0] += profit
        acc[b, 1] += new_demand
        acc[b, 2] += immediate
        if unmet <= 0.0:
            acc[b, 3] += 1.0
        t[b] += 1
        last[b, 0] = new_demand
        last[b, 1] = sales
        last[b, 2] = lost
        quantities[b, 0] = revenue * disc
        quantities[b, 1] = procurement * disc
        quantities[b, 2] = shortage * disc
        quantities[b, 3] = holding * disc
        quantities[b, 4] = last_orders[b, n - 1]
        quantities[b, 5] = sales
        metrics[b, 0] = profit
        metrics[b, 1] = acc[b, 0]
        metrics[b, 2] = acc[b, 2] / acc[b, 1] if acc[b, 1] > 0.0 else 1.0
        metrics[b, 3] = acc[b, 3] / t[b]
        metrics[b, 4] = stock
        metrics[b, 5] = in_transit
        metrics[b, 6] = owed[b, 0]
        metrics[b, 7] = lost
        metrics[b, 8] = new_demand
        metrics[b, 9] = sales


class InventorySim(BatchedSim[InventoryScenario, InventoryState]):
    """``B`` replicas of a serial supply chain; actions are order quantities ``[B, N]``."""

    def __init__(self, batch_size: int, scenario: InventoryScenario) -> None:
        super().__init__(batch_size, scenario)
        b, n = batch_size, scenario.num_stages
        self.n = n
        self.max_lead = int(max(scenario.lead_times))
        self.width = self.max_lead + 1
        self.max_horizon = scenario.horizon
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
        self.is_backlog = np.zeros(b, dtype=np.bool_)
        self.discount = np.ones(b)
        self.demand_mean = np.zeros(b)
        # episode accumulators (profit, demand, met on arrival, periods without stock-out)
        self.acc = np.zeros((b, 4))
        # last period: demand, sales, lost sales; shipments and arrivals per stage
        self.last = np.zeros((b, 3))
        self.last_orders = np.zeros((b, n))
        self.last_arrivals = np.zeros((b, n))
        self._loaded: list[InventoryScenario | None] = [None] * b

    def views(self) -> InventoryState:
        # every state array is updated in place, so one set of views stays current
        return InventoryState(
            on_hand=readonly(self.on_hand),
            pipeline=readonly(self.pipe),
            owed=readonly(self.owed),
            t=readonly(self.t),
            horizon=readonly(self.horizon),
            capacities=readonly(self.cap),
            lead_times=readonly(self.lead),
            backlog=readonly(self.is_backlog),
            demand_mean=readonly(self.demand_mean),
            action_log=readonly(self.action_log),
            last_demand=readonly(self.last[:, 0]),
            last_sales=readonly(self.last[:, 1]),
            last_lost=readonly(self.last[:, 2]),
            last_orders=readonly(self.last_orders),
            last_arrivals=readonly(self.last_arrivals),
            episode_profit=readonly(self.acc[:, 0]),
        )

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
        for i in idx.tolist():
            sc = self.scenarios[i]
            rng = self.rngs[i]
            assert rng is not None
            h = sc.horizon
            self.demand[i, :h] = sample_demand(sc, rng)
            self.demand[i, h:] = 0.0
            self.on_hand[i] = sc.initial_inventory
            if self._loaded[i] is sc:
                continue
            self._loaded[i] = sc
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
        for arr in (self.pipe, self.owed, self.t, self.action_log, self.acc, self.last):
            arr[idx] = 0
        self.last_orders[idx] = 0.0
        self.last_arrivals[idx] = 0.0

    def step(self, actions: np.ndarray) -> StepResult:
        """Advance one period; ``actions`` are order quantities ``[B, N]`` (floored, >= 0)."""
        raw = np.ascontiguousarray(actions, dtype=np.float64).reshape(self.batch_size, self.n)
        quantities = np.empty((self.batch_size, len(QUANTITIES)))
        metrics = np.empty((self.batch_size, len(METRICS)))
        _period(
            raw,
            self.on_hand,
            self.pipe,
            self.owed,
            self.t,
            self.demand,
            self.horizon,
            self.cap,
            self.lead,
            self.stage_price,
            self.unit_cost,
            self.short_cost,
            self.hold_cost,
            self.is_backlog,
            self.discount,
            self.action_log,
            self.acc,
            self.last_orders,
            self.last_arrivals,
            self.last,
            quantities,
            metrics,
        )
        return StepResult(
            quantities={name: quantities[:, k] for k, name in enumerate(QUANTITIES)},
            metrics={name: metrics[:, k] for k, name in enumerate(METRICS)},
            terminated=self.t >= self.horizon,
            truncated=np.zeros(self.batch_size, dtype=bool),
        )
