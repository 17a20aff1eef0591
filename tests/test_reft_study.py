"""The ReFT study chain (`python -m interp reft-study`): its pure parts, and the whole chain on
smollm2 at tiny sizes, stopped after training, continued, and run a third time with nothing left
to do."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from scipy import stats

from interp.analyses import reft_study
from interp.analyses.reft_study import (
    PHASES,
    ReftStudyConfig,
    choose_steps,
    phase_key,
    pool_sizes,
    swap_selection,
)
from interp.figures.reft_study import pool_figure
from interp.results import config_from_dict, config_to_dict
from interp.stats import detectable_difference, paired_comparison

# --------------------------------------------------------------------------------------------------
# Pure parts


def test_choose_steps_reads_the_step_where_the_smoothed_loss_made_most_of_its_drop():
    # loss = 1 + 2 exp(-step / 20): after smoothing, 90% of the drop is made near step 46
    losses = [1 + 2 * math.exp(-s / 20) for s in range(200)]
    choice = choose_steps(losses, fraction=0.9, window=4)
    smoothed = choice["smoothed"]
    goal = choice["end_loss"] + 0.1 * (choice["start_loss"] - choice["end_loss"])
    first = next(i for i, v in enumerate(smoothed) if v <= goal)
    assert smoothed[first - 1] > goal  # the first crossing, not a later one
    assert choice["steps"] % 4 == 0 and first + 4 <= choice["steps"] < first + 8
    assert 40 <= choice["steps"] <= 56
    # a curve that does not fall keeps every pilot step; a larger fraction asks for more steps
    assert choose_steps([2.0] * 64)["steps"] == 64
    assert choose_steps(losses, 0.99, 4)["steps"] > choice["steps"]


def test_swap_selection_keeps_donor_wrong_base_right_in_pool_order():
    base = [{"id": i, "correct": c} for i, c in zip("abcde", [1, 1, 0, 1, 0], strict=True)]
    donor = [{"id": i, "correct": c} for i, c in zip("abcde", [0, 1, 0, 0, 1], strict=True)]
    assert swap_selection(base, donor) == ["a", "d"]
    assert swap_selection(base, donor, base_right=False) == ["a", "c", "d"]


def test_pool_sizes_double_up_to_the_split():
    assert pool_sizes(200, 1319) == [200, 400, 800, 1319]
    assert pool_sizes(200, 200) == [200]
    assert pool_sizes(500, 300) == [300]


def test_paired_comparison_counts_discordant_pairs_and_matches_mcnemar():
    rng = np.random.default_rng(0)
    base = rng.random(300) < 0.3
    arm = base.copy()
    arm[rng.choice(300, 40, replace=False)] ^= True  # flip 40 verdicts
    result = paired_comparison(base, arm, n_bootstrap=500, seed=1)
    b, c = int((base & ~arm).sum()), int((~base & arm).sum())
    assert (result["base_only"], result["arm_only"]) == (b, c) and b + c == 40
    assert result["difference"] == pytest.approx((c - b) / 300)
    assert result["difference_low"] <= result["difference"] <= result["difference_high"]
    assert result["mcnemar_p"] == pytest.approx(stats.binomtest(min(b, c), b + c).pvalue)
    same = paired_comparison(base, base, n_bootstrap=50)
    assert same["difference"] == 0 and same["mcnemar_p"] == 1.0
    with pytest.raises(ValueError, match="equally long"):
        paired_comparison([True], [True, False])


def test_detectable_difference_has_the_asked_power():
    n, p = 200, 0.26
    unpaired = detectable_difference(n, p)
    z = stats.norm.ppf(0.975)
    # power of a two-proportion z test at that difference (normal approximation) is 80%
    assert stats.norm.cdf(unpaired / math.sqrt(2 * p * (1 - p) / n) - z) == pytest.approx(0.8)
    paired = detectable_difference(n, p, discordant_share=0.2)
    # McNemar: at the returned difference d, the sample size formula gives back n
    needed = (
        z * math.sqrt(0.2) + stats.norm.ppf(0.8) * math.sqrt(0.2 - paired**2)
    ) ** 2 / paired**2
    assert needed == pytest.approx(n)
    assert paired < unpaired  # pairing on the same problems buys resolution
    assert detectable_difference(800, p) < unpaired  # and so do more problems


def test_phase_keys_hold_only_what_decides_each_phase():
    config = ReftStudyConfig()
    other_decoding = ReftStudyConfig(max_new_tokens=256)
    assert phase_key(config, "train") == phase_key(other_decoding, "train")
    assert phase_key(config, "eval") != phase_key(other_decoding, "eval")
    assert phase_key(config, "number") == phase_key(ReftStudyConfig(red_lr=1e-2), "number")
    assert phase_key(config, "projection") != phase_key(ReftStudyConfig(red_lr=1e-2), "projection")
    # a key mixes given fields with defaults; it must survive saving and loading as it is
    tiny = ReftStudyConfig(max_new_tokens=6, swap_ks=(0, 1, 4)).check()
    key = phase_key(tiny, "eval")  # max_new_tokens 6, swap_ks at its default (up to 128)
    assert config_from_dict(ReftStudyConfig, config_to_dict(key)) == key


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(arms=("red_prefix",)), "must include red_all"),
        (dict(swap_ks=(0, 400)), "below max_new_tokens"),
        (dict(steps=3000, batch_size=4), "exceed GSM8K train"),
        (dict(faith_arms=("lora",)), "faith_arms"),
        (dict(test_problems=0), "at least 1"),
    ],
)
def test_bad_settings_are_refused_before_any_work(settings, message):
    with pytest.raises(ValueError, match=message):
        ReftStudyConfig(**settings).check()


def test_cli_refuses_unknown_phases_before_loading_a_model(capsys):
    from interp.cli import main

    assert main(["reft-study", "--phases", "plan,nonsense"]) == 2
    assert "nonsense" in capsys.readouterr().err
    assert main(["reft-study", "--steps", "many"]) == 2
    assert main(["reft-study", "--swap-ks", "0,400", "--max-new-tokens", "384"]) == 2
    assert "below max_new_tokens" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# The whole chain, tiny, on smollm2 (it adds one-digit numbers with NumProbe's prompt)

TINY = reft_study.TINY_SETTINGS


def _files(folder):
    return {p: p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def _refuse(monkeypatch, *targets):
    """Make the heavy functions raise if called: a resumed phase must load, not compute."""

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed something already on disk")

    for module, name in targets:
        monkeypatch.setattr(module, name, refuse)


@pytest.mark.slow
def test_the_whole_chain_stops_continues_and_resumes(smollm2, tmp_path, monkeypatch):
    from interp.analyses import (
        faithfulness,
        math_eval,
        number_probe,
        perturbation,
        prefix_swap,
        projection,
        reft_compare,
        reft_study_budget,
    )

    out = tmp_path / "study"
    # stopped after phase 2 ...
    first = reft_study.Study(smollm2, out, progress=False, **TINY).run(("plan", "number", "train"))
    assert set(first) == {"plan", "number", "train"}
    plan = json.loads((out / "plan.json").read_text())
    assert plan["timing"]["train_full"]["seconds_per_step"] > 0
    assert {r["phase"] for r in plan["budget"]["rows"]} == set(PHASES) - {"plan", "summary"}
    assert plan["power"]["n"] == TINY["test_problems"] and plan["power"]["unpaired"] > 0
    training = first["train"]
    assert training.steps == len(training.tables["pilot"]) or training.steps % 4 == 0
    assert [r["arm"] for r in training.tables["arms"]] == list(reft_study.TRAINABLE_ARMS)
    assert all(r["steps"] == training.steps for r in training.tables["arms"])
    trained = _files(out / "train")

    # ... continued: nothing of phases 0-2 is trained or measured again
    _refuse(monkeypatch, (reft_compare, "train_arm"), (reft_study_budget, "time_training_steps"))
    study = reft_study.Study(smollm2, out, progress=False, **TINY)
    done = study.run()
    assert set(done) == set(PHASES)
    assert {p: t for p, t in _files(out / "train").items() if p in trained} == trained

    rows = done["eval"].rows
    assert [r["arm"] for r in rows] == [
        "base",
        "red_all",
        "red_prefix",
        "red_prefix_pid",
        "red_prefix_pid_kl",
        "red_prefix_pid_reference",
        "lora",
    ]
    assert all(r["n"] == TINY["test_problems"] for r in rows)
    assert all("difference" in r and 0 <= r["mcnemar_p"] <= 1 for r in rows[1:])
    assert rows[4]["mean_edit_stop"] is not None  # the KL arm says where editing stopped
    edits = done["projection"].tables["edits"]
    assert [r["edit"] for r in edits] == ["red_all", "random_matched", "random_reference"]
    # the matched random RED has the trained RED's bias norms
    assert edits[1]["mean_bias_norm"] == pytest.approx(edits[0]["mean_bias_norm"], rel=1e-4)
    assert edits[2]["mean_bias_norm"] == pytest.approx(0.54, rel=1e-4)
    assert all("n_broken" in r and 0 <= r["share_beyond_x_star"] <= 1 for r in edits)
    swap = done["swap"].tables["accuracy"]
    assert {(r["variant"], r["k"]) for r in swap} == {
        (v, k) for v in ("donor_cache", "recompute") for k in TINY["swap_ks"]
    }
    assert all(r["n"] == TINY["swap_problems"] for r in swap)
    control = done["swap"].tables["own_prefix"]  # each cell split by the base's own prefix
    by_cell = {(r["variant"], r["k"]): r for r in swap}
    assert len(control) == len(swap) - 2  # every cell but k = 0
    for r in control:
        assert r["own_n"] + r["other_n"] == TINY["swap_problems"]
        assert r["own_correct"] + r["other_correct"] == by_cell[(r["variant"], r["k"])]["correct"]
    # claim 1 again on each pool size: the first pool is the eval's problems, so its paired
    # comparison is the eval's red_all row, number for number
    pool = done["swap"].tables["pool"]
    assert pool[0]["pool"] == TINY["test_problems"]
    for key in ("difference", "difference_low", "difference_high", "mcnemar_p"):
        assert pool[0][key] == rows[1][key], key
    assert pool[0]["donor_correct"] == rows[1]["correct"]
    faith = done["faithfulness"].tables["per_layer"]
    assert {(r["arm"], r["layer"]) for r in faith} == {
        (a, layer) for a in ("red_all", "red_prefix") for layer in TINY["faith_layers"]
    }
    summary = done["summary"]
    markdown = (out / "summary.md").read_text()
    for row in rows:
        assert f"| {row['arm']}" in markdown
    assert "RED-all against base on the swap's pool" in markdown
    assert f"| {pool[-1]['pool']} | {pool[-1]['base_correct']}/" in markdown
    first = control[0]
    assert f"| {first['variant']} | {first['k']} | " in markdown  # the control table is written
    saved = json.loads((out / "summary.json").read_text())
    assert [r["arm"] for r in saved["tables"]["accuracy"]] == [r["arm"] for r in rows]
    assert summary.meta["anchors"]["red_prefix"] == 85.0
    for name in (*PHASES, "bias_trajectories", "kl_stops", "faithfulness_red_all"):
        assert (out / "figures" / f"{name}.html").exists(), name
    assert len(pool) == 1 and not (out / "figures" / "swap_pool.html").exists()  # one pool: no line
    for phase in PHASES:
        assert (out / "phases" / phase / "interp.json").exists()

    # a third run finds everything on disk: nothing is computed, no file is touched
    everything = _files(out)
    _refuse(
        monkeypatch,
        (math_eval, "run"),
        (projection, "run"),
        (perturbation, "edit_breaks"),
        (prefix_swap, "run"),
        (faithfulness, "run"),
        (number_probe, "run"),
        (reft_study_budget, "measure"),
    )
    again = reft_study.Study(smollm2, out, progress=False, **TINY).run()
    assert again["eval"].rows == rows
    assert _files(out) == everything
    loaded = reft_study.load(out)  # what the notebook reads, without a model
    assert set(loaded) == set(PHASES) and loaded["eval"].rows == rows

    # a study stopped while GSM8K decodes (base and red_all done): the summary reports those two
    # as an interim table, and decodes nothing
    monkeypatch.undo()
    stopped = tmp_path / "stopped"
    shutil.copytree(out, stopped)
    for folder in ("phases/eval", "phases/swap", "phases/summary", "swap"):
        shutil.rmtree(stopped / folder)
    for arm in [r["arm"] for r in rows[2:]]:
        shutil.rmtree(stopped / "eval" / arm)
    decoded = _files(stopped / "eval")
    interim = reft_study.Study(smollm2, stopped, progress=False, **TINY).run(("summary",))
    summary = interim["summary"]
    assert [r["arm"] for r in summary.tables["accuracy"]] == ["base", "red_all"]
    assert summary.tables["accuracy"] == rows[:2]  # the same rows the whole phase gave
    assert summary.meta["eval_interim_arms"] == ["base", "red_all"]
    assert summary.config.summary_phases[-2:] == ("eval:base", "eval:red_all")
    assert (
        "Interim: the arms decoded so far (base, red_all)" in (stopped / "summary.md").read_text()
    )
    assert _files(stopped / "eval") == decoded

    # a study stopped while the swap's pool grows (pools of 3 and 6 decoded, the swap not run):
    # the summary reports claim 1 on those pools, the rows the finished phase gives, and decodes
    # nothing
    growing = tmp_path / "growing"
    shutil.copytree(out, growing)
    for folder in ("phases/swap", "phases/summary", "swap"):
        shutil.rmtree(growing / folder)
    wider = {**TINY, "swap_problems": 5}  # more than 3 problems hold: the pool must grow to 6
    finished = reft_study.Study(smollm2, growing, progress=False, **wider).swap()
    assert [r["pool"] for r in finished.tables["pool"]] == [3, 6]
    for folder in ("phases/swap", "swap/run"):
        shutil.rmtree(growing / folder)
    decoded = _files(growing / "swap")
    summary = reft_study.Study(smollm2, growing, progress=False, **wider).run(("summary",))[
        "summary"
    ]
    assert summary.tables["swap_pool"] == finished.tables["pool"]
    assert "prefix_swap" not in summary.tables
    assert summary.config.summary_phases[-2:] == ("pool:3", "pool:6")
    found = finished.tables["pool"][-1]["found"]
    state = "the last holds the 5 problems" if found >= 5 else "the pool still grows"
    assert (
        f"Interim: the pools decoded so far (3, 6 problems); {state}"
        in (growing / "summary.md").read_text()
    )
    assert _files(growing / "swap") == decoded
    # two pools: claim 1 against n is drawn, interim, from the summary's pool table
    assert (growing / "figures" / "swap_pool.html").exists()
    drawn = pool_figure(summary.tables["swap_pool"], -0.036, interim=True)
    assert list(drawn.data[0].x) == [3, 6]
    assert list(drawn.data[0].y) == [r["difference"] for r in finished.tables["pool"]]


@pytest.mark.slow
def test_a_bfloat16_study_probes_and_projects_in_float32(tmp_path):
    """The number phase and the projections run on a float32 copy (bfloat16 moves x*: README)."""
    from interp.models import load_model
    from interp.results import check_saved_model

    model = load_model("smollm2-135m-instruct", dtype=torch.bfloat16)
    study = reft_study.Study(model, tmp_path / "study", progress=False, **TINY)
    assert study.float32_model is study.float32_model  # loaded once
    assert next(study.float32_model.parameters()).dtype == torch.float32
    probe, sweep = study.probe_and_sweep()
    for saved in (probe, sweep):
        check_saved_model(saved, study.float32_model, tmp_path)
        with pytest.raises(ValueError, match="does not belong"):
            check_saved_model(saved, model, tmp_path)
    float32_study = reft_study.Study(study.float32_model, tmp_path / "other", **TINY)
    assert float32_study.float32_model is study.float32_model  # no second copy
