"""Properties of the batched traffic simulator: conservation, signals, car following, batching."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from envs.traffic import builders
from envs.traffic.env import make_scenario
from envs.traffic.network import RED, Phase, SignalProgram
from envs.traffic.scenario import Flow, SignalSettings, TrafficScenario
from envs.traffic.sim import (
    A_TELEPORTS,
    F_INSERT,
    F_POS,
    F_SPEED,
    I_ALIVE,
    I_INCONN,
    I_LANE,
    I_ROUTE,
    I_TYPE,
    METRICS,
    T_GAP,
    T_LEN,
    TrafficSim,
    sample_demand,
)


def make_sim(sc: TrafficScenario, batch: int = 1, seed: int = 0) -> TrafficSim:
    sim = TrafficSim(batch, sc)
    rngs = [np.random.default_rng(seed + i) for i in range(batch)]
    sim.reset(np.ones(batch, dtype=bool), rngs, [sc] * batch)
    return sim


def every_second(sc: TrafficScenario, **signal_changes: object) -> TrafficScenario:
    """``sc`` with one-second decisions (so every sub-step can be inspected)."""
    fields = dataclasses.asdict(sc.signals)
    fields.update(delta_time=1.0, **signal_changes)
    fields["controlled"] = tuple(fields["controlled"])
    return sc.replace(signals=SignalSettings(**fields))


def vehicles(sim: TrafficSim, b: int = 0) -> np.ndarray:
    return np.flatnonzero(sim.vi[b, :, I_ALIVE] == 1)


def check_no_overlap(sim: TrafficSim, b: int = 0) -> None:
    vi, vf = sim.vi[b], sim.vf[b]
    alive = vehicles(sim, b)
    lanes = vi[alive, I_LANE]
    for lane in np.unique(lanes):
        on = alive[lanes == lane]
        on = on[np.argsort(-vf[on, F_POS])]
        front = vf[on, F_POS]
        length = sim.compiled.vtypes[vi[on, I_TYPE], T_LEN]
        # the back of every vehicle is behind the front of the one that follows it
        assert np.all(front[:-1] - length[:-1] >= front[1:] - 1e-6), (lane, front, length)


def check_lane_lists(sim: TrafficSim, b: int = 0) -> None:
    """The kernel's vehicle order: every alive vehicle once, by lane, front first, with ranges."""
    n = int(sim.n_alive[b])
    order = sim.order[b, :n]
    assert sorted(order.tolist()) == vehicles(sim, b).tolist()
    lanes = sim.vi[b, order, I_LANE]
    pos = sim.vf[b, order, F_POS]
    same = lanes[1:] == lanes[:-1]
    assert np.all(lanes[1:] >= lanes[:-1]) and np.all(pos[1:][same] <= pos[:-1][same])
    count = np.bincount(lanes, minlength=sim.count.shape[1])
    assert np.array_equal(sim.count[b], count)
    # every lane, empty or not, starts where the lanes before it end (vehicles move between
    # lanes by these ranges, without a sort)
    np.testing.assert_array_equal(sim.first[b], np.cumsum(count) - count)


def test_lane_lists_stay_sorted_through_insertions_transfers_and_teleports() -> None:
    # heavy demand and a short teleport time: blocked insertions, spillback and teleports
    sc = builders.PRESETS["grid2x2"](seconds=900, scale=4.0).replace(teleport_time=20.0)
    sim = make_sim(sc, batch=2, seed=3)
    rng = np.random.default_rng(2)
    k = len(sim.controlled)
    for _ in range(150):
        sim.step(rng.integers(0, 8, size=(2, k)))
        check_lane_lists(sim, 0)
        check_lane_lists(sim, 1)
    assert np.all(sim.metrics[:, 2] > 50)  # trips finished
    assert sim.acc[:, A_TELEPORTS].min() > 0 and sim.pending.min() > 0


def test_vehicles_are_conserved_and_never_overlap_on_a_grid() -> None:
    sc = builders.PRESETS["grid2x2"](seconds=900, scale=2.0)
    sim = make_sim(sc, batch=2)
    rng = np.random.default_rng(1)
    k = len(sim.controlled)
    for _ in range(180):
        sim.step(rng.integers(0, 8, size=(2, k)))
        assert np.all(sim.conservation() == 0)
        check_no_overlap(sim, 0)
        check_no_overlap(sim, 1)
    m = sim.metrics
    assert np.all(m[:, 2] > 50)  # trips finished
    # inserted = on network + arrived, and everything due is either inserted or waiting
    assert np.all(m[:, 3] == m[:, 4] + m[:, 2])


def test_no_vehicle_enters_a_junction_on_red() -> None:
    sc = every_second(builders.PRESETS["single4"](seconds=1200, scale=1.5))
    sim = make_sim(sc)
    net = sc.network
    glink = np.where(
        net.conn_tls >= 0,
        sim.compiled.conn_i[:, 2],
        -1,
    )
    rng = np.random.default_rng(3)
    prev_lane = sim.vi[0, :, I_LANE].copy()
    prev_insert = sim.vf[0, :, F_INSERT].copy()
    crossings = 0
    for _ in range(1200):
        states = sim.link_state[0].copy()  # in force during the coming sub-step
        sim.step(rng.integers(0, 4, size=(1, len(sim.controlled))))
        vi, vf = sim.vi[0], sim.vf[0]
        moved = np.flatnonzero(
            (vi[:, I_ALIVE] == 1) & (vi[:, I_LANE] != prev_lane) & (vf[:, F_INSERT] == prev_insert)
        )
        for v in moved.tolist():
            c = int(vi[v, I_INCONN])
            if c < 0 or net.conn_from[c] != prev_lane[v]:
                continue  # a lane change on the same edge
            crossings += 1
            # the state in force when the vehicle crossed: before the step (yellow allowed)
            before = states[glink[c]]
            after = sim.link_state[0, glink[c]]
            assert not (before == RED and after == RED), (v, c)
        prev_lane = vi[:, I_LANE].copy()
        prev_insert = vf[:, F_INSERT].copy()
    assert crossings > 200


