import collections
import os
import sys
import types

import numpy as np
import pytest

from hardware.errors import ConfigError, DeviceNotFoundError, SafetyError
from hardware.teleop import (
    EmergencyStopRequested,
    KeyboardConfig,
    KeyboardTeleop,
    RawSpaceMouseReading,
    RecordedSpaceMouse,
    ScriptedKeySource,
    SpaceMouse,
    SpaceMouseConfig,
    SpaceMouseMapping,
    StdinKeySource,
    TeleopDevice,
    check_emergency_stop,
    load_stream,
    make_teleop,
    save_stream,
)
from hardware.teleop.mock import stream_from_arrays

REST = [0.0] * 6


def replay(stream, **kw):
    dev = RecordedSpaceMouse.from_stream(stream, **kw)
    dev.connect()
    return dev


def test_devices_satisfy_the_protocol():
    assert isinstance(replay([]), TeleopDevice)
    assert isinstance(
        KeyboardTeleop(KeyboardConfig(key_source=ScriptedKeySource([]))), TeleopDevice
    )
    assert isinstance(SpaceMouse(), TeleopDevice)


def test_default_axis_mapping_into_base_frame():
    # Device: x right, y away from the operator, z up. Base: +x forward, +y left, +z up.
    dev = replay(
        [
            ([0, 0.6, 0, 0, 0, 0], (0, 0)),  # push away -> forward
            ([0.6, 0, 0, 0, 0, 0], (0, 0)),  # push right -> -y (right)
            ([0, 0, 0.6, 0, 0, 0], (0, 0)),  # lift -> up
        ],
        mapping=SpaceMouseMapping(deadzone=0.0),
    )
    np.testing.assert_allclose(dev.read().translation, [0.6, 0, 0])
    np.testing.assert_allclose(dev.read().translation, [0, -0.6, 0])
    np.testing.assert_allclose(dev.read().translation, [0, 0, 0.6])


def test_custom_permutation_and_signs():
    mapping = SpaceMouseMapping(
        translation_perm=(0, 1, 2),
        translation_sign=(1, 1, -1),
        rotation_perm=(2, 1, 0),
        rotation_sign=(1, -1, 1),
        deadzone=0.0,
    )
    cmd = replay([([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], (0, 0))], mapping=mapping).read()
    np.testing.assert_allclose(cmd.translation, [0.1, 0.2, -0.3])
    np.testing.assert_allclose(cmd.rotation, [0.6, -0.5, 0.4])


def test_deadzone_rescales_and_sensitivity_clips():
    mapping = SpaceMouseMapping(
        translation_perm=(0, 1, 2), translation_sign=(1, 1, 1), deadzone=0.1, sensitivity=2.0
    )
    dev = replay([([0.05, 0.55, -1.0, 0, 0, 0], (0, 0))], mapping=mapping)
    cmd = dev.read()
    # 0.05 is inside the deadzone; (0.55 - 0.1) / 0.9 * 2 = 1.0; -1 * 2 clips to -1.
    np.testing.assert_allclose(cmd.translation, [0.0, 1.0, -1.0])
    assert cmd.as_action().shape == (7,)


def test_intervening_follows_deflection_beyond_the_deadzone():
    dev = replay([([0, 0.05, 0, 0, 0, 0], (0, 0)), ([0, 0.5, 0, 0, 0, 0], (0, 0)), (REST, (0, 0))])
    assert [dev.read().intervening for _ in range(3)] == [False, True, False]


def test_gripper_button_toggles_on_press_edge_only():
    stream = [(REST, (1, 0)), (REST, (1, 0)), (REST, (1, 0)), (REST, (0, 0)), (REST, (1, 0))]
    dev = replay(stream)
    grips = [dev.read().gripper for _ in stream]
    assert grips == [1.0, 1.0, 1.0, 1.0, -1.0]  # open(-1) -> closed on first press, open on second


def test_intervention_button_toggle_and_hold_modes():
    stream = [(REST, (0, 1)), (REST, (0, 0)), (REST, (0, 0)), (REST, (0, 1)), (REST, (0, 0))]
    toggle = replay(stream)
    assert [toggle.read().intervening for _ in stream] == [True, True, True, False, False]
    hold = replay(stream, mapping=SpaceMouseMapping(intervention_mode="hold"))
    assert [hold.read().intervening for _ in stream] == [True, False, False, True, False]


def test_both_buttons_latch_emergency_stop_until_reset():
    dev = replay([(REST, (0, 0)), (REST, (1, 1)), (REST, (0, 0))])
    assert not dev.read().emergency_stop
    cmd = dev.read()
    assert cmd.emergency_stop and cmd.intervening
    assert dev.read().emergency_stop  # latched after release
    dev.reset()
    assert not dev.read().emergency_stop


