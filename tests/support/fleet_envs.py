"""Picklable env factories for the fleet tests: each robot actor builds one in its own process.

* :class:`ToyRobot`: the human-in-the-loop toy env (:func:`~support.toy_env.toy_hil_env`).
* :class:`HangingToyRobot`: the same, but every step after the ``hang_after``-th blocks forever,
  the stand-in for a robot whose driver stopped answering.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym

from support.toy_env import ToyBoltEnv, toy_hil_env


@dataclass(frozen=True)
class ToyRobot:
    """A toy robot cell: ``ToyBoltEnv`` under the intervention wrapper with the toy operator."""

    tasks: Sequence[str] = ("upright",)
    max_steps: int = 5
    operator_seed: int = 0

    def __call__(self) -> gym.Env:
        return toy_hil_env(
            ToyBoltEnv(tasks=self.tasks, max_steps=self.max_steps), seed=self.operator_seed
        )


class _HangAfter(gym.Wrapper):
    def __init__(self, env: gym.Env, hang_after: int) -> None:
        super().__init__(env)
        self.hang_after = hang_after
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps > self.hang_after:
            threading.Event().wait()  # never set: the call never returns
        return self.env.step(action)


@dataclass(frozen=True)
class HangingToyRobot(ToyRobot):
    """A :class:`ToyRobot` whose steps block forever after the first ``hang_after``."""

    hang_after: int = 8

    def __call__(self) -> gym.Env:
        return _HangAfter(super().__call__(), self.hang_after)


def toy_fleet_agent(store_dir, tasks: Sequence[str] = ("upright",), **kwargs):
    """A tiny agent on the toy env with 2 demos per task in an :class:`EpisodeStore` at ``store_dir``."""
    from daft_env.store import EpisodeStore
    from support.learner_fixtures import tiny_agent
    from support.toy_env import fill_store_with_demos

    store = EpisodeStore(store_dir)
    if store.count(kind="demos") == 0:
        fill_store_with_demos(store, ToyBoltEnv(tasks=tasks), 2)
    env = toy_hil_env(ToyBoltEnv(tasks=tasks, max_steps=5))
    settings = dict(utd_ratio=0.25, weight_sync_interval=2)
    settings.update(kwargs)
    return tiny_agent(env, store, **settings), store
