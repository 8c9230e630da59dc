"""Refinement-command encoders: l_rf -> a vector (Eq. 7), and their factory.

A :class:`CommandEncoder` maps refinement command strings to vectors. The offline default
:class:`VocabularyCommandEncoder` parses the labeler's phrase vocabulary (Eq. 12-13) into a
3-axis sign vector, independent of word order; :class:`T5CommandEncoder` runs a T5 encoder loaded
from a local directory. :func:`make_command_encoder` builds one from its spec (``"vocabulary"``,
``"t5:<local dir>"``).

The vocabulary encoder reads the env's :class:`~daft_env.layout.ActionLayout` (DAFT's by default),
the same description as the labeller and the speaking operator: one sign per translation axis
plus ``is_null``, so its size is the number of axes + 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from daft_agent.errors import AgentConfigError, UnknownCommandError
from daft_env import labeler
from daft_env.episode import NULL_COMMAND
from daft_env.errors import ConfigError
from daft_env.layout import DAFT_LAYOUT, ActionLayout


def parse_command(text: str | None, layout: ActionLayout | None = None) -> np.ndarray:
    """Parse a talk-and-tweak phrase (Eq. 13) into a 3-axis sign vector in {-1, 0, 1}^3.

    ``"move right and forward"`` -> [1, -1, 0]; ``"[null]"``, ``""`` and None -> [0, 0, 0]. Word order
    does not matter. The vocabulary is the labeler's (:mod:`daft_env.labeler`), so the learner and
    the labeler cannot drift apart.

    Raises:
        UnknownCommandError: an unknown word, two words for one axis, or no direction at all.
    """
    if text is None:
        return np.zeros(len((layout or DAFT_LAYOUT).axes), dtype=np.int8)
    try:
        if layout is not None:
            return layout.parse(text).astype(np.int8)
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

    On another :class:`~daft_env.layout.ActionLayout`: one sign per translation axis (ascending
    action index), then ``is_null``.

    Args:
        layout: the env's action layout (default DAFT's).
        on_unknown: ``"error"`` (default) raises :class:`UnknownCommandError` for a phrase outside the
            vocabulary; ``"null"`` maps it to ``[null]`` with a warning (useful for free speech at
            test time, where an unknown phrase should leave the primary actor in charge).
    """

    dim = 4

    def __init__(self, on_unknown: str = "error", layout: ActionLayout | None = None) -> None:
        if on_unknown not in ("error", "null"):
            raise AgentConfigError(f"on_unknown must be 'error' or 'null', got {on_unknown!r}")
        self.on_unknown = on_unknown
        self.layout = DAFT_LAYOUT if layout is None else layout
        self.dim = len(self.layout.axes) + 1
        self._cache: dict[str | None, np.ndarray] = {}

    def vector(self, command: str | None) -> np.ndarray:
        """The (dim,) vector of one command."""
        if command not in self._cache:
            try:
                signs = parse_command(command, self.layout)
            except UnknownCommandError:
                if self.on_unknown == "error":
                    raise
                warnings.warn(
                    f"unknown refinement command {command!r}; using {NULL_COMMAND}", stacklevel=2
                )
                signs = np.zeros(self.dim - 1, np.int8)
            self._cache[command] = np.concatenate([signs, [float(not signs.any())]]).astype(
                np.float32
            )
        return self._cache[command]

    def encode(self, commands: Sequence[str | None]) -> torch.Tensor:
        """(n, dim) tensor."""
        return torch.as_tensor(
            np.stack([self.vector(c) for c in commands])
            if len(commands)
            else np.zeros((0, self.dim), np.float32)
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


def make_command_encoder(
    spec: str | CommandEncoder, layout: ActionLayout | None = None
) -> CommandEncoder:
    """A command encoder from its spec: ``"vocabulary"``, ``"t5:<dir>"`` or an instance.

    ``"vocabulary"`` is a :class:`VocabularyCommandEncoder` on ``layout`` (default DAFT's),
    ``"t5:<dir>"`` a :class:`T5CommandEncoder`; an instance is returned as is.
    """
    if not isinstance(spec, str):
        if not isinstance(spec, CommandEncoder):
            raise AgentConfigError(
                f"command_encoder must be a name or a CommandEncoder, got {spec!r}"
            )
        return spec
    if spec == "vocabulary":
        return VocabularyCommandEncoder(layout=layout)
    if spec.startswith("t5:"):
        return T5CommandEncoder(spec[3:])
    raise AgentConfigError(
        f"unknown command encoder {spec!r}; use 'vocabulary' or 't5:<local dir>'"
    )


__all__ = [
    "NULL_COMMAND",
    "CommandEncoder",
    "T5CommandEncoder",
    "VocabularyCommandEncoder",
    "command_from_signs",
    "make_command_encoder",
    "parse_command",
]
