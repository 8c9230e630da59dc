"""The env side of the live view: a wrapper that streams every step, and stored episodes replayed.

:class:`DisplayWrapper` goes outside an :class:`~daft_env.wrappers.InterventionWrapper` and hands
each step to a :class:`~daft_env.display.stream.StepStream`; :func:`log_episode` streams a stored
:class:`~daft_env.episode.Episode` with its talk-and-tweak labels (``daft view --store``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from daft_env.display.stream import POSE_KEYS, OperatorStatus, StepStream, _poses, _status  # noqa: F401
from daft_env.errors import ConfigError


def _intervention_wrapper(env: gym.Env) -> Any:
    from daft_env.wrappers import InterventionWrapper

    e = env
    while isinstance(e, gym.Wrapper):
        if isinstance(e, InterventionWrapper):
            return e
        e = e.env
    return None


class DisplayWrapper(gym.Wrapper):
    """Log every step of ``env`` to a :class:`StepStream`, as robot ``robot``.

    Wrap it outside an :class:`~daft_env.wrappers.InterventionWrapper` (and outside a
    :class:`~daft_env.wrappers.RecordEpisodeToStore`), so it sees the info keys they add:
    ``intervened``, ``policy_action``, ``executed_action``, ``labelled`` (the talk-and-tweak
    labels, shown on the steps they label) and ``refinement_command_now``. A
    :class:`~daft_env.operator.SimulatedOperator` also gives why it took over (``last_reason``)
    and its share against its cap; a human device gives ``person`` and the wrapper's share. In
    simulation the poses come from ``privileged_state()``; on a real arm from the ``state``
    observation when there is one. A disabled stream costs one attribute read per step.

    Args:
        env: the env (usually operated).
        stream: where the steps go.
        robot: the robot's name: its subtree is ``robot/<robot>``.
        learner_stats: optional () -> ``{"updates": ..., "weight_lag": ...}``, called each step.
        label: said at each episode's start (e.g. ``"nominal, with commands"``).
    """

    def __init__(
        self,
        env: gym.Env,
        stream: StepStream,
        robot: str = "0",
        learner_stats: Callable[[], Mapping[str, float]] | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(env)
        if not isinstance(stream, StepStream):
            raise ConfigError(f"stream must be a daft_env.display.StepStream; got {stream!r}")
        self.stream = stream
        self.robot = str(robot)
        self.clock = stream.clock(self.robot)
        self.learner_stats = learner_stats
        self.label = label
        self._intervention = _intervention_wrapper(env)
        from daft_env.operator import SimulatedOperator

        device = getattr(self._intervention, "device", None)
        self._simulated = device if isinstance(device, SimulatedOperator) else None
        backend = getattr(env.unwrapped, "backend", None)
        self._sim = bool(getattr(backend, "has_privileged_state", False))
        self._first = 0
        self._flags: list[bool] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset and log the episode's start."""
        obs, info = self.env.reset(seed=seed, options=options)
        self.clock.episode += 1
        self._first = self.clock.step
        self._flags = []
        if self.stream.enabled:
            what = info.get("instruction") or (options or {}).get("task") or "episode"
            extra = f" ({self.label})" if self.label else ""
            self.stream.log_event(
                self.robot, f"episode {self.clock.episode} start: {what}{extra}, seed {seed}"
            )
        return obs, info

    def _operator(self, intervened: bool) -> OperatorStatus | None:
        if self._intervention is None:
            return None
        device = self._simulated
        if device is not None:
            return OperatorStatus(
                intervened,
                device.last_reason if intervened else None,
                device.share,
                device.config.target_rate if device.config.mode == "takeover" else None,
            )
        share = self._intervention.intervention_rate
        return OperatorStatus(intervened, "person" if intervened else None, share, None)

    def step(self, action: Any):
        """Step, then queue the step for the stream (never waits for it)."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not self.stream.enabled:
            self.clock.step += 1
            return obs, reward, terminated, truncated, info
        intervened = bool(info.get("intervened", False))
        self._flags.append(intervened)
        labels = [
            (self._first + i, text)
            for i, text in info.get("labelled", ())
            if i < len(self._flags) and self._flags[i]
        ]
        done = bool(terminated or truncated)
        self.stream.log_step(
            self.robot,
            None,
            obs,
            info,
            privileged_state=self.env.unwrapped.privileged_state() if self._sim else None,
            operator=self._operator(intervened),
            learner_stats=self.learner_stats() if self.learner_stats else None,
            action=action,
            reward=float(reward),
            done=done,
            labels=labels,
        )
        if info.get("emergency_stop"):
            self.stream.log_event(self.robot, "EMERGENCY STOP", self.clock.step - 1, "ERROR")
        elif done:
            outcome = "success" if info.get("is_success") else "failure"
            self.stream.log_event(
                self.robot,
                f"episode {self.clock.episode} end: {outcome} after {len(self._flags)} steps",
                self.clock.step - 1,
            )
        return obs, reward, terminated, truncated, info


def log_episode(stream: StepStream, episode: Any, robot: str = "0") -> int:
    """Replay one stored :class:`~daft_env.episode.Episode` into ``stream``; returns its steps.

    Each step shows the observation after it, the executed and proposed actions, whether the
    operator held control and the episode's talk-and-tweak label (``refinement_commands``).
    Nothing is dropped: the replay waits for the queue.
    """
    clock = stream.clock(robot)
    clock.episode += 1
    first = clock.step
    stream.log_event(
        robot,
        f"episode {clock.episode} start: {episode.instruction} ({episode.kind}, task "
        f"{episode.task})",
        first,
    )
    n = len(episode)
    obs = episode.observations
    # the store keeps who drove, not why each takeover began
    reason = f"takeover by {episode.metadata.get('device') or 'the operator'}"
    for t in range(n):
        step_obs = {k: np.asarray(v)[t + 1] for k, v in obs.items()}
        intervened = bool(episode.intervened[t])
        text = str(episode.refinement_commands[t])
        stream.log_step(
            robot,
            None,
            step_obs,
            {
                "executed_action": episode.actions[t],
                "policy_action": episode.policy_actions[t],
                "is_success": bool(episode.success) and t == n - 1,
            },
            operator=OperatorStatus(intervened, reason if intervened else None),
            reward=float(episode.rewards[t]),
            done=t == n - 1,
            labels=[(first + t, text)] if intervened else [],
            block=True,
        )
    outcome = "success" if episode.success else "failure"
    stream.log_event(
        robot, f"episode {clock.episode} end: {outcome} after {n} steps", first + n - 1
    )
    return n
