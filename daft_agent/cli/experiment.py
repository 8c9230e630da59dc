"""``daft experiment table1|curves|long-horizon``: the paper's experiments as commands.

``table1`` runs every Table I row (``--rows``) for ``--seeds`` seeds as one Ray Tune experiment
(trials across the local cores, or a cluster with ``--address``), each under the same env, the
same demonstrations per task, the same simulated operator and the same online budget. It writes
``<output>/table1.json``, ``table1.md`` (shaped like Table I) and ``table1.png``. A killed sweep
continues with ``--resume``: finished trials are kept. On a cluster (``--address``) every node
must see the output folder at the same path (a shared filesystem): trials read the shared
demonstrations and write their results there.

``curves`` draws Fig. 5 (success against online steps, DAFT and w/o dual, seed bands) from the
learning curves in ``table1.json``: ``curves.png`` and ``curves.json``.

``long-horizon`` (RQ4) runs a trained multi-task checkpoint on ``BoltLongHorizon-Sim-v0`` with
1-4 bolts, autonomously and with commands: ``long_horizon.json`` and ``long_horizon.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from daft_env.durable import write_text
from hardware.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``experiment`` sub-commands and their options."""
    sub = parser.add_subparsers(dest="experiment", metavar="experiment", required=True)
    t = sub.add_parser("table1", help="Table I: every baseline, mean ± std over seeds")
    t.add_argument("--seeds", type=int, default=2, help="seeds per row (0, 1, ...)")
    t.add_argument("--rows", default=None, help="comma-separated rows (default: all six)")
    t.add_argument("--tiny", action="store_true", help="a few hundred steps, tiny nets, 1 seed")
    t.add_argument("--steps", type=int, default=None, help="online steps per trial")
    t.add_argument("--eval-trials", type=int, default=None, help="final trials per task")
    t.add_argument("--eval-every", type=int, default=None, help="steps between curve points")
    t.add_argument("--address", default=None, help="Ray cluster address (default: local)")
    t.add_argument("--cpus-per-trial", type=float, default=1.0)
    t.add_argument("--resume", action="store_true", help="continue a killed sweep")
    t.add_argument("--output-dir", default="results")
    c = sub.add_parser("curves", help="Fig. 5: success vs online steps, DAFT and w/o dual")
    c.add_argument("--output-dir", default="results", help="where table1.json is")
    lh = sub.add_parser("long-horizon", help="RQ4: success at 1-4 bolts, autonomous and talking")
    lh.add_argument("--checkpoint", required=True, help="a daft train checkpoint.zip")
    lh.add_argument("--bolts", default="1,2,3,4", help="comma-separated bolt counts (1-4)")
    lh.add_argument("--trials", type=int, default=20, help="episodes per bolt count")
    lh.add_argument("--no-commands", action="store_true", help="autonomous column only")
    lh.add_argument("--seed", type=int, default=30_000, help="first evaluation seed")
    lh.add_argument("--output-dir", default="results")


def _config(args: argparse.Namespace) -> Any:
    from daft_agent.experiments.runner import ExperimentConfig

    return ExperimentConfig.of(
        tiny=args.tiny,
        online_steps=args.steps,
        eval_trials=args.eval_trials,
        eval_every=args.eval_every,
    )


def _table1(args: argparse.Namespace) -> int:
    from daft_agent.baselines import BASELINES
    from daft_agent.experiments import table1
    from daft_agent.experiments.runner import run_grid, tasks_of
    from daft_env.tasks import INSTRUCTIONS

    rows = list(BASELINES) if args.rows is None else [r.strip() for r in args.rows.split(",")]
    seeds = 1 if args.tiny else args.seeds
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1; got {args.seeds}")
    cfg = _config(args)
    out = Path(args.output_dir)
    t0 = time.time()
    trials = run_grid(
        rows,
        list(range(seeds)),
        cfg,
        out,
        "table1",
        resume=args.resume,
        address=args.address,
        cpus_per_trial=args.cpus_per_trial,
    )
    tasks = tasks_of(cfg.env_id, cfg.obs_mode)
    summary = table1.summarise(trials, tasks)
    md = table1.markdown(summary, tasks, dict(INSTRUCTIONS))
    result = {
        "experiment": cfg.as_dict(),
        "rows": rows,
        "seeds": list(range(seeds)),
        "wall_seconds": time.time() - t0,
        "summary": summary,
        "trials": trials,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "table1.json", json.dumps(result, indent=2) + "\n")
    write_text(out / "table1.md", md)
    table1.plot(summary, tasks, out / "table1.png")
    print(md)
    print(f"wrote {out / 'table1.json'}, {out / 'table1.md'}, {out / 'table1.png'}")
    return 0


def _curves(args: argparse.Namespace) -> int:
    from daft_agent.baselines import BASELINES
    from daft_agent.experiments import curves

    out = Path(args.output_dir)
    source = out / "table1.json"
    if not source.exists():
        raise ConfigError(f"no {source}; run daft experiment table1 --output-dir {out} first")
    data = curves.curves(json.loads(source.read_text())["trials"])
    write_text(out / "curves.json", json.dumps(data, indent=2) + "\n")
    curves.plot(data, {r: BASELINES[r][1] for r in data}, out / "curves.png")
    for row, c in data.items():
        shown = ", ".join(f"{s}: {m:.0f}%" for s, m in zip(c["step"], c["mean"], strict=True))
        print(f"{BASELINES[row][1]}: {shown}")
    print(f"wrote {out / 'curves.json'}, {out / 'curves.png'}")
    return 0


def _obs_mode(space: Any) -> str:
    """The env observation mode a policy was trained in (from its observation space)."""
    keys = set(space.spaces)
    pixels = "head_rgb" in keys
    return "pixels+state" if pixels and "state" in keys else ("pixels" if pixels else "state")


def _long_horizon(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from daft_agent.agent import DualActorAgent
    from daft_agent.experiments import long_horizon as lh

    try:
        bolts = [int(b) for b in args.bolts.split(",")]
    except ValueError as exc:
        raise ConfigError(
            f"--bolts takes comma-separated integers 1-4; got {args.bolts!r}"
        ) from exc
    probe = gym.make(lh.ENV_ID, obs_mode="state")
    agent = DualActorAgent.load(args.checkpoint, env=probe)
    mode = _obs_mode(agent.observation_space)
    probe.close()
    t0 = time.time()
    result = lh.evaluate_lengths(
        agent, mode, bolts, args.trials, args.seed, with_commands=not args.no_commands
    )
    result |= {"checkpoint": str(args.checkpoint), "obs_mode": mode, "paper": lh.PAPER}
    result["wall_seconds"] = time.time() - t0
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "long_horizon.json", json.dumps(result, indent=2) + "\n")
    md = lh.markdown(result)
    write_text(out / "long_horizon.md", md)
    print(md)
    print(f"wrote {out / 'long_horizon.json'}, {out / 'long_horizon.md'}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``daft experiment``; returns the exit status."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    handlers = {"table1": _table1, "curves": _curves, "long-horizon": _long_horizon}
    return handlers[args.experiment](args)
