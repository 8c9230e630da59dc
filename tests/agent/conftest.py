"""Fixtures of the agent tests: one local Ray for the whole pytest run (the fleet tests), and a
stand-in agent for the command tests (``daft evaluate``, the live view)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

_TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def local_ray():
    """Ray on this machine with 2 CPUs, started once per pytest run and shut down at its end.

    Only tests that ask for it pay Ray's start-up (about 10 s). The robot actors' processes import
    the test support modules (their env factories), so they get the tests' import path.
    """
    import ray

    path = os.pathsep.join([str(_TESTS), str(_TESTS / "agent"), os.environ.get("PYTHONPATH", "")])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}},
    )
    yield ray
    ray.shutdown()


class StandInAgent:
    """A zero policy in state mode (it strays, so the simulated operator speaks to it); it keeps
    the commands it was given."""

    backbone = "state"
    tasks = ("pickup",)

    def __init__(self):
        self.commands = []
        self.env = None

    def set_env(self, env):
        self.env = env

    def predict(self, observation, deterministic=False, command=None):
        self.commands.append(command)
        return np.zeros(7, dtype=np.float32), None


@pytest.fixture
def agent(monkeypatch, tmp_path):
    """``DualActorAgent.load`` returns a :class:`StandInAgent`; ``tmp_path/checkpoint.zip`` exists."""
    from daft_agent.agent import DualActorAgent

    stand_in = StandInAgent()
    monkeypatch.setattr(DualActorAgent, "load", classmethod(lambda cls, path: stand_in))
    (tmp_path / "checkpoint.zip").write_bytes(b"")
    return stand_in
