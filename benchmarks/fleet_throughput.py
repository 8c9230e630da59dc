"""Fleet throughput: 1 and 2 paced sim robots against one learner, in the same run (issue 11).

One :class:`~daft_agent.agent.DualActorAgent` (state preset networks, BoltMultiTask-Sim-v0 in
state mode, the simulated operator under the intervention wrapper) trains online first with one
robot actor on a local Ray, then with two, each robot paced at ``--speed`` x 10 Hz: two training
runs (:func:`~daft_agent.runs.train.train_run`), the second resuming the first. For each
phase it prints

* env steps per wall-clock second, all robots together, measured from the first returned chunk
  to the last (actor start-up excluded);
* the learner's achieved updates per env step over the same window, against the configured
  ``utd_ratio``.

Target: two robots give >= 1.8x one robot's steps/s with the UTD held. At 10 Hz the env is not
the bottleneck, so this measures whether one learner keeps up with two robots (and whether the
``max_update_lag`` backpressure holds them back).

Usage: ``python benchmarks/fleet_throughput.py [--seconds 30] [--utd 1.0] [--batch-size 256]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402

from daft_agent.fleet import ensure_ray  # noqa: E402
from daft_agent.runs.config import RunConfig  # noqa: E402
from daft_agent.runs.train import train_run  # noqa: E402

ENV_ID = "BoltMultiTask-Sim-v0"


class _Window(BaseCallback):
    """Times the run from the first env step after the learner's first online update to the last."""

    def _on_training_start(self) -> None:
        self.t0 = self.t1 = None
        self.steps0 = self.steps1 = 0
        self.updates0 = self.updates1 = 0

    def _on_step(self) -> bool:
        agent = self.model
        now = time.perf_counter()
        if self.t0 is None and agent.online_updates_done == 0:
            return True  # the learner is not ready yet (min_rollouts_per_task): not the UTD's
        if self.t0 is None:
            self.t0, self.steps0, self.updates0 = (
                now,
                agent.num_timesteps,
                agent.online_updates_done,
            )
        self.t1, self.steps1, self.updates1 = now, agent.num_timesteps, agent.online_updates_done
        return True

    def rates(self) -> tuple[float, float]:
        """(env steps per second, updates per env step) over the window."""
        steps = self.steps1 - self.steps0
        return steps / max(1e-9, self.t1 - self.t0), (self.updates1 - self.updates0) / max(1, steps)


def main() -> None:
    """Run the two phases and print their rates and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="paced seconds per phase")
    parser.add_argument("--speed", type=float, default=1.0, help="multiple of 10 Hz per robot")
    parser.add_argument("--utd", type=float, default=1.0, help="learner updates per env step")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--demos", type=int, default=2, help="expert demos per task")
    args = parser.parse_args()

    ensure_ray(num_cpus=os.cpu_count())
    out = tempfile.mkdtemp(prefix="fleet-bench-")
    rows, steps = [], 0
    for n in (1, 2):
        steps += int(n * args.seconds * 10 * args.speed)
        window = _Window()
        # the second phase resumes the first one's agent (its checkpoint and store)
        config = RunConfig(
            env_id=ENV_ID,
            name="fleet",
            output_dir=out,
            online_steps=steps,
            warmup_steps=20,
            demos=args.demos,
            eval_every=0,
            utd=args.utd,
            batch_size=args.batch_size,
            overrides=("min_rollouts_per_task=10", "lockstep=False"),
            progress=False,
            skip_eval=True,
            resume=n > 1,
            actors=n,
            speed=args.speed,
        )
        train_run(config, callbacks=[window], echo=lambda line: None)
        rate, utd = window.rates()
        rows.append((n, rate, utd))
        print(f"{n} robot(s): {rate:6.2f} env steps/s, {utd:.3f} updates per env step")
    (_, one, _), (_, two, utd2) = rows
    print(
        f"2 robots / 1 robot: {two / one:.2f}x steps/s (target >= 1.8x) with "
        f"{utd2:.3f} updates per env step (configured utd_ratio {args.utd})"
    )


if __name__ == "__main__":
    main()
