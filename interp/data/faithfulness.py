"""Number-faithfulness triples: a question, restatements of one of its facts with the number it
states (correct) and with that number changed (incorrect).

    triples = gsm8k_triples(n=1000, seed=0)            # built from GSM8K train, seeded
    save_triples("triples.jsonl", triples)
    load_triples("triples.jsonl")                      # clear errors on malformed rows

One JSONL row per triple: {"id", "question", "correct_answers": [...], "incorrect_answers": [...]}
(extra fields, such as the generator's "number", "changed_to" and "offset", are kept as metadata).

How a restatement is built (`restate_numbers`): the question is split into sentences; sentences that
ask (end in "?") or hold no written-out digit are dropped; one digit-written number of the rest is
picked (seeded, uniform over occurrences; with `facts_per_question` > 1, several different ones,
each its own triple). The restatement is the clause holding it: the sentence is
cut at ", and" / ", but" / ", so" / ", then" / ";" and the first clause is used when the number sits
in it (it carries the subject: "Natalia sold clips to 48 of her friends in April"), otherwise the whole
sentence. Light normalisation: whitespace collapsed, the first letter capitalised, a final period (nothing
else is rewritten, so the restatement is the question's own wording). The incorrect restatement is the same text with
that one number changed (`change_number`). Numbers written in words ("three hundred"), fractions
("1/2"), times ("3:00"), ordinals ("1st") and the digits 0 and 1 (whose change would change the
grammar: "1 pack" / "3 pack") are never picked.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp.data.jsonl import read_numbered_jsonl

__all__ = [
    "FaithfulnessTriple",
    "Restatement",
    "change_number",
    "gsm8k_triples",
    "load_triples",
    "restate_numbers",
    "save_triples",
    "triples_from_questions",
]


@dataclass(frozen=True)
class FaithfulnessTriple:
    """A question with statements that keep its numbers (correct) and statements that change one."""

    id: str
    question: str
    correct_answers: tuple[str, ...]
    incorrect_answers: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        _check_triple(self.question, self.correct_answers, self.incorrect_answers, self.id)

    def to_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "correct_answers": list(self.correct_answers),
            "incorrect_answers": list(self.incorrect_answers),
            **self.meta,
        }


@dataclass(frozen=True)
class Restatement:
    """One restated fact: the text, the number as written, and where it sits in the text."""

    text: str
    number: str
    start: int  # character offset of the number in `text`

    def with_number(self, new: str) -> str:
        return self.text[: self.start] + new + self.text[self.start + len(self.number) :]


def _check_triple(question: Any, correct: Any, incorrect: Any, where: str) -> None:
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"{where}: 'question' must be a non-empty string, got {question!r}")
    for name, answers in (("correct_answers", correct), ("incorrect_answers", incorrect)):
        if isinstance(answers, str) or not isinstance(answers, (list, tuple)):
            raise ValueError(
                f"{where}: {name!r} must be a list of strings, got {type(answers).__name__} "
                f"(wrap a single answer in a list)"
            )
        if not answers:
            raise ValueError(f"{where}: {name!r} is empty; give at least one answer")
        for answer in answers:
            if not isinstance(answer, str) or not answer.strip():
                raise ValueError(f"{where}: {name!r} holds {answer!r}; every answer must be text")
    both = set(correct) & set(incorrect)
    if both:
        raise ValueError(
            f"{where}: {sorted(both)!r} is listed as both correct and incorrect; remove one"
        )


# ---------------------------------------------------------------------------------------------
# Reading and writing JSONL


def load_triples(path: str | os.PathLike) -> list[FaithfulnessTriple]:
    """Read triples from JSONL; a malformed row is an error naming its file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no triples file at {path}; write one with `python -m interp faithfulness-triples`"
        )
    triples: list[FaithfulnessTriple] = []
    seen: set[str] = set()
    for lineno, row in read_numbered_jsonl(path):
        where = f"{path}:{lineno}"
        missing = [k for k in ("question", "correct_answers", "incorrect_answers") if k not in row]
        if missing:
            raise ValueError(
                f"{where}: missing field(s) {missing} (fields present: {sorted(row)}); each row "
                f"needs question, correct_answers and incorrect_answers"
            )
        _check_triple(row["question"], row["correct_answers"], row["incorrect_answers"], where)
        ident = str(row.get("id", f"{path.stem}/{lineno}"))
        if ident in seen:
            raise ValueError(f"{where}: id {ident!r} appears twice; ids must be unique")
        seen.add(ident)
        meta = {
            k: v
            for k, v in row.items()
            if k not in ("id", "question", "correct_answers", "incorrect_answers")
        }
        triples.append(
            FaithfulnessTriple(
                ident,
                row["question"],
                tuple(row["correct_answers"]),
                tuple(row["incorrect_answers"]),
                meta,
            )
        )
    if not triples:
        raise ValueError(f"{path}: no triples found (the file is empty)")
    return triples


