"""Seeded chains of thought with known thoughts, for a SEAL model organism (issue 17).

Each problem is a short multi-step arithmetic word problem whose steps the generator computes. Its
trace is written in the reasoning-model format, thoughts separated by blank lines:

    <think>
    Mia starts with 14 marbles.

    3 packs hold 3 * 6 = 18 marbles.

    Mia has 14 + 18 = 33 marbles.

    Wait, 14 + 18 = 32, not 33.

    Mia has 32 - 9 = 23 marbles.

    Alternatively, 23 + 9 = 32, so it is 23.
    </think>
    \\boxed{23}

Every arithmetic step is first written wrong with probability `error_rate`, and then the next
thought is a *needed* reflection that fixes it; a correct step is followed by a *redundant*
reflection (a re-check that changes nothing) with probability `recheck_rate`, or by a transition
that recomputes it another way with probability `alternative_rate`. Each thought carries its true
class and whether it was needed; the classes are exactly what SEAL's keyword rule
(`interp.text.thoughts.classify_thought`) gives the text, which the tests check.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from interp.data.math_prompts import chat_prompt
from interp.data.math_sets import MathProblem
from interp.text.thoughts import (
    EXECUTION,
    REFLECTION,
    SEAL_KEYWORDS,
    TRANSITION,
    ThoughtKeywords,
    classify_thought,
)

__all__ = [
    "THINK_OPEN",
    "THINK_CLOSE",
    "BLANK_LINE",
    "ROLES",
    "TraceConfig",
    "Step",
    "WordProblem",
    "TraceThought",
    "ReasoningTrace",
    "ParsedResponse",
    "sample_problem",
    "write_trace",
    "generate_traces",
    "held_out_problems",
    "reasoner_prompt",
    "parse_response",
    "find_step",
    "step_is_right",
    "trace_statistics",
    "HELD_OUT_SEED",
    "N_HELD_OUT",
    "TRACE_SOURCE",
]

THINK_OPEN, THINK_CLOSE, BLANK_LINE = "<think>", "</think>", "\n\n"
HELD_OUT_SEED = 1_000_003  # the held-out problems are the same for every training seed
N_HELD_OUT = 256  # held-out questions that training skips: the organism's evaluation pool
TRACE_SOURCE = "reasoning_traces"  # `MathProblem.source` of these problems

# role of a thought -> (SEAL class, needed)
ROLES: dict[str, tuple[str, bool]] = {
    "start": (EXECUTION, True),  # restates the starting amount, no arithmetic
    "step": (EXECUTION, True),  # one arithmetic step, right or wrong
    "fix": (REFLECTION, True),  # catches the wrong step before it and gives the right value
    "recheck": (REFLECTION, False),  # re-checks a right step and changes nothing
    "alternative": (TRANSITION, False),  # recomputes a right step another way
}

NAMES = ("Mia", "Tom", "Ana", "Leo", "Sam", "Ivy", "Max", "Zoe", "Ben", "Eva", "Kim", "Raj")
ITEMS = ("apples", "marbles", "stickers", "coins", "cards", "books", "pens", "shells")
ERROR_OFFSETS = (-10, -2, -1, 1, 2, 10)

FIX_TEMPLATES = (
    "Wait, {expr} = {value}, not {wrong}.",
    "Wait, that is wrong. {expr} = {value}.",
    "Hold on, {expr} = {value}, not {wrong}.",
)
RECHECK_TEMPLATES = (
    "Wait, let me check: {expr} = {value}. Yes.",
    "Let me verify: {expr} = {value}.",
    "Hold on, {expr} = {value}. That's correct.",
)
ALTERNATIVE_TEMPLATES = ("Alternatively, {other}.", "Another way: {other}.")

_STEP = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")
_BOXED = re.compile(r"\\boxed\{(-?\d+)\}")


@dataclass(frozen=True)
class TraceConfig:
    """Every knob of the generator; saved with the organism so its data can be rebuilt exactly."""

    seed: int = 0
    error_rate: float = 0.15  # P(an arithmetic step is first written wrong, then fixed)
    recheck_rate: float = 0.15  # P(a right step is followed by a redundant reflection)
    alternative_rate: float = 0.10  # P(a right step is followed by a transition)
    min_events: int = 2  # events of the story after the start (a purchase of packs is 2 steps)
    max_events: int = 3
    max_value: int = 200  # no amount in a problem exceeds this

    def __post_init__(self) -> None:
        for name in ("error_rate", "recheck_rate", "alternative_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        if self.recheck_rate + self.alternative_rate > 1.0:
            raise ValueError(
                f"recheck_rate + alternative_rate must be at most 1 (they share the thought after "
                f"a right step), got {self.recheck_rate} + {self.alternative_rate}"
            )
        if not 1 <= self.min_events <= self.max_events:
            raise ValueError(
                f"need 1 <= min_events <= max_events, got {self.min_events}, {self.max_events}"
            )
        if self.max_value < 60:
            raise ValueError(f"max_value must be at least 60, got {self.max_value}")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class Step:
    """One arithmetic step `left op right = value` (op in + - * /, exact integers)."""

    left: int
    op: str
    right: int
    value: int

    @property
    def expression(self) -> str:
        return f"{self.left} {self.op} {self.right}"

    def other_way(self) -> str:
        """The same result computed another way: commuted, or checked by the inverse operation."""
        if self.op in "+*":
            return f"{self.right} {self.op} {self.left} = {self.value}"
        inverse = "+" if self.op == "-" else "*"
        return f"{self.value} {inverse} {self.right} = {self.left}, so it is {self.value}"


@dataclass(frozen=True)
class WordProblem:
    """A word problem, the thought that restates its start, and its steps with their sentences.

    `step_texts[i]` is the execution thought of step i with a `{value}` slot for its result.
    """

    id: str
    question: str
    start_text: str
    steps: tuple[Step, ...]
    step_texts: tuple[str, ...]

    @property
    def answer(self) -> int:
        return self.steps[-1].value

    def as_math_problem(self) -> MathProblem:
        """The problem for `interp.analyses.math_eval` (graded against the final amount)."""
        return MathProblem(
            id=self.id, question=self.question, answer=str(self.answer), source=TRACE_SOURCE
        )


@dataclass(frozen=True)
class TraceThought:
    """One thought of a trace, with its true class, whether it was needed, and its role."""

    text: str
    role: str
    correct: bool = True  # False only for a step first written wrong

    @property
    def label(self) -> str:
        return ROLES[self.role][0]

    @property
    def needed(self) -> bool:
        return ROLES[self.role][1]


@dataclass(frozen=True)
class ReasoningTrace:
    """A problem and its chain of thought; `response` is the text the model learns to write."""

    problem: WordProblem
    thoughts: tuple[TraceThought, ...]

    @property
    def answer(self) -> int:
        return self.problem.answer

    @property
    def response(self) -> str:
        think = BLANK_LINE.join(t.text for t in self.thoughts)
        return f"{THINK_OPEN}\n{think}\n{THINK_CLOSE}\n\\boxed{{{self.answer}}}"

    def counts(self) -> dict[str, int]:
        """Thoughts per class, and reflections split into needed and redundant."""
        counts = {name: 0 for name in (EXECUTION, REFLECTION, TRANSITION)}
        for thought in self.thoughts:
            counts[thought.label] += 1
        counts["needed_reflection"] = sum(t.role == "fix" for t in self.thoughts)
        counts["redundant_reflection"] = sum(t.role == "recheck" for t in self.thoughts)
        return counts


def sample_problem(rng: random.Random, config: TraceConfig, problem_id: str = "") -> WordProblem:
    """A story: a start amount, then events (find, give away, buy packs, multiply, share)."""
    name, other = rng.sample(NAMES, 2)
    item = rng.choice(ITEMS)
    amount = rng.randint(5, 40)
    sentences = [f"{name} has {amount} {item}."]
    start_text = f"{name} starts with {amount} {item}."
    steps: list[Step] = []
    texts: list[str] = []
    for _ in range(rng.randint(config.min_events, config.max_events)):
        event = _choose_event(rng, amount, config.max_value)
        if event == "find":
            n = rng.randint(2, min(30, config.max_value - amount))
            sentences.append(f"{name} finds {n} more {item}.")
            steps.append(Step(amount, "+", n, amount + n))
            texts.append(f"{name} has {amount} + {n} = {{value}} {item}.")
        elif event == "give":
            n = rng.randint(1, min(30, amount - 1))
            sentences.append(f"{name} gives {n} {item} to {other}.")
            steps.append(Step(amount, "-", n, amount - n))
            texts.append(f"{name} has {amount} - {n} = {{value}} {item}.")
        elif event == "packs":
            packs = rng.choice([k for k in (2, 3, 4, 5) if amount + 2 * k <= config.max_value])
            size = rng.randint(2, min(9, (config.max_value - amount) // packs))
            sentences.append(f"{name} buys {packs} packs of {size} {item}.")
            steps.append(Step(packs, "*", size, packs * size))
            texts.append(f"{packs} packs hold {packs} * {size} = {{value}} {item}.")
            steps.append(Step(amount, "+", packs * size, amount + packs * size))
            texts.append(f"{name} has {amount} + {packs * size} = {{value}} {item}.")
        elif event == "times":
            factor = rng.choice([k for k in (2, 3) if amount * k <= config.max_value])
            word = {2: "doubles", 3: "triples"}[factor]
            sentences.append(f"Then the number of {item} {word}.")
            steps.append(Step(amount, "*", factor, amount * factor))
            texts.append(f"{name} has {amount} * {factor} = {{value}} {item}.")
        else:  # share
            boxes = rng.choice([k for k in (2, 3, 4, 5) if amount % k == 0])
            friends = "1 friend" if boxes == 2 else f"{boxes - 1} friends"
            sentences.append(f"{name} shares them equally with {friends}.")
            steps.append(Step(amount, "/", boxes, amount // boxes))
            texts.append(f"{name} keeps {amount} / {boxes} = {{value}} {item}.")
        amount = steps[-1].value
    sentences.append(f"How many {item} does {name} have now?")
    return WordProblem(problem_id, " ".join(sentences), start_text, tuple(steps), tuple(texts))


def _choose_event(rng: random.Random, amount: int, max_value: int) -> str:
    """An event that keeps every amount a positive integer no larger than `max_value`."""
    events = []
    if amount + 2 <= max_value:
        events.append("find")
    if amount >= 2:
        events.append("give")
    if amount + 4 <= max_value:  # two packs of two at least
        events.append("packs")
    if amount * 2 <= max_value:
        events.append("times")
    if amount >= 4 and any(amount % k == 0 for k in (2, 3, 4, 5)):
        events.append("share")
    return rng.choice(events)


def write_trace(problem: WordProblem, rng: random.Random, config: TraceConfig) -> ReasoningTrace:
    """The chain of thought for `problem`, with errors, re-checks and alternatives at the config's rates."""
    thoughts = [TraceThought(problem.start_text, "start")]
    for step, text in zip(problem.steps, problem.step_texts, strict=True):
        if rng.random() < config.error_rate:
            wrong = _wrong_value(rng, step.value)
            thoughts.append(TraceThought(text.format(value=wrong), "step", correct=False))
            template = rng.choice(FIX_TEMPLATES)
            fix = template.format(expr=step.expression, value=step.value, wrong=wrong)
            thoughts.append(TraceThought(fix, "fix"))
            continue
        thoughts.append(TraceThought(text.format(value=step.value), "step"))
        u = rng.random()
        if u < config.recheck_rate:
            template = rng.choice(RECHECK_TEMPLATES)
            thoughts.append(
                TraceThought(template.format(expr=step.expression, value=step.value), "recheck")
            )
        elif u < config.recheck_rate + config.alternative_rate:
            template = rng.choice(ALTERNATIVE_TEMPLATES)
            thoughts.append(TraceThought(template.format(other=step.other_way()), "alternative"))
    return ReasoningTrace(problem, tuple(thoughts))


