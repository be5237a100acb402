"""Train an SB3 agent on a Lepton env and compare it with the env family's baselines.

``run(cfg)`` reads top to bottom: configuration and seeds, one seeding block, environments,
model and callbacks, training, evaluation of the model and of every baseline on the same
evaluation seeds, and the run folder::

    <run_dir>/config.yaml        resolved configuration
    <run_dir>/command.txt        working directory and exact command line
    <run_dir>/model.zip          the trained model
    <run_dir>/vecnormalize.pkl   normalisation statistics (agents with ``normalize``)
    <run_dir>/metrics.json       policy -> metric -> mean, std, n
    <run_dir>/eval.csv           one row per policy and evaluation episode
    <run_dir>/table.md           the comparison table
    <run_dir>/baselines.json     fitted parameters of every baseline, and whether it is an
                                 oracle (reads state the agent does not observe)
    <run_dir>/curve.csv          learning curve (evaluation return vs environment steps)
    <run_dir>/curve.png          the curve with the baselines as horizontal lines
    <run_dir>/progress.csv       SB3's training log
    <run_dir>/progress_until_<n>.csv  a resumed run's log up to the checkpoint it resumed from
    <run_dir>/tb/                TensorBoard logs (charts from SB3, eval/ from the curve)
    <run_dir>/checkpoints/       periodic checkpoints: model, normalisation statistics, replay
                                 buffer, learning curve, adversarial curriculum state (see
                                 :mod:`agents.checkpoints`)

With ``env.scenarios=adversarial:<folder>`` training alternates with adversarial scenario search
(:class:`~agents.generators.adversarial.AdversarialCurriculum`, settings ``adversarial``): every
``adversarial.refresh_freq`` steps the buffer of high-regret scenarios the training env replays
is rescored and refilled against the current model. Each checkpoint keeps the curriculum's state
(``checkpoints/model_adversarial_state_<n>_steps.pkl``: the buffered scenarios and their regrets,
the source's counters, the searches so far), so a resumed run replays the buffer the run had at
the checkpoint and searches next at the same steps with the same seeds; a checkpoint without it
(written before it was saved) resumes with an empty buffer, refilled by a search at once.

With ``eval.scenarios`` set (e.g. ``heldout:<folder>``, the held-out real scenarios of a
generator folder) the learning curve, the final evaluation of the agent and of every baseline
run on those scenarios instead of the training env's; baselines are still fitted on the training
env's scenarios (:func:`agents.envs.make_eval_env`).

With ``resume=true`` a run continues from the latest checkpoint in its folder (after a crash or
``kill -9``) and trains up to ``total_timesteps``; without a checkpoint it starts afresh. Only the
run's own configuration may continue it: a configuration that differs from the folder's
``config.yaml`` in anything but runtime switches and ``total_timesteps`` (another env, algorithm,
seed or hyperparameter), or a ``total_timesteps`` below the checkpoint's steps, is refused
before anything is written (:func:`agents.runs.check_resume`). The logs go on without the steps
lost with the kill: ``progress_until_<n>.csv`` holds SB3's log up to the checkpoint at step
``n`` (earlier resumes included) and ``progress.csv`` the rest, and TensorBoard hides what the
killed attempt logged after step ``n``. The training replicas restart from fresh episodes on a
new seed (:func:`~agents.checkpoints.continuation_seed`), so a resumed run is reproducible but
does not repeat the uninterrupted run step for step (nor, after its first update, the searches
of an adversarial curriculum, which score the model it trains). A run started afresh in a folder
replaces an earlier run's checkpoints, TensorBoard logs and logs of earlier resumes.

With ``init_model=<run folder>`` the model starts from that run's policy weights and its
normalisation statistics (:mod:`agents.warmstart`), e.g. to train a finished run further or on
another configuration of the same env; the agent preset's own hyperparameters apply.
"""

from __future__ import annotations

import importlib.util
import logging

import torch
from omegaconf import DictConfig
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecNormalize

