"""End to end: a tiny training run, its run folder, evaluation, determinism and rendering."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces
from omegaconf import OmegaConf

from agents import evaluate, render, train
from agents.algorithms import IncompatibleAgentError, policies_that_fit
from agents.config import as_config, make_seeds
from agents.envs import make_vec_env
from agents.evaluation import run_episodes
from agents.policies import make_baseline
from conf.schema import TrainConfig
from envs.core.baselines import baseline_registry
from envs.ops.inventory.env import InventoryEnv

ROOT = Path(__file__).resolve().parents[1]
BASELINES = baseline_registry(InventoryEnv).names()
EPISODES = 8  # eval.episodes of the tiny budgets


@pytest.fixture(scope="module")
def trained(composer, tmp_path_factory):
    """One tiny PPO run shared by the tests of this module: (config, run folder, metrics)."""
    folder = tmp_path_factory.mktemp("trained") / "run"
    cfg = composer("config", (), folder)
    metrics = train.run(cfg)
    return cfg, folder, metrics


def test_training_writes_every_artefact(trained):
    cfg, folder, metrics = trained
    for name in (
        "config.yaml",
        "command.txt",
        "model.zip",
        "vecnormalize.pkl",
        "metrics.json",
        "eval.csv",
        "table.md",
        "baselines.json",
        "curve.csv",
        "curve.png",
        "progress.csv",
    ):
        assert (folder / name).is_file(), name
        assert (folder / name).stat().st_size > 0, name
    assert list((folder / "tb").glob("events.out.tfevents.*"))
    assert list((folder / "checkpoints").glob("model_*_steps.zip"))
    assert (folder / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    saved = OmegaConf.load(folder / "config.yaml")
    assert saved.run_dir == str(folder)
    assert saved.agent.name == "ppo" and saved.total_timesteps == 256
    assert "${" not in (folder / "config.yaml").read_text()  # resolved
    assert (folder / "command.txt").read_text().startswith("cd ")


def test_metrics_cover_the_agent_and_every_baseline(trained):
    _, folder, metrics = trained
    on_disk = json.loads((folder / "metrics.json").read_text())
    assert on_disk == metrics
    assert list(metrics) == ["ppo", *BASELINES]
    for policy, summary in metrics.items():
        assert set(summary) == {"return", "length", "episode_profit", "fill_rate", "service_level"}
        for metric, stats in summary.items():
            assert set(stats) == {"mean", "std", "n"}, (policy, metric)
            assert stats["n"] == EPISODES
            assert np.isfinite(stats["mean"]) and stats["std"] >= 0
        assert summary["length"]["mean"] == 30  # the chain's horizon
        assert 0 <= summary["fill_rate"]["mean"] <= 1
    # the fitted base-stock policy beats ordering nothing and acting at random
    assert metrics["base_stock"]["return"]["mean"] > metrics["random"]["return"]["mean"]
    assert metrics["base_stock"]["return"]["mean"] > metrics["order_nothing"]["return"]["mean"]


def test_eval_csv_has_one_row_per_policy_and_episode(trained):
    _, folder, metrics = trained
    with (folder / "eval.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(metrics) * EPISODES
    assert set(rows[0]) >= {"policy", "episode", "seed", "return", "length", "fill_rate"}
    for policy in metrics:
        returns = [float(r["return"]) for r in rows if r["policy"] == policy]
        assert np.mean(returns) == pytest.approx(metrics[policy]["return"]["mean"])


def test_learning_curve_has_start_and_end_points(trained):
    cfg, folder, _ = trained
    with (folder / "curve.csv").open() as fh:
        points = list(csv.DictReader(fh))
    steps = [int(p["timesteps"]) for p in points]
    assert steps[0] == 0 and steps[-1] >= cfg.total_timesteps
    assert steps == sorted(steps) and len(steps) >= 3


def test_every_curve_point_is_logged_once(trained):
    """The point of the eval_freq grid at the last step precedes the final update; the final
    point replaces it in every log, not only in curve.csv."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg, folder, _ = trained
    with (folder / "curve.csv").open() as fh:
        curve = [(int(float(p["timesteps"])), float(p["mean"])) for p in csv.DictReader(fh)]
    with (folder / "progress.csv").open() as fh:
        logged = [
            (int(float(r["time/total_timesteps"])), float(r["eval/mean_return"]))
            for r in csv.DictReader(fh)
            if r["eval/mean_return"]
        ]
    assert logged == curve
    events = EventAccumulator(str(folder / "tb"))
    events.Reload()
    shown = events.Scalars("eval/mean_return")
    assert [e.step for e in shown] == [step for step, _ in curve]
    assert [e.value for e in shown] == pytest.approx([mean for _, mean in curve], rel=1e-6)


