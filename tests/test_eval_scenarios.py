"""Evaluation on a generator folder's real scenarios (``eval.scenarios``), training on one real
scenario (``env.scenarios=real:<folder>@<k>``), and the ``levels:`` inventory data form."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO
from test_generate import compose_train, fit_folder, read_json

from agents.config import make_seeds
from agents.envs import make_eval_env, make_vec_env
from agents.evaluation import run_episodes
from agents.generate import load_generator
from agents.generators.sources import cycle


@pytest.fixture(scope="module")
def levels(tmp_path_factory):
    """A small parametric inventory folder on demand at two levels (fits in well under 1 s)."""
    folder, _ = fit_folder(
        tmp_path_factory.mktemp("gen") / "levels",
        "family=inventory",
        "kind=parametric",
        "data=levels:10+40",
        "n_data=40",
    )
    return folder


def real_series(folder) -> tuple[list[tuple[float, ...]], list[tuple[float, ...]]]:
    train, held = load_generator(folder).real_features()
    return [tuple(map(float, r)) for r in train], [tuple(map(float, r)) for r in held]


def demand_of(venv) -> list[tuple[float, ...]]:
    return [tuple(sc.demand.series) for sc in venv.runner.sim.scenarios]


def test_levels_data_gives_demand_at_each_level(levels):
    meta = read_json(levels / "generator.json")
    assert meta["data"]["spec"] == "levels:10+40" and meta["data"]["n"] == 40
    train, held = load_generator(levels).real_features()
    means = np.concatenate([train, held]).mean(axis=1)
    assert ((np.abs(means - 10) < 4) | (np.abs(means - 40) < 8)).all()
    assert (np.abs(means - 10) < 4).sum() == 20


def test_heldout_episodes_cycle_through_the_held_out_scenarios(levels, tmp_path):
    _, held = real_series(levels)
    n = len(held)
    config = compose_train(
        [
            "env=inventory",
            f"env.scenarios=gan:{levels}",
            f"eval.scenarios=heldout:{levels}",
            f"eval.episodes={2 * n}",
        ],
        tmp_path,
    )
    seeds = make_seeds(config.seed, config.n_envs, config.eval)
    # every held-out scenario twice, whatever the number of replicas
    for replicas in (2 * n, 5):
        venv = make_eval_env(config.env, config.eval, replicas, seeds.eval_start)
        seen = []
        for start in range(0, 2 * n, replicas):
            venv.seed(seeds.eval_start + start)
            venv.reset()
            seen += demand_of(venv)[: min(replicas, 2 * n - start)]
        assert sorted(seen) == sorted(held * 2)
        expected = [cycle(held)(k, None) for k in range(2 * n)]
        assert seen == expected, "episode k gets the same scenario at any batch size"
    # other seeds (fitting the baselines) draw from the training source: generated demand
    venv.seed(config.seed)
    venv.reset()
    assert not set(demand_of(venv)) & set(held)
    # the spaces are the training env's, so the model of one loads onto the other
    training = make_vec_env(config.env, 2)
    assert venv.observation_space == training.observation_space
    assert venv.action_space == training.action_space


def test_real_source_is_one_training_scenario_and_fits_gan_models(levels, tmp_path):
    train, _ = real_series(levels)
    real = compose_train(["env=inventory", f"env.scenarios=real:{levels}@3"], tmp_path)
    venv = make_vec_env(real.env, 4, seed=0)
    venv.reset()
    assert demand_of(venv) == [train[3]] * 4
    gan = compose_train(["env=inventory", f"env.scenarios=gan:{levels}"], tmp_path)
    gan_env = make_vec_env(gan.env, 2, seed=0)
    model = PPO("MlpPolicy", gan_env, n_steps=16, batch_size=16, seed=0)
    path = tmp_path / "model.zip"
    model.save(path)
    PPO.load(path, env=venv)  # spaces match: same codec structure
    # a model of the plain env is evaluable on held-out real scenarios of the folder
    plain = compose_train(["env=inventory", f"eval.scenarios=heldout:{levels}"], tmp_path)
    plain_model = PPO("MlpPolicy", make_vec_env(plain.env, 2), n_steps=16, batch_size=16)
    eval_env = make_eval_env(plain.env, plain.eval, 4, 1000)
    out = run_episodes(plain_model, eval_env, 1000, 4)
    assert np.isfinite(out.returns).all()
    plain_model.save(path)
    PPO.load(path, env=eval_env)
    train_cfg = compose_train(
        ["env=inventory", f"env.scenarios=train:{levels}", f"eval.scenarios=train:{levels}"],
        tmp_path,
    )
    venv = make_vec_env(train_cfg.env, 8, seed=0)
    venv.reset()
    assert set(demand_of(venv)) <= set(train)


@pytest.mark.parametrize(
    ("field", "spec", "match"),
    [
        ("env", "heldout:{f}", r"env\.scenarios: 'heldout:.*' is not allowed; allowed: gan:"),
        ("env", "real:{f}", r"env\.scenarios: .*needs the index .*real:<folder>@<k>"),
        ("env", "real:{f}@999", r"env\.scenarios: .*holds \d+ training real scenarios; k must"),
        ("eval", "adversarial:{f}", r"eval\.scenarios: .*not allowed; allowed: heldout:<folder>"),
        ("eval", "heldout:{f}/nothing", r"eval\.scenarios: .*holds no generator\.json"),
        ("eval", "real:{f}@x", r"eval\.scenarios: .*needs the index"),
    ],
)
def test_bad_forms_name_the_field(levels, tmp_path, field, spec, match):
    spec = spec.format(f=levels)
    config = compose_train(["env=inventory", f"{field}.scenarios={spec}"], tmp_path)
    with pytest.raises(ValueError, match=match):
        if field == "env":
            make_vec_env(config.env, 1)
        else:
            make_eval_env(config.env, config.eval, 1, 0)


def test_bad_levels_name_data(tmp_path):
    with pytest.raises(ValueError, match=r"data: 'x' in 'levels:10\+x' is not a mean demand"):
        fit_folder(tmp_path / "bad", "family=inventory", "kind=parametric", "data=levels:10+x")


def test_train_evaluates_agent_and_baselines_on_held_out(levels, make_cfg):
    from agents.train import run as train

    cfg = make_cfg(
        "config",
        [
            "env=inventory",
            f"env.scenarios=real:{levels}@0",
            f"eval.scenarios=heldout:{levels}",
            "baselines=[base_stock]",
        ],
    )
    metrics = train(cfg)
    assert {"ppo", "base_stock"} <= set(metrics)
    folder = Path(cfg.run_dir)
    assert "base_stock" in (folder / "table.md").read_text()
    assert (folder / "curve.csv").is_file()
    n = metrics["ppo"]["return"]["n"]
    assert n == metrics["base_stock"]["return"]["n"] >= 1


def _base(venv):
    while hasattr(venv, "venv"):
        venv = venv.venv
    return venv


def test_tune_scores_trials_on_the_evaluation_scenarios(levels, make_cfg, monkeypatch):
    from agents import tune

    _, held = real_series(levels)
    scored: list[tuple[float, ...]] = []
    real_run = tune.run_episodes

    def spy(model, venv, *args, **kwargs):
        reset = venv.reset

        def recording_reset():
            obs = reset()
            scored.extend(demand_of(_base(venv)))
            return obs

        venv.reset = recording_reset
        return real_run(model, venv, *args, **kwargs)

    monkeypatch.setattr(tune, "run_episodes", spy)
    overrides = ["env=inventory", "total_timesteps=64", "eval.eval_freq=64"]
    overrides += ["eval.episodes=4", "eval.batch_size=4", "eval.curve_episodes=2"]
    value, curve = tune.train_and_score(
        make_cfg("tune", [*overrides, f"eval.scenarios=heldout:{levels}"])
    )
    assert np.isfinite(value) and curve
    assert len(scored) == 4 and set(scored) <= set(held)
    assert scored == [cycle(held)(k, None) for k in range(4)]
    scored.clear()
    tune.train_and_score(make_cfg("tune", overrides))  # without it: the env's own scenario
    assert len(scored) == 4 and not set(scored) & set(held)


def test_single_env_for_rendering_runs_the_evaluation_scenarios(levels, tmp_path):
    from agents.envs import make_single_env

    _, held = real_series(levels)
    config = compose_train(
        ["env=inventory", f"env.scenarios=gan:{levels}", f"eval.scenarios=heldout:{levels}"],
        tmp_path,
    )
    seeds = make_seeds(config.seed, config.n_envs, config.eval, 3)
    ev = dataclasses.replace(config.eval, episodes=3)
    env = make_single_env(config.env, ev=ev, first_seed=seeds.eval_start)
    shown = []
    for seed in seeds.eval:
        env.reset(seed=seed)
        shown += demand_of(env.unwrapped)
    assert shown == [cycle(held)(k, None) for k in range(3)]
    env.reset(seed=seeds.fit[0])  # fitting a baseline: the training source (generated)
    assert not set(demand_of(env.unwrapped)) & set(held)


def test_transfer_scores_curves_baselines_and_arms_on_the_evaluation_scenarios(
    levels, make_cfg, monkeypatch
):
    from test_transfer import transfer_overrides

    from agents import transfer

    _, held = real_series(levels)
    shown: dict[str, list[tuple[float, ...]]] = {}

    def spy(name, make):
        def made(*args, **kwargs):
            venv = make(*args, **kwargs)
            reset = venv.reset

            def recording_reset():
                obs = reset()
                shown.setdefault(name, []).extend(demand_of(_base(venv)))
                return obs

            venv.reset = recording_reset
            return venv

        return made

    monkeypatch.setattr(transfer, "evaluation_env", spy("arms", transfer.evaluation_env))
    monkeypatch.setattr(transfer, "make_eval_env", spy("baselines", transfer.make_eval_env))
    overrides = transfer_overrides(
        "seeds=[0]", "total_timesteps=128", "eval.episodes=4", "eval.batch_size=4"
    )
    overrides += ["eval.curve_episodes=2", "baselines=[base_stock]"]
    # without eval.scenarios: the target's own scenario (and the source is trained here)
    cfg = make_cfg("transfer", overrides)
    transfer.run(cfg)
    assert shown["arms"] and shown["baselines"]
    assert not set(shown["arms"] + shown["baselines"]) & set(held)
    shown.clear()
    source = f"source={Path(cfg.run_dir) / 'source'}"
    transfer.run(make_cfg("transfer", [*overrides, source, f"eval.scenarios=heldout:{levels}"]))
    assert set(shown) == {"arms", "baselines"}
    for name, scored in shown.items():
        assert scored and set(scored) <= set(held), name
    # the threshold's baseline on the curve episodes: the first held-out scenarios in order
    assert shown["baselines"][-2:] == [cycle(held)(k, None) for k in range(2)]
