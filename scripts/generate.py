"""Fit a scenario generator, sample one or search it: `lepton-generate fit|sample|adversarial`.

Runnable as ``python -m scripts.generate``; the work is done by :func:`agents.generate.run`.
The first word ``fit``, ``sample`` or ``adversarial`` stands for the override ``command=<word>``.
"""

import shutil
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

COMMANDS = ("fit", "sample", "adversarial")
_VALUE_FLAGS = frozenset(
    {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-c", "--cfg"}
    | {"-p", "--package", "--experimental-rerun", "-i", "--info"}
)


def command_word(argv: list[str]) -> list[str]:
    """``argv`` with a bare ``fit``, ``sample`` or ``adversarial`` turned into ``command=<word>``.

    Raises:
        ValueError: for any other bare word (not an option, its value or a ``key=value``).
    """
    out = list(argv)
    found = False
    for i, arg in enumerate(out):
        if arg.startswith("-") or "=" in arg or (i > 0 and out[i - 1] in _VALUE_FLAGS):
            continue
        if arg in COMMANDS and not found:
            out[i] = f"command={arg}"
            found = True
            continue
        raise ValueError(
            f"lepton-generate: unknown command {arg!r}; allowed: {', '.join(COMMANDS)} "
            "(then key=value overrides)"
        )
    return out


def _drop_if_unused(folder: Path) -> None:
    """Remove ``folder`` if the failed command left nothing in it but Hydra's own records."""
    if not folder.is_dir() or any(
        p.name != ".hydra" and p.suffix != ".log" for p in folder.iterdir()
    ):
        return
    shutil.rmtree(folder)


@hydra.main(config_path="pkg://conf", config_name="generate", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from agents.generate import run  # here, so --help and --cfg answer without loading torch

    try:
        run(cfg)
    except Exception:
        # Hydra made the output folder before the settings were checked
        _drop_if_unused(Path(HydraConfig.get().runtime.output_dir))
        raise


def main() -> None:
    try:
        sys.argv[1:] = command_word(sys.argv[1:])
    except ValueError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    _main()


if __name__ == "__main__":
    main()
