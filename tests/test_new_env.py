"""``lepton-new-env``: the scaffolded family works, lints, trains and passes its own tests.

The family is generated once per module into a copy of the repository layout under a temporary
folder, with a unique name. It is made importable by extending ``envs.__path__`` for the
duration of the module only, and every registration it makes is undone afterwards, so the rest
of the suite never sees it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import re
import shutil
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from test_envs_registry import (
    check_gymnasium_api,
    check_pickle_roundtrip,
    check_ppo_smoke,
    check_render_rgb_array,
    check_sb3_api,
    check_sb3_vec_equivalence,
    check_seeded_determinism,
    check_vector_equivalence,
    registry_restored,
)

import envs

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Cli:
    """The two command-line modules under test."""

    new_env: Any
    lepton_envs: Any


@pytest.fixture(scope="module")
def cli() -> Iterator[Cli]:
    """``scripts.new_env`` and ``scripts.list_envs`` imported from this checkout."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT))
        yield Cli(
            importlib.import_module("scripts.new_env"), importlib.import_module("scripts.list_envs")
        )


@dataclass(frozen=True)
class Family:
    """A scaffolded family: its name, id, destination root and the files written."""

    name: str
    env_id: str
    root: Path
    files: tuple[Path, ...]
    stdout: str


def copy_layout(dest: Path) -> None:
    """Copy what a checkout needs to run the family's tests: envs/, conftest, pyproject."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "envs", dest / "envs", ignore=ignore)
    (dest / "tests").mkdir()
    shutil.copy2(ROOT / "tests" / "conftest.py", dest / "tests" / "conftest.py")
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


@contextlib.contextmanager
def family_importable(root: Path, name: str) -> Iterator[None]:
    """Make ``envs.<name>`` importable from ``root/envs`` and register it, then undo both."""
    extra = str(root / "envs")
    envs.__path__.append(extra)
    try:
        with registry_restored():
            importlib.import_module(f"envs.{name}").register_envs()
            yield
    finally:
        envs.__path__.remove(extra)
        for module in [
            m for m in sys.modules if m == f"envs.{name}" or m.startswith(f"envs.{name}.")
        ]:
            del sys.modules[module]


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory, cli: Cli) -> Iterator[Family]:
    new_env = cli.new_env
    root = tmp_path_factory.mktemp("checkout")
    copy_layout(root)
    name = f"tank_{uuid.uuid4().hex[:8]}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert new_env.main([name, "--dest", str(root)]) == 0
    names = new_env.Names.of(name)
    files = tuple(new_env.planned_files(names, root))
    with family_importable(root, name):
        yield Family(name, names.env_id, root, files, out.getvalue())
    assert names.env_id not in gym.registry
    assert names.env_id not in envs.env_ids()


# --- what the scaffold writes ----------------------------------------------------------------


def test_scaffold_writes_the_family_preset_and_tests(family, cli):
    new_env = cli.new_env
    fam = family.root / "envs" / family.name
    expected = {fam / m for m in new_env.FAMILY_MODULES}
    expected |= {family.root / "conf" / "env" / f"{family.name}.yaml"}
    expected |= {family.root / "conf" / "agent" / "target.yaml"}  # the rule baseline's preset
    expected |= {family.root / "tests" / f"test_{family.name}.py"}
    assert set(family.files) == expected
    for path in expected:
        assert path.is_file() and path.stat().st_size > 0
        assert str(path.relative_to(family.root)) in family.stdout
    assert "Next steps" in family.stdout
    camel = family.env_id.removeprefix("lepton/").removesuffix("-v0")
    assert family.env_id == f"lepton/{camel}-v0" and camel.startswith("Tank")
    text = (fam / "__init__.py").read_text()
    assert f'"envs.{family.name}.env:{camel}Env"' in text
    assert f'vector_entry_point="envs.{family.name}.env:{camel}VectorEnv"' in text
    sim = (fam / "sim.py").read_text()
    assert "gymnasium" not in sim and "pygame" not in sim


def test_generated_preset_composes_with_hydra(family):
    from hydra import compose, initialize_config_dir

    import conf  # noqa: F401 - stores the schemas the preset starts from

    with initialize_config_dir(config_dir=str(family.root / "conf"), version_base=None):
        cfg = compose(config_name=f"env/{family.name}")
    assert cfg.env.id == family.env_id
    assert cfg.env.name == family.name
    env = gym.make(cfg.env.id, **cfg.env.kwargs)
    info = env.reset(seed=0)[1]
    _, _, _, _, info = env.step(env.action_space.sample())
    assert set(cfg.env.metrics) <= set(info)
    env.close()
    # every baseline of the family is usable as agent=<name>
    from envs.core.baselines import baseline_registry

    for baseline in baseline_registry(gym.make(family.env_id)).names():
        path = family.root / "conf" / "agent" / f"{baseline}.yaml"
        path = path if path.is_file() else ROOT / "conf" / "agent" / f"{baseline}.yaml"
        assert path.is_file(), f"no preset for agent={baseline}"


def assert_ruff_clean(files: list[str], cwd: Path) -> None:
    for args in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args, *files],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_generated_code_passes_ruff(family):
    assert_ruff_clean([str(p) for p in family.files if p.suffix == ".py"], family.root)


def test_generated_code_passes_ruff_with_the_longest_name(tmp_path, cli):
    copy_layout(tmp_path)  # ruff tells first-party imports by the envs/ package at the root
    name = "water_" + "x" * (cli.new_env.MAX_NAME_LENGTH - 6)
    written = cli.new_env.scaffold(name, tmp_path)
    assert_ruff_clean([str(p) for p in written if p.suffix == ".py"], tmp_path)


def test_generated_family_is_listed_by_lepton_envs(family, cli):
    lepton_envs = cli.lepton_envs
    out = io.StringIO()
    assert lepton_envs.main(["--json", "--family", family.name], out=out) == 0
    rows = json.loads(out.getvalue())
    assert [r["id"] for r in rows] == [family.env_id]
    assert rows[0]["vector_entry_point"].endswith("VectorEnv")
    table = io.StringIO()
    assert lepton_envs.main([], out=table) == 0
    assert family.env_id in table.getvalue()


# --- the registry-wide checks on the new id --------------------------------------------------

CHECKS = {
    "gymnasium_check_env": check_gymnasium_api,
    "sb3_check_env": check_sb3_api,
    "seeded_determinism": check_seeded_determinism,
    "pickle_roundtrip": check_pickle_roundtrip,
    "render_rgb_array": check_render_rgb_array,
    "vector_equivalence": check_vector_equivalence,
    "sb3_vec_equivalence": check_sb3_vec_equivalence,
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_registry_wide_checks_pass_on_the_generated_env(family, check):
    CHECKS[check](family.env_id)


def test_generated_env_autoresets_like_single_envs_across_truncations(family):
    assert check_vector_equivalence(family.env_id, steps=20, max_episode_steps=7) >= 4
    assert check_sb3_vec_equivalence(family.env_id, steps=20, max_episode_steps=7) >= 4


def test_generated_env_renders_and_trains(family):
    env = gym.make(family.env_id, render_mode="rgb_array")
    env.reset(seed=1)
    first = env.render()
    for _ in range(5):
        env.step(np.array([1.0], dtype=np.float32))
    assert not np.array_equal(first, env.render()), "the frame does not follow the state"
    env.close()
    check_ppo_smoke(family.env_id, total_timesteps=384)


def test_generated_family_tests_pass(family):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"tests/test_{family.name}.py",
        ],
        cwd=family.root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


# --- names and overwrites --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Reservoir", "snake_case"),
        ("1tank", "snake_case"),
        ("water-tank", "snake_case"),
        ("water__tank", "snake_case"),
        ("tank_", "snake_case"),
        ("t" * 40, "at most 32"),
        ("class", "Python keyword"),
        ("core", "reserved"),
        ("envs_registry", "reserved"),
        ("ops", "existing family"),
        ("inventory", "already registered"),
    ],
)
def test_bad_names_are_refused(tmp_path, capsys, cli, name, reason):
    new_env = cli.new_env
    assert new_env.main([name, "--dest", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert reason in err
    if reason == "snake_case":
        assert new_env.NAME_PATTERN in err
    assert not any(tmp_path.iterdir()), "nothing may be written for a refused name"


def test_existing_family_needs_force(tmp_path, capsys, cli):
    new_env = cli.new_env
    written = new_env.scaffold("basin", tmp_path)
    sim = tmp_path / "envs" / "basin" / "sim.py"
    sim.write_text("# edited\n")
    assert new_env.main(["basin", "--dest", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert sim.read_text() == "# edited\n"
    assert new_env.main(["basin", "--dest", str(tmp_path), "--force"]) == 0
    assert sim.read_text().startswith('"""Batched simulation core')
    shared = tmp_path / "conf" / "agent" / "target.yaml"
    assert shared in written
    shared.write_text(shared.read_text() + "# kept\n")  # a preset other families use
    again = new_env.scaffold("basin", tmp_path, force=True)
    assert again == [p for p in written if p != shared]
    assert shared.read_text().endswith("# kept\n")
    # a second family in the same tree shares the preset instead of clashing on it
    assert shared not in new_env.scaffold("lagoon", tmp_path)


