"""Sweeps at scale: job folders, status records, skipping, failure isolation, resume, reports."""

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from agents import train
from agents.checkpoints import latest_checkpoint
from agents.jobs import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    RUNNING,
    JobStatus,
    read_status,
    run_job,
    write_status,
)
from agents.stats import iqm, mean, performance_profile, stratified_bootstrap
from agents.sweep_report import write_report
from agents.sweeps import SweepProgress, count_jobs, jobs, progress_line, state_counts
from conf.resolvers import RUN_ONLY_KEYS, job_name, safe_name
from scripts.report import main as report_main

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "SDL_VIDEODRIVER": "dummy", "MPLBACKEND": "Agg", "HYDRA_FULL_ERROR": "1"}
TINY_CLI = [
    "n_envs=4",
    "eval.episodes=4",
    "eval.curve_episodes=4",
    "eval.fit_episodes=4",
    "baselines=[base_stock]",
    "progress_bar=false",
    "tensorboard=false",
]


# --- job folders -----------------------------------------------------------------------------


def test_job_name_depends_only_on_what_the_job_computes():
    base = job_name("inventory", "ppo", 3, ["env=inventory", "agent=ppo", "seed=3"])
    assert base == "inventory__ppo__3"
    a = job_name("inventory", "ppo", 3, ["seed=3", "total_timesteps=1000", "agent.gamma=0.9"])
    b = job_name("inventory", "ppo", 3, ["agent.gamma=0.9", "force=true", "total_timesteps=1000"])
    assert a == b and a.startswith("inventory__ppo__3__") and len(a.split("__")[-1]) == 8
    assert a != job_name("inventory", "ppo", 3, ["total_timesteps=2000", "agent.gamma=0.9"])
    # runtime switches never change the folder
    assert job_name("e", "a", 0, ["resume=true", "progress_bar=false", "sweep_dir=x"]) == "e__a__0"


def test_job_name_ignores_every_run_only_override_and_keys_below_them():
    base = ["seed=3", "total_timesteps=1000"]
    name = job_name("inventory", "ppo", 3, base)
    run_only = [
        "tensorboard=true",
        "torch_threads=2",
        "checkpoint_freq=0",
        "eval.batch_size=4",
        "+tensorboard=true",
        "++eval.batch_size=4",
        "~checkpoint_freq",
        "eval.batch_size.extra=1",  # a key covers its children
    ]
    for override in run_only:
        assert job_name("inventory", "ppo", 3, [*base, override]) == name, override
    assert job_name("inventory", "ppo", 3, [*run_only, *base]) == name
    # what the job computes still names another folder
    for override in ("eval.episodes=4", "eval.batch=4", "eval={batch_size:4}", "n_envs=2"):
        assert job_name("inventory", "ppo", 3, [*base, override]) != name, override
    # one set: a saved run that differs only in these keys is the same run
    from agents.runs import RUN_ONLY_KEYS as RUN_ONLY_KEYS_OF_RUNS

    assert RUN_ONLY_KEYS_OF_RUNS is RUN_ONLY_KEYS


def test_job_name_keeps_a_name_with_a_slash_in_one_folder():
    overrides = ["agent=pretrained/inventory", "seed=0"]
    name = job_name("inventory", "pretrained/inventory", 0, overrides)
    assert name == "inventory__pretrained+inventory__0"
    assert job_name("ops/x", "a\\b", 1, ["n_envs=2"]).startswith("ops+x__a+b__1__")
    # names without a separator keep their folders
    assert safe_name("ppo_tuned_inventory") == "ppo_tuned_inventory"
    assert safe_name("pretrained/traffic-single") == "pretrained+traffic-single"


