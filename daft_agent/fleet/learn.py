"""``learn_fleet``: :meth:`DualActorAgent.learn` with N robot actors on Ray instead of one loop.

The same phases as :meth:`~daft_agent.agent.DualActorAgent.learn` (warm-up if not done, then
online training with the agent's learner, pacing and counters), with the interaction done by a
:class:`~daft_agent.fleet.runner.FleetRunner`. Every episode a robot returns goes through the
agent's ``add_episode`` at once (durable store first, then the buffers and the per-task
statistics); per-robot figures are logged under ``fleet/<robot>/...`` with the agent's own logs.

SB3 callback semantics: ``callback.on_step()`` is called once per env step of a returned chunk,
after the chunk's episodes are filed; returning False stops the run. ``callback.locals["fleet"]``
is the :class:`~daft_agent.fleet.runner.FleetRunner` (per-robot figures for a progress bar).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.type_aliases import MaybeCallback

from daft_agent.actors import actor_copy
from daft_agent.errors import AgentConfigError
from daft_agent.fleet.remote import SimRobotEnv
from daft_agent.fleet.runner import FleetConfig, FleetRunner, RobotSpec


def sim_fleet(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    robots: Sequence[str | None] | None = None,
    n_actors: int | None = None,
    seed: int = 0,
    **config: Any,
) -> FleetConfig:
    """A fleet of simulated robots: one per calibration preset (``robots``) or ``n_actors`` nominal.

    Args:
        env_id: the Sim env id each robot makes.
        env_kwargs: ``gym.make`` keyword arguments (``obs_mode``, ...).
        robots: preset names of :mod:`daft_env.robots` ("A", "B"); one actor each.
        n_actors: number of nominal robots (``robot-0``, ...) when ``robots`` is None.
        seed: base seed (each robot's operator and env draw from their own seeds).
        **config: other :class:`FleetConfig` fields (``speed``, ``address``, ...).
    """
    if robots is None:
        if n_actors is None or n_actors < 1:
            raise AgentConfigError(f"a fleet needs robots=[...] or n_actors >= 1, got {n_actors}")
        robots = [None] * n_actors
    specs = tuple(
        RobotSpec(
            name=robot if robot is not None else f"robot-{i}",
            make_env=SimRobotEnv(
                env_id, dict(env_kwargs or {}), robot, operator_seed=seed + 7919 * i
            ),
        )
        for i, robot in enumerate(robots)
    )
    return FleetConfig(robots=specs, seed=seed, **config)


def learn_fleet(
    agent: Any,
    total_timesteps: int,
    fleet: FleetConfig,
    callback: MaybeCallback = None,
    log_interval: int = 1,
    tb_log_name: str = "DualActor",
    reset_num_timesteps: bool = True,
    progress_bar: bool = False,
) -> FleetRunner:
    """Warm up ``agent`` (if not done), then train it online on ``fleet`` for ``total_timesteps``.

    Args:
        agent: a :class:`~daft_agent.agent.DualActorAgent` (its env gives the spaces; the robots
            make their own envs).
        total_timesteps: env steps of all robots together.
        fleet: the robots and their fault settings.
        callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar: as for
            :meth:`~daft_agent.agent.DualActorAgent.learn` (``log_interval`` in episodes).

    Returns:
        The finished runner: its ``robots`` hold each robot's figures and, for a dropped robot,
        the reason (``dropped``).

    Raises:
        FleetError: every robot went, or a robot's env raised.
    """
    if agent.env is None:
        raise AgentConfigError(
            "learn_fleet needs the agent's env for its spaces: pass env= to the constructor or load()"
        )
    total_timesteps, callback = agent._setup_learn(
        total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
    )
    agent.load_buffers()
    remaining = agent.warmup_steps - agent.warmup_updates_done
    if remaining > 0:
        agent.warmup(remaining)
    agent.replay.check_demos()
    callback.on_training_start(locals(), globals())

    def on_episode(robot: str, episode: Any) -> None:
        agent.add_episode(episode)  # the durable store first: a crash after this loses nothing
        agent._episode_num += 1
        if log_interval and agent._episode_num % log_interval == 0:
            runner.record(agent.logger)
            agent.dump_logs()

    def on_steps(n: int) -> bool:
        dones = np.array([False])
        for i in range(n):
            agent.num_timesteps += 1
            agent.online_env_steps += 1
            agent._update_current_progress_remaining(agent.num_timesteps, total_timesteps)
            callback.update_locals(
                {"infos": [{}], "dones": dones, "rewards": np.zeros(1), "fleet": runner}
            )
            if not callback.on_step():
                # the chunk's other steps happened too: counted, so counters match the store
                agent.num_timesteps += n - 1 - i
                agent.online_env_steps += n - 1 - i
                return False
        return True

    runner = FleetRunner(
        agent.learner,
        agent._policy_lock,
        agent._runner_config(),
        fleet,
        actor_copy(agent.policy),
        agent.tasks,
        updates_done=agent.online_updates_done,
        on_update=agent._on_online_update,
        on_episode=on_episode,
    )
    with runner:
        runner.run(total_timesteps - agent.num_timesteps, on_steps)
    runner.record(agent.logger)
    agent.dump_logs()
    callback.on_training_end()
    return runner


__all__ = ["learn_fleet", "sim_fleet"]
