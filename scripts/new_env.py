"""``lepton-new-env NAME``: scaffold a new environment family.

Writes, under the destination root (the repository by default):

- ``envs/<name>/``: ``__init__.py`` (``register_envs()`` registering ``lepton/<CamelName>-v0``
  with lazy entry points), ``scenario.py``, ``sim.py``, ``env.py``, ``render.py`` and
  ``baselines.py``: a small but complete reservoir level-control task to reshape into the new
  family;
- ``conf/env/<name>.yaml``: the Hydra preset of the new id;
- ``tests/test_<name>.py``: the family's own tests (conserved water, rule beats random).

The family is discovered by ``envs.register_builtin`` without editing any other file, so the
registry-wide tests (``tests/test_envs_registry.py``) cover the new id at once.

Examples:
    ``lepton-new-env reservoir``, ``python -m scripts.new_env water_tank --dest /tmp/sandbox``.
"""

from __future__ import annotations

import argparse
import keyword
import re
import string
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

NAME_PATTERN = r"[a-z][a-z0-9]*(_[a-z0-9]+)*"
"""Allowed family names: lower-case snake_case, starting with a letter."""

MAX_NAME_LENGTH = 32

RESERVED = frozenset({"core", "registration", "envs_registry", "new_env"})
"""Names taken by the ``envs`` package itself or by the suite's own test modules."""

TEMPLATES = Path(__file__).resolve().parent / "templates"

SHARED_TEMPLATE = "conf_agent_target.yaml.tmpl"
"""The template of a file several scaffolded families share (kept when it exists)."""
FAMILY_MODULES = ("__init__.py", "scenario.py", "sim.py", "env.py", "render.py", "baselines.py")
"""Modules of a scaffolded family package, each rendered from ``templates/<module>.tmpl``."""

LAYOUT = ("scenario.py", "sim.py", "env.py")
"""Modules whose presence marks a package as a family with the scaffold's layout."""


class ScaffoldError(ValueError):
    """The scaffold cannot be written (bad name, clash, existing files without ``--force``)."""


@dataclass(frozen=True)
class Names:
    """The spellings of a family name used in the generated files.

    Attributes:
        name: the package name, ``water_tank``.
        camel: the class prefix, ``WaterTank``.
        title: a human label, ``Water tank``.
        env_id: the registered id, ``lepton/WaterTank-v0``.
    """

    name: str
    camel: str
    title: str
    env_id: str

    @classmethod
    def of(cls, name: str) -> Names:
        """Derive every spelling from the snake_case ``name``."""
        camel = "".join(part.capitalize() for part in name.split("_"))
        return cls(
            name=name,
            camel=camel,
            title=name.replace("_", " ").capitalize(),
            env_id=f"lepton/{camel}-v0",
        )

    def mapping(self) -> dict[str, str]:
        """The substitutions of the templates."""
        return {"name": self.name, "Camel": self.camel, "title": self.title, "env_id": self.env_id}


