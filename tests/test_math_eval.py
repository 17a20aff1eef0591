"""Math evaluation: graded rows, accuracy with its interval, results written as they come, resuming,
reuse of earlier rows, and clear errors. Outputs are forced through a logit processor on a tiny
model, so each row's verdict is known in advance; one slow test runs smollm2 on real GSM8K."""

import json

import pytest
import torch

from interp.analyses import math_eval
from interp.data import math_prompts
from interp.data.math_sets import MathProblem, load_problems
from interp.interventions import RED, Edit
from interp.interventions.arms import Arm
from interp.models import model_name
from interp.stats import wilson_interval
from interp.storage import is_saved

PROBLEMS = [
    MathProblem(id=f"p{i}", question=f"what is {i} + {i}?", answer=str(2 * i)) for i in range(6)
]


class ForceAnswers:
    """Make row r of every batch write `texts[problem]`, then stop (eos); counts decoding steps.

    Rows are matched to problems through their prompt tokens, so batching and resuming cannot mix
    them up. A text ending in "..." never stops: the row runs into the token cap.
    """

    def __init__(self, tokenizer, texts: dict[str, str]):
        self.tokenizer = tokenizer
        self.targets = {
            q: tokenizer.encode(t.removesuffix("..."), add_special_tokens=False)
            + ([] if t.endswith("...") else [tokenizer.eos_token_id])
            for q, t in texts.items()
        }
        self.prompts_seen: list[str] = []

    def __call__(self, logits, state):
        forced = torch.full_like(logits, float("-inf"))
        for row in range(logits.shape[0]):
            tokens = state.tokens[row][state.real[row]].tolist()
            prompt = self.tokenizer.decode(tokens[: int(state.prompt_lengths[row])])
            step = int(state.n_generated[row])
            if step == 0:
                self.prompts_seen.append(prompt)
            target = next(t for q, t in self.targets.items() if q in prompt)
            token = target[step] if step < len(target) else self.tokenizer.encode(" ")[0]
            forced[row, token] = 0.0
        return forced


def answers_for(problems, right: set[int], runaway: set[int] = frozenset()):
    texts = {}
    for i, p in enumerate(problems):
        value = int(p.answer) + (0 if i in right else 1)
        texts[p.question] = f"so the answer is {value}" + ("..." if i in runaway else ".")
    return texts


def evaluate(tiny, problems=PROBLEMS, right=(0, 2, 4), runaway=(), **kwargs):
    forcer = ForceAnswers(tiny.tokenizer, answers_for(problems, set(right), set(runaway)))
    kwargs = {"max_new_tokens": 30, "batch_size": 4, "progress": False, **kwargs}
    result = math_eval.run(
        tiny, problems=problems, prompt_style="plain", logit_processors=[forcer], **kwargs
    )
    return result, forcer


def test_rows_accuracy_and_tokens(tiny):
    result, _ = evaluate(tiny, runaway={5})
    assert [r["id"] for r in result.rows] == [p.id for p in PROBLEMS]
    assert [r["correct"] for r in result.rows] == [True, False, True, False, True, False]
    assert result.rows[2]["extracted"] == "4" and result.rows[2]["extraction"] == "answer_is"
    assert result.accuracy == pytest.approx(0.5)
    assert result.accuracy_interval == wilson_interval(3, 6)
    finished = len(tiny.tokenizer.encode("so the answer is 4.", add_special_tokens=False)) + 1
    assert result.rows[2]["n_tokens"] == finished and result.rows[2]["finish_reason"] == "eos"
    assert result.rows[5]["hit_cap"] and result.rows[5]["n_tokens"] == 30
    assert result.cap_rate == pytest.approx(1 / 6)
    assert result.mean_tokens == pytest.approx(sum(r["n_tokens"] for r in result.rows) / 6)
    row = result.rows[0]
    encoded = tiny.tokenizer.encode(row["prompt"], add_special_tokens=False)
    assert row["prompt_tokens"] == encoded
    assert tiny.tokenizer.decode(row["output_tokens"][:-1]) == row["output"]  # without the eos
    result.figure()


