"""Seeded evaluation of a policy: N episodes in parallel across the replicas of a batched env."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from agents.policies import Policy


@dataclasses.dataclass(frozen=True)
class Episodes:
    """Per-episode results of one policy.

    Attributes:
        seeds: seed of every episode.
        returns: undiscounted sum of the env's rewards, per episode.
        lengths: steps per episode.
        metrics: the requested keys of each episode's final ``info``, per episode.
    """

    seeds: tuple[int, ...]
    returns: np.ndarray
    lengths: np.ndarray
    metrics: dict[str, np.ndarray]

    def columns(self) -> dict[str, np.ndarray]:
        """``return``, ``length`` and every metric, each ``[episodes]``."""
        return {"return": self.returns, "length": self.lengths, **self.metrics}

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean, standard deviation (population) and count of every column."""
        return {name: summarise(values) for name, values in self.columns().items()}

    def rows(self, policy: str) -> list[dict[str, Any]]:
        """One row per episode: policy, episode index, seed and every column."""
        cols = self.columns()
        return [
            {
                "policy": policy,
                "episode": k,
                "seed": seed,
                **{name: _scalar(values[k]) for name, values in cols.items()},
            }
            for k, seed in enumerate(self.seeds)
        ]


def summarise(values: np.ndarray) -> dict[str, float]:
    """``{"mean", "std", "n"}`` of ``values`` (population std, like SB3's ``evaluate_policy``)."""
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size)}


def run_episodes(
    policy: Policy,
    venv: VecEnv,
    first_seed: int,
    episodes: int,
    *,
    metrics: Sequence[str] = (),
    deterministic: bool = True,
    max_steps: int = 1_000_000,
) -> Episodes:
    """Run ``episodes`` seeded episodes of ``policy``, one per replica of ``venv`` at a time.

    Episode ``k`` runs on a replica seeded ``first_seed + k``: the replicas of a chunk are
    seeded together through ``venv.seed`` (replica ``i`` gets ``seed + i``) and reset; a
    replica's first episode is recorded and what follows its end (autoreset) is ignored. The
    results do not depend on the number of replicas: random actions come from a stream of each
    episode's own (:func:`action_streams`), for a random baseline and for an SB3 model with
    ``deterministic=False`` alike.

    A replica is one slot of ``venv``, or ``venv.slots_per_replica`` consecutive slots in a
    parameter-sharing env (e.g. the signals of a traffic network): the episode's return is then
    the sum over its slots, and its length and final metrics are the replica's.

    Args:
        policy: acts on the batched observations of ``venv``.
        venv: an SB3 ``VecEnv``; rewards must be raw (no reward normalisation).
        first_seed: seed of episode 0.
        episodes: number of episodes.
        metrics: keys of the final ``info`` to record (e.g. ``episode_profit``).
        deterministic: passed to ``policy.predict``.
        max_steps: most steps of one chunk before giving up (episodes that never end).

    Raises:
        KeyError: naming ``env.metrics`` when a metric is missing from the final ``info``.
        RuntimeError: when episodes do not end within ``max_steps``.
    """
    if episodes < 1:
        raise ValueError(f"episodes: must be >= 1, got {episodes}")
    n = venv.num_envs // _slots_per_replica(venv)
    returns: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    finals: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for start in range(0, episodes, n):
        count = min(n, episodes - start)
        ret, length, final = _run_chunk(
            policy, venv, first_seed + start, count, metrics, deterministic, max_steps
        )
        returns.append(ret)
        lengths.append(length)
        for m in metrics:
            finals[m].append(final[m])
    return Episodes(
        seeds=tuple(range(first_seed, first_seed + episodes)),
        returns=np.concatenate(returns),
        lengths=np.concatenate(lengths),
        metrics={m: np.concatenate(v) for m, v in finals.items()},
    )


