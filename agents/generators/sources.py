"""Scenario sources built from a generator folder's real data, for training and evaluation.

A folder written by ``lepton-generate fit`` holds the real scenarios the generator was fitted
on (``train``) and those it was tested against (``held_out``), as features that its codec
decodes. :class:`RealScenarios` turns them into an env scenario source;
:class:`EvaluationScenarios` gives evaluation episodes fixed scenarios by their seed, so that an
agent and the baselines face the same scenario in episode ``k``.

Every source here keeps the structure it is given: built on the training env's structure, an
evaluation env has the training env's observation and action spaces, so a model trained on
one source loads onto an env with another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding

from envs.core.scenario import ScenarioSource

CYCLE_SEED = 0
"""Seed of the fixed order in which evaluation episodes cycle through a list of scenarios."""


def decode_all(codec: Any, features: np.ndarray, field: str, what: str) -> list[Any]:
    """Decode every row of ``features``; raise naming ``field`` if one does not decode."""
    out = []
    for k, row in enumerate(np.asarray(features, dtype=np.float64)):
        scenario = codec.decode(row)
        if scenario is None:
            raise ValueError(f"{field}: {what} scenario {k} does not decode with the codec")
        out.append(scenario)
    if not out:
        raise ValueError(f"{field}: the folder holds no {what} scenarios")
    return out


class RealScenarios(ScenarioSource[Any]):
    """A list of real scenarios: each reset draws one uniformly from the episode's generator.

    Args:
        scenarios: the scenarios (one of them: always that one).
        structure: the scenario that fixes the env's spaces (e.g. the codec's structure).
    """

    def __init__(self, scenarios: Sequence[Any], structure: Any) -> None:
        if not scenarios:
            raise ValueError("scenarios: need at least one scenario")
        self.scenarios = list(scenarios)
        self._structure = structure

    @property
    def structure(self) -> Any:
        return self._structure

    def sample(self, rng: np.random.Generator) -> Any:
        if len(self.scenarios) == 1:
            return self.scenarios[0]
        return self.scenarios[int(rng.integers(len(self.scenarios)))]


class EvaluationScenarios(ScenarioSource[Any]):
    """Evaluation episode ``k`` (seed ``first_seed + k``) gets ``draw(k, rng)``; others ``fallback``.

    An episode is recognised by the state of its freshly seeded generator (the source is the
    first to draw from it at a reset), so the assignment does not depend on the number of
    replicas, the chunking of the episodes or the order of resets. Resets with any other
    generator (fitting the baselines on training seeds, autoresets after an evaluation
    episode) draw from ``fallback``, the training env's source: baselines are fitted on what
    the agent was trained on and evaluated on the evaluation scenarios.

    Args:
        draw: the scenario of evaluation episode ``k`` from its generator.
        first_seed: seed of evaluation episode 0.
        episodes: number of evaluation episodes (seeds ``first_seed .. first_seed + episodes``).
        fallback: the source of every other reset.
        structure: the scenario that fixes the env's spaces (the training env's).
    """

    def __init__(
        self,
        draw: Callable[[int, np.random.Generator], Any],
        first_seed: int,
        episodes: int,
        fallback: ScenarioSource[Any],
        structure: Any,
    ) -> None:
        self.draw = draw
        self.fallback = fallback
        self._structure = structure
        self._episode_of = {
            _state_key(seeding.np_random(first_seed + k)[0]): k for k in range(episodes)
        }

    @property
    def structure(self) -> Any:
        return self._structure

    def episode_of(self, rng: np.random.Generator) -> int | None:
        """The evaluation episode whose fresh generator ``rng`` is, else ``None``."""
        return self._episode_of.get(_state_key(rng))

    def sample(self, rng: np.random.Generator) -> Any:
        k = self.episode_of(rng)
        if k is None:
            return self.fallback.sample(rng)
        return self.draw(k, rng)


def cycle(scenarios: Sequence[Any]) -> Callable[[int, np.random.Generator], Any]:
    """Episode ``k`` gets ``scenarios[order[k % n]]`` for a fixed seeded permutation ``order``.

    Each scenario is used ``episodes // n`` or one more times; with fewer episodes than
    scenarios, a seeded random subset is used once each.
    """
    items = list(scenarios)
    order = np.random.default_rng(CYCLE_SEED).permutation(len(items))
    return lambda k, rng: items[int(order[k % len(items)])]


def _state_key(rng: np.random.Generator) -> str:
    return repr(rng.bit_generator.state)
