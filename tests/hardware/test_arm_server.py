"""ArmServer and ArmClient over a real loopback socket: the protocol, safety, token, heartbeat."""

import signal

import msgpack
import numpy as np
import pytest
import zmq
from support.arm_server import HARDWARE_MODULE, spawn_arm_server, stop
from support.waiting import stays_false, wait_until

from hardware.arm import ArmClient, ArmServer, MockArm, MockArmConfig, generate_token, make_arm
from hardware.arm.protocol import PROTOCOL_VERSION, decode, encode, make_request
from hardware.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionLostError,
    HardwareError,
    SafetyError,
)
from hardware.safety import SafetyLimits

TOKEN = "test-token-0123456789"
PI = np.pi

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


@pytest.fixture
def served():
    arm = MockArm()
    server = ArmServer(arm, port=0, token=TOKEN, heartbeat_timeout_s=0.3).start_in_thread()
    clients = []

    def connect(**kw):
        kw.setdefault("token", TOKEN)
        client = ArmClient(port=server.port, **kw)
        client.connect()
        clients.append(client)
        return client

    yield arm, server, connect
    for c in clients:
        c.close()
    server.shutdown()


class RawClient:
    """Speaks the protocol directly, bypassing ArmClient's own safety layer."""

    def __init__(self, port):
        self.sock = zmq.Context.instance().socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"tcp://127.0.0.1:{port}")

    def send_bytes(self, data):
        self.sock.send(data)
        assert self.sock.poll(2000), "server did not answer"
        return decode(self.sock.recv())

    def call(self, cmd, token=TOKEN, **args):
        return self.send_bytes(make_request(cmd, token, 1, args))

    def close(self):
        self.sock.close(0)


def test_state_round_trip_and_moves(served):
    arm, server, connect = served
    client = connect()
    assert client.server_info["driver"] == "mock"
    state = client.state()
    np.testing.assert_allclose(state.ee_pose, arm.state().ee_pose)
    assert state.joint_positions.shape == (7,) and state.gripper == 1.0
    result = client.move_delta([0.01, -0.02, 0.005, 0, 0, 0.1], gripper=0.25)
    assert result.clips == ()
    np.testing.assert_allclose(arm.state().ee_pose[:3], [0.46, -0.02, 0.255])
    assert arm.state().gripper == 0.25
    np.testing.assert_allclose(result.state.ee_pose, arm.state().ee_pose)
    client.move_to([0.47, -0.02, 0.255, PI, 0, 0.1])
    assert arm.state().ee_pose[0] == pytest.approx(0.47)
    client.set_gripper(0.8)
    assert arm.state().gripper == 0.8
    arm.move_to([0.5, 0.1, 0.3, PI, 0, 0])
    np.testing.assert_allclose(client.home().ee_pose, MockArmConfig().home_pose)
    client.stop()
    assert arm.stop_count >= 1
    np.testing.assert_allclose(client.state().ee_quat, arm.state().ee_quat)


def test_wrong_token_is_refused_and_never_acts(served):
    arm, server, connect = served
    with pytest.raises(AuthenticationError, match="token"):
        connect(token="not-the-token")
    raw = RawClient(server.port)
    before = arm.state().ee_pose.copy()
    reply = raw.call(
        "move_delta", token="wrong-token!", delta=np.array([0.01, 0, 0, 0, 0, 0]), gripper=None
    )
    raw.close()
    assert reply["ok"] is False and reply["error"]["type"] == "AuthenticationError"
    assert not [c for c in arm.calls if c[0] in ("move_to", "set_gripper", "home")]
    np.testing.assert_array_equal(arm.state().ee_pose, before)
    assert server.auth_failures >= 2


