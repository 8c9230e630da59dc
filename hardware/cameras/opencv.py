"""OpenCV cameras: a USB/V4L2 device by index or path, or a video file standing in for one.

A video file opened as a camera is how the real-robot path is tested without hardware: frames are
paced at the file's frame rate (as a camera would deliver them), optionally looping; a file that
ends without looping stops delivering, which the base class reports as stale.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hardware.cameras.base import Camera
from hardware.errors import ConfigError, DeviceNotFoundError


@dataclass
class OpenCVCameraConfig:
    """Configuration of :class:`OpenCVCamera`.

    Attributes:
        source: device index (0 = /dev/video0), a device path, or a video file path.
        name: label for messages ("wrist", "head").
        size: (height, width) output after centre-crop and resize; None keeps raw frames.
        width: capture width requested from a device [px] (None: driver default).
        height: capture height requested from a device [px].
        fps: capture rate requested from a device, or the pacing rate of a file when it has none.
        loop: restart a video file at its end.
        pace: deliver file frames at the file's rate (False: as fast as decoded).
        max_age_s: frames older than this are stale [s].
        first_frame_timeout_s: how long connect() waits for a first frame [s].
    """

    source: int | str = 0
    name: str = "camera"
    size: tuple[int, int] | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    loop: bool = False
    pace: bool = True
    max_age_s: float = 0.5
    first_frame_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if isinstance(self.source, bool) or not isinstance(self.source, (int, str, Path)):
            raise ConfigError(
                f"camera source must be a device index or a path; got {self.source!r}"
            )
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"fps must be > 0; got {self.fps}")


def _is_device(source: int | str) -> bool:
    return isinstance(source, int) or str(source).startswith("/dev/")


class OpenCVCamera(Camera):
    """``cv2.VideoCapture`` behind the :class:`Camera` interface (RGB uint8 frames)."""

    def __init__(self, config: OpenCVCameraConfig | None = None) -> None:
        self.config = config or OpenCVCameraConfig()
        super().__init__(
            name=self.config.name,
            max_age_s=self.config.max_age_s,
            size=self.config.size,
            first_frame_timeout_s=self.config.first_frame_timeout_s,
        )
        self._cap: cv2.VideoCapture | None = None
        self._is_file = not _is_device(self.config.source)
        self._period = 0.0
        self._next_due = 0.0
        self._file_ended = False

    @property
    def device(self) -> str:
        """/dev/videoN for an index, else the path."""
        src = self.config.source
        return f"/dev/video{src}" if isinstance(src, int) else str(src)

    def _open(self) -> None:
        src = self.config.source
        if self._is_file:
            if not Path(src).is_file():
                raise DeviceNotFoundError(f"camera {self.name!r}: video file {src} does not exist")
            cap = cv2.VideoCapture(str(src))
        else:
            if sys.platform.startswith("linux") and not os.path.exists(self.device):
                raise DeviceNotFoundError(
                    f"camera {self.name!r}: {self.device} does not exist. List cameras with "
                    "`ls /dev/video*` or `v4l2-ctl --list-devices` and set the right index."
                )
            cap = cv2.VideoCapture(src)
            for prop, value in (
                (cv2.CAP_PROP_FRAME_WIDTH, self.config.width),
                (cv2.CAP_PROP_FRAME_HEIGHT, self.config.height),
                (cv2.CAP_PROP_FPS, self.config.fps),
            ):
                if value is not None:
                    cap.set(prop, float(value))
        if not cap.isOpened():
            cap.release()
            hint = (
                "the file may be corrupt or use a codec OpenCV cannot decode"
                if self._is_file
                else "check the cable, that your user is in the `video` group, and that no other "
                "program holds the camera"
            )
            raise DeviceNotFoundError(f"camera {self.name!r}: could not open {self.device}; {hint}")
        self._cap = cap
        file_fps = cap.get(cv2.CAP_PROP_FPS) if self._is_file else 0.0
        fps = file_fps if file_fps and file_fps > 0 else (self.config.fps or 30.0)
        self._period = 1.0 / fps if (self._is_file and self.config.pace) else 0.0
        self._next_due = time.monotonic()
        self._file_ended = False

    def _grab(self) -> np.ndarray | None:
        cap = self._cap
        if cap is None:
            return None
        if self._period:
            delay = self._next_due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return None
            self._next_due = max(self._next_due + self._period, time.monotonic() - self._period)
        ok, frame = cap.read()
        if not ok and self._is_file and self.config.loop:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = cap.read()
        if not ok or frame is None:
            if self._is_file:
                self._file_ended = True
            return None
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def _end_of_stream(self) -> bool:
        return self._file_ended or self._stop.is_set()

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
