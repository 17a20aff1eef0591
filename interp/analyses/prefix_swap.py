"""Prefix swap: one arm (the donor) writes the first k answer tokens, another (the continuer) goes on.

Accuracy against k says how much of an edited model's damage is already done in its first tokens.
For each problem the donor's answer is decoded once (a `math_eval` run, which also finds the
problems the donor gets wrong); every k reuses its first k tokens. Two variants:

- ``donor_cache``: the continuer resumes from the donor's KV cache, so the keys/values of the
  prompt and of the prefix were computed *with the donor's edits* (swapping the model in the middle
  of decoding). Precisely: the donor's cache covers every position before the last token of
  prompt + prefix; the continuer feeds that token and decodes on. With k >= 1 that is exactly "the
  donor chose k tokens, then the continuer took over the loop"; with k = 0 the continuer reads a
  donor-encoded prompt.
- ``recompute``: the continuer encodes prompt + prefix itself (clean when it has no edits).

Caches are computed once per problem over the longest prefix (one forward per arm) and cropped for
each k. Trajectory closeness (`closeness=True`) scores, for the donor's prefix and the continuer's
own prefix at each k, how strongly the unedited model then expects the gold answer (see
`gold_answer_logprobs`), and how long the donor stays on the continuer's own token path. The
figures are drawn in `interp.figures.math`.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from interp.analyses import math_eval
from interp.analyses.math_eval import load_finished
from interp.core.kv_reuse import RowCache, prefill_caches, stack_row_caches
from interp.core.runner import forward
from interp.core.tokens import GenerationError, pad_batch, pad_token_id
from interp.data.math_prompts import default_stop_strings, prompt_template
from interp.data.math_sets import MathProblem, load_problems, subset
from interp.decoding import generate
from interp.distributed import Replica, WorkerPool, check_workers, pool_for, run_units
from interp.figures.math import closeness_figure, prefix_swap_figure
from interp.interventions import Edit
from interp.interventions.arms import Arm, describe_edit
from interp.models import model_name
from interp.models.fingerprint import model_fingerprint
from interp.results import PartialRun, Result, config_to_dict
from interp.stats import wilson_interval
from interp.text.grading import grade

VARIANTS = ("donor_cache", "recompute")
DEFAULT_KS = (0, 1, 4, 8, 16, 32, 64, 128)
# Appended after a prefix to ask for the answer at once; the gold answer + "}" is then scored.
ANSWER_CUE = "\n\nThe final answer is $\\boxed{"


@dataclass(frozen=True)
class PrefixSwapConfig:
    """What decides the continuations; saved with the result and checked on resume."""

    model: str = ""  # the model's name (`interp.models.model_name`)
    dataset: str = "gsm8k"
    split: str = "test"
    pool_size: int = 100
    n_problems: int = 150
    seed: int = 0
    prompt_style: str = "chat"  # one of interp.data.math_prompts.MATH_PROMPT_STYLES
    prompt_template: str = ""  # the prompt around a "{question}" slot, as the model saw it
    ks: tuple[int, ...] = DEFAULT_KS
    variants: tuple[str, ...] = VARIANTS
    only_donor_wrong: bool = True
    max_new_tokens: int = 512
    batch_size: int = 16
    donor: str = ""  # JSON description of the donor arm
    continuer: str = ""
    closeness: bool = True
    answer_cue: str = ANSWER_CUE


@dataclass
class PrefixSwapResult(Result):
    """Tables: `continuations` (one row per problem, k, variant), `accuracy`, `own_prefix` (the
    control: accuracy where the donor's prefix is the continuer's own), `closeness`."""

    config_class = PrefixSwapConfig

    def accuracy(self, variant: str) -> list[float]:
        rows = {r["k"]: r for r in self.tables["accuracy"] if r["variant"] == variant}
        return [rows[k]["accuracy"] for k in self.config.ks]

    def figure(self) -> go.Figure:
        """Accuracy of the swapped answers against k, one line per variant, 95% Wilson bars."""
        return prefix_swap_figure(self)

    def closeness_figure(self) -> go.Figure:
        """Gold-answer log-probability after each arm's prefix, and the donor's agreement by k."""
        return closeness_figure(self)


def _describe(arm: Arm) -> str:
    return json.dumps(arm.describe())


# --------------------------------------------------------------------------------------------------
# Running


def run(
    model,
    *,
    donor: Arm | Sequence[Edit] | None,
    continuer: Arm | Sequence[Edit] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    variants: Sequence[str] = VARIANTS,
    only_donor_wrong: bool = True,
    n_problems: int = 150,
    pool_size: int = 500,
    problems: Sequence[MathProblem] | None = None,
    dataset: str = "gsm8k",
    split: str = "test",
    seed: int = 0,
    prompt_style: str = "chat",
    max_new_tokens: int = 512,
    batch_size: int = 16,
    closeness: bool = True,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    reuse: Sequence[math_eval.MathEvalResult] = (),
    workers: int | WorkerPool = 1,
    ray_address: str | None = None,
) -> PrefixSwapResult:
    """Swap the donor's first k answer tokens into the continuer, for every k; grade the answers.

    The donor answers `pool_size` problems (drawn with `seed`, or `problems`); the swap runs on the
    first `n_problems` of them (only those it gets wrong, if `only_donor_wrong`). The answer is
    capped at `max_new_tokens` in total (prefix + continuation). With `out`, every stage is saved
    as it finishes and a rerun resumes. `reuse`: earlier `math_eval` results; each arm takes the
    rows of those decoded exactly as it would decode (same model, edits and settings).
    `workers` > 1 (or a `WorkerPool`): both arms' decoding and the swap batches run on Ray
    workers that load the model once (`interp.distributed`); the closeness scores run here.
    """
    for name, value in (
        ("max_new_tokens", max_new_tokens),
        ("batch_size", batch_size),
        ("pool_size", pool_size),
        ("n_problems", n_problems),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    check_workers(workers)
    donor_arm, continuer_arm = (
        Arm.of(given, name=name)
        if isinstance(given, Arm)
        else Arm.of(model, given or (), name=name)
        for given, name in ((donor, "donor"), (continuer, "continuer"))
    )
    ks = tuple(sorted(set(int(k) for k in ks)))
    variants = tuple(variants)
    _check_arguments(donor_arm, continuer_arm, ks, variants, max_new_tokens, n_problems)
    if problems is None:
        pool = load_problems(dataset, split)
        pool = subset(pool, min(pool_size, len(pool)), seed)
    else:
        pool, dataset, split = list(problems), "custom", ""
    config = PrefixSwapConfig(
        model=model_name(model),
        dataset=dataset,
        split=split,
        pool_size=len(pool),
        n_problems=n_problems,
        seed=seed,
        prompt_style=prompt_style,
        prompt_template=prompt_template(model.tokenizer, prompt_style, seed=seed),
        ks=ks,
        variants=variants,
        only_donor_wrong=only_donor_wrong,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        donor=_describe(donor_arm),
        continuer=_describe(continuer_arm),
        closeness=closeness,
    )
    out = Path(out) if out is not None else None
    if out is not None:
        finished = load_finished(out / "swap", PrefixSwapResult, config, model=model)
        if finished is not None:
            return finished
    with pool_for(model, workers, ray_address) as shared_workers:
        common = dict(
            prompt_style=prompt_style,
            seed=seed,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            progress=progress,
            workers=shared_workers,
        )
        donor_eval = math_eval.run(
            donor_arm,
            problems=pool,
            out=out / "donor" if out else None,
            reuse=_reusable(reuse, donor_arm, max_new_tokens, prompt_style, seed),
            **common,
        )
        chosen = [r for r in donor_eval.rows if not (only_donor_wrong and r["correct"])]
        chosen = chosen[:n_problems]
        if not chosen:
            raise ValueError(
                f"the donor gets all {len(pool)} problems right, so there is nothing to swap on; "
                f"use a larger pool_size or only_donor_wrong=False"
            )
        by_id = {p.id: p for p in pool}
        selected = [by_id[r["id"]] for r in chosen]
        continuer_eval = math_eval.run(
            continuer_arm,
            problems=selected,
            out=out / "continuer" if out else None,
            reuse=_reusable(reuse, continuer_arm, max_new_tokens, prompt_style, seed),
            **common,
        )
        swap = SwapState(config, donor_arm, continuer_arm, chosen, continuer_eval.rows, selected)
        partial = PartialRun(out / "swap", config_to_dict(config), model=model) if out else None
        done = partial.by_key(("id", "k", "variant")) if partial else {}

        def record(_: int, rows: list[dict[str, Any]]) -> None:
            for row in rows:
                done[(row["id"], row["k"], row["variant"])] = row
            if partial and rows:
                partial.append(rows)

        work = functools.partial(
            swap_unit,
            config=config,
            arm_names=(donor_arm.name, continuer_arm.name),
            donor_rows=chosen,
            continuer_rows=continuer_eval.rows,
            problems=selected,
            done=frozenset(done),
        )
        run_units(
            [
                range(start, min(start + batch_size, len(chosen)))
                for start in range(0, len(chosen), batch_size)
            ],
            work,
            [donor_arm, continuer_arm],
            workers=shared_workers,
            on_result=record,
            progress=progress,
            desc="prefix swap",
        )
    continuations = [
        done[(r["id"], k, variant)] for variant in variants for k in ks for r in chosen
    ]
    tables = {
        "continuations": continuations,
        "accuracy": accuracy_table(continuations, ks, variants),
        "own_prefix": own_prefix_table(continuations),
    }
    if closeness:
        tables["closeness"] = swap.closeness_rows()
    meta = {
        "model": model_name(model),
        "fingerprint": model_fingerprint(model),
        "donor_name": donor_arm.name,
        "continuer_name": continuer_arm.name,
        "n_problems": len(chosen),
        "pool_size": len(pool),
        "donor_pool_accuracy": donor_eval.accuracy,
        "donor_accuracy": sum(bool(r["correct"]) for r in chosen) / len(chosen),
        "continuer_accuracy": continuer_eval.accuracy,
        "donor_mean_tokens": float(np.mean([r["n_tokens"] for r in chosen])),
    }
    if len(chosen) < n_problems:
        meta["note"] = f"asked for {n_problems} problems but the pool gave {len(chosen)}" + (
            " the donor gets wrong" if only_donor_wrong else ""
        )
    result = PrefixSwapResult(config=config, tables=tables, meta=meta)
    if out is not None:
        result.save(out / "swap")
        partial.finish()
    return result


def _reusable(results, arm: Arm, max_new_tokens: int, prompt_style: str, seed: int):
    """The results that `math_eval.run` for this arm can take rows from."""
    tokenizer = arm.model.tokenizer
    probe = math_eval.MathEvalConfig(
        model=model_name(arm.model),
        seed=seed,
        max_new_tokens=max_new_tokens,
        prompt_style=prompt_style,
        prompt_template=prompt_template(tokenizer, prompt_style, seed=seed),
        edit_description=json.dumps([describe_edit(e) for e in arm.edit_list]),
        stop_strings=default_stop_strings(prompt_style, tokenizer),
    )
    return [r for r in results if not math_eval.decoding_mismatch(r, probe)]


def _check_arguments(donor, continuer, ks, variants, max_new_tokens, n_problems) -> None:
    if not ks or ks[0] < 0:
        raise ValueError(f"ks must be non-negative integers, got {ks}")
    if ks[-1] >= max_new_tokens:
        raise ValueError(
            f"the largest k ({ks[-1]}) must be below max_new_tokens ({max_new_tokens}), which "
            f"caps prefix + continuation"
        )
    unknown = set(variants) - set(VARIANTS)
    if unknown or not variants:
        raise ValueError(f"variants must be taken from {VARIANTS}, got {variants}")
    if n_problems < 1:
        raise ValueError("n_problems must be at least 1")
    if len(donor.model.tokenizer) != len(continuer.model.tokenizer):
        raise ValueError(
            "donor and continuer use different tokenizers; a prefix swap passes token ids between "
            "them, so both must share one vocabulary"
        )


def accuracy_table(
    rows: Sequence[dict[str, Any]], ks: Sequence[int], variants: Sequence[str]
) -> list[dict[str, Any]]:
    """Accuracy with a 95% Wilson interval for each (variant, k)."""
    table = []
    for variant in variants:
        for k in ks:
            cell = [r for r in rows if r["k"] == k and r["variant"] == variant]
            correct = sum(bool(r["correct"]) for r in cell)
            low, high = wilson_interval(correct, len(cell))
            table.append(
                {
                    "variant": variant,
                    "k": k,
                    "n": len(cell),
                    "correct": correct,
                    "accuracy": correct / len(cell),
                    "low": low,
                    "high": high,
                    "mean_tokens": float(np.mean([r["n_tokens"] for r in cell])),
                    "cap_rate": float(np.mean([bool(r["hit_cap"]) for r in cell])),
                }
            )
    return table


def own_prefix_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each (variant, k >= 1): accuracy where the donor's first k tokens are the continuer's
    own first k and where they are not, and how many swapped answers are the donor's own.

    The control inside the data: in `recompute` with a clean continuer, an own prefix gives back
    the continuer's own answer up to numerical noise (batch shape, prefill against step-by-step
    decoding), so a loss there measures how fragile the selected problems are, not the donor's
    prefix (in `donor_cache` the donor's cache still carries its edits). Needs the continuer's
    own answers, the `recompute` rows at k = 0; without them the table is empty.
    """
    own = {r["id"]: r["output_tokens"] for r in rows if r["variant"] == "recompute" and r["k"] == 0}
    if not own:
        return []
    table = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        for k in sorted({r["k"] for r in rows if r["k"] > 0}):
            cell = [r for r in rows if r["variant"] == variant and r["k"] == k and r["id"] in own]
            mine = [r for r in cell if r["output_tokens"][:k] == own[r["id"]][:k]]
            other = [r for r in cell if r["output_tokens"][:k] != own[r["id"]][:k]]
            entry: dict[str, Any] = {
                "variant": variant,
                "k": k,
                "donor_ended": sum(not r["continued"] for r in cell),
            }
            for name, part in (("own", mine), ("other", other)):
                correct = sum(bool(r["correct"]) for r in part)
                low, high = wilson_interval(correct, len(part)) if part else (None, None)
                entry |= {
                    f"{name}_n": len(part),
                    f"{name}_correct": correct,
                    f"{name}_low": low,
                    f"{name}_high": high,
                }
            table.append(entry)
    return table


