"""Show or record episodes of a model or a baseline: `lepton-render [overrides]`.

Runnable as ``python -m scripts.render``; the work is done by :func:`agents.render.run`.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="pkg://conf", config_name="render", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from agents.render import run  # here, so --help and --cfg answer without loading torch

    run(cfg)


if __name__ == "__main__":
    main()
