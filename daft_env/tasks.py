"""The bolt tasks as data: one :class:`TaskSpec` each (paper Section III, Fig. 2).

The order of :data:`TASK_NAMES` fixes ``task_id`` everywhere (observations, buffers, critics).
"""

from __future__ import annotations

from dataclasses import dataclass

from daft_env.errors import UnknownTaskError

TASK_NAMES: tuple[str, ...] = ("upright", "pickup", "assemble")
INSTRUCTIONS: dict[str, str] = {
    "upright": "place the bolt upright",
    "pickup": "pick up the bolt",
    "assemble": "assemble the bolt",
}


@dataclass(frozen=True)
class TaskSpec:
    """A task: its name, id, instruction text and episode limit."""

    name: str
    task_id: int
    instruction: str
    max_steps: int = 50


TASKS: dict[str, TaskSpec] = {
    name: TaskSpec(name=name, task_id=i, instruction=INSTRUCTIONS[name])
    for i, name in enumerate(TASK_NAMES)
}


def get_task(name: str | int) -> TaskSpec:
    """Look a task up by name or id; an unknown one raises an error listing the valid names."""
    if isinstance(name, int) and 0 <= name < len(TASK_NAMES):
        return TASKS[TASK_NAMES[name]]
    if isinstance(name, str) and name in TASKS:
        return TASKS[name]
    raise UnknownTaskError(
        f"unknown task {name!r}; valid tasks are {list(TASK_NAMES)} (or ids 0..{len(TASK_NAMES) - 1})"
    )
