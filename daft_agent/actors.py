"""The actor side: versioned weights out, finished episodes in.

The learner and the actors share nothing but a :class:`WeightsHub` (versioned weight snapshots,
learner -> actors) and a queue of finished :class:`~daft_env.episode.Episode` records (actors ->
learner). An :class:`ActorLoop` needs only a copy of the primary actor and an env, so robot actors
can run in other processes or on Ray (RQ5: centralised learner, decentralised actors) by replacing
the hub and the queue with remote versions.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from daft_agent.encoders import NULL_COMMAND
from daft_agent.policies import DualActorPolicy, obs_as_tensors


class WeightsHub:
    """Versioned snapshots of the two actors' weights, published by the learner, read by actors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._state: dict[str, dict[str, torch.Tensor]] | None = None

    def publish(self, actor: nn.Module, refinement: nn.Module) -> int:
        """Copy the current weights; returns the new version."""
        state = {
            "actor": {k: v.detach().clone().cpu() for k, v in actor.state_dict().items()},
            "refinement": {k: v.detach().clone().cpu() for k, v in refinement.state_dict().items()},
        }
        with self._lock:
            self._version += 1
            self._state = state
            return self._version

    @property
    def version(self) -> int:
        """The latest published version (0 before the first)."""
        return self._version

    def latest(self) -> tuple[int, dict[str, dict[str, torch.Tensor]] | None]:
        """(version, weights)."""
        with self._lock:
            return self._version, self._state


@dataclass
class StepResult:
    """What one :meth:`ActorLoop.step` produced."""

    obs: Any
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    episode: Any | None = None


class ActorLoop:
    """The interaction loop: act with the latest weights, step the env, emit finished Episodes.

    Args:
        env: a Gymnasium env (optionally under the intervention wrapper).
        actor: a private copy of the primary actor.
        refinement: a private copy of the refinement actor.
        hub: where new weights come from.
        tasks: task names in task-id order.
        out: queue receiving each finished :class:`~daft_env.episode.Episode`.
        reset_options: callable giving the ``options`` of the next ``env.reset`` (e.g. the task to
            run), or None.
        seed: seed of the first reset.
    """

    def __init__(
        self,
        env: Any,
        actor: nn.Module,
        refinement: nn.Module,
        hub: WeightsHub,
        tasks: Sequence[str],
        out: queue.Queue | None = None,
        reset_options: Callable[[], dict[str, Any] | None] | None = None,
        seed: int | None = None,
    ) -> None:
        self.env = env
        self.actor = actor
        self.refinement = refinement
        self.hub = hub
        self.tasks = tuple(tasks)
        self.out = out if out is not None else queue.Queue()
        self.reset_options = reset_options
        self._seed = seed
        self._version = -1
        self._obs: Any = None
        self._trace: dict[str, Any] = {}
        self.observation_space = env.observation_space

    def sync(self) -> None:
        """Load the newest published weights if they changed."""
        if self.hub.version == self._version:
            return
        version, state = self.hub.latest()
        if state is not None:
            self.actor.load_state_dict(state["actor"])
            self.refinement.load_state_dict(state["refinement"])
        self._version = version

    def _reset(self) -> None:
        opts = self.reset_options() if self.reset_options else None
        kwargs: dict[str, Any] = {}
        if self._seed is not None:
            kwargs["seed"] = self._seed
            self._seed = None
        if opts:
            kwargs["options"] = opts
        self._obs, info = self.env.reset(**kwargs)
        self._trace = {
            "obs": [self._obs],
            "actions": [],
            "policy_actions": [],
            "intervened": [],
            "rewards": [],
            "terminated": [],
            "info0": info,
        }

    @torch.no_grad()
    def policy_action(self, obs: Any) -> np.ndarray:
        """Primary-mode action (Eq. 1) for one observation."""
        tens, _ = obs_as_tensors(obs, self.observation_space)
        return self.actor(tens)[0].cpu().numpy().astype(np.float32)

    def step(self) -> StepResult:
        """One env step; when it ends an episode, the Episode is put on ``out`` and returned."""
        if self._obs is None:
            self._reset()
        self.sync()
        action = self.policy_action(self._obs)
        obs, reward, terminated, truncated, info = self.env.step(action)
        intervened = bool(info.get("intervened", False))
        if info.get("executed_action") is not None:
            executed = np.asarray(info["executed_action"], np.float32)
        elif intervened:
            executed = np.asarray(info["intervention_action"], np.float32)
        else:
            executed = action
        tr = self._trace
        tr["obs"].append(obs)
        tr["actions"].append(executed)
        tr["policy_actions"].append(np.asarray(info.get("policy_action", action), np.float32))
        tr["intervened"].append(intervened)
        tr["rewards"].append(float(reward))
        tr["terminated"].append(bool(terminated))
        episode = None
        if terminated or truncated:
            episode = self._episode(info)
            self.out.put(episode)
            self._obs = None
        else:
            self._obs = obs
        return StepResult(obs, float(reward), bool(terminated), bool(truncated), info, episode)

    def _task_of(self, info: Mapping[str, Any], obs: Mapping[str, Any]) -> str:
        if "task" in info and info["task"] in self.tasks:
            return str(info["task"])
        if "task_id" in obs:
            return self.tasks[int(np.asarray(obs["task_id"]).reshape(-1)[0])]
        return self.tasks[0]

    def _episode(self, info: Mapping[str, Any]) -> Any:
        from daft_env.episode import Episode
        from daft_env.tasks import INSTRUCTIONS

        tr = self._trace
        t_len = len(tr["actions"])
        keys = tr["obs"][0].keys()
        observations = {k: np.stack([np.asarray(o[k]) for o in tr["obs"]]) for k in keys}
        task = self._task_of(info, tr["obs"][0])
        commands = info.get("episode_refinement_commands")
        if commands is None or len(commands) != t_len:
            commands = [NULL_COMMAND] * t_len
        intervened = np.asarray(tr["intervened"], bool)
        return Episode(
            task=task,
            task_id=self.tasks.index(task),
            instruction=str(info.get("instruction", INSTRUCTIONS.get(task, task))),
            kind="interventions" if intervened.any() else "rollouts",
            observations=observations,
            actions=np.stack(tr["actions"]).astype(np.float32),
            policy_actions=np.stack(tr["policy_actions"]).astype(np.float32),
            intervened=intervened,
            rewards=np.asarray(tr["rewards"], np.float32),
            terminated=np.asarray(tr["terminated"], bool),
            refinement_commands=list(commands),
            success=bool(info.get("is_success", tr["terminated"][-1] and tr["rewards"][-1] > 0)),
            metadata={"weights_version": self._version},
        )


def actor_copies(policy: DualActorPolicy) -> tuple[nn.Module, nn.Module]:
    """Private CPU copies of the two actors for an :class:`ActorLoop`."""
    actor = copy.deepcopy(policy.actor).cpu().eval()
    refinement = copy.deepcopy(policy.refinement).cpu().eval()
    for m in (actor, refinement):
        if hasattr(m, "optimizer"):
            del m.optimizer
        m.requires_grad_(False)
    return actor, refinement
