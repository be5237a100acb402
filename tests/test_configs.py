"""Every config preset composes and instantiates; mistakes fail at composition, naming the key."""

import dataclasses
import functools
import re
import subprocess
import typing
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict

from agents.algorithms import IncompatibleAgentError, agents_that_fit, build_model
from agents.config import as_config, check_curve_episodes, env_kwargs, make_seeds
from agents.envs import make_training_env, make_vec_env
from agents.policies import baseline_names, make_baseline
from conf.schema import (
    AGENT_SCHEMAS,
    ENV_SCHEMAS,
    ROOT_SCHEMAS,
    BaselineAgentConfig,
    EvalConfig,
    EvaluateConfig,
    InventoryActionMode,
    InventoryKwargs,
    RenderConfig,
    SB3AgentConfig,
    TrainConfig,
    TuneConfig,
)
from envs.core.baselines import baseline_registry
from envs.ops.inventory.env import ACTION_MODES, InventoryEnv
from envs.registration import env_class

CONF = Path(__file__).resolve().parents[1] / "conf"


def presets(group: str) -> list[str]:
    """Preset names of a config group, nested folders included (``ops/maintenance_single``)."""
    folder = CONF / group
    return sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml"))


def baseline_presets() -> list[str]:
    return [
        name
        for name in presets("agent")
        if "/schema/agent/baseline" in (CONF / "agent" / f"{name}.yaml").read_text()
    ]


@functools.cache
def family_baselines() -> dict[str, list[str]]:
    """Env preset -> names of its family's baselines (from the registered env classes)."""
    out = {}
    for env in presets("env"):
        env_id = OmegaConf.load(CONF / "env" / f"{env}.yaml").id
        out[env] = baseline_registry(env_class(env_id)).names()
    return out


def env_overrides(env: str) -> list[str]:
    """Overrides a preset needs to compose (the SUMO-import preset needs its files)."""
    if env != "traffic/sumo":
        return [f"env={env}"]
    pytest.importorskip("sumolib", reason="the SUMO-import preset needs the `sumo` extra")
    from envs.traffic.nets import sumo_rl_nets_dir

    try:
        folder = sumo_rl_nets_dir() / "single-intersection"
    except RuntimeError as exc:  # pragma: no cover - depends on the package index
        pytest.skip(f"sumo-rl's networks cannot be fetched: {exc}")
    return [
        f"env={env}",
        f"env.net_file={folder / 'single-intersection.net.xml'}",
        f"env.route_file={folder / 'single-intersection.rou.xml'}",
        "env.begin=0",
        "env.end=600",
    ]


def env_for_baseline(name: str) -> str:
    """An env preset whose family has the baseline ``name`` (the default env when it does)."""
    homes = [env for env, names in family_baselines().items() if name in names]
    assert homes, f"agent preset {name!r} is no baseline of any env preset's family"
    return "inventory" if "inventory" in homes else homes[0]


ROOTS = {"config": TrainConfig, "evaluate": EvaluateConfig, "render": RenderConfig}


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_root_configs_compose(make_cfg, root):
    cfg = make_cfg(root)
    config = as_config(cfg, ROOTS[root])
    assert config.env.id == "lepton/Inventory-v0"
    assert config.agent.name == "ppo"
    assert OmegaConf.get_type(cfg) is ROOTS[root]


def test_shared_defaults_agree_across_roots(make_cfg):
    shared = ("seed", "eval", "baselines", "device", "n_envs", "torch_threads", "env", "agent")
    composed = {r: make_cfg(r, tiny=False) for r in ROOTS}
    for key in shared:
        values = {r: OmegaConf.to_container(c, resolve=True)[key] for r, c in composed.items()}
        assert values["config"] == values["evaluate"] == values["render"], key


def test_default_run_dir_names_env_experiment_seed_time(tmp_path):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose("config", overrides=["seed=7", "experiment=inventory_quick"])
    name = Path(cfg.run_dir).name
    assert name.startswith("inventory__inventory_quick__7__"), name
    assert len(name.split("__")[-1]) == len("20250101-120000")


