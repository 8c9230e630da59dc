"""Eq. 12-13 on hand-worked sequences, streaming vs batch, lag and flush.

With the default action scale (0.02 m per unit of normalised translation) and sigma = 1 mm, an axis
gets a word when the normalised actions of its (cut) window sum to more than 0.05.
"""

import numpy as np
import pytest

from daft_env.episode import NULL_COMMAND
from daft_env.errors import InvalidActionError
from daft_env.labeler import (
    VOCABULARY,
    TalkAndTweakLabeler,
    label_episode,
    parse_command,
    phrase_for_displacement,
    phrase_from_signs,
    vocabulary,
)
from daft_env.spaces import ACTION_SCALE
from hardware.errors import ConfigError

N = NULL_COMMAND


def acts(xyz, rot=0.0, grip=1.0):
    """(T, 7) actions from a list of (x, y, z) translations."""
    xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
    T = len(xyz)
    return np.concatenate([xyz, np.full((T, 3), rot), np.full((T, 1), grip)], axis=1)


def stream(labeler, actions, flags):
    """Push every step, flush at the end; return (labels list, {step: push index it became final})."""
    labeler.reset()
    labels = {}
    final_at = {}
    for k, (a, f) in enumerate(zip(actions, flags, strict=True)):
        for idx, cmd in labeler.push(a, bool(f)):
            assert idx not in labels, "a label was emitted twice"
            labels[idx] = cmd
            final_at[idx] = k
    for idx, cmd in labeler.flush():
        labels[idx] = cmd
        final_at[idx] = "flush"
    return [labels[i] for i in range(len(actions))], final_at


def test_single_axis_window_sum_hand_worked():
    # 0.02 units = 0.4 mm per step. Windows (cut at the episode's end after 5 steps):
    # t=0: 5*0.4 = 2.0 mm, t=1: 1.6, t=2: 1.2 -> "forward"; t=3: 0.8, t=4: 0.4 -> [null]
    a = acts([[0.02, 0, 0]] * 5)
    expected = ["move forward"] * 3 + [N] * 2
    assert label_episode(a, [True] * 5) == expected
    assert stream(TalkAndTweakLabeler(), a, [True] * 5)[0] == expected


@pytest.mark.parametrize(
    "xyz, phrase",
    [
        ((-0.1, 0, 0), "move backward"),
        ((0, 0.1, 0), "move left"),
        ((0, -0.1, 0), "move right"),
        ((0, 0, 0.1), "move up"),
        ((0, 0, -0.1), "move down"),
    ],
)
def test_each_direction_word(xyz, phrase):
    assert label_episode(acts([xyz] * 5), [True] * 5)[0] == phrase


def test_multi_axis_phrases_in_documented_order():
    # y first, then x, then z: the paper's "move right and forward"
    assert label_episode(acts([[0.1, -0.1, 0]] * 5), [True] * 5)[0] == "move right and forward"
    assert (
        label_episode(acts([[-0.1, 0.1, 0.1]] * 5), [True] * 5)[0] == "move left, backward and up"
    )
    assert label_episode(acts([[0.1, 0, -0.1]] * 5), [True] * 5)[0] == "move forward and down"


def test_sub_threshold_intervention_is_null():
    # 0.009 units * 0.02 m * 5 steps = 0.9 mm < 1 mm on every axis, yet the step was intervened
    a = acts([[0.009, -0.009, 0.009]] * 5)
    assert label_episode(a, [True] * 5) == [N] * 5


def test_threshold_is_strict():
    # exact binary fractions: a window sum of exactly sigma gives no word (|Delta| <= sigma)
    lab = TalkAndTweakLabeler(J=4, sigma=1.0, action_scale=[1.0, 1.0, 1.0])
    assert lab.label_episode(acts([[0.25, 0, 0]] * 4), [True] * 4)[0] == N
    assert lab.label_episode(acts([[0.25 + 2**-10, 0, 0]] * 4), [True] * 4)[0] == "move forward"


def test_sign_change_inside_the_window_cancels():
    # x: +0.3, +0.3, then -0.2 four times. Window sums (units): t0: 0.6-0.6 = 0 -> [null] although
    # the operator moved forward at t0; t1: 0.3-0.8 = -0.5 (-10 mm); t2: -0.8; t3: -0.6; t4: -0.4;
    # t5: -0.2 (-4 mm) -> "backward".
    a = acts([[0.3, 0, 0], [0.3, 0, 0]] + [[-0.2, 0, 0]] * 4)
    expected = [N] + ["move backward"] * 5
    assert label_episode(a, [True] * 6) == expected
    assert stream(TalkAndTweakLabeler(), a, [True] * 6)[0] == expected


def test_intervention_ending_inside_the_window_cuts_it():
    # operator: 3 steps of 0.4 mm forward; then the policy pushes 20 mm/step forward, not labelled
    a = acts([[0.02, 0, 0]] * 3 + [[1.0, 0, 0]] * 4)
    flags = [True] * 3 + [False] * 4
    # t0: 1.2 mm -> forward; t1: 0.8, t2: 0.4 -> [null] (the policy's steps do not count)
    expected = ["move forward", N, N, N, N, N, N]
    assert label_episode(a, flags) == expected
    assert stream(TalkAndTweakLabeler(), a, flags)[0] == expected


