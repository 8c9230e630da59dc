"""Keyboard teleop for users without a SpaceMouse, reading keys from a pluggable source.

Default keys (base frame: +x forward, +y left, +z up)::

    w / s   +x / -x        u / o   +roll / -roll       space  toggle gripper
    a / d   +y / -y        i / k   +pitch / -pitch     t      toggle intervention
    r / f   +z / -z        j / l   +yaw / -yaw         x      EMERGENCY STOP (latched until reset)
    :       type a refinement command ("move left"), Enter sends it, Esc cancels

A terminal reports key presses, not releases, and repeats a held key only after a delay of
about 0.25-0.6 s. So a motion key commands ``+-speed`` on its axis for ``hold_reads`` reads after
its latest press (default 3, i.e. 0.3 s at 10 Hz); an opposite key on the same axis cancels it at
once. The device counts as intervening while any motion is active or the intervention toggle is
on. ``emergency_stop`` stays True from the ``x`` press until :meth:`KeyboardTeleop.reset`.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from hardware.errors import ConfigError, DeviceNotFoundError
from hardware.teleop.base import TeleopCommand

#: action name -> (axis index in the 6-d command, sign)
_MOTIONS = {
    "+x": (0, 1.0),
    "-x": (0, -1.0),
    "+y": (1, 1.0),
    "-y": (1, -1.0),
    "+z": (2, 1.0),
    "-z": (2, -1.0),
    "+roll": (3, 1.0),
    "-roll": (3, -1.0),
    "+pitch": (4, 1.0),
    "-pitch": (4, -1.0),
    "+yaw": (5, 1.0),
    "-yaw": (5, -1.0),
}
_OTHER_ACTIONS = ("gripper", "intervention", "estop", "command")

DEFAULT_KEYMAP: dict[str, str] = {
    "w": "+x",
    "s": "-x",
    "a": "+y",
    "d": "-y",
    "r": "+z",
    "f": "-z",
    "u": "+roll",
    "o": "-roll",
    "i": "+pitch",
    "k": "-pitch",
    "j": "+yaw",
    "l": "-yaw",
    " ": "gripper",
    "t": "intervention",
    "x": "estop",
    ":": "command",
}


class KeySource(Protocol):
    """Where key presses come from."""

    def open(self) -> None:
        """Start delivering keys (raise DeviceNotFoundError if impossible)."""

    def poll(self) -> list[str]:
        """Characters typed since the last poll, oldest first. Never blocks."""

    def close(self) -> None:
        """Stop; restore whatever :meth:`open` changed. Safe to call twice."""


class StdinKeySource:
    """Keys typed in this process's terminal, read without Enter (cbreak mode).

    cbreak rather than raw mode keeps Ctrl-C working as an interrupt.
    """

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream
        self._fd: int | None = None
        self._saved: Any = None

    def open(self) -> None:
        """Switch the terminal to cbreak mode. Opening twice is a no-op.

        A second ``tcgetattr`` would save the cbreak settings as the "original" ones and leave
        the terminal in cbreak mode after :meth:`close`.
        """
        if self._fd is not None:
            return
        stream = self._stream or sys.stdin
        try:
            fd = stream.fileno()
            is_tty = os.isatty(fd)
        except (AttributeError, ValueError, OSError):
            is_tty = False
        if not is_tty:
            raise DeviceNotFoundError(
                "keyboard teleop needs an interactive terminal (stdin is not a TTY). Run it in a "
                "terminal, not under a pipe, nohup or a notebook; or pass another key_source."
            )
        import termios
        import tty

        self._fd = fd
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)

    def poll(self) -> list[str]:
        """Everything typed since the last call."""
        if self._fd is None:
            raise DeviceNotFoundError("keyboard key source is not open; call connect() first")
        keys: list[str] = []
        while select.select([self._fd], [], [], 0)[0]:
            data = os.read(self._fd, 1024)
            if not data:
                break
            keys.extend(data.decode(errors="ignore"))
        return keys

    def close(self) -> None:
        """Restore the terminal settings."""
        if self._fd is not None and self._saved is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        self._fd = None


class ScriptedKeySource:
    """Replays scripted key presses: entry ``i`` is what the ``i``-th poll returns.

    Args:
        steps: per poll, a string of characters (each one a key) or a list of keys.
    """

    def __init__(self, steps: Iterable[str | Sequence[str]]) -> None:
        self._steps = [list(s) for s in steps]
        self._i = 0

    def open(self) -> None:
        """Nothing to open."""

    def poll(self) -> list[str]:
        """The next scripted keys (none once the script ends)."""
        keys = self._steps[self._i] if self._i < len(self._steps) else []
        self._i += 1
        return keys

    def close(self) -> None:
        """Nothing to close."""


@dataclass
class KeyboardConfig:
    """Configuration of :class:`KeyboardTeleop`.

    Attributes:
        keymap: key -> action (``+x``..``-yaw``, ``gripper``, ``intervention``, ``estop``,
            ``command``).
        translation_speed: normalised command of a translation key, in (0, 1].
        rotation_speed: normalised command of a rotation key, in (0, 1].
        hold_reads: reads a motion stays active after its key press (>= 1).
        key_source: where keys come from; None reads this terminal.
    """

    keymap: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_KEYMAP))
    translation_speed: float = 0.5
    rotation_speed: float = 0.5
    hold_reads: int = 3
    key_source: Any = None

    def __post_init__(self) -> None:
        valid = set(_MOTIONS) | set(_OTHER_ACTIONS)
        bad = {k: v for k, v in self.keymap.items() if v not in valid}
        if bad:
            raise ConfigError(f"unknown keyboard actions {bad}; valid actions: {sorted(valid)}")
        if any(not isinstance(k, str) or len(k) != 1 for k in self.keymap):
            raise ConfigError("keyboard keymap keys must be single characters")
        for name in ("translation_speed", "rotation_speed"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in (0, 1]; got {getattr(self, name)}")
        if self.hold_reads < 1:
            raise ConfigError(f"hold_reads must be >= 1; got {self.hold_reads}")


class KeyboardTeleop:
    """A keyboard behind the :class:`~hardware.teleop.base.TeleopDevice` protocol."""

    name = "keyboard"

    def __init__(self, config: KeyboardConfig | None = None) -> None:
        self.config = config or KeyboardConfig()
        self.source: KeySource = self.config.key_source or StdinKeySource()
        self._connected = False
        self.reset()

    def connect(self) -> None:
        """Open the key source (DeviceNotFoundError without a terminal)."""
        self.source.open()
        self._connected = True

    def reset(self) -> None:
        """Gripper open, toggles off, emergency stop cleared, typed text dropped."""
        self._remaining = np.zeros(6, dtype=int)  # reads left per axis
        self._direction = np.zeros(6)
        self.gripper = -1.0
        self.intervention_toggle = False
        self.emergency_stop = False
        self.intervening = False
        self._typing: list[str] | None = None

    def _speed(self, axis: int) -> float:
        return self.config.translation_speed if axis < 3 else self.config.rotation_speed

    def read(self) -> TeleopCommand:
        """Consume keys typed since the last read and return the resulting command."""
        if not self._connected:
            raise DeviceNotFoundError("keyboard teleop is not connected; call connect() first")
        refinement: str | None = None
        self._remaining = np.maximum(self._remaining - 1, 0)
        for key in self.source.poll():
            if self._typing is not None:  # inside a typed refinement command
                if key in ("\n", "\r"):
                    text = "".join(self._typing).strip()
                    refinement = text or None
                    self._typing = None
                elif key == "\x1b":
                    self._typing = None
                elif key in ("\x7f", "\b"):
                    self._typing = self._typing[:-1]
                else:
                    self._typing.append(key)
                continue
            action = self.config.keymap.get(key)
            if action is None:
                continue
            if action in _MOTIONS:
                axis, sign = _MOTIONS[action]
                self._direction[axis] = sign
                self._remaining[axis] = self.config.hold_reads
            elif action == "gripper":
                self.gripper = -self.gripper
            elif action == "intervention":
                self.intervention_toggle = not self.intervention_toggle
            elif action == "estop":
                self.emergency_stop = True
            elif action == "command":
                self._typing = []
        active = self._remaining > 0
        command = np.where(active, self._direction, 0.0) * [self._speed(i) for i in range(6)]
        self.intervening = bool(active.any()) or self.intervention_toggle or self.emergency_stop
        return TeleopCommand(
            translation=command[:3],
            rotation=command[3:],
            gripper=self.gripper,
            intervening=self.intervening,
            emergency_stop=self.emergency_stop,
            buttons=frozenset({"typing"}) if self._typing is not None else frozenset(),
            refinement_command=refinement,
            timestamp=time.monotonic(),
        )

    def on_step(self, observation: Any, policy_action: np.ndarray, info: dict[str, Any]) -> None:
        """Follow the policy's gripper while hands-off, so taking over does not flip it."""
        if not self.intervening and policy_action is not None and len(policy_action) >= 7:
            self.gripper = 1.0 if float(policy_action[6]) > 0 else -1.0

    def disconnect(self) -> None:
        """Restore the terminal."""
        if self._connected:
            self.source.close()
            self._connected = False