def find_repo_root(start: Path | None = None) -> Path:
    """Return the repository root: the nearest folder above ``start`` holding ``envs/``.

    The search starts at ``start`` (default: the current directory) and falls back to the
    checkout this script belongs to (not to an installed suite's ``site-packages``).

    Raises:
        ScaffoldError: if no Lepton Gym checkout is found.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "envs" / "registration.py").is_file():
            return folder
    own = Path(__file__).resolve().parents[1]
    # a source checkout, not the site-packages folder of an installed suite
    if (own / "envs" / "registration.py").is_file() and (own / "pyproject.toml").is_file():
        return own
    raise ScaffoldError(
        f"no Lepton Gym checkout (a folder with envs/registration.py) above {here}; "
        "pass --dest to choose where to write the family"
    )


def planned_files(names: Names, dest: Path) -> dict[Path, str]:
    """The files the scaffold writes, as ``{path: template file name}``.

    ``conf/agent/target.yaml``, the preset of the scaffold's rule baseline, is shared by every
    family with a ``target`` baseline: :func:`scaffold` writes it only where it does not exist.
    """
    family = dest / "envs" / names.name
    files = {family / module: f"{module}.tmpl" for module in FAMILY_MODULES}
    files[dest / "conf" / "env" / f"{names.name}.yaml"] = "conf_env.yaml.tmpl"
    files[dest / "tests" / f"test_{names.name}.py"] = "test_family.py.tmpl"
    files[dest / "conf" / "agent" / "target.yaml"] = SHARED_TEMPLATE
    return files


def render_template(template: str, names: Names) -> str:
    """Render one template file (``string.Template`` syntax: ``$name``, ``${Camel}``)."""
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    try:
        return string.Template(text).substitute(names.mapping())
    except (KeyError, ValueError) as exc:  # pragma: no cover - a broken template is a bug
        raise RuntimeError(f"template {template}: bad placeholder ({exc})") from exc


def _installed_families() -> dict[str, Path]:
    """Sub-modules of the importable ``envs`` package (families and core modules)."""
    import pkgutil

    import envs

    found: dict[str, Path] = {}
    for path in envs.__path__:
        for mod in pkgutil.iter_modules([path]):
            found.setdefault(mod.name, Path(path).resolve())
    return found


def _registered_elsewhere(names: Names) -> str | None:
    """The entry point of ``names.env_id`` if another package already registers it."""
    import gymnasium as gym

    import envs  # noqa: F401 - registers the built-in families and the plugins

    if names.env_id not in gym.registry:
        return None
    entry = gym.registry[names.env_id].entry_point
    entry = entry if isinstance(entry, str) else f"{entry.__module__}:{entry.__qualname__}"
    return None if entry.startswith(f"envs.{names.name}.") else entry


def validate(name: str, dest: Path, *, force: bool = False) -> Names:
    """Check that ``name`` can become a new family under ``dest``; return its spellings.

    Args:
        name: the family name, snake_case.
        dest: the root under which ``envs/``, ``conf/env/`` and ``tests/`` are written.
        force: allow overwriting the files of a family made by this scaffold.

    Raises:
        ScaffoldError: naming the problem and what is allowed.
    """
    if not re.fullmatch(NAME_PATTERN, name) or len(name) > MAX_NAME_LENGTH:
        raise ScaffoldError(
            f"NAME: {name!r} is not a valid family name; use lower-case snake_case matching "
            f"{NAME_PATTERN!r} (a letter first, then letters, digits and single underscores), "
            f"at most {MAX_NAME_LENGTH} characters, e.g. 'reservoir' or 'water_tank'"
        )
    if keyword.iskeyword(name):
        raise ScaffoldError(f"NAME: {name!r} is a Python keyword and cannot name a package")
    if name in RESERVED:
        raise ScaffoldError(
            f"NAME: {name!r} is reserved by the suite itself; reserved names: {sorted(RESERVED)}"
        )
    names = Names.of(name)
    family_dir = (dest / "envs" / name).resolve()
    installed = _installed_families()
    if name in installed and installed[name] != family_dir.parent:
        raise ScaffoldError(
            f"NAME: {name!r} clashes with the existing family envs.{name} "
            f"({installed[name] / name}); choose another name"
        )
    if family_dir.exists() or (dest / "envs" / f"{name}.py").exists():
        if not force:
            raise ScaffoldError(
                f"NAME: {name!r} clashes with the existing family {family_dir}; choose another "
                "name, or pass --force to overwrite a family made by lepton-new-env"
            )
        if not all((family_dir / module).is_file() for module in LAYOUT):
            raise ScaffoldError(
                f"refusing to overwrite {family_dir}: it is not a family with the scaffold's "
                f"layout ({', '.join(LAYOUT)}); choose another name"
            )
    other = _registered_elsewhere(names)
    if other is not None:
        raise ScaffoldError(
            f"NAME: {name!r} would register {names.env_id}, which is already registered with "
            f"entry point {other!r}; choose another name"
        )
    existing = [
        str(p)
        for p, template in planned_files(names, dest).items()
        if p.exists() and template != SHARED_TEMPLATE
    ]
    if existing and not family_dir.exists():
        # files of the suite or of another family (conf/env/<name>.yaml, tests/test_<name>.py),
        # not of a family made by the scaffold: --force never overwrites them
        raise ScaffoldError(
            f"NAME: {name!r} would overwrite files that belong to no family made by "
            f"lepton-new-env: {existing}; choose another name"
        )
    return names


def scaffold(name: str, dest: Path | None = None, *, force: bool = False) -> list[Path]:
    """Write a new family named ``name`` under ``dest``; return the files written.

    Args:
        name: the family name, snake_case (``water_tank`` gives ``lepton/WaterTank-v0``).
        dest: root under which ``envs/``, ``conf/env/`` and ``tests/`` are written (default:
            the repository root).
        force: overwrite the files of a family previously made by this scaffold.

    Raises:
        ScaffoldError: for a bad or clashing name, or existing files without ``force``.
    """
    root = find_repo_root() if dest is None else Path(dest).resolve()
    names = validate(name, root, force=force)
    written = []
    for path, template in planned_files(names, root).items():
        if template == SHARED_TEMPLATE and path.exists():
            continue
        text = render_template(template, names)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    format_files(written)
    return written


def format_files(paths: Sequence[Path]) -> bool:
    """Format the generated Python files with ruff using the project's settings, if available.

    The templates are formatted for names of usual length; a long name can push a line over the
    limit, which ruff then wraps. Returns ``False`` (and changes nothing) without ruff.
    """
    files = [str(p) for p in paths if p.suffix == ".py"]
    if not files:
        return True
    command = [sys.executable, "-m", "ruff", "format", "--quiet", "--no-cache"]
    config = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if config.is_file():
        command += ["--config", str(config)]
    try:
        result = subprocess.run(command + files, capture_output=True, text=True, check=False)
    except OSError:  # pragma: no cover - no usable interpreter
        return False
    return result.returncode == 0


def next_steps(names: Names, root: Path) -> str:
    """The instructions printed after a successful scaffold.

    When ``root/envs`` is not where Python imports the ``envs`` package from (``--dest``
    outside the checkout in use), the family is not registered yet, and the steps say so.
    """
    n = names.name
    registered = f"# {names.env_id} is registered"
    before: list[str] = []
    imported = _installed_families()
    if imported and (root / "envs").resolve() not in set(imported.values()):
        where = ", ".join(sorted({str(p) for p in imported.values()}))
        registered = f"# {names.env_id} is not registered yet (see above)"
        before = [
            f"Python imports the envs package from {where}, not from {root / 'envs'}: "
            f"move envs/{n}/, conf/env/{n}.yaml and tests/test_{n}.py into that checkout (or run "
            f"from a full checkout at {root}, first on PYTHONPATH) before these steps.",
        ]
    return "\n".join(
        [
            *before,
            "Next steps:",
            f"  1. lepton-envs --family {n}            {registered}",
            f"  2. pytest tests/test_{n}.py tests/test_envs_registry.py",
            f"  3. reshape envs/{n}/sim.py (dynamics), scenario.py (fields, presets),",
            "     env.py (spaces, observation builders, reward terms, docstring), baselines.py",
            f"  4. lepton-train env={n}                # Hydra preset conf/env/{n}.yaml",
            f"  5. ruff check envs/{n} tests/test_{n}.py && ruff format envs/{n} tests/test_{n}.py",
            f"(files under {root})",
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``lepton-new-env``."""
    parser = argparse.ArgumentParser(
        prog="lepton-new-env",
        description="Scaffold a new environment family: envs/NAME/, conf/env/NAME.yaml, "
        "tests/test_NAME.py and, where missing, conf/agent/target.yaml (its rule baseline).",
    )
    parser.add_argument("name", metavar="NAME", help="family name in snake_case, e.g. reservoir")
    parser.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="root under which envs/, conf/env/ and tests/ are written (default: the repository)",
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite a family made by lepton-new-env"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lepton-new-env``; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        root = find_repo_root() if args.dest is None else args.dest.resolve()
        written = scaffold(args.name, root, force=args.force)
    except ScaffoldError as exc:
        print(f"lepton-new-env: error: {exc}", file=sys.stderr)
        return 2
    names = Names.of(args.name)
    print(f"Created the family {names.name!r} ({names.env_id}):")
    for path in written:
        try:
            shown = path.relative_to(root)
        except ValueError:  # pragma: no cover - every file lies under root
            shown = path
        print(f"  {shown}")
    print(next_steps(names, root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
