"""Registry-wide environment tests: every registered id gets the same checks.

The checks are plain ``check_*`` functions taking an id, so other test modules (the scaffold's
test, a plugin's own tests) can run them on ids registered temporarily. New families are
covered automatically: the parametrisation reads ``envs.env_ids()`` at collection time.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import os
import pickle
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs import registration
from envs.core.sb3 import make_sb3_vec_env

ROOT = Path(__file__).resolve().parents[1]

ENV_IDS = envs.env_ids()

WARNING_ALLOW_LIST: tuple[str, ...] = (
    # unbounded Box observations (stock levels, queue lengths) are deliberate: builders scale
    # them but cannot bound them
    r"Box observation space minimum value is -infinity",
    r"Box observation space maximum value is infinity",
)
"""Regexes of the only warnings an env may raise under Gymnasium's and SB3's checkers."""

SB3_WARNING_ALLOW_LIST: tuple[str, ...] = WARNING_ALLOW_LIST
"""SB3's ``check_env`` also runs Gymnasium's passive checker through ``gym.make``."""

# --- helpers -------------------------------------------------------------------------------


@contextlib.contextmanager
def fail_on_warnings(allowed: Sequence[str]) -> Iterator[None]:
    """Record every warning in the block; fail on any not matching one of ``allowed``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    unexpected = [
        f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        for w in caught
        if not any(re.search(pattern, str(w.message)) for pattern in allowed)
    ]
    assert not unexpected, "unexpected warnings:\n" + "\n".join(unexpected)


@contextlib.contextmanager
def registry_restored() -> Iterator[None]:
    """Undo every registration made in the block (Gymnasium's registry and the suite's)."""
    gym_ids = set(gym.registry)
    infos = dict(registration._INFOS)
    plugins_loaded = registration._PLUGINS_LOADED
    try:
        yield
    finally:
        for env_id in set(gym.registry) - gym_ids:
            del gym.registry[env_id]
        registration._INFOS.clear()
        registration._INFOS.update(infos)
        registration._PLUGINS_LOADED = plugins_loaded


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Exact equality of nested observations / infos (arrays, dicts, scalars)."""
    if isinstance(a, Mapping):
        assert isinstance(b, Mapping), f"{where}: {type(b).__name__} is not a mapping"
        assert set(a) == set(b), f"{where}: keys differ: {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, np.ndarray | np.generic) or isinstance(b, np.ndarray | np.generic):
        np.testing.assert_array_equal(a, b, err_msg=where, strict=False)
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_step(a: Sequence[Any], b: Sequence[Any], where: str) -> None:
    """Exact equality of two ``step()`` results."""
    names = ("obs", "reward", "terminated", "truncated", "info")
    for name, x, y in zip(names, a, b, strict=True):
        assert_same(x, y, f"{where} {name}")


def action_sequences(env_id: str, num_envs: int, steps: int, seed: int) -> list[list[Any]]:
    """``steps`` random actions per replica (``[replica][t]``), replica ``i`` seeded ``seed+i``."""
    env = gym.make(env_id)
    out = []
    for i in range(num_envs):
        space = copy.deepcopy(env.action_space)
        space.seed(seed + i)
        out.append([space.sample() for _ in range(steps)])
    env.close()
    return out


def single_rollout(
    env_id: str, seed: int, actions: Sequence[Any], **make_kwargs: Any
) -> list[dict[str, Any]]:
    """Run one env seeded ``seed`` through ``actions``, resetting (unseeded) at episode ends.

    Returns one record per step: ``obs`` (the observation returned, i.e. the reset one after an
    episode end), ``final_obs`` (the last observation of an ended episode, else ``None``),
    ``reward``, ``terminated``, ``truncated`` and ``info``; record ``-1`` is the reset.
    """
    env = gym.make(env_id, **make_kwargs)
    obs, info = env.reset(seed=seed)
    records: list[dict[str, Any]] = [{"obs": obs, "info": info}]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        final = None
        if terminated or truncated:
            final = obs
            obs, _ = env.reset()
        records.append(
            {
                "obs": obs,
                "final_obs": final,
                "reward": reward,
                "terminated": terminated,
                "truncated": truncated,
                "info": info,
            }
        )
    env.close()
    return records


# --- the checks ------------------------------------------------------------------------------


def check_gymnasium_api(env_id: str) -> None:
    """Gymnasium's ``check_env`` on the unwrapped env (renders every declared mode too)."""
    with fail_on_warnings(WARNING_ALLOW_LIST):
        env = gym.make(env_id)
        gym_check_env(env.unwrapped)
        env.close()


