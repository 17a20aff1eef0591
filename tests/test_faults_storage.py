"""Faults around saving, reusing and resuming (issue 15): a user's files are never replaced, a
killed writer's temporaries are cleaned up, and results, partial runs, training states and edit
checkpoints are never taken for another model's or another data set's.

Every case runs real code on real models: the shipped toy adder and tiny models built here.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from interp import load_model
from interp.analyses import math_eval, number_probe
from interp.data.math_sets import MathProblem, load_jsonl, problem_ids_sha
from interp.interventions import RED, Edit, EditError, load_edits
from interp.models.fingerprint import model_fingerprint
from interp.results import PartialRun, reuse_or_run
from interp.storage import OccupiedError, StorageError, remove_dead_temporaries
from interp.testing import tiny_model
from interp.training import checkpoints
from interp.training.data import Pair
from interp.training.trainer import TrainConfig, train

PROBE = dict(n_problems=40, batch_size=32)


@pytest.fixture(scope="module")
def adder():
    return load_model("adder4")


@pytest.fixture(scope="module")
def probe(adder):
    """A real saved-able result: the number probe of the toy adder."""
    return number_probe.run(adder, **PROBE)


@pytest.fixture(scope="module")
def twin():
    """A tiny model with the same name and widths as the `tiny` fixture but other weights."""
    return tiny_model("qwen2", n_layers=2, d_model=32, seed=7)


# --------------------------------------------------------------------------------------------------
# Saving never replaces a user's files


def _user_file(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("my notes")


def _user_folder(path):
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("my notes")
    (path / "sub" / "data.csv").write_text("1,2")


def _other_kind(path, tiny):
    from interp.interventions import save_edits

    save_edits(path, [Edit("blocks.0.hook_mlp_out", RED(32))])


def _file_as_parent(path):
    _user_file(path.parent)


def _corrupt_record_with_user_file(path):
    path.mkdir(parents=True)
    (path / "interp.json").write_text("{")
    (path / "notes.txt").write_text("my notes")


def _symlink(path):
    target = path.with_name("real")
    _user_folder(target)  # makes the parent too
    path.symlink_to(target)


REFUSED = [
    # (what is at --out, how to make it, expected error text)
    ("a file", lambda p, tiny: _user_file(p), "is a file, not a folder of saved results"),
    ("a folder of user files", lambda p, tiny: _user_folder(p), r"holds notes.txt, sub\)"),
    ("another kind of result", _other_kind, "holds a saved 'edits', not a 'NumberProbeResult'"),
    ("a path under a file", lambda p, tiny: _file_as_parent(p), "cannot be made inside it"),
    (
        "a corrupt record beside user files",
        lambda p, tiny: _corrupt_record_with_user_file(p),
        "notes.txt",
    ),
    ("a symbolic link", lambda p, tiny: _symlink(p), "is a symbolic link"),
]


def _snapshot(root):
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("what, make, message", REFUSED, ids=[case[0] for case in REFUSED])
def test_saving_refuses_to_replace_what_is_not_its_own(what, make, message, probe, tiny, tmp_path):
    out = tmp_path / "space" / "out"
    make(out, tiny)
    before = _snapshot(tmp_path)
    with pytest.raises(OccupiedError, match=message) as error:
        probe.save(out, figures=False)
    assert "choose another output folder" in str(error.value)
    assert _snapshot(tmp_path) == before  # nothing moved, hidden or deleted
    # reuse_or_run says so before computing anything
    with pytest.raises(OccupiedError, match=message):
        reuse_or_run(out, type(probe), probe.config, lambda: pytest.fail("computed anyway"))
    assert _snapshot(tmp_path) == before


def test_an_empty_folder_or_an_older_result_of_the_same_kind_is_replaced(adder, probe, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    probe.save(out, figures=False)
    assert number_probe.NumberProbeResult.load(out).config == probe.config
    other = number_probe.run(adder, **{**PROBE, "seed": 5})
    other.save(out, figures=False)
    assert number_probe.NumberProbeResult.load(out).config.seed == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing hidden left behind


def test_the_cli_refuses_an_out_that_is_a_file_and_keeps_it(tmp_path):
    out = tmp_path / "np"
    out.write_text("my notes")
    done = subprocess.run(
        [sys.executable, "-m", "interp", "number-probe", "--model", "adder4", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert re.search(r"error: .*np is (a|an existing) file", done.stderr), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert out.read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["np"]


# --------------------------------------------------------------------------------------------------
# A writer killed mid-save


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from interp.storage import save_folder

    def stall(tmp):
        Path(sys.argv[2]).write_text(str(tmp))
        time.sleep(600)

    save_folder(sys.argv[1], "edits", config={"edits": []}, write_extras=stall)
    """
)


def _start_stalled_writer(out, ready):
    process = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out), str(ready)])
    deadline = time.time() + 120
    while not ready.exists():
        assert process.poll() is None and time.time() < deadline, "the writer did not start"
        time.sleep(0.1)
    return process