def test_hold_mode_lets_the_operator_toggle_the_gripper_while_holding():
    dev = replay(
        [(REST, (0, 1)), (REST, (1, 1)), (REST, (0, 1))],
        mapping=SpaceMouseMapping(intervention_mode="hold"),
    )
    cmds = [dev.read() for _ in range(3)]
    assert not any(c.emergency_stop for c in cmds)
    assert all(c.intervening for c in cmds)
    assert [c.gripper for c in cmds] == [-1.0, 1.0, 1.0]


def test_gripper_follows_the_policy_while_hands_off():
    dev = replay([(REST, (0, 0)), ([0, 0.8, 0, 0, 0, 0], (1, 0)), ([0, 0.8, 0, 0, 0, 0], (0, 0))])
    dev.on_step(None, np.array([0, 0, 0, 0, 0, 0, 1.0]), {})  # policy closed the gripper
    assert dev.read().gripper == 1.0
    assert dev.read().gripper == -1.0  # operator took over and toggled: opens
    dev.on_step(None, np.array([0, 0, 0, 0, 0, 0, 1.0]), {})  # still intervening: ignored
    assert dev.read().gripper == -1.0


def test_stream_is_rest_after_the_end_and_loops_when_asked():
    dev = replay([([0, 0.5, 0, 0, 0, 0], (0, 0))])
    dev.read()
    assert dev.exhausted and not dev.read().intervening
    looping = replay([([0, 0.5, 0, 0, 0, 0], (0, 0))], loop=True)
    assert all(looping.read().intervening for _ in range(3))


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_recorded_stream_round_trips_through_files(tmp_path, suffix):
    rng = np.random.default_rng(1)
    buttons = rng.integers(0, 2, size=(20, 2))
    stream = stream_from_arrays(rng.uniform(-1, 1, size=(20, 6)), buttons)
    path = save_stream(tmp_path / f"s{suffix}", stream)
    loaded = load_stream(path)
    np.testing.assert_allclose([r.axes for r in loaded], [r.axes for r in stream])
    a, b = replay(stream), make_teleop("mock", stream=str(path))
    b.connect()
    for _ in range(20):
        ca, cb = a.read(), b.read()
        np.testing.assert_allclose(ca.as_action(), cb.as_action())
        assert (ca.intervening, ca.emergency_stop) == (cb.intervening, cb.emergency_stop)


def test_bad_stream_files_and_configs_raise_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_stream(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match=".json or .npz"):
        save_stream(tmp_path / "s.txt", [])
    (tmp_path / "bad.json").write_text('{"readings": [{"nope": 1}]}')
    with pytest.raises(ConfigError, match="not a valid"):
        load_stream(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="permutation"):
        SpaceMouseMapping(translation_perm=(0, 0, 1))
    with pytest.raises(ConfigError, match="deadzone"):
        SpaceMouseMapping(deadzone=1.0)


# -- the real SpaceMouse class, driven through a stand-in pyspacemouse module ------------------

State = collections.namedtuple("State", "t x y z roll pitch yaw buttons")


def fake_pyspacemouse(monkeypatch, opened=True, error=None, readings=()):
    mod = types.ModuleType("pyspacemouse")
    queue = list(readings)

    def _open(**kw):
        if error is not None:
            raise error
        return opened

    mod.open = _open
    mod.read = lambda: queue.pop(0) if queue else State(0, 0, 0, 0, 0, 0, 0, [0, 0])
    mod.close = lambda: None
    monkeypatch.setitem(sys.modules, "pyspacemouse", mod)


@pytest.mark.parametrize(
    "kw", [dict(opened=False), dict(error=OSError("open failed: permission denied"))]
)
def test_unopenable_spacemouse_explains_the_udev_rule(monkeypatch, kw):
    fake_pyspacemouse(monkeypatch, **kw)
    with pytest.raises(DeviceNotFoundError) as err:
        make_teleop("spacemouse").connect()
    msg = str(err.value)
    for words in ("256f", "046d", "udevadm control --reload", "/etc/udev/rules.d"):
        assert words in msg


def test_missing_pyspacemouse_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspacemouse", None)
    with pytest.raises(DeviceNotFoundError, match=r"pip install daft\[real\]"):
        SpaceMouse().connect()


