"""The in-memory episode record shared by the store, the wrappers and the learner's buffers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The three per-task kinds of episode data in Algorithm 1.
EPISODE_KINDS: tuple[str, ...] = ("demos", "rollouts", "interventions")
NULL_COMMAND = "[null]"


@dataclass
class Episode:
    """One finished episode of one task.

    ``observations`` holds T+1 entries per key (the last is the final observation); every per-step
    array holds T entries. An online episode with any intervened step is stored under the
    ``interventions`` kind; the learner splits it per step using ``intervened`` (Algorithm 1,
    lines 20-26).

    Attributes:
        task: task name (``daft_env.tasks.TASK_NAMES``).
        task_id: index of the task.
        instruction: the task instruction text l_task.
        kind: one of :data:`EPISODE_KINDS`.
        observations: key -> array of shape (T+1, ...), e.g. ``wrist_rgb``, ``gripper``, ``state``.
        actions: (T, 7) executed actions (the operator's where it intervened).
        policy_actions: (T, 7) what the policy proposed.
        intervened: (T,) bool, True where the device's action replaced the policy's.
        rewards: (T,) float32 sparse rewards.
        terminated: (T,) bool, True where the episode ended on success or failure.
        refinement_commands: T strings, ``[null]`` where no command applies (Eq. 12-13).
        success: whether the episode ended in success.
        embeddings: optional (T+1, D) frozen-backbone embeddings h (Eq. 3).
        metadata: free-form JSON-serialisable details (seed, env id, device, operator).
    """

    task: str
    task_id: int
    instruction: str
    kind: str
    observations: dict[str, np.ndarray]
    actions: np.ndarray
    policy_actions: np.ndarray
    intervened: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    refinement_commands: list[str]
    success: bool
    embeddings: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.actions.shape[0])
