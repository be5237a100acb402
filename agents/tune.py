"""Hyperparameter search with Optuna: TPE sampling, median pruning, a shared RDB study.

``run(cfg)`` joins (or creates) the study ``tune.name`` in ``tune.storage`` and runs trials
until the study holds ``tune.n_trials`` complete or pruned ones, so any number of workers
(processes on one machine, Ray tasks, machines sharing a database) started with the same
storage URL and name share the work; workers sharing a SQLite file create its tables, enqueue
the defaults trial and take enqueued trials one at a time, under a lock file beside it
(:func:`study_lock`). ``tune.n_trials`` bounds the whole study, not each worker: a worker
starts a trial only while the study's complete, pruned and running trials are fewer than
``tune.n_trials``; when workers create trials at the same moment, those beyond the
limit (:func:`over_budget`) train nothing, are marked failed and stop their workers. A failed
trial (or one whose worker was killed) does not count, so a resumed study runs it again.
A trial:

1. samples every field of ``search_space`` (keys are fields of the agent, dotted for nested
   ones: ``learning_rate``, ``policy_kwargs.net_arch``) with the TPE sampler;
2. trains the agent like ``lepton-train`` for ``total_timesteps`` and reports each point of its
   learning curve (``eval.curve_episodes`` episodes every ``eval.eval_freq`` steps) to the median
   pruner, which stops trials below the median of earlier trials at the same step;
3. scores the mean return over ``eval.episodes`` evaluation episodes.

Each trial logs its training into ``<run_dir>/trials/<number>/`` (SB3's ``progress.csv``, and
TensorBoard in ``tb/`` with ``tensorboard=true``).

With ``init_model=<run folder>`` every trial starts from that run's policy, so the study tunes
the hyperparameters of training it further. The curve and the score run on ``eval.scenarios``
when it is set, as in ``lepton-train``. The
study picks the best of many trials by that score, so give it a validation source (e.g.
``train:<folder>``), not the held-out scenarios the final results are reported on.

The agent preset's own values are the first trial (``tune.enqueue_defaults``), so the study
measures the defaults exactly like every other trial; a default Optuna cannot take (``null``, a
value outside a categorical's choices, a value <= 0 on a log scale such as PPO's ``ent_coef``
0.0) is replaced (:func:`defaults_trial`) and the summary names every replacement. At the end the
best values are written as a complete agent preset, ``conf/agent/<tune.preset>.yaml``, usable as
``agent=<tune.preset>``; with ``tune.preset_dir`` elsewhere the summary prints a command that
loads the file written (:func:`preset_usage`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.utils import set_random_seed

from agents.algorithms import as_sb3_agent, build_model
from agents.callbacks import LearningCurveCallback
from agents.config import as_config, check_curve_episodes, env_kwargs, make_seeds, plain
from agents.envs import evaluation_env, make_training_env, resolve_env_id
from agents.evaluation import run_episodes
from agents.jobs import file_lock
from agents.logs import training_logger
from agents.warmstart import start_from
from conf.schema import ParamSpec, ParamType, SB3AgentConfig, TuneConfig
from envs.core.registry import suggest

log = logging.getLogger(__name__)


# --- search space ----------------------------------------------------------------------------


def agent_fields(schema: type[Any], prefix: str = "") -> dict[str, type[Any] | Any]:
    """Every leaf field of an agent schema by dotted path (``policy_kwargs.net_arch``...)."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(schema):
        ftype = field.type
        default = (
            field.default_factory() if field.default_factory is not dataclasses.MISSING else None
        )
        if dataclasses.is_dataclass(default):
            out.update(agent_fields(type(default), f"{prefix}{field.name}."))
        else:
            out[f"{prefix}{field.name}"] = ftype
    return out


NOT_TUNABLE = frozenset({"name", "algo", "policy"})


