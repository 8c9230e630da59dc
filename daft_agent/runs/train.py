"""A training run end to end: :func:`train_run` (what ``daft train`` does, as a library).

Steps: (1) collect expert demos per task if the store has none, (2) offline warm-up (Cal-QL +
consistency BC), (3) online training with the simulated operator's takeovers and talk-and-tweak
labels, on one in-process robot or on a fleet of Ray robot actors, with a learning curve, (4)
the final evaluation in two conditions (nominal and under a hidden perception error), each
autonomous and with the operator's spoken commands, and the realised intervention share
(:mod:`daft_agent.runs.report` says what each figure is). Writes ``<run>/checkpoint.zip``,
``<run>/tb`` (TensorBoard), ``<run>/table.txt`` and ``<run>/results.json``, each durably.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from daft_agent.env_contract import env_tasks
from daft_agent.runs import report
from daft_agent.runs.config import CURVE_SEED, EVAL_SEED, RunConfig, RunPlan
from daft_agent.runs.envs import make_train_env
from hardware.errors import ConfigError

#: builds the learner of a run from (env, store, tasks); None: DualActorAgent from the config
ModelFactory = Callable[[Any, Any, Sequence[str]], Any]


def train_run(
    config: RunConfig,
    make_model: ModelFactory | None = None,
    callbacks: Sequence[Any] = (),
    echo: Callable[[str], None] = print,
    display: Any = None,
) -> dict[str, Any]:
    """Run demos -> warm-up -> online -> evaluation and write the results; returns them.

    Args:
        config: the run's settings.
        make_model: another learner (a Table I row, :mod:`daft_agent.baselines`): anything with
            SB3's ``learn`` and ``predict``; it does its own warm-up inside ``learn``. None builds
            (or, with ``config.resume``, loads) the :class:`~daft_agent.agent.DualActorAgent` of
            the config.
        callbacks: more SB3 callbacks for the online phase.
        echo: where the run's lines go.
        display: a :class:`~daft_env.display.StepStream` (``--display`` / ``--record``) that
            every online step of the in-process training env is streamed to, as robot ``0``,
            with the learner's update count; None (or a disabled stream) streams nothing. The
            caller closes it.

    Returns:
        The ``results.json`` fields.

    Raises:
        ConfigError: a setting out of range (:meth:`RunConfig.resolve`).
        CheckpointError: ``resume`` with a checkpoint trained with other settings.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    from stable_baselines3.common.logger import configure

    from daft_env.perception import PerceptionError, as_perception_error
    from daft_env.store import EpisodeStore

    torch.set_num_threads(1)
    plan = config.resolve()
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    store = EpisodeStore(plan.store)
    perception = as_perception_error(
        PerceptionError() if config.perception_error is None else config.perception_error
    )
    train_env = make_train_env(
        plan.env_id,
        plan.obs_mode,
        config.seed,
        config.operator_rate,
        config.train_perception_error,
        perception,
        plan.env_kwargs,
        expert=plan.expert,
        tasks=plan.tasks,
    )
    learner: dict[str, Any] = {}
    if display is not None and display.enabled:
        from daft_env.display import DisplayWrapper

        if config.on_fleet:
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
    task_list = env_tasks(train_env)
    wrap: Any = lambda env: env  # noqa: E731
    if config.backbone is not None:  # one frozen backbone; every env's observations carry its h
        from daft_agent.backbones.cache import EmbedObservation, frozen_backbone

        backbone = frozen_backbone(config.backbone, train_env.observation_space, tasks=task_list)
        wrap = lambda env: EmbedObservation(env, backbone)  # noqa: E731
        train_env = wrap(train_env)

    # (1) demonstrations
    if any(store.count(task=t, kind="demos") == 0 for t in task_list):
        from daft_env.demos import collect_demos

        echo(f"collecting {plan.demos} expert demos per task into {store.root}")
        collect_demos(
            store,
            plan.env_id,
            task_list,
            plan.demos,
            plan.obs_mode,
            seed=config.seed,
            progress=config.progress,
            env_kwargs=plan.env_kwargs,
            expert=plan.expert,
        )
    if config.backbone is not None:  # the learner reads cached h only: embed what the store lacks
        from daft_agent.backbones.cache import embed_store

        done = embed_store(store, backbone).embedded
        echo(f"embedded {done} stored episodes with {config.backbone}")

    if make_model is not None:
        agent = make_model(train_env, store, task_list)
    else:
        agent = _dual_actor_agent(plan, train_env, store, task_list, echo)
    if make_model is None:  # another learner (a Table I row) keeps its own logging
        agent.set_logger(configure(str(plan.run_dir / "tb"), ["tensorboard", "csv"]))
        learner["agent"] = agent
    checkpoint = plan.checkpoint

    # (2) warm-up (another learner warms up inside its learn)
    t0 = time.time()
    remaining_warmup = (
        max(0, agent.warmup_steps - agent.warmup_updates_done) if not make_model else 0
    )
    if remaining_warmup:
        from tqdm.auto import tqdm

        with tqdm(
            total=remaining_warmup, desc="warm-up", disable=not config.progress, dynamic_ncols=True
        ) as bar:
            agent.warmup(remaining_warmup, progress=lambda i, n: bar.update(1))
        agent.save(checkpoint)

    # (3) online, with the learning curve
    results_path = plan.run_dir / "results.json"
    previous = (
        json.loads(results_path.read_text()) if config.resume and results_path.exists() else {}
    )
    before = set() if config.resume else {e.path for e in report.online_entries(store)}
    done_steps = agent.online_env_steps if make_model is None else 0
    remaining = max(0, plan.online_steps - done_steps)
    curve = None
    if remaining:
        cb: list[Any] = []
        if make_model is None:
            cb.append(
                _progress_callback(
                    plan.online_steps,
                    done_steps,
                    config.progress,
                    checkpoint,
                    config.checkpoint_every,
                )
            )
        if plan.eval_every:
            curve = report.learning_curve_callback(
                plan.env_id,
                plan.obs_mode,
                task_list,
                plan.eval_every,
                plan.curve_trials,
                config.seed + CURVE_SEED,
                wrap=wrap,
                user_tasks=plan.tasks,
            )
            cb.append(curve)
            echo(report.curve_legend(plan.eval_every, plan.curve_trials))
        cb += list(callbacks)
        fleet = _fleet(plan, agent) if config.on_fleet else None
        if make_model is None:
            agent.learn(remaining, callback=cb, reset_num_timesteps=False, fleet=fleet)
        else:
            agent.learn(remaining, callback=cb)
        for robot in agent.fleet_runner.robots if fleet is not None else ():
            echo(
                f"robot {robot.name}: {robot.steps} steps, {robot.episodes} episodes, "
                f"{robot.restarts} restarts" + (f"; {robot.dropped}" if robot.dropped else "")
            )
    if make_model is None:
        agent.save(checkpoint)
    train_time = time.time() - t0

    # (4) evaluation: the curve so far, the intervention share, both conditions
    new_rows = curve.as_json() if curve is not None else []
    run_entries = [e for e in report.online_entries(store) if e.path not in before]
    share = report.intervention_share(run_entries, task_list, config.operator_rate)
    curve_rows = report.merge_curve(previous.get("learning_curve", []), new_rows)
    share |= report.share_over_training(run_entries, curve_rows)
    results: dict[str, Any] = {
        "online_env_steps": done_steps + remaining if make_model else agent.online_env_steps,
        "train_seconds": train_time,
        "train_perception_error": config.train_perception_error,
        "chained_starts": config.chained_starts,
        "learning_curve": curve_rows,
        "learning_curve_trials": plan.curve_trials if plan.eval_every else 0,
        "intervention_share": share,
    }
    if not config.skip_eval and plan.eval_trials > 0:
        evaluated, tables = report.evaluate_both_conditions(
            agent,
            plan.env_id,
            plan.obs_mode,
            task_list,
            plan.eval_trials,
            config.seed + EVAL_SEED,
            perception if config.perturbed else None,
            echo=echo,
            wrap=wrap,
            with_commands=config.with_commands,
            expert=plan.expert,
            user_tasks=plan.tasks,
        )
        results |= evaluated
        report.write_table(plan.run_dir / "table.txt", tables)
    echo(report.format_share(share))
    report.write_results(results_path, results)
    if make_model is None:
        echo(f"checkpoint: {checkpoint}\nTensorBoard: tensorboard --logdir {plan.run_dir / 'tb'}")
    train_env.close()
    return results


