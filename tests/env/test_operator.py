"""The simulated operator on the real MuJoCo tasks: budget, release rules, safety, speak mode.

Statistics: every rate below is over a fixed set of seeded episodes (the seeds are listed), so the
tests are deterministic for a given physics build; the tolerances leave room for a few episodes.
"""

import gymnasium as gym
import numpy as np
import pytest

import daft_env  # noqa: F401
from daft_env.errors import InvalidActionError
from daft_env.experts import make_expert
from daft_env.labeler import VOCABULARY, parse_command, phrase_for_displacement
from daft_env.operator import OperatorConfig, SimulatedOperator, device_names, make_device
from daft_env.spaces import ACTION_SCALE
from daft_env.tasks import TASK_NAMES
from daft_env.wrappers import InterventionWrapper
from hardware.errors import ConfigError
from hardware.teleop import make_teleop

#: steps per task in the budget tests (900 steps in all run in about 8 s on one core)
BUDGET_STEPS = 300
#: how far the realised share may be from target_rate (the docstring bounds the error by
#: (min_takeover + max_debt) / N = 8 / 900 ~ 0.009 plus the credit cap when a policy needs less)
SHARE_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def env():
    e = gym.make("BoltMultiTask-Sim-v0", obs_mode="state")
    yield e
    e.close()


def run(wrapper, task, seed, policy):
    """One episode; returns the list of step infos."""
    wrapper.reset(seed=seed, options={"task": task})
    infos = []
    while True:
        _, _, term, trunc, info = wrapper.step(policy())
        infos.append(info)
        if term or trunc:
            return infos


def runs_of(flags):
    """Lengths of the runs of consecutive True values."""
    out, n = [], 0
    for f in [*flags, False]:
        if f:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


def realised_share(env, op, policy, steps_per_task=BUDGET_STEPS):
    w = InterventionWrapper(env, op)
    steps = intervened = 0
    for task in TASK_NAMES:
        done, k = 0, 0
        while done < steps_per_task:
            infos = run(w, task, 2000 + k, policy)
            k += 1
            done += len(infos)
            intervened += sum(i["intervened"] for i in infos)
        steps += done
    assert op.steps == steps and op.intervened_steps == intervened
    return intervened / steps


def plan_of(env):
    """A policy that proposes exactly the plan (a second, noise-free expert on the true state)."""
    expert = make_expert("multi")
    return lambda: expert.act(env.unwrapped.privileged_state()).astype(np.float64)


# ---------------------------------------------------------------------------------- the budget
def test_a_policy_that_succeeds_alone_gets_almost_no_help(env):
    # need, not quota: a noisy expert (1 mm per step off the plan) solves every task alone, so a
    # person would leave it be; the budget (15 %) is a cap and stays unspent
    op = SimulatedOperator(env, target_rate=0.15, seed=3)
    noisy = make_expert("multi", noise=0.05, seed=4)
    share = realised_share(env, op, lambda: noisy.act(env.unwrapped.privileged_state()))
    assert share <= 0.03, f"share {share:.3f}"


@pytest.mark.parametrize("target", [0.15, 0.3])
def test_the_adaptive_threshold_spends_the_budget_as_a_quota(env, target):
    # adapt=True: theta tracks the quantile that spends target_rate, whatever the policy needs
    op = SimulatedOperator(env, target_rate=target, adapt=True, seed=3)
    noisy = make_expert("multi", noise=0.1, seed=4)
    share = realised_share(env, op, lambda: noisy.act(env.unwrapped.privileged_state()))
    assert abs(share - target) <= SHARE_TOLERANCE, f"share {share:.3f}, target {target}"


def test_a_deviation_takes_over_only_when_it_persists(env):
    op = SimulatedOperator(env, target_rate=1.0, persist_steps=2, seed=7)
    w = InterventionWrapper(env, op)
    # one straying proposal: a person lets one step of jitter pass
    infos = run(w, "assemble", 7000, offset_plan(env, bad_steps=1))
    assert not any(i["intervened"] for i in infos)
    # two in a row: the second step is the operator's
    infos = run(w, "assemble", 7000, offset_plan(env, bad_steps=2))
    assert [i["intervened"] for i in infos[:2]] == [False, True]
    assert op.reasons["deviation"] == 1


