"""Camera frames and the interactive viewer of a MuJoCo scene, created lazily and never pickled.

A ``mujoco.Renderer`` owns a GL context and the passive viewer a window; neither can be pickled or
copied. :class:`SceneViews` creates them on first use and drops them when pickled, so a
:class:`~daft_env.backends.mujoco.MujocoBackend` (and a pixel ``BoltEnv`` around it) pickles like
any other Gymnasium env and rebuilds its renderers on the first frame after unpickling. A frame
depends only on the model and data, so the rebuilt renderer draws the same pixels.
"""

from __future__ import annotations

import os
from typing import Any

import mujoco
import numpy as np

from daft_env.errors import BackendError


class SceneViews:
    """One offscreen renderer per camera name, and an optional passive viewer, for one model.

    Args:
        model: the MuJoCo model whose cameras are drawn.
    """

    def __init__(self, model: mujoco.MjModel) -> None:
        self.model = model
        self._renderers: dict[str, mujoco.Renderer] = {}
        self._viewer: Any = None

    def frame(self, data: mujoco.MjData, camera: str, shape: tuple[int, int, int]) -> np.ndarray:
        """An RGB frame of ``shape`` (H, W, 3) from ``camera`` (a copy, safe to keep)."""
        renderer = self._renderers.get(camera)
        if renderer is None:
            try:
                renderer = mujoco.Renderer(self.model, shape[0], shape[1])
            except Exception as exc:  # GL back-ends fail with many exception types
                raise BackendError(
                    f"could not create a MuJoCo renderer ({exc}); set MUJOCO_GL=egl (headless) "
                    "or osmesa before importing daft_env, or use obs_mode='state'."
                ) from exc
            self._renderers[camera] = renderer
        renderer.update_scene(data, camera=camera)
        return renderer.render().copy()

    def show(self, data: mujoco.MjData) -> None:
        """Show ``data`` in MuJoCo's passive viewer, opening it on first use (needs a display)."""
        if self._viewer is None:
            if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
                # GLFW would abort the whole process on a headless machine; refuse cleanly.
                raise BackendError(
                    "render_mode='human' needs a display (DISPLAY is not set); use "
                    "render_mode='rgb_array' on a headless machine."
                )
            try:
                import mujoco.viewer

                self._viewer = mujoco.viewer.launch_passive(self.model, data)
            except Exception as exc:
                raise BackendError(
                    f"render_mode='human' needs a display for MuJoCo's viewer ({exc}); "
                    "use render_mode='rgb_array' on a headless machine."
                ) from exc
        self._viewer.sync()

    @property
    def open_renderers(self) -> tuple[str, ...]:
        """Cameras whose renderer currently exists (empty after :meth:`close` or unpickling)."""
        return tuple(self._renderers)

    def close(self) -> None:
        """Free the renderers and the viewer; the next frame creates them again."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None

    def __getstate__(self) -> dict[str, Any]:
        # GL contexts and windows cannot travel; the model can and the rest is rebuilt lazily.
        return {"model": self.model}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model"])


__all__ = ["SceneViews"]
