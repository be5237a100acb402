"""Run folders: where a run writes, and the files that make it reproducible."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict


def job_folder(cfg: DictConfig) -> Path:
    """The run folder of ``cfg``: Hydra's job folder in a multirun, else ``cfg.run_dir``.

    Unlike :func:`run_folder` this neither creates the folder nor changes ``cfg``.
    """
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            return Path(hydra_cfg.runtime.output_dir)
    return Path(cfg.run_dir)


def run_folder(cfg: DictConfig) -> Path:
    """The run folder (see :func:`job_folder`), created.

    ``cfg.run_dir`` is updated to the folder actually used, so the saved config names it.
    """
    folder = job_folder(cfg)
    with open_dict(cfg):
        cfg.run_dir = str(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_config(folder: Path, cfg: DictConfig) -> Path:
    """Write the resolved configuration to ``config.yaml``."""
    path = folder / "config.yaml"
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def command_line() -> str:
    """The exact command line of this process, shell-quoted (interpreter and flags included)."""
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return shlex.join(argv)


def save_command(folder: Path) -> Path:
    """Write ``command.txt``: the working directory and the exact command line.

    In a multirun the process may be a launcher's worker, so the file also gets the command
    that reruns this job alone (the job's own overrides).
    """
    path = folder / "command.txt"
    lines = [f"cd {shlex.quote(os.getcwd())}", command_line()]
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            job = [sys.executable, "-m", f"scripts.{hydra_cfg.job.name}"]
            lines.append("# this job alone:")
            lines.append(shlex.join([*job, *hydra_cfg.overrides.task]))
    path.write_text("\n".join(lines) + "\n")
    return path
