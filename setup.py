"""DAFT: Dual-Actor Fine-Tuning of VLA policies with talk-and-tweak human-in-the-loop RL."""

from setuptools import find_packages, setup

# torch is pinned to the CPU build the Makefile installs first; a looser pin here would make pip
# resolve the newest CUDA build (several GB). Users with a GPU install their torch first.
TORCH = "torch==2.13.0"

setup(
    name="daft",
    version="0.1.0",
    description="Dual-Actor Fine-Tuning: talk-and-tweak human-in-the-loop RL for VLA policies",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # sim_assets/ holds MJCF data and no code; it ships as a data-only package so that
    # importlib.resources finds it in editable and regular installs alike.
    packages=find_packages(include=["daft_env*", "daft_agent*", "hardware*"]) + ["sim_assets"],
    package_data={"sim_assets": ["*.xml", "**/*.xml", "**/*.png"]},
    install_requires=[
        "numpy>=1.26",
        "gymnasium>=1.0",
        "mujoco>=3.2",
        "h5py>=3.10",
        "pyzmq>=25",
        "msgpack>=1.0",
        "stable-baselines3>=2.3",
        TORCH,
        "tensorboard>=2.15",
        "tqdm>=4.60",
        "opencv-python-headless>=4.8",
        "pyyaml>=6",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-timeout>=2.2",
            "ruff>=0.5",
            "nbclient>=0.10",
            "nbformat>=5.9",
            "ipykernel>=6.29",
            "matplotlib>=3.8",
            # the T5 command encoder and the VLA backbones are tested with tiny configs built in
            # code (no download)
            "transformers>=4.56",
            "sentencepiece>=0.2",
            # LeRobotDataset export/import tests (daft_env/lerobot.py)
            "pyarrow>=14",
            # the live view and recordings (daft_env/display/) and AV1 video
            # (daft_env/videoio.py); floors are the versions tested
            "rerun-sdk>=0.41",
            "av>=18.1",
            # the fleet tests start robot actors on a local Ray (daft_agent/fleet/); the
            # experiment grid (daft experiment table1) is a Ray Tune experiment
            "ray[tune]>=2.9",
        ],
        "real": ["xarm-python-sdk>=1.14", "pyspacemouse>=1.1", "pyrealsense2>=2.55"],
        # smolvla and readout backbones load with dtype=..., which transformers takes from 4.56
        "vla": ["transformers>=4.56", "sentencepiece>=0.2"],
        "lerobot": ["pyarrow>=14", "av>=18.1"],
        # --display / --record / daft view (Rerun) and AV1 video; the arm server needs neither
        "viz": ["rerun-sdk>=0.41", "av>=18.1"],
        "distributed": ["ray[tune]>=2.9"],
    },
    entry_points={"console_scripts": ["daft=daft_agent.cli:main"]},
)
