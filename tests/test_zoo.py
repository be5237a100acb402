"""The model zoo: manifest and files agree, every pretrained agent loads by name and acts."""

import dataclasses
import fnmatch
import json
import logging
import tomllib
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from agents.config import as_config, make_seeds
from agents.envs import make_single_env, make_vec_env
from agents.evaluate import load_policy
from agents.pretrained import PretrainedMismatchError, read_index, resolve_model_path, zoo_dir
from conf.schema import EvaluateConfig, PretrainedFields, RenderConfig
from scripts import zoo

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "conf" / "agent" / "pretrained"
INDEX = read_index()["entries"]
NAMES = sorted(INDEX)
MAX_ZOO_BYTES = 4 * 1024 * 1024
"""The zoo ships inside the package: a few small MLPs, not checkpoints or logs."""


def test_zoo_is_in_the_package_folder():
    assert zoo_dir() == ROOT / "agents" / "pretrained"


def test_zoo_holds_every_entry_and_every_family():
    assert NAMES, "agents/pretrained/index.json lists no entry; run lepton-zoo"
    assert set(NAMES) == {e.name for e in zoo.ENTRIES}
    families = {INDEX[n]["env_id"] for n in NAMES}
    for family in ("lepton/TrafficSignal-v0", "lepton/Inventory-v0", "lepton/RecSimIE-v0"):
        assert family in families


@pytest.mark.parametrize("name", NAMES)
def test_manifest_matches_files_and_preset(name):
    record = INDEX[name]
    folder = zoo_dir() / name
    files = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert files == record["files"]
    for required in ("model.zip", "config.yaml", "command.txt", "table.md", "zoo.json"):
        assert required in files, required
    run_cfg = OmegaConf.load(folder / "config.yaml")
    assert ("vecnormalize.pkl" in files) == bool(
        run_cfg.agent.normalize.obs or run_cfg.agent.normalize.reward
    )
    assert run_cfg.env.id == record["env_id"]
    assert OmegaConf.to_container(run_cfg.env.kwargs, resolve=True) == record["env_kwargs"]
    assert run_cfg.total_timesteps == record["total_timesteps"]
    assert json.loads((folder / "zoo.json").read_text()) == record["score"]
    assert record["command"]["zoo"] in (folder / "command.txt").read_text()

    preset = OmegaConf.load(PRESETS / f"{name}.yaml")
    assert preset.name == record["agent"] == f"pretrained/{name}"
    assert preset.model == f"pretrained/{name}/model.zip"
    assert preset.env_id == record["env_id"]
    assert list(preset.observation_shape) == record["observation_shape"]
    assert preset.action_space == record["action_space"]
    assert list(preset.source) == record["source"]
    for key in ("algo", "gamma", "learning_rate", "n_steps", "policy_kwargs", "normalize"):
        assert preset[key] == run_cfg.agent[key], key


@pytest.mark.parametrize("name", NAMES)
def test_pretrained_agent_beat_the_best_baseline(name):
    score = INDEX[name]["score"]
    policies = score["policies"]
    assert score["best_baseline"] in policies and score["agent"] in policies
    sign = 1 if score["maximize"] else -1
    oracles = score.get("oracles", [])
    baselines = [p for p in policies if p != score["agent"] and p not in oracles]
    best = max(baselines, key=lambda p: sign * policies[p]["mean"])
    assert best == score["best_baseline"]
    assert score["wins"] and score["margin"] > 0