def check_sb3_api(env_id: str) -> None:
    """Stable-Baselines3's ``check_env`` with its extra warnings turned into failures."""
    with fail_on_warnings(SB3_WARNING_ALLOW_LIST):
        env = gym.make(env_id)
        sb3_check_env(env, warn=True)
        env.close()


def check_seeded_determinism(env_id: str, seed: int = 7, max_steps: int = 200) -> None:
    """Two envs, same seed, same actions: identical rollouts for an episode (or ``max_steps``).

    Hidden global randomness (``np.random.*``, an unseeded generator) makes the rollouts differ.
    """
    a, b = gym.make(env_id), gym.make(env_id)
    obs_a, info_a = a.reset(seed=seed)
    obs_b, info_b = b.reset(seed=seed)
    assert_same(obs_a, obs_b, "reset obs")
    assert_same(info_a, info_b, "reset info")
    assert a.observation_space.contains(obs_a)
    a.action_space.seed(seed)
    for steps in range(1, max_steps + 1):
        action = a.action_space.sample()
        out_a, out_b = a.step(action), b.step(action)
        assert_same_step(out_a, out_b, f"step {steps}")
        assert a.observation_space.contains(out_a[0]), f"step {steps}: obs outside the space"
        assert np.isfinite(out_a[1]), f"step {steps}: reward {out_a[1]}"
        if out_a[2] or out_a[3]:
            break
    a.close()
    b.close()


def check_pickle_roundtrip(env_id: str, seed: int = 3, before: int = 5, after: int = 40) -> None:
    """An env pickled mid-episode continues exactly like the original (across an episode end)."""
    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    for _ in range(before):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    clone = pickle.loads(pickle.dumps(env))
    for t in range(after):
        action = env.action_space.sample()
        out_a, out_b = env.step(action), clone.step(action)
        assert_same_step(out_a, out_b, f"step {t} after unpickling")
        if out_a[2] or out_a[3]:
            assert_same(env.reset()[0], clone.reset()[0], f"reset after step {t}")
    env.close()
    clone.close()


def check_render_rgb_array(env_id: str, steps: int = 3) -> None:
    """``rgb_array`` frames are ``(H, W, 3)`` uint8 pictures; ``close()`` twice is allowed."""
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    env.action_space.seed(0)
    frames = [env.render()]
    for _ in range(steps):
        env.step(env.action_space.sample())
        frames.append(env.render())
    for frame in frames:
        assert isinstance(frame, np.ndarray), f"render() returned {type(frame).__name__}"
        assert frame.ndim == 3 and frame.shape[2] == 3, f"frame shape {frame.shape}"
        assert frame.shape[0] > 0 and frame.shape[1] > 0
        assert frame.dtype == np.uint8, f"frame dtype {frame.dtype}"
        assert frame.std() > 0, "the frame is a single flat colour"
    assert all(f.shape == frames[0].shape for f in frames), "frame size changes between steps"
    env.close()
    env.close()


def check_vector_equivalence(
    env_id: str, num_envs: int = 4, seed: int = 5, steps: int = 100, **make_kwargs: Any
) -> int:
    """Replica ``i`` of ``gymnasium.make_vec`` seeded ``s`` equals a single env seeded ``s + i``.

    Compares observations, rewards, flags and every info metric step by step, across
    autoresets (``final_obs`` at episode ends). Returns the number of episode ends seen.
    """
    actions = action_sequences(env_id, num_envs, steps, seed=100 + seed)
    singles = [single_rollout(env_id, seed + i, actions[i], **make_kwargs) for i in range(num_envs)]
    venv = gym.make_vec(env_id, num_envs=num_envs, **make_kwargs)
    if "autoreset_mode" in venv.metadata:
        assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    obs, _ = venv.reset(seed=seed)
    for i in range(num_envs):
        assert_same(obs[i], singles[i][0]["obs"], f"replica {i} reset obs")
    # every step's arrays are kept and compared after the last step: none may be a buffer
    # that later steps write to
    returned = []
    for t in range(steps):
        batch = np.stack([np.asarray(actions[i][t]) for i in range(num_envs)])
        returned.append(venv.step(batch))
    ends = 0
    for t, (obs, rewards, terminated, truncated, infos) in enumerate(returned):
        for i in range(num_envs):
            rec = singles[i][t + 1]
            where = f"replica {i} step {t}"
            assert_same(obs[i], rec["obs"], f"{where} obs")
            assert_same(rewards[i], rec["reward"], f"{where} reward")
            assert bool(terminated[i]) == rec["terminated"], f"{where} terminated"
            assert bool(truncated[i]) == rec["truncated"], f"{where} truncated"
            for key, value in rec["info"].items():
                if key == "reward_terms":
                    for term, x in value.items():
                        assert_same(infos[key][term][i], x, f"{where} reward term {term}")
                else:
                    assert key in infos, f"{where}: info {key!r} missing in the vector info"
                    assert_same(infos[key][i], value, f"{where} info {key}")
            if rec["final_obs"] is not None:
                ends += 1
                assert infos["_final_obs"][i], f"{where}: episode ended but _final_obs is False"
                assert_same(infos["final_obs"][i], rec["final_obs"], f"{where} final_obs")
            elif "_final_obs" in infos:
                assert not infos["_final_obs"][i], f"{where}: _final_obs set but no episode end"
    venv.close()
    return ends