def parse_search_space(
    space: dict[str, ParamSpec], schema: type[SB3AgentConfig]
) -> dict[str, ParamSpec]:
    """Check a search space against the agent schema; returns it in sorted key order.

    Raises:
        ValueError: naming ``search_space.<key>`` for an unknown field (with the allowed
            ones), a missing or inverted bound, ``log`` with ``step``, a non-positive bound
            on a log scale, or a categorical parameter without choices.
    """
    if not space:
        raise ValueError(
            "search_space: empty; pick one, e.g. search_space=ppo (conf/search_space/)"
        )
    fields = sorted(k for k in agent_fields(schema) if k not in NOT_TUNABLE)
    checked = {}
    for key in sorted(space):
        spec = space[key]
        where = f"search_space.{key}"
        if key not in fields:
            raise ValueError(
                f"{where}: not a tunable field of {schema.__name__}; allowed: {fields}."
                f"{suggest(key, fields)}{_space_hint(key, schema)}"
            )
        if spec.type == ParamType.categorical:
            if not spec.choices:
                raise ValueError(
                    f"{where}: a categorical parameter needs a non-empty 'choices' list"
                )
        else:
            if spec.low is None or spec.high is None:
                raise ValueError(f"{where}: type {spec.type.value} needs 'low' and 'high'")
            if spec.low >= spec.high:
                raise ValueError(f"{where}: needs low < high, got low={spec.low}, high={spec.high}")
            if spec.log and spec.step is not None:
                raise ValueError(f"{where}: 'log' and 'step' cannot be combined")
            if spec.step is not None and spec.step <= 0:
                raise ValueError(f"{where}: needs step > 0 (or null), got {spec.step}")
            if spec.type == ParamType.int:
                bad = {
                    name: value
                    for name, value in (("low", spec.low), ("high", spec.high), ("step", spec.step))
                    if value is not None and not float(value).is_integer()
                }
                if bad:
                    raise ValueError(f"{where}: type int needs whole numbers, got {bad}")
            if spec.log and spec.low <= 0:
                raise ValueError(f"{where}: a log scale needs low > 0, got {spec.low}")
        checked[key] = spec
    return checked


def _space_hint(key: str, schema: type[Any]) -> str:
    """For a field of another algorithm: the packaged search space of this one, or how to add one."""
    others = sorted(
        {
            cls.algo
            for cls in _subclasses(SB3AgentConfig)
            if isinstance(getattr(cls, "algo", None), str) and key in agent_fields(cls)
        }
    )
    algo = getattr(schema, "algo", None)
    if not others or not isinstance(algo, str):
        return ""
    spaces = sorted(p.stem for p in (_packaged_agent_dir().parent / "search_space").glob("*.yaml"))
    fix = (
        f"use search_space={algo}"
        if algo in spaces
        else f"conf/search_space/ has none for {algo} (only {spaces}): write "
        f"search_space/{algo}.yaml with the allowed fields in a folder on hydra.searchpath "
        f"and pass search_space={algo}"
    )
    return f" {key} is a field of {', '.join(others)}: this search space is for another algorithm; {fix}."


