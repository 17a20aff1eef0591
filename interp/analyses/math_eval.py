"""Math evaluation: decode answers to GSM8K / MATH-500 / your own problems, grade them, report accuracy.

    from interp.analyses import math_eval
    result = math_eval.run(model, dataset="gsm8k", n_problems=100, out="runs/gsm8k")
    result.accuracy, result.accuracy_interval, result.mean_tokens
    result.tables["problems"][0]   # prompt, output, extracted answer, correct, tokens, hit the cap

Decoding goes through `interp.decoding.loop.generate` (batched, KV cache, edits as hooks). With `out`,
each finished batch is appended to `<out>.partial.jsonl` as it comes, so an interrupted run
resumes where it stopped; the finished result is saved to `out` and a second call with the same
config loads it instead of decoding again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots
from tqdm.auto import tqdm

from interp.data.math_prompts import STOP_STRINGS, chat_prompt, few_shot_prompt, plain_prompt
from interp.data.math_sets import MathProblem, load_gsm8k, load_jsonl, load_math500, subset
from interp.decoding import GenerationConfig, generate
from interp.decoding.processors import LogitProcessor
from interp.figures.common import TEMPLATE
from interp.interventions.arms import Arm, describe_edit
from interp.models import model_name
from interp.results import Result, config_to_dict
from interp.stats import wilson_interval
from interp.text.grading import grade

PROMPT_STYLES = ("chat", "plain", "few_shot")
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

    dataset: str = "gsm8k"
    split: str = "test"
    n_problems: int | None = 100
    seed: int = 0
    prompt_style: str = "chat"
    n_shots: int = 4
    max_new_tokens: int = 512
    batch_size: int = 16
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    stop_strings: tuple[str, ...] = ()
    use_cache: bool = True
    kl_budget: float | None = None
    problem_ids_sha: str = ""  # fingerprint of the evaluated problem ids, in order
    edits: str = "[]"  # JSON: hook, kind, positions and tensor norms of each edit
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
        low, high = self.accuracy_interval
        label = self.meta.get("arm", "model")
        fig = make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.3, 0.7],
            subplot_titles=(
                f"accuracy ({self.n_correct}/{self.n})",
                f"tokens generated (mean {self.mean_tokens:.0f}, {self.cap_rate:.0%} hit the cap)",
            ),
        )
        fig.add_trace(
            go.Bar(
                x=[label],
                y=[self.accuracy],
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=[high - self.accuracy],
                    arrayminus=[self.accuracy - low],
                ),
                showlegend=False,
            ),
            row=1,
            col=1,
        )
        for correct, colour in ((True, "#2ca02c"), (False, "#d62728")):
            fig.add_trace(
                go.Histogram(
                    x=[r["n_tokens"] for r in self.rows if bool(r["correct"]) == correct],
                    name="correct" if correct else "wrong",
                    marker_color=colour,
                    nbinsx=30,
                    opacity=0.7,
                ),
                row=1,
                col=2,
            )
        fig.add_vline(
            x=self.config.max_new_tokens, line_dash="dot", annotation_text="cap", row=1, col=2
        )
        fig.update_layout(
            template=TEMPLATE,
            barmode="stack",
            title=(
                f"{self.config.dataset} ({self.config.split}), {self.meta.get('model', '')}: "
                f"accuracy {self.accuracy:.1%} (95% CI {low:.1%}–{high:.1%})"
            ),
        )
        fig.update_yaxes(range=[0, 1], title_text="accuracy", row=1, col=1)
        fig.update_xaxes(title_text="tokens", row=1, col=2)
        fig.update_yaxes(title_text="problems", row=1, col=2)
        return fig


# --------------------------------------------------------------------------------------------------
# Problems and prompts


def load_problems(
    dataset: str = "gsm8k",
    split: str = "test",
    *,
    question_field: str = "question",
    answer_field: str = "answer",
) -> list[MathProblem]:
    """gsm8k (split train/test), math500, a JSONL path (field names configurable), or hf:NAME[:CONFIG]."""
    if dataset == "gsm8k":
        return load_gsm8k(split)  # type: ignore[arg-type]
    if dataset == "math500":
        return load_math500()
    if dataset.startswith("hf:"):
        from interp.data.math_sets import load_hf_dataset

        name, _, config = dataset[3:].partition(":")
        return load_hf_dataset(
            name,
            split,
            config=config or None,
            question_field=question_field,
            answer_field=answer_field,
        )
    if dataset.endswith(".jsonl") or Path(dataset).is_file():
        return load_jsonl(dataset, question_field, answer_field)
    raise ValueError(
        f"unknown dataset {dataset!r}: use 'gsm8k', 'math500', a path to a JSONL file, or "
        f"'hf:NAME[:CONFIG]' (needs the network)"
    )


def build_prompt(
    problem: MathProblem, tokenizer: Any, style: str = "chat", n_shots: int = 4, seed: int = 0
) -> str:
    """The prompt of one problem in the given style (chat = SEAL's \\boxed{} prompt)."""
    if style == "chat":
        return chat_prompt(problem, tokenizer)
    if style == "plain":
        return plain_prompt(problem)
    if style == "few_shot":
        has_template = getattr(tokenizer, "chat_template", None) is not None
        return few_shot_prompt(
            problem, n_shots, seed, tokenizer=tokenizer if has_template else None
        )
    raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {style!r}")


def default_stop_strings(style: str, tokenizer: Any) -> tuple[str, ...]:
    """Plain and plain-text few-shot prompts stop where the model starts inventing a next question."""
    if style == "plain" or (
        style == "few_shot" and getattr(tokenizer, "chat_template", None) is None
    ):
        return STOP_STRINGS
    return ()


def problem_ids_sha(problems: Sequence[MathProblem]) -> str:
    return hashlib.sha256("\n".join(p.id for p in problems).encode()).hexdigest()[:16]


def describe_processors(processors: Sequence[LogitProcessor]) -> str:
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
    edits: Sequence = (),
    logit_processors: Sequence[LogitProcessor] = (),
    max_new_tokens: int = 512,
    batch_size: int = 16,
    out: str | os.PathLike | None = None,
    grade_timeout: float = 5.0,
    progress: bool = True,
    reuse: Sequence[MathEvalResult] = (),
    **generation: Any,
) -> MathEvalResult:
    """Decode an answer to each problem (with `edits` hooked in), grade it, and return the rows.

    `model` may be an `Arm` (its edits are used). `problems` replaces loading `dataset`; otherwise
    `n_problems` are drawn from it with `seed` (None: all). Generation overrides: do_sample,
    temperature, top_k, top_p, stop_strings, use_cache (sampling is seeded with `seed`).
    `reuse`: earlier results of the same model and decoding settings; their rows for these
    problems are taken instead of decoding again (e.g. a 40-problem run inside a 100-problem one).
    """
    arm = model if isinstance(model, Arm) else Arm("model", model, tuple(edits))
    if isinstance(model, Arm) and edits:
        raise ValueError("pass edits through the Arm or through edits=, not both")
    unknown = set(generation) - set(GENERATION_OVERRIDES)
    if unknown:
        raise TypeError(
            f"unknown generation settings {sorted(unknown)}; allowed: {GENERATION_OVERRIDES}"
        )
    if prompt_style not in PROMPT_STYLES:
        raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {prompt_style!r}")
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
        dataset=dataset,
        split=split,
        n_problems=len(problems),
        seed=seed,
        prompt_style=prompt_style,
        n_shots=n_shots,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        stop_strings=stop,
        problem_ids_sha=problem_ids_sha(problems),
        edits=json.dumps([describe_edit(e) for e in arm.edits]),
        logit_processors=describe_processors(logit_processors),
        grade_timeout=grade_timeout,
        **generation,
    )
    meta = {"model": model_name(arm.model), "arm": arm.name}
    if out is not None:
        finished = load_finished(out, config)
        if finished is not None:
            return finished
    progress_file = ProgressFile(out, config) if out is not None else None
    done = progress_file.rows() if progress_file else {}
    reused = reusable_rows(reuse, config, meta["model"], problems, done)
    done.update(reused)
    if progress_file and reused:
        progress_file.append(list(reused.values()))
    pending = [(i, p) for i, p in enumerate(problems) if p.id not in done]
    prompts = {p.id: build_prompt(p, tokenizer, prompt_style, n_shots, seed) for _, p in pending}
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
    batches = range(0, len(pending), batch_size)
    for start in tqdm(batches, desc=f"math-eval {arm.name}", disable=not progress or not pending):
        chunk = pending[start : start + batch_size]
        decoded = generate(
            arm.model,
            [prompts[p.id] for _, p in chunk],
            edit_list=arm.edits,
            config=generation_config,
            logit_processors=logit_processors,
            # sampling seeds follow the problem's index, so resuming samples what a full run would
            seed=seed + chunk[0][0],
        )
        rows = [
            problem_row(index, problem, prompts[problem.id], decoded, j, tokenizer, grade_timeout)
            for j, (index, problem) in enumerate(chunk)
        ]
        for row in rows:
            done[row["id"]] = row
        if progress_file:
            progress_file.append(rows)
    result = MathEvalResult(
        config=config, tables={"problems": [done[p.id] for p in problems]}, meta=meta
    )
    result.meta.update({k: v for k, v in result.summary().items() if k not in ("model",)})
    if out is not None:
        result.save(out)
        progress_file.remove()
    return result


