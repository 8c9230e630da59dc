"""The learner side of a fleet: one learner, N robot actors on Ray (RQ5: centralised learner).

:class:`FleetRunner` is the :class:`~daft_agent.actors.OnlineRunner` (same learner thread, same
pacing rule, same ``max_update_lag``) whose interaction is N
:class:`~daft_agent.fleet.remote.RobotWorker` Ray actors instead of one in-process loop, and
whose weights go through :class:`RayWeightsHub`. :meth:`DualActorAgent.learn
<daft_agent.agent.DualActorAgent.learn>` (``fleet=FleetConfig(...)``) files what its
:meth:`FleetRunner.steps` yields, as it does for one robot. That loop hands each idle robot a
chunk of ``chunk_steps`` env steps, waits on the chunks in flight with ``ray.wait(timeout=...)``,
yields each returned chunk's episodes with its first step (the agent writes them to the durable
store first) and counts the chunk's steps into the learner's allowance,

    updates allowed = utd_ratio * (env steps of all robots - steps when ready) + updates at start,

the rule of :class:`~daft_agent.actors.OnlineRunner`. Backpressure across processes: no robot is
given a new chunk while the learner is more than ``max_update_lag`` updates behind; a chunk
already running finishes, so the lag can exceed the bound by at most
``n_robots * chunk_steps * utd_ratio`` updates.

Faults, none awaited forever (the hang of LeRobot issue #3979):

* a robot process that dies (SIGKILL, OOM) fails its call with ``ActorUnavailableError``; Ray
  restarts it (``max_restarts``) and the next call carries the learner's state for that robot
  (weights, episode count), so it resumes with the latest weights. Only the episode in flight is
  lost; every episode it had returned is already in the store. A robot Ray will not restart any
  more (``ActorDiedError``) is dropped.
* a robot that does not answer within its deadline (``chunk_steps`` paced steps plus
  ``deadline_margin_s``; plus ``start_timeout_s`` when it is starting or restarting) is ended with
  ``ray.kill`` and dropped with a message naming it and the deadline; the rest of the fleet goes on.
* when no robot is left the run stops with :class:`FleetError` listing why each one went.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from daft_agent.actors import OnlineRunner, OnlineStep, RunnerConfig
from daft_agent.errors import AgentConfigError, FleetError
from daft_agent.fleet.remote import ActorState, robot_actor_class
from daft_agent.update import Learner
from daft_env.spaces import CONTROL_HZ

log = logging.getLogger("daft.fleet")


@dataclass(frozen=True)
class RobotSpec:
    """One robot of the fleet: its name and a picklable zero-argument env factory."""

    name: str
    make_env: Callable[[], Any]


@dataclass(frozen=True)
class FleetConfig:
    """How the fleet runs (module docstring: chunks, deadlines, restarts).

    Attributes:
        robots: the robots, one Ray actor each.
        speed: multiple of the 10 Hz control rate each robot is paced at; 0 = unpaced (tests).
        chunk_steps: env steps per call to a robot.
        deadline_margin_s: slack beyond a chunk's paced duration before a robot counts as hung.
        start_timeout_s: time a robot may take to start (build its env) or restart.
        max_restarts: restarts Ray grants each robot process.
        address: Ray cluster to join (``"auto"``, ``"ray://host:10001"``); None starts Ray on this
            machine if it is not running yet.
        num_cpus: CPUs of a Ray started here (None: Ray's default).
        seed: base seed of the robots' envs and noise (robot i draws from ``(seed, i)``).
    """

    robots: tuple[RobotSpec, ...]
    speed: float = 1.0
    chunk_steps: int = 10
    deadline_margin_s: float = 30.0
    start_timeout_s: float = 120.0
    max_restarts: int = 3
    address: str | None = None
    num_cpus: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "robots", tuple(self.robots))
        names = [r.name for r in self.robots]
        if not names:
            raise AgentConfigError("a fleet needs at least one robot (FleetConfig(robots=...))")
        if len(set(names)) != len(names):
            raise AgentConfigError(f"robot names must be unique, got {names}")
        if self.speed < 0 or self.chunk_steps < 1 or self.max_restarts < 0:
            raise AgentConfigError(
                "need speed >= 0 (0 = unpaced), chunk_steps >= 1 and max_restarts >= 0; got "
                f"{self.speed}, {self.chunk_steps}, {self.max_restarts}"
            )
        if self.deadline_margin_s <= 0 or self.start_timeout_s <= 0:
            raise AgentConfigError("deadline_margin_s and start_timeout_s must be > 0")

    def runner(self, **kwargs: Any) -> FleetRunner:
        """The :class:`FleetRunner` of this fleet (``kwargs``: its other arguments)."""
        return FleetRunner(fleet=self, **kwargs)

    def chunk_deadline(self, starting: bool) -> float:
        """Seconds a robot may take to answer one chunk (plus start-up when ``starting``)."""
        paced = 0.0 if self.speed == 0 else self.chunk_steps / (CONTROL_HZ * self.speed)
        return paced + self.deadline_margin_s + (self.start_timeout_s if starting else 0.0)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start Ray on this machine (``address=None``) or join a cluster, unless already running."""
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if address is None and num_cpus is not None:
        kwargs["num_cpus"] = int(num_cpus)
    ray.init(address=address, **kwargs)


class RayWeightsHub:
    """A :class:`~daft_agent.actors.WeightsHub` in Ray's object store: one ``ray.put`` each.

    The learner thread publishes; the dispatch loop reads :meth:`latest` and hands the reference
    to robots whose version is older. Only the primary actor travels: it is the only mode that
    acts during training.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._ref: Any = None

    def publish(self, actor: nn.Module) -> int:
        """Put a CPU copy of ``actor``'s weights into the object store; returns the new version."""
        import ray

        state = {k: v.detach().clone().cpu() for k, v in actor.state_dict().items()}
        ref = ray.put(state)
        with self._lock:
            self._version += 1
            self._ref = ref
            return self._version

    @property
    def version(self) -> int:
        """The latest published version (0 before the first)."""
        return self._version

    def latest(self) -> tuple[int, Any]:
        """(version, object reference) of the latest publication."""
        with self._lock:
            return self._version, self._ref


@dataclass
class RobotProgress:
    """The learner's record of one robot: its state to re-send and its statistics."""

    name: str
    index: int
    handle: Any = None
    steps: int = 0
    episodes: int = 0
    not_before: float = 0.0
    pids: list[int] = field(default_factory=list)
    success: deque = field(default_factory=lambda: deque(maxlen=20))
    intervened_steps: int = 0
    episode_steps: int = 0
    version_lag: int = 0
    starting: bool = True
    dropped: str | None = None
    inflight: Any = None
    inflight_steps: int = 0
    deadline: float = 0.0
    deadline_s: float = 0.0

    @property
    def restarts(self) -> int:
        """Times this robot's process came back with a new pid."""
        return max(0, len(self.pids) - 1)

    def scalars(self) -> dict[str, float]:
        """The per-robot figures logged under ``fleet/<name>/``."""
        return {
            "steps": self.steps,
            "episodes": self.episodes,
            "success_rate": float(np.mean(self.success)) if self.success else float("nan"),
            "intervention_share": self.intervened_steps / max(1, self.episode_steps),
            "weight_version_lag": self.version_lag,
            "restarts": self.restarts,
            "alive": float(self.dropped is None),
        }


class FleetRunner(OnlineRunner):
    """One learner thread, N Ray robot actors (module docstring).

    Args:
        learner: the update rule.
        lock: the agent's policy lock.
        config: pacing (``utd_ratio``, ``max_update_lag``, ``weight_sync_interval``,
            ``lockstep``), as for one robot.
        fleet: the robots and the fault settings.
        actor: a CPU copy of the primary actor, shipped to every robot once.
        tasks: the agent's task names in ``task_id`` order.
        updates_done: online updates already done (a resumed run continues its count).
        on_update: called with each update's diagnostics, under ``lock``.
    """

    hub: RayWeightsHub

    def __init__(
        self,
        learner: Learner,
        lock: threading.RLock,
        config: RunnerConfig,
        fleet: FleetConfig,
        actor: nn.Module,
        tasks: Sequence[str],
        updates_done: int = 0,
        on_update: Callable[[dict[str, float]], None] | None = None,
    ) -> None:
        super().__init__(None, learner, lock, config, updates_done, on_update, RayWeightsHub())
        self.fleet = fleet
        self.actor = actor
        self.tasks = tuple(tasks)
        self.robots = [RobotProgress(spec.name, i) for i, spec in enumerate(fleet.robots)]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FleetRunner:
        """Start Ray (or join it), the robot actors, then the learner thread."""
        import ray

        ensure_ray(self.fleet.address, self.fleet.num_cpus)
        cls = robot_actor_class(self.fleet.max_restarts)
        # One copy of the actor in the object store for every robot; the runner holds the
        # reference, so a restarted robot can still read its constructor arguments.
        self._actor_ref = ray.put(self.actor)
        for robot, spec in zip(self.robots, self.fleet.robots, strict=True):
            robot.handle = cls.remote(
                spec.name, spec.make_env, self._actor_ref, self.tasks, self.fleet.speed
            )
        pending = {r.handle.pid.remote(): r for r in self.robots}
        ready, _ = ray.wait(
            list(pending), num_returns=len(pending), timeout=self.fleet.start_timeout_s
        )
        for ref in list(pending):
            robot = pending[ref]
            if ref not in ready:
                self._drop(
                    robot,
                    f"did not start within its {self.fleet.start_timeout_s:.0f} s start-up deadline",
                )
                continue
            try:
                robot.pids.append(ray.get(ref, timeout=1.0))
            except ray.exceptions.RayError as exc:
                self._drop(robot, f"failed to start: {_first_line(exc)}")
        self._check_alive()
        super().start()
        return self

    def stop(self) -> None:
        """Stop the learner thread (raising its error), then end every robot actor."""
        import ray

        try:
            super().stop()
        finally:
            for robot in self.robots:
                if robot.handle is not None:
                    ray.kill(robot.handle, no_restart=True)
                    robot.handle = None

    # ------------------------------------------------------------------ faults
    def _drop(self, robot: RobotProgress, why: str) -> None:
        import ray

        robot.dropped = f"robot {robot.name!r} {why}"
        robot.inflight = None
        if robot.handle is not None:
            ray.kill(robot.handle, no_restart=True)
            robot.handle = None
        alive = [r.name for r in self.robots if r.dropped is None]
        log.warning("%s; dropped it, the fleet goes on with %s", robot.dropped, alive)

    def _check_alive(self) -> None:
        if all(r.dropped is not None for r in self.robots):
            raise FleetError(
                "every robot of the fleet is gone: "
                + "; ".join(str(r.dropped) for r in self.robots)
            )

    # ------------------------------------------------------------------ the loop
    def _lagging(self) -> bool:
        if self.config.lockstep:
            return False
        with self._progress:
            return self.updates_allowed() - self.updates_done > self.config.max_update_lag

    def _dispatch(self, robot: RobotProgress, n: int) -> None:
        version, ref = self.hub.latest()
        state = ActorState(
            weights_version=version,
            weights=[ref] if ref is not None else [],
            episodes=robot.episodes,
            steps=robot.steps,
            seed=int(np.random.SeedSequence([self.fleet.seed, robot.index]).generate_state(1)[0]),
        )
        robot.inflight = robot.handle.run_steps.remote(n, state)
        robot.inflight_steps = n
        robot.deadline_s = self.fleet.chunk_deadline(robot.starting)
        robot.deadline = time.monotonic() + robot.deadline_s

    def _receive(self, robot: RobotProgress) -> tuple[int, list[Any]]:
        """What a finished chunk returned: its env steps and episodes (0, [] when it failed)."""
        import ray

        ref, robot.inflight = robot.inflight, None
        try:
            out = ray.get(ref, timeout=10.0)
        except ray.exceptions.ActorUnavailableError as exc:  # dead or restarting: Ray restarts it
            if not robot.starting:
                log.warning(
                    "robot %r is down (%s); its episode in flight is lost, Ray restarts it and it "
                    "resumes with weights v%d",
                    robot.name,
                    _first_line(exc),
                    self.hub.version,
                )
            robot.starting = True
            robot.not_before = time.monotonic() + 0.2  # do not spin on a restarting process
            return 0, []
        except ray.exceptions.RayActorError as exc:  # died for good: no restarts left
            self._drop(
                robot,
                f"died and Ray will not restart it (max_restarts={self.fleet.max_restarts}): "
                f"{_first_line(exc)}",
            )
            return 0, []
        except ray.exceptions.GetTimeoutError:
            self._drop(robot, "finished a chunk whose result could not be fetched within 10 s")
            return 0, []
        except ray.exceptions.RayTaskError as exc:
            raise FleetError(f"robot {robot.name!r}: its env raised an error: {exc}") from exc
        robot.starting = False
        if not robot.pids or robot.pids[-1] != out["pid"]:
            robot.pids.append(out["pid"])
        for episode in out["episodes"]:
            robot.episodes += 1
            robot.success.append(float(episode.success))
            robot.intervened_steps += int(np.sum(episode.intervened))
            robot.episode_steps += len(episode)
            robot.version_lag = self.hub.version - int(episode.metadata.get("weights_version", 0))
        steps = int(out["steps"])
        robot.steps += steps
        with self._progress:
            self.env_steps += steps
            self._progress.notify_all()
        if self.config.lockstep:
            while self.updates_done < self.updates_allowed():
                self._update_once()
        return steps, out["episodes"]

    def steps(self, total_steps: int) -> Iterator[OnlineStep]:
        """``total_steps`` env steps across the fleet, chunk by chunk as robots return them.

        Each returned chunk yields one :class:`~daft_agent.actors.OnlineStep` per env step, its
        episodes with the first. Leaving the iteration early stops the run (no new chunks; those
        in flight are abandoned).

        Raises:
            FleetError: no robot is left, or a robot's env raised.
            BaseException: whatever the learner thread raised.
        """
        import ray

        done = 0
        while done < total_steps:
            if self._error is not None:
                raise self._error
            self._check_alive()
            for robot in self.robots:
                outstanding = done + sum(r.inflight_steps for r in self.robots if r.inflight)
                idle = robot.inflight is None and time.monotonic() >= robot.not_before
                if robot.dropped is None and idle and outstanding < total_steps:
                    if self._lagging():
                        break
                    self._dispatch(robot, min(self.fleet.chunk_steps, total_steps - outstanding))
            inflight = {r.inflight: r for r in self.robots if r.inflight is not None}
            if not inflight:  # held back by the lag bound: wait for the learner
                with self._progress:
                    self._progress.wait(timeout=0.05)
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.1)
            for ref in ready:
                steps, episodes = self._receive(inflight[ref])
                done += steps
                for i in range(steps):
                    yield OnlineStep(
                        {}, False, 0.0, None, episodes if i == 0 else [], steps - 1 - i
                    )
            now = time.monotonic()
            for robot in self.robots:
                if robot.inflight is not None and now > robot.deadline:
                    self._drop(
                        robot,
                        f"did not answer run_steps within its {robot.deadline_s:.1f} s deadline",
                    )

    def record(self, logger: Any) -> None:
        """Write every robot's figures to an SB3 logger under ``fleet/<robot>/...``."""
        for robot in self.robots:
            for key, value in robot.scalars().items():
                logger.record(f"fleet/{robot.name}/{key}", value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


__all__ = [
    "FleetConfig",
    "FleetRunner",
    "RayWeightsHub",
    "RobotProgress",
    "RobotSpec",
    "ensure_ray",
]
