"""A faithfulness probe read token by token along answers: where does the model's text turn?

base = faithfulness.run(model)
trace = faithfulness_trace.run(Arm.edited(model, red_edits, "RED"), base)
trace.figure()         # P(faithful) at each answer token, one row per answer (red: faithful)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.faithfulness import (
    ANSWER_FORMAT,
    PROMPT_FORMAT,
    FaithfulnessResult,
    encode_answer,
    encode_question,
)
from interp.core.runner import activations
from interp.decoding import generate
from interp.figures.faithfulness import token_trace_figure
from interp.interventions import Edit, edits
from interp.interventions.arms import Arm
from interp.models import model_name
from interp.results import Result

__all__ = ["TokenTrace", "TokenTraceConfig", "run"]


@dataclass(frozen=True)
class TokenTraceConfig:
    prompt_format: str = PROMPT_FORMAT  # the probe result's formats
    answer_format: str = ANSWER_FORMAT
    layer: int = 0
    n_answers: int = 4
    max_new_tokens: int = 48
    arm: str = "base"
    stop_strings: tuple[str, ...] = ("\nQ:", "\n\n")
    include_restatements: bool = True


@dataclass
class TokenTrace(Result):
    """The probe's P(faithful) at every answer token of generated answers (and of the triples'
    own restatements, teacher forced), one row per answer."""

    config_class = TokenTraceConfig

    def figure(self):
        return token_trace_figure(self)


@torch.no_grad()
def run(
    model,
    result: FaithfulnessResult,
    edit_list: Sequence[Edit] | None = None,
    *,
    layer: int | None = None,
    n_answers: int = 4,
    max_new_tokens: int = 48,
    stop_strings: tuple[str, ...] = ("\nQ:", "\n\n"),
    include_restatements: bool = True,
) -> TokenTrace:
    """Decode answers to held-out questions of `result` ("Q: {question}\\nA:", greedy, with the
    arm's edits) and score each answer position with the probe at `layer` (default: the layer
    of best AUC). With `include_restatements`, the held-out triples' correct and incorrect
    restatements are scored the same way (teacher forced), showing where the probe turns."""
    if isinstance(model, Arm) and edit_list is not None:
        raise ValueError("pass edits either in the Arm or as `edit_list`, not both")
    arm = Arm.of(model, edit_list or (), name=result.config.arm)
    arm_name, model, edit_list = arm.name, arm.model, list(arm.edit_list)
    prompt_format, answer_format = result.config.prompt_format, result.config.answer_format
    layer = result.best_layer() if layer is None else layer
    weight, intercept = result.probe(layer)
    hook = f"blocks.{layer}.hook_resid_post"
    if n_answers < 1:
        raise ValueError("n_answers must be at least 1")
    held_out = sorted({int(i) for i in result.tensors["triple_index"][result.tensors["is_test"]]})
    chosen, seen = [], set()
    for i in held_out:  # one triple per question
        triple = result.tables["triples"][i]
        if triple["question"] not in seen and len(chosen) < n_answers:
            seen.add(triple["question"])
            chosen.append(triple)
    prompts = [encode_question(model.tokenizer, t["question"], prompt_format) for t in chosen]
    generation = generate(
        model,
        prompts,
        edit_list=edit_list,
        max_new_tokens=max_new_tokens,
        stop_strings=stop_strings,
        batch_size=len(prompts),
    )
    rows = []
    for triple, prompt, answer in zip(chosen, prompts, generation.tokens):
        rows.append({"id": triple["id"], "kind": "generated", "prompt": prompt, "answer": answer})
        if include_restatements:
            for kind, key in (("correct", "correct_answers"), ("incorrect", "incorrect_answers")):
                own = encode_answer(model.tokenizer, triple[key][0], answer_format)
                rows.append({"id": triple["id"], "kind": kind, "prompt": prompt, "answer": own})
    table = []
    for row in rows:
        if not row["answer"]:
            continue
        states = _states_along(model, row["prompt"], row["answer"], hook, edit_list)
        logits = states @ weight + intercept
        table.append(
            {
                "id": row["id"],
                "kind": row["kind"],
                "tokens": [model.tokenizer.decode([t]) for t in row["answer"]],
                "p_faithful": torch.sigmoid(logits).tolist(),
                "text": model.tokenizer.decode(row["answer"]),
            }
        )
    config = TokenTraceConfig(
        prompt_format=prompt_format,
        answer_format=answer_format,
        layer=layer,
        n_answers=n_answers,
        max_new_tokens=max_new_tokens,
        arm=arm_name,
        stop_strings=tuple(stop_strings),
        include_restatements=include_restatements,
    )
    meta = {
        "model": model_name(model),
        "probe_auc": float(result.tensors["auc"][result.layers.index(layer)]),
    }
    return TokenTrace(config=config, tensors={}, tables={"traces": table}, meta=meta)


def _states_along(
    model, prompt: Sequence[int], answer: Sequence[int], hook: str, edit_list: Sequence[Edit]
) -> Float[Tensor, "answer d"]:
    """Residual states at every answer position (after reading that token), with the edits on."""
    tokens = torch.tensor([list(prompt) + list(answer)], device=next(model.parameters()).device)
    with edits(model, edit_list):
        _, cache = activations(
            model,
            tokens,
            names_filter=lambda n: n == hook,
            prompt_lengths=[len(prompt)],
            return_type=None,
        )
    return cache[hook][0, len(prompt) :].float().cpu()
