"""The primary actor: a one-step consistency policy pi_theta^w(h) (Eq. 1, 2, 5).

Parameterisation (Karras et al. 2022; Song et al. 2023; Chen et al. 2023, refs [22]-[24]):

    f_theta(x, sigma, h) = c_skip(sigma) x + c_out(sigma) F_theta(c_in(sigma) x, log(sigma) / 4, h)
    c_skip(sigma) = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2)
    c_out(sigma)  = (sigma - sigma_min) sigma_data / sqrt(sigma^2 + sigma_data^2)
    c_in(sigma)   = 1 / sqrt(sigma^2 + sigma_data^2)

so that f(x, sigma_min) = x exactly (the consistency boundary condition). An action is one
evaluation at the largest noise level K = sigma_max:

    a = clip(f_theta(w, K, h), -1, 1),  w ~ N(0, K^2 I)          (Eq. 1, primary mode)
                                        w ~ N(mu, K^2 I)         (Eq. 2, refinement mode)

Choice of K. A policy distilled from near-deterministic demonstrations learns to ignore w
wherever w looks like its training noise, so the refinement actor can only steer through w if
(i) mu can move w well outside N(0, K^2) and (ii) the primary head has learned what such w means.
We use K = 1 (the action range) and bound mu to [-3K, 3K] (``refinement.RefinementActor``): a
commanded mean three standard deviations out is a clearly distinguishable input, and the
refinement BC loss (Eq. 8) also trains theta to read it (see ``refinement.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from daft_agent.errors import AgentConfigError
from daft_agent.nets import mlp, sinusoidal_embedding

#: Defaults of the parameterisation (``NetworkConfig`` reads them): K = sigma_max (the choice is
#: explained above), sigma_min, sigma_data = 0.5 for actions in [-1, 1], and the Karras levels.
K_DEFAULT = 1.0
SIGMA_MIN_DEFAULT = 0.002
SIGMA_DATA_DEFAULT = 0.5
N_SIGMAS_DEFAULT = 40


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras noise levels, ascending: sigma_i = (s_min^(1/rho) + i/(n-1) (s_max^(1/rho) - s_min^(1/rho)))^rho.

    Returns a (n,) tensor with sigma_0 = sigma_min and sigma_{n-1} = sigma_max.
    """
    if n < 2 or not 0 < sigma_min < sigma_max or rho <= 0:
        raise AgentConfigError(
            f"need n >= 2, 0 < sigma_min < sigma_max and rho > 0; got n={n}, "
            f"sigma_min={sigma_min}, sigma_max={sigma_max}, rho={rho}"
        )
    ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sig = (lo + ramp * (hi - lo)) ** rho
    sig[0], sig[-1] = sigma_min, sigma_max  # exact ends despite float round-off
    return sig.float()


