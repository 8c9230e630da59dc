"""The update rule: one full dual-actor update of Algorithm 1 (lines 3-7 warm-up, 11-16 online).

:class:`Learner` owns no thread and no env: it samples the buffers of Algorithm 1, steps the
per-task critics (Algorithm 1, lines 5 and 13: Cal-QL in warm-up, Bellman online), the primary actor (Eq. 6, 15) and the
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
from daft_agent.commands import NULL_COMMAND, CommandEncoder
from daft_agent.critics import TaskRouting, bellman_per_row, calql_per_row
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
    #: Defaults measured on the bolt tasks (README "what to expect"): Eq. 8's BC stays in phi
    #: (True let every talk-tweak row retrain the primary head on the operator's corrections, and
    #: the primary's success fell), and Eq. 6's BC imitates expert rows only: the policy's own
    #: rollouts (mostly failures early on) are not imitated.
    refinement_bc_trains_primary: bool = False
    bc_on_rollouts: bool = False
    normalize_q: bool = False
    #: Table I's ablations as switches of the same update (daft_agent.baselines): ``refinement``
    #: False trains no refinement actor (w/o dual); ``train_critics`` False steps no critic, for
    #: BC alone (HG-DAgger, needs lambda_2 = 0); ``shared_critic`` routes every task's rows to one
    #: critic, task 0's members (HIL-ConRFT's single critic).
    refinement: bool = True
    train_critics: bool = True
    shared_critic: bool = False

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
        if not self.train_critics and (
            self.lambdas.warmup[1] or self.lambdas.online[1] or (self.refinement and self.eta[1])
        ):
            raise AgentConfigError(
                "train_critics=False leaves the critics untrained, so the actor's Q term would "
                "chase noise; set lambda_2 = 0 in both phases (lambda_warmup=(1, 0), "
                "lambda_online=(1, 0)) and refinement=False (or eta_2 = 0)"
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
        self, joined: dict[str, Any], routing: TaskRouting, phase: str, stats: dict[str, float]
    ) -> torch.Tensor:
        """Sum over tasks of each task's critic loss on its own rows B^i (Algorithm 1, l. 5, 13).

        Bellman online; in warm-up plus ``calql_alpha`` times Cal-QL's regulariser, whose
        ``calql_n_actions`` uniform, pi(s) and pi(s') actions per state are scored in the same
        critic call as the data action. Every task's critic runs in that one call
        (:class:`~daft_agent.critics.TaskCritics`), the target critics in one more.
        """
        pol, cfg = self.policy, self.cfg
        n = cfg.calql_n_actions if phase == "warmup" and cfg.calql_alpha > 0 else 0
        obs, next_obs, actions = joined["obs"], joined["next_obs"], joined["actions"]
        bsz, adim = actions.shape
        with torch.no_grad():
            # a' ~ pi_theta^w(s') for the TD target and, in warm-up, n draws of pi(s) and of
            # pi(s') per state for Cal-QL: one pass of the shared actor for all of them.
            if n:
                rows = {
                    k: torch.cat(
                        [
                            next_obs[k],
                            obs[k].repeat_interleave(n, 0),
                            next_obs[k].repeat_interleave(n, 0),
                        ]
                    )
                    for k in obs
                }
                next_a, a_pi, a_next_pi = pol.actor(rows).split([bsz, bsz * n, bsz * n])
            else:
                next_a = pol.actor(next_obs)
            q_next = pol.critics_target(next_obs, next_a, routing).min(0).values
            # Only true terminals stop the bootstrap; a time-limit truncation does not.
            y = joined["rewards"] + cfg.gamma * (1.0 - joined["terminated"]) * q_next
        if n:
            a_rand = torch.rand(bsz, n, adim, device=self.device) * 2.0 - 1.0
            acts = torch.cat(
                [
                    actions.unsqueeze(1),
                    a_rand,
                    a_pi.view(bsz, n, adim),
                    a_next_pi.view(bsz, n, adim),
                ],
                dim=1,
            )
            q_all = pol.critics(obs, acts, routing)
            q = q_all[:, :, 0]
            q_rand, q_pi, q_next_pi = q_all[:, :, 1:].split(n, dim=2)
        else:
            q = pol.critics(obs, actions, routing)
        td = routing.task_mean(bellman_per_row(q, y))
        loss = td.sum()
        logged = {"td_loss": td, "q_data": routing.task_mean(q.detach().mean(0))}
        if n:
            reg = routing.task_mean(
                calql_per_row(
                    q, q_rand, q_pi, q_next_pi, joined["mc_returns"], cfg.calql_temperature
                )
            )
            loss = loss + cfg.calql_alpha * reg.sum()
            logged["calql"] = reg
        for name, per_task in logged.items():
            for task, v in zip(self.tasks, per_task.detach().tolist(), strict=True):
                stats[f"critic/{name}/{task}"] = v
        return loss

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
        routing = pol.critics.routing(self._critic_rows(joined["task_index"]))
        stats: dict[str, float] = {}

        # Critics (lines 5 / 13): each task's critic on its own minibatch B^i.
        if cfg.train_critics:
            critic_loss = self._critic_losses(joined, routing, phase, stats)
            pol.critics.optimizer.zero_grad(set_to_none=True)
            critic_loss.backward()
            pol.critics.optimizer.step()

        self._actor_and_refinement_step(joined, routing, sizes, phase, lam_bc, lam_q, stats)
        if cfg.train_critics:
            torch._foreach_lerp_(self._target_params, self._critic_params, cfg.tau)
        return stats

    def _critic_rows(self, task_index: torch.Tensor) -> torch.Tensor:
        """The critic each row goes to: its task's, or task 0's for all with ``shared_critic``."""
        return torch.zeros_like(task_index) if self.cfg.shared_critic else task_index

    def _actor_and_refinement_step(
        self,
        joined: dict[str, Any],
        routing: TaskRouting,
        sizes: Sequence[int],
        phase: str,
        lam_bc: float,
        lam_q: float,
        stats: dict[str, float],
    ) -> None:
        pol, cfg = self.policy, self.cfg
        # Refinement actor (line 16), online only: Eq. 11 on the talk-tweak buffer.
        tt = (
            self.replay.sample_talk_tweak(cfg.refinement_batch_size, self.rng)
            if phase == "online" and cfg.refinement
            else None
        )
        t = None if tt is None else _tensors(tt, self.device)
        n_main = joined["actions"].shape[0]
        # The update batch and the talk-tweak batch go through the primary backbone, and later
        # through the critics, together: one call each instead of two.
        obs = joined["obs"]
        if t is not None:
            obs = {k: torch.cat([v, t["obs"][k]]) for k, v in obs.items()}
        h_all = pol.actor.backbone(obs)
        # Primary actor (lines 7 / 15): lambda_1 BC (Eq. 5) + lambda_2 task-weighted Q (Eq. 15).
        # Eq. 6 applies BC to the whole batch D (demos + rollouts); bc_on_rollouts=False keeps
        # it to expert actions (demos and interventions) only.
        weights = None if cfg.bc_on_rollouts else joined.get("is_demo")
        bc, a_pi = pol.actor.head.bc_loss(h_all[:n_main], joined["labels"], weights)

        # Q_psi_i(s, pi(s)) of every row's own task; the critics' weights enter as constants
        # (detach_params), so the actor's gradient reaches the actions and no critic weight.
        scored: dict[str, torch.Tensor] = {}
        refine_loss = None
        if t is not None:
            cmd = self.encoder.encode(t["commands"]).to(self.device)
            if self._null_vec is None:
                self._null_vec = self.encoder.encode([NULL_COMMAND]).to(self.device)
            null = self._null_vec.expand(cmd.shape[0], -1)
            # mu(s, l_rf) and mu(s, [null]) in one pass of the refinement actor.
            both_obs = {k: torch.cat([v, v]) for k, v in t["obs"].items()}
            mu_cmd, mu_null = pol.refinement(both_obs, torch.cat([cmd, null])).split(cmd.shape[0])
            both_routing = pol.critics.routing(
                self._critic_rows(torch.cat([joined["task_index"], t["task_index"]]))
            )

            def q_both(refined: torch.Tensor) -> torch.Tensor:
                # Eq. 9's Q of the refined actions and Eq. 15's Q of pi(s) in one critic call.
                acts = torch.cat([a_pi, refined])
                q = pol.critics(obs, acts, both_routing, detach_params=True).min(0).values
                scored["primary"], q_refined = q.split([n_main, refined.shape[0]])
                return q_refined

            terms = refinement_losses(
                pol.actor.head,
                h_all[n_main:],
                mu_cmd,
                mu_null,
                t["labels"],
                q_both,
                cfg.refinement_bc_trains_primary,
            )
            e1, e2, e3 = cfg.eta
            refine_loss = e1 * terms["bc"] + e2 * terms["q"] + e3 * terms["reg"]
            for k, v in terms.items():
                stats[f"refinement/{k}_loss"] = float(v.detach())
            stats["refinement/mu_abs"] = float(mu_cmd.detach().abs().mean())
        q_pi = scored.get("primary")
        if q_pi is None and cfg.train_critics:
            q_pi = pol.critics(joined["obs"], a_pi, routing, detach_params=True).min(0).values
        if q_pi is None:  # BC alone (train_critics=False): no Q term at all
            q_pi = torch.zeros(n_main, device=self.device)
        q_per_task = list(q_pi.split(list(sizes)))
        q_bar = torch.stack([q.mean() for q in q_per_task]).detach()
        eps = task_weights(q_bar, cfg.task_weight_c, *cfg.task_weight_clip)
        q_loss = weighted_actor_q_loss(q_per_task, eps)
        if cfg.normalize_q and cfg.train_critics:
            # TD3+BC (Fujimoto & Gu, 2021): divide the Q term by the batch's detached mean |Q| so
            # lambda_2 weighs it relative to BC whatever the scale of the returns. Without it a
            # Q of O(1) swamps a BC error of O(1e-3) and pulls actions off the demonstrations.
            q_scale = q_pi.abs().mean().detach().clamp_min(1e-3)
            q_loss = q_loss / q_scale
        actor_loss = lam_bc * bc + lam_q * q_loss
        stats["actor/bc_loss"] = float(bc.detach())
        stats["actor/q_loss"] = float(q_loss.detach())
        for i, task in enumerate(self.tasks):
            stats[f"critic/q_policy/{task}"] = float(q_bar[i])
            stats[f"actor/epsilon/{task}"] = float(eps[i])

        pol.actor.optimizer.zero_grad(set_to_none=True)
        pol.refinement.optimizer.zero_grad(set_to_none=True)
        total = actor_loss if refine_loss is None else actor_loss + refine_loss
        # One backward: Eq. 8's gradient reaches theta together with Eq. 6 (refinement.py).
        total.backward()
        pol.actor.optimizer.step()
        if refine_loss is not None:
            pol.refinement.optimizer.step()
