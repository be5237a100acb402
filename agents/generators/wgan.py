"""A Wasserstein GAN with gradient penalty over scenario features (Gulrajani et al., 2017).

Generator and critic are small MLPs over standardised features; a label, when the generator is
fitted with labels, is appended to the noise and to the critic's input as a one-hot vector.
Training is seeded and runs on the CPU; sampling draws its noise from the caller's numpy
generator, so scenarios are reproducible from the environment's seed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from agents.generators.base import ScenarioCodec, ScenarioGenerator, ScenarioT


@dataclasses.dataclass(frozen=True)
class WGANConfig:
    """Architecture and training budget of :class:`WGANGenerator`.

    Attributes:
        noise_dim: length of the generator's Gaussian input.
        hidden: widths of the hidden layers of both networks.
        steps: generator updates; the critic is updated ``critic_steps`` times per step.
        critic_steps: critic updates per generator update.
        batch_size: samples per update.
        lr: Adam learning rate of both networks.
        betas: Adam betas (``(0.5, 0.9)`` as in the WGAN-GP paper's toy experiments).
        gp_weight: weight of the gradient penalty (lambda).
        seed: seeds weights, batches, noise and penalty interpolation.
        threads: torch intra-op threads while fitting (``None``: leave torch's setting); one
            thread is fastest for networks this small.
        max_seconds: stop fitting early after this much wall time (``None``: run all steps).
        log_scale: learn ``log(1 + x)`` of non-negative features (rates, demands, volumes):
            multiplicative variation becomes additive and generated values stay above -1.
        bound_margin: confine each generated feature to its training range widened by this
            fraction of the range on each side (in the space the networks learn, after
            ``log_scale``), through a scaled ``tanh`` output layer. ``None``: a linear output
            layer, unbounded. With few training scenarios, an unbounded generator's tails run
            far past the data; draws past the codec's limits are rejected, and rejecting the
            heavy tail biases the accepted scenarios low.
    """

    noise_dim: int = 16
    hidden: tuple[int, ...] = (128, 128)
    steps: int = 2000
    critic_steps: int = 5
    batch_size: int = 128
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    gp_weight: float = 10.0
    seed: int = 0
    threads: int | None = 1
    max_seconds: float | None = None
    log_scale: bool = False
    bound_margin: float | None = None

    def __post_init__(self) -> None:
        for field in ("noise_dim", "steps", "critic_steps", "batch_size"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field}: must be >= 1, got {getattr(self, field)}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden: need at least one layer of width >= 1, got {self.hidden}")
        if not self.lr > 0:
            raise ValueError(f"lr: must be > 0, got {self.lr!r}")
        if not self.gp_weight >= 0:
            raise ValueError(f"gp_weight: must be >= 0, got {self.gp_weight!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(
                f"betas: must be two numbers in [0, 1) (Adam's beta1, beta2), got {list(self.betas)}"
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads: must be >= 1 or None (torch's setting), got {self.threads}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(
                f"max_seconds: must be > 0 or None (every step), got {self.max_seconds}"
            )
        if self.bound_margin is not None and not self.bound_margin >= 0:
            raise ValueError(f"bound_margin: must be >= 0 or None, got {self.bound_margin!r}")


def _mlp(inputs: int, hidden: tuple[int, ...], outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
        width = h
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


class _Bounded(nn.Module):
    """``tanh`` squashed into ``[low, high]`` per feature (bounds saved with the weights)."""

    centre: torch.Tensor
    radius: torch.Tensor

    def __init__(self, low: np.ndarray, high: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("centre", torch.as_tensor((low + high) / 2, dtype=torch.float32))
        self.register_buffer("radius", torch.as_tensor((high - low) / 2, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.centre + self.radius * torch.tanh(x)


class WGANGenerator(ScenarioGenerator[ScenarioT]):
    """WGAN-GP over a family's scenario features, optionally conditional on a label.

    Args:
        codec: the family's codec.
        config: architecture and budget; keyword ``overrides`` replace single fields.
        max_rounds: see :class:`~agents.generators.base.ScenarioGenerator`.
        **overrides: fields of :class:`WGANConfig`.

    Attributes:
        history: per logged step, ``(step, critic loss, Wasserstein estimate)`` of the last fit.
    """

    kind: ClassVar[str] = "wgan"

    def __init__(
        self,
        codec: ScenarioCodec[ScenarioT],
        config: WGANConfig | None = None,
        *,
        max_rounds: int = 50,
        **overrides: Any,
    ) -> None:
        super().__init__(codec, max_rounds=max_rounds)
        config = config or WGANConfig()
        if "hidden" in overrides:
            overrides["hidden"] = tuple(overrides["hidden"])
        if "betas" in overrides:
            overrides["betas"] = tuple(overrides["betas"])
        self.config = dataclasses.replace(config, **overrides)
        self.mean = np.zeros(codec.dim)
        self.std = np.ones(codec.dim)
        self.num_labels = 0
        self.generator: nn.Sequential | None = None
        self.history: list[tuple[int, float, float]] = []
        self.fit_seconds = 0.0

    @classmethod
    def _from_config(
        cls, codec: ScenarioCodec[Any], config: Mapping[str, Any], *, max_rounds: int
    ) -> WGANGenerator[Any]:
        return cls(codec, max_rounds=max_rounds, **config)

    def _build(
        self, low: np.ndarray | None = None, high: np.ndarray | None = None
    ) -> nn.Sequential:
        """The generator network; bounded (see ``bound_margin``) to ``[low, high]``, standardised."""
        c = self.config
        net = _mlp(c.noise_dim + self.num_labels, c.hidden, self.codec.dim)
        if c.bound_margin is not None:
            zeros = np.zeros(self.codec.dim)
            net.append(_Bounded(zeros if low is None else low, zeros if high is None else high))
        return net

    # --- training --------------------------------------------------------------------------
    def _fit(self, features: np.ndarray, labels: np.ndarray | None) -> None:
        c = self.config
        if c.log_scale:
            if (features < 0).any():
                raise ValueError("features: log_scale needs non-negative features")
            features = np.log1p(features)
        self.mean = features.mean(axis=0)
        self.std = np.where(features.std(axis=0) > 1e-8, features.std(axis=0), 1.0)
        self.num_labels = 0 if self.label_values is None else len(self.label_values)
        scaled = (features - self.mean) / self.std
        data = torch.as_tensor(scaled, dtype=torch.float32)
        onehot = (
            torch.nn.functional.one_hot(torch.as_tensor(labels), self.num_labels).float()
            if labels is not None
            else torch.zeros(len(features), 0)
        )
        threads = torch.get_num_threads()
        if c.threads is not None:
            torch.set_num_threads(c.threads)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(c.seed)
                self._train(data, onehot, scaled.min(axis=0), scaled.max(axis=0))
        finally:
            torch.set_num_threads(threads)

    def _train(
        self, data: torch.Tensor, onehot: torch.Tensor, low: np.ndarray, high: np.ndarray
    ) -> None:
        c = self.config
        widen = 0.0 if c.bound_margin is None else c.bound_margin * (high - low)
        gen = self._build(low - widen, high + widen)
        critic = _mlp(self.codec.dim + self.num_labels, c.hidden, 1)
        opt_g = torch.optim.Adam(gen.parameters(), lr=c.lr, betas=c.betas)
        opt_d = torch.optim.Adam(critic.parameters(), lr=c.lr, betas=c.betas)
        n, batch = len(data), min(c.batch_size, len(data))
        start = time.perf_counter()
        self.history = []

        def noise(cond: torch.Tensor) -> torch.Tensor:
            return torch.cat([torch.randn(len(cond), c.noise_dim), cond], dim=1)

        for step in range(c.steps):
            for _ in range(c.critic_steps):
                idx = torch.randint(n, (batch,))
                real, cond = data[idx], onehot[idx]
                with torch.no_grad():
                    fake = gen(noise(cond))
                eps = torch.rand(batch, 1)
                mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
                score = critic(torch.cat([mix, cond], dim=1))
                (grad,) = torch.autograd.grad(score.sum(), mix, create_graph=True)
                penalty = ((grad.norm(dim=1) - 1.0) ** 2).mean()
                w = (
                    critic(torch.cat([real, cond], 1)).mean()
                    - critic(torch.cat([fake, cond], 1)).mean()
                )
                loss_d = -w + c.gp_weight * penalty
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
            cond = onehot[torch.randint(n, (batch,))]
            loss_g = -critic(torch.cat([gen(noise(cond)), cond], dim=1)).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            out_of_time = c.max_seconds is not None and time.perf_counter() - start > c.max_seconds
            if step % 100 == 0 or step == c.steps - 1 or out_of_time:
                self.history.append((step, loss_d.item(), w.item()))
            if out_of_time:
                break
        self.fit_seconds = time.perf_counter() - start
        gen.eval()
        self.generator = gen

    # --- sampling --------------------------------------------------------------------------
    def sample_features(
        self, n: int, rng: np.random.Generator, label: Hashable | None = None
    ) -> np.ndarray:
        return self.features_from_noise(rng.standard_normal((n, self.config.noise_dim)), label, rng)

    @property
    def latent_dim(self) -> int:
        """Length of the Gaussian noise input ``z`` (what :meth:`features_from_noise` takes)."""
        return self.config.noise_dim

    def features_from_noise(
        self,
        z: np.ndarray,
        label: Hashable | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Raw features ``[n, dim]`` the generator network makes of the noise ``z`` ``[n, noise_dim]``.

        Args:
            z: standard-normal noise (any values: an optimiser may move it off the prior).
            label: the label to condition on (conditional generators; ``None``: drawn with the
                training frequencies from ``rng``).
            rng: draws the labels of a conditional generator when ``label`` is ``None``.
        """
        self._check_fitted()
        assert self.generator is not None
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.config.noise_dim:
            raise ValueError(f"z: expected shape [n, {self.config.noise_dim}], got {list(z.shape)}")
        n = len(z)
        if self.num_labels:
            rng = rng if rng is not None else np.random.default_rng(0)
            z = np.concatenate([z, np.eye(self.num_labels)[self.label_index(label, n, rng)]], 1)
        elif label is not None:
            raise ValueError("label: this generator was fitted without labels")
        with torch.no_grad():
            out = self.generator(torch.as_tensor(z, dtype=torch.float32)).double().numpy()
        out = out * self.std + self.mean
        return np.expm1(out) if self.config.log_scale else out

    # --- persistence -----------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        assert self.generator is not None
        config = dataclasses.asdict(self.config)
        arrays = {"mean": self.mean, "std": self.std, "num_labels": np.asarray(self.num_labels)}
        for key, value in self.generator.state_dict().items():
            arrays[f"net.{key}"] = value.detach().cpu().numpy()
        return config, arrays

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.mean = np.asarray(arrays["mean"], dtype=np.float64)
        self.std = np.asarray(arrays["std"], dtype=np.float64)
        self.num_labels = int(arrays["num_labels"])
        gen = self._build()
        state = {k[4:]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith("net.")}
        gen.load_state_dict(state)
        gen.eval()
        self.generator = gen
