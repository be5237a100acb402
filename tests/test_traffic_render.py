"""Drawing of traffic networks: frames, vehicles on lanes and in junctions, signal bars, video."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the lepton/ ids)

pytest.importorskip("pygame")

from envs.traffic.network import LINK_STATES  # noqa: E402
from envs.traffic.render import (  # noqa: E402
    HEADER,
    LINK_COLORS,
    ROAD,
    TrafficView,
    format_clock,
    speed_colors,
)
from envs.traffic.sim import F_POS, F_SPEED, I_ALIVE, I_INCONN, I_LANE  # noqa: E402

RED = LINK_STATES.index("r")


def _rollout(env: gym.Env, steps: int, seed: int = 0) -> list[np.ndarray]:
    """Frames after reset and after each of ``steps`` seeded random steps."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    frames = [env.render()]
    for _ in range(steps):
        env.step(env.action_space.sample())
        frames.append(env.render())
    return frames


def _view_of(env: gym.Env) -> TrafficView:
    return TrafficView(env.unwrapped.structure, "rgb_array", 5)


def _check_frames(env: gym.Env, steps: int, min_red: float = 1.0) -> tuple[np.ndarray, TrafficView]:
    frames = _rollout(env, steps)
    for frame in frames:
        assert frame.shape == (600, 800, 3) and frame.dtype == np.uint8
    # the map (below the header) changes as vehicles move
    assert any(
        not np.array_equal(a[HEADER:], b[HEADER:])
        for a, b in zip(frames[:-1], frames[1:], strict=True)
    )
    assert not np.array_equal(frames[0][:HEADER], frames[-1][:HEADER])  # the clock advances
    view = _view_of(env)
    snap = env.unwrapped.snapshot().replica(0)
    frame = frames[-1]

    # vehicles on a lane, away from the signal bars, are drawn in a vehicle colour on the road
    center, _, _, colors = view.vehicles(snap)
    vi, vf = snap.veh_int[0], snap.veh_float[0]
    alive = np.flatnonzero(vi[:, I_ALIVE] == 1)
    assert alive.size > 0
    on_lane = vf[alive, F_POS] > 8.0
    if view.bar_center.size:
        gap = np.linalg.norm(center[:, None] - view.bar_center[None], axis=2).min(axis=1)
        on_lane &= gap > 6.0
    view.draw(snap, {})
    drawn = 0
    for x, y in center[on_lane].round().astype(int):
        if view.background.get_at((x, y))[:3] != ROAD:
            continue  # e.g. over a lane marking
        drawn += 1
        nearest = np.abs(colors.astype(int) - frame[y, x]).max(axis=1).min()
        assert nearest <= 2, (x, y, frame[y, x])
    assert drawn > 0

    # the bar of a red link is red
    codes = snap.link_state[0][view.bar_link]
    red = np.flatnonzero(codes == RED)
    assert red.size > 0
    x, y = np.floor(view.bar_center[red]).astype(int).T
    r, g, b = frame[y, x].astype(int).T
    reddish = (r > 200) & (g < 60) & (b < 60)
    assert reddish.mean() >= min_red, frame[y, x][~reddish]
    view.close()
    return frame, view


def test_single_intersection_frames():
    env = gym.make("lepton/TrafficSignal-v0", render_mode="rgb_array")
    _check_frames(env, steps=12)
    env.close()
    env.close()


def test_grid_frames():
    env = gym.make("lepton/TrafficGrid-v0", render_mode="rgb_array")
    _, view = _check_frames(env, steps=12, min_red=0.8)  # tiny bars of adjacent lanes overlap
    assert view.bar_link.size == sum(s.num_links for s in env.unwrapped.structure.network.signals)
    env.close()


def test_vehicle_inside_a_junction_follows_the_connection_shape():
    env = gym.make("lepton/TrafficSignal-v0", scenario="single4", render_mode="rgb_array")
    env.reset(seed=0)
    snap = env.unwrapped.snapshot().replica(0)
    view = _view_of(env)
    net = view.network
    c = int(np.argmax(net.conn_length))  # a turn with a curved internal shape
    vi = snap.veh_int.copy()
    vf = snap.veh_float.copy()
    vi[0, :, I_ALIVE] = 0
    vi[0, 0, [I_ALIVE, I_LANE, I_INCONN]] = (1, net.conn_to[c], c)
    front = 0.5 * net.conn_length[c] + view.vehicle_length[0] / 2
    vf[0, 0, [F_POS, F_SPEED]] = (front - net.conn_length[c], 0.0)
    snap = dataclasses.replace(snap, veh_int=vi, veh_float=vf)
    center, unit, length, colors = view.vehicles(snap)
    assert center.shape == (1, 2) and unit.shape == (1, 2) and length.shape == (1,)
    shape = view.conn_polys[c]
    seg = np.hypot(*np.diff(shape, axis=0).T)
    half = np.interp(
        0.5 * seg.sum(), np.concatenate([[0.0], np.cumsum(seg)]), np.arange(len(shape))
    )
    k = min(int(half), len(shape) - 2)
    expected = shape[k] + (half - k) * (shape[k + 1] - shape[k])
    np.testing.assert_allclose(center[0], view.transform(expected), atol=1e-6)
    np.testing.assert_allclose(np.hypot(*unit[0]), 1.0)
    np.testing.assert_array_equal(colors[0], speed_colors(np.zeros(1))[0])
    env.close()