# Config fields that do not change what is decoded for one problem.
_NOT_DECODING = ("dataset", "split", "n_problems", "problem_ids_sha", "batch_size", "grade_timeout")


def reusable_rows(
    results: Sequence[MathEvalResult],
    config: MathEvalConfig,
    model: str,
    problems: Sequence[MathProblem],
    done: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Rows of earlier results decoded exactly as `config` would decode them, for missing problems."""
    index = {p.id: i for i, p in enumerate(problems)}
    gold = {p.id: p.answer for p in problems}
    rows: dict[str, dict[str, Any]] = {}
    for result in results:
        mismatched = decoding_mismatch(result, config, model)
        if mismatched:
            raise ValueError(
                f"cannot reuse a result of model {result.meta.get('model')!r} decoded with other "
                f"settings ({', '.join(mismatched)} differ)"
            )
        for row in result.rows:
            if row["id"] in index and row["id"] not in done and row["gold"] == gold[row["id"]]:
                if config.do_sample and row["index"] != index[row["id"]]:
                    continue  # a sample's seed follows its index
                rows[row["id"]] = {**row, "index": index[row["id"]]}
    return rows


def answer_text(tokenizer: Any, tokens: Sequence[int], finish_reason: str) -> str:
    """The answer's text without the end-of-sequence token it stopped on (tokens keep it)."""
    if finish_reason == "eos" and tokens:
        tokens = tokens[:-1]
    return tokenizer.decode(list(tokens))


def decoding_mismatch(result: MathEvalResult, config: MathEvalConfig, model: str) -> list[str]:
    """What differs between how `result` was decoded and how `config` decodes (empty: reusable)."""
    # greedy answers do not depend on the seed; samples do (seed + problem index)
    skip = _NOT_DECODING if config.do_sample else (*_NOT_DECODING, "seed")
    mismatched = [
        name
        for name in config_fields()
        if name not in skip and getattr(result.config, name) != getattr(config, name)
    ]
    return mismatched if result.meta.get("model") == model else ["model", *mismatched]


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


def load_finished(out: str | os.PathLike, config: MathEvalConfig) -> MathEvalResult | None:
    """A saved result at `out` made with the same config, or None (a different config is an error)."""
    out = Path(out)
    if not (out / "meta.json").exists():
        return None
    saved = MathEvalResult.load(out)
    if saved.config != config:
        raise ValueError(
            f"{out} holds a math-eval result made with a different config; choose another `out` "
            f"or delete it to recompute.\n saved: {config_to_dict(saved.config)}\n now:   "
            f"{config_to_dict(config)}"
        )
    return saved


class ProgressFile:
    """`<out>.partial.jsonl`: a header with the config, then finished rows, appended batch by batch."""

    def __init__(self, out: str | os.PathLike, config: Any):
        self.path = Path(f"{Path(out)}.partial.jsonl")
        self.header = {"config": config_to_dict(config)}
        if self.path.exists():
            with self.path.open(encoding="utf-8") as f:
                first = f.readline()
            try:
                header = json.loads(first)
            except json.JSONDecodeError:
                header = None
            _drop_torn_tail(self.path)
            if header != self.header:
                raise ValueError(
                    f"{self.path} holds a partial run with a different config; delete it or choose "
                    f"another `out` (it was not written by this configuration)"
                )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write_lines([self.header])

    def rows(self, key: str = "id") -> dict[Any, dict[str, Any]]:
        """Finished rows by `key` (a last line cut off by a crash is ignored)."""
        done = {}
        with self.path.open(encoding="utf-8") as f:
            next(f)
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                done[row_key(row, key)] = row
        return done

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        self._write_lines(rows)

    def _write_lines(self, rows: Sequence[dict[str, Any]]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line left without its newline by a crash, so appends start on a fresh line."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def row_key(row: dict[str, Any], key: str | tuple[str, ...]) -> Any:
    return tuple(row[k] for k in key) if isinstance(key, tuple) else row[key]


def config_fields() -> list[str]:
    return [f.name for f in fields(MathEvalConfig)]
