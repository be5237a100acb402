"""A run folder belongs to one experiment: resuming or skipping it checks that it is the same one.

``resume=true`` continues a checkpoint only with the run's own configuration (runtime switches
and ``total_timesteps`` may change), and a finished job is skipped only when it is the same job;
anything else is refused with a :class:`~agents.runs.RunMismatchError` naming the differing keys,
before anything in the folder is written.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_BUDGETS
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from agents import train
from agents.checkpoints import CheckpointError, latest_checkpoint
from agents.jobs import (
    FINISHED,
    INTERRUPTED,
    RUNNING,
    KeepRunRecord,
    plan_job,
    read_status,
    run_job,
    write_status,
)
from agents.runs import RunMismatchError, run_folder, save_command, save_config

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "SDL_VIDEODRIVER": "dummy", "MPLBACKEND": "Agg"}
A2C_LOST_SALES = ("env=inventory_lost_sales", "agent=a2c")
RECORD = ("config.yaml", "command.txt", "status.json", "checkpoints/latest.json")


def _snapshot(folder: Path, names: Sequence[str] = RECORD) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names if (folder / name).is_file()}


def _mark_killed(folder: Path) -> None:
    """Make the folder's record say ``running`` by a process that is gone (``kill -9``)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    status = read_status(folder)
    assert status is not None
    status.state, status.ended = RUNNING, None
    status.host, status.pid = socket.gethostname(), proc.pid
    write_status(folder, status)
    (folder / "model.zip").unlink(missing_ok=True)  # killed before the end
    assert read_status(folder).state == INTERRUPTED


@pytest.fixture(scope="module")
def killed_a2c(composer, tmp_path_factory):
    """A tiny A2C run on the lost-sales inventory with checkpoints, then as if killed."""
    folder = tmp_path_factory.mktemp("killed") / "run"
    cfg = composer("config", A2C_LOST_SALES, folder)
    run_job(cfg, train.run)
    checkpoint = latest_checkpoint(folder)
    assert checkpoint is not None and 0 < checkpoint.num_timesteps < cfg.total_timesteps
    _mark_killed(folder)
    return folder


@pytest.fixture
def killed(killed_a2c, tmp_path):
    """A fresh copy of the killed run for one test."""
    folder = tmp_path / "killed"
    shutil.copytree(killed_a2c, folder)
    return folder


def _in(make_cfg, folder: Path, overrides: Sequence[str]) -> DictConfig:
    cfg = make_cfg("config", overrides)
    cfg.run_dir = str(folder)
    return cfg


# --- resume ---------------------------------------------------------------------------------


def test_resume_into_a_run_of_another_env_and_algorithm_is_refused(killed, make_cfg):
    before = _snapshot(killed)
    cfg = _in(make_cfg, killed, ["resume=true"])  # the README's command: env and agent left out
    with pytest.raises(RunMismatchError) as info:
        run_job(cfg, train.run)
    message = str(info.value)
    assert message.startswith(f"resume: {killed} holds a run of another configuration")
    assert "env.name 'inventory_lost_sales' -> 'inventory'" in message
    assert "agent.algo 'a2c' -> 'ppo'" in message
    assert "env.kwargs.scenario 'lost_sales' -> 'serial4'" in message
    assert str(killed / "command.txt") in message and "new run_dir" in message
    assert _snapshot(killed) == before  # the killed run's record is untouched
    assert read_status(killed).state == INTERRUPTED and read_status(killed).attempt == 1
    assert not (killed / "model.zip").exists()
    # train.run checks too, for callers that do not go through run_job
    with pytest.raises(RunMismatchError, match="agent.algo 'a2c' -> 'ppo'"):
        train.run(cfg)
    assert _snapshot(killed) == before


def test_resume_with_another_algorithm_alone_is_refused(killed, make_cfg):
    cfg = _in(make_cfg, killed, ["env=inventory_lost_sales", "resume=true"])
    with pytest.raises(RunMismatchError) as info:
        run_job(cfg, train.run)
    assert "agent.algo 'a2c' -> 'ppo'" in str(info.value)
    assert "env.name" not in str(info.value)


def test_resume_with_another_hyperparameter_is_refused(killed, make_cfg):
    cfg = _in(make_cfg, killed, [*A2C_LOST_SALES, "resume=true", "agent.gamma=0.9"])
    with pytest.raises(RunMismatchError, match=r"agent\.gamma 0\.99 -> 0\.9"):
        run_job(cfg, train.run)


