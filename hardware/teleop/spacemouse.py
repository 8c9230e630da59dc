"""3Dconnexion SpaceMouse teleop via ``pyspacemouse``, and the mapping shared with its mock.

Mapping (one reading ``u`` in the device frame, 6 axes in [-1, 1]):

1. Axis map into the robot base frame (+x forward, +y left, +z up):
   ``v[i] = sign[i] * u[perm[i]]`` for translations (i = 0..2) and rotations (i = 3..5). The
   default assumes pyspacemouse's x to the operator's right, y away from the operator and z up,
   for an operator standing behind the robot facing +x: pushing the cap away moves the gripper
   forward, left moves it left, lifting moves it up. Device models and mounting differ, so check
   it once with ``python -m hardware.teleop.spacemouse`` and flip ``translation_sign`` /
   ``rotation_sign`` (or permute) where an axis runs the wrong way.
2. Deadzone ``d``: ``|v| <= d`` reads 0; beyond it the value is rescaled to stay continuous,
   ``sign(v) * (|v| - d) / (1 - d)``, so a resting hand does not drift the arm.
3. Sensitivity: multiplied per axis, then clipped to [-1, 1] (the env's action box).

Buttons (by index in ``pyspacemouse``'s ``buttons`` list): ``gripper_button`` toggles the gripper
on each press; ``intervention_button`` either toggles intervention on each press
(``intervention_mode="toggle"``) or holds it while pressed (``"hold"``). In toggle mode, pressing
both buttons at once is an emergency stop (when ``estop_on_both``): ``emergency_stop`` is then
True in every command until :meth:`SpaceMouse.reset`, so an env polling once per step cannot miss
it.

The device counts as intervening while any axis is beyond the deadzone, while the intervention
button holds it, or while the intervention toggle is on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hardware.errors import ConfigError, DeviceNotFoundError
from hardware.teleop.base import TeleopCommand

_UDEV_HELP = (
    "On Linux, allow your user to read 3Dconnexion devices with a udev rule:\n"
    '  echo \'KERNEL=="hidraw*", ATTRS{idVendor}=="256f", MODE="0666"\' | '
    "sudo tee /etc/udev/rules.d/99-spacemouse.rules\n"
    '  echo \'KERNEL=="hidraw*", ATTRS{idVendor}=="046d", MODE="0666"\' | '
    "sudo tee -a /etc/udev/rules.d/99-spacemouse.rules\n"
    "  sudo udevadm control --reload && sudo udevadm trigger\n"
    "then unplug and replug the SpaceMouse (256f is 3Dconnexion's vendor id, 046d the older "
    "Logitech-made models). Also make sure the 3Dconnexion driver (3dxsrv/spacenavd) is not "
    "holding the device, and that `pip install daft[real]` installed pyspacemouse and hidapi."
)


@dataclass
class RawSpaceMouseReading:
    """One raw device reading.

    Attributes:
        axes: (6,) ``x, y, z, roll, pitch, yaw`` in the device frame, each in [-1, 1].
        buttons: pressed state per button (index 0 = left button).
        t: device timestamp [s] (monotonic), when known.
    """

    axes: np.ndarray
    buttons: tuple[int, ...] = (0, 0)
    t: float = 0.0

    def __post_init__(self) -> None:
        self.axes = np.asarray(self.axes, dtype=np.float64).reshape(6)
        self.buttons = tuple(int(bool(b)) for b in self.buttons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"axes": self.axes.tolist(), "buttons": list(self.buttons), "t": float(self.t)}


@dataclass
class SpaceMouseMapping:
    """Device frame -> robot base frame, deadzone, sensitivity and buttons (module docstring).

    Attributes:
        translation_perm: device axis feeding robot x, y, z (indices into x, y, z).
        translation_sign: sign applied to each robot translation axis.
        rotation_perm: device rotation axis feeding robot roll, pitch, yaw (indices 0..2 into
            roll, pitch, yaw).
        rotation_sign: sign applied to each robot rotation axis.
        deadzone: per-axis deadzone in [0, 1) (scalar or 6 values).
        sensitivity: per-axis gain (scalar or 6 values), applied after the deadzone.
        gripper_button: index of the gripper-toggle button.
        intervention_button: index of the intervention button.
        intervention_mode: "toggle" or "hold".
        estop_on_both: both buttons pressed together = emergency stop (toggle mode only).
    """

    translation_perm: tuple[int, int, int] = (1, 0, 2)
    translation_sign: tuple[float, float, float] = (1.0, -1.0, 1.0)
    rotation_perm: tuple[int, int, int] = (1, 0, 2)
    rotation_sign: tuple[float, float, float] = (1.0, -1.0, -1.0)
    deadzone: float | Sequence[float] = 0.1
    sensitivity: float | Sequence[float] = 1.0
    gripper_button: int = 0
    intervention_button: int = 1
    intervention_mode: str = "toggle"
    estop_on_both: bool = True

    def __post_init__(self) -> None:
        for name in ("translation_perm", "rotation_perm"):
            perm = tuple(int(i) for i in getattr(self, name))
            if sorted(perm) != [0, 1, 2]:
                raise ConfigError(f"{name} must be a permutation of (0, 1, 2); got {perm}")
            setattr(self, name, perm)
        for name in ("translation_sign", "rotation_sign"):
            sign = tuple(float(s) for s in getattr(self, name))
            if len(sign) != 3 or any(s not in (-1.0, 1.0) for s in sign):
                raise ConfigError(f"{name} must be three values of +1 or -1; got {sign}")
            setattr(self, name, sign)
        dz = np.broadcast_to(np.asarray(self.deadzone, dtype=np.float64), (6,)).copy()
        if np.any(dz < 0) or np.any(dz >= 1):
            raise ConfigError(f"deadzone must be in [0, 1) per axis; got {dz.tolist()}")
        gain = np.broadcast_to(np.asarray(self.sensitivity, dtype=np.float64), (6,)).copy()
        if np.any(gain <= 0) or not np.all(np.isfinite(gain)):
            raise ConfigError(f"sensitivity must be finite and > 0 per axis; got {gain.tolist()}")
        self._deadzone, self._gain = dz, gain
        if self.intervention_mode not in ("toggle", "hold"):
            raise ConfigError(
                f"intervention_mode must be 'toggle' or 'hold'; got {self.intervention_mode!r}"
            )
        if (
            self.gripper_button == self.intervention_button
            or min(self.gripper_button, self.intervention_button) < 0
        ):
            raise ConfigError(
                "gripper_button and intervention_button must be distinct indices >= 0"
            )

    def map_axes(self, axes: np.ndarray) -> np.ndarray:
        """(6,) device axes -> (6,) normalised base-frame command (steps 1-3)."""
        u = np.asarray(axes, dtype=np.float64).reshape(6)
        if not np.all(np.isfinite(u)):
            u = np.nan_to_num(u, nan=0.0, posinf=1.0, neginf=-1.0)  # a glitchy HID report
        u = np.clip(u, -1.0, 1.0)
        v = np.empty(6)
        for i in range(3):
            v[i] = self.translation_sign[i] * u[self.translation_perm[i]]
            v[3 + i] = self.rotation_sign[i] * u[3 + self.rotation_perm[i]]
        mag = np.abs(v)
        out = np.where(
            mag <= self._deadzone, 0.0, np.sign(v) * (mag - self._deadzone) / (1 - self._deadzone)
        )
        return np.clip(out * self._gain, -1.0, 1.0)


class SpaceMouseState:
    """Turns a stream of raw readings into :class:`TeleopCommand` s (edges, toggles, gripper).

    Shared by :class:`SpaceMouse` and the replaying mock, so tests exercise the real code path.
    """

    def __init__(self, mapping: SpaceMouseMapping) -> None:
        self.mapping = mapping
        self.reset()

    def reset(self) -> None:
        """Gripper open, intervention toggle off, no button held."""
        self.gripper = -1.0
        self.intervention_toggle = False
        self.emergency_stop = False
        self.intervening = False
        self._prev = (0, 0)

    def sync_gripper(self, policy_gripper: float) -> None:
        """Follow the policy's gripper while hands-off, so taking over does not flip it."""
        if not self.intervening:
            self.gripper = 1.0 if policy_gripper > 0 else -1.0

    def update(self, raw: RawSpaceMouseReading) -> TeleopCommand:
        """Map one reading; button presses act on their rising edge."""
        m = self.mapping
        n = max(m.gripper_button, m.intervention_button) + 1
        buttons = tuple(raw.buttons) + (0,) * max(0, n - len(raw.buttons))
        g_now, i_now = buttons[m.gripper_button], buttons[m.intervention_button]
        g_prev = self._prev[0]
        i_prev = self._prev[1]
        self._prev = (g_now, i_now)
        # In hold mode, holding intervention while toggling the gripper is the normal gesture,
        # so both buttons only mean "stop" in toggle mode.
        both = bool(m.estop_on_both and m.intervention_mode == "toggle" and g_now and i_now)
        self.emergency_stop = self.emergency_stop or both
        estop = self.emergency_stop
        if not both:
            if g_now and not g_prev:
                self.gripper = -self.gripper
            if m.intervention_mode == "toggle" and i_now and not i_prev:
                self.intervention_toggle = not self.intervention_toggle
        action = m.map_axes(raw.axes)
        deflected = bool(np.any(action != 0.0))
        held = m.intervention_mode == "hold" and bool(i_now)
        pressed = frozenset(
            name for name, on in (("gripper", g_now), ("intervention", i_now)) if on
        ) | frozenset(f"button{i}" for i, b in enumerate(buttons) if b)
        self.intervening = deflected or held or self.intervention_toggle or estop
        return TeleopCommand(
            translation=action[:3],
            rotation=action[3:],
            gripper=self.gripper,
            intervening=self.intervening,
            emergency_stop=estop,
            buttons=pressed,
            timestamp=time.monotonic(),
        )


