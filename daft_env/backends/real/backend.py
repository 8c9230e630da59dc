"""``RealBackend``: a physical arm and two cameras behind the ``Backend`` seam (``-Real-v0`` ids).

``RealBackend`` drives any :class:`hardware.arm.Arm` (normally an :class:`~hardware.arm.ArmClient`
talking to ``daft arm-server`` on the robot PC) and two :class:`hardware.cameras.Camera` s (wrist
and head, centre-cropped and resized to 128x128 and 256x256). It owns no gym logic: the env turns
what it returns into observations, rewards and ``info``.

One step (:meth:`RealBackend.apply_action`), for a normalised action ``a`` in [-1, 1]^7:

    delta = (a[:6] * ACTION_SCALE)            # metres and radians, base frame (spaces.py)
    opening = (1 - a[6]) / 2                  # gripper opening fraction, > 0 closes
    safe = SafetyLayer.check(pose, delta)     # client side, against the last reported pose
    arm.move_delta(safe.delta, opening)       # the server clips again against the true pose
    sleep until one control period (0.1 s) has passed, then snapshot cameras + arm state.

Every limit that fired on either side is listed in the :class:`ActionReport` (the env copies it
to ``info["clip_reasons"]``). A lost server, a driver error, a camera that stops delivering
frames or a scene that is never confirmed does not raise out of ``step`` or ``reset``' callers
unnoticed: the backend records the fault, the step's :class:`TaskStatus` has ``failed=True`` and
``info["backend_error"]`` names the fault, so the env ends the episode (truncated) and an episode
recorder keeps it as a failed episode. The next ``step`` raises :class:`RealBackendFault`;
``reset`` reconnects.

Configuration: :mod:`daft_env.backends.real.config`; the scene reset and the success signal:
:mod:`daft_env.backends.real.cell`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from daft_env.backends.base import ActionReport, TaskStatus
from daft_env.backends.real.cell import (
    SCENE_RESETTERS,
    SUCCESS_SOURCES,
    RealBackendFault,
    SceneResetter,
    SharedKeySource,
    SuccessSource,
)
from daft_env.backends.real.config import HOW_TO_CONFIGURE, RealConfig, config_error
from daft_env.backends.real.tasks import cell_config
from daft_env.errors import BackendError, ConfigError
from daft_env.spaces import ACTION_SCALE, validate_action
from daft_env.tasks import TaskSpec
from hardware.arm import Arm, ArmClient, ArmState, gripper_action_to_opening
from hardware.arm.base import opening_to_gripper_action
from hardware.cameras import HEAD_SIZE, WRIST_SIZE, Camera, make_camera
from hardware.errors import CameraError, ConnectionLostError, HardwareError, SafetyError
from hardware.rotations import apply_delta, matrix_to_rotvec, rpy_to_matrix
from hardware.safety import SafetyLayer
from hardware.teleop.keyboard import KeySource, StdinKeySource

logger = logging.getLogger(__name__)


def _rotation_close(a: np.ndarray, b: np.ndarray) -> float:
    """Angle [rad] between the orientations of two (6,) poses."""
    return float(np.linalg.norm(matrix_to_rotvec(rpy_to_matrix(a[3:]) @ rpy_to_matrix(b[3:]).T)))


class RealBackend:
    """A physical arm and two cameras behind the :class:`~daft_env.backends.Backend` protocol.

    Args:
        config: a :class:`RealConfig`, a mapping of its fields, a config file path, or None
            (``DAFT_REAL_CONFIG`` and the other ``DAFT_*`` variables; see the module docstring).
        task: the task this backend runs (``BoltEnv`` passes its single task): a task of your
            own applies its settings over the cell's (:mod:`daft_env.backends.real.tasks`), and
            may come from the config's ``tasks:`` section. None: the cell's settings.
        arm: an :class:`~hardware.arm.Arm` to use instead of an ArmClient built from the config
            (the backend connects it and closes it).
        wrist_camera: a :class:`~hardware.cameras.Camera` instead of the configured one (its
            frames must be 128x128 RGB: set ``size=(128, 128)``), or a mapping overriding the
            ``wrist_camera`` config field.
        head_camera: the same for the head camera (256x256).
        scene_resetter: a :class:`SceneResetter` instead of the configured ``scene_reset``.
        success_source: a :class:`SuccessSource` instead of the configured ``success``.
        key_source: key source shared by the key-driven resetter and success source (default:
            this terminal).
        **overrides: :class:`RealConfig` fields (they win over file and environment).

    Raises:
        ConnectionLostError: no arm server answered within ``connect_timeout_s``; the message
            names the address and how to configure it.
        ConfigError: the configuration is invalid (the message names the field).
        UnknownTaskError: ``task`` is registered nowhere (before the arm is contacted).
        CameraError / DeviceNotFoundError: a camera could not be opened.
    """

    has_privileged_state = False

    def __init__(
        self,
        config: RealConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        task: str | None = None,
        arm: Arm | None = None,
        wrist_camera: Camera | Mapping[str, Any] | None = None,
        head_camera: Camera | Mapping[str, Any] | None = None,
        scene_resetter: SceneResetter | None = None,
        success_source: SuccessSource | None = None,
        key_source: KeySource | None = None,
        **overrides: Any,
    ) -> None:
        # A mapping given for a camera is its config (e.g. in gym.make's backend_kwargs).
        if isinstance(wrist_camera, Mapping):
            overrides["wrist_camera"], wrist_camera = dict(wrist_camera), None
        if isinstance(head_camera, Mapping):
            overrides["head_camera"], head_camera = dict(head_camera), None
        self.config = cell_config(config, task, **overrides)
        cfg = self.config
        self.period_s = 1.0 / cfg.control_hz
        self.task: TaskSpec | None = None
        self.active_bolt: int | None = None
        self.fault: str | None = None
        self.fault_type: str | None = None
        self._closed = False
        self._state: ArmState | None = None
        self._frames: dict[str, np.ndarray] = {}
        self._frame_times: dict[str, float] = {}
        self.cameras: dict[str, Camera] = {}
        self._key_source = key_source
        self._shared_key_source: SharedKeySource | None = None
        if arm is None and cfg.arm_token is None:
            raise ConfigError(
                f"no token configured for the arm server at {cfg.address}. Start the server with "
                f"`daft arm-server --driver xarm --port {cfg.arm_port} --token TOKEN` and give "
                f"the client the same TOKEN (DAFT_ARM_TOKEN or arm_token). {HOW_TO_CONFIGURE}"
            )
        self.arm: Arm = arm if arm is not None else self._make_client()
        try:
            self._connect_arm()
            self.scene_resetter = scene_resetter or self._make_scene_resetter()
            self.success_source = success_source or self._make_success_source()
            for key, given, name, size in (
                ("wrist_rgb", wrist_camera, "wrist", WRIST_SIZE),
                ("head_rgb", head_camera, "head", HEAD_SIZE),
            ):
                camera = given or self._make_camera(name, size)
                self.cameras[key] = camera  # registered first, so close() releases it on failure
                camera.connect()
        except BaseException:
            self.close()
            raise
        user_limits = cfg.limits()
        self.safety = SafetyLayer(
            user_limits if user_limits is not None else self.arm.default_limits()
        )

    # -- construction helpers --------------------------------------------------------------------

    def _make_client(self) -> ArmClient:
        cfg = self.config
        return ArmClient(
            host=cfg.arm_host,
            port=cfg.arm_port,
            token=cfg.arm_token,
            timeout_s=cfg.arm_timeout_s,
            connect_timeout_s=cfg.connect_timeout_s,
            home_timeout_s=cfg.home_timeout_s,
            heartbeat_interval_s=cfg.heartbeat_interval_s,
            limits=cfg.limits(),
        )

    def _connect_arm(self) -> None:
        try:
            self.arm.connect()
        except ConnectionLostError as exc:
            if not isinstance(self.arm, ArmClient):
                raise
            raise ConnectionLostError(
                f"cannot reach the arm server at {self.arm.address} (tried for "
                f"{self.config.connect_timeout_s:.1f} s). Start it on the robot PC with "
                f"`daft arm-server --driver xarm --port {self.arm.port} --token TOKEN` (or "
                f"--driver mujoco for the simulated arm) and check host, port and firewall. "
                f"{HOW_TO_CONFIGURE}"
            ) from exc
        self._state = self.arm.state()

    def _shared_keys(self) -> KeySource:
        if self._shared_key_source is None:
            self._shared_key_source = SharedKeySource(self._key_source or StdinKeySource())
        return self._shared_key_source

    def _make_scene_resetter(self) -> SceneResetter:
        return SCENE_RESETTERS.make(
            self.config.scene_reset, config=self.config, keys=self._shared_keys
        )

    def _make_success_source(self) -> SuccessSource:
        return SUCCESS_SOURCES.make(self.config.success, config=self.config, keys=self._shared_keys)

    def _make_camera(self, name: str, size: tuple[int, int]) -> Camera:
        spec = dict(getattr(self.config, f"{name}_camera"))
        driver = spec.pop("driver")
        spec["size"] = size
        spec.setdefault("name", name)
        spec.setdefault("max_age_s", self.config.camera_max_age_s)
        try:
            return make_camera(driver, **spec)
        except ConfigError as exc:
            raise config_error(f"{name}_camera", str(exc), "fix the camera options") from exc

    # -- faults ----------------------------------------------------------------------------------

    def _record_fault(self, exc: BaseException, stop_arm: bool) -> None:
        self.fault = f"{type(exc).__name__}: {exc}"
        self.fault_type = type(exc).__name__
        logger.error("real backend fault, ending the episode as failed: %s", self.fault)
        if stop_arm:
            try:
                self.arm.stop()
            except Exception:  # the arm may be what failed; the server's watchdog stops it too
                logger.warning("could not stop the arm after the fault", exc_info=True)

    def _check_fault(self) -> None:
        if self.fault is not None:
            raise RealBackendFault(
                f"the real backend stopped after a fault ({self.fault}); the episode ended as "
                "failed. Fix the cause, then call env.reset() to reconnect."
            )

    def stop(self) -> None:
        """Stop the arm now (the emergency-stop hook); never raises.

        A stop that cannot reach the arm (the server is gone) is logged, not raised: the server's
        heartbeat watchdog stops an arm whose client fell silent.
        """
        try:
            self.arm.stop()
        except Exception:
            logger.error("could not stop the arm; the server's watchdog stops it", exc_info=True)

    # -- observation snapshot ------------------------------------------------------------------

    def _snapshot(self) -> None:
        """Read every camera's newest frame (the observation of the step just taken)."""
        for key, camera in self.cameras.items():
            frame, ts = camera.read_latest(self.config.camera_max_age_s)
            self._frames[key], self._frame_times[key] = frame, ts

    # -- Backend protocol ------------------------------------------------------------------------

    def reset(
        self, task: TaskSpec, rng: np.random.Generator, options: Mapping[str, Any] | None = None
    ) -> None:
        """Move to a randomised start around the reset pose, then wait for the scene.

        The start pose is ``apply_delta(reset_pose, u)`` with ``u`` uniform in
        ``[-noise, noise]`` per axis, reached through the safety layer one control period at a
        time. The noise is drawn from a generator spawned from ``rng`` (so ``rng`` itself is left
        for the scene resetter, see :class:`~daft_env.backends.real.cell.CallableSceneResetter`).

        Raises:
            RealBackendFault: the arm, a camera or the scene reset failed (a driver error, a lost
                server, nobody confirming the scene in time). The fault is recorded first: the
                next :meth:`apply_action` refuses, :meth:`task_status` names it, and the next
                reset reconnects.
        """
        self._check_open()
        if self.fault is not None:
            self._recover()
        self.task = task
        try:
            self._move_to_start(rng)
            self.scene_resetter.arrange(task, rng, options)
            self._state = self.arm.state()
            self.success_source.reset(task)
            self._snapshot()
        except (HardwareError, SafetyError, RealBackendFault) as exc:
            # Recorded, so that a step on the unprepared scene refuses and the next reset
            # reconnects; a scene that was never confirmed is a fault of the cell, not a crash.
            self._record_fault(exc, stop_arm=not isinstance(exc, ConnectionLostError))
            raise RealBackendFault(f"reset failed: {self.fault}") from exc

    def _recover(self) -> None:
        logger.info("reconnecting after the fault: %s", self.fault)
        self.fault = self.fault_type = None
        try:
            if isinstance(self.arm, ArmClient):
                self.arm.close()
            self._connect_arm()
            for camera in self.cameras.values():
                try:
                    camera.read_latest(self.config.camera_max_age_s)
                except CameraError:
                    # A stalled stream that came back delivers within a frame period; a camera
                    # that went away is reopened (which raises, naming it, if it is still gone).
                    if not camera.wait_for_frame(camera.frame_count, timeout_s=1.0):
                        camera.close()
                        camera.connect()
        except (HardwareError, SafetyError) as exc:
            self._record_fault(exc, stop_arm=False)
            raise RealBackendFault(f"could not recover from the fault: {self.fault}") from exc

    def _move_to_start(self, rng: np.random.Generator) -> None:
        cfg = self.config
        if cfg.reset_pose is None:
            base = self.arm.home().ee_pose
        else:
            base = np.asarray(cfg.reset_pose, dtype=np.float64)
        noise = np.r_[np.full(3, cfg.reset_position_noise), np.full(3, cfg.reset_rotation_noise)]
        if np.any(noise > 0):
            spawn = getattr(rng, "spawn", None)
            try:
                start_rng = spawn(1)[0] if spawn is not None else rng
            except (TypeError, ValueError):  # a generator without a seed sequence
                start_rng = rng
            offset = start_rng.uniform(-noise, noise)
        else:
            offset = np.zeros(6)
        target, _ = self.safety.clip_to_box(apply_delta(base, offset))
        if cfg.reset_pose is None and not np.any(offset):
            self._state = self.arm.state()
            return
        for _ in range(cfg.reset_max_steps):
            pose = self.arm.state().ee_pose
            if (
                np.linalg.norm(pose[:3] - target[:3]) <= cfg.reset_tolerance_m
                and _rotation_close(pose, target) <= 0.02
            ):
                break
            safe, _ = self.safety.check(pose, target_pose=target, gripper=1.0)
            self.arm.move_to(safe.target_pose, safe.gripper)
            if cfg.realtime:
                time.sleep(self.period_s)
        else:
            logger.warning(
                "the arm did not reach the start pose %s within %d steps",
                np.round(target, 3).tolist(),
                cfg.reset_max_steps,
            )
        self._state = self.arm.state()

    def set_active_bolt(self, index: int) -> None:
        """Make bolt ``index`` of a long-horizon chain the current subject.

        Nothing moves: on a real cell the operator (or the classifier) judges the bolt in front
        of the camera. The index is reported as ``info["active_bolt"]`` so the operator's
        display and a stored episode say which bolt a verdict was about.
        """
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise ConfigError(f"bolt index must be an int >= 0; got {index!r}")
        self.active_bolt = int(index)

    def set_task(self, task: TaskSpec) -> None:
        """Switch the subtask (long-horizon chains); the success source starts over."""
        self.task = task
        self.success_source.reset(task)

    def apply_action(self, action: np.ndarray) -> ActionReport:
        """Send one normalised action for one control period (see the module docstring).

        An arm or camera fault mid-episode does not raise here: it ends the episode (see
        :meth:`task_status`).

        Raises:
            RealBackendFault: a previous step faulted and the env was not reset.
            InvalidActionError: wrong shape, NaN or infinity (nothing is sent).
        """
        self._check_open()
        self._check_fault()
        act = validate_action(action)
        reasons: list[str] = []
        if np.any(np.abs(act) > 1.0):
            reasons.append("action_range")
            act = np.clip(act, -1.0, 1.0)
        t0 = time.monotonic()
        delta = act[:6] * ACTION_SCALE
        opening = gripper_action_to_opening(act[6])
        applied = act.copy()
        try:
            current = self._state.ee_pose if self._state is not None else self.arm.state().ee_pose
            safe, clips = self.safety.check(current, delta=delta, gripper=opening)
            result = self.arm.move_delta(safe.delta, safe.gripper)
            for clip in (*clips, *result.clips):
                if clip not in reasons:
                    reasons.append(clip)
            applied[:6] = np.asarray(result.delta, dtype=np.float64) / ACTION_SCALE
            if result.gripper is not None:
                applied[6] = opening_to_gripper_action(result.gripper)
            if self.config.realtime:
                remaining = self.period_s - (time.monotonic() - t0)
                if remaining > 0:
                    time.sleep(remaining)
            # The state after the period, not the one the server returned mid-motion.
            self._state = (
                result.state
                if (result.state is not None and not self.config.realtime)
                else self.arm.state()
            )
            self._snapshot()
        except (HardwareError, SafetyError) as exc:
            self._record_fault(exc, stop_arm=not isinstance(exc, ConnectionLostError))
            reasons.append("backend_error")
        return ActionReport(
            applied=applied.astype(np.float64),
            clipped=bool(reasons),
            clip_reasons=tuple(reasons),
        )

    def observe(self, *, pixels: bool, state: bool) -> dict[str, np.ndarray]:
        """The step's snapshot: ``gripper`` (opening fraction) and, with ``pixels``, the frames.

        After a fault it returns the last good snapshot, so the failed episode stays recordable.
        """
        self._check_open()
        if state:
            raise ConfigError(
                "the real arm has no privileged state; use obs_mode='pixels' with -Real-v0 envs"
            )
        if self._state is None:
            self._state = self.arm.state()
        obs: dict[str, np.ndarray] = {
            "gripper": np.array([np.clip(self._state.gripper, 0.0, 1.0)], dtype=np.float32)
        }
        if pixels:
            if not self._frames and self.fault is None:
                self._snapshot()
            for key in ("wrist_rgb", "head_rgb"):
                # A copy: a fast loop may see the same camera frame twice, and callers keep obs.
                obs[key] = self._frames[key].copy()
        return obs

    def task_status(self) -> TaskStatus:
        """The success source's verdict; a fault is ``failed`` with ``info["backend_error"]``."""
        if self.task is None:
            raise BackendError("task_status() called before reset()")
        if self.fault is not None:
            return TaskStatus(
                success=False,
                failed=True,
                info={"backend_error": self.fault, "backend_error_type": self.fault_type},
            )
        status = self.success_source.status(self.task, self._frames)
        info = dict(status.info)
        if self.active_bolt is not None:
            info["active_bolt"] = self.active_bolt
        if self._state is not None:
            info["ee_pose"] = self._state.ee_pose.copy()
        return TaskStatus(success=status.success, failed=status.failed, info=info)

    def privileged_state(self) -> dict[str, Any]:
        """Never available on a real arm: nothing measures the bolt's pose.

        Raises:
            BackendError: always, naming what to use instead.
        """
        raise BackendError(
            "the real arm has no privileged state (nothing measures the bolt's pose); scripted "
            "experts and the simulated operator need a -Sim-v0 env, or a served MujocoArm's "
            "privileged_state()"
        )

    def render_human(self) -> None:
        """There is no viewer of a real cell.

        Raises:
            BackendError: always; use ``render_mode='rgb_array'`` for the head camera's frames.
        """
        raise BackendError(
            "the real arm has no interactive viewer; use render_mode='rgb_array' (the head "
            "camera's frame)"
        )

    def render(self, camera: str = "head") -> np.ndarray:
        """The latest frame of the ``head`` (256x256) or ``wrist`` (128x128) camera."""
        key = {"head": "head_rgb", "wrist": "wrist_rgb"}.get(camera)
        if key is None:
            raise ConfigError(f"unknown camera {camera!r}; valid cameras are ['head', 'wrist']")
        if key in self._frames:
            return self._frames[key]
        return self.cameras[key].read_latest()[0]

    def close(self) -> None:
        """Stop heartbeats and release the cameras, the operator devices and the arm link."""
        if self._closed:
            return
        self._closed = True
        for camera in self.cameras.values():
            try:
                camera.close()
            except Exception:
                logger.debug("camera close failed", exc_info=True)
        for part in ("scene_resetter", "success_source"):
            obj = getattr(self, part, None)
            if obj is not None:
                try:
                    obj.close()
                except Exception:
                    logger.debug("%s close failed", part, exc_info=True)
        try:
            self.arm.close()
        except Exception:
            logger.debug("arm close failed", exc_info=True)

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("this RealBackend was closed; create a new env")


__all__ = ["RealBackend"]
