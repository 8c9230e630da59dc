"""Frozen vision-language backbones, registered by name in :data:`daft_agent.encoders.BACKBONES`.

* ``smolvla``: SmolVLA's VLM (SmolVLM, Idefics3) with its KV cache mask-pooled (Eq. 17);
* ``readout``: a ViLT encoder's readout token over instruction + image tokens (Octo-style).

Both load from a local directory (``NAME:PATH`` specs, :func:`~daft_agent.backbones.cache.parse_spec`)
and import ``transformers`` only when built. :mod:`daft_agent.backbones.cache` runs them once per
observation and keeps the embeddings in the episode store.
"""

from __future__ import annotations

from daft_agent.backbones.base import FrozenVLABackbone
from daft_agent.backbones.readout import ReadoutBackbone
from daft_agent.backbones.smolvla import SmolVLABackbone, kv_pool

__all__ = ["FrozenVLABackbone", "ReadoutBackbone", "SmolVLABackbone", "kv_pool"]
