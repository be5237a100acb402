"""Show or record episodes of a saved model or a baseline in a single environment.

``mode=human`` opens the environment's window (``render_mode="human"``); ``mode=video`` draws
``rgb_array`` frames and writes ``out`` as ``.mp4`` (imageio with ffmpeg) or ``.gif`` (Pillow).
The env must list the render mode this needs in its ``metadata["render_modes"]`` (see
:func:`check_render_modes`); a GIF plays at most 50 frames per second (see :func:`gif_timing`).
Episodes use the evaluation seeds and, with ``eval.scenarios`` set, the evaluation scenarios,
like ``lepton-evaluate``; a saved model is found, checked against its run and normalised as
there (a run folder or a checkpoint, the run's env and agent unless the command line chooses
them, its own normalisation statistics; see :mod:`agents.evaluate`).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from stable_baselines3.common.utils import set_random_seed

from agents.algorithms import as_sb3_agent
from agents.config import as_config, make_seeds, refuse_init_model
from agents.envs import make_single_env, make_vec_env, resolve_env_id
from agents.evaluate import follow_saved_run, load_saved_model, saved_model
from agents.policies import make_baseline
from agents.pretrained import check_fits
from agents.runs import run_folder, save_command, save_config
from conf.schema import RenderConfig, RenderMode, SB3AgentConfig

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".gif")

NEEDED_RENDER_MODES = {RenderMode.human: ("human", "rgb_array"), RenderMode.video: ("rgb_array",)}
"""The env render modes each ``mode`` can use, any one of them: ``mode=human`` opens the env's
own window, or shows its ``rgb_array`` frames in Gymnasium's ``HumanRendering`` window."""

GIF_MAX_FPS = 50
"""The highest frame rate a GIF plays at: its frame delays are whole centiseconds, and browsers
and most image viewers show a delay under 2 cs (20 ms) for 10 cs."""

Act = Callable[[np.ndarray], np.ndarray]


def run(cfg: DictConfig) -> Path | None:
    """Render ``episodes`` episodes of the configured policy.

    Args:
        cfg: a configuration composed from ``conf/render.yaml``.

    Returns:
        The video file for ``mode=video``, ``None`` for ``mode=human``.

    Raises:
        ValueError: naming ``mode`` before anything is built or written when the env does not
            offer the render mode it needs (see :func:`check_render_modes`), ``out`` for an
            unsupported suffix.
    """
    follow_saved_run(cfg)
    config = as_config(cfg, RenderConfig)
    refuse_init_model(config, "lepton-render")
    seeds = make_seeds(config.seed, config.n_envs, config.eval, config.episodes)
    if config.out is not None:
        _check_suffix(Path(config.out))
    env_id = resolve_env_id(config.env)
    declared = _declared_render_modes(env_id)
    if declared is not None:  # before building anything: the env class declares its modes
        check_render_modes(env_id, config.mode, declared)

    set_random_seed(config.seed)
    torch.set_num_threads(config.torch_threads)

    render_mode = "human" if config.mode == RenderMode.human else "rgb_array"
    ev = dataclasses.replace(config.eval, episodes=seeds.episodes)
    env = make_single_env(config.env, render_mode=render_mode, ev=ev, first_seed=seeds.eval_start)
    if declared is None:  # an env made by a factory function: only the instance tells
        try:
            check_render_modes(env_id, config.mode, env.metadata.get("render_modes"))
        except ValueError:
            env.close()
            raise
    act = _policy(config, env, seeds.fit)
    folder = run_folder(cfg)
    out = _video_path(config, folder) if config.mode == RenderMode.video else None
    save_config(folder, cfg)
    save_command(folder)
    frames: list[np.ndarray] = []
    for seed in seeds.eval:
        obs, _ = env.reset(seed=seed)
        frames += _frame(env, out)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
            frames += _frame(env, out)
        log.info("episode seed %d: return %.2f", seed, total)
    fps = float(config.fps or env.metadata.get("render_fps") or 4)
    env.close()
    if out is None:
        return None
    written = write_video(out, frames, fps)
    print(f"wrote {out} ({written})")
    return out


