"""One episode: the in-memory record, and the one recorder that builds it from a step stream.

:class:`Episode` is shared by the store, the wrappers and the learner's buffers.
:class:`EpisodeRecorder` is the only place an episode is assembled from steps: the
``RecordEpisodeToStore`` wrapper, the learner's online actor and the tests all use it, so every
stored episode follows one success rule, one task attribution (:func:`task_of`) and one way of
keeping a hardware fault's reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daft_env.errors import ConfigError
from daft_env.tasks import TASK_NAMES, get_task, task_names

#: The three per-task kinds of episode data in Algorithm 1.
EPISODE_KINDS: tuple[str, ...] = ("demos", "rollouts", "interventions")
NULL_COMMAND = "[null]"
#: ``info`` keys naming a backend fault; copied into an episode's metadata when present.
FAULT_KEYS: tuple[str, ...] = ("backend_error", "backend_error_type")


@dataclass
class Episode:
    """One finished episode of one task.

    ``observations`` holds T+1 entries per key (the last is the final observation); every per-step
    array holds T entries. An online episode with any intervened step is stored under the
    ``interventions`` kind; the learner splits it per step using ``intervened`` (Algorithm 1,
    lines 20-26).

    Attributes:
        task: task name (a bolt task of ``daft_env.tasks.TASK_NAMES`` or one of your own).
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
        intended_actions: (T, 7) what the operator meant on intervened steps (the clean label of
            a correction, ``info["intended_action"]``), the executed action elsewhere; None (older
            files, other sources) reads as ``actions``. See :attr:`labels`.
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
    intended_actions: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def fingerprint(self) -> str:
        """SHA-256 of what the episode is: task, kind, actions and observations."""
        h = hashlib.sha256(f"{self.task}|{self.kind}|{len(self)}".encode())
        for key, arr in [("actions", self.actions), *sorted(self.observations.items())]:
            h.update(key.encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    @property
    def labels(self) -> np.ndarray:
        """(T, 7) the actions to imitate: ``intended_actions`` when recorded, else ``actions``."""
        return self.actions if self.intended_actions is None else self.intended_actions


def _check_tasks(tasks: Sequence[str] | None) -> tuple[str, ...]:
    names = TASK_NAMES if tasks is None else tuple(tasks)
    if not names:
        raise ConfigError(f"tasks must name at least one of {list(TASK_NAMES)}; got an empty list")
    for name in names:
        get_task(name)  # UnknownTaskError lists the valid names
    return names


def task_of(
    info: Mapping[str, Any], obs: Mapping[str, Any], tasks: Sequence[str] | None = None
) -> str:
    """The task an env is running, by one precedence.

    1. ``info["task"]`` when it names one of ``tasks``;
    2. else ``tasks[obs["task_id"]]`` (``task_id`` indexes the env's task list; for ``BoltEnv``
       that list is :data:`~daft_env.tasks.TASK_NAMES`);
    3. else ``tasks[0]`` when the env runs one task only.

    Args:
        info: the step's (or reset's) ``info``.
        obs: the observation (a ``Dict`` observation; anything else has no ``task_id``).
        tasks: the env's task names, in ``task_id`` order; defaults to the bolt tasks
            (:data:`~daft_env.tasks.TASK_NAMES`), and then ``info["task"]`` may name any
            registered task (one of your own, :func:`~daft_env.tasks.register_task`).

    Raises:
        ConfigError: none of the three applies, or ``task_id`` is out of range.
    """
    names = _check_tasks(tasks)
    name = info.get("task")
    if isinstance(name, str) and (name in names or (tasks is None and name in task_names())):
        return name
    if isinstance(obs, Mapping) and "task_id" in obs:
        idx = int(np.asarray(obs["task_id"]).reshape(-1)[0])
        if not 0 <= idx < len(names):
            raise ConfigError(
                f"obs['task_id'] = {idx} is outside the env's tasks {list(names)}; pass the env's "
                "task list (in task_id order) as tasks=..."
            )
        return names[idx]
    if len(names) == 1:
        return names[0]
    raise ConfigError(
        f"cannot tell which of the tasks {list(names)} this episode ran: info has no 'task' among "
        "them and the observation has no 'task_id'; name it with finish(..., task=...) (or "
        "RecordEpisodeToStore(task=...)), or give the recorder the env's single task as tasks=[...]"
    )


def _stack(frames: list[Any]) -> dict[str, np.ndarray]:
    first = frames[0]
    if isinstance(first, Mapping):
        return {k: np.stack([np.asarray(o[k]) for o in frames]) for k in first}
    return {"observation": np.stack([np.asarray(o) for o in frames])}


class EpisodeRecorder:
    """Collects one episode's steps and builds its :class:`Episode`.

    Call :meth:`start` with the reset's observation, :meth:`step` after every env step, and
    :meth:`finish` with the last step's ``info``. Per step it keeps:

    * the executed action: ``info["executed_action"]`` when present, else
      ``info["intervention_action"]`` when ``info["intervened"]``, else the action passed in;
    * the policy's action: ``info["policy_action"]`` when present, else the action passed in;
    * the intended action: ``info["intended_action"]`` when present and not None, else the
      executed action;
    * ``intervened``, the reward and ``terminated``.

    :meth:`finish` applies the one success rule: ``info["is_success"]`` of the last step when
    present, else ``terminated[-1] and rewards[-1] > 0``; an emergency stop
    (``info["emergency_stop"]``) is never a success.

    Args:
        tasks: the env's task names in ``task_id`` order (for :func:`task_of`); defaults to all.
        kind: a fixed kind (e.g. ``"demos"``); None picks ``"interventions"`` when any step was
            intervened, else ``"rollouts"``.
        embed: optional ``obs -> (D,)`` function whose outputs are stored as ``embeddings``.
    """

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        kind: str | None = None,
        embed: Callable[[Any], np.ndarray] | None = None,
    ) -> None:
        if kind is not None and kind not in EPISODE_KINDS:
            raise ConfigError(f"kind must be one of {list(EPISODE_KINDS)} or None; got {kind!r}")
        self.tasks = _check_tasks(tasks)
        self._named = tasks is not None  # None: info["task"] may name any registered task
        self.kind = kind
        self.embed = embed
        self._active = False
        self._clear()

    def _clear(self) -> None:
        self._obs: list[Any] = []
        self._actions: list[np.ndarray] = []
        self._policy_actions: list[np.ndarray] = []
        self._intended: list[np.ndarray] = []
        self._intervened: list[bool] = []
        self._rewards: list[float] = []
        self._terminated: list[bool] = []
        self._start_info: dict[str, Any] = {}

    @property
    def active(self) -> bool:
        """True between :meth:`start` and :meth:`finish` (or :meth:`discard`)."""
        return self._active

    def __len__(self) -> int:
        """Steps recorded so far in the current episode."""
        return len(self._actions)

    def start(self, obs: Any, info: Mapping[str, Any]) -> None:
        """Begin a new episode at the reset observation; an unfinished one is dropped."""
        self._clear()
        self._obs.append(obs)
        self._start_info = dict(info)
        self._active = True

    def discard(self) -> None:
        """Drop the episode in progress (e.g. one abandoned by an early reset)."""
        self._clear()
        self._active = False

    def step(
        self,
        obs: Any,
        action: np.ndarray,
        reward: float,
        terminated: bool,
        info: Mapping[str, Any],
    ) -> None:
        """Record one transition: ``action`` was passed to ``env.step`` and gave ``obs``."""
        if not self._active:
            raise ConfigError("EpisodeRecorder.step() before start(): call start(obs, info) first")
        intervened = bool(info.get("intervened", False))
        executed = info.get("executed_action")
        if executed is None and intervened:
            executed = info.get("intervention_action")
        if executed is None:
            executed = action
        policy = info.get("policy_action")
        if policy is None:
            policy = action
        self._obs.append(obs)
        self._actions.append(np.asarray(executed, dtype=np.float32).reshape(-1))
        self._policy_actions.append(np.asarray(policy, dtype=np.float32).reshape(-1))
        intended = info.get("intended_action")
        self._intended.append(
            self._actions[-1] if intended is None else np.asarray(intended, np.float32).reshape(-1)
        )
        self._intervened.append(intervened)
        self._rewards.append(float(reward))
        self._terminated.append(bool(terminated))

    def finish(
        self,
        info: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
        task: str | None = None,
    ) -> Episode:
        """Build the :class:`Episode` from the recorded steps and end recording.

        Args:
            info: the last step's ``info``.
            metadata: details stored with the episode; ``backend_error`` and
                ``backend_error_type`` from ``info`` are added when present, so a hardware
                fault's reason reaches the store.
            task: the task name, overriding :func:`task_of`.

        Raises:
            ConfigError: no step was recorded, or the task cannot be told (see :func:`task_of`).
        """
        T = len(self._actions)
        if not self._active or T == 0:
            raise ConfigError(
                "EpisodeRecorder.finish() needs at least one step since start(); check len(recorder)"
            )
        name = task if task is not None else task_of(info, self._obs[-1], self.tasks if self._named else None)
        spec = get_task(name)  # the global task id, which the store checks
        intervened = np.asarray(self._intervened, dtype=bool)
        commands = info.get("episode_refinement_commands")
        if commands is None or len(commands) != T:
            commands = [NULL_COMMAND] * T
        if info.get("emergency_stop"):
            success = False
        elif "is_success" in info:
            success = bool(info["is_success"])
        else:
            success = bool(self._terminated[-1] and self._rewards[-1] > 0)
        instruction = info.get("instruction") or self._start_info.get("instruction")
        meta = dict(metadata or {})
        meta.update({k: info[k] for k in FAULT_KEYS if info.get(k) is not None})
        embeddings = None
        if self.embed is not None:
            embeddings = np.stack([np.asarray(self.embed(o)) for o in self._obs])
        episode = Episode(
            task=spec.name,
            task_id=spec.task_id,
            instruction=str(instruction or spec.instruction),
            kind=self.kind or ("interventions" if intervened.any() else "rollouts"),
            observations=_stack(self._obs),
            actions=np.stack(self._actions),
            policy_actions=np.stack(self._policy_actions),
            intervened=intervened,
            rewards=np.asarray(self._rewards, dtype=np.float32),
            terminated=np.asarray(self._terminated, dtype=bool),
            refinement_commands=[str(c) for c in commands],
            success=success,
            embeddings=embeddings,
            metadata=meta,
            intended_actions=np.stack(self._intended),
        )
        self.discard()
        return episode


__all__ = ["EPISODE_KINDS", "NULL_COMMAND", "Episode", "EpisodeRecorder", "task_of"]