def test_force_never_overwrites_a_family_of_another_layout(tmp_path, capsys, cli):
    new_env = cli.new_env
    other = tmp_path / "envs" / "lake"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text('"""A hand-written family."""\n')
    assert new_env.main(["lake", "--dest", str(tmp_path), "--force"]) == 2
    assert "not a family with the scaffold's layout" in capsys.readouterr().err
    assert (other / "__init__.py").read_text() == '"""A hand-written family."""\n'


def test_installed_suite_is_not_a_checkout(tmp_path, cli, monkeypatch):
    new_env = cli.new_env
    site = tmp_path / "site-packages"  # envs/ and scripts/ as a wheel installs them
    (site / "envs").mkdir(parents=True)
    (site / "envs" / "registration.py").write_text("")
    (site / "scripts").mkdir()
    monkeypatch.setattr(new_env, "__file__", str(site / "scripts" / "new_env.py"))
    with pytest.raises(new_env.ScaffoldError, match="pass --dest"):
        new_env.find_repo_root(tmp_path / "elsewhere")
    (site / "pyproject.toml").write_text("")  # a source checkout is the fallback
    assert new_env.find_repo_root(tmp_path / "elsewhere") == site.resolve()


def test_repo_root_is_found_from_a_subfolder(tmp_path, cli):
    new_env = cli.new_env
    assert new_env.find_repo_root(ROOT / "envs" / "core") == ROOT
    copy = tmp_path / "checkout"
    (copy / "envs").mkdir(parents=True)
    (copy / "envs" / "registration.py").write_text("")
    (copy / "docs" / "deep").mkdir(parents=True)
    assert new_env.find_repo_root(copy / "docs" / "deep") == copy.resolve()


