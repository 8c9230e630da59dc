"""DAFT itself (Table I's first row): primary + refinement actor, per-task critics, Eq. 16 weights.

Keeps everything of the paper's method: Cal-QL warm-up, per-task critics (Algorithm 1, lines 5
and 13), the actor's Q term (Eq. 4) with task weights (Eq. 14-16), the refinement actor on
talk-and-tweak triplets (Eq. 7-11). Drops nothing.
"""

from __future__ import annotations

from typing import Any

from daft_agent.baselines.common import BaselineSettings, dual_actor


def make(env: Any, store: Any, seed: int, settings: BaselineSettings) -> Any:
    """DAFT's :class:`~daft_agent.agent.DualActorAgent` at the experiment's sizes."""
    return dual_actor(env, store, seed, settings)
