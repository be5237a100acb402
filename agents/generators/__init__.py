"""Scenario generators: learn a family's scenarios and generate new ones for environments.

- :mod:`agents.generators.base`: the :class:`ScenarioGenerator` interface (fit, seeded
  sample, save/load, ``as_source`` for any environment), the :class:`ScenarioCodec` protocol
  and rejection counting;
- :mod:`agents.generators.simple`: :class:`ListGenerator` (the fixed list) and
  :class:`ParametricGenerator` (domain randomisation);
- :mod:`agents.generators.wgan`: :class:`WGANGenerator` (WGAN-GP, PyTorch), imported on first
  use;
- :mod:`agents.generators.codecs`: repair rules and the supply chain's demand-series codec;
- :mod:`agents.generators.traffic`: the traffic family's per-route demand codec and real demand
  windows cut from route files (the RESCO city networks);
- :mod:`agents.generators.autoscale`: the autoscaling family's request-load codec, load drawn
  from arrival processes and the real days of the bank-calls trace;
- :mod:`agents.generators.recsys`: the recommendation family's user codec (a session user's
  initial interests), users drawn from a scenario and the real MovieLens users;
- :mod:`agents.generators.synthetic`: a ground-truth family with a known distribution;
- :mod:`agents.generators.metrics`: MMD and energy distance with the real-vs-real band,
  classifier two-sample test, diversity, coverage;
- :mod:`agents.generators.adversarial`: regret against a baseline, a search of a generator's
  latent space (CEM) for high-regret scenarios, a replay buffer and source, and the training
  curriculum behind ``env.scenarios=adversarial:<folder>``;
- :mod:`agents.generators.registry`: per family, the codec on an env's scenario and where the
  real data comes from (what ``lepton-generate`` and ``env.scenarios`` use).
"""

from __future__ import annotations

from typing import Any

from agents.generators.base import (
    GENERATOR_KINDS,
    GeneratorSource,
    GeneratorStats,
    ScenarioCodec,
    ScenarioGenerator,
)
from agents.generators.simple import ListGenerator, ParametricGenerator

__all__ = [
    "GENERATOR_KINDS",
    "GeneratorSource",
    "GeneratorStats",
    "ListGenerator",
    "ParametricGenerator",
    "ScenarioCodec",
    "ScenarioGenerator",
    "WGANConfig",
    "WGANGenerator",
]


def __getattr__(name: str) -> Any:
    if name in ("WGANGenerator", "WGANConfig"):
        from agents.generators import wgan

        return getattr(wgan, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
