"""``MujocoArm``: the simulated bolt world as a :class:`hardware.arm.Arm` driver.

The same :class:`~hardware.arm.ArmServer` that serves a vendor arm on the robot PC can serve the
simulation, so the whole real-arm path (client, server, safety on both sides, heartbeat, the
``-Real-v0`` env) runs against MuJoCo over a real socket::

    daft arm-server --driver mujoco --task pickup --port 5560 --token "$DAFT_ARM_TOKEN"

It composes :class:`~daft_env.backends.mujoco.MujocoBackend`. A pose command is turned into the
backend's normalised action for one 0.1 s control period:

    a_xyz = (p_target - p) / s_p,      a_rot = rotvec(R(target) R^T) / s_r,

each 3-vector scaled down as a whole when its largest entry exceeds 1 (so direction is kept), with
``s`` = :data:`daft_env.spaces.ACTION_SCALE`. A delta ``(dx, dy, dz, droll, dpitch, dyaw)`` is
the same with ``R(target) = R(droll, dpitch, dyaw) R`` (:func:`hardware.rotations.apply_delta`).
The gripper opening fraction ``o`` maps to the env convention ``g = 1 - 2 o`` (> 0 closes).

Units on the wire are the hardware's: metres, radians, gripper opening in [0, 1]. Poses are the
tool centre point in the robot base frame, rpy as in :mod:`hardware.rotations`.

It also stands in for the operator in tests: :meth:`MujocoArm.arrange_scene` lays out a task's
scene exactly as the ``-Sim-v0`` env does for the same generator, :meth:`MujocoArm.task_status`
is the sim's success predicate (the operator's success key), and
:meth:`MujocoArm.privileged_state` is what a person watching the robot would know, for scripted
experts acting through the real env. :class:`MujocoCamera` renders the scene's head or wrist
camera behind the hardware ``Camera`` seam (registered as the ``"mujoco"`` camera), so a learned
success classifier can be run through the real env on simulated frames.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from daft_env.backends.base import TaskStatus
from daft_env.backends.mujoco import (
    HOME_TCP,
    HOME_YAW,
    MAX_OPENING,
    R_TOPDOWN,
    WORKSPACE,
    MujocoBackend,
)
from daft_env.env import SCENES
from daft_env.errors import ConfigError
from daft_env.spaces import ACTION_SCALE, HEAD_SHAPE, WRIST_SHAPE
from daft_env.tasks import TaskSpec, get_task
from hardware.arm import Arm, ArmState, MotionResult, register_arm
from hardware.cameras import Camera, register_camera
from hardware.errors import HardwareError
from hardware.rotations import (
    apply_delta,
    matrix_to_rotvec,
    matrix_to_rpy,
    pose_delta,
    rotvec_to_matrix,
    rpy_to_matrix,
)
from hardware.safety import SafetyLimits


@dataclass
class MujocoArmConfig:
    """Configuration of :class:`MujocoArm`.

    Attributes:
        task: the task whose scene is loaded (``upright``, ``pickup``, ``assemble``, ``multi``
            or ``long_horizon``; see ``daft_env.env.SCENES``).
        seed: seed of the scene laid out at :meth:`MujocoArm.connect`.
        randomize: randomise object and base positions (as the ``-Sim-v0`` envs do).
        realtime: make each motion command take one wall-clock control period, like a real arm.
        home_steps: control periods :meth:`MujocoArm.home` may take to reach the home pose.
        limits: safety limits the server enforces; None: the simulation's workspace box.
    """

    task: str = "pickup"
    seed: int | None = 0
    randomize: bool = True
    realtime: bool = False
    home_steps: int = 60
    limits: SafetyLimits | None = None

    def __post_init__(self) -> None:
        if self.task not in SCENES:
            raise ConfigError(f"unknown task {self.task!r} for MujocoArm; valid: {sorted(SCENES)}")
        if isinstance(self.home_steps, bool) or int(self.home_steps) < 1:
            raise ConfigError(f"home_steps must be >= 1; got {self.home_steps}")
        if self.limits is not None and not isinstance(self.limits, SafetyLimits):
            raise ConfigError(f"limits must be a SafetyLimits; got {type(self.limits).__name__}")


def _limit_vector(v: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(v)))
    return v / peak if peak > 1.0 else v


class MujocoArm(Arm):
    """The simulated 7-DoF arm of the bolt world, served like a real one.

    The simulation only advances inside motion commands (one control period each), so between
    commands the arm is already still: :meth:`stop` records the stop and cancels a :meth:`home`
    in progress. All calls are serialised by one lock, so a test may read
    :meth:`privileged_state` while a server thread serves a client.
    """

    name = "mujoco"

    def __init__(self, config: MujocoArmConfig | None = None) -> None:
        self.config = config or MujocoArmConfig()
        self.backend: MujocoBackend | None = None
        self._lock = threading.RLock()
        self._stop_requested = threading.Event()
        self._grip_closed = False
        #: How many times :meth:`stop` was called (the watchdog tests read it).
        self.stop_count = 0
        self.stop_event = threading.Event()
        #: Motion commands executed.
        self.n_moves = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def connect(self) -> None:
        """Load the scene and lay it out for ``config.task`` with ``config.seed``."""
        with self._lock:
            if self.backend is not None:
                return
            self.backend = MujocoBackend(
                scene=SCENES[self.config.task], randomize=self.config.randomize
            )
            task = "upright" if self.config.task in ("multi", "long_horizon") else self.config.task
            self.backend.reset(get_task(task), np.random.default_rng(self.config.seed))
            self._grip_closed = bool(self.backend.privileged_state()["gripper_command_closed"])

    def close(self) -> None:
        """Free the simulation. Safe to call twice."""
        with self._lock:
            if self.backend is not None:
                self.backend.close()
                self.backend = None

    def _sim(self) -> MujocoBackend:
        if self.backend is None:
            raise HardwareError("MujocoArm is not connected; call connect() first")
        return self.backend

    # -- Arm API ---------------------------------------------------------------------------------

    def state(self) -> ArmState:
        """TCP pose in the base frame, joint angles and gripper opening fraction."""
        with self._lock:
            ps = self._sim().privileged_state()
            return ArmState(
                joint_positions=ps["arm_qpos"],
                ee_pose=np.r_[ps["tcp_pos"], matrix_to_rpy(ps["tcp_rot"])],
                gripper=float(np.clip(ps["gripper_opening"] / MAX_OPENING, 0.0, 1.0)),
                timestamp=time.time(),
            )

    def _step(self, target: np.ndarray, gripper: float | None) -> MotionResult:
        """One control period towards ``target`` (6,) [m, rad] (module docstring)."""
        t0 = time.monotonic()
        with self._lock:
            sim = self._sim()
            ps = sim.privileged_state()
            current = np.r_[ps["tcp_pos"], matrix_to_rpy(ps["tcp_rot"])]
            action = np.zeros(7)
            action[:3] = _limit_vector((target[:3] - current[:3]) / ACTION_SCALE[:3])
            rot_err = matrix_to_rotvec(rpy_to_matrix(target[3:]) @ ps["tcp_rot"].T)
            action[3:6] = _limit_vector(rot_err / ACTION_SCALE[3:])
            if gripper is not None:
                self._grip_closed = float(gripper) < 0.5
            action[6] = 1.0 if self._grip_closed else -1.0
            report = sim.apply_action(action)
            self.n_moves += 1
            # What was commanded after the [-1, 1] limit, as a pose (MotionResult's contract).
            rot_step = matrix_to_rpy(rotvec_to_matrix(action[3:6] * ACTION_SCALE[3:]))
            commanded = apply_delta(current, np.r_[action[:3] * ACTION_SCALE[:3], rot_step])
            clips = tuple(f"sim_{r}" for r in report.clip_reasons)
            state = self.state()
        if self.config.realtime:
            remaining = self.control_period_s - (time.monotonic() - t0)
            if remaining > 0:
                time.sleep(remaining)
        opening = None if gripper is None else float(gripper)
        return MotionResult(commanded, pose_delta(current, commanded), opening, clips, state)

    def move_to(self, pose: np.ndarray, gripper: float | None = None) -> MotionResult:
        """Move towards ``pose`` for one control period (at most one action's worth)."""
        return self._step(np.asarray(pose, dtype=np.float64), gripper)

    def move_delta(self, delta: np.ndarray, gripper: float | None = None) -> MotionResult:
        """Move by ``delta`` (6,) [m, rad] for one control period."""
        with self._lock:
            current = self.state().ee_pose
            return self._step(apply_delta(current, np.asarray(delta, dtype=np.float64)), gripper)

    def set_gripper(self, opening: float) -> None:
        """Command the gripper and let it act for one control period (the arm holds still)."""
        with self._lock:
            self._step(self.state().ee_pose, float(opening))

    def home_pose(self) -> np.ndarray:
        """The home TCP pose (6,) in the base frame: pointing down, fingers closing along x."""
        return np.r_[HOME_TCP, matrix_to_rpy(rpy_to_matrix([0.0, 0.0, HOME_YAW]) @ R_TOPDOWN)]

    def home(self) -> ArmState:
        """Drive to the home pose with the gripper open (at most ``config.home_steps`` periods)."""
        self._stop_requested.clear()
        target = self.home_pose()
        for _ in range(self.config.home_steps):
            if self._stop_requested.is_set():
                break
            state = self.state()
            rot_err = matrix_to_rotvec(
                rpy_to_matrix(target[3:]) @ rpy_to_matrix(state.ee_pose[3:]).T
            )
            if (
                np.linalg.norm(state.ee_pose[:3] - target[:3]) < 0.003
                and np.linalg.norm(rot_err) < 0.02
                and state.gripper > 0.95  # like a real arm, home finishes opening the gripper
            ):
                break
            self._step(target, 1.0)
        return self.state()

    def stop(self) -> None:
        """Record the stop and cancel a :meth:`home` in progress (callable from any thread)."""
        self._stop_requested.set()
        self.stop_count += 1
        self.stop_event.set()

    def default_limits(self) -> SafetyLimits:
        """The simulation's workspace box (base frame) with step limits above one action's size."""
        if self.config.limits is not None:
            return self.config.limits
        return SafetyLimits(
            position_low=tuple(WORKSPACE[:, 0]),
            position_high=tuple(WORKSPACE[:, 1]),
            max_translation_step=tuple(1.5 * ACTION_SCALE[:3]),
            max_rotation_step=float(1.5 * np.linalg.norm(ACTION_SCALE[3:])),
        )

    # -- the operator's stand-ins (tests) ------------------------------------------------------

    def arrange_scene(
        self,
        task: TaskSpec | str,
        rng: np.random.Generator | int | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Lay out a fresh scene for ``task``, as the ``-Sim-v0`` env does for the same ``rng``.

        This is the simulated operator rearranging the scene; like
        :meth:`MujocoBackend.reset` it also puts the arm back at its home posture (or, for
        ``assemble``, holding the bolt).
        """
        spec = get_task(task) if not isinstance(task, TaskSpec) else task
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        with self._lock:
            sim = self._sim()
            sim.reset(spec, gen, options)
            sim.set_task(spec)
            self._grip_closed = bool(sim.privileged_state()["gripper_command_closed"])

    def task_status(self) -> TaskStatus:
        """The active task's success predicate on the simulated physics (the operator's key)."""
        with self._lock:
            return self._sim().task_status()

    def task_success(self) -> bool:
        """Whether the active task's success predicate holds now."""
        return self.task_status().success

    def privileged_state(self) -> dict[str, Any]:
        """The simulator's physical state (what a person watching the cell would know)."""
        with self._lock:
            return self._sim().privileged_state()

    def render(self, camera: str = "head") -> np.ndarray:
        """A rendered frame of the simulated ``head`` or ``wrist`` camera."""
        with self._lock:
            return self._sim().render(camera)


@dataclass
class MujocoCameraConfig:
    """Configuration of :class:`MujocoCamera`.

    Attributes:
        arm: the (connected) :class:`MujocoArm` whose scene is filmed.
        camera: the MJCF camera, ``"head"`` or ``"wrist"``.
        name: label for messages.
        fps: frames rendered per second.
        size: (height, width) after centre-crop and resize; None keeps the render size (the
            env's 256x256 head / 128x128 wrist).
        max_age_s: frames older than this are stale [s].
    """

    arm: MujocoArm | None = None
    camera: str = "head"
    name: str = "head"
    fps: float = 30.0
    size: tuple[int, int] | None = None
    max_age_s: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.arm, MujocoArm):
            raise ConfigError("MujocoCamera needs arm=<a MujocoArm> whose scene it renders")
        if self.camera not in ("head", "wrist"):
            raise ConfigError(f"unknown MuJoCo camera {self.camera!r}; use 'head' or 'wrist'")
        if not self.fps > 0:
            raise ConfigError(f"fps must be > 0; got {self.fps}")


