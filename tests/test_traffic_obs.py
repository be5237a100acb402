"""Observations, reward terms and info metrics of the traffic envs, checked against the vehicles."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from envs.traffic import builders
from envs.traffic.baselines import BASELINES
from envs.traffic.env import OBSERVATIONS, REWARDS, TrafficSignalEnv
from envs.traffic.scenario import SignalSettings, TrafficScenario
from envs.traffic.sim import (
    F_INSERT,
    F_LWAIT,
    F_POS,
    F_SPEED,
    HALT_SPEED,
    I_ALIVE,
    I_LANE,
    METRICS,
)

JAM = {"preset": "sumo_rl_single", "scale": 2.0, "seconds": 600.0}
"""sumo-rl's intersection at twice its demand: the approaches fill up and spill back."""
ALL_TERMS = {**dict.fromkeys(REWARDS.names(), 0.0), "diff_waiting_time": 1.0}


def with_signals(sc: TrafficScenario, **changes: object) -> TrafficScenario:
    fields = dataclasses.asdict(sc.signals)
    fields.update(changes)
    fields["controlled"] = tuple(fields["controlled"])
    return sc.replace(signals=SignalSettings(**fields))


def split(obs: np.ndarray, phases: int, lanes: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Phase slots, min-green flag and ``[features, lanes]`` of one signal's block."""
    return obs[:phases], float(obs[phases]), obs[phases + 1 :].reshape(-1, lanes)


def test_phase_and_min_green_flag_follow_sumo_rl_rules() -> None:
    # sumo-rl's TrafficSignal: a change (yellow_time 2 s) only once time_since_last_phase_change
    # >= yellow_time + min_green (5 s); the flag is that condition; the one-hot shows the target
    sc = with_signals(builders.build("sumo_rl_single", seconds=400.0), max_green=1e9)
    env = TrafficSignalEnv(sc)
    obs, _ = env.reset(seed=0)
    green, since = 0, 0
    expected = [(green, 0.0)]
    seen = [(int(np.argmax(obs[:2])), float(obs[2]))]
    for k in range(80):
        action = (k // 3) % 2  # asks for a change every 15 s, sometimes too early
        if action != green and since >= 2 + 5:
            green, since = action, 0
        since += 5
        expected.append((green, float(since >= 2 + 5)))
        obs, *_ = env.step(action)
        assert obs[:2].sum() == 1.0
        seen.append((int(np.argmax(obs[:2])), float(obs[2])))
    assert seen == expected


@pytest.mark.parametrize("observation", ["queue", "pressure", "extended"])
def test_every_builder_reports_the_default_phase_and_flag_under_the_program(
    observation: str,
) -> None:
    # the network's own program (fixed_time baseline) moves the phase without actions
    sc = builders.build("single4", seconds=300.0)
    seqs = {}
    for name in ("default", observation):
        env = TrafficSignalEnv(sc, observation=name)
        env.reset(seed=0)
        policy = BASELINES.get("fixed_time")(env)
        width = env.layout.phases + 1
        seq = []
        for _ in range(30):
            obs, *_ = env.step(policy.act(env.snapshot()))
            seq.append(obs[:width])
        seqs[name] = np.array(seq)
    assert len({int(np.argmax(row[:-1])) for row in seqs["default"]}) > 1  # the program ran
    assert np.array_equal(seqs[observation], seqs["default"])


@pytest.mark.parametrize("observation", OBSERVATIONS.names())
def test_padded_observation_keeps_real_lanes_and_zeros_the_padding(observation: str) -> None:
    sc = {"preset": "single3", "scale": 2.0, "seconds": 300.0, "all_red_time": 2.0}
    plain = gym.make("lepton/TrafficSignal-v0", scenario=sc, observation=observation)
    padded = gym.make(
        "lepton/TrafficSignal-v0", scenario=sc, observation=observation, obs_lanes=12, obs_phases=5
    )
    g, n = plain.unwrapped.layout.phases, plain.unwrapped.layout.lane_slots
    assert (g, n) == (3, 6)
    a, _ = plain.reset(seed=4)
    b, _ = padded.reset(seed=4)
    rng = np.random.default_rng(0)
    for _ in range(60):
        pa, fa, xa = split(a, g, n)
        pb, fb, xb = split(b, 5, 12)
        assert np.array_equal(pa, pb[:g]) and not pb[g:].any() and fa == fb
        assert xa.shape[0] == xb.shape[0]
        assert np.array_equal(xa, xb[:, :n]) and not xb[:, n:].any()
        action = int(rng.integers(3))
        a, ra, *_ = plain.step(action)
        b, rb, *_ = padded.step(action)
        assert ra == rb


@pytest.mark.parametrize(
    ("env_id", "scenario"),
    [
        ("lepton/TrafficSignal-v0", JAM),
        ("lepton/TrafficGrid-v0", {"preset": "grid2x2", "scale": 4.0, "seconds": 600.0}),
    ],
)
def test_observations_stay_in_their_space_in_a_jam(env_id: str, scenario: dict) -> None:
    for observation in OBSERVATIONS.names():
        env = gym.make(env_id, scenario=scenario, observation=observation, obs_lanes=14)
        env.action_space.seed(0)
        obs, _ = env.reset(seed=1)
        space = env.observation_space
        done = False
        full = 0.0
        while not done:
            assert obs.dtype == space.dtype and space.contains(obs), observation
            full = max(full, float(obs.max()))
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert np.isfinite(reward)
            done = terminated or truncated
        assert full == 1.0 and info["waiting_to_insert"] > 50  # it was jammed


def test_observation_and_reward_terms_match_the_vehicles() -> None:
    env = gym.make("lepton/TrafficSignal-v0", scenario=JAM, reward_weights=ALL_TERMS)
    lepton = env.unwrapped
    net = lepton.structure.network
    lanes = np.array(lepton.layout.lanes[0])
    out_lanes = np.array(lepton.layout.out_lanes[0])
    cap = net.lane_length[lanes] / 7.5  # sumo-rl: length / (2.5 m gap + 5 m car)
    env.reset(seed=2)
    last_wait = 0.0
    for k in range(100):
        obs, reward, _, _, info = env.step((k // 4) % 2)
        terms = info["reward_terms"]
        assert set(terms) == set(REWARDS.names())
        assert reward == terms["diff_waiting_time"]
        snap = lepton.snapshot()
        vi, vf = snap.veh_int[0], snap.veh_float[0]
        on_lane = (vi[:, I_ALIVE] == 1) & (vf[:, F_POS] >= 0.0)
        lane = vi[:, I_LANE]
        incoming = on_lane & np.isin(lane, lanes)
        halting = incoming & (vf[:, F_SPEED] < HALT_SPEED)
        count = np.array([(incoming & (lane == x)).sum() for x in lanes])
        halt = np.array([(halting & (lane == x)).sum() for x in lanes])
        _, _, feats = split(obs, 2, lanes.size)
        np.testing.assert_allclose(feats[0], np.minimum(count / cap, 1.0), rtol=1e-6)
        np.testing.assert_allclose(feats[1], np.minimum(halt / cap, 1.0), rtol=1e-6)
        assert terms["queue"] == -halting.sum()
        n_out = (on_lane & np.isin(lane, out_lanes)).sum()
        assert terms["pressure"] == n_out - incoming.sum()  # sumo-rl: out minus in
        limit = net.lane_speed[lane[incoming]]
        speed = (vf[incoming, F_SPEED] / limit).mean() if incoming.any() else 1.0
        assert terms["average_speed"] == pytest.approx(speed)
        wait = vf[incoming, F_LWAIT].sum() / 100.0
        assert terms["diff_waiting_time"] == pytest.approx(last_wait - wait)
        last_wait = wait
    assert last_wait > 1.0  # vehicles did wait


def test_info_trip_metrics_match_the_vehicles_that_arrived() -> None:
    # one-second decisions: every vehicle that vanishes in a step arrived at its end
    sc = with_signals(builders.build("single4", scale=1.5, seconds=900.0), delta_time=1.0)
    env = TrafficSignalEnv(sc, reward_weights=ALL_TERMS)
    env.reset(seed=3)
    travel = 0.0
    arrived = 0
    info: dict = {}
    for k in range(900):
        snap = env.snapshot()
        alive = np.flatnonzero(snap.veh_int[0, :, I_ALIVE] == 1)
        insert = snap.veh_float[0, alive, F_INSERT].copy()
        _, _, _, truncated, info = env.step((k // 20) % 4)
        after = env.snapshot()
        t = float(after.time[0])
        gone = (after.veh_int[0, alive, I_ALIVE] == 0) | (
            after.veh_float[0, alive, F_INSERT] != insert
        )
        arrived += int(gone.sum())
        travel += float((t - insert[gone]).sum())
        assert info["arrived"] == gone.sum() == info["reward_terms"]["throughput"]
        assert info["arrived_total"] == arrived
        if arrived:
            assert info["mean_travel_time"] == pytest.approx(travel / arrived)
        vi, vf = after.veh_int[0], after.veh_float[0]
        on_lane = (vi[:, I_ALIVE] == 1) & (vf[:, F_POS] >= 0.0)
        speeds = vf[on_lane, F_SPEED]
        assert info["queue"] == (speeds < HALT_SPEED).sum()
        assert info["mean_speed"] == pytest.approx(speeds.mean() if speeds.size else 0.0)
        assert info["on_network"] == (vi[:, I_ALIVE] == 1).sum()
        if truncated:
            break
    assert arrived > 300
    assert set(METRICS) <= set(info)
    assert 0.0 < info["mean_waiting_time"] < info["mean_delay"] < info["mean_travel_time"]
