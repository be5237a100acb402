"""Train and package the model zoo, or check it: `lepton-zoo [only=[NAME,...]] [--force|--check]`.

Every entry of :data:`ENTRIES` is one pretrained agent on its family's source scenario. For each,
``lepton-zoo`` trains through the ordinary pipeline (:func:`agents.train.run`, composed exactly
like ``lepton-train <overrides>``), then copies only the small artefacts of the run folder into
``agents/pretrained/<name>/``::

    model.zip, vecnormalize.pkl   the trained model and its normalisation statistics
    config.yaml                   resolved configuration of the run
    command.txt                   the zoo command and the equivalent lepton-train command
    table.md, metrics.json        the evaluation against every baseline of the family
    zoo.json                      the score metric per policy (mean, 95 % CI) and the best
                                  baseline

writes the preset ``conf/agent/pretrained/<name>.yaml`` (``agent=pretrained/<name>``) and
rebuilds the manifest ``agents/pretrained/index.json``.

Training goes through :func:`agents.jobs.run_job`, as ``lepton-train`` does, so the run folder
``<runs>/<name>`` records it in ``status.json``, and running ``lepton-zoo`` again resumes the
zoo. An entry is skipped, and the log names it, when its run finished with the entry's current
configuration and its packaged ``model.zip`` is that run's. When the run finished but was never
packaged (publishing failed), it is packaged without training again. An entry with no run, an
unfinished, killed or failed run, or a run of an earlier definition of the entry is trained from
the start. ``--force`` retrains every selected entry.

``--check`` reloads every pretrained agent through its preset, evaluates it with
``lepton-evaluate``'s pipeline on its source scenario for ``episodes`` episodes and the best
baseline on the same seeds, prints the paired margin (per-episode difference, 95 % bootstrap
interval; "clearly" when the interval excludes 0) and fails when the agent no longer wins::

    lepton-zoo                                # every entry (about 20 minutes on 2 cores)
    lepton-zoo only=[traffic-single,inventory]
    lepton-zoo --force only=[inventory]       # retrain although its run finished
    lepton-zoo --check episodes=8
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import filecmp
import json
import logging
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.jobs import JobStatus

log = logging.getLogger("lepton.zoo")


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One pretrained agent of the zoo.

    Attributes:
        name: the entry's name (folder, preset ``agent=pretrained/<name>``).
        source: overrides of ``lepton-train`` that compose its source scenario and agent
            (an experiment preset, or the env); evaluation reuses them.
        seed: master seed of the training run.
        total_timesteps: training budget (``None``: the one ``source`` composes).
        score: metric the agent is compared on (``return`` or a metric of ``env.metrics``).
        maximize: whether a higher ``score`` is better.
        description: one line for the manifest.
    """

    name: str
    source: tuple[str, ...]
    seed: int = 0
    total_timesteps: int | None = None
    score: str = "return"
    maximize: bool = True
    description: str = ""

    def train_overrides(self) -> list[str]:
        """Overrides of ``lepton-train`` that reproduce the run (without its folder)."""
        budget = [] if self.total_timesteps is None else [f"total_timesteps={self.total_timesteps}"]
        return [*self.source, f"seed={self.seed}", *budget, *RUN_OVERRIDES]


RUN_OVERRIDES = ("progress_bar=false", "tensorboard=false", "checkpoint_freq=0")
"""Overrides of every zoo run that change what is written, not what is learnt."""

ENTRIES: tuple[ZooEntry, ...] = (
    ZooEntry(
        "traffic-single",
        ("experiment=traffic_single_ppo",),
        total_timesteps=150_000,
        description="PPO on sumo-rl's single intersection (diff-waiting-time reward)",
    ),
    ZooEntry(
        "traffic-grid",
        ("experiment=traffic_grid_shared_ppo",),
        total_timesteps=400_000,
        description="one PPO policy shared by the 16 signals of the 4x4 grid",
    ),
    ZooEntry(
        "inventory",
        ("env=inventory",),
        total_timesteps=300_000,
        description="PPO on the default serial supply chain (lepton-train's default run)",
    ),
    ZooEntry(
        "autoscale-bursty",
        ("experiment=autoscale_bursty_ppo",),
        total_timesteps=600_000,
        description="PPO autoscaling the bursty service with failures and zone outages",
    ),
    ZooEntry(
        "recsys-recsim-hidden",
        ("experiment=recsys_recsim_hidden_ppo",),
        total_timesteps=1_000_000,
        score="episode_watch_time",
        description="PPO ranking rule on RecSim interest evolution, item quality hidden",
    ),
)
"""The zoo: one pretrained agent per family's source scenario."""

