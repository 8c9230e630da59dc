"""``DualActorAgent``: DAFT's learner as a Stable-Baselines3 algorithm (Section IV, Algorithm 1).

Two phases:

1. :meth:`DualActorAgent.warmup` (offline): Cal-QL critics and the consistency actor with
   lambda = (1.0, 0.1), on B/N demonstrations per task per update.
2. :meth:`DualActorAgent.learn` (online): an interaction loop (this thread, an
   :class:`~daft_agent.actors.ActorLoop`) and a learning loop (a background thread, a
   :class:`~daft_agent.update.Learner`) run concurrently. Bellman critics, lambda = (0.5, 0.5),
   B/2N demos + B/2N rollouts per task, refinement actor on the talk-tweak buffer. The learner is
   rate-limited to ``utd_ratio`` updates per env step so results do not depend on CPU speed.

Checkpoints (:meth:`save`) carry every network and optimiser, the step counters and the phase;
buffers are rebuilt from the episode store (``store``), which is passed back on :meth:`load`.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common import utils as sb3_utils
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import MaybeCallback

from daft_agent.actors import ActorLoop, WeightsHub, actor_copies
from daft_agent.buffers import DualActorReplay
from daft_agent.encoders import EMBEDDING_KEY, CommandEncoder, make_command_encoder
from daft_agent.errors import AgentConfigError, CheckpointError, EmptyStoreError, SpaceMismatchError
from daft_agent.policies import DualActorPolicy, obs_as_tensors
from daft_agent.update import Learner, LearnerConfig
from daft_agent.weights import LambdaSchedule

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
    "_learner_error",
    "_progress",
    "_ready_at_step",
    "_updates_at_ready",
    "episode_queue",
]


class DualActorAgent(BaseAlgorithm):
    """The dual-actor HIL-RL agent (primary consistency actor + refinement actor + per-task critics).

    Args:
        policy: ``"DualActorPolicy"`` (or the class).
        env: a single Gymnasium env (or 1-env VecEnv) with DAFT's Dict observation and 7-d action;
            under the intervention wrapper for human-in-the-loop training.
        store: episode store (``add``, ``episodes``, ``count``); buffers load from it and online
            episodes are added to it. Not saved in checkpoints: pass it again to :meth:`load`.
        tasks: task names in task-id order; default: the first ``n`` of ``daft_env.tasks.TASK_NAMES``
            where ``n`` is the size of the ``task_id`` space.
        backbone: ``"state"``, ``"pixels"`` or ``"embedding"`` (cached frozen-backbone features).
        backbone_kwargs: extra arguments of the backbone.
        command_encoder: ``"vocabulary"``, ``"t5:<local dir>"``, or a :class:`CommandEncoder`
            instance (an instance is not saved; pass it again to :meth:`load`).
        learning_rate: Adam step size of every network.
        batch_size: B of Algorithm 1.
        refinement_batch_size: minibatch of talk-tweak triplets per refinement update.
        gamma: discount.
        tau: Polyak rate of the target critics.
        n_critics: ensemble size per task.
        actor_hidden, critic_hidden, refinement_hidden: MLP widths.
        K: noise scale of Eq. 1 (sigma_max of the consistency policy).
        sigma_min, sigma_data, n_sigmas: consistency parameterisation.
        mu_max: bound of the refinement actor's mu.
        lambda_warmup, lambda_online: (lambda_1, lambda_2) of Eq. 6 per phase.
        eta: (eta_1, eta_2, eta_3) of Eq. 11.
        task_weight_c, task_weight_clip: c and [eps_min, eps_max] of Eq. 16.
        calql_alpha, calql_n_actions, calql_temperature: Cal-QL regulariser.
        warmup_steps: offline updates run by :meth:`learn` before going online (minus those done).
        utd_ratio: learner updates per online env step.
        min_rollouts_per_task: rollout transitions each task needs before online updates.
        max_update_lag: the interaction loop pauses when the learner is this many updates behind.
        weight_sync_interval: updates between weight publications to the actors.
        refinement_bc_trains_primary: let Eq. 8's gradient reach the primary actor.
        bc_on_rollouts: apply the BC term (Eq. 5) to the whole online batch, rollouts included,
            as the paper's Eq. 6 does (default). False restricts BC to expert actions (demos and
            interventions); in our sim runs that did not help (assemble 64% vs 80%, one run each).
        normalize_q: divide the actor's Q term by the batch's mean |Q| (TD3+BC), so lambda_2 is a
            weight relative to BC rather than to the scale of the returns. Off by default: with
            sparse 0/1 rewards mean |Q| < 1, so it amplified the Q term and in our state-preset
            runs cut assemble from 60-80% to 40% (4% with BC on expert actions only).
        success_window: episodes per task in the rolling success rate.
        tensorboard_log: TensorBoard directory (None: no TensorBoard).
        verbose: SB3 verbosity.
        seed: seed of torch, numpy and the env.
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
        backbone: str = "state",
        backbone_kwargs: dict[str, Any] | None = None,
        command_encoder: str | CommandEncoder = "vocabulary",
        learning_rate: float = 3e-4,
        batch_size: int = 256,
        refinement_batch_size: int = 64,
        gamma: float = 0.97,
        tau: float = 0.005,
        n_critics: int = 2,
        actor_hidden: Sequence[int] = (256, 256),
        critic_hidden: Sequence[int] = (256, 256),
        refinement_hidden: Sequence[int] = (128, 128),
        K: float = 1.0,
        sigma_min: float = 0.002,
        sigma_data: float = 0.5,
        n_sigmas: int = 40,
        mu_max: float = 3.0,
        lambda_warmup: tuple[float, float] = (1.0, 0.1),
        lambda_online: tuple[float, float] = (0.5, 0.5),
        eta: tuple[float, float, float] = (1.0, 0.1, 0.1),
        task_weight_c: float = 0.1,
        task_weight_clip: tuple[float, float] = (0.8, 1.2),
        calql_alpha: float = 1.0,
        calql_n_actions: int = 4,
        calql_temperature: float = 1.0,
        warmup_steps: int = 2000,
        utd_ratio: float = 1.0,
        min_rollouts_per_task: int = 100,
        max_update_lag: int = 200,
        weight_sync_interval: int = 20,
        refinement_bc_trains_primary: bool = True,
        bc_on_rollouts: bool = True,
        normalize_q: bool = False,
        success_window: int = 20,
        policy_kwargs: dict[str, Any] | None = None,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "cpu",
        _init_setup_model: bool = True,
    ) -> None:
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
        self.store = store
        self.tasks = None if tasks is None else tuple(tasks)
        self.backbone = backbone
        self.backbone_kwargs = dict(backbone_kwargs or {})
        if isinstance(command_encoder, str):
            self.command_encoder_spec, self.command_encoder = command_encoder, None
        else:
            self.command_encoder_spec, self.command_encoder = "custom", command_encoder
        self.batch_size = int(batch_size)
        self.refinement_batch_size = int(refinement_batch_size)
        self.gamma, self.tau = float(gamma), float(tau)
        self.n_critics = int(n_critics)
        self.actor_hidden = tuple(actor_hidden)
        self.critic_hidden = tuple(critic_hidden)
        self.refinement_hidden = tuple(refinement_hidden)
        self.K, self.sigma_min, self.sigma_data, self.n_sigmas = (
            float(K),
            float(sigma_min),
            float(sigma_data),
            int(n_sigmas),
        )
        self.mu_max = float(mu_max)
        self.lambda_warmup, self.lambda_online = tuple(lambda_warmup), tuple(lambda_online)
        self.eta = tuple(eta)
        self.task_weight_c, self.task_weight_clip = float(task_weight_c), tuple(task_weight_clip)
        self.calql_alpha, self.calql_n_actions, self.calql_temperature = (
            float(calql_alpha),
            int(calql_n_actions),
            float(calql_temperature),
        )
        self.warmup_steps = int(warmup_steps)
        self.utd_ratio = float(utd_ratio)
        self.min_rollouts_per_task = int(min_rollouts_per_task)
        self.max_update_lag = int(max_update_lag)
        self.weight_sync_interval = int(weight_sync_interval)
        self.refinement_bc_trains_primary = bool(refinement_bc_trains_primary)
        self.bc_on_rollouts = bool(bc_on_rollouts)
        self.normalize_q = bool(normalize_q)
        self.success_window = int(success_window)
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
        if self.utd_ratio <= 0:
            raise AgentConfigError(f"utd_ratio must be > 0, got {self.utd_ratio}")
        if (
            self.min_rollouts_per_task < 1
            or self.max_update_lag < 1
            or self.weight_sync_interval < 1
        ):
            raise AgentConfigError(
                "min_rollouts_per_task, max_update_lag and weight_sync_interval must be >= 1"
            )
        if self.success_window < 1:
            raise AgentConfigError("success_window must be >= 1")
        LambdaSchedule(self.lambda_warmup, self.lambda_online)  # validates
        self._learner_config()  # validates

    def _learner_config(self) -> LearnerConfig:
        return LearnerConfig(
            batch_size=self.batch_size,
            refinement_batch_size=self.refinement_batch_size,
            gamma=self.gamma,
            tau=self.tau,
            lambdas=LambdaSchedule(self.lambda_warmup, self.lambda_online),
            eta=self.eta,
            task_weight_c=self.task_weight_c,
            task_weight_clip=self.task_weight_clip,
            calql_alpha=self.calql_alpha,
            calql_n_actions=self.calql_n_actions,
            calql_temperature=self.calql_temperature,
            refinement_bc_trains_primary=self.refinement_bc_trains_primary,
            bc_on_rollouts=self.bc_on_rollouts,
            normalize_q=self.normalize_q,
        )

    def _check_spaces(self) -> None:
        act = self.action_space
        if not (
            isinstance(act, spaces.Box)
            and act.shape == (7,)
            and np.allclose(act.low, -1)
            and np.allclose(act.high, 1)
        ):
            raise SpaceMismatchError(
                f"DualActorAgent needs DAFT's action space Box(-1, 1, (7,)) (dx, dy, dz, droll, dpitch, "
                f"dyaw, gripper); the env has {act}"
            )
        if not isinstance(self.observation_space, spaces.Dict):
            raise SpaceMismatchError(
                f"DualActorAgent needs a Dict observation space; the env has {self.observation_space}"
            )

    def _resolve_tasks(self) -> tuple[str, ...]:
        from daft_env.tasks import TASK_NAMES

        tid = self.observation_space.spaces.get("task_id")
        if self.tasks is not None:
            if tid is not None and int(tid.n) != len(self.tasks):
                raise SpaceMismatchError(
                    f"tasks={list(self.tasks)} but the env's task_id space has {tid.n} values"
                )
            return self.tasks
        if tid is None:
            raise AgentConfigError(
                "the env has no 'task_id' observation (a single-task env); pass tasks=['<name>'] "
                f"naming its task, one of {list(TASK_NAMES)}"
            )
        n = int(tid.n)
        if n > len(TASK_NAMES):
            raise AgentConfigError(
                f"task_id has {n} values but only {len(TASK_NAMES)} tasks are known; pass tasks=[...]"
            )
        return tuple(TASK_NAMES[:n])

    def _setup_model(self) -> None:
        if getattr(self, "observation_space", None) is None:
            raise AgentConfigError(
                "DualActorAgent needs an env (or DualActorAgent.load(path, env=...))"
            )
        self._check_spaces()
        self.tasks = self._resolve_tasks()
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        if self.command_encoder is None:
            if self.command_encoder_spec == "custom":
                raise CheckpointError(
                    "this checkpoint was trained with a custom command encoder instance, which "
                    "checkpoints do not hold; pass it again: DualActorAgent.load(path, env, "
                    "command_encoder=<the encoder>)"
                )
            self.command_encoder = make_command_encoder(self.command_encoder_spec)
        kwargs = dict(
            tasks=self.tasks,
            backbone=self.backbone,
            backbone_kwargs=self.backbone_kwargs,
            command_dim=self.command_encoder.dim,
            actor_hidden=self.actor_hidden,
            critic_hidden=self.critic_hidden,
            refinement_hidden=self.refinement_hidden,
            n_critics=self.n_critics,
            K=self.K,
            sigma_min=self.sigma_min,
            sigma_data=self.sigma_data,
            n_sigmas=self.n_sigmas,
            mu_max=self.mu_max,
        )
        # Fused Adam: one kernel per step instead of several per tensor (many small tensors here).
        kwargs["optimizer_kwargs"] = {"fused": True}
        kwargs.update(self.policy_kwargs)
        self.policy = self.policy_class(
            self.observation_space, self.action_space, self.lr_schedule, **kwargs
        ).to(self.device)
        obs_keys = (
            [EMBEDDING_KEY] if self.backbone == "embedding" else list(self.observation_space.spaces)
        )
        self.replay = DualActorReplay(self.tasks, obs_keys, self.gamma, self.min_rollouts_per_task)
        self.learner = Learner(
            self.policy, self.replay, self.command_encoder, self._learner_config(), self.seed
        )
        self.hub = WeightsHub()
        self.episode_queue: queue.Queue = queue.Queue()
        self._policy_lock = threading.RLock()
        self._stats_lock = threading.Lock()
        self._learner_stats: dict[str, list[float]] = {}
        self._task_stats = {
            t: {k: deque(maxlen=self.success_window) for k in ("success", "length", "intervention")}
            for t in self.tasks
        }
        self._buffers_loaded = False
        self._learner_error: BaseException | None = None
        self._progress = threading.Condition()
        self._ready_at_step: int | None = None
        self._updates_at_ready = 0

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + _RUNTIME_ATTRS

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return [
            "policy",
            "policy.actor.optimizer",
            "policy.refinement.optimizer",
            "policy.critics.optimizer",
        ], []

    @classmethod
    def load(
        cls, path: Any, env: Any = None, device: torch.device | str = "cpu", **kwargs: Any
    ) -> DualActorAgent:  # type: ignore[override]
        """Rebuild an agent from :meth:`save`'s zip file (SB3's ``load`` with clear errors).

        ``store`` (and a custom ``command_encoder``) are not in the checkpoint; pass them here.

        Raises:
            CheckpointError: the file is missing or corrupt, ``env``'s spaces differ from the
                checkpoint's, or ``kwargs`` change the network configuration.
        """
        try:
            return super().load(path, env=env, device=device, **kwargs)  # type: ignore[return-value]
        except CheckpointError:
            raise
        except FileNotFoundError as exc:
            raise CheckpointError(f"no checkpoint at {path}: {exc}") from exc
        except (RuntimeError, ValueError, KeyError) as exc:
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
                    self.tasks, self.replay.obs_keys, self.gamma, self.min_rollouts_per_task
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
            st = self._task_stats[episode.task]
            st["success"].append(float(episode.success))
            st["length"].append(float(len(episode)))
            st["intervention"].append(float(np.mean(episode.intervened)) if len(episode) else 0.0)
        self._fit_normalizers()

    def success_rates(self) -> dict[str, float]:
        """Rolling success rate per task over the last ``success_window`` online episodes."""
        return {
            t: float(np.mean(s["success"])) if s["success"] else float("nan")
            for t, s in self._task_stats.items()
        }

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

    def _learner_ready(self) -> bool:
        return self.replay.ready_for_online()

    def _updates_allowed(self) -> float:
        # The update-to-data ratio counts env steps from the moment every task has enough rollouts
        # (Algorithm 1, line 9): steps taken while the learner waited are not owed as a backlog.
        if self._ready_at_step is None:
            if not self._learner_ready():
                return 0.0
            self._ready_at_step = self.online_env_steps
        return (
            self.utd_ratio * (self.online_env_steps - self._ready_at_step) + self._updates_at_ready
        )

    def _learner_loop(self, stop: threading.Event) -> None:
        try:
            torch.set_num_threads(1)
            while not stop.is_set():
                if self.online_updates_done >= self._updates_allowed():
                    with self._progress:
                        self._progress.wait(timeout=0.05)
                    continue
                with self._policy_lock:
                    stats = self.learner.update("online")
                self.online_updates_done += 1
                self._n_updates += 1
                self._record_learner_stats(stats)
                if self.online_updates_done % self.weight_sync_interval == 0:
                    self.hub.publish(self.policy.actor, self.policy.refinement)
                with self._progress:
                    self._progress.notify_all()
        except BaseException as exc:  # surfaced in the interaction thread
            self._learner_error = exc
            with self._progress:
                self._progress.notify_all()

    def _raw_env(self) -> Any:
        env = self.env
        while hasattr(env, "venv"):
            env = env.venv
        envs = getattr(env, "envs", None)
        if not envs or len(envs) != 1:
            raise AgentConfigError(
                "DualActorAgent.learn needs a single gym env (or a 1-env DummyVecEnv)"
            )
        return envs[0]

    def _task_cycler(self) -> Any:
        # Algorithm 1 interacts task by task; ask the env for the next task round-robin. Envs that
        # ignore reset options simply pick their own task.
        state = {"i": 0}

        def options() -> dict[str, Any] | None:
            if len(self.tasks) < 2:
                return None
            task = self.tasks[state["i"] % len(self.tasks)]
            state["i"] += 1
            return {"task": task}

        return options

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "DualActor",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> DualActorAgent:
        """Warm up (if not done), then train online for ``total_timesteps`` env steps.

        The interaction loop runs here and calls ``callback`` after every env step (SB3
        semantics: returning False stops training); the learner runs in a background thread.
        """
        if self.env is None:
            raise AgentConfigError(
                "learn() needs an env: pass env= to the constructor or to load(), or call set_env"
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
        actor, refinement = actor_copies(self.policy)
        self.hub.publish(self.policy.actor, self.policy.refinement)
        loop = ActorLoop(
            self._raw_env(),
            actor,
            refinement,
            self.hub,
            self.tasks,
            self.episode_queue,
            self._task_cycler(),
            self.seed,
        )
        stop = threading.Event()
        thread = threading.Thread(
            target=self._learner_loop, args=(stop,), name="daft-learner", daemon=True
        )
        self._learner_error = None
        self._ready_at_step = None
        self._updates_at_ready = self.online_updates_done
        thread.start()
        n_episodes = 0
        try:
            while self.num_timesteps < total_timesteps:
                # Keep the update-to-data ratio: wait while the learner lags too far behind.
                with self._progress:
                    while (
                        self._updates_allowed() - self.online_updates_done > self.max_update_lag
                        and self._learner_error is None
                        and thread.is_alive()
                    ):
                        self._progress.wait(timeout=0.05)
                if self._learner_error is not None:
                    raise self._learner_error
                result = loop.step()
                self.num_timesteps += 1
                self.online_env_steps += 1
                with self._progress:
                    self._progress.notify_all()
                dones = np.array([result.terminated or result.truncated])
                infos = [result.info]
                self._update_info_buffer(infos, dones)
                self._update_current_progress_remaining(self.num_timesteps, total_timesteps)
                callback.update_locals(
                    {
                        "infos": infos,
                        "dones": dones,
                        "rewards": np.array([result.reward]),
                        "new_obs": result.obs,
                    }
                )
                if not callback.on_step():
                    break
                while True:
                    try:
                        episode = self.episode_queue.get_nowait()
                    except queue.Empty:
                        break
                    self.add_episode(episode)
                    n_episodes += 1
                    self._episode_num += 1
                    if log_interval and n_episodes % log_interval == 0:
                        self.dump_logs()
        finally:
            stop.set()
            thread.join()
        if self._learner_error is not None:
            raise self._learner_error
        self.dump_logs()
        callback.on_training_end()
        return self

    def dump_logs(self) -> None:
        """Write per-task success rate, episode length, intervention rate and every loss term."""
        for task, st in self._task_stats.items():
            if st["success"]:
                self.logger.record(f"rollout/{task}/success_rate", float(np.mean(st["success"])))
                self.logger.record(f"rollout/{task}/ep_length", float(np.mean(st["length"])))
                self.logger.record(
                    f"rollout/{task}/intervention_rate", float(np.mean(st["intervention"]))
                )
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
        """Actions for one observation or a batch.

        Without ``command`` the primary actor acts alone (Eq. 1). With a refinement command (a
        string for the whole batch, or one per row; None rows act in primary mode) the refinement
        actor sets the noise mean (Eq. 2). ``deterministic`` uses w = mean instead of a draw.
        """
        tens, batched = obs_as_tensors(observation, self.observation_space, self.device)
        n = next(iter(tens.values())).shape[0]
        with self._policy_lock, torch.no_grad():
            was_training = self.policy.training
            self.policy.eval()
            if command is None:
                actions = self.policy.actor(tens, deterministic=deterministic)
            else:
                cmds = [command] * n if isinstance(command, str) else list(command)
                if len(cmds) != n:
                    raise AgentConfigError(f"got {len(cmds)} commands for {n} observations")
                vec = self.command_encoder.encode(
                    [c if c is not None else "[null]" for c in cmds]
                ).to(self.device)
                mu = self.policy.refinement(tens, vec)
                # Rows without a command stay in primary mode: mu = 0.
                mu = mu * torch.tensor(
                    [c is not None for c in cmds], device=self.device
                ).float().unsqueeze(1)
                actions = self.policy.actor(tens, mu=mu, deterministic=deterministic)
            self.policy.train(was_training)
        out = actions.cpu().numpy()
        return (out if batched else out[0]), state


def require_store_demos(store: Any, tasks: Sequence[str]) -> None:
    """Raise :class:`EmptyStoreError` unless ``store`` holds demonstrations of every task."""
    if store is None:
        raise EmptyStoreError("no episode store given; the warm-up needs demonstrations")
    missing = [t for t in tasks if store.count(task=t, kind="demos") == 0]
    if missing:
        raise EmptyStoreError(
            f"the store holds no demonstrations of tasks {missing}; record some first "
            "(daft collect, or daft train which collects 20 per task into an empty store)"
        )


__all__ = ["BaseCallback", "DualActorAgent", "require_store_demos"]
