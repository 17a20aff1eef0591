"""bfloat16 end to end: "auto" follows the hardware, --dtype reaches every command, results never
cross dtypes, every analysis runs on a bfloat16 model with finite results, edits keep the position
rule's guarantee in bfloat16, training keeps float32 master copies, and the adder still adds."""

import argparse
import math

import pytest
import torch

import interp
from interp.analyses import (
    faithfulness,
    faithfulness_difference,
    faithfulness_trace,
    math_eval,
    number_probe,
    perturbation,
    prefix_swap,
    projection,
    thought_states,
)
from interp.core.digit_answers import PushSweep, greedy_outcomes
from interp.core.float32_confirmation import DEFAULT_MARGIN, Float32Confirmation
from interp.core.runner import forward
from interp.data.arithmetic import (
    addition_problems,
    digit_token_ids,
    encode_problems,
    with_prompt_template,
)
from interp.data.math_sets import MathProblem
from interp.decoding import generate
from interp.interventions import RED, AddVector, DiReFT, Edit, LoReFT, PushAlong
from interp.interventions.arms import Arm
from interp.interventions.lora import LoRADelta
from interp.models import dtypes
from interp.models.adder import sample_problems, teacher_forced_accuracy
from interp.models.errors import ModelLoadError
from interp.models.loading import reload_as
from interp.results import reuse_or_run
from interp.testing import lowercase_triples, position_rule_examples, tiny_model
from interp.text.thoughts import Response
from interp.training.data import Pair
from interp.training.trainer import train

BF16 = torch.bfloat16
PROMPTS = ["12+34=", "a\n\nb<think>c d", "hello 5\n\n", "<think>x"]


@pytest.fixture(scope="module")
def tiny16():
    model = tiny_model("qwen2", n_layers=2, d_model=32, seed=1, dtype=BF16)
    model.tokenizer.chat_template = None
    return model


@pytest.fixture(scope="module")
def adder16():
    return interp.load_model("adder4", dtype=BF16)


def _finite(tensors: dict) -> None:
    for name, value in tensors.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            assert value.dtype != BF16, name  # results are stored in float32 or float64
            assert bool(torch.isfinite(value).all()), name


# ------------------------------------------------------------------------------------------------
# dtypes: names, "auto", --dtype, fingerprints


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (frozenset({"avx2", "avx512f", "avx512_bf16"}), BF16),
        (frozenset({"avx2", "amx_tile", "amx_bf16"}), BF16),
        (frozenset({"avx2", "avx512f"}), torch.float32),
        (frozenset(), torch.float32),
    ],
)
def test_auto_follows_the_cpu_flags(monkeypatch, flags, expected):
    monkeypatch.setattr(dtypes, "cpu_flags", lambda: flags)
    assert dtypes.native_dtype("cpu") == expected
    assert dtypes.resolve_dtype("auto", "cpu") == expected
    assert dtypes.resolve_dtype(None) == torch.float32  # the default stays float32


def test_auto_reads_proc_cpuinfo_and_falls_back_to_torch(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n\n")
    monkeypatch.setattr(dtypes, "CPUINFO", cpuinfo)
    assert dtypes.cpu_flags() >= {"avx512_bf16"} and dtypes.native_dtype("cpu") == BF16
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2\n\n")
    assert dtypes.native_dtype("cpu") == torch.float32
    monkeypatch.setattr(dtypes, "CPUINFO", tmp_path / "missing")  # not Linux: torch's probe
    assert dtypes.cpu_flags() is None
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True})
    assert dtypes.native_dtype("cpu") == BF16
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False})
    assert dtypes.native_dtype("cpu") == torch.float32


