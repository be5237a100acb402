"""The scenario families a generator can be fitted on: their codec and their real data.

Each entry of :data:`FAMILIES` is a :class:`Family` that knows

- which environment gives the *base* scenario its codec is built on (:meth:`Family.default_env`;
  ``None`` for a family no environment takes);
- how to build the codec on a base, ``codec(base, **params)``, and which resolved parameters
  rebuild it exactly (:meth:`Family.codec_params`, saved with a fitted generator);
- where its real scenarios come from: ``load_data(spec, codec, rng, n=...)`` returns their
  features ``[n, dim]`` and the scenarios themselves when there are any;
- how to show a scenario: a profile over time for figures, a readable form for files.

Families:

============  ====================================  ==========================================
family        data                                  codec and base
============  ====================================  ==========================================
synthetic     ``truth``: draws from the known       :class:`~agents.generators.synthetic.ProfileCodec`;
              distribution                          no environment
inventory     ``env``: realised demand of the env's :class:`~agents.generators.codecs.InventoryDemandCodec`
              scenario; ``presets:<a>+<b>``: of      on the env's scenario (default ``serial4``)
              those presets; ``levels:<m1>+<m2>``:
              Poisson demand of those means
traffic       ``resco:<net>``: windows of a RESCO    :class:`~agents.generators.traffic.TrafficDemandCodec`
              city's route file                     on the window scenario of ``<net>``
autoscale     ``bank_calls``: the business days of  :class:`~agents.generators.autoscale.AutoscaleLoadCodec`
              ``fpp3/bank_calls``; ``env``: load    on the env's scenario (default the
              drawn from the env's scenario;        bank-calls ``trace`` preset)
              ``presets:<a>+<b>``: from those
recsys        ``movielens``: the 671 MovieLens      :class:`~agents.generators.recsys.RecUserCodec`
              users' interests; ``env``: users      on the env's scenario (default the
              drawn from the env's scenario         ``movielens`` preset)
============  ====================================  ==========================================

Errors name the field (``family``, ``data``, ``params.<key>``, ``env``) and the allowed values.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from agents.generators.autoscale import (
    AutoscaleLoadCodec,
    bank_calls_days,
    realise_load,
)
from agents.generators.base import ScenarioCodec
from agents.generators.codecs import InventoryDemandCodec, realise_demand
from agents.generators.recsys import RecUserCodec, movielens_users, realise_users
from agents.generators.synthetic import ProfileCodec, SyntheticProfileFamily
from agents.generators.traffic import (
    RESCO_CITY_NETS,
    TrafficDemandCodec,
    resco_demand_profiles,
)
from envs.ops.autoscale.scenario import PRESET_NAMES as AUTOSCALE_PRESETS
from envs.ops.autoscale.scenario import AutoscaleScenario, make_scenario
from envs.ops.inventory.scenario import PRESETS, DemandConfig, InventoryScenario
from envs.recsys.scenario import RecScenario
from envs.traffic.scenario import TrafficScenario


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """An environment by registered id and constructor arguments (plain data).

    Attributes:
        id: registered id, e.g. ``lepton/Inventory-v0``.
        kwargs: constructor arguments; ``kwargs["scenario"]`` is the base scenario.
        name: short label (an env preset's ``name``), for messages.
    """

    id: str
    kwargs: dict[str, Any]
    name: str = ""


@dataclasses.dataclass(frozen=True)
class Profile:
    """A family's view of features as one curve per scenario, for figures.

    Attributes:
        values: ``[n, T]`` one curve per scenario.
        x: ``[T]`` positions of the curve's points.
        xlabel: what ``x`` is, with unit.
        ylabel: what ``values`` are, with unit.
    """

    values: np.ndarray
    x: np.ndarray
    xlabel: str
    ylabel: str


class Family(ABC):
    """How to fit and use generators on one scenario family (see the module docstring)."""

    name: ClassVar[str]
    scenario_type: ClassVar[type | None]
    """The environments' scenario class (``None``: no environment takes these scenarios)."""
    data_forms: ClassVar[tuple[str, ...]]
    """The allowed forms of a data spec, for messages."""
    default_data: ClassVar[str]
    codec_defaults: ClassVar[Mapping[str, Any]]
    """Codec parameters (``params.<key>``) and their defaults."""
    data_defaults: ClassVar[Mapping[str, Any]] = {}
    """Data parameters (``params.<key>``) and their defaults."""
    log_scale: ClassVar[bool] = False
    """Whether a WGAN should learn ``log(1 + x)`` of this family's features by default."""
    bounded: ClassVar[bool] = False
    """Whether a WGAN's outputs should stay near the training range by default (see
    :attr:`~agents.generators.wgan.WGANConfig.bound_margin`)."""
    default_split: ClassVar[str] = "random"
    """How ``lepton-generate fit`` holds real scenarios out by default (``random``, ``blocked``)."""
    adversarial_defaults: ClassVar[Mapping[str, Any]] = {"lam": 20.0, "episodes": 1}
    """The adversarial search's settings that depend on the family's returns: ``lam``, the
    realism penalty in return units, and ``episodes`` per scenario when scoring regret."""

    @classmethod
    def adversarial_settings(cls, settings: Any) -> Any:
        """The search settings with this family's defaults where they are ``None``.

        ``settings`` is a ``conf.schema.AdversarialSettings``; see :attr:`adversarial_defaults`.
        """
        filled = {
            key: value
            for key, value in cls.adversarial_defaults.items()
            if getattr(settings, key) is None
        }
        return dataclasses.replace(settings, **filled) if filled else settings

    def overlap_rows(self, data_params: Mapping[str, Any]) -> int:
        """Rows of the data that share part of their content with the next row onwards.

        A ``blocked`` split leaves this many rows out between the training rows and the
        held-out ones, so no training scenario contains part of a held-out one. ``data_params``
        are the resolved ones (:meth:`resolved_data_params`).
        """
        return 0

    # --- parameters ------------------------------------------------------------------------
    def split_params(
        self, params: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Codec and data parameters from ``params`` over the defaults (``None``: default).

        Raises:
            ValueError: naming ``params.<key>`` and the allowed keys for an unknown key.
        """
        params = {k: v for k, v in (params or {}).items() if v is not None}
        allowed = [*self.codec_defaults, *self.data_defaults]
        for key in params:
            if key not in allowed:
                raise ValueError(
                    f"params.{key}: not a parameter of the {self.name} family; allowed: "
                    f"{allowed or 'none'}"
                )
        codec = {k: params.get(k, v) for k, v in self.codec_defaults.items()}
        data = {k: params.get(k, v) for k, v in self.data_defaults.items()}
        return codec, data

    # --- data ------------------------------------------------------------------------------
    def check_data(self, spec: str) -> None:
        """Raise ``ValueError`` naming ``data`` and the allowed forms unless ``spec`` fits."""
        if not self._data_ok(spec):
            self._bad_data(spec)

    @abstractmethod
    def _data_ok(self, spec: str) -> bool: ...

    def _presets_ok(self, spec: str, known: Sequence[str]) -> bool:
        """Whether ``spec`` is ``presets:<a>+<b>...``; raises naming presets not in ``known``."""
        kind, sep, rest = spec.partition(":")
        if kind != "presets" or not sep:
            return False
        unknown = [s for s in _preset_names(rest) if s not in known]
        if not rest or unknown:
            raise ValueError(
                f"data: unknown {self.name} preset(s) {unknown or [rest]} in {spec!r}; allowed "
                f"presets: {list(known)}"
            )
        return True

    def _bad_data(self, spec: str, why: str = "") -> None:
        reason = f" ({why})" if why else ""
        raise ValueError(
            f"data: {spec!r} is not a data source of the {self.name} family{reason}; allowed: "
            f"{', '.join(self.data_forms)}"
        )

    def default_env(self, spec: str, data_params: Mapping[str, Any]) -> EnvSpec | None:
        """The environment whose scenario is the base, when none is given (``None``: none)."""
        return None

    def check_env(self, env: EnvSpec | None, data_params: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming ``env`` when the family cannot use a given env."""
        if env is not None and self.scenario_type is None:
            raise ValueError(
                f"env: the {self.name} family's scenarios are not environment scenarios; "
                "leave env unset"
            )

    def resolved_data_params(
        self, data_params: Mapping[str, Any], codec: ScenarioCodec[Any]
    ) -> dict[str, Any]:
        """``data_params`` with defaults that depend on the base filled in (for records)."""
        return dict(data_params)

    def codec(self, base: Any, **params: Any) -> ScenarioCodec[Any]:
        """The family's codec on ``base`` (the env's scenario; ``None`` without an env).

        Raises:
            ValueError: naming ``params.<key>`` for a parameter the codec refuses.
        """
        try:
            return self._codec(base, **params)
        except ValueError as exc:
            key = str(exc).partition(":")[0]
            if key in params:
                raise ValueError(f"params.{exc}") from exc
            raise

    @abstractmethod
    def _codec(self, base: Any, **params: Any) -> ScenarioCodec[Any]:
        """Build the codec; errors about a parameter start with ``<key>:``."""

    @abstractmethod
    def codec_params(self, codec: ScenarioCodec[Any]) -> dict[str, Any]:
        """JSON-able parameters that rebuild ``codec`` exactly on the same base."""

    @abstractmethod
    def load_data(
        self,
        spec: str,
        codec: ScenarioCodec[Any],
        rng: np.random.Generator,
        *,
        n: int,
        **data_params: Any,
    ) -> tuple[np.ndarray, list[Any] | None]:
        """Real features ``[n, dim]`` (and their scenarios, when there are any) for ``spec``.

        Args:
            spec: the data spec (one of :attr:`data_forms`).
            codec: the codec the features are laid out for.
            rng: the only randomness of the draws.
            n: how many scenarios to draw, for families that draw them.
            **data_params: the family's data parameters.
        """

    # --- views -----------------------------------------------------------------------------
    @abstractmethod
    def profile(self, features: np.ndarray, codec: ScenarioCodec[Any]) -> Profile:
        """One curve per row of ``features`` ``[n, dim]``, for figures."""

    @abstractmethod
    def describe(self, scenario: Any, codec: ScenarioCodec[Any]) -> dict[str, Any]:
        """A readable, JSON-able form of a decoded scenario."""


# --- synthetic ---------------------------------------------------------------------------------
class SyntheticFamily(Family):
    """Daily demand profiles drawn from :class:`~agents.generators.synthetic.SyntheticProfileFamily`.

    Parameters: ``periods`` (24), ``max_rate`` (5000 units/hour), ``tolerance`` (1 unit/hour).
    """

    name = "synthetic"
    scenario_type = None
    data_forms = ("truth",)
    default_data = "truth"
    codec_defaults: ClassVar[Mapping[str, Any]] = {
        "periods": 24,
        "max_rate": 5000.0,
        "tolerance": 1.0,
    }

    def _data_ok(self, spec: str) -> bool:
        return spec == "truth"

    def _codec(self, base: Any, **params: Any) -> ScenarioCodec[Any]:
        periods = params.get("periods", 24)
        if isinstance(periods, bool) or not isinstance(periods, int) or periods < 1:
            raise ValueError(f"periods: must be an integer >= 1, got {periods!r}")
        return ProfileCodec(
            periods,
            max_rate=float(params.get("max_rate", 5000.0)),
            tolerance=float(params.get("tolerance", 1.0)),
        )

    def codec_params(self, codec: ScenarioCodec[Any]) -> dict[str, Any]:
        assert isinstance(codec, ProfileCodec)
        return {"periods": codec.periods, "max_rate": codec.max_rate, "tolerance": codec.tolerance}

    def load_data(
        self,
        spec: str,
        codec: ScenarioCodec[Any],
        rng: np.random.Generator,
        *,
        n: int,
        **data_params: Any,
    ) -> tuple[np.ndarray, list[Any] | None]:
        self.check_data(spec)
        profiles = SyntheticProfileFamily(periods=codec.dim).sample(n, rng)
        return np.stack([codec.encode(p) for p in profiles]), list(profiles)

    def profile(self, features: np.ndarray, codec: ScenarioCodec[Any]) -> Profile:
        x = (np.arange(codec.dim) + 0.5) * 24.0 / codec.dim
        return Profile(np.asarray(features), x, "hour of the day", "demand rate (units/hour)")

    def describe(self, scenario: Any, codec: ScenarioCodec[Any]) -> dict[str, Any]:
        hours = 24.0 / codec.dim
        table = [
            {"from_h": round(k * hours, 4), "to_h": round((k + 1) * hours, 4), "rate": r}
            for k, r in enumerate(scenario.rates)
        ]
        return {"unit": "units/hour", "rates": list(scenario.rates), "periods": table}


# --- inventory ---------------------------------------------------------------------------------
class InventoryFamily(Family):
    """The supply chain's demand series, realised from stochastic demand.

    The base is the env's scenario (default ``lepton/Inventory-v0`` on ``serial4``). Data
    ``env`` realises the base's own demand ``n`` times; ``presets:<a>+<b>`` realises each
    preset about ``n / k`` times (they must share the base's horizon); ``levels:<m1>+<m2>``
    realises the base with Poisson demand of mean ``m1``, ``m2``, ... units/period about
    ``n / k`` times each, in that order (demand regimes that differ between scenarios, where
    the presets all share one stationary Poisson demand). Parameters:
    ``max_demand`` (default: the codec's, from the base's peak mean and spread), ``tolerance`` (0.5
    units), ``integer`` (round to whole units).
    """

    name = "inventory"
    scenario_type = InventoryScenario
    data_forms = ("env", "presets:<preset>[+<preset>...]", "levels:<mean>[+<mean>...]")
    default_data = "env"
    codec_defaults: ClassVar[Mapping[str, Any]] = {
        "max_demand": None,
        "tolerance": 0.5,
        "integer": True,
    }

    def _data_ok(self, spec: str) -> bool:
        if spec == "env":
            return True
        if spec.startswith("levels:"):
            _demand_levels(spec)
            return True
        return self._presets_ok(spec, sorted(PRESETS))

    def default_env(self, spec: str, data_params: Mapping[str, Any]) -> EnvSpec | None:
        return EnvSpec("lepton/Inventory-v0", {"scenario": "serial4"}, "inventory")

    def _codec(self, base: Any, **params: Any) -> ScenarioCodec[Any]:
        return InventoryDemandCodec(
            base,
            max_demand=params.get("max_demand"),
            tolerance=float(params.get("tolerance", 0.5)),
            integer=bool(params.get("integer", True)),
        )

    def codec_params(self, codec: ScenarioCodec[Any]) -> dict[str, Any]:
        assert isinstance(codec, InventoryDemandCodec)
        return {
            "max_demand": codec.max_demand,
            "tolerance": codec.tolerance,
            "integer": codec.integer,
        }

    def load_data(
        self,
        spec: str,
        codec: ScenarioCodec[Any],
        rng: np.random.Generator,
        *,
        n: int,
        **data_params: Any,
    ) -> tuple[np.ndarray, list[Any] | None]:
        self.check_data(spec)
        assert isinstance(codec, InventoryDemandCodec)
        if spec == "env":
            sources = [codec.base]
        elif spec.startswith("levels:"):
            sources = [
                dataclasses.replace(
                    codec.base,
                    name=f"{codec.base.name}_mean{m:g}",
                    demand=DemandConfig(kind="poisson", mean=m),
                )
                for m in _demand_levels(spec)
            ]
        else:
            sources = [PRESETS[s] for s in _preset_names(spec.partition(":")[2])]
        for sc in sources:
            if sc.horizon != codec.dim:
                self._bad_data(
                    spec,
                    f"preset {sc.name!r} has horizon {sc.horizon}, the env's scenario "
                    f"{codec.base.name!r} has {codec.dim}; use presets of horizon {codec.dim} "
                    "or an env whose scenario has theirs",
                )
        per = max(1, math.ceil(n / len(sources)))
        scenarios = realise_demand(sources, rng, per_scenario=per)
        return np.stack([codec.encode(s) for s in scenarios]), scenarios

    def profile(self, features: np.ndarray, codec: ScenarioCodec[Any]) -> Profile:
        x = np.arange(codec.dim, dtype=np.float64)
        return Profile(np.asarray(features), x, "period", "customer demand (units/period)")

    def describe(self, scenario: Any, codec: ScenarioCodec[Any]) -> dict[str, Any]:
        series = list(scenario.demand.series)
        return {
            "base": codec.structure.name.removesuffix("_generated"),
            "unit": "units/period",
            "demand_series": series,
            "mean": float(np.mean(series)),
            "peak": float(np.max(series)),
            "total": float(np.sum(series)),
        }


def _preset_names(text: str) -> list[str]:
    """Preset names joined by ``+`` (or ``,``, which Hydra's command line reads as a sweep)."""
    return [s.strip() for s in text.replace(",", "+").split("+")]


def _demand_levels(spec: str) -> list[float]:
    """The mean demands of ``levels:<m1>+<m2>...`` (units/period, finite and >= 0)."""
    levels = []
    for text in _preset_names(spec.partition(":")[2]):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise ValueError(
                f"data: {text!r} in {spec!r} is not a mean demand; levels:<mean>[+<mean>...] "
                "takes finite numbers >= 0 in units/period, e.g. levels:10+20+30+40"
            )
        levels.append(value)
    return levels


class _BinnedRatesFamily(Family):
    """A family whose codec takes rates in time ``bins`` below ``max_rate``, with a ``tolerance``.

    ``codec_class`` is built as ``codec_class(base, bins=..., max_rate=..., tolerance=...)``
    and has those three attributes (traffic, autoscale).
    """

    codec_class: ClassVar[type[Any]]

    def _codec(self, base: Any, **params: Any) -> ScenarioCodec[Any]:
        return self.codec_class(
            base,
            bins=params.get("bins", self.codec_defaults["bins"]),
            max_rate=params.get("max_rate"),
            tolerance=params.get("tolerance"),
        )

    def codec_params(self, codec: ScenarioCodec[Any]) -> dict[str, Any]:
        assert isinstance(codec, self.codec_class)
        return {"bins": codec.bins, "max_rate": codec.max_rate, "tolerance": codec.tolerance}


# --- traffic -----------------------------------------------------------------------------------
class TrafficFamily(_BinnedRatesFamily):
    """Per-route demand of a RESCO city network, from windows of its real route file.

    The base is the window scenario ``{resco: <net>, begin, end}`` of the traffic grid env
    (``seconds`` long from ``start``, default the ``.sumocfg``'s begin), or the scenario of a
    given env on that network. Data ``resco:<net>`` slides the window over the route file with
    ``stride`` (see :func:`~agents.generators.traffic.resco_demand_profiles`). Parameters:
    ``bins`` (12), ``max_rate`` and ``tolerance`` (the codec's defaults), ``seconds`` (900 s),
    ``stride`` (300 s), ``start`` (s).
    """

    name = "traffic"
    scenario_type = TrafficScenario
    codec_class = TrafficDemandCodec
    data_forms = tuple(f"resco:{net}" for net in RESCO_CITY_NETS)
    default_data = "resco:cologne1"
    codec_defaults: ClassVar[Mapping[str, Any]] = {"bins": 12, "max_rate": None, "tolerance": None}
    data_defaults: ClassVar[Mapping[str, Any]] = {"seconds": None, "stride": None, "start": None}
    log_scale = True
    bounded = True
    default_split = "blocked"
    DEFAULT_SECONDS = 900.0
    """Window length without ``params.seconds`` or an env, s."""
    DEFAULT_STRIDE = 300.0
    """Seconds between the starts of real windows without ``params.stride``."""

    def _data_ok(self, spec: str) -> bool:
        return spec in self.data_forms

    def default_env(self, spec: str, data_params: Mapping[str, Any]) -> EnvSpec | None:
        from envs.traffic.nets import sumocfg_path
        from envs.traffic.sumo_import import read_sumocfg

        self.check_data(spec)
        net = spec.partition(":")[2]
        start = data_params.get("start")
        if start is None:
            start = float(read_sumocfg(sumocfg_path(net)).begin or 0.0)
        seconds = data_params.get("seconds") or self.DEFAULT_SECONDS
        scenario = {"resco": net, "begin": float(start), "end": float(start) + float(seconds)}
        return EnvSpec("lepton/TrafficGrid-v0", {"scenario": scenario}, f"resco_{net}")

    def check_env(self, env: EnvSpec | None, data_params: Mapping[str, Any]) -> None:
        if env is None:
            return
        for key in ("seconds", "start"):
            if data_params.get(key) is not None:
                raise ValueError(
                    f"params.{key}: the window comes from the env's scenario when env is given; "
                    f"drop params.{key} or env"
                )

    def resolved_data_params(
        self, data_params: Mapping[str, Any], codec: ScenarioCodec[Any]
    ) -> dict[str, Any]:
        assert isinstance(codec, TrafficDemandCodec)
        seconds = codec.base.end - codec.base.begin
        return {
            "seconds": seconds,
            "stride": float(data_params.get("stride") or self.DEFAULT_STRIDE),
            "start": codec.base.begin,
        }

    def overlap_rows(self, data_params: Mapping[str, Any]) -> int:
        # windows start every stride seconds: the ceil(seconds / stride) - 1 windows before a
        # window each share part of its time span
        return max(math.ceil(data_params["seconds"] / data_params["stride"] - 1e-9) - 1, 0)

    def load_data(
        self,
        spec: str,
        codec: ScenarioCodec[Any],
        rng: np.random.Generator,
        *,
        n: int,
        **data_params: Any,
    ) -> tuple[np.ndarray, list[Any] | None]:
        self.check_data(spec)
        assert isinstance(codec, TrafficDemandCodec)
        base = codec.base
        theirs, prof = resco_demand_profiles(
            spec.partition(":")[2],
            seconds=base.end - base.begin,
            start=base.begin,
            bins=codec.bins,
            stride=float(data_params.get("stride") or self.DEFAULT_STRIDE),
            max_rate=codec.max_rate,
            tolerance=codec.tolerance,
        )
        if theirs.name != codec.name:
            self._bad_data(
                spec,
                f"its windows have codec {theirs.name!r} but the env's scenario gives "
                f"{codec.name!r}: the env must be the same network and window",
            )
        return prof.features, list(prof.scenarios)

    def profile(self, features: np.ndarray, codec: ScenarioCodec[Any]) -> Profile:
        assert isinstance(codec, TrafficDemandCodec)
        x = np.asarray(features).reshape(len(features), codec.num_routes, codec.bins).sum(axis=1)
        minutes = (codec.edges[:-1] - codec.base.begin) / 60.0
        return Profile(x, minutes, "minutes into the window", "total demand (vehicles/hour)")

    def describe(self, scenario: Any, codec: ScenarioCodec[Any]) -> dict[str, Any]:
        assert isinstance(codec, TrafficDemandCodec)
        rates = codec.encode(scenario).reshape(codec.num_routes, codec.bins)
        hours = codec.bin_seconds / 3600.0
        routes = [
            {
                "route": r.id,
                "edges": " ".join(r.edges),
                "veh_per_h": [round(float(v), 3) for v in row],
                "vehicles": round(float(row.sum() * hours), 3),
            }
            for r, row in zip(codec.base.routes, rates, strict=True)
            if row.any()
        ]
        return {
            "network": codec.base.name,
            "window_s": [codec.base.begin, codec.base.end],
            "bin_starts_s": [float(t) for t in codec.edges[:-1]],
            "unit": "vehicles/hour per route and time bin (Poisson departures)",
            "total_veh_per_h": [round(float(v), 3) for v in rates.sum(axis=0)],
            "expected_vehicles": round(float(rates.sum() * hours), 3),
            "routes": routes,
        }


# --- autoscale ---------------------------------------------------------------------------------
class AutoscaleFamily(_BinnedRatesFamily):
    """The request load of an autoscaled cluster: every service's rate over an episode.

    The base is the env's scenario (default ``lepton/Autoscale-v0`` on the ``trace`` preset,
    one business day of bank calls). Data ``bank_calls`` takes each of the 164 days of the
    ``fpp3/bank_calls`` trace once (real load; the ``data`` extra); ``env`` draws ``n``
    episodes of the base's own arrival process (profile or trace, noise and bursts);
    ``presets:<a>+<b>`` draws about ``n / k`` episodes of each preset (they must share the
    base's services count, horizon and step). Parameters: ``bins`` (bins of 5 minutes or
    more that split the horizon), ``max_rate`` (twice the base's planning peak, requests/s),
    ``tolerance`` (1 % of ``max_rate``).
    """

    name = "autoscale"
    scenario_type = AutoscaleScenario
    codec_class = AutoscaleLoadCodec
    data_forms = ("bank_calls", "env", "presets:<preset>[+<preset>...]")
    default_data = "bank_calls"
    codec_defaults: ClassVar[Mapping[str, Any]] = {
        "bins": None,
        "max_rate": None,
        "tolerance": None,
    }
    bounded = True

    def _data_ok(self, spec: str) -> bool:
        if spec in ("bank_calls", "env"):
            return True
        return self._presets_ok(spec, list(AUTOSCALE_PRESETS))

    def default_env(self, spec: str, data_params: Mapping[str, Any]) -> EnvSpec | None:
        return EnvSpec("lepton/Autoscale-v0", {"scenario": "trace"}, "autoscale_trace")

    def load_data(
        self,
        spec: str,
        codec: ScenarioCodec[Any],
        rng: np.random.Generator,
        *,
        n: int,
        **data_params: Any,
    ) -> tuple[np.ndarray, list[Any] | None]:
        self.check_data(spec)
        assert isinstance(codec, AutoscaleLoadCodec)
        try:
            if spec == "bank_calls":
                return bank_calls_days(codec)
            if spec == "env":
                sources = [codec.base]
            else:
                sources = [make_scenario(p) for p in _preset_names(spec.partition(":")[2])]
            per = max(1, math.ceil(n / len(sources)))
            features, scenarios = realise_load(codec, sources, rng, per_scenario=per)
        except ValueError as exc:
            self._bad_data(spec, str(exc))
        return features, scenarios

    def profile(self, features: np.ndarray, codec: ScenarioCodec[Any]) -> Profile:
        assert isinstance(codec, AutoscaleLoadCodec)
        x = np.asarray(features).reshape(len(features), codec.num_services, codec.bins)
        hours = codec.base.start_hour + np.arange(codec.bins) * codec.bin_minutes / 60.0
        return Profile(x.sum(axis=1), hours, "hour of the day", "requests/s (all services)")

    def describe(self, scenario: Any, codec: ScenarioCodec[Any]) -> dict[str, Any]:
        assert isinstance(codec, AutoscaleLoadCodec)
        rates = codec.rates(scenario)
        seconds = 60.0 * codec.bin_minutes
        return {
            "base": codec.base.name,
            "start_hour": codec.base.start_hour,
            "bin_minutes": codec.bin_minutes,
            "unit": "requests/s per service and time bin (Poisson arrivals)",
            "services": [
                {
                    "name": s.name,
                    "rate": [round(float(v), 4) for v in row],
                    "mean": round(float(row.mean()), 4),
                    "peak": round(float(row.max()), 4),
                }
                for s, row in zip(codec.base.services, rates, strict=True)
            ],
            "expected_requests": round(float(rates.sum() * seconds), 1),
        }


# --- recommendation ----------------------------------------------------------------------------
class RecsysFamily(Family):
    """The users of a recommendation env: a session user's initial topic interests.

    The base is the env's scenario (default ``lepton/RecMovieLens-v0`` on the ``movielens``
    preset). Data ``movielens`` takes each of the 671 MovieLens users once (real users, in the
    topics the MovieLens catalogue is fitted in; the ``data`` extra); ``env`` draws ``n`` users
    from the base's own interest distribution. Parameter: ``tolerance`` (0.2: how far outside
    [-1, 1] an interest may lie and be clipped back).
    """

    name = "recsys"
    scenario_type = RecScenario
    data_forms = ("movielens", "env")
    default_data = "movielens"
    codec_defaults: ClassVar[Mapping[str, Any]] = {"tolerance": None}
    adversarial_defaults: ClassVar[Mapping[str, Any]] = {"lam": 0.5, "episodes": 32}
    """A session's watch time varies by some 40 % of its mean from episode to episode (17 of 45
    minutes on MovieLens), while one user's regret is a few minutes: 32 episodes per user, and
    a penalty on that scale."""

    def _data_ok(self, spec: str) -> bool:
        return spec in self.data_forms

    def default_env(self, spec: str, data_params: Mapping[str, Any]) -> EnvSpec | None:
        return EnvSpec("lepton/RecMovieLens-v0", {"scenario": "movielens"}, "movielens")

    def _codec(self, base: Any, **params: Any) -> ScenarioCodec[Any]:
        return RecUserCodec(base, tolerance=params.get("tolerance"))

    def codec_params(self, codec: ScenarioCodec[Any]) -> dict[str, Any]:
        assert isinstance(codec, RecUserCodec)
        return {"tolerance": codec.tolerance}

    def load_data(
        self,
        spec: str,
        codec: ScenarioCodec[Any],
        rng: np.random.Generator,
        *,
        n: int,
        **data_params: Any,
    ) -> tuple[np.ndarray, list[Any] | None]:
        self.check_data(spec)
        assert isinstance(codec, RecUserCodec)
        try:
            if spec == "movielens":
                return movielens_users(codec)
            features, scenarios = realise_users(codec, [codec.base], rng, per_scenario=n)
        except ValueError as exc:
            self._bad_data(spec, str(exc))
        return features, scenarios

    def profile(self, features: np.ndarray, codec: ScenarioCodec[Any]) -> Profile:
        x = np.arange(codec.dim, dtype=np.float64)
        return Profile(np.asarray(features), x, "topic", "initial interest")

    def describe(self, scenario: Any, codec: ScenarioCodec[Any]) -> dict[str, Any]:
        assert isinstance(codec, RecUserCodec)
        interests = codec.encode(scenario)
        return {
            "base": codec.base.name,
            "catalogue": codec.base.catalogue,
            "unit": "initial interest per topic, in [-1, 1]",
            "interests": [round(float(v), 4) for v in interests],
            "top_topics": [int(k) for k in np.argsort(-interests)[:3]],
        }


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        SyntheticFamily(),
        InventoryFamily(),
        TrafficFamily(),
        AutoscaleFamily(),
        RecsysFamily(),
    )
}
"""Family name -> its :class:`Family`."""


def get_family(name: str) -> Family:
    """The family called ``name``.

    Raises:
        ValueError: naming ``family`` and the allowed names.
    """
    if name not in FAMILIES:
        raise ValueError(f"family: {name!r} is not allowed; allowed: {sorted(FAMILIES)}")
    return FAMILIES[name]


def family_names() -> Sequence[str]:
    """Names of the registered families."""
    return sorted(FAMILIES)
