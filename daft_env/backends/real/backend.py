"""The real-arm backend: ``gym.make("BoltUpright-Real-v0")`` on a robot, behind the ``Backend`` seam.

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
to ``info["clip_reasons"]``). A lost server, a driver error or a camera that stops delivering
frames does not raise out of ``step``: the backend records the fault, the step's
:class:`TaskStatus` has ``failed=True`` and ``info["backend_error"]`` names the fault, so the env
ends the episode and an episode recorder keeps it as a failed episode. The next ``step`` raises
:class:`RealBackendFault`; ``reset`` reconnects.

Configuration (:class:`RealConfig`): a YAML, TOML or JSON file, environment variables, and keyword
arguments, later ones overriding earlier ones: defaults < file < environment < keywords.

=====================  =====================================================================
variable               meaning
=====================  =====================================================================
``DAFT_REAL_CONFIG``   path of a config file (YAML ``.yaml``/``.yml``, ``.toml`` or ``.json``)
``DAFT_ARM_ADDRESS``   arm server as ``host:port`` or ``tcp://host:port``
``DAFT_ARM_HOST``      arm server host (overrides the host of ``DAFT_ARM_ADDRESS``)
``DAFT_ARM_PORT``      arm server port
``DAFT_ARM_TOKEN``     shared token the server was started with (keep it out of files)
``DAFT_WRIST_CAMERA``  OpenCV source of the wrist camera: index, ``/dev/videoN`` or a video file
``DAFT_HEAD_CAMERA``   OpenCV source of the head camera
``DAFT_SCENE_RESET``   ``key``, ``timer:SECONDS`` or ``none``
``DAFT_SUCCESS``       ``key``, ``classifier:PATH`` or ``none``
``DAFT_REALTIME``      ``1`` (default) keeps 10 Hz; ``0`` runs as fast as the arm answers
=====================  =====================================================================

Example file (``real.yaml``)::

    arm_address: 192.168.1.20:5560
    wrist_camera: {driver: opencv, source: 0}
    head_camera: {driver: realsense, serial: "123456789"}
    workspace: {position_low: [0.25, -0.3, 0.01], position_high: [0.7, 0.3, 0.4]}
    reset_pose: [0.45, 0.0, 0.20, 3.14159, 0.0, 0.0]
    reset_position_noise: 0.02
    scene_reset: key
    success: classifier
    classifier_path: models/pickup_success.pt
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from daft_env.backends.base import ActionReport, TaskStatus
from daft_env.errors import BackendError, ConfigError
from daft_env.spaces import ACTION_SCALE, CONTROL_HZ, validate_action
from daft_env.tasks import TaskSpec
from hardware.arm import Arm, ArmClient, ArmState, gripper_action_to_opening
from hardware.arm.base import opening_to_gripper_action
from hardware.arm.protocol import DEFAULT_HOST, DEFAULT_PORT
from hardware.cameras import HEAD_SIZE, WRIST_SIZE, Camera, camera_names, make_camera
from hardware.errors import (
    CameraError,
    ConnectionLostError,
    DeviceNotFoundError,
    HardwareError,
    SafetyError,
)
from hardware.rotations import apply_delta, matrix_to_rotvec, rpy_to_matrix
from hardware.safety import SafetyLayer, SafetyLimits
from hardware.teleop.keyboard import KeySource, StdinKeySource

logger = logging.getLogger(__name__)

#: Environment variables read by :meth:`RealConfig.resolve` (name -> what it sets).
ENV_VARS: dict[str, str] = {
    "DAFT_REAL_CONFIG": "path of a YAML/TOML/JSON config file",
    "DAFT_ARM_ADDRESS": "arm server address, host:port or tcp://host:port",
    "DAFT_ARM_HOST": "arm server host",
    "DAFT_ARM_PORT": "arm server port",
    "DAFT_ARM_TOKEN": "shared token of the arm server",
    "DAFT_WRIST_CAMERA": "OpenCV source of the wrist camera (index, /dev path or video file)",
    "DAFT_HEAD_CAMERA": "OpenCV source of the head camera",
    "DAFT_SCENE_RESET": "key | timer:SECONDS | none",
    "DAFT_SUCCESS": "key | classifier:PATH | none",
    "DAFT_REALTIME": "1 keeps the 10 Hz control period, 0 runs as fast as the arm answers",
}
SCENE_RESET_MODES = ("key", "timer", "none")
SUCCESS_MODES = ("key", "classifier", "none")
DEFAULT_CLASSIFIER_LOADER = "daft_agent.reward_classifier:load_success_classifier"
_HOW_TO_CONFIGURE = (
    "Configure the real arm with environment variables (DAFT_ARM_ADDRESS=host:port, "
    "DAFT_ARM_TOKEN=...) or a config file (DAFT_REAL_CONFIG=real.yaml, or "
    "gym.make(..., backend_kwargs={'config': 'real.yaml'})); see daft_env.backends.real."
)


class RealBackendFault(BackendError):
    """The arm, its server or a camera failed during an episode; reset the env to reconnect."""


# ----------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------


def _config_error(name: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"real-arm config field {name!r}: {problem}. Fix: {fix}")


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"``, ``"tcp://host:port"`` or ``"[::1]:port"`` -> ``(host, port)``."""
    text = str(address).strip()
    if text.startswith("tcp://"):
        text = text[len("tcp://") :]
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise _config_error(
            "arm_address",
            f"{address!r} is not host:port",
            "write it as 192.168.1.20:5560 or tcp://192.168.1.20:5560",
        )
    return host, int(port_text)


