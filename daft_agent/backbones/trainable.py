"""The trainable backbones h = V(s, l_task) (Eq. 3): privileged state, pixels, cached embeddings.

* :class:`StateBackbone`: privileged sim state + gripper + a learned task embedding;
* :class:`PixelBackbone`: a small CNN over both cameras + gripper + task embedding;
* :class:`EmbeddingBackbone`: a frozen backbone's features h, cached with each transition
  (:mod:`daft_agent.backbones.cache`), read without re-encoding images.

Registered by name in :mod:`daft_agent.backbones.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from daft_agent.backbones.registry import EMBEDDING_KEY
from daft_agent.errors import AgentConfigError, SpaceMismatchError
from daft_env.spaces import STATE_DIM, STATE_SLICES

#: position differences the state backbone appends with ``relative``: where the bolt is from the
#: gripper, and where the slot is from the bolt. The experts (and the operator) act on exactly
#: these; from absolute positions the network has to learn each difference to the millimetre
#: (the slot leaves 1 mm each side of the shank). Measured (daft train --preset state, seed 0,
#: 50 trials): assemble 18 % without; 80 % and 26 % in two runs with (upright, pickup 96-100 %).
RELATIVE_PAIRS: tuple[tuple[str, str], ...] = (("bolt_pos", "tcp_pos"), ("slot_pos", "bolt_pos"))
#: scale (m) of the millimetre features tanh(delta / scale) of the :data:`RELATIVE_PAIRS`. The
#: standardised differences alone do not resolve millimetres: fitted over three tasks their
#: standard deviations are 17-64 mm, so the 1-1.5 mm decisions of an insertion are 0.02-0.07
#: sigma apart. tanh(delta / 5 mm) has slope 1 per 5 mm at zero and saturates beyond ~1.5 cm;
#: offline BC on the demos of the continuous assemble expert rose from 10 % to 82-90 % with it
#: (three seeds, issue 17). Not standardised: they already have unit scale.
FINE_SCALE = 0.005


def _n_tasks(observation_space: spaces.Dict) -> int:
    space = observation_space.spaces.get("task_id")
    if space is None:
        return 1
    if not isinstance(space, spaces.Discrete):
        raise SpaceMismatchError(f"observation 'task_id' must be Discrete, got {space}")
    return int(space.n)


def _require(observation_space: spaces.Space, keys: Sequence[str], backbone: str) -> spaces.Dict:
    if not isinstance(observation_space, spaces.Dict):
        raise SpaceMismatchError(
            f"the {backbone!r} backbone needs a Dict observation space with keys {list(keys)}; "
            f"got {observation_space}"
        )
    missing = [k for k in keys if k not in observation_space.spaces]
    if missing:
        raise SpaceMismatchError(
            f"the {backbone!r} backbone needs observation keys {list(keys)} but the env lacks "
            f"{missing} (it has {sorted(observation_space.spaces)}). For BoltEnv, pass "
            f"obs_mode={'state' if backbone == 'state' else 'pixels'!r} to gym.make."
        )
    return observation_space


def _task_index(obs: Mapping[str, torch.Tensor], batch: int, device: torch.device) -> torch.Tensor:
    if "task_id" not in obs:
        return torch.zeros(batch, dtype=torch.long, device=device)
    return obs["task_id"].reshape(batch).long()


class StateBackbone(nn.Module):
    """Privileged simulator state + gripper + a learned task embedding (Eq. 3 with s = sim state).

    h = [ (x - m) / s, E[task_id] ] where x = [state, gripper, relative] and (m, s) are a
    per-dimension normaliser fitted once on the demonstrations (:meth:`fit_normalizer`) and then
    frozen, so that critic and actor see the same input scale for the whole run. The normaliser
    lives in buffers, so it is saved and restored with the network.

    ``relative`` appends the :data:`RELATIVE_PAIRS` position differences (bolt - TCP, slot -
    bolt) and their millimetre features tanh(delta / ``fine_scale``) (:data:`FINE_SCALE`; 0 or
    None: none). Default None: on for DAFT's state layout, off for any other state vector; True on
    another layout is an error.
    """

    frozen = False

    def __init__(
        self,
        observation_space: spaces.Dict,
        task_embedding_dim: int = 8,
        relative: bool | None = None,
        fine_scale: float | None = FINE_SCALE,
    ) -> None:
        super().__init__()
        _require(observation_space, ("state", "gripper"), "state")
        if task_embedding_dim < 1:
            raise AgentConfigError(f"task_embedding_dim must be >= 1, got {task_embedding_dim}")
        self.state_dim = int(np.prod(observation_space["state"].shape))
        self.gripper_dim = int(np.prod(observation_space["gripper"].shape))
        # None: on when the state has DAFT's layout (daft_env.spaces.STATE_LAYOUT), else off
        self.relative = self.state_dim == STATE_DIM if relative is None else bool(relative)
        if self.relative and self.state_dim != STATE_DIM:
            raise AgentConfigError(
                f"relative=True needs DAFT's {STATE_DIM}-d state layout "
                f"(daft_env.spaces.STATE_LAYOUT); this env's state has {self.state_dim} dims"
            )
        if fine_scale is not None and fine_scale < 0:
            raise AgentConfigError(
                f"fine_scale must be > 0 metres (or 0/None: off); got {fine_scale}"
            )
        self.fine_scale = float(fine_scale or 0.0) if self.relative else 0.0
        self.n_fine = 3 * len(RELATIVE_PAIRS) if self.fine_scale else 0
        extra = 3 * len(RELATIVE_PAIRS) + self.n_fine if self.relative else 0
        self.in_dim = self.state_dim + self.gripper_dim + extra
        self.task_embedding = nn.Embedding(_n_tasks(observation_space), task_embedding_dim)
        self.register_buffer("obs_mean", torch.zeros(self.in_dim))
        self.register_buffer("obs_std", torch.ones(self.in_dim))
        self.features_dim = self.in_dim + task_embedding_dim

    @torch.no_grad()
    def fit_normalizer(self, obs: Mapping[str, np.ndarray]) -> None:
        """Fit the per-dimension mean and std on a batch of observations (demonstrations)."""
        x = self._inputs(
            torch.as_tensor(np.asarray(obs["state"], np.float32).reshape(-1, self.state_dim)),
            torch.as_tensor(np.asarray(obs["gripper"], np.float32).reshape(-1, self.gripper_dim)),
        ).numpy()
        mean, std = x.mean(0), np.maximum(x.std(0), 1e-2)
        # Constant dimensions (std 0) would blow up; a floor of 1e-2 keeps them near zero instead.
        # The millimetre features (last) keep their unit scale: standardising them over three
        # tasks would blur the millimetres again.
        if self.n_fine:
            mean[-self.n_fine :], std[-self.n_fine :] = 0.0, 1.0
        self.obs_mean.copy_(torch.as_tensor(mean))
        self.obs_std.copy_(torch.as_tensor(std))

    def _inputs(self, state: torch.Tensor, gripper: torch.Tensor) -> torch.Tensor:
        """[state, gripper] and, with ``relative``, the :data:`RELATIVE_PAIRS` differences."""
        parts = [state, gripper]
        if self.relative:
            deltas = [
                state[:, STATE_SLICES[a]] - state[:, STATE_SLICES[b]] for a, b in RELATIVE_PAIRS
            ]
            parts += deltas
            if self.fine_scale:
                parts += [torch.tanh(d / self.fine_scale) for d in deltas]
        return torch.cat(parts, dim=1)

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """H of shape (B, features_dim)."""
        state = obs["state"].float()
        b = state.shape[0]
        x = self._inputs(state.reshape(b, -1), obs["gripper"].float().reshape(b, -1))
        x = (x - self.obs_mean) / self.obs_std
        return torch.cat([x, self.task_embedding(_task_index(obs, b, x.device))], dim=1)


def _to_nchw(img: torch.Tensor, channels: int = 3) -> torch.Tensor:
    # SB3's VecTransposeImage hands channel-first images; raw gym envs hand channel-last.
    if img.shape[-1] == channels and img.shape[1] != channels:
        img = img.permute(0, 3, 1, 2)
    return img.float() / 255.0


class _ConvTower(nn.Module):
    """Four stride-2 convolutions, global average pooling and a linear projection."""

    def __init__(self, out_dim: int, channels: int, downsample: int, in_channels: int = 3) -> None:
        super().__init__()
        self.downsample = downsample
        self.in_channels = in_channels
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * c, out_dim),
            nn.LayerNorm(out_dim),
            nn.Tanh(),
        )

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.encode(_to_nchw(img, self.in_channels))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a float (B, C, H, W) batch in [0, 1] (average-pooled by ``downsample``)."""
        if self.downsample > 1:
            x = nn.functional.avg_pool2d(x, self.downsample)
        return self.net(x)