def _dual_actor_agent(
    plan: RunPlan, env: Any, store: Any, tasks: Sequence[str], echo: Callable[[str], None]
) -> Any:
    """The run's DualActorAgent: a new one, or the checkpoint's with ``resume`` (same settings)."""
    from daft_agent.agent import DualActorAgent
    from daft_agent.errors import CheckpointError
    from daft_agent.policies import NetworkConfig

    config, checkpoint = plan.config, plan.checkpoint
    if config.resume and checkpoint.exists():
        agent = DualActorAgent.load(checkpoint, env=env, store=store)
        net = agent.policy.net.as_kwargs()
        wanted = NetworkConfig.from_kwargs(plan.network).as_kwargs()
        differing = {
            k: (getattr(agent, k), v)
            for k, v in plan.agent_kwargs.items()
            if k not in ("warmup_steps", "utd_ratio") and _norm(getattr(agent, k, None)) != _norm(v)
        } | {k: (net[k], v) for k, v in wanted.items() if _norm(net[k]) != _norm(v)}
        if differing:
            raise CheckpointError(
                f"{checkpoint} was trained with another configuration: "
                + ", ".join(f"{k}={a!r} (now {b!r})" for k, (a, b) in differing.items())
                + ". Use the same preset/flags, or another --name."
            )
        agent.warmup_steps = plan.warmup_steps
        echo(
            f"resuming {checkpoint}: {agent.online_env_steps} online steps, "
            f"{agent.warmup_updates_done} warm-up updates done"
        )
        return agent
    if config.resume:
        echo(f"no checkpoint at {checkpoint}; starting a new run")
    return DualActorAgent(
        env=env,
        store=store,
        tasks=tasks,
        seed=config.seed,
        policy_kwargs=plan.network,
        **plan.agent_kwargs,
    )


