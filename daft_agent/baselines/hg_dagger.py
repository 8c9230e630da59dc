"""HG-DAgger (Kelly et al., 2019) on DAFT's consistency actor (Table I; the paper's 25.3%).

Keeps: interactive imitation, a policy trained by behaviour cloning on the demonstrations plus
every human intervention (the operator's gated takeovers are HG-DAgger's expert interventions),
with the learner's data aggregated over the whole run. Drops: any critic or reward (``lambda_2 =
0`` in both phases, ``train_critics=False``), BC on the policy's own rollouts
(``bc_on_rollouts=False``: only expert-labelled rows are imitated), the refinement actor. The
source paper's policy is a plain MLP; here it is DAFT's consistency head (Eq. 5), so the row
isolates the learning rule rather than the architecture.
"""

from __future__ import annotations

from typing import Any

from daft_agent.baselines.common import BaselineSettings, dual_actor

#: the DualActorAgent switches of pure interactive imitation (also DSRL's base policy)
BC_ONLY: dict[str, Any] = {
    "lambda_warmup": (1.0, 0.0),
    "lambda_online": (1.0, 0.0),
    "train_critics": False,
    "refinement": False,
    "bc_on_rollouts": False,
    "interventions_as_demos": True,  # HG-DAgger's whole point: imitate the expert's takeovers
}


def make(env: Any, store: Any, seed: int, settings: BaselineSettings) -> Any:
    """DAFT's agent as BC on demonstrations + interventions, no critic."""
    return dual_actor(env, store, seed, settings, **BC_ONLY)