def _camera_from_text(text: str) -> dict[str, Any]:
    text = text.strip()
    return {"driver": "opencv", "source": int(text) if text.isdigit() else text}


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _config_error(name, f"{value!r} is not a boolean", "use true/false (or 1/0)")


@dataclass
class RealConfig:
    """Everything :class:`RealBackend` needs to know about one robot cell.

    Attributes:
        arm_host: arm server host (``daft arm-server`` on the robot PC).
        arm_port: arm server port.
        arm_token: the server's shared token; prefer ``DAFT_ARM_TOKEN`` to writing it in a file.
        arm_timeout_s: reply deadline of one request [s]; a dead server is reported this fast.
        connect_timeout_s: how long opening the env keeps trying to reach the server [s].
        home_timeout_s: reply deadline of the (slow) home move [s].
        heartbeat_interval_s: client heartbeat period [s]; keep it under the server's deadline.
        wrist_camera: ``{"driver": name, **options}`` for :func:`hardware.cameras.make_camera`;
            the output size is forced to 128x128.
        head_camera: the same for the head camera (256x256).
        camera_max_age_s: a frame older than this counts as stale [s] (every camera, given ones
            included).
        workspace: :class:`~hardware.safety.SafetyLimits` fields for the client-side safety box;
            None uses the server's limits.
        reset_pose: (6,) start pose [m, rad] around which resets randomise; None: the arm's home.
        reset_position_noise: half-width of the uniform offset of the start position [m].
        reset_rotation_noise: half-width of the uniform roll/pitch/yaw offset of the start [rad].
        reset_max_steps: control periods allowed for reaching the start pose.
        reset_tolerance_m: position tolerance of the start pose [m].
        scene_reset: who arranges the scene after the arm reached its start: ``"key"`` (the
            operator presses Enter), ``"timer"`` (wait ``scene_reset_timer_s``) or ``"none"``.
        scene_reset_timer_s: seconds the timer waits.
        scene_reset_timeout_s: give up waiting for the key after this long [s]; None: wait.
        success: ``"key"`` (operator presses ``success_key``/``failure_key``), ``"classifier"``
            (a learned success classifier on camera frames) or ``"none"`` (never succeeds).
        success_key: key that marks the episode a success.
        failure_key: key that marks the episode failed.
        classifier_path: checkpoint written by ``daft train-reward``.
        classifier_threshold: success when the classifier's probability is at least this.
        classifier_consecutive: steps in a row above the threshold needed for success.
        classifier_loader: ``"module:function"`` turning a path into an object with
            ``predict(frames) -> probability`` (a plugin seam, so daft_env does not import the
            learner).
        realtime: keep the control period (10 Hz); False runs as fast as the arm answers (tests,
            simulated arms).
        control_hz: control rate [Hz].
    """

    arm_host: str = DEFAULT_HOST
    arm_port: int = DEFAULT_PORT
    arm_token: str | None = None
    arm_timeout_s: float = 0.5
    connect_timeout_s: float = 3.0
    home_timeout_s: float = 30.0
    heartbeat_interval_s: float = 0.1
    wrist_camera: dict[str, Any] = field(default_factory=lambda: {"driver": "opencv", "source": 0})
    head_camera: dict[str, Any] = field(default_factory=lambda: {"driver": "opencv", "source": 1})
    camera_max_age_s: float = 0.5
    workspace: dict[str, Any] | None = None
    reset_pose: tuple[float, ...] | None = None
    reset_position_noise: float = 0.02
    reset_rotation_noise: float = 0.0
    reset_max_steps: int = 100
    reset_tolerance_m: float = 0.005
    scene_reset: str = "key"
    scene_reset_timer_s: float = 5.0
    scene_reset_timeout_s: float | None = None
    success: str = "key"
    success_key: str = "y"
    failure_key: str = "n"
    classifier_path: str | None = None
    classifier_threshold: float = 0.5
    classifier_consecutive: int = 1
    classifier_loader: str = DEFAULT_CLASSIFIER_LOADER
    realtime: bool = True
    control_hz: float = CONTROL_HZ

    def __post_init__(self) -> None:
        self._validate()

    # -- validation ------------------------------------------------------------------------------

    def _validate(self) -> None:
        if not isinstance(self.arm_host, str) or not self.arm_host.strip():
            raise _config_error("arm_host", f"{self.arm_host!r} is empty", "give a host name or IP")
        if (
            isinstance(self.arm_port, bool)
            or not isinstance(self.arm_port, int)
            or not 0 < self.arm_port <= 65535
        ):
            raise _config_error(
                "arm_port", f"{self.arm_port!r} is not a TCP port", "use an int in 1..65535"
            )
        if self.arm_token is not None and (
            not isinstance(self.arm_token, str) or len(self.arm_token) < 8
        ):
            raise _config_error(
                "arm_token",
                "the token must be a string of at least 8 characters",
                "use the token the arm server was started with (DAFT_ARM_TOKEN)",
            )
        for name in (
            "arm_timeout_s",
            "connect_timeout_s",
            "home_timeout_s",
            "camera_max_age_s",
            "control_hz",
        ):
            self._positive(name)
        for name in ("heartbeat_interval_s", "reset_position_noise", "reset_rotation_noise"):
            self._positive(name, allow_zero=True)
        self._positive("scene_reset_timer_s", allow_zero=True)
        if self.scene_reset_timeout_s is not None:
            self._positive("scene_reset_timeout_s")
        self._positive("reset_tolerance_m")
        for name in ("reset_max_steps", "classifier_consecutive"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _config_error(name, f"{value!r} is not an integer >= 1", "use e.g. 1 or 100")
        for name in ("wrist_camera", "head_camera"):
            self._check_camera(name)
        if self.workspace is not None:
            self.limits()  # raises ConfigError naming the field
        if self.reset_pose is not None:
            try:
                pose = np.asarray(self.reset_pose, dtype=np.float64)
            except (TypeError, ValueError):
                pose = np.zeros(0)
            if pose.shape != (6,) or not np.all(np.isfinite(pose)):
                raise _config_error(
                    "reset_pose",
                    f"{self.reset_pose!r} is not 6 finite numbers",
                    "give [x, y, z, roll, pitch, yaw] in metres and radians, base frame",
                )
            self.reset_pose = tuple(float(v) for v in pose)
        if self.scene_reset not in SCENE_RESET_MODES:
            raise _config_error(
                "scene_reset",
                f"unknown mode {self.scene_reset!r}",
                f"use one of {SCENE_RESET_MODES}",
            )
        if self.success not in SUCCESS_MODES:
            raise _config_error(
                "success", f"unknown mode {self.success!r}", f"use one of {SUCCESS_MODES}"
            )
        for name in ("success_key", "failure_key"):
            key = getattr(self, name)
            if not isinstance(key, str) or len(key) != 1:
                raise _config_error(name, f"{key!r} is not one character", "use e.g. 'y' or 'n'")
        if self.success_key == self.failure_key:
            raise _config_error(
                "failure_key", "it equals success_key", "use two different keys, e.g. 'y' and 'n'"
            )
        if not 0.0 < float(self.classifier_threshold) < 1.0:
            raise _config_error(
                "classifier_threshold",
                f"{self.classifier_threshold!r} is not a probability in (0, 1)",
                "use e.g. 0.5",
            )
        if self.success == "classifier" and not self.classifier_path:
            raise _config_error(
                "classifier_path",
                "success='classifier' needs a trained classifier",
                "train one with `daft train-reward --store DIR --out model.pt` and set "
                "classifier_path (or DAFT_SUCCESS=classifier:model.pt)",
            )
        if not isinstance(self.classifier_loader, str) or ":" not in self.classifier_loader:
            raise _config_error(
                "classifier_loader",
                f"{self.classifier_loader!r} is not 'module:function'",
                f"use {DEFAULT_CLASSIFIER_LOADER!r}",
            )
        self.realtime = _as_bool("realtime", self.realtime)

    def _positive(self, name: str, allow_zero: bool = False) -> None:
        value = getattr(self, name)
        ok = (
            not isinstance(value, bool)
            and isinstance(value, (int, float))
            and np.isfinite(value)
            and (value >= 0 if allow_zero else value > 0)
        )
        if not ok:
            bound = ">= 0" if allow_zero else "> 0"
            raise _config_error(
                name, f"{value!r} is not a number {bound}", f"give a number {bound}"
            )
        setattr(self, name, float(value))

    def _check_camera(self, name: str) -> None:
        spec = getattr(self, name)
        if not isinstance(spec, Mapping) or "driver" not in spec:
            raise _config_error(
                name,
                f"{spec!r} is not a camera description",
                "write {driver: opencv, source: 0} (or a video file path as source)",
            )
        driver = spec["driver"]
        if driver not in camera_names():
            raise _config_error(
                name, f"unknown camera driver {driver!r}", f"use one of {camera_names()}"
            )
        setattr(self, name, dict(spec))

    # -- derived ---------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``tcp://host:port`` of the arm server."""
        host = f"[{self.arm_host}]" if ":" in self.arm_host else self.arm_host
        return f"tcp://{host}:{self.arm_port}"

    def limits(self) -> SafetyLimits | None:
        """The client-side :class:`SafetyLimits` from ``workspace`` (None: use the server's)."""
        if self.workspace is None:
            return None
        if not isinstance(self.workspace, Mapping):
            raise _config_error(
                "workspace", f"{self.workspace!r} is not a mapping", "write {position_low: [...]}"
            )
        valid = {f.name for f in dataclasses.fields(SafetyLimits) if f.init}
        unknown = sorted(set(self.workspace) - valid)
        if unknown:
            raise _config_error(
                "workspace", f"unknown key(s) {unknown}", f"valid keys are {sorted(valid)}"
            )
        try:
            return SafetyLimits(**dict(self.workspace))
        except (ConfigError, TypeError, ValueError) as exc:
            raise _config_error(
                "workspace", str(exc), "fix the box corners and step limits"
            ) from exc

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> list[str]:
        """Names accepted in files and keyword arguments (plus the ``arm_address`` shorthand)."""
        return [f.name for f in dataclasses.fields(cls) if f.init]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> RealConfig:
        """Build from a flat mapping; unknown keys raise :class:`ConfigError` naming them."""
        return cls(**cls._normalise(data, source))

    @classmethod
    def _normalise(cls, data: Mapping[str, Any], source: str) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: the top level must be a mapping of field: value")
        out = dict(data)
        if "arm_address" in out:
            address = out.pop("arm_address")
            if address is not None:
                host, port = parse_address(address)
                out.setdefault("arm_host", host)
                out.setdefault("arm_port", port)
        valid = cls.field_names()
        unknown = sorted(set(out) - set(valid))
        if unknown:
            raise ConfigError(
                f"{source}: unknown real-arm config field(s) {unknown}. Fix: valid fields are "
                f"{['arm_address', *valid]}"
            )
        return out

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RealConfig:
        """Read a YAML (``.yaml``/``.yml``), TOML (``.toml``) or JSON (``.json``) file."""
        return cls.from_dict(cls._read_file(path), source=str(path))

    @staticmethod
    def _read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(
                f"real-arm config file {str(p)!r} does not exist. Fix: check the path "
                "(DAFT_REAL_CONFIG or backend_kwargs={'config': ...})"
            )
        text = p.read_text()
        suffix = p.suffix.lower()
        try:
            if suffix in (".yaml", ".yml"):
                try:
                    import yaml
                except ImportError:
                    raise ConfigError(
                        f"reading {str(p)!r} needs PyYAML (pip install pyyaml); or write the "
                        "config as .toml or .json"
                    ) from None

                data = yaml.safe_load(text)
            elif suffix == ".toml":
                import tomllib

                data = tomllib.loads(text)
            elif suffix == ".json":
                data = json.loads(text)
            else:
                raise ConfigError(
                    f"real-arm config file {str(p)!r} has an unknown extension. Fix: name it "
                    "*.yaml, *.yml, *.toml or *.json"
                )
        except ConfigError:
            raise
        except Exception as exc:  # each parser raises its own error types
            raise ConfigError(
                f"real-arm config file {str(p)!r} is not valid {suffix[1:].upper()}: {exc}. "
                "Fix the syntax at the position given."
            ) from exc
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"real-arm config file {str(p)!r} must hold a mapping of field: value at the top "
                f"level; got {type(data).__name__}"
            )
        return data

    @staticmethod
    def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The config fields set by the ``DAFT_*`` variables of :data:`ENV_VARS`."""
        env = os.environ if environ is None else environ
        out: dict[str, Any] = {}
        if env.get("DAFT_ARM_ADDRESS"):
            out["arm_host"], out["arm_port"] = parse_address(env["DAFT_ARM_ADDRESS"])
        if env.get("DAFT_ARM_HOST"):
            out["arm_host"] = env["DAFT_ARM_HOST"]
        if env.get("DAFT_ARM_PORT"):
            text = env["DAFT_ARM_PORT"].strip()
            if not text.isdigit():
                raise _config_error("arm_port", f"DAFT_ARM_PORT={text!r}", "set a number")
            out["arm_port"] = int(text)
        if env.get("DAFT_ARM_TOKEN"):
            out["arm_token"] = env["DAFT_ARM_TOKEN"]
        for var, name in (
            ("DAFT_WRIST_CAMERA", "wrist_camera"),
            ("DAFT_HEAD_CAMERA", "head_camera"),
        ):
            if env.get(var):
                out[name] = _camera_from_text(env[var])
        if env.get("DAFT_SCENE_RESET"):
            mode, _, arg = env["DAFT_SCENE_RESET"].partition(":")
            out["scene_reset"] = mode.strip()
            if arg:
                try:
                    out["scene_reset_timer_s"] = float(arg)
                except ValueError:
                    raise _config_error(
                        "scene_reset_timer_s",
                        f"DAFT_SCENE_RESET={env['DAFT_SCENE_RESET']!r}",
                        "write timer:SECONDS, e.g. timer:5",
                    ) from None
        if env.get("DAFT_SUCCESS"):
            mode, _, arg = env["DAFT_SUCCESS"].partition(":")
            out["success"] = mode.strip()
            if arg:
                out["classifier_path"] = arg
        if env.get("DAFT_REALTIME"):
            out["realtime"] = _as_bool("realtime", env["DAFT_REALTIME"])
        return out

    @classmethod
    def resolve(
        cls,
        config: RealConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> RealConfig:
        """Merge defaults < file < environment < ``overrides`` (and ``config`` as given).

        Args:
            config: a ready :class:`RealConfig` (used as is, then ``overrides``), a mapping of
                fields, a file path, or None (``DAFT_REAL_CONFIG`` when set).
            environ: the environment to read (default ``os.environ``).
            **overrides: field values that win over everything else.
        """
        env = os.environ if environ is None else environ
        if isinstance(config, RealConfig):
            # Shallow on purpose: a camera spec may hold live objects (a MujocoArm) that
            # dataclasses.asdict would try to deep-copy.
            merged = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}
        else:
            merged = {}
            if config is None and env.get("DAFT_REAL_CONFIG"):
                config = env["DAFT_REAL_CONFIG"]
            if isinstance(config, (str, os.PathLike)):
                merged.update(cls._normalise(cls._read_file(config), str(config)))
            elif isinstance(config, Mapping):
                merged.update(cls._normalise(config, "config"))
            elif config is not None:
                raise ConfigError(
                    f"config must be a RealConfig, a mapping or a file path; got "
                    f"{type(config).__name__}"
                )
            merged.update(cls.from_environment(env))
        merged.update(cls._normalise(overrides, "backend_kwargs"))
        return cls(**merged)


# ----------------------------------------------------------------------------------------------
# the operator: who arranges the scene, who says "success"
# ----------------------------------------------------------------------------------------------


@runtime_checkable
class SceneResetter(Protocol):
    """Waits while the scene is arranged for a new episode (a person, a timer, a simulator)."""

    def arrange(
        self, task: TaskSpec, rng: np.random.Generator, options: Mapping[str, Any] | None = None
    ) -> None:
        """Block until the scene for ``task`` is ready."""

    def close(self) -> None:
        """Release whatever the resetter holds (a terminal). Safe to call twice."""


class SharedKeySource:
    """One key source shared by several readers: opened on first use, closed on the last close.

    A terminal in cbreak mode must be restored exactly once, with the settings saved before the
    first open; two independent opens would save (and later restore) the cbreak settings.
    """

    def __init__(self, source: KeySource) -> None:
        self.source = source
        self._users = 0

    def open(self) -> None:
        """Open the underlying source on the first call."""
        if self._users == 0:
            try:
                self.source.open()
            except DeviceNotFoundError as exc:
                raise DeviceNotFoundError(
                    f"{exc} The real env reads the operator's keys (scene_reset='key', "
                    "success='key'); without a terminal use DAFT_SCENE_RESET=timer:5 and "
                    "DAFT_SUCCESS=classifier:PATH, or pass a key_source."
                ) from exc
        self._users += 1

    def poll(self) -> list[str]:
        """Keys typed since the last poll (by any reader)."""
        return self.source.poll()

    def close(self) -> None:
        """Close the underlying source when the last reader closes."""
        if self._users > 0:
            self._users -= 1
            if self._users == 0:
                self.source.close()


class KeySceneResetter:
    """The operator arranges the scene and presses a key (Enter by default).

    Args:
        key_source: where keys come from (default: this terminal, in cbreak mode).
        keys: any of these keys confirms.
        timeout_s: raise :class:`RealBackendFault` after this long without a key; None waits.
        prompt: called with the instruction for the operator (default: print to stderr).
    """

    def __deepcopy__(self, memo: dict) -> Any:
        # A handle on a person, a terminal or a simulator, not a value: gym copies env specs.
        return self

    def __init__(
        self,
        key_source: KeySource | None = None,
        keys: tuple[str, ...] = ("\n", "\r"),
        timeout_s: float | None = None,
        prompt: Callable[[str], None] | None = None,
    ) -> None:
        if not keys:
            raise ConfigError("KeySceneResetter needs at least one key")
        self.key_source = key_source or StdinKeySource()
        self.keys = tuple(keys)
        self.timeout_s = timeout_s
        self.prompt = prompt or (lambda text: print(text, file=sys.stderr, flush=True))
        self._open = False

    def arrange(
        self, task: TaskSpec, rng: np.random.Generator, options: Mapping[str, Any] | None = None
    ) -> None:
        """Prompt the operator and wait for a confirming key."""
        if not self._open:
            self.key_source.open()
            self._open = True
        self.prompt(f"[daft] arrange the scene for {task.instruction!r}, then press Enter")
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while True:
            if any(k in self.keys for k in self.key_source.poll()):
                return
            if deadline is not None and time.monotonic() > deadline:
                raise RealBackendFault(
                    f"nobody confirmed the scene for {task.name!r} within {self.timeout_s:.0f} s "
                    "(press Enter in the env's terminal, or use scene_reset='timer')"
                )
            time.sleep(0.02)

    def close(self) -> None:
        """Release the key source."""
        if self._open:
            self.key_source.close()
            self._open = False


class TimerSceneResetter:
    """Give the operator a fixed time to arrange the scene.

    Args:
        seconds: how long to wait; 0 does not wait (a scene that resets itself).
        prompt: called with the instruction for the operator (default: print to stderr).
    """

    def __deepcopy__(self, memo: dict) -> Any:
        # A handle on a person, a terminal or a simulator, not a value: gym copies env specs.
        return self

    def __init__(self, seconds: float, prompt: Callable[[str], None] | None = None) -> None:
        if not seconds >= 0:
            raise ConfigError(f"the scene-reset timer needs seconds >= 0; got {seconds}")
        self.seconds = float(seconds)
        self.prompt = prompt or (lambda text: print(text, file=sys.stderr, flush=True))

    def arrange(
        self, task: TaskSpec, rng: np.random.Generator, options: Mapping[str, Any] | None = None
    ) -> None:
        """Sleep ``seconds``."""
        if self.seconds > 0:
            self.prompt(f"[daft] arrange the scene for {task.instruction!r} ({self.seconds:.0f} s)")
            time.sleep(self.seconds)

    def close(self) -> None:
        """Nothing to release."""


class CallableSceneResetter:
    """A function arranges the scene: ``fn(task, rng[, options])`` (``MujocoArm.arrange_scene``).

    The ``rng`` passed on is the env's own generator, untouched by the start-pose randomisation,
    so a simulated scene is laid out exactly as the ``-Sim-v0`` env lays it out for the same seed.
    """

    def __deepcopy__(self, memo: dict) -> Any:
        # A handle on a person, a terminal or a simulator, not a value: gym copies env specs.
        return self

    def __init__(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise ConfigError(f"CallableSceneResetter needs a callable; got {fn!r}")
        self.fn = fn
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):  # some builtins have no signature
            params = []
        #: Whether ``fn`` takes a third argument, the env's reset options (long-horizon layout).
        self.takes_options = sum(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params
        ) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in params)

    def arrange(
        self, task: TaskSpec, rng: np.random.Generator, options: Mapping[str, Any] | None = None
    ) -> None:
        """Call the function (with ``options`` when it takes three arguments)."""
        if self.takes_options:
            self.fn(task, rng, dict(options or {}))
        else:
            self.fn(task, rng)

    def close(self) -> None:
        """Nothing to release."""


@runtime_checkable
class SuccessSource(Protocol):
    """Where a real episode's success signal comes from."""

    def reset(self, task: TaskSpec) -> None:
        """Forget the previous episode's verdict."""

    def status(self, task: TaskSpec, observation: Mapping[str, np.ndarray]) -> TaskStatus:
        """The verdict after the latest step; ``observation`` holds the step's camera frames."""

    def close(self) -> None:
        """Release resources. Safe to call twice."""


