"""Tasks as data: one :class:`TaskSpec` each, in one registry (paper Section III, Fig. 2).

DAFT's bolt tasks (:data:`TASK_NAMES`: upright, pickup, assemble) are registered here with ids
0-2, and that order fixes ``BoltEnv``'s ``task_id``. A user's own tasks join the same registry
with :func:`register_task`, from their own code (the module of their env, as Gymnasium ids are
registered on import) or from a real-arm YAML (``tasks:``; :mod:`daft_env.backends.real.config`),
without editing DAFT. A registered task gets the next free global id, which episodes carry;
an agent's own ``task_id`` order is the env's task list, not the registry's.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from daft_env.errors import ConfigError, UnknownTaskError

#: DAFT's own bolt tasks, in ``BoltEnv``'s ``task_id`` order
TASK_NAMES: tuple[str, ...] = ("upright", "pickup", "assemble")
INSTRUCTIONS: dict[str, str] = {
    "upright": "place the bolt upright",
    "pickup": "pick up the bolt",
    "assemble": "assemble the bolt",
}
#: a task name is a directory of the episode store and a word of the CLI: letters, digits, _ -
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
#: names that mean several tasks to ``daft collect --task`` and the experts
RESERVED = ("all", "multi", "long_horizon")


@dataclass(frozen=True)
class TaskSpec:
    """A task: its name, global id, instruction text and episode limit (steps)."""

    name: str
    task_id: int
    instruction: str
    max_steps: int = 50

    @property
    def builtin(self) -> bool:
        """True for DAFT's bolt tasks."""
        return self.name in TASK_NAMES


TASKS: dict[str, TaskSpec] = {
    name: TaskSpec(name=name, task_id=i, instruction=INSTRUCTIONS[name])
    for i, name in enumerate(TASK_NAMES)
}
_LOCK = threading.Lock()


def check_task_name(name: object) -> str:
    """``name`` if it can name a task of your own; else a :class:`ConfigError` saying why."""
    if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED:
        raise ConfigError(
            f"task name {name!r} is not valid: use a word of letters, digits, '_' and '-' that "
            f"starts with a letter (it names a directory of the episode store), not one of "
            f"{list(RESERVED)}"
        )
    return name


def register_task(name: str, instruction: str | None = None, max_steps: int = 50) -> TaskSpec:
    """Register a task of your own (or get it back when it is registered the same way).

    Args:
        name: a word of letters, digits, ``_`` and ``-`` starting with a letter (it names a
            directory of the episode store).
        instruction: the language instruction l_task (default: the name with ``_`` as spaces).
        max_steps: the episode's step limit.

    Returns:
        The task's :class:`TaskSpec`, with the next free global id.

    Raises:
        ConfigError: a malformed name, a reserved one, a step limit below 1, or a name already
            registered with another instruction or limit (the message shows both).
    """
    check_task_name(name)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ConfigError(f"task {name!r}: max_steps must be an integer >= 1; got {max_steps!r}")
    text = str(instruction) if instruction else name.replace("_", " ")
    with _LOCK:
        old = TASKS.get(name)
        if old is not None:
            if old.instruction != text or old.max_steps != max_steps:
                raise ConfigError(
                    f"task {name!r} is already registered as ({old.instruction!r}, max_steps="
                    f"{old.max_steps}); registering it again as ({text!r}, max_steps={max_steps}) "
                    "would change its meaning. Give the new task another name"
                )
            return old
        spec = TaskSpec(name, len(TASKS), text, max_steps)
        TASKS[name] = spec
        return spec


def task_names() -> tuple[str, ...]:
    """Every registered task, in global-id order (the bolt tasks first)."""
    return tuple(sorted(TASKS, key=lambda n: TASKS[n].task_id))


def get_task(name: str | int) -> TaskSpec:
    """Look a task up by name or global id; an unknown one raises an error listing the valid names."""
    names = task_names()
    if isinstance(name, (int,)) and not isinstance(name, bool) and 0 <= name < len(names):
        return TASKS[names[name]]
    if isinstance(name, str) and name in TASKS:
        return TASKS[name]
    raise UnknownTaskError(
        f"unknown task {name!r}; valid tasks are {list(names)} (or ids 0..{len(names) - 1}). "
        "A task of your own is registered with daft_env.tasks.register_task(name, instruction), "
        "usually on import of your env's module (daft ... --env module:EnvId imports it)"
    )
