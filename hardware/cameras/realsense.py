"""Intel RealSense colour stream via ``pyrealsense2`` (optional extra ``daft[real]``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware.cameras.base import Camera
from hardware.errors import ConfigError, DeviceNotFoundError


@dataclass
class RealSenseCameraConfig:
    """Configuration of :class:`RealSenseCamera`.

    Attributes:
        serial: device serial number (None: the first camera found).
        name: label for messages.
        width: colour stream width [px] (a mode the camera supports, e.g. 640).
        height: colour stream height [px].
        fps: colour stream rate [Hz].
        size: (height, width) output after centre-crop and resize; None keeps raw frames.
        max_age_s: frames older than this are stale [s].
        timeout_ms: how long one ``wait_for_frames`` may block [ms].
    """

    serial: str | None = None
    name: str = "realsense"
    width: int = 640
    height: int = 480
    fps: int = 30
    size: tuple[int, int] | None = None
    max_age_s: float = 0.5
    timeout_ms: int = 1000


def _import_rs() -> Any:
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        raise ConfigError(
            "RealSense cameras need pyrealsense2: `pip install daft[real]` (or `pip install "
            "pyrealsense2`)"
        ) from exc
    return rs


class RealSenseCamera(Camera):
    """A RealSense colour stream (RGB8) behind the :class:`Camera` interface."""

    def __init__(self, config: RealSenseCameraConfig | None = None) -> None:
        self.config = config or RealSenseCameraConfig()
        super().__init__(
            name=self.config.name, max_age_s=self.config.max_age_s, size=self.config.size
        )
        self._rs = _import_rs()
        self._pipeline: Any = None

    @property
    def device(self) -> str:
        """``RealSense <serial>``."""
        return f"RealSense {self.config.serial or '(first found)'}"

    def _open(self) -> None:
        rs = self._rs
        ctx = rs.context()
        serials = [d.get_info(rs.camera_info.serial_number) for d in ctx.query_devices()]
        if not serials or (self.config.serial and self.config.serial not in serials):
            raise DeviceNotFoundError(
                f"camera {self.name!r}: {self.device} not found; connected RealSense serials: "
                f"{serials or 'none'}. Use a USB 3 port and check `rs-enumerate-devices`."
            )
        cfg = rs.config()
        if self.config.serial:
            cfg.enable_device(self.config.serial)
        cfg.enable_stream(
            rs.stream.color, self.config.width, self.config.height, rs.format.rgb8, self.config.fps
        )
        pipeline = rs.pipeline()
        try:
            pipeline.start(cfg)
        except RuntimeError as exc:
            raise DeviceNotFoundError(
                f"camera {self.name!r}: could not start {self.device} at {self.config.width}x"
                f"{self.config.height}@{self.config.fps}: {exc}. Pick a mode the camera supports."
            ) from exc
        self._pipeline = pipeline

    def _grab(self) -> np.ndarray | None:
        try:
            frames = self._pipeline.wait_for_frames(self.config.timeout_ms)
        except RuntimeError:  # timeout: counted as one failure by the base class
            return None
        color = frames.get_color_frame()
        if not color:
            return None
        return np.asanyarray(color.get_data()).copy()

    def _release(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            finally:
                self._pipeline = None
