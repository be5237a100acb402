"""Fit scenario generators on a family's real data, measure their realism, sample from them.

``run(cfg)`` (``lepton-generate``) does ``fit`` or ``sample``. ``fit`` reads top to bottom: the
family and its parameters (:mod:`agents.generators.registry`), the base scenario of the env,
the codec, the real data, a seeded train/held-out split, the generator fitted on the training
part, the realism tests on the held-out part, and the folder::

    <out_dir>/generator.npz          the fitted generator (ScenarioGenerator.save)
    <out_dir>/generator.json         family, kind and settings, codec (name, dim, parameters),
                                     env (id and kwargs that rebuild the base), data spec,
                                     split sizes, invalid-sample rate
    <out_dir>/data.npz               the real features: ``train`` and ``held_out``
    <out_dir>/realism.json           held-out real vs generated: MMD and energy distance against
                                     the real-vs-real band, classifier two-sample tests,
                                     diversity, coverage, invalid rate, the verdict
    <out_dir>/real_vs_generated.png  mean profile with 10-90 % bands, and a 2-D PCA scatter
    <out_dir>/config.yaml, command.txt

``sample`` loads such a folder (:func:`load_generator`, which rebuilds the base from the saved
env), draws ``n`` scenarios with ``seed`` and writes ``sample_<k>.json`` (the features and a
readable form: per-route rates, demand series, ...), ``samples.json`` and ``samples.png``.

``adversarial`` loads such a folder and an agent (``model=pretrained/<name>`` or a ``model.zip``)
and searches the generator for scenarios where the agent loses most to a baseline
(:mod:`agents.generators.adversarial`); it writes ``adversarial.json`` (regrets of the found
scenarios against those of ordinary generated and real ones, invalid rate, the found scenarios),
``adversarial.png`` and ``worst/`` (the agent's episode on the worst scenario, one PNG per step,
and ``worst.gif``).

An environment uses a folder through ``env.scenarios=gan:<folder>`` (see
:func:`agents.envs.scenario_source`), which calls :func:`load_generator` with the env's own
base scenario.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from agents.config import env_kwargs, plain, unknown_keys
from agents.envs import PARAMETER_SHARING, env_scenario, resolve_env_id
from agents.generators import metrics as M
from agents.generators.base import ScenarioCodec, ScenarioGenerator
from agents.generators.registry import EnvSpec, Family, get_family
from agents.jobs import RUN
from agents.runs import (
    RunMismatchError,
    config_differences,
    describe_differences,
    save_command,
    save_config,
    saved_config,
)
from conf.schema import GenerateCommand, GenerateConfig, GeneratorKind

log = logging.getLogger(__name__)

GENERATOR_FILE = "generator.npz"
META_FILE = "generator.json"
DATA_FILE = "data.npz"
REALISM_FILE = "realism.json"
FIGURE_FILE = "real_vs_generated.png"
SAMPLES_FIGURE_FILE = "samples.png"
SAMPLES_INDEX_FILE = "samples.json"
FOLDER_FORMAT = 1
"""Version of the folder layout written by :func:`fit`."""

_FROM_SAVED_ENV: Any = object()


SPLITS = ("random", "blocked")
"""How ``fit`` holds real scenarios out (``split``)."""


def run(cfg: DictConfig | GenerateConfig) -> dict[str, Any]:
    """``lepton-generate``: :func:`fit` or :func:`sample`, as ``command`` says.

    Returns:
        ``fit``: the realism report; ``sample``: the samples index; ``adversarial``: the
        adversarial report.
    """
    config = _as_generate_config(cfg)
    if config.seed < 0:
        raise ValueError(f"seed: must be an integer >= 0, got {config.seed}")
    raw = cfg if isinstance(cfg, DictConfig) else None
    if config.command == GenerateCommand.sample:
        return sample(config, raw)
    if config.command == GenerateCommand.adversarial:
        return adversarial(config, raw)
    return fit(config, raw)


# --- fit -------------------------------------------------------------------------------------
def fit(config: GenerateConfig, cfg: DictConfig | None = None) -> dict[str, Any]:
    """Fit a generator on the family's real data and write the generator folder.

    Args:
        config: the composed configuration.
        cfg: the same as composed, saved as ``config.yaml`` when given.

    Returns:
        The realism report written to ``realism.json``.

    Raises:
        ValueError: naming the field (``family``, ``data``, ``params.<key>``, ``env``,
            ``held_out``, ``wgan.<key>``, ...) and the allowed values.
    """
    # --- family, env, codec --------------------------------------------------------------
    family = get_family(config.family)
    codec_params, data_params = family.split_params(dataclasses.asdict(config.params))
    spec = config.data or family.default_data
    family.check_data(spec)
    env = _env_spec(config, family, spec, data_params)
    base = _base_scenario(env, family, "env")
    codec = family.codec(base, **codec_params)
    _check_split_settings(config)
    data_rng, split_rng, test_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(3)
    )

    # --- real data and the split -----------------------------------------------------------
    features, _ = family.load_data(spec, codec, data_rng, n=config.n_data, **data_params)
    features = np.asarray(features, dtype=np.float64)
    check_real_data(features, codec, family, spec)
    split = config.split or family.default_split
    gap = family.overlap_rows(family.resolved_data_params(data_params, codec))
    train_idx, held_idx = split_indices(len(features), config, split_rng, split=split, gap=gap)
    train, held = features[train_idx], features[held_idx]
    log.info(
        "%s family, data %s: %d real scenarios (%d to fit on, %d held out), codec %s (dim %d)",
        family.name,
        spec,
        len(features),
        len(train),
        len(held),
        codec.name,
        codec.dim,
    )

    # --- generator -------------------------------------------------------------------------
    generator = make_generator(config, family, codec)
    generator.fit_features(train)
    report, generated = realism(
        generator,
        held,
        test_rng,
        splits=config.splits,
        alpha=config.alpha,
        draws=config.plot_samples,
        train=train,
    )

    # --- the folder ------------------------------------------------------------------------
    folder = output_folder(config)
    folder.mkdir(parents=True, exist_ok=True)
    generator.save(folder / GENERATOR_FILE)
    np.savez(folder / DATA_FILE, train=train, held_out=held)
    meta = {
        "format": FOLDER_FORMAT,
        "family": family.name,
        "kind": generator.kind,
        "settings": _generator_settings(config, family),
        "codec": {"name": codec.name, "dim": codec.dim, "params": family.codec_params(codec)},
        "env": None if env is None else dataclasses.asdict(env),
        "base": getattr(base, "name", None),
        "data": {
            "spec": spec,
            "params": family.resolved_data_params(data_params, codec),
            "n": len(features),
        },
        "split": {
            "kind": split,
            "train": len(train),
            "held_out": len(held),
            "left_out": len(features) - len(train) - len(held),
            "seed": config.seed,
        },
        "invalid_rate": report["invalid_rate"],
        "fit_seconds": getattr(generator, "fit_seconds", None),
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    _write_json(folder / META_FILE, meta)
    _write_json(folder / REALISM_FILE, report)
    plot_real_vs_generated(
        folder / FIGURE_FILE,
        family,
        codec,
        train,
        held,
        generated,
        title=f"{family.name} / {generator.kind}: real vs generated ({codec.name})",
    )
    if cfg is not None:
        save_config(folder, cfg)
        save_command(folder)
    log.info("%s -> %s", report["verdict"], folder)
    if env is not None:
        log.info(
            "use it with env.scenarios=gan:%s on %s with kwargs.scenario=%s",
            folder,
            env.id,
            env.kwargs.get("scenario"),
        )
    return report


def _env_spec(
    config: GenerateConfig, family: Family, spec: str, data_params: dict[str, Any]
) -> EnvSpec | None:
    """The env whose scenario is the base: ``config.env``, else the family's default."""
    given = None
    if config.env is not None:
        if config.env.scenarios is not None:
            raise ValueError(
                "env.scenarios: fitting reads the env's own scenario; leave env.scenarios null"
            )
        kwargs = env_kwargs(config.env)
        kwargs.pop(PARAMETER_SHARING, None)
        given = EnvSpec(resolve_env_id(config.env), kwargs, config.env.name)
    family.check_env(given, data_params)
    return given if given is not None else family.default_env(spec, data_params)


