"""Math evaluation: decode answers to GSM8K / MATH-500 / your own problems, grade them, report accuracy.

    from interp.analyses import math_eval
    result = math_eval.run(model, dataset="gsm8k", n_problems=100, out="runs/gsm8k")
    result.accuracy, result.accuracy_interval, result.mean_tokens
    result.tables["problems"][0]   # prompt, output, extracted answer, correct, tokens, hit the cap

Decoding goes through `interp.decoding.loop.generate` (batched, KV cache, edits as hooks). Problems
and prompts come from `interp.data.math_sets` / `interp.data.math_prompts`, the figure from
`interp.figures.math`. With `out`, each finished batch is appended to `<out>.partial.jsonl` as it
comes, so an interrupted run resumes where it stopped; the finished result is saved to `out` and a
second call with the same config (model and prompt template included) loads it instead of
decoding again.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import plotly.graph_objects as go

from interp.data.math_prompts import (
    MATH_PROMPT_STYLES,
    build_prompt,
    default_stop_strings,
    prompt_template,
)
from interp.data.math_sets import MathProblem, load_problems, problem_ids_sha, subset
from interp.decoding import GenerationConfig, generate
from interp.decoding.processors import LogitProcessor
from interp.distributed import Replica, WorkerPool, check_workers, run_units
from interp.figures.math import math_eval_figure
from interp.interventions.arms import Arm, describe_edit
from interp.models import model_name
from interp.models.fingerprint import fingerprint_difference, model_fingerprint
from interp.results import PartialRun, Result, check_saved_model, config_to_dict
from interp.stats import wilson_interval
from interp.storage import check_replaceable, differing_keys, is_saved
from interp.text.grading import grade

# Generation settings `run` accepts as keyword overrides (the rest of GenerationConfig is set here).
GENERATION_OVERRIDES = (
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "stop_strings",
    "use_cache",
    "kl_budget",  # KL-budget decoding: stop editing a sequence once its summed KL passes this
)


@dataclass(frozen=True)
class MathEvalConfig:
    """Everything that decides the outputs; saved with the result and checked on resume."""

    model: str = ""  # the model's name (`interp.models.model_name`)
    dataset: str = "gsm8k"
    split: str = "test"
    n_problems: int | None = 100
    seed: int = 0
    prompt_style: str = "chat"  # one of interp.data.math_prompts.MATH_PROMPT_STYLES
    n_shots: int = 4
    prompt_template: str = ""  # the prompt around a "{question}" slot, as the model saw it
    max_new_tokens: int = 512
    batch_size: int = 16
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    stop_strings: tuple[str, ...] = ()
    use_cache: bool = True
    kl_budget: float | None = None
    problem_ids_sha: str = ""  # fingerprint of the evaluated problems (ids, questions, answers)
    edit_description: str = "[]"  # JSON: hook, kind, positions and tensor norms of each edit
    logit_processors: str = "[]"  # JSON: a description of each logit processor
    grade_timeout: float = 5.0


@dataclass
class MathEvalResult(Result):
    """Per-problem rows in `tables["problems"]`; accuracy with a Wilson interval; token counts."""

    config_class = MathEvalConfig

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.tables["problems"]

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def n_correct(self) -> int:
        return sum(bool(r["correct"]) for r in self.rows)

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.n if self.n else float("nan")

    @property
    def accuracy_interval(self) -> tuple[float, float]:
        """95% Wilson interval of the accuracy."""
        return wilson_interval(self.n_correct, self.n)

    @property
    def mean_tokens(self) -> float:
        return sum(r["n_tokens"] for r in self.rows) / self.n if self.n else float("nan")

    @property
    def cap_rate(self) -> float:
        """Share of answers that stopped at `max_new_tokens` (cut off, usually ungraded as wrong)."""
        return sum(bool(r["hit_cap"]) for r in self.rows) / self.n if self.n else float("nan")

    def summary(self) -> dict[str, Any]:
        low, high = self.accuracy_interval
        return {
            "model": self.meta.get("model"),
            "dataset": self.config.dataset,
            "n": self.n,
            "correct": self.n_correct,
            "accuracy": self.accuracy,
            "accuracy_low": low,
            "accuracy_high": high,
            "mean_tokens": self.mean_tokens,
            "cap_rate": self.cap_rate,
        }

    def figure(self) -> go.Figure:
        """Accuracy with its 95% interval, and the distribution of answer lengths (cap marked)."""
        return math_eval_figure(self)


# --------------------------------------------------------------------------------------------------
# Configs


def describe_processors(processors: Sequence[LogitProcessor]) -> str:
    """JSON naming each logit processor and its settings, saved in the config."""
    out = []
    for processor in processors:
        entry: dict[str, Any] = {"type": type(processor).__name__}
        for name in ("value", "token_ids"):
            value = getattr(processor, name, None)
            if value is not None:
                entry[name] = list(value) if isinstance(value, tuple) else value
        out.append(entry)
    return json.dumps(out)


# --------------------------------------------------------------------------------------------------
# Running


def run(
    model,
    *,
    problems: Sequence[MathProblem] | None = None,
    dataset: str = "gsm8k",
    split: str = "test",
    n_problems: int | None = 100,
    seed: int = 0,
    prompt_style: str = "chat",
    n_shots: int = 4,
    edit_list: Sequence = (),
    logit_processors: Sequence[LogitProcessor] = (),
    max_new_tokens: int = 512,
    batch_size: int = 16,
    out: str | os.PathLike | None = None,
    grade_timeout: float = 5.0,
    progress: bool = True,
    reuse: Sequence[MathEvalResult] = (),
    workers: int | WorkerPool = 1,
    ray_address: str | None = None,
    **generation: Any,
) -> MathEvalResult:
    """Decode an answer to each problem (with `edit_list` hooked in), grade it, and return the rows.

    `model` may be an `Arm` (its edits are used). `problems` replaces loading `dataset`; otherwise
    `n_problems` are drawn from it with `seed` (None: all). Generation overrides: do_sample,
    temperature, top_k, top_p, stop_strings, use_cache (sampling is seeded with `seed`).
    `reuse`: earlier results of the same model and decoding settings; their rows for these
    problems are taken instead of decoding again (e.g. a 40-problem run inside a 100-problem one).
    `workers` > 1 decodes the batches on that many Ray workers, or on a `WorkerPool`
    (`interp.distributed.run_units`; `ray_address` names a cluster, else the one `ray.init`
    joined, else a local one); the rows are the ones one process writes (same tokens and grades;
    log-probabilities to float rounding).
    """
    for name, value in (
        ("max_new_tokens", max_new_tokens),
        ("batch_size", batch_size),
        ("n_problems", n_problems or 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    check_workers(workers)
    arm = Arm.of(model, edit_list, name="model")
    unknown = set(generation) - set(GENERATION_OVERRIDES)
    if unknown:
        raise TypeError(
            f"unknown generation settings {sorted(unknown)}; allowed: {GENERATION_OVERRIDES}"
        )
    if prompt_style not in MATH_PROMPT_STYLES:
        raise ValueError(f"prompt_style must be one of {MATH_PROMPT_STYLES}, got {prompt_style!r}")
    if problems is None:
        problems = load_problems(dataset, split)
        if n_problems is not None:
            problems = subset(problems, min(n_problems, len(problems)), seed)
    else:
        problems = list(problems)
        dataset, split = "custom", ""
    if not problems:
        raise ValueError("no problems to evaluate: the data set or the `problems` list is empty")
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise ValueError("problem ids must be unique (resuming matches rows by id)")
    tokenizer = arm.model.tokenizer
    stop = tuple(generation.pop("stop_strings", default_stop_strings(prompt_style, tokenizer)))
    config = MathEvalConfig(
        model=model_name(arm.model),
        dataset=dataset,
        split=split,
        n_problems=len(problems),
        seed=seed,
        prompt_style=prompt_style,
        n_shots=n_shots,
        prompt_template=prompt_template(tokenizer, prompt_style, n_shots, seed),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        stop_strings=stop,
        problem_ids_sha=problem_ids_sha(problems),
        edit_description=json.dumps([describe_edit(e) for e in arm.edit_list]),
        logit_processors=describe_processors(logit_processors),
        grade_timeout=grade_timeout,
        **generation,
    )
    # Built before anything is written, so bad decoding settings never leave a partial file.
    generation_config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        stop_strings=stop,
        **{
            k: getattr(config, k)
            for k in ("do_sample", "temperature", "top_k", "top_p", "use_cache", "kl_budget")
        },
    )
    meta = {"model": config.model, "arm": arm.name, "fingerprint": model_fingerprint(arm.model)}
    if out is not None:
        finished = load_finished(out, MathEvalResult, config, model=arm.model)
        if finished is not None:
            return finished
    partial = PartialRun(out, config_to_dict(config), model=arm.model) if out is not None else None
    done = partial.by_key("id") if partial else {}
    reused = reusable_rows(reuse, config, problems, done, meta["fingerprint"])
    done.update(reused)
    if partial and reused:
        partial.append(list(reused.values()))
    pending = [(i, p) for i, p in enumerate(problems) if p.id not in done]
    prompts = {p.id: build_prompt(p, tokenizer, prompt_style, n_shots, seed) for _, p in pending}
    units = [
        [
            (index, problem, prompts[problem.id])
            for index, problem in pending[start : start + batch_size]
        ]
        for start in range(0, len(pending), batch_size)
    ]
    work = functools.partial(
        decode_unit,
        arm_name=arm.name,
        generation_config=generation_config,
        logit_processors=tuple(logit_processors),
        seed=seed,
        grade_timeout=grade_timeout,
    )

    def record(_: int, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            done[row["id"]] = row
        if partial:
            partial.append(rows)

    run_units(
        units,
        work,
        [arm],
        workers=workers,
        address=ray_address,
        on_result=record,
        progress=progress,
        desc=f"math-eval {arm.name}",
    )
    result = MathEvalResult(
        config=config, tables={"problems": [done[p.id] for p in problems]}, meta=meta
    )
    result.meta.update({k: v for k, v in result.summary().items() if k not in ("model",)})
    if out is not None:
        result.save(out)
        partial.finish()
    return result


def decode_unit(
    replica: Replica,
    unit: Sequence[tuple[int, MathProblem, str]],
    *,
    arm_name: str,
    generation_config: GenerationConfig,
    logit_processors: Sequence[LogitProcessor],
    seed: int,
    grade_timeout: float,
) -> list[dict[str, Any]]:
    """One unit of work: decode a batch of (index, problem, prompt) with the arm and grade it."""
    arm = replica.arm(arm_name)
    decoded = generate(
        arm.model,
        [prompt for _, _, prompt in unit],
        edit_list=arm.edit_list,
        config=generation_config,
        logit_processors=logit_processors,
        # sampling seeds follow the problem's index, so resuming samples what a full run would
        seed=seed + unit[0][0],
    )
    tokenizer = arm.model.tokenizer
    return [
        problem_row(index, problem, prompt, decoded, j, tokenizer, grade_timeout)
        for j, (index, problem, prompt) in enumerate(unit)
    ]


# Config fields that do not change what is decoded for one problem.
_NOT_DECODING = ("dataset", "split", "n_problems", "problem_ids_sha", "batch_size", "grade_timeout")


def reusable_rows(
    results: Sequence[MathEvalResult],
    config: MathEvalConfig,
    problems: Sequence[MathProblem],
    done: dict[str, dict[str, Any]],
    fingerprint: dict[str, str],
) -> dict[str, dict[str, Any]]:
    """Rows of earlier results decoded exactly as `config` would decode them, for missing problems
    (same model weights, same question and gold answer)."""
    index = {p.id: i for i, p in enumerate(problems)}
    asked = {p.id: (p.question, p.answer) for p in problems}
    rows: dict[str, dict[str, Any]] = {}
    for result in results:
        mismatched = decoding_mismatch(result, config)
        if mismatched:
            raise ValueError(
                f"cannot reuse a result of model {result.config.model or result.meta.get('model')!r} "
                f"decoded with other settings ({', '.join(mismatched)} differ)"
            )
        other_model = fingerprint_difference(result.meta.get("fingerprint"), fingerprint)
        if other_model:
            raise ValueError(f"cannot reuse a result for this model: {other_model}")
        for row in result.rows:
            key = row["id"]
            if key in index and key not in done and (row["question"], row["gold"]) == asked[key]:
                if config.do_sample and row["index"] != index[key]:
                    continue  # a sample's seed follows its index
                rows[key] = {**row, "index": index[key]}
    return rows


def answer_text(tokenizer: Any, tokens: Sequence[int], finish_reason: str) -> str:
    """The answer's text without the end-of-sequence token it stopped on (tokens keep it)."""
    if finish_reason == "eos" and tokens:
        tokens = tokens[:-1]
    return tokenizer.decode(list(tokens))