class KeySuccess:
    """The operator's verdict by key: ``success_key`` ends in success, ``failure_key`` in failure.

    The verdict latches until :meth:`reset`, so polling once per step cannot miss a press.
    """

    def __deepcopy__(self, memo: dict) -> Any:
        # A handle on a person, a terminal or a simulator, not a value: gym copies env specs.
        return self

    def __init__(
        self,
        key_source: KeySource | None = None,
        success_key: str = "y",
        failure_key: str = "n",
    ) -> None:
        self.key_source = key_source or StdinKeySource()
        self.success_key, self.failure_key = success_key, failure_key
        self._open = False
        self._verdict: bool | None = None

    def reset(self, task: TaskSpec) -> None:
        """Clear the verdict (and drop keys typed since the last poll)."""
        if not self._open:
            self.key_source.open()
            self._open = True
        self.key_source.poll()
        self._verdict = None

    def status(self, task: TaskSpec, observation: Mapping[str, np.ndarray]) -> TaskStatus:
        """Poll the keys."""
        if self._open and self._verdict is None:
            for key in self.key_source.poll():
                if key == self.success_key:
                    self._verdict = True
                elif key == self.failure_key:
                    self._verdict = False
        return TaskStatus(
            success=self._verdict is True,
            failed=self._verdict is False,
            info={"success_source": "key"},
        )

    def close(self) -> None:
        """Release the key source."""
        if self._open:
            self.key_source.close()
            self._open = False


