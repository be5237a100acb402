"""Report of a sweep: per-environment tables over seeds, learning curves, performance profiles.

``lepton-report SWEEP_DIR`` reads every finished job folder of the sweep (``config.yaml``,
``metrics.json``, ``eval.csv``, ``curve.csv``) and writes into ``SWEEP_DIR/report/``::

    report.md              per environment: one row per agent and baseline, and the job states
    summary.csv            the same numbers, one row per environment and policy
    jobs.csv               every job: state, attempt, error
    curves_<env>.png       learning curves: mean over seeds with a 95 % bootstrap band
    profile_<env>.png      performance profiles: fraction of evaluation episodes above a return

A run's score is its mean evaluation return; the table gives, over the seeds of every policy,
the mean and the interquartile mean (IQM) with 95 % stratified-bootstrap confidence intervals
(:mod:`agents.stats`), the number of seeds behind them and the evaluation episodes of a run.
Baselines are evaluated by every job on that job's seed; jobs sharing an environment config, an
evaluation protocol and a seed share the baseline scores. Jobs of one environment that differ in
anything their baselines depend on (``env.<key>=...``, ``eval.<key>=...``, ``experiment=...``
overrides) get baseline rows of their own, labelled with those overrides as their agents are.
Runs whose saved configurations differ are never pooled in one row, whatever their overrides
(e.g. seeds added after a default changed): the row labels name the keys that differ.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from agents.jobs import FINISHED, STATUS_FILE, read_status
from agents.report import format_number
from agents.runs import flatten
from agents.stats import iqm, mean, performance_profile, stratified_bootstrap
from agents.sweeps import SWEEP_FILE, Job, describe, is_job, jobs, progress_line, sweep_total
from conf.resolvers import (
    RUN_ONLY_KEYS,
    computing_overrides,
    covered,
    override_key,
    safe_name,
    without_idle_env_keys,
)

REPORT_DIR = "report"


@dataclasses.dataclass
class Run:
    """One policy evaluated in one job (an agent trained on a seed, or a baseline).

    Attributes:
        env: ``env.name`` of the job.
        env_id: registered id of the environment.
        policy: row label (agent name, with the job's distinguishing overrides if any).
        kind: ``agent`` or ``baseline``.
        seed: the job's seed.
        score: mean evaluation return.
        returns: evaluation return of every episode.
        metrics: mean of every reported metric.
        curve: learning-curve points (agents only).
    """

    env: str
    env_id: str
    policy: str
    kind: str
    seed: int
    score: float
    returns: np.ndarray
    metrics: dict[str, float]
    curve: list[dict[str, float]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Row:
    """One line of an environment's table (``confidence`` and ``reps``: those of its intervals)."""

    env: str
    policy: str
    kind: str
    seeds: int
    episodes: int
    mean: float
    mean_low: float
    mean_high: float
    iqm: float
    iqm_low: float
    iqm_high: float
    metrics: dict[str, float]
    confidence: float = 0.95
    reps: int = 2000


BASELINE_KEYS = ("env", "eval", "experiment")
"""Overrides under these keys change what a job's baselines score (their env or evaluation)."""

EVALUATION_KEYS = ("env", "eval")
"""Configuration keys a baseline's scores depend on, besides its name and the seed."""

CONFIDENCE = 0.95
"""Coverage of the tables' intervals."""

IGNORED_KEYS = RUN_ONLY_KEYS | {"seed"}
"""Configuration keys in which the jobs pooled in one row may differ."""


def _variants(finished: list[Job]) -> dict[Path, list[str]]:
    """Overrides that tell jobs of the same env, agent and seed apart (those not shared), sorted.

    These are the overrides hashed into the job's folder name (:func:`computing_overrides`):
    switches such as ``tensorboard=true`` never label a variant.
    """
    extras: dict[Path, set[str]] = {}
    for job in finished:
        overrides = job.status.overrides if job.status is not None else []
        extras[job.folder] = set(computing_overrides(overrides))
    common = set.intersection(*extras.values()) if extras else set()
    return {folder: sorted(e - common) for folder, e in extras.items()}


def _label(policy: str, variant: list[str]) -> str:
    return f"{policy} ({', '.join(variant)})" if variant else policy


@dataclasses.dataclass
class _Finished:
    """A finished job as the report reads it."""

    job: Job
    cfg: Any
    variant: list[str]
    baseline_variant: list[str]
    metrics: dict[str, Any]
    settings: dict[str, Any]

    def overrides(self, kind: str) -> list[str]:
        """The overrides that label a policy of ``kind`` (``agent`` or ``baseline``)."""
        return self.variant if kind == "agent" else self.baseline_variant

    def named(self, policy: str) -> tuple[str, str]:
        """``(kind, label)`` of ``policy`` from its overrides alone."""
        kind = "agent" if policy == self.cfg.agent.name else "baseline"
        return kind, _label(policy, self.overrides(kind))


def collect(sweep_dir: Path) -> list[Run]:
    """Every policy's results in the finished jobs of ``sweep_dir``.

    An agent's row label names all of its job's variant overrides, a baseline's only those
    that change its scores (:data:`BASELINE_KEYS`); a baseline evaluated by several jobs on the
    same env config, evaluation protocol and seed is counted once. Jobs under one label whose
    saved configurations still differ (beyond their seed and :data:`RUN_ONLY_KEYS`, e.g. seeds
    added after a default changed) are never pooled: each label also names those keys, for a
    baseline the ones under ``env`` and ``eval`` (:data:`EVALUATION_KEYS`).
    """
    finished = [
        j
        for j in jobs(sweep_dir)
        if j.status is not None
        and j.status.state == FINISHED
        and (j.folder / "metrics.json").is_file()
    ]
    variants = _variants(finished)
    loaded: list[_Finished] = []
    for job in finished:
        cfg: Any = OmegaConf.load(job.folder / "config.yaml")
        variant = variants[job.folder]
        loaded.append(
            _Finished(
                job=job,
                cfg=cfg,
                variant=variant,
                baseline_variant=[o for o in variant if covered(override_key(o), BASELINE_KEYS)],
                metrics=json.loads((job.folder / "metrics.json").read_text()),
                settings=_settings(cfg),
            )
        )
    # the jobs of every row, and the config keys that still tell them apart
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for k, done in enumerate(loaded):
        for policy in done.metrics:
            groups[(done.cfg.env.name, *done.named(policy))].append(k)
    apart: dict[tuple[str, str, str, int], list[str]] = {}
    for (env, kind, label), members in groups.items():
        settings = [
            {
                key: value
                for key, value in loaded[k].settings.items()
                if kind == "agent" or covered(key, EVALUATION_KEYS)
            }
            for k in members
        ]
        for k, extra in zip(members, _differences(settings), strict=True):
            apart[(env, kind, label, k)] = extra
    runs: list[Run] = []
    seen_baselines: set[tuple[str, str, int]] = set()
    for k, done in enumerate(loaded):
        cfg = done.cfg
        env, env_id, seed = cfg.env.name, cfg.env.id, int(cfg.seed)
        episodes = _episode_returns(done.job.folder / "eval.csv")
        curve = _curve(done.job.folder / "curve.csv")
        for policy, summary in done.metrics.items():
            kind, named = done.named(policy)
            label = _label(policy, [*done.overrides(kind), *apart[(env, kind, named, k)]])
            if kind == "baseline":
                # the label names every env and evaluation setting that differs: one per seed
                key = (env, label, seed)
                if key in seen_baselines:
                    continue
                seen_baselines.add(key)
            runs.append(
                Run(
                    env=env,
                    env_id=env_id,
                    policy=label,
                    kind=kind,
                    seed=seed,
                    score=float(summary["return"]["mean"]),
                    returns=episodes.get(policy, np.array([summary["return"]["mean"]])),
                    metrics={
                        k: float(v["mean"]) for k, v in summary.items() if k not in ("return",)
                    },
                    curve=curve if kind == "agent" else [],
                )
            )
    return runs


def _settings(cfg: Any) -> dict[str, Any]:
    """A job's saved configuration as dotted keys, less its seed and :data:`RUN_ONLY_KEYS`.

    A ``null`` value or an empty mapping is left out: it stands for the default, as an absent
    key does.
    """
    data = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(data, dict)
    return {
        k: v
        for k, v in flatten(without_idle_env_keys(data))
        if v is not None and v != {} and not covered(k, IGNORED_KEYS)
    }


def _differences(settings: list[dict[str, Any]]) -> list[list[str]]:
    """For every member, ``key=value`` of each key whose value is not the same in all of them."""
    keys = sorted({k for s in settings for k in s})
    varying = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for s in settings}) > 1]
    return [[f"{k}={_value(s.get(k))}" for k in varying] for s in settings]


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _episode_returns(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    out: dict[str, list[float]] = defaultdict(list)
    with path.open() as fh:
        for row in csv.DictReader(fh):
            out[row["policy"]].append(float(row["return"]))
    return {k: np.asarray(v) for k, v in out.items()}


def _curve(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def summarise(runs: list[Run], *, reps: int = 2000, seed: int = 0) -> list[Row]:
    """One row per environment and policy: mean and IQM over seeds with bootstrap CIs."""
    groups: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.env, run.kind, run.policy)].append(run)
    rows = []
    for (env, kind, policy), members in groups.items():
        scores = np.array([r.score for r in members])
        m, m_lo, m_hi = stratified_bootstrap(
            [scores], mean, reps=reps, confidence=CONFIDENCE, seed=seed
        )
        q, q_lo, q_hi = stratified_bootstrap(
            [scores], iqm, reps=reps, confidence=CONFIDENCE, seed=seed
        )
        keys = members[0].metrics.keys()
        rows.append(
            Row(
                env=env,
                policy=policy,
                kind=kind,
                seeds=len({r.seed for r in members}),
                episodes=int(np.median([r.returns.size for r in members])),
                mean=m,
                mean_low=m_lo,
                mean_high=m_hi,
                iqm=q,
                iqm_low=q_lo,
                iqm_high=q_hi,
                metrics={
                    k: float(np.mean([r.metrics.get(k, np.nan) for r in members])) for k in keys
                },
                confidence=CONFIDENCE,
                reps=reps,
            )
        )
    # a NaN IQM (a diverged run) goes last: as a key it compares false both ways and would
    # scramble the ranking of the others
    rows.sort(key=lambda r: (r.env, r.kind != "agent", bool(np.isnan(r.iqm)), -r.iqm))
    return rows


