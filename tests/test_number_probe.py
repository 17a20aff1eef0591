"""Number probes, pushes and projections on the trained adder (real, asserted effects) and on tiny
random models (structure and errors)."""

import re

import numpy as np
import pytest
import torch

from interp.analyses import number_probe, perturbation, projection
from interp.core.digit_answers import greedy_outcomes
from interp.data.arithmetic import (
    ArithmeticDataError,
    addition_problems,
    digit_token_ids,
    encode_problems,
    with_prompt_template,
)
from interp.decoding import generate
from interp.interventions import Edit, EditError, PushAlong
from interp.models.adder import load_adder
from interp.results import reuse_or_run
from interp.stats import crossing, threshold_with_ci, wilson_interval


@pytest.fixture(scope="module")
def adder():
    return load_adder()


@pytest.fixture(scope="module")
def adder_probe(adder):
    return number_probe.run(adder, n_problems=800, style="compact", batch_size=128)


@pytest.fixture(scope="module")
def adder_sweep(adder, adder_probe):
    layer = adder_probe.best_layer("last")
    return perturbation.run(
        adder,
        adder_probe,
        layers=(layer,),
        n_problems=300,
        style="compact",
        n_bootstrap=200,
        batch_size=128,
    )


def test_sum_probe_is_strong_in_middle_layers(adder, adder_probe):
    r2 = adder_probe.r2("last")
    n = adder.cfg.n_layers
    middle = r2[1 : n - 1] if n > 2 else r2
    assert max(middle) > 0.9, r2
    assert max(adder_probe.r2("a_last")) > 0.75  # operands are read less cleanly than the sum


def test_probe_unit_moves_the_readout_by_one(adder_probe):
    layer = adder_probe.best_layer()
    w = adder_probe.tensors["weights"][2, adder_probe.layers.index(layer)]
    step = adder_probe.unit_length(layer) * adder_probe.direction(layer)
    assert float(w @ step) == pytest.approx(1.0, rel=1e-4)


def test_error_rate_rises_with_push_strength_and_x_star_is_finite(adder_sweep):
    rows = adder_sweep.tables["sweep"]
    by_magnitude = {}
    for row in rows:
        by_magnitude.setdefault(abs(row["strength"]), []).append(row["error_rate"])
    magnitudes = sorted(by_magnitude)
    pooled = [np.mean(by_magnitude[m]) for m in magnitudes]
    assert pooled[-1] > 0.5 > pooled[0], pooled
    assert all(b >= a - 0.05 for a, b in zip(pooled, pooled[1:])), pooled
    x_star = adder_sweep.x_star()
    low, high = adder_sweep.x_star_interval()
    assert np.isfinite(x_star) and 0 < x_star < magnitudes[-1]
    assert low <= x_star <= high
    assert adder_sweep.meta["base_accuracy"] > 0.95


def test_errors_at_onset_move_the_answer_in_the_push_direction(adder_sweep):
    """Where errors start (pooled rate >= 10%), most wrong answers move the way the push points."""
    rows = {r["strength"]: r for r in adder_sweep.tables["sweep"]}
    onset = min(
        m for m in rows if m > 0 and (rows[m]["error_rate"] + rows[-m]["error_rate"]) / 2 >= 0.1
    )
    for strength in (onset, -onset):
        assert rows[strength]["moved_with_push"] > 0.5 * rows[strength]["error_rate"], rows[
            strength
        ]


def test_teacher_forcing_agrees_with_real_greedy_decoding_under_a_push(
    adder, adder_probe, adder_sweep
):
    layer = adder_probe.best_layer()
    problems = encode_problems(addition_problems(40, 4, seed=5), adder.tokenizer, "compact")
    digits = digit_token_ids(adder.tokenizer)
    x_star = adder_sweep.x_star()
    n_wrong = 0
    for amount in (0.0, 1.5 * x_star, -2.0 * x_star, 4.0 * x_star):
        push = PushAlong(adder_probe.direction(layer), amount, adder_probe.unit_length(layer))
        edit = [Edit(f"blocks.{layer}.hook_resid_post", push)]
        outcome = greedy_outcomes(adder, problems, digits, edit)
        run = generate(
            adder,
            [p.prompt for p in problems],
            edit_list=edit,
            max_new_tokens=len(str(20000)) + 1,
            batch_size=40,
        )
        for p, ok, moved, text in zip(problems, outcome.correct, outcome.moved, run.texts):
            number = re.match(r"\d*", text).group(0)
            assert bool(ok) == (number == str(p.problem.total)), (text, p.problem)
            if not ok and len(number) == len(str(p.problem.total)):
                assert int(moved) == (1 if int(number) > p.problem.total else -1), (text, p.problem)
        n_wrong += int((~outcome.correct).sum())
    assert n_wrong > 40  # the pushes do break answers, so the comparison is not trivial