def _base_scenario(env: EnvSpec | None, family: Family, field: str) -> Any:
    if env is None:
        return None
    base = env_scenario(env.id, dict(env.kwargs), field)
    assert family.scenario_type is not None
    if not isinstance(base, family.scenario_type):
        raise ValueError(
            f"{field}: {env.id} takes {type(base).__name__} scenarios; the {family.name} family "
            f"needs an env with {family.scenario_type.__name__} scenarios"
        )
    return base


def check_real_data(
    features: np.ndarray, codec: ScenarioCodec[Any], family: Family, spec: str
) -> None:
    """Raise unless every real scenario is valid under ``codec`` (decodes to a scenario).

    A generator learns the real data's range; where the codec's valid range (``params``)
    excludes part of it, the draws that reproduce that part are rejected, so sampling either
    gives up or returns a distribution cut short of the real one.

    Raises:
        ValueError: naming ``params`` with the codec's settings and the real data's range.
    """
    bad = [k for k, row in enumerate(features) if codec.decode(row) is None]
    if not bad:
        return
    settings = ", ".join(f"params.{k}={v}" for k, v in family.codec_params(codec).items())
    rows = features[bad]
    raise ValueError(
        f"params: {len(bad)} of {len(features)} real scenarios of data {spec!r} are not valid "
        f"for codec {codec.name!r} ({settings}): their features range over "
        f"[{rows.min():g}, {rows.max():g}]; set the range so that it covers the real data "
        f"(or leave it null: the {family.name} family's default)"
    )


def _check_split_settings(config: GenerateConfig) -> None:
    if not 0.0 < config.held_out < 1.0:
        raise ValueError(f"held_out: must be a fraction in (0, 1), got {config.held_out}")
    if config.split is not None and config.split not in SPLITS:
        raise ValueError(f"split: {config.split!r} is not allowed; allowed values: {SPLITS}")
    if config.min_held_out < 4:
        raise ValueError(
            f"min_held_out: the band test needs at least 4 held-out scenarios, got "
            f"{config.min_held_out}"
        )
    if not 0.0 < config.alpha < 1.0:
        raise ValueError(f"alpha: the tests' level must be in (0, 1), got {config.alpha}")
    for field in ("n_data", "splits", "plot_samples", "max_rounds"):
        if getattr(config, field) < 1:
            raise ValueError(f"{field}: must be >= 1, got {getattr(config, field)}")


