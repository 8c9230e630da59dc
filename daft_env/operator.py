"""The simulated operator: a scripted stand-in for the human of paper Sec. IV-B (sim only).

:class:`SimulatedOperator` implements :class:`~hardware.teleop.base.TeleopDevice`, so it plugs into
:class:`~daft_env.wrappers.InterventionWrapper` exactly like a SpaceMouse. Each step
(:meth:`SimulatedOperator.on_step`) it reads the privileged state of ``env.unwrapped``, asks the
scripted expert of the current task for its action a^e (the plan), and compares the policy's
proposal a^p with it:

    dev = ||a^p_xyz - a^e_xyz||_2 + w_rot ||a^p_rpy - a^e_rpy||_2 + w_grip [closes(a^p) != closes(a^e)]

in normalised action units. It **takes over** when

* ``dev > theta`` (the policy strays from the plan; theta adapts, see below), or
* it **stalls**: over the last ``stall_steps`` steps the TCP moved less than ``stall_distance``
  while the plan asked for motion (mean ||a^e_xyz|| > ``stall_intent``), or
* a **safety** rule fires, which ignores the rate budget: the policy heads into a collision (its
  next TCP height would be below ``safe_height`` above the table or fixture top under it and lower
  than the plan's, while moving down), contact forces between the robot and the table or fixture
  exceed ``max_contact_force``, or it would open the gripper on a grasped bolt the plan holds.

While in control it sends SpaceMouse-like commands: the plan with multiplicative hand noise,
u = a^e (1 + N(0, hand_noise^2)) per axis (a hand at rest on the cap sends exactly zero; a moving
hand over- or undershoots), rate-limited to ``max_delta`` per step and axis from its previous
command (the cap starts at rest, 0, when a takeover begins), the gripper as a button (immediate).
It **releases** control once all of these hold: at least ``min_takeover`` steps have passed, the
policy's current proposal agrees with the plan (``dev <= theta``), the plan's phase has moved on
since the takeover began (its gripper command or the grasp flipped, or the task switched;
``release_on_phase``) or ``max_takeover`` steps have passed, and no safety rule holds. A policy
that keeps disagreeing (zero or random actions) is therefore never handed a critical phase.

Intervention share: ``target_rate`` (paper: about 15% of online steps) is kept by adapting the
threshold in log space after every step,

    log theta <- log theta + kappa (1[intervened] - target_rate),   theta in [theta_min, theta_max],

a stochastic-approximation (quantile-tracking) rule whose fixed point is a realised share equal to
the target; the running share differs from the target by at most |Delta log theta| / (kappa N)
after N steps. It holds whenever the policy's deviations span the bounds, e.g. a noisy expert. A
policy that is much worse (zero or random actions) gets more help (theta saturates at theta_max and
safety and stall rules are not budgeted); a policy that follows the plan gets less.

``mode="speak"`` (test-time evaluation, as the paper's operator): the same triggers and release
rule, but instead of taking over it issues a refinement command (talk without tweak) in
:attr:`TeleopCommand.refinement_command`: the Eq. 13 phrase of the plan's intended translation over
the labeler's window, Delta = J * a^e_xyz * s_xyz (metres), with the labeler's sigma.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from daft_env.errors import BackendError
from daft_env.labeler import phrase_for_displacement
from daft_env.spaces import ACTION_SCALE
from hardware.errors import ConfigError
from hardware.teleop.base import TeleopCommand

MODES = ("takeover", "speak")
#: trigger reasons that bypass the rate budget
SAFETY_REASONS = ("collision", "contact", "drop")


@dataclasses.dataclass
class OperatorConfig:
    """Settings of :class:`SimulatedOperator` (the module docstring states each rule).

    Attributes:
        target_rate: wanted share of intervened steps (paper: ~0.15).
        mode: ``"takeover"`` (tweak) or ``"speak"`` (talk only, for evaluation).
        adapt: adapt theta to keep ``target_rate``; False keeps ``threshold`` fixed.
        threshold: initial deviation threshold theta (normalised action units).
        threshold_min: lower bound of theta: a policy this close to the plan is never corrected.
        threshold_max: upper bound of theta: a deviation this large is always corrected.
        adapt_gain: kappa of the log-threshold update.
        rot_weight: w_rot in the deviation.
        grip_weight: w_grip in the deviation.
        min_takeover: fewest steps of one takeover.
        max_takeover: steps after which a takeover ends without a phase change, as soon as the
            policy agrees with the plan.
        release_on_phase: release only once the plan's phase has changed since the takeover
            began (the plan's gripper command or the grasp flipped, or the task switched), so
            that the operator finishes the precise part it took over for.
        stall_steps: window of the stall rule (steps).
        stall_distance: TCP path length (m) under which the window counts as no progress.
        stall_intent: mean plan translation (normalised) above which the plan wanted progress.
        safe_height: clearance (m) above the table or fixture top that the policy may not go below
            when the plan does not.
        collision_margin: how far (m) below the plan's next TCP height the policy must head for
            the collision rule to fire.
        fixture_radius: horizontal distance (m) from the fixture within which its top counts.
        fixture_height: height (m) of the fixture top above the slot floor.
        max_contact_force: normal force (N) between robot and table/fixture that triggers a
            takeover; None disables the contact rule.
        hand_noise: std of the operator's multiplicative hand noise on the six motion
            components (0.1 = the hand over- or undershoots the plan by about 10%).
        max_delta: rate limit per step and axis of the operator's command (normalised units).
        expert_kwargs: extra arguments of the task-following scripted expert (e.g. ``gain``).
        J: the labeler's window (speak mode).
        sigma: the labeler's threshold in metres (speak mode).
        seed: seed of the hand noise.
    """

    target_rate: float = 0.15
    mode: str = "takeover"
    adapt: bool = True
    threshold: float = 0.35
    threshold_min: float = 0.08
    threshold_max: float = 0.8
    adapt_gain: float = 0.05
    rot_weight: float = 0.25
    grip_weight: float = 1.0
    min_takeover: int = 3
    max_takeover: int = 20
    release_on_phase: bool = True
    stall_steps: int = 4
    stall_distance: float = 0.003
    stall_intent: float = 0.25
    safe_height: float = 0.01
    collision_margin: float = 0.003
    fixture_radius: float = 0.06
    fixture_height: float = 0.012
    max_contact_force: float | None = 60.0
    hand_noise: float = 0.1
    max_delta: float = 0.6
    expert_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    J: int = 5
    sigma: float = 0.001
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.target_rate <= 1.0:
            raise ConfigError(f"target_rate must be a share in [0, 1]; got {self.target_rate}")
        if self.mode not in MODES:
            raise ConfigError(f"operator mode must be one of {list(MODES)}; got {self.mode!r}")
        if not 0 < self.threshold_min <= self.threshold <= self.threshold_max:
            raise ConfigError(
                "thresholds must satisfy 0 < threshold_min <= threshold <= threshold_max; got "
                f"{self.threshold_min}, {self.threshold}, {self.threshold_max}"
            )
        if not 1 <= self.min_takeover <= self.max_takeover:
            raise ConfigError(
                f"need 1 <= min_takeover <= max_takeover; got {self.min_takeover}, {self.max_takeover}"
            )
        for name in ("adapt_gain", "hand_noise", "stall_distance", "safe_height", "sigma"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0; got {getattr(self, name)}")
        if self.max_delta <= 0:
            raise ConfigError(f"max_delta (rate limit) must be > 0; got {self.max_delta}")
        if self.stall_steps < 2 or self.J < 1:
            raise ConfigError("stall_steps must be >= 2 and J >= 1")


class SimulatedOperator:
    """A scripted operator behind the TeleopDevice protocol (module docstring: the rules).

    Args:
        env: a simulated DAFT env (anything whose ``unwrapped`` has ``privileged_state()``).
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
        backend = getattr(env.unwrapped, "backend", None)
        if not callable(getattr(env.unwrapped, "privileged_state", None)) or not getattr(
            backend, "has_privileged_state", True
        ):
            raise ConfigError(
                "SimulatedOperator needs a simulated env whose unwrapped env has "
                "privileged_state() (a BoltEnv on the mujoco backend); use a SpaceMouse or the "
                "keyboard on real robots"
            )
        from daft_env.experts import make_expert

        self.expert = make_expert("multi", **config.expert_kwargs)
        self.scale = np.asarray(ACTION_SCALE, dtype=np.float64)
        self.rng = np.random.default_rng(config.seed)
        self.threshold = float(config.threshold)
        #: running totals over the operator's lifetime
        self.steps = 0
        self.intervened_steps = 0
        self.takeovers = 0
        self.reasons: Counter[str] = Counter()
        self._contact_ids: tuple[set[int], set[int]] | None = None
        self._connected = False
        self.reset()

    # ------------------------------------------------------------------ protocol
    def connect(self) -> None:
        """Nothing to open (the env was checked in the constructor)."""
        self._connected = True

    def disconnect(self) -> None:
        """Nothing to release. Safe to call twice."""
        self._connected = False

    def reset(self) -> None:
        """Forget the episode: no takeover in progress, the cap at rest."""
        self.active = False
        self._len = 0
        self._phase: tuple[Any, ...] = ()
        self._out = np.zeros(6)
        self._tcp_hist: deque[np.ndarray] = deque(maxlen=self.config.stall_steps + 1)
        self._intent_hist: deque[float] = deque(maxlen=self.config.stall_steps)
        self._command = TeleopCommand()
        self.episode_steps = 0
        self.episode_intervened = 0
        self.last_reason: str | None = None
        self.last_plan: np.ndarray | None = None
        self.last_deviation = 0.0

    def read(self) -> TeleopCommand:
        """The command decided by the last :meth:`on_step`."""
        return self._command

    @property
    def share(self) -> float:
        """Realised share of intervened (or, in speak mode, spoken-to) steps so far."""
        return self.intervened_steps / self.steps if self.steps else 0.0

    # ------------------------------------------------------------------ rules
    def _state(self) -> Mapping[str, Any]:
        try:
            return self.env.unwrapped.privileged_state()
        except BackendError as exc:
            raise ConfigError(f"SimulatedOperator needs privileged simulator state: {exc}") from exc

    def deviation(self, policy_action: np.ndarray, plan: np.ndarray) -> float:
        """dev(a^p, a^e) of the module docstring."""
        c = self.config
        p = np.clip(np.asarray(policy_action, dtype=np.float64), -1.0, 1.0)
        return float(
            np.linalg.norm(p[:3] - plan[:3])
            + c.rot_weight * np.linalg.norm(p[3:6] - plan[3:6])
            + c.grip_weight * float((p[6] > 0) != (plan[6] > 0))
        )

    def _surface_z(self, ps: Mapping[str, Any], xy: np.ndarray) -> float:
        c = self.config
        fixture = ps.get("fixture_pos")
        slot = ps.get("slot_pos")
        if fixture is not None and slot is not None:
            if np.linalg.norm(np.asarray(xy) - np.asarray(fixture)[:2]) < c.fixture_radius:
                return float(slot[2]) + c.fixture_height
        return 0.0

    def _contact_force(self) -> float:
        """Largest normal force (N) between a robot geom and a table/fixture geom; 0 if unknown."""
        backend = getattr(self.env.unwrapped, "backend", None)
        model = getattr(backend, "model", None)
        data = getattr(backend, "data", None)
        if model is None or data is None or data.ncon == 0:
            return 0.0
        import mujoco

        if self._contact_ids is None:
            tcp_body = None
            tcp_site = getattr(backend, "_tcp", None)
            if tcp_site is not None:
                tcp_body = int(model.site_bodyid[tcp_site])
            robot_root = int(model.body_rootid[tcp_body]) if tcp_body is not None else -1
            bolt_bodies = {int(b) for b in getattr(backend, "_bolts", [])}
            robot, scene = set(), set()
            for g in range(model.ngeom):
                body = int(model.geom_bodyid[g])
                if body in bolt_bodies:
                    continue
                if robot_root > 0 and int(model.body_rootid[body]) == robot_root:
                    robot.add(g)
                else:
                    scene.add(g)
            self._contact_ids = (robot, scene)
        robot, scene = self._contact_ids
        if not robot:
            return 0.0
        worst = 0.0
        force = np.zeros(6)
        for i in range(data.ncon):
            con = data.contact[i]
            g1, g2 = int(con.geom1), int(con.geom2)
            if (g1 in robot and g2 in scene) or (g2 in robot and g1 in scene):
                mujoco.mj_contactForce(model, data, i, force)
                worst = max(worst, abs(float(force[0])))
        return worst

    def _safety(self, ps: Mapping[str, Any], a_p: np.ndarray, plan: np.ndarray) -> str | None:
        c = self.config
        tcp = np.asarray(ps["tcp_pos"], dtype=np.float64)
        if ps.get("grasped") and plan[6] > 0 and a_p[6] <= 0:
            return "drop"
        z_p = tcp[2] + np.clip(a_p[2], -1, 1) * self.scale[2]
        z_e = tcp[2] + plan[2] * self.scale[2]
        xy_p = tcp[:2] + np.clip(a_p[:2], -1, 1) * self.scale[:2]
        below_plan = z_p < z_e - c.collision_margin
        if a_p[2] < 0 and below_plan and z_p < self._surface_z(ps, xy_p) + c.safe_height:
            return "collision"
        if c.max_contact_force is not None and self._contact_force() > c.max_contact_force:
            return "contact"
        return None

    def _stalled(self) -> bool:
        c = self.config
        if len(self._tcp_hist) <= c.stall_steps:
            return False
        pts = np.asarray(self._tcp_hist)
        path = float(np.sum(np.linalg.norm(np.diff(pts, axis=0), axis=1)))
        return path < c.stall_distance and float(np.mean(self._intent_hist)) > c.stall_intent

    def _speech(self, plan: np.ndarray) -> str | None:
        delta = self.config.J * plan[:3] * self.scale[:3]
        phrase = phrase_for_displacement(delta, self.config.sigma)
        from daft_env.episode import NULL_COMMAND

        return None if phrase == NULL_COMMAND else phrase

    def on_step(self, observation: Any, policy_action: np.ndarray, info: dict[str, Any]) -> None:
        """Decide whether to take over (or speak) for the coming step, and with what command."""
        c = self.config
        ps = self._state()
        plan = np.asarray(self.expert.act(ps), dtype=np.float64)
        a_p = np.asarray(policy_action, dtype=np.float64).reshape(-1)
        if a_p.shape != (7,) or not np.all(np.isfinite(a_p)):
            a_p = np.zeros(7)  # an invalid proposal is maximally off-plan; the wrapper refuses it
            a_p[6] = -plan[6]
        dev = self.deviation(a_p, plan)
        self._tcp_hist.append(np.asarray(ps["tcp_pos"], dtype=np.float64).copy())
        self._intent_hist.append(float(np.linalg.norm(plan[:3])))
        safety = self._safety(ps, a_p, plan)
        self.last_plan, self.last_deviation = plan, dev

        phase = (bool(plan[6] > 0), bool(ps.get("grasped", False)), ps.get("task"))
        if self.active:
            self._len += 1
            # a safety takeover ends when the danger has passed; a correction waits for the phase
            waited = (
                phase != self._phase
                or not c.release_on_phase
                or self._len >= c.max_takeover
                or self.last_reason in SAFETY_REASONS
            )
            if safety is None and self._len >= c.min_takeover and dev <= self.threshold and waited:
                self.active = False
        else:
            reason = safety
            if reason is None and dev > self.threshold:
                reason = "deviation"
            if reason is None and self._stalled():
                reason = "stall"
            if reason is not None:
                self.active = True
                self._len = 0
                self._phase = phase
                self._out = np.zeros(6)
                self.takeovers += 1
                self.reasons[reason] += 1
                self.last_reason = reason
                self._tcp_hist.clear()
                self._intent_hist.clear()

        self.steps += 1
        self.episode_steps += 1
        if self.active:
            self.intervened_steps += 1
            self.episode_intervened += 1
        if c.adapt:
            step = c.adapt_gain * (float(self.active) - c.target_rate)
            self.threshold = float(
                np.clip(self.threshold * np.exp(step), c.threshold_min, c.threshold_max)
            )

        if not self.active:
            self._out = np.zeros(6)
            self._command = TeleopCommand(gripper=float(np.sign(a_p[6]) or -1.0))
            return
        if c.mode == "speak":
            self._command = TeleopCommand(
                gripper=float(np.sign(a_p[6]) or -1.0), refinement_command=self._speech(plan)
            )
            return
        # gain noise: a hand at rest on the cap sends exactly zero, a moving hand over/undershoots
        target = plan[:6] * (1.0 + self.rng.normal(0.0, c.hand_noise, size=6))
        self._out = self._out + np.clip(target - self._out, -c.max_delta, c.max_delta)
        self._out = np.clip(self._out, -1.0, 1.0)
        self._command = TeleopCommand(
            translation=self._out[:3].copy(),
            rotation=self._out[3:].copy(),
            gripper=1.0 if plan[6] > 0 else -1.0,
            intervening=True,
            buttons=frozenset({"intervention"}),
        )

    def __repr__(self) -> str:
        return (
            f"SimulatedOperator(mode={self.config.mode!r}, target_rate={self.config.target_rate}, "
            f"threshold={self.threshold:.3f}, share={self.share:.3f})"
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
