"""Adversarial scenario search: regret, the CEM over a generator's noise, the replay buffer and
source, the `env.scenarios=adversarial:<folder>` hook, the curriculum in training (and resumed
from a checkpoint) and `lepton-generate adversarial`."""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import shutil
from collections.abc import Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from agents.checkpoints import latest_checkpoint
from agents.config import as_config
from agents.envs import make_vec_env
from agents.generate import run
from agents.generators.adversarial import (
    AdversarialCurriculum,
    AdversarialSearch,
    AdversarialSource,
    ScenarioBuffer,
    regret,
)
from agents.generators.base import ScenarioGenerator
from agents.generators.codecs import realise_demand
from agents.generators.registry import get_family
from agents.generators.simple import ParametricGenerator
from agents.policies import make_baseline, reference_baseline
from conf.schema import AdversarialSettings, TrainConfig
from envs.core.baselines import baseline_registry
from envs.core.sb3 import make_sb3_vec_env
from envs.core.scenario import ScenarioList
from envs.ops.inventory.scenario import PRESETS


# --- a toy family: features are the scenario; the latent is the features ---------------------
class BoxCodec:
    """Vectors in [-3, 3]^dim are scenarios (as tuples); anything else is invalid."""

    name = "box"
    dim = 4
    structure = (0.0,) * 4

    def encode(self, scenario: tuple[float, ...]) -> np.ndarray:
        return np.asarray(scenario, dtype=np.float64)

    def decode(self, features: np.ndarray) -> tuple[float, ...] | None:
        x = np.asarray(features, dtype=np.float64)
        return None if (np.abs(x) > 3).any() else tuple(float(v) for v in x)


class IdentityLatent(ScenarioGenerator[tuple[float, ...]]):
    """Features = the standard-normal noise itself."""

    kind: ClassVar[str] = ""
    latent_dim = 4

    def _fit(self, features: np.ndarray, labels: np.ndarray | None) -> None:
        return None

    def features_from_noise(
        self, z: np.ndarray, label: Hashable | None = None, rng: Any = None
    ) -> np.ndarray:
        return np.asarray(z, dtype=np.float64)

    def sample_features(
        self, n: int, rng: np.random.Generator, label: Hashable | None = None
    ) -> np.ndarray:
        return rng.standard_normal((n, 4))

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {}

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        return None


TARGET = np.array([2.0, -2.0, 2.0, 2.9])


def toy_score(scenarios: Sequence[tuple[float, ...]]) -> np.ndarray:
    return -((np.asarray(scenarios) - TARGET) ** 2).sum(axis=1)


def toy_generator() -> IdentityLatent:
    return IdentityLatent(BoxCodec()).fit_features(np.zeros((2, 4)))


def test_cem_beats_random_samples_and_counts_invalid_decodes() -> None:
    gen = toy_generator()
    search = AdversarialSearch(gen, population=64, iterations=12, lam=0.0)
    assert search.method == "cem"
    result = search.run(toy_score, np.random.default_rng(0), top_k=5)
    first = [c.objective for c in result.evaluated[:64]]  # iteration 0: draws from the prior
    assert result.found[0].objective > max(first) + 1.0
    assert result.best_per_iteration == sorted(result.best_per_iteration)
    assert result.mean_per_iteration[-1] > result.mean_per_iteration[0] + 5.0
    assert result.found[0].objective > -1.0  # close to the target (prior best: about -10)
    # the target lies next to the codec's box: later rounds cross it
    assert result.rejected > 0 and result.proposed == 64 * 12
    assert gen.stats.rejected == result.rejected
    objectives = [c.objective for c in result.found]
    assert objectives == sorted(objectives, reverse=True) and len(result.found) == 5
    # the realism penalty pulls the finds towards the prior
    pulled = AdversarialSearch(gen, population=64, iterations=12, lam=50.0)
    near = pulled.run(toy_score, np.random.default_rng(0), top_k=1).found[0]
    assert np.sum(near.latent**2) < np.sum(result.found[0].latent ** 2)
    # the same seed gives the same search
    again = search.run(toy_score, np.random.default_rng(0), top_k=5)
    assert [c.scenario for c in again.found] == [c.scenario for c in result.found]


