"""``lepton-train init_model=<run folder>``: a run that starts from a saved policy."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import pytest

from agents.envs import VECNORMALIZE_FILE
from agents.train import run as train


def curve(folder: Path) -> list[dict[str, float]]:
    with (folder / "curve.csv").open() as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


@pytest.mark.parametrize("normalize", [False, True])
def test_a_run_started_from_another_begins_where_it_ended(make_cfg, normalize):
    flags = str(normalize).lower()
    base = ["baselines=[]", f"agent.normalize.obs={flags}", f"agent.normalize.reward={flags}"]
    first = make_cfg("config", [*base, "total_timesteps=4096"])
    train(first)
    ended = curve(Path(first.run_dir))[-1]
    # the same evaluation episodes: the new run's first point scores the saved policy
    second = make_cfg("config", [*base, f"init_model={first.run_dir}/model.zip"])
    train(second)
    started = curve(Path(second.run_dir))[0]
    assert started["timesteps"] == 0 and ended["timesteps"] > 0
    fresh = make_cfg("config", base)  # the same seed, from scratch
    train(fresh)
    scratch = curve(Path(fresh.run_dir))[0]["mean"]
    assert abs(scratch - ended["mean"]) > 50.0
    # with normalisation too: the saved statistics come along, and the first point is taken
    # before training's first reset updates them
    assert started["mean"] == pytest.approx(ended["mean"], abs=1e-9)


def test_a_missing_or_mismatched_source_names_the_field(make_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"init_model: no saved model at .*nothing"):
        train(make_cfg("config", [f"init_model={tmp_path / 'nothing'}"]))
    first = make_cfg("config", ["baselines=[]", "agent.policy_kwargs.net_arch=[16]"])
    train(first)
    bad = make_cfg("config", [f"init_model={first.run_dir}", "agent.policy_kwargs.net_arch=[8]"])
    with pytest.raises(ValueError, match=r"agent.policy_kwargs.net_arch: the source network"):
        train(bad)
    assert not (Path(bad.run_dir) / "config.yaml").exists()  # nothing written
    # a source of another env is reported as such, before its network is compared
    other = make_cfg("config", [f"init_model={first.run_dir}", "env=ops/autoscale_steady"])
    with pytest.raises(ValueError, match=r"init_model: the source agent cannot act on the"):
        train(other)
    a2c = make_cfg("config", [f"init_model={first.run_dir}", "agent=a2c"])
    with pytest.raises(ValueError, match=r"init_model: .* agent.algo='ppo' .* pass agent=ppo"):
        train(a2c)


def test_tune_trials_start_from_the_saved_policy(make_cfg):
    from agents import tune

    base = ["agent.normalize.obs=false", "agent.normalize.reward=false"]
    first = make_cfg("config", [*base, "baselines=[]"])
    train(first)
    ended = curve(Path(first.run_dir))[-1]
    _, points = tune.train_and_score(make_cfg("tune", [*base, f"init_model={first.run_dir}"]))
    assert points[0]["timesteps"] == 0
    assert points[0]["mean"] == pytest.approx(ended["mean"], abs=1e-9)


@pytest.mark.parametrize("tool", ["evaluate", "render"])
def test_tools_that_do_not_train_refuse_init_model(make_cfg, tmp_path, tool):
    module = __import__(f"agents.{tool}", fromlist=["run"])
    cfg = make_cfg(tool, ["agent=base_stock", f"init_model={tmp_path}"])
    with pytest.raises(
        ValueError, match=rf"init_model: lepton-{tool} does not train; .*model_path"
    ):
        module.run(cfg)


def test_statistics_that_are_not_statistics_name_the_field(make_cfg, tmp_path):
    first = make_cfg("config", ["baselines=[]"])
    train(first)
    folder = Path(first.run_dir)
    (folder / VECNORMALIZE_FILE).write_bytes(pickle.dumps({"not": "statistics"}))
    with pytest.raises(ValueError, match=r"init_model: .* holds no VecNormalize statistics"):
        train(make_cfg("config", [f"init_model={folder}"]))
