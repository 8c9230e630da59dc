"""Differential inverse kinematics for the simulated arm: damped least squares on a site Jacobian.

One Gauss-Newton step towards a world-frame pose target (p*, R*) of the tool-centre-point site:

    e  = [p* - p(q),  log(R* R(q)^T)]                       (position and rotation-vector error)
    dq = J^T (J J^T + lambda^2 I)^-1 e  +  (I - J^+ J) k (q_home - q)
    q  <- clip(q + dq, q_lo, q_hi)

with J the 6x7 site Jacobian from ``mj_jacSite``, lambda the damping, and the second term a
null-space pull towards the home posture (J^+ the damped pseudo-inverse, so the projector leaks
lambda^2 (J J^T + lambda^2 I)^-1 J v into the task space; a later iteration removes it).

Why hand-written and not mink: mink solves a QP per step through ``qpsolvers`` (daqp) and
rebuilds its task matrices in Python. The env's throughput target spends at least 75 % of a
``state``-mode step in ``mj_step`` (50 physics substeps, about 1.2 ms on an idle CI machine), which
leaves roughly 0.3 ms per 10 Hz step for everything else, and a QP per step does not fit in that.
Measured side by side in one process on this model (``timeit``, best of 5, on the loaded 2-core CI
machine, where all three figures are inflated alike): one ``mink.solve_ik`` with daqp (a frame
task and a posture task) plus ``integrate_inplace`` took 1.06 ms, one :meth:`DifferentialIK.step`
0.13 ms, and the 50 physics substeps 3.8 ms. mink would add 28 % to the physics time, this step
3.5 %. One or two DLS iterations with clamping to the joint limits are enough for the action
space's 2 cm / 0.15 rad steps.

The rotation error uses MuJoCo's C quaternion routines rather than
:func:`hardware.rotations.matrix_to_rotvec`: it runs at least twice per control period (the
re-anchoring check and each IK iteration), and the numpy version costs about five times as much
(measured: 11 us against 59 us per call, ``timeit`` best of 7, on the loaded 2-core CI machine), so
two calls of it would take a third of the 0.3 ms budget. The two agree to 1e-15 (tested).
"""

from __future__ import annotations

import mujoco
import numpy as np


def rotation_error(target_rot: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, angle in [0, pi]) of ``target_rot @ rot.T``."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, (target_rot @ rot.T).reshape(-1))
    vel = np.empty(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


class DifferentialIK:
    """Damped least squares IK of one site over a contiguous set of arm joints (module docstring).

    It works on a private ``MjData`` so that solving never disturbs the simulation's state.

    Args:
        model: the MuJoCo model.
        site: id of the controlled site (the tool centre point).
        qadr: the arm joints' ``qpos`` addresses (an index array or slice, 7 entries).
        dadr: the arm joints' ``qvel`` (dof) addresses, in the same order.
        lower: (7,) lower joint limits the result is clamped to.
        upper: (7,) upper joint limits.
        damping: lambda (a position-error-sized regulariser, metres).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        site: int,
        qadr: np.ndarray | slice,
        dadr: np.ndarray | slice,
        lower: np.ndarray,
        upper: np.ndarray,
        damping: float = 1e-2,
    ) -> None:
        self.model = model
        self.site = site
        self.qadr = qadr
        self.dadr = dadr
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self.damping = float(damping)
        self._scratch = mujoco.MjData(model)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        n = self.lower.shape[0]
        self._jac = np.zeros((6, n))
        self._err = np.zeros(6)

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World position and 3x3 rotation of the site at joint positions ``q``."""
        s = self._scratch
        s.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, s)
        return s.site_xpos[self.site].copy(), s.site_xmat[self.site].reshape(3, 3).copy()

    def step(
        self,
        q: np.ndarray,
        target_pos: np.ndarray,
        target_rot: np.ndarray,
        home: np.ndarray | None = None,
        null_gain: float = 0.1,
    ) -> np.ndarray:
        """One DLS Gauss-Newton step from ``q`` towards the target; clamped to the joint limits.

        Args:
            q: (7,) current joint positions.
            target_pos: (3,) world-frame site position.
            target_rot: (3, 3) world-frame site rotation.
            home: (7,) posture the null-space term pulls towards; None (or ``null_gain=0``)
                leaves the null space alone.
            null_gain: k of the null-space pull.
        """
        m, s = self.model, self._scratch
        s.qpos[self.qadr] = q
        mujoco.mj_kinematics(m, s)
        mujoco.mj_comPos(m, s)
        mujoco.mj_jacSite(m, s, self._jacp, self._jacr, self.site)
        jac = self._jac
        jac[:3] = self._jacp[:, self.dadr]
        jac[3:] = self._jacr[:, self.dadr]
        err = self._err
        err[:3] = target_pos - s.site_xpos[self.site]
        err[3:] = rotation_error(target_rot, s.site_xmat[self.site].reshape(3, 3))
        gram = jac @ jac.T
        gram[np.diag_indices(6)] += self.damping**2
        dq = jac.T @ np.linalg.solve(gram, err)
        if null_gain and home is not None:
            pull = null_gain * (home - q)
            dq += pull - jac.T @ np.linalg.solve(gram, jac @ pull)
        return np.clip(q + dq, self.lower, self.upper)


__all__ = ["DifferentialIK", "rotation_error"]
