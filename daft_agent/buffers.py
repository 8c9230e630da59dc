"""Replay buffers and the sampling of Algorithm 1.

Per task i: demonstrations D_demos^i, rollouts D_rollouts^i and interventions D_intv^i; one global
talk-and-tweak buffer D_talk-tweak. An online episode is split per step by its ``intervened``
flags (Algorithm 1, lines 20-26): autonomous steps go to the rollouts, intervened steps to the
interventions, and interventions also join the demos and the talk-tweak buffer (lines 28-29).
Every row keeps two actions: ``actions`` (executed; the critics' TD targets follow from it) and
``labels`` (what imitation learns from: the operator's intended action on intervened steps,
:attr:`daft_env.episode.Episode.labels`; the executed action elsewhere).

Sampling:
* warm-up: B/N transitions from each task's demos (line 4);
* online: B/2N from each task's demos and B/2N from its rollouts (line 12), once every task has
  at least ``min_rollouts`` rollout transitions (line 9);
* refinement actor: uniform over the talk-tweak buffer (line 16).

Buffers are filled from an episode store (any object with ``episodes(task=None, kind=None)``) or
episode by episode; adding and sampling are thread-safe (the actor and learner threads share them).

Tasks are matched by name (``Episode.task``). ``Episode.task_id`` is the store's global id and is
not used here; the ``task_index`` of a sampled row is the row's position in this replay's
``tasks`` (the agent's order), which routes it to its task's critic.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from daft_agent.backbones.registry import EMBEDDING_KEY
from daft_agent.commands import NULL_COMMAND
from daft_agent.critics import monte_carlo_returns
from daft_agent.errors import EmptyStoreError, SpaceMismatchError


def split_sizes(total: int, parts: int) -> list[int]:
    """Split ``total`` into ``parts`` integers differing by at most one (the first get the extra)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class TransitionBuffer:
    """Transitions of one kind; each stored episode's T+1 observations are kept once.

    A transition t of an episode refers to observation rows t and t+1, so the next observation is
    never duplicated. Arrays grow by doubling.
    """

    def __init__(self, obs_keys: Sequence[str]) -> None:
        self.obs_keys = tuple(obs_keys)
        self._lock = threading.Lock()
        self._obs: dict[str, np.ndarray] = {}
        self._n_obs = 0
        self._tr: dict[str, np.ndarray] = {}
        self._commands: list[str] = []
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @staticmethod
    def _grow(store: dict[str, np.ndarray], key: str, rows: np.ndarray, used: int) -> None:
        arr = store.get(key)
        need = used + rows.shape[0]
        if arr is None:
            arr = np.empty((max(need, 256),) + rows.shape[1:], dtype=rows.dtype)
        elif need > arr.shape[0]:
            new = np.empty((max(need, 2 * arr.shape[0]),) + arr.shape[1:], dtype=arr.dtype)
            new[:used] = arr[:used]
            arr = new
        arr[used:need] = rows
        store[key] = arr

    def add(
        self,
        observations: Mapping[str, np.ndarray],
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        mc_returns: np.ndarray,
        commands: Sequence[str],
        mask: np.ndarray | None = None,
        task_index: int = 0,
        labels: np.ndarray | None = None,
    ) -> int:
        """Add the steps of one episode where ``mask`` is True; returns how many were added.

        ``task_index`` is the episode's position in the agent's task list (not its global id).
        ``labels`` are the actions imitation learns from (an operator's intended actions,
        :attr:`~daft_env.episode.Episode.labels`); default: ``actions``. The critics learn from
        ``actions``, what was executed.
        """
        t_len = actions.shape[0]
        steps = np.arange(t_len) if mask is None else np.flatnonzero(np.asarray(mask, bool))
        if steps.size == 0:
            return 0
        with self._lock:
            base = self._n_obs
            for k in self.obs_keys:
                rows = np.asarray(observations[k])
                if rows.shape[0] != t_len + 1:
                    raise SpaceMismatchError(
                        f"observation {k!r} has {rows.shape[0]} rows for {t_len} steps; an episode "
                        "holds T+1 observations"
                    )
                self._grow(self._obs, k, rows, base)
            self._n_obs += t_len + 1
            n = self._n
            cols = {
                "obs_idx": (base + steps).astype(np.int64),
                "actions": np.asarray(actions, np.float32)[steps],
                "labels": np.asarray(actions if labels is None else labels, np.float32)[steps],
                "rewards": np.asarray(rewards, np.float32)[steps],
                "terminated": np.asarray(terminated, np.float32)[steps],
                "mc_returns": np.asarray(mc_returns, np.float32)[steps],
                "task_index": np.full(steps.size, task_index, np.int64),
            }
            for k, v in cols.items():
                self._grow(self._tr, k, v, n)
            self._commands.extend(commands[int(s)] for s in steps)
            self._n = n + steps.size
        return int(steps.size)

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, Any]:
        """``n`` transitions drawn uniformly with replacement."""
        with self._lock:
            if self._n == 0:
                raise EmptyStoreError("cannot sample from an empty buffer")
            idx = rng.integers(0, self._n, size=n)
            oi = self._tr["obs_idx"][idx]
            return {
                "obs": {k: self._obs[k][oi] for k in self.obs_keys},
                "next_obs": {k: self._obs[k][oi + 1] for k in self.obs_keys},
                "actions": self._tr["actions"][idx],
                "labels": self._tr["labels"][idx],
                "rewards": self._tr["rewards"][idx],
                "terminated": self._tr["terminated"][idx],
                "mc_returns": self._tr["mc_returns"][idx],
                "task_index": self._tr["task_index"][idx],
                "commands": [self._commands[i] for i in idx],
            }

    def all_observations(self) -> dict[str, np.ndarray]:
        """Every stored observation row (used to fit input normalisers)."""
        with self._lock:
            return {k: self._obs[k][: self._n_obs].copy() for k in self.obs_keys if k in self._obs}