def test_evaluation_seeds_are_disjoint_from_training_seeds(trained):
    cfg, folder, _ = trained
    config = as_config(cfg, TrainConfig)
    seeds = make_seeds(config.seed, config.n_envs, config.eval)
    with (folder / "eval.csv").open() as fh:
        used = {int(r["seed"]) for r in csv.DictReader(fh)}
    assert used == set(seeds.eval)
    assert not used & (set(seeds.train) | set(seeds.fit))
    assert min(used) == config.seed + config.eval.seed_offset


def test_same_seed_runs_are_identical(trained, cfg_train):
    _, _, first = trained
    assert train.run(cfg_train) == first


def test_evaluate_saved_model_reproduces_training_evaluation(trained, make_cfg):
    _, folder, metrics = trained
    cfg = make_cfg("evaluate", [f"model_path={folder / 'model.zip'}", f"episodes={EPISODES}"])
    result = evaluate.run(cfg)
    assert result == {"ppo": metrics["ppo"]}  # same seeds, same statistics, same model
    out = Path(cfg.run_dir)
    assert json.loads((out / "metrics.json").read_text()) == result
    with (out / "eval.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == EPISODES


def test_evaluate_baseline_by_name(trained, make_cfg):
    _, _, metrics = trained
    cfg = make_cfg("evaluate", ["agent=base_stock"])
    result = evaluate.run(cfg)
    assert result == {"base_stock": metrics["base_stock"]}  # fitted on the same training seeds
    assert (Path(cfg.run_dir) / "eval.csv").is_file()


def test_evaluation_does_not_depend_on_batch_size(make_cfg):
    config = as_config(make_cfg("config"), TrainConfig)
    results = []
    for batch in (3, 8):
        venv = make_vec_env(config.env, batch)
        policy = make_baseline("base_stock", venv, seed=0, fit_seeds=[0, 1])
        results.append(run_episodes(policy, venv, 100, 6, metrics=["fill_rate"]))
    assert results[0].seeds == results[1].seeds == tuple(range(100, 106))
    np.testing.assert_array_equal(results[0].returns, results[1].returns)
    np.testing.assert_array_equal(results[0].metrics["fill_rate"], results[1].metrics["fill_rate"])


@pytest.mark.parametrize("policy", ["random", "ppo", "dqn"])
def test_stochastic_evaluation_does_not_depend_on_batch_size(policy):
    """Random actions come from each episode's own stream: a random baseline and an SB3 model
    acting stochastically (DQN exploring half the time) score each episode alike in batches of
    1, 3 and 6; training's own random state is left as it was."""
    import torch
    from stable_baselines3 import DQN, PPO

    from envs.core.sb3 import make_sb3_vec_env

    returns = []
    for batch in (1, 3, 6):
        venv = make_sb3_vec_env(
            "lepton/TrafficSignal-v0", num_envs=batch, seed=0, max_episode_steps=30
        )
        if policy == "random":
            agent = make_baseline("random", venv, seed=0, fit_seeds=[])
        elif policy == "ppo":
            agent = PPO("MlpPolicy", venv, seed=0, n_steps=16, batch_size=16)
        else:
            agent = DQN("MlpPolicy", venv, seed=0, learning_starts=0)
            agent.exploration_rate = 0.5
        torch_state, np_state = torch.get_rng_state(), np.random.get_state()  # noqa: NPY002
        episodes = run_episodes(agent, venv, 500, 6, deterministic=False)
        assert torch.equal(torch.get_rng_state(), torch_state)
        assert np.random.get_state()[1].tolist() == np_state[1].tolist()  # noqa: NPY002
        returns.append(episodes.returns)
        venv.close()
    assert len({r.round(9).tobytes() for r in returns}) == 1, returns
    assert np.unique(returns[0]).size > 1  # the episodes do differ


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["agent=ppo"], "model_path: agent=ppo needs model_path"),
        (["agent=base_stock", "model_path=model.zip"], "model_path: a saved model needs an SB3"),
        (["model_path=does/not/exist.zip"], "model_path: no model at"),
    ],
)
def test_evaluate_explains_what_is_missing(make_cfg, overrides, match):
    cfg = make_cfg("evaluate", overrides)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        evaluate.run(cfg)
    assert not Path(cfg.run_dir).exists()