def check_render_modes(env_id: str, mode: RenderMode, render_modes: Any) -> None:
    """Raise unless an env offering ``render_modes`` can be rendered in ``mode``.

    ``mode=video`` needs ``rgb_array`` frames; ``mode=human`` needs the env's own ``human``
    window or ``rgb_array`` frames to show in one (see :data:`NEEDED_RENDER_MODES`).

    Args:
        env_id: the env's registered id, for the message.
        mode: the ``mode`` asked for.
        render_modes: the env's ``metadata["render_modes"]`` (``None``: none declared).

    Raises:
        ValueError: naming ``mode``, ``env_id``, the render modes the env offers and the
            values of ``mode`` that this env allows.
    """
    listed = render_modes is not None and not isinstance(render_modes, str)
    offered = [str(m) for m in render_modes] if listed else []
    needed = NEEDED_RENDER_MODES[mode]
    if any(m in offered for m in needed):
        return
    allowed = [m.value for m, n in NEEDED_RENDER_MODES.items() if any(x in offered for x in n)]
    if mode == RenderMode.video:
        task = "recorded (mode=video draws render_mode='rgb_array' frames)"
        fix = (
            "to record it, list 'rgb_array' in the env class's metadata['render_modes'] and "
            "return an (H, W, 3) uint8 array from render() in that mode"
        )
        if allowed:
            fix = f"use mode=human to watch it in its window; {fix}"
    else:
        task = "shown (mode=human needs render_mode='human', or 'rgb_array' frames to show)"
        fix = (
            "to show it, list 'human' (render in step() and reset()) or 'rgb_array' (return an "
            "(H, W, 3) uint8 array from render()) in the env class's metadata['render_modes']"
        )
    declared = repr(offered) if render_modes is not None else "not declared"
    raise ValueError(
        f"mode: {env_id} cannot be {task}: its metadata['render_modes'] is {declared}; allowed "
        f"for this env: {', '.join(allowed) or 'none (it draws no frames and opens no window)'}; "
        f"{fix}"
    )


def _declared_render_modes(env_id: str) -> Any:
    """``metadata["render_modes"]`` of ``env_id``'s class (``None`` when it is not a dict there).

    An id made by a factory function, or whose class computes ``metadata`` per instance, gives
    ``None``: only the env it makes tells its modes. A class whose ``metadata`` has no
    ``render_modes`` gives ``[]``.
    """
    from envs.registration import env_class

    cls = env_class(env_id)
    metadata = getattr(cls, "metadata", None) if cls is not None else None
    if not isinstance(metadata, Mapping):
        return None
    return metadata.get("render_modes") or []


def _video_path(config: RenderConfig, folder: Path) -> Path:
    return _check_suffix(Path(config.out) if config.out else folder / f"{config.agent.name}.mp4")


def _check_suffix(out: Path) -> Path:
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"out: {str(out)!r} has an unsupported suffix; allowed: {VIDEO_SUFFIXES}")
    return out


def _frame(env: Any, out: Path | None) -> list[np.ndarray]:
    if out is None:
        return []
    frame = env.render()
    if frame is None:
        raise RuntimeError(f"{env.spec.id if env.spec else env}: render() returned no frame")
    return [np.asarray(frame, dtype=np.uint8)]


def _policy(config: RenderConfig, env: Any, fit_seeds: Sequence[int]) -> Act:
    """A function from one observation to one action, for the baseline or the saved model."""
    if not isinstance(config.agent, SB3AgentConfig):
        if config.model_path is not None:
            raise ValueError(
                f"model_path: a saved model needs an SB3 agent, but agent={config.agent.name} "
                "is a baseline"
            )
        baseline = make_baseline(config.agent.name, env, seed=config.seed, fit_seeds=fit_seeds)
        return lambda obs: baseline.predict(obs, deterministic=True)[0]
    agent = as_sb3_agent(config.agent, "rendering a model")
    saved = saved_model(config, "rendering a model")
    venv = make_vec_env(config.env, 1)  # checks the model's spaces against the env's
    check_fits(agent, venv, config.env.id)
    model, stats = load_saved_model(agent, saved, venv, config.device)
    slots = int(getattr(venv, "slots_per_replica", 1))
    nvec = np.asarray(getattr(env.action_space, "nvec", 0))

    def act(obs: np.ndarray) -> np.ndarray:
        if slots > 1:  # a policy shared by the env's units: one row each, then their actions
            obs = np.asarray(obs).reshape(slots, -1)
        if stats is not None:
            obs = np.asarray(stats.normalize_obs(obs))
        action = model.predict(obs, deterministic=config.eval.deterministic)[0]
        return np.asarray(action) % nvec if slots > 1 else action

    return act