def test_zoo_is_small_and_shipped_by_the_package_data():
    files = [p for p in zoo_dir().rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sum(p.stat().st_size for p in files) < MAX_ZOO_BYTES
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = data["package-data"]["agents.pretrained"]
    for path in files:
        if path.suffix == ".py":
            continue
        relative = str(path.relative_to(zoo_dir()))
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative
    assert data["package-data"]["*"] and "*.yaml" in data["package-data"]["*"]


def _evaluate_config(make_cfg, name, *extra):
    cfg = make_cfg("evaluate", [*INDEX[name]["source"], f"agent=pretrained/{name}", *extra])
    return as_config(cfg, EvaluateConfig)


@pytest.mark.parametrize("name", NAMES)
def test_pretrained_agent_loads_by_name_and_acts(make_cfg, name):
    config = _evaluate_config(make_cfg, name, "episodes=2")
    agent = config.agent
    assert isinstance(agent, PretrainedFields)
    assert config.model_path is None
    assert resolve_model_path(agent, None) == str(zoo_dir() / name / "model.zip")
    venv = make_vec_env(config.env, 2, allow_sharing=True)
    seeds = make_seeds(config.seed, config.n_envs, config.eval, 2)
    policy, venv = load_policy(config, venv, seeds)
    obs = venv.reset()
    for _ in range(5):
        actions, _ = policy.predict(obs, deterministic=True)
        assert np.shape(actions)[0] == venv.num_envs
        obs, rewards, _, _ = venv.step(actions)
        assert np.isfinite(rewards).all()
    venv.close()


def test_pretrained_agent_renders_by_name(make_cfg):
    from agents.render import _policy

    name = "traffic-single"
    cfg = make_cfg("render", [*INDEX[name]["source"], f"agent=pretrained/{name}"])
    config = as_config(cfg, RenderConfig)
    env = make_single_env(config.env)
    act = _policy(config, env, [0])
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, *_ = env.step(act(obs))
    env.close()


def test_mismatched_env_names_the_agent_and_both_shapes(make_cfg):
    name = "traffic-single"
    config = as_config(make_cfg("evaluate", [f"agent=pretrained/{name}"]), EvaluateConfig)
    assert config.env.id == "lepton/Inventory-v0"  # the default env
    venv = make_vec_env(config.env, 1)
    seeds = make_seeds(config.seed, config.n_envs, config.eval, 1)
    with pytest.raises(PretrainedMismatchError) as err:
        load_policy(config, venv, seeds)
    message = str(err.value)
    assert f"agent=pretrained/{name}" in message
    assert str(tuple(INDEX[name]["observation_shape"])) in message
    assert str(venv.observation_space.shape) in message
    assert "lepton/Inventory-v0" in message and INDEX[name]["env_id"] in message
    assert "experiment=traffic_single_ppo agent=pretrained/traffic-single" in message


def test_parse_args_selects_entries_and_rejects_unknown_ones(capsys):
    options = zoo.parse_args(["only=[traffic-single,inventory]", "--check", "episodes=3"])
    assert options.check and options.episodes == 3
    assert [e.name for e in zoo.selected(options.only)] == ["traffic-single", "inventory"]
    assert len(zoo.selected([])) == len(zoo.ENTRIES)
    with pytest.raises(SystemExit):
        zoo.parse_args(["only=[traffic-singel]"])
    with pytest.raises(SystemExit):
        zoo.parse_args(["epsiodes=3"])
    for bad in ("abc", "0"):
        with pytest.raises(SystemExit):
            zoo.parse_args(["--check", f"episodes={bad}"])
    assert "episodes: expected an integer >= 1, got 'abc'" in capsys.readouterr().err
    assert zoo.parse_args(["--force", "only=[inventory]"]).force
    assert not zoo.parse_args([]).force
    with pytest.raises(SystemExit):
        zoo.parse_args(["--force", "--check"])
    assert "--force: retrains entries; --check re-evaluates them" in capsys.readouterr().err


def test_every_entry_trains_like_lepton_train():
    for entry in zoo.ENTRIES:
        command = zoo.commands_of(entry)["train"]
        assert command.startswith("lepton-train ")
        assert f"seed={entry.seed}" in command
        for override in entry.source:
            assert override in command


def test_check_reevaluates_an_entry_against_its_best_baseline(tmp_path, capsys):
    status = zoo.main(["--check", "only=[traffic-single]", "episodes=2", f"runs={tmp_path}"])
    out = capsys.readouterr().out
    assert "traffic-single" in out and INDEX["traffic-single"]["score"]["best_baseline"] in out
    assert "paired margin" in out
    assert status == 0, out
    assert (tmp_path / "check" / "traffic-single" / "agent" / "metrics.json").is_file()


def test_check_reports_every_entry_when_one_fails(tmp_path, capsys, monkeypatch):
    def check(name, record, episodes, runs):
        if name == "inventory":
            raise RuntimeError("the model file is unreadable")
        return {
            "name": name,
            "metric": "mean_travel_time",
            "agent": 1.0,
            "baseline": "max_pressure",
            "baseline_score": 2.0,
            "episodes": episodes,
            "margin": 1.0,
            "margin_ci95": (0.5, 1.5),
            "wins": True,
            "clear": True,
        }

    monkeypatch.setattr(zoo, "check", check)
    status = zoo.main(["--check", "only=[inventory,traffic-single]", f"runs={tmp_path}"])
    out = capsys.readouterr().out
    assert "inventory          ERROR: RuntimeError: the model file is unreadable" in out
    assert "traffic-single" in out and "-> wins clearly" in out  # checked after the failure
    assert status == 1


def test_a_failed_publish_keeps_the_packaged_entry(tmp_path):
    entry = zoo.ENTRIES[0]
    packaged = tmp_path / "zoo" / entry.name
    packaged.mkdir(parents=True)
    (packaged / "model.zip").write_bytes(b"the packaged model")
    run = tmp_path / "run"
    run.mkdir()  # a run without its config.yaml: publishing it fails
    with pytest.raises(FileNotFoundError):
        zoo.publish(entry, run, tmp_path / "zoo", tmp_path / "presets")
    assert (packaged / "model.zip").read_bytes() == b"the packaged model"
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir()) == [entry.name]


