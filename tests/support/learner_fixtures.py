"""Small hand-built learners for the direct tests of the update rule and the actor side.

Everything here is tiny (widths of 16, batches of 16, state observations) so one update takes a
few milliseconds on one CPU thread. Episodes are built by hand so a test controls exactly what
each buffer holds (demos, rollouts, interventions with talk-tweak commands).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from daft_agent.buffers import DualActorReplay
from daft_agent.commands import VocabularyCommandEncoder
from daft_agent.policies import DualActorPolicy
from daft_agent.update import Learner, LearnerConfig
from daft_env.episode import Episode
from daft_env.spaces import action_space
from daft_env.tasks import TASK_NAMES

STATE_DIM = 6
#: Network sizes small enough for many updates per test.
TINY_NETS = dict(actor_hidden=(16, 16), critic_hidden=(16, 16), refinement_hidden=(16,))


def observation_space(n_tasks: int) -> spaces.Dict:
    """DAFT's state-mode observation space (``state``, ``gripper``, ``task_id`` when multi-task)."""
    obs: dict[str, spaces.Space] = {
        "state": spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
        "gripper": spaces.Box(-1.0, 1.0, (1,), np.float32),
    }
    if n_tasks > 1:
        obs["task_id"] = spaces.Discrete(n_tasks)
    return spaces.Dict(obs)


def make_episode(
    task: str,
    kind: str,
    tasks: Sequence[str],
    t_len: int = 8,
    seed: int = 0,
    intervened: Sequence[bool] | None = None,
    commands: Sequence[str] | None = None,
    action_value: float | None = None,
    reward: float = 1.0,
    success: bool = True,
    step_reward: float = 0.0,
) -> Episode:
    """One hand-built episode of ``task`` with random observations and actions.

    Args:
        task: the task name.
        kind: ``demos``, ``rollouts`` or ``interventions``.
        tasks: the agent's tasks (``task_id`` observations index this list).
        t_len: number of steps.
        seed: seed of the observations and actions.
        intervened: per-step flags (default all False).
        commands: per-step refinement commands (default ``[null]``).
        action_value: every action entry set to this value instead of random.
        reward: reward of the last step when ``success`` (it also terminates then).
        success: the episode ends in a terminal success.
        step_reward: reward of every other step (DAFT's tasks use 0; a test may want dense).
    """
    rng = np.random.default_rng(seed)
    flags = np.zeros(t_len, bool) if intervened is None else np.asarray(intervened, bool)
    rewards = np.full(t_len, step_reward, np.float32)
    terminated = np.zeros(t_len, bool)
    if success:
        rewards[-1], terminated[-1] = reward, True
    obs = {
        "state": rng.normal(size=(t_len + 1, STATE_DIM)).astype(np.float32),
        "gripper": rng.choice([-1.0, 1.0], size=(t_len + 1, 1)).astype(np.float32),
    }
    if len(tasks) > 1:
        obs["task_id"] = np.full(t_len + 1, tuple(tasks).index(task), np.int64)
    if action_value is None:
        actions = rng.uniform(-1, 1, (t_len, 7)).astype(np.float32)
    else:
        actions = np.full((t_len, 7), action_value, np.float32)
    return Episode(
        task=task,
        task_id=TASK_NAMES.index(task),
        instruction=task,
        kind=kind,
        observations=obs,
        actions=actions,
        policy_actions=np.zeros((t_len, 7), np.float32),
        intervened=flags,
        rewards=rewards,
        terminated=terminated,
        refinement_commands=list(commands) if commands is not None else ["[null]"] * t_len,
        success=success,
    )


def standard_episodes(
    tasks: Sequence[str], talk_tweak: bool = True, seed: int = 0
) -> list[Episode]:
    """Demos and rollouts of every task, plus (``talk_tweak``) one intervened episode per task."""
    eps = []
    for i, task in enumerate(tasks):
        eps.append(make_episode(task, "demos", tasks, seed=seed + 10 * i))
        eps.append(make_episode(task, "rollouts", tasks, seed=seed + 10 * i + 1, success=False))
        if talk_tweak:
            flags = [False, True, True, True, False, False, False, False]
            cmds = ["[null]", "move left", "move left and up", "move up"] + ["[null]"] * 4
            eps.append(
                make_episode(
                    task,
                    "interventions",
                    tasks,
                    seed=seed + 10 * i + 2,
                    intervened=flags,
                    commands=cmds,
                )
            )
    return eps


def make_policy(
    tasks: Sequence[str],
    seed: int = 0,
    lr: float = 1e-3,
    obs_space: spaces.Dict | None = None,
    **kwargs: Any,
) -> DualActorPolicy:
    """A tiny :class:`DualActorPolicy` (on ``obs_space``) whose weights depend only on ``seed``."""
    torch.manual_seed(seed)
    return DualActorPolicy(
        observation_space(len(tasks)) if obs_space is None else obs_space,
        action_space(),
        lambda _: lr,
        tasks=tuple(tasks),
        command_dim=VocabularyCommandEncoder().dim,
        **{**TINY_NETS, **kwargs},
    )


def make_learner(
    tasks: Sequence[str] = ("upright", "pickup"),
    episodes: Iterable[Episode] | None = None,
    seed: int = 0,
    policy: DualActorPolicy | None = None,
    lr: float = 1e-3,
    **config: Any,
) -> Learner:
    """A :class:`Learner` over a tiny policy and buffers holding ``episodes``.

    ``config`` overrides :class:`LearnerConfig` fields (batch sizes default to 16 and 8). Two calls
    with the same arguments give learners with identical weights, buffers and samplers.
    """
    tasks = tuple(tasks)
    if policy is None:
        policy = make_policy(tasks, seed, lr)
    obs_keys = list(observation_space(len(tasks)).spaces)
    replay = DualActorReplay(tasks, obs_keys, gamma=0.9, min_rollouts=1)
    for ep in standard_episodes(tasks) if episodes is None else episodes:
        replay.add_episode(ep)
    cfg = LearnerConfig(**{"batch_size": 16, "refinement_batch_size": 8, **config})
    return Learner(policy, replay, VocabularyCommandEncoder(), cfg, seed=seed)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter and buffer of ``module``, by name."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> list[str]:
    """Names of the entries of ``module`` that differ from the ``before`` snapshot."""
    now = module.state_dict()
    return [k for k, v in before.items() if not torch.equal(v, now[k])]


def seeded_update(learner: Learner, phase: str, torch_seed: int = 123) -> dict[str, float]:
    """One ``learner.update(phase)`` with torch's global generator reset first (repeatable draws)."""
    torch.manual_seed(torch_seed)
    return learner.update(phase)


def clone_learner(learner: Learner) -> Learner:
    """An independent deep copy (networks, optimisers, buffers and sampler state)."""
    return copy.deepcopy(learner)


def tiny_agent(env: Any, store: Any, **kwargs: Any) -> Any:
    """A :class:`DualActorAgent` with tiny networks and batches, ready after one episode per task."""
    from daft_agent.agent import DualActorAgent

    settings = dict(
        policy_kwargs=dict(TINY_NETS),
        batch_size=16,
        refinement_batch_size=8,
        min_rollouts_per_task=1,
        warmup_steps=0,
        seed=0,
    )
    settings.update(kwargs)
    return DualActorAgent(env=env, store=store, **settings)