def _wrong_value(rng: random.Random, value: int) -> int:
    """A plausible slip: off by 1, 2 or 10, never negative and never the right value."""
    return value + rng.choice([d for d in ERROR_OFFSETS if value + d >= 0])


def _rng(seed: int, stream: int, index: int) -> random.Random:
    """One generator per (seed, stream, index): trace i never depends on how many came before."""
    return random.Random((seed * 1_000_000_007 + stream) * 1_000_003 + index)


def held_out_problems(n: int, config: TraceConfig | None = None) -> list[WordProblem]:
    """`n` evaluation problems, the same for every training seed (drawn with `HELD_OUT_SEED`)."""
    config = config or TraceConfig()
    return [sample_problem(_rng(HELD_OUT_SEED, 1, i), config, f"held_out/{i}") for i in range(n)]


def generate_traces(
    n: int, config: TraceConfig, *, start: int = 0, exclude: Sequence[WordProblem] = ()
) -> list[ReasoningTrace]:
    """Traces `start`..`start + n - 1` of the config's seed; problems in `exclude` are skipped
    (redrawn from the same index), so training never sees a held-out question."""
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0, got n={n}, start={start}")
    excluded = {p.question for p in exclude}
    traces = []
    for index in range(start, start + n):
        rng = _rng(config.seed, 0, index)
        problem = sample_problem(rng, config, f"train/{config.seed}/{index}")
        while problem.question in excluded:
            problem = sample_problem(rng, config, problem.id)
        traces.append(write_trace(problem, rng, config))
    return traces


