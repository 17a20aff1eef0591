"""The whole SEAL study from the command line on a model in a local folder (as for
DeepSeek-R1-Distill-Qwen-1.5B: `python -m interp seal --model /path/to/folder`).

The folder holds a tiny random Qwen2 model saved with `save_pretrained` and a character tokenizer
whose chat template ends the prompt with "<think>\\n", as R1's does. Its small vocabulary makes
blank lines frequent when sampling; the keyword lists are parameters, widened here so that random
text holds every class (SEAL's own keywords never occur in it).
"""

import json

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from interp.cli import main
from interp.storage import read_record
from interp.testing import char_tokenizer

LOGIT_SCALE = 3.0
TEMPLATE = (
    "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<think>\n{% endif %}"
)


@pytest.fixture(scope="module")
def reasoning_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_reasoner")
    tokenizer = char_tokenizer(list("abcw 0123456789\n"))
    tokenizer.chat_template = TEMPLATE
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(LOGIT_SCALE)  # peakier next-token distributions than random init
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


ARGS = [
    "--datasets", "gsm8k,math500",
    "--n-extract", "6",
    "--n-eval", "2",
    "--max-new-tokens", "48",
    "--batch-size", "12",
    "--sample",
    "--reflection-prefixes", "a,b,c,w",
    "--transition-prefixes", "0,1,2,3",
    "--penalty-strings", "w",
    "--layers", "0,1",
    "--tsne-layers", "1",
    "--steer-layers", "1",
    "--alphas", "1,4",
    "--main-layer", "1",
    "--main-alpha", "4",
    "--normalization", "unit",
]  # fmt: skip


@pytest.mark.slow
def test_seal_command_runs_every_step_from_a_local_folder(reasoning_folder, tmp_path, capsys):
    out = tmp_path / "seal"
    assert main(["thought-states", "--model", str(reasoning_folder), "--out", str(out)]) == 2
    assert "run `python -m interp thoughts" in capsys.readouterr().err

    assert main(["seal", "--model", str(reasoning_folder), "--out", str(out), *ARGS]) == 0
    printed = capsys.readouterr().out
    assert "span: think (<think> is one token" in printed

    splits = json.loads((out / "splits.json").read_text())
    assert len(splits["A"]) == 12 and len(splits["B"]) == 4
    assert not set(splits["A"]) & set(splits["B"])
    stats = read_record(out / "thought_stats", "ThoughtStatsResult")["config"]
    assert stats["span"] == "think"
    assert stats["keywords"]["reflection_prefixes"] == ["a", "b", "c", "w"]
    counts = read_record(out / "thought_states", "ThoughtStatesResult")["meta"]["counts"]
    assert counts["execution"] > 0 and counts["reflection"] + counts["transition"] > 0
    vector = read_record(out / "vectors" / "pooled", "steering_vector")
    assert vector["meta"]["description"]["sign"] == "mean(execution) - mean(reflection+transition)"
    assert vector["config"]["pooling"] == "samples" and vector["config"]["normalization"] == "unit"
    assert vector["config"]["layers"] == [0, 1]
    tables = read_record(out / "steering", "SteeringResult")["tables"]
    arms = {row["arm"]: row for row in tables["arms"]}
    assert list(arms) == ["base", "penalty", "steer_pooled_L1_a1", "steer_pooled_L1_a4"]
    assert arms["base"]["outputs_changed"] == 0
    assert arms["steer_pooled_L1_a4"]["outputs_changed"] > 0  # same sampling seeds, other logits
    assert (out / "steering.png").exists() or (out / "steering.html").exists()

    # a second run reuses everything on disk and prints the same table
    assert main(["seal", "--model", str(reasoning_folder), "--out", str(out), *ARGS]) == 0
    again = capsys.readouterr().out
    assert "already holds this result" in again
    assert printed.split("| arm |")[1] == again.split("| arm |")[1]