def split_indices(
    n: int,
    config: GenerateConfig,
    rng: np.random.Generator,
    *,
    split: str = "random",
    gap: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out row indices of ``n`` real scenarios.

    ``max(min_held_out, round(held_out * n))`` rows are held out: a seeded draw (``random``),
    or the last rows in the data's order (``blocked``), with the ``gap`` rows before them left
    out of both sets (they overlap a held-out row). At least 2 rows must remain to fit on.

    Raises:
        ValueError: naming ``n_data`` / ``data`` when too few scenarios remain to fit on.
    """
    n_held = max(config.min_held_out, round(config.held_out * n))
    skipped = gap if split == "blocked" else 0
    if n - n_held - skipped < 2:
        overlap = f" and leaving out the {skipped} overlapping them" if skipped else ""
        raise ValueError(
            f"n_data: {n} real scenarios leave {n - n_held - skipped} to fit on after holding "
            f"out {n_held}{overlap} (held_out={config.held_out}, "
            f"min_held_out={config.min_held_out}, split={split}); need at least 2: draw more "
            "(n_data), or use data with more scenarios (e.g. a shorter stride)"
        )
    if split == "blocked":
        return np.arange(n - n_held - skipped), np.arange(n - n_held, n)
    perm = rng.permutation(n)
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def make_generator(
    config: GenerateConfig, family: Family, codec: ScenarioCodec[Any]
) -> ScenarioGenerator[Any]:
    """The unfitted generator ``config.kind`` asks for, with its settings.

    Raises:
        ValueError: naming ``wgan.<key>`` or ``parametric.<key>`` for a bad setting.
    """
    settings = _generator_settings(config, family)
    prefix = config.kind.value
    try:
        if config.kind == GeneratorKind.wgan:
            from agents.generators.wgan import WGANGenerator

            return WGANGenerator(codec, max_rounds=config.max_rounds, **settings)
        if config.kind == GeneratorKind.parametric:
            from agents.generators.simple import ParametricGenerator

            return ParametricGenerator(codec, max_rounds=config.max_rounds, **settings)
        from agents.generators.simple import ListGenerator

        return ListGenerator(codec, max_rounds=config.max_rounds)
    except ValueError as exc:
        raise ValueError(f"{prefix}.{exc}") from exc


def _generator_settings(config: GenerateConfig, family: Family) -> dict[str, Any]:
    if config.kind == GeneratorKind.wgan:
        w = config.wgan
        return {
            "noise_dim": w.noise_dim,
            "hidden": tuple(w.hidden),
            "steps": w.steps,
            "critic_steps": w.critic_steps,
            "batch_size": w.batch_size,
            "lr": w.lr,
            "betas": tuple(w.betas),
            "gp_weight": w.gp_weight,
            "seed": config.seed if w.seed is None else w.seed,
            "threads": w.threads,
            "max_seconds": w.max_seconds,
            "log_scale": family.log_scale if w.log_scale is None else w.log_scale,
            "bound_margin": w.bound_margin
            if (family.bounded if w.bounded is None else w.bounded)
            else None,
        }
    if config.kind == GeneratorKind.parametric:
        p = config.parametric
        return {"distribution": p.distribution.value, "margin": p.margin}
    return {}


# --- realism ---------------------------------------------------------------------------------
def realism(
    generator: ScenarioGenerator[Any],
    real: np.ndarray,
    rng: np.random.Generator,
    *,
    splits: int = 100,
    alpha: float = 0.05,
    draws: int = 200,
    train: np.ndarray | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Held-out ``real`` features against generated ones, with a verdict.

    ``max(len(real), draws)`` scenarios are generated; the first ``len(real)`` of them are
    tested (equal sizes), all of them count for the invalid rate and are returned for figures.

    Args:
        generator: the fitted generator.
        real: held-out real features ``[m, dim]``.
        rng: draws the scenarios, the splits and the classifier folds.
        splits: halvings of ``real`` behind each band.
        alpha: level of every test.
        draws: scenarios generated for the invalid rate and the figure.
        train: the features the generator was fitted on. When given, the same band tests,
            diversity and coverage are also measured for them in place of generated ones
            (``training_data``): what a generator that reproduced its training data exactly
            would score. Where the held-out scenarios differ from the training ones (a blocked
            split of data that drifts in time), this shows how much of a failed test the data
            explains; it does not change the verdict.

    Returns:
        The report (``mmd`` and ``energy`` band tests, ``c2st_logistic`` and ``c2st_knn``,
        ``diversity`` and ``diversity_real``, ``coverage``, ``invalid_rate``, ``passed``,
        ``failed``, ``verdict``, and ``training_data`` with ``train``) and the generated
        features ``[draws, dim]``.
    """
    real = np.asarray(real, dtype=np.float64)
    m = len(real)
    before = dataclasses.replace(generator.stats)
    scenarios = generator.sample(max(m, draws), rng)
    proposed = generator.stats.proposed - before.proposed
    rejected = generator.stats.rejected - before.rejected
    generated = np.stack([generator.codec.encode(s) for s in scenarios])
    tested = generated[:m]
    k = max(1, min(5, m - 1))
    report: dict[str, Any] = {"n_real": m, "n_generated": m, "alpha": alpha, "splits": splits}
    report.update(M.band_tests(real, tested, rng, splits=splits, alpha=alpha))
    for name in ("logistic", "knn"):
        c = M.classifier_test(real, tested, rng, classifier=name, alpha=alpha, k=k)
        report[f"c2st_{name}"] = dataclasses.asdict(c)
    report["diversity"] = M.diversity(tested, real)
    report["diversity_real"] = M.diversity(real)
    report["coverage"] = M.coverage(real, tested, k=k)
    report["coverage_k"] = k
    report["invalid_rate"] = rejected / proposed if proposed else 0.0
    report["invalid_draws"] = {"proposed": proposed, "rejected": rejected}
    tests = ("mmd", "energy", "c2st_logistic", "c2st_knn")
    report["failed"] = [t for t in tests if not report[t]["passed"]]
    report["passed"] = not report["failed"]
    if train is not None and len(train) >= m // 2:
        train = np.asarray(train, dtype=np.float64)
        rows = train[rng.permutation(len(train))[:m]]
        reference: dict[str, Any] = {"n": len(rows)}
        reference.update(M.band_tests(real, rows, rng, splits=splits, alpha=alpha))
        reference["diversity"] = M.diversity(rows, real)
        reference["coverage"] = M.coverage(real, rows, k=k)
        report["training_data"] = reference
    report["verdict"] = verdict(report)
    return report, generated


def verdict(report: dict[str, Any]) -> str:
    """One line: pass or fail, and every number behind it."""
    mmd, energy = report["mmd"], report["energy"]
    head = "PASS" if report["passed"] else f"FAIL ({', '.join(report['failed'])})"
    ratio = report["diversity"] / report["diversity_real"] if report["diversity_real"] else 0.0
    line = (
        f"realism {head} on {report['n_real']} held-out: "
        f"MMD {mmd['generated']:.4g} vs band {mmd['threshold']:.4g} (p {mmd['p_value']:.2f}), "
        f"energy {energy['generated']:.4g} vs band {energy['threshold']:.4g} "
        f"(p {energy['p_value']:.2f}), "
        f"C2ST accuracy logistic {report['c2st_logistic']['accuracy']:.2f} "
        f"kNN {report['c2st_knn']['accuracy']:.2f}, coverage {report['coverage']:.2f}, "
        f"diversity {ratio:.2f}x real, invalid {100 * report['invalid_rate']:.1f} %"
    )
    if "training_data" in report:
        ref = report["training_data"]
        ratio = ref["diversity"] / report["diversity_real"] if report["diversity_real"] else 0.0
        line += (
            f"; the training data itself: MMD {ref['mmd']['generated']:.4g} "
            f"(p {ref['mmd']['p_value']:.2f}), energy {ref['energy']['generated']:.4g} "
            f"(p {ref['energy']['p_value']:.2f}), diversity {ratio:.2f}x real"
        )
    if report["n_real"] < 20:
        line += " (few held-out scenarios: the tests have little power)"
    return line


# --- sample ----------------------------------------------------------------------------------
@dataclasses.dataclass
class LoadedGenerator:
    """A generator folder, loaded.

    Attributes:
        folder: the folder.
        meta: ``generator.json``.
        family: the family.
        codec: the codec, rebuilt on the base.
        generator: the fitted generator.
    """

    folder: Path
    meta: dict[str, Any]
    family: Family
    codec: ScenarioCodec[Any]
    generator: ScenarioGenerator[Any]

    def real_features(self) -> tuple[np.ndarray, np.ndarray]:
        """The real features the generator was fitted on and tested against."""
        with np.load(self.folder / DATA_FILE, allow_pickle=False) as data:
            return data["train"], data["held_out"]


def load_generator(
    folder: str | Path,
    *,
    base: Any = _FROM_SAVED_ENV,
    field: str = "path",
    env_label: str = "",
) -> LoadedGenerator:
    """Load a folder written by :func:`fit`, its codec rebuilt on ``base``.

    Args:
        folder: the generator folder.
        base: the scenario to rebuild the codec on, e.g. an env's own scenario; by default
            the base is rebuilt from the env saved in ``generator.json``.
        field: the configuration key named in errors (``path``, ``env.scenarios``).
        env_label: the env ``base`` comes from, for messages.

    Raises:
        ValueError: naming ``field`` when the folder holds no generator, its family's
            scenarios are not the env's kind, or the codec differs from the saved one.
    """
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise ValueError(
            f"{field}: {folder} holds no {META_FILE}; give a folder written by lepton-generate fit"
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FOLDER_FORMAT:
        raise ValueError(f"{field}: {meta_path} has unsupported format {meta.get('format')!r}")
    family = get_family(meta["family"])
    saved_env = meta.get("env")
    if base is _FROM_SAVED_ENV:
        env = None if saved_env is None else EnvSpec(**saved_env)
        base = _base_scenario(env, family, field)
        where = f"the saved env {env.id}" if env is not None else "the family"
    else:
        where = env_label or "the env"
        if family.scenario_type is None:
            raise ValueError(
                f"{field}: {folder} holds a {family.name} generator, whose scenarios no env "
                "takes; fit one on an env family (inventory, traffic)"
            )
        if not isinstance(base, family.scenario_type):
            raise ValueError(
                f"{field}: {folder} generates {family.scenario_type.__name__} scenarios "
                f"({family.name} family) but {where} takes {type(base).__name__}"
            )
    codec = family.codec(base, **meta["codec"]["params"])
    saved = meta["codec"]
    if codec.name != saved["name"] or codec.dim != saved["dim"]:
        fitted_on = ""
        if saved_env is not None:
            scenario = saved_env["kwargs"].get("scenario")
            fitted_on = f" on {saved_env['id']} with scenario {scenario!r}"
        raise ValueError(
            f"{field}: the generator in {folder} was fitted for codec {saved['name']!r} "
            f"(dim {saved['dim']}){fitted_on}, but the scenario {getattr(base, 'name', base)!r} "
            f"of {where} gives codec {codec.name!r} (dim {codec.dim}); use an env with the "
            f"generator's scenario or fit one on this env (lepton-generate fit "
            f"family={family.name} env=...)"
        )
    generator = ScenarioGenerator.load(folder / GENERATOR_FILE, codec)
    return LoadedGenerator(folder, meta, family, codec, generator)


def sample(config: GenerateConfig, cfg: DictConfig | None = None) -> dict[str, Any]:
    """Draw ``config.n`` scenarios from the folder ``config.path`` into the output folder.

    Returns:
        The samples index written to ``samples.json``.

    Raises:
        ValueError: naming ``path`` or ``n``.
    """
    if not config.path:
        raise ValueError("path: give the folder written by lepton-generate fit (path=<folder>)")
    if config.n < 1:
        raise ValueError(f"n: must be >= 1, got {config.n}")
    loaded = load_generator(config.path)
    gen, family, codec = loaded.generator, loaded.family, loaded.codec
    rng = np.random.default_rng(config.seed)
    scenarios = gen.sample(config.n, rng)
    features = np.stack([codec.encode(s) for s in scenarios])
    folder = output_folder(config)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k, (sc, x) in enumerate(zip(scenarios, features, strict=True)):
        name = f"sample_{k:03d}.json"
        _write_json(
            folder / name,
            {
                "index": k,
                "seed": config.seed,
                "family": family.name,
                "codec": codec.name,
                "features": [float(v) for v in x],
                "scenario": family.describe(sc, codec),
            },
        )
        files.append(name)
    index = {
        "generator": str(loaded.folder),
        "family": family.name,
        "kind": gen.kind,
        "codec": codec.name,
        "seed": config.seed,
        "n": config.n,
        "invalid_rate": gen.stats.invalid_rate,
        "files": files,
    }
    _write_json(folder / SAMPLES_INDEX_FILE, index)
    train, held = loaded.real_features()
    plot_real_vs_generated(
        folder / SAMPLES_FIGURE_FILE,
        family,
        codec,
        train,
        held,
        features,
        title=f"{family.name} / {gen.kind}: {config.n} samples (seed {config.seed})",
        lines=True,
    )
    if cfg is not None:
        save_config(folder, cfg)
        save_command(folder)
    log.info(
        "%d %s scenarios (seed %d, invalid rate %.1f %%) -> %s",
        config.n,
        family.name,
        config.seed,
        100 * gen.stats.invalid_rate,
        folder,
    )
    return index


# --- figures ---------------------------------------------------------------------------------
def plot_real_vs_generated(
    path: Path,
    family: Family,
    codec: ScenarioCodec[Any],
    train: np.ndarray,
    held: np.ndarray,
    generated: np.ndarray,
    *,
    title: str,
    lines: bool = False,
) -> None:
    """Real against generated: profile bands and a PCA scatter, side by side.

    Left: the family's profile (:meth:`Family.profile`) of all real scenarios and of the
    generated ones, median with a 10-90 % band (``lines``: every generated one as a line).
    Right: the features in the plane of the real data's first two principal components
    (standardised with the real data's statistics).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    real = np.concatenate([train, held])
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax, pca_ax = fig.subplots(1, 2)
    pr, pg = family.profile(real, codec), family.profile(generated, codec)
    for prof, color, label in ((pr, "C0", f"real ({len(real)})"), (pg, "C1", "generated")):
        if lines and prof is pg:
            for k, row in enumerate(prof.values):
                ax.plot(prof.x, row, color=color, lw=0.9, alpha=0.7, label=None if k else label)
            continue
        lo, mid, hi = np.quantile(prof.values, [0.1, 0.5, 0.9], axis=0)
        ax.fill_between(prof.x, lo, hi, color=color, alpha=0.25, label=f"{label}: 10-90 %")
        ax.plot(prof.x, mid, color=color, lw=1.8, label=f"{label}: median")
    ax.set_xlabel(pr.xlabel)
    ax.set_ylabel(pr.ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    std = M.standardiser(real)
    r = std(real)
    _, _, vt = np.linalg.svd(r - r.mean(axis=0), full_matrices=False)
    comps = vt[:2] if len(vt) >= 2 else np.vstack([vt[:1], np.zeros_like(vt[:1])])

    def project(x: np.ndarray) -> np.ndarray:
        return std(x) @ comps.T

    for x, style in (
        (train, {"color": "0.6", "s": 10, "label": f"real, fitted on ({len(train)})"}),
        (held, {"color": "C0", "s": 16, "label": f"real, held out ({len(held)})"}),
        (generated, {"color": "C1", "s": 16, "marker": "x", "label": "generated"}),
    ):
        p = project(x)
        pca_ax.scatter(p[:, 0], p[:, 1], alpha=0.7, linewidths=1.0, **style)
    pca_ax.set_xlabel("PC 1 of the real features")
    pca_ax.set_ylabel("PC 2")
    pca_ax.grid(alpha=0.3)
    pca_ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)


# --- helpers ---------------------------------------------------------------------------------
def output_folder(config: GenerateConfig) -> Path:
    """``config.out_dir``, or Hydra's job folder in a multirun."""
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            return Path(hydra_cfg.runtime.output_dir)
    return Path(config.out_dir)


def _as_generate_config(cfg: DictConfig | GenerateConfig) -> GenerateConfig:
    if isinstance(cfg, GenerateConfig):
        return cfg
    extra = unknown_keys(cfg)
    if extra:
        raise KeyError("; ".join(extra))
    obj = OmegaConf.to_object(cfg)
    if not isinstance(obj, GenerateConfig):
        raise TypeError(
            f"expected a configuration composed with the GenerateConfig schema, got "
            f"{type(obj).__name__}; compose it from conf/ (config_name='generate')"
        )
    return obj


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(plain(data), indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# --- adversarial -----------------------------------------------------------------------------
ADVERSARIAL_FILE = "adversarial.json"
ADVERSARIAL_FIGURE_FILE = "adversarial.png"
WORST_FOLDER = "worst"


@dataclasses.dataclass
class LoadedAgent:
    """An SB3 agent saved by ``lepton-train`` (or the model zoo), with the env it was trained on.

    Attributes:
        model_path: its ``model.zip``.
        algo: ``agent.algo`` of its run.
        env_id: the env it was trained on.
        env_kwargs: that env's constructor arguments.
        normalization: its ``vecnormalize.pkl``, when it has one.
    """

    model_path: Path
    algo: str
    env_id: str
    env_kwargs: dict[str, Any]
    normalization: Path | None


def resolve_agent(spec: str | None, field: str = "model") -> LoadedAgent:
    """Find the agent ``spec``: ``pretrained/<name>``, a ``model.zip`` or the run folder holding one.

    Its run's ``config.yaml`` (next to the model) gives the algorithm and the env.

    Raises:
        ValueError: naming ``field`` and the allowed forms (and the pretrained names).
    """
    from agents.algorithms import run_config_path
    from agents.envs import saved_normalization
    from agents.pretrained import zoo_dir

    forms = "pretrained/<name>, <run folder>/model.zip or <run folder>"
    if not spec:
        raise ValueError(f"{field}: give the agent ({forms})")
    if spec.startswith("pretrained/"):
        name = spec.partition("/")[2]
        names = sorted(p.name for p in zoo_dir().iterdir() if (p / "model.zip").is_file())
        if name not in names:
            raise ValueError(f"{field}: no pretrained agent {name!r}; allowed: {names}")
        path = zoo_dir() / name / "model.zip"
    else:
        path = Path(spec)
        if path.is_dir():
            path = path / "model.zip"
        if not path.is_file():
            raise ValueError(f"{field}: no model at {spec!r}; allowed: {forms}")
    saved = run_config_path(path)  # next to the model, or above a checkpoint's folder
    if saved is None:
        raise ValueError(
            f"{field}: {path} has no config.yaml of its run (next to it, or in the run folder "
            "above a checkpoint; written by lepton-train); it gives the model's algorithm and env"
        )
    run_cfg: Any = OmegaConf.to_container(OmegaConf.load(saved), resolve=False)
    env = run_cfg.get("env") or {}
    agent = run_cfg.get("agent") or {}
    algo = agent.get("algo")
    if not algo or not env.get("id"):
        raise ValueError(f"{field}: {saved} names no agent.algo or env.id")
    normalized = bool((agent.get("normalize") or {}).get("obs", False))
    return LoadedAgent(
        path,
        str(algo),
        str(env["id"]),
        dict(env.get("kwargs") or {}),
        saved_normalization(path, normalized, saved, field),
    )


def adversarial(config: GenerateConfig, cfg: DictConfig | None = None) -> dict[str, Any]:
    """Search the generator ``config.path`` for scenarios where ``config.model`` loses most.

    Regret is the baseline's return minus the agent's on the same scenario and seed. The
    search (``config.adversarial``) returns the best ``n`` distinct scenarios by its own scores;
    they, ``4 n`` ordinary generated scenarios and ``4 n`` held-out real ones are then scored
    on the same evaluation seeds (disjoint from the search's), and those regrets are reported.

    Returns:
        The report written to ``adversarial.json``.

    Raises:
        ValueError: naming ``path``, ``model``, ``n`` or ``adversarial.<field>``.
        RunMismatchError: (a ``ValueError``) naming ``out_dir`` when it holds the adversarial
            report of another configuration, before anything is loaded.
    """
    import envs as lepton_envs
    from agents.algorithms import algorithm_class
    from agents.envs import load_normalization
    from agents.generators.adversarial import AdversarialSearch, regret
    from agents.policies import make_baseline, reference_baseline
    from envs.core.sb3 import make_sb3_vec_env

    if not config.path:
        raise ValueError("path: give the folder written by lepton-generate fit (path=<folder>)")
    if config.n < 1:
        raise ValueError(f"n: must be >= 1, got {config.n}")
    if cfg is not None:
        _check_not_another_report(output_folder(config), cfg)
    agent = resolve_agent(config.model)
    env_id = lepton_envs.resolve_id(agent.env_id)
    kwargs = {k: v for k, v in agent.env_kwargs.items() if k != PARAMETER_SHARING}
    base = env_scenario(env_id, kwargs, field="model")
    loaded = load_generator(config.path, base=base, env_label=f"the model's env {env_id}")
    gen, family, codec = loaded.generator, loaded.family, loaded.codec
    settings = family.adversarial_settings(config.adversarial)
    search = AdversarialSearch.from_settings(gen, settings)
    if settings.episodes < 1 or settings.batch_size < 1 or settings.fit_episodes < 1:
        raise ValueError(
            "adversarial.episodes, adversarial.batch_size, adversarial.fit_episodes: must be >= 1"
        )

    # --- the agent, the baseline and the scoring env ----------------------------------------
    batch = min(settings.batch_size, max(settings.population, 4 * config.n) * settings.episodes)
    venv = make_sb3_vec_env(env_id, batch, **kwargs)
    agent_venv = venv
    if agent.normalization is not None:
        agent_venv = load_normalization(agent.normalization, venv)
    try:
        model = algorithm_class(agent.algo).load(str(agent.model_path), env=agent_venv)
    except ValueError as exc:
        raise ValueError(f"model: {agent.model_path} does not fit {env_id}: {exc}") from exc
    fit_seeds = range(config.seed, config.seed + settings.fit_episodes)
    baseline_name = reference_baseline(settings.baseline, venv)
    baseline = make_baseline(
        baseline_name, venv, seed=config.seed, fit_seeds=fit_seeds, field="adversarial.baseline"
    )

    # seeds disjoint from the baseline's fitting ones; the search keeps the candidates that
    # scored highest on its seeds, which overstates their regret wherever episodes are random,
    # so every reported regret (found, ordinary, real) is measured afresh on the same seeds
    search_seed = config.seed + 1_000_000
    eval_seed = config.seed + 2_000_000

    def score(scenarios: list[Any], seed: int = eval_seed) -> np.ndarray:
        return regret(
            model,
            baseline,
            venv,
            scenarios,
            episodes=settings.episodes,
            seed=seed,
            agent_venv=agent_venv,
        )

    # --- search, ordinary samples, real data --------------------------------------------------
    search_rng, sample_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(2)
    )
    log.info(
        "searching %s (%s, %d candidates) for scenarios where %s loses to %s",
        loaded.folder,
        search.method,
        search.budget,
        config.model,
        baseline_name,
    )
    result = search.run(lambda scenarios: score(scenarios, search_seed), search_rng, top_k=config.n)
    if not result.found:
        raise ValueError(
            f"path: none of the {result.proposed} candidates drawn from {loaded.folder} decoded "
            f"to a valid scenario (invalid rate {100 * result.invalid_rate:.1f} %); refit the "
            "generator (lepton-generate fit) or search it with adversarial.method=random"
        )
    before = dataclasses.replace(gen.stats)
    ordinary = gen.sample(4 * config.n, sample_rng)
    ordinary_invalid = (gen.stats.rejected - before.rejected) / max(
        1, gen.stats.proposed - before.proposed
    )
    ordinary_regret = score(ordinary)
    train, held = loaded.real_features()
    real_features = np.concatenate([held, train])[: 4 * config.n]
    real = [sc for sc in (codec.decode(x) for x in real_features) if sc is not None]
    real_regret = score(real)
    found_regret = score([c.scenario for c in result.found])

    # --- the folder ---------------------------------------------------------------------------
    folder = output_folder(config)
    folder.mkdir(parents=True, exist_ok=True)
    worst = result.found[0]
    frames = render_episode(
        folder / WORST_FOLDER, env_id, kwargs, worst.scenario, model, agent_venv, eval_seed
    )
    report: dict[str, Any] = {
        "generator": str(loaded.folder),
        "family": family.name,
        "kind": gen.kind,
        "model": config.model,
        "env": {"id": env_id, "kwargs": kwargs},
        "baseline": {"name": baseline_name, "params": baseline.params()},
        "settings": dataclasses.asdict(settings),
        "seed": config.seed,
        "method": result.method,
        "regret": (
            "baseline return - agent return (positive: the agent loses); found, ordinary and "
            "real scored on the same evaluation seeds, apart from the search's own"
        ),
        "found": _regret_summary(found_regret),
        "ordinary": _regret_summary(ordinary_regret),
        "real": _regret_summary(real_regret),
        "invalid_rate": result.invalid_rate,
        "invalid_draws": {"proposed": result.proposed, "rejected": result.rejected},
        "ordinary_invalid_rate": ordinary_invalid,
        "best_objective_per_iteration": result.best_per_iteration,
        "mean_objective_per_iteration": result.mean_per_iteration,
        "worst": {
            "regret": float(found_regret[0]),
            "search_regret": worst.regret,
            "objective": worst.objective,
            "latent_sq_norm_per_dim": None
            if worst.latent is None
            else float((worst.latent**2).mean()),
            "frames": f"{WORST_FOLDER}/ ({frames} PNG frames and {WORST_FOLDER}.gif)",
        },
        "scenarios": [
            {
                "regret": float(r),
                "search_regret": c.regret,
                "objective": c.objective,
                "latent_sq_norm_per_dim": None if c.latent is None else float((c.latent**2).mean()),
                "scenario": family.describe(c.scenario, codec),
            }
            for c, r in zip(result.found, found_regret, strict=True)
        ],
    }
    _write_json(folder / ADVERSARIAL_FILE, report)
    plot_adversarial(
        folder / ADVERSARIAL_FIGURE_FILE,
        family,
        codec,
        real_features,
        np.stack([c.features for c in result.found]),
        found_regret,
        ordinary_regret,
        real_regret,
        title=(
            f"{family.name} / {gen.kind}: {config.model} vs {baseline_name}, "
            f"{result.method} over {search.budget} candidates (seed {config.seed})"
        ),
    )
    if cfg is not None:
        save_config(folder, cfg)
        save_command(folder)
    log.info(
        "regret (baseline - agent): found %.1f (max %.1f), ordinary %.1f, real %.1f; invalid "
        "rate %.1f %% -> %s",
        report["found"]["mean"],
        report["found"]["max"],
        report["ordinary"]["mean"],
        report["real"]["mean"],
        100 * result.invalid_rate,
        folder,
    )
    return report


def plan_output(folder: Path, cfg: DictConfig) -> str:
    """Whether ``lepton-generate`` writes into ``folder`` (:class:`~agents.jobs.KeepRunRecord`).

    Args:
        folder: the job's output folder.
        cfg: the job's configuration.

    Returns:
        :data:`~agents.jobs.RUN` where the command is not refused.

    Raises:
        RunMismatchError: for ``adversarial`` when ``folder`` holds the adversarial report of
            another configuration (see :func:`adversarial`).
    """
    if _as_generate_config(cfg).command == GenerateCommand.adversarial:
        _check_not_another_report(folder, cfg)
    return RUN


def _check_not_another_report(folder: Path, cfg: DictConfig) -> None:
    """Raise if ``folder`` holds the adversarial report of another configuration.

    Another model, baseline or search would replace that report; the same configuration may
    run again.

    Raises:
        RunMismatchError: naming ``out_dir``, the differing keys and what to do instead.
    """
    saved = saved_config(folder) if (folder / ADVERSARIAL_FILE).is_file() else None
    differences = config_differences(saved, cfg) if saved is not None else []
    if differences:
        raise RunMismatchError(
            f"out_dir: {folder} holds the adversarial report of another configuration "
            f"({describe_differences(differences)}); writing this one there would replace it. "
            f"Choose another out_dir (e.g. out_dir={folder}__<label>), or remove that folder"
        )


def _regret_summary(values: np.ndarray) -> dict[str, Any]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"n": 0}
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
        "positive_fraction": float((v > 0).mean()),
        "values": [float(x) for x in v],
    }


