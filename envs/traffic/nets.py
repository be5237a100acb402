"""The SUMO networks shipped with sumo-rl: RESCO benchmarks and the single intersection.

The files stay outside this package. :func:`sumo_rl_nets_dir` finds them in an installed
``sumo_rl`` package or in a per-user cache that is filled from the ``sumo-rl`` wheel on first
use (``pip download``; placing the wheel in the cache folder works offline).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from envs.traffic.scenario import TrafficScenario

SUMO_RL_VERSION = "1.4.5"
RESCO_NETS = (
    "grid4x4",
    "arterial4x4",
    "cologne1",
    "cologne3",
    "cologne8",
    "ingolstadt1",
    "ingolstadt7",
    "ingolstadt21",
)
"""The RESCO benchmark networks (Ault & Sharon, 2021) as packaged by sumo-rl."""
SUMO_RL_NETS = (*RESCO_NETS, "single-intersection")

_WHEEL = f"sumo_rl-{SUMO_RL_VERSION}-py3-none-any.whl"


def cache_dir() -> Path:
    """Folder of the extracted sumo-rl networks: ``$LEPTON_GYM_CACHE/sumo-rl-<version>``.

    Without ``LEPTON_GYM_CACHE`` the root is ``$XDG_CACHE_HOME/lepton-gym`` or
    ``~/.cache/lepton-gym``.
    """
    root = os.environ.get("LEPTON_GYM_CACHE")
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "lepton-gym"
    return base / f"sumo-rl-{SUMO_RL_VERSION}"


def _installed_nets() -> Path | None:
    try:
        spec = importlib.util.find_spec("sumo_rl")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        nets = Path(location) / "nets"
        if (nets / "RESCO").is_dir():
            return nets
    return None


def _extract(wheel: Path, target: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist() if m.startswith("sumo_rl/nets/")]
            if not members:
                raise RuntimeError(f"{wheel} holds no sumo_rl/nets/ folder")
            zf.extractall(tmp, members)
        try:
            (tmp / "sumo_rl").rename(target)
        except OSError:
            if not (target / "nets").is_dir():  # not another process winning the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sumo_rl_nets_dir() -> Path:
    """The ``sumo_rl/nets`` folder, downloading and caching the sumo-rl wheel if needed.

    Looks, in order, at an importable ``sumo_rl`` package (found without importing it), the
    cache folder :func:`cache_dir` and a wheel placed in that folder's parent, and finally
    runs ``python -m pip download --no-deps sumo-rl==1.4.5``.

    Raises:
        RuntimeError: when the wheel cannot be downloaded or extracted, with pip's message.
    """
    installed = _installed_nets()
    if installed is not None:
        return installed
    target = cache_dir()
    nets = target / "nets"
    if nets.is_dir():
        return nets
    target.parent.mkdir(parents=True, exist_ok=True)
    wheel = target.parent / _WHEEL
    if not wheel.is_file():
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--retries", "1",
                   "--timeout", "30", f"sumo-rl=={SUMO_RL_VERSION}", "-d", tmp]  # fmt: skip
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.TimeoutExpired) as exc:
                proc = None
                reason = repr(exc)
            else:
                reason = (proc.stderr or proc.stdout).strip()[-1500:]
            found = sorted(Path(tmp).glob("sumo_rl-*.whl"))
            if proc is None or proc.returncode != 0 or not found:
                raise RuntimeError(
                    f"could not fetch the sumo-rl {SUMO_RL_VERSION} networks: `{' '.join(cmd)}` "
                    f"failed: {reason}\nInstall it (`pip install sumo-rl=={SUMO_RL_VERSION}`) "
                    f"or put {_WHEEL} into {target.parent}"
                )
            shutil.move(str(found[0]), wheel)
    try:
        _extract(wheel, target)
    except (zipfile.BadZipFile, OSError) as exc:
        raise RuntimeError(f"could not extract {wheel}: {exc}") from exc
    return nets


def sumocfg_path(name: str) -> Path:
    """The ``.sumocfg`` of a RESCO network or ``"single-intersection"``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name not in SUMO_RL_NETS:
        raise ValueError(f"unknown sumo-rl network {name!r}; known: {', '.join(SUMO_RL_NETS)}")
    nets = sumo_rl_nets_dir()
    folder = nets / "RESCO" / name if name in RESCO_NETS else nets / name
    return folder / f"{name}.sumocfg"


def resco_scenario(name: str, **kwargs: Any) -> TrafficScenario:
    """Import a RESCO network (or ``"single-intersection"``) with its configured time window.

    Args:
        name: one of :data:`SUMO_RL_NETS`.
        **kwargs: passed to :func:`envs.traffic.sumo_import.load_sumo` (``begin``/``end``
            override the window of the ``.sumocfg``; ``name`` defaults to ``name``).

    Example:
        >>> sc = resco_scenario("grid4x4")  # doctest: +SKIP
        >>> (sc.begin, sc.end, sc.network.num_signals)  # doctest: +SKIP
        (0.0, 3600.0, 16)
    """
    from envs.traffic.sumo_import import load_sumocfg

    kwargs.setdefault("name", name)
    return load_sumocfg(sumocfg_path(name), **kwargs)
