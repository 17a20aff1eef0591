"""Answer extraction and equivalence: a table of right and wrong outputs, plus threads and timeouts."""

from __future__ import annotations

import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import numpy as np
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


# Real answer phrasings from GSM8K- and MATH-style outputs: (output, gold, expected correct,
# expected extracted answer, how it was extracted). The extraction columns make each row pass for
# the right reason: a verdict reached by reading the wrong number fails the row.
PHRASING_CASES: list[tuple[str, str, bool, str | None, str | None]] = [
    # GSM8K: "#### X" lines, "The answer is X" with signs, words, units, percent, money, fractions
    (
        "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether.\n#### 72",
        "72",
        True,
        "72",
        "####",
    ),
    ("The temperature dropped from 5 to -8 degrees.\n#### -8", "-8", True, "-8", "####"),
    ("The temperature dropped from 5 to -8 degrees.\n#### -8", "8", False, "-8", "####"),
    ("He loses 3 + 4 = 7 dollars in total.\n#### -7", "-7", True, "-7", "####"),
    ("So the total is 1,234 dollars.\n#### 1,234", "1234", True, "1,234", "####"),
    ("#### 1,234", "1,234", True, "1,234", "####"),
    ("#### 1,234", "1234.5", False, "1,234", "####"),
    ("The answer is -5.", "-5", True, "-5", "answer_is"),
    ("The answer is -5.", "5", False, "-5", "answer_is"),
    ("Therefore, the answer is -12 degrees.", "-12", True, "-12 degrees", "answer_is"),
    ("Answer: -3", "-3", True, "-3", "answer_is"),
    ("**Answer:** -3", "3", False, "-3", "answer_is"),
    ("The answer is: a total of 18 dollars", "18", True, "18 dollars", "answer_is"),
    ("The answer is: a total of 18 dollars", "81", False, "18 dollars", "answer_is"),
    ("So the answer is exactly 25 minutes.", "25", True, "25 minutes", "answer_is"),
    ("The answer is not 5, it is 7", "7", True, "7", "last_number"),
    ("The answer is not 5, it is 7", "5", False, "7", "last_number"),
    ("The answer is 3.5 hours.", "3.5", True, "3.5 hours", "answer_is"),
    ("The answer is 3.5 hours.", "35", False, "3.5 hours", "answer_is"),
    ("The answer is $1,200.50.", "1200.5", True, "$1,200.50", "answer_is"),
    ("The answer is 0.75", "3/4", True, "0.75", "answer_is"),
    ("The answer is 40%.", "40", True, "40%", "answer_is"),
    ("The answer is 40%.", "0.4", False, "40%", "answer_is"),
    ("The answer is 12 cm^2.", "12", True, "12 cm^2", "answer_is"),
    ("She needs 2 more bags. The answer is 2 bags.", "2", True, "2 bags", "answer_is"),
    ("In total she spends $64. The answer is 64.", "46", False, "64", "answer_is"),
    ("The final answer is 5 apples, since 2 + 3 = 5.", "5", True, "5", "answer_is"),
    (
        "Therefore, she has 3/4 of a pizza left. The answer is 3/4.",
        "0.75",
        True,
        "3/4",
        "answer_is",
    ),
    ("The answer is −4", "-4", True, "−4", "answer_is"),
    # MATH (Minerva "Final Answer: ... I hope it is correct." and boxed answers)
    ("Final Answer: The final answer is $5$. I hope it is correct.", "5", True, "5", "answer_is"),
    ("Final Answer: The final answer is $5$. I hope it is correct.", "6", False, "5", "answer_is"),
    (
        "Final Answer: The final answer is $-\\frac{3}{2}$. I hope it is correct.",
        "-\\frac32",
        True,
        "-\\frac{3}{2}",
        "answer_is",
    ),
    (
        "Final Answer: The final answer is $-\\frac{3}{2}$. I hope it is correct.",
        "\\frac32",
        False,
        "-\\frac{3}{2}",
        "answer_is",
    ),
    (
        "Final Answer: The final answer is $\\dfrac{7}{12}$. I hope it is correct.",
        "\\frac{7}{12}",
        True,
        "\\dfrac{7}{12}",
        "answer_is",
    ),
    (
        "Final Answer: The final answer is $\\text{(B)}$. I hope it is correct.",
        "\\text{(B)}",
        True,
        "\\text{(B)}",
        "answer_is",
    ),
    (
        "Final Answer: The final answer is $10\\%$. I hope it is correct.",
        "10",
        True,
        "10\\%",
        "answer_is",
    ),
    (
        "Final Answer: The final answer is $2.50$. I hope it is correct.",
        "2.5",
        True,
        "2.50",
        "answer_is",
    ),
    (
        "Final Answer: The final answer is $1,\\!000$. I hope it is correct.",
        "1000",
        True,
        "1,\\!000",
        "answer_is",
    ),
    ("The final answer is $\\boxed{-2}$.", "-2", True, "-2", "boxed"),
    ("Hence $x = \\boxed{-\\dfrac{1}{4}}$.", "-0.25", True, "-\\dfrac{1}{4}", "boxed"),
    ("Hence $x = \\boxed{-\\dfrac{1}{4}}$.", "0.25", False, "-\\dfrac{1}{4}", "boxed"),
    (
        "So the area is $\\boxed{48\\text{ square units}}$.",
        "48",
        True,
        "48\\text{ square units}",
        "boxed",
    ),
    ("So the speed is $\\boxed{60 \\text{ mph}}$.", "60", True, "60 \\text{ mph}", "boxed"),
    ("$\\boxed{\\$1,\\!234.50}$", "1234.5", True, "\\$1,\\!234.50", "boxed"),
    ("$\\boxed{3.14}$", "3.15", False, "3.14", "boxed"),
    ("$\\boxed{\\text{Monday}}$", "\\text{Monday}", True, "\\text{Monday}", "boxed"),
    ("$\\boxed{\\text{Monday}}$", "\\text{Tuesday}", False, "\\text{Monday}", "boxed"),
    (
        "The probability is $\\boxed{\\frac{5}{36}}$.",
        "\\dfrac{5}{36}",
        True,
        "\\frac{5}{36}",
        "boxed",
    ),
]


