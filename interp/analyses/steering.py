"""SEAL steered decoding against the plain model and a logits penalty, with ablations (SEAL step 3;
SEAL: arXiv 2504.07986).

    states = thought_states.ThoughtStatesResult.load("runs/seal/thought_states")
    result = steering.run(model, states, problems, layers=(8, 12, 16), alphas=(0.5, 1, 2),
                          main_layer=12, main_alpha=1.0, span="response")
    result.comparison()      # base, logits penalty, steered: accuracy, tokens, thoughts per class
    result.figure()          # accuracy and tokens vs alpha, and vs layer

Arms, each decoded greedily through `math_eval.run` (the foundation's loop, KV cache on):
- base: the plain model;
- penalty: `value` (default -3) added to the logits of every token whose text contains one of the
  penalty strings ("Wait", "Alternatively", ...), the baseline of SEAL's paper;
- steered: alpha * vector added at `blocks.L.hook_resid_pre` on the boundary tokens inside the span,
  each when it is fed back into the model (as SEAL's code does); one arm per (layer, alpha) of the
  ablation grid, plus one per vector variant (e.g. execution - reflection only) at the main
  (layer, alpha).
Every arm's outputs are split into thoughts again, so the table shows what steering did to the
number of reflections and transitions, not only to accuracy and length.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp.analyses import math_eval
from interp.analyses.thought_states import ThoughtStatesResult
from interp.analyses.thought_stats import response_row
from interp.core.positions import boundary_tokens
from interp.data.math_sets import MathProblem, problem_ids_sha
from interp.data.reasoning_traces import TRACE_SOURCE, trace_statistics
from interp.decoding.processors import TokenPenalty
from interp.distributed import WorkerPool, check_workers, pool_for
from interp.figures.seal import steering_figure
from interp.interventions.steering_vector import VARIANTS, SteeringVector
from interp.models import model_name
from interp.results import Result
from interp.text.thoughts import (
    CLASSES,
    SEAL_KEYWORDS,
    Response,
    ThoughtKeywords,
    resolve_span,
    segment_response,
)

GRIDS = ("cross", "full")
DEFAULT_PENALTY_STRINGS = ("Wait", "Alternatively")


@dataclass(frozen=True)
class SteeringConfig:
    layers: tuple[int, ...] = ()  # ablation layers
    alphas: tuple[float, ...] = (1.0,)  # ablation strengths (0 is the base arm)
    main_layer: int = 0
    main_alpha: float = 1.0
    grid: str = "cross"  # "cross": alphas at main_layer + layers at main_alpha; "full": all pairs
    variants: tuple[str, ...] = ("pooled",)  # vector variants; those past the first at main only
    pooling: str = "samples"
    normalization: str = "none"
    penalty_strings: tuple[str, ...] = DEFAULT_PENALTY_STRINGS
    penalty_value: float = -3.0
    span: str = "think"
    keywords: ThoughtKeywords = SEAL_KEYWORDS
    prompt_style: str = "chat"  # math_eval's prompt: "chat" (the model's chat template) | "plain"
    max_new_tokens: int = 512
    batch_size: int = 16
    do_sample: bool = False  # SEAL decodes greedily
    temperature: float = 1.0
    seed: int = 0
    problem_ids_sha: str = ""


@dataclass(frozen=True)
class ArmSpec:
    """One decoding condition of the study."""

    name: str
    kind: str  # base | penalty | steered
    layer: int | None = None
    alpha: float | None = None
    variant: str | None = None


def arm_specs(config: SteeringConfig) -> list[ArmSpec]:
    """base, penalty, the steering grid with the first variant, then other variants at the main point."""
    specs = [ArmSpec("base", "base"), ArmSpec("penalty", "penalty")]
    first, *others = config.variants
    if config.grid == "full":
        pairs = [(layer, alpha) for layer in config.layers for alpha in config.alphas]
    else:
        pairs = [(config.main_layer, alpha) for alpha in config.alphas]
        pairs += [(layer, config.main_alpha) for layer in config.layers]
    pairs.append((config.main_layer, config.main_alpha))
    seen = set()
    for layer, alpha in pairs:
        if (layer, alpha) in seen or alpha == 0:
            continue
        seen.add((layer, alpha))
        specs.append(ArmSpec(_steer_name(first, layer, alpha), "steered", layer, alpha, first))
    for variant in others:
        name = _steer_name(variant, config.main_layer, config.main_alpha)
        specs.append(ArmSpec(name, "steered", config.main_layer, config.main_alpha, variant))
    return specs


def _steer_name(variant: str, layer: int, alpha: float) -> str:
    return f"steer_{variant}_L{layer}_a{alpha:g}"


@dataclass
class SteeringResult(Result):
    config_class = SteeringConfig

    def arm(self, name: str) -> dict[str, Any]:
        for row in self.tables["arms"]:
            if row["arm"] == name:
                return row
        raise KeyError(f"no arm {name!r}; arms: {[r['arm'] for r in self.tables['arms']]}")

    def comparison(self) -> list[dict[str, Any]]:
        """base, penalty and the steered arms at the main (layer, alpha), one per vector variant."""
        c = self.config
        return [
            row
            for row in self.tables["arms"]
            if row["kind"] != "steered"
            or (row["layer"] == c.main_layer and row["alpha"] == c.main_alpha)
        ]

    def figure(self):
        return steering_figure(self)


def _vectors(
    source: ThoughtStatesResult | SteeringVector,
    variants: Sequence[str],
    pooling: str,
    normalization: str,
) -> dict[str, SteeringVector]:
    if isinstance(source, SteeringVector):
        if list(variants) not in ([], ["pooled"]):
            raise ValueError(
                "variants need the thought-state result (class sums); pass it instead of one vector"
            )
        return {"pooled": source}
    return {
        variant: source.steering_vector(variant, pooling=pooling, normalization=normalization)
        for variant in variants
    }


def run(
    model,
    source: ThoughtStatesResult | SteeringVector,
    problems: Sequence[MathProblem],
    *,
    layers: Sequence[int] | None = None,
    alphas: Sequence[float] = (1.0,),
    main_layer: int | None = None,
    main_alpha: float | None = None,
    grid: str = "cross",
    variants: Sequence[str] = ("pooled",),
    pooling: str = "samples",
    normalization: str = "none",
    penalty_strings: Sequence[str] = DEFAULT_PENALTY_STRINGS,
    penalty_value: float = -3.0,
    span: str = "think",
    keywords: ThoughtKeywords = SEAL_KEYWORDS,
    prompt_style: str = "chat",
    max_new_tokens: int = 512,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    workers: int | WorkerPool = 1,
    ray_address: str | None = None,
) -> SteeringResult:
    """Decode `problems` under every arm, grade them, and count thoughts per class in the outputs.

    With `out`, each arm's math evaluation is kept in `out/<arm>` (resumable batch by batch).
    `workers` > 1 (or a `WorkerPool`): each arm's batches are decoded on Ray workers that load the
    model once for all arms (`math_eval.run`'s `workers`).
    """
    for name, value in (("max_new_tokens", max_new_tokens), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    check_workers(workers)
    if not all(math.isfinite(a) for a in (*alphas, main_alpha or 0.0, penalty_value)):
        raise ValueError(
            f"alphas, main_alpha and penalty_value must be finite, got {alphas}, {main_alpha}, {penalty_value}"
        )
    problems = list(problems)
    if not problems:
        raise ValueError("no problems to evaluate steering on")
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    if not variants:
        raise ValueError("give at least one vector variant (e.g. 'pooled')")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown vector variants {unknown}; known: {sorted(VARIANTS)}")
    vectors = _vectors(source, variants, pooling, normalization)
    available = vectors[variants[0]].layers
    layers = tuple(available if layers is None else (int(x) for x in layers))
    main_layer = layers[len(layers) // 2] if main_layer is None else int(main_layer)
    main_alpha = float(alphas[0] if main_alpha is None else main_alpha)
    missing = sorted({*layers, main_layer} - set(available))
    if missing:
        raise ValueError(
            f"no steering vector at layers {missing}: the thought states hold layers {available}"
        )
    tokenizer = model.tokenizer
    span = resolve_span(tokenizer, span)
    config = SteeringConfig(
        layers=layers,
        alphas=tuple(float(a) for a in alphas),
        main_layer=main_layer,
        main_alpha=main_alpha,
        grid=grid,
        variants=tuple(variants),
        pooling=pooling,
        normalization=normalization,
        penalty_strings=tuple(penalty_strings),
        penalty_value=penalty_value,
        span=span,
        keywords=keywords,
        prompt_style=prompt_style,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        do_sample=do_sample,
        temperature=temperature,
        seed=seed,
        problem_ids_sha=problem_ids_sha(problems),
    )
    by_id = {p.id: p for p in problems}
    # problems of the organism's trace generator: each reflection's necessity can be read off
    organism = all(p.source == TRACE_SOURCE for p in problems)
    boundaries = boundary_tokens(tokenizer)
    arm_rows, problem_rows, base_outputs = [], [], {}
    with pool_for(model, workers, ray_address) as shared_workers:
        for spec in arm_specs(config):
            edit_list, processors = [], []
            if spec.kind == "penalty":
                processors = [TokenPenalty.containing(tokenizer, penalty_strings, penalty_value)]
            elif spec.kind == "steered":
                vector = vectors[spec.variant]
                edit_list = [vector.edit(model, spec.layer, spec.alpha, span=span)]
            evaluation = math_eval.run(
                model,
                problems=problems,
                edit_list=edit_list,
                logit_processors=processors,
                prompt_style=prompt_style,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                seed=seed,
                do_sample=do_sample,
                temperature=temperature,
                out=None if out is None else Path(out) / spec.name,
                progress=progress,
                workers=shared_workers,
            )
            per_problem = []
            for row in evaluation.rows:
                problem = by_id[row["id"]]
                response = response_from_row(row, problem)
                thoughts = segment_response(
                    response, tokenizer, span=span, keywords=config.keywords, boundaries=boundaries
                )
                counts = response_row(response, thoughts)
                per_problem.append({"arm": spec.name, **counts})
                if spec.kind == "base":
                    base_outputs[row["id"]] = row["output"]
            changed = sum(r["output"] != base_outputs.get(r["id"]) for r in evaluation.rows)
            problem_rows.extend(per_problem)
            row = _arm_row(spec, evaluation, per_problem, changed)
            if organism:
                row.update(_organism_columns(evaluation.rows, by_id))
            arm_rows.append(row)
    meta = {
        "model": model_name(model),
        "n_problems": len(problems),
        "problem_ids": [p.id for p in problems],
        "vectors": {name: v.describe() for name, v in vectors.items()},
        "penalised_tokens": len(
            TokenPenalty.containing(tokenizer, penalty_strings, penalty_value).token_ids
        ),
    }
    tables = {"arms": arm_rows, "problems": problem_rows}
    return SteeringResult(config=config, tables=tables, meta=meta)


def response_from_row(row: dict[str, Any], problem: MathProblem) -> Response:
    """A math-eval row as a `Response` (its own token ids, verdict and difficulty)."""
    return Response(
        id=row["id"],
        prompt_tokens=row["prompt_tokens"],
        tokens=row["output_tokens"],
        correct=bool(row["correct"]),
        level=problem.level,
        source=problem.source,
        hit_cap=bool(row["hit_cap"]),
    )


ORGANISM_COLUMNS = (
    "needed_reflections_per_response",
    "redundant_reflections_per_response",
    "wrong_step_rate",
    "reflection_after_wrong",
    "reflection_after_right",
    "well_formed",
)


def _organism_columns(
    rows: list[dict[str, Any]], by_id: dict[str, MathProblem]
) -> dict[str, float]:
    """For the trace generator's problems: needed and redundant reflections per response (after a
    wrong / a right step), the slip rate and the format, read from the outputs' text."""
    stats = trace_statistics([r["output"] for r in rows], [by_id[r["id"]].answer for r in rows])
    return {key: stats[key] for key in ORGANISM_COLUMNS}


