"""Does a refactor change what a seeded lockstep ``daft train --tiny`` does? (issue 19, acceptance 5)

A lockstep run repeats step for step (``RunnerConfig.lockstep``), so two runs of the same code and
seed store the same episodes and write the same ``results.json``. This script reduces a finished
run to a fingerprint: a SHA-256 per stored episode of its task, kind, actions, intended actions,
policy actions, intervened flags, rewards and every observation array, in the order the episodes
were written (file names hold a timestamp, so contents are compared, not names), and
``results.json`` without its wall-clock fields. Record one before a change, one after, compare.

Usage::

    # run the reference command and write its fingerprint
    python benchmarks/same_run.py --run /tmp/ref --out ref.json
    # after the change: run again and compare with the reference
    python benchmarks/same_run.py --run /tmp/new --compare ref.json
    # fingerprint a run that already exists
    python benchmarks/same_run.py --run-dir /tmp/ref/ref --out ref.json

The run is ``daft train --tiny --no-progress --seed SEED --name same --output-dir DIR``, in a
child process with ``OMP_NUM_THREADS=1`` (the default of ``daft train``). Exit status 1 when the
fingerprints differ, naming the first difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: results.json fields that measure wall-clock time, not behaviour
TIMING_KEYS = ("train_seconds",)


def _hash_episode(ep: Any) -> str:
    h = hashlib.sha256()
    h.update(f"{ep.task}|{ep.kind}|{ep.success}|{len(ep)}".encode())
    arrays = {
        "actions": ep.actions,
        "intended_actions": ep.labels,
        "policy_actions": ep.policy_actions,
        "intervened": ep.intervened,
        "rewards": ep.rewards,
        "terminated": ep.terminated,
    } | {f"obs/{k}": v for k, v in sorted(ep.observations.items())}
    for name, arr in arrays.items():
        h.update(name.encode())
        h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))
    h.update("\n".join(ep.refinement_commands).encode())
    return h.hexdigest()


def _strip_timing(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_timing(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [_strip_timing(v) for v in obj]
    return obj


def fingerprint(run_dir: Path) -> dict[str, Any]:
    """Episode hashes (in write order) and results.json minus timing of one finished run."""
    from daft_env.store import EpisodeStore

    store = EpisodeStore(run_dir / "store")
    entries = sorted(store.index(), key=lambda e: e.path.rsplit("/", 1)[-1])
    episodes = [
        {"task": e.task, "kind": e.kind, "sha256": _hash_episode(store.load(store.root / e.path))}
        for e in entries
    ]
    results = json.loads((run_dir / "results.json").read_text())
    return {"episodes": episodes, "results": _strip_timing(results)}


def run_tiny(output_dir: Path, seed: int) -> Path:
    """Run the reference command in a child process; returns its run directory."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    daft = Path(sys.executable).with_name("daft")  # the console script of this environment
    cmd = [str(daft), "train", "--tiny", "--no-progress"]
    cmd += ["--seed", str(seed), "--name", "same", "--output-dir", str(output_dir)]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return output_dir / "same"


def first_difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """A sentence naming the first difference of two fingerprints, or None when they agree."""
    if len(a["episodes"]) != len(b["episodes"]):
        return f"{len(a['episodes'])} episodes stored, {len(b['episodes'])} in the reference"
    for i, (x, y) in enumerate(zip(a["episodes"], b["episodes"], strict=True)):
        if x != y:
            return f"episode {i} ({x['task']}/{x['kind']}) differs from the reference"
    if a["results"] != b["results"]:
        keys = sorted(
            k
            for k in a["results"].keys() | b["results"].keys()
            if a["results"].get(k) != b["results"].get(k)
        )
        return f"results.json differs in {keys}"
    return None


def main() -> int:
    """Fingerprint a run (run it first with --run); write it or compare it with a reference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--run", type=Path, help="run daft train --tiny into this output dir")
    where.add_argument("--run-dir", type=Path, help="fingerprint this finished run directory")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the fingerprint here")
    parser.add_argument("--compare", type=Path, help="a reference fingerprint to compare with")
    args = parser.parse_args()
    run_dir = run_tiny(args.run, args.seed) if args.run else args.run_dir
    fp = fingerprint(run_dir)
    if args.out:
        args.out.write_text(json.dumps(fp, indent=1) + "\n")
    print(f"{len(fp['episodes'])} episodes fingerprinted in {run_dir}")
    if args.compare:
        diff = first_difference(fp, json.loads(args.compare.read_text()))
        print("same episodes and results.json as the reference" if diff is None else diff)
        return 0 if diff is None else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