def concat_batches(batches: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Concatenate sampled batches field by field."""
    out: dict[str, Any] = {}
    for key in batches[0]:
        if key in ("obs", "next_obs"):
            out[key] = {k: np.concatenate([b[key][k] for b in batches]) for k in batches[0][key]}
        elif key == "commands":
            out[key] = [c for b in batches for c in b[key]]
        else:
            out[key] = np.concatenate([b[key] for b in batches])
    return out


class DualActorReplay:
    """All buffers of Algorithm 1 for ``tasks``.

    Args:
        tasks: task names, in task-id order.
        obs_keys: observation keys to keep (``embedding`` is read from ``Episode.embeddings``).
        gamma: discount used for the Monte-Carlo returns of Cal-QL.
        min_rollouts: rollout transitions every task needs before online updates (line 9).
    """

    def __init__(
        self,
        tasks: Sequence[str],
        obs_keys: Sequence[str],
        gamma: float,
        min_rollouts: int = 100,
        interventions_as_demos: bool = True,
    ) -> None:
        self.tasks = tuple(tasks)
        self.interventions_as_demos = bool(interventions_as_demos)
        self.obs_keys = tuple(obs_keys)
        self.gamma = gamma
        self.min_rollouts = min_rollouts
        self.demos = {t: TransitionBuffer(obs_keys) for t in self.tasks}
        self.rollouts = {t: TransitionBuffer(obs_keys) for t in self.tasks}
        self.interventions = {t: TransitionBuffer(obs_keys) for t in self.tasks}
        self.talk_tweak = TransitionBuffer(obs_keys)
        self.n_episodes = 0

    def _observations(self, episode: Any) -> dict[str, np.ndarray]:
        obs = dict(episode.observations)
        if EMBEDDING_KEY in self.obs_keys:
            if episode.embeddings is None:
                raise SpaceMismatchError(
                    f"this agent reads cached backbone embeddings but an episode of task "
                    f"{episode.task!r} has none; fill the store's cache first: daft embed "
                    "--store STORE --backbone NAME:PATH"
                )
            obs[EMBEDDING_KEY] = episode.embeddings
        missing = [k for k in self.obs_keys if k not in obs]
        if missing:
            raise SpaceMismatchError(
                f"episode of task {episode.task!r} lacks observation keys {missing} "
                f"(it has {sorted(obs)}); it was recorded in another observation mode"
            )
        return obs

    def add_episode(self, episode: Any) -> dict[str, int]:
        """File one episode's steps into the buffers; returns the number added per buffer."""
        if episode.task not in self.tasks:
            raise SpaceMismatchError(
                f"episode of task {episode.task!r}; this agent trains {list(self.tasks)}"
            )
        obs = self._observations(episode)
        t_len = len(episode)
        terminated = np.asarray(episode.terminated, bool)
        truncated = np.zeros(t_len, bool)
        if t_len and not terminated[-1]:
            truncated[-1] = True
        mc = monte_carlo_returns(episode.rewards, terminated, truncated, self.gamma)
        commands = list(episode.refinement_commands) or [NULL_COMMAND] * t_len
        if len(commands) != t_len:
            commands = (commands + [NULL_COMMAND] * t_len)[:t_len]
        args = (obs, episode.actions, episode.rewards, terminated, mc, commands)
        labels = getattr(episode, "labels", episode.actions)
        added = {"demos": 0, "rollouts": 0, "interventions": 0, "talk_tweak": 0}
        t = episode.task
        ti = self.tasks.index(t)
        if episode.kind == "demos":
            added["demos"] = self.demos[t].add(*args, task_index=ti)
        else:
            intv = np.asarray(episode.intervened, bool).reshape(t_len)
            # Without interventions_as_demos the operator's steps stay rollouts (the critics see
            # them, Eq. 6's BC does not unless bc_on_rollouts) instead of joining the demos.
            as_demos = self.interventions_as_demos
            added["rollouts"] = self.rollouts[t].add(
                *args, mask=~intv if as_demos else None, task_index=ti
            )
            if intv.any():
                kw = {"mask": intv, "task_index": ti, "labels": labels}
                added["interventions"] = self.interventions[t].add(*args, **kw)
                if as_demos:
                    added["demos"] = self.demos[t].add(*args, **kw)
                added["talk_tweak"] = self.talk_tweak.add(*args, **kw)
        self.n_episodes += 1
        return added

    def load(self, episodes: Iterable[Any]) -> int:
        """Add many episodes; returns how many."""
        n = 0
        for ep in episodes:
            if ep.task in self.tasks:
                self.add_episode(ep)
                n += 1
        return n

    def load_from_store(self, store: Any) -> int:
        """Fill the buffers from an episode store (``store.episodes()``)."""
        return self.load(store.episodes())

    def sizes(self) -> dict[str, int]:
        """Transition counts, e.g. ``{'upright/demos': 600, ..., 'talk_tweak': 40}``."""
        out = {}
        for kind in ("demos", "rollouts", "interventions"):
            for t, buf in getattr(self, kind).items():
                out[f"{t}/{kind}"] = len(buf)
        out["talk_tweak"] = len(self.talk_tweak)
        return out

    def check_demos(self) -> None:
        """Raise :class:`EmptyStoreError` naming the tasks without demonstrations."""
        empty = [t for t in self.tasks if len(self.demos[t]) == 0]
        if empty:
            raise EmptyStoreError(
                f"no demonstrations for tasks {empty}; the warm-up needs demos of every task. Record "
                "some first (daft collect, or daft train, which collects 20 per task when the store is empty)"
            )

    def ready_for_online(self) -> bool:
        """Every task has at least ``min_rollouts`` rollout transitions (Algorithm 1, line 9)."""
        return all(len(self.rollouts[t]) >= self.min_rollouts for t in self.tasks)

    def sample_warmup(self, batch_size: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        """One minibatch B^i per task, B/N from its demos (Algorithm 1, line 4)."""
        self.check_demos()
        batches = [
            self.demos[t].sample(n, rng)
            for t, n in zip(self.tasks, split_sizes(batch_size, len(self.tasks)), strict=True)
        ]
        for b in batches:
            b["is_demo"] = np.ones(len(b["actions"]), np.float32)
        return batches

    def sample_online(self, batch_size: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        """One minibatch B^i per task, B/2N from its demos and B/2N from its rollouts (line 12)."""
        self.check_demos()
        out = []
        for t, n in zip(self.tasks, split_sizes(batch_size, len(self.tasks)), strict=True):
            n_demo, n_roll = split_sizes(n, 2)
            if len(self.rollouts[t]) == 0:
                raise EmptyStoreError(f"task {t!r} has no rollouts yet; online sampling needs them")
            batch = concat_batches(
                [self.demos[t].sample(n_demo, rng), self.rollouts[t].sample(n_roll, rng)]
            )
            # Marks the rows whose action is an expert's (demos and interventions) for Eq. 5.
            batch["is_demo"] = np.concatenate(
                [np.ones(n_demo, np.float32), np.zeros(n_roll, np.float32)]
            )
            out.append(batch)
        return out

    def sample_talk_tweak(self, batch_size: int, rng: np.random.Generator) -> dict[str, Any] | None:
        """A uniform minibatch of talk-tweak triplets, or None while the buffer is empty."""
        if len(self.talk_tweak) == 0:
            return None
        return self.talk_tweak.sample(batch_size, rng)
