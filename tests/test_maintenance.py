"""Tests of the maintenance family: Markov dynamics, crews, repairs, exact optimum, seeding."""

import dataclasses
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy import stats

import envs
from envs.ops.maintenance.baselines import BASELINES
from envs.ops.maintenance.env import MaintenanceEnv
from envs.ops.maintenance.optimal import evaluate_rule, solve, threshold_rule
from envs.ops.maintenance.scenario import PRESETS, MachineConfig, make_scenario
from envs.ops.maintenance.sim import DOWN, REPAIR, REPLACE, RUN, MaintenanceSim, transition_matrix

ENV_ID = "lepton/Maintenance-v0"
SINGLE_ID = "lepton/MaintenanceSingle-v0"


def new_sim(scenario, batch_size: int, seed: int = 0) -> MaintenanceSim:
    sim = MaintenanceSim(batch_size, scenario)
    rngs = [np.random.default_rng([seed, i]) for i in range(batch_size)]
    sim.reset(np.ones(batch_size, dtype=bool), rngs, [scenario] * batch_size)
    return sim


def episode_returns(venv, policy, seed: int) -> np.ndarray:
    """Return of the first episode of every replica of a vector env under ``policy``."""
    obs, _ = venv.reset(seed=seed)
    returns = np.zeros(venv.num_envs)
    done = np.zeros(venv.num_envs, dtype=bool)
    while not done.all():
        actions, _ = policy.predict(obs)
        obs, rewards, terminated, truncated, _ = venv.step(actions)
        returns += np.where(done, 0.0, rewards)
        done |= terminated | truncated
    return returns


# --- dynamics ---------------------------------------------------------------------------------


