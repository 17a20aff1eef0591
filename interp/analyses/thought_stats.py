"""How many thoughts of each class a model writes, and how long they are (SEAL step 1).

    stats = thought_stats.run(model, responses, span="response")
    stats.figure()                     # thoughts and tokens per response, by class and group
    stats.tables["by_correct"]         # per class: thoughts, tokens, per response, share

Responses are split at blank-line boundaries and classified by keywords (`interp.text.thoughts`).
Counts are split by whether the final answer was right and by difficulty (MATH500 level; other
sets form one group each, e.g. "gsm8k"). Tokens of a thought exclude its boundary token.
SEAL: arXiv 2504.07986.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from interp.core.positions import boundary_tokens
from interp.figures.seal import thought_stats_figure
from interp.models import model_name
from interp.results import Result
from interp.text.thoughts import (
    CLASSES,
    SEAL_KEYWORDS,
    Response,
    Thought,
    ThoughtKeywords,
    resolve_span,
    segment_response,
)


@dataclass(frozen=True)
class ThoughtStatsConfig:
    span: str = "think"  # "think": inside <think>..</think>; "response": the whole response
    keywords: ThoughtKeywords = SEAL_KEYWORDS
    example_chars: int = 160  # how much of each thought's text the "thoughts" table keeps


@dataclass
class ThoughtStatsResult(Result):
    config_class = ThoughtStatsConfig

    def totals(self) -> dict[str, int]:
        """Thoughts of each class over all responses."""
        return {r["class"]: r["thoughts"] for r in self.tables["by_correct"] if r["group"] == "all"}

    def figure(self):
        return thought_stats_figure(self)


def _correct_group(response: Response) -> str:
    if response.correct is None:
        return "ungraded"
    return "correct" if response.correct else "wrong"


def _summary_rows(per_response: list[dict], key: str) -> list[dict]:
    """Per group (plus "all") and class: thoughts, tokens, means per response, share of thoughts."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in per_response:
        groups[row[key]].append(row)
        groups["all"].append(row)
    rows = []
    for group in sorted(groups, key=lambda g: (g == "all", g)):
        members = groups[group]
        n_thoughts_all = sum(r[f"{c}_thoughts"] for r in members for c in CLASSES)
        for name in CLASSES:
            thoughts = sum(r[f"{name}_thoughts"] for r in members)
            tokens = sum(r[f"{name}_tokens"] for r in members)
            rows.append(
                {
                    "group": group,
                    "class": name,
                    "responses": len(members),
                    "thoughts": thoughts,
                    "tokens": tokens,
                    "thoughts_per_response": thoughts / len(members),
                    "tokens_per_response": tokens / len(members),
                    "share_of_thoughts": thoughts / n_thoughts_all if n_thoughts_all else 0.0,
                    "responses_with_class": sum(r[f"{name}_thoughts"] > 0 for r in members),
                }
            )
    return rows


def response_row(response: Response, thoughts: Sequence[Thought]) -> dict:
    """One response's counts: thoughts and tokens per class, plus what is known about it."""
    row = {
        "id": response.id,
        "source": response.source,
        "level": response.level,
        "difficulty": response.group,
        "correct": response.correct,
        "correctness": _correct_group(response),
        "hit_cap": response.hit_cap,
        "response_tokens": len(response.tokens),
        "thoughts": len(thoughts),
        "boundaries": sum(t.boundary is not None for t in thoughts),
    }
    for name in CLASSES:
        own = [t for t in thoughts if t.label == name]
        row[f"{name}_thoughts"] = len(own)
        row[f"{name}_tokens"] = sum(t.n_tokens for t in own)
    return row


def run(
    model,
    responses: Iterable[Response],
    *,
    span: str = "think",
    keywords: ThoughtKeywords = SEAL_KEYWORDS,
    example_chars: int = 160,
) -> ThoughtStatsResult:
    """Segment and classify every response; count thoughts and tokens per class and group.

    `model` may be a model with a tokenizer or a tokenizer. `span="auto"` picks "think" when
    `<think>` is one token of the vocabulary, else "response" (the resolved value is saved).
    """
    tokenizer = getattr(model, "tokenizer", model)
    responses = list(responses)
    if not responses:
        raise ValueError("no responses given: generate some first (python -m interp thoughts)")
    span = resolve_span(tokenizer, span)
    config = ThoughtStatsConfig(span=span, keywords=keywords, example_chars=example_chars)
    boundaries = boundary_tokens(tokenizer)
    per_response, thought_rows = [], []
    for response in responses:
        thoughts = segment_response(
            response, tokenizer, span=span, keywords=config.keywords, boundaries=boundaries
        )
        per_response.append(response_row(response, thoughts))
        for thought in thoughts:
            thought_rows.append(
                {
                    "id": response.id,
                    "index": thought.index,
                    "class": thought.label,
                    "tokens": thought.n_tokens,
                    "has_boundary": thought.boundary is not None,
                    "text": thought.text[:example_chars],
                }
            )
    tables = {
        "per_response": per_response,
        "by_correct": _summary_rows(per_response, "correctness"),
        "by_level": _summary_rows(per_response, "difficulty"),
        "thoughts": thought_rows,
    }
    meta = {
        "model": model_name(model) if hasattr(model, "cfg") else getattr(model, "name_or_path", ""),
        "n_responses": len(responses),
        "n_thoughts": len(thought_rows),
        "responses_without_thoughts": sum(r["thoughts"] == 0 for r in per_response),
    }
    return ThoughtStatsResult(config=config, tables=tables, meta=meta)