def test_training_a_baseline_is_rejected(make_cfg):
    with pytest.raises(ValueError, match="baselines are fitted, not trained"):
        train.run(make_cfg("config", ["agent=base_stock"]))


def test_incompatible_agent_fails_before_training(make_cfg):
    cfg = make_cfg("config", ["agent=sac", "env.kwargs.action_mode=discrete"])
    with pytest.raises(IncompatibleAgentError, match=r"\(SAC\) needs a Box action space"):
        train.run(cfg)
    assert not Path(cfg.run_dir).exists()  # nothing written


@pytest.mark.parametrize(
    ("policy", "needs"),
    [("CnnPolicy", r"needs image observations"), ("MultiInputPolicy", r"needs Dict observations")],
)
def test_a_policy_that_cannot_read_the_observations_fails_before_training(make_cfg, policy, needs):
    cfg = make_cfg("config", [f"agent.policy={policy}"])
    with pytest.raises(ValueError) as info:
        train.run(cfg)
    message = str(info.value)
    assert message.startswith(f"agent.policy: {policy!r} {needs}")
    assert "lepton/Inventory-v0 observes Box observations of shape (41,) (float32)" in message
    assert "allowed for this env: MlpPolicy (" in message and "MultiInputPolicy for Dict" in message
    assert not Path(cfg.run_dir).exists()  # nothing written


def test_policies_that_fit_each_kind_of_observation():
    flat = spaces.Box(-1.0, 1.0, (41,), np.float32)
    image = spaces.Box(0, 255, (3, 16, 16), np.uint8)
    assert policies_that_fit(flat) == ["MlpPolicy"]
    assert policies_that_fit(image) == ["MlpPolicy", "CnnPolicy"]
    assert policies_that_fit(spaces.Dict({"x": flat, "y": image})) == ["MultiInputPolicy"]


def test_render_baseline_video_writes_a_gif(make_cfg, tmp_path):
    from PIL import Image

    out = tmp_path / "episode.gif"
    cfg = make_cfg("render", ["agent=base_stock", "mode=video", f"out={out}"])
    assert render.run(cfg) == out
    assert out.stat().st_size > 0
    with Image.open(out) as gif:
        assert gif.n_frames == 31  # the reset frame and one per period
        assert gif.size[0] > 0 and gif.size[1] > 0


def test_render_saved_model_to_mp4(trained, make_cfg, tmp_path):
    _, folder, _ = trained
    out = tmp_path / "ppo.mp4"
    cfg = make_cfg("render", [f"model_path={folder / 'model.zip'}", f"out={out}"])
    assert render.run(cfg) == out
    assert out.stat().st_size > 0


def test_render_rejects_unknown_video_suffix(make_cfg, tmp_path):
    cfg = make_cfg("render", ["agent=base_stock", f"out={tmp_path / 'x.avi'}"])
    with pytest.raises(ValueError, match=r"out: .* unsupported suffix"):
        render.run(cfg)
    assert not Path(cfg.run_dir).exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment", sorted(p.stem for p in (ROOT / "conf/experiment").glob("*.yaml"))
)
def test_every_experiment_trains(make_cfg, experiment):
    cfg = make_cfg("config", [f"experiment={experiment}", "total_timesteps=512"])
    metrics = train.run(cfg)
    assert cfg.agent.name in metrics


