"""``ArmServer``: serves one :class:`~hardware.arm.base.Arm` driver over :mod:`.protocol`.

It runs on the robot PC next to the arm. Four duties beyond forwarding calls:

* Binding: ``127.0.0.1`` unless told otherwise, so the arm is not on the network by accident.
* Authentication: every request carries the shared token; a wrong one gets an
  ``AuthenticationError`` reply and the driver is never touched (``hmac.compare_digest``, so the
  comparison time does not leak the token).
* Heartbeat: a watchdog thread calls ``driver.stop()`` once the client has been silent for longer
  than ``heartbeat_timeout_s`` (a request being served counts as not silent). It fires once per
  silence and re-arms when the client talks again.
* Safety: every motion command goes through :class:`~hardware.safety.SafetyLayer` against the
  driver's current pose here, whatever the client did; the clips it applied are returned.

Run it in a thread (:meth:`ArmServer.start_in_thread`) or as a process::

    python -m hardware.arm.server --driver mock --port 5560 --token "$DAFT_ARM_TOKEN"
    python -m hardware.arm.server --import daft_env --driver mujoco ...

The token authenticates but does not encrypt: on a network you do not trust, reach the robot PC
through an SSH tunnel (``ssh -L 5560:127.0.0.1:5560 robot-pc``) and keep the server on loopback.
"""

from __future__ import annotations

import argparse
import hmac
import importlib
import logging
import os
import secrets
import signal
import sys
import threading
import time
from typing import Any

import zmq

from hardware.arm.base import Arm
from hardware.arm.protocol import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    MAX_MESSAGE_BYTES,
    ProtocolViolation,
    decode,
    make_error,
    make_ok,
    parse_request,
)
from hardware.errors import AuthenticationError, ConfigError, DaftError, HardwareError
from hardware.safety import SafetyLayer, SafetyLimits

logger = logging.getLogger(__name__)

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_POLL_MS = 20


def generate_token() -> str:
    """A fresh random shared token (32 hex characters) for ``--token`` / ``DAFT_ARM_TOKEN``."""
    return secrets.token_hex(16)


