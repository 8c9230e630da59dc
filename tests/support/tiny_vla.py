"""Tiny, randomly initialised VLA checkpoints written to a directory (no download), for tests.

``save_tiny_smolvla(dir)`` writes an Idefics3 (SmolVLM) model and ``save_tiny_vilt(dir)`` a ViLT
model, each with a word-level tokenizer over DAFT's instruction words, as ``save_pretrained``
would for a real checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces

WORDS = "place the bolt upright pick up assemble".split()


def _tokenizer(cls_sep: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if cls_sep:  # BERT-style [CLS] first: ViLT's readout token
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        padding_side="right",
    )


def save_tiny_smolvla(path: Path, seed: int = 0, image_size: int = 16) -> Path:
    """A 2-layer Idefics3 with 2 key-value heads of size 8 (features_dim = 2 * 2 * 8 = 32)."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    torch.manual_seed(seed)
    cfg = Idefics3Config(
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 4,
        },
        text_config={
            "model_type": "llama",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 16,
            "max_position_embeddings": 128,
        },
        scale_factor=2,
        image_token_id=15,
    )
    Idefics3ForConditionalGeneration(cfg).eval().save_pretrained(path)
    _tokenizer(cls_sep=False).save_pretrained(path)
    return Path(path)


def save_tiny_vilt(path: Path, seed: int = 0) -> Path:
    """A 2-layer ViLT with hidden size 16 (features_dim = 16 per camera)."""
    from transformers import ViltConfig, ViltModel

    torch.manual_seed(seed)
    cfg = ViltConfig(
        vocab_size=16,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=32,
        patch_size=8,
        max_position_embeddings=16,
        modality_type_vocab_size=3,  # text + two cameras
    )
    ViltModel(cfg).eval().save_pretrained(path)
    _tokenizer(cls_sep=True).save_pretrained(path)
    return Path(path)


def pixel_space(n_tasks: int = 3, size: int = 24) -> spaces.Dict:
    """A BoltEnv-like pixel observation space with small cameras."""
    return spaces.Dict(
        {
            "wrist_rgb": spaces.Box(0, 255, (size, size, 3), np.uint8),
            "head_rgb": spaces.Box(0, 255, (2 * size, 2 * size, 3), np.uint8),
            "gripper": spaces.Box(-1, 1, (2,), np.float32),
            "task_id": spaces.Discrete(n_tasks),
        }
    )


def random_obs(space: spaces.Dict, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """N stacked observations drawn from ``space``."""
    space.seed(seed)
    samples = [space.sample() for _ in range(n)]
    return {k: np.stack([np.asarray(s[k]) for s in samples]) for k in space.spaces}


def pixel_episode(task: str = "pickup", t_len: int = 4, seed: int = 0, kind: str = "demos"):
    """A small pixel episode (T steps) with one takeover and one refinement command."""
    from daft_env.episode import NULL_COMMAND, Episode
    from daft_env.tasks import get_task

    spec = get_task(task)
    rng = np.random.default_rng(seed)
    obs = random_obs(pixel_space(), t_len + 1, seed)
    obs["task_id"] = np.full(t_len + 1, spec.task_id, np.int64)
    intervened = np.zeros(t_len, bool)
    intervened[1:3] = True
    commands = [NULL_COMMAND] * t_len
    commands[1] = "move left and up"
    rewards = np.zeros(t_len, np.float32)
    rewards[-1] = 1.0
    terminated = np.zeros(t_len, bool)
    terminated[-1] = True
    return Episode(
        task=spec.name,
        task_id=spec.task_id,
        instruction=spec.instruction,
        kind=kind,
        observations=obs,
        actions=rng.uniform(-1, 1, (t_len, 7)).astype(np.float32),
        policy_actions=rng.uniform(-1, 1, (t_len, 7)).astype(np.float32),
        intervened=intervened,
        rewards=rewards,
        terminated=terminated,
        refinement_commands=commands,
        success=True,
        metadata={"seed": seed},
    )