def reasoner_prompt(problem: WordProblem | MathProblem | str, tokenizer) -> str:
    """The organism's prompt: SEAL's chat prompt (the model's chat template, the question, the
    \\boxed{} instruction), exactly what `interp.analyses.math_eval` builds in the "chat" style."""
    question = problem.question if isinstance(problem, (WordProblem, MathProblem)) else problem
    return chat_prompt(question, tokenizer)


@dataclass(frozen=True)
class ParsedResponse:
    """A response split into its think thoughts and its boxed answer (None where missing)."""

    thoughts: tuple[str, ...]
    answer: int | None
    well_formed: bool  # opens and closes the think span, then gives a boxed integer


def parse_response(text: str) -> ParsedResponse:
    """Split a response in the trace format; a response without `<think>` has no thoughts."""
    opened = text.lstrip().startswith(THINK_OPEN)
    body = text.lstrip()[len(THINK_OPEN) :] if opened else ""
    closed = THINK_CLOSE in body
    think = body.split(THINK_CLOSE)[0] if closed else body
    after = body.split(THINK_CLOSE, 1)[1] if closed else ""
    thoughts = tuple(piece.strip() for piece in think.split(BLANK_LINE) if piece.strip())
    boxed = _BOXED.findall(after if closed else text)
    answer = int(boxed[-1]) if boxed else None
    return ParsedResponse(thoughts, answer, opened and closed and bool(_BOXED.search(after)))