def test_sweep_config_maps_jobs_to_stable_folders():
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        overrides = [
            "env=inventory_lost_sales",
            "agent=a2c",
            "seed=4",
            "sweep_dir=/s",
            "force=true",
        ]
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
        assert cfg.hydra.sweep.dir == "/s"
        assert cfg.hydra.sweep.subdir == "inventory_lost_sales__a2c__4"
        cfg = compose("config", overrides=[*overrides, "n_envs=2"], return_hydra_config=True)
        assert cfg.hydra.sweep.subdir.startswith("inventory_lost_sales__a2c__4__")
        # the same sweep launched again with runtime switches finds the same folders
        again = [*overrides, "tensorboard=true", "torch_threads=2", "eval.batch_size=4"]
        cfg = compose("config", overrides=again, return_hydra_config=True)
        assert cfg.hydra.sweep.subdir == "inventory_lost_sales__a2c__4"
        pretrained = ["env=inventory", "agent=pretrained/inventory", "seed=1", "sweep_dir=/s"]
        cfg = compose("config", overrides=pretrained, return_hydra_config=True)
        assert cfg.agent.name == "pretrained/inventory"
        assert cfg.hydra.sweep.subdir == "inventory__pretrained+inventory__1"
    GlobalHydra.instance().clear()


def test_count_jobs_of_a_sweep():
    assert count_jobs(["env=a,b", "agent=ppo,a2c", "seed=range(3)", "n_envs=4"]) == 12
    assert count_jobs(["seed=0"]) == 1


