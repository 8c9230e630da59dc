"""Observation backbones h = V(s, l_task) (Eq. 3) and refinement-command encoders for l_rf (Eq. 7).

Two protocols, each with a registry so that a new backbone or encoder is one new class:

* :class:`Backbone`: a ``torch.nn.Module`` mapping a batch of observations (a dict of tensors) to
  features h of size ``features_dim``. ``state`` (privileged sim state + gripper + a learned task
  embedding) and ``pixels`` (a small CNN over both cameras + gripper + task embedding) are built in.
  A *frozen* backbone (a pretrained VLA) is run once per observation by :func:`embed_episode`; its
  embeddings travel with the transition and the learner reads them through
  :class:`EmbeddingBackbone` without re-encoding images.
* :class:`CommandEncoder`: maps refinement command strings to vectors. The offline default
  :class:`VocabularyCommandEncoder` parses the labeler's phrase vocabulary (Eq. 12-13) into a
  3-axis sign vector, independent of word order; :class:`T5CommandEncoder` runs a T5 encoder loaded
  from a local directory.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from daft_agent.errors import AgentConfigError, SpaceMismatchError, UnknownCommandError
from daft_env import labeler
from daft_env.episode import NULL_COMMAND
from daft_env.errors import ConfigError
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


# ----------------------------------------------------------------------------------------------
# Backbones
# ----------------------------------------------------------------------------------------------


@runtime_checkable
class Backbone(Protocol):
    """h = V(s, l_task) (Eq. 3): observations -> features.

    Attributes:
        features_dim: size of h.
        frozen: True when the backbone is pretrained and not trained by the learner; its features
            are then cached per observation (:func:`embed_episode`).
    """

    features_dim: int
    frozen: bool

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Features of shape (B, features_dim) for a batch of observations."""


BACKBONES: dict[str, type[nn.Module]] = {}


