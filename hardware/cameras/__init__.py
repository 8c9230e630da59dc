"""Cameras behind the :class:`Camera` interface, built by name.

``make_camera("opencv", source=0, size=(128, 128))``, ``make_camera("opencv", source="wrist.mp4",
loop=True)``, ``make_camera("realsense", serial=...)``, ``make_camera("mock")``. ``daft_env`` may
register its rendered MuJoCo camera with ``register_camera``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hardware.cameras.base import Camera
from hardware.cameras.mock import MockCamera, MockCameraConfig
from hardware.cameras.opencv import OpenCVCamera, OpenCVCameraConfig
from hardware.cameras.preprocess import HEAD_SIZE, WRIST_SIZE, center_crop_square, preprocess
from hardware.registry import Registry

_CAMERAS: Registry[Camera] = Registry("camera")
_CAMERAS.register("opencv", OpenCVCamera, OpenCVCameraConfig)
_CAMERAS.register("mock", MockCamera, MockCameraConfig)


def _make_realsense(config: Any) -> Camera:
    # Imported on use: pyrealsense2 is an optional extra.
    from hardware.cameras.realsense import RealSenseCamera

    return RealSenseCamera(config)


def _register_realsense() -> None:
    from hardware.cameras.realsense import RealSenseCameraConfig

    _CAMERAS.register("realsense", _make_realsense, RealSenseCameraConfig)


_register_realsense()


def register_camera(
    name: str,
    factory: Callable[..., Camera],
    config_cls: type | None = None,
    *,
    overwrite: bool = False,
) -> None:
    """Make ``make_camera(name, ...)`` build a camera with ``factory``."""
    _CAMERAS.register(name, factory, config_cls, overwrite=overwrite)


def make_camera(name: str, config: Any = None, /, **kwargs: Any) -> Camera:
    """Build the camera registered as ``name``; unknown names raise ConfigError listing valid ones."""
    return _CAMERAS.make(name, config, **kwargs)


def camera_names() -> list[str]:
    """Names accepted by :func:`make_camera`."""
    return _CAMERAS.names()


__all__ = [
    "HEAD_SIZE",
    "WRIST_SIZE",
    "Camera",
    "MockCamera",
    "MockCameraConfig",
    "OpenCVCamera",
    "OpenCVCameraConfig",
    "camera_names",
    "center_crop_square",
    "make_camera",
    "preprocess",
    "register_camera",
]