@pytest.mark.parametrize(("output", "gold", "expected", "extracted", "how"), PHRASING_CASES)
def test_real_phrasings(output: str, gold: str, expected: bool, extracted: str, how: str) -> None:
    result = grade(output, gold)
    assert (result.extracted, result.extraction) == (extracted, how), result
    assert result.correct is expected, result
    assert result.method != "timeout"


def test_phrasing_table_has_both_verdicts_for_negatives() -> None:
    negatives = [row for row in PHRASING_CASES if row[3] and row[3].lstrip("$").startswith("-")]
    assert {row[2] for row in negatives} == {True, False}
    assert len(PHRASING_CASES) >= 40


# (output, gold, expected): a Grade's correctness, or (exception type, text in its message)
INPUT_CASES: list[tuple[object, object, object]] = [
    (42, "42", True),
    ("The answer is 42.", 42, True),
    ("The answer is 41.", 42, False),
    ("#### 0.5", 0.5, True),
    ("#### 0.0000001", 1e-7, True),
    ("#### -3", -3.0, True),
    (Fraction(1, 2), "0.5", True),
    (np.int64(7), "7", True),
    ("#### 7", np.float64(7.0), True),
    (None, "5", False),
    ("5", None, (TypeError, "gold must be a str or a number, not NoneType")),
    (b"5", "5", (TypeError, "decode it to str first")),
    ("5", b"5", (TypeError, "gold must be a str or a number, not bytes")),
    (float("nan"), "5", (ValueError, "output is nan, not a finite number")),
    ("5", float("nan"), (ValueError, "gold is nan, not a finite number")),
    ("5", float("inf"), (ValueError, "gold is inf, not a finite number")),
    (True, "1", (TypeError, "output must be a str or a number, not bool")),
    ("5", [5], (TypeError, "gold must be a str or a number, not list")),
]


@pytest.mark.parametrize(("output", "gold", "expected"), INPUT_CASES)
def test_input_types(output: object, gold: object, expected: object) -> None:
    if isinstance(expected, bool):
        assert grade(output, gold).correct is expected
        return
    error, text = expected
    with pytest.raises(error, match=re.escape(text)):
        grade(output, gold)


def test_bad_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        grade("5", "5", timeout="2")


def _last_boxed_by_rescanning(text: str) -> str | None:
    """The former quadratic extraction (rescan from every box), kept as the oracle."""
    found = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 0, m.end() - 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                found.append((m.start(), text[m.end() : i]))
                break
            i += 1
    return max(found)[1].strip() if found else None


def test_one_pass_box_matching_agrees_with_rescanning() -> None:
    rng = random.Random(0)
    pieces = ["\\boxed{", "\\fbox {", "{", "}", "\\", "\\{", "\\}", "x", "1", " "]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        expected = _last_boxed_by_rescanning(text)
        got, how = extract_answer_with_method(text)
        if expected:  # an empty box falls through to the other rules
            assert (got, how) == (expected, "boxed"), text
        else:
            assert how != "boxed", text


@pytest.mark.parametrize(
    "output",
    [
        "\\boxed{" * 10_000,
        "\\boxed{" * 10_000 + " so \\boxed{5}",
        "the answer is $$$ " * 10_000,
        "Answer: x y z\n" * 10_000 + "#### 5",
    ],
    ids=["unclosed-boxes", "unclosed-then-closed", "answer-phrases", "answer-lines"],
)
def test_adversarial_outputs_are_graded_quickly(output: str) -> None:
    """Extraction is linear and the timeout bounds the call (10,000 unclosed boxes took ~55 s)."""
    start = time.perf_counter()
    result = grade(output, "5", timeout=2.0)
    assert time.perf_counter() - start < 5.0, "bounded by timeout=2 plus a slow, shared machine"
    assert result.correct is output.endswith(("\\boxed{5}", "#### 5"))


def test_no_time_left_skips_the_symbolic_check() -> None:
    result = grade(r"\boxed{x^2+1}", "x^2+2", timeout=0)
    assert (result.method, result.correct) == ("timeout", False)
    assert grade(r"\boxed{5}", "5.0", timeout=0).correct  # numbers need no symbolic check


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
