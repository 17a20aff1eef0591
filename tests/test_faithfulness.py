"""The faithfulness analysis: probes per layer and head, arms and their difference, token traces, CLI."""

import pytest
import torch

from interp.analyses import faithfulness, faithfulness_difference, faithfulness_trace
from interp.data.faithfulness import gsm8k_triples, load_triples, save_triples
from interp.interventions import RED, Edit
from interp.interventions.arms import Arm
from interp.probes.readout import read_last_token
from interp.storage import is_saved, read_record
from interp.testing import lowercase_triples


@pytest.fixture(scope="module")
def tiny_runs(tiny):
    triples = lowercase_triples()
    red = [
        Edit(f"blocks.{i}.hook_mlp_out", RED.random(tiny.cfg.d_model, 0.5, seed=i))
        for i in range(2)
    ]
    base = faithfulness.run(
        Arm.plain(tiny, "base"), triples=triples, heads=True, Cs=(1.0,), progress=False
    )
    edited = faithfulness.run(
        Arm.edited(tiny, red, "red"),
        triples=triples,
        heads=True,
        Cs=(1.0,),
        reference=base,
        progress=False,
    )
    return triples, red, base, edited


def test_run_shapes_split_and_round_trip(tiny, tiny_runs, tmp_path):
    triples, _, base, _ = tiny_runs
    n_layers, n_heads = tiny.cfg.n_layers, tiny.cfg.n_heads
    assert base.layers == list(range(n_layers))
    for key in ("accuracy", "auc", "pair_accuracy"):
        assert base.tensors[key].shape == (n_layers,)
        assert ((base.tensors[key] >= 0) & (base.tensors[key] <= 1)).all()
    assert base.tensors["head_accuracy"].shape == (n_layers, n_heads)
    assert base.tensors["weights"].shape == (n_layers, tiny.cfg.d_model)
    labels, test = base.tensors["labels"], base.tensors["is_test"]
    assert labels.tolist() == [1, 0] * len(triples)
    # Held out by question: a question's texts are all on one side.
    questions = [triples[int(i)].question for i in base.tensors["triple_index"]]
    assert {q for q, t in zip(questions, test) if t}.isdisjoint(
        {q for q, t in zip(questions, test) if not t}
    )
    assert base.meta["n_triples"] == len(triples) and base.config.n_triples == len(triples)
    assert 0 <= base.likelihood_accuracy() <= 1
    base.save(tmp_path / "base")
    loaded = faithfulness.FaithfulnessResult.load(tmp_path / "base")
    assert loaded.config == base.config
    torch.testing.assert_close(loaded.tensors["auc"], base.tensors["auc"])


def test_likelihood_score_counts_the_more_likely_restatement(tiny_runs):
    _, _, base, _ = tiny_runs
    logprob = base.tensors["answer_logprob"]
    wins = (logprob[0::2] > logprob[1::2]).float().mean()  # texts alternate correct, incorrect
    assert base.likelihood_accuracy() == pytest.approx(float(wins))
    margin = (logprob[0::2] - logprob[1::2]).mean()
    assert base.likelihood_margin() == pytest.approx(float(margin), abs=1e-5)


def test_compare_is_edited_minus_base_and_red_means_rises(tiny, tiny_runs):
    triples, red, base, edited = tiny_runs
    assert edited.config.arm == "red" and base.config.arm == "base"
    assert not torch.equal(base.tensors["answer_logprob"], edited.tensors["answer_logprob"])
    assert "transfer_accuracy" in edited.tensors
    comparison = faithfulness_difference.run(base, edited)
    torch.testing.assert_close(
        comparison.tensors["delta_auc"], edited.tensors["auc"] - base.tensors["auc"]
    )
    torch.testing.assert_close(
        comparison.tensors["delta_head_accuracy"],
        edited.tensors["head_accuracy"] - base.tensors["head_accuracy"],
    )
    figure = comparison.figure()
    heatmaps = [t for t in figure.data if t.type == "heatmap"]
    assert len(heatmaps) == 2
    for heatmap in heatmaps:
        assert heatmap.colorscale[-1][1] == "rgb(103,0,31)"  # positive (rises) is dark red
        assert heatmap.colorscale[0][1] == "rgb(5,48,97)"  # negative (falls) is dark blue
        assert heatmap.zmin == -heatmap.zmax
    other = faithfulness.run(tiny, triples=triples[:-2], Cs=(1.0,), progress=False)
    with pytest.raises(ValueError, match="different triples"):
        faithfulness_difference.run(base, other)


