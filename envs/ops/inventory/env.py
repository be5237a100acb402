"""Gymnasium adapters of the serial supply chain."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from envs.core.env import LeptonEnv
from envs.core.features import ObservationBuilder, RewardTerm
from envs.core.registry import Registry
from envs.core.scenario import ScenarioList
from envs.core.vector import LeptonVectorEnv
from envs.ops.inventory.scenario import PRESETS, InventoryScenario, make_scenario
from envs.ops.inventory.sim import InventorySim, InventoryState

OBSERVATIONS: Registry[type[ObservationBuilder]] = Registry("observation")


def stock_bound(scenario: InventoryScenario) -> float:
    """An upper bound on any stock, order or backlog quantity over one episode, units.

    Orders are at most the capacity per period; backlog at most the episode's demand, bounded
    per period by the largest series value or by the mean plus ten standard deviations.
    """
    d = scenario.demand
    if d.kind == "series":
        per_period = max(d.series[: scenario.horizon], default=0.0)
    else:
        peak = d.mean * (1.0 + (d.amplitude if d.kind == "seasonal" else 0.0))
        spread = d.std if d.kind == "normal" else float(np.sqrt(peak))
        per_period = peak + 10.0 * spread + 10.0
    total_in = scenario.horizon * (max(scenario.capacities) + per_period)
    return float(sum(scenario.initial_inventory) + total_in)


REWARDS: Registry[RewardTerm] = Registry("reward term")
ACTION_MODES = ("continuous", "discrete", "quantity")


class StockObservation(ObservationBuilder):
    """An observation of stock quantities, bounded by :func:`stock_bound`.

    Attributes:
        bound: the largest stock quantity of any scenario the env draws, units: that of the
            structure scenario, raised by :meth:`cover` to every scenario of a list.
    """

    def __init__(self, structure: InventoryScenario) -> None:
        super().__init__(structure)
        self.bound = stock_bound(structure)

    def cover(self, scenarios: Iterable[InventoryScenario]) -> None:
        """Raise :attr:`bound` so that the space holds the observations of every scenario."""
        self.bound = max([self.bound, *(stock_bound(s) for s in scenarios)])


@OBSERVATIONS.register("default")
class ScaledObservation(StockObservation):
    """On hand, owed units, pipeline by arrival period and time left, scaled by capacity.

    Layout (``N`` stages, ``W = max lead time + 1``): ``on_hand[N]``, ``owed[N + 1]``,
    ``pipeline[N * W]`` (stage-major), ``periods_left / horizon``; stock quantities are divided
    by the largest capacity of the structure scenario, so typical values lie in [0, a few].
    """

    def __init__(self, structure: InventoryScenario) -> None:
        super().__init__(structure)
        n = structure.num_stages
        self.width = int(max(structure.lead_times)) + 1
        self.scale = float(max(structure.capacities))
        self.size = n + (n + 1) + n * self.width + 1

    @property
    def space(self) -> spaces.Box:
        high = np.full(self.size, self.bound / self.scale, dtype=np.float32)
        high[-1] = 1.0
        return spaces.Box(low=0.0, high=high, shape=(self.size,), dtype=np.float32)

    def encode(self, snapshot: InventoryState) -> np.ndarray:  # type: ignore[override]
        b = snapshot.on_hand.shape[0]
        left = (snapshot.horizon - snapshot.t) / np.maximum(snapshot.horizon, 1)
        out = np.concatenate(
            [
                snapshot.on_hand / self.scale,
                snapshot.owed / self.scale,
                snapshot.pipeline.reshape(b, -1) / self.scale,
                left[:, None],
            ],
            axis=1,
        )
        return out.astype(np.float32)


@OBSERVATIONS.register("orgym")
class ORGymObservation(StockObservation):
    """OR-Gym ``InvManagement``'s state: on hand, then the last ``L_max`` raw orders (unscaled)."""

    def __init__(self, structure: InventoryScenario) -> None:
        super().__init__(structure)
        n = structure.num_stages
        self.size = n * (int(max(structure.lead_times)) + 1)

    @property
    def space(self) -> spaces.Box:
        return spaces.Box(0.0, self.bound, shape=(self.size,), dtype=np.float32)

    def encode(self, snapshot: InventoryState) -> np.ndarray:  # type: ignore[override]
        b = snapshot.on_hand.shape[0]
        out = np.concatenate([snapshot.on_hand, snapshot.action_log.reshape(b, -1)], axis=1)
        return out.astype(np.float32)


