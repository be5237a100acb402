"""Tests of ``scripts.bench_traffic``: ratio, target and gate logic, tables, an end-to-end smoke run."""

import importlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
bench = importlib.import_module("scripts.bench")
bt = importlib.import_module("scripts.bench_traffic")
sumo_worker = importlib.import_module("scripts.bench_ref.sumo_worker")
ttq = importlib.import_module("scripts.bench_ref.ttq")


def test_ratio_and_within():
    assert bt.ratio(30.0, 10.0) == 3.0
    assert bt.ratio(None, 10.0) is None and bt.ratio(1.0, None) is None
    assert bt.ratio(1.0, 0.0) is None
    assert bt.within(1.10, 0.10) is True
    assert bt.within(0.90, 0.10) is True
    assert bt.within(1.1001, 0.10) is False
    assert bt.within(None, 0.10) is None


def test_speed_ratios_and_targets():
    ours = {"1": 6000.0, "16": 20000.0, "256": 150000.0}
    ratios = bt.speed_ratios(ours, 300.0, (1, 16, 256))
    assert ratios == {"ratio_single": 20.0, "ratio_b16": 20000.0 / 300.0, "ratio_b256": 500.0}
    assert bt.speed_ratios(ours, None, (1, 256)) == {"ratio_single": None, "ratio_b256": None}
    met = bt.targets_met({"ratio_single": 19.9, "ratio_b256": 500.0}, {"ratio_single": 20.0,
                                                                       "ratio_b256": 500.0})  # fmt: skip
    assert met == {"ratio_single": False, "ratio_b256": True}
    assert bt.targets_met({"ratio_single": None}, {"ratio_single": 20.0}) == {"ratio_single": None}
    # the speed targets of the two scenarios
    targets = {c.name: dict(c.targets) for c in bt.SPEED_CASES}
    assert targets == {
        "single-intersection": {"ratio_single": 20.0, "ratio_b256": 500.0},
        "grid4x4": {"ratio_single": 10.0},
    }


def test_our_figures_and_the_quality_gate():
    info = {
        "mean_travel_time": 40.0,
        "mean_waiting_time": 5.0,
        "arrived_total": 90.0,
        "episode_mean_speed": 8.5,
        "mean_delay": 12.0,
        "inserted_total": 95.0,
        "waiting_to_insert": 5.0,
        "on_network": 5.0,
        "teleports": 0.0,
    }
    figures = bt.our_figures(info)
    assert figures["arrived"] == 90 and isinstance(figures["arrived"], int)
    assert figures["loaded"] == 100
    assert figures["mean_speed"] == 8.5 and figures["mean_time_loss"] == 12.0
    # the worker's gate: travel time at most the threshold and >= 90% of loaded arrived
    assert sumo_worker.meets_quality(figures, 40.0, 0.9)
    assert not sumo_worker.meets_quality(figures, 39.9, 0.9)
    assert not sumo_worker.meets_quality(figures, 40.0, 0.95)
    starved = bt.our_figures({**info, "arrived_total": 50.0, "mean_travel_time": 20.0})
    assert not sumo_worker.meets_quality(starved, 40.0, 0.9)
    none_arrived = bt.our_figures({**info, "arrived_total": 0.0})
    assert none_arrived["mean_travel_time"] is None
    assert not sumo_worker.meets_quality(none_arrived, 40.0, 0.9)