def register_backbone(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator registering a backbone under ``name`` for :func:`make_backbone`."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        BACKBONES[name] = cls
        return cls

    return deco


def make_backbone(name: str, observation_space: spaces.Dict, **kwargs: Any) -> nn.Module:
    """Build the registered backbone ``name`` for ``observation_space``."""
    if name not in BACKBONES:
        # the frozen VLA backbones (smolvla, readout) register on import; transformers loads
        # only when one is built
        import daft_agent.backbones  # noqa: F401
    if name not in BACKBONES:
        raise AgentConfigError(
            f"unknown backbone {name!r}; registered backbones: {sorted(BACKBONES)}"
        )
    return BACKBONES[name](observation_space, **kwargs)


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


@register_backbone("state")
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


def _to_nchw(img: torch.Tensor) -> torch.Tensor:
    # SB3's VecTransposeImage hands channel-first images; raw gym envs hand channel-last.
    if img.shape[-1] == 3 and img.shape[1] != 3:
        img = img.permute(0, 3, 1, 2)
    return img.float() / 255.0


class _ConvTower(nn.Module):
    """Four stride-2 convolutions, global average pooling and a linear projection."""

    def __init__(self, out_dim: int, channels: int, downsample: int) -> None:
        super().__init__()
        self.downsample = downsample
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(3, c, 5, stride=2, padding=2),
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
        x = _to_nchw(img)
        if self.downsample > 1:
            x = nn.functional.avg_pool2d(x, self.downsample)
        return self.net(x)


@register_backbone("pixels")
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


EMBEDDING_KEY = "embedding"


@register_backbone("embedding")
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


@torch.no_grad()
def embed_episode(backbone: nn.Module, episode: Any, batch_size: int = 64) -> np.ndarray:
    """Run a frozen backbone once over an episode's T+1 observations and store h with it.

    Sets ``episode.embeddings`` to the (T+1, D) float32 array and returns it, so the store keeps the
    embeddings with the transitions and the learner never runs the frozen model again.
    """
    if not getattr(backbone, "frozen", False):
        raise AgentConfigError(
            f"{type(backbone).__name__} is trainable; caching its features would freeze them"
        )
    n = len(next(iter(episode.observations.values())))
    out = []
    for i in range(0, n, batch_size):
        batch = {
            k: torch.as_tensor(np.asarray(v[i : i + batch_size]))
            for k, v in episode.observations.items()
        }
        out.append(backbone(batch).float().cpu().numpy())
    episode.embeddings = np.concatenate(out, axis=0).astype(np.float32)
    return episode.embeddings


# ----------------------------------------------------------------------------------------------
# Refinement-command encoders
# ----------------------------------------------------------------------------------------------


def parse_command(text: str | None) -> np.ndarray:
    """Parse a talk-and-tweak phrase (Eq. 13) into a 3-axis sign vector in {-1, 0, 1}^3.

    ``"move right and forward"`` -> [1, -1, 0]; ``"[null]"``, ``""`` and None -> [0, 0, 0]. Word order
    does not matter. The vocabulary is the labeler's (:mod:`daft_env.labeler`), so the learner and
    the labeler cannot drift apart.

    Raises:
        UnknownCommandError: an unknown word, two words for one axis, or no direction at all.
    """
    if text is None:
        return np.zeros(3, dtype=np.int8)
    try:
        return labeler.parse_command(text).astype(np.int8)
    except ConfigError as exc:
        raise UnknownCommandError(str(exc)) from None


def command_from_signs(signs: Sequence[int]) -> str:
    """The labeler's canonical phrase for a sign vector (x, y, z); ``[null]`` for all zeros."""
    return labeler.phrase_from_signs(np.sign(np.asarray(signs)).astype(int))


@runtime_checkable
class CommandEncoder(Protocol):
    """l_rf -> vector. ``dim`` is the vector size; ``encode`` returns a (n, dim) float tensor."""

    dim: int

    def encode(self, commands: Sequence[str | None]) -> torch.Tensor:
        """Vectors for a batch of command strings."""


class VocabularyCommandEncoder:
    """The offline default: [x_sign, y_sign, z_sign, is_null] from :func:`parse_command`.

    Args:
        on_unknown: ``"error"`` (default) raises :class:`UnknownCommandError` for a phrase outside the
            vocabulary; ``"null"`` maps it to ``[null]`` with a warning (useful for free speech at
            test time, where an unknown phrase should leave the primary actor in charge).
    """

    dim = 4

    def __init__(self, on_unknown: str = "error") -> None:
        if on_unknown not in ("error", "null"):
            raise AgentConfigError(f"on_unknown must be 'error' or 'null', got {on_unknown!r}")
        self.on_unknown = on_unknown
        self._cache: dict[str | None, np.ndarray] = {}

    def vector(self, command: str | None) -> np.ndarray:
        """The 4-d vector of one command."""
        if command not in self._cache:
            try:
                signs = parse_command(command)
            except UnknownCommandError:
                if self.on_unknown == "error":
                    raise
                warnings.warn(
                    f"unknown refinement command {command!r}; using {NULL_COMMAND}", stacklevel=2
                )
                signs = np.zeros(3, np.int8)
            self._cache[command] = np.concatenate([signs, [float(not signs.any())]]).astype(
                np.float32
            )
        return self._cache[command]

    def encode(self, commands: Sequence[str | None]) -> torch.Tensor:
        """(n, 4) tensor."""
        return torch.as_tensor(
            np.stack([self.vector(c) for c in commands])
            if len(commands)
            else np.zeros((0, 4), np.float32)
        )


class T5CommandEncoder:
    """Mean-pooled T5 encoder states of the command text, loaded from a local directory.

    The model and tokenizer are read with ``local_files_only=True`` (no hub access) and kept frozen;
    vectors are cached per distinct phrase since the talk-and-tweak vocabulary is small.

    Args:
        path: a directory written by ``save_pretrained`` holding a T5 (encoder) model and tokenizer.
        max_length: token limit per command.
    """

    def __init__(self, path: str, max_length: int = 16) -> None:
        try:
            from transformers import AutoTokenizer, T5EncoderModel
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise AgentConfigError(
                "T5CommandEncoder needs transformers and sentencepiece: pip install 'daft[vla]'"
            ) from exc
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = T5EncoderModel.from_pretrained(path, local_files_only=True).eval()
        except OSError as exc:
            raise AgentConfigError(f"no T5 model and tokenizer found in {path!r}: {exc}") from exc
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.path = str(path)
        self.max_length = max_length
        self.dim = int(self.model.config.d_model)
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def _embed(self, text: str) -> torch.Tensor:
        tok = self.tokenizer(
            [text], return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
        )
        hidden = self.model(
            input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]
        ).last_hidden_state
        mask = tok["attention_mask"].unsqueeze(-1).float()
        return ((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0))[0]

    def encode(self, commands: Sequence[str | None]) -> torch.Tensor:
        """(n, d_model) tensor; None means ``[null]``."""
        out = []
        for c in commands:
            key = NULL_COMMAND if c is None else c
            if key not in self._cache:
                self._cache[key] = self._embed(key)
            out.append(self._cache[key])
        return torch.stack(out) if out else torch.zeros(0, self.dim)


def make_command_encoder(spec: str | CommandEncoder) -> CommandEncoder:
    """``"vocabulary"`` -> :class:`VocabularyCommandEncoder`; ``"t5:<dir>"`` -> T5; an instance as is."""
    if not isinstance(spec, str):
        if not isinstance(spec, CommandEncoder):
            raise AgentConfigError(
                f"command_encoder must be a name or a CommandEncoder, got {spec!r}"
            )
        return spec
    if spec == "vocabulary":
        return VocabularyCommandEncoder()
    if spec.startswith("t5:"):
        return T5CommandEncoder(spec[3:])
    raise AgentConfigError(
        f"unknown command encoder {spec!r}; use 'vocabulary' or 't5:<local dir>'"
    )


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, layer_norm: bool = True) -> nn.Sequential:
    """Linear-(LayerNorm)-ReLU stack; LayerNorm keeps critics and actors stable at high UTD."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h)] + ([nn.LayerNorm(h)] if layer_norm else []) + [nn.ReLU()]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def sinusoidal_embedding(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Fourier features of a scalar per row (the noise level), shape (B, dim)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(1000.0) * torch.arange(half, device=x.device, dtype=torch.float32) / max(half, 1)
    )
    args = x.reshape(-1, 1).float() * freqs
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)
