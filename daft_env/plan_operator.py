"""The simulated operator and the demonstrator on any env: a user's scripted plan.

A **plan** is any scripted controller that maps what it reads to an action in the env's own units:

* a callable ``plan(observation) -> action`` (the env's own observation, before
  :class:`~daft_env.adapters.DaftSpaces` turns it into a Dict);
* or ``plan(state) -> action`` on the env's privileged state (``env.unwrapped.privileged_state()``),
  marked with ``plan.source = "state"`` (or :class:`ScriptedPlan` (fn, source="state"));
* or an object with ``act(x)`` (and optionally ``reset()``, called at each episode start).

``--expert module:callable`` on the CLI names one (:func:`load_plan`): the module is imported and
the attribute taken; a class or a factory marked ``make_plan = True`` is called with the env first.

:class:`PlanOperator` is :class:`~daft_env.operator.SimulatedOperator`'s person on such a plan:
the same need-based trigger (``dev > theta`` held ``persist_steps`` steps), the same budget cap,
release rule, hand noise and rate limit, and the plan as the intended (clean) label, all in
normalised action units. On another action layout the deviation reads the layout:

    dev = ||a^p_T - a^e_T||_2 (slow motion forgiven) + w_rot ||a^p_R - a^e_R||_2 + w_grip [closes differ]

with T the translation dimensions, G the gripper dimension (> 0 closes) and R every other one.
What it cannot know on an unknown env is left out, said here: the bolt cell's safety rules
(collision, contact, drop) need the cell's geometry, and the stall rule needs the tool's position,
so both are off unless the plan gives ``plan.position(x) -> (3,) metres`` (the stall rule then
runs as on the bolt tasks). Speak mode speaks the layout's words
(:class:`~daft_env.layout.ActionLayout`), and says nothing on an env without translation axes.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from daft_env.adapters import find_adapter
from daft_env.errors import ConfigError, InvalidActionError
from daft_env.layout import NO_COMMANDS, ActionLayout, layout_of
from daft_env.operator import OperatorConfig, SimulatedOperator
from hardware.teleop.base import TeleopCommand

SOURCES = ("observation", "state")


class ScriptedPlan:
    """A plan: ``fn(x) -> action`` in the env's units, reading the observation or the state.

    Args:
        fn: the controller.
        source: ``"observation"`` (the env's own observation) or ``"state"`` (privileged state).
        reset: called at each episode start, or None.
        position: ``position(x) -> (3,)`` tool position in metres (enables the stall rule), or None.
    """

    def __init__(
        self,
        fn: Callable[[Any], Any],
        source: str = "observation",
        reset: Callable[[], None] | None = None,
        position: Callable[[Any], Any] | None = None,
    ) -> None:
        if not callable(fn):
            raise ConfigError(f"a plan must be callable (x -> action); got {fn!r}")
        if source not in SOURCES:
            raise ConfigError(f"plan source must be one of {list(SOURCES)}; got {source!r}")
        self.fn, self.source, self._reset, self.position = fn, source, reset, position
        self.name = getattr(fn, "__qualname__", type(fn).__name__)

    def act(self, x: Any) -> Any:
        """The plan's action for ``x``."""
        return self.fn(x)

    def reset(self) -> None:
        """Start of an episode."""
        if self._reset is not None:
            self._reset()


def as_plan(obj: Any) -> ScriptedPlan:
    """A :class:`ScriptedPlan` from a plan, a callable or an object with ``act``."""
    if isinstance(obj, ScriptedPlan):
        return obj
    source = getattr(obj, "source", "observation")
    position = getattr(obj, "position", None)
    if hasattr(obj, "act") and callable(obj.act):
        reset = getattr(obj, "reset", None)
        return ScriptedPlan(obj.act, source, reset if callable(reset) else None, position)
    if callable(obj):
        return ScriptedPlan(obj, source, None, position)
    raise ConfigError(
        f"{obj!r} is not a plan: give a callable x -> action, or an object with act(x)"
    )


def load_plan(spec: str, env: Any = None) -> ScriptedPlan:
    """``"module:attr"`` -> the plan it names (``--expert``); a class/factory gets ``env`` first.

    Raises:
        ConfigError: a malformed spec, a module that does not import, a missing attribute.
    """
    module, sep, attr = str(spec).partition(":")
    if not sep or not module or not attr:
        raise ConfigError(
            f"--expert {spec!r}: expected module:callable (e.g. my_robot.plans:reach), the module "
            "imported and the callable taken from it"
        )
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"--expert {spec!r}: cannot import module {module!r} ({exc}); is it on PYTHONPATH?"
        ) from exc
    obj: Any = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"--expert {spec!r}: module {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if inspect.isclass(obj) or getattr(obj, "make_plan", False):
        obj = obj(env)
    return as_plan(obj)


