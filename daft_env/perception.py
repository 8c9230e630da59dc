"""A hidden perception error: the sim counterpart of a VLA's imperfect perception (issue 10).

A real VLA sees the bolt and the fixture a little off, and a person watching the robot sees the
error. :class:`PerceptionError` gives the simulation the same: at every reset it draws a per-episode
offset for each perceived object, and the policy's ``state`` observation reports the object there,

    bolt_pos_obs = bolt_pos + delta_bolt,      slot_pos_obs = slot_pos + delta_fixture,

(the slot is a feature of the fixture, and the only fixture position in the ``state`` vector,
:data:`~daft_env.spaces.STATE_LAYOUT`). Each delta is drawn independently: a horizontal direction
uniform on the circle, a magnitude uniform in [``min_offset``, ``max_offset``], and a vertical part
uniform in [-``vertical``, ``vertical``]. Everything else (physics, success, ``info``, and
``privileged_state()``, which the scripted experts and the simulated operator read) stays TRUE:
only the policy's observation is perturbed, so the operator sees the truth and the policy does not.

Default magnitude, 5 to 15 mm horizontally, none vertically: the lower bound is above every
tolerance that matters (the assemble success gate allows a few tenths of a millimetre across the
slot, the expert's slot gate is +-1.5 mm, the pads close on an 8 mm shank), so every perturbed
episode fails unless someone corrects it; the upper bound, about the bolt head's width, keeps the
perceived object where a person would still call it "a bit to the left" and a few 1-2 cm
refinement commands fix it. The vertical part defaults to 0 because the table top bounds the
height a camera sees, and a height error alone makes the policy press into the table.

Measured (20 seeded episodes per task, seeds 500-519): the scripted expert acting on the TRUE state
succeeds 20/20 on every task under the error; acting on the PERCEIVED positions (what the policy
sees, :func:`perceived_state`) it succeeds 18/20 upright, 18/20 pickup and 3/20 assemble with the
default 5-15 mm, and 8/20, 6/20, 2/20 with 15-30 mm. The grasping tasks tolerate about a
centimetre (the fingers open wide around the bolt); the slot does not.

Pixel observations: not implemented. Shifting the rendered objects for the cameras only (or the
head camera's pose) is the pixel counterpart; until it exists, :class:`~daft_env.env.BoltEnv`
refuses ``perception_error`` with any pixel mode rather than silently ignoring it.

Seeding: the env draws the offsets from its own stream, reseeded by ``reset(seed=s)`` from
``(s, PERCEPTION_STREAM)``, so the same seed gives the same offset, and the scene layout drawn from
the env's ``np_random`` is the same with and without the error (nominal and perturbed conditions
are evaluated on the same scenes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from daft_env.spaces import STATE_SLICES
from hardware.errors import ConfigError

#: the perceived objects and the privileged-state fields each one's offset moves
OBJECTS: dict[str, tuple[str, ...]] = {
    "bolt": ("bolt_pos",),
    "fixture": ("slot_pos", "fixture_pos"),
}
#: a second seed word, so the offsets' stream is independent of the scene layout's
PERCEPTION_STREAM = 0x5EE


_SLICES = STATE_SLICES


@dataclasses.dataclass(frozen=True)
class PerceptionError:
    """How large the hidden per-episode offsets are (module docstring: the rule and the default).

    Attributes:
        min_offset: smallest horizontal offset (m) of each object.
        max_offset: largest horizontal offset (m) of each object.
        vertical: largest vertical offset (m), drawn uniformly in [-vertical, vertical].
        objects: which objects are misperceived, a subset of ``("bolt", "fixture")``.

    Raises:
        ConfigError: negative or inverted bounds, or an unknown object.
    """

    min_offset: float = 0.005
    max_offset: float = 0.015
    vertical: float = 0.0
    objects: tuple[str, ...] = ("bolt", "fixture")

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_offset <= self.max_offset:
            raise ConfigError(
                "perception error needs 0 <= min_offset <= max_offset (metres); got "
                f"{self.min_offset}, {self.max_offset}"
            )
        if self.max_offset > 0.1 or self.vertical > 0.1:
            raise ConfigError(
                f"perception offsets above 10 cm (max_offset={self.max_offset}, vertical="
                f"{self.vertical}) put the perceived object elsewhere on the table; use a few mm "
                "to ~1.5 cm"
            )
        if self.vertical < 0:
            raise ConfigError(f"vertical must be >= 0 (metres); got {self.vertical}")
        object.__setattr__(self, "objects", tuple(self.objects))
        unknown = sorted(set(self.objects) - set(OBJECTS))
        if unknown or not self.objects:
            raise ConfigError(
                f"perception error objects must be a non-empty subset of {sorted(OBJECTS)}; got "
                f"{list(self.objects)}"
            )

    def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One episode's offsets: object name -> (3,) metres in the robot base frame."""
        out = {}
        for name in OBJECTS:  # fixed order, so the draws do not depend on ``objects``' order
            angle = rng.uniform(0.0, 2.0 * np.pi)
            radius = rng.uniform(self.min_offset, self.max_offset)
            z = rng.uniform(-self.vertical, self.vertical) if self.vertical > 0 else 0.0
            if name in self.objects:
                out[name] = np.array([radius * np.cos(angle), radius * np.sin(angle), z])
        return out