class ClassifierSuccess:
    """A learned success classifier on the step's camera frames (HIL-SERL's reward classifier).

    Success when p(success | frames) >= ``threshold`` for ``consecutive`` steps in a row; the
    probability is reported as ``info["success_prob"]``.

    Args:
        model: any object with ``predict(observation) -> probability``; its ``image_keys``
            attribute (default ``("head_rgb",)``) says which frames it reads.
        threshold: probability threshold.
        consecutive: steps in a row above the threshold.
    """

    def __deepcopy__(self, memo: dict) -> Any:
        # A handle on a person, a terminal or a simulator, not a value: gym copies env specs.
        return self

    def __init__(self, model: Any, threshold: float = 0.5, consecutive: int = 1) -> None:
        if not callable(getattr(model, "predict", None)):
            raise ConfigError(f"the success classifier {model!r} has no predict(frames) method")
        if not 0 < threshold < 1 or consecutive < 1:
            raise ConfigError("ClassifierSuccess needs 0 < threshold < 1 and consecutive >= 1")
        self.model, self.threshold, self.consecutive = model, float(threshold), int(consecutive)
        self._run = 0

    def reset(self, task: TaskSpec) -> None:
        """Restart the consecutive count."""
        self._run = 0

    def status(self, task: TaskSpec, observation: Mapping[str, np.ndarray]) -> TaskStatus:
        """Classify the step's frames."""
        keys = tuple(getattr(self.model, "image_keys", ("head_rgb",)))
        missing = [k for k in keys if k not in observation]
        if missing:
            raise ConfigError(
                f"the success classifier reads {list(keys)} but the observation has only "
                f"{sorted(observation)}"
            )
        prob = float(
            np.asarray(self.model.predict({k: observation[k] for k in keys})).reshape(-1)[0]
        )
        self._run = self._run + 1 if prob >= self.threshold else 0
        return TaskStatus(
            success=self._run >= self.consecutive,
            info={"success_source": "classifier", "success_prob": prob},
        )

    def close(self) -> None:
        """Nothing to release."""