def test_a_save_cleans_up_after_a_writer_killed_mid_save_but_not_after_a_live_one(tmp_path):
    from interp.storage import save_folder

    out = tmp_path / "ckpt"
    killed = _start_stalled_writer(out, tmp_path / "killed.ready")
    live = _start_stalled_writer(out, tmp_path / "live.ready")
    try:
        killed_tmp = (tmp_path / "killed.ready").read_text()
        live_tmp = (tmp_path / "live.ready").read_text()
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        assert os.path.isdir(killed_tmp)  # what SIGKILL leaves: a hidden temporary folder
        assert os.path.basename(killed_tmp).startswith(".ckpt.tmp-")
        save_folder(out, "edits", config={"edits": []})
        assert not os.path.exists(killed_tmp)  # the dead writer's leftovers are gone
        assert os.path.isdir(live_tmp)  # the live writer's are untouched
        assert json.loads((out / "interp.json").read_text())["kind"] == "edits"
    finally:
        live.kill()
        live.wait(timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ckpt")) == [
        os.path.basename(live_tmp)
    ]


def test_a_result_moved_aside_by_a_killed_writer_is_put_back(probe, tmp_path):
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    probe.save(tmp_path / f".out.old-{socket.gethostname()}-{dead.pid}-abcd1234", figures=False)
    assert remove_dead_temporaries(out)
    assert number_probe.NumberProbeResult.load(out).config == probe.config


# --------------------------------------------------------------------------------------------------
# Fingerprints


def test_the_fingerprint_follows_the_weights(tiny, twin):
    again = tiny_model("qwen2", n_layers=2, d_model=32, seed=1)
    assert model_fingerprint(again) == model_fingerprint(tiny)
    assert model_fingerprint(twin)["model"] == model_fingerprint(tiny)["model"]
    assert model_fingerprint(twin)["weights"] != model_fingerprint(tiny)["weights"]
    wider = tiny_model("qwen2", n_layers=2, d_model=48, seed=1)
    assert model_fingerprint(wider)["weights"] != model_fingerprint(tiny)["weights"]
    half = tiny_model("qwen2", n_layers=2, d_model=32, seed=1, dtype=torch.bfloat16)
    assert model_fingerprint(half)["dtype"] == "bfloat16"
    changed = tiny_model("qwen2", n_layers=2, d_model=32, seed=1)
    with torch.no_grad():
        next(changed.parameters()).view(-1)[0] += 1.0  # the first value is always sampled
    assert model_fingerprint(changed)["weights"] != model_fingerprint(tiny)["weights"]


# --------------------------------------------------------------------------------------------------
# Results are never reused across models


def test_reuse_or_run_recomputes_for_another_model_and_says_which(
    adder, probe, tiny, twin, tmp_path, capsys
):
    out = tmp_path / "np"
    calls = []

    def compute(model):
        def run():
            calls.append(model)
            return number_probe.run(model, **PROBE)

        return run

    config = probe.config
    first = reuse_or_run(out, type(probe), config, compute(adder), model=adder)
    assert first.meta["fingerprint"] == model_fingerprint(adder)
    reuse_or_run(out, type(probe), config, compute(adder), model=adder)
    assert calls == [adder] and "reusing it" in capsys.readouterr().out
    # the model of `--model adder4` then `--model <another>` with the same --out
    tiny_result = reuse_or_run(out, type(probe), config, compute(tiny), model=tiny)
    assert calls == [adder, tiny] and tiny_result.meta["model"] == "interp-tiny-qwen2"
    assert "model 'adder4', not 'interp-tiny-qwen2'" in capsys.readouterr().out
    # same name, same widths, other weights
    reuse_or_run(out, type(probe), config, compute(twin), model=twin)
    assert calls == [adder, tiny, twin] and "weights" in capsys.readouterr().out


class StopAfter:
    """A logit processor that stops the run (as a kill would) after `calls` decoding steps."""

    def __init__(self, calls):
        self.calls = calls

    def __call__(self, logits, state):
        self.calls -= 1
        if self.calls < 0:
            raise KeyboardInterrupt
        return logits


PROBLEMS = [MathProblem(f"p{i}", f"{i}+{i}=", str(2 * i)) for i in range(4)]


def _math_eval(model, out, stop_after=10**6, problems=PROBLEMS):
    return math_eval.run(
        model,
        problems=problems,
        prompt_style="plain",
        max_new_tokens=2,
        batch_size=2,
        out=out,
        progress=False,
        logit_processors=[StopAfter(stop_after)],
    )


