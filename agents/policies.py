"""Policies that evaluation and rendering drive: SB3 models and the family's baselines.

Both expose SB3's ``predict(observation, state, episode_start, deterministic)``; a baseline
reads the state snapshot of the env it was built on, so it must be built on the env it acts in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from envs.core.baselines import Baseline, baseline_registry, find_lepton_env
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

    Args:
        env: any env of the family (single, vector, wrapped or not) or its class.
        requested: names from the config's ``baselines`` (``None``: all).

    Raises:
        KeyError: naming ``baselines``, the unknown name and the allowed values.
    """
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
        KeyError: naming ``field``, the unknown name and the allowed values.
    """
    registry = baseline_registry(env)
    name = reference_baseline(name, env)
    if name not in registry:
        allowed = registry.names()
        raise KeyError(
            f"{field}: unknown baseline {name!r}; allowed values: {allowed}.{suggest(name, allowed)}"
        )
    return registry.get(name)(env, seed=seed).fit(list(fit_seeds))