def test_resume_with_only_runtime_changes_continues(killed, make_cfg):
    from stable_baselines3 import A2C

    killed_at = latest_checkpoint(killed).num_timesteps
    runtime = ["progress_bar=false", "tensorboard=true", "device=auto", "torch_threads=2"]
    runtime += ["checkpoint_freq=64", "verbose=0", "eval.batch_size=3"]
    cfg = _in(make_cfg, killed, [*A2C_LOST_SALES, "resume=true", "total_timesteps=384", *runtime])
    run_job(cfg, train.run)
    assert A2C.load(killed / "model.zip").num_timesteps == 384  # extended past the first 256
    assert (killed / f"progress_until_{killed_at}.csv").is_file()
    status = read_status(killed)
    assert status.state == FINISHED and status.attempt == 2


def test_resume_without_a_saved_config_is_refused(killed, make_cfg):
    (killed / "config.yaml").unlink()
    cfg = _in(make_cfg, killed, [*A2C_LOST_SALES, "resume=true"])
    with pytest.raises(RunMismatchError, match="has checkpoints but no config.yaml"):
        train.run(cfg)


# --- skipping finished jobs -----------------------------------------------------------------


def _finish(cfg: DictConfig) -> list[int]:
    """Run a cheap stand-in for training that writes what a finished run leaves; its calls."""
    calls: list[int] = []

    def task(c: DictConfig) -> dict[str, str]:
        calls.append(1)
        folder = run_folder(c)
        save_config(folder, c)
        save_command(folder)
        (folder / "metrics.json").write_text(json.dumps({c.agent.name: {"return": 1.0}}))
        return {"ran": c.env.name}

    run_job(cfg, task)
    return calls


def test_finished_run_of_another_config_is_refused_and_kept(make_cfg):
    first = make_cfg("config")
    folder = Path(first.run_dir)
    _finish(first)
    before = _snapshot(folder, [*RECORD, "metrics.json"])
    other = _in(make_cfg, folder, ["env=ops/autoscale_steady", "agent=a2c"])
    calls: list[int] = []
    with pytest.raises(RunMismatchError) as info:
        run_job(other, lambda c: calls.append(1))
    message = str(info.value)
    assert message.startswith(f"run_dir: {folder} holds a finished run of another configuration")
    assert "env.name 'inventory' -> 'autoscale_steady'" in message
    assert "agent.algo 'ppo' -> 'a2c'" in message
    assert "pass force=true" in message and "another run_dir" in message
    assert not calls
    assert _snapshot(folder, [*RECORD, "metrics.json"]) == before
    assert read_status(folder).attempt == 1

    other.force = True  # asked for: the new run replaces the old one
    assert run_job(other, lambda c: "replaced") == "replaced"
    assert read_status(folder).attempt == 2


def test_same_finished_job_is_skipped_whatever_the_runtime_switches(make_cfg):
    first = make_cfg("config")
    folder = Path(first.run_dir)
    _finish(first)
    again = _in(make_cfg, folder, ["progress_bar=true", "tensorboard=false", "device=cuda"])
    calls: list[int] = []
    assert run_job(again, lambda c: calls.append(1)) == {"ppo": {"return": 1.0}}  # saved metrics
    assert not calls and read_status(folder).attempt == 1


def test_a_run_saved_before_a_config_declared_a_null_key_is_the_same_job(make_cfg):
    first = make_cfg("config", ["env=traffic/single_intersection"])
    folder = Path(first.run_dir)
    _finish(first)
    saved = OmegaConf.load(folder / "config.yaml")
    for key in ("obs_lanes", "obs_phases", "parameter_sharing"):  # as saved by older configs
        assert saved.env.kwargs.pop(key) is None
    OmegaConf.save(saved, folder / "config.yaml")
    again = _in(make_cfg, folder, ["env=traffic/single_intersection"])
    assert _finish(again) == []  # skipped: null is the default an absent key stood for
    changed = _in(make_cfg, folder, ["env=traffic/single_intersection", "env.kwargs.obs_lanes=8"])
    with pytest.raises(RunMismatchError, match=r"env.kwargs.obs_lanes <absent> -> 8"):
        _finish(changed)


def test_finished_run_with_another_budget_is_refused_with_the_way_to_train_further(make_cfg):
    first = make_cfg("config")
    folder = Path(first.run_dir)
    _finish(first)
    longer = _in(make_cfg, folder, ["total_timesteps=512", "resume=true"])
    with pytest.raises(RunMismatchError) as info:
        run_job(longer, lambda c: None)
    assert "total_timesteps 256 -> 512" in str(info.value)
    assert f"init_model={folder}" in str(info.value)