def transition_counts(scenario, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """Counts ``[N, K, K]`` of the condition transitions of running machines over ``steps``."""
    sim = new_sim(scenario, batch_size, seed)
    n, k = scenario.num_machines, scenario.num_conditions
    counts = np.zeros((n, k, k), dtype=np.int64)
    run = np.zeros((batch_size, n), dtype=np.int64)
    for _ in range(steps):
        before = sim.snapshot().condition.copy()
        sim.step(run)
        after = sim.snapshot().condition
        for i in range(n):
            np.add.at(counts[i], (before[:, i], after[:, i]), 1)
    return counts


def chisquare_pvalues(counts: np.ndarray, p: np.ndarray) -> list[float]:
    """One chi-square p-value per row with observations; zero-probability cells must be empty."""
    pvalues = []
    for row in range(p.shape[0]):
        n_row = counts[row].sum()
        if n_row == 0:
            continue
        support = p[row] > 0
        assert counts[row][~support].sum() == 0, f"impossible transition from condition {row}"
        if support.sum() < 2:
            continue
        expected = n_row * p[row][support]
        pvalues.append(float(stats.chisquare(counts[row][support], expected).pvalue))
    return pvalues


def test_transitions_follow_the_configured_matrices():
    # every working condition is visited from the start; machines 0 and 3 have different chains
    scenario = dataclasses.replace(PRESETS["five"], initial_condition=(0.25, 0.25, 0.25, 0.25, 0.0))
    counts = transition_counts(scenario, batch_size=4000, steps=3, seed=1)
    assert counts[:, :4].sum() > 40_000
    pvalues = []
    for i, machine in enumerate(scenario.machines):
        pvalues += chisquare_pvalues(counts[i], transition_matrix(machine))
    # 5 machines x 4 working rows; Bonferroni at 1e-3 overall
    assert len(pvalues) == 20
    assert min(pvalues) > 1e-3 / len(pvalues), pvalues
    # the failed state is absorbing while running
    assert np.all(counts[:, 4, :4] == 0)


def test_chisquare_detects_a_different_matrix():
    scenario = dataclasses.replace(
        PRESETS["single"], initial_condition=(0.25, 0.25, 0.25, 0.25, 0.0)
    )
    counts = transition_counts(scenario, batch_size=8000, steps=2, seed=2)
    other = transition_matrix(PRESETS["five"].machines[3])
    worst = min(chisquare_pvalues(counts[0], other))
    assert worst < 1e-12


def test_crew_limit_is_respected_and_worst_condition_first():
    scenario = PRESETS["five"]
    sim = new_sim(scenario, batch_size=64, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(scenario.horizon):
        state = sim.snapshot()
        before_c, before_down, before_work = (
            state.condition.copy(),
            state.downtime.copy(),
            state.work.copy(),
        )
        # mostly repair requests, so the two crews are short nearly every step
        decisions = rng.choice(3, size=(64, 5), p=[0.15, 0.8, 0.05])
        result = sim.step(decisions)
        state = sim.snapshot()
        busy = ((state.work == REPAIR) & (state.downtime > 0)).sum(axis=1)
        assert np.all(busy <= scenario.crews)
        assert np.all(result.metrics["crews_busy"] == busy)
        for b in range(64):
            held = int(((before_work[b] == REPAIR) & (before_down[b] > 0)).sum())
            free = scenario.crews - held
            asked = [i for i in range(5) if before_down[b, i] == 0 and decisions[b, i] == REPAIR]
            ranked = sorted(asked, key=lambda i: (-before_c[b, i], i))
            granted = set(ranked[: max(free, 0)])
            for i in asked:
                if i in granted:
                    assert state.last_op[b, i] == REPAIR
                else:
                    assert state.last_op[b, i] == RUN and state.last_denied[b, i]
            assert result.metrics["denied_repairs"][b] == len(asked) - len(granted)
            assert result.metrics["repairs"][b] == len(granted)


def test_denied_repair_goes_to_the_worst_machine_with_lowest_index_on_ties():
    scenario = make_scenario({"preset": "single", "num_machines": 3, "crews": 1})
    sim = new_sim(scenario, batch_size=1)
    sim.condition[0] = (1, 3, 3)
    sim.step(np.array([[REPAIR, REPAIR, REPAIR]]))
    state = sim.snapshot()
    assert state.last_op[0].tolist() == [RUN, REPAIR, RUN]
    assert state.last_denied[0].tolist() == [True, False, True]
    assert state.condition[0, 1] == 1  # 3 - repair_levels


def test_repair_takes_its_time_and_improves_partially():
    machine = dataclasses.replace(MachineConfig(), repair_time=3, repair_levels=1)
    scenario = make_scenario(
        {"machines": [machine], "initial_condition": (0.0, 0.0, 0.0, 1.0, 0.0)}
    )
    env = MaintenanceEnv(scenario)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.array([REPAIR]))
    assert reward == pytest.approx(-machine.repair_cost)
    state = env.snapshot()
    assert state.condition[0, 0] == 2 and state.downtime[0, 0] == 2
    assert state.work[0, 0] == REPAIR and info["crews_busy"] == 1
    for left in (1, 0):
        # out of production: decisions are ignored, nothing produced, no degradation
        _, reward, _, _, info = env.step(np.array([REPLACE]))
        state = env.snapshot()
        assert reward == 0.0 and info["output"] == 0.0 and info["replacements"] == 0
        assert state.last_op[0, 0] == DOWN and state.downtime[0, 0] == left
        assert state.condition[0, 0] == 2
    assert state.work[0, 0] == 0 and info["crews_busy"] == 0
    _, _, _, _, info = env.step(np.array([RUN]))
    assert info["output"] == pytest.approx(machine.output[2])


def test_replace_restores_new():
    scenario = make_scenario({"initial_condition": (0.0, 0.0, 0.0, 0.0, 1.0)})
    machine = scenario.machines[0]
    env = MaintenanceEnv(scenario)
    _, info = env.reset(seed=0)
    assert env.snapshot().condition[0, 0] == 4
    _, reward, _, _, info = env.step(np.array([RUN]))
    assert info["output"] == 0.0 and info["failed"] == 1 and info["failures"] == 0
    _, reward, _, _, info = env.step(np.array([REPLACE]))
    assert reward == pytest.approx(-machine.replace_cost)
    state = env.snapshot()
    assert state.condition[0, 0] == 0 and state.downtime[0, 0] == machine.replace_time - 1
    for _ in range(machine.replace_time - 1):
        _, reward, _, _, _ = env.step(np.array([RUN]))
        assert reward == 0.0
    _, _, _, _, info = env.step(np.array([RUN]))
    assert info["output"] == pytest.approx(machine.output[0])


def test_breakdown_is_charged_once():
    scenario = make_scenario({"initial_condition": (0.0, 0.0, 0.0, 1.0, 0.0)})
    env = MaintenanceEnv(scenario)
    env.reset(seed=5)
    charged = 0.0
    for _ in range(30):
        _, _, _, _, info = env.step(np.array([RUN]))
        charged += -info["reward_terms"]["failure_cost"]
    assert env.snapshot().condition[0, 0] == 4  # failed with probability 1 - 0.75 ** 30
    assert charged == pytest.approx(scenario.machines[0].failure_cost)


# --- seeding -----------------------------------------------------------------------------------


def rollout(env, seed: int, steps: int, action_seed: int) -> list:
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(action_seed)
    out = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(rng.integers(0, 3, size=5))
        out.append((obs, reward, terminated, info["episode_profit"], info["failures"]))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append(obs)
    return out


def test_same_seed_same_rollout_and_pickle():
    a = rollout(envs.make(ENV_ID), 7, 150, 0)
    b = rollout(envs.make(ENV_ID), 7, 150, 0)
    c = rollout(envs.make(ENV_ID), 8, 150, 0)
    assert repr(a) == repr(b)
    assert repr(a) != repr(c)
    env = envs.make(ENV_ID)
    env.reset(seed=1)
    clone = pickle.loads(pickle.dumps(env))
    act = np.array([0, 1, 2, 0, 1])
    for _ in range(20):
        x, y = env.step(act), clone.step(act)
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1] == y[1]


