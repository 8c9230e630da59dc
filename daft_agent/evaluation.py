"""Per-task evaluation, the paper's Table I layout, two perception conditions, and learning curves.

Columns, as in the paper's evaluation: *autonomous* (no takeover, no refinement command) and *with
commands*, where someone speaks refinement commands at test time: the simulated operator in speak
mode (:class:`~daft_env.operator.SimulatedOperator`, sim only) or a person typing them
(``daft evaluate --device keyboard``, sim and real). Commands only, never a takeover: a device's
motion is stripped by :class:`TalkOnly`, so the with-commands column measures what language does.

Command feeding and its one-step lag: the device decides at step t from what it saw before the
step (``info["refinement_command_now"]`` of step t), so the policy can act on it from step t + 1:
``predict(obs_{t+1}, command=c_t)``. A command is applied for ``command_hold`` steps after it is
given (1 for the simulated operator, which decides afresh every step; ``None`` = until the next
command, as a person expects of a typed one). ``commands_spoken`` counts commands given, not the
steps they were applied on.

Conditions (issue 10): *nominal* and *perturbed*, the latter with a hidden perception error
(:mod:`daft_env.perception`) that the policy suffers and the operator does not. Each condition has
both columns; :func:`results_dict` gives the ``results.json`` fields.

Episode length is the mean over all trials, failures counting their full (truncated) length; the
footer states the env's real step limit (:func:`episode_step_limit`).

:class:`PeriodicEvaluation` is an SB3 callback that runs autonomous trials every N online steps and
logs ``eval/<task>/autonomous_success`` (the policy alone; the training env's
``rollout/<task>/success_rate`` counts operator-rescued episodes as successes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from daft_agent.errors import AgentConfigError
from daft_env.tasks import INSTRUCTIONS
from hardware.teleop.base import TeleopCommand

CONDITIONS = ("nominal", "perturbed")


@dataclass
class TaskResult:
    """Outcome of ``trials`` episodes of one task.

    Attributes:
        task: task name.
        trials: episodes run.
        successes: episodes that ended in success.
        mean_length: mean steps per episode, failures counting their truncated length.
        commands_spoken: refinement commands given during the trials.
        step_limit: the env's truncation limit, when it could be read.
    """

    task: str
    trials: int
    successes: int
    mean_length: float
    commands_spoken: int = 0
    step_limit: int | None = None

    @property
    def success_rate(self) -> float:
        """Successes / trials."""
        return self.successes / max(self.trials, 1)


def episode_step_limit(env: Any) -> int | None:
    """The step limit an episode of ``env`` really has: the tighter of gym's and the env's own.

    ``gym.make(id, max_episode_steps=k)`` adds a ``TimeLimit`` of k around an env that keeps its
    own limit (``BoltEnv.max_episode_steps``, 50 by default); the episode ends at the smaller.
    None when neither is known.
    """
    limits = []
    if env.spec is not None and env.spec.max_episode_steps is not None:
        limits.append(int(env.spec.max_episode_steps))
    try:
        own = env.get_wrapper_attr("max_episode_steps")
    except AttributeError:
        own = None
    if isinstance(own, int | np.integer):
        limits.append(int(own))
    return min(limits) if limits else None


class TalkOnly:
    """A TeleopDevice adapter that passes on refinement commands and the emergency stop only.

    A person at the keyboard may press a motion key by habit; at test time that must not become a
    takeover, or the with-commands column would measure teleoperation, not language.
    """

    def __init__(self, device: Any) -> None:
        self.device = device
        self.name = f"{device.name}(talk only)"

    def connect(self) -> None:
        """Open the wrapped device."""
        self.device.connect()

    def read(self) -> TeleopCommand:
        """The wrapped device's command, without motion or takeover."""
        cmd = self.device.read()
        return TeleopCommand(
            gripper=cmd.gripper,
            emergency_stop=cmd.emergency_stop,
            buttons=cmd.buttons,
            refinement_command=cmd.refinement_command,
            timestamp=cmd.timestamp,
        )

    def on_step(self, observation: Any, policy_action: np.ndarray, info: dict[str, Any]) -> None:
        """Forwarded: a simulated operator decides here what to say."""
        self.device.on_step(observation, policy_action, info)

    def reset(self) -> None:
        """Forwarded."""
        self.device.reset()

    def disconnect(self) -> None:
        """Forwarded."""
        self.device.disconnect()


