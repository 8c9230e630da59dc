"""The operated env: an env with a device (by default the simulated operator) under the wrapper.

Every place that lets an operator act on a DAFT env builds it here: training
(:func:`make_train_env`: the operator takes over), evaluation with spoken commands and videos
(:func:`make_speaking_env`: the operator only speaks), the fleet's simulated robots and the
benchmarks (:func:`operated`: any device under the intervention wrapper). :class:`SimRobotEnv`
is the picklable recipe a fleet's simulated robot builds in its own process, :func:`sim_fleet`
a fleet of them.

Any other env (``env_id`` ``"module:EnvId"`` or a registered id that is not DAFT's) is made under
:class:`~daft_env.adapters.DaftSpaces` (its tasks ``tasks``), and its operator is a
:class:`~daft_env.plan_operator.PlanOperator` on the user's plan (``expert``): the bolt cell's
options (``obs_mode``, the perception error, failure-terminal episodes) are DAFT's and are not
passed to it (:class:`~daft_agent.runs.config.RunConfig` refuses them with a clear error).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from daft_agent.errors import AgentConfigError
from hardware.errors import ConfigError

#: gym.make arguments only DAFT's bolt envs take
BOLT_ONLY = ("obs_mode", "perception_error", "failure_terminal", "chained_starts")


def make_env(env_id: str, tasks: Sequence[str] | None = None, **kwargs: Any) -> Any:
    """``gym.make(env_id, **kwargs)`` with the DAFT ids registered and a clear error.

    Another env than DAFT's is made under :class:`~daft_env.adapters.DaftSpaces` (``tasks``: its
    task list), without the bolt-only arguments (:data:`BOLT_ONLY`).
    """
    import gymnasium as gym

    from daft_env.adapters import is_daft_id
    from daft_env.adapters import make_env as make_user_env

    if not is_daft_id(env_id):
        rest = {k: v for k, v in kwargs.items() if k not in BOLT_ONLY}
        return make_user_env(env_id, tasks=tasks, **rest)
    if tasks is not None:
        raise ConfigError(
            "--tasks picks the tasks of your own env; a bolt env runs its own (BoltUpright-Sim-v0 "
            "runs upright, BoltMultiTask-Sim-v0 all three)"
        )
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        raise ConfigError(f"cannot make env {env_id!r}: {exc}") from exc


def operated(env: Any, device: Any = None, expert: Any = None, **operator_kwargs: Any) -> Any:
    """``env`` under the intervention wrapper with ``device``.

    Args:
        env: the env the operator acts on.
        device: a teleop device; None makes a :class:`~daft_env.operator.SimulatedOperator`
            watching ``env`` with ``operator_kwargs`` (``mode``, ``target_rate``, ``seed``, ...),
            or with ``expert`` a :class:`~daft_env.plan_operator.PlanOperator` on that plan.
        expert: the plan of the simulated operator on another env than DAFT's.
    """
    from daft_env.operator import SimulatedOperator
    from daft_env.plan_operator import PlanOperator
    from daft_env.wrappers import InterventionWrapper

    if device is None and expert is not None:
        device = PlanOperator(env, expert, **operator_kwargs)
    elif device is None:
        device = SimulatedOperator(env, **operator_kwargs)
    return InterventionWrapper(env, device)


def make_train_env(
    env_id: str,
    obs_mode: str,
    seed: int,
    operator_rate: float,
    perception_share: float,
    perception: Any,
    env_kwargs: Mapping[str, Any] | None = None,
    failure_terminal: bool = True,
    expert: Any = None,
    tasks: Sequence[str] | None = None,
) -> Any:
    """The operator (takeover mode, ``target_rate=operator_rate``) over the (mixed) env.

    A share ``perception_share`` of the episodes runs under the hidden perception error
    ``perception`` (:class:`~daft_env.perception.PerceptionMix`). Training episodes end at an
    unrecoverable failure (``failure_terminal``, BoltEnv's option: an assemble bolt tilted past
    45 deg or dropped), so the critics see failure as terminal. The evaluation envs run to the
    step limit; success is counted the same either way.
    """
    from daft_env.perception import PerceptionMix

    if expert is not None:  # another env than DAFT's (module docstring)
        base = make_env(env_id, tasks=tasks, **dict(env_kwargs or {}))
        return operated(base, expert=expert, target_rate=operator_rate, seed=seed)
    base = make_env(
        env_id,
        obs_mode=obs_mode,
        perception_error=perception if perception_share else None,
        **({"failure_terminal": True} if failure_terminal else {}),
        **dict(env_kwargs or {}),
    )
    if perception_share:
        base = PerceptionMix(base, perception_share, seed + 2)
    return operated(base, target_rate=operator_rate, seed=seed)


def make_speaking_env(
    env_id: str,
    obs_mode: str,
    perception_error: Any = None,
    expert: Any = None,
    tasks: Sequence[str] | None = None,
    **operator_kwargs: Any,
) -> Any:
    """A sim env of ``env_id`` under the wrapper, with a simulated operator that only speaks.

    ``expert``: the plan it speaks from on another env than DAFT's (its ``tasks``).
    """
    if expert is not None:
        base = make_env(env_id, tasks=tasks)
        return operated(base, expert=expert, mode="speak", **operator_kwargs)
    base = make_env(env_id, obs_mode=obs_mode, perception_error=perception_error)
    return operated(base, mode="speak", **operator_kwargs)


@dataclass(frozen=True)
class SimRobotEnv:
    """A picklable recipe for a simulated robot's env: ``gym.make`` + operator + wrapper.

    Built inside the robot's own process (MuJoCo models and renderers do not cross processes).

    Attributes:
        env_id: a registered DAFT id, e.g. ``"BoltMultiTask-Sim-v0"``.
        env_kwargs: keyword arguments of ``gym.make`` (``obs_mode``, ...), merged over the robot
            preset's options.
        robot: a calibration preset of :mod:`daft_env.robots` ("A", "B", ...) or None (nominal).
        operator_seed: seed of the simulated operator.
        intervention: put the env under the intervention wrapper with a simulated operator
            (human-in-the-loop training); False gives the bare env.
    """

    env_id: str = "BoltMultiTask-Sim-v0"
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    robot: str | None = None
    operator_seed: int = 0
    intervention: bool = True

    def __call__(self) -> Any:
        """Make the env (with its operator under the wrapper when ``intervention``)."""
        from daft_env.robots import robot_env_kwargs

        base = make_env(self.env_id, **{**robot_env_kwargs(self.robot), **dict(self.env_kwargs)})
        if not self.intervention:
            return base
        return operated(base, seed=self.operator_seed)


def sim_fleet(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    robots: Sequence[str | None] | None = None,
    n_actors: int | None = None,
    seed: int = 0,
    **config: Any,
) -> Any:
    """A fleet of simulated robots: one per calibration preset (``robots``) or ``n_actors`` nominal.

    Args:
        env_id: the Sim env id each robot makes.
        env_kwargs: ``gym.make`` keyword arguments (``obs_mode``, ...).
        robots: preset names of :mod:`daft_env.robots` ("A", "B"); one actor each.
        n_actors: number of nominal robots (``robot-0``, ...) when ``robots`` is None.
        seed: base seed (each robot's operator and env draw from their own seeds).
        **config: other :class:`FleetConfig` fields (``speed``, ``address``, ...).
    """
    from daft_agent.fleet.runner import FleetConfig, RobotSpec

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


__all__ = [
    "SimRobotEnv",
    "make_env",
    "make_speaking_env",
    "make_train_env",
    "operated",
    "sim_fleet",
]
