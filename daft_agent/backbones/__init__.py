"""All of h = V(s, l_task) (Eq. 3 and 17): the backbones, by name in one registry.

* :mod:`~daft_agent.backbones.registry`: the :class:`Backbone` protocol, :data:`BACKBONES` and
  :func:`make_backbone` (built-in backbones are named there as lazy ``"module:Class"`` paths);
* :mod:`~daft_agent.backbones.trainable`: ``state``, ``pixels`` and ``embedding`` (cached h);
* :mod:`~daft_agent.backbones.generic`: ``generic``, any env's Dict observation, each key encoded
  by its space (images by a CNN, vectors standardised, ``task_id`` embedded, discrete one-hot);
* :mod:`~daft_agent.backbones.base`: what the frozen VLA backbones share;
  :mod:`~daft_agent.backbones.smolvla`: SmolVLA's VLM with its KV cache mask-pooled (Eq. 17);
  :mod:`~daft_agent.backbones.readout`: a ViLT encoder's readout token (Octo-style). Both load
  from a local directory (``NAME:PATH``) and import ``transformers`` only when built;
* :mod:`~daft_agent.backbones.cache`: runs a frozen backbone once per observation and keeps the
  embeddings in the episode store.

Nothing is imported here: ``import daft_agent.backbones.registry`` loads no model code.
"""
