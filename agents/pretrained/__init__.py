"""The model zoo: pretrained agents shipped inside this package, loadable by name.

Every entry ``<name>`` has a folder ``agents/pretrained/<name>/`` with the trained model
(``model.zip``, ``vecnormalize.pkl`` when the agent normalises), the resolved configuration of
its run (``config.yaml``), the command that made it (``command.txt``), its evaluation against
the family's baselines (``table.md``, ``metrics.json``, ``zoo.json``) and a preset
``conf/agent/pretrained/<name>.yaml``, so that::

    lepton-evaluate experiment=traffic_single_ppo agent=pretrained/traffic-single
    lepton-render env=traffic/single_intersection agent=pretrained/traffic-single

load the packaged model without ``model_path``. ``index.json`` lists every entry (env, spaces,
source scenario, score against the best baseline, command). ``lepton-zoo`` (``scripts/zoo.py``)
trains and writes them, and ``lepton-zoo --check`` re-evaluates them.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
from pathlib import Path
from typing import Any

from stable_baselines3.common.vec_env import VecEnv

from conf.schema import AgentConfig, PretrainedFields

log = logging.getLogger(__name__)

INDEX_FILE = "index.json"
"""The manifest of the zoo, in this folder."""

SUMMARY_FILE = "zoo.json"
"""Scores of one entry against the best baseline, in the entry's folder."""

PRESET_GROUP = "pretrained"
"""Folder of the pretrained presets in ``conf/agent`` (``agent=pretrained/<name>``)."""


class PretrainedMismatchError(ValueError):
    """A pretrained agent's model does not fit the configured environment's spaces."""


def zoo_dir() -> Path:
    """The folder of the zoo inside the installed ``agents`` package."""
    return Path(str(importlib.resources.files("agents").joinpath("pretrained")))


def package_path(relative: str) -> Path:
    """A path relative to the ``agents`` package (``pretrained/<name>/model.zip``)."""
    return Path(str(importlib.resources.files("agents").joinpath(relative)))


def is_pretrained(agent: AgentConfig) -> bool:
    """Whether ``agent`` is a pretrained agent of the zoo (``agent=pretrained/<name>``)."""
    return isinstance(agent, PretrainedFields)


def resolve_model_path(agent: AgentConfig, model_path: str | None) -> str | None:
    """``model_path``, or the packaged model of a pretrained agent when it is ``None``.

    Raises:
        FileNotFoundError: naming the agent and the zoo command when its model is missing.
    """
    if model_path is not None or not isinstance(agent, PretrainedFields):
        return model_path
    path = package_path(agent.model)
    if not path.is_file():
        raise FileNotFoundError(
            f"agent={getattr(agent, 'name', agent.pretrained)}: the pretrained model {str(path)!r} "
            f"is missing; regenerate it with `lepton-zoo only=[{agent.pretrained}]`"
        )
    return str(path)


def check_fits(agent: AgentConfig, venv: VecEnv, env_id: str) -> None:
    """Raise naming the pretrained ``agent`` and both shapes when ``venv`` does not fit its model.

    Does nothing for other agents (their model is checked by SB3 when loaded). Logs a warning
    when the spaces fit but the env is not the agent's source scenario.

    Raises:
        PretrainedMismatchError: when the observation shape or the action space differ.
    """
    if not isinstance(agent, PretrainedFields):
        return
    name = getattr(agent, "name", agent.pretrained)
    obs_shape = tuple(int(n) for n in agent.observation_shape)
    env_shape = tuple(venv.observation_space.shape or ())
    if obs_shape != env_shape or agent.action_space != str(venv.action_space):
        source = " ".join(agent.source)
        raise PretrainedMismatchError(
            f"agent={name}: the pretrained agent {agent.pretrained!r} takes observations of "
            f"shape {obs_shape} and acts in {agent.action_space} (trained on {agent.env_id}), "
            f"but the configured env {env_id} gives observations of shape {env_shape} and acts "
            f"in {venv.action_space}; use its source scenario: `{source} agent={name}`"
        )
    if env_id != agent.env_id:
        log.warning(
            "agent=%s was trained on %s and acts on %s (the spaces fit)", name, agent.env_id, env_id
        )


def read_index(folder: Path | None = None) -> dict[str, Any]:
    """The manifest ``index.json`` of the zoo (``{"entries": {name: {...}}}``)."""
    path = (folder or zoo_dir()) / INDEX_FILE
    if not path.is_file():
        return {"entries": {}}
    data: dict[str, Any] = json.loads(path.read_text())
    return data
