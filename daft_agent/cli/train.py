"""Warm up and fine-tune the dual-actor agent with the simulated operator, then evaluate.

Steps: (1) collect 20 expert demos per task if the store has none, (2) offline warm-up (Cal-QL +
consistency BC), (3) online training with the simulated operator's takeovers and talk-and-tweak
labels, with a learning curve (autonomous trials every ``--eval-every`` online steps), (4) 50 trials
per task in two conditions, nominal and under a hidden perception error, each autonomous and with
the operator's spoken refinement commands, printed as the paper's Table I, and the realised
intervention share of the online phase beside the operator's ``target_rate``
(:mod:`daft_agent.cli.train_report` says what each figure is). Writes ``runs/<name>/checkpoint.zip``,
``runs/<name>/tb`` (TensorBoard), ``runs/<name>/results.json``; the store defaults to
``runs/<name>/store``.

``--train-perception-error P`` trains with the hidden perception error on a share P of the training
episodes (default 0: off), so the operator's commands carry what the policy's observation lacks.

``--resume`` continues a run from its checkpoint and store (step counts, buffers, optimisers) with no
prompt. Examples::

    daft train                       # preset state: BoltMultiTask-Sim-v0, privileged state
    daft train --preset pixels --tiny
    daft train --preset vla --backbone smolvla:models/smolvlm   # frozen VLA, cached embeddings
    daft train --name exp1 --resume
    daft train --train-perception-error 0.5 --operator-rate 0.1
    daft train --actors 2            # two robot actors on a local Ray, one learner
    daft train --robots A,B --address auto   # robots A and B (daft_env.robots) on a Ray cluster
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from hardware.errors import ConfigError

_RUN = {"env_id": "BoltMultiTask-Sim-v0", "online_steps": 15_000, "warmup_steps": 2_000}
#: Simulation runs are lockstep (the learner's updates run in the interaction thread after each
#: step), so a seeded run repeats step for step: the threaded runner made the weights each step
#: saw depend on thread timing, and five runs of one setting gave assemble 16-80 %.
_LOCKSTEP = {"lockstep": True}
#: learning curve of a full run: a row every 2,500 online steps, 20 autonomous trials per task on
#: fixed scenes drawn like the final evaluation's. With 5 the curve's scenes for assemble were
#: hard ones: 20 % at the end of a run whose 50-trial rate was 80 %. The run is lockstep, so no
#: update happens while a row is evaluated.
CURVE = {"eval_every": 2_500, "curve_trials": 20}
#: preset -> env id, obs mode, agent kwargs, network settings (``policy_kwargs``; the rest are
#: NetworkConfig's defaults), online steps, warm-up updates
PRESETS: dict[str, dict[str, Any]] = {
    "state": _RUN
    | {
        "obs_mode": "state",
        "agent": {"batch_size": 256, "utd_ratio": 1.0} | _LOCKSTEP,
        "network": {"backbone": "state"},
    },
    # a pixel update runs five CNNs: a smaller batch and half the updates per step
    "pixels": _RUN
    | {
        "obs_mode": "pixels",
        "agent": {"batch_size": 64, "utd_ratio": 0.5} | _LOCKSTEP,
        "network": {"backbone": "pixels"},
    },
    # a frozen VLA (--backbone NAME:PATH) runs once per observation on the actor side; the
    # learner reads its cached embeddings (Eq. 17), so an update costs about what a state one does
    "vla": _RUN
    | {
        "obs_mode": "pixels",
        "agent": {"batch_size": 256, "utd_ratio": 1.0} | _LOCKSTEP,
        "network": {"backbone": "embedding"},
    },
}
#: sizes used by --tiny (CI and tests): a few hundred steps end to end
TINY = {
    "online_steps": 300,
    "warmup_steps": 30,
    "demos": 2,
    "eval_trials": 2,
    "eval_every": 100,
    "curve_trials": 1,
    "min_rollouts_per_task": 10,
    "batch_size": 24,
    "hidden": (32, 32),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``daft train``."""
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="state",
        help="configuration preset (default: state)",
    )
    parser.add_argument(
        "--env", default=None, help="env id (default: the preset's, BoltMultiTask-Sim-v0)"
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
        "--demos", type=int, default=20, help="expert demos per task to collect into an empty store"
    )
    parser.add_argument(
        "--eval-trials",
        type=int,
        default=50,
        help="final evaluation trials per task and column, in each condition (default: 50)",
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
        help="autonomous trials per task in each learning-curve row (default: 5; 1 with --tiny)",
    )
    parser.add_argument(
        "--operator-rate",
        type=float,
        default=0.15,
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
        "--checkpoint-every", type=int, default=2_500, help="env steps between checkpoints"
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


def _parse_overrides(items: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``KEY=VALUE`` strings -> (agent keyword arguments, network settings); VALUE is a literal.

    A key that names a :class:`~daft_agent.policies.NetworkConfig` field (``actor_hidden``,
    ``backbone``, ...) goes into ``policy_kwargs``; any other must be a DualActorAgent argument.
    """
    import ast
    import inspect
    from dataclasses import fields

    from daft_agent.agent import DualActorAgent
    from daft_agent.policies import NetworkConfig

    network_keys = {f.name for f in fields(NetworkConfig)}
    agent_keys = set(inspect.signature(DualActorAgent.__init__).parameters) - {
        "self",
        "env",
        "store",
        "policy",
        "policy_kwargs",
        "_init_setup_model",
    }
    agent: dict[str, Any] = {}
    network: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in agent_keys | network_keys:
            raise ConfigError(
                f"--set {key}: not a DualActorAgent argument or network setting; valid keys are "
                f"{sorted(agent_keys | network_keys)}"
            )
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()  # a bare string such as --set backbone=state
        (network if key in network_keys else agent)[key] = value
    return agent, network


def _collect(
    store: Any,
    env_id: str,
    tasks: list[str],
    n: int,
    obs_mode: str,
    seed: int,
    progress: bool,
    env_kwargs: dict[str, Any] | None = None,
) -> None:
    try:
        from daft_agent.cli.collect import collect_demos
    except ImportError:  # pragma: no cover - the collect command ships with daft
        collect_demos = None
    if collect_demos is None:
        raise ConfigError("daft_agent.cli.collect is missing; cannot record demonstrations")
    collect_demos(
        store, env_id, tasks, n, obs_mode, seed=seed, progress=progress, env_kwargs=env_kwargs
    )


def _rates_postfix(agent: Any) -> dict[str, str]:
    """Per task ``"<all>/<auto>"``: success counting operator-rescued episodes, then autonomous.

    ``all`` is ``rollout/<task>/success_rate`` (an episode the operator rescued counts);
    ``auto`` is ``rollout/<task>/autonomous_success_rate`` (no intervened step).
    """

    def pct(r: float) -> str:
        return "-" if r != r else f"{100 * r:.0f}%"

    rescued, alone = agent.success_rates(), agent.success_rates(autonomous=True)
    return {f"{t[:4]} all/auto": f"{pct(rescued[t])}/{pct(alone[t])}" for t in rescued}


class _ProgressCallback:
    """SB3 callback factory: a tqdm bar over online steps with live per-task success rates.

    Each task shows ``all/auto``: success counting operator-rescued episodes, then autonomous
    success (episodes with no intervened step; what the policy achieves alone).
    """

    @staticmethod
    def make(total: int, initial: int, enabled: bool, checkpoint: Path, every: int) -> Any:
        from stable_baselines3.common.callbacks import BaseCallback
        from tqdm.auto import tqdm

        class Cb(BaseCallback):
            def _on_training_start(self) -> None:
                self.bar = tqdm(
                    total=total,
                    initial=initial,
                    desc="online",
                    disable=not enabled,
                    dynamic_ncols=True,
                )
                self._last_ep = -1

            def _on_step(self) -> bool:
                agent = self.model
                self.bar.update(1)
                if agent._episode_num != self._last_ep:
                    self._last_ep = agent._episode_num
                    fleet = self.locals.get("fleet")  # per-robot episodes when on a fleet
                    robots = {r.name: r.episodes for r in fleet.robots} if fleet else {}
                    self.bar.set_postfix(
                        _rates_postfix(agent) | {"upd": agent.online_updates_done} | robots
                    )
                if every and agent.online_env_steps % every == 0:
                    agent.save(checkpoint)  # save takes the learner's lock: a consistent snapshot
                return True

            def _on_training_end(self) -> None:
                self.bar.close()

        return Cb()


def run(args: argparse.Namespace) -> int:
    """Run ``daft train``; returns the exit status."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    from stable_baselines3.common.logger import configure

    from daft_agent.agent import DualActorAgent
    from daft_agent.cli import train_report as report
    from daft_agent.cli.train_env import make_train_env
    from daft_agent.errors import CheckpointError
    from daft_agent.policies import NetworkConfig
    from daft_env.perception import PerceptionError, as_perception_error
    from daft_env.store import EpisodeStore
    from daft_env.tasks import TASK_NAMES

    torch.set_num_threads(1)
    preset = PRESETS[args.preset]
    env_id = args.env or preset["env_id"]
    name = args.name or args.preset
    run_dir = Path(args.output_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / "checkpoint.zip"
    store = EpisodeStore(args.store or run_dir / "store")
    progress = not args.no_progress
    online_steps = (
        args.steps
        if args.steps is not None
        else (TINY["online_steps"] if args.tiny else preset["online_steps"])
    )
    warmup_steps = (
        args.warmup_steps
        if args.warmup_steps is not None
        else (TINY["warmup_steps"] if args.tiny else preset["warmup_steps"])
    )
    demos = TINY["demos"] if args.tiny and args.demos == 20 else args.demos
    trials = TINY["eval_trials"] if args.tiny and args.eval_trials == 50 else args.eval_trials
    sizes = TINY if args.tiny else CURVE
    eval_every = sizes["eval_every"] if args.eval_every is None else args.eval_every
    curve_trials = sizes["curve_trials"] if args.curve_trials is None else args.curve_trials
    if min(online_steps, warmup_steps, eval_every) < 0 or demos < 1 or trials < 0:
        raise ConfigError(
            "--steps, --warmup-steps and --eval-every must be >= 0, --demos >= 1, "
            "--eval-trials >= 0"
        )
    if curve_trials < 1:
        raise ConfigError("--curve-trials must be >= 1 (--eval-every 0 turns the curve off)")
    if not 0.0 <= args.train_perception_error <= 1.0:
        raise ConfigError(
            f"--train-perception-error is a share of training episodes in [0, 1]; got "
            f"{args.train_perception_error}"
        )
    if args.train_perception_error and preset["obs_mode"] != "state":
        raise ConfigError(
            "--train-perception-error offsets the state observation only; use --preset state"
        )
    on_fleet = args.actors is not None or args.robots is not None
    if on_fleet and (
        args.train_perception_error or args.operator_rate != 0.15 or args.chained_starts
    ):
        raise ConfigError(
            "--train-perception-error, --operator-rate and --chained-starts set the in-process "
            "training env; the fleet's robots make their own (leave them out with "
            "--actors/--robots)"
        )
    if not 0.0 <= args.chained_starts <= 1.0:
        raise ConfigError(f"--chained-starts is a share in [0, 1]; got {args.chained_starts}")
    env_kwargs = {"chained_starts": args.chained_starts} if args.chained_starts else {}
    if args.perception_error is not None and args.perception_error <= 0:
        raise ConfigError(
            f"--perception-error is the largest offset in metres, > 0; got {args.perception_error} "
            "(leave --train-perception-error out to train without it)"
        )
    perception = as_perception_error(
        PerceptionError() if args.perception_error is None else args.perception_error
    )
    if (args.preset == "vla") != (args.backbone is not None) or (args.backbone and on_fleet):
        raise ConfigError(
            "--preset vla needs --backbone NAME:PATH (e.g. smolvla:models/smolvlm), --backbone "
            "is only for --preset vla, and it runs in-process (no --actors/--robots yet)"
        )

    train_env = make_train_env(
        env_id,
        preset["obs_mode"],
        args.seed,
        args.operator_rate,
        args.train_perception_error,
        perception,
        env_kwargs,
    )
    from daft_agent.cli.view import open_display
    from daft_env.display import DisplayWrapper

    display = open_display(args)  # disabled unless --display / --display-address / --record
    learner: dict[str, Any] = {}
    if display.enabled:
        if on_fleet:
            raise ConfigError(
                "--display/--record stream the in-process training env; a fleet's robots are "
                "not streamed yet (leave out --actors/--robots, or the display flags)"
            )
        train_env = DisplayWrapper(
            train_env,
            display,
            robot="0",
            label="train",
            learner_stats=lambda: (
                {"updates": learner["agent"].online_updates_done} if learner else {}
            ),
        )
    tasks = (
        list(TASK_NAMES[: train_env.observation_space["task_id"].n])
        if "task_id" in train_env.observation_space.spaces
        else None
    )
    task_list = tasks or [train_env.unwrapped.task.name]
    wrap: Any = lambda env: env  # noqa: E731
    if args.backbone is not None:  # one frozen backbone; every env's observations carry its h
        from daft_agent.backbones.cache import EmbedObservation, frozen_backbone

        backbone = frozen_backbone(args.backbone, train_env.observation_space, tasks=task_list)
        wrap = lambda env: EmbedObservation(env, backbone)  # noqa: E731
        train_env = wrap(train_env)

    # (1) demonstrations
    if any(store.count(task=t, kind="demos") == 0 for t in task_list):
        print(f"collecting {demos} expert demos per task into {store.root}")
        _collect(
            store, env_id, task_list, demos, preset["obs_mode"], args.seed, progress, env_kwargs
        )
    if args.backbone is not None:  # the learner reads cached h only: embed what the store lacks
        from daft_agent.backbones.cache import embed_store

        done = embed_store(store, backbone).embedded
        print(f"embedded {done} stored episodes with {args.backbone}")

    agent_kwargs = dict(preset["agent"])
    network = dict(preset["network"])
    agent_kwargs["warmup_steps"] = warmup_steps
    if args.tiny:
        agent_kwargs.update(
            batch_size=TINY["batch_size"],
            min_rollouts_per_task=TINY["min_rollouts_per_task"],
            refinement_batch_size=16,
        )
        network.update(
            actor_hidden=TINY["hidden"],
            critic_hidden=TINY["hidden"],
            refinement_hidden=TINY["hidden"],
        )
        if args.preset == "pixels":
            network["backbone_kwargs"] = {"image_features": 16, "channels": 4}
    if args.utd is not None:
        agent_kwargs["utd_ratio"] = args.utd
    if args.batch_size is not None:
        agent_kwargs["batch_size"] = args.batch_size
    set_agent, set_network = _parse_overrides(args.set)
    agent_kwargs.update(set_agent)
    network.update(set_network)

    if args.resume and checkpoint.exists():
        agent = DualActorAgent.load(checkpoint, env=train_env, store=store)
        net = agent.policy.net.as_kwargs()
        wanted = NetworkConfig.from_kwargs(network).as_kwargs()
        differing = {
            k: (getattr(agent, k), v)
            for k, v in agent_kwargs.items()
            if k not in ("warmup_steps", "utd_ratio") and _norm(getattr(agent, k, None)) != _norm(v)
        } | {k: (net[k], v) for k, v in wanted.items() if _norm(net[k]) != _norm(v)}
        if differing:
            raise CheckpointError(
                f"{checkpoint} was trained with another configuration: "
                + ", ".join(f"{k}={a!r} (now {b!r})" for k, (a, b) in differing.items())
                + ". Use the same preset/flags, or another --name."
            )
        agent.warmup_steps = warmup_steps
        print(
            f"resuming {checkpoint}: {agent.online_env_steps} online steps, {agent.warmup_updates_done} warm-up updates done"
        )
    else:
        if args.resume:
            print(f"no checkpoint at {checkpoint}; starting a new run")
        agent = DualActorAgent(
            env=train_env,
            store=store,
            tasks=tasks or task_list,
            seed=args.seed,
            policy_kwargs=network,
            **agent_kwargs,
        )
    agent.set_logger(configure(str(run_dir / "tb"), ["tensorboard", "csv"]))
    learner["agent"] = agent

    # (2) warm-up
    t0 = time.time()
    remaining_warmup = max(0, agent.warmup_steps - agent.warmup_updates_done)
    if remaining_warmup:
        from tqdm.auto import tqdm

        with tqdm(
            total=remaining_warmup, desc="warm-up", disable=not progress, dynamic_ncols=True
        ) as bar:
            agent.warmup(remaining_warmup, progress=lambda i, n: bar.update(1))
        agent.save(checkpoint)

    # (3) online, with the learning curve
    results_path = run_dir / "results.json"
    previous = json.loads(results_path.read_text()) if args.resume and results_path.exists() else {}
    before = set() if args.resume else {e.path for e in report.online_entries(store)}
    remaining = max(0, online_steps - agent.online_env_steps)
    curve = None
    if remaining:
        cb: Any = _ProgressCallback.make(
            online_steps, agent.online_env_steps, progress, checkpoint, args.checkpoint_every
        )
        if eval_every:
            curve = report.learning_curve_callback(
                env_id,
                preset["obs_mode"],
                task_list,
                eval_every,
                curve_trials,
                args.seed + 20_000,
                wrap=wrap,
            )
            cb = [cb, curve]
            print(report.curve_legend(eval_every, curve_trials))
        if not on_fleet:
            agent.learn(remaining, callback=cb, reset_num_timesteps=False)
        else:
            _learn_on_fleet(agent, args, env_id, preset["obs_mode"], remaining, cb)
    agent.save(checkpoint)
    train_time = time.time() - t0

    # (4) evaluation: the curve so far, the intervention share, both conditions
    new_rows = curve.as_json() if curve is not None else []
    run_entries = [e for e in report.online_entries(store) if e.path not in before]
    share = report.intervention_share(run_entries, task_list, args.operator_rate)
    curve_rows = report.merge_curve(previous.get("learning_curve", []), new_rows)
    share |= report.share_over_training(run_entries, curve_rows)
    results: dict[str, Any] = {
        "online_env_steps": agent.online_env_steps,
        "train_seconds": train_time,
        "train_perception_error": args.train_perception_error,
        "chained_starts": args.chained_starts,
        "learning_curve": curve_rows,
        "learning_curve_trials": curve_trials if eval_every else 0,
        "intervention_share": share,
    }
    if not args.skip_eval and trials > 0:
        evaluated, tables = report.evaluate_both_conditions(
            agent,
            env_id,
            preset["obs_mode"],
            task_list,
            trials,
            args.seed + 10_000,
            perception,
            wrap=wrap,
        )
        results |= evaluated
        (run_dir / "table.txt").write_text("\n\n".join(tables) + "\n")
    print(report.format_share(share))
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"checkpoint: {checkpoint}\nTensorBoard: tensorboard --logdir {run_dir / 'tb'}")
    train_env.close()
    display.close()
    return 0


def _norm(v: Any) -> Any:
    return tuple(v) if isinstance(v, list | tuple) else v


def _learn_on_fleet(
    agent: Any, args: argparse.Namespace, env_id: str, obs_mode: str, steps: int, cb: Any
) -> None:
    """Online training on Ray robot actors (``--actors``/``--robots``); prints dropped robots."""
    from daft_agent.fleet import learn_fleet, sim_fleet
    from daft_env.robots import parse_robots

    robots = None if args.robots is None else [r.name for r in parse_robots(args.robots)]
    if robots is not None and args.actors is not None and args.actors != len(robots):
        raise ConfigError(f"--actors {args.actors} but --robots names {len(robots)} robots")
    if robots is None and args.actors < 1:
        raise ConfigError(f"--actors must be >= 1, got {args.actors}")
    fleet = sim_fleet(
        env_id,
        {"obs_mode": obs_mode},
        robots=robots,
        n_actors=args.actors,
        # a resumed run's robots start on new scenes, not on the first run's again
        seed=args.seed + agent.online_env_steps,
        speed=args.speed,
        address=args.address,
    )
    runner = learn_fleet(agent, steps, fleet, callback=cb, reset_num_timesteps=False)
    for robot in runner.robots:
        print(
            f"robot {robot.name}: {robot.steps} steps, {robot.episodes} episodes, "
            f"{robot.restarts} restarts" + (f"; {robot.dropped}" if robot.dropped else "")
        )
