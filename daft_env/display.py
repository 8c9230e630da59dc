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
thread hands them every 20 ms to a logging process (``python -m daft_env.display``) that makes
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
import queue
import re
import select
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from daft_env.episode import NULL_COMMAND
from daft_env.errors import ConfigError
from daft_env.spaces import ACTION_SCALE, STATE_SLICES

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
    daft_env.display``) makes the Rerun calls and the JPEGs. A full queue drops the step.

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
        root = str(Path(__file__).resolve().parents[1])  # this checkout's daft_env, not another
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "daft_env.display"],
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
                "check that `python -m daft_env.display` runs (pip install rerun-sdk)"
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


class _Logger:
    """The worker's side (``python -m daft_env.display``): steps to Rerun columns, in batches.

    One ``rr.log`` per signal and step costs about 35 us of Python, 0.7 ms a step; one
    ``send_columns`` per signal costs about 100 us whatever its length. So rows are buffered per
    entity and sent every :data:`FLUSH_STEPS` steps or :data:`FLUSH_SECONDS` seconds, whichever
    comes first: about 40 us a step, and the live view lags by at most a fraction of a second.
    """

    def __init__(self, rr: Any, rec: Any, jpeg_quality: int | None) -> None:
        self._rr, self._rec, self.jpeg_quality = rr, rec, jpeg_quality
        self._static_done: set[str] = set()
        self._last_status: dict[str, str] = {}
        # (entity, kind) -> {"step": [...], "episode": [...], field: [...]}
        self._rows: dict[tuple[str, str], dict[str, list[Any]]] = {}
        self.pending = 0

    def _add(self, entity: str, kind: str, step: int, episode: int, **fields: Any) -> None:
        rows = self._rows.get((entity, kind))
        if rows is None:
            rows = self._rows[(entity, kind)] = {
                "step": [],
                "episode": [],
                **{k: [] for k in fields},
            }
        rows["step"].append(step)
        rows["episode"].append(max(episode, 0))
        for key, value in fields.items():
            rows[key].append(value)

    def flush(self) -> None:
        """Send every buffered row (one ``send_columns`` per entity and kind)."""
        rr = self._rr
        for (entity, kind), rows in self._rows.items():
            n = len(rows["step"])
            indexes = [
                rr.TimeColumn("step", sequence=np.asarray(rows["step"], np.int64)),
                rr.TimeColumn("episode", sequence=np.asarray(rows["episode"], np.int64)),
            ]
            if kind == "scalars":
                columns = rr.Scalars.columns(scalars=np.asarray(rows["value"], np.float64))
            elif kind == "transform":
                columns = rr.Transform3D.columns(
                    translation=np.asarray(rows["translation"], np.float32),
                    quaternion=np.asarray(rows["quaternion"], np.float32),
                )
            elif kind == "points":
                columns = rr.Points3D.columns(
                    positions=np.asarray(rows["position"], np.float32), radii=np.full(n, 0.006)
                )
            elif kind == "arrows":
                columns = rr.Arrows3D.columns(
                    origins=np.asarray(rows["origin"], np.float32),
                    vectors=np.asarray(rows["vector"], np.float32),
                    colors=np.asarray(rows["colour"], np.uint32),
                )
            elif kind == "text":
                columns = rr.TextLog.columns(text=rows["text"], level=rows["level"])
            elif kind == "doc":
                columns = rr.TextDocument.columns(
                    text=rows["text"], media_type=["text/markdown"] * n
                )
            elif kind == "jpeg":
                columns = rr.EncodedImage.columns(blob=rows["blob"], media_type=["image/jpeg"] * n)
            else:  # raw images differ in size per entity only: log them one by one
                for step, episode, img in zip(
                    rows["step"], rows["episode"], rows["image"], strict=True
                ):
                    self._rec.set_time("step", sequence=step)
                    self._rec.set_time("episode", sequence=episode)
                    self._rec.log(entity, rr.Image(img))
                continue
            self._rec.send_columns(entity, indexes=indexes, columns=columns)
        self._rows.clear()
        self.pending = 0

    def _static(self, robot: str) -> None:
        if robot in self._static_done:
            return
        rr, rec, p = self._rr, self._rec, f"robot/{robot}"
        for name in ("policy", "executed"):
            rec.log(f"{p}/action/{name}", rr.SeriesLines(names=list(ACTION_NAMES)), static=True)
        rec.log(f"{p}/operator/share", rr.SeriesLines(names=["used share", "cap"]), static=True)
        rec.log(f"{p}/world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
        self._static_done.add(robot)
        # a new robot: lay the viewer out for every robot seen so far (one tab each)
        rec.send_blueprint(default_blueprint(sorted(self._static_done)))

    def log_event(self, robot: str, text: str, level: str, step: int, episode: int) -> None:
        """An episode boundary (or an emergency stop) at ``robot/<robot>/episode``."""
        self._add(f"robot/{robot}/episode", "text", step, episode, text=text, level=level)

    def log_step(
        self,
        robot: str,
        step: int,
        episode: int,
        images: dict[str, np.ndarray],
        gripper: list[float] | None,
        poses: dict[str, list[float]],
        policy: list[float] | None,
        executed: list[float] | None,
        operator: tuple[Any, ...] | None,
        spoken: str | None,
        labels: list[tuple[int, str]],
        reward: float | None,
        done: bool,
        success: bool,
        learner: dict[str, float],
    ) -> None:
        """Buffer one step's rows (the layout of the module docstring)."""
        p, t, e = f"robot/{robot}", step, episode
        add = self._add
        status = None if operator is None else OperatorStatus(*operator)
        self._static(robot)
        for key, img in images.items():
            self._image(f"{p}/camera/{key}", t, e, img)
        if gripper is not None:
            add(f"{p}/gripper", "scalars", t, e, value=gripper)
        tcp = poses.get("tcp_pos")
        for key, name in (("tcp", "tcp"), ("bolt", "bolt")):
            if poses.get(f"{key}_pos") is not None:
                q = poses.get(f"{key}_quat")
                xyzw = [0.0, 0.0, 0.0, 1.0] if q is None else [q[1], q[2], q[3], q[0]]
                add(
                    f"{p}/world/{name}",
                    "transform",
                    t,
                    e,
                    translation=poses[f"{key}_pos"],
                    quaternion=xyzw,
                )
        for key in ("fixture_pos", "slot_pos"):
            if poses.get(key) is not None:
                add(f"{p}/world/{key[:-4]}", "points", t, e, position=poses[key])
        holding = bool(status and status.holding)
        for name, a, colour in (
            ("policy", policy, 0x50A0FFFF),
            ("executed", executed, 0xFF7800FF if holding else 0x50DC78FF),
        ):
            if a is None:
                continue
            add(f"{p}/action/{name}", "scalars", t, e, value=a)
            if tcp is not None:
                vec = np.asarray(a[:3]) * ACTION_SCALE[:3] * ARROW_STEPS
                add(
                    f"{p}/world/action/{name}",
                    "arrows",
                    t,
                    e,
                    origin=tcp,
                    vector=vec,
                    colour=colour,
                )
        if status is not None:
            add(f"{p}/operator/intervening", "scalars", t, e, value=float(holding))
            if holding:
                reason = status.reason or "unknown"
                add(f"{p}/operator/reason", "text", t, e, text=reason, level="WARN")
            if status.share is not None:
                cap = status.cap if status.cap is not None else np.nan
                add(f"{p}/operator/share", "scalars", t, e, value=[status.share, cap])
        for at, text in labels:  # a label is shown at the step it labels (Eq. 12's lag)
            add(f"{p}/operator/command", "text", at, e, text=text, level="INFO")
        if spoken:
            add(f"{p}/operator/command", "text", t, e, text=spoken, level="DEBUG")
        if reward is not None:
            add(f"{p}/reward", "scalars", t, e, value=reward)
        if done:
            add(f"{p}/success", "scalars", t, e, value=float(success))
        for key, value in learner.items():
            add(f"{p}/learner/{key}", "scalars", t, e, value=float(value))
        said = [text for _, text in labels if text != NULL_COMMAND]
        line = _status(status, spoken or (said[-1] if said else None))
        if self._last_status.get(robot) != line:  # the viewer holds the latest line meanwhile
            add(f"{p}/status", "doc", t, e, text=line)
            self._last_status[robot] = line
        self.pending += 1

    def _image(self, entity: str, step: int, episode: int, img: np.ndarray) -> None:
        if self.jpeg_quality is not None:
            import cv2

            quality = [cv2.IMWRITE_JPEG_QUALITY, int(self.jpeg_quality)]
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), quality)
            if ok:
                self._add(entity, "jpeg", step, episode, blob=buf.tobytes())
                return
        self._add(entity, "raw", step, episode, image=img)