def blocked_arterial(side_inflow: float) -> TrafficScenario:
    """Two junctions 120 m apart; the east one never gives green, so the link to it fills up."""
    base = builders.arterial(
        n=2, spacing=120.0, main_inflow=900.0, side_inflow=side_inflow, seconds=900
    )
    net = base.network
    east = next(i for i, s in enumerate(net.signals) if s.id.startswith("B"))
    blocked = SignalProgram(net.signals[east].id, (Phase(60.0, "r" * net.signals[east].num_links),))
    signals = tuple(blocked if i == east else s for i, s in enumerate(net.signals))
    return base.replace(network=dataclasses.replace(net, signals=signals))


def test_queues_spill_back_and_junctions_are_not_blocked() -> None:
    # the east junction's approaches fill up and block the west junction
    sc = blocked_arterial(side_inflow=0.0)
    net = sc.network
    sim = make_sim(sc)
    sim.program_mode[:] = True
    for _ in range(180):
        sim.program_mode[:] = True
        sim.step(np.zeros((1, len(sim.controlled)), dtype=np.int64))
        check_no_overlap(sim)
    stats = sim.lane_stats[0]
    link = [
        lane
        for lane, edge in enumerate(net.lane_edge)
        if net.edge_from[edge].startswith("A") and net.edge_to[edge].startswith("B")
    ]
    assert link
    capacity = net.lane_length[link] / 7.5 + 1
    # the middle link is full but never over capacity, and vehicles queue upstream of it
    assert np.all(stats[link, 0] <= capacity)
    assert stats[link, 0].sum() >= 0.8 * (capacity - 1).sum()
    upstream = [
        lane for lane, edge in enumerate(net.lane_edge) if net.edge_to[edge].startswith("A")
    ]
    assert stats[upstream, 1].sum() > 10
    assert sim.metrics[0, 5] > 0  # departures waiting to be inserted
    assert np.all(sim.conservation() == 0)


def test_a_vehicle_waits_before_a_junction_while_the_queue_beyond_leaves_it_no_room() -> None:
    """SUMO keeps junctions clear: a vehicle enters only when the lane beyond has room for it
    behind its last standing vehicle, less the vehicles moving up to that one. So while the
    link beyond fills up no vehicle stands inside the junction, and the crossing streams flow."""
    sc = blocked_arterial(side_inflow=300.0)
    net = sc.network
    sim = make_sim(sc)
    standing_inside = 0
    for _ in range(180):
        sim.program_mode[:] = True
        sim.step(np.zeros((1, len(sim.controlled)), dtype=np.int64))
        check_no_overlap(sim)
        vi, vf = sim.vi[0], sim.vf[0]
        inside = (vi[:, I_ALIVE] == 1) & (vf[:, F_POS] < 0.0)
        standing_inside += int(np.sum(inside & (vf[:, F_SPEED] < 0.1)))
    link = [
        lane
        for lane, edge in enumerate(net.lane_edge)
        if net.edge_from[edge].startswith("A") and net.edge_to[edge].startswith("B")
    ]
    capacity = net.lane_length[link] / 7.5 + 1
    assert sim.lane_stats[0, link, 0].sum() >= 0.8 * (capacity - 1).sum()  # it filled up
    # (entering whenever the lane's last vehicle moved, 399 vehicle-seconds were spent
    # standing inside a junction here)
    assert standing_inside == 0
    assert sim.metrics[0, list(METRICS).index("arrived_total")] > 30  # side streams cross


def signal_trace(sim: TrafficSim, actions: list[int]) -> list[str]:
    out = []
    chars = "rysgGoOmM="
    for a in actions:
        sim.step(np.array([[a]], dtype=np.int64))
        out.append("".join(chars[c] for c in sim.link_state[0]))
    return out


def test_yellow_min_green_and_max_green_timing() -> None:
    sc = every_second(
        builders.PRESETS["sumo_rl_single"](seconds=600),
        yellow_time=2.0,
        min_green=5.0,
        max_green=20.0,
    )
    sim = make_sim(sc)
    # always ask for phase 1: a change needs yellow + min green (7 s) since the last one, runs
    # through exactly 2 s of yellow; max green (20 s) then forces phase 0, and phase 1 follows
    # again once min green has passed
    trace = signal_trace(sim, [1] * 45)
    expected = (
        ["GGrr"] * 7
        + ["yyrr"] * 2
        + ["rrGG"] * 20
        + ["rryy"] * 2
        + ["GGrr"] * 5
        + ["yyrr"] * 2
        + ["rrGG"] * 7
    )
    assert trace == expected


def test_all_red_phase_follows_yellow() -> None:
    sc = every_second(builders.PRESETS["sumo_rl_single"](seconds=600), all_red_time=2.0)
    sim = make_sim(sc)
    trace = signal_trace(sim, [1] * 14)
    assert trace == ["GGrr"] * 9 + ["yyrr"] * 2 + ["rrrr"] * 2 + ["rrGG"]


def test_fixed_time_program_runs_its_durations() -> None:
    sc = every_second(builders.PRESETS["sumo_rl_single"](seconds=600))
    sim = make_sim(sc)
    sim.program_mode[:] = True
    trace = []
    for _ in range(180):
        sim.program_mode[:] = True
        sim.step(np.zeros((1, 1), dtype=np.int64))
        trace.append("".join("rysgGoOmM="[c] for c in sim.link_state[0]))
    # GGrr 42 s, yyrr 2 s, rrGG 42 s, rryy 2 s: the state in force during each second
    expected = ["GGrr"] * 42 + ["yyrr"] * 2 + ["rrGG"] * 42 + ["rryy"] * 2
    # link_state after a step is the state used during that step
    assert trace[:88] == expected
    assert trace[88:176] == expected


