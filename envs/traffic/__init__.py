"""Traffic family: signal control on a batched microscopic simulator (SUMO-compatible networks)."""

from __future__ import annotations

from typing import Any

from envs.registration import register


def load_sumo(net_file: Any, route_file: Any = None, **kwargs: Any) -> Any:
    """Import a SUMO ``.net.xml`` (and ``.rou.xml``) as a scenario (needs the ``sumo`` extra).

    See :func:`envs.traffic.sumo_import.load_sumo` for the arguments.
    """
    from envs.traffic.sumo_import import load_sumo as _load

    return _load(net_file, route_file, **kwargs)


def parallel_env(**kwargs: Any) -> Any:
    """The PettingZoo ``ParallelEnv`` of signal control: one agent per controlled signal.

    Takes the arguments of :class:`envs.traffic.env.TrafficSignalEnv`; see
    :class:`envs.traffic.multi.TrafficParallelEnv`.
    """
    from envs.traffic.multi import TrafficParallelEnv

    return TrafficParallelEnv(**kwargs)


def register_envs() -> None:
    """Register the traffic environments (idempotent)."""
    register(
        "lepton/TrafficSignal-v0",
        "envs.traffic.env:TrafficSignalEnv",
        vector_entry_point="envs.traffic.env:TrafficVectorEnv",
        family="traffic",
        kwargs={"scenario": "sumo_rl_single", "preset": "sumo_rl_single"},
        description="One signalised intersection (sumo-rl's single-intersection): pick green phases.",
    )
    register(
        "lepton/TrafficGrid-v0",
        "envs.traffic.env:TrafficSignalEnv",
        vector_entry_point="envs.traffic.env:TrafficVectorEnv",
        family="traffic",
        kwargs={"scenario": "grid4x4", "preset": "grid4x4"},
        description="A 4x4 grid of signalised intersections: one green phase per signal and step.",
    )
    register(
        "lepton/TrafficArterial-v0",
        "envs.traffic.env:TrafficSignalEnv",
        vector_entry_point="envs.traffic.env:TrafficVectorEnv",
        family="traffic",
        kwargs={"scenario": "arterial4", "preset": "arterial4"},
        description="A 1x4 arterial of signalised intersections with heavier main-road demand.",
    )
