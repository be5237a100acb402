"""Templates rendered by ``lepton-new-env`` (``*.tmpl`` files, ``string.Template`` syntax)."""
