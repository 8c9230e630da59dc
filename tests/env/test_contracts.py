import numpy as np
import pytest

from daft_env.errors import InvalidActionError, UnknownTaskError
from daft_env.spaces import validate_action
from daft_env.tasks import TASK_NAMES, get_task
from hardware.errors import DaftError


def test_task_table_order_fixes_ids():
    assert [get_task(n).task_id for n in TASK_NAMES] == [0, 1, 2]
    assert get_task("pickup").instruction == "pick up the bolt"
    assert get_task(2).name == "assemble"


def test_unknown_task_lists_valid_names():
    with pytest.raises(UnknownTaskError) as err:
        get_task("screw")
    for name in TASK_NAMES:
        assert name in str(err.value)
    assert isinstance(err.value, DaftError)


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros(6), "shape"),
        (np.zeros((1, 7)), "shape"),
        (np.array([0, 0, np.nan, 0, 0, 0, 0]), "NaN"),
        (np.array([0, 0, 0, np.inf, 0, 0, 0]), "NaN or infinity"),
        ("left", "numeric"),
    ],
)
def test_bad_actions_are_refused_with_a_reason(bad, words):
    with pytest.raises(InvalidActionError, match=words):
        validate_action(bad)


def test_good_action_passes_through():
    a = validate_action([0.1] * 7)
    assert a.shape == (7,) and a.dtype == np.float64