def _run_chunk(
    policy: Policy,
    venv: VecEnv,
    seed: int,
    count: int,
    metrics: Sequence[str],
    deterministic: bool,
    max_steps: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    k = _slots_per_replica(venv)
    n = venv.num_envs // k
    venv.seed(seed)
    obs = venv.reset()
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    final = {m: np.full(n, np.nan) for m in metrics}
    done = np.zeros(n, dtype=bool)
    done[count:] = True  # spare replicas of the last chunk are not recorded
    state: Any = None
    episode_start = np.ones(n, dtype=bool)
    steps = 0
    streams = action_streams(seed, n)
    per_episode = hasattr(policy, "use_replica_generators")
    if per_episode:
        policy.use_replica_generators(streams)  # type: ignore[attr-defined]
    try:
        while not done.all():
            if steps >= max_steps:
                raise RuntimeError(
                    f"episodes did not end within {max_steps} steps; give the env a time limit"
                )
            if deterministic or per_episode:
                actions, state = policy.predict(
                    obs, state=state, episode_start=episode_start, deterministic=deterministic
                )
            else:
                actions = _sample_per_episode(policy, obs, streams, k)
            obs, rewards, dones, infos = venv.step(actions)
            active = ~done
            ended = dones[::k]  # the slots of a replica end together
            returns[active] += rewards.reshape(n, k).sum(axis=1, dtype=np.float64)[active]
            lengths[active] += 1
            for i in np.flatnonzero(ended & active):
                _record(final, infos[i * k], int(i))
            done |= ended
            episode_start = dones
            steps += 1
    finally:
        if per_episode:
            policy.use_replica_generators(None)  # type: ignore[attr-defined]
    return returns[:count], lengths[:count], {m: v[:count] for m, v in final.items()}


ACTION_STREAM = 0x5A17
"""Mixed into an episode's seed for the stream of its random actions (apart from the env's)."""


def action_streams(seed: int, n: int) -> list[np.random.Generator]:
    """The random-action generators of the episodes seeded ``seed .. seed + n - 1``."""
    return [np.random.default_rng([seed + i, ACTION_STREAM]) for i in range(n)]


def _sample_per_episode(
    policy: Policy, obs: Any, streams: Sequence[np.random.Generator], k: int
) -> np.ndarray:
    """Stochastic actions of an SB3 model, each replica's drawn from its episode's stream.

    The model acts on one replica (its ``k`` slots) at a time, with torch's, numpy's and its
    action space's generators seeded from that replica's stream and restored afterwards, so
    training that evaluates on the way continues with its own random state.
    """
    import torch

    rows = []
    space = getattr(policy, "action_space", None)
    space_rng = getattr(space, "np_random", None)
    for i, stream in enumerate(streams):
        part = (
            {key: value[i * k : (i + 1) * k] for key, value in obs.items()}
            if isinstance(obs, Mapping)
            else obs[i * k : (i + 1) * k]
        )
        draw = int(stream.integers(2**32))
        # SB3's DQN explores with numpy's global generator
        saved_np = np.random.get_state()  # noqa: NPY002
        saved_space = None if space_rng is None else space_rng.bit_generator.state
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(draw)
            np.random.seed(draw)  # noqa: NPY002
            if space_rng is not None:
                space_rng.bit_generator.state = np.random.PCG64(draw).state
            try:
                action, _ = policy.predict(part, deterministic=False)
            finally:
                np.random.set_state(saved_np)  # noqa: NPY002
                if space_rng is not None:
                    space_rng.bit_generator.state = saved_space
        rows.append(np.asarray(action))
    return np.concatenate(rows)


def _slots_per_replica(venv: VecEnv) -> int:
    """Consecutive slots of ``venv`` that make up one replica (through any wrappers)."""
    return int(getattr(venv, "slots_per_replica", 1))


def _record(final: dict[str, np.ndarray], info: Mapping[str, Any], i: int) -> None:
    for key in final:
        if key not in info:
            available = sorted(k for k, v in info.items() if np.isscalar(v))
            raise KeyError(
                f"env.metrics: {key!r} is not in the final info of an episode; "
                f"available: {available}"
            )
        final[key][i] = float(info[key])


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
