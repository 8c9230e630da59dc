"""Fixtures of the agent tests: one local Ray for the whole pytest run (the fleet tests)."""

from __future__ import annotations

import os
from pathlib import Path

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
