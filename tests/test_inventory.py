"""Supply-chain env: conservation, backlog and lost-sales semantics, OR-Gym accounting,
baselines through every adapter, input validation and rendering."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector.utils import batch_space

import envs  # noqa: F401  (registers the lepton/ ids)
from envs.core.baselines import baseline_registry
from envs.core.sb3 import make_sb3_vec_env
from envs.ops.inventory.baselines import (
    BASELINES,
    BaseStockBaseline,
    OrderNothingBaseline,
    RandomBaseline,
    SSBaseline,
    base_stock_orders,
    echelon_position,
    s_s_orders,
)
from envs.ops.inventory.env import ACTION_MODES, InventoryEnv, InventoryVectorEnv
from envs.ops.inventory.render import InventoryRenderer
from envs.ops.inventory.scenario import PRESETS, DemandConfig, InventoryScenario
from envs.ops.inventory.sim import InventorySim, InventoryState

ENV_ID = "lepton/Inventory-v0"
TRAIN_SEEDS = list(range(16))
EVAL_SEED = 10_000
EVAL_EPISODES = 12

ZERO_LEAD = InventoryScenario(
    name="zero_lead",
    horizon=40,
    initial_inventory=(30.0, 50.0, 80.0),
    capacities=(40.0, 35.0, 30.0),
    lead_times=(0, 2, 0),
    demand=DemandConfig(mean=25.0),
)
CONSERVATION_SCENARIOS = {
    "backlog": PRESETS["serial4"],
    "lost_sales": PRESETS["lost_sales"],
    "zero_lead_backlog": ZERO_LEAD,
    "zero_lead_lost_sales": dataclasses.replace(ZERO_LEAD, backlog=False),
    "no_lead_times": dataclasses.replace(
        PRESETS["two_stage"], name="no_lead", lead_times=(0, 0), demand=DemandConfig(kind="normal")
    ),
}


def _copy(state: InventoryState) -> InventoryState:
    """An independent copy of all replicas (snapshots are views valid until the next step)."""
    return InventoryState(
        **{f.name: np.array(getattr(state, f.name)) for f in dataclasses.fields(state)}
    )


# --- conservation ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CONSERVATION_SCENARIOS))
def test_stock_and_demand_are_conserved_every_step(name: str) -> None:
    scenario = CONSERVATION_SCENARIOS[name]
    b, n = 8, scenario.num_stages
    sim = InventorySim(b, scenario)
    sim.reset(
        np.ones(b, dtype=bool), [np.random.default_rng(100 + i) for i in range(b)], [None] * b
    )
    rng = np.random.default_rng(7)
    caps = np.asarray(scenario.capacities)
    # replicas range from starving the chain to ordering beyond capacity (the sim caps orders)
    scale = np.linspace(0.05, 1.4, b)[:, None]
    initial = sum(scenario.initial_inventory)
    produced = np.zeros(b)
    sold = np.zeros(b)
    shortfall = np.zeros(b)
    before = _copy(sim.snapshot())
    for _ in range(scenario.horizon):
        result = sim.step(rng.uniform(0.0, 1.0, size=(b, n)) * scale * caps)
        after = _copy(sim.snapshot())
        produced += result.quantities["produced"]
        sold += result.quantities["sales"]
        stock = after.on_hand.sum(axis=1) + after.pipeline.sum(axis=(1, 2))
        np.testing.assert_allclose(stock, initial + produced - sold, atol=1e-9)
        assert (after.on_hand >= 0).all() and (after.pipeline >= 0).all()
        # customers: demand + previous backlog = sales + new backlog + lost units
        demand, sales = result.metrics["demand"], result.metrics["sales"]
        lost = result.metrics["lost_sales"]
        np.testing.assert_allclose(
            demand + before.owed[:, 0], sales + after.owed[:, 0] + lost, atol=1e-9
        )
        np.testing.assert_allclose(result.metrics["backlog"], after.owed[:, 0])
        # shipments respect capacity and the supplier's stock at the start of the period
        assert (after.last_orders <= caps + 1e-9).all()
        assert (after.last_orders[:, :-1] <= before.on_hand[:, 1:] + 1e-9).all()
        # zero lead time: nothing ever waits in transit to that stage
        for i, lead in enumerate(scenario.lead_times):
            if lead == 0:
                assert (after.pipeline[:, i] == 0).all()
        if scenario.backlog:
            assert (lost == 0).all()
        else:
            assert (after.owed == 0).all()
        shortfall += after.owed[:, 0] + lost
        before = after
    assert result.terminated.all()
    assert (produced > 0).any() and (sold > 0).all()
    assert (shortfall > 0).any(), "the starving replicas must run out of stock"


# --- backlog versus lost sales --------------------------------------------------------------
def _shortage_scenario(backlog: bool) -> InventoryScenario:
    return InventoryScenario(
        name="shortage",
        horizon=4,
        initial_inventory=(10.0, 50.0),
        capacities=(20.0, 20.0),
        lead_times=(1, 1),
        price=3.0,
        unit_costs=(1.0, 0.5, 0.2),
        shortage_costs=(0.4, 0.2, 0.1),
        holding_costs=(0.1, 0.05),
        backlog=backlog,
        demand=DemandConfig(kind="series", series=(15.0, 5.0, 5.0, 5.0)),
    )


def test_backlog_is_carried_and_served_first() -> None:
    env = InventoryEnv(_shortage_scenario(backlog=True), action_mode="quantity")
    env.reset(seed=0)
    # the retailer orders 7 (arrives next period) and sells its 10 units of stock
    _, _, _, _, info = env.step(np.array([7.0, 0.0], dtype=np.float32))
    state = env.snapshot()
    assert info["sales"] == 10 and info["backlog"] == 5 and info["lost_sales"] == 0
    np.testing.assert_allclose(state.owed[0], [5.0, 0.0, 0.0])
    assert info["reward_terms"]["shortage_cost"] == pytest.approx(-0.4 * 5)
    # 7 units arrive for 5 new units of demand and 5 backlogged: the backlog goes first
    _, _, _, _, info = env.step(np.zeros(2, dtype=np.float32))
    state = env.snapshot()
    assert info["sales"] == 7 and info["backlog"] == 3
    assert state.on_hand[0, 0] == 0
    # immediate fill: 10 of 15 in period 0, 2 of 5 in period 1 (5 served the old backlog)
    assert info["fill_rate"] == pytest.approx(12 / 20)


def test_unfilled_orders_are_rerequested_with_backlog_and_dropped_with_lost_sales() -> None:
    shipped = {}
    for backlog in (True, False):
        env = InventoryEnv(_shortage_scenario(backlog), action_mode="quantity")
        env.reset(seed=0)
        sim = env.runner.sim
        # a raw order above capacity; the core caps it at 20 units
        sim.step(np.array([[0.0, 30.0]]))
        owed_after = env.snapshot().owed[0].copy()
        sim.step(np.zeros((1, 2)))
        shipped[backlog] = (owed_after, env.snapshot().last_orders[0].copy())
    np.testing.assert_allclose(shipped[True][0], [5.0, 0.0, 10.0])
    np.testing.assert_allclose(shipped[True][1], [0.0, 10.0])  # re-requested automatically
    np.testing.assert_allclose(shipped[False][0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(shipped[False][1], [0.0, 0.0])


def test_lost_sales_are_lost_and_never_owed() -> None:
    env = InventoryEnv(_shortage_scenario(backlog=False), action_mode="quantity")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([7.0, 0.0], dtype=np.float32))
    assert info["sales"] == 10 and info["lost_sales"] == 5 and info["backlog"] == 0
    assert (env.snapshot().owed == 0).all()
    # same shortage cost per unfilled unit as with backlog (goodwill loss)
    assert info["reward_terms"]["shortage_cost"] == pytest.approx(-0.4 * 5)
    _, _, _, _, info = env.step(np.zeros(2, dtype=np.float32))
    state = env.snapshot()
    assert info["sales"] == 5 and info["lost_sales"] == 0 and info["backlog"] == 0
    assert state.on_hand[0, 0] == 2  # 7 arrived, only the new demand of 5 is served
    assert info["fill_rate"] == pytest.approx(15 / 20)


# --- OR-Gym accounting, by hand ---------------------------------------------------------------
def test_orgym_accounting_matches_hand_computation() -> None:
    scenario = InventoryScenario(
        name="golden",
        horizon=4,
        initial_inventory=(10.0, 20.0),
        capacities=(15.0, 12.0),
        lead_times=(0, 1),
        price=5.0,
        unit_costs=(2.0, 1.0, 0.5),
        shortage_costs=(0.4, 0.2, 0.1),
        holding_costs=(0.3, 0.1),
        backlog=True,
        discount=0.9,
        demand=DemandConfig(kind="series", series=(8.0, 12.0, 15.0, 5.0)),
    )
    env = InventoryEnv(scenario, action_mode="quantity")
    env.reset(seed=123)
    # per period: orders, then by hand: on hand (retailer, stage 1) at the end of the period,
    # shipments into (retailer, stage 1), owed (backlog, retailer's order, stage 1's order),
    # revenue, procurement, shortage and holding cost.
    expected = [
        # t=0: the retailer gets 5 at once (lead 0) and sells 8 of 15; stage 1: 20 -> 15.
        ((5, 0), (7, 15), (5, 0), (0, 0, 0), 5 * 8 + 2 * 5, 2 * 5, 0.0, 0.3 * 7 + 0.1 * 15),
        # t=1: 12 to the retailer at once (19, sells 12); stage 1 ships 12 (15 -> 3) and buys 12
        # raw units (arriving next period), the supplier's raw material costs 0.5 each.
        (
            (12, 12),
            (7, 3),
            (12, 12),
            (0, 0, 0),
            5 * 12 + 2 * 12 + 1 * 12,
            2 * 12 + 1 * 12 + 0.5 * 12,
            0.0,
            0.3 * 7 + 0.1 * 3,
        ),
        # t=2: the retailer orders 15 but stage 1 holds only 3 at the start of the period: 3
        # shipped, 12 owed. Stage 1 receives 12 (15), ships 3 (12). The retailer has 10 for 15
        # wanted: 5 backlogged.
        (
            (15, 0),
            (0, 12),
            (3, 0),
            (5, 12, 0),
            5 * 10 + 2 * 3,
            2 * 3,
            0.4 * 5 + 0.2 * 12,
            0.3 * 0 + 0.1 * 12,
        ),
        # t=3: the 12 owed are re-requested without a new order and shipped (12 -> 0); the
        # retailer sells 10 (5 backlog first, then 5 new) and keeps 2.
        ((0, 0), (2, 0), (12, 0), (0, 0, 0), 5 * 10 + 2 * 12, 2 * 12, 0.0, 0.3 * 2),
    ]
    total = 0.0
    profit_sum = 0.0
    for t, (orders, on_hand, shipped, owed, revenue, procurement, shortage, holding) in enumerate(
        expected
    ):
        _, reward, terminated, truncated, info = env.step(np.array(orders, dtype=np.float32))
        state = env.snapshot()
        np.testing.assert_allclose(state.on_hand[0], on_hand)
        np.testing.assert_allclose(state.last_orders[0], shipped)
        np.testing.assert_allclose(state.owed[0], owed)
        disc = 0.9**t
        terms = info["reward_terms"]
        assert terms["revenue"] == pytest.approx(disc * revenue)
        assert terms["procurement_cost"] == pytest.approx(-disc * procurement)
        assert terms["shortage_cost"] == pytest.approx(-disc * shortage)
        assert terms["holding_cost"] == pytest.approx(-disc * holding)
        profit = revenue - procurement - shortage - holding
        assert info["profit"] == pytest.approx(profit)
        assert reward == pytest.approx(disc * profit)
        total += reward
        profit_sum += profit
        assert terminated == (t == 3) and not truncated
    assert profit_sum == pytest.approx(36.4 + 51.6 + 44.4 + 49.4)
    assert total == pytest.approx(36.4 + 0.9 * 51.6 + 0.81 * 44.4 + 0.729 * 49.4)
    assert env.snapshot().episode_profit[0] == pytest.approx(profit_sum)


# --- echelon policies -----------------------------------------------------------------------
def _state(**arrays: np.ndarray) -> InventoryState:
    n = arrays["on_hand"].shape[1]
    width = arrays["pipeline"].shape[2]
    defaults = {
        "owed": np.zeros((1, n + 1)),
        "t": np.zeros(1, dtype=np.int64),
        "horizon": np.full(1, 10),
        "capacities": np.full((1, n), 10.0),
        "lead_times": np.full((1, n), width - 1),
        "backlog": np.ones(1, dtype=bool),
        "demand_mean": np.full(1, 5.0),
        "action_log": np.zeros((1, width - 1, n)),
        "last_demand": np.zeros(1),
        "last_sales": np.zeros(1),
        "last_lost": np.zeros(1),
        "last_orders": np.zeros((1, n)),
        "last_arrivals": np.zeros((1, n)),
        "episode_profit": np.zeros(1),
    }
    defaults.update(arrays)
    return InventoryState(**defaults)


def test_echelon_position_counts_backlog_and_owed_orders() -> None:
    state = _state(
        on_hand=np.array([[5.0, 7.0]]),
        pipeline=np.array([[[1.0, 2.0, 0.0], [3.0, 0.0, 4.0]]]),
        owed=np.array([[6.0, 2.0, 9.0]]),
    )
    # echelon 0: 5 + 3 in transit - 6 backlog + 2 still owed by stage 1
    # echelon 1: 8 + 14 - 6 backlog + 9 still owed by the supplier (the 2 owed inside cancel)
    np.testing.assert_allclose(echelon_position(state), [[4.0, 25.0]])
    np.testing.assert_allclose(base_stock_orders(state, np.array([10.0, 30.0])), [[6.0, 5.0]])
    np.testing.assert_allclose(base_stock_orders(state, np.array([50.0, 20.0])), [[10.0, 0.0]])
    orders = s_s_orders(state, np.array([4.0, 20.0]), np.array([10.0, 30.0]))
    np.testing.assert_allclose(orders, [[6.0, 0.0]])  # IP 4 <= s 4 orders; IP 25 > 20 does not


def test_baseline_registry() -> None:
    assert BASELINES.names() == ["base_stock", "order_nothing", "random", "s_s"]
    assert all(BASELINES.get(name).description for name in BASELINES)
    assert baseline_registry(InventoryEnv()) is BASELINES
    with pytest.raises(KeyError, match="baseline 'base_stok'.*base_stock"):
        BASELINES.get("base_stok")


@pytest.fixture(scope="module")
def fitted() -> dict[str, object]:
    env = InventoryEnv()
    base = BaseStockBaseline(env).fit(TRAIN_SEEDS)
    ss = SSBaseline(env).fit(TRAIN_SEEDS)
    return {"env": env, "base": base, "ss": ss}


def _episode_returns(name: str, params: dict[str, object], mode: str = "continuous") -> np.ndarray:
    venv = gym.make_vec(ENV_ID, num_envs=EVAL_EPISODES, action_mode=mode)
    obs, _ = venv.reset(seed=EVAL_SEED)
    policy = BASELINES.get(name)(venv, seed=0, **params)
    returns = np.zeros(EVAL_EPISODES)
    for _ in range(venv.unwrapped.env.structure.horizon):
        actions, _ = policy.predict(obs)
        obs, rewards, terminated, truncated, _ = venv.step(actions)
        returns += rewards
    assert terminated.all() and not truncated.any()
    venv.close()
    return returns


def test_fit_is_deterministic_and_matches_the_env(fitted: dict) -> None:
    base, ss = fitted["base"], fitted["ss"]
    again = BaseStockBaseline(InventoryEnv()).fit(TRAIN_SEEDS)
    np.testing.assert_array_equal(again.levels, base.levels)
    assert np.all(np.diff(base.levels) > 0), "echelon levels grow up the chain"
    # the batched common-random-number evaluation equals a plain run of the vector env on the
    # same seeds (replica i of make_vec reset with seed s uses seed s + i)
    venv = gym.make_vec(ENV_ID, num_envs=len(TRAIN_SEEDS))
    obs, _ = venv.reset(seed=TRAIN_SEEDS[0])
    policy = BaseStockBaseline(venv, levels=base.levels)
    total = np.zeros(len(TRAIN_SEEDS))
    for _ in range(venv.unwrapped.env.structure.horizon):
        obs, rewards, *_ = venv.step(policy.predict(obs)[0])
        total += rewards
    assert total.mean() == pytest.approx(base.train_return)
    # the (s, S) search starts from the base-stock policy, so it is never worse on training
    assert ss.train_return >= base.train_return - 1e-9
    assert np.all(ss.reorder < ss.order_up_to)
    assert set(ss.params()) == {"reorder", "order_up_to", "train_return"}


def test_fitted_policies_beat_naive_ones_on_held_out_seeds(fitted: dict) -> None:
    base, ss = fitted["base"], fitted["ss"]
    means = {
        "base_stock": _episode_returns("base_stock", {"levels": base.levels}).mean(),
        "s_s": _episode_returns(
            "s_s", {"reorder": ss.reorder, "order_up_to": ss.order_up_to}
        ).mean(),
        "random": _episode_returns("random", {}).mean(),
        "order_nothing": _episode_returns("order_nothing", {}).mean(),
    }
    assert means["base_stock"] > 300.0, means
    assert means["base_stock"] > means["random"] + 500.0, means
    assert means["base_stock"] > means["order_nothing"] + 500.0, means
    assert means["s_s"] > means["random"] + 500.0, means
    # fitting helps on unseen demand too: better than the analytic starting levels
    analytic = _episode_returns("base_stock", {}).mean()
    assert means["base_stock"] > analytic, (means, analytic)


def test_base_stock_fits_lost_sales_and_discrete_orders() -> None:
    env = InventoryEnv("two_stage", action_mode="discrete", order_levels=13)
    policy = BaseStockBaseline(env).fit([0, 1, 2, 3])
    # the same batched evaluation of a policy that never orders
    nothing = policy.evaluate(_never_order, np.zeros((1, 1)), [0, 1, 2, 3])
    assert policy.train_return > nothing[0] + 500.0
    # discrete orders are what the fit simulated: the vector env reproduces the training return
    venv = gym.make_vec(
        ENV_ID, num_envs=4, scenario="two_stage", action_mode="discrete", order_levels=13
    )
    obs, _ = venv.reset(seed=0)
    acting = BaseStockBaseline(venv, levels=policy.levels)
    total = np.zeros(4)
    for _ in range(env.structure.horizon):
        obs, rewards, *_ = venv.step(acting.predict(obs)[0])
        total += rewards
    assert total.mean() == pytest.approx(policy.train_return)
    lost = BaseStockBaseline(InventoryEnv("lost_sales")).fit([0, 1, 2, 3])
    lost_nothing = lost.evaluate(_never_order, np.zeros((1, 1)), [0, 1, 2, 3])
    assert lost.train_return > lost_nothing[0] + 500.0


def _never_order(state: InventoryState, params: np.ndarray) -> np.ndarray:
    return np.zeros(state.on_hand.shape)


# --- adapters -------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ACTION_MODES)
@pytest.mark.parametrize("adapter", ["single", "vector", "sb3"])
def test_baselines_act_through_every_adapter(adapter: str, mode: str) -> None:
    num = 3
    if adapter == "single":
        env = gym.make(ENV_ID, action_mode=mode)
        obs, _ = env.reset(seed=1)
        space, shape = env.action_space, env.action_space.shape
    elif adapter == "vector":
        env = gym.make_vec(ENV_ID, num_envs=num, action_mode=mode)
        assert isinstance(env.unwrapped, InventoryVectorEnv)
        obs, _ = env.reset(seed=1)
        space, shape = env.action_space, (num, *env.single_action_space.shape)
    else:
        env = make_sb3_vec_env(ENV_ID, num_envs=num, seed=1, action_mode=mode)
        obs = env.reset()
        space, shape = batch_space(env.action_space, num), (num, 3)
    policies = [BASELINES.get(name)(env, seed=0) for name in BASELINES]
    for t in range(12):
        policy = policies[t % len(policies)]
        actions, state = policy.predict(obs)
        assert state is None
        assert actions.shape == shape, (type(policy).__name__, actions.shape)
        assert space.contains(actions), (type(policy).__name__, actions)
        out = env.step(actions)
        obs = out[0]
    env.close()


def test_baselines_order_what_they_intend_in_every_mode() -> None:
    for mode in ACTION_MODES:
        env = InventoryEnv(action_mode=mode, order_levels=101)
        env.reset(seed=3)
        policy = BaseStockBaseline(env)
        intended = base_stock_orders(env.snapshot(), policy.levels)
        applied = env.actions_to_sim(policy.act(env.snapshot()))
        tolerance = 0.5 if mode != "discrete" else 0.5 + 0.5 * max(env.structure.capacities) / 100
        np.testing.assert_allclose(applied, np.rint(intended), atol=tolerance)
        zero = env.actions_to_sim(OrderNothingBaseline(env).act(env.snapshot()))
        np.testing.assert_array_equal(zero, 0.0)


def test_random_baseline_is_seeded_and_covers_the_space() -> None:
    env = InventoryEnv(action_mode="discrete")
    env.reset(seed=0)
    a = np.stack([RandomBaseline(env, seed=5).act(env.snapshot()) for _ in range(2)])
    np.testing.assert_array_equal(a[0], a[1])
    draws = RandomBaseline(env, seed=1)
    many = np.concatenate([draws.act(env.snapshot()) for _ in range(400)])
    assert many.min() == 0 and many.max() == env.order_levels - 1


# --- validation ---------------------------------------------------------------------------
NAN_SERIES = [5.0, float("nan")] + [5.0] * 28


@pytest.mark.parametrize(
    ("scenario", "exc", "match"),
    [
        ({"capacities": [-1.0, 90.0, 80.0]}, ValueError, r"capacities\[0\]"),
        ({"lead_times": [3, -2, 10]}, ValueError, r"lead_times\[1\]"),
        ({"demand": {"kind": "series", "series": NAN_SERIES}}, ValueError, r"demand\.series\[1\]"),
        ("no_such_preset", ValueError, r"scenario: unknown preset 'no_such_preset'"),
        ({"capacity": [1.0, 2.0, 3.0]}, ValueError, r"unknown field\(s\) \['capacity'\]"),
        ({"demand": {"meen": 3.0}}, ValueError, r"scenario\.demand: unknown field\(s\) \['meen'\]"),
        # YAML / Hydra strings are not booleans: "no" must not silently mean backlog
        ({"backlog": "no"}, ValueError, r"backlog: must be true \(backlog\) or false.*'no'"),
        ({"demand": "poisson"}, ValueError, r"demand: expected a mapping of demand fields"),
        (
            {"demand": {"kind": "seasonal", "cycle": float("nan")}},
            ValueError,
            r"demand\.cycle: must be a finite number >= 1",
        ),
        ({"lead_times": ["3", 5, 10]}, ValueError, r"lead_times\[0\]: must be a finite number"),
        ({"horizon": True}, ValueError, r"horizon: must be an integer >= 1 period, got True"),
        ({"capacities": 100.0}, ValueError, r"capacities: expected a list of 3 numbers"),
    ],
)
def test_bad_scenarios_raise_errors_naming_the_field(
    scenario: object, exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        gym.make(ENV_ID, scenario=scenario)


@pytest.mark.parametrize(
    ("mode", "action", "match"),
    [
        ("continuous", [1.5, 0.0, 0.0], r"action \[1\.5, 0\.0, 0\.0\].*outside the action space"),
        ("quantity", [101.0, 0.0, 0.0], r"action .*outside the action space.*high=\[100\.0"),
        ("discrete", [0, 11, 0], r"action \[0, 11, 0\].*outside the action space"),
        ("continuous", [0.0, 0.0], r"action has shape .*expected \(3,\)"),
    ],
)
def test_actions_outside_the_space_are_rejected(mode: str, action: list, match: str) -> None:
    env = gym.make(ENV_ID, action_mode=mode)
    env.reset(seed=0)
    dtype = np.int64 if mode == "discrete" else np.float32
    with pytest.raises(ValueError, match=match):
        env.step(np.array(action, dtype=dtype))


def test_order_levels_must_be_a_whole_number() -> None:
    with pytest.raises(ValueError, match=r"order_levels: must be an integer >= 2, got 2\.5"):
        gym.make(ENV_ID, action_mode="discrete", order_levels=2.5)
    with pytest.raises(ValueError, match=r"order_levels: must be an integer >= 2, got '3'"):
        gym.make(ENV_ID, action_mode="discrete", order_levels="3")
    env = gym.make(ENV_ID, action_mode="discrete", order_levels=np.int64(3))
    assert env.action_space == gym.spaces.MultiDiscrete([3, 3, 3])


def test_bad_baseline_parameters_raise_errors_naming_the_field() -> None:
    env = InventoryEnv()
    with pytest.raises(ValueError, match=r"levels: expected 3 values"):
        BaseStockBaseline(env, levels=[10.0, 20.0])
    with pytest.raises(ValueError, match=r"levels: values must be >= 0"):
        BaseStockBaseline(env, levels=[10.0, -20.0, 30.0])
    with pytest.raises(ValueError, match=r"reorder: every s must be below its S"):
        SSBaseline(env, reorder=[50.0, 50.0, 50.0], order_up_to=[40.0, 80.0, 120.0])
    with pytest.raises(ValueError, match=r"seeds: need at least one"):
        BaseStockBaseline(env).fit([])
    with pytest.raises(ValueError, match=r"max_batch"):
        BaseStockBaseline(env, max_batch=0)


# --- scenario lists and registered variants ----------------------------------------------------
BIG_TWO_STAGE = {
    "preset": "two_stage",
    "name": "big",
    "initial_inventory": [6000.0, 12000.0],
    "capacities": [600.0, 600.0],
    "demand": {"mean": 400.0},
}


@pytest.mark.parametrize("observation", ["default", "orgym"])
@pytest.mark.parametrize("big_first", [False, True])
def test_observation_space_holds_every_scenario_of_a_list(
    observation: str, big_first: bool
) -> None:
    scenarios = ["two_stage", BIG_TWO_STAGE]
    if big_first:
        scenarios.reverse()
    env = InventoryEnv(scenarios, observation=observation)
    space = env.observation_space
    drawn = set()
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        drawn.add(env.runner.sim.scenarios[0].name)
        assert space.contains(obs), env.runner.sim.scenarios[0].name
        done = False
        while not done:
            full = np.ones(2, dtype=np.float32)  # order the capacity: stocks at their highest
            obs, _, terminated, truncated, _ = env.step(full)
            assert space.contains(obs), env.runner.sim.scenarios[0].name
            done = terminated or truncated
    assert drawn == {"two_stage", "big"}
    venv = gym.make_vec(ENV_ID, num_envs=4, scenario=scenarios, observation=observation)
    assert venv.single_observation_space == space
    obs, _ = venv.reset(seed=0)
    for _ in range(40):  # past the end of every episode: autoreset draws again
        assert all(space.contains(row) for row in obs)
        obs, *_ = venv.step(venv.action_space.sample())


def test_a_mapping_without_a_preset_starts_from_the_registered_preset() -> None:
    orgym = PRESETS["orgym"]
    short = dataclasses.replace(orgym, horizon=20)
    env = gym.make("lepton/InventoryORGym-v0", scenario={"horizon": 20})
    assert env.unwrapped.structure == short
    variant = InventoryEnv(["orgym", {"horizon": 20}, {"preset": "lost_sales"}], preset="orgym")
    assert variant.source.scenarios == [orgym, short, PRESETS["lost_sales"]]
    variant.reset(seed=0, options={"scenario": {"backlog": False}})
    assert variant.runner.sim.scenarios[0] == dataclasses.replace(orgym, backlog=False)
    venv = gym.make_vec("lepton/InventoryORGym-v0", num_envs=2, scenario={"horizon": 20})
    assert venv.env.structure == short
    assert (
        make_sb3_vec_env("lepton/InventoryORGym-v0", 2, scenario={"horizon": 20}).env.structure
        == short
    )
    # the plain id keeps the family default; the variant's own scenario is unchanged
    assert gym.make(ENV_ID, scenario={"horizon": 20}).unwrapped.structure == dataclasses.replace(
        PRESETS["serial4"], horizon=20
    )
    assert gym.make("lepton/InventoryORGym-v0").unwrapped.structure == orgym
    with pytest.raises(ValueError, match=r"preset: unknown preset 'orgy'; allowed values: \["):
        InventoryEnv(preset="orgy")


# --- rendering --------------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["serial4", "lost_sales"])
def test_rgb_array_frames(scenario: str) -> None:
    env = gym.make(ENV_ID, scenario=scenario, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    first = env.render()
    policy = BaseStockBaseline(env)
    for _ in range(8):
        obs, *_ = env.step(policy.predict(obs)[0])
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8
    assert frame.shape == (450, 800, 3) and first.shape == frame.shape
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 20, "frame is blank"
    assert (frame != first).any(), "the frame must follow the state"
    env.close()
    env.close()


def test_renderer_human_mode_and_small_chains_headless() -> None:
    single = InventoryScenario(
        name="single",
        initial_inventory=(40.0,),
        capacities=(30.0,),
        lead_times=(0,),
        unit_costs=(1.0, 0.5),
        shortage_costs=(0.2, 0.1),
        holding_costs=(0.1,),
        backlog=False,
    )
    env = InventoryEnv(single, action_mode="quantity")
    env.reset(seed=0)
    env.step(np.array([5.0], dtype=np.float32))
    for mode in ("human", "rgb_array"):
        view = InventoryRenderer(single, mode, fps=1000)
        out = view.draw(env.snapshot(), {"profit": 1.0})
        if mode == "human":
            assert out is None
        else:
            assert out.shape == (450, 800, 3) and out.dtype == np.uint8
        view.close()
        view.close()
    with pytest.raises(ValueError, match="render_mode"):
        InventoryRenderer(single, "ansi", fps=4)
