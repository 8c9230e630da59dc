"""Evaluate a DualActorAgent checkpoint and print the paper's Table I (success %, episode length).

The autonomous columns run the policy alone. ``--with-commands`` adds the columns where someone
speaks refinement commands at test time: the simulated operator in speak mode (sim ids), or, with
``--device keyboard``, you: press ``:``, type a command such as ``move left`` and press Enter (Esc
cancels, ``x`` is the emergency stop); motion keys never take over. A typed command applies until
the next one. This works on sim and real ids alike; the table counts the commands given.

``--perturbed`` adds a second condition with a hidden perception error (sim ids, state mode): the
policy sees the bolt and the fixture a few mm to 1.5 cm off, the simulated operator sees the truth.
``--json PATH`` writes the results in the ``results.json`` layout of ``daft train``. ``--video
DIR`` also writes one MP4 per task (head and wrist cameras, the spoken command and the outcome
drawn; sim ids). ``--display`` streams every trial to a Rerun viewer and ``--record PATH.rrd``
to a recording (robot ``0``; each episode's start names its condition and column). Examples::

    daft evaluate runs/state/checkpoint.zip --trials 25 --with-commands --perturbed
    daft evaluate runs/state/checkpoint.zip --trials 3 --device keyboard --render
    daft evaluate runs/reach/checkpoint.zip --env my_robot.envs:Reach-v0 --expert my_robot.plans:reach \
        --with-commands

Another env than DAFT's (``--env module:EnvId``): the nominal condition only, under
:class:`~daft_env.adapters.DaftSpaces`; the simulated operator that speaks is a
:class:`~daft_env.plan_operator.PlanOperator` on ``--expert``'s plan.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from daft_env.durable import write_text
from hardware.errors import ConfigError

DEVICES = ("simulated", "keyboard")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``daft evaluate``."""
    parser.add_argument(
        "checkpoint", help="a checkpoint.zip written by daft train or DualActorAgent.save"
    )
    parser.add_argument(
        "--env", default="BoltMultiTask-Sim-v0", help="env id (default: BoltMultiTask-Sim-v0)"
    )
    parser.add_argument(
        "--expert",
        default=None,
        metavar="MODULE:CALLABLE",
        help="your env's scripted plan, which speaks the commands of --with-commands (another "
        "env than DAFT's)",
    )
    parser.add_argument(
        "--tasks",
        default=None,
        help="comma-separated tasks of your env, as trained (default: the env's own)",
    )
    parser.add_argument(
        "--obs-mode",
        default=None,
        help="observation mode (default: from the checkpoint's backbone)",
    )
    parser.add_argument("--trials", type=int, default=25, help="trials per task (default: 25)")
    parser.add_argument("--seed", type=int, default=10_000)
    parser.add_argument(
        "--with-commands",
        action="store_true",
        help="also evaluate with refinement commands spoken at test time (see --device)",
    )
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default=None,
        help="who speaks the commands: the simulated operator (sim only, the default) or you at "
        "the keyboard; --device implies --with-commands",
    )
    parser.add_argument(
        "--command-hold",
        type=int,
        default=None,
        help="steps a command stays applied (default: 1 for the simulated operator, which "
        "decides every step; until the next command for the keyboard)",
    )
    parser.add_argument(
        "--perturbed",
        action="store_true",
        help="also evaluate under a hidden perception error (sim ids, state mode)",
    )
    parser.add_argument(
        "--perception-error",
        type=float,
        default=None,
        help="largest offset in metres of the perturbed condition (default: 5-15 mm)",
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=None,
        help="steps per second of a simulated episode while you type commands (default: the "
        "robot's 10 Hz with --device keyboard on sim ids; 0 = as fast as it runs)",
    )
    parser.add_argument(
        "--render", action="store_true", help="show the simulation in a viewer (needs a display)"
    )
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument(
        "--video",
        default=None,
        metavar="DIR",
        help="also write DIR/<task>.mp4: rollouts with the simulated operator speaking (sim ids)",
    )
    parser.add_argument(
        "--video-trials", type=int, default=1, help="episodes per task in each video (default: 1)"
    )
    from daft_agent.cli.view import add_display_arguments

    add_display_arguments(parser)


def _talk_device(args: argparse.Namespace, env: Any) -> tuple[Any, int | None, float | None]:
    """The speaking device for ``env``, its command hold and the pace (Hz) of the episodes."""
    from daft_agent.evaluation import TalkOnly
    from daft_env.spaces import CONTROL_HZ

    if args.device == "keyboard":
        from hardware.teleop import make_teleop

        device = TalkOnly(make_teleop("keyboard"))
        device.connect()  # DeviceNotFoundError without a terminal, with the fix in its message
        hold = args.command_hold  # None: a typed command holds until the next one
        # a person needs the simulation at robot speed to react; a real arm paces itself
        backend = getattr(env.unwrapped, "backend", None)
        pace = CONTROL_HZ if getattr(backend, "has_privileged_state", True) else None
        if args.pace is not None:
            pace = args.pace or None
        return device, hold, pace
    if args.expert is not None:
        from daft_env.plan_operator import PlanOperator

        device: Any = PlanOperator(env, args.expert, mode="speak", seed=args.seed)
        return device, args.command_hold or 1, None
    from daft_env.operator import SimulatedOperator

    device = SimulatedOperator(env, mode="speak", seed=args.seed)
    return device, args.command_hold or 1, None


