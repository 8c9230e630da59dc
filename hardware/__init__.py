"""Drivers only: arm client/server, cameras, teleop devices, safety limits.

This package imports nothing else of DAFT's (see ARCHITECTURE.md).
"""

from hardware.errors import (
    AuthenticationError,
    CameraError,
    ConfigError,
    ConnectionLostError,
    DaftError,
    DeviceNotFoundError,
    HardwareError,
    SafetyError,
)

__all__ = [
    "AuthenticationError",
    "CameraError",
    "ConfigError",
    "ConnectionLostError",
    "DaftError",
    "DeviceNotFoundError",
    "HardwareError",
    "SafetyError",
]
