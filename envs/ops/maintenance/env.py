"""Gymnasium adapters of the machine-maintenance fleet."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numba
import numpy as np
from gymnasium import spaces

from envs.core.env import LeptonEnv
from envs.core.features import ObservationBuilder, RewardTerm
from envs.core.registry import Registry
from envs.core.vector import LeptonVectorEnv
from envs.ops.maintenance.scenario import PRESETS, MaintenanceScenario, make_scenario
from envs.ops.maintenance.sim import MaintenanceSim, MaintenanceState

OBSERVATIONS: Registry[type[ObservationBuilder]] = Registry("observation")
REWARDS: Registry[RewardTerm] = Registry("reward term")
ACTION_MODES = ("multi", "flat")
MAX_FLAT_MACHINES = 8
"""Largest fleet with a ``flat`` action space (``3 ** 8 = 6561`` joint actions)."""


def _time_left(snapshot: MaintenanceState) -> np.ndarray:
    return (snapshot.horizon - snapshot.t) / np.maximum(snapshot.horizon, 1)


@OBSERVATIONS.register("default")
class ConditionObservation(ObservationBuilder):
    """Per machine a one-hot condition, downtime and work flags; then time and free crews.

    Layout (``N`` machines, ``K`` conditions), machine-major: for every machine
    ``one_hot(condition)[K]``, ``downtime / D``, ``repairing``, ``replacing`` (``D`` is the
    longest repair or replacement of the fleet); then ``steps_left / horizon`` and
    ``free_crews / max(crews, 1)``. Every entry lies in [0, 1].
    """

    def __init__(self, structure: MaintenanceScenario) -> None:
        super().__init__(structure)
        self.n = structure.num_machines
        self.k = structure.num_conditions
        self.downtime_scale = float(structure.max_downtime)
        self.size = self.n * (self.k + 3) + 2

    @property
    def space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, shape=(self.size,), dtype=np.float32)

    def encode(self, snapshot: MaintenanceState) -> np.ndarray:  # type: ignore[override]
        b = snapshot.condition.shape[0]
        out = np.empty((b, self.size), dtype=np.float32)
        _encode_default(
            snapshot.condition,
            snapshot.downtime,
            snapshot.work,
            snapshot.t,
            snapshot.horizon,
            snapshot.crews,
            self.k,
            self.downtime_scale,
            out,
        )
        return out


@numba.njit(cache=True)
def _encode_default(
    condition: np.ndarray,
    downtime: np.ndarray,
    work: np.ndarray,
    t: np.ndarray,
    horizon: np.ndarray,
    crews: np.ndarray,
    k: int,
    downtime_scale: float,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Fill ``out`` with the ``default`` observation of every replica (one pass, no temporaries)."""
    b_size, n = condition.shape
    width = k + 3
    for b in range(b_size):
        busy = 0
        for i in range(n):
            base = i * width
            for c in range(k):
                out[b, base + c] = 0.0
            out[b, base + condition[b, i]] = 1.0
            out[b, base + k] = min(downtime[b, i] / downtime_scale, 1.0)
            out[b, base + k + 1] = 1.0 if work[b, i] == 1 else 0.0
            out[b, base + k + 2] = 1.0 if work[b, i] == 2 else 0.0
            if work[b, i] == 1:
                busy += 1
        h = horizon[b] if horizon[b] > 1 else 1
        left = (horizon[b] - t[b]) / h
        out[b, n * width] = min(max(left, 0.0), 1.0)
        free = (crews[b] - busy) / (crews[b] if crews[b] > 1 else 1)
        out[b, n * width + 1] = min(max(free, 0.0), 1.0)


