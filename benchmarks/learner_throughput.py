"""Learner updates/s against SB3 SAC with the same widths, batch 256, state observations, 1 thread.

Three rates, measured in one process in alternating bursts of a quarter second, so that load from
other processes on the machine falls on all of them alike (the ratios are the figures that
matter; each round prints its own):

* a full online dual-actor update: the three tasks' critics (Bellman), the primary actor (Eq. 6,
  15) and the refinement actor (Eq. 11) on a 64-row talk-tweak batch;
* a Cal-QL warm-up update: the critics with Cal-QL's 4 uniform, 4 pi(s) and 4 pi(s') actions per
  state, and the primary actor;
* ``SAC.train(gradient_steps=1, batch_size)`` of Stable-Baselines3 on a filled replay buffer of
  the same observation space (32-d state, gripper, task id), ``net_arch`` the same widths.

A fourth, the online update on cached 640-d frozen-backbone embeddings (the ``vla`` preset's
``embedding`` backbone, h as SmolVLM2-500M's Eq. 17 pooling gives it), is reported against the
state-preset online update (issue 13).

Targets (issue 10): online >= 0.8x SAC, warm-up >= 0.35x SAC.

Usage: ``python benchmarks/learner_throughput.py [--rounds 5] [--seconds 4] [--profile]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from gymnasium import spaces  # noqa: E402
from stable_baselines3 import SAC  # noqa: E402
from stable_baselines3.common.logger import configure  # noqa: E402

from daft_agent.backbones.registry import EMBEDDING_KEY  # noqa: E402
from daft_agent.buffers import DualActorReplay  # noqa: E402
from daft_agent.commands import VocabularyCommandEncoder  # noqa: E402
from daft_agent.policies import DualActorPolicy, NetworkConfig  # noqa: E402
from daft_agent.update import Learner, LearnerConfig  # noqa: E402
from daft_env.episode import Episode  # noqa: E402
from daft_env.spaces import GRIPPER_DIM, STATE_DIM, action_space  # noqa: E402
from daft_env.tasks import TASK_NAMES  # noqa: E402

COMMANDS = ("move left", "move left and up", "move up", "move forward")


def observation_space() -> spaces.Dict:
    """BoltMultiTask's state-mode observation space."""
    return spaces.Dict(
        {
            "state": spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
            "gripper": spaces.Box(-1.0, 1.0, (GRIPPER_DIM,), np.float32),
            "task_id": spaces.Discrete(len(TASK_NAMES)),
        }
    )


def random_episode(task: str, kind: str, rng: np.random.Generator, steps: int = 50) -> Episode:
    """A 50-step episode of random states and actions; interventions carry commands."""
    tid = TASK_NAMES.index(task)
    intervened = np.zeros(steps, bool) if kind != "interventions" else rng.random(steps) < 0.5
    success = bool(rng.random() < 0.5)
    rewards = np.zeros(steps, np.float32)
    terminated = np.zeros(steps, bool)
    if success:
        rewards[-1], terminated[-1] = 1.0, True
    return Episode(
        task=task,
        task_id=tid,
        instruction=task,
        kind=kind,
        observations={
            "state": rng.normal(size=(steps + 1, STATE_DIM)).astype(np.float32),
            "gripper": rng.choice([-1.0, 1.0], size=(steps + 1, GRIPPER_DIM)).astype(np.float32),
            "task_id": np.full(steps + 1, tid, np.int64),
        },
        actions=rng.uniform(-1, 1, (steps, 7)).astype(np.float32),
        policy_actions=rng.uniform(-1, 1, (steps, 7)).astype(np.float32),
        intervened=intervened,
        rewards=rewards,
        terminated=terminated,
        refinement_commands=[str(rng.choice(COMMANDS)) if i else "[null]" for i in intervened],
        success=success,
    )


#: size of h from the smolvla backbone on SmolVLM2-500M (2 x key-value heads x head size, Eq. 17)
EMBEDDING_DIM = 640