def test_server_applies_safety_to_raw_messages(served):
    arm, server, connect = served
    raw = RawClient(server.port)
    try:
        start = arm.state().ee_pose.copy()
        for bad in ([0, 0, float("nan"), 0, 0, 0], [float("inf"), 0, 0, 0, 0, 0]):
            reply = raw.call("move_delta", delta=np.array(bad), gripper=None)
            assert reply["ok"] is False and reply["error"]["type"] == "SafetyError"
            assert "NaN or infinity" in reply["error"]["message"]
        np.testing.assert_array_equal(arm.state().ee_pose, start)
        reply = raw.call("move_delta", delta=np.array([0.2, 0, 0, 0, 0, 0]), gripper=None)
        assert reply["ok"] and reply["result"]["clips"] == ["step_translation_x"]
        assert arm.state().ee_pose[0] == pytest.approx(start[0] + 0.03)
        reply = raw.call("move_to", pose=np.array([5.0, 0, -3.0, PI, 0, 0]), gripper=7.0)
        clips = reply["result"]["clips"]
        for name in (
            "workspace_x_high",
            "workspace_z_low",
            "step_translation_x",
            "step_translation_z",
            "gripper_high",
        ):
            assert name in clips
        assert arm.state().gripper == 1.0
        reply = raw.call("set_gripper", opening=-2.0)
        assert reply["result"] == {"gripper": 0.0, "clips": ["gripper_low"]}
        reply = raw.call("move_to", pose=[0.4, 0.0], gripper=None)
        assert reply["ok"] is False and "shape" in reply["error"]["message"]
    finally:
        raw.close()


def test_malformed_and_hostile_messages_are_answered_not_obeyed(served):
    arm, server, connect = served
    raw = RawClient(server.port)
    try:
        import pickle

        reply = raw.send_bytes(pickle.dumps({"cmd": "home"}))
        assert reply["ok"] is False and "undecodable" in reply["error"]["message"]
        obj_array = msgpack.ExtType(1, msgpack.packb(["|O", [1], b"\x00" * 8]))
        reply = raw.send_bytes(
            msgpack.packb(
                {"v": 1, "id": 1, "token": TOKEN, "cmd": "move_to", "args": {"pose": obj_array}}
            )
        )
        assert reply["ok"] is False and "dtype" in reply["error"]["message"]
        reply = raw.send_bytes(
            encode({"v": PROTOCOL_VERSION + 1, "id": 2, "token": TOKEN, "cmd": "state"})
        )
        assert "version mismatch" in reply["error"]["message"]
        reply = raw.call("self_destruct")
        assert "unknown command" in reply["error"]["message"]
        assert raw.call("state")["ok"] is True  # still serving
    finally:
        raw.close()
    assert not [c for c in arm.calls if c[0] in ("move_to", "home")]


def test_client_side_safety_clips_before_sending(served):
    arm, server, connect = served
    client = connect(limits=SafetyLimits(max_translation_step=0.01))
    result = client.move_delta([0.02, 0, 0, 0, 0, 0])
    assert result.clips == ("step_translation_x",)
    sent = [c for c in arm.calls if c[0] == "move_to"][-1][1][0]
    assert sent[0] == pytest.approx(0.46)  # the server received the already-clipped command
    with pytest.raises(SafetyError):
        client.move_delta([np.nan, 0, 0, 0, 0, 0])


def test_client_uses_server_limits_by_default(served):
    arm, server, connect = served
    client = connect()
    assert client.default_limits().to_dict() == server.safety.limits.to_dict()


def test_silent_client_makes_server_stop_the_arm(served):
    arm, server, connect = served
    client = connect(heartbeat_interval_s=0)  # no heartbeats: falls silent after its last call
    client.move_delta([0.01, 0, 0, 0, 0, 0])
    arm.stop_event.clear()
    assert arm.stop_event.wait(10.0), "watchdog never stopped the arm"
    assert server.watchdog_stops == 1
    assert stays_false(lambda: server.watchdog_stops > 1, 0.5)  # once per silence


def test_heartbeats_keep_an_idle_client_alive(served):
    arm, server, connect = served
    client = connect(heartbeat_interval_s=0.05)
    client.state()
    # idle for more than twice the 0.3 s deadline: only heartbeats speak for the client
    assert stays_false(lambda: server.watchdog_stops or arm.stop_count, 0.8)
    assert client.heartbeat_error is None


def test_no_server_fails_naming_the_address():
    with zmq.Context.instance().socket(zmq.REP) as s:  # find a port nobody serves
        port = s.bind_to_random_port("tcp://127.0.0.1")
    client = ArmClient(port=port, token=TOKEN, timeout_s=0.2, connect_timeout_s=0.6)
    with pytest.raises(ConnectionLostError, match="within 0.6 s of trying to connect") as err:
        client.connect()
    assert f"tcp://127.0.0.1:{port}" in str(err.value) and "arm-server" in str(err.value)
    client.close()


