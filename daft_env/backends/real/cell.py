"""The robot cell around the arm: who arranges the scene, and who says "success".

On a real arm nothing resets the bolt and nothing measures the task, so two seams stand in for
the simulator's layout and predicate:

* a :class:`SceneResetter` blocks while the scene is arranged for a new episode (the operator
  presses Enter, a timer runs out, or a function lays out a simulated scene);
* a :class:`SuccessSource` gives each step's verdict (the operator's key, a learned success
  classifier on the camera frames, or a function such as a simulator's predicate).

The config's ``scene_reset`` and ``success`` names are looked up in :data:`SCENE_RESETTERS` and
:data:`SUCCESS_SOURCES`, so a new kind is one class plus one ``register`` call.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from daft_env.backends.base import TaskStatus
from daft_env.errors import BackendError, ConfigError
from daft_env.tasks import TaskSpec
from hardware.errors import DeviceNotFoundError
from hardware.registry import Registry
from hardware.teleop.keyboard import KeySource, StdinKeySource

if TYPE_CHECKING:
    from daft_env.backends.real.config import RealConfig


#: The loader of ``success: classifier``: ``"module:function"`` turning a path into a model.
DEFAULT_CLASSIFIER_LOADER = "daft_env.success:load_success_classifier"


class RealBackendFault(BackendError):
    """The arm, its server, a camera or the cell failed during an episode; reset to reconnect."""


@runtime_checkable
class SceneResetter(Protocol):
    """Waits while the scene is arranged for a new episode (a person, a timer, a simulator)."""

    def arrange(
        self, task: TaskSpec, rng: np.random.Generator, options: Mapping[str, Any] | None = None
    ) -> None:
        """Block until the scene for ``task`` is ready; :class:`RealBackendFault` if it never is."""

    def close(self) -> None:
        """Release whatever the resetter holds (a terminal). Safe to call twice."""


@runtime_checkable
class SuccessSource(Protocol):
    """Where a real episode's success signal comes from."""

    def reset(self, task: TaskSpec) -> None:
        """Forget the previous episode's verdict."""

    def status(self, task: TaskSpec, observation: Mapping[str, np.ndarray]) -> TaskStatus:
        """The verdict after the latest step; ``observation`` holds the step's camera frames."""

    def close(self) -> None:
        """Release resources. Safe to call twice."""


class CellHandle:
    """A handle on a person, a terminal, a model or a simulator: copying it gives the same one.

    gym deep-copies an env spec's kwargs (``backend_kwargs`` holds these objects); a copy of a
    terminal or of a simulator's callback would be a second, disconnected one.
    """

    def __deepcopy__(self, memo: dict) -> Any:
        return self

    def close(self) -> None:
        """Nothing to release (subclasses holding a device override this)."""


