"""Does each task's critic match the returns its policy measures? (issue 17's diagnostic)

Rolls a checkpoint's policy out (deterministic, as evaluated; ``--stochastic`` for the training
actor's draws) on ``--episodes`` scenes per task, and compares, per task, the critic's
Q(s_t, a_t) (the minimum over the ensemble, the value the actor's Q term uses) with the
measured discounted return G_t = sum_k gamma^k r_{t+k} of the same episode: at the first step
(the start state) and over every step, with their correlation. A critic that rates a task whose
policy succeeds rarely as highly as a solved one (Q at the start 0.50 against a measured 0.15)
is over-optimistic, and its Q term pulls the actor nowhere useful.

Episodes truncated at the step limit are counted as returns of 0 after the cut (no bootstrap):
the figure to compare is then a lower bound on the value of an episode that might still have
succeeded, so a gap that large on a task the policy does not solve is the critic's.

    python benchmarks/q_vs_return.py runs/state/checkpoint.zip [--episodes 20] [--stochastic]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np
import torch

import daft_env  # noqa: F401
from daft_agent.agent import DualActorAgent
from daft_agent.policies import obs_as_tensors


def discounted(rewards: list[float], gamma: float) -> np.ndarray:
    """G_t for every step of one episode (0 after its end)."""
    out, g = np.zeros(len(rewards)), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=40_000)
    parser.add_argument("--stochastic", action="store_true")
    parser.add_argument("--env", default="BoltMultiTask-Sim-v0")
    args = parser.parse_args()
    env = gym.make(args.env, obs_mode="state")
    agent = DualActorAgent.load(args.checkpoint, env=env)
    pol, gamma = agent.policy, agent.gamma
    print(
        f"{'task':9s} {'success':>7s} {'Q(s0)':>7s} {'G(s0)':>7s} {'Q all':>7s} {'G all':>7s} "
        f"{'corr':>6s}"
    )
    for ti, task in enumerate(agent.tasks):
        q0, g0, q_all, g_all, wins = [], [], [], [], 0
        for k in range(args.episodes):
            obs, _ = env.reset(seed=args.seed + k, options={"task": task})
            observations, actions, rewards = [], [], []
            done, info = False, {}
            while not done:
                action, _ = agent.predict(obs, deterministic=not args.stochastic)
                observations.append(obs)
                actions.append(np.asarray(action, np.float32))
                obs, reward, term, trunc, info = env.step(action)
                rewards.append(float(reward))
                done = term or trunc
            wins += bool(info.get("is_success"))
            batch = {
                key: np.stack([np.asarray(o[key]) for o in observations]) for key in observations[0]
            }
            tens, _ = obs_as_tensors(batch, agent.observation_space)
            with torch.no_grad():
                routing = pol.critics.routing(torch.full((len(actions),), ti, dtype=torch.long))
                q = pol.critics(tens, torch.as_tensor(np.stack(actions)), routing).min(0).values
            g = discounted(rewards, gamma)
            q0.append(float(q[0]))
            g0.append(float(g[0]))
            q_all.extend(q.tolist())
            g_all.extend(g.tolist())
        corr = float(np.corrcoef(q_all, g_all)[0, 1]) if np.std(g_all) > 0 else float("nan")
        print(
            f"{task:9s} {100 * wins / args.episodes:6.0f}% {np.mean(q0):7.3f} {np.mean(g0):7.3f} "
            f"{np.mean(q_all):7.3f} {np.mean(g_all):7.3f} {corr:6.2f}"
        )
    env.close()


if __name__ == "__main__":
    main()