def _answer_end(row: dict[str, Any]) -> int | None:
    """Tokens of the donor's answer before it ended (eos/stop string), or None if it was cut off."""
    if row["finish_reason"] == "length":
        return None
    return len(row["output_tokens"])


def swap_unit(
    replica: Replica,
    indices: range,
    *,
    config: PrefixSwapConfig,
    arm_names: tuple[str, str],
    donor_rows: list[dict[str, Any]],
    continuer_rows: list[dict[str, Any]],
    problems: list[MathProblem],
    done: frozenset,
) -> list[dict[str, Any]]:
    """One unit of work: the missing swap rows of the problems at `indices`, on a replica's
    donor and continuer arms (named `arm_names`)."""
    donor, continuer = (replica.arm(name) for name in arm_names)
    swap = SwapState(config, donor, continuer, donor_rows, continuer_rows, problems)
    return swap.continue_batch(indices, done)


class SwapState:
    """The selected problems with their donor and continuer answers; builds swap rows batch by batch."""

    def __init__(self, config, donor, continuer, donor_rows, continuer_rows, problems):
        self.config = config
        self.donor = donor
        self.continuer = continuer
        self.donor_rows = donor_rows
        self.continuer_rows = continuer_rows
        self.problems = problems
        self.tokenizer = continuer.model.tokenizer

    def continue_batch(self, indices: range, done: dict) -> list[dict[str, Any]]:
        """Every missing (k, variant) row of these problems: graded swapped answers."""
        config = self.config
        out: list[dict[str, Any]] = []
        jobs: dict[int, list[tuple[int, str]]] = {}  # k -> (problem index, variant)
        for i in indices:
            row = self.donor_rows[i]
            end = _answer_end(row)
            for k in config.ks:
                for variant in config.variants:
                    if (row["id"], k, variant) in done:
                        continue
                    if end is not None and k >= end:
                        out.append(self._finished_by_donor(i, k, variant))
                    elif k == 0 and variant == "recompute":
                        out.append(self._continuer_alone(i))
                    else:
                        jobs.setdefault(k, []).append((i, variant))
        if not jobs:
            return out
        caches = self._caches(indices, jobs)
        for k in sorted(jobs):
            out.extend(self._continue(k, jobs[k], caches))
        return out

    def _sequence(self, i: int, k: int) -> list[int]:
        row = self.donor_rows[i]
        return list(row["prompt_tokens"]) + list(row["output_tokens"][:k])

    def _caches(self, indices, jobs) -> dict[tuple[int, str], RowCache]:
        """One prefill per problem and arm over prompt + the longest prefix it needs."""
        longest: dict[tuple[int, str], int] = {}
        for k, items in jobs.items():
            for i, variant in items:
                longest[(i, variant)] = max(longest.get((i, variant), 0), k)
        caches = {}
        for variant, arm in (("donor_cache", self.donor), ("recompute", self.continuer)):
            wanted = sorted(i for (i, v) in longest if v == variant)
            if not wanted:
                continue
            sequences = [self._sequence(i, longest[(i, variant)]) for i in wanted]
            lengths = [len(self.donor_rows[i]["prompt_tokens"]) for i in wanted]
            rows = prefill_caches(
                arm.model,
                sequences,
                prompt_lengths=lengths,
                edit_list=arm.edit_list,
                batch_size=self.config.batch_size,
            )
            caches.update({(i, variant): row for i, row in zip(wanted, rows, strict=True)})
        return caches

    def _continue(self, k: int, items, caches) -> list[dict[str, Any]]:
        sequences = [self._sequence(i, k) for i, _ in items]
        decoded = generate(
            self.continuer.model,
            sequences,
            edit_list=self.continuer.edit_list,
            prompt_lengths=[len(self.donor_rows[i]["prompt_tokens"]) for i, _ in items],
            caches=[
                caches[(i, variant)].crop(len(seq) - 1)
                for (i, variant), seq in zip(items, sequences, strict=True)
            ],
            max_new_tokens=self.config.max_new_tokens - k,
            batch_size=self.config.batch_size,
        )
        rows = []
        for j, (i, variant) in enumerate(items):
            prefix = self.donor_rows[i]["output_tokens"][:k]
            answer = list(prefix) + decoded.tokens[j]
            rows.append(self._row(i, k, variant, answer, decoded.finish_reasons[j], continued=True))
        return rows

    def _finished_by_donor(self, i: int, k: int, variant: str) -> dict[str, Any]:
        """The donor's answer ended within k tokens: the swapped answer is the donor's own."""
        row = self.donor_rows[i]
        return self._row(i, k, variant, row["output_tokens"], row["finish_reason"], continued=False)

    def _continuer_alone(self, i: int) -> dict[str, Any]:
        """k = 0, recomputed: by definition the continuer's own answer (its math_eval run)."""
        row = self.continuer_rows[i]
        return self._row(i, 0, "recompute", row["output_tokens"], row["finish_reason"], True)

    def _row(self, i, k, variant, answer_tokens, finish, continued) -> dict[str, Any]:
        problem = self.problems[i]
        text = math_eval.answer_text(self.tokenizer, answer_tokens, finish)
        verdict = grade(text, problem.answer)
        return {
            "id": problem.id,
            "k": k,
            "variant": variant,
            "continued": continued,
            "output": text,
            "extracted": verdict.extracted,
            "correct": verdict.correct,
            "n_tokens": len(answer_tokens),
            "hit_cap": finish == "length",
            "finish_reason": finish,
            "output_tokens": list(answer_tokens),
        }

    # ----------------------------------------------------------------------------------------------
    # Trajectory closeness

    def closeness_rows(self) -> list[dict[str, Any]]:
        """Per problem, k and arm: the gold answer's log-prob after the prefix, and the agreement."""
        judge = self.continuer.model
        cue = self.tokenizer.encode(self.config.answer_cue, add_special_tokens=False)
        rows: list[dict[str, Any]] = []
        for start in range(0, len(self.problems), self.config.batch_size):
            indices = range(start, min(start + self.config.batch_size, len(self.problems)))
            items, contexts, keep, targets = [], [], [], []
            for i in indices:
                prompt = list(self.donor_rows[i]["prompt_tokens"])
                gold = self.tokenizer.encode(
                    self.problems[i].answer + "}$", add_special_tokens=False
                )
                for arm, source in (("donor", self.donor_rows), ("continuer", self.continuer_rows)):
                    answer = _before_end(source[i])
                    for k in self.config.ks:
                        used = min(k, len(answer))
                        items.append((i, arm, k, used))
                        contexts.append(prompt + answer[: max(self.config.ks)])
                        keep.append(len(prompt) + used)
                        targets.append(gold)
            scores = gold_answer_logprobs(
                judge, contexts, keep, cue, targets, batch_size=self.config.batch_size
            )
            for (i, arm, k, used), score, target in zip(items, scores, targets, strict=True):
                own = self.continuer_rows[i]["output_tokens"]
                donor_tokens = self.donor_rows[i]["output_tokens"]
                same = _common_prefix(donor_tokens, own)
                rows.append(
                    {
                        "id": self.problems[i].id,
                        "k": k,
                        "arm": arm,
                        "prefix_tokens": used,
                        "gold_logprob": score,
                        "gold_logprob_per_token": score / len(target),
                        "agreement": 1.0 if arm == "continuer" or k == 0 else min(same, k) / k,
                        "common_prefix": same,
                    }
                )
        return rows


