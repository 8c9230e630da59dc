"""Demonstrations per task into an episode store (paper: 20 per task): :func:`collect_demos`.

Devices: ``expert`` (the scripted expert on privileged sim state; only successful demos are kept,
failed attempts are retried up to a cap), ``spacemouse`` and ``keyboard`` (a person drives the robot
for the whole episode; a successful episode is saved, a failed one is discarded, or kept as a
demo when ``keep_failed`` is True, or after a yes at the prompt when stdin is a terminal).
Re-running adds to the store; seeds continue after the demos already there, so new demos differ.
``daft collect`` is its command line.

Any other env (``env_id="module:EnvId"``, or a registered id that is not DAFT's) runs under
:class:`~daft_env.adapters.DaftSpaces`, and its demonstrator is the user's scripted plan
(``expert="module:callable"`` or a callable; :mod:`daft_env.plan_operator`), its tasks the env's.
Its demos hold the normalised actions DAFT's learner acts in (``DaftSpaces.to_env`` maps back).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from daft_env.errors import CollectionError
from daft_env.tasks import TASK_NAMES, get_task
from hardware.errors import ConfigError

DEVICES = ("expert", "spacemouse", "keyboard")
HUMAN_DEVICES = ("spacemouse", "keyboard")
DEFAULT_ENV = "BoltMultiTask-Sim-v0"
#: expert attempts allowed per requested demo before giving up on a task
MAX_ATTEMPTS_FACTOR = 3


def parse_tasks(task: str | Sequence[str], env_tasks: Sequence[str] | None = None) -> list[str]:
    """``"all"`` -> every task (the env's, else the bolt tasks); names -> validated names.

    Raises:
        ConfigError: an unknown name, or one the env does not run (the message lists its tasks).
    """
    known = list(TASK_NAMES if env_tasks is None else env_tasks)
    if isinstance(task, str):
        if task == "all":
            return known
        task = [t.strip() for t in task.split(",") if t.strip()]
    names = [get_task(t).name for t in task]
    bad = [t for t in names if env_tasks is not None and t not in known]
    if bad:
        raise ConfigError(f"the env does not run task(s) {bad}; its tasks are {known}")
    return names


def _env_for(
    env_id: str,
    task: str,
    obs_mode: str,
    render_mode: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
):
    import gymnasium as gym

    from daft_env.adapters import is_daft_id, make_env

    if not is_daft_id(env_id):
        return make_env(env_id, **dict(env_kwargs or {}))
    try:
        env = gym.make(env_id, obs_mode=obs_mode, render_mode=render_mode, **dict(env_kwargs or {}))
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
    env_kwargs: Mapping[str, Any] | None = None,
    display: Any = None,
    expert: Any = None,
) -> dict[str, int]:
    """Record ``episodes`` new demonstrations per task into ``store`` (kind ``demos``).

    Args:
        store: an :class:`~daft_env.store.EpisodeStore` or a path (created if missing).
        env_id: a DAFT env id (a multi-task id serves every task, a single-task id only its
            own), or any other env's (``"module:EnvId"``; module docstring).
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
        env_kwargs: more ``gym.make`` arguments, e.g. ``{"chained_starts": 0.5}`` so the demos
            cover the starts the training env will produce.
        display: a :class:`~daft_env.display.StepStream` that every step (kept or not) is
            streamed to, as robot ``0`` (``--display`` / ``--record``); None streams nothing.
        expert: the demonstrator of ``device="expert"`` on another env than DAFT's: a plan
            (``"module:callable"``, a callable or an object with ``act``); on the bolt envs
            None means DAFT's scripted experts.

    Returns:
        task -> number of demos added.

    Raises:
        ConfigError: unknown device, task, env id or obs mode.
        CollectionError: the expert failed too often on a task (the demos it got are kept).
    """
    from tqdm.auto import tqdm

    from daft_env.store import EpisodeStore

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
    user_tasks = _user_env_tasks(env_id, env_kwargs)
    if user_tasks is not None and teleop_needs_plan(given_device, device) and expert is None:
        raise ConfigError(
            f"{env_id} is not one of DAFT's bolt envs, whose scripted experts are DAFT's; give "
            "its demonstrator: --expert module:callable (a plan from the observation, or the "
            "privileged state, to an action; daft_env.plan_operator)"
        )
    if user_tasks is None and expert is not None:
        raise ConfigError(
            "--expert is for envs other than DAFT's; the bolt envs use DAFT's experts"
        )
    task_list = parse_tasks(tasks, user_tasks)
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
        meta = {"collector": "daft collect", "device": device_name, "expert_noise": noise}
        for task in task_list:
            if teleop is None and expert is not None:
                driver: _Driver = _PlanDriver(
                    expert, noise, seed, existing[task], max_attempts_factor, episodes
                )
            elif teleop is None:
                driver = _ExpertDriver(noise, existing[task], max_attempts_factor, episodes)
            else:
                driver = _DeviceDriver(teleop, existing[task], keep_failed)
            env = _env_for(
                env_id, task, obs_mode, "human" if render else None, env_kwargs=env_kwargs
            )
            try:
                _collect_task(
                    env, store, task, episodes, seed, driver, added, failures, bar, meta, display
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


class _Driver:
    """Who drives a demo: what wraps the env, which seeds, each action, and what is kept."""

    #: attempts allowed for one task in this run
    max_attempts: int
    #: index of this run's first attempt in the task's seed stream (continues earlier runs)
    first_seed: int

    def wrap(self, env: Any) -> Any:
        return env

    def begin(self, task: str, seed: int, demo: int, episodes: int) -> None:
        """Called before each attempt's reset."""

    def act(self, env: Any, info: dict[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def keep(self, task: str, ep: Any) -> bool:
        return bool(ep.success)

    def discarded(self, task: str) -> None:
        """Called when an attempt was not kept."""


class _ExpertDriver(_Driver):
    """The scripted expert on privileged sim state; only successful demos are kept."""

    def __init__(self, noise: float, existing: int, factor: int, episodes: int) -> None:
        from daft_env.experts import make_expert

        self.expert = make_expert("multi", noise=noise)
        self.max_attempts = factor * episodes
        # failures from earlier runs are unknown; count attempts from the demos already there
        self.first_seed = existing * max(1, factor)

    def begin(self, task: str, seed: int, demo: int, episodes: int) -> None:
        self.expert.reset(seed)

    def act(self, env: Any, info: dict[str, Any]) -> np.ndarray:
        return self.expert.act(env.unwrapped.privileged_state())


class _PlanDriver(_Driver):
    """A user's scripted plan on any env, plus Gaussian noise in normalised units; successes kept."""

    def __init__(
        self, plan: Any, noise: float, seed: int, existing: int, factor: int, episodes: int
    ) -> None:
        self.spec = plan
        self.plan: Any = None
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)
        self.max_attempts = factor * episodes
        self.first_seed = existing * max(1, factor)

    def begin(self, task: str, seed: int, demo: int, episodes: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, env: Any, info: dict[str, Any]) -> np.ndarray:
        from daft_env.plan_operator import as_plan, load_plan, plan_action

        if self.plan is None:
            self.plan = (
                load_plan(self.spec, env) if isinstance(self.spec, str) else as_plan(self.spec)
            )
        if info.get("step_index") is None and not info:  # the episode's first step
            self.plan.reset()
        a = plan_action(self.plan, env)
        if self.noise:
            a = np.clip(a + self.rng.normal(0.0, self.noise, size=a.shape), -1.0, 1.0)
        return a


def _user_env_tasks(env_id: str, env_kwargs: Mapping[str, Any] | None) -> list[str] | None:
    """The task names of a user's env (made once to ask), or None for DAFT's bolt envs."""
    from daft_env.adapters import is_daft_id, make_env

    if is_daft_id(env_id):
        return None
    env = make_env(env_id, **dict(env_kwargs or {}))
    try:
        return list(env.get_wrapper_attr("task_names"))
    finally:
        env.close()


def teleop_needs_plan(given_device: Any, device: Any) -> bool:
    """Whether the demonstrator is the scripted expert (no teleop device drives)."""
    return given_device is None and device == "expert"


class _DeviceDriver(_Driver):
    """A person drives for the whole episode through a teleop device, until enough are kept.

    When the device is idle the robot holds still: a zero motion command, the gripper as last
    commanded by the device.
    """

    def __init__(self, teleop: Any, existing: int, keep_failed: bool | None) -> None:
        self.teleop = teleop
        self.keep_failed = keep_failed
        self.max_attempts = sys.maxsize
        self.first_seed = 10 * existing
        self.hold = np.zeros(7)

    def wrap(self, env: Any) -> Any:
        from daft_env.wrappers import InterventionWrapper

        return InterventionWrapper(env, self.teleop)

    def begin(self, task: str, seed: int, demo: int, episodes: int) -> None:
        print(f"{task}: demo {demo + 1}/{episodes} - take over with the device", file=sys.stderr)
        self.hold = np.zeros(7)
        self.hold[6] = -1.0

    def act(self, env: Any, info: dict[str, Any]) -> np.ndarray:
        cmd = info.get("executed_action")
        if cmd is not None:
            self.hold[6] = cmd[6]
        return self.hold.copy()

    def keep(self, task: str, ep: Any) -> bool:
        if ep.success:
            return True
        if self.keep_failed is None:
            return _ask_keep(task)
        return bool(self.keep_failed)

    def discarded(self, task: str) -> None:
        print(f"{task}: episode failed and was discarded", file=sys.stderr)


def driver_label(driver: _Driver) -> str:
    """How a demo is driven, as said at each episode's start in the live view."""
    if isinstance(driver, _PlanDriver):
        return "scripted plan"
    return "scripted expert" if isinstance(driver, _ExpertDriver) else "teleop device"


def _tasks_of(env: Any) -> tuple[str, ...]:
    try:
        return tuple(env.get_wrapper_attr("task_names"))
    except AttributeError:
        return ()


def _ask_keep(task: str) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"{task}: the episode failed. Keep it as a demo anyway? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _collect_task(
    env: Any,
    store: Any,
    task: str,
    episodes: int,
    seed: int,
    driver: _Driver,
    added: dict[str, int],
    failures: dict[str, int],
    bar: Any,
    meta: dict[str, Any],
    display: Any = None,
) -> None:
    """Record demos of ``task`` with ``driver`` until ``episodes`` are kept or attempts run out."""
    from daft_env.wrappers import RecordEpisodeToStore

    rec = RecordEpisodeToStore(
        driver.wrap(env),
        store,
        kind="demos",
        keep=lambda ep: driver.keep(task, ep),
        task=task,
        metadata=meta,
    )
    if display is not None:
        from daft_env.display import DisplayWrapper

        rec = DisplayWrapper(rec, display, robot="0", label=f"collect, {driver_label(driver)}")
    multi = getattr(env.unwrapped, "mode", None) == "multi" or len(_tasks_of(env)) > 1
    options = {"task": task} if multi else None
    attempts = 0
    while added[task] < episodes and attempts < driver.max_attempts:
        s = _task_seed(seed, task, driver.first_seed + attempts)
        attempts += 1
        driver.begin(task, s, added[task], episodes)
        rec.reset(seed=s, options=options)
        info: dict[str, Any] = {}
        while True:
            _, _, terminated, truncated, info = rec.step(driver.act(env, info))
            if terminated or truncated:
                break
        if info.get("episode_saved_path"):
            added[task] += 1
            bar.update(1)
        else:
            failures[task] += 1
            driver.discarded(task)
        bar.set_postfix({t: added[t] for t in added} | {"failed": sum(failures.values())})


__all__ = ["DEFAULT_ENV", "DEVICES", "HUMAN_DEVICES", "collect_demos", "parse_tasks"]