def find_step(text: str) -> Step | None:
    """The first `a op b = c` in a thought, as written (the value may be wrong); None if none."""
    match = _STEP.search(text)
    if match is None:
        return None
    left, op, right, value = match.groups()
    return Step(int(left), op, int(right), int(value))


def step_is_right(step: Step) -> bool:
    """Whether the written value is what `left op right` gives (division must be exact)."""
    if step.op == "+":
        return step.left + step.right == step.value
    if step.op == "-":
        return step.left - step.right == step.value
    if step.op == "*":
        return step.left * step.right == step.value
    return step.right != 0 and step.left == step.right * step.value


def trace_statistics(
    responses: Sequence[str],
    answers: Sequence[int | str],
    keywords: ThoughtKeywords = SEAL_KEYWORDS,
) -> dict[str, float]:
    """Rates of a set of responses in the trace format, by SEAL's keyword classes.

    The same function measures the generator's traces and the organism's outputs, so the two
    compare like for like. A *step* is an execution thought holding `a op b = c`; it is wrong when
    its arithmetic is (a wrong amount carried over from before is not seen). A reflection after a
    wrong step is counted as needed, after a right step as redundant. Reflections per response
    are also split by whether the response slipped (wrote at least one wrong step) or not; a
    group with no response gives NaN.
    """
    if len(responses) != len(answers) or not responses:
        raise ValueError(
            f"give one gold answer per response and at least one response "
            f"(got {len(responses)} responses, {len(answers)} answers)"
        )
    classes = (EXECUTION, REFLECTION, TRANSITION)
    totals = {name: 0 for name in classes}
    after = {(right, name): 0 for right in (True, False) for name in (*classes, "end")}
    well_formed = correct = 0
    # reflections per response, split by whether the response ever wrote a wrong step
    reflections_by_slip = {True: [0, 0], False: [0, 0]}  # slipped -> [reflections, responses]
    for text, gold in zip(responses, answers, strict=True):
        parsed = parse_response(text)
        well_formed += parsed.well_formed
        correct += parsed.answer is not None and str(parsed.answer) == str(gold).strip()
        labels = [classify_thought(t, keywords) for t in parsed.thoughts]
        slipped = False
        for index, (thought, label) in enumerate(zip(parsed.thoughts, labels, strict=True)):
            totals[label] += 1
            step = find_step(thought) if label == EXECUTION else None
            if step is not None:
                following = labels[index + 1] if index + 1 < len(labels) else "end"
                after[(step_is_right(step), following)] += 1
                slipped |= not step_is_right(step)
        reflections_by_slip[slipped][0] += labels.count(REFLECTION)
        reflections_by_slip[slipped][1] += 1
    n = len(responses)
    right_steps = sum(after[(True, name)] for name in (*classes, "end"))
    wrong_steps = sum(after[(False, name)] for name in (*classes, "end"))
    stats = {
        "responses": float(n),
        "well_formed": well_formed / n,
        "accuracy": correct / n,
        **{f"{name}_per_response": totals[name] / n for name in classes},
        "steps_per_response": (right_steps + wrong_steps) / n,
        "wrong_step_rate": wrong_steps / max(1, right_steps + wrong_steps),
        "reflection_after_wrong": after[(False, REFLECTION)] / max(1, wrong_steps),
        "reflection_after_right": after[(True, REFLECTION)] / max(1, right_steps),
        "transition_after_right": after[(True, TRANSITION)] / max(1, right_steps),
        "needed_reflections_per_response": after[(False, REFLECTION)] / n,
        "redundant_reflections_per_response": after[(True, REFLECTION)] / n,
        "slipped_share": reflections_by_slip[True][1] / n,
        "reflection_per_slipped_response": _ratio(*reflections_by_slip[True]),
        "reflection_per_clean_response": _ratio(*reflections_by_slip[False]),
    }
    return stats


def _ratio(count: int, total: int) -> float:
    return count / total if total else float("nan")
