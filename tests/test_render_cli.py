"""``lepton-render``: the render modes an env must offer, and GIF timing above 50 fps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from PIL import Image

from agents import render
from conf.schema import RenderMode

USER_ENV_PRESET = """
defaults:
  - /schema/env/generic@_here_
  - _self_
id: {id}
name: line_walk
kwargs: {{}}
metrics: []
"""


class LineWalk(gym.Env):
    """A walker on a line of ``length`` cells, rendered as text.

    The walker starts at cell 0 and steps left (action 0) or right (action 1); reaching the
    last cell ends the episode with a reward of 1. The observation is its cell, as a float.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012

    def __init__(self, length: int = 6, render_mode: str | None = None) -> None:
        self.length = length
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, float(length), (1,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.cell = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.cell = int(self.np_random.integers(0, self.length // 2))
        return self._obs(), {}

    def step(self, action: Any):
        self.cell = min(max(self.cell + (1 if int(action) == 1 else -1), 0), self.length)
        done = self.cell == self.length
        return self._obs(), float(done), done, False, {}

    def _obs(self) -> np.ndarray:
        return np.array([self.cell], dtype=np.float32)

    def render(self) -> Any:
        line = "." * self.cell + "o" + "." * (self.length - self.cell)
        if self.render_mode == "ansi":
            return line
        return None


class ConsoleLineWalk(LineWalk):
    """:class:`LineWalk` that prints its line for a person watching (``human`` only)."""

    metadata = {"render_modes": ["human"], "render_fps": 4}  # noqa: RUF012

    def step(self, action: Any):
        result = super().step(action)
        if self.render_mode == "human":
            print(super().render() or "")
        return result


class PictureLineWalk(LineWalk):
    """:class:`LineWalk` drawn as pixels (``rgb_array`` only): one 8 x 8 block per cell."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}  # noqa: RUF012

    def render(self) -> Any:
        if self.render_mode != "rgb_array":
            return None
        frame = np.full((8, 8 * (self.length + 1), 3), 240, dtype=np.uint8)
        frame[:, 8 * self.cell : 8 * (self.cell + 1)] = (200, 40, 40)
        return frame


def make_line_walk(**kwargs: Any) -> LineWalk:
    """A factory entry point: only the env it makes tells its render modes."""
    return LineWalk(**kwargs)


@pytest.fixture(scope="module")
def line_walk_model(tmp_path_factory) -> Path:
    """An untrained PPO model of the line walk: a ``model.zip`` without the run folder around it."""
    from stable_baselines3 import PPO

    path = tmp_path_factory.mktemp("line_walk") / "model.zip"
    PPO("MlpPolicy", LineWalk(), n_steps=8, batch_size=8, device="cpu").save(path)
    return path


@pytest.fixture
def user_env(make_cfg, tmp_path, line_walk_model) -> Iterator[Any]:
    """Register a user's env (``envs.register``) with its Hydra preset; compose a render config.

    Yields a function ``(entry_point, overrides) -> (env id, config)`` rendering the saved
    line-walk model on that env.
    """
    from test_envs_registry import registry_restored

    import envs

    conf = tmp_path / "user_conf"
    (conf / "env").mkdir(parents=True)
    count = 0

    def make(entry_point: str, overrides: list[str]) -> tuple[str, Any]:
        nonlocal count
        count += 1
        env_id = f"lepton/LineWalk-v{count}"
        envs.register(env_id, entry_point, description="a walk on a line", max_episode_steps=12)
        (conf / "env" / f"line_walk_{count}.yaml").write_text(USER_ENV_PRESET.format(id=env_id))
        search = f"hydra.searchpath=[file://{conf}]"
        model = f"model_path={line_walk_model}"
        cfg = make_cfg("render", [search, f"env=line_walk_{count}", model, *overrides])
        return env_id, cfg

    with registry_restored():
        yield make


@pytest.mark.parametrize(
    ("entry_point", "mode", "offered", "allowed", "hint"),
    [
        ("LineWalk", "video", "['ansi']", "none", "list 'rgb_array'"),
        ("ConsoleLineWalk", "video", "['human']", "human", "use mode=human"),
        ("LineWalk", "human", "['ansi']", "none", "list 'human'"),
        ("make_line_walk", "video", "['ansi']", "none", "list 'rgb_array'"),
    ],
)
def test_render_refuses_an_env_without_the_render_mode(
    user_env, tmp_path, entry_point, mode, offered, allowed, hint
):
    out = tmp_path / "walk.gif"
    env_id, cfg = user_env(f"test_render_cli:{entry_point}", [f"mode={mode}", f"out={out}"])
    with pytest.raises(ValueError) as caught:
        render.run(cfg)
    message = str(caught.value)
    assert message.startswith(f"mode: {env_id} cannot be ")
    assert f"mode={mode}" in message
    assert f"metadata['render_modes'] is {offered}" in message
    assert f"allowed for this env: {allowed}" in message
    assert hint in message
    assert not Path(cfg.run_dir).exists() and not out.exists()


def test_render_records_a_user_env_that_draws_frames(user_env, tmp_path):
    out = tmp_path / "walk.gif"
    _, cfg = user_env("test_render_cli:PictureLineWalk", ["mode=video", f"out={out}"])
    assert render.run(cfg) == out
    with Image.open(out) as gif:
        assert gif.size == (8 * 7, 8)


def test_check_render_modes_lets_human_show_rgb_array_frames():
    render.check_render_modes("lepton/X-v0", RenderMode.human, ["rgb_array"])
    render.check_render_modes("lepton/X-v0", RenderMode.human, ("human",))
    with pytest.raises(ValueError, match=r"render_modes'\] is not declared; allowed for this env"):
        render.check_render_modes("lepton/X-v0", RenderMode.video, None)


def _gif_delays(path: Path) -> list[int]:
    """The delay of every frame of the GIF at ``path``, in milliseconds."""
    delays = []
    with Image.open(path) as gif:
        for i in range(gif.n_frames):
            gif.seek(i)
            delays.append(int(gif.info["duration"]))
    return delays


def _distinct_frames(n: int) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        frame = np.zeros((6, 8 * n, 3), dtype=np.uint8)
        frame[:, 8 * i : 8 * (i + 1)] = 255
        frames.append(frame)
    return frames


@pytest.mark.parametrize(
    ("n", "fps", "written", "step"),
    [(61, 60, 31, 2), (31, 30, 31, 1), (100, 120, 34, 3), (31, 4, 31, 1), (20, 7, 20, 1)],
)
def test_gif_plays_in_the_recorded_time(tmp_path, n, fps, written, step):
    out = tmp_path / "frames.gif"
    result = render.write_video(out, _distinct_frames(n), fps)
    delays = _gif_delays(out)
    assert len(delays) == written
    assert all(d % 10 == 0 and d >= 20 for d in delays)  # whole centiseconds, none clamped
    # every delay is within a centisecond of the written frame's time, and they add up
    assert all(abs(d - 1000 * step / fps) < 10 for d in delays)
    recorded_ms = 1000 * n / fps
    assert recorded_ms - 5 <= sum(delays) <= recorded_ms + 1000 * step / fps + 5
    assert (result.frames, result.step, result.recorded) == (written, step, n)
    assert result.fps == pytest.approx(fps / step) and result.fps <= render.GIF_MAX_FPS


def test_gif_timing_keeps_every_frame_up_to_50_fps():
    assert render.gif_timing(5, 50) == (1, [20] * 5)
    assert render.gif_timing(3, 51) == (2, [40, 40])
    step, delays = render.gif_timing(600, 60)  # ten seconds
    assert step == 2 and len(delays) == 300 and sum(delays) == 10_000


def test_render_writes_a_60_fps_gif_at_30_fps(make_cfg, tmp_path, capsys):
    out = tmp_path / "fast.gif"
    cfg = make_cfg("render", ["agent=base_stock", "mode=video", "fps=60", f"out={out}"])
    assert render.run(cfg) == out
    delays = _gif_delays(out)
    assert len(delays) == 16  # 1 in 2 of the 31 frames (the reset frame and one per period)
    assert set(delays) <= {30, 40}
    assert abs(sum(delays) - 1000 * 32 / 60) <= 5
    printed = capsys.readouterr().out
    assert "16 frames at 30 fps: 1 in 2 of the 31 frames recorded at 60 fps" in printed