def test_generators_without_latent_fall_back_to_random_search() -> None:
    gen = ParametricGenerator.from_ranges(BoxCodec(), -4.0, 4.0)
    search = AdversarialSearch(gen, population=50, iterations=4)
    assert search.method == "random"
    result = search.run(toy_score, np.random.default_rng(1), top_k=3)
    assert result.proposed == 200 and 0 < result.rejected < 200
    assert all(c.latent is None and c.objective == c.regret for c in result.found)
    assert result.found[0].regret == max(c.regret for c in result.evaluated)
    with pytest.raises(ValueError, match=r"method: 'cem' needs a generator with a latent"):
        AdversarialSearch(gen, method="cem")
    with pytest.raises(ValueError, match=r"method: 'bogus' is not allowed; allowed: \('auto'"):
        AdversarialSearch(gen, method="bogus")


def test_buffer_keeps_top_k_by_regret_and_rescores() -> None:
    buf: ScenarioBuffer[str] = ScenarioBuffer(capacity=3, replay_prob=0.25)
    buf.add(["a", "b", "c", "d"], [1.0, 5.0, 3.0, -2.0])
    assert buf.scenarios == ["b", "c", "a"] and buf.regrets.tolist() == [5.0, 3.0, 1.0]
    buf.add(["a", "e"], [10.0, 0.0])  # a scenario held takes its new score
    assert buf.scenarios == ["a", "b", "c"]
    buf.rescore([0.0, 1.0, 2.0])  # in the order of .scenarios
    assert buf.scenarios == ["c", "b", "a"]
    rng = np.random.default_rng(0)
    drawn = {buf.sample(rng) for _ in range(100)}
    assert drawn == {"a", "b", "c"}
    with pytest.raises(ValueError, match=r"replay_prob: must be in \[0, 1\]"):
        ScenarioBuffer(replay_prob=1.5)
    with pytest.raises(ValueError, match=r"capacity: must be >= 1"):
        ScenarioBuffer(capacity=0)
    with pytest.raises(ValueError, match=r"regrets: expected one per buffered scenario \(3\)"):
        buf.rescore([1.0])


def test_source_replays_the_buffer_with_its_probability() -> None:
    base = ScenarioList(["x", "y"])
    source = AdversarialSource(base, ScenarioBuffer(capacity=4, replay_prob=0.3))
    assert source.structure == "x"
    # empty buffer: exactly the base's draws
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert [source.sample(a) for _ in range(20)] == [base.sample(b) for _ in range(20)]
    source.buffer.add(["hard"], [7.0])
    rng = np.random.default_rng(0)
    draws = [source.sample(rng) for _ in range(4000)]
    assert abs(draws.count("hard") / 4000 - 0.3) < 0.03
    assert set(draws) == {"hard", "x", "y"}


# --- regret on the supply chain --------------------------------------------------------------
def test_regret_of_a_random_agent_against_base_stock_is_positive() -> None:
    venv = make_sb3_vec_env("lepton/Inventory-v0", 6, scenario="serial4")
    base_stock = make_baseline("base_stock", venv, seed=0, fit_seeds=range(4))
    random_agent = make_baseline("random", venv, seed=0, fit_seeds=[])
    scenarios = realise_demand([PRESETS["serial4"]], np.random.default_rng(0), per_scenario=4)
    r = regret(random_agent, base_stock, venv, scenarios, episodes=2, seed=10)
    assert r.shape == (4,) and (r > 0).all()
    assert np.allclose(regret(base_stock, base_stock, venv, scenarios), 0.0)
    # each replica ran its own scenario
    venv.set_options([{"scenario": sc} for sc in scenarios] + [{}, {}])
    venv.reset()
    assert [s.demand.series for s in venv.runner.sim.scenarios[:4]] == [
        s.demand.series for s in scenarios
    ]


# --- the env hook, training and the command --------------------------------------------------
def compose_root(name: str, overrides: Sequence[str]) -> Any:
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose(name, overrides=list(overrides))