def default_blueprint(robots: list[str]) -> Any:
    """The viewer's layout: per robot, cameras | status, 3-D and the operator's log | series.

    One tab per robot; the time panel follows the latest step.
    """
    import rerun.blueprint as rrb

    def layout(robot: str) -> Any:
        p = f"robot/{robot}"
        return rrb.Horizontal(
            rrb.Vertical(
                rrb.Spatial2DView(origin=f"{p}/camera/head_rgb", name="head camera"),
                rrb.Spatial2DView(origin=f"{p}/camera/wrist_rgb", name="wrist camera"),
            ),
            rrb.Vertical(
                rrb.TextDocumentView(origin=f"{p}/status", name="who holds control"),
                rrb.Spatial3DView(origin=f"{p}/world", name="poses and actions (base frame)"),
                rrb.TextLogView(
                    origin=p,
                    contents=[f"{p}/operator/reason", f"{p}/operator/command", f"{p}/episode"],
                    name="takeovers, commands, episodes",
                ),
                row_shares=[1, 4, 4],
            ),
            rrb.Vertical(
                rrb.TimeSeriesView(origin=f"{p}/action", name="policy and executed action"),
                rrb.TimeSeriesView(
                    origin=p,
                    contents=[f"{p}/operator/intervening", f"{p}/operator/share"],
                    name="operator: holding, share of its cap",
                ),
                rrb.TimeSeriesView(
                    origin=p,
                    contents=[f"{p}/reward", f"{p}/success", f"{p}/gripper", f"{p}/learner/**"],
                    name="reward, success, gripper, learner",
                ),
            ),
            column_shares=[1, 1.4, 1.4],
            name=f"robot {robot}",
        )

    views = [layout(r) for r in robots]
    root = views[0] if len(views) == 1 else rrb.Tabs(*views)
    return rrb.Blueprint(
        root, rrb.TimePanel(timeline="step", play_state="following"), collapse_panels=True
    )


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


