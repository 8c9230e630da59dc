"""Backends behind the ``Backend`` protocol: MuJoCo simulation and the real arm."""

from daft_env.backends.base import ActionReport, Backend, TaskStatus

__all__ = ["ActionReport", "Backend", "TaskStatus"]
