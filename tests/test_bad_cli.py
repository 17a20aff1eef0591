"""Bad command lines, as a new user types them: each ends in one `error: ...` line (no traceback)
with exit code 2, says what is wrong, and writes nothing (no folder, no partial file).

Each row runs `interp.cli.main(argv)` in-process inside an empty folder holding only the fixtures
below; the folder's contents are compared before and after.
"""

import argparse
from pathlib import Path

import pytest

from interp.cli import main
from interp.cli.common import model_folder_name, output_folder_for

A = ["--model", "adder4"]
DONOR = ["--donor-random-red", "1"]

# (argv, text the error must contain)
CASES = [
    # counts and sizes
    (["number-probe", *A, "--batch-size", "0"], "--batch-size: must be a whole number of at least 1"),
    (["number-probe", *A, "--batch-size", "-1"], "--batch-size: must be a whole number of at least 1"),
    (["math-eval", *A, "--batch-size", "0"], "--batch-size: must be a whole number of at least 1"),
    (["math-eval", *A, "--max-new-tokens", "0"], "--max-new-tokens: must be a whole number"),
    (["generate", *A, "--prompt", "1+1=", "--max-new-tokens", "1.5"], "expected a whole number"),
    (["number-probe", *A, "--n-problems", "0"], "--n-problems: must be a whole number of at least 1"),
    (["math-eval", *A, "--n-problems", "-3"], "--n-problems: must be a whole number of at least 0"),
    (["prefix-swap", *A, *DONOR, "--pool-size", "0"], "--pool-size: must be a whole number"),
    (["train", *A, "--max-steps", "0"], "--max-steps: must be a whole number of at least 1"),
    (["train", *A, "--epochs", "0"], "--epochs: must be a whole number of at least 1"),
    (["faithfulness", *A, "--n-triples", "0"], "--n-triples: must be a whole number"),
    (["thought-states", *A, "--chunk-size", "0"], "--chunk-size: must be a whole number"),
    (["reft-compare", *A, "--eval-batch-size", "0"], "--eval-batch-size: must be a whole number"),
    (["pid-compare", "--batch-size", "0"], "--batch-size: must be a whole number"),
    (["number-probe", *A, "--layers", "-1"], "--layers: must be a whole number of at least 0"),
    (["number-probe", *A, "--layers", ","], "at least one value"),
    # numbers that are not finite, or out of range
    (["number-probe", *A, "--strengths", "nan"], "--strengths: expected a finite number"),
    (["number-probe", *A, "--strengths", "1,inf"], "--strengths: expected a finite number"),
    (["steering", *A, "--alphas", "nan"], "--alphas: expected a finite number"),
    (["math-eval", *A, "--random-red", "nan"], "--random-red: expected a finite number"),
    (["math-eval", *A, "--random-red", "-0.5"], "--random-red: must be a number of at least 0"),
    (["prefix-swap", *A, "--donor-random-red", "-1"], "a norm cannot be negative"),
    (["number-probe", *A, "--red-bias-norm", "-1"], "--red-bias-norm: must be a number of at least 0"),
    (["number-probe", *A, "--float32-confirmation", "0"], "--float32-confirmation: must be a number above 0"),
    (["faithfulness", *A, "--red-bias-norm", "inf"], "--red-bias-norm: expected a finite number"),
    (["generate", *A, "--prompt", "x", "--temperature", "-1"], "--temperature: must be a number above 0"),
    (["train", *A, "--lr", "nan"], "--lr: expected a finite number"),
    (["train", *A, "--warmup-ratio", "2"], "--warmup-ratio: must be a number from 0 to 1"),
    (["faithfulness", *A, "--test-fraction", "1"], "strictly between 0 and 1"),
    (["generate", *A, "--prompt", "x", "--stop", ""], "non-empty stop string"),
    # output folders and files
    (["number-probe", *A, "--out", "."], "is the current folder or one above it"),
    (["math-eval", *A, "--out", "."], "is the current folder or one above it"),
    (["math-eval", *A, "--out", ".."], "is the current folder or one above it"),
    (["train", *A, "--out", "repo"], "is a home folder or a repository root"),
    (["math-eval", *A, "--out", "afile"], "afile is an existing file, not a folder"),
    (["seal", *A, "--out", "afile/run"], "is a file, so no folder can be made"),
    (["math-eval", *A, "--figure", "afile/x.png"], "is a file, so afile/x.png cannot be written"),
    (["math-eval", *A, "--figure", "folder"], "folder is a folder: give a file name"),
    (["prefix-swap", *A, *DONOR, "--closeness-figure", "afile/c.png"], "is a file"),
    (["faithfulness-triples", "--out", "afile/t.jsonl"], "is a file"),
    (["generate", *A, "--prompt", "x", "--cache-dir", "afile/cache"], "no cache folder can be made"),
    (["generate", *A, "--prompt", "x", "--cache-dir", "afile"], "is a file, not a folder"),
    # inputs that are not there or not what they should be
    (["number-probe", *A, "--edit", "folder"], "folder is not an edit checkpoint folder"),
    (["generate", *A, "--prompt", "x", "--edits", "missing"], "missing is missing"),
    (["math-eval", *A, "--edits", "afile"], "afile is a file"),
    (["math-eval", *A, "--reuse", "folder"], "folder holds no saved result"),
    (["math-eval", *A, "--dataset", "missing.jsonl"], "missing.jsonl: no such file"),
    (["train", *A, "--data", "missing.jsonl"], "missing.jsonl is missing"),
    (["faithfulness", *A, "--triples", "folder"], "folder is a folder"),
    (["reft-compare", *A, "--probe-dir", "missing"], "missing is missing"),
    # choices and combinations, checked before the model loads
    (["generate", *A, "--prompt", "x", "--device", "cuda"], "built without CUDA"),
    (["generate", *A, "--prompt", "x", "--device", "gpu"], "unknown device 'gpu'"),
    (["number-probe", *A, "--style", "fancy"], "invalid choice: 'fancy'"),
    (["thoughts", *A, "--datasets", "gsm9k"], "unknown data sets ['gsm9k']"),
    (["steering", *A, "--variants", "pooled,nope"], "unknown --variants ['nope']"),
    (["prefix-swap", *A], "give the donor an edit"),
    (["prefix-swap", *A, *DONOR, "--variants", "nope"], "--variants must be taken from"),
    (["prefix-swap", *A, *DONOR, "--ks", "0,64", "--max-new-tokens", "64"], "largest k (64)"),
    (["reft-compare", *A, "--arms", "base,nope"], "unknown arms ['nope']"),
    (["pid-compare", "--forms", "none,nope"], "unknown --forms ['nope']"),
    (["train", *A, "--pid-bounds", "2", "1", "--bias-control", "lr"], "MIN is above MAX"),
    # checked once the model is loaded, before any work or file
    (["train", *A, "--layers", "9", "--data", "pairs.jsonl", "--out", "run"], "--layers 9 is out of range"),
    (["number-probe", *A, "--edit", "narrow_checkpoint", "--out", "run"], "width"),
]  # fmt: skip


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty folder to run in: a file, a folder, a repository root, a JSONL, a checkpoint."""
    import torch

    from interp.core.positions import AllPositions
    from interp.interventions import RED, Edit, save_edits

    (tmp_path / "afile").write_text("a user's file\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "pairs.jsonl").write_text('{"prompt": "1+1=", "answer": "2"}\n')
    save_edits(
        tmp_path / "narrow_checkpoint", [Edit("blocks.0.hook_mlp_out", RED(3), AllPositions())]
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.version, "cuda", None)  # as on a CPU-only build of torch
    return tmp_path


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(folder.rglob("*"))
    }


def _exit_code(argv: list[str]) -> int:
    return main(argv)  # usage errors return 2 too, never SystemExit


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_command_line_is_one_clear_error_and_writes_nothing(workdir, capsys, argv, expected):
    before = _tree(workdir)
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "error: " in last and expected in last, err
    assert _tree(workdir) == before


def test_default_output_folders_name_the_model(tmp_path):
    folder = tmp_path / "My-Model"
    folder.mkdir()
    assert model_folder_name("adder4") == "adder4"
    assert model_folder_name(str(folder)) == "My-Model"
    assert model_folder_name(str(folder) + "/") == "My-Model"
    assert model_folder_name("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB--SmolLM2-135M"
    args = argparse.Namespace(out=None, model="adder4")
    assert output_folder_for(args, "runs/number_probe") == Path("runs/number_probe/adder4")
    args.model = "smollm2-135m-instruct"
    assert output_folder_for(args, "runs/math/gsm8k") == Path(
        "runs/math/gsm8k/smollm2-135m-instruct"
    )
    args.out = "elsewhere"
    assert output_folder_for(args, "runs/number_probe") == Path("elsewhere")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (dict(batch_size=0), "batch_size must be a whole number of at least 1"),
        (dict(max_new_tokens=2.5), "max_new_tokens must be a whole number"),
        (dict(n_problems=-1), "n_problems must be a whole number"),
    ],
)
def test_math_eval_checks_settings_before_writing_a_partial_file(tmp_path, settings, expected):
    from interp.analyses import math_eval
    from interp.data.math_sets import MathProblem
    from interp.models import load_model

    problems = [MathProblem(id="p0", question="1+1", answer="2")]
    with pytest.raises(ValueError, match=expected):
        math_eval.run(load_model("adder4"), problems=problems, out=tmp_path / "eval", **settings)
    assert list(tmp_path.iterdir()) == []
