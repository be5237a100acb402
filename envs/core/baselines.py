"""Classic controllers as policies with Stable-Baselines3's ``predict`` signature.

A baseline acts on the environment's state snapshot (the same information a practitioner's rule
uses), so it works unchanged on a single env, a native vector env or an SB3 ``VecEnv``, and it is
unaffected by observation normalisation.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from envs.core.env import LeptonEnv
from envs.core.registry import Registry
from envs.core.sim import Snapshot


def find_lepton_env(env: Any) -> LeptonEnv:
    """Return the :class:`LeptonEnv` that configures ``env`` (through any wrappers)."""
    seen = 0
    while seen < 64:
        if isinstance(env, LeptonEnv):
            return env
        inner = getattr(env, "env", None)
        if isinstance(inner, LeptonEnv):
            return inner
        nxt = getattr(env, "venv", None) or inner
        if nxt is None:
            unwrapped = getattr(env, "unwrapped", None)
            if isinstance(unwrapped, LeptonEnv):
                return unwrapped
            break
        env = nxt
        seen += 1
    if hasattr(env, "envs") or hasattr(env, "num_envs"):
        raise TypeError(
            f"{type(env).__name__}: a baseline reads the state of one Lepton Gym core and cannot "
            "see through this vector env; use the suite's native vector env (gymnasium.make_vec "
            "with vectorization_mode='vector_entry_point', or envs.core.sb3.make_sb3_vec_env)"
        )
    raise TypeError(f"{type(env).__name__} does not wrap a Lepton Gym environment")


def find_snapshot_source(env: Any) -> Any:
    """Return the innermost object of ``env`` exposing ``snapshot()`` of all its replicas."""
    seen = 0
    while seen < 64:
        if hasattr(env, "snapshot") and not _is_plain_wrapper(env):
            return env
        nxt = getattr(env, "venv", None) or getattr(env, "env", None)
        if nxt is None:
            break
        env = nxt
        seen += 1
    unwrapped = getattr(env, "unwrapped", None)
    if unwrapped is not None and hasattr(unwrapped, "snapshot"):
        return unwrapped
    raise TypeError(f"{type(env).__name__} exposes no state snapshot for a baseline")


def _is_plain_wrapper(env: Any) -> bool:
    # gymnasium wrappers forward attribute access; only the env itself is the source
    import gymnasium as gym

    return isinstance(env, gym.Wrapper)


class Baseline(ABC):
    """Base class of the classic controllers.

    Args:
        env: the environment the baseline acts in (single, vector or SB3 ``VecEnv``, wrapped or
            not). It provides the state snapshot and the action encoding.
        seed: seed of the baseline's own generator (only random baselines use it).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    oracle: ClassVar[bool] = False
    """Whether the baseline reads state the agent does not observe (see :meth:`reads_hidden_state`)."""

    def __init__(self, env: Any, seed: int | None = None) -> None:
        self.env = env
        self.lepton = find_lepton_env(env)
        self.source = find_snapshot_source(env)
        self.rng = np.random.default_rng(seed)
        self._replica_rngs: list[np.random.Generator] | None = None

    def use_replica_generators(self, rngs: Sequence[np.random.Generator] | None) -> None:
        """Draw replica ``i``'s random actions from ``rngs[i]`` (``None``: all from :attr:`rng`).

        Evaluation gives every episode its own stream, so a random baseline's episode does not
        depend on how many replicas run beside it.
        """
        self._replica_rngs = None if rngs is None else list(rngs)

    def draw(
        self, batch: int, sample: Callable[[np.random.Generator, int], np.ndarray]
    ) -> np.ndarray:
        """Random draws for ``batch`` replicas: ``sample(rng, n)`` returns ``n`` replicas' rows.

        One call on :attr:`rng` for the whole batch, or one per replica on its own generator
        (see :meth:`use_replica_generators`), stacked.
        """
        rngs = self._replica_rngs
        if rngs is None:
            return sample(self.rng, batch)
        if len(rngs) < batch:
            raise ValueError(f"{len(rngs)} replica generators for {batch} replicas")
        return np.concatenate([sample(rngs[i], 1) for i in range(batch)])

    def fit(self, seeds: list[int]) -> Baseline:
        """Tune the baseline's parameters on training episodes ``seeds`` (default: nothing)."""
        return self

    def params(self) -> dict[str, Any]:
        """The baseline's parameters, for reports."""
        return {}

    def reads_hidden_state(self) -> bool:
        """Whether this baseline, in its environment, reads state the agent's observation hides.

        Such a baseline is an oracle: a reference to measure against, not a rule a practitioner
        could run, so the model zoo does not count it as the family's best simple baseline.
        """
        return self.oracle

    @abstractmethod
    def act(self, snapshot: Snapshot) -> np.ndarray:
        """Return the actions of all replicas ``[B, *action_shape]`` for ``snapshot``."""

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """SB3-style ``predict``: one action on a single env (wrapped or not), else a batch.

        Whether the env is single decides, not the observation's shape: a wrapper may change
        the observation (``DictObservation``) while the env still takes one action.
        """
        import gymnasium as gym

        actions = self.act(self.source.snapshot())
        return (actions[0] if isinstance(self.env, gym.Env) else actions), None


def baseline_registry(env: Any) -> Registry[type[Baseline]]:
    """The baseline registry of ``env``'s family (from ``LeptonEnv.baselines``)."""
    lepton = env if isinstance(env, type) else type(find_lepton_env(env))
    path = getattr(lepton, "baselines", "")
    if not path:
        raise ValueError(f"{lepton.__name__} declares no baselines")
    module, _, attr = path.partition(":")
    registry: Registry[type[Baseline]] = getattr(importlib.import_module(module), attr)
    return registry
