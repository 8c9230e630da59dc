"""DAFT's fleet: one learner, N robot actors on Ray (RQ5; ARCHITECTURE.md, "fleet").

* :mod:`~daft_agent.fleet.remote`: the robot actor (:class:`RobotWorker`) and its env recipe.
* :mod:`~daft_agent.fleet.runner`: the learner side (:class:`FleetRunner`, :class:`FleetConfig`,
  the object-store weights hub), deadlines and restarts.
* :mod:`~daft_agent.fleet.learn`: :func:`learn_fleet`, the agent's ``learn`` on a fleet.

A fleet of simulated robots is :func:`daft_agent.runs.envs.sim_fleet`.

Ray is imported when a fleet starts, so importing this package does not need it.
"""

from daft_agent.errors import FleetError
from daft_agent.fleet.learn import learn_fleet
from daft_agent.fleet.remote import ActorState, RobotWorker
from daft_agent.fleet.runner import (
    FleetConfig,
    FleetRunner,
    RayWeightsHub,
    RobotSpec,
    ensure_ray,
)

__all__ = [
    "ActorState",
    "FleetConfig",
    "FleetError",
    "FleetRunner",
    "RayWeightsHub",
    "RobotSpec",
    "RobotWorker",
    "ensure_ray",
    "learn_fleet",
]