@pytest.mark.parametrize("policy_kind", ["zero", "random"])
def test_share_meets_the_target_on_a_poor_policy_takeovers_and_safety_included(env, policy_kind):
    # a poor policy needs help on most steps and trips the safety rules (drop in assemble): the
    # budget still holds, takeover lengths and safety takeovers included
    op = SimulatedOperator(env, target_rate=0.15, seed=5)
    rng = np.random.default_rng(6)

    def policy():
        return np.zeros(7) if policy_kind == "zero" else rng.uniform(-1, 1, 7)

    share = realised_share(env, op, policy)
    assert abs(share - 0.15) <= SHARE_TOLERANCE, f"share {share:.3f}"
    assert op.reasons["drop"] > 0  # safety takeovers happened and were paid from the budget
    assert -op.config.max_debt <= op.credit <= op.config.max_credit


def test_operator_leaves_the_expert_alone(env):
    # the plan itself never deviates: no takeover even though the share is below target
    op = SimulatedOperator(env, seed=5)
    w = InterventionWrapper(env, op)
    policy = plan_of(env)
    for i in range(3):
        run(w, "pickup", 3000 + i, policy)
    assert op.intervened_steps == 0


@pytest.mark.parametrize("task", TASK_NAMES)
def test_without_a_budget_the_operator_rescues_a_useless_policy(env, task):
    # target_rate=1 pays every step: the operator then finishes what a zero policy cannot
    op = SimulatedOperator(env, target_rate=1.0, seed=1)
    w = InterventionWrapper(env, op)
    infos = [run(w, task, 1000 + i, lambda: np.zeros(7))[-1] for i in range(10)]
    assert sum(i["is_success"] for i in infos) >= 8
    assert np.mean([i["intervention_rate"] for i in infos]) > 0.5
    assert sum(op.reasons.values()) == op.takeovers > 0


# ---------------------------------------------------------------------------------- release rules
def offset_plan(env, bad_steps, dx=0.8):
    """The plan, pushed ``dx`` along +x on the first ``bad_steps`` proposals (no safety rule)."""
    plan = plan_of(env)
    t = {"n": 0}

    def policy():
        a = plan()
        if t["n"] < bad_steps:
            a[0] = np.clip(a[0] + dx, -1, 1) if a[0] < 0.2 else a[0] - dx
        t["n"] += 1
        return a

    return policy


def test_release_once_the_policy_agrees_without_a_phase_change(env):
    # assemble: the bolt stays grasped and the plan keeps the gripper closed, so the phase never
    # changes; the operator must still hand back as soon as the policy has agreed agree_steps times
    op = SimulatedOperator(env, target_rate=1.0, threshold=0.35, persist_steps=1, seed=7)
    w = InterventionWrapper(env, op)
    infos = run(w, "assemble", 7000, offset_plan(env, bad_steps=2))
    flags = [i["intervened"] for i in infos]
    # step 0 triggers; proposals 0, 1 disagree; 2, 3, 4 agree -> step 4 is the policy's again
    assert flags[:5] == [True, True, True, True, False]
    assert op.releases["agreement"] == 1 and op.takeovers == 1
    assert all(i["grasped"] for i in infos[:5])  # no phase change happened
    assert sum(flags) == 4 < op.config.max_takeover


def test_min_takeover_is_kept_even_when_the_policy_agrees_at_once(env):
    op = SimulatedOperator(
        env,
        target_rate=1.0,
        min_takeover=6,
        agree_steps=1,
        max_takeover=10,
        persist_steps=1,
        seed=8,
    )
    w = InterventionWrapper(env, op)
    infos = run(w, "assemble", 7001, offset_plan(env, bad_steps=1))
    assert runs_of([i["intervened"] for i in infos])[0] == 6


def test_max_takeover_ends_a_takeover_the_policy_never_agrees_with(env):
    op = SimulatedOperator(env, target_rate=1.0, max_takeover=5, persist_steps=1, seed=9)
    w = InterventionWrapper(env, op)
    infos = run(w, "assemble", 7002, offset_plan(env, bad_steps=1000))
    flags = [i["intervened"] for i in infos]
    lengths = runs_of(flags)
    # every takeover lasts exactly max_takeover steps, then one step is handed back
    assert len(lengths) >= 3 and set(lengths[:-1]) == {5}
    assert flags[:7] == [True] * 5 + [False, True]
    assert op.releases["max_takeover"] >= 2


def drop_policy(env):
    """The plan, except that the gripper opens: on a grasped bolt the drop rule fires every step."""
    plan = plan_of(env)

    def policy():
        a = plan()
        a[6] = -1.0
        return a

    return policy


