"""``smolvla``: SmolVLA's vision-language model with its KV cache mask-pooled into h (Eq. 17).

SmolVLA's VLM is SmolVLM, an Idefics3 model in ``transformers`` (SmolVLM2 is its ``smolvlm``
twin with the same layout). It has no CLS token, so, as in the paper (Section V-D), the task
embedding is read from the key-value cache that the language model builds over the prefix (the
camera images and the instruction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from gymnasium import spaces
from torch import nn

from daft_agent.backbones.base import FrozenVLABackbone
from daft_agent.errors import AgentConfigError


def kv_pool(keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mask-guided average pooling of one layer's KV cache (Eq. 17).

    With K, V of shape (B, H, T, D) (the ``transformers`` cache layout; the paper writes
    (B, T, H, D)) and the prefix mask m in {0, 1}^(B x T)::

        K_prefix = K * m,   K_pool = sum_t K_prefix / sum_t m      (and the same for V)
        E_phi(s) = [flatten(K_pool), flatten(V_pool)]  in R^(B x 2HD)

    Each flattened block is ordered head-major (h * D + d).

    Args:
        keys: (B, H, T, D) keys.
        values: (B, H, T, D) values.
        mask: (B, T) prefix mask, 1 for the tokens that count (images and real instruction
            tokens), 0 for padding.

    Returns:
        (B, 2 * H * D) task embedding.

    Raises:
        AgentConfigError: shapes disagree, or a row of the mask is all zeros (nothing to pool).
    """
    if keys.shape != values.shape or keys.ndim != 4:
        raise AgentConfigError(
            f"keys and values must both be (B, H, T, D); got {tuple(keys.shape)} and "
            f"{tuple(values.shape)}"
        )
    b, _, t, _ = keys.shape
    if tuple(mask.shape) != (b, t):
        raise AgentConfigError(f"prefix mask must be (B, T) = {(b, t)}; got {tuple(mask.shape)}")
    m = mask.to(keys.dtype)
    count = m.sum(dim=1)
    if bool((count <= 0).any()):
        raise AgentConfigError("a prefix mask row is all zeros: there is no token to pool")
    w = m[:, None, :, None]  # broadcast over heads and head dimension
    k_pool = (keys * w).sum(dim=2) / count[:, None, None]
    v_pool = (values * w).sum(dim=2) / count[:, None, None]
    return torch.cat([k_pool.reshape(b, -1), v_pool.reshape(b, -1)], dim=1)


