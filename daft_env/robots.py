"""Robot calibration presets: the sim counterpart of a fleet of differently set-up cells (RQ5).

Two real robots never match: each cell has its fixture bolted down somewhere else, its own
surface friction and its own tuned joint gains. :class:`RobotCalibration` gives the simulation
the same, as a documented option of the MuJoCo backend (``backend_kwargs={"calibration": ...}``,
or ``gym.make(id, **robot_env_kwargs("B"))``):

* ``fixture_offset`` (x, y) metres: the fixture's nominal position moves by it, before the
  per-episode +-5 cm jitter. It is OBSERVABLE: the fixture (and its slot) are where the state
  observation and the head camera show them, so a policy can tell the cells apart, as a real
  robot's camera sees its own cell. A policy trained on one cell meets the other's fixture
  outside the positions it ever saw.
* ``friction_scale``: multiplies the sliding friction of every contact surface (pads, bolt,
  table, fixture).
* ``gain_scale``: multiplies the arm's position-servo stiffness kp; the damping is scaled by
  sqrt(gain_scale), which keeps each joint's damping ratio (c = 2 zeta sqrt(kp m)).

Presets (:data:`ROBOTS`): ``"A"`` is the nominal cell. ``"B"`` has its fixture 8 cm further
right (-y) and 4 cm further forward, 30 % less friction and 20 % softer servos.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from daft_env.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class RobotCalibration:
    """One cell's calibration (module docstring: what each field changes and why).

    Attributes:
        name: the robot's name ("A", "B", ...).
        fixture_offset: (x, y) metres added to the fixture's nominal position.
        friction_scale: factor on every geom's sliding friction (> 0).
        gain_scale: factor on the arm servos' kp (> 0); damping scales by its square root.

    Raises:
        ConfigError: a non-positive scale, or a fixture offset above 15 cm (off the workspace).
    """

    name: str
    fixture_offset: tuple[float, float] = (0.0, 0.0)
    friction_scale: float = 1.0
    gain_scale: float = 1.0

    def __post_init__(self) -> None:
        offset = tuple(float(v) for v in self.fixture_offset)
        if len(offset) != 2:
            raise ConfigError(f"fixture_offset must be (x, y) metres, got {self.fixture_offset}")
        object.__setattr__(self, "fixture_offset", offset)
        if max(abs(v) for v in offset) > 0.15:
            raise ConfigError(
                f"robot {self.name!r}: fixture_offset {offset} m puts the fixture outside the "
                "arm's workspace; keep each component within 0.15 m"
            )
        if not (self.friction_scale > 0 and self.gain_scale > 0):
            raise ConfigError(
                f"robot {self.name!r}: friction_scale and gain_scale must be > 0, got "
                f"{self.friction_scale} and {self.gain_scale}"
            )

    def apply(self, model: Any, arm_actuators: Any, fixture_nominal: np.ndarray) -> None:
        """Calibrate a freshly loaded MuJoCo model in place (called once by the backend).

        Args:
            model: the ``mujoco.MjModel``.
            arm_actuators: indices of the arm's position actuators.
            fixture_nominal: the fixture body's nominal position (3,), moved in place.
        """
        model.geom_friction[:, 0] *= self.friction_scale
        acts = np.arange(model.nu)[arm_actuators]
        model.actuator_gainprm[acts, 0] *= self.gain_scale
        model.actuator_biasprm[acts, 1] *= self.gain_scale  # bias = -kp q - kv qdot
        model.actuator_biasprm[acts, 2] *= np.sqrt(self.gain_scale)
        fixture_nominal[:2] += np.asarray(self.fixture_offset)


#: the presets by name
ROBOTS: dict[str, RobotCalibration] = {
    "A": RobotCalibration("A"),
    "B": RobotCalibration("B", fixture_offset=(0.04, -0.08), friction_scale=0.7, gain_scale=0.8),
}


def get_robot(name: str | RobotCalibration) -> RobotCalibration:
    """A preset by name (an instance passes through).

    Raises:
        ConfigError: an unknown name, listing the presets.
    """
    if isinstance(name, RobotCalibration):
        return name
    try:
        return ROBOTS[name]
    except KeyError:
        raise ConfigError(f"unknown robot {name!r}; the presets are {sorted(ROBOTS)}") from None


def parse_robots(text: str) -> tuple[RobotCalibration, ...]:
    """``"A,B"`` -> the presets, in order (the ``--robots`` option).

    Raises:
        ConfigError: an empty list, a repeated name or an unknown one.
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"--robots expects names such as 'A,B'; got {text!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--robots names each robot once; got {names}")
    return tuple(get_robot(n) for n in names)


def robot_env_kwargs(robot: str | RobotCalibration | None) -> dict[str, Any]:
    """``gym.make`` keyword arguments that put a Sim env on ``robot``'s cell ({} for None)."""
    if robot is None:
        return {}
    return {"backend_kwargs": {"calibration": get_robot(robot)}}


__all__ = ["ROBOTS", "RobotCalibration", "get_robot", "parse_robots", "robot_env_kwargs"]
