"""A fleet learner in its own process, for the learner-kill test: ``python fleet_learner.py RUN ADDRESS``.

It joins the Ray at ADDRESS, trains the toy agent on two toy robots, saves ``RUN/checkpoint.zip``
every 10 env steps and, after a checkpoint at 20 steps or more, writes ``RUN/saved``; then it
trains on until it is killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_TESTS), str(_TESTS / "agent")]

import ray  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402

from daft_agent.fleet import FleetConfig, RobotSpec, learn_fleet  # noqa: E402
from support.fleet_envs import ToyRobot, toy_fleet_agent  # noqa: E402


def fleet() -> FleetConfig:
    """The two toy robots of the test, unpaced."""
    return FleetConfig(
        robots=(RobotSpec("robot-0", ToyRobot()), RobotSpec("robot-1", ToyRobot(operator_seed=1))),
        speed=0.0,
        chunk_steps=5,
        start_timeout_s=60.0,
    )


class _Checkpoints(BaseCallback):
    def __init__(self, run: Path) -> None:
        super().__init__()
        self.run = run

    def _on_step(self) -> bool:
        agent = self.model
        if agent.online_env_steps % 10 == 0:
            agent.save(self.run / "checkpoint.zip")
            if agent.online_env_steps >= 20 and not (self.run / "saved").exists():
                (self.run / "saved").write_text(str(agent.online_env_steps))
        return True


def main() -> None:
    """Train until killed."""
    run, address = Path(sys.argv[1]), sys.argv[2]
    path = ":".join([str(_TESTS), str(_TESTS / "agent")])
    ray.init(
        address=address,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}},
    )
    agent, _ = toy_fleet_agent(run / "store")
    learn_fleet(agent, 1_000_000, fleet(), callback=_Checkpoints(run))


if __name__ == "__main__":
    main()