def _arm_row(spec: ArmSpec, evaluation, per_problem: list[dict], changed: int) -> dict[str, Any]:
    low, high = evaluation.accuracy_interval
    n = evaluation.n
    row = {
        "arm": spec.name,
        "kind": spec.kind,
        "layer": spec.layer,
        "alpha": spec.alpha,
        "variant": spec.variant,
        "n": n,
        "correct": evaluation.n_correct,
        "accuracy": evaluation.accuracy,
        "accuracy_low": low,
        "accuracy_high": high,
        "mean_tokens": evaluation.mean_tokens,
        "cap_rate": evaluation.cap_rate,
        "outputs_changed": changed / n,
    }
    for name in CLASSES:
        row[f"{name}_per_response"] = sum(r[f"{name}_thoughts"] for r in per_problem) / n
    row["boundaries_per_response"] = sum(r["boundaries"] for r in per_problem) / n
    return row


def comparison_markdown(result: SteeringResult, rows: list[dict] | None = None) -> str:
    """A markdown table of arms: accuracy (95% CI), tokens, cap rate, thoughts per response."""
    rows = result.comparison() if rows is None else rows
    lines = [
        "| arm | layer | alpha | accuracy (95% CI) | mean tokens | hit cap | outputs changed "
        "| reflection / response | transition / response | execution / response |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    organism = bool(rows) and all("needed_reflections_per_response" in r for r in rows)
    if organism:
        lines[0] += " needed reflections / response | redundant reflections / response |"
        lines[1] += " --- | --- |"
    for r in rows:
        extra = (
            f" {r['needed_reflections_per_response']:.2f} |"
            f" {r['redundant_reflections_per_response']:.2f} |"
            if organism
            else ""
        )
        lines.append(
            f"| {r['arm']} | {'' if r['layer'] is None else r['layer']} | "
            f"{'' if r['alpha'] is None else format(r['alpha'], 'g')} | "
            f"{r['correct']}/{r['n']} = {r['accuracy']:.1%} ({r['accuracy_low']:.1%}–"
            f"{r['accuracy_high']:.1%}) | {r['mean_tokens']:.0f} | {r['cap_rate']:.0%} | "
            f"{r['outputs_changed']:.0%} | {r['reflection_per_response']:.2f} | "
            f"{r['transition_per_response']:.2f} | {r['execution_per_response']:.2f} |{extra}"
        )
    return "\n".join(lines)
