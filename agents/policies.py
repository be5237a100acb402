"""Policies that evaluation and rendering drive: SB3 models and the family's baselines.

Both expose SB3's ``predict(observation, state, episode_start, deterministic)``; a baseline
reads the state snapshot of the env it was built on, so it must be built on the env it acts in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from envs.core.baselines import Baseline, baseline_registry, find_lepton_env
from envs.core.env import LeptonEnv
from envs.core.registry import suggest


class Policy(Protocol):
    """Anything with SB3's ``predict`` signature."""

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Return actions (and a recurrent state) for ``observation``."""
        ...


def baseline_names(env: Any, requested: Sequence[str] | None = None) -> list[str]:
    """The baselines to compare against: ``requested`` (checked) or all of the family's.

    An env without baselines (a plain Gymnasium env registered with ``envs.register``, or a
    Lepton env whose family declares none) has none to compare against: ``[]`` for ``None``.

    Args:
        env: any env of the family (single, vector, wrapped or not) or its class.
        requested: names from the config's ``baselines`` (``None``: all; ``[]``: none).

    Raises:
        KeyError: naming ``baselines``, the unknown name and the allowed values.
    """
    if requested is not None and len(requested) == 0:
        return []
    if not has_baselines(env):
        if requested is None:
            return []
        raise KeyError(
            f"baselines: {_env_label(env)} has no baselines, so {list(requested)} cannot be "
            "compared against; allowed values: [] or null"
        )
    registry = baseline_registry(env)
    if requested is None:
        return registry.names()
    names = []
    for name in requested:
        if name not in registry:
            allowed = registry.names()
            raise KeyError(
                f"baselines: unknown baseline {name!r}; allowed values: {allowed}."
                f"{suggest(name, allowed)}"
            )
        if name not in names:
            names.append(name)
    return names


def has_baselines(env: Any) -> bool:
    """Whether ``env`` (an env, a vector env or a class) is a Lepton env with baselines.

    Raises:
        TypeError: for a vector env of Lepton envs that a baseline cannot see through (e.g. a
            ``DummyVecEnv``; see :func:`~envs.core.baselines.find_lepton_env`).
    """
    if isinstance(env, type):
        return issubclass(env, LeptonEnv) and bool(env.baselines)
    try:
        lepton = find_lepton_env(env)
    except TypeError:
        if any(isinstance(e, LeptonEnv) for e in _unwrapped_envs(env)):
            raise
        return False
    return bool(type(lepton).baselines)


def _unwrapped_envs(env: Any) -> list[Any]:
    """The innermost envs of an SB3 ``VecEnv`` or a Gymnasium vector env (``[]``: unknown)."""
    try:
        if hasattr(env, "get_attr"):  # SB3 VecEnv, through its wrappers
            return list(env.get_attr("unwrapped"))
        return [e.unwrapped for e in getattr(env, "envs", [])]  # gymnasium's SyncVectorEnv
    except Exception:  # an env that answers neither: no Lepton env found through it
        return []


def _env_label(env: Any) -> str:
    inner = _unwrapped_envs(env) or [getattr(env, "unwrapped", env)]
    first = inner[0]
    spec = getattr(first, "spec", None)
    name = first.__name__ if isinstance(first, type) else type(first).__name__
    return f"{spec.id} ({name})" if spec is not None else name


def reference_baseline(name: str | None, env: Any) -> str:
    """``name``, or for ``None`` the reference baseline of ``env``'s family."""
    if name is not None:
        return name
    return type(find_lepton_env(env)).reference_baseline


def make_baseline(
    name: str | None, env: Any, *, seed: int, fit_seeds: Sequence[int], field: str = "agent"
) -> Baseline:
    """Build the baseline ``name`` of ``env``'s family on ``env`` and fit it.

    Args:
        name: registry name (``base_stock``, ``s_s``, ``random``, ...); ``None``: the family's
            reference baseline (``LeptonEnv.reference_baseline``).
        env: the env the baseline will act in.
        seed: seed of the baseline's own generator (random baselines).
        fit_seeds: training episodes its parameters are tuned on.
        field: config field named in the error for an unknown name.

    Raises:
        KeyError: naming ``field``, the unknown name and the allowed values (none for an env
            without baselines, such as a plain Gymnasium env).
    """
    if not has_baselines(env):
        raise KeyError(
            f"{field}: {_env_label(env)} has no baselines, so the baseline "
            f"{name if name is not None else '(its reference)'!r} cannot act in it; allowed "
            "values: none (train or load an SB3 agent instead)"
        )
    registry = baseline_registry(env)
    name = reference_baseline(name, env)
    if name not in registry:
        allowed = registry.names()
        raise KeyError(
            f"{field}: unknown baseline {name!r}; allowed values: {allowed}.{suggest(name, allowed)}"
        )
    return registry.get(name)(env, seed=seed).fit(list(fit_seeds))
