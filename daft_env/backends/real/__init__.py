"""The real-arm backend: ``gym.make("BoltUpright-Real-v0")`` on a robot, behind the ``Backend`` seam.

Three modules, one job each:

* :mod:`~daft_env.backends.real.config`: :class:`RealConfig` and :data:`ENV_VARS`, the one list
  of ``DAFT_*`` variables (defaults < file < environment < keyword arguments);
* :mod:`~daft_env.backends.real.cell`: the scene resetters and success sources (operator keys,
  a timer, a learned success classifier, a function), behind two registries;
* :mod:`~daft_env.backends.real.backend`: :class:`RealBackend`, the arm and cameras;
* :mod:`~daft_env.backends.real.tasks`: tasks of your own (:func:`register_real_task`, a
  config's ``tasks:`` section), each with its settings over the cell's and its own env id.
"""

from daft_env.backends.real.backend import RealBackend
from daft_env.backends.real.cell import (
    SCENE_RESETTERS,
    SUCCESS_SOURCES,
    CallableSceneResetter,
    CallableSuccess,
    CellHandle,
    ClassifierSuccess,
    KeySceneResetter,
    KeySuccess,
    RealBackendFault,
    SceneResetter,
    SharedKeySource,
    SuccessSource,
    TimerSceneResetter,
    load_classifier,
)
from daft_env.backends.real.config import ENV_VARS, EnvVar, RealConfig, parse_address
from daft_env.backends.real.tasks import (
    RealTask,
    load_real_tasks,
    real_tasks,
    register_real_task,
)

__all__ = [
    "ENV_VARS",
    "SCENE_RESETTERS",
    "SUCCESS_SOURCES",
    "CallableSceneResetter",
    "CallableSuccess",
    "CellHandle",
    "ClassifierSuccess",
    "EnvVar",
    "KeySceneResetter",
    "KeySuccess",
    "RealBackend",
    "RealBackendFault",
    "RealConfig",
    "RealTask",
    "SceneResetter",
    "SharedKeySource",
    "SuccessSource",
    "TimerSceneResetter",
    "load_classifier",
    "load_real_tasks",
    "parse_address",
    "real_tasks",
    "register_real_task",
]