def _spawn_server(token, driver="mock", extra=(), pythonpath=()):
    return spawn_arm_server(
        "--driver", driver, "--token", token, *extra, token=None, module=HARDWARE_MODULE,
        pythonpath=pythonpath,
    )  # fmt: skip


def test_server_killed_mid_use_gives_a_clear_error_then_reconnects():
    token = generate_token()
    proc, port = _spawn_server(token)
    client = ArmClient(port=port, token=token, timeout_s=0.5, heartbeat_interval_s=0.05)
    try:
        client.connect()
        client.move_delta([0.01, 0, 0, 0, 0, 0])
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        with pytest.raises(ConnectionLostError) as err:
            client.move_delta([0.01, 0, 0, 0, 0, 0])
        assert f"tcp://127.0.0.1:{port}" in str(err.value)
        # A server coming back on the same port is picked up by the next call: the stuck REQ
        # socket was replaced.
        with ArmServer(MockArm(), port=port, token=token, heartbeat_timeout_s=5.0):
            assert client.state().ee_pose.shape == (6,)
    finally:
        client.close()
        stop(proc)


def test_a_call_queued_behind_a_dying_heartbeat_fails_with_it_not_after_a_second_timeout(served):
    arm, server, connect = served
    client = connect(timeout_s=0.5, heartbeat_interval_s=0.02)
    client.state()
    server.shutdown()
    # a heartbeat is now waiting (holding the link) for a reply that will never come
    wait_until(client._lock.locked, what="a heartbeat in flight")
    # Waiting out the heartbeat's timeout and then a full timeout of its own would report the
    # state request's own timeout; the call must instead fail with the heartbeat's.
    with pytest.raises(ConnectionLostError, match="a 'heartbeat' request timed out"):
        client.state()


def test_server_process_shuts_down_cleanly_on_sigterm():
    token = generate_token()
    proc, port = _spawn_server(token)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    stop(proc)


def test_server_process_serves_a_driver_registered_by_an_imported_module(tmp_path):
    # How daft_env's MuJoCo arm is served: `--import daft_env --driver mujoco`.
    (tmp_path / "my_arm_plugin.py").write_text(
        "from hardware.arm import MockArm, MockArmConfig, register_arm\n"
        "register_arm('plugin-arm', lambda **kw: MockArm(MockArmConfig(home_pose=(0.5, 0.1, 0.2, 3.14159, 0, 0))))\n"
    )
    token = generate_token()
    proc, port = _spawn_server(token, "plugin-arm", ["--import", "my_arm_plugin"], [tmp_path])
    client = ArmClient(port=port, token=token)
    try:
        client.connect()
        assert client.state().ee_pose[:3] == pytest.approx([0.5, 0.1, 0.2])
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        stop(proc)


def test_shutdown_stops_then_closes_the_driver():
    arm = MockArm()
    server = ArmServer(arm, port=0, token=TOKEN).start_in_thread()
    server.shutdown()
    assert [c[0] for c in arm.calls][-2:] == ["stop", "close"]
    server.shutdown()  # twice is fine


def test_constructor_validation():
    with pytest.raises(ConfigError, match="token"):
        ArmServer(MockArm(), port=0, token="short")
    with pytest.raises(ConfigError, match="Arm driver"):
        ArmServer(object(), port=0, token=TOKEN)
    with pytest.raises(ConfigError, match="token"):
        ArmClient(port=5560, token="")
    with pytest.raises(ConfigError, match="port"):
        ArmClient(port=0, token=TOKEN)


def test_port_in_use_is_a_clear_error(served):
    arm, server, connect = served
    with pytest.raises(HardwareError, match="could not bind"):
        ArmServer(MockArm(), port=server.port, token=TOKEN).start_in_thread()


def test_arm_registry():
    assert isinstance(make_arm("mock", latency_s=0.0), MockArm)
    with pytest.raises(ConfigError) as err:
        make_arm("ur5")
    assert "mock" in str(err.value) and "xarm" in str(err.value)
