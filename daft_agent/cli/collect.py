"""Record demonstrations per task into an episode store (paper: 20 per task).

Examples::

    daft collect --task all --episodes 20 --device expert --store data/store
    daft collect --task pickup --episodes 5 --device spacemouse --env BoltPickup-Real-v0

Devices: ``expert`` (the scripted expert on privileged sim state; only successful demos are kept,
failed attempts are retried up to a cap), ``spacemouse`` and ``keyboard`` (a person drives the robot
for the whole episode; a successful episode is saved, a failed one is discarded, or kept as a
demo when ``--keep-failed`` is given, or after a yes at the prompt when stdin is a terminal).
Re-running adds to the store; seeds continue after the demos already there, so new demos differ.
The collection itself is :func:`daft_env.demos.collect_demos`.

Your own env: ``--env module:EnvId`` (the module is imported, then the id made) and its scripted
plan as the demonstrator, ``--expert module:callable``; ``--tasks`` picks some of its tasks::

    daft collect --env my_robot.envs:Reach-v0 --expert my_robot.plans:reach --episodes 20
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from daft_env.demos import DEFAULT_ENV, DEVICES, collect_demos
from daft_env.tasks import TASK_NAMES, get_task
from hardware.errors import ConfigError

DEFAULT_STORE = "data/store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``daft collect``."""
    parser.add_argument(
        "--task",
        "--tasks",
        dest="task",
        default="all",
        help="all, or comma-separated task names: " + ", ".join(TASK_NAMES) + " or your env's "
        "(default: all)",
    )
    parser.add_argument("--episodes", type=int, default=20, help="new demos per task (default 20)")
    parser.add_argument(
        "--device", default="expert", help="expert, spacemouse or keyboard (default: expert)"
    )
    parser.add_argument(
        "--store",
        default=os.environ.get("DAFT_STORE", DEFAULT_STORE),
        help=f"episode store directory, created if missing (default: {DEFAULT_STORE})",
    )
    parser.add_argument(
        "--obs-mode", default="state", help="state, pixels or pixels+state (default: state)"
    )
    parser.add_argument(
        "--env",
        default=DEFAULT_ENV,
        help=f"env id, or module:EnvId for your own env (default: {DEFAULT_ENV})",
    )
    parser.add_argument(
        "--expert",
        default=None,
        metavar="MODULE:CALLABLE",
        help="your env's scripted plan (observation -> action), the demonstrator of --device "
        "expert on another env than DAFT's",
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument(
        "--noise", type=float, default=0.0, help="scripted expert action noise std (default 0)"
    )
    parser.add_argument(
        "--keep-failed",
        action="store_true",
        default=None,
        help="human devices: keep failed episodes without asking",
    )
    parser.add_argument(
        "--render", action="store_true", help="show the simulation viewer (for human devices)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    from daft_agent.cli.view import add_display_arguments

    add_display_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``daft collect``; returns the exit status."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from daft_env.spaces import OBS_MODES

    if args.device not in DEVICES:
        raise ConfigError(f"unknown device {args.device!r}; valid devices: {', '.join(DEVICES)}")
    if args.obs_mode not in OBS_MODES:
        raise ConfigError(f"unknown --obs-mode {args.obs_mode!r}; valid: {', '.join(OBS_MODES)}")
    from daft_env.adapters import is_daft_id

    if args.task != "all" and is_daft_id(args.env):
        for name in args.task.split(","):
            get_task(name.strip())
    from daft_agent.cli.view import open_display
    from daft_env.store import EpisodeStore

    store = EpisodeStore(Path(args.store))
    display = open_display(args)
    try:
        added = collect_demos(
            store,
            env_id=args.env,
            tasks=args.task,
            episodes=args.episodes,
            obs_mode=args.obs_mode,
            device=args.device,
            seed=args.seed,
            noise=args.noise,
            progress=not args.no_progress,
            keep_failed=args.keep_failed,
            render=args.render,
            display=display,
            expert=args.expert,
        )
    finally:
        display.close()
    totals = {t: store.count(task=t, kind="demos") for t in added}
    for task, n in added.items():
        print(f"{task}: added {n} demos, {totals[task]} in store")
    print(f"store: {store.root}")
    if args.record:
        print(f"recording: {args.record} (open it with daft view {args.record})")
    return 0
