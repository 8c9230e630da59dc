"""The actor side: versioned weights out, finished episodes in, and the online runner.

The learner and the actors share nothing but a :class:`WeightsHub` (versioned weight snapshots,
learner -> actors) and a queue of finished :class:`~daft_env.episode.Episode` records (actors ->
learner). An :class:`ActorLoop` needs only a copy of the primary actor and an env, so robot actors
can run in other processes or on Ray (RQ5: centralised learner, decentralised actors) by replacing
the hub and the queue with remote versions (:mod:`daft_agent.fleet`).

:class:`OnlineRunner` runs the :class:`~daft_agent.update.Learner` in a background thread beside
the interaction and paces it: ``utd_ratio`` updates per env step, counted from the moment every
task has enough rollouts (Algorithm 1, line 9), with the interaction pausing while the learner is
more than ``max_update_lag`` updates behind. A learner error stops the run and is raised in the
interaction thread. Its :meth:`OnlineRunner.steps` is the interaction source that
:meth:`DualActorAgent.learn <daft_agent.agent.DualActorAgent.learn>` files step by step; the
fleet's runner is an :class:`OnlineRunner` with the same pacing and its own ``steps``.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from daft_agent.backbones.registry import EMBEDDING_KEY
from daft_agent.errors import AgentConfigError
from daft_agent.policies import DualActorPolicy, obs_as_tensors
from daft_agent.update import Learner
from daft_env.episode import EpisodeRecorder


class WeightsHub(Protocol):
    """Versioned snapshots of the primary actor's weights: the learner publishes, actors read.

    Only the primary actor travels: training acts in primary mode (Eq. 1); the refinement actor
    acts at test time, through the agent. Implementations: :class:`LocalWeightsHub` (threads of
    one process, and a robot's receiving end) and :class:`~daft_agent.fleet.runner.RayWeightsHub`
    (Ray's object store).
    """

    @property
    def version(self) -> int:
        """The latest published version (0 before the first)."""
        ...

    def publish(self, actor: nn.Module) -> int:
        """Publish a CPU copy of ``actor``'s weights; returns the new version."""
        ...

    def latest(self) -> tuple[int, Any]:
        """(version, weights): the state dict, or a handle to it (None before the first)."""
        ...


def _cpu_state(actor: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().cpu() for k, v in actor.state_dict().items()}


class LocalWeightsHub:
    """A :class:`WeightsHub` in this process (the learner's threads, or a robot's copy)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._state: dict[str, torch.Tensor] | None = None

    def publish(self, actor: nn.Module) -> int:
        """Copy the actor's current weights; returns the new version."""
        return self.receive(None, _cpu_state(actor))

    def receive(self, version: int | None, state: dict[str, torch.Tensor]) -> int:
        """Hold ``state`` as ``version`` (None: the next one); a robot's copy of the learner's."""
        with self._lock:
            self._version = self._version + 1 if version is None else int(version)
            self._state = state
            return self._version

    @property
    def version(self) -> int:
        """The latest version held (0 before the first)."""
        return self._version

    def latest(self) -> tuple[int, dict[str, torch.Tensor] | None]:
        """(version, the primary actor's state dict)."""
        with self._lock:
            return self._version, self._state


@dataclass
class OnlineStep:
    """One env step of the online phase, as :meth:`DualActorAgent.learn` files it.

    Attributes:
        info, done, reward, obs: the step's (a fleet step has no observation on the learner's
            side: ``{}``, False, 0.0 and None).
        episodes: the episodes that finished with this step (a fleet chunk's, on its first step).
        rest: steps of the same chunk after this one; a run stopped here counts them too, so its
            counters match the store.
    """

    info: dict[str, Any]
    done: bool
    reward: float
    obs: Any
    episodes: list[Any]
    rest: int = 0


@dataclass
class StepResult:
    """What one :meth:`ActorLoop.step` produced (``episode`` is set on the step that ends one)."""

    obs: Any
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    episode: Any | None = None


class ActorLoop:
    """The interaction loop: act with the latest weights, step the env, emit finished Episodes.

    Episodes are built by :class:`~daft_env.episode.EpisodeRecorder` (one success rule, the global
    task id, a hardware fault's ``backend_error`` kept); their metadata also holds
    ``weights_version``, the hub version the episode's last action was taken with.

    Randomness: the noise w of Eq. 1 is drawn from this loop's own ``torch.Generator`` (seeded
    with ``seed``), never from torch's global generator, so a learner thread drawing meanwhile
    cannot shift the actions. The loop itself draws nothing from numpy: the env's randomness is
    its own ``np_random`` (seeded with ``seed`` on the first reset), and a simulated operator's
    is its own generator (``SimulatedOperator(seed=...)``). What still differs between two
    threaded runs is which weights version each step is played with
    (:class:`RunnerConfig`, ``lockstep``).

    Args:
        env: a Gymnasium env (optionally under the intervention wrapper).
        actor: a private copy of the primary actor (:func:`actor_copy`); only the primary mode
            acts during training (the refinement actor acts at test time, through the agent).
        hub: where new weights come from.
        tasks: the agent's task names in ``task_id`` order (for task attribution).
        out: queue receiving each finished :class:`~daft_env.episode.Episode`.
        reset_options: callable giving the ``options`` of the next ``env.reset`` (e.g. the task to
            run), or None.
        seed: seed of the first reset and of the noise generator (None: a random one).
    """

    def __init__(
        self,
        env: Any,
        actor: nn.Module,
        hub: WeightsHub,
        tasks: Sequence[str],
        out: queue.Queue | None = None,
        reset_options: Callable[[], dict[str, Any] | None] | None = None,
        seed: int | None = None,
    ) -> None:
        self.env = env
        self.actor = actor
        self.hub = hub
        self.tasks = tuple(tasks)
        self.out = out if out is not None else queue.Queue()
        self.reset_options = reset_options
        # an env under EmbedObservation hands h in the observation: keep it once, as embeddings
        embedded = EMBEDDING_KEY in getattr(env.observation_space, "spaces", {})
        self.recorder = EpisodeRecorder(tasks=self.tasks, embed=_cached_h if embedded else None)
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))
        self._seed = seed
        self._version = -1
        self._obs: Any = None
        self.observation_space = env.observation_space

    @property
    def weights_version(self) -> int:
        """Hub version of the weights the actor holds (-1 before the first sync)."""
        return self._version

    def sync(self) -> None:
        """Load the newest published primary-actor weights if they changed."""
        if self.hub.version == self._version:
            return
        version, state = self.hub.latest()
        if state is not None:
            self.actor.load_state_dict(state)
        self._version = version

    def _reset(self) -> None:
        opts = self.reset_options() if self.reset_options else None
        kwargs: dict[str, Any] = {}
        if self._seed is not None:
            kwargs["seed"] = self._seed
            self._seed = None
        if opts:
            kwargs["options"] = opts
        self._obs, info = self.env.reset(**kwargs)
        self.recorder.start(self._obs, info)

    @torch.no_grad()
    def policy_action(self, obs: Any) -> np.ndarray:
        """Primary-mode action (Eq. 1) for one observation, noise from this loop's generator."""
        tens, _ = obs_as_tensors(obs, self.observation_space)
        return self.actor(tens, generator=self.generator)[0].cpu().numpy().astype(np.float32)

    def step(self) -> StepResult:
        """One env step; when it ends an episode, the Episode is put on ``out`` and returned."""
        if self._obs is None:
            self._reset()
        self.sync()
        action = self.policy_action(self._obs)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.recorder.step(obs, action, float(reward), bool(terminated), info)
        episode = None
        if terminated or truncated:
            episode = self.recorder.finish(info, metadata={"weights_version": self._version})
            episode.observations.pop(EMBEDDING_KEY, None)  # stored once, as episode.embeddings
            self.out.put(episode)
            self._obs = None
        else:
            self._obs = obs
        return StepResult(obs, float(reward), bool(terminated), bool(truncated), info, episode)