@pytest.fixture(scope="module")
def parametric(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gen") / "inventory_parametric"
    run(
        compose_root(
            "generate",
            [
                "command=fit",
                "family=inventory",
                "kind=parametric",
                "n_data=60",
                "splits=10",
                "plot_samples=20",
                f"out_dir={folder}",
            ],
        )
    )
    return folder


SMALL_CURRICULUM = (
    "baselines=[base_stock]",
    "adversarial.population=6",
    "adversarial.iterations=2",
    "adversarial.fit_episodes=2",
    "adversarial.buffer_size=4",
    "adversarial.refresh_freq=64",
)
"""A small adversarial search: 6 candidates, 2 iterations, a buffer of 4, every 64 steps."""


def test_env_scenarios_adversarial_builds_an_env(parametric, tmp_path) -> None:
    cfg = compose_root("config", [f"run_dir={tmp_path}", f"env.scenarios=adversarial:{parametric}"])
    config = as_config(cfg, TrainConfig)
    venv = make_vec_env(config.env, 3, seed=0)
    source = venv.get_attr("source")[0]
    assert isinstance(source, AdversarialSource) and len(source.buffer) == 0
    assert source.structure.name == "serial4"  # the env's own: models trained on it fit
    assert source.family is get_family("inventory")  # its defaults fill the search settings
    venv.reset()
    assert all(sc.demand.kind == "series" for sc in venv.runner.sim.scenarios)
    for spec, match in [
        ("adversarial", r"env\.scenarios: 'adversarial' is not allowed; allowed: gan:<folder>, "),
        ("adversarial:", r"allowed: gan:<folder>, adversarial:<folder>, real:<folder>@<k>, "),
        (f"adversarial:{tmp_path / 'none'}", r"env\.scenarios: .*holds no generator\.json"),
    ]:
        cfg = compose_root("config", [f"run_dir={tmp_path}", f"env.scenarios={spec}"])
        with pytest.raises(ValueError, match=match):
            make_vec_env(as_config(cfg, TrainConfig).env, 2)


def test_search_settings_left_null_take_the_familys_defaults() -> None:
    unset = AdversarialSettings()
    assert unset.lam is None and unset.episodes is None
    for name, lam, episodes in [
        ("inventory", 20.0, 1),
        ("autoscale", 20.0, 1),
        ("recsys", 0.5, 32),
    ]:
        filled = get_family(name).adversarial_settings(unset)
        assert (filled.lam, filled.episodes) == (lam, episodes), name
        assert filled.population == unset.population  # the other settings as given
    given = dataclasses.replace(unset, lam=3.0, episodes=2)
    assert get_family("recsys").adversarial_settings(given) == given


def test_training_alternates_search_and_updates(parametric, make_cfg) -> None:
    from agents.train import run as train

    cfg = make_cfg("config", [f"env.scenarios=adversarial:{parametric}", *SMALL_CURRICULUM])
    metrics = train(cfg)
    assert np.isfinite(metrics["ppo"]["return"]["mean"])
    progress = (Path(cfg.run_dir) / "progress.csv").read_text()
    assert "adversarial/buffer_mean_regret" in progress
    bad = make_cfg("config", [f"env.scenarios=adversarial:{parametric}", "adversarial.method=x"])
    with pytest.raises(ValueError, match=r"adversarial\.method: 'x' is not allowed"):
        train(bad)


# --- a curriculum resumed from a checkpoint ---------------------------------------------------
CURRICULUM = (
    "total_timesteps=384",
    "checkpoint_freq=256",
    "eval.eval_freq=128",
    *SMALL_CURRICULUM,
    # the searches score the agent through the training normalisation, which the resumed run's
    # fresh episodes update: without it a search depends on the model alone
    "agent.normalize.obs=false",
    "agent.normalize.reward=false",
)
"""Rollouts of 128 steps (4 replicas x 32), searches every 64 steps, a checkpoint at step 256."""


class Interrupted(Exception):
    """Stands in for the end of a killed run."""


def _snapshot(curriculum: AdversarialCurriculum) -> dict[str, Any]:
    """What the curriculum holds now: buffered scenarios and regrets, counters, searches."""
    source = curriculum.source
    return {
        "scenarios": source.buffer.scenarios,
        "regrets": source.buffer.regrets.tolist(),
        "drawn": source.drawn,
        "replayed": source.replayed,
        "searches": [dict(point) for point in curriculum.history],
    }


def _saved(state: dict[str, Any]) -> dict[str, Any]:
    """A saved :meth:`~AdversarialCurriculum.state_dict` as a :func:`_snapshot`."""
    source = state["source"]
    return {
        "scenarios": source["buffer"]["scenarios"],
        "regrets": source["buffer"]["regrets"],
        "drawn": source["drawn"],
        "replayed": source["replayed"],
        "searches": state["history"],
    }


class Searches:
    """Records the curriculum when training starts and after each of its searches.

    Attributes:
        events: ``(what, step, snapshot)``: ``what`` is ``start`` or ``search``, ``snapshot``
            what :func:`_snapshot` says then.
        stop_after: a search at this step or later ends training (:class:`Interrupted`) after
            it changed the buffer.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, int, dict[str, Any]]] = []
        self.stop_after: int | None = None
        start, refresh = AdversarialCurriculum._on_training_start, AdversarialCurriculum.refresh

        def on_start(curriculum: AdversarialCurriculum) -> None:
            self.events.append(("start", curriculum.num_timesteps, _snapshot(curriculum)))
            start(curriculum)

        def on_refresh(curriculum: AdversarialCurriculum) -> Any:
            result = refresh(curriculum)
            self.events.append(("search", curriculum.num_timesteps, _snapshot(curriculum)))
            if self.stop_after is not None and curriculum.num_timesteps >= self.stop_after:
                raise Interrupted(curriculum.num_timesteps)
            return result

        monkeypatch.setattr(AdversarialCurriculum, "_on_training_start", on_start)
        monkeypatch.setattr(AdversarialCurriculum, "refresh", on_refresh)

    def take(self) -> list[tuple[str, int, dict[str, Any]]]:
        """The events so far, which are then forgotten."""
        events, self.events = self.events, []
        return events

    def searches(self, events: list[tuple[str, int, dict[str, Any]]]) -> dict[int, dict[str, Any]]:
        return {step: state for what, step, state in events if what == "search"}


@pytest.fixture(scope="module")
def curriculum_runs(parametric, composer, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The curriculum run of :data:`CURRICULUM` uninterrupted, the same run killed after its
    search at step 320 (its checkpoint at 256), a copy of the killed run's folder, and the killed
    run resumed; with the events :class:`Searches` recorded in each."""
    from agents.train import run as train

    root = tmp_path_factory.mktemp("curriculum")
    overrides = [*CURRICULUM, f"env.scenarios=adversarial:{parametric}"]
    with pytest.MonkeyPatch.context() as monkeypatch:
        searches = Searches(monkeypatch)
        train(composer("config", overrides, root / "whole"))
        whole = searches.take()
        searches.stop_after = 320
        with pytest.raises(Interrupted):
            train(composer("config", overrides, root / "killed"))
        killed = searches.take()
        searches.stop_after = None
        shutil.copytree(root / "killed", root / "killed_copy")
        train(composer("config", [*overrides, "resume=true"], root / "killed"))
        resumed = searches.take()
    yield {
        "whole": whole,
        "killed": killed,
        "resumed": resumed,
        "folder": root / "killed",
        "killed_copy": root / "killed_copy",
        "overrides": overrides,
        "searches": searches,
    }


def _saved_state(folder: Path) -> dict[str, Any]:
    """The curriculum's state the latest checkpoint in ``folder`` keeps (at step 256)."""
    checkpoint = latest_checkpoint(folder)
    assert checkpoint is not None and checkpoint.num_timesteps == 256
    path = checkpoint.state.get("adversarial")
    assert path is not None and path.name == "model_adversarial_state_256_steps.pkl"
    return pickle.loads(path.read_bytes())


def test_a_checkpoint_keeps_the_curriculums_buffer_and_counters(curriculum_runs) -> None:
    state = _saved_state(curriculum_runs["killed_copy"])
    assert state["last"] == 256
    saved = _saved(state)
    killed = curriculum_runs["searches"].searches(curriculum_runs["killed"])
    assert list(killed) == [0, 64, 128, 192, 256, 320]
    # what it held after the search at 256 (the checkpoint follows the update after it)
    at_256 = killed[256]
    assert (saved["scenarios"], saved["regrets"]) == (at_256["scenarios"], at_256["regrets"])
    assert len(saved["scenarios"]) == 4  # buffer_size: full
    assert saved["searches"] == at_256["searches"] and len(saved["searches"]) == 5
    assert saved["drawn"] >= at_256["drawn"] and saved["replayed"] >= at_256["replayed"]
    # the killed run searched once more before it ended; the checkpoint keeps the state at 256
    assert len(killed[320]["searches"]) == 6


def test_a_resumed_curriculum_continues_from_its_checkpoint(curriculum_runs) -> None:
    """The resumed run starts from the checkpoint's buffer and counters and searches next at the
    steps, with the seeds, the uninterrupted run searched at.

    Bit-identical to the uninterrupted run: the state at the checkpoint and every search before
    the first update after it (here the searches at 320 and 384; they score the checkpoint's
    model, normalisation off). Not bit-identical: the scenarios the training replicas draw after
    the checkpoint (they restart from fresh episodes on a continuation seed), hence the model after
    that update and the searches that score it, and the source's draw counters.
    """
    searches = curriculum_runs["searches"]
    whole = searches.searches(curriculum_runs["whole"])
    resumed = curriculum_runs["resumed"]
    what, step, start = resumed[0]
    assert (what, step) == ("start", 256)
    # the buffer the uninterrupted run held at the checkpoint, and its searches so far
    assert (start["scenarios"], start["regrets"]) == (
        whole[256]["scenarios"],
        whole[256]["regrets"],
    )
    assert start["searches"] == whole[256]["searches"]
    saved = _saved(_saved_state(curriculum_runs["killed_copy"]))
    assert (start["scenarios"], start["regrets"]) == (saved["scenarios"], saved["regrets"])
    assert start["searches"] == saved["searches"]
    # the counters go on from the checkpoint's: learn's first reset drew one scenario per
    # replica (4) from the restored source, before training started
    assert start["drawn"] == saved["drawn"] + 4
    assert start["replayed"] - saved["replayed"] in range(5)
    after = searches.searches(resumed)
    assert list(after) == [k for k in whole if k > 256] == [320, 384]  # none when it resumes
    for k, held in after.items():
        assert (held["scenarios"], held["regrets"]) == (whole[k]["scenarios"], whole[k]["regrets"])
        assert held["searches"] == whole[k]["searches"]


def test_a_checkpoint_without_curriculum_state_resumes_with_an_empty_buffer(
    curriculum_runs, composer, tmp_path, monkeypatch, caplog
) -> None:
    """A checkpoint written before the curriculum's state was kept resumes, saying so."""
    from agents.train import run as train

    folder = tmp_path / "old"
    shutil.copytree(curriculum_runs["killed_copy"], folder)
    latest = folder / "checkpoints" / "latest.json"
    entry = json.loads(latest.read_text())
    (folder / "checkpoints" / entry.pop("state")["adversarial"]).unlink()
    latest.write_text(json.dumps(entry))
    searches = Searches(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="agents.train"):
        train(composer("config", [*curriculum_runs["overrides"], "resume=true"], folder))
    message = "keeps no adversarial state (it was written before that state was saved): "
    message += "the adversarial scenario buffer starts empty"
    assert any(message in r.getMessage() for r in caplog.records)
    events = searches.take()
    what, step, start = events[0]
    assert (what, step) == ("start", 256) and start["scenarios"] == []
    assert list(searches.searches(events)) == [256, 320, 384]  # refilled at once
    assert (folder / "model.zip").is_file()


def test_a_saved_buffer_of_other_settings_is_refused() -> None:
    saved: ScenarioBuffer[str] = ScenarioBuffer(capacity=3, replay_prob=0.25)
    saved.add(["a", "b"], [1.0, 2.0])
    restored: ScenarioBuffer[str] = ScenarioBuffer(capacity=3, replay_prob=0.25)
    restored.load_state_dict(saved.state_dict())
    assert restored.scenarios == ["b", "a"] and restored.regrets.tolist() == [2.0, 1.0]
    with pytest.raises(ValueError, match=r"buffer_size: the saved buffer has 3, this one 2"):
        ScenarioBuffer(capacity=2, replay_prob=0.25).load_state_dict(saved.state_dict())
    with pytest.raises(ValueError, match=r"replay_prob: the saved buffer has 0.25, this one 0.5"):
        ScenarioBuffer(capacity=3, replay_prob=0.5).load_state_dict(saved.state_dict())


def test_generate_adversarial_writes_report_figure_and_frames(parametric, tmp_path) -> None:
    out = tmp_path / "adv"
    search = [
        "command=adversarial",
        f"path={parametric}",
        "n=2",
        "adversarial.population=6",
        "adversarial.iterations=2",
        "adversarial.fit_episodes=2",
        f"out_dir={out}",
    ]
    report = run(compose_root("generate", [*search, "model=pretrained/inventory"]))
    saved = json.loads((out / "adversarial.json").read_text())
    assert saved["method"] == "random" and saved["invalid_draws"]["proposed"] == 12
    assert (saved["settings"]["lam"], saved["settings"]["episodes"]) == (20.0, 1)  # inventory's
    assert saved["found"]["n"] == 2 and saved["ordinary"]["n"] == 8 and saved["real"]["n"] == 8
    assert saved["found"]["values"] == sorted(saved["found"]["values"], reverse=True)
    assert report["found"]["mean"] == saved["found"]["mean"]
    assert (out / "adversarial.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((out / "worst").glob("frame_*.png"))) == 31
    assert (out / "worst.gif").is_file()
    # the same search may run again; another one must not replace the report
    assert run(compose_root("generate", [*search, "model=pretrained/inventory"])) == report
    with pytest.raises(
        ValueError, match=r"out_dir: .* another configuration .*adversarial\.lam None -> 5\.0"
    ):
        run(compose_root("generate", [*search, "model=pretrained/inventory", "adversarial.lam=5"]))
    for overrides, match in [
        (["model=pretrained/nothing"], r"model: no pretrained agent 'nothing'; allowed: \["),
        ([f"model={tmp_path}"], r"model: no model at .*; allowed: pretrained/<name>"),
        (["model=pretrained/inventory", "adversarial.baseline=oracle"], r"adversarial\.baseline"),
    ]:
        fresh = tmp_path / "bad"  # the folder of another report is refused before the settings
        cfg = compose_root(
            "generate",
            ["command=adversarial", f"path={parametric}", f"out_dir={fresh}", *overrides],
        )
        with pytest.raises((ValueError, KeyError), match=match):
            run(cfg)
        assert not fresh.exists()


def test_generate_adversarial_reports_regrets_measured_afresh(
    parametric, tmp_path, monkeypatch
) -> None:
    """The search keeps the candidates that scored highest on its own seeds; where episodes are
    random that score overstates their regret, so the report measures them again on the seeds
    the ordinary and real scenarios are measured on."""
    import agents.generators.adversarial as adversarial_module

    def seed_noise(model, baseline, venv, scenarios, *, episodes=1, seed=0, agent_venv=None):
        # every scenario equally hard: the regret is the noise of the episode's seed alone
        return np.asarray([np.random.default_rng(seed + k).normal() for k in range(len(scenarios))])

    monkeypatch.setattr(adversarial_module, "regret", seed_noise)
    out = tmp_path / "adv"
    run(
        compose_root(
            "generate",
            [
                "command=adversarial",
                f"path={parametric}",
                "model=pretrained/inventory",
                "n=2",
                "adversarial.population=16",
                "adversarial.iterations=2",
                "adversarial.fit_episodes=2",
                f"out_dir={out}",
            ],
        )
    )
    saved = json.loads((out / "adversarial.json").read_text())
    found, ordinary = saved["found"]["values"], saved["ordinary"]["values"]
    assert found == ordinary[:2] == saved["real"]["values"][:2]
    assert saved["worst"]["regret"] == found[0]
    searched = [c["search_regret"] for c in saved["scenarios"]]
    assert min(searched) > max(found)  # the best 2 of 32 noisy draws, not what they measure


@pytest.mark.parametrize(
    ("env_id", "expected"),
    [
        ("lepton/Inventory-v0", "base_stock"),
        ("lepton/Autoscale-v0", "hpa"),
        ("lepton/Maintenance-v0", "threshold"),
        ("lepton/RecSlate-v0", "interest_match"),
        ("lepton/TrafficSignal-v0", "max_pressure"),
    ],
)
def test_regret_defaults_to_the_familys_reference_baseline(env_id, expected) -> None:
    """``adversarial.baseline=null`` measures regret against the family's practitioner rule."""
    venv = gym.make_vec(env_id, num_envs=2)
    assert reference_baseline(None, venv) == expected
    assert reference_baseline("random", venv) == "random"
    baseline = make_baseline(None, venv, seed=0, fit_seeds=range(1))
    assert type(baseline) is baseline_registry(venv).get(expected)
