"""The refinement actor pi_phi(s, l_rf) -> mu (Eq. 7) and its losses (Eq. 8-11).

mu is the mean of the primary actor's input noise in refinement mode (Eq. 2):
a = clip(f_theta(w, K, h), -1, 1) with w ~ N(mu, K^2 I).

Architecture (Section IV-A): the state features and the command vector are each projected to a
common width by their own MLP, concatenated, and a final MLP outputs mu, bounded to
[-mu_max, mu_max] by a scaled tanh (mu_max = 3 K by default; see ``consistency.py`` on why).

Design choice on gradients. Eq. 8 (BC on talk-tweak data) trains phi; its gradient also reaches
theta (``bc_trains_primary``), because a consistency head distilled from near-deterministic
demonstrations learns to ignore w, and mu could then not steer anything. Eq. 9 (Q) and Eq. 10
([null] regulariser) update phi only: the primary action in Eq. 10 is a fixed target.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from daft_agent.consistency import ConsistencyHead
from daft_agent.errors import AgentConfigError
from daft_agent.nets import mlp

#: Default bound of mu: 3 K, a commanded mean three standard deviations out (``consistency.py``).
MU_MAX_DEFAULT = 3.0


class RefinementActor(nn.Module):
    """mu = pi_phi(s, l_rf) (Eq. 7).

    Args:
        backbone: its own observation backbone V(s, l_task).
        command_dim: size of the command encoder's vectors.
        action_dim: size of mu (= the action size).
        hidden_sizes: widths of the final MLP.
        proj_dim: the common width of the two projections.
        mu_max: bound on |mu| per dimension.
        steer_dims: action dimensions mu may move (default: the translation, 0-2). Refinement
            commands are built from the translation alone (Eq. 12-13), so they carry no
            information about rotation or gripper; mu is zero there and the primary actor keeps
            full control of them.
    """

    def __init__(
        self,
        backbone: nn.Module,
        command_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int],
        proj_dim: int = 64,
        mu_max: float = MU_MAX_DEFAULT,
        steer_dims: Sequence[int] | None = (0, 1, 2),
    ) -> None:
        super().__init__()
        if mu_max <= 0:
            raise AgentConfigError(f"mu_max must be > 0, got {mu_max}")
        self.backbone = backbone
        self.mu_max = float(mu_max)
        self.state_proj = mlp(backbone.features_dim, (proj_dim,), proj_dim)
        self.command_proj = mlp(command_dim, (proj_dim,), proj_dim)
        self.head = mlp(2 * proj_dim, hidden_sizes, action_dim)
        mask = torch.ones(action_dim)
        if steer_dims is not None:
            if any(not 0 <= d < action_dim for d in steer_dims):
                raise AgentConfigError(
                    f"steer_dims must index the {action_dim}-d action; got {steer_dims}"
                )
            mask = torch.zeros(action_dim)
            mask[list(steer_dims)] = 1.0
        # Not persistent: a fixed design constant, rebuilt from the constructor arguments.
        self.register_buffer("steer_mask", mask, persistent=False)
        # Start at mu = 0 for every command: before any talk-tweak data the refinement mode must
        # behave exactly like the primary mode.
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, obs: dict[str, torch.Tensor], command_vec: torch.Tensor) -> torch.Tensor:
        """Mu of shape (B, action_dim)."""
        z = torch.cat([self.state_proj(self.backbone(obs)), self.command_proj(command_vec)], dim=1)
        return self.mu_max * torch.tanh(self.head(z)) * self.steer_mask


def null_regulariser(refined_null: torch.Tensor, primary: torch.Tensor) -> torch.Tensor:
    """Eq. 10: E ||pi_theta^{w ~ N(mu(s, [null]), K^2)}(h) - pi_theta^{w ~ N(0, K^2)}(h)||^2.

    ``primary`` is detached: the regulariser pulls the refinement actor towards the primary
    behaviour, never the other way round.
    """
    return ((refined_null - primary.detach()) ** 2).sum(1).mean()


def refinement_losses(
    head: ConsistencyHead,
    h_primary: torch.Tensor,
    mu_cmd: torch.Tensor,
    mu_null: torch.Tensor,
    actions: torch.Tensor,
    q_fn,
    bc_trains_primary: bool = True,
) -> dict[str, torch.Tensor]:
    """The three terms of Eq. 11 on a talk-tweak batch (s, a_intv, l_rf).

    Args:
        head: the primary consistency head f_theta.
        h_primary: primary-actor features of s, (B, F).
        mu_cmd: pi_phi(s, l_rf), (B, A).
        mu_null: pi_phi(s, [null]), (B, A).
        actions: the operator's actions a_intv, (B, A).
        q_fn: callable (actions (B, A)) -> Q (B,) under the task-specific critics (frozen).
        bc_trains_primary: let Eq. 8's gradient reach theta (see module docstring).

    Returns:
        dict with ``bc`` (Eq. 8), ``q`` (Eq. 9) and ``reg`` (Eq. 10).
    """
    # One noise draw z shared by every term: w = mu + K z. With a common z, Eq. 10 is exactly zero
    # when mu(s, [null]) = 0, instead of carrying the variance of two independent draws.
    kz = head.K * torch.randn_like(actions)
    # With bc_trains_primary, Eq. 8 runs through theta (head and backbone); without it, it reuses
    # the theta-frozen pass below, so neither the head nor the backbone gets its gradient.
    refined = head.act_from_noise(h_primary, mu_cmd + kz) if bc_trains_primary else None
    # Eq. 9 and 10 must not move theta: one pass of the head with its parameters as constants
    # (detached, through functional_call; no requires_grad flipping) over w = [mu_cmd; mu_null; 0]
    # + K z. The last third is Eq. 10's primary action, which has no gradient path at all.
    # ``forward`` with ``deterministic`` is act_from_noise(h, mu).
    frozen = {name: p.detach() for name, p in head.named_parameters()}
    h_d = h_primary.detach()
    out = torch.func.functional_call(
        head,
        frozen,
        (torch.cat([h_d, h_d, h_d]), torch.cat([mu_cmd + kz, mu_null + kz, kz])),
        {"deterministic": True},
    )
    refined_cmd, refined_null, primary = out.split(h_d.shape[0])
    if refined is None:
        refined = refined_cmd
    q = -q_fn(refined_cmd).mean()
    reg = null_regulariser(refined_null, primary)
    bc = ((refined - actions) ** 2).sum(1).mean()
    return {"bc": bc, "q": q, "reg": reg}