def check_sb3_vec_equivalence(
    env_id: str,
    num_envs: int = 4,
    seed: int = 5,
    steps: int = 100,
    max_episode_steps: int | None = None,
) -> int:
    """Replica ``i`` of the SB3 ``VecEnv`` seeded ``s`` equals a single env seeded ``s + i``.

    ``max_episode_steps`` goes to :func:`make_sb3_vec_env` and to the single envs' ``TimeLimit``.
    Returns the episode ends seen.
    """
    actions = action_sequences(env_id, num_envs, steps, seed=200 + seed)
    make_kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    singles = [single_rollout(env_id, seed + i, actions[i], **make_kwargs) for i in range(num_envs)]
    venv = make_sb3_vec_env(env_id, num_envs=num_envs, seed=seed, **make_kwargs)
    obs = venv.reset()
    for i in range(num_envs):
        assert_same(obs[i], singles[i][0]["obs"], f"replica {i} reset obs")
    returned = []  # compared after the last step, as in check_vector_equivalence
    for t in range(steps):
        batch = np.stack([np.asarray(actions[i][t]) for i in range(num_envs)])
        returned.append(venv.step(batch))
    ends = 0
    for t, (obs, rewards, dones, infos) in enumerate(returned):
        for i in range(num_envs):
            rec = singles[i][t + 1]
            where = f"replica {i} step {t}"
            assert_same(obs[i], rec["obs"], f"{where} obs")
            assert rewards[i] == np.float32(rec["reward"]), f"{where} reward"
            assert bool(dones[i]) == (rec["terminated"] or rec["truncated"]), f"{where} done"
            for key, value in rec["info"].items():
                assert_same(infos[i][key], value, f"{where} info {key}")
            if rec["final_obs"] is not None:
                ends += 1
                assert_same(infos[i]["terminal_observation"], rec["final_obs"], f"{where} final")
                expected = rec["truncated"] and not rec["terminated"]
                assert infos[i].get("TimeLimit.truncated", False) == expected, where
            else:
                assert "terminal_observation" not in infos[i], where
    venv.close()
    return ends


def check_step_before_reset(env_id: str, num_envs: int = 2) -> None:
    """Both vector envs raise ``ResetNeeded`` for a step before the first reset, as a single
    env does, and the replicas are untouched: the first reset then equals a fresh env's."""
    action = np.stack([gym.make(env_id).action_space.sample() for _ in range(num_envs)])
    fresh, _ = gym.make_vec(env_id, num_envs=num_envs).reset(seed=0)
    venv = gym.make_vec(env_id, num_envs=num_envs)
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        venv.step(action)
    obs, _ = venv.reset(seed=0)
    assert_same(obs, fresh, "first observations after the refused step")
    sb3 = make_sb3_vec_env(env_id, num_envs=num_envs)
    sb3.step_async(action)
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        sb3.step_wait()
    venv.close()
    sb3.close()


def check_sb3_render(env_id: str, num_envs: int = 2) -> None:
    """The SB3 ``VecEnv`` renders ``rgb_array`` frames of every replica, tiled as SB3 does."""
    from stable_baselines3.common.vec_env.base_vec_env import tile_images

    venv = make_sb3_vec_env(env_id, num_envs=num_envs, seed=0, render_mode="rgb_array")
    venv.reset()
    venv.step(np.stack([venv.action_space.sample() for _ in range(num_envs)]))
    images = venv.get_images()
    single = gym.make(env_id, render_mode="rgb_array")
    single.reset(seed=0)
    shape = single.render().shape
    assert len(images) == num_envs
    for frame in images:
        assert isinstance(frame, np.ndarray) and frame.shape == shape and frame.dtype == np.uint8
    frame = venv.render()
    assert isinstance(frame, np.ndarray)
    assert frame.shape == tile_images(images).shape
    by_method = venv.env_method("render", indices=[num_envs - 1])
    assert len(by_method) == 1 and np.array_equal(by_method[0], images[-1])
    venv.close()
    single.close()


