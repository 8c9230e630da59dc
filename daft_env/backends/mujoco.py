"""MuJoCo simulation backend: the bolt world of paper Section III behind the ``Backend`` protocol.

Control: one :meth:`MujocoBackend.apply_action` is one 10 Hz control period (0.1 s of simulated
time, ``substeps`` physics steps of ``model.opt.timestep``). The normalised 7-d action is scaled by
:data:`daft_env.spaces.ACTION_SCALE` into a tool-centre-point (TCP) delta in the robot base frame,

    p* <- clip_box(p* + s_p * a[:3]),      R* <- exp([s_r * a[3:6]]x) R*,

and damped least squares differential IK turns the target pose (p*, R*) into joint position
targets for stiff, gravity-compensated joint servos. The gripper squeezes with a bounded force
(10 N per finger) when ``a[6] > 0`` and opens otherwise.

The IK is :class:`daft_env.backends.ik.DifferentialIK`; its docstring gives the maths and the
measured reason it is hand-written rather than a QP (mink). Rotation maths comes from
:mod:`hardware.rotations`, except the IK's inner-loop rotation error (see there).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from daft_env.backends.base import ActionReport, TaskStatus  # noqa: E402
from daft_env.backends.contacts import contact_groups, max_normal_force  # noqa: E402
from daft_env.backends.ik import DifferentialIK, rotation_error  # noqa: E402
from daft_env.backends.mujoco_views import SceneViews  # noqa: E402
from daft_env.backends.predicates import (  # noqa: E402
    BOLT_LENGTH,
    HEAD_HALF,
    HEAD_HEIGHT,
    SHANK_RADIUS,
    SUCCESS_PREDICATES,
)
from daft_env.errors import BackendError, ConfigError  # noqa: E402
from daft_env.spaces import (  # noqa: E402
    ACTION_SCALE,
    CONTROL_HZ,
    HEAD_SHAPE,
    STATE_DIM,
    STATE_LAYOUT,
    WRIST_SHAPE,
)
from daft_env.tasks import TaskSpec  # noqa: E402
from hardware.rotations import matrix_to_quat, rotvec_to_matrix, rpy_to_matrix  # noqa: E402

ASSETS_DIR = Path(__file__).resolve().parents[2] / "sim_assets"

#: Gripper opening (m) at which the fingers are fully open; observations are normalised by it.
MAX_OPENING = 0.08
#: Gripper actuator targets (m of opening): squeeze beyond closed (force bounded) / fully open.
GRIP_CLOSE, GRIP_OPEN = -0.02, 0.08
#: Workspace box for the TCP target in the robot base frame (m): (low, high) per axis.
WORKSPACE = np.array([[0.22, 0.78], [-0.38, 0.38], [0.006, 0.40]])
#: Home TCP position in the base frame; the gripper points down with fingers closing along y.
HOME_TCP = np.array([0.42, 0.0, 0.16])
R_TOPDOWN = np.diag([1.0, -1.0, -1.0])
#: Home orientation: pointing down, fingers closing along x. Turning the gripper about x to point
#: along -y (hand on the +y side) is what stands a bolt up; for this arm that wrist motion stays
#: well inside the joint limits, unlike pointing the gripper forward at table height.
HOME_YAW = np.pi / 2
#: Nominal object positions (world x, y) before the uniform +-5 cm randomisation.
BOLT_NOMINAL = np.array([0.47, -0.10])
FIXTURE_NOMINAL = np.array([0.50, 0.12])
RANDOM_RANGE = 0.05
#: Where unused long-horizon bolts are parked (world), outside the workspace.
PARK_POSITIONS = np.array([[0.05, 0.45], [0.12, 0.45], [0.19, 0.45], [0.26, 0.45]])


def _as_index(idx: np.ndarray) -> np.ndarray | slice:
    idx = np.asarray(idx)
    if idx.size and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


_HEAD_CORNERS = np.array(
    [
        [sx * HEAD_HALF, sy * HEAD_HALF, sz]
        for sx in (-1, 1)
        for sy in (-1, 1)
        for sz in (0, HEAD_HEIGHT)
    ]
)


class MujocoBackend:
    """The simulated bolt world.

    Args:
        scene: MJCF file name in ``sim_assets/`` (or an absolute path).
        substeps: physics steps per 0.1 s control period; ``None`` derives it from the timestep.
        randomize: draw base and object positions uniformly within +-5 cm (paper, Implementation
            Details). ``False`` gives the nominal layout (used by physics tests).
        ik_iterations: Gauss-Newton iterations of the differential IK per control period. One is
            enough: the pose target is integrated, so what one linearised step leaves over is
            corrected by the next period's IK from the measured joints.
        calibration: a robot's cell (:class:`daft_env.robots.RobotCalibration`, or a preset name
            such as ``"B"``): fixture placement, friction and servo gains; None is nominal.
    """

    has_privileged_state = True

    def __init__(
        self,
        scene: str = "scene_assemble.xml",
        *,
        substeps: int | None = None,
        randomize: bool = True,
        ik_iterations: int = 1,
        calibration: Any = None,
    ) -> None:
        path = Path(scene)
        if not path.is_absolute():
            path = ASSETS_DIR / scene
        if not path.exists():
            raise ConfigError(
                f"MuJoCo scene {str(path)!r} does not exist; pass a file from {str(ASSETS_DIR)!r} "
                "such as 'scene_upright.xml' or 'scene_long_horizon.xml'."
            )
        if ik_iterations < 1:
            raise ConfigError(f"ik_iterations must be >= 1, got {ik_iterations}")
        self.model = mujoco.MjModel.from_xml_path(str(path))
        self.data = mujoco.MjData(self.model)
        m = self.model
        period = 1.0 / CONTROL_HZ
        if substeps is None:
            substeps = int(round(period / m.opt.timestep))
        if substeps < 1:
            raise ConfigError(f"substeps must be >= 1, got {substeps}")
        self.substeps = substeps
        # Joint targets ramp linearly over the period in five pieces (see apply_action).
        n_ramp = max(1, min(5, substeps))
        self._ramp_chunks = [
            substeps // n_ramp + (1 if k < substeps % n_ramp else 0) for k in range(n_ramp)
        ]
        self.randomize = bool(randomize)
        self.ik_iterations = ik_iterations

        # --- ids, looked up once -------------------------------------------------------------
        self._arm_joints = [m.joint(f"joint{i}").id for i in range(1, 8)]
        self._arm_qadr = np.array([m.jnt_qposadr[j] for j in self._arm_joints])
        self._arm_dadr = np.array([m.jnt_dofadr[j] for j in self._arm_joints])
        self._arm_lo = m.jnt_range[self._arm_joints, 0] + 0.01
        self._arm_hi = m.jnt_range[self._arm_joints, 1] - 0.01
        self._finger_qadr = np.array(
            [m.jnt_qposadr[m.joint(n).id] for n in ("finger_left", "finger_right")]
        )
        self._grip_act = m.actuator("gripper").id
        self._arm_act = np.array([m.actuator(f"act{i}").id for i in range(1, 8)])
        self._tcp = m.site("tcp").id
        self._base = m.body("base").id
        self._fixture = m.body("fixture").id
        self._slots = [m.site(f"slot{k}").id for k in range(4)]
        self._bolts: list[int] = []
        while True:
            try:
                self._bolts.append(m.body(f"bolt{len(self._bolts)}").id)
            except KeyError:
                break
        if not self._bolts:
            raise ConfigError(f"scene {path.name!r} has no body named 'bolt0'")
        self.max_bolts = len(self._bolts)
        self._bolt_qadr = [m.jnt_qposadr[m.body_jntadr[b]] for b in self._bolts]
        self._bolt_dadr = [m.jnt_dofadr[m.body_jntadr[b]] for b in self._bolts]
        self._bolt_geoms = [
            {g for g in range(m.ngeom) if m.geom_bodyid[g] == b and m.geom_contype[g]}
            for b in self._bolts
        ]
        self._left_geoms = {m.geom("pad_left").id, m.geom("finger_left").id}
        self._right_geoms = {m.geom("pad_right").id, m.geom("finger_right").id}
        self._hand_geoms = self._left_geoms | self._right_geoms | {m.geom("hand").id}
        self._robot_geoms, self._scene_geoms = contact_groups(m, self._tcp, self._bolts)
        self._base_nominal = m.body_pos[self._base].copy()
        self._fixture_nominal = m.body_pos[self._fixture].copy()
        from daft_env.robots import get_robot

        self.calibration = None if calibration is None else get_robot(calibration)
        if self.calibration is not None:
            self.calibration.apply(m, self._arm_act, self._fixture_nominal)

        # Contiguous index arrays become slices: basic indexing avoids copies in the hot loop.
        self._arm_qadr = _as_index(self._arm_qadr)
        self._arm_dadr = _as_index(self._arm_dadr)
        self._arm_act = _as_index(self._arm_act)
        self._ik = DifferentialIK(
            m, self._tcp, self._arm_qadr, self._arm_dadr, self._arm_lo, self._arm_hi
        )
        self._cache: dict[str, Any] | None = None
        self._views = SceneViews(m)  # renderers: lazy, dropped when pickled
        self._closed = False

        self.task: TaskSpec | None = None
        self.active_bolt = 0
        self.n_bolts = 1
        self._home_q = self._solve_home()
        self._target_pos = np.zeros(3)
        self._target_rot = np.eye(3)

    # ------------------------------------------------------------------------------------------
    # kinematics helpers
    # ------------------------------------------------------------------------------------------
    @property
    def base_pos(self) -> np.ndarray:
        """World position of the robot base (the origin of the action/state frame)."""
        return self.model.body_pos[self._base].copy()

    def _solve_home(self) -> np.ndarray:
        d = self.data
        d.qpos[self._arm_qadr] = [0.0, -0.3, 0.0, -2.4, 0.0, 2.1, 0.785]
        mujoco.mj_kinematics(self.model, d)
        q = d.qpos[self._arm_qadr].copy()
        target = self._base_nominal + HOME_TCP
        for _ in range(60):
            q = self._ik.step(q, target, rpy_to_matrix((0.0, 0.0, HOME_YAW)) @ R_TOPDOWN, None)
        return q

    # ------------------------------------------------------------------------------------------
    # Backend protocol
    # ------------------------------------------------------------------------------------------
    def reset(
        self, task: TaskSpec, rng: np.random.Generator, options: Mapping[str, Any] | None = None
    ) -> None:
        """Lay out a fresh scene for ``task`` (see the module docstring of the initial states).

        Initial states: ``upright`` - the bolt lies on its side, head towards +y (left), yaw within
        +-15 deg; ``pickup`` - it stands on its head; ``assemble`` - it hangs head-down in the
        closed gripper, 10 cm above the table. Options: ``n_bolts`` (1..scene's bolts) lays out that
        many bolts on their sides for a long-horizon episode (the task is then its first subtask).
        """
        self._check_open()
        options = dict(options or {})
        m, d = self.model, self.data
        n_bolts = int(options.get("n_bolts", 1))
        if not 1 <= n_bolts <= self.max_bolts:
            raise ConfigError(
                f"n_bolts must be in 1..{self.max_bolts} for this scene, got {n_bolts}"
            )
        self.n_bolts = n_bolts
        self.active_bolt = 0
        self.task = task

        def jitter(scale: float = RANDOM_RANGE) -> np.ndarray:
            return rng.uniform(-scale, scale, size=2) if self.randomize else np.zeros(2)

        mujoco.mj_resetData(m, d)
        m.body_pos[self._base, :2] = self._base_nominal[:2] + jitter()
        m.body_pos[self._fixture, :2] = self._fixture_nominal[:2] + jitter()
        d.qpos[self._arm_qadr] = self._home_q
        d.ctrl[self._arm_act] = self._home_q
        d.ctrl[self._grip_act] = GRIP_OPEN
        d.qpos[self._finger_qadr] = MAX_OPENING / 2

        for i in range(self.max_bolts):  # park everything first
            self._place_lying(i, np.r_[PARK_POSITIONS[i], 0.0], 0.0)

        if n_bolts > 1 or options.get("layout") == "long_horizon":
            centre = np.array([0.40, BOLT_NOMINAL[1]]) + jitter()
            for i in range(n_bolts):
                xy = centre + np.array([0.06 * i, 0.0]) + jitter(0.004)
                yaw = rng.uniform(-0.2, 0.2) if self.randomize else 0.0
                self._place_lying(i, np.r_[xy, 0.0], yaw)
        elif task.name == "upright":
            yaw = rng.uniform(-0.26, 0.26) if self.randomize else 0.0
            self._place_lying(0, np.r_[BOLT_NOMINAL + jitter(), 0.0], yaw)
        elif task.name == "pickup":
            yaw = rng.uniform(-np.pi, np.pi) if self.randomize else 0.0
            self._place_standing(0, np.r_[BOLT_NOMINAL + jitter(), 0.0], yaw)
        elif task.name == "assemble":
            tcp = np.r_[BOLT_NOMINAL + jitter(), 0.10]
            self._place_in_gripper(0, tcp)
        else:  # a task of your own: BoltEnv refuses it before building this backend
            raise ConfigError(
                f"the MuJoCo scene has no initial state for task {task.name!r}: the simulation "
                "knows DAFT's bolt tasks only. A task of your own runs on the real backend "
                "(backend='real'; daft_env.backends.real.tasks)"
            )

        mujoco.mj_forward(m, d)
        d.ctrl[self._arm_act] = d.qpos[self._arm_qadr]
        mujoco.mj_step(m, d, 100)  # settle contacts (0.2 s) before the first observation
        self._reanchor()
        self._cache = None

    def _place_lying(self, i: int, pos: np.ndarray, yaw: float) -> None:
        """Bolt i on its side, centred at ``pos`` (x, y), head towards +y, turned by ``yaw``."""
        rot = rpy_to_matrix((np.pi / 2, 0.0, yaw))  # Rz(yaw) Rx(pi/2): bolt +z along -y
        axis = rot[:, 2]
        origin = pos + np.array([0.0, 0.0, HEAD_HALF + 0.0005]) - axis * BOLT_LENGTH / 2
        self._set_bolt(i, origin, rot)

    def _place_standing(self, i: int, pos: np.ndarray, yaw: float) -> None:
        self._set_bolt(i, pos + np.array([0.0, 0.0, 0.0002]), rpy_to_matrix((0.0, 0.0, yaw)))

    def _place_in_gripper(self, i: int, tcp_world: np.ndarray) -> None:
        d = self.data
        target = tcp_world.copy()
        q = self._home_q.copy()
        # Fingers close along y here, so sideways (y) loads on the bolt press into the stiff,
        # coupled fingers instead of relying on friction.
        for _ in range(40):
            q = self._ik.step(q, target, R_TOPDOWN, self._home_q)
        d.qpos[self._arm_qadr] = q
        d.ctrl[self._arm_act] = q
        pos, _ = self._ik.fk(q)
        grasp_height = 0.040
        self._set_bolt(i, pos - np.array([0.0, 0.0, grasp_height]), np.eye(3))
        d.qpos[self._finger_qadr] = SHANK_RADIUS - 0.0002
        d.ctrl[self._grip_act] = GRIP_CLOSE

    def _set_bolt(self, i: int, origin: np.ndarray, rot: np.ndarray) -> None:
        adr = self._bolt_qadr[i]
        self.data.qpos[adr : adr + 3] = origin
        self.data.qpos[adr + 3 : adr + 7] = matrix_to_quat(rot)
        dadr = self._bolt_dadr[i]
        self.data.qvel[dadr : dadr + 6] = 0.0

    def _reanchor(self) -> None:
        self._target_pos = self.data.site_xpos[self._tcp].copy()
        self._target_rot = self.data.site_xmat[self._tcp].reshape(3, 3).copy()

    def set_task(self, task: TaskSpec) -> None:
        """Switch the active subtask without touching the scene (long-horizon chains)."""
        self.task = task

    def set_active_bolt(self, index: int) -> None:
        """Make bolt ``index`` (and slot ``index``) the subject of the task predicates."""
        if not 0 <= index < self.n_bolts:
            raise ConfigError(f"bolt index must be in 0..{self.n_bolts - 1}, got {index}")
        self.active_bolt = index

    def apply_action(self, action: np.ndarray) -> ActionReport:
        """Run one 0.1 s control period for a normalised 7-d action (see module docstring)."""
        self._check_open()
        m, d = self.model, self.data
        action = np.asarray(action, dtype=np.float64)
        reasons: list[str] = []
        if np.abs(action).max() > 1.0:
            reasons.append("action_range")
            action = np.clip(action, -1.0, 1.0)
        tcp = d.site_xpos[self._tcp]
        tcp_rot = d.site_xmat[self._tcp].reshape(3, 3)
        # The target integrates the deltas, so the servo lag (a few mm while moving) does not
        # accumulate as drift in position or orientation; it is re-anchored to the measured pose
        # when a contact holds the arm back, so it cannot wind up against an obstacle.
        if np.linalg.norm(self._target_pos - tcp) > 0.01:
            self._target_pos = tcp.copy()
        if np.linalg.norm(rotation_error(self._target_rot, tcp_rot)) > 0.15:
            self._target_rot = tcp_rot.copy()
        base = m.body_pos[self._base]
        want = self._target_pos + action[:3] * ACTION_SCALE[:3] - base
        box = np.clip(want, WORKSPACE[:, 0], WORKSPACE[:, 1])
        for ax, name in enumerate("xyz"):
            if box[ax] != want[ax]:
                reasons.append(f"workspace_{name}")
        self._target_pos = box + base
        self._target_rot = rotvec_to_matrix(action[3:6] * ACTION_SCALE[3:]) @ self._target_rot
        q = d.qpos[self._arm_qadr].copy()
        # The posture pull acts in the first iteration only: the damped projector leaks a little
        # into the task space (lambda^2 (J J^T + lambda^2 I)^-1 J v), which later iterations or
        # the next period remove.
        for it in range(self.ik_iterations):
            q = self._ik.step(
                q, self._target_pos, self._target_rot, self._home_q, 0.1 if it == 0 else 0.0
            )
        if np.any(q <= self._arm_lo + 1e-9) or np.any(q >= self._arm_hi - 1e-9):
            reasons.append("joint_limit")
        d.ctrl[self._grip_act] = GRIP_CLOSE if action[6] > 0.0 else GRIP_OPEN
        # Ramp the joint targets over the period (as a real arm's interpolator does): a step
        # change would whip the hand around mid-period and throw a held bolt out of the fingers.
        arm_ctrl = d.ctrl[self._arm_act]  # a view (slice)
        q_prev = arm_ctrl.copy()
        step = (q - q_prev) / len(self._ramp_chunks)
        for nstep in self._ramp_chunks:
            q_prev += step
            d.ctrl[self._arm_act] = q_prev
            mujoco.mj_step(m, d, nstep)
        self._cache = None
        if not np.all(np.isfinite(d.qpos)):
            raise BackendError(
                "the simulation diverged (non-finite state); reset the env. This indicates a "
                "physics bug - please report the seed and actions."
            )
        return ActionReport(
            applied=action.copy(), clipped=bool(reasons), clip_reasons=tuple(reasons)
        )

    def gripper_opening(self) -> float:
        """Distance between the finger pads (m)."""
        return float(self.data.qpos[self._finger_qadr].sum())

    def _contacts(self, bolt: int) -> tuple[bool, bool, bool]:
        d = self.data
        ncon = d.ncon
        if ncon == 0:
            return False, False, False
        g1 = d.contact.geom1[:ncon]
        g2 = d.contact.geom2[:ncon]
        geoms = self._bolt_geoms[bolt]
        left = right = hand = False
        for a, b in zip(g1.tolist(), g2.tolist(), strict=True):
            other = b if a in geoms else a if b in geoms else None
            if other is None:
                continue
            left |= other in self._left_geoms
            right |= other in self._right_geoms
            hand |= other in self._hand_geoms
        return left, right, hand

    def privileged_state(self, bolt: int | None = None) -> dict[str, Any]:
        """Physical state in the robot base frame, for experts, predicates and the ``state`` obs.

        Positions are relative to the robot base (metres), rotations are world-aligned (the base
        only translates). ``bolt_pos`` is the centre of the head's bearing face; ``bolt_axis`` is
        the unit vector from head to tip; ``slot_pos`` the entrance of the active bolt's slot on
        the channel floor. ``slot_depth``/``slot_lateral`` give where the shank axis crosses the
        plates in slot coordinates (x along the slot from its open end, y across it).
        ``robot_contact_force`` is the largest normal force (N) between the robot and the table or
        fixture (:mod:`daft_env.backends.contacts`), read by the simulated operator's contact rule.
        """
        ps = self._state(bolt)
        return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in ps.items()}

    def _state(self, bolt: int | None = None) -> dict[str, Any]:
        """Privileged state without copying: computed once per control period and cached."""
        i = self.active_bolt if bolt is None else bolt
        task = self.task.name if self.task is not None else None
        cache = self._cache
        if (
            bolt is None
            and cache is not None
            and cache["active_bolt"] == i
            and cache["task"] == task
        ):
            return cache
        ps = self._compute_state(i)
        if bolt is None:
            self._cache = ps
        return ps

    def _compute_state(self, i: int) -> dict[str, Any]:
        m, d = self.model, self.data
        base = m.body_pos[self._base].copy()
        b = self._bolts[i]
        bolt_rot = d.xmat[b].reshape(3, 3).copy()
        axis = bolt_rot[:, 2].copy()
        origin = d.xpos[b] - base
        dadr = self._bolt_dadr[i]
        linvel = d.qvel[dadr : dadr + 3].copy()
        angvel = bolt_rot @ d.qvel[dadr + 3 : dadr + 6]  # free joint angular velocity is local
        lowest = min(
            float(origin[2] + (_HEAD_CORNERS @ bolt_rot[2]).min()),
            float(origin[2] + axis[2] * (BOLT_LENGTH - SHANK_RADIUS)) - SHANK_RADIUS,
        )
        slot = self._slots[i]
        slot_pos = d.site_xpos[slot] - base
        # shank axis where it crosses the plates (slot floor + 11 mm)
        plate_z = slot_pos[2] + 0.011
        if abs(axis[2]) > 1e-3:
            t = (plate_z - origin[2]) / axis[2]
            cross = origin + t * axis
        else:
            cross = origin + axis * BOLT_LENGTH / 2
        left, right, hand = self._contacts(i)
        opening = self.gripper_opening()
        tcp_rot = d.site_xmat[self._tcp].reshape(3, 3).copy()
        return {
            "arm_qpos": d.qpos[self._arm_qadr].copy(),
            "tcp_pos": d.site_xpos[self._tcp] - base,
            "tcp_rot": tcp_rot,
            "tcp_quat": matrix_to_quat(tcp_rot),
            "gripper_opening": opening,
            "gripper_command_closed": bool(d.ctrl[self._grip_act] < 0.0),
            "bolt_pos": origin,
            "bolt_rot": bolt_rot,
            "bolt_quat": matrix_to_quat(bolt_rot),
            "bolt_axis": axis,
            "bolt_linvel": linvel,
            "bolt_angvel": angvel,
            "bolt_clearance": lowest,
            "gripper_touches_bolt": hand,
            "grasped": left and right,
            "robot_contact_force": max_normal_force(m, d, self._robot_geoms, self._scene_geoms),
            "slot_pos": slot_pos,
            "slot_depth": float(cross[0] - slot_pos[0]),
            "slot_lateral": float(cross[1] - slot_pos[1]),
            "head_top_in_slot": float(origin[2] + axis[2] * HEAD_HEIGHT - slot_pos[2]),
            "fixture_pos": m.body_pos[self._fixture] - base,
            "base_pos": base,
            "active_bolt": i,
            "n_bolts": self.n_bolts,
            "other_bolts": [d.xpos[self._bolts[k]] - base for k in range(self.n_bolts) if k != i],
            "task": self.task.name if self.task is not None else None,
        }

    def state_vector(self, ps: Mapping[str, Any] | None = None) -> np.ndarray:
        """The float32 ``state`` observation: the fields of :data:`STATE_LAYOUT`, concatenated."""
        ps = self._state() if ps is None else ps
        parts = [np.atleast_1d(np.asarray(ps[name], dtype=np.float64)) for name, _ in STATE_LAYOUT]
        return np.clip(np.concatenate(parts), -10.0, 10.0).astype(np.float32)

    def observe(self, *, pixels: bool, state: bool) -> dict[str, np.ndarray]:
        """Observation dict: ``gripper`` always, camera images when ``pixels``, ``state`` when asked."""
        self._check_open()
        obs: dict[str, np.ndarray] = {
            "gripper": np.array(
                [np.clip(self.gripper_opening() / MAX_OPENING, 0.0, 1.0)], dtype=np.float32
            )
        }
        if state:
            obs["state"] = self.state_vector()
        if pixels:
            obs["wrist_rgb"] = self._views.frame(self.data, "wrist", WRIST_SHAPE)
            obs["head_rgb"] = self._views.frame(self.data, "head", HEAD_SHAPE)
        return obs

    def task_status(self) -> TaskStatus:
        """Evaluate the active task's success predicate; a bolt off the table is a failure."""
        if self.task is None:
            raise BackendError("task_status() called before reset()")
        ps = self._state()
        success = SUCCESS_PREDICATES[self.task.name](ps)
        failed = bool(ps["bolt_pos"][2] < -0.05 or np.linalg.norm(ps["bolt_pos"][:2]) > 1.2)
        info = {
            "bolt_height": float(ps["bolt_pos"][2]),
            "bolt_clearance": float(ps["bolt_clearance"]),
            "bolt_tilt_deg": float(np.degrees(np.arccos(np.clip(ps["bolt_axis"][2], -1, 1)))),
            "grasped": bool(ps["grasped"]),
            "slot_depth": float(ps["slot_depth"]),
            "active_bolt": int(ps["active_bolt"]),
        }
        return TaskStatus(success=success, failed=failed, info=info)

    def render(self, camera: str = "head") -> np.ndarray:
        """An RGB frame from ``camera`` ('head' 256x256 or 'wrist' 128x128)."""
        self._check_open()
        if camera not in ("head", "wrist"):
            raise ConfigError(f"unknown camera {camera!r}; valid cameras are ['head', 'wrist']")
        return self._views.frame(self.data, camera, HEAD_SHAPE if camera == "head" else WRIST_SHAPE)

    def render_human(self) -> None:
        """Show the scene in MuJoCo's passive viewer (needs a display)."""
        self._views.show(self.data)

    def stop(self) -> None:
        """Hold the arm where it is: joint targets and the pose target become the measured ones.

        Between two :meth:`apply_action` calls the simulation does not advance, so nothing more
        is needed to halt it; the next action starts from the measured pose.
        """
        self.data.ctrl[self._arm_act] = self.data.qpos[self._arm_qadr]
        self._reanchor()

    def close(self) -> None:
        """Free renderers and the viewer. Safe to call twice."""
        self._views.close()
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("this MujocoBackend was closed; create a new env")


__all__ = [
    "ASSETS_DIR",
    "STATE_DIM",
    "STATE_LAYOUT",
    "MujocoBackend",
]
