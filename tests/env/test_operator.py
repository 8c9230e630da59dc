"""The simulated operator on the real MuJoCo tasks: rescue rates, intervention share, speak mode.

Statistics: every rate below is over a fixed set of seeded episodes (the seeds are listed), so the
tests are deterministic for a given physics build; the thresholds leave room for a few failures.
"""

import gymnasium as gym
import numpy as np
import pytest

import daft_env  # noqa: F401
from daft_env.experts import make_expert
from daft_env.labeler import VOCABULARY, parse_command
from daft_env.operator import OperatorConfig, SimulatedOperator, device_names, make_device
from daft_env.tasks import TASK_NAMES
from daft_env.wrappers import InterventionWrapper
from hardware.errors import ConfigError
from hardware.teleop import make_teleop

#: episodes per (task, policy) for the success-rate check: > 80% means at least 33 of 40
N_RESCUE = 40


@pytest.fixture(scope="module")
def env():
    e = gym.make("BoltMultiTask-Sim-v0", obs_mode="state")
    yield e
    e.close()


def run(wrapper, task, seed, policy):
    wrapper.reset(seed=seed, options={"task": task})
    while True:
        _, _, term, trunc, info = wrapper.step(policy())
        if term or trunc:
            return info


@pytest.mark.parametrize("task", TASK_NAMES)
@pytest.mark.parametrize("policy_kind", ["zero", "random"])
def test_operator_rescues_a_useless_policy(env, task, policy_kind):
    op = SimulatedOperator(env, seed=1)
    w = InterventionWrapper(env, op)
    rng = np.random.default_rng(2)

    def policy():
        return np.zeros(7) if policy_kind == "zero" else rng.uniform(-1, 1, 7)

    infos = [run(w, task, 1000 + i, policy) for i in range(N_RESCUE)]
    successes = sum(i["is_success"] for i in infos)
    assert successes / N_RESCUE > 0.8, f"{task}/{policy_kind}: {successes}/{N_RESCUE} succeeded"
    # a useless policy is corrected most of the time, and every takeover had a reason
    assert np.mean([i["intervention_rate"] for i in infos]) > 0.5
    assert sum(op.reasons.values()) == op.takeovers > 0


@pytest.mark.parametrize("target", [0.15, 0.3])
def test_intervention_share_tracks_the_target_on_a_noisy_expert(env, target):
    op = SimulatedOperator(env, target_rate=target, seed=3)
    w = InterventionWrapper(env, op)
    noisy = make_expert("multi", noise=0.1, seed=4)
    steps = intervened = 0
    for i in range(30):
        info = run(
            w, TASK_NAMES[i % 3], 2000 + i, lambda: noisy.act(env.unwrapped.privileged_state())
        )
        steps += info["episode_length"]
        intervened += info["episode_intervened_steps"]
    share = intervened / steps
    assert abs(share - target) <= 0.05, f"share {share:.3f} over {steps} steps, target {target}"
    assert share == pytest.approx(op.share)
    assert w.intervention_rate == pytest.approx(share)


def test_operator_leaves_the_expert_alone(env):
    # the plan itself never deviates: no takeover even though the share is below target
    op = SimulatedOperator(env, seed=5)
    w = InterventionWrapper(env, op)
    expert = make_expert("multi")
    for i in range(3):
        run(w, "pickup", 3000 + i, lambda: expert.act(env.unwrapped.privileged_state()))
    assert op.intervened_steps == 0


def test_takeover_commands_are_rate_limited_and_noisy(env):
    op = SimulatedOperator(env, seed=6, max_delta=0.3, hand_noise=0.1)
    w = InterventionWrapper(env, op)
    w.reset(seed=7, options={"task": "pickup"})
    prev = None
    gaps = []
    for _ in range(15):
        _, _, term, trunc, info = w.step(np.zeros(7))
        if info["intervened"]:
            a = info["intervention_action"]
            base = np.zeros(6) if prev is None else prev
            assert np.all(np.abs(a[:6] - base) <= 0.3 + 1e-6)  # rate limit from the cap at rest
            prev = a[:6]
            plan = op.last_plan
            # where the rate limit does not bind, the command is the plan with gain noise
            free = (np.abs(plan[:6] - base) < 0.3) & (np.abs(plan[:6]) > 0.05)
            gaps.extend(np.abs(a[:6][free] / plan[:6][free] - 1.0))
        else:
            prev = None
        if term or trunc:
            break
    assert len(gaps) >= 5
    assert 0.01 < np.mean(gaps) < 0.3  # noisy, but about 10% as configured


