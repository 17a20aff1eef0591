"""SEAL on the model organism, whose thoughts are known by construction: real effects, asserted.

The organism (`load_model("reasoner")`: smollm2-135m-instruct with the shipped LoRA) answers
held-out word problems of its trace generator, sampled at temperature 1 as it was trained. On its
answers the boundary states at the main layer tell execution from the rest better than chance
(balanced accuracy; at layer 0 the state is the boundary token's own embedding and tells nothing),
and the steering vector made from them, added at the main layer, cuts the reflections per answer
on other problems while the format stays. The numbers come from real decoding and real forwards;
the margins are set from `python -m interp seal --model reasoner --datasets organism ...` (README:
balanced accuracy 0.67 at layer 21 on 523 boundaries; reflections 0.78 -> 0.20 per answer).
"""

from __future__ import annotations

import pytest

from interp.analyses import math_eval, steering, thought_states
from interp.analyses.steering import response_from_row
from interp.data.reasoning_traces import held_out_problems
from interp.models import load_model
from interp.models.reasoner import reasoner_folder

TRAINED = (reasoner_folder() / "interp.json").is_file()
MAIN_LAYER = 21  # about 70% of smollm2's 30 layers, where SEAL steers
N_EXTRACT, N_EVAL, MAX_NEW_TOKENS = 96, 48, 200

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not TRAINED, reason="no reasoner adapter (scripts/train_reasoner.py)"),
]


@pytest.fixture(scope="module")
def organism():
    return load_model("reasoner")


@pytest.fixture(scope="module")
def problems():
    pool = [p.as_math_problem() for p in held_out_problems(N_EXTRACT + N_EVAL)]
    return pool[:N_EXTRACT], pool[N_EXTRACT:]


@pytest.fixture(scope="module")
def states(organism, problems, tmp_path_factory):
    split_a, _ = problems
    evaluation = math_eval.run(
        organism,
        problems=split_a,
        max_new_tokens=MAX_NEW_TOKENS,
        batch_size=48,
        do_sample=True,
        seed=0,
        progress=False,
    )
    by_id = {p.id: p for p in split_a}
    responses = [response_from_row(row, by_id[row["id"]]) for row in evaluation.rows]
    return thought_states.run(
        organism,
        responses,
        span="think",
        layers=(0, MAIN_LAYER),
        tsne_layers=(),
        store=tmp_path_factory.mktemp("chunks"),
        progress=False,
    )


def test_boundary_states_tell_execution_from_the_rest_better_than_chance(states) -> None:
    assert states.counts["reflection"] + states.counts["transition"] >= 20, states.counts
    first, main = states.tables["per_layer"]
    assert first["binary_balanced_accuracy"] <= 0.55, first  # the same token's embedding
    assert main["binary_balanced_accuracy"] >= 0.6, main


def test_steering_at_the_main_layer_lowers_reflections_per_answer(organism, problems, states):
    _, split_b = problems
    result = steering.run(
        organism,
        states,
        split_b,
        layers=(MAIN_LAYER,),
        alphas=(1.0,),
        main_layer=MAIN_LAYER,
        span="think",
        max_new_tokens=MAX_NEW_TOKENS,
        batch_size=48,
        do_sample=True,
        seed=0,
        progress=False,
    )
    arms = {row["kind"]: row for row in result.tables["arms"]}
    base, steered = arms["base"], arms["steered"]
    assert base["reflection_per_response"] >= 0.4, base  # the organism does reflect
    assert steered["reflection_per_response"] <= 0.6 * base["reflection_per_response"], (
        base,
        steered,
    )
    assert steered["well_formed"] >= 0.9  # steering removes reflections, not the format
