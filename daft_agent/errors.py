"""Errors raised by the learner; all derive from :class:`hardware.errors.DaftError`."""

from __future__ import annotations

from hardware.errors import ConfigError, DaftError


class AgentConfigError(ConfigError):
    """A hyperparameter of the agent or one of its networks is invalid."""


class SpaceMismatchError(DaftError, ValueError):
    """An env's observation or action space does not match what the agent was built for."""


class CheckpointError(DaftError, ValueError):
    """A checkpoint cannot be loaded into this agent (another config, another env, corrupt)."""


class EmptyStoreError(DaftError):
    """The episode store holds no data that the requested phase needs."""


class UnknownCommandError(DaftError, ValueError):
    """A refinement command that the command encoder's vocabulary does not cover."""


class FleetError(DaftError, RuntimeError):
    """The fleet cannot go on: every robot is gone, or a robot's env raised an error."""


class ExperimentError(DaftError):
    """A trial of an experiment grid failed (``daft experiment``; finished trials are kept)."""


__all__ = [
    "AgentConfigError",
    "CheckpointError",
    "DaftError",
    "EmptyStoreError",
    "ExperimentError",
    "FleetError",
    "SpaceMismatchError",
    "UnknownCommandError",
]
