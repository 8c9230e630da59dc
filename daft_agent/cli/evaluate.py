"""Evaluate a DualActorAgent checkpoint and print the paper's Table I (success %, episode length).

The autonomous columns run the policy alone; ``--with-commands`` adds the columns where the
simulated operator speaks refinement commands at test time (sim only). Example::

    daft evaluate runs/state/checkpoint.zip --trials 25 --with-commands
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hardware.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``daft evaluate``."""
    parser.add_argument(
        "checkpoint", help="a checkpoint.zip written by daft train or DualActorAgent.save"
    )
    parser.add_argument(
        "--env", default="BoltMultiTask-Sim-v0", help="env id (default: BoltMultiTask-Sim-v0)"
    )
    parser.add_argument(
        "--obs-mode",
        default=None,
        help="observation mode (default: from the checkpoint's backbone)",
    )
    parser.add_argument("--trials", type=int, default=25, help="trials per task (default: 25)")
    parser.add_argument("--seed", type=int, default=10_000)
    parser.add_argument(
        "--with-commands",
        action="store_true",
        help="also evaluate with the simulated operator's spoken commands",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``daft evaluate``; returns the exit status."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import gymnasium as gym
    import torch

    import daft_env  # noqa: F401
    from daft_agent.agent import DualActorAgent
    from daft_agent.errors import CheckpointError
    from daft_agent.evaluation import evaluate_tasks, format_table

    torch.set_num_threads(1)
    if args.trials < 1:
        raise ConfigError("--trials must be >= 1")
    path = Path(args.checkpoint)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    agent = DualActorAgent.load(path)
    obs_mode = args.obs_mode or ("pixels" if agent.policy.net.backbone == "pixels" else "state")
    env = gym.make(args.env, obs_mode=obs_mode)
    agent.set_env(env)
    tasks = list(agent.tasks)
    auto = evaluate_tasks(agent, env, tasks, args.trials, seed=args.seed)
    talk = None
    if args.with_commands:
        from daft_env.operator import SimulatedOperator
        from daft_env.wrappers import InterventionWrapper

        base = gym.make(args.env, obs_mode=obs_mode)
        talk = evaluate_tasks(
            agent,
            InterventionWrapper(base, SimulatedOperator(base, mode="speak")),
            tasks,
            args.trials,
            seed=args.seed,
            use_commands=True,
        )
    print(format_table(auto, talk))
    return 0