def test_free_vehicle_accelerates_to_its_desired_speed_and_followers_keep_safe_gaps() -> None:
    sc = builders.PRESETS["sumo_rl_single"](seconds=600)
    sim = make_sim(sc)
    for _ in range(40):
        sim.step(np.zeros((1, 1), dtype=np.int64))
        vi, vf = sim.vi[0], sim.vf[0]
        alive = vehicles(sim)
        limit = sc.network.lane_speed.max()
        assert np.all(vf[alive, F_SPEED] <= limit * 2.0 + 1e-9)
        assert np.all(vf[alive, F_SPEED] >= 0.0)
        for lane in np.unique(vi[alive, I_LANE]):
            on = alive[vi[alive, I_LANE] == lane]
            on = on[np.argsort(-vf[on, F_POS])]
            gap = vf[on[:-1], F_POS] - sim.compiled.vtypes[0, T_LEN] - vf[on[1:], F_POS]
            # Krauss keeps at least a fraction of the minimum gap between moving vehicles
            assert np.all(gap >= -1e-6)
    moving = vehicles(sim)
    assert sim.vf[0, moving, F_SPEED].max() > 10.0
    assert sim.compiled.vtypes[0, T_GAP] == 2.5


def test_same_seed_same_episode_and_batched_equals_single() -> None:
    kwargs = {"scenario": {"preset": "grid2x2", "seconds": 600}}
    single = [gym.make("lepton/TrafficGrid-v0", **kwargs) for _ in range(3)]
    vec = gym.make_vec(
        "lepton/TrafficGrid-v0", num_envs=3, vectorization_mode="vector_entry_point", **kwargs
    )
    obs_v, _ = vec.reset(seed=10)
    obs_s = [e.reset(seed=10 + i)[0] for i, e in enumerate(single)]
    np.testing.assert_array_equal(obs_v, np.stack(obs_s))
    rng = np.random.default_rng(0)
    for _ in range(60):
        acts = np.stack([single[0].action_space.sample() for _ in range(3)])
        acts = rng.integers(0, 4, size=acts.shape)
        obs_v, rew_v, _, _, info_v = vec.step(acts)
        outs = [e.step(a) for e, a in zip(single, acts, strict=True)]
        np.testing.assert_array_equal(obs_v, np.stack([o[0] for o in outs]))
        np.testing.assert_allclose(rew_v, [o[1] for o in outs])
        np.testing.assert_allclose(
            info_v["mean_travel_time"], [o[4]["mean_travel_time"] for o in outs]
        )
    # determinism: the same seed replays the same episode; another seed does not
    a = gym.make("lepton/TrafficGrid-v0", **kwargs)
    b = gym.make("lepton/TrafficGrid-v0", **kwargs)
    ra, rb, rc = [], [], []
    a.reset(seed=5)
    b.reset(seed=5)
    c = gym.make("lepton/TrafficGrid-v0", **kwargs)
    c.reset(seed=6)
    for _ in range(60):
        act = np.ones(a.action_space.shape, dtype=np.int64)
        ra.append(a.step(act)[4]["mean_travel_time"])
        rb.append(b.step(act)[4]["mean_travel_time"])
        rc.append(c.step(act)[4]["mean_travel_time"])
    assert ra == rb
    assert ra != rc


@pytest.mark.parametrize("bad", [{"delta_time": 0.0}, {"min_green": -1.0}])
def test_bad_signal_settings_name_the_field(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=f"signals.{next(iter(bad))}"):
        SignalSettings(**bad)


def test_unknown_preset_names_the_field() -> None:
    with pytest.raises(ValueError, match="scenario.preset"):
        gym.make("lepton/TrafficSignal-v0", scenario="grid9x9")


@pytest.mark.parametrize(
    ("scenario", "allowed"),
    [
        ({"preset": "grid2x2", "end": 100}, "seconds"),  # the builder's own keywords
        ({"preset": "arterial4", "end": 100}, "help(envs.traffic.builders.arterial)"),  # **kwargs
        ({"resco": "grid4x4", "seconds": 100}, "begin, end"),
    ],
)
def test_unknown_scenario_option_names_the_field(scenario: dict, allowed: str) -> None:
    key = next(k for k in scenario if k not in ("preset", "resco"))
    with pytest.raises(ValueError, match=f"scenario.{key}: unknown option") as err:
        make_scenario(scenario)
    assert allowed in str(err.value) and "delta_time" in str(err.value)
    assert make_scenario({"preset": "arterial4", "seconds": 60.0}).end == 60.0


def lockstep(a: gym.vector.VectorEnv, b: gym.vector.VectorEnv, seed: int) -> int:
    """Step two grid2x2 vector envs with the same random actions; every output must match.

    70 decisions, past the end of a 300-s episode; returns the episode ends.
    """
    rng = np.random.default_rng(seed)
    ends = 0
    for _ in range(70):
        acts = rng.integers(0, 4, size=(a.num_envs, 4))
        x, y = a.step(acts), b.step(acts)
        for u, w in zip(x[:4], y[:4], strict=True):
            np.testing.assert_array_equal(u, w)
        for key in ("mean_travel_time", "on_network", "arrived_total"):
            np.testing.assert_array_equal(x[4][key], y[4][key])
        ends += int(x[3].sum())
    return ends


def test_fused_step_equals_the_generic_path() -> None:
    kwargs = {"scenario": {"preset": "grid2x2", "seconds": 300}, "reward_weights": {"queue": 0.5}}
    fused = gym.make_vec(
        "lepton/TrafficGrid-v0", num_envs=2, vectorization_mode="vector_entry_point", **kwargs
    )
    generic = gym.make_vec(
        "lepton/TrafficGrid-v0", num_envs=2, vectorization_mode="vector_entry_point", **kwargs
    )
    generic.unwrapped.env.fused_batch_step = lambda runner, actions: None
    o1, _ = fused.reset(seed=3)
    o2, _ = generic.reset(seed=3)
    np.testing.assert_array_equal(o1, o2)
    assert lockstep(fused, generic, seed=0) == 2  # autoreset included
    with pytest.raises(Exception, match="4"):
        fused.step(np.full((2, 4), 4))


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_step_shares_of_the_batch_with_the_same_results(threads: int) -> None:
    """Replicas split over threads (5 over 2 or 3: uneven shares) give the one-thread results."""
    kwargs = {"scenario": {"preset": "grid2x2", "seconds": 300}, "reward_weights": {"queue": 0.5}}
    one = gym.make_vec(
        "lepton/TrafficGrid-v0", num_envs=5, vectorization_mode="vector_entry_point", **kwargs
    )
    many = gym.make_vec(
        "lepton/TrafficGrid-v0",
        num_envs=5,
        vectorization_mode="vector_entry_point",
        threads=threads,
        **kwargs,
    )
    sim2 = many.unwrapped.runner.sim
    assert sim2.threads == threads
    sim2.threaded_min_seconds = 0.0  # every decision on all threads, however small
    o1, _ = one.reset(seed=7)
    o2, _ = many.reset(seed=7)
    np.testing.assert_array_equal(o1, o2)
    assert lockstep(one, many, seed=1) == 5  # autoreset included
    assert sim2.threads_used == threads
    sim1 = one.unwrapped.runner.sim
    for name in ("vi", "vf", "sig_int", "sig_float", "acc", "rng_state"):
        np.testing.assert_array_equal(getattr(sim1, name), getattr(sim2, name), err_msg=name)
    # an action out of range in one share changes nothing in any share
    before = sim2.vf.copy(), sim2.time.copy()
    bad = np.zeros((5, 4), dtype=np.int64)
    bad[0, 0] = 4
    with pytest.raises(Exception, match="4"):
        many.step(bad)
    np.testing.assert_array_equal(sim2.vf, before[0])
    np.testing.assert_array_equal(sim2.time, before[1])


