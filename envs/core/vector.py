"""Native Gymnasium ``VectorEnv`` over a batched core: one core call per step for all replicas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.core.env import BatchRunner, LeptonEnv
from envs.core.sim import Columns


class LeptonVectorEnv(VectorEnv):
    """A Gymnasium vector env whose ``num_envs`` sub-envs are the replicas of one batched core.

    Autoreset follows ``AutoresetMode.SAME_STEP``: a replica that ends is reset inside
    :meth:`step`; the returned observation is the first of the new episode and the last one is in
    ``info["final_obs"]`` (with ``info["_final_obs"]`` marking which replicas ended) and its
    metrics in ``info["final_info"]``. Seeding ``reset(seed=s)`` gives replica ``i`` the seed
    ``s + i``, exactly like :class:`gymnasium.vector.SyncVectorEnv`, so replica ``i`` reproduces
    a single env reset with ``seed=s + i``.

    Family subclasses only set :attr:`env_cls`; ``gymnasium.make_vec`` builds them through the
    registered ``vector_entry_point``.

    Args:
        num_envs: number of replicas.
        max_episode_steps: truncate episodes after this many steps (``None``: never).
        **kwargs: passed to :attr:`env_cls` (scenario, observation, reward weights, render mode).
    """

    env_cls: ClassVar[type[LeptonEnv]]

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, **kwargs: Any):
        self.env = self.env_cls(**kwargs)
        self.num_envs = num_envs
        self.render_mode = self.env.render_mode
        self.metadata = dict(self.env.metadata)
        self.metadata["autoreset_mode"] = AutoresetMode.SAME_STEP
        self.single_observation_space = self.env.observation_space
        self.single_action_space = self.env.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.runner = BatchRunner(
            self.env, num_envs, autoreset=True, max_episode_steps=max_episode_steps
        )
        self._seeded = False

    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all replicas (or those in ``options["reset_mask"]``).

        ``options["scenario"]`` (a scenario, preset name or mapping, as for a single env) is the
        scenario of the episodes started here; later episodes draw from the env's source again.
        """
        if seed is None and not self._seeded:
            seeds: list[int | None] = [None] * self.num_envs
            self.runner.seed(seeds)
        elif isinstance(seed, int):
            self.runner.seed([seed + i for i in range(self.num_envs)])
        elif seed is not None:
            if len(seed) != self.num_envs:
                raise ValueError(f"seed: expected {self.num_envs} seeds, got {len(seed)}")
            self.runner.seed(list(seed))
        self._seeded = True
        options = options or {}
        mask = options.get("reset_mask")
        scenarios = None
        if options.get("scenario") is not None:
            # like a single env's reset option, for every replica reset here
            scenarios = [self.env.coerce_scenario(options["scenario"])] * self.num_envs
        obs = self.runner.reset(mask, scenarios)
        return obs.copy(), {}

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        out = self.runner.step(np.asarray(actions))
        ones = np.ones(self.num_envs, dtype=bool)
        metrics = _named_columns(out.metrics)
        infos: dict[str, Any] = {}
        for key, value in metrics.items():
            infos[key] = value
            infos[f"_{key}"] = ones
        infos["reward_terms"] = _named_columns(out.terms)
        infos["_reward_terms"] = ones
        if out.final_obs is not None:
            infos["final_obs"] = out.final_obs
            infos["_final_obs"] = out.done.copy()
            final_info: dict[str, Any] = dict(metrics)
            final_info.update({f"_{k}": out.done for k in metrics})
            infos["final_info"] = final_info
            infos["_final_info"] = out.done.copy()
        # the runner hands out a fresh observation array every step and never writes to it again
        return out.obs, out.rewards.copy(), out.terminated, out.truncated, infos

    def snapshot(self) -> Any:
        """Read-only state of all replicas (for baselines)."""
        return self.runner.snapshot()

    def render(self) -> tuple[np.ndarray, ...] | None:
        """Render replica 0 (``rgb_array`` only)."""
        if self.render_mode != "rgb_array" or self.runner.obs is None:
            return None
        frame = self.env.draw(self.runner.snapshot().replica(0), {})
        return None if frame is None else (frame,)

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()


def _named_columns(values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``values`` as a plain dict of ``[B, ...]`` arrays that no later step writes to.

    A core's metrics may be views of buffers it overwrites at the next step, so they are
    copied (one copy of the whole table for ``Columns``).
    """
    if isinstance(values, Columns):
        return dict(zip(values.names, values.array.T.copy(), strict=True))
    return {k: np.array(v) for k, v in values.items()}
