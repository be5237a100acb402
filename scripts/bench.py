"""``lepton-bench``: env throughput, PPO overhead and a reference implementation, side by side.

For every workload of a family, in one run and one process tree, the bench measures:

* **env steps per second** through the public adapters: the single env ``gymnasium.make(id)``
  (B = 1) and the native vector env ``gymnasium.make_vec(id, num_envs=B)`` for B = 16 and 256
  (replica-steps per second, autoreset on). Random valid actions are drawn before the timed
  loop; each measurement is warmed up, then timed for ``--seconds`` of wall clock, ``--repeats``
  times; the table shows the best run, the JSON also the median and every run;
* **``ppo_overhead_ratio``**: SB3 PPO training frames per second on the env (``n_envs``
  replicas through :func:`envs.core.sb3.make_sb3_vec_env`) divided by the same PPO, with the
  same hyperparameters and timesteps, on :class:`ZeroCostVecEnv`, a ``VecEnv`` with identical
  spaces and episode length that simulates nothing. The two alternate rollout by rollout in this
  process with ``torch.set_num_threads(1)``; 1.0 is the limit (the env costs nothing);
* **the reference implementation** where a workload names one (OR-Gym ``InvManagement-v0`` for
  the inventory family): its steps per second in its own virtual environment, created on first
  use under ``.bench/venvs/`` (and again when its pins change), a check that it runs on the same
  parameters as ours and, for faithfulness, fixed policies on both implementations: mean returns
  over independent episodes (different random streams) and exact returns on common demand
  paths.

``ratio_single``, ``ratio_b16`` and ``ratio_b256`` divide our steps per second at that B by the
reference's single-env steps per second. Every rate is also reported per second of process CPU
time (``cpu_time_basis``), which other jobs on a shared machine disturb less than wall time.
Every target of a workload gets a line, ``met``, ``MISSED`` or ``not checked`` with the reason: a
ratio is not checked when the reference did not run or ran on other parameters than ours, and
the last line counts the targets met, missed and not checked.
A family is one entry of :data:`WORKLOADS`; adding a family (traffic, recsys, more ops envs)
means adding its workloads there.

Examples:
    ``python -m scripts.bench inventory``, ``lepton-bench inventory --seconds 5 --out inv.json``,
    ``lepton-bench inventory --no-reference --no-ppo``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

import envs  # noqa: F401 - registers the lepton/ ids
from scripts.bench_ref import steploop

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / ".bench" / "venvs"
WORKERS = Path(__file__).resolve().parent / "bench_ref"
BATCH_SIZES = (1, 16, 256)
ACTION_POOL_SINGLE = 1024
"""Random actions drawn for the single env (cycled through in the timed loop)."""
ACTION_POOL_BATCH = 64
"""Random action batches drawn for a vector env (cycled through in the timed loop)."""
AGREEMENT_Z = 3.0
"""Two mean returns agree when they differ by less than this many combined standard errors."""
TARGETS = {"ratio_b256": 100.0, "ppo_overhead_ratio": 0.8}
"""Lower bounds a workload aims for unless it names its own: batched throughput vs the
reference, PPO overhead."""


# --- settings ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PPOSettings:
    """PPO run shared by the env and the zero-cost env (defaults: CleanRL's PPO shape).

    Attributes:
        n_envs: replicas per ``VecEnv``.
        n_steps: rollout length per replica; one update consumes ``n_envs * n_steps`` frames.
        batch_size: minibatch size, frames.
        n_epochs: passes over each rollout.
        total_timesteps: frames timed per run (after a warm-up of one rollout and update).
    """

    n_envs: int = 8
    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 4
    total_timesteps: int = 16384


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one bench run measures, and how long.

    Attributes:
        seconds: wall-clock budget of one timed run, s.
        repeats: timed runs per measurement (best and median are reported).
        warmup_s: untimed run before the timed ones, s.
        episodes: episodes per policy in the faithfulness check.
        exact_cases: deterministic episodes (common demand paths) per policy in that check.
        seed: seeds env resets, action draws and PPO.
        batch_sizes: replica counts measured (1 is the single env).
        reference: run the reference implementation when a workload has one.
        reference_python: interpreter with the reference installed (default: the bench's venv).
        ppo: PPO settings; ``None`` skips the PPO overhead measurement.
        rounds: paired rounds after the main measurements, for workloads with a reference.
            Each round times ours at every batch size and then the reference, one
            ``seconds`` window each, and divides; the median of a ratio over the rounds is
            reported as ``paired`` and is what its target is checked against. Rounds pair
            measurements taken seconds apart, so a machine whose speed drifts between runs
            moves both sides of a ratio alike. ``0``: none (ratios of the best runs only).
        threads: threads that step our batched envs (B > 1), the envs' own ``threads``
            argument (families in :data:`THREADED`). The CPU-time basis then adds up the
            threads' CPU time.
    """

    seconds: float = 2.0
    repeats: int = 3
    warmup_s: float = 0.5
    episodes: int = 200
    exact_cases: int = 20
    seed: int = 0
    batch_sizes: tuple[int, ...] = BATCH_SIZES
    reference: bool = True
    reference_python: str | None = None
    ppo: PPOSettings | None = PPOSettings()
    rounds: int = 0
    threads: int = 1


# --- reference implementations -------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Policy:
    """A fixed policy run on both implementations in the faithfulness check.

    Attributes:
        name: label in reports.
        kind: ``base_stock`` (order up to echelon levels) or ``constant`` (fixed orders).
        levels: the base-stock levels ``z`` or the constant orders, one per stage.
    """

    name: str
    kind: str
    levels: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class Reference:
    """An external implementation timed side by side with a workload.

    Attributes:
        name: label in reports.
        env_id: the reference's own id, passed to its worker.
        venv: folder under ``.bench/venvs`` holding its virtual environment.
        install: ``pip install`` argument lists run in order in a fresh venv.
        worker: script under ``scripts/bench_ref`` run with the venv's Python.
        check_params: ``(our env, reference params) -> mismatches``, empty when identical.
        policies: fixed policies of the faithfulness check.
        policy_kwargs: env arguments for running :attr:`policies` on our side.
        policy_actions: ``(our env, snapshot, policy) -> actions [B, ...]``.
        exact_cases: ``(n, seed) -> [(our env kwargs, reference kwargs)]``, pairs that define
            the same deterministic episode (e.g. one fixed demand path) on both sides, on which
            every policy's return must agree to rounding.
    """

    name: str
    env_id: str
    venv: str
    install: tuple[tuple[str, ...], ...]
    worker: str
    check_params: Callable[[Any, Mapping[str, Any]], list[str]]
    policies: tuple[Policy, ...] = ()
    policy_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    policy_actions: Callable[[Any, Any, Policy], np.ndarray] | None = None
    exact_cases: Callable[[int, int], list[tuple[dict[str, Any], dict[str, Any]]]] | None = None


@dataclasses.dataclass(frozen=True)
class Workload:
    """One row of the table: a registered id, its constructor arguments and its reference.

    Attributes:
        name: row label.
        env_id: registered id, built with ``gymnasium.make`` / ``make_vec``.
        kwargs: constructor arguments (empty: the registered defaults).
        reference: the implementation it is compared with, if any.
        targets: lower bounds of its figures (``ratio_single``, ``ratio_b16``, ``ratio_b256``,
            ``ppo_overhead_ratio``), checked and printed with the results.
    """

    name: str
    env_id: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    reference: Reference | None = None
    targets: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(TARGETS))