def render_episode(
    folder: Path,
    env_id: str,
    kwargs: dict[str, Any],
    scenario: Any,
    model: Any,
    agent_venv: Any,
    seed: int,
) -> int:
    """Record the agent's episode on ``scenario``: ``folder/frame_<t>.png`` and ``<folder>.gif``.

    Frames come from ``render_mode="rgb_array"`` (headless: ``SDL_VIDEODRIVER=dummy``); the
    agent sees observations normalised like ``agent_venv`` when it normalises.

    Returns:
        The number of frames.
    """
    import os

    from PIL import Image

    import envs as lepton_envs
    from agents.render import write_video

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    normalize = getattr(agent_venv, "normalize_obs", None)
    env = lepton_envs.make(env_id, render_mode="rgb_array", **{**kwargs, "scenario": scenario})
    folder.mkdir(parents=True, exist_ok=True)
    frames: list[np.ndarray] = []
    try:
        obs, _ = env.reset(seed=seed)
        frames.append(np.asarray(env.render(), dtype=np.uint8))
        done = False
        while not done:
            x = obs[None]
            action, _ = model.predict(normalize(x) if normalize else x, deterministic=True)
            obs, _, terminated, truncated, _ = env.step(action[0])
            frames.append(np.asarray(env.render(), dtype=np.uint8))
            done = terminated or truncated
    finally:
        env.close()
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"frame_{t:03d}.png")
    write_video(folder.with_suffix(".gif"), frames, int(env.metadata.get("render_fps", 4)))
    return len(frames)


