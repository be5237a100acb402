"""Jobs that leave a record: ``status.json`` in every run folder, skipping finished jobs.

Every ``lepton-train`` run, alone or as one job of a sweep, goes through :func:`run_job`::

    <run folder>/status.json   {"state": "running" | "finished" | "failed", "started", "ended",
                                "attempt", "host", "pid", "overrides", "job": {env, agent, seed},
                                "error", "traceback"}

A job whose record says ``finished`` is skipped (its saved metrics are returned) unless
``force=true``, but only when it is the same job: the folder's ``config.yaml`` and the new
configuration agree on every key but :data:`conf.resolvers.RUN_ONLY_KEYS` (or, without a
``config.yaml``, the record's env, agent and seed agree). A finished run of another configuration
is refused with a :class:`~agents.runs.RunMismatchError` naming the differing keys, and so is
``resume=true`` into the folder of another experiment (:func:`agents.runs.check_resume`); a
job whose record says ``running`` in a live process of this host (the same sweep launched
twice) is refused with a :class:`JobRunningError` unless ``force=true``; a refused job writes
nothing. A failed or killed job runs again. The record is written atomically and synced to
disk (:func:`write_atomic`), so a job killed at any moment, or a power loss, leaves either the
previous record or the new one; a ``running`` record whose process no longer exists on this
host reads as ``interrupted``.

Hydra writes ``<run_dir>/.hydra/`` before the job starts; :class:`KeepRunRecord`, a Hydra
callback, turns that off for a single run that :func:`plan_job` will skip or refuse, so the
earlier run's ``.hydra/`` stays as it was, and puts it back when the job is refused once started
(a damaged checkpoint). ``lepton-evaluate`` and ``lepton-generate`` use it with their own
planning functions (:func:`agents.evaluate.plan_evaluation`, :func:`agents.generate.plan_output`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import errno
import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn
from hydra.core.utils import JobStatus as HydraStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from agents.runs import (
    Difference,
    RunMismatchError,
    check_resume,
    config_differences,
    describe_differences,
    job_folder,
    saved_config,
)

try:
    import fcntl
except ImportError:  # Windows: byte-range locks of msvcrt instead
    fcntl = None  # type: ignore[assignment]
try:
    import msvcrt
except ImportError:  # POSIX
    msvcrt = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_POLL_SECONDS = 0.2
"""How often :func:`file_lock` tries again on Windows while another process holds the lock."""

STATUS_FILE = "status.json"
"""Name of the status record in a run folder."""

RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
INTERRUPTED = "interrupted"
"""States of a job (``interrupted``: ``running`` but its process is gone)."""

RUN = "run"
SKIP = "skip"
"""What :func:`plan_job` decides for a job."""

T = TypeVar("T")


class JobRunningError(RuntimeError):
    """The job's folder is in use: its record says ``running`` in a live process of this host."""


class RunFolderError(FileExistsError):
    """The run folder holds the run of another tool, whose files this one would replace."""


