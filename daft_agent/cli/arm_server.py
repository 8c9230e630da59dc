"""Serve a robot arm to DAFT clients: ``daft arm-server --driver xarm|mujoco|mock``.

Run it on the robot PC, next to the arm. It binds loopback (127.0.0.1) by default; reach it from
the learner's machine through an SSH tunnel (``ssh -L 5560:127.0.0.1:5560 robot-pc``), or bind a
LAN address with ``--allow-remote`` on a network you trust (the token authenticates requests but
does not encrypt them). Every request must carry the shared token (``--token`` or
``DAFT_ARM_TOKEN``); the arm stops when the client falls silent for ``--heartbeat-timeout``.

Examples::

    export DAFT_ARM_TOKEN=$(python -c "import secrets; print(secrets.token_hex(16))")
    daft arm-server --driver xarm --ip 192.168.1.185 --port 5560
    daft arm-server --driver mujoco --task pickup --port 5560      # the simulated arm
    daft arm-server --driver mock --port 0                         # any free port

Once bound it prints one line, ``listening on tcp://HOST:PORT``, then serves until Ctrl-C or
SIGTERM, which stop the arm and release it.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
import threading
from typing import Any

from hardware.errors import ConfigError

DRIVERS = ("xarm", "mujoco", "mock")
TOKEN_ENV = "DAFT_ARM_TOKEN"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``daft arm-server``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--driver", choices=DRIVERS, default="mock", help="the arm to serve")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (loopback)")
    parser.add_argument("--port", type=int, default=5560, help="TCP port; 0 picks a free one")
    parser.add_argument(
        "--token", default=None, help=f"shared token (default: ${TOKEN_ENV}); >= 8 characters"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding a non-loopback address (anyone reaching it with the token moves the arm)",
    )
    parser.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=0.5,
        help="seconds of client silence after which the arm is stopped",
    )
    xarm = parser.add_argument_group("xarm driver")
    xarm.add_argument("--ip", default=None, help="the xArm controller's IP address")
    sim = parser.add_argument_group("mujoco driver")
    sim.add_argument("--task", default="pickup", help="scene to load (upright, pickup, ...)")
    sim.add_argument("--seed", type=int, default=0, help="seed of the first scene layout")
    sim.add_argument(
        "--realtime", action="store_true", help="make each motion take one control period"
    )


def build_driver(args: argparse.Namespace) -> Any:
    """The :class:`hardware.arm.Arm` driver named by ``args.driver``, built from the registry."""
    from hardware.arm import make_arm

    if args.driver == "xarm":
        if not args.ip:
            raise ConfigError(
                "--driver xarm needs the controller's address: --ip 192.168.1.185 (see the xArm "
                "controller's network settings)"
            )
        return make_arm("xarm", ip=args.ip)
    if args.driver == "mujoco":
        import daft_env.mujoco_arm  # noqa: F401  (registers the "mujoco" driver)

        return make_arm("mujoco", task=args.task, seed=args.seed, realtime=args.realtime)
    return make_arm(args.driver)


def resolve_token(args: argparse.Namespace) -> str:
    """``--token`` or ``$DAFT_ARM_TOKEN``; a missing or short token is a ConfigError."""
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV)
    if not token or len(token) < 8:
        raise ConfigError(
            f"the arm server needs a shared token of at least 8 characters: pass --token or set "
            f'{TOKEN_ENV} (generate one with `python -c "import secrets; '
            f'print(secrets.token_hex(16))"`) and give the client the same value'
        )
    return token


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM."""
    from hardware.arm import ArmServer

    if not is_loopback(args.host) and not args.allow_remote:
        raise ConfigError(
            f"refusing to bind {args.host!r}: it is not a loopback address, so anyone who can "
            "reach it (and knows the token) could move the arm. Use an SSH tunnel to "
            "127.0.0.1, or pass --allow-remote on a network you trust."
        )
    if not args.heartbeat_timeout > 0:
        raise ConfigError(f"--heartbeat-timeout must be > 0 s; got {args.heartbeat_timeout}")
    token = resolve_token(args)
    driver = build_driver(args)
    server = ArmServer(
        driver,
        host=args.host,
        port=args.port,
        token=token,
        heartbeat_timeout_s=args.heartbeat_timeout,
    )
    done = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: done.set())
    server.start_in_thread()
    print(f"listening on {server.address}", flush=True)
    try:
        while not done.wait(0.2):
            pass
    finally:
        server.shutdown()
        print("arm server stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    from daft_agent.cli import main

    sys.exit(main(["arm-server", *sys.argv[1:]]))