def plot_adversarial(
    path: Path,
    family: Family,
    codec: ScenarioCodec[Any],
    real: np.ndarray,
    found: np.ndarray,
    found_regret: np.ndarray,
    ordinary_regret: np.ndarray,
    real_regret: np.ndarray,
    *,
    title: str,
    top: int = 5,
) -> None:
    """The adversarial figure: found scenarios against real ones, and their regrets.

    Left: the ``top`` found scenarios' profiles against the real ones (median, 10-90 % band).
    Right: histograms of regret, found against ordinary generated and real scenarios.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax, hax = fig.subplots(1, 2)
    pr, pf = family.profile(real, codec), family.profile(found[:top], codec)
    lo, mid, hi = np.quantile(pr.values, [0.1, 0.5, 0.9], axis=0)
    ax.fill_between(pr.x, lo, hi, color="C0", alpha=0.25, label=f"real ({len(real)}): 10-90 %")
    ax.plot(pr.x, mid, color="C0", lw=1.8, label="real: median")
    for k, row in enumerate(pf.values):
        ax.plot(
            pf.x,
            row,
            color=f"C{3 + k % 6}",
            lw=1.2,
            label=f"found #{k + 1}: regret {found_regret[k]:.1f}",
        )
    ax.set_xlabel(pr.xlabel)
    ax.set_ylabel(pr.ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    values = np.concatenate([found_regret, ordinary_regret, real_regret])
    bins = np.linspace(values.min(), values.max(), 30) if np.ptp(values) > 0 else 10
    for v, color, label in (
        (real_regret, "C0", "real"),
        (ordinary_regret, "C1", "ordinary generated"),
        (found_regret, "C3", "found (adversarial)"),
    ):
        hax.hist(v, bins=bins, color=color, alpha=0.55, label=f"{label} ({len(v)})")
    hax.axvline(0.0, color="k", lw=1.0, ls="--")
    hax.set_xlabel("regret = baseline return - agent return")
    hax.set_ylabel("scenarios")
    hax.grid(alpha=0.3)
    hax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
