"""HIL-ConRFT (Chen et al., 2025, the paper's ref. [12]; Table I's 0%).

Keeps: one consistency actor with ConRFT's objective (Eq. 5 BC plus Q), Cal-QL warm-up of the
critic, online Bellman Q-learning, human interventions added to the demonstration buffer.
Drops: per-task critics (``shared_critic=True``: every task's rows train and score against one
critic ensemble), task weights (``task_weight_clip=(1, 1)``: eps = 1, Eq. 16 off), the refinement
actor and commands. ConRFT's own single-task setting is thereby run multi-task, which is the
comparison Table I makes.
"""

from __future__ import annotations

from typing import Any

from daft_agent.baselines.common import BaselineSettings, dual_actor

#: ConRFT's own online objective, not DAFT's measured defaults: lambda = (0.5, 0.5), BC on every
#: row of the batch, and interventions imitated as demonstrations.
CONRFT_OBJECTIVE: dict[str, Any] = {
    "lambda_online": (0.5, 0.5),
    "bc_on_rollouts": True,
    "interventions_as_demos": True,
}


def make(env: Any, store: Any, seed: int, settings: BaselineSettings) -> Any:
    """DAFT's agent with one shared critic, eps = 1 and no refinement actor."""
    return dual_actor(
        env,
        store,
        seed,
        settings,
        shared_critic=True,
        task_weight_clip=(1.0, 1.0),
        refinement=False,
        **CONRFT_OBJECTIVE,
    )
