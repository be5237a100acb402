"""Hydra configuration of Lepton Gym: YAML presets and the dataclass schemas that validate them.

Layout::

    conf/config.yaml       root of lepton-train
    conf/evaluate.yaml     root of lepton-evaluate
    conf/render.yaml       root of lepton-render
    conf/env/*.yaml        environments (id, name, constructor kwargs, reported metrics)
    conf/agent/*.yaml      SB3 algorithms with their hyperparameters, and baselines by name
    conf/experiment/*.yaml ``@package _global_`` deltas selected with ``experiment=<name>``
    conf/schema.py         dataclass schemas stored in Hydra's ConfigStore

The scripts compose ``pkg://conf``; importing this package (which Hydra does to read it)
registers the schemas, so every composition is validated against them.
"""

from conf.schema import register_configs

register_configs()