@dataclasses.dataclass(frozen=True)
class Written:
    """What :func:`write_video` wrote.

    Attributes:
        frames: frames in the file.
        fps: their rate, frames per second.
        step: one frame in ``step`` of those recorded was written.
        recorded: frames recorded.
        recorded_fps: their rate, frames per second.
    """

    frames: int
    fps: float
    step: int
    recorded: int
    recorded_fps: float

    def __str__(self) -> str:
        text = f"{self.frames} frames at {self.fps:g} fps"
        if self.step == 1:
            return text
        return (
            f"{text}: 1 in {self.step} of the {self.recorded} frames recorded at "
            f"{self.recorded_fps:g} fps, as a GIF plays at most {GIF_MAX_FPS} fps"
        )


def gif_timing(n_frames: int, fps: float) -> tuple[int, list[int]]:
    """Which of ``n_frames`` frames recorded at ``fps`` a GIF keeps, and how long each shows.

    Every ``step``-th frame is kept, ``step`` the smallest that brings the rate to at most
    :data:`GIF_MAX_FPS`; each kept frame stands for ``step / fps`` seconds. GIF delays are whole
    centiseconds, so kept frame ``j`` ends at ``(j + 1) * step / fps`` seconds rounded to the
    nearest centisecond: the delays (none under 2 cs) add up to the kept frames' time instead of
    drifting by a rounding error per frame, and that time is the recorded time
    ``n_frames / fps`` rounded up to a whole kept frame.

    Args:
        n_frames: frames recorded (at least one).
        fps: their rate, frames per second (positive).

    Returns:
        ``step`` and the kept frames' delays in milliseconds (multiples of 10).
    """
    step = math.ceil(fps / GIF_MAX_FPS)
    kept = -(-n_frames // step)
    span = Fraction(100 * step) / Fraction(fps)  # centiseconds per kept frame
    ends = [math.floor(j * span + Fraction(1, 2)) for j in range(kept + 1)]
    return step, [10 * (b - a) for a, b in itertools.pairwise(ends)]


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float) -> Written:
    """Write ``frames`` (``[H, W, 3]`` uint8) to ``path``: ``.gif`` with Pillow, ``.mp4`` with imageio.

    A ``.gif`` above :data:`GIF_MAX_FPS` keeps every ``step``-th frame (see :func:`gif_timing`),
    so that it plays in the recorded time.

    Args:
        path: the video file.
        frames: the frames, recorded at ``fps``.
        fps: frames per second.

    Returns:
        The number of frames written and their rate.

    Raises:
        ValueError: naming ``out`` for another suffix, ``fps`` when not positive, or when there
            are no frames.
    """
    _check_suffix(path)
    if not frames:
        raise ValueError("no frames to write")
    if not fps > 0:
        raise ValueError(f"fps: {fps!r} is not a frame rate; allowed: a positive number")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        from PIL import Image

        step, delays = gif_timing(len(frames), fps)
        images = [Image.fromarray(f) for f in frames[::step]]
        images[0].save(path, save_all=True, append_images=images[1:], duration=delays, loop=0)
        return Written(len(images), fps / step, step, len(frames), fps)
    import imageio.v2 as imageio  # H.264 through the ffmpeg binary of imageio-ffmpeg

    imageio.mimwrite(path, [_even(f) for f in frames], fps=fps, codec="libx264", macro_block_size=1)
    return Written(len(frames), fps, 1, len(frames), fps)


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad a frame to even height and width (H.264 with 4:2:0 chroma needs them)."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
