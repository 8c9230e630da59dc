"""``learn`` on a fleet: :func:`learn_fleet`.

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

from typing import Any

from stable_baselines3.common.type_aliases import MaybeCallback

from daft_agent.fleet.runner import FleetConfig, FleetRunner


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


__all__ = ["learn_fleet"]