@pytest.mark.parametrize("env", presets("env"))
def test_env_presets_compose_and_make(make_cfg, env):
    config = as_config(make_cfg("config", env_overrides(env)), TrainConfig)
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", config.env.name), "env.name is used in folder names"
    venv = make_vec_env(config.env, 2, seed=0)
    obs = venv.reset()
    assert obs.shape == (2, *venv.observation_space.shape)
    obs, rewards, _, infos = venv.step(np.stack([venv.action_space.sample() for _ in range(2)]))
    assert np.isfinite(rewards).all()
    for metric in config.env.metrics:
        assert metric in infos[0], metric
    venv.close()


@pytest.mark.parametrize("env", [e for e in presets("env") if e.startswith("traffic/")])
def test_traffic_presets_take_the_documented_sharing_and_padding_overrides(make_cfg, env):
    plain = as_config(make_cfg("config", env_overrides(env)), TrainConfig)
    assert make_vec_env(plain.env, 1, seed=0).num_envs == 1  # null: no sharing, no padding
    overrides = ["env.kwargs.parameter_sharing=true", "env.kwargs.obs_lanes=16"]
    config = as_config(make_cfg("config", [*env_overrides(env), *overrides]), TrainConfig)
    venv = make_vec_env(config.env, 1, seed=0)
    k = len(venv.get_attr("structure")[0].controlled_signals)
    assert venv.num_envs == k  # one slot per signal of the one replica
    venv.close()


@pytest.mark.parametrize("env", presets("env"))
def test_env_presets_build_ppo_and_every_baseline(make_cfg, env):
    config = as_config(make_cfg("config", env_overrides(env)), TrainConfig)
    agent = config.agent
    assert isinstance(agent, SB3AgentConfig)
    venv = make_training_env(config.env, 2, 0, agent.normalize, agent.gamma)
    model = build_model(agent, venv, env_id=config.env.id, seed=0)
    assert model.action_space == venv.action_space
    obs = venv.reset()
    for name in baseline_names(venv):
        baseline = baseline_registry(venv).get(name)(venv, seed=0)  # fitting: test_pipeline
        actions, _ = baseline.predict(obs)
        assert venv.action_space.contains(np.asarray(actions[0], dtype=venv.action_space.dtype))
    venv.close()


@pytest.mark.parametrize("agent", presets("agent"))
def test_agent_presets_instantiate(make_cfg, agent):
    overrides = [f"agent={agent}"]
    config = as_config(make_cfg("config", overrides), TrainConfig)
    assert config.agent.name == agent
    if isinstance(config.agent, BaselineAgentConfig):
        cfg = make_cfg("config", [*overrides, f"env={env_for_baseline(agent)}"])
        config = as_config(cfg, TrainConfig)
        venv = make_vec_env(config.env, 2, seed=0)
        baseline = baseline_registry(venv).get(agent)(venv, seed=0)
        actions, _ = baseline.predict(venv.reset())
        assert np.shape(actions) == (2, *venv.action_space.shape)
        return
    sb3 = config.agent
    assert isinstance(sb3, SB3AgentConfig)
    venv = make_training_env(config.env, 2, 0, sb3.normalize, sb3.gamma)
    if sb3.algo in agents_that_fit(venv.action_space):
        model = build_model(
            sb3, venv, env_id=config.env.id, env_kwargs=env_kwargs(config.env), seed=0
        )
        actions, _ = model.predict(venv.reset(), deterministic=True)
        assert actions.shape == (2, *venv.action_space.shape)
    else:
        with pytest.raises(IncompatibleAgentError) as err:
            build_model(sb3, venv, env_id=config.env.id, env_kwargs=env_kwargs(config.env), seed=0)
        message = str(err.value)
        assert sb3.algo.upper() in message and "Box" in message
        assert "agents that fit this env: ppo, a2c" in message
    venv.close()