def test_two_interventions_are_labelled_separately():
    a = acts([[0, 0.1, 0]] * 2 + [[0, 0, 0]] + [[0, -0.1, 0]] * 2)
    flags = [True, True, False, True, True]
    # each run: 2 steps of 2 mm on y; t1 alone is 2 mm too (> 1 mm)
    assert label_episode(a, flags) == ["move left", "move left", N, "move right", "move right"]


def test_rotation_and_gripper_are_ignored():
    a = acts([[0, 0, 0]] * 5, rot=1.0, grip=-1.0)
    assert label_episode(a, [True] * 5) == [N] * 5


def test_action_scale_converts_to_metres():
    a = acts([[0.02, 0, 0]] * 5)  # 0.1 unit summed
    assert label_episode(a, [True] * 5, action_scale=[0.005, 0.005, 0.005])[0] == N  # 0.5 mm
    assert label_episode(a, [True] * 5, action_scale=ACTION_SCALE)[0] == "move forward"  # 2 mm


def test_lag_is_J_minus_1_and_flush_finishes():
    J = 5
    T = 8
    a = acts([[0.1, 0, 0]] * T)
    lab = TalkAndTweakLabeler(J=J)
    labels, final_at = stream(lab, a, [True] * T)
    assert labels == ["move forward"] * T
    for t in range(T - J + 1):
        assert final_at[t] == t + J - 1
    for t in range(T - J + 1, T):
        assert final_at[t] == "flush"


def test_push_returns_pending_labels_when_intervention_ends_and_null_at_once():
    lab = TalkAndTweakLabeler(J=5)
    assert lab.push(acts([[0.1, 0, 0]])[0], True) == []
    assert lab.push(acts([[0.1, 0, 0]])[0], True) == []
    assert lab.pending == [0, 1]
    out = lab.push(acts([[0, 0, 0]])[0], False)
    assert out == [(0, "move forward"), (1, "move forward"), (2, N)]
    assert lab.push(acts([[0, 0, 0]])[0], False) == [(3, N)]
    assert lab.flush() == []
    assert lab.steps_pushed == 4


@pytest.mark.parametrize("J", [1, 2, 5, 7])
def test_streaming_equals_batch_on_random_episodes(J):
    rng = np.random.default_rng(J)
    lab = TalkAndTweakLabeler(J=J)
    for _ in range(30):
        T = int(rng.integers(1, 60))
        a = rng.uniform(-1, 1, (T, 7)) * rng.choice([0.01, 0.05, 1.0])
        flags = rng.random(T) < rng.uniform(0, 1)
        assert stream(lab, a, flags)[0] == lab.label_episode(a, flags)


def test_nan_in_intervened_action_is_refused_but_ignored_outside():
    lab = TalkAndTweakLabeler()
    bad = np.array([np.nan, 0, 0, 0, 0, 0, 0])
    with pytest.raises(InvalidActionError, match="NaN"):
        lab.push(bad, True)
    assert lab.push(bad, False)[-1][1] == N


def test_bad_parameters_raise_config_errors():
    with pytest.raises(ConfigError, match="J"):
        TalkAndTweakLabeler(J=0)
    with pytest.raises(ConfigError, match="sigma"):
        TalkAndTweakLabeler(sigma=-1.0)
    with pytest.raises(ConfigError, match="action_scale"):
        TalkAndTweakLabeler(action_scale=[0.02, 0.0, 0.02])
    with pytest.raises(InvalidActionError, match="shape"):
        label_episode(np.zeros((3, 7)), [True] * 4)


def test_vocabulary_is_complete_and_parse_inverts_it():
    vocab = vocabulary()
    assert vocab[0] == N and len(vocab) == 27 and len(set(vocab)) == 27
    assert tuple(vocab) == VOCABULARY
    seen = set()
    for phrase in vocab:
        signs = parse_command(phrase)
        assert phrase_from_signs(signs) == phrase
        seen.add(tuple(signs))
    assert len(seen) == 27  # every sign pattern in {-1,0,1}^3 exactly once
    # every phrase the labeler emits on random data is in the vocabulary
    rng = np.random.default_rng(0)
    for d in rng.normal(scale=0.003, size=(200, 3)):
        assert phrase_for_displacement(d) in VOCABULARY


def test_parse_command_examples_and_errors():
    np.testing.assert_array_equal(parse_command("move right and forward"), [1, -1, 0])
    np.testing.assert_array_equal(parse_command("Forward and right"), [1, -1, 0])
    np.testing.assert_array_equal(parse_command("move left, backward and down"), [-1, 1, -1])
    np.testing.assert_array_equal(parse_command(N), [0, 0, 0])
    with pytest.raises(ConfigError, match="unknown word"):
        parse_command("move sideways")
    with pytest.raises(ConfigError, match="twice"):
        parse_command("move left and right")
