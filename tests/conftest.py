"""Shared test set-up: headless rendering and plotting, composed configurations."""

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True, scope="session")
def _sb3_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A model given no logger logs into this session's folder, not the temporary folder.

    SB3's default logger makes a new folder in the system's temporary folder at every
    ``learn``; the tests that train a bare SB3 model would leave thousands there.
    """
    patch = pytest.MonkeyPatch()
    patch.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3")))
    yield
    patch.undo()


# --- composed configurations (agents layer) --------------------------------------------------

TINY_BUDGETS = (
    "total_timesteps=256",
    "n_envs=4",
    "eval.episodes=8",
    "eval.curve_episodes=4",
    "eval.fit_episodes=4",
    "eval.eval_freq=128",
    "checkpoint_freq=128",
    "progress_bar=false",
)
"""Overrides that cut every budget of a root config down to a few seconds of work."""


def shrink_agent(cfg: DictConfig) -> DictConfig:
    """Cut the agent's own budgets (rollout, replay buffer) to fit a few-hundred-step run."""
    agent = cfg.agent
    if "n_steps" in agent:
        agent.n_steps = min(agent.n_steps, 32)
    if "n_epochs" in agent:
        agent.n_epochs = min(agent.n_epochs, 2)
    if "buffer_size" in agent:
        agent.buffer_size = 1000
        agent.learning_starts = min(agent.learning_starts, 128)
    if "batch_size" in agent:
        agent.batch_size = min(agent.batch_size, 64)
    return cfg


def compose_config(
    config_name: str, overrides: Sequence[str], run_dir: Path, tiny: bool = True
) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` in-process, writing to ``run_dir``.

    With ``tiny`` the run-level budgets (:data:`TINY_BUDGETS`, before ``overrides``) and the
    agent's own budgets (:func:`shrink_agent`) are cut down.
    """
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        extra = list(TINY_BUDGETS) if tiny else []
        cfg = compose(config_name, overrides=[*extra, f"run_dir={run_dir}", *overrides])
    return shrink_agent(cfg) if tiny else cfg


@pytest.fixture
def make_cfg(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """Factory composing a root config (``config``, ``evaluate``, ``render``) under ``tmp_path``.

    Call it as ``make_cfg("config", ["agent=a2c"])``; each call gets its own run folder.
    """
    count = 0

    def make(config_name: str = "config", overrides: Sequence[str] = (), tiny: bool = True):
        nonlocal count
        count += 1
        return compose_config(config_name, overrides, tmp_path / f"run{count}", tiny)

    yield make
    GlobalHydra.instance().clear()


@pytest.fixture
def cfg_train(make_cfg: Callable[..., DictConfig]) -> DictConfig:
    """The root training config (PPO on lepton/Inventory-v0) with tiny budgets."""
    return make_cfg("config")


@pytest.fixture(scope="session")
def composer() -> Callable[..., DictConfig]:
    """:func:`compose_config` for fixtures with a wider scope than ``tmp_path``."""
    return compose_config
