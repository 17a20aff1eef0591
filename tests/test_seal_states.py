"""Thought states at boundaries (hook_resid_pre = HF hidden_states[L]), chunked storage, resume,
class statistics and the steering vectors made from them (sign, pooling, normalization)."""

import pytest
import torch

from interp.analyses import thought_states, thought_stats
from interp.interventions.steering_vector import SteeringVector
from interp.probes import state_chunks
from interp.storage import read_record
from interp.text.thoughts import CLASSES, Response, segment_response


def _responses(tok):
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    return [
        Response(
            "a",
            enc("q\n\n<think>"),
            enc("x=1\n\nwait y\n\nalternatively z\n\nk</think>ok\n\nno"),
            correct=True,
            level=2,
            source="math500",
        ),
        Response("b", enc("<think>"), enc("ab\n\nc\n\nverify d\n\ne"), correct=False, level=3),
        Response("c", enc("hi"), enc("no think span here\n\nwait"), correct=False),
        Response(
            "d", enc("<think>1+1"), enc("=2\n\nwait, 2\n\n3"), correct=True, source="gsm8k/test"
        ),
    ]


def test_boundary_states_equal_hf_hidden_states_batched_and_alone(tiny_llama):
    tok = tiny_llama.tokenizer
    responses = _responses(tok)
    positions = [
        [t.boundary for t in segment_response(r, tok, span="think") if t.boundary is not None]
        for r in responses
    ]
    layers = [0, 1]  # stops after block 1 of 3
    batched = thought_states.boundary_states(
        tiny_llama, [r.all_tokens for r in responses], positions, layers, batch_size=3
    )
    assert batched.shape == (2, sum(map(len, positions)), tiny_llama.cfg.d_model)
    row = 0
    for response, wanted in zip(responses, positions):
        ids = torch.tensor([response.all_tokens])
        hidden = tiny_llama.original_model(ids, output_hidden_states=True).hidden_states
        for p in wanted:
            for i, layer in enumerate(layers):
                torch.testing.assert_close(
                    batched[i, row], hidden[layer][0, p], atol=1e-5, rtol=1e-4
                )
            row += 1


def test_run_stores_chunks_resumes_and_sums_by_class(tiny, tmp_path):
    responses = _responses(tiny.tokenizer)
    store = tmp_path / "states"
    options = dict(span="think", store=store, chunk_size=2, progress=False, tsne_layers=())
    result = thought_states.run(tiny, responses, **options)
    assert len(list(store.glob("chunk_*.safetensors"))) == 2
    rows = state_chunks.load_rows(store)
    # boundaries in the think span only: a has 3 (not the one after </think>), b 3, c none, d 2
    assert [r["id"] for r in rows] == ["a"] * 3 + ["b"] * 3 + ["d"] * 2
    assert [r["class"] for r in rows] == [
        "reflection",
        "transition",
        "execution",
        "execution",
        "reflection",
        "execution",
        "reflection",
        "execution",
    ]
    assert result.counts == {"execution": 4, "reflection": 3, "transition": 1}
    layer_1 = state_chunks.load_states(store, 1)
    labels = torch.tensor([CLASSES.index(r["class"]) for r in rows])
    for c in range(3):
        torch.testing.assert_close(
            result.tensors["class_sums"][1, c].float(), layer_1[labels == c].sum(0)
        )
    # a rerun with the same inputs reuses every chunk (files untouched)
    stamps = {p: p.stat().st_mtime_ns for p in store.glob("chunk_*")}
    again = thought_states.run(tiny, responses, **options)
    assert {p: p.stat().st_mtime_ns for p in store.glob("chunk_*")} == stamps
    torch.testing.assert_close(again.tensors["class_sums"], result.tensors["class_sums"])
    # a changed response invalidates its chunk only
    changed = responses[:3] + [Response("d", responses[3].prompt_tokens, responses[3].tokens[:-2])]
    thought_states.run(tiny, changed, **options)
    after = {p: p.stat().st_mtime_ns for p in store.glob("chunk_*")}
    assert after[store / "chunk_00000.safetensors"] == stamps[store / "chunk_00000.safetensors"]
    assert after[store / "chunk_00001.safetensors"] != stamps[store / "chunk_00001.safetensors"]