def _subclasses(cls: type[Any]) -> list[type[Any]]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def suggest_values(trial: Any, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Sample one value per parameter from an Optuna trial (categorical choices decoded)."""
    values: dict[str, Any] = {}
    for key, spec in space.items():
        if spec.type == ParamType.categorical:
            assert spec.choices is not None
            encoded = [json.dumps(plain(c)) for c in spec.choices]
            values[key] = json.loads(trial.suggest_categorical(key, encoded))
        elif spec.type == ParamType.int:
            assert spec.low is not None and spec.high is not None
            step = int(spec.step) if spec.step is not None else 1
            values[key] = trial.suggest_int(
                key, int(spec.low), int(spec.high), step=step, log=spec.log
            )
        else:
            assert spec.low is not None and spec.high is not None
            values[key] = trial.suggest_float(
                key, spec.low, spec.high, step=spec.step, log=spec.log
            )
    return values


def trial_params(values: dict[str, Any], space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Values as Optuna stores them (categorical ones JSON-encoded), e.g. to enqueue a trial."""
    return {
        k: json.dumps(plain(v)) if space[k].type == ParamType.categorical else v
        for k, v in values.items()
    }


def decode_params(params: dict[str, Any], space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Inverse of :func:`trial_params`."""
    return {
        k: json.loads(v) if k in space and space[k].type == ParamType.categorical else v
        for k, v in params.items()
    }


def preset_values(agent: SB3AgentConfig, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """The preset's own value of every parameter of the space (plain data)."""
    current = plain(agent)
    values = {}
    for key in space:
        value: Any = current
        for part in key.split("."):
            value = value[part]
        values[key] = value
    return values


def _in_space(value: Any, spec: ParamSpec) -> bool:
    if spec.type == ParamType.categorical:
        assert spec.choices is not None
        return json.dumps(value) in [json.dumps(plain(c)) for c in spec.choices]
    return (
        value is not None
        and spec.low is not None
        and spec.high is not None
        and spec.low <= value <= spec.high
    )


def defaults_trial(agent: SB3AgentConfig, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """The values enqueued as the defaults trial: the preset's own wherever Optuna takes them.

    Optuna takes a number outside a range as it is (it warns and uses it), so such defaults
    are enqueued exactly. It cannot take ``null``, a value outside a categorical's choices, or
    a value <= 0 on a log scale: a value <= 0 becomes the range's lower bound (``ent_coef``
    0.0 -> 1e-8), the others are left to the sampler. :func:`substituted` reports the values
    the trial used in place of the preset's.
    """
    values = {}
    for key, value in preset_values(agent, space).items():
        spec = space[key]
        if spec.type == ParamType.categorical:
            if _in_space(value, spec):
                values[key] = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            values[key] = spec.low if spec.log and value <= 0 else value
    return values


def substituted(
    agent: SB3AgentConfig, space: dict[str, ParamSpec], used: dict[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """``{key: (preset's value, value used)}`` where the defaults trial's ``used`` differ."""
    own = preset_values(agent, space)
    return {
        key: (own[key], used.get(key))
        for key in space
        if json.dumps(plain(own[key])) != json.dumps(plain(used.get(key)))
    }


def describe_substitutions(subs: dict[str, tuple[Any, Any]]) -> str:
    """``ent_coef=1e-08 in place of the preset's 0.0`` for every substituted value."""
    return ", ".join(
        f"{key}={used!r} in place of the preset's {own!r}" for key, (own, used) in subs.items()
    )


def apply_values(cfg: DictConfig, values: dict[str, Any]) -> DictConfig:
    """A copy of ``cfg`` with ``agent.<key>`` set to each value (validated by the schema)."""
    out = cfg.copy()
    for key, value in values.items():
        OmegaConf.update(out, f"agent.{key}", value, merge=False)
    return out


# --- presets -----------------------------------------------------------------------------------


def _packaged_agent_dir() -> Path:
    import conf

    return Path(conf.__file__).resolve().parent / "agent"


def preset_dir(config: TuneConfig) -> Path:
    """Folder of the preset written with the best values (``conf/agent`` by default)."""
    if config.tune.preset_dir is not None:
        return Path(config.tune.preset_dir)
    return _packaged_agent_dir()


def preset_usage(config: TuneConfig) -> str:
    """How to train with the written preset: a command that loads that very file.

    ``agent=<preset>`` looks in this package's ``conf/agent`` first, then in the ``agent/``
    subfolder of each ``hydra.searchpath`` folder. A preset written elsewhere is found that
    way when its folder is named ``agent`` and no packaged preset has its name; otherwise the
    hint copies it to such a place first.
    """
    name = config.tune.preset
    folder = preset_dir(config).resolve()
    packaged = _packaged_agent_dir()
    if folder == packaged:
        return f"Use it with `lepton-train agent={name}`."
    shadowed = (packaged / f"{name}.yaml").is_file()
    if folder.name == "agent" and not shadowed:
        return (
            f"Use it with `lepton-train 'hydra.searchpath=[file://{folder.parent}]' agent={name}`."
        )
    target = folder if folder.name == "agent" else folder / "agent"
    new, k = name, 0
    while (packaged / f"{new}.yaml").is_file():
        k += 1
        new = f"{name}_{k}"
    why = (
        f"loads the packaged conf/agent/{name}.yaml, not this file"
        if shadowed
        else "finds only presets in an agent/ folder of a config search path"
    )
    copy = target / f"{new}.yaml"
    return (
        f"`agent={name}` {why}; to use this one: "
        f"`mkdir -p {copy.parent} && cp {folder / name}.yaml {copy}`, then "
        f"`lepton-train 'hydra.searchpath=[file://{target.parent}]' agent={new}`."
    )


def write_preset(
    path: Path, agent: SB3AgentConfig, values: dict[str, Any], name: str, header: str
) -> Path:
    """Write an agent preset: ``agent`` with ``values`` applied and ``name``, as YAML.

    The preset starts from the algorithm's schema like the hand-written ones, so it is
    validated when composed (``agent=<name>``).
    """
    data = plain(agent)
    for key, value in values.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    data["name"] = name
    algo = data.pop("algo")
    body = OmegaConf.to_yaml(OmegaConf.create(data))
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    text = f"{comment}defaults:\n  - /schema/agent/{algo}@_here_\n  - _self_\n\n{body}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- trials ------------------------------------------------------------------------------------


class PruningCurve(LearningCurveCallback):
    """The learning curve, with every point reported to an Optuna trial that may prune it."""

    def __init__(self, trial: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trial = trial
        self.pruned = False
        self._reported: set[int] = set()

    def _evaluate(self, log: bool = True) -> dict[str, float]:
        point = super()._evaluate(log)
        step = int(point["timesteps"])
        if step in self._reported:  # the final point retaken at the same step
            return point
        self._reported.add(step)
        self.trial.report(point["mean"], step=step)
        if self.trial.should_prune():
            self.pruned = True
        return point

    def _on_step(self) -> bool:
        return super()._on_step() and not self.pruned

    def _on_training_end(self) -> None:
        if not self.pruned:  # a pruned trial needs no final point
            super()._on_training_end()


TRIALS_DIR = "trials"
"""Folder of the trials' training logs in ``run_dir`` (``trials/<number>/``)."""


def trial_logs(config: TuneConfig, number: int) -> Path:
    """The folder of trial ``number``'s training logs: ``<run_dir>/trials/<number>/``."""
    return Path(config.run_dir) / TRIALS_DIR / str(number)


def train_and_score(cfg: DictConfig, trial: Any = None) -> tuple[float, list[dict[str, float]]]:
    """Train the configured agent and return its mean evaluation return and learning curve.

    A trial's SB3 log goes to :func:`trial_logs` (``progress.csv``, TensorBoard in ``tb/``
    with ``tensorboard``); without a trial only ``verbose`` prints it.

    Raises:
        optuna.TrialPruned: when ``trial`` is given and the pruner stops it.
    """
    config = as_config(cfg, TuneConfig)
    agent = as_sb3_agent(config.agent, "tuning")
    seeds = make_seeds(config.seed, config.n_envs, config.eval)
    curve_episodes = check_curve_episodes(config.eval)

    set_random_seed(config.seed)
    torch.set_num_threads(config.torch_threads)

    venv = make_training_env(config.env, config.n_envs, config.seed, agent.normalize, agent.gamma)
    model = build_model(
        agent,
        venv,
        env_id=resolve_env_id(config.env),
        env_kwargs=env_kwargs(config.env),
        seed=config.seed,
        device=config.device,
    )
    if config.init_model is not None:  # every trial starts from the saved policy
        start_from(model, venv, agent, config.init_model, config.device)
    logs = trial_logs(config, trial.number) if trial is not None else None
    model.set_logger(training_logger(logs, tensorboard=config.tensorboard, verbose=config.verbose))
    # the curve and the score run on eval.scenarios when set (a validation source)
    curve_env = evaluation_env(config.env, config.eval, curve_episodes, venv, seeds.eval_start)
    eval_env = evaluation_env(config.env, config.eval, config.eval.episodes, venv, seeds.eval_start)
    args = (curve_env, seeds.eval_start, curve_episodes, config.eval.eval_freq)
    kwargs: dict[str, Any] = {"metrics": (), "deterministic": config.eval.deterministic}
    curve = (
        PruningCurve(trial, *args, **kwargs)
        if trial is not None
        else LearningCurveCallback(*args, **kwargs)
    )
    try:
        model.learn(total_timesteps=config.total_timesteps, callback=curve)
        if isinstance(curve, PruningCurve) and curve.pruned:
            raise optuna.TrialPruned(f"pruned at {curve.points[-1]['timesteps']:.0f} steps")
        if hasattr(venv, "obs_rms"):
            from agents.envs import sync_normalization

            sync_normalization(venv, eval_env)  # type: ignore[arg-type]
        result = run_episodes(
            model,
            eval_env,
            seeds.eval_start,
            seeds.episodes,
            deterministic=config.eval.deterministic,
        )
    finally:
        model.logger.close()  # its files and TensorBoard's writer thread
        for env in (venv, curve_env, eval_env):
            env.close()
    return float(result.returns.mean()), curve.points


class SurplusTrialError(RuntimeError):
    """A trial beyond ``tune.n_trials``: it trains nothing and its worker stops."""


def budget_used(study: Any, below: int | None = None) -> int:
    """The trials that count towards ``tune.n_trials``: complete, pruned and running ones.

    Args:
        study: the Optuna study.
        below: count only the trials numbered below it, waiting (enqueued) ones included: the
            trials created before trial ``below``, which run before or beside it.
    """
    state = optuna.trial.TrialState
    states = [state.COMPLETE, state.PRUNED, state.RUNNING]
    if below is not None:
        states.append(state.WAITING)
    trials = study.get_trials(deepcopy=False, states=tuple(states))
    return sum(1 for t in trials if below is None or t.number < below)


def over_budget(study: Any, trial: Any, n_trials: int) -> int | None:
    """The trials created before ``trial`` that count, when they fill ``n_trials``; else ``None``.

    Workers may create trials at the same moment, each after finding room for one more.
    Trials are numbered in the order they are created, so each one counts only those created
    before it (:func:`budget_used` with ``below``): of trials created together, the earlier
    ones run and the later ones give way, and the study never holds more than ``n_trials``
    complete, pruned or running trials.
    """
    used = budget_used(study, below=trial.number)
    return used if used >= n_trials else None


def _fail_stale_trials(study: Any) -> None:
    """Mark failed the running trials whose worker stopped beating (as ``optimize`` does)."""
    with warnings.catch_warnings():  # marked experimental, like the heartbeat
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite storage URL; ``None`` for another database or memory."""
    scheme, _, rest = url.partition("://")
    if scheme.split("+")[0] != "sqlite":
        return None
    database = rest[1:].partition("?")[0]  # sqlite:///<relative path>, sqlite:////<absolute>
    return Path(database) if database not in ("", ":memory:") else None


@contextlib.contextmanager
def study_lock(url: str) -> Iterator[None]:
    """Hold ``<file>.lock`` beside a SQLite storage: one worker at a time runs the block.

    Workers sharing a SQLite file take it for what SQLite does not make atomic across
    processes: creating the tables of a new file, looking for the defaults trial and enqueuing
    it, and taking a waiting trial (SQLite has no ``SELECT ... FOR UPDATE``, so two workers
    reading a trial as waiting would both run it). The lock is held by an open file, so the
    system releases it when a worker dies. Nothing is held for other databases (they lock rows
    themselves), for an in-memory one, or where :func:`~agents.jobs.file_lock` cannot lock.
    The lock is not re-entrant: a worker holding it must not take it again.
    """
    path = _sqlite_file(url)
    if path is None:
        yield
        return
    with file_lock(path.with_name(f"{path.name}.lock")):
        yield


class SharedStorage(optuna.storages.RDBStorage):
    """An RDB storage that workers sharing one SQLite file can open and take trials from at once.

    It creates the tables of a new file, and sets a waiting (enqueued) trial running, under
    :func:`study_lock`. Optuna takes a waiting trial by reading its state, then writing
    ``RUNNING``; SQLite does not make the two atomic, so two workers reading the same waiting
    trial would both run it. Under the lock the second reads it running and takes another.
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        with study_lock(url):  # workers opening a new file create its tables one at a time
            super().__init__(url, **kwargs)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        with study_lock(state["url"]):
            super().__setstate__(state)

    def set_trial_state_values(
        self,
        trial_id: int,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None = None,
    ) -> bool:
        if state != optuna.trial.TrialState.RUNNING:
            return super().set_trial_state_values(trial_id, state, values)
        with study_lock(self.url):  # only a trial still waiting is taken; False otherwise
            return super().set_trial_state_values(trial_id, state, values)


def _storage(url: str) -> SharedStorage:
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():  # heartbeats are marked experimental
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        # a worker killed mid-trial stops beating; its trial is marked failed after the grace
        return SharedStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=30, grace_period=120
        )


def run(cfg: DictConfig) -> dict[str, Any]:
    """Tune the configured agent (see the module) and write the best values as a preset.

    Args:
        cfg: a configuration composed from ``conf/tune.yaml``.

    Returns:
        ``{"best_value", "best_params", "default_value", "default_substituted", "preset",
        "usage", "trials", "pruned"}``; ``default_substituted`` maps each parameter the
        defaults trial could not take from the preset to ``(preset's value, value used)``.
    """
    config = as_config(cfg, TuneConfig)
    agent = as_sb3_agent(config.agent, "tuning")
    space = parse_search_space(config.search_space, type(agent))
    make_seeds(config.seed, config.n_envs, config.eval)  # fail early on a bad protocol
    check_curve_episodes(config.eval)
    sampler_seed = config.tune.sampler_seed
    if sampler_seed is None:  # numpy's RandomState takes seeds below 2**32
        sampler_seed = (config.seed * 100_003 + os.getpid()) % 2**32
    study = optuna.create_study(
        study_name=config.tune.name,
        storage=_storage(config.tune.storage),
        sampler=optuna.samplers.TPESampler(
            seed=sampler_seed, n_startup_trials=config.tune.startup_trials
        ),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=config.tune.pruner.startup_trials,
            n_warmup_steps=config.tune.pruner.warmup_steps,
        ),
        direction="maximize",
        load_if_exists=True,
    )
    defaults = defaults_trial(agent, space)
    n_trials = config.tune.n_trials

    def objective(trial: optuna.Trial) -> float:
        held = over_budget(study, trial, n_trials)
        if held is not None:  # another worker created its trial at the same moment
            study.stop()
            trial.set_user_attr("surplus", True)
            raise SurplusTrialError(
                f"tune.n_trials: {held} trials were complete, pruned, running or waiting "
                f"before trial {trial.number}, the study's limit of {n_trials}; the trial "
                "trains nothing and this worker stops"
            )
        values = suggest_values(trial, space)
        trial.set_user_attr("worker", os.getpid())
        value, points = train_and_score(apply_values(cfg, values), trial)
        trial.set_user_attr("curve", points)
        log.info("trial %d: %.2f with %s", trial.number, value, values)
        return value

    def stop_at_budget(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        _fail_stale_trials(study)  # a killed worker's trial leaves the budget
        if budget_used(study) >= n_trials:  # the other workers' running trials included
            study.stop()

    _fail_stale_trials(study)
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    used = budget_used(study)
    log.info(
        "study %r in %s: %d trials so far, %d finished, %d running; this worker runs trials "
        "while fewer than %d are finished or running",
        config.tune.name,
        config.tune.storage,
        len(trials),
        sum(t.state in (state.COMPLETE, state.PRUNED) for t in trials),
        sum(t.state == state.RUNNING for t in trials),
        n_trials,
    )
    # Optuna checks the callback after a trial: a study at its limit would get one more
    if used < n_trials:
        if config.tune.enqueue_defaults and defaults:
            with study_lock(config.tune.storage):  # one worker at a time looks, then enqueues
                enqueue_defaults(study, trial_params(defaults, space))
        study.optimize(
            objective,
            callbacks=[stop_at_budget],
            timeout=config.tune.timeout,
            catch=(SurplusTrialError,),
            gc_after_trial=True,
        )
    return _summarise(study, config, agent, space)


def enqueue_defaults(study: Any, params: dict[str, Any]) -> bool:
    """Enqueue the defaults trial unless the study holds it waiting, running or finished.

    A defaults trial that failed (its worker interrupted, or killed and found stale by the
    heartbeat) is enqueued again, so a resumed study still measures the preset's own values.
    Workers sharing a SQLite study call it under :func:`study_lock`, so that of workers
    starting together only one enqueues the trial.

    Returns:
        Whether the trial was enqueued.
    """
    _fail_stale_trials(study)  # as optimize does before each trial
    live = (
        optuna.trial.TrialState.WAITING,
        optuna.trial.TrialState.RUNNING,
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
    )
    if any(
        t.state in live
        and t.user_attrs.get("defaults")
        and t.system_attrs.get("fixed_params", t.params) == params
        for t in study.get_trials(deepcopy=False)
    ):
        return False
    study.enqueue_trial(params, user_attrs={"defaults": True})
    return True


def _summarise(
    study: Any, config: TuneConfig, agent: SB3AgentConfig, space: dict[str, ParamSpec]
) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(f"study {config.tune.name!r}: no complete trial yet; nothing to write")
    best = study.best_trial
    best_values = decode_params(best.params, space)
    default_trials = [t for t in complete if t.user_attrs.get("defaults")]
    default_value = default_trials[0].value if default_trials else None
    subs = (
        substituted(agent, space, decode_params(default_trials[0].params, space))
        if default_trials
        else {}
    )
    scored = (
        f"the preset's own values scored {default_value:.2f}"
        + (f" (with {describe_substitutions(subs)}: outside the search space)" if subs else "")
        if default_value is not None
        else ""
    )
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    usage = preset_usage(config)
    header = (
        f"{agent.name} tuned by lepton-tune on {config.env.id} ({config.env.name}): study "
        f"{config.tune.name!r},\ntrial {best.number} of {len(trials)}: mean evaluation return "
        f"{best.value:.2f} over {config.eval.episodes} episodes after {config.total_timesteps} "
        f"steps (seed {config.seed})" + (f";\n{scored}" if scored else "") + f".\n{usage}"
    )
    path = write_preset(
        preset_dir(config) / f"{config.tune.preset}.yaml",
        agent,
        best_values,
        config.tune.preset,
        header,
    )
    print(
        f"study {config.tune.name!r}: {len(complete)} complete, {pruned} pruned, "
        f"{len(trials)} trials in all"
    )
    if default_value is not None:
        print(f"defaults ({agent.name}): {default_value:.2f}")
        if subs:
            print(f"  the defaults trial ran with {describe_substitutions(subs)}")
    print(f"best (trial {best.number}): {best.value:.2f} with {best_values}")
    print(f"preset: {path}")
    print(usage)
    return {
        "best_value": best.value,
        "best_params": best_values,
        "default_value": default_value,
        "default_substituted": subs,
        "preset": path,
        "usage": usage,
        "trials": len(trials),
        "pruned": pruned,
    }
