"""Time RecSim's ``interest_evolution`` and report fixed policies' watch time (RecSim's venv).

Run by ``scripts.bench`` as ``python recsim_worker.py '<json config>'`` with the interpreter of
``.bench/venvs/recsim`` (RecSim 0.2.4 with TensorFlow 2.15.1; jax and its companions are
removed, or blocked by :func:`block_jax`, because TensorFlow would import them). It imports nothing from Lepton Gym and prints
one JSON object as the last line of stdout.

Config keys: ``env_id`` (``interest_evolution``), ``seconds`` (wall budget per timed run),
``repeats``, ``warmup_s``, ``seed``, ``episodes`` (per policy), ``policies``, a list of
``{"name": ..., "kind": "random" | "quality_first"}``, and ``env_config`` overrides of RecSim's
standard configuration ``{num_candidates: 10, slate_size: 2, resample_documents: True}``.

RecSim draws its interest updates and choices from numpy's *global* generator besides its own
seeded ones, so the worker seeds ``np.random`` too (once per timed run and once per policy).
The timing steps RecSim's gym env (``RecSimGymEnv.step``, the old 4-tuple API) with random
slates of distinct candidates drawn beforehand, resetting when a session ends. ``quality_first``
reads the true quality of the current candidates from the environment, as our baseline reads
the state snapshot; ``random`` shows distinct candidates uniformly at random.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import warnings
from typing import Any

if __package__:  # imported from the project (tests)
    from . import steploop
else:  # run as a script in its reference venv: the sibling module is on sys.path
    import steploop

STANDARD = {"num_candidates": 10, "slate_size": 2, "resample_documents": True}
BLOCKED = ("jax", "jaxlib", "flax", "optax", "orbax")
"""Packages TensorFlow would import when present (and fail on with RecSim's old numpy pins)."""


def block_jax() -> None:
    """Make ``import jax`` (and companions) fail fast, as if they were not installed."""
    for name in BLOCKED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def make_env(env_config: dict, seed: int) -> Any:
    """RecSim's ``interest_evolution`` gym env with ``env_config`` and ``seed``."""
    from recsim.environments import interest_evolution

    return interest_evolution.create_environment({**env_config, "seed": seed})


def params(env: Any, env_config: dict) -> dict:
    """The parameters that define RecSim's task, for comparison with our preset."""
    import numpy as np

    sim = env.environment
    user_model = sim.user_model
    state = user_model._user_state
    sampler = sim._document_sampler
    return {
        "num_candidates": int(env_config["num_candidates"]),
        "slate_size": int(env_config["slate_size"]),
        "resample_documents": bool(env_config["resample_documents"]),
        "num_topics": int(len(state.user_interests)),
        "time_budget": float(state.time_budget),
        "step_penalty": float(state.step_penalty),
        "no_click_mass": float(state.choice_features["no_click_mass"]),
        "min_normalizer": float(state.choice_features["min_normalizer"]),
        "user_update_alpha": float(state.user_update_alpha),
        "user_quality_factor": float(state.user_quality_factor),
        "document_quality_factor": float(state.document_quality_factor),
        "alpha_y_intercept": float(user_model._alpha_y_intercept),
        "alpha_x_intercept": float(user_model._alpha_x_intercept),
        "cluster_means": np.asarray(sampler.cluster_means, dtype=float).tolist(),
        "video_length": float(sampler._video_length),
        # UtilityModelVideoSampler.sample_document draws quality ~ N(cluster mean, 0.1), a
        # constant of its code rather than an attribute
        "quality_std": 0.1,
        "choice_model": type(user_model.choice_model).__name__,
    }


def quality_first(env: Any, slate_size: int) -> list[int]:
    """Positions of the ``slate_size`` current candidates of highest true quality."""
    sim = env.environment
    ids = list(sim._current_documents)
    docs = sim._candidate_set.get_documents(ids)
    order = sorted(range(len(docs)), key=lambda j: (-docs[j].quality, j))
    return order[:slate_size]


def time_steps(env_config: dict, seconds: float, repeats: int, warmup_s: float, seed: int) -> dict:
    """Steps per second of ``env.step`` with random slates; resets count as they occur."""
    import numpy as np

    rng = np.random.default_rng(seed)
    c, k = int(env_config["num_candidates"]), int(env_config["slate_size"])
    slates = [rng.permutation(c)[:k] for _ in range(1024)]
    env = make_env(env_config, seed)
    np.random.seed(seed)  # noqa: NPY002 - RecSim draws from the global generator
    return steploop.time_steps(
        lambda slate: env.step(slate)[2], env.reset, slates, seconds, repeats, warmup_s
    )


def policy_returns(env_config: dict, policy: dict, episodes: int, seed: int) -> dict:
    """Mean watch time (RecSim's reward) of a fixed policy over seeded sessions."""
    import numpy as np

    c, k = int(env_config["num_candidates"]), int(env_config["slate_size"])
    env = make_env(env_config, seed)
    np.random.seed(seed)  # noqa: NPY002 - RecSim draws from the global generator
    rng = np.random.default_rng(seed)
    returns, lengths = [], []
    for _ in range(episodes):
        env.reset()
        total, steps, done = 0.0, 0, False
        while not done:
            if policy["kind"] == "quality_first":
                slate = quality_first(env, k)
            elif policy["kind"] == "random":
                slate = rng.permutation(c)[:k].tolist()
            else:
                raise ValueError(f"policy kind: unknown {policy['kind']!r}")
            _, reward, done, _ = env.step(slate)
            total += float(reward)
            steps += 1
        returns.append(total)
        lengths.append(steps)
    arr = np.asarray(returns)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return {
        "name": policy["name"],
        "episodes": episodes,
        "mean": float(arr.mean()),
        "std": std,
        "sem": std / len(arr) ** 0.5,
        "mean_session_length": float(np.mean(lengths)),
    }


def versions() -> dict:
    """Versions of the reference stack."""
    from importlib.metadata import version

    out: dict[str, Any] = {"python": platform.python_version()}
    for dist in ("recsim", "tensorflow", "gym", "numpy"):
        try:
            out[dist] = version(dist)
        except Exception:  # noqa: BLE001 - a missing distribution is reported, not fatal
            out[dist] = None
    return out


def main(argv: list[str]) -> int:
    """Run the worker with the JSON config in ``argv[1]`` and print the JSON result."""
    cfg = json.loads(argv[1]) if len(argv) > 1 else {}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.simplefilter("ignore")
    block_jax()
    seed = int(cfg.get("seed", 0))
    env_config = {**STANDARD, **cfg.get("env_config", {})}
    result = {
        "env_id": cfg.get("env_id", "interest_evolution"),
        "api": "RecSimGymEnv.step (gym 4-tuple), interest_evolution.create_environment",
        "params": params(make_env(env_config, seed), env_config),
        "versions": versions(),
        "steps_per_s": time_steps(
            env_config,
            float(cfg.get("seconds", 2.0)),
            int(cfg.get("repeats", 3)),
            float(cfg.get("warmup_s", 0.5)),
            seed,
        ),
        "policies": [
            policy_returns(env_config, p, int(cfg.get("episodes", 200)), seed + 1)
            for p in cfg.get("policies", [])
        ],
        "exact": [],
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
