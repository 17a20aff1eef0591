"""`python -m interp train`, `pid-compare` and `reft-compare` end to end on small real models."""

import json

import pytest

from interp.cli import main
from interp.storage import is_saved
from interp.training import checkpoints
from interp.training.trainer import TrainResult

pytestmark = pytest.mark.slow


def test_train_command_writes_a_checkpoint_that_loads(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "\n".join(
            json.dumps({"prompt": f"{a}+{a}=", "answer": f"{2 * a}="}) for a in range(1000, 1008)
        )
    )
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--model",
            "adder4",
            "--data",
            str(data),
            "--hook",
            "hook_mlp_out",
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--bias-control",
            "penalty",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    history = TrainResult.load(out / "history")
    assert len(history.history) == 2 and "control_weight" in history.history[0]
    from interp.models import load_model

    edits = checkpoints.load(out / "checkpoint", load_model("adder4"), kind="red")
    assert len(edits) == 4
    assert main(["train", "--model", "adder4", "--data", str(tmp_path / "missing.jsonl")]) == 2


def test_pid_compare_command(tmp_path, capsys):
    out = tmp_path / "pid"
    args = [
        "pid-compare",
        "--model",
        "adder4",
        "--n-train",
        "16",
        "--epochs",
        "1",
        "--forms",
        "none,penalty",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert is_saved(out / "penalty") and (out / "bias_control.html").exists()
    assert "penalty" in capsys.readouterr().out


def test_reft_compare_trains_decodes_tabulates_and_resumes(tmp_path):
    from interp.analyses import reft_compare
    from interp.models import load_model

    model = load_model("smollm2-135m-instruct")
    settings = dict(
        out=tmp_path / "cmp",
        n_train=4,
        max_answer_tokens=8,
        prefix_tokens=4,
        n_eval=2,
        max_new_tokens=4,
        eval_batch_size=2,
        kl_budget=0.0,
        eval_arms=("base", "red_prefix_pid_kl"),
        trained_arms=("red_prefix_pid",),
        progress=False,
    )
    result = reft_compare.run(model, **settings)
    assert [r["arm"] for r in result.rows] == ["base", "red_prefix_pid_kl"]
    kl_row = result.rows[1]
    assert kl_row["bias_norm"] is not None
    assert kl_row["mean_edit_stop"] == 0  # a zero budget stops editing at the first step
    assert "red_prefix_pid_kl" in (tmp_path / "cmp" / "table.md").read_text()
    checkpoint = tmp_path / "cmp" / "train" / "red_prefix_pid" / "checkpoint"
    assert checkpoints.checkpoint_kind(checkpoint) == "red"
    history = TrainResult.load(tmp_path / "cmp" / "train" / "red_prefix_pid" / "history")
    again = reft_compare.run(model, **settings)  # everything reused from disk
    assert again.rows == result.rows
    reloaded = TrainResult.load(tmp_path / "cmp" / "train" / "red_prefix_pid" / "history")
    assert reloaded.meta["seconds"] == history.meta["seconds"]