def check_ppo_smoke(env_id: str, total_timesteps: int = 128, num_envs: int = 4) -> None:
    """PPO trains a few steps on the SB3 ``VecEnv``: parameters change and stay finite."""
    import torch
    from stable_baselines3 import PPO

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        venv = make_sb3_vec_env(env_id, num_envs=num_envs, seed=0)
        model = PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
        before = [p.detach().clone() for p in model.policy.parameters()]
        model.learn(total_timesteps=total_timesteps)
        after = list(model.policy.parameters())
        assert model.num_timesteps >= total_timesteps
        assert any(not torch.equal(x, y) for x, y in zip(before, after, strict=True)), (
            "no parameter moved"
        )
        assert all(torch.isfinite(p).all() for p in after), "training produced NaN/inf weights"
        obs = venv.reset()
        action, _ = model.predict(obs, deterministic=True)
        for a in action:
            assert venv.action_space.contains(np.asarray(a, dtype=venv.action_space.dtype))
        venv.close()
    finally:
        torch.set_num_threads(threads)


# --- registry-wide tests ---------------------------------------------------------------------


def test_the_registry_is_not_empty():
    assert ENV_IDS, "no environment registered"
    for env_id in ENV_IDS:
        assert env_id.startswith("lepton/")
        assert envs.env_info(env_id).description.strip()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env(env_id):
    check_gymnasium_api(env_id)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_check_env(env_id):
    check_sb3_api(env_id)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seeded_determinism(env_id):
    check_seeded_determinism(env_id)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_roundtrip(env_id):
    check_pickle_roundtrip(env_id)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_rgb_array(env_id):
    assert os.environ.get("SDL_VIDEODRIVER") == "dummy"
    check_render_rgb_array(env_id)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_env_equals_single_envs(env_id):
    check_vector_equivalence(env_id)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_env_equals_single_envs_across_truncations(env_id):
    ends = check_vector_equivalence(env_id, steps=20, max_episode_steps=7)
    assert ends >= 4, "every replica must have been truncated at least once"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_vec_env_equals_single_envs(env_id):
    check_sb3_vec_equivalence(env_id)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_vec_env_equals_single_envs_across_truncations(env_id):
    ends = check_sb3_vec_equivalence(env_id, steps=20, max_episode_steps=7)
    assert ends >= 4


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_envs_refuse_a_step_before_reset(env_id):
    check_step_before_reset(env_id)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_vec_env_renders_every_replica(env_id):
    check_sb3_render(env_id)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_ppo_smoke(env_id):
    check_ppo_smoke(env_id)


# --- a registered variant's preset ----------------------------------------------------------

PRESET_CASES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("lepton/Inventory-v0", "serial4", {"horizon": 20}),
    ("lepton/InventoryORGym-v0", "orgym", {"horizon": 20}),
    ("lepton/Maintenance-v0", "five", {"horizon": 20}),
    ("lepton/MaintenanceSingle-v0", "single", {"horizon": 20}),
    ("lepton/Autoscale-v0", "steady", {"horizon": 20}),
    ("lepton/AutoscaleCluster-v0", "cluster3", {"horizon": 20}),
    ("lepton/RecSlate-v0", "slate", {"max_steps": 20}),
    ("lepton/RecLongTerm-v0", "long_term", {"max_steps": 20}),
    ("lepton/RecMovieLens-v0", "movielens", {"max_steps": 20}),
    ("lepton/RecSimIE-v0", "recsim_ie", {"max_steps": 20}),
    ("lepton/TrafficSignal-v0", "sumo_rl_single", {"scale": 2.0}),
    ("lepton/TrafficGrid-v0", "grid4x4", {"scale": 2.0}),
    ("lepton/TrafficArterial-v0", "arterial4", {"scale": 2.0}),
)
"""Every built-in id, its preset and one field a mapping overrides (kept at reset)."""


