"""OmegaConf resolvers used by the configuration (registered when ``conf`` is imported).

``lepton.job_name`` names the folder of a multirun job after the job itself, so that running the
same sweep again finds every job's earlier folder (to skip finished jobs or resume killed ones)
whatever the launcher, the order of the jobs or the time::

    hydra.sweep.subdir: ${lepton.job_name:${env.name},${agent.name},${seed},${hydra.overrides.task}}
    -> inventory__ppo__3                  (only env, agent and seed overridden)
    -> inventory__ppo__3__5f1c2a9e        (plus other overrides: a hash of them, sorted)
    -> inventory__ppo__3                  (plus only run-only ones: tensorboard=true, ...)
    -> inventory__pretrained+inventory__0 (agent.name ``pretrained/inventory``: one folder)

``lepton.safe_name`` makes any name usable as one path component (see :func:`safe_name`).

``lepton.generate_dir`` names the folder ``lepton-generate`` writes (see :func:`generate_dir`).

``lepton.evaluated`` names the folder of ``lepton-evaluate`` and ``lepton-render`` after the env
and the agent the job actually uses (see :func:`evaluated`): a saved model's run decides them
where the command line leaves them open::

    run_dir: runs/evaluate/${lepton.evaluated:}__${seed}__${now:%Y%m%d-%H%M%S}
    lepton-evaluate model_path=runs/<lost-sales a2c run>
    -> runs/evaluate/inventory_lost_sales__a2c__0__20260101-120000   (not inventory__ppo__0__...)
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from omegaconf import OmegaConf

IDENTITY_KEYS = frozenset({"env", "agent", "seed"})
"""Overrides named in clear in the job's folder name (as ``env.name``, ``agent.name``, seed)."""

RUNTIME_KEYS = frozenset(
    {"force", "resume", "sweep_dir", "run_dir", "progress_bar", "verbose", "device"}
)
"""Switches of where and how a job runs: where it writes, whether it reruns or resumes, output."""

RUN_ONLY_KEYS = RUNTIME_KEYS | {
    "tensorboard",
    "torch_threads",
    "checkpoint_freq",
    "eval.batch_size",
}
"""Keys that change how a run goes, not what it computes (dotted; a key covers its children).

:data:`RUNTIME_KEYS`, plus the logging, threading and checkpointing switches and the
evaluation's batch size (evaluation results do not depend on it). Overrides of them are left out
of a sweep job's folder name (:func:`job_name`), and a saved run that differs from a new
configuration only in them is the same run (``agents.runs.config_differences``).
"""


PATH_SEPARATORS = ("/", "\\")
"""Characters that would split a name into nested folders (``agent.name: pretrained/inventory``)."""

SEPARATOR_REPLACEMENT = "+"
"""What :func:`safe_name` puts in their place: no env or agent name uses it, so no two names
share a folder (``-`` would make ``pretrained/x-y`` and ``pretrained-x/y`` collide)."""


def safe_name(name: object) -> str:
    """``name`` as a single path component: path separators become ``+``.

    Names without a separator come back unchanged, so existing folders keep their names::

        >>> safe_name("pretrained/inventory"), safe_name("ppo_tuned_inventory")
        ('pretrained+inventory', 'ppo_tuned_inventory')
    """
    text = str(name)
    for sep in PATH_SEPARATORS:
        text = text.replace(sep, SEPARATOR_REPLACEMENT)
    return text


def override_key(override: str) -> str:
    """The config key of a command-line override (``+a.b=1`` -> ``a.b``, ``~a`` -> ``a``)."""
    key = override.split("=", 1)[0]
    return key.lstrip("+~")


