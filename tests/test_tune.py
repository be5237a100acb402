"""lepton-tune: search spaces from config, Optuna sampling, the shared study, preset writing."""

import contextlib
import csv
import json
import multiprocessing
import threading
import traceback
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict
from optuna.storages._rdb.models import TrialModel
from sqlalchemy.dialects.sqlite.base import SQLiteDialect

from agents import tune
from agents.config import as_config
from conf.schema import (
    A2CConfig,
    DQNConfig,
    ParamSpec,
    ParamType,
    PPOConfig,
    SACConfig,
    TrainConfig,
    TuneConfig,
)

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_tune_config_composes_with_every_search_space(make_cfg):
    for space in sorted(p.stem for p in (CONF / "search_space").glob("*.yaml")):
        cfg = make_cfg("tune", [f"agent={space}", f"search_space={space}"])
        config = as_config(cfg, TuneConfig)
        parsed = tune.parse_search_space(config.search_space, type(config.agent))
        assert parsed and list(parsed) == sorted(parsed)
        assert config.tune.name == f"{space}_inventory"
        assert config.tune.preset == f"{space}_tuned_inventory"
        assert config.tune.storage == f"sqlite:///runs/tune/{space}_inventory.db"


@pytest.mark.parametrize(
    ("space", "match"),
    [
        (
            {"learning_rat": ParamSpec(low=1e-4, high=1e-3)},
            r"search_space.learning_rat: not a tunable field of PPOConfig.*Did you mean: learning_rate",
        ),
        ({"learning_rate": ParamSpec(low=1e-3, high=1e-4)}, "needs low < high"),
        ({"learning_rate": ParamSpec(high=1e-4)}, "needs 'low' and 'high'"),
        (
            {"learning_rate": ParamSpec(low=1e-5, high=1e-3, log=True, step=1e-5)},
            "cannot be combined",
        ),
        ({"ent_coef": ParamSpec(low=0.0, high=0.1, log=True)}, "a log scale needs low > 0"),
        ({"n_steps": ParamSpec(type=ParamType.categorical, choices=[])}, "non-empty 'choices'"),
        (
            {"n_epochs": ParamSpec(type=ParamType.int, low=3, high=10, step=0)},
            r"search_space.n_epochs: needs step > 0",
        ),
        (
            {"n_epochs": ParamSpec(type=ParamType.int, low=3.5, high=10)},
            r"search_space.n_epochs: type int needs whole numbers, got \{'low': 3.5\}",
        ),
        ({"algo": ParamSpec(type=ParamType.categorical, choices=["a2c"])}, "not a tunable field"),
        ({}, "search_space: empty"),
    ],
)
def test_bad_search_spaces_name_the_field(space, match):
    with pytest.raises(ValueError, match=match):
        tune.parse_search_space(space, PPOConfig)


def test_a_space_of_another_algorithm_names_the_one_to_use(make_cfg):
    ppo_space = as_config(make_cfg("tune", []), TuneConfig).search_space
    with pytest.raises(ValueError, match=r"of A2CConfig.* another algorithm; use search_space=a2c"):
        tune.parse_search_space(ppo_space, A2CConfig)
    with pytest.raises(ValueError, match=r"of DQNConfig.* conf/search_space/ has none for dqn"):
        tune.parse_search_space(ppo_space, DQNConfig)