def _before_end(row: dict[str, Any]) -> list[int]:
    """An answer's tokens without the end-of-sequence token it may finish with."""
    tokens = list(row["output_tokens"])
    if row["finish_reason"] == "eos" and tokens:
        tokens = tokens[:-1]
    return tokens


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def gold_answer_logprobs(
    model,
    contexts: Sequence[Sequence[int]],
    keep: Sequence[int],
    cue: Sequence[int],
    targets: Sequence[Sequence[int]],
    batch_size: int = 16,
) -> list[float]:
    """log p(target | context[:keep] + cue) under `model` (no edits), summed over target tokens.

    Rows that share a context (a prompt with one answer, cut at several k) share one prefill over
    the whole context, cropped per row; each row then needs one short forward over cue + target.
    """
    if not cue:
        raise GenerationError("the answer cue must be at least one token")
    distinct = list(dict.fromkeys(tuple(c) for c in contexts))
    prefilled = prefill_caches(model, [list(c) for c in distinct], batch_size=batch_size)
    cache_of = dict(zip(distinct, prefilled, strict=True))
    device = next(model.parameters()).device
    pad = pad_token_id(model)
    scores: list[float] = []
    for start in range(0, len(contexts), batch_size):
        stop = start + batch_size
        rows = [
            cache_of[tuple(c)].crop(n)
            for c, n in zip(contexts[start:stop], keep[start:stop], strict=True)
        ]
        cached = [list(c[:n]) for c, n in zip(contexts[start:stop], keep[start:stop], strict=True)]
        news = [list(cue) + list(t) for t in targets[start:stop]]
        # left padding before each cached row, right padding after each short continuation
        cached_tokens, cached_mask = pad_batch(cached, pad, "left", device)
        new_tokens, new_mask = pad_batch(news, pad, "right", device)
        with torch.no_grad():
            logits, _ = forward(
                model,
                torch.cat([cached_tokens, new_tokens], dim=1),
                torch.cat([cached_mask, new_mask], dim=1),
                fed_from=cached_tokens.shape[1],
                past_key_values=stack_row_caches(model, rows),
                return_type="logits_and_cache",
                use_cache=True,
            )
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # float32 on purpose: scores
        for r, target in enumerate(targets[start:stop]):
            # logits at position j predict token j + 1: the target starts after the cue
            positions = torch.arange(len(cue) - 1, len(cue) - 1 + len(target), device=device)
            ids = torch.tensor(list(target), device=device)
            scores.append(float(logprobs[r, positions, ids].sum()))
    return scores
