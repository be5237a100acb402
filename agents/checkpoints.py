"""Checkpoints a killed training run resumes from: model, normalisation, replay buffer, curve.

Every ``checkpoint_freq`` environment steps, at the start of a rollout (after the previous
update, so parameters and step count agree), :class:`ResumableCheckpoint` writes::

    checkpoints/model_<n>_steps.zip                 the model (optimiser state included)
    checkpoints/model_vecnormalize_<n>_steps.pkl    normalisation statistics (if normalised)
    checkpoints/model_replay_buffer_<n>_steps.pkl   replay buffer (off-policy; latest only)
    checkpoints/model_<name>_state_<n>_steps.pkl    the state of each named part of the training
                                                    beyond the model (a :class:`Stateful`, e.g.
                                                    the adversarial curriculum; latest only)
    checkpoints/latest.json                         the newest complete checkpoint

Training state beyond the model (a curriculum's scenario buffer and counters, ...) joins the
checkpoint through ``ResumableCheckpoint(state={name: part})``: ``part.state_dict()`` is pickled
with the checkpoint and :func:`restore_state` hands it back to ``part.load_state_dict`` on resume.
A checkpoint written before a part's state was saved has none for it: :func:`restore_state`
names such parts, which then start afresh.

Each file is written to a temporary name, synced to disk and renamed
(:func:`agents.jobs.write_atomic`), and ``latest.json`` is renamed into place last, so a process
killed at any moment (even ``kill -9``, or a power loss) leaves ``latest.json`` naming a
complete checkpoint; :func:`latest_checkpoint` reads it. The temporary file a killed process
was writing (a replay buffer's may be large) is removed when training starts or resumes there.
A checkpoint damaged afterwards (a truncated copy, a full disk) is refused with a
:class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import pickle
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from agents.jobs import write_atomic, write_json_atomic

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LATEST_FILE = "latest.json"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (damaged after it was written)."""


DAMAGED = (
    "the checkpoint is damaged, so the run cannot continue from it: train afresh in this "
    "run_dir without resume=true (its checkpoints are replaced), or start a new run_dir"
)
"""What a :class:`CheckpointError` tells to do instead."""


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn any failure to read the checkpoint file ``path`` into a :class:`CheckpointError`.

    The message names ``resume``, the file, the original error and what to do instead.
    """
    try:
        yield
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(
            f"resume: the checkpoint file {path} cannot be read ({type(exc).__name__}: {exc}); "
            f"{DAMAGED}"
        ) from exc


@runtime_checkable
class Stateful(Protocol):
    """A part of the training, beyond the model, whose state a checkpoint keeps."""

    def state_dict(self) -> dict[str, Any]:
        """The part's state now: picklable, and not changed by the part afterwards."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``, as :meth:`state_dict` returned it."""
        ...


