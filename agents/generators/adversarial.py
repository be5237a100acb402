"""Adversarial scenarios: where an agent loses most to a baseline (PAIRED/ACCEL-style curricula).

The *regret* of an agent on a scenario is the mean return of a baseline minus the agent's, on the
same seeds (:func:`regret`); positive regret means the agent does worse than the baseline there.

- :class:`AdversarialSearch` searches a fitted generator for scenarios of high regret. With a
  generator that exposes a Gaussian latent input (``latent_dim`` and ``features_from_noise``, as
  :class:`~agents.generators.wgan.WGANGenerator` does) it runs the cross-entropy method over the
  noise ``z`` and maximises ``regret - lam * ||z||^2 / dim`` (the penalty is the negative log
  prior up to constants: scenarios stay where the generator puts real-looking data). Any other
  generator (:class:`~agents.generators.simple.ParametricGenerator`, ...) gets random search:
  as many candidates drawn from the generator as the CEM would evaluate, the best kept, no
  penalty. Every candidate is decoded through the codec; invalid decodes are rejected and
  counted.
- :class:`ScenarioBuffer` keeps the top-k scenarios by regret (ACCEL's level buffer) and the
  probability of replaying one of them.
- :class:`AdversarialSource` is an environment scenario source that, at each reset, replays a
  buffered scenario with that probability and otherwise asks the base generator.
- :class:`AdversarialCurriculum` is an SB3 callback that, every ``refresh_freq`` steps, rescores
  the buffer and reruns the search against the current model, so training alternates between
  scenario search and agent updates. Its :meth:`~AdversarialCurriculum.state_dict` (the buffered
  scenarios and regrets, the source's counters, the searches so far) goes into every training
  checkpoint, so a resumed run replays the buffer the run had at its checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, runtime_checkable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from agents.evaluation import run_episodes
from agents.generators.base import ScenarioGenerator, ScenarioT
from agents.policies import Policy
from envs.core.scenario import ScenarioSource

if TYPE_CHECKING:
    from agents.generators.registry import Family

SEARCH_METHODS = ("auto", "cem", "random")
"""Allowed values of :attr:`AdversarialSearch.method` (``auto``: CEM when there is a latent)."""

Score = Callable[[list[Any]], np.ndarray]
"""Scores scenarios: a list of ``S`` scenarios -> regrets ``[S]``."""


# --- regret ------------------------------------------------------------------------------------
def episode_returns(
    policy: Policy,
    venv: VecEnv,
    scenarios: Sequence[Any],
    *,
    episodes: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """Returns ``[S, episodes]`` of ``policy`` on each scenario, one replica per episode.

    Scenario ``j``'s episode ``e`` runs on flat slot ``k = j * episodes + e`` with seed
    ``seed + k``; slots are run in chunks of ``venv.num_envs`` replicas, each replica reset on
    its scenario through ``venv.set_options([{"scenario": ...}, ...])``.
    """
    if episodes < 1:
        raise ValueError(f"episodes: must be >= 1, got {episodes}")
    if not scenarios:
        return np.zeros((0, episodes))
    flat = [sc for sc in scenarios for _ in range(episodes)]
    n = venv.num_envs
    out = []
    for start in range(0, len(flat), n):
        chunk = flat[start : start + n]
        venv.set_options([{"scenario": sc} for sc in chunk] + [{}] * (n - len(chunk)))
        result = run_episodes(policy, venv, seed + start, len(chunk), deterministic=True)
        out.append(result.returns)
    return np.concatenate(out).reshape(len(scenarios), episodes)


def regret(
    model: Policy,
    baseline: Policy,
    venv: VecEnv,
    scenarios: Sequence[Any],
    *,
    episodes: int = 1,
    seed: int = 0,
    agent_venv: VecEnv | None = None,
) -> np.ndarray:
    """Per scenario, the baseline's mean return minus the agent's, on the same seeds.

    Args:
        model: the agent (anything with SB3's ``predict``).
        baseline: the baseline, built on ``venv`` (it reads that env's state).
        venv: the plain batched env both run in.
        scenarios: the scenarios to score.
        episodes: episodes per scenario (seeds ``seed + j * episodes + e``).
        seed: seed of the first episode.
        agent_venv: ``venv`` as the agent sees it (e.g. wrapped in frozen ``VecNormalize``);
            default ``venv``.

    Returns:
        ``[len(scenarios)]`` regrets (positive: the agent loses to the baseline).
    """
    theirs = episode_returns(baseline, venv, scenarios, episodes=episodes, seed=seed)
    ours = episode_returns(
        model,
        agent_venv if agent_venv is not None else venv,
        scenarios,
        episodes=episodes,
        seed=seed,
    )
    return (theirs - ours).mean(axis=1)


# --- search ------------------------------------------------------------------------------------
@runtime_checkable
class LatentGenerator(Protocol):
    """A generator whose features are a function of a standard-normal latent ``z``."""

    @property
    def latent_dim(self) -> int:
        """Length of ``z``."""
        ...

    def features_from_noise(
        self, z: np.ndarray, label: Hashable | None = None, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Raw features ``[n, dim]`` for ``z`` ``[n, latent_dim]``."""
        ...


@dataclasses.dataclass(frozen=True)
class Candidate(Generic[ScenarioT]):
    """One evaluated scenario of a search.

    Attributes:
        scenario: the decoded scenario.
        features: its features (after repair), ``[dim]``.
        regret: baseline return minus agent return.
        objective: what the search maximised (``regret`` minus the realism penalty).
        latent: the noise ``z`` it came from (``None`` for random search).
    """

    scenario: ScenarioT
    features: np.ndarray
    regret: float
    objective: float
    latent: np.ndarray | None = None


@dataclasses.dataclass
class SearchResult(Generic[ScenarioT]):
    """What :meth:`AdversarialSearch.run` found.

    Attributes:
        found: the best distinct candidates by objective, best first.
        evaluated: every valid candidate, in evaluation order.
        proposed: candidates drawn (valid or not).
        rejected: of those, candidates the codec could not decode.
        best_per_iteration: best objective seen up to each iteration.
        mean_per_iteration: mean objective of each iteration's valid candidates.
        method: ``cem`` or ``random``.
    """

    found: list[Candidate[ScenarioT]]
    evaluated: list[Candidate[ScenarioT]]
    proposed: int
    rejected: int
    best_per_iteration: list[float]
    mean_per_iteration: list[float]
    method: str

    @property
    def invalid_rate(self) -> float:
        """Fraction of drawn candidates rejected by the codec."""
        return self.rejected / self.proposed if self.proposed else 0.0


class AdversarialSearch(Generic[ScenarioT]):
    """Search a fitted generator for scenarios that maximise regret minus a realism penalty.

    ``method="cem"`` (the default for a generator with a latent, see :class:`LatentGenerator`):
    the cross-entropy method over ``z``. Each of ``iterations`` rounds draws ``population``
    noise vectors from ``N(mu, diag(sigma^2))`` (starting at the prior ``N(0, init_std^2)``),
    decodes them, scores the valid ones in one call of ``score`` and refits ``mu`` and ``sigma``
    to the best ``elite_frac`` of them by ``regret - lam * ||z||^2 / latent_dim`` (``sigma``
    floored at ``min_std``). ``method="random"`` (any generator): ``population * iterations``
    draws of the generator itself, objective = regret.

    Args:
        generator: a fitted generator.
        population: candidates per iteration.
        iterations: rounds of the search.
        elite_frac: fraction of a round's valid candidates the CEM refits to.
        lam: weight of the realism penalty, in return units per unit of ``||z||^2 / dim``.
        init_std: standard deviation of the first round's noise.
        min_std: floor of the CEM's standard deviation.
        method: ``auto``, ``cem`` or ``random``.
        label: search one label's scenarios (conditional generators).
    """

    def __init__(
        self,
        generator: ScenarioGenerator[ScenarioT],
        *,
        population: int = 32,
        iterations: int = 5,
        elite_frac: float = 0.25,
        lam: float = 20.0,
        init_std: float = 1.0,
        min_std: float = 0.05,
        method: str = "auto",
        label: Hashable | None = None,
    ) -> None:
        if method not in SEARCH_METHODS:
            raise ValueError(f"method: {method!r} is not allowed; allowed: {SEARCH_METHODS}")
        for name, value in (("population", population), ("iterations", iterations)):
            if value < 1:
                raise ValueError(f"{name}: must be >= 1, got {value}")
        if not 0.0 < elite_frac <= 1.0:
            raise ValueError(f"elite_frac: must be in (0, 1], got {elite_frac}")
        if lam < 0 or init_std <= 0 or min_std < 0:
            raise ValueError(
                f"lam, init_std, min_std: need lam >= 0, init_std > 0, min_std >= 0; got "
                f"{lam}, {init_std}, {min_std}"
            )
        latent = isinstance(generator, LatentGenerator)
        if method == "cem" and not latent:
            raise ValueError(
                f"method: 'cem' needs a generator with a latent input (wgan), got "
                f"{type(generator).__name__}; allowed for it: 'auto', 'random'"
            )
        self.generator = generator
        self.population = population
        self.iterations = iterations
        self.elite_frac = elite_frac
        self.lam = float(lam)
        self.init_std = float(init_std)
        self.min_std = float(min_std)
        self.method = (
            "cem" if method == "auto" and latent else ("random" if method == "auto" else method)
        )
        self.label = label

    @classmethod
    def from_settings(
        cls, generator: ScenarioGenerator[ScenarioT], settings: Any
    ) -> AdversarialSearch[ScenarioT]:
        """The search an ``adversarial`` config block asks for; errors name ``adversarial.<field>``.

        Args:
            generator: the fitted generator to search.
            settings: ``population``, ``iterations``, ``elite_frac``, ``lam`` and ``method``
                (``conf.schema.AdversarialSettings``).
        """
        try:
            return cls(
                generator,
                population=settings.population,
                iterations=settings.iterations,
                elite_frac=settings.elite_frac,
                lam=settings.lam,
                method=settings.method,
            )
        except ValueError as exc:
            raise ValueError(f"adversarial.{exc}") from exc

    @property
    def budget(self) -> int:
        """Candidates drawn by one :meth:`run`."""
        return self.population * self.iterations

    def run(
        self, score: Score, rng: np.random.Generator, top_k: int = 8
    ) -> SearchResult[ScenarioT]:
        """Search, scoring candidates with ``score``; keep the ``top_k`` best distinct ones.

        Args:
            score: regrets ``[S]`` of a list of ``S`` scenarios (e.g. a partial :func:`regret`).
            rng: the only randomness of the search.
            top_k: size of :attr:`SearchResult.found`.
        """
        if top_k < 1:
            raise ValueError(f"top_k: must be >= 1, got {top_k}")
        gen = self.generator
        gen._check_fitted()
        codec = gen.codec
        dim = getattr(gen, "latent_dim", 0)
        mu, sigma = np.zeros(dim), np.full(dim, self.init_std)
        evaluated: list[Candidate[ScenarioT]] = []
        proposed = rejected = 0
        best: list[float] = []
        means: list[float] = []
        for _ in range(self.iterations):
            if self.method == "cem":
                z = mu + sigma * rng.standard_normal((self.population, dim))
                raw = gen.features_from_noise(z, self.label, rng)  # type: ignore[attr-defined]
            else:
                z = None
                raw = gen.sample_features(self.population, rng, self.label)
            scenarios, rows = [], []
            for k, x in enumerate(raw):
                sc = codec.decode(x)
                if sc is None:
                    rejected += 1
                else:
                    scenarios.append(sc)
                    rows.append(k)
            proposed += len(raw)
            gen.stats.proposed += len(raw)
            gen.stats.rejected += len(raw) - len(rows)
            regrets = np.asarray(score(scenarios), dtype=np.float64) if scenarios else np.zeros(0)
            if regrets.shape != (len(scenarios),):
                raise ValueError(
                    f"score: returned shape {list(regrets.shape)} for {len(scenarios)} scenarios"
                )
            lat = z[rows] if z is not None else None
            penalty = (
                self.lam * (lat**2).sum(axis=1) / dim if lat is not None else np.zeros(len(rows))
            )
            objective = regrets - penalty
            for i, sc in enumerate(scenarios):
                evaluated.append(
                    Candidate(
                        sc,
                        np.asarray(codec.encode(sc), dtype=np.float64),
                        float(regrets[i]),
                        float(objective[i]),
                        None if lat is None else lat[i].copy(),
                    )
                )
            means.append(float(objective.mean()) if len(objective) else -math.inf)
            best.append(max([c.objective for c in evaluated], default=-math.inf))
            if self.method == "cem" and lat is not None and len(rows):
                n_elite = max(1, math.ceil(self.elite_frac * len(rows)))
                elite = lat[np.argsort(-objective, kind="stable")[:n_elite]]
                mu = elite.mean(axis=0)
                sigma = np.maximum(elite.std(axis=0), self.min_std)
        return SearchResult(
            found=_top_distinct(evaluated, top_k),
            evaluated=evaluated,
            proposed=proposed,
            rejected=rejected,
            best_per_iteration=best,
            mean_per_iteration=means,
            method=self.method,
        )


def _top_distinct(cands: Sequence[Candidate[ScenarioT]], k: int) -> list[Candidate[ScenarioT]]:
    out: list[Candidate[ScenarioT]] = []
    for c in sorted(cands, key=lambda c: -c.objective):
        if any(np.array_equal(c.features, o.features) for o in out):
            continue
        out.append(c)
        if len(out) == k:
            break
    return out


# --- buffer and source -------------------------------------------------------------------------
class ScenarioBuffer(Generic[ScenarioT]):
    """The ``capacity`` scenarios of highest regret seen so far, and how often to replay them.

    Args:
        capacity: most scenarios kept.
        replay_prob: probability that an :class:`AdversarialSource` replays a buffered scenario
            at a reset (when the buffer is not empty).
    """

    def __init__(self, capacity: int = 16, replay_prob: float = 0.5) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: must be >= 1, got {capacity}")
        if not 0.0 <= replay_prob <= 1.0:
            raise ValueError(f"replay_prob: must be in [0, 1], got {replay_prob}")
        self.capacity = capacity
        self.replay_prob = float(replay_prob)
        self._entries: list[tuple[ScenarioT, float]] = []

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def scenarios(self) -> list[ScenarioT]:
        """Buffered scenarios, highest regret first."""
        return [s for s, _ in self._entries]

    @property
    def regrets(self) -> np.ndarray:
        """Their regrets, descending."""
        return np.asarray([r for _, r in self._entries], dtype=np.float64)

    def add(self, scenarios: Sequence[ScenarioT], regrets: Sequence[float]) -> None:
        """Merge scored scenarios in (a scenario already held takes the new score); keep top-k."""
        if len(scenarios) != len(regrets):
            raise ValueError(
                f"regrets: expected one per scenario ({len(scenarios)}), got {len(regrets)}"
            )
        entries = list(self._entries)
        for sc, r in zip(scenarios, regrets, strict=True):
            entries = [(s, v) for s, v in entries if s != sc]
            entries.append((sc, float(r)))
        entries.sort(key=lambda e: -e[1])
        self._entries = entries[: self.capacity]

    def rescore(self, regrets: Sequence[float] | np.ndarray) -> None:
        """Replace the regrets of the buffered scenarios (same order as :attr:`scenarios`)."""
        if len(regrets) != len(self._entries):
            raise ValueError(
                f"regrets: expected one per buffered scenario ({len(self)}), got {len(regrets)}"
            )
        entries = [(s, float(r)) for (s, _), r in zip(self._entries, regrets, strict=True)]
        self._entries = sorted(entries, key=lambda e: -e[1])

    def sample(self, rng: np.random.Generator) -> ScenarioT:
        """A buffered scenario, uniformly."""
        if not self._entries:
            raise RuntimeError("ScenarioBuffer: the buffer is empty")
        return self._entries[int(rng.integers(len(self._entries)))][0]

    def state_dict(self) -> dict[str, Any]:
        """The buffered scenarios and their regrets, in order, and the buffer's settings."""
        return {
            "capacity": self.capacity,
            "replay_prob": self.replay_prob,
            "scenarios": self.scenarios,
            "regrets": [r for _, r in self._entries],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Hold the scenarios of ``state`` (from :meth:`state_dict`), replacing the buffer's.

        Raises:
            ValueError: naming ``buffer_size`` or ``replay_prob`` when ``state`` was written by
                a buffer with other settings.
        """
        for name, mine, theirs in (
            ("buffer_size", self.capacity, state["capacity"]),
            ("replay_prob", self.replay_prob, state["replay_prob"]),
        ):
            if mine != theirs:
                raise ValueError(
                    f"{name}: the saved buffer has {theirs}, this one {mine}; they must agree"
                )
        scenarios, regrets = list(state["scenarios"]), [float(r) for r in state["regrets"]]
        if len(scenarios) != len(regrets) or len(scenarios) > self.capacity:
            raise ValueError(
                f"scenarios: the saved buffer holds {len(scenarios)} scenarios and "
                f"{len(regrets)} regrets (capacity {self.capacity})"
            )
        self._entries = list(zip(scenarios, regrets, strict=True))


class AdversarialSource(ScenarioSource[ScenarioT]):
    """At each reset: a buffered scenario with probability ``buffer.replay_prob``, else ``base``'s.

    While the buffer is empty it draws exactly what ``base`` draws.

    Args:
        base: the ordinary source (usually ``generator.as_source()``).
        buffer: the scenarios to replay; filled by :class:`AdversarialCurriculum`.
        structure: the scenario that fixes the env's spaces (default: ``base``'s).
        family: the generator's family, whose defaults fill the search settings left ``None``.
    """

    def __init__(
        self,
        base: ScenarioSource[ScenarioT],
        buffer: ScenarioBuffer[ScenarioT] | None = None,
        structure: ScenarioT | None = None,
        family: Family | None = None,
    ) -> None:
        self.base = base
        self.family = family
        self.buffer: ScenarioBuffer[ScenarioT] = buffer if buffer is not None else ScenarioBuffer()
        self._structure = base.structure if structure is None else structure
        self.replayed = 0
        self.drawn = 0

    @property
    def structure(self) -> ScenarioT:
        return self._structure

    def sample(self, rng: np.random.Generator) -> ScenarioT:
        self.drawn += 1
        if len(self.buffer) and rng.random() < self.buffer.replay_prob:
            self.replayed += 1
            return self.buffer.sample(rng)
        return self.base.sample(rng)

    def state_dict(self) -> dict[str, Any]:
        """The buffer's state and the counts of draws and replays.

        The source has no random state of its own: each draw uses the episode's generator.
        """
        return {"buffer": self.buffer.state_dict(), "drawn": self.drawn, "replayed": self.replayed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict`)."""
        self.buffer.load_state_dict(state["buffer"])
        self.drawn, self.replayed = int(state["drawn"]), int(state["replayed"])

    def __repr__(self) -> str:
        return f"AdversarialSource({self.base!r}, buffer={len(self.buffer)})"


# --- curriculum --------------------------------------------------------------------------------
class AdversarialCurriculum(BaseCallback):
    """Every ``refresh_freq`` steps: rescore the buffer and search for new adversarial scenarios.

    The search runs against the current model through ``score_factory(model)`` (which returns
    the scoring function, e.g. :func:`regret` on a frozen copy of the training normalisation);
    the buffer of ``source`` then keeps the top scenarios of the old ones (rescored) and the new
    ones. A search also runs before the first update, unless the curriculum continues a saved
    state (:meth:`load_state_dict`): it then searches next where the saved run would have.

    Args:
        source: the training env's adversarial source (shared by all its replicas).
        search: the search over the source's generator.
        score_factory: the current model -> scores of scenarios.
        refresh_freq: environment steps between searches.
        seed: seeds the searches (search ``i`` uses ``seed + i``).
        top_k: candidates each search offers the buffer.
    """

    def __init__(
        self,
        source: AdversarialSource[Any],
        search: AdversarialSearch[Any],
        score_factory: Callable[[Any], Score],
        *,
        refresh_freq: int = 10_000,
        seed: int = 0,
        top_k: int | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if refresh_freq < 1:
            raise ValueError(f"adversarial.refresh_freq: must be >= 1, got {refresh_freq}")
        self.source = source
        self.search = search
        self.score_factory = score_factory
        self.refresh_freq = refresh_freq
        self.seed = seed
        self.top_k = top_k or source.buffer.capacity
        self.history: list[dict[str, float]] = []
        """One point per search so far; search ``i`` is seeded ``seed + i``."""
        self._last = -1
        """The step of the latest search (``-1``: none yet)."""
        self._restored = False

    def state_dict(self) -> dict[str, Any]:
        """What decides the scenarios trained on from here (pickled with each checkpoint).

        The source's buffer and counters, the searches so far (their number seeds the next one)
        and the step of the latest one. Everything else a search depends on is the model (saved
        with the checkpoint) and the configuration (the searches' seed and settings).
        """
        return {
            "source": self.source.state_dict(),
            "history": [dict(point) for point in self.history],
            "last": self._last,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict`): no search when training starts.

        Raises:
            ValueError: naming ``adversarial.<field>`` when the saved buffer has other settings.
        """
        try:
            self.source.load_state_dict(state["source"])
        except ValueError as exc:
            raise ValueError(f"adversarial.{exc}") from exc
        self.history = [dict(point) for point in state["history"]]
        self._last = int(state["last"])
        self._restored = True

    def _on_training_start(self) -> None:
        if self._restored:  # a restored buffer was searched at the saved run's steps
            self._restored = False
        else:
            self.refresh()

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.refresh_freq:
            self.refresh()
        return True

    def refresh(self) -> SearchResult[Any]:
        """Rescore the buffer, search against the current model, merge the finds in."""
        score = self.score_factory(self.model)
        buffer = self.source.buffer
        if len(buffer):
            buffer.rescore(score(buffer.scenarios))
        rng = np.random.default_rng(self.seed + len(self.history))
        result = self.search.run(score, rng, top_k=self.top_k)
        buffer.add([c.scenario for c in result.found], [c.regret for c in result.found])
        point = {
            "timesteps": float(self.num_timesteps),
            "buffer_mean_regret": float(buffer.regrets.mean()) if len(buffer) else 0.0,
            "buffer_max_regret": float(buffer.regrets.max()) if len(buffer) else 0.0,
            "search_best_regret": max((c.regret for c in result.found), default=0.0),
            "invalid_rate": result.invalid_rate,
        }
        self.history.append(point)
        if self.logger is not None:
            for key, value in point.items():
                if key != "timesteps":
                    self.logger.record(f"adversarial/{key}", value)
        self._last = self.num_timesteps
        return result


# --- the training pipeline's hook --------------------------------------------------------------
def make_curriculum(config: Any, venv: VecEnv) -> AdversarialCurriculum | None:
    """The curriculum callback for a training env whose source is adversarial, else ``None``.

    Builds, from ``config.adversarial`` (a ``TrainConfig``): the buffer (``buffer_size``,
    ``replay_prob``) installed into the training env's :class:`AdversarialSource`, the search
    over its generator, and the scoring: regret against ``baseline`` (fitted on
    ``fit_episodes`` training seeds of the env's own scenario) in a plain env of the same
    config, the model seeing it through a frozen copy of the training normalisation.

    Raises:
        ValueError: naming ``env.kwargs.parameter_sharing`` (not supported with an
            adversarial source) or an ``adversarial.<field>`` with its allowed values.
    """
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.config import env_kwargs
    from agents.envs import frozen_normalization, make_vec_env, sync_normalization
    from agents.policies import make_baseline

    if config.env.scenarios is None:  # the env's own scenarios (and any env, Lepton or not)
        return None
    sources = venv.get_attr("source")
    source = sources[0] if sources else None
    if not isinstance(source, AdversarialSource):
        return None
    from agents.generators.registry import Family

    settings = (source.family or Family).adversarial_settings(config.adversarial)
    if env_kwargs(config.env).get("parameter_sharing", False):
        raise ValueError(
            "env.kwargs.parameter_sharing: not supported with env.scenarios=adversarial:<folder>; "
            "set it to false or use gan:<folder>"
        )
    try:
        source.buffer = ScenarioBuffer(settings.buffer_size, settings.replay_prob)
        generator = getattr(source.base, "generator", None)
        if not isinstance(generator, ScenarioGenerator):
            raise ValueError("generator: the adversarial source's base has no generator")
    except ValueError as exc:
        raise ValueError(f"adversarial.{exc}") from exc
    search = AdversarialSearch.from_settings(generator, settings)
    plain_env = dataclasses.replace(config.env, scenarios=None)
    batch = min(settings.batch_size, settings.population * settings.episodes)
    score_env = make_vec_env(plain_env, max(1, batch), allow_sharing=False)
    baseline = make_baseline(
        settings.baseline,
        score_env,
        seed=config.seed,
        fit_seeds=range(config.seed, config.seed + settings.fit_episodes),
        field="adversarial.baseline",
    )
    agent_env: VecEnv = score_env
    if isinstance(venv, VecNormalize):
        agent_env = frozen_normalization(score_env, venv)
    training = venv

    def score_factory(model: Any) -> Score:
        if isinstance(training, VecNormalize) and isinstance(agent_env, VecNormalize):
            sync_normalization(training, agent_env)

        def score(scenarios: list[Any]) -> np.ndarray:
            return regret(
                model,
                baseline,
                score_env,
                scenarios,
                episodes=settings.episodes,
                seed=config.seed,
                agent_venv=agent_env,
            )

        return score

    return AdversarialCurriculum(
        source,
        search,
        score_factory,
        refresh_freq=settings.refresh_freq,
        seed=config.seed,
    )
