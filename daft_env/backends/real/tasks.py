"""Your own tasks on the real cell: a name, an instruction, a step limit and the cell's settings.

A task of your own is registered once, from your code or from the real-arm config file, without
editing DAFT. It joins the task registry (:func:`daft_env.tasks.register_task`: the next free
global id, which its episodes carry), remembers the cell settings it needs (how its scene is
reset, where its success comes from), and gets a Gymnasium id of its own.

From code (``register_real_task`` is also ``daft_env.register_real_task``)::

    import daft_env
    daft_env.register_real_task(
        "cable_insert", "insert the cable", max_steps=80,
        scene_reset="key", success="classifier", classifier_path="models/cable.pt",
    )  # env id CableInsert-Real-v0 (env_id=... to choose another)
    env = gym.make("CableInsert-Real-v0", backend_kwargs={"config": "cell.yaml"})

From the config file, a ``tasks:`` section (TOML ``[tasks.cable_insert]``, JSON alike)::

    arm_address: 192.168.1.20:5560
    wrist_camera: {driver: opencv, source: 0}
    head_camera: {driver: opencv, source: 1}
    success: key                     # the cell's default
    tasks:
      cable_insert:
        instruction: insert the cable
        max_steps: 80
        scene_reset: key
        success: classifier
        classifier_path: models/cable.pt
        env_id: CableInsert-Real-v0  # optional; this is the default, from the name

An entry takes ``instruction`` (default: the name with ``_`` as spaces), ``max_steps`` (default
50), ``env_id`` and any field of :data:`TASK_FIELDS`; an empty entry (``cable_insert:``) is a task
with every default. Loading the config registers its tasks, so a task from the file is chosen at
make time by name, through the one id for tasks of your own::

    gym.make("UserTask-Real-v0", task="cable_insert", backend_kwargs={"config": "cell.yaml"})

(or with ``DAFT_REAL_CONFIG=cell.yaml`` and no ``backend_kwargs``). The file is read before the
task is looked up and before the arm is contacted, so a misspelt task fails at once, listing the
tasks the file and your code registered. After :func:`load_real_tasks` (``"cell.yaml"``) each
task's own id, ``CableInsert-Real-v0``, works as well.

The env is ``BoltEnv`` on the real backend, one task per env: its observations have no
``task_id``; ``info["task"]``, ``info["instruction"]`` and ``info["task_id"]`` (the global id)
name the task, and so do the episodes recorded from it. It truncates after the task's
``max_steps`` (``BoltEnv(max_episode_steps=...)`` overrides).

A task's settings sit between the cell's and the caller's:

    defaults < file < environment (DAFT_*) < the task's settings < backend_kwargs

so a task that names a success source gets it even where the cell (or ``DAFT_SUCCESS``) says
otherwise, and a key left out is the cell's. A task whose success is ``classifier`` names its own
``classifier_path``: a classifier is trained for one task, so a user task never borrows the
cell's. Relative paths are read from the working directory, as the cell's are.

Tasks of your own have no simulated scene: the MuJoCo backend knows DAFT's bolt tasks only, and
refuses the others, naming the real backend as the one that runs them.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from daft_env.backends.real.config import RealConfig, read_config_file
from daft_env.errors import ConfigError, UnknownTaskError
from daft_env.tasks import (
    TASK_NAMES,
    TaskSpec,
    check_task_name,
    get_task,
    register_task,
    task_names,
)

#: The :class:`~daft_env.backends.real.config.RealConfig` fields a task may set for itself.
TASK_FIELDS: tuple[str, ...] = (
    "scene_reset",
    "scene_reset_timer_s",
    "scene_reset_timeout_s",
    "success",
    "success_key",
    "failure_key",
    "classifier_path",
    "classifier_threshold",
    "classifier_consecutive",
    "classifier_loader",
    "reset_pose",
    "reset_position_noise",
    "reset_rotation_noise",
)
#: The keys of one entry of a config's ``tasks:`` section.
ENTRY_KEYS: tuple[str, ...] = ("instruction", "max_steps", "env_id", *TASK_FIELDS)
_ENTRY_POINT = "daft_env.env:BoltEnv"


@dataclass(frozen=True)
class RealTask:
    """A task of your own on the real cell.

    Attributes:
        spec: its entry in the task registry (name, global id, instruction, ``max_steps``).
        env_id: its Gymnasium id (``BoltEnv`` on the real backend, this task only).
        settings: the :data:`TASK_FIELDS` it sets; the cell's config gives the rest.
    """

    spec: TaskSpec
    env_id: str
    settings: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def name(self) -> str:
        """The task's name."""
        return self.spec.name

    @property
    def instruction(self) -> str:
        """The language instruction l_task."""
        return self.spec.instruction

    @property
    def max_steps(self) -> int:
        """The episode's step limit."""
        return self.spec.max_steps


