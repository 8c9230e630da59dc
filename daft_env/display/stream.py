"""See what the robot sees: every step streamed to Rerun, live or into a ``.rrd`` recording.

The person in the loop decides when to take over and what to say; this shows them, as it happens,
what the policy is about to do, what the cameras see, which command the labeller heard, how much
of the operator's budget is spent and whether the learner keeps up (issue 21).

Entity layout, LeRobot-style (one entity per camera and per signal, time on the step index), one
subtree per robot so a fleet shows one subtree per robot::

    robot/<name>/camera/<key>              Image (JPEG) of each camera in the observation
    robot/<name>/world/tcp                 Transform3D: end-effector pose (sim: privileged state)
    robot/<name>/world/bolt                Transform3D: the active bolt's pose
    robot/<name>/world/fixture, .../slot   Points3D: the fixture and the active slot's entrance
    robot/<name>/world/action/policy       Arrows3D at the TCP: the proposed translation over
    robot/<name>/world/action/executed     the labels' window (J = 5 steps), and the executed one
    robot/<name>/action/policy             Scalars, one series per action dim (dx ... gripper)
    robot/<name>/action/executed           Scalars
    robot/<name>/gripper                   Scalars: the proprioceptive gripper observation
    robot/<name>/operator/intervening      Scalars: 1 while the operator holds control
    robot/<name>/operator/reason           TextLog on every intervened step: why it took over
    robot/<name>/operator/command          TextLog: the talk-and-tweak command, at the step it
                                           labels (labels become final J-1 steps later, Eq. 12), and
                                           any command spoken at test time
    robot/<name>/operator/share            Scalars: the operator's used share, and its cap
    robot/<name>/reward, .../success       Scalars
    robot/<name>/episode                   TextLog at each episode's start and end
    robot/<name>/learner/updates           Scalars, when the caller passes learner stats
    robot/<name>/learner/weight_lag        Scalars
    robot/<name>/status                    TextDocument: one heads-up line (who holds control, why,
                                           what was said), readable while holding a SpaceMouse

Timelines: ``step`` (the robot's step counter, shared by every env wrapped for that robot) and
``episode``.

Cost: :meth:`StepStream.log_step` only copies the step's numbers onto a bounded queue; a pump
thread hands them every 20 ms to a logging process (``python -m daft_env.display.worker``) that makes
the Rerun calls in column batches (and the JPEGs), so the Rerun work never holds the control
loop's GIL. When the queue is full the step is dropped and counted (:attr:`StepStream.dropped`),
never waited for: the robot's pace comes first. ``benchmarks/display_cost.py`` measures the
state-mode step time with and without it.

A viewer address that does not answer is probed once at :meth:`StepStream.open`: one
:class:`DisplayWarning`, then the run goes on (and a ``record_path`` still gets every step).

``rerun`` (``pip install rerun-sdk``, the ``viz`` extra) is imported only by the logging process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import re
import select
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from daft_env.errors import ConfigError
from daft_env.spaces import STATE_SLICES

#: the action dims' names, one time series each
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
#: steps of travel an action arrow shows (the labels' window J of Eq. 12)
ARROW_STEPS = 5
#: Rerun's default viewer port
DEFAULT_PORT = 9876
#: privileged-state fields drawn in 3-D
POSE_KEYS = ("tcp_pos", "tcp_quat", "bolt_pos", "bolt_quat", "fixture_pos", "slot_pos")
#: the logging process sends its buffered rows every this many steps or seconds
FLUSH_STEPS = 128
FLUSH_SECONDS = 0.2
#: the caller's side hands its queued steps to the logging process this often
PUMP_SECONDS = 0.02
#: seconds the logging process may take to start (it imports rerun and daft_env: about 1 s)
WORKER_START_TIMEOUT = 60.0
_ROBOT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_STOP = object()


class DisplayWarning(UserWarning):
    """The live view could not do all it was asked (no viewer answered, or steps were dropped)."""


def require_rerun() -> Any:
    """The ``rerun`` module, or a :class:`~daft_env.errors.ConfigError` that says how to get it."""
    try:
        import rerun
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "--display, --record and daft view need the Rerun SDK, which is not installed; run "
            "`pip install rerun-sdk` (or `pip install -e .[viz]`)"
        ) from exc
    return rerun


def viewer_url(address: str) -> tuple[str, str, int]:
    """``(url, host, port)`` of a viewer address: ``host``, ``host:port`` or a ``rerun+http`` URL.

    Raises:
        ConfigError: the address cannot be read.
    """
    m = re.match(
        r"^(?:(rerun(?:\+https?)?)://)?([^/:]+|\[[^\]]+\])(?::(\d+))?(/proxy)?/?$", address
    )
    if not m:
        raise ConfigError(
            f"cannot read the viewer address {address!r}; give host:port (e.g. 127.0.0.1:9876) "
            "or a rerun+http://host:port/proxy URL"
        )
    scheme = m.group(1) or "rerun+http"
    host, port = m.group(2), int(m.group(3) or DEFAULT_PORT)
    return f"{scheme}://{host}:{port}/proxy", host.strip("[]"), port


def _answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class OperatorStatus:
    """Who holds control on one step, and what the operator has spent.

    Attributes:
        holding: the operator's action was executed.
        reason: why it took over (the simulated operator's trigger: ``deviation``, ``stall``,
            ``collision``, ``contact``, ``drop``; ``person`` for a human device), None when not
            holding.
        share: its realised share of intervened (or, speaking, spoken-to) steps so far.
        cap: the share its budget pays for (``target_rate``), None without a budget.
    """

    holding: bool
    reason: str | None = None
    share: float | None = None
    cap: float | None = None


class RobotClock:
    """The step and episode counters of one robot, shared by every wrapper that logs for it."""

    def __init__(self) -> None:
        self.step = 0
        self.episode = -1


class StepStream:
    """Steps to Rerun through a bounded queue and a logging process: never blocks its caller.

    Open one with :meth:`open`; a stream opened with nothing to show or record is disabled and
    every call is a no-op, so callers need no ``if``.

    Why a process: the Rerun calls of one step take about 0.7 ms of Python, as long as the whole
    state-mode step; on a thread they hold the GIL the control loop needs (measured: step time
    x1.9). Here the caller only copies the step's arrays onto a queue; a thread pickles them into
    a pipe (the pipe's writes release the GIL), and a worker process (``python -m
    daft_env.display.worker``) makes the Rerun calls and the JPEGs. A full queue drops the step.

    Args:
        queue_size: steps buffered for the worker; a step logged while it is full is dropped and
            counted.
        jpeg_quality: camera images are JPEG-encoded (by the worker) at this quality; None logs
            raw RGB (a 50-step pixel episode is then 12 MB).
    """

    def __init__(self, queue_size: int = 512, jpeg_quality: int | None = 90) -> None:
        if queue_size < 1:
            raise ConfigError(f"queue_size must be >= 1; got {queue_size}")
        self.queue_size = int(queue_size)
        self.jpeg_quality = jpeg_quality
        self.enabled = False
        #: items (steps and events) queued / steps dropped because the queue was full
        self.logged = 0
        self.dropped = 0
        self.sinks: list[str] = []
        # a deque, not a queue.Queue: an append takes no lock and wakes no thread; the pump
        # thread collects every PUMP_SECONDS instead
        self._queue: deque[Any] = deque()
        self._stopping = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._clocks: dict[str, RobotClock] = {}
        self._error: str | None = None

    # ------------------------------------------------------------------ opening and closing
    @classmethod
    def open(
        cls,
        spawn: bool = False,
        address: str | None = None,
        record_path: str | Path | None = None,
        application_id: str = "daft",
        recording_id: str | None = None,
        **kwargs: Any,
    ) -> StepStream:
        """A stream to a new viewer (``spawn``), a running one (``address``) and/or a file.

        Args:
            spawn: start a Rerun viewer on this machine (port 9876) and stream to it.
            address: a viewer elsewhere (``host:port``); one that does not answer gives one
                :class:`DisplayWarning` and is left out.
            record_path: also write the stream to this ``.rrd`` file (its folder is created).
            application_id: Rerun's application id.
            recording_id: robots of a fleet in several processes pass the same id, so the viewer
                merges their subtrees into one recording.
            **kwargs: :class:`StepStream` settings.

        Raises:
            ConfigError: the Rerun SDK is missing, the address cannot be read, the record path
                is not an ``.rrd`` file name, or the logging process did not start.
        """
        stream = cls(**kwargs)
        if not (spawn or address or record_path):
            return stream
        if record_path is not None and Path(record_path).suffix != ".rrd":
            raise ConfigError(
                f"--record writes a Rerun recording; name it *.rrd, not {record_path}"
            )
        url = viewer_url(address) if address else None
        if importlib.util.find_spec("rerun") is None:
            require_rerun()  # raises with the install line
        sinks: list[tuple[str, str]] = []
        if url is not None:
            if _answers(url[1], url[2]):
                sinks.append(("grpc", url[0]))
            else:
                kept = f"; every step is still recorded to {record_path}" if record_path else ""
                warnings.warn(
                    f"no Rerun viewer answers at {address} ({url[0]}); the run goes on without "
                    f"the live view{kept}. Start one there with `rerun --port {url[2]}`",
                    DisplayWarning,
                    stacklevel=2,
                )
        if record_path is not None:
            path = Path(record_path).expanduser().resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            sinks.append(("file", str(path)))
        if not (sinks or spawn):
            return stream
        config = {
            "application_id": application_id,
            "recording_id": recording_id,
            "spawn": bool(spawn),
            "sinks": sinks,
            "jpeg_quality": stream.jpeg_quality,
        }
        reply = stream._start_worker(config)
        for text in reply.get("warnings", []):
            warnings.warn(text, DisplayWarning, stacklevel=2)
        stream.sinks = reply.get("sinks", [])
        if not stream.sinks:
            stream._stop_worker(10.0)
            return stream
        stream.enabled = True
        stream._thread = threading.Thread(target=stream._pump, name="daft-display", daemon=True)
        stream._thread.start()
        return stream

    def _start_worker(self, config: dict[str, Any]) -> dict[str, Any]:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # this checkout's daft_env, not another
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "daft_env.display.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        _write_frame(self._proc.stdin, config)
        self._proc.stdin.flush()
        reply = self._read_reply(WORKER_START_TIMEOUT)
        if reply is None:
            self._proc.kill()
            raise ConfigError(
                f"the Rerun logging process did not start within {WORKER_START_TIMEOUT:.0f} s; "
                "check that `python -m daft_env.display.worker` runs (pip install rerun-sdk)"
            )
        return reply

    def _read_reply(self, timeout: float) -> dict[str, Any] | None:
        out = self._proc.stdout
        ready, _, _ = select.select([out], [], [], timeout)
        if not ready:
            return None
        line = out.readline()
        return json.loads(line) if line else None

    def _stop_worker(self, timeout: float) -> dict[str, Any] | None:
        proc, reply = self._proc, None
        if proc is None:
            return None
        try:
            _write_frame(proc.stdin, None)
            proc.stdin.close()
            reply = self._read_reply(timeout)
            proc.wait(timeout)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        self._proc = None
        return reply

    def close(self, timeout: float = 30.0) -> None:
        """Log what is queued, flush the sinks and stop the worker (safe to call twice).

        A :class:`DisplayWarning` says how many steps were dropped, if any.
        """
        if not self.enabled:
            return
        self.enabled = False
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        reply = self._stop_worker(timeout)
        if reply is None and self._error is None:
            self._error = "the logging process ended without flushing"
        elif reply is not None and reply.get("error"):
            self._error = reply["error"]
        if self.dropped:
            warnings.warn(
                f"the live view dropped {self.dropped} of {self.logged + self.dropped} steps to "
                "keep the control loop's pace",
                DisplayWarning,
                stacklevel=2,
            )
        if self._error is not None:
            warnings.warn(f"the live view stopped early: {self._error}", DisplayWarning, 2)

    def __enter__(self) -> StepStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def clock(self, robot: str) -> RobotClock:
        """The step and episode counters of ``robot`` (created on first use)."""
        if robot not in self._clocks:
            if not _ROBOT_NAME.match(robot):
                raise ConfigError(
                    f"robot name {robot!r} must be letters, digits, '_' or '-' (it is an entity "
                    "path part: robot/<name>/...)"
                )
            self._clocks[robot] = RobotClock()
        return self._clocks[robot]

    @property
    def worker_pid(self) -> int | None:
        """The logging process's id while the stream is open."""
        return None if self._proc is None else self._proc.pid

    # ------------------------------------------------------------------ the caller's side
    def _put(self, item: tuple[str, dict[str, Any]], block: bool) -> bool:
        if not self.enabled:
            return False
        if len(self._queue) >= self.queue_size:
            if not block:
                self.dropped += 1
                return False
            while len(self._queue) >= self.queue_size and self._error is None:
                time.sleep(0.002)
        self._queue.append(item)
        self.logged += 1
        return True

    def _pump(self) -> None:
        """The thread that pickles what was queued, every PUMP_SECONDS, into the worker's pipe."""
        pipe, items = self._proc.stdin, self._queue
        while True:
            stopping = self._stopping.wait(PUMP_SECONDS)
            while items:
                batch = [items.popleft() for _ in range(min(len(items), 512))]
                if self._error is not None:
                    continue  # the worker is gone: keep draining, never block the caller
                try:
                    _write_frame(pipe, batch)
                    pipe.flush()  # the viewer sees the steps now, not a buffer later
                except (OSError, ValueError) as exc:  # the worker died: the run goes on
                    self._error = f"the logging process is gone ({exc!r})"
            if stopping:
                return

    def log_event(
        self, robot: str, text: str, step: int | None = None, level: str = "INFO"
    ) -> None:
        """A line at ``robot/<robot>/episode`` (an episode's start or end, an emergency stop)."""
        if self.enabled:
            clock = self.clock(robot)
            item = {"step": clock.step if step is None else step, "episode": clock.episode}
            self._put(("event", {"robot": robot, "text": text, "level": level, **item}), True)

    def log_step(
        self,
        robot: str,
        step: int | None,
        obs: Any,
        info: Mapping[str, Any],
        privileged_state: Mapping[str, Any] | None = None,
        operator: OperatorStatus | None = None,
        learner_stats: Mapping[str, float] | None = None,
        action: Any = None,
        reward: float | None = None,
        done: bool = False,
        labels: Iterable[tuple[int, str]] = (),
        block: bool = False,
    ) -> bool:
        """Queue one step of ``robot``; returns False when it was dropped (or the stream is off).

        Args:
            robot: the robot's name (its subtree, ``robot/<robot>``).
            step: the step's index on the ``step`` timeline; None: the robot's next step.
            obs: the observation after the step (``dict``: cameras, ``gripper``, ``state``).
            info: the step's ``info`` (an InterventionWrapper's keys are read when present).
            privileged_state: sim poses (``tcp_pos``, ``tcp_quat`` [w, x, y, z], ``bolt_pos``,
                ``bolt_quat``, ``fixture_pos``, ``slot_pos``); None: read from ``obs["state"]``
                when there is one.
            operator: who held control and the budget spent.
            learner_stats: e.g. ``{"updates": 120, "weight_lag": 2}``.
            action: the action the caller sent, used when ``info`` has no ``executed_action``.
            reward: the step's reward.
            done: the episode ended at this step.
            labels: ``(step, command)`` talk-and-tweak labels to show at the steps they label.
            block: wait for room in the queue instead of dropping (replaying a store, not a
                control loop).
        """
        if not self.enabled:
            return False
        clock = self.clock(robot)
        if step is None:
            step = clock.step
            clock.step += 1
        images, gripper, state = {}, None, None
        if isinstance(obs, Mapping):
            for key, value in obs.items():
                arr = np.asarray(value)
                if arr.dtype == np.uint8 and arr.ndim == 3:
                    images[key] = arr.copy()
            if "gripper" in obs:
                gripper = np.asarray(obs["gripper"], np.float64).ravel().tolist()
            if "state" in obs:
                state = np.asarray(obs["state"])
        poses = _poses(privileged_state, state)
        executed = info.get("executed_action")
        if executed is None:
            executed = action
        policy = info.get("policy_action", executed)
        # small arrays travel as lists: pickling a list of floats is ~10x cheaper than an array,
        # and the pickling runs on the caller's GIL (measured: 100 us a step with arrays)
        item = {
            "robot": robot,
            "step": int(step),
            "episode": clock.episode,
            "images": images,
            "gripper": gripper,
            "poses": {k: np.asarray(v, np.float64).ravel().tolist() for k, v in poses.items()},
            "policy": None if policy is None else np.asarray(policy, np.float64).ravel().tolist(),
            "executed": None
            if executed is None
            else np.asarray(executed, np.float64).ravel().tolist(),
            "operator": None
            if operator is None
            else (operator.holding, operator.reason, operator.share, operator.cap),
            "spoken": info.get("refinement_command_now"),
            "labels": list(labels),
            "reward": None if reward is None else float(reward),
            "done": bool(done),
            "success": bool(info.get("is_success", False)),
            "learner": dict(learner_stats or {}),
        }
        return self._put(("step", item), block)


