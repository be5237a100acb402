"""``lepton-envs``: list the registered environments with their family and description.

Every id registered through :func:`envs.register` is listed: the built-in families and the
packages exposing a ``lepton_gym.envs`` entry point (they are discovered on ``import envs``).

Examples:
    ``lepton-envs``, ``lepton-envs --family ops``, ``python -m scripts.list_envs --json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO


def _source(entry_point: str) -> str:
    """Where an id comes from: ``builtin`` for ``envs.*`` classes, else the providing package."""
    module = entry_point.partition(":")[0]
    top = module.split(".")[0]
    if top == "envs":
        return "builtin"
    from importlib.metadata import packages_distributions

    dists = packages_distributions().get(top)
    return dists[0] if dists else top


def collect(family: str | None = None) -> list[dict[str, Any]]:
    """Return one record per registered id, sorted by id.

    Args:
        family: keep only the ids of this family (``None``: all).

    Raises:
        ValueError: if ``family`` is not the family of any registered id (the message lists the
            registered families).
    """
    import gymnasium as gym

    import envs

    rows = []
    for env_id in envs.env_ids():
        info = envs.env_info(env_id)
        spec = gym.spec(env_id)
        rows.append(
            {
                "id": env_id,
                "family": info.family,
                "description": info.description,
                "entry_point": info.entry_point,
                "vector_entry_point": spec.vector_entry_point,
                "max_episode_steps": spec.max_episode_steps,
                "kwargs": dict(spec.kwargs),
                "source": _source(info.entry_point),
            }
        )
    if family is not None:
        families = sorted({row["family"] for row in rows})
        if family not in families:
            raise ValueError(f"--family: unknown family {family!r}; allowed values: {families}")
        rows = [row for row in rows if row["family"] == family]
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Render ``rows`` as a plain-text table with the columns id, family, source, description."""
    columns = ("id", "family", "source", "description")
    widths = {c: max([len(c), *(len(str(r[c])) for r in rows)]) for c in columns[:-1]}
    lines = []
    header = "  ".join(c.upper().ljust(widths[c]) for c in columns[:-1]) + "  DESCRIPTION"
    lines.append(header)
    lines.append("  ".join("-" * widths[c] for c in columns[:-1]) + "  " + "-" * 11)
    for row in rows:
        cells = "  ".join(str(row[c]).ljust(widths[c]) for c in columns[:-1])
        lines.append(f"{cells}  {row['description']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``lepton-envs``."""
    parser = argparse.ArgumentParser(
        prog="lepton-envs",
        description="List the registered Lepton Gym environments (built-in and plugins).",
    )
    parser.add_argument("--family", help="only the ids of this family (e.g. ops)")
    parser.add_argument(
        "--json", action="store_true", help="print a JSON list of records instead of a table"
    )
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run ``lepton-envs``; return the exit status.

    Args:
        argv: command-line arguments (default: ``sys.argv[1:]``).
        out: stream to print to (default: ``sys.stdout``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    stream = out if out is not None else sys.stdout
    try:
        rows = collect(args.family)
    except ValueError as exc:
        print(f"lepton-envs: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=2, default=str), file=stream)
    elif rows:
        print(format_table(rows), file=stream)
        print(f"\n{len(rows)} environment(s)", file=stream)
    else:
        print("no environments registered", file=stream)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
