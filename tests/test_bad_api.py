"""Bad input to the Python API (decoding, edits, edit functions): a clear error, before any forward.

Each row of a table is a call on the tiny model, the error it must raise and a fragment of the
message (which says what to pass instead). After every error no hook is left on the model; calls
that validate their input must fail before the model runs at all.
"""

from __future__ import annotations

import math

import pytest
import torch

from interp import generate
from interp.core.tokens import GenerationError
from interp.interventions import RED, AddVector, DiReFT, Edit, EditError, LoReFT, PushAlong, edits
from interp.interventions.lora import LoRA, LoRAError
from interp.interventions.random_red import random_red_edits
from interp.interventions.steering_vector import SteeringVector

PROMPT = ["1+2="]
WIDTH = 32  # the tiny fixture's d_model


def decode(model, edit_list=(), prompts=PROMPT, **settings):
    settings.setdefault("max_new_tokens", 3)
    return generate(model, prompts, edit_list=edit_list, **settings)


def add_at(hook, vector):
    return lambda m: decode(m, [Edit(hook, AddVector(vector))])


# (id, call on the model, exception type, message fragment)
GENERATION_CASES = [
    ("float max_new_tokens", lambda m: decode(m, max_new_tokens=2.5), "max_new_tokens=2"),
    ("whole float max_new_tokens", lambda m: decode(m, max_new_tokens=3.0), "must be an int"),
    ("bool max_new_tokens", lambda m: decode(m, max_new_tokens=True), "must be an int"),
    ("zero max_new_tokens", lambda m: decode(m, max_new_tokens=0), "max_new_tokens=1 or more"),
    ("batch_size 0", lambda m: decode(m, batch_size=0), "batch_size=1 or more"),
    ("batch_size -1", lambda m: decode(m, batch_size=-1), "batch_size=1 or more"),
    ("float batch_size", lambda m: decode(m, batch_size=1.5), "batch_size must be an int"),
    ("float seed", lambda m: decode(m, seed=0.5), "seed must be an int"),
    ("negative token id", lambda m: decode(m, prompts=[[5, -3]]), "token id -3, outside"),
    ("token id = vocab", lambda m: decode(m, prompts=[[5, m.cfg.d_vocab]]), "vocabulary of"),
    ("float token id", lambda m: decode(m, prompts=[[5, 6.5]]), "token ids must be ints"),
    ("flat list of ids", lambda m: decode(m, prompts=[5, 6]), "[[1, 2, 3]] for one prompt"),
    ("single string", lambda m: generate(m, "1+2=", max_new_tokens=2), "pass [text]"),
    ("1-D tensor", lambda m: decode(m, prompts=torch.tensor([5, 6])), "tokens[None]"),
    ("empty prompt list", lambda m: decode(m, prompts=[]), "no prompts given"),
    ("empty prompt", lambda m: decode(m, prompts=[""]), "prompt 0 is empty"),
    ("top_k 0", lambda m: decode(m, do_sample=True, top_k=0), "top_k=1 or more"),
    ("top_k -1", lambda m: decode(m, do_sample=True, top_k=-1), "or None to keep"),
    ("top_p 0", lambda m: decode(m, do_sample=True, top_p=0.0), "top_p must be in (0, 1]"),
    ("top_p 1.5", lambda m: decode(m, do_sample=True, top_p=1.5), "top_p must be in (0, 1]"),
    ("top_p nan", lambda m: decode(m, do_sample=True, top_p=math.nan), "top_p must be"),
    ("negative temperature", lambda m: decode(m, do_sample=True, temperature=-1.0), ">= 0"),
    ("nan temperature", lambda m: decode(m, do_sample=True, temperature=math.nan), ">= 0"),
    ("negative greedy temp", lambda m: decode(m, temperature=-0.5), "temperature must be"),
    (
        "temperature 0 sampled",
        lambda m: decode(m, do_sample=True, temperature=0.0),
        "do_sample=False",
    ),
    ("empty stop string", lambda m: decode(m, stop_strings=("",)), "non-empty strings"),
    ("empty single stop", lambda m: decode(m, stop_strings=""), "non-empty strings"),
    ("stop_strings not a list", lambda m: decode(m, stop_strings=3), "list of strings"),
    ("non-string stop", lambda m: decode(m, stop_strings=(3,)), "non-empty strings"),
    ("do_sample not bool", lambda m: decode(m, do_sample="yes"), "True or False"),
    ("nan kl_budget", lambda m: decode(m, kl_budget=math.nan), "kl_budget must be"),
    ("misspelt setting", lambda m: decode(m, max_new_token=2), "Did you mean max_new_tokens?"),
    (
        "one Edit, not a list",
        lambda m: decode(m, Edit("blocks.0.hook_resid_pre", RED(WIDTH))),
        "[edit]",
    ),
]

