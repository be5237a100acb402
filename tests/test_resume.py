"""Resuming a killed run loses nothing and repeats nothing; what cannot be resumed is refused.

A run killed after its checkpoint at step 256 (the steps up to 384 it trained and logged after
that checkpoint are lost) continues from the checkpoint: its logs (SB3's CSV log, TensorBoard,
the learning curve) hold every step once, also after several resumes from one checkpoint. A
resume that cannot continue the checkpoint (a budget below its steps, a damaged file) and a
device the machine lacks are refused before anything in the folder is written, naming the key.
"""

import csv
import json
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from agents import train
from agents.checkpoints import CheckpointError, latest_checkpoint, restore_state
from agents.jobs import (
    FINISHED,
    INTERRUPTED,
    RUNNING,
    JobStatus,
    read_status,
    run_job,
    write_atomic,
    write_json_atomic,
    write_status,
)
from agents.logs import keep_progress
from agents.runs import RunMismatchError

KILLED = ("total_timesteps=384", "checkpoint_freq=256", "eval.eval_freq=128")
"""A run of 3 rollouts of 128 steps with its checkpoint at step 256."""


def _mark_killed(folder: Path) -> None:
    """Make the folder look like a run killed (``kill -9``) after its last checkpoint."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    status = read_status(folder)
    assert status is not None
    status.state, status.ended = RUNNING, None
    status.host, status.pid = socket.gethostname(), proc.pid
    write_status(folder, status)
    (folder / "model.zip").unlink()
    assert read_status(folder).state == INTERRUPTED


@pytest.fixture(scope="module")
def killed_ppo(composer, tmp_path_factory):
    """A tiny PPO run that trained and logged up to 384 steps, then was killed: its checkpoint
    is at 256."""
    folder = tmp_path_factory.mktemp("killed") / "run"
    run_job(composer("config", KILLED, folder), train.run)
    assert latest_checkpoint(folder).num_timesteps == 256
    _mark_killed(folder)
    return folder


@pytest.fixture
def killed(killed_ppo, tmp_path):
    """A fresh copy of the killed run for one test."""
    folder = tmp_path / "killed"
    shutil.copytree(killed_ppo, folder)
    return folder


def _in(make_cfg, folder: Path, overrides: Sequence[str] = ()) -> DictConfig:
    cfg = make_cfg("config", [*KILLED, *overrides])
    cfg.run_dir = str(folder)
    return cfg


def _steps(path: Path, column: str) -> list[int]:
    """The steps of the rows of an SB3 log (or curve) that have a value in ``column``."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    step = "time/total_timesteps" if "time/total_timesteps" in rows[0] else "timesteps"
    return [int(float(r[step])) for r in rows if r.get(column)]


def _tensorboard(folder: Path, tag: str) -> list[tuple[int, float]]:
    """``(step, value)`` of ``tag`` as TensorBoard shows the run's ``tb/`` folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / "tb"))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def _curve(folder: Path) -> list[tuple[int, float]]:
    with (folder / "curve.csv").open(newline="") as fh:
        return [(int(float(r["timesteps"])), float(r["mean"])) for r in csv.DictReader(fh)]


def _same(shown: list[tuple[int, float]], curve: list[tuple[int, float]]) -> bool:
    """Whether TensorBoard shows the curve's points (its values are 32-bit floats)."""
    steps = [step for step, _ in shown] == [step for step, _ in curve]
    return steps and [v for _, v in shown] == pytest.approx([v for _, v in curve], rel=1e-6)


# --- the logs of a resumed run ---------------------------------------------------------------