def layer_kv(cache: Any, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(keys, values) of one layer from a ``transformers`` cache, across its API versions."""
    if hasattr(cache, "layers"):  # transformers >= 4.56: DynamicCache.layers[i].keys
        entry = cache.layers[layer]
        return entry.keys, entry.values
    if hasattr(cache, "key_cache"):  # 4.36 - 4.55
        return cache.key_cache[layer], cache.value_cache[layer]
    return cache[layer][0], cache[layer][1]  # legacy tuple of (k, v) per layer


class SmolVLABackbone(FrozenVLABackbone):
    """Frozen SmolVLM (Idefics3) encoder; h = Eq. 17 over the last kept layer's KV cache.

    The prefix is ``[image tokens of each camera, instruction tokens]``: each camera image is
    resized to the vision tower's size, scaled to [-1, 1], encoded by the SigLIP tower and
    projected by the connector (pixel shuffle + MLP) into the language model's space, as
    SmolVLA's ``embed_image`` does; the instruction tokens are embedded by the language model's
    own table. The language model runs once over the prefix with ``use_cache=True``; the prefix mask
    m is 1 on image tokens and on real instruction tokens, 0 on padding. h = :func:`kv_pool` of
    layer ``num_vlm_layers - 1``.

    Output size: ``features_dim = 2 * H_kv * D`` with H_kv the language model's key-value heads
    (``num_key_value_heads``; grouped-query attention caches fewer heads than it queries) and D its
    head dimension. For SmolVLM2-500M (H_kv = 5, D = 64) that is 640.

    Args:
        observation_space, path, cameras, instructions, max_text_tokens: see
            :class:`~daft_agent.backbones.base.FrozenVLABackbone`.
        num_vlm_layers: keep only the first N decoder layers, as SmolVLA does (it keeps 16 of
            SmolVLM2's 32); None keeps them all. The pooled layer is the last one kept, the
            paper's "final encoder layer".
        dtype: ``"float32"`` (default) or ``"bfloat16"`` weights.
        device: where the model runs (``"cpu"``, ``"cuda"``).
    """

    name = "smolvla"

    def __init__(
        self,
        observation_space: spaces.Dict,
        path: str,
        cameras: Sequence[str] | None = None,
        instructions: Sequence[str] | None = None,
        max_text_tokens: int = 48,
        num_vlm_layers: int | None = None,
        dtype: str = "float32",
        device: str = "cpu",
    ) -> None:
        if dtype not in ("float32", "bfloat16"):
            raise AgentConfigError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
        if num_vlm_layers is not None and num_vlm_layers < 1:
            raise AgentConfigError(f"num_vlm_layers must be >= 1 or None, got {num_vlm_layers}")
        self._dtype = dtype
        self._device = device
        self.num_vlm_layers = num_vlm_layers
        super().__init__(observation_space, path, cameras, instructions, max_text_tokens)

    def _load(self, path: str) -> nn.Module:
        from transformers import AutoModelForImageTextToText

        full = AutoModelForImageTextToText.from_pretrained(
            path, local_files_only=True, dtype=getattr(torch, self._dtype)
        )
        vlm = full.model  # Idefics3Model / SmolVLMModel: vision_model, connector, text_model
        for part in ("vision_model", "connector", "text_model"):
            if not hasattr(vlm, part):
                raise ValueError(
                    f"{path} holds a {type(full).__name__}, not an Idefics3/SmolVLM model "
                    f"(no {part}); the smolvla backbone needs SmolVLA's VLM (SmolVLM)"
                )
        text = vlm.text_model
        n = len(text.layers)
        if self.num_vlm_layers is not None:
            if self.num_vlm_layers > n:
                raise ValueError(f"num_vlm_layers={self.num_vlm_layers} but the model has {n}")
            text.layers = text.layers[: self.num_vlm_layers]
            text.config.num_hidden_layers = self.num_vlm_layers
            if getattr(text.config, "layer_types", None):
                text.config.layer_types = text.config.layer_types[: self.num_vlm_layers]
        # the LM head is never used: drop it so the weights hash covers what makes h
        return vlm.to(self._device)

    def _features_dim(self) -> int:
        cfg = self.model.text_model.config
        heads = int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)
        head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        return 2 * heads * head_dim

    def _image_size(self) -> int:
        return int(self.model.vision_model.config.image_size)

    def options(self) -> dict[str, Any]:
        """Settings that change h besides the weights."""
        return super().options() | {"num_vlm_layers": self.num_vlm_layers, "dtype": self._dtype}

    def prefix(
        self, pixels: list[torch.Tensor], input_ids: torch.Tensor, text_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefix embeddings (B, T, hidden) and the prefix mask m (B, T) of Eq. 17."""
        vlm = self.model
        embeds, masks = [], []
        for px in pixels:
            img = vlm.connector(vlm.vision_model(pixel_values=px).last_hidden_state)
            embeds.append(img)
            masks.append(torch.ones(img.shape[:2], dtype=text_mask.dtype, device=img.device))
        embeds.append(vlm.text_model.get_input_embeddings()(input_ids))
        masks.append(text_mask)
        return torch.cat(embeds, dim=1), torch.cat(masks, dim=1)

    def _encode(
        self, pixels: list[torch.Tensor], input_ids: torch.Tensor, text_mask: torch.Tensor
    ) -> torch.Tensor:
        embeds, mask = self.prefix(pixels, input_ids, text_mask)
        out = self.model.text_model(inputs_embeds=embeds, attention_mask=mask, use_cache=True)
        cache = out["cache"] if "cache" in out else out["past_key_values"]
        keys, values = layer_kv(cache, -1)
        return kv_pool(keys.float(), values.float(), mask)


__all__ = ["SmolVLABackbone", "kv_pool", "layer_kv"]