def _print_prompt(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class SharedKeySource:
    """One key source shared by several readers: opened on first use, closed on the last close.

    A terminal in cbreak mode must be restored exactly once, with the settings saved before the
    first open; two independent opens would save (and later restore) the cbreak settings.
    """

    def __init__(self, source: KeySource) -> None:
        self.source = source
        self._users = 0

    def open(self) -> None:
        """Open the underlying source on the first call."""
        if self._users == 0:
            try:
                self.source.open()
            except DeviceNotFoundError as exc:
                raise DeviceNotFoundError(
                    f"{exc} The real env reads the operator's keys (scene_reset='key', "
                    "success='key'); without a terminal use DAFT_SCENE_RESET=timer:5 and "
                    "DAFT_SUCCESS=classifier:PATH, or pass a key_source."
                ) from exc
        self._users += 1

    def poll(self) -> list[str]:
        """Keys typed since the last poll (by any reader)."""
        return self.source.poll()

    def close(self) -> None:
        """Close the underlying source when the last reader closes."""
        if self._users > 0:
            self._users -= 1
            if self._users == 0:
                self.source.close()


class _KeyReader(CellHandle):
    """Opens its key source on first use and closes it once."""

    def __init__(self, key_source: KeySource | None) -> None:
        self.key_source = key_source or StdinKeySource()
        self._open = False

    def _ensure_open(self) -> None:
        if not self._open:
            self.key_source.open()
            self._open = True

    def close(self) -> None:
        """Release the key source."""
        if self._open:
            self.key_source.close()
            self._open = False


# -- scene resetters -----------------------------------------------------------------------------


class KeySceneResetter(_KeyReader):
    """The operator arranges the scene and presses a key (Enter by default).

    Args:
        key_source: where keys come from (default: this terminal, in cbreak mode).
        keys: any of these keys confirms.
        timeout_s: raise :class:`RealBackendFault` after this long without a key; None waits.
        prompt: called with the instruction for the operator (default: print to stderr).
    """

    def __init__(
        self,
        key_source: KeySource | None = None,
        keys: tuple[str, ...] = ("\n", "\r"),
        timeout_s: float | None = None,
        prompt: Callable[[str], None] | None = None,
    ) -> None:
        if not keys:
            raise ConfigError("KeySceneResetter needs at least one key, e.g. keys=('\\n',)")
        super().__init__(key_source)
        self.keys = tuple(keys)
        self.timeout_s = timeout_s
        self.prompt = prompt or _print_prompt

    def arrange(
        self, task: TaskSpec, rng: np.random.Generator, options: Mapping[str, Any] | None = None
    ) -> None:
        """Prompt the operator and wait for a confirming key."""
        self._ensure_open()
        self.prompt(f"[daft] arrange the scene for {task.instruction!r}, then press Enter")
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while True:
            if any(k in self.keys for k in self.key_source.poll()):
                return
            if deadline is not None and time.monotonic() > deadline:
                raise RealBackendFault(
                    f"nobody confirmed the scene for {task.name!r} within {self.timeout_s:g} s "
                    "(press Enter in the env's terminal, or use scene_reset='timer')"
                )
            time.sleep(0.02)


class TimerSceneResetter(CellHandle):
    """Give the operator a fixed time to arrange the scene.

    Args:
        seconds: how long to wait; 0 does not wait (a scene that resets itself).
        prompt: called with the instruction for the operator (default: print to stderr).
        sleep: how to wait (a test passes a recorder).
    """

    def __init__(
        self,
        seconds: float,
        prompt: Callable[[str], None] | None = None,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        if not seconds >= 0:
            raise ConfigError(f"the scene-reset timer needs seconds >= 0; got {seconds}")
        self.seconds = float(seconds)
        self.prompt = prompt or _print_prompt
        self.sleep = sleep

    def arrange(
        self, task: TaskSpec, rng: np.random.Generator, options: Mapping[str, Any] | None = None
    ) -> None:
        """Wait ``seconds``."""
        if self.seconds > 0:
            self.prompt(f"[daft] arrange the scene for {task.instruction!r} ({self.seconds:.0f} s)")
            self.sleep(self.seconds)


class CallableSceneResetter(CellHandle):
    """A function arranges the scene: ``fn(task, rng[, options])`` (``MujocoArm.arrange_scene``).

    The ``rng`` passed on is the env's own generator, untouched by the start-pose randomisation,
    so a simulated scene is laid out exactly as the ``-Sim-v0`` env lays it out for the same seed.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise ConfigError(f"CallableSceneResetter needs a callable; got {fn!r}")
        self.fn = fn
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):  # some builtins have no signature
            params = []
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        #: Whether ``fn`` takes a third argument, the env's reset options (long-horizon layout).
        self.takes_options = sum(p.kind in positional for p in params) >= 3 or any(
            p.kind == inspect.Parameter.VAR_POSITIONAL for p in params
        )

    def arrange(
        self, task: TaskSpec, rng: np.random.Generator, options: Mapping[str, Any] | None = None
    ) -> None:
        """Call the function (with ``options`` when it takes three arguments)."""
        if self.takes_options:
            self.fn(task, rng, dict(options or {}))
        else:
            self.fn(task, rng)


# -- success sources -----------------------------------------------------------------------------


class KeySuccess(_KeyReader):
    """The operator's verdict by key: ``success_key`` ends in success, ``failure_key`` in failure.

    The verdict latches until :meth:`reset`, so polling once per step cannot miss a press.
    """

    def __init__(
        self,
        key_source: KeySource | None = None,
        success_key: str = "y",
        failure_key: str = "n",
    ) -> None:
        super().__init__(key_source)
        self.success_key, self.failure_key = success_key, failure_key
        self._verdict: bool | None = None

    def reset(self, task: TaskSpec) -> None:
        """Clear the verdict (and drop keys typed since the last poll)."""
        self._ensure_open()
        self.key_source.poll()
        self._verdict = None

    def status(self, task: TaskSpec, observation: Mapping[str, np.ndarray]) -> TaskStatus:
        """Poll the keys."""
        if self._open and self._verdict is None:
            for key in self.key_source.poll():
                if key in (self.success_key, self.failure_key):
                    self._verdict = key == self.success_key
        return TaskStatus(
            success=self._verdict is True,
            failed=self._verdict is False,
            info={"success_source": "key"},
        )


class ClassifierSuccess(CellHandle):
    """A learned success classifier on the step's camera frames (HIL-SERL's reward classifier).

    The reward is r_t = 1[p(success | o_t) >= threshold] held for ``consecutive`` steps in a row;
    the probability is reported as ``info["success_prob"]``.

    Args:
        model: any object with ``predict(observation) -> probability``; its ``image_keys``
            attribute (default ``("head_rgb",)``) says which frames it reads.
        threshold: probability threshold.
        consecutive: steps in a row above the threshold.
    """

    def __init__(self, model: Any, threshold: float = 0.5, consecutive: int = 1) -> None:
        if not callable(getattr(model, "predict", None)):
            raise ConfigError(f"the success classifier {model!r} has no predict(frames) method")
        if not 0 < threshold < 1 or consecutive < 1:
            raise ConfigError("ClassifierSuccess needs 0 < threshold < 1 and consecutive >= 1")
        self.model, self.threshold, self.consecutive = model, float(threshold), int(consecutive)
        self._run = 0

    def reset(self, task: TaskSpec) -> None:
        """Restart the consecutive count."""
        self._run = 0

    def status(self, task: TaskSpec, observation: Mapping[str, np.ndarray]) -> TaskStatus:
        """Classify the step's frames."""
        keys = tuple(getattr(self.model, "image_keys", ("head_rgb",)))
        missing = [k for k in keys if k not in observation]
        if missing:
            raise ConfigError(
                f"the success classifier reads {list(keys)} but the observation has only "
                f"{sorted(observation)}"
            )
        prob = float(
            np.asarray(self.model.predict({k: observation[k] for k in keys})).reshape(-1)[0]
        )
        self._run = self._run + 1 if prob >= self.threshold else 0
        return TaskStatus(
            success=self._run >= self.consecutive,
            info={"success_source": "classifier", "success_prob": prob},
        )


class CallableSuccess(CellHandle):
    """A function gives the verdict: ``fn() -> bool`` or ``-> TaskStatus`` (e.g. a sim predicate)."""

    def __init__(self, fn: Callable[[], bool | TaskStatus]) -> None:
        if not callable(fn):
            raise ConfigError(f"CallableSuccess needs a callable; got {fn!r}")
        self.fn = fn

    def reset(self, task: TaskSpec) -> None:
        """Nothing to forget."""

    def status(self, task: TaskSpec, observation: Mapping[str, np.ndarray]) -> TaskStatus:
        """Call the function."""
        out = self.fn()
        if isinstance(out, TaskStatus):
            return TaskStatus(out.success, out.failed, {"success_source": "callable", **out.info})
        return TaskStatus(success=bool(out), info={"success_source": "callable"})


def load_classifier(path: str | os.PathLike[str], loader: str = DEFAULT_CLASSIFIER_LOADER) -> Any:
    """Load a success classifier through the ``"module:function"`` plugin ``loader``.

    Args:
        path: a checkpoint written by ``daft train-reward``.
        loader: default :func:`daft_env.success.load_success_classifier` (it needs torch, so it
            is imported only here, when a classifier is asked for).
    """
    module_name, _, attr = loader.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"cannot import the success-classifier loader {loader!r} ({exc}); install torch "
            "(pip install -e .) or set classifier_loader"
        ) from exc
    if not Path(path).is_file():
        raise ConfigError(
            f"success classifier {str(path)!r} does not exist; train one with "
            "`daft train-reward --store DIR --out PATH`"
        )
    return fn(path)


