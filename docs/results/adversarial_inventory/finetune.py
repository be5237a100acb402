"""Fine-tune a trained inventory agent against adversarial scenarios, then rescore its regret.

    python docs/results/adversarial_inventory/finetune.py GAN SEARCH OUT STEPS MODEL_DIR [SEED]

GAN: a ``lepton-generate fit`` folder; SEARCH: a ``lepton-generate adversarial`` folder (its
found scenarios are rescored); OUT: where the fine-tuned model goes; MODEL_DIR: the agent's
run folder (model.zip, vecnormalize.pkl, config.yaml); SEED seeds the fine-tuning (default: the
saved model's own seed). ``REPLAY=0`` gives the control (the same
generator, no replay of high-regret scenarios). Writes ``OUT/rescore.json``: the curriculum's
history and the mean regret (base_stock return - agent return) on the found scenarios, 32
ordinary generated ones and 32 held-out real ones, before and after.
"""

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from stable_baselines3 import PPO
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecNormalize

from agents.config import as_config
from agents.envs import load_normalization, make_training_env, make_vec_env
from agents.generate import load_generator
from agents.generators.adversarial import make_curriculum, regret
from agents.policies import make_baseline
from conf.schema import TrainConfig


def main() -> None:
    """Fine-tune, rescore and write rescore.json (arguments: see the module docstring)."""
    gan, search_dir, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    steps, model_dir = int(sys.argv[4]), Path(sys.argv[5])
    seed = int(sys.argv[6]) if len(sys.argv) > 6 else None
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    overrides = [
        f"run_dir={out}",
        "env=inventory",
        f"env.scenarios=adversarial:{gan}",
        "adversarial.population=32",
        "adversarial.iterations=3",
        "adversarial.refresh_freq=8192",
        f"adversarial.replay_prob={os.environ.get('REPLAY', '0.5')}",
    ]
    with initialize_config_module(config_module="conf", version_base="1.3"):
        config = as_config(compose("config", overrides=overrides), TrainConfig)

    # fine-tune from the agent's weights and normalisation statistics
    venv = make_training_env(config.env, 16, 0, config.agent.normalize, config.agent.gamma)
    saved = VecNormalize.load(str(model_dir / "vecnormalize.pkl"), venv.venv)
    venv.obs_rms, venv.ret_rms = saved.obs_rms, saved.ret_rms
    model = PPO.load(str(model_dir / "model.zip"), env=venv)
    if seed is not None:
        set_random_seed(seed)
        model.set_random_seed(seed)
        venv.seed(seed)
    curriculum = make_curriculum(config, venv)
    model.learn(steps, callback=[curriculum] if curriculum else [], reset_num_timesteps=True)
    model.save(out / "model.zip")
    venv.save(str(out / "vecnormalize.pkl"))
    shutil.copy(model_dir / "config.yaml", out / "config.yaml")

    # rescore before and after on the same scenarios and seeds
    report = json.loads((search_dir / "adversarial.json").read_text())
    loaded = load_generator(gan)
    codec = loaded.codec
    found = [codec.decode(np.asarray(s["scenario"]["demand_series"])) for s in report["scenarios"]]
    ordinary = loaded.generator.sample(32, np.random.default_rng(123))
    _, held = loaded.real_features()
    real = [codec.decode(x) for x in held[:32]]
    plain = make_vec_env(dataclasses.replace(config.env, scenarios=None), 64, allow_sharing=False)
    base = make_baseline("base_stock", plain, seed=0, fit_seeds=range(16), field="baseline")
    result = {}
    for name, folder in (("before", model_dir), ("after", out)):
        agent_env = load_normalization(folder / "vecnormalize.pkl", plain)
        agent = PPO.load(str(folder / "model.zip"), env=agent_env)
        result[name] = {
            group: float(
                regret(agent, base, plain, sc, seed=1_000_000, agent_venv=agent_env).mean()
            )
            for group, sc in (("found", found), ("ordinary", ordinary), ("real", real))
        }
    history = curriculum.history if curriculum else []
    print(json.dumps(result, indent=1))
    (out / "rescore.json").write_text(
        json.dumps({"curriculum": history, "mean_regret": result}, indent=1)
    )


if __name__ == "__main__":
    main()
