"""The learner: backbones, actors, critics, buffers, update rule, DualActorAgent, runs, CLI.

``from daft_agent import DualActorAgent`` works as ``from stable_baselines3 import SAC`` does; the
import is lazy so that ``import daft_agent`` alone (e.g. for the CLI) does not load torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DualActorAgent"]


def __getattr__(name: str) -> Any:
    if name == "DualActorAgent":
        from daft_agent.agent import DualActorAgent

        return DualActorAgent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
