"""The operated env: a sim env with a device (the simulated operator by default) under the
intervention wrapper.

Every place that lets an operator act on a DAFT env builds it here: training (:func:`make_train_env`:
the operator takes over), evaluation with spoken commands and videos (:func:`make_speaking_env`:
the operator only speaks), the fleet's simulated robots and the benchmarks (:func:`operated`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hardware.errors import ConfigError


def make_env(env_id: str, **kwargs: Any) -> Any:
    """``gym.make(env_id, **kwargs)`` with the DAFT ids registered and a clear error."""
    import gymnasium as gym

    import daft_env  # noqa: F401  (registers the ids)

    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        raise ConfigError(f"cannot make env {env_id!r}: {exc}") from exc


def operated(env: Any, device: Any = None, **operator_kwargs: Any) -> Any:
    """``env`` under the intervention wrapper with ``device``.

    Args:
        env: the env the operator acts on.
        device: a teleop device; None makes a :class:`~daft_env.operator.SimulatedOperator`
            watching ``env`` with ``operator_kwargs`` (``mode``, ``target_rate``, ``seed``, ...).
    """
    from daft_env.operator import SimulatedOperator
    from daft_env.wrappers import InterventionWrapper

    if device is None:
        device = SimulatedOperator(env, **operator_kwargs)
    return InterventionWrapper(env, device)


def make_train_env(
    env_id: str,
    obs_mode: str,
    seed: int,
    operator_rate: float,
    perception_share: float,
    perception: Any,
    env_kwargs: Mapping[str, Any] | None = None,
    failure_terminal: bool = True,
) -> Any:
    """The operator (takeover mode, ``target_rate=operator_rate``) over the (mixed) env.

    A share ``perception_share`` of the episodes runs under the hidden perception error
    ``perception`` (:class:`~daft_env.perception.PerceptionMix`). Training episodes end at an
    unrecoverable failure (``failure_terminal``, BoltEnv's option: an assemble bolt tilted past
    45 deg or dropped), so the critics see failure as terminal. The evaluation envs run to the
    step limit; success is counted the same either way.
    """
    from daft_env.perception import PerceptionMix

    base = make_env(
        env_id,
        obs_mode=obs_mode,
        perception_error=perception if perception_share else None,
        **({"failure_terminal": True} if failure_terminal else {}),
        **dict(env_kwargs or {}),
    )
    if perception_share:
        base = PerceptionMix(base, perception_share, seed + 2)
    return operated(base, target_rate=operator_rate, seed=seed)


def make_speaking_env(
    env_id: str, obs_mode: str, perception_error: Any = None, **operator_kwargs: Any
) -> Any:
    """A sim env of ``env_id`` under the wrapper, with a simulated operator that only speaks."""
    base = make_env(env_id, obs_mode=obs_mode, perception_error=perception_error)
    return operated(base, mode="speak", **operator_kwargs)


__all__ = ["make_env", "make_speaking_env", "make_train_env", "operated"]