from agents.algorithms import as_sb3_agent, build_model, check_device
from agents.callbacks import LearningCurveCallback
from agents.checkpoints import (
    Checkpoint,
    ResumableCheckpoint,
    Stateful,
    clear_checkpoints,
    continuation_seed,
    latest_checkpoint,
    restore_model,
    restore_state,
)
from agents.config import as_config, check_curve_episodes, env_kwargs, make_seeds
from agents.envs import (
    VECNORMALIZE_FILE,
    evaluation_env,
    make_eval_env,
    make_training_env,
    resolve_env_id,
)
from agents.evaluation import Episodes, run_episodes
from agents.generators.adversarial import make_curriculum
from agents.logs import training_logger
from agents.policies import baseline_names, make_baseline
from agents.report import (
    Metrics,
    markdown_table,
    metrics_of,
    plot_curve,
    print_table,
    write_episodes,
    write_json,
    write_metrics,
)
from agents.runs import check_resume, job_folder, run_folder, save_command, save_config
from agents.warmstart import start_from
from conf.schema import TrainConfig

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> Metrics:
    """Train, evaluate against the baselines and write the run folder.

    Args:
        cfg: a configuration composed from ``conf/config.yaml``.

    Returns:
        ``{policy: {metric: {"mean", "std", "n"}}}`` over the evaluation episodes, for the
        agent and every configured baseline.
    """
    # --- configuration and seeds -------------------------------------------------------------
    config = as_config(cfg, TrainConfig)
    agent = as_sb3_agent(config.agent, "training")
    env_id = resolve_env_id(config.env)
    kwargs = env_kwargs(config.env)
    seeds = make_seeds(config.seed, config.n_envs, config.eval)
    curve_episodes = check_curve_episodes(config.eval)
    check_device(config.device)

    checkpoint = latest_checkpoint(job_folder(cfg)) if config.resume else None
    # only the run's own configuration may continue its checkpoint. agents.jobs.plan_job checks
    # this too, before run_job writes the job's record; this check is for callers of run()
    # alone (lepton-zoo) and is the one that refuses checkpoints without a config.yaml
    if checkpoint is not None:
        check_resume(job_folder(cfg), cfg)
    if config.resume and checkpoint is None:
        log.info("resume: no checkpoint in %s; training from the start", job_folder(cfg))

    # --- seeding: the only place global generators are set -------------------------------
    # a resumed run continues with a new stream derived from the seed and the step count
    train_seed = config.seed
    if checkpoint is not None:
        train_seed = continuation_seed(config.seed, checkpoint.num_timesteps)
    set_random_seed(train_seed)  # python, numpy and torch
    torch.set_num_threads(config.torch_threads)

    # --- environments -----------------------------------------------------------------------
    venv = make_training_env(config.env, config.n_envs, train_seed, agent.normalize, agent.gamma)
    baselines = baseline_names(venv, config.baselines)
    curve_env = evaluation_env(config.env, config.eval, curve_episodes, venv, seeds.eval_start)

    # --- model and callbacks ----------------------------------------------------------------
    if checkpoint is None:
        model = build_model(
            agent,
            venv,
            env_id=env_id,
            env_kwargs=kwargs,
            seed=config.seed,
            device=config.device,
            verbose=config.verbose,
        )
        if config.init_model is not None:
            start_from(model, venv, agent, config.init_model, config.device)
    else:
        model = restore_model(checkpoint, agent.algo, venv, config.device, train_seed)
        log.info("resuming from %s (%d steps)", checkpoint.model, checkpoint.num_timesteps)
    folder = run_folder(cfg)  # written once everything is known to fit together
    if checkpoint is None:
        clear_checkpoints(folder)  # of an earlier run in this folder
    save_config(folder, cfg)
    save_command(folder)
    model.set_logger(
        training_logger(
            folder,
            tensorboard=config.tensorboard,
            verbose=config.verbose,
            resumed_at=checkpoint.num_timesteps if checkpoint is not None else None,
        )
    )
    curve = LearningCurveCallback(
        curve_env,
        seeds.eval_start,
        curve_episodes,
        config.eval.eval_freq,
        metrics=config.env.metrics,
        deterministic=config.eval.deterministic,
        csv_path=folder / "curve.csv",
        points=checkpoint.curve if checkpoint is not None else (),
    )
    callbacks: list[BaseCallback] = [curve]
    state: dict[str, Stateful] = {}  # training state beyond the model, kept with checkpoints
    curriculum = make_curriculum(config, venv)  # env.scenarios=adversarial:<folder>
    if curriculum is not None:
        callbacks.append(curriculum)
        state[CURRICULUM_STATE] = curriculum
    if checkpoint is not None:
        _restore_state(checkpoint, state)
    if config.checkpoint_freq > 0:
        callbacks.append(
            ResumableCheckpoint(
                folder, config.checkpoint_freq, curve_points=lambda: curve.points, state=state
            )
        )

    # --- training ---------------------------------------------------------------------------
    done = model.num_timesteps
    log.info(
        "training %s on %s for %d steps%s -> %s",
        agent.name,
        env_id,
        config.total_timesteps,
        f" (resumed at {done})" if checkpoint is not None else "",
        folder,
    )
    if checkpoint is None:  # before learn's first reset updates normalisation statistics
        curve.evaluate_before_training(model)
    try:
        model.learn(
            total_timesteps=max(config.total_timesteps - done, 0),
            callback=callbacks,
            progress_bar=config.progress_bar and _progress_bar_available(),
            reset_num_timesteps=checkpoint is None,
        )
    finally:
        model.logger.close()  # its files and TensorBoard's writer thread
    model.save(folder / "model.zip")
    if isinstance(venv, VecNormalize):
        venv.save(str(folder / VECNORMALIZE_FILE))

    # --- evaluation of the agent and the baselines on the evaluation seeds ----------------
    results: dict[str, Episodes] = {}
    eval_env = evaluation_env(config.env, config.eval, config.eval.episodes, venv, seeds.eval_start)
    results[agent.name] = run_episodes(
        model,
        eval_env,
        seeds.eval_start,
        seeds.episodes,
        metrics=config.env.metrics,
        deterministic=config.eval.deterministic,
    )
    baseline_env = make_eval_env(
        config.env,
        config.eval,
        min(config.eval.episodes, config.eval.batch_size),
        seeds.eval_start,
        allow_sharing=False,
    )
    fitted = {}
    for name in baselines:
        log.info("fitting baseline %s on %d training seeds", name, len(seeds.fit))
        baseline = make_baseline(
            name, baseline_env, seed=config.seed, fit_seeds=seeds.fit, field="baselines"
        )
        fitted[name] = {**baseline.params(), "oracle": baseline.reads_hidden_state()}
        results[name] = run_episodes(
            baseline,
            baseline_env,
            seeds.eval_start,
            seeds.episodes,
            metrics=config.env.metrics,
            deterministic=config.eval.deterministic,
        )

    # --- run folder -------------------------------------------------------------------------
    metrics = metrics_of(results)
    columns = ["return", *config.env.metrics]
    write_metrics(folder / "metrics.json", metrics)
    write_episodes(folder / "eval.csv", results)
    write_json(folder / "baselines.json", fitted)
    (folder / "table.md").write_text(markdown_table(metrics, columns))
    plot_curve(
        folder / "curve.png",
        curve.points,
        {name: metrics[name]["return"]["mean"] for name in baselines},
        title=f"{agent.name} on {env_id} (seed {config.seed})",
        agent=agent.name,
        episodes=curve_episodes,
    )
    title = f"{env_id}: {seeds.episodes} evaluation episodes (seeds {seeds.eval_start}..)"
    if config.eval.scenarios is not None:
        title += f" on {config.eval.scenarios}"
    if config.init_model is not None:
        title += f"; {agent.name} started from {config.init_model}"
    print_table(metrics, columns, title)
    log.info("run folder: %s", folder)
    for env in (venv, curve_env, eval_env, baseline_env):
        env.close()
    return metrics


CURRICULUM_STATE = "adversarial"
"""Name of the adversarial curriculum's state in a checkpoint."""

FRESH_STATE = {
    CURRICULUM_STATE: "the adversarial scenario buffer starts empty and a search refills it before "
    "training continues",
}
"""Per part of the training state, what a resume from a checkpoint without its state does."""


def _restore_state(checkpoint: Checkpoint, state: dict[str, Stateful]) -> None:
    """Load ``checkpoint``'s state into ``state``'s parts; log each part it keeps none for."""
    for name in restore_state(checkpoint, state):
        log.warning(
            "resume: the checkpoint at %d steps (%s) keeps no %s state (it was written before "
            "that state was saved): %s",
            checkpoint.num_timesteps,
            checkpoint.model,
            name,
            FRESH_STATE.get(name, "it starts afresh"),
        )


def _progress_bar_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("tqdm", "rich"))
