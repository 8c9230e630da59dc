"""``readout``: an Octo-style readout token over a single-stream vision-language encoder (ViLT).

Octo reads its task embedding off readout tokens that attend over the instruction and observation
tokens in one transformer. ViLT (``transformers.ViltModel``) is such a transformer: the
instruction's word tokens and an image's patch tokens form one sequence, and its first token
([CLS]) attends over both; its pooler (a dense layer and tanh over that token, pretrained on
image-text matching) is the readout. The readout is the pretrained one rather than a new learned
token: a frozen, cached backbone has no training signal to learn one from.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from gymnasium import spaces
from torch import nn

from daft_agent.backbones.base import FrozenVLABackbone


class ReadoutBackbone(FrozenVLABackbone):
    """Frozen ViLT encoder; h = [readout(l_task, camera_1), ..., readout(l_task, camera_n)].

    Each camera runs through the encoder with the instruction (as its own image, with ViLT's
    image token type ``i + 1`` so the encoder can tell the cameras apart) and gives one readout
    vector r = tanh(W x_CLS + b) of size ``hidden_size``; h concatenates them in camera order.

    Output size: ``features_dim = n_cameras * hidden_size`` (2 x 768 = 1536 for ViLT-B/32).

    Args:
        observation_space, path, cameras, instructions, max_text_tokens: see
            :class:`~daft_agent.backbones.base.FrozenVLABackbone`; ``max_text_tokens`` is capped at
            the encoder's ``max_position_embeddings``.
        device: where the model runs.
    """

    name = "readout"

    def __init__(
        self,
        observation_space: spaces.Dict,
        path: str,
        cameras: Sequence[str] | None = None,
        instructions: Sequence[str] | None = None,
        max_text_tokens: int = 40,
        device: str = "cpu",
    ) -> None:
        self._device = device
        super().__init__(observation_space, path, cameras, instructions, max_text_tokens)
        self.max_text_tokens = min(
            self.max_text_tokens, int(self.model.config.max_position_embeddings)
        )

    def _load(self, path: str) -> nn.Module:
        from transformers import ViltModel

        return ViltModel.from_pretrained(path, local_files_only=True).to(self._device)

    def _features_dim(self) -> int:
        return len(self.cameras) * int(self.model.config.hidden_size)

    def _image_size(self) -> int:
        return int(self.model.config.image_size)

    def _encode(
        self, pixels: list[torch.Tensor], input_ids: torch.Tensor, text_mask: torch.Tensor
    ) -> torch.Tensor:
        # ViLT draws the order of its patch tokens with torch.multinomial; a fixed seed in a forked
        # RNG makes h bit-for-bit repeatable without touching the caller's random stream
        devices = [pixels[0].device] if pixels[0].is_cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            return self._readouts(pixels, input_ids, text_mask)

    def _readouts(
        self, pixels: list[torch.Tensor], input_ids: torch.Tensor, text_mask: torch.Tensor
    ) -> torch.Tensor:
        outs = []
        for i, px in enumerate(pixels):
            pixel_mask = torch.ones(
                (px.shape[0], px.shape[2], px.shape[3]), dtype=torch.long, device=px.device
            )
            out = self.model(
                input_ids=input_ids,
                attention_mask=text_mask,
                pixel_values=px,
                pixel_mask=pixel_mask,
                image_token_type_idx=i + 1,
            )
            outs.append(out.pooler_output)
        return torch.cat(outs, dim=1)


__all__ = ["ReadoutBackbone"]