@pytest.mark.parametrize(
    ("agent", "mode", "needs"),
    [("dqn", "continuous", "Discrete"), ("sac", "discrete", "Box"), ("td3", "discrete", "Box")],
)
def test_action_space_mismatch_names_algorithm_space_and_fitting_agents(
    make_cfg, agent, mode, needs
):
    cfg = make_cfg("config", [f"agent={agent}", f"env.kwargs.action_mode={mode}"])
    config = as_config(cfg, TrainConfig)
    sb3 = config.agent
    assert isinstance(sb3, SB3AgentConfig)
    venv = make_vec_env(config.env, 1)
    with pytest.raises(IncompatibleAgentError) as err:
        build_model(sb3, venv, env_id=config.env.id, env_kwargs=env_kwargs(config.env), seed=0)
    message = str(err.value)
    assert f"({sb3.algo.upper()})" in message
    assert f"needs a {needs} action space" in message
    assert str(venv.action_space) in message
    assert f"env.kwargs.action_mode='{mode}'" in message
    assert "agents that fit this env: ppo, a2c" in message


def test_baseline_presets_match_the_family_registries():
    # every baseline of every env preset's family is selectable as agent=<name>, and every
    # baseline preset names a real baseline
    registered = {name for names in family_baselines().values() for name in names}
    missing = sorted(registered - set(baseline_presets()))
    assert not missing, f"baselines without conf/agent/<name>.yaml (agent=<name>): {missing}"
    unknown = sorted(set(baseline_presets()) - registered)
    assert not unknown, f"baseline presets no env preset's family registers: {unknown}"


def test_action_mode_schema_matches_env():
    assert tuple(m.value for m in InventoryActionMode) == ACTION_MODES


@pytest.mark.parametrize("experiment", presets("experiment"))
def test_experiments_compose(make_cfg, experiment):
    cfg = make_cfg("config", [f"experiment={experiment}"], tiny=False)
    config = as_config(cfg, TrainConfig)
    assert config.experiment_name == experiment
    assert Path(cfg.run_dir).name.startswith("run")  # the fixture's folder wins
    make_seeds(config.seed, config.n_envs, config.eval)
    check_curve_episodes(config.eval)  # no committed experiment has its curve refused


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("agent.learning_rat=1e-3", "learning_rat"),
        ("env.kwargs.action_mod=discrete", "action_mod"),
        ("eval.episode=3", "episode"),
        ("seeds=3", "seeds"),
    ],
)
def test_typo_in_key_fails_at_composition(make_cfg, override, key):
    with pytest.raises(ConfigCompositionException) as err:
        make_cfg("config", [override])
    message = _full_message(err.value)
    assert key in message


def test_appended_unknown_key_fails_before_anything_runs(make_cfg):
    # Hydra's append syntax adds keys to structured configs on purpose; runs still reject them
    from agents.train import run

    cfg = make_cfg("config", ["+agent.learning_rat=1e-3"])
    with pytest.raises(
        KeyError, match=r"agent\.learning_rat: not a key of PPOConfig.*Did you mean: learning_rate"
    ):
        run(cfg)
    assert not Path(cfg.run_dir).exists()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("total_timesteps=abc", "total_timesteps"),
        ("agent.n_steps=1.5", "agent.n_steps"),
        ("eval.deterministic=maybe", "eval.deterministic"),
        ("env.kwargs.action_mode=sideways", "env.kwargs.action_mode"),
        ("agent.policy_kwargs.activation_fn=swish", "agent.policy_kwargs.activation_fn"),
        ("env.kwargs.order_levels=many", "env.kwargs.order_levels"),
    ],
)
def test_wrong_type_fails_at_composition(make_cfg, override, key):
    with pytest.raises(ConfigCompositionException) as err:
        make_cfg("config", [override])
    assert key in _full_message(err.value)


def test_enum_errors_list_allowed_values(make_cfg):
    with pytest.raises(ConfigCompositionException) as err:
        make_cfg("config", ["env.kwargs.action_mode=sideways"])
    assert "continuous, discrete, quantity" in _full_message(err.value)


