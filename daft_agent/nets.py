"""Layers the actors and critics share: an MLP and the sinusoidal noise-level embedding."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


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


__all__ = ["mlp", "sinusoidal_embedding"]
