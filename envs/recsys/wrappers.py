"""The recommendation observation as a ``Dict``: the user block and the candidate matrix.

The environments encode one flat ``Box`` (fast to batch, and what ``MlpPolicy`` takes). For
policies that treat the user and the candidates apart (SB3's ``MultiInputPolicy``, or a custom
feature extractor scoring every candidate), wrap the env:

```python
>>> import gymnasium as gym
>>> import envs
>>> from envs.recsys.wrappers import DictObservation
>>> env = DictObservation(gym.make("lepton/RecSlate-v0"))
>>> {k: space.shape for k, space in env.observation_space.items()}
{'candidates': (10, 14), 'user': (15,)}

```

``VecDictObservation`` does the same for an SB3 ``VecEnv`` (the ended episodes'
``terminal_observation`` included). Both read the ``default`` observation; what it hides
(``observe_quality=False``) stays hidden.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import ObservationWrapper, spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from envs.core.baselines import find_lepton_env
from envs.recsys.env import CANDIDATE_EXTRA, USER_EXTRA, FlatObservation, RecSlateEnv


class _Layout:
    """Where the user block and the candidate matrix lie in the flat observation."""

    def __init__(self, env: Any) -> None:
        lepton = find_lepton_env(env)
        if not isinstance(lepton, RecSlateEnv):
            raise TypeError(
                f"env: a Dict observation needs a recommendation environment, got "
                f"{type(lepton).__name__}"
            )
        if type(lepton.observation_builder) is not FlatObservation:
            raise ValueError(
                "observation: the Dict observation splits the 'default' observation; the env "
                f"was built with another builder ({type(lepton.observation_builder).__name__})"
            )
        t, c = lepton.structure.num_topics, lepton.structure.num_candidates
        self.user = t + len(USER_EXTRA)
        self.shape = (c, t + len(CANDIDATE_EXTRA))
        flat = lepton.observation_space
        assert isinstance(flat, spaces.Box)
        self.space = spaces.Dict(
            {
                "user": spaces.Box(flat.low[: self.user], flat.high[: self.user], dtype=np.float32),
                "candidates": spaces.Box(
                    flat.low[self.user :].reshape(self.shape),
                    flat.high[self.user :].reshape(self.shape),
                    dtype=np.float32,
                ),
            }
        )

    def split(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """``obs[..., D]`` as ``{"user": [..., T + 5], "candidates": [..., C, T + 4]}``."""
        lead = obs.shape[:-1]
        return {
            "user": obs[..., : self.user].copy(),
            "candidates": obs[..., self.user :].reshape(*lead, *self.shape).copy(),
        }


class DictObservation(ObservationWrapper[dict[str, np.ndarray], Any, np.ndarray]):
    """A recommendation env whose observation is ``{"user", "candidates"}``.

    Args:
        env: a recommendation env with the ``default`` observation.

    Raises:
        TypeError: for an env of another family.
        ValueError: naming ``observation`` for another observation builder.
    """

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.layout = _Layout(env)
        self.observation_space = self.layout.space

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        return self.layout.split(np.asarray(observation))


class VecDictObservation(VecEnvWrapper):
    """:class:`DictObservation` for an SB3 ``VecEnv`` of a recommendation env.

    Args:
        venv: the vector env (``make_sb3_vec_env`` or a wrapped one).
    """

    def __init__(self, venv: VecEnv) -> None:
        self.layout = _Layout(venv)
        super().__init__(venv, observation_space=self.layout.space)

    def reset(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return self.layout.split(np.asarray(self.venv.reset()))

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            final = info.get("terminal_observation")
            if final is not None:
                info["terminal_observation"] = self.layout.split(np.asarray(final))
        return self.layout.split(np.asarray(obs)), rewards, dones, infos
