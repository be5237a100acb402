"""Score an agent's regret on the real users most like the ones an adversarial search found.

    python docs/results/adversarial_recsys/segment.py GAN SEARCH MODEL_DIR [K]

GAN: the ``lepton-generate fit family=recsys`` folder; SEARCH: a ``lepton-generate adversarial``
folder searched on it; MODEL_DIR: the agent's run folder. Takes the ``K`` real users (training
and held-out, default 16) nearest to the mean of the found users' interests (Euclidean) and
``K`` real users drawn at random, and scores the regret (interest_match's return minus the
agent's) of each on the search's evaluation seeds, with the search's episodes per user. Prints
and writes ``SEARCH/segment.json``: per group, the users, their regrets, the mean and a 95 %
bootstrap interval.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from agents.algorithms import algorithm_class
from agents.envs import env_scenario, load_normalization
from agents.generate import load_generator, resolve_agent
from agents.generators.adversarial import regret
from agents.policies import make_baseline
from agents.stats import mean, stratified_bootstrap
from envs.core.sb3 import make_sb3_vec_env


def main() -> None:
    """Score both groups and write segment.json (arguments: see the module docstring)."""
    gan, search_dir, model_dir = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    k = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    torch.set_num_threads(1)
    report = json.loads((search_dir / "adversarial.json").read_text())
    settings, seed = report["settings"], int(report["seed"])
    agent = resolve_agent(model_dir)
    env_id, kwargs = report["env"]["id"], dict(report["env"]["kwargs"])
    loaded = load_generator(gan, base=env_scenario(env_id, kwargs, field="model"))
    train, held = loaded.real_features()
    real = np.concatenate([train, held])
    found = np.array([s["scenario"]["interests"] for s in report["scenarios"]])
    distance = np.linalg.norm(real - found.mean(axis=0), axis=1)
    groups = {
        "nearest_to_found": np.argsort(distance, kind="stable")[:k],
        "random": np.random.default_rng(seed).choice(len(real), size=k, replace=False),
    }

    venv = make_sb3_vec_env(env_id, min(settings["batch_size"], k * settings["episodes"]), **kwargs)
    agent_venv = venv
    if agent.normalization is not None:
        agent_venv = load_normalization(agent.normalization, venv)
    model = algorithm_class(agent.algo).load(str(agent.model_path), env=agent_venv)
    baseline = make_baseline(
        report["baseline"]["name"],
        venv,
        seed=seed,
        fit_seeds=range(seed, seed + settings["fit_episodes"]),
    )
    out: dict = {
        "generator": gan,
        "search": str(search_dir),
        "model": model_dir,
        "baseline": report["baseline"]["name"],
        "episodes_per_user": settings["episodes"],
        "real_users": int(len(real)),
        "found_mean_interests": found.mean(axis=0).round(4).tolist(),
    }
    for name, rows in groups.items():
        scenarios = [loaded.codec.decode(real[i]) for i in rows]
        assert all(sc is not None for sc in scenarios)
        # the search's evaluation seeds (lepton-generate adversarial: seed + 2,000,000)
        values = regret(
            model,
            baseline,
            venv,
            scenarios,
            episodes=settings["episodes"],
            seed=seed + 2_000_000,
            agent_venv=agent_venv,
        )
        out[name] = {
            "users": rows.tolist(),
            "mean_distance": float(distance[rows].mean()),
            "regret": values.round(4).tolist(),
            "mean": float(values.mean()),
            "ci95": list(stratified_bootstrap([values], mean, reps=10_000)[1:]),
        }
        print(f"{name}: mean regret {values.mean():+.2f} {out[name]['ci95']}")
    (search_dir / "segment.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