class CallableSuccess:
    """A function gives the verdict: ``fn() -> bool`` or ``-> TaskStatus`` (e.g. a sim predicate)."""

    def __deepcopy__(self, memo: dict) -> Any:
        # A handle on a person, a terminal or a simulator, not a value: gym copies env specs.
        return self

    def __init__(self, fn: Callable[[], bool | TaskStatus]) -> None:
        if not callable(fn):
            raise ConfigError(f"CallableSuccess needs a callable; got {fn!r}")
        self.fn = fn

    def reset(self, task: TaskSpec) -> None:
        """Nothing to forget."""

    def status(self, task: TaskSpec, observation: Mapping[str, np.ndarray]) -> TaskStatus:
        """Call the function."""
        out = self.fn()
        if isinstance(out, TaskStatus):
            return TaskStatus(out.success, out.failed, {"success_source": "callable", **out.info})
        return TaskStatus(success=bool(out), info={"success_source": "callable"})

    def close(self) -> None:
        """Nothing to release."""


def load_classifier(path: str | os.PathLike[str], loader: str = DEFAULT_CLASSIFIER_LOADER) -> Any:
    """Load a success classifier through the ``"module:function"`` plugin ``loader``."""
    module_name, _, attr = loader.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"cannot import the success-classifier loader {loader!r} ({exc}); install DAFT's "
            "learner (pip install -e .) or set classifier_loader"
        ) from exc
    if not Path(path).is_file():
        raise ConfigError(
            f"success classifier {str(path)!r} does not exist; train one with "
            "`daft train-reward --store DIR --out PATH`"
        )
    return fn(path)


