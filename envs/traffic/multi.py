"""Multi-agent adapters of the traffic simulator: one agent per controlled signal.

- :class:`TrafficParallelEnv`: a PettingZoo ``ParallelEnv`` whose agents are the controlled
  signals of one network, each with its own observation block, action and reward.
- :class:`TrafficSharedVecEnv`: a Stable-Baselines3 ``VecEnv`` for parameter sharing, where
  every controlled signal of every replica is one slot, so one single-signal policy controls
  the whole network.

Both wrap a :class:`~envs.traffic.env.TrafficSignalEnv` (built from the same arguments) and
read the per-signal reward quantities of the core (``TrafficSim.per_signal``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from envs.core.env import BatchRunner
from envs.core.features import QuantityTerm, RewardFunction
from envs.core.sb3 import RunnerVecEnv
from envs.core.sim import Columns
from envs.core.spaces import check_batch_actions
from envs.traffic.env import TrafficSignalEnv
from envs.traffic.sim import QUANTITIES


class SignalRewards:
    """The weighted reward terms of every controlled signal, from its reward quantities.

    Every traffic reward term is a :class:`~envs.core.features.QuantityTerm` (a signed reward
    quantity), so a signal's term is its sign times the signal's own quantity, and summed over
    the signals the terms and rewards equal those of :class:`TrafficSignalEnv`.

    Args:
        reward: the env's reward function (term registry and weights).

    Raises:
        TypeError: naming a registered term that is not a ``QuantityTerm``.
    """

    def __init__(self, reward: RewardFunction) -> None:
        self.names = reward.names
        self.coef = np.zeros((len(QUANTITIES), len(self.names)))
        for t, name in enumerate(self.names):
            fn = reward.fns[name]
            if not isinstance(fn, QuantityTerm) or fn.quantity not in QUANTITIES:
                raise TypeError(
                    f"reward term {name!r} ({fn!r}) is not a QuantityTerm of one of the per-signal "
                    f"quantities {QUANTITIES}; it cannot be split over signals"
                )
            self.coef[QUANTITIES.index(fn.quantity), t] = fn.sign
        self.weights = np.array([reward.weights.get(name, 0.0) for name in self.names])

    def terms(self, per_signal: np.ndarray) -> np.ndarray:
        """``[..., T]`` terms (in :attr:`names` order) from ``[..., len(QUANTITIES)]`` quantities."""
        return per_signal @ self.coef

    def total(self, terms: np.ndarray) -> np.ndarray:
        """The weighted sum ``[...]`` of ``terms`` ``[..., T]``."""
        return terms @ self.weights


def _blocks(env: TrafficSignalEnv) -> tuple[int, int, spaces.Box]:
    """Signals ``K``, block width ``F`` and the per-signal observation space of ``env``."""
    k = env.layout.num_signals
    box = env.observation_space
    assert isinstance(box, spaces.Box) and box.shape is not None
    width = box.shape[0] // k
    low = np.asarray(box.low, dtype=np.float32).reshape(k, width).min(axis=0)
    high = np.asarray(box.high, dtype=np.float32).reshape(k, width).max(axis=0)
    return k, width, spaces.Box(low, high, (width,), dtype=np.float32)


class TrafficParallelEnv(ParallelEnv[str, np.ndarray, np.int64]):
    """Traffic-signal control with one PettingZoo agent per controlled signal.

    ## Description
    The network, demand and signal rules of :class:`~envs.traffic.env.TrafficSignalEnv`; every
    ``delta_time`` seconds each controlled signal (agent) picks its next green phase.

    ## Agents
    One per controlled signal, named by the signal's id (``env.signal_ids``, e.g. ``"A0"``), in
    the order of the single env's ``MultiDiscrete`` action. All agents act every step and all
    end together.

    ## Action Space
    Agent ``k``: `Discrete(G_k)`, the ``G_k`` green phases of its program in program order.

    ## Observation Space
    Agent ``k``: `Box(0, 1, (F,), float32)`, its block of the single env's observation
    (``F = obs_phases + 1 + 2 obs_lanes`` for the ``default`` builder; blocks are padded to a
    common width, so every agent has the same shape). :meth:`state` is the whole network's
    observation (all blocks), ``state_space`` its space.

    ## Rewards
    Agent ``k``: the weighted reward terms of its own signal (its incoming lanes' waiting time,
    queue, pressure and speed; delay and throughput split evenly over the signals). Summed over
    the agents they equal the single env's reward.

    ## Starting State
    As :class:`~envs.traffic.env.TrafficSignalEnv`.

    ## Episode End
    - Termination: never.
    - Truncation: every agent at the first decision that ends at or after the scenario's
      ``end`` (see :class:`~envs.traffic.env.TrafficSignalEnv`); ``agents`` is then empty until
      the next :meth:`reset`.

    ## Info
    Per agent: the network metrics of the single env's ``info`` (``mean_travel_time``,
    ``queue``, ...) and ``reward_terms``, the agent's own terms.

    ## Arguments
    The arguments of :class:`~envs.traffic.env.TrafficSignalEnv` (``scenario``, ``preset``,
    ``observation``, ``reward_weights``, ``render_mode``, ``obs_phases``, ``obs_lanes``,
    ``threads``; one replica steps on one thread):

    >>> import envs.traffic
    >>> env = envs.traffic.parallel_env(scenario={"preset": "grid2x2", "seconds": 300})
    >>> observations, infos = env.reset(seed=0)
    >>> env.agents
    ['A0', 'A1', 'B0', 'B1']

    ## Version History
    - v0: initial version.
    """

    metadata = {  # noqa: RUF012
        "render_modes": TrafficSignalEnv.metadata["render_modes"],
        "render_fps": TrafficSignalEnv.metadata["render_fps"],
        "name": "lepton_traffic_signal_v0",
        "is_parallelizable": True,
    }

    def __init__(
        self,
        scenario: Any = None,
        *,
        preset: str = "sumo_rl_single",
        observation: str = "default",
        reward_weights: Mapping[str, float] | None = None,
        render_mode: str | None = None,
        obs_phases: int | None = None,
        obs_lanes: int | None = None,
        threads: int = 1,
    ) -> None:
        self.env = TrafficSignalEnv(
            scenario,
            preset=preset,
            observation=observation,
            reward_weights=reward_weights,
            render_mode=render_mode,
            obs_phases=obs_phases,
            obs_lanes=obs_lanes,
            threads=threads,
        )
        self.render_mode = render_mode
        self.possible_agents: list[str] = list(self.env.signal_ids)
        self.agents: list[str] = []
        self.num_signals, self.width, block = _blocks(self.env)
        self.observation_spaces = {
            a: spaces.Box(block.low, block.high, block.shape, dtype=np.float32)
            for a in self.possible_agents
        }
        self.action_spaces = {
            a: spaces.Discrete(len(g))
            for a, g in zip(self.possible_agents, self.env.layout.greens, strict=True)
        }
        self.state_space = self.env.observation_space
        self.signal_rewards = SignalRewards(self.env.reward)
        self._state: np.ndarray | None = None

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Start an episode; ``options={"scenario": ...}`` forces the episode's scenario."""
        obs, _ = self.env.reset(seed=seed, options=options)
        self.agents = self.possible_agents[:]
        return self._observations(obs), {a: {} for a in self.agents}

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Apply one green-phase choice per agent (every live agent must act).

        Raises:
            TypeError: ``actions`` is not a mapping ``{agent: action}``.
            ValueError: an agent is missing or unknown, or an agent's action is not one
                integer of its ``Discrete`` space (naming the agent).
        """
        if not self.agents:
            raise gym.error.ResetNeeded("call reset() before step() (the episode has ended)")
        if not isinstance(actions, Mapping):
            raise TypeError(
                f"actions: expected a dict {{agent: action}} for the agents {self.agents}, "
                f"got {type(actions).__name__}"
            )
        missing = [a for a in self.agents if a not in actions]
        unknown = [a for a in actions if a not in self.action_spaces]
        if missing or unknown:
            raise ValueError(
                f"actions: expected one action for each agent {self.agents}; "
                f"missing {missing}, unknown {unknown}"
            )
        joint = np.array([self._action(a, actions[a]) for a in self.possible_agents])
        obs, _, terminated, truncated, info = self.env.step(
            joint[0] if self.num_signals == 1 else joint
        )
        # the single env's core: its per-signal quantities are this step's
        terms = self.signal_rewards.terms(self.env.runner.sim.per_signal[0])
        rewards = self.signal_rewards.total(terms).tolist()
        metrics = {k: v for k, v in info.items() if k != "reward_terms"}
        names = self.signal_rewards.names
        agents = self.agents
        infos = {
            a: {**metrics, "reward_terms": dict(zip(names, terms[k].tolist(), strict=True))}
            for k, a in enumerate(agents)
        }
        observations = self._observations(obs)
        if terminated or truncated:
            self.agents = []
        return (
            observations,
            dict(zip(agents, rewards, strict=True)),
            dict.fromkeys(agents, bool(terminated)),
            dict.fromkeys(agents, bool(truncated)),
            infos,
        )

    def _action(self, agent: str, action: Any) -> int:
        """``agent``'s action (one integer value, as the single env takes) as an ``int``."""
        n = int(self.action_spaces[agent].n)
        value = np.asarray(action)
        if value.size == 1 and value.dtype.kind in "biuf":
            v = float(value.reshape(()))
            if v.is_integer() and 0 <= v < n:
                return int(v)
        raise ValueError(
            f"actions[{agent!r}]: expected one integer in 0..{n - 1} (the agent's "
            f"action space Discrete({n})), got {action!r}"
        )

    def state(self) -> np.ndarray:
        """The whole network's observation: every agent's block, in agent order."""
        if self._state is None:
            raise gym.error.ResetNeeded("call reset() before state()")
        return self._state.copy()

    def render(self) -> np.ndarray | None:
        """Render the network like :meth:`TrafficSignalEnv.render`."""
        return self.env.render()

    def close(self) -> None:
        self.env.close()

    def _observations(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        self._state = obs
        blocks = obs.reshape(self.num_signals, self.width)
        return {a: blocks[k].copy() for k, a in enumerate(self.possible_agents)}


class TrafficSharedVecEnv(RunnerVecEnv):
    """Parameter-sharing SB3 vector env: every controlled signal of every replica is one slot.

    ``num_envs = B * K`` for ``B`` replicas of a network with ``K`` controlled signals; slot
    ``i * K + k`` is signal ``k`` of replica ``i``. One batched core steps all replicas, so
    a single-signal policy (observation ``Box(F)``, action ``Discrete(max G_k)``) learns from
    every signal at once.

    - Observations: slot ``i * K + k`` gets signal ``k``'s block of replica ``i``'s observation
      (padded to the common width ``F``).
    - Actions: ``[B * K]`` (or ``[B, K]``) integers in ``0..max G_k - 1``; a signal with fewer
      green phases takes the action modulo its ``G_k`` (as the core does).
    - Rewards: each slot's signal's weighted reward terms (see :class:`SignalRewards`); a
      replica's reward is the sum over its slots.
    - Episode ends: a replica's end is reported on all its ``K`` slots, and the replica is reset
      inside ``step_wait`` (``terminal_observation`` and ``TimeLimit.truncated`` per slot, as
      SB3's ``DummyVecEnv``).
    - Infos per slot: the replica's network metrics, ``signal`` (the signal id) and
      ``reward_terms`` of the signal. ``VecMonitor`` then keeps episode statistics per slot.
    - Seeding: ``seed(s)`` makes the next reset give replica ``i`` the seed ``s + i`` (every
      slot of a replica reports that seed), as :class:`~envs.core.sb3.LeptonVecEnv` does; an
      option ``{"scenario": ...}`` of a replica's first slot forces that replica's scenario.
    - Rendering: ``get_images`` (and so ``render``) draws one frame per replica;
      ``env_method("render")`` of a slot draws the slot's replica.

    Evaluation aggregates the :attr:`slots_per_replica` slots of a replica into one episode
    (see :func:`agents.evaluation.run_episodes`).

    Args:
        env: a configured :class:`TrafficSignalEnv` (its own core is not used).
        num_replicas: number of replicas ``B``.
        max_episode_steps: truncate episodes after this many steps.
    """

    def __init__(
        self, env: TrafficSignalEnv, num_replicas: int, max_episode_steps: int | None = None
    ) -> None:
        self.env = env
        self.num_replicas = num_replicas
        self.num_signals, self.width, block = _blocks(env)
        self.slots_per_replica = self.num_signals
        """Consecutive slots that make up one replica (one episode at a time)."""
        self.signal_ids: tuple[str, ...] = tuple(env.signal_ids)
        self.num_greens = np.array([len(g) for g in env.layout.greens], dtype=np.int64)
        self.signal_rewards = SignalRewards(env.reward)
        self.runner = BatchRunner(
            env, num_replicas, autoreset=True, max_episode_steps=max_episode_steps
        )
        self._actions: np.ndarray | None = None
        action_space = spaces.Discrete(int(self.num_greens.max()))
        super().__init__(num_replicas * self.num_signals, block, action_space)

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Make the next reset give replica ``i`` the seed ``seed + i``; returns slot seeds."""
        first = super().seed(seed)[0]  # SB3 draws one when ``seed`` is None
        assert first is not None
        k = self.num_signals
        self._seeds = [first + i for i in range(self.num_replicas) for _ in range(k)]
        return self._seeds

    def reset(self) -> VecEnvObs:
        k = self.num_signals
        seeds = list(self._seeds[::k])
        if any(s is not None for s in seeds) or any(r is None for r in self.runner.rngs):
            self.runner.seed(seeds)
        scenarios = None
        options = self._options[::k]
        if any("scenario" in o for o in options):
            scenarios = []
            for i, o in enumerate(options):
                if "scenario" in o:
                    scenarios.append(self.env.coerce_scenario(o["scenario"]))
                else:
                    rng = self.runner.rngs[i]
                    assert rng is not None
                    scenarios.append(self.env.source.sample(rng))
        obs = self.runner.reset(scenarios=scenarios)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs.reshape(self.num_envs, self.width).copy()

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """As :meth:`RunnerVecEnv.env_method`; ``render`` of slot ``i * K + k`` draws replica ``i``."""
        if method_name == "render" and not method_args and not method_kwargs:
            k = self.num_signals
            return [self._draw(slot // k) for slot in self._get_indices(indices)]
        return super().env_method(method_name, *method_args, indices=indices, **method_kwargs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async must be called before step_wait"
        b, k = self.num_replicas, self.num_signals
        actions = np.asarray(self._actions)
        self._actions = None
        if actions.size != self.num_envs:
            raise ValueError(
                f"actions: expected {self.num_envs} actions (one per slot: {b} replicas x {k} "
                f"signals), got shape {actions.shape}"
            )
        actions = check_batch_actions(self.action_space, actions.reshape(-1), self.num_envs)
        out = self.runner.step(actions.reshape(b, k) % self.num_greens)
        # rows of replicas reset in this step keep their last step's quantities and metrics
        terms = self.signal_rewards.terms(self.runner.sim.per_signal)
        rewards = self.signal_rewards.total(terms).reshape(-1).astype(np.float32)
        done = np.repeat(out.done, k)
        metrics = _metric_rows(out.metrics, b)
        names = self.signal_rewards.names
        term_rows = terms.reshape(self.num_envs, -1).tolist()
        infos: list[dict[str, Any]] = []
        for slot, row in enumerate(term_rows):
            info = dict(metrics[slot // k])
            info["signal"] = self.signal_ids[slot % k]
            info["reward_terms"] = dict(zip(names, row, strict=True))
            infos.append(info)
        if out.final_obs is not None:
            final = out.final_obs.reshape(self.num_envs, self.width)
            for slot in np.flatnonzero(done).tolist():
                i = slot // k
                infos[slot]["terminal_observation"] = final[slot]
                infos[slot]["TimeLimit.truncated"] = bool(
                    out.truncated[i] and not out.terminated[i]
                )
        return out.obs.reshape(self.num_envs, self.width), rewards, done, infos


def _metric_rows(metrics: Mapping[str, np.ndarray], batch_size: int) -> list[dict[str, Any]]:
    """Every replica's metrics as ``{name: Python value}``, one conversion per array."""
    if isinstance(metrics, Columns):
        return [dict(zip(metrics.names, row, strict=True)) for row in metrics.array.tolist()]
    cols = {name: np.asarray(v).tolist() for name, v in metrics.items()}
    return [{name: col[i] for name, col in cols.items()} for i in range(batch_size)]
