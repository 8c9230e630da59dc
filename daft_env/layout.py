"""Which action dimensions translate the tool, in which words: the talk-and-tweak description.

Talk-and-tweak (paper Sec. IV-B, Eq. 12-13) turns an operator's correction into words: it sums
the translation the intervened actions command over a window of J steps and names each axis that
moved more than sigma. That needs to know, of the env's action,

* which dimensions are translations, in what order a phrase names them, with which words for the
  positive and the negative direction, and how many metres one unit of action moves the tool;
* the window J and the threshold sigma (metres) of Eq. 12-13;
* (optionally) which dimension is the gripper (> 0 closes), so a simulated operator can tell
  "closes" from "opens".

:class:`ActionLayout` is that description. The labeller (:mod:`daft_env.labeler`), the speaking
operator (:mod:`daft_env.operator`, :mod:`daft_env.plan_operator`) and the command encoder
(:mod:`daft_agent.commands`) all read the same one. :data:`DAFT_LAYOUT` is DAFT's own (7-d
end-effector delta, ``daft_env.spaces``): y "left/right" first, then x "forward/backward", then z
"up/down", 2 cm per unit, J = 5, sigma = 1 mm, gripper at index 6. An env states its own through
an ``action_layout`` attribute (or the user passes one); an env with no translation axes
(``ActionLayout(axes=())``, or no layout at all) runs with commands off.

Sign vectors (what :meth:`ActionLayout.parse` returns and the vocabulary encoder feeds the
refinement actor) list the axes in ascending action-index order: (x, y, z) for DAFT's.

Example, a 4-d (dx, dy, dz, gripper) action in metres per step of 5 cm::

    ActionLayout(
        axes=(TranslationAxis(1, "left", "right", 0.05), TranslationAxis(0, "forward", "backward", 0.05),
              TranslationAxis(2, "up", "down", 0.05)),
        gripper=3,
    )
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from daft_env.errors import ConfigError, InvalidActionError

#: the null refinement command (mirrors :data:`daft_env.episode.NULL_COMMAND`)
NULL_COMMAND = "[null]"
#: words a phrase may hold besides the axis words
_FILLER = ("move", "and", "to", "the")


@dataclass(frozen=True)
class TranslationAxis:
    """One action dimension that translates the tool.

    Attributes:
        index: the action dimension.
        positive: the word for a positive displacement ("left").
        negative: the word for a negative one ("right").
        metres: metres the tool moves per unit of this action dimension in one step.
    """

    index: int
    positive: str
    negative: str
    metres: float


@dataclass(frozen=True)
class ActionLayout:
    """The translation axes of an action, their words and scale, and Eq. 12-13's J and sigma.

    Attributes:
        axes: the translation axes in phrase order (the first named first). Empty: commands off.
        gripper: the action dimension whose sign closes the gripper (> 0), or None.
        J: the Eq. 12 window (steps).
        sigma: the Eq. 13 threshold (metres).

    Raises:
        ConfigError: a malformed description (the message names the field and the fix).
    """

    axes: tuple[TranslationAxis, ...]
    gripper: int | None = None
    J: int = 5
    sigma: float = 0.001

    def __post_init__(self) -> None:
        axes = tuple(
            a if isinstance(a, TranslationAxis) else TranslationAxis(*a) for a in self.axes
        )
        object.__setattr__(self, "axes", axes)
        words: list[str] = []
        for a in axes:
            if (
                isinstance(a.index, bool)
                or not isinstance(a.index, (int, np.integer))
                or a.index < 0
            ):
                raise ConfigError(
                    f"action layout: translation axis {a.positive}/{a.negative} has index "
                    f"{a.index!r}; an index is a non-negative int, the action dimension it moves"
                )
            object.__setattr__(a, "index", int(a.index))
            if not (np.isfinite(a.metres) and a.metres > 0):
                raise ConfigError(
                    f"action layout: axis {a.positive}/{a.negative} must move a positive, finite "
                    f"number of metres per unit of action; got metres={a.metres!r}"
                )
            for w in (a.positive, a.negative):
                if not isinstance(w, str) or not w.isalpha() or w != w.lower() or w in _FILLER:
                    raise ConfigError(
                        f"action layout: axis word {w!r} must be one lower-case word (letters "
                        f"only) other than {list(_FILLER)}"
                    )
                words.append(w)
        if len(set(words)) != len(words):
            raise ConfigError(f"action layout: the axis words {words} must all differ")
        idx = [a.index for a in axes]
        if len(set(idx)) != len(idx):
            raise ConfigError(f"action layout: two translation axes share an index ({idx})")
        if self.gripper is not None:
            if isinstance(self.gripper, bool) or not isinstance(self.gripper, (int, np.integer)):
                raise ConfigError(
                    f"action layout: gripper must be an index or None; got {self.gripper!r}"
                )
            object.__setattr__(self, "gripper", int(self.gripper))
            if self.gripper in idx:
                raise ConfigError(
                    f"action layout: index {self.gripper} is both the gripper and a translation axis"
                )
        if isinstance(self.J, bool) or not isinstance(self.J, (int, np.integer)) or self.J < 1:
            raise ConfigError(
                f"action layout: J (the Eq. 12 window) must be an int >= 1; got {self.J!r}"
            )
        if not (np.isfinite(self.sigma) and self.sigma >= 0):
            raise ConfigError(
                f"action layout: sigma (metres, Eq. 13) must be >= 0; got {self.sigma!r}"
            )

    # ------------------------------------------------------------------ the description
    @property
    def enabled(self) -> bool:
        """Whether commands exist at all (at least one translation axis)."""
        return bool(self.axes)

    @property
    def indices(self) -> tuple[int, ...]:
        """The translation dimensions in ascending order: the order of sign vectors."""
        return tuple(sorted(a.index for a in self.axes))

    @property
    def metres(self) -> np.ndarray:
        """Metres per unit of each translation dimension, in :attr:`indices` order."""
        by = {a.index: a.metres for a in self.axes}
        return np.array([by[i] for i in self.indices], dtype=np.float64)

    @property
    def words(self) -> dict[str, tuple[int, int]]:
        """Word -> (position in :attr:`indices`, sign)."""
        pos = {i: k for k, i in enumerate(self.indices)}
        out: dict[str, tuple[int, int]] = {}
        for a in self.axes:
            out[a.positive] = (pos[a.index], 1)
            out[a.negative] = (pos[a.index], -1)
        return out

    def check(self, action_space: spaces.Space, what: str = "the env") -> None:
        """Raise :class:`ConfigError` unless every index is a dimension of ``action_space``'s Box."""
        if not (isinstance(action_space, spaces.Box) and len(action_space.shape) == 1):
            raise ConfigError(
                f"action layout: translation axes index a 1-d Box action, but {what}'s action "
                f"space is {action_space}; commands need a continuous (Box) action vector. Pass "
                "ActionLayout(axes=()) to run with commands off"
            )
        n = int(action_space.shape[0])
        for a in self.axes:
            if a.index >= n:
                raise ConfigError(
                    f"action layout: translation axis {a.positive}/{a.negative} has index "
                    f"{a.index}, but {what}'s action has {n} dimensions (indices 0..{n - 1}). "
                    "Fix the index to the dimension that moves the tool that way"
                )
        if self.gripper is not None and self.gripper >= n:
            raise ConfigError(
                f"action layout: gripper index {self.gripper} is outside {what}'s {n}-d action "
                f"(indices 0..{n - 1}); fix it, or pass gripper=None"
            )

    def rescaled(self, low: Sequence[float], high: Sequence[float]) -> ActionLayout:
        """This layout for actions normalised to [-1, 1] from the Box [low, high].

        A unit of normalised action is (high - low) / 2 units of the env's.
        """
        lo, hi = np.asarray(low, np.float64).reshape(-1), np.asarray(high, np.float64).reshape(-1)
        axes = tuple(
            dataclasses.replace(a, metres=float(a.metres * (hi[a.index] - lo[a.index]) / 2.0))
            for a in self.axes
        )
        return dataclasses.replace(self, axes=axes)

    def with_window(self, J: int | None = None, sigma: float | None = None) -> ActionLayout:
        """The same axes with another J and/or sigma."""
        return dataclasses.replace(
            self, J=self.J if J is None else J, sigma=self.sigma if sigma is None else sigma
        )

    # ------------------------------------------------------------------ Eq. 12-13
    def translation(self, action: Any) -> np.ndarray:
        """Metres one action moves the tool along each translation dimension (:attr:`indices`)."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if self.indices and a.size <= self.indices[-1]:
            raise InvalidActionError(
                f"an action of {a.size} dimensions has no translation dimension {self.indices[-1]}"
            )
        t = a[list(self.indices)]
        if not np.all(np.isfinite(t)):
            raise InvalidActionError(
                f"intervened action has NaN or infinite translation {t.tolist()}; cannot label it"
            )
        return t * self.metres

    def phrase_from_signs(self, signs: Sequence[int] | np.ndarray) -> str:
        """The command for per-axis signs in {-1, 0, 1} (:attr:`indices` order); zeros -> ``[null]``."""
        s = np.asarray(signs).reshape(-1)
        if s.shape != (len(self.axes),):
            raise ConfigError(
                f"signs must have one entry per translation axis ({len(self.axes)}); got {s.shape}"
            )
        pos = {i: k for k, i in enumerate(self.indices)}
        words = []
        for a in self.axes:
            v = s[pos[a.index]]
            if v > 0:
                words.append(a.positive)
            elif v < 0:
                words.append(a.negative)
        if not words:
            return NULL_COMMAND
        if len(words) == 1:
            return f"move {words[0]}"
        return "move " + ", ".join(words[:-1]) + " and " + words[-1]

    def phrase(
        self, displacement_m: Sequence[float] | np.ndarray, sigma: float | None = None
    ) -> str:
        """Eq. 13 for one displacement (metres, :attr:`indices` order): ``|d| > sigma`` names an axis."""
        d = np.asarray(displacement_m, dtype=np.float64).reshape(-1)
        thr = self.sigma if sigma is None else float(sigma)
        return self.phrase_from_signs(np.where(d > thr, 1, np.where(d < -thr, -1, 0)))

    def vocabulary(self) -> list[str]:
        """Every phrase Eq. 13 can give, ``[null]`` first, in a fixed order (3^n entries)."""
        out = [NULL_COMMAND]
        for signs in itertools.product((0, 1, -1), repeat=len(self.axes)):
            if any(signs):
                out.append(self.phrase_from_signs(signs))
        return out

    def parse(self, phrase: str) -> np.ndarray:
        """A command -> per-axis signs (:attr:`indices` order); ``[null]`` gives zeros.

        Lenient in what it takes: the axis words in any order, with or without "move", and
        "to the" ("move to the right").

        Raises:
            ConfigError: an unknown word, two words for one axis, or no direction.
        """
        text = str(phrase).strip().lower()
        signs = np.zeros(len(self.axes), dtype=np.int64)
        if text in (NULL_COMMAND, ""):
            return signs
        words = self.words
        seen: set[int] = set()
        for tok in text.replace(",", " ").split():
            if tok in _FILLER:
                continue
            if tok not in words:
                raise ConfigError(
                    f"cannot parse refinement command {phrase!r}: unknown word {tok!r}; "
                    f"valid words are {sorted(words)} or {NULL_COMMAND!r}"
                )
            k, sign = words[tok]
            if k in seen:
                raise ConfigError(f"refinement command {phrase!r} names one axis twice")
            seen.add(k)
            signs[k] = sign
        if not seen:
            raise ConfigError(f"refinement command {phrase!r} names no direction")
        return signs


#: DAFT's own layout (``daft_env.spaces``): 2 cm per unit on x, y, z; the paper's J and sigma
DAFT_LAYOUT = ActionLayout(
    axes=(
        TranslationAxis(1, "left", "right", 0.02),
        TranslationAxis(0, "forward", "backward", 0.02),
        TranslationAxis(2, "up", "down", 0.02),
    ),
    gripper=6,
)
#: no translation: commands off
NO_COMMANDS = ActionLayout(axes=())


def daft_layout(
    scale: Sequence[float] | np.ndarray, J: int = 5, sigma: float = 0.001
) -> ActionLayout:
    """DAFT's axis words and order with another metres-per-unit scale (x, y, z first)."""
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    if s.size < 3 or not np.all(np.isfinite(s[:3])) or np.any(s[:3] <= 0):
        raise ConfigError(
            "action_scale must hold at least 3 positive metres-per-unit factors (x, y, z), "
            f"e.g. daft_env.spaces.ACTION_SCALE; got {s.tolist()}"
        )
    axes = tuple(dataclasses.replace(a, metres=float(s[a.index])) for a in DAFT_LAYOUT.axes)
    return ActionLayout(axes=axes, gripper=DAFT_LAYOUT.gripper, J=J, sigma=sigma)


def layout_of(env: Any) -> ActionLayout | None:
    """The layout an env states, DAFT's for DAFT's action space, else None (commands off).

    An env states one through an ``action_layout`` attribute (on itself, a wrapper or the
    unwrapped env).
    """
    layout = None
    try:
        layout = env.get_wrapper_attr("action_layout")
    except AttributeError:
        layout = getattr(getattr(env, "unwrapped", env), "action_layout", None)
    if isinstance(layout, ActionLayout):
        return layout
    space = getattr(env, "action_space", None)
    if (
        isinstance(space, spaces.Box)
        and space.shape == (7,)
        and np.allclose(space.low, -1)
        and np.allclose(space.high, 1)
    ):
        return DAFT_LAYOUT
    return None


__all__ = [
    "DAFT_LAYOUT",
    "NO_COMMANDS",
    "ActionLayout",
    "TranslationAxis",
    "daft_layout",
    "layout_of",
]
