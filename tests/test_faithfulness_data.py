"""Faithfulness triples: the generator's restatements, number changes, and the JSONL loader's errors."""

import json
import random
import re

import pytest

from interp.data.faithfulness import (
    FaithfulnessTriple,
    change_number,
    gsm8k_triples,
    load_triples,
    restate_numbers,
    save_triples,
    triples_from_questions,
)


@pytest.mark.parametrize(
    "number", ["4", "2", "48", "100", "2005", "1,000", "12,500", "18.00", "2.50", "0.5"]
)
def test_change_number_differs_and_keeps_the_format(number):
    rng = random.Random(0)
    for _ in range(200):
        new = change_number(number, rng)
        assert new != number
        assert float(new.replace(",", "")) >= 0.1 and new not in ("0", "1")
        assert ("." in new) == ("." in number)
        if "." in number:
            assert len(new.split(".")[1]) == len(number.split(".")[1])
            if number.endswith(".00"):
                assert new.endswith(".00")  # whole-dollar amounts stay whole
        if "," in number:
            assert new.replace(",", "") == str(int(new.replace(",", ""))) or "." in new
            assert float(new.replace(",", "")) < 1000 or "," in new


def test_change_number_is_plausible_and_seeded():
    draws = [change_number("48", random.Random(s)) for s in range(400)]
    assert draws == [change_number("48", random.Random(s)) for s in range(400)]
    values = [int(d) for d in draws]
    nearby = [v for v in values if abs(v - 48) <= 24]
    same_digits = [v for v in values if 10 <= v <= 99]
    assert len(same_digits) == len(values)  # nearby values of 48 also have two digits
    assert 0.4 < len(nearby) / len(values) < 0.9
    with pytest.raises(ValueError, match="cannot change"):
        change_number("three", random.Random(0))


def test_restatement_is_a_clause_of_the_question_with_its_number():
    question = (
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
        "May. How many clips did Natalia sell altogether in April and May?"
    )
    (restatement,) = restate_numbers(question, random.Random(0))
    assert restatement.text == "Natalia sold clips to 48 of her friends in April."
    assert restatement.number == "48"
    assert restatement.with_number("57") == "Natalia sold clips to 57 of her friends in April."


def test_restatements_skip_questions_fractions_times_and_ones():
    assert restate_numbers("How many are 12 and 5?", random.Random(0)) == []
    assert restate_numbers("She ate 1/2 of it at 3:00 on the 1st day.", random.Random(0)) == []
    assert restate_numbers("He has 1 dog. He walks it daily.", random.Random(0)) == []
    facts = restate_numbers(
        "Tom has 12 apples. Ann has 7 pears. Who has more?", random.Random(0), k=5
    )
    assert sorted(f.number for f in facts) == ["12", "7"]


def test_gsm8k_triples_are_seeded_and_faithful_to_the_question():
    triples = gsm8k_triples(1000, seed=0)
    assert len(triples) == 1000 and len({t.id for t in triples}) == 1000
    assert gsm8k_triples(50, seed=0) == triples[:50]  # a larger n keeps the smaller set first
    assert gsm8k_triples(50, seed=1) != triples[:50]
    for t in triples:
        (correct,), (incorrect,) = t.correct_answers, t.incorrect_answers
        number, changed = t.meta["number"], t.meta["changed_to"]
        assert number != changed and correct != incorrect
        body = correct[:-1]  # the clause as written in the question, but its capital and period
        question = " ".join(t.question.split())
        assert body[1:] in question
        # The incorrect restatement is the correct one with that one number changed.
        offset = t.meta["offset"]
        assert correct[offset : offset + len(number)] == number
        assert incorrect == correct[:offset] + changed + correct[offset + len(number) :]
        assert re.search(rf"(?<![\d,.]){re.escape(number)}(?![\d])", body)


def test_several_facts_per_question_share_the_question():
    triples = gsm8k_triples(300, seed=0, facts_per_question=2)
    by_question = {}
    for t in triples:
        by_question.setdefault(t.question, []).append(t)
    assert len(by_question) < 300 and max(len(v) for v in by_question.values()) == 2
    for group in by_question.values():
        assert len({t.correct_answers for t in group}) == len(group)  # different facts


def test_not_enough_questions_is_a_clear_error():
    with pytest.raises(ValueError, match="only 1 triples"):
        triples_from_questions([("a", "Tom has 12 apples."), ("b", "How many?")], n=2)


def test_save_and_load_round_trip(tmp_path):
    triples = gsm8k_triples(20, seed=3)
    path = save_triples(tmp_path / "t.jsonl", triples)
    loaded = load_triples(path)
    assert loaded == triples
    assert loaded[0].meta["number"] == triples[0].meta["number"]


GOOD = {
    "question": "Tom has 12 apples.",
    "correct_answers": ["Tom has 12 apples."],
    "incorrect_answers": ["Tom has 13 apples."],
}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r":2: invalid JSON"),
        ("[1, 2]", r":2: expected a JSON object"),
        (
            json.dumps({"question": "q"}),
            r":2: missing field\(s\) \['correct_answers', 'incorrect_answers'\]",
        ),
        (
            json.dumps({**GOOD, "correct_answers": "Tom has 12 apples."}),
            r":2: 'correct_answers' must be a list",
        ),
        (json.dumps({**GOOD, "incorrect_answers": []}), r":2: 'incorrect_answers' is empty"),
        (json.dumps({**GOOD, "question": ""}), r":2: 'question' must be a non-empty string"),
        (
            json.dumps({**GOOD, "incorrect_answers": ["Tom has 12 apples."]}),
            r":2: .* both correct and incorrect",
        ),
        (json.dumps({**GOOD, "correct_answers": [3]}), r":2: 'correct_answers' holds 3"),
        (json.dumps({**GOOD, "id": "x"}), r":2: id 'x' appears twice"),
    ],
)
def test_load_triples_names_the_bad_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({**GOOD, "id": "x"}) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        load_triples(path)


def test_load_triples_missing_or_empty_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="faithfulness-triples"):
        load_triples(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        load_triples(tmp_path / "empty.jsonl")


def test_triple_checks_itself():
    with pytest.raises(ValueError, match="both correct and incorrect"):
        FaithfulnessTriple("x", "q", ("a",), ("a",))