def test_resumed_run_logs_every_step_once(killed, make_cfg):
    run_job(_in(make_cfg, killed, ["resume=true"]), train.run)
    assert read_status(killed).state == FINISHED
    curve = _curve(killed)
    assert [step for step, _ in curve] == [0, 128, 256, 384]
    # TensorBoard hides what the killed attempt logged after its checkpoint at 256
    shown = _tensorboard(killed, "eval/mean_return")
    assert [step for step, _ in shown] == [0, 128, 256, 384]
    assert _same(shown, curve)  # the resumed attempt's 384, not the lost one
    # SB3's log: up to the checkpoint in progress_until_256.csv, the resumed steps after it
    before = _steps(killed / "progress_until_256.csv", "eval/mean_return")
    after = _steps(killed / "progress.csv", "eval/mean_return")
    assert before == [0, 128, 256] and after == [384]


def test_resume_removes_the_file_a_killed_checkpoint_was_writing(killed, make_cfg):
    stale = killed / "checkpoints" / ".model_replay_buffer_512_steps.pkl.tmp"
    stale.write_bytes(b"\0" * 1024)  # killed while writing its checkpoint at 512
    run_job(_in(make_cfg, killed, ["resume=true"]), train.run)
    assert not stale.exists()
    assert latest_checkpoint(killed).num_timesteps == 256  # complete checkpoints stay


def test_resuming_twice_from_one_checkpoint_keeps_the_log_before_it(killed, make_cfg):
    run_job(_in(make_cfg, killed, ["resume=true", "total_timesteps=320"]), train.run)
    _mark_killed(killed)  # killed again before its next checkpoint
    assert latest_checkpoint(killed).num_timesteps == 256
    run_job(_in(make_cfg, killed, ["resume=true"]), train.run)
    assert read_status(killed).attempt == 3
    before = _steps(killed / "progress_until_256.csv", "eval/mean_return")
    assert before == [0, 128, 256]  # the first attempt's log, not the second one's
    assert _steps(killed / "progress.csv", "eval/mean_return") == [384]
    assert [p.name for p in killed.glob("progress_until_*.csv")] == ["progress_until_256.csv"]


def test_a_run_started_afresh_replaces_the_earlier_runs_logs(killed, make_cfg):
    run_job(_in(make_cfg, killed, ["total_timesteps=256"]), train.run)  # resume=false
    curve = _curve(killed)
    assert [step for step, _ in curve] == [0, 128, 256]
    assert _same(_tensorboard(killed, "eval/mean_return"), curve)
    assert not list(killed.glob("progress_until_*.csv"))


def test_a_checkpoint_of_a_run_without_extra_state_resumes_without_it(killed, make_cfg, caplog):
    assert latest_checkpoint(killed).state == {}
    assert "state" not in json.loads((killed / "checkpoints" / "latest.json").read_text())
    with caplog.at_level(logging.DEBUG, logger="agents"):
        run_job(_in(make_cfg, killed, ["resume=true"]), train.run)
    assert read_status(killed).state == FINISHED
    assert not [
        r for r in caplog.records if "state" in r.getMessage() and "resume" in r.getMessage()
    ]


# --- training state beyond the model -----------------------------------------------------------


class Counter:
    """A part of the training with state: a count and the steps it was counted at."""

    def __init__(self) -> None:
        self.count = 0
        self.steps: list[int] = []

    def state_dict(self) -> dict:
        return {"count": self.count, "steps": list(self.steps)}

    def load_state_dict(self, state: dict) -> None:
        self.count, self.steps = state["count"], list(state["steps"])


def _saver(tmp_path: Path, **parts):
    from stable_baselines3 import PPO

    from agents.checkpoints import ResumableCheckpoint

    saver = ResumableCheckpoint(tmp_path, save_freq=1, state=parts)
    saver.init_callback(PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16))
    saver.folder.mkdir()
    return saver


