"""Training changes behaviour on a real (if tiny) trained model: the toy adder learns a new answer
format through a RED, and the bias-norm controllers act as documented."""

import pytest

from interp.interventions import RED, Edit
from interp.models.adder import sample_problems
from interp.training.data import Pair
from interp.training.pid import BiasControl
from interp.training.trainer import held_out_loss, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def adder():
    from interp.models import load_model

    return load_model("adder4")


def suffixed(seed, n):
    """Sums written with a trailing '=' the adder was never trained to write."""
    return [Pair(f"{a}+{b}=", f"{a + b}=") for a, b in sample_problems(n, seed)]


def reds(model):
    return [Edit(f"blocks.{i}.hook_mlp_out", RED(model.cfg.d_model)) for i in range(4)]


def test_a_trained_red_lowers_the_loss_on_held_out_pairs(adder):
    edit_list = reds(adder)
    held_out = suffixed(1, 32)
    before = held_out_loss(adder, held_out, edit_list=edit_list)
    train(
        adder,
        suffixed(0, 64),
        edit_list=edit_list,
        learning_rate=2e-2,
        batch_size=8,
        epochs=3,
        progress=False,
    )
    after = held_out_loss(adder, held_out, edit_list=edit_list)
    assert after < 0.5 * before
    assert held_out_loss(adder, held_out) == pytest.approx(before)  # model itself unchanged


def test_penalty_controller_pulls_the_bias_norm_to_its_target(adder):
    target = 0.5
    common = dict(learning_rate=2e-2, batch_size=8, epochs=6, progress=False)
    free = train(adder, suffixed(0, 48), edit_list=reds(adder), **common)
    control = BiasControl(form="penalty", target=target, initial_weight=0.1)
    held = train(adder, suffixed(0, 48), edit_list=reds(adder), bias_control=control, **common)
    free_norm = free.history[-1]["bias_norm"]
    held_norm = held.history[-1]["bias_norm"]
    peak = max(r["bias_norm"] for r in held.history)
    assert free_norm > 3 * target  # without control the norm runs far past the target
    assert abs(held_norm - target) < 0.5 * abs(free_norm - target)
    assert held_norm < peak  # the controller pulled it back down after overshooting
    weights = [r["control_weight"] for r in held.history]
    assert max(weights) > weights[0]  # it raised the penalty while the norm was too large


def test_a_trained_red_is_projected_on_the_number_direction(adder, tmp_path):
    """reft-compare's projection step on a trained RED: the identity at initialisation projects to
    zero, the trained edit moves the residual along the sum direction, and shares are fractions."""
    import json

    from interp.analyses import number_probe, perturbation
    from interp.analyses.reft_compare import edit_projections

    probe = number_probe.run(adder, n_problems=800, style="compact", batch_size=128)
    layer = probe.best_layer("last")
    sweep = perturbation.run(
        adder, probe, layers=(layer,), n_problems=200, style="compact", n_bootstrap=100
    )
    probe.save(tmp_path / "probe")
    sweep.save(tmp_path / "sweep")
    edit_list = reds(adder)
    before = edit_projections(adder, {"red_all": edit_list}, tmp_path)["red_all"]
    assert before["mean_abs_projection"] == pytest.approx(0.0, abs=1e-6)
    train(adder, suffixed(0, 64), edit_list=edit_list, learning_rate=2e-2, batch_size=8, epochs=3)
    after = edit_projections(adder, {"red_all": edit_list}, tmp_path)["red_all"]
    assert after["mean_abs_projection"] > 1e-3
    shares = json.loads(after["share_beyond_x_star"])
    assert shares and all(0.0 <= v <= 1.0 for v in shares.values())
