"""DAFT without the dual actor (Table I, "w/o dual"; the paper's 86.7%).

Keeps: the primary consistency actor (Eq. 1, 5, 6), the per-task critics with Cal-QL warm-up and
the Eq. 15-16 task weights, and DAFT's measured defaults (interventions train the critics and the
refinement buffer, not Eq. 6's BC). Drops: the refinement actor
(Eq. 7-11) and so every use of the talk-and-tweak commands (``refinement=False``: no talk-tweak
sampling, no refinement update); at test time it acts in primary mode only.
"""

from __future__ import annotations

from typing import Any

from daft_agent.baselines.common import BaselineSettings, dual_actor


def make(env: Any, store: Any, seed: int, settings: BaselineSettings) -> Any:
    """DAFT's agent with ``refinement=False``."""
    return dual_actor(env, store, seed, settings, refinement=False)