def test_replica_equals_single_env_bit_for_bit_across_autoreset():
    num_envs, seed, steps = 6, 40, 230  # more than two episodes of 100 steps
    venv = envs.make_vec(ENV_ID, num_envs=num_envs)
    obs, _ = venv.reset(seed=seed)
    rng = np.random.default_rng(9)
    actions = rng.integers(0, 3, size=(steps, num_envs, 5))
    batched_obs, batched_rewards, batched_done = [obs], [], []
    for t in range(steps):
        obs, rewards, terminated, truncated, _ = venv.step(actions[t])
        batched_obs.append(obs)
        batched_rewards.append(rewards)
        batched_done.append(terminated | truncated)
    for i in range(num_envs):
        env = envs.make(ENV_ID)
        obs, _ = env.reset(seed=seed + i)
        np.testing.assert_array_equal(obs, batched_obs[0][i])
        for t in range(steps):
            obs, reward, terminated, truncated, _ = env.step(actions[t, i])
            assert reward == batched_rewards[t][i]
            assert (terminated or truncated) == batched_done[t][i]
            if terminated or truncated:
                obs, _ = env.reset()  # same-step autoreset of the vector env
            np.testing.assert_array_equal(obs, batched_obs[t + 1][i])


def test_snapshot_is_read_only():
    env = envs.make(ENV_ID)
    env.reset(seed=0)
    state = env.unwrapped.snapshot()
    with pytest.raises(ValueError):
        state.condition[0, 0] = 3


# --- exact optimum -----------------------------------------------------------------------------


def test_value_iteration_matches_monte_carlo_in_the_env():
    venv = envs.make_vec(SINGLE_ID, num_envs=4000)
    optimal = BASELINES.get("optimal")(venv)
    returns = episode_returns(venv, optimal, seed=123)
    mean, half = returns.mean(), 3.29 * returns.std(ddof=1) / np.sqrt(returns.size)  # 99.9 %
    assert abs(mean - optimal.value) < half, (mean, half, optimal.value)
    assert half < 0.02 * optimal.value  # a tight interval, not a vacuous one


def test_exact_threshold_value_matches_monte_carlo_and_is_below_the_optimum():
    scenario = PRESETS["single"]
    machine, p0 = scenario.machines[0], np.asarray(scenario.initial_condition)
    venv = envs.make_vec(SINGLE_ID, num_envs=4000)
    rule = BASELINES.get("threshold")(venv, repair_at=2, replace_at=3)
    exact = evaluate_rule(machine, scenario.horizon, p0, threshold_rule(5, 2, 3))
    returns = episode_returns(venv, rule, seed=321)
    half = 3.29 * returns.std(ddof=1) / np.sqrt(returns.size)
    assert abs(returns.mean() - exact) < half
    optimum = solve(scenario).value
    values = [
        evaluate_rule(machine, scenario.horizon, p0, threshold_rule(5, r, q))
        for q in range(1, 6)
        for r in range(1, q + 1)
    ]
    assert max(values) < optimum  # the time-aware optimum beats every stationary threshold
    assert max(values) == pytest.approx(exact)  # (2, 3) is the best threshold pair
    # far from the end the optimal policy is that threshold rule; in the last step it only runs
    segments = BASELINES.get("optimal")(venv).params()["policy"][0]
    assert segments[-1]["steps_left"] == [segments[-1]["steps_left"][0], scenario.horizon]
    assert segments[-1]["decisions"] == ["run", "run", "repair", "replace", "replace"]
    assert segments[0]["steps_left"][0] == 1 and set(segments[0]["decisions"]) == {"run"}
    # its own policy evaluated exactly gives back the optimal value
    policy = solve(scenario).machines[0].policy
    assert evaluate_rule(machine, scenario.horizon, p0, policy) == pytest.approx(optimum)


