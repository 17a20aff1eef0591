"""The device-sensitive paths on the device the tests are given (`--interp-device cuda` or
INTERP_TEST_DEVICE=cuda; cpu by default, so CI runs them too), in float32 and bfloat16: edits with
and without the KV cache, batched and alone; the push sweep against full forwards; training steps
of edits; KL-budget decoding; and the GPU benchmark's small mode. scripts/gpu_check.sh runs this
file on a GPU.

In float32 the decoding runs must agree token for token. In bfloat16 two runs may part at a near
tie (other kernels, other rounding), so each run is checked against one plain forward of the
same edited model instead: every chosen token is the greedy one up to rounding, and the edits
touched exactly the positions their rule names.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import pytest
import torch

import interp
from interp.core.digit_answers import PushSweep, cut_tolerance, greedy_outcomes
from interp.core.positions import PromptAndFirstGenerated, TokenState
from interp.core.runner import forward
from interp.data.arithmetic import addition_problems, digit_token_ids, encode_problems
from interp.decoding import generate
from interp.interventions import RED, AddVector, Edit, LoReFT, PushAlong, edits
from interp.models.adder import adder_prompt, sample_problems
from interp.testing import position_rule_examples, tiny_model
from interp.training.data import Pair
from interp.training.trainer import train

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
PROMPTS = ["12+34=", "a\n\nb<think>c d", "hello 5\n\n", "<think>x\n\nq"]
REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=list(DTYPES))
def dtype(request) -> torch.dtype:
    return DTYPES[request.param]


@pytest.fixture(scope="module")
def tiny_on_device(device_under_test, dtype):
    """A 2-layer Qwen2-architecture model with a character tokenizer, on the test device."""
    model = tiny_model("qwen2", n_layers=2, d_model=32, seed=1, dtype=dtype)
    return model.to(device_under_test, print_details=False)


@pytest.fixture(scope="module")
def adder_on_device(device_under_test, dtype):
    """The shipped toy adder, loaded onto the test device."""
    return interp.load_model("adder4", device=str(device_under_test), dtype=dtype)


def _mixed_edits(model, rule) -> list[Edit]:
    generator = torch.Generator().manual_seed(0)
    width = model.cfg.d_model
    return [
        Edit(
            "blocks.1.hook_resid_pre", AddVector(torch.randn(width, generator=generator), 1.5), rule
        ),
        Edit("blocks.0.hook_mlp_out", RED.random(width, bias_norm=1.0, seed=3), rule),
        Edit("blocks.1.hook_resid_post", LoReFT(width, 2), rule),
    ]


def _check_against_one_plain_forward(model, run, edit_list, rule) -> None:
    """Each row of `run`: every chosen token is the argmax, up to rounding, of one uncached forward
    of the edited model over the row alone; the edits touched exactly the positions `rule` names
    (the last generated token is never fed back, so never touched)."""
    device = next(model.parameters()).device
    for prompt, generated, touched in zip(run.prompt_tokens, run.tokens, run.edited):
        fed = torch.tensor([prompt + generated[:-1]], device=device)
        with torch.no_grad(), edits(model, edit_list):
            logits = forward(model, fed, torch.ones_like(fed), prompt_lengths=[len(prompt)])
        steps = logits[0, len(prompt) - 1 :].float()
        chosen = steps.gather(1, torch.tensor(generated, device=device)[:, None])[:, 0]
        tolerance = cut_tolerance(logits.dtype) * max(float(steps.abs().max()), 1.0)
        gaps = steps.max(-1).values - chosen
        assert float(gaps.max()) <= tolerance, (prompt, generated, gaps.tolist(), tolerance)
        whole = torch.tensor([prompt + generated], device=device)
        expected = rule.mask(TokenState.for_tokens(whole, prompt_lengths=[len(prompt)]))[0]
        expected[-1] = False
        assert touched == expected.tolist(), (prompt, generated)


def _assert_same_runs(runs: dict, logprob_tolerance: float) -> None:
    first_name, first = next(iter(runs.items()))
    for name, run in runs.items():
        assert run.tokens == first.tokens, (name, first_name)
        assert run.edited == first.edited, (name, first_name)
        for ours, theirs in zip(run.logprobs, first.logprobs):
            assert ours == pytest.approx(theirs, abs=logprob_tolerance), (name, first_name)


def _cached_uncached_alone(model, prompts, edit_list, alone=(0, -1), **kwargs) -> dict:
    """The prompts decoded batched with the KV cache, batched without it, and (rows `alone`) one by
    one; every run holds the rows `alone` only, in that order."""
    runs = {
        "batched, cache": generate(model, prompts, edit_list=edit_list, **kwargs),
        "batched, no cache": generate(
            model, prompts, edit_list=edit_list, use_cache=False, **kwargs
        ),
    }
    singles = [generate(model, [prompts[i]], edit_list=edit_list, **kwargs) for i in alone]
    runs = {name: _rows(run, alone) for name, run in runs.items()}
    runs["alone, cache"] = type(singles[0])(
        prompt_tokens=[s.prompt_tokens[0] for s in singles],
        tokens=[s.tokens[0] for s in singles],
        texts=[s.texts[0] for s in singles],
        finish_reasons=[s.finish_reasons[0] for s in singles],
        logprobs=[s.logprobs[0] for s in singles],
        edited=[s.edited[0] for s in singles],
        config=singles[0].config,
    )
    return runs


def _rows(run, rows):
    """A `Generation` holding only the given rows of `run`."""
    picked = {}
    for name in ("prompt_tokens", "tokens", "texts", "finish_reasons", "logprobs", "edited"):
        picked[name] = [getattr(run, name)[i] for i in rows]
    return type(run)(**picked, config=run.config)


# ------------------------------------------------------------------------------------------------
# Decoding with edits


def test_the_model_sits_on_the_test_device(
    tiny_on_device, adder_on_device, device_under_test, dtype
):
    for model in (tiny_on_device, adder_on_device):
        assert {p.device.type for p in model.parameters()} == {device_under_test.type}
        assert {p.dtype for p in model.parameters()} == {dtype}
        assert torch.device(model.cfg.device).type == device_under_test.type


@pytest.mark.parametrize("rule_name", ["all", "boundary_in_span"])
def test_edits_land_by_their_rule_with_and_without_cache_batched_and_alone(
    tiny_on_device, dtype, rule_name
):
    model = tiny_on_device
    rule = position_rule_examples(model.tokenizer)[rule_name]
    edit_list = _mixed_edits(model, rule)
    runs = _cached_uncached_alone(model, PROMPTS, edit_list, max_new_tokens=8)
    for run in runs.values():
        _check_against_one_plain_forward(model, run, edit_list, rule)
        assert all(math.isfinite(x) for row in run.logprobs for x in row)
    if dtype == torch.float32:
        _assert_same_runs(runs, logprob_tolerance=1e-4)


def test_edits_change_the_tokens(tiny_on_device):
    plain = generate(tiny_on_device, PROMPTS, max_new_tokens=10)
    rule = position_rule_examples(tiny_on_device.tokenizer)["all"]
    edited = generate(
        tiny_on_device, PROMPTS, edit_list=_mixed_edits(tiny_on_device, rule), max_new_tokens=10
    )
    assert plain.tokens != edited.tokens
    assert not any(any(row) for row in plain.edited)


def test_the_adder_adds_on_the_device_cached_and_uncached_batched_and_alone(adder_on_device, dtype):
    problems = sample_problems(16, seed=31)
    prompts = [adder_prompt(a, b) for a, b in problems]
    batched = generate(adder_on_device, prompts, max_new_tokens=6, batch_size=16)
    eos = adder_on_device.tokenizer.eos_token
    right = sum(t == f"{a + b}{eos}" for t, (a, b) in zip(batched.texts, problems))
    assert right >= 15, batched.texts  # 200 of 200 in float32 on the CPU
    runs = _cached_uncached_alone(adder_on_device, prompts[:6], [], max_new_tokens=6)
    _assert_same_runs(runs, logprob_tolerance=1e-4 if dtype == torch.float32 else 5e-2)


def test_edits_on_the_adder_land_by_their_rule(adder_on_device, dtype):
    model = adder_on_device
    rule = PromptAndFirstGenerated(2)
    width = model.cfg.d_model
    edit_list = [
        Edit(
            "blocks.1.hook_resid_pre",
            AddVector(torch.randn(width, generator=torch.Generator().manual_seed(4)), 0.3),
            rule,
        ),
        Edit("blocks.2.hook_mlp_out", RED.random(width, bias_norm=0.5, seed=5), rule),
    ]
    prompts = [adder_prompt(a, b) for a, b in sample_problems(4, seed=32)]
    runs = _cached_uncached_alone(model, prompts, edit_list, max_new_tokens=6, stop_at_eos=False)
    for run in runs.values():
        _check_against_one_plain_forward(model, run, edit_list, rule)
    if dtype == torch.float32:
        _assert_same_runs(runs, logprob_tolerance=1e-4)


# ------------------------------------------------------------------------------------------------
# The push sweep


def test_push_sweep_equals_full_forwards_on_the_adder(adder_on_device):
    model = adder_on_device
    rows = encode_problems(addition_problems(24, 4, seed=9), model.tokenizer, "compact")
    digits = digit_token_ids(model.tokenizer)
    direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(3))

    def push(amounts):
        return Edit("blocks.2.hook_resid_post", PushAlong(direction, amounts, 1.0))

    strengths = [-200.0, 0.0, 200.0]
    sweep = PushSweep(model, rows, digits, push, 2, batch_size=16)
    cut = sweep.outcomes(strengths)
    assert bool(cut[1].correct.all())  # unpushed, the adder gets them all right
    assert not bool(cut[0].correct.all()) or not bool(
        cut[-1].correct.all()
    )  # big pushes break some
    for strength, outcome in zip(strengths, cut):
        full = greedy_outcomes(model, rows, digits, [push(strength)], batch_size=16)
        assert torch.equal(outcome.correct, full.correct), strength
        assert torch.equal(outcome.moved, full.moved), strength


def test_push_sweep_with_a_shared_prefix_on_the_tiny_model(tiny_on_device):
    """numprobe prompts share "Question: What is the sum of ": the shared-prefix path with padding."""
    model = tiny_on_device
    rows = encode_problems(addition_problems(20, 2, seed=5), model.tokenizer, "numprobe")
    digits = digit_token_ids(model.tokenizer)
    direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(3))

    def push(amounts):
        return Edit("blocks.0.hook_resid_post", PushAlong(direction, amounts, 1.0))

    strengths = [-30.0, 0.0, 30.0]
    cut = PushSweep(model, rows, digits, push, 0, batch_size=7).outcomes(strengths)
    for strength, outcome in zip(strengths, cut):
        full = greedy_outcomes(model, rows, digits, [push(strength)], batch_size=7)
        assert torch.equal(outcome.correct, full.correct), strength
        assert torch.equal(outcome.moved, full.moved), strength


# ------------------------------------------------------------------------------------------------
# Training


PAIRS = [Pair(f"{a}+{b}=", f"{a + b}") for a in range(12) for b in range(3)]


def _trained_losses(model, steps: int) -> tuple[list[float], list[Edit]]:
    torch.manual_seed(0)
    width = model.cfg.d_model
    edit_list = [
        Edit(f"blocks.{layer}.mlp.hook_pre_linear", RED(model.cfg.d_mlp))
        for layer in range(model.cfg.n_layers)
    ] + [Edit("blocks.1.hook_resid_post", LoReFT(width, 2))]
    result = train(
        model,
        PAIRS,
        edit_list=edit_list,
        learning_rate=3e-2,
        max_steps=steps,
        batch_size=6,
        progress=False,
    )
    return [row["loss"] for row in result.history], edit_list


def test_training_steps_on_the_device_match_float32_on_the_cpu(
    tiny_on_device, device_under_test, dtype
):
    model = tiny_on_device
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    losses, edit_list = _trained_losses(model, steps=6)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name  # the model never changes
        assert p.grad is None, name
    for edit in edit_list:  # float32 master copies, on the model's device
        assert {p.dtype for p in edit.function.parameters()} == {torch.float32}
        assert {p.device.type for p in edit.function.parameters()} == {device_under_test.type}
    on_cpu = tiny_model("qwen2", n_layers=2, d_model=32, seed=1).to("cpu", print_details=False)
    reference, _ = _trained_losses(on_cpu, steps=6)  # .to: the bridge's own device is the GPU
    tolerance = 1e-3 if dtype == torch.float32 else 3e-2
    assert losses == pytest.approx(reference, rel=tolerance)
    assert min(losses[-2:]) < losses[0]  # it learns


# ------------------------------------------------------------------------------------------------
# KL-budget decoding


def _red_everywhere(model, norm=4.0) -> list[Edit]:
    return [
        Edit(f"blocks.{layer}.hook_mlp_out", RED.random(model.cfg.d_model, norm, seed=layer))
        for layer in range(model.cfg.n_layers)
    ]


def _teacher_forced_kl(model, edit_list, prompt_ids, generated) -> torch.Tensor:
    """KL(edited || plain) of each generated step, from one plain and one edited forward."""
    device = next(model.parameters()).device
    tokens = torch.tensor([prompt_ids + generated], device=device)
    p = len(prompt_ids)
    with torch.no_grad():
        plain = forward(model, tokens, prompt_lengths=[p])[0].float().log_softmax(-1)
        with edits(model, edit_list):
            edited = forward(model, tokens, prompt_lengths=[p])[0].float().log_softmax(-1)
    steps = torch.arange(p - 1, p - 1 + len(generated), device=device)
    e, q = edited[steps], plain[steps]
    return (e.exp() * (e - q)).sum(-1)


def test_an_unbounded_kl_budget_spends_the_summed_per_step_kl(tiny_on_device, dtype):
    model = tiny_on_device
    edit_list = _red_everywhere(model)
    out = generate(model, PROMPTS[:2], edit_list=edit_list, max_new_tokens=8, kl_budget=1e9)
    assert out.edit_stops == [None, None]
    tolerance = dict(rel=1e-3, abs=1e-5) if dtype == torch.float32 else dict(rel=0.1, abs=2e-2)
    for row in range(2):
        expected = _teacher_forced_kl(model, edit_list, out.prompt_tokens[row], out.tokens[row])
        assert out.kl_spent[row] == pytest.approx(float(expected.sum()), **tolerance)
        assert float(expected.sum()) > 0.01  # the edit does change the distribution


@pytest.mark.parametrize("budget", [0.0, 0.05])
def test_kl_budget_decoding_is_the_same_cached_uncached_batched_alone(
    tiny_on_device, dtype, budget
):
    model = tiny_on_device
    kwargs = dict(
        edit_list=_red_everywhere(model), max_new_tokens=9, kl_budget=budget, stop_at_eos=False
    )
    cached = generate(model, PROMPTS, batch_size=4, **kwargs)
    if budget == 0.0:  # any positive KL passes a zero budget at the first step
        assert cached.edit_stops == [0] * len(PROMPTS)
    if dtype != torch.float32:
        assert all(s is None or 0 <= s < 9 for s in cached.edit_stops)
        return
    uncached = generate(model, PROMPTS, batch_size=4, use_cache=False, **kwargs)
    singles = [generate(model, [p], batch_size=1, **kwargs) for p in PROMPTS[:2]]
    assert cached.tokens == uncached.tokens
    assert cached.edit_stops == uncached.edit_stops
    assert cached.edited == uncached.edited
    for row, single in enumerate(singles):
        assert single.tokens[0] == cached.tokens[row]
        assert single.edit_stops[0] == cached.edit_stops[row]
        assert single.edited[0] == cached.edited[row]


# ------------------------------------------------------------------------------------------------
# The GPU benchmark's small mode


def test_the_gpu_benchmark_runs_at_small_shapes(device_under_test, monkeypatch, capsys):
    """benchmarks/gpu_shapes.py --small: every part runs and reports positive speeds."""
    monkeypatch.syspath_prepend(str(REPOSITORY / "benchmarks"))
    gpu_shapes = importlib.import_module("gpu_shapes")
    assert gpu_shapes.main(["--small", "--device", str(device_under_test)]) == 0
    printed = capsys.readouterr().out
    results = [
        json.loads(line.split(" ", 1)[1])
        for line in printed.splitlines()
        if line.startswith(gpu_shapes.RESULT_PREFIX + " ")
    ]
    parts = {r["part"]: r for r in results}
    assert list(parts) == list(gpu_shapes.PARTS), printed[-3000:]
    assert not any(r.get("error") for r in results), results
    rows = parts["decode"]["rows"]
    assert {(r["batch"], r["way"]) for r in rows} == {
        (batch, way) for batch in (1, 2) for way in ("hf", "hf_hook", "interp", "interp_edit")
    }
    assert all(r["tokens_per_s"] > 0 for r in rows)
    assert set(parts["bandwidth"]["batch1"]) == {"hf", "hf_hook", "interp", "interp_edit"}
    assert parts["bandwidth"]["copy_GBps"] > 0
    assert parts["sweep"]["agreement"] == 1.0  # the sweep's outcomes equal full forwards'
    assert parts["train"]["red_step_s"] > 0 and math.isfinite(parts["train"]["loss"])


@pytest.mark.parametrize(
    "closing, expected",
    [
        ("25 passed in 4.12s", "25 passed in 4.12s"),  # -q, piped: how gpu_check.sh runs it
        ("==== 3 failed, 21 passed in 80.12s (0:01:20) ====", "3 failed, 21 passed in 80.12s (0:01:20)"),
        ("0.86s setup    tests/test_device.py::test_x[float32]", "stopped before the end: 3 passed, 1 failed"),
    ],
)  # fmt: skip
def test_the_gpu_summary_reads_how_pytest_ended(tmp_path, monkeypatch, closing, expected):
    monkeypatch.syspath_prepend(str(REPOSITORY / "benchmarks"))
    gpu_summary = importlib.import_module("gpu_summary")
    log = tmp_path / "tests.log"
    log.write_text(f"..F.                                 [ 16%]\n{closing}\n")
    assert gpu_summary.pytest_closing(log) == expected