def test_unknown_preset_lists_available_options(make_cfg):
    with pytest.raises(Exception) as err:  # hydra's MissingConfigException
        make_cfg("config", ["agent=ppo2"])
    message = _full_message(err.value)
    assert "ppo2" in message and "ppo" in message and "base_stock" in message


def test_unknown_env_id_suggests_the_closest(make_cfg):
    from agents.train import run

    cfg = make_cfg("config", ["env.id=lepton/Inventry-v0"])
    with pytest.raises(gym.error.UnregisteredEnv, match="Did you mean: lepton/Inventory-v0"):
        run(cfg)
    assert not Path(cfg.run_dir).exists()  # failed before anything was written


def test_unknown_baseline_name_is_rejected_with_suggestion(make_cfg):
    config = as_config(make_cfg("config"), TrainConfig)
    venv = make_vec_env(config.env, 1)
    with pytest.raises(
        KeyError, match=r"baselines: unknown baseline 'base_stok'.*Did you mean: base_stock"
    ):
        baseline_names(venv, ["base_stok"])
    with pytest.raises(KeyError, match=r"agent: unknown baseline 'ss'"):
        make_baseline("ss", venv, seed=0, fit_seeds=[0])


def test_env_kwargs_are_plain_data(make_cfg):
    cfg = make_cfg("config", ["env.kwargs.scenario={preset: lost_sales, horizon: 12}"])
    kwargs = env_kwargs(as_config(cfg, TrainConfig).env)
    assert kwargs["action_mode"] == "continuous"
    assert kwargs["scenario"] == {"preset": "lost_sales", "horizon": 12}
    venv = make_vec_env(as_config(cfg, TrainConfig).env, 1, seed=0)
    assert venv.env.structure.horizon == 12
    assert venv.env.structure.backlog is False


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        (
            "env.kwargs.observation=nope",
            KeyError,
            r"env\.kwargs\.observation: unknown observation 'nope'; allowed values: \['default'",
        ),
        (
            "env.kwargs.scenario={preset: nope}",
            ValueError,
            r"env\.kwargs\.scenario.*nope",
        ),
        ("+env.kwargs.reward_weights={cost: 1}", KeyError, r"env\.kwargs\.reward_weights: "),
    ],
)
def test_a_bad_env_argument_names_its_config_field(make_cfg, override, error, message):
    config = as_config(make_cfg("config", [override]), TrainConfig)
    with pytest.raises(error, match=message):
        make_vec_env(config.env, 1)


@pytest.mark.parametrize(
    ("env", "preset"),
    [
        ("inventory_lost_sales", "lost_sales"),
        ("inventory_orgym", "orgym"),
        ("ops/autoscale_bursty", "bursty"),
    ],
)
def test_a_scenario_mapping_of_an_env_preset_starts_from_that_preset(make_cfg, env, preset):
    cfg = make_cfg("config", [f"env={env}", "env.kwargs.scenario={}"])
    venv = make_vec_env(as_config(cfg, TrainConfig).env, 1)
    assert venv.env.structure.name == preset


def test_a_registry_error_starts_with_the_field_it_was_given_as():
    with pytest.raises(KeyError, match=r"^.observation: unknown observation 'nope'"):
        InventoryEnv(observation="nope")


def test_seed_offset_must_separate_evaluation_from_training():
    with pytest.raises(ValueError, match="eval.seed_offset: must be >= max"):
        make_seeds(0, 16, EvalConfig(seed_offset=8, fit_episodes=4))
    seeds = make_seeds(5, 16, EvalConfig(seed_offset=100, fit_episodes=32, episodes=10))
    assert not set(seeds.eval) & (set(seeds.train) | set(seeds.fit))
    assert seeds.eval == tuple(range(105, 115))


def _full_message(exc: BaseException) -> str:
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


# --- reward weights from the command line ------------------------------------------------------

