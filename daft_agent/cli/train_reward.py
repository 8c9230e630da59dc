"""Train a success classifier from recorded frames: ``daft train-reward``.

The classifier is the real robot's reward (``success: classifier`` in the real-arm config, see
``daft_env.backends.real``). Feed it either an episode store recorded in pixels mode (success
labels come from the episodes, see ``daft_env.success.data``) or a directory of labelled
PNGs (``DIR/success/*.png``, ``DIR/failure/*.png``)::

    daft train-reward --store data/store --task pickup --out models/pickup_success.pt
    daft train-reward --frames data/frames --image-keys head_rgb --out models/success.pt

It prints the held-out accuracy (episodes held out whole) and writes the model with it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hardware.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``daft train-reward``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--store", type=Path, help="episode store recorded in pixels mode")
    src.add_argument("--frames", type=Path, help="directory with success/ and failure/ PNGs")
    parser.add_argument("--out", type=Path, required=True, help="where to write the model (.pt)")
    parser.add_argument("--task", default=None, help="only episodes of this task (--store)")
    parser.add_argument(
        "--image-keys",
        default="head_rgb,wrist_rgb",
        help="comma-separated cameras the classifier reads (default: head_rgb,wrist_rgb)",
    )
    parser.add_argument("--positive-final", type=int, default=1, help="(--store) see module doc")
    parser.add_argument("--negative-margin", type=int, default=2, help="(--store) see module doc")
    parser.add_argument("--input-size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--val-fraction", type=float, default=0.2, help="episodes held out")
    parser.add_argument("--no-augment", action="store_true", help="disable shifts and jitter")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=None,
        help="exit with status 3 when the held-out accuracy is below this",
    )


def run(args: argparse.Namespace) -> int:
    """Load frames, train, report and save."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from daft_env.success.data import frames_from_dir, frames_from_store
    from daft_env.success.train import train_success_classifier

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    keys = tuple(k.strip() for k in args.image_keys.split(",") if k.strip())
    if not keys:
        raise ConfigError("--image-keys must name at least one camera, e.g. head_rgb")
    if args.store is not None:
        from daft_env.store import EpisodeStore

        if not Path(args.store).is_dir():
            raise ConfigError(f"--store {str(args.store)!r} does not exist")
        data = frames_from_store(
            EpisodeStore(args.store),
            keys,
            task=args.task,
            positive_final=args.positive_final,
            negative_margin=args.negative_margin,
        )
    else:
        data = frames_from_dir(args.frames, keys)
    print(
        f"{len(data)} frames: {data.n_positive} success, {len(data) - data.n_positive} failure, "
        f"from {len(set(data.groups.tolist()))} episodes; cameras {list(keys)}",
        flush=True,
    )
    model, metrics = train_success_classifier(
        data,
        image_keys=keys,
        input_size=args.input_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        val_fraction=args.val_fraction,
        augment=not args.no_augment,
        seed=args.seed,
        log=lambda text: print(text, flush=True),
    )
    path = model.save(args.out, metrics)
    print(
        f"train accuracy {metrics['train_accuracy']:.4f}, held-out accuracy "
        f"{metrics['val_accuracy']:.4f} on {int(metrics['n_val'])} frames; saved {path}",
        flush=True,
    )
    if args.min_accuracy is not None and not metrics["val_accuracy"] >= args.min_accuracy:
        print(f"held-out accuracy is below --min-accuracy {args.min_accuracy}", flush=True)
        return 3
    return 0
