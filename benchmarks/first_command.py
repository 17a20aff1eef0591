"""The README's first command (`python -m interp number-probe`) at an earlier revision and now,
in turns on the same machine: wall time of each, their ratio, and whether the tables agree.

Each revision runs from its own git worktree (so `python -m interp` imports that revision's
package) with the same weights cache, into its own output folder; a finished run is kept, so the
script can be stopped and run again. The table compares the saved results: the held-out R²
per layer of the sum probe, x* with its interval, and how many sums the random RED breaks.

    cd benchmarks && ../.venv/bin/python first_command.py --before b13b4e1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worktree(revision: str, folder: Path) -> Path:
    """A checkout of `revision` at `folder` (made once)."""
    if not (folder / "interp").exists():
        subprocess.run(
            ["git", "worktree", "add", "--force", "--detach", str(folder), revision],
            cwd=ROOT,
            check=True,
        )
    return folder


def run_command(tree: Path, out: Path, extra: list[str]) -> dict:
    """Run the first command from `tree` into `out` once; its wall time, load and output."""
    record = out / "first_command.json"
    if record.exists():
        return json.loads(record.read_text())
    out.mkdir(parents=True, exist_ok=True)
    load_before, start = os.getloadavg()[0], time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "interp", "number-probe", "--out", str(out / "run"), *extra],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{tree}: the command failed:\n{done.stderr[-3000:]}")
    result = {
        "seconds": seconds,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "stdout": done.stdout,
    }
    record.write_text(json.dumps(result, indent=1))
    return result


def summary(run: Path, stdout: str) -> dict:
    """R² of the sum probe per layer (as saved), x* with its interval and the edit check (as
    printed: the saved sweep's format differs between revisions)."""
    from interp.analyses import number_probe

    probe = number_probe.NumberProbeResult.load(run / "probe")
    x_star = re.search(
        r"x\* at layer (\d+): ([\d.]+) probe units \(95% CI ([\d.]+)\.\.([\d.]+)\)", stdout
    )
    broken = re.search(r"breaks (\d+) of (\d+) problems", stdout)
    return {
        "r2_last": dict(zip(probe.layers, probe.r2("last"))),
        "x_star": None if x_star is None else [float(g) for g in x_star.groups()],
        "broken": None if broken is None else [int(g) for g in broken.groups()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the earlier revision (a commit)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "first_command")
    parser.add_argument("--extra", default="", help="more arguments for both runs")
    args = parser.parse_args()
    extra = args.extra.split()
    trees = {
        "before": worktree(args.before, args.out / "trees" / args.before),
        "now": ROOT,
    }
    results = {name: run_command(tree, args.out / name, extra) for name, tree in trees.items()}
    tables = {name: summary(args.out / name / "run", r["stdout"]) for name, r in results.items()}
    before, now = results["before"]["seconds"], results["now"]["seconds"]
    print(
        f"before ({args.before}): {before / 60:.1f} min (load {results['before']['load_before']:.1f})"
    )
    print(
        f"now: {now / 60:.1f} min (load {results['now']['load_before']:.1f}); now / before = {now / before:.2f}"
    )
    gaps = [
        abs(tables["now"]["r2_last"][layer] - r2)
        for layer, r2 in tables["before"]["r2_last"].items()
        if layer in tables["now"]["r2_last"]
    ]
    print(f"sum probe R² (last position): largest gap over {len(gaps)} layers {max(gaps):.1e}")
    for name in ("before", "now"):
        print(
            f"{name}: x* (layer, value, CI) {tables[name]['x_star']}; the random RED breaks {tables[name]['broken']}"
        )


if __name__ == "__main__":
    main()
