"""Where and why the simulated operator takes over a trained policy (issue 17's diagnostic).

For each task it runs the checkpoint's policy twice on the same scenes: alone (autonomous
success, as the final evaluation counts it) and under the need-based operator in takeover mode,
as in training (stochastic primary actions, the operator's cap lifted so that it shows every
step where it judges help needed). It prints per task the autonomous success, the share of
steps the operator took, the reasons that started its takeovers, and the mean deviation terms
(translation, rotation, gripper) on the steps that started a deviation takeover. A policy that
succeeds alone should be left alone: a high share on such a task means the trigger fires on
differences that do not matter.

    python benchmarks/operator_need.py runs/state/checkpoint.zip [--episodes 20] [--seed 30000]
        [--set threshold=0.3 --set persist_steps=2]
"""

from __future__ import annotations

import argparse
import ast
import os
from collections import Counter

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np

import daft_env  # noqa: F401
from daft_agent.agent import DualActorAgent
from daft_agent.evaluation import run_trials
from daft_agent.runs.envs import operated
from daft_env.operator import SimulatedOperator
from daft_env.tasks import TASK_NAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=30_000)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, _, raw = item.partition("=")
        overrides[key] = ast.literal_eval(raw)

    env = gym.make("BoltMultiTask-Sim-v0", obs_mode="state")
    agent = DualActorAgent.load(args.checkpoint, env=env)
    print(f"{'task':9s} {'auto':>5s} {'share':>6s}  reasons / deviation terms at a deviation start")
    for task in TASK_NAMES:
        auto = run_trials(agent, env, task, args.episodes, seed=args.seed).success_rate
        op = SimulatedOperator(env, target_rate=1.0, seed=args.seed, **overrides)
        wrapper = operated(env, op)
        terms: list[np.ndarray] = []
        steps = intervened = 0
        for k in range(args.episodes):
            obs, _ = wrapper.reset(seed=args.seed + k, options={"task": task})
            done = False
            while not done:
                action, _ = agent.predict(obs, deterministic=False)
                before = op.takeovers
                obs, _, term, trunc, info = wrapper.step(action)
                done = term or trunc
                steps += 1
                intervened += info["intervened"]
                if op.takeovers > before and op.last_reason == "deviation":
                    p, e = np.clip(info["policy_action"], -1, 1), op.last_plan
                    terms.append(
                        np.array(
                            [
                                np.linalg.norm(p[:3] - e[:3]),
                                op.config.rot_weight * np.linalg.norm(p[3:6] - e[3:6]),
                                op.config.grip_weight * float((p[6] > 0) != (e[6] > 0)),
                            ]
                        )
                    )
        mean_terms = np.mean(terms, axis=0) if terms else np.zeros(3)
        reasons = dict(Counter(op.reasons).most_common())
        print(
            f"{task:9s} {100 * auto:4.0f}% {100 * intervened / steps:5.1f}%  {reasons} / "
            f"xyz {mean_terms[0]:.2f} rot {mean_terms[1]:.2f} grip {mean_terms[2]:.2f}"
        )
    env.close()


if __name__ == "__main__":
    main()