def scenario_key(scenario: Any) -> Any:
    """What identifies a scenario: itself, or for traffic its parts that compare by value."""
    from envs.traffic.scenario import TrafficScenario

    if not isinstance(scenario, TrafficScenario):
        return scenario
    net = scenario.network
    return (
        scenario.name,
        scenario.begin,
        scenario.end,
        net.num_lanes,
        net.num_signals,
        scenario.routes,
        scenario.flows,
        scenario.vehicles,
        scenario.signals,
    )


def test_every_builtin_id_is_checked_for_its_preset():
    builtin = [i for i in ENV_IDS if envs.env_info(i).entry_point.startswith("envs.")]
    assert sorted(builtin) == sorted(case[0] for case in PRESET_CASES)
    for env_id in builtin:
        kwargs = gym.spec(env_id).kwargs
        if "scenario" in kwargs:
            # the user's ``scenario`` replaces the registered one, not the registered preset
            assert kwargs.get("preset") == kwargs["scenario"], env_id


@pytest.mark.parametrize(("env_id", "preset", "fields"), PRESET_CASES)
def test_a_mapping_without_a_preset_starts_from_the_registered_preset(env_id, preset, fields):
    env = gym.make(env_id, scenario=fields)
    expected = scenario_key(env.unwrapped.coerce_scenario({"preset": preset, **fields}))
    assert scenario_key(env.unwrapped.structure) == expected
    plain = gym.make(env_id)
    plain.reset(seed=0, options={"scenario": fields})
    assert scenario_key(plain.unwrapped.runner.sim.scenarios[0]) == expected
    venv = gym.make_vec(env_id, num_envs=2, scenario=fields)
    assert scenario_key(venv.env.structure) == expected
    venv = gym.make_vec(env_id, num_envs=2)
    venv.reset(seed=0, options={"scenario": fields})
    assert [scenario_key(s) for s in venv.runner.sim.scenarios] == [expected] * 2
    sb3 = make_sb3_vec_env(env_id, 2, scenario=fields)
    assert scenario_key(sb3.env.structure) == expected
    # the variant's own scenario is unchanged
    unchanged = scenario_key(plain.unwrapped.coerce_scenario(preset))
    assert scenario_key(gym.make(env_id).unwrapped.structure) == unchanged


@pytest.mark.parametrize(
    "env_id",
    [
        "lepton/Inventory-v0",
        "lepton/Maintenance-v0",
        "lepton/Autoscale-v0",
        "lepton/RecSlate-v0",
        "lepton/TrafficSignal-v0",
    ],
)
def test_an_unknown_preset_is_refused_with_the_allowed_values(env_id):
    with pytest.raises(ValueError, match=r"^preset: unknown (traffic )?preset 'nope'; allowed "):
        gym.make(env_id, preset="nope")


# --- registry behaviour ----------------------------------------------------------------------


def test_register_twice_is_a_noop():
    env_id = ENV_IDS[0]
    info = envs.env_info(env_id)
    spec = gym.spec(env_id)
    with registry_restored():
        envs.register(env_id, info.entry_point, description="another text", family="other")
        assert envs.env_info(env_id) == info
        assert gym.spec(env_id) is spec
        families = envs.register_builtin()
        assert families, "register_builtin found no family package"
        assert envs.env_ids() == ENV_IDS


def test_register_same_id_with_another_entry_point_raises():
    env_id = ENV_IDS[0]
    with registry_restored(), pytest.raises(ValueError, match="already registered"):
        envs.register(env_id, "somewhere.else:OtherEnv", description="clash")
    assert envs.env_ids() == ENV_IDS


def test_register_validates_the_id_and_entry_point():
    with registry_restored():
        with pytest.raises(ValueError, match="version"):
            envs.register("lepton/NoVersion", "envs.core.env:LeptonEnv", description="x")
        with pytest.raises(ValueError, match="entry_point"):
            envs.register("lepton/BadEntry-v0", "envs.core.env.LeptonEnv", description="x")
        gym.register("lepton/Foreign-v0", entry_point="envs.core.env:LeptonEnv")
        with pytest.raises(ValueError, match="another package"):
            envs.register("lepton/Foreign-v0", "envs.core.env:LeptonEnv", description="x")
        envs.register("Prefixed-v0", "envs.core.env:LeptonEnv", description="namespace added")
        assert "lepton/Prefixed-v0" in envs.env_ids()
    assert "lepton/Prefixed-v0" not in gym.registry