def test_checkpoints_keep_the_state_of_named_parts_and_restore_it(tmp_path, caplog):
    counter = Counter()
    saver = _saver(tmp_path, counter=counter)
    counter.count, counter.steps = 3, [0, 1, 2]
    first = saver.save()
    assert first.state == {"counter": saver.folder / "model_counter_state_0_steps.pkl"}
    counter.count, counter.steps = 4, [0, 1, 2, 16]
    then = Counter()
    assert restore_state(first, {"counter": then}) == []
    assert (then.count, then.steps) == (3, [0, 1, 2])  # what the part did afterwards is not in it
    saver.num_timesteps = 16
    second = saver.save()
    assert second.state == {"counter": saver.folder / "model_counter_state_16_steps.pkl"}
    assert not first.state["counter"].exists()  # only the latest state is kept
    assert first.model.is_file()  # models are
    fresh = Counter()
    assert restore_state(second, {"counter": fresh, "other": Counter()}) == ["other"]
    assert (fresh.count, fresh.steps) == (4, [0, 1, 2, 16])
    # state the run does not use is ignored, saying so
    with caplog.at_level(logging.WARNING, logger="agents.checkpoints"):
        assert restore_state(second, {}) == []
    assert "keeps 'counter' state this run does not use; ignored" in caplog.text


def test_the_state_of_a_part_is_written_atomically(monkeypatch, tmp_path):
    saver = _saver(tmp_path, counter=Counter())
    synced = SyncRecorder(monkeypatch, saver.folder)
    saver.save()
    synced.assert_synced_around_renames(
        "model_0_steps.zip", "model_counter_state_0_steps.pkl", "latest.json"
    )


def test_a_damaged_or_missing_state_file_is_refused_naming_it(tmp_path):
    saver = _saver(tmp_path, counter=Counter())
    path = saver.save().state["counter"]
    path.write_bytes(b"\x80\x05")
    with pytest.raises(CheckpointError, match=rf"the checkpoint file {path} cannot be read"):
        restore_state(latest_checkpoint(tmp_path), {"counter": Counter()})
    path.unlink()
    with pytest.raises(CheckpointError, match=rf"names {path}, which is missing"):
        latest_checkpoint(tmp_path)


@pytest.mark.parametrize("name", ["vecnormalize", "replay_buffer", "a/b", ""])
def test_a_state_name_the_checkpoint_cannot_use_is_refused(tmp_path, name):
    from agents.checkpoints import ResumableCheckpoint

    with pytest.raises(ValueError, match=rf"state: {name!r} cannot name a checkpoint's state"):
        ResumableCheckpoint(tmp_path, save_freq=1, state={name: Counter()})


# --- resumes that are refused ------------------------------------------------------------------


def test_resume_below_the_checkpoints_steps_is_refused(killed, make_cfg):
    before = (killed / "status.json").read_bytes()
    cfg = _in(make_cfg, killed, ["resume=true", "total_timesteps=128"])
    with pytest.raises(RunMismatchError) as info:
        run_job(cfg, train.run)
    message = str(info.value)
    assert message.startswith("total_timesteps: ")
    assert "trained 256 steps" in message and "total_timesteps >= 256" in message
    assert (killed / "status.json").read_bytes() == before
    with pytest.raises(RunMismatchError, match="total_timesteps >= 256"):
        train.run(cfg)
    # the checkpoint's own budget ends the run there
    run_job(_in(make_cfg, killed, ["resume=true", "total_timesteps=256"]), train.run)
    from stable_baselines3 import PPO

    assert PPO.load(killed / "model.zip").num_timesteps == 256


@pytest.mark.parametrize(
    "damage",
    [
        ("latest.json", b'{"num_timesteps": 25'),
        ("model_256_steps.zip", b"PK\x03\x04"),
        ("model_vecnormalize_256_steps.pkl", b"\x80\x04"),
    ],
    ids=["latest", "model", "vecnormalize"],
)
def test_a_damaged_checkpoint_is_refused_naming_the_file(killed, make_cfg, damage):
    name, content = damage
    (killed / "checkpoints" / name).write_bytes(content)
    before = (killed / "status.json").read_bytes()
    cfg = _in(make_cfg, killed, ["resume=true"])
    expected = f"resume: the checkpoint file {killed / 'checkpoints' / name} cannot be read"
    with pytest.raises(CheckpointError) as info:
        run_job(cfg, train.run)
    message = str(info.value)
    if name == "latest.json":  # read before the job's record is written
        assert (killed / "status.json").read_bytes() == before
    assert message.startswith(expected) and "without resume=true" in message
    assert not (killed / "model.zip").exists()


