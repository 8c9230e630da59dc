"""What the real-arm backend needs to know about one robot cell: :class:`RealConfig`.

A config is merged from four sources, later ones overriding earlier ones:

    defaults < file (YAML, TOML or JSON) < environment (:data:`ENV_VARS`) < keyword arguments

:data:`ENV_VARS` is the one list of the ``DAFT_*`` variables the real arm reads: the loader parses
them from it, the table below and the "how to configure" hint in errors are written from it.

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
    tasks:                      # tasks of your own; see daft_env.backends.real.tasks
      cable_insert: {instruction: insert the cable, max_steps: 80, success: key}

Loading a config registers its ``tasks:`` section (:mod:`daft_env.backends.real.tasks`: each
task's instruction, step limit, and the settings it overrides); the other keys are the fields of
:class:`RealConfig`.

Environment variables:

"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from daft_env.backends.real.cell import DEFAULT_CLASSIFIER_LOADER, SCENE_RESETTERS, SUCCESS_SOURCES
from daft_env.errors import ConfigError
from daft_env.spaces import CONTROL_HZ
from hardware.arm.protocol import DEFAULT_HOST, DEFAULT_PORT
from hardware.cameras import camera_names
from hardware.safety import SafetyLimits


def config_error(name: str, problem: str, fix: str) -> ConfigError:
    """A :class:`ConfigError` naming the field, the problem and the fix."""
    return ConfigError(f"real-arm config field {name!r}: {problem}. Fix: {fix}")


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"``, ``"tcp://host:port"`` or ``"[::1]:port"`` -> ``(host, port)``."""
    text = str(address).strip().removeprefix("tcp://")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise config_error(
            "arm_address",
            f"{address!r} is not host:port",
            "write it as 192.168.1.20:5560 or tcp://192.168.1.20:5560",
        )
    return host, int(port_text)


def _as_bool(name: str, value: Any) -> bool:
    text = value.strip().lower() if isinstance(value, str) else value
    if text in (True, 1, "1", "true", "yes", "on") and not isinstance(text, float):
        return True
    if text in (False, 0, "0", "false", "no", "off") and not isinstance(text, float):
        return False
    raise config_error(name, f"{value!r} is not a boolean", "use true/false (or 1/0)")


# -- the environment: one table ------------------------------------------------------------------


@dataclass(frozen=True)
class EnvVar:
    """One ``DAFT_*`` variable: what it means and which config fields its text sets.

    Attributes:
        name: the variable.
        meaning: one line for docs and errors.
        parse: ``text -> {field: value}``; None for ``DAFT_REAL_CONFIG``, which names the file
            that :meth:`RealConfig.resolve` reads before the environment.
    """

    name: str
    meaning: str
    parse: Callable[[str], dict[str, Any]] | None


def _field(name: str) -> Callable[[str], dict[str, Any]]:
    return lambda text: {name: text}


def _address_fields(text: str) -> dict[str, Any]:
    host, port = parse_address(text)
    return {"arm_host": host, "arm_port": port}


def _port_fields(text: str) -> dict[str, Any]:
    if not text.strip().isdigit():
        raise config_error("arm_port", f"DAFT_ARM_PORT={text!r}", "set a number")
    return {"arm_port": int(text)}


def _camera_fields(name: str) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        source = text.strip()
        return {name: {"driver": "opencv", "source": int(source) if source.isdigit() else source}}

    return parse


def _scene_reset_fields(text: str) -> dict[str, Any]:
    mode, _, arg = text.partition(":")
    out: dict[str, Any] = {"scene_reset": mode.strip()}
    if arg:
        try:
            out["scene_reset_timer_s"] = float(arg)
        except ValueError:
            raise config_error(
                "scene_reset_timer_s",
                f"DAFT_SCENE_RESET={text!r}",
                "write timer:SECONDS, e.g. timer:5",
            ) from None
    return out


def _realtime_fields(text: str) -> dict[str, Any]:
    return {"realtime": _as_bool("realtime", text)}


def _success_fields(text: str) -> dict[str, Any]:
    mode, _, arg = text.partition(":")
    return {"success": mode.strip(), **({"classifier_path": arg} if arg else {})}