class _MappedSpaceMouse:
    """What every SpaceMouse-shaped device does with its raw readings: one mapping, one state.

    Subclasses provide ``read_raw()`` and set ``self._state``; the real device and the replayed
    recording share this code, so tests of the recording exercise the real mapping.
    """

    _state: SpaceMouseState

    def read_raw(self) -> RawSpaceMouseReading:
        raise NotImplementedError

    def read(self) -> TeleopCommand:
        """The latest command in the base frame (module docstring)."""
        return self._state.update(self.read_raw())

    def on_step(self, observation: Any, policy_action: np.ndarray, info: dict[str, Any]) -> None:
        """Track the policy's gripper while the operator is hands-off."""
        if policy_action is not None and len(policy_action) >= 7:
            self._state.sync_gripper(float(policy_action[6]))

    def reset(self) -> None:
        """Drop toggles and open the gripper."""
        self._state.reset()


@dataclass
class SpaceMouseConfig:
    """Configuration of :class:`SpaceMouse`.

    Attributes:
        mapping: axis/button mapping (defaults documented in the module docstring).
        device: ``pyspacemouse`` device name to open (None: the first one found).
        record: keep every raw reading in :attr:`SpaceMouse.recording` (for the mock).
    """

    mapping: SpaceMouseMapping = field(default_factory=SpaceMouseMapping)
    device: str | None = None
    record: bool = False


