"""Unit tests of ``envs/core``: registries, action checks, rewards, scenario sources, adapters.

The adapters are exercised on a small batched random walk defined here, so these tests depend
on no scenario family.
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from envs.core.env import BatchRunner, LeptonEnv
from envs.core.features import ObservationBuilder, QuantityTerm, RewardFunction, RewardTerm
from envs.core.registry import Registry, suggest
from envs.core.sb3 import LeptonVecEnv
from envs.core.scenario import FixedScenario, ScenarioFamily, ScenarioList, as_source
from envs.core.sim import BatchedSim, Columns, Snapshot, StepResult, readonly
from envs.core.spaces import check_batch_actions

# --- a small batched core: a noisy random walk towards a goal --------------------------------


@dataclasses.dataclass(frozen=True)
class WalkScenario:
    """A walk on the integers towards 3; noise ``+-noise`` per step, random start if ``None``."""

    horizon: int = 6
    noise: int = 1
    start: int | None = None


@dataclasses.dataclass(frozen=True)
class WalkState(Snapshot):
    position: np.ndarray
    t: np.ndarray
    horizon: np.ndarray


class WalkSim(BatchedSim[WalkScenario, WalkState]):
    """Moves by ``action - 1`` plus noise drawn per replica from the replica's own generator."""

    def __init__(self, batch_size: int, scenario: WalkScenario) -> None:
        super().__init__(batch_size, scenario)
        self.position = np.zeros(batch_size, dtype=np.int64)
        self.t = np.zeros(batch_size, dtype=np.int64)
        self.horizon = np.zeros(batch_size, dtype=np.int64)

    def _reset(self, idx: np.ndarray) -> None:
        for i in idx:
            rng = self.rngs[i]
            assert rng is not None
            start = self.scenarios[i].start
            self.position[i] = rng.integers(-2, 3) if start is None else start
            self.horizon[i] = self.scenarios[i].horizon
        self.t[idx] = 0

    def step(self, actions: np.ndarray) -> StepResult:
        noise = np.array(
            [
                r.integers(-s.noise, s.noise + 1)
                for r, s in zip(self.rngs, self.scenarios, strict=True)
            ]  # type: ignore[union-attr]
        )
        before = np.abs(self.position - 3)
        self.position = self.position + (np.asarray(actions) - 1) + noise
        self.t += 1
        return StepResult(
            quantities={
                "progress": (before - np.abs(self.position - 3)).astype(float),
                "effort": np.abs(np.asarray(actions) - 1).astype(float),
            },
            metrics={"position": self.position.copy(), "t": self.t.copy()},
            terminated=self.position == 3,
            truncated=self.t >= self.horizon,
        )

    def check_compatible(self, scenario: WalkScenario) -> None:
        if scenario.horizon > self.structure.horizon:
            raise ValueError(
                f"horizon {scenario.horizon} > the structure's {self.structure.horizon}"
            )

    def snapshot(self) -> WalkState:
        return WalkState(self.position.copy(), self.t.copy(), self.horizon.copy())


class BufferedWalkSim(WalkSim):
    """:class:`WalkSim` handing out the same metric and flag buffers at every step."""

    def __init__(self, batch_size: int, scenario: WalkScenario) -> None:
        super().__init__(batch_size, scenario)
        self.table = np.zeros((batch_size, 2))
        self.flags = np.zeros((2, batch_size), dtype=bool)

    def step(self, actions: np.ndarray) -> StepResult:
        result = super().step(actions)
        self.table[:, 0] = result.metrics["position"]
        self.table[:, 1] = result.metrics["t"]
        self.flags[0] = result.terminated
        self.flags[1] = result.truncated
        return StepResult(
            result.quantities, Columns(("position", "t"), self.table), self.flags[0], self.flags[1]
        )


WALK_OBS: Registry[type[ObservationBuilder]] = Registry("observation")
WALK_REWARDS: Registry[RewardTerm] = Registry("reward term")


@WALK_OBS.register("default")
class WalkObservation(ObservationBuilder):
    @property
    def space(self) -> spaces.Box:
        return spaces.Box(-1e6, 1e6, shape=(2,), dtype=np.float32)

    def encode(self, snapshot: WalkState) -> np.ndarray:  # type: ignore[override]
        return np.stack([snapshot.position, snapshot.t], axis=1).astype(np.float32)


