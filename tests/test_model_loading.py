"""Saved models: run folders, checkpoints and their statistics, and the env a run recorded."""

import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_BUDGETS, shrink_agent
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict
from stable_baselines3 import A2C

from agents import evaluate, render, train
from agents.algorithms import model_file, run_config_path
from agents.config import as_config, make_seeds
from agents.envs import (
    load_normalization,
    make_vec_env,
    normalization_path,
    saved_normalization,
)
from agents.evaluate import chooses
from agents.evaluation import run_episodes
from conf.schema import EvaluateConfig

EPISODES = 8  # eval.episodes of the tiny budgets


@pytest.fixture(scope="module")
def a2c_run(composer, tmp_path_factory) -> tuple[Path, dict]:
    """A tiny A2C run on the lost-sales chain, with checkpoints: (run folder, its metrics)."""
    folder = tmp_path_factory.mktemp("a2c") / "run"
    overrides = ("env=inventory_lost_sales", "agent=a2c", "tensorboard=false")
    metrics = train.run(composer("config", overrides, folder))
    return folder, metrics


def _checkpoint(folder: Path) -> Path:
    return sorted((folder / "checkpoints").glob("model_*_steps.zip"))[0]


@pytest.fixture
def hydra_cfg(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """Compose a root config as a Hydra app does: the overrides are the job's command line."""
    count = 0

    def make(config_name: str, overrides: Sequence[str], run_dir: bool = True) -> DictConfig:
        nonlocal count
        count += 1
        folder = [f"run_dir={tmp_path / f'run{count}'}"] if run_dir else []  # else the default
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="conf", version_base="1.3"):
            cfg = compose(
                config_name,
                overrides=[*TINY_BUDGETS, *folder, *overrides],
                return_hydra_config=True,
            )
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return shrink_agent(cfg)

    yield make
    HydraConfig.instance().cfg = None
    GlobalHydra.instance().clear()


# --- where a model's files are ----------------------------------------------------------------


def test_normalization_path_of_models_checkpoints_and_folders(tmp_path):
    assert normalization_path(tmp_path / "model.zip") == tmp_path / "vecnormalize.pkl"
    checkpoint = tmp_path / "checkpoints" / "model_10240_steps.zip"
    assert normalization_path(checkpoint) == checkpoint.with_name(
        "model_vecnormalize_10240_steps.pkl"
    )
    assert normalization_path(tmp_path) == tmp_path / "vecnormalize.pkl"


def test_model_file_takes_a_run_folder(tmp_path):
    (tmp_path / "model.zip").write_bytes(b"")
    assert model_file(tmp_path) == tmp_path / "model.zip"
    assert model_file(tmp_path / "model.zip") == tmp_path / "model.zip"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"model_path: no model at .*without model.zip"):
        model_file(empty)


