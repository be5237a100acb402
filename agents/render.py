"""Show or record episodes of a saved model or a baseline in a single environment.

``mode=human`` opens the environment's window (``render_mode="human"``); ``mode=video`` draws
``rgb_array`` frames and writes ``out`` as ``.mp4`` (imageio with ffmpeg) or ``.gif`` (Pillow).
Episodes use the evaluation seeds and, with ``eval.scenarios`` set, the evaluation scenarios,
like ``lepton-evaluate``; a saved model is found, checked against its run and normalised as
there (a run folder or a checkpoint, the run's env and agent unless the command line chooses
them, its own normalisation statistics; see :mod:`agents.evaluate`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from stable_baselines3.common.utils import set_random_seed

from agents.algorithms import as_sb3_agent
from agents.config import as_config, make_seeds, refuse_init_model
from agents.envs import make_single_env, make_vec_env
from agents.evaluate import follow_saved_run, load_saved_model, saved_model
from agents.policies import make_baseline
from agents.pretrained import check_fits
from agents.runs import run_folder, save_command, save_config
from conf.schema import RenderConfig, RenderMode, SB3AgentConfig

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".gif")

Act = Callable[[np.ndarray], np.ndarray]


def run(cfg: DictConfig) -> Path | None:
    """Render ``episodes`` episodes of the configured policy.

    Args:
        cfg: a configuration composed from ``conf/render.yaml``.

    Returns:
        The video file for ``mode=video``, ``None`` for ``mode=human``.
    """
    follow_saved_run(cfg)
    config = as_config(cfg, RenderConfig)
    refuse_init_model(config, "lepton-render")
    seeds = make_seeds(config.seed, config.n_envs, config.eval, config.episodes)
    if config.out is not None:
        _check_suffix(Path(config.out))

    set_random_seed(config.seed)
    torch.set_num_threads(config.torch_threads)

    render_mode = "human" if config.mode == RenderMode.human else "rgb_array"
    ev = dataclasses.replace(config.eval, episodes=seeds.episodes)
    env = make_single_env(config.env, render_mode=render_mode, ev=ev, first_seed=seeds.eval_start)
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
    fps = config.fps or int(env.metadata.get("render_fps", 4))
    env.close()
    if out is None:
        return None
    write_video(out, frames, fps)
    print(f"wrote {out} ({len(frames)} frames at {fps} fps)")
    return out


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


def write_video(path: Path, frames: Sequence[np.ndarray], fps: int) -> None:
    """Write ``frames`` (``[H, W, 3]`` uint8) to ``path``: ``.gif`` with Pillow, ``.mp4`` with imageio.

    Raises:
        ValueError: naming ``out`` for another suffix, or when there are no frames.
    """
    _check_suffix(path)
    if not frames:
        raise ValueError("no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(
            path,
            save_all=True,
            append_images=images[1:],
            duration=max(int(round(1000 / fps)), 20),
            loop=0,
        )
        return
    import imageio.v2 as imageio  # H.264 through the ffmpeg binary of imageio-ffmpeg

    imageio.mimwrite(path, [_even(f) for f in frames], fps=fps, codec="libx264", macro_block_size=1)


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad a frame to even height and width (H.264 with 4:2:0 chroma needs them)."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