#: Every environment variable the real arm reads, in the order they apply (a later one wins).
ENV_VARS: dict[str, EnvVar] = {
    var.name: var
    for var in (
        EnvVar("DAFT_REAL_CONFIG", "path of a config file (.yaml/.yml, .toml or .json)", None),
        EnvVar("DAFT_ARM_ADDRESS", "arm server as host:port or tcp://host:port", _address_fields),
        EnvVar("DAFT_ARM_HOST", "arm server host (wins over DAFT_ARM_ADDRESS's)", _field("arm_host")),
        EnvVar("DAFT_ARM_PORT", "arm server port", _port_fields),
        EnvVar("DAFT_ARM_TOKEN", "the server's shared token (keep it out of files)", _field("arm_token")),
        EnvVar("DAFT_WRIST_CAMERA", "OpenCV source of the wrist camera: index, /dev path or video", _camera_fields("wrist_camera")),
        EnvVar("DAFT_HEAD_CAMERA", "OpenCV source of the head camera", _camera_fields("head_camera")),
        EnvVar("DAFT_SCENE_RESET", "key, timer:SECONDS or none", _scene_reset_fields),
        EnvVar("DAFT_SUCCESS", "key, classifier:PATH or none", _success_fields),
        EnvVar("DAFT_REALTIME", "1 (default) keeps 10 Hz; 0 runs as fast as the arm answers", _realtime_fields),
    )
}  # fmt: skip


def env_var_table() -> str:
    """The reStructuredText table of :data:`ENV_VARS` (this module's docstring ends with it)."""
    width = max(len(name) for name in ENV_VARS) + 4
    rule = f"{'=' * width}  {'=' * 70}"
    rows = [f"{f'``{v.name}``':<{width}}  {v.meaning}" for v in ENV_VARS.values()]
    return "\n".join([rule, f"{'variable':<{width}}  meaning", rule, *rows, rule, ""])


__doc__ = (__doc__ or "") + env_var_table()

HOW_TO_CONFIGURE = (
    f"Configure the real arm with environment variables ({', '.join(list(ENV_VARS)[1:5])}, ...) "
    "or a config file (DAFT_REAL_CONFIG=real.yaml, or gym.make(..., backend_kwargs={'config': "
    "'real.yaml'})); see daft_env.backends.real.config."
)


# -- per-field checks ----------------------------------------------------------------------------


def _number(minimum: float, *, inclusive: bool, optional: bool = False) -> Callable:
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"

    def check(name: str, value: Any) -> float | None:
        if value is None and optional:
            return None
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and np.isfinite(value)
        if not ok or not (value >= minimum if inclusive else value > minimum):
            raise config_error(name, f"{value!r} is not a number {bound}", f"give a number {bound}")
        return float(value)

    return check


_POSITIVE = _number(0.0, inclusive=False)
_NON_NEGATIVE = _number(0.0, inclusive=True)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise config_error(name, f"{value!r} is not an integer >= 1", "use e.g. 1 or 100")
    return value


