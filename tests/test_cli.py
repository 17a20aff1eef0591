"""The command line: help lists the analyses, generate and number-probe run end to end on the
shipped toy adder, results resume, and bad input exits with a clear message."""

import json

from interp.cli import main


def test_help_lists_the_analyses(capsys):
    assert main(["--help"]) == 0
    assert main(["no-such-command"]) == 2
    out = capsys.readouterr().out
    assert "generate" in out and "number-probe" in out


def test_generate_on_the_adder(capsys):
    assert (
        main(
            [
                "generate",
                "--model",
                "adder4",
                "--prompt",
                "1234+4321=",
                "--max-new-tokens",
                "6",
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["text"].startswith("5555")


def test_number_probe_writes_results_and_resumes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output folder names the model
    args = [
        "number-probe",
        "--model",
        "adder4",
        "--style",
        "compact",
        "--n-problems",
        "300",
        "--probe-digits",
        "4",
        "--sweep-problems",
        "60",
        "--batch-size",
        "128",
    ]
    assert main(args) == 0
    out = tmp_path / "runs" / "number_probe" / "adder4"
    for name in ("probe", "sweep", "projection"):
        assert (out / name / "tensors.safetensors").exists()
    assert (out / "number_direction.html").exists()
    assert (out / "edit_effect.json").exists()
    printed = capsys.readouterr().out
    assert "x* at layer" in printed and "breaks" in printed
    assert main(args) == 0
    assert capsys.readouterr().out.count("[resume]") == 3


def test_unknown_model_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no hub here: fail at once instead of retrying
    assert main(["generate", "--model", "no-such-model-xyz", "--prompt", "hi"]) == 2
    assert "preset" in capsys.readouterr().err
