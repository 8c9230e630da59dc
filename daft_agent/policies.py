"""``DualActorPolicy``: the SB3 policy that owns every network of DAFT and its optimiser.

Like ``SACPolicy._build``, :meth:`DualActorPolicy._build` creates the modules and hangs one
optimiser on each trainable group:

* ``actor``: the primary consistency actor pi_theta^w (backbone + :class:`ConsistencyHead`);
* ``refinement``: the refinement actor pi_phi (its own backbone);
* ``critics``: :class:`TaskCritics`, every task's critic (own backbone + ensemble) in one
  vectorised ensemble;
* ``critics_target``: Polyak-averaged copy of ``critics`` (no optimiser).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from torch import nn

from daft_agent.backbones.registry import make_backbone
from daft_agent.commands import VocabularyCommandEncoder
from daft_agent.consistency import (
    K_DEFAULT,
    N_SIGMAS_DEFAULT,
    SIGMA_DATA_DEFAULT,
    SIGMA_MIN_DEFAULT,
    ConsistencyHead,
    PrimaryActor,
)
from daft_agent.critics import TaskCritics
from daft_agent.errors import AgentConfigError, SpaceMismatchError
from daft_agent.refinement import MU_MAX_DEFAULT, RefinementActor
from daft_env.tasks import TASK_NAMES


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


@dataclass(frozen=True)
class NetworkConfig:
    """Every network setting of :class:`DualActorPolicy`, with its default: the one list.

    These are the ``policy_kwargs`` of :class:`~daft_agent.agent.DualActorAgent` (as SB3's SAC
    takes ``net_arch`` through ``policy_kwargs``); the agent's own keyword arguments are the
    learner's hyperparameters.

    Attributes:
        backbone: registered backbone name (``state``, ``pixels``, ``embedding``, or ``generic``
            for any env's Dict observation); h = V(s, l_task) of Eq. 3.
        backbone_kwargs: extra arguments of the backbone.
        actor_hidden: MLP widths of the consistency head F_theta (Eq. 1).
        critic_hidden: MLP widths of each critic Q_psi_i.
        refinement_hidden: MLP widths of the refinement actor's final MLP (Eq. 7).
        n_critics: ensemble size per task.
        K: noise scale of Eq. 1 (sigma_max of the consistency policy; ``consistency.py`` says
            why 1).
        sigma_min: smallest consistency noise level.
        sigma_data: data scale of the consistency scalings (0.5 for actions in [-1, 1]).
        n_sigmas: Karras levels in the consistency BC loss (Eq. 5).
        mu_max: bound of the refinement actor's mu (3 K: a mean three standard deviations out).
    """

    backbone: str = "state"
    backbone_kwargs: Mapping[str, Any] = field(default_factory=dict)
    actor_hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    refinement_hidden: tuple[int, ...] = (128, 128)
    n_critics: int = 2
    K: float = K_DEFAULT
    sigma_min: float = SIGMA_MIN_DEFAULT
    sigma_data: float = SIGMA_DATA_DEFAULT
    n_sigmas: int = N_SIGMAS_DEFAULT
    mu_max: float = MU_MAX_DEFAULT

    def __post_init__(self) -> None:
        # Checkpoints store these as JSON, so lists come back where tuples went in.
        for name in ("actor_hidden", "critic_hidden", "refinement_hidden"):
            widths = tuple(int(h) for h in getattr(self, name))
            if not widths or min(widths) < 1:
                raise AgentConfigError(
                    f"{name} must be one or more layer widths >= 1, got {getattr(self, name)!r}"
                )
            object.__setattr__(self, name, widths)
        object.__setattr__(self, "backbone_kwargs", dict(self.backbone_kwargs))
        if self.n_critics < 1:
            raise AgentConfigError(f"n_critics must be >= 1, got {self.n_critics}")

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> NetworkConfig:
        """Build from ``policy_kwargs``; an unknown key is an error that lists the valid ones."""
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - valid)
        if unknown:
            raise AgentConfigError(
                f"unknown network setting(s) {unknown}; policy_kwargs takes {sorted(valid)} "
                "(learner hyperparameters such as batch_size are DualActorAgent arguments)"
            )
        return cls(**kwargs)

    def as_kwargs(self) -> dict[str, Any]:
        """The settings as plain keyword arguments (what a checkpoint stores)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class DualActorPolicy(BasePolicy):
    """Owns the primary actor, the refinement actor, per-task critics and their targets.

    Args:
        observation_space: Dict observation space of the env.
        action_space: the 7-d Box action space.
        lr_schedule: SB3 learning-rate schedule (constant in DAFT).
        tasks: task names, in task-id order (the critics' ``keys()``).
        command_dim: size of the command encoder's vectors.
        optimizer_class: optimiser of every trainable group.
        optimizer_kwargs: its extra arguments.
        **network: the fields of :class:`NetworkConfig` (widths, ensemble size, K, ...); the
            policy keeps them as ``self.net``.

    Raises:
        AgentConfigError: an unknown or invalid network setting.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Box,
        lr_schedule: Any,
        tasks: Sequence[str] = TASK_NAMES,
        command_dim: int = VocabularyCommandEncoder.dim,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        **network: Any,
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
        self.tasks = tuple(tasks)
        self.command_dim = int(command_dim)
        self.net = NetworkConfig.from_kwargs(network)
        self._build(lr_schedule)

    def _backbone(self) -> nn.Module:
        return make_backbone(self.net.backbone, self.observation_space, **self.net.backbone_kwargs)

    def _build(self, lr_schedule: Any) -> None:
        act_dim = int(np.prod(self.action_space.shape))
        bb = self._backbone()
        net = self.net
        head = ConsistencyHead(
            bb.features_dim,
            act_dim,
            net.actor_hidden,
            net.K,
            net.sigma_min,
            net.sigma_data,
            net.n_sigmas,
        )
        self.actor = PrimaryActor(bb, head)
        self.actor.optimizer = self.optimizer_class(
            self.actor.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )
        self.refinement = RefinementActor(
            self._backbone(), self.command_dim, act_dim, net.refinement_hidden, mu_max=net.mu_max
        )
        self.refinement.optimizer = self.optimizer_class(
            self.refinement.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )
        # One vectorised ensemble for every task's critic, each task with its own backbone.
        self.critics = TaskCritics(
            self.tasks,
            [self._backbone() for _ in self.tasks],
            act_dim,
            net.critic_hidden,
            net.n_critics,
        )
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
            *self.critics.backbones,
            *self.critics_target.backbones,
        ]

    def fit_normalizers(self, obs: Mapping[str, np.ndarray]) -> None:
        """Fit every backbone's input normaliser on the same data (the demonstrations)."""
        for bb in self.backbones():
            bb.fit_normalizer(obs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        # Images are never rescaled by SB3 here (the backbones normalise their own inputs), so
        # the constructor does not take SB3's normalize_images; keeping it breaks policy.load.
        data.pop("normalize_images", None)
        data.update(
            tasks=self.tasks,
            command_dim=self.command_dim,
            # as in SB3's SACPolicy: a dummy schedule, not needed for loading the policy alone
            lr_schedule=self._dummy_schedule,
            **self.net.as_kwargs(),
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
        command_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Actions for a batch: primary mode (Eq. 1) without a command, refinement mode (Eq. 2) with one.

        Args:
            obs: a batch of observation tensors.
            command_vec: (B, command_dim) encoded refinement commands, or None (primary mode).
            deterministic: w = mu (0 in primary mode) instead of a draw from N(mu, K^2 I).
            command_mask: (B,) bool, False for rows that have no command: their mu is 0, so they
                act in primary mode within the same batch.
            generator: torch generator of the noise draw (None: torch's global one).
        """
        mu = None
        if command_vec is not None:
            mu = self.refinement(obs, command_vec)
            if command_mask is not None:
                mu = mu * command_mask.to(mu).unsqueeze(1)
        return self.actor(obs, mu=mu, deterministic=deterministic, generator=generator)
