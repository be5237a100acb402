"""Multi-agent traffic adapters: the PettingZoo parallel env and the parameter-sharing VecEnv."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

import envs.traffic
from agents.envs import make_single_env, make_training_env, make_vec_env
from agents.evaluation import run_episodes
from conf.schema import GenericEnvConfig
from envs.core.features import QuantityTerm, RewardFunction
from envs.core.registry import Registry
from envs.core.sb3 import LeptonVecEnv
from envs.traffic.env import TrafficSignalEnv
from envs.traffic.multi import SignalRewards, TrafficParallelEnv, TrafficSharedVecEnv

SCENARIO = {"preset": "grid2x2", "seconds": 300}
STEPS = 60  # decisions per episode: 300 s / delta_time 5 s
WEIGHTS = {"diff_waiting_time": 1.0, "queue": 0.25, "pressure": 0.1}


def make_parallel(**kwargs) -> TrafficParallelEnv:
    return envs.traffic.parallel_env(scenario=SCENARIO, **kwargs)


def make_env(**kwargs) -> TrafficSignalEnv:
    return TrafficSignalEnv(SCENARIO, **kwargs)


def grid_config(**kwargs) -> GenericEnvConfig:
    return GenericEnvConfig(
        id="lepton/TrafficGrid-v0",
        name="grid2x2",
        metrics=["mean_travel_time", "arrived_total"],
        kwargs={"scenario": SCENARIO, **kwargs},
    )


# --- PettingZoo parallel env -------------------------------------------------------------------


def test_parallel_api():
    env = make_parallel()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the API test reports problems as warnings
        parallel_api_test(env, num_cycles=STEPS + 5)
    assert env.possible_agents == ["A0", "A1", "B0", "B1"]
    assert env.agents == []  # all truncated together at the end of the episode


def test_parallel_seeding():
    parallel_seed_test(make_parallel, num_cycles=STEPS)


def test_parallel_matches_single_env():
    par = make_parallel(reward_weights=WEIGHTS)
    single = make_env(reward_weights=WEIGHTS)
    obs, infos = par.reset(seed=7)
    flat, _ = single.reset(seed=7)
    k, width = par.num_signals, par.width
    assert set(infos) == set(par.agents)
    rng = np.random.default_rng(0)
    for _ in range(20):
        for i, a in enumerate(par.possible_agents):
            np.testing.assert_array_equal(obs[a], flat.reshape(k, width)[i])
            assert par.observation_space(a).contains(obs[a])
        np.testing.assert_array_equal(par.state(), flat)
        action = rng.integers(0, 4, size=k)
        obs, rewards, term, trunc, infos = par.step(dict(zip(par.agents, action, strict=True)))
        flat, reward, _, _, info = single.step(action)
        assert sum(rewards.values()) == pytest.approx(reward, rel=1e-9, abs=1e-9)
        for name, total in info["reward_terms"].items():
            per_agent = [infos[a]["reward_terms"][name] for a in par.agents]
            assert sum(per_agent) == pytest.approx(total, rel=1e-9, abs=1e-9)
        for a in par.agents:
            assert infos[a]["mean_travel_time"] == info["mean_travel_time"]
            assert isinstance(rewards[a], float)
        assert not any(term.values()) and not any(trunc.values())


def test_parallel_episode_end_and_errors():
    env = make_parallel()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="missing"):
        env.step({"A0": 0})
    with pytest.raises(ValueError, match="unknown"):
        env.step({**dict.fromkeys(env.agents, 0), "Z9": 0})
    for step in range(STEPS):
        _, _, term, trunc, _ = env.step(dict.fromkeys(env.agents, 0))
        assert all(trunc.values()) == (step == STEPS - 1)
    assert env.agents == [] and set(trunc) == set(env.possible_agents)
    with pytest.raises(gym.error.ResetNeeded):
        env.step({})
    env.reset()
    assert env.agents == env.possible_agents


def test_parallel_env_takes_the_preset_of_a_mapping():
    """``preset`` is the network of a mapping naming none, at construction and at reset."""
    env = envs.traffic.parallel_env(scenario={"seconds": 300}, preset="grid2x2")
    assert env.possible_agents == make_parallel().possible_agents
    env.reset(seed=0, options={"scenario": {"seconds": 300, "scale": 2.0}})
    drawn = env.env.runner.sim.scenarios[0]
    assert drawn.name == "grid2x2" and drawn.network.num_signals == 4
    with pytest.raises(ValueError, match=r"preset: unknown traffic preset 'grid'; allowed"):
        envs.traffic.parallel_env(preset="grid")


def test_parallel_actions_checked_per_agent():
    """Each agent's action is one integer of its own space; errors name the agent."""
    single = envs.traffic.parallel_env(scenario={"preset": "sumo_rl_single", "seconds": 60})
    single.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions\['t'\].*Discrete\(2\).*array\(\[1, 0\]\)"):
        single.step({"t": np.array([1, 0])})  # not silently cut to its first entry
    env = make_parallel()
    env.reset(seed=0)
    valid = dict.fromkeys(env.agents, 0)
    for bad in (7, -1, 1.5, None, "1", [0, 1]):
        with pytest.raises(ValueError, match=r"actions\['A1'\]: expected one integer in 0\.\.3"):
            env.step({**valid, "A1": bad})
    with pytest.raises(TypeError, match=r"actions: expected a dict \{agent: action\}"):
        env.step(np.zeros(4, dtype=np.int64))
    # refused steps changed nothing; integer values of any numeric type are taken
    reference = make_parallel()
    reference.reset(seed=0)
    mixed = {"A0": np.int64(3), "A1": 2.0, "B0": np.array([1]), "B1": 0}
    out = env.step(mixed)
    want = reference.step({"A0": 3, "A1": 2, "B0": 1, "B1": 0})
    for a in env.possible_agents:
        np.testing.assert_array_equal(out[0][a], want[0][a])
        assert out[1][a] == want[1][a]


