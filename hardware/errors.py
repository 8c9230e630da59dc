"""The DAFT exception hierarchy.

Every error DAFT raises on purpose derives from :class:`DaftError`, so a user can catch one class.
It lives in ``hardware`` because ``hardware`` is the lowest package and imports nothing of ours;
``daft_env.errors`` and the learner's errors extend it. Each message says what went wrong and what
to do about it.
"""

from __future__ import annotations


class DaftError(Exception):
    """Root of every error DAFT raises on purpose."""


class ConfigError(DaftError, ValueError):
    """A configuration value, file or argument is invalid."""


class HardwareError(DaftError):
    """A device (arm, camera, teleop device) failed or misbehaved."""


class DeviceNotFoundError(HardwareError):
    """A device could not be opened: not connected, wrong path, or no permission."""


class ConnectionLostError(HardwareError, ConnectionError):
    """A network peer (arm server, arm client) stopped answering."""


class AuthenticationError(HardwareError):
    """A peer presented a wrong or missing shared token."""


class SafetyError(HardwareError):
    """A command was rejected by the safety layer (NaN, infinite, or otherwise unsafe)."""


class CameraError(HardwareError):
    """A camera disappeared or stopped delivering fresh frames."""
