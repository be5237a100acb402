"""lepton-evaluate's run folder and lepton-report's tables over jobs that differ in their env."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from agents import evaluate, sweep_report
from agents.jobs import FINISHED, JobStatus, write_status
from agents.report import markdown_table
from agents.stats import performance_profile
from agents.sweep_report import Run, collect, summarise, table_cells, write_report
from conf.resolvers import job_name

# --- lepton-report ------------------------------------------------------------------------------


def _job(
    sweep: Path,
    seed: int,
    variant: list[str],
    returns: dict[str, list[float]],
    *,
    agent: str = "ppo",
    config: tuple[str, ...] = (),
) -> None:
    """A finished job of ``agent`` on ``chain`` whose overrides are ``variant``, scoring ``returns``.

    ``config`` changes its saved configuration beyond what the overrides composed.
    """
    overrides = ["env=chain", f"agent={agent}", f"seed={seed}", *variant]
    folder = sweep / job_name("chain", agent, seed, overrides)
    write_status(
        folder,
        JobStatus(
            state=FINISHED,
            started="2026-01-01T00:00:00",
            overrides=overrides,
            job={"env": "chain", "agent": agent, "seed": seed, "env_id": "lepton/chain-v0"},
        ),
    )
    cfg = OmegaConf.create(
        {
            "env": {"name": "chain", "id": "lepton/chain-v0", "kwargs": {}},
            "agent": {"name": agent},
            "seed": seed,
            "total_timesteps": 1000,
            "eval": {"episodes": 2, "scenarios": None, "batch_size": 256},
            "run_dir": str(folder),
        }
    )
    # what the overrides composed
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([*variant, *config]))
    OmegaConf.save(cfg, folder / "config.yaml")
    metrics = {
        policy: {"return": {"mean": float(np.mean(r)), "std": float(np.std(r)), "n": len(r)}}
        for policy, r in returns.items()
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    with (folder / "eval.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["policy", "episode", "seed", "return"])
        for policy, r in returns.items():
            writer.writerows([policy, k, 1000 + k, value] for k, value in enumerate(r))


def _rows(sweep: Path) -> dict[str, dict[str, str]]:
    write_report(sweep, reps=50, plots=False)
    with (sweep / "report" / "summary.csv").open() as fh:
        return {row["policy"]: row for row in csv.DictReader(fh)}


@pytest.mark.parametrize(
    "variants",
    [
        ("env.kwargs.holding_cost=1", "env.kwargs.holding_cost=5"),
        ("eval.scenarios=heldout:a", "eval.scenarios=heldout:b"),
    ],
)
def test_report_keeps_the_baselines_of_every_env_and_evaluation_variant(tmp_path, variants):
    """Jobs that differ in their env or evaluation compare their agents with their own baselines."""
    sweep = tmp_path / "sweep"
    first, second = variants
    for seed in (0, 1):
        _job(sweep, seed, [first], {"ppo": [10.0, 12.0], "base_stock": [100.0, 102.0]})
        _job(sweep, seed, [second], {"ppo": [-50.0, -52.0], "base_stock": [-200.0, -204.0]})
    rows = _rows(sweep)
    assert set(rows) == {
        f"ppo ({first})",
        f"ppo ({second})",
        f"base_stock ({first})",
        f"base_stock ({second})",
    }
    assert float(rows[f"base_stock ({first})"]["mean"]) == pytest.approx(101.0)
    assert float(rows[f"base_stock ({second})"]["mean"]) == pytest.approx(-202.0)
    assert rows[f"base_stock ({second})"]["kind"] == "baseline"
    for row in rows.values():
        assert int(row["seeds"]) == 2 and int(row["episodes"]) == 2


def test_report_shares_baselines_across_agent_variants(tmp_path):
    """Hyperparameter variants of the agent run on one env: their baselines are counted once."""
    sweep = tmp_path / "sweep"
    for seed, lr in ((0, "0.001"), (0, "0.0003"), (1, "0.001"), (1, "0.0003")):
        base = [100.0 + seed, 100.0 + seed]
        _job(sweep, seed, [f"agent.learning_rate={lr}"], {"ppo": [1.0, 2.0], "base_stock": base})
    rows = _rows(sweep)
    assert set(rows) == {
        "ppo (agent.learning_rate=0.0003)",
        "ppo (agent.learning_rate=0.001)",
        "base_stock",
    }
    assert int(rows["base_stock"]["seeds"]) == 2
    assert float(rows["base_stock"]["mean"]) == pytest.approx(100.5)


def test_report_counts_a_baseline_once_per_seed_whatever_the_run_only_settings(tmp_path):
    """Jobs added with eval.batch_size=4 evaluate the same baselines: one run per seed, not two."""
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        base = {"base_stock": [100.0 + 10 * seed] * 2}
        _job(sweep, seed, [], {"ppo": [1.0, 2.0], **base})
        _job(sweep, seed, ["eval.batch_size=4"], {"a2c": [3.0, 4.0], **base}, agent="a2c")
    baselines = [(r.policy, r.seed) for r in collect(sweep) if r.kind == "baseline"]
    assert sorted(baselines) == [("base_stock", 0), ("base_stock", 1)]
    rows = _rows(sweep)
    assert set(rows) == {"ppo", "a2c", "base_stock"}
    assert int(rows["base_stock"]["seeds"]) == 2


def test_report_never_pools_runs_of_different_configurations(tmp_path):
    """Seeds added after a default changed: same overrides, other config, other row."""
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        _job(sweep, seed, [], {"ppo": [1.0, 1.0], "base_stock": [10.0, 10.0]})
    for seed in (2, 3):
        scores = {"ppo": [50.0, 50.0], "base_stock": [10.0, 10.0]}
        _job(sweep, seed, [], scores, config=("total_timesteps=2000",))
    for seed in (4, 5):
        scores = {"ppo": [7.0, 7.0], "base_stock": [20.0, 20.0]}
        _job(sweep, seed, [], scores, config=("env.kwargs.holding_cost=5",))
    rows = _rows(sweep)
    assert set(rows) == {
        "ppo (env.kwargs.holding_cost=null, total_timesteps=1000)",
        "ppo (env.kwargs.holding_cost=null, total_timesteps=2000)",
        "ppo (env.kwargs.holding_cost=5, total_timesteps=1000)",
        "base_stock (env.kwargs.holding_cost=null)",
        "base_stock (env.kwargs.holding_cost=5)",
    }
    assert float(rows["ppo (env.kwargs.holding_cost=null, total_timesteps=2000)"]["mean"]) == 50.0
    # the baselines' scores do not depend on the training budget: seeds 0 to 3 share a row
    assert int(rows["base_stock (env.kwargs.holding_cost=null)"]["seeds"]) == 4
    assert float(rows["base_stock (env.kwargs.holding_cost=5)"]["mean"]) == 20.0
    for row in rows.values():
        assert int(row["seeds"]) in (2, 4)


def test_report_states_the_episodes_and_intervals_of_every_row(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        _job(sweep, seed, ["eval.episodes=2"], {"ppo": [1.0] * 2, "base_stock": [10.0] * 2})
        _job(sweep, seed, ["eval.episodes=4"], {"ppo": [3.0] * 4, "base_stock": [10.0] * 4})
    rows = _rows(sweep)
    assert int(rows["ppo (eval.episodes=4)"]["episodes"]) == 4
    assert int(rows["ppo (eval.episodes=2)"]["episodes"]) == 2
    for row in rows.values():
        assert (float(row["confidence"]), int(row["reps"])) == (0.95, 50)
    report = (sweep / "report" / "report.md").read_text()
    assert "over its `episodes` evaluation episodes (here 2, 4)" in report
    assert "95% percentile stratified-bootstrap CIs (50 resamples)" in report
    assert "| policy | kind | seeds | episodes | IQM return [95% CI] |" in report
    assert "| ppo (eval.episodes=4) | agent | 2 | 4 | 3.00 [3.00, 3.00] |" in report


def _run(policy: str, seed: int, score: float, metrics: dict[str, float]) -> Run:
    return Run(
        env="chain",
        env_id="lepton/chain-v0",
        policy=policy,
        kind="agent",
        seed=seed,
        score=score,
        returns=np.array([score]),
        metrics=metrics,
    )


def test_report_ranks_a_diverged_agent_last_and_the_others_by_iqm():
    runs = [_run(p, 0, s, {}) for p, s in (("a", 1.0), ("b", np.nan), ("c", 3.0), ("d", 2.0))]
    rows = summarise(runs, reps=20)
    assert [r.policy for r in rows] == ["c", "d", "a", "b"]
    assert np.isnan(rows[-1].iqm)


def test_report_shows_a_metric_that_only_some_rows_have():
    runs = [_run("a", 0, 2.0, {"cost": 5.0}), _run("b", 0, 1.0, {"cost": 4.0, "delay": 9.0})]
    header, cells = table_cells(summarise(runs, reps=20))
    assert header[-2:] == ["cost", "delay"]
    assert [c[-2:] for c in cells] == [["5.00", "-"], ["4.00", "9.00"]]


def test_report_gives_no_interval_for_a_single_seed():
    runs = [_run("a", 0, 2.0, {}), _run("b", 0, 1.0, {}), _run("b", 1, 3.0, {})]
    rows = summarise(runs, reps=50)
    _, cells = table_cells(rows)
    by_policy = {c[0]: c for c in cells}
    assert by_policy["a"][2:6] == ["1", "1", "2.00 [no CI: 1 seed]", "2.00 [no CI: 1 seed]"]
    assert by_policy["b"][4] == "2.00 [1.00, 3.00]"


def test_report_figures_use_the_requested_resamples(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        _job(sweep, seed, [], {"ppo": [1.0, 2.0], "base_stock": [10.0, 12.0]})
    used = []

    def profile(runs, taus, *, reps, **kwargs):
        used.append(reps)
        return performance_profile(runs, taus, reps=reps, **kwargs)

    monkeypatch.setattr(sweep_report, "performance_profile", profile)
    write_report(sweep, reps=30, plots=True)
    assert used == [30, 30]


def test_run_table_states_what_its_cells_are_over_how_many_episodes():
    metrics = {
        "ppo": {"return": {"mean": 1.0, "std": 0.5, "n": 16}},
        "random": {"return": {"mean": -1.0, "std": 2.0, "n": 16}},
    }
    table = markdown_table(metrics, ["return"])
    assert "| ppo | 1.00 ± 0.500 |" in table
    assert table.rstrip().endswith(
        "mean ± standard deviation (population, not a confidence interval) over 16 evaluation "
        "episodes per policy"
    )


# --- lepton-evaluate ----------------------------------------------------------------------------


@pytest.mark.parametrize("marker", ["status.json", "model.zip"])
def test_evaluate_refuses_the_folder_of_a_training_run(make_cfg, marker):
    cfg = make_cfg("evaluate", ["agent=base_stock", "episodes=2"])
    folder = Path(cfg.run_dir)
    folder.mkdir(parents=True)
    record = {"config.yaml": "seed: 0\n", "metrics.json": "{}\n", marker: "{}\n"}
    for name, text in record.items():
        (folder / name).write_text(text)
    with pytest.raises(
        FileExistsError, match=rf"run_dir: .* holds a lepton-train run \({marker}\)"
    ):
        evaluate.run(cfg)
    assert {p.name: p.read_text() for p in folder.iterdir()} == record  # nothing replaced


def test_evaluate_writes_again_into_its_own_folder(make_cfg):
    cfg = make_cfg("evaluate", ["agent=base_stock", "episodes=2"])
    first = evaluate.run(cfg.copy())
    assert evaluate.run(cfg) == first
    with (Path(cfg.run_dir) / "eval.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 2
