"""Answer extraction and equivalence: a table of right and wrong outputs, plus threads and timeouts."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from interp.text.grading import (
    extract_answer,
    extract_answer_with_method,
    grade,
    is_equivalent,
    normalize_answer,
    parse_number,
    symbolic_timeouts,
)

# (model output, gold, expected correct)
GRADE_CASES: list[tuple[str, str, bool]] = [
    # boxed, nested braces, last box wins
    (r"so the answer is \boxed{\frac{1}{2}}.", "0.5", True),
    (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt3}{2}", True),
    (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{1}{2}", False),
    (r"First \boxed{3}, but wait, it is \boxed{4}.", "4", True),
    (r"First \boxed{4}, but wait, it is \boxed{3}.", "4", False),
    (r"$\boxed{\{1, 2\}}$", r"\{2,1\}", True),
    (r"\fbox{12}", "12", True),
    (r"The result: \boxed{12} ... then truncated \boxed{13", "12", True),
    # the gold appears in the output but the final answer differs: wrong
    (r"She has 18 eggs, buys 2 more, so \boxed{20}", "18", False),
    ("Janet has 18 eggs and sells 9.\n#### 9", "18", False),
    ("18 eggs at first; after eating 2 she has 16 eggs.", "18", False),
    ("The answer is 118.", "18", False),
    ("The final answer is 1.8", "18", False),
    # GSM8K markers and phrases
    ("She makes 9 * 2 = $18 every day.\n#### 18", "18", True),
    ("#### 1,000", "1000", True),
    ("#### 1000", "1,000", True),
    ("The final answer is 42.", "42", True),
    ("The final answer is 42.", "24", False),
    ("So the answer is 7 apples.", "7", True),
    ("The answer is clearly 12.", "12", True),
    ("the answer is 5 + 3 = 8.", "8", True),
    ("The final answer is **18**.", "18", True),
    (r"The final answer is $\frac{3}{4}$.", "0.75", True),
    # last-number fallback
    ("She ends up with 5 apples.", "5", True),
    ("She ends up with 5 apples after starting with 9.", "5", False),
    ("It drops by 3 degrees to -7", "-7", True),
    ("5-3=2", "2", True),
    ("5-3=2", "-3", False),
    # commas in numbers, money, units
    (r"\boxed{1,000,000}", "1000000", True),
    (r"\boxed{10,\!080}", "10080", True),
    (r"\boxed{\$18}", "18", True),
    (r"\boxed{\$18.00}", "18", True),
    (r"\boxed{18 \text{ dollars}}", "18", True),
    ("The answer is 18 dollars.", "18", True),
    ("#### $18", "18", True),
    (r"\boxed{15\text{ cm}^2}", r"15\mbox{ cm}^2", True),
    (r"\boxed{864}", r"864 \mbox{ inches}^2", True),
    (r"\boxed{5.4}", r"5.4 \text{ cents}", True),
    (r"\boxed{5.5}", r"5.4 \text{ cents}", False),
    (r"\boxed{90^\circ}", "90", True),
    (r"\boxed{90}", r"90^\circ", True),
    (r"\boxed{45^{\circ}}", r"90^\circ", False),
    # fractions in every spelling
    (r"\boxed{\frac{1}{2}}", "1/2", True),
    (r"\boxed{1/2}", r"\frac12", True),
    (r"\boxed{\dfrac{1}{2}}", "0.5", True),
    (r"\boxed{\tfrac{3}{4}}", r"\frac{3}{4}", True),
    (r"\boxed{-\frac{1}{2}}", "-0.5", True),
    (r"\boxed{\frac{-1}{2}}", r"-\frac12", True),
    (r"\boxed{0.3333333}", r"\frac{1}{3}", True),
    (r"\boxed{0.33}", r"\frac{1}{3}", False),
    (r"\boxed{\frac{1}{3}}", r"\frac{1}{2}", False),
    (r"\boxed{\frac{270}{7}}", r"\frac{270}7\text{ degrees}", True),
    # square roots (symbolic)
    (r"\boxed{\sqrt{2}/2}", r"\frac{\sqrt2}{2}", True),
    (r"\boxed{\frac{1}{\sqrt{2}}}", r"\frac{\sqrt{2}}{2}", True),
    (r"\boxed{\sqrt{3}/2}", r"\frac{\sqrt2}{2}", False),
    (r"\boxed{2\sqrt{2}}", r"\sqrt{8}", True),
    # intervals and tuples
    (r"\boxed{(1, 2]}", "(1,2]", True),
    (r"\boxed{[1, 2]}", "(1,2]", False),
    (r"\boxed{(1, 2)}", "(1,2]", False),
    (r"\boxed{(-\infty, 0]}", r"(-\infty,0]", True),
    (r"\boxed{(3, 4)}", "(3,4)", True),
    (r"\boxed{(4, 3)}", "(3,4)", False),
    (r"\boxed{(3, \frac{\pi}{2})}", r"\left( 3, \frac{\pi}{2} \right)", True),
    (r"\boxed{(3, \pi)}", r"\left( 3, \frac{\pi}{2} \right)", False),
    # negatives
    (r"\boxed{-5}", "-5", True),
    (r"\boxed{5}", "-5", False),
    (r"\boxed{-5}", "5", False),
    # percentages: the fraction form counts only when the gold is a percentage
    (r"\boxed{25\%}", "25", True),
    (r"\boxed{25}", r"25\%", True),
    (r"\boxed{0.25}", r"25\%", True),
    (r"\boxed{25\%}", "0.25", False),
    (r"\boxed{30\%}", r"25\%", False),
    # algebra and text answers (symbolic)
    (r"\boxed{x^2 + 2x + 1}", "(x+1)^2", True),
    (r"\boxed{2x}", "2", False),
    (r"\boxed{\text{Evelyn}}", r"\text{Evelyn}", True),
    (r"\boxed{\text{Navin}}", r"\text{Evelyn}", False),
    (r"\boxed{(C)}", r"\text{(C)}", True),
    (r"\boxed{\begin{pmatrix} 1 \\ -2 \end{pmatrix}}", r"\begin{pmatrix}1\\-2\end{pmatrix}", True),
    # no answer at all
    ("", "18", False),
    ("   ", "18", False),
    ("I do not know how to solve this.", "18", False),
    (r"\boxed{}", "0", False),
]


@pytest.mark.parametrize(("output", "gold", "expected"), GRADE_CASES)
def test_grade_table(output: str, gold: str, expected: bool) -> None:
    result = grade(output, gold)
    assert result.correct is expected, result
    assert result.method != "timeout"


def test_table_is_large_and_balanced() -> None:
    assert len(GRADE_CASES) >= 60
    assert sum(c for *_, c in GRADE_CASES) >= 25
    assert sum(not c for *_, c in GRADE_CASES) >= 25


# (text, extracted answer, how)
EXTRACT_CASES: list[tuple[str, str | None, str | None]] = [
    (r"\boxed{\frac{a}{\sqrt{b^{2}}}}", r"\frac{a}{\sqrt{b^{2}}}", "boxed"),
    (r"\boxed{\{1,2\}} and \boxed{x}", "x", "boxed"),
    (r"$\boxed{\{1, 2\}}$", r"\{1, 2\}", "boxed"),
    (r"\boxed 7$", "7", "boxed"),
    (r"only an open box \boxed{12", "12", "last_number"),
    ("blah\n#### 72\n", "72", "####"),
    ("The final answer is $\\$32,\\!348$.", r"\$32,\!348", "answer_is"),
    ("So the answer is (C).", "(C)", "answer_is"),
    ("The answer is not obvious, let us try 7 things", "7", "last_number"),
    ("x = -3 and t = 4.5.", "4.5", "last_number"),
    ("The price fell to -12 today", "-12", "last_number"),
    ("They sold 1,250 tickets.", "1,250", "last_number"),
    ("1/4 of the cake", "1/4", "last_number"),
    ("", None, None),
    ("nothing numeric here", None, None),
]


@pytest.mark.parametrize(("text", "answer", "how"), EXTRACT_CASES)
def test_extract_table(text: str, answer: str | None, how: str | None) -> None:
    assert extract_answer_with_method(text) == (answer, how)
    assert extract_answer(text) == answer


def test_grade_reports_methods() -> None:
    assert grade("#### 1,000", "1000").method == "numeric"
    assert grade(r"\boxed{(1,2]}", "(1, 2]").method == "string"
    assert grade(r"\boxed{\sqrt{2}/2}", r"\frac{\sqrt2}{2}").method == "symbolic"
    empty = grade("", "5")
    assert (empty.extracted, empty.correct, empty.method, empty.extraction) == (
        None,
        False,
        "no_answer",
        None,
    )


def test_normalize_and_parse_number() -> None:
    assert normalize_answer(r"\$32,\!348") == "32,348"
    assert normalize_answer(r"864 \mbox{ inches}^2") == "864"
    assert normalize_answer(r"\text{Evelyn}") == "Evelyn"
    assert normalize_answer("2x") == "2x"  # a variable is not a unit
    assert parse_number("32,348")[0] == 32348
    assert parse_number(r"\frac12") == (0.5, False)
    assert parse_number("25%") == (25, True)
    assert parse_number("(100,200)") is None  # a tuple, not a number with a thousands comma
    assert parse_number("1/0") is None


def test_is_equivalent_basics() -> None:
    assert is_equivalent("1,000", "1000")
    assert not is_equivalent(None, "1")
    assert not is_equivalent("", "1")


HARD = "9^{9^{9^{9}}}"  # sympy works on this for minutes


def test_symbolic_from_threads_and_timeout() -> None:
    """Worker threads get correct symbolic verdicts, and a runaway check stops at the timeout."""
    pairs = [
        (r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}", True),
        ("(x+1)^2", "x^2+2x+1", True),
        (r"\sqrt{3}", r"\sqrt{2}", False),
        ("x^2", "x^3", False),
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        # a generous timeout: this part is about threads, not speed (a busy machine is slow)
        verdicts = list(pool.map(lambda p: is_equivalent(p[0], p[1], timeout=60.0), pairs))
    assert verdicts == [expected for *_, expected in pairs]

    box: dict[str, object] = {}

    def slow() -> None:
        start = time.perf_counter()
        box["result"] = is_equivalent(HARD, "3", timeout=1.0)
        box["seconds"] = time.perf_counter() - start
        box["thread"] = threading.current_thread() is not threading.main_thread()

    thread = threading.Thread(target=slow)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert box["thread"] is True
    assert box["result"] is False
    assert box["seconds"] < 30  # timeout 1 s, plus at most a worker start-up
    assert (HARD, "3") in symbolic_timeouts()
    assert grade(rf"\boxed{{{HARD}}}", "3", timeout=0.5).method == "timeout"
    # the worker was replaced: later checks still work
    assert is_equivalent(r"\frac{1}{\sqrt{2}}", r"\frac{\sqrt2}{2}")
