"""The update rule: one full dual-actor update of Algorithm 1 (lines 3-7 warm-up, 11-16 online).

:class:`Learner` owns no thread and no env: it samples the buffers of Algorithm 1, steps the
per-task critics (Eq. 4, Bellman online, Cal-QL in warm-up), the primary actor (Eq. 6, 15) and the
refinement actor (Eq. 11), and Polyak-averages the target critics. Who calls it, and how often, is
the job of :mod:`daft_agent.actors` (the online runner).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from daft_agent.buffers import DualActorReplay, concat_batches
from daft_agent.critics import bellman_loss, calql_regulariser
from daft_agent.encoders import NULL_COMMAND, CommandEncoder
from daft_agent.errors import AgentConfigError
from daft_agent.policies import DualActorPolicy
from daft_agent.refinement import refinement_losses
from daft_agent.weights import LambdaSchedule, task_weights, weighted_actor_q_loss


@dataclass
class LearnerConfig:
    """Hyperparameters of one update (see :class:`~daft_agent.agent.DualActorAgent`)."""

    batch_size: int = 256
    refinement_batch_size: int = 64
    gamma: float = 0.97
    tau: float = 0.005
    lambdas: LambdaSchedule = field(default_factory=LambdaSchedule)
    eta: tuple[float, float, float] = (1.0, 0.1, 0.1)
    task_weight_c: float = 0.1
    task_weight_clip: tuple[float, float] = (0.8, 1.2)
    calql_alpha: float = 1.0
    calql_n_actions: int = 4
    calql_temperature: float = 1.0
    refinement_bc_trains_primary: bool = True
    bc_on_rollouts: bool = True
    normalize_q: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 2 or self.refinement_batch_size < 1:
            raise AgentConfigError("batch_size must be >= 2 and refinement_batch_size >= 1")
        if not 0 < self.gamma < 1:
            raise AgentConfigError(f"gamma must be in (0, 1), got {self.gamma}")
        if not 0 < self.tau <= 1:
            raise AgentConfigError(f"tau must be in (0, 1], got {self.tau}")
        if len(self.eta) != 3 or min(self.eta) < 0:
            raise AgentConfigError(f"eta must be three non-negative weights, got {self.eta}")
        lo, hi = self.task_weight_clip
        if not 0 < lo <= hi:
            raise AgentConfigError(
                f"task_weight_clip must satisfy 0 < min <= max, got {self.task_weight_clip}"
            )
        if self.calql_n_actions < 1 or self.calql_alpha < 0 or self.calql_temperature <= 0:
            raise AgentConfigError(
                "need calql_n_actions >= 1, calql_alpha >= 0, calql_temperature > 0"
            )


def _tensors(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if k in ("obs", "next_obs"):
            out[k] = {kk: torch.as_tensor(vv, device=device) for kk, vv in v.items()}
        elif k == "commands":
            out[k] = v
        else:
            out[k] = torch.as_tensor(v, device=device)
    return out


def _split(joined: Mapping[str, Any], sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Per-task views of a joined batch (rows are in task order)."""
    out: list[dict[str, Any]] = [{} for _ in sizes]
    for k, v in joined.items():
        if k in ("obs", "next_obs"):
            parts = {kk: vv.split(list(sizes)) for kk, vv in v.items()}
            for i in range(len(sizes)):
                out[i][k] = {kk: parts[kk][i] for kk in v}
        elif k == "commands":
            start = 0
            for i, n in enumerate(sizes):
                out[i][k] = v[start : start + n]
                start += n
        else:
            for i, part in enumerate(v.split(list(sizes))):
                out[i][k] = part
    return out


