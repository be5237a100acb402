"""One table over many transfer runs: ``lepton-report DIR`` on a folder of ``lepton-transfer`` runs.

Every ``transfer.json`` under ``DIR`` (a ``lepton-transfer -m`` sweep, or any folder holding
run folders) gives one row: the pair, the mode, the seeds, and the five transfer metrics with
their intervals over seeds. Written to ``DIR/report/transfer.md`` and ``transfer.csv``.

The *budget* column is the ``total_timesteps`` a run asked for, *trained_timesteps* the steps
its arms actually trained (SB3 trains whole rollouts, so the budget rounded up to the next one;
``-`` for runs that did not record it).

A row's *claim* column says whether the run shows, with non-overlapping intervals, both a
positive jumpstart (its interval above 0) and a shorter time to threshold than scratch (seeds
that never reach the threshold counted at the last curve point, the trained steps); otherwise it
names what is missing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPORT_DIR = "report"
RESULT_FILE = "transfer.json"

COLUMNS = (
    "pair",
    "mode",
    "seeds",
    "budget",
    "trained_timesteps",
    "zero_shot",
    "jumpstart",
    "threshold",
    "time_to_threshold_transfer",
    "time_to_threshold_scratch",
    "asymptotic_transfer",
    "asymptotic_scratch",
    "total_reward_transfer",
    "total_reward_scratch",
    "transfer_ratio",
    "claim",
    "verdict",
    "folder",
)


def find_runs(root: Path) -> list[Path]:
    """Run folders under ``root`` holding a ``transfer.json`` (sources excluded), sorted."""
    return sorted(p.parent for p in root.rglob(RESULT_FILE) if p.parent.name != "source")


def is_transfer_run(folder: Path) -> bool:
    """Whether ``folder`` is a ``lepton-transfer`` run (finished or not)."""
    return (folder / RESULT_FILE).is_file() or (folder / "transfer.log").is_file()


def _cell(s: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not s or s.get("mean") is None:
        return "-"
    return f"{s['mean']:.{digits}g} [{s['low']:.{digits}g}, {s['high']:.{digits}g}]"


def claim(result: Mapping[str, Any]) -> str:
    """``"positive jumpstart, sooner to threshold"`` when both hold with separated intervals.

    One seed gives no interval (its bounds are its value), so it shows nothing.
    """
    agg = result["metrics"]["aggregate"]
    missing = []
    jump = agg["jumpstart"]
    if jump.get("n", 2) < 2:
        missing.append("one seed: no interval")
    if jump["low"] is None or jump["low"] <= 0:
        missing.append("jumpstart interval not above 0")
    ttt = agg.get("time_to_threshold_censored")
    if result["metrics"].get("threshold") is None or ttt is None:
        missing.append("no threshold")
    else:
        t, s = ttt["transfer"], ttt["scratch"]
        if t["high"] is None or s["low"] is None or not t["high"] < s["low"]:
            missing.append("time-to-threshold intervals overlap or transfer is later")
    if missing:
        return "not shown: " + "; ".join(missing)
    return "positive jumpstart, sooner to threshold"


def row(result: Mapping[str, Any], folder: Path) -> dict[str, str]:
    """The report's row of one run."""
    agg = result["metrics"]["aggregate"]
    ttt = agg.get("time_to_threshold_censored", agg["time_to_threshold"])
    reached = {a: agg["time_to_threshold"][a]["reached"] for a in ("transfer", "scratch")}
    n = len(result["seeds"])
    threshold = result["threshold"]
    return {
        "pair": f"{result['source']['env']['name']} -> {result['target']['env']['name']}",
        "mode": result["mode"]
        + (f" (lr x{scale:g})" if (scale := result.get("finetune_lr_scale", 1.0)) != 1.0 else ""),
        "seeds": str(n),
        "budget": f"{result['budget']:,}",
        "trained_timesteps": (
            f"{trained:,}" if (trained := result.get("trained_timesteps")) is not None else "-"
        ),
        "zero_shot": _cell(result["zero_shot"]),
        "jumpstart": _cell(agg["jumpstart"]),
        "threshold": "-"
        if threshold["value"] is None
        else f"{threshold['value']:.4g} ({threshold['from']})",
        "time_to_threshold_transfer": f"{_cell(ttt['transfer'])} ({reached['transfer']}/{n})",
        "time_to_threshold_scratch": f"{_cell(ttt['scratch'])} ({reached['scratch']}/{n})",
        "asymptotic_transfer": _cell(agg["asymptotic"]["transfer"]),
        "asymptotic_scratch": _cell(agg["asymptotic"]["scratch"]),
        "total_reward_transfer": _cell(agg["total_reward"]["transfer"]),
        "total_reward_scratch": _cell(agg["total_reward"]["scratch"]),
        "transfer_ratio": _cell(agg["transfer_ratio"]),
        "claim": claim(result),
        "verdict": result["verdict"],
        "folder": str(folder),
    }


