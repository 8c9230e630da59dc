"""Replaying teleop devices for tests: a recorded SpaceMouse stream through the real mapping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hardware.errors import ConfigError, DeviceNotFoundError
from hardware.teleop.spacemouse import (
    RawSpaceMouseReading,
    SpaceMouseMapping,
    SpaceMouseState,
    _MappedSpaceMouse,
    load_stream,
    save_stream,
)


@dataclass
class RecordedTeleopConfig:
    """Configuration of :class:`RecordedSpaceMouse`.

    Attributes:
        stream: the raw readings to replay, one per :meth:`~RecordedSpaceMouse.read`: a list of
            :class:`RawSpaceMouseReading`, of ``(axes6, buttons)`` pairs, or a path to a ``.json``
            / ``.npz`` file from :func:`~hardware.teleop.spacemouse.save_stream`.
        mapping: the same mapping the real SpaceMouse uses.
        loop: start again at the end; otherwise the device rests (zero axes, no buttons).
        connected: False imitates an unplugged device (connect() raises).
    """

    stream: Any = field(default_factory=list)
    mapping: SpaceMouseMapping = field(default_factory=SpaceMouseMapping)
    loop: bool = False
    connected: bool = True


def _coerce(stream: Any) -> list[RawSpaceMouseReading]:
    if isinstance(stream, (str, Path)):
        return load_stream(stream)
    out = []
    for i, item in enumerate(stream):
        if isinstance(item, RawSpaceMouseReading):
            out.append(item)
        elif isinstance(item, dict):
            out.append(
                RawSpaceMouseReading(
                    item["axes"], tuple(item.get("buttons", ())), item.get("t", 0.0)
                )
            )
        else:
            try:
                axes, buttons = item
                out.append(RawSpaceMouseReading(axes, tuple(buttons)))
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"stream entry {i} must be a RawSpaceMouseReading, a dict or (axes6, buttons); "
                    f"got {item!r}"
                ) from exc
    return out


class RecordedSpaceMouse(_MappedSpaceMouse):
    """A SpaceMouse that replays recorded raw readings through :class:`SpaceMouseState`."""

    name = "mock"

    def __init__(self, config: RecordedTeleopConfig | None = None) -> None:
        self.config = config or RecordedTeleopConfig()
        self.readings = _coerce(self.config.stream)
        self._state = SpaceMouseState(self.config.mapping)
        self._index = 0
        self._connected = False

    @classmethod
    def from_stream(cls, stream: Any, **kwargs: Any) -> RecordedSpaceMouse:
        """Shorthand: ``RecordedSpaceMouse.from_stream(readings, loop=True)``."""
        return cls(RecordedTeleopConfig(stream=stream, **kwargs))

    @property
    def exhausted(self) -> bool:
        """True once every reading was replayed (never, when looping)."""
        return not self.config.loop and self._index >= len(self.readings)

    def connect(self) -> None:
        """Succeeds unless configured as unplugged."""
        if not self.config.connected:
            raise DeviceNotFoundError("mock SpaceMouse configured as not connected")
        self._connected = True

    def read_raw(self) -> RawSpaceMouseReading:
        """The next recorded reading (a resting device once the stream ends)."""
        if not self._connected:
            raise DeviceNotFoundError("mock SpaceMouse is not connected; call connect() first")
        if self.readings and self.config.loop:
            raw = self.readings[self._index % len(self.readings)]
        elif self._index < len(self.readings):
            raw = self.readings[self._index]
        else:
            raw = RawSpaceMouseReading(np.zeros(6), (0, 0))
        self._index += 1
        return raw

    # read/on_step/reset come from _MappedSpaceMouse: the real device's code. reset() forgets
    # toggles but keeps the stream position (an episode boundary is not a rewind).

    def rewind(self) -> None:
        """Replay from the first reading."""
        self._index = 0
        self._state.reset()

    def disconnect(self) -> None:
        """Mark disconnected."""
        self._connected = False


#: The name the brief and older code use for the replaying device.
RecordedTeleop = RecordedSpaceMouse

__all__ = [
    "RecordedSpaceMouse",
    "RecordedTeleop",
    "RecordedTeleopConfig",
    "load_stream",
    "save_stream",
    "stream_from_arrays",
]


def stream_from_arrays(
    axes: Sequence[Sequence[float]], buttons: Sequence[Sequence[int]] | None = None
) -> list[RawSpaceMouseReading]:
    """Build a stream from (T, 6) axes and optional (T, B) buttons."""
    axes_arr = np.asarray(axes, dtype=np.float64).reshape(-1, 6)
    if buttons is None:
        buttons = [(0, 0)] * len(axes_arr)
    if len(buttons) != len(axes_arr):
        raise ConfigError(f"axes has {len(axes_arr)} steps but buttons has {len(buttons)}")
    return [RawSpaceMouseReading(a, tuple(b)) for a, b in zip(axes_arr, buttons, strict=True)]
