"""Training edits on tiny models: gradients reach only the edits, the model never changes, the
loss mask covers what it should, positions in training match decoding, checkpoints refuse
what does not fit."""

import json

import pytest
import torch

from interp.core.positions import PromptAndFirstGenerated
from interp.interventions import RED, DiReFT, Edit, EditError, LoReFT, edits
from interp.models import model_name
from interp.testing import tiny_model
from interp.training import checkpoints
from interp.training.data import EncodedPair, Pair, encode_pairs, load_pairs_jsonl, worked_answer
from interp.training.masks import IGNORE, full_answer_examples, loss_token_counts, make_batch
from interp.training.pid import BiasControl, PIDController
from interp.training.trainer import (
    TrainConfig,
    TrainResult,
    answer_loss,
    learning_rate_at,
    train,
)

PAIRS = [Pair(f"{a}+{b}=", f"{a + b}") for a in range(12) for b in range(3)]


def red_edits(model, hook="mlp.hook_pre_linear"):
    width = model.cfg.d_mlp if "pre" in hook else model.cfg.d_model
    return [Edit(f"blocks.{layer}.{hook}", RED(width)) for layer in range(model.cfg.n_layers)]


def test_gradients_reach_only_the_edits_and_the_model_stays_unchanged(tiny):
    before = {name: p.detach().clone() for name, p in tiny.named_parameters()}
    flags = {name: p.requires_grad for name, p in tiny.named_parameters()}
    edit_list = red_edits(tiny) + [
        Edit("blocks.1.hook_resid_post", LoReFT(tiny.cfg.d_model, 2)),
        Edit("blocks.0.hook_resid_post", DiReFT(tiny.cfg.d_model, 2)),
    ]
    result = train(tiny, PAIRS, edit_list=edit_list, learning_rate=1e-2, progress=False)
    assert len(result.history) == 9  # 36 pairs / batch 4, one epoch
    for name, p in tiny.named_parameters():
        assert torch.equal(p, before[name]), name
        assert p.grad is None, name
        assert p.requires_grad == flags[name]  # flags restored after training
    for edit in edit_list:  # every kind of edit moved
        trained = edit.function
        fresh = type(trained).from_config(trained.config())
        assert any(
            not torch.equal(a, b)
            for a, b in zip(trained.state_dict().values(), fresh.state_dict().values())
        ), edit.hook
    assert not tiny.hook_dict["blocks.0.mlp.hook_pre_linear"].fwd_hooks  # hooks detached


def test_loreft_rotation_stays_orthonormal_after_training(tiny):
    loreft = LoReFT(tiny.cfg.d_model, 3)
    train(
        tiny,
        PAIRS,
        edit_list=[Edit("blocks.1.hook_resid_post", loreft)],
        learning_rate=5e-2,
        progress=False,
    )
    R = loreft.rotation.weight.detach()
    assert torch.allclose(R @ R.T, torch.eye(3), atol=1e-5)


def test_prefix_mask_covers_the_first_k_answer_tokens():
    pairs = [
        EncodedPair((1, 2, 3), (10, 11, 12, 13, 14)),
        EncodedPair((4, 5), (20, 21)),
    ]
    counts = loss_token_counts(pairs, prefix_tokens=3)
    assert counts == [3, 2]
    batch = make_batch(pairs, counts, pad_id=0)
    # row 0: prompt 3 tokens, answer cut after 3 tokens -> sequence of 6, targets at 2..4
    assert batch.tokens[0].tolist() == [1, 2, 3, 10, 11, 12]
    assert batch.targets[0].tolist() == [IGNORE, IGNORE, 10, 11, 12, IGNORE]
    assert batch.tokens[1].tolist() == [4, 5, 20, 21, 0, 0]
    assert batch.targets[1].tolist() == [IGNORE, 20, 21, IGNORE, IGNORE, IGNORE]
    assert batch.attention_mask[1].tolist() == [1, 1, 1, 1, 0, 0]
    full = loss_token_counts(pairs, prefix_tokens=3, full=[True, False])
    assert full == [5, 2]
    assert loss_token_counts(pairs, prefix_tokens=None) == [5, 2]


def test_share_of_full_answer_examples_is_seeded():
    chosen = full_answer_examples(100, 0.1, seed=3)
    assert sum(chosen) == 10
    assert chosen == full_answer_examples(100, 0.1, seed=3)
    assert chosen != full_answer_examples(100, 0.1, seed=4)
    with pytest.raises(ValueError, match="full_share"):
        full_answer_examples(10, 1.5)


