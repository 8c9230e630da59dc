"""What the live view costs the control loop (issue 21, acceptance item 2).

Times the step of a state-mode operated env (the training recipe: a simulated operator taking
over through the InterventionWrapper, a random policy so it takes over often) without streaming
and with every step streamed to Rerun (:class:`daft_env.display.StepStream`, into a recording:
the same Rerun calls as a live viewer, made by its logging process). The two alternate episode by
episode (ABBA order) on the same seeds in one process, so drift on a shared machine hits both
alike. Prints the median step time of each and their ratio (the target: <= 1.10, no step
dropped), the median of the per-round ratios, and the CPU time per step of the control loop's
process and of the logging process, to show where the cost sits.

    python benchmarks/display_cost.py [--rounds 30] [--address HOST:PORT]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np

import daft_env  # noqa: F401
from daft_agent.runs.envs import operated
from daft_env.display import DisplayWrapper, StepStream


def operated_env() -> gym.Env:
    base = gym.make("BoltMultiTask-Sim-v0", obs_mode="state")
    return operated(base, target_rate=0.15, seed=0)


def run(env: gym.Env, episodes: int, seed: int) -> list[float]:
    """Per-step wall times of ``episodes`` episodes (policy, operator, env, display)."""
    rng = np.random.default_rng(seed)
    times = []
    tasks = ("upright", "pickup", "assemble")
    for k in range(episodes):
        env.reset(seed=seed + k, options={"task": tasks[k % 3]})
        done = False
        while not done:
            t = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 7))
            times.append(time.perf_counter() - t)
            done = terminated or truncated
    return times


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30, help="ABBA rounds of one episode each")
    parser.add_argument("--address", default=None, help="also stream to a viewer there")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        plain = operated_env()
        stream = StepStream.open(address=args.address, record_path=Path(tmp) / "bench.rrd")
        shown = DisplayWrapper(operated_env(), stream)
        run(plain, 2, 0), run(shown, 2, 0)  # warm-up
        times: dict[str, list[float]] = {"off": [], "on": []}
        cpu = {"off": 0.0, "on": 0.0}
        worker = 0.0
        ratios = []
        for r in range(args.rounds):
            seed = 1000 * (r + 1)
            medians = {}
            for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                w0, c0 = cpu_seconds(stream.worker_pid), time.process_time()
                t = run(plain if mode == "off" else shown, 1, seed)
                cpu[mode] += time.process_time() - c0
                if mode == "on":
                    worker += cpu_seconds(stream.worker_pid) - w0
                times[mode] += t
                medians[mode] = float(np.median(t))
            ratios.append(medians["on"] / medians["off"])
        stream.close()
        size = (Path(tmp) / "bench.rrd").stat().st_size
        plain.close()
        shown.close()
    off, on = times["off"], times["on"]
    t_off, t_on = float(np.median(off)), float(np.median(on))
    print(f"state-mode operated step, {len(off)} / {len(on)} steps without / with streaming")
    print(f"  without streaming: median {1e3 * t_off:.3f} ms, mean {1e3 * np.mean(off):.3f} ms")
    print(f"  with streaming:    median {1e3 * t_on:.3f} ms, mean {1e3 * np.mean(on):.3f} ms")
    print(
        f"  CPU per step: control loop {1e6 * cpu['off'] / len(off):.0f} us without, "
        f"{1e6 * cpu['on'] / len(on):.0f} us with; logging process {1e6 * worker / len(on):.0f} us"
    )
    print(
        f"  streamed {stream.logged} items, dropped {stream.dropped} steps; recording "
        f"{size / 1e6:.1f} MB"
    )
    print(f"median of per-round ratios: {np.median(ratios):.3f}")
    print(f"ratio (median with / without): {t_on / t_off:.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