EDIT_CASES = [
    ("function, not an Edit", lambda m: decode(m, [RED(WIDTH)]), "Edit(hook, function)"),
    ("2-D vector (1, d)", lambda m: AddVector(torch.ones(1, WIDTH)), "vector.squeeze(0)"),
    ("2-D vector (3, d)", lambda m: AddVector(torch.ones(3, WIDTH)), "vector[i]"),
    ("0-D vector", lambda m: AddVector(torch.tensor(1.0)), "1-D tensor"),
    ("empty vector", lambda m: AddVector(torch.ones(0)), "1-D tensor"),
    ("NaN vector", lambda m: AddVector(torch.full((WIDTH,), math.nan)), "NaN or inf"),
    ("inf vector", lambda m: AddVector(torch.full((WIDTH,), math.inf)), "NaN or inf"),
    ("NaN alpha", lambda m: AddVector(torch.ones(WIDTH), alpha=math.nan), "alpha=1.0"),
    ("zero width", lambda m: AddVector(0), "positive int"),
    ("2-D direction", lambda m: PushAlong(torch.ones(2, WIDTH)), "1-D tensor"),
    ("NaN direction", lambda m: PushAlong(torch.full((WIDTH,), math.nan)), "NaN or inf"),
    ("zero direction", lambda m: PushAlong(torch.zeros(WIDTH)), "non-zero, finite length"),
    ("overflowing direction", lambda m: PushAlong(torch.full((WIDTH,), 1e38)), "finite length"),
    ("NaN amount", lambda m: PushAlong(torch.ones(WIDTH), amount=math.nan), "amount=1.0"),
    ("2-D amounts", lambda m: PushAlong(torch.ones(WIDTH), amount=torch.ones(2, 2)), "1-D tensor"),
    (
        "NaN in amounts",
        lambda m: PushAlong(torch.ones(WIDTH), amount=torch.tensor([1.0, math.nan])),
        "NaN",
    ),
    ("inf unit", lambda m: PushAlong(torch.ones(WIDTH), unit=math.inf), "unit=1.0"),
    ("RED width 0", lambda m: RED(0), "positive int"),
    ("RED float width", lambda m: RED(3.5), "positive int"),
    ("RED.random negative norm", lambda m: RED.random(WIDTH, -1.0), "bias_norm >= 0"),
    ("RED.random NaN norm", lambda m: RED.random(WIDTH, math.nan), "bias_norm=1.0"),
    ("RED.random inf norm", lambda m: RED.random(WIDTH, math.inf), "finite number"),
    ("RED.random negative std", lambda m: RED.random(WIDTH, 1.0, scale_std=-1.0), "scale_std >= 0"),
    ("random RED NaN norm", lambda m: random_red_edits(m, math.nan), "e.g. 0.5"),
    ("random RED negative norm", lambda m: random_red_edits(m, -0.5), "finite number >= 0"),
    ("LoReFT rank 0", lambda m: LoReFT(WIDTH, 0), "rank must be an int in 1..32"),
    ("DiReFT width 0", lambda m: DiReFT(0, 1), "positive int"),
    (
        "edits() given one Edit",
        lambda m: edits(m, Edit("blocks.0.hook_resid_pre", RED(WIDTH))).__enter__(),
        "[edit]",
    ),
    (
        "wrong width at a known hook",
        add_at("blocks.0.hook_resid_pre", torch.ones(16)),
        "build it with width 32",
    ),
    (
        "PushAlong amounts for another batch",
        lambda m: decode(
            m, [Edit("blocks.0.hook_resid_pre", PushAlong(torch.ones(WIDTH), amount=torch.ones(3)))]
        ),
        "one amount per sequence",
    ),
]

LORA_CASES = [
    ("LoRA NaN alpha", lambda m: LoRA.for_model(m, alpha=math.nan), LoRAError, "alpha=16.0"),
    ("LoRA float rank", lambda m: LoRA.for_model(m, rank=2.5), LoRAError, "rank=8"),
    (
        "LoRA modules as a string",
        lambda m: LoRA.for_model(m, modules="q_proj"),
        LoRAError,
        "['q_proj']",
    ),
]

STEERING_CASES = [
    (
        "NaN steering vector",
        lambda m: SteeringVector(torch.full((1, WIDTH), math.nan), layers=(0,)),
        "NaN or inf",
    ),
]

ALL_CASES = (
    [(name, call, GenerationError, text) for name, call, text in GENERATION_CASES]
    + [(name, call, EditError, text) for name, call, text in EDIT_CASES]
    + LORA_CASES
    + [(name, call, ValueError, text) for name, call, text in STEERING_CASES]
)


def no_hooks_left(model) -> bool:
    return all(not point.fwd_hooks for point in model.hook_dict.values())


