"""The Lepton Gym registry: ``lepton/<Name>-v<N>`` ids over Gymnasium's, plus plugin discovery."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import sys
import warnings
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import gymnasium as gym

NAMESPACE = "lepton"
PLUGIN_GROUP = "lepton_gym.envs"

ENTRY_POINT_FORM = "'package.module:Name'"
"""The form of an env's (or vector env's) entry point string, for messages."""

PLUGIN_VALUE_FORM = "'package.module:register_envs' (or 'package.module')"
"""The form of the value of a ``lepton_gym.envs`` entry point, for messages."""


@dataclasses.dataclass(frozen=True)
class EnvInfo:
    """What the suite knows about a registered id beyond Gymnasium's spec."""

    id: str
    description: str
    family: str
    entry_point: str


_INFOS: dict[str, EnvInfo] = {}
_PLUGINS_LOADED = False
_DEFERRED: list[EntryPoint] = []
"""Plugin entry points whose module was being imported when the plugins were loaded."""


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
        ValueError: if the id or an entry point is malformed, or the id is already registered
            with another entry point.
    """
    if not id.startswith(f"{NAMESPACE}/"):
        if "/" in id:
            raise ValueError(
                f"id: {id!r} has the namespace {id.partition('/')[0]!r}; ids are registered under "
                f"{NAMESPACE!r}: '{NAMESPACE}/<Name>-v<N>' or '<Name>-v<N>'"
            )
        id = f"{NAMESPACE}/{id}"
    try:
        _, _, version = gym.envs.registration.parse_env_id(id)
    except gym.error.Error:
        raise ValueError(
            f"id: {id!r} is malformed; expected '{NAMESPACE}/<Name>-v<N>' with a name of letters, "
            "digits, '_', '-', '.' or ':', e.g. 'lepton/Reservoir-v0'"
        ) from None
    if version is None:
        raise ValueError(f"id: {id!r} needs a version suffix, e.g. '{id}-v0'")
    _check_entry_point("entry_point", entry_point)
    if vector_entry_point is not None:
        _check_entry_point("vector_entry_point", vector_entry_point)
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


def _dotted(name: str) -> bool:
    """Whether ``name`` is a dotted path of identifiers (``pkg.module``, ``Class``)."""
    return all(p.isidentifier() for p in name.split("."))


def _check_entry_point(field: str, value: Any) -> None:
    """Raise a ``ValueError`` naming ``field`` unless ``value`` is a ``module:Name`` string."""
    module, sep, attr = value.partition(":") if isinstance(value, str) else ("", "", "")
    if not sep or not _dotted(module) or not attr.isidentifier():
        raise ValueError(
            f"{field}: expected a {ENTRY_POINT_FORM} string (a dotted module path, one ':' and "
            f"the name of a class or function in that module), got {value!r}"
        )


def load_plugins() -> list[str]:
    """Import every ``lepton_gym.envs`` entry point (calling it if callable); return their names.

    An entry point names a function that registers ids (``my_package.lepton:register_envs``)
    or a module that registers them when imported (``my_package.lepton``). A plugin that fails
    to load, whose value is malformed or that names an environment class instead of such a
    function, is reported with a warning and skipped.

    A plugin whose module is still being imported (it imported ``envs`` itself, which loads
    the plugins: ``from my_package.lepton import ...`` before ``import envs``) is loaded once
    that import has finished, on the next lookup of an id (:func:`env_ids`,
    :func:`resolve_id` and the functions built on them); it is not among the names returned.
    """
    global _PLUGINS_LOADED
    loaded = []
    for ep in entry_points(group=PLUGIN_GROUP):
        if _being_imported(_plugin_module(ep.value)):
            if ep not in _DEFERRED:
                _DEFERRED.append(ep)
            continue
        if _load_plugin(ep):
            loaded.append(ep.name)
    _PLUGINS_LOADED = True
    return loaded


def _plugin_module(value: str) -> str:
    return value.partition(":")[0].strip()


def _being_imported(module: str) -> bool:
    """Whether ``module`` is in the middle of its import (partially initialised)."""
    spec = getattr(sys.modules.get(module), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _load_deferred() -> None:
    """Load the deferred plugins whose module has finished importing."""
    for ep in list(_DEFERRED):
        if not _being_imported(_plugin_module(ep.value)):
            _DEFERRED.remove(ep)
            _load_plugin(ep, stacklevel=4)


def _load_plugin(ep: EntryPoint, stacklevel: int = 3) -> bool:
    """Load one ``lepton_gym.envs`` entry point; warn and return ``False`` if it fails."""
    where = f"lepton_gym.envs plugin {ep.name!r}"
    module, sep, attr = ep.value.partition(":")
    module, attr = module.strip(), attr.split("[")[0].strip()
    if not _dotted(module) or (sep and not _dotted(attr)):
        warnings.warn(
            f"{where} failed to load: its value {ep.value!r} is not of the form "
            f"{PLUGIN_VALUE_FORM}",
            stacklevel=stacklevel,
        )
        return False
    try:
        obj = ep.load()
        if isinstance(obj, type) and issubclass(obj, gym.Env):
            warnings.warn(
                f"{where} failed to load: its value {ep.value!r} names the environment class "
                f"{obj.__name__}, which registers nothing; name a function that calls "
                f"envs.register(...), of the form {PLUGIN_VALUE_FORM}",
                stacklevel=stacklevel,
            )
            return False
        if callable(obj):
            obj()
    except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the suite
        warnings.warn(f"{where} failed to load: {exc} (value {ep.value!r})", stacklevel=stacklevel)
        return False
    return True


def env_ids() -> list[str]:
    """All ids registered through :func:`register`, sorted."""
    if _DEFERRED:
        _load_deferred()
    return sorted(_INFOS)


def env_info(env_id: str) -> EnvInfo:
    """The suite's record of ``env_id``; raises with the closest ids when unknown."""
    return _INFOS[resolve_id(env_id)]


def resolve_id(env_id: str) -> str:
    """Return the registered id for ``env_id`` (the ``lepton/`` prefix may be omitted).

    Raises:
        gymnasium.error.UnregisteredEnv: naming the closest registered ids.
    """
    if _DEFERRED:
        _load_deferred()
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
