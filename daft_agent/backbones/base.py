"""What every frozen vision-language backbone shares: local loading, pixels in, identity out.

A frozen backbone is a pretrained VLA encoder that the learner never trains. It runs once per
observation on the actor side (or once per stored episode, ``daft embed``); its features h travel
with the transition as ``Episode.embeddings`` and the learner reads them through the ``embedding``
backbone, so images are never re-encoded (ConRFT does the same).

Subclasses implement :meth:`FrozenVLABackbone._load` (build the ``transformers`` model and tokenizer
from a local directory) and :meth:`FrozenVLABackbone._encode` (pixels + token ids -> h).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from daft_agent.errors import AgentConfigError, SpaceMismatchError
from daft_env.tasks import INSTRUCTIONS, TASK_NAMES


def default_instructions() -> tuple[str, ...]:
    """The instruction texts of :data:`~daft_env.tasks.TASK_NAMES`, in ``task_id`` order."""
    return tuple(INSTRUCTIONS[t] for t in TASK_NAMES)


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 over a module's state dict (names, dtypes, shapes and bytes, in name order).

    Two checkpoints give the same hash exactly when they hold the same weights, whatever their
    file layout (sharded or not, safetensors or bin), so a store's embeddings can be tied to them.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _tensor(x: Any) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


class FrozenVLABackbone(nn.Module):
    """A pretrained vision-language encoder used as a frozen backbone h = V(s, l_task) (Eq. 3).

    The model is loaded from ``path`` with ``local_files_only=True`` (nothing is downloaded), put in
    eval mode and has ``requires_grad`` off; :meth:`forward` runs under ``torch.no_grad``, so no
    gradient reaches it and :meth:`train` cannot switch its dropout back on.

    Args:
        observation_space: the env's ``Dict`` observation space; it must hold the ``cameras``.
        path: a directory written by ``save_pretrained`` holding the model and its tokenizer.
        cameras: observation keys of the (H, W, 3) uint8 images fed to the encoder, in order;
            default: every key ending in ``_rgb``, sorted (``head_rgb``, ``wrist_rgb``).
        instructions: instruction text per ``task_id``; default: DAFT's three tasks. An observation
            without ``task_id`` uses ``instructions[0]`` (give a single-task env its own text).
        max_text_tokens: token limit of the instruction.

    Raises:
        AgentConfigError: no model or tokenizer at ``path``, or a bad argument.
        SpaceMismatchError: a camera is missing from ``observation_space``.
    """

    frozen = True
    #: registry name, set by each subclass (part of the embedding identity)
    name = ""

    def __init__(
        self,
        observation_space: spaces.Dict,
        path: str,
        cameras: Sequence[str] | None = None,
        instructions: Sequence[str] | None = None,
        max_text_tokens: int = 48,
    ) -> None:
        super().__init__()
        if not isinstance(observation_space, spaces.Dict):
            raise SpaceMismatchError(
                f"the {self.name!r} backbone needs a Dict observation space; got {observation_space}"
            )
        if cameras is None:
            cameras = sorted(k for k in observation_space.spaces if k.endswith("_rgb"))
        self.cameras = tuple(cameras)
        missing = [c for c in self.cameras if c not in observation_space.spaces]
        if not self.cameras or missing:
            raise SpaceMismatchError(
                f"the {self.name!r} backbone needs camera images; the env lacks {missing or 'any'} "
                f"(it has {sorted(observation_space.spaces)}). For BoltEnv pass obs_mode='pixels'."
            )
        self.instructions = tuple(instructions) if instructions else default_instructions()
        if max_text_tokens < 1:
            raise AgentConfigError(f"max_text_tokens must be >= 1, got {max_text_tokens}")
        self.max_text_tokens = int(max_text_tokens)
        self.path = str(Path(path).expanduser())
        if not Path(self.path).is_dir():
            raise AgentConfigError(
                f"the {self.name!r} backbone loads from a local directory; {self.path!r} is not "
                "one. Save the checkpoint there first (model.save_pretrained(dir) and "
                "tokenizer.save_pretrained(dir)); nothing is downloaded at run time."
            )
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise AgentConfigError(
                f"the {self.name!r} backbone needs transformers: pip install 'daft[vla]'"
            ) from exc
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            self.model = self._load(self.path)
        except (OSError, ValueError) as exc:
            raise AgentConfigError(
                f"cannot load the {self.name!r} backbone from {self.path!r}: {exc}"
            ) from exc
        if self.tokenizer.pad_token_id is None:  # causal LMs often ship without one
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.model.eval()
        self.model.requires_grad_(False)
        self._weights_sha256: str | None = None
        self.features_dim = int(self._features_dim())

    # ------------------------------------------------------------------ subclass hooks
    def _load(self, path: str) -> nn.Module:
        raise NotImplementedError

    def _features_dim(self) -> int:
        raise NotImplementedError

    def _encode(
        self, pixels: list[torch.Tensor], input_ids: torch.Tensor, text_mask: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The settings that change h besides the weights (part of the embedding identity)."""
        return {"cameras": list(self.cameras), "max_text_tokens": self.max_text_tokens}

    # ------------------------------------------------------------------ common path
    def train(self, mode: bool = True) -> FrozenVLABackbone:
        """Frozen: the wrapped model stays in eval mode whatever the caller asks."""
        super().train(mode)
        self.model.eval()
        return self

    def fit_normalizer(self, obs: Mapping[str, np.ndarray]) -> None:
        """Pretrained features are used as they are; nothing to fit."""

    def identity(self) -> dict[str, Any]:
        """Name, weights hash, options and output size: what a store's embeddings were made by."""
        if self._weights_sha256 is None:
            self._weights_sha256 = weights_sha256(self.model)
        return {
            "backbone": self.name,
            "weights_sha256": self._weights_sha256,
            "features_dim": self.features_dim,
            "options": self.options(),
        }

    def _image_size(self) -> int:
        raise NotImplementedError

    def _pixels(self, img: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 (or channel-first) -> (B, 3, S, S) float in [-1, 1].

        S is the vision tower's input size; scaling to [-1, 1] is SigLIP's and ViLT's
        normalisation (mean 0.5, std 0.5 per channel).
        """
        if img.ndim != 4:
            raise SpaceMismatchError(f"camera images must be (B, H, W, 3); got {tuple(img.shape)}")
        if img.shape[-1] == 3 and img.shape[1] != 3:
            img = img.permute(0, 3, 1, 2)
        x = img.float() / 255.0
        size = self._image_size()
        if x.shape[-2:] != (size, size):
            x = nn.functional.interpolate(
                x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
        return x * 2.0 - 1.0

    def _tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.tokenizer(
            list(texts),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_text_tokens,
        )
        return tok["input_ids"], tok["attention_mask"]

    def instructions_for(self, obs: Mapping[str, Any], batch: int) -> list[str]:
        """The instruction text of each observation, from its ``task_id``."""
        if "task_id" not in obs:
            return [self.instructions[0]] * batch
        ids = _tensor(obs["task_id"]).reshape(batch).cpu().numpy().astype(int)
        bad = [int(i) for i in ids if not 0 <= i < len(self.instructions)]
        if bad:
            raise SpaceMismatchError(
                f"task_id {bad[0]} has no instruction; this backbone knows {len(self.instructions)} "
                "tasks (pass instructions=[...] in task_id order)"
            )
        return [self.instructions[i] for i in ids]

    @torch.no_grad()
    def encode(self, obs: Mapping[str, Any], instructions: Sequence[str]) -> torch.Tensor:
        """H (B, features_dim) for a batch of observations and one instruction text per row."""
        imgs = [_tensor(obs[c]) for c in self.cameras]
        b = imgs[0].shape[0]
        if len(instructions) != b:
            raise SpaceMismatchError(f"{len(instructions)} instructions for {b} observations")
        dtype = next(self.model.parameters()).dtype
        device = next(self.model.parameters()).device
        pixels = [self._pixels(i.to(device)).to(dtype) for i in imgs]
        ids, mask = self._tokens(instructions)
        return self._encode(pixels, ids.to(device), mask.to(device)).float()

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """H (B, features_dim); the instruction comes from each observation's ``task_id``."""
        b = _tensor(obs[self.cameras[0]]).shape[0]
        return self.encode(obs, self.instructions_for(obs, b))


__all__ = ["FrozenVLABackbone", "default_instructions", "weights_sha256"]