def test_safety_holds_control_beyond_max_takeover(env):
    op = SimulatedOperator(env, target_rate=1.0, max_takeover=5, seed=10)
    w = InterventionWrapper(env, op)
    infos = run(w, "assemble", 7003, drop_policy(env))
    flags = [i["intervened"] for i in infos]
    assert op.reasons["drop"] >= 1  # the first takeover, at once: the bolt is held high
    assert runs_of(flags)[0] > 5  # held while the danger lasted, not released at max_takeover
    assert all(i["grasped"] for i in infos[: runs_of(flags)[0]])  # the bolt was never dropped


def test_safety_takeovers_borrow_at_most_max_debt(env):
    # a safety takeover is paid from the budget too: with r = 0.15 it may borrow max_debt steps
    op = SimulatedOperator(env, target_rate=0.15, max_debt=5.0, seed=11)
    w = InterventionWrapper(env, op)
    infos = run(w, "assemble", 7004, drop_policy(env))
    first = runs_of([i["intervened"] for i in infos])[0]
    # c starts at min_takeover = 3 and falls 0.85 per step while c - 0.85 >= -5: 9 steps
    assert first == 9
    assert op.releases["budget"] >= 1 and op.credit >= -5.0


def test_drop_and_contact_reasons(env):
    # drop: opening the gripper on a grasped bolt that the plan holds
    op = SimulatedOperator(env, target_rate=1.0, seed=12)
    w = InterventionWrapper(env, op)
    run(w, "assemble", 7005, drop_policy(env))
    assert op.reasons["drop"] >= 1 and set(op.reasons) == {"drop"}

    # contact: pressing the open hand onto the fixture (deviation and collision rules disabled)
    op = SimulatedOperator(
        env,
        target_rate=1.0,
        adapt=False,
        threshold=50.0,
        threshold_max=50.0,
        collision_margin=1.0,
        stall_steps=30,
        seed=13,
    )
    w = InterventionWrapper(env, op)
    w.reset(seed=0, options={"task": "upright"})
    first = None
    for t in range(45):
        ps = env.unwrapped.privileged_state()
        a = np.zeros(7)
        a[6] = -1.0
        goal = ps["fixture_pos"][:2] + np.array([0.0, 0.03])
        a[:2] = np.clip((goal - ps["tcp_pos"][:2]) / ACTION_SCALE[:2], -1, 1)
        a[2] = -1.0 if t > 10 else 0.0
        _, _, term, trunc, info = w.step(a)
        # the operator decided on ps, the state this step started from
        if info["intervened"]:
            first = t
            assert ps["robot_contact_force"] > op.config.max_contact_force
            break
        assert ps["robot_contact_force"] <= op.config.max_contact_force
    assert first is not None and op.last_reason == "contact"


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


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.full(7, np.nan), "NaN"),
        (np.zeros(6), "shape"),
        (np.zeros((1, 7)), "shape"),
        ("left", "numeric"),
    ],
)
def test_invalid_proposals_are_refused_with_a_clear_error(env, bad, match):
    op = SimulatedOperator(env, seed=14)
    env.reset(seed=1, options={"task": "pickup"})
    with pytest.raises(InvalidActionError, match=match):
        op.on_step(None, bad, {})
    assert op.steps == 0  # a refused proposal is not a step


def test_takeover_commands_are_rate_limited_and_noisy(env):
    op = SimulatedOperator(env, target_rate=1.0, seed=6, max_delta=0.3, hand_noise=0.1)
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


def test_rejected_proposals_are_in_info_and_in_the_stored_episode(env, tmp_path):
    from daft_env.labeler import label_episode
    from daft_env.store import EpisodeStore
    from daft_env.wrappers import RecordEpisodeToStore

    store = EpisodeStore(tmp_path)
    op = SimulatedOperator(env, seed=9)
    rec = RecordEpisodeToStore(InterventionWrapper(env, op), store)
    rng = np.random.default_rng(3)
    proposals = []

    def policy():
        proposals.append(rng.uniform(-1, 1, 7))
        return proposals[-1]

    infos = run(rec, "assemble", 5000, policy)
    assert any(i["intervened"] for i in infos)
    for i, p in zip(infos, proposals, strict=True):
        np.testing.assert_array_equal(i["policy_action"], p)  # on every step, intervened or not
    (ep,) = list(store.episodes(task="assemble", kind="interventions"))
    assert ep.intervened.sum() == infos[-1]["episode_intervened_steps"] > 0
    assert ep.refinement_commands == label_episode(ep.actions, ep.intervened)
    assert ep.metadata["device"] == "simulated"
    np.testing.assert_allclose(ep.policy_actions, np.stack(proposals), atol=1e-6)
    # on intervened steps the executed action is the operator's, not the rejected proposal
    assert not np.allclose(ep.actions[ep.intervened], ep.policy_actions[ep.intervened])