def _interval(value: float, low: float, high: float, seeds: int) -> str:
    if seeds < 2:  # resampling one run gives it back: no interval, whatever the coverage
        return f"{format_number(value)} [no CI: 1 seed]"
    return f"{format_number(value)} [{format_number(low)}, {format_number(high)}]"


def table_cells(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of one environment's table."""
    metric_keys = list(dict.fromkeys(k for r in rows for k in r.metrics if k != "length"))
    header = [
        "policy",
        "kind",
        "seeds",
        "episodes",
        f"IQM return [{CONFIDENCE:.0%} CI]",
        f"mean return [{CONFIDENCE:.0%} CI]",
        *metric_keys,
    ]
    cells = [
        [
            r.policy,
            r.kind,
            str(r.seeds),
            str(r.episodes),
            _interval(r.iqm, r.iqm_low, r.iqm_high, r.seeds),
            _interval(r.mean, r.mean_low, r.mean_high, r.seeds),
            *[format_number(r.metrics[k]) if k in r.metrics else "-" for k in metric_keys],
        ]
        for r in rows
    ]
    return header, cells


def _markdown(header: list[str], cells: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
    ]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def plot_curves(path: Path, runs: list[Run], title: str, *, reps: int = 1000) -> None:
    """Learning curves of the agents (mean over seeds, 95 % bootstrap band), baselines as lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    agents: dict[str, list[Run]] = defaultdict(list)
    baselines: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        if run.kind == "agent" and run.curve:
            agents[run.policy].append(run)
        elif run.kind == "baseline":
            baselines[run.policy].append(run.score)
    for k, (policy, members) in enumerate(sorted(agents.items())):
        grid = np.array(sorted({p["timesteps"] for p in members[0].curve}))
        ys = np.stack(
            [
                np.interp(grid, [p["timesteps"] for p in r.curve], [p["mean"] for p in r.curve])
                for r in members
            ]
        )  # [seeds, points]
        bands = [stratified_bootstrap([ys[:, j]], mean, reps=reps) for j in range(grid.size)]
        est, lo, hi = (np.array(v) for v in zip(*bands, strict=True))
        ax.plot(
            grid,
            est,
            color=f"C{k}",
            marker="o",
            markersize=3,
            label=f"{policy} (n={len(members)} seeds)",
        )
        ax.fill_between(grid, lo, hi, color=f"C{k}", alpha=0.2)
    styles = ("--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1)))
    for k, (name, scores) in enumerate(sorted(baselines.items())):
        value = float(iqm(np.array(scores)))
        ax.axhline(
            value,
            color=f"C{len(agents) + k}",
            linestyle=styles[k % len(styles)],
            linewidth=1.3,
            label=f"{name} (IQM {format_number(value)}, n={len(scores)})",
        )
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return (mean over seeds, 95% CI)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.savefig(path, dpi=110)


def plot_profiles(path: Path, runs: list[Run], title: str, *, reps: int = 1000) -> None:
    """Performance profiles: fraction of evaluation episodes with a return above ``tau``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    by_policy: dict[str, list[np.ndarray]] = defaultdict(list)
    for run in runs:
        by_policy[run.policy].append(run.returns)
    every = np.concatenate([r for rs in by_policy.values() for r in rs])
    taus = np.linspace(every.min(), every.max(), 200)
    for k, (policy, returns) in enumerate(sorted(by_policy.items())):
        profile, lo, hi = performance_profile(returns, taus, reps=reps)
        ax.plot(taus, profile, color=f"C{k}", label=f"{policy} (n={len(returns)} seeds)")
        ax.fill_between(taus, lo, hi, color=f"C{k}", alpha=0.15)
    ax.set_xlabel(r"evaluation return $\tau$")
    ax.set_ylabel(r"fraction of episodes with return > $\tau$")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.savefig(path, dpi=110)


def write_report(sweep_dir: Path, *, reps: int = 2000, plots: bool = True) -> dict[str, Any]:
    """Write ``SWEEP_DIR/report/`` and print the tables; returns what was written.

    Args:
        sweep_dir: a sweep folder (``sweep_dir`` of ``lepton-train -m``).
        reps: bootstrap resamples of the confidence intervals.
        plots: also draw the learning curves and performance profiles.

    Returns:
        ``{"rows": [Row...], "files": [Path...], "jobs": [...]}``.

    Raises:
        FileNotFoundError: if ``sweep_dir`` is not a folder, is the folder of a single run (a job
            of a sweep or a ``lepton-train`` run) or holds no job folder (for a sweep whose
            ``sweep.json`` is there: none of its jobs has started).
        ValueError: if ``reps`` is below 1.
    """
    if reps < 1:
        raise ValueError(f"reps: must be >= 1, got {reps}")
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"SWEEP_DIR: {str(sweep_dir)!r} is not a folder")
    if is_job(sweep_dir):
        raise FileNotFoundError(_run_folder_message(sweep_dir))
    all_jobs = jobs(sweep_dir)
    if not all_jobs and (sweep_dir / SWEEP_FILE).is_file():
        total = sweep_total(sweep_dir)
        raise FileNotFoundError(
            f"SWEEP_DIR: {str(sweep_dir)!r} is a sweep of {total if total is not None else '?'} "
            "jobs none of which has started (no job folder yet): while it runs, its jobs appear "
            "as they start; a sweep that ended without any (e.g. a job whose overrides do not "
            "compose) says why in the output of `lepton-train -m ...`"
        )
    if not all_jobs:
        raise FileNotFoundError(
            f"SWEEP_DIR: {str(sweep_dir)!r} holds no job folders (with status.json or config.yaml); "
            "pass the sweep_dir of a `lepton-train -m ...` run"
        )
    out = sweep_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    runs = collect(sweep_dir)
    rows = summarise(runs, reps=reps)
    files: list[Path] = []
    job_rows = describe(all_jobs)

    md = [f"# Sweep report: {sweep_dir}", "", progress_line(sweep_dir), ""]
    envs = sorted({r.env for r in rows})
    for env in envs:
        env_rows = [r for r in rows if r.env == env]
        env_runs = [r for r in runs if r.env == env]
        env_id = env_runs[0].env_id
        seeds = sorted({r.seed for r in env_runs})
        episodes = sorted({r.episodes for r in env_rows})
        caption = (
            f"{env} ({env_id}): score = mean evaluation return of a run over its `episodes` "
            f"evaluation episodes (here {', '.join(map(str, episodes))}); IQM and mean over the "
            f"seeds in `seeds` (here {len(seeds)}: {', '.join(map(str, seeds))}), "
            f"{CONFIDENCE:.0%} percentile stratified-bootstrap CIs ({reps} resamples); the "
            "other columns: mean over the seeds of a run's mean over its episodes"
        )
        header, cells = table_cells(env_rows)
        md += [f"## {env}", "", caption, "", _markdown(header, cells)]
        _print_table(header, cells, caption)
        if plots:
            curves = out / f"curves_{safe_name(env)}.png"
            plot_curves(curves, env_runs, f"{env_id}: learning curves", reps=reps)
            profile = out / f"profile_{safe_name(env)}.png"
            plot_profiles(profile, env_runs, f"{env_id}: performance profiles", reps=reps)
            files += [curves, profile]
            md += [
                f"![learning curves]({curves.name})",
                "",
                f"![performance profiles]({profile.name})",
                "",
            ]
    md += [
        "## Jobs",
        "",
        _markdown(
            ["job", "state", "attempt", "error"], [[str(v) for v in j.values()] for j in job_rows]
        ),
    ]
    md += ["", f"TensorBoard: `tensorboard --logdir {sweep_dir}` (one run per job)", ""]

    (out / "report.md").write_text("\n".join(md))
    _write_csv(out / "summary.csv", [_row_dict(r) for r in rows])
    _write_csv(out / "jobs.csv", job_rows)
    files = [out / "report.md", out / "summary.csv", out / "jobs.csv", *files]
    print(progress_line(sweep_dir))
    for j in job_rows:
        if j["state"] != FINISHED:
            print(f"  {j['job']}: {j['state']} {j['error']}")
    print(f"report: {out / 'report.md'}")
    return {"rows": rows, "files": files, "jobs": job_rows}