def test_force_never_overwrites_files_of_no_scaffolded_family(tmp_path, capsys, cli):
    new_env = cli.new_env
    suite_test = tmp_path / "tests" / "test_sweeps.py"  # the suite's own test of sweeps
    suite_test.parent.mkdir()
    suite_test.write_text("# the suite's tests\n")
    preset = tmp_path / "conf" / "env" / "inventory_lost_sales.yaml"  # a built-in preset
    preset.parent.mkdir(parents=True)
    preset.write_text("# a built-in preset\n")
    for name in ("sweeps", "inventory_lost_sales"):
        for force in ([], ["--force"]):
            assert new_env.main([name, "--dest", str(tmp_path), *force]) == 2
            err = capsys.readouterr().err
            assert "belong to no family made by lepton-new-env" in err
            assert "choose another name" in err and "pass --force" not in err
            assert not (tmp_path / "envs" / name).exists()
    assert suite_test.read_text() == "# the suite's tests\n"
    assert preset.read_text() == "# a built-in preset\n"


def test_scaffold_outside_the_imported_checkout_says_the_id_is_not_registered_yet(
    tmp_path, capsys, cli
):
    assert cli.new_env.main(["pond", "--dest", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "lepton/Pond-v0 is registered" not in out
    assert "lepton/Pond-v0 is not registered yet" in out
    assert f"not from {tmp_path / 'envs'}" in out
    assert "move envs/pond/, conf/env/pond.yaml and tests/test_pond.py into that checkout" in out


# --- registering an env of one's own ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"entry_point": "my_package.env:"}, "entry_point"),
        ({"entry_point": ":MyTask"}, "entry_point"),
        ({"entry_point": "my_package.env:MyTask:extra"}, "entry_point"),
        ({"entry_point": "my package.env:MyTask"}, "entry_point"),
        ({"vector_entry_point": "my_package.env.MyVectorTask"}, "vector_entry_point"),
        ({"vector_entry_point": "my_package.env:"}, "vector_entry_point"),
    ],
)
def test_register_refuses_malformed_entry_points(kwargs, field):
    arguments = {"entry_point": "my_package.env:MyTask", "description": "x", **kwargs}
    with registry_restored():
        with pytest.raises(ValueError, match=rf"^{field}: expected a 'package.module:Name'"):
            envs.register("lepton/MyTask-v0", **arguments)
        assert "lepton/MyTask-v0" not in gym.registry
        envs.register("lepton/MyTask-v0", "my_package.env:MyTask", description="x")  # id free