INVENTORY_PRESETS = [env for env in presets("env") if env.startswith("inventory")]


@pytest.mark.parametrize("env", INVENTORY_PRESETS)
@pytest.mark.parametrize(
    "override",
    [
        "env.kwargs.reward_weights={holding_cost: 2}",
        "+env.kwargs.reward_weights={holding_cost: 2}",
        "env.kwargs.reward_weights.holding_cost=2",
    ],
)
def test_inventory_reward_weights_merge_from_the_command_line(make_cfg, env, override):
    # a None default cannot take a merged mapping (OmegaConf's internal error at full_key
    # env.kwargs.reward_weights); the defaults are a mapping, so one term changes, the rest stay
    config = as_config(make_cfg("config", [f"env={env}", override]), TrainConfig)
    weights = env_kwargs(config.env)["reward_weights"]
    assert weights == {**InventoryEnv.default_reward_weights, "holding_cost": 2.0}
    venv = make_vec_env(config.env, 1, seed=0)
    assert venv.env.reward.weights["holding_cost"] == 2.0
    assert venv.env.reward.weights["revenue"] == 1.0
    venv.close()


def test_inventory_schema_reward_weights_are_the_envs_defaults():
    assert InventoryKwargs().reward_weights == dict(InventoryEnv.default_reward_weights)
    for env in INVENTORY_PRESETS:
        preset = OmegaConf.load(CONF / "env" / f"{env}.yaml")
        assert dict(preset.kwargs.reward_weights) == dict(InventoryEnv.default_reward_weights)


@pytest.mark.parametrize("env", [e for e in presets("env") if e != "traffic/sumo"])
def test_every_env_preset_takes_reward_weights_from_the_command_line(make_cfg, env):
    env_id = OmegaConf.load(CONF / "env" / f"{env}.yaml").id
    term = next(iter(env_class(env_id).default_reward_weights))
    cfg = make_cfg("config", [f"env={env}", f"env.kwargs.reward_weights={{{term}: 2}}"])
    assert env_kwargs(as_config(cfg, TrainConfig).env)["reward_weights"][term] == 2


def _schemas(node: type, seen: set[type]) -> set[type]:
    if node in seen or not dataclasses.is_dataclass(node):
        return seen
    seen.add(node)
    for hint in typing.get_type_hints(node).values():
        for arg in (hint, *typing.get_args(hint)):
            if isinstance(arg, type):
                _schemas(arg, seen)
    return seen


def test_no_schema_mapping_defaults_to_null():
    # OmegaConf cannot merge a mapping into a None node typed dict | None: every such field
    # would fail like env.kwargs.reward_weights did when set from the command line
    seen: set[type] = set()
    for node in [*ROOT_SCHEMAS.values(), *ENV_SCHEMAS.values(), *AGENT_SCHEMAS.values()]:
        _schemas(node, seen)
    traps = []
    for node in seen:
        hints = typing.get_type_hints(node)
        for field in dataclasses.fields(node):
            args = typing.get_args(hints[field.name])
            if type(None) in args and any(typing.get_origin(a) is dict for a in args):
                traps.append(f"{node.__name__}.{field.name}")
    assert not traps


