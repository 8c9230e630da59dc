"""What every Table I row shares: the budget settings and DAFT's agent with its switches.

Each row is a configuration of the same parts (:class:`~daft_agent.agent.DualActorAgent` and its
:class:`~daft_agent.update.LearnerConfig` switches, or Stable-Baselines3's SAC), never a fork.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from daft_agent.errors import AgentConfigError
from daft_agent.runs.config import BATCH_SIZE, WARMUP_STEPS


@dataclass(frozen=True)
class BaselineSettings:
    """Sizes every row of one experiment shares.

    Args:
        warmup_steps: offline updates on the demonstrations before going online (Cal-QL warm-up
            for the critic-based rows, BC for HG-DAgger and DSRL's base policy).
        batch_size: B of every update (SAC's batch too).
        min_rollouts_per_task: rollout transitions per task before DAFT-family online updates.
        hidden: hidden widths of every network (None: each library's defaults).
        learning_starts: env steps before SAC's first update (SAC rows).
    """

    warmup_steps: int = WARMUP_STEPS
    batch_size: int = BATCH_SIZE
    min_rollouts_per_task: int = 100
    hidden: tuple[int, ...] | None = None
    learning_starts: int = 100

    def __post_init__(self) -> None:
        if self.warmup_steps < 0 or self.batch_size < 2 or self.min_rollouts_per_task < 1:
            raise AgentConfigError(
                "BaselineSettings needs warmup_steps >= 0, batch_size >= 2 and "
                f"min_rollouts_per_task >= 1; got {self}"
            )
        if self.learning_starts < 0:
            raise AgentConfigError(f"learning_starts must be >= 0; got {self.learning_starts}")

    def sac_kwargs(self) -> dict[str, Any]:
        """SB3 SAC's arguments for these sizes (one update per env step, as DAFT's UTD of 1)."""
        out: dict[str, Any] = {
            "batch_size": self.batch_size,
            "learning_starts": self.learning_starts,
            "train_freq": 1,
            "gradient_steps": 1,
        }
        if self.hidden is not None:
            out["policy_kwargs"] = {"net_arch": list(self.hidden)}
        return out


def dual_actor(env: Any, store: Any, seed: int, settings: BaselineSettings, **switches: Any) -> Any:
    """A :class:`~daft_agent.agent.DualActorAgent` at these sizes with ``switches`` applied.

    ``switches`` are constructor arguments (the LearnerConfig ablation switches, lambdas, ...).
    """
    from daft_agent.agent import DualActorAgent

    network: dict[str, Any] = {}
    if settings.hidden is not None:
        network = {f"{n}_hidden": settings.hidden for n in ("actor", "critic", "refinement")}
    return DualActorAgent(
        env=env,
        store=store,
        seed=seed,
        batch_size=settings.batch_size,
        refinement_batch_size=min(64, settings.batch_size),
        warmup_steps=settings.warmup_steps,
        min_rollouts_per_task=settings.min_rollouts_per_task,
        policy_kwargs=network,
        **switches,
    )


__all__ = ["BaselineSettings", "dual_actor"]
