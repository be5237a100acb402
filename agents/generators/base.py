"""Scenario generators: fit on scenarios, sample new ones, save and load, feed environments.

A generator never sees a scenario dataclass directly: a :class:`ScenarioCodec` turns each
scenario of a family into a fixed-length float vector (its *features*) and back. Generators
learn and sample in feature space; decoding applies the family's repair rules (clip tiny
violations, renormalise sums) and rejects what cannot be repaired. Rejected draws are counted
in :attr:`ScenarioGenerator.stats` and replaced by fresh draws, so :meth:`~ScenarioGenerator.sample`
always returns valid scenarios.

:meth:`ScenarioGenerator.as_source` wraps a fitted generator as an
:class:`envs.core.scenario.ScenarioSource`, which every environment accepts as its ``scenario``
argument: a new scenario is then generated at each reset from the episode's random generator.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from envs.core.scenario import ScenarioSource

ScenarioT = TypeVar("ScenarioT")

FORMAT_VERSION = 1

GENERATOR_KINDS: dict[str, str] = {
    "list": "agents.generators.simple:ListGenerator",
    "parametric": "agents.generators.simple:ParametricGenerator",
    "wgan": "agents.generators.wgan:WGANGenerator",
}
"""``kind`` of each generator -> ``"module:Class"``, resolved by :meth:`ScenarioGenerator.load`."""


@runtime_checkable
class ScenarioCodec(Protocol[ScenarioT]):
    """Maps the scenarios of one family to fixed-length feature vectors and back.

    ``decode(encode(s))`` must equal ``s`` on the features the codec covers; everything else
    comes from the codec's base scenario.
    """

    @property
    def name(self) -> str:
        """Identifies the codec and its layout; saved generators are checked against it."""
        ...

    @property
    def dim(self) -> int:
        """Length of a feature vector."""
        ...

    @property
    def structure(self) -> ScenarioT:
        """A scenario whose shapes and bounds cover every scenario :meth:`decode` can return."""
        ...

    def encode(self, scenario: ScenarioT) -> np.ndarray:
        """Return the features of ``scenario`` as a float64 array of shape ``[dim]``."""
        ...

    def decode(self, features: np.ndarray) -> ScenarioT | None:
        """Repair ``features`` and build a scenario; ``None`` if they cannot be made valid."""
        ...


@dataclasses.dataclass
class GeneratorStats:
    """Counts of feature vectors drawn and rejected by :meth:`ScenarioGenerator.sample`.

    Attributes:
        proposed: feature vectors drawn from the generator.
        rejected: of those, vectors the codec could not turn into a valid scenario.
    """

    proposed: int = 0
    rejected: int = 0

    @property
    def accepted(self) -> int:
        """Feature vectors that became scenarios."""
        return self.proposed - self.rejected

    @property
    def invalid_rate(self) -> float:
        """Fraction of drawn vectors rejected (0 before any draw)."""
        return self.rejected / self.proposed if self.proposed else 0.0

    def reset(self) -> None:
        """Set both counts back to zero."""
        self.proposed = 0
        self.rejected = 0


class ScenarioGenerator(ABC, Generic[ScenarioT]):
    """A seeded source of new scenarios of one family, learnt from example scenarios.

    Subclasses implement :meth:`_fit`, :meth:`sample_features` and the ``_state``/``_restore``
    pair used by :meth:`save` and :meth:`load`; everything else (encoding, labels, rejection,
    counting, persistence, the environment source) lives here.

    Args:
        codec: the family's codec; it fixes the feature layout.
        max_rounds: how many rounds of redraws :meth:`sample` makes to replace rejected
            samples before it gives up with ``RuntimeError``.
    """

    kind: ClassVar[str] = ""
    """The name this class is saved under; a key of :data:`GENERATOR_KINDS`."""

    def __init__(self, codec: ScenarioCodec[ScenarioT], *, max_rounds: int = 50) -> None:
        if max_rounds < 1:
            raise ValueError(f"max_rounds: must be >= 1, got {max_rounds}")
        self.codec = codec
        self.max_rounds = max_rounds
        self.stats = GeneratorStats()
        self.label_values: list[Hashable] | None = None
        self.label_freqs: np.ndarray | None = None
        self.fitted = False

    # --- fitting ---------------------------------------------------------------------------
    def fit(
        self, scenarios: Sequence[ScenarioT], labels: Sequence[Hashable] | None = None
    ) -> ScenarioGenerator[ScenarioT]:
        """Learn the distribution of ``scenarios`` (optionally conditional on ``labels``).

        Args:
            scenarios: the training scenarios; each is encoded with the codec.
            labels: one label per scenario (any hashable: a name, a season, a city) to
                condition on; ``sample(label=...)`` then draws from one label's scenarios.

        Returns:
            The generator itself.
        """
        if len(scenarios) == 0:
            raise ValueError("scenarios: need at least one scenario to fit on")
        features = np.stack([self._encode(s) for s in scenarios])
        return self.fit_features(features, labels)

    def fit_features(
        self, features: np.ndarray, labels: Sequence[Hashable] | None = None
    ) -> ScenarioGenerator[ScenarioT]:
        """Like :meth:`fit`, on already encoded features ``[n, dim]``."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.codec.dim:
            raise ValueError(
                f"features: expected shape [n, {self.codec.dim}], got {list(features.shape)}"
            )
        if not np.isfinite(features).all():
            raise ValueError("features: training features must be finite")
        index = None
        if labels is not None:
            if len(labels) != len(features):
                raise ValueError(
                    f"labels: expected one label per scenario ({len(features)}), got {len(labels)}"
                )
            # numpy scalars (labels given as an array) become Python values, which save() writes
            labels = [v.item() if isinstance(v, np.generic) else v for v in labels]
            self.label_values = sorted(set(labels), key=repr)
            lookup = {v: i for i, v in enumerate(self.label_values)}
            index = np.asarray([lookup[v] for v in labels], dtype=np.int64)
            counts = np.bincount(index, minlength=len(self.label_values))
            self.label_freqs = counts / counts.sum()
        else:
            self.label_values = None
            self.label_freqs = None
        self._fit(features, index)
        self.fitted = True
        return self

    @abstractmethod
    def _fit(self, features: np.ndarray, labels: np.ndarray | None) -> None:
        """Learn from features ``[n, dim]`` and label indices ``[n]`` (or ``None``)."""

    # --- sampling --------------------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        """Whether the generator was fitted with labels."""
        return self.label_values is not None

    def label_index(self, label: Hashable | None, n: int, rng: np.random.Generator) -> np.ndarray:
        """Label indices ``[n]`` for ``label`` (``None``: drawn with the training frequencies)."""
        if self.label_values is None:
            if label is not None:
                raise ValueError("label: this generator was fitted without labels")
            return np.zeros(n, dtype=np.int64)
        if label is None:
            return rng.choice(len(self.label_values), size=n, p=self.label_freqs)
        if label not in self.label_values:
            raise ValueError(f"label: unknown label {label!r}; known: {self.label_values}")
        return np.full(n, self.label_values.index(label), dtype=np.int64)

    @abstractmethod
    def sample_features(
        self, n: int, rng: np.random.Generator, label: Hashable | None = None
    ) -> np.ndarray:
        """Draw ``n`` raw feature vectors ``[n, dim]`` (before repair and rejection)."""

    def sample(
        self, n: int, rng: np.random.Generator, label: Hashable | None = None
    ) -> list[ScenarioT]:
        """Draw ``n`` valid scenarios; invalid draws are rejected, counted and redrawn.

        Args:
            n: number of scenarios.
            rng: the only source of randomness: the same generator state gives the same
                scenarios.
            label: draw from this label's distribution (conditional generators only).

        Raises:
            ValueError: naming ``n`` if it is negative.
            RuntimeError: if ``max_rounds`` rounds of redraws still leave samples missing.
        """
        self._check_fitted()
        if n < 0:
            raise ValueError(f"n: must be >= 0 scenarios, got {n}")
        out: list[ScenarioT] = []
        for _ in range(self.max_rounds):
            need = n - len(out)
            if need <= 0:
                break
            raw = self.sample_features(need, rng, label)
            for row in raw:
                scenario = self.codec.decode(row)
                self.stats.proposed += 1
                if scenario is None:
                    self.stats.rejected += 1
                else:
                    out.append(scenario)
        if len(out) < n:
            raise RuntimeError(
                f"sample: only {len(out)} of {n} draws were valid after {self.max_rounds} "
                f"rounds (invalid rate {self.stats.invalid_rate:.3f})"
            )
        return out

    def as_source(
        self, structure: ScenarioT | None = None, label: Hashable | None = None
    ) -> GeneratorSource[ScenarioT]:
        """An environment scenario source that generates one scenario per reset.

        Args:
            structure: the scenario that fixes the environment's spaces; defaults to the
                codec's :attr:`~ScenarioCodec.structure`, which covers every decodable scenario.
            label: generate from this label only (conditional generators).
        """
        self._check_fitted()
        return GeneratorSource(self, structure, label)

    # --- persistence -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted generator to ``path`` (a ``.npz`` archive, no pickles)."""
        self._check_fitted()
        config, arrays = self._state()
        meta = {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "codec": self.codec.name,
            "dim": self.codec.dim,
            "max_rounds": self.max_rounds,
            "labels": self.label_values,
            "config": config,
        }
        payload: dict[str, Any] = {"__meta": np.asarray(json.dumps(meta)), **arrays}
        if self.label_freqs is not None:
            payload["__label_freqs"] = self.label_freqs
        with open(path, "wb") as fh:
            np.savez(fh, **payload)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], codec: ScenarioCodec[ScenarioT]
    ) -> ScenarioGenerator[ScenarioT]:
        """Read a generator written by :meth:`save`; ``codec`` must match the saved one.

        Called on the base class it returns whichever kind was saved; called on a subclass it
        also checks the kind.
        """
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta"]))
            arrays = {k: data[k] for k in data.files if not k.startswith("__")}
            freqs = data["__label_freqs"] if "__label_freqs" in data.files else None
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported format {meta.get('format')!r}")
        kind = meta["kind"]
        if kind not in GENERATOR_KINDS:
            raise ValueError(
                f"{path}: unknown generator kind {kind!r}; known: {sorted(GENERATOR_KINDS)}"
            )
        module, _, name = GENERATOR_KINDS[kind].partition(":")
        target = getattr(importlib.import_module(module), name)
        if cls.kind and target is not cls:
            raise ValueError(f"{path}: holds a {kind!r} generator, not {cls.kind!r}")
        if meta["codec"] != codec.name or meta["dim"] != codec.dim:
            raise ValueError(
                f"{path}: saved for codec {meta['codec']!r} (dim {meta['dim']}), "
                f"got {codec.name!r} (dim {codec.dim})"
            )
        gen = target._from_config(codec, meta["config"], max_rounds=meta["max_rounds"])
        labels = meta["labels"]
        gen.label_values = None if labels is None else [_hashable(v) for v in labels]
        gen.label_freqs = freqs
        gen._restore(arrays)
        gen.fitted = True
        return gen

    @classmethod
    def _from_config(
        cls, codec: ScenarioCodec[Any], config: Mapping[str, Any], *, max_rounds: int
    ) -> ScenarioGenerator[Any]:
        return cls(codec, max_rounds=max_rounds, **config)

    @abstractmethod
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able constructor arguments and the fitted arrays."""

    @abstractmethod
    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Set the fitted state from the arrays written by :meth:`_state`."""

    # --- helpers ---------------------------------------------------------------------------
    def _encode(self, scenario: ScenarioT) -> np.ndarray:
        x = np.asarray(self.codec.encode(scenario), dtype=np.float64)
        if x.shape != (self.codec.dim,):
            raise ValueError(
                f"codec {self.codec.name!r}: encode returned shape {list(x.shape)}, "
                f"expected [{self.codec.dim}]"
            )
        return x

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__}: call fit() before sampling or saving")


def _hashable(value: Any) -> Hashable:
    return tuple(value) if isinstance(value, list) else value


class GeneratorSource(ScenarioSource[ScenarioT]):
    """A :class:`~envs.core.scenario.ScenarioSource` that asks a generator for each episode.

    Args:
        generator: a fitted generator.
        structure: the scenario fixing the environment's spaces (default: the codec's).
        label: generate from this label only (conditional generators).
    """

    def __init__(
        self,
        generator: ScenarioGenerator[ScenarioT],
        structure: ScenarioT | None = None,
        label: Hashable | None = None,
    ) -> None:
        self.generator = generator
        self._structure = generator.codec.structure if structure is None else structure
        self.label = label

    @property
    def structure(self) -> ScenarioT:
        return self._structure

    def sample(self, rng: np.random.Generator) -> ScenarioT:
        return self.generator.sample(1, rng, self.label)[0]

    def __repr__(self) -> str:
        return (
            f"GeneratorSource({type(self.generator).__name__}, codec={self.generator.codec.name!r})"
        )