@OBSERVATIONS.register("compact")
class CompactObservation(ObservationBuilder):
    """Per machine the normalised condition and downtime; then the time left.

    Layout: ``condition / (K - 1)`` for every machine, ``downtime / D`` for every machine,
    ``steps_left / horizon``; every entry lies in [0, 1]. Repairs and replacements are not told
    apart, so with a crew limit this observation is not Markov (use ``default``).
    """

    def __init__(self, structure: MaintenanceScenario) -> None:
        super().__init__(structure)
        self.n = structure.num_machines
        self.k = structure.num_conditions
        self.downtime_scale = float(structure.max_downtime)
        self.size = 2 * self.n + 1

    @property
    def space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, shape=(self.size,), dtype=np.float32)

    def encode(self, snapshot: MaintenanceState) -> np.ndarray:  # type: ignore[override]
        b = snapshot.condition.shape[0]
        out = np.empty((b, self.size), dtype=np.float32)
        out[:, : self.n] = snapshot.condition / (self.k - 1)
        out[:, self.n : 2 * self.n] = np.minimum(snapshot.downtime / self.downtime_scale, 1.0)
        out[:, -1] = np.clip(_time_left(snapshot), 0.0, 1.0)
        return out


def _term(name: str, sign: float) -> RewardTerm:
    def term(result: Any) -> np.ndarray:
        return sign * result.quantities[name]

    term.__name__ = f"{name}_term"
    return term


REWARDS.register("output", _term("output", 1.0))
REWARDS.register("repair_cost", _term("repair_cost", -1.0))
REWARDS.register("replace_cost", _term("replace_cost", -1.0))
REWARDS.register("failure_cost", _term("failure_cost", -1.0))


