"""`lepton-generate fit` and `sample` end to end, the realism report, and envs that draw their
scenarios from a generator folder through `env.scenarios=gan:<folder>`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig

from agents.config import as_config
from agents.envs import make_single_env, make_vec_env
from agents.generate import (
    DATA_FILE,
    FIGURE_FILE,
    GENERATOR_FILE,
    META_FILE,
    REALISM_FILE,
    SAMPLES_FIGURE_FILE,
    SAMPLES_INDEX_FILE,
    load_generator,
    run,
    split_indices,
)
from conf.schema import GenerateConfig, TrainConfig
from scripts.generate import command_word

ROOT = Path(__file__).resolve().parents[1]

TINY = (
    "wgan.steps=150",
    "wgan.hidden=[32,32]",
    "wgan.batch_size=64",
    "wgan.lr=1e-3",
    "n_data=200",
    "splits=30",
    "plot_samples=50",
)
"""A GAN budget of a few seconds on one CPU thread, and small realism tests."""

BAND_FIELDS = {"generated", "band_median", "band_low", "band_high", "threshold", "p_value"}


def compose_generate(overrides: Sequence[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose("generate", overrides=list(overrides))


def compose_train(overrides: Sequence[str], run_dir: Path) -> TrainConfig:
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"run_dir={run_dir}", *overrides])
    return as_config(cfg, TrainConfig)


def fit_folder(folder: Path, *overrides: str) -> tuple[Path, dict]:
    report = run(compose_generate(["command=fit", *TINY, f"out_dir={folder}", *overrides]))
    return folder, report


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return fit_folder(tmp_path_factory.mktemp("gen") / "synthetic", "family=synthetic")[0]


@pytest.fixture(scope="module")
def inventory(tmp_path_factory) -> Path:
    return fit_folder(tmp_path_factory.mktemp("gen") / "inventory", "family=inventory")[0]


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()


# --- fit --------------------------------------------------------------------------------------
def check_folder(folder: Path, family: str, codec: str, n_data: int) -> tuple[dict, dict]:
    for name in (GENERATOR_FILE, META_FILE, DATA_FILE, REALISM_FILE, FIGURE_FILE, "config.yaml"):
        assert (folder / name).is_file(), name
    assert is_png(folder / FIGURE_FILE)
    meta, report = read_json(folder / META_FILE), read_json(folder / REALISM_FILE)
    assert meta["family"] == family and meta["kind"] == "wgan"
    assert meta["codec"]["name"] == codec
    split = meta["split"]
    assert split["train"] + split["held_out"] == meta["data"]["n"] == n_data
    assert split["held_out"] == report["n_real"] >= 4
    assert 0.0 <= meta["invalid_rate"] <= 1.0
    for distance in ("mmd", "energy"):
        assert set(report[distance]) >= BAND_FIELDS, distance
        assert report[distance]["band_low"] <= report[distance]["band_high"]
    for clf in ("c2st_logistic", "c2st_knn"):
        assert 0.0 <= report[clf]["accuracy"] <= 1.0 and 0.0 <= report[clf]["p_value"] <= 1.0
    assert report["diversity"] > 0 and report["diversity_real"] > 0
    assert 0.0 <= report["coverage"] <= 1.0
    assert report["invalid_rate"] == meta["invalid_rate"]
    assert report["verdict"].startswith("realism PASS" if report["passed"] else "realism FAIL")
    reference = report["training_data"]
    assert reference["n"] == min(split["train"], split["held_out"])
    for distance in ("mmd", "energy"):
        assert 0.0 < reference[distance]["p_value"] <= 1.0, distance
    assert "the training data itself" in report["verdict"]
    with np.load(folder / DATA_FILE) as data:
        assert data["train"].shape == (split["train"], meta["codec"]["dim"])
        assert data["held_out"].shape == (split["held_out"], meta["codec"]["dim"])
    return meta, report


def test_fit_synthetic_writes_the_generator_folder(synthetic):
    meta, report = check_folder(synthetic, "synthetic", "demand_profile/p24", 200)
    assert meta["env"] is None and meta["data"]["spec"] == "truth"
    assert meta["settings"]["steps"] == 150 and meta["settings"]["hidden"] == [32, 32]
    # a random split of i.i.d. scenarios: the training rows pass the held-out band tests
    assert report["training_data"]["mmd"]["passed"] and report["training_data"]["energy"]["passed"]
    print(report["verdict"])


def test_fit_inventory_records_the_env_that_rebuilds_the_base(inventory):
    meta, report = check_folder(inventory, "inventory", "inventory_demand/h30", 200)
    assert meta["env"]["id"] == "lepton/Inventory-v0"
    assert meta["env"]["kwargs"]["scenario"] == "serial4"
    assert meta["codec"]["params"]["max_demand"] == 130.0
    print(report["verdict"])


def test_realism_separates_a_faithful_generator_from_a_wrong_one(tmp_path):
    # resampling real draws is faithful; uniform noise over the range is not
    _, faithful = fit_folder(tmp_path / "list", "family=synthetic", "kind=list")
    _, wrong = fit_folder(
        tmp_path / "uniform", "family=synthetic", "kind=parametric", "parametric.margin=0.2"
    )
    assert faithful["mmd"]["passed"] and faithful["energy"]["passed"]
    assert not wrong["mmd"]["passed"] and not wrong["passed"]
    assert wrong["mmd"]["generated"] > faithful["mmd"]["generated"]


def test_fit_inventory_on_presets_and_an_env_preset(tmp_path):
    folder, _ = fit_folder(
        tmp_path / "presets",
        "family=inventory",
        "kind=parametric",
        "parametric.distribution=normal",
        "data=presets:serial4+lost_sales",
        "env=inventory_lost_sales",
    )
    meta = read_json(folder / META_FILE)
    assert meta["data"]["spec"] == "presets:serial4+lost_sales"
    assert meta["env"]["name"] == "inventory_lost_sales"
    assert meta["env"]["kwargs"]["scenario"] == "lost_sales"
    assert meta["base"] == "lost_sales"


# --- sample -----------------------------------------------------------------------------------
def test_sample_synthetic_and_inventory(synthetic, inventory, tmp_path):
    out = synthetic / "samples__seed2__n5"
    index = run(compose_generate(["command=sample", f"path={synthetic}", "n=5", "seed=2"]))
    assert index["n"] == 5 and len(index["files"]) == 5
    assert (out / SAMPLES_INDEX_FILE).is_file() and is_png(out / SAMPLES_FIGURE_FILE)
    first = read_json(out / "sample_000.json")
    assert first["family"] == "synthetic" and len(first["features"]) == 24
    assert first["scenario"]["rates"] == first["features"]
    assert len(first["scenario"]["periods"]) == 24
    again = tmp_path / "again"
    run(
        compose_generate(
            ["command=sample", f"path={synthetic}", "n=5", "seed=2", f"out_dir={again}"]
        )
    )
    assert read_json(again / "sample_000.json")["features"] == first["features"]
    other = tmp_path / "other"
    run(
        compose_generate(
            ["command=sample", f"path={synthetic}", "n=5", "seed=3", f"out_dir={other}"]
        )
    )
    assert read_json(other / "sample_000.json")["features"] != first["features"]

    inv_out = tmp_path / "inventory"
    run(compose_generate(["command=sample", f"path={inventory}", "n=3", f"out_dir={inv_out}"]))
    scenario = read_json(inv_out / "sample_002.json")["scenario"]
    assert len(scenario["demand_series"]) == 30 and min(scenario["demand_series"]) >= 0
    assert scenario["base"] == "serial4"


# --- the env hook -----------------------------------------------------------------------------
def demand_of(venv) -> list[tuple[float, ...]]:
    return [sc.demand.series for sc in venv.runner.sim.scenarios]


def test_env_scenarios_draws_generated_demand_at_every_reset(inventory, tmp_path):
    config = compose_train(["env=inventory", f"env.scenarios=gan:{inventory}"], tmp_path)
    venv = make_vec_env(config.env, 4, seed=0)
    venv.reset()
    first = demand_of(venv)
    assert all(sc.demand.kind == "series" for sc in venv.runner.sim.scenarios)
    assert len(set(first)) == 4, "replicas draw different demand"
    venv.seed(100)
    venv.reset()
    assert not set(demand_of(venv)) & set(first), "a new reset draws new demand"
    # autoreset inside step draws again
    for _ in range(30):
        venv.step(np.stack([venv.action_space.sample() for _ in range(4)]))
    assert not set(demand_of(venv)) & set(first)
    # the same seed gives the same demand
    again = make_vec_env(config.env, 4, seed=0)
    again.reset()
    assert demand_of(again) == first

    env = make_single_env(config.env)
    env.reset(seed=1)
    a = env.unwrapped.runner.sim.scenarios[0].demand.series
    env.reset()
    assert env.unwrapped.runner.sim.scenarios[0].demand.series != a


def test_train_and_evaluate_on_generated_scenarios(inventory, make_cfg):
    from agents.train import run as train

    cfg = make_cfg(
        "config", ["env=inventory", f"env.scenarios=gan:{inventory}", "baselines=[base_stock]"]
    )
    metrics = train(cfg)
    assert {"ppo", "base_stock"} <= set(metrics)
    assert np.isfinite(metrics["ppo"]["return"]["mean"])


def test_env_scenarios_errors_name_the_field(inventory, synthetic, tmp_path):
    mismatch = compose_train(
        ["env=inventory", "env.kwargs.scenario=seasonal", f"env.scenarios=gan:{inventory}"],
        tmp_path,
    )
    with pytest.raises(ValueError, match=r"env\.scenarios: .*'inventory_demand/h30'.*h52"):
        make_vec_env(mismatch.env, 2)
    no_env = compose_train([f"env.scenarios=gan:{synthetic}"], tmp_path)
    with pytest.raises(ValueError, match=r"env\.scenarios: .*synthetic generator.*no env"):
        make_vec_env(no_env.env, 2)
    for spec, match in [
        (
            "list:somewhere",
            r"env\.scenarios: 'list:somewhere' is not allowed; allowed: gan:<folder>, "
            r"adversarial:<folder>, real:<folder>@<k>, train:<folder>, null",
        ),
        (f"gan:{tmp_path / 'nothing'}", r"env\.scenarios: .*holds no generator\.json"),
    ]:
        config = compose_train([f"env.scenarios={spec}"], tmp_path)
        with pytest.raises(ValueError, match=match):
            make_vec_env(config.env, 2)
    with pytest.raises(ValueError, match=r"path: .*no generator\.json"):
        load_generator(tmp_path)


# --- configuration errors ---------------------------------------------------------------------
def test_blocked_split_holds_out_the_last_rows_and_leaves_out_their_overlap():
    config = as_config(compose_generate(["held_out=0.25", "min_held_out=4"]), GenerateConfig)
    rng = np.random.default_rng(0)
    train, held = split_indices(20, config, rng, split="blocked", gap=3)
    assert list(held) == list(range(15, 20)) and list(train) == list(range(12))
    train, held = split_indices(20, config, rng)  # random: a seeded draw of every row
    assert sorted([*train, *held]) == list(range(20)) and len(held) == 5
    with pytest.raises(ValueError, match="leaving out the 3 overlapping them"):
        split_indices(8, config, rng, split="blocked", gap=3)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            ["family=weather"],
            r"family: 'weather' is not allowed; allowed: "
            r"\['autoscale', 'inventory', 'recsys', 'synthetic', 'traffic'\]",
        ),
        (
            ["family=synthetic", "data=history"],
            r"data: 'history' .*synthetic family; allowed: truth",
        ),
        (["family=inventory", "data=history"], r"data: 'history' .*; allowed: env, presets:"),
        (
            ["family=inventory", "data=presets:serial4+nope"],
            r"data: unknown inventory preset.*'nope'.*allowed presets",
        ),
        (["family=inventory", "data=presets:seasonal"], r"data: .*horizon 52.*30"),
        (
            ["family=traffic", "data=resco:grid4x4"],
            r"data: 'resco:grid4x4' .*; allowed: resco:cologne1, ",
        ),
        (
            ["family=synthetic", "params.bins=4"],
            r"params\.bins: not a parameter of the synthetic family; allowed: \['periods'",
        ),
        (["family=synthetic", "env=inventory"], r"env: the synthetic family"),
        (["family=synthetic", "wgan.steps=0"], r"wgan\.steps: must be >= 1"),
        (["family=synthetic", "held_out=1.5"], r"held_out: must be a fraction"),
        (["family=synthetic", "split=sideways"], r"split: 'sideways' is not allowed; allowed"),
        (["family=synthetic", "n_data=5"], r"n_data: 5 real scenarios leave 1"),
        (["command=sample"], r"path: give the folder"),
        (["family=synthetic", "seed=-1"], r"seed: must be an integer >= 0, got -1"),
        (["family=synthetic", "kind=list", "alpha=2"], r"alpha: .*must be in \(0, 1\), got 2"),
        (["family=synthetic", "wgan.betas=[0.5]"], r"wgan\.betas: must be two numbers in \[0, 1\)"),
        (["family=synthetic", "wgan.threads=0"], r"wgan\.threads: must be >= 1 or None"),
        (["family=synthetic", "wgan.gp_weight=-1"], r"wgan\.gp_weight: must be >= 0"),
        # a codec parameter the codec refuses, named as the params.<key> that set it
        (
            ["family=synthetic", "kind=list", "params.max_rate=-5"],
            r"params\.max_rate: must be a finite number > 0, got -5",
        ),
        (
            ["family=synthetic", "kind=list", "params.tolerance=-1"],
            r"params\.tolerance: must be a finite number >= 0",
        ),
        (
            ["family=inventory", "kind=list", "params.max_demand=-5"],
            r"params\.max_demand: must be a finite number > 0",
        ),
        # a valid range that excludes the real data: refused before fitting, not by sampling
        (
            ["family=inventory", "kind=list", "n_data=100", "params.max_demand=10"],
            r"params: 100 of 100 real scenarios of data 'env' are not valid for codec "
            r"'inventory_demand/h30' \(params\.max_demand=10\.0, .*range over \[\d+, \d+\]",
        ),
        (
            ["family=synthetic", "kind=wgan", "n_data=100", "params.max_rate=500"],
            r"params: \d+ of 100 real scenarios of data 'truth' .*params\.max_rate=500\.0",
        ),
    ],
)
def test_bad_settings_name_the_field_and_allowed_values(overrides, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        run(compose_generate([*overrides, f"out_dir={tmp_path / 'out'}"]))


@pytest.mark.parametrize(
    ("override", "allowed"),
    [("kind=gan", "wgan, parametric, list"), ("command=train", "fit, sample")],
)
def test_bad_kind_or_command_fails_at_composition(override, allowed):
    with pytest.raises(ConfigCompositionException) as info:
        compose_generate([override])
    cause = str(info.value.__cause__)
    assert allowed in cause and override.split("=")[0] in cause


# --- the command line -------------------------------------------------------------------------
def test_first_word_is_the_command():
    assert command_word(["fit", "family=traffic"]) == ["command=fit", "family=traffic"]
    assert command_word(["-m", "sample", "n=3"]) == ["-m", "command=sample", "n=3"]
    assert command_word(["--config-name", "fit", "x=1"]) == ["--config-name", "fit", "x=1"]
    assert command_word(["seed=1"]) == ["seed=1"]
    assert command_word(["--info", "defaults", "fit"]) == ["--info", "defaults", "command=fit"]
    for argv in (["bogus"], ["fit", "sample"], ["fit", "family", "traffic"]):
        with pytest.raises(ValueError, match=r"unknown command '\w+'; allowed: fit, sample"):
            command_word(argv)


def test_command_line_fit_then_sample(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    folder = tmp_path / "cli"
    cmd = [sys.executable, "-m", "scripts.generate"]
    fit = subprocess.run(
        [
            *cmd,
            "fit",
            "family=synthetic",
            "kind=list",
            "n_data=30",
            "splits=10",
            f"out_dir={folder}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fit.returncode == 0, fit.stderr
    assert "realism" in fit.stdout + fit.stderr
    out = subprocess.run(
        [*cmd, "sample", f"path={folder}", "n=3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert len(list((folder / "samples__seed0__n3").glob("sample_*.json"))) == 3
    # refused settings leave no output folder behind; a stray word is a usage error
    bad = subprocess.run(
        [*cmd, "sample", f"path={folder}", "n=0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0 and "n: " in bad.stderr, bad.stderr
    assert not (folder / "samples__seed0__n0").exists()
    word = subprocess.run([*cmd, "bogus"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert word.returncode == 2 and "unknown command 'bogus'" in word.stderr


# --- traffic: a RESCO city --------------------------------------------------------------------
@pytest.fixture(scope="module")
def cologne1(tmp_path_factory) -> Path:
    pytest.importorskip("sumolib", reason="importing RESCO networks needs the `sumo` extra")
    from envs.traffic.nets import sumo_rl_nets_dir

    try:
        sumo_rl_nets_dir()
    except RuntimeError as exc:  # pragma: no cover - depends on the package index
        pytest.skip(f"sumo-rl's networks cannot be fetched: {exc}")
    folder = tmp_path_factory.mktemp("gen") / "cologne1"
    fit_folder(folder, "family=traffic", "data=resco:cologne1", "params.bins=6")
    return folder


def test_traffic_fit_sample_and_env(cologne1, tmp_path):
    meta = read_json(cologne1 / META_FILE)
    assert meta["codec"]["name"] == "traffic_demand/cologne1/r19b6w900"
    assert meta["data"]["params"] == {"seconds": 900.0, "stride": 300.0, "start": 25200.0}
    assert meta["split"]["held_out"] >= 4 and meta["settings"]["log_scale"] is True
    assert meta["settings"]["bound_margin"] == 0.1
    # later windows are held out; the 2 windows overlapping the first of them are left out
    assert meta["split"]["kind"] == "blocked" and meta["split"]["left_out"] == 2
    assert set(read_json(cologne1 / REALISM_FILE)["mmd"]) >= BAND_FIELDS

    out = tmp_path / "samples"
    run(compose_generate(["command=sample", f"path={cologne1}", "n=2", f"out_dir={out}"]))
    scenario = read_json(out / "sample_000.json")["scenario"]
    assert scenario["network"] == "cologne1" and scenario["window_s"] == [25200.0, 26100.0]
    assert scenario["routes"] and all(len(r["veh_per_h"]) == 6 for r in scenario["routes"])

    window = [
        "env=traffic/resco_grid4x4",
        "env.kwargs.scenario.resco=cologne1",
        "+env.kwargs.scenario.begin=25200",
        "+env.kwargs.scenario.end=26100",
        f"env.scenarios=gan:{cologne1}",
    ]
    for extra in ([], ["+env.kwargs.parameter_sharing=true"]):
        config = compose_train([*window, *extra], tmp_path)
        venv = make_vec_env(config.env, 2, seed=0)
        venv.reset()
        drawn = venv.runner.sim.scenarios
        assert all(sc.name == "cologne1_generated" for sc in drawn)
        assert drawn[0].flows != drawn[1].flows
    whole = compose_train(
        [
            "env=traffic/resco_grid4x4",
            "env.kwargs.scenario.resco=cologne1",
            f"env.scenarios=gan:{cologne1}",
        ],
        tmp_path,
    )
    with pytest.raises(ValueError, match=r"env\.scenarios: .*r19b6w900.*w3600"):
        make_vec_env(whole.env, 1)


@pytest.mark.parametrize(
    ("overrides", "folder"),
    [
        (["model=pretrained/inventory"], "adversarial__inventory__vs_reference__seed0__n16"),
        (
            ["model=runs/train/inv__ppo__0/model.zip", "adversarial.baseline=base_stock"],
            "adversarial__inv__ppo__0__vs_base_stock__seed0__n16",
        ),
        (["model=other/agent.zip", "seed=3", "n=2"], "adversarial__agent__vs_reference__seed3__n2"),
    ],
)
def test_adversarial_folder_names_the_agent_and_the_baseline(
    overrides: list[str], folder: str
) -> None:
    """Reports of different agents or baselines on one generator go to different folders."""
    cfg = compose_generate(["command=adversarial", "path=runs/generators/g", *overrides])
    assert cfg.out_dir == f"runs/generators/g/{folder}"
