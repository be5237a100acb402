"""Dataclass schemas of the Hydra configuration, registered in Hydra's ConfigStore.

Every YAML preset starts from one of these schemas (``defaults: [/schema/<group>/<name>@_here_]``),
so a misspelt key or a value of the wrong type fails when the configuration is composed, with
the full key in the message, long before an environment or a model is built::

    lepton-train agent.learning_rat=1e-3   # Key 'learning_rat' not in 'PPOConfig'
    lepton-train total_timesteps=abc       # Value 'abc' ... could not be converted to Integer

Ranges (``agent.gamma`` in [0, 1], ``total_timesteps`` >= 1...) are checked next, when a tool
turns the composed configuration into its schema (``agents.config.RULES``)::

    lepton-train agent.gamma=2             # agent.gamma: must be in [0, 1], got 2

The schemas live under the ``schema`` group of the ConfigStore (``schema/env/inventory``,
``schema/agent/ppo``, ``schema/train``...), so the ``env`` and ``agent`` groups list only the
YAML presets. :func:`register_configs` is called when the ``conf`` package is imported, which
Hydra does before it reads ``pkg://conf``.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

# --- environments ----------------------------------------------------------------------------


@dataclasses.dataclass
class EnvConfig:
    """An environment: a registered id, a short name and the constructor arguments.

    Attributes:
        id: registered Gymnasium id, e.g. ``lepton/Inventory-v0`` (see ``lepton-envs``).
        name: short label used in run-folder names and reports.
        metrics: keys of the final ``info`` of an episode reported next to the return.
        scenarios: where each episode's scenario comes from instead of the fixed one:
            ``gan:<folder>`` (a generator written by ``lepton-generate fit``; its codec is
            rebuilt on this env's own scenario and must match), ``adversarial:<folder>`` (the
            same generator, plus a buffer of high-regret scenarios replayed with probability
            ``adversarial.replay_prob`` and refreshed during training, see ``adversarial``),
            ``real:<folder>@<k>`` (the ``k``-th real training scenario of such a folder, every
            episode), ``train:<folder>`` (one of its real training scenarios per episode) or
            ``null`` (the env's scenario).
    """

    id: str = MISSING
    name: str = MISSING
    metrics: list[str] = dataclasses.field(default_factory=list)
    scenarios: str | None = None


@dataclasses.dataclass
class GenericEnvConfig(EnvConfig):
    """Any registered environment; ``kwargs`` are passed to its constructor unchecked.

    Attributes:
        kwargs: constructor arguments of the environment.
    """

    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


class InventoryActionMode(enum.Enum):
    """How actions encode order quantities (see ``envs.ops.inventory.env.InventoryEnv``)."""

    continuous = "continuous"
    discrete = "discrete"
    quantity = "quantity"


INVENTORY_REWARD_WEIGHTS = {
    "revenue": 1.0,
    "procurement_cost": 1.0,
    "shortage_cost": 1.0,
    "holding_cost": 1.0,
}
"""``InventoryEnv.default_reward_weights``, repeated so that importing the schema stays light."""


@dataclasses.dataclass
class InventoryKwargs:
    """Constructor arguments of ``lepton/Inventory-v0`` and its variants.

    Attributes:
        scenario: a preset name (``serial4``, ``orgym``, ``lost_sales``, ...) or a mapping of
            scenario fields, optionally starting from ``preset``.
        preset: the preset a ``scenario`` mapping without one starts from (each env preset
            sets its own, so ``'env.kwargs.scenario={horizon: 12}'`` keeps the rest of it).
        observation: observation builder (``default`` or ``orgym``).
        action_mode: ``continuous`` (Box in [-1, 1]), ``discrete`` (MultiDiscrete levels) or
            ``quantity`` (Box of raw order quantities).
        order_levels: order levels per stage in ``discrete`` mode.
        reward_weights: weight per reward term (``revenue``, ``procurement_cost``,
            ``shortage_cost``, ``holding_cost``; the env's defaults, all 1). A mapping, never
            ``null``, so that the command line merges into it:
            ``env.kwargs.reward_weights.holding_cost=2`` or
            ``'env.kwargs.reward_weights={holding_cost: 2}'`` change one term and keep the rest.
    """

    scenario: Any = "serial4"
    preset: str = "serial4"
    observation: str = "default"
    action_mode: InventoryActionMode = InventoryActionMode.continuous
    order_levels: int = 11
    reward_weights: dict[str, float] = dataclasses.field(
        default_factory=lambda: dict(INVENTORY_REWARD_WEIGHTS)
    )


@dataclasses.dataclass
class TrafficSumoEnvConfig(GenericEnvConfig):
    """A traffic env on an imported SUMO network (``env=traffic/sumo``).

    Attributes:
        net_file: path of the ``.net.xml``.
        route_file: path of the ``.rou.xml``, or a list of them read in order (``None``: no
            demand).
        begin: first simulated second (``None``: the earliest departure, or 0).
        end: the scenario ends here (``None``: just after the latest departure or flow end;
            ``begin + 3600`` without demand). Give it to let the last vehicles arrive.
    """

    net_file: str = MISSING
    route_file: Any = None  # a path or a list of paths (OmegaConf has no str | list union)
    begin: float | None = None
    end: float | None = None


@dataclasses.dataclass
class InventoryEnvConfig(EnvConfig):
    """The serial supply chain (``lepton/Inventory-v0`` and ``lepton/InventoryORGym-v0``).

    Attributes:
        kwargs: typed constructor arguments.
    """

    id: str = "lepton/Inventory-v0"
    metrics: list[str] = dataclasses.field(
        default_factory=lambda: ["episode_profit", "fill_rate", "service_level"]
    )
    kwargs: InventoryKwargs = dataclasses.field(default_factory=InventoryKwargs)


# --- agents ----------------------------------------------------------------------------------


@dataclasses.dataclass
class AgentConfig:
    """Something that acts: a Stable-Baselines3 algorithm or one of the family's baselines.

    Attributes:
        name: snake_case name of the agent (row label in reports, part of run names).
    """

    name: str = MISSING


@dataclasses.dataclass
class BaselineAgentConfig(AgentConfig):
    """A classic controller of the environment's family, looked up by ``name`` in its registry.

    Controllers are fitted on ``eval.fit_episodes`` training seeds before they act.
    """


class Activation(enum.Enum):
    """Hidden-layer activation of the policy and value networks."""

    tanh = "tanh"
    relu = "relu"
    elu = "elu"
    leaky_relu = "leaky_relu"


class Schedule(enum.Enum):
    """Learning-rate schedule over training progress."""

    constant = "constant"
    linear = "linear"


@dataclasses.dataclass
class NormalizeConfig:
    """Running normalisation of observations and rewards (SB3 ``VecNormalize``).

    The statistics are saved next to the model as ``vecnormalize.pkl`` and frozen for
    evaluation.

    Attributes:
        obs: normalise observations.
        reward: scale rewards by a running estimate of the discounted return's std.
        clip_obs: clip normalised observations to ``[-clip_obs, clip_obs]``.
        clip_reward: clip scaled rewards to ``[-clip_reward, clip_reward]``.
    """

    obs: bool = False
    reward: bool = False
    clip_obs: float = 10.0
    clip_reward: float = 10.0


@dataclasses.dataclass
class PolicyKwargsConfig:
    """Network of the policy (and value function / critics).

    Attributes:
        net_arch: hidden-layer sizes, used for the actor and for the critic.
        activation_fn: hidden-layer activation.
        ortho_init: orthogonal initialisation (PPO and A2C only).
        log_std_init: initial log standard deviation of Gaussian actions (PPO and A2C).
    """

    net_arch: list[int] = dataclasses.field(default_factory=lambda: [64, 64])
    activation_fn: Activation = Activation.tanh
    ortho_init: bool = True
    log_std_init: float = 0.0


@dataclasses.dataclass
class SB3AgentConfig(AgentConfig):
    """Hyperparameters shared by every Stable-Baselines3 algorithm.

    Attributes:
        algo: algorithm (``ppo``, ``a2c``, ``dqn``, ``sac``, ``td3``); fixed by each schema.
        policy: SB3 policy class name.
        learning_rate: optimiser step size (initial value with a ``linear`` schedule).
        lr_schedule: ``constant`` or ``linear`` decay to zero.
        gamma: discount factor.
        normalize: observation and reward normalisation.
        policy_kwargs: network architecture.
    """

    algo: str = MISSING
    policy: str = "MlpPolicy"
    learning_rate: float = 3e-4
    lr_schedule: Schedule = Schedule.constant
    gamma: float = 0.99
    normalize: NormalizeConfig = dataclasses.field(default_factory=NormalizeConfig)
    policy_kwargs: PolicyKwargsConfig = dataclasses.field(default_factory=PolicyKwargsConfig)


@dataclasses.dataclass
class PPOConfig(SB3AgentConfig):
    """Proximal Policy Optimisation (any action space).

    Attributes:
        n_steps: steps per environment per rollout (rollout size ``n_steps * n_envs``).
        batch_size: minibatch size.
        n_epochs: passes over each rollout.
        gae_lambda: GAE bias/variance trade-off.
        clip_range: policy ratio clipping.
        ent_coef: entropy bonus.
        vf_coef: value-loss weight.
        max_grad_norm: gradient clipping.
        normalize_advantage: normalise advantages per minibatch.
        target_kl: stop an update early above this KL divergence (``null``: never).
    """

    algo: str = "ppo"
    n_steps: int = 2048
    batch_size: int = 64
    n_epochs: int = 10
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantage: bool = True
    target_kl: float | None = None


@dataclasses.dataclass
class A2CConfig(SB3AgentConfig):
    """Advantage Actor-Critic (any action space).

    Attributes:
        n_steps: steps per environment per update.
        gae_lambda: GAE bias/variance trade-off (1: classic advantage).
        ent_coef: entropy bonus.
        vf_coef: value-loss weight.
        max_grad_norm: gradient clipping.
        use_rms_prop: RMSprop (``True``) or Adam.
        rms_prop_eps: RMSprop epsilon.
        normalize_advantage: normalise advantages.
    """

    algo: str = "a2c"
    learning_rate: float = 7e-4
    n_steps: int = 5
    gae_lambda: float = 1.0
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    use_rms_prop: bool = True
    rms_prop_eps: float = 1e-5
    normalize_advantage: bool = False


@dataclasses.dataclass
class OffPolicyConfig(SB3AgentConfig):
    """Hyperparameters shared by the replay-buffer algorithms.

    Attributes:
        buffer_size: replay buffer capacity, transitions.
        learning_starts: transitions collected before learning starts.
        batch_size: minibatch size.
        tau: soft target-update coefficient (1: hard update).
        train_freq: environment steps between updates.
        gradient_steps: gradient steps per update (-1: as many as environment steps).
    """

    buffer_size: int = 100_000
    learning_starts: int = 1000
    batch_size: int = 256
    tau: float = 0.005
    train_freq: int = 1
    gradient_steps: int = 1


@dataclasses.dataclass
class DQNConfig(OffPolicyConfig):
    """Deep Q-Network (``Discrete`` action spaces only).

    Attributes:
        target_update_interval: environment steps between target-network updates.
        exploration_fraction: share of training over which epsilon decays.
        exploration_initial_eps: initial epsilon.
        exploration_final_eps: final epsilon.
        max_grad_norm: gradient clipping.
    """

    algo: str = "dqn"
    learning_rate: float = 1e-4
    batch_size: int = 32
    tau: float = 1.0
    train_freq: int = 4
    target_update_interval: int = 1000
    exploration_fraction: float = 0.1
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    max_grad_norm: float = 10.0


@dataclasses.dataclass
class SACConfig(OffPolicyConfig):
    """Soft Actor-Critic (``Box`` action spaces only).

    Attributes:
        ent_coef: entropy coefficient: a number, ``auto`` or ``auto_<initial value>``.
        target_entropy: ``auto`` (minus the action dimension) or a number.
        target_update_interval: gradient steps between target-network updates.
    """

    algo: str = "sac"
    ent_coef: str = "auto"
    target_entropy: str = "auto"
    target_update_interval: int = 1


@dataclasses.dataclass
class TD3Config(OffPolicyConfig):
    """Twin Delayed DDPG (``Box`` action spaces only).

    Attributes:
        learning_rate: step size of actor and critics.
        policy_delay: critic updates per actor update.
        target_policy_noise: std of the smoothing noise on target actions.
        target_noise_clip: clipping of that noise.
        action_noise_std: std of the Gaussian exploration noise, in action units (0: none).
    """

    algo: str = "td3"
    learning_rate: float = 1e-3
    policy_delay: int = 2
    target_policy_noise: float = 0.2
    target_noise_clip: float = 0.5
    action_noise_std: float = 0.1


@dataclasses.dataclass
class PretrainedFields:
    """Where a pretrained agent of the model zoo (``agent=pretrained/<name>``) comes from.

    A pretrained preset carries the hyperparameters of the run that trained it plus these
    fields; ``lepton-evaluate`` and ``lepton-render`` load its model without ``model_path``.

    Attributes:
        pretrained: name of the zoo entry (``traffic-single``).
        model: the saved model, relative to the ``agents`` package
            (``pretrained/<name>/model.zip``; ``vecnormalize.pkl`` next to it when present).
        source: overrides that compose its source scenario
            (``[experiment=traffic_single_ppo]``).
        env_id: registered id of the env it was trained on.
        env_kwargs: constructor arguments of that env.
        observation_shape: shape of one observation the model takes.
        action_space: the model's action space, as ``str(space)``.
    """

    pretrained: str = MISSING
    model: str = MISSING
    source: list[str] = dataclasses.field(default_factory=list)
    env_id: str = MISSING
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    observation_shape: list[int] = dataclasses.field(default_factory=list)
    action_space: str = MISSING


@dataclasses.dataclass
class PretrainedPPOConfig(PPOConfig, PretrainedFields):
    """A pretrained PPO agent of the model zoo."""


@dataclasses.dataclass
class PretrainedA2CConfig(A2CConfig, PretrainedFields):
    """A pretrained A2C agent of the model zoo."""


@dataclasses.dataclass
class PretrainedDQNConfig(DQNConfig, PretrainedFields):
    """A pretrained DQN agent of the model zoo."""


@dataclasses.dataclass
class PretrainedSACConfig(SACConfig, PretrainedFields):
    """A pretrained SAC agent of the model zoo."""


@dataclasses.dataclass
class PretrainedTD3Config(TD3Config, PretrainedFields):
    """A pretrained TD3 agent of the model zoo."""


# --- root configs ----------------------------------------------------------------------------


@dataclasses.dataclass
class EvalConfig:
    """Evaluation protocol shared by training, evaluation and rendering.

    Evaluation episode ``k`` uses seed ``seed + seed_offset + k``; training replicas use seeds
    ``seed + i`` (``i < n_envs``) and baselines are fitted on seeds ``seed + i``
    (``i < fit_episodes``), so ``seed_offset`` must exceed both counts.

    Attributes:
        episodes: evaluation episodes per policy.
        seed_offset: distance of the first evaluation seed from the training seed.
        eval_freq: environment steps between points of the learning curve (0: only at the
            start and the end of training).
        curve_episodes: episodes per point of the learning curve, the first of the evaluation
            episodes' seeds (at most ``episodes``: ``lepton-train`` refuses a larger value,
            naming both fields).
        fit_episodes: training episodes each baseline is fitted on.
        deterministic: act deterministically (the mode of stochastic policies).
        batch_size: most episodes simulated at once (replicas of one batched env).
        scenarios: the scenarios evaluation episodes run on, for the agent and the baselines
            alike (the training env keeps ``env.scenarios``): ``heldout:<folder>`` (the
            held-out real scenarios of a ``lepton-generate fit`` folder, cycled through so
            each is used equally often), ``train:<folder>`` (its training real scenarios,
            likewise), ``gan:<folder>`` (generated ones), ``real:<folder>@<k>`` (the ``k``-th
            training real scenario) or ``null`` (the training env's scenarios). Baselines are
            still fitted on the training env's scenarios.
    """

    episodes: int = 64
    seed_offset: int = 1_000_000
    eval_freq: int = 25_000
    curve_episodes: int = 32
    fit_episodes: int = 32
    deterministic: bool = True
    batch_size: int = 256
    scenarios: str | None = None


@dataclasses.dataclass
class AdversarialSettings:
    """Adversarial scenario search (``agents.generators.adversarial``).

    Used by ``lepton-train`` when ``env.scenarios=adversarial:<folder>`` (the curriculum) and by
    ``lepton-generate adversarial``.

    Attributes:
        baseline: the baseline regret is measured against (a name of the env family's;
            ``null``: the family's reference baseline: ``base_stock`` for inventory,
            ``max_pressure`` for traffic, ``hpa`` for autoscaling, ``threshold`` for maintenance,
            ``interest_match`` for recommendation).
        method: ``auto`` (cross-entropy method over the latent noise of a WGAN, random search
            for other generators), ``cem`` or ``random``.
        population: candidate scenarios per search iteration.
        iterations: search iterations.
        elite_frac: fraction of an iteration's candidates the CEM refits to.
        lam: weight of the realism penalty ``||z||^2 / dim``, in return units; ``null``: the
            family's default (20; 0.5 for recommendation, whose regrets are minutes of watch
            time).
        episodes: episodes per scenario when scoring regret; ``null``: the family's default
            (1; 32 for recommendation, whose sessions vary much more than one user's regret).
        fit_episodes: training episodes the baseline is fitted on.
        buffer_size: high-regret scenarios kept for replay.
        replay_prob: probability that a reset replays a buffered scenario.
        refresh_freq: training steps between searches (``lepton-train``).
        batch_size: most episodes simulated at once while scoring.
    """

    baseline: str | None = None
    method: str = "auto"
    population: int = 32
    iterations: int = 5
    elite_frac: float = 0.25
    lam: float | None = None
    episodes: int | None = None
    fit_episodes: int = 16
    buffer_size: int = 16
    replay_prob: float = 0.5
    refresh_freq: int = 10_000
    batch_size: int = 256


@dataclasses.dataclass
class TrainConfig:
    """Root configuration of ``lepton-train``.

    Attributes:
        env: the environment.
        agent: the agent (an SB3 algorithm for training).
        experiment_name: label of the run (an experiment preset sets it; default: agent name).
        seed: master seed, 0 to 2**32 - 1 (training seeds ``seed + i``, evaluation seeds
            after an offset).
        total_timesteps: environment steps of training, summed over the ``n_envs`` replicas.
        n_envs: parallel training replicas (one batched env).
        eval: evaluation protocol.
        baselines: baselines compared in the report (``null``: all of the family's).
        run_dir: the run folder (Hydra's output directory).
        device: torch device: ``auto`` (CUDA when available), ``cpu``, ``cuda``,
            ``cuda:<index>`` or ``mps``; a device named explicitly must exist on the machine.
        torch_threads: CPU threads torch may use.
        progress_bar: show a progress bar while training (needs tqdm and rich).
        tensorboard: write TensorBoard logs to ``<run_dir>/tb``.
        checkpoint_freq: environment steps between checkpoints (0: none); a checkpoint holds
            the model, the normalisation statistics, the replay buffer (off-policy agents)
            and the learning curve so far, so ``resume`` can continue from it.
        verbose: 0 quiet, 1 SB3's training tables on stdout.
        sweep_dir: folder of a multirun (``-m``); each job gets ``<sweep_dir>/<env>__<agent>__
            <seed>[__<hash of other overrides>]``, so the same sweep maps to the same folders.
        resume: continue from the run folder's latest checkpoint (model, normalisation
            statistics, replay buffer) up to ``total_timesteps``; starts afresh when there is
            none.
        force: run a job again although its folder records it as finished (otherwise it is
            skipped).
        init_model: start from a saved policy: a run folder (or its ``model.zip``) whose
            policy weights, and normalisation statistics when saved, the new model starts
            from; the agent preset's hyperparameters, optimiser and schedule start afresh, and
            its network must match the saved one. A run resumed from a checkpoint ignores it.
        adversarial: the adversarial curriculum's settings, used with
            ``env.scenarios=adversarial:<folder>``.
    """

    env: EnvConfig = MISSING
    agent: AgentConfig = MISSING
    experiment_name: str = "${agent.name}"
    seed: int = 0
    total_timesteps: int = 300_000
    n_envs: int = 16
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    baselines: list[str] | None = None
    run_dir: str = MISSING
    device: str = "cpu"
    torch_threads: int = 1
    progress_bar: bool = True
    tensorboard: bool = True
    checkpoint_freq: int = 100_000
    verbose: int = 0
    sweep_dir: str = "runs/sweeps/${now:%Y%m%d-%H%M%S}"
    resume: bool = False
    force: bool = False
    init_model: str | None = None
    adversarial: AdversarialSettings = dataclasses.field(default_factory=AdversarialSettings)


@dataclasses.dataclass
class EvaluateConfig(TrainConfig):
    """Root configuration of ``lepton-evaluate``.

    Attributes:
        model_path: a saved SB3 model (``model.zip``); with a baseline agent leave it ``null``.
        episodes: evaluation episodes.
    """

    model_path: str | None = None
    episodes: int = MISSING


class RenderMode(enum.Enum):
    """``human`` opens a window; ``video`` writes ``out`` from ``rgb_array`` frames."""

    human = "human"
    video = "video"


@dataclasses.dataclass
class RenderConfig(EvaluateConfig):
    """Root configuration of ``lepton-render``.

    Attributes:
        mode: ``human`` or ``video``.
        out: video file (``.mp4`` or ``.gif``); ``null``: ``<run_dir>/<agent>.mp4``.
        fps: frames per second of the video (``null``: the environment's ``render_fps``).
    """

    mode: RenderMode = RenderMode.video
    out: str | None = None
    fps: int | None = None


class ParamType(enum.Enum):
    """Kind of a tuned hyperparameter."""

    float = "float"
    int = "int"
    categorical = "categorical"


@dataclasses.dataclass
class ParamSpec:
    """The range of one tuned hyperparameter (an Optuna distribution).

    Attributes:
        type: ``float``, ``int`` or ``categorical``.
        low: lower bound (``float`` and ``int``).
        high: upper bound, inclusive (``float`` and ``int``).
        log: sample on a log scale (``float`` and ``int``).
        step: grid step (``float`` and ``int``; ``null``: continuous or 1).
        choices: the values of a ``categorical`` parameter (any YAML values, e.g. lists).
    """

    type: ParamType = ParamType.float
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None


@dataclasses.dataclass
class PrunerConfig:
    """Median pruning on the intermediate evaluations of a trial (the learning curve).

    Attributes:
        startup_trials: trials completed before any is pruned.
        warmup_steps: environment steps of a trial before it can be pruned.
    """

    startup_trials: int = 3
    warmup_steps: int = 0


@dataclasses.dataclass
class StudyConfig:
    """An Optuna study shared by every worker that names the same ``storage`` and ``name``.

    Attributes:
        name: study name in the storage.
        storage: RDB URL (``sqlite:///tune.db``, ``postgresql://...``); workers started with
            the same URL and name share the study.
        n_trials: trials of the whole study (all workers together; complete or pruned).
        timeout: seconds after which this worker starts no new trial (``null``: none).
        startup_trials: random trials before TPE models the search space.
        sampler_seed: seed of this worker's TPE sampler (``null``: from ``seed`` and the
            process id, so concurrent workers explore differently).
        pruner: median pruning.
        enqueue_defaults: evaluate the agent preset's own values as the first trial, so the
            study compares the tuned values with the defaults (a default the search space
            cannot take is replaced, and the summary says so).
        preset: name of the agent preset written with the best values (``conf/agent/<preset>
            .yaml``; use it as ``agent=<preset>``).
        preset_dir: folder of that preset (``null``: this package's ``conf/agent``). Elsewhere,
            name the folder ``agent`` and pick a name no packaged preset has, and train with
            ``'hydra.searchpath=[file://<its parent>]' agent=<preset>``; the summary prints
            the command.
    """

    name: str = "${agent.name}_${env.name}"
    storage: str = "sqlite:///runs/tune/${tune.name}.db"
    n_trials: int = 20
    timeout: float | None = None
    startup_trials: int = 5
    sampler_seed: int | None = None
    pruner: PrunerConfig = dataclasses.field(default_factory=PrunerConfig)
    enqueue_defaults: bool = True
    preset: str = "${agent.name}_tuned_${env.name}"
    preset_dir: str | None = None


ENV_SCHEMAS: dict[str, type[EnvConfig]] = {
    "generic": GenericEnvConfig,
    "inventory": InventoryEnvConfig,
    "traffic_sumo": TrafficSumoEnvConfig,
}
AGENT_SCHEMAS: dict[str, type[AgentConfig]] = {
    "ppo": PPOConfig,
    "a2c": A2CConfig,
    "dqn": DQNConfig,
    "sac": SACConfig,
    "td3": TD3Config,
    "baseline": BaselineAgentConfig,
    "pretrained_ppo": PretrainedPPOConfig,
    "pretrained_a2c": PretrainedA2CConfig,
    "pretrained_dqn": PretrainedDQNConfig,
    "pretrained_sac": PretrainedSACConfig,
    "pretrained_td3": PretrainedTD3Config,
}


@dataclasses.dataclass
class TuneConfig(TrainConfig):
    """Root configuration of ``lepton-tune``: a trial trains like ``lepton-train``.

    Each trial trains the agent with sampled values for ``total_timesteps``, reports every
    point of its learning curve to the pruner and scores the mean return over ``eval.episodes``
    evaluation episodes.

    Attributes:
        search_space: agent field (``learning_rate``, ``policy_kwargs.net_arch``...) -> range.
        tune: the study, its storage, sampler and pruner, and the preset written.
    """

    search_space: dict[str, ParamSpec] = dataclasses.field(default_factory=dict)
    tune: StudyConfig = dataclasses.field(default_factory=StudyConfig)


class TransferMode(enum.Enum):
    """How the source agent meets the target (see :mod:`agents.transfer`)."""

    zero_shot = "zero_shot"
    finetune = "finetune"
    freeze_features = "freeze_features"


@dataclasses.dataclass
class TransferConfig(TrainConfig):
    """Root configuration of ``lepton-transfer``: a source agent against scratch on a target.

    The keys shared with ``lepton-train`` describe the *target* task: ``env`` is the target,
    ``agent`` the algorithm and hyperparameters of both arms, ``total_timesteps`` the budget of
    each arm and seed, ``n_envs`` and ``eval`` the training replicas and evaluation schedule
    (``eval.episodes`` for the zero-shot score and the baselines), ``baselines`` those whose
    best score is the default threshold, ``seed`` the seed of a source trained here.

    Attributes:
        source: the source agent: a run folder holding ``model.zip`` (``vecnormalize.pkl``
            and ``config.yaml`` next to it when present), or the name of an experiment preset
            (``transfer/<pair>__source``) or of an env preset to train one on first.
        source_overrides: Hydra overrides of the source's training config when it is trained
            here (``'source_overrides=["total_timesteps=20000"]'`` on the command line).
        mode: ``zero_shot`` (the source policy as it is), ``finetune`` (all weights train) or
            ``freeze_features`` (the first ``freeze_layers`` hidden layers stay fixed).
        seeds: seeds of the arms: both arms of seed ``s`` train on replicas ``s + i`` and
            are evaluated on seeds ``s + eval.seed_offset + k``.
        finetune_lr_scale: multiplies ``agent.learning_rate`` for the transfer arm.
        freeze_layers: hidden layers frozen in every policy and value trunk with
            ``freeze_features`` (feature extractors with weights are always frozen).
        threshold: evaluation return counted as reached for the time to threshold
            (``null``: the best baseline's mean return on the target).
        asymptote_points: last curve points averaged for the asymptotic performance.
        confidence: coverage of the bootstrap intervals over seeds.
        bootstrap_reps: bootstrap resamples.
    """

    source: str = MISSING
    source_overrides: list[str] = dataclasses.field(default_factory=list)
    mode: TransferMode = TransferMode.finetune
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0, 1, 2])
    finetune_lr_scale: float = 1.0
    freeze_layers: int = 1
    threshold: float | None = None
    asymptote_points: int = 3
    confidence: float = 0.95
    bootstrap_reps: int = 2000


class GenerateCommand(enum.Enum):
    """What ``lepton-generate`` does (also given as its first word: ``lepton-generate fit``)."""

    fit = "fit"
    sample = "sample"
    adversarial = "adversarial"


class GeneratorKind(enum.Enum):
    """Generator fitted by ``lepton-generate fit`` (see :mod:`agents.generators`)."""

    wgan = "wgan"
    parametric = "parametric"
    list = "list"


class ParametricDistribution(enum.Enum):
    """Per-feature distribution of the parametric generator."""

    uniform = "uniform"
    normal = "normal"
    lognormal = "lognormal"


@dataclasses.dataclass
class WGANSettings:
    """Architecture and budget of the WGAN-GP (``agents.generators.wgan.WGANConfig``).

    Attributes:
        noise_dim: length of the generator's Gaussian input.
        hidden: widths of the hidden layers of generator and critic.
        steps: generator updates.
        critic_steps: critic updates per generator update.
        batch_size: samples per update.
        lr: Adam learning rate of both networks.
        betas: Adam betas.
        gp_weight: weight of the gradient penalty.
        seed: seed of weights, batches and noise (``null``: the root ``seed``).
        threads: torch threads while fitting (``null``: leave torch's setting).
        max_seconds: stop fitting after this much wall time, s (``null``: all ``steps``).
        log_scale: learn ``log(1 + x)`` of the features (``null``: the family's default,
            true for traffic).
        bounded: confine generated features to the training range widened by
            ``bound_margin`` of it on each side (``null``: the family's default, true for
            traffic).
        bound_margin: that widening, as a fraction of each feature's range.
    """

    noise_dim: int = 16
    hidden: list[int] = dataclasses.field(default_factory=lambda: [128, 128])
    steps: int = 2000
    critic_steps: int = 5
    batch_size: int = 128
    lr: float = 2e-4
    betas: list[float] = dataclasses.field(default_factory=lambda: [0.5, 0.9])
    gp_weight: float = 10.0
    seed: int | None = None
    threads: int | None = 1
    max_seconds: float | None = None
    log_scale: bool | None = None
    bounded: bool | None = None
    bound_margin: float = 0.1


@dataclasses.dataclass
class ParametricSettings:
    """Domain randomisation (``agents.generators.simple.ParametricGenerator``).

    Attributes:
        distribution: ``uniform`` (the data's range), ``normal`` or ``lognormal`` per feature.
        margin: widening of fitted uniform ranges, as a fraction of the range.
    """

    distribution: ParametricDistribution = ParametricDistribution.uniform
    margin: float = 0.0


@dataclasses.dataclass
class FamilyParams:
    """Settings of a scenario family for ``lepton-generate`` (``null``: the family's default).

    Each family takes only its own; setting another family's is an error naming it.

    Attributes:
        periods: synthetic: periods of a daily profile (24).
        max_rate: synthetic: largest valid rate, units/hour (5000); traffic: largest valid
            route rate, vehicles/hour (the larger of 3600 and twice the base's peak);
            autoscale: largest valid request rate, requests/s (twice the base's planning peak).
        tolerance: synthetic, inventory, traffic, autoscale, recsys: how far outside the valid
            range a value may lie and be clipped back (synthetic 1 unit/hour, inventory 0.5
            units, traffic half a vehicle per bin, autoscale 1 % of ``max_rate``, recsys 0.2
            of an interest).
        max_demand: inventory: largest valid demand per period, units (four times the base's
            peak mean demand plus 50, or its peak mean plus ten standard deviations plus 10
            when larger).
        integer: inventory: round generated demand to whole units (true).
        bins: traffic: equal time bins of the window (12); autoscale: equal time bins of the
            episode, whole decision steps each (the fewest steps of 5 minutes or more that
            split the horizon: 169 on the bank-calls preset).
        seconds: traffic: window length, s (900).
        stride: traffic: seconds between the starts of real windows (300).
        start: traffic: first second of the base window (the ``.sumocfg``'s begin).
    """

    periods: int | None = None
    max_rate: float | None = None
    tolerance: float | None = None
    max_demand: float | None = None
    integer: bool | None = None
    bins: int | None = None
    seconds: float | None = None
    stride: float | None = None
    start: float | None = None


@dataclasses.dataclass
class GenerateConfig:
    """Root configuration of ``lepton-generate``: fit a scenario generator, or sample one.

    ``fit`` loads the family's real data, holds part of it out (seeded), fits the generator on
    the rest and writes ``out_dir``: ``generator.npz``, ``generator.json``, ``data.npz``,
    ``realism.json`` and ``real_vs_generated.png``. ``sample`` draws ``n`` scenarios from the
    folder ``path`` into ``out_dir``.

    Attributes:
        command: ``fit`` or ``sample``.
        family: scenario family (``synthetic``, ``inventory``, ``traffic``, ``autoscale``,
            ``recsys``; see ``agents.generators.registry``).
        data: where the family's real scenarios come from (``null``: the family's default):
            synthetic ``truth``; inventory ``env`` (the env's scenario) or
            ``presets:<name>+<name>``; traffic ``resco:<net>``; autoscale ``bank_calls`` (the
            real call-centre days), ``env`` or ``presets:<name>+<name>`` (load drawn from
            those scenarios' arrival processes); recsys ``movielens`` (the real users'
            interests) or ``env`` (users drawn from the env's scenario).
        params: family settings (``params.bins=6``; ``null``: the family's default).
        env: the environment whose scenario is the base of generated ones (``null``: the
            family's default; an env preset such as ``env=inventory_lost_sales``).
        kind: ``wgan``, ``parametric`` or ``list``.
        wgan: WGAN-GP settings.
        parametric: parametric-generator settings.
        n_data: real scenarios drawn (synthetic, inventory, autoscale ``env`` and
            ``presets``, recsys ``env``); traffic uses every window, autoscale ``bank_calls``
            every day, recsys ``movielens`` every user.
        held_out: fraction of the real scenarios held out for the realism tests.
        split: how they are held out: ``random`` (a seeded draw) or ``blocked`` (the last
            ones in the data's order, with the rows that overlap them left out of training,
            e.g. later time windows of one recording); ``null``: the family's default
            (``blocked`` for traffic windows, ``random`` otherwise).
        min_held_out: fewest held-out scenarios (the band test needs 4).
        splits: random halvings of the held-out data behind the real-vs-real band.
        alpha: level of the realism tests.
        plot_samples: generated scenarios drawn for the figure (and the invalid rate).
        max_rounds: redraw rounds before sampling gives up on invalid draws.
        seed: seeds the data, the split, the fit, the realism tests and ``sample``'s draws.
        path: ``sample``, ``adversarial``: a folder written by ``fit``.
        n: ``sample``: number of scenarios; ``adversarial``: adversarial scenarios reported
            (the best ``n`` found) and ordinary generated and real scenarios scored (``4 n``
            each).
        model: ``adversarial``: the agent, ``pretrained/<name>`` or a ``model.zip`` (or its run
            folder) written by ``lepton-train``.
        adversarial: ``adversarial``: the search settings.
        out_dir: the folder written (``fit``: the generator; ``sample``: the samples, by
            default ``<path>/samples__seed<seed>__n<n>``).
    """

    command: GenerateCommand = GenerateCommand.fit
    family: str = "synthetic"
    data: str | None = None
    params: FamilyParams = dataclasses.field(default_factory=FamilyParams)
    env: EnvConfig | None = None
    kind: GeneratorKind = GeneratorKind.wgan
    wgan: WGANSettings = dataclasses.field(default_factory=WGANSettings)
    parametric: ParametricSettings = dataclasses.field(default_factory=ParametricSettings)
    n_data: int = 1000
    held_out: float = 0.3
    split: str | None = None
    min_held_out: int = 4
    splits: int = 100
    alpha: float = 0.05
    plot_samples: int = 200
    max_rounds: int = 50
    seed: int = 0
    path: str | None = None
    n: int = 16
    model: str | None = None
    adversarial: AdversarialSettings = dataclasses.field(default_factory=AdversarialSettings)
    out_dir: str = MISSING


ROOT_SCHEMAS: dict[str, type] = {
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "render": RenderConfig,
    "tune": TuneConfig,
    "transfer": TransferConfig,
    "generate": GenerateConfig,
}


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore under ``schema/`` (idempotent)."""
    cs = ConfigStore.instance()
    for name, node in ROOT_SCHEMAS.items():
        cs.store(group="schema", name=name, node=node)
    for name, env_node in ENV_SCHEMAS.items():
        cs.store(group="schema/env", name=name, node=env_node)
    for name, agent_node in AGENT_SCHEMAS.items():
        cs.store(group="schema/agent", name=name, node=agent_node)
