"""Scripted-expert success rates (issue 2, acceptance item 3).

Runs each task's expert (noise off) on N randomised episodes (default 100) and the long-horizon
expert on 4-bolt episodes, and prints success counts, mean/max steps per episode.

    python benchmarks/expert_success.py [--episodes 100] [--lh-episodes 100] [--n-bolts 4]
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
    args = parser.parse_args()

    for task in ("upright", "pickup", "assemble"):
        env = BoltEnv(task=task, obs_mode="state")
        expert = make_expert(task)
        t0 = time.perf_counter()
        res = [run_expert_episode(env, expert, seed=args.seed + s) for s in range(args.episodes)]
        wins = [r for r in res if r["success"]]
        steps = [r["steps"] for r in wins] or [0]
        print(
            f"{task:9s}: {len(wins):3d}/{args.episodes} succeeded within 50 steps; "
            f"steps mean {np.mean(steps):.1f} max {max(steps)}; "
            f"failed seeds {[args.seed + s for s, r in enumerate(res) if not r['success']][:10]}; "
            f"{time.perf_counter() - t0:.1f} s"
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
