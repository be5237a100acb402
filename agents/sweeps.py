"""Sweeps: the jobs of a sweep folder, their states, and progress lines while a sweep runs.

A sweep (``lepton-train -m ...``) puts every job in ``<sweep_dir>/<job name>/`` (see
``conf/resolvers.py``) with a ``status.json`` (see :mod:`agents.jobs`). :class:`SweepProgress`
is a Hydra callback (configured in ``conf/config.yaml``) that records the number of jobs in
``<sweep_dir>/sweep.json`` when the sweep starts and logs a progress line after every job::

    sweep runs/sweeps/bench [########----------] 5/12 done: 4 finished, 1 failed, 2 running, 5 pending

The number of jobs is counted as Hydra's basic sweeper builds them: ``hydra.sweeper.params``
(e.g. of an experiment) first, then the command line, whose value wins for a key given in both.
When the sweep ends, also after a failed job, it logs the failed jobs and the ``lepton-report``
command.

This module is imported by Hydra to build the callback, so it stays light (no torch).
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from agents.jobs import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    RUNNING,
    STATUS_FILE,
    JobStatus,
    read_status,
)
from agents.runs import CONFIG_FILE
from conf.resolvers import safe_name

log = logging.getLogger(__name__)

SWEEP_FILE = "sweep.json"
"""Written into the sweep folder when a sweep starts: number of jobs and the overrides."""

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
"""``hydra.sweeper._target_`` of the sweeper whose jobs :func:`count_jobs` counts."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One job folder of a sweep and its status record (``None``: not started yet).

    Attributes:
        folder: the job's folder.
        status: its status record.
        name: the folder relative to the sweep folder (``""``: ``folder.name``).
    """

    folder: Path
    status: JobStatus | None
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.folder.name)


def count_jobs(overrides: Iterable[str]) -> int | None:
    """Jobs of a basic sweep over ``overrides`` (``None`` when a sweep cannot be counted).

    As in Hydra's basic sweeper, a key given more than once counts once, with its last value:
    ``["seed=range(5)", "seed=0"]`` (an experiment's sweep of the seed, then ``seed=0`` on the
    command line) is one job, not five.

    Args:
        overrides: overrides in the order the sweeper reads them, e.g.
            ``["agent=ppo,a2c", "seed=range(3)"]``.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sizes: dict[str, int] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.get_key_element()  # a key given again replaces its earlier values
        if not override.is_sweep_override():
            sizes[key] = 1
            continue
        if not override.is_discrete_sweep():
            return None
        try:
            sizes[key] = len(list(override.sweep_string_iterator()))
        except Exception:  # e.g. glob() needs the config loader
            return None
    return math.prod(sizes.values())


def is_job(folder: Path) -> bool:
    """Whether ``folder`` is the folder of one run (it has a status record or a config).

    A sweep folder never is: it holds ``sweep.json`` and ``multirun.yaml`` and its job folders.
    """
    return (folder / STATUS_FILE).is_file() or (folder / CONFIG_FILE).is_file()