RESERVED_STATE_NAMES = ("vecnormalize", "replay_buffer")
"""Names a :class:`Stateful` part may not take (the checkpoint's own files use them)."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint of a training run.

    Attributes:
        num_timesteps: environment steps trained when it was written.
        model: the saved model.
        vecnormalize: normalisation statistics (``None``: the run does not normalise).
        replay_buffer: the replay buffer (``None``: on-policy agent).
        curve: the learning-curve points taken up to ``num_timesteps``.
        state: name -> the pickled state of that :class:`Stateful` part (empty: the run had
            none, or the checkpoint was written before such state was saved).
    """

    num_timesteps: int
    model: Path
    vecnormalize: Path | None
    replay_buffer: Path | None
    curve: list[dict[str, float]]
    state: dict[str, Path] = dataclasses.field(default_factory=dict)


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The newest complete checkpoint of the run in ``run_dir`` (``None`` if it has none).

    Raises:
        CheckpointError: naming the file when ``latest.json`` cannot be read or names a file
            that is missing.
    """
    folder = run_dir / CHECKPOINT_DIR
    path = folder / LATEST_FILE
    if not path.is_file():
        return None
    with reading(path):
        data = json.loads(path.read_text())

        def file(key: str) -> Path | None:
            return folder / data[key] if data.get(key) else None

        checkpoint = Checkpoint(
            num_timesteps=int(data["num_timesteps"]),
            model=folder / data["model"],
            vecnormalize=file("vecnormalize"),
            replay_buffer=file("replay_buffer"),
            curve=list(data.get("curve", [])),
            state={str(name): folder / str(f) for name, f in data.get("state", {}).items()},
        )
    parts = (checkpoint.model, checkpoint.vecnormalize, checkpoint.replay_buffer)
    for part in (*parts, *checkpoint.state.values()):
        if part is not None and not part.is_file():
            raise CheckpointError(f"resume: {path} names {part}, which is missing; {DAMAGED}")
    return checkpoint


def clear_checkpoints(run_dir: Path) -> None:
    """Remove the checkpoints of an earlier run in ``run_dir`` (a fresh run replaces them)."""
    folder = run_dir / CHECKPOINT_DIR
    if folder.is_dir():
        shutil.rmtree(folder)


def continuation_seed(seed: int, num_timesteps: int) -> int:
    """Seed of the part of a run resumed at ``num_timesteps`` (a new, reproducible stream).

    The training replicas restart from fresh episodes seeded ``continuation_seed + i``; the
    seed is drawn from ``numpy.random.SeedSequence([seed, num_timesteps])``.
    """
    return int(np.random.SeedSequence([seed, num_timesteps]).generate_state(1)[0] >> 1)


class ResumableCheckpoint(BaseCallback):
    """Write a complete checkpoint every ``save_freq`` environment steps (see the module).

    Args:
        run_dir: the run folder (checkpoints go to ``run_dir/checkpoints``).
        save_freq: environment steps (all replicas together) between checkpoints.
        curve_points: returns the learning-curve points so far (stored with the checkpoint).
        state: name -> a part of the training whose state each checkpoint keeps (see
            :class:`Stateful`; :func:`restore_state` restores it). Names are identifiers other
            than :data:`RESERVED_STATE_NAMES`.
    """

    def __init__(
        self,
        run_dir: Path,
        save_freq: int,
        curve_points: Callable[[], list[dict[str, float]]] | None = None,
        state: Mapping[str, Stateful] | None = None,
    ) -> None:
        super().__init__()
        if save_freq < 1:
            raise ValueError(
                f"checkpoint_freq: must be >= 1 (0 disables checkpoints), got {save_freq}"
            )
        for name in state or {}:
            if not name.isidentifier() or name in RESERVED_STATE_NAMES:
                raise ValueError(
                    f"state: {name!r} cannot name a checkpoint's state; use an identifier other "
                    f"than {', '.join(RESERVED_STATE_NAMES)}"
                )
        self.folder = run_dir / CHECKPOINT_DIR
        self.save_freq = save_freq
        self.curve_points = curve_points
        self.state: dict[str, Stateful] = dict(state or {})
        self._next = save_freq

    def _on_training_start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(".*.tmp"):  # of a process killed while writing
            stale.unlink()
        self._next = (self.num_timesteps // self.save_freq + 1) * self.save_freq

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self._next:
            self.save()
            while self._next <= self.num_timesteps:
                self._next += self.save_freq

    def _on_step(self) -> bool:
        return True

    def save(self) -> Checkpoint:
        """Write a checkpoint of the model now and make it the latest."""
        n = self.num_timesteps
        previous = latest_checkpoint(self.folder.parent)
        entry: dict[str, Any] = {"num_timesteps": n, "model": f"model_{n}_steps.zip"}
        self._atomic(entry["model"], self.model.save)
        vec_normalize = self.model.get_vec_normalize_env()
        if isinstance(vec_normalize, VecNormalize):
            entry["vecnormalize"] = f"model_vecnormalize_{n}_steps.pkl"
            self._atomic(entry["vecnormalize"], vec_normalize.save)
        if isinstance(self.model, OffPolicyAlgorithm):
            entry["replay_buffer"] = f"model_replay_buffer_{n}_steps.pkl"
            self._atomic(entry["replay_buffer"], self.model.save_replay_buffer)
        if self.state:
            entry["state"] = {}
        for name, part in self.state.items():
            entry["state"][name] = f"model_{name}_state_{n}_steps.pkl"
            self._atomic(entry["state"][name], _pickler(part.state_dict()))
        entry["curve"] = list(self.curve_points()) if self.curve_points is not None else []
        write_json_atomic(self.folder / LATEST_FILE, entry)
        # only the newest replay buffer and state are kept (a buffer is large); models are small
        stale: list[Path] = []
        if previous is not None:
            stale = [p for p in (previous.replay_buffer, *previous.state.values()) if p is not None]
        kept = {entry.get("replay_buffer"), *entry.get("state", {}).values()}
        for path in stale:
            if path.name not in kept:
                path.unlink(missing_ok=True)
        log.debug("checkpoint at %d steps in %s", n, self.folder)
        checkpoint = latest_checkpoint(self.folder.parent)
        assert checkpoint is not None
        return checkpoint

    def _atomic(self, name: str, save: Callable[[str], Any]) -> None:
        write_atomic(self.folder / name, lambda tmp: save(str(tmp)))


def _pickler(state: dict[str, Any]) -> Callable[[str], None]:
    """Writes ``state`` (pickled now, so later changes of the part do not reach the file)."""
    data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def save(path: str) -> None:
        Path(path).write_bytes(data)

    return save


def restore_state(checkpoint: Checkpoint, parts: Mapping[str, Stateful]) -> list[str]:
    """Load the state ``checkpoint`` keeps for each of ``parts`` into it (by name).

    Args:
        checkpoint: what :func:`latest_checkpoint` found.
        parts: name -> the part, as given to :class:`ResumableCheckpoint` ``state``.

    Returns:
        The names of ``parts`` the checkpoint keeps no state for (it was written before their
        state was saved); those parts keep the state they have (they start afresh). State the
        checkpoint keeps for a name not in ``parts`` is ignored, with a warning.

    Raises:
        CheckpointError: naming a state file that cannot be read or that its part refuses.
    """
    for name in sorted(set(checkpoint.state) - set(parts)):
        log.warning(
            "resume: the checkpoint at %d steps keeps %r state this run does not use; ignored",
            checkpoint.num_timesteps,
            name,
        )
    missing = []
    for name, part in parts.items():
        path = checkpoint.state.get(name)
        if path is None:
            missing.append(name)
            continue
        with reading(path):
            part.load_state_dict(pickle.loads(path.read_bytes()))
        log.debug("resume: %r state restored from %s", name, path)
    return missing


def restore_model(
    checkpoint: Checkpoint, algo: str, venv: VecEnv, device: str, seed: int
) -> BaseAlgorithm:
    """The model of ``checkpoint`` on ``venv``, with its normalisation and replay buffer.

    Args:
        checkpoint: what :func:`latest_checkpoint` found.
        algo: the agent's algorithm (``agent.algo``).
        venv: the training env, a ``VecNormalize`` when ``agent.normalize`` asks for one.
        device: torch device of the model.
        seed: seed of the model's random generators from here on.

    Raises:
        CheckpointError: naming a checkpoint file that cannot be read.
        ValueError: naming ``resume`` when the checkpoint lacks the normalisation statistics
            ``venv`` needs.
    """
    from agents.algorithms import algorithm_class  # it imports this module
    from agents.envs import load_normalization_stats

    if isinstance(venv, VecNormalize):
        if checkpoint.vecnormalize is None:
            raise ValueError(
                f"resume: the checkpoint {checkpoint.model} has no normalisation statistics but "
                "agent.normalize asks for them; resume with the run's own configuration"
            )
        with reading(checkpoint.vecnormalize):
            load_normalization_stats(checkpoint.vecnormalize, venv)
    with reading(checkpoint.model):
        model = algorithm_class(algo).load(str(checkpoint.model), env=venv, device=device)
    if checkpoint.replay_buffer is not None:
        with reading(checkpoint.replay_buffer):
            model.load_replay_buffer(str(checkpoint.replay_buffer))  # type: ignore[attr-defined]
    model.set_random_seed(seed)
    return model