def test_optimal_beats_the_other_baselines_on_common_random_numbers():
    venv = envs.make_vec(SINGLE_ID, num_envs=512)
    results = {}
    for name in ("optimal", "threshold", "run_to_failure", "random"):
        policy = BASELINES.get(name)(venv, seed=0)
        if name == "threshold":
            policy.fit(list(range(1000, 1032)))
            assert policy.params()["repair_at"] == [2]
        results[name] = episode_returns(venv, policy, seed=77)
    diff = results["optimal"] - results["threshold"]
    assert diff.mean() > 2.0 * diff.std(ddof=1) / np.sqrt(diff.size)
    assert results["threshold"].mean() > results["run_to_failure"].mean() + 10.0
    assert results["run_to_failure"].mean() > results["random"].mean() + 50.0


def test_optimal_for_a_decoupled_fleet_and_refused_for_a_coupled_one():
    scenario = make_scenario({"preset": "five", "crews": 5})
    venv = envs.make_vec(ENV_ID, num_envs=1500, scenario=scenario)
    optimal = BASELINES.get("optimal")(venv)
    assert optimal.params()["exact"]
    parts = [
        solve(dataclasses.replace(scenario, machines=(m,), crews=1)).value
        for m in scenario.machines
    ]
    assert optimal.value == pytest.approx(sum(parts))
    returns = episode_returns(venv, optimal, seed=5)
    half = 3.29 * returns.std(ddof=1) / np.sqrt(returns.size)
    assert abs(returns.mean() - optimal.value) < half
    with pytest.raises(ValueError, match="relax_crews"):
        solve(PRESETS["five"])


def test_optimal_on_a_coupled_fleet_is_an_upper_bound_heuristic():
    venv = envs.make_vec(ENV_ID, num_envs=256)
    relaxed = BASELINES.get("optimal")(venv)
    assert not relaxed.params()["exact"]
    rule = BASELINES.get("threshold")(venv).fit(list(range(500, 516)))
    returns = {}
    for name, policy in (("relaxed", relaxed), ("threshold", rule)):
        returns[name] = episode_returns(venv, policy, seed=31)
        # the relaxation without a crew limit bounds every policy of the real fleet
        half = 3.29 * returns[name].std(ddof=1) / np.sqrt(returns[name].size)
        assert returns[name].mean() - half < relaxed.value
    # with two crews for five machines, per-machine optimal decisions beat tuned thresholds
    diff = returns["relaxed"] - returns["threshold"]
    assert diff.mean() > 2.0 * diff.std(ddof=1) / np.sqrt(diff.size)


def test_optimal_uses_the_reward_weights():
    # without a failure penalty, breakdowns are cheaper and the optimum is higher
    plain = solve(PRESETS["single"]).value
    venv = envs.make_vec(SINGLE_ID, num_envs=2, reward_weights={"failure_cost": 0.0})
    assert BASELINES.get("optimal")(venv).value > plain


def test_threshold_fit_on_a_fleet_beats_run_to_failure_on_new_seeds():
    venv = envs.make_vec(ENV_ID, num_envs=256)
    rule = BASELINES.get("threshold")(venv).fit(list(range(500, 516)))
    params = rule.params()
    assert len(params["repair_at"]) == 5 and params["train_return"] > 0
    tuned = episode_returns(venv, rule, seed=9000)
    corrective = episode_returns(venv, BASELINES.get("run_to_failure")(venv), seed=9000)
    assert tuned.mean() > corrective.mean() + 100.0