def test_projection_of_a_known_push_is_its_strength(adder, adder_probe):
    layer = adder_probe.best_layer()
    push = PushAlong(adder_probe.direction(layer), 0.7, adder_probe.unit_length(layer))
    result = projection.run(
        adder,
        [Edit(f"blocks.{layer}.hook_resid_post", push)],
        adder_probe,
        layers=(layer,),
        n_prompts=8,
        x_star=0.5,
    )
    assert torch.allclose(
        result.projections(layer), torch.full_like(result.projections(layer), 0.7), atol=1e-3
    )
    assert result.share_beyond_threshold()[layer] == 1.0


def test_edit_breaks_reuses_the_sweeps_unedited_outcomes(adder, adder_probe, adder_sweep):
    layer = adder_probe.best_layer()
    push = PushAlong(
        adder_probe.direction(layer), 2 * adder_sweep.x_star(), adder_probe.unit_length(layer)
    )
    edit_list = [Edit(f"blocks.{layer}.hook_resid_post", push)]
    problems = dict(digits=4, n_problems=300, seed=adder_sweep.config.seed, style="compact")
    computed = perturbation.edit_breaks(adder, edit_list, batch_size=128, **problems)
    reused = perturbation.edit_breaks(
        adder,
        edit_list,
        batch_size=128,
        unedited_correct=adder_sweep.tensors["base_correct"],
        **problems,
    )
    assert reused == computed
    assert computed["n_base_correct"] == adder_sweep.meta["n_base_correct"]
    assert computed["n_broken"] > 0  # twice x*: the push breaks answers
    with pytest.raises(ValueError, match="same digits"):
        perturbation.edit_breaks(
            adder, edit_list, unedited_correct=adder_sweep.tensors["base_correct"][:10], **problems
        )


def test_projection_over_a_shared_prefix_equals_each_sequence_alone(tiny):
    """Prompts that share a prefix (run once) give each token's change along the direction that
    full forwards of each prompt alone give, in the order of the prompts and their tokens."""
    from interp.core import runner
    from interp.interventions import RED, edits

    probe = number_probe.run(tiny, n_problems=40, style="compact", digits=(1, 2))
    prompts = ["12+3=15 and more", "12+3=1", "12+345=357", "12+3"]
    red = [
        Edit(f"blocks.{layer}.hook_mlp_out", RED.random(32, 0.5, seed=layer)) for layer in (0, 1)
    ]
    result = projection.run(tiny, red, probe, prompts=prompts, batch_size=2)
    expected = []
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in probe.layers]
    for prompt in prompts:
        tokens = torch.tensor([tiny.tokenizer.encode(prompt, add_special_tokens=False)])
        _, plain = runner.activations(tiny, tokens, names_filter=lambda n: n in hooks)
        with edits(tiny, red):
            _, edited = runner.activations(tiny, tokens, names_filter=lambda n: n in hooks)
        expected.append(
            torch.stack(
                [
                    (edited[h][0] - plain[h][0]) @ probe.direction(layer) / probe.unit_length(layer)
                    for layer, h in zip(probe.layers, hooks)
                ]
            )
        )
    expected = torch.cat(expected, dim=1)
    assert result.meta["n_tokens"] == expected.shape[1] == sum(len(p) for p in prompts)
    for i, layer in enumerate(probe.layers):
        torch.testing.assert_close(result.projections(layer), expected[i], atol=1e-5, rtol=1e-4)
    assert result.projections(probe.layers[-1]).abs().max() > 1e-3  # the edit moves something