@pytest.mark.parametrize("park", [False, True])
def test_threaded_sims_sharing_helpers_keep_their_own_results(park: bool) -> None:
    """Two threaded batches stepped in turn (each decision another job for the helpers), with
    the helpers spinning or parked after every decision, equal their one-thread twins."""
    from envs.core import team as team_mod
    from envs.traffic.sim import _team_step

    helpers = team_mod.team(2, _team_step)
    budget = helpers.budget
    if park:
        helpers.budget = 0
    try:
        scenarios = [builders.build("grid2x2"), builders.build("single4")]
        twins = []
        for i, sc in enumerate(scenarios):
            one, two = make_sim(sc, batch=6, seed=10 * i), TrafficSim(6, sc, threads=2)
            two.threaded_min_seconds = 0.0
            two.reset(
                np.ones(6, dtype=bool),
                [np.random.default_rng(10 * i + k) for k in range(6)],
                [sc] * 6,
            )
            twins.append((one, two))
        rng = np.random.default_rng(0)
        for _ in range(40):
            for one, two in twins:
                acts = rng.integers(0, 2, size=(6, one.controlled.size))
                one.step(acts)
                two.step(acts)
                assert two.threads_used == 2
        for one, two in twins:
            for name in ("vi", "vf", "sig_int", "sig_float", "acc", "rng_state", "metrics"):
                np.testing.assert_array_equal(getattr(one, name), getattr(two, name), name)
    finally:
        helpers.budget = budget


def test_random_streams_are_splitmix64() -> None:
    """The compiled draws follow SplitMix64's reference outputs and are uniform on [0, 1)."""
    import numba

    import envs.traffic.sim as sim_module

    @numba.njit
    def draws(seed: int, n: int) -> np.ndarray:
        state = np.array([seed], dtype=np.int64)
        out = np.empty(n)
        for i in range(n):
            out[i] = sim_module._draw(state, 0)
        return out

    # the first outputs of SplitMix64 seeded with 1234567 (its reference implementation)
    reference = [6457827717110365317, 3203168211198807973, 9817491932198370423]
    np.testing.assert_array_equal(draws(1234567, 3), [(x >> 11) * 2.0**-53 for x in reference])
    u = draws(-5, 200_000)  # a negative int64 is a state with the top bit set
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    counts = np.histogram(u, bins=20, range=(0.0, 1.0))[0]
    assert ((counts - 10_000) ** 2 / 10_000).sum() < 50  # chi-square, 19 dof: p ~ 1e-4


def test_a_reset_queues_the_sampled_departures_by_source() -> None:
    """Each source's queue holds its departures of ``sample_demand`` in order; streams seeded."""
    sc = builders.build("single4")
    r0, r1 = sc.routes[0].id, sc.routes[5].id
    extra = (
        Flow("p", r0, 0.0, 600.0, "probability", 0.1, profile=((0.0, 1.0), (300.0, 2.0))),
        Flow("q", r1, 100.0, 500.0, "period", 20.0, depart_lane="random", depart_speed=3.0),
    )
    sc = sc.replace(flows=sc.flows + extra)
    seeds = (3, 4, 3)
    sim = TrafficSim(3, sc)
    sim.reset(np.ones(3, dtype=bool), [np.random.default_rng(s) for s in seeds], [sc] * 3)
    for i, seed in enumerate(seeds):
        d = sample_demand(sc, np.random.default_rng(seed))
        assert {"poisson", "probability", "period"} <= {f.kind for f in sc.flows}
        src = sim.route_src[d.route]
        assert np.isinf(sim.dep_time[i, d.time.size :]).all()
        np.testing.assert_array_equal(sim.seg_due[i], sim.seg_ptr[i])
        for s in range(sim.seg_ptr.shape[1]):
            lo, hi = sim.seg_ptr[i, s], sim.seg_end[i, s]
            mine = src == s
            assert hi - lo == mine.sum() > 0
            np.testing.assert_array_equal(sim.dep_time[i, lo:hi], d.time[mine])
            np.testing.assert_array_equal(sim.dep_i[i, lo:hi, 0], d.route[mine])
            np.testing.assert_array_equal(sim.dep_i[i, lo:hi, 1], d.vtype[mine])
            np.testing.assert_array_equal(sim.dep_i[i, lo:hi, 2], d.lane[mine])
            np.testing.assert_array_equal(sim.dep_speed[i, lo:hi], d.speed[mine])
    # the random streams come from the generators: equal seeds, equal streams
    assert sim.rng_state[0] == sim.rng_state[2] != sim.rng_state[1]