class ForwardCounter:
    """Counts forwards of the model (a torch pre-hook, not a TransformerLens hook point)."""

    def __init__(self, model):
        self.calls = 0
        self.handle = model.register_forward_pre_hook(self._count)

    def _count(self, module, args):
        self.calls += 1

    def remove(self):
        self.handle.remove()


# Errors that only a forward can reveal (the batch size is known when the edit runs).
FOUND_IN_A_FORWARD = {"PushAlong amounts for another batch"}


@pytest.mark.parametrize("name,call,error,fragment", ALL_CASES, ids=[case[0] for case in ALL_CASES])
def test_bad_input_is_refused_before_any_forward(tiny, name, call, error, fragment):
    counter = ForwardCounter(tiny)
    try:
        with pytest.raises(error) as raised:
            call(tiny)
    finally:
        counter.remove()
    assert fragment in str(raised.value)
    assert isinstance(raised.value, ValueError)  # the CLI turns these into `error: ...`, exit 2
    assert counter.calls == (1 if name in FOUND_IN_A_FORWARD else 0)
    assert no_hooks_left(tiny)


UNKNOWN_WIDTH_HOOKS = [
    ("blocks.0.attn.hook_z", 8),  # [batch, pos, head, d_head]
    ("blocks.0.attn.hook_v", 8),
    ("blocks.1.ln1.hook_scale", 1),
    ("hook_unembed", None),  # the vocabulary size
]


@pytest.mark.parametrize("hook,width", UNKNOWN_WIDTH_HOOKS)
def test_wrong_width_at_a_hook_the_name_does_not_size_fails_at_the_first_forward(tiny, hook, width):
    from interp.interventions.edits import expected_width

    width = width or tiny.cfg.d_vocab
    assert expected_width(tiny, hook) is None  # so only the activation can tell
    with pytest.raises(EditError) as raised:
        decode(tiny, [Edit(hook, AddVector(torch.ones(WIDTH)))])
    message = str(raised.value)
    assert hook in message and "has width 32" in message and f"(width {width})" in message
    assert f"build the function with width {width}" in message
    assert no_hooks_left(tiny)
    # the same edit with the width found there runs, and changes the output
    plain = decode(tiny, max_new_tokens=6).tokens
    edited = decode(
        tiny, [Edit(hook, AddVector(torch.linspace(-9.0, 9.0, width)))], max_new_tokens=6
    )
    assert no_hooks_left(tiny)
    if hook != "blocks.1.ln1.hook_scale":  # adding to a norm's scale may leave the argmax
        assert edited.tokens != plain


def test_a_single_stop_string_is_one_string_not_its_characters(tiny, force_text):
    forced = force_text(tiny.tokenizer, ["abcab"])
    as_string = decode(tiny, stop_strings="ca", max_new_tokens=5, logit_processors=[forced])
    assert as_string.texts == ["abca"] and as_string.finish_reasons == ["stop_string"]
    assert as_string.config.stop_strings == ("ca",)


def test_top_k_above_the_vocabulary_keeps_every_token(tiny):
    wide = decode(tiny, do_sample=True, top_k=10**6, max_new_tokens=6, seed=3).tokens
    assert wide == decode(tiny, do_sample=True, max_new_tokens=6, seed=3).tokens


def test_temperature_is_ignored_when_greedy(tiny):
    assert decode(tiny, temperature=0.0).tokens == decode(tiny).tokens


def test_good_settings_of_the_same_kinds_still_decode(tiny):
    """The checks refuse only what they should: edge values that are valid still run."""
    out = decode(
        tiny,
        prompts=[[0, tiny.cfg.d_vocab - 1], torch.tensor([5, 6])],
        do_sample=True,
        top_k=1,
        top_p=1.0,
        temperature=1e-3,
        batch_size=1,
        max_new_tokens=1,
    )
    assert out.n_generated == [1, 1]
    zero = RED.random(WIDTH, 0.0)
    assert float(zero.bias.norm()) == 0.0
    assert AddVector([0.0] * WIDTH).width == WIDTH  # a list is taken as a vector


def test_unit_vector_of_equal_class_means_is_zero_with_a_warning():
    """Equal means (layer 0: every boundary state is the same token's embedding) have no
    direction: that layer's unit vector is zero, not a division by a tiny number."""
    sums = torch.ones(2, 3, WIDTH)
    sums[1, 0] += 1.0  # layer 1: execution differs
    with pytest.warns(UserWarning, match=r"equal at layers \[0\]"):
        vector = SteeringVector.from_class_stats(
            sums,
            {"execution": 1, "reflection": 1, "transition": 1},
            (0, 1),
            normalization="unit",
        )
    assert float(vector.vector(0).norm()) == 0.0
    assert abs(float(vector.vector(1).norm()) - 1.0) < 1e-6
