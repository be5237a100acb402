"""Train an agent and compare it with the baselines: `lepton-train [overrides]`.

Runnable as ``python -m scripts.train``; the work is done by :func:`agents.train.run`, recorded
by :func:`agents.jobs.run_job` (``status.json``; finished jobs of a sweep are skipped).
"""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="pkg://conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from agents.jobs import run_job  # here, so --help and --cfg answer without loading torch
    from agents.train import run

    run_job(cfg, run)


if __name__ == "__main__":
    main()
