"""Scenario generators: interface round trip, codecs and rejection, metrics, the WGAN-GP on the
synthetic ground truth, and an environment running from a generator source."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the lepton/ ids)
from agents.generators import (
    GeneratorSource,
    ListGenerator,
    ParametricGenerator,
    ScenarioCodec,
    ScenarioGenerator,
)
from agents.generators import metrics as M
from agents.generators.codecs import InventoryDemandCodec, realise_demand, repair
from agents.generators.synthetic import (
    DemandProfile,
    ProfileCodec,
    SyntheticProfileFamily,
)
from agents.generators.wgan import WGANGenerator
from envs.ops.inventory.scenario import PRESETS, DemandConfig, InventoryScenario

FAMILY = SyntheticProfileFamily()
CODEC = ProfileCodec(FAMILY.periods)
# a small, fast GAN budget (about 10-20 s on one CPU thread)
GAN_BUDGET = dict(steps=800, lr=1e-3, hidden=(64, 64), seed=0)


def _features(codec: ScenarioCodec, scenarios) -> np.ndarray:
    return np.stack([codec.encode(s) for s in scenarios])


@pytest.fixture(scope="module")
def train_set():
    profiles = FAMILY.sample(1000, np.random.default_rng(0))
    return profiles, [p.label for p in profiles]


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    return _features(CODEC, FAMILY.sample(400, np.random.default_rng(1)))


@pytest.fixture(scope="module")
def gan(train_set) -> WGANGenerator:
    profiles, labels = train_set
    start = time.perf_counter()
    gen = WGANGenerator(CODEC, **GAN_BUDGET).fit(profiles, labels)
    print(f"WGAN-GP fit: {time.perf_counter() - start:.1f} s, last {gen.history[-1]}")
    return gen


# --- interface ----------------------------------------------------------------------------
def test_codecs_satisfy_the_protocol():
    assert isinstance(CODEC, ScenarioCodec)
    assert isinstance(InventoryDemandCodec(PRESETS["serial4"]), ScenarioCodec)


@pytest.mark.parametrize("kind", ["list", "uniform", "normal", "lognormal", "wgan", "wgan_bounded"])
def test_save_load_and_seeded_sampling(kind, train_set, tmp_path):
    profiles, labels = train_set
    profiles, labels = profiles[:200], labels[:200]
    if kind == "list":
        gen: ScenarioGenerator = ListGenerator(CODEC)
    elif kind.startswith("wgan"):
        margin = 0.1 if kind == "wgan_bounded" else None
        gen = WGANGenerator(CODEC, steps=20, hidden=(16,), bound_margin=margin)
    else:
        gen = ParametricGenerator(CODEC, distribution=kind)
    gen.fit(profiles, labels)
    a = gen.sample(8, np.random.default_rng(5))
    assert a == gen.sample(8, np.random.default_rng(5))
    assert a != gen.sample(8, np.random.default_rng(6))
    assert all(isinstance(s, DemandProfile) for s in a)
    path = tmp_path / f"{kind}.npz"
    gen.save(path)
    loaded = ScenarioGenerator.load(path, CODEC)
    assert type(loaded) is type(gen)
    assert loaded.label_values == ["weekday", "weekend"]
    assert loaded.sample(8, np.random.default_rng(5)) == a
    weekend = loaded.sample(4, np.random.default_rng(5), label="weekend")
    assert len(weekend) == 4
    with pytest.raises(ValueError, match="label"):
        loaded.sample(1, np.random.default_rng(0), label="holiday")
    with pytest.raises(ValueError, match="codec"):
        ScenarioGenerator.load(path, ProfileCodec(12))


@pytest.mark.parametrize("log_scale", [False, True])
def test_bounded_wgan_stays_near_the_training_range(train_set, log_scale):
    x = _features(CODEC, train_set[0][:200])
    kw = dict(steps=30, hidden=(16,), log_scale=log_scale)
    bounded = WGANGenerator(CODEC, bound_margin=0.1, **kw).fit_features(x)
    free = WGANGenerator(CODEC, **kw).fit_features(x)
    z = 50.0 * np.random.default_rng(0).standard_normal((500, bounded.latent_dim))
    t = np.log1p(x) if log_scale else x
    low, high = t.min(0) - 0.1 * np.ptp(t, 0), t.max(0) + 0.1 * np.ptp(t, 0)
    out = bounded.features_from_noise(z)
    out = np.log1p(out) if log_scale else out
    assert (out >= low - 1e-4).all() and (out <= high + 1e-4).all()
    # far-off noise pushes an unbounded output layer past the range
    raw = free.features_from_noise(z)
    raw = np.log1p(np.maximum(raw, -1 + 1e-12)) if log_scale else raw
    assert ((raw < low) | (raw > high)).any()
    with pytest.raises(ValueError, match="bound_margin"):
        WGANGenerator(CODEC, bound_margin=-0.5)


def test_list_generator_returns_the_training_scenarios(train_set):
    profiles = train_set[0][:10]
    gen = ListGenerator(CODEC).fit(profiles)
    rates = {p.rates for p in profiles}
    assert all(s.rates in rates for s in gen.sample(50, np.random.default_rng(0)))


def test_parametric_from_ranges_and_unfitted_errors():
    gen = ParametricGenerator.from_ranges(CODEC, 10.0, 20.0)
    x = _features(CODEC, gen.sample(100, np.random.default_rng(0)))
    assert x.min() >= 10.0 and x.max() <= 20.0
    with pytest.raises(RuntimeError, match="fit"):
        ListGenerator(CODEC).sample(1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="shape"):
        ListGenerator(CODEC).fit_features(np.zeros((3, 5)))


# --- codecs, repair and rejection --------------------------------------------------------
def test_repair_rules():
    assert repair(np.array([1.0, np.nan])) is None
    assert repair(np.array([-0.4, 2.0]), lower=0.0, tolerance=0.5).tolist() == [0.0, 2.0]
    assert repair(np.array([-0.6, 2.0]), lower=0.0, tolerance=0.5) is None
    assert repair(np.array([1.0, 9.0]), upper=5.0) is None
    assert repair(np.array([1.0, 3.0]), lower=0.0, total=1.0).tolist() == [0.25, 0.75]
    assert repair(np.array([0.0, 0.0]), lower=0.0, total=1.0) is None


def test_rejections_are_counted_and_redrawn():
    # half of the uniform range lies below -tolerance: about half the draws are rejected
    codec1 = ProfileCodec(1)
    gen = ParametricGenerator.from_ranges(codec1, -100.0, 100.0)
    out = gen.sample(200, np.random.default_rng(0))
    assert len(out) == 200 and all(s.rates[0] >= 0 for s in out)
    assert gen.stats.accepted == 200
    assert 0.35 < gen.stats.invalid_rate < 0.65
    always_bad = ParametricGenerator.from_ranges(codec1, -100.0, -50.0, max_rounds=3)
    with pytest.raises(RuntimeError, match="valid"):
        always_bad.sample(5, np.random.default_rng(0))
    assert always_bad.stats.rejected == always_bad.stats.proposed == 15


def test_inventory_codec_round_trip_and_validity():
    base = PRESETS["serial4"]
    codec = InventoryDemandCodec(base)
    [realised] = realise_demand([base], np.random.default_rng(0))
    x = codec.encode(realised)
    assert x.shape == (base.horizon,)
    decoded = codec.decode(x)
    assert decoded is not None and decoded.demand.kind == "series"
    assert decoded.demand.series == realised.demand.series
    assert decoded.lead_times == base.lead_times
    noisy = x + 0.3
    noisy[0] = -0.4  # inside the tolerance: clipped to 0
    assert codec.decode(noisy).demand.series[0] == 0.0
    for bad in (x - 100.0, np.full_like(x, np.inf), np.full_like(x, codec.max_demand + 5)):
        assert codec.decode(bad) is None
    with pytest.raises(ValueError, match="series"):
        codec.encode(base)


# --- metrics ------------------------------------------------------------------------------
def test_metrics_same_distribution_passes_shifted_fails(held_out):
    rng = np.random.default_rng(3)
    same = _features(CODEC, FAMILY.sample(400, np.random.default_rng(7)))
    shifted = same * 1.15
    for distance in ("mmd", "energy"):
        ok = M.band_test(held_out, same, rng, distance=distance, splits=60)
        bad = M.band_test(held_out, shifted, rng, distance=distance, splits=60)
        print(distance, ok.summary(), bad.summary())
        assert ok.passed and not bad.passed
        assert bad.p_value < 0.05
    for classifier in ("logistic", "knn"):
        ok = M.classifier_test(held_out, same, rng, classifier=classifier)
        bad = M.classifier_test(held_out, shifted, rng, classifier=classifier)
        print(classifier, ok, bad)
        assert ok.passed and abs(ok.accuracy - 0.5) < 0.1
        assert not bad.passed and bad.accuracy > 0.6
    stat, p = M.permutation_test(held_out[:150], same[:150], rng, permutations=100)
    stat_bad, p_bad = M.permutation_test(held_out[:150], shifted[:150], rng, permutations=100)
    assert p > 0.05 and p_bad < 0.05 and stat_bad > stat


def test_diversity_and_coverage(held_out):
    same = _features(CODEC, FAMILY.sample(400, np.random.default_rng(7)))
    collapsed = np.repeat(same[:3], 100, axis=0)
    assert M.coverage(held_out, same) > 0.8
    assert M.coverage(held_out, collapsed) < 0.2
    assert M.diversity(collapsed, held_out) < 0.5 * M.diversity(same, held_out)
    assert M.binomial_tail(0, 10) == 1.0 and M.binomial_tail(10, 10) == 0.5**10


# --- the headline: WGAN-GP on the known distribution -------------------------------------
def test_wgan_passes_the_band_test_wrong_generators_fail(gan, train_set, held_out):
    profiles, labels = train_set
    rng = np.random.default_rng(11)
    report = M.evaluate(gan, held_out, rng, splits=60)
    print("WGAN-GP", report)
    assert report["mmd"]["passed"], report["mmd"]
    assert report["coverage"] > 0.8
    assert report["invalid_rate"] < 0.05

    shifted = ListGenerator(CODEC).fit_features(_features(CODEC, profiles) * 1.15)
    collapsed = ListGenerator(CODEC).fit(profiles[:5])
    independent = ParametricGenerator(CODEC, distribution="normal").fit(profiles)
    for name, wrong in [
        ("shifted", shifted),
        ("collapsed", collapsed),
        ("independent", independent),
    ]:
        bad = M.evaluate(wrong, held_out, rng, splits=60)
        print(name, bad)
        assert not bad["mmd"]["passed"], name
        assert bad["mmd"]["generated"] > report["mmd"]["generated"], name
        assert not bad["c2st_knn"]["passed"], name


def test_wgan_conditional_labels_separate_the_modes(gan):
    rng = np.random.default_rng(4)
    day = _features(CODEC, gan.sample(200, rng, label="weekday"))
    end = _features(CODEC, gan.sample(200, rng, label="weekend"))
    morning = slice(7, 9)
    assert day[:, morning].mean() > 2.0 * end[:, morning].mean()


# --- environments run from a generator -----------------------------------------------------
@pytest.mark.parametrize("kind", ["parametric", "wgan"])
def test_inventory_env_draws_generated_demand_per_reset(kind):
    base = PRESETS["serial4"]
    bases = [base, InventoryScenario(demand=DemandConfig(kind="seasonal", mean=25.0, cycle=15))]
    train = realise_demand(bases, np.random.default_rng(0), per_scenario=100)
    codec = InventoryDemandCodec(base)
    if kind == "parametric":
        gen: ScenarioGenerator = ParametricGenerator(codec, distribution="normal")
    else:
        gen = WGANGenerator(codec, steps=30, hidden=(32,))
    gen.fit(train)
    source = gen.as_source()
    assert isinstance(source, GeneratorSource)
    env = gym.make("lepton/Inventory-v0", scenario=source)
    assert env.unwrapped.structure == codec.structure
    series = []
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        for _ in range(5):
            obs, *_ = env.step(env.action_space.sample())
            assert env.observation_space.contains(obs)
        sc = env.unwrapped.runner.sim.scenarios[0]
        assert sc.demand.kind == "series" and min(sc.demand.series) >= 0
        series.append(sc.demand.series)
        env.reset()
    assert len(set(series)) == 3
    # same seed, same generated scenarios
    env2 = gym.make("lepton/Inventory-v0", scenario=gen.as_source())
    env2.reset(seed=0)
    assert env2.unwrapped.runner.sim.scenarios[0].demand.series == series[0]