def test_the_intended_action_is_the_plan_without_ramp_or_hand_noise(env, tmp_path):
    from daft_env.store import EpisodeStore
    from daft_env.wrappers import RecordEpisodeToStore

    store = EpisodeStore(tmp_path)
    op = SimulatedOperator(env, target_rate=1.0, seed=9, max_delta=0.3, hand_noise=0.1)
    rec = RecordEpisodeToStore(InterventionWrapper(env, op), store)
    rec.reset(seed=5001, options={"task": "pickup"})
    plans, infos = [], []
    for _ in range(12):
        _, _, term, trunc, info = rec.step(np.zeros(7))
        plans.append(op.last_plan.copy())
        infos.append(info)
        if term or trunc:
            break
    intervened = [i for i, info in enumerate(infos) if info["intervened"]]
    assert len(intervened) >= 5
    for i, info in enumerate(infos):
        if info["intervened"]:
            np.testing.assert_allclose(
                info["intended_action"][:6], np.clip(plans[i][:6], -1, 1), atol=1e-6
            )
        else:
            assert info["intended_action"] is None
    # the executed command starts at rest and is noisy; the intended one is the plan
    first = intervened[0]
    assert np.abs(infos[first]["executed_action"][:3]).max() <= 0.3 + 1e-6
    assert np.abs(infos[first]["intended_action"][:3]).max() > 0.3
    ep = rec.recorder  # the episode is not finished: finish it by hand from the recorder
    episode = ep.finish(infos[-1])
    np.testing.assert_allclose(
        episode.labels[intervened], np.stack([infos[i]["intended_action"] for i in intervened])
    )
    not_iv = ~episode.intervened
    np.testing.assert_array_equal(episode.labels[not_iv], episode.actions[not_iv])
    path = store.add(episode)
    again = next(iter(store.episodes()))
    assert path is not None
    np.testing.assert_array_equal(again.intended_actions, episode.intended_actions)


# ---------------------------------------------------------------------------------- speak mode
def test_speak_mode_talks_only_when_the_policy_strays_past_a_fixed_threshold(env):
    op = SimulatedOperator(env, mode="speak", seed=8)
    w = InterventionWrapper(env, op)
    theta0, credit0 = op.threshold, op.credit
    spoken = 0
    for i in range(3):
        w.reset(seed=4000 + i, options={"task": "pickup"})
        while True:
            _, _, term, trunc, info = w.step(np.zeros(7))
            assert not info["intervened"]  # it never takes control
            cmd = info["refinement_command_now"]
            plan = op.last_plan
            window = 5 * plan[:3] * ACTION_SCALE[:3]  # the labels' J = 5 window, in metres
            stray = np.linalg.norm(window)  # the zero policy's stray is the plan's window itself
            assert op.last_stray == pytest.approx(stray)
            phrase = phrase_for_displacement(window, 0.001)
            if stray > op.config.speak_threshold and phrase != "[null]":
                assert cmd == phrase and cmd in VOCABULARY
                np.testing.assert_array_equal(
                    parse_command(cmd), np.where(np.abs(window) > 0.001, np.sign(window), 0)
                )
                spoken += 1
            else:
                assert cmd is None
            if term or trunc:
                break
    assert spoken > 5 and op.spoken_steps == spoken
    assert op.intervened_steps == 0 and op.share == pytest.approx(spoken / op.steps)
    assert (op.threshold, op.credit) == (theta0, credit0)  # no adaptive threshold, no budget


def test_speak_mode_is_silent_to_a_policy_that_follows_the_plan(env):
    op = SimulatedOperator(env, mode="speak", seed=15)
    w = InterventionWrapper(env, op)
    policy = plan_of(env)
    for task in TASK_NAMES:
        for info in run(w, task, 4100, policy):
            assert info["refinement_command_now"] is None
    assert op.spoken_steps == 0


# ---------------------------------------------------------------------------------- factories
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
    with pytest.raises(ConfigError, match="speak_about"):
        OperatorConfig(speak_about="louder")
    with pytest.raises(ConfigError, match="max_credit"):
        OperatorConfig(max_credit=1.0)
    with pytest.raises(ConfigError, match="privileged_state"):
        SimulatedOperator(gym.make("CartPole-v1"))
