"""Agents layer: turns a composed configuration into models, policies, runs and reports.

- :mod:`agents.train` trains an SB3 algorithm and compares it with the family's baselines;
- :mod:`agents.evaluate` evaluates a saved model or a baseline;
- :mod:`agents.render` shows or records episodes of a model or a baseline;
- :mod:`agents.jobs` records every run's status and skips finished jobs of a sweep;
- :mod:`agents.checkpoints` writes the checkpoints a killed run resumes from;
- :mod:`agents.sweeps` and :mod:`agents.sweep_report` follow and summarise sweeps
  (:mod:`agents.stats`: IQM and stratified bootstrap confidence intervals);
- :mod:`agents.tune` searches hyperparameters with Optuna and writes agent presets.

Each module has a plain ``run(cfg)`` (or ``write_report``) function that the entry points in
``scripts/`` call.
"""
