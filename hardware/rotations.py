"""Minimal rotation maths for end-effector poses (numpy only).

Conventions used across ``hardware``:

* A pose is a (6,) array ``[x, y, z, roll, pitch, yaw]`` in the robot base frame (+x forward,
  +y left, +z up), metres and radians.
* roll-pitch-yaw are extrinsic X-Y-Z angles: ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (the
  convention of the xArm SDK, ROS and MuJoCo's ``mju_euler2Quat`` with "xyz"), with pitch in
  [-pi/2, pi/2] and roll, yaw in (-pi, pi].
* Quaternions are ``[w, x, y, z]`` (MuJoCo's order).
* An end-effector delta ``[dx, dy, dz, droll, dpitch, dyaw]`` moves the position by ``dx, dy, dz``
  and pre-multiplies the orientation by ``R(droll, dpitch, dyaw)``, i.e. the rotation happens
  about the base-frame axes through the end effector. For the small per-step angles of the action
  space (<= 0.15 rad) this is the same as adding the angles to within second order.
"""

from __future__ import annotations

import numpy as np

TWO_PI = 2.0 * np.pi


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap angle(s) in radians into [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % TWO_PI - np.pi


def rpy_to_matrix(rpy: np.ndarray) -> np.ndarray:
    """(3,) roll, pitch, yaw [rad] -> (3, 3) rotation matrix ``Rz(yaw) Ry(pitch) Rx(roll)``."""
    r, p, y = np.asarray(rpy, dtype=np.float64)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def matrix_to_rpy(rot: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (3,) roll, pitch, yaw [rad]; at gimbal lock roll is set to 0."""
    rot = np.asarray(rot, dtype=np.float64)
    sp = -np.clip(rot[2, 0], -1.0, 1.0)
    pitch = np.arcsin(sp)
    if abs(rot[2, 0]) < 1.0 - 1e-9:
        roll = np.arctan2(rot[2, 1], rot[2, 2])
        yaw = np.arctan2(rot[1, 0], rot[0, 0])
    else:  # cos(pitch) == 0: only roll -/+ yaw is defined; put it all into yaw
        roll = 0.0
        yaw = np.arctan2(-rot[0, 1], rot[1, 1])
    return np.array([roll, pitch, yaw])


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle vector [rad] -> rotation matrix (Rodrigues)."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    k = rotvec / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def matrix_to_rotvec(rot: np.ndarray) -> np.ndarray:
    """Rotation matrix -> axis-angle vector [rad], angle in [0, pi]."""
    quat = matrix_to_quat(rot)
    w = np.clip(quat[0], -1.0, 1.0)
    vec = quat[1:]
    s = float(np.linalg.norm(vec))
    if s < 1e-12:
        return np.zeros(3)
    angle = 2.0 * np.arctan2(s, w)
    if angle > np.pi:  # take the short way round
        angle -= TWO_PI
    return vec / s * angle


def matrix_to_quat(rot: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion [w, x, y, z] with w >= 0."""
    m = np.asarray(rot, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = np.array(
            [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
        )
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = np.array(
            [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
        )
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = np.array(
            [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
        )
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = np.array(
            [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
        )
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def quat_to_matrix(quat: np.ndarray) -> np.ndarray:
    """Quaternion [w, x, y, z] (any norm > 0) -> rotation matrix."""
    w, x, y, z = np.asarray(quat, dtype=np.float64) / np.linalg.norm(quat)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rpy_to_quat(rpy: np.ndarray) -> np.ndarray:
    """(3,) roll, pitch, yaw [rad] -> quaternion [w, x, y, z]."""
    return matrix_to_quat(rpy_to_matrix(rpy))


def quat_to_rpy(quat: np.ndarray) -> np.ndarray:
    """Quaternion [w, x, y, z] -> (3,) roll, pitch, yaw [rad]."""
    return matrix_to_rpy(quat_to_matrix(quat))


def apply_delta(pose: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Target pose reached by applying the end-effector ``delta`` to ``pose`` (module docstring)."""
    pose = np.asarray(pose, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    rot = rpy_to_matrix(delta[3:]) @ rpy_to_matrix(pose[3:])
    return np.concatenate([pose[:3] + delta[:3], matrix_to_rpy(rot)])


def pose_delta(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The delta with ``apply_delta(current, delta) == target`` (rotation part as rpy)."""
    current = np.asarray(current, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    rot = rpy_to_matrix(target[3:]) @ rpy_to_matrix(current[3:]).T
    return np.concatenate([target[:3] - current[:3], matrix_to_rpy(rot)])