# --- scenario validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"machine": {"transition": [[0.5, 0.4, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]}},
            r"machines\[0\]\.transition\[0\]: row sums to 0\.9",
        ),
        ({"machine": {"repair_cost": -1.0}}, r"machines\[0\]\.repair_cost"),
        ({"machine": {"replace_cost": -2.0}}, r"machines\[0\]\.replace_cost"),
        ({"machine": {"failure_cost": float("nan")}}, r"machines\[0\]\.failure_cost"),
        (
            {"machine": {"transition": [[0.5, 0.5], [0.0, 1.0], [0.0, 1.0]]}},
            r"machines\[0\]\.transition: expected a square 3 x 3 matrix",
        ),
        ({"machine": {"output": [1.0, 0.5]}}, r"machines\[0\]\.output: expected 5 values"),
        (
            {"machine": {"transition": [[0.5, 0.5], [0.5, 0.5]], "output": [1.0, 0.0]}},
            r"machines\[0\]\.transition\[1\]: the failed state must be absorbing",
        ),
        ({"machine": {"repair_time": 0}}, r"machines\[0\]\.repair_time"),
        (
            {"machine": {"transition": [[1.2, -0.2], [0.0, 1.0]], "output": [1.0, 0.0]}},
            r"machines\[0\]\.transition\[0\]\[0\]: must be a probability",
        ),
        ({"crews": -1}, "crews"),
        ({"horizon": 0}, "horizon"),
        ({"initial_condition": [0.5, 0.5]}, "initial_condition: expected 5"),
        ({"initial_condition": [0.5, 0.4, 0.0, 0.0, 0.0]}, "initial_condition: sums to 0.9"),
        ({"condition_names": ["a", "b"]}, "condition_names"),
        ({"condition_names": "abcde"}, r"condition_names: expected 5 labels.*got 'abcde'"),
        ({"condition_names": [1, 2, 3, 4, 5]}, r"condition_names: expected 5 labels"),
        (
            {"machine": {"transition": [0.5, 0.5]}},
            r"machines\[0\]\.transition\[0\]: expected a row of 2 probabilities, got 0\.5",
        ),
        ({"machine": {"output": 1.0}}, r"machines\[0\]\.output: expected 5 values"),
        ({"initial_condition": 1.0}, r"initial_condition: expected 5 probabilities"),
        ({"machines": []}, "machines: the fleet needs at least one machine"),
        ({"num_machines": 0}, "num_machines"),
        ({"machine": {"repair_cots": 1.0}}, r"machines\[0\]: unknown field.*allowed"),
        ({"horizont": 10}, "unknown field.*allowed"),
    ],
)
def test_bad_scenarios_name_the_field(overrides, match):
    with pytest.raises(ValueError, match=match):
        make_scenario({"preset": "single", **overrides})


def test_mixed_condition_counts_and_bad_presets_are_rejected():
    three = {
        "transition": [[0.9, 0.1, 0.0], [0.0, 0.9, 0.1], [0.0, 0.0, 1.0]],
        "output": [1, 0.5, 0],
    }
    with pytest.raises(ValueError, match=r"machines\[1\].transition: every machine"):
        make_scenario({"machines": [{}, three]})
    with pytest.raises(ValueError, match="allowed values"):
        make_scenario("no_such_preset")
    with pytest.raises(ValueError, match="at least 2 condition states"):
        MachineConfig(transition=((1.0,),), output=(0.0,))  # too few states
    with pytest.raises(ValueError, match="action_mode"):
        envs.make(ENV_ID, action_mode="joint")


def test_bad_decisions_are_rejected_without_changing_the_state():
    sim = new_sim(PRESETS["single"], batch_size=2)
    with pytest.raises(ValueError, match="decisions"):
        sim.step(np.array([[0], [3]]))
    assert sim.snapshot().t.tolist() == [0, 0]


def test_yaml_style_lists_and_overrides_build_a_valid_fleet():
    scenario = make_scenario(
        {
            "preset": "five",
            "machines": [{"repair_cost": 1.0}, {}],
            "num_machines": 4,
            "crews": 1,
            "initial_condition": [1.0, 0.0, 0.0, 0.0, 0.0],
        }
    )
    assert scenario.num_machines == 4 and scenario.crews == 1
    assert [m.repair_cost for m in scenario.machines] == [1.0, 3.0, 1.0, 3.0]
    assert isinstance(scenario.initial_condition, tuple)


# --- adapters ----------------------------------------------------------------------------------


def test_flat_actions_equal_multi_discrete_decisions():
    multi = envs.make(ENV_ID)
    flat = envs.make(ENV_ID, action_mode="flat")
    assert flat.action_space == gym.spaces.Discrete(3**5)
    multi.reset(seed=4)
    flat.reset(seed=4)
    rng = np.random.default_rng(1)
    for _ in range(60):
        decisions = rng.integers(0, 3, size=5)
        code = int(flat.unwrapped.decisions_to_actions(decisions[None])[0])
        a = multi.step(decisions)
        b = flat.step(code)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1] == b[1]


@pytest.mark.parametrize("env_id", [ENV_ID, SINGLE_ID])
@pytest.mark.parametrize("observation", ["default", "compact"])
def test_gymnasium_api_without_warnings(env_id, observation):
    env = gym.make(env_id, observation=observation).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)


def test_rgb_array_frames_show_the_fleet():
    env = envs.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.shape == (450, 800, 3) and first.dtype == np.uint8
    for _ in range(40):
        env.step(np.array([0, 0, 1, 2, 0]))
    frame = env.render()
    assert frame.shape == first.shape and not np.array_equal(frame, first)
    env.close()
    env.close()
