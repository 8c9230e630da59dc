"""Scripted-expert success rates, and their robustness to action noise.

Runs each task's expert on N randomised episodes (default 100) at each ``--noise`` level (Gaussian
noise on the six motion components, normalised units; 0.1 is 2 mm per step), and the long-horizon
expert on 4-bolt episodes, and prints success counts, mean/max steps per episode. An expert that
is also the operator's plan and the demonstrator should succeed at noise 0.1 as often as at 0:
a law that switches on millimetre thresholds does not (issue 17).

    python benchmarks/expert_success.py [--episodes 100] [--noise 0 0.1] [--tasks assemble]
        [--lh-episodes 100] [--n-bolts 4]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from daft_env import BoltEnv
from daft_env.experts import make_expert, run_expert_episode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--lh-episodes", type=int, default=100)
    parser.add_argument("--n-bolts", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0])
    parser.add_argument("--tasks", nargs="+", default=["upright", "pickup", "assemble"])
    args = parser.parse_args()

    for task in args.tasks:
        env = BoltEnv(task=task, obs_mode="state")
        for noise in args.noise:
            t0 = time.perf_counter()
            res = []
            for s in range(args.episodes):
                expert = make_expert(task, noise=noise, seed=args.seed + s)
                res.append(run_expert_episode(env, expert, seed=args.seed + s))
            wins = [r for r in res if r["success"]]
            steps = [r["steps"] for r in wins] or [0]
            failed = [args.seed + s for s, r in enumerate(res) if not r["success"]]
            print(
                f"{task:9s} noise {noise:.2f}: {len(wins):3d}/{args.episodes} succeeded within 50 "
                f"steps; steps mean {np.mean(steps):.1f} max {max(steps)}; failed seeds "
                f"{failed[:10]}; {time.perf_counter() - t0:.1f} s"
            )
        env.close()

    if args.lh_episodes:
        env = BoltEnv(task="long_horizon", obs_mode="state", n_bolts=args.n_bolts)
        expert = make_expert("long_horizon")
        t0 = time.perf_counter()
        ops = []
        for s in range(args.lh_episodes):
            res = run_expert_episode(env, expert, seed=args.seed + s)
            ops.append(res["info"]["operations_completed"])
        total = 3 * args.n_bolts
        done = sum(o == total for o in ops)
        print(
            f"long-horizon ({args.n_bolts} bolts, {total} operations): {done:3d}/{args.lh_episodes} "
            f"completed; operations completed mean {np.mean(ops):.1f}; histogram "
            f"{np.bincount(ops, minlength=total + 1).tolist()}; {time.perf_counter() - t0:.1f} s"
        )
        env.close()


if __name__ == "__main__":
    main()
