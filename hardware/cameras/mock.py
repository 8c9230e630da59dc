"""``MockCamera``: synthetic frames at a fixed rate, with switches to stall or vanish."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from hardware.cameras.base import Camera
from hardware.errors import DeviceNotFoundError


@dataclass
class MockCameraConfig:
    """Configuration of :class:`MockCamera`.

    Attributes:
        name: label for messages.
        height: raw frame height [px].
        width: raw frame width [px].
        fps: frame rate [Hz].
        size: (height, width) output after centre-crop and resize; None keeps raw frames.
        max_age_s: frames older than this are stale [s].
        connected: False imitates an absent device (connect() raises DeviceNotFoundError).
    """

    name: str = "mock"
    height: int = 48
    width: int = 64
    fps: float = 50.0
    size: tuple[int, int] | None = None
    max_age_s: float = 0.5
    connected: bool = True


class MockCamera(Camera):
    """Frames whose every pixel holds ``frame_index % 256`` in red, so order is checkable.

    :meth:`stall` makes the next grabs block (a frozen driver); :meth:`unplug` makes them raise
    (a pulled cable); :meth:`resume` undoes a stall.
    """

    def __init__(self, config: MockCameraConfig | None = None) -> None:
        self.config = config or MockCameraConfig()
        super().__init__(
            name=self.config.name, max_age_s=self.config.max_age_s, size=self.config.size
        )
        self._index = 0
        self._running = threading.Event()
        self._running.set()
        self._unplugged = False

    @property
    def device(self) -> str:
        """``mock:<name>``."""
        return f"mock:{self.name}"

    def _open(self) -> None:
        if not self.config.connected:
            raise DeviceNotFoundError(f"camera {self.name!r}: {self.device} is not connected")
        self._index = 0

    def _grab(self) -> np.ndarray | None:
        if self._stop.wait(1.0 / self.config.fps):
            return None
        while not self._running.is_set():  # stalled: block but stay stoppable
            if self._stop.wait(0.01):
                return None
        if self._unplugged:
            raise OSError("device unplugged")
        frame = np.zeros((self.config.height, self.config.width, 3), dtype=np.uint8)
        frame[:, :, 0] = self._index % 256
        self._index += 1
        return frame

    def _end_of_stream(self) -> bool:
        return self._stop.is_set()

    def _release(self) -> None:
        pass

    def stall(self) -> None:
        """Stop delivering frames without an error."""
        self._running.clear()

    def resume(self) -> None:
        """Deliver frames again after :meth:`stall`."""
        self._running.set()

    def unplug(self) -> None:
        """Make the next grab fail as if the cable were pulled."""
        self._unplugged = True
