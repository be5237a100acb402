"""Summarise a sweep: `lepton-report SWEEP_DIR [--reps N] [--no-plots]`.

Runnable as ``python -m scripts.report``; the work is done by
:func:`agents.sweep_report.write_report` (tables, CSV, Markdown and figures in
``SWEEP_DIR/report/``). A folder of ``lepton-transfer`` runs (any folder holding
``transfer.json`` files and no training runs) gets one table of the transfer metrics instead
(:func:`agents.transfer_report.write_transfer_report`, ``SWEEP_DIR/report/transfer.md``).
"""

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lepton-report",
        description="Tables per environment (mean and IQM over seeds with 95%% bootstrap CIs), "
        "learning curves and performance profiles of a sweep (lepton-train -m ...); written to "
        "SWEEP_DIR/report/ as Markdown, CSV and PNG and printed. On a folder of lepton-transfer "
        "runs: one table of jumpstart, time to threshold, asymptote, total reward and transfer "
        "ratio per run (SWEEP_DIR/report/transfer.md).",
    )
    parser.add_argument("sweep_dir", type=Path, help="the sweep_dir of a lepton-train multirun")
    parser.add_argument(
        "--reps", type=int, default=2000, help="bootstrap resamples, at least 1 (default 2000)"
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error(f"argument --reps: must be >= 1, got {args.reps}")
    from agents.sweep_report import jobs, write_report  # after parsing: --help is instant
    from agents.transfer_report import find_runs, is_transfer_run, write_transfer_report

    try:
        if args.sweep_dir.is_dir() and (
            is_transfer_run(args.sweep_dir)  # one lepton-transfer run: a table of one row
            or (
                find_runs(args.sweep_dir)
                and all(is_transfer_run(j.folder) for j in jobs(args.sweep_dir))
            )
        ):
            write_transfer_report(args.sweep_dir)
        else:
            write_report(args.sweep_dir, reps=args.reps, plots=not args.no_plots)
    except FileNotFoundError as exc:
        print(f"lepton-report: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
