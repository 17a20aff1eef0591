"""The trace generator of the SEAL organism: seeded, at its rates, labelled as SEAL's keyword rule
labels it, parseable, and right in its final answer after every fix."""

from __future__ import annotations

import math

import pytest

from interp.data.math_prompts import build_prompt
from interp.data.reasoning_traces import (
    BLANK_LINE,
    ROLES,
    TraceConfig,
    find_step,
    generate_traces,
    held_out_problems,
    parse_response,
    reasoner_prompt,
    step_is_right,
    trace_statistics,
)
from interp.text.thoughts import EXECUTION, REFLECTION, TRANSITION, classify_thought, segment

RATES = TraceConfig(seed=3, error_rate=0.3, recheck_rate=0.2, alternative_rate=0.25)


def close(observed: float, expected: float, n: int, sigmas: float = 4.0) -> bool:
    """Within `sigmas` binomial standard errors of the expected rate."""
    return abs(observed - expected) <= sigmas * math.sqrt(expected * (1 - expected) / n) + 1e-9


def test_same_seed_same_traces_other_seed_other_traces() -> None:
    first = generate_traces(40, TraceConfig(seed=5))
    assert first == generate_traces(40, TraceConfig(seed=5))
    assert first != generate_traces(40, TraceConfig(seed=6))
    # trace i depends only on (seed, i), so a resumed or chunked run writes the same data
    assert generate_traces(5, TraceConfig(seed=5), start=17) == first[17:22]


def test_rates_match_the_parameters_on_many_traces() -> None:
    traces = generate_traces(3000, RATES)
    stats = trace_statistics([t.response for t in traces], [t.answer for t in traces])
    steps = round(stats["steps_per_response"] * len(traces))
    wrong = round(stats["wrong_step_rate"] * steps)
    assert close(stats["wrong_step_rate"], RATES.error_rate, steps)
    assert stats["reflection_after_wrong"] == 1.0  # every slip is caught at once
    assert close(stats["reflection_after_right"], RATES.recheck_rate, steps - wrong)
    assert close(stats["transition_after_right"], RATES.alternative_rate, steps - wrong)
    assert stats["well_formed"] == 1.0 and stats["accuracy"] == 1.0
    # the rates are the parameters, not constants of the generator
    quiet = generate_traces(
        500, TraceConfig(seed=3, error_rate=0, recheck_rate=0, alternative_rate=0)
    )
    quiet_stats = trace_statistics([t.response for t in quiet], [t.answer for t in quiet])
    assert quiet_stats["reflection_per_response"] == quiet_stats["transition_per_response"] == 0


def test_labels_are_what_seals_keyword_rule_says() -> None:
    traces = generate_traces(2000, RATES)
    seen = set()
    for trace in traces:
        for thought in trace.thoughts:
            assert classify_thought(thought.text) == thought.label, thought
            seen.add((thought.role, thought.label, thought.needed))
    assert seen == {(role, *label_needed) for role, label_needed in ROLES.items()}


def test_needed_reflections_follow_wrong_steps_and_fix_them() -> None:
    for trace in generate_traces(1000, RATES):
        thoughts = trace.thoughts
        for index, thought in enumerate(thoughts):
            step = find_step(thought.text)
            if thought.role == "step":
                assert step is not None and step_is_right(step) == thought.correct
                following = thoughts[index + 1] if index + 1 < len(thoughts) else None
                if not thought.correct:
                    assert following is not None and following.role == "fix" and following.needed
                    fix = find_step(following.text)
                    assert fix is not None and step_is_right(fix)
                    assert (fix.left, fix.op, fix.right) == (step.left, step.op, step.right)
            if thought.role in ("recheck", "alternative"):
                assert not thought.needed and step is not None and step_is_right(step)
                assert thoughts[index - 1].role == "step" and thoughts[index - 1].correct


def test_final_answers_follow_the_story_after_fixes() -> None:
    for trace in generate_traces(500, RATES):
        problem = trace.problem
        assert all(step_is_right(step) for step in problem.steps)
        right_values = [find_step(t.text).value for t in trace.thoughts if t.role == "fix"]
        right_values += [
            find_step(t.text).value for t in trace.thoughts if t.role == "step" and t.correct
        ]
        assert sorted(right_values) == sorted(step.value for step in problem.steps)
        # each step starts from the amount the one before it reached (or a number of the question)
        for before, step in zip(problem.steps, problem.steps[1:]):
            assert before.value in (step.left, step.right) or str(step.left) in problem.question
        assert str(problem.steps[0].left) in problem.question
        assert parse_response(trace.response).answer == trace.answer == problem.steps[-1].value


