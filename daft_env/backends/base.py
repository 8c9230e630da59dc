"""The ``Backend`` seam: where actions go and observations come from.

One protocol, implemented by :class:`~daft_env.backends.mujoco.MujocoBackend` and
:class:`~daft_env.backends.real.RealBackend`; a caller uses these methods and never probes for
others. It is shaped by what a real arm needs:

* :meth:`Backend.apply_action` blocks for one control period (10 Hz) and returns what was actually
  sent after safety clipping;
* :meth:`Backend.reset` may block while a human rearranges the scene;
* :meth:`Backend.task_status` may get its success signal from outside (an operator key or a learned
  classifier) rather than from physical state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from daft_env.tasks import TaskSpec


@dataclass
class ActionReport:
    """What a backend did with one action.

    Attributes:
        applied: the normalised 7-d action actually executed, after clipping.
        clipped: True when any safety limit changed the command.
        clip_reasons: one short machine-readable reason per limit that fired.
    """

    applied: np.ndarray
    clipped: bool = False
    clip_reasons: tuple[str, ...] = ()


@dataclass
class TaskStatus:
    """Whether the current task is done.

    Attributes:
        success: the task's success predicate holds now.
        failed: the episode cannot be recovered (bolt off the table, arm fault); ends the episode.
        info: extra diagnostics (distances, angles) that the env copies into ``info``.
    """

    success: bool
    failed: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """Where a :class:`~daft_env.env.BoltEnv` sends actions and reads observations."""

    #: True when :meth:`observe` can return privileged ``state`` (simulation only).
    has_privileged_state: bool

    def reset(
        self, task: TaskSpec, rng: np.random.Generator, options: Mapping[str, Any] | None = None
    ) -> None:
        """Bring the scene to a fresh initial state for ``task``. May block for a human."""

    def set_task(self, task: TaskSpec) -> None:
        """Switch the active subtask without resetting the scene (long-horizon chains)."""

    def set_active_bolt(self, index: int) -> None:
        """Make bolt ``index`` the subject of the task's success signal (long-horizon chains).

        Raises:
            ConfigError: ``index`` is not one of the bolts laid out by the last :meth:`reset`.
        """

    def apply_action(self, action: np.ndarray) -> ActionReport:
        """Execute one normalised 7-d action for one control period and return what was applied."""

    def observe(self, *, pixels: bool, state: bool) -> dict[str, np.ndarray]:
        """Return ``wrist_rgb``/``head_rgb`` when ``pixels``, ``state`` when asked, and ``gripper``."""

    def task_status(self) -> TaskStatus:
        """Evaluate the active task's success signal."""

    def privileged_state(self) -> dict[str, Any]:
        """Physical object and arm state for scripted experts and the simulated operator.

        Raises:
            BackendError: the backend has no privileged state (``has_privileged_state`` is False).
        """

    def render(self, camera: str = "head") -> np.ndarray:
        """An RGB frame for ``render_mode='rgb_array'`` (any size)."""

    def render_human(self) -> None:
        """Show the scene in an interactive viewer (``render_mode='human'``).

        Raises:
            BackendError: no viewer (a real arm) or no display; the message points to 'rgb_array'.
        """

    def stop(self) -> None:
        """Halt motion at once (an emergency stop); the next :meth:`reset` resumes. Never raises."""

    def close(self) -> None:
        """Release the simulator, sockets and cameras. Safe to call twice."""