def _import_pyspacemouse() -> Any:
    try:
        import pyspacemouse
    except ImportError as exc:
        raise DeviceNotFoundError(
            "the SpaceMouse needs pyspacemouse: `pip install daft[real]` (or `pip install "
            "pyspacemouse`, which also needs the hidapi system library). No SpaceMouse? Use "
            "make_teleop('keyboard')."
        ) from exc
    return pyspacemouse


class SpaceMouse(_MappedSpaceMouse):
    """A 3Dconnexion SpaceMouse behind the :class:`~hardware.teleop.base.TeleopDevice` protocol."""

    name = "spacemouse"

    def __init__(self, config: SpaceMouseConfig | None = None) -> None:
        self.config = config or SpaceMouseConfig()
        self._state = SpaceMouseState(self.config.mapping)
        self._lib: Any = None
        self.recording: list[RawSpaceMouseReading] = []

    def connect(self) -> None:
        """Open the device; DeviceNotFoundError explains the udev fix when it cannot."""
        lib = _import_pyspacemouse()
        try:
            kwargs = {"device": self.config.device} if self.config.device else {}
            opened = lib.open(**kwargs)
        except Exception as exc:  # hid raises OSError/IOError on permission problems
            raise DeviceNotFoundError(
                f"could not open the SpaceMouse ({exc}).\n{_UDEV_HELP}"
            ) from exc
        if not opened:
            raise DeviceNotFoundError(
                f"no SpaceMouse found or it could not be opened.\n{_UDEV_HELP}"
            )
        self._lib = lib

    def read_raw(self) -> RawSpaceMouseReading:
        """One raw reading from pyspacemouse (non-blocking)."""
        if self._lib is None:
            raise DeviceNotFoundError("SpaceMouse is not connected; call connect() first")
        s = self._lib.read()
        raw = RawSpaceMouseReading(
            axes=[s.x, s.y, s.z, s.roll, s.pitch, s.yaw],
            buttons=tuple(getattr(s, "buttons", ()) or ()),
            t=float(getattr(s, "t", time.monotonic())),
        )
        if self.config.record:
            self.recording.append(raw)
        return raw

    def disconnect(self) -> None:
        """Close the device (safe to call twice)."""
        if self._lib is not None:
            try:
                self._lib.close()
            except Exception:  # closing an unplugged device may fail; nothing to do about it
                pass
            self._lib = None


