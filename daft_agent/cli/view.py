"""Open a Rerun recording, or replay a store's episodes with their talk-and-tweak labels.

Examples::

    daft view runs/eval.rrd                          # open a recording in the Rerun viewer
    daft view --store data/store --episode 3         # one stored episode, in a new viewer
    daft view --store data/store --record store.rrd  # every stored episode, into a file
    daft view --store data/store --display-address 10.0.0.5:9876

A stored step shows the observation after it (cameras, gripper, and the poses when the store
kept the ``state`` observation), the executed and the proposed action, whether the operator held
control, and the command the labeller gave the step (Eq. 12-13). ``--episode`` counts episodes in
the store's index order (``--task`` and ``--kind`` filter first). Needs the ``viz`` extra.

``add_display_arguments`` and ``open_display`` give ``daft collect``, ``daft evaluate`` and
``daft train`` their ``--display``, ``--display-address`` and ``--record`` options.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from hardware.errors import ConfigError


def add_display_arguments(parser: argparse.ArgumentParser) -> None:
    """``--display``, ``--display-address`` and ``--record`` (the live view, issue 21)."""
    group = parser.add_argument_group("live view (Rerun; pip install -e .[viz])")
    group.add_argument(
        "--display",
        action="store_true",
        help="open a Rerun viewer and stream every step to it (cameras, poses, actions, "
        "takeovers, commands)",
    )
    group.add_argument(
        "--display-address",
        default=None,
        metavar="HOST:PORT",
        help="stream to a Rerun viewer already running there (e.g. on the operator's machine)",
    )
    group.add_argument(
        "--record",
        default=None,
        metavar="PATH.rrd",
        help="also write the stream to this Rerun recording (open it with daft view)",
    )


def open_display(args: argparse.Namespace, **kwargs: Any) -> Any:
    """The :class:`~daft_env.display.StepStream` the options ask for (disabled when none).

    A viewer that does not answer is said once on stderr (``warning: ...``), and the run goes on.
    """
    from daft_env.display import DisplayWarning, StepStream

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DisplayWarning)
        stream = StepStream.open(
            spawn=bool(getattr(args, "display", False)),
            address=getattr(args, "display_address", None),
            record_path=getattr(args, "record", None),
            **kwargs,
        )
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return stream


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``daft view``."""
    parser.add_argument("recording", nargs="?", default=None, help="a .rrd file to open")
    parser.add_argument("--store", default=None, help="replay this episode store's episodes")
    parser.add_argument(
        "--episode", type=int, default=None, help="only this episode (index in the store)"
    )
    parser.add_argument("--task", default=None, help="only episodes of this task")
    parser.add_argument(
        "--kind", default=None, help="only episodes of this kind (demos, rollouts, interventions)"
    )
    parser.add_argument(
        "--display-address",
        default=None,
        metavar="HOST:PORT",
        help="stream the store to a Rerun viewer already running there instead of a new one",
    )
    parser.add_argument(
        "--record",
        default=None,
        metavar="PATH.rrd",
        help="write the store's episodes to this recording (no viewer is opened)",
    )


def viewer_command(recording: Path) -> list[str]:
    """The command that opens ``recording`` in the Rerun viewer shipped with rerun-sdk."""
    return [sys.executable, "-m", "rerun", str(recording)]


def run(args: argparse.Namespace) -> int:
    """Run ``daft view``; returns the exit status."""
    from daft_env.display import log_episode, require_rerun

    if (args.recording is None) == (args.store is None):
        raise ConfigError("give a recording to open (daft view PATH.rrd) or --store DIR, not both")
    require_rerun()
    if args.recording is not None:
        path = Path(args.recording).expanduser()
        if not path.is_file():
            raise ConfigError(f"no recording at {path}; record one with --record PATH.rrd")
        if path.suffix != ".rrd":
            raise ConfigError(f"{path} is not a Rerun recording (*.rrd)")
        return subprocess.call(viewer_command(path))

    from daft_env.store import EpisodeStore

    root = Path(args.store).expanduser()
    store = EpisodeStore(root, mode="r")  # a StoreError names the fix when there is none
    entries = store.index(task=args.task, kind=args.kind)
    if not entries:
        raise ConfigError(f"{root} holds no episodes (task {args.task}, kind {args.kind})")
    if args.episode is not None:
        if not 0 <= args.episode < len(entries):
            raise ConfigError(
                f"--episode {args.episode} is out of range: the store holds {len(entries)} "
                f"episodes (0-{len(entries) - 1})"
            )
        entries = [entries[args.episode]]
    spawn = args.record is None and args.display_address is None
    args.display = spawn
    stream = open_display(args)
    steps = 0
    try:
        for entry in entries:
            steps += log_episode(stream, store.load(entry.path))
    finally:
        stream.close()
    where = args.record or args.display_address or "the viewer"
    print(f"{len(entries)} episodes ({steps} steps) from {root} streamed to {where}")
    return 0
