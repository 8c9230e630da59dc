"""A small name -> factory registry shared by the arm, camera and teleop factories.

LeRobot's shape (STYLE.md): every implementation has a dataclass config and is registered by name;
a factory looks the name up in a dict rather than walking an if-chain, so a new device is one new
file plus one ``register`` call, and downstream packages (``daft_env``'s MuJoCo arm, its simulated
operator) can add themselves without editing ``hardware``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from hardware.errors import ConfigError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class _Entry(Generic[T]):
    factory: Callable[..., T]
    config_cls: type | None


class Registry(Generic[T]):
    """Maps a device name to a factory and, optionally, the dataclass config it accepts.

    Args:
        kind: what is registered ("arm", "camera", "teleop device"); used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, _Entry[T]] = {}

    def register(
        self,
        name: str,
        factory: Callable[..., T],
        config_cls: type | None = None,
        *,
        overwrite: bool = False,
    ) -> None:
        """Register ``factory`` under ``name``.

        Args:
            name: the name users pass to the factory (lower case, no spaces).
            factory: called as ``factory(config)`` when ``config_cls`` is given, otherwise as
                ``factory(**config)``.
            config_cls: a dataclass whose fields are the accepted keyword arguments.
            overwrite: allow replacing an existing entry (tests, plugins); otherwise a clash is an
                error, because two packages silently fighting over one name is a hard bug to find.
        """
        if not isinstance(name, str) or not name or name != name.strip():
            raise ConfigError(f"{self.kind} names must be non-empty strings; got {name!r}")
        if not callable(factory):
            raise ConfigError(f"{self.kind} factory for {name!r} must be callable; got {factory!r}")
        if config_cls is not None and not dataclasses.is_dataclass(config_cls):
            raise ConfigError(f"config_cls for {self.kind} {name!r} must be a dataclass")
        if name in self._entries and not overwrite:
            raise ConfigError(
                f"a {self.kind} named {name!r} is already registered; pick another name or pass "
                "overwrite=True"
            )
        self._entries[name] = _Entry(factory, config_cls)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def config_cls(self, name: str) -> type | None:
        """The config dataclass registered for ``name`` (None when the factory takes kwargs)."""
        return self._lookup(name).config_cls

    def _lookup(self, name: str) -> _Entry[T]:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def make(self, name: str, config: Any = None, /, **kwargs: Any) -> T:
        """Build the device registered as ``name``.

        Args:
            name: a registered name.
            config: an instance of the registered config dataclass (optional).
            **kwargs: config fields, used when ``config`` is None.

        Raises:
            ConfigError: unknown name (the message lists valid names) or unknown config fields.
        """
        entry = self._lookup(name)
        if entry.config_cls is None:
            if config is not None:
                raise ConfigError(f"{self.kind} {name!r} takes keyword arguments, not a config")
            return entry.factory(**kwargs)
        if config is None:
            fields = {f.name for f in dataclasses.fields(entry.config_cls) if f.init}
            unknown = sorted(set(kwargs) - fields)
            if unknown:
                raise ConfigError(
                    f"unknown option(s) {unknown} for {self.kind} {name!r}; valid options: "
                    f"{', '.join(sorted(fields))}"
                )
            config = entry.config_cls(**kwargs)
        elif kwargs:
            config = dataclasses.replace(config, **kwargs)
        if not isinstance(config, entry.config_cls):
            raise ConfigError(
                f"{self.kind} {name!r} expects a {entry.config_cls.__name__}; got "
                f"{type(config).__name__}"
            )
        return entry.factory(config)
