"""SB3's training logs in a run folder, and what a fresh or resumed run keeps of earlier ones.

A training run (``lepton-train``, a transfer arm or source, a tuning trial) logs into its
folder::

    <folder>/progress.csv               SB3's training log
    <folder>/progress_until_<n>.csv     a resumed run's log up to the checkpoint it resumed from
    <folder>/tb/                        TensorBoard logs (with ``tensorboard``)

:func:`training_logger` prepares the folder (a fresh run removes an earlier run's logs, a
resumed one keeps the log up to its checkpoint) and returns the logger to give the model.
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

from stable_baselines3.common.logger import (
    HumanOutputFormat,
    KVWriter,
    Logger,
    TensorBoardOutputFormat,
    make_output_format,
)

from agents.jobs import write_atomic

PROGRESS_FILE = "progress.csv"
TENSORBOARD_DIR = "tb"


def training_logger(
    folder: Path | None, *, tensorboard: bool, verbose: int, resumed_at: int | None = None
) -> Logger:
    """The SB3 logger of a training run in ``folder``, whose earlier logs it prepares.

    In ``folder``: ``progress.csv``, TensorBoard in ``tb/`` with ``tensorboard`` and SB3's
    tables on stdout with ``verbose > 0``. A fresh run (``resumed_at`` is ``None``) removes
    the logs an earlier run left there (:func:`clear_logs`); a run resumed from its checkpoint
    at step ``resumed_at`` keeps the earlier log up to that step (:func:`keep_progress`), and
    TensorBoard hides what the killed attempt logged after it (those steps are trained and
    logged again).

    Without a folder only stdout is logged, with ``verbose > 0``. (A model given no logger
    makes SB3 create an empty folder in the system's temporary folder for every model.)
    """
    if folder is None:
        quiet: list[KVWriter] = [HumanOutputFormat(sys.stdout)] if verbose > 0 else []
        return Logger(None, quiet)
    folder.mkdir(parents=True, exist_ok=True)
    if resumed_at is None:
        clear_logs(folder)
    else:
        keep_progress(folder, resumed_at)
    formats = [make_output_format("csv", str(folder))]
    if tensorboard:
        purge_step = resumed_at + 1 if resumed_at is not None else None
        formats.append(_TensorBoard(str(folder / TENSORBOARD_DIR), purge_step))
    if verbose > 0:
        formats.append(make_output_format("stdout", str(folder)))
    return Logger(str(folder), formats)


class _TensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard output with ``SummaryWriter``'s ``purge_step``.

    With ``purge_step`` the writer starts with a restart marker: TensorBoard then hides the
    events that earlier event files of the folder logged at that step or later.
    """

    def __init__(self, folder: str, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def clear_logs(folder: Path) -> None:
    """Remove the TensorBoard logs and resumed logs of an earlier run (a fresh run replaces it)."""
    shutil.rmtree(folder / TENSORBOARD_DIR, ignore_errors=True)
    for path in folder.glob("progress_until_*.csv"):
        path.unlink()


def keep_progress(folder: Path, num_timesteps: int) -> None:
    """Before a run resumes at ``num_timesteps``: its SB3 log so far into ``progress_until_<n>.csv``.

    That file gets the log up to the checkpoint: the rows of the newest such file of an earlier
    resume (``progress_until_<k>.csv``, ``k <= n``: the log up to ``k``) and the rows of
    ``progress.csv`` after step ``k`` up to ``n``. The rows the killed attempt logged after ``n``
    are dropped (those steps are trained again); the other ``progress_until_*.csv`` and
    ``progress.csv`` are removed. Written through a temporary file synced to disk
    (:func:`agents.jobs.write_atomic`), so a process killed meanwhile, or a power loss, leaves a
    log that the next resume completes the same way.
    """
    earlier = {}
    for path in folder.glob("progress_until_*.csv"):
        step = path.stem.removeprefix("progress_until_")
        if step.isdigit() and int(step) <= num_timesteps:
            earlier[int(step)] = path
    columns: dict[str, None] = {}
    rows: list[dict[str, str]] = []
    start = -1
    if earlier:
        start = max(earlier)
        rows += _read_log(earlier[start], columns)
    current = folder / PROGRESS_FILE
    if current.is_file():
        rows += [
            row
            for row in _read_log(current, columns)
            if (logged := _log_step(row)) is None or start < logged <= num_timesteps
        ]
    target = folder / f"progress_until_{num_timesteps}.csv"

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(columns), restval="")
            writer.writeheader()
            writer.writerows(rows)

    write_atomic(target, write)
    for path in earlier.values():
        if path != target:
            path.unlink()
    current.unlink(missing_ok=True)


def _read_log(path: Path, columns: dict[str, None]) -> list[dict[str, str]]:
    """The rows of an SB3 ``progress.csv``; its columns are added to ``columns`` in order."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns.update(dict.fromkeys(reader.fieldnames or ()))
        return list(reader)


def _log_step(row: dict[str, str]) -> int | None:
    """The step a row of SB3's log was written at (``None``: the row does not say)."""
    try:
        return int(float(row.get("time/total_timesteps") or ""))
    except ValueError:
        return None
