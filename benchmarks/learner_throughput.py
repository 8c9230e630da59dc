"""Full dual-actor updates/s at batch 256 in ``state`` mode vs SB3 SAC with the same network sizes.

Both are measured in the same run on the same synthetic data (ToyBoltEnv spaces; state mode), one
torch thread. Usage: ``python benchmarks/learner_throughput.py [--seconds 20] [--batch 256]``.
Target: >= 40 dual-actor (online) updates/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3 import SAC  # noqa: E402

# The toy env and its operator are test support (tests/support), not product code.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.toy_env import ToyBoltEnv, fill_store_with_demos, toy_hil_env  # noqa: E402

from daft_agent.agent import DualActorAgent  # noqa: E402
from daft_env.store import EpisodeStore  # noqa: E402


def rate(fn, seconds: float) -> float:
    fn()  # warm caches
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--batch", type=int, default=256)
    args = p.parse_args()
    torch.set_num_threads(1)

    store = EpisodeStore(tempfile.mkdtemp(prefix="daft-bench-"))
    fill_store_with_demos(store, ToyBoltEnv(), 20)
    env = toy_hil_env(seed=0)
    agent = DualActorAgent(
        env=env, store=store, warmup_steps=0, batch_size=args.batch, seed=0, min_rollouts_per_task=1
    )
    agent.warmup(1)
    agent.learn(600)  # rollouts + interventions so the online sampler and the refinement actor run
    hidden = agent.policy.net.actor_hidden
    online = rate(lambda: agent.learner.update("online"), args.seconds)
    warm = rate(lambda: agent.learner.update("warmup"), args.seconds)

    sac = SAC(
        "MultiInputPolicy",
        ToyBoltEnv(),
        batch_size=args.batch,
        learning_starts=0,
        policy_kwargs={"net_arch": list(hidden)},
        seed=0,
        verbose=0,
    )
    sac.learn(600)
    sac_rate = rate(lambda: sac.train(gradient_steps=1, batch_size=args.batch), args.seconds)

    print(
        f"batch {args.batch}, hidden {hidden}, {agent.policy.net.n_critics} critics per task x {len(agent.tasks)} tasks"
    )
    print(f"dual-actor online update (critics + primary + refinement): {online:6.1f} updates/s")
    print(f"dual-actor warm-up update (Cal-QL critics + primary):      {warm:6.1f} updates/s")
    print(f"SB3 SAC update (same widths):                              {sac_rate:6.1f} updates/s")
    print(
        f"ratio dual-actor online / SAC: {online / sac_rate:.2f}  (target >= 40 updates/s: {'OK' if online >= 40 else 'BELOW'})"
    )
    print(f"load average while measuring: {np.round(os.getloadavg(), 2).tolist()}")


if __name__ == "__main__":
    main()
