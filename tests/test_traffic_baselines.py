"""Classic signal controllers: the fixed-time program, max-pressure on hand-checked counts,
every controller through every adapter, and max-pressure beating random phases."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

from agents.policies import make_baseline
from envs.core.baselines import baseline_registry
from envs.core.sb3 import make_sb3_vec_env
from envs.traffic import builders
from envs.traffic.baselines import (
    BASELINES,
    LongestQueueBaseline,
    MaxPressureBaseline,
    SignalBaseline,
)
from envs.traffic.env import TrafficSignalEnv, TrafficVectorEnv
from envs.traffic.multi import TrafficParallelEnv
from envs.traffic.network import LINK_STATES
from envs.traffic.scenario import SignalSettings
from envs.traffic.sim import L_COUNT, L_HALT, S_STAGE, TrafficState

NAMES = ("fixed_time", "max_pressure", "longest_queue", "actuated", "sotl", "random")


def program_state(sc, s: int, t: float) -> str:
    """State string of signal ``s``'s fixed-time program at time ``t``."""
    sig = sc.network.signals[s]
    pos = (t - sig.offset) % sig.cycle
    for phase in sig.phases:
        if pos < phase.duration - 1e-9:
            return phase.state
        pos -= phase.duration
    return sig.phases[0].state


def link_states(snapshot: TrafficState, i: int, sc, s: int) -> str:
    off = sum(sig.num_links for sig in sc.network.signals[:s])
    n = sc.network.signals[s].num_links
    return "".join(LINK_STATES[c] for c in snapshot.link_state[i, off : off + n])


def test_registry_and_lookup() -> None:
    assert set(NAMES) == set(BASELINES.names())
    assert baseline_registry(TrafficSignalEnv) is BASELINES
    env = TrafficSignalEnv(builders.PRESETS["sumo_rl_single"](seconds=60))
    env.reset(seed=0)
    assert isinstance(make_baseline("max_pressure", env, seed=0, fit_seeds=[1]), SignalBaseline)
    with pytest.raises(KeyError, match="max_presure.*max_pressure"):
        make_baseline("max_presure", env, seed=0, fit_seeds=[])


def test_fixed_time_runs_the_program_second_by_second() -> None:
    sc = builders.PRESETS["sumo_rl_single"](seconds=200, signals=SignalSettings(delta_time=1.0))
    env = TrafficSignalEnv(sc)
    env.reset(seed=0)
    policy = BASELINES.get("fixed_time")(env)
    seen = set()
    for _ in range(200):
        env.step(policy.act(env.snapshot()))
        snap = env.snapshot()
        # the link states of a decision are those of its last second
        expected = program_state(sc, 0, float(snap.time[0]) - 1.0)
        assert link_states(snap, 0, sc, 0) == expected, float(snap.time[0])
        seen.add(expected)
    assert seen == {p.state for p in sc.network.signals[0].phases}


def test_fixed_time_follows_the_program_across_autoresets() -> None:
    # single4's program (30/3/10/3 s, twice) with 5-s decisions in a vector env whose episodes
    # end after 60 s: the program restarts with every episode
    sc = builders.PRESETS["single4"](seconds=60.0)
    venv = TrafficVectorEnv(num_envs=2, scenario=sc)
    venv.reset(seed=[0, 1])
    policy = BASELINES.get("fixed_time")(venv)
    checked = 0
    for _ in range(30):
        venv.step(policy.act(venv.snapshot()))
        snap = venv.snapshot()
        for i in range(2):
            t = float(snap.time[i])
            if t > sc.begin:  # right after an autoreset nothing has run yet
                assert link_states(snap, i, sc, 0) == program_state(sc, 0, t - 1.0)
                checked += 1
    assert checked >= 40


def _with_lanes(snapshot: TrafficState, counts: dict[str, float], net) -> TrafficState:
    """``snapshot`` with only ``counts`` vehicles (all halting) on the named lanes."""
    stats = np.zeros_like(np.asarray(snapshot.lane_stats))
    for lane, n in counts.items():
        stats[0, net.lane_id_index[lane], L_COUNT] = n
        stats[0, net.lane_id_index[lane], L_HALT] = n
    return dataclasses.replace(snapshot, lane_stats=stats)