class ArmServer:
    """Serve ``driver`` to one or more :class:`~hardware.arm.client.ArmClient` s.

    Args:
        driver: the arm to serve. The server calls ``driver.connect()`` when it starts unless
            ``connect_driver`` is False, and ``driver.stop()`` then ``driver.close()`` at shutdown.
        host: interface to bind; loopback by default. Use the robot PC's LAN address (never
            ``0.0.0.0`` on an untrusted network) to serve a remote learner.
        port: TCP port; 0 picks a free one (read :attr:`port` after starting).
        token: the shared secret every request must carry (at least 8 characters).
        heartbeat_timeout_s: seconds of client silence after which the arm is stopped.
        limits: safety limits to enforce; None uses ``driver.default_limits()``.
        connect_driver: whether to call ``driver.connect()``/``close()`` here.
    """

    def __init__(
        self,
        driver: Arm,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        token: str | None = None,
        heartbeat_timeout_s: float = 0.5,
        limits: SafetyLimits | None = None,
        connect_driver: bool = True,
    ) -> None:
        if not isinstance(driver, Arm):
            raise ConfigError(f"ArmServer needs an Arm driver; got {type(driver).__name__}")
        if not isinstance(token, str) or len(token) < 8:
            raise ConfigError(
                "ArmServer needs a shared token of at least 8 characters (every request must "
                "carry it); generate one with hardware.arm.server.generate_token() and give the "
                "same value to the client, e.g. via DAFT_ARM_TOKEN"
            )
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port must be an int in [0, 65535]; got {port!r}")
        if not heartbeat_timeout_s > 0:
            raise ConfigError(f"heartbeat_timeout_s must be > 0 s; got {heartbeat_timeout_s}")
        self.driver = driver
        self.host = host
        self.port = port
        self.heartbeat_timeout_s = float(heartbeat_timeout_s)
        self.safety = SafetyLayer(limits if limits is not None else driver.default_limits())
        self._token = token.encode()
        self._connect_driver = connect_driver
        self._driver_lock = threading.RLock()
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._bind_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._last_seen = time.monotonic()
        self._armed = False  # True once a client has spoken since the last stop
        self._busy = False
        #: How many times the watchdog stopped the arm.
        self.watchdog_stops = 0
        #: How many requests were refused for a bad token.
        self.auth_failures = 0
        if host not in _LOOPBACK:
            logger.warning(
                "arm server binding to %s: anyone who can reach this address and knows the token "
                "can move the arm",
                host,
            )

    @property
    def address(self) -> str:
        """``tcp://host:port`` (the real port once bound)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------------

    def start_in_thread(self, timeout_s: float = 5.0) -> ArmServer:
        """Bind and serve in a daemon thread; return once bound (so :attr:`port` is known)."""
        if self._thread is not None:
            raise HardwareError("this ArmServer is already running")
        self._thread = threading.Thread(target=self.serve_forever, name="arm-server", daemon=True)
        self._thread.start()
        if not self._bound.wait(timeout_s):
            self.shutdown()
            raise HardwareError(f"arm server did not bind {self.address} within {timeout_s} s")
        if self._bind_error is not None:
            self._thread.join(timeout_s)
            self._thread = None
            raise self._bind_error
        return self

    def serve_forever(self) -> None:
        """Bind and serve until :meth:`shutdown` (from another thread or a signal handler)."""
        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        try:
            if ":" in self.host:
                sock.setsockopt(zmq.IPV6, 1)
            host = f"[{self.host}]" if ":" in self.host else self.host
            if self.port == 0:
                self.port = sock.bind_to_random_port(f"tcp://{host}")
            else:
                sock.bind(f"tcp://{host}:{self.port}")
            if self._connect_driver:
                self.driver.connect()
        except Exception as exc:
            sock.close(0)
            self._bind_error = (
                HardwareError(
                    f"arm server could not bind {self.address}: {exc}. Another server may be "
                    "using the port; pick another with --port, or stop the other one."
                )
                if isinstance(exc, zmq.ZMQError)
                else exc
            )
            self._bound.set()
            if threading.current_thread() is not self._thread:
                raise self._bind_error from exc
            return
        logger.info("arm server for %s listening on %s", self.driver.name, self.address)
        self._last_seen = time.monotonic()
        self._watchdog = threading.Thread(target=self._watch, name="arm-watchdog", daemon=True)
        self._watchdog.start()
        self._bound.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if not poller.poll(_POLL_MS):
                    continue
                data = sock.recv()
                sock.send(self._handle(data))
        finally:
            sock.close(0)
            self._stop.set()
            if self._watchdog is not None:
                self._watchdog.join(1.0)
            with self._driver_lock:
                try:
                    self.driver.stop()
                finally:
                    if self._connect_driver:
                        self.driver.close()
            logger.info("arm server on %s stopped", self.address)

    def request_shutdown(self) -> None:
        """Ask the serving loop to stop, without waiting (safe in a signal handler)."""
        self._stop.set()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop serving, then wait until the arm was stopped and closed. Safe to call twice."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                logger.error("arm server thread did not finish within %.1f s", timeout_s)
                return
        self._thread = None

    def __enter__(self) -> ArmServer:
        return self.start_in_thread()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- watchdog --------------------------------------------------------------------------------

    def _watch(self) -> None:
        period = min(0.05, self.heartbeat_timeout_s / 5)
        while not self._stop.wait(period):
            if not self._armed or self._busy:
                continue
            silent = time.monotonic() - self._last_seen
            if silent > self.heartbeat_timeout_s:
                logger.warning(
                    "arm client silent for %.2f s (> %.2f s): stopping the arm",
                    silent,
                    self.heartbeat_timeout_s,
                )
                self._armed = False
                self.watchdog_stops += 1
                with self._driver_lock:
                    try:
                        self.driver.stop()
                    except Exception:  # the watchdog must survive a failing driver
                        logger.exception("driver.stop() failed in the heartbeat watchdog")

    # -- request handling ----------------------------------------------------------------------

    def _handle(self, data: bytes) -> bytes:
        request_id: Any = None
        try:
            message = decode(data)
            request_id = message.get("id")
            request_id, token, cmd, args = parse_request(message)
        except ProtocolViolation as exc:
            return make_error(request_id, exc)
        if not hmac.compare_digest(token.encode(), self._token):
            self.auth_failures += 1
            logger.warning("refused a %r request with a wrong token", cmd)
            return make_error(
                request_id,
                AuthenticationError(
                    "wrong or missing token; give the client the same token as the server "
                    "(--token / DAFT_ARM_TOKEN)"
                ),
            )
        self._busy = True
        self._last_seen = time.monotonic()
        self._armed = True
        try:
            with self._driver_lock:
                result = self._dispatch(cmd, args)
            return make_ok(request_id, result)
        except DaftError as exc:
            return make_error(request_id, exc)
        except Exception as exc:  # a driver bug must not kill the server
            logger.exception("driver raised during %r", cmd)
            return make_error(
                request_id, HardwareError(f"driver raised {type(exc).__name__} in {cmd}: {exc}")
            )
        finally:
            self._last_seen = time.monotonic()
            self._busy = False

    def _dispatch(self, cmd: str, args: dict[str, Any]) -> Any:
        driver = self.driver
        if cmd == "ping":
            return {"server": "daft-arm-server", "driver": driver.name, "v": 1}
        if cmd == "heartbeat":
            return {}
        if cmd == "limits":
            return self.safety.limits.to_dict()
        if cmd == "state":
            return driver.state().to_dict()
        if cmd == "stop":
            driver.stop()
            self._armed = False
            return {}
        if cmd == "home":
            return driver.home().to_dict()
        if cmd == "set_gripper":
            opening, clips = self.safety.check_gripper(_number(args, "opening"))
            driver.set_gripper(opening)
            return {"gripper": opening, "clips": clips}
        if cmd in ("move_delta", "move_to"):
            gripper = args.get("gripper")
            gripper = None if gripper is None else _number(args, "gripper")
            current = driver.state().ee_pose
            key = "delta" if cmd == "move_delta" else "pose"
            if key not in args:
                raise ProtocolViolation(f"{cmd} needs args.{key}: 6 numbers")
            # The safety layer is the one validator of 6-vectors (shape, numbers, finiteness).
            value = args[key]
            if cmd == "move_delta":
                safe, clips = self.safety.check(current, delta=value, gripper=gripper)
                result = driver.move_delta(safe.delta, safe.gripper)
            else:
                safe, clips = self.safety.check(current, target_pose=value, gripper=gripper)
                result = driver.move_to(safe.target_pose, safe.gripper)
            result.clips = tuple(clips) + tuple(c for c in result.clips if c not in clips)
            if result.state is None:
                result.state = driver.state()
            return result.to_dict()
        raise ProtocolViolation(f"unhandled command {cmd!r}")  # parse_request prevents this


def _number(args: dict[str, Any], key: str) -> float:
    value = args.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolViolation(f"args.{key} must be a number; got {value!r}")
    return float(value)


def main(argv: list[str] | None = None) -> int:
    """``python -m hardware.arm.server``: serve a registered arm driver until SIGINT/SIGTERM."""
    from hardware.arm import arm_names, make_arm

    parser = argparse.ArgumentParser(description="Serve a robot arm to DAFT over ZeroMQ.")
    parser.add_argument("--driver", default="mock", help=f"one of: {', '.join(arm_names())}")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--token", default=os.environ.get("DAFT_ARM_TOKEN"))
    parser.add_argument("--heartbeat-timeout", type=float, default=0.5, help="seconds")
    parser.add_argument("--ip", default=None, help="robot controller address (xarm)")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first so it can register drivers (e.g. daft_env for 'mujoco')",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for module in args.imports:
        importlib.import_module(module)
    config = {"ip": args.ip} if args.ip else {}
    try:
        driver = make_arm(args.driver, **config)
        server = ArmServer(
            driver,
            host=args.host,
            port=args.port,
            token=args.token,
            heartbeat_timeout_s=args.heartbeat_timeout,
        )
    except DaftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def _on_signal(signum: int, frame: object) -> None:
        server.request_shutdown()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start_in_thread()
    # One parseable line, so scripts and tests can learn a random port.
    print(f"listening on {server.address}", flush=True)
    while not server._stop.wait(0.2):
        pass
    server.shutdown()  # joins the serving thread, which stops and closes the driver
    return 0


if __name__ == "__main__":
    sys.exit(main())