def _warm_up(rr: Any, jpeg_quality: int | None) -> None:
    """Log one made-up step into memory, before the run's first.

    Rerun's first calls cost about 0.4 s of one-off imports and conversions, which would
    otherwise land on the run's first steps (and, on a busy machine, on the CPU the control loop
    needs while it starts).
    """
    rec = rr.RecordingStream("daft-warm-up")
    rec.memory_recording()
    logger = _Logger(rr, rec, jpeg_quality)
    xyz, quat = [0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]
    logger.log_step(
        robot="0",
        step=0,
        episode=0,
        images={"camera": np.zeros((16, 16, 3), np.uint8)},
        gripper=[0.0],
        poses={k: quat if k.endswith("quat") else xyz for k in POSE_KEYS},
        policy=[0.0] * 7,
        executed=[0.0] * 7,
        operator=(True, "deviation", 0.1, 0.15),
        spoken="move left",
        labels=[(0, "move left")],
        reward=0.0,
        done=True,
        success=False,
        learner={"updates": 0.0},
    )
    logger.log_event(robot="0", text="warm-up", level="INFO", step=0, episode=0)
    logger.flush()
    rec.disconnect()


def _serve() -> None:
    """The logging process: a config frame, then steps and events until a None frame.

    Replies on stdout with one JSON line when ready (the sinks it opened, warnings) and one when
    done (an error, if a step could not be logged: later steps are still read, never logged).
    """
    pipe, out = sys.stdin.buffer, sys.stdout
    config = _read_frame(pipe)
    import rerun as rr

    rec = rr.RecordingStream(config["application_id"], recording_id=config["recording_id"])
    sinks, names, notes = [], [], []
    if config["spawn"]:
        started = _spawn_viewer()
        if started is None:
            sinks.append(rr.GrpcSink(viewer_url(f"127.0.0.1:{DEFAULT_PORT}")[0]))
            names.append("viewer")
        else:  # no display, no viewer binary: say so and carry on
            notes.append(
                f"could not start a Rerun viewer ({started}); the run goes on without it. Open "
                "one yourself (`rerun`) and pass --display-address 127.0.0.1:9876"
            )
    for kind, target in config["sinks"]:
        sinks.append(rr.GrpcSink(target) if kind == "grpc" else rr.FileSink(target))
        names.append(target)
    if sinks:
        rec.set_sinks(*sinks)
    out.write(json.dumps({"sinks": names, "warnings": notes}) + "\n")
    out.flush()
    _warm_up(rr, config["jpeg_quality"])
    logger, error = _Logger(rr, rec, config["jpeg_quality"]), None
    frames: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        while (batch := _read_frame(pipe)) is not None:
            frames.put(batch)
        frames.put(None)

    threading.Thread(target=read, daemon=True).start()
    last = time.monotonic()
    while True:
        try:
            batch = frames.get(timeout=FLUSH_SECONDS)
        except queue.Empty:
            batch = []
        if batch is None:
            break
        for kind, payload in batch:
            if error is not None:
                break
            try:
                if kind == "step":
                    logger.log_step(**payload)
                else:
                    logger.log_event(**payload)
            except Exception as exc:  # reported at close; the robot's run goes on
                error = repr(exc)
        if logger.pending >= FLUSH_STEPS or time.monotonic() - last >= FLUSH_SECONDS:
            try:
                logger.flush()
            except Exception as exc:
                error = error or repr(exc)
            last = time.monotonic()
    try:
        logger.flush()
    except Exception as exc:
        error = error or repr(exc)
    try:
        rec.flush(timeout_sec=30.0)
    except RuntimeError as exc:  # a viewer that went away: the file sink is flushed regardless
        error = error or str(exc)
    rec.disconnect()
    out.write(json.dumps({"error": error}) + "\n")
    out.flush()


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