# --- ranges checked where the run config is assembled ------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("total_timesteps=-5", "total_timesteps: must be >= 1, got -5"),
        ("agent.gamma=2", "agent.gamma: must be in [0, 1], got 2"),
        ("eval.curve_episodes=0", "eval.curve_episodes: must be >= 1, got 0"),
        ("eval.batch_size=0", "eval.batch_size: must be >= 1, got 0"),
        (
            "device=gpu",
            "device: must be auto, cpu, cuda, cuda:<index> (e.g. cuda:0) or mps, got 'gpu'",
        ),
        ("torch_threads=0", "torch_threads: must be >= 1, got 0"),
        ("seed=-1", "seed: must be in [0, 4294967295], got -1"),
        ("seed=4294967296", "seed: must be in [0, 4294967295], got 4294967296"),
        ("agent.n_steps=0", "agent.n_steps: must be >= 1, got 0"),
        ("agent.batch_size=0", "agent.batch_size: must be >= 1, got 0"),
        (
            "agent.batch_size=1",
            "agent.batch_size: must be >= 2 with agent.normalize_advantage=true, got 1",
        ),
        ("agent.learning_rate=-1", "agent.learning_rate: must be > 0, got -1"),
        ("agent.learning_rate=nan", "agent.learning_rate: must be > 0, got nan"),
        (
            "agent.policy_kwargs.net_arch=[64,0]",
            "agent.policy_kwargs.net_arch: every layer size must be >= 1, got [64, 0]",
        ),
        ("eval.eval_freq=-1", "eval.eval_freq: must be >= 0, got -1"),
        ("env.kwargs.order_levels=1", "env.kwargs.order_levels: must be >= 2, got 1"),
        ("agent=sac agent.tau=0", "agent.tau: must be in (0, 1], got 0"),
        (
            "agent=sac agent.ent_coef=auto_0",
            "agent.ent_coef: must be a number >= 0, 'auto' or 'auto_<initial value > 0>' "
            "(e.g. auto_0.1), got 'auto_0'",
        ),
        (
            "agent=dqn agent.gradient_steps=0",
            "agent.gradient_steps: must be >= 1, or -1 (one per env step), got 0",
        ),
        ("agent=dqn agent.exploration_fraction=0", "agent.exploration_fraction: must be in (0, 1]"),
        (
            "agent.policy=FooPolicy",
            "agent.policy: must be one of ['MlpPolicy', 'CnnPolicy', 'MultiInputPolicy'], "
            "got 'FooPolicy'",
        ),
    ],
)
def test_out_of_range_values_fail_naming_field_and_range(make_cfg, override, message):
    from agents.train import run

    cfg = make_cfg("config", override.split())
    with pytest.raises(ValueError) as err:
        as_config(cfg, TrainConfig)
    assert message in str(err.value)
    with pytest.raises(ValueError, match=re.escape(message)):
        run(cfg)
    assert not Path(cfg.run_dir).exists()  # failed before anything was written


def test_more_curve_episodes_than_evaluation_episodes_are_refused(make_cfg):
    from agents.train import run

    cfg = make_cfg("config", ["eval.episodes=8", "eval.curve_episodes=16"])
    with pytest.raises(ValueError) as err:
        run(cfg)
    message = str(err.value)
    assert message.startswith("eval.curve_episodes: must be <= eval.episodes, got ")
    assert "eval.curve_episodes=16 > eval.episodes=8" in message
    assert not Path(cfg.run_dir).exists()  # failed before anything was written
    assert check_curve_episodes(EvalConfig(episodes=8, curve_episodes=8)) == 8


@pytest.mark.parametrize("root", ["config", "tune", "transfer"])
def test_root_configs_take_their_curve_from_the_evaluation_episodes(make_cfg, root):
    ev = make_cfg(root, tiny=False).eval
    check_curve_episodes(EvalConfig(episodes=ev.episodes, curve_episodes=ev.curve_episodes))


@pytest.mark.parametrize(
    "saved", sorted((CONF.parent / "agents" / "pretrained").glob("*/config.yaml")), ids=str
)
def test_pretrained_runs_take_their_curve_from_the_evaluation_episodes(saved):
    ev = OmegaConf.load(saved).eval
    check_curve_episodes(EvalConfig(episodes=ev.episodes, curve_episodes=ev.curve_episodes))


def test_allowed_policies_are_those_of_every_sb3_algorithm():
    from agents.algorithms import ALGORITHMS
    from agents.config import SB3_POLICIES

    for algo, cls in ALGORITHMS.items():
        assert set(cls.policy_aliases) == set(SB3_POLICIES), algo