def without_idle_preset(env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """An env's arguments without a ``preset`` that decides nothing.

    ``preset`` only says where a ``scenario`` mapping that names no preset of its own starts
    (``env.kwargs.scenario={horizon: 12}``). With a scenario named, or a mapping that names its
    preset, it is idle; leaving it out there lets configurations compare by what they compute,
    and runs saved before env presets declared it match those of now.
    """
    out = dict(env_kwargs)
    scenario = out.get("scenario")
    if not (isinstance(scenario, Mapping) and "preset" not in scenario):
        out.pop("preset", None)
    return out


def without_idle_env_keys(config: Mapping[Any, Any]) -> dict[Any, Any]:
    """``config`` (a plain configuration) with ``env.kwargs`` as :func:`without_idle_preset`."""
    env = config.get("env")
    if not isinstance(env, Mapping) or not isinstance(env.get("kwargs"), Mapping):
        return dict(config)
    return {**config, "env": {**env, "kwargs": without_idle_preset(env["kwargs"])}}


def covered(key: str, keys: Collection[str]) -> bool:
    """Whether the dotted ``key`` is one of ``keys`` or below one of them.

    ``covered("eval.batch_size", RUN_ONLY_KEYS)`` is true, ``covered("eval", RUN_ONLY_KEYS)``
    and ``covered("eval.episodes", RUN_ONLY_KEYS)`` are false.
    """
    return any(key == k or key.startswith(f"{k}.") for k in keys)


def computing_overrides(overrides: Iterable[object]) -> list[str]:
    """The overrides that change what a job computes, beyond its env, agent and seed, sorted.

    Left out: the choice of ``env``, ``agent`` or ``seed`` (:data:`IDENTITY_KEYS`, named in the
    job's folder in clear) and every override of :data:`RUN_ONLY_KEYS` or below one (in any of
    the forms ``key=``, ``+key=``, ``++key=``, ``~key``). ``env.<key>=...`` and
    ``agent.<key>=...`` stay: they change the job.
    """
    return sorted(
        str(o)
        for o in overrides
        if override_key(str(o)) not in IDENTITY_KEYS
        and not covered(override_key(str(o)), RUN_ONLY_KEYS)
    )


def job_name(env_name: str, agent_name: str, seed: int, overrides: Iterable[str]) -> str:
    """The folder name of a sweep job: ``<env>__<agent>__<seed>[__<hash of other overrides>]``.

    Args:
        env_name: ``env.name`` of the job.
        agent_name: ``agent.name`` of the job.
        seed: the job's seed.
        overrides: the job's command-line overrides (``hydra.overrides.task``).

    Returns:
        A name that depends only on what the job computes: overrides of :data:`RUN_ONLY_KEYS`
        are ignored (see :func:`computing_overrides`) and the others are sorted, so neither the
        launcher, the job order nor a switch such as ``tensorboard=true`` added when the sweep
        runs again changes it (finished jobs are then found and skipped).
        Env and agent names go through :func:`safe_name`, so the job is one folder of the sweep
        even when a name holds a ``/`` (``pretrained/inventory``).
    """
    rest = computing_overrides(overrides)
    name = f"{safe_name(env_name)}__{safe_name(agent_name)}__{seed}"
    if rest:
        name += "__" + hashlib.sha1("\n".join(rest).encode()).hexdigest()[:8]
    return name


def generate_dir(
    command: object,
    path: str | None,
    family: str,
    kind: object,
    seed: int,
    n: int,
    now: str,
    model: str | None = None,
    baseline: str | None = None,
) -> str:
    """Default output folder of ``lepton-generate``.

    ``fit`` writes a new generator folder ``runs/generators/<family>__<kind>__<seed>__<time>``;
    ``sample`` and ``adversarial`` write next to the generator they read:
    ``<path>/samples__seed<seed>__n<n>`` and
    ``<path>/adversarial__<model>__vs_<baseline>__seed<seed>__n<n>``, where ``<model>`` names the
    agent (``pretrained/inventory`` -> ``inventory``; ``<run>/model.zip`` -> the run folder's
    name) and ``<baseline>`` is ``reference`` when unset, so the reports of different agents or
    baselines on one generator are kept apart (``runs/generators/<command>__<time>`` when
    ``path`` is missing, which both reject).
    """
    command = getattr(command, "value", command)
    kind = getattr(kind, "value", kind)
    if command in ("sample", "adversarial"):
        if not path:
            word = "samples" if command == "sample" else "adversarial"
            return f"runs/generators/{word}__{now}"
        if command == "sample":
            return f"{str(path).rstrip('/')}/samples__seed{seed}__n{n}"
        who = f"{_model_label(model)}__vs_{_label(baseline or 'reference')}"
        return f"{str(path).rstrip('/')}/adversarial__{who}__seed{seed}__n{n}"
    return f"runs/generators/{family}__{kind}__{seed}__{now}"


def _label(text: str) -> str:
    """``text`` as one folder-name word: characters other than letters, digits, ``.-_`` -> ``-``."""
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip("-") or "none"


def _model_label(model: str | None) -> str:
    """The agent's name in a folder name: a pretrained name, a run folder's name or a file stem."""
    if not model:
        return "none"
    parts = [p for p in str(model).replace("\\", "/").split("/") if p]
    last = parts[-1] if parts else str(model)
    stem = last[: -len(".zip")] if last.endswith(".zip") else last
    if stem == "model" and len(parts) > 1:  # <run folder>/model.zip
        stem = parts[-2]
    return _label(stem)


def evaluated(*, _root_: Any) -> str:
    """``<env.name>__<agent.name>`` of what a ``lepton-evaluate`` or ``lepton-render`` job uses.

    The names of the run that saved ``model_path`` where the command line chooses no env or agent
    (``agents.evaluate.evaluated_names``), else those of the configuration; both through
    :func:`safe_name`. Resolved only by those tools' folder names, so the import stays lazy.
    """
    from agents.evaluate import evaluated_names

    env, agent = evaluated_names(_root_)
    return f"{safe_name(env)}__{safe_name(agent)}"


def register_resolvers() -> None:
    """Register the ``lepton.*`` resolvers (idempotent)."""
    OmegaConf.register_new_resolver("lepton.generate_dir", generate_dir, replace=True)
    OmegaConf.register_new_resolver("lepton.safe_name", safe_name, replace=True)
    OmegaConf.register_new_resolver("lepton.evaluated", evaluated, replace=True)
    OmegaConf.register_new_resolver(
        "lepton.job_name",
        lambda env, agent, seed, overrides: job_name(env, agent, int(seed), list(overrides)),
        replace=True,
    )
