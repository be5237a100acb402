"""Scenario generators: interface round trip, codecs and rejection, metrics, the WGAN-GP on the
synthetic ground truth, and an environment running from a generator source."""

from __future__ import annotations

import math
import time
from fractions import Fraction

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


def test_numpy_labels_are_saved_and_loaded(tmp_path):
    rates, labels = FAMILY.sample_rates(40, np.random.default_rng(0))  # labels: int64 array
    gen = ListGenerator(CODEC).fit_features(rates, labels)
    gen.save(tmp_path / "list.npz")
    loaded = ScenarioGenerator.load(tmp_path / "list.npz", CODEC)
    assert loaded.label_values == [0, 1]
    weekend = {tuple(r) for r in rates[labels == 1]}
    drawn = loaded.sample(10, np.random.default_rng(0), label=np.int64(1))
    assert all(s.rates in weekend for s in drawn)


def test_sample_refuses_a_negative_count(train_set):
    gen = ListGenerator(CODEC).fit(train_set[0][:5])
    assert gen.sample(0, np.random.default_rng(0)) == []
    with pytest.raises(ValueError, match="n: must be >= 0"):
        gen.sample(-1, np.random.default_rng(0))


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


def test_inventory_codec_rounds_within_a_fractional_max_demand():
    codec = InventoryDemandCodec(PRESETS["serial4"], max_demand=100.6, tolerance=0.5)
    x = np.full(codec.dim, 100.9)  # inside the tolerance: clipped to 100.6, then rounded
    x[0], x[1] = 100.4, 7.6
    series = codec.decode(x).demand.series
    assert series[:3] == (100.0, 8.0, 100.0)
    assert max(series) <= codec.max_demand and all(v == int(v) for v in series)
    # without rounding the clipped value itself is kept
    exact = InventoryDemandCodec(PRESETS["serial4"], max_demand=100.6, integer=False)
    assert exact.decode(np.full(exact.dim, 100.9)).demand.series[0] == 100.6


def test_inventory_codec_default_ceiling_holds_a_widely_spread_demand():
    from envs.ops.inventory.scenario import make_scenario

    spread = make_scenario(
        {"preset": "serial4", "demand": {"kind": "normal", "mean": 10, "std": 40}}
    )
    codec = InventoryDemandCodec(spread)
    assert codec.max_demand == 10 + 10 * 40 + 10  # not 4 x 10 + 50
    for realised in realise_demand([spread], np.random.default_rng(0), per_scenario=50):
        codec.encode(realised)  # the base's own realisations are valid
    # a Poisson demand keeps four times its mean plus 50
    assert InventoryDemandCodec(PRESETS["serial4"]).max_demand == 4 * 20 + 50


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


def test_distances_match_closed_forms_for_gaussians():
    rng = np.random.default_rng(0)
    n, dim, shift, sigma = 2000, 3, 1.0, 1.5
    x, y = rng.standard_normal((2, n, dim))
    moved = y + np.eye(dim)[0] * shift
    # N(0, I) against N(shift e1, I), RBF kernel of length scale sigma
    a = (sigma**2 / (sigma**2 + 2.0)) ** (dim / 2)
    mmd_true = 2.0 * a * (1.0 - math.exp(-(shift**2) / (2.0 * (sigma**2 + 2.0))))
    assert abs(M.mmd(x, y, sigma)) < 0.005
    assert M.mmd(x, moved, sigma) == pytest.approx(mmd_true, rel=0.2)
    # 1-D energy distance: 2 E|X - Y| - E|X - X'| - E|Y - Y'|, with X - Y ~ N(-shift, 2)
    phi = 0.5 * (1.0 + math.erf(-shift / 2.0))
    e_xy = 2.0 / math.sqrt(math.pi) * math.exp(-(shift**2) / 4.0) + shift * (1.0 - 2.0 * phi)
    energy_true = 2.0 * e_xy - 4.0 / math.sqrt(math.pi)
    assert abs(M.energy_distance(x[:, :1], y[:, :1])) < 0.01
    assert M.energy_distance(x[:, :1], moved[:, :1]) == pytest.approx(energy_true, rel=0.15)


def test_binomial_tail_is_exact_for_large_samples():
    n = 2000
    # P[X >= n/2] = (1 + P[X = n/2]) / 2 for even n
    exact = (1 + Fraction(math.comb(n, n // 2), 2**n)) / 2
    assert M.binomial_tail(n // 2, n) == float(exact)
    assert M.binomial_tail(n, n) == float(Fraction(1, 2**n))
    assert M.binomial_tail(3, 5) == 0.5
    # a classifier test on more than a thousand held-out samples
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 1200, 2))
    result = M.classifier_test(x, y, rng)
    assert result.n_test == 1200 and 0.0 < result.p_value <= 1.0


def test_coverage_needs_k_other_real_points():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((5, 2))
    far = real + 100.0
    assert M.coverage(real, far, k=4) == 0.0
    for k in (0, 5):
        with pytest.raises(ValueError, match="k: must be between 1 and len\\(real\\) - 1 = 4"):
            M.coverage(real, far, k=k)
    # evaluate on five held-out scenarios: a generator far from all of them covers none
    held = _features(CODEC, FAMILY.sample(5, np.random.default_rng(1)))
    gen = ParametricGenerator.from_ranges(CODEC, 4000.0, 4000.0)
    report = M.evaluate(gen, held, rng, splits=10)
    assert report["coverage"] == 0.0 and report["coverage_k"] == 4
    assert report["n_real"] == report["n_generated"] == 5
    assert report["splits"] == 10 and report["alpha"] == 0.05


def test_diversity_and_coverage(held_out):
    same = _features(CODEC, FAMILY.sample(400, np.random.default_rng(7)))
    collapsed = np.repeat(same[:3], 100, axis=0)
    assert M.coverage(held_out, same) > 0.8
    assert M.coverage(held_out, collapsed) < 0.2
    assert M.diversity(collapsed, held_out) < 0.5 * M.diversity(same, held_out)
    assert M.binomial_tail(0, 10) == 1.0 and M.binomial_tail(10, 10) == 0.5**10


# --- WGAN-GP training ----------------------------------------------------------------------
def _weights(gen: WGANGenerator) -> np.ndarray:
    assert gen.generator is not None
    return np.concatenate([p.detach().numpy().ravel() for p in gen.generator.parameters()])


def test_wgan_fit_is_reproducible_from_its_seed(train_set):
    x = _features(CODEC, train_set[0][:100])
    kw = dict(steps=20, hidden=(16,))
    a = WGANGenerator(CODEC, seed=3, **kw).fit_features(x)
    b = WGANGenerator(CODEC, seed=3, **kw).fit_features(x)
    c = WGANGenerator(CODEC, seed=4, **kw).fit_features(x)
    assert np.array_equal(_weights(a), _weights(b))
    assert not np.array_equal(_weights(a), _weights(c))


def test_wgan_history_logs_each_step_once(train_set):
    x = _features(CODEC, train_set[0][:50])
    # out of time after the first step, which is also a logged one
    gen = WGANGenerator(CODEC, steps=50, hidden=(8,), max_seconds=1e-9).fit_features(x)
    assert [step for step, *_ in gen.history] == [0]
    gen = WGANGenerator(CODEC, steps=150, hidden=(8,)).fit_features(x)
    assert [step for step, *_ in gen.history] == [0, 100, 149]


def test_wgan_noise_before_fit_is_refused():
    with pytest.raises(RuntimeError, match="fit"):
        WGANGenerator(CODEC).features_from_noise(np.zeros((1, 16)))


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