def test_training_goes_on_after_an_entry_that_fails(tmp_path, capsys, monkeypatch):
    first, second = zoo.ENTRIES[0], zoo.ENTRIES[1]
    trained = []

    def train(entry, runs, *, force=False):
        trained.append(entry.name)
        if entry.name == first.name:
            raise RuntimeError("diverged")
        return runs / entry.name

    def publish(entry, folder, dest, presets):
        (dest / entry.name).mkdir(parents=True)
        (dest / entry.name / "model.zip").write_bytes(b"model")
        score = {"metric": "m", "agent_mean": 2.0, "best_baseline": "b", "baseline_mean": 1.0}
        return {"score": {**score, "wins": True}, "files": {"model.zip": 5}}

    monkeypatch.setattr(zoo, "train", train)
    monkeypatch.setattr(zoo, "publish", publish)
    monkeypatch.setattr(zoo, "write_readme", lambda dest: None)
    argv = [f"only=[{first.name},{second.name}]", f"runs={tmp_path / 'runs'}"]
    status = zoo.main([*argv, f"dest={tmp_path / 'zoo'}", f"presets={tmp_path / 'presets'}"])
    assert trained == [first.name, second.name]
    assert (tmp_path / "zoo" / second.name / "model.zip").is_file()
    assert f"failed: ['{first.name}']" in capsys.readouterr().out
    assert status == 1


class FakeZoo:
    """``lepton-zoo`` with a training that writes a run folder instantly and a small publish.

    Training goes through the zoo's own path (:func:`agents.jobs.run_job` and its
    ``status.json``); only :func:`agents.train.run` and :func:`scripts.zoo.publish` are replaced.
    """

    def __init__(self, tmp_path, monkeypatch):
        import agents.train
        from agents.runs import run_folder, save_config

        self.root = tmp_path
        self.trained, self.published = [], []
        self.fail_training, self.fail_publish = set(), set()

        def run(cfg):
            folder = run_folder(cfg)
            self.trained.append(folder.name)
            if folder.name in self.fail_training:
                raise RuntimeError("diverged")
            save_config(folder, cfg)
            (folder / "model.zip").write_bytes(f"{folder.name} {len(self.trained)}".encode())
            return {}

        def publish(entry, folder, dest, presets):
            self.published.append(entry.name)
            if entry.name in self.fail_publish:
                raise ValueError("no score")
            (dest / entry.name).mkdir(parents=True, exist_ok=True)
            (dest / entry.name / "model.zip").write_bytes((folder / "model.zip").read_bytes())
            score = {"metric": "m", "agent_mean": 2.0, "best_baseline": "b", "baseline_mean": 1.0}
            return {"score": {**score, "wins": True}, "files": {"model.zip": 5}}

        monkeypatch.setattr(agents.train, "run", run)
        monkeypatch.setattr(zoo, "publish", publish)
        monkeypatch.setattr(zoo, "write_readme", lambda dest: None)

    def main(self, names, *extra):
        """Run ``lepton-zoo`` on ``names``; returns the exit status (and clears the records)."""
        self.trained.clear()
        self.published.clear()
        folders = [f"runs={self.root / 'runs'}", f"dest={self.root / 'zoo'}"]
        argv = [f"only=[{','.join(names)}]", *folders, f"presets={self.root / 'presets'}"]
        return zoo.main([*argv, *extra])


