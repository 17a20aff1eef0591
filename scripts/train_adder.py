"""Train the four-digit-addition model organism (`interp/assets/adder4`) from scratch on the CPU.

The model is a small Qwen2 decoder trained on `"{a}+{b}="` -> the decimal sum, most significant
digit first, then `<eos>`; only the answer tokens enter the loss. Plain-order addition needs the
carry to be looked ahead across all lower digits, so part of each batch forces runs of digit pairs
that sum to 9 (long carry chains are rare under uniform sampling), and a smaller part uses 1-3 digit
operands, which teaches digit alignment early. The held-out problems are excluded from training.

Reproduce: python scripts/train_adder.py --seed 0 --out interp/assets/adder4
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Qwen2Config, Qwen2ForCausalLM

from interp.models.adder import (
    ADDER_NAME,
    adder_answer,
    adder_prompt,
    adder_tokenizer,
    sample_problems,
    teacher_forced_accuracy,
)

HELD_OUT_SEED = 1_000_003  # the held-out set is the same for every training seed
HELD_OUT_SIZE = 1000
GENERATE_CHECK_SIZE = 200


@dataclass
class TrainConfig:
    """Every knob of a run; saved to training.json so a run can be reproduced exactly."""

    seed: int = 0
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    min_lr_frac: float = 0.02
    warmup: int = 200
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_mlp: int = 512
    hard_frac: float = 0.3
    short_frac: float = 0.1
    eval_every: int = 250
    threads: int = 2


def parse_args() -> tuple[TrainConfig, Path]:
    """Command-line flags for every field of TrainConfig, plus the output folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("interp/assets") / ADDER_NAME)
    for name, default in asdict(TrainConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    args = vars(parser.parse_args())
    out = args.pop("out")
    return TrainConfig(**args), out


class ProblemSampler:
    """Seeded training problems: uniform 4-digit pairs, carry-chain-heavy pairs and short pairs."""

    def __init__(self, config: TrainConfig, excluded: set[tuple[int, int]]) -> None:
        self.rng = random.Random(config.seed)
        self.config = config
        self.excluded = excluded

    def _uniform(self, digits_a: int, digits_b: int) -> tuple[int, int]:
        a = self.rng.randint(10 ** (digits_a - 1) if digits_a > 1 else 0, 10**digits_a - 1)
        b = self.rng.randint(10 ** (digits_b - 1) if digits_b > 1 else 0, 10**digits_b - 1)
        return a, b

    def _carry_chain(self) -> tuple[int, int]:
        """A 4-digit pair where each column sums to 9 with probability 1/2, so carries ripple."""
        while True:
            da = [self.rng.randint(1, 9)] + [self.rng.randint(0, 9) for _ in range(3)]
            db = []
            for i, d in enumerate(da):
                if self.rng.random() < 0.5 and not (i == 0 and d == 9):
                    db.append(9 - d)
                else:
                    db.append(self.rng.randint(1 if i == 0 else 0, 9))
            a = int("".join(map(str, da)))
            b = int("".join(map(str, db)))
            return (a, b) if self.rng.random() < 0.5 else (b, a)

    def draw(self) -> tuple[int, int]:
        """One training problem, never one of the held-out pairs."""
        while True:
            u = self.rng.random()
            if u < self.config.short_frac:
                pair = self._uniform(self.rng.randint(1, 4), self.rng.randint(1, 4))
            elif u < self.config.short_frac + self.config.hard_frac:
                pair = self._carry_chain()
            else:
                pair = self._uniform(4, 4)
            if pair not in self.excluded:
                return pair


class Encoder:
    """Turns problems into right-padded id rows and answer-only loss targets, without the
    per-call overhead of the HF tokenizer (checked against it once at start-up)."""

    def __init__(self) -> None:
        tokenizer = adder_tokenizer()
        self.ids = {ch: tokenizer.convert_tokens_to_ids(ch) for ch in "0123456789+="}
        self.pad = tokenizer.pad_token_id
        self.eos = tokenizer.eos_token_id
        text = adder_prompt(1234, 987) + adder_answer(1234, 987)
        expected = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert [self.ids[c] for c in text] == expected, "encoder disagrees with the tokenizer"

    def batch(self, problems: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (all but the last token) and targets (-100 outside the answer and `<eos>`)."""
        rows, targets = [], []
        for a, b in problems:
            prompt = [self.ids[c] for c in adder_prompt(a, b)]
            answer = [self.ids[c] for c in adder_answer(a, b)] + [self.eos]
            seq = prompt + answer
            rows.append(seq[:-1])
            targets.append([-100] * (len(prompt) - 1) + answer)
        width = max(len(r) for r in rows)
        inputs = torch.tensor([r + [self.pad] * (width - len(r)) for r in rows])
        labels = torch.tensor([t + [-100] * (width - len(t)) for t in targets])
        return inputs, labels


def build_model(config: TrainConfig, vocab_size: int, pad_id: int, eos_id: int) -> Qwen2ForCausalLM:
    """A freshly initialised small Qwen2 decoder with untied embeddings."""
    hf_config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.d_mlp,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_heads,
        max_position_embeddings=32,
        tie_word_embeddings=False,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=eos_id,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        attn_implementation="eager",
    )
    return Qwen2ForCausalLM(hf_config)


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to `min_lr_frac` of the peak."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * (config.min_lr_frac + (1 - config.min_lr_frac) * cosine)


def optimizer_for(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (not norms or biases)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98), eps=1e-8)


@torch.no_grad()
def generate_accuracy(
    model: Qwen2ForCausalLM, problems: list[tuple[int, int]]
) -> tuple[float, list[bool]]:
    """Exact-match accuracy of real autoregressive greedy decoding with `generate`."""
    tokenizer = adder_tokenizer()
    prompts = [adder_prompt(a, b) for a, b in problems]
    batch = tokenizer(prompts, return_tensors="pt", add_special_tokens=False)  # equal lengths
    out = model.generate(
        **batch,
        do_sample=False,
        max_new_tokens=7,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    new = out[:, batch["input_ids"].shape[1] :]
    hits = []
    for row, (a, b) in zip(new.tolist(), problems, strict=True):
        expected = tokenizer(adder_answer(a, b), add_special_tokens=False)["input_ids"]
        hits.append(row[: len(expected) + 1] == expected + [tokenizer.eos_token_id])
    return sum(hits) / len(hits), hits


def main() -> None:
    """Train, evaluate on the held-out set, cross-check with `generate`, and save."""
    config, out = parse_args()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True)

    tokenizer = adder_tokenizer()
    held_out = sample_problems(HELD_OUT_SIZE, seed=HELD_OUT_SEED)
    sampler = ProblemSampler(config, excluded=set(held_out))
    encoder = Encoder()
    model = build_model(config, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params / 1e6:.2f}M parameters; {config}", flush=True)
    optimizer = optimizer_for(model, config)

    def logits_fn(ids: torch.Tensor) -> torch.Tensor:
        return model(input_ids=ids).logits

    history = []
    start = time.perf_counter()
    running = 0.0
    for step in range(config.steps):
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        inputs, labels = encoder.batch([sampler.draw() for _ in range(config.batch_size)])
        logits = model(input_ids=inputs).logits
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            model.eval()
            acc = teacher_forced_accuracy(logits_fn, tokenizer, held_out)
            elapsed = time.perf_counter() - start
            history.append({"step": step + 1, "loss": running, "held_out_acc": acc})
            print(
                f"step {step + 1:6d}  loss {running:.4f}  held-out {acc:.4f}  {elapsed:6.0f}s",
                flush=True,
            )
    train_seconds = time.perf_counter() - start

    model.eval()
    teacher_forced = teacher_forced_accuracy(logits_fn, tokenizer, held_out)
    check = held_out[:GENERATE_CHECK_SIZE]
    generated, generated_hits = generate_accuracy(model, check)
    forced_hits = [teacher_forced_accuracy(logits_fn, tokenizer, [p]) == 1.0 for p in check]
    agree = generated_hits == forced_hits
    print(
        f"held-out teacher-forced {teacher_forced:.4f}; generate on {len(check)}: {generated:.4f}; "
        f"per-problem agreement: {agree}",
        flush=True,
    )
    if not agree:
        raise SystemExit("teacher-forced and generate disagree; not saving")

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    record = {
        "task": "four-digit addition, plain order: '{a}+{b}=' -> str(a + b) + '<eos>'",
        "seed": config.seed,
        "steps": config.steps,
        "hyperparameters": asdict(config),
        "n_parameters": n_params,
        "held_out": {"seed": HELD_OUT_SEED, "size": HELD_OUT_SIZE, "range": [1000, 9999]},
        "held_out_greedy_accuracy": teacher_forced,
        "generate_check": {"size": len(check), "accuracy": generated, "agrees": agree},
        "train_wall_seconds": round(train_seconds, 1),
        "torch_version": torch.__version__,
        "history": history,
        "command": f"python scripts/train_adder.py --seed {config.seed} --out {out}",
    }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved to {out}", flush=True)


if __name__ == "__main__":
    main()
