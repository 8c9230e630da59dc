"""Warm up and fine-tune the dual-actor agent with the simulated operator, then evaluate.

Steps: (1) collect 20 expert demos per task if the store has none, (2) offline warm-up (Cal-QL +
consistency BC), (3) online training with the simulated operator's takeovers and talk-and-tweak
labels, with a learning curve (autonomous trials every ``--eval-every`` online steps), (4) 50 trials
per task in two conditions, nominal and under a hidden perception error, each autonomous and with
the operator's spoken refinement commands, printed as the paper's Table I, and the realised
intervention share of the online phase beside the operator's ``target_rate``
(:mod:`daft_agent.runs.report` says what each figure is). Writes ``runs/<name>/checkpoint.zip``,
``runs/<name>/tb`` (TensorBoard), ``runs/<name>/results.json``; the store defaults to
``runs/<name>/store``.

``--train-perception-error P`` trains with the hidden perception error on a share P of the training
episodes (default 0: off), so the operator's commands carry what the policy's observation lacks.

The run itself is :func:`daft_agent.runs.train.train_run`; its settings and their defaults are
:class:`daft_agent.runs.config.RunConfig`.

``--resume`` continues a run from its checkpoint and store (step counts, buffers, optimisers) with no
prompt. Examples::

    daft train                       # preset state: BoltMultiTask-Sim-v0, privileged state
    daft train --preset pixels --tiny
    daft train --preset vla --backbone smolvla:models/smolvlm   # frozen VLA, cached embeddings
    daft train --name exp1 --resume
    daft train --train-perception-error 0.5 --operator-rate 0.1
    daft train --actors 2            # two robot actors on a local Ray, one learner
    daft train --robots A,B --address auto   # robots A and B (daft_env.robots) on a Ray cluster
    daft train --env my_robot.envs:Reach-v0 --expert my_robot.plans:reach --steps 10000

Your own env (``--env module:EnvId``): its plan ``--expert module:callable`` is the demonstrator
and the simulated operator (:mod:`daft_env.plan_operator`), ``--tasks`` picks its tasks; the bolt
cell's options (observation modes, the perception error, chained starts, the fleet) are refused.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from daft_agent.runs.config import CHECKPOINT_EVERY, OPERATOR_RATE, PRESETS, RunConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``daft train``."""
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="state",
        help="configuration preset (default: state)",
    )
    parser.add_argument(
        "--env",
        default=None,
        help="env id, or module:EnvId for your own env (default: the preset's, "
        "BoltMultiTask-Sim-v0)",
    )
    parser.add_argument(
        "--expert",
        default=None,
        metavar="MODULE:CALLABLE",
        help="your env's scripted plan (observation -> action): its demonstrator and simulated "
        "operator",
    )
    parser.add_argument(
        "--tasks", default=None, help="comma-separated tasks of your env (default: all of its)"
    )
    parser.add_argument(
        "--backbone",
        default=None,
        metavar="NAME:PATH",
        help="the frozen VLA backbone of --preset vla and its local checkpoint directory, e.g. "
        "smolvla:models/smolvlm (see daft embed)",
    )
    parser.add_argument(
        "--name", default=None, help="run name under --output-dir (default: the preset name)"
    )
    parser.add_argument(
        "--output-dir", default="runs", help="where runs are written (default: runs)"
    )
    parser.add_argument(
        "--store", default=None, help="episode store directory (default: <run>/store)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="online env steps in total (default: 15000)"
    )
    parser.add_argument(
        "--warmup-steps", type=int, default=None, help="offline warm-up updates (default: 2000)"
    )
    parser.add_argument(
        "--demos",
        type=int,
        default=None,
        help="expert demos per task to collect into an empty store (default: 20; 2 with --tiny)",
    )
    parser.add_argument(
        "--eval-trials",
        type=int,
        default=None,
        help="final evaluation trials per task and column, in each condition (default: 50; 2 "
        "with --tiny)",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help="online steps between learning-curve rows (default: 2500; 100 with --tiny; 0: none)",
    )
    parser.add_argument(
        "--curve-trials",
        type=int,
        default=None,
        help="autonomous trials per task in each learning-curve row (default: 20; 1 with --tiny)",
    )
    parser.add_argument(
        "--operator-rate",
        type=float,
        default=OPERATOR_RATE,
        help="the simulated operator's target_rate, the share of intervened steps (default: 0.15)",
    )
    parser.add_argument(
        "--train-perception-error",
        type=float,
        default=0.0,
        metavar="P",
        help="share of training episodes under the hidden perception error, 0-1 (state preset; "
        "default: 0, off)",
    )
    parser.add_argument(
        "--perception-error",
        type=float,
        default=None,
        metavar="METRES",
        help="largest offset of the perception error, in training and in the perturbed "
        "condition (default: 5-15 mm)",
    )
    parser.add_argument(
        "--chained-starts",
        type=float,
        default=0.0,
        metavar="P",
        help="share of pickup and assemble episodes (demos and training) that start where a "
        "long-horizon chain leaves the bolt, for BoltLongHorizon (multi-task env; default: 0)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--utd", type=float, default=None, help="learner updates per env step")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument(
        "--resume", action="store_true", help="continue from <run>/checkpoint.zip and the store"
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=CHECKPOINT_EVERY,
        help="env steps between checkpoints",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="tiny sizes for CI: a few hundred steps, small networks"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one DualActorAgent keyword argument or network setting (policy_kwargs) "
        "with a Python literal, e.g. --set normalize_q=True --set critic_hidden=(512,512); "
        "repeatable",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--skip-eval", action="store_true", help="train only")
    fleet = parser.add_argument_group("fleet (Ray): one learner, several robot actors")
    fleet.add_argument(
        "--actors",
        type=int,
        default=None,
        help="robot actors on Ray (default: one in-process loop)",
    )
    fleet.add_argument(
        "--robots",
        default=None,
        help="comma-separated robot calibration presets, one actor each (daft_env.robots: A, B)",
    )
    fleet.add_argument(
        "--address", default=None, help="Ray cluster to join (default: start Ray on this machine)"
    )
    fleet.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="robot pacing as a multiple of 10 Hz (0 = unpaced; default 1)",
    )
    from daft_agent.cli.view import add_display_arguments

    add_display_arguments(parser)


#: RunConfig fields whose flag has another name
_FLAG_OF = {"env_id": "env", "online_steps": "steps"}


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of parsed ``daft train`` flags."""
    flags = {f.name: _FLAG_OF.get(f.name, f.name) for f in fields(RunConfig)}
    values = {name: getattr(args, flag) for name, flag in flags.items() if hasattr(args, flag)}
    return RunConfig(**values | {"overrides": tuple(args.set), "progress": not args.no_progress})


def run(args: argparse.Namespace) -> int:
    """Run ``daft train``; returns the exit status."""
    from daft_agent.cli.view import open_display
    from daft_agent.runs.train import train_run

    display = open_display(args)  # disabled unless --display / --display-address / --record
    try:
        train_run(config_from_args(args), display=display)
    finally:
        display.close()
    return 0