def test_prefix_loss_equals_the_loss_of_the_first_k_tokens_of_a_full_forward(tiny):
    encoded = encode_pairs(PAIRS[:4], tiny.tokenizer)
    counts = loss_token_counts(encoded, prefix_tokens=1)
    short = answer_loss(tiny, make_batch(encoded, counts, 0), reduction="none")
    # the same positions read from a forward over the whole answers
    full_batch = make_batch(encoded, [len(p.answer_ids) for p in encoded], 0)
    with torch.no_grad():
        logits = tiny(full_batch.tokens, attention_mask=full_batch.attention_mask)
    for row, pair in enumerate(encoded):
        position = len(pair.prompt_ids) - 1
        expected = torch.nn.functional.cross_entropy(
            logits[row, position][None].float(), torch.tensor([pair.answer_ids[0]])
        )
        assert float(short[row].detach()) == pytest.approx(float(expected), rel=1e-5)


def test_training_positions_see_the_answer_as_generated(tiny):
    """A prompt-and-first-k rule in training touches the prompt and the first k answer tokens."""
    rule = PromptAndFirstGenerated(2)
    edit = Edit("blocks.0.hook_resid_post", RED(tiny.cfg.d_model), rule)
    encoded = encode_pairs(PAIRS[:3], tiny.tokenizer)
    batch = make_batch(encoded, [len(p.answer_ids) for p in encoded], 0)
    seen = {}

    def spy(activation, hook):
        from interp.core.positions import current_state

        state = current_state()
        seen["mask"] = rule.mask(state)
        return activation

    with edits(tiny, [edit]):
        tiny.hook_dict["blocks.0.hook_resid_post"].add_hook(spy)
        try:
            answer_loss(tiny, batch)
        finally:
            tiny.hook_dict["blocks.0.hook_resid_post"].remove_hooks()
    for row, pair in enumerate(encoded):
        p = len(pair.prompt_ids)
        n = p + len(pair.answer_ids)
        expected = [True] * (p + 2) + [False] * (n - p - 2)
        assert seen["mask"][row, :n].tolist() == expected
        assert not seen["mask"][row, n:].any()  # right padding untouched


def test_learning_rate_warms_up_then_decays_to_zero():
    rates = [learning_rate_at(s, 20, 1.0, 0.1) for s in range(20)]
    assert rates[0] == pytest.approx(0.5) and rates[1] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[1:], rates[2:]))
    assert rates[-1] < 0.01


def test_gradient_accumulation_matches_one_big_batch(tiny):
    def run(batch_size, grad_accum):
        edit = [Edit("blocks.1.hook_mlp_out", RED(tiny.cfg.d_model))]
        train(
            tiny,
            PAIRS[:8],
            edit_list=edit,
            batch_size=batch_size,
            grad_accum=grad_accum,
            max_steps=1,
            group_by_length=False,
            max_grad_norm=None,
            progress=False,
        )
        return edit[0].function.bias.detach()

    # with every example the same length (one-digit sums), per-example means average the same way
    assert torch.allclose(run(8, 1), run(4, 2), atol=1e-6)


def test_bad_input_is_a_clear_error(tiny, tmp_path):
    with pytest.raises(ValueError, match="nothing to train"):
        train(tiny, PAIRS, edit_list=[], progress=False)
    with pytest.raises(ValueError, match="no training pairs"):
        train(tiny, [], edit_list=red_edits(tiny), progress=False)
    with pytest.raises(ValueError, match="at least one RED"):
        edit = [Edit("blocks.0.hook_resid_post", LoReFT(tiny.cfg.d_model, 2))]
        train(tiny, PAIRS, edit_list=edit, bias_control=BiasControl(), progress=False)
    with pytest.raises(ValueError, match="context"):
        train(tiny, [Pair("1+1=", "2" * 200)], edit_list=red_edits(tiny), progress=False)
    with pytest.raises(ValueError, match="full_share"):
        TrainConfig(full_share=0.1)
    bad = tmp_path / "pairs.jsonl"
    bad.write_text(json.dumps({"prompt": "1+1=", "answer": "2"}) + "\n" + json.dumps({"q": 1}))
    with pytest.raises(ValueError, match=r"pairs.jsonl:2: field 'prompt'"):
        load_pairs_jsonl(bad)


def test_jsonl_pairs_and_worked_answers(tmp_path):
    from interp.data.math_sets import MathProblem

    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "1+1=", "answer": "2"}) + "\n\n")
    assert load_pairs_jsonl(path) == [Pair("1+1=", "2", "pairs/1")]
    problem = MathProblem("g1", "q?", "6", solution="2*3=<<2*3=6>>6")
    assert worked_answer(problem) == "2*3=6\nThe answer is \\boxed{6}."


