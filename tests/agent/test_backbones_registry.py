"""One registry of backbones by name (daft_agent.backbones.registry)."""

import subprocess
import sys

import pytest
import torch
from gymnasium import spaces

from daft_agent.backbones.registry import (
    BACKBONES,
    backbone_class,
    frozen_backbones,
    make_backbone,
    register_backbone,
)
from daft_agent.backbones.trainable import StateBackbone
from hardware.errors import ConfigError

SPACE = spaces.Dict({"state": spaces.Box(-1, 1, (4,)), "gripper": spaces.Box(0, 1, (1,))})


def test_built_in_backbones_are_found_by_name():
    assert {"state", "pixels", "embedding", "generic", "smolvla", "readout"} <= set(
        BACKBONES.names()
    )
    assert isinstance(make_backbone("state", SPACE), StateBackbone)
    assert backbone_class("state") is StateBackbone
    assert frozen_backbones() == ["readout", "smolvla"]  # their features are cached


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown backbone 'stat'; valid names: .*state"):
        make_backbone("stat", SPACE)
    with pytest.raises(ConfigError, match="valid names"):
        backbone_class("stat")


def test_a_users_backbone_is_one_registered_class_and_a_clash_is_an_error():
    name = "test-constant"

    @register_backbone(name)
    class Constant(torch.nn.Module):
        frozen = False
        features_dim = 2

        def __init__(self, observation_space):
            super().__init__()

        def forward(self, obs):
            return torch.zeros(len(obs["state"]), 2)

    assert make_backbone(name, SPACE)({"state": torch.zeros(3, 4)}).shape == (3, 2)
    with pytest.raises(ConfigError, match="already registered"):
        register_backbone("state")(Constant)


def test_the_registry_imports_no_backbone_module():
    code = (
        "import sys, daft_agent.backbones.registry as r; r.BACKBONES.names(); "
        "print(sorted(m for m in sys.modules if m.startswith('daft_agent.backbones.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['daft_agent.backbones.registry']"
