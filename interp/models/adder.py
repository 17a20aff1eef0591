"""A model organism for CI: a small Qwen2 model, trained from scratch, that adds four-digit numbers.

The shipped model (`interp/assets/adder4`, trained by `scripts/train_adder.py`) reads the prompt
`ADDER_PROMPT.format(a=a, b=b)` with `a, b` in 1000..9999 and greedily writes the decimal sum,
most significant digit first, then `<eos>`. The tokenizer is character level and adds no special
tokens, so token positions are fixed: digits of `a` at 0-3, `+` at 4, `b` at 5-8, `=` at 9 and the
answer from 10 on. This module holds what the training script and the tests share: the prompt
format, the tokenizer, problem sampling, the teacher-forced greedy check and the loader.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

ADDER_PROMPT = "{a}+{b}="
ADDER_NAME = "adder4"
ADDER_CHARACTERS = list("0123456789+= \n")
ADDER_SPECIAL_TOKENS = ["<pad>", "<eos>"]
DEFAULT_ADDER_PATH = Path(__file__).resolve().parents[1] / "assets" / ADDER_NAME


def adder_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level fast tokenizer over digits, `+`, `=`, space and newline, plus pad/eos."""
    vocab = {tok: i for i, tok in enumerate(ADDER_SPECIAL_TOKENS + ADDER_CHARACTERS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern=Regex(r".|\n"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", padding_side="right"
    )
    tokenizer.init_kwargs["name_or_path"] = f"interp-{ADDER_NAME}"
    return tokenizer


def adder_prompt(a: int, b: int) -> str:
    """The prompt for `a + b`, in the one format the organism was trained on."""
    return ADDER_PROMPT.format(a=a, b=b)


def adder_answer(a: int, b: int) -> str:
    """The gold completion text for `a + b` (plain order, most significant digit first)."""
    return str(a + b)


def sample_problems(n: int, seed: int, low: int = 1000, high: int = 9999) -> list[tuple[int, int]]:
    """`n` seeded pairs `(a, b)` drawn uniformly from `low..high`, so evaluations are reproducible."""
    generator = torch.Generator().manual_seed(seed)
    pairs = torch.randint(low, high + 1, (n, 2), generator=generator)
    return [(int(a), int(b)) for a, b in pairs.tolist()]


def teacher_forced_batch(
    tokenizer: PreTrainedTokenizerFast, problems: list[tuple[int, int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `prompt + answer + <eos>` ids and a mask of the positions whose next token is
    an answer token (digits and `<eos>`), for a one-pass greedy check."""
    rows = []
    masks = []
    for a, b in problems:
        prompt = tokenizer(adder_prompt(a, b), add_special_tokens=False)["input_ids"]
        answer = tokenizer(adder_answer(a, b), add_special_tokens=False)["input_ids"]
        answer = answer + [tokenizer.eos_token_id]
        rows.append(prompt + answer)
        mask = [False] * len(rows[-1])
        for i in range(len(prompt) - 1, len(prompt) - 1 + len(answer)):
            mask[i] = True
        masks.append(mask)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    predicts_answer = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (row, mask) in enumerate(zip(rows, masks, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        predicts_answer[i, : len(mask)] = torch.tensor(mask)
    return ids, predicts_answer


@torch.no_grad()
def teacher_forced_accuracy(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    tokenizer: PreTrainedTokenizerFast,
    problems: list[tuple[int, int]],
    batch_size: int = 500,
) -> float:
    """Fraction of problems whose every answer token (and `<eos>`) is the argmax given the gold
    prefix; this equals exact-match greedy decoding but takes one forward pass per batch."""
    correct = 0
    for start in range(0, len(problems), batch_size):
        ids, predicts_answer = teacher_forced_batch(tokenizer, problems[start : start + batch_size])
        logits = logits_fn(ids)
        hits = logits[:, :-1].argmax(-1) == ids[:, 1:]
        ok = (hits | ~predicts_answer[:, :-1]).all(dim=1)
        correct += int(ok.sum())
    return correct / len(problems)


def load_adder(
    path: str | Path | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32
):
    """Boot the shipped adder organism as an eval-mode TransformerBridge named `adder4`."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM

    folder = Path(path) if path is not None else DEFAULT_ADDER_PATH
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"no adder organism at {folder}; train it with "
            f"`python scripts/train_adder.py --seed 0 --out {folder}`"
        )
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    tokenizer.init_kwargs["name_or_path"] = f"interp-{ADDER_NAME}"
    hf_model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=dtype, attn_implementation="eager"
    )
    hf_model = hf_model.to(device).eval()
    bridge = TransformerBridge.boot_transformers(
        f"interp-{ADDER_NAME}",
        hf_model=hf_model,
        tokenizer=tokenizer,
        dtype=dtype,
        device=str(device),  # without it TransformerLens names cuda whenever one exists
    )
    bridge.eval()
    bridge.interp_name = ADDER_NAME
    return bridge