def _host(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise config_error(name, f"{value!r} is empty", "give a host name or IP")
    return value


def _port(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 65535:
        raise config_error(name, f"{value!r} is not a TCP port", "use an int in 1..65535")
    return value


def _token(name: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) < 8):
        raise config_error(
            name,
            "the token must be a string of at least 8 characters",
            "use the token the arm server was started with (DAFT_ARM_TOKEN)",
        )
    return value


def _camera(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or "driver" not in value:
        raise config_error(
            name,
            f"{value!r} is not a camera description",
            "write {driver: opencv, source: 0} (or a video file path as source)",
        )
    if value["driver"] not in camera_names():
        raise config_error(
            name, f"unknown camera driver {value['driver']!r}", f"use one of {camera_names()}"
        )
    return dict(value)


def _pose(name: str, value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        pose = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        pose = np.zeros(0)
    if pose.shape != (6,) or not np.all(np.isfinite(pose)):
        raise config_error(
            name,
            f"{value!r} is not 6 finite numbers",
            "give [x, y, z, roll, pitch, yaw] in metres and radians, base frame",
        )
    return tuple(float(v) for v in pose)


def _mode(names: Callable[[], list[str]]) -> Callable:
    def check(name: str, value: Any) -> str:
        if value not in names():
            raise config_error(name, f"unknown mode {value!r}", f"use one of {names()}")
        return value

    return check


def _key(name: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) != 1:
        raise config_error(name, f"{value!r} is not one character", "use e.g. 'y' or 'n'")
    return value


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise config_error(name, f"{value!r} is not a probability in (0, 1)", "use e.g. 0.5")
    return float(value)


def _loader(name: str, value: Any) -> str:
    if not isinstance(value, str) or ":" not in value:
        raise config_error(
            name, f"{value!r} is not 'module:function'", f"use {DEFAULT_CLASSIFIER_LOADER!r}"
        )
    return value


def _setting(default: Any, check: Callable[[str, Any], Any] | None = None) -> Any:
    """A config field whose ``check(name, value) -> value`` runs in ``__post_init__``."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"check": check})
    return field(default=default, metadata={"check": check})


@dataclass
class RealConfig:
    """Everything :class:`~daft_env.backends.real.RealBackend` needs to know about one robot cell.

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
        camera_max_age_s: a frame older than this counts as stale [s] (every camera).
        workspace: :class:`~hardware.safety.SafetyLimits` fields for the client-side safety box;
            None uses the server's limits.
        reset_pose: (6,) start pose [m, rad] around which resets randomise; None: the arm's home.
        reset_position_noise: half-width of the uniform offset of the start position [m].
        reset_rotation_noise: half-width of the uniform roll/pitch/yaw offset of the start [rad].
        reset_max_steps: control periods allowed for reaching the start pose.
        reset_tolerance_m: position tolerance of the start pose [m].
        scene_reset: who arranges the scene once the arm is at its start, a name registered in
            :data:`~daft_env.backends.real.cell.SCENE_RESETTERS`: ``"key"`` (the operator
            presses Enter), ``"timer"`` (wait ``scene_reset_timer_s``) or ``"none"``.
        scene_reset_timer_s: seconds the timer waits.
        scene_reset_timeout_s: give up waiting for the key after this long [s]; None: wait.
        success: where success comes from, a name in
            :data:`~daft_env.backends.real.cell.SUCCESS_SOURCES`: ``"key"`` (``success_key`` /
            ``failure_key``), ``"classifier"`` (a learned classifier on camera frames) or
            ``"none"`` (never succeeds).
        success_key: key that marks the episode a success.
        failure_key: key that marks the episode failed.
        classifier_path: checkpoint written by ``daft train-reward``.
        classifier_threshold: success when the classifier's probability is at least this.
        classifier_consecutive: steps in a row above the threshold needed for success.
        classifier_loader: ``"module:function"`` turning a path into an object with
            ``predict(frames) -> probability`` (default: :mod:`daft_env.success`).
        realtime: keep the control period (10 Hz); False runs as fast as the arm answers (tests,
            simulated arms).
        control_hz: control rate [Hz].
    """

    # the arm server
    arm_host: str = _setting(DEFAULT_HOST, _host)
    arm_port: int = _setting(DEFAULT_PORT, _port)
    arm_token: str | None = _setting(None, _token)
    arm_timeout_s: float = _setting(0.5, _POSITIVE)
    connect_timeout_s: float = _setting(3.0, _POSITIVE)
    home_timeout_s: float = _setting(30.0, _POSITIVE)
    heartbeat_interval_s: float = _setting(0.1, _NON_NEGATIVE)
    # cameras
    wrist_camera: dict[str, Any] = _setting({"driver": "opencv", "source": 0}, _camera)
    head_camera: dict[str, Any] = _setting({"driver": "opencv", "source": 1}, _camera)
    camera_max_age_s: float = _setting(0.5, _POSITIVE)
    # motion: the client-side box and the start of an episode
    workspace: dict[str, Any] | None = _setting(None)  # checked by limits()
    reset_pose: tuple[float, ...] | None = _setting(None, _pose)
    reset_position_noise: float = _setting(0.02, _NON_NEGATIVE)
    reset_rotation_noise: float = _setting(0.0, _NON_NEGATIVE)
    reset_max_steps: int = _setting(100, _count)
    reset_tolerance_m: float = _setting(0.005, _POSITIVE)
    # the operator: who arranges the scene, who says "success"
    scene_reset: str = _setting("key", _mode(SCENE_RESETTERS.names))
    scene_reset_timer_s: float = _setting(5.0, _NON_NEGATIVE)
    scene_reset_timeout_s: float | None = _setting(
        None, _number(0.0, inclusive=False, optional=True)
    )
    success: str = _setting("key", _mode(SUCCESS_SOURCES.names))
    success_key: str = _setting("y", _key)
    failure_key: str = _setting("n", _key)
    classifier_path: str | None = _setting(None)
    classifier_threshold: float = _setting(0.5, _probability)
    classifier_consecutive: int = _setting(1, _count)
    classifier_loader: str = _setting(DEFAULT_CLASSIFIER_LOADER, _loader)
    # timing
    realtime: bool = _setting(True, _as_bool)
    control_hz: float = _setting(CONTROL_HZ, _POSITIVE)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            if check is not None:
                setattr(self, f.name, check(f.name, getattr(self, f.name)))
        self.limits()  # a bad workspace raises here, naming the field
        if self.success_key == self.failure_key:
            raise config_error(
                "failure_key", "it equals success_key", "use two different keys, e.g. 'y' and 'n'"
            )
        if self.success == "classifier" and not self.classifier_path:
            raise config_error(
                "classifier_path",
                "success='classifier' needs a trained classifier",
                "train one with `daft train-reward --store DIR --out model.pt` and set "
                "classifier_path (or DAFT_SUCCESS=classifier:model.pt)",
            )

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
            raise config_error(
                "workspace", f"{self.workspace!r} is not a mapping", "write {position_low: [...]}"
            )
        valid = {f.name for f in dataclasses.fields(SafetyLimits) if f.init}
        unknown = sorted(set(self.workspace) - valid)
        if unknown:
            raise config_error(
                "workspace", f"unknown key(s) {unknown}", f"valid keys are {sorted(valid)}"
            )
        try:
            return SafetyLimits(**dict(self.workspace))
        except (ConfigError, TypeError, ValueError) as exc:
            raise config_error(
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
        return cls(**_normalise(data, source))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RealConfig:
        """Read a YAML (``.yaml``/``.yml``), TOML (``.toml``) or JSON (``.json``) file."""
        return cls.from_dict(read_config_file(path), source=str(path))

    @staticmethod
    def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The config fields set by the variables of :data:`ENV_VARS` (a later one wins)."""
        env = os.environ if environ is None else environ
        out: dict[str, Any] = {}
        for var in ENV_VARS.values():
            if var.parse is not None and env.get(var.name):
                out.update(var.parse(env[var.name]))
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
            merged = {name: getattr(config, name) for name in cls.field_names()}
        else:
            merged = {}
            if config is None and env.get("DAFT_REAL_CONFIG"):
                config = env["DAFT_REAL_CONFIG"]
            if isinstance(config, (str, os.PathLike)):
                merged.update(_normalise(read_config_file(config), str(config)))
            elif isinstance(config, Mapping):
                merged.update(_normalise(config, "config"))
            elif config is not None:
                raise ConfigError(
                    f"config must be a RealConfig, a mapping or a file path; got "
                    f"{type(config).__name__}"
                )
            merged.update(cls.from_environment(env))
        merged.update(_normalise(overrides, "backend_kwargs"))
        return cls(**merged)


def _normalise(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Register a ``tasks:`` section, expand ``arm_address``; refuse unknown fields, naming them."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of field: value")
    out = dict(data)
    tasks = out.pop("tasks", None)
    if tasks is not None:
        # Imported here: the tasks module checks a task's settings with this module's fields.
        from daft_env.backends.real.tasks import register_tasks_section

        register_tasks_section(tasks, source)
    address = out.pop("arm_address", None)
    if address is not None:
        for name, value in _address_fields(address).items():
            out.setdefault(name, value)
    valid = RealConfig.field_names()
    unknown = sorted(set(out) - set(valid))
    if unknown:
        raise ConfigError(
            f"{source}: unknown real-arm config field(s) {unknown}. Fix: valid fields are "
            f"{['arm_address', 'tasks', *valid]}"
        )
    return out


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            f"reading {str(path)!r} needs PyYAML (pip install pyyaml); or write the config as "
            ".toml or .json"
        ) from None
    return yaml.safe_load(text)


def _parse_toml(text: str, path: Path) -> Any:
    import tomllib

    return tomllib.loads(text)


_PARSERS: dict[str, Callable[[str, Path], Any]] = {
    ".yaml": _parse_yaml,
    ".yml": _parse_yaml,
    ".toml": _parse_toml,
    ".json": lambda text, path: json.loads(text),
}


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in a YAML, TOML or JSON config file; every problem is a :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"real-arm config file {str(p)!r} does not exist. Fix: check the path "
            "(DAFT_REAL_CONFIG or backend_kwargs={'config': ...})"
        )
    suffix = p.suffix.lower()
    parser = _PARSERS.get(suffix)
    if parser is None:
        raise ConfigError(
            f"real-arm config file {str(p)!r} has an unknown extension. Fix: name it "
            f"{', '.join('*' + s for s in _PARSERS)}"
        )
    try:
        data = parser(p.read_text(), p)
    except ConfigError:
        raise
    except Exception as exc:  # each parser raises its own error types
        raise ConfigError(
            f"real-arm config file {str(p)!r} is not valid {suffix[1:].upper()}: {exc}. "
            "Fix the syntax at the position given."
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"real-arm config file {str(p)!r} must hold a mapping of field: value at the top "
            f"level; got {type(data).__name__}"
        )
    return data


__all__ = [
    "DEFAULT_CLASSIFIER_LOADER",
    "ENV_VARS",
    "HOW_TO_CONFIGURE",
    "EnvVar",
    "RealConfig",
    "config_error",
    "env_var_table",
    "parse_address",
    "read_config_file",
]
