"""The safety layer between any motion command and an arm, applied on the client AND the server.

For a command starting at the current end-effector pose ``p`` (position ``x``, orientation
``R(rpy)``) the layer computes a safe target in four steps, reporting every limit that fires by a
stable machine-readable name (the env copies them into ``info["safety_clips"]``):

1. Reject. Any NaN or infinity in the current pose, the command or the gripper raises
   :class:`~hardware.errors.SafetyError`: a non-finite command means a bug upstream (a diverged
   network), and no clipped version of it is meaningful.
2. Workspace box. The target position is clipped per axis to ``[position_low, position_high]``
   (names ``workspace_x_low`` ... ``workspace_z_high``). Each of roll, pitch, yaw is clipped to an
   arc of the circle that runs counter-clockwise from ``rpy_low[i]`` to ``rpy_high[i]``; an arc
   with ``low > high`` crosses +-pi, so a gripper pointing down (roll near +-pi) is described by
   e.g. ``low=pi-0.5, high=-pi+0.5`` and an angle of ``-pi+0.1`` is inside it, not 6 rad away.
   An angle outside its arc goes to the nearer end along the circle (names
   ``workspace_roll_low`` ... ``workspace_yaw_high``).
3. Step limits. The translation from ``x`` to the target is clipped per axis to
   ``max_translation_step`` (name ``step_translation_x`` ...). The rotation ``R_t R^T`` is
   shortened along its geodesic to ``max_rotation_step`` rad (name ``step_rotation``), i.e. its
   axis-angle vector is rescaled. A robot that starts outside the box is thus walked back into it
   at the step limit rather than jumped. From inside the box, a shortened rotation is projected
   onto the box once more, so the result is always inside it.
4. Gripper. The gripper opening is clipped to ``[gripper_low, gripper_high]`` (names
   ``gripper_low``/``gripper_high``).

HIL-SERL keeps the same ideas (a box with the rpy wrap, on the robot server) inside its env class;
here they are a separate object so that both sides of the network apply the same limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hardware.errors import ConfigError, SafetyError
from hardware.rotations import (
    TWO_PI,
    apply_delta,
    matrix_to_rotvec,
    matrix_to_rpy,
    pose_delta,
    rotvec_to_matrix,
    rpy_to_matrix,
    wrap_angle,
)

_AXES = ("x", "y", "z")
_ANGLES = ("roll", "pitch", "yaw")


def _as_vec(value: object, n: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ConfigError(f"{what} must be a scalar or have {n} entries; got shape {arr.shape}")
    return arr


@dataclass
class SafetyLimits:
    """Limits for one arm. Lengths in metres, angles in radians, gripper as opening in [0, 1].

    Attributes:
        position_low: (3,) lower corner of the end-effector workspace box, base frame [m].
        position_high: (3,) upper corner [m].
        rpy_low: (3,) start of the allowed arc per angle [rad]; see the module docstring.
        rpy_high: (3,) end of the allowed arc [rad]. ``(-pi, pi)`` means unrestricted.
        max_translation_step: per-axis limit on one command's translation [m] (scalar or (3,)).
        max_rotation_step: limit on one command's rotation angle [rad].
        gripper_low: smallest allowed opening (0 = closed).
        gripper_high: largest allowed opening (1 = fully open).
    """

    position_low: tuple[float, float, float] = (0.15, -0.45, 0.0)
    position_high: tuple[float, float, float] = (0.80, 0.45, 0.60)
    rpy_low: tuple[float, float, float] = (-np.pi, -np.pi, -np.pi)
    rpy_high: tuple[float, float, float] = (np.pi, np.pi, np.pi)
    max_translation_step: float | tuple[float, float, float] = 0.03
    max_rotation_step: float = 0.3
    gripper_low: float = 0.0
    gripper_high: float = 1.0
    _arcs: list[tuple[float, float] | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lo = _as_vec(self.position_low, 3, "position_low")
        hi = _as_vec(self.position_high, 3, "position_high")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
            raise ConfigError(
                f"workspace box needs finite position_low < position_high per axis; got "
                f"low={lo.tolist()} high={hi.tolist()}"
            )
        self.position_low = tuple(lo.tolist())
        self.position_high = tuple(hi.tolist())
        rlo = _as_vec(self.rpy_low, 3, "rpy_low")
        rhi = _as_vec(self.rpy_high, 3, "rpy_high")
        if not (np.all(np.isfinite(rlo)) and np.all(np.isfinite(rhi))):
            raise ConfigError("rpy_low and rpy_high must be finite (use -pi, pi for no limit)")
        self.rpy_low = tuple(rlo.tolist())
        self.rpy_high = tuple(rhi.tolist())
        self._arcs = []
        for a, b in zip(rlo, rhi, strict=True):
            if b - a >= TWO_PI - 1e-9:
                self._arcs.append(None)  # full circle: unrestricted
            else:
                self._arcs.append((float(a), float((b - a) % TWO_PI)))
        step = _as_vec(self.max_translation_step, 3, "max_translation_step")
        if not np.all(step > 0):
            raise ConfigError(f"max_translation_step must be > 0 m; got {step.tolist()}")
        self.max_translation_step = tuple(step.tolist())
        if not self.max_rotation_step > 0:
            raise ConfigError(f"max_rotation_step must be > 0 rad; got {self.max_rotation_step}")
        if not 0.0 <= self.gripper_low < self.gripper_high <= 1.0:
            raise ConfigError(
                "gripper range must satisfy 0 <= gripper_low < gripper_high <= 1 (opening "
                f"fraction); got [{self.gripper_low}, {self.gripper_high}]"
            )

    def to_dict(self) -> dict[str, object]:
        """Plain-data form (for the wire protocol and config files)."""
        return {
            "position_low": list(self.position_low),
            "position_high": list(self.position_high),
            "rpy_low": list(self.rpy_low),
            "rpy_high": list(self.rpy_high),
            "max_translation_step": list(self.max_translation_step),
            "max_rotation_step": float(self.max_rotation_step),
            "gripper_low": float(self.gripper_low),
            "gripper_high": float(self.gripper_high),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> SafetyLimits:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(**data)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigError(f"invalid safety limits {data!r}: {exc}") from exc

    def arc(self, axis: int) -> tuple[float, float] | None:
        """(start, width) of the allowed arc for angle ``axis`` [rad], or None if unrestricted."""
        return self._arcs[axis]


@dataclass
class SafeCommand:
    """A command after the safety layer.

    Attributes:
        target_pose: (6,) pose the arm should reach this control period [m, rad].
        delta: (6,) the same as a delta from the current pose (``rotations.pose_delta``).
        gripper: gripper opening in [0, 1], or None when the command left the gripper alone.
    """

    target_pose: np.ndarray
    delta: np.ndarray
    gripper: float | None


def clip_angle_to_arc(angle: float, start: float, width: float) -> tuple[float, str | None]:
    """Clip ``angle`` to the arc from ``start`` spanning ``width`` rad counter-clockwise.

    Returns:
        The clipped angle wrapped into [-pi, pi) and "low"/"high" when it was clipped, else None.
    """
    offset = (angle - start) % TWO_PI  # position along the circle, measured from the arc start
    if offset <= width + 1e-12:  # an angle exactly at an end is inside despite rounding
        return float(angle), None
    past_high = offset - width
    before_low = TWO_PI - offset
    if past_high <= before_low:
        return float(wrap_angle(start + width)), "high"
    return float(wrap_angle(start)), "low"


def _check_finite(name: str, value: np.ndarray) -> None:
    if not np.all(np.isfinite(value)):
        raise SafetyError(
            f"{name} contains NaN or infinity: {np.asarray(value).tolist()}; the command was "
            "refused and the arm did not move. A diverged policy or a broken sensor is the "
            "usual cause."
        )


class SafetyLayer:
    """Applies :class:`SafetyLimits` to motion commands (see the module docstring for the maths).

    Args:
        limits: the limits to enforce.
    """

    def __init__(self, limits: SafetyLimits | None = None) -> None:
        if limits is not None and not isinstance(limits, SafetyLimits):
            raise ConfigError(f"limits must be a SafetyLimits; got {type(limits).__name__}")
        self.limits = limits if limits is not None else SafetyLimits()

    def clip_to_box(self, pose: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Clip a (6,) pose to the workspace box (position and rpy arcs)."""
        lim = self.limits
        out = np.array(pose, dtype=np.float64)
        clips: list[str] = []
        for i, axis in enumerate(_AXES):
            if out[i] < lim.position_low[i]:
                out[i] = lim.position_low[i]
                clips.append(f"workspace_{axis}_low")
            elif out[i] > lim.position_high[i]:
                out[i] = lim.position_high[i]
                clips.append(f"workspace_{axis}_high")
        for i, name in enumerate(_ANGLES):
            arc = lim.arc(i)
            if arc is None:
                continue
            out[3 + i], side = clip_angle_to_arc(out[3 + i], *arc)
            if side is not None:
                clips.append(f"workspace_{name}_{side}")
        return out, clips

    def check_gripper(self, gripper: float | None) -> tuple[float | None, list[str]]:
        """Validate and clip a gripper opening; None passes through."""
        if gripper is None:
            return None, []
        g = float(gripper)
        _check_finite("gripper command", np.array([g]))
        if g < self.limits.gripper_low:
            return self.limits.gripper_low, ["gripper_low"]
        if g > self.limits.gripper_high:
            return self.limits.gripper_high, ["gripper_high"]
        return g, []

    def check(
        self,
        current_pose: np.ndarray,
        *,
        target_pose: np.ndarray | None = None,
        delta: np.ndarray | None = None,
        gripper: float | None = None,
    ) -> tuple[SafeCommand, list[str]]:
        """Make one command safe.

        Args:
            current_pose: (6,) the arm's pose now [m, rad].
            target_pose: (6,) absolute target; give exactly one of ``target_pose``/``delta``.
            delta: (6,) end-effector delta (``rotations.apply_delta``).
            gripper: gripper opening in [0, 1], or None.

        Returns:
            The safe command and the names of the limits that fired, in the order applied.

        Raises:
            SafetyError: NaN/inf anywhere, or a malformed command.
        """
        if (target_pose is None) == (delta is None):
            raise SafetyError("give exactly one of target_pose or delta to the safety layer")
        current = self._vec6("current pose", current_pose)
        if delta is not None:
            target = apply_delta(current, self._vec6("delta command", delta))
        else:
            target = self._vec6("target pose", target_pose)
        target, clips = self.clip_to_box(target)

        step = pose_delta(current, target)
        max_t = np.asarray(self.limits.max_translation_step)
        for i, axis in enumerate(_AXES):
            if abs(step[i]) > max_t[i]:
                step[i] = np.copysign(max_t[i], step[i])
                clips.append(f"step_translation_{axis}")
        rotvec = matrix_to_rotvec(rpy_to_matrix(target[3:]) @ rpy_to_matrix(current[3:]).T)
        angle = float(np.linalg.norm(rotvec))
        if angle > self.limits.max_rotation_step:
            rotvec *= self.limits.max_rotation_step / angle
            clips.append("step_rotation")
        step[3:] = matrix_to_rpy(rotvec_to_matrix(rotvec))
        safe_target = apply_delta(current, step)
        if "step_rotation" in clips and not self.clip_to_box(current)[1]:
            # A shortened rotation follows the geodesic, which can graze an rpy arc's end even
            # when both ends are inside; project back so the box stays a hard invariant. Only
            # from inside the box: from outside, projecting would jump past the step limit.
            safe_target, late = self.clip_to_box(safe_target)
            if late:
                clips.extend(c for c in late if c not in clips)
                step = pose_delta(current, safe_target)
        g, g_clips = self.check_gripper(gripper)
        clips.extend(g_clips)
        return SafeCommand(target_pose=safe_target, delta=step, gripper=g), clips

    @staticmethod
    def _vec6(name: str, value: object) -> np.ndarray:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise SafetyError(f"{name} must be 6 numbers [m, m, m, rad, rad, rad]") from exc
        if arr.shape != (6,):
            raise SafetyError(
                f"{name} must have shape (6,) = (x, y, z, roll, pitch, yaw); got {arr.shape}"
            )
        _check_finite(name, arr)
        return arr