# ----------------------------------------------------------------------------------------------
# the backend
# ----------------------------------------------------------------------------------------------


def _rotation_close(a: np.ndarray, b: np.ndarray) -> float:
    """Angle [rad] between the orientations of two (6,) poses."""
    return float(np.linalg.norm(matrix_to_rotvec(rpy_to_matrix(a[3:]) @ rpy_to_matrix(b[3:]).T)))


class RealBackend:
    """A physical arm and two cameras behind the :class:`~daft_env.backends.Backend` protocol.

    Args:
        config: a :class:`RealConfig`, a mapping of its fields, a config file path, or None
            (``DAFT_REAL_CONFIG`` and the other ``DAFT_*`` variables; see the module docstring).
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
        CameraError / DeviceNotFoundError: a camera could not be opened.
    """

    has_privileged_state = False

    def __init__(
        self,
        config: RealConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
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
        self.config = RealConfig.resolve(config, **overrides)
        cfg = self.config
        self.period_s = 1.0 / cfg.control_hz
        self.task: TaskSpec | None = None
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
                f"the client the same TOKEN (DAFT_ARM_TOKEN or arm_token). {_HOW_TO_CONFIGURE}"
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
                f"{_HOW_TO_CONFIGURE}"
            ) from exc
        self._state = self.arm.state()

    def _shared_keys(self) -> KeySource:
        if self._shared_key_source is None:
            self._shared_key_source = SharedKeySource(self._key_source or StdinKeySource())
        return self._shared_key_source

    def _make_scene_resetter(self) -> SceneResetter:
        cfg = self.config
        if cfg.scene_reset == "key":
            return KeySceneResetter(self._shared_keys(), timeout_s=cfg.scene_reset_timeout_s)
        if cfg.scene_reset == "timer":
            return TimerSceneResetter(cfg.scene_reset_timer_s)
        return TimerSceneResetter(0.0)

    def _make_success_source(self) -> SuccessSource:
        cfg = self.config
        if cfg.success == "key":
            return KeySuccess(self._shared_keys(), cfg.success_key, cfg.failure_key)
        if cfg.success == "classifier":
            assert cfg.classifier_path is not None  # RealConfig validated it
            model = load_classifier(cfg.classifier_path, cfg.classifier_loader)
            return ClassifierSuccess(model, cfg.classifier_threshold, cfg.classifier_consecutive)
        return CallableSuccess(lambda: False)

    def _make_camera(self, name: str, size: tuple[int, int]) -> Camera:
        spec = dict(getattr(self.config, f"{name}_camera"))
        driver = spec.pop("driver")
        spec["size"] = size
        spec.setdefault("name", name)
        spec.setdefault("max_age_s", self.config.camera_max_age_s)
        try:
            return make_camera(driver, **spec)
        except ConfigError as exc:
            raise _config_error(f"{name}_camera", str(exc), "fix the camera options") from exc

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
        """Stop the arm now (the emergency-stop hook, see ``hardware.teleop.check_emergency_stop``)."""
        self.arm.stop()

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
        for the scene resetter, see :class:`CallableSceneResetter`).
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
        except (HardwareError, SafetyError) as exc:
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
        if self._state is not None:
            info["ee_pose"] = self._state.ee_pose.copy()
        return TaskStatus(success=status.success, failed=status.failed, info=info)

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


__all__ = [
    "ENV_VARS",
    "CallableSceneResetter",
    "CallableSuccess",
    "ClassifierSuccess",
    "KeySceneResetter",
    "KeySuccess",
    "RealBackend",
    "RealBackendFault",
    "RealConfig",
    "SceneResetter",
    "SharedKeySource",
    "SuccessSource",
    "TimerSceneResetter",
    "load_classifier",
    "parse_address",
]
