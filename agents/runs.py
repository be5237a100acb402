"""Run folders: where a run writes, the files that make it reproducible, and whose run it is.

A run folder belongs to one experiment: its ``config.yaml``. Before a run continues or skips the
run in a folder, :func:`config_differences` compares that file with the new configuration, key by
key, leaving out :data:`RUN_ONLY_KEYS` (how a run goes, not what it computes; defined in
:mod:`conf.resolvers`, as a sweep job's folder name leaves these keys out too)::

    resume: runs/x holds a run of another configuration (saved -> now: env.name
    'inventory_lost_sales' -> 'inventory', agent.algo 'a2c' -> 'ppo', ...); ...
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from conf.resolvers import RUN_ONLY_KEYS, covered, without_idle_env_keys

CONFIG_FILE = "config.yaml"
"""The resolved configuration of the run in a folder (:func:`save_config`)."""

RESUME_KEYS = RUN_ONLY_KEYS | {"total_timesteps"}
"""Keys a resumed run may change: :data:`RUN_ONLY_KEYS` and the budget it trains up to."""

PRIORITY_KEYS = ("env.name", "env.id", "agent.algo", "agent.name", "seed", "total_timesteps")
"""Differences named first in messages (the rest follow in the order of the configuration)."""


class RunMismatchError(ValueError):
    """A run folder holds the run of another configuration than the one asked for."""


@dataclasses.dataclass(frozen=True)
class Difference:
    """One key whose value differs between a saved run and a new configuration.

    Attributes:
        key: the dotted key, e.g. ``env.kwargs.scenario``.
        saved: its value in the folder's ``config.yaml`` (:data:`ABSENT` if not there).
        now: its value in the new configuration (:data:`ABSENT` if not there).
    """

    key: str
    saved: Any
    now: Any


ABSENT = "<absent>"
"""Value of a key that one of two compared configurations does not have."""


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
    path = folder / CONFIG_FILE
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


def saved_config(folder: Path) -> dict[str, Any] | None:
    """The configuration saved in ``folder/config.yaml`` as plain data (``None`` if none)."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        return None
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return {str(k): v for k, v in data.items()} if isinstance(data, dict) else None


def config_differences(
    saved: Mapping[str, Any],
    cfg: DictConfig,
    ignore: Collection[str] = RUN_ONLY_KEYS,
) -> list[Difference]:
    """The keys whose values differ between a saved configuration and ``cfg``.

    ``cfg`` is resolved and read back as :func:`save_config` writes it, so values compare as
    they would be saved (enums as names, interpolations resolved). Lists compare as a whole. A
    key that one side lacks and the other holds as ``null`` is no difference: ``null`` stands
    for the default, so a config that starts declaring an optional key (``env.kwargs.obs_lanes:
    null``) still matches the runs saved before.

    Args:
        saved: a saved configuration (:func:`saved_config`).
        cfg: the new configuration.
        ignore: dotted keys left out, each with everything below it.

    Returns:
        The differences, those of :data:`PRIORITY_KEYS` first, then in the order of the keys.
    """
    now = OmegaConf.to_container(
        OmegaConf.create(OmegaConf.to_yaml(cfg, resolve=True)), resolve=False
    )
    assert isinstance(now, dict)
    old = dict(flatten(without_idle_env_keys(saved)))
    new = dict(flatten(without_idle_env_keys(now)))
    keys = [*old, *(k for k in new if k not in old)]
    out = [
        Difference(k, old.get(k, ABSENT), new.get(k, ABSENT))
        for k in keys
        if not covered(k, ignore)
        and old.get(k, ABSENT) != new.get(k, ABSENT)
        and not _null_and_absent(old.get(k, ABSENT), new.get(k, ABSENT))
    ]
    rank = {k: i for i, k in enumerate(PRIORITY_KEYS)}
    return sorted(out, key=lambda d: rank.get(d.key, len(rank)))  # stable: config order after


def describe_differences(differences: Iterable[Difference], limit: int = 6) -> str:
    """``saved -> now: env.name 'a' -> 'b', agent.algo 'a2c' -> 'ppo', and 3 more keys``."""
    items = list(differences)
    parts = [f"{d.key} {_short(d.saved)} -> {_short(d.now)}" for d in items[:limit]]
    if len(items) > limit:
        parts.append(f"and {len(items) - limit} more keys")
    return "saved -> now: " + ", ".join(parts)


def check_resume(folder: Path, cfg: DictConfig, *, required: bool = True) -> None:
    """Raise unless the run in ``folder`` is ``cfg``'s own, so ``cfg`` may continue it.

    Only :data:`RESUME_KEYS` may differ: a run resumes with its own configuration and a longer
    or shorter ``total_timesteps``, never with another env, algorithm or hyperparameter, and
    never with a ``total_timesteps`` below the steps its latest checkpoint has trained already.

    Args:
        folder: the run folder to resume.
        cfg: the configuration that would continue it.
        required: raise as well when the folder has no ``config.yaml`` to compare with.

    Raises:
        RunMismatchError: naming ``resume``, the differing keys and what to do instead, or
            naming ``total_timesteps`` when the checkpoint has trained more steps.
        agents.checkpoints.CheckpointError: naming the checkpoint file that cannot be read.
    """
    from agents.checkpoints import latest_checkpoint  # it imports agents.jobs, which imports this

    saved = saved_config(folder)
    if saved is None:
        if required:
            raise RunMismatchError(
                f"resume: {folder} has checkpoints but no {CONFIG_FILE} saying which experiment "
                "they belong to, so they cannot be continued safely; start a new run_dir, or "
                "train afresh in this one without resume=true"
            )
        return
    differences = config_differences(saved, cfg, ignore=RESUME_KEYS)
    if differences:
        raise RunMismatchError(
            f"resume: {folder} holds a run of another configuration "
            f"({describe_differences(differences)}); resuming would continue that run's "
            "checkpoint as a different experiment. Repeat the run's own overrides with "
            f"resume=true (its command line is in {folder / 'command.txt'}), or start a new "
            "run_dir"
        )
    checkpoint = latest_checkpoint(folder)
    total = OmegaConf.select(cfg, "total_timesteps", default=None)
    if checkpoint is not None and total is not None and checkpoint.num_timesteps > total:
        raise RunMismatchError(
            f"total_timesteps: the run in {folder} has trained {checkpoint.num_timesteps} steps "
            f"by its latest checkpoint, more than total_timesteps={total}; resume with "
            f"total_timesteps >= {checkpoint.num_timesteps} (saved: {saved.get('total_timesteps')}), "
            "or train afresh without resume=true"
        )


def _null_and_absent(a: Any, b: Any) -> bool:
    return (a is ABSENT and b is None) or (a is None and b is ABSENT)


def flatten(data: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """``(dotted key, value)`` of every leaf of a plain configuration (an empty mapping is one)."""
    if isinstance(data, Mapping) and data:
        for key, value in data.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, data


def _short(value: Any, width: int = 40) -> str:
    text = value if value is ABSENT else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
