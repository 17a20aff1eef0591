"""The ReFT study's summary: one table per claim from the saved phases (our numbers with 95%
intervals beside the research note's anchors), as a `StudySummary`, markdown, and figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from interp.analyses.reft_study_config import ANCHORS, KL_ARM
from interp.analyses.reft_study_phases import StudySummary
from interp.figures.common import save_figure
from interp.results import Result
from interp.storage import is_saved


def _pct(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.1%}"


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}"


def build_summary(done: dict[str, Result], key) -> StudySummary:
    """The summary of the saved phases in `done` (by phase name)."""
    tables: dict[str, list[dict[str, Any]]] = {}
    meta: dict[str, Any] = {"anchors": ANCHORS, "phases": sorted(done)}
    if "plan" in done:
        plan = done["plan"].meta["plan"]
        meta["plan"] = {
            "dtype": plan["dtype"],
            "estimated_hours": plan["budget"]["total_hours"],
            "estimated_hours_without_pool_growth": plan["budget"][
                "total_hours_without_pool_growth"
            ],
            "power": plan["power"],
        }
        meta["model"] = plan["model"]
    if "train" in done:
        training = done["train"]
        tables["training"] = training.tables["arms"]
        meta["steps"] = training.meta["steps"]
        meta["steps_rule"] = training.meta["steps_rule"]
    if "eval" in done:
        tables["accuracy"] = done["eval"].rows
        meta["power"] = done["eval"].meta["power"]
        if "interim_arms" in done["eval"].meta:  # GSM8K still decoding: the arms done so far
            meta["eval_interim_arms"] = done["eval"].meta["interim_arms"]
    if "number" in done:
        meta["x_star"] = done["number"].tables["x_star"]
        meta["number_reused"] = done["number"].meta["reused"]
    if "projection" in done:
        tables["number_direction"] = done["projection"].tables["edits"]
    if "swap" in done:
        tables["swap_pool"] = done["swap"].tables["pool"]  # claim 1 again, on each pool size
        if "interim_pools" in done["swap"].meta:  # the pool still grows; no swap yet
            meta["swap_interim_pools"] = done["swap"].meta["interim_pools"]
        else:
            tables["prefix_swap"] = done["swap"].tables["accuracy"]
            tables["prefix_swap_own_prefix"] = done["swap"].tables.get("own_prefix", [])
            meta["swap"] = done["swap"].meta
    if "faithfulness" in done:
        rows = []
        phase = done["faithfulness"]
        for item in phase.tables["likelihood"]:
            arm = item["arm"]
            layers = [r for r in phase.tables["per_layer"] if r["arm"] == arm]
            largest = max(layers, key=lambda r: abs(r["delta_accuracy"]))
            rows.append(
                {
                    "arm": arm,
                    "largest_delta_accuracy": largest["delta_accuracy"],
                    "at_layer": largest["layer"],
                    "mean_delta_accuracy": sum(r["delta_accuracy"] for r in layers) / len(layers),
                    **{k: v for k, v in item.items() if k != "arm"},
                }
            )
        tables["faithfulness"] = rows
        meta["faithfulness_n_test"] = phase.meta.get("n_test")
    meta["cost_hours"] = {p: r.meta.get("seconds", 0.0) / 3600 for p, r in done.items()}
    return StudySummary(config=key, tables=tables, meta=meta)


def _interim_pools_line(rows: list[dict[str, Any]], needed: int, meta: dict[str, Any]) -> str:
    """What an interim pool table is: the pools decoded so far, and whether the last one already
    holds the problems the swap needs (then the swap is what is left) or the pool still grows."""
    sizes = ", ".join(str(n) for n in meta["swap_interim_pools"])
    found = rows[-1]["found"]
    state = (
        f"the last holds the {needed} problems the swap needs ({found} found); the swap has not "
        "finished"
        if found >= needed
        else f"the pool still grows ({found} of the {needed} problems found); the swap has not run"
    )
    return f"\nInterim: the pools decoded so far ({sizes} problems); {state}.\n"


def summary_markdown(summary: StudySummary) -> str:
    """The summary's tables as markdown."""
    t, m = summary.tables, summary.meta
    out: list[str] = [f"# ReFT study: {m.get('model', '')}"]
    if "plan" in m:
        out.append(
            f"\nPlanned: {m['plan']['estimated_hours']:.1f} h in {m['plan']['dtype']} "
            f"({m['plan']['estimated_hours_without_pool_growth']:.1f} h if the swap's pool need not "
            f"grow). Spent: {sum(m['cost_hours'].values()):.1f} h in the invocations that finished "
            f"each phase."
        )
    if "steps_rule" in m:
        out.append(f"\nSteps per arm: {m['steps']} ({m['steps_rule']}).")
    if "accuracy" in t:
        out += [
            "\n## GSM8K (greedy, the same seeded test problems)"
            + (
                f"\n\nInterim: the arms decoded so far ({', '.join(m['eval_interim_arms'])}); "
                "the others are still decoding."
                if "eval_interim_arms" in m
                else ""
            )
            + "\n",
            "| arm | accuracy (95% CI) | minus base (95% CI) | McNemar p | mean tokens | hit cap "
            "| bias norm | research note (Llama-3-8B) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in t["accuracy"]:
            diff = (
                f"{r['difference']:+.1%} ({r['difference_low']:+.1%} to {r['difference_high']:+.1%})"
                if "difference" in r
                else "-"
            )
            anchor = "-" if r.get("anchor") is None else f"{r['anchor']:.1f}"
            stop = (
                f", edits stop at token {r['mean_edit_stop']:.0f}" if "mean_edit_stop" in r else ""
            )
            out.append(
                f"| {r['arm']}{stop} | {r['correct']}/{r['n']} = {_pct(r['accuracy'])} "
                f"({_pct(r['accuracy_low'])}–{_pct(r['accuracy_high'])}) | {diff} | "
                f"{_number(r.get('mcnemar_p'), 2)} | {r['mean_tokens']:.0f} | {_pct(r['cap_rate'])} "
                f"| {_number(r.get('bias_norm'))} | {anchor} |"
            )
        power = m.get("power")
        if power:
            out.append(
                f"\n{power['n']} problems detect (80% power, two-sided 5%) a difference of "
                f"{power['unpaired']:.1%} between independent samples at base accuracy "
                f"{power['base_accuracy']:.1%}; paired, each row's detectable difference follows "
                f"its share of discordant problems (`detectable_difference` in summary.json)."
            )
    if "number_direction" in t:
        out += [
            "\n## The number direction (projection vs x*, and sums broken)\n",
            "| edit | mean bias norm | mean abs projection | largest | share beyond x* | sums broken (95% CI) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in t["number_direction"]:
            broken = (
                f"{r['n_broken']}/{r['n_base_correct']} = {_pct(r['broken_rate'])} "
                f"({_pct(r['broken_low'])}–{_pct(r['broken_high'])})"
                if "n_broken" in r
                else r.get("note", "-")
            )
            out.append(
                f"| {r['description']} | {r['mean_bias_norm']:.3f} | "
                f"{r['mean_abs_projection']:.3g} | {r['max_abs_projection']:.3g} | "
                f"{_pct(r['share_beyond_x_star'])} | {broken} |"
            )
        if "x_star" in m:
            star = m["x_star"][0]
            out.append(
                f"\nx* = {_number(star['x_star'])} probe units at layer {star['layer']} (95% CI "
                f"{_number(star['x_star_low'])} to {_number(star['x_star_high'])})."
            )
    if t.get("swap_pool"):
        out += [
            "\n## RED-all against base on the swap's pool (claim 1 on more problems)\n"
            + (
                _interim_pools_line(t["swap_pool"], summary.config.swap_problems, m)
                if "swap_interim_pools" in m
                else ""
            ),
            "| problems | base | RED-all | minus base (95% CI) | McNemar p | detectable (80% power) "
            "| donor wrong, base right |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in t["swap_pool"]:
            diff = (
                f"{r['difference']:+.1%} ({r['difference_low']:+.1%} to {r['difference_high']:+.1%})"
                if "difference" in r
                else "-"
            )
            base = f"{r['base_correct']}/{r['pool']} = " if "base_correct" in r else ""
            donor = f"{r['donor_correct']}/{r['pool']} = " if "donor_correct" in r else ""
            out.append(
                f"| {r['pool']} | {base}{_pct(r['base_accuracy'])} | {donor}"
                f"{_pct(r['donor_accuracy'])} | {diff} | {_number(r.get('mcnemar_p'), 2)} | "
                f"{_pct(r.get('detectable_difference'))} | {r['found']} |"
            )
    if "prefix_swap" in t:
        rows = t["prefix_swap"]
        swap = m.get("swap", {})
        out.append(
            f"\n## Prefix swap (trained RED-all donor, base continuer, "
            f"{swap.get('n_problems', swap.get('found', 0))} problems)\n"
        )
        if swap.get("note"):
            out.append(f"{swap['note']}\n")
        if rows:
            ks = sorted({r["k"] for r in rows})
            out.append("| variant | " + " | ".join(f"k={k}" for k in ks) + " |")
            out.append("| --- |" + " --- |" * len(ks))
            for variant in dict.fromkeys(r["variant"] for r in rows):
                cells = {r["k"]: r for r in rows if r["variant"] == variant}
                out.append(
                    f"| {variant} | "
                    + " | ".join(
                        f"{cells[k]['correct']}/{cells[k]['n']} ({_pct(cells[k]['low'])}–"
                        f"{_pct(cells[k]['high'])})"
                        for k in ks
                    )
                    + " |"
                )
    if t.get("prefix_swap_own_prefix"):
        out += [
            "\nThe control inside the data: in `recompute`, where RED-all's first k tokens are the "
            "base model's own, the base continues its own answer, so a loss there is numerical "
            "noise on problems the selection made fragile, not the donor's doing (in `donor_cache` "
            "the cache still carries the edit). *Donor's answer ended*: swapped answers that are "
            "RED-all's own (it stopped within k tokens).\n",
            "| variant | k | prefix = base's own: right (95% CI) | prefix differs: right (95% CI) "
            "| donor's answer ended |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in t["prefix_swap_own_prefix"]:
            own, other = (
                f"{r[f'{side}_correct']}/{r[f'{side}_n']} ({_pct(r[f'{side}_low'])}–"
                f"{_pct(r[f'{side}_high'])})"
                if r[f"{side}_n"]
                else "-"
                for side in ("own", "other")
            )
            out.append(f"| {r['variant']} | {r['k']} | {own} | {other} | {r['donor_ended']} |")
    if "faithfulness" in t:
        out += [
            f"\n## Number faithfulness (held-out texts: {m.get('faithfulness_n_test')})\n",
            "| arm | largest change of probe accuracy (layer) | mean change | likelihood score base / arm |",
            "| --- | --- | --- | --- |",
        ]
        for r in t["faithfulness"]:
            out.append(
                f"| {r['arm']} | {r['largest_delta_accuracy']:+.3f} ({r['at_layer']}) | "
                f"{r['mean_delta_accuracy']:+.3f} | {_number(r.get('base_likelihood_accuracy'))} / "
                f"{_number(r.get('edited_likelihood_accuracy'))} |"
            )
    return "\n".join(out)


def write_figures(done: dict[str, Result], out: str | Path) -> list[Path]:
    """Every figure of the study into `out/figures/` (PNG where static export works, and HTML)."""
    from interp.analyses.faithfulness_difference import FaithfulnessComparison
    from interp.analyses.math_eval import MathEvalResult
    from interp.analyses.prefix_swap import PrefixSwapResult
    from interp.figures import reft_study as figures
    from interp.figures.training import bias_trajectories_figure

    out = Path(out)
    folder = out / "figures"
    written = []

    def save(figure, name: str) -> None:
        save_figure(figure, folder / f"{name}.png")
        written.append(folder / f"{name}.png")

    for phase, result in done.items():
        if phase == "swap" and "interim_pools" in result.meta:
            continue  # a pool table, no swap to draw
        save(result.figure(), phase)
    if "train" in done:
        try:
            save(bias_trajectories_figure(out), "bias_trajectories")
        except FileNotFoundError:
            pass
    kl_arm = out / "eval" / KL_ARM
    if "eval" in done and is_saved(kl_arm):
        save(figures.kl_stops_figure(MathEvalResult.load(kl_arm)), "kl_stops")
    summary = done.get("summary")
    if summary is not None and len(summary.tables.get("swap_pool", [])) >= 2:
        save(summary.pool_figure(), "swap_pool")
    if "swap" in done and is_saved(out / "swap" / "run" / "swap"):
        swap = PrefixSwapResult.load(out / "swap" / "run" / "swap")
        if swap.config.closeness:
            save(swap.closeness_figure(), "swap_closeness")
    if "faithfulness" in done:
        for item in done["faithfulness"].tables["likelihood"]:
            path = out / "faithfulness" / f"difference_{item['arm']}"
            if is_saved(path):
                save(FaithfulnessComparison.load(path).figure(), f"faithfulness_{item['arm']}")
    return written


__all__ = ["build_summary", "summary_markdown", "write_figures"]
