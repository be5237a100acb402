"""Time OR-Gym's ``InvManagement-v0`` and report a fixed policy's returns (runs in OR-Gym's venv).

Run by ``scripts.bench`` as ``python orgym_worker.py '<json config>'`` with the interpreter of
``.bench/venvs/orgym`` (OR-Gym 0.5.0 needs the old ``gym`` and ``numpy<2``). It imports nothing
from Lepton Gym and prints one JSON object as the last line of stdout.

Config keys: ``env_id`` (``InvManagement-v0``), ``seconds`` (wall budget per timed run),
``repeats``, ``warmup_s``, ``seed``, ``episodes`` (per policy), ``policies``, a list of
``{"name": ..., "kind": "base_stock", "z": [...]}`` or ``{"kind": "constant", "q": [...]}``, and
``cases``, constructor arguments of deterministic episodes (e.g. ``{"dist": 5, "user_D": [...]}``)
on which every policy's return is reported exactly.

The timing steps the raw environment (``env.unwrapped``, the old 4-tuple API) with random valid
actions drawn beforehand from its ``Box`` action space and resets when an episode ends. Gym's
wrappers are skipped: they expect the new API, and without them the reference is at its fastest.

The base-stock rule is the one of OR-Gym's ``base_stock_action(z)``: order
``min(capacity, max(0, z - IP), supplier stock)``, where ``IP`` is the echelon inventory position
``cumsum(on hand + in transit - backlog)``. OR-Gym 0.5.0's own method cannot be called (its
``_update_base_stock_policy_state`` returns ``None``), so the worker applies the same formula to
the environment's ``I``, ``T`` and ``B`` arrays.
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

PARAMS = ("periods", "I0", "p", "r", "k", "h", "c", "L", "backlog", "dist", "dist_param", "alpha")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def make_env(env_id: str, kwargs: dict | None = None) -> Any:
    """Build the raw OR-Gym environment (no gym wrappers)."""
    import or_gym

    return or_gym.make(env_id, **(kwargs or {})).unwrapped


def time_steps(env: Any, seconds: float, repeats: int, warmup_s: float, seed: int) -> dict:
    """Steps per second of ``env.step`` with random valid actions; resets count as they occur.

    Rates are per wall-clock second (``best``, ``median``, ``runs``) and per second of this
    process's CPU time (``cpu_*``).
    """
    env.seed(seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(1024)]
    return steploop.time_steps(
        lambda action: env.step(action)[2], env.reset, actions, seconds, repeats, warmup_s
    )


def base_stock_orders(env: Any, z: Any) -> Any:
    """OR-Gym's base-stock order ``min(c, max(0, z - IP), supplier stock)`` for the period."""
    import numpy as np

    n = env.period
    position = env.I[n, :] + env.T[n, :]
    if n >= 1:
        position = position - env.B[n - 1, :-1]
    ip = np.cumsum(position)
    supplier_stock = np.append(env.I[n, 1:], np.inf)
    return np.minimum(
        np.minimum(env.supply_capacity, np.maximum(np.asarray(z) - ip, 0.0)), supplier_stock
    )


def episode_return(env: Any, policy: dict) -> float:
    """Return of one episode of ``env`` (reset first) under a fixed policy."""
    import numpy as np

    env.reset()
    total = 0.0
    done = False
    while not done:
        if policy["kind"] == "base_stock":
            action = base_stock_orders(env, policy["z"])
        elif policy["kind"] == "constant":
            action = np.asarray(policy["q"], dtype=float)
        else:
            raise ValueError(f"policy kind: unknown {policy['kind']!r}")
        _, reward, done, _ = env.step(action)
        total += float(reward)
    return total


def policy_returns(env: Any, policy: dict, episodes: int, seed: int) -> dict:
    """Mean, standard deviation and standard error of a fixed policy's episode return."""
    import numpy as np

    env.seed(seed)
    arr = np.asarray([episode_return(env, policy) for _ in range(episodes)])
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return {
        "name": policy["name"],
        "episodes": episodes,
        "mean": float(arr.mean()),
        "std": std,
        "sem": std / len(arr) ** 0.5,
    }


def versions() -> dict:
    """Versions of the reference stack."""
    from importlib.metadata import version

    out: dict[str, Any] = {"python": platform.python_version()}
    for dist in ("or-gym", "gym", "numpy", "scipy"):
        try:
            out[dist] = version(dist)
        except Exception:  # noqa: BLE001 - a missing distribution is reported, not fatal
            out[dist] = None
    return out


def main(argv: list[str]) -> int:
    """Run the worker with the JSON config in ``argv[1]`` and print the JSON result."""
    cfg = json.loads(argv[1]) if len(argv) > 1 else {}
    os.environ.setdefault("MPLBACKEND", "Agg")
    warnings.simplefilter("ignore")
    env_id = cfg.get("env_id", "InvManagement-v0")
    seed = int(cfg.get("seed", 0))
    env = make_env(env_id)
    result = {
        "env_id": env_id,
        "api": "gym 4-tuple step on env.unwrapped",
        "params": {name: _jsonable(getattr(env, name, None)) for name in PARAMS},
        "versions": versions(),
        "steps_per_s": time_steps(
            env,
            float(cfg.get("seconds", 2.0)),
            int(cfg.get("repeats", 3)),
            float(cfg.get("warmup_s", 0.5)),
            seed,
        ),
        "policies": [
            policy_returns(make_env(env_id), p, int(cfg.get("episodes", 200)), seed + 1)
            for p in cfg.get("policies", [])
        ],
        "exact": [
            {
                "name": p["name"],
                "returns": [episode_return(make_env(env_id, c), p) for c in cfg.get("cases", [])],
            }
            for p in cfg.get("policies", [])
        ],
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