def test_edits_from_an_arm_are_applied(tiny):
    red = [Edit("blocks.0.hook_mlp_out", RED.random(tiny.cfg.d_model, bias_norm=5.0))]
    plain = math_eval.run(
        tiny, problems=PROBLEMS[:2], prompt_style="plain", max_new_tokens=8, progress=False
    )
    edited = math_eval.run(
        Arm("red", tiny, tuple(red)),
        problems=PROBLEMS[:2],
        prompt_style="plain",
        max_new_tokens=8,
        progress=False,
    )
    assert [r["output_tokens"] for r in plain.rows] != [r["output_tokens"] for r in edited.rows]
    assert json.loads(edited.config.edit_description)[0]["hook"] == "blocks.0.hook_mlp_out"


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_and_finished_run_is_not_redone(tiny, tmp_path, monkeypatch):
    out = tmp_path / "eval"
    calls = {"n": 0}
    real_generate = math_eval.generate

    def generate_then_crash(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Interrupt
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(math_eval, "generate", generate_then_crash)
    with pytest.raises(Interrupt):
        evaluate(tiny, out=out, batch_size=2)
    partial = out.parent / "eval.partial.jsonl"
    lines = partial.read_text().splitlines()
    assert len(lines) == 1 + 2  # header + the first batch, written as it came
    with partial.open("a") as f:
        f.write('{"id": "torn')  # a crash in the middle of a line
    monkeypatch.setattr(math_eval, "generate", real_generate)
    resumed, forcer = evaluate(tiny, out=out, batch_size=2)
    assert len(forcer.prompts_seen) == 4  # only the four missing problems were decoded
    assert not partial.exists() and is_saved(out)
    assert [r["correct"] for r in resumed.rows] == [True, False, True, False, True, False]

    monkeypatch.setattr(math_eval, "generate", lambda *a, **k: pytest.fail("decoded again"))
    again, _ = evaluate(tiny, out=out, batch_size=2)
    assert again.rows == resumed.rows
    with pytest.raises(ValueError, match="different config"):
        evaluate(tiny, out=out, batch_size=2, max_new_tokens=31)


def test_reuse_takes_matching_rows_only(tiny):
    first, _ = evaluate(tiny, problems=PROBLEMS[:4])
    both, forcer = evaluate(tiny, reuse=[first])
    assert len(forcer.prompts_seen) == 2
    assert [r["index"] for r in both.rows] == list(range(6))
    with pytest.raises(ValueError, match="max_new_tokens"):
        evaluate(tiny, reuse=[first], max_new_tokens=12)


def test_bad_input_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match="empty"):
        math_eval.run(tiny, problems=[], progress=False)
    with pytest.raises(ValueError, match="prompt_style"):
        math_eval.run(tiny, problems=PROBLEMS, prompt_style="poem", progress=False)
    with pytest.raises(TypeError, match="unknown generation settings"):
        math_eval.run(tiny, problems=PROBLEMS, temprature=0.5, progress=False)
    with pytest.raises(ValueError, match="unique"):
        math_eval.run(tiny, problems=PROBLEMS[:1] * 2, progress=False)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_problems("gsm9k")
    with pytest.raises(ValueError, match="no chat template"):
        math_eval.run(tiny, problems=PROBLEMS, prompt_style="chat", progress=False)


@pytest.mark.slow
def test_gsm8k_chat_prompts_on_smollm2(smollm2):
    result = math_eval.run(
        smollm2, dataset="gsm8k", n_problems=2, seed=1, max_new_tokens=8, progress=False
    )
    assert result.config.n_problems == 2 and result.n == 2
    for row in result.rows:
        assert "\\boxed{}" in row["prompt"] and row["prompt"].endswith("assistant\n")
        assert row["n_tokens"] == 8 and row["hit_cap"]  # 8 tokens cannot finish an answer
        assert smollm2.tokenizer.decode(row["prompt_tokens"]) == row["prompt"]


def test_arm_describes_itself_and_checks_its_edits(tiny):
    red = Edit("blocks.1.hook_mlp_out", RED.random(tiny.cfg.d_model, bias_norm=0.54))
    arm = Arm("red", tiny, [red])
    assert isinstance(arm.edit_list, tuple) and not arm.is_plain and Arm.plain(tiny).is_plain
    described = arm.describe()
    assert described["name"] == "red" and described["edits"][0]["hook"] == "blocks.1.hook_mlp_out"
    assert described["edits"][0]["tensor_norms"]["bias"] == pytest.approx(0.54, abs=1e-5)
    with pytest.raises(TypeError, match="Edit"):
        Arm("bad", tiny, ["blocks.1.hook_mlp_out"])
    with pytest.raises(ValueError, match="name"):
        Arm("", tiny)


def test_config_records_model_and_prompt_template(tiny, tmp_path, monkeypatch):
    out = tmp_path / "eval"
    first, _ = evaluate(tiny, problems=PROBLEMS[:2], out=out)
    assert first.config.model == model_name(tiny)
    assert first.config.prompt_template == "Question: {question}\nAnswer:"
    # the same call with prompts built another way must not load the saved rows
    monkeypatch.setattr(
        math_prompts, "plain_prompt", lambda p: f"Q: {getattr(p, 'question', p)}\nA:"
    )
    with pytest.raises(ValueError, match="prompt_template"):
        evaluate(tiny, problems=PROBLEMS[:2], out=out)
    with pytest.raises(ValueError, match="prompt_template"):
        evaluate(tiny, problems=PROBLEMS[:2], reuse=[first])


def test_arm_of_a_model_or_an_arm(tiny):
    red = Edit("blocks.1.hook_mlp_out", RED.random(tiny.cfg.d_model, bias_norm=0.5))
    arm = Arm("red", tiny, (red,))
    assert Arm.of(arm) is arm
    assert Arm.of(tiny).is_plain and Arm.of(tiny).name == "plain"
    edited = Arm.of(tiny, [red], name="donor")
    assert edited.name == "donor" and edited.edit_list == (red,) and edited.model is tiny
    assert Arm.of(tiny, [red]).name == "edited"
    with pytest.raises(ValueError, match="not both"):
        Arm.of(arm, [red])
