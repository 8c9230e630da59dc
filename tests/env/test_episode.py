"""EpisodeRecorder and task_of: the one place an Episode is assembled from steps."""

import numpy as np
import pytest

from daft_env.episode import NULL_COMMAND, EpisodeRecorder, task_of
from daft_env.errors import ConfigError, UnknownTaskError
from daft_env.tasks import get_task

POLICY = np.array([0.1, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0], np.float32)
DEVICE = np.array([0.0, -0.2, 0.5, 0.0, 0.0, 0.0, 1.0], np.float32)


def obs(t, task_id=None):
    o = {"gripper": np.array([t], np.float32), "state": np.full(3, t, np.float32)}
    if task_id is not None:
        o["task_id"] = task_id
    return o


def record(rewards, terminated, infos, tasks=None, kind=None, first=None):
    rec = EpisodeRecorder(tasks=tasks, kind=kind)
    rec.start(first if first is not None else obs(0), {"instruction": "pick up the bolt"})
    for t, (r, term, info) in enumerate(zip(rewards, terminated, infos, strict=True)):
        rec.step(obs(t + 1), POLICY, r, term, info)
    return rec


def test_success_is_the_last_steps_is_success_when_present():
    # a positive reward on a truncated step is not a success when the env says it is not
    rec = record([0.0, 1.0], [False, False], [{}, {"is_success": False}], tasks=["pickup"])
    assert rec.finish({"is_success": False}).success is False
    rec = record([0.0, 0.0], [False, True], [{}, {}], tasks=["pickup"])
    assert rec.finish({"is_success": True}).success is True


def test_without_is_success_success_needs_termination_and_a_positive_reward():
    assert record([0, 1.0], [False, True], [{}, {}], ["pickup"]).finish({}).success is True
    # reward without termination (a long-horizon subtask): not the episode's success
    assert record([0, 1.0], [False, False], [{}, {}], ["pickup"]).finish({}).success is False
    # termination without reward (bolt off the table)
    assert record([0, 0.0], [False, True], [{}, {}], ["pickup"]).finish({}).success is False


def test_an_emergency_stop_is_never_a_success():
    rec = record([1.0], [True], [{}], ["pickup"])
    assert rec.finish({"is_success": True, "emergency_stop": True}).success is False


def test_task_id_is_the_global_id_even_for_a_single_task_list():
    # the agent's local index of "pickup" in ("pickup",) is 0; the store checks the global id 1
    ep = record([0.0], [False], [{}], tasks=["pickup"]).finish({})
    assert ep.task == "pickup" and ep.task_id == get_task("pickup").task_id == 1
    ep = record([0.0], [False], [{}], tasks=["assemble", "pickup"]).finish({"task": "pickup"})
    assert ep.task_id == 1


def test_task_of_precedence():
    assert task_of({"task": "assemble"}, obs(0, task_id=0)) == "assemble"
    # info naming a task outside the list falls through to the observation's task id
    assert task_of({"task": "assemble"}, obs(0, task_id=1), ["upright", "pickup"]) == "pickup"
    assert task_of({}, obs(0, task_id=np.array([2]))) == "assemble"
    assert task_of({}, obs(0), ["upright"]) == "upright"
    with pytest.raises(ConfigError, match="task="):
        task_of({}, obs(0))
    with pytest.raises(ConfigError, match="outside the env's tasks"):
        task_of({}, obs(0, task_id=3))
    with pytest.raises(UnknownTaskError, match="valid tasks"):
        task_of({}, obs(0), ["stack"])


def test_finish_task_argument_overrides_attribution():
    ep = record([0.0], [False], [{"task": "upright"}]).finish({"task": "upright"}, task="assemble")
    assert (ep.task, ep.task_id, ep.instruction) == ("assemble", 2, "pick up the bolt")


