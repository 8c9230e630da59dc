"""The README's Python snippets run in order, as written, in a fresh directory.

Every fenced ``python`` block of README.md is joined, in order, into one script that runs in a
temporary directory, as a reader pasting the tour into one session would. The only rewrite: on a
line whose comment starts with ``# shrinkable``, each integer literal n becomes max(2, n // 250)
(20 demos -> 2, 2,000 warm-up updates -> 8, 15,000 env steps -> 60), so the tour runs in about a
minute. The real-arm snippet runs against ``daft arm-server --driver mujoco`` started here, with
two small video files as its cameras, through the environment variables the README names.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from support.arm_server import arm_server_process

REPO = Path(__file__).resolve().parents[1]
TOKEN = "readme-test-token"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_INT = re.compile(r"(?<![\w.])\d[\d_]*(?![\w.])")


def readme_blocks() -> list[str]:
    """The README's ``python`` blocks, in order."""
    return _BLOCK.findall((REPO / "README.md").read_text(encoding="utf-8"))


def shrink(line: str) -> str:
    """The README line with its step counts shrunk when it is marked ``# shrinkable``."""
    code, sep, comment = line.partition("#")
    if not sep or not comment.strip().startswith("shrinkable"):
        return line
    small = _INT.sub(lambda m: str(max(2, int(m.group().replace("_", "")) // 250)), code)
    return small + sep + comment


def write_video(path: Path, size: tuple[int, int]) -> Path:
    """A short MJPG video standing in for a camera (frames differ, as a live camera's do)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    for i in range(30):
        frame = np.full((size[1], size[0], 3), (i * 8) % 256, np.uint8)
        writer.write(frame)
    writer.release()
    return path


def test_shrink_rewrites_only_marked_lines():
    assert shrink("agent.learn(total_timesteps=15_000)  # shrinkable; then online") == (
        "agent.learn(total_timesteps=60)  # shrinkable; then online"
    )
    assert shrink("for seed in range(20):  # shrinkable") == "for seed in range(2):  # shrinkable"
    assert shrink("agent.learn(total_timesteps=15_000)") == "agent.learn(total_timesteps=15_000)"
    assert shrink('x = gym.make("BoltPickup-Sim-v0")  # 128x128') == (
        'x = gym.make("BoltPickup-Sim-v0")  # 128x128'
    )


def test_readme_python_snippets_run_in_order(tmp_path):
    blocks = readme_blocks()
    assert len(blocks) >= 5, "the README's tour lost its Python snippets"
    script = "\n".join("\n".join(shrink(line) for line in block.splitlines()) for block in blocks)
    (tmp_path / "readme_tour.py").write_text(script, encoding="utf-8")
    wrist = write_video(tmp_path / "wrist.avi", (80, 60))
    head = write_video(tmp_path / "head.avi", (120, 90))
    with arm_server_process("--driver", "mujoco", token=TOKEN) as (_, port):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAFT_")}
        env.update(
            MUJOCO_GL="egl",
            OMP_NUM_THREADS="1",
            PYTHONPATH=str(REPO),
            DAFT_ARM_ADDRESS=f"tcp://127.0.0.1:{port}",
            DAFT_ARM_TOKEN=TOKEN,
            DAFT_WRIST_CAMERA=str(wrist),
            DAFT_HEAD_CAMERA=str(head),
        )
        proc = subprocess.run(
            [sys.executable, "readme_tour.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert proc.returncode == 0, f"the README tour failed:\n{proc.stdout}\n{proc.stderr}"
    # what the tour says it writes
    assert "2 pickup demos" in proc.stdout
    assert (tmp_path / "agent.zip").is_file()
    store_files = list((tmp_path / "data" / "store").rglob("*.h5"))
    assert len(store_files) > 2, "the agent's online episodes did not reach the store"
    assert any((tmp_path / "runs" / "tb").rglob("events.out.tfevents*"))
