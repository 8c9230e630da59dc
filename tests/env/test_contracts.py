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


def _protocol_members():
    from daft_env.backends.base import Backend

    return {n for n in vars(Backend) if not n.startswith("_")} | set(Backend.__annotations__)


class _RecordingBackend:
    """Passes everything to a MujocoBackend and records which attributes its user touched."""

    def __init__(self, inner):
        self._inner = inner
        self.used = set()

    def __getattr__(self, name):  # only called for what this proxy does not define itself
        self.used.add(name)
        return getattr(self._inner, name)


def test_boltenv_uses_only_the_backend_protocol():
    from daft_env import BoltEnv
    from daft_env.backends.mujoco import MujocoBackend
    from daft_env.experts import make_expert

    backend = _RecordingBackend(MujocoBackend("scene_long_horizon.xml"))
    env = BoltEnv(task="long_horizon", obs_mode="state", render_mode="rgb_array", backend=backend)
    expert = make_expert("long_horizon")
    _, info = env.reset(seed=0)
    expert.reset(0)
    for _ in range(60):  # until the first subtask is done and the env switches bolt and task
        _, _, _, _, info = env.step(expert.act(env.privileged_state()))
        if info["operations_completed"] == 1:
            break
    assert info["operations_completed"] == 1 and info["task"] == "pickup"
    env.render()
    env.stop()
    env.close()
    assert {"set_task", "set_active_bolt", "stop", "render", "close"} <= backend.used
    assert backend.used <= _protocol_members(), backend.used - _protocol_members()


def test_both_backends_implement_every_protocol_member():
    from daft_env.backends.mujoco import MujocoBackend
    from daft_env.backends.real.backend import RealBackend

    members = _protocol_members()
    assert {"privileged_state", "render_human", "set_active_bolt", "stop"} <= members
    for cls in (MujocoBackend, RealBackend):
        missing = sorted(m for m in members if not hasattr(cls, m))
        assert missing == [], f"{cls.__name__} lacks {missing}"