REPO = Path(__file__).resolve().parents[1]
FILES = ("model.zip", "vecnormalize.pkl", "config.yaml", "table.md", "metrics.json")
"""Artefacts of a run folder copied into the zoo (``vecnormalize.pkl`` when present)."""


# --- options ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Options:
    """What ``lepton-zoo`` does.

    Attributes:
        only: names of the entries to train or check (empty: all).
        check: check the packaged agents instead of training.
        force: retrain every selected entry, also one whose run finished and was packaged.
        episodes: evaluation episodes of ``--check``.
        runs: folder of the training and check runs.
        dest: folder of the zoo (default: ``agents/pretrained`` of this package).
        presets: folder of the pretrained presets (default: ``conf/agent/pretrained``).
    """

    only: list[str] = dataclasses.field(default_factory=list)
    check: bool = False
    force: bool = False
    episodes: int = 16
    runs: Path = Path("runs/zoo")
    dest: Path | None = None
    presets: Path | None = None


def parse_args(argv: Sequence[str]) -> Options:
    """Parse ``--check`` and ``key=value`` arguments (``only=[a,b]``, ``episodes=8``...)."""
    parser = argparse.ArgumentParser(
        prog="lepton-zoo",
        description="Train and package the pretrained agents of the zoo, or check them.",
        epilog="keys: only=[NAME,...], episodes=N (--check), runs=DIR, dest=DIR, presets=DIR; "
        f"entries: {', '.join(e.name for e in ENTRIES)}",
    )
    parser.add_argument("--check", action="store_true", help="re-evaluate the packaged agents")
    parser.add_argument(
        "--force",
        action="store_true",
        help="retrain every selected entry; without it, an entry whose run in runs=DIR finished "
        "and was packaged is skipped, and one that finished but was not packaged is packaged "
        "without training",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_intermixed_args(list(argv))
    if args.force and args.check:
        parser.error("--force: retrains entries; --check re-evaluates them and takes no --force")
    options = Options(check=args.check, force=args.force)
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"expected key=value, got {item!r}")
        if key == "only":
            options.only = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        elif key == "episodes":
            if not value.strip().isdigit() or int(value) < 1:
                parser.error(f"episodes: expected an integer >= 1, got {value!r}")
            options.episodes = int(value)
        elif key in ("runs", "dest", "presets"):
            setattr(options, key, Path(value))
        else:
            parser.error(f"unknown key {key!r}; allowed: only, episodes, runs, dest, presets")
    names = [e.name for e in ENTRIES]
    unknown = [n for n in options.only if n not in names]
    if unknown:
        parser.error(f"only: unknown entries {unknown}; allowed: {names}")
    return options


def selected(only: Sequence[str]) -> list[ZooEntry]:
    """The entries named in ``only`` (all when empty), in the order of :data:`ENTRIES`."""
    return [e for e in ENTRIES if not only or e.name in only]


# --- training and packaging ------------------------------------------------------------------


