"""DAFT's env layer on an env that is not DAFT's: the toy ``ReachPlace-v0`` (tests/support).

Its action is 4-d (dx, dy, dz in +-3 cm, gripper in [0, 1]), its observation a plain Box, it has
two tasks and a scripted plan. These tests pin what a user relies on when bringing such an env:
the rescaled action, the Dict observation with the task id, the registered tasks, the labels on
the right axes in the env's own words, the plan operator's trigger and cap, and clear errors.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import support.reach_place as rp
from gymnasium import spaces

from daft_env.adapters import DaftSpaces, make_env
from daft_env.episode import NULL_COMMAND
from daft_env.errors import ConfigError, InvalidActionError
from daft_env.labeler import TalkAndTweakLabeler, label_episode
from daft_env.layout import DAFT_LAYOUT, ActionLayout, TranslationAxis
from daft_env.plan_operator import PlanOperator, ScriptedPlan, load_plan, plan_action
from daft_env.tasks import get_task, register_task
from daft_env.wrappers import InterventionWrapper

ENV = "support.reach_place:ReachPlace-v0"


def test_the_adapter_rescales_the_action_and_wraps_the_observation():
    env = make_env(ENV)
    assert isinstance(env, DaftSpaces)
    assert env.action_space == spaces.Box(-1.0, 1.0, (4,), np.float32)
    assert set(env.observation_space.spaces) == {"observation", "task_id"}
    assert env.observation_space["task_id"].n == 2
    np.testing.assert_allclose(env.to_env([1, -1, 0, 1]), [0.03, -0.03, 0.0, 1.0])
    np.testing.assert_allclose(env.to_env([0, 0, 0, -1]), [0, 0, 0, 0.0])
    a = np.array([0.01, -0.02, 0.005, 0.7])
    np.testing.assert_allclose(env.to_env(env.to_unit(a)), a)
    obs, info = env.reset(seed=3, options={"task": "place"})
    tool = obs["observation"][:3].copy()
    assert obs["task_id"] == 1 and info["task"] == "place"
    obs, *_ = env.step(np.array([1.0, 0.0, 0.0, -1.0], np.float32))
    np.testing.assert_allclose(obs["observation"][0] - tool[0], 0.03, atol=1e-6)  # the env's 3 cm


def test_the_env_tasks_are_registered_with_their_instructions():
    make_env(ENV)
    assert get_task("place").instruction == "put the block on the target"
    assert get_task("reach").task_id >= 3  # after the bolt tasks
    with pytest.raises(ConfigError, match="already registered"):
        register_task("reach", "something else")
    with pytest.raises(ConfigError, match="not valid"):
        register_task("two words")
    with pytest.raises(ConfigError, match="unknown task 'pour'"):
        make_env(ENV).reset(options={"task": "pour"})


def test_the_layout_is_rescaled_to_the_normalised_action():
    env = make_env(ENV)
    # one normalised unit is 3 cm of the env's metres-per-unit 1.0
    assert env.action_layout.metres == pytest.approx([0.03, 0.03, 0.03])
    assert env.action_layout.gripper == 3


def test_labels_name_the_axes_of_the_env_in_its_words():
    env = make_env(ENV)
    lab = TalkAndTweakLabeler(layout=env.action_layout)
    # 5 steps of +1 on y (left, 15 cm) and -1 on z (down): "move left and down"; x untouched
    acts = np.tile([0.0, 1.0, -1.0, 1.0], (5, 1))
    assert lab.label_episode(acts, [True] * 5)[0] == "move left and down"
    # the gripper dimension never makes a word
    acts = np.tile([0.0, 0.0, 0.0, 1.0], (5, 1))
    assert lab.label_episode(acts, [True] * 5) == [NULL_COMMAND] * 5
    # another layout, other words: a 2-d planar pusher whose dimension 1 is "north/south"
    planar = ActionLayout(
        axes=(TranslationAxis(1, "north", "south", 0.01), TranslationAxis(0, "east", "west", 0.01))
    )
    got = label_episode(np.tile([-1.0, 1.0], (5, 1)), [True] * 5, layout=planar)
    assert got[0] == "move north and west"
    assert planar.parse("move west and north").tolist() == [-1, 1]  # ascending index order
    assert len(planar.vocabulary()) == 9


def test_daft_layout_labels_are_unchanged():
    acts = np.zeros((5, 7))
    acts[:, 0], acts[:, 1] = 0.1, -0.1
    assert label_episode(acts, [True] * 5)[0] == "move right and forward"
    assert label_episode(acts, [True] * 5, layout=DAFT_LAYOUT)[0] == "move right and forward"


@pytest.mark.parametrize(
    "layout, match",
    [
        (ActionLayout(axes=(TranslationAxis(5, "left", "right", 0.02),)), "index 5.*4 dimensions"),
        (
            ActionLayout(axes=(TranslationAxis(0, "up", "down", 0.02),), gripper=9),
            "gripper index 9",
        ),
    ],
)
def test_a_wrong_layout_names_the_problem_and_the_fix(layout, match):
    with pytest.raises(ConfigError, match=match):
        make_env(ENV, layout=layout)


def test_malformed_layouts_are_refused():
    with pytest.raises(ConfigError, match="share an index"):
        ActionLayout(axes=((0, "a", "b", 0.1), (0, "c", "d", 0.1)))
    with pytest.raises(ConfigError, match="both the gripper and a translation"):
        ActionLayout(axes=((0, "a", "b", 0.1),), gripper=0)
    with pytest.raises(ConfigError, match="must all differ"):
        ActionLayout(axes=((0, "a", "b", 0.1), (1, "a", "c", 0.1)))
    with pytest.raises(ConfigError, match="positive, finite"):
        ActionLayout(axes=((0, "a", "b", 0.0),))
    with pytest.raises(ConfigError, match="1-d Box"):
        DAFT_LAYOUT.check(spaces.Discrete(3))


def test_an_env_without_a_layout_runs_with_commands_off():
    class NoLayout(rp.ReachPlace):
        action_layout = None

    with pytest.warns(UserWarning, match="commands are off"):
        env = DaftSpaces(NoLayout())
    assert env.action_layout is None
    op = PlanOperator(env, rp.plan, seed=0)
    hil = InterventionWrapper(env, op)
    hil.reset(seed=0, options={"task": "reach"})
    info = {}
    for _ in range(rp.MAX_STEPS["reach"]):
        _, _, term, trunc, info = hil.step(-np.ones(4, np.float32))
        if term or trunc:
            break
    assert op.intervened_steps > 0
    assert set(info["episode_refinement_commands"]) == {NULL_COMMAND}


def test_unbounded_or_discrete_actions_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="unbounded.*ClipAction"):
        DaftSpaces(rp.UnboundedReachPlace())

    class Discrete(rp.ReachPlace):
        def __init__(self):
            super().__init__()
            self.action_space = spaces.Discrete(4)

    with pytest.raises(ConfigError, match="continuous action"):
        DaftSpaces(Discrete())


def test_the_plan_operator_takes_over_a_straying_policy_within_its_cap():
    env = make_env(ENV)
    op = PlanOperator(env, rp.plan, seed=0, target_rate=0.15)
    hil = InterventionWrapper(env, op)
    rng = np.random.default_rng(0)
    labels, steps, intervened = set(), 0, 0
    for k in range(16):
        hil.reset(seed=k, options={"task": rp.TASKS[k % 2]})
        while True:
            _, _, term, trunc, info = hil.step(rng.uniform(-1, 1, 4).astype(np.float32))
            steps += 1
            intervened += info["intervened"]
            if info["intervened"]:
                # the clean label is the plan, normalised, with the gripper as a button
                assert info["intended_action"].shape == (4,)
                assert info["intended_action"][3] in (-1.0, 1.0)
            if term or trunc:
                labels |= set(info["episode_refinement_commands"])
                break
    share = intervened / steps
    assert 0.10 < share <= 0.15 + (3 + 5) / steps  # corrects up to the cap, not beyond
    assert op.reasons["deviation"] > 0
    words = {w for cmd in labels for w in cmd.replace(",", "").split()[1:] if w != "and"}
    assert words and words <= {"left", "right", "forward", "backward", "up", "down"}


def test_the_plan_operator_leaves_a_policy_that_follows_the_plan_alone():
    env = make_env(ENV)
    op = PlanOperator(env, rp.plan, seed=0)
    hil = InterventionWrapper(env, op)
    for k in range(6):
        hil.reset(seed=k, options={"task": rp.TASKS[k % 2]})
        while True:
            _, _, term, trunc, info = hil.step(plan_action(op.expert, env).astype(np.float32))
            if term or trunc:
                break
        assert info["is_success"]
    assert op.intervened_steps == 0


def test_speak_mode_says_the_plan_in_the_env_words():
    env = make_env(ENV)
    op = PlanOperator(env, rp.plan, mode="speak")
    hil = InterventionWrapper(env, op)
    obs, _ = hil.reset(seed=1, options={"task": "reach"})
    tool, block = obs["observation"][:3], obs["observation"][4:7]
    _, _, _, _, info = hil.step(np.zeros(4, np.float32))  # a policy that stands still strays
    said = info["refinement_command_now"]
    assert said is not None
    signs = env.action_layout.parse(said)  # (x, y, z)
    d = block - tool
    for axis in (0, 1):
        if abs(d[axis]) > 0.01:
            assert signs[axis] == np.sign(d[axis])


def test_plans_load_by_name_and_a_bad_one_says_why():
    env = make_env(ENV)
    assert isinstance(load_plan("support.reach_place:plan"), ScriptedPlan)
    task_plan = load_plan("support.reach_place:TaskPlan", env)  # a class: made with the env
    env.reset(seed=0, options={"task": "reach"})
    assert plan_action(task_plan, env)[3] == -1.0  # reach keeps the gripper open
    with pytest.raises(ConfigError, match="module:callable"):
        load_plan("support.reach_place")
    with pytest.raises(ConfigError, match="cannot import"):
        load_plan("no_such_module_xyz:plan")
    with pytest.raises(ConfigError, match="no attribute"):
        load_plan("support.reach_place:nope")
    bad = ScriptedPlan(lambda obs: np.zeros(3))
    with pytest.raises(InvalidActionError, match=r"shape \(4,\)"):
        plan_action(bad, env)


def test_a_seven_d_device_on_a_four_d_env_is_refused_clearly():
    from hardware.teleop.base import TeleopCommand

    class Stick:
        name = "stick"

        def on_step(self, *a):
            pass

        def read(self):
            return TeleopCommand(intervening=True)

        def reset(self):
            pass

    hil = InterventionWrapper(make_env(ENV), Stick())
    hil.reset(seed=0)
    with pytest.raises(InvalidActionError, match="7-d command"):
        hil.step(np.zeros(4, np.float32))


def test_bolt_envs_keep_their_face():
    import daft_env  # noqa: F401
    from daft_env.adapters import needs_adapter

    env = gym.make("BoltUpright-Sim-v0")
    try:
        assert not needs_adapter(env)
    finally:
        env.close()
    assert dataclasses.replace(DAFT_LAYOUT).indices == (0, 1, 2)