class MaintenanceEnv(LeptonEnv):
    """Maintenance of a fleet of machines that degrade by a Markov chain and share repair crews.

    ## Description
    ``N`` machines each move through ``K`` condition states, from ``0`` (as new) to ``K - 1``
    (failed, absorbing), by a Markov chain with a configurable transition matrix per machine
    while they run. A running machine produces output worth more in better conditions; a
    breakdown costs a one-off failure cost. Every step each machine either *runs*, starts a
    *repair* (partial: ``repair_levels`` conditions better, paid at once, out of production for
    ``repair_time`` steps, holding one of the fleet's ``crews``) or starts a *replacement*
    (restores new, paid at once, out of production for ``replace_time`` steps, no crew). When
    more repairs are requested than crews are free, the machines in the worst condition are
    repaired first (ties to the lower machine index) and the others run: a deterministic rule,
    no randomness. With one machine the problem is a small finite MDP whose exact optimum is
    computed by value iteration (:mod:`envs.ops.maintenance.optimal`, the ``optimal`` baseline).

    ## Action Space
    One decision per machine, ``0`` run, ``1`` repair, ``2`` replace; machines out of production
    ignore theirs. Selected by ``action_mode``:

    | mode    | space                  | decision of machine ``i``                    |
    |---------|------------------------|----------------------------------------------|
    | `multi` | `MultiDiscrete([3]*N)` | ``a[i]``                                     |
    | `flat`  | `Discrete(3 ** N)`     | base-3 digit ``i`` of ``a`` (machine 0 first)|

    ## Observation Space
    Selected by ``observation``; every entry lies in [0, 1]:

    | name      | shape           | content                                                       |
    |-----------|-----------------|---------------------------------------------------------------|
    | `default` | `(N*(K+3) + 2,)`| per machine one-hot condition, downtime / D, repairing,       |
    |           |                 | replacing; then steps left / horizon, free crews / crews      |
    | `compact` | `(2*N + 1,)`    | condition / (K-1) and downtime / D per machine, time left     |

    ``D`` is the longest repair or replacement time of the fleet.

    ## Rewards
    The weighted sum of the terms ``output`` (value produced), ``repair_cost``,
    ``replace_cost`` and ``failure_cost`` (costs enter negatively; default weights 1, so the
    reward is the step's profit, undiscounted). Every term is in ``info["reward_terms"]``.

    ## Starting State
    Every machine's condition is drawn independently from ``initial_condition`` (as new in the
    ``single`` preset); no repair or replacement is in progress. The random numbers of the
    whole episode are drawn at reset from the episode's generator.

    ## Episode End
    - Termination: after ``horizon`` steps (the time left is part of the observation, so the
      finite-horizon problem stays Markov).
    - Truncation: only through ``max_episode_steps`` when one is given.

    ## Info
    ``profit``, ``episode_profit``, ``output``, ``cost`` (all costs of the step), ``failures``
    (breakdowns in the step), ``failed`` (machines standing failed), ``availability`` (share of
    machines producing in the step), ``repairs``, ``replacements``, ``denied_repairs``,
    ``crews_busy``, ``mean_condition``, ``reward_terms``.

    ## Arguments
    ```python
    >>> import gymnasium as gym
    >>> import envs
    >>> env = gym.make("lepton/Maintenance-v0", scenario="single", action_mode="flat")
    >>> env.action_space, env.observation_space.shape
    (Discrete(3), (10,))

    ```

    | parameter        | default    | meaning                                                  |
    |------------------|------------|----------------------------------------------------------|
    | `scenario`       | `preset`   | preset name, mapping of fields, scenario, list or source |
    | `preset`         | `"five"`   | preset of a mapping without ``preset`` (and of ``None``) |
    | `observation`    | `"default"`| observation builder (`default`, `compact`)               |
    | `action_mode`    | `"multi"`  | `multi` (MultiDiscrete) or `flat` (Discrete, N <= 8)     |
    | `reward_weights` | all 1      | weight per reward term                                   |
    | `render_mode`    | `None`     | `human` or `rgb_array`                                   |

    Presets: `single` (one machine, 5 conditions, 100 steps: exactly solvable) and `five` (five
    machines of two types, 2 crews, 100 steps). A registered variant passes its own ``preset``
    (``lepton/MaintenanceSingle-v0``: `single`), so a mapping such as ``scenario={"horizon": 20}``
    changes that variant's scenario.

    ## Version History
    - v0: initial release.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 4}  # noqa: RUF012
    observation_builders = OBSERVATIONS
    reward_terms = REWARDS
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        "output": 1.0,
        "repair_cost": 1.0,
        "replace_cost": 1.0,
        "failure_cost": 1.0,
    }
    scenario_type = MaintenanceScenario
    renderer = "envs.ops.maintenance.render:MaintenanceRenderer"
    baselines = "envs.ops.maintenance.baselines:BASELINES"
    reference_baseline = "threshold"

    def __init__(
        self,
        scenario: Any = None,
        *,
        preset: str = "five",
        observation: str = "default",
        action_mode: str = "multi",
        reward_weights: Mapping[str, float] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if action_mode not in ACTION_MODES:
            raise ValueError(
                f"action_mode: {action_mode!r} is not allowed; allowed: {ACTION_MODES}"
            )
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ValueError(
                f"preset: unknown preset {preset!r}; allowed values: {sorted(PRESETS)}"
            )
        self.action_mode = action_mode
        self.preset = preset
        super().__init__(
            scenario,
            observation=observation,
            reward_weights=reward_weights,
            render_mode=render_mode,
        )
        n = self.structure.num_machines
        self._digits = 3 ** np.arange(n, dtype=np.int64)

    def coerce_scenario(self, obj: Any) -> MaintenanceScenario:
        return make_scenario(obj, self.preset)

    def make_sim(self, batch_size: int) -> MaintenanceSim:
        return MaintenanceSim(batch_size, self.structure)

    def make_action_space(self) -> spaces.Space:
        n = self.structure.num_machines
        if self.action_mode == "flat":
            if n > MAX_FLAT_MACHINES:
                raise ValueError(
                    f"action_mode: 'flat' supports fleets of at most {MAX_FLAT_MACHINES} "
                    f"machines (3 ** N joint actions), this scenario has {n}; use 'multi'"
                )
            return spaces.Discrete(3**n)
        return spaces.MultiDiscrete(np.full(n, 3))

    def actions_to_sim(self, actions: np.ndarray) -> np.ndarray:
        if self.action_mode == "flat":
            return (np.asarray(actions, dtype=np.int64)[:, None] // self._digits) % 3
        return actions

    def decisions_to_actions(self, decisions: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`actions_to_sim`: the actions for decisions ``[B, N]``."""
        d = np.asarray(decisions, dtype=np.int64)
        if self.action_mode == "flat":
            return d @ self._digits
        return d


class MaintenanceVectorEnv(LeptonVectorEnv):
    """Native vector env of :class:`MaintenanceEnv` (all replicas in one core)."""

    env_cls = MaintenanceEnv