def compose(config_name: str, overrides: Sequence[str]) -> Any:
    """Compose ``conf/<config_name>.yaml`` in-process, as the command-line tools do."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="conf", version_base="1.3"):
            return hydra_compose(config_name, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def run_config(entry: ZooEntry, runs: Path, *, force: bool = False) -> Any:
    """The ``lepton-train`` configuration of ``entry`` with its run folder ``runs/<name>``."""
    overrides = [*entry.train_overrides(), f"run_dir={runs / entry.name}"]
    return compose("config", [*overrides, "force=true"] if force else overrides)


def finished_run(entry: ZooEntry, runs: Path) -> JobStatus | None:
    """The record of the finished training run of ``entry`` in ``runs/<name>``, if any.

    The run counts when its ``status.json`` says ``finished`` and :func:`agents.jobs.plan_job`
    would skip it: its ``config.yaml`` is the entry's current configuration but for the keys
    that do not change results. ``None`` for no run, an unfinished, killed or failed one, or a
    run of an earlier definition of the entry.
    """
    from agents.jobs import FINISHED, SKIP, plan_job, read_status
    from agents.runs import RunMismatchError

    folder = runs / entry.name
    status = read_status(folder)
    if status is None or status.state != FINISHED:
        return None
    try:
        return status if plan_job(folder, run_config(entry, runs), status) == SKIP else None
    except RunMismatchError:  # trained before the entry changed: train() replaces it
        return None


def train(entry: ZooEntry, runs: Path, *, force: bool = False) -> Path:
    """Train ``entry`` in ``runs/<name>`` as a recorded job; returns its run folder.

    :func:`agents.jobs.run_job` runs :func:`agents.train.run` and writes ``status.json``. A
    finished run of the entry's configuration is kept (``run_job`` skips it) unless ``force``;
    a finished run of an earlier definition of the entry is replaced, and the log names the
    keys that changed.

    Raises:
        agents.jobs.JobRunningError: another live process of this host trains the entry in
            that folder (without ``force``).
    """
    from agents.jobs import run_job
    from agents.runs import (
        RunMismatchError,
        config_differences,
        describe_differences,
        saved_config,
    )
    from agents.train import run

    folder = runs / entry.name
    cfg = run_config(entry, runs, force=force)
    try:
        run_job(cfg, run)  # refuses a run of another configuration before writing anything
    except RunMismatchError:
        saved = saved_config(folder)
        changed = describe_differences(config_differences(saved, cfg)) if saved else "no config"
        log.info(
            "zoo entry %s: %s holds a finished run of an earlier definition of the entry (%s); "
            "training it again",
            entry.name,
            folder,
            changed,
        )
        run_job(run_config(entry, runs, force=True), run)
    return folder


def is_packaged(entry: ZooEntry, run: Path, dest: Path, index: dict[str, Any]) -> bool:
    """Whether the manifest lists ``entry`` and ``dest/<name>`` holds the model of ``run``."""
    packaged, trained = dest / entry.name / "model.zip", run / "model.zip"
    return (
        entry.name in index
        and packaged.is_file()
        and trained.is_file()
        and filecmp.cmp(packaged, trained, shallow=False)
    )


def publish(entry: ZooEntry, run: Path, dest: Path, presets: Path) -> dict[str, Any]:
    """Copy the small artefacts of ``run`` into ``dest/<name>``, write its preset and summary.

    The entry is assembled in a staging folder beside ``dest/<name>`` and replaces it only once
    complete, so a failure (an unreadable run, a score that cannot be computed) leaves the
    packaged entry as it was.

    Returns:
        The entry's record of the manifest.
    """
    final = dest / entry.name
    staging = dest / f".{entry.name}.staging"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        record = _assemble(entry, run, staging, presets)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    return record


def _assemble(entry: ZooEntry, run: Path, target: Path, presets: Path) -> dict[str, Any]:
    """Write the files of ``entry`` from ``run`` into ``target`` and its preset; its record."""
    from omegaconf import OmegaConf

    from agents.algorithms import algorithm_class

    for name in FILES:
        if (run / name).is_file():
            shutil.copy2(run / name, target / name)
    run_cfg: Any = OmegaConf.load(run / "config.yaml")
    agent = OmegaConf.to_container(run_cfg.agent, resolve=True)
    assert isinstance(agent, dict)
    env_kwargs = OmegaConf.to_container(run_cfg.env.get("kwargs", {}), resolve=True)
    model = algorithm_class(agent["algo"]).load(str(target / "model.zip"), device="cpu")
    obs_shape = [int(n) for n in model.observation_space.shape or ()]
    summary = score_summary(entry, run)
    (target / "zoo.json").write_text(json.dumps(summary, indent=2) + "\n")
    commands = commands_of(entry)
    (target / "command.txt").write_text(
        f"# regenerate this entry:\n{commands['zoo']}\n"
        f"# which trains (and evaluates against the baselines) as:\n{commands['train']}\n"
    )
    preset = write_preset(
        entry,
        agent,
        presets,
        env_id=run_cfg.env.id,
        env_kwargs=env_kwargs,
        obs_shape=obs_shape,
        action_space=str(model.action_space),
    )
    return {
        "name": entry.name,
        "description": entry.description,
        "agent": f"pretrained/{entry.name}",
        "algo": agent["algo"],
        "preset": str(preset.relative_to(REPO) if preset.is_relative_to(REPO) else preset),
        "env_id": str(run_cfg.env.id),
        "env_name": str(run_cfg.env.name),
        "env_kwargs": env_kwargs,
        "observation_shape": obs_shape,
        "action_space": str(model.action_space),
        "action_shape": [int(n) for n in model.action_space.shape or ()],
        "source": list(entry.source),
        "seed": entry.seed,
        "total_timesteps": int(run_cfg.total_timesteps),
        "score": summary,
        "command": commands,
        "files": {p.name: p.stat().st_size for p in sorted(target.iterdir())},
    }


def commands_of(entry: ZooEntry) -> dict[str, str]:
    """The zoo command of ``entry`` and the ``lepton-train`` command it runs."""
    run_dir = f"run_dir=runs/zoo/{entry.name}"
    return {
        "zoo": f"lepton-zoo only=[{entry.name}]",
        "train": shlex.join(["lepton-train", *entry.train_overrides(), run_dir]),
        "evaluate": shlex.join(
            ["lepton-evaluate", *entry.source, f"agent=pretrained/{entry.name}"]
        ),
    }


def score_summary(entry: ZooEntry, run: Path) -> dict[str, Any]:
    """The score metric of every policy of the run (mean, 95 % bootstrap CI) and the verdict."""
    import numpy as np
    from omegaconf import OmegaConf

    from agents.stats import mean, stratified_bootstrap

    agent_name = str(OmegaConf.load(run / "config.yaml").agent.name)
    values: dict[str, list[float]] = {}
    with (run / "eval.csv").open() as fh:
        for row in csv.DictReader(fh):
            values.setdefault(row["policy"], []).append(float(row[entry.score]))
    policies = {}
    for policy, scores in values.items():
        point, low, high = stratified_bootstrap([np.asarray(scores)], mean, seed=0)
        policies[policy] = {"mean": point, "ci95": [low, high], "n": len(scores)}
    # an oracle reads state the agent does not observe: shown, but not the bar to beat
    fitted = run / "baselines.json"
    params = json.loads(fitted.read_text()) if fitted.is_file() else {}
    oracles = sorted(p for p in policies if params.get(p, {}).get("oracle", False))
    baselines = [p for p in policies if p != agent_name and p not in oracles]
    if not baselines:
        raise ValueError(f"{run}: no baseline without hidden state to compare {agent_name} with")
    sign = 1.0 if entry.maximize else -1.0
    best = max(baselines, key=lambda p: sign * policies[p]["mean"])
    margin = sign * (policies[agent_name]["mean"] - policies[best]["mean"])
    best_oracle = max(oracles, key=lambda p: sign * policies[p]["mean"]) if oracles else None
    return {
        "metric": entry.score,
        "maximize": entry.maximize,
        "agent": agent_name,
        "oracles": oracles,
        "best_oracle": best_oracle,
        "best_baseline": best,
        "agent_mean": policies[agent_name]["mean"],
        "baseline_mean": policies[best]["mean"],
        "margin": margin,
        "wins": bool(margin > 0),
        "policies": policies,
    }


def write_preset(
    entry: ZooEntry,
    agent: dict[str, Any],
    presets: Path,
    *,
    env_id: str,
    env_kwargs: Any,
    obs_shape: list[int],
    action_space: str,
) -> Path:
    """Write ``<presets>/<name>.yaml``: the run's agent settings and where its model is."""
    from omegaconf import OmegaConf

    fields = {
        **agent,
        "name": f"pretrained/{entry.name}",
        "pretrained": entry.name,
        "model": f"pretrained/{entry.name}/model.zip",
        "source": list(entry.source),
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "observation_shape": obs_shape,
        "action_space": action_space,
    }
    source = " ".join(entry.source)
    header = (
        f"# Pretrained {agent['algo'].upper()} of the model zoo: {entry.description}.\n"
        f"# Trained on {env_id} ({source}, seed {entry.seed}) by `lepton-zoo only=[{entry.name}]`;\n"
        f"# the model is agents/pretrained/{entry.name}/model.zip inside the package.\n"
        f"#   lepton-evaluate {source} agent=pretrained/{entry.name}\n"
        f"#   lepton-render {source} agent=pretrained/{entry.name}\n"
        "defaults:\n"
        f"  - /schema/agent/pretrained_{agent['algo']}@_here_\n"
        "  - _self_\n\n"
    )
    presets.mkdir(parents=True, exist_ok=True)
    path = presets / f"{entry.name}.yaml"
    path.write_text(header + OmegaConf.to_yaml(OmegaConf.create(fields), sort_keys=False))
    return path


