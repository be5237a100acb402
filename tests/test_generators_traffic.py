"""Traffic demand codec: exact expected rates, round trip, repair and rejection, realised
departures, real demand windows of the RESCO city networks, and the signal env running from
real windows and from a generator."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the lepton/ ids)
from agents.generators import ListGenerator, ParametricGenerator, ScenarioCodec
from agents.generators.traffic import (
    RESCO_CITY_NETS,
    TrafficDemandCodec,
    extract_demand_profiles,
    profiles_to_scenarios,
    resco_demand_profiles,
)
from envs.core.scenario import ScenarioList
from envs.traffic.builders import build
from envs.traffic.scenario import Departure, Flow
from envs.traffic.sim import TrafficSim, sample_demand

SEEDS = 200
"""Seeds over which realised departures are averaged."""


def realised_rates(codec: TrafficDemandCodec, scenario, seeds: int = SEEDS) -> np.ndarray:
    """Mean rate ``[dim]`` (veh/h) of the departures the simulator draws, over ``seeds`` seeds."""
    index = codec.route_rows(scenario)
    assert (index >= 0).all()
    counts = np.zeros((codec.num_routes, codec.bins))
    for seed in range(seeds):
        d = sample_demand(scenario, np.random.default_rng(seed))
        k = np.searchsorted(codec.edges, d.time, side="right") - 1
        assert ((k >= 0) & (k < codec.bins)).all()
        np.add.at(counts, (index[d.route], k), 1.0)
    return (counts / seeds * 3600.0 / codec.bin_seconds).reshape(-1)


def poisson_z(codec: TrafficDemandCodec, mean_rate: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """z-scores of mean counts over :data:`SEEDS` seeds against Poisson means."""
    per_bin = codec.bin_seconds / 3600.0
    mu = expected * per_bin
    sd = np.sqrt(np.maximum(mu, 1e-12) / SEEDS)
    return (mean_rate * per_bin - mu) / sd


@pytest.fixture(scope="module")
def single4():
    return build("single4")


# --- codec on built scenarios ------------------------------------------------------------------
def test_codec_protocol_name_and_argument_errors(single4):
    codec = TrafficDemandCodec(single4, bins=12)
    assert isinstance(codec, ScenarioCodec)
    assert codec.dim == 12 * 12 and codec.num_routes == 12
    assert codec.name == "traffic_demand/single4/r12b12w3600"
    assert codec.structure is single4
    assert codec.max_rate == 3600.0 and codec.tolerance == 0.5 * 3600 / 300
    for bins in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="bins: must be an integer >= 1"):
            TrafficDemandCodec(single4, bins=bins)
    with pytest.raises(ValueError, match="bins: each bin must span at least 1 s"):
        TrafficDemandCodec(single4, bins=7200)
    with pytest.raises(ValueError, match="max_rate"):
        TrafficDemandCodec(single4, max_rate=-1.0)
    with pytest.raises(ValueError, match="tolerance"):
        TrafficDemandCodec(single4, tolerance=float("nan"))
    with pytest.raises(ValueError, match="no routes"):
        TrafficDemandCodec(single4.replace(routes=(), flows=()))
    with pytest.raises(ValueError, match="window"):
        codec.encode(single4.replace(end=1800.0))
    narrow = single4.replace(routes=single4.routes[1:], flows=single4.flows[1:])
    with pytest.raises(ValueError, match="route_nw.*not a route of"):
        TrafficDemandCodec(narrow).encode(single4)


def test_encode_is_exact_for_fixed_departures_and_expected_for_random_flows(single4):
    codec = TrafficDemandCodec(single4, bins=12)
    # one poisson flow per route, no profile: its rate in every bin
    rates = {f.route: f.value for f in single4.flows}
    expected = np.repeat([rates[r.id] for r in single4.routes], codec.bins)
    assert np.allclose(codec.encode(single4), expected)
    r0, r1 = single4.routes[0].id, single4.routes[1].id
    # profile breakpoints off the bin edges, probability and period flows, fixed vehicles
    profile = ((450.0, 2.0), (1000.5, 0.25), (2999.0, 0.0))
    flows = (
        Flow("p", r0, 100.0, 3400.0, "poisson", 300.0, profile=profile),
        Flow("q", r1, 0.0, 3600.0, "probability", 0.05, profile=profile),
        Flow("d", r1, 10.0, 3600.0, "period", 45.0),
    )
    vehicles = (Departure("v0", 0.0, r0), Departure("v1", 299.5, r0), Departure("v2", 300.0, r0))
    sc = single4.replace(flows=flows, vehicles=vehicles)
    x = codec.encode(sc).reshape(codec.num_routes, codec.bins)
    # period flow: departures at 10, 55, ... -> 6 or 7 per 300 s bin; vehicles counted exactly
    period = np.bincount((10 + 45 * np.arange(80)) // 300, minlength=12)[:12]
    assert np.allclose(x[2:], 0.0)
    mean = realised_rates(codec, sc).reshape(codec.num_routes, codec.bins)
    fixed0 = np.array([2, 1] + [0] * 10) * 12.0
    z = poisson_z(codec, mean[:2] - [fixed0, period * 12.0], x[:2] - [fixed0, period * 12.0])
    print("analytic vs realised: max |z| =", np.abs(z).max())
    assert np.abs(z).max() < 4.5
    # bin 1 of route 0: [300, 450) at 300 veh/h, [450, 600) at 600 veh/h, plus vehicle v2
    assert x[0, 1] == pytest.approx((300 * 150 + 600 * 150) / 300 + 12.0)
    assert x[0, -1] == 0.0 and x[1, -1] == pytest.approx(period[-1] * 12.0)


@pytest.mark.parametrize("window", [(0.0, 3600.0), (100.5, 3700.5)], ids=["aligned", "offset"])
def test_round_trip_compatibility_and_realised_departures(single4, window):
    begin, end = window
    base = single4.replace(begin=begin, end=end)
    codec = TrafficDemandCodec(base, bins=7)  # 514.3 s bins: edges off whole seconds
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 400.0, codec.dim)
    x[: codec.bins] = 0.0  # a route without demand gets no flow
    x[codec.bins + 3] = 0.0  # an empty bin
    decoded = codec.decode(x)
    assert decoded is not None and decoded.name == "single4_generated"
    assert not decoded.vehicles and len(decoded.flows) == codec.num_routes - 1
    assert all(f.kind == "poisson" for f in decoded.flows)
    err = np.abs(codec.encode(decoded) - x).max()
    print(f"round trip {window}: max error {err:.2e} veh/h")
    assert err < 1e-9
    for field in ("network", "routes", "vtypes", "signals", "step_length", "begin", "end"):
        assert getattr(decoded, field) == getattr(base, field), field
    TrafficSim(1, base).check_compatible(decoded)
    z = poisson_z(codec, realised_rates(codec, decoded), x)
    print(
        f"realised vs features {window}: max |z| {np.abs(z).max():.2f}, mean z² {np.mean(z**2):.2f}"
    )
    assert np.abs(z).max() < 4.5 and 0.6 < np.mean(z**2) < 1.5


def test_repair_rejection_and_generator_counts(single4):
    codec = TrafficDemandCodec(single4, bins=4, max_rate=1000.0, tolerance=5.0)
    x = np.full(codec.dim, 100.0)
    x[0], x[1] = -4.0, 1004.0  # inside the tolerance: clipped to the bounds
    decoded = codec.decode(x)
    assert decoded is not None
    assert np.allclose(codec.encode(decoded)[:2], [0.0, 1000.0])
    for bad in (
        np.where(np.arange(codec.dim) == 3, -6.0, x),
        np.where(np.arange(codec.dim) == 3, np.nan, x),
        np.where(np.arange(codec.dim) == 3, np.inf, x),
        np.full(codec.dim, 1006.0),
        x[:-1],
    ):
        assert codec.decode(bad) is None
    with pytest.raises(ValueError, match=r"features\[1\]"):
        profiles_to_scenarios(codec, np.stack([x, -x]))
    # a generator whose draws fall below -tolerance about half of the time for one feature
    low, high = np.full(codec.dim, 50.0), np.full(codec.dim, 60.0)
    low[5], high[5] = -105.0, 95.0
    gen = ParametricGenerator.from_ranges(codec, low, high)
    out = gen.sample(100, np.random.default_rng(0))
    print("parametric invalid rate:", gen.stats.invalid_rate)
    assert len(out) == 100 and gen.stats.accepted == 100
    assert 0.35 < gen.stats.invalid_rate < 0.65
    assert all(codec.encode(s).min() >= 0.0 for s in out)


def test_windows_of_a_built_source_with_random_flows(single4):
    # a two-hour source whose demand doubles after 40 min: windows of 20 min every 10 min
    r0 = single4.routes[0].id
    source = single4.replace(
        end=7200.0,
        flows=(
            Flow("p", r0, 0.0, 7200.0, "poisson", 100.0, profile=((2400.0, 2.0),)),
            Flow("d", single4.routes[1].id, 5.0, 7200.0, "period", 60.0),
        ),
    )
    codec = TrafficDemandCodec(single4.replace(end=1200.0), bins=4)
    prof = extract_demand_profiles(codec, source, stride=600.0)
    assert prof.starts.tolist() == [600.0 * j for j in range(11)]
    assert prof.span == (0.0, 7200.0) and prof.dropped.sum() == 0
    assert prof.features.shape == (11, codec.dim)
    x = prof.features.reshape(11, codec.num_routes, codec.bins)
    assert np.allclose(x[:, 1], 60.0)  # one a minute
    assert np.allclose(x[0, 0], 100.0) and np.allclose(x[-1, 0], 200.0)
    assert np.allclose(x[3, 0], [100.0, 100.0, 200.0, 200.0])  # [1800, 3000): doubles at 2400
    for sc, start in zip(prof.scenarios, prof.starts, strict=True):
        assert np.allclose(codec.encode(sc), prof.features[list(prof.starts).index(start)])
        TrafficSim(1, codec.base).check_compatible(sc)
    # routes the base lacks are dropped and counted
    narrow = codec.base.replace(routes=codec.base.routes[1:], flows=())
    prof2 = extract_demand_profiles(TrafficDemandCodec(narrow, bins=4), source, stride=600.0)
    assert prof2.missing_routes == (r0,)
    assert np.allclose(prof2.dropped, x[:, 0].sum(axis=1) * 300 / 3600)
    with pytest.raises(ValueError, match="stride"):
        extract_demand_profiles(codec, source, stride=0.0)
    with pytest.raises(ValueError, match="span"):
        extract_demand_profiles(codec, source, span=(0.0, 600.0))


# --- real demand: RESCO city networks ------------------------------------------------------------
@pytest.fixture(scope="module")
def resco() -> None:
    pytest.importorskip("sumolib", reason="importing SUMO networks needs the `sumo` extra")
    from envs.traffic.nets import sumo_rl_nets_dir

    try:
        sumo_rl_nets_dir()
    except RuntimeError as exc:  # pragma: no cover - depends on the package index
        pytest.skip(f"sumo-rl's networks cannot be fetched: {exc}")


@pytest.fixture(scope="module")
def cologne1(resco: None):
    return resco_demand_profiles("cologne1", seconds=900.0, stride=300.0, bins=12)


@pytest.mark.filterwarnings("ignore:.*vClass:UserWarning")
@pytest.mark.parametrize("name", RESCO_CITY_NETS)
def test_resco_windows_hold_the_real_departures(resco: None, name: str):
    from envs.traffic.nets import resco_scenario

    codec, prof = resco_demand_profiles(name, seconds=900.0, stride=300.0, bins=12)
    full, wide = resco_demand_profiles(name, seconds=900.0, stride=300.0, all_routes=True)
    seconds = codec.bin_seconds / 3600.0
    totals = prof.features.sum(axis=1) * seconds
    print(
        f"{name}: span {prof.span}, {len(prof)} windows, {codec.num_routes} routes "
        f"({full.num_routes} in the file), vehicles/window {totals.min():.0f}-{totals.max():.0f}, "
        f"dropped {prof.dropped.sum():.0f} on {len(prof.missing_routes)} routes"
    )
    assert len(prof) >= 9 and prof.starts[0] <= codec.base.begin
    # the base window is one of them and holds exactly the imported scenario's vehicles
    j = prof.starts.tolist().index(codec.base.begin)
    imported = resco_scenario(name, begin=codec.base.begin, end=codec.base.end)
    assert totals[j] == pytest.approx(len(imported.vehicles)) and prof.dropped[j] == 0
    assert [v.depart for v in prof.scenarios[j].vehicles] == [v.depart for v in imported.vehicles]
    # with every route of the file nothing is dropped: the totals are the dropped plus the kept
    assert wide.dropped.sum() == 0
    assert np.allclose(wide.features.sum(axis=1) * seconds, totals + prof.dropped)
    for sc, x in zip(prof.scenarios, prof.features, strict=True):
        depart = np.array([v.depart for v in sc.vehicles])
        assert ((depart >= sc.begin) & (depart < sc.end)).all()
        assert len(depart) == pytest.approx(x.sum() * seconds)
        assert codec.decode(x) is not None


def test_resco_round_trip_and_realised_departures(cologne1):
    codec, prof = cologne1
    errors = []
    for x in prof.features:
        decoded = codec.decode(x)
        errors.append(np.abs(codec.encode(decoded) - x).max())
    print(f"cologne1 round trip over {len(prof)} windows: max error {max(errors):.2e} veh/h")
    assert max(errors) < 1e-9
    x = prof.features[0]
    z = poisson_z(codec, realised_rates(codec, codec.decode(x)), x)
    nz = x > 0
    print(
        f"cologne1 realised vs real: max |z| {np.abs(z).max():.2f}, mean z² {np.mean(z[nz] ** 2):.2f}"
    )
    assert np.abs(z).max() < 4.5 and 0.6 < np.mean(z[nz] ** 2) < 1.5
    assert np.all(z[~nz] == 0)


def run_episodes(source, resets: int = 3, steps: int = 12) -> list[int]:
    """Reset ``resets`` times and step; return the vehicles inserted in each episode."""
    env = gym.make("lepton/TrafficSignal-v0", scenario=source)
    inserted = []
    env.reset(seed=0)
    for _ in range(resets):
        info: dict = {}
        for _ in range(steps):
            obs, _, _, _, info = env.step(env.action_space.sample())
            assert env.observation_space.contains(obs)
        inserted.append(info["inserted_total"])
        env.reset()
    env.close()
    return inserted


def test_env_runs_real_windows_and_generated_demand(cologne1, tmp_path):
    codec, prof = cologne1
    real = run_episodes(ScenarioList(list(prof.scenarios)))
    ListGenerator(codec).fit_features(prof.features).save(tmp_path / "list.npz")
    gen = ListGenerator.load(tmp_path / "list.npz", codec)
    generated = run_episodes(gen.as_source())
    recreated = run_episodes(ScenarioList(profiles_to_scenarios(codec, prof.features)))
    print("inserted in 60 s: real", real, "generated", generated, "recreated", recreated)
    assert min(real + generated + recreated) > 0
    assert gen.stats.rejected == 0
