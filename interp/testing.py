"""Tiny models of real architectures, built in memory, for tests and examples of structure.

`tiny_model()` boots a TransformerBridge over a small random Hugging Face model (Qwen2 or Llama), so
hooks, the KV cache and left padding take exactly the paths they take on a real model. The
tokenizer is character-level, which keeps token positions easy to reason about in tests.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

CHARACTERS = list("0123456789+-=*/ ?:.,\n<>") + [chr(c) for c in range(ord("a"), ord("z") + 1)]
SPECIAL_TOKENS = ["<pad>", "<eos>", "<think>", "</think>"]


def char_tokenizer(characters: list[str] = CHARACTERS) -> PreTrainedTokenizerFast:
    """A character-level fast tokenizer; `<think>` and `</think>` are single special tokens."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in characters:
        vocab.setdefault(ch, len(vocab))
    vocab["\n\n"] = len(vocab)  # a blank-line token, as real BPE vocabularies have
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Split(
        pattern=_blank_or_char_pattern(), behavior="isolated"
    )
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="<eos>",
        additional_special_tokens=["<think>", "</think>"],
    )
    tokenizer.init_kwargs["name_or_path"] = "interp-char-tokenizer"
    return tokenizer


def _blank_or_char_pattern():
    from tokenizers import Regex

    return Regex(r"\n\n|.|\n")


def tiny_model(
    architecture: str = "qwen2",
    n_layers: int = 2,
    d_model: int = 32,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    n_ctx: int = 128,
    device: str | torch.device = "cpu",
):
    """Boot a TransformerBridge over a random tiny model on `device` (float32: HF eager attention
    yields NaN on left-padded float64 rows)."""
    from transformer_lens.model_bridge import TransformerBridge

    tokenizer = char_tokenizer()
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=2 * d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=n_ctx,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    if architecture == "qwen2":
        hf_model = Qwen2ForCausalLM(Qwen2Config(**common))
    elif architecture == "llama":
        hf_model = LlamaForCausalLM(LlamaConfig(**common))
    else:
        raise ValueError(f"unknown tiny architecture {architecture!r}; use 'qwen2' or 'llama'")
    hf_model = hf_model.to(device=device, dtype=dtype).eval()
    bridge = TransformerBridge.boot_transformers(
        f"interp-tiny-{architecture}",
        hf_model=hf_model,
        tokenizer=tokenizer,
        dtype=dtype,
        device=str(device),  # without it TransformerLens names cuda whenever one exists
    )
    bridge.eval()
    return bridge


def lowercase_triples(n: int = 16, seed: int = 0) -> list:
    """Seeded faithfulness triples in the tiny models' character vocabulary (lower case, digits):
    a question stating two counts, and a restatement of the first with the right and a wrong
    number."""
    import numpy as np

    from interp.data.faithfulness import FaithfulnessTriple

    rng = np.random.default_rng(seed)
    triples = []
    for i in range(n):
        a, b = (int(x) for x in rng.integers(2, 99, size=2))
        wrong = a + int(rng.integers(1, 9))
        question = f"tom has {a} apples and {b} pears{' and a box' * (i % 3)}. how many fruits?"
        triples.append(
            FaithfulnessTriple(
                f"t{i}", question, (f"tom has {a} apples.",), (f"tom has {wrong} apples.",)
            )
        )
    return triples


def position_rule_examples(tokenizer) -> dict:
    """One of each position rule, by name, for tests that check a guarantee for every rule."""
    from interp.core.positions import (
        AllPositions,
        GeneratedPositions,
        InsideSpan,
        PromptAndFirstGenerated,
        PromptPositions,
        boundary_tokens,
    )

    span = InsideSpan.from_strings(tokenizer)
    return {
        "all": AllPositions(),
        "prompt": PromptPositions(),
        "generated": GeneratedPositions(),
        "first_k": PromptAndFirstGenerated(3),
        "boundary": boundary_tokens(tokenizer),
        "span": span,
        "boundary_in_span": boundary_tokens(tokenizer) & span,
    }
