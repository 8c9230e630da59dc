"""``DualActorAgent``: DAFT's learner as a Stable-Baselines3 algorithm (Section IV, Algorithm 1).

1. :meth:`DualActorAgent.warmup` (offline): Cal-QL critics and the consistency actor with
   lambda = (1.0, 0.1), on B/N demonstrations per task per update.
2. :meth:`DualActorAgent.learn` (online): an interaction loop (an
   :class:`~daft_agent.actors.ActorLoop`) and the learner (a background thread run by an
   :class:`~daft_agent.actors.OnlineRunner`, updating through a :class:`~daft_agent.update.Learner`).
   Bellman critics, lambda = (1.0, 0.1) (the paper's is (0.5, 0.5); ``weights.LambdaSchedule``
   says why), B/2N demos + B/2N rollouts per task, refinement actor on the talk-tweak buffer.

As in SB3's SAC, network settings are ``policy_kwargs`` (:class:`~daft_agent.policies.NetworkConfig`)
and the learner's hyperparameters constructor arguments (defaults: :class:`LearnerConfig`,
:class:`RunnerConfig`). Checkpoints (:meth:`save`) carry every network and optimiser, the
counters, the phase and a format version (:data:`CHECKPOINT_FORMAT`); buffers are rebuilt from
the episode store (``store``), passed back on :meth:`load`. Any env with a continuous action
runs: :mod:`daft_agent.env_contract` adapts it (:class:`~daft_env.adapters.DaftSpaces`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common import utils as sb3_utils
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.type_aliases import MaybeCallback

from daft_agent import env_contract as contract
from daft_agent.actors import ActorLoop, LocalWeightsHub, OnlineRunner, RunnerConfig, actor_copy
from daft_agent.backbones.registry import EMBEDDING_KEY
from daft_agent.buffers import DualActorReplay
from daft_agent.checkpoints import CHECKPOINT_FORMAT, check_checkpoint
from daft_agent.commands import NULL_COMMAND, CommandEncoder, make_command_encoder
from daft_agent.errors import AgentConfigError, CheckpointError
from daft_agent.policies import DualActorPolicy, obs_as_tensors
from daft_agent.stats import TaskStats
from daft_agent.update import Learner, LearnerConfig
from daft_agent.weights import LambdaSchedule
from daft_env.durable import write_with
from daft_env.layout import DAFT_LAYOUT

#: attributes that never go into a checkpoint: runtime objects and external resources.
_RUNTIME_ATTRS = [
    "store",
    "replay",
    "learner",
    "command_encoder",
    "hub",
    "_policy_lock",
    "_stats_lock",
    "_learner_stats",
    "_task_stats",
    "_buffers_loaded",
    "episode_queue",
    "fleet_runner",
]
#: constructor arguments that are :class:`LearnerConfig` fields (``lambdas`` is built from
#: ``lambda_warmup`` and ``lambda_online``), and those that are :class:`RunnerConfig` fields.
_LEARNER_ARGS = tuple(f.name for f in fields(LearnerConfig) if f.name != "lambdas")
_RUNNER_ARGS = tuple(f.name for f in fields(RunnerConfig))
_OWN_ARGS = (
    "lambda_warmup",
    "lambda_online",
    "warmup_steps",
    "min_rollouts_per_task",
    "interventions_as_demos",
)


class DualActorAgent(BaseAlgorithm):
    """The dual-actor HIL-RL agent (primary consistency actor + refinement actor + per-task critics).

    Args:
        policy: ``"DualActorPolicy"`` (or ``"MultiInputPolicy"``, or the class).
        env: a single Gymnasium env (or 1-env VecEnv, or an env id) with a continuous (Box)
            action; any other than DAFT's Dict observation and Box(-1, 1) action is wrapped in
            :class:`~daft_env.adapters.DaftSpaces` (rescaled actions, a Box observation as a
            Dict, the task id). Under the intervention wrapper for human-in-the-loop training.
        store: episode store (``add``, ``episodes``, ``count``; :class:`daft_env.store.EpisodeStore`);
            buffers load from it and online episodes are added to it. Not saved in checkpoints:
            pass it again to :meth:`load`.
        tasks: task names in ``task_id`` order. Default: the env's ``task_names``, else a
            multi-task env's first ``n`` bolt tasks (``n`` = size of its ``task_id`` space), else
            a single-task env's own (its ``task`` attribute, e.g. ``BoltEnv.task``).
        command_encoder: ``"vocabulary"``, ``"t5:<local dir>"``, or a :class:`CommandEncoder`
            instance (an instance is not saved; pass it again to :meth:`load`).
        learning_rate: Adam step size of every network.
        batch_size: B of Algorithm 1.
        refinement_batch_size: minibatch of talk-tweak triplets per refinement update.
        gamma: discount.
        tau: Polyak rate of the target critics.
        lambda_warmup, lambda_online: (lambda_1, lambda_2) of Eq. 6 per phase.
        eta: (eta_1, eta_2, eta_3) of Eq. 11.
        task_weight_c, task_weight_clip: c and [eps_min, eps_max] of Eq. 16.
        calql_alpha, calql_n_actions, calql_temperature: Cal-QL regulariser.
        refinement_bc_trains_primary, bc_on_rollouts, normalize_q: see :class:`LearnerConfig`.
        refinement, train_critics, shared_critic: the ablation switches of :class:`LearnerConfig`
            (Table I's baselines, :mod:`daft_agent.baselines`).
        warmup_steps: offline updates run by :meth:`learn` before going online (minus those done).
        utd_ratio, max_update_lag, weight_sync_interval, lockstep: pacing of the learner
            against the env, see :class:`~daft_agent.actors.RunnerConfig`. ``lockstep=True``
            makes two runs with the same ``seed`` store identical episodes.
        min_rollouts_per_task: rollout transitions each task needs before online updates.
        interventions_as_demos: intervened steps join the demonstrations (Algorithm 1, lines
            28-29), imitated with the operator's intended action (``Episode.labels``; critics
            learn from the executed one). The paper's default, True: ``daft train --preset
            state`` (seed 0, 50 trials) reached 98/100/100 % with it, 98/100/80 % and 100/100/26 %
            without (two runs). False keeps them in the rollouts and talk-tweak buffer only.
        success_window: episodes per task in the rolling success rates.
        policy_kwargs: network settings, the fields of :class:`~daft_agent.policies.NetworkConfig`
            (``backbone``, ``backbone_kwargs``, ``actor_hidden``, ``critic_hidden``,
            ``refinement_hidden``, ``n_critics``, ``K``, ``sigma_min``, ``sigma_data``,
            ``n_sigmas``, ``mu_max``).
        tensorboard_log: TensorBoard directory (None: no TensorBoard).
        verbose: SB3 verbosity.
        seed: seed of torch, numpy, the env and the interaction loop's noise.
        device: torch device.
    """

    policy_aliases = {"DualActorPolicy": DualActorPolicy, "MultiInputPolicy": DualActorPolicy}
    policy: DualActorPolicy

    def __init__(
        self,
        policy: str | type[DualActorPolicy] = "DualActorPolicy",
        env: Any = None,
        store: Any = None,
        tasks: Sequence[str] | None = None,
        command_encoder: str | CommandEncoder = "vocabulary",
        learning_rate: float = 3e-4,
        batch_size: int = LearnerConfig.batch_size,
        refinement_batch_size: int = LearnerConfig.refinement_batch_size,
        gamma: float = LearnerConfig.gamma,
        tau: float = LearnerConfig.tau,
        lambda_warmup: tuple[float, float] = LambdaSchedule.warmup,
        lambda_online: tuple[float, float] = LambdaSchedule.online,
        eta: tuple[float, float, float] = LearnerConfig.eta,
        task_weight_c: float = LearnerConfig.task_weight_c,
        task_weight_clip: tuple[float, float] = LearnerConfig.task_weight_clip,
        calql_alpha: float = LearnerConfig.calql_alpha,
        calql_n_actions: int = LearnerConfig.calql_n_actions,
        calql_temperature: float = LearnerConfig.calql_temperature,
        refinement_bc_trains_primary: bool = LearnerConfig.refinement_bc_trains_primary,
        bc_on_rollouts: bool = LearnerConfig.bc_on_rollouts,
        normalize_q: bool = LearnerConfig.normalize_q,
        refinement: bool = LearnerConfig.refinement,
        train_critics: bool = LearnerConfig.train_critics,
        shared_critic: bool = LearnerConfig.shared_critic,
        warmup_steps: int = 2000,
        utd_ratio: float = RunnerConfig.utd_ratio,
        max_update_lag: int = RunnerConfig.max_update_lag,
        weight_sync_interval: int = RunnerConfig.weight_sync_interval,
        lockstep: bool = RunnerConfig.lockstep,
        min_rollouts_per_task: int = 100,
        interventions_as_demos: bool = True,
        success_window: int = 20,
        policy_kwargs: dict[str, Any] | None = None,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "cpu",
        _init_setup_model: bool = True,
    ) -> None:
        # The hyperparameters become attributes under their own names (SB3's convention, so
        # load(..., name=value) overrides one); taken from the signature, not listed again.
        args = dict(locals())
        # any env with a continuous action: rescaled to Box(-1, 1), a Box observation as a Dict
        env = contract.adapt_env(env, tasks)
        super().__init__(
            policy,
            env,
            learning_rate,
            policy_kwargs=policy_kwargs,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            support_multi_env=False,
            supported_action_spaces=(spaces.Box,),
        )
        for name in (*_LEARNER_ARGS, *_RUNNER_ARGS, *_OWN_ARGS):
            if name in args:
                setattr(self, name, args[name])
        self.store = store
        self.tasks = None if tasks is None else tuple(tasks)
        #: the talk-and-tweak description the command encoder reads (saved in checkpoints)
        self.action_layout = contract.env_layout(env)
        if isinstance(command_encoder, str):
            self.command_encoder_spec, self.command_encoder = command_encoder, None
        else:
            self.command_encoder_spec, self.command_encoder = "custom", command_encoder
        self.success_window = int(success_window)
        self.checkpoint_format = CHECKPOINT_FORMAT
        # Progress counters: saved in checkpoints, so a resumed run continues them.
        self.warmup_updates_done = 0
        self.online_updates_done = 0
        self.online_env_steps = 0
        self.normalizer_fitted = False
        self._validate_hyperparameters()
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ setup
    def _validate_hyperparameters(self) -> None:
        if self.warmup_steps < 0:
            raise AgentConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.min_rollouts_per_task < 1 or self.success_window < 1:
            raise AgentConfigError("min_rollouts_per_task and success_window must be >= 1")
        self._learner_config()  # validates
        self._runner_config()  # validates

    def _as_demos(self) -> bool:
        # checkpoints from before the switch existed load with Algorithm 1's default
        return bool(getattr(self, "interventions_as_demos", True))

    def _learner_config(self) -> LearnerConfig:
        given = {n: getattr(self, n) for n in _LEARNER_ARGS if n in self.__dict__}
        lambdas = LambdaSchedule(tuple(self.lambda_warmup), tuple(self.lambda_online))
        return LearnerConfig(**given, lambdas=lambdas)

    def _runner_config(self) -> RunnerConfig:
        return RunnerConfig(**{n: getattr(self, n) for n in _RUNNER_ARGS if n in self.__dict__})

    def _setup_model(self) -> None:
        if getattr(self, "observation_space", None) is None:
            raise AgentConfigError(
                "DualActorAgent needs an env (or DualActorAgent.load(path, env=...))"
            )
        contract.check_spaces(self.action_space, self.observation_space)
        self.tasks = contract.resolve_tasks(self.observation_space, self.tasks, self.env)
        # checkpoints from before layouts existed were all on DAFT's bolt envs
        layout = getattr(self, "action_layout", DAFT_LAYOUT)
        self.action_layout = contract.check_layout(layout, self.action_space)
        self.policy_kwargs = contract.default_backbone(self.policy_kwargs, self.observation_space)
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        if self.command_encoder is None:
            if self.command_encoder_spec == "custom":
                raise CheckpointError(
                    "this checkpoint was trained with a custom command encoder instance, which "
                    "checkpoints do not hold; pass it again: DualActorAgent.load(path, env, "
                    "command_encoder=<the encoder>)"
                )
            self.command_encoder = make_command_encoder(self.command_encoder_spec, layout)
        # Fused Adam: one kernel per step instead of several per tensor (many small tensors here).
        kwargs: dict[str, Any] = {"optimizer_kwargs": {"fused": True}, **self.policy_kwargs}
        self.policy = self.policy_class(
            self.observation_space,
            self.action_space,
            self.lr_schedule,
            tasks=self.tasks,
            command_dim=self.command_encoder.dim,
            **kwargs,
        ).to(self.device)
        obs_keys = (
            [EMBEDDING_KEY]
            if self.policy.net.backbone == "embedding"
            else list(self.observation_space.spaces)
        )
        self.replay = DualActorReplay(
            self.tasks, obs_keys, self.gamma, self.min_rollouts_per_task, self._as_demos()
        )
        self.learner = Learner(
            self.policy, self.replay, self.command_encoder, self._learner_config(), self.seed
        )
        self.hub = LocalWeightsHub()
        self.fleet_runner: Any = None
        self.episode_queue: queue.Queue = queue.Queue()
        self._policy_lock = threading.RLock()
        self._stats_lock = threading.Lock()
        self._learner_stats: dict[str, list[float]] = {}
        self._task_stats = TaskStats(self.tasks, self.success_window)
        self._buffers_loaded = False

    def set_env(self, env: Any, force_reset: bool = True) -> None:
        """Use ``env`` from now on (rescaled to DAFT's face as in the constructor)."""
        super().set_env(contract.adapt_env(env, self.tasks), force_reset)

    @property
    def backbone(self) -> str:
        """Name of the observation backbone (the ``backbone`` of ``policy_kwargs``), e.g. ``"state"``."""
        return self.policy.net.backbone

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + _RUNTIME_ATTRS

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return [
            "policy",
            "policy.actor.optimizer",
            "policy.refinement.optimizer",
            "policy.critics.optimizer",
        ], []

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: Any, exclude: Any = None, include: Any = None) -> None:
        """Write a checkpoint: a consistent snapshot, written atomically.

        Taken under the learner's lock (networks, optimisers and counters of one update, from any
        thread or callback during :meth:`learn`), written through
        :func:`daft_env.durable.write_with` (temp file, fsync, rename): a process killed during
        ``save`` leaves the previous checkpoint intact. No suffix: ``.zip`` is added (as in SB3).
        """
        if not isinstance(path, (str, Path)):  # a file object: SB3 writes into it
            with self._policy_lock:
                super().save(path, exclude, include)
            return
        target = Path(path)
        if target.suffix == "":
            target = target.with_name(target.name + ".zip")
        with self._policy_lock:
            write_with(target, lambda fh: BaseAlgorithm.save(self, fh, exclude, include))

    @classmethod
    def load(  # type: ignore[override]
        cls, path: Any, env: Any = None, device: torch.device | str = "cpu", **kwargs: Any
    ) -> DualActorAgent:
        """Rebuild an agent from :meth:`save`'s zip file (SB3's ``load`` with clear errors).

        ``store`` (and a custom ``command_encoder``) are not in the checkpoint; pass them here.

        Raises:
            CheckpointError: the file is missing, corrupt (naming the damaged member), of another
                format version (naming both versions and the fix), ``env``'s spaces differ from
                the checkpoint's, or ``kwargs`` change the network configuration.
        """
        if isinstance(path, (str, Path)):
            path = check_checkpoint(Path(path))
        env = contract.adapt_env(env)
        try:
            return super().load(path, env=env, device=device, **kwargs)  # type: ignore[return-value]
        except CheckpointError:
            raise
        except FileNotFoundError as exc:
            raise CheckpointError(f"no checkpoint at {path}: {exc}") from exc
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint {path} does not fit this agent: it was saved with another configuration "
                f"or for an env with other spaces ({type(exc).__name__}: {str(exc).splitlines()[0][:400]}). "
                "Load it with the env and settings it was trained with, or start a new run directory."
            ) from exc

    # ------------------------------------------------------------------ data
    def _ensure_logger(self) -> None:
        if getattr(self, "_logger", None) is None:
            self._logger = sb3_utils.configure_logger(
                self.verbose, self.tensorboard_log, "DualActor", True
            )
            self._custom_logger = True

    def load_buffers(self, force: bool = False) -> None:
        """Fill the buffers from ``store`` once (again with ``force``); fit input normalisers on demos."""
        if self._buffers_loaded and not force:
            return
        if self.store is not None:
            if force:
                self.replay = DualActorReplay(
                    self.tasks,
                    self.replay.obs_keys,
                    self.gamma,
                    self.min_rollouts_per_task,
                    self._as_demos(),
                )
                self.learner.replay = self.replay
            self.replay.load_from_store(self.store)
        self._buffers_loaded = True
        self._fit_normalizers()

    def _fit_normalizers(self) -> None:
        if self.normalizer_fitted or any(len(self.replay.demos[t]) == 0 for t in self.tasks):
            return
        obs = [self.replay.demos[t].all_observations() for t in self.tasks]
        self.policy.fit_normalizers({k: np.concatenate([o[k] for o in obs]) for k in obs[0]})
        self.normalizer_fitted = True

    def add_episode(self, episode: Any, to_store: bool = True) -> None:
        """File a finished episode into the buffers (and the store) and the per-task statistics."""
        if to_store and self.store is not None:
            self.store.add(episode)
        self.replay.add_episode(episode)
        if episode.kind != "demos":
            self._task_stats.add(episode)
        self._fit_normalizers()

    def success_rates(self, autonomous: bool = False) -> dict[str, float]:
        """Rolling success rate per task over the last ``success_window`` online episodes.

        Args:
            autonomous: count only episodes that succeeded with no intervened step (the policy
                alone). By default an episode the operator rescued counts as a success too, which
                overstates what the policy can do wherever the operator takes over often.
        """
        return self._task_stats.success_rates(autonomous)

    # ------------------------------------------------------------------ training
    def _record_learner_stats(self, stats: dict[str, float]) -> None:
        with self._stats_lock:
            for k, v in stats.items():
                self._learner_stats.setdefault(k, []).append(v)

    def _flush_learner_stats(self, prefix: str = "") -> None:
        with self._stats_lock:
            stats, self._learner_stats = self._learner_stats, {}
        for k, v in stats.items():
            self.logger.record(prefix + k, float(np.mean(v)))

    def warmup(self, n_steps: int, log_interval: int = 100, progress: Any = None) -> DualActorAgent:
        """Offline warm-up (Algorithm 1, lines 2-8): Cal-QL critics + consistency actor on demos.

        Raises:
            EmptyStoreError: a task has no demonstrations.
        """
        if n_steps < 0:
            raise AgentConfigError(f"n_steps must be >= 0, got {n_steps}")
        self._ensure_logger()
        self.load_buffers()
        self.replay.check_demos()
        self._fit_normalizers()
        self.policy.train()
        for i in range(n_steps):
            with self._policy_lock:
                stats = self.learner.update("warmup")
                self.warmup_updates_done += 1
                self._n_updates += 1
            self._record_learner_stats(stats)
            if progress is not None:
                progress(i + 1, n_steps)
            if (i + 1) % log_interval == 0 or i + 1 == n_steps:
                self._flush_learner_stats("warmup/")
                self.logger.record("warmup/updates", self.warmup_updates_done)
                self.logger.dump(step=self.warmup_updates_done)
        return self

    def _on_online_update(self, stats: dict[str, float]) -> None:
        # Called by the runner under the policy lock, so a checkpoint's counters match its weights.
        self.online_updates_done += 1
        self._n_updates += 1
        self._record_learner_stats(stats)

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "DualActor",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
        fleet: Any = None,
    ) -> DualActorAgent:
        """Warm up (if not done), then train online for ``total_timesteps`` env steps.

        The interaction source is this process's env (an :class:`~daft_agent.actors.ActorLoop`
        here, the learner in a background thread, or in this thread with ``lockstep=True``), or
        ``fleet``: a :class:`~daft_agent.fleet.runner.FleetConfig` whose Ray robot actors step
        their own envs (RQ5), ``total_timesteps`` counting the steps of all robots together.
        Each finished episode goes to the store and the buffers before ``callback`` sees its
        step (once per env step; False stops), so stopping never loses it. On a fleet,
        ``callback.locals["fleet"]`` is the runner, kept afterwards as :attr:`fleet_runner`.

        Raises:
            FleetError: every robot of ``fleet`` went, or a robot's env raised.
        """
        if self.env is None:
            raise AgentConfigError(
                "learn() needs an env (its spaces, and the interaction unless on a fleet): pass "
                "env= to the constructor or to load(), or call set_env"
            )
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        remaining = self.warmup_steps - self.warmup_updates_done
        self.load_buffers()
        if remaining > 0:
            self.warmup(remaining)
        self.replay.check_demos()
        callback.on_training_start(locals(), globals())
        runner = self._interaction(fleet)
        self.fleet_runner = runner if fleet is not None else None
        n_episodes = 0
        with runner:
            for step in runner.steps(total_timesteps - self.num_timesteps):
                self.num_timesteps += 1
                self.online_env_steps += 1
                for episode in step.episodes:
                    self.add_episode(episode)  # the durable store first: a crash loses nothing
                    n_episodes += 1
                    self._episode_num += 1
                    if log_interval and n_episodes % log_interval == 0:
                        runner.record(self.logger)
                        self.dump_logs()
                dones, infos = np.array([step.done]), [step.info]
                self._update_info_buffer(infos, dones)
                self._update_current_progress_remaining(self.num_timesteps, total_timesteps)
                callback.update_locals(
                    {
                        "infos": infos,
                        "dones": dones,
                        "rewards": np.array([step.reward]),
                        "new_obs": step.obs,
                        "fleet": self.fleet_runner,
                    }
                )
                if not callback.on_step():
                    self.num_timesteps += step.rest  # the chunk's other steps happened too
                    self.online_env_steps += step.rest
                    break
        runner.record(self.logger)
        self.dump_logs()
        callback.on_training_end()
        return self

    def _interaction(self, fleet: Any) -> OnlineRunner:
        """The online phase's interaction source: one in-process loop, or ``fleet``'s runner."""
        pacing = dict(
            learner=self.learner,
            lock=self._policy_lock,
            config=self._runner_config(),
            updates_done=self.online_updates_done,
            on_update=self._on_online_update,
        )
        if fleet is not None:
            return fleet.runner(actor=actor_copy(self.policy), tasks=self.tasks, **pacing)
        loop = ActorLoop(
            contract.single_env(self.env, self.store),
            actor_copy(self.policy),
            self.hub,
            self.tasks,
            self.episode_queue,
            contract.TaskCycle(self.tasks),
            self.seed,
        )
        return OnlineRunner(loop, **pacing)

    @property
    def episodes_done(self) -> int:
        """Online episodes filed since the last ``learn`` that reset the counters."""
        return self._episode_num

    def dump_logs(self) -> None:
        """Write per-task success rates, episode length, intervention rate and every loss term.

        ``rollout/<task>/success_rate`` counts every successful episode, operator-rescued ones
        included; ``rollout/<task>/autonomous_success_rate`` counts only episodes that succeeded
        with no intervened step (what the policy achieves alone).
        """
        self._task_stats.record(self.logger)
        self._flush_learner_stats("train/")
        for k, v in self.replay.sizes().items():
            self.logger.record(f"buffers/{k}", v)
        self.logger.record("time/episodes", self._episode_num)
        self.logger.record("time/online_updates", self.online_updates_done)
        self.logger.record("time/total_timesteps", self.num_timesteps)
        self.logger.dump(step=self.num_timesteps)

    # ------------------------------------------------------------------ acting
    def predict(  # type: ignore[override]
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        command: str | Sequence[str | None] | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Actions for one observation or a batch, through :meth:`DualActorPolicy.act`.

        Without ``command`` the primary actor acts alone (Eq. 1). With a refinement command (a
        string for the whole batch, or one per row; None rows act in primary mode) the refinement
        actor sets the noise mean (Eq. 2). ``deterministic`` uses w = mean instead of a draw.
        """
        tens, batched = obs_as_tensors(observation, self.observation_space, self.device)
        n = next(iter(tens.values())).shape[0]
        vec = mask = None
        if command is not None:
            cmds = [command] * n if isinstance(command, str) else list(command)
            if len(cmds) != n:
                raise AgentConfigError(f"got {len(cmds)} commands for {n} observations")
            vec = self.command_encoder.encode(
                [c if c is not None else NULL_COMMAND for c in cmds]
            ).to(self.device)
            mask = torch.tensor([c is not None for c in cmds], device=self.device)
        with self._policy_lock:
            was_training = self.policy.training
            self.policy.eval()
            try:
                actions = self.policy.act(tens, vec, deterministic, command_mask=mask)
            finally:
                self.policy.train(was_training)
        out = actions.cpu().numpy()
        return (out if batched else out[0]), state


__all__ = ["CHECKPOINT_FORMAT", "DualActorAgent"]
