"""Launch ``daft arm-server`` (or ``python -m hardware.arm.server``) as a child process.

One helper for every test that needs the server in its own process (killed mid-episode, stopped
by a signal, serving a plugin driver). It waits for the server's one ``listening on`` line and
returns the process and its port.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from support.waiting import GENEROUS_S

REPO = Path(__file__).resolve().parents[2]

#: ``daft arm-server`` (the CLI, which can serve the MuJoCo arm) and the bare hardware server.
CLI_MODULE = "daft_agent.cli.arm_server"
HARDWARE_MODULE = "hardware.arm.server"


def spawn_arm_server(
    *args: str,
    token: str | None,
    module: str = CLI_MODULE,
    pythonpath: Sequence[os.PathLike[str] | str] = (),
) -> tuple[subprocess.Popen, int]:
    """Start an arm server process and wait until it listens.

    Args:
        *args: command-line options (``--driver``, ``--port``, ...); ``--port 0`` is added when
            no port is given, so the server picks a free one.
        token: ``DAFT_ARM_TOKEN`` for the child; None leaves it unset.
        module: :data:`CLI_MODULE` or :data:`HARDWARE_MODULE`.
        pythonpath: extra import roots (a plugin driver's folder).

    Returns:
        The process (stdout still open) and the port it listens on.

    Raises:
        AssertionError: the server exited or printed something else first; its stderr is shown.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAFT_")}
    env.update(MUJOCO_GL="egl", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *map(str, pythonpath)])
    if token is not None:
        env["DAFT_ARM_TOKEN"] = token
    argv = list(args) if "--port" in args else [*args, "--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready, _, _ = select.select([proc.stdout], [], [], 6 * GENEROUS_S)  # MuJoCo loads slowly
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("listening on tcp://"):
        proc.kill()
        _, err = proc.communicate(timeout=GENEROUS_S)
        raise AssertionError(f"the arm server did not start: {line!r}\n{err}")
    return proc, int(line.strip().rsplit(":", 1)[1])


def stop(proc: subprocess.Popen) -> None:
    """Kill ``proc`` if it still runs and reap it (so no zombie or open pipe outlives a test)."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=GENEROUS_S)


@contextmanager
def arm_server_process(
    *args: str, token: str | None, **kwargs
) -> Iterator[tuple[subprocess.Popen, int]]:
    """:func:`spawn_arm_server` as a context manager that always reaps the process."""
    proc, port = spawn_arm_server(*args, token=token, **kwargs)
    try:
        yield proc, port
    finally:
        stop(proc)


@contextmanager
def arm_served_in_thread(token: str, task: str = "pickup") -> Iterator[tuple]:
    """The MuJoCo arm behind an ArmServer in a thread of this process: (arm, server)."""
    from daft_env.mujoco_arm import MujocoArm, MujocoArmConfig
    from hardware.arm import ArmServer

    arm = MujocoArm(MujocoArmConfig(task=task))
    server = ArmServer(arm, port=0, token=token, heartbeat_timeout_s=0.5).start_in_thread()
    try:
        yield arm, server
    finally:
        server.shutdown()