def _run_folder_message(folder: Path) -> str:
    """Why a run folder gets no report, and where its results and its sweep are."""
    has = [n for n in (STATUS_FILE, "config.yaml", "metrics.json") if (folder / n).is_file()]
    status = read_status(folder)
    if (folder / "metrics.json").is_file():
        detail = "its results are in metrics.json and table.md"
    elif status is not None:
        detail = f"its {STATUS_FILE} says {status.state}" + (
            f" ({status.error})" if status.error else ""
        )
    else:
        detail = "it has no results yet"
    message = (
        f"SWEEP_DIR: {str(folder)!r} is a run folder ({', '.join(has)}), not a sweep "
        f"(a report compares the seeds of a sweep's jobs); {detail}"
    )
    sweep = next(
        (
            p
            for p in folder.parents[:2]
            if (p / SWEEP_FILE).is_file() or (p / "multirun.yaml").is_file()
        ),
        None,
    )
    if sweep is not None:
        return f"{message}; the sweep it belongs to: lepton-report {sweep}"
    return f"{message}; pass the sweep_dir of a `lepton-train -m ...` run"


def _row_dict(row: Row) -> dict[str, Any]:
    data = dataclasses.asdict(row)
    data.update({f"metric_{k}": v for k, v in data.pop("metrics").items()})
    return data


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        path.write_text("")
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def _print_table(header: list[str], cells: list[list[str]], title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency
        print(title)
        print(_markdown(header, cells))
        return
    table = Table(title=title, title_justify="left")
    for k, col in enumerate(header):
        table.add_column(col, justify="left" if k < 2 else "right", no_wrap=k < 2)
    for row in cells:
        table.add_row(*row)
    console = Console()
    console.width = max(console.width, 160)
    console.print(table)