def _differences(pairs: Mapping[str, tuple[Any, Any]]) -> list[str]:
    """One line per ``name: (reference value, our value)`` pair whose numbers differ."""
    out = []
    for name, (theirs, ours) in pairs.items():
        a = np.atleast_1d(np.asarray(theirs, dtype=float)) if theirs is not None else None
        b = np.atleast_1d(np.asarray(ours, dtype=float))
        if a is None or a.shape != b.shape or not np.allclose(a, b):
            out.append(f"{name}: reference {theirs!r}, ours {ours!r}")
    return out


def check_orgym_params(env: Any, params: Mapping[str, Any]) -> list[str]:
    """Compare our inventory scenario with OR-Gym ``InvManagement``'s parameters.

    Args:
        env: our single env (its ``structure`` is the scenario).
        params: the reference's ``periods, I0, p, r, k, h, c, L, backlog, dist, dist_param, alpha``.

    Returns:
        One line per differing parameter (empty when the two run the same chain).
    """
    sc = env.unwrapped.structure
    pairs = {
        "periods / horizon": (params.get("periods"), sc.horizon),
        "I0 / initial_inventory": (params.get("I0"), sc.initial_inventory),
        "p / price": (params.get("p"), sc.price),
        "r / unit_costs": (params.get("r"), sc.unit_costs),
        "k / shortage_costs": (params.get("k"), sc.shortage_costs),
        "h / holding_costs": (params.get("h"), sc.holding_costs),
        "c / capacities": (params.get("c"), sc.capacities),
        "L / lead_times": (params.get("L"), sc.lead_times),
        "alpha / discount": (params.get("alpha"), sc.discount),
        "dist_param.mu / demand.mean": (
            (params.get("dist_param") or {}).get("mu"),
            sc.demand.mean,
        ),
    }
    out = _differences(pairs)
    if bool(params.get("backlog")) != bool(sc.backlog):
        out.append(f"backlog: reference {params.get('backlog')!r}, ours {sc.backlog!r}")
    if params.get("dist") != 1 or sc.demand.kind != "poisson":
        out.append(f"demand: reference dist={params.get('dist')!r}, ours {sc.demand.kind!r}")
    return out


def inventory_policy_actions(env: Any, snapshot: Any, policy: Policy) -> np.ndarray:
    """Orders ``[B, N]`` of a fixed inventory policy, as OR-Gym computes them.

    ``base_stock`` is OR-Gym's ``base_stock_action(z)``: ``min(capacity, max(0, z - IP),
    supplier stock)`` with the echelon inventory position ``IP = cumsum(on hand + in transit -
    backlog owed downstream)``; ``constant`` orders ``levels`` every period. Actions are order
    quantities (``action_mode="quantity"``).
    """
    levels = np.asarray(policy.levels, dtype=np.float64)
    on_hand = np.asarray(snapshot.on_hand, dtype=np.float64)
    if policy.kind == "constant":
        return np.broadcast_to(levels, on_hand.shape).astype(np.float32)
    if policy.kind != "base_stock":
        raise ValueError(f"policy.kind: unknown {policy.kind!r}; allowed: base_stock, constant")
    n = on_hand.shape[1]
    position = on_hand + snapshot.pipeline.sum(axis=2) - snapshot.owed[:, :n]
    ip = np.cumsum(position, axis=1)
    supplier_stock = np.concatenate([on_hand[:, 1:], np.full((len(on_hand), 1), np.inf)], axis=1)
    orders = np.minimum(
        np.minimum(snapshot.capacities, np.maximum(levels - ip, 0.0)), supplier_stock
    )
    return orders.astype(np.float32)


