"""Record demonstrations per task into an episode store (paper: 20 per task).

Examples::

    daft collect --task all --episodes 20 --device expert --store data/store
    daft collect --task pickup --episodes 5 --device spacemouse --env BoltPickup-Real-v0

Devices: ``expert`` (the scripted expert on privileged sim state; only successful demos are kept,
failed attempts are retried up to a cap), ``spacemouse`` and ``keyboard`` (a person drives the robot
for the whole episode; a successful episode is saved, a failed one is discarded, or kept as a
demo when ``--keep-failed`` is given, or after a yes at the prompt when stdin is a terminal).
Re-running adds to the store; seeds continue after the demos already there, so new demos differ.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from daft_env.tasks import TASK_NAMES, get_task
from hardware.errors import ConfigError, DaftError

DEVICES = ("expert", "spacemouse", "keyboard")
HUMAN_DEVICES = ("spacemouse", "keyboard")
DEFAULT_ENV = "BoltMultiTask-Sim-v0"
DEFAULT_STORE = "data/store"
#: expert attempts allowed per requested demo before giving up on a task
MAX_ATTEMPTS_FACTOR = 3


class CollectionError(DaftError):
    """Demonstrations could not be collected (the expert kept failing, or the env is unusable)."""


def parse_tasks(task: str | Sequence[str]) -> list[str]:
    """``"all"`` -> every task; a name or a list of names -> validated names."""
    if isinstance(task, str):
        if task == "all":
            return list(TASK_NAMES)
        task = [t.strip() for t in task.split(",") if t.strip()]
    return [get_task(t).name for t in task]


def _env_for(env_id: str, task: str, obs_mode: str, render_mode: str | None = None):
    import gymnasium as gym

    import daft_env  # noqa: F401  (registers the ids)

    try:
        env = gym.make(env_id, obs_mode=obs_mode, render_mode=render_mode)
    except gym.error.Error as exc:
        ids = sorted(k for k in gym.registry if k.startswith("Bolt"))
        raise ConfigError(f"cannot make env {env_id!r}: {exc}. Valid DAFT ids: {ids}") from exc
    mode = getattr(env.unwrapped, "mode", None)
    if mode not in ("multi", task):
        env.close()
        raise ConfigError(
            f"env {env_id!r} runs task {mode!r}, not {task!r}; use {DEFAULT_ENV} or "
            f"Bolt{task.capitalize()}-Sim-v0"
        )
    return env


def _task_seed(seed: int, task: str, k: int) -> int:
    # distinct, reproducible seed streams per task; k counts attempts across runs
    return int(seed) * 1_000_003 + get_task(task).task_id * 100_003 + k


def collect_demos(
    store: Any,
    env_id: str = DEFAULT_ENV,
    tasks: str | Sequence[str] = "all",
    episodes: int = 20,
    obs_mode: str = "state",
    device: str | Any = "expert",
    seed: int = 0,
    noise: float = 0.0,
    progress: bool = True,
    max_attempts_factor: int = MAX_ATTEMPTS_FACTOR,
    keep_failed: bool | None = None,
    render: bool = False,
) -> dict[str, int]:
    """Record ``episodes`` new demonstrations per task into ``store`` (kind ``demos``).

    Args:
        store: an :class:`~daft_env.store.EpisodeStore` or a path (created if missing).
        env_id: a DAFT env id; a multi-task id serves every task, a single-task id only its own.
        tasks: ``"all"``, one task name, or a list.
        episodes: new demos wanted per task.
        obs_mode: ``state``, ``pixels`` or ``pixels+state`` (images are stored compressed).
        device: ``expert``, ``spacemouse``, ``keyboard``, or a ready (connected)
            :class:`~hardware.teleop.base.TeleopDevice` instance driven like a human device.
        seed: base seed; reset seeds continue after the demos already in the store.
        noise: Gaussian action noise of the scripted expert (demos stay successful ones).
        progress: show a tqdm progress bar.
        max_attempts_factor: the expert may try ``factor * episodes`` times per task.
        keep_failed: human devices only: keep failed episodes (None: ask when interactive).
        render: open the env's interactive viewer (``render_mode="human"``) so that a person
            driving a simulated robot can see it.

    Returns:
        task -> number of demos added.

    Raises:
        ConfigError: unknown device, task, env id or obs mode.
        CollectionError: the expert failed too often on a task (the demos it got are kept).
    """
    from tqdm.auto import tqdm

    from daft_env.store import EpisodeStore
    from daft_env.wrappers import InterventionWrapper, RecordEpisodeToStore

    given_device = None if isinstance(device, str) else device
    if given_device is None and device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; valid devices: {', '.join(DEVICES)}")
    if given_device is not None and not callable(getattr(given_device, "read", None)):
        raise ConfigError(f"device must be a name in {list(DEVICES)} or a TeleopDevice")
    device_name = device if given_device is None else getattr(given_device, "name", "device")
    if isinstance(episodes, bool) or int(episodes) < 1:
        raise ConfigError(f"--episodes must be >= 1; got {episodes}")
    if noise < 0:
        raise ConfigError(f"expert noise must be >= 0; got {noise}")
    task_list = parse_tasks(tasks)
    if not isinstance(store, EpisodeStore):
        store = EpisodeStore(store)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        existing = {t: store.count(task=t, kind="demos") for t in task_list}
    for w in caught:  # corrupt files: say which, once, and carry on
        print(f"warning: {w.message}", file=sys.stderr)

    added = {t: 0 for t in task_list}
    failures = {t: 0 for t in task_list}
    bar = tqdm(
        total=episodes * len(task_list),
        desc="collect",
        unit="demo",
        disable=not progress,
        dynamic_ncols=True,
    )
    teleop = None
    try:
        if given_device is not None:
            teleop = given_device
        elif device in HUMAN_DEVICES:
            from daft_env.operator import make_device

            teleop = make_device(device)
            teleop.connect()
        for task in task_list:
            env = _env_for(env_id, task, obs_mode, render_mode="human" if render else None)
            meta = {"collector": "daft collect", "device": device_name, "expert_noise": noise}
            try:
                if device == "expert":
                    _collect_expert(
                        env,
                        store,
                        task,
                        episodes,
                        seed,
                        noise,
                        existing[task],
                        max_attempts_factor,
                        added,
                        failures,
                        bar,
                        meta,
                    )
                else:
                    _collect_human(
                        env,
                        store,
                        task,
                        episodes,
                        seed,
                        teleop,
                        existing[task],
                        added,
                        failures,
                        bar,
                        meta,
                        keep_failed,
                        InterventionWrapper,
                        RecordEpisodeToStore,
                    )
            finally:
                env.close()
    finally:
        bar.close()
        if teleop is not None and given_device is None:
            teleop.disconnect()
    short = [t for t in task_list if added[t] < episodes]
    if short:
        detail = ", ".join(
            f"{t}: {added[t]}/{episodes} after {added[t] + failures[t]} tries" for t in short
        )
        raise CollectionError(
            f"the scripted expert failed too often ({detail}); the successful demos were saved. "
            "Lower --noise, or check the env (run its expert test)."
        )
    return added


def _collect_expert(
    env: Any,
    store: Any,
    task: str,
    episodes: int,
    seed: int,
    noise: float,
    existing: int,
    factor: int,
    added: dict[str, int],
    failures: dict[str, int],
    bar: Any,
    meta: dict[str, Any],
) -> None:
    from daft_env.experts import make_expert
    from daft_env.wrappers import RecordEpisodeToStore

    rec = RecordEpisodeToStore(
        env, store, kind="demos", keep=lambda ep: ep.success, task=task, metadata=meta
    )
    expert = make_expert("multi", noise=noise)
    attempts = 0
    # failures from earlier runs are unknown; count attempts from the demos already there
    k = existing * max(1, factor)
    while added[task] < episodes and attempts < factor * episodes:
        s = _task_seed(seed, task, k + attempts)
        attempts += 1
        rec.reset(seed=s, options={"task": task} if env.unwrapped.mode == "multi" else None)
        expert.reset(s)
        while True:
            action = expert.act(env.unwrapped.privileged_state())
            _, _, terminated, truncated, info = rec.step(action)
            if terminated or truncated:
                break
        if info.get("episode_saved_path"):
            added[task] += 1
            bar.update(1)
        else:
            failures[task] += 1
        bar.set_postfix({t: added[t] for t in added} | {"failed": sum(failures.values())})


def _ask_keep(task: str) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"{task}: the episode failed. Keep it as a demo anyway? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _collect_human(
    env: Any,
    store: Any,
    task: str,
    episodes: int,
    seed: int,
    teleop: Any,
    existing: int,
    added: dict[str, int],
    failures: dict[str, int],
    bar: Any,
    meta: dict[str, Any],
    keep_failed: bool | None,
    InterventionWrapper: Any,
    RecordEpisodeToStore: Any,
) -> None:
    # the person drives for the whole episode; when the device is idle the robot holds still
    # (a zero motion command, gripper as last commanded by the device)
    def keep(ep: Any) -> bool:
        if ep.success:
            return True
        if keep_failed is None:
            return _ask_keep(task)
        return bool(keep_failed)

    wrapped = RecordEpisodeToStore(
        InterventionWrapper(env, teleop), store, kind="demos", keep=keep, task=task, metadata=meta
    )
    attempts = 0
    while added[task] < episodes:
        s = _task_seed(seed, task, 10 * existing + attempts)
        attempts += 1
        print(
            f"{task}: demo {added[task] + 1}/{episodes} - take over with the device",
            file=sys.stderr,
        )
        wrapped.reset(seed=s, options={"task": task} if env.unwrapped.mode == "multi" else None)
        hold = np.zeros(7)
        hold[6] = -1.0
        while True:
            _, _, terminated, truncated, info = wrapped.step(hold)
            cmd = info.get("executed_action")
            if cmd is not None:
                hold[6] = cmd[6]
            if terminated or truncated:
                break
        if info.get("episode_saved_path"):
            added[task] += 1
            bar.update(1)
        else:
            failures[task] += 1
            print(f"{task}: episode failed and was discarded", file=sys.stderr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``daft collect``."""
    parser.add_argument(
        "--task", default="all", help="all, one of " + ", ".join(TASK_NAMES) + " (default: all)"
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
    parser.add_argument("--env", default=DEFAULT_ENV, help=f"env id (default: {DEFAULT_ENV})")
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


def run(args: argparse.Namespace) -> int:
    """Run ``daft collect``; returns the exit status."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from daft_env.spaces import OBS_MODES

    if args.device not in DEVICES:
        raise ConfigError(f"unknown device {args.device!r}; valid devices: {', '.join(DEVICES)}")
    if args.obs_mode not in OBS_MODES:
        raise ConfigError(f"unknown --obs-mode {args.obs_mode!r}; valid: {', '.join(OBS_MODES)}")
    if args.task != "all":
        get_task(args.task)
    from daft_env.store import EpisodeStore

    store = EpisodeStore(Path(args.store))
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
    )
    totals = {t: store.count(task=t, kind="demos") for t in added}
    for task, n in added.items():
        print(f"{task}: added {n} demos, {totals[task]} in store")
    print(f"store: {store.root}")
    return 0
