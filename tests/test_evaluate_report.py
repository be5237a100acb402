"""lepton-evaluate's run folder and lepton-report's tables over jobs that differ in their env."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from agents import evaluate
from agents.jobs import FINISHED, JobStatus, write_status
from agents.sweep_report import write_report
from conf.resolvers import job_name

# --- lepton-report ------------------------------------------------------------------------------


def _job(sweep: Path, seed: int, variant: list[str], returns: dict[str, list[float]]) -> None:
    """A finished job of ``ppo`` on ``chain`` whose overrides are ``variant``, scoring ``returns``."""
    overrides = ["env=chain", "agent=ppo", f"seed={seed}", *variant]
    folder = sweep / job_name("chain", "ppo", seed, overrides)
    write_status(
        folder,
        JobStatus(
            state=FINISHED,
            started="2026-01-01T00:00:00",
            overrides=overrides,
            job={"env": "chain", "agent": "ppo", "seed": seed, "env_id": "lepton/chain-v0"},
        ),
    )
    cfg = OmegaConf.create(
        {
            "env": {"name": "chain", "id": "lepton/chain-v0", "kwargs": {}},
            "agent": {"name": "ppo"},
            "seed": seed,
            "eval": {"episodes": 2, "scenarios": None},
        }
    )
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(variant))  # what the overrides composed
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
