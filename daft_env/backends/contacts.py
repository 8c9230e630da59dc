"""Contact forces between the robot and the scene, for the simulated operator's contact rule.

The robot is every geom whose body shares the TCP body's kinematic root; the scene is every other
geom except the bolts' (a bolt in the gripper is held, not collided with). The force of one
contact is its normal component from ``mujoco.mj_contactForce`` (the first entry, in the contact
frame, newtons).
"""

from __future__ import annotations

from collections.abc import Iterable

import mujoco
import numpy as np


def contact_groups(
    model: mujoco.MjModel, tcp_site: int, bolt_bodies: Iterable[int]
) -> tuple[frozenset[int], frozenset[int]]:
    """(robot geoms, scene geoms) of ``model``: looked up once, when a backend is built."""
    root = int(model.body_rootid[int(model.site_bodyid[tcp_site])])
    bolts = {int(b) for b in bolt_bodies}
    robot, scene = set(), set()
    for g in range(model.ngeom):
        body = int(model.geom_bodyid[g])
        if body in bolts:
            continue
        (robot if root > 0 and int(model.body_rootid[body]) == root else scene).add(g)
    return frozenset(robot), frozenset(scene)


def max_normal_force(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    robot: frozenset[int],
    scene: frozenset[int],
) -> float:
    """Largest normal force (N) of any robot-scene contact now; 0.0 when there is none."""
    ncon = data.ncon
    if ncon == 0 or not robot:
        return 0.0
    worst = 0.0
    force = np.zeros(6)
    g1 = data.contact.geom1[:ncon].tolist()
    g2 = data.contact.geom2[:ncon].tolist()
    for i, (a, b) in enumerate(zip(g1, g2, strict=True)):
        if (a in robot and b in scene) or (b in robot and a in scene):
            mujoco.mj_contactForce(model, data, i, force)
            worst = max(worst, abs(float(force[0])))
    return worst


__all__ = ["contact_groups", "max_normal_force"]
