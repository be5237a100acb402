"""Native Stable-Baselines3 ``VecEnv`` over a batched core (no subprocesses, no copies per env)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from envs.core.env import BatchRunner, LeptonEnv
from envs.core.sim import Columns


class RunnerVecEnv(VecEnv):
    """The SB3 ``VecEnv`` plumbing of a vector env driven by a :class:`BatchRunner`.

    Subclasses set ``self.env`` (the configuring :class:`LeptonEnv`) and ``self.runner`` and
    implement ``reset``, ``step_async`` and ``step_wait``; attribute access and method calls
    go to the shared env.
    """

    env: LeptonEnv
    runner: BatchRunner
    _replica_infos: Sequence[Mapping[str, Any]] = ()
    """The last step's ``info`` of each replica, for the renderer's overlay."""

    def snapshot(self) -> Any:
        """Read-only state of all replicas (for baselines and renderers)."""
        return self.runner.snapshot()

    def close(self) -> None:
        self.env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        """One frame per replica (``rgb_array``), which ``render()`` tiles into one image."""
        if self.render_mode != "rgb_array":
            return [None] * self.runner.batch_size
        return [self._draw(i) for i in range(self.runner.batch_size)]

    def render(self, mode: str | None = None) -> np.ndarray | None:
        """SB3's ``VecEnv.render``; in ``human`` mode the window shows replica 0."""
        if self.render_mode == "human" and mode in (None, "human"):
            self._draw(0)
            return None
        return super().render(mode)

    def _draw(self, i: int) -> np.ndarray | None:
        if self.runner.obs is None:
            raise gym.error.ResetNeeded("call reset() before render()")
        info = self._replica_infos[i] if i < len(self._replica_infos) else {}
        return self.env.draw(self.runner.snapshot().replica(i), info)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.env, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call ``method_name`` on the shared env once per index; ``render`` draws each replica.

        The shared env configures the replicas and never runs an episode itself, so a method
        that reads an episode's state is answered by the replicas: ``render`` is the only one
        of the Gymnasium API that a vector env's caller reaches this way.
        """
        if method_name == "render" and not method_args and not method_kwargs:
            return [self._draw(i) for i in self._get_indices(indices)]
        return [
            getattr(self.env, method_name)(*method_args, **method_kwargs)
            for _ in self._get_indices(indices)
        ]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def _get_indices(self, indices: VecEnvIndices) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices


class LeptonVecEnv(RunnerVecEnv):
    """SB3 vector env: every sub-env is a replica of one batched core stepped in one call.

    Semantics match SB3's ``DummyVecEnv``: finished replicas are reset inside ``step_wait``,
    the last observation is in ``info["terminal_observation"]`` and ``TimeLimit.truncated``
    marks truncations; ``seed(s)`` makes the next reset give replica ``i`` the seed ``s + i``.

    Args:
        env: a configured :class:`LeptonEnv` (its own core is not used).
        num_envs: number of replicas.
        max_episode_steps: truncate episodes after this many steps.
    """

    def __init__(self, env: LeptonEnv, num_envs: int, max_episode_steps: int | None = None):
        self.env = env
        self.runner = BatchRunner(
            env, num_envs, autoreset=True, max_episode_steps=max_episode_steps
        )
        self._actions: np.ndarray | None = None
        super().__init__(num_envs, env.observation_space, env.action_space)

    def reset(self) -> VecEnvObs:
        seeds = list(self._seeds)
        if any(s is not None for s in seeds) or any(r is None for r in self.runner.rngs):
            self.runner.seed(seeds)
        scenarios = None
        if any("scenario" in o for o in self._options):
            # replicas without the option draw theirs from the env's source
            scenarios = [
                self.env.coerce_scenario(o["scenario"]) if "scenario" in o else None
                for o in self._options
            ]
        obs = self.runner.reset(scenarios=scenarios)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._replica_infos = ()
        return obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async must be called before step_wait"
        out = self.runner.step(self._actions)
        self._actions = None
        infos = _step_infos(out.terms, out.metrics, self.num_envs)
        self._replica_infos = infos
        if out.final_obs is not None:
            for i in np.flatnonzero(out.done):
                infos[i]["terminal_observation"] = out.final_obs[i]
                infos[i]["TimeLimit.truncated"] = bool(out.truncated[i] and not out.terminated[i])
        # the runner hands out a fresh observation array every step and never writes to it again
        return out.obs, out.rewards.astype(np.float32), out.done, infos


def _step_infos(
    terms: Mapping[str, np.ndarray], metrics: Mapping[str, np.ndarray], num_envs: int
) -> list[dict[str, Any]]:
    """``[step_info(terms, metrics, i) for i in range(num_envs)]``, converting each array once.

    Same keys, values and Python types as :func:`envs.core.env.step_info`, at a fraction of the
    cost: one ``tolist()`` per array instead of one numpy scalar per replica and key.
    """
    cols = _columns(metrics)
    term_cols = (
        _columns(terms)
        if isinstance(terms, Columns)
        else {k: np.asarray(v, dtype=np.float64).tolist() for k, v in terms.items()}
    )
    infos = []
    for i in range(num_envs):
        info: dict[str, Any] = {k: col[i] for k, col in cols.items()}
        info["reward_terms"] = {k: col[i] for k, col in term_cols.items()}
        infos.append(info)
    return infos


def _columns(values: Mapping[str, np.ndarray]) -> dict[str, list[Any]]:
    """``{name: per-replica values as Python objects}``, one conversion per array."""
    if isinstance(values, Columns):
        return dict(zip(values.names, values.array.T.tolist(), strict=True))
    return {k: v.tolist() if v.ndim == 1 else [row.copy() for row in v] for k, v in values.items()}


def make_sb3_vec_env(
    env_id: str,
    num_envs: int = 1,
    seed: int | None = None,
    max_episode_steps: int | None = None,
    **kwargs: Any,
) -> VecEnv:
    """Build an SB3 ``VecEnv`` for a registered id: native for Lepton envs, else ``DummyVecEnv``.

    Args:
        env_id: a registered id (``lepton/Inventory-v0``).
        num_envs: number of replicas.
        seed: if given, the first reset gives replica ``i`` the seed ``seed + i``.
        max_episode_steps: truncate episodes after this many steps, as ``gymnasium.make``'s
            argument does (``None``: the registered limit).
        **kwargs: env constructor arguments.
    """
    from envs.registration import env_class, spec

    env_spec = spec(env_id)
    cls = env_class(env_id)
    limit = env_spec.max_episode_steps if max_episode_steps is None else max_episode_steps
    if cls is not None and issubclass(cls, LeptonEnv):
        venv: VecEnv = LeptonVecEnv(cls(**{**env_spec.kwargs, **kwargs}), num_envs, limit)
    else:
        venv = DummyVecEnv(
            [lambda: gym.make(env_id, max_episode_steps=limit, **kwargs) for _ in range(num_envs)]
        )
    if seed is not None:
        venv.seed(seed)
    return venv
