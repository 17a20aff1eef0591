"""The PID comparison (`python -m interp pid-compare`): the same RED trained once per bias-control
form of `interp.training.pid` ("none", "loss_scale" as in the BREP study's code, arXiv 2511.10707,
"penalty", "lr"), from the same seed, to compare how well each holds the bias norm at its target.

    runs = compare_forms(model, pairs, target=0.5, learning_rate=2e-2, epochs=12)
    summary_rows(runs, target=0.5)      # final norm, distance to the target, weight, held-out loss
    bias_control_figure(runs, target=0.5)

`adder_suffix_pairs` is the toy task used on the adder: write each sum followed by "=", a format
the adder never saw, so a RED has something to learn and its bias norm grows past the target.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interp.interventions import RED, Edit
from interp.models.fingerprint import fingerprint_difference, model_fingerprint
from interp.storage import is_saved
from interp.training.data import Pair
from interp.training.pid import FORMS, BiasControl
from interp.training.trainer import TrainResult, held_out_loss, train


def adder_suffix_pairs(n: int, seed: int) -> list[Pair]:
    """Four-digit sums whose answers end in '=' (a format the toy adder was never trained on)."""
    from interp.models.adder import adder_prompt, sample_problems

    return [Pair(adder_prompt(a, b), f"{a + b}=") for a, b in sample_problems(n, seed)]


def red_everywhere(model, hook: str = "hook_mlp_out") -> list[Edit]:
    """A fresh RED at `hook` in every block (MLP width for mlp.* hooks)."""
    width = model.cfg.d_mlp if hook.startswith("mlp.") else model.cfg.d_model
    return [Edit(f"blocks.{layer}.{hook}", RED(width)) for layer in range(model.cfg.n_layers)]


def compare_forms(
    model,
    pairs: Sequence[Pair],
    *,
    held_out: Sequence[Pair] | None = None,
    forms: Sequence[str] = ("none", *FORMS),
    target: float = 0.54,
    hook: str = "hook_mlp_out",
    out: str | os.PathLike | None = None,
    progress: bool = False,
    **train_kwargs: Any,
) -> dict[str, TrainResult]:
    """One training run per form ('none' = no control) from the same seed; saved under `out/<form>`."""
    runs = {}
    for form in forms:
        if form != "none" and form not in FORMS:
            raise ValueError(f"unknown form {form!r}; use 'none' or one of {FORMS}")
        folder = Path(out) / form if out is not None else None
        control = None if form == "none" else BiasControl(form=form, target=target)
        if folder is not None and is_saved(folder):
            saved = TrainResult.load(folder)
            same_model = not fingerprint_difference(
                saved.meta.get("fingerprint"), model_fingerprint(model)
            )
            if saved.config.bias_control == control and same_model:
                runs[form] = saved
                continue
        edit_list = red_everywhere(model, hook)
        result = train(
            model,
            pairs,
            edit_list=edit_list,
            bias_control=control,
            progress=progress,
            **train_kwargs,
        )
        if held_out:
            result.meta["held_out_loss"] = held_out_loss(model, held_out, edit_list=edit_list)
        if folder is not None:
            result.save(folder, model=model)
        runs[form] = result
    return runs


def summary_rows(runs: dict[str, TrainResult], target: float, last: int = 24) -> list[dict]:
    """Final norm, mean distance to the target over the last steps, final weight, held-out loss."""
    rows = []
    for form, result in runs.items():
        history = result.history
        tail = history[-last:]
        rows.append(
            {
                "form": form,
                "final_bias_norm": history[-1]["bias_norm"],
                "mean_abs_error_tail": sum(abs(r["bias_norm"] - target) for r in tail) / len(tail),
                "final_weight": history[-1].get("control_weight"),
                "held_out_loss": result.meta.get("held_out_loss"),
            }
        )
    return rows
