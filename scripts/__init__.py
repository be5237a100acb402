"""Command-line entry points (``lepton-train``, ``lepton-evaluate``, ``lepton-render``, ...)."""