def _repeat_obs(obs: Mapping[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    return {k: v.repeat_interleave(n, dim=0) for k, v in obs.items()}


class Learner:
    """Owns the update rule: per-task critics, the primary actor (Eq. 6, 15), the refinement actor (Eq. 11).

    Args:
        policy: the :class:`DualActorPolicy` holding networks and optimisers.
        replay: the buffers of Algorithm 1.
        command_encoder: maps talk-tweak commands to vectors.
        config: update hyperparameters.
        seed: seed of the minibatch sampler.
    """

    def __init__(
        self,
        policy: DualActorPolicy,
        replay: DualActorReplay,
        command_encoder: CommandEncoder,
        config: LearnerConfig,
        seed: int | None = None,
    ) -> None:
        self.policy = policy
        self.replay = replay
        self.encoder = command_encoder
        self.cfg = config
        self.rng = np.random.default_rng(seed)
        self.device = policy.device
        self.tasks = policy.tasks
        self._null_vec: torch.Tensor | None = None
        self._critic_params = list(policy.critics.parameters())
        self._target_params = list(policy.critics_target.parameters())
        if any(b.numel() for b in policy.critics.buffers()):
            # Normalisers are fitted once before training; copy them into the targets now.
            for b, tb in zip(
                policy.critics.buffers(), policy.critics_target.buffers(), strict=True
            ):
                tb.copy_(b)

    def _critic_losses(
        self,
        batches: list[dict[str, Any]],
        joined: dict[str, Any],
        phase: str,
        stats: dict[str, float],
    ) -> torch.Tensor:
        pol, cfg = self.policy, self.cfg
        total = torch.zeros((), device=self.device)
        n = cfg.calql_n_actions
        with torch.no_grad():
            # a' ~ pi_theta^w(s') for every task's batch in one pass of the shared actor.
            next_actions = pol.actor(joined["next_obs"]).split(
                [b["actions"].shape[0] for b in batches]
            )
        for task, b, next_a in zip(self.tasks, batches, next_actions, strict=True):
            critic, target = pol.critics[task], pol.critics_target[task]
            with torch.no_grad():
                q_next = target(b["next_obs"], next_a).min(0).values
                # Only true terminals stop the bootstrap; a time-limit truncation does not.
                y = b["rewards"] + cfg.gamma * (1.0 - b["terminated"]) * q_next
            q = critic(b["obs"], b["actions"])
            loss = bellman_loss(q, y)
            stats[f"critic/td_loss/{task}"] = float(loss.detach())
            if phase == "warmup" and cfg.calql_alpha > 0:
                bsz, adim = b["actions"].shape
                with torch.no_grad():
                    rep = _repeat_obs(b["obs"], n)
                    rep_next = _repeat_obs(b["next_obs"], n)
                    a_pi = pol.actor(rep).reshape(bsz, n, adim)
                    a_next_pi = pol.actor(rep_next).reshape(bsz, n, adim)
                    a_rand = torch.rand(bsz, n, adim, device=self.device) * 2.0 - 1.0
                q_all = critic.q_many(b["obs"], torch.cat([a_rand, a_pi, a_next_pi], dim=1))
                q_rand, q_pi, q_next_pi = q_all.split(n, dim=2)
                reg = calql_regulariser(
                    q, q_rand, q_pi, q_next_pi, b["mc_returns"], cfg.calql_temperature
                )
                stats[f"critic/calql/{task}"] = float(reg.detach())
                loss = loss + cfg.calql_alpha * reg
            stats[f"critic/q_data/{task}"] = float(q.detach().mean())
            total = total + loss
        return total

    def _q_of(
        self, obs: Mapping[str, torch.Tensor], actions: torch.Tensor, task_index: torch.Tensor
    ) -> torch.Tensor:
        """Q_psi_i(s, a) with each row's own task critic (min over the ensemble), shape (B,)."""
        out = torch.zeros(actions.shape[0], device=self.device)
        for i, task in enumerate(self.tasks):
            rows = (task_index == i).nonzero(as_tuple=True)[0]
            if rows.numel() == 0:
                continue
            sub = {k: v[rows] for k, v in obs.items()}
            out = out.index_put(
                (rows,), self.policy.critics[task](sub, actions[rows]).min(0).values
            )
        return out

    def update(self, phase: str) -> dict[str, float]:
        """One full update of Algorithm 1 (lines 3-7 in warm-up, 11-16 online); returns diagnostics."""
        pol, cfg = self.policy, self.cfg
        lam_bc, lam_q = cfg.lambdas(phase)
        if phase == "warmup":
            raw = self.replay.sample_warmup(cfg.batch_size, self.rng)
        else:
            raw = self.replay.sample_online(cfg.batch_size, self.rng)
        joined = _tensors(concat_batches(raw), self.device)
        sizes = [len(b["actions"]) for b in raw]
        batches = _split(joined, sizes)
        stats: dict[str, float] = {}

        # Critics (lines 5 / 13): each task's critic on its own minibatch B^i.
        critic_loss = self._critic_losses(batches, joined, phase, stats)
        pol.critics.optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        pol.critics.optimizer.step()

        # The actor and refinement losses differentiate through the critics but must not compute
        # gradients for their weights (a large share of the backward pass otherwise).
        for p in self._critic_params:
            p.requires_grad_(False)
        try:
            self._actor_and_refinement_step(joined, batches, phase, lam_bc, lam_q, stats)
        finally:
            for p in self._critic_params:
                p.requires_grad_(True)
        torch._foreach_lerp_(self._target_params, self._critic_params, cfg.tau)
        return stats

    def _actor_and_refinement_step(
        self,
        joined: dict[str, Any],
        batches: list[dict[str, Any]],
        phase: str,
        lam_bc: float,
        lam_q: float,
        stats: dict[str, float],
    ) -> None:
        pol, cfg = self.policy, self.cfg
        # Primary actor (lines 7 / 15): lambda_1 BC (Eq. 5) + lambda_2 task-weighted Q (Eq. 15).
        h = pol.actor.backbone(joined["obs"])
        # Eq. 6 applies BC to the whole batch D (demos + rollouts); bc_on_rollouts=False keeps
        # it to expert actions (demos and interventions) only.
        weights = None if cfg.bc_on_rollouts else joined.get("is_demo")
        bc, a_pi = pol.actor.head.bc_loss(h, joined["actions"], weights)
        sizes = [b["actions"].shape[0] for b in batches]
        q_per_task = []
        for task, b, a in zip(self.tasks, batches, a_pi.split(sizes), strict=True):
            q_per_task.append(pol.critics[task](b["obs"], a).min(0).values)
        q_bar = torch.stack([q.mean() for q in q_per_task]).detach()
        eps = task_weights(q_bar, cfg.task_weight_c, *cfg.task_weight_clip)
        q_loss = weighted_actor_q_loss(q_per_task, eps)
        if cfg.normalize_q:
            # TD3+BC (Fujimoto & Gu, 2021): divide the Q term by the batch's detached mean |Q| so
            # lambda_2 weighs it relative to BC whatever the scale of the returns. Without it a
            # Q of O(1) swamps a BC error of O(1e-3) and pulls actions off the demonstrations.
            q_scale = torch.cat(q_per_task).abs().mean().detach().clamp_min(1e-3)
            q_loss = q_loss / q_scale
        actor_loss = lam_bc * bc + lam_q * q_loss
        stats["actor/bc_loss"] = float(bc.detach())
        stats["actor/q_loss"] = float(q_loss.detach())
        for i, task in enumerate(self.tasks):
            stats[f"critic/q_policy/{task}"] = float(q_bar[i])
            stats[f"actor/epsilon/{task}"] = float(eps[i])

        # Refinement actor (line 16), online only: Eq. 11 on the talk-tweak buffer.
        refine_loss = None
        tt = (
            self.replay.sample_talk_tweak(cfg.refinement_batch_size, self.rng)
            if phase == "online"
            else None
        )
        if tt is not None:
            t = _tensors(tt, self.device)
            cmd = self.encoder.encode(t["commands"]).to(self.device)
            if self._null_vec is None:
                self._null_vec = self.encoder.encode([NULL_COMMAND]).to(self.device)
            null = self._null_vec.expand(cmd.shape[0], -1)
            h_tt = pol.actor.backbone(t["obs"])
            # mu(s, l_rf) and mu(s, [null]) in one pass of the refinement actor.
            both_obs = {k: torch.cat([v, v]) for k, v in t["obs"].items()}
            mu_cmd, mu_null = pol.refinement(both_obs, torch.cat([cmd, null])).split(cmd.shape[0])
            terms = refinement_losses(
                pol.actor.head,
                h_tt,
                mu_cmd,
                mu_null,
                t["actions"],
                lambda a: self._q_of(t["obs"], a, t["task_index"]),
                cfg.refinement_bc_trains_primary,
            )
            e1, e2, e3 = cfg.eta
            refine_loss = e1 * terms["bc"] + e2 * terms["q"] + e3 * terms["reg"]
            for k, v in terms.items():
                stats[f"refinement/{k}_loss"] = float(v.detach())
            stats["refinement/mu_abs"] = float(mu_cmd.detach().abs().mean())

        pol.actor.optimizer.zero_grad(set_to_none=True)
        pol.refinement.optimizer.zero_grad(set_to_none=True)
        total = actor_loss if refine_loss is None else actor_loss + refine_loss
        # One backward: Eq. 8's gradient reaches theta together with Eq. 6 (refinement.py).
        total.backward()
        pol.actor.optimizer.step()
        if refine_loss is not None:
            pol.refinement.optimizer.step()
