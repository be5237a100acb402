"""Fit a scenario generator, sample one or search it: `lepton-generate fit|sample|adversarial`.

Runnable as ``python -m scripts.generate``; the work is done by :func:`agents.generate.run`.
The first word ``fit``, ``sample`` or ``adversarial`` stands for the override ``command=<word>``.
"""

import sys

import hydra
from omegaconf import DictConfig

COMMANDS = ("fit", "sample", "adversarial")
_VALUE_FLAGS = frozenset(
    {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-c", "--cfg"}
    | {"-p", "--package", "--experimental-rerun"}
)


def command_word(argv: list[str]) -> list[str]:
    """``argv`` with a bare ``fit``, ``sample`` or ``adversarial`` turned into ``command=<word>``."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg in COMMANDS and (i == 0 or out[i - 1] not in _VALUE_FLAGS):
            out[i] = f"command={arg}"
            break
    return out


@hydra.main(config_path="pkg://conf", config_name="generate", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from agents.generate import run  # here, so --help and --cfg answer without loading torch

    run(cfg)


def main() -> None:
    sys.argv[1:] = command_word(sys.argv[1:])
    _main()


if __name__ == "__main__":
    main()
