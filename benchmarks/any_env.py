"""Does DAFT learn on an env that is not DAFT's? (issue 20, acceptance 2)

Trains the dual-actor agent on ``ReachPlace-v0`` (tests/support/reach_place.py: a 4-d action in
bounds other than +-1, a Box observation, two tasks, a scripted plan) exactly as a user would run
``daft train --env support.reach_place:ReachPlace-v0 --expert support.reach_place:plan``: 20
demos per task from the plan, the warm-up, then ``--steps`` online steps with the plan as the
simulated operator, and 50 autonomous trials per task. Prints, per seed, the success per task,
the learning curve, the operator's share and the wall time, then the table over seeds.

Usage::

    python benchmarks/any_env.py --seeds 0 1 2 --steps 10000 --out /tmp/any_env

The target of the issue is >= 90 % on each task within 10,000 online steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # support.reach_place, as PYTHONPATH=tests gives it

ENV = "support.reach_place:ReachPlace-v0"
PLAN = "support.reach_place:plan"


def run(seed: int, steps: int, warmup: int, trials: int, out: Path) -> dict:
    from daft_agent.runs.config import RunConfig
    from daft_agent.runs.train import train_run

    config = RunConfig(
        env_id=ENV,
        expert=PLAN,
        name=f"seed{seed}",
        output_dir=out,
        online_steps=steps,
        warmup_steps=warmup,
        eval_trials=trials,
        eval_every=max(1, steps // 5),
        curve_trials=10,
        seed=seed,
        progress=False,
        with_commands=False,
    )
    t0 = time.time()
    results = train_run(config, echo=lambda line: None)
    results["wall_seconds"] = time.time() - t0
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=10_000, help="online steps (default 10,000)")
    p.add_argument("--warmup", type=int, default=2_000, help="warm-up updates (default 2,000)")
    p.add_argument("--trials", type=int, default=50, help="final trials per task (default 50)")
    p.add_argument("--out", type=Path, default=Path("/tmp/daft_any_env"))
    args = p.parse_args()
    rows = []
    for seed in args.seeds:
        r = run(seed, args.steps, args.warmup, args.trials, args.out)
        auto = {t: v["success_rate"] for t, v in r["autonomous"].items()}
        curve = [
            (c["online_step"], {t: round(100 * s) for t, s in c["autonomous_success"].items()})
            for c in r["learning_curve"]
        ]
        share = r["intervention_share"]["overall"]
        print(
            f"seed {seed}: "
            + ", ".join(f"{t} {100 * s:.0f}%" for t, s in auto.items())
            + f"; operator {100 * share:.1f}% of online steps; {r['wall_seconds']:.0f} s"
        )
        print(f"  curve (10 trials per task): {curve}")
        rows.append((seed, auto, share))
        (args.out / f"seed{seed}" / "summary.json").write_text(json.dumps(rows[-1], indent=1))
    tasks = list(rows[0][1])
    print("\n| seed | " + " | ".join(tasks) + " | operator share |")
    print("|---|" + "---|" * (len(tasks) + 1))
    for seed, auto, share in rows:
        cells = " | ".join(f"{100 * auto[t]:.0f}%" for t in tasks)
        print(f"| {seed} | {cells} | {100 * share:.1f}% |")
    ok = all(auto[t] >= 0.9 for _, auto, _ in rows for t in tasks)
    print(f"\n>= 90% on every task and seed within {args.steps} online steps: {ok}")


if __name__ == "__main__":
    main()