# --- files renamed into place reach the disk first ----------------------------------------------


class SyncRecorder:
    """Stands in for ``os.fsync`` on the files of ``folder`` and the folder itself.

    Each call is recorded as ``("file", name)``, the name the synced file has at that moment,
    or ``("folder", name)``, the name the file synced last has when the folder is synced.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        self.folder = folder
        self.calls: list[tuple[str, str | None]] = []
        self._inode: int | None = None
        monkeypatch.setattr(os, "fsync", self)

    def _name(self, inode: int | None) -> str | None:
        return next((p.name for p in self.folder.iterdir() if p.stat().st_ino == inode), None)

    def __call__(self, fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            assert info.st_ino == self.folder.stat().st_ino
            self.calls.append(("folder", self._name(self._inode)))
        else:
            self._inode = info.st_ino
            self.calls.append(("file", self._name(info.st_ino)))

    def assert_synced_around_renames(self, *names: str) -> None:
        """Each file of ``names`` was synced under a temporary name, then renamed, then its
        folder synced."""
        assert [kind for kind, _ in self.calls] == ["file", "folder"] * len(names)
        for (_, before), (_, after), name in zip(
            self.calls[::2], self.calls[1::2], names, strict=True
        ):
            assert before is not None and before.startswith(f".{name}.") and before.endswith(".tmp")
            assert after == name


def test_status_records_are_synced_before_and_after_their_rename(monkeypatch, tmp_path):
    synced = SyncRecorder(monkeypatch, tmp_path)
    write_status(tmp_path, JobStatus(state=RUNNING, started="now"))
    write_status(tmp_path, JobStatus(state=FINISHED, started="now"))  # replaces the first
    synced.assert_synced_around_renames("status.json", "status.json")
    assert read_status(tmp_path).state == FINISHED
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary file left


def test_checkpoint_files_are_synced_before_and_after_their_rename(monkeypatch, tmp_path):
    from stable_baselines3 import PPO

    from agents.checkpoints import ResumableCheckpoint

    checkpoint = ResumableCheckpoint(tmp_path, save_freq=1)
    checkpoint.init_callback(PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16))
    checkpoint.folder.mkdir()
    synced = SyncRecorder(monkeypatch, checkpoint.folder)
    saved = checkpoint.save()
    synced.assert_synced_around_renames("model_0_steps.zip", "latest.json")
    assert saved.model.is_file() and not list(checkpoint.folder.glob(".*.tmp"))


def test_a_resumed_runs_earlier_log_is_synced_before_and_after_its_rename(monkeypatch, tmp_path):
    (tmp_path / "progress.csv").write_text("time/total_timesteps,x\n128,1\n256,2\n384,3\n")
    synced = SyncRecorder(monkeypatch, tmp_path)
    keep_progress(tmp_path, 256)
    synced.assert_synced_around_renames("progress_until_256.csv")
    assert _steps(tmp_path / "progress_until_256.csv", "x") == [128, 256]


def test_a_failed_atomic_write_leaves_the_earlier_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "latest.json"
    write_json_atomic(path, {"num_timesteps": 1})

    def fail(tmp: Path) -> None:
        tmp.write_text('{"num_tim')
        raise OSError("no space left on device")

    with pytest.raises(OSError, match="no space left"):
        write_atomic(path, fail)
    assert json.loads(path.read_text()) == {"num_timesteps": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["latest.json"]


# --- devices ------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_a_device_the_machine_lacks_is_refused_naming_the_field(make_cfg, monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    cfg = make_cfg("config", [f"device={device}"])
    with pytest.raises(ValueError) as info:
        train.run(cfg)
    assert str(info.value).startswith(f"device: {device!r} is not available: ")
    assert str(info.value).endswith("allowed here: auto, cpu")
    assert not Path(cfg.run_dir).exists()  # refused before the run folder is made