def boundary_scalings(
    sigma: torch.Tensor, sigma_min: float, sigma_data: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in) of the consistency parameterisation; c_skip(sigma_min)=1, c_out(sigma_min)=0."""
    c_skip = sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)
    c_out = (sigma - sigma_min) * sigma_data / torch.sqrt(sigma**2 + sigma_data**2)
    c_in = 1.0 / torch.sqrt(sigma**2 + sigma_data**2)
    return c_skip, c_out, c_in


class ConsistencyHead(nn.Module):
    """f_theta(x, sigma, h): the consistency denoiser over actions, conditioned on features h.

    Args:
        features_dim: size of h.
        action_dim: size of the action.
        hidden_sizes: MLP widths of F_theta.
        K: sigma_max, the noise scale of Eq. 1.
        sigma_min: smallest noise level (boundary of the consistency function).
        sigma_data: data scale in the scalings (0.5 for actions in [-1, 1]).
        n_sigmas: number of Karras levels used by the consistency BC loss.
        time_dim: size of the noise-level embedding.
    """

    def __init__(
        self,
        features_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int],
        K: float = K_DEFAULT,
        sigma_min: float = SIGMA_MIN_DEFAULT,
        sigma_data: float = SIGMA_DATA_DEFAULT,
        n_sigmas: int = N_SIGMAS_DEFAULT,
        time_dim: int = 16,
    ) -> None:
        super().__init__()
        if K <= sigma_min:
            raise AgentConfigError(f"K (sigma_max) must exceed sigma_min={sigma_min}; got K={K}")
        if sigma_data <= 0:
            raise AgentConfigError(f"sigma_data must be > 0, got {sigma_data}")
        self.action_dim = action_dim
        self.K = float(K)
        self.sigma_min = float(sigma_min)
        self.sigma_data = float(sigma_data)
        self.time_dim = time_dim
        self.register_buffer("sigmas", karras_sigmas(n_sigmas, sigma_min, K))
        self.net = mlp(features_dim + action_dim + time_dim, hidden_sizes, action_dim)
        # Acting always evaluates f at sigma = K: its scalings and noise-level embedding are
        # constants, computed once here rather than in ~25 small ops per call (not persistent:
        # rebuilt from the constructor arguments).
        k = torch.tensor([[self.K]])
        self._k_scalings = tuple(float(c) for c in boundary_scalings(k, sigma_min, sigma_data))
        self.register_buffer(
            "_k_embedding", sinusoidal_embedding(0.25 * torch.log(k), time_dim), persistent=False
        )

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """f_theta(x, sigma, h) (unclipped); ``sigma`` is (B,) or a scalar tensor."""
        sigma = sigma.reshape(-1, 1).expand(x.shape[0], 1).to(x)
        c_skip, c_out, c_in = boundary_scalings(sigma, self.sigma_min, self.sigma_data)
        t = sinusoidal_embedding(0.25 * torch.log(sigma), self.time_dim)
        return c_skip * x + c_out * self.net(torch.cat([c_in * x, t, h], dim=1))

    def noise(
        self,
        h: torch.Tensor,
        mu: torch.Tensor | None = None,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """W ~ N(mu, K^2 I) (mu = 0 in primary mode); w = mu when ``deterministic``.

        ``generator`` draws the noise (None: torch's global generator). An actor loop passes its
        own so its draws do not depend on what a learner thread consumes meanwhile.
        """
        mean = torch.zeros(h.shape[0], self.action_dim, device=h.device) if mu is None else mu
        if deterministic:
            return mean
        z = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + self.K * z

    def act_from_noise(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """A = clip(f(w, K, h), -1, 1) for a given noise sample w (:meth:`denoise` at sigma = K)."""
        c_skip, c_out, c_in = self._k_scalings
        t = self._k_embedding.expand(h.shape[0], -1)
        f = c_skip * w + c_out * self.net(torch.cat([c_in * w, t, h], dim=1))
        return f.clamp(-1.0, 1.0)

    def forward(
        self,
        h: torch.Tensor,
        mu: torch.Tensor | None = None,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One-step action a = clip(f(w, K, h), -1, 1) with w from Eq. 1 (mu None) or Eq. 2."""
        return self.act_from_noise(h, self.noise(h, mu, deterministic, generator))

    def bc_loss(
        self, h: torch.Tensor, actions: torch.Tensor, weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Consistency BC loss (Eq. 5), mean over the batch (weighted by ``weights`` if given).

        Two terms with equal weight: the one-step sampler of Eq. 1 regressed onto a*,
        ||f(w, K, h) - a*||^2 with w ~ N(0, K^2 I), which is exactly what acts; and the
        consistency-based BC of ConRFT (ref. [12]), ||f(a* + sigma_n z, sigma_n, h) - a*||^2 with
        n uniform over the Karras levels, which keeps f a denoiser along the whole noise path.

        Returns:
            (loss, clipped one-step actions): the second is a sample of pi_theta^w(h) with
            gradient, reused by the Q term of Eq. 6 so the head runs once less per update.
        """
        b = actions.shape[0]
        w = self.noise(h)
        idx = torch.randint(0, self.sigmas.numel(), (b,), device=h.device)
        sigma = self.sigmas[idx]
        noisy = actions + sigma.reshape(-1, 1) * torch.randn_like(actions)
        # Both terms in one pass of F_theta over [w; noisy]: one call of the network, not two.
        k = torch.full((b,), self.K, device=h.device)
        one_step, denoised = self.denoise(
            torch.cat([w, noisy]), torch.cat([k, sigma]), torch.cat([h, h])
        ).split(b)
        per_row = ((one_step - actions) ** 2).sum(1) + ((denoised - actions) ** 2).sum(1)
        if weights is None:
            loss = per_row.mean()
        else:
            loss = (per_row * weights).sum() / weights.sum().clamp_min(1.0)
        return loss, one_step.clamp(-1.0, 1.0)


class PrimaryActor(nn.Module):
    """pi_theta^w(h): a backbone V (Eq. 3) followed by a :class:`ConsistencyHead`."""

    def __init__(self, backbone: nn.Module, head: ConsistencyHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(
        self,
        obs: dict[str, torch.Tensor],
        mu: torch.Tensor | None = None,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Actions (B, action_dim) for a batch of observations (``generator``: of the noise)."""
        return self.head(self.backbone(obs), mu, deterministic, generator)