def test_a_rerun_skips_finished_entries_and_force_retrains_them(
    tmp_path, capsys, caplog, monkeypatch
):
    caplog.set_level(logging.INFO, logger="lepton.zoo")
    fake = FakeZoo(tmp_path, monkeypatch)
    a, b, c = (e.name for e in zoo.ENTRIES[:3])
    fake.fail_publish, fake.fail_training = {b}, {c}
    assert fake.main([a, b, c]) == 1
    assert fake.trained == [a, b, c] and fake.published == [a, b]
    assert f"failed: ['{b}', '{c}']" in capsys.readouterr().out

    fake.fail_publish, fake.fail_training = set(), set()
    caplog.clear()
    assert fake.main([a, b, c]) == 0
    assert fake.trained == [c]  # the failed training runs again; the finished ones do not
    assert fake.published == [b, c]  # b's finished run is packaged without training
    out = capsys.readouterr().out
    assert f"skipped: ['{a}'], trained and packaged earlier (--force retrains them)" in out
    assert f"zoo entry {a}: trained (finished " in caplog.text
    assert f"zoo entry {b}: trained earlier (finished " in caplog.text
    packaged = read_index(tmp_path / "zoo")["entries"]
    assert sorted(packaged) == sorted([a, b, c])

    assert fake.main([a, b, c]) == 0
    assert fake.trained == [] and fake.published == []
    assert f"skipped: ['{a}', '{b}', '{c}']" in capsys.readouterr().out
    assert read_index(tmp_path / "zoo")["entries"] == packaged

    assert fake.main([a, b, c], "--force") == 0
    assert fake.trained == [a, b, c] and fake.published == [a, b, c]
    assert "skipped" not in capsys.readouterr().out


def test_a_rerun_retrains_killed_runs_and_runs_of_an_earlier_definition(
    tmp_path, caplog, monkeypatch
):
    from agents.jobs import read_status, write_status

    caplog.set_level(logging.INFO, logger="lepton.zoo")
    fake = FakeZoo(tmp_path, monkeypatch)
    a, b, c = zoo.ENTRIES[:3]
    assert fake.main([a.name, b.name, c.name]) == 0
    # a's definition changes; b's training was killed (its process is gone); c is untouched
    changed = dataclasses.replace(a, total_timesteps=(a.total_timesteps or 0) + 1000)
    monkeypatch.setattr(zoo, "ENTRIES", (changed, *zoo.ENTRIES[1:]))
    killed = read_status(tmp_path / "runs" / b.name)
    assert killed is not None
    killed.state, killed.pid = "running", 0
    write_status(tmp_path / "runs" / b.name, killed)
    caplog.clear()
    assert fake.main([a.name, b.name, c.name]) == 0
    assert fake.trained == [a.name, b.name] and fake.published == [a.name, b.name]
    assert f"zoo entry {a.name}: " in caplog.text and "earlier definition" in caplog.text
    assert "total_timesteps" in caplog.text
    saved = OmegaConf.load(tmp_path / "runs" / a.name / "config.yaml")
    assert saved.total_timesteps == changed.total_timesteps
    status = read_status(tmp_path / "runs" / b.name)
    assert status is not None and status.state == "finished" and status.attempt == 2


def test_best_baseline_excludes_oracles_but_reports_them(tmp_path):
    """An oracle (a baseline reading hidden state) is shown, not counted as the bar to beat."""
    (tmp_path / "config.yaml").write_text("agent: {name: ppo}\n")
    rows = ["policy,episode_watch_time"]
    for policy, value in (("ppo", 200.0), ("interest_match", 160.0), ("quality_first", 280.0)):
        rows += [f"{policy},{value + d}" for d in (-1.0, 0.0, 1.0)]
    (tmp_path / "eval.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "baselines.json").write_text(
        json.dumps({"interest_match": {"oracle": False}, "quality_first": {"oracle": True}})
    )
    entry = zoo.ZooEntry("x", ("env=recsys/recsim_hidden",), score="episode_watch_time")
    summary = zoo.score_summary(entry, tmp_path)
    assert summary["best_baseline"] == "interest_match"
    assert summary["oracles"] == ["quality_first"] and summary["best_oracle"] == "quality_first"
    assert summary["wins"] and summary["margin"] == pytest.approx(40.0)
    oracles = {"interest_match": {"oracle": True}, "quality_first": {"oracle": True}}
    (tmp_path / "baselines.json").write_text(json.dumps(oracles))
    with pytest.raises(ValueError, match="no baseline without hidden state"):
        zoo.score_summary(entry, tmp_path)