def run_trials(
    agent: Any,
    env: Any,
    task: str,
    trials: int,
    seed: int = 10_000,
    use_commands: bool = False,
    deterministic: bool = True,
    command_hold: int | None = 1,
    pace_hz: float | None = None,
    on_step: Callable[[int, Any, dict[str, Any], str | None, bool], None] | None = None,
) -> TaskResult:
    """Run ``trials`` episodes of ``task`` (``reset(options={"task": task})``) with ``agent.predict``.

    Args:
        agent: anything with SB3's ``predict(obs, deterministic=..., command=...)``.
        env: the env; with ``use_commands`` an InterventionWrapper whose device speaks.
        task: task name passed to ``reset``.
        trials: episodes; seeds ``seed, seed + 1, ...``.
        use_commands: feed ``info["refinement_command_now"]`` to the next ``predict``.
        deterministic: act with the noise mean.
        command_hold: steps a command stays applied after it is given (None: until the next).
        pace_hz: keep at most this many steps per second (a person watching the simulation);
            None runs as fast as the env steps (a real arm blocks for its period itself).
        on_step: called after every step with (trial index, new observation, info, the command
            the step was taken under or None, whether the episode ended), e.g. to record a video
            (:mod:`daft_agent.video`).

    Raises:
        AgentConfigError: ``trials`` < 1 or ``command_hold`` < 1.
    """
    if trials < 1:
        raise AgentConfigError(f"trials must be >= 1; got {trials}")
    if command_hold is not None and command_hold < 1:
        raise AgentConfigError(f"command_hold must be >= 1 or None; got {command_hold}")
    successes, lengths, spoken = 0, [], 0
    period = 1.0 / pace_hz if pace_hz else 0.0
    for k in range(trials):
        obs, info = env.reset(seed=seed + k, options={"task": task})
        command, age = None, 0
        done, n = False, 0
        next_tick = time.monotonic()
        while not done:
            # an autonomous trial calls plain SB3 predict, so any SB3 model can be evaluated
            extra = {"command": command} if use_commands else {}
            action, _ = agent.predict(obs, deterministic=deterministic, **extra)
            obs, _, terminated, truncated, info = env.step(action)
            n += 1
            done = terminated or truncated
            if on_step is not None:
                on_step(k, obs, info, command, done)
            if use_commands:
                given = info.get("refinement_command_now")
                if given is not None:  # applies from the next step on (the one-step lag)
                    spoken += 1
                    command, age = given, 0
                elif command is not None:
                    age += 1
                    if command_hold is not None and age >= command_hold:
                        command = None
            if period:
                next_tick += period
                time.sleep(max(0.0, next_tick - time.monotonic()))
        successes += int(bool(info.get("is_success", False)))
        lengths.append(n)
    return TaskResult(
        task, trials, successes, float(np.mean(lengths)), spoken, episode_step_limit(env)
    )


def evaluate_tasks(
    agent: Any,
    env: Any,
    tasks: Sequence[str],
    trials: int,
    seed: int = 10_000,
    use_commands: bool = False,
    on_task: Callable[[TaskResult], None] | None = None,
    **kwargs: Any,
) -> dict[str, TaskResult]:
    """:func:`run_trials` for every task (``kwargs`` go to it); returns task -> result."""
    out = {}
    for task in tasks:
        out[task] = run_trials(agent, env, task, trials, seed, use_commands, **kwargs)
        if on_task:
            on_task(out[task])
    return out


def evaluate_condition(
    agent: Any,
    env: Any,
    talk_env: Any | None,
    tasks: Sequence[str],
    trials: int,
    seed: int = 10_000,
    **kwargs: Any,
) -> dict[str, dict[str, TaskResult] | None]:
    """Both columns of one condition on the same seeds: ``{"autonomous", "with_commands"}``.

    ``talk_env`` is an InterventionWrapper around a second env of the same condition whose device
    speaks (None: no with-commands column). ``kwargs`` go to :func:`run_trials`.
    """
    auto = evaluate_tasks(agent, env, tasks, trials, seed, **kwargs)
    talk = None
    if talk_env is not None:
        talk = evaluate_tasks(agent, talk_env, tasks, trials, seed, use_commands=True, **kwargs)
    return {"autonomous": auto, "with_commands": talk}


def results_dict(
    autonomous: dict[str, TaskResult], with_commands: dict[str, TaskResult] | None = None
) -> dict[str, Any]:
    """The ``results.json`` fields of one condition (the existing keys, plus trials and limit)."""
    out: dict[str, Any] = {
        "autonomous": {
            t: {
                "success_rate": r.success_rate,
                "mean_length": r.mean_length,
                "trials": r.trials,
                "step_limit": r.step_limit,
            }
            for t, r in autonomous.items()
        }
    }
    if with_commands is not None:
        out["with_commands"] = {
            t: {
                "success_rate": r.success_rate,
                "mean_length": r.mean_length,
                "commands": r.commands_spoken,
                "trials": r.trials,
                "step_limit": r.step_limit,
            }
            for t, r in with_commands.items()
        }
    return out


