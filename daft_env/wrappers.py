"""Human-in-the-loop wrappers: a teleop device takes over (tweak) and is labelled (talk).

Stack them as ``RecordEpisodeToStore(InterventionWrapper(env, device), store)``: the recorder must be
*outside* the intervention wrapper so that it sees the executed actions, the intervention flags and
the refinement commands that the intervention wrapper puts in ``info``.

Data flow of one step (ARCHITECTURE.md): policy action -> :class:`InterventionWrapper` (the device
may replace it) -> env -> :class:`~daft_env.labeler.TalkAndTweakLabeler` (Eq. 12-13) ->
:class:`RecordEpisodeToStore` -> :class:`~daft_env.store.EpisodeStore` (durable).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from daft_env.env import BoltEnv
from daft_env.episode import NULL_COMMAND, Episode, EpisodeRecorder
from daft_env.labeler import TalkAndTweakLabeler
from daft_env.layout import NO_COMMANDS, layout_of
from daft_env.spaces import validate_action_for
from daft_env.store import EpisodeStore, count_takeovers
from daft_env.tasks import get_task
from hardware.errors import ConfigError
from hardware.teleop.base import TeleopCommand, TeleopDevice


class InterventionWrapper(gym.Wrapper):
    """Let a :class:`~hardware.teleop.base.TeleopDevice` take over, and label its corrections.

    Each step it calls ``device.on_step(last_obs, policy_action, last_info)`` and then
    ``device.read()``. While ``command.intervening`` is True, ``command.as_action()`` replaces the
    policy's action (Algorithm 1, lines 20-26). Every executed action goes through the
    :class:`~daft_env.labeler.TalkAndTweakLabeler`.

    Per-step ``info`` keys it adds:

    * ``intervened`` (bool): the device's action was executed.
    * ``policy_action`` ((7,) float64): what the policy proposed (validated).
    * ``intervention_action``: the device's (7,) action when ``intervened``, else ``None`` (never a
      NaN-filled placeholder, so that a stray use fails loudly).
    * ``intended_action``: when ``intervened``, the (7,) action the operator meant
      (:meth:`~hardware.teleop.base.TeleopCommand.intended_action`: a simulated operator's plan,
      without its hand noise and the ramp from rest at each takeover); else ``None``. It is the
      clean label that imitation learns from; the executed action is what the critics learn from.
    * ``executed_action`` ((7,), the action space's dtype): what was sent to the env (before the
      backend's safety clipping).
    * ``labelled``: list of ``(step_index, command)`` whose Eq. 12-13 labels became final at this
      step (labels lag J-1 steps; a step outside an intervention is final at once).
    * ``refinement_command`` / ``refinement_command_step``: the last entry of ``labelled``, present
      only when ``labelled`` is not empty.
    * ``refinement_command_now``: the device's spoken command (talk without tweak) or None.
    * ``emergency_stop`` (bool).
    * ``step_index``: index of this step in the episode.

    On the last step of an episode (terminated or truncated) also: ``episode_refinement_commands``
    (all T labels), ``episode_interventions`` (number of takeovers, i.e. runs of consecutive
    intervened steps), ``episode_intervened_steps``, ``intervention_rate`` (intervened steps / T),
    ``episode_length``, and the running totals ``total_intervened_steps``, ``total_steps``,
    ``total_intervention_rate`` over every episode this wrapper has seen.

    Emergency stop: when the device reports ``emergency_stop``, the env is *not* stepped (no
    further command reaches the robot); the step returns the previous observation, reward 0,
    ``terminated=False``, ``truncated=True`` and ``info["emergency_stop"] = True``; a
    :class:`~daft_env.env.BoltEnv` is told to :meth:`~daft_env.env.BoltEnv.stop` its backend first. It is not a
    transition: the recorder ends the episode at the previous step. A new ``reset`` is required.

    Args:
        env: a DAFT env, or any env with a 1-d Box action (under
            :class:`~daft_env.adapters.DaftSpaces` for DAFT's learner).
        device: any :class:`~hardware.teleop.base.TeleopDevice`; connected by the caller.
        labeler: defaults to a ``TalkAndTweakLabeler`` on the env's
            :class:`~daft_env.layout.ActionLayout` (DAFT's: J=5, sigma=1 mm, 2 cm per unit;
            none stated: commands off, every label ``[null]``).
    """

    def __init__(
        self, env: gym.Env, device: TeleopDevice, labeler: TalkAndTweakLabeler | None = None
    ) -> None:
        super().__init__(env)
        for method in ("read", "on_step", "reset"):
            if not callable(getattr(device, method, None)):
                raise ConfigError(
                    f"device {device!r} does not implement TeleopDevice.{method}(); pass a "
                    "hardware.teleop device or a daft_env.operator.SimulatedOperator"
                )
        space = env.action_space
        if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
            raise ConfigError(
                f"InterventionWrapper needs a 1-d Box action space; got {space}. Any env with a "
                "continuous action gets one through daft_env.adapters.DaftSpaces"
            )
        self.device = device
        if labeler is None:
            # the env's own description of its translation axes (DAFT's for DAFT's action);
            # none: every step is labelled [null], commands off
            layout = layout_of(env)
            labeler = TalkAndTweakLabeler(layout=NO_COMMANDS if layout is None else layout)
        labeler.layout.check(space, "the wrapped env")
        self.labeler = labeler
        self.total_steps = 0
        self.total_intervened_steps = 0
        self.total_interventions = 0
        self.total_episodes = 0
        self._last_obs: Any = None
        self._last_info: dict[str, Any] = {}
        self._reset_episode()
        self._needs_reset = True

    def _reset_episode(self) -> None:
        self._labels: list[str] = []
        self._flags: list[bool] = []
        self.last_command: TeleopCommand | None = None

    @property
    def intervention_rate(self) -> float:
        """Running share of intervened steps over every step taken through this wrapper."""
        return self.total_intervened_steps / self.total_steps if self.total_steps else 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the env, then the device and the labeler."""
        obs, info = self.env.reset(seed=seed, options=options)
        self.device.reset()
        self.labeler.reset()
        self._reset_episode()
        self._last_obs, self._last_info = obs, dict(info)
        self._needs_reset = False
        return obs, info

    def _record_labels(self, labels: list[tuple[int, str]]) -> None:
        for idx, cmd in labels:
            while len(self._labels) <= idx:
                self._labels.append(NULL_COMMAND)
            self._labels[idx] = cmd

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """One step, with the device's action executed while it intervenes."""
        if self._needs_reset:
            raise gym.error.ResetNeeded("call reset() before step(): the episode has ended")
        policy_action = self._validate(action)
        self.device.on_step(self._last_obs, policy_action.copy(), self._last_info)
        cmd = self.device.read()
        self.last_command = cmd
        step_index = len(self._flags)
        if cmd.emergency_stop:
            return self._emergency_stop(policy_action, cmd, step_index)
        intervened = bool(cmd.intervening)
        intended = None
        if intervened:
            executed = self._validate(cmd.as_action(), "the device's command")
            intended = self._validate(cmd.intended_action(), "the device's intended action")
            intended = intended.astype(self.env.action_space.dtype)
        else:
            executed = policy_action
        # sent in the env's action dtype (float32), as a policy would; the labeler and the
        # recorder see exactly these numbers, so stored labels can be recomputed bit for bit
        executed = executed.astype(self.env.action_space.dtype)
        obs, reward, terminated, truncated, info = self.env.step(executed)
        info = dict(info)
        self._flags.append(intervened)
        self.total_steps += 1
        self.total_intervened_steps += int(intervened)
        if intervened and (step_index == 0 or not self._flags[step_index - 1]):
            self.total_interventions += 1
        labels = self.labeler.push(executed, intervened)
        done = bool(terminated or truncated)
        if done:
            labels += self.labeler.flush()
        self._record_labels(labels)
        self._step_info(info, policy_action, executed, intervened, labels, cmd, step_index)
        info["intended_action"] = intended
        if done:
            self._episode_end_info(info)
        self._last_obs, self._last_info = obs, info
        return obs, reward, terminated, truncated, info

    def _validate(self, action: Any, what: str = "the policy's action") -> np.ndarray:
        """A finite action of the env's shape (float64), or an error naming what was wrong."""
        return validate_action_for(action, self.env.action_space, what)

    def _episode_end_info(self, info: dict[str, Any]) -> None:
        T = len(self._flags)
        flags = np.asarray(self._flags, dtype=bool)
        n_steps = int(flags.sum())
        self.total_episodes += 1
        info.update(
            episode_refinement_commands=list(self._labels[:T]),
            episode_interventions=count_takeovers(flags),
            episode_intervened_steps=n_steps,
            intervention_rate=n_steps / T if T else 0.0,
            episode_length=T,
            total_steps=self.total_steps,
            total_intervened_steps=self.total_intervened_steps,
            total_interventions=self.total_interventions,
            total_intervention_rate=self.intervention_rate,
        )
        self._needs_reset = True

    @staticmethod
    def _step_info(
        info: dict[str, Any],
        policy_action: np.ndarray,
        executed: np.ndarray | None,
        intervened: bool,
        labels: list[tuple[int, str]],
        cmd: TeleopCommand,
        step_index: int,
    ) -> None:
        """The per-step keys of the class docstring; ``executed`` is None on an emergency stop."""
        info.update(
            intervened=intervened,
            policy_action=policy_action,
            intervention_action=executed.copy() if intervened else None,
            executed_action=None if executed is None else executed.copy(),
            labelled=labels,
            refinement_command_now=cmd.refinement_command,
            emergency_stop=executed is None,
            step_index=step_index,
        )
        if labels:
            info["refinement_command_step"], info["refinement_command"] = labels[-1]

    def _emergency_stop(self, policy_action: np.ndarray, cmd: TeleopCommand, step_index: int):
        # A BoltEnv halts its backend at once (a real arm holds still); any other env is simply
        # not stepped again, which is the whole of the stop for a simulation.
        if isinstance(self.env.unwrapped, BoltEnv):
            self.env.unwrapped.stop()
        labels = self.labeler.flush()
        self._record_labels(labels)
        info = dict(self._last_info)
        for key in (
            "episode_saved_path",
            "labelled",
            "refinement_command",
            "refinement_command_step",
        ):
            info.pop(key, None)
        self._step_info(info, policy_action, None, False, labels, cmd, step_index)
        info["intended_action"] = None
        self._episode_end_info(info)
        return self._last_obs, 0.0, False, True, info

    def close(self) -> None:
        """Close the env (the caller owns the device and disconnects it)."""
        super().close()


class RecordEpisodeToStore(gym.Wrapper):
    """Record each episode with an :class:`~daft_env.episode.EpisodeRecorder` and add it to a store.

    Wrap it around an :class:`InterventionWrapper` (or a bare env, for rollouts and scripted
    demos). At each episode end (terminated, truncated or emergency stop) the episode is written
    durably before ``step`` returns; ``info["episode_saved_path"]`` is its path (None when it was
    not kept). An episode abandoned by calling ``reset`` before it ended is discarded: only
    finished episodes are data. An emergency stop on the very first step leaves nothing to save.

    What is recorded is the recorder's (executed and policy actions, intervention flags, rewards,
    ``terminated``, refinement commands, success by its one rule, the task by
    :func:`~daft_env.episode.task_of`), plus metadata: env id, seed, device, wall time, whether an
    emergency stop ended it, the backend fault when one did, and ``metadata`` given here.

    Args:
        env: the env, usually an :class:`InterventionWrapper`.
        store: an :class:`~daft_env.store.EpisodeStore` opened for adding.
        kind: ``"demos"`` to record demonstrations; None (default) picks ``"interventions"`` when
            any step was intervened, else ``"rollouts"``.
        keep: optional predicate; an episode for which it returns False is not saved (e.g.
            ``lambda ep: ep.success`` for expert demos).
        task: fixes the task name; by default it is read from ``info``/the observation.
        metadata: extra JSON-serialisable details stored with every episode.
        embed: optional ``obs -> (D,)`` function whose output is stored as ``embeddings``.
    """

    def __init__(
        self,
        env: gym.Env,
        store: EpisodeStore,
        kind: str | None = None,
        keep: Callable[[Episode], bool] | None = None,
        task: str | None = None,
        metadata: dict[str, Any] | None = None,
        embed: Callable[[Any], np.ndarray] | None = None,
    ) -> None:
        super().__init__(env)
        if task is not None:
            get_task(task)
        if not isinstance(store, EpisodeStore):
            raise ConfigError(
                f"store must be a daft_env.store.EpisodeStore; got {type(store).__name__}"
            )
        try:  # another env than DAFT's names its tasks (DaftSpaces.task_names)
            env_tasks = tuple(env.get_wrapper_attr("task_names"))
        except AttributeError:
            env_tasks = None
        self.recorder = EpisodeRecorder(tasks=env_tasks, kind=kind, embed=embed)
        self.store = store
        self.kind = kind
        self.keep = keep
        self.task = task
        self.metadata = dict(metadata or {})
        self.saved_paths: list = []
        self.discarded = 0
        self.last_episode: Episode | None = None
        self._seed: int | None = None
        self._t0 = time.time()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start recording a new episode (an unfinished one in progress is discarded)."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._seed = seed
        self._t0 = time.time()
        self.recorder.start(obs, info)
        return obs, info

    def step(self, action: Any):
        """Step and record; save the episode when it ends."""
        if not self.recorder.active:
            raise gym.error.ResetNeeded("call reset() before step(): the episode has ended")
        obs, reward, terminated, truncated, info = self.env.step(action)
        stopped = bool(info.get("emergency_stop"))
        if not stopped:  # an emergency stop is not a transition: the env was not stepped
            act = validate_action_for(action, self.env.action_space)
            self.recorder.step(obs, act, float(reward), terminated, info)
        if stopped or terminated or truncated:
            info["episode_saved_path"] = self._finish(info, emergency_stop=stopped)
        return obs, reward, terminated, truncated, info

    def _finish(self, info: dict[str, Any], emergency_stop: bool):
        if len(self.recorder) == 0:
            self.recorder.discard()
            self.last_episode = None
            self.discarded += 1
            return None
        metadata = {
            "env_id": getattr(getattr(self.env, "spec", None), "id", None),
            "seed": self._seed,
            "device": self._device_name(),
            "wall_time_s": round(time.time() - self._t0, 4),
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "emergency_stop": emergency_stop,
            # Why an unsuccessful episode ended early (a lost arm server, a dead camera), so a
            # failed episode kept in the store says what happened; the recorder fills it in.
            "backend_error": None,
            **self.metadata,
        }
        ep = self.recorder.finish(info, metadata, task=self.task)
        self.last_episode = ep
        if self.keep is not None and not self.keep(ep):
            self.discarded += 1
            return None
        path = self.store.add(ep)
        self.saved_paths.append(path)
        return path

    def _device_name(self) -> str | None:
        try:
            device = self.env.get_wrapper_attr("device")
        except AttributeError:
            return None
        return getattr(device, "name", None)


__all__ = ["InterventionWrapper", "RecordEpisodeToStore"]
