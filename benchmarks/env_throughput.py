"""Environment throughput (issue 2, acceptance item 6).

Prints env steps/s in ``state`` and ``pixels`` modes (both cameras rendered every step), the raw
``mj_step`` rate of the same model measured in the same run, and the fraction of ``state``-mode
time spent inside physics. Targets on the 2-core CI machine: state >= 400 steps/s with >= 75 % of
its time in physics; pixels >= 25 steps/s.

    python benchmarks/env_throughput.py [--steps 2000] [--pixel-steps 200]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import mujoco
import numpy as np

from daft_env import BoltEnv


def _rollout(env: BoltEnv, steps: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-0.5, 0.5, size=(steps, 7)).astype(np.float32)
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for k in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[k])
        if terminated or truncated:
            env.reset()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--pixel-steps", type=int, default=200)
    args = parser.parse_args()

    env = BoltEnv(task="multi", obs_mode="state")
    backend = env.unwrapped.backend
    model, data = backend.model, backend.data

    # Time spent inside mj_step during state-mode stepping (resets included in the wall time).
    physics = {"t": 0.0, "n": 0}
    raw_step = mujoco.mj_step

    def timed_step(m, d, nstep=1):
        t = time.perf_counter()
        raw_step(m, d, nstep)
        physics["t"] += time.perf_counter() - t
        physics["n"] += nstep

    _rollout(env, 50)  # warm-up
    mujoco.mj_step = timed_step
    try:
        wall = _rollout(env, args.steps)
    finally:
        mujoco.mj_step = raw_step
    state_rate = args.steps / wall
    frac = physics["t"] / wall

    # Raw mj_step rate of the same model and state distribution, same process.
    env.reset(seed=1)
    n_raw = args.steps * backend.substeps // 4
    t0 = time.perf_counter()
    raw_step(model, data, n_raw)
    raw_rate = n_raw / (time.perf_counter() - t0)
    env.close()

    pix = BoltEnv(task="multi", obs_mode="pixels")
    _rollout(pix, 5)  # creates the renderers
    pix_wall = _rollout(pix, args.pixel_steps)
    pix_rate = args.pixel_steps / pix_wall
    pix.close()

    per_env_step = backend.substeps
    print(
        f"physics: timestep {model.opt.timestep * 1e3:.1f} ms, {per_env_step} mj_steps per env step"
    )
    print(
        f"raw mj_step rate             : {raw_rate:10.0f} steps/s "
        f"(= {raw_rate / per_env_step:.0f} env steps/s if physics were free of overhead)"
    )
    print(
        f"state  mode                  : {state_rate:10.1f} env steps/s "
        f"(target >= 400; ratio to target {state_rate / 400:.2f})"
    )
    print(f"state  mode time in physics  : {100 * frac:9.1f} %  (target >= 75 %)")
    print(
        f"state  mode vs raw physics   : {state_rate * per_env_step / raw_rate:10.2f} of the raw rate"
    )
    print(
        f"pixels mode (both cameras)   : {pix_rate:10.1f} env steps/s "
        f"(target >= 25; ratio to target {pix_rate / 25:.2f})"
    )


if __name__ == "__main__":
    main()