def write_index(dest: Path, records: dict[str, dict[str, Any]]) -> Path:
    """Merge ``records`` into ``dest/index.json``, keeping entries whose folders remain."""
    from agents.pretrained import INDEX_FILE, read_index

    entries = read_index(dest).get("entries", {})
    entries.update(records)
    order = [e.name for e in ENTRIES]
    kept = {
        name: entries[name]
        for name in sorted(entries, key=lambda n: order.index(n) if n in order else len(order))
        if (dest / name / "model.zip").is_file()
    }
    path = dest / INDEX_FILE
    path.write_text(json.dumps({"entries": kept}, indent=2) + "\n")
    return path


def write_readme(dest: Path) -> Path:
    """Write ``dest/README.md``: the zoo's table (entry, env, score against the best baseline)."""
    from agents.pretrained import read_index

    lines = [
        "# Pretrained agents",
        "",
        "Written by `lepton-zoo` (scripts/zoo.py) from `index.json`; each folder holds the model,",
        "its normalisation statistics, the run's resolved config, the command that made it and its",
        "evaluation against the family's baselines. Load one by name, on its source scenario:",
        "",
        "    lepton-evaluate experiment=traffic_single_ppo agent=pretrained/traffic-single",
        "",
        "Scores are means over the run's evaluation episodes with 95 % bootstrap intervals.",
        "The best baseline is the best one that sees only what the agent sees; an oracle reads",
        "hidden state (latent interests, hidden quality) and is shown as a reference.",
        "",
        "| entry | env | source | steps | metric | agent | best baseline | margin | oracle "
        "| size |",
        "|---|---|---|---:|---|---:|---|---:|---|---:|",
    ]
    for name, r in read_index(dest)["entries"].items():
        s = r["score"]
        agent = s["policies"][s["agent"]]
        base = s["policies"][s["best_baseline"]]
        oracle = s.get("best_oracle")
        ref = f"{oracle} {_ci(s['policies'][oracle])}" if oracle else "-"
        size = sum(r["files"].values()) / 1024
        lines.append(
            f"| `{name}` | {r['env_id']} | `{' '.join(r['source'])}` | {r['total_timesteps']} "
            f"| {s['metric']} ({'max' if s['maximize'] else 'min'}) "
            f"| {_ci(agent)} | {s['best_baseline']} {_ci(base)} | {s['margin']:+.4g} "
            f"| {ref} | {size:.0f} KiB |"
        )
    path = dest / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _ci(summary: dict[str, Any]) -> str:
    low, high = summary["ci95"]
    return f"{summary['mean']:.4g} [{low:.4g}, {high:.4g}]"


