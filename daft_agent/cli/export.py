"""Write an episode store as a LeRobotDataset v3 folder (meta/info.json, parquet, MP4 videos).

The folder carries the camera frames, actions, proprioceptive state, task strings, and DAFT's
talk-and-tweak fields as extra features (``intervened``, ``refinement_command``,
``policy_action``, ``next.reward``, ``next.done``), so LeRobot tools read it and
``daft import --format lerobot`` brings it back. Example::

    daft export --format lerobot --store data/store --out exports/bolt_v3
"""

from __future__ import annotations

import argparse

from hardware.errors import ConfigError

FORMATS = ("lerobot",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``daft export``."""
    parser.add_argument("--format", choices=FORMATS, default="lerobot", help="(default: lerobot)")
    parser.add_argument("--store", required=True, help="episode store directory")
    parser.add_argument("--out", required=True, help="a new or empty output directory")
    parser.add_argument("--task", default=None, help="export only this task (default: all)")
    parser.add_argument(
        "--kind", default=None, help="export only demos, rollouts or interventions (default: all)"
    )
    parser.add_argument("--fps", type=int, default=10, help="frames per second (default: 10)")


def run(args: argparse.Namespace) -> int:
    """Run ``daft export``; returns the exit status."""
    from daft_env.lerobot import export_lerobot
    from daft_env.store import EpisodeStore

    store = EpisodeStore(args.store, mode="r")
    if store.count(task=args.task, kind=args.kind) == 0:
        raise ConfigError(
            f"store {store.root} holds no episodes of task={args.task} kind={args.kind}"
        )
    info = export_lerobot(store.episodes(task=args.task, kind=args.kind), args.out, fps=args.fps)
    print(
        f"wrote LeRobotDataset {info['codebase_version']} to {args.out}: "
        f"{info['total_episodes']} episodes, {info['total_frames']} frames, "
        f"{info['total_tasks']} tasks"
    )
    return 0