def test_a_simulation_saved_with_other_state_arrays_is_refused() -> None:
    """Unpickling a core whose buffers hold other arrays fails clearly instead of misreading."""
    sc = builders.sumo_rl_single_intersection(seconds=600)
    sim = TrafficSim(2, sc)
    state = sim.__getstate__()
    state["_i64"].specs = [("uni_ptr", (2,)), *state["_i64"].specs[1:]]
    with pytest.raises(ValueError, match=r"i64.*'uni_ptr'.*create the environment again"):
        TrafficSim.__new__(TrafficSim).__setstate__(state)
    # the same arrays with fewer fields per vehicle (one saved before a field was added)
    state = sim.__getstate__()
    state["_i32"].specs = [
        (name, (*shape[:-1], shape[-1] - 1) if name == "vi" else shape)
        for name, shape in state["_i32"].specs
    ]
    with pytest.raises(ValueError, match=r"state vi: saved with \d+ fields per row"):
        TrafficSim.__new__(TrafficSim).__setstate__(state)
    # arrays of other shapes under the same names (one saved before the layout changed)
    state = sim.__getstate__()
    del state["_layout"]
    with pytest.raises(ValueError, match=r"saved with array layout 1, but this version steps"):
        TrafficSim.__new__(TrafficSim).__setstate__(state)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2", np.int64(0)])
def test_threads_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(ValueError, match="threads: must be an integer >= 1"):
        gym.make("lepton/TrafficSignal-v0", threads=bad)
    sc = builders.sumo_rl_single_intersection(seconds=60)
    with pytest.raises(ValueError, match="threads: must be an integer >= 1"):
        TrafficSim(4, sc, threads=bad)  # type: ignore[arg-type]
    assert TrafficSim(2, sc, threads=8).threads == 2  # at most one thread per replica
    assert TrafficSim(3, sc, threads=np.int64(2)).threads == 2


def test_a_decision_after_one_of_little_work_runs_on_one_thread() -> None:
    sc = builders.sumo_rl_single_intersection(seconds=600)
    sim = TrafficSim(4, sc, threads=2)
    sim.reset(np.ones(4, dtype=bool), [np.random.default_rng(i) for i in range(4)], [sc] * 4)
    actions = np.zeros((4, 1), dtype=np.int64)
    sim.threaded_min_seconds = 1e9  # no decision is enough work
    for _ in range(3):
        sim.step(actions)
        assert sim.threads_used == 1
    sim.threaded_min_seconds = 0.0
    sim.step(actions)  # the previous decision ran on one thread: its work now counts
    assert sim.threads_used == 2


def _step_in_child(conn, venv) -> None:  # type: ignore[no-untyped-def]
    conn.send(venv.step(np.ones((4, 4), dtype=np.int64))[0])
    conn.close()


def test_threaded_batch_steps_in_a_forked_child() -> None:
    """A child forked after the helper threads started builds its own (the parent's threads are
    not in the child) instead of waiting on them forever."""
    import multiprocessing

    venvs = [
        gym.make_vec(
            "lepton/TrafficGrid-v0",
            num_envs=4,
            vectorization_mode="vector_entry_point",
            threads=threads,
            scenario={"preset": "grid2x2", "seconds": 300},
        )
        for threads in (1, 2)
    ]
    venvs[1].unwrapped.runner.sim.threaded_min_seconds = 0.0
    for venv in venvs:
        venv.reset(seed=0)
        venv.step(np.zeros((4, 4), dtype=np.int64))  # the team of 2 is running from here
    parent, child = multiprocessing.get_context("fork").Pipe()
    proc = multiprocessing.get_context("fork").Process(
        target=_step_in_child, args=(child, venvs[1])
    )
    proc.start()
    try:
        assert parent.poll(60), "the forked child's threaded step did not finish"
        obs = parent.recv()
    finally:
        proc.kill()
        proc.join()
    np.testing.assert_array_equal(obs, venvs[0].step(np.ones((4, 4), dtype=np.int64))[0])


def test_a_forced_scenario_keeps_what_the_core_was_built_for() -> None:
    short = make_scenario({"preset": "grid2x2", "seconds": 100})
    long = make_scenario({"preset": "grid2x2", "seconds": 300})
    env = gym.make("lepton/TrafficGrid-v0", scenario=long)
    with pytest.raises(ValueError, match=r"end \(100.0 vs 300.0\) must equal the environment's"):
        env.reset(seed=0, options={"scenario": short})
    slower = long.replace(
        vtypes={k: dataclasses.replace(v, accel=1.0) for k, v in long.vtypes.items()}
    )
    with pytest.raises(ValueError, match="vtypes"):
        env.reset(seed=0, options={"scenario": slower})
    # another demand on the same network, routes and window is what a drawn scenario changes
    busier = long.replace(
        name="busier", flows=tuple(dataclasses.replace(f, value=f.value * 2) for f in long.flows)
    )
    env.reset(seed=0, options={"scenario": busier})
    # the check leaves nothing of this env's build on the scenario: its own env runs its window
    steps = 0
    own = gym.make("lepton/TrafficGrid-v0", scenario=short)
    own.reset(seed=0)
    while not any(own.step(own.action_space.sample())[2:4]):
        steps += 1
    assert steps + 1 == 100 / short.signals.delta_time


@pytest.mark.parametrize(
    ("speed_limit", "u", "expected"),
    [
        # below the acceleration (2.6 m/s²) a vehicle dawdles by sigma * its speed * u ...
        (1.0, 1.0, 0.5),
        (2.0, 0.5, 1.5),
        # ... above it by sigma * accel * u (SUMO's dawdle2)
        (13.89, 1.0, 2.6 - 0.5 * 2.6),
        (1.0, 0.0, 1.0),
    ],
)
def test_krauss_dawdles_like_sumo(speed_limit: float, u: float, expected: float) -> None:
    """A starting vehicle (speed 0, free road) reaches min(limit, accel) less SUMO's dawdle."""
    from envs.traffic.sim import T_ACC, T_DEC, T_MODEL, T_SIGMA, T_TAU, T_VMAX, _next_speed

    tp = np.zeros((1, 10))
    tp[0, [T_LEN, T_GAP, T_ACC, T_DEC, T_SIGMA, T_TAU, T_VMAX, T_MODEL]] = [
        5.0, 2.5, 2.6, 4.5, 0.5, 1.0, 55.56, 0.0,
    ]  # fmt: skip
    got = _next_speed(0.0, speed_limit, 0.0, 0.0, False, tp, 0, 1.0, u)
    assert got == pytest.approx(expected)