def test_nested_fields_and_categorical_lists_round_trip():
    space = tune.parse_search_space(
        {
            "policy_kwargs.net_arch": ParamSpec(
                type=ParamType.categorical, choices=[[64, 64], [8]]
            ),
            "n_epochs": ParamSpec(type=ParamType.int, low=2, high=6),
            "learning_rate": ParamSpec(low=1e-4, high=1e-2, log=True),
        },
        PPOConfig,
    )
    trial = optuna.trial.FixedTrial(
        {"policy_kwargs.net_arch": "[8]", "n_epochs": 4, "learning_rate": 1e-3}
    )
    values = tune.suggest_values(trial, space)
    assert values == {"learning_rate": 1e-3, "n_epochs": 4, "policy_kwargs.net_arch": [8]}
    assert tune.decode_params(tune.trial_params(values, space), space) == values
    # the defaults trial enqueues the preset's own values (plain data, nested keys read), a
    # number outside its range as it is; a categorical value outside the choices is left out
    ppo = PPOConfig(name="ppo")
    own = {"policy_kwargs.net_arch": [64, 64], "n_epochs": 10, "learning_rate": 3e-4}
    assert tune.preset_values(ppo, space) == own
    assert tune.defaults_trial(ppo, space) == own
    narrow = {
        **space,
        "policy_kwargs.net_arch": ParamSpec(type=ParamType.categorical, choices=[[8]]),
    }
    assert tune.defaults_trial(ppo, narrow) == {"n_epochs": 10, "learning_rate": 3e-4}


def test_written_preset_composes_as_an_agent(tmp_path, make_cfg):
    base = as_config(make_cfg("config", ["agent=sac"], tiny=False), TrainConfig).agent
    assert isinstance(base, SACConfig)
    values = {"learning_rate": 1e-3, "policy_kwargs.net_arch": [32, 32], "train_freq": 4}
    path = tune.write_preset(
        tmp_path / "agent" / "sac_tuned_test.yaml",
        base,
        values,
        "sac_tuned_test",
        "a header\nline two",
    )
    text = path.read_text()
    assert text.startswith("# a header\n# line two\ndefaults:\n  - /schema/agent/sac@_here_")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[f"hydra.searchpath=[file://{tmp_path}]", "agent=sac_tuned_test"],
        )
    GlobalHydra.instance().clear()
    agent = as_config(cfg, TrainConfig).agent
    assert isinstance(agent, SACConfig) and agent.name == "sac_tuned_test"
    assert agent.learning_rate == 1e-3 and agent.train_freq == 4
    assert list(agent.policy_kwargs.net_arch) == [32, 32]
    assert agent.buffer_size == base.buffer_size  # everything else as in the base preset