@pytest.mark.slow
def test_entry_points_run_as_modules(tmp_path):
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "MPLBACKEND": "Agg"}
    run_dir = tmp_path / "cli"
    budget = ["total_timesteps=256", "n_envs=4", "eval.episodes=4", "eval.curve_episodes=4"]
    budget += ["eval.fit_episodes=4"]
    budget += ["agent.n_steps=32", "agent.batch_size=64", "agent.n_epochs=2", "progress_bar=false"]
    train_cmd = [sys.executable, "-m", "scripts.train", *budget]
    subprocess.run([*train_cmd, f"run_dir={run_dir}"], cwd=ROOT, env=env, check=True)
    assert (run_dir / "model.zip").is_file()
    assert "scripts.train" in (run_dir / "command.txt").read_text()
    eval_cmd = [sys.executable, "-m", "scripts.evaluate", f"model_path={run_dir / 'model.zip'}"]
    subprocess.run(
        [*eval_cmd, "episodes=4", f"run_dir={tmp_path / 'ev'}"], cwd=ROOT, env=env, check=True
    )
    assert (tmp_path / "ev" / "metrics.json").is_file()
    gif = tmp_path / "ep.gif"
    render_cmd = [sys.executable, "-m", "scripts.render", "agent=order_nothing", f"out={gif}"]
    subprocess.run([*render_cmd, f"run_dir={tmp_path / 'r'}"], cwd=ROOT, env=env, check=True)
    assert gif.stat().st_size > 0


PLAIN_ENV_PRESET = """
defaults:
  - /schema/env/generic@_here_
  - _self_
id: lepton/PlainCartPole-v0
name: plain_cartpole
kwargs: {}
metrics: []
"""


def test_a_plain_gymnasium_env_registered_by_the_user_trains_and_evaluates(make_cfg, tmp_path):
    """``envs.register`` takes any Gymnasium env: it trains without baselines to compare with."""
    from test_envs_registry import registry_restored

    import envs
    from agents.policies import baseline_names

    conf = tmp_path / "user_conf"
    (conf / "env").mkdir(parents=True)
    (conf / "env" / "plain_cartpole.yaml").write_text(PLAIN_ENV_PRESET)
    search = f"hydra.searchpath=[file://{conf}]"
    with registry_restored():
        envs.register(
            "PlainCartPole-v0",
            "gymnasium.envs.classic_control.cartpole:CartPoleEnv",
            description="Gymnasium's CartPole, registered as a user's env.",
            max_episode_steps=50,
        )
        cfg = make_cfg("config", [search, "env=plain_cartpole", "checkpoint_freq=0"])
        metrics = train.run(cfg)
        assert list(metrics) == ["ppo"]  # no baselines: the agent alone
        folder = Path(cfg.run_dir)
        assert (folder / "model.zip").is_file() and (folder / "curve.png").is_file()
        assert metrics["ppo"]["return"]["n"] == EPISODES
        cfg = make_cfg("config", [search, "env=plain_cartpole", "baselines=[]"])
        venv = make_vec_env(as_config(cfg, TrainConfig).env, 2)
        assert baseline_names(venv) == baseline_names(venv, []) == []
        with pytest.raises(KeyError, match=r"baselines: lepton/PlainCartPole-v0 \(CartPoleEnv\) "):
            baseline_names(venv, ["random"])
        with pytest.raises(KeyError, match=r"agent: .* has no baselines, so the baseline 'random'"):
            make_baseline("random", venv, seed=0, fit_seeds=[0])
        venv.close()
        saved = make_cfg("evaluate", [search, "env=plain_cartpole", f"model_path={folder}"])
        assert evaluate.run(saved) == {"ppo": metrics["ppo"]}