def _norm(v: Any) -> Any:
    return tuple(v) if isinstance(v, list | tuple) else v


def _fleet(plan: RunPlan, agent: Any) -> Any:
    """The run's fleet of simulated Ray robots (``actors``/``robots``)."""
    from daft_agent.runs.envs import sim_fleet

    config = plan.config
    return sim_fleet(
        plan.env_id,
        {"obs_mode": plan.obs_mode},
        robots=plan.robots,
        n_actors=config.actors,
        # a resumed run's robots start on new scenes, not on the first run's again
        seed=config.seed + agent.online_env_steps,
        speed=config.speed,
        address=config.address,
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


def _progress_callback(total: int, initial: int, enabled: bool, checkpoint: Any, every: int) -> Any:
    """An SB3 callback: a tqdm bar over online steps with live per-task success, and checkpoints.

    Each task shows ``all/auto``: success counting operator-rescued episodes, then autonomous
    success (episodes with no intervened step; what the policy achieves alone). Every ``every``
    online steps the agent is saved (``save`` takes the learner's lock: a consistent snapshot).
    """
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm.auto import tqdm

    class Progress(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = tqdm(
                total=total, initial=initial, desc="online", disable=not enabled, dynamic_ncols=True
            )
            self._last_ep = -1

        def _on_step(self) -> bool:
            agent = self.model
            self.bar.update(1)
            if agent.episodes_done != self._last_ep:
                self._last_ep = agent.episodes_done
                robots = {r.name: r.episodes for r in self.locals.get("robots", ())}
                self.bar.set_postfix(
                    _rates_postfix(agent) | {"upd": agent.online_updates_done} | robots
                )
            if every and agent.online_env_steps % every == 0:
                agent.save(checkpoint)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return Progress()


__all__ = ["ModelFactory", "train_run"]