def test_two_runs_share_one_study_and_write_the_best_preset(make_cfg, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    overrides = [
        f"tune.storage={storage}",
        f"tune.preset_dir={tmp_path / 'agent'}",
        "tune.n_trials=2",
        "tune.sampler_seed=0",
        "total_timesteps=128",
        "eval.eval_freq=64",
    ]

    def worker(*extra):
        cfg = make_cfg("tune", [*overrides, *extra])
        with open_dict(cfg):  # a one-parameter space keeps the trials short
            for key in [k for k in cfg.search_space if k != "learning_rate"]:
                del cfg.search_space[key]
        return tune.run(cfg)

    first = worker(f"run_dir={tmp_path / 'first'}")
    assert first["trials"] == 2 and first["default_value"] is not None
    # joins the study
    second = worker("tune.n_trials=3", f"run_dir={tmp_path / 'second'}", "tensorboard=true")
    assert second["trials"] == 3
    # each trial's SB3 log is in its worker's run folder, with TensorBoard where asked for
    logs = {"first": ["0", "1"], "second": ["2"]}
    for run_dir, numbers in logs.items():
        trials = tmp_path / run_dir / "trials"
        assert sorted(p.name for p in trials.iterdir()) == numbers
        for number in numbers:
            with open(trials / number / "progress.csv") as fh:
                steps = [float(row["time/total_timesteps"]) for row in csv.DictReader(fh)]
            assert steps and max(steps) <= 128
            events = list((trials / number).glob("tb/events.out.tfevents.*"))
            assert bool(events) == (run_dir == "second")
    study = optuna.load_study(study_name="ppo_inventory", storage=storage)
    assert len(study.trials) == 3
    assert study.trials[0].params == {"learning_rate": 3e-4}  # the preset's own value first
    assert all(t.user_attrs["curve"] for t in study.trials)
    preset = tmp_path / "agent" / "ppo_tuned_inventory.yaml"
    assert second["preset"] == preset
    saved = OmegaConf.load(preset)
    assert saved.name == "ppo_tuned_inventory"
    assert saved.learning_rate == pytest.approx(study.best_params["learning_rate"])
    assert second["best_value"] == pytest.approx(study.best_value)
    assert json.dumps(second["best_params"])


def test_a_resumed_study_measures_the_defaults_and_stops_at_n_trials(make_cfg, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    overrides = [
        f"tune.storage={storage}",
        f"tune.preset_dir={tmp_path / 'agent'}",
        "tune.n_trials=1",
        "tune.sampler_seed=0",
        "total_timesteps=64",
        "eval.eval_freq=64",
    ]
    cfg = make_cfg("tune", overrides)
    with open_dict(cfg):
        for key in [k for k in cfg.search_space if k != "learning_rate"]:
            del cfg.search_space[key]
    # a worker interrupted in the defaults trial: Optuna marks it failed
    study = optuna.create_study(study_name="ppo_inventory", storage=storage)
    study.enqueue_trial({"learning_rate": 3e-4}, user_attrs={"defaults": True})
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)

    resumed = tune.run(cfg)
    assert resumed["trials"] == 2 and resumed["default_value"] is not None
    trials = optuna.load_study(study_name="ppo_inventory", storage=storage).trials
    assert trials[1].params == {"learning_rate": 3e-4} and trials[1].user_attrs["defaults"]
    again = tune.run(cfg)  # the study holds tune.n_trials finished trials: none is added
    assert again["trials"] == 2


def _cheap_tuning(make_cfg, tmp_path, monkeypatch, n_trials, *extra):
    """A study of ``n_trials`` whose trials train nothing.

    :func:`agents.tune.train_and_score` is replaced: it records the trial's number and returns
    ``score["trial"](trial)`` (default: the trial's number), which a test may replace to decide
    when each trial ends.

    Returns:
        The config, the numbers of the trials that trained, and ``score``.
    """
    cfg = make_cfg(
        "tune",
        [
            f"tune.storage=sqlite:///{tmp_path / 'study.db'}",
            f"tune.preset_dir={tmp_path / 'agent'}",
            f"tune.n_trials={n_trials}",
            "tune.sampler_seed=0",
            *extra,
        ],
    )
    with open_dict(cfg):
        for key in [k for k in cfg.search_space if k != "learning_rate"]:
            del cfg.search_space[key]
    trained: list[int] = []
    score = {"trial": lambda trial: float(trial.number)}

    def train_and_score(trial_cfg, trial):
        trained.append(trial.number)
        return score["trial"](trial), [{"timesteps": 0.0, "mean": 0.0, "std": 0.0}]

    monkeypatch.setattr(tune, "train_and_score", train_and_score)
    return cfg, trained, score


def _counted(storage):
    study = optuna.load_study(study_name="ppo_inventory", storage=storage)
    state = optuna.trial.TrialState
    return [t for t in study.trials if t.state in (state.COMPLETE, state.PRUNED, state.RUNNING)]


def test_two_parallel_workers_run_no_more_than_n_trials(make_cfg, tmp_path, monkeypatch):
    # every trial is created, none enqueued (test_parallel_workers_* cover the queue)
    no_queue = "tune.enqueue_defaults=false"
    cfg, trained, score = _cheap_tuning(make_cfg, tmp_path, monkeypatch, 2, no_queue)
    both_running = threading.Barrier(2, timeout=60)
    release = threading.Event()

    def ordered(trial):
        if trial.number < 2:  # each worker holds one of the first two trials at once
            both_running.wait()
        if trial.number == 1:  # and trial 1 ends after the other worker has chosen its next
            release.wait(timeout=60)
        return float(trial.number)

    score["trial"] = ordered
    with ThreadPoolExecutor(2) as pool:
        workers = [pool.submit(tune.run, cfg.copy()) for _ in range(2)]
        done, _ = wait(workers, return_when=FIRST_COMPLETED, timeout=120)
        assert done, "no worker finished"
        release.set()
        results = [w.result(timeout=120) for w in workers]
    assert sorted(trained) == [0, 1]
    study = optuna.load_study(study_name="ppo_inventory", storage=cfg.tune.storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert results[0]["preset"] == results[1]["preset"]


def test_a_resumed_study_counts_the_trials_other_workers_run(make_cfg, tmp_path, monkeypatch):
    cfg, trained, _ = _cheap_tuning(make_cfg, tmp_path, monkeypatch, 2)
    study = optuna.create_study(
        study_name="ppo_inventory", storage=cfg.tune.storage, direction="maximize"
    )
    study.tell(study.ask(), 1.0)
    study.ask()  # another worker's trial, still running
    result = tune.run(cfg)
    assert trained == [] and result["trials"] == 2
    assert len(_counted(cfg.tune.storage)) == 2


def test_a_trial_created_beside_another_worker_s_last_one_trains_nothing(
    make_cfg, tmp_path, monkeypatch
):
    cfg, trained, _ = _cheap_tuning(make_cfg, tmp_path, monkeypatch, 2)
    study = optuna.create_study(
        study_name="ppo_inventory", storage=cfg.tune.storage, direction="maximize"
    )
    study.tell(study.ask(), 1.0)

    def another_worker_starts(study, params):  # between this worker's check and its trial
        optuna.load_study(study_name="ppo_inventory", storage=cfg.tune.storage).ask()
        return False

    monkeypatch.setattr(tune, "enqueue_defaults", another_worker_starts)
    tune.run(cfg)
    assert trained == []
    trials = optuna.load_study(study_name="ppo_inventory", storage=cfg.tune.storage).trials
    assert len(trials) == 3 and len(_counted(cfg.tune.storage)) == 2
    assert trials[2].state == optuna.trial.TrialState.FAIL and trials[2].user_attrs["surplus"]


# --- workers in separate processes sharing one SQLite file ------------------------------------

WORKERS = 3
WINDOW_S = 5.0
"""How long the first worker waits in a widened race window for the others to join it."""


def _in_processes(tmp_path, n, work):
    """Run ``work()`` in ``n`` forked processes that start it together.

    Returns:
        The traceback of each process that raised (empty when none did).
    """
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(n)

    def worker(i):
        try:
            start.wait(timeout=60)
            work()
        except BaseException:
            (tmp_path / f"worker{i}.error").write_text(traceback.format_exc())
            raise

    processes = [ctx.Process(target=worker, args=(i,)) for i in range(n)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    hung = [p for p in processes if p.is_alive()]
    for process in hung:
        process.kill()
    assert not hung, f"{len(hung)} of {n} workers did not finish"
    return [f.read_text() for f in sorted(tmp_path.glob("worker*.error"))]


def _meeting(barrier):
    """Wait for every worker at ``barrier``; once one has waited ``WINDOW_S`` in vain, none waits."""
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=WINDOW_S)


def _training_together(tmp_path, score, n):
    """Trials that log their number to ``trained.txt`` and end once ``n`` are training at once."""
    log = tmp_path / "trained.txt"
    all_training = multiprocessing.get_context("fork").Barrier(n)

    def train(trial):
        with open(log, "a") as out:
            out.write(f"{trial.number}\n")
        with contextlib.suppress(threading.BrokenBarrierError):
            all_training.wait(timeout=30)
        return float(trial.number)

    score["trial"] = train
    return lambda: sorted(int(line) for line in log.read_text().split())


def test_parallel_workers_on_a_new_sqlite_file_create_its_tables_once(
    make_cfg, tmp_path, monkeypatch
):
    cfg, _, score = _cheap_tuning(make_cfg, tmp_path, monkeypatch, WORKERS)
    trained = _training_together(tmp_path, score, WORKERS)
    # every worker finds the file without tables before any creates them
    checked = multiprocessing.get_context("fork").Barrier(WORKERS)
    has_table = SQLiteDialect.has_table

    def has_table_together(self, connection, table_name, schema=None, **kw):
        found = has_table(self, connection, table_name, schema=schema, **kw)
        if not found:
            _meeting(checked)
        return found

    monkeypatch.setattr(SQLiteDialect, "has_table", has_table_together)
    errors = _in_processes(tmp_path, WORKERS, lambda: tune.run(cfg.copy()))
    assert errors == []
    assert trained() == list(range(WORKERS))
    study = optuna.load_study(study_name="ppo_inventory", storage=cfg.tune.storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * WORKERS


def test_parallel_workers_enqueue_one_defaults_trial(make_cfg, tmp_path, monkeypatch):
    cfg, _, score = _cheap_tuning(make_cfg, tmp_path, monkeypatch, WORKERS)
    trained = _training_together(tmp_path, score, WORKERS)
    optuna.create_study(study_name="ppo_inventory", storage=cfg.tune.storage, direction="maximize")
    # every worker finds no defaults trial before any enqueues it
    looked = multiprocessing.get_context("fork").Barrier(WORKERS)
    enqueue_trial = optuna.Study.enqueue_trial

    def enqueue_together(self, *args, **kwargs):
        _meeting(looked)
        return enqueue_trial(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "enqueue_trial", enqueue_together)
    errors = _in_processes(tmp_path, WORKERS, lambda: tune.run(cfg.copy()))
    study = optuna.load_study(study_name="ppo_inventory", storage=cfg.tune.storage)
    defaults = [t.number for t in study.trials if t.user_attrs.get("defaults")]
    assert defaults == [0] and study.trials[0].params == {"learning_rate": 3e-4}
    assert errors == []
    assert trained() == list(range(WORKERS))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * WORKERS


def test_parallel_workers_run_each_enqueued_trial_once(make_cfg, tmp_path, monkeypatch):
    no_defaults = "tune.enqueue_defaults=false"
    cfg, _, score = _cheap_tuning(make_cfg, tmp_path, monkeypatch, WORKERS, no_defaults)
    trained = _training_together(tmp_path, score, WORKERS)
    study = optuna.create_study(
        study_name="ppo_inventory", storage=cfg.tune.storage, direction="maximize"
    )
    for k in range(WORKERS):
        study.enqueue_trial({"learning_rate": 1e-4 * (k + 1)})
    # every worker reads the first waiting trial before any sets it running
    read = multiprocessing.get_context("fork").Barrier(WORKERS)
    find = TrialModel.find_or_raise_by_id.__func__

    def find_together(cls, trial_id, session, for_update=False):
        trial = find(cls, trial_id, session, for_update)
        if for_update and trial.state == optuna.trial.TrialState.WAITING:
            _meeting(read)
        return trial

    monkeypatch.setattr(TrialModel, "find_or_raise_by_id", classmethod(find_together))
    errors = _in_processes(tmp_path, WORKERS, lambda: tune.run(cfg.copy()))
    assert trained() == list(range(WORKERS))  # each trial once
    assert errors == []
    trials = optuna.load_study(study_name="ppo_inventory", storage=cfg.tune.storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * WORKERS
    assert [t.params["learning_rate"] for t in trials] == pytest.approx([1e-4, 2e-4, 3e-4])


def test_more_curve_episodes_than_evaluation_episodes_are_refused_before_a_trial(
    make_cfg, tmp_path
):
    storage = tmp_path / "study.db"
    cfg = make_cfg(
        "tune",
        [f"tune.storage=sqlite:///{storage}", "eval.episodes=4", "eval.curve_episodes=8"],
    )
    with pytest.raises(ValueError, match=r"eval\.curve_episodes: must be <= eval\.episodes"):
        tune.run(cfg)
    assert not storage.exists()  # refused before the study was created