def test_pid_controller_moves_its_weight_the_way_that_restrains_the_norm():
    penalty = PIDController(BiasControl(form="penalty", target=0.5, interval=1))
    start = penalty.weight
    penalty.step(0, 2.0)  # norm too large: a larger penalty
    assert penalty.weight > start
    scale = PIDController(BiasControl(form="loss_scale", target=0.5, interval=1))
    start = scale.weight
    scale.step(0, 2.0)  # norm too large: a smaller loss weight
    assert scale.weight < start
    low, high = scale.settings.bounds
    for step in range(1, 200):
        scale.step(step, 50.0)
    assert scale.weight == low
    every4 = PIDController(BiasControl(form="penalty", interval=4))
    updates = [every4.step(step, 3.0)["updated"] for step in range(9)]
    assert updates == [0, 0, 0, 1, 0, 0, 0, 1, 0]
    with pytest.raises(ValueError, match="form"):
        BiasControl(form="gain")


def test_checkpoint_round_trip_and_mismatches(tiny, tiny_llama, tmp_path):
    edit_list = red_edits(tiny)
    result = train(tiny, PAIRS[:8], edit_list=edit_list, learning_rate=1e-2, progress=False)
    folder = checkpoints.save(tmp_path / "red", tiny, edit_list=edit_list, result=result)
    record = json.loads((folder / "interp.json").read_text())
    assert record["kind"] == "edits" and record["meta"]["model"] == model_name(tiny)
    assert record["meta"]["training"]["learning_rate"] == 1e-2
    assert record["meta"]["edit_kinds"] == ["red"]
    loaded = checkpoints.load(folder, tiny, kind="red")
    for a, b in zip(loaded, edit_list):
        assert a.hook == b.hook
        assert torch.equal(a.function.bias, b.function.bias)
    with pytest.raises(EditError, match="not 'loreft'"):
        checkpoints.load(folder, tiny, kind="loreft")
    with pytest.raises(EditError, match="trained on"):
        checkpoints.load(folder, tiny_llama)
    # a model with other widths: refused even when the name check is waived
    wider = tiny_model("qwen2", n_layers=2, d_model=48, seed=5)
    with pytest.raises(EditError, match="width"):
        checkpoints.load(folder, wider, allow_other_model=True)
    # a hook the model lacks
    data = json.loads((folder / "interp.json").read_text())
    data["config"]["edits"][0]["hook"] = "blocks.7.mlp.hook_pre_linear"
    (folder / "interp.json").write_text(json.dumps(data))
    with pytest.raises(EditError, match="out of range"):
        checkpoints.load(folder, tiny)
    # tensors of the wrong shape for the declared width
    data["config"]["edits"][0]["hook"] = "blocks.0.mlp.hook_pre_linear"
    data["config"]["edits"][0]["function"]["width"] = 7
    (folder / "interp.json").write_text(json.dumps(data))
    with pytest.raises(EditError, match="does not load"):
        checkpoints.load(folder, tiny)


def test_training_result_saves_and_loads(tiny, tmp_path):
    control = BiasControl(form="penalty", target=0.1)
    result = train(tiny, PAIRS[:8], edit_list=red_edits(tiny), bias_control=control, progress=False)
    result.save(tmp_path / "run")
    loaded = TrainResult.load(tmp_path / "run")
    assert loaded.config == result.config
    assert loaded.config.bias_control == control
    assert loaded.history == result.history
    assert all("bias_norm" in row and "control_weight" in row for row in loaded.history)


def test_training_resumes_from_its_saved_state(tiny, tmp_path):
    def run(max_steps, state_dir=None):
        edit = [Edit("blocks.1.hook_mlp_out", RED(tiny.cfg.d_model))]
        result = train(
            tiny,
            PAIRS,
            edit_list=edit,
            max_steps=max_steps,
            save_every=2,
            state_dir=state_dir,
            learning_rate=1e-2,
            progress=False,
        )
        return edit[0].function.bias.detach().clone(), result

    straight, whole = run(6)
    # an interrupted run: the first 4 steps saved, then the same config continues from there
    state = tmp_path / "state"
    edit = [Edit("blocks.1.hook_mlp_out", RED(tiny.cfg.d_model))]
    with pytest.raises(KeyboardInterrupt):
        _interrupt_after(tiny, edit, state, steps=4)
    assert (state / "train_state.pt").exists()
    resumed, result = run(6, state)
    assert [r["step"] for r in result.history] == list(range(6))
    assert torch.allclose(resumed, straight, atol=1e-6)
    assert [r["loss"] for r in result.history] == pytest.approx([r["loss"] for r in whole.history])


def _interrupt_after(model, edit, state, steps):
    """Train with max_steps=6 but stop (as a crash would) once `steps` steps are saved."""
    import interp.training.trainer as trainer

    original = trainer._save_state

    def save_then_maybe_stop(*args):
        original(*args)
        if args[-2] >= steps:  # (..., history, step, seconds)
            raise KeyboardInterrupt

    trainer._save_state = save_then_maybe_stop
    try:
        train(
            model,
            PAIRS,
            edit_list=edit,
            max_steps=6,
            save_every=2,
            state_dir=state,
            learning_rate=1e-2,
            progress=False,
        )
    finally:
        trainer._save_state = original