def test_a_partial_math_eval_is_not_resumed_with_another_model(tiny, twin, tmp_path):
    out = tmp_path / "eval"
    with pytest.raises(KeyboardInterrupt):
        _math_eval(tiny, out, stop_after=3)  # the first batch (2 steps) is written, then a kill
    partial = tmp_path / "eval.partial.jsonl"
    rows_before = partial.read_text()
    assert len(rows_before.splitlines()) == 3  # header + 2 rows
    with pytest.raises(ValueError, match=r"fingerprint\.weights.* differ"):
        _math_eval(twin, out)
    assert partial.read_text() == rows_before  # nothing of the other model mixed in
    finished = _math_eval(tiny, out)
    assert [r["id"] for r in finished.rows] == [p.id for p in PROBLEMS]
    assert finished.meta["fingerprint"] == model_fingerprint(tiny)
    with pytest.raises(ValueError, match="does not belong to this model.*weights"):
        _math_eval(twin, out)


def test_an_edited_data_file_is_not_taken_for_the_old_one(tiny, tmp_path):
    data = tmp_path / "set.jsonl"
    lines = [json.dumps({"question": f"{i}+1=", "answer": str(i + 1)}) for i in range(3)]
    data.write_text("\n".join(lines) + "\n")
    problems = load_jsonl(data)
    out = tmp_path / "eval"
    _math_eval(tiny, out, problems=problems)
    lines[1] = json.dumps({"question": "7+1=", "answer": "8"})  # same line count, same ids
    data.write_text("\n".join(lines) + "\n")
    edited = load_jsonl(data)
    assert [p.id for p in edited] == [p.id for p in problems]
    assert problem_ids_sha(edited) != problem_ids_sha(problems)
    with pytest.raises(ValueError, match="problem_ids_sha differ"):
        _math_eval(tiny, out, problems=edited)


# --------------------------------------------------------------------------------------------------
# Training resume state and edit checkpoints


PAIRS = [Pair(f"{a}+{b}=", f"{a + b}") for a in range(6) for b in range(2)]


def _train(model, state, pairs=PAIRS):
    edit = [Edit("blocks.1.hook_mlp_out", RED(32))]
    return train(
        model, pairs, edit_list=edit, max_steps=2, save_every=1, state_dir=state, progress=False
    )


@pytest.mark.parametrize(
    "other, message",
    [
        ("twin", "holds a training run of another model: it was made with weights"),
        ("llama", "holds a training run of another model: it was made with model"),
        ("data", "holds a run on other training data"),
    ],
)
def test_a_training_state_is_not_resumed_with_another_model_or_data(
    other, message, tiny, twin, tiny_llama, tmp_path
):
    state = tmp_path / "state"
    result = _train(tiny, state)
    assert result.meta["fingerprint"] == model_fingerprint(tiny)
    saved = (state / "train_state.pt").read_bytes()
    model, pairs = {"twin": (twin, PAIRS), "llama": (tiny_llama, PAIRS)}.get(
        other, (tiny, PAIRS[:-1] + [Pair("9+9=", "18")])
    )
    with pytest.raises(ValueError, match=message):
        _train(model, state, pairs)
    assert (state / "train_state.pt").read_bytes() == saved


@pytest.mark.parametrize("max_steps", [0, -1])
def test_max_steps_must_be_positive(max_steps, tiny):
    with pytest.raises(ValueError, match="max_steps must be at least 1"):
        TrainConfig(max_steps=max_steps)
    with pytest.raises(ValueError, match="max_steps must be at least 1"):
        train(tiny, PAIRS, edit_list=[Edit("blocks.1.hook_mlp_out", RED(32))], max_steps=max_steps)


@pytest.mark.parametrize("loader", ["checkpoints.load", "load_edits"])
def test_an_edit_checkpoint_is_refused_on_another_model_of_the_same_width(
    loader, tiny, twin, tiny_llama, tmp_path
):
    red = [Edit("blocks.0.hook_mlp_out", RED.random(32, bias_norm=1.0, scale_std=0.1))]
    folder = checkpoints.save(tmp_path / "ckpt", tiny, edit_list=red)
    load = checkpoints.load if loader == "checkpoints.load" else load_edits
    assert torch.equal(load(folder, tiny)[0].function.bias, red[0].function.bias)
    with pytest.raises(EditError, match="does not belong to this model: .*weights"):
        load(folder, twin)
    with pytest.raises(
        EditError, match="trained on 'interp-tiny-qwen2', not on 'interp-tiny-llama'"
    ):
        load(folder, tiny_llama)
    forced = load(folder, twin, allow_other_model=True)  # the explicit override
    assert torch.equal(forced[0].function.bias, red[0].function.bias)


def test_a_partial_run_of_another_model_names_the_difference(tiny, twin, tmp_path):
    PartialRun(tmp_path / "run", {"config": {}}, model=tiny).append([{"id": 1}])
    with pytest.raises(ValueError, match="fingerprint.weights differ"):
        PartialRun(tmp_path / "run", {"config": {}}, model=twin)
    # the CLI prints ValueErrors as `error: ...` (exit 2): every refusal here is one
    assert issubclass(OccupiedError, StorageError) and issubclass(StorageError, ValueError)
