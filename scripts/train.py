"""Train an agent and compare it with the baselines: `lepton-train [overrides]`.

Runnable as ``python -m scripts.train``; the work is done by :func:`agents.train.run`.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="pkg://conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from agents.train import run  # here, so --help and --cfg answer without loading torch

    run(cfg)


if __name__ == "__main__":
    main()