def test_real_spacemouse_uses_the_same_mapping_and_records(monkeypatch):
    raw = [State(0.0, 0.2, 0.7, 0.0, 0.0, 0.0, 0.3, [1, 0])]
    fake_pyspacemouse(monkeypatch, readings=raw)
    dev = SpaceMouse(SpaceMouseConfig(record=True))
    dev.connect()
    real = dev.read()
    mock = replay([RawSpaceMouseReading([0.2, 0.7, 0, 0, 0, 0.3], (1, 0))]).read()
    np.testing.assert_allclose(real.as_action(), mock.as_action())
    assert real.gripper == 1.0 and len(dev.recording) == 1
    dev.disconnect()


# -- keyboard ----------------------------------------------------------------------------------


def keyboard(steps, **kw):
    dev = make_teleop("keyboard", key_source=ScriptedKeySource(steps), **kw)
    dev.connect()
    return dev


@pytest.mark.parametrize(
    "key, axis, sign",
    [
        ("w", 0, 1),
        ("s", 0, -1),
        ("a", 1, 1),
        ("d", 1, -1),
        ("r", 2, 1),
        ("f", 2, -1),
        ("u", 3, 1),
        ("o", 3, -1),
        ("i", 4, 1),
        ("k", 4, -1),
        ("j", 5, 1),
        ("l", 5, -1),
    ],
)
def test_each_motion_key_drives_its_axis(key, axis, sign):
    cmd = keyboard([key], translation_speed=0.4, rotation_speed=0.8).read()
    expected = np.zeros(6)
    expected[axis] = sign * (0.4 if axis < 3 else 0.8)
    np.testing.assert_allclose(cmd.as_action()[:6], expected)
    assert cmd.intervening


def test_motion_holds_for_hold_reads_and_opposite_key_cancels():
    dev = keyboard(["w", "", "", ""], hold_reads=3)
    assert [dev.read().translation[0] for _ in range(4)] == [0.5, 0.5, 0.5, 0.0]
    dev = keyboard(["w", "s", ""], hold_reads=5)
    assert [dev.read().translation[0] for _ in range(3)] == [0.5, -0.5, -0.5]


def test_keyboard_gripper_intervention_and_estop():
    dev = keyboard([" ", "t", "", "t", "x", "", ""])
    cmds = [dev.read() for _ in range(6)]
    assert [c.gripper for c in cmds[:2]] == [1.0, 1.0]
    assert [c.intervening for c in cmds[:4]] == [False, True, True, False]
    assert cmds[4].emergency_stop and cmds[5].emergency_stop  # latched
    dev.reset()
    assert not dev.read().emergency_stop


def test_typed_refinement_command_with_editing():
    dev = keyboard([":mvoe", "\x7f\x7f\x7fove left", "\r", ":cancel\x1b", "w"])
    reads = [dev.read() for _ in range(5)]
    assert [r.refinement_command for r in reads] == [None, None, "move left", None, None]
    assert (
        "typing" in reads[0].buttons and reads[0].translation[0] == 0.0
    )  # 'w' not a move while typing
    assert reads[4].translation[0] == 0.5


def test_keyboard_config_validation():
    with pytest.raises(ConfigError, match="unknown keyboard actions"):
        KeyboardConfig(keymap={"q": "fly"})
    with pytest.raises(ConfigError, match="hold_reads"):
        KeyboardConfig(hold_reads=0)


def test_stdin_key_source_without_a_tty_is_a_clear_error(tmp_path):
    with open(tmp_path / "f.txt", "w+") as not_a_tty:
        with pytest.raises(DeviceNotFoundError, match="TTY"):
            StdinKeySource(not_a_tty).open()


def test_stdin_key_source_reads_a_real_terminal():
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "r", closefd=False) as stream:
            dev = KeyboardTeleop(KeyboardConfig(key_source=StdinKeySource(stream)))
            dev.connect()
            os.write(master, b"w ")
            cmd = dev.read()
            assert cmd.translation[0] == 0.5 and cmd.gripper == 1.0
            assert dev.read().gripper == 1.0
            dev.disconnect()
    finally:
        os.close(master)
        os.close(slave)


def test_emergency_stop_hook_stops_then_raises():
    stopped = []
    cmd = keyboard(["x"]).read()
    with pytest.raises(EmergencyStopRequested, match="emergency stop") as err:
        check_emergency_stop(cmd, lambda: stopped.append(True), "keyboard")
    assert stopped == [True] and isinstance(err.value, SafetyError)
    check_emergency_stop(keyboard([""]).read(), lambda: stopped.append(False))  # no-op
    assert stopped == [True]


def test_unknown_teleop_name_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        make_teleop("joystick")
    for name in ("spacemouse", "keyboard", "mock"):
        assert name in str(err.value)
    with pytest.raises(ConfigError, match="valid options"):
        make_teleop("keyboard", speed=3)
