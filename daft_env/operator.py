"""The simulated operator: a scripted stand-in for the human of paper Sec. IV-B (sim only).

:class:`SimulatedOperator` implements :class:`~hardware.teleop.base.TeleopDevice`, so it plugs into
:class:`~daft_env.wrappers.InterventionWrapper` exactly like a SpaceMouse. Each step
(:meth:`SimulatedOperator.on_step`) it reads the TRUE privileged state
(``env.unwrapped.privileged_state()``; a hidden perception error, :mod:`daft_env.perception`,
perturbs only the policy's observation), asks the scripted expert of the current task for its
action a^e (the plan), and compares the policy's proposal a^p with it:

    dev = ||a^p_xyz - a^e_xyz||_2 + w_rot ||a^p_rpy - a^e_rpy||_2 + w_grip [closes(a^p) != closes(a^e)]

in normalised action units.

Takeover mode (training): a person who helps where help is needed
-------------------------------------------------------------------
**Triggers.** A person takes over when the robot heads for failure, not to spend a quota, when

* ``dev > theta`` on ``persist_steps`` consecutive steps (the policy strays from a plan that
  would succeed, and keeps straying: one step of jitter is not a reason to grab the stick), or
* it **stalls**: over the last ``stall_steps`` steps the TCP moved less than ``stall_distance``
  while the plan asked for motion (mean ||a^e_xyz|| > ``stall_intent``), or
* a **safety** rule fires: the policy heads into a collision (its next TCP height would be below
  ``safe_height`` above the table or fixture top under it and lower than the plan's, while moving
  down), the largest robot-table/fixture contact force (``privileged_state()["robot_contact_force"]``)
  exceeds ``max_contact_force``, or it would open the gripper on a grasped bolt the plan holds
  (``"drop"``).

**Budget: a cap, not a target.** Every intervened step is paid from one credit account, whatever
started it. With r = ``target_rate``,

    c_0 = min_takeover,    c_{t+1} = min(c_t + r - 1[step t intervened], max_credit).

A correction (deviation or stall) may start only when c_t >= min_takeover (1 - r) (a takeover of
the minimum length can be paid) and continues while c_t >= 1 - r. A safety takeover may borrow: it
starts and holds while c_t - (1 - r) >= -``max_debt``, repaid by abstaining afterwards. So after N
steps with I_N intervened, I_N / N = r + (c_0 - c_N - lost_N) / N <= r + (min_takeover +
max_debt) / N (lost_N >= 0: credit cut off by ``max_credit``). A policy that needs more help than
the budget is corrected at the rate r and otherwise left to fail (the paper's human corrects ~15%
of steps, not 100% of the hard ones).

**Threshold.** theta is fixed by default (``adapt=False``): what counts as straying does not depend
on the budget left, so the share of corrected steps falls as the policy improves. ``adapt=True``
restores a quantile-tracking rule, log theta <- log theta + kappa (1[intervened] - r) within
[theta_min, theta_max], which aims at the share r whatever the policy does (it held 12-13 % of the
steps of upright and pickup, solved 99-100 % alone; ``daft train``, seed 0).
Defaults (``benchmarks/operator_need.py`` on ``daft train`` checkpoints): theta = 0.5 held for
``persist_steps`` = 3 (0.3 s, a reaction time), slower-but-right motion forgiven (``slow_ok``), a
6-step stall, collisions only into the surface (``safe_height`` 0). With theta = 0.3 held 2 steps,
a warm-up policy that solved upright and pickup alone was taken over on 16 % and 25 % of their
steps; with these, 1-3 %, while assemble (solved 65-80 % alone) got 28-35 %.

**Release.** A takeover ends, and this step is the policy's again, once no safety rule holds and

* it has lasted ``min_takeover`` steps and the policy's proposals agreed with the plan
  (dev <= theta) on the last ``agree_steps`` consecutive steps, with or without a phase change
  (in ``assemble`` the bolt is held throughout, so a rule waiting for a phase change never
  released before ``max_takeover``), or
* it has lasted ``max_takeover`` steps, or
* the budget cannot pay its next step (for a safety takeover: beyond ``max_debt``; the operator then
  lets go even of a dangerous policy, and the backend's own safety clipping remains).

**Commands.** While in control it sends SpaceMouse-like commands: the plan with multiplicative hand
noise, u = a^e (1 + N(0, hand_noise^2)) per axis (a hand at rest sends exactly zero), rate-limited
to ``max_delta`` per step and axis from its previous command (at rest, 0, when a takeover
begins), the gripper as a button. The plan travels as the command's ``intended`` action
(``info["intended_action"]``): the clean label imitation learns from, while the critics learn
from what was executed (imitating the executed commands taught the ramp and the noise, issue 17).

The policy's rejected proposals are in ``info["policy_action"]`` (RLIF's negative signal).

Speak mode (test-time commands)
-------------------------------
``mode="speak"`` never takes control and spends no budget. With the labels' window J (Eq. 12) and
the action scale s (metres per unit), it compares where the policy and the plan head over the window,

    stray = || J s_xyz (a^p_xyz - a^e_xyz) ||_2   (metres, first order: each action held J steps),

and speaks only when ``stray > speak_threshold``, a FIXED threshold (an adaptive one fell to
~1.6 mm with a good policy, and the operator talked to a policy that already solved the task). It
says the Eq. 13 phrase of the plan's displacement over the window, Delta = J s_xyz a^e_xyz, the
quantity the training labels phrase, so a command means at test time what it meant in the data
(``speak_about="correction"``: J s_xyz (a^e - a^p)). A ``[null]`` plan is not spoken. Default
``speak_threshold`` = 2.5 cm: about the 90th percentile of a noise-0.1 expert's stray (spoken to
on 7.3% of 944 steps; the noise-free expert on none).

Any other env: :class:`~daft_env.plan_operator.PlanOperator` runs these rules on a user's plan.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from daft_env.episode import NULL_COMMAND
from daft_env.errors import BackendError, InvalidActionError
from daft_env.labeler import phrase_for_displacement
from daft_env.spaces import ACTION_DIM, ACTION_SCALE
from hardware.errors import ConfigError
from hardware.teleop.base import TeleopCommand

MODES = ("takeover", "speak")
SPEAK_ABOUT = ("plan", "correction")
#: trigger reasons that may borrow against the budget and hold control while they persist
SAFETY_REASONS = ("collision", "contact", "drop")


@dataclasses.dataclass
class OperatorConfig:
    """Settings of :class:`SimulatedOperator` (the module docstring states each rule).

    Attributes:
        target_rate: r, the most intervened steps the budget pays for, as a share of all steps
            (paper: ~0.15); a cap, not a target.
        mode: ``"takeover"`` (tweak, training) or ``"speak"`` (talk only, evaluation).
        adapt: adapt theta towards ``target_rate`` (a quota); False (default): theta fixed.
        threshold, threshold_min, threshold_max: theta (normalised action units) and its bounds.
        adapt_gain: kappa of the log-threshold update.
        rot_weight, grip_weight: w_rot and w_grip in the deviation.
        min_takeover, max_takeover: fewest steps of one takeover (unless the episode ends) and
            most (unless a safety rule still holds).
        agree_steps, persist_steps: consecutive agreeing proposals (dev <= theta) after which
            it releases; consecutive straying ones (dev > theta) before a deviation takeover.
        slow_ok: the deviation forgives going the plan's way more slowly (:meth:`deviation`).
        max_credit, max_debt: most unused budget saved up (steps, the cap of c_t), and most a
            safety takeover may borrow beyond it.
        stall_steps, stall_distance, stall_intent: the stall rule's window (steps), the TCP path
            (m) under which it made no progress, the mean plan speed that wanted progress.
        safe_height, collision_margin: the collision rule fires when the policy heads below
            ``safe_height`` (m) above the table or fixture top and ``collision_margin`` (m)
            below the plan's next TCP height.
        fixture_radius, fixture_height: where the fixture top counts (m from it) and its height
            (m above the slot floor).
        max_contact_force: robot-table/fixture force (N) that triggers a takeover (None: off).
        drop_height: the drop rule fires only with the bolt's lowest point higher than this (m)
            above the table (letting go just above it is setting it down).
        hand_noise: std of the multiplicative hand noise on the motion components (0.1: ~10%).
        max_delta: rate limit per step and axis of the operator's command (normalised units).
        expert_kwargs: extra arguments of the scripted expert (e.g. ``gain``).
        J, sigma: the labels' window (Eq. 12) and threshold in metres (Eq. 13), for speak mode.
        speak_threshold, speak_about: stray (m over the window) above which speak mode talks;
            what it phrases, ``"plan"`` (as the labels) or ``"correction"``.
        seed: seed of the hand noise.
    """

    target_rate: float = 0.15
    mode: str = "takeover"
    adapt: bool = False
    threshold: float = 0.5
    threshold_min: float = 0.08
    threshold_max: float = 0.8
    adapt_gain: float = 0.05
    rot_weight: float = 0.25
    grip_weight: float = 1.0
    min_takeover: int = 3
    max_takeover: int = 20
    agree_steps: int = 3
    persist_steps: int = 3
    slow_ok: bool = True
    max_credit: float = 20.0
    max_debt: float = 5.0
    stall_steps: int = 6
    stall_distance: float = 0.003
    stall_intent: float = 0.25
    safe_height: float = 0.0
    collision_margin: float = 0.005
    fixture_radius: float = 0.06
    fixture_height: float = 0.012
    max_contact_force: float | None = 60.0
    drop_height: float = 0.01
    hand_noise: float = 0.1
    max_delta: float = 0.6
    expert_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    J: int = 5
    sigma: float = 0.001
    speak_threshold: float = 0.025
    speak_about: str = "plan"
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.target_rate <= 1.0:
            raise ConfigError(f"target_rate must be a share in [0, 1]; got {self.target_rate}")
        if self.mode not in MODES:
            raise ConfigError(f"operator mode must be one of {list(MODES)}; got {self.mode!r}")
        if self.speak_about not in SPEAK_ABOUT:
            raise ConfigError(
                f"speak_about must be one of {list(SPEAK_ABOUT)}; got {self.speak_about!r}"
            )
        if not 0 < self.threshold_min <= self.threshold <= self.threshold_max:
            raise ConfigError(
                "thresholds must satisfy 0 < threshold_min <= threshold <= threshold_max; got "
                f"{self.threshold_min}, {self.threshold}, {self.threshold_max}"
            )
        if not 1 <= self.min_takeover <= self.max_takeover:
            raise ConfigError(
                f"need 1 <= min_takeover <= max_takeover; got {self.min_takeover}, {self.max_takeover}"
            )
        if min(self.agree_steps, self.persist_steps) < 1:
            raise ConfigError(f"agree_steps, persist_steps must be >= 1; got {self}")
        if self.max_credit < self.min_takeover:
            raise ConfigError(
                f"max_credit ({self.max_credit}) must be >= min_takeover ({self.min_takeover}), "
                "or no takeover could ever be paid"
            )
        nonnegative = (
            "adapt_gain hand_noise stall_distance safe_height sigma max_debt speak_threshold"
        )
        for name in nonnegative.split():
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0; got {getattr(self, name)}")
        if self.max_delta <= 0:
            raise ConfigError(f"max_delta (rate limit) must be > 0; got {self.max_delta}")
        if self.stall_steps < 2 or self.J < 1:
            raise ConfigError("stall_steps must be >= 2 and J >= 1")


class SimulatedOperator:
    """A scripted operator behind the TeleopDevice protocol (module docstring: the rules).

    Args:
        env: a simulated DAFT env (its ``unwrapped`` is a :class:`~daft_env.env.BoltEnv` whose
            backend has privileged state).
        config: an :class:`OperatorConfig`; keyword arguments override its fields.

    Raises:
        ConfigError: no env, an env without privileged state, or bad settings.
    """

    name = "simulated"

    def __init__(
        self, env: Any = None, config: OperatorConfig | None = None, **kwargs: Any
    ) -> None:
        if env is None:
            raise ConfigError(
                "the simulated operator needs the env it watches: make_device('simulated', env=env)"
            )
        if config is None:
            fields = {f.name for f in dataclasses.fields(OperatorConfig)}
            unknown = sorted(set(kwargs) - fields)
            if unknown:
                raise ConfigError(
                    f"unknown simulated-operator option(s) {unknown}; valid: {sorted(fields)}"
                )
            config = OperatorConfig(**kwargs)
        elif kwargs:
            try:
                config = dataclasses.replace(config, **kwargs)
            except TypeError as exc:
                raise ConfigError(f"unknown simulated-operator option: {exc}") from exc
        self.config = config
        self.env = env
        self.expert = self._make_plan(env)
        self.scale = np.asarray(ACTION_SCALE, dtype=np.float64)
        self.rng = np.random.default_rng(config.seed)
        self.threshold = float(config.threshold)
        #: budget account c_t in steps (module docstring)
        self.credit = float(config.min_takeover)
        #: running totals over the operator's lifetime
        self.steps = 0
        self.intervened_steps = 0
        self.spoken_steps = 0
        self.takeovers = 0
        self.reasons: Counter[str] = Counter()
        self.releases: Counter[str] = Counter()
        self._connected = False
        self.reset()

    def _make_plan(self, env: Any) -> Any:
        """The plan a^e: the bolt tasks' scripted experts, on a simulated BoltEnv only."""
        from daft_env.env import BoltEnv
        from daft_env.experts import make_expert

        unwrapped = env.unwrapped
        if not isinstance(unwrapped, BoltEnv) or not unwrapped.backend.has_privileged_state:
            raise ConfigError(
                "SimulatedOperator needs a simulated env whose unwrapped env has "
                "privileged_state() (a BoltEnv on the mujoco backend); use a SpaceMouse or the "
                "keyboard on real robots, and daft_env.plan_operator.PlanOperator on another env"
            )
        return make_expert("multi", **self.config.expert_kwargs)

    # ------------------------------------------------------------------ protocol
    def connect(self) -> None:
        """Nothing to open (the env was checked in the constructor)."""
        self._connected = True

    def disconnect(self) -> None:
        """Nothing to release. Safe to call twice."""
        self._connected = False

    def reset(self) -> None:
        """Forget the episode: no takeover in progress, the cap at rest (the budget carries on)."""
        self.active = False
        self._len = 0
        self._agree = 0
        self._stray_run = 0
        self._out = np.zeros(6)
        self._tcp_hist: deque[np.ndarray] = deque(maxlen=self.config.stall_steps + 1)
        self._intent_hist: deque[float] = deque(maxlen=self.config.stall_steps)
        self._command = TeleopCommand()
        self.episode_steps = 0
        self.episode_intervened = 0
        self.last_reason: str | None = None
        self.last_release: str | None = None
        self.last_plan: np.ndarray | None = None
        self.last_deviation = 0.0
        self.last_stray = 0.0

    def read(self) -> TeleopCommand:
        """The command decided by the last :meth:`on_step`."""
        return self._command

    @property
    def share(self) -> float:
        """Realised share of intervened (takeover mode) or spoken-to (speak mode) steps so far."""
        done = self.spoken_steps if self.config.mode == "speak" else self.intervened_steps
        return done / self.steps if self.steps else 0.0

    # ------------------------------------------------------------------ rules
    def _state(self) -> Mapping[str, Any]:
        try:
            return self.env.unwrapped.privileged_state()
        except BackendError as exc:
            raise ConfigError(f"SimulatedOperator needs privileged simulator state: {exc}") from exc

    @staticmethod
    def _proposal(policy_action: Any) -> np.ndarray:
        try:
            a = np.asarray(policy_action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidActionError(
                f"the policy's proposal must be a numeric ({ACTION_DIM},) action; got "
                f"{type(policy_action).__name__}"
            ) from exc
        if a.shape != (ACTION_DIM,):
            raise InvalidActionError(
                f"the policy's proposal must have shape ({ACTION_DIM},); got {a.shape}. Pass one "
                "env's action, as InterventionWrapper does"
            )
        if not np.all(np.isfinite(a)):
            raise InvalidActionError(
                f"the policy's proposal contains NaN or infinity: {a.tolist()}; the operator "
                "cannot compare it with the plan (a diverged network is the usual cause)"
            )
        return a

    def deviation(self, policy_action: np.ndarray, plan: np.ndarray) -> float:
        """dev(a^p, a^e) of the module docstring.

        With ``slow_ok`` the translation term forgives going the plan's way more slowly, down to
        60 % of its speed: a person does not grab the stick because the robot is cautious, but a
        robot that barely moves while the plan hurries still strays (and the stall rule catches
        one that stops).
        """
        c = self.config
        p = np.clip(np.asarray(policy_action, dtype=np.float64), -1.0, 1.0)
        diff = p[:3] - plan[:3]
        speed = float(np.linalg.norm(plan[:3]))
        if c.slow_ok and speed > 1e-6:
            u = plan[:3] / speed
            along = float(np.dot(p[:3], u))
            # only the part short of the plan's speed, in its direction, is forgiven
            diff = diff - u * float(np.clip(along - speed, -0.4 * speed, 0.0))
        return float(
            np.linalg.norm(diff)
            + c.rot_weight * np.linalg.norm(p[3:6] - plan[3:6])
            + c.grip_weight * float((p[6] > 0) != (plan[6] > 0))
        )

    def stray(self, policy_action: np.ndarray, plan: np.ndarray) -> float:
        """Speak mode's ||J s_xyz (a^p_xyz - a^e_xyz)|| in metres (module docstring)."""
        p = np.clip(np.asarray(policy_action, dtype=np.float64)[:3], -1.0, 1.0)
        return float(np.linalg.norm(self.config.J * self.scale[:3] * (p - plan[:3])))

    def _surface_z(self, ps: Mapping[str, Any], xy: np.ndarray) -> float:
        c = self.config
        if np.linalg.norm(np.asarray(xy) - np.asarray(ps["fixture_pos"])[:2]) < c.fixture_radius:
            return float(ps["slot_pos"][2]) + c.fixture_height
        return 0.0

    def _safety(self, ps: Mapping[str, Any], a_p: np.ndarray, plan: np.ndarray) -> str | None:
        c = self.config
        tcp = np.asarray(ps["tcp_pos"], dtype=np.float64)
        # opening a bolt onto the table from a few millimetres is setting it down, not a drop
        if ps["grasped"] and plan[6] > 0 and a_p[6] <= 0 and ps["bolt_clearance"] > c.drop_height:
            return "drop"
        z_p = tcp[2] + np.clip(a_p[2], -1, 1) * self.scale[2]
        z_e = tcp[2] + plan[2] * self.scale[2]
        xy_p = tcp[:2] + np.clip(a_p[:2], -1, 1) * self.scale[:2]
        below_plan = z_p < z_e - c.collision_margin
        if a_p[2] < 0 and below_plan and z_p < self._surface_z(ps, xy_p) + c.safe_height:
            return "collision"
        if c.max_contact_force is not None and ps["robot_contact_force"] > c.max_contact_force:
            return "contact"
        return None

    def _stalled(self) -> bool:
        c = self.config
        if len(self._tcp_hist) <= c.stall_steps:
            return False
        pts = np.asarray(self._tcp_hist)
        path = float(np.sum(np.linalg.norm(np.diff(pts, axis=0), axis=1)))
        return path < c.stall_distance and float(np.mean(self._intent_hist)) > c.stall_intent

    def _can_pay(self, safety: bool, starting: bool) -> bool:
        """Whether the budget pays this step (module docstring, "Budget")."""
        c = self.config
        cost = 1.0 - c.target_rate
        if safety:
            return self.credit - cost >= -c.max_debt
        return self.credit >= (c.min_takeover * cost if starting else cost)

    def _release_reason(self, dev: float, safety: str | None) -> str | None:
        """Why the takeover in progress ends at this step, or None to keep control."""
        c = self.config
        if safety is not None:
            return None if self._can_pay(True, False) else "budget"
        if not self._can_pay(False, False):
            return "budget"
        if self._len >= c.max_takeover:
            return "max_takeover"
        if self._len >= c.min_takeover and self._agree >= c.agree_steps:
            return "agreement"
        return None

    def _start_reason(self, dev: float, safety: str | None) -> str | None:
        """Why a takeover starts at this step, or None."""
        if safety is not None:
            return safety if self._can_pay(True, True) else None
        if not self._can_pay(False, True):
            return None
        if self._stray_run >= self.config.persist_steps:
            return "deviation"
        if self._stalled():
            return "stall"
        return None

    def on_step(self, observation: Any, policy_action: Any, info: dict[str, Any]) -> None:
        """Decide whether to take over (or speak) for the coming step, and with what command.

        Raises:
            InvalidActionError: the proposal is not a finite (7,) action.
        """
        c = self.config
        a_p = self._proposal(policy_action)
        ps = self._state()
        plan = self._plan(ps)
        self.last_plan = plan
        self.steps += 1
        self.episode_steps += 1
        if c.mode == "speak":
            self._speak(a_p, plan)
            return
        dev = self.deviation(a_p, plan)
        self.last_deviation = dev
        pos = self._position(ps)
        if pos is not None:  # None: no tool position, no stall rule
            self._tcp_hist.append(pos)
        self._intent_hist.append(self._speed(plan))
        safety = self._safety(ps, a_p, plan)
        self._stray_run = self._stray_run + 1 if dev > self.threshold else 0

        if self.active:
            self._agree = self._agree + 1 if dev <= self.threshold else 0
            release = self._release_reason(dev, safety)
            if release is None:
                self._len += 1
                if safety is not None:
                    self.last_reason = safety
            else:
                self.active = False
                self.last_release = release
                self.releases[release] += 1
        else:
            reason = self._start_reason(dev, safety)
            if reason is not None:
                self.active = True
                self._len = 1
                self._stray_run = 0
                self._agree = 0
                self._out = np.zeros_like(self._out)
                self.takeovers += 1
                self.reasons[reason] += 1
                self.last_reason = reason
                self._tcp_hist.clear()
                self._intent_hist.clear()

        if self.active:
            self.intervened_steps += 1
            self.episode_intervened += 1
        self.credit = min(self.credit + c.target_rate - float(self.active), c.max_credit)
        if c.adapt:
            step = c.adapt_gain * (float(self.active) - c.target_rate)
            self.threshold = float(
                np.clip(self.threshold * np.exp(step), c.threshold_min, c.threshold_max)
            )

        if not self.active:
            self._out = np.zeros_like(self._out)
            self._command = self._idle(a_p)
            return
        self._command = self._takeover(plan)

    @staticmethod
    def _position(ps: Mapping[str, Any]) -> np.ndarray | None:
        return np.asarray(ps["tcp_pos"], dtype=np.float64).copy()

    @staticmethod
    def _idle(a_p: np.ndarray) -> TeleopCommand:
        return TeleopCommand(gripper=1.0 if a_p[6] > 0 else -1.0)

    def _plan(self, ps: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(self.expert.act(ps), dtype=np.float64)

    @staticmethod
    def _speed(plan: np.ndarray) -> float:
        return float(np.linalg.norm(plan[:3]))

    def _takeover(self, plan: np.ndarray) -> TeleopCommand:
        c = self.config
        # gain noise: a hand at rest on the cap sends exactly zero, a moving hand over/undershoots
        target = plan[:6] * (1.0 + self.rng.normal(0.0, c.hand_noise, size=6))
        self._out = self._out + np.clip(target - self._out, -c.max_delta, c.max_delta)
        self._out = np.clip(self._out, -1.0, 1.0)
        return TeleopCommand(
            translation=self._out[:3].copy(),
            rotation=self._out[3:].copy(),
            gripper=1.0 if plan[6] > 0 else -1.0,
            intervening=True,
            buttons=frozenset({"intervention"}),
            intended=np.r_[np.clip(plan[:6], -1.0, 1.0), 1.0 if plan[6] > 0 else -1.0],
        )

    def _speak(self, a_p: np.ndarray, plan: np.ndarray) -> None:
        """Speak mode: a command when the policy strays by more than the fixed threshold."""
        c = self.config
        stray = self.stray(a_p, plan)
        self.last_stray = stray
        phrase = None
        if stray > c.speak_threshold:
            direction = plan[:3] if c.speak_about == "plan" else plan[:3] - np.clip(a_p[:3], -1, 1)
            text = phrase_for_displacement(c.J * direction * self.scale[:3], c.sigma)
            phrase = None if text == NULL_COMMAND else text
        if phrase is not None:
            self.spoken_steps += 1
            self.episode_intervened += 1
        self._command = TeleopCommand(
            gripper=1.0 if a_p[6] > 0 else -1.0, refinement_command=phrase
        )

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(mode={c.mode!r}, cap={c.target_rate}, share={self.share:.3f})"
        )


def _simulated_factory(**kwargs: Any) -> SimulatedOperator:
    env = kwargs.pop("env", None)
    return SimulatedOperator(env, **kwargs)


def _register() -> None:
    from hardware.teleop import register_teleop, teleop_names

    if "simulated" not in teleop_names():
        register_teleop("simulated", _simulated_factory)


_register()


def device_names() -> list[str]:
    """Names accepted by :func:`make_device`."""
    from hardware.teleop import teleop_names

    return teleop_names()


def make_device(name: str, env: Any = None, **kwargs: Any) -> Any:
    """Build a teleop device by name: ``"simulated"`` (needs ``env``) or a ``hardware`` device.

    Raises:
        ConfigError: an unknown name (the message lists the valid ones) or bad options.
    """
    from hardware.teleop import make_teleop

    names = device_names()
    if name not in names:
        raise ConfigError(f"unknown teleop device {name!r}; valid names: {', '.join(names)}")
    if name == "simulated":
        return make_teleop(name, env=env, **kwargs)
    return make_teleop(name, **kwargs)


__all__ = ["OperatorConfig", "SimulatedOperator", "device_names", "make_device"]