def test_finished_record_without_a_config_compares_env_agent_and_seed(make_cfg):
    cfg = make_cfg("config")
    folder = Path(cfg.run_dir)
    run_job(cfg, lambda c: None)  # a task that saves no config.yaml
    assert run_job(_in(make_cfg, folder, []), lambda c: "ran") == {}  # same job: skipped
    with pytest.raises(RunMismatchError, match="env.name 'inventory' -> 'inventory_lost_sales'"):
        run_job(_in(make_cfg, folder, ["env=inventory_lost_sales"]), lambda c: "ran")
    with pytest.raises(RunMismatchError, match="seed 0 -> 3"):
        run_job(_in(make_cfg, folder, ["seed=3"]), lambda c: "ran")


# --- Hydra's .hydra/ record -------------------------------------------------------------------


def _hydra_config(folder: Path, overrides: Sequence[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose(
            "config", overrides=[f"run_dir={folder}", *overrides], return_hydra_config=True
        )
    GlobalHydra.instance().clear()
    return cfg


def _output_subdir(folder: Path, overrides: Sequence[str]) -> str | None:
    cfg = _hydra_config(folder, overrides)
    KeepRunRecord().on_run_start(config=cfg)
    return cfg.hydra.output_subdir


def test_keep_run_record_turns_off_hydra_output_only_for_skipped_or_refused_runs(
    make_cfg, tmp_path
):
    assert _output_subdir(tmp_path / "fresh", []) == ".hydra"
    first = make_cfg("config")
    folder = Path(first.run_dir)
    _finish(first)
    assert plan_job(folder, _in(make_cfg, folder, [])) == "skip"
    assert _output_subdir(folder, []) is None  # skipped: nothing rewritten
    assert _output_subdir(folder, ["agent=a2c"]) is None  # refused
    assert _output_subdir(folder, ["agent=a2c", "force=true"]) == ".hydra"  # runs


def test_keep_run_record_guards_a_killed_run_against_another_resume(killed):
    assert _output_subdir(killed, [*TINY_BUDGETS, "resume=true"]) is None
    assert _output_subdir(killed, [*TINY_BUDGETS, *A2C_LOST_SALES, "resume=true"]) == ".hydra"


def test_cli_refuses_another_config_in_a_finished_run_dir_and_keeps_its_record(make_cfg):
    first = make_cfg("config")
    folder = Path(first.run_dir)
    _finish(first)
    hydra_record = folder / ".hydra"
    hydra_record.mkdir()
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (hydra_record / name).write_text(f"# the finished run's {name}\n")
    names = [*RECORD, "metrics.json", *(f".hydra/{n}" for n in os.listdir(hydra_record))]
    before = _snapshot(folder, names)
    cmd = [sys.executable, "-m", "scripts.train", "env=ops/autoscale_steady", "agent=a2c"]
    cmd += [f"run_dir={folder}", "progress_bar=false"]  # conf/config.yaml's keep_run_record
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert done.returncode != 0
    assert "holds a finished run of another configuration" in done.stderr
    assert "agent.algo 'ppo' -> 'a2c'" in done.stderr
    assert _snapshot(folder, names) == before
    assert OmegaConf.load(folder / "config.yaml").env.name == "inventory"


# --- refused runs of the command-line tools keep the folder's .hydra/ ----------------------

HYDRA_RECORD = ("config.yaml", "hydra.yaml", "overrides.yaml")
QUIET = ("hydra/job_logging=none", "hydra/hydra_logging=none")
"""Overrides that keep an in-process Hydra app from reconfiguring this process's logging."""


def _earlier_hydra_record(folder: Path) -> dict[str, bytes]:
    """Give ``folder`` the ``.hydra/`` of an earlier run; returns its files' bytes."""
    record = folder / ".hydra"
    record.mkdir(parents=True, exist_ok=True)
    for name in HYDRA_RECORD:
        (record / name).write_text(f"# the earlier run's {name}\n")
    return _hydra_record(folder)


def _hydra_record(folder: Path) -> dict[str, bytes]:
    return {f".hydra/{p.name}": p.read_bytes() for p in (folder / ".hydra").iterdir()}


def _run_app(main: Callable[[], Any], argv: Sequence[str], monkeypatch) -> None:
    """Run a Hydra app in this process as its command line would; its error is raised as is."""
    monkeypatch.setattr(sys, "argv", [*argv, *QUIET])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    GlobalHydra.instance().clear()
    try:
        main()
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None


@pytest.mark.parametrize(
    "damage",
    [
        ("latest", b'{"num_timesteps": 25'),  # refused before the job starts
        ("model", b"PK\x03\x04"),  # refused once the job reads it
        ("vecnormalize", b"\x80\x04"),
    ],
    ids=["latest", "model", "vecnormalize"],
)
def test_train_resuming_a_damaged_checkpoint_keeps_the_folders_hydra_record(
    killed, monkeypatch, damage
):
    from scripts.train import main

    part, content = damage
    checkpoint = latest_checkpoint(killed)
    assert checkpoint is not None and checkpoint.vecnormalize is not None
    paths = {"model": checkpoint.model, "vecnormalize": checkpoint.vecnormalize}
    path = paths.get(part, killed / "checkpoints" / "latest.json")
    path.write_bytes(content)
    before = _earlier_hydra_record(killed)
    argv = ["lepton-train", *TINY_BUDGETS, *A2C_LOST_SALES, "resume=true", f"run_dir={killed}"]
    with pytest.raises(CheckpointError) as info:
        _run_app(main, argv, monkeypatch)
    assert str(info.value).startswith(f"resume: the checkpoint file {path} cannot be read")
    assert "without resume=true" in str(info.value)
    assert _hydra_record(killed) == before


def test_train_resuming_a_checkpoint_without_its_config_keeps_the_folders_hydra_record(
    killed, monkeypatch
):
    from scripts.train import main

    (killed / "config.yaml").unlink()  # refused by the job itself, after Hydra wrote .hydra/
    before = _earlier_hydra_record(killed)
    argv = ["lepton-train", *TINY_BUDGETS, *A2C_LOST_SALES, "resume=true", f"run_dir={killed}"]
    with pytest.raises(RunMismatchError, match=r"resume: .* has checkpoints but no config\.yaml"):
        _run_app(main, argv, monkeypatch)
    assert _hydra_record(killed) == before


def test_a_checkpoint_naming_a_missing_file_is_refused_before_the_job_starts(killed):
    checkpoint = latest_checkpoint(killed)
    assert checkpoint is not None
    model = checkpoint.model
    model.unlink()
    with pytest.raises(CheckpointError, match=rf"names .*{model.name}, which is missing; "):
        latest_checkpoint(killed)
    assert _output_subdir(killed, [*TINY_BUDGETS, *A2C_LOST_SALES, "resume=true"]) is None


def test_evaluate_into_a_training_run_folder_keeps_its_hydra_record(make_cfg, monkeypatch):
    from scripts.evaluate import main

    first = make_cfg("config")
    folder = Path(first.run_dir)
    _finish(first)
    before = {**_snapshot(folder, [*RECORD, "metrics.json"]), **_earlier_hydra_record(folder)}
    argv = ["lepton-evaluate", "agent=base_stock", "episodes=2", f"run_dir={folder}"]
    with pytest.raises(FileExistsError, match=r"run_dir: .* holds a lepton-train run \(status"):
        _run_app(main, argv, monkeypatch)
    assert {**_snapshot(folder, [*RECORD, "metrics.json"]), **_hydra_record(folder)} == before


def test_evaluate_writes_its_hydra_record_into_a_folder_it_may_use(monkeypatch, tmp_path):
    from scripts.evaluate import main

    folder = tmp_path / "ev"
    _earlier_hydra_record(folder)  # an earlier evaluation's folder is written again
    argv = ["lepton-evaluate", "agent=order_nothing", "episodes=2", f"run_dir={folder}"]
    _run_app(main, [*argv, *TINY_BUDGETS], monkeypatch)
    assert "agent=order_nothing" in (folder / ".hydra" / "overrides.yaml").read_text()


def test_generate_adversarial_into_another_report_keeps_its_hydra_record(monkeypatch, tmp_path):
    from agents.generate import ADVERSARIAL_FILE
    from scripts.generate import main

    folder = tmp_path / "adv"
    search = ["path=gen", "model=pretrained/inventory", f"out_dir={folder}"]
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        earlier = compose("generate", overrides=["command=adversarial", *search])
    GlobalHydra.instance().clear()
    folder.mkdir()
    save_config(folder, earlier)
    (folder / ADVERSARIAL_FILE).write_text('{"found": {}}\n')
    before = {
        **_snapshot(folder, ["config.yaml", ADVERSARIAL_FILE]),
        **_earlier_hydra_record(folder),
    }
    argv = ["lepton-generate", "adversarial", *search, "adversarial.lam=5"]
    with pytest.raises(
        RunMismatchError,
        match=r"out_dir: .* another configuration .*adversarial\.lam None -> 5\.0",
    ):
        _run_app(main, argv, monkeypatch)
    after = {**_snapshot(folder, ["config.yaml", ADVERSARIAL_FILE]), **_hydra_record(folder)}
    assert after == before