def _intervention_wrapper(env: gym.Env) -> Any:
    from daft_env.wrappers import InterventionWrapper

    e = env
    while isinstance(e, gym.Wrapper):
        if isinstance(e, InterventionWrapper):
            return e
        e = e.env
    return None


class DisplayWrapper(gym.Wrapper):
    """Log every step of ``env`` to a :class:`StepStream`, as robot ``robot``.

    Wrap it outside an :class:`~daft_env.wrappers.InterventionWrapper` (and outside a
    :class:`~daft_env.wrappers.RecordEpisodeToStore`), so it sees the info keys they add:
    ``intervened``, ``policy_action``, ``executed_action``, ``labelled`` (the talk-and-tweak
    labels, shown on the steps they label) and ``refinement_command_now``. A
    :class:`~daft_env.operator.SimulatedOperator` also gives why it took over (``last_reason``)
    and its share against its cap; a human device gives ``person`` and the wrapper's share. In
    simulation the poses come from ``privileged_state()``; on a real arm from the ``state``
    observation when there is one. A disabled stream costs one attribute read per step.

    Args:
        env: the env (usually operated).
        stream: where the steps go.
        robot: the robot's name: its subtree is ``robot/<robot>``.
        learner_stats: optional () -> ``{"updates": ..., "weight_lag": ...}``, called each step.
        label: said at each episode's start (e.g. ``"nominal, with commands"``).
    """

    def __init__(
        self,
        env: gym.Env,
        stream: StepStream,
        robot: str = "0",
        learner_stats: Callable[[], Mapping[str, float]] | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(env)
        if not isinstance(stream, StepStream):
            raise ConfigError(f"stream must be a daft_env.display.StepStream; got {stream!r}")
        self.stream = stream
        self.robot = str(robot)
        self.clock = stream.clock(self.robot)
        self.learner_stats = learner_stats
        self.label = label
        self._intervention = _intervention_wrapper(env)
        from daft_env.operator import SimulatedOperator

        device = getattr(self._intervention, "device", None)
        self._simulated = device if isinstance(device, SimulatedOperator) else None
        backend = getattr(env.unwrapped, "backend", None)
        self._sim = bool(getattr(backend, "has_privileged_state", False))
        self._first = 0
        self._flags: list[bool] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset and log the episode's start."""
        obs, info = self.env.reset(seed=seed, options=options)
        self.clock.episode += 1
        self._first = self.clock.step
        self._flags = []
        if self.stream.enabled:
            what = info.get("instruction") or (options or {}).get("task") or "episode"
            extra = f" ({self.label})" if self.label else ""
            self.stream.log_event(
                self.robot, f"episode {self.clock.episode} start: {what}{extra}, seed {seed}"
            )
        return obs, info

    def _operator(self, intervened: bool) -> OperatorStatus | None:
        if self._intervention is None:
            return None
        device = self._simulated
        if device is not None:
            return OperatorStatus(
                intervened,
                device.last_reason if intervened else None,
                device.share,
                device.config.target_rate if device.config.mode == "takeover" else None,
            )
        share = self._intervention.intervention_rate
        return OperatorStatus(intervened, "person" if intervened else None, share, None)

    def step(self, action: Any):
        """Step, then queue the step for the stream (never waits for it)."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not self.stream.enabled:
            self.clock.step += 1
            return obs, reward, terminated, truncated, info
        intervened = bool(info.get("intervened", False))
        self._flags.append(intervened)
        labels = [
            (self._first + i, text)
            for i, text in info.get("labelled", ())
            if i < len(self._flags) and self._flags[i]
        ]
        done = bool(terminated or truncated)
        self.stream.log_step(
            self.robot,
            None,
            obs,
            info,
            privileged_state=self.env.unwrapped.privileged_state() if self._sim else None,
            operator=self._operator(intervened),
            learner_stats=self.learner_stats() if self.learner_stats else None,
            action=action,
            reward=float(reward),
            done=done,
            labels=labels,
        )
        if info.get("emergency_stop"):
            self.stream.log_event(self.robot, "EMERGENCY STOP", self.clock.step - 1, "ERROR")
        elif done:
            outcome = "success" if info.get("is_success") else "failure"
            self.stream.log_event(
                self.robot,
                f"episode {self.clock.episode} end: {outcome} after {len(self._flags)} steps",
                self.clock.step - 1,
            )
        return obs, reward, terminated, truncated, info


def log_episode(stream: StepStream, episode: Any, robot: str = "0") -> int:
    """Replay one stored :class:`~daft_env.episode.Episode` into ``stream``; returns its steps.

    Each step shows the observation after it, the executed and proposed actions, whether the
    operator held control and the episode's talk-and-tweak label (``refinement_commands``).
    Nothing is dropped: the replay waits for the queue.
    """
    clock = stream.clock(robot)
    clock.episode += 1
    first = clock.step
    stream.log_event(
        robot,
        f"episode {clock.episode} start: {episode.instruction} ({episode.kind}, task "
        f"{episode.task})",
        first,
    )
    n = len(episode)
    obs = episode.observations
    # the store keeps who drove, not why each takeover began
    reason = f"takeover by {episode.metadata.get('device') or 'the operator'}"
    for t in range(n):
        step_obs = {k: np.asarray(v)[t + 1] for k, v in obs.items()}
        intervened = bool(episode.intervened[t])
        text = str(episode.refinement_commands[t])
        stream.log_step(
            robot,
            None,
            step_obs,
            {
                "executed_action": episode.actions[t],
                "policy_action": episode.policy_actions[t],
                "is_success": bool(episode.success) and t == n - 1,
            },
            operator=OperatorStatus(intervened, reason if intervened else None),
            reward=float(episode.rewards[t]),
            done=t == n - 1,
            labels=[(first + t, text)] if intervened else [],
            block=True,
        )
    outcome = "success" if episode.success else "failure"
    stream.log_event(
        robot, f"episode {clock.episode} end: {outcome} after {n} steps", first + n - 1
    )
    return n


__all__ = [
    "DisplayWarning",
    "DisplayWrapper",
    "OperatorStatus",
    "RobotClock",
    "StepStream",
    "log_episode",
    "require_rerun",
    "viewer_url",
]


if __name__ == "__main__":
    _serve()