def test_every_out_of_range_field_is_named_at_once(make_cfg):
    cfg = make_cfg("config", ["agent.gamma=2", "eval.episodes=0", "device=tpu"])
    with pytest.raises(ValueError) as err:
        as_config(cfg, TrainConfig)
    assert sorted(str(err.value).split("; ")) == [
        "agent.gamma: must be in [0, 1], got 2",
        "device: must be auto, cpu, cuda, cuda:<index> (e.g. cuda:0) or mps, got 'tpu'",
        "eval.episodes: must be >= 1, got 0",
    ]


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_every_torch_device_form_is_accepted(make_cfg, device):
    assert as_config(make_cfg("config", [f"device={device}"]), TrainConfig).device == device


@pytest.mark.parametrize("root", ["evaluate", "render"])
def test_evaluation_roots_check_ranges_too(make_cfg, root):
    with pytest.raises(ValueError, match=r"eval\.batch_size: must be >= 1, got 0"):
        as_config(make_cfg(root, ["eval.batch_size=0"]), ROOTS[root])


# --- lepton-tune: range checks, the defaults trial, the preset hint -----------------------------


def _tune_cfg(make_cfg, tmp_path, *extra):
    return make_cfg(
        "tune",
        [
            f"tune.storage=sqlite:///{tmp_path / 'study.db'}",
            f"tune.preset_dir={tmp_path / 'agent'}",
            "tune.sampler_seed=0",
            *extra,
        ],
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tune.n_trials=0", "tune.n_trials: must be >= 1, got 0"),
        ("tune.timeout=0", "tune.timeout: must be > 0, got 0"),
        ("tune.sampler_seed=-1", "tune.sampler_seed: must be in [0, 4294967295], got -1"),
        ("tune.pruner.warmup_steps=-1", "tune.pruner.warmup_steps: must be >= 0, got -1"),
    ],
)
def test_tune_refuses_out_of_range_study_settings(make_cfg, tmp_path, override, message):
    from agents import tune

    cfg = _tune_cfg(make_cfg, tmp_path, override)
    with pytest.raises(ValueError, match=re.escape(message)):
        tune.run(cfg)
    assert not (tmp_path / "study.db").exists() and not (tmp_path / "agent").exists()


@pytest.fixture
def scored_trials(monkeypatch):
    """``agents.tune.train_and_score`` replaced: trial ``k`` scores ``k``, its agent kept."""
    from agents import tune

    agents = []

    def score(cfg, trial=None):
        agents.append(as_config(cfg, TuneConfig).agent)
        return float(len(agents)), []

    monkeypatch.setattr(tune, "train_and_score", score)
    return agents


def test_tune_defaults_trial_runs_the_presets_values_or_names_substitutes(
    make_cfg, tmp_path, scored_trials, capsys
):
    from agents import tune

    cfg = _tune_cfg(make_cfg, tmp_path, "tune.n_trials=2", "tune.preset=ppo_tuned_here")
    preset = as_config(cfg, TuneConfig).agent
    # the (shrunk) preset: n_epochs=2 lies below the int range [3, 10]; ent_coef=0.0 cannot lie
    # on the log range [1e-8, 1e-2]
    assert preset.n_epochs == 2 and preset.ent_coef == 0.0
    with pytest.warns(UserWarning, match="n_epochs with value 2 is out of range"):
        result = tune.run(cfg)
    first = scored_trials[0]
    for key in as_config(cfg, TuneConfig).search_space:
        if key != "ent_coef":  # everything else is the preset's own value, in range or not
            assert _field(first, key) == _field(preset, key), key
    assert first.ent_coef == 1e-8  # the log range's lower bound, reported as such
    assert result["default_substituted"] == {"ent_coef": (0.0, 1e-8)}
    note = "ent_coef=1e-08 in place of the preset's 0.0"
    assert note in capsys.readouterr().out
    header = (tmp_path / "agent" / "ppo_tuned_here.yaml").read_text()
    assert f"# the preset's own values scored 1.00 (with {note}" in header


def _field(agent, key):
    return functools.reduce(getattr, key.split("."), agent)