def save_stream(path: str | Path, readings: Sequence[RawSpaceMouseReading]) -> Path:
    """Save raw readings as JSON (``.json``) or numpy (``.npz``: ``axes`` (T,6), ``buttons`` (T,B), ``t``)."""
    path = Path(path)
    if path.suffix == ".json":
        path.write_text(json.dumps({"version": 1, "readings": [r.to_dict() for r in readings]}))
    elif path.suffix == ".npz":
        n_buttons = max((len(r.buttons) for r in readings), default=2)
        buttons = np.zeros((len(readings), n_buttons), dtype=np.int8)
        for i, r in enumerate(readings):
            buttons[i, : len(r.buttons)] = r.buttons
        np.savez(
            path,
            axes=np.array([r.axes for r in readings], dtype=np.float64).reshape(-1, 6),
            buttons=buttons,
            t=np.array([r.t for r in readings], dtype=np.float64),
        )
    else:
        raise ConfigError(f"SpaceMouse streams are saved as .json or .npz; got {path.name!r}")
    return path


def load_stream(path: str | Path) -> list[RawSpaceMouseReading]:
    """Load a stream written by :func:`save_stream`."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"SpaceMouse stream file {path} does not exist")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            return [
                RawSpaceMouseReading(r["axes"], tuple(r["buttons"]), r.get("t", 0.0))
                for r in data["readings"]
            ]
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return [
                    RawSpaceMouseReading(a, tuple(b), t)
                    for a, b, t in zip(data["axes"], data["buttons"], data["t"], strict=True)
                ]
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a valid SpaceMouse stream: {exc}") from exc
    raise ConfigError(f"SpaceMouse streams are .json or .npz files; got {path.name!r}")


if __name__ == "__main__":  # pragma: no cover - interactive check of the mapping
    mouse = SpaceMouse()
    mouse.connect()
    try:
        while True:
            cmd = mouse.read()
            print(
                f"t={np.round(cmd.translation, 2)} r={np.round(cmd.rotation, 2)} "
                f"grip={cmd.gripper:+.0f} intervening={cmd.intervening} estop={cmd.emergency_stop}",
                end="\r",
            )
            time.sleep(0.05)
    except KeyboardInterrupt:
        mouse.disconnect()
