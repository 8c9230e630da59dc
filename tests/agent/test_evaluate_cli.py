"""``daft evaluate`` on the MuJoCo sim: conditions, speakers, the keyboard path and results.json.

The checkpoint is replaced by a stand-in agent (a zero policy that logs the commands it is given),
so these tests exercise the command's wiring, not a trained policy.
"""

import json

from daft_agent.cli import main
from hardware.teleop.keyboard import KeyboardConfig, KeyboardTeleop, ScriptedKeySource


def test_evaluate_prints_both_conditions_and_writes_results_json(agent, tmp_path, capsys):
    out = tmp_path / "results.json"
    args = ["evaluate", str(tmp_path / "checkpoint.zip"), "--trials", "1", "--with-commands"]
    assert main(args + ["--perturbed", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "nominal condition" in printed and "perturbed condition" in printed
    assert "hidden perception error 5-15 mm" in printed
    res = json.loads(out.read_text())
    assert res["autonomous"]["pickup"]["trials"] == 1  # the nominal keys of daft train's file
    assert res["with_commands"]["pickup"]["commands"] > 0  # a zero policy strays: it is told
    assert set(res["perturbed"]) == {"autonomous", "with_commands"}
    assert any(c is not None for c in agent.commands)


def test_keyboard_commands_are_fed_counted_and_never_take_over(agent, tmp_path, monkeypatch):
    import hardware.teleop

    keys = ScriptedKeySource(["w", ":move left\n"])
    monkeypatch.setattr(
        hardware.teleop,
        "make_teleop",
        lambda name, **kw: KeyboardTeleop(KeyboardConfig(key_source=keys)),
    )
    out = tmp_path / "results.json"
    args = ["evaluate", str(tmp_path / "checkpoint.zip"), "--trials", "1", "--device", "keyboard"]
    assert main(args + ["--pace", "0", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["with_commands"]["pickup"]["commands"] == 1
    talk = agent.commands[-50:]  # the with-commands episode (the zero policy never succeeds)
    assert talk[:2] == [None, None] and set(talk[2:]) == {"move left"}  # held until the next


def test_perturbed_needs_state_mode(agent, tmp_path, capsys):
    agent.backbone = "pixels"
    args = ["evaluate", str(tmp_path / "checkpoint.zip"), "--trials", "1", "--perturbed"]
    assert main(args) == 1
    assert "--perturbed offsets the state observation" in capsys.readouterr().err
