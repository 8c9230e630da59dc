"""How far does a refinement command move the action? (issue 18's authority measurement)

A command can only correct what the policy cannot see if it moves the action, in the direction
it says, by a useful amount: correcting a 5-15 mm perception error needs 0.25-0.75 normalised
units (5-15 mm per step at 2 cm per unit). For held-out states of each task (the checkpoint's
own deterministic rollouts on seeds it was not evaluated on), this prints, per single-axis
word ("move forward", "move backward", "move left", ...), the mean and the 10th percentile of

    signed movement = sign(word) * (a(s, word) - a(s))[axis(word)]

where a(s, word) is the policy's deterministic action under the command (refinement mode,
Eq. 2) and a(s) its action alone (Eq. 1). The issue's target is >= 0.25 for every word and task.

    python benchmarks/command_authority.py runs/state/checkpoint.zip [--episodes 5] [--seed 50000]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np

import daft_env  # noqa: F401
from daft_agent.agent import DualActorAgent
from daft_env.labeler import parse_command

WORDS = (
    "move forward",
    "move backward",
    "move left",
    "move right",
    "move up",
    "move down",
)


def held_out_states(agent, env, task: str, episodes: int, seed: int) -> list[dict]:
    """Observations along the policy's own deterministic rollouts."""
    states = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k, options={"task": task})
        done = False
        while not done:
            states.append(obs)
            action, _ = agent.predict(obs, deterministic=True)
            obs, _, term, trunc, _ = env.step(action)
            done = term or trunc
    return states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=50_000)
    parser.add_argument("--env", default="BoltMultiTask-Sim-v0")
    args = parser.parse_args()
    env = gym.make(args.env, obs_mode="state")
    agent = DualActorAgent.load(args.checkpoint, env=env)
    print(f"{'task':9s} " + " ".join(f"{w[5:]:>13s}" for w in WORDS) + "   (mean / p10)")
    worst = np.inf
    for task in agent.tasks:
        states = held_out_states(agent, env, task, args.episodes, args.seed)
        batch = {k: np.stack([np.asarray(s[k]) for s in states]) for k in states[0]}
        alone, _ = agent.predict(batch, deterministic=True)
        cells = []
        for word in WORDS:
            signs = parse_command(word)
            axis = int(np.flatnonzero(signs)[0])
            steered, _ = agent.predict(batch, deterministic=True, command=word)
            moved = signs[axis] * (steered[:, axis] - alone[:, axis])
            worst = min(worst, float(np.mean(moved)))
            cells.append(f"{np.mean(moved):+.3f}/{np.percentile(moved, 10):+.3f}")
        print(f"{task:9s} " + " ".join(f"{c:>13s}" for c in cells) + f"   ({len(states)} states)")
    print(f"smallest mean movement: {worst:+.3f} (target >= 0.25)")
    env.close()


if __name__ == "__main__":
    main()
