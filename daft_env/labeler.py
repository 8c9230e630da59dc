"""Talk-and-tweak: turn an operator's physical corrections into language (paper Sec. IV-B).

The rule-based mapping f: a^intv -> l_rf of Eq. 12-13. For an intervened step t,

    Delta_t = sum_{j=0}^{J'-1} a_{t+j}[0:3] * s[0:3]                                   (Eq. 12)

where ``s`` is the env's per-axis action scaling (metres per unit of normalised action, so Delta_t
is in metres) and J' = min(J, e - t) with ``e`` the first step after the intervention that contains
t. The window is *cut at the intervention's end*: actions the policy executes after the operator
lets go are not the operator's correction and never contribute to a refinement command. Then, per
translational axis d in (x, y, z),

    l^d = "positive d" if Delta_t^d > sigma, "negative d" if Delta_t^d < -sigma, else nothing (Eq. 13)

with the base-frame words +x "forward", -x "backward", +y "left", -y "right", +z "up", -z "down".

Phrase order (fixed, documented): the lateral axis y first, then x, then z, as in the paper's
example "move right and forward". Two words are joined with " and ", three as "a, b and c":
"move right", "move right and forward", "move left, backward and up". A step whose three axes all
stay within the threshold, and every step outside an intervention, gets ``[null]``
(:data:`daft_env.episode.NULL_COMMAND`).

Streaming: the label of intervened step t depends on a_{t..t+J-1}, so it becomes final J-1 steps
later (lag J-1), or earlier when the intervention ends (the next pushed step is not intervened) or
:meth:`TalkAndTweakLabeler.flush` is called (episode end). Steps outside an intervention are final
at once. :func:`label_episode` gives the same labels in one batch call.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from daft_env.episode import NULL_COMMAND
from daft_env.errors import InvalidActionError
from daft_env.spaces import ACTION_SCALE
from hardware.errors import ConfigError

#: Order in which axes appear in a phrase: (axis index, positive word, negative word).
#: y comes first so that the paper's example reads "move right and forward".
AXIS_ORDER: tuple[tuple[int, str, str], ...] = (
    (1, "left", "right"),
    (0, "forward", "backward"),
    (2, "up", "down"),
)
#: word -> (axis index, sign)
WORDS: dict[str, tuple[int, int]] = {
    word: (axis, sign) for axis, pos, neg in AXIS_ORDER for word, sign in ((pos, 1), (neg, -1))
}


def _join(words: Sequence[str]) -> str:
    if len(words) == 1:
        return f"move {words[0]}"
    return "move " + ", ".join(words[:-1]) + " and " + words[-1]


def phrase_from_signs(signs: Sequence[int] | np.ndarray) -> str:
    """The refinement command for per-axis signs (x, y, z) in {-1, 0, 1}; all zero -> ``[null]``."""
    s = np.asarray(signs)
    if s.shape != (3,):
        raise ConfigError(f"signs must have shape (3,) = (x, y, z); got shape {s.shape}")
    words = []
    for axis, pos, neg in AXIS_ORDER:
        if s[axis] > 0:
            words.append(pos)
        elif s[axis] < 0:
            words.append(neg)
    return _join(words) if words else NULL_COMMAND


def phrase_for_displacement(delta_m: Sequence[float] | np.ndarray, sigma: float = 0.001) -> str:
    """Eq. 13 for one cumulative base-frame displacement ``delta_m`` (metres, shape (3,)).

    An axis contributes a word only when ``|delta^d| > sigma`` (strictly, as in Eq. 13).
    """
    d = np.asarray(delta_m, dtype=np.float64)
    signs = np.where(d > sigma, 1, np.where(d < -sigma, -1, 0))
    return phrase_from_signs(signs)


def _build_vocabulary() -> list[str]:
    phrases = [NULL_COMMAND]
    for signs in itertools.product((0, 1, -1), repeat=3):
        if any(signs):
            phrases.append(phrase_from_signs(signs))
    return phrases


#: Every phrase the labeler can emit, ``[null]`` first: 1 + (3^3 - 1) = 27 entries, fixed order.
VOCABULARY: tuple[str, ...] = tuple(_build_vocabulary())


def vocabulary() -> list[str]:
    """The full phrase vocabulary of Eq. 13 (``[null]`` first), in a fixed order."""
    return list(VOCABULARY)


def parse_command(phrase: str) -> np.ndarray:
    """Invert the word mapping: a refinement command -> per-axis signs (x, y, z) in {-1, 0, 1}.

    Accepts any phrase of :data:`VOCABULARY` and, leniently, any order of the axis words, with or
    without the leading "move", and the paper's own phrasing "move to the right" (an operator
    typing a command writes it that way). ``[null]`` gives zeros.

    Raises:
        ConfigError: for an unknown word, or two words for one axis ("left and right").
    """
    text = phrase.strip().lower()
    signs = np.zeros(3, dtype=np.int64)
    if text in (NULL_COMMAND, ""):
        return signs
    tokens = text.replace(",", " ").split()
    if tokens and tokens[0] == "move":
        tokens = tokens[1:]
    seen: set[int] = set()
    for tok in tokens:
        if tok in ("and", "to", "the"):
            continue
        if tok not in WORDS:
            raise ConfigError(
                f"cannot parse refinement command {phrase!r}: unknown word {tok!r}; "
                f"valid words are {sorted(WORDS)} or {NULL_COMMAND!r}"
            )
        axis, sign = WORDS[tok]
        if axis in seen:
            raise ConfigError(f"refinement command {phrase!r} names the {'xyz'[axis]} axis twice")
        seen.add(axis)
        signs[axis] = sign
    if not seen:
        raise ConfigError(f"refinement command {phrase!r} names no direction")
    return signs


def _check_params(J: int, sigma: float, action_scale: object) -> np.ndarray:
    if isinstance(J, bool) or not isinstance(J, (int, np.integer)) or J < 1:
        raise ConfigError(f"J (the Eq. 12 window) must be an integer >= 1; got {J!r}")
    if not np.isfinite(sigma) or sigma < 0:
        raise ConfigError(f"sigma (the Eq. 13 threshold, metres) must be >= 0; got {sigma!r}")
    scale = np.asarray(action_scale, dtype=np.float64).reshape(-1)
    if scale.size < 3 or not np.all(np.isfinite(scale[:3])) or np.any(scale[:3] <= 0):
        raise ConfigError(
            "action_scale must hold at least 3 positive metres-per-unit factors (x, y, z), "
            f"e.g. daft_env.spaces.ACTION_SCALE; got {scale.tolist()}"
        )
    return scale[:3].copy()


def _translation(action: object) -> np.ndarray:
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.size < 3:
        raise InvalidActionError(f"an action needs at least 3 translation components; got {a.size}")
    t = a[:3]
    if not np.all(np.isfinite(t)):
        raise InvalidActionError(
            f"intervened action has NaN or infinite translation {t.tolist()}; cannot label it"
        )
    return t


class TalkAndTweakLabeler:
    """Streaming Eq. 12-13 labeler with lag J-1 (see the module docstring for the exact rule).

    Usage, one call per env step::

        for t, (idx, cmd) in labeler.push(action, intervened): ...   # labels that became final
        labeler.flush()  # at the episode's end: labels of the last J-1 intervened steps

    Args:
        J: window length of Eq. 12 (paper: 5).
        sigma: per-axis threshold of Eq. 13 in metres (paper: 0.001).
        action_scale: metres per unit of normalised action; only the first three (x, y, z) are used.

    Raises:
        ConfigError: for J < 1, a negative sigma or a non-positive scale.
    """

    def __init__(
        self,
        J: int = 5,
        sigma: float = 0.001,
        action_scale: Sequence[float] | np.ndarray = ACTION_SCALE,
    ) -> None:
        self.scale = _check_params(J, sigma, action_scale)
        self.J = int(J)
        self.sigma = float(sigma)
        self.reset()

    def reset(self) -> None:
        """Start a new episode: step indices restart at 0, nothing is pending."""
        self._t = 0  # index of the next step to be pushed
        # translations in metres of the current intervention's steps whose labels are not final
        self._pending: list[tuple[int, np.ndarray]] = []

    @property
    def steps_pushed(self) -> int:
        """Number of steps pushed since the last :meth:`reset`."""
        return self._t

    @property
    def pending(self) -> list[int]:
        """Indices of intervened steps whose labels still wait for later actions."""
        return [i for i, _ in self._pending]

    def label(self, displacement_m: np.ndarray) -> str:
        """Eq. 13 with this labeler's sigma for one cumulative displacement in metres."""
        return phrase_for_displacement(displacement_m, self.sigma)

    def _finalise_first(self) -> tuple[int, str]:
        idx, _ = self._pending[0]
        window = self._pending[: self.J]
        delta = np.sum([d for _, d in window], axis=0)
        self._pending.pop(0)
        return idx, self.label(delta)

    def push(self, action: object, intervened: bool) -> list[tuple[int, str]]:
        """Add step t's executed action; return ``[(step_index, command), ...]`` that became final.

        An intervened step's label is final once J-1 further intervened steps are pushed. A
        non-intervened step ends the intervention in progress (its pending labels become final with
        the window cut there) and is itself labelled ``[null]`` at once. Returned in step order.
        """
        out: list[tuple[int, str]] = []
        idx = self._t
        self._t += 1
        if intervened:
            self._pending.append((idx, _translation(action) * self.scale))
            if len(self._pending) >= self.J:
                out.append(self._finalise_first())
        else:
            out.extend(self.flush())
            out.append((idx, NULL_COMMAND))
        return out

    def flush(self) -> list[tuple[int, str]]:
        """Finalise every pending label, cutting their windows here (intervention or episode end).

        Does not reset the step counter; call :meth:`reset` before a new episode.
        """
        out = []
        while self._pending:
            out.append(self._finalise_first())
        return out

    def label_episode(
        self,
        actions: np.ndarray | Sequence[Sequence[float]],
        intervened: np.ndarray | Sequence[bool],
    ) -> list[str]:
        """Batch Eq. 12-13 over one episode: T labels, identical to streaming push + flush."""
        return label_episode(
            actions, intervened, J=self.J, sigma=self.sigma, action_scale=self.scale
        )