def test_max_pressure_on_a_hand_checked_snapshot() -> None:
    sc = builders.PRESETS["sumo_rl_single"](seconds=60)
    env = TrafficSignalEnv(sc)
    env.reset(seed=0)
    net = sc.network
    mp = MaxPressureBaseline(env)
    # green links: phase 0 n_t_i -> t_s_i, phase 1 w_t_i -> t_e_i
    assert [sorted((net.lane_ids[a], net.lane_ids[b]) for a, b in g) for g in mp.links[0]] == [
        [("n_t_0", "t_s_0"), ("n_t_1", "t_s_1")],
        [("w_t_0", "t_e_0"), ("w_t_1", "t_e_1")],
    ]
    counts = {"n_t_0": 5, "n_t_1": 3, "t_s_0": 4, "w_t_0": 6, "t_e_0": 1}
    snap = _with_lanes(env.snapshot(), counts, net)
    # phase 0: (5 - 4) + (3 - 0) = 4; phase 1: (6 - 1) + (0 - 0) = 5
    np.testing.assert_allclose(mp.pressure(snap)[0, 0], [4.0, 5.0])
    assert int(mp.act(snap)[0]) == 1
    # the longest queue serves the 8 halting vehicles of phase 0
    assert int(LongestQueueBaseline(env).act(snap)[0]) == 0
    # a tie keeps the current phase (phase 0 at the start)
    tie = _with_lanes(env.snapshot(), {"n_t_0": 2, "w_t_1": 2}, net)
    assert int(mp.act(tie)[0]) == 0


def test_max_pressure_follows_the_pressure_within_the_signal_timings() -> None:
    """Every decision takes the phase of largest pressure; the env keeps the timings: 2 s of
    yellow, 3 s of all-red, then at least ``min_green`` (5 s) of green before the next change."""
    timings = SignalSettings(delta_time=1.0, yellow_time=2.0, all_red_time=3.0, min_green=5.0)
    sc = builders.PRESETS["sumo_rl_single"](seconds=400, signals=timings)
    env = TrafficSignalEnv(sc)
    env.reset(seed=0)
    mp = MaxPressureBaseline(env)
    green_start, change, red_start = float(sc.begin), None, None
    greens = []
    for _ in range(400):
        snap = env.snapshot()
        t = float(snap.time[0])
        pressure = mp.pressure(snap)[0, 0]
        action = int(mp.act(snap)[0])
        assert pressure[action] == pressure.max()
        env.step(action)
        after = env.snapshot()
        stage, now = int(after.signal_int[0, 0, S_STAGE]), float(after.time[0])
        if stage == 1 and change is None:  # the change was decided at t
            change = t
            greens.append(t - green_start)
        elif stage == 2 and red_start is None:
            assert change is not None and now - change == 2.0  # yellow
            red_start = now
        elif stage == 0 and red_start is not None:
            assert now - red_start == 3.0  # all-red
            green_start, change, red_start = now, None, None
    assert len(greens) > 10 and min(greens) >= 5.0, greens


def test_phase_links_of_a_grid_are_distinct_and_cover_the_green_links() -> None:
    sc = builders.PRESETS["grid2x2"](seconds=60)
    env = TrafficSignalEnv(sc)
    mp = MaxPressureBaseline(env)
    net = sc.network
    for k, s in enumerate(sc.controlled_signals):
        sig = net.signals[s]
        for g, p in enumerate(sig.green_phases):
            pairs = mp.links[k][g]
            assert len(pairs) == len(set(pairs)) > 0
            want = {
                (int(net.conn_from[c]), int(net.conn_to[c]))
                for link, ch in enumerate(sig.phases[p].state)
                if ch in "Gg"
                for c in net.signal_links[s][link]
            }
            assert set(pairs) == want


def _adapter(kind: str, preset: str):
    sc = builders.PRESETS[preset](seconds=40.0)
    if kind == "single":
        env = TrafficSignalEnv(sc)
        obs, _ = env.reset(seed=0)
        return env, obs, 1
    if kind == "vector":
        env = gym.make_vec(
            "lepton/TrafficSignal-v0",
            num_envs=2,
            vectorization_mode="vector_entry_point",
            scenario=sc,
        )
        obs, _ = env.reset(seed=0)
        return env, obs, 2
    venv = make_sb3_vec_env("lepton/TrafficSignal-v0", num_envs=2, seed=0, scenario=sc)
    return venv, venv.reset(), 2


@pytest.mark.parametrize("preset", ["sumo_rl_single", "grid2x2"])
@pytest.mark.parametrize("kind", ["single", "vector", "sb3"])
def test_every_baseline_acts_through_every_adapter(kind: str, preset: str) -> None:
    for name in NAMES:
        env, obs, b = _adapter(kind, preset)
        policy = BASELINES.get(name)(env, seed=0)
        space = policy.lepton.action_space
        # 12 decisions of 5 s cross the 40-s episode end (autoreset in the vector adapters)
        for _ in range(12):
            actions, _ = policy.predict(obs)
            if kind == "single":
                assert space.contains(np.asarray(actions, dtype=space.dtype)), name
                obs, _, _, truncated, _ = env.step(actions)
                if truncated:
                    obs, _ = env.reset()
            else:
                assert np.shape(actions) == (b, *space.shape), name
                assert all(space.contains(np.asarray(a, dtype=space.dtype)) for a in actions)
                obs, *_ = env.step(actions)
        env.close()