WALK_REWARDS.register("progress", lambda r: r.quantities["progress"])
WALK_REWARDS.register("effort", lambda r: -r.quantities["effort"])
WALK_REWARDS.register("alive", lambda r: np.ones_like(r.quantities["effort"]))


def coerce_walk(obj: Any) -> WalkScenario:
    if obj is None:
        return WalkScenario()
    if isinstance(obj, WalkScenario):
        return obj
    if isinstance(obj, dict):
        return WalkScenario(**obj)
    raise TypeError(f"scenario: expected WalkScenario, got {type(obj).__name__}")


class WalkEnv(LeptonEnv):
    """Random walk used to test the adapters (rendering is not supported)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}
    observation_builders = WALK_OBS
    reward_terms = WALK_REWARDS
    default_reward_weights: ClassVar[dict[str, float]] = {"progress": 1.0, "effort": 0.1}
    scenario_type = WalkScenario

    def coerce_scenario(self, obj: Any) -> WalkScenario:
        return coerce_walk(obj)

    def make_sim(self, batch_size: int) -> WalkSim:
        return WalkSim(batch_size, self.structure)

    def make_action_space(self) -> spaces.Discrete:
        return spaces.Discrete(3)


def make_vector(num_envs: int, **kwargs: Any) -> Any:
    from envs.core.vector import LeptonVectorEnv

    class WalkVectorEnv(LeptonVectorEnv):
        env_cls = WalkEnv

    return WalkVectorEnv(num_envs=num_envs, **kwargs)


# --- Registry --------------------------------------------------------------------------------


def test_registry_register_get_and_listing():
    reg: Registry[int] = Registry("widget")
    reg.register("b", 2)

    @reg.register("a")  # type: ignore[arg-type]
    def a() -> int:
        return 1

    assert reg.get("a") is a and reg.get("b") == 2
    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"]
    assert "a" in reg and "c" not in reg
    reg.register("b", 2)  # the same object again is a no-op
    assert reg.names() == ["a", "b"]


def test_registry_duplicate_name_raises():
    reg: Registry[object] = Registry("observation")
    reg.register("default", object())
    with pytest.raises(ValueError, match="observation 'default' is already registered"):
        reg.register("default", object())


def test_registry_unknown_name_lists_allowed_values_and_suggests():
    reg: Registry[int] = Registry("reward term")
    for i, name in enumerate(["holding_cost", "shortage_cost", "revenue"]):
        reg.register(name, i)
    with pytest.raises(KeyError) as err:
        reg.get("holdng_cost")
    message = str(err.value)
    assert "unknown reward term 'holdng_cost'" in message
    assert "['holding_cost', 'revenue', 'shortage_cost']" in message
    assert "Did you mean: holding_cost" in message


def test_suggest():
    assert suggest("revenu", ["revenue", "cost"]) == " Did you mean: revenue?"
    assert suggest("zzz", ["revenue", "cost"]) == ""


# --- check_batch_actions ---------------------------------------------------------------------


def test_discrete_actions():
    space = spaces.Discrete(3)
    out = check_batch_actions(space, np.array([0, 2, 1]), 3)
    np.testing.assert_array_equal(out, [0, 2, 1])
    np.testing.assert_array_equal(check_batch_actions(space, np.array([2.0]), 1), [2])
    assert check_batch_actions(space, np.array([2.0]), 1).dtype == np.int64
    with pytest.raises(ValueError, match=r"replica 1.*allowed values are integers 0\.\.2"):
        check_batch_actions(space, np.array([0, 3]), 2)
    with pytest.raises(ValueError, match="must be an integer"):
        check_batch_actions(space, np.array([1.5]), 1)
    with pytest.raises(ValueError, match=r"shape \(2,\), expected a single integer"):
        check_batch_actions(space, np.array([[0, 1]]), 1)
    shifted = spaces.Discrete(3, start=-1)
    np.testing.assert_array_equal(check_batch_actions(shifted, np.array([-1, 1]), 2), [-1, 1])
    with pytest.raises(ValueError, match=r"integers -1\.\.1"):
        check_batch_actions(shifted, np.array([2]), 1)


def test_multidiscrete_actions():
    space = spaces.MultiDiscrete([3, 5])
    ok = check_batch_actions(space, np.array([[2, 4], [0, 0]]), 2)
    assert ok.shape == (2, 2) and ok.dtype == np.int64
    with pytest.raises(ValueError, match=r"replica 1.*nvec=\[3, 5\]"):
        check_batch_actions(space, np.array([[0, 0], [3, 0]]), 2)
    with pytest.raises(ValueError, match="outside the action space"):
        check_batch_actions(space, np.array([[0.5, 1.0]]), 1)
    with pytest.raises(ValueError, match=r"expected \(2,\)"):
        check_batch_actions(space, np.array([1, 2, 3]), 1)


def test_box_actions():
    space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    np.testing.assert_array_equal(check_batch_actions(space, np.array([0.5, -1.0]), 1), [[0.5, -1]])
    with pytest.raises(ValueError, match=r"replica 2.*allowed range is low=\[-1\.0, -1\.0\]"):
        check_batch_actions(space, np.array([[0, 0], [1, 1], [1.5, 0]]), 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        check_batch_actions(space, np.array([np.nan, 0.0]), 1)
    with pytest.raises(ValueError, match=r"has shape \(3,\), expected \(2,\)"):
        check_batch_actions(space, np.array([0.0, 0.0, 0.0]), 1)


def test_multibinary_and_unsupported_actions():
    space = spaces.MultiBinary(3)
    assert check_batch_actions(space, np.array([1, 0, 1]), 1).dtype == np.int8
    with pytest.raises(ValueError, match="0/1 entries"):
        check_batch_actions(space, np.array([1, 2, 0]), 1)
    with pytest.raises(TypeError, match="unsupported action space"):
        check_batch_actions(spaces.Dict({"a": spaces.Discrete(2)}), np.array([0]), 1)


# --- RewardFunction --------------------------------------------------------------------------


def walk_result(progress: list[float], effort: list[float]) -> StepResult:
    n = len(progress)
    return StepResult(
        quantities={"progress": np.array(progress), "effort": np.array(effort)},
        metrics={},
        terminated=np.zeros(n, dtype=bool),
        truncated=np.zeros(n, dtype=bool),
    )


def test_reward_unknown_term_names_the_allowed_ones():
    with pytest.raises(KeyError) as err:
        RewardFunction(WALK_REWARDS, {"progres": 1.0})
    message = str(err.value)
    assert "reward_weights: unknown reward term 'progres'" in message
    assert "['alive', 'effort', 'progress']" in message
    assert "Did you mean: progress" in message


def test_reward_weights_must_be_finite_numbers():
    with pytest.raises(ValueError, match=r"reward_weights\.effort: weight must be finite"):
        RewardFunction(WALK_REWARDS, {"effort": float("nan")})
    with pytest.raises(ValueError, match=r"reward_weights\.effort: weight must be a number"):
        RewardFunction(WALK_REWARDS, {"effort": "x"})


def test_quantity_terms_over_columns_match_the_mapping_path():
    registry: Registry[RewardTerm] = Registry("reward term")
    registry.register("gain", QuantityTerm("gain"))
    registry.register("cost", QuantityTerm("cost", -1.0))
    fn = RewardFunction(registry, {"cost": 0.3, "gain": 2.0})
    values = np.random.default_rng(0).normal(size=(5, 3))
    names = ("cost", "other", "gain")
    columns = Columns(names, values)
    assert list(columns) == list(names) and len(columns) == 3 and "gain" in columns
    np.testing.assert_array_equal(columns["gain"], values[:, 2])
    assert columns.row(1) == {n: float(v) for n, v in zip(names, values[1], strict=True)}
    fast = fn.terms(StepResult(columns, {}, np.zeros(5, bool), np.zeros(5, bool)))
    plain = fn.terms(StepResult(dict(columns), {}, np.zeros(5, bool), np.zeros(5, bool)))
    assert isinstance(fast, Columns) and not isinstance(plain, Columns)
    for name in ("gain", "cost"):
        np.testing.assert_array_equal(fast[name], plain[name])
    np.testing.assert_array_equal(fn.total(fast), fn.total(plain))
    assert pickle.loads(pickle.dumps(registry.get("cost"))).sign == -1.0


def test_reward_is_the_weighted_sum_and_every_term_is_reported():
    fn = RewardFunction(WALK_REWARDS, {"progress": 2.0, "effort": 0.5, "alive": 0.0})
    terms = fn.terms(walk_result([1.0, -1.0], [0.0, 1.0]))
    assert set(terms) == {"progress", "effort", "alive"}  # zero weight still reported
    np.testing.assert_array_equal(terms["alive"], [1.0, 1.0])
    np.testing.assert_allclose(fn.total(terms), [2.0, -2.5])
    nothing = RewardFunction(WALK_REWARDS, {"alive": 0.0})
    np.testing.assert_array_equal(nothing.total(terms), [0.0, 0.0])


def test_env_info_reports_zero_weight_terms():
    env = WalkEnv(reward_weights={"effort": 0.0})
    env.reset(seed=0)
    _, reward, _, _, info = env.step(2)
    assert set(info["reward_terms"]) == {"progress", "effort", "alive"}
    assert info["reward_terms"]["effort"] == -1.0
    assert reward == pytest.approx(info["reward_terms"]["progress"])


# --- scenario sources ------------------------------------------------------------------------


def test_fixed_scenario_draws_nothing():
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    source = FixedScenario(WalkScenario(horizon=4))
    assert source.sample(rng) is source.structure
    assert rng.bit_generator.state == state


def test_scenario_list_is_deterministic_given_the_generator():
    scenarios = [WalkScenario(horizon=h) for h in (3, 4, 5, 6)]
    source = ScenarioList(scenarios)
    draw = [source.sample(np.random.default_rng(42)).horizon for _ in range(3)]
    assert len(set(draw)) == 1
    a = [source.sample(r).horizon for r in [np.random.default_rng(1)] for _ in range(20)]
    rng = np.random.default_rng(1)
    b = [source.sample(rng).horizon for _ in range(20)]
    assert a == b and len(set(a)) > 1
    assert source.structure is scenarios[0]
    only_last = ScenarioList(scenarios, weights=[0, 0, 0, 1])
    rng = np.random.default_rng(0)
    assert {only_last.sample(rng).horizon for _ in range(20)} == {6}


def test_scenario_list_validation():
    with pytest.raises(ValueError, match="at least one scenario"):
        ScenarioList([])
    for weights in ([1.0], [-1.0, 2.0], [0.0, 0.0]):
        with pytest.raises(ValueError, match="weights"):
            ScenarioList([WalkScenario(), WalkScenario(horizon=3)], weights=weights)


def test_as_source():
    assert isinstance(as_source(None, coerce_walk, WalkScenario), FixedScenario)
    listed = as_source([None, {"horizon": 3}], coerce_walk, WalkScenario)
    assert isinstance(listed, ScenarioList) and listed.scenarios[1].horizon == 3
    family = ScenarioFamily(
        WalkScenario(), lambda rng: WalkScenario(horizon=int(rng.integers(2, 9)))
    )
    assert as_source(family, coerce_walk, WalkScenario) is family
    h = family.sample(np.random.default_rng(3)).horizon
    assert h == family.sample(np.random.default_rng(3)).horizon
    with pytest.raises(TypeError, match="scenario: expected WalkScenario"):
        as_source(3.0, coerce_walk, WalkScenario)


# --- the batched core contract ---------------------------------------------------------------


def test_batched_sim_reset_validation():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        WalkSim(0, WalkScenario())
    sim = WalkSim(2, WalkScenario())
    with pytest.raises(ValueError, match=r"mask must have shape \(2,\)"):
        sim.reset(np.ones(3, dtype=bool), [None] * 3, [None] * 3)
    with pytest.raises(ValueError, match="replica 1 is reset without a random generator"):
        sim.reset(np.array([False, True]), [None, None], [None, None])


def test_snapshot_replica_keeps_a_batch_axis_of_one():
    sim = WalkSim(3, WalkScenario())
    rngs = [np.random.default_rng(i) for i in range(3)]
    sim.reset(np.ones(3, dtype=bool), rngs, [None] * 3)
    snap = sim.snapshot()
    one = snap.replica(2)
    assert one.position.shape == (1,)
    assert one.position[0] == snap.position[2]
    view = readonly(snap.position)
    with pytest.raises(ValueError):
        view[0] = 5


def test_env_contract_errors():
    with pytest.raises(ValueError, match=r"render_mode: 'human' is not supported.*\['rgb_array'\]"):
        WalkEnv(render_mode="human")
    env = WalkEnv()
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(3)


def test_env_pickles_with_lambda_reward_terms():
    env = WalkEnv()
    env.reset(seed=4)
    env.step(2)
    clone = pickle.loads(pickle.dumps(env))
    for action in (0, 1, 2, 2):
        a, b = env.step(action), clone.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4] and a[4] == b[4]


# --- the native vector env -------------------------------------------------------------------


def test_vector_env_metadata_and_spaces():
    venv = make_vector(3)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert venv.single_action_space == spaces.Discrete(3)
    assert venv.action_space == spaces.MultiDiscrete([3, 3, 3])
    assert venv.observation_space.shape == (3, 2)


def test_vector_env_reset_seed_list_must_match_num_envs():
    venv = make_vector(4)
    with pytest.raises(ValueError, match="seed: expected 4 seeds, got 2"):
        venv.reset(seed=[1, 2])
    obs, _ = venv.reset(seed=[10, 11, 12, 13])
    for i, s in enumerate([10, 11, 12, 13]):
        single, _ = WalkEnv().reset(seed=s)
        np.testing.assert_array_equal(obs[i], single)


def test_vector_env_info_layout_at_episode_ends():
    venv = make_vector(3)
    obs, _ = venv.reset(seed=0)
    singles = [WalkEnv() for _ in range(3)]
    for i, env in enumerate(singles):
        np.testing.assert_array_equal(env.reset(seed=i)[0], obs[i])
    ended = 0
    for t in range(12):
        actions = np.array([2, 1, 0])
        obs, rewards, terminated, truncated, infos = venv.step(actions)
        done = terminated | truncated
        np.testing.assert_array_equal(infos["_position"], [True, True, True])
        assert set(infos["reward_terms"]) == {"progress", "effort", "alive"}
        if done.any():
            ended += int(done.sum())
            np.testing.assert_array_equal(infos["_final_obs"], done)
            np.testing.assert_array_equal(infos["_final_info"], done)
        else:
            assert "final_obs" not in infos and "final_info" not in infos
        for i, env in enumerate(singles):
            o, r, te, tr, info = env.step(int(actions[i]))
            assert r == rewards[i] and te == terminated[i] and tr == truncated[i]
            assert info["position"] == infos["position"][i]
            if te or tr:
                np.testing.assert_array_equal(infos["final_obs"][i], o)
                assert infos["final_info"]["position"][i] == info["position"]
                o, _ = env.reset()
            np.testing.assert_array_equal(obs[i], o, err_msg=f"replica {i} step {t}")
    assert ended >= 3


def test_vector_env_arrays_are_not_written_by_later_steps():
    class BufferedWalkEnv(WalkEnv):
        def make_sim(self, batch_size: int) -> WalkSim:
            return BufferedWalkSim(batch_size, self.structure)

    from envs.core.vector import LeptonVectorEnv

    class BufferedVectorEnv(LeptonVectorEnv):
        env_cls = BufferedWalkEnv

    venv = BufferedVectorEnv(num_envs=2, scenario={"horizon": 3, "noise": 0, "start": 0})
    venv.reset(seed=0)
    kept = [venv.step(np.array([1, 1])) for _ in range(4)]
    expected_t = [1.0, 2.0, 3.0, 1.0]
    for k, (_, _, terminated, truncated, infos) in enumerate(kept):
        np.testing.assert_array_equal(infos["t"], [expected_t[k]] * 2, err_msg=f"step {k}")
        assert not terminated.any()
        assert truncated.all() == (k == 2), f"step {k}"
    np.testing.assert_array_equal(kept[2][4]["final_info"]["t"], [3.0, 3.0])


def test_vector_envs_refuse_a_step_before_reset():
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        make_vector(2).step(np.array([1, 1]))
    venv = LeptonVecEnv(WalkEnv(), 2)
    venv.step_async(np.array([1, 1]))
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        venv.step_wait()


def test_vector_env_reset_scenario_option_starts_these_episodes_only():
    venv = make_vector(2, scenario={"horizon": 6, "noise": 0, "start": 0})
    venv.reset(seed=0, options={"scenario": {"horizon": 2, "noise": 0, "start": 0}})
    assert venv.runner.sim.scenarios == [WalkScenario(horizon=2, noise=0, start=0)] * 2
    for _ in range(2):
        *_, truncated, _ = venv.step(np.array([1, 1]))
    assert truncated.all()  # the forced horizon; the next episodes draw from the source
    assert venv.runner.sim.scenarios == [WalkScenario(horizon=6, noise=0, start=0)] * 2
    with pytest.raises(ValueError, match="horizon 9"):
        venv.reset(options={"scenario": {"horizon": 9}})


def test_scenario_list_items_are_checked_when_the_core_is_built():
    scenarios = [{"horizon": 6}, {"horizon": 4}, {"horizon": 9}]
    with pytest.raises(ValueError, match=r"scenario\[2\]: horizon 9"):
        make_vector(2, scenario=scenarios)
    env = WalkEnv(scenario=scenarios)
    with pytest.raises(ValueError, match=r"scenario\[2\]: horizon 9"):
        env.reset(seed=0)  # whatever the seed: not only when the misfit is drawn
    assert WalkEnv(scenario=scenarios[:2]).reset(seed=0)[0].shape == (2,)


def test_vector_env_reset_mask_resets_only_the_masked_replicas():
    venv = make_vector(2)
    venv.reset(seed=0)
    for _ in range(2):
        obs, *_ = venv.step(np.array([1, 1]))
    after, _ = venv.reset(options={"reset_mask": np.array([True, False])})
    assert after[0, 1] == 0.0  # t of a fresh episode
    np.testing.assert_array_equal(after[1], obs[1])


def test_time_limit_and_termination_on_the_same_step_match_gymnasium():
    """A replica that terminates on its last allowed step reports both flags, like TimeLimit."""
    kwargs = {"scenario": WalkScenario(horizon=100, noise=0, start=0)}
    env = gym.wrappers.TimeLimit(WalkEnv(**kwargs), max_episode_steps=3)
    venv = make_vector(1, max_episode_steps=3, **kwargs)
    env.reset(seed=0)
    venv.reset(seed=0)
    for _ in range(3):  # +1 per step from 0: the goal 3 is reached on the third step
        single = env.step(2)
        vec = venv.step(np.array([2]))
    assert single[2] and single[3], "TimeLimit reports termination and truncation together"
    assert bool(vec[2][0]) == single[2]
    assert bool(vec[3][0]) == single[3]


def test_sb3_vec_env_terminal_observation_and_seeding():
    venv = LeptonVecEnv(WalkEnv(), 2, max_episode_steps=None)
    venv.seed(5)
    obs = venv.reset()
    for i in range(2):
        np.testing.assert_array_equal(obs[i], WalkEnv().reset(seed=5 + i)[0])
    seen = 0
    for _ in range(10):
        venv.step_async(np.array([2, 0]))
        obs, rewards, dones, infos = venv.step_wait()
        assert rewards.dtype == np.float32
        for i, done in enumerate(dones):
            if done:
                seen += 1
                assert infos[i]["terminal_observation"].shape == (2,)
                assert "TimeLimit.truncated" in infos[i]
            else:
                assert "terminal_observation" not in infos[i]
    assert seen >= 2


def test_batch_runner_replica_equals_single_env():
    env = WalkEnv()
    runner = BatchRunner(env, 3, autoreset=False)
    runner.seed([7, 8, 9])
    obs = runner.reset()
    for i, s in enumerate([7, 8, 9]):
        np.testing.assert_array_equal(obs[i], WalkEnv().reset(seed=s)[0])


@WALK_OBS.register("misfit")
class MisfitObservation(WalkObservation):
    @property
    def space(self) -> spaces.Box:
        return spaces.Box(-np.inf, np.inf, (3,), np.float32)


def test_an_observation_builder_whose_encode_misses_its_space_is_named_at_reset():
    env = WalkEnv(observation="misfit")
    with pytest.raises(ValueError, match=r"observation: builder 'misfit' \(MisfitObservation\)"):
        env.reset(seed=0)
    with pytest.raises(ValueError, match=r"encodes 4 replicas as shape \(4, 2\).*needs \(4, 3\)"):
        LeptonVecEnv(WalkEnv(observation="misfit"), 4).reset()