def _write_frame(pipe: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=5)
    pipe.write(len(data).to_bytes(8, "little"))
    pipe.write(data)


def _read_frame(pipe: Any) -> Any:
    head = pipe.read(8)
    if len(head) < 8:
        return None
    return pickle.loads(pipe.read(int.from_bytes(head, "little")))


def _spawn_viewer(timeout: float = 20.0) -> str | None:
    """Start the Rerun viewer shipped with rerun-sdk on port 9876 (or reuse one); None if up.

    Returns why it could not, otherwise. The viewer outlives the run, as ``rr.spawn``'s does.
    """
    if _answers("127.0.0.1", DEFAULT_PORT, 0.5):
        return None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rerun", "--port", str(DEFAULT_PORT)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        return str(exc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers("127.0.0.1", DEFAULT_PORT, 0.5):
            return None
        if proc.poll() is not None:
            return f"the viewer exited with status {proc.returncode}; is there a display?"
        time.sleep(0.2)
    return f"the viewer did not listen on port {DEFAULT_PORT} within {timeout:.0f} s"


def _status(operator: OperatorStatus | None, command: str | None) -> str:
    """The heads-up line: who holds control, why, what was said, the budget."""
    if operator is None:
        who = "**policy**"
    elif operator.holding:
        who = f"**OPERATOR** holds control ({operator.reason or 'unknown'})"
    else:
        who = "**policy** holds control"
    parts = [who]
    if command:
        parts.append(f'command: "{command}"')
    if operator is not None and operator.share is not None:
        cap = f" of {100 * operator.cap:.0f} %" if operator.cap is not None else ""
        parts.append(f"operator share {100 * operator.share:.0f} %{cap}")
    return " · ".join(parts)


def _poses(privileged: Mapping[str, Any] | None, state: np.ndarray | None) -> dict[str, np.ndarray]:
    """The 3-D poses of a step: from the privileged state, else from the ``state`` observation."""
    if privileged is not None:  # privileged_state() returns copies already
        return {k: np.asarray(privileged[k]) for k in POSE_KEYS if k in privileged}
    if state is None or state.ndim != 1 or len(state) < max(s.stop for s in STATE_SLICES.values()):
        return {}
    return {
        k: np.asarray(state[STATE_SLICES[k]], np.float64)
        for k in ("tcp_pos", "tcp_quat", "bolt_pos", "bolt_quat", "slot_pos")
    }