# --- check -----------------------------------------------------------------------------------


def check(name: str, record: dict[str, Any], episodes: int, runs: Path) -> dict[str, Any]:
    """Evaluate the pretrained agent ``name`` and its best baseline on the same seeds.

    Both go through :func:`agents.evaluate.run` on the entry's source scenario: the agent
    through its preset ``agent=pretrained/<name>`` (the packaged model), the baseline fitted as
    ``lepton-evaluate agent=<baseline>`` fits it.
    """
    import numpy as np
    from omegaconf import OmegaConf, open_dict

    from agents.evaluate import run
    from agents.stats import mean, stratified_bootstrap
    from conf.schema import BaselineAgentConfig

    score = record["score"]
    overrides = [*record["source"], f"seed={record['seed']}", f"episodes={episodes}"]
    agent_cfg = compose("evaluate", [*overrides, f"agent=pretrained/{name}"])
    # the baseline acts in exactly the same env config (an experiment's agent settings would
    # not compose with a baseline preset)
    baseline_cfg = agent_cfg.copy()
    with open_dict(baseline_cfg):
        baseline_cfg.agent = OmegaConf.structured(BaselineAgentConfig(name=score["best_baseline"]))
    results, episodes_of = {}, {}
    for label, cfg in (("agent", agent_cfg), ("baseline", baseline_cfg)):
        cfg.run_dir = str(runs / name / label)
        metrics = run(cfg)
        results[label] = metrics[cfg.agent.name][score["metric"]]["mean"]
        with (Path(cfg.run_dir) / "eval.csv").open() as fh:
            episodes_of[label] = [float(row[score["metric"]]) for row in csv.DictReader(fh)]
    sign = 1.0 if score["maximize"] else -1.0
    margin = sign * (results["agent"] - results["baseline"])
    # both ran on the same evaluation seeds: the per-episode difference is paired
    diff = sign * (np.asarray(episodes_of["agent"]) - np.asarray(episodes_of["baseline"]))
    _, low, high = stratified_bootstrap([diff], mean, seed=0)
    return {
        "name": name,
        "metric": score["metric"],
        "agent": results["agent"],
        "baseline": score["best_baseline"],
        "baseline_score": results["baseline"],
        "margin": margin,
        "margin_ci95": [low, high],
        "wins": bool(margin > 0),
        "clear": bool(low > 0),
        "episodes": episodes,
    }


