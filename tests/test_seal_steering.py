"""Steered decoding: the SEAL edit touches exactly the boundary tokens inside the span (with and
without the KV cache, batched and alone), and the steering study's arms on real models."""

import dataclasses

import pytest
import torch

from interp.analyses import steering
from interp.decoding import generate
from interp.interventions.steering_vector import SteeringVector
from interp.text.thoughts import segment


def _vector(model, layers=(1,)):
    torch.manual_seed(0)
    vectors = torch.randn(len(layers), model.cfg.d_model)
    return SteeringVector(vectors, layers, counts={"execution": 1, "reflection": 1})


CASES = [
    # (prompt, forced continuation, span)
    ("q\n\n<think>a", "b\n\nc\n\nwait d</think>e\n\nf\n\ng", "think"),
    ("<think>", "x\n\n\n\ny</think>\n\nz", "think"),
    ("12+3=", "1\n\n5\n\nok", "response"),
    ("hi\n\n", "no span\n\nhere", "think"),  # no <think>: nothing is steered
]


@pytest.mark.parametrize("use_cache", [True, False])
def test_steering_touches_exactly_the_boundaries_inside_the_span(tiny, force_text, use_cache):
    tok = tiny.tokenizer
    for span in ("think", "response"):
        cases = [c for c in CASES if c[2] == span]
        prompts = [c[0] for c in cases]
        continuations = [c[1] for c in cases]
        n_new = max(len(tok.encode(c, add_special_tokens=False)) for c in continuations)
        edit = _vector(tiny).edit(tiny, layer=1, alpha=4.0, span=span)
        batched = generate(
            tiny,
            prompts,
            edit_list=[edit],
            max_new_tokens=n_new,
            logit_processors=[force_text(tok, continuations)],
            use_cache=use_cache,
        )
        for row, (prompt, continuation) in enumerate(zip(prompts, continuations)):
            alone = generate(
                tiny,
                [prompt],
                edit_list=[edit],
                max_new_tokens=n_new,
                logit_processors=[force_text(tok, [continuation])],
                use_cache=use_cache,
            )
            assert alone.edited[0] == batched.edited[row]
            assert alone.logprobs[0] == pytest.approx(batched.logprobs[row], abs=1e-4)
            tokens = batched.prompt_tokens[row] + batched.tokens[row]
            n_prompt = len(batched.prompt_tokens[row])
            own = len(tok.encode(continuation, add_special_tokens=False))
            assert tok.decode(batched.tokens[row][:own]) == continuation
            # the positions segmentation reads states at, minus the last token (never fed back)
            expected = [False] * len(tokens)
            for thought in segment(tokens, n_prompt, tok, span=span):
                if thought.boundary is not None and thought.boundary < len(tokens) - 1:
                    expected[thought.boundary] = True
            assert batched.edited[row] == expected
            # by hand: a "\n\n" token, generated, inside <think>..</think> when span is think
            text = [tok.decode(tokens[:i]) for i in range(len(tokens))]
            by_hand = [
                tok.decode([t]) == "\n\n"
                and i >= n_prompt
                and i < len(tokens) - 1
                and (span == "response" or ("<think>" in text[i] and "</think>" not in text[i]))
                for i, t in enumerate(tokens)
            ]
            assert expected == by_hand


def test_steering_changes_only_what_follows_the_first_boundary(tiny, force_text):
    tok = tiny.tokenizer
    prompt, continuation = "<think>", "ab\n\ncd\n\nef"
    n_new = len(tok.encode(continuation, add_special_tokens=False))
    forcing = force_text(tok, [continuation])
    plain = generate(tiny, [prompt], max_new_tokens=n_new, logit_processors=[forcing])
    edit = _vector(tiny).edit(tiny, layer=1, alpha=8.0, span="think")
    steered = generate(
        tiny, [prompt], edit_list=[edit], max_new_tokens=n_new, logit_processors=[forcing]
    )
    first = steered.edited[0].index(True) - len(steered.prompt_tokens[0])  # generated index
    # token `first` is the boundary; its logprob was computed before it was fed back
    assert steered.logprobs[0][: first + 1] == pytest.approx(plain.logprobs[0][: first + 1])
    assert steered.logprobs[0][first + 1] != pytest.approx(plain.logprobs[0][first + 1], abs=1e-4)
    zero = _vector(tiny).edit(tiny, layer=1, alpha=0.0, span="think")
    unchanged = generate(
        tiny, [prompt], edit_list=[zero], max_new_tokens=n_new, logit_processors=[forcing]
    )
    assert unchanged.logprobs[0] == pytest.approx(plain.logprobs[0], abs=1e-6)


def test_arm_grid_cross_and_full():
    config = steering.SteeringConfig(
        layers=(4, 8),
        alphas=(0.5, 1.0),
        main_layer=8,
        main_alpha=1.0,
        variants=("pooled", "reflection_only"),
    )
    names = [a.name for a in steering.arm_specs(config)]
    assert names == [
        "base",
        "penalty",
        "steer_pooled_L8_a0.5",
        "steer_pooled_L8_a1",
        "steer_pooled_L4_a1",
        "steer_reflection_only_L8_a1",
    ]
    full = steering.SteeringConfig(
        layers=(4, 8), alphas=(0.0, 2.0), main_layer=8, main_alpha=2.0, grid="full"
    )
    assert [a.name for a in steering.arm_specs(full)] == [
        "base",
        "penalty",
        "steer_pooled_L4_a2",
        "steer_pooled_L8_a2",
    ]


def test_arms_on_the_organisms_problems_count_needed_and_redundant_reflections():
    """On the trace generator's problems every arm row carries needed / redundant reflections read
    from its outputs; on other problems it does not."""
    from interp.data.reasoning_traces import held_out_problems
    from interp.testing import tiny_model

    tiny = tiny_model("qwen2", n_layers=2, d_model=32, seed=1, n_ctx=512)  # room for a question
    organism_problems = [p.as_math_problem() for p in held_out_problems(2)]
    options = dict(
        layers=(1,),
        alphas=(1.0,),
        main_layer=1,
        max_new_tokens=4,
        prompt_style="plain",
        penalty_strings=("w",),
        progress=False,
    )
    result = steering.run(tiny, _vector(tiny), organism_problems, **options)
    for row in result.tables["arms"]:
        assert set(steering.ORGANISM_COLUMNS) <= set(row)
    assert "needed reflections / response" in steering.comparison_markdown(result)
    other = [dataclasses.replace(p, source="gsm8k") for p in organism_problems]
    plain = steering.run(tiny, _vector(tiny), other, **options)
    assert "needed_reflections_per_response" not in plain.tables["arms"][0]
    assert "needed reflections" not in steering.comparison_markdown(plain)


def test_organism_columns_read_necessity_off_the_text():
    from interp.data.reasoning_traces import held_out_problems

    problem = held_out_problems(1)[0].as_math_problem()
    text = (
        "<think>\nA starts with 3.\n\nA has 3 + 4 = 8.\n\nWait, 3 + 4 = 7, not 8.\n\n"
        "A has 7 * 2 = 14.\n\nLet me verify: 7 * 2 = 14.\n</think>\n\\boxed{14}"
    )
    columns = steering._organism_columns(
        [{"id": problem.id, "output": text}], {problem.id: problem}
    )
    assert columns["needed_reflections_per_response"] == 1.0  # after 3 + 4 = 8
    assert columns["redundant_reflections_per_response"] == 1.0  # after 7 * 2 = 14
    assert columns["wrong_step_rate"] == 0.5 and columns["well_formed"] == 1.0
