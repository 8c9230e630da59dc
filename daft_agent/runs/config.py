"""The one list of a training run's settings: :class:`RunConfig`, its presets and tiny sizes.

``daft train`` parses its flags into a :class:`RunConfig`; experiments and benchmarks build one
in code. :meth:`RunConfig.resolve` turns it into the concrete sizes of the run
(:class:`RunPlan`): the preset's values, ``--tiny``'s sizes where ``tiny`` is set, the flags
over both, and the ``--set`` overrides last. Every default of a run lives in this file.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass, field, fields
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
#: demos per task, final evaluation trials per task and column, the operator's target_rate
DEMOS, EVAL_TRIALS, OPERATOR_RATE = 20, 50, 0.15
#: the state preset's warm-up updates and batch size, which every Table I row shares too
#: (:class:`daft_agent.baselines.common.BaselineSettings`)
WARMUP_STEPS = _RUN["warmup_steps"]
BATCH_SIZE = PRESETS["state"]["agent"]["batch_size"]
#: env steps between checkpoints
CHECKPOINT_EVERY = 2_500
#: seed offsets of the final evaluation and of the learning curve's scenes (kept apart from the
#: training scenes, which start at the run's seed)
EVAL_SEED, CURVE_SEED = 10_000, 20_000


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one training run (``daft train``'s flags, in the same names).

    None means "the preset's value" (or ``--tiny``'s when ``tiny``). See ``daft train --help``
    for each; the extra fields are for library callers.

    Attributes:
        preset: ``state``, ``pixels`` or ``vla`` (:data:`PRESETS`).
        env_id: the env (default: the preset's).
        obs_mode: its observation mode (default: the preset's).
        backbone: ``NAME:PATH`` of the frozen VLA of the ``vla`` preset.
        name: run name under ``output_dir`` (default: the preset name).
        output_dir: where runs are written.
        store: episode store directory (default: ``<run>/store``).
        online_steps, warmup_steps: online env steps in total, offline warm-up updates.
        demos: expert demos per task collected into an empty store.
        eval_trials: final evaluation trials per task and column, per condition.
        eval_every, curve_trials: the learning curve (0: none), trials per task per row.
        operator_rate: the simulated operator's target_rate.
        train_perception_error: share of training episodes under the hidden perception error.
        perception_error: its largest offset in metres (None: 5-15 mm).
        chained_starts: share of pickup/assemble episodes that start where a chain leaves them.
        seed: the run's seed.
        utd, batch_size: learner updates per env step, batch size.
        resume: continue from ``<run>/checkpoint.zip`` and the store.
        checkpoint_every: env steps between checkpoints.
        tiny: tiny sizes for CI.
        overrides: ``KEY=VALUE`` strings (``--set``): agent arguments or network settings.
        progress: progress bars.
        skip_eval: train only.
        actors, robots, address, speed: the fleet (Ray); None/None is one in-process loop.
        perturbed: evaluate the perturbed condition too (state observations).
        with_commands: evaluate the with-commands column too.
        expert: the scripted plan (``module:callable``) of another env than DAFT's: its
            demonstrator and its simulated operator (:mod:`daft_env.plan_operator`).
        tasks: comma-separated task names of that env (default: the env's own).
    """

    preset: str = "state"
    env_id: str | None = None
    obs_mode: str | None = None
    backbone: str | None = None
    name: str | None = None
    output_dir: str | Path = "runs"
    store: str | Path | None = None
    online_steps: int | None = None
    warmup_steps: int | None = None
    demos: int | None = None
    eval_trials: int | None = None
    eval_every: int | None = None
    curve_trials: int | None = None
    operator_rate: float = OPERATOR_RATE
    train_perception_error: float = 0.0
    perception_error: float | None = None
    chained_starts: float = 0.0
    seed: int = 0
    utd: float | None = None
    batch_size: int | None = None
    resume: bool = False
    checkpoint_every: int = CHECKPOINT_EVERY
    tiny: bool = False
    overrides: tuple[str, ...] = field(default_factory=tuple)
    progress: bool = True
    skip_eval: bool = False
    actors: int | None = None
    robots: str | None = None
    address: str | None = None
    speed: float = 1.0
    perturbed: bool = True
    with_commands: bool = True
    expert: str | None = None
    tasks: str | None = None

    @property
    def on_fleet(self) -> bool:
        """Whether the online phase runs on Ray robot actors."""
        return self.actors is not None or self.robots is not None

    def resolve(self) -> RunPlan:
        """The run's concrete sizes; checks every setting.

        Raises:
            ConfigError: a setting out of range or two that do not go together (the message
                names the flags).
        """
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; valid: {sorted(PRESETS)}")
        preset = PRESETS[self.preset]

        def pick(value: Any, key: str, default: Any) -> Any:
            if value is not None:
                return value
            return TINY[key] if self.tiny else default

        online_steps = pick(self.online_steps, "online_steps", preset["online_steps"])
        warmup_steps = pick(self.warmup_steps, "warmup_steps", preset["warmup_steps"])
        demos = pick(self.demos, "demos", DEMOS)
        trials = pick(self.eval_trials, "eval_trials", EVAL_TRIALS)
        eval_every = pick(self.eval_every, "eval_every", CURVE["eval_every"])
        curve_trials = pick(self.curve_trials, "curve_trials", CURVE["curve_trials"])
        if min(online_steps, warmup_steps, eval_every) < 0 or demos < 1 or trials < 0:
            raise ConfigError(
                "--steps, --warmup-steps and --eval-every must be >= 0, --demos >= 1, "
                "--eval-trials >= 0"
            )
        if curve_trials < 1:
            raise ConfigError("--curve-trials must be >= 1 (--eval-every 0 turns the curve off)")
        env_id = self.env_id or preset["env_id"]
        user = self._check_user_env(env_id)
        if not user:
            self._check_shares(self.obs_mode or preset["obs_mode"])
        if (self.preset == "vla") != (self.backbone is not None) or (
            self.backbone and self.on_fleet
        ):
            raise ConfigError(
                "--preset vla needs --backbone NAME:PATH (e.g. smolvla:models/smolvlm), "
                "--backbone is only for --preset vla, and it runs in-process (no "
                "--actors/--robots yet)"
            )
        robots = self._robots()
        agent, network = self._learner_settings(preset, warmup_steps, user)
        run_dir = Path(self.output_dir) / (self.name or self.preset)
        return RunPlan(
            config=self,
            env_id=env_id,
            obs_mode=self.obs_mode or preset["obs_mode"],
            run_dir=run_dir,
            store=Path(self.store) if self.store is not None else run_dir / "store",
            online_steps=online_steps,
            warmup_steps=warmup_steps,
            demos=demos,
            eval_trials=trials,
            eval_every=eval_every,
            curve_trials=curve_trials,
            agent_kwargs=agent,
            network=network,
            env_kwargs={"chained_starts": self.chained_starts} if self.chained_starts else {},
            robots=robots,
            expert=self.expert,
            tasks=tuple(t.strip() for t in self.tasks.split(",") if t.strip())
            if self.tasks
            else None,
        )

    def _robots(self) -> list[str] | None:
        """The fleet's robot presets (None: ``actors`` nominal robots, or no fleet)."""
        from daft_env.robots import parse_robots

        robots = None if self.robots is None else [r.name for r in parse_robots(self.robots)]
        if robots is not None and self.actors is not None and self.actors != len(robots):
            raise ConfigError(f"--actors {self.actors} but --robots names {len(robots)} robots")
        if robots is None and self.actors is not None and self.actors < 1:
            raise ConfigError(f"--actors must be >= 1, got {self.actors}")
        return robots

    def _check_user_env(self, env_id: str) -> bool:
        """Whether ``env_id`` is another env than DAFT's; checks what such a run may set."""
        from daft_env.adapters import is_daft_id

        if is_daft_id(env_id):
            if self.expert is not None or self.tasks is not None:
                raise ConfigError(
                    "--expert and --tasks are for your own env (--env module:EnvId); the bolt "
                    "envs use DAFT's scripted experts and run their own tasks"
                )
            return False
        if self.expert is None:
            raise ConfigError(
                f"--env {env_id} is not one of DAFT's bolt envs, so DAFT has no scripted expert "
                "for it: give its plan, --expert module:callable (an observation -> action "
                "controller; the demonstrator and the simulated operator)"
            )
        bolt_only = {
            "--obs-mode": self.obs_mode is not None,
            "--train-perception-error": bool(self.train_perception_error),
            "--perception-error": self.perception_error is not None,
            "--chained-starts": bool(self.chained_starts),
            "--backbone (preset vla)": self.backbone is not None or self.preset == "vla",
            "--actors/--robots": self.on_fleet,
        }
        used = [flag for flag, on in bolt_only.items() if on]
        if used:
            raise ConfigError(
                f"{', '.join(used)}: the bolt cell's (its observation modes, its perception "
                "error, its chained starts, its VLA cache, its simulated robot fleet); leave them "
                f"out on --env {env_id}"
            )
        return True

    def _check_shares(self, obs_mode: str) -> None:
        if not 0.0 <= self.train_perception_error <= 1.0:
            raise ConfigError(
                f"--train-perception-error is a share of training episodes in [0, 1]; got "
                f"{self.train_perception_error}"
            )
        if self.train_perception_error and obs_mode != "state":
            raise ConfigError(
                "--train-perception-error offsets the state observation only; use --preset state"
            )
        if self.on_fleet and (
            self.train_perception_error
            or self.operator_rate != OPERATOR_RATE
            or self.chained_starts
        ):
            raise ConfigError(
                "--train-perception-error, --operator-rate and --chained-starts set the "
                "in-process training env; the fleet's robots make their own (leave them out "
                "with --actors/--robots)"
            )
        if not 0.0 <= self.chained_starts <= 1.0:
            raise ConfigError(f"--chained-starts is a share in [0, 1]; got {self.chained_starts}")
        if self.perception_error is not None and self.perception_error <= 0:
            raise ConfigError(
                f"--perception-error is the largest offset in metres, > 0; got "
                f"{self.perception_error} (leave --train-perception-error out to train without it)"
            )

    def _learner_settings(
        self, preset: dict[str, Any], warmup_steps: int, user: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(DualActorAgent keyword arguments, network settings): preset, tiny, flags, --set.

        On another env than DAFT's the preset's backbone (the bolt cell's) is left to the agent,
        which picks the generic one (``--set backbone=...`` still chooses).
        """
        agent_kwargs = dict(preset["agent"])
        network = dict(preset["network"])
        if user:
            network.pop("backbone", None)
        agent_kwargs["warmup_steps"] = warmup_steps
        if self.tiny:
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
            if self.preset == "pixels" and not user:
                network["backbone_kwargs"] = {"image_features": 16, "channels": 4}
        if self.utd is not None:
            agent_kwargs["utd_ratio"] = self.utd
        if self.batch_size is not None:
            agent_kwargs["batch_size"] = self.batch_size
        set_agent, set_network = parse_overrides(self.overrides)
        agent_kwargs.update(set_agent)
        network.update(set_network)
        return agent_kwargs, network


@dataclass(frozen=True)
class RunPlan:
    """A :class:`RunConfig` resolved: the concrete sizes and paths of one run."""

    config: RunConfig
    env_id: str
    obs_mode: str
    run_dir: Path
    store: Path
    online_steps: int
    warmup_steps: int
    demos: int
    eval_trials: int
    eval_every: int
    curve_trials: int
    agent_kwargs: dict[str, Any]
    network: dict[str, Any]
    env_kwargs: dict[str, Any]
    robots: list[str] | None = None
    expert: str | None = None
    tasks: tuple[str, ...] | None = None

    @property
    def user_env(self) -> bool:
        """Whether the run is on another env than DAFT's (it has an ``expert``)."""
        return self.expert is not None

    @property
    def checkpoint(self) -> Path:
        """``<run>/checkpoint.zip``."""
        return self.run_dir / "checkpoint.zip"


def parse_overrides(items: tuple[str, ...] | list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``KEY=VALUE`` strings -> (agent keyword arguments, network settings); VALUE is a literal.

    A key that names a :class:`~daft_agent.policies.NetworkConfig` field (``actor_hidden``,
    ``backbone``, ...) goes into ``policy_kwargs``; any other must be a DualActorAgent argument.
    """
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


__all__ = [
    "CURVE",
    "PRESETS",
    "TINY",
    "RunConfig",
    "RunPlan",
    "parse_overrides",
]