def test_auto_on_cuda_asks_torch(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dtypes.native_dtype("cuda") == BF16
    assert dtypes.native_dtype("cuda:0") == BF16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert dtypes.native_dtype("cuda") == torch.float32
    assert dtypes.native_dtype("mps") == torch.float32


def test_dtype_names_and_bad_dtypes():
    assert dtypes.resolve_dtype("bfloat16") is BF16
    assert dtypes.resolve_dtype("torch.float16") is torch.float16
    assert dtypes.resolve_dtype("bf16") is BF16
    assert dtypes.resolve_dtype(torch.float32) is torch.float32
    assert dtypes.dtype_name(BF16) == "bfloat16"
    for bad in ("float8", 3, torch.int64, torch.float64):
        with pytest.raises(ValueError, match="auto"):
            dtypes.resolve_dtype(bad)
    with pytest.raises(ModelLoadError, match="bfloat16"):
        interp.load_model("adder4", dtype="bf17")


def test_load_model_takes_names_and_auto(monkeypatch):
    assert {p.dtype for p in interp.load_model("adder4", dtype="bfloat16").parameters()} == {BF16}
    monkeypatch.setattr(dtypes, "cpu_flags", lambda: frozenset())
    model = interp.load_model("adder4", dtype="auto")
    assert {p.dtype for p in model.parameters()} == {torch.float32}


# the commands whose answers bfloat16 was measured not to change (README: the agreement table)
BFLOAT16_DEFAULTS = {
    name: "auto"
    for name in (
        "math-eval",
        "prefix-swap",
        "faithfulness",
        "train",
        "reft-compare",
        "pid-compare",
        "reft-study",
        "thoughts",
        "thought-states",
        "steering",
        "seal",
    )
}


def test_every_model_command_takes_dtype_and_prints_it(monkeypatch, capsys):
    from interp.cli import build_parser, common

    build_parser()  # imports every command module, which fills the registry
    with_model = []
    for name, (_, add_arguments, _) in common.COMMANDS.items():
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        options = {a.dest: a for a in parser._actions}
        if "model" not in options:
            continue
        with_model.append(name)
        assert options["dtype"].default == BFLOAT16_DEFAULTS.get(name, "float32"), name
        assert set(options["dtype"].choices) == {"float32", "bfloat16", "float16", "auto"}, name
    assert {"number-probe", "generate", "train", "math-eval", "pid-compare"} <= set(with_model)
    loaded = {}
    monkeypatch.setattr(
        "interp.models.load_model", lambda name, **kw: loaded.update(kw, name=name) or "model"
    )
    monkeypatch.setattr(dtypes, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    args = argparse.Namespace(model="adder4", device="cpu", dtype="auto", cache_dir=None)
    assert common.load_from_args(args) == "model"
    assert loaded["dtype"] is BF16
    assert "in bfloat16 (--dtype auto)" in capsys.readouterr().err


def test_a_float32_result_is_never_reused_for_bfloat16(tmp_path, capsys):
    model32 = tiny_model("qwen2", n_layers=2, d_model=32, seed=1)
    model16 = tiny_model("qwen2", n_layers=2, d_model=32, seed=1, dtype=BF16)
    config = with_prompt_template(
        number_probe.NumberProbeConfig(n_problems=40, digits=(1, 2), style="compact"),
        model32.tokenizer,
    )
    computed = []

    def compute(model):
        def run():
            computed.append(model)
            return number_probe.run(model, **config.__dict__)

        return run

    folder = tmp_path / "probe"
    first = reuse_or_run(
        folder, number_probe.NumberProbeResult, config, compute(model32), model=model32
    )
    assert first.meta["fingerprint"]["dtype"] == "float32"
    reuse_or_run(folder, number_probe.NumberProbeResult, config, compute(model16), model=model16)
    assert computed == [model32, model16]
    assert "dtype 'float32', not 'bfloat16'" in capsys.readouterr().out
    again = reuse_or_run(
        folder, number_probe.NumberProbeResult, config, compute(model16), model=model16
    )
    assert len(computed) == 2 and again.meta["fingerprint"]["dtype"] == "bfloat16"


def test_a_result_with_bfloat16_products_is_not_reused_in_full_float32(
    tmp_path, capsys, bfloat16_products
):
    """float32 weights whose products rounded to bfloat16 (`set_float32_matmul_precision
    ("medium")`) give other answers than float32: such a result records it and is recomputed."""
    model = tiny_model("qwen2", n_layers=2, d_model=32, seed=1)
    config = with_prompt_template(
        number_probe.NumberProbeConfig(n_problems=40, digits=(1, 2), style="compact"),
        model.tokenizer,
    )
    computed = []

    def run():
        computed.append(torch.get_float32_matmul_precision())
        return number_probe.run(model, **config.__dict__)

    folder = tmp_path / "probe"
    first = reuse_or_run(folder, number_probe.NumberProbeResult, config, run, model=model)
    assert first.meta["fingerprint"]["float32_products"] == "medium"
    with dtypes.full_float32_products():
        again = reuse_or_run(folder, number_probe.NumberProbeResult, config, run, model=model)
    assert computed == ["medium", "highest"] and "float32_products" not in again.meta["fingerprint"]
    assert "float32 matmul precision 'medium', not 'highest'" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# Edits in bfloat16: parameters cast to the activation, the rule's guarantee in any dtype


def test_edits_cast_their_parameters_to_the_activation():
    h = torch.randn(2, 3, 8).to(BF16)
    functions = [
        RED.random(8, bias_norm=1.0),
        LoReFT(8, 2),
        DiReFT(8, 2),
        AddVector(torch.randn(8), alpha=2.0),
        PushAlong(torch.randn(8), torch.tensor([1.0, -2.0]), 0.5),
    ]
    for function in functions:
        out = function(h)
        assert out.dtype == BF16, type(function).__name__
        assert bool(torch.isfinite(out).all())
        assert {p.dtype for p in function.parameters()} <= {torch.float32}
        close = function(h.float())  # the same edit computed in float32
        torch.testing.assert_close(out.float(), close, atol=0.1, rtol=0.02)
    delta = LoRADelta(8, 4, rank=2, alpha=4.0)
    torch.nn.init.normal_(delta.up)
    out = delta(h)
    assert out.dtype == BF16 and delta.up.dtype == torch.float32
    torch.testing.assert_close(out.float(), delta(h.float()), atol=0.1, rtol=0.02)


@pytest.mark.parametrize("rule_name", ["all", "prompt", "generated", "first_k", "boundary"])
def test_bfloat16_edits_give_the_same_tokens_cached_uncached_batched_alone(tiny16, rule_name):
    rule = position_rule_examples(tiny16.tokenizer)[rule_name]
    torch.manual_seed(0)
    edit_list = [
        Edit("blocks.1.hook_resid_pre", AddVector(torch.randn(32), alpha=1.5), rule),
        Edit("blocks.0.hook_mlp_out", RED.random(32, bias_norm=1.0), rule),
        Edit("blocks.1.hook_resid_post", LoReFT(32, 2), rule),
    ]
    cached = generate(tiny16, PROMPTS, edit_list=edit_list, max_new_tokens=8)
    uncached = generate(tiny16, PROMPTS, edit_list=edit_list, max_new_tokens=8, use_cache=False)
    assert cached.tokens == uncached.tokens
    assert cached.edited == uncached.edited
    for index, prompt in enumerate(PROMPTS):
        alone = generate(tiny16, [prompt], edit_list=edit_list, max_new_tokens=8)
        assert alone.tokens[0] == cached.tokens[index]
        assert alone.edited[0] == cached.edited[index]
    for logprobs in cached.logprobs:
        assert all(math.isfinite(x) for x in logprobs)


def test_kl_budget_in_bfloat16(tiny16):
    edit_list = [Edit("blocks.0.hook_mlp_out", RED.random(32, bias_norm=4.0))]
    out = generate(tiny16, PROMPTS[:2], edit_list=edit_list, max_new_tokens=6, kl_budget=0.05)
    assert all(len(t) == 6 or out.finish_reasons[i] != "length" for i, t in enumerate(out.tokens))
    assert all(math.isfinite(x) for row in out.logprobs for x in row)


# ------------------------------------------------------------------------------------------------
# Training: float32 master copies and optimizer state on a bfloat16 model


def test_one_training_step_on_bfloat16_keeps_float32_parameters_and_state(tiny16, monkeypatch):
    pairs = [Pair(f"{a}+{b}=", f"{a + b}") for a in range(6) for b in range(2)]
    edit_list = [
        Edit("blocks.1.hook_mlp_out", RED(32)),
        Edit("blocks.0.hook_resid_post", LoReFT(32, 2)),
        Edit("blocks.0.hook_resid_post", DiReFT(32, 2)),
    ]
    seen = {}
    step = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"]]
        seen["grads"] = [g.clone() for g in grads if g is not None]
        result = step(self, *args, **kwargs)
        seen["state"] = [dict(s) for s in self.state.values()]
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    result = train(tiny16, pairs, edit_list=edit_list, max_steps=1, batch_size=4, progress=False)
    assert math.isfinite(result.history[0]["loss"]) and result.history[0]["loss"] > 0
    for edit in edit_list:
        assert {p.dtype for p in edit.function.parameters()} == {torch.float32}
    assert seen["grads"] and all(g.dtype == torch.float32 for g in seen["grads"])
    assert all(bool(torch.isfinite(g).all()) for g in seen["grads"])
    assert any(bool(g.abs().sum() > 0) for g in seen["grads"])
    for state in seen["state"]:
        assert state["exp_avg"].dtype == torch.float32
        assert state["exp_avg_sq"].dtype == torch.float32
    assert {p.dtype for p in tiny16.parameters()} == {BF16}  # the model itself untouched


def test_bfloat16_parameters_become_float32_masters(tiny16):
    red = RED(32).to(BF16)
    train(
        tiny16,
        [Pair("1+1=", "2")] * 4,
        edit_list=[Edit("blocks.1.hook_mlp_out", red)],
        max_steps=1,
        progress=False,
    )
    assert red.scale.dtype == torch.float32 and red.bias.dtype == torch.float32


# ------------------------------------------------------------------------------------------------
# Every analysis on a bfloat16 model


def test_the_adder_still_adds_in_bfloat16(adder16):
    problems = sample_problems(200, seed=123)
    accuracy = teacher_forced_accuracy(
        lambda ids: forward(adder16, ids, torch.ones_like(ids)), adder16.tokenizer, problems
    )
    assert accuracy >= 0.95, accuracy


@pytest.fixture(scope="module")
def adder16_probe(adder16):
    return number_probe.run(adder16, n_problems=400, style="compact", batch_size=128)


def test_number_probe_sweep_and_projection_on_the_bfloat16_adder(adder16, adder16_probe):
    _finite(adder16_probe.tensors)
    assert max(adder16_probe.r2("last")) > 0.9
    layer = adder16_probe.best_layer("last")
    sweep = perturbation.run(
        adder16,
        adder16_probe,
        layers=(layer,),
        n_problems=100,
        style="compact",
        n_bootstrap=50,
        batch_size=128,
    )
    _finite(sweep.tensors)
    assert math.isfinite(sweep.x_star())
    push = PushAlong(adder16_probe.direction(layer), 0.7, adder16_probe.unit_length(layer))
    result = projection.run(
        adder16,
        [Edit(f"blocks.{layer}.hook_resid_post", push)],
        adder16_probe,
        layers=(layer,),
        n_prompts=8,
        x_star=0.5,
    )
    # the push is 0.7 units; bfloat16 residuals (8 significant bits) read it back to ~2%
    torch.testing.assert_close(
        result.projections(layer),
        torch.full_like(result.projections(layer), 0.7),
        atol=0.03,
        rtol=0,
    )


def test_push_sweep_equals_full_forwards_in_bfloat16(adder16):
    rows = encode_problems(addition_problems(48, 4, seed=9), adder16.tokenizer, "compact")
    digits = digit_token_ids(adder16.tokenizer)
    direction = torch.randn(adder16.cfg.d_model, generator=torch.Generator().manual_seed(3))

    def push(amounts):
        return Edit("blocks.2.hook_resid_post", PushAlong(direction, amounts, 1.0))

    strengths = [-200.0, -50.0, 0.0, 50.0, 200.0]
    cut = PushSweep(adder16, rows, digits, push, 2, batch_size=16).outcomes(strengths)
    assert bool(cut[2].correct.all())
    for strength, outcome in zip(strengths, cut):
        full = greedy_outcomes(adder16, rows, digits, [push(strength)], batch_size=16)
        assert torch.equal(outcome.correct, full.correct), strength
        assert torch.equal(outcome.moved, full.moved), strength


@pytest.fixture(scope="module")
def adder32():
    return interp.load_model("adder4")


def test_reload_as_gives_the_sources_float32_weights(adder16, adder32):
    twin = reload_as(adder16, "float32")
    assert twin.cfg.dtype == torch.float32
    for (name, mine), (_, source) in zip(twin.named_parameters(), adder32.named_parameters()):
        assert torch.equal(mine, source), name  # not the bf16 weights cast back up


def _breaking_sweep(model):
    """Rows, digits and a push along a fixed random direction strong enough to break sums."""
    rows = encode_problems(addition_problems(64, 4, seed=9), model.tokenizer, "compact")
    direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(3))

    def push(amounts):
        return Edit("blocks.2.hook_resid_post", PushAlong(direction, amounts, 1.0))

    return rows, digit_token_ids(model.tokenizer), push, [-120.0, -60.0, 0.0, 60.0, 120.0]


def test_confirmation_decides_the_close_calls_in_float32(adder16, adder32):
    rows, digits, push, strengths = _breaking_sweep(adder16)
    exact = PushSweep(adder32, rows, digits, push, 2, batch_size=16).outcomes(strengths)
    rough = PushSweep(adder16, rows, digits, push, 2, batch_size=16, margins=True)
    rough = rough.outcomes(strengths)
    assert any(not bool(o.correct.all()) for o in exact)  # the pushes do break sums
    everything = Float32Confirmation(adder32, margin=float("inf"))
    nothing = Float32Confirmation(adder32, margin=1e-6)
    for strength, want, got in zip(strengths, exact, rough):

        def again(close, strength=strength):
            return greedy_outcomes(adder32, [rows[i] for i in close], digits, [push(strength)])

        redone = everything.confirm(got, again)
        assert torch.equal(redone.correct, want.correct) and torch.equal(redone.moved, want.moved)
        kept = nothing.confirm(got, again)
        # only exact bfloat16 ties fall within 1e-6: those are float32's, the rest bfloat16's
        tied = got.margin < 1e-6
        assert torch.equal(kept.correct, torch.where(tied, want.correct, got.correct))
        assert torch.equal(kept.moved, torch.where(tied, want.moved, got.moved))
    assert everything.checked == everything.outcomes_seen == len(rows) * len(strengths)
    assert nothing.checked == sum(int((o.margin < 1e-6).sum()) for o in rough)


def test_confirmation_runs_full_float32_products(adder16, adder32, bfloat16_products):
    """Where the user lets float32 products round to bfloat16 (`set_float32_matmul_precision`),
    the close calls are still decided with full float32 products, and the setting comes back."""
    rows, digits, push, strengths = _breaking_sweep(adder16)
    rough = PushSweep(adder16, rows, digits, push, 2, batch_size=16, margins=True).outcomes([60.0])
    seen = []

    def again(close):
        seen.append(torch.get_float32_matmul_precision())
        return greedy_outcomes(adder32, [rows[i] for i in close], digits, [push(60.0)])

    Float32Confirmation(adder32, margin=float("inf")).confirm(rough[0], again)
    assert torch.get_float32_matmul_precision() == "medium"
    assert seen == ["highest"]


def test_outcomes_of_some_rows_equal_the_whole_sweeps(adder32):
    rows, digits, push, strengths = _breaking_sweep(adder32)
    sweep = PushSweep(adder32, rows, digits, push, 2, batch_size=16)
    whole = sweep.outcomes(strengths)
    assert any(not bool(o.correct.all()) for o in whole)  # the pushes do break sums
    some = [50, 3, 17, 40, 2, 33, 63]  # from several length-sorted batches, not in order
    for strength, want in zip(strengths, whole):
        got = sweep.outcomes_for(strength, some)
        assert torch.equal(got.correct, want.correct[some]), strength
        assert torch.equal(got.moved, want.moved[some]), strength
    with pytest.raises(ValueError, match="no rows"):
        sweep.outcomes_for(60.0, [])
    with pytest.raises(ValueError, match="row indices must lie in 0..63"):
        sweep.outcomes_for(60.0, [64])


def test_a_bfloat16_sweep_with_confirmation_gives_the_float32_sweep(
    adder16, adder32, adder16_probe
):
    layer = adder16_probe.best_layer("last")
    options = dict(layers=(layer,), n_problems=100, style="compact", n_bootstrap=20)
    exact = perturbation.run(adder32, adder16_probe, batch_size=128, **options)
    confirmed = perturbation.run(
        adder16,
        adder16_probe,
        batch_size=128,
        float32_model=adder32,
        float32_confirmation_margin=DEFAULT_MARGIN,
        **options,
    )
    assert confirmed.signed_strengths() == exact.signed_strengths()
    assert exact.tensors["errors"].any()  # the grid reaches strengths that break sums
    for name in ("base_correct", "errors", "moved"):
        assert torch.equal(confirmed.tensors[name], exact.tensors[name]), name
    summary = confirmed.meta["float32_confirmation"]
    assert summary["recomputed_in_float32"] < summary["outcomes"] / 2  # only the close calls
    assert "float32_confirmation" not in exact.meta
    unconfirmed = perturbation.run(adder16, adder16_probe, batch_size=128, **options)
    assert "float32_confirmation" not in unconfirmed.meta  # off unless a margin is given


PROBLEMS = [
    MathProblem(id=f"p{i}", question=f"what is {i} + {i * 3}?", answer=str(4 * i)) for i in range(4)
]


def _reds(model, bias_norm=3.0):
    return [
        Edit(f"blocks.{layer}.hook_mlp_out", RED.random(32, bias_norm=bias_norm, seed=layer))
        for layer in range(model.cfg.n_layers)
    ]


def test_math_eval_and_prefix_swap_in_bfloat16(tiny16):
    result = math_eval.run(
        Arm("red", tiny16, tuple(_reds(tiny16))),
        problems=PROBLEMS,
        prompt_style="plain",
        max_new_tokens=6,
        progress=False,
    )
    assert result.n == len(PROBLEMS) and 0 <= result.accuracy <= 1
    assert all(math.isfinite(x) for row in result.rows for x in row.get("logprobs", []))
    swap = prefix_swap.run(
        tiny16,
        donor=_reds(tiny16),
        continuer=None,
        ks=(0, 2),
        problems=PROBLEMS,
        prompt_style="plain",
        max_new_tokens=5,
        batch_size=3,
        only_donor_wrong=False,
        n_problems=len(PROBLEMS),
        progress=False,
    )
    rows = swap.tables["continuations"]
    assert rows
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float):
                assert math.isfinite(value), key


