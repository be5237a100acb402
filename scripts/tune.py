"""Tune an agent's hyperparameters with Optuna: `lepton-tune [overrides]`.

Runnable as ``python -m scripts.tune``; the work is done by :func:`agents.tune.run`. Workers
started with the same ``tune.storage`` and ``tune.name`` share one study, and ``tune.n_trials``
counts the trials of all of them together (complete, pruned and running ones).
"""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="pkg://conf", config_name="tune", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from agents.tune import run  # here, so --help and --cfg answer without loading torch

    run(cfg)


if __name__ == "__main__":
    main()
