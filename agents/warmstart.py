"""Start a fresh model from a saved one: its policy weights and normalisation statistics.

``lepton-train`` and ``lepton-tune`` with ``init_model=<run folder>``, and ``lepton-transfer``'s
transfer arms, build the model
from their own agent preset (hyperparameters, optimiser, schedule) and then copy in the saved
policy's weights; the training env's running statistics start from the saved ones.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from agents.algorithms import MODEL_FILE
from agents.envs import VECNORMALIZE_FILE
from agents.runs import saved_config
from conf.schema import SB3AgentConfig

log = logging.getLogger(__name__)


def load_source_weights(model: BaseAlgorithm, folder: Path, device: str = "cpu") -> None:
    """Copy the policy weights saved in ``folder/model.zip`` into ``model``.

    Raises:
        ValueError: naming ``agent.policy_kwargs.net_arch`` when the networks differ.
    """
    state = source_state(folder, device)
    check_weights_fit(state, model, str(folder / MODEL_FILE))
    model.policy.load_state_dict(state)


def source_state(folder: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The policy weights saved in ``folder/model.zip``."""
    _, params, _ = load_from_zip_file(folder / MODEL_FILE, load_data=False, device=device)
    return dict(params["policy"])


def check_weights_fit(state: Mapping[str, torch.Tensor], model: BaseAlgorithm, source: str) -> None:
    """Raise unless the policy weights ``state`` fit ``model``'s policy (names and shapes).

    Args:
        state: the source's policy weights.
        model: the model that would start from them.
        source: where the weights come from, for the message.

    Raises:
        ValueError: naming ``agent.policy_kwargs.net_arch`` when the networks differ.
    """
    own = model.policy.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    if missing or extra or shapes:
        details = "; ".join(
            [
                *shapes[:3],
                *(f"missing {k}" for k in missing[:3]),
                *(f"extra {k}" for k in extra[:3]),
            ]
        )
        raise ValueError(
            f"agent.policy_kwargs.net_arch: the source network ({source}) does not "
            f"fit the agent's network ({details}); use the source's agent preset or its "
            "net_arch, activation and algorithm"
        )


def load_source_stats(folder: Path, field: str = "source") -> VecNormalize | None:
    """The normalisation statistics saved next to the source model (``None`` if none).

    Raises:
        ValueError: naming ``field`` when the file holds something else.
    """
    path = folder / VECNORMALIZE_FILE
    if not path.is_file():
        return None
    with path.open("rb") as fh:
        stats = pickle.load(fh)
    if not isinstance(stats, VecNormalize):
        raise ValueError(f"{field}: {path} holds no VecNormalize statistics")
    return stats


def check_normalization(agent: SB3AgentConfig, stats: VecNormalize | None, folder: Path) -> None:
    """The source's statistics and the agent's normalisation must agree.

    Raises:
        ValueError: naming ``agent.normalize.obs`` when the source normalised observations and
            the agent does not.
    """
    normalizes = agent.normalize is not None and agent.normalize.obs
    if stats is not None and stats.norm_obs and not normalizes:
        raise ValueError(
            f"agent.normalize.obs: the source ({folder}) was trained on normalised "
            "observations; set agent.normalize.obs=true (training starts from its statistics)"
        )
    if stats is None and normalizes:
        log.warning(
            "the source (%s) has no %s: observations are normalised with fresh statistics the "
            "source never saw",
            folder,
            VECNORMALIZE_FILE,
        )


def start_from_stats(venv: VecEnv, stats: VecNormalize | None) -> None:
    """Start ``venv``'s running statistics (a training ``VecNormalize``) from ``stats``."""
    if stats is not None and isinstance(venv, VecNormalize) and venv.norm_obs:
        venv.obs_rms = stats.obs_rms.copy()
        venv.ret_rms = stats.ret_rms.copy()


def source_folder(path: str, field: str) -> Path:
    """The run folder of ``path``: a folder holding ``model.zip``, or that ``model.zip`` itself.

    Raises:
        FileNotFoundError: naming ``field`` when there is no saved model there.
    """
    given = Path(path)
    folder = given.parent if given.name == MODEL_FILE else given
    if not (folder / MODEL_FILE).is_file():
        raise FileNotFoundError(
            f"{field}: no saved model at {path!r}; give a run folder holding {MODEL_FILE} (or "
            f"that {MODEL_FILE})"
        )
    return folder


def check_source_fits(folder: Path, venv: VecEnv, agent: SB3AgentConfig) -> None:
    """The saved policy must act on ``venv``'s spaces and be of ``agent``'s algorithm.

    Checked before the weights, so that a source trained on another env is reported as that,
    not as a network mismatch.

    Raises:
        ValueError: naming ``init_model`` (spaces, as ``lepton-transfer`` reports them) or the
            algorithm.
    """
    from agents.transfer import check_spaces  # it imports this module

    data, _, _ = load_from_zip_file(folder / MODEL_FILE, load_data=True, device="cpu")
    assert data is not None
    run_cfg = saved_config(folder) or {}
    check_spaces(
        data["observation_space"],
        data["action_space"],
        venv.observation_space,
        venv.action_space,
        target_env={"id": "this run's env"},
        source_env=run_cfg.get("env"),
        field="init_model",
    )
    algo = (run_cfg.get("agent") or {}).get("algo")
    if algo is not None and algo != agent.algo:
        raise ValueError(
            f"init_model: {folder} was trained with agent.algo={algo!r} but this run's agent is "
            f"{agent.algo!r}; pass agent={algo} (or the source's agent preset)"
        )


def start_from(
    model: BaseAlgorithm, venv: VecEnv, agent: SB3AgentConfig, init_model: str, device: str
) -> None:
    """Start ``model`` and its training env ``venv`` from the saved run ``init_model``.

    Raises:
        FileNotFoundError: naming ``init_model`` when it holds no saved model.
        ValueError: naming the agent field that does not fit the saved policy.
    """
    folder = source_folder(init_model, "init_model")
    check_source_fits(folder, venv, agent)
    stats = load_source_stats(folder, "init_model")
    check_normalization(agent, stats, folder)
    start_from_stats(venv, stats)
    load_source_weights(model, folder, device)
    log.info("starting from the policy of %s", folder)
