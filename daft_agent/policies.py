"""``DualActorPolicy``: the SB3 policy that owns every network of DAFT and its optimiser.

Like ``SACPolicy._build``, :meth:`DualActorPolicy._build` creates the modules and hangs one
optimiser on each trainable group:

* ``actor``: the primary consistency actor pi_theta^w (backbone + :class:`ConsistencyHead`);
* ``refinement``: the refinement actor pi_phi (its own backbone);
* ``critics``: ``nn.ModuleDict`` task name -> :class:`TaskCritic` (own backbone + ensemble);
* ``critics_target``: Polyak-averaged copy of ``critics`` (no optimiser).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from torch import nn

from daft_agent.consistency import ConsistencyHead, PrimaryActor
from daft_agent.critics import CriticEnsemble, TaskCritic
from daft_agent.encoders import make_backbone
from daft_agent.errors import AgentConfigError, SpaceMismatchError
from daft_agent.refinement import RefinementActor


def obs_as_tensors(
    obs: Mapping[str, Any], observation_space: spaces.Dict, device: torch.device | str = "cpu"
) -> tuple[dict[str, torch.Tensor], bool]:
    """Dict of arrays -> dict of tensors with a batch dim; returns (tensors, was_batched).

    Accepts a single observation (as a gym env returns it) or a batch (as a VecEnv returns it).
    """
    out: dict[str, torch.Tensor] = {}
    batched = None
    for key, space in observation_space.spaces.items():
        if key not in obs:
            raise SpaceMismatchError(
                f"observation lacks key {key!r}; expected keys {sorted(observation_space.spaces)}"
            )
        arr = np.asarray(obs[key])
        single_ndim = len(space.shape) if space.shape else 0
        is_batched = arr.ndim > single_ndim
        batched = is_batched if batched is None else batched
        if not is_batched:
            arr = arr[None]
        out[key] = torch.as_tensor(arr, device=device)
    return out, bool(batched)


class DualActorPolicy(BasePolicy):
    """Owns the primary actor, the refinement actor, per-task critics and their targets.

    Args:
        observation_space: Dict observation space of the env.
        action_space: the 7-d Box action space.
        lr_schedule: SB3 learning-rate schedule (constant in DAFT).
        tasks: task names, keys of the critic ``ModuleDict``.
        backbone: registered backbone name (``state``, ``pixels``, ``embedding``).
        backbone_kwargs: extra arguments of the backbone.
        command_dim: size of the command encoder's vectors.
        actor_hidden: MLP widths of the consistency head.
        critic_hidden: MLP widths of each critic.
        refinement_hidden: MLP widths of the refinement actor.
        n_critics: ensemble size per task.
        K: noise scale of Eq. 1 (sigma_max).
        sigma_min: smallest consistency noise level.
        sigma_data: data scale of the consistency scalings.
        n_sigmas: Karras levels in the consistency BC loss.
        mu_max: bound on the refinement actor's output.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Box,
        lr_schedule: Any,
        tasks: Sequence[str] = ("upright", "pickup", "assemble"),
        backbone: str = "state",
        backbone_kwargs: dict[str, Any] | None = None,
        command_dim: int = 4,
        actor_hidden: Sequence[int] = (256, 256),
        critic_hidden: Sequence[int] = (256, 256),
        refinement_hidden: Sequence[int] = (128, 128),
        n_critics: int = 2,
        K: float = 1.0,
        sigma_min: float = 0.002,
        sigma_data: float = 0.5,
        n_sigmas: int = 40,
        mu_max: float = 3.0,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=False,
            normalize_images=False,
        )
        if not tasks:
            raise AgentConfigError("tasks must name at least one task")
        if any(int(h) < 1 for h in (*actor_hidden, *critic_hidden, *refinement_hidden)):
            raise AgentConfigError("every hidden layer width must be >= 1")
        self.tasks = tuple(tasks)
        self.backbone_name = backbone
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.command_dim = int(command_dim)
        self.actor_hidden = tuple(int(h) for h in actor_hidden)
        self.critic_hidden = tuple(int(h) for h in critic_hidden)
        self.refinement_hidden = tuple(int(h) for h in refinement_hidden)
        self.n_critics = int(n_critics)
        self.K, self.sigma_min, self.sigma_data = float(K), float(sigma_min), float(sigma_data)
        self.n_sigmas = int(n_sigmas)
        self.mu_max = float(mu_max)
        self._build(lr_schedule)

    def _backbone(self) -> nn.Module:
        return make_backbone(self.backbone_name, self.observation_space, **self.backbone_kwargs)

    def _build(self, lr_schedule: Any) -> None:
        act_dim = int(np.prod(self.action_space.shape))
        bb = self._backbone()
        head = ConsistencyHead(
            bb.features_dim,
            act_dim,
            self.actor_hidden,
            self.K,
            self.sigma_min,
            self.sigma_data,
            self.n_sigmas,
        )
        self.actor = PrimaryActor(bb, head)
        self.actor.optimizer = self.optimizer_class(
            self.actor.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )
        self.refinement = RefinementActor(
            self._backbone(), self.command_dim, act_dim, self.refinement_hidden, mu_max=self.mu_max
        )
        self.refinement.optimizer = self.optimizer_class(
            self.refinement.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )
        critics = {}
        for task in self.tasks:
            cbb = self._backbone()
            critics[task] = TaskCritic(
                cbb, CriticEnsemble(cbb.features_dim, act_dim, self.critic_hidden, self.n_critics)
            )
        self.critics = nn.ModuleDict(critics)
        self.critics.optimizer = self.optimizer_class(
            self.critics.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )
        self.critics_target = copy.deepcopy(self.critics)
        self.critics_target.requires_grad_(False)
        if hasattr(self.critics_target, "optimizer"):
            del self.critics_target.optimizer

    def backbones(self) -> list[nn.Module]:
        """Every backbone (actor, refinement, critics, targets): for fitting input normalisers."""
        return [self.actor.backbone, self.refinement.backbone] + [
            c.backbone for c in (*self.critics.values(), *self.critics_target.values())
        ]

    def fit_normalizers(self, obs: Mapping[str, np.ndarray]) -> None:
        """Fit every backbone's input normaliser on the same data (the demonstrations)."""
        for bb in self.backbones():
            bb.fit_normalizer(obs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            tasks=self.tasks,
            backbone=self.backbone_name,
            backbone_kwargs=self.backbone_kwargs,
            command_dim=self.command_dim,
            actor_hidden=self.actor_hidden,
            critic_hidden=self.critic_hidden,
            refinement_hidden=self.refinement_hidden,
            n_critics=self.n_critics,
            K=self.K,
            sigma_min=self.sigma_min,
            sigma_data=self.sigma_data,
            n_sigmas=self.n_sigmas,
            mu_max=self.mu_max,
        )
        return data

    def forward(self, obs: dict[str, torch.Tensor], deterministic: bool = False) -> torch.Tensor:
        """Primary-mode actions (Eq. 1)."""
        return self._predict(obs, deterministic)

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        return self.actor(observation, deterministic=deterministic)

    @torch.no_grad()
    def act(
        self,
        obs: dict[str, torch.Tensor],
        command_vec: torch.Tensor | None = None,
        deterministic: bool = False,
    ) -> torch.Tensor:
        """Actions for a batch: primary mode without a command (Eq. 1), refinement mode with one (Eq. 2)."""
        mu = None if command_vec is None else self.refinement(obs, command_vec)
        return self.actor(obs, mu=mu, deterministic=deterministic)