def test_result_saves_figure_and_loads(tiny, tmp_path):
    result = thought_states.run(
        tiny, _responses(tiny.tokenizer), span="response", store=tmp_path / "s", progress=False
    )
    assert result.config.span == "response"
    result.save(tmp_path / "r")
    loaded = thought_states.ThoughtStatesResult.load(tmp_path / "r")
    assert loaded.config == result.config  # the nested keywords come back as ThoughtKeywords
    assert loaded.counts == result.counts
    assert loaded.tables["per_layer"][0]["n_points"] == sum(result.counts.values())
    assert len(result.figure().data) > 0


def test_bad_input_is_a_clear_error(tiny, tmp_path):
    with pytest.raises(ValueError, match="no responses"):
        thought_states.run(tiny, [], store=tmp_path)
    with pytest.raises(ValueError, match="out of range"):
        thought_states.run(tiny, _responses(tiny.tokenizer), layers=[5], store=tmp_path)
    plain = [Response("x", [5, 6], [7, 8])]
    with pytest.raises(ValueError, match="span='response'"):
        thought_states.run(tiny, plain, store=tmp_path / "e", progress=False)


def test_steering_vector_sign_pooling_normalization(tmp_path):
    d = 4
    sums = torch.zeros(1, 3, d, dtype=torch.float64)
    # execution mean = e0, reflection mean = e1 (3 samples), transition mean = e2 (1 sample)
    sums[0, 0, 0] = 2.0  # 2 execution samples at e0
    sums[0, 1, 1] = 3.0
    sums[0, 2, 2] = 1.0
    counts = {"execution": 2, "reflection": 3, "transition": 1}
    pooled = SteeringVector.from_class_stats(sums, counts, (7,))
    torch.testing.assert_close(pooled.vector(7), torch.tensor([1.0, -0.75, -0.25, 0.0]))
    assert pooled.sign == "mean(execution) - mean(reflection+transition)"
    classes = SteeringVector.from_class_stats(sums, counts, (7,), pooling="classes")
    torch.testing.assert_close(classes.vector(7), torch.tensor([1.0, -0.5, -0.5, 0.0]))
    unit = SteeringVector.from_class_stats(sums, counts, (7,), normalization="unit")
    assert float(unit.vector(7).norm()) == pytest.approx(1.0)
    only_t = SteeringVector.from_class_stats(sums, counts, (7,), away=("transition",))
    torch.testing.assert_close(only_t.vector(7), torch.tensor([1.0, 0.0, -1.0, 0.0]))
    pooled.save(tmp_path / "v")
    record = read_record(tmp_path / "v", "steering_vector")
    assert record["config"]["pooling"] == "samples" and record["config"]["normalization"] == "none"
    assert record["meta"]["description"]["positive_alpha_steers_toward"] == ["execution"]
    loaded = SteeringVector.load(tmp_path / "v")
    torch.testing.assert_close(loaded.vectors, pooled.vectors)
    assert loaded.counts == counts
    # pooled samples need only one of reflection / transition; a mean of class means needs both
    no_transition = {**counts, "transition": 0}
    sums_r = sums.clone()
    sums_r[0, 2] = 0.0
    only_r = SteeringVector.from_class_stats(sums_r, no_transition, (7,))
    torch.testing.assert_close(only_r.vector(7), torch.tensor([1.0, -1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="no transition thoughts"):
        SteeringVector.from_class_stats(sums, no_transition, (7,), pooling="classes")
    with pytest.raises(ValueError, match="no reflection or transition thoughts"):
        SteeringVector.from_class_stats(sums, {**no_transition, "reflection": 0}, (7,))
    with pytest.raises(ValueError, match="no vector at layer"):
        pooled.vector(3)


def test_thought_stats_counts_by_correctness_and_level(tiny):
    result = thought_stats.run(tiny, _responses(tiny.tokenizer), span="think")
    totals = result.totals()
    # thoughts include each span's opening piece: a 4, b 4, d 3; c has no think span
    assert totals == {"execution": 7, "reflection": 3, "transition": 1}
    by_level = {(r["group"], r["class"]): r for r in result.tables["by_level"]}
    assert by_level[("level 3", "reflection")]["thoughts"] == 1
    assert by_level[("gsm8k", "reflection")]["thoughts"] == 1
    by_correct = {(r["group"], r["class"]): r for r in result.tables["by_correct"]}
    assert by_correct[("correct", "transition")]["thoughts"] == 1
    assert by_correct[("wrong", "reflection")]["responses"] == 2
    assert result.meta["responses_without_thoughts"] == 1
    assert len(result.figure().data) > 0