# --- entry point -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Train and package the selected entries, or ``--check`` them; returns the exit status.

    Entries whose run finished and was packaged are skipped unless ``--force`` (see the module).
    """
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    options = parse_args(sys.argv[1:] if argv is None else argv)
    from agents.pretrained import read_index, zoo_dir

    dest = options.dest or zoo_dir()
    presets = options.presets or REPO / "conf" / "agent" / "pretrained"
    entries = selected(options.only)

    if options.check:
        index = read_index(dest)["entries"]
        missing = [e.name for e in entries if e.name not in index]
        if missing:
            print(f"not in {dest / 'index.json'}: {missing}; train them with lepton-zoo")
            return 1
        ok = True
        for e in entries:  # each verdict as it comes; one entry that fails stops no other
            try:
                r = check(e.name, index[e.name], options.episodes, options.runs / "check")
            except Exception as exc:  # noqa: BLE001 - reported, and the exit status says so
                log.exception("zoo entry %s: the check failed", e.name)
                print(f"{e.name:18s} ERROR: {type(exc).__name__}: {exc}", flush=True)
                ok = False
                continue
            verdict = "wins" if r["wins"] else "LOSES"
            if r["wins"]:
                verdict += " clearly" if r["clear"] else " within noise"
            low, high = r["margin_ci95"]
            print(
                f"{r['name']:18s} {r['metric']}: {r['agent']:.4g} vs {r['baseline']} "
                f"{r['baseline_score']:.4g} over {r['episodes']} episodes, paired margin "
                f"{r['margin']:+.4g} [{low:+.4g}, {high:+.4g}] -> {verdict}",
                flush=True,
            )
            ok &= bool(r["wins"])
        return 0 if ok else 1

    packaged = read_index(dest)["entries"]
    records = {}
    failed, skipped = [], []
    for entry in entries:  # one entry that fails stops no other
        folder = options.runs / entry.name
        try:
            done = None if options.force else finished_run(entry, options.runs)
            if done is not None and is_packaged(entry, folder, dest, packaged):
                log.info(
                    "zoo entry %s: trained (finished %s) and packaged earlier; skipped "
                    "(--force retrains it)",
                    entry.name,
                    done.ended,
                )
                records[entry.name] = packaged[entry.name]
                skipped.append(entry.name)
                continue
            if done is None:
                log.info("zoo entry %s: %s", entry.name, shlex.join(entry.train_overrides()))
                folder = train(entry, options.runs, force=options.force)
            else:
                log.info(
                    "zoo entry %s: trained earlier (finished %s) but not packaged; packaging %s",
                    entry.name,
                    done.ended,
                    folder,
                )
            records[entry.name] = publish(entry, folder, dest, presets)
        except Exception:
            log.exception("zoo entry %s failed; the packaged one (if any) is kept", entry.name)
            failed.append(entry.name)
            continue
        write_index(dest, records)  # after every entry, so a later failure keeps the earlier
        write_readme(dest)
    index = read_index(dest)["entries"]
    for name, record in index.items():
        s = record["score"]
        size = sum(record["files"].values()) / 1024
        print(
            f"{name:18s} {s['metric']}: {s['agent_mean']:.4g} vs {s['best_baseline']} "
            f"{s['baseline_mean']:.4g} ({'wins' if s['wins'] else 'LOSES'}), {size:.0f} KiB"
        )
    if skipped:
        print(f"skipped: {skipped}, trained and packaged earlier (--force retrains them)")
    if failed:
        print(f"failed: {failed} (see the log above); the others were packaged")
    return 0 if not failed and all(r["score"]["wins"] for r in records.values()) else 1


def cli() -> None:
    """Console entry point of ``lepton-zoo``."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
