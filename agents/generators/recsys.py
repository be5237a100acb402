"""The recommendation family's users: a session user's initial topic interests.

:class:`RecUserCodec` turns a :class:`~envs.recsys.scenario.RecScenario` whose ``interests``
are set (one user) into ``num_topics`` features in [-1, 1] and back; everything else (the
catalogue, choice model, dynamics) comes from the base. A generator fitted on users is a user
population: every session of an env fed by it starts from a newly generated user.

Real users come from :func:`movielens_users` (the 671 users of the MovieLens ratings, in the
topic space the MovieLens catalogue is fitted in; the ``data`` extra) or from
:func:`realise_users` (users drawn from a scenario's own interest distribution).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from agents.generators.codecs import repair
from envs.recsys.catalogue import load_catalogue
from envs.recsys.scenario import RecScenario
from envs.recsys.sim import draw_interests


class RecUserCodec:
    """A session user's initial interests, ``num_topics`` features in [-1, 1].

    Args:
        base: the scenario the generated users are put into; fixes the topics.
        tolerance: how far outside [-1, 1] an interest may lie and be clipped back (0.2: a
            bounded WGAN's outputs, which may leave the training range by 10 % of it).
    """

    def __init__(self, base: RecScenario, *, tolerance: float | None = None) -> None:
        if tolerance is None:
            tolerance = 0.2
        if not (isinstance(tolerance, int | float) and math.isfinite(tolerance) and tolerance >= 0):
            raise ValueError(f"tolerance: must be a finite number >= 0, got {tolerance!r}")
        self.base = dataclasses.replace(base, interests=())
        self.tolerance = float(tolerance)

    @property
    def name(self) -> str:
        b = self.base
        return f"recsys_user/{b.catalogue}/t{b.num_topics}/n{b.num_items}"

    @property
    def dim(self) -> int:
        return self.base.num_topics

    @property
    def structure(self) -> RecScenario:
        """The base: users change no shape or bound of the env."""
        return self.base

    def encode(self, scenario: RecScenario) -> np.ndarray:
        """The interests of a scenario with one user (``interests`` set), ``[num_topics]``.

        Raises:
            ValueError: for a scenario that draws its users (see :func:`realise_users`).
        """
        if len(scenario.interests) != self.dim:
            raise ValueError(
                f"scenario {scenario.name!r}: its interests are drawn, not given; encode needs "
                f"a scenario of one user with {self.dim} interests (see realise_users)"
            )
        return np.asarray(scenario.interests, dtype=np.float64)

    def decode(self, features: np.ndarray) -> RecScenario | None:
        """The base with the repaired interests as its one user, or ``None`` if invalid."""
        x = repair(features, lower=-1.0, upper=1.0, tolerance=self.tolerance)
        if x is None or x.shape != (self.dim,):
            return None
        return self.with_user(x)

    def with_user(self, interests: np.ndarray) -> RecScenario:
        return dataclasses.replace(
            self.base,
            name=f"{self.base.name.removesuffix('_generated')}_generated",
            interests=tuple(float(v) for v in interests),
        )


def realise_users(
    codec: RecUserCodec,
    scenarios: Sequence[RecScenario],
    rng: np.random.Generator,
    per_scenario: int = 1,
) -> tuple[np.ndarray, list[RecScenario]]:
    """``per_scenario`` users of each scenario, drawn as its sessions draw them.

    Every scenario must have the base's topics. Returns their features and the base with each
    user.

    Raises:
        ValueError: naming the scenario whose topics differ.
    """
    for sc in scenarios:
        if sc.num_topics != codec.dim:
            raise ValueError(
                f"scenario {sc.name!r}: {sc.num_topics} topics; the base "
                f"{codec.base.name!r} has {codec.dim}"
            )
    rows = []
    for sc in scenarios:
        catalogue = load_catalogue(sc)
        rows += [draw_interests(sc, catalogue, rng) for _ in range(per_scenario)]
    features = np.stack(rows)
    return features, [codec.with_user(row) for row in features]


def movielens_users(codec: RecUserCodec) -> tuple[np.ndarray, list[RecScenario]]:
    """Every MovieLens user's interests in the base's MovieLens topic space.

    Raises:
        ValueError: when the base's catalogue is not MovieLens; ImportError: without the
            ``data`` extra.
    """
    from envs.recsys.movielens import cached_fit

    b = codec.base
    if b.catalogue != "movielens":
        raise ValueError(
            f"the base {b.name!r} has a {b.catalogue} catalogue; MovieLens users live in the "
            "MovieLens catalogue's topics (env=recsys/movielens)"
        )
    features = np.asarray(cached_fit(b.num_items, b.num_topics)["user_interests"])
    return features, [codec.with_user(row) for row in features]