_REAL_TASKS: dict[str, RealTask] = {}
_LOCK = threading.RLock()


def env_id_for(name: str) -> str:
    """The default Gymnasium id of a task: ``cable_insert`` -> ``CableInsert-Real-v0``."""
    parts = str(name).replace("-", "_").split("_")
    return "".join(p[:1].upper() + p[1:] for p in parts) + "-Real-v0"


def real_tasks() -> tuple[RealTask, ...]:
    """Every task of your own registered for the real cell, in global-id order."""
    return tuple(sorted(_REAL_TASKS.values(), key=lambda t: t.spec.task_id))


def get_real_task(name: str) -> RealTask | None:
    """The real-cell settings of task ``name``; None for a task without any (the bolt tasks)."""
    return _REAL_TASKS.get(name)


# -- checks --------------------------------------------------------------------------------------

_CHECKS = {f.name: f.metadata.get("check") for f in dataclasses.fields(RealConfig)}


def _check_setting(where: str, key: str, value: Any) -> Any:
    if key == "classifier_path":
        if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
            raise ConfigError(
                f"{where}: classifier_path {value!r} is not a file path. Fix: give the path of "
                "a checkpoint written by `daft train-reward`"
            )
        return os.fspath(value)
    try:
        return _CHECKS[key](key, value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_settings(where: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(settings) - set(TASK_FIELDS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {unknown}. Fix: a task sets {list(TASK_FIELDS)}; the "
            "rest of the cell (arm, cameras, workspace) is the config's top level"
        )
    out = {k: _check_setting(where, k, v) for k, v in settings.items() if v is not None}
    if out.get("success") == "classifier" and not out.get("classifier_path"):
        raise ConfigError(
            f"{where}: success='classifier' needs the task's own classifier_path (a classifier "
            "is trained for one task). Fix: train one with `daft train-reward --store DIR --out "
            "model.pt` on this task's episodes and set classifier_path, or use success='key'"
        )
    return out


def _check_env_id(where: str, env_id: Any) -> str:
    try:
        if not isinstance(env_id, str):
            raise gym.error.Error(f"{env_id!r} is not a string")
        gym.envs.registration.parse_env_id(env_id)
    except gym.error.Error as exc:
        raise ConfigError(
            f"{where}: env_id {env_id!r} is not a Gymnasium id ({exc}). Fix: write Name-Real-v0, "
            "e.g. CableInsert-Real-v0"
        ) from None
    return env_id


# -- registration --------------------------------------------------------------------------------


def register_real_task(
    name: str,
    instruction: str | None = None,
    *,
    max_steps: int = 50,
    scene_reset: str | None = None,
    success: str | None = None,
    classifier_path: str | os.PathLike[str] | None = None,
    env_id: str | None = None,
    **settings: Any,
) -> RealTask:
    """Register a task of your own for the real cell, and its Gymnasium id.

    Registering the same task again the same way returns it (a config loaded twice); registering
    a name again another way is an error, since episodes already recorded under it would change
    meaning.

    Args:
        name: a word of letters, digits, ``_`` and ``-`` starting with a letter, not a bolt task.
        instruction: the language instruction l_task (default: the name with ``_`` as spaces).
        max_steps: the episode's step limit (the env truncates after it).
        scene_reset: who arranges its scene (``"key"``, ``"timer"``, ``"none"`` or a registered
            mode); None: the cell's.
        success: where its success comes from (``"key"``, ``"classifier"``, ``"none"`` or a
            registered source); None: the cell's.
        classifier_path: its success classifier (needed with ``success="classifier"``).
        env_id: its Gymnasium id; default :func:`env_id_for` (``cable_insert`` ->
            ``CableInsert-Real-v0``).
        **settings: other :data:`TASK_FIELDS` (``classifier_threshold``, ``reset_pose``, ...).

    Returns:
        The :class:`RealTask`; ``gym.make(task.env_id, backend_kwargs={"config": ...})`` runs it.

    Raises:
        ConfigError: a malformed name, a bolt task's name, ``max_steps`` below 1, an unknown or
            invalid setting, a classifier success without a path, an env id taken by another
            env, or the name already registered another way. Each message says how to fix it.
    """
    return _register(
        f"task {name!r}",
        name,
        instruction,
        max_steps,
        env_id,
        {
            "scene_reset": scene_reset,
            "success": success,
            "classifier_path": classifier_path,
            **settings,
        },
    )


def _register(
    where: str,
    name: Any,
    instruction: Any,
    max_steps: Any,
    env_id: Any,
    settings: Mapping[str, Any],
) -> RealTask:
    try:
        check_task_name(name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}. Fix: rename the task") from None
    if name in TASK_NAMES:
        raise ConfigError(
            f"{where}: {name!r} is one of DAFT's bolt tasks (its ids are Bolt*-Real-v0, and the "
            "cell's top-level settings apply to it). Fix: give a task of your own another name"
        )
    if instruction is not None and (not isinstance(instruction, str) or not instruction.strip()):
        raise ConfigError(
            f"{where}: instruction {instruction!r} is not a sentence. Fix: write the language "
            "instruction as text, e.g. 'insert the cable'"
        )
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ConfigError(
            f"{where}: max_steps {max_steps!r} is not an integer >= 1. Fix: give the episode's "
            "step limit, e.g. max_steps: 80"
        )
    checked = _check_settings(where, settings)
    env_id = _check_env_id(where, env_id_for(name) if env_id is None else env_id)
    text = instruction if instruction else str(name).replace("_", " ")
    with _LOCK:
        old = _REAL_TASKS.get(name)
        if old is not None:
            if (old.instruction, old.max_steps, old.env_id, old.settings) == (
                text,
                max_steps,
                env_id,
                checked,
            ):
                return old
            raise ConfigError(
                f"{where}: already registered as (instruction={old.instruction!r}, max_steps="
                f"{old.max_steps}, env_id={old.env_id!r}, {old.settings}); registering it again "
                f"as (instruction={text!r}, max_steps={max_steps}, env_id={env_id!r}, {checked}) "
                "would change what its recorded episodes mean. Fix: give the new task another name"
            )
        spec_ = gym.registry.get(env_id)
        if spec_ is not None and (spec_.entry_point, spec_.kwargs.get("task")) != (
            _ENTRY_POINT,
            name,
        ):
            raise ConfigError(
                f"{where}: the Gymnasium id {env_id!r} is already taken (by "
                f"{spec_.kwargs.get('task') or spec_.entry_point!r}). Fix: set env_id to another "
                "id, e.g. My" + env_id
            )
        try:
            spec = register_task(name, text, max_steps)
        except ConfigError as exc:  # the name is taken by a task registered another way
            raise ConfigError(f"{where}: {exc}. Fix: give the task another name") from None
        if spec_ is None:
            # Truncation is BoltEnv's own (the task's max_steps), as for the bolt ids; a real
            # cell's frames come in wall time, so the same seed cannot give the same episode.
            gym.register(
                id=env_id,
                entry_point=_ENTRY_POINT,
                kwargs={"task": name, "backend": "real"},
                nondeterministic=True,
            )
        task = RealTask(spec, env_id, checked)
        _REAL_TASKS[name] = task
        return task


def register_tasks_section(section: Any, source: str = "config") -> tuple[RealTask, ...]:
    """Register every entry of a config's ``tasks:`` section (the module docstring's shape).

    Args:
        section: ``{name: {instruction: ..., max_steps: ..., <TASK_FIELDS>...} or None}``.
        source: where the section comes from (the file's path), for the errors.

    Raises:
        ConfigError: the section or an entry is malformed; the message names the entry, the
            problem and the fix.
    """
    if section is None:
        return ()
    if not isinstance(section, Mapping):
        raise ConfigError(
            f"{source}: 'tasks' must map task names to their settings; got "
            f"{type(section).__name__}. Fix: write tasks: {{cable_insert: {{instruction: ...}}}}"
        )
    out = []
    for name, entry in section.items():
        where = f"{source}, tasks.{name}"
        entry = {} if entry is None else entry
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"{where}: an entry must be a mapping of {list(ENTRY_KEYS[:3])} and task "
                f"settings; got {type(entry).__name__} {entry!r}. Fix: write {name}: "
                "{instruction: ..., max_steps: ...}"
            )
        unknown = sorted(set(entry) - set(ENTRY_KEYS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {unknown}. Fix: valid keys are {list(ENTRY_KEYS)}"
            )
        settings = {k: v for k, v in entry.items() if k in TASK_FIELDS}
        out.append(
            _register(
                where,
                name,
                entry.get("instruction"),
                entry.get("max_steps", 50),
                entry.get("env_id"),
                settings,
            )
        )
    return tuple(out)


def load_real_tasks(
    config: RealConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[RealTask, ...]:
    """Register the ``tasks:`` section of a real-arm config, so its tasks' own ids work.

    Args:
        config: a config file path, a mapping (the whole config), or None for
            ``DAFT_REAL_CONFIG`` (nothing when it is unset); a ready :class:`RealConfig` has no
            tasks section.
        environ: the environment to read (default ``os.environ``).

    Returns:
        The tasks the section registered, in its order.
    """
    env = os.environ if environ is None else environ
    if config is None and env.get("DAFT_REAL_CONFIG"):
        config = env["DAFT_REAL_CONFIG"]
    if isinstance(config, (str, os.PathLike)):
        return register_tasks_section(read_config_file(config).get("tasks"), str(config))
    if isinstance(config, Mapping):
        return register_tasks_section(config.get("tasks"), "config")
    return ()


def cell_config(
    config: RealConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    task: str | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> RealConfig:
    """The :class:`RealConfig` of the cell running ``task``, its settings in their place.

    ``defaults < file < environment < task settings < overrides``. The config's ``tasks:``
    section (and one given in ``overrides``) is registered first, so ``task`` may come from it.

    Raises:
        UnknownTaskError: ``task`` is registered nowhere; the message lists the tasks and how to
            register one. Raised before anything connects to the arm.
    """
    load_real_tasks(config, environ)
    register_tasks_section(overrides.get("tasks"), "backend_kwargs")
    settings: dict[str, Any] = {}
    if task is not None:
        try:
            spec = get_task(task)
        except UnknownTaskError:
            raise UnknownTaskError(
                f"unknown task {task!r} for the real cell; the registered tasks are "
                f"{list(task_names())}. Fix: register yours with daft_env.register_real_task("
                f"{task!r}, instruction, ...) or in the tasks: section of the real-arm config "
                "(backend_kwargs={'config': PATH} or DAFT_REAL_CONFIG), or correct the name"
            ) from None
        real = _REAL_TASKS.get(spec.name)
        settings = dict(real.settings) if real is not None else {}
    return RealConfig.resolve(config, environ, **{**settings, **overrides})


__all__ = [
    "ENTRY_KEYS",
    "TASK_FIELDS",
    "RealTask",
    "cell_config",
    "env_id_for",
    "get_real_task",
    "load_real_tasks",
    "real_tasks",
    "register_real_task",
    "register_tasks_section",
]
