"""The ReFT study's budget: measured step and decoding times, and the hours each phase should take.

    timing = measure(model, pairs, settings)         # a few RED steps and a batch of decoding
    budget = estimate(timing, config, counts)        # steps, problems, tokens and hours per phase

Every estimate is (tokens to process) x (measured seconds per token): training tokens are counted
exactly from the encoded pairs; decoded tokens assume the mean answer is `expected_answer_share`
of the token cap (qwen2.5-coder-0.5b-instruct: 279 of 384, 0.73, on 100 GSM8K problems); forward-only
work (probes, pushes, projections, faithfulness) is costed at a third of a training step's time per
token (a frozen model's backward is about two forwards).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from interp.interventions import RED, Edit
from interp.training.data import EncodedPair
from interp.training.trainer import train

GSM8K_TEST_SIZE = 1319
# forward-only cost per token, as a share of a training step's cost per token
FORWARD_SHARE = 1 / 3


@dataclass(frozen=True)
class TrainingTokens:
    """Tokens one optimizer step processes on average, for whole-answer and prefix-K training."""

    full_per_step: float
    prefix_per_step: float
    mean_prompt: float
    mean_answer: float
    truncated_share: float


def training_tokens(
    encoded: Sequence[EncodedPair], batch: int, prefix_tokens: int, full_share: float
) -> TrainingTokens:
    """Mean tokens per step when training on whole answers, and on the first `prefix_tokens`
    answer tokens with a share `full_share` of whole answers (a prefix example's sequence is cut
    after its K-th answer token)."""
    prompts = [len(p.prompt_ids) for p in encoded]
    answers = [len(p.answer_ids) for p in encoded]
    full = sum(p + a for p, a in zip(prompts, answers, strict=True)) / len(encoded)
    cut = sum(p + min(a, prefix_tokens) for p, a in zip(prompts, answers, strict=True)) / len(
        encoded
    )
    prefix = full_share * full + (1 - full_share) * cut
    return TrainingTokens(
        full_per_step=full * batch,
        prefix_per_step=prefix * batch,
        mean_prompt=sum(prompts) / len(prompts),
        mean_answer=sum(answers) / len(answers),
        truncated_share=sum(p.truncated for p in encoded) / len(encoded),
    )


def time_training_steps(
    model,
    encoded: Sequence[EncodedPair],
    hook: str,
    batch_size: int,
    steps: int,
    prefix_tokens: int | None = None,
) -> dict[str, float]:
    """Seconds per RED training step (on every block's `hook`) over `steps` timed steps, after one
    untimed warm-up step; the edits are thrown away."""
    n_layers = int(model.cfg.n_layers)
    width = model.cfg.d_mlp if hook.startswith("mlp.") else model.cfg.d_model

    def fresh() -> list[Edit]:
        return [Edit(f"blocks.{layer}.{hook}", RED(width)) for layer in range(n_layers)]

    pairs = list(encoded[: batch_size * steps])
    settings = dict(batch_size=batch_size, prefix_tokens=prefix_tokens, group_by_length=False)
    train(model, pairs[:batch_size], edit_list=fresh(), progress=False, max_steps=1, **settings)
    started, cpu = time.perf_counter(), time.process_time()
    train(model, pairs, edit_list=fresh(), progress=False, max_steps=steps, **settings)
    seconds = (time.perf_counter() - started) / steps
    cpu_seconds = (time.process_time() - cpu) / steps
    lengths = [
        len(p.prompt_ids)
        + (len(p.answer_ids) if prefix_tokens is None else min(prefix_tokens, len(p.answer_ids)))
        for p in pairs
    ]
    tokens = sum(lengths) / steps
    return {
        "seconds_per_step": seconds,
        "cpu_seconds_per_step": cpu_seconds,  # all threads together
        "tokens_per_step": tokens,
        "seconds_per_token": seconds / tokens,
        "quiet_seconds_per_token": cpu_seconds / torch.get_num_threads() / tokens,
    }


def time_decoding(
    model, n_problems: int, max_new_tokens: int, batch_size: int, seed: int
) -> dict[str, float]:
    """Greedy GSM8K decoding of `n_problems` test problems at `batch_size`, `max_new_tokens` each:
    generated tokens per second (nothing saved)."""
    from interp.analyses import math_eval

    started, cpu = time.perf_counter(), time.process_time()
    result = math_eval.run(
        model,
        dataset="gsm8k",
        split="test",
        n_problems=n_problems,
        seed=seed,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=False,
    )
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu
    tokens = sum(r["n_tokens"] for r in result.rows)
    return {
        "problems": n_problems,
        "batch_size": batch_size,
        "tokens": tokens,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "tokens_per_second": tokens / seconds,
        "quiet_tokens_per_second": tokens / (cpu_seconds / torch.get_num_threads()),
    }


def measure(
    model,
    encoded: Sequence[EncodedPair],
    *,
    hook: str,
    batch_size: int,
    prefix_tokens: int,
    steps: int,
    decode_batch: int,
    decode_tokens: int,
    seed: int,
) -> dict[str, Any]:
    """Time RED steps on whole answers and on prefix-K answers, one problem decoded alone and a
    batch decoded together (greedy GSM8K). Wall and CPU seconds both: on a shared machine the
    wall time counts the other jobs' share too; CPU seconds / threads is what a quiet machine with
    as many cores as threads would take (an estimate: it ignores imperfect threading)."""
    return {
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "train_full": time_training_steps(model, encoded, hook, batch_size, steps),
        "train_prefix": time_training_steps(
            model, encoded, hook, batch_size, steps, prefix_tokens=prefix_tokens
        ),
        "decode_one": time_decoding(model, 1, decode_tokens, 1, seed),
        "decode_batch": time_decoding(model, decode_batch, decode_tokens, decode_batch, seed),
    }


def estimate(
    timing: dict[str, Any],
    config: Any,
    tokens: TrainingTokens,
    arm_steps: int,
    number_reused: bool,
    basis: str = "wall",
) -> dict[str, Any]:
    """Steps, problems, tokens and estimated hours per phase of the study (`config` is a
    `ReftStudyConfig`; `arm_steps` the optimizer steps of each arm, the pilot's when not chosen).
    `basis`: "wall" (as measured, other jobs included) or "quiet" (CPU seconds / threads)."""
    c = config

    def rate(part: str, wall: str, quiet: str) -> float:
        return timing[part].get(quiet if basis == "quiet" else wall, timing[part][wall])

    full_rate = rate("train_full", "seconds_per_token", "quiet_seconds_per_token")
    prefix_rate = rate("train_prefix", "seconds_per_token", "quiet_seconds_per_token")
    forward_rate = full_rate * FORWARD_SHARE
    decode_rate = 1 / rate("decode_batch", "tokens_per_second", "quiet_tokens_per_second")
    answer = c.max_new_tokens * c.expected_answer_share
    rows: list[dict[str, Any]] = []

    def add(phase: str, what: str, tokens_: float, seconds: float, **extra: Any) -> None:
        rows.append(
            {"phase": phase, "what": what, "tokens": int(tokens_), "hours": seconds / 3600, **extra}
        )

    probe_tokens = c.probe_problems * 45 + 2 * len(c.sweep_strengths) * c.sweep_problems * 0.5 * 50
    add(
        "number",
        "probe + push sweep" + (" (reused from a number-probe run)" if number_reused else ""),
        0 if number_reused else probe_tokens,
        0 if number_reused else probe_tokens * forward_rate,
    )
    if c.steps is None:
        pilot = c.pilot_steps * tokens.full_per_step
        add(
            "train",
            f"pilot: red_all, {c.pilot_steps} steps",
            pilot,
            pilot * full_rate,
            steps=c.pilot_steps,
        )
    for arm in c.arms:
        prefix = arm.startswith("red_prefix")
        per_step = tokens.prefix_per_step if prefix else tokens.full_per_step
        rate = prefix_rate if prefix else full_rate
        total = arm_steps * per_step
        add("train", f"{arm}, {arm_steps} steps", total, total * rate, steps=arm_steps)
    arms = ["base", *c.arms] + (["red_prefix_pid_kl"] if "red_prefix_pid" in c.arms else [])
    for arm in arms:
        factor = 2 if arm.endswith("_kl") else 1  # edited and unedited rows in one batch
        total = c.test_problems * answer
        add(
            "eval",
            f"{arm}, {c.test_problems} problems",
            total,
            factor * total * decode_rate,
            problems=c.test_problems,
        )
    projected = 3 * 2 * (c.projection_prompts * 50 + c.sweep_problems * 50)
    add("projection", "3 edits: projections and edit_breaks", projected, projected * forward_rate)
    pool_max = min(c.swap_pool_max or GSM8K_TEST_SIZE, GSM8K_TEST_SIZE)
    extra_pool = max(0, pool_max - c.test_problems) * 2 * answer
    add(
        "swap",
        f"pool growth, at most {pool_max} problems (base and red_all)",
        extra_pool,
        extra_pool * decode_rate,
        problems=pool_max,
        note="upper bound: the pool grows only until enough problems are found",
    )
    continuations = (
        c.swap_problems
        * (2 * len(c.swap_ks) - 1)
        * max(answer - sum(c.swap_ks) / len(c.swap_ks), 1)
    )
    add(
        "swap",
        f"{c.swap_problems} problems x {len(c.swap_ks)} k x 2 variants",
        continuations,
        continuations * decode_rate,
        problems=c.swap_problems,
    )
    faith = (1 + len(c.faith_arms)) * c.faith_triples * 4 * 80
    add(
        "faithfulness",
        f"{1 + len(c.faith_arms)} arms x {c.faith_triples} triples",
        faith,
        faith * forward_rate,
    )
    total_hours = sum(r["hours"] for r in rows)
    swap_growth = extra_pool * decode_rate / 3600
    return {
        "rows": rows,
        "total_hours": total_hours,
        "total_hours_without_pool_growth": total_hours - swap_growth,
        "answer_tokens_assumed": answer,
        "decode_tokens_per_second": 1 / decode_rate,
        "train_seconds_per_step_full": full_rate * tokens.full_per_step,
        "train_seconds_per_step_prefix": prefix_rate * tokens.prefix_per_step,
        "basis": basis,
    }


__all__ = ["TrainingTokens", "estimate", "measure", "training_tokens"]