def test_run_config_of_a_checkpoint_is_in_the_run_folder(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    assert run_config_path(tmp_path / "checkpoints" / "model_8_steps.zip") is None
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    assert run_config_path(tmp_path / "model.zip") == tmp_path / "config.yaml"
    checkpoint = tmp_path / "checkpoints" / "model_8_steps.zip"
    assert run_config_path(checkpoint) == tmp_path / "config.yaml"


def test_missing_statistics_of_a_normalised_model_fail(tmp_path, caplog):
    model = tmp_path / "model.zip"
    with pytest.raises(FileNotFoundError, match=r"trained with observation normalisation"):
        saved_normalization(model, True)
    assert saved_normalization(model, False) is None
    with caplog.at_level(logging.WARNING):
        assert saved_normalization(model, None) is None
    assert "whether it needs normalisation statistics is unknown" in caplog.text
    (tmp_path / "vecnormalize.pkl").write_bytes(b"")
    assert saved_normalization(model, True) == tmp_path / "vecnormalize.pkl"


@pytest.mark.parametrize(
    ("overrides", "group", "chosen"),
    [
        (["model_path=m.zip"], "env", False),
        (["env=inventory_lost_sales"], "env", True),
        (["env.kwargs.scenario=lost_sales"], "env", False),
        (["experiment=traffic_single_ppo"], "env", True),
        (["experiment=traffic_single_ppo"], "agent", True),
        (["agent=a2c"], "env", False),
        (["agent=a2c"], "agent", True),
    ],
)
def test_which_overrides_choose_a_group(overrides, group, chosen):
    assert chooses(group, overrides) is chosen


# --- evaluating a saved model -----------------------------------------------------------------


def test_evaluate_a_run_folder(a2c_run, make_cfg):
    folder, metrics = a2c_run
    cfg = make_cfg("evaluate", ["agent=a2c", "env=inventory_lost_sales", f"model_path={folder}"])
    assert evaluate.run(cfg) == {"a2c": metrics["a2c"]}


def test_evaluate_a_checkpoint_with_its_own_statistics(a2c_run, make_cfg):
    folder, _ = a2c_run
    checkpoint = _checkpoint(folder)
    overrides = ["agent=a2c", "env=inventory_lost_sales", f"model_path={checkpoint}"]
    cfg = make_cfg("evaluate", overrides)
    result = evaluate.run(cfg)

    config = as_config(cfg, EvaluateConfig)
    seeds = make_seeds(config.seed, config.n_envs, config.eval, EPISODES)
    steps = checkpoint.name.removeprefix("model_").removesuffix("_steps.zip")
    stats = checkpoint.with_name(f"model_vecnormalize_{steps}_steps.pkl")  # not the run's final
    venv = load_normalization(stats, make_vec_env(config.env, 4))
    expected = run_episodes(A2C.load(checkpoint), venv, seeds.eval_start, EPISODES)
    assert result["a2c"]["return"]["mean"] == pytest.approx(np.mean(expected.returns))


def test_checkpoint_without_its_statistics_is_refused(a2c_run, make_cfg, tmp_path):
    folder, _ = a2c_run
    copy = tmp_path / "copy"
    (copy / "checkpoints").mkdir(parents=True)
    shutil.copy(folder / "config.yaml", copy)
    checkpoint = shutil.copy(_checkpoint(folder), copy / "checkpoints")
    overrides = ["agent=a2c", "env=inventory_lost_sales", f"model_path={checkpoint}"]
    cfg = make_cfg("evaluate", overrides)
    with pytest.raises(FileNotFoundError, match=r"model_path: .* observation normalisation"):
        evaluate.run(cfg)
    assert not Path(cfg.run_dir).exists()


def test_evaluate_uses_the_env_and_agent_of_the_run(a2c_run, hydra_cfg):
    folder, metrics = a2c_run
    cfg = hydra_cfg("evaluate", [f"model_path={folder / 'model.zip'}"])  # defaults: ppo, serial4
    run_dir = cfg.run_dir
    assert evaluate.run(cfg) == {"a2c": metrics["a2c"]}
    saved = OmegaConf.load(Path(run_dir) / "config.yaml")
    assert saved.run_dir == run_dir  # the folder Hydra opened for the job
    assert saved.env.kwargs.scenario == "lost_sales" and saved.agent.algo == "a2c"


def test_default_folder_names_the_env_and_agent_of_the_run(
    a2c_run, hydra_cfg, tmp_path, monkeypatch
):
    folder, metrics = a2c_run
    monkeypatch.chdir(tmp_path)  # the default folders are relative: runs/evaluate/...
    cfg = hydra_cfg("evaluate", [f"model_path={folder}"], run_dir=False)  # defaults: ppo, serial4
    opened = Path(HydraConfig.get().run.dir)  # the folder Hydra opens for the job
    assert opened.parent == Path("runs/evaluate")
    assert opened.name.startswith("inventory_lost_sales__a2c__0__")
    assert evaluate.run(cfg) == {"a2c": metrics["a2c"]}
    run_dir = Path(cfg.run_dir)
    assert run_dir.parent == opened.parent and run_dir.name.startswith(
        "inventory_lost_sales__a2c__0__"
    )
    assert OmegaConf.load(run_dir / "config.yaml").env.name == "inventory_lost_sales"
    assert [p.name.split("__")[0] for p in Path("runs/evaluate").iterdir()] == [
        "inventory_lost_sales"
    ]
    # what the command line chooses names the folder; the rest is still the run's
    hydra_cfg("evaluate", ["env=inventory", f"model_path={folder}"], run_dir=False)
    assert Path(HydraConfig.get().run.dir).name.startswith("inventory__a2c__0__")
    hydra_cfg("evaluate", ["agent=base_stock", f"model_path={folder}"], run_dir=False)
    assert Path(HydraConfig.get().run.dir).name.startswith("inventory__base_stock__0__")
    hydra_cfg("render", [f"model_path={_checkpoint(folder)}"], run_dir=False)
    opened = Path(HydraConfig.get().run.dir)
    assert opened.parent == Path("runs/render")
    assert opened.name.startswith("inventory_lost_sales__a2c__0__")


def test_evaluate_with_the_agent_chosen_still_uses_the_run_env(a2c_run, hydra_cfg):
    folder, metrics = a2c_run
    cfg = hydra_cfg("evaluate", ["agent=a2c", f"model_path={folder}"])
    assert evaluate.run(cfg) == {"a2c": metrics["a2c"]}
    assert OmegaConf.load(Path(cfg.run_dir) / "config.yaml").env.kwargs.scenario == "lost_sales"


def test_chosen_env_is_a_transfer_evaluation(a2c_run, hydra_cfg, caplog):
    folder, _ = a2c_run
    cfg = hydra_cfg("evaluate", ["agent=a2c", "env=inventory", f"model_path={folder}"])
    with caplog.at_level(logging.WARNING):
        result = evaluate.run(cfg)
    assert list(result) == ["a2c"]
    assert "transfer evaluation: the model was trained on lepton/Inventory-v0 with" in caplog.text
    assert "env.kwargs.scenario='lost_sales'" in caplog.text
    assert OmegaConf.load(Path(cfg.run_dir) / "config.yaml").env.kwargs.scenario == "serial4"


def test_transfer_to_other_spaces_is_refused(a2c_run, hydra_cfg):
    folder, _ = a2c_run
    cfg = hydra_cfg("evaluate", [f"model_path={folder}", "env.kwargs.action_mode=discrete"])
    with pytest.raises(ValueError, match=r"transfer evaluation refused: .*Action spaces do not"):
        evaluate.run(cfg)


def test_render_uses_the_run_env(a2c_run, hydra_cfg, tmp_path):
    folder, _ = a2c_run
    out = tmp_path / "a2c.gif"
    cfg = hydra_cfg("render", [f"model_path={_checkpoint(folder)}", f"out={out}"])
    assert render.run(cfg) == out
    assert OmegaConf.load(Path(cfg.run_dir) / "config.yaml").env.kwargs.scenario == "lost_sales"


# --- runtime-only keys and pretrained agents --------------------------------------------------


def test_runtime_only_env_keys_are_no_difference(make_cfg, caplog):
    cfg = make_cfg("evaluate", ["experiment=traffic_single_ppo", "agent=pretrained/traffic-single"])
    config = as_config(cfg, EvaluateConfig)
    assert config.env.kwargs["threads"] == 1  # the packaged config.yaml has no threads key
    venv = make_vec_env(config.env, 1)
    seeds = make_seeds(config.seed, config.n_envs, config.eval, 1)
    with caplog.at_level(logging.WARNING):
        evaluate.load_policy(config, venv, seeds)
    venv.close()
    assert "trained on" not in caplog.text


def test_pretrained_agent_without_env_uses_its_source_env(hydra_cfg):
    cfg = hydra_cfg("evaluate", ["agent=pretrained/traffic-single"])
    assert evaluate.follow_saved_run(cfg) == ["env"]
    assert as_config(cfg, EvaluateConfig).env.id == "lepton/TrafficSignal-v0"


def test_generate_resolves_a_checkpoint_with_its_run_config_and_statistics(a2c_run, tmp_path):
    from agents.generate import resolve_agent

    folder, _ = a2c_run
    checkpoint = _checkpoint(folder)
    loaded = resolve_agent(str(checkpoint))
    assert (loaded.algo, loaded.env_kwargs.get("scenario")) == ("a2c", "lost_sales")
    steps = checkpoint.name.removeprefix("model_").removesuffix("_steps.zip")
    assert loaded.normalization == checkpoint.with_name(f"model_vecnormalize_{steps}_steps.pkl")
    copy = tmp_path / "copy"
    (copy / "checkpoints").mkdir(parents=True)
    shutil.copy(folder / "config.yaml", copy)
    lone = shutil.copy(checkpoint, copy / "checkpoints")
    with pytest.raises(FileNotFoundError, match=r"model: .* observation normalisation"):
        resolve_agent(str(lone))


def test_default_reward_weights_given_or_not_are_no_difference():
    from agents.evaluate import _env_identity

    env = {"id": "lepton/Inventory-v0", "kwargs": {"scenario": "serial4"}}
    weights = [None, {}, {"revenue": 1, "holding_cost": 1.0}]
    ids = [
        _env_identity({**env, "kwargs": {**env["kwargs"], "reward_weights": w}}) for w in weights
    ]
    assert ids[0] == ids[1] == ids[2] == _env_identity(env)
    other = {**env, "kwargs": {**env["kwargs"], "reward_weights": {"holding_cost": 2}}}
    assert _env_identity(other) != ids[0]


def test_an_idle_preset_is_no_difference():
    from omegaconf import OmegaConf

    from agents.evaluate import _env_identity
    from agents.runs import config_differences

    # runs saved before env presets declared ``preset`` match the configs of now
    old = {"id": "lepton/Inventory-v0", "kwargs": {"scenario": "lost_sales"}}
    named = {**old, "kwargs": {**old["kwargs"], "preset": "lost_sales"}}
    own = {**old, "kwargs": {"scenario": {"preset": "lost_sales", "horizon": 12}}}
    assert _env_identity(named) == _env_identity(old)
    assert _env_identity({**own, "kwargs": {**own["kwargs"], "preset": "serial4"}}) == (
        _env_identity(own)
    )
    assert config_differences({"env": old}, OmegaConf.create({"env": named})) == []
    # where it decides the scenario it is compared
    bare = {**old, "kwargs": {"scenario": {"horizon": 12}}}
    other = {**bare, "kwargs": {**bare["kwargs"], "preset": "lost_sales"}}
    assert _env_identity(other) != _env_identity(bare)
    [difference] = config_differences({"env": bare}, OmegaConf.create({"env": other}))
    assert difference.key == "env.kwargs.preset"


def test_pretrained_models_evaluate_on_their_own_env_without_a_transfer(hydra_cfg, caplog):
    with caplog.at_level(logging.WARNING):
        evaluate.run(
            hydra_cfg(
                "evaluate", ["agent=pretrained/inventory", "env=inventory", "eval.episodes=2"]
            )
        )
    assert "transfer evaluation" not in caplog.text


def test_null_env_arguments_are_the_absent_defaults():
    from agents.evaluate import _env_identity

    env = {"id": "lepton/TrafficSignal-v0", "kwargs": {"observation": "default"}}
    declared = {**env, "kwargs": {**env["kwargs"], "obs_lanes": None, "parameter_sharing": None}}
    assert _env_identity(declared) == _env_identity(env)
    padded = {**env, "kwargs": {**env["kwargs"], "obs_lanes": 8}}
    assert _env_identity(padded) != _env_identity(env)
