"""Thought classification (SEAL's keyword rule) and segmentation at blank-line boundaries."""

import pytest

from interp.testing import char_tokenizer
from interp.text.thoughts import (
    EXECUTION,
    REFLECTION,
    SEAL_KEYWORDS,
    TRANSITION,
    Response,
    ThoughtKeywords,
    classify_thought,
    resolve_span,
    segment,
    segment_response,
)

# (thought, class): every phrase of both lists, both prefix rules, precedence, case, position.
TABLE = [
    ("Wait, 3+4 is 7 not 8.", REFLECTION),
    ("wait", REFLECTION),
    ("  WAIT. Let me redo this.", REFLECTION),
    ("I should verify the sum.", REFLECTION),
    ("To make sure, recompute.", REFLECTION),
    ("Hold on, that is off.", REFLECTION),
    ("Let me think again about x.", REFLECTION),
    ("So the answer's correct.", REFLECTION),
    ("That's incorrect, since 2 is even.", REFLECTION),
    ("Let me check: 12/4 = 3.", REFLECTION),
    ("This seems right.", REFLECTION),
    ("It\u2019s correct.", REFLECTION),  # a curly apostrophe counts as a straight one
    ("Alternatively, factor it.", TRANSITION),
    ("ALTERNATIVELY we can", TRANSITION),
    ("Let me think differently.", TRANSITION),
    ("There is another way to see it.", TRANSITION),
    ("Try another approach.", TRANSITION),
    ("Use another method.", TRANSITION),
    ("Another solution: induction.", TRANSITION),
    ("A different idea: another strategy.", TRANSITION),
    ("One more: another technique.", TRANSITION),
    # reflection takes precedence over transition, whichever rule fires for each
    ("Alternatively, let me verify the result.", REFLECTION),
    ("Wait, another approach is simpler.", REFLECTION),
    ("Another way to make sure is to plug in.", REFLECTION),
    # prefixes only count at the start; phrases anywhere
    ("I wait for the bus, so 3 stops.", EXECUTION),
    ("It can be done alternatively.", EXECUTION),
    ("Think differenly", EXECUTION),  # SEAL's misspelling is not a keyword here
    ("Compute 3 * 4 = 12.", EXECUTION),
    ("", EXECUTION),
]


@pytest.mark.parametrize("text, label", TABLE)
def test_classifier_on_a_table_of_thoughts(text, label):
    assert classify_thought(text) == label


def test_every_default_keyword_is_covered_by_the_table():
    texts = [t.lower().replace("\u2019", "'") for t, _ in TABLE]
    for phrase in SEAL_KEYWORDS.reflection_phrases + SEAL_KEYWORDS.transition_phrases:
        assert any(phrase in t for t in texts), phrase
    for prefix in SEAL_KEYWORDS.reflection_prefixes + SEAL_KEYWORDS.transition_prefixes:
        assert any(t.strip().startswith(prefix) for t in texts), prefix


def test_keyword_lists_are_parameters():
    custom = ThoughtKeywords(
        reflection_prefixes=("hmm",),
        reflection_phrases=("double-check",),
        transition_prefixes=("Instead",),
        transition_phrases=(),
    )
    assert classify_thought("Hmm, 4.", custom) == REFLECTION
    assert classify_thought("I double-check.", custom) == REFLECTION
    assert classify_thought("instead, use x", custom) == TRANSITION  # lists are lower-cased
    assert classify_thought("Wait, 4.", custom) == EXECUTION
    with pytest.raises(ValueError, match="non-empty"):
        ThoughtKeywords(reflection_phrases=("",))


def _encode(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def test_segment_inside_think_labels_each_boundary_by_the_thought_after_it():
    tok = char_tokenizer()
    prompt = _encode(tok, "q\n\n<think>")
    response = _encode(tok, "a=1\n\nwait a=2\n\nalternatively b\n\nc</think>\n\nwait d")
    thoughts = segment(prompt + response, len(prompt), tok, span="think")
    assert [t.label for t in thoughts] == [EXECUTION, REFLECTION, TRANSITION, EXECUTION]
    assert [t.text for t in thoughts] == ["a=1", "wait a=2", "alternatively b", "c"]
    assert thoughts[0].boundary is None  # the opening piece has no boundary before it
    tokens = prompt + response
    for thought in thoughts[1:]:
        assert tok.decode([tokens[thought.boundary]]) == "\n\n"
        assert thought.start == thought.boundary + 1
        assert tok.decode(tokens[thought.start : thought.end]) == thought.text
    # the boundary after </think> and the one in the prompt are outside the span
    assert len([t for t in thoughts if t.boundary is not None]) == 3


def test_segment_whole_response_when_there_is_no_think_span():
    tok = char_tokenizer()
    prompt = _encode(tok, "q\n\n")
    response = _encode(tok, "a\n\nwait b\n\n\n\nc")
    tokens = prompt + response
    assert segment(tokens, len(prompt), tok, span="think") == []  # no <think>: nothing to split
    thoughts = segment(tokens, len(prompt), tok, span="response")
    assert [t.label for t in thoughts] == [EXECUTION, REFLECTION, EXECUTION, EXECUTION]
    assert [t.text for t in thoughts] == ["a", "wait b", "", "c"]  # back-to-back blank lines
    assert [t.n_tokens for t in thoughts] == [1, 6, 0, 1]


def test_span_without_a_closing_marker_runs_to_the_end():
    tok = char_tokenizer()
    prompt = _encode(tok, "<think>")  # reasoning templates often end the prompt with <think>
    response = _encode(tok, "x\n\nverify y")
    thoughts = segment(prompt + response, len(prompt), tok, span="think")
    assert [(t.label, t.text) for t in thoughts] == [(EXECUTION, "x"), (REFLECTION, "verify y")]


def test_segment_response_and_bad_input():
    tok = char_tokenizer()
    prompt = _encode(tok, "q")
    response = Response("r1", prompt, _encode(tok, "a\n\nwait"), correct=True, source="gsm8k/test")
    assert [t.label for t in segment_response(response, tok, span="response")] == [
        EXECUTION,
        REFLECTION,
    ]
    assert response.group == "gsm8k"
    assert Response.from_dict(response.to_dict()) == response
    with pytest.raises(ValueError, match="span must be"):
        segment(response.all_tokens, 1, tok, span="cot")
    with pytest.raises(ValueError, match="prompt_length"):
        segment(response.all_tokens, 0, tok)
    with pytest.raises(ValueError, match="lacks"):
        Response.from_dict({"id": "x"})


def test_auto_span_follows_the_vocabulary():
    assert resolve_span(char_tokenizer(), "auto") == "think"  # <think> is one special token
    assert resolve_span(char_tokenizer(), "response") == "response"
    with pytest.raises(ValueError):
        resolve_span(char_tokenizer(), "everything")