def test_unknown_id_suggests_the_closest():
    with pytest.raises(gym.error.UnregisteredEnv, match=r"Did you mean: lepton/Inventory-v0"):
        envs.resolve_id("lepton/Inventry-v0")
    with pytest.raises(gym.error.UnregisteredEnv, match="lepton-envs"):
        envs.make("lepton/Inventry-v0")
    env_id = ENV_IDS[0]
    assert envs.resolve_id(env_id.removeprefix("lepton/")) == env_id
    typo = env_id[:-4] + env_id[-3:]  # drop one character before the version
    with pytest.raises(gym.error.UnregisteredEnv, match=re.escape(env_id)):
        envs.env_info(typo)


PLUGIN_MODULE = '''
"""A third-party package exposing one env through the lepton_gym.envs entry point."""

import envs
from {module} import {cls} as _Base


class ProbeEnv(_Base):
    """The base env under the plugin's own name."""


def register():
    envs.register(
        "lepton/PluginProbe-v0",
        "{plugin}:ProbeEnv",
        family="plugin_probe",
        description="Env exposed by a plugin package.",
    )
'''


def write_plugin(folder: Path, plugin: str = "lepton_probe_plugin") -> EntryPoint:
    """Write a plugin module into ``folder``; return its entry point."""
    module, _, cls = envs.env_info(ENV_IDS[0]).entry_point.partition(":")
    text = PLUGIN_MODULE.format(module=module, cls=cls, plugin=plugin)
    (folder / f"{plugin}.py").write_text(text)
    return EntryPoint(name="probe", value=f"{plugin}:register", group=registration.PLUGIN_GROUP)


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, eps: list[EntryPoint]) -> None:
    def entry_points(**params: Any) -> list[EntryPoint]:
        return [ep for ep in eps if ep.group == params.get("group")]

    monkeypatch.setattr(registration, "entry_points", entry_points)


def import_script(monkeypatch: pytest.MonkeyPatch, name: str) -> Any:
    """Import ``scripts.<name>`` from this checkout (whether or not ``scripts`` is installed)."""
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module(f"scripts.{name}")


def test_plugins_are_discovered_through_the_entry_point_group(tmp_path, monkeypatch):
    list_envs = import_script(monkeypatch, "list_envs").main
    monkeypatch.syspath_prepend(str(tmp_path))
    fake_entry_points(monkeypatch, [write_plugin(tmp_path)])
    with registry_restored():
        assert envs.load_plugins() == ["probe"]
        assert "lepton/PluginProbe-v0" in envs.env_ids()
        assert envs.env_info("lepton/PluginProbe-v0").family == "plugin_probe"
        env = gym.make("lepton/PluginProbe-v0")
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        env.close()
        buffer = io.StringIO()
        assert list_envs(["--json", "--family", "plugin_probe"], out=buffer) == 0
        rows = json.loads(buffer.getvalue())
        assert [r["id"] for r in rows] == ["lepton/PluginProbe-v0"]
        assert rows[0]["source"] == "lepton_probe_plugin"
    assert "lepton/PluginProbe-v0" not in gym.registry


def test_a_broken_plugin_only_warns(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "lepton_broken_plugin.py").write_text(
        "def register():\n    raise RuntimeError('boom: missing dependency')\n"
    )
    broken = EntryPoint("broken", "lepton_broken_plugin:register", registration.PLUGIN_GROUP)
    missing = EntryPoint("missing", "lepton_no_such_module:register", registration.PLUGIN_GROUP)
    fake_entry_points(monkeypatch, [broken, missing, write_plugin(tmp_path)])
    with registry_restored():
        with pytest.warns(UserWarning, match="failed to load") as record:
            loaded = envs.load_plugins()
        assert loaded == ["probe"]
        messages = sorted(str(w.message) for w in record)
        assert len(messages) == 2
        assert "plugin 'broken' failed to load: boom: missing dependency" in messages[0]
        assert (
            "plugin 'missing' failed to load: No module named 'lepton_no_such_module'"
            in (messages[1])
        )
        assert "lepton/PluginProbe-v0" in envs.env_ids()


def test_installed_plugin_is_listed_by_lepton_envs(tmp_path):
    """End to end: a distribution on the path declares the entry point; ``import envs`` finds it."""
    write_plugin(tmp_path)
    dist = tmp_path / "lepton_probe-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lepton-probe\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{registration.PLUGIN_GROUP}]\nprobe = lepton_probe_plugin:register\n"
    )
    (dist / "top_level.txt").write_text("lepton_probe_plugin\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    result = subprocess.run(
        [sys.executable, "-m", "scripts.list_envs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("lepton/PluginProbe-v0"))
    assert "plugin_probe" in line and "lepton-probe" in line
    for env_id in ENV_IDS:
        assert env_id in result.stdout