@pytest.mark.parametrize(
    ("env_id", "message"),
    [
        ("other/MyTask-v0", "id: 'other/MyTask-v0' has the namespace 'other'"),
        ("My Task-v0", "id: 'lepton/My Task-v0' is malformed; expected 'lepton/<Name>-v<N>'"),
    ],
)
def test_register_refuses_malformed_ids_with_a_value_error(env_id, message):
    with registry_restored(), pytest.raises(ValueError, match=re.escape(message)):
        envs.register(env_id, "my_package.env:MyTask", description="x")
    assert not [k for k in gym.registry if "MyTask" in k or "My Task" in k]


def _fake_plugins(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    from importlib.metadata import EntryPoint

    from envs import registration

    eps = [EntryPoint(name, value, registration.PLUGIN_GROUP) for name, value in values.items()]
    monkeypatch.setattr(registration, "entry_points", lambda **params: eps)


def test_plugin_with_a_malformed_value_or_an_env_class_warns_and_registers_nothing(
    tmp_path, monkeypatch
):
    (tmp_path / "lepton_class_plugin.py").write_text(
        "import gymnasium as gym\n\n\nclass Task(gym.Env):\n"
        "    def __init__(self):\n        raise AssertionError('instantiated')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _fake_plugins(monkeypatch, spaced="my package:register", cls="lepton_class_plugin:Task")
    ids = envs.env_ids()
    with registry_restored(), pytest.warns(UserWarning) as record:
        assert envs.load_plugins() == []
        assert envs.env_ids() == ids
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert messages[0].startswith("lepton_gym.envs plugin 'cls' failed to load: its value ")
    assert "names the environment class Task, which registers nothing" in messages[0]
    assert "'package.module:register_envs'" in messages[0]
    assert messages[1].startswith("lepton_gym.envs plugin 'spaced' failed to load: its value")
    assert (
        "'my package:register' is not of the form 'package.module:register_envs'" in (messages[1])
    )


PLUGIN_IMPORTING_ENVS = '''
"""A plugin module that loads the plugins while it is imported (as ``import envs`` does)."""

from envs import registration

registration.load_plugins()  # the first ``import envs``, reached from this module's imports


def register_envs():
    registration.register("lepton/EarlyPlugin-v0", "{entry_point}", description="imported first")
'''


def test_plugin_imported_before_envs_is_registered_once_its_import_ends(tmp_path, monkeypatch):
    entry_point = envs.env_info(envs.env_ids()[0]).entry_point
    (tmp_path / "lepton_early_plugin.py").write_text(
        PLUGIN_IMPORTING_ENVS.format(entry_point=entry_point)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _fake_plugins(monkeypatch, early="lepton_early_plugin:register_envs")
    try:
        with registry_restored(), warnings.catch_warnings():
            warnings.simplefilter("error")  # no "partially initialized module" warning
            importlib.import_module("lepton_early_plugin")  # the user's import comes first
            assert "lepton/EarlyPlugin-v0" in envs.env_ids()
            assert envs.resolve_id("EarlyPlugin-v0") == "lepton/EarlyPlugin-v0"
    finally:
        sys.modules.pop("lepton_early_plugin", None)
    assert "lepton/EarlyPlugin-v0" not in gym.registry
