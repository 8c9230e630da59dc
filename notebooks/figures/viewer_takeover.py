"""The README's viewer screenshot: an assemble takeover, the operator's reason and command on screen.

Records 15 steps of assemble (robot 0, both cameras) where a policy that drifts 0.7 action units to
the left of the scripted plan is taken over by the simulated operator (target rate 0.6, so its
takeovers last long enough for the first talk-and-tweak label to become final, J - 1 = 4 steps
later, while it still holds control), then has the Rerun viewer itself render the recording
headless and save a screenshot (the viewer follows the last step, 14: a takeover in progress):

    xvfb-run -a -s "-screen 0 1600x1000x24" python notebooks/figures/viewer_takeover.py

(writes viewer_takeover.png beside this file). Measured on the 2-core CI machine:
the viewer runs under Xvfb on Mesa's llvmpipe (Vulkan), but its window presented only black
frames to the X server, so the screenshot comes from the viewer's own ``--screenshot-to``,
which renders the same viewer and saves the frame.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np

import daft_env  # noqa: F401
from daft_env.display import DisplayWrapper, StepStream
from daft_env.experts import make_expert
from daft_env.operator import SimulatedOperator
from daft_env.wrappers import InterventionWrapper

HERE = Path(__file__).resolve().parent
RRD = Path(tempfile.mkdtemp()) / "viewer_takeover.rrd"
PNG = HERE / "viewer_takeover.png"
LAST_STEP = 14

base = gym.make("BoltAssemble-Sim-v0", obs_mode="pixels+state")
env = InterventionWrapper(base, SimulatedOperator(base, target_rate=0.6, max_credit=40, seed=1))
stream = StepStream.open(record_path=RRD)
shown = DisplayWrapper(env, stream, robot="0", label="a policy drifting left, the simulated operator")
plan = make_expert("multi", noise=0.2)
plan.reset(0)
shown.reset(seed=0)
for t in range(LAST_STEP + 1):
    action = plan.act(base.unwrapped.privileged_state())
    action[1] += 0.7  # the policy's bias: 1.4 cm per step to the left
    _, _, _, _, info = shown.step(np.clip(action, -1, 1))
    print(t, "operator" if info["intervened"] else "policy", env.device.last_reason)
stream.close()
env.close()
viewer = Path(sys.executable).parent / "rerun"
cmd = [str(viewer), "--port", "9877", "--window-size", "1600x1000", "--screenshot-to", str(PNG)]
subprocess.run(cmd + [str(RRD)], check=True, timeout=300)
shot = cv2.imread(str(PNG))  # saved at the display's scale (2x): halve it for the README
cv2.imwrite(str(PNG), cv2.resize(shot, (1600, 1000), interpolation=cv2.INTER_AREA))
print(f"screenshot: {PNG}")
