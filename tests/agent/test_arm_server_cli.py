"""``daft arm-server``: loopback by default, a token required, drivers served over the protocol."""

from __future__ import annotations

import signal

import numpy as np
import pytest
from support.arm_server import spawn_arm_server, stop
from support.waiting import GENEROUS_S

from daft_agent.cli import main as daft_main
from daft_agent.cli.arm_server import is_loopback
from hardware.arm import ArmClient
from hardware.errors import AuthenticationError

TOKEN = "cli-test-token-42"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "robot-pc.local", "::"])
def test_refuses_a_non_loopback_address_without_allow_remote(host, capsys, monkeypatch):
    monkeypatch.setenv("DAFT_ARM_TOKEN", TOKEN)
    assert daft_main(["arm-server", "--driver", "mock", "--host", host]) == 1
    err = capsys.readouterr().err
    assert "refusing to bind" in err and "--allow-remote" in err


def test_loopback_detection():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.1.1", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.2", "::", "example.org"))


def test_token_is_required(capsys):
    assert daft_main(["arm-server", "--driver", "mock"]) == 1
    assert "DAFT_ARM_TOKEN" in capsys.readouterr().err
    assert daft_main(["arm-server", "--driver", "mock", "--token", "short"]) == 1


def test_xarm_driver_needs_the_controller_address(capsys, monkeypatch):
    monkeypatch.setenv("DAFT_ARM_TOKEN", TOKEN)
    assert daft_main(["arm-server", "--driver", "xarm"]) == 1
    assert "--ip" in capsys.readouterr().err


def test_serves_the_mujoco_driver_with_the_token_from_the_flag_and_stops_on_sigterm():
    proc, port = spawn_arm_server(
        "--driver", "mujoco", "--task", "upright", "--token", TOKEN, token=None
    )
    try:
        client = ArmClient(port=port, token=TOKEN)
        client.connect()
        assert client.server_info["driver"] == "mujoco"
        before = client.state()
        assert before.joint_positions.shape == (7,) and 0.0 <= before.gripper <= 1.0
        result = client.move_delta(np.r_[0.0, 0.0, 0.02, 0.0, 0.0, 0.0], gripper=1.0)
        assert result.state.ee_pose[2] - before.ee_pose[2] == pytest.approx(0.02, abs=0.006)
        client.close()
        wrong = ArmClient(port=port, token="wrong-token-000")
        with pytest.raises(AuthenticationError):
            wrong.connect()
        wrong.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(GENEROUS_S) == 0
    finally:
        stop(proc)
