"""Scenario sources: what an environment draws a scenario from at each reset."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

ScenarioT = TypeVar("ScenarioT")


class ScenarioSource(ABC, Generic[ScenarioT]):
    """Draws a scenario for each new episode from the episode's random generator."""

    @property
    @abstractmethod
    def structure(self) -> ScenarioT:
        """A representative scenario; it fixes the shapes of spaces and simulator arrays."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> ScenarioT:
        """Return the scenario of the next episode."""


class FixedScenario(ScenarioSource[ScenarioT]):
    """Always the same scenario; draws nothing from the generator."""

    def __init__(self, scenario: ScenarioT) -> None:
        self.scenario = scenario

    @property
    def structure(self) -> ScenarioT:
        return self.scenario

    def sample(self, rng: np.random.Generator) -> ScenarioT:
        return self.scenario

    def __repr__(self) -> str:
        return f"FixedScenario({self.scenario!r})"


class ScenarioList(ScenarioSource[ScenarioT]):
    """A scenario drawn uniformly (or by ``weights``) from a fixed list at each reset."""

    def __init__(self, scenarios: Sequence[ScenarioT], weights: Sequence[float] | None = None):
        if not scenarios:
            raise ValueError("scenarios: the list must hold at least one scenario")
        self.scenarios = list(scenarios)
        if weights is not None:
            w = np.asarray(weights, dtype=float)
            if w.shape != (len(self.scenarios),) or (w < 0).any() or w.sum() <= 0:
                raise ValueError("weights: need one non-negative weight per scenario, not all zero")
            self.weights: np.ndarray | None = w / w.sum()
        else:
            self.weights = None

    @property
    def structure(self) -> ScenarioT:
        return self.scenarios[0]

    def sample(self, rng: np.random.Generator) -> ScenarioT:
        return self.scenarios[int(rng.choice(len(self.scenarios), p=self.weights))]


class ScenarioFamily(ScenarioSource[ScenarioT]):
    """A parametric family: ``sampler(rng)`` builds a new scenario at each reset."""

    def __init__(self, structure: ScenarioT, sampler: Callable[[np.random.Generator], ScenarioT]):
        self._structure = structure
        self.sampler = sampler

    @property
    def structure(self) -> ScenarioT:
        return self._structure

    def sample(self, rng: np.random.Generator) -> ScenarioT:
        return self.sampler(rng)


def as_source(
    obj: Any, coerce: Callable[[Any], ScenarioT], scenario_type: type
) -> ScenarioSource[ScenarioT]:
    """Turn a scenario, a preset name, a mapping, a list of those, or a source into a source.

    Args:
        obj: what the user passed as ``scenario``.
        coerce: turns one non-source item (dataclass, preset name or mapping) into a scenario.
        scenario_type: the family's scenario dataclass, used in error messages.
    """
    if isinstance(obj, ScenarioSource):
        return obj
    if isinstance(obj, list | tuple):
        return ScenarioList([coerce(o) for o in obj])
    scenario = coerce(obj)
    if not dataclasses.is_dataclass(scenario) or not isinstance(scenario, scenario_type):
        raise TypeError(f"scenario: expected {scenario_type.__name__}, got {type(obj).__name__}")
    return FixedScenario(scenario)