def test_a_vehicle_enters_at_its_depart_time_like_sumo() -> None:
    """SUMO inserts a vehicle in the step of its depart time: no depart delay on a free road."""
    from envs.traffic.scenario import Departure

    sc = every_second(builders.PRESETS["single4"]())
    route = sc.routes[0].id
    sc = sc.replace(flows=(), vehicles=(Departure("a", 5.0, route), Departure("b", 7.5, route)))
    sim = make_sim(sc)
    entered = {}
    for t in range(1, 11):
        sim.advance(np.zeros((1, len(sc.controlled_signals)), dtype=np.int64))
        for v in vehicles(sim):
            entered.setdefault(int(v), float(sim.vf[0, v, F_INSERT]))
        assert float(sim.time[0]) == t
        assert len(entered) == (t >= 5) + (t >= 8)
    assert sorted(entered.values()) == [5.0, 8.0]
    delay = sim.metrics[0, list(METRICS).index("mean_depart_delay")]
    assert delay == pytest.approx((0.0 + 0.5) / 2)


def test_vehicles_stuck_side_by_side_in_each_others_lane_swap() -> None:
    """Two vehicles that reach the stop line side by side, each on the lane the other needs,
    would block each other for ever: they swap lanes and both drive on."""
    from envs.traffic.scenario import Departure, VehicleType

    sc = builders.single_intersection(
        4, lanes_per_arm=2, movement_flows={"wn": 1.0, "ws": 1.0}, seconds=400.0
    )
    net = sc.network
    routes = {r.id: r for r in sc.routes}
    first_edge = routes["route_wn"].edges[0]
    lanes = [i for i, lane in enumerate(net.lane_ids) if lane.startswith(first_edge + "_")]
    lane_id = {int(net.lane_ids[i].rsplit("_", 1)[1]): i for i in lanes}

    def reaches(lane: int, edge: str) -> bool:
        return any(
            net.edge_ids[net.lane_edge[net.conn_to[c]]] == edge
            for c in range(net.num_connections)
            if net.conn_from[c] == lane
        )

    # the left turn (to the north) leaves only from lane 1, the right turn only from lane 0
    north, south = routes["route_wn"].edges[1], routes["route_ws"].edges[1]
    assert not reaches(lane_id[0], north) and reaches(lane_id[1], north)
    assert reaches(lane_id[0], south) and not reaches(lane_id[1], south)
    sc = sc.replace(
        flows=(),
        vtypes={"DEFAULT_VEHTYPE": VehicleType(sigma=0.0, speed_dev=0.0)},
        vehicles=(
            Departure("left", 0.0, "route_wn", depart_lane=0),
            Departure("right", 0.0, "route_ws", depart_lane=1),
        ),
        teleport_time=-1.0,
    )
    sim = make_sim(every_second(sc))
    sim.program_mode[:] = True
    arrived = 0.0
    for _ in range(300):
        sim.advance(np.zeros((1, len(sc.controlled_signals)), dtype=np.int64))
        check_no_overlap(sim)
        arrived = float(sim.metrics[0, list(METRICS).index("arrived_total")])
    assert arrived == 2


@pytest.mark.parametrize(
    ("leader_speed", "gap", "sumo"),
    # (leader speed m/s, gap after minGap m) -> the speed SUMO 1.28 inserted a car at, read with
    # libsumo on a one-lane road (departSpeed="max", departPos="base")
    [(5.39, 1.79, 2.68), (5.97, 4.76, 5.36), (6.61, 3.89, 5.25), (8.55, 7.22, 7.89)],
)
def test_insertion_speed_is_sumos(leader_speed: float, gap: float, sumo: float) -> None:
    from envs.traffic.sim import _insertion_speed

    assert _insertion_speed(leader_speed, gap, 1.0, 4.5, 1.0) == pytest.approx(sumo, abs=0.01)


def test_best_departure_lane_leads_farthest_along_the_route() -> None:
    """``departLane="best"`` inserts on a lane that reaches farthest along the route without a
    lane change (SUMO's best lanes), not just onto the next edge: a vehicle turning left at
    the second junction of an arterial starts on the left lane."""
    from envs.traffic.scenario import Departure

    sc = builders.arterial(3)
    net = sc.network
    routes = {r.id: r for r in sc.routes}
    left, right = routes["route_left0A0_4"], routes["route_left0A0_3"]
    assert left.edges[:2] == right.edges[:2]  # both go straight on at A0 (from either lane)
    for route, lane_index in ((left, 1), (right, 0)):
        one = sc.replace(flows=(), vehicles=(Departure("v", 0.0, route.id, depart_lane="best"),))
        sim = make_sim(every_second(one))
        sim.advance(np.zeros((1, len(one.controlled_signals)), dtype=np.int64))
        (v,) = vehicles(sim)
        assert int(net.lane_index[sim.vi[0, v, I_LANE]]) == lane_index


def test_avg_departure_speed_is_the_lanes_mean_speed() -> None:
    """``departSpeed="avg"`` (SUMO's default): the lane's speed limit on an empty lane, at most
    the vehicle's own desired speed; behind others, their mean speed."""
    from envs.traffic.scenario import Departure, VehicleType

    sc = every_second(builders.PRESETS["single4"]())
    route = sc.routes[0].id
    slow, fast = (VehicleType(sigma=0.0, speed_factor=f, speed_dev=0.0) for f in (0.8, 1.2))
    sc = sc.replace(
        flows=(),
        vtypes={"slow": slow, "fast": fast},
        vehicles=tuple(
            Departure(name, t, route, vtype=vtype, depart_speed="avg")
            for name, t, vtype in (("a", 0.0, "fast"), ("b", 20.0, "slow"), ("c", 23.0, "fast"))
        ),
    )
    sim = make_sim(sc)
    inserted = []  # (speed at insertion, lane limit, mean speed of the others on the lane)
    for _ in range(25):
        before = set(vehicles(sim).tolist())
        sim.advance(np.zeros((1, len(sc.controlled_signals)), dtype=np.int64))
        for v in sorted(set(vehicles(sim).tolist()) - before):
            lane = sim.vi[0, v, I_LANE]
            others = [u for u in before if sim.vi[0, u, I_LANE] == lane]
            mean = float(np.mean(sim.vf[0, others, F_SPEED])) if others else None
            limit = float(sim.compiled.lane_f[lane, 1])
            inserted.append((float(sim.vf[0, v, F_SPEED]), limit, mean))
    (a, limit_a, none), (b, limit_b, _), (c, _, mean_c) = inserted
    assert none is None and a == pytest.approx(limit_a)  # an empty lane: its limit, not 1.2x
    assert b == pytest.approx(0.8 * limit_b)  # at most its own desired speed
    assert mean_c is not None and 0.0 < mean_c < limit_b and c == pytest.approx(mean_c)