class PixelBackbone(nn.Module):
    """A small trainable CNN over the wrist and head cameras, plus gripper and task embedding.

    h = [CNN_w(wrist_rgb), CNN_h(head_rgb), gripper, E[task_id]]. The head image (256x256) is
    average-pooled to the wrist resolution first; each camera has its own tower because the two
    viewpoints share little low-level structure.
    """

    frozen = False

    def __init__(
        self,
        observation_space: spaces.Dict,
        image_features: int = 64,
        channels: int = 16,
        task_embedding_dim: int = 8,
    ) -> None:
        super().__init__()
        _require(observation_space, ("wrist_rgb", "head_rgb", "gripper"), "pixels")
        if image_features < 1 or channels < 1:
            raise AgentConfigError("image_features and channels must be >= 1")
        wrist_hw = observation_space["wrist_rgb"].shape[0]
        head_hw = observation_space["head_rgb"].shape[0]
        self.wrist = _ConvTower(image_features, channels, 1)
        self.head = _ConvTower(image_features, channels, max(1, head_hw // max(wrist_hw, 1)))
        self.gripper_dim = int(np.prod(observation_space["gripper"].shape))
        self.task_embedding = nn.Embedding(_n_tasks(observation_space), task_embedding_dim)
        self.features_dim = 2 * image_features + self.gripper_dim + task_embedding_dim

    def fit_normalizer(self, obs: Mapping[str, np.ndarray]) -> None:
        """Pixels are scaled to [0, 1]; nothing to fit."""

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """H of shape (B, features_dim)."""
        wrist = self.wrist(obs["wrist_rgb"])
        b = wrist.shape[0]
        return torch.cat(
            [
                wrist,
                self.head(obs["head_rgb"]),
                obs["gripper"].float().reshape(b, -1),
                self.task_embedding(_task_index(obs, b, wrist.device)),
            ],
            dim=1,
        )


class EmbeddingBackbone(nn.Module):
    """Reads a frozen backbone's cached features h from ``obs["embedding"]`` (no re-encoding)."""

    frozen = False  # itself trivially trainable-free; the frozen model ran before storage

    def __init__(self, observation_space: spaces.Dict) -> None:
        super().__init__()
        _require(observation_space, (EMBEDDING_KEY,), "embedding")
        self.features_dim = int(np.prod(observation_space[EMBEDDING_KEY].shape))

    def fit_normalizer(self, obs: Mapping[str, np.ndarray]) -> None:
        """Embeddings are used as they are."""

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The cached h, flattened to (B, features_dim)."""
        h = obs[EMBEDDING_KEY].float()
        return h.reshape(h.shape[0], -1)


__all__ = [
    "FINE_SCALE",
    "RELATIVE_PAIRS",
    "EmbeddingBackbone",
    "PixelBackbone",
    "StateBackbone",
]
