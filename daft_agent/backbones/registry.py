"""The :class:`Backbone` protocol, h = V(s, l_task) (Eq. 3), and the one registry of backbones.

Every backbone, trainable or frozen, is registered by name in :data:`BACKBONES`, a
:class:`hardware.registry.Registry` (clash checks, the valid names in its errors). The built-in
ones are named here as lazy ``"module:Class"`` paths, so this module imports none of them and
the imports run one way: a backbone module never imports the registry to register itself, and
``transformers`` loads only when a frozen VLA is built. A user's own backbone is one class
registered with :func:`register_backbone`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from gymnasium import spaces
from torch import nn

from hardware.registry import Registry

#: observation key of a frozen backbone's cached features h (trainable.EmbeddingBackbone)
EMBEDDING_KEY = "embedding"


@runtime_checkable
class Backbone(Protocol):
    """h = V(s, l_task) (Eq. 3): observations -> features.

    Attributes:
        features_dim: size of h.
        frozen: True when the backbone is pretrained and not trained by the learner; its features
            are then cached per observation (:mod:`daft_agent.backbones.cache`).
    """

    features_dim: int
    frozen: bool

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Features of shape (B, features_dim) for a batch of observations."""


#: built-in backbones: name -> "module:Class", imported when first built or asked about
BUILT_IN: dict[str, str] = {
    "state": "daft_agent.backbones.trainable:StateBackbone",
    "pixels": "daft_agent.backbones.trainable:PixelBackbone",
    "embedding": "daft_agent.backbones.trainable:EmbeddingBackbone",
    "generic": "daft_agent.backbones.generic:GenericBackbone",
    "smolvla": "daft_agent.backbones.smolvla:SmolVLABackbone",
    "readout": "daft_agent.backbones.readout:ReadoutBackbone",
}


class _Lazy:
    """A backbone class named by ``"module:Class"``, imported on first use."""

    def __init__(self, path: str) -> None:
        self.path = path

    def resolve(self) -> type[nn.Module]:
        module, _, name = self.path.partition(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, **kwargs: Any) -> nn.Module:
        return self.resolve()(**kwargs)


#: every backbone by name; ``make`` builds one as ``cls(observation_space=..., **kwargs)``
BACKBONES: Registry[nn.Module] = Registry("backbone")
_CLASSES: dict[str, _Lazy | type[nn.Module]] = {}
for _name, _path in BUILT_IN.items():
    _CLASSES[_name] = _Lazy(_path)
    BACKBONES.register(_name, _CLASSES[_name])


def register_backbone(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator registering a user's backbone under ``name`` (a clash is an error)."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        BACKBONES.register(name, cls)
        _CLASSES[name] = cls
        return cls

    return deco


def backbone_class(name: str) -> type[nn.Module]:
    """The class registered as ``name``.

    Raises:
        ConfigError: an unknown name (the message lists the registered ones).
    """
    if name not in _CLASSES:
        BACKBONES.config_cls(name)  # raises the registry's error, naming the valid names
    entry = _CLASSES[name]
    return entry.resolve() if isinstance(entry, _Lazy) else entry


def frozen_backbones() -> list[str]:
    """Names of the registered frozen backbones (their features are cached per observation)."""
    return [n for n in BACKBONES.names() if getattr(backbone_class(n), "frozen", False)]


def make_backbone(name: str, observation_space: spaces.Dict, **kwargs: Any) -> nn.Module:
    """Build the registered backbone ``name`` for ``observation_space``.

    Raises:
        ConfigError: an unknown name (the message lists the registered ones).
    """
    return BACKBONES.make(name, observation_space=observation_space, **kwargs)


__all__ = [
    "BACKBONES",
    "BUILT_IN",
    "EMBEDDING_KEY",
    "Backbone",
    "backbone_class",
    "frozen_backbones",
    "make_backbone",
    "register_backbone",
]