def _cached_h(obs: Any) -> np.ndarray:
    return np.asarray(obs[EMBEDDING_KEY], np.float32)


def actor_copy(policy: DualActorPolicy) -> nn.Module:
    """A private CPU copy of the primary actor for an :class:`ActorLoop` (no optimiser, no grad)."""
    actor = copy.deepcopy(policy.actor).cpu().eval()
    if hasattr(actor, "optimizer"):
        del actor.optimizer
    actor.requires_grad_(False)
    return actor


@dataclass(frozen=True)
class RunnerConfig:
    """How the learner is paced against the env (the defaults of :class:`DualActorAgent` too).

    Attributes:
        utd_ratio: learner updates per online env step, counted from the step at which every
            task first has ``min_rollouts`` rollouts; results then do not depend on CPU speed.
        max_update_lag: the interaction loop pauses while the learner is more than this many
            updates behind ``utd_ratio``.
        weight_sync_interval: updates between weight publications to the actors.
        lockstep: run the owed updates in the interaction thread right after each env step
            instead of in a background thread. The interaction then waits for every update, so
            the weights each action is taken with depend only on the step count: two runs with
            the same seed store identical episodes. With ``lockstep=False`` (the default, faster
            on a robot whose steps take real time) the one remaining source of difference between
            such runs is thread timing: which weights version the actor holds at a given step
            depends on how far the learner thread got, within ``max_update_lag``.
    """

    utd_ratio: float = 1.0
    max_update_lag: int = 200
    weight_sync_interval: int = 20
    lockstep: bool = False

    def __post_init__(self) -> None:
        if not self.utd_ratio > 0:
            raise AgentConfigError(f"utd_ratio must be > 0, got {self.utd_ratio}")
        if self.max_update_lag < 1 or self.weight_sync_interval < 1:
            raise AgentConfigError(
                "max_update_lag and weight_sync_interval must be >= 1; got "
                f"{self.max_update_lag} and {self.weight_sync_interval}"
            )


