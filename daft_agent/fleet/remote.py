"""The robot side of a fleet: one Ray actor per robot (env + intervention wrapper + policy copy).

A :class:`RobotWorker` runs in its own process. It builds its env from a picklable factory
(:class:`~daft_agent.runs.envs.SimRobotEnv` for the simulated robots), keeps a private copy of the primary actor and an
:class:`~daft_agent.actors.ActorLoop`, and answers one call, :meth:`RobotWorker.run_steps`: take up
to ``n`` env steps, paced like the robot, and return the episodes that finished.

What must survive a restart comes from the learner with every call, never from the process Ray
may have just restarted (:class:`ActorState`: the weights version and a reference to those
weights, the episodes and steps the learner has filed from this robot). A fresh process sees a
state it has not applied yet, fetches the weights the reference names, and reseeds its env from
the episode count, so a restarted robot neither acts with its initial weights nor replays the
scenes it already ran.

Weights travel as one ``ray.put`` by the learner per publication (:class:`ActorState` carries the
reference inside a list, so Ray does not resolve it per call); a robot fetches the object only when
the version changed.

Pacing: a robot takes one step per ``0.1 / speed`` seconds (the 10 Hz control rate of
ARCHITECTURE.md at ``speed=1``), sleeping out what the step left of its period; ``speed=0`` is
unpaced (tests).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from daft_agent.actors import ActorLoop, LocalWeightsHub
from daft_agent.env_contract import TaskCycle
from daft_agent.errors import AgentConfigError
from daft_env.spaces import CONTROL_HZ


@dataclass(frozen=True)
class ActorState:
    """What the learner knows of one robot; sent with every call (module docstring).

    Attributes:
        weights_version: version of the latest published weights.
        weights: ``[ref]``, the Ray object reference of the primary actor's state dict (inside a
            list so that Ray hands the reference over instead of resolving it on every call).
        episodes: episodes the learner has filed from this robot.
        steps: env steps the learner has counted from this robot.
        seed: the run's base seed for this robot.
    """

    weights_version: int
    weights: list[Any]
    episodes: int = 0
    steps: int = 0
    seed: int = 0


def _episode_seed(seed: int, episodes: int) -> int:
    """Seed of the first reset after (re)starting with ``episodes`` already filed."""
    return int(np.random.SeedSequence([int(seed), int(episodes)]).generate_state(1)[0])


class RobotWorker:
    """One robot: env, policy copy and interaction loop in this process (module docstring).

    Made a Ray actor by :func:`robot_actor_class`; plain instances run in-process (unit tests).

    Args:
        name: the robot's name in logs and errors ("A", "robot-0", ...).
        make_env: picklable zero-argument callable building the env (e.g.
            :class:`~daft_agent.runs.envs.SimRobotEnv`).
        actor: a private copy of the primary actor (:func:`~daft_agent.actors.actor_copy`).
        tasks: the agent's task names in ``task_id`` order.
        speed: multiple of the 10 Hz control rate to pace at; 0 runs unpaced.
    """

    def __init__(
        self,
        name: str,
        make_env: Callable[[], Any],
        actor: nn.Module,
        tasks: Sequence[str],
        speed: float = 1.0,
    ) -> None:
        if speed < 0:
            raise AgentConfigError(f"robot {name!r}: speed must be >= 0 (0 = unpaced), got {speed}")
        torch.set_num_threads(1)
        self.name = name
        self.tasks = tuple(tasks)
        self.period = 0.0 if speed == 0 else 1.0 / (CONTROL_HZ * speed)
        self.env = make_env()
        self.actor = actor
        self.weights = LocalWeightsHub()  # the robot's copy of what the learner published
        self.loop: ActorLoop | None = None

    def pid(self) -> int:
        """This process's id (tests kill it; a restart shows as a new pid)."""
        return os.getpid()

    def ready(self) -> str:
        """Answer once the env is built (the learner waits on this with a deadline)."""
        return self.name

    def _apply(self, state: ActorState) -> None:
        if self.loop is None:  # a fresh process: seed and task order continue the learner's count
            self.loop = ActorLoop(
                self.env,
                self.actor,
                self.weights,
                self.tasks,
                reset_options=TaskCycle(self.tasks, start=state.episodes),
                seed=_episode_seed(state.seed, state.episodes),
            )
        if state.weights_version != self.weights.version and state.weights:
            import ray

            actor_state = ray.get(state.weights[0], timeout=60.0)
            self.weights.receive(state.weights_version, actor_state)

    def run_steps(self, n: int, state: ActorState) -> dict[str, Any]:
        """Take up to ``n`` paced env steps with the weights ``state`` names.

        Returns:
            ``{"steps": int, "episodes": [Episode, ...], "pid": int, "weights_version": int}``;
            each episode's metadata holds ``robot`` and ``weights_version``. An episode still
            running continues in the next call.
        """
        self._apply(state)
        assert self.loop is not None
        episodes = []
        next_at = time.monotonic()
        for _ in range(int(n)):
            self.loop.step()
            while not self.loop.out.empty():  # the loop's own queue: drained, never grows
                episode = self.loop.out.get_nowait()
                episode.metadata["robot"] = self.name
                episodes.append(episode)
            if self.period:
                next_at += self.period
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:  # a step that overran its period does not shorten the next one
                    next_at = time.monotonic()
        return {
            "steps": int(n),
            "episodes": episodes,
            "pid": os.getpid(),
            "weights_version": self.weights.version,
        }

    def close(self) -> None:
        """Release the env."""
        self.env.close()


def robot_actor_class(max_restarts: int = 3) -> Any:
    """:class:`RobotWorker` as a Ray actor class that Ray restarts up to ``max_restarts`` times.

    ``max_task_retries=0``: a call in flight when the process dies fails at the learner instead of
    being replayed, so the learner, which holds the state, re-sends it to the new process.
    """
    import ray

    return ray.remote(num_cpus=0, max_restarts=int(max_restarts), max_task_retries=0)(RobotWorker)


__all__ = [
    "ActorState",
    "RobotWorker",
    "robot_actor_class",
]