def orgym_exact_cases(n: int, seed: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``n`` Poisson demand paths of the ``orgym`` preset, as (ours, OR-Gym) constructor kwargs.

    OR-Gym replays a path with ``dist=5, user_D=path``; ours with a ``series`` demand.
    """
    from envs.ops.inventory.scenario import ORGYM as SCENARIO

    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        path = rng.poisson(SCENARIO.demand.mean, size=SCENARIO.horizon).astype(float).tolist()
        ours = {"scenario": {"preset": "orgym", "demand": {"kind": "series", "series": path}}}
        cases.append((ours, {"dist": 5, "user_D": path}))
    return cases


ORGYM = Reference(
    name="OR-Gym InvManagement-v0",
    env_id="InvManagement-v0",
    venv="orgym",
    # or-gym 0.5.0 pins gym<=0.19 (not installable today): install it alone, then the old gym
    # and numpy<2 it works with; matplotlib because ``import or_gym`` imports pyplot.
    install=(
        ("--no-deps", "or-gym==0.5.0"),
        ("gym==0.26.2", "numpy<2", "pandas<2.3", "scipy", "networkx", "matplotlib<3.10"),
    ),
    worker="orgym_worker.py",
    check_params=check_orgym_params,
    policies=(
        Policy("base_stock z=(100,220,440)", "base_stock", (100.0, 220.0, 440.0)),
        Policy("constant orders 20", "constant", (20.0, 20.0, 20.0)),
    ),
    policy_kwargs={"action_mode": "quantity"},
    policy_actions=inventory_policy_actions,
    exact_cases=orgym_exact_cases,
)


def check_recsim_params(env: Any, params: Mapping[str, Any]) -> list[str]:
    """Compare our ``recsim_ie`` scenario with RecSim ``interest_evolution``'s parameters.

    Args:
        env: our single env (its ``structure`` is the scenario).
        params: the RecSim worker's ``params`` (user, document and choice-model constants).

    Returns:
        One line per differing parameter (empty when the two run the same task).
    """
    sc = env.unwrapped.structure
    pairs = {
        "num_candidates": (params.get("num_candidates"), sc.num_candidates),
        "slate_size": (params.get("slate_size"), sc.slate_size),
        "num_topics": (params.get("num_topics"), sc.num_topics),
        "time_budget / budget": (params.get("time_budget"), sc.budget),
        "step_penalty / skip_penalty": (params.get("step_penalty"), sc.skip_penalty),
        "no_click_mass": (params.get("no_click_mass"), sc.no_click_mass),
        "min_normalizer": (params.get("min_normalizer"), sc.min_normalizer),
        "user_update_alpha / budget_quality_gain": (
            params.get("user_update_alpha"),
            sc.budget_quality_gain,
        ),
        "alpha_y_intercept / drift_rate": (params.get("alpha_y_intercept"), sc.drift_rate),
        "cluster_means / quality_means": (params.get("cluster_means"), sc.quality_means),
        "video_length / length_mean": (params.get("video_length"), sc.length_mean),
        "quality_std": (params.get("quality_std"), sc.quality_std),
    }
    out = _differences(pairs)
    if params.get("choice_model") != "MultinomialProportionalChoiceModel":
        out.append(f"choice model: reference {params.get('choice_model')!r}, ours proportional")
    if sc.choice_model != "proportional" or sc.length_std != 0 or sc.topic_kind != "onehot":
        out.append(
            "choice model / topics / lengths: ours needs proportional choice, one-hot topics "
            "and fixed lengths"
        )
    return out


_RECSYS_POLICY_RNG = np.random.default_rng(0)
"""Generator of the ``random`` recommender of the faithfulness check."""


def recsys_policy_actions(env: Any, snapshot: Any, policy: Policy) -> np.ndarray:
    """Slates ``[B, k]`` of a fixed recommender, chosen as RecSim's worker chooses them.

    ``random`` shows ``k`` distinct candidates uniformly at random; ``quality_first`` the ``k``
    candidates of highest true quality (ties: lower position).
    """
    quality = np.asarray(snapshot.candidate_quality)
    k = env.structure.slate_size
    if policy.kind == "random":
        keys = _RECSYS_POLICY_RNG.random(quality.shape)
    elif policy.kind == "quality_first":
        keys = -quality
    else:
        raise ValueError(f"policy.kind: unknown {policy.kind!r}; allowed: random, quality_first")
    return env.slates_to_actions(np.argsort(keys, axis=1, kind="stable")[:, :k])


RECSIM_CORPORA = 50
"""Synthetic corpora our side of the RecSim faithfulness check draws from, one per episode.

RecSim samples fresh documents every step; our corpus is scenario data, fixed per
``corpus_seed``, so one corpus would compare RecSim's document distribution with a single draw
of it (random-policy returns over corpus seeds 0-5 range from 152.3 to 156.8).
"""

RECSIM = Reference(
    name="RecSim interest_evolution",
    env_id="interest_evolution",
    venv="recsim",
    # TensorFlow imports jax when present; the worker blocks that import instead of relying on
    # an uninstall step
    install=(("recsim==0.2.4", "tensorflow==2.15.1", "pandas<2.3"),),
    worker="recsim_worker.py",
    check_params=check_recsim_params,
    policies=(
        Policy("random", "random", ()),
        Policy("quality_first", "quality_first", ()),
    ),
    policy_actions=recsys_policy_actions,
    policy_kwargs={
        "scenario": [{"preset": "recsim_ie", "corpus_seed": k} for k in range(RECSIM_CORPORA)]
    },
)

WORKLOADS: dict[str, tuple[Workload, ...]] = {
    "inventory": (
        Workload("InventoryORGym-v0", "lepton/InventoryORGym-v0", reference=ORGYM),
        Workload("Inventory-v0", "lepton/Inventory-v0"),
    ),
    "ops": (
        Workload("Autoscale-v0 (bursty)", "lepton/Autoscale-v0", {"scenario": "bursty"}),
        Workload("AutoscaleCluster-v0", "lepton/AutoscaleCluster-v0"),
        Workload("MaintenanceSingle-v0", "lepton/MaintenanceSingle-v0"),
        Workload("Maintenance-v0", "lepton/Maintenance-v0"),
    ),
    "recsys": (
        Workload(
            "RecSimIE-v0",
            "lepton/RecSimIE-v0",
            reference=RECSIM,
            targets={"ratio_single": 10.0, "ratio_b256": 300.0, "ppo_overhead_ratio": 0.8},
        ),
        Workload("RecLongTerm-v0", "lepton/RecLongTerm-v0"),
    ),
}
"""Workloads per family; a new family adds its entry here."""


# --- env throughput ------------------------------------------------------------------------
def _rates(count: float, wall0: float, cpu0: float) -> tuple[float, float]:
    """``count`` per wall-clock second and per second of this process's CPU time since then."""
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    return count / wall, count / max(cpu, 1e-9)


def _repeat(run: Callable[[float], tuple[float, float]], settings: Settings) -> dict[str, Any]:
    run(settings.warmup_s)
    return steploop.summary([run(settings.seconds) for _ in range(settings.repeats)])


def measure_single(env_id: str, kwargs: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """Steps per second of ``gymnasium.make(env_id)`` with random valid actions.

    Episodes that end are reset inside the timed loop, as a training loop would.

    Returns:
        ``best``, ``median`` and ``runs`` (steps/s) and the ``adapter`` class.
    """
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(settings.seed)
    actions = [env.action_space.sample() for _ in range(ACTION_POOL_SINGLE)]
    env.reset(seed=settings.seed)

    def run(budget: float) -> tuple[float, float]:
        steps = 0
        cpu0, start = time.process_time(), time.perf_counter()
        deadline = start + budget
        while True:
            for action in actions:
                _, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    env.reset()
            steps += len(actions)
            if time.perf_counter() >= deadline:
                return _rates(steps, start, cpu0)

    out = _repeat(run, settings)
    out["adapter"] = type(env.unwrapped).__name__
    env.close()
    return out


def measure_vector(
    env_id: str, kwargs: Mapping[str, Any], num_envs: int, settings: Settings
) -> dict[str, Any]:
    """Replica-steps per second of ``gymnasium.make_vec(env_id, num_envs)`` (autoreset on).

    Returns:
        ``best``, ``median`` and ``runs`` (replica-steps/s) and the ``adapter`` class.
    """
    venv = gym.make_vec(env_id, num_envs=num_envs, **kwargs)
    venv.action_space.seed(settings.seed)
    actions = [venv.action_space.sample() for _ in range(ACTION_POOL_BATCH)]
    venv.reset(seed=settings.seed)

    def run(budget: float) -> tuple[float, float]:
        steps = 0
        cpu0, start = time.process_time(), time.perf_counter()
        deadline = start + budget
        while True:
            for action in actions:
                venv.step(action)
            steps += len(actions)
            if time.perf_counter() >= deadline:
                return _rates(steps * num_envs, start, cpu0)

    out = _repeat(run, settings)
    out["adapter"] = type(venv).__name__
    venv.close()
    return out


def measure_ours(
    env_id: str, kwargs: Mapping[str, Any], num_envs: int, settings: Settings
) -> dict[str, Any]:
    """:func:`measure_single` for ``num_envs == 1``, else :func:`measure_vector`.

    The batched env steps on ``settings.threads`` threads (passed only when more than one).
    """
    if num_envs == 1:
        return measure_single(env_id, kwargs, settings)
    if settings.threads > 1:
        kwargs = {**kwargs, "threads": settings.threads}
    return measure_vector(env_id, kwargs, num_envs, settings)


def episode_length(env_id: str, kwargs: Mapping[str, Any], seed: int, cap: int = 100_000) -> int:
    """Length of one episode of the single env under random actions (at most ``cap``)."""
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for t in range(1, cap + 1):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.close()
            return t
    env.close()
    return cap


# --- PPO overhead --------------------------------------------------------------------------
def _constant_batch(space: spaces.Space, num_envs: int) -> Any:
    if isinstance(space, spaces.Dict):
        return {k: _constant_batch(s, num_envs) for k, s in space.spaces.items()}
    if space.shape is None or space.dtype is None:
        raise TypeError(f"ZeroCostVecEnv: unsupported observation space {space}")
    return np.zeros((num_envs, *space.shape), dtype=space.dtype)


class ZeroCostVecEnv(VecEnv):
    """An SB3 ``VecEnv`` that simulates nothing: the floor for PPO frames per second.

    Observations are constant zeros of the given space, rewards are zero, and every replica's
    episode ends (terminated) after ``episode_length`` steps, with ``terminal_observation`` in
    ``info`` as SB3 expects, so PPO does exactly the work it does on a real env of that shape.

    Args:
        observation_space: the real env's observation space.
        action_space: the real env's action space.
        num_envs: number of replicas.
        episode_length: steps per episode.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        num_envs: int,
        episode_length: int,
    ) -> None:
        self.render_mode = None
        super().__init__(num_envs, observation_space, action_space)
        self.episode_length = int(episode_length)
        self._obs = _constant_batch(observation_space, num_envs)
        self._rewards = np.zeros(num_envs, dtype=np.float32)
        self._t = 0

    def _observation(self) -> VecEnvObs:
        if isinstance(self._obs, dict):
            return {k: v.copy() for k, v in self._obs.items()}
        return self._obs.copy()

    def reset(self) -> VecEnvObs:
        self._t = 0
        self._reset_seeds()
        self._reset_options()
        return self._observation()

    def step_async(self, actions: np.ndarray) -> None:
        pass

    def step_wait(self) -> VecEnvStepReturn:
        self._t += 1
        done = self._t >= self.episode_length
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if done:
            self._t = 0
            final = self._observation()
            for i, info in enumerate(infos):
                info["terminal_observation"] = (
                    {k: v[i] for k, v in final.items()} if isinstance(final, dict) else final[i]
                )
                info["TimeLimit.truncated"] = False
        dones = np.full(self.num_envs, done, dtype=bool)
        return self._observation(), self._rewards.copy(), dones, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        return [None for _ in self._indices(indices)]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def _indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else list(indices)


def _ppo_model(venv: VecEnv, ppo: PPOSettings, seed: int) -> Any:
    """A PPO model on ``venv``, warmed up with one rollout and one update."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import Logger

    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=ppo.n_steps,
        batch_size=ppo.batch_size,
        n_epochs=ppo.n_epochs,
        seed=seed,
        device="cpu",
        verbose=0,
    )
    model.set_logger(Logger(None, []))  # SB3's default makes a temporary folder every learn
    model.learn(ppo.n_steps * ppo.n_envs)
    return model


def measure_ppo_overhead(
    env_id: str, kwargs: Mapping[str, Any], settings: Settings, ppo: PPOSettings
) -> dict[str, Any]:
    """PPO frames/s on the env divided by PPO frames/s on :class:`ZeroCostVecEnv`.

    Each repeat builds one PPO model per env (same seed and hyperparameters), warms both up
    with one rollout and update, then alternates one rollout and update on each until both have
    trained ``total_timesteps`` frames, so that load changes on a shared machine hit both sides
    alike. A repeat's ratio divides the two sides' frames per second; ``ppo_overhead_ratio`` is
    the median over repeats. The ``cpu_`` variants count frames per second of this process's CPU
    time instead of wall-clock time.
    """
    import torch

    from envs.core.sb3 import make_sb3_vec_env

    torch.set_num_threads(1)
    length = episode_length(env_id, kwargs, settings.seed)
    probe = make_sb3_vec_env(env_id, ppo.n_envs, **kwargs)
    obs_space, act_space = probe.observation_space, probe.action_space
    probe.close()
    factories: dict[str, Callable[[], VecEnv]] = {
        "env": lambda: make_sb3_vec_env(env_id, ppo.n_envs, seed=settings.seed, **kwargs),
        "zero_cost": lambda: ZeroCostVecEnv(obs_space, act_space, ppo.n_envs, length),
    }
    chunk = ppo.n_steps * ppo.n_envs
    runs: dict[str, list[tuple[float, float]]] = {side: [] for side in factories}
    ratios, cpu_ratios = [], []
    for r in range(settings.repeats):
        models = {side: _ppo_model(make(), ppo, settings.seed) for side, make in factories.items()}
        frames = dict.fromkeys(models, 0)
        wall = dict.fromkeys(models, 0.0)
        cpu = dict.fromkeys(models, 0.0)
        order = list(models) if r % 2 == 0 else list(models)[::-1]
        while min(frames.values()) < ppo.total_timesteps:
            for side in order:
                model = models[side]
                before = model.num_timesteps
                cpu0, start = time.process_time(), time.perf_counter()
                model.learn(chunk, reset_num_timesteps=False)
                wall[side] += time.perf_counter() - start
                cpu[side] += time.process_time() - cpu0
                frames[side] += model.num_timesteps - before
        for side, model in models.items():
            runs[side].append((frames[side] / wall[side], frames[side] / max(cpu[side], 1e-9)))
            model.get_env().close()
        ratios.append(runs["env"][-1][0] / runs["zero_cost"][-1][0])
        cpu_ratios.append(runs["env"][-1][1] / runs["zero_cost"][-1][1])
    return {
        "ppo_overhead_ratio": statistics.median(ratios),
        "cpu_ppo_overhead_ratio": statistics.median(cpu_ratios),
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "env_frames_per_s": steploop.summary(runs["env"]),
        "zero_cost_frames_per_s": steploop.summary(runs["zero_cost"]),
        "episode_length": length,
        "settings": dataclasses.asdict(ppo),
    }


# --- reference -----------------------------------------------------------------------------
class ReferenceUnavailable(RuntimeError):
    """The reference implementation cannot be installed or run here."""


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@contextlib.contextmanager
def _venv_lock(venv: Path) -> Iterator[None]:
    """Hold ``<venv>.lock`` next to ``venv``, so that benches started together build it once."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as handle:
        try:
            import fcntl
        except ImportError:  # no advisory locks on this platform
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _installed_with(ready: Path) -> list[list[str]] | None:
    """The ``pip install`` argument lists a venv's ``.ready`` file records (``None``: unreadable)."""
    try:
        return json.loads(ready.read_text())["install"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def reference_python(ref: Reference, settings: Settings, log: Callable[[str], None]) -> Path:
    """The interpreter of ``ref``'s venv, creating the venv on first use.

    A venv is reused only when its ``.ready`` file records exactly ``ref.install``; one built
    with other pins is built again. Creation holds a lock file, so concurrent benches wait for
    one another instead of clearing the venv under each other.

    Raises:
        ReferenceUnavailable: if the venv cannot be created (e.g. no network), with the reason.
    """
    if settings.reference_python:
        path = Path(settings.reference_python)
        if not path.exists():
            raise ReferenceUnavailable(f"--reference-python {path} does not exist")
        return path
    venv = VENVS / ref.venv
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    ready = venv / ".ready"
    wanted = [list(args) for args in ref.install]
    with _venv_lock(venv):
        if ready.exists() and python.exists():
            if _installed_with(ready) == wanted:
                return python
            log(f"the {ref.name} venv in {venv} was built with other pins; building it again")
        else:
            log(f"creating the {ref.name} venv in {venv} (first use; this takes a minute or two)")
        _build_venv(venv, python, ref.install)
        ready.write_text(json.dumps({"install": wanted}) + "\n")
    return python


def _build_venv(venv: Path, python: Path, install: Sequence[Sequence[str]]) -> None:
    """Create ``venv`` afresh and run ``pip install`` with each argument list of ``install``."""
    commands = [[sys.executable, "-m", "venv", "--clear", str(venv)]]
    commands += [
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", *args]
        for args in install
    ]
    for command in commands:
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ReferenceUnavailable(f"`{shlex.join(command)}` failed: {exc}") from exc
        if proc.returncode != 0:
            raise ReferenceUnavailable(
                f"`{shlex.join(command)}` exited with {proc.returncode}: "
                f"{_tail(proc.stderr or proc.stdout)}"
            )


def run_reference(
    ref: Reference,
    settings: Settings,
    log: Callable[[str], None] = print,
    *,
    timing_only: bool = False,
) -> dict[str, Any]:
    """Time ``ref`` with its worker and collect its fixed-policy returns.

    Args:
        ref: the reference.
        settings: budgets and seeds.
        log: progress messages.
        timing_only: only time it (no policies, no exact cases).

    Returns:
        The worker's report plus ``available: True``, or ``available: False`` and a ``reason``.
    """
    base = {"name": ref.name, "env_id": ref.env_id}
    try:
        python = reference_python(ref, settings, log)
    except ReferenceUnavailable as exc:
        return {**base, "available": False, "reason": str(exc)}
    policies = () if timing_only else ref.policies
    config = {
        "env_id": ref.env_id,
        "seconds": settings.seconds,
        "repeats": settings.repeats,
        "warmup_s": settings.warmup_s,
        "seed": settings.seed,
        "episodes": settings.episodes,
        "policies": [
            {"name": p.name, "kind": p.kind, "z": list(p.levels), "q": list(p.levels)}
            for p in policies
        ],
        "cases": [] if timing_only else [theirs for _, theirs in _exact_cases(ref, settings)],
    }
    timeout = 600 + 3 * (settings.warmup_s + settings.repeats * settings.seconds)
    return {**base, **call_worker(python, ref.worker, config, timeout, {"MPLBACKEND": "Agg"})}


def call_worker(
    python: Path,
    worker: str,
    config: Mapping[str, Any],
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``python WORKERS/worker '<config as JSON>'`` and read the JSON line it prints last.

    Args:
        python: the reference venv's interpreter.
        worker: the worker script's file name in :data:`WORKERS`.
        config: the worker's config.
        timeout: seconds before the worker is abandoned.
        env: variables set on top of this process's environment (and ``PYTHONWARNINGS=ignore``).

    Returns:
        ``available: True``, ``python`` and the worker's JSON; or ``available: False`` and a
        ``reason`` (the worker could not start, ran out of time, failed or printed no JSON).
    """
    variables = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    command = [str(python), str(WORKERS / worker), json.dumps(config)]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=variables
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"available": False, "reason": f"worker failed: {exc}"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        output = _tail(proc.stderr or proc.stdout) or "no output"
        reason = f"worker exited with {proc.returncode} (`{shlex.join(command[:2])}`): {output}"
        return {"available": False, "reason": reason}
    return {"available": True, "python": str(python), **json.loads(lines[-1])}


def _exact_cases(ref: Reference, settings: Settings) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    if ref.exact_cases is None or settings.exact_cases <= 0:
        return []
    return ref.exact_cases(settings.exact_cases, settings.seed)


def our_episode_return(workload: Workload, kwargs: Mapping[str, Any], policy: Policy) -> float:
    """Return of one episode of our single env built with ``kwargs`` under ``policy``."""
    ref = workload.reference
    assert ref is not None and ref.policy_actions is not None
    env = gym.make(workload.env_id, **{**workload.kwargs, **ref.policy_kwargs, **kwargs})
    env.reset(seed=0)
    lepton: Any = env.unwrapped
    total = 0.0
    while True:
        action = ref.policy_actions(lepton, lepton.snapshot(), policy)[0]
        _, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        if terminated or truncated:
            env.close()
            return total


def our_policy_returns(
    workload: Workload, policy: Policy, episodes: int, seed: int
) -> dict[str, Any]:
    """Mean return of ``policy`` over ``episodes`` episodes of our env (one replica each)."""
    ref = workload.reference
    assert ref is not None and ref.policy_actions is not None
    kwargs = {**workload.kwargs, **ref.policy_kwargs}
    venv = gym.make_vec(workload.env_id, num_envs=episodes, **kwargs)
    venv.reset(seed=seed)
    inner: Any = venv.unwrapped
    lepton = getattr(inner, "env", inner)
    returns = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        actions = ref.policy_actions(lepton, inner.snapshot(), policy)
        _, rewards, terminated, truncated, _ = venv.step(actions)
        returns += np.where(running, rewards, 0.0)
        running &= ~(terminated | truncated)
    venv.close()
    std = float(returns.std(ddof=1)) if episodes > 1 else 0.0
    return {
        "name": policy.name,
        "episodes": episodes,
        "mean": float(returns.mean()),
        "std": std,
        "sem": std / math.sqrt(episodes),
    }


def faithfulness(
    workload: Workload, reference: Mapping[str, Any], settings: Settings
) -> dict[str, Any]:
    """Compare fixed-policy mean returns of ours and the reference (different RNG streams).

    Two means agree when ``|ours - reference| < AGREEMENT_Z * sqrt(sem_ours^2 + sem_ref^2)``.
    On the reference's exact cases (the same deterministic episode on both sides) every return
    must agree to ``1e-6`` relative.
    """
    ref = workload.reference
    assert ref is not None
    theirs_by_name = {p["name"]: p for p in reference.get("policies", [])}
    exact_by_name = {p["name"]: p["returns"] for p in reference.get("exact", [])}
    cases = _exact_cases(ref, settings)
    exact = []
    for policy in ref.policies:
        theirs_exact = exact_by_name.get(policy.name)
        if not cases or theirs_exact is None or len(theirs_exact) != len(cases):
            continue
        ours_exact = [our_episode_return(workload, ours, policy) for ours, _ in cases]
        diffs = [abs(a - b) for a, b in zip(ours_exact, theirs_exact, strict=True)]
        bound = max(1e-6 * max(1.0, abs(b)) for b in theirs_exact)
        exact.append(
            {
                "policy": policy.name,
                "cases": len(cases),
                "max_abs_difference": max(diffs),
                "agree": max(diffs) <= bound,
                "ours": ours_exact,
                "reference": list(theirs_exact),
            }
        )
    rows = []
    for policy in ref.policies:
        theirs = theirs_by_name.get(policy.name)
        if theirs is None:
            continue
        ours = our_policy_returns(workload, policy, settings.episodes, settings.seed + 1)
        diff = ours["mean"] - theirs["mean"]
        se = math.hypot(ours["sem"], theirs["sem"])
        z = diff / se if se > 0 else (0.0 if diff == 0 else math.inf)
        rows.append(
            {
                "policy": policy.name,
                "ours": ours,
                "reference": theirs,
                "difference": diff,
                "z": z,
                "agree": abs(z) < AGREEMENT_Z,
            }
        )
    return {
        "agree": all(r["agree"] for r in rows + exact),
        "threshold_z": AGREEMENT_Z,
        "policies": rows,
        "exact": exact,
    }


# --- one workload, one family --------------------------------------------------------------
def ratio_key(batch_size: int) -> str:
    """JSON key of our steps/s at ``batch_size`` over the single-env reference."""
    return "ratio_single" if batch_size == 1 else f"ratio_b{batch_size}"


def paired_rounds(
    name: str,
    reference: Reference,
    settings: Settings,
    measure: Callable[[int, Settings], float],
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """``settings.rounds`` rounds of ours at every batch size, then the reference, and the ratios.

    Each side gets one timed window of ``settings.seconds`` after its warm-up.

    Args:
        name: the workload's label in progress messages.
        reference: the reference, timed by its worker.
        settings: budgets; ``rounds`` and ``batch_sizes`` say what is timed.
        measure: our steps/s at a batch size, under settings with one repeat.
        log: progress messages.

    Returns:
        Per round: ``ours`` (steps/s per batch size), ``reference`` (steps/s) and ``ratios``;
        rounds whose reference run failed are left out.
    """
    one = dataclasses.replace(settings, repeats=1)
    rounds = []
    for r in range(settings.rounds):
        log(f"[{name}] paired round {r + 1}/{settings.rounds}")
        ours = {str(b): measure(b, one) for b in settings.batch_sizes}
        ref = run_reference(reference, one, log, timing_only=True)
        if not ref.get("available"):
            log(f"[{name}] paired round {r + 1}: reference failed: {ref.get('reason')}")
            continue
        theirs = float(ref["steps_per_s"]["best"])
        ratios = {ratio_key(b): ours[str(b)] / theirs for b in settings.batch_sizes}
        rounds.append({"ours": ours, "reference": theirs, "ratios": ratios})
    return rounds


def paired_medians(rounds: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Median of every ratio over paired ``rounds`` (empty when there are none)."""
    if not rounds:
        return {}
    return {
        key: float(np.median([r["ratios"][key] for r in rounds])) for key in rounds[0]["ratios"]
    }


# --- targets -------------------------------------------------------------------------------
def is_reference_ratio(key: str) -> bool:
    """Whether the figure ``key`` divides ours by the reference's (``ratio_single``, ...)."""
    return key.startswith("ratio_")


def reference_problem(reference: Mapping[str, Any] | None) -> str | None:
    """Why ratios to ``reference`` (a :func:`run_reference` result) cannot meet a target.

    Returns:
        ``None`` when the reference ran on the same parameters as ours; else the reason:
        ``--no-reference``, unavailable, or parameters that differ (named).
    """
    if reference is None:
        return "reference unavailable: --no-reference"
    if not reference.get("available"):
        return "reference unavailable"
    if not reference.get("params_match"):
        names = [line.split(": ", 1)[0] for line in reference.get("param_mismatches") or []]
        if not names:
            return "parameters not compared with the reference's"
        return "parameters differ from the reference's: " + ", ".join(names)
    return None


def check_targets(
    bounds: Mapping[str, float],
    values: Mapping[str, Any],
    paired: Mapping[str, float] | None = None,
    incomparable: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Check every ``figure >= bound`` target, saying why one is not checked.

    Args:
        bounds: ``figure -> lower bound``.
        values: the figures (``None``: not measured).
        paired: paired-round medians; where there is one, it is the value checked.
        incomparable: why ratios to the reference are not comparable with ours (see
            :func:`reference_problem`); ``None`` when they are.

    Returns:
        Per figure: ``bound``, ``value``, ``basis`` (``paired median`` or ``best runs``),
        ``target_met`` (``True``/``False``; ``None``: not checked) and ``reason`` (why not
        checked; ``None`` when checked). A ratio to the reference is not checked when
        ``incomparable`` gives a reason, even where a value exists.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, bound in bounds.items():
        value, basis = values.get(key), "best runs"
        if paired and paired.get(key) is not None:
            value, basis = paired[key], "paired median"
        reason = incomparable if is_reference_ratio(key) else None
        if reason is None and value is None:
            reason = "not measured"
        met = None if reason is not None or value is None else bool(value >= bound)
        out[key] = {
            "bound": bound,
            "value": value,
            "basis": basis,
            "target_met": met,
            "reason": reason,
        }
    return out


def target_status(check: Mapping[str, Any]) -> str:
    """``met``, ``MISSED`` or ``not checked: <reason>`` for one :func:`check_targets` entry."""
    if check["target_met"] is None:
        return f"not checked: {check['reason']}"
    return "met" if check["target_met"] else "MISSED"


def targets_summary(checks: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts of targets met, missed and not checked; ``all_met`` only when every one was met.

    ``all_met`` is ``None`` when there is no target, ``False`` when one was missed or not
    checked.
    """
    found = [c["target_met"] for c in checks]
    met, missed = found.count(True), found.count(False)
    return {
        "total": len(found),
        "met": met,
        "missed": missed,
        "not_checked": len(found) - met - missed,
        "all_met": (met == len(found)) if found else None,
    }


def format_targets_summary(summary: Mapping[str, Any]) -> str:
    """The summary line of :func:`targets_summary`."""
    if not summary["total"]:
        return "targets: none"
    if summary["all_met"]:
        return f"targets: all {summary['total']} met"
    return (
        f"targets: NOT all met: {summary['met']} met, {summary['missed']} MISSED, "
        f"{summary['not_checked']} not checked, of {summary['total']}"
    )


def run_workload(
    workload: Workload, settings: Settings, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Measure one workload: throughput at every B, the reference, PPO overhead, faithfulness."""
    kwargs = dict(workload.kwargs)
    detail: dict[str, dict[str, Any]] = {}
    reference: dict[str, Any] | None = None
    for b in settings.batch_sizes:
        log(f"[{workload.name}] env steps/s at B={b}")
        detail[str(b)] = measure_ours(workload.env_id, kwargs, b, settings)
        if b == 1 and workload.reference is not None and settings.reference:
            # the reference runs right after our single env, between our measurements
            log(f"[{workload.name}] reference: {workload.reference.name}")
            reference = run_reference(workload.reference, settings, log)
    if reference is None and workload.reference is not None and settings.reference:
        reference = run_reference(workload.reference, settings, log)
    ours = {b: d["best"] for b, d in detail.items()}
    ref_sps = None
    if workload.reference is not None and reference is not None and reference.get("available"):
        ref_sps = float(reference["steps_per_s"]["best"])
        env = gym.make(workload.env_id, **kwargs)
        mismatches = workload.reference.check_params(env, reference.get("params", {}))
        env.close()
        reference["params_match"] = not mismatches
        reference["param_mismatches"] = mismatches
    result: dict[str, Any] = {
        "env_id": workload.env_id,
        "kwargs": kwargs,
        "threads": settings.threads,
        "ours_steps_per_s": ours,
        "ours_detail": detail,
        "reference_steps_per_s": ref_sps,
    }
    for b in settings.batch_sizes:
        result[ratio_key(b)] = ours[str(b)] / ref_sps if ref_sps else None
    result["ppo_overhead_ratio"] = None
    result["ppo"] = None
    if settings.ppo is not None:
        log(f"[{workload.name}] PPO frames/s: env vs zero-cost env")
        result["ppo"] = measure_ppo_overhead(workload.env_id, kwargs, settings, settings.ppo)
        result["ppo_overhead_ratio"] = result["ppo"]["ppo_overhead_ratio"]
    # the same figures per second of process CPU time: steadier when other jobs share the CPUs
    cpu_ours = {b: d["cpu_best"] for b, d in detail.items()}
    cpu_ref = None
    if reference is not None and ref_sps:
        cpu_ref = float(reference["steps_per_s"]["cpu_best"])
    cpu: dict[str, Any] = {"ours_steps_per_s": cpu_ours, "reference_steps_per_s": cpu_ref}
    for b in settings.batch_sizes:
        cpu[ratio_key(b)] = cpu_ours[str(b)] / cpu_ref if cpu_ref else None
    cpu["ppo_overhead_ratio"] = result["ppo"]["cpu_ppo_overhead_ratio"] if result["ppo"] else None
    result["cpu_time_basis"] = cpu
    result["reference"] = reference
    result["faithfulness"] = None
    if reference is not None and reference.get("available") and reference.get("policies"):
        log(f"[{workload.name}] faithfulness: fixed policies on both implementations")
        result["faithfulness"] = faithfulness(workload, reference, settings)
    result["rounds"] = []
    if ref_sps and workload.reference is not None and settings.rounds > 0:
        env_id = workload.env_id
        result["rounds"] = paired_rounds(
            workload.name,
            workload.reference,
            settings,
            lambda b, one: measure_ours(env_id, kwargs, b, one)["best"],
            log,
        )
    result["paired"] = paired_medians(result["rounds"])
    result["targets"] = dict(workload.targets)
    if workload.reference is None:
        problem: str | None = "no reference implementation"
    else:
        problem = reference_problem(reference)
    result["target_checks"] = check_targets(workload.targets, result, result["paired"], problem)
    if settings.ppo is None and "ppo_overhead_ratio" in result["target_checks"]:
        result["target_checks"]["ppo_overhead_ratio"]["reason"] = "not measured: --no-ppo"
    result["targets_met"] = {k: c["target_met"] for k, c in result["target_checks"].items()}
    return result


def check_workloads(family: str, workloads: Sequence[str] | None) -> None:
    """Raise ``ValueError`` naming the allowed values if ``family`` or a workload is unknown."""
    if family not in WORKLOADS:
        raise ValueError(f"family: unknown {family!r}; allowed values: {sorted(WORKLOADS)}")
    if workloads is not None:
        unknown = sorted(set(workloads) - {w.name for w in WORKLOADS[family]})
        if unknown:
            names = [w.name for w in WORKLOADS[family]]
            raise ValueError(f"workload: unknown {unknown} in {family!r}; allowed values: {names}")


def _git_describe() -> str | None:
    try:
        proc = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def _cpu_model() -> str | None:
    """The processor's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that ran the bench, quoted for a POSIX shell.

    Args:
        argv: the arguments the bench parsed (default: ``sys.argv[1:]``); the program is
            ``sys.argv[0]``.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    return shlex.join([sys.argv[0], *args])


def metadata(settings: Settings, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Where and how the numbers were taken.

    Args:
        settings: the run's settings (budgets and seed are copied here).
        argv: the arguments the bench parsed, recorded in ``command`` (default: ``sys.argv[1:]``).
    """
    from importlib.metadata import version

    versions: dict[str, str | None] = {}
    for dist in ("gymnasium", "stable-baselines3", "torch", "numba"):
        try:
            versions[dist] = version(dist)
        except Exception:  # noqa: BLE001 - optional packages are reported as missing
            versions[dist] = None
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "git": _git_describe(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "versions": versions,
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(affinity) if affinity is not None else None,
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "seconds_per_measurement": settings.seconds,
        "repeats": settings.repeats,
        "warmup_s": settings.warmup_s,
        "seed": settings.seed,
        "command": command_line(argv),
    }


def run_family(
    family: str,
    settings: Settings,
    workloads: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run every workload of ``family`` (or those named in ``workloads``) and collect the report.

    ``argv`` is the command line recorded in the metadata (default: ``sys.argv[1:]``).
    """
    check_workloads(family, workloads)
    chosen = [w for w in WORKLOADS[family] if workloads is None or w.name in workloads]
    report: dict[str, Any] = {
        "family": family,
        "metadata": metadata(settings, argv),
        "settings": dataclasses.asdict(settings),
        "workloads": {w.name: run_workload(w, settings, log) for w in chosen},
    }
    report["targets_summary"] = targets_summary(
        c for w in report["workloads"].values() for c in w["target_checks"].values()
    )
    if hasattr(os, "getloadavg"):
        report["metadata"]["load_average_end"] = list(os.getloadavg())
    return report


# --- report --------------------------------------------------------------------------------
def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def format_report(report: Mapping[str, Any]) -> str:
    """The markdown table of ``report`` plus reference, faithfulness and target lines."""
    sizes = [int(b) for b in report["settings"]["batch_sizes"]]
    head = ["workload", *(f"ours B={b}" for b in sizes), "reference"]
    head += [ratio_key(b) for b in sizes] + ["ppo_overhead_ratio"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for name, w in report["workloads"].items():
        cells = [name, *(_num(w["ours_steps_per_s"][str(b)], ",.0f") for b in sizes)]
        cells.append(_num(w["reference_steps_per_s"], ",.0f"))
        cells += [_num(w[ratio_key(b)], ".2f") for b in sizes]
        cells.append(_num(w["ppo_overhead_ratio"], ".2f"))
        lines.append("| " + " | ".join(cells) + " |")
    meta = report["metadata"]
    lines += [
        "",
        f"steps/s: best of {meta['repeats']} x {meta['seconds_per_measurement']} s; "
        f"git {meta['git']}; python {meta['python']}, numpy {meta['numpy']}; "
        f"{meta['cpus_usable']} usable CPUs; {meta['date']}",
    ]
    for name, w in report["workloads"].items():
        ref = w.get("reference")
        if ref is not None:
            if ref.get("available"):
                v = ref.get("versions", {})
                same = (
                    "yes"
                    if ref.get("params_match")
                    else "NO: " + "; ".join(ref["param_mismatches"])
                )
                stack = ", ".join(f"{k} {x}" for k, x in v.items() if k != "python" and x)
                lines.append(
                    f"{name} reference: {ref['name']} ({stack}; {ref.get('api')}); "
                    f"same parameters: {same}"
                )
            else:
                lines.append(f"{name} reference: {ref['name']} unavailable: {ref['reason']}")
        if w.get("threads", 1) > 1:
            lines.append(f"{name}: our batched envs stepped on {w['threads']} threads")
        cpu = w["cpu_time_basis"]
        parts = [f"ours B={b} {cpu['ours_steps_per_s'][str(b)]:,.0f}" for b in sizes]
        parts.append(f"reference {_num(cpu['reference_steps_per_s'], ',.0f')}")
        parts += [f"{ratio_key(b)} {_num(cpu[ratio_key(b)], '.2f')}" for b in sizes]
        parts.append(f"ppo_overhead_ratio {_num(cpu['ppo_overhead_ratio'], '.2f')}")
        lines.append(f"{name} per CPU-second of each process: " + ", ".join(parts))
        ppo = w.get("ppo")
        if ppo is not None:
            s = ppo["settings"]
            lines.append(
                f"{name} PPO: ratio per repeat "
                f"{', '.join(format(x, '.2f') for x in ppo['ratios'])} (median in the table); "
                f"best {ppo['env_frames_per_s']['best']:,.0f} frames/s on the env, "
                f"{ppo['zero_cost_frames_per_s']['best']:,.0f} on the zero-cost env "
                f"(n_envs={s['n_envs']}, n_steps={s['n_steps']}, batch_size={s['batch_size']}, "
                f"n_epochs={s['n_epochs']}, {s['total_timesteps']} frames, 1 torch thread, "
                f"episode length {ppo['episode_length']})"
            )
        faith = w.get("faithfulness")
        if faith is not None:
            lines += [
                "",
                f"{name} faithfulness (mean episode return ± s.e.; agree when |z| < "
                f"{faith['threshold_z']:g}):",
                "",
                "| policy | ours | reference | z | agree |",
                "|---|---|---|---|---|",
            ]
            for row in faith["policies"]:
                o, r = row["ours"], row["reference"]
                lines.append(
                    f"| {row['policy']} | {o['mean']:.2f} ± {o['sem']:.2f} ({o['episodes']} ep) | "
                    f"{r['mean']:.2f} ± {r['sem']:.2f} ({r['episodes']} ep) | {row['z']:+.2f} | "
                    f"{'yes' if row['agree'] else 'NO'} |"
                )
            for row in faith["exact"]:
                lines.append(
                    f"{name} {row['policy']} on {row['cases']} common demand paths: max |ours - "
                    f"reference| = {row['max_abs_difference']:.2e} "
                    f"({'identical' if row['agree'] else 'DIFFERENT'})"
                )
            if not faith["agree"]:
                lines.append(f"WARNING: {name} returns differ from the reference beyond noise")
    lines.append("")
    for name, w in report["workloads"].items():
        rounds, paired = w.get("rounds", []), w.get("paired", {})
        for key in paired:
            each = ", ".join(format(r["ratios"][key], ".1f") for r in rounds)
            lines.append(
                f"{name} {key} over {len(rounds)} paired rounds: median {paired[key]:.2f} ({each})"
            )
        for key, check in w["target_checks"].items():
            basis = " (paired median)" if check["basis"] == "paired median" else ""
            lines.append(
                f"target {name} {key} >= {check['bound']:g}: {_num(check['value'], '.2f')}"
                f"{basis} ({target_status(check)})"
            )
    checks = [c for w in report["workloads"].values() for c in w["target_checks"].values()]
    lines.append(format_targets_summary(targets_summary(checks)))
    return "\n".join(lines)


def _default_out(family: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    git = _git_describe() or "nogit"
    return ROOT / ".bench" / f"{family}__{git}__{stamp}.json"


def writable_out(path: Path, option: str = "--out") -> Path:
    """Check, before a long run, that its JSON report can be written to ``path``.

    Creates the parent folder and a probe file in it (removed at once).

    Raises:
        ValueError: naming ``option``, when ``path`` is a folder or cannot be written.
    """
    if path.is_dir():
        raise ValueError(
            f"{option}: {path} is a folder; expected a file path such as {path}/bench.json"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and exc.strerror else ""
        raise ValueError(f"{option}: cannot write {path}: {exc.strerror or exc}{where}") from exc
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{option}: cannot write {path}: permission denied")
    return path


LIMITS: dict[str, tuple[str, Callable[[float], bool], str]] = {
    "seconds": ("--seconds", lambda x: x > 0, "> 0"),
    "repeats": ("--repeats", lambda x: x >= 1, ">= 1"),
    "warmup": ("--warmup", lambda x: x >= 0, ">= 0"),
    "episodes": ("--episodes", lambda x: x >= 2, ">= 2 (a mean return needs a standard error)"),
    "exact_cases": ("--exact-cases", lambda x: x >= 0, ">= 0 (0: none)"),
    "seed": ("--seed", lambda x: x >= 0, ">= 0"),
    "rounds": ("--rounds", lambda x: x >= 0, ">= 0 (0: no paired rounds)"),
    "ppo_envs": ("--ppo-envs", lambda x: x >= 1, ">= 1"),
    "ppo_n_steps": ("--ppo-n-steps", lambda x: x >= 1, ">= 1"),
    "ppo_batch_size": ("--ppo-batch-size", lambda x: x >= 2, ">= 2 (SB3's PPO needs 2)"),
    "ppo_epochs": ("--ppo-epochs", lambda x: x >= 1, ">= 1"),
    "ppo_timesteps": ("--ppo-timesteps", lambda x: x >= 1, ">= 1"),
}
"""Allowed values of the numeric options: ``dest -> (option, check, allowed)``."""


DELEGATED = {"traffic": "scripts.bench_traffic", "traffic-fidelity": "scripts.bench_traffic"}
"""Families benchmarked by their own module, whose ``main`` gets the whole command line."""

THREADED = ("recsys",)
"""Families here whose batched envs take ``threads`` (``--threads``)."""


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    family = next((a for a in given if a in DELEGATED), None)
    if family is not None:
        from importlib import import_module

        return int(import_module(DELEGATED[family]).main(given))
    parser = argparse.ArgumentParser(
        prog="lepton-bench",
        description="Env throughput (B=1/16/256), PPO overhead and the reference implementation.",
    )
    parser.add_argument(
        "family", choices=sorted([*WORKLOADS, *DELEGATED]), help="scenario family to benchmark"
    )
    parser.add_argument(
        "--out", type=Path, help="JSON report (default: .bench/<family>__<git>__<time>.json)"
    )
    parser.add_argument("--workload", action="append", help="only this workload (repeatable)")
    parser.add_argument("--seconds", type=float, default=2.0, help="wall budget per timed run, s")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--warmup", type=float, default=0.5, help="untimed warm-up run, s")
    parser.add_argument(
        "--episodes", type=int, default=200, help="episodes per policy (faithfulness)"
    )
    parser.add_argument(
        "--exact-cases", type=int, default=20, help="common demand paths per policy (faithfulness)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the reference implementation"
    )
    parser.add_argument("--reference-python", help="interpreter with the reference installed")
    parser.add_argument("--no-ppo", action="store_true", help="skip the PPO overhead measurement")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help=f"threads that step our batched envs ({', '.join(THREADED)}; default 1)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="paired rounds of ours and the reference; their median ratios meet the targets",
    )
    defaults = PPOSettings()
    parser.add_argument("--ppo-envs", type=int, default=defaults.n_envs)
    parser.add_argument("--ppo-n-steps", type=int, default=defaults.n_steps)
    parser.add_argument("--ppo-batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--ppo-epochs", type=int, default=defaults.n_epochs)
    parser.add_argument("--ppo-timesteps", type=int, default=defaults.total_timesteps)
    args = parser.parse_args(argv)
    for dest, (option, allowed, text) in LIMITS.items():
        value = getattr(args, dest)
        if not (math.isfinite(value) and allowed(value)):
            parser.error(f"{option}: must be {text}, got {value:g}")
    if args.threads < 1:
        parser.error(f"--threads: must be >= 1, got {args.threads}")
    if args.threads > 1 and args.family not in THREADED:
        parser.error(
            f"--threads: {args.family} envs step on one thread (allowed values: 1; "
            f"more for {', '.join(THREADED)})"
        )
    if args.ppo_envs * args.ppo_n_steps < 2:
        parser.error("--ppo-envs x --ppo-n-steps: must be >= 2 (frames per PPO rollout)")
    try:
        check_workloads(args.family, args.workload)
        out = writable_out(args.out or _default_out(args.family))
    except ValueError as exc:
        parser.error(str(exc) if str(exc).startswith("--") else f"--{exc}")

    ppo = None
    if not args.no_ppo:
        ppo = PPOSettings(
            n_envs=args.ppo_envs,
            n_steps=args.ppo_n_steps,
            batch_size=args.ppo_batch_size,
            n_epochs=args.ppo_epochs,
            total_timesteps=args.ppo_timesteps,
        )
    settings = Settings(
        seconds=args.seconds,
        repeats=args.repeats,
        warmup_s=args.warmup,
        episodes=args.episodes,
        exact_cases=args.exact_cases,
        seed=args.seed,
        reference=not args.no_reference,
        reference_python=args.reference_python,
        ppo=ppo,
        rounds=args.rounds,
        threads=args.threads,
    )

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = run_family(args.family, settings, args.workload, log, argv=given)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