def left_turn_wait(
    stream: str, headway: float, vehicles_in_stream: int, steps: int, no_overlap: bool = False
) -> float | None:
    """Seconds a permissive left turn from the north waited at its line before it went.

    One lane per arm, the north-south green held; a stream on route ``stream`` departs every
    ``headway`` s from 0 and the left turn at 20 s. ``None``: it did not go in ``steps`` s.
    """
    from envs.traffic.scenario import Departure, VehicleType
    from envs.traffic.sim import F_STUCK

    sc = builders.single_intersection(
        4, lanes_per_arm=1, movement_flows={"ne": 1.0, stream[-2:]: 1.0}, seconds=300.0
    )
    sc = every_second(sc, max_green=1e9, min_green=1.0).replace(
        flows=(),
        vtypes={"DEFAULT_VEHTYPE": VehicleType(sigma=0.0, speed_dev=0.0)},
        vehicles=(
            *(
                Departure(f"s{k}", headway * k, stream, depart_speed="max")
                for k in range(vehicles_in_stream)
            ),
            Departure("left", 20.0, "route_ne", depart_speed="max"),
        ),
        teleport_time=-1.0,
    )
    left_route = [r.id for r in sc.routes].index("route_ne")
    sim = make_sim(sc)
    for _ in range(steps):
        before = {int(v): float(sim.vf[0, v, F_STUCK]) for v in vehicles(sim)}
        sim.advance(np.zeros((1, len(sc.controlled_signals)), dtype=np.int64))  # NS green
        if no_overlap:
            check_no_overlap(sim)
        for v in vehicles(sim):
            if sim.vi[0, v, I_ROUTE] == left_route and sim.vi[0, v, I_INCONN] >= 0:
                return before.get(int(v), 0.0)
    return None


def test_a_yielding_vehicle_grows_impatient_like_sumo() -> None:
    """A permissive left turn facing an opposing stream 3.5 s apart never finds the gap a
    patient vehicle needs, yet SUMO lets it go after a while: waiting makes a vehicle impatient
    (``--time-to-impatience``), so it counts on foes that can still brake to do so."""
    from envs.traffic.sim import YIELD_GAP

    headway = 3.5
    waited = left_turn_wait("route_sn", headway, vehicles_in_stream=80, steps=200)
    # a patient vehicle needs a foe YIELD_GAP s beyond its own arrival; the next foe, a
    # headway behind the one crossing, is nearer once that one has left the junction ...
    assert headway < YIELD_GAP + 1.0
    # ... so the left turn went only once it had waited a while (the old core never let it go)
    assert waited is not None, "the left turn never went"
    assert 3.0 <= waited <= 60.0, waited


def test_a_foe_merging_into_the_same_lane_is_followed_not_waited_for() -> None:
    """A permissive left turn merging into the same one-lane exit as a dense stream of right
    turners (which it yields to) goes once their approach times allow, behind the one still
    inside the junction: SUMO treats a vehicle on a merging internal lane as a leader, not as a
    conflict. Counting it as a block (the old core) kept the left turn waiting 18 s here
    instead of 8, and on city networks kept impatient minor vehicles off a main road for good.
    """
    waited = left_turn_wait("route_se", 1.5, vehicles_in_stream=100, steps=120, no_overlap=True)
    assert waited is not None, "the left turn never went"
    assert waited <= 12.0, waited


def test_foe_approach_is_skipped_only_where_no_link_ever_yields() -> None:
    """The compiled flag that lets the kernel skip the foes' approach times."""
    from envs.traffic.sim import compile_scenario

    # sumo-rl's single intersection has only protected greens: nobody ever yields
    assert compile_scenario(builders.sumo_rl_single_intersection()).params[10] == 0.0
    # permissive left turns ("g") yield to the opposing stream
    assert compile_scenario(builders.PRESETS["single4"]()).params[10] == 1.0


def test_a_lane_change_sees_vehicles_that_changed_onto_the_target_in_the_same_pass() -> None:
    """Two vehicles changing onto the middle lane from either side in one sub-step never overlap.

    Lane changes are made one vehicle after the other and the lane ranges are sorted again
    after the pass, so a vehicle that already moved onto lane 1 is still listed with lane 2.
    The gap check reads the lanes beside the target too: with lane 1's own range alone, the
    vehicle on lane 0 at 42.9 m would have changed beside the one at 45.5 m (as on
    ingolstadt7's ``201963537#1``).
    """
    from envs.traffic.sim import NTF, NVF, NVI, _change_blockers

    # three lanes of edge 0, lane ids = lane indices; vehicle 0 on lane 0, vehicle 1 moved from
    # lane 2 onto lane 1 earlier in the pass (it is still in lane 2's range), vehicle 2 far ahead
    lane_i = np.array([[0, 0, 0, k] for k in range(3)], dtype=np.int32)
    edge_i = np.array([[0, 3]], dtype=np.int32)
    edge_lanes = np.arange(3, dtype=np.int32)
    vib = np.zeros((3, NVI), dtype=np.int32)
    vfb = np.zeros((3, NVF))
    vib[:, I_LANE] = (0, 1, 1)
    vfb[:, F_POS] = (42.9, 45.5, 120.0)
    order = np.array([0, 2, 1], dtype=np.uint32)  # lane 0: [0]; lane 1: [2]; lane 2: [1]
    first = np.array([0, 1, 2], dtype=np.int64)
    count = np.array([1, 1, 1], dtype=np.int64)
    tp = np.zeros((1, NTF))
    tp[0, T_LEN], tp[0, T_GAP] = 5.0, 2.5
    args = (first, count, order, vib, vfb, tp, lane_i, edge_i, edge_lanes)
    assert _change_blockers(0, 1, False, *args) == (1, 1)
    assert _change_blockers(0, 1, True, *args) == (1, 1)  # overlapping even without gaps
    vfb[1, F_POS] = 60.0  # far enough ahead: 60 - 5 - 42.9 >= 2.5
    assert _change_blockers(0, 1, False, *args) == (0, -1)