def test_tune_defaults_trial_without_substitutes_says_so(make_cfg, tmp_path, scored_trials):
    from agents import tune

    cfg = _tune_cfg(
        make_cfg, tmp_path, "tune.n_trials=1", "tune.preset=ppo_tuned_here", "agent.ent_coef=0.001"
    )
    with open_dict(cfg):  # a space that holds every default
        for key in [k for k in cfg.search_space if k != "ent_coef"]:
            del cfg.search_space[key]
    result = tune.run(cfg)
    assert result["default_substituted"] == {}
    assert scored_trials[0].ent_coef == 0.001
    header = (tmp_path / "agent" / "ppo_tuned_here.yaml").read_text()
    assert "# the preset's own values scored 1.00.\n" in header


def _compose_hint(usage: str) -> TrainConfig:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    match = re.search(r"`lepton-train ('hydra\.searchpath=\[[^\]]+\]' )?agent=(\S+)`", usage)
    assert match, usage
    overrides = [f"agent={match.group(2)}"]
    if match.group(1):
        overrides.insert(0, match.group(1).strip().strip("'"))
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    GlobalHydra.instance().clear()
    return as_config(cfg, TrainConfig)


@pytest.mark.filterwarnings("ignore:Fixed parameter n_epochs")  # the shrunk preset's n_epochs=2
@pytest.mark.parametrize("folder", ["agent", "presets"])
@pytest.mark.parametrize("name", ["ppo_tuned_here", "ppo_tuned_inventory"])  # new / packaged
def test_tune_hint_loads_the_preset_just_written(make_cfg, tmp_path, scored_trials, folder, name):
    from agents import tune

    cfg = _tune_cfg(
        make_cfg,
        tmp_path,
        "tune.n_trials=1",
        f"tune.preset={name}",
        f"tune.preset_dir={tmp_path / folder}",
        "agent.learning_rate=0.000123",  # tells the written preset from the packaged one
    )
    result = tune.run(cfg)
    assert result["preset"] == tmp_path / folder / f"{name}.yaml"
    usage = result["usage"]
    assert f"# {usage}\n" in result["preset"].read_text()
    copy = re.search(r"`(mkdir -p \S+ && cp \S+ \S+)`", usage)
    if folder == "agent" and name == "ppo_tuned_here":
        assert copy is None  # usable where it is
    else:
        assert copy is not None, usage
        subprocess.run(copy.group(1), shell=True, check=True)
    assert _compose_hint(usage).agent.learning_rate == 0.000123


def test_tune_hint_in_the_packaged_folder_is_the_plain_agent_override(make_cfg, tmp_path):
    from agents import tune

    config = as_config(make_cfg("tune", ["tune.preset=ppo_tuned_inventory"]), TuneConfig)
    assert tune.preset_usage(config) == "Use it with `lepton-train agent=ppo_tuned_inventory`."


@pytest.mark.filterwarnings("ignore:Fixed parameter n_epochs")
def test_tune_default_sampler_seed_fits_numpy(make_cfg, tmp_path, scored_trials):
    # seed * 100003 + pid exceeded 2**32 - 1 for seeds above ~42900: Optuna's sampler refused it
    from agents import tune

    cfg = _tune_cfg(make_cfg, tmp_path, "tune.n_trials=2", "seed=50000")
    with open_dict(cfg):
        cfg.tune.sampler_seed = None
    assert tune.run(cfg)["trials"] == 2


def test_sumo_preset_takes_a_list_of_route_files(make_cfg, tmp_path):
    overrides = [o for o in env_overrides("traffic/sumo") if not o.startswith("env.route_file=")]
    files = [str(tmp_path / "a.rou.xml"), str(tmp_path / "b.rou.xml")]
    config = as_config(
        make_cfg("config", [*overrides, f"env.route_file=[{','.join(files)}]"]), TrainConfig
    )
    assert (
        list(config.env.kwargs["scenario"]["route_file"]) == files
    )  # load_sumo reads them in order
