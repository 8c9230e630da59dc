"""The training env of ``daft train``: the simulated operator over a perception-error mix.

The mix is optional: a share of the episodes runs under the hidden perception error of
:mod:`daft_env.perception`.

With ``--train-perception-error P`` a share P of the training episodes run with the per-episode
hidden offsets of the bolt and the fixture; the operator (and success) read the true state, so
its takeovers and talk-and-tweak labels carry what the policy's observation lacks, which is what
the refinement actor can learn to use (issue 10). The rest run nominal, so the primary still sees
the true scenes it is evaluated on in the nominal condition.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from hardware.errors import ConfigError


class PerceptionMix(gym.Wrapper):
    """Put each episode under the hidden perception error with probability ``p``.

    Before each reset it switches the unwrapped BoltEnv's ``perception_error`` on (a draw below
    ``p``) or off and clears the last episode's offsets, so a nominal episode observes the truth.
    ``info["perception_error"]`` on reset says which it is.

    Args:
        env: an env made with ``perception_error`` set (its value is the error used when on).
        p: share of episodes under the error, in [0, 1].
        seed: seed of the on/off draws.

    Raises:
        ConfigError: ``p`` outside [0, 1], or ``env`` has no perception error to switch.
    """

    def __init__(self, env: Any, p: float, seed: int | None = None) -> None:
        super().__init__(env)
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"the perception-error share must be in [0, 1]; got {p}")
        self.error = env.unwrapped.perception_error
        if self.error is None:
            raise ConfigError(
                "PerceptionMix needs an env made with perception_error=True (or metres)"
            )
        self.p = float(p)
        self.rng = np.random.default_rng(seed)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Choose this episode's condition, then reset."""
        base = self.env.unwrapped
        base.perception_error = self.error if self.rng.random() < self.p else None
        base.perception_offsets = {}
        obs, info = self.env.reset(**kwargs)
        return obs, info | {"perception_error": base.perception_error is not None}


def make_train_env(
    env_id: str,
    obs_mode: str,
    seed: int,
    operator_rate: float,
    perception_share: float,
    perception: Any,
    env_kwargs: dict[str, Any] | None = None,
    failure_terminal: bool = True,
) -> Any:
    """The operator (takeover mode, ``target_rate=operator_rate``) over the (mixed) env.

    Training episodes end at an unrecoverable failure (``failure_terminal``, BoltEnv's option:
    an assemble bolt tilted past 45 deg or dropped), so the critics see failure as terminal. The
    evaluation envs run to the step limit; success is counted the same either way.
    """
    import daft_env  # noqa: F401  (registers the ids)
    from daft_env.operator import SimulatedOperator
    from daft_env.wrappers import InterventionWrapper

    try:
        base = gym.make(
            env_id,
            obs_mode=obs_mode,
            perception_error=perception if perception_share else None,
            **({"failure_terminal": True} if failure_terminal else {}),
            **dict(env_kwargs or {}),
        )
    except gym.error.Error as exc:
        raise ConfigError(f"cannot make env {env_id!r}: {exc}") from exc
    if perception_share:
        base = PerceptionMix(base, perception_share, seed + 2)
    return InterventionWrapper(base, SimulatedOperator(base, target_rate=operator_rate, seed=seed))


__all__ = ["PerceptionMix", "make_train_env"]
