"""Transfer a source agent to a target env against scratch: `lepton-transfer [overrides]`.

Runnable as ``python -m scripts.transfer``; the work is done by :func:`agents.transfer.run`,
recorded by :func:`agents.jobs.run_job` (``status.json``; finished jobs of a sweep are skipped).
"""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="pkg://conf", config_name="transfer", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from agents.jobs import run_job  # here, so --help and --cfg answer without loading torch
    from agents.transfer import run

    run_job(cfg, run)


if __name__ == "__main__":
    main()