def markdown(
    rows: Sequence[Mapping[str, str]], title: str, confidences: Sequence[float] = (0.95,)
) -> str:
    """The rows as a Markdown table (the main metrics) followed by each run's verdict.

    Args:
        rows: the rows (:func:`row`).
        title: the heading.
        confidences: coverage of the runs' intervals (``confidence`` of ``lepton-transfer``),
            stated under the table.
    """
    coverage = ", ".join(f"{100 * c:g} %" for c in sorted(set(confidences)))
    head = (
        "| pair | mode | seeds | jumpstart | time to threshold: transfer | scratch | "
        "asymptote: transfer | scratch | total reward: transfer | scratch | transfer ratio | "
        "claim |"
    )
    lines = [f"# {title}", "", head, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r['pair']} | {r['mode']} | {r['seeds']} | {r['jumpstart']} | "
            f"{r['time_to_threshold_transfer']} | {r['time_to_threshold_scratch']} | "
            f"{r['asymptotic_transfer']} | {r['asymptotic_scratch']} | "
            f"{r['total_reward_transfer']} | {r['total_reward_scratch']} | "
            f"{r['transfer_ratio']} | {r['claim']} |"
        )
    lines += [
        "",
        f"Means over seeds with {coverage} bootstrap intervals. Time to threshold: environment "
        "steps on the target until the evaluation return reaches the threshold; a seed that never "
        "reaches it counts at the trained steps, (k/n) seeds reached it. Total reward: area under the "
        "learning curve per step. Transfer ratio: (AUC_transfer - AUC_scratch) / |AUC_scratch|.",
        "",
    ]
    for r in rows:
        trained = r.get("trained_timesteps", "-")
        steps = f"budget {r['budget']} steps" + (
            f", {trained} trained" if trained not in ("-", r["budget"]) else ""
        )
        lines.append(
            f"- **{r['pair']}** ({r['mode']}, {steps}, zero-shot "
            f"{r['zero_shot']}, threshold {r['threshold']}): {r['verdict']} `{r['folder']}`"
        )
    return "\n".join(lines) + "\n"


def write_transfer_report(root: Path) -> dict[str, Any]:
    """Write ``root/report/transfer.md`` and ``transfer.csv``; returns the rows and files.

    Raises:
        FileNotFoundError: if ``root`` holds no ``transfer.json``.
    """
    folders = find_runs(root)
    if not folders:
        raise FileNotFoundError(
            f"SWEEP_DIR: {str(root)!r} holds no {RESULT_FILE} (pass a folder of lepton-transfer runs)"
        )
    results = [json.loads((f / RESULT_FILE).read_text()) for f in folders]
    rows = [row(r, f.relative_to(root)) for r, f in zip(results, folders, strict=True)]
    out = root / REPORT_DIR
    out.mkdir(exist_ok=True)
    confidences = [r["metrics"]["aggregate"]["jumpstart"].get("confidence", 0.95) for r in results]
    md = markdown(rows, f"Transfer report: {root}", confidences)
    (out / "transfer.md").write_text(md)
    with open(out / "transfer.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(md)
    return {"rows": rows, "files": [out / "transfer.md", out / "transfer.csv"]}