def test_faithfulness_and_its_trace_in_bfloat16(tiny16):
    triples = lowercase_triples()
    base = faithfulness.run(
        Arm.plain(tiny16, "base"), triples=triples, heads=True, Cs=(1.0,), progress=False
    )
    edited = faithfulness.run(
        Arm.edited(tiny16, _reds(tiny16, 0.5), "red"),
        triples=triples,
        heads=True,
        Cs=(1.0,),
        reference=base,
        progress=False,
    )
    for result in (base, edited):
        _finite(result.tensors)
        assert 0 <= result.likelihood_accuracy() <= 1
    _finite(faithfulness_difference.run(base, edited).tensors)
    trace = faithfulness_trace.run(
        Arm.edited(tiny16, _reds(tiny16, 0.5), "red"), base, layer=1, n_answers=2, max_new_tokens=3
    )
    for row in trace.tables["traces"]:
        assert all(0 <= p <= 1 for p in row["p_faithful"])


def test_thought_states_in_bfloat16(tiny16, tmp_path):
    tok = tiny16.tokenizer

    def enc(text):
        return tok.encode(text, add_special_tokens=False)

    responses = [
        Response("a", enc("q\n\n"), enc("x=1\n\nwait y\n\nalternatively z\n\nk ok\n\nno")),
        Response("b", enc("hi"), enc("ab\n\nc\n\nverify d\n\ne")),
        Response("c", enc("1+1"), enc("=2\n\nwait, 2\n\n3\n\nso 4")),
    ]
    # layer 0 reads one token's embedding at every boundary: identical points (no t-SNE map)
    result = thought_states.run(
        tiny16, responses, span="response", store=tmp_path / "s", progress=False
    )
    _finite({k: v for k, v in result.tensors.items() if k != "tsne"})
    for row in result.tables["per_layer"]:
        assert 0 <= row["accuracy"] <= 1
