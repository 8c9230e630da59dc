"""A backbone for any env's Dict observation: each key encoded by the type of its space.

DAFT's own backbones (:mod:`~daft_agent.backbones.trainable`) read the bolt env's keys by name.
:class:`GenericBackbone` reads none by name except ``task_id``; it classifies every key of the
observation space (:func:`classify_space`) and encodes it by its kind:

* ``image``: a uint8 ``Box`` of shape (H, W, C) or (C, H, W), C in 1/3/4, H and W >= 16: its
  own small CNN (``image_features`` outputs), fed either layout at run time;
* ``vector``: any other ``Box`` (any shape, any dtype): flattened, concatenated, standardised by
  a fitted per-dimension mean and std;
* ``task``: the ``Discrete`` key ``task_id``: a learned task embedding;
* ``onehot``: any other ``Discrete``, and ``MultiDiscrete``: one-hot per component;
* ``binary``: ``MultiBinary``: its 0/1 values as they are (already unit scale).

Anything else (``Text``, ``Graph``, ``Sequence``, ``Tuple``, a nested ``Dict``, ...) is a
:class:`~daft_agent.errors.SpaceMismatchError` naming the key and the way out: flatten it into a
``Box``, leave it out with ``keys=[...]``, or register a backbone of one's own with
:func:`~daft_agent.backbones.registry.register_backbone`.

h = [ (x - m) / s, onehots, binaries, CNN_k(image_k) for each image key, E[task_id] ] with
every block in sorted key order; x concatenates the flattened vector keys. The normaliser
(m, s) is fitted once on the demonstrations (:meth:`GenericBackbone.fit_normalizer`), is the
identity until then, and lives in buffers so it saves and loads with the network.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from daft_agent.backbones.trainable import _ConvTower
from daft_agent.errors import AgentConfigError, SpaceMismatchError

#: the one key read by name: a multi-task env's task index (a learned embedding)
TASK_KEY = "task_id"
#: channel counts an image key may have (grey, RGB, RGBA / RGB-D)
IMAGE_CHANNELS = (1, 3, 4)
#: smallest height and width of an image key; a smaller uint8 Box is a vector
MIN_IMAGE_SIDE = 16
#: ``downsample=None`` average-pools an image by min(H, W) // AUTO_SIDE (256x256 -> 64x64)
AUTO_SIDE = 64
#: floor of the fitted standard deviations: a dimension constant in the demonstrations stays
#: near zero instead of blowing up (as in StateBackbone)
STD_FLOOR = 1e-2
#: a vector key with more dimensions than this gets a warning (an image of floats, probably)
BIG_VECTOR = 4096
#: the kinds :func:`classify_space` returns
KINDS = ("image", "vector", "task", "onehot", "binary")


def image_layout(space: spaces.Space) -> tuple[int, int, int, bool] | None:
    """(C, H, W, channel_last) of an image space, or None when ``space`` is not an image."""
    if not (isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3):
        return None
    a, b, c = (int(n) for n in space.shape)
    if c in IMAGE_CHANNELS and min(a, b) >= MIN_IMAGE_SIDE:
        return c, a, b, True
    if a in IMAGE_CHANNELS and min(b, c) >= MIN_IMAGE_SIDE:
        return a, b, c, False
    return None


def _unsupported(key: str, space: spaces.Space, why: str) -> SpaceMismatchError:
    if key == TASK_KEY:
        how = f"declare {TASK_KEY!r} as Discrete(n_tasks), or rename the key if it is no task index"
    elif isinstance(space, (spaces.Dict, spaces.Tuple)):
        how = (
            "flatten it into a Box (gymnasium.wrappers.FlattenObservation or "
            "gymnasium.spaces.flatten_space), or lift its entries to top-level keys"
        )
    else:
        how = "turn it into a Box in an observation wrapper (e.g. encode the text as a vector)"
    return SpaceMismatchError(
        f"the 'generic' backbone cannot encode observation key {key!r} with space {space}: "
        f"{why}. Fix: {how}; or leave the key out with backbone_kwargs={{'keys': [...]}}; or "
        "register your own backbone with daft_agent.backbones.registry.register_backbone"
    )


def classify_space(key: str, space: spaces.Space) -> str:
    """The kind (one of :data:`KINDS`) :class:`GenericBackbone` encodes ``key``'s space as.

    Raises:
        SpaceMismatchError: a space it cannot encode (the message names the key and the fix).
    """
    if key == TASK_KEY:
        if not isinstance(space, spaces.Discrete):
            raise _unsupported(key, space, "the task index must be Discrete")
        return "task"
    if isinstance(space, spaces.Box):
        return "image" if image_layout(space) is not None else "vector"
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        return "onehot"
    if isinstance(space, spaces.MultiBinary):
        return "binary"
    raise _unsupported(key, space, f"{type(space).__name__} spaces are not supported")


def _components(space: spaces.Discrete | spaces.MultiDiscrete) -> tuple[np.ndarray, np.ndarray]:
    """(sizes, starts) of a Discrete (one component) or MultiDiscrete space, flattened."""
    if isinstance(space, spaces.Discrete):
        return np.array([int(space.n)]), np.array([int(space.start)])
    start = getattr(space, "start", np.zeros_like(space.nvec))
    return np.asarray(space.nvec).reshape(-1), np.asarray(start).reshape(-1)


def _select(observation_space: spaces.Space, keys: Iterable[str] | str | None) -> list[str]:
    if not isinstance(observation_space, spaces.Dict):
        raise SpaceMismatchError(
            "the 'generic' backbone needs a Dict observation space; wrap a plain Box as "
            f"Dict({{'observation': box}}). Got {observation_space}"
        )
    valid = sorted(observation_space.spaces)
    if keys is None:
        return valid
    chosen = sorted({keys} if isinstance(keys, str) else set(keys))
    unknown = [k for k in chosen if k not in observation_space.spaces]
    if unknown or not chosen:
        raise SpaceMismatchError(
            f"the 'generic' backbone's keys must be observation keys; "
            f"{'unknown ' + str(unknown) if unknown else 'none given'} (valid: {valid})"
        )
    return chosen


class GenericBackbone(nn.Module):
    """h = V(s, l_task) (Eq. 3) for any Dict observation, each key encoded by its space's kind.

    See the module docstring for the kinds; :attr:`kinds` says what each key became.

    Args:
        observation_space: the env's Dict observation space.
        keys: encode only these keys (None: every key); an unknown key is an error listing the
            valid ones. Unsupported keys left out this way are no error.
        image_features: features of each image key's CNN.
        channels: width of the CNNs' first convolutions.
        downsample: average-pooling factor of every image before its CNN; None: per image,
            min(H, W) // :data:`AUTO_SIDE` (at least 1).
        task_embedding_dim: size of the ``task_id`` embedding.

    Raises:
        SpaceMismatchError: not a Dict, an unknown key, or a key whose space it cannot encode.
        AgentConfigError: an invalid size, or a ``downsample`` larger than an image.
    """

    frozen = False

    def __init__(
        self,
        observation_space: spaces.Dict,
        keys: Iterable[str] | str | None = None,
        image_features: int = 64,
        channels: int = 16,
        downsample: int | None = None,
        task_embedding_dim: int = 8,
    ) -> None:
        super().__init__()
        for name, value in (
            ("image_features", image_features),
            ("channels", channels),
            ("task_embedding_dim", task_embedding_dim),
        ):
            if int(value) < 1:
                raise AgentConfigError(f"{name} must be >= 1, got {value}")
        if downsample is not None and int(downsample) < 1:
            raise AgentConfigError(
                f"downsample must be >= 1 (or None: automatic), got {downsample}"
            )
        chosen = _select(observation_space, keys)
        self.kinds: dict[str, str] = {k: classify_space(k, observation_space[k]) for k in chosen}
        by_kind = {kind: [k for k in chosen if self.kinds[k] == kind] for kind in KINDS}

        self.vector_keys = by_kind["vector"]
        self.vector_dims = [int(np.prod(observation_space[k].shape)) for k in self.vector_keys]
        self.vector_dim = sum(self.vector_dims)
        for k, dim in zip(self.vector_keys, self.vector_dims, strict=True):
            if dim > BIG_VECTOR:
                warnings.warn(
                    f"the 'generic' backbone flattens observation key {k!r} "
                    f"({observation_space[k]}) into a {dim}-d vector; if it is an image, give it "
                    "a uint8 Box (H, W, C) or (C, H, W) so that a CNN encodes it",
                    stacklevel=2,
                )
        self.register_buffer("obs_mean", torch.zeros(self.vector_dim))
        self.register_buffer("obs_std", torch.ones(self.vector_dim))

        # every one-hot component of every Discrete / MultiDiscrete key, encoded in one scatter
        self.onehot_keys = by_kind["onehot"]
        comps = [_components(observation_space[k]) for k in self.onehot_keys]
        nvec = np.concatenate([n for n, _ in comps] or [np.zeros(0, np.int64)])
        start = np.concatenate([s for _, s in comps] or [np.zeros(0, np.int64)])
        self.onehot_dim = int(nvec.sum())
        for name, value in (
            ("onehot_nvec", nvec),
            ("onehot_start", start),
            ("onehot_offset", np.concatenate([[0], np.cumsum(nvec)[:-1]]) if nvec.size else nvec),
        ):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.long), persistent=False)
        self.binary_keys = by_kind["binary"]
        binary_dim = sum(int(np.prod(observation_space[k].shape)) for k in self.binary_keys)

        self.image_keys = by_kind["image"]
        self.image_shapes: list[tuple[int, int, int]] = []  # (C, H, W) of each image key
        towers = []
        for k in self.image_keys:
            c, h, w, _ = image_layout(observation_space[k])
            factor = max(1, min(h, w) // AUTO_SIDE) if downsample is None else int(downsample)
            if factor > min(h, w):
                raise AgentConfigError(
                    f"downsample={factor} is larger than image {k!r} ({h}x{w}); use at most "
                    f"{min(h, w)}"
                )
            self.image_shapes.append((c, h, w))
            towers.append(_ConvTower(int(image_features), int(channels), factor, in_channels=c))
        # a list, not a ModuleDict: observation keys may hold '.', which module names may not
        self.towers = nn.ModuleList(towers)

        self.task_embedding: nn.Embedding | None = None
        self.task_start = 0
        if by_kind["task"]:
            task_space = observation_space[TASK_KEY]
            self.task_start = int(task_space.start)
            self.task_embedding = nn.Embedding(int(task_space.n), int(task_embedding_dim))

        self.features_dim = (
            self.vector_dim
            + self.onehot_dim
            + binary_dim
            + len(self.image_keys) * int(image_features)
            + (int(task_embedding_dim) if self.task_embedding is not None else 0)
        )
        if self.features_dim == 0:
            raise SpaceMismatchError(
                f"the 'generic' backbone has no features for keys {chosen} (all empty)"
            )

    @torch.no_grad()
    def fit_normalizer(self, obs: Mapping[str, np.ndarray]) -> None:
        """Fit the vector keys' per-dimension mean and std on a batch (the demonstrations).

        Keys it does not standardise (images, discrete keys, keys left out) are ignored, so the
        full observation dict may be passed. Std is floored at :data:`STD_FLOOR`.

        Raises:
            SpaceMismatchError: a vector key missing, of the wrong size, with a different number
                of rows than the others, no rows, or non-finite values.
        """
        if not self.vector_keys:
            return
        parts = []
        for key, dim in zip(self.vector_keys, self.vector_dims, strict=True):
            if key not in obs:
                raise SpaceMismatchError(
                    f"fit_normalizer needs the vector key {key!r}; got keys {sorted(obs)}"
                )
            arr = np.asarray(obs[key], np.float64)
            if dim == 0:
                continue
            if arr.size % dim:
                raise SpaceMismatchError(
                    f"fit_normalizer: {key!r} has shape {arr.shape}, not rows of {dim} values"
                )
            parts.append(arr.reshape(-1, dim))
        rows = {len(p) for p in parts}
        if len(rows) > 1 or 0 in rows:
            raise SpaceMismatchError(
                f"fit_normalizer needs the same number (> 0) of rows for every vector key "
                f"{self.vector_keys}; got {sorted(rows)}"
            )
        if not parts:
            return
        x = np.concatenate(parts, axis=1)
        mean, std = x.mean(0), np.maximum(x.std(0), STD_FLOOR)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            bad = int(np.flatnonzero(~np.isfinite(mean) | ~np.isfinite(std))[0])
            raise SpaceMismatchError(
                f"fit_normalizer: non-finite values in {self._vector_key_at(bad)!r}"
            )
        self.obs_mean.copy_(torch.as_tensor(mean, dtype=self.obs_mean.dtype))
        self.obs_std.copy_(torch.as_tensor(std, dtype=self.obs_std.dtype))

    def _vector_key_at(self, index: int) -> str:
        ends = np.cumsum(self.vector_dims)
        return self.vector_keys[int(np.searchsorted(ends, index, side="right"))]

    def _nchw(self, key: str, img: torch.Tensor, chw: tuple[int, int, int]) -> torch.Tensor:
        """Channel-first or channel-last uint8 images -> float (B, C, H, W) in [0, 1]."""
        c, h, w = chw
        tail = tuple(img.shape[1:])
        if tail == (h, w, c):
            img = img.permute(0, 3, 1, 2)
        elif tail != (c, h, w):
            raise SpaceMismatchError(
                f"image {key!r} has shape {tail}; expected {(h, w, c)} or {(c, h, w)} per row"
            )
        return img.float() / 255.0

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """H of shape (B, features_dim)."""
        first = next(iter(self.kinds))
        b = obs[first].shape[0]
        parts: list[torch.Tensor] = []
        if self.vector_keys:
            x = torch.cat([obs[k].float().reshape(b, -1) for k in self.vector_keys], dim=1)
            parts.append((x - self.obs_mean) / self.obs_std)
        if self.onehot_keys:
            idx = torch.cat([obs[k].long().reshape(b, -1) for k in self.onehot_keys], dim=1)
            idx = idx - self.onehot_start
            # checked on the CPU only: on an accelerator the check would wait for the device
            if idx.device.type == "cpu" and bool(((idx < 0) | (idx >= self.onehot_nvec)).any()):
                raise SpaceMismatchError(
                    f"a discrete observation of {self.onehot_keys} is outside its space"
                )
            hot = torch.zeros(b, self.onehot_dim, device=idx.device)
            parts.append(hot.scatter_(1, idx + self.onehot_offset, 1.0))
        parts += [obs[k].float().reshape(b, -1) for k in self.binary_keys]
        for key, chw, tower in zip(self.image_keys, self.image_shapes, self.towers, strict=True):
            parts.append(tower.encode(self._nchw(key, obs[key], chw)))
        if self.task_embedding is not None:
            task = obs[TASK_KEY].long().reshape(b) - self.task_start
            parts.append(self.task_embedding(task))
        return torch.cat(parts, dim=1)


__all__ = [
    "AUTO_SIDE",
    "IMAGE_CHANNELS",
    "KINDS",
    "MIN_IMAGE_SIDE",
    "STD_FLOOR",
    "TASK_KEY",
    "GenericBackbone",
    "classify_space",
    "image_layout",
]
