"""Bring a LeRobotDataset v3 folder into an episode store as demonstrations.

Episodes exported by ``daft export`` come back with their task, actions, intervention flags and
refinement commands; a dataset recorded elsewhere needs ``--task`` when its task strings are not
DAFT's instructions. Camera features ``observation.images.<key>`` become observation ``<key>``,
``observation.state`` becomes ``gripper``. Example::

    daft import --format lerobot --in exports/bolt_v3 --store data/store
"""

from __future__ import annotations

import argparse

FORMATS = ("lerobot",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``daft import``."""
    parser.add_argument("--format", choices=FORMATS, default="lerobot", help="(default: lerobot)")
    parser.add_argument("--in", dest="src", required=True, help="the LeRobotDataset v3 folder")
    parser.add_argument("--store", required=True, help="episode store directory (created if new)")
    parser.add_argument(
        "--task", default=None, help="the DAFT task of every episode (default: from the dataset)"
    )
    parser.add_argument(
        "--kind",
        choices=("demos", "rollouts", "interventions"),
        default="demos",
        help="store the episodes as this kind (default: demos)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``daft import``; returns the exit status."""
    from daft_env.lerobot import import_lerobot
    from daft_env.store import EpisodeStore

    store = EpisodeStore(args.store)
    n = import_lerobot(args.src, store, task=args.task, kind=args.kind)
    print(f"imported {n} episodes from {args.src} into {store.root} as {args.kind}")
    return 0
