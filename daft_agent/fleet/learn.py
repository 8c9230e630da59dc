"""A fleet of simulated robots (:func:`sim_fleet`) and ``learn`` on it (:func:`learn_fleet`).

:func:`learn_fleet` is :meth:`DualActorAgent.learn <daft_agent.agent.DualActorAgent.learn>` with
``fleet=``: the same online phase, with the interaction done by a
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

from stable_baselines3.common.type_aliases import MaybeCallback

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
    """``agent.learn(..., fleet=fleet)``; returns the finished runner.

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
    agent.learn(
        total_timesteps,
        callback=callback,
        log_interval=log_interval,
        tb_log_name=tb_log_name,
        reset_num_timesteps=reset_num_timesteps,
        progress_bar=progress_bar,
        fleet=fleet,
    )
    return agent.fleet_runner


__all__ = ["learn_fleet", "sim_fleet"]