class MujocoCamera(Camera):
    """A rendered camera of a :class:`MujocoArm`'s scene behind the hardware ``Camera`` seam.

    Frames are rendered in the camera's own reader thread, which owns its OpenGL context; only
    copying the physics state into the scene (``update_scene``) holds the arm's lock, so rendering
    never stalls the arm server.
    """

    def __init__(self, config: MujocoCameraConfig) -> None:
        self.config = config
        super().__init__(name=config.name, max_age_s=config.max_age_s, size=config.size)
        self._renderer: Any = None  # a mujoco.Renderer, made in the reader thread

    @property
    def device(self) -> str:
        """``mujoco:<camera>``."""
        return f"mujoco:{self.config.camera}"

    def _open(self) -> None:
        assert self.config.arm is not None  # the config checked it
        self.config.arm._sim()  # raises HardwareError when the arm is not connected

    def _grab(self) -> np.ndarray | None:
        if self._stop.wait(1.0 / self.config.fps):
            self._free_renderer()  # here, in the thread whose GL context it is
            return None
        arm = self.config.arm
        assert arm is not None
        shape = HEAD_SHAPE if self.config.camera == "head" else WRIST_SHAPE
        with arm._lock:
            sim = arm._sim()
            if self._renderer is None:  # created here, in the thread that renders
                # mujoco is imported by the backend module, after it chose a headless GL.
                import mujoco

                self._renderer = mujoco.Renderer(sim.model, shape[0], shape[1])
            self._renderer.update_scene(sim.data, camera=self.config.camera)
        return self._renderer.render().copy()

    def _end_of_stream(self) -> bool:
        return self._stop.is_set()

    def _free_renderer(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def _release(self) -> None:
        # The reader thread frees its renderer on the way out; a context still current in
        # another thread cannot be freed from this one (EGL_BAD_ACCESS), so only a renderer
        # whose thread never ran is left to free here.
        thread_done = self._thread is None or not self._thread.is_alive()
        if thread_done and self._renderer is not None:
            try:
                self._free_renderer()
            except Exception:  # the reader thread died while its context was current
                self._renderer = None


register_arm("mujoco", MujocoArm, MujocoArmConfig, overwrite=True)
register_camera("mujoco", MujocoCamera, MujocoCameraConfig, overwrite=True)

__all__ = ["MujocoArm", "MujocoArmConfig", "MujocoCamera", "MujocoCameraConfig"]