def decoding_mismatch(result: MathEvalResult, config: MathEvalConfig) -> list[str]:
    """What differs between how `result` was decoded and how `config` decodes (empty: reusable).

    The model and the prompt template are config fields, so a result of another model, or one
    whose prompts were built otherwise (another chat template, instruction or exemplars), differs.
    """
    # greedy answers do not depend on the seed (few-shot exemplars, which do, are in the
    # prompt template); samples do (seed + problem index)
    skip = _NOT_DECODING if config.do_sample else (*_NOT_DECODING, "seed")
    return [
        name
        for name in config_fields()
        if name not in skip and getattr(result.config, name) != getattr(config, name)
    ]


def problem_row(
    index: int,
    problem: MathProblem,
    prompt: str,
    decoded,
    j: int,
    tokenizer: Any,
    grade_timeout: float,
) -> dict[str, Any]:
    """One graded problem: what was asked, what came out, and the verdict."""
    text = answer_text(tokenizer, decoded.tokens[j], decoded.finish_reasons[j])
    verdict = grade(text, problem.answer, timeout=grade_timeout)
    return {
        "index": index,
        "id": problem.id,
        "question": problem.question,
        "gold": problem.answer,
        "prompt": prompt,
        "output": text,
        "extracted": verdict.extracted,
        "extraction": verdict.extraction,
        "correct": verdict.correct,
        "grade_method": verdict.method,
        "n_tokens": len(decoded.tokens[j]),
        "hit_cap": decoded.finish_reasons[j] == "length",
        "finish_reason": decoded.finish_reasons[j],
        "sum_logprob": float(sum(decoded.logprobs[j])),
        "prompt_tokens": decoded.prompt_tokens[j],
        "output_tokens": decoded.tokens[j],
        **(
            {"kl_spent": decoded.kl_spent[j], "edit_stop": decoded.edit_stops[j]}
            if decoded.kl_spent is not None
            else {}
        ),
    }


# --------------------------------------------------------------------------------------------------
# Resuming


def load_finished(
    directory: str | os.PathLike, result_class: type[Result], config: Any, model: Any = None
) -> Result | None:
    """The result saved in `directory` if it ran with `config` (and, with `model`, on that model's
    weights); None if none is saved there.

    A result made with another config or model is an error rather than silently reused or
    overwritten, and so is anything else in `directory` (a user's files), before any work starts.
    """
    check_replaceable(directory, result_class.__name__)
    if not is_saved(directory):
        return None
    saved = result_class.load(directory)
    if saved.config != config:
        differ = differing_keys(config_to_dict(saved.config), config_to_dict(config))
        raise ValueError(
            f"{directory} holds a {result_class.__name__} made with a different config "
            f"({', '.join(differ)} differ); choose another `out` or delete it to recompute"
        )
    if model is not None:
        check_saved_model(saved, model, directory)
    return saved


def config_fields() -> list[str]:
    return [f.name for f in fields(MathEvalConfig)]
