"""The logging process of the live view (``python -m daft_env.display.worker``).

It reads batches of steps from its stdin pipe (:func:`~daft_env.display.stream._read_frame`) and makes
the Rerun calls, in column batches, so that the Rerun work never holds the control loop's GIL
(:mod:`daft_env.display.stream` says why). ``rerun`` is imported here only.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from typing import Any

import numpy as np

from daft_env.display.stream import (
    ACTION_NAMES,
    ARROW_STEPS,
    DEFAULT_PORT,
    FLUSH_SECONDS,
    FLUSH_STEPS,
    POSE_KEYS,
    OperatorStatus,
    _read_frame,
    _spawn_viewer,
    _status,
    viewer_url,
)
from daft_env.episode import NULL_COMMAND
from daft_env.spaces import ACTION_SCALE


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


if __name__ == "__main__":
    _serve()
