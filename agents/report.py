"""Run-folder artefacts: metrics, per-episode results, the comparison table, the learning curve."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.evaluation import Episodes

Metrics = dict[str, dict[str, dict[str, float]]]
"""``{policy: {metric: {"mean", "std", "n"}}}``."""


def metrics_of(results: Mapping[str, Episodes]) -> Metrics:
    """Summaries of every policy's episodes."""
    return {name: episodes.summary() for name, episodes in results.items()}


def write_metrics(path: Path, metrics: Metrics) -> None:
    """Write ``metrics.json`` (policy -> metric -> mean, std, n)."""
    path.write_text(json.dumps(metrics, indent=2, sort_keys=False) + "\n")


def write_episodes(path: Path, results: Mapping[str, Episodes]) -> None:
    """Write ``eval.csv``: one row per policy and episode."""
    rows = [row for name, episodes in results.items() for row in episodes.rows(name)]
    if not rows:
        raise ValueError("no episodes to write")
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def format_number(value: float) -> str:
    """A compact representation with precision suited to the magnitude."""
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def table_rows(metrics: Metrics, columns: Sequence[str]) -> list[list[str]]:
    """One row per policy: its name, then ``mean ± std`` of each column."""
    rows = []
    for policy, summary in metrics.items():
        cells = [policy]
        for col in columns:
            s = summary.get(col)
            cells.append(
                "-" if s is None else f"{format_number(s['mean'])} ± {format_number(s['std'])}"
            )
        rows.append(cells)
    return rows


def markdown_table(metrics: Metrics, columns: Sequence[str]) -> str:
    """The comparison table as GitHub markdown (rows: policies; columns: mean ± std).

    A line under the table says what a cell holds and over how many episodes.
    """
    header = ["policy", *columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(columns)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(metrics, columns)]
    counts = sorted(
        {
            int(s["n"])
            for summary in metrics.values()
            for col in columns
            if (s := summary.get(col)) is not None and "n" in s
        }
    )
    if counts:
        lines += [
            "",
            "mean ± standard deviation (population, not a confidence interval) over "
            f"{' or '.join(map(str, counts))} evaluation episodes per policy",
        ]
    return "\n".join(lines) + "\n"


def print_table(metrics: Metrics, columns: Sequence[str], title: str) -> None:
    """Print the comparison table (with rich when installed, else as markdown)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency
        print(title)
        print(markdown_table(metrics, columns))
        return
    rows = table_rows(metrics, columns)
    header = ["policy", *columns]
    table = Table(title=title)
    for k, col in enumerate(header):
        table.add_column(col, justify="left" if k == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    console = Console()
    console.width = max(console.width, sum(widths) + 3 * len(widths) + 1)
    console.print(table)


def plot_curve(
    path: Path,
    curve: Sequence[Mapping[str, float]],
    baselines: Mapping[str, float],
    *,
    title: str,
    agent: str,
    episodes: int,
) -> None:
    """Plot the learning curve with the baselines as labelled horizontal lines.

    Args:
        path: the image to write (``curve.png``).
        curve: points ``{"timesteps", "mean", "std"}`` of the agent's evaluation return.
        baselines: mean evaluation return of every baseline.
        title: figure title.
        agent: label of the curve.
        episodes: evaluation episodes behind each point (stated in the axis label).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if curve:
        x = [p["timesteps"] for p in curve]
        mean = [p["mean"] for p in curve]
        std = [p["std"] for p in curve]
        ax.plot(x, mean, marker="o", markersize=3, color="C0", label=f"{agent} (mean ± std)")
        ax.fill_between(
            x,
            [m - s for m, s in zip(mean, std, strict=True)],
            [m + s for m, s in zip(mean, std, strict=True)],
            color="C0",
            alpha=0.2,
        )
    styles = ("--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1)))
    for k, (name, value) in enumerate(baselines.items(), start=1):
        ax.axhline(
            value,
            color=f"C{k}",
            linestyle=styles[(k - 1) % len(styles)],
            linewidth=1.4,
            label=f"{name} ({format_number(value)})",
        )
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"evaluation return (mean over {episodes} episodes)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="policy (mean)")
    fig.savefig(path, dpi=120)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON."""
    path.write_text(json.dumps(data, indent=2) + "\n")
