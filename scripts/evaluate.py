"""Evaluate a saved model or a baseline: `lepton-evaluate [overrides]`.

Runnable as ``python -m scripts.evaluate``; the work is done by :func:`agents.evaluate.run`.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="pkg://conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from agents.evaluate import run  # here, so --help and --cfg answer without loading torch

    run(cfg)


if __name__ == "__main__":
    main()