def test_time_to_quality_protocol_stops_and_reports():
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    seeds = []

    def evaluate(model, seed):
        seeds.append(seed)
        return {"mean_travel_time": 50.0 - len(seeds), "arrived": 10, "loaded": 10}

    cfg = {"seed": 3, "threshold": 48.0, "eval_every": 32, "eval_seed": 7,
           "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}}  # fmt: skip
    result = ttq.time_to_quality(env, evaluate, sumo_worker.meets_quality, cfg, rollout="note")
    # met at the second evaluation, after one training chunk; every evaluation on eval_seed
    assert seeds == [7, 7] and result["reached"] is True
    assert [c[1:] for c in result["curve"]] == [[0, 49.0], [32, 48.0]]
    assert [e["met"] for e in result["evals"]] == [False, True]
    assert result["timesteps_to_threshold"] == 32 == result["timesteps"]
    assert result["cpu_s_to_threshold"] == result["evals"][1]["cpu_s"]
    assert result["rollout"] == "note" and list(result)[-3:] == ["ppo", "curve", "evals"]
    assert result["ppo"]["n_steps"] == 32 and result["ppo"]["gamma"] == 0.99
    json.dumps(result)

    # never met: stops at max_timesteps; no rollout note unless given
    result = ttq.time_to_quality(
        env, evaluate, sumo_worker.meets_quality, {**cfg, "threshold": None, "max_timesteps": 64}
    )
    assert result["reached"] is False and result["timesteps"] == 64
    assert result["wall_s_to_threshold"] is None and "rollout" not in result
    assert len(result["evals"]) == 3
    env.close()


def test_time_to_quality_with_batched_rollouts_keeps_the_update_size():
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    env = gym.make("CartPole-v1")
    made = []

    def make_vec(seed):
        vec = VecMonitor(DummyVecEnv([lambda: gym.make("CartPole-v1")] * 4))
        vec.seed(seed)
        made.append(vec)
        return vec

    cfg = {"seed": 1, "threshold": None, "eval_every": 64, "max_timesteps": 128,
           "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}}  # fmt: skip
    evaluate = lambda model, seed: {"mean_travel_time": 1.0, "arrived": 1, "loaded": 1}  # noqa: E731
    result = ttq.time_to_quality(env, evaluate, sumo_worker.meets_quality, cfg, "r", make_vec)
    assert len(made) == 1 and result["replicas"] == 4
    # 32 transitions per update, 8 per replica; the reported setting is the one asked for
    assert result["ppo"]["n_steps"] == 32 and result["timesteps"] == 128
    with pytest.raises(ValueError, match="ppo.n_steps"):
        ttq.time_to_quality(
            env, evaluate, sumo_worker.meets_quality,
            {**cfg, "ppo": {"n_steps": 30, "batch_size": 30}}, None, make_vec,
        )  # fmt: skip
    env.close()


def _means(tt, arrived, **extra):
    return {"mean_travel_time": tt, "arrived": arrived, "mean_waiting_time": 10.0,
            "mean_speed": 8.0, "mean_time_loss": 20.0, "teleports": 0.0, **extra}  # fmt: skip


def test_fidelity_row_targets():
    row = bt.fidelity_row("grid4x4", "fixed_time", _means(109.0, 1000), _means(100.0, 1025))
    assert row["metrics"]["mean_travel_time"]["pass"] is True
    assert row["metrics"]["arrived"]["pass"] is True  # 1000 / 1025 = 0.976
    assert row["metrics"]["mean_waiting_time"]["pass"] is None  # no target
    assert row["pass"] is True
    off = bt.fidelity_row("grid4x4", "fixed_time", _means(111.0, 1000), _means(100.0, 1000))
    assert off["metrics"]["mean_travel_time"]["pass"] is False and off["pass"] is False
    lost = bt.fidelity_row("single-intersection", "fixed_time", _means(100, 960), _means(100, 1000))
    assert lost["metrics"]["arrived"]["pass"] is False and lost["pass"] is False
    mp = bt.fidelity_row("single-intersection", "max_pressure", _means(114, 500), _means(100, 1000))
    assert mp["pass"] is True  # max pressure: travel time within 15% only
    assert mp["metrics"]["arrived"]["tolerance"] is None
    other = bt.fidelity_row("cologne8", "fixed_time", _means(300, 10), _means(100, 1000))
    assert other["pass"] is None and other["metrics"]["mean_travel_time"]["ratio"] == 3.0
    missing = bt.fidelity_row("grid4x4", "max_pressure", _means(None, 0), _means(100.0, 1000))
    assert missing["metrics"]["mean_travel_time"]["pass"] is False


def test_format_fidelity_table():
    rows = [
        bt.fidelity_row("single-intersection", "fixed_time", _means(50.0, 990), _means(48.0, 1000)),
        bt.fidelity_row("grid4x4", "max_pressure", _means(130.0, 900), _means(100.0, 1000)),
    ]
    text = bt.format_fidelity({"rows": rows, "seeds": [0, 1, 2], "sumo_checks": []})
    lines = text.splitlines()
    assert lines[0].startswith("| scenario | controller | travel time, s")
    assert "| single-intersection | fixed_time | 50.00 / 48.00 (1.042) ✓ |" in lines[2]
    assert "FAIL" in lines[3] and "(1.300) ✗" in lines[3]
    assert "MISSED: grid4x4 max_pressure mean_travel_time ratio 1.300" in text
    assert "teleport_time=-1" in text
    unavailable = bt.format_fidelity({"rows": [], "sumo_worker": {"reason": "no venv"}})
    assert "unavailable: no venv" in unavailable


def test_ttq_ratio_bounds():
    ours = {"reached": True, "wall_s_to_threshold": 10.0, "cpu_s_to_threshold": 8.0,
            "wall_s": 10.0, "cpu_s": 8.0}  # fmt: skip
    sumo = {"reached": True, "wall_s_to_threshold": 60.0, "cpu_s_to_threshold": 40.0,
            "wall_s": 60.0, "cpu_s": 40.0}  # fmt: skip
    ours["timesteps"], sumo["timesteps"] = 1000, 2000
    exact = bt.ttq_ratio(ours, sumo)
    assert exact == {"ratio": 6.0, "cpu_ratio": 5.0, "bound": "exact", "per_timestep_ratio": 3.0}
    capped = {**sumo, "reached": False, "wall_s": 300.0, "cpu_s": 200.0}
    lower = bt.ttq_ratio(ours, capped)
    assert (lower["ratio"], lower["cpu_ratio"], lower["bound"]) == (30.0, 25.0, "lower")
    slow = {**ours, "reached": False, "wall_s": 120.0, "cpu_s": 80.0}
    upper = bt.ttq_ratio(slow, sumo)
    assert (upper["ratio"], upper["cpu_ratio"], upper["bound"]) == (0.5, 0.5, "upper")
    assert bt.ttq_ratio(slow, capped)["ratio"] is None
    assert bt.ttq_ratio(None, sumo)["ratio"] is None


def test_ttq_target_is_met_by_an_exact_or_lower_bound_never_by_an_upper_one():
    for bound, met in (("exact", True), ("lower", True), ("upper", False)):
        assert bt.ttq_target_met({"ratio": bt.TTQ_TARGET * 2, "bound": bound}) is met
    assert bt.ttq_target_met({"ratio": bt.TTQ_TARGET / 2, "bound": "exact"}) is False
    assert bt.ttq_target_met({"ratio": None, "bound": None}) is None


def test_like_sumo_rl_settings():
    sc = bt.SPEED_CASES[0].kwargs["scenario"]
    assert sc["preset"] == "sumo_rl_single" and sc["seconds"] == 3600.0
    assert (sc["delta_time"], sc["yellow_time"], sc["min_green"]) == (5.0, 2.0, 5.0)
    assert sc["all_red_time"] == 0.0 and sc["max_green"] >= 3600.0
    assert bt.SPEED_CASES[1].kwargs["scenario"]["resco"] == "grid4x4"
    assert bt.SPEED_CASES[1].kwargs["scenario"]["teleport_time"] == -1.0


def test_bench_dispatches_traffic_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["traffic", "--help"])
    assert exc.value.code == 0
    assert "--no-ttq" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    assert "traffic-fidelity" in capsys.readouterr().out


SUMORL_READY = (bench.VENVS / "sumorl" / ".ready").exists()


@pytest.mark.slow
@pytest.mark.skipif(
    not SUMORL_READY,
    reason="the sumo-rl reference venv .bench/venvs/sumorl is not built "
    "(run `python -m scripts.bench traffic` once to create it)",
)
def test_end_to_end_smoke(tmp_path):
    out = tmp_path / "traffic.json"
    argv = ["traffic", "--quick", "--scenario", "single-intersection", "--out", str(out)]
    argv += ["--seconds", "0.05", "--warmup", "0.05", "--ttq-max-wall", "1"]
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    w = report["speed"]["single-intersection"]
    assert w["reference"]["available"] and w["reference"]["params_match"]
    assert w["ratio_single"] > 0 and w["cpu_time_basis"]["ratio_b256"] > 0
    ttq = report["ttq"]
    assert ttq["thresholds"]["ours"] > 0 and ttq["thresholds"]["sumo"] > 0
    assert ttq["ours"]["evals"] and ttq["sumo"]["evals"]

    out = tmp_path / "fidelity.json"
    assert bench.main(["traffic-fidelity", "--quick", "--out", str(out)]) == 0
    fid = json.loads(out.read_text())["fidelity"]
    names = {(r["scenario"], r["controller"]) for r in fid["rows"]}
    assert names == set(bt.FIDELITY_TARGETS)
    for row in fid["rows"]:
        assert row["teleport_time"] == {"ours": -1.0, "sumo": -1}
        assert row["metrics"]["arrived"]["ours"] > 0 and row["metrics"]["arrived"]["sumo"] > 0


def test_car_following_floor(capsys):
    # the lower-bound kernel is SUMO's Krauss model: no vehicle overtakes or touches its leader
    # on a ring, speeds stay within [0, vmax], and the traffic keeps moving
    import numpy as np

    floor = importlib.import_module("scripts.bench_floor")
    for n, spacing, moving in ((6, 50.0, 10.0), (30, 10.0, 0.5)):  # free flow; dense, stop-and-go
        pos = np.empty((3, 2, n))
        pos[:] = 300.0 - spacing * np.arange(n)
        speed = np.zeros_like(pos)
        uni = np.random.default_rng(1).random(4096)
        books = np.zeros((6, *pos.shape))
        books[5] = 1.0
        k = 0
        for _ in range(200):
            k = floor.krauss_decisions_with_books(pos, speed, 300.0, 13.89, 5, uni, k, books)
            ahead = np.concatenate([pos[..., -1:] + 300.0, pos[..., :-1]], axis=-1)
            assert (ahead - pos >= floor.LENGTH + floor.MIN_GAP - 1e-9).all()
            assert (speed >= 0.0).all() and (speed <= 13.89 + 1e-12).all()
        assert speed.mean() > moving
        assert 0 < k < uni.shape[0]
        # the accounts: each one-second sub-step is either lost time or distance at vmax, the
        # waits count halted sub-steps (no lane changes on a ring), the last run ends in them
        loss, wait, lane_wait, stuck, route = books[:5]
        assert np.allclose(loss + route / 13.89, 1000.0)
        assert (
            (wait == lane_wait).all() and (stuck <= wait).all() and (stuck == np.floor(stuck)).all()
        )
        assert ((stuck > 0) == (speed < floor.HALT_SPEED)).all()
        assert (wait.sum() > 0) == (spacing < 50.0)  # only the dense ring stops
    # the command prints the timing and the budget share
    assert floor.main(["--batch", "2", "--seconds", "0.01", "--repeats", "1", "--ours",
                       "--reference-rate", "1000", "--ratio", "500"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["budget_us_per_replica_decision"] == pytest.approx(2.0)
    krauss, books, ours = out["krauss_only"], out["krauss_with_books"], out["ours"]
    assert books["vehicles"] == 40 and books["share_of_budget_best"] == pytest.approx(
        books["us_per_replica_decision_best"] / 2.0
    )
    assert (
        "--ours" in out["metadata"]["command"]
        and out["metadata"]["seconds_per_measurement"] == 0.01
    )
    assert krauss["us_per_replica_decision_best"] > 0.0 and krauss["vehicles"] == 40
    assert krauss["share_of_budget_best"] == pytest.approx(
        krauss["us_per_replica_decision_best"] / 2.0
    )
    # our core step: sumo-rl's demand fills the network, no demand leaves it empty
    assert ours["no_demand"]["vehicles_on_network"] == 0.0
    assert ours["sumo_rl_demand"]["vehicles_on_network"] > 10.0
    assert all(o["us_per_replica_decision_best"] > 0.0 for o in ours.values())
    for bad in (["--batch", "0"], ["--ratio", "500"], ["--reference-rate", "0", "--ratio", "5"]):
        with pytest.raises(SystemExit):
            floor.main(bad)
    err = capsys.readouterr().err
    assert (
        "--batch: must be >= 1" in err
        and "give both" in err
        and "--reference-rate: must be > 0" in err
    )


def _sumo_rl_params(case, **changed):
    """The worker's ``params`` for sumo-rl running ``case`` as ours does, with ``changed`` set."""
    import gymnasium as gym

    env = gym.make(case.env_id, **case.kwargs)
    sc = env.unwrapped.structure  # type: ignore[attr-defined]
    env.close()
    params = {
        "delta_time": sc.signals.delta_time,
        "yellow_time": sc.signals.yellow_time,
        "min_green": sc.signals.min_green,
        "begin": sc.begin,
        "end": sc.end,
        "signals": len(sc.controlled_signals),
        "sumo_options": {"time_to_teleport": -1},
    }
    return {**params, **changed}


def test_paired_rounds_decide_the_traffic_speed_targets(monkeypatch):
    # the best runs meet both targets; the paired rounds, with a faster reference, miss them
    refs = iter([1000.0, 2000.0, 1500.0, 900.0])  # the main run, then one per round

    timing_only_calls: list[bool] = []
    params = _sumo_rl_params(bt.SPEED_CASES[0])

    def fake_reference(ref, settings, log=print, *, timing_only=False):
        timing_only_calls.append(timing_only)
        best = next(refs)
        return {
            "name": ref.name,
            "available": True,
            "params": params,
            "steps_per_s": {"best": best, "cpu_best": best},
        }

    threads_of: list[tuple[int, int]] = []

    def fake_measure(env_id, kwargs, num_envs, settings, threads=1):
        threads_of.append((num_envs, threads))
        rate = 25_000.0 if num_envs == 1 else 600_000.0
        return {"best": rate, "cpu_best": rate}

    monkeypatch.setattr(bench, "run_reference", fake_reference)
    monkeypatch.setattr(bt, "measure_ours", fake_measure)
    settings = bench.Settings(
        seconds=0.01, repeats=2, warmup_s=0.0, batch_sizes=(1, 256), ppo=None, rounds=3
    )
    w = bt.speed_case(bt.SPEED_CASES[0], settings, log=lambda message: None, threads=2)
    assert [r["reference"] for r in w["rounds"]] == [2000.0, 1500.0, 900.0]
    assert threads_of == [(1, 2), (256, 2)] * 4 and w["threads"] == 2
    assert timing_only_calls == [False, True, True, True]
    assert w["ratio_b256"] == pytest.approx(600.0) and w["ratio_single"] == pytest.approx(25.0)
    assert w["paired"]["ratio_b256"] == pytest.approx(400.0)
    assert w["paired"]["ratio_single"] == pytest.approx(25_000.0 / 1500.0)
    assert w["reference"]["params_match"] is True
    assert w["targets_met"] == {"ratio_single": False, "ratio_b256": False}
    text = bt.format_speed({"single-intersection": w}, (1, 256))
    assert "ratio_b256 over 3 paired rounds: median 400.0 (300.0, 400.0, 666.7)" in text
    assert "target single-intersection ratio_b256 >= 500: 400.0 (paired median) (MISSED)" in text
    assert "single-intersection: our batched envs stepped on 2 threads" in text


def test_bench_threads_reach_the_batched_env(monkeypatch):
    seen = []
    monkeypatch.setattr(bench, "measure_vector", lambda env_id, kwargs, b, s: seen.append(kwargs))
    bt.measure_ours("lepton/TrafficSignal-v0", {"scenario": "sumo_rl_single"}, 16, None, 2)
    assert seen == [{"scenario": "sumo_rl_single", "threads": 2}]


def test_negative_rounds_are_refused(capsys):
    with pytest.raises(SystemExit):
        bt.main(["traffic", "--rounds", "-1"])
    assert "--rounds: must be >= 0" in capsys.readouterr().err
    # values that used to be replaced by the defaults without a word
    for option, value in (("--repeats", "0"), ("--seconds", "0"), ("--warmup", "-1")):
        with pytest.raises(SystemExit):
            bt.main(["traffic", option, value])
        assert f"{option}: must be" in capsys.readouterr().err


def test_an_unwritable_out_is_refused_before_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bt, "run", lambda *a: pytest.fail("ran before checking --out"))
    with pytest.raises(SystemExit):
        bt.main(["traffic", "--no-reference", "--out", str(tmp_path)])
    assert f"--out: {tmp_path} is a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bt.main(["traffic", "--threads", "0"])
    assert "--threads: must be >= 1, got 0" in capsys.readouterr().err


def test_core_ab_refuses_bad_arguments(capsys):
    ab = importlib.import_module("scripts.traffic_core_ab")
    with pytest.raises(SystemExit):
        ab.main(["--rounds", "-1"])
    assert "--rounds: must be >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ab.main(["--threads", "0"])
    assert "--threads: must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"--base: git cannot show envs/traffic/sim.py at 'nope'"):
        ab.main(["--base", "nope", "--scenario", "single"])


def _core_edited() -> bool:
    import subprocess

    done = subprocess.run(
        ["git", "diff", "--quiet", "HEAD", "--", "envs/traffic/sim.py"], cwd=ROOT, check=False
    )
    return done.returncode != 0


@pytest.mark.slow
@pytest.mark.skipif(_core_edited(), reason="envs/traffic/sim.py differs from HEAD's")
def test_core_ab_finds_the_committed_core_identical_to_itself(capsys):
    # the working tree's core against HEAD's: the same file
    ab = importlib.import_module("scripts.traffic_core_ab")
    argv = ["--base", "HEAD", "--scenario", "single", "--replicas", "2", "--decisions", "30"]
    assert ab.main([*argv, "--rounds", "1", "--batch", "4", "--seconds", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "single: identical (2 replicas x 30 decisions)" in out
    assert "speed-up over HEAD at B = 4: median" in out
    assert (
        ab.main([*argv, "--rounds", "1", "--batch", "4", "--seconds", "0.05", "--threads", "2"])
        == 0
    )
    assert "speed-up over HEAD at B = 4 on 2 threads (wall time): median" in capsys.readouterr().out


@pytest.mark.slow
def test_core_ab_finds_where_a_changed_core_departs(tmp_path):
    # the same core with vehicles counted as halting up to 0.2 m/s instead of 0.1 m/s
    ab = importlib.import_module("scripts.traffic_core_ab")
    from envs.traffic import sim as ours

    text = (ROOT / "envs" / "traffic" / "sim.py").read_text()
    assert text.count("\nHALT_SPEED = 0.1\n") == 1
    changed = ab.import_core(
        text.replace("\nHALT_SPEED = 0.1\n", "\nHALT_SPEED = 0.2\n"), tmp_path, "core_changed"
    )
    scenario = ab._scenarios()["single"]()
    assert ab.compare(ours, ours, scenario, 2, 30) is None
    where = ab.compare(changed, ours, scenario, 2, 30)
    assert where is not None and where.startswith("decision ")


def _fake_speed(monkeypatch, reference):
    """``speed_case`` with our rates fixed and sumo-rl's run replaced by ``reference``."""
    rates = {1: 25_000.0, 256: 600_000.0}
    monkeypatch.setattr(
        bt,
        "measure_ours",
        lambda env_id, kwargs, b, settings, threads=1: {"best": rates[b], "cpu_best": rates[b]},
    )
    monkeypatch.setattr(bench, "run_reference", lambda ref, settings, log=print, **kw: reference)


@pytest.mark.parametrize(
    ("reference", "settings_reference", "reason"),
    [
        ({"name": "sumo-rl", "available": False, "reason": "pip failed"}, True,
         "reference unavailable"),
        (None, False, "reference unavailable: --no-reference"),
    ],
)  # fmt: skip
def test_traffic_speed_targets_without_sumo_rl_are_listed_not_checked(
    monkeypatch, reference, settings_reference, reason
):
    _fake_speed(monkeypatch, reference)
    settings = bench.Settings(
        seconds=0.01, repeats=1, warmup_s=0.0, batch_sizes=(1, 256), ppo=None,
        reference=settings_reference,
    )  # fmt: skip
    w = bt.speed_case(bt.SPEED_CASES[0], settings, log=lambda message: None)
    assert w["targets_met"] == {"ratio_single": None, "ratio_b256": None}
    assert w["targets_met_cpu"] == {"ratio_single": None, "ratio_b256": None}
    for key, bound in (("ratio_single", 20.0), ("ratio_b256", 500.0)):
        check = w["target_checks"][key]
        assert check["bound"] == bound and check["value"] is None
        assert check["target_met"] is None and check["reason"] == reason
    report = {"speed": {"single-intersection": w}}
    summary = bench.targets_summary(bt.target_checks(report))
    assert summary["all_met"] is False and summary["not_checked"] == 2
    text = bt.format_speed({"single-intersection": w}, (1, 256))
    assert f"target single-intersection ratio_single >= 20: — (not checked: {reason})" in text
    assert f"target single-intersection ratio_b256 >= 500: — (not checked: {reason})" in text


def test_traffic_speed_targets_against_sumo_rl_on_other_parameters_are_not_checked(monkeypatch):
    # the ratios would meet both targets, but sumo-rl ran 10-s decisions and 2 signals
    params = _sumo_rl_params(bt.SPEED_CASES[0], delta_time=10.0, signals=2)
    reference = {
        "name": "sumo-rl",
        "available": True,
        "params": params,
        "steps_per_s": {"best": 100.0, "cpu_best": 100.0},
    }
    _fake_speed(monkeypatch, reference)
    settings = bench.Settings(seconds=0.01, repeats=1, warmup_s=0.0, batch_sizes=(1, 256), ppo=None)
    w = bt.speed_case(bt.SPEED_CASES[0], settings, log=lambda message: None)
    assert w["reference"]["params_match"] is False
    assert w["ratio_single"] == pytest.approx(250.0)
    reason = "parameters differ from the reference's: delta_time, signals"
    assert w["targets_met"] == {"ratio_single": None, "ratio_b256": None}
    assert w["targets_met_cpu"] == {"ratio_single": None, "ratio_b256": None}
    check = w["target_checks"]["ratio_single"]
    assert check["value"] == pytest.approx(250.0)
    assert check["target_met"] is None and check["reason"] == reason
    assert check["cpu_time_basis"]["target_met"] is None
    text = bt.format_speed({"single-intersection": w}, (1, 256))
    assert "single-intersection: sumo-rl params same as ours: NO: delta_time" in text
    assert f"target single-intersection ratio_single >= 20: 250.0 (not checked: {reason})" in text
    assert "(met)" not in text


def test_ttq_target_not_checked_says_why():
    reached = {"reached": True, "wall_s_to_threshold": 10.0, "cpu_s_to_threshold": 8.0,
               "wall_s": 10.0, "cpu_s": 8.0, "timesteps": 720}  # fmt: skip
    failed = {**reached, "reached": False, "wall_s_to_threshold": None}
    assert bt.ttq_unchecked_reason({"ratio": 6.0}, True) is None
    assert bt.ttq_unchecked_reason({"ratio": None, "ours": reached, "sumo": None}, False) == (
        "reference unavailable: --no-reference"
    )
    assert bt.ttq_unchecked_reason({"ratio": None, "ours": reached, "sumo": None}, True) == (
        "reference unavailable"
    )
    assert bt.ttq_unchecked_reason({"ratio": None, "ours": failed, "sumo": failed}, True) == (
        "neither side reached the threshold within the wall cap"
    )
    ttq_result = {
        "threshold_mode": "own",
        "thresholds": {"ours": 40.0, "sumo": None},
        "max_wall_s": 20.0,
        "target": bt.TTQ_TARGET,
        "ours": {**reached, "evals": []},
        "sumo": None,
        "ratio": None,
        "cpu_ratio": None,
        "bound": None,
        "per_timestep_ratio": None,
        "target_met": None,
        "reason": "reference unavailable",
    }
    text = bt.format_ttq(ttq_result)
    assert (
        "target ttq ratio (sumo-rl wall / ours) >= 5: — (not checked: reference unavailable)"
        in text
    )


def test_fidelity_targets_without_sumo_are_listed_not_checked(monkeypatch):
    unavailable = {"name": bt.SUMO_RL_NAME, "available": False, "reason": "pip failed"}
    monkeypatch.setattr(bt, "run_worker", lambda *args, **kwargs: unavailable)
    settings = bench.Settings(ppo=None)
    out = bt.fidelity(settings, (0,), ("grid4x4",), log=lambda message: None)
    assert out["rows"] == [] and out["all_targets_met"] is None
    listed = {(c["scenario"], c["controller"], c["metric"]) for c in out["target_checks"]}
    assert listed == {(s, c, m) for (s, c), b in bt.FIDELITY_TARGETS.items() for m in b}
    assert all(c["target_met"] is None for c in out["target_checks"])
    assert all(c["reason"] == "reference unavailable" for c in out["target_checks"])
    text = bt.format_fidelity(out)
    assert "fidelity: SUMO side unavailable: pip failed" in text
    assert (
        "target grid4x4 fixed_time mean_travel_time ours / SUMO within 1 ± 0.1: — "
        "(not checked: reference unavailable)" in text
    )
    report = {"metadata": {}, "fidelity": out}
    summary = bench.targets_summary(bt.target_checks(report))
    assert summary == {"total": 6, "met": 0, "missed": 0, "not_checked": 6, "all_met": False}
    assert bt.format_report(report).endswith(
        "targets: NOT all met: 0 met, 0 MISSED, 6 not checked, of 6"
    )


def test_fidelity_targets_are_checked_on_their_rows():
    config = {"runs": [{"scenario": "grid4x4", "controller": "max_pressure", "driver": "sumo_rl"}]}
    row = bt.fidelity_row("grid4x4", "max_pressure", _means(130.0, 900), _means(100.0, 1000))
    (check,) = bt.fidelity_checks(config, [row])
    assert check["metric"] == "mean_travel_time" and check["ratio"] == pytest.approx(1.3)
    assert check["target_met"] is False and check["reason"] is None
    (missing,) = bt.fidelity_checks(config, [])
    assert missing["target_met"] is None and missing["reason"] == "not run"