def test_parallel_render_delegates():
    env = make_parallel(render_mode="rgb_array")
    env.reset(seed=0)
    env.step(dict.fromkeys(env.agents, 1))
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    env.close()
    env.close()


def test_signal_rewards_need_quantity_terms():
    registry = Registry("reward term")
    registry.register("queue", QuantityTerm("queue", -1.0))
    registry.register("custom", lambda result: np.zeros(1))
    with pytest.raises(TypeError, match="custom"):
        SignalRewards(RewardFunction(registry, {"queue": 1.0}))


# --- parameter-sharing VecEnv ------------------------------------------------------------------


def test_shared_spaces():
    venv = TrafficSharedVecEnv(make_env(), 3)
    assert venv.num_envs == 3 * 4 and venv.slots_per_replica == 4
    assert venv.observation_space.shape == (29,)  # 4 phases + 1 + 2 * 12 lanes
    assert venv.action_space == gym.spaces.Discrete(4)
    assert venv.seed(10)[:5] == [10, 10, 10, 10, 11]  # the seed of each slot's replica


def test_shared_equals_plain_env_blocks():
    """Slots are the per-signal blocks, rewards and terms of the plain env, stepped alike."""
    b, k = 2, 4
    shared = TrafficSharedVecEnv(make_env(reward_weights=WEIGHTS), b)
    plain = LeptonVecEnv(make_env(reward_weights=WEIGHTS), b)
    par = [make_parallel(reward_weights=WEIGHTS) for _ in range(b)]
    shared.seed(3)
    plain.seed(3)
    obs_s = shared.reset()
    obs_p = plain.reset()
    for i, env in enumerate(par):
        env.reset(seed=3 + i)  # replica i is seeded 3 + i
    rng = np.random.default_rng(1)
    for _ in range(25):
        width = obs_s.shape[1]
        np.testing.assert_array_equal(obs_s, obs_p.reshape(b * k, width))
        actions = rng.integers(0, 4, size=(b, k))
        obs_s, rew_s, done_s, info_s = shared.step(actions.reshape(-1))
        obs_p, rew_p, done_p, info_p = plain.step(actions)
        outs = [
            env.step(dict(zip(env.agents, actions[i], strict=True))) for i, env in enumerate(par)
        ]
        assert rew_s.shape == (b * k,) and rew_s.dtype == np.float32
        np.testing.assert_allclose(rew_s.reshape(b, k).sum(axis=1), rew_p, rtol=1e-5, atol=1e-4)
        expected = [out[1][a] for i, out in enumerate(outs) for a in par[i].possible_agents]
        np.testing.assert_allclose(rew_s, np.float32(expected))
        np.testing.assert_array_equal(done_s, np.repeat(done_p, k))
        for slot, info in enumerate(info_s):
            i, j = divmod(slot, k)
            assert info["signal"] == shared.signal_ids[j]
            assert info["mean_travel_time"] == info_p[i]["mean_travel_time"]
            assert info["reward_terms"] == outs[i][4][shared.signal_ids[j]]["reward_terms"]


