"""Gymnasium adapter over a batched simulation core, and the batch runner all adapters share."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from envs.core.features import ObservationBuilder, RewardFunction, RewardTerm
from envs.core.registry import Registry
from envs.core.scenario import ScenarioList, ScenarioSource, as_source
from envs.core.sim import BatchedSim, Columns, Snapshot, StepResult
from envs.core.spaces import check_batch_actions


@dataclasses.dataclass
class BatchStep:
    """One step of a batch, already encoded for an adapter.

    ``final_obs`` and ``final_metrics`` hold, for replicas with ``done``, the observation and
    metrics of the step that ended their episode (the batch arrays hold the reset ones).
    """

    obs: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    terms: Mapping[str, np.ndarray]
    metrics: Mapping[str, np.ndarray]
    done: np.ndarray
    final_obs: np.ndarray | None


class BatchRunner:
    """Drives ``B`` replicas of an env's core: seeding, scenario draws, encoding, autoreset.

    The single env is a runner with ``B = 1``; vector adapters use the same runner with ``B``
    replicas, which is why replica ``i`` seeded ``s + i`` equals a single env seeded ``s + i``.

    Args:
        env: the environment whose configuration (scenario source, observation builder, reward
            weights, action space) the runner uses.
        batch_size: number of replicas.
        autoreset: reset finished replicas inside :meth:`step` (SAME_STEP semantics).
        max_episode_steps: truncate episodes after this many steps (``None``: never).
    """

    def __init__(
        self,
        env: LeptonEnv,
        batch_size: int,
        *,
        autoreset: bool,
        max_episode_steps: int | None = None,
    ) -> None:
        self.env = env
        self.batch_size = batch_size
        self.autoreset = autoreset
        self.max_episode_steps = max_episode_steps
        self.sim = env.make_sim(batch_size)
        if isinstance(env.source, ScenarioList):
            # every listed scenario must fit the arrays built for the first: say so now rather
            # than at whichever reset first draws a misfit
            for i, scenario in enumerate(env.source.scenarios):
                try:
                    self.sim.check_compatible(scenario)
                except ValueError as exc:
                    raise ValueError(f"scenario[{i}]: {exc}") from exc
        self.rngs: list[np.random.Generator | None] = [None] * batch_size
        self.episode_steps = np.zeros(batch_size, dtype=np.int64)
        self.obs: np.ndarray | None = None
        self._drawn: list[Any] = [None] * batch_size

    def seed(self, seeds: Sequence[int | None]) -> None:
        """Give every replica a fresh generator made from its seed (``None``: OS entropy)."""
        for i, s in enumerate(seeds):
            self.rngs[i] = seeding.np_random(s)[0]

    def reset(
        self, mask: np.ndarray | None = None, scenarios: Sequence[Any] | None = None
    ) -> np.ndarray:
        """Reset the replicas in ``mask`` (all by default) and return all observations.

        ``scenarios`` forces replica ``i``'s scenario where ``scenarios[i]`` is not ``None``;
        the others draw theirs from the env's source.
        """
        if mask is None:
            mask = np.ones(self.batch_size, dtype=bool)
        drawn: list[Any] = [None] * self.batch_size
        for i in np.flatnonzero(mask).tolist():
            if self.rngs[i] is None:
                self.rngs[i] = seeding.np_random(None)[0]
            rng = self.rngs[i]
            assert rng is not None
            forced = None if scenarios is None else scenarios[i]
            drawn[i] = self.env.source.sample(rng) if forced is None else forced
        self.sim.reset(mask, self.rngs, drawn)
        self.episode_steps[mask] = 0
        self.obs = self.env.encode_obs(self.sim.snapshot())
        self._check_obs_shape(self.obs)
        return self.obs

    def _check_obs_shape(self, obs: np.ndarray) -> None:
        """Raise if the builder encodes observations of another shape than its space's."""
        shape = self.env.observation_space.shape
        if shape is None or np.shape(obs) == (self.batch_size, *shape):
            return
        builder = self.env.observation_builder
        raise ValueError(
            f"observation: builder {self.env.observation_name!r} ({type(builder).__name__}) "
            f"encodes {self.batch_size} replicas as shape {np.shape(obs)}, but its space "
            f"{self.env.observation_space} needs {(self.batch_size, *shape)}; make its space "
            "and encode agree"
        )

    def reset_rows(self, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        """Reset the replicas in ``mask`` and write their new observations into ``obs``."""
        for i in mask.nonzero()[0].tolist():
            rng = self.rngs[i]
            assert rng is not None
            self._drawn[i] = self.env.source.sample(rng)
        self.sim.reset(mask, self.rngs, self._drawn)
        self.episode_steps[mask] = 0
        self.env.encode_obs_rows(self.sim.snapshot(), mask, obs)
        return obs

    def step(self, actions: np.ndarray) -> BatchStep:
        """Validate and apply ``actions`` (``[B, ...]``), then autoreset finished replicas.

        The observations, rewards and flags returned are fresh arrays; ``metrics`` may be views
        of the core's buffers, which the next step overwrites (adapters convert or copy them).
        """
        if self.obs is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        fused = self.env.fused_batch_step(self, actions)
        if fused is not None:
            return fused
        actions = check_batch_actions(self.env.action_space, actions, self.batch_size)
        result, obs = self.env.sim_step(self.sim, actions)
        terms = self.env.reward.terms(result)
        rewards = self.env.reward.total(terms)
        self.episode_steps += 1
        # copies: a core may hand out the same flag buffers at every step
        terminated = np.array(result.terminated, dtype=bool)
        truncated = np.array(result.truncated, dtype=bool)
        if self.max_episode_steps is not None:
            truncated = truncated | (self.episode_steps >= self.max_episode_steps)
        done = terminated | truncated
        final_obs = None
        metrics = result.metrics
        if not isinstance(metrics, Columns):
            metrics = {k: np.asarray(v) for k, v in metrics.items()}
        if self.autoreset and done.any():
            # the encoder returns a fresh array: keep it as the final observations and write
            # the first observations of the new episodes into a copy
            final_obs = obs
            obs = self.reset_rows(done, obs.copy())
        self.obs = obs
        return BatchStep(obs, rewards, terminated, truncated, terms, metrics, done, final_obs)

    def snapshot(self) -> Snapshot:
        """Read-only state of all replicas (for baselines and renderers)."""
        return self.sim.snapshot()


class LeptonEnv(gym.Env[np.ndarray, Any]):
    """Base class of Lepton Gym environments: a Gymnasium ``Env`` over a batched core with B = 1.

    Family subclasses set the class attributes below and implement :meth:`make_sim`,
    :meth:`make_action_space`, :meth:`actions_to_sim` and :meth:`coerce_scenario`. The same
    instance configures the vector adapters (:class:`envs.core.vector.LeptonVectorEnv` and
    :class:`envs.core.sb3.LeptonVecEnv`), so every adapter shares one definition.

    Args:
        scenario: a scenario dataclass, a preset name, a mapping of scenario fields, a list of
            those (one drawn per reset) or a :class:`~envs.core.scenario.ScenarioSource`.
        observation: name of a registered observation builder.
        reward_weights: ``{term: weight}`` overriding the family defaults (missing terms keep
            their default weight).
        render_mode: ``"human"``, ``"rgb_array"`` or ``None``.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 4}  # noqa: RUF012

    observation_builders: ClassVar[Registry[type[ObservationBuilder]]]
    reward_terms: ClassVar[Registry[RewardTerm]]
    default_reward_weights: ClassVar[Mapping[str, float]] = {}
    scenario_type: ClassVar[type]
    renderer: ClassVar[str] = ""
    """``"module:Class"`` of the pygame renderer, imported on first :meth:`render`."""
    baselines: ClassVar[str] = ""
    """``"module:REGISTRY"`` of the family's classic controllers (see ``envs.core.baselines``)."""
    reference_baseline: ClassVar[str] = ""
    """The practitioner's controller of the family, the default to measure regret against."""
    shared_vec_env: ClassVar[str] = ""
    """``"module:Class"`` of the parameter-sharing SB3 VecEnv (``env.kwargs.parameter_sharing``)."""

    def __init__(
        self,
        scenario: Any = None,
        *,
        observation: str = "default",
        reward_weights: Mapping[str, float] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode: {render_mode!r} is not supported; allowed values: "
                f"{self.metadata['render_modes']} or None"
            )
        self.render_mode = render_mode
        self.source: ScenarioSource[Any] = as_source(
            scenario, self.coerce_scenario, self.scenario_type
        )
        self.structure = self.source.structure
        self.observation_name = observation
        builder = self.observation_builders.get(observation, field="observation")
        self.observation_builder = builder(self.structure)
        self.observation_space = self.observation_builder.space
        self.action_space = self.make_action_space()
        weights = dict(self.default_reward_weights)
        weights.update(dict(reward_weights or {}))
        self.reward = RewardFunction(self.reward_terms, weights)
        self._runner: BatchRunner | None = None
        self._view: Any = None
        self._last_info: dict[str, Any] = {}

    # --- hooks for family subclasses -------------------------------------------------------
    def coerce_scenario(self, obj: Any) -> Any:
        """Turn ``None``, a preset name or a mapping of fields into the family's scenario."""
        raise NotImplementedError

    def make_sim(self, batch_size: int) -> BatchedSim[Any, Any]:
        """Build the family's core for ``batch_size`` replicas of ``self.structure``."""
        raise NotImplementedError

    def make_action_space(self) -> gym.spaces.Space:
        """Return the single-env action space for ``self.structure``."""
        raise NotImplementedError

    def actions_to_sim(self, actions: np.ndarray) -> np.ndarray:
        """Map validated actions ``[B, ...]`` to what the core's ``step`` takes."""
        return actions

    def sim_step(
        self, sim: BatchedSim[Any, Any], actions: np.ndarray
    ) -> tuple[StepResult, np.ndarray]:
        """Advance ``sim`` by validated ``actions`` and encode the new observations.

        One hook for both, so that a family can fuse them into one compiled call; the result
        must equal ``sim.step(self.actions_to_sim(actions))`` followed by :meth:`encode_obs`.
        """
        result = sim.step(self.actions_to_sim(actions))
        return result, self.encode_obs(sim.snapshot())

    def fused_batch_step(self, runner: BatchRunner, actions: np.ndarray) -> BatchStep | None:
        """Run all of :meth:`BatchRunner.step` at once, or return ``None`` for the generic path.

        A family may fuse the validation, core step, reward, episode count and encoding of a
        batch into one compiled call; the result must equal the generic path's, and ``None``
        must leave the runner unchanged (invalid actions take the generic path, which reports
        them).
        """
        return None

    def encode_obs(self, snapshot: Snapshot) -> np.ndarray:
        """Encode all replicas' observations with the configured builder."""
        return self.observation_builder.encode(snapshot)

    def encode_obs_rows(self, snapshot: Snapshot, mask: np.ndarray, out: np.ndarray) -> None:
        """Encode the replicas in ``mask`` into ``out`` (override with :meth:`encode_obs`)."""
        self.observation_builder.encode_rows(snapshot, mask, out)

    # --- Gymnasium API ---------------------------------------------------------------------
    @property
    def runner(self) -> BatchRunner:
        if self._runner is None:
            self._runner = BatchRunner(self, 1, autoreset=False)
        return self._runner

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``options={"scenario": ...}`` forces the episode's scenario."""
        super().reset(seed=seed)
        runner = self.runner
        runner.rngs[0] = self.np_random
        scenarios = None
        if options and "scenario" in options:
            scenarios = [self.coerce_scenario(options["scenario"])]
        obs = runner.reset(scenarios=scenarios)
        self._last_info = {}
        if self.render_mode == "human":
            self.render()
        return obs[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._runner is None or self._runner.obs is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        out = self._runner.step(np.asarray(action)[None])
        info = step_info(out.terms, out.metrics, 0)
        self._last_info = info
        if self.render_mode == "human":
            self.render()
        return (
            out.obs[0],
            float(out.rewards[0]),
            bool(out.terminated[0]),
            bool(out.truncated[0]),
            info,
        )

    def snapshot(self) -> Snapshot:
        """Read-only state of the current episode (batch axis of one)."""
        return self.runner.snapshot()

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without a render_mode; pass render_mode='rgb_array' or 'human'"
            )
            return None
        if self._runner is None or self._runner.obs is None:
            raise gym.error.ResetNeeded("call reset() before render()")
        return self.draw(self._runner.snapshot().replica(0), self._last_info)

    def draw(self, snapshot: Snapshot, info: Mapping[str, Any]) -> np.ndarray | None:
        """Draw one replica's ``snapshot`` with the family renderer (pygame, imported lazily)."""
        if self._view is None:
            module, _, cls = self.renderer.partition(":")
            try:
                view_cls = getattr(importlib.import_module(module), cls)
            except ImportError as exc:  # pragma: no cover - depends on the installation
                raise gym.error.DependencyNotInstalled(
                    f'rendering needs pygame ({exc}); run `pip install "pygame==2.6.1"`'
                ) from exc
            self._view = view_cls(
                self.structure, self.render_mode, self.metadata.get("render_fps", 4)
            )
        return self._view.draw(snapshot, info)

    def close(self) -> None:
        if self._view is not None:
            self._view.close()
            self._view = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_view"] = None
        # reward terms may be closures; keep the weights and rebind the class's registry
        state["reward"] = dict(self.reward.weights)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.pop("reward")
        self.__dict__.update(state)
        self.reward = RewardFunction(self.reward_terms, weights)


def step_info(
    terms: Mapping[str, np.ndarray], metrics: Mapping[str, np.ndarray], i: int
) -> dict[str, Any]:
    """The ``info`` dict of replica ``i``: every metric plus ``reward_terms``."""
    info: dict[str, Any]
    if isinstance(metrics, Columns):
        info = metrics.row(i)
    else:
        info = {k: _item(v[i]) for k, v in metrics.items()}
    if isinstance(terms, Columns):
        info["reward_terms"] = terms.row(i)
    else:
        info["reward_terms"] = {k: float(v[i]) for k, v in terms.items()}
    return info


def _item(value: np.ndarray) -> Any:
    return value.item() if value.ndim == 0 else value.copy()
