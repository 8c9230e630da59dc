"""DSRL (Wagenmaker et al., 2025): RL in the latent noise space of a frozen diffusion policy.

Keeps: a BC-trained generative policy (DAFT's consistency actor, warmed up on the demonstrations
with BC alone, :data:`~daft_agent.baselines.hg_dagger.BC_ONLY`) frozen after warm-up, and an
off-policy agent (SB3's SAC) whose action is the noise w fed to it: the env action is
``clip(f(w, K, h), -1, 1)`` (Eq. 1 with w chosen instead of drawn). Drops: DSRL's noise-aliased
variant (DSRL-NA) and its tuned hyperparameters; learning from interventions (the operator still
acts on the same budget, but the latent agent learns only from the w it chose, since a takeover
has no w).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback

from daft_agent.baselines.common import BaselineSettings, dual_actor
from daft_agent.baselines.hg_dagger import BC_ONLY
from daft_agent.errors import AgentConfigError
from daft_agent.policies import obs_as_tensors


class LatentNoiseEnv(gym.Wrapper):
    """The env seen through a frozen consistency policy: actions are its noise w.

    Args:
        env: DAFT's env (Dict observation, 7-d action).
        policy: the frozen :class:`~daft_agent.policies.DualActorPolicy`.
        noise_scale: w lies in ``[-noise_scale K, noise_scale K]^7``.
    """

    def __init__(self, env: Any, policy: Any, noise_scale: float = 1.5) -> None:
        super().__init__(env)
        if noise_scale <= 0:
            raise AgentConfigError(f"noise_scale must be > 0; got {noise_scale}")
        self.policy = policy
        bound = float(noise_scale * policy.net.K)
        dim = env.action_space.shape[0]
        self.action_space = spaces.Box(-bound, bound, (dim,), np.float32)
        self._obs: Any = None

    @torch.no_grad()
    def decode(self, obs: Any, w: np.ndarray) -> np.ndarray:
        """The frozen policy's action for noise ``w`` at ``obs`` (one observation)."""
        tens, _ = obs_as_tensors(obs, self.policy.observation_space, self.policy.device)
        h = self.policy.actor.backbone(tens)
        noise = torch.as_tensor(np.asarray(w, np.float32), device=h.device).reshape(1, -1)
        return self.policy.actor.head.act_from_noise(h, noise)[0].cpu().numpy()

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset and remember the observation the next w is decoded at."""
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Decode w at the last observation and step the env with the resulting action."""
        obs, reward, terminated, truncated, info = self.env.step(self.decode(self._obs, action))
        self._obs = obs
        return obs, reward, terminated, truncated, info


class _SeenAsDSRL(BaseCallback):
    """Runs ``inner`` with the :class:`DSRL` learner as its model.

    SAC calls the callbacks with itself as the model, whose ``predict`` gives the noise w; an
    evaluation callback (:class:`~daft_agent.evaluation.PeriodicEvaluation`) must act through
    the frozen policy instead, which :meth:`DSRL.predict` does.
    """

    def __init__(self, inner: BaseCallback, dsrl: DSRL) -> None:
        super().__init__()
        self.inner, self.dsrl = inner, dsrl

    def _init_callback(self) -> None:
        self.inner.init_callback(self.dsrl)  # type: ignore[arg-type]

    def _on_training_start(self) -> None:
        self.inner.on_training_start(self.locals, self.globals)

    def _on_step(self) -> bool:
        self.inner.update_locals(self.locals)
        return self.inner.on_step()

    def _on_training_end(self) -> None:
        self.inner.on_training_end()


class DSRL:
    """The frozen base policy, the latent-noise env and SAC, behind SB3's learn/predict.

    Args:
        env: DAFT's env (under the operator, as every row).
        store: episode store holding the demonstrations.
        seed: seed of both learners.
        settings: the experiment's sizes.
        noise_scale: see :class:`LatentNoiseEnv`.
    """

    def __init__(
        self, env: Any, store: Any, seed: int, settings: BaselineSettings, noise_scale: float = 1.5
    ) -> None:
        self.base = dual_actor(env, store, seed, settings, **BC_ONLY)
        self.latent_env = LatentNoiseEnv(env, self.base.policy, noise_scale)
        self.sac = SAC(
            "MultiInputPolicy", self.latent_env, seed=seed, device="cpu", **settings.sac_kwargs()
        )
        self._frozen = False

    @property
    def num_timesteps(self) -> int:
        """Online env steps so far (SAC's counter)."""
        return self.sac.num_timesteps

    @property
    def logger(self) -> Any:
        """SAC's logger (callbacks record through it)."""
        return self.sac.logger

    def get_env(self) -> Any:
        """SAC's (vectorised) training env."""
        return self.sac.get_env()

    def learn(self, total_timesteps: int, callback: Any = None, **kwargs: Any) -> DSRL:
        """BC warm-up of the base policy (once), freeze it, then SAC in its noise space."""
        if not self._frozen:
            self.base.warmup(self.base.warmup_steps)
            self.base.policy.eval()
            self.base.policy.requires_grad_(False)
            self._frozen = True
        given = [] if callback is None else callback if isinstance(callback, list) else [callback]
        seen = [_SeenAsDSRL(c, self) for c in given]  # callbacks see DSRL, not the raw SAC
        self.sac.learn(total_timesteps, callback=seen or None, **kwargs)
        return self

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """The env action for one observation: SAC's w decoded by the frozen policy."""
        w, _ = self.sac.predict(observation, deterministic=deterministic)
        return self.latent_env.decode(observation, w), state


def make(env: Any, store: Any, seed: int, settings: BaselineSettings) -> DSRL:
    """A :class:`DSRL` learner at the experiment's sizes."""
    return DSRL(env, store, seed, settings)


__all__ = ["DSRL", "LatentNoiseEnv", "make"]
