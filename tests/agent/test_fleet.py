"""The fleet on a local Ray: a SIGKILLed robot comes back with the latest weights and loses none
of the episodes it returned; a hung robot is ended within its deadline and the rest goes on."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback
from support.fleet_envs import HangingToyRobot, ToyRobot, toy_fleet_agent
from support.fleet_learner import fleet as two_toy_robots
from support.toy_env import ToyBoltEnv, toy_hil_env
from support.waiting import wait_until

from daft_agent.agent import DualActorAgent
from daft_agent.errors import FleetError
from daft_agent.fleet import FleetConfig, RobotSpec, learn_fleet

torch.set_num_threads(1)
TASKS = ("upright",)


def _agent(tmp_path, **kwargs):
    return toy_fleet_agent(tmp_path / "store", TASKS, **kwargs)


def _fleet(*robots, **kwargs):
    # A robot's start-up (a Ray worker importing torch and MuJoCo) took over 60 s on a loaded
    # 2-core machine; the start-up allowance is not what these tests measure.
    settings = dict(speed=0.0, chunk_steps=5, deadline_margin_s=20.0, start_timeout_s=300.0)
    settings.update(kwargs)
    return FleetConfig(robots=tuple(robots), **settings)


def _stored(store, robot):
    return [ep for ep in store.episodes(kind=None) if ep.metadata.get("robot") == robot]


class _KillOnce(BaseCallback):
    """SIGKILLs robot ``victim`` once it has returned ``after`` episodes; stops the run once it
    has returned ``more`` episodes after coming back."""

    def __init__(self, victim: str, after: int = 2, more: int = 2) -> None:
        super().__init__()
        self.victim, self.after, self.more = victim, after, more
        self.killed_pid = None
        self.episodes_at_kill = None
        self.version_at_kill = None

    def _on_step(self) -> bool:
        import ray

        runner = self.locals["fleet"]
        robot = next(r for r in runner.robots if r.name == self.victim)
        if self.killed_pid is None and robot.episodes >= self.after:
            self.killed_pid = ray.get(robot.handle.pid.remote(), timeout=30)
            self.episodes_at_kill = robot.episodes
            self.version_at_kill = runner.hub.version
            os.kill(self.killed_pid, signal.SIGKILL)
        if robot.dropped is not None:
            raise AssertionError(robot.dropped)
        return self.killed_pid is None or robot.episodes < self.episodes_at_kill + self.more


def test_a_sigkilled_robot_comes_back_with_the_latest_weights_and_no_returned_episode_is_lost(
    local_ray, tmp_path
):
    # weights published once, at the start: a restarted robot holds them only if the learner
    # sends them again, unasked, to the new process
    agent, store = _agent(tmp_path, weight_sync_interval=10**6)
    cb = _KillOnce("robot-0")
    fleet = _fleet(
        RobotSpec("robot-0", ToyRobot()), RobotSpec("robot-1", ToyRobot(operator_seed=1))
    )
    runner = learn_fleet(agent, 20_000, fleet, callback=cb)

    victim, other = runner.robots
    assert cb.killed_pid is not None, "the run ended before the robot could be killed"
    assert victim.dropped is None and other.dropped is None
    assert victim.pids[0] == cb.killed_pid and len(set(victim.pids)) == 2  # a new process
    assert victim.restarts == 1
    # every episode the robot returned, before and after its death, is in the durable store
    stored = _stored(store, "robot-0")
    assert len(stored) == victim.episodes >= cb.episodes_at_kill + cb.more
    assert len(_stored(store, "robot-1")) == other.episodes > 0
    # the new process acted with the learner's latest weights, not its initial copy
    after = [ep.metadata["weights_version"] for ep in stored[cb.episodes_at_kill :]]
    assert min(after) == cb.version_at_kill == 1
    # the learner kept training through the fault
    assert agent.online_updates_done > 0
    assert agent.num_timesteps == victim.steps + other.steps


def test_a_hung_robot_is_ended_at_its_deadline_and_the_rest_of_the_fleet_goes_on(
    local_ray, tmp_path, caplog
):
    agent, store = _agent(tmp_path)
    fleet = _fleet(
        RobotSpec("steady", ToyRobot()),
        RobotSpec("stuck", HangingToyRobot(hang_after=7)),
        deadline_margin_s=3.0,
    )
    with caplog.at_level(logging.WARNING, logger="daft.fleet"):
        runner = learn_fleet(agent, 120, fleet)

    steady, stuck = runner.robots
    assert stuck.dropped is not None
    assert "robot 'stuck' did not answer run_steps within its 3.0 s deadline" in stuck.dropped
    assert any(
        "'stuck'" in r.message and "goes on with ['steady']" in r.message for r in caplog.records
    )
    assert steady.dropped is None
    assert steady.steps + stuck.steps == agent.num_timesteps == 120
    assert len(_stored(store, "steady")) == steady.episodes > 0


def test_a_fleet_whose_every_robot_hangs_stops_with_an_error_naming_each(local_ray, tmp_path):
    agent, _ = _agent(tmp_path)
    fleet = _fleet(RobotSpec("stuck", HangingToyRobot(hang_after=7)), deadline_margin_s=2.0)
    with pytest.raises(
        FleetError, match="every robot of the fleet is gone: robot 'stuck' did not answer"
    ):
        learn_fleet(agent, 50, fleet)


def test_a_killed_learner_resumes_from_its_checkpoint_and_store_and_the_robots_rejoin(
    local_ray, tmp_path
):
    script = Path(__file__).resolve().parents[1] / "support" / "fleet_learner.py"
    address = local_ray.get_runtime_context().gcs_address
    log = tmp_path / "learner.log"  # a file, not a pipe: a full pipe would stall the learner
    with open(log, "wb") as out:
        learner = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), address], stdout=out, stderr=out
        )
    try:
        wait_until(
            lambda: (tmp_path / "saved").exists() or learner.poll() is not None,
            180,
            "the learner process's checkpoint at 20 steps",
        )
    finally:
        learner.kill()  # SIGKILL: no handler runs, nothing is flushed
        learner.wait(timeout=60)
    assert (tmp_path / "saved").exists(), log.read_text(errors="replace")[-2000:]

    store_dir = tmp_path / "store"
    _, store = toy_fleet_agent(store_dir, TASKS)
    env = toy_hil_env(ToyBoltEnv(tasks=TASKS, max_steps=5))
    agent = DualActorAgent.load(tmp_path / "checkpoint.zip", env=env, store=store)
    resumed_at = agent.online_env_steps
    assert resumed_at >= 20 and agent.online_updates_done > 0
    before = {r: len(_stored(store, r)) for r in ("robot-0", "robot-1")}
    assert sum(before.values()) > 0  # the killed run's episodes are in the store ...
    agent.load_buffers()  # ... and in the resumed learner's buffers: no prompt, no re-initialising
    online = [ep for ep in store.episodes() if ep.kind != "demos"]
    steps = sum(len(ep) for ep in online)
    intervened = sum(int(ep.intervened.sum()) for ep in online)
    sizes = agent.replay.sizes()
    # every online step is in the buffers: the policy's as rollouts, the operator's as
    # interventions (which join the demos, Algorithm 1 lines 28-29: interventions_as_demos)
    assert sizes["upright/rollouts"] + sizes["upright/interventions"] == steps > 0
    assert sizes["upright/interventions"] == intervened

    runner = learn_fleet(agent, 30, two_toy_robots(), reset_num_timesteps=False)

    assert agent.online_env_steps == resumed_at + 30
    for robot in runner.robots:  # new robot processes rejoined and filed episodes
        assert robot.dropped is None and robot.episodes > 0
        assert len(_stored(store, robot.name)) == before[robot.name] + robot.episodes


class _LagProbe(BaseCallback):
    """Records the learner's lag behind its allowance after every returned env step."""

    def _on_training_start(self) -> None:
        self.lags = []

    def _on_step(self) -> bool:
        runner = self.locals["fleet"]
        self.lags.append(runner.updates_allowed() - runner.updates_done)
        return True


def test_max_update_lag_holds_the_robots_back_across_processes(local_ray, tmp_path):
    agent, _ = _agent(tmp_path, utd_ratio=2.0, max_update_lag=2, batch_size=64)
    fleet = _fleet(
        RobotSpec("robot-0", ToyRobot()), RobotSpec("robot-1", ToyRobot(operator_seed=1))
    )
    probe = _LagProbe()
    learn_fleet(agent, 200, fleet, callback=probe)
    # unpaced toy robots outrun the learner; the lag bound may be overshot only by the chunks
    # already running when it was reached (2 robots x 5 steps x utd 2)
    assert max(probe.lags) <= 2 + 2 * 5 * 2.0
    assert (
        agent.online_updates_done >= 2.0 * 150
    )  # the learner did the owed work, it was not skipped
