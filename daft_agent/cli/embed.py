"""Fill an episode store's embedding cache with a frozen VLA backbone's features h (Eq. 3, 17).

Each episode is embedded once (every observation, with the episode's instruction) and rewritten
durably with its embeddings; the learner's ``embedding`` backbone then reads them and never runs
the backbone. Re-running skips episodes that already have embeddings, so an interrupted run
resumes. A store embedded by another backbone, or by the same one with other weights, is refused
(the store records the backbone's name and a SHA-256 of its weights) unless ``--replace`` is
given, which re-embeds every episode. Examples::

    daft embed --store data/store --backbone smolvla:~/models/smolvlm
    daft embed --store data/store --backbone readout:~/models/vilt --replace
"""

from __future__ import annotations

import argparse
import os

from hardware.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``daft embed``."""
    parser.add_argument("--store", required=True, help="episode store directory")
    parser.add_argument(
        "--backbone",
        required=True,
        metavar="NAME:PATH",
        help="frozen backbone and its local checkpoint directory, e.g. smolvla:/models/smolvlm",
    )
    parser.add_argument(
        "--batch-size", type=int, default=16, help="observations per forward pass (default: 16)"
    )
    parser.add_argument("--device", default="cpu", help="torch device of the backbone")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="re-embed every episode, even when the store was embedded by another backbone",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``daft embed``; returns the exit status."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    from tqdm.auto import tqdm

    from daft_agent.backbones.cache import embed_store, frozen_backbone, space_of
    from daft_env.store import EpisodeStore

    torch.set_num_threads(1)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    store = EpisodeStore(args.store, mode="r")
    entries = store.index()
    if not entries:
        raise ConfigError(f"store {store.root} holds no episodes to embed")
    space = space_of(store.load(entries[0].path).observations)
    store = EpisodeStore(args.store, mode="a")
    backbone = frozen_backbone(args.backbone, space, device=args.device)
    with tqdm(
        total=len(entries), desc="embed", disable=args.no_progress, dynamic_ncols=True
    ) as bar:
        report = embed_store(
            store,
            backbone,
            batch_size=args.batch_size,
            replace=args.replace,
            progress=lambda done, total: bar.update(1),
        )
    print(
        f"embedded {report.embedded} episodes, {report.skipped} already had embeddings; "
        f"{report.identity['backbone']} ({report.identity['features_dim']} features, weights "
        f"sha256 {report.identity['weights_sha256'][:12]}) in {store.root}"
    )
    return 0
