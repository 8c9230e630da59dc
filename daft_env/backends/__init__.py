"""Backends behind the ``Backend`` protocol: MuJoCo simulation and the real arm.

Backends are created by name through a small registry, so a new one is one file plus one
:func:`register_backend` call and nothing else changes (STYLE.md, LeRobot-style factories).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from daft_env.backends.base import ActionReport, Backend, TaskStatus
from daft_env.errors import BackendError, ConfigError

#: name -> "module:attribute" of a factory, imported lazily (MuJoCo/real SDKs load only when used).
_BACKENDS: dict[str, str | Callable[..., Backend]] = {
    "mujoco": "daft_env.backends.mujoco:MujocoBackend",
    "real": "daft_env.backends.real:RealBackend",
}


def register_backend(
    name: str, factory: str | Callable[..., Backend], *, overwrite: bool = False
) -> None:
    """Register a backend factory (a callable or a lazy ``"module:attribute"`` path) by name.

    A name that is taken is an error unless ``overwrite`` (tests, plugins): two packages
    silently fighting over one name is a hard bug to find (``hardware.registry`` does the same).
    """
    if not name or not isinstance(name, str):
        raise ConfigError(f"backend name must be a non-empty string, got {name!r}")
    if name in _BACKENDS and not overwrite:
        raise ConfigError(
            f"a backend named {name!r} is already registered; pick another name or pass "
            "overwrite=True"
        )
    _BACKENDS[name] = factory


def available_backends() -> list[str]:
    """Names accepted by :func:`make_backend`."""
    return sorted(_BACKENDS)


def make_backend(name: str, **kwargs: Any) -> Backend:
    """Create the backend registered as ``name`` with ``kwargs``.

    Raises:
        ConfigError: unknown name (the message lists the valid ones).
        BackendError: the backend's module is not installed or not configured yet.
    """
    if name not in _BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; valid backends are {available_backends()}")
    factory = _BACKENDS[name]
    if isinstance(factory, str):
        module_name, attr = factory.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise BackendError(
                    f"the {name!r} backend needs the package {exc.name!r}, which is not "
                    f"installed; install it (for the real arm: pip install -e '.[real]')."
                ) from exc
            raise BackendError(
                f"the {name!r} backend is not installed/configured in this checkout "
                f"({module_name} is missing). Use backend='mujoco' (the '-Sim-v0' ids) or install "
                f"and configure the real-arm backend."
            ) from exc
        factory = getattr(module, attr)
    return factory(**kwargs)


__all__ = [
    "ActionReport",
    "Backend",
    "TaskStatus",
    "available_backends",
    "make_backend",
    "register_backend",
]
