"""Every config preset composes and instantiates; mistakes fail at composition, naming the key."""

import functools
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from agents.algorithms import IncompatibleAgentError, agents_that_fit, build_model
from agents.config import as_config, env_kwargs, make_seeds
from agents.envs import make_training_env, make_vec_env
from agents.policies import baseline_names, make_baseline
from conf.schema import (
    BaselineAgentConfig,
    EvalConfig,
    EvaluateConfig,
    InventoryActionMode,
    RenderConfig,
    SB3AgentConfig,
    TrainConfig,
)
from envs.core.baselines import baseline_registry
from envs.ops.inventory.env import ACTION_MODES
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
