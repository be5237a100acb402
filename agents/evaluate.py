"""Evaluate a saved model or a baseline on seeded evaluation episodes.

``run(cfg)`` evaluates ``model_path`` (an SB3 agent, with the normalisation statistics saved
next to it) or the baseline ``agent=<name>`` for ``episodes`` episodes on the evaluation seeds
and writes ``metrics.json``, ``eval.csv`` and ``table.md`` into its run folder.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv

from agents.algorithms import as_sb3_agent, load_model
from agents.config import Seeds, as_config, make_seeds, plain, refuse_init_model
from agents.envs import load_normalization, make_eval_env, normalization_path
from agents.evaluation import run_episodes
from agents.policies import Policy, make_baseline
from agents.pretrained import check_fits, resolve_model_path
from agents.report import (
    Metrics,
    markdown_table,
    metrics_of,
    print_table,
    write_episodes,
    write_metrics,
)
from agents.runs import run_folder, save_command, save_config
from conf.schema import EvaluateConfig, SB3AgentConfig

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> Metrics:
    """Evaluate the configured policy and write ``metrics.json`` and ``eval.csv``.

    Args:
        cfg: a configuration composed from ``conf/evaluate.yaml``.

    Returns:
        ``{agent name: {metric: {"mean", "std", "n"}}}``.
    """
    config = as_config(cfg, EvaluateConfig)
    refuse_init_model(config, "lepton-evaluate")
    seeds = make_seeds(config.seed, config.n_envs, config.eval, config.episodes)

    set_random_seed(config.seed)
    torch.set_num_threads(config.torch_threads)

    # a model trained with parameter sharing acts in the shared env, a baseline in the plain one
    venv = make_eval_env(
        config.env,
        dataclasses.replace(config.eval, episodes=seeds.episodes),
        min(seeds.episodes, config.eval.batch_size),
        seeds.eval_start,
        allow_sharing=isinstance(config.agent, SB3AgentConfig),
    )
    policy, venv = load_policy(config, venv, seeds)
    folder = run_folder(cfg)
    save_config(folder, cfg)
    save_command(folder)
    results = {
        config.agent.name: run_episodes(
            policy,
            venv,
            seeds.eval_start,
            seeds.episodes,
            metrics=config.env.metrics,
            deterministic=config.eval.deterministic,
        )
    }
    venv.close()

    metrics = metrics_of(results)
    columns = ["return", *config.env.metrics]
    write_metrics(folder / "metrics.json", metrics)
    write_episodes(folder / "eval.csv", results)
    (folder / "table.md").write_text(markdown_table(metrics, columns))
    print_table(
        metrics,
        columns,
        f"{config.env.id}: {seeds.episodes} evaluation episodes (seeds {seeds.eval_start}..)",
    )
    log.info("run folder: %s", folder)
    return metrics


def load_policy(config: EvaluateConfig, venv: VecEnv, seeds: Seeds) -> tuple[Policy, VecEnv]:
    """The policy to evaluate on ``venv``, and ``venv`` (normalised for a model that needs it).

    A baseline agent is built on ``venv`` and fitted on the training seeds; an SB3 agent is
    loaded from ``model_path`` (a pretrained agent, ``agent=pretrained/<name>``, from its
    packaged model when ``model_path`` is ``null``), with ``vecnormalize.pkl`` from the same
    folder when present.

    Raises:
        ValueError: naming ``model_path`` when it is missing for an SB3 agent or given for a
            baseline, or when the run that wrote it used another algorithm.
    """
    if not isinstance(config.agent, SB3AgentConfig):
        if config.model_path is not None:
            raise ValueError(
                f"model_path: a saved model needs an SB3 agent (agent=ppo, a2c, ...), but "
                f"agent={config.agent.name} is a baseline; drop model_path or pick the "
                "model's algorithm"
            )
        baseline = make_baseline(
            config.agent.name, venv, seed=config.seed, fit_seeds=seeds.fit, field="agent"
        )
        log.info("baseline %s: %s", config.agent.name, baseline.params())
        return baseline, venv
    agent = as_sb3_agent(config.agent, "evaluating a model")
    model_path = resolve_model_path(agent, config.model_path)  # a pretrained agent's own
    if model_path is None:
        raise ValueError(
            f"model_path: agent={agent.name} needs model_path=<run folder>/model.zip (written by "
            "lepton-train); or evaluate a baseline, e.g. agent=base_stock, or a pretrained "
            "agent, e.g. agent=pretrained/traffic-single"
        )
    check_fits(agent, venv, config.env.id)
    _check_run_config(Path(model_path), config)
    stats = normalization_path(model_path)
    if stats.is_file():
        venv = load_normalization(stats, venv)
    model = load_model(agent, model_path, venv, device=config.device)
    return model, venv


def _check_run_config(model_path: Path, config: EvaluateConfig) -> None:
    """Compare with the run that saved the model: another algorithm fails, another env warns."""
    saved = model_path.with_name("config.yaml")
    if not saved.is_file():
        return
    agent = as_sb3_agent(config.agent, "evaluating a model")
    run_cfg: Any = OmegaConf.load(saved)
    algo = OmegaConf.select(run_cfg, "agent.algo")
    if algo is not None and algo != agent.algo:
        raise ValueError(
            f"model_path: {str(model_path)!r} was trained with agent.algo={algo!r} "
            f"(see {saved}); pass agent={algo}"
        )
    trained_on = {key: OmegaConf.select(run_cfg, f"env.{key}") for key in ("id", "kwargs")}
    evaluating = {key: plain(config.env).get(key) for key in ("id", "kwargs")}
    if trained_on["kwargs"] is not None:
        trained_on["kwargs"] = OmegaConf.to_container(trained_on["kwargs"], resolve=True)
    if trained_on != evaluating:
        log.warning(
            "the model was trained on env %s (see %s) and is evaluated on %s",
            trained_on,
            saved,
            evaluating,
        )