@pytest.mark.parametrize("name", NAMES)
def test_every_baseline_drives_the_pettingzoo_env(name: str) -> None:
    """``predict`` of the agents' observation dict gives ``{agent: phase}``, as on the grid."""
    sc = builders.PRESETS["grid2x2"](seconds=40.0)
    par = TrafficParallelEnv(sc)
    single = TrafficSignalEnv(sc)
    obs, _ = par.reset(seed=0)
    flat, _ = single.reset(seed=0)
    policy = BASELINES.get(name)(par, seed=0)
    reference = BASELINES.get(name)(single, seed=0)
    steps = 0
    while par.agents:
        actions, _ = policy.predict(obs)
        expected, _ = reference.predict(flat)
        assert list(actions) == par.agents
        assert [actions[a] for a in par.agents] == np.asarray(expected).tolist()
        obs, rewards, _, _, _ = par.step(actions)
        flat, reward, _, _, _ = single.step(expected)
        assert sum(rewards.values()) == pytest.approx(reward, abs=1e-9)
        steps += 1
    assert steps == 8
    with pytest.raises(ValueError, match=r"keys \['Z9'\] are not controlled signals"):
        policy.predict({"Z9": obs["A0"]})


def test_a_signal_controller_needs_a_traffic_env() -> None:
    with pytest.raises(TypeError, match="MaxPressureBaseline.*traffic env.*InventoryEnv"):
        BASELINES.get("max_pressure")(gym.make("lepton/Inventory-v0"))


def test_a_vector_env_the_baseline_cannot_see_through_names_the_native_one() -> None:
    sync = gym.vector.SyncVectorEnv(
        [lambda: TrafficSignalEnv(builders.PRESETS["single4"](seconds=60))]
    )
    with pytest.raises(TypeError, match="SyncVectorEnv.*native vector env"):
        BASELINES.get("max_pressure")(sync)
    sync.close()


def test_random_baseline_is_seeded_and_covers_the_phases() -> None:
    env = TrafficSignalEnv(builders.PRESETS["grid2x2"](seconds=60))
    env.reset(seed=0)
    a = BASELINES.get("random")(env, seed=3)
    b = BASELINES.get("random")(env, seed=3)
    draws = np.stack([a.act(env.snapshot()) for _ in range(50)])
    np.testing.assert_array_equal(draws, np.stack([b.act(env.snapshot()) for _ in range(50)]))
    assert draws.shape == (50, 1, 4)
    assert set(np.unique(draws)) == set(range(int(env.action_space.nvec.max())))


def test_bad_parameters_raise_errors_naming_the_field() -> None:
    env = TrafficSignalEnv(builders.PRESETS["sumo_rl_single"](seconds=60))
    with pytest.raises(ValueError, match="theta"):
        BASELINES.get("sotl")(env, theta=0.0)
    with pytest.raises(ValueError, match="mu"):
        BASELINES.get("sotl")(env, mu=1.5)
    with pytest.raises(ValueError, match="passage_time"):
        BASELINES.get("actuated")(env, passage_time=-1.0)
    with pytest.raises(ValueError, match="max_green"):
        BASELINES.get("actuated")(env, min_green=20.0, max_green=10.0)


def _mean_travel_time(name: str, seeds: list[int]) -> np.ndarray:
    sc = builders.PRESETS["sumo_rl_single"](seconds=900.0)
    venv = TrafficVectorEnv(num_envs=len(seeds), scenario=sc)
    venv.reset(seed=seeds)
    policy = BASELINES.get(name)(venv, seed=0)
    while True:
        _, _, _, truncated, info = venv.step(policy.act(venv.snapshot()))
        if truncated.all():
            return np.asarray(info["mean_travel_time"])


def test_max_pressure_beats_random_phases() -> None:
    # sumo-rl's single intersection (0.2 and 0.5 veh/s crossing flows) for 15 minutes
    seeds = [0, 1, 2]
    random_tt = _mean_travel_time("random", seeds)
    pressure_tt = _mean_travel_time("max_pressure", seeds)
    assert (pressure_tt < 0.85 * random_tt).all(), (pressure_tt, random_tt)