def perturb_state_vector(state: np.ndarray, offsets: Mapping[str, np.ndarray]) -> np.ndarray:
    """The ``state`` observation as the policy perceives it (a new float32 array)."""
    out = np.array(state, dtype=np.float32, copy=True)
    for name, delta in offsets.items():
        for field in OBJECTS[name]:
            if field in _SLICES:
                out[_SLICES[field]] += np.asarray(delta, dtype=np.float32)
    return out


def perceived_state(ps: Mapping[str, Any], offsets: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """A privileged-state dict with the objects where the policy perceives them.

    For analysis (e.g. a scripted expert acting on what the policy sees); the env, the operator and
    success never use it.
    """
    out = dict(ps)
    for name, delta in offsets.items():
        for field in OBJECTS[name]:
            if field in out:
                out[field] = np.asarray(out[field], dtype=np.float64) + delta
    return out


def as_perception_error(spec: Any) -> PerceptionError | None:
    """Read the env option: None/False/0 (off), True (the default), metres, a dict or an instance.

    A number ``x`` > 0 means offsets up to ``x`` metres (``max_offset=x``, ``min_offset`` =
    min(default, x / 3)); a dict gives :class:`PerceptionError`'s fields by name.

    Raises:
        ConfigError: any other value, or unknown or invalid fields.
    """
    if spec is None or spec is False:
        return None
    if isinstance(spec, PerceptionError):
        return spec
    if spec is True:
        return PerceptionError()
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        if spec == 0:
            return None
        if spec < 0:
            raise ConfigError(f"perception_error must be >= 0 metres; got {spec}")
        return PerceptionError(
            min_offset=min(PerceptionError.min_offset, spec / 3), max_offset=spec
        )
    if isinstance(spec, Mapping):
        fields = {f.name for f in dataclasses.fields(PerceptionError)}
        unknown = sorted(set(spec) - fields)
        if unknown:
            raise ConfigError(
                f"unknown perception_error field(s) {unknown}; valid fields: {sorted(fields)}"
            )
        return PerceptionError(**dict(spec))
    raise ConfigError(
        "perception_error must be None, True, a magnitude in metres, a dict of PerceptionError "
        f"fields or a daft_env.perception.PerceptionError; got {type(spec).__name__}"
    )


def seeded_rng(seed: int | None) -> np.random.Generator:
    """The offsets' generator for ``reset(seed=seed)`` (None: fresh entropy)."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(np.random.SeedSequence([int(seed), PERCEPTION_STREAM]))


class PerceptionMix(gym.Wrapper):
    """Put each episode under the hidden perception error with probability ``p``.

    With ``daft train --train-perception-error P`` a share P of the training episodes run with the
    per-episode hidden offsets of the bolt and the fixture; the operator (and success) read the
    true state, so its takeovers and talk-and-tweak labels carry what the policy's observation
    lacks, which is what the refinement actor can learn to use (issue 10). The rest run nominal,
    so the primary still sees the true scenes it is evaluated on in the nominal condition.

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


__all__ = [
    "OBJECTS",
    "PERCEPTION_STREAM",
    "PerceptionError",
    "PerceptionMix",
    "as_perception_error",
    "perceived_state",
    "perturb_state_vector",
    "seeded_rng",
]