def label_episode(
    actions: np.ndarray | Sequence[Sequence[float]],
    intervened: np.ndarray | Sequence[bool],
    J: int = 5,
    sigma: float = 0.001,
    action_scale: Sequence[float] | np.ndarray = ACTION_SCALE,
) -> list[str]:
    """Label a whole episode at once (Eq. 12-13, windows cut at each intervention's end).

    Args:
        actions: (T, >=3) executed actions in normalised units.
        intervened: (T,) bools.

    Returns:
        T refinement commands, ``[null]`` for steps outside an intervention.
    """
    scale = _check_params(J, sigma, action_scale)
    flags = np.asarray(intervened, dtype=bool).reshape(-1)
    T = flags.shape[0]
    a = np.asarray(actions, dtype=np.float64)
    if T == 0:
        return []
    if a.ndim != 2 or a.shape[0] != T or a.shape[1] < 3:
        raise InvalidActionError(
            f"actions must have shape (T, 7) with T = len(intervened) = {T}; got {a.shape}"
        )
    labels = [NULL_COMMAND] * T
    t = 0
    while t < T:
        if not flags[t]:
            t += 1
            continue
        end = t
        while end < T and flags[end]:
            end += 1
        seg = np.stack([_translation(a[i]) for i in range(t, end)]) * scale
        n = end - t
        for i in range(n):
            # summed directly (not by prefix differences) so that a displacement exactly at the
            # threshold gets the same label here as in the streaming labeler
            labels[t + i] = phrase_for_displacement(np.sum(seg[i : min(i + J, n)], axis=0), sigma)
        t = end
    return labels


__all__ = [
    "AXIS_ORDER",
    "NULL_COMMAND",
    "VOCABULARY",
    "TalkAndTweakLabeler",
    "label_episode",
    "parse_command",
    "phrase_for_displacement",
    "phrase_from_signs",
    "vocabulary",
]
