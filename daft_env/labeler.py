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

Any action layout: the axes, their words, their scale and J, sigma come from an
:class:`~daft_env.layout.ActionLayout` (``layout=``); the words and order above are
:data:`~daft_env.layout.DAFT_LAYOUT`'s, the default. The module-level functions below
(:func:`phrase_from_signs`, :func:`parse_command`, :data:`VOCABULARY`) are DAFT's layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from daft_env.episode import NULL_COMMAND
from daft_env.errors import InvalidActionError
from daft_env.layout import DAFT_LAYOUT, ActionLayout, daft_layout
from daft_env.spaces import ACTION_SCALE
from hardware.errors import ConfigError

#: Order in which axes appear in a phrase: (axis index, positive word, negative word).
#: y comes first so that the paper's example reads "move right and forward".
AXIS_ORDER: tuple[tuple[int, str, str], ...] = tuple(
    (a.index, a.positive, a.negative) for a in DAFT_LAYOUT.axes
)
#: word -> (axis index, sign)
WORDS: dict[str, tuple[int, int]] = DAFT_LAYOUT.words


def phrase_from_signs(signs: Sequence[int] | np.ndarray) -> str:
    """The refinement command for per-axis signs (x, y, z) in {-1, 0, 1}; all zero -> ``[null]``."""
    s = np.asarray(signs)
    if s.shape != (3,):
        raise ConfigError(f"signs must have shape (3,) = (x, y, z); got shape {s.shape}")
    return DAFT_LAYOUT.phrase_from_signs(s)


def phrase_for_displacement(delta_m: Sequence[float] | np.ndarray, sigma: float = 0.001) -> str:
    """Eq. 13 for one cumulative base-frame displacement ``delta_m`` (metres, shape (3,)).

    An axis contributes a word only when ``|delta^d| > sigma`` (strictly, as in Eq. 13).
    """
    return DAFT_LAYOUT.phrase(delta_m, sigma)


#: Every phrase the labeler can emit, ``[null]`` first: 1 + (3^3 - 1) = 27 entries, fixed order.
VOCABULARY: tuple[str, ...] = tuple(DAFT_LAYOUT.vocabulary())


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
    return DAFT_LAYOUT.parse(phrase)


def _layout(
    J: int | None, sigma: float | None, action_scale: object, layout: ActionLayout | None
) -> ActionLayout:
    """The labeller's layout: ``layout``, or DAFT's scaled by ``action_scale``.

    ``J`` and ``sigma`` override its window and threshold when given.
    """
    if J is not None and (isinstance(J, bool) or not isinstance(J, (int, np.integer)) or J < 1):
        raise ConfigError(f"J (the Eq. 12 window) must be an integer >= 1; got {J!r}")
    if sigma is not None and (not np.isfinite(sigma) or sigma < 0):
        raise ConfigError(f"sigma (the Eq. 13 threshold, metres) must be >= 0; got {sigma!r}")
    if layout is None:
        layout = daft_layout(ACTION_SCALE if action_scale is None else action_scale)
    elif action_scale is not None:
        raise ConfigError(
            "pass either layout= or action_scale=, not both (the layout has the scale)"
        )
    return layout.with_window(J, sigma)


class TalkAndTweakLabeler:
    """Streaming Eq. 12-13 labeler with lag J-1 (see the module docstring for the exact rule).

    Usage, one call per env step::

        for t, (idx, cmd) in labeler.push(action, intervened): ...   # labels that became final
        labeler.flush()  # at the episode's end: labels of the last J-1 intervened steps

    Args:
        J: window length of Eq. 12 (paper: 5; default: the layout's).
        sigma: per-axis threshold of Eq. 13 in metres (paper: 0.001; default: the layout's).
        action_scale: metres per unit of normalised action on DAFT's layout; only the first three
            (x, y, z) are used.
        layout: the env's :class:`~daft_env.layout.ActionLayout` (axes, words, scale); default
            DAFT's. A layout without translation axes labels every step ``[null]``.

    Raises:
        ConfigError: for J < 1, a negative sigma or a non-positive scale.
    """

    def __init__(
        self,
        J: int | None = None,
        sigma: float | None = None,
        action_scale: Sequence[float] | np.ndarray | None = None,
        layout: ActionLayout | None = None,
    ) -> None:
        self.layout = _layout(J, sigma, action_scale, layout)
        self.scale = self.layout.metres
        self.J = int(self.layout.J)
        self.sigma = float(self.layout.sigma)
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
        return self.layout.phrase(displacement_m, self.sigma)

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
            self._pending.append((idx, self.layout.translation(action)))
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
        return label_episode(actions, intervened, layout=self.layout)


def label_episode(
    actions: np.ndarray | Sequence[Sequence[float]],
    intervened: np.ndarray | Sequence[bool],
    J: int | None = None,
    sigma: float | None = None,
    action_scale: Sequence[float] | np.ndarray | None = None,
    layout: ActionLayout | None = None,
) -> list[str]:
    """Label a whole episode at once (Eq. 12-13, windows cut at each intervention's end).

    Args:
        actions: (T, n) executed actions.
        intervened: (T,) bools.
        J, sigma, action_scale, layout: as for :class:`TalkAndTweakLabeler`.

    Returns:
        T refinement commands, ``[null]`` for steps outside an intervention.
    """
    lay = _layout(J, sigma, action_scale, layout)
    flags = np.asarray(intervened, dtype=bool).reshape(-1)
    T = flags.shape[0]
    a = np.asarray(actions, dtype=np.float64)
    if T == 0:
        return []
    need = (lay.indices[-1] + 1) if lay.indices else 1
    if a.ndim != 2 or a.shape[0] != T or a.shape[1] < need:
        raise InvalidActionError(
            f"actions must have shape (T, n) with T = len(intervened) = {T} and n >= {need}; "
            f"got {a.shape}"
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
        seg = np.stack([lay.translation(a[i]) for i in range(t, end)])
        n = end - t
        for i in range(n):
            # summed directly (not by prefix differences) so that a displacement exactly at the
            # threshold gets the same label here as in the streaming labeler
            labels[t + i] = lay.phrase(np.sum(seg[i : min(i + lay.J, n)], axis=0))
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
