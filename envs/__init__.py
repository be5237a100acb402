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
    resolve_id,
    spec,
)
from envs.registration import _register_builtin as _register_builtin

_register_builtin()
load_plugins()

__all__ = [
    "env_ids",
    "env_info",
    "load_plugins",
    "make",
    "make_vec",
    "register",
    "resolve_id",
    "spec",
]