def test_an_impatient_merging_vehicle_goes_before_a_major_one_that_can_stop() -> None:
    """SUMO's impatient vehicle counts on a priority vehicle that can still brake to let it go.

    Where a priority stream and a yielding one merge into the same lane whose queue frees a
    vehicle's length at a time, the priority head standing at its line used to take every
    gap, and the minor road waited for good (ingolstadt21). The priority head now leaves the
    gap to a yielding head waiting at its line once that one's impatience, with the priority
    head's braking arrival time, clears all its foes, as the yielding side decides it.
    """
    from envs.traffic.network import MAJOR, MINOR
    from envs.traffic.sim import F_STUCK, I_CONN, NVF, NVI, TIME_TO_IMPATIENCE, _merger_goes

    # lane 0 (priority approach) and lane 1 (yielding approach) merge into lane 2: connection
    # 0 is the priority one, connection 1 yields to it (its foe) and is its merging yielder
    conn_i = np.array(
        [[0, 2, -1, MAJOR, 0, 0, 0, 1], [1, 2, -1, MINOR, 0, 1, 1, 1]], dtype=np.int32
    )
    yielders = np.array([1], dtype=np.int32)
    foes = np.array([0], dtype=np.int32)
    links = np.zeros(1, dtype=np.uint8)
    conn_eta = np.array([[0.5, 30.5], [1e9, 1e9]])  # the priority head stands at its line
    conn_busy = np.zeros(2, dtype=np.int64)
    lane_f = np.array([[100.0, 13.9, 0.0], [50.0, 13.9, 0.0], [100.0, 13.9, 1.0]])
    order = np.array([0, 1], dtype=np.uint32)
    first = np.array([0, 1, 2], dtype=np.int64)
    count = np.array([1, 1, 0], dtype=np.int64)
    vib = np.zeros((2, NVI), dtype=np.int32)
    vfb = np.zeros((2, NVF))
    vib[:, I_LANE] = (0, 1)
    vib[:, I_CONN] = (0, 1)
    vfb[:, F_POS] = (99.95, 49.95)

    def goes(stuck: float, speed: float = 0.0) -> bool:
        vfb[1, F_STUCK], vfb[1, F_SPEED] = stuck, speed
        return bool(
            _merger_goes(
                0, yielders, conn_i, foes, links, conn_eta, conn_busy,
                order, first, count, vib, vfb, lane_f,
            )
        )  # fmt: skip

    assert not goes(0.0)  # patient: it needs the priority head 3 s away
    # impatience i takes the head as arriving 0.5 + 30 i s from now: enough once i > 0.085
    assert not goes(0.08 * TIME_TO_IMPATIENCE)
    assert goes(0.09 * TIME_TO_IMPATIENCE)
    assert not goes(60.0, speed=2.0)  # not waiting at its line
    conn_eta[0, 1] = conn_eta[0, 0]  # a priority head that can no longer stop
    assert not goes(TIME_TO_IMPATIENCE)


def test_a_vehicle_changes_towards_its_best_lanes_by_sumos_look_ahead() -> None:
    """SUMO LC2013's strategic rule: a vehicle on a lane that leads too short a way along its
    route changes towards its best lanes once the distance left on its lane is under its
    look-ahead (10 s at the lane's speed, twice that to the left, plus twice its length and
    gap), however many edges ahead the turn is.

    On an arterial with junctions 100 m apart, a vehicle on the right lane that turns left at
    the third or fourth junction has its right lane lead 364 or 450 m; it changes on the first
    edge, 293 m before that. Looking two edges ahead, it changed only on the edge before the
    turn's (at 20 m of the second edge, or 17 m of the third).
    """
    from envs.traffic.scenario import Departure, VehicleType
    from envs.traffic.sim import F_POS, I_RPOS, LC_LOOK_FORWARD, LC_LOOKAHEAD_LEFT

    sc = builders.arterial(4, spacing=100.0)
    net = sc.network
    routes = {r.id: r for r in sc.routes}
    vt = VehicleType(sigma=0.0, speed_dev=0.0)
    for rid, straight_edges in (("route_left0A0_6", 3), ("route_left0A0_8", 4)):
        route = routes[rid]
        right = [net.edge_lanes[net.edge_index[e]][0] for e in route.edges[:straight_edges]]
        reach = float(sum(net.lane_length[lane] for lane in right))
        speed = float(net.lane_speed[right[0]])
        look = speed * LC_LOOK_FORWARD * LC_LOOKAHEAD_LEFT + 2 * (vt.length + vt.min_gap)
        one = sc.replace(
            flows=(),
            vtypes={"DEFAULT_VEHTYPE": vt},
            vehicles=(Departure("v", 0.0, rid, depart_lane=0, depart_speed="max"),),
        )
        one = every_second(one, max_green=1e9, min_green=1.0)
        sim = make_sim(one)
        changed = None
        for _ in range(60):
            sim.advance(np.full((1, len(one.controlled_signals)), 2, dtype=np.int64))  # EW green
            (v,) = vehicles(sim)
            if int(net.lane_index[sim.vi[0, v, I_LANE]]) == 1:
                changed = (int(sim.vi[0, v, I_RPOS]), float(sim.vf[0, v, F_POS]))
                break
        assert changed is not None, rid
        edge, pos = changed
        assert edge == 0, (rid, changed)
        # decided in the first sub-step that starts at or past the point, then driven on by at
        # most a second at the lane's speed
        assert reach - look <= pos <= reach - look + 2 * speed, (rid, changed, reach - look)
