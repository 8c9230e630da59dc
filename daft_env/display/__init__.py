"""See what the robot sees: every step streamed to Rerun, live or into a ``.rrd`` recording.

Three modules: :mod:`~daft_env.display.stream` (the caller's side: :class:`StepStream`, a bounded
queue and a pump that never block the control loop; the entity layout is documented there),
:mod:`~daft_env.display.worker` (the logging process that makes the Rerun calls) and
:mod:`~daft_env.display.wrapper` (:class:`DisplayWrapper` for operated envs, :func:`log_episode`
for stored episodes).
"""

from daft_env.display.stream import (
    DEFAULT_PORT,
    DisplayWarning,
    OperatorStatus,
    RobotClock,
    StepStream,
    _answers,
    _status,
    require_rerun,
    viewer_url,
)
from daft_env.display.wrapper import DisplayWrapper, log_episode

__all__ = [
    "DEFAULT_PORT",
    "DisplayWarning",
    "DisplayWrapper",
    "OperatorStatus",
    "RobotClock",
    "StepStream",
    "_answers",
    "_status",
    "log_episode",
    "require_rerun",
    "viewer_url",
]
