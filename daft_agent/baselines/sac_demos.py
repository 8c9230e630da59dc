"""SAC + demonstrations, RLPD-style (Ball et al., 2023): what an SB3 user would try first.

Keeps: RLPD's symmetric sampling, half of every batch from the demonstrations and half from the
online data, at one update per env step; the operator's interventions join the demonstrations
(and the online data, with the executed action). Drops: RLPD's critic ensemble with LayerNorm and
its high update-to-data ratio (Stable-Baselines3's SAC as it ships: two critics, UTD 1). Not
reported in the paper.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import DictReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples

from daft_agent.baselines.common import BaselineSettings
from daft_agent.errors import AgentConfigError


class MixedReplayBuffer(DictReplayBuffer):
    """A replay buffer that mixes two sources at sampling time (RLPD's symmetric sampling).

    The online transitions live in this buffer; the expert ones (demonstrations, then every
    intervened step) in :attr:`expert`. A batch of B holds ``round(B * expert_share)`` expert rows
    and the rest online ones, or only online ones while the expert buffer is empty. An intervened
    step is stored with the action the operator executed (``info["intervention_action"]``), not
    the one SAC proposed.

    Args:
        buffer_size, observation_space, action_space, device, n_envs: as SB3's DictReplayBuffer
            (one env).
        expert_share: share of each batch drawn from the expert buffer, in [0, 1].
        **kwargs: passed to both buffers.

    Raises:
        AgentConfigError: ``expert_share`` outside [0, 1] or more than one env.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: Any,
        action_space: Any,
        device: Any = "auto",
        n_envs: int = 1,
        expert_share: float = 0.5,
        **kwargs: Any,
    ) -> None:
        if not 0.0 <= expert_share <= 1.0 or n_envs != 1:
            raise AgentConfigError(
                f"MixedReplayBuffer needs expert_share in [0, 1] and one env; got "
                f"{expert_share}, {n_envs} envs"
            )
        super().__init__(buffer_size, observation_space, action_space, device, n_envs, **kwargs)
        self.expert = DictReplayBuffer(
            buffer_size, observation_space, action_space, device, 1, **kwargs
        )
        self.expert_share = float(expert_share)

    def add(  # type: ignore[override]
        self,
        obs: dict[str, np.ndarray],
        next_obs: dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store an online step; an intervened one goes to the expert buffer too."""
        info = infos[0]
        if info.get("intervened"):
            action = np.asarray(info["intervention_action"], np.float32).reshape(action.shape)
            self.expert.add(obs, next_obs, action, reward, done, infos)
        super().add(obs, next_obs, action, reward, done, infos)

    def add_episodes(self, episodes: Iterable[Any]) -> int:
        """Put stored episodes' steps (:class:`daft_env.episode.Episode`) in the expert buffer."""
        n = 0
        for ep in episodes:
            for t in range(len(ep)):
                obs, nxt = (
                    {
                        k: np.asarray(v[i]).reshape((1, *self.obs_shape[k]))
                        for k, v in ep.observations.items()
                        if k in self.obs_shape
                    }
                    for i in (t, t + 1)
                )
                self.expert.add(
                    obs,
                    nxt,
                    np.asarray(ep.actions[t], np.float32)[None],
                    np.asarray([ep.rewards[t]], np.float32),
                    np.asarray([bool(ep.terminated[t])]),
                    [{}],
                )
                n += 1
        return n

    def sample(self, batch_size: int, env: Any = None) -> DictReplayBufferSamples:  # type: ignore[override]
        """``batch_size`` rows: the expert share from :attr:`expert`, the rest online."""
        n_exp = round(batch_size * self.expert_share) if self.expert.size() else 0
        n_exp = batch_size if self.size() == 0 else n_exp
        if n_exp == 0:
            return super().sample(batch_size, env)
        b = self.expert.sample(n_exp, env)
        if n_exp == batch_size:
            return b
        a = super().sample(batch_size - n_exp, env)
        return DictReplayBufferSamples(
            observations={
                k: torch.cat([a.observations[k], b.observations[k]]) for k in a.observations
            },
            actions=torch.cat([a.actions, b.actions]),
            next_observations={
                k: torch.cat([a.next_observations[k], b.next_observations[k]])
                for k in a.next_observations
            },
            dones=torch.cat([a.dones, b.dones]),
            rewards=torch.cat([a.rewards, b.rewards]),
        )


def make(env: Any, store: Any, seed: int, settings: BaselineSettings) -> SAC:
    """SB3 SAC on ``env`` whose expert buffer holds every demonstration in ``store``."""
    model = SAC(
        "MultiInputPolicy",
        env,
        seed=seed,
        replay_buffer_class=MixedReplayBuffer,
        replay_buffer_kwargs={"expert_share": 0.5},
        device="cpu",
        **settings.sac_kwargs(),
    )
    model.replay_buffer.add_episodes(store.episodes(kind="demos"))
    return model


__all__ = ["MixedReplayBuffer", "make"]
