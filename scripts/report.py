"""Summarise a sweep: `lepton-report SWEEP_DIR [--reps N] [--no-plots]`.

Runnable as ``python -m scripts.report``; the work is done by
:func:`agents.sweep_report.write_report` (tables, CSV, Markdown and figures in
``SWEEP_DIR/report/``).
"""

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lepton-report",
        description="Tables per environment (mean and IQM over seeds with 95%% bootstrap CIs), "
        "learning curves and performance profiles of a sweep (lepton-train -m ...); written to "
        "SWEEP_DIR/report/ as Markdown, CSV and PNG and printed.",
    )
    parser.add_argument("sweep_dir", type=Path, help="the sweep_dir of a lepton-train multirun")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    args = parser.parse_args(argv)
    from agents.sweep_report import write_report  # after parsing, so --help is instant

    try:
        write_report(args.sweep_dir, reps=args.reps, plots=not args.no_plots)
    except FileNotFoundError as exc:
        print(f"lepton-report: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
