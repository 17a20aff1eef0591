"""The summary of scripts/gpu_check.sh: how each step ended, the device tests' counts, and the
benchmark numbers of benchmarks/gpu_shapes.py (its `GPU_SHAPES_RESULT` lines) as short tables.

    python benchmarks/gpu_summary.py OUT_FOLDER      # reads steps.tsv and every *.log there
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

RESULT_PREFIX = "GPU_SHAPES_RESULT "
WAYS = ("hf", "hf_hook", "interp", "interp_edit")
# pytest's closing line: "===== 3 failed, 21 passed in 80.12s (0:01:20) =====", or with -q
# and its output piped (as gpu_check.sh runs it) "25 passed in 4.12s"
PYTEST_CLOSING = re.compile(r"^(?:=+ )?(\d+ [a-z]+\b.* in [\d.]+s.*?)(?: =+)?$")
# pytest -q's progress lines, e.g. "..F.s....  [ 40%]"
PYTEST_PROGRESS = re.compile(r"^[.FEsxX]+( +\[ *\d+%\])?$")
PROGRESS_MARKS = {".": "passed", "F": "failed", "E": "errors", "s": "skipped"}


def steps(folder: Path) -> list[tuple[str, str, str]]:
    """(step, exit status, seconds) of each step, as scripts/gpu_check.sh wrote them."""
    table = folder / "steps.tsv"
    if not table.is_file():
        return []
    return [tuple(line.split("\t")[:3]) for line in table.read_text().splitlines() if line.strip()]


def pytest_closing(log: Path) -> str:
    """pytest's closing line or, for a run stopped before it, the outcomes its progress shows."""
    lines = log.read_text(errors="replace").splitlines()
    for line in reversed(lines):
        match = PYTEST_CLOSING.match(line.strip())
        if match:
            return match.group(1)
    progress = "".join(line.split(" [")[0] for line in lines if PYTEST_PROGRESS.match(line.strip()))
    counts = {word: progress.count(mark) for mark, word in PROGRESS_MARKS.items()}
    shown = ", ".join(f"{n} {word}" for word, n in counts.items() if n)
    return f"stopped before the end: {shown or 'no test finished'}"


def results(folder: Path) -> list[dict]:
    found = []
    for log in sorted(folder.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(RESULT_PREFIX):
                found.append(json.loads(line[len(RESULT_PREFIX) :]))
    return found


def status_word(code: str) -> str:
    return {"0": "ok", "124": "TIMED OUT", "137": "KILLED"}.get(code, f"FAILED (exit {code})")


def print_summary(folder: Path) -> None:
    print("=" * 100)
    print("GPU check summary")
    for step, code, seconds in steps(folder):
        line = f"  {step:28s} {status_word(code):18s} {seconds:>6s} s"
        log = folder / f"{step}.log"
        if step.startswith("tests") and log.is_file():
            line += f"   pytest: {pytest_closing(log)}"
        print(line)
    found = results(folder)
    for failed in (r for r in found if r.get("error")):
        print(f"  {failed['shape']} {failed['part']}: ERROR {failed['error']}")
    by_part: dict[str, list[dict]] = {}
    for result in found:
        if not result.get("error"):
            by_part.setdefault(result["part"], []).append(result)
    if by_part.get("decode"):
        first = by_part["decode"][0]
        n_new = first.get("new_tokens", "")
        print(f"decoding, greedy, EOS ignored, {first['dtype']} ({n_new} new tokens); tokens/s:")
        print(
            "  shape  batch        hf   hf+hook    interp  interp+edit | interp/hf  edit/hf  "
            "edit/hook  same tokens as hf"
        )
        for result in by_part["decode"]:
            speeds = {(r["batch"], r["way"]): r["tokens_per_s"] for r in result["rows"]}
            for batch in sorted({b for b, _ in speeds}):
                ratios = result["ratios"][f"batch{batch}"]
                cells = "".join(f"{speeds.get((batch, w), float('nan')):10.1f}" for w in WAYS)
                print(
                    f"  {result['shape']:5s} {batch:6d} {cells}   | {ratios['interp/hf']:8.3f}x "
                    f"{ratios['interp_edit/hf']:7.3f}x {ratios['interp_edit/hf_hook']:9.3f}x  "
                    f"{result['token_agreement_with_hf']:.1%}"
                )
    for result in by_part.get("bandwidth", []):
        sheet = result.get("datasheet_GBps")
        print(
            f"batch-1 decoding against memory bandwidth, {result['shape']} on "
            f"{result['device_name']}: {result['weight_bytes_per_token'] / 1e9:.3f} GB of weights "
            f"per token; copy bandwidth measured {result['copy_GBps']:.0f} GB/s"
            + (f", datasheet {sheet:.0f} GB/s" if sheet else "")
            + f"; bf16 matmul {result['matmul_bf16_TFLOPs']:.0f} TFLOP/s"
        )
        for way, share in result["batch1"].items():
            of_sheet = share.get("share_of_datasheet")
            print(
                f"  {way:12s} {share['tokens_per_s']:8.1f} tokens/s = {share['achieved_GBps']:7.1f} "
                f"GB/s: {share['share_of_copy']:6.1%} of the measured copy bandwidth"
                + (f", {of_sheet:6.1%} of the datasheet's" if of_sheet is not None else "")
            )
    for result in by_part.get("sweep", []):
        print(
            f"push sweep, {result['shape']}: {result['problems']} problems x "
            f"{result['strengths']} strengths, {result['sweep_s']:.2f} s against "
            f"{result['full_s']:.2f} s of full forwards ({result['speedup']:.1f}x); outcomes "
            f"identical at {result['agreement']:.0%} of the strengths"
        )
    for result in by_part.get("train", []):
        print(
            f"RED training step, {result['shape']}, batch {result['batch']}: "
            f"{result['red_step_s'] * 1e3:.1f} ms against {result['plain_step_s'] * 1e3:.1f} ms "
            f"for a plain forward + backward ({result['ratio']:.2f}x), "
            f"{result['red_TFLOPs']:.1f} TFLOP/s"
        )
    print("=" * 100)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/gpu_summary.py OUT_FOLDER")
    print_summary(Path(sys.argv[1]))