def test_parse_response_reads_the_format_and_flags_broken_ones() -> None:
    trace = generate_traces(1, RATES)[0]
    parsed = parse_response(trace.response)
    assert parsed.thoughts == tuple(t.text for t in trace.thoughts)
    assert parsed.well_formed and parsed.answer == trace.answer
    assert trace.response.count(BLANK_LINE) == len(trace.thoughts) - 1
    unclosed = parse_response(trace.response.split("</think>")[0])
    assert not unclosed.well_formed and unclosed.answer is None
    assert unclosed.thoughts == parsed.thoughts
    no_think = parse_response("The answer is \\boxed{12}.")
    assert no_think.thoughts == () and not no_think.well_formed and no_think.answer == 12


def test_statistics_count_reflections_after_wrong_and_right_steps() -> None:
    text = (
        "<think>\nA starts with 3.\n\nA has 3 + 4 = 8.\n\nWait, 3 + 4 = 7, not 8.\n\n"
        "A has 7 * 2 = 14.\n\nLet me verify: 7 * 2 = 14.\n\nA has 14 - 4 = 10.\n\n"
        "Alternatively, 10 + 4 = 14, so it is 10.\n</think>\n\\boxed{10}"
    )
    stats = trace_statistics([text, "no format at all"], [10, 10])
    assert stats["well_formed"] == stats["accuracy"] == 0.5
    assert stats["steps_per_response"] == 1.5  # 3 steps in 2 responses
    assert stats["wrong_step_rate"] == pytest.approx(1 / 3)
    assert stats["reflection_after_wrong"] == 1.0
    assert stats["reflection_after_right"] == 0.5 and stats["transition_after_right"] == 0.5
    assert stats[f"{REFLECTION}_per_response"] == 1.0
    assert stats[f"{TRANSITION}_per_response"] == 0.5
    assert stats[f"{EXECUTION}_per_response"] == 2.0
    assert stats["slipped_share"] == 0.5  # the first response wrote 3 + 4 = 8
    assert stats["reflection_per_slipped_response"] == 2.0
    assert stats["reflection_per_clean_response"] == 0.0
    only_clean = trace_statistics(["no format at all"], [10])
    assert math.isnan(only_clean["reflection_per_slipped_response"])  # no such response


def test_held_out_problems_are_fixed_and_never_trained_on() -> None:
    held_out = held_out_problems(200)
    assert held_out == held_out_problems(200, TraceConfig(seed=9))  # any training seed
    questions = {p.question for p in held_out}
    for seed in (0, 1):
        traces = generate_traces(2000, TraceConfig(seed=seed), exclude=held_out)
        assert not questions & {t.problem.question for t in traces}


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(error_rate=1.5), "error_rate must be a probability"),
        (dict(recheck_rate=0.7, alternative_rate=0.6), "at most 1"),
        (dict(min_events=3, max_events=2), "min_events <= max_events"),
        (dict(max_value=20), "max_value must be at least"),
    ],
)
def test_bad_configs_are_refused_with_the_reason(bad, message) -> None:
    with pytest.raises(ValueError, match=message):
        TraceConfig(**bad)


def test_bad_statistics_input_is_refused() -> None:
    with pytest.raises(ValueError, match="one gold answer per response"):
        trace_statistics(["x"], [])


@pytest.mark.slow
def test_prompt_is_the_seal_chat_prompt_and_segments_match_labels(smollm2) -> None:
    """On the organism's tokenizer: the prompt is math_eval's chat prompt, and SEAL's segmenter,
    run on the encoded trace, finds every thought with the generator's label."""
    from interp.models.reasoner import encode_trace

    tokenizer = smollm2.tokenizer
    for trace in generate_traces(60, RATES):
        prompt = reasoner_prompt(trace.problem, tokenizer)
        assert prompt == build_prompt(trace.problem.as_math_problem(), tokenizer, "chat")
        encoded = encode_trace(tokenizer, trace)
        ids = list(encoded.prompt_ids) + list(encoded.answer_ids)
        assert tokenizer.decode(list(encoded.answer_ids)).startswith(trace.response)
        thoughts = segment(ids, len(encoded.prompt_ids), tokenizer, span="think")
        assert [t.label for t in thoughts] == [t.label for t in trace.thoughts]
        assert all(t.boundary is not None for t in thoughts[1:])
