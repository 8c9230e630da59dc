"""Refinement-command encoders, l_rf -> vector (daft_agent.commands)."""

import pytest
import torch

from daft_agent.commands import (
    T5CommandEncoder,
    VocabularyCommandEncoder,
    command_from_signs,
    parse_command,
)
from daft_agent.errors import AgentConfigError, UnknownCommandError


@pytest.mark.parametrize(
    "phrase, signs",
    [
        ("move right and forward", [1, -1, 0]),
        ("move forward and right", [1, -1, 0]),
        ("move up", [0, 0, 1]),
        ("move down and backward and left", [-1, 1, -1]),
        ("move to the left", [0, 1, 0]),
        ("[null]", [0, 0, 0]),
        (None, [0, 0, 0]),
    ],
)
def test_parse_command_is_order_independent(phrase, signs):
    assert parse_command(phrase).tolist() == signs


def test_command_round_trip_and_errors():
    for signs in ([1, 0, 0], [0, -1, 1], [-1, 1, -1], [0, 0, 0]):
        assert parse_command(command_from_signs(signs)).tolist() == signs
    with pytest.raises(UnknownCommandError, match="'sideways'.*valid words are"):
        parse_command("move sideways")
    with pytest.raises(UnknownCommandError, match="twice"):
        parse_command("move left and right")
    enc = VocabularyCommandEncoder()
    with pytest.raises(UnknownCommandError):
        enc.encode(["rotate clockwise"])
    lenient = VocabularyCommandEncoder(on_unknown="null")
    with pytest.warns(UserWarning, match="unknown refinement command"):
        v = lenient.encode(["rotate clockwise"])
    assert v.tolist() == [[0, 0, 0, 1]]
    assert enc.encode(["move left", "[null]"]).tolist() == [[0, 1, 0, 0], [0, 0, 0, 1]]
    with pytest.raises(AgentConfigError):
        VocabularyCommandEncoder(on_unknown="ignore")


def test_t5_command_encoder_from_a_local_tiny_model(tmp_path):
    import transformers  # a dev requirement: the T5 encoder must be tested, not skipped
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = [
        "<pad>",
        "</s>",
        "<unk>",
        "[null]",
        "move",
        "and",
        "left",
        "right",
        "forward",
        "backward",
        "up",
        "down",
    ]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(tmp_path)
    cfg = transformers.T5Config(
        vocab_size=len(words),
        d_model=16,
        d_kv=4,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    transformers.T5EncoderModel(cfg).save_pretrained(tmp_path)

    enc = T5CommandEncoder(str(tmp_path))
    assert enc.dim == 16
    v = enc.encode(["move left", "move right", "[null]", None])
    assert v.shape == (4, 16)
    assert not torch.allclose(v[0], v[1])
    assert torch.allclose(v[2], v[3])  # None means [null]
    with pytest.raises(AgentConfigError, match="no T5 model"):
        T5CommandEncoder(str(tmp_path / "missing"))


# ---------------------------------------------------------------- backbones
