"""Float32 with bfloat16 matrix products: does the first command keep its table, and how much faster?

`torch.set_float32_matmul_precision("medium")` keeps every tensor in float32 (the residual stream,
norms, attention, the logits) and lets the matrix products round their inputs to bfloat16 on a
CPU with bf16 units. It is the last way to use those units short of a bfloat16 model, which moves
the number probe beyond its noise (the README's agreement table). This runs the first command's
steps (`python -m interp number-probe`: the number probe, the push sweep at its best layer with
the bracketing, the random RED's edit check) with full float32 products and with bfloat16 ones,
side by side in one process on the same loaded model, and prints the agreement and the times.

    cd benchmarks && ../.venv/bin/python matmul_precision.py [--out DIR]
    ../.venv/bin/python matmul_precision.py --whole-command    # the whole command, in turns

Both sweeps push along the full-float32 probe, so the sweeps differ by their products alone. A
third sweep, with bfloat16 products on the full-float32 run's strength grid, compares outcomes
strength by strength on the problems both unedited runs get right.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from interp.analyses import number_probe, perturbation  # noqa: E402
from interp.interventions.random_red import random_red_edits  # noqa: E402
from interp.models import load_model  # noqa: E402
from interp.results import write_json_atomic  # noqa: E402

MODEL = "qwen2.5-coder-0.5b-instruct"
PRECISIONS = ("highest", "medium")  # full float32 products; bfloat16 products
SWEEP = dict(digits=4, n_problems=300, seed=1, batch_size=32)  # the first command's sweep
RED_BIAS_NORM = 0.54  # the first command's random RED


def timed(work, *args, **kwargs):
    """`work(*args, **kwargs)` and its wall time in seconds."""
    start = time.perf_counter()
    result = work(*args, **kwargs)
    return result, time.perf_counter() - start


def probe_agreement(full, bf16) -> dict:
    """R² gaps per position (bf16 products minus full float32, per layer, and the largest),
    penalties that moved, the best layer's direction and unit."""
    gaps = {}
    for position in full.config.positions:
        gap = torch.tensor(bf16.r2(position)) - torch.tensor(full.r2(position))
        gaps[position] = {
            "largest_r2_gap": float(gap.abs().max()),
            "at_layer": int(gap.abs().argmax()),
            "per_layer": [round(g, 5) for g in gap.tolist()],
        }
    moved = (full.tensors["ridge_alphas"] != bf16.tensors["ridge_alphas"]).nonzero().tolist()
    layer = full.best_layer()
    return {
        "r2": gaps,
        "penalties_moved": [[full.config.positions[p], full.layers[i]] for p, i in moved],
        "best_layer": [layer, bf16.best_layer()],
        "direction_cosine_at_best_layer": float(full.direction(layer) @ bf16.direction(layer)),
        "unit_length_at_best_layer": [full.unit_length(layer), bf16.unit_length(layer)],
    }


def sweep_summary(sweep) -> dict:
    layer = sweep.layers[0]
    grid = sweep.tensors["signed_strengths"][0]
    return {
        "layer": layer,
        "x_star": sweep.x_star(layer),
        "x_star_interval": list(sweep.x_star_interval(layer)),
        "grid": grid[grid > 0].tolist(),
        "base_correct": int(sweep.tensors["base_correct"].sum()),
    }


def outcome_agreement(full, same_grid) -> dict:
    """Share of identical (problem, strength) outcomes on the problems both unedited runs get right."""
    both = full.tensors["base_correct"] & same_grid.tensors["base_correct"]

    def on_both(sweep):  # errors columns are the sweep's own correct problems, in problem order
        columns = both[sweep.tensors["base_correct"]]
        return sweep.tensors["errors"][0][:, columns]

    a, b = on_both(full), on_both(same_grid)
    base_same = full.tensors["base_correct"] == same_grid.tensors["base_correct"]
    return {
        "unedited_outcomes_identical": [int(base_same.sum()), len(base_same)],
        "sweep_outcomes_identical": [int((a == b).sum()), a.numel()],
    }


def whole_command(precision: str, out: Path) -> dict:
    """`python -m interp number-probe` with float32 products at `precision`, in its own process:
    its wall time and the lines of its table that carry x* and the edit's breaks."""
    code = (
        f"import sys, torch; torch.set_float32_matmul_precision({precision!r}); "
        "from interp.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    arguments = ["number-probe", "--out", str(out / precision), "--no-resume"]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *arguments], cwd=ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the command failed at precision {precision}:\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if "x*" in line or "breaks" in line]
    return {"seconds": seconds, "table": lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "matmul_precision")
    parser.add_argument(
        "--whole-command",
        action="store_true",
        help="time the whole first command at each precision, in turns, in its own process",
    )
    args = parser.parse_args()
    try:  # before minutes of work: a folder that cannot be made fails now, not at the end
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"--out {args.out}: {error}")
    if args.whole_command:
        runs = {precision: whole_command(precision, args.out) for precision in PRECISIONS}
        write_json_atomic(args.out / "whole_command.json", runs)
        for precision, run in runs.items():
            print(f"{precision}: {run['seconds']:.0f} s", *run["table"], sep="\n  ")
        print(f"ratio: {runs['medium']['seconds'] / runs['highest']['seconds']:.2f}x")
        return
    model = load_model(MODEL, dtype=torch.float32)
    red = random_red_edits(model, RED_BIAS_NORM, seed=0)
    times: dict[str, dict[str, float]] = {}
    probes, sweeps, breaks = {}, {}, {}
    try:
        for precision in PRECISIONS:
            torch.set_float32_matmul_precision(precision)
            print(f"float32 matrix products at precision {precision!r}", flush=True)
            probes[precision], t_probe = timed(number_probe.run, model)
            # both sweeps along the full-float32 probe: they differ by their products alone
            sweeps[precision], t_sweep = timed(perturbation.run, model, probes["highest"], **SWEEP)
            unedited = sweeps[precision].tensors["base_correct"]
            breaks[precision], t_edit = timed(
                perturbation.edit_breaks, model, red, unedited_correct=unedited, **SWEEP
            )
            times[precision] = {"probe": t_probe, "sweep": t_sweep, "edit_check": t_edit}
        # still "medium": bfloat16 products on the full-float32 run's strength grid
        grid = sweep_summary(sweeps["highest"])["grid"]
        same_grid = perturbation.run(model, probes["highest"], strengths=grid, **SWEEP)
    finally:
        torch.set_float32_matmul_precision("highest")
    result = {
        "model": MODEL,
        "cpu_threads": torch.get_num_threads(),
        "seconds": times,
        "probe": probe_agreement(probes["highest"], probes["medium"]),
        "sweep": {p: sweep_summary(sweeps[p]) for p in PRECISIONS},
        "outcomes_on_the_same_grid": outcome_agreement(sweeps["highest"], same_grid),
        "edit_breaks": {
            p: [breaks[p]["n_broken"], breaks[p]["n_base_correct"]] for p in PRECISIONS
        },
    }
    write_json_atomic(args.out / "matmul_precision.json", result)
    print(json.dumps(result, indent=1))
    print("\n| part | full float32 | bfloat16 products | ratio |\n| --- | --- | --- | --- |")
    for part in times["highest"]:
        full, bf16 = times["highest"][part], times["medium"][part]
        print(f"| {part} | {full:.0f} s | {bf16:.0f} s | {bf16 / full:.2f}x |")


if __name__ == "__main__":
    main()