class OnlineRunner:
    """The learner thread beside one interaction loop (Algorithm 1, lines 9-16 against 17-29).

    Use it as a context manager; :meth:`step` takes one env step through ``loop``::

        with OnlineRunner(loop, learner, lock, RunnerConfig(utd_ratio=1.0)) as runner:
            for step in runner.steps(n):
                ...

    Pacing: the learner may have done ``utd_ratio * (env_steps - ready_step) + updates_at_start``
    updates, where ``ready_step`` is the first env step at which ``learner.replay`` is ready for
    online updates; steps taken before then are not owed as a backlog. :meth:`step` blocks while
    the learner is more than ``max_update_lag`` behind that allowance.

    Every update runs under ``lock`` (shared with ``predict`` and ``save``), then ``on_update``
    is called with its diagnostics, still under the lock (so a checkpoint's counters and weights
    agree). Every ``weight_sync_interval`` updates the primary actor's weights go to ``hub``.

    Args:
        loop: the interaction loop (None for a runner whose interaction is elsewhere: the fleet).
        learner: the update rule; ``learner.update("online")`` is called.
        lock: the agent's policy lock.
        config: pacing.
        updates_done: online updates already done (a resumed run continues its count).
        on_update: called with each update's diagnostics.
        hub: where the weights go (default: ``loop.hub``).

    Raises:
        BaseException: from :meth:`step` or on leaving the ``with`` block, whatever the learner
            thread raised (it stops the run).
    """

    def __init__(
        self,
        loop: ActorLoop | None,
        learner: Learner,
        lock: threading.RLock,
        config: RunnerConfig,
        updates_done: int = 0,
        on_update: Callable[[dict[str, float]], None] | None = None,
        hub: WeightsHub | None = None,
    ) -> None:
        if hub is None and loop is None:
            raise AgentConfigError("an OnlineRunner needs a loop or a hub to publish to")
        self.loop = loop
        self.hub: WeightsHub = hub if hub is not None else loop.hub  # type: ignore[union-attr]
        self.learner = learner
        self.lock = lock
        self.config = config
        self.updates_done = int(updates_done)
        self.env_steps = 0
        self.on_update = on_update
        self._updates_at_start = self.updates_done
        self._ready_at: int | None = None
        self._error: BaseException | None = None
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ pacing
    def updates_allowed(self) -> float:
        """Updates the learner may have done by now (see the class docstring)."""
        if self._ready_at is None:
            if not self.learner.replay.ready_for_online():
                return float(self._updates_at_start)
            self._ready_at = self.env_steps
        return self.config.utd_ratio * (self.env_steps - self._ready_at) + self._updates_at_start

    def _update_once(self) -> None:
        with self.lock:
            stats = self.learner.update("online")
            self.updates_done += 1
            if self.on_update is not None:
                self.on_update(stats)
        if self.updates_done % self.config.weight_sync_interval == 0:
            self.hub.publish(self.learner.policy.actor)

    def _learner_loop(self) -> None:
        try:
            torch.set_num_threads(1)
            while not self._stop.is_set():
                with self._progress:
                    if self.updates_done >= self.updates_allowed():
                        self._progress.wait(timeout=0.05)
                        continue
                self._update_once()
                with self._progress:
                    self._progress.notify_all()
        except BaseException as exc:  # raised again in the interaction thread
            self._error = exc
            with self._progress:
                self._progress.notify_all()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> OnlineRunner:
        """Publish the current weights and start the learner thread (none in lockstep mode)."""
        self.hub.publish(self.learner.policy.actor)
        if not self.config.lockstep:
            self._thread = threading.Thread(
                target=self._learner_loop, name="daft-learner", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and join the learner thread; raise its error if it failed."""
        self._stop.set()
        with self._progress:
            self._progress.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error

    def __enter__(self) -> OnlineRunner:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        except BaseException:
            if exc is None:  # do not mask the interaction thread's own error
                raise

    def steps(self, n: int) -> Iterator[OnlineStep]:
        """``n`` env steps of ``loop`` (:meth:`step`), with the episodes each one finished."""
        assert self.loop is not None
        for _ in range(n):
            result = self.step()
            episodes = []
            while not self.loop.out.empty():
                episodes.append(self.loop.out.get_nowait())
            done = result.terminated or result.truncated
            yield OnlineStep(result.info, done, result.reward, result.obs, episodes)

    def record(self, logger: Any) -> None:
        """Log the interaction's own figures before each dump (one loop has none)."""

    def step(self) -> StepResult:
        """One env step of ``loop``, after waiting while the learner lags too far behind."""
        assert self.loop is not None
        if self.config.lockstep:
            result = self.loop.step()
            self.env_steps += 1
            while self.updates_done < self.updates_allowed():
                self._update_once()
            return result
        with self._progress:
            while (
                self.updates_allowed() - self.updates_done > self.config.max_update_lag
                and self._error is None
                and self._thread is not None
                and self._thread.is_alive()
            ):
                self._progress.wait(timeout=0.05)
        if self._error is not None:
            raise self._error
        result = self.loop.step()
        with self._progress:
            self.env_steps += 1
            self._progress.notify_all()
        return result


__all__ = [
    "ActorLoop",
    "LocalWeightsHub",
    "OnlineRunner",
    "OnlineStep",
    "RunnerConfig",
    "StepResult",
    "WeightsHub",
    "actor_copy",
]