def make_learner(
    episodes_per_kind: int, seed: int = 0, embedding_dim: int | None = None
) -> Learner:
    """DualActorAgent's default networks and update settings over random buffers.

    With ``embedding_dim`` the observations are cached frozen-backbone embeddings h (the
    ``embedding`` backbone of ``daft train --preset vla``) instead of the privileged state.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    encoder = VocabularyCommandEncoder()
    if embedding_dim is None:
        obs_space, extra = observation_space(), {}
    else:
        obs_space = spaces.Dict(
            {EMBEDDING_KEY: spaces.Box(-np.inf, np.inf, (embedding_dim,), np.float32)}
        )
        extra = {"backbone": "embedding"}
    policy = DualActorPolicy(
        obs_space,
        action_space(),
        lambda _: 3e-4,
        tasks=TASK_NAMES,
        command_dim=encoder.dim,
        optimizer_kwargs={"fused": True},  # as DualActorAgent builds it
        **extra,
    )
    keys = list(obs_space.spaces)
    replay = DualActorReplay(TASK_NAMES, keys, gamma=0.97, min_rollouts=1)
    for task in TASK_NAMES:
        for kind in ("demos", "rollouts", "interventions"):
            for _ in range(episodes_per_kind):
                ep = random_episode(task, kind, rng)
                if embedding_dim is not None:
                    ep.embeddings = rng.normal(size=(len(ep) + 1, embedding_dim)).astype(np.float32)
                replay.add_episode(ep)
    return Learner(policy, replay, encoder, LearnerConfig(), seed=seed)


class _SpacesOnly(gym.Env):
    """Carries the spaces SAC is built for; the benchmark never steps it."""

    def __init__(self) -> None:
        self.observation_space = observation_space()
        self.action_space = action_space()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def make_sac(hidden: tuple[int, ...], batch: int, transitions: int, seed: int = 0) -> SAC:
    """SB3 SAC with ``net_arch`` = ``hidden`` and a replay buffer of random transitions."""
    sac = SAC(
        "MultiInputPolicy",
        _SpacesOnly(),
        batch_size=batch,
        learning_starts=0,
        buffer_size=transitions,
        policy_kwargs={"net_arch": list(hidden)},
        seed=seed,
        verbose=0,
    )
    sac.set_logger(configure(None, []))
    rng = np.random.default_rng(seed)
    for _ in range(transitions):
        obs = {
            "state": rng.normal(size=(1, STATE_DIM)).astype(np.float32),
            "gripper": rng.choice([-1.0, 1.0], size=(1, GRIPPER_DIM)).astype(np.float32),
            "task_id": rng.integers(0, len(TASK_NAMES), size=(1,)),
        }
        sac.replay_buffer.add(
            obs,
            obs,
            rng.uniform(-1, 1, (1, 7)).astype(np.float32),
            np.zeros(1, np.float32),
            np.zeros(1, bool),
            [{}],
        )
    return sac


def interleaved_rates(
    contenders: dict[str, Callable[[], object]], seconds: float, burst: float = 0.25
) -> dict[str, tuple[float, float]]:
    """(calls per CPU second, calls per wall second) of each contender, in alternating bursts.

    Short alternating bursts of about ``burst`` seconds put a change in the machine's load on
    every contender alike. CPU seconds are this thread's own (``time.thread_time``): time the
    scheduler gave to other processes is not counted, so the CPU rate is the steadier figure on a
    shared machine; the wall rate is what a user sees.
    """
    calls = dict.fromkeys(contenders, 0)
    wall = dict.fromkeys(contenders, 0.0)
    cpu = dict.fromkeys(contenders, 0.0)
    while min(wall.values()) < seconds:
        for name, fn in contenders.items():
            t0 = now = time.perf_counter()
            c0 = time.thread_time()
            while now - t0 < burst:
                fn()
                calls[name] += 1
                now = time.perf_counter()
            wall[name] += now - t0
            cpu[name] += time.thread_time() - c0
    return {name: (calls[name] / cpu[name], calls[name] / wall[name]) for name in contenders}


def profile(name: str, fn: Callable[[], object], n: int) -> None:
    """Print where ``n`` calls of ``fn`` spend CPU time (self time per torch op)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / n / 1e3
    calls = sum(e.count for e in events if e.key.startswith("aten::")) / n
    print(f"\n--- profile: {name}: {total:.1f} ms CPU per call, {calls:.0f} aten ops per call")
    print(events.table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="interleaved measuring rounds")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds per rate per round")
    p.add_argument("--profile", action="store_true", help="also print a torch profile of each")
    args = p.parse_args()
    torch.set_num_threads(1)  # as the learner thread runs on this 2-core machine

    learner = make_learner(episodes_per_kind=8)
    cfg = learner.cfg
    hidden = NetworkConfig().critic_hidden
    assert NetworkConfig().actor_hidden == hidden, "SAC's net_arch stands for both widths"
    sac = make_sac(hidden, cfg.batch_size, transitions=10_000)
    vla = make_learner(episodes_per_kind=8, embedding_dim=EMBEDDING_DIM)
    contenders = {
        "online": lambda: learner.update("online"),
        "warmup": lambda: learner.update("warmup"),
        "sac": lambda: sac.train(gradient_steps=1, batch_size=cfg.batch_size),
        "vla_online": lambda: vla.update("online"),
    }
    for fn in contenders.values():  # warm caches and the optimisers' state
        for _ in range(3):
            fn()
    cpu: dict[str, list[float]] = {k: [] for k in contenders}
    wall: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.rounds):
        for name, (c, w) in interleaved_rates(contenders, args.seconds).items():
            cpu[name].append(c)
            wall[name].append(w)

    def show(values: list[float]) -> str:
        rounds = " ".join(f"{v:.2f}" for v in values)
        return f"median {statistics.median(values):6.2f}  (rounds: {rounds})"

    def ratio(rates: dict[str, list[float]], name: str) -> list[float]:
        return [a / b for a, b in zip(rates[name], rates["sac"], strict=True)]

    print(
        f"batch {cfg.batch_size} (refinement {cfg.refinement_batch_size}), widths {hidden}, "
        f"{NetworkConfig().n_critics} critics per task x {len(TASK_NAMES)} tasks, "
        f"Cal-QL {cfg.calql_n_actions} actions, torch threads {torch.get_num_threads()}"
    )
    for label, rates in (("per CPU second", cpu), ("per wall second", wall)):
        print(f"-- updates {label}")
        print(f"dual-actor online updates/s:   {show(rates['online'])}")
        print(f"dual-actor warm-up updates/s:  {show(rates['warmup'])}")
        print(f"SB3 SAC updates/s:             {show(rates['sac'])}")
        print(f"online, cached {EMBEDDING_DIM}-d h:   {show(rates['vla_online'])}")
    print(f"RATIO online / SAC (CPU):      {show(ratio(cpu, 'online'))}   target >= 0.80")
    print(f"RATIO warm-up / SAC (CPU):     {show(ratio(cpu, 'warmup'))}   target >= 0.35")
    print(
        "RATIO cached-embedding online / state online (CPU): "
        + show([a / b for a, b in zip(cpu["vla_online"], cpu["online"], strict=True)])
    )
    print(f"RATIO online / SAC (wall):     {show(ratio(wall, 'online'))}")
    print(f"RATIO warm-up / SAC (wall):    {show(ratio(wall, 'warmup'))}")
    print(f"load average while measuring: {np.round(os.getloadavg(), 2).tolist()}")
    if args.profile:
        for name, fn in contenders.items():
            profile(name, fn, 20)


if __name__ == "__main__":
    main()