@dataclasses.dataclass
class JobStatus:
    """The status record of one job.

    Attributes:
        state: ``running``, ``finished`` or ``failed`` (as written; see :func:`read_status`).
        started: ISO time the current attempt started.
        ended: ISO time it ended (``None`` while running).
        attempt: 1 for the first attempt, +1 for every rerun or resume.
        host: machine the attempt runs on.
        pid: its process id.
        overrides: the job's command-line overrides.
        job: ``env``, ``agent`` and ``seed`` of the job (for reports of failed jobs).
        error: ``Type: message`` of the exception of a failed job.
        traceback: the full traceback of a failed job.
    """

    state: str
    started: str
    ended: str | None = None
    attempt: int = 1
    host: str = ""
    pid: int = 0
    overrides: list[str] = dataclasses.field(default_factory=list)
    job: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through ``write(tmp)`` into a temporary file that is renamed into place.

    The temporary file ``.<name>.<pid>.tmp`` (next to ``path``) is flushed to disk before the
    rename and the folder after it, so after a crash or a power loss ``path`` holds either its
    previous content or the complete new one, never an empty or partial file. Where folders
    cannot be synced (Windows) the rename alone is relied on. A temporary file that ``write``
    fails to finish is removed.

    Args:
        path: the file to write.
        write: writes the whole content to the file it is given (and closes it).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        _fsync_file(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    _fsync_folder(path.parent)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)  # Windows syncs only handles open for writing
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the platform can."""
    if os.name == "nt":  # folders cannot be opened as files there
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:  # a file system that cannot sync folders
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def file_lock(path: Path, on_wait: Callable[[], object] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs.

    ``fcntl.flock`` on POSIX; on Windows, ``msvcrt.locking`` of the file's first byte, polled
    every :data:`LOCK_POLL_SECONDS` while another process holds it. Either lock goes with the
    open file, so the system releases it when its process dies. The lock is not re-entrant. A
    platform with neither locks nothing.

    Args:
        path: the lock file.
        on_wait: called when another process holds the lock, before waiting for it (to say
            so in the caller's log).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
            return
        if msvcrt is None:
            yield
            return
        # msvcrt locks bytes from the file position: always the first one, which may lie
        # beyond the end of the (empty) file
        fd = handle.fileno()
        waited = False
        while True:
            handle.seek(0)
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                break
            except OSError:
                if not waited and on_wait is not None:
                    on_wait()
                waited = True
                time.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            handle.seek(0)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` durably and atomically (see :func:`write_atomic`)."""
    text = json.dumps(data, indent=2) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_status(folder: Path, status: JobStatus) -> None:
    """Write ``status.json`` into ``folder`` atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / STATUS_FILE, dataclasses.asdict(status))


def read_status(folder: Path) -> JobStatus | None:
    """The status record of the job in ``folder`` (``None`` if it has none).

    A ``running`` record whose process is gone (same host, no such pid) comes back with state
    ``interrupted``: the job was killed and can be run again or resumed.
    """
    path = folder / STATUS_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    known = {f.name for f in dataclasses.fields(JobStatus)}
    status = JobStatus(**{k: v for k, v in data.items() if k in known})
    if status.state == RUNNING and status.host == socket.gethostname() and not _alive(status.pid):
        status.state = INTERRUPTED
    return status


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _overrides() -> list[str]:
    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
    return []


def _identity(cfg: DictConfig) -> dict[str, Any]:
    out = {}
    for key, path in (("env", "env.name"), ("agent", "agent.name"), ("seed", "seed")):
        try:
            out[key] = OmegaConf.select(cfg, path, throw_on_missing=False)
        except Exception:  # an interpolation that cannot resolve: the job will fail on it
            out[key] = None
    out["env_id"] = OmegaConf.select(cfg, "env.id", default=None)
    return out


def run_job(cfg: DictConfig, task: Callable[[DictConfig], T]) -> T | dict[str, Any]:
    """Run ``task(cfg)`` as a recorded job in its run folder.

    Args:
        cfg: the composed configuration (``force`` and ``resume`` are read from it).
        task: the work, e.g. :func:`agents.train.run`.

    Returns:
        What ``task`` returns, or for a job skipped as finished the ``metrics.json`` it wrote
        (``{}`` if there is none).

    Raises:
        RunMismatchError: before anything is written, when the folder holds a finished run or
            (with ``resume=true``) any run of another configuration (see :func:`plan_job`).
        JobRunningError: before anything is written, when another live process of this host
            runs the job in that folder (see :func:`plan_job`).
        Exception: whatever ``task`` raises, after the record says ``failed`` with the
            traceback (a sweep's launcher records it and goes on with the other jobs).
    """
    folder = job_folder(cfg)
    previous = read_status(folder)
    if plan_job(folder, cfg, previous) == SKIP:
        assert previous is not None
        log.info(
            "%s: finished earlier (%s); skipped (force=true runs it again)", folder, previous.ended
        )
        metrics = folder / "metrics.json"
        return json.loads(metrics.read_text()) if metrics.is_file() else {}
    status = JobStatus(
        state=RUNNING,
        started=_now(),
        attempt=(previous.attempt + 1) if previous is not None else 1,
        host=socket.gethostname(),
        pid=os.getpid(),
        overrides=_overrides(),
        job=_identity(cfg),
    )
    write_status(folder, status)
    try:
        result = task(cfg)
    except BaseException as exc:
        status.state = FAILED
        status.ended = _now()
        status.error = f"{type(exc).__name__}: {exc}"
        status.traceback = traceback.format_exc()
        write_status(folder, status)
        log.error("%s failed: %s (traceback in %s)", folder, status.error, folder / STATUS_FILE)
        raise
    status.state = FINISHED
    status.ended = _now()
    write_status(folder, status)
    return result


def plan_job(folder: Path, cfg: DictConfig, previous: JobStatus | None = None) -> str:
    """Whether the job ``cfg`` in ``folder`` runs (:data:`RUN`) or is skipped (:data:`SKIP`).

    A finished job is skipped unless ``force=true``, if it is the same job: its ``config.yaml``
    matches ``cfg`` but for :data:`~conf.resolvers.RUN_ONLY_KEYS` (without one, its record's env,
    agent and seed match). With ``resume=true`` the folder's run must be ``cfg``'s own but for
    :data:`~agents.runs.RESUME_KEYS` (:func:`~agents.runs.check_resume`). A job still running
    in another live process of this host is refused unless ``force=true``: two processes in one
    folder would overwrite each other's checkpoints, model and record.

    Args:
        folder: the job's run folder.
        cfg: the job's configuration (``force`` and ``resume`` are read from it).
        previous: the folder's status record (default: read from ``folder``).

    Raises:
        RunMismatchError: naming ``run_dir`` (``sweep_dir`` in a multirun) for a finished run
            of another configuration, or ``resume``, the differing keys and what to do instead.
        JobRunningError: naming the folder and the process that runs the job there.
    """
    if previous is None:
        previous = read_status(folder)
    force = bool(OmegaConf.select(cfg, "force", default=False))
    resume = bool(OmegaConf.select(cfg, "resume", default=False))
    if (
        previous is not None
        and previous.state == RUNNING  # read_status: a dead process's record reads interrupted
        and previous.host == socket.gethostname()
        and previous.pid != os.getpid()
        and not force
    ):
        raise JobRunningError(
            f"{folder}: this job is running in process {previous.pid} on this host (attempt "
            f"{previous.attempt}, started {previous.started}); wait for it or stop that process "
            "first, or pass force=true to run it here anyway if that process is not this job"
        )
    saved = saved_config(folder)
    if previous is not None and previous.state == FINISHED and not force:
        if saved is not None:
            found = config_differences(saved, cfg)
        else:
            found = _identity_differences(previous.job, _identity(cfg))
        if not found:
            return SKIP
        where = "sweep_dir" if _multirun() else "run_dir"
        message = (
            f"{where}: {folder} holds a finished run of another configuration "
            f"({describe_differences(found)}); pass force=true to run this one there instead "
            f"(that run's results are replaced), or choose another {where}"
        )
        if [d.key for d in found] == ["total_timesteps"]:
            message += f"; to train the finished run further, use init_model={folder}"
        raise RunMismatchError(message)
    if resume:
        check_resume(folder, cfg, required=False)
    return RUN


class KeepRunRecord(Callback):
    """Hydra callback: a run that is skipped or refused leaves the folder's ``.hydra/`` alone.

    Hydra writes the composed config and the overrides to ``<run_dir>/.hydra/`` before the job
    starts, which would overwrite the record of the run already in the folder (or still running
    there) although the job then does nothing. For a single run this callback first asks the
    tool's ``plan`` whether the job will run there: for a run it will skip or refuse it sets
    ``hydra.output_subdir`` to null, and the job then skips it or raises the error. A run that
    is refused only once it has started (a damaged checkpoint found while resuming, see
    :func:`refusals`) gets the folder's earlier ``.hydra/`` files back.
    (Each job of a multirun has its own folder, named after its overrides.)

    Args:
        plan: dotted name of the tool's planning function, called as ``plan(folder, cfg)`` with
            the run folder and the job's configuration; it returns :data:`RUN` or :data:`SKIP`,
            or raises one of :func:`refusals` naming why the folder is refused (default
            :func:`plan_job`, ``lepton-train``'s).
    """

    def __init__(self, plan: str = "agents.jobs.plan_job") -> None:
        self.plan = plan
        self._record: tuple[Path, dict[str, bytes]] | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._record = None
        task = copy.deepcopy(config)
        with read_write(task), open_dict(task):
            del task["hydra"]
        hydra = HydraConfig.instance()
        previous = hydra.cfg
        try:
            plan = get_method(self.plan)
            hydra.set_config(config)  # the job's folder and overrides, as the job sees them
            folder = Path(str(config.hydra.run.dir))
            keep = plan(folder, task) == SKIP
        except refusals():
            keep = True
        except Exception:  # e.g. an interpolation that cannot resolve: the job reports it
            return
        finally:
            hydra.cfg = previous
        subdir = config.hydra.output_subdir
        if keep:
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.output_subdir = None
        elif subdir is not None and (folder / subdir).is_dir():
            record = folder / subdir
            files = {path.name: path.read_bytes() for path in record.iterdir() if path.is_file()}
            self._record = (record, files)

    def on_run_end(
        self, config: DictConfig, job_return: JobReturn | None = None, **kwargs: Any
    ) -> None:
        if self._record is None or job_return is None or job_return.status != HydraStatus.FAILED:
            return
        error = getattr(job_return, "_return_value", None)  # return_value re-raises it
        if not isinstance(error, refusals()):
            return
        record, files = self._record
        for path in record.iterdir():
            if path.is_file() and path.name not in files:
                path.unlink()
        for name, data in files.items():
            (record / name).write_bytes(data)
        log.info("%s: the earlier run's record is put back (this run was refused)", record)


def refusals() -> tuple[type[Exception], ...]:
    """The errors that refuse a run folder: the job computes nothing there.

    :class:`~agents.runs.RunMismatchError` (the folder holds another configuration's run),
    :class:`JobRunningError` (a live process runs the job there), :class:`RunFolderError`
    (the folder holds another tool's run) and :class:`~agents.checkpoints.CheckpointError`
    (``resume=true`` found the folder's checkpoint damaged).
    """
    from agents.checkpoints import CheckpointError  # it imports this module

    return (RunMismatchError, JobRunningError, RunFolderError, CheckpointError)


def _identity_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[Difference]:
    """The differences between the ``job`` entries of a status record and of a new job."""
    keys = {"env": "env.name", "env_id": "env.id", "agent": "agent.name", "seed": "seed"}
    return [
        Difference(name, saved[key], now.get(key))
        for key, name in keys.items()
        if saved.get(key) is not None and saved[key] != now.get(key)
    ]


def _multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
