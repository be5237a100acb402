"""The sumo-rl reference worker: pure helpers here, the worker itself in its venv (slow)."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.bench_ref import sumo_reference, sumo_worker  # noqa: E402

VENV_PYTHON = ROOT / ".bench" / "venvs" / sumo_reference.VENV / "bin" / "python"
needs_venv = pytest.mark.skipif(
    not VENV_PYTHON.exists(),
    reason=f"the sumo-rl reference venv {VENV_PYTHON.parent.parent} is absent "
    "(created by the bench on first use)",
)

TRIPINFO = """<?xml version="1.0" encoding="UTF-8"?>
<tripinfos>
    <tripinfo id="a" depart="1.00" departDelay="1.00" arrival="31.00" duration="30.00"
              routeLength="300.00" waitingTime="4.00" timeLoss="10.00"/>
    <tripinfo id="b" depart="5.00" departDelay="0.00" arrival="55.00" duration="50.00"
              routeLength="500.00" waitingTime="8.00" timeLoss="20.00"/>
    <tripinfo id="c" depart="9.00" departDelay="3.00" arrival="-1" duration="91.00"
              routeLength="100.00" waitingTime="60.00" timeLoss="80.00"/>
</tripinfos>
"""


def test_tripinfo_means_cover_arrived_vehicles_only(tmp_path):
    path = tmp_path / "tripinfo.xml"
    path.write_text(TRIPINFO)
    out = sumo_worker.summarize_tripinfo(path)
    assert out == {
        "arrived": 2,
        "mean_travel_time": 40.0,
        "mean_waiting_time": 6.0,
        "mean_time_loss": 15.0,
        "mean_depart_delay": 0.5,
        "mean_route_length": 400.0,
    }


def test_empty_tripinfo_has_no_means(tmp_path):
    path = tmp_path / "tripinfo.xml"
    path.write_text("<tripinfos/>\n")
    out = sumo_worker.summarize_tripinfo(path)
    assert out["arrived"] == 0 and out["mean_travel_time"] is None


def test_sumocfg_window_and_files(tmp_path):
    path = tmp_path / "net.sumocfg"
    path.write_text(
        "<configuration><input><net-file value='n.net.xml'/>"
        "<route-files value='a.rou.xml, b.rou.xml'/></input>"
        "<time><begin value='25200'/><end value='28800'/></time></configuration>"
    )
    cfg = sumo_worker.read_sumocfg(path)
    assert cfg == {
        "net_file": str(tmp_path / "n.net.xml"),
        "route_files": [str(tmp_path / "a.rou.xml"), str(tmp_path / "b.rou.xml")],
        "begin": 25200.0,
        "end": 28800.0,
    }


def test_scenarios_resolve_from_the_nets_folder(tmp_path):
    folder = tmp_path / "RESCO" / "cologne1"
    folder.mkdir(parents=True)
    (folder / "cologne1.sumocfg").write_text(
        "<configuration><input><net-file value='cologne1.net.xml'/>"
        "<route-files value='cologne1.rou.xml'/></input>"
        "<time><begin value='25200'/><end value='28800'/></time></configuration>"
    )
    resco = sumo_worker.resolve_scenario("cologne1", tmp_path)
    assert (resco["begin"], resco["end"]) == (25200.0, 28800.0)
    assert resco["route_file"] == str(folder / "cologne1.rou.xml")
    single = sumo_worker.resolve_scenario({"name": "single-intersection", "end": 600}, tmp_path)
    assert (single["begin"], single["end"]) == (0.0, 600.0)
    assert single["net_file"].endswith("single-intersection.net.xml")
    custom = {"name": "mine", "net_file": "x.net.xml", "route_file": "x.rou.xml"}
    assert sumo_worker.resolve_scenario({**custom, "begin": 0, "end": 10}, tmp_path)["end"] == 10
    with pytest.raises(ValueError, match="unknown"):
        sumo_worker.resolve_scenario("nope", tmp_path)
    with pytest.raises(ValueError, match="must be >"):
        sumo_worker.resolve_scenario({**custom, "begin": 10, "end": 10}, tmp_path)


LINKS = [
    [("n_in_0", "s_out_0", "v0")],
    [("n_in_0", "s_out_0", "v1")],  # a second link between the same lanes
    [("w_in_0", "e_out_0", "v2")],
    [("w_in_0", "n_out_0", "v3")],
    [],  # an index with no link
]


def test_green_pairs_are_distinct_and_only_green():
    assert sumo_worker.green_pairs("GGrrr", LINKS) == [("n_in_0", "s_out_0")]
    assert sumo_worker.green_pairs("rrGgy", LINKS) == [
        ("w_in_0", "e_out_0"),
        ("w_in_0", "n_out_0"),
    ]
    assert sumo_worker.green_pairs("yyrrs", LINKS) == []


def test_max_pressure_choice():
    phases = [
        sumo_worker.green_pairs("GGrrr", LINKS),
        sumo_worker.green_pairs("rrGGr", LINKS),
    ]
    counts = {"n_in_0": 3, "s_out_0": 1, "w_in_0": 4, "e_out_0": 0, "n_out_0": 2}
    assert [sumo_worker.pressure(p, counts) for p in phases] == [2, 6]
    assert sumo_worker.max_pressure_action(phases, counts, current=0, ready=True) == 1
    assert sumo_worker.max_pressure_action(phases, counts, current=0, ready=False) == 0
    assert sumo_worker.choose_phase([2, 6, 6], current=2) == 2
    assert sumo_worker.choose_phase([2, 6, 6], current=0) == 1
    assert sumo_worker.choose_phase([0, 0], current=1) == 1


def test_quality_needs_the_threshold_and_enough_arrivals():
    good = {"mean_travel_time": 38.0, "arrived": 950, "loaded": 1000}
    assert sumo_worker.meets_quality(good, 40.0, 0.9)
    assert not sumo_worker.meets_quality(good, 37.0, 0.9)
    assert not sumo_worker.meets_quality(good, None, 0.9)
    starved = {"mean_travel_time": 24.0, "arrived": 1760, "loaded": 2528}
    assert not sumo_worker.meets_quality(starved, 40.0, 0.9)
    assert sumo_worker.meets_quality(starved, 40.0, 0.0)
    assert not sumo_worker.meets_quality({"mean_travel_time": None}, 40.0, 0.0)


def test_aggregate_over_seeds():
    out = sumo_worker.aggregate([{"a": 1.0, "b": None}, {"a": 3.0, "b": 2}])
    assert out["mean"] == {"a": 2.0, "b": 2.0}
    assert out["std"]["a"] == pytest.approx(2**0.5) and out["std"]["b"] is None


def test_default_speed_cases():
    assert sumo_worker.default_speed_cases("grid4x4") == [{"scenario": "grid4x4", "api": "env"}]
    single = sumo_worker.default_speed_cases("single-intersection")
    assert single == [{"scenario": "single-intersection", "api": "single"}]
    assert len(sumo_worker.default_speed_cases(None)) == 3


def _env(**changes):
    signals = SimpleNamespace(
        delta_time=5.0, yellow_time=2.0, min_green=5.0, max_green=50.0, all_red_time=0.0
    )
    sc = SimpleNamespace(
        signals=signals, begin=0.0, end=3600.0, controlled_signals=(0,), teleport_time=-1.0
    )
    for key, value in changes.items():
        setattr(signals if hasattr(signals, key) else sc, key, value)
    return SimpleNamespace(unwrapped=SimpleNamespace(structure=sc))


PARAMS = {
    "delta_time": 5,
    "yellow_time": 2,
    "min_green": 5,
    "begin": 0.0,
    "end": 3600.0,
    "signals": 1,
    "sumo_options": {"time_to_teleport": -1},
    "max_green_enforced": False,
}


def test_check_params_lists_differences():
    out = sumo_reference.check_sumorl_params(_env(), PARAMS)
    assert out == ["max_green: reference not enforced, ours 50.0"]
    out = sumo_reference.check_sumorl_params(
        _env(delta_time=10.0, teleport_time=300.0, all_red_time=1.0), PARAMS
    )
    assert any(line.startswith("delta_time") for line in out)
    assert any(line.startswith("teleport time") for line in out)
    assert any(line.startswith("all_red_time") for line in out)


def test_reference_definition():
    (pins,) = sumo_reference.INSTALL
    assert "sumo-rl==1.4.5" in pins and "pettingzoo==1.24.3" in pins
    assert (ROOT / "scripts" / "bench_ref" / sumo_reference.WORKER).exists()
    cfg = sumo_reference.fidelity_config(seeds=(0,))
    scenarios = {(r["scenario"], r["controller"], r["driver"]) for r in cfg["runs"]}
    assert ("grid4x4", "max_pressure", "sumo_rl") in scenarios
    assert ("ingolstadt21", "fixed_time", "sumo_rl") in scenarios
    assert sumo_reference.ppo_config(40.0)["ppo"]["n_steps"] == 720


def _worker(config):
    proc = subprocess.run(
        [
            str(VENV_PYTHON),
            str(ROOT / "scripts" / "bench_ref" / "sumo_worker.py"),
            json.dumps(config),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@needs_venv
def test_worker_info_locates_the_shipped_scenarios():
    out = _worker({"mode": "info"})
    nets = Path(out["nets_dir"])
    assert nets == sumo_reference.nets_dir(VENV_PYTHON)
    assert out["versions"]["sumo-rl"] == "1.4.5"
    for name in sumo_reference.RESCO:
        scenario = out["scenarios"][name]
        assert Path(scenario["net_file"]).exists() and Path(scenario["route_file"]).exists()
    assert out["scenarios"]["cologne1"]["begin"] == 25200.0


@pytest.mark.slow
@needs_venv
def test_worker_fixed_time_agrees_with_plain_sumo_and_max_pressure_runs():
    run = {"scenario": {"name": "single-intersection", "end": 600}, "seeds": [0]}
    out = _worker(
        {
            "mode": "fidelity",
            "runs": [
                {**run, "controller": "fixed_time", "driver": "sumo_rl"},
                {**run, "controller": "fixed_time", "driver": "libsumo"},
                {**run, "controller": "max_pressure", "driver": "sumo_rl"},
            ],
        }
    )
    sumo_rl, plain, pressure = (r["mean"] for r in out["runs"])
    for key in ("arrived", "inserted", "mean_travel_time", "mean_speed"):
        assert sumo_rl[key] == plain[key]
    assert pressure["arrived"] > 0 and pressure["mean_speed"] > 0


@pytest.mark.slow
@needs_venv
def test_worker_speed_and_ppo_report_their_schema():
    speed = _worker({"seconds": 0.2, "repeats": 1, "warmup_s": 0.1, "env_id": "grid4x4"})
    assert speed["steps_per_s"]["best"] > 0 and speed["params"]["signals"] == 16
    ppo = _worker(
        {
            "mode": "ppo_time_to_quality",
            "num_seconds": 300,
            "eval_every": 64,
            "max_timesteps": 64,
            "threshold": 0.0,
            "ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 1},
        }
    )["ppo_time_to_quality"]
    assert not ppo["reached"] and ppo["timesteps"] == 64
    assert [point[1] for point in ppo["curve"]] == [0, 64]