def test_trace_scores_match_the_probe_on_the_readout(tiny, tiny_runs):
    triples, red, base, _ = tiny_runs
    trace = faithfulness_trace.run(
        Arm.edited(tiny, red, "red"), base, layer=1, n_answers=2, max_new_tokens=3
    )
    kinds = [row["kind"] for row in trace.tables["traces"]]
    assert kinds.count("generated") == 2 and kinds.count("correct") == 2
    for row in trace.tables["traces"]:
        assert len(row["tokens"]) == len(row["p_faithful"])
        assert all(0 <= p <= 1 for p in row["p_faithful"])
    # The trace's last score of a restatement is the probe on the last-token readout of that text.
    row = next(r for r in trace.tables["traces"] if r["kind"] == "incorrect")
    triple = next(t for t in triples if t.id == row["id"])
    (text,) = [t for t in faithfulness.encode_triples(tiny.tokenizer, [triple]) if t.label == 0]
    readout = read_last_token(
        tiny, [text.tokens], [text.prompt_length], ["blocks.1.hook_resid_post"], red
    )
    weight, intercept = base.probe(1)
    expected = torch.sigmoid(readout.states["blocks.1.hook_resid_post"][0] @ weight + intercept)
    assert row["p_faithful"][-1] == pytest.approx(float(expected), abs=1e-4)
    assert trace.config.arm == "red"
    trace.figure()


def test_run_input_errors(tiny, tiny_runs):
    triples, red, base, _ = tiny_runs
    with pytest.raises(ValueError, match="no triples"):
        faithfulness.run(tiny, triples=[], progress=False)
    with pytest.raises(ValueError, match="either in the Arm"):
        faithfulness.run(Arm.edited(tiny, red), red, triples=triples, progress=False)
    with pytest.raises(ValueError, match="no probe at layer 7"):
        base.probe(7)


def test_triples_file_and_prompt_cap(tiny, tmp_path):
    triples = lowercase_triples(24)
    path = save_triples(tmp_path / "triples.jsonl", triples)
    lengths = [t.prompt_length for t in faithfulness.encode_triples(tiny.tokenizer, triples)]
    cap = next(c for c in sorted(set(lengths)) if sum(n <= c for n in lengths[::2]) >= 8)
    n_short = sum(n <= cap for n in lengths[::2])
    assert 8 <= n_short < len(triples)
    result = faithfulness.run(
        tiny,
        triples_path=str(path),
        n_triples=8,
        max_prompt_tokens=cap,
        layers=(1,),
        Cs=(1.0,),
        progress=False,
    )
    kept = [t["id"] for t in result.tables["triples"]]
    expected = [t.id for t, n in zip(triples, lengths[::2]) if n <= cap][:8]
    assert kept == expected and len(kept) == 8
    with pytest.raises(ValueError, match="only .* triples are available"):
        faithfulness.run(
            tiny, triples_path=str(path), n_triples=24, max_prompt_tokens=cap, progress=False
        )


@pytest.mark.slow
def test_smollm2_keeps_the_question_numbers(smollm2):
    """Behaviour: smollm2 prefers the restatement with the question's number, and a probe in its
    middle layers separates the two on held-out questions."""
    result = faithfulness.run(
        smollm2,
        n_triples=40,
        facts_per_question=2,
        max_prompt_tokens=56,
        layers=(4, 12),
        progress=False,
    )
    assert result.likelihood_accuracy() >= 0.8
    auc = dict(zip(result.layers, result.tensors["auc"].tolist()))
    assert auc[12] >= 0.7


@pytest.mark.slow
def test_cli_writes_triples_and_runs_both_arms(tmp_path):
    from interp.cli import main

    path = tmp_path / "triples.jsonl"
    assert main(["faithfulness-triples", "--out", str(path), "--n", "1000", "--seed", "0"]) == 0
    assert load_triples(path) == gsm8k_triples(1000, seed=0)
    out = tmp_path / "run"
    args = "faithfulness --model smollm2-135m-instruct --n-triples 8 --facts-per-question 2"
    args += " --max-prompt-tokens 48 --layers 12 --trace-answers 1 --trace-tokens 3"
    args = [*args.split(), "--out", str(out)]
    assert main(args) == 0
    for name in ("base", "edited", "comparison", "trace_base", "trace_edited"):
        assert is_saved(out / name)
    config = read_record(out / "edited", "FaithfulnessResult")["config"]
    assert "random RED" in config["edit_description"] and config["n_triples"] == 8
    assert (
        main(["faithfulness", "--model", "smollm2-135m-instruct", "--edit", str(tmp_path / "none")])
        == 2
    )