def save_triples(path: str | os.PathLike, triples: Iterable[FaithfulnessTriple]) -> Path:
    """Write triples as JSONL, atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for triple in triples:
            f.write(json.dumps(triple.to_row(), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------
# Building restatements

# A number written in digits: 48, 1,000, 18.00, 2.5. The lookarounds refuse parts of fractions,
# times, ordinals and words ("1/2", "3:00", "1st", "A4").
_NUMBER = re.compile(
    r"(?<![\w/:.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w/:]|\.\d|,\d)|(?<![\w/:.,])\d+(?:\.\d+)?(?![\w/:]|\.\d|,\d)"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z$\d\"'(])")
_CLAUSE_BREAK = re.compile(r",\s+(?:and|but|so|then|while)\s+|;\s+")


def _sentences(question: str) -> list[str]:
    text = " ".join(question.split())
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _normalise(text: str) -> str:
    text = text.strip().rstrip(" ,;:")
    if text.endswith((".", "!")):
        text = text[:-1]
    return text[:1].upper() + text[1:] + "."


def _candidates(question: str) -> list[Restatement]:
    """Every (clause, number) a restatement could be built from, in reading order."""
    out = []
    for sentence in _sentences(question):
        if sentence.endswith("?") or not _NUMBER.search(sentence):
            continue
        breaks = list(_CLAUSE_BREAK.finditer(sentence))
        first_end = breaks[0].start() if breaks else len(sentence)
        for match in _NUMBER.finditer(sentence):
            if match.group() in ("0", "1"):
                continue  # changing them changes the grammar ("1 pack" -> "3 pack")
            clause = sentence[:first_end] if match.end() <= first_end else sentence
            normalised = _normalise(clause)
            # Where the number now sits: normalising only trims the ends.
            offset = match.start() - (len(clause) - len(clause.lstrip()))
            if normalised[offset : offset + len(match.group())] != match.group():
                continue  # the number was trimmed away (cannot happen for digits; kept safe)
            out.append(Restatement(normalised, match.group(), offset))
    return out


def restate_numbers(question: str, rng: random.Random, k: int = 1) -> list[Restatement]:
    """Up to `k` restatements of numeric facts of `question` with different texts (seeded choice),
    or [] if it states no number in digits."""
    candidates = _candidates(question)
    rng.shuffle(candidates)
    chosen: list[Restatement] = []
    for candidate in candidates:
        if len(chosen) < k and all(c.text != candidate.text for c in chosen):
            chosen.append(candidate)
    return chosen


def change_number(number: str, rng: random.Random) -> str:
    """A plausible different value written like `number`: a nearby value or one of the same
    number of digits (each half the time), never equal and never 0 or 1 (which would change the
    grammar: "1 packs"). Commas are kept; "10.00" keeps its zero cents, "2.50" changes as 250.
    """
    if not re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?", number):
        raise ValueError(f"cannot change {number!r}: expected digits such as 48, 1,000 or 2.5")
    commas = "," in number
    whole, _, fraction = number.replace(",", "").partition(".")
    if fraction and set(fraction) != {"0"}:
        digits, keep = whole + fraction, ""  # change every written digit: 2.50 -> 3.75
    else:
        digits, keep = whole, fraction  # change the whole part: 10.00 -> 14.00
    value = int(digits)
    n_digits = len(str(value))
    new = value
    while new == value or new < 2:
        if rng.random() < 0.5:
            new = value + rng.choice([-1, 1]) * rng.randint(1, max(2, value // 2))
        else:
            new = rng.randint(10 ** (n_digits - 1) if n_digits > 1 else 2, 10**n_digits - 1)
    text = str(new)
    if fraction and not keep:
        text = text.rjust(len(fraction) + 1, "0")
        whole_text, fraction_text = text[: -len(fraction)], text[-len(fraction) :]
    else:
        whole_text, fraction_text = text, keep
    if commas:
        whole_text = f"{int(whole_text):,}"
    return whole_text + (f".{fraction_text}" if fraction_text else "")


def triples_from_questions(
    questions: Sequence[tuple[str, str]],
    n: int | None,
    seed: int = 0,
    facts_per_question: int = 1,
) -> list[FaithfulnessTriple]:
    """Triples from (id, question) pairs: questions in a seeded order, up to `facts_per_question`
    triples per question that states a number in digits, until `n` triples (all when None).

    A question's triples share it (ids `ID#0`, `ID#1`, ...), so a split by question keeps them
    together and a forward can run the question once. The same seed with a larger `n` gives the
    smaller set first.
    """
    if facts_per_question < 1:
        raise ValueError(f"facts_per_question must be at least 1, got {facts_per_question}")
    rng = random.Random(seed)
    order = list(range(len(questions)))
    rng.shuffle(order)
    triples: list[FaithfulnessTriple] = []
    for index in order:
        ident, question = questions[index]
        for fact, restatement in enumerate(restate_numbers(question, rng, facts_per_question)):
            if n is not None and len(triples) >= n:
                break
            changed = change_number(restatement.number, rng)
            triples.append(
                FaithfulnessTriple(
                    id=ident if facts_per_question == 1 else f"{ident}#{fact}",
                    question=question,
                    correct_answers=(restatement.text,),
                    incorrect_answers=(restatement.with_number(changed),),
                    meta={
                        "number": restatement.number,
                        "changed_to": changed,
                        "offset": restatement.start,
                        "seed": seed,
                    },
                )
            )
        if n is not None and len(triples) >= n:
            break
    if n is not None and len(triples) < n:
        raise ValueError(
            f"the {len(questions)} questions give only {len(triples)} triples (numbers written in "
            f"digits); asked for {n}"
        )
    if not triples:
        raise ValueError("no question states a number in digits: no triples to build")
    return triples


def gsm8k_triples(
    n: int | None = 1000, seed: int = 0, split: str = "train", facts_per_question: int = 1
) -> list[FaithfulnessTriple]:
    """`n` seeded triples (all when None) from GSM8K questions (`load_gsm8k(split)`)."""
    from interp.data.math_sets import load_gsm8k

    problems = load_gsm8k(split)
    return triples_from_questions(
        [(p.id, p.question) for p in problems], n, seed, facts_per_question
    )
