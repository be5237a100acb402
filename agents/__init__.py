"""Agents layer: turns a composed configuration into models, policies, runs and reports.

- :mod:`agents.train` trains an SB3 algorithm and compares it with the family's baselines;
- :mod:`agents.evaluate` evaluates a saved model or a baseline;
- :mod:`agents.render` shows or records episodes of a model or a baseline.

Each module has a plain ``run(cfg)`` function that the Hydra entry points in ``scripts/`` call.
"""