def test_speak_mode_talks_instead_of_taking_over(env):
    op = SimulatedOperator(env, mode="speak", seed=8)
    w = InterventionWrapper(env, op)
    spoken = []
    for i in range(3):
        w.reset(seed=4000 + i, options={"task": "pickup"})
        while True:
            _, _, term, trunc, info = w.step(np.zeros(7))
            assert not info["intervened"]
            cmd = info["refinement_command_now"]
            if cmd is not None:
                assert cmd in VOCABULARY
                plan = op.last_plan
                expected = np.where(np.abs(5 * plan[:3] * 0.02) > 0.001, np.sign(plan[:3]), 0)
                np.testing.assert_array_equal(parse_command(cmd), expected)
                spoken.append(cmd)
            if term or trunc:
                break
    assert len(spoken) > 5
    assert op.intervened_steps > 0  # spoken-to steps count towards the share


def test_factories_and_errors(env):
    assert "simulated" in device_names() and "spacemouse" in device_names()
    assert isinstance(make_device("simulated", env=env, target_rate=0.2), SimulatedOperator)
    assert isinstance(make_teleop("simulated", env=env), SimulatedOperator)
    with pytest.raises(ConfigError, match="valid names:.*simulated"):
        make_device("joystick", env=env)
    with pytest.raises(ConfigError, match="needs the env"):
        make_device("simulated")
    with pytest.raises(ConfigError, match="unknown simulated-operator option"):
        make_device("simulated", env=env, rate=0.1)
    with pytest.raises(ConfigError, match="target_rate"):
        OperatorConfig(target_rate=1.5)
    with pytest.raises(ConfigError, match="privileged_state"):
        SimulatedOperator(gym.make("CartPole-v1"))


def test_operator_episode_is_recorded_with_talk_and_tweak_labels(env, tmp_path):
    from daft_env.labeler import label_episode
    from daft_env.store import EpisodeStore
    from daft_env.wrappers import RecordEpisodeToStore

    store = EpisodeStore(tmp_path)
    op = SimulatedOperator(env, seed=9)
    rec = RecordEpisodeToStore(InterventionWrapper(env, op), store)
    info = run(rec, "assemble", 5000, lambda: np.zeros(7))
    assert info["is_success"] and info["episode_saved_path"] is not None
    (ep,) = list(store.episodes(task="assemble", kind="interventions"))
    assert ep.intervened.sum() == info["episode_intervened_steps"] > 0
    assert ep.refinement_commands == label_episode(ep.actions, ep.intervened)
    assert ep.metadata["device"] == "simulated"
    np.testing.assert_array_equal(ep.policy_actions, np.zeros((len(ep), 7)))


@pytest.mark.parametrize(
    "action, reason",
    [
        (np.zeros(7), "stall"),  # holds still while the plan wants to move
        (np.array([0, 0, -1.0, 0, 0, 0, -1.0]), "collision"),  # dives at the table
    ],
)
def test_stall_and_collision_rules_fire_without_the_deviation_rule(env, action, reason):
    # deviation can never trigger (fixed, huge threshold): only the stall and safety rules act
    op = SimulatedOperator(env, adapt=False, threshold=50.0, threshold_max=50.0, seed=10)
    w = InterventionWrapper(env, op)
    w.reset(seed=6000, options={"task": "pickup"})
    first = None
    for t in range(50):
        _, _, term, trunc, info = w.step(action)
        if info["intervened"] and first is None:
            first = t
            assert op.last_reason == reason
        if term or trunc:
            break
    assert first is not None and op.reasons[reason] >= 1
    if reason == "stall":
        assert first == op.config.stall_steps  # k steps without progress, then the takeover