def _launched(overrides):
    """The jobs Hydra's basic sweeper builds from ``overrides``."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def test_count_jobs_lets_the_command_line_shadow_a_sweeper_param():
    # an experiment's hydra.sweeper.params first, then the command line (as the sweeper reads them)
    overrides = ["env=a,b,c,d", "seed=range(5)", "experiment=benchmark", "seed=0", "n_envs=0"]
    assert count_jobs(overrides) == len(_launched(overrides)) == 4
    overrides = ["seed=range(5)", "env=a,b", "seed=1,2"]
    assert count_jobs(overrides) == len(_launched(overrides)) == 4


def _compose_hydra(overrides):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="conf", version_base="1.3"):
            return compose("config", overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def test_sweep_progress_records_the_jobs_hydra_launches(tmp_path):
    sweep = tmp_path / "bm"
    cfg = _compose_hydra(["experiment=benchmark", "seed=0", "n_envs=0", f"sweep_dir={sweep}"])
    SweepProgress().on_multirun_start(cfg)
    data = json.loads((sweep / "sweep.json").read_text())
    assert data["total"] == 4  # the experiment's 4 envs, its 5 seeds shadowed by seed=0
    assert data["overrides"][:2] == [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    assert "0/4 done: 0 finished, 0 failed, 0 running, 4 pending" in progress_line(sweep)
    cfg = _compose_hydra(["experiment=benchmark", f"sweep_dir={sweep}"])
    SweepProgress().on_multirun_start(cfg)
    assert json.loads((sweep / "sweep.json").read_text())["total"] == 20
    # another sweeper (e.g. Optuna) reads its params differently: unknown, not a wrong count
    cfg.hydra.sweeper._target_ = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    SweepProgress().on_multirun_start(cfg)
    assert json.loads((sweep / "sweep.json").read_text())["total"] is None


@pytest.mark.slow
def test_benchmark_sweep_with_a_shadowed_seed_ends_complete(tmp_path):
    sweep = tmp_path / "bm"
    cmd = [sys.executable, "-m", "scripts.train", "-m", "experiment=benchmark", "seed=0"]
    cmd += ["n_envs=0", f"sweep_dir={sweep}"]  # n_envs=0: every job fails at once
    subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert json.loads((sweep / "sweep.json").read_text())["total"] == 4
    assert "4/4 done: 0 finished, 4 failed, 0 running, 0 pending" in progress_line(sweep)


def test_sweep_of_a_pretrained_agent_is_tracked_and_reported(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "scripts.train", "-m", "agent=pretrained/inventory", "seed=0,1"]
    cmd += ["total_timesteps=128", "agent.n_steps=32", "agent.batch_size=64"]
    cmd += ["eval.eval_freq=128", "checkpoint_freq=0", *TINY_CLI, f"sweep_dir={sweep}"]
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    folders = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert [f.split("__")[:3] for f in folders] == [
        ["inventory", "pretrained+inventory", "0"],
        ["inventory", "pretrained+inventory", "1"],
    ]
    assert "2/2 done: 2 finished, 0 failed, 0 running, 0 pending" in done.stderr + done.stdout
    result = write_report(sweep, reps=100, plots=False)
    agents = [r for r in result["rows"] if r.kind == "agent"]
    assert [(r.policy, r.seeds) for r in agents] == [("pretrained/inventory", 2)]


# --- status records and skipping ---------------------------------------------------------------


def test_run_job_records_finished_and_skips_it_unless_forced(make_cfg):
    cfg = make_cfg("config")
    folder = Path(cfg.run_dir)
    calls = []

    def task(c):
        calls.append(1)
        (folder / "metrics.json").write_text(json.dumps({"ppo": {"return": {"mean": 1.0}}}))
        return {"done": True}

    assert run_job(cfg, task) == {"done": True}
    status = read_status(folder)
    assert status is not None and status.state == FINISHED and status.attempt == 1
    assert status.job["env"] == "inventory" and status.job["agent"] == "ppo"
    assert run_job(cfg, task) == {"ppo": {"return": {"mean": 1.0}}}  # skipped: saved metrics
    assert len(calls) == 1
    cfg.force = True
    run_job(cfg, task)
    assert len(calls) == 2
    assert read_status(folder).attempt == 2


def test_run_job_records_failure_with_traceback_and_reruns_it(make_cfg):
    cfg = make_cfg("config")
    folder = Path(cfg.run_dir)

    def failing(c):
        raise ValueError("agent.gamma: broken on purpose")

    with pytest.raises(ValueError, match="broken on purpose"):
        run_job(cfg, failing)
    status = read_status(folder)
    assert status.state == FAILED
    assert status.error == "ValueError: agent.gamma: broken on purpose"
    assert "Traceback" in status.traceback and "failing" in status.traceback
    assert run_job(cfg, lambda c: "ok") == "ok"  # a failed job runs again
    assert read_status(folder).state == FINISHED and read_status(folder).attempt == 2


def test_a_job_running_in_another_live_process_is_refused_unless_forced(make_cfg):
    import socket

    from agents.jobs import JobRunningError

    cfg = make_cfg("config")
    folder = Path(cfg.run_dir)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = JobStatus(
            state=RUNNING, started="t0", host=socket.gethostname(), pid=other.pid, attempt=1
        )
        write_status(folder, running)
        calls = []
        with pytest.raises(JobRunningError, match=rf"running in process {other.pid} on this host"):
            run_job(cfg, calls.append)
        assert not calls and read_status(folder) == running  # nothing run, nothing written
        cfg.resume = True  # resuming it alongside the live process is refused too
        with pytest.raises(JobRunningError, match="force=true"):
            run_job(cfg, calls.append)
        cfg.resume = False
        # a record of another host cannot be checked and is not refused; nor is this process's
        write_status(
            folder, JobStatus(state=RUNNING, started="t0", host="elsewhere", pid=other.pid)
        )
        assert run_job(cfg, lambda c: "ran") == "ran"
        write_status(folder, dataclasses.replace(running, pid=os.getpid()))
        assert run_job(cfg, lambda c: "ran here") == "ran here"
        write_status(folder, running)
        cfg.force = True
        assert run_job(cfg, lambda c: "forced") == "forced"
        assert read_status(folder).state == FINISHED and read_status(folder).attempt == 2
    finally:
        other.kill()
        other.wait()


def test_running_record_of_a_dead_process_reads_interrupted(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    import socket

    write_status(
        tmp_path, JobStatus(state=RUNNING, started="t", host=socket.gethostname(), pid=proc.pid)
    )
    assert read_status(tmp_path).state == INTERRUPTED
    write_status(
        tmp_path, JobStatus(state=RUNNING, started="t", host=socket.gethostname(), pid=os.getpid())
    )
    assert read_status(tmp_path).state == RUNNING


def test_failing_job_does_not_stop_the_sweep_and_only_it_reruns(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "scripts.train", "-m", "eval.seed_offset=1000000,2"]
    cmd += ["total_timesteps=128", "agent.n_steps=32", "agent.n_epochs=1", "checkpoint_freq=0"]
    cmd += [*TINY_CLI, f"sweep_dir={sweep}"]
    first = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert first.returncode != 0  # the sweep reports its failed job ...
    folders = {p.name: p for p in sweep.iterdir() if p.is_dir()}
    states = {name: read_status(p) for name, p in folders.items()}
    assert sorted(s.state for s in states.values()) == [FAILED, FINISHED]  # ... after both ran
    failed = next(s for s in states.values() if s.state == FAILED)
    assert "eval.seed_offset: must be >= max" in failed.error
    assert "Traceback" in failed.traceback and "make_seeds" in failed.traceback
    assert "eval.seed_offset=2" in failed.overrides
    assert state_counts(sweep)["total"] == 2
    assert "1 finished, 1 failed" in progress_line(sweep)
    # the end of the sweep names its failed jobs and the report (Hydra's sweeper raises the
    # first job error instead of calling on_multirun_end)
    output = first.stdout + first.stderr
    failed_folder = next(p for name, p in folders.items() if states[name].state == FAILED)
    assert f"failed: {failed_folder}: ValueError: eval.seed_offset" in output
    assert f"report: lepton-report {sweep}" in output

    second = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert second.returncode != 0
    again = {name: read_status(p) for name, p in folders.items()}
    for name, status in again.items():
        if status.state == FINISHED:
            assert status.attempt == 1 and status.started == states[name].started  # skipped
        else:
            assert status.attempt == 2  # redone
    assert "skipped" in second.stdout + second.stderr


# --- resume ---------------------------------------------------------------------------------


def test_resume_continues_from_the_latest_checkpoint(make_cfg):
    cfg = make_cfg("config", ["total_timesteps=384", "checkpoint_freq=128", "eval.eval_freq=128"])
    folder = Path(cfg.run_dir)
    train.run(cfg)
    checkpoint = latest_checkpoint(folder)
    assert checkpoint is not None and checkpoint.num_timesteps == 256
    assert checkpoint.vecnormalize is not None and checkpoint.replay_buffer is None
    assert [p["timesteps"] for p in checkpoint.curve] == [0, 128, 256]
    (folder / "model.zip").unlink()  # as if killed after the checkpoint

    resumed = make_cfg(
        "config",
        ["total_timesteps=384", "checkpoint_freq=128", "eval.eval_freq=128", "resume=true"],
    )
    resumed.run_dir = str(folder)
    train.run(resumed)
    from stable_baselines3 import PPO

    assert PPO.load(folder / "model.zip").num_timesteps == 384
    with (folder / "curve.csv").open() as fh:
        steps = [int(float(r["timesteps"])) for r in csv.DictReader(fh)]
    assert steps == [0, 128, 256, 384]  # the grid goes on, nothing doubled
    assert (folder / "progress_until_256.csv").is_file()


def _kill_and_resume(tmp_path, overrides, total):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "scripts.train", *overrides, f"total_timesteps={total}"]
    cmd += [*TINY_CLI, f"run_dir={run_dir}"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    latest = run_dir / "checkpoints" / "latest.json"
    deadline = time.time() + 300
    while not latest.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be killed; raise total_timesteps"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = latest_checkpoint(run_dir).num_timesteps
    assert 0 < killed_at < total
    assert read_status(run_dir).state == INTERRUPTED
    assert not (run_dir / "model.zip").exists()
    subprocess.run([*cmd, "resume=true"], cwd=ROOT, env=ENV, check=True, capture_output=True)
    status = read_status(run_dir)
    assert status.state == FINISHED and status.attempt == 2
    return run_dir, killed_at


@pytest.mark.slow
def test_ppo_killed_with_sigkill_resumes_to_the_requested_steps(tmp_path):
    from stable_baselines3 import PPO

    total = 8192  # a multiple of the rollout (32 steps x 4 envs)
    run_dir, _ = _kill_and_resume(
        tmp_path, ["agent.n_steps=32", "agent.n_epochs=2", "checkpoint_freq=512"], total
    )
    assert PPO.load(run_dir / "model.zip").num_timesteps == total
    assert (run_dir / "vecnormalize.pkl").is_file()


@pytest.mark.slow
def test_sac_killed_with_sigkill_resumes_with_its_replay_buffer(tmp_path):
    from stable_baselines3 import SAC

    total = 3000
    overrides = ["agent=sac", "agent.learning_starts=200", "agent.batch_size=64"]
    overrides += [
        "agent.buffer_size=5000",
        "agent.policy_kwargs.net_arch=[64,64]",
        "checkpoint_freq=400",
    ]
    run_dir, killed_at = _kill_and_resume(tmp_path, overrides, total)
    model = SAC.load(run_dir / "model.zip")
    assert model.num_timesteps == total
    buffers = list((run_dir / "checkpoints").glob("model_replay_buffer_*_steps.pkl"))
    assert len(buffers) == 1  # only the newest is kept
    model.load_replay_buffer(buffers[0])
    assert model.replay_buffer.size() * 4 >= killed_at  # the transitions before the kill


# --- statistics -------------------------------------------------------------------------------


def test_iqm_cuts_a_quarter_from_each_end():
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm(np.array([1.0, 2.0, 3.0])) == pytest.approx(2.0)  # fewer than 4: the mean
    assert iqm(np.array([100.0, 1.0, 2.0, -50.0])) == pytest.approx(1.5)
    assert iqm(np.array([[1.0, 2, 3, 4], [0, 0, 0, 8]])).tolist() == [2.5, 0.0]


def test_bootstrap_intervals_match_hand_computed_cases():
    # two runs 0 and 1: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4
    point, low, high = stratified_bootstrap([np.array([0.0, 1.0])], mean, reps=4000)
    assert (point, low, high) == (0.5, 0.0, 1.0)
    assert stratified_bootstrap([np.full(5, 7.0)], iqm) == (7.0, 7.0, 7.0)
    assert stratified_bootstrap([np.array([3.0])], mean) == (3.0, 3.0, 3.0)


def test_bootstrap_is_stratified_by_task():
    # each task keeps its own number of runs in every resample: task a is constant 0, task b
    # constant 10, so every resampled mean over [a, a, b] is exactly 10/3
    point, low, high = stratified_bootstrap([np.zeros(2), np.full(1, 10.0)], mean, reps=500)
    assert point == low == high == pytest.approx(10 / 3)


def test_performance_profile_counts_episodes_above_each_threshold():
    runs = [np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.0, 4.0])]
    profile, low, high = performance_profile(runs, np.array([0.0, 2.5, 5.0]), reps=2000)
    np.testing.assert_allclose(profile, [1.0, 0.5, 0.0])
    np.testing.assert_allclose(low, [1.0, 1 / 3, 0.0])
    np.testing.assert_allclose(high, [1.0, 2 / 3, 0.0])


# --- report -----------------------------------------------------------------------------------


def _fake_job(sweep, env, agent, seed, score, state=FINISHED, baseline=100.0, name=None):
    folder = sweep / (name or job_name(env, agent, seed, []))
    folder.mkdir(parents=True)
    write_status(
        folder,
        JobStatus(
            state=state,
            started="2026-01-01T00:00:00",
            overrides=[f"env={env}", f"agent={agent}", f"seed={seed}", "total_timesteps=100"],
            job={"env": env, "agent": agent, "seed": seed, "env_id": f"lepton/{env}-v0"},
            error=None if state == FINISHED else "ValueError: boom",
            traceback=None if state == FINISHED else "Traceback ...",
        ),
    )
    if state != FINISHED:
        return
    cfg = {
        "env": {"name": env, "id": f"lepton/{env}-v0"},
        "agent": {"name": agent},
        "seed": seed,
        "eval": {"episodes": 2},
    }
    OmegaConf.save(OmegaConf.create(cfg), folder / "config.yaml")
    metrics = {
        agent: {
            "return": {"mean": score, "std": 1.0, "n": 2},
            "fill_rate": {"mean": 0.5, "std": 0, "n": 2},
        },
        "base_stock": {
            "return": {"mean": baseline, "std": 0.0, "n": 2},
            "fill_rate": {"mean": 0.9, "std": 0, "n": 2},
        },
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    with (folder / "eval.csv").open("w") as fh:
        fh.write("policy,episode,seed,return,length,fill_rate\n")
        for k, d in enumerate((-1.0, 1.0)):
            fh.write(f"{agent},{k},{k},{score + d},30,0.5\nbase_stock,{k},{k},{baseline},30,0.9\n")
    with (folder / "curve.csv").open("w") as fh:
        fh.write(f"timesteps,mean,std\n0,0,1\n50,{score / 2},1\n100,{score},1\n")


def test_report_on_a_synthetic_sweep(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    scores = {0: 10.0, 1: 20.0, 2: 30.0, 3: 1000.0}
    for seed, score in scores.items():
        _fake_job(sweep, "chain", "ppo", seed, score)
        _fake_job(sweep, "chain", "a2c", seed, score / 10)
    _fake_job(sweep, "chain", "dqn", 0, 0.0, state=FAILED)
    (sweep / "sweep.json").write_text(json.dumps({"total": 10}))

    result = write_report(sweep, reps=500)
    out = sweep / "report"
    for name in ("report.md", "summary.csv", "jobs.csv", "curves_chain.png", "profile_chain.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "curves_chain.png").read_bytes()[:4] == b"\x89PNG"
    with (out / "summary.csv").open() as fh:
        rows = {r["policy"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"ppo", "a2c", "base_stock"}
    assert float(rows["ppo"]["iqm"]) == pytest.approx(25.0)  # middle two of 10, 20, 30, 1000
    assert float(rows["ppo"]["mean"]) == pytest.approx(265.0)
    assert int(rows["ppo"]["seeds"]) == 4 and int(rows["ppo"]["episodes"]) == 2
    assert float(rows["ppo"]["iqm_low"]) <= 25.0 <= float(rows["ppo"]["iqm_high"])
    assert int(rows["base_stock"]["seeds"]) == 4  # shared by the jobs of a seed, counted once
    assert float(rows["base_stock"]["iqm"]) == 100.0 and rows["base_stock"]["kind"] == "baseline"
    with (out / "jobs.csv").open() as fh:
        jobs = {r["job"]: r for r in csv.DictReader(fh)}
    assert jobs["chain__dqn__0"]["state"] == FAILED and "boom" in jobs["chain__dqn__0"]["error"]
    report = (out / "report.md").read_text()
    assert "here 4: 0, 1, 2, 3" in report and "| ppo | agent | 4 |" in report
    assert "8 finished, 1 failed, 0 running, 1 pending" in report
    printed = capsys.readouterr().out
    assert "IQM return" in printed and "chain__dqn__0: failed ValueError: boom" in printed
    assert result["rows"][0].policy == "ppo"


def test_report_and_progress_ignore_run_only_overrides_of_a_relaunched_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        _fake_job(sweep, "chain", "ppo", seed, 10.0 * (seed + 1))
    (sweep / "sweep.json").write_text(json.dumps({"total": 2}))
    # seed 1 finished in a relaunch that added switches: still its job and its folder
    folder = sweep / job_name("chain", "ppo", 1, ["torch_threads=2", "tensorboard=true"])
    assert folder.name == "chain__ppo__1"
    status = read_status(folder)
    status.overrides += ["torch_threads=2", "tensorboard=true"]
    write_status(folder, status)
    counts = state_counts(sweep)
    assert (counts[FINISHED], counts["pending"], counts["total"]) == (2, 0, 2)
    result = write_report(sweep, reps=50)
    ppo = [row for row in result["rows"] if row.kind == "agent"]
    assert [(row.policy, row.seeds) for row in ppo] == [("ppo", 2)]


def test_progress_of_a_sweep_relaunched_in_part_counts_every_job(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in range(3):
        _fake_job(sweep, "chain", "ppo", seed, 10.0)
    _fake_job(sweep, "chain", "dqn", 0, 0.0, state=FAILED)
    (sweep / "sweep.json").write_text(json.dumps({"total": 1}))  # `seed=1`: one job again
    counts = state_counts(sweep)
    assert (counts[FINISHED], counts[FAILED], counts["pending"], counts["total"]) == (3, 1, 0, 4)
    line = progress_line(sweep)
    assert "[" + "#" * 20 + "] 4/4 done: 3 finished, 1 failed, 0 running, 0 pending" in line
    (sweep / "sweep.json").write_text(json.dumps({"total": 6}))  # two jobs not started yet
    assert "[" + "#" * 13 + "-" * 7 + "] 4/6 done" in progress_line(sweep)


def test_report_on_a_sweep_none_of_whose_jobs_started(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({"total": 4, "overrides": ["env=a,b"]}))
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    with pytest.raises(FileNotFoundError, match=r"is a sweep of 4 jobs none of which has started"):
        write_report(sweep)
    assert report_main([str(sweep)]) == 2
    err = capsys.readouterr().err
    assert "no job folder yet" in err and "pass the sweep_dir of a" not in err
    assert not (sweep / "report").exists()


def test_report_explains_an_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="SWEEP_DIR: .* holds no job folders"):
        write_report(tmp_path)
    from scripts.report import main

    assert main([str(tmp_path / "missing")]) == 2


def test_jobs_skip_hidden_folders_and_read_the_old_nested_layout(tmp_path):
    sweep = tmp_path / "sweep"
    _fake_job(sweep, "chain", "ppo", 0, 10.0)
    (sweep / ".hydra").mkdir()
    (sweep / ".hydra" / "config.yaml").write_text("a: 1\n")  # Hydra's copy, not a job
    # a job of agent pretrained/x written before its name was made safe: one level deeper
    _fake_job(sweep, "chain", "pretrained/x", 0, 20.0, name="chain__pretrained/x__0")
    # a job folder one level down that is no such job (e.g. a sweep inside a folder of sweeps)
    _fake_job(sweep / "older", "chain", "ppo", 1, 30.0)
    assert [j.name for j in jobs(sweep)] == ["chain__ppo__0", "chain__pretrained/x__0"]
    assert "2/2 done: 2 finished" in progress_line(sweep)
    rows = write_report(sweep, reps=50, plots=False)["rows"]
    assert {r.policy for r in rows if r.kind == "agent"} == {"ppo", "pretrained/x"}
    jobs_csv = (sweep / "report" / "jobs.csv").read_text()
    assert "chain__pretrained/x__0,finished" in jobs_csv and ".hydra" not in jobs_csv
    # run again under the safe name: the new folder replaces the old one
    _fake_job(sweep, "chain", "pretrained/x", 0, 20.0)
    assert [j.name for j in jobs(sweep)] == ["chain__ppo__0", "chain__pretrained+x__0"]


def test_report_refuses_a_run_folder(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    _fake_job(sweep, "chain", "ppo", 0, 10.0)
    (sweep / "sweep.json").write_text(json.dumps({"total": 1}))
    run = sweep / "chain__ppo__0"
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("a: 1\n")
    with pytest.raises(FileNotFoundError, match=r"is a run folder .*, not a sweep"):
        write_report(run)
    assert not (run / "report").exists()
    assert report_main([str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lepton-report: SWEEP_DIR: {str(run)!r} is a run folder ")
    assert "(status.json, config.yaml, metrics.json)" in err
    assert "its results are in metrics.json and table.md" in err
    assert err.rstrip().endswith(f"the sweep it belongs to: lepton-report {sweep}")
    # a failed run alone, in no sweep
    alone = tmp_path / "alone"
    _fake_job(alone, "chain", "dqn", 0, 0.0, state=FAILED)
    assert report_main([str(alone / "chain__dqn__0")]) == 2
    err = capsys.readouterr().err
    assert "its status.json says failed (ValueError: boom)" in err
    assert "pass the sweep_dir of a `lepton-train -m ...` run" in err
    assert report_main([str(sweep), "--reps", "10", "--no-plots"]) == 0


@pytest.mark.parametrize("reps", ["0", "-1"])
def test_report_refuses_fewer_than_one_resample(tmp_path, capsys, reps):
    _fake_job(tmp_path, "chain", "ppo", 0, 10.0)
    with pytest.raises(SystemExit) as exc:
        report_main([str(tmp_path), "--reps", reps])
    assert exc.value.code == 2
    assert f"lepton-report: error: argument --reps: must be >= 1, got {reps}" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "report").exists()
    with pytest.raises(ValueError, match="reps: must be >= 1, got 0"):
        write_report(tmp_path, reps=0)