def test_results_round_trip(adder_probe, adder_sweep, tmp_path):
    loaded = number_probe.NumberProbeResult.load(adder_probe.save(tmp_path / "probe"))
    assert loaded.config == adder_probe.config
    assert torch.equal(loaded.tensors["directions"], adder_probe.tensors["directions"])
    sweep = perturbation.PerturbationResult.load(adder_sweep.save(tmp_path / "sweep"))
    assert sweep.x_star() == adder_sweep.x_star()
    assert (tmp_path / "sweep" / "figure.html").exists()
    with pytest.raises(ValueError, match="NumberProbeResult"):
        perturbation.PerturbationResult.load(tmp_path / "probe")


def test_configs_record_the_prompt_template_and_another_template_is_recomputed(
    adder, adder_probe, tmp_path
):
    assert adder_probe.config.style == "compact"
    assert adder_probe.config.prompt_template == "{a}+{b}="
    saved = adder_probe.save(tmp_path / "probe", model=adder)
    other = with_prompt_template(
        number_probe.NumberProbeConfig(
            **{**adder_probe.config.__dict__, "style": "numprobe", "prompt_template": None}
        ),
        adder.tokenizer,
    )
    assert other.prompt_template == "Question: What is the sum of {a} and {b}?\nAnswer: "
    computed = []

    def compute():
        computed.append(True)
        return adder_probe

    same = with_prompt_template(
        number_probe.NumberProbeConfig(**{**adder_probe.config.__dict__, "prompt_template": None}),
        adder.tokenizer,
    )
    assert same == adder_probe.config  # resolving again gives the saved config: reused
    reuse_or_run(saved, number_probe.NumberProbeResult, same, compute, model=adder)
    assert computed == []
    reuse_or_run(saved, number_probe.NumberProbeResult, other, compute, model=adder)
    assert computed == [True]  # another template: never the old result


def test_bad_inputs_get_clear_errors(tiny, adder_probe):
    with pytest.raises(EditError, match="width"):
        perturbation.run(tiny, adder_probe, style="compact")
    probe = number_probe.run(tiny, n_problems=40, style="compact", digits=(1, 2))
    with pytest.raises(EditError, match="out of range"):
        perturbation.run(tiny, probe, layers=(9,), style="compact")
    with pytest.raises(ArithmeticDataError, match="none of"):
        perturbation.run(tiny, probe, n_problems=20, style="compact")
    with pytest.raises(ArithmeticDataError, match="at least one"):
        addition_problems(0)


def test_statistics_helpers():
    assert crossing(np.array([1.0, 2.0]), np.array([0.0, 0.02]), 0.01) == pytest.approx(1.5)
    assert crossing(np.array([1.0, 2.0]), np.array([0.0, 0.0]), 0.01) == float("inf")
    low, high = wilson_interval(0, 100)
    assert low == 0.0 and 0.0 < high < 0.05
    errors = np.zeros((3, 200))
    errors[1, :2] = 1
    errors[2, :50] = 1
    estimate, low, high = threshold_with_ci(np.array([1.0, 2.0, 3.0]), errors, 0.005, 100)
    assert 1.0 < estimate <= 2.0 and low <= estimate <= high


@pytest.mark.parametrize("noise", [0.05, 3.0, 30.0])  # each picks another penalty
def test_ridge_loo_is_scikit_learns_ridgecv(noise):
    from sklearn.linear_model import RidgeCV

    from interp.probes.linear import ALPHAS, ridge_loo

    rng = np.random.default_rng(0)
    factors = rng.normal(size=(300, 12))
    x = factors @ rng.normal(size=(12, 40)) + 0.5 * rng.normal(size=(300, 40)) + 3.0
    y = factors[:, 0] + noise * rng.normal(size=300) + 7.0
    reference = RidgeCV(alphas=ALPHAS).fit(x, y)
    coef, intercept, alpha = ridge_loo(x, y, ALPHAS)
    assert alpha == reference.alpha_
    np.testing.assert_allclose(coef, reference.coef_, rtol=1e-8, atol=1e-12)
    assert intercept == pytest.approx(reference.intercept_, rel=1e-9)