def _subfolders(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` but Hydra's and other hidden ones (``.hydra``), sorted."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def jobs(sweep_dir: Path) -> list[Job]:
    """The job folders of ``sweep_dir`` (every sub-folder with a status record or a config).

    Hidden folders (``.hydra``) are skipped. A job whose env or agent name holds a ``/``
    (``pretrained/inventory``) used to be written one level deeper
    (``inventory__pretrained/inventory__0``, before :func:`conf.resolvers.safe_name`): such a
    folder is found too, named by its relative path, unless the same job also has its folder
    under the current name.
    """
    found = []
    for folder in _subfolders(sweep_dir):
        if is_job(folder):
            found.append(Job(folder, read_status(folder)))
            continue
        for inner in _subfolders(folder):
            name = inner.relative_to(sweep_dir).as_posix()
            status = read_status(inner)
            if (
                status is not None
                and _is_nested_job(status, name)
                and not is_job(sweep_dir / safe_name(name))
            ):
                found.append(Job(inner, status, name))
    return found


def _is_nested_job(status: JobStatus, name: str) -> bool:
    """Whether ``name`` is the job name of ``status`` split by a ``/`` of its env or agent."""
    env, agent, seed = (status.job.get(k) for k in ("env", "agent", "seed"))
    if env is None or agent is None or "/" not in f"{env}{agent}":
        return False
    return name == f"{env}__{agent}__{seed}" or name.startswith(f"{env}__{agent}__{seed}__")


def sweep_total(sweep_dir: Path) -> int | None:
    """Number of jobs recorded in ``sweep.json`` when the sweep started (``None``: unknown)."""
    path = sweep_dir / SWEEP_FILE
    if not path.is_file():
        return None
    total = json.loads(path.read_text()).get("total")
    return int(total) if total is not None else None


def state_counts(sweep_dir: Path) -> dict[str, int]:
    """Jobs per state (``finished``, ``failed``, ``running``, ``interrupted``, ``pending``).

    ``total`` is the number of jobs of the latest launch (``sweep.json``), or the number of
    job folders where there are more: a launch of a part of the sweep (``seed=1`` to rerun one
    job) counts the jobs of the earlier launches too.
    """
    counts = Counter(j.status.state if j.status is not None else "pending" for j in jobs(sweep_dir))
    out = {s: counts.get(s, 0) for s in (FINISHED, FAILED, RUNNING, INTERRUPTED)}
    started = sum(out.values())
    total = max(sweep_total(sweep_dir) or 0, started)
    out["pending"] = total - started
    out["total"] = total
    return out


def progress_line(sweep_dir: Path, width: int = 20) -> str:
    """One line: a bar of done jobs and the count of every state."""
    c = state_counts(sweep_dir)
    done = c[FINISHED] + c[FAILED]
    total = max(c["total"], 1)
    filled = math.floor(width * done / total)
    parts = [f"{c[FINISHED]} finished", f"{c[FAILED]} failed", f"{c[RUNNING]} running"]
    if c[INTERRUPTED]:
        parts.append(f"{c[INTERRUPTED]} interrupted")
    parts.append(f"{c['pending']} pending")
    bar = "#" * filled + "-" * (width - filled)
    return f"sweep {sweep_dir} [{bar}] {done}/{c['total']} done: {', '.join(parts)}"


def failed_jobs(sweep_dir: Path) -> list[Job]:
    """The jobs whose record says ``failed``."""
    return [j for j in jobs(sweep_dir) if j.status is not None and j.status.state == FAILED]


class SweepProgress(Callback):
    """Hydra callback: counts the jobs of a sweep and logs progress after every job.

    When the sweep ends, also when a job failed (Hydra then skips ``on_multirun_end``), it logs
    the failed jobs with their errors and the ``lepton-report`` command.
    """

    _summarised = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # the basic sweeper reads hydra.sweeper.params first, then the command line
        params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
        overrides = [f"{k}={v}" for k, v in params.items()]
        overrides += list(config.hydra.overrides.task)
        sweeper = OmegaConf.select(config, "hydra.sweeper._target_", default=BASIC_SWEEPER)
        total = count_jobs(overrides) if sweeper == BASIC_SWEEPER else None
        data = {"total": total, "overrides": overrides}
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(data, indent=2) + "\n")
        log.info("sweep %s: %s jobs", sweep_dir, total if total is not None else "?")
        # Hydra's sweeper raises the first failed job's error after the jobs have run and then
        # never calls on_multirun_end: the summary is given when the process exits instead
        self._summarised = False
        atexit.register(self._summarise, sweep_dir)

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        log.info(progress_line(sweep_dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._summarise(Path(str(config.hydra.sweep.dir)))
        atexit.unregister(self._summarise)  # summarised: nothing is left for the exit

    def _summarise(self, sweep_dir: Path) -> None:
        """Log the progress, the failed jobs with their errors and the report command, once."""
        if self._summarised or not sweep_dir.is_dir():
            return
        self._summarised = True
        log.info(progress_line(sweep_dir))
        for job in failed_jobs(sweep_dir):
            assert job.status is not None
            log.error("failed: %s: %s", job.folder, job.status.error)
        log.info("report: lepton-report %s", sweep_dir)


def describe(jobs_: Sequence[Job]) -> list[dict[str, Any]]:
    """One row per job: folder name, state, attempt, error (for reports)."""
    rows = []
    for job in jobs_:
        s = job.status
        rows.append(
            {
                "job": job.name,
                "state": s.state if s is not None else "pending",
                "attempt": s.attempt if s is not None else 0,
                "error": (s.error or "") if s is not None else "",
            }
        )
    return rows