def _term(name: str, sign: float) -> RewardTerm:
    def term(result: Any) -> np.ndarray:
        return sign * result.quantities[name]

    term.__name__ = f"{name}_term"
    return term


REWARDS.register("revenue", _term("revenue", 1.0))
REWARDS.register("procurement_cost", _term("procurement_cost", -1.0))
REWARDS.register("shortage_cost", _term("shortage_cost", -1.0))
REWARDS.register("holding_cost", _term("holding_cost", -1.0))


class InventoryEnv(LeptonEnv):
    """Serial multi-echelon supply chain under stochastic customer demand.

    ## Description
    A chain of ``N`` stocking stages (stage 0 is the retailer) fed by an unlimited raw-material
    supplier. Every period each stage orders from the stage above; shipments are capped by the
    supplier's capacity and stock and arrive after the stage's lead time; customer demand hits
    the retailer. Unmet demand and unfilled orders are backlogged (or lost, with
    ``backlog=False``) at a shortage cost; stock on hand pays a holding cost. The dynamics and
    accounting follow OR-Gym's ``InvManagement`` (Hubbs et al., 2020), so the ``orgym`` preset
    gives directly comparable returns.

    ## Action Space
    One order quantity per stocking stage, ``N`` values, in one of three ``action_mode`` s:

    | mode         | space                               | order of stage ``i``                 |
    |--------------|-------------------------------------|--------------------------------------|
    | `continuous` | `Box(-1, 1, (N,), float32)`         | ``round((a_i + 1) / 2 * capacity_i)``|
    | `discrete`   | `MultiDiscrete([levels] * N)`       | ``round(a_i / (levels - 1) * cap_i)``|
    | `quantity`   | `Box(0, capacities, (N,), float32)` | ``floor(a_i)`` (OR-Gym's action)     |

    ## Observation Space
    Selected by ``observation``:

    | name      | shape                   | content                                              |
    |-----------|-------------------------|------------------------------------------------------|
    | `default` | `(N + N+1 + N*W + 1,)`  | on hand, owed, pipeline by arrival period, time left |
    | `orgym`   | `(N * W,)`              | on hand and the last ``W - 1`` raw orders (OR-Gym)   |

    ``W`` is the largest lead time plus one; ``default`` divides stock by the largest capacity.
    The bounds cover every scenario of a list, not only the first (whose shapes they take).

    ## Rewards
    The weighted sum of the terms ``revenue``, ``procurement_cost``, ``shortage_cost`` and
    ``holding_cost`` (each discounted by ``discount ** t``; default weights 1). With all weights
    1 the reward is the chain's period profit, OR-Gym's reward. Every term is in
    ``info["reward_terms"]``.

    ## Starting State
    On-hand stock at ``initial_inventory``, nothing in transit, no backlog. The demand of the
    whole episode is drawn at reset from the episode's generator.

    ## Episode End
    - Termination: after ``horizon`` periods (the time left is part of the ``default``
      observation, so the finite-horizon problem stays Markov).
    - Truncation: only through ``max_episode_steps`` when one is given.

    ## Info
    ``profit`` (period, undiscounted), ``episode_profit``, ``fill_rate`` (share of demand met
    from stock on arrival, episode to date), ``service_level`` (share of periods without a
    stock-out), ``on_hand``, ``in_transit``, ``backlog``, ``lost_sales``, ``demand``, ``sales``,
    ``reward_terms``.

    ## Arguments
    ```python
    >>> import gymnasium as gym
    >>> import envs
    >>> env = gym.make("lepton/Inventory-v0", scenario="orgym", action_mode="quantity")
    >>> env.unwrapped.structure.lead_times
    (3, 5, 10)

    ```

    | parameter        | default        | meaning                                                  |
    |------------------|----------------|----------------------------------------------------------|
    | `scenario`       | `preset`       | preset name, mapping of fields, scenario, list or source |
    | `preset`         | `"serial4"`    | preset of a mapping without ``preset`` (and of ``None``) |
    | `observation`    | `"default"`    | observation builder (`default`, `orgym`)                 |
    | `action_mode`    | `"continuous"` | `continuous`, `discrete` or `quantity`                   |
    | `order_levels`   | `11`           | levels per stage in `discrete` mode                      |
    | `reward_weights` | all 1          | weight per reward term                                   |
    | `render_mode`    | `None`         | `human` or `rgb_array`                                   |

    Presets: `serial4` (OR-Gym's chain, undiscounted), `orgym` (OR-Gym InvManagement-v0 exactly,
    discount 0.97), `orgym_lost_sales` (InvManagement-v1), `lost_sales`, `seasonal`, `two_stage`.
    A registered variant passes its own ``preset`` (``lepton/InventoryORGym-v0``: `orgym`), so a
    mapping such as ``scenario={"horizon": 20}`` changes that variant's scenario.

    ## Version History
    - v0: initial release.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 4}  # noqa: RUF012
    observation_builders = OBSERVATIONS
    reward_terms = REWARDS
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        "revenue": 1.0,
        "procurement_cost": 1.0,
        "shortage_cost": 1.0,
        "holding_cost": 1.0,
    }
    scenario_type = InventoryScenario
    renderer = "envs.ops.inventory.render:InventoryRenderer"
    baselines = "envs.ops.inventory.baselines:BASELINES"
    reference_baseline = "base_stock"

    def __init__(
        self,
        scenario: Any = None,
        *,
        preset: str = "serial4",
        observation: str = "default",
        action_mode: str = "continuous",
        order_levels: int = 11,
        reward_weights: Mapping[str, float] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if action_mode not in ACTION_MODES:
            raise ValueError(
                f"action_mode: {action_mode!r} is not allowed; allowed: {ACTION_MODES}"
            )
        if (
            isinstance(order_levels, bool)
            or not isinstance(order_levels, int | np.integer)
            or order_levels < 2
        ):
            raise ValueError(f"order_levels: must be an integer >= 2, got {order_levels!r}")
        if preset not in PRESETS:
            raise ValueError(
                f"preset: unknown preset {preset!r}; allowed values: {sorted(PRESETS)}"
            )
        self.action_mode = action_mode
        self.order_levels = int(order_levels)
        self.preset = preset
        super().__init__(
            scenario,
            observation=observation,
            reward_weights=reward_weights,
            render_mode=render_mode,
        )
        builder = self.observation_builder
        if isinstance(self.source, ScenarioList) and isinstance(builder, StockObservation):
            # the structure is the list's first scenario: bound the others' stock too
            builder.cover(self.source.scenarios)
            self.observation_space = builder.space
        self._caps = np.asarray(self.structure.capacities, dtype=np.float64)

    def coerce_scenario(self, obj: Any) -> InventoryScenario:
        return make_scenario(obj, self.preset)

    def make_sim(self, batch_size: int) -> InventorySim:
        return InventorySim(batch_size, self.structure)

    def make_action_space(self) -> spaces.Space:
        n = self.structure.num_stages
        if self.action_mode == "continuous":
            return spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)
        if self.action_mode == "discrete":
            return spaces.MultiDiscrete(np.full(n, self.order_levels))
        caps = np.asarray(self.structure.capacities, dtype=np.float32)
        return spaces.Box(np.zeros(n, dtype=np.float32), caps, dtype=np.float32)

    def actions_to_sim(self, actions: np.ndarray) -> np.ndarray:
        if self.action_mode == "continuous":
            return np.rint((actions.astype(np.float64) + 1.0) * 0.5 * self._caps)
        if self.action_mode == "discrete":
            return np.rint(actions * self._caps / (self.order_levels - 1))
        return actions

    def quantities_to_actions(self, quantities: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`actions_to_sim`: the action that orders ``quantities`` ``[B, N]``."""
        q = np.clip(np.asarray(quantities, dtype=np.float64), 0.0, self._caps)
        if self.action_mode == "continuous":
            return np.clip(2.0 * q / self._caps - 1.0, -1.0, 1.0).astype(np.float32)
        if self.action_mode == "discrete":
            return np.rint(q / self._caps * (self.order_levels - 1)).astype(np.int64)
        return q.astype(np.float32)


class InventoryVectorEnv(LeptonVectorEnv):
    """Native vector env of :class:`InventoryEnv` (all replicas in one core)."""

    env_cls = InventoryEnv
