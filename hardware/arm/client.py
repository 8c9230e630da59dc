"""``ArmClient``: an :class:`~hardware.arm.base.Arm` that forwards every call to an ArmServer.

Timeouts. Each request waits at most ``timeout_s`` (``home_timeout_s`` for :meth:`home`) for its
reply; otherwise the client raises :class:`~hardware.errors.ConnectionLostError` naming the
address and what to check. A ZeroMQ REQ socket that missed a reply is stuck, so the socket is
closed and a fresh one made for the next request: that is the reconnection. Motion commands are
never retried automatically (a late duplicate would move the arm twice).

Heartbeat. A daemon thread sends ``heartbeat`` whenever the client has been quiet for
``heartbeat_interval_s``, so the server's watchdog only fires when this process is really gone
or hung. Keep ``heartbeat_interval_s`` well under the server's ``heartbeat_timeout_s``.

Safety. Motion commands are clipped here first, against the last pose the server reported, with
the server's own limits (fetched at :meth:`connect`) unless ``limits`` is given; the server clips
again against the true pose. The returned :class:`~hardware.arm.base.MotionResult` lists both
sides' clips.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

import numpy as np
import zmq

from hardware.arm.base import Arm, ArmState, MotionResult
from hardware.arm.protocol import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    MAX_MESSAGE_BYTES,
    ProtocolViolation,
    decode,
    make_request,
    raise_for_response,
)
from hardware.errors import ConfigError, ConnectionLostError, HardwareError
from hardware.safety import SafetyLayer, SafetyLimits

logger = logging.getLogger(__name__)


class ArmClient(Arm):
    """Talk to an :class:`~hardware.arm.server.ArmServer`.

    Args:
        host: the server's address.
        port: the server's port.
        token: the shared token the server was started with.
        timeout_s: per-request reply deadline [s].
        connect_timeout_s: how long :meth:`connect` keeps trying to reach the server [s].
        home_timeout_s: reply deadline for :meth:`home`, which waits for a slow move [s].
        heartbeat_interval_s: quiet time after which a heartbeat is sent [s]; 0 disables it.
        limits: client-side safety limits; None uses the server's.
    """

    name = "client"

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        token: str | None = None,
        timeout_s: float = 0.5,
        connect_timeout_s: float = 3.0,
        home_timeout_s: float = 30.0,
        heartbeat_interval_s: float = 0.1,
        limits: SafetyLimits | None = None,
    ) -> None:
        if not isinstance(token, str) or not token:
            raise ConfigError(
                "ArmClient needs the server's shared token (token=... or DAFT_ARM_TOKEN)"
            )
        if not isinstance(port, int) or not 0 < port <= 65535:
            raise ConfigError(f"port must be an int in [1, 65535]; got {port!r}")
        for label, value in (
            ("timeout_s", timeout_s),
            ("connect_timeout_s", connect_timeout_s),
            ("home_timeout_s", home_timeout_s),
        ):
            if not value > 0:
                raise ConfigError(f"{label} must be > 0 s; got {value}")
        if heartbeat_interval_s < 0:
            raise ConfigError(f"heartbeat_interval_s must be >= 0 s; got {heartbeat_interval_s}")
        self.host, self.port, self._token = host, port, token
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.home_timeout_s = float(home_timeout_s)
        self.heartbeat_interval_s = float(heartbeat_interval_s)
        self._user_limits = limits
        self.safety: SafetyLayer | None = SafetyLayer(limits) if limits is not None else None
        self._ctx = zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._last_request = 0.0
        self._last_failure = 0.0
        self._last_failed_cmd = ""
        self._last_pose: np.ndarray | None = None
        self._hb_stop = threading.Event()
        self._hb_thread: threading.Thread | None = None
        self._connected = False
        #: The last error the heartbeat thread saw (None while healthy).
        self.heartbeat_error: BaseException | None = None
        self.server_info: dict[str, Any] = {}

    @property
    def address(self) -> str:
        """``tcp://host:port`` of the server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    # -- transport -------------------------------------------------------------------------------

    def _new_socket(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        if ":" in self.host:
            sock.setsockopt(zmq.IPV6, 1)
        sock.connect(self.address)
        return sock

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def _lost(self, what: str) -> ConnectionLostError:
        return ConnectionLostError(
            f"arm server at {self.address} {what}. Is the server running on the robot PC "
            f"(`python -m hardware.arm.server --port {self.port}` or `daft arm-server`)? Check "
            "the host and port in your config (or DAFT_ARM_HOST/DAFT_ARM_PORT), the network, and "
            "that the firewall allows the port."
        )

    def _request(
        self, cmd: str, args: dict[str, Any] | None = None, timeout_s: float | None = None
    ) -> Any:
        timeout_ms = int(1000 * (timeout_s or self.timeout_s))
        waiting_since = time.monotonic()
        with self._lock:
            if self._last_failure > waiting_since:
                # Another thread (usually the heartbeat) timed out while we queued for the lock:
                # report that at once instead of waiting a second full timeout.
                raise self._lost(
                    f"stopped answering (a {self._last_failed_cmd!r} request timed out)"
                )
            if self._sock is None:
                self._sock = self._new_socket()
            sock = self._sock
            self._last_request = time.monotonic()
            try:
                request_id = next(self._ids)
                sock.send(make_request(cmd, self._token, request_id, args), zmq.NOBLOCK)
            except zmq.Again:
                self._drop_socket()
                raise self._lost("is not reachable (nothing accepted the request)") from None
            except zmq.ZMQError as exc:
                self._drop_socket()
                raise self._lost(f"could not be sent a request ({exc})") from exc
            if not sock.poll(timeout_ms, zmq.POLLIN):
                # A REQ socket that missed its reply cannot send again: make a fresh one next time.
                self._drop_socket()
                self._last_failure, self._last_failed_cmd = time.monotonic(), cmd
                raise self._lost(f"did not answer {cmd!r} within {timeout_ms / 1000:.2f} s")
            data = sock.recv()
            self._last_request = time.monotonic()
        try:
            response = decode(data)
        except ProtocolViolation as exc:
            raise HardwareError(
                f"arm server at {self.address} sent a malformed reply: {exc}"
            ) from exc
        if response.get("id") not in (request_id, None):  # None: the server could not parse ours
            raise HardwareError(
                f"arm server at {self.address} answered request {response.get('id')} to our "
                f"request {request_id}; is another program bound to that port?"
            )
        return raise_for_response(response, self.address)

    # -- lifecycle -----------------------------------------------------------------------------

    def connect(self) -> None:
        """Reach the server (retrying for ``connect_timeout_s``), fetch limits, start heartbeats.

        Raises:
            ConnectionLostError: no server answered in time; the message names the address.
            AuthenticationError: the server refused the token.
        """
        deadline = time.monotonic() + self.connect_timeout_s
        while True:
            try:
                remaining = max(0.05, min(self.timeout_s, deadline - time.monotonic()))
                self.server_info = self._request("ping", timeout_s=remaining)
                break
            except ConnectionLostError:
                if time.monotonic() >= deadline:
                    raise self._lost(
                        f"did not answer within {self.connect_timeout_s:.1f} s of trying to connect"
                    ) from None
        limits = self._request("limits")
        if self._user_limits is None:
            self.safety = SafetyLayer(SafetyLimits.from_dict(limits))
        self._connected = True
        self._last_pose = None
        if self.heartbeat_interval_s > 0 and self._hb_thread is None:
            self._hb_stop.clear()
            self._hb_thread = threading.Thread(
                target=self._heartbeat, name="arm-heartbeat", daemon=True
            )
            self._hb_thread.start()

    def close(self) -> None:
        """Stop heartbeats and close the socket. The arm itself is left as it is."""
        self._hb_stop.set()
        if self._hb_thread is not None:
            self._hb_thread.join(self.timeout_s + 1.0)
            self._hb_thread = None
        with self._lock:
            self._drop_socket()
        self._connected = False

    def _heartbeat(self) -> None:
        while not self._hb_stop.wait(self.heartbeat_interval_s / 2):
            if time.monotonic() - self._last_request < self.heartbeat_interval_s:
                continue
            if self._lock.locked():  # a request in flight already proves we are alive
                continue
            try:
                self._request("heartbeat")
                self.heartbeat_error = None
            except Exception as exc:  # reported via heartbeat_error; the next call raises
                if self.heartbeat_error is None:
                    logger.warning("arm heartbeat failed: %s", exc)
                self.heartbeat_error = exc

    # -- Arm API ---------------------------------------------------------------------------------

    def default_limits(self) -> SafetyLimits:
        """The limits in force on this side (the server's unless overridden)."""
        return self.safety.limits if self.safety is not None else SafetyLimits()

    def _require_connected(self) -> SafetyLayer:
        if not self._connected or self.safety is None:
            raise HardwareError(f"ArmClient for {self.address} is not connected; call connect()")
        return self.safety

    def ping(self) -> dict[str, Any]:
        """Round-trip a ``ping``; returns the server's description."""
        return self._request("ping")

    def state(self) -> ArmState:
        """The arm's state as read on the server."""
        state = ArmState.from_dict(self._request("state"))
        self._last_pose = state.ee_pose
        return state

    def _current_pose(self) -> np.ndarray:
        if self._last_pose is None:
            self.state()
        assert self._last_pose is not None
        return self._last_pose

    def _move(self, cmd: str, value: np.ndarray, gripper: float | None) -> MotionResult:
        safety = self._require_connected()
        current = self._current_pose()
        if cmd == "move_delta":
            safe, clips = safety.check(current, delta=value, gripper=gripper)
            args = {"delta": safe.delta, "gripper": safe.gripper}
        else:
            safe, clips = safety.check(current, target_pose=value, gripper=gripper)
            args = {"pose": safe.target_pose, "gripper": safe.gripper}
        result = MotionResult.from_dict(self._request(cmd, args))
        if result.state is not None:
            self._last_pose = result.state.ee_pose
        result.clips = tuple(clips) + tuple(c for c in result.clips if c not in clips)
        return result

    def move_delta(self, delta: np.ndarray, gripper: float | None = None) -> MotionResult:
        """Move by ``delta`` (6,) [m, rad]; clipped here and on the server."""
        return self._move("move_delta", np.asarray(delta, dtype=np.float64), gripper)

    def move_to(self, pose: np.ndarray, gripper: float | None = None) -> MotionResult:
        """Move toward ``pose`` (6,) [m, rad]; clipped here and on the server."""
        return self._move("move_to", np.asarray(pose, dtype=np.float64), gripper)

    def set_gripper(self, opening: float) -> None:
        """Command the gripper opening fraction in [0, 1]."""
        safety = self._require_connected()
        opening, _ = safety.check_gripper(opening)
        self._request("set_gripper", {"opening": opening})

    def home(self) -> ArmState:
        """Move home on the server; waits up to ``home_timeout_s``."""
        state = ArmState.from_dict(self._request("home", timeout_s=self.home_timeout_s))
        self._last_pose = state.ee_pose
        return state

    def stop(self) -> None:
        """Stop the arm now."""
        self._request("stop")