# -- the registries: config name -> factory(config, keys) ----------------------------------------

#: ``scene_reset`` names: ``factory(config=RealConfig, keys=() -> SharedKeySource)``.
SCENE_RESETTERS: Registry[SceneResetter] = Registry("scene reset mode")
#: ``success`` names: ``factory(config=RealConfig, keys=() -> SharedKeySource)``.
SUCCESS_SOURCES: Registry[SuccessSource] = Registry("success mode")

KeysFn = Callable[[], SharedKeySource]


def _key_scene(config: RealConfig, keys: KeysFn) -> SceneResetter:
    return KeySceneResetter(keys(), timeout_s=config.scene_reset_timeout_s)


def _key_success(config: RealConfig, keys: KeysFn) -> SuccessSource:
    return KeySuccess(keys(), config.success_key, config.failure_key)


def _classifier_success(config: RealConfig, keys: KeysFn) -> SuccessSource:
    model = load_classifier(str(config.classifier_path), config.classifier_loader)
    return ClassifierSuccess(model, config.classifier_threshold, config.classifier_consecutive)


SCENE_RESETTERS.register("key", _key_scene)
SCENE_RESETTERS.register(
    "timer", lambda config, keys: TimerSceneResetter(config.scene_reset_timer_s)
)
SCENE_RESETTERS.register("none", lambda config, keys: TimerSceneResetter(0.0))
SUCCESS_SOURCES.register("key", _key_success)
SUCCESS_SOURCES.register("classifier", _classifier_success)
SUCCESS_SOURCES.register("none", lambda config, keys: CallableSuccess(lambda: False))


__all__ = [
    "DEFAULT_CLASSIFIER_LOADER",
    "SCENE_RESETTERS",
    "SUCCESS_SOURCES",
    "CallableSceneResetter",
    "CallableSuccess",
    "CellHandle",
    "ClassifierSuccess",
    "KeySceneResetter",
    "KeySuccess",
    "RealBackendFault",
    "SceneResetter",
    "SharedKeySource",
    "SuccessSource",
    "TimerSceneResetter",
    "load_classifier",
]