def test_shared_render_by_slot_draws_its_replica():
    venv = TrafficSharedVecEnv(make_env(render_mode="rgb_array"), 2)
    venv.seed(0)
    venv.reset()
    for _ in range(3):
        venv.step(np.arange(8) % 4)
    images = venv.get_images()  # one frame per replica
    assert len(images) == 2 and not np.array_equal(images[0], images[1])
    frames = venv.env_method("render", indices=[0, 3, 4, 7])
    for frame, replica in zip(frames, [0, 0, 1, 1], strict=True):
        np.testing.assert_array_equal(frame, images[replica])
    assert len(venv.env_method("render")) == venv.num_envs
    venv.close()


def test_shared_actions_validated_and_taken_modulo():
    venv = TrafficSharedVecEnv(make_env(), 1)
    venv.reset()
    with pytest.raises(ValueError, match="outside the action space"):
        venv.step(np.array([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="one per slot"):
        venv.step(np.array([0, 1, 2]))
    # the actions reaching the core are taken modulo each signal's number of green phases
    venv.num_greens = np.array([4, 4, 2, 3])
    seen = []
    step = venv.runner.step
    venv.runner.step = lambda actions: seen.append(actions.copy()) or step(actions)
    venv.step(np.array([3, 3, 3, 3]))
    np.testing.assert_array_equal(seen[0], [[3, 3, 1, 0]])


def test_shared_autoreset():
    """SAME_STEP autoreset per replica, broadcast to its slots, like the plain vector env."""
    b, k = 2, 4
    shared = TrafficSharedVecEnv(make_env(), b)
    plain = LeptonVecEnv(make_env(), b)
    shared.seed(11)
    plain.seed(11)
    shared.reset()
    plain.reset()
    actions = np.tile(np.arange(k) % 4, (b, 1))
    for step in range(STEPS):
        obs_s, rew_s, done_s, info_s = shared.step(actions.reshape(-1))
        obs_p, rew_p, done_p, info_p = plain.step(actions)
        assert done_s.all() == (step == STEPS - 1) and done_s.any() == done_s.all()
    width = obs_s.shape[1]
    np.testing.assert_array_equal(obs_s, obs_p.reshape(b * k, width))  # first obs of the next
    for slot, info in enumerate(info_s):
        i, j = divmod(slot, k)
        final = info_p[i]["terminal_observation"].reshape(k, width)[j]
        np.testing.assert_array_equal(info["terminal_observation"], final)
        assert info["TimeLimit.truncated"] is True
        # the metrics and rewards are those of the step that ended the episode
        assert info["mean_travel_time"] == info_p[i]["mean_travel_time"] > 0
        assert info["arrived_total"] == info_p[i]["arrived_total"]
    np.testing.assert_allclose(rew_s.reshape(b, k).sum(axis=1), rew_p, rtol=1e-5, atol=1e-4)
    # the next episode continues like the plain env's
    obs_s, _, _, _ = shared.step(actions.reshape(-1))
    obs_p, _, _, _ = plain.step(actions)
    np.testing.assert_array_equal(obs_s, obs_p.reshape(b * k, width))


def test_shared_vec_monitor_per_slot():
    venv = VecMonitor(TrafficSharedVecEnv(make_env(), 1))
    venv.seed(0)
    venv.reset()
    returns = np.zeros(4)
    for _ in range(STEPS):
        _, rewards, dones, infos = venv.step(np.zeros(4, dtype=np.int64))
        returns += rewards
    assert dones.all()
    for slot, info in enumerate(infos):
        assert info["episode"]["l"] == STEPS
        assert info["episode"]["r"] == pytest.approx(returns[slot], abs=1e-3)


def test_shared_seeding_reproducible():
    def rollout(seed):
        venv = TrafficSharedVecEnv(make_env(), 2)
        venv.seed(seed)
        out = [venv.reset()]
        for t in range(10):
            out.append(venv.step(np.full(8, t % 4))[0])
        return np.stack(out)

    np.testing.assert_array_equal(rollout(5), rollout(5))
    assert not np.array_equal(rollout(5), rollout(6))


def test_ppo_learns_on_shared_env():
    venv = VecMonitor(TrafficSharedVecEnv(make_env(), 2))
    venv.seed(0)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (8,)


# --- training glue -----------------------------------------------------------------------------


def test_make_vec_env_routes_parameter_sharing():
    cfg = grid_config(parameter_sharing=True)
    venv = make_vec_env(cfg, 2, seed=4)
    assert isinstance(venv, TrafficSharedVecEnv) and venv.num_envs == 8
    assert venv.seed(4)[::4] == [4, 5]
    plain = make_vec_env(cfg, 2, seed=4, allow_sharing=False)
    assert isinstance(plain, LeptonVecEnv) and plain.num_envs == 2
    training = make_training_env(cfg, 2, seed=0, normalize=None, gamma=0.99)
    assert isinstance(training, VecMonitor) and isinstance(training.venv, TrafficSharedVecEnv)
    assert make_single_env(cfg).unwrapped.signal_ids == ("A0", "A1", "B0", "B1")
    assert isinstance(make_vec_env(grid_config(parameter_sharing=False), 2), LeptonVecEnv)


def test_parameter_sharing_errors():
    inventory = GenericEnvConfig(
        id="lepton/Inventory-v0", name="inv", kwargs={"parameter_sharing": True}
    )
    with pytest.raises(ValueError, match=r"env\.kwargs\.parameter_sharing.*Inventory"):
        make_vec_env(inventory, 2)
    with pytest.raises(ValueError, match=r"env\.kwargs\.parameter_sharing: expected true"):
        make_vec_env(grid_config(parameter_sharing="yes"), 2)


class FixedPhases:
    """A policy holding every signal in green phase ``phase`` (any observation layout)."""

    def __init__(self, phase: int, shape: tuple[int, ...]) -> None:
        self.phase = phase
        self.shape = shape

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return np.full(self.shape, self.phase, dtype=np.int64), state


def test_evaluation_gives_one_episode_per_replica():
    """A shared env's slots are aggregated per replica: returns, lengths and metrics."""
    metrics = ["mean_travel_time", "arrived_total"]
    results = []
    for sharing, batch in ((True, 3), (False, 2)):
        venv = make_vec_env(grid_config(parameter_sharing=sharing), batch)
        shape = (venv.num_envs,) if sharing else (venv.num_envs, 4)
        results.append(run_episodes(FixedPhases(1, shape), venv, 100, 5, metrics=metrics))
    shared, plain = results
    assert shared.seeds == plain.seeds == tuple(range(100, 105))
    assert shared.returns.shape == (5,)
    np.testing.assert_array_equal(shared.lengths, np.full(5, STEPS))
    np.testing.assert_allclose(shared.returns, plain.returns, rtol=1e-5, atol=1e-3)
    for m in metrics:
        np.testing.assert_array_equal(shared.metrics[m], plain.metrics[m])
    assert (shared.metrics["mean_travel_time"] > 0).all()


def test_lepton_train_with_parameter_sharing(make_cfg):
    pytest.importorskip("envs.traffic.baselines")
    from agents import train

    cfg = make_cfg(
        "config",
        [
            "env=recsys/long_term",
            "n_envs=2",
            "total_timesteps=128",
            "eval.episodes=2",
            "eval.curve_episodes=2",
            "eval.fit_episodes=2",
            "eval.eval_freq=0",
            "checkpoint_freq=0",
            "tensorboard=false",
            "baselines=[fixed_time]",
        ],
    )
    cfg.env.id = "lepton/TrafficGrid-v0"
    cfg.env.name = "grid2x2"
    cfg.env.kwargs = {"scenario": SCENARIO, "parameter_sharing": True}
    cfg.env.metrics = ["mean_travel_time"]
    cfg.agent.n_steps = 16
    metrics = train.run(cfg)
    agent = metrics[cfg.agent.name]
    assert agent["return"]["n"] == 2  # one episode per replica, not per signal
    assert agent["mean_travel_time"]["mean"] > 0
    # the baseline acts on the plain env: the same episodes, returns on the same scale
    assert metrics["fixed_time"]["return"]["n"] == 2
    assert metrics["fixed_time"]["mean_travel_time"]["mean"] > 0