def plan_action(plan: ScriptedPlan, env: Any, observation: Any = None) -> np.ndarray:
    """The plan's action for the env's current step, normalised to [-1, 1] when adapted.

    ``observation`` is the env's own (raw) observation; None reads the adapter's last one.
    """
    adapter = find_adapter(env)
    if plan.source == "state":
        state_fn = getattr(env.unwrapped, "privileged_state", None)
        if not callable(state_fn):
            raise ConfigError(
                f"plan {plan.name} reads the privileged state (source='state'), but "
                f"{type(env.unwrapped).__name__} has no privileged_state(); read the "
                "observation instead (source='observation')"
            )
        x = state_fn()
    elif observation is not None:
        x = observation
    elif adapter is not None:
        x = adapter.raw_obs
    else:
        raise ConfigError("plan_action needs the observation (the env is not under DaftSpaces)")
    try:
        a = np.asarray(plan.act(x), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidActionError(f"plan {plan.name} returned no numeric action: {exc}") from exc
    n = int(np.prod(env.action_space.shape))
    if adapter is not None:
        n = adapter.low.size
    if a.shape != (n,) or not np.all(np.isfinite(a)):
        raise InvalidActionError(
            f"plan {plan.name} must return a finite action of shape ({n},) in the env's units; "
            f"got {a.tolist()}"
        )
    return adapter.to_unit(a) if adapter is not None else a


class PlanOperator(SimulatedOperator):
    """The simulated operator on a user's plan, for any env (module docstring).

    Args:
        env: the env it watches (usually ``DaftSpaces(user_env)``; the plan reads the user env's
            own observation or state).
        plan: a plan (:func:`as_plan`), or a ``"module:attr"`` spec.
        config: an :class:`~daft_env.operator.OperatorConfig`; keyword arguments override fields.
        layout: the action layout in the normalised units the operator sees (default: the env's;
            none: the deviation treats every non-gripper dimension as "other" and speak mode
            says nothing).

    Raises:
        ConfigError: no env or plan, or bad settings.
    """

    name = "plan"

    def __init__(
        self,
        env: Any = None,
        plan: Any = None,
        config: OperatorConfig | None = None,
        layout: ActionLayout | None = None,
        **kwargs: Any,
    ) -> None:
        if plan is None:
            raise ConfigError("PlanOperator needs a plan: a callable x -> action (--expert)")
        self._given_plan = plan
        self._given_layout = layout
        super().__init__(env, config, **kwargs)

    def _make_plan(self, env: Any) -> ScriptedPlan:
        plan = self._given_plan
        plan = load_plan(plan, env) if isinstance(plan, str) else as_plan(plan)
        layout = self._given_layout if self._given_layout is not None else layout_of(env)
        self.layout = NO_COMMANDS if layout is None else layout
        self.n = int(np.prod(env.action_space.shape))
        self.layout.check(env.action_space, "the operated env")
        t = list(self.layout.indices)
        g = self.layout.gripper
        self._t = np.array(t, dtype=int)
        self._r = np.array([i for i in range(self.n) if i not in t and i != g], dtype=int)
        self._g = g
        self._moving = np.array([i for i in range(self.n) if i != g], dtype=int)
        return plan

    def reset(self) -> None:
        """Forget the episode (as the bolt operator does), and tell the plan a new one starts."""
        super().reset()
        if hasattr(self, "n"):
            self._out = np.zeros(self.n)
            self.expert.reset()

    # ------------------------------------------------------------------ hooks
    def _state(self) -> Mapping[str, Any]:
        return {}

    def _plan(self, ps: Mapping[str, Any]) -> np.ndarray:
        return plan_action(self.expert, self.env)

    def _proposal(self, policy_action: Any) -> np.ndarray:  # type: ignore[override]
        try:
            a = np.asarray(policy_action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidActionError("the policy's proposal must be a numeric action") from exc
        if a.shape != (self.n,) or not np.all(np.isfinite(a)):
            raise InvalidActionError(
                f"the policy's proposal must be a finite ({self.n},) action; got {a.tolist()}"
            )
        return a

    def _closes(self, a: np.ndarray) -> bool:
        return self._g is not None and bool(a[self._g] > 0)

    def deviation(self, policy_action: np.ndarray, plan: np.ndarray) -> float:
        """dev(a^p, a^e) on the layout's dimensions (module docstring)."""
        c = self.config
        p = np.clip(np.asarray(policy_action, dtype=np.float64), -1.0, 1.0)
        diff = p[self._t] - plan[self._t]
        speed = float(np.linalg.norm(plan[self._t])) if self._t.size else 0.0
        if c.slow_ok and speed > 1e-6:
            u = plan[self._t] / speed
            along = float(np.dot(p[self._t], u))
            diff = diff - u * float(np.clip(along - speed, -0.4 * speed, 0.0))
        rot = np.linalg.norm(p[self._r] - plan[self._r]) if self._r.size else 0.0
        return float(
            np.linalg.norm(diff)
            + c.rot_weight * rot
            + c.grip_weight * float(self._closes(p) != self._closes(plan))
        )

    def stray(self, policy_action: np.ndarray, plan: np.ndarray) -> float:
        """Speak mode's stray in metres over the window, on the layout's translation axes."""
        p = np.clip(np.asarray(policy_action, dtype=np.float64), -1.0, 1.0)
        d = self.layout.translation(p) - self.layout.translation(plan)
        return float(np.linalg.norm(self.config.J * d))

    def _speed(self, plan: np.ndarray) -> float:
        return float(np.linalg.norm(plan[self._t])) if self._t.size else 0.0

    def _position(self, ps: Mapping[str, Any]) -> np.ndarray | None:  # type: ignore[override]
        pos = getattr(self.expert, "position", None)
        adapter = find_adapter(self.env)
        if pos is None or adapter is None:
            return None
        return np.asarray(pos(adapter.raw_obs), dtype=np.float64).reshape(3)

    def _safety(self, ps: Mapping[str, Any], a_p: np.ndarray, plan: np.ndarray) -> str | None:
        return None  # the bolt cell's rules need its geometry (module docstring)

    def _idle(self, a_p: np.ndarray) -> TeleopCommand:  # type: ignore[override]
        return TeleopCommand()

    def _takeover(self, plan: np.ndarray) -> TeleopCommand:
        c = self.config
        target = plan.copy()
        m = self._moving
        target[m] = plan[m] * (1.0 + self.rng.normal(0.0, c.hand_noise, size=m.size))
        out = self._out.copy()
        out[m] = out[m] + np.clip(target[m] - out[m], -c.max_delta, c.max_delta)
        if self._g is not None:
            out[self._g] = 1.0 if plan[self._g] > 0 else -1.0  # a button
        self._out = np.clip(out, -1.0, 1.0)
        return TeleopCommand(
            action=self._out.copy(),
            intervening=True,
            buttons=frozenset({"intervention"}),
            intended=np.clip(plan, -1.0, 1.0),
        )

    def _speak(self, a_p: np.ndarray, plan: np.ndarray) -> None:
        c = self.config
        stray = self.stray(a_p, plan) if self.layout.enabled else 0.0
        self.last_stray = stray
        phrase = None
        if stray > c.speak_threshold:
            p = np.clip(a_p, -1, 1)
            move = plan if c.speak_about == "plan" else plan - p
            text = self.layout.phrase(c.J * self.layout.translation(move), c.sigma)
            phrase = (
                None if text == self.layout.phrase_from_signs([0] * len(self.layout.axes)) else text
            )
        if phrase is not None:
            self.spoken_steps += 1
            self.episode_intervened += 1
        self._command = TeleopCommand(refinement_command=phrase)


__all__ = ["PlanOperator", "ScriptedPlan", "as_plan", "load_plan", "plan_action"]
