"""Hydra configuration of Lepton Gym: YAML presets and the dataclass schemas that validate them.

Layout::

    conf/config.yaml       root of lepton-train
    conf/evaluate.yaml     root of lepton-evaluate
    conf/render.yaml       root of lepton-render
    conf/env/*.yaml        environments (id, name, constructor kwargs, reported metrics)
    conf/agent/*.yaml      SB3 algorithms with their hyperparameters, and baselines by name
    conf/experiment/*.yaml ``@package _global_`` deltas selected with ``experiment=<name>``
    conf/hydra/launcher/   sweep launchers: sequential, processes (joblib), ray_cluster
    conf/tune.yaml         root of lepton-tune; conf/search_space/*.yaml its search spaces
    conf/schema.py         dataclass schemas stored in Hydra's ConfigStore
    conf/resolvers.py      OmegaConf resolvers (``lepton.job_name``: folders of sweep jobs)

The scripts compose ``pkg://conf``; importing this package (which Hydra does to read it)
registers the schemas (so every composition is validated against them) and the resolvers.
"""

from conf.resolvers import register_resolvers
from conf.schema import register_configs

register_configs()
register_resolvers()
