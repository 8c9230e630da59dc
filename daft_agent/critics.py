"""Per-task critic ensembles Q_psi_i(s, a) (Section IV-C), Cal-QL warm-up and Bellman online.

Each task has its own critic (own backbone, own ensemble) in an ``nn.ModuleDict`` keyed by task
name, trained only on that task's data; targets are Polyak-averaged copies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from daft_agent.errors import AgentConfigError


def monte_carlo_returns(
    rewards: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray | None = None,
    gamma: float = 0.99,
    truncation_value: float = 0.0,
) -> np.ndarray:
    """Discounted return-to-go G_t = r_t + gamma G_{t+1}, restarting at every episode end.

    The arrays may hold several episodes back to back; an episode ends at a step whose
    ``terminated`` or ``truncated`` flag is set (and the last step always ends one).

    * At a terminal step G_t = r_t: nothing follows a terminal.
    * At a truncated step (a time limit, not a terminal) the future is unknown; G_t = r_t + gamma *
      ``truncation_value``. With non-negative rewards (DAFT's sparse 0/1) the default 0 makes G a
      valid *lower bound* of the true value, which is exactly what Cal-QL needs.

    Known pitfall (a bug of this kind sits in another implementation): computing the return with
    a single running sum that is reset only on ``terminated`` lets a truncated episode's tail
    inherit the return of the *next* episode in the array, so failed episodes get credit for a
    later success and the Cal-QL "lower bound" becomes an over-estimate. Resetting on
    ``terminated or truncated`` (and never bootstrapping across the boundary) avoids it. The
    opposite mistake, treating truncation as a terminal in the TD target, is avoided in
    :meth:`PerTaskCritics.td_target`, which masks only true terminals.

    Args:
        rewards: (T,) rewards.
        terminated: (T,) bool, True where an episode ended in a terminal state.
        truncated: (T,) bool, True where an episode was cut by a time limit (optional).
        gamma: discount factor in (0, 1].
        truncation_value: value assumed after a truncated step.

    Returns:
        (T,) float32 returns.
    """
    rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
    n = rewards.shape[0]
    term = np.asarray(terminated, dtype=bool).reshape(-1)
    trunc = (
        np.zeros(n, bool) if truncated is None else np.asarray(truncated, dtype=bool).reshape(-1)
    )
    if term.shape[0] != n or trunc.shape[0] != n:
        raise AgentConfigError("rewards, terminated and truncated must have the same length")
    if not 0.0 < gamma <= 1.0:
        raise AgentConfigError(f"gamma must be in (0, 1], got {gamma}")
    out = np.zeros(n, dtype=np.float64)
    running = 0.0
    for t in range(n - 1, -1, -1):
        if term[t]:
            running = rewards[t]
        elif trunc[t] or t == n - 1:
            running = rewards[t] + gamma * truncation_value
        else:
            running = rewards[t] + gamma * running
        out[t] = running
    return out.astype(np.float32)


def calql_lower_bound(q_policy: torch.Tensor, mc_returns: torch.Tensor) -> torch.Tensor:
    """Cal-QL calibration: max(Q(s, a_pi), V_mu(s)) with V_mu the Monte-Carlo return (ref. [25]).

    The CQL regulariser pushes down Q of policy actions; bounding them from below by the data's
    return stops it from pushing them below the behaviour policy's value, so the critic stays
    calibrated for online fine-tuning. ``mc_returns`` broadcasts over the trailing sample dims.
    """
    mc = mc_returns.reshape(mc_returns.shape + (1,) * (q_policy.dim() - mc_returns.dim() - 1))
    # Leading ensemble dim of q_policy (E, B, ...) broadcasts against (B, ...).
    return torch.maximum(q_policy, mc.to(q_policy))


class EnsembleLinear(nn.Module):
    """E independent linear layers applied in one batched matmul: (E, B, in) -> (E, B, out)."""

    def __init__(self, ensemble: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (E, B, in) to (E, B, out)."""
        return torch.baddbmm(self.bias, x, self.weight)


class CriticEnsemble(nn.Module):
    """An ensemble of E Q-networks Q(h, a) with LayerNorm, evaluated in one pass."""

    def __init__(
        self, features_dim: int, action_dim: int, hidden_sizes: Sequence[int], n_critics: int
    ) -> None:
        super().__init__()
        if n_critics < 1:
            raise AgentConfigError(f"n_critics must be >= 1, got {n_critics}")
        self.n_critics = n_critics
        layers: list[nn.Module] = []
        d = features_dim + action_dim
        for h in hidden_sizes:
            layers += [EnsembleLinear(n_critics, d, h), nn.LayerNorm(h), nn.ReLU()]
            d = h
        layers.append(EnsembleLinear(n_critics, d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q of shape (E, B) for features (B, F) and actions (B, A)."""
        x = torch.cat([h, actions], dim=1).unsqueeze(0).expand(self.n_critics, -1, -1)
        return self.net(x).squeeze(-1)


class TaskCritic(nn.Module):
    """Q_psi_i: the task's own backbone and critic ensemble."""

    def __init__(self, backbone: nn.Module, ensemble: CriticEnsemble) -> None:
        super().__init__()
        self.backbone = backbone
        self.ensemble = ensemble

    def forward(self, obs: dict[str, torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
        """Q of shape (E, B)."""
        return self.ensemble(self.backbone(obs), actions)

    def q_many(self, obs: dict[str, torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
        """Q for n actions per state: ``actions`` (B, n, A) -> (E, B, n); the backbone runs once."""
        b, n, a = actions.shape
        h = self.backbone(obs)
        hr = h.unsqueeze(1).expand(b, n, h.shape[1]).reshape(b * n, -1)
        return self.ensemble(hr, actions.reshape(b * n, a)).reshape(-1, b, n)


def polyak_update(online: nn.Module, target: nn.Module, tau: float) -> None:
    """Target <- (1 - tau) target + tau online, parameters and buffers (normalisers) alike."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)
        for b, tb in zip(online.buffers(), target.buffers(), strict=True):
            tb.copy_(b)


def bellman_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over ensemble members of the squared TD error; ``q`` (E, B), ``target`` (B,)."""
    return ((q - target.unsqueeze(0)) ** 2).mean(1).sum()


def calql_regulariser(
    q_data: torch.Tensor,
    q_random: torch.Tensor,
    q_policy: torch.Tensor,
    q_next_policy: torch.Tensor,
    mc_returns: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Cal-QL's conservative term, summed over ensemble members, mean over the batch.

    temperature * logsumexp([Q(s, a_rand), max(Q(s, a_pi), G), max(Q(s, a'_pi), G)] / temperature)
    - Q(s, a_data), with G the Monte-Carlo return (:func:`calql_lower_bound`). The consistency
    policy has no tractable density, so the CQL(H) importance weights are dropped (as in ConRFT):
    uniform and policy samples enter the log-sum-exp with equal weight.

    Shapes: ``q_data`` (E, B); the others (E, B, n); ``mc_returns`` (B,).
    """
    cat = torch.cat(
        [
            q_random,
            calql_lower_bound(q_policy, mc_returns),
            calql_lower_bound(q_next_policy, mc_returns),
        ],
        dim=2,
    )
    lse = temperature * torch.logsumexp(cat / temperature, dim=2)
    return (lse - q_data).mean(1).sum()
