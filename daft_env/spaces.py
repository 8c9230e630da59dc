"""The fixed Gymnasium face of DAFT (ARCHITECTURE.md, "Gymnasium face").

Action: ``Box(-1, 1, (7,))`` = end-effector delta (dx, dy, dz, droll, dpitch, dyaw) in the robot base
frame, each scaled by :data:`ACTION_SCALE` (metres and radians per 10 Hz step), plus the gripper
command (> 0 closes). Base frame: +x forward, +y left, +z up.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from daft_env.errors import InvalidActionError

ACTION_DIM = 7
CONTROL_HZ = 10.0
#: Metres (x, y, z) and radians (roll, pitch, yaw) that an action component of 1.0 commands per step.
ACTION_SCALE = np.array([0.02, 0.02, 0.02, 0.15, 0.15, 0.15], dtype=np.float64)
WRIST_SHAPE = (128, 128, 3)
HEAD_SHAPE = (256, 256, 3)
GRIPPER_DIM = 1
OBS_MODES = ("pixels", "state", "pixels+state")
MAX_EPISODE_STEPS = 50

#: Layout of the privileged ``state`` observation (name, size), simulation only; filled by
#: :meth:`daft_env.backends.mujoco.MujocoBackend.state_vector`. Positions are metres in the robot
#: base frame, quaternions [w, x, y, z].
STATE_LAYOUT: tuple[tuple[str, int], ...] = (
    ("arm_qpos", 7),
    ("tcp_pos", 3),
    ("tcp_quat", 4),
    ("gripper_opening", 1),
    ("bolt_pos", 3),
    ("bolt_quat", 4),
    ("bolt_linvel", 3),
    ("bolt_angvel", 3),
    ("slot_pos", 3),
    ("active_bolt", 1),
)
STATE_DIM = sum(n for _, n in STATE_LAYOUT)


def _state_slices() -> dict[str, slice]:
    out, start = {}, 0
    for name, n in STATE_LAYOUT:
        out[name] = slice(start, start + n)
        start += n
    return out


#: where each :data:`STATE_LAYOUT` field sits in the ``state`` vector (name -> slice)
STATE_SLICES: dict[str, slice] = _state_slices()


def action_space() -> spaces.Box:
    """The 7-d normalised end-effector delta action space shared by every DAFT env."""
    return spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)


def validate_action(action: object) -> np.ndarray:
    """Return ``action`` as a float64 (7,) array, or raise a clear :class:`InvalidActionError`.

    Values outside [-1, 1] are clipped later by the backend's safety layer; NaN, infinity and a
    wrong shape are refused here because they indicate a bug upstream, not a large command.
    """
    try:
        arr = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidActionError(
            f"action must be a numeric array of shape ({ACTION_DIM},); got {type(action).__name__}"
        ) from exc
    if arr.shape != (ACTION_DIM,):
        raise InvalidActionError(
            f"action must have shape ({ACTION_DIM},) = (dx, dy, dz, droll, dpitch, dyaw, gripper); "
            f"got shape {arr.shape}. For a batch, step one env per action."
        )
    if not np.all(np.isfinite(arr)):
        bad = [i for i in range(ACTION_DIM) if not np.isfinite(arr[i])]
        raise InvalidActionError(
            f"action contains NaN or infinity at index {bad}: {arr.tolist()}. "
            "Check the policy output (a diverged network is the usual cause)."
        )
    return arr


def validate_action_for(action: object, space: spaces.Space, what: str = "action") -> np.ndarray:
    """:func:`validate_action` for any env: a finite float64 array of ``space``'s shape.

    DAFT's own 7-d action keeps :func:`validate_action`'s messages (they name the axes).
    """
    shape = tuple(getattr(space, "shape", None) or ())
    if shape == (ACTION_DIM,):
        return validate_action(action)
    try:
        arr = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidActionError(f"{what} must be a numeric array of shape {shape}") from exc
    if arr.shape != shape:
        hint = ""
        if arr.shape == (ACTION_DIM,):
            hint = (
                " (a 7-d command: a SpaceMouse or keyboard drives DAFT's end-effector action; on "
                "another action use a device that sends the env's own)"
            )
        raise InvalidActionError(
            f"{what} has shape {arr.shape}; the env's action has shape {shape}{hint}"
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidActionError(
            f"{what} contains NaN or infinity: {arr.tolist()}. Check the policy output (a "
            "diverged network is the usual cause)."
        )
    return arr