def test_backend_error_and_its_type_are_kept_in_metadata():
    info = {"backend_error": "ConnectionLostError: arm server at 127.0.0.1:5560 stopped answering"}
    info["backend_error_type"] = "ConnectionLostError"
    rec = record([0.0], [False], [info], ["pickup"])
    ep = rec.finish(info, metadata={"weights_version": 7})
    assert ep.metadata == {
        "weights_version": 7,
        "backend_error": info["backend_error"],
        "backend_error_type": "ConnectionLostError",
    }
    # a None placeholder in the given metadata is filled from info; absent info keeps it
    ep = record([0.0], [False], [info], ["pickup"]).finish(info, {"backend_error": None})
    assert ep.metadata["backend_error"] == info["backend_error"]
    ep = record([0.0], [False], [{}], ["pickup"]).finish({}, {"backend_error": None})
    assert ep.metadata == {"backend_error": None}


def test_executed_versus_policy_action():
    infos = [
        # an intervention wrapper's step: executed_action wins
        {"intervened": True, "executed_action": DEVICE, "intervention_action": DEVICE * 0},
        # intervened without executed_action: the intervention action was executed
        {"intervened": True, "intervention_action": DEVICE, "policy_action": POLICY * 2},
        # not intervened: the action passed in
        {"intervened": False, "intervention_action": None},
        {},
    ]
    ep = record([0.0] * 4, [False] * 4, infos, ["pickup"]).finish({})
    np.testing.assert_array_equal(ep.actions, np.stack([DEVICE, DEVICE, POLICY, POLICY]))
    np.testing.assert_array_equal(ep.policy_actions, np.stack([POLICY, POLICY * 2, POLICY, POLICY]))
    np.testing.assert_array_equal(ep.intervened, [True, True, False, False])
    assert ep.kind == "interventions" and ep.actions.dtype == np.float32


def test_kind_defaults_to_rollouts_and_a_fixed_kind_wins():
    assert record([0.0], [False], [{}], ["pickup"]).finish({}).kind == "rollouts"
    rec = record([0.0], [False], [{"intervened": True}], ["pickup"], kind="demos")
    assert rec.finish({}).kind == "demos"
    with pytest.raises(ConfigError, match="kind must be one of"):
        EpisodeRecorder(kind="demo")


def test_refinement_commands_only_when_their_length_matches():
    cmds = ["move left", NULL_COMMAND, "move up"]
    rec = record([0.0] * 3, [False] * 3, [{}] * 3, ["pickup"])
    assert rec.finish({"episode_refinement_commands": cmds}).refinement_commands == cmds
    rec = record([0.0] * 3, [False] * 3, [{}] * 3, ["pickup"])
    ep = rec.finish({"episode_refinement_commands": cmds[:2]})
    assert ep.refinement_commands == [NULL_COMMAND] * 3


def test_observations_stack_t_plus_one_frames_and_embeddings():
    rec = EpisodeRecorder(tasks=["pickup"], embed=lambda o: o["state"][:2] * 10)
    rec.start(obs(0), {})
    for t in range(3):
        rec.step(obs(t + 1), POLICY, 0.0, False, {})
    assert rec.active and len(rec) == 3
    ep = rec.finish({})
    assert ep.observations["state"].shape == (4, 3) and ep.observations["gripper"].shape == (4, 1)
    np.testing.assert_array_equal(ep.observations["gripper"][:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(ep.embeddings[:, 0], [0, 10, 20, 30])
    assert ep.rewards.dtype == np.float32 and ep.terminated.dtype == bool
    assert not rec.active and len(rec) == 0


def test_misuse_is_refused():
    rec = EpisodeRecorder(tasks=["pickup"])
    with pytest.raises(ConfigError, match="before start"):
        rec.step(obs(1), POLICY, 0.0, False, {})
    rec.start(obs(0), {})
    with pytest.raises(ConfigError, match="at least one step"):
        rec.finish({})
    with pytest.raises(ConfigError, match="at least one"):
        EpisodeRecorder(tasks=[])


def test_start_drops_an_unfinished_episode():
    rec = record([0.0, 0.0], [False, False], [{}, {}], ["pickup"])
    rec.start(obs(5), {})
    rec.step(obs(6), POLICY, 1.0, True, {})
    ep = rec.finish({})
    assert len(ep) == 1 and ep.observations["gripper"][0, 0] == 5