def format_table(
    autonomous: dict[str, TaskResult],
    with_commands: dict[str, TaskResult] | None = None,
    title: str | None = None,
) -> str:
    """Table I of the paper: success rate (%) and episode length per task plus an average row.

    With commands, a last column counts the commands given per task (total over its trials).
    """
    cols = ["Success (%) autonomous", "Length autonomous"]
    if with_commands is not None:
        cols += ["Success (%) w/ commands", "Length w/ commands", "Commands"]
    name_w = max(len("Task"), *(len(INSTRUCTIONS.get(t, t)) for t in autonomous), len("Average"))
    header = "Task".ljust(name_w) + " | " + " | ".join(cols)
    lines = [title] if title else []
    lines += [header, "-" * len(header)]

    def row(name: str, values: list[str]) -> str:
        return (
            name.ljust(name_w)
            + " | "
            + " | ".join(v.rjust(len(h)) for v, h in zip(values, cols, strict=True))
        )

    numbers = []
    for t in autonomous:
        r = autonomous[t]
        values = [100 * r.success_rate, r.mean_length]
        if with_commands is not None:
            c = with_commands[t]
            values += [100 * c.success_rate, c.mean_length, c.commands_spoken]
        numbers.append(values)
        lines.append(row(INSTRUCTIONS.get(t, t), _cells(values)))
    lines.append("-" * len(header))
    lines.append(row("Average", _cells(list(np.mean(numbers, axis=0)))))
    first = next(iter(autonomous.values()), None)
    trials = first.trials if first else 0
    limits = {r.step_limit for r in autonomous.values()}
    limit = limits.pop() if len(limits) == 1 else None
    counted = f"failures count {limit}" if limit is not None else "failures count their length"
    lines.append(f"({trials} trials per task; length = mean steps over all trials, {counted})")
    return "\n".join(lines)


def _cells(values: list[float]) -> list[str]:
    out = [f"{v:.1f}" for v in values[:4]]
    if len(values) > 4:  # commands: a count (the average row shows its mean)
        out.append(f"{values[4]:.0f}" if float(values[4]).is_integer() else f"{values[4]:.1f}")
    return out


class PeriodicEvaluation(BaseCallback):
    """Autonomous success per task every ``every_n_steps`` online steps: a learning curve.

    Runs :func:`run_trials` (no commands, deterministic) of the current policy on its own env,
    built once by ``eval_env_fn`` on the first evaluation and closed at the end of training, so the
    training env's episode and operator state are untouched. Each evaluation logs
    ``eval/<task>/autonomous_success`` and ``eval/autonomous_success_mean`` to the model's logger
    (TensorBoard), dumped at the current step, and appends ``(online_step, {task: success})`` to
    :attr:`rows`, which the caller writes into ``results.json`` (:meth:`as_json`).

    Args:
        eval_env_fn: () -> a fresh env of the same spaces (a separate env, not the training one).
        every_n_steps: online steps (``num_timesteps``) between evaluations.
        n_trials: episodes per task and evaluation; seeds ``seed, seed + 1, ...`` every time, so
            the curve compares the same scenes.
        tasks: task names.
        seed: first evaluation seed.
        verbose: 1 prints each row.

    Raises:
        AgentConfigError: ``every_n_steps`` or ``n_trials`` < 1, or no tasks.
    """

    def __init__(
        self,
        eval_env_fn: Callable[[], Any],
        every_n_steps: int,
        n_trials: int,
        tasks: Sequence[str],
        seed: int = 20_000,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if every_n_steps < 1 or n_trials < 1:
            raise AgentConfigError(
                f"every_n_steps and n_trials must be >= 1; got {every_n_steps}, {n_trials}"
            )
        if not tasks:
            raise AgentConfigError("PeriodicEvaluation needs at least one task")
        self.eval_env_fn = eval_env_fn
        self.every_n_steps = int(every_n_steps)
        self.n_trials = int(n_trials)
        self.tasks = list(tasks)
        self.seed = int(seed)
        self.rows: list[tuple[int, dict[str, float]]] = []
        self._env: Any = None
        self._last = 0

    def _on_training_start(self) -> None:
        # a resumed run continues its curve: the next row comes every_n_steps after this step
        self._last = self.num_timesteps - self.num_timesteps % self.every_n_steps

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.every_n_steps:
            self._last = self.num_timesteps - self.num_timesteps % self.every_n_steps
            self.evaluate()
        return True

    def evaluate(self) -> dict[str, float]:
        """One row now: autonomous success per task of the current policy."""
        if self._env is None:
            self._env = self.eval_env_fn()
        results = evaluate_tasks(self.model, self._env, self.tasks, self.n_trials, self.seed)
        row = {t: r.success_rate for t, r in results.items()}
        self.rows.append((int(self.num_timesteps), row))
        for t, rate in row.items():
            self.logger.record(f"eval/{t}/autonomous_success", rate)
        self.logger.record("eval/autonomous_success_mean", float(np.mean(list(row.values()))))
        self.logger.dump(self.num_timesteps)
        if self.verbose:
            shown = ", ".join(f"{t} {100 * v:.0f}%" for t, v in row.items())
            print(f"eval at {self.num_timesteps} online steps: {shown}")
        return row

    def _on_training_end(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    def as_json(self) -> list[dict[str, Any]]:
        """:attr:`rows` as ``results.json`` entries: ``{"online_step", "autonomous_success"}``."""
        return [{"online_step": s, "autonomous_success": dict(r)} for s, r in self.rows]


__all__ = [
    "CONDITIONS",
    "PeriodicEvaluation",
    "TalkOnly",
    "TaskResult",
    "episode_step_limit",
    "evaluate_condition",
    "evaluate_tasks",
    "format_table",
    "results_dict",
    "run_trials",
]
