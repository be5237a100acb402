"""PPO time to quality: the training and evaluation protocol both traffic benchmark sides run.

Imported by ``sumo_worker.py`` (as a sibling module in the sumo-rl venv) and by
``scripts.bench_traffic`` (as ``scripts.bench_ref.ttq``), so SUMO and our simulator are trained,
evaluated and stopped by the same code. Only the standard library is imported at module level;
gymnasium, stable-baselines3, torch and numpy, which both venvs have, are imported when used.

Config keys: ``seed`` (0), ``torch_threads`` (1), ``threshold`` (``None``: never met),
``min_arrived_fraction`` (0.9), ``eval_every`` (7200 timesteps), ``max_wall_s`` (600),
``max_timesteps`` (no limit), ``eval_seed`` (10000), ``eval_at_start`` (true) and ``ppo`` (SB3
``PPO`` keyword arguments).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

Figures = dict[str, Any]
"""Figures of one evaluation episode; ``mean_travel_time`` is the one on the curve."""

PPO_REPORTED = (
    "n_steps",
    "batch_size",
    "n_epochs",
    "learning_rate",
    "gamma",
    "gae_lambda",
    "ent_coef",
    "vf_coef",
    "clip_range",
    "max_grad_norm",
)
"""PPO settings echoed in the result (given ones, else the model's; schedules as given)."""


def plain(value: Any) -> Any:
    """``value`` if JSON has a type for it, else its ``repr`` (e.g. an SB3 schedule)."""
    return value if isinstance(value, bool | int | float | str | type(None)) else repr(value)


def time_to_quality(
    env: Any,
    evaluate: Callable[[Any, int], Figures],
    meets_quality: Callable[[Mapping[str, Any], float | None, float], bool],
    cfg: Mapping[str, Any],
    rollout: str | None = None,
    make_vec: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Train PPO on ``env`` until an evaluation meets ``meets_quality`` or the budget ends.

    One env in a ``DummyVecEnv`` with SB3's ``Monitor``; training episode ``k`` resets with seed
    ``seed + k``; ``torch`` runs on ``torch_threads`` threads. ``evaluate`` runs before training
    (when ``eval_at_start``) and after every ``eval_every`` timesteps; the rollout is reset
    before every training chunk, since an evaluation on the training env abandons the episode in
    progress. Training stops at the first evaluation that meets the gate, after ``max_wall_s``
    seconds or after ``max_timesteps``. ``env`` is left open for the caller to close.

    Args:
        env: the single-agent Gymnasium env to train on.
        evaluate: ``evaluate(model, eval_seed)``, the figures of one deterministic episode.
        meets_quality: ``meets_quality(figures, threshold, min_arrived_fraction)``, the gate.
        cfg: the run's settings (see the module docstring).
        rollout: a note on the rollout setup, reported as ``rollout`` when given.
        make_vec: ``make_vec(seed)`` builds a batched SB3 ``VecEnv`` of ``R`` replicas to
            collect the rollouts instead (``env`` then only evaluates): PPO's ``n_steps`` is
            divided by ``R`` so every update still learns from ``n_steps`` transitions, and the
            replicas' episodes run on across evaluations.

    Returns:
        The gate, whether and when (wall and CPU seconds, timesteps) it was met, the totals
        (evaluation and training wall time apart), the PPO settings, ``curve`` (``[wall_s,
        timesteps, mean_travel_time]`` per evaluation) and ``evals`` (every evaluation's
        figures).
    """
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    seed = int(cfg.get("seed", 0))
    torch.set_num_threads(int(cfg.get("torch_threads", 1)))
    threshold = float(cfg["threshold"]) if cfg.get("threshold") is not None else None
    min_fraction = float(cfg.get("min_arrived_fraction", 0.9))
    eval_every = int(cfg.get("eval_every", 7200))
    max_wall_s = float(cfg.get("max_wall_s", 600.0))
    max_timesteps = cfg.get("max_timesteps")
    eval_seed = int(cfg.get("eval_seed", 10_000))
    ppo_kwargs = dict(cfg.get("ppo", {}))

    class EpisodeSeeds(gym.Wrapper):
        """Training episode ``k`` runs with seed ``seed + k``."""

        def __init__(self, inner: Any) -> None:
            super().__init__(inner)
            self.episodes = 0

        def reset(self, *, seed: int | None = None, options: dict | None = None) -> Any:
            self.episodes += 1
            return self.env.reset(seed=base_seed + self.episodes - 1, options=options)

    base_seed = seed
    reported = dict(ppo_kwargs)
    if make_vec is None:
        vec = DummyVecEnv([lambda: Monitor(EpisodeSeeds(env))])
    else:
        vec = make_vec(seed)
        steps = int(ppo_kwargs.get("n_steps", 2048))
        if steps % vec.num_envs:
            raise ValueError(f"ppo.n_steps: {steps} is not a multiple of {vec.num_envs} replicas")
        ppo_kwargs["n_steps"] = steps // vec.num_envs
    model = PPO("MlpPolicy", vec, seed=seed, device="cpu", verbose=0, **ppo_kwargs)
    model.set_logger(Logger(None, []))  # SB3's default makes a temporary folder every learn

    curve: list[list[float | None]] = []
    evals: list[dict[str, Any]] = []
    eval_wall = 0.0
    hit: int | None = None
    start, cpu0 = time.perf_counter(), time.process_time()

    def evaluate_and_record() -> bool:
        nonlocal eval_wall, hit
        t0 = time.perf_counter()
        figures = evaluate(model, eval_seed)
        eval_wall += time.perf_counter() - t0
        wall = time.perf_counter() - start
        met = meets_quality(figures, threshold, min_fraction)
        curve.append([wall, model.num_timesteps, figures["mean_travel_time"]])
        cpu = time.process_time() - cpu0
        point = {"wall_s": wall, "cpu_s": cpu, "timesteps": model.num_timesteps, "met": met}
        evals.append({**point, **figures})
        if met and hit is None:
            hit = len(curve) - 1
        return met

    reached = bool(cfg.get("eval_at_start", True)) and evaluate_and_record()
    while not reached:
        if time.perf_counter() - start >= max_wall_s:
            break
        if max_timesteps is not None and model.num_timesteps >= int(max_timesteps):
            break
        if make_vec is None:  # the evaluation ran on the training env: start a new episode
            model._last_obs = vec.reset()
            model._last_episode_starts = np.ones((vec.num_envs,), dtype=bool)
        model.learn(eval_every, reset_num_timesteps=False)
        reached = evaluate_and_record()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {
        "threshold": threshold,
        "min_arrived_fraction": min_fraction,
        "reached": hit is not None,
        "wall_s_to_threshold": curve[hit][0] if hit is not None else None,
        "timesteps_to_threshold": curve[hit][1] if hit is not None else None,
        "timesteps": model.num_timesteps,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_s_to_threshold": evals[hit]["cpu_s"] if hit is not None else None,
        "eval_wall_s": eval_wall,
        "train_wall_s": wall - eval_wall,
        "eval_every": eval_every,
        "eval_seed": eval_seed,
        **({"rollout": rollout} if rollout is not None else {}),
        "ppo": {k: plain(reported.get(k, getattr(model, k, None))) for k in PPO_REPORTED},
        **({"replicas": vec.num_envs} if make_vec is not None else {}),
        "curve": curve,
        "evals": evals,
    }