def run(args: argparse.Namespace) -> int:
    """Run ``daft evaluate``; returns the exit status."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    import daft_env  # noqa: F401
    from daft_agent.errors import CheckpointError
    from daft_env.perception import PerceptionError, as_perception_error

    torch.set_num_threads(1)
    if args.trials < 1:
        raise ConfigError("--trials must be >= 1")
    if args.command_hold is not None and args.command_hold < 1:
        raise ConfigError("--command-hold must be >= 1 (leave it out to use the default)")
    if args.pace is not None and args.pace < 0:
        raise ConfigError("--pace must be >= 0 steps per second (0: no pacing)")
    if args.video_trials < 1:
        raise ConfigError("--video-trials must be >= 1")
    with_commands = args.with_commands or args.device is not None
    path = Path(args.checkpoint)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    agent = _load(args, path)
    obs_mode = args.obs_mode or ("pixels" if agent.backbone == "pixels" else "state")
    conditions: list[tuple[str, Any]] = [("nominal", None)]
    if args.perturbed:
        if obs_mode != "state":
            raise ConfigError(
                f"--perturbed offsets the state observation; this checkpoint uses {obs_mode!r}. "
                "Evaluate a state-mode checkpoint, or leave out --perturbed"
            )
        spec = args.perception_error if args.perception_error is not None else PerceptionError()
        conditions.append(("perturbed", as_perception_error(spec)))
    if args.device == "keyboard":
        print(
            "Talk to the policy: press ':' then type a command (e.g. 'move left') and Enter; Esc "
            "cancels, 'x' stops the arm. Motion keys are ignored at test time."
        )

    from daft_agent.cli.view import open_display

    display = open_display(args)
    try:
        results = _evaluate(args, agent, obs_mode, conditions, with_commands, display)
    finally:
        display.close()
    if args.json:
        write_text(Path(args.json), json.dumps(results, indent=2) + "\n")
    if args.video:
        from daft_agent.video import record_videos

        for p in record_videos(
            agent, args.env, list(agent.tasks), Path(args.video), args.video_trials, args.seed
        ):
            print(f"video: {p}")
    if args.record:
        print(f"recording: {args.record} (open it with daft view {args.record})")
    return 0


def _user_tasks(args: argparse.Namespace) -> list[str] | None:
    return [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None


def _load(args: argparse.Namespace, path: Path) -> Any:
    """The checkpoint's agent; on another env than DAFT's, loaded on that env (its tasks)."""
    from daft_agent.agent import DualActorAgent
    from daft_agent.runs.envs import make_env
    from daft_env.adapters import is_daft_id

    if is_daft_id(args.env):
        if args.expert is not None or args.tasks is not None:
            raise ConfigError("--expert and --tasks are for your own env (--env module:EnvId)")
        return DualActorAgent.load(path)
    bolt_only = {"--perturbed": args.perturbed, "--video": args.video, "--obs-mode": args.obs_mode}
    used = [flag for flag, on in bolt_only.items() if on]
    if used:
        raise ConfigError(
            f"{', '.join(used)}: the bolt cell's (its perception error, its cameras, its "
            f"observation modes); leave them out on --env {args.env}"
        )
    if (args.with_commands and args.device != "keyboard") and args.expert is None:
        raise ConfigError(
            "--with-commands on your own env needs the plan that speaks: --expert module:callable "
            "(or --device keyboard to type the commands yourself)"
        )
    env = make_env(args.env, tasks=_user_tasks(args))  # registers the env's tasks
    try:
        return DualActorAgent.load(path, env=env)
    finally:
        env.close()


def _evaluate(
    args: argparse.Namespace,
    agent: Any,
    obs_mode: str,
    conditions: list[tuple[str, Any]],
    with_commands: bool,
    display: Any,
) -> dict[str, Any]:
    """Every condition's table, printed; returns the ``results.json`` dict."""
    from daft_agent.evaluation import evaluate_condition, format_table, results_dict
    from daft_agent.runs.envs import make_env, operated
    from daft_env.adapters import is_daft_id
    from daft_env.display import DisplayWrapper

    tasks = list(agent.tasks)
    results: dict[str, Any] = {"trials": args.trials, "env_id": args.env}
    render = {"render_mode": "human"} if args.render else {}
    for name, perception in conditions:
        if is_daft_id(args.env):
            env = make_env(args.env, obs_mode=obs_mode, perception_error=perception, **render)
        else:
            env = make_env(args.env, tasks=_user_tasks(args), **render)
        agent.set_env(env)
        talk_env, device, kwargs = None, None, {}
        if with_commands:
            device, hold, pace = _talk_device(args, env)
            talk_env = operated(env, device)
            kwargs = {"command_hold": hold, "pace_hz": pace}
        auto_env = env
        if display.enabled:
            auto_env = DisplayWrapper(env, display, label=f"{name}, autonomous")
            if talk_env is not None:
                talk_env = DisplayWrapper(talk_env, display, label=f"{name}, with commands")
        try:
            cond = evaluate_condition(
                agent, auto_env, talk_env, tasks, args.trials, seed=args.seed, **kwargs
            )
        finally:
            if device is not None:
                device.disconnect()
            env.close()
        title = None if len(conditions) == 1 else f"{name} condition"
        if perception is not None:
            title += (
                f" (hidden perception error {1000 * perception.min_offset:.0f}-"
                f"{1000 * perception.max_offset:.0f} mm)"
            )
        print(format_table(cond["autonomous"], cond["with_commands"], title=title))
        entry = results_dict(cond["autonomous"], cond["with_commands"])
        if name == "nominal":
            results.update(entry)  # the keys daft train's results.json already has
        else:
            results[name] = entry
    return results