def test_positions_are_scaled_to_the_drawn_lane_length():
    env = gym.make("lepton/TrafficSignal-v0", scenario="single3", render_mode="rgb_array")
    env.reset(seed=0)
    view = _view_of(env)
    lane = 0
    shape = view.lane_polys[lane]
    nominal = float(view.network.lane_length[lane])
    paths = view.paths
    xy, unit = paths.locate(np.array([lane, lane, lane]), np.array([-5.0, nominal, 1e9]))
    np.testing.assert_allclose(xy[0], shape[0])
    np.testing.assert_allclose(xy[1], shape[-1], atol=1e-9)
    np.testing.assert_allclose(xy[2], shape[-1], atol=1e-9)
    np.testing.assert_allclose(np.hypot(unit[:, 0], unit[:, 1]), 1.0)
    env.close()


def test_clock_colours_and_link_palette():
    assert format_clock(0.0) == "00:00:00"
    assert format_clock(3725.4) == "01:02:05"
    assert format_clock(90000.0) == "25:00:00"
    slow, fast = speed_colors(np.array([0.0, 2.0]))
    assert slow[0] > 200 and slow[1] < 60 and fast[1] > 150 and fast[0] < 60
    assert set(LINK_COLORS) == set(LINK_STATES)


def test_human_mode_headless():
    assert os.environ.get("SDL_VIDEODRIVER") == "dummy"
    env = gym.make("lepton/TrafficSignal-v0", render_mode="human")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert env.render() is None
    env.close()
    env.close()


def test_human_mode_survives_another_window_closing():
    """pygame has one display: closing one human-mode env leaves the other drawing."""
    first = gym.make("lepton/TrafficSignal-v0", render_mode="human")
    second = gym.make("lepton/TrafficSignal-v0", render_mode="human")
    first.reset(seed=0)
    second.reset(seed=0)
    first.close()
    second.step(0)  # draws its frame in a window of its own again
    assert second.render() is None
    second.close()


def test_recording_through_lepton_render(make_cfg, tmp_path):
    from PIL import Image

    from agents import render

    out = tmp_path / "traffic.gif"
    cfg = make_cfg("render", ["env=recsys/slate", "agent=random", "mode=video", f"out={out}"])
    cfg.env.id = "lepton/TrafficSignal-v0"
    cfg.env.name = "traffic"
    cfg.env.kwargs = {"scenario": {"preset": "sumo_rl_single", "seconds": 40}}
    cfg.env.metrics = []
    assert render.run(cfg) == out
    with Image.open(out) as gif:
        assert gif.n_frames == 9  # the reset frame and one per 5 s decision
        assert gif.size == (800, 600)


def _resco_available() -> str | None:
    """Why the RESCO networks cannot be rendered here, or ``None`` when they can."""
    root = Path(__file__).resolve().parents[1] / "envs" / "traffic"
    missing = [f for f in ("nets.py", "sumo_import.py") if not (root / f).is_file()]
    if missing:
        return f"the SUMO importer is not available ({', '.join(missing)} missing)"
    from envs.traffic.nets import cache_dir

    if importlib.util.find_spec("sumo_rl") is None and not (cache_dir() / "nets").is_dir():
        return f"the sumo-rl networks are not installed or cached in {cache_dir()}"
    return None


def test_render_resco_network():
    reason = _resco_available()
    if reason:
        pytest.skip(reason)
    from envs.traffic.nets import resco_scenario

    sc = resco_scenario("cologne8")
    env = gym.make("lepton/TrafficSignal-v0", scenario=sc, render_mode="rgb_array")
    frames = _rollout(env, steps=6)
    assert all(f.shape == (600, 800, 3) and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0][HEADER:], frames[-1][HEADER:])
    view = _view_of(env)
    # the network fills the map area: roads reach near two opposite margins
    road = np.any(frames[0][HEADER:] != frames[0][HEADER + 1, 1], axis=2)
    rows, cols = np.flatnonzero(road.any(axis=1)), np.flatnonzero(road.any(axis=0))
    assert rows[-1] - rows[0] > 0.9 * (600 - HEADER - 24) or cols[-1] - cols[0] > 0.9 * 776
    assert view.bar_link.size > 0
    env.close()
