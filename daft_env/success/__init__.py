"""The learned success classifier: the real robot's reward, trained by ``daft train-reward``.

* :mod:`~daft_env.success.data`: labelled frames from an episode store or a PNG folder (no torch);
* :mod:`~daft_env.success.model`: :class:`SuccessClassifier`, p(success | frames), save and load;
* :mod:`~daft_env.success.train`: class-balanced training with a held-out split by episode.

Names are imported on first use, so ``import daft_env`` (and the arm server beside it) never
loads torch; the real backend reaches the model only through ``load_success_classifier`` when a
config says ``success: classifier``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> submodule that defines it
_EXPORTS = {
    "FrameDataset": "data",
    "IMAGE_KEYS": "data",
    "frames_from_dir": "data",
    "frames_from_store": "data",
    "save_frames_dir": "data",
    "split_by_group": "data",
    "store_labels": "data",
    "SuccessClassifier": "model",
    "load_success_classifier": "model",
    "accuracy": "train",
    "train_success_classifier": "train",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'daft_env.success' has no attribute {name!r}")
    return getattr(importlib.import_module(f"daft_env.success.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
