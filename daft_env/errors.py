"""Errors raised by the environment layer; all derive from :class:`hardware.errors.DaftError`."""

from __future__ import annotations

from hardware.errors import ConfigError, DaftError, HardwareError


class UnknownTaskError(ConfigError):
    """A task name or env id that DAFT does not know. The message lists the valid ones."""


class InvalidActionError(DaftError, ValueError):
    """An action of the wrong shape, or containing NaN or infinity."""


class BackendError(DaftError):
    """A backend (MuJoCo or real arm) could not do what was asked."""


class StoreError(DaftError):
    """The episode store is missing, unreadable or inconsistent."""


class CorruptEpisodeError(StoreError):
    """One episode file is corrupt or truncated. The store skips it and names the file."""


class NoFramesError(StoreError):
    """A store or frame folder holds no labelled frames (or one class only) to learn success from."""


class CollectionError(DaftError):
    """Demonstrations could not be collected (the expert kept failing, or the env is unusable)."""


class ModelFileError(DaftError, ValueError):
    """A saved model file (the success classifier) is missing, unreadable or of another format."""


__all__ = [
    "BackendError",
    "CollectionError",
    "ConfigError",
    "CorruptEpisodeError",
    "DaftError",
    "HardwareError",
    "InvalidActionError",
    "ModelFileError",
    "NoFramesError",
    "StoreError",
    "UnknownTaskError",
]
