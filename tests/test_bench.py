"""Smoke tests of ``scripts.bench``: tiny budgets, schema and sanity only (speed is never asserted)."""

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
bench = importlib.import_module("scripts.bench")

TINY = bench.Settings(
    seconds=0.02,
    repeats=1,
    warmup_s=0.01,
    episodes=4,
    exact_cases=2,
    reference=False,
    ppo=bench.PPOSettings(n_envs=2, n_steps=16, batch_size=16, n_epochs=1, total_timesteps=64),
)


def _positive(x):
    return isinstance(x, float) and np.isfinite(x) and x > 0


def test_measurements_are_positive():
    single = bench.measure_single("lepton/InventoryORGym-v0", {}, TINY)
    assert _positive(single["best"]) and single["median"] <= single["best"]
    assert single["adapter"] == "InventoryEnv"
    batch = bench.measure_vector("lepton/InventoryORGym-v0", {}, 4, TINY)
    assert _positive(batch["best"]) and len(batch["runs"]) == TINY.repeats
    assert batch["adapter"] == "InventoryVectorEnv"
    assert bench.episode_length("lepton/InventoryORGym-v0", {}, seed=0) == 30


def test_run_family_schema_without_reference(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["inventory", "--no-reference", "--workload", "InventoryORGym-v0", "--out", str(out)]
    argv += ["--seconds", "0.02", "--repeats", "1", "--warmup", "0.01"]
    argv += ["--ppo-envs", "2", "--ppo-n-steps", "16", "--ppo-batch-size", "16"]
    argv += ["--ppo-epochs", "1", "--ppo-timesteps", "64"]
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["family"] == "inventory"
    meta = report["metadata"]
    for key in ("git", "python", "numpy", "cpu_count", "date", "seconds_per_measurement"):
        assert key in meta
    assert meta["seconds_per_measurement"] == 0.02
    assert list(report["workloads"]) == ["InventoryORGym-v0"]
    w = report["workloads"]["InventoryORGym-v0"]
    assert set(w["ours_steps_per_s"]) == {"1", "16", "256"}
    assert all(_positive(v) for v in w["ours_steps_per_s"].values())
    assert w["reference_steps_per_s"] is None and w["reference"] is None
    for key in ("ratio_single", "ratio_b16", "ratio_b256"):
        assert key in w and w[key] is None
    assert _positive(w["ppo_overhead_ratio"])
    assert _positive(w["ppo"]["env_frames_per_s"]["best"])
    assert _positive(w["ppo"]["zero_cost_frames_per_s"]["best"])
    assert w["ppo"]["episode_length"] == 30
    assert w["targets_met"]["ratio_b256"] is None and w["targets"] == bench.TARGETS
    recsim = next(x for x in bench.WORKLOADS["recsys"] if x.reference is bench.RECSIM)
    assert recsim.targets["ratio_b256"] == 300.0 and recsim.targets["ratio_single"] == 10.0
    table = capsys.readouterr().out
    assert "| workload | ours B=1 | ours B=16 | ours B=256 | reference |" in table
    assert "ppo_overhead_ratio" in table and "InventoryORGym-v0" in table


def test_zero_cost_vec_env_follows_sb3_semantics():
    from stable_baselines3.common.vec_env import VecEnv

    from envs.core.sb3 import make_sb3_vec_env

    real = make_sb3_vec_env("lepton/InventoryORGym-v0", 3)
    zero = bench.ZeroCostVecEnv(real.observation_space, real.action_space, 3, episode_length=4)
    assert isinstance(zero, VecEnv) and zero.render_mode is None
    obs = zero.reset()
    assert isinstance(obs, np.ndarray)
    assert len(obs) == 3 and obs.shape[1:] == real.observation_space.shape
    assert obs.dtype == real.observation_space.dtype
    actions = np.stack([real.action_space.sample() for _ in range(3)])
    for t in range(1, 9):
        zero.step_async(actions)
        obs, rewards, dones, infos = zero.step_wait()
        assert rewards.shape == (3,) and not rewards.any()
        assert dones.all() == (t % 4 == 0)
        assert ("terminal_observation" in infos[0]) == (t % 4 == 0)
    real.close()


def test_reference_unavailable_is_reported_not_raised(tmp_path):
    settings = bench.Settings(reference_python=str(tmp_path / "missing" / "python"))
    result = bench.run_reference(bench.ORGYM, settings, log=lambda message: None)
    assert result["available"] is False
    assert "does not exist" in result["reason"]


def test_call_worker_reports_failures():
    # steploop.py as a script prints no JSON line
    result = bench.call_worker(Path(sys.executable), "steploop.py", {"mode": "info"}, 60)
    assert result["available"] is False
    assert result["reason"].startswith("worker exited with 0")
    result = bench.call_worker(Path(sys.executable), "missing_worker.py", {}, 60)
    assert result["available"] is False and "worker exited with 2" in result["reason"]
    # a worker that prints nothing: the reason names the interpreter and says so
    result = bench.call_worker(Path("/bin/false"), "orgym_worker.py", {}, 60)
    assert result["available"] is False
    assert "/bin/false" in result["reason"] and result["reason"].endswith("no output")


def test_orgym_parameters_match_our_preset():
    import gymnasium as gym

    params = _orgym_params()
    env = gym.make("lepton/InventoryORGym-v0")
    assert bench.check_orgym_params(env, params) == []
    wrong = bench.check_orgym_params(env, {**params, "L": [3, 5, 9], "alpha": 1.0})
    assert len(wrong) == 2 and wrong[0].startswith("L / lead_times")
    env.close()


def test_our_side_of_the_faithfulness_check():
    workload = bench.WORKLOADS["inventory"][0]
    policy = bench.ORGYM.policies[0]
    stats = bench.our_policy_returns(workload, policy, episodes=4, seed=1)
    assert stats["episodes"] == 4 and np.isfinite(stats["mean"]) and stats["sem"] >= 0
    (ours_kwargs, ref_kwargs), *_ = bench.orgym_exact_cases(2, seed=0)
    assert ref_kwargs["dist"] == 5 and len(ref_kwargs["user_D"]) == 30
    assert ours_kwargs["scenario"]["demand"]["series"] == ref_kwargs["user_D"]
    assert np.isfinite(bench.our_episode_return(workload, ours_kwargs, policy))
    fake = {
        "policies": [{"name": policy.name, "episodes": 4, "mean": stats["mean"], "sem": 1.0}],
        "exact": [],
    }
    report = bench.faithfulness(workload, fake, TINY)
    assert report["agree"] and report["policies"][0]["z"] == pytest.approx(0.0, abs=1e-9)


def test_unknown_family_and_workload_are_rejected():
    with pytest.raises(ValueError, match="family"):
        bench.run_family("nope", TINY)
    with pytest.raises(ValueError, match="workload"):
        bench.run_family("inventory", TINY, workloads=["Nope-v0"])


def test_worker_base_stock_rule_matches_ours():
    from types import SimpleNamespace

    worker = importlib.import_module("scripts.bench_ref.orgym_worker")
    n = 2
    orgym = SimpleNamespace(
        period=n,
        I=np.array([[0, 0, 0], [0, 0, 0], [30, 50, 70]], dtype=float),
        T=np.array([[0, 0, 0], [0, 0, 0], [40, 10, 100]], dtype=float),
        B=np.array([[0, 0, 0, 0], [5, 3, 0, 2], [0, 0, 0, 0]], dtype=float),
        supply_capacity=np.array([100, 90, 80]),
    )
    theirs = worker.base_stock_orders(orgym, [100, 220, 440])
    pipeline = np.zeros((1, 3, 11))
    pipeline[0, :, 4] = [40, 10, 100]
    snapshot = SimpleNamespace(
        on_hand=np.array([[30.0, 50.0, 70.0]]),
        pipeline=pipeline,
        owed=np.array([[5.0, 3.0, 0.0, 2.0]]),
        capacities=np.array([[100.0, 90.0, 80.0]]),
    )
    policy = bench.Policy("bs", "base_stock", (100.0, 220.0, 440.0))
    ours = bench.inventory_policy_actions(None, snapshot, policy)
    np.testing.assert_allclose(theirs, [35, 70, 80])
    np.testing.assert_allclose(ours[0], theirs)


def test_report_formats_reference_and_faithfulness_rows():
    settings = bench.Settings(seconds=0.02, repeats=1, warmup_s=0.01, reference=False, ppo=None)
    workload = bench.WORKLOADS["inventory"][0]
    result = bench.run_workload(workload, settings, log=lambda message: None)
    result["reference"] = {
        "name": "OR-Gym InvManagement-v0",
        "available": True,
        "api": "gym",
        "versions": {"or-gym": "0.5.0", "gym": "0.26.2", "numpy": "1.26.4"},
        "params_match": False,
        "param_mismatches": ["L / lead_times: reference [3, 5, 9], ours (3, 5, 10)"],
    }
    stats = {"episodes": 4, "mean": 1.0, "sem": 0.1}
    result["faithfulness"] = {
        "agree": False,
        "threshold_z": 3.0,
        "policies": [{"policy": "p", "ours": stats, "reference": stats, "z": 0.0, "agree": True}],
        "exact": [{"policy": "p", "cases": 2, "max_abs_difference": 1.5, "agree": False}],
    }
    report = {
        "settings": {"batch_sizes": list(settings.batch_sizes)},
        "metadata": bench.metadata(settings),
        "workloads": {workload.name: result},
    }
    text = bench.format_report(report)
    assert "same parameters: NO: L / lead_times" in text
    assert "DIFFERENT" in text and "WARNING" in text
    assert "per CPU-second" in text


@pytest.mark.parametrize("script", ["bench.py", "bench_traffic.py", "bench_floor.py"])
def test_scripts_run_as_files(script, tmp_path):
    # run as ``python scripts/<file>``, the scripts folder comes first on sys.path: no module
    # there may take the name of one of the project's packages
    import subprocess

    shadowing = {p.stem for p in (ROOT / "scripts").glob("*.py")} & {"envs", "agents", "conf"}
    assert not shadowing
    argv = [sys.executable, str(ROOT / "scripts" / script), "--help"]
    if script == "bench.py":
        argv = argv[:2] + ["inventory", "--no-reference", "--no-ppo", "--workload"]
        argv += ["InventoryORGym-v0", "--seconds", "0.02", "--repeats", "1", "--warmup", "0.01"]
        argv += ["--episodes", "2", "--out", str(tmp_path / "bench.json")]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def _tiny_recsim(rounds: int) -> tuple[Any, Any]:
    """Tiny budgets on RecSimIE-v0 at B = 1 and 4, with a ``ratio_b4 >= 1`` target.

    Its reference finds the parameters of any run the same as ours.
    """
    import dataclasses

    settings = bench.Settings(
        seconds=0.02, repeats=1, warmup_s=0.01, batch_sizes=(1, 4), ppo=None, rounds=rounds
    )
    same = dataclasses.replace(bench.RECSIM, check_params=lambda env, params: [])
    workload = bench.Workload(
        "RecSimIE-v0", "lepton/RecSimIE-v0", reference=same, targets={"ratio_b4": 1.0}
    )
    return settings, workload


def test_paired_rounds_set_the_ratio_their_target_is_checked_against(monkeypatch):
    rates = iter([1000.0, 4000.0, 2000.0, 3000.0])  # main run, then one per round

    def fake_reference(ref, settings, log=print, *, timing_only=False):
        best = next(rates)
        return {
            "name": ref.name,
            "available": True,
            "steps_per_s": {"best": best, "cpu_best": best},
        }

    monkeypatch.setattr(bench, "run_reference", fake_reference)
    settings, workload = _tiny_recsim(rounds=3)
    result = bench.run_workload(workload, settings, log=lambda message: None)
    rounds = result["rounds"]
    assert [r["reference"] for r in rounds] == [4000.0, 2000.0, 3000.0]
    for r in rounds:
        assert r["ratios"]["ratio_b4"] == pytest.approx(r["ours"]["4"] / r["reference"])
    expected = np.median([r["ratios"]["ratio_b4"] for r in rounds])
    assert result["paired"]["ratio_b4"] == pytest.approx(expected)
    # the target reads the paired median, not the ratio of the best runs
    assert result["ratio_b4"] == pytest.approx(result["ours_steps_per_s"]["4"] / 1000.0)
    assert result["targets_met"]["ratio_b4"] == bool(expected >= 1.0)
    report = {
        "settings": {"batch_sizes": [1, 4]},
        "metadata": bench.metadata(settings),
        "workloads": {workload.name: result},
    }
    assert "(paired median)" in bench.format_report(report)


def test_failed_paired_rounds_leave_the_best_run_ratio_to_the_target(monkeypatch):
    calls = iter([True, False, False])  # the main run works, every round's reference fails

    def fake_reference(ref, settings, log=print, *, timing_only=False):
        if next(calls):
            return {
                "name": ref.name,
                "available": True,
                "steps_per_s": {"best": 1.0, "cpu_best": 1.0},
            }
        return {"name": ref.name, "available": False, "reason": "worker failed"}

    monkeypatch.setattr(bench, "run_reference", fake_reference)
    settings, workload = _tiny_recsim(rounds=2)
    result = bench.run_workload(workload, settings, log=lambda message: None)
    assert result["rounds"] == [] and result["paired"] == {}
    assert result["targets_met"]["ratio_b4"] is True  # steps/s over 1.0


def _tiny_ops_argv(out: Path) -> list[str]:
    argv = ["ops", "--workload", "Maintenance-v0", "--no-reference", "--no-ppo", "--out", str(out)]
    return argv + ["--seconds", "0.02", "--repeats", "1", "--warmup", "0.01"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--seconds", "0"),
        ("--seconds", "-1"),
        ("--repeats", "0"),
        ("--warmup", "-0.5"),
        ("--episodes", "1"),
        ("--seed", "-1"),
        ("--ppo-batch-size", "1"),
        ("--ppo-timesteps", "0"),
        ("--workload", "Nope-v0"),
        ("--threads", "0"),
        ("--threads", "2"),  # the ops envs take no threads
    ],
)
def test_bad_option_values_are_refused_naming_the_option(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main([*_tiny_ops_argv(tmp_path / "bench.json"), option, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {option}: " in err and ("must be" in err or "allowed values" in err)
    assert not (tmp_path / "bench.json").exists()


def test_an_unwritable_out_is_refused_before_the_run(tmp_path, monkeypatch, capsys):
    def never(*args, **kwargs):
        raise AssertionError("the bench ran before --out was checked")

    monkeypatch.setattr(bench, "run_family", never)
    (tmp_path / "a_file").write_text("")
    for out in (tmp_path, tmp_path / "a_file" / "bench.json"):
        argv = _tiny_ops_argv(out)
        with pytest.raises(SystemExit) as exc:
            bench.main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "error: --out: " in err and str(out) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no probe left behind


def test_metadata_records_the_command_quoted_and_the_machine(tmp_path):
    import shlex

    out = tmp_path / "bench.json"
    argv = _tiny_ops_argv(out)
    argv[argv.index("Maintenance-v0")] = "Autoscale-v0 (bursty)"
    assert bench.main(argv) == 0
    meta = json.loads(out.read_text())["metadata"]
    assert shlex.split(meta["command"])[1:] == argv
    assert "cpu_model" in meta and meta["cpu_count"] >= 1


def _fake_pip(monkeypatch, calls, delay=0.0):
    """Replace the venv and pip commands of ``reference_python`` by a recorder."""
    import subprocess
    import time

    def run(command, **kwargs):
        calls.append(command)
        if "venv" in command:
            time.sleep(delay)
            python = Path(command[-1]) / "bin" / "python"
            python.parent.mkdir(parents=True, exist_ok=True)
            python.write_text("")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(bench.subprocess, "run", run)


def _reference(install):
    return bench.Reference("ref", "Ref-v0", "ref", install, "w.py", lambda env, p: [])


def test_reference_venv_is_reused_only_with_the_same_pins(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "VENVS", tmp_path)
    calls: list[list[str]] = []
    _fake_pip(monkeypatch, calls)
    settings, log = bench.Settings(), lambda message: None
    (tmp_path / "ref" / "bin").mkdir(parents=True)
    (tmp_path / "ref" / "bin" / "python").write_text("")
    (tmp_path / "ref" / ".ready").write_text(json.dumps({"install": [["pkg==1.0"]]}))
    python = bench.reference_python(_reference((("pkg==1.0",),)), settings, log)
    assert python == tmp_path / "ref" / "bin" / "python" and calls == []
    bench.reference_python(_reference((("pkg==2.0",),)), settings, log)  # pins changed
    assert calls[0][-3:] == ["venv", "--clear", str(tmp_path / "ref")]
    assert calls[1][-1] == "pkg==2.0" and len(calls) == 2
    ready = json.loads((tmp_path / "ref" / ".ready").read_text())
    assert ready == {"install": [["pkg==2.0"]]}
    bench.reference_python(_reference((("pkg==2.0",),)), settings, log)
    assert len(calls) == 2


def test_benches_started_together_build_the_reference_venv_once(tmp_path, monkeypatch):
    import threading

    monkeypatch.setattr(bench, "VENVS", tmp_path)
    calls: list[list[str]] = []
    _fake_pip(monkeypatch, calls, delay=0.3)
    ref = _reference((("pkg==1.0",),))
    found = []

    def first_use():
        found.append(bench.reference_python(ref, bench.Settings(), lambda message: None))

    threads = [threading.Thread(target=first_use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 2 and found[0] == found[1]
    assert sum("venv" in c for c in calls) == 1 and len(calls) == 2


def _orgym_params(**changed):
    """OR-Gym ``InvManagement-v0``'s parameters when it runs our ``orgym`` preset."""
    params = {
        "periods": 30,
        "I0": [100, 100, 200],
        "p": 2,
        "r": [1.5, 1.0, 0.75, 0.5],
        "k": [0.1, 0.075, 0.05, 0.025],
        "h": [0.15, 0.1, 0.05],
        "c": [100, 90, 80],
        "L": [3, 5, 10],
        "backlog": True,
        "dist": 1,
        "dist_param": {"mu": 20},
        "alpha": 0.97,
    }
    return {**params, **changed}


def _inventory_with_reference(monkeypatch, reference):
    """``InventoryORGym-v0`` at B = 1 and 4 (``ratio_b4 >= 1``) with OR-Gym's run faked."""
    monkeypatch.setattr(bench, "run_reference", lambda ref, settings, log=print, **kw: reference)
    settings = bench.Settings(seconds=0.02, repeats=1, warmup_s=0.01, batch_sizes=(1, 4), ppo=None)
    workload = bench.Workload(
        "InventoryORGym-v0",
        "lepton/InventoryORGym-v0",
        reference=bench.ORGYM,
        targets={"ratio_b4": 1.0, "ppo_overhead_ratio": 0.8},
    )
    result = bench.run_workload(workload, settings, log=lambda message: None)
    report = {
        "settings": {"batch_sizes": [1, 4]},
        "metadata": bench.metadata(settings),
        "workloads": {workload.name: result},
    }
    return result, report


def _available(params):
    return {
        "name": bench.ORGYM.name,
        "available": True,
        "api": "gym",
        "versions": {"or-gym": "0.5.0"},
        "params": params,
        "steps_per_s": {"best": 1.0, "cpu_best": 1.0},
    }


def test_targets_against_a_reference_on_the_same_parameters_are_checked(monkeypatch):
    result, report = _inventory_with_reference(monkeypatch, _available(_orgym_params()))
    assert result["reference"]["params_match"] is True
    check = result["target_checks"]["ratio_b4"]
    assert check["target_met"] is True and check["reason"] is None  # steps/s over 1.0
    assert check["basis"] == "best runs" and check["value"] == result["ratio_b4"]
    ppo = result["target_checks"]["ppo_overhead_ratio"]
    assert ppo["target_met"] is None and ppo["reason"] == "not measured: --no-ppo"
    text = bench.format_report(report)
    assert f"target InventoryORGym-v0 ratio_b4 >= 1: {check['value']:.2f} (met)" in text
    assert (
        "target InventoryORGym-v0 ppo_overhead_ratio >= 0.8: — (not checked: not measured: "
        "--no-ppo)" in text
    )


def test_a_reference_on_other_parameters_meets_no_target(monkeypatch):
    params = _orgym_params(L=[3, 5, 9], alpha=1.0)
    result, report = _inventory_with_reference(monkeypatch, _available(params))
    assert result["reference"]["params_match"] is False
    assert result["ratio_b4"] > 1.0  # comparable, it would be met
    reason = "parameters differ from the reference's: L / lead_times, alpha / discount"
    check = result["target_checks"]["ratio_b4"]
    assert check["target_met"] is None and check["reason"] == reason
    assert check["value"] == result["ratio_b4"]
    assert result["targets_met"]["ratio_b4"] is None
    text = bench.format_report(report)
    assert "same parameters: NO: L / lead_times" in text
    assert (
        f"target InventoryORGym-v0 ratio_b4 >= 1: {check['value']:.2f} (not checked: {reason})"
        in text
    )
    assert "(met)" not in text
    assert text.splitlines()[-1] == "targets: NOT all met: 0 met, 0 MISSED, 2 not checked, of 2"


def test_targets_of_an_unavailable_reference_are_listed_not_checked(monkeypatch):
    failed = {"name": bench.ORGYM.name, "available": False, "reason": "`pip install` exited with 1"}
    result, report = _inventory_with_reference(monkeypatch, failed)
    check = result["target_checks"]["ratio_b4"]
    assert check == {
        "bound": 1.0,
        "value": None,
        "basis": "best runs",
        "target_met": None,
        "reason": "reference unavailable",
    }
    text = bench.format_report(report)
    assert "reference: OR-Gym InvManagement-v0 unavailable: `pip install` exited with 1" in text
    line = "target InventoryORGym-v0 ratio_b4 >= 1: — (not checked: reference unavailable)"
    assert line in text


def test_no_reference_lists_every_target_not_checked_in_text_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["inventory", "--no-reference", "--no-ppo", "--workload", "InventoryORGym-v0"]
    argv += ["--seconds", "0.02", "--repeats", "1", "--warmup", "0.01", "--out", str(out)]
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    checks = report["workloads"]["InventoryORGym-v0"]["target_checks"]
    assert set(checks) == set(bench.TARGETS)
    assert checks["ratio_b256"]["target_met"] is None
    assert checks["ratio_b256"]["reason"] == "reference unavailable: --no-reference"
    assert checks["ppo_overhead_ratio"]["target_met"] is None
    assert report["targets_summary"] == {
        "total": 2,
        "met": 0,
        "missed": 0,
        "not_checked": 2,
        "all_met": False,
    }
    text = capsys.readouterr().out
    assert (
        "target InventoryORGym-v0 ratio_b256 >= 100: — (not checked: reference unavailable: "
        "--no-reference)" in text
    )
    assert "targets: NOT all met: 0 met, 0 MISSED, 2 not checked, of 2" in text


def test_targets_summary_claims_all_met_only_when_every_target_was_met():
    met, missed, unchecked = ({"target_met": v} for v in (True, False, None))
    summary = bench.targets_summary([met, met])
    assert summary["all_met"] is True
    assert bench.format_targets_summary(summary) == "targets: all 2 met"
    assert bench.targets_summary([met, unchecked])["all_met"] is False
    assert bench.targets_summary([met, missed])["all_met"] is False
    assert bench.targets_summary([]) == {
        "total": 0,
        "met": 0,
        "missed": 0,
        "not_checked": 0,
        "all_met": None,
    }
    assert bench.format_targets_summary(bench.targets_summary([])) == "targets: none"


def test_a_workload_without_a_reference_says_so_for_its_ratio_targets():
    checks = bench.check_targets(
        {"ratio_b256": 100.0, "ppo_overhead_ratio": 0.8},
        {"ratio_b256": None, "ppo_overhead_ratio": 0.9},
        incomparable="no reference implementation",
    )
    assert checks["ratio_b256"]["target_met"] is None
    assert checks["ratio_b256"]["reason"] == "no reference implementation"
    assert checks["ppo_overhead_ratio"]["target_met"] is True
    assert checks["ppo_overhead_ratio"]["reason"] is None
    assert bench.reference_problem({"available": True, "params_match": True}) is None
    assert bench.reference_problem({"available": True, "params_match": False}) == (
        "parameters not compared with the reference's"
    )


def test_recsim_faithfulness_draws_a_corpus_per_episode():
    import gymnasium as gym

    # RecSim samples fresh documents every step: our side must not stand on one corpus
    venv = gym.make_vec("lepton/RecSimIE-v0", num_envs=16, **bench.RECSIM.policy_kwargs)
    venv.reset(seed=1)
    sim = venv.unwrapped.runner.sim
    assert len({sc.corpus_seed for sc in sim.scenarios}) > 8
    assert all(sc.name == "recsim_ie" for sc in sim.scenarios)
    venv.close()


def test_recsys_batched_envs_run_on_the_threads_asked_for(tmp_path, monkeypatch):
    """``--threads 2`` reaches the batched envs (B > 1) and the report; the single env has none."""
    seen = []
    make_vec = bench.gym.make_vec

    def spy(env_id, num_envs, **kwargs):
        seen.append((num_envs, kwargs.get("threads")))
        return make_vec(env_id, num_envs=num_envs, **kwargs)

    monkeypatch.setattr(bench.gym, "make_vec", spy)
    out = tmp_path / "bench.json"
    argv = ["recsys", "--workload", "RecLongTerm-v0", "--no-reference", "--no-ppo"]
    argv += ["--threads", "2", "--out", str(out), "--seconds", "0.02", "--repeats", "1"]
    assert bench.main([*argv, "--warmup", "0.01"]) == 0
    report = json.loads(out.read_text())
    workload = report["workloads"]["RecLongTerm-v0"]
    assert workload["threads"] == 2
    assert all(workload["ours_steps_per_s"][b] > 0 for b in ("1", "16", "256"))
    assert seen == [(16, 2), (256, 2)]
