"""The Lepton Gym registry: ``lepton/<Name>-v<N>`` ids over Gymnasium's, plus plugin discovery."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import warnings
from importlib.metadata import entry_points
from typing import Any

import gymnasium as gym

NAMESPACE = "lepton"
PLUGIN_GROUP = "lepton_gym.envs"


@dataclasses.dataclass(frozen=True)
class EnvInfo:
    """What the suite knows about a registered id beyond Gymnasium's spec."""

    id: str
    description: str
    family: str
    entry_point: str


_INFOS: dict[str, EnvInfo] = {}
_PLUGINS_LOADED = False


def register(
    id: str,
    entry_point: str,
    *,
    description: str,
    family: str = "custom",
    vector_entry_point: str | None = None,
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
) -> None:
    """Register an environment under the ``lepton/`` namespace; registering twice does nothing.

    Args:
        id: ``lepton/<Name>-v<N>`` (the namespace is added when missing).
        entry_point: lazy ``"module:Class"`` string of the env class.
        description: one line shown by ``lepton-envs``.
        family: scenario family (``traffic``, ``recsys``, ``ops`` or a custom name).
        vector_entry_point: ``"module:Class"`` of the native vector env, if any.
        max_episode_steps: episode limit applied by Gymnasium's ``TimeLimit``.
        kwargs: default constructor arguments.

    Raises:
        ValueError: if the id is malformed or already registered with another entry point.
    """
    if not id.startswith(f"{NAMESPACE}/"):
        id = f"{NAMESPACE}/{id}"
    ns, name, version = gym.envs.registration.parse_env_id(id)
    if version is None:
        raise ValueError(f"id: {id!r} needs a version suffix, e.g. '{id}-v0'")
    if not isinstance(entry_point, str) or ":" not in entry_point:
        raise ValueError(f"entry_point: expected a 'module:Class' string, got {entry_point!r}")
    existing = _INFOS.get(id)
    if existing is not None:
        if existing.entry_point != entry_point:
            raise ValueError(
                f"id {id!r} is already registered with entry point {existing.entry_point!r}"
            )
        return
    if id in gym.registry:
        raise ValueError(f"id {id!r} is already registered in gymnasium by another package")
    gym.register(
        id=id,
        entry_point=entry_point,
        vector_entry_point=vector_entry_point,
        max_episode_steps=max_episode_steps,
        kwargs=kwargs or {},
    )
    _INFOS[id] = EnvInfo(id=id, description=description, family=family, entry_point=entry_point)


def load_plugins() -> list[str]:
    """Import every ``lepton_gym.envs`` entry point (calling it if callable); return their names.

    A plugin that fails to load is reported with a warning and skipped.
    """
    global _PLUGINS_LOADED
    loaded = []
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            obj = ep.load()
            if callable(obj):
                obj()
            loaded.append(ep.name)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the suite
            warnings.warn(f"lepton_gym.envs plugin {ep.name!r} failed to load: {exc}", stacklevel=2)
    _PLUGINS_LOADED = True
    return loaded


def env_ids() -> list[str]:
    """All ids registered through :func:`register`, sorted."""
    return sorted(_INFOS)


def env_info(env_id: str) -> EnvInfo:
    """The suite's record of ``env_id``; raises with the closest ids when unknown."""
    return _INFOS[resolve_id(env_id)]


def resolve_id(env_id: str) -> str:
    """Return the registered id for ``env_id`` (the ``lepton/`` prefix may be omitted).

    Raises:
        gymnasium.error.UnregisteredEnv: naming the closest registered ids.
    """
    if env_id in _INFOS or env_id in gym.registry:
        return env_id
    prefixed = f"{NAMESPACE}/{env_id}"
    if prefixed in _INFOS:
        return prefixed
    known = env_ids()
    close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.4)
    close += [
        k for k in difflib.get_close_matches(prefixed, known, n=3, cutoff=0.4) if k not in close
    ]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise gym.error.UnregisteredEnv(
        f"unknown env id {env_id!r}.{hint} Registered ids: {known} (list them with `lepton-envs`)"
    )


def spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """Gymnasium's spec of ``env_id`` (with suggestions when unknown)."""
    return gym.spec(resolve_id(env_id))


def env_class(env_id: str) -> type | None:
    """The class behind ``env_id``'s entry point, or ``None`` if it is a factory function."""
    entry = spec(env_id).entry_point
    obj = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    return obj if isinstance(obj, type) else None


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` with the suite's error messages for unknown ids."""
    return gym.make(resolve_id(env_id), **kwargs)


def make_vec(env_id: str, num_envs: int = 1, **kwargs: Any) -> gym.vector.VectorEnv:
    """``gymnasium.make_vec``; uses the native batched vector env when the id has one."""
    return gym.make_vec(resolve_id(env_id), num_envs=num_envs, **kwargs)


def register_builtin() -> list[str]:
    """Register the envs of every family package of ``envs`` (each defines ``register_envs()``).

    A family package (``envs/<family>/__init__.py``) registers its ids in a ``register_envs``
    function; this keeps ``import envs`` free of gymnasium-heavy imports of the adapters (entry
    points stay lazy strings) and lets ``lepton-new-env`` add a family without editing this file.
    """
    import pkgutil

    import envs

    found = []
    for mod in pkgutil.iter_modules(envs.__path__):
        if not mod.ispkg or mod.name.startswith("_") or mod.name == "core":
            continue
        package = importlib.import_module(f"envs.{mod.name}")
        hook = getattr(package, "register_envs", None)
        if callable(hook):
            hook()
            found.append(mod.name)
    return found
