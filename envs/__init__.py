"""Lepton Gym environments. Importing this package registers every built-in ``lepton/`` id.

Example:
    >>> import gymnasium as gym
    >>> import envs
    >>> env = gym.make("lepton/Inventory-v0")
"""

from envs.registration import (
    env_ids,
    env_info,
    load_plugins,
    make,
    make_vec,
    register,
    register_builtin,
    resolve_id,
    spec,
)

register_builtin()
load_plugins()

__all__ = [
    "env_ids",
    "env_info",
    "load_plugins",
    "make",
    "make_vec",
    "register",
    "register_builtin",
    "resolve_id",
    "spec",
]
