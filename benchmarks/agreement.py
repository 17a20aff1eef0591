"""Do bfloat16 runs give the float32 answers? Each analysis in both dtypes, same seeds, one table.

Issue 19's agreement table on qwen2.5-coder-0.5b-instruct: probe held-out R² per layer, push-sweep
outcomes and x*, greedy GSM8K on 100 problems, thought-state separability, faithfulness probe
accuracy per layer, and RED training curves on the toy adder and smollm2. Hours of CPU, so every
(step, dtype) runs in its own process into `OUT/DTYPE/STEP` through the project's resume path and is
skipped once done: run the same command again after a stop and it goes on where it stopped.

    cd benchmarks && ../.venv/bin/python agreement.py                 # everything, then the table
    ../.venv/bin/python agreement.py --steps number_probe,gsm8k       # some steps
    ../.venv/bin/python agreement.py --table-only                     # the table from what is done

Wall times are recorded for runs that went start to finish in one process (`timing.json`); a
resumed run is marked so, since its time is not comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from interp.core.float32_confirmation import DEFAULT_MARGIN  # noqa: E402
from interp.results import write_json_atomic  # noqa: E402
from interp.stats import wilson_interval  # noqa: E402

MODEL = "qwen2.5-coder-0.5b-instruct"
DTYPES = ("float32", "bfloat16")
STRENGTHS = "0.25,0.5,1,2,4,8,16,32,64"  # the README's sweep grid
STEPS = (
    "number_probe",
    # bf16 sweeps at the float32 run's layer with its grid (the two probes may pick other best
    # layers): bf16's own outcomes, and with the close calls decided in float32
    "sweep_raw",
    "sweep_confirmed",
    "gsm8k",
    "thought_states",
    # qwen's GSM8K answers hold one reflection in 523 thoughts: separability needs the organism
    "thought_states_organism",
    "faithfulness",
    "probe_noise",  # the probe R² of layers 0-3 on other seeds: the noise a dtype gap is judged by
    "train_adder",
    "train_adder_seed1",  # float32 only, like train_smollm2_seed1
    "train_smollm2",
    "train_smollm2_seed1",  # float32 only: the seed-to-seed noise the dtype gap is judged against
)
FLOAT32_ONLY = {"train_adder_seed1", "train_smollm2_seed1"}
BFLOAT16_ONLY = {"sweep_raw", "sweep_confirmed"}
SMOLLM2_TRAIN = [
    "--model", "smollm2-135m-instruct", "--edit", "red", "--n-train", "64", "--max-steps", "32",
    "--batch-size", "4", "--max-answer-tokens", "96", "--lr", "2e-3",
]  # fmt: skip


def cli(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "interp", *arguments]


def step_command(step: str, dtype: str, folder: Path) -> list[str]:
    """The command that computes one (step, dtype) into `folder` (resumable where it is long)."""
    if step == "number_probe":
        return cli("number-probe", "--strengths", STRENGTHS, "--dtype", dtype, "--out", str(folder))
    if step == "gsm8k":
        return cli(
            "math-eval", "--dataset", "gsm8k", "--split", "test", "--n-problems", "100",
            "--seed", "0", "--max-new-tokens", "384", "--dtype", dtype, "--out", str(folder),
        )  # fmt: skip
    if step == "train_smollm2":
        return cli("train", *SMOLLM2_TRAIN, "--seed", "0", "--dtype", dtype, "--out", str(folder))
    if step == "train_smollm2_seed1":
        return cli("train", *SMOLLM2_TRAIN, "--seed", "1", "--dtype", dtype, "--out", str(folder))
    return [sys.executable, __file__, "--one", step, "--dtype", dtype, "--out", str(folder)]


def run_step(step: str, dtype: str, out: Path) -> None:
    """Compute one (step, dtype) unless done; time it when it runs start to finish here."""
    folder = out / dtype / step
    timing = folder / "timing.json"
    if timing.exists():
        return
    resumed = folder.exists() and any(folder.iterdir())
    folder.mkdir(parents=True, exist_ok=True)
    print(f"== {step} ({dtype}) -> {folder}", flush=True)
    load_before, start = os.getloadavg()[0], time.perf_counter()
    subprocess.run(step_command(step, dtype, folder), check=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    # the load average says whether other work shared the cores (times are then not comparable)
    load = {"load_before": load_before, "load_after": os.getloadavg()[0]}
    write_json_atomic(timing, {"seconds": seconds, "resumed": resumed, **load})
    print(f"== {step} ({dtype}) done in {seconds / 60:.1f} min", flush=True)


# --- steps that run in this script's own process --------------------------------------------


def sweep_step(dtype: str, out: Path, margin: float | None) -> None:
    """The number-probe command's sweep in `dtype` at the float32 sweep's layer and grid, with
    its own probe; `margin` None: no float32 confirmation."""
    from interp import load_model
    from interp.analyses import number_probe, perturbation
    from interp.data.arithmetic import with_prompt_template
    from interp.results import reuse_or_run

    runs = out.parent.parent
    reference = perturbation.PerturbationResult.load(runs / "float32" / "number_probe" / "sweep")
    probe = number_probe.NumberProbeResult.load(runs / dtype / "number_probe" / "probe")
    model = load_model(MODEL, dtype=dtype)
    options = dict(
        layers=tuple(reference.layers),
        strengths=tuple(reference.config.strengths),
        digits=reference.config.digits,
        n_problems=reference.config.n_problems,
        seed=reference.config.seed,
        batch_size=reference.config.batch_size,
        float32_confirmation_margin=margin,
    )
    config = with_prompt_template(perturbation.PerturbationConfig(**options), model.tokenizer)
    reuse_or_run(
        out / "result",
        perturbation.PerturbationResult,
        config,
        lambda: perturbation.run(model, probe, **options),
        True,
        model=model,
    )


def thought_states_step(dtype: str, out: Path) -> None:
    """Separability of boundary states on the same texts in both dtypes: the float32 GSM8K answers."""
    from interp.analyses import math_eval
    from interp.text.thoughts import Response

    answers = math_eval.MathEvalResult.load(out.parent.parent / "float32" / "gsm8k")
    responses = [
        Response(
            id=str(row["id"]),
            prompt_tokens=row["prompt_tokens"],
            tokens=row["output_tokens"],
            correct=row["correct"],
            source="gsm8k",
        )
        for row in answers.rows
    ]
    separability(MODEL, dtype, responses, "response", out)


ORGANISM_RESPONSES = ROOT / "runs" / "seal_organism" / "responses.jsonl"


def thought_states_organism_step(dtype: str, out: Path) -> None:
    """Separability on the SEAL organism (`reasoner`, which reflects) in both dtypes, on the same
    sampled responses: split A of the README's organism run."""
    from interp.data.jsonl import read_jsonl
    from interp.text.thoughts import Response

    if not ORGANISM_RESPONSES.exists():
        raise SystemExit(
            f"{ORGANISM_RESPONSES} is missing: run the README's SEAL organism command first"
        )
    responses = [Response.from_dict(row) for row in read_jsonl(ORGANISM_RESPONSES)]
    separability("reasoner", dtype, responses, "think", out)


def separability(model_name: str, dtype: str, responses, span: str, out: Path) -> None:
    """Thought states of `responses` on `model_name` in `dtype`, saved (and resumed) in `out`."""
    from interp import load_model
    from interp.analyses import thought_states
    from interp.results import reuse_or_run

    model = load_model(model_name, dtype=dtype)
    options = dict(span=span, store=str(out / "chunks"), tsne_layers=(), seed=0)
    config = thought_states.make_config(model, responses, **options)
    reuse_or_run(
        out / "result",
        thought_states.ThoughtStatesResult,
        config,
        lambda: thought_states.run(model, responses, **options),
        True,
        model=model,
    )


def faithfulness_step(dtype: str, out: Path) -> None:
    """The README's faithfulness probes (120 triples, 2 facts per question), base model only."""
    from interp import load_model
    from interp.analyses import faithfulness
    from interp.results import reuse_or_run

    model = load_model(MODEL, dtype=dtype)
    options = dict(n_triples=120, facts_per_question=2, max_prompt_tokens=56, seed=0)
    reuse_or_run(
        out / "result",
        faithfulness.FaithfulnessResult,
        faithfulness.FaithfulnessConfig(**options),
        lambda: faithfulness.run(model, **options),
        True,
        model=model,
    )


NOISE_SEEDS, NOISE_LAYERS = (1, 2, 3), (0, 1, 2, 3)


def probe_noise_step(dtype: str, out: Path) -> None:
    """The number-probe command's probes at layers 0-3 on other seeds (other problems, other
    split): how much the held-out R² of a layer moves from seed to seed, and the dtype gap there."""
    from interp import load_model
    from interp.analyses import number_probe
    from interp.data.arithmetic import with_prompt_template
    from interp.results import reuse_or_run

    model = load_model(MODEL, dtype=dtype)
    for seed in NOISE_SEEDS:
        options = dict(layers=NOISE_LAYERS, seed=seed)
        config = with_prompt_template(number_probe.NumberProbeConfig(**options), model.tokenizer)
        reuse_or_run(
            out / f"seed{seed}",
            number_probe.NumberProbeResult,
            config,
            lambda options=options: number_probe.run(model, **options),
            True,
            model=model,
        )


def train_adder_step(dtype: str, out: Path, seed: int = 0) -> None:
    """A RED on every MLP output of the toy adder learns a new answer format (3 epochs)."""
    import torch

    from interp import load_model
    from interp.interventions import RED, Edit
    from interp.models.adder import sample_problems
    from interp.training.data import Pair
    from interp.training.trainer import train

    model = load_model("adder4", dtype=dtype)
    torch.manual_seed(seed)
    edit_list = [Edit(f"blocks.{i}.hook_mlp_out", RED(model.cfg.d_model)) for i in range(4)]
    pairs = [Pair(f"{a}+{b}=", f"{a + b}=") for a, b in sample_problems(64, seed)]
    result = train(
        model, pairs, edit_list=edit_list, learning_rate=2e-2, batch_size=8, epochs=3,
        seed=seed, progress=False,
    )  # fmt: skip
    result.save(out / "result")


ONE_PROCESS_STEPS = {
    "sweep_raw": lambda dtype, out: sweep_step(dtype, out, None),
    "sweep_confirmed": lambda dtype, out: sweep_step(dtype, out, DEFAULT_MARGIN),
    "thought_states": thought_states_step,
    "thought_states_organism": thought_states_organism_step,
    "faithfulness": faithfulness_step,
    "probe_noise": probe_noise_step,
    "train_adder": train_adder_step,
    "train_adder_seed1": lambda dtype, out: train_adder_step(dtype, out, seed=1),
}


# --- the table ----------------------------------------------------------------------------------


def loaded(out: Path, step: str, dtype: str):
    """The saved result of (step, dtype), or None while it is not done."""
    folder = out / dtype / step
    if not (folder / "timing.json").exists():
        return None
    from interp.analyses import faithfulness, math_eval, number_probe, perturbation, thought_states
    from interp.training.trainer import TrainResult

    if step == "number_probe":
        return (
            number_probe.NumberProbeResult.load(folder / "probe"),
            perturbation.PerturbationResult.load(folder / "sweep"),
        )
    if step.startswith("sweep_"):
        return perturbation.PerturbationResult.load(folder / "result")
    if step == "gsm8k":
        return math_eval.MathEvalResult.load(folder)
    if step.startswith("thought_states"):
        return thought_states.ThoughtStatesResult.load(folder / "result")
    if step == "faithfulness":
        return faithfulness.FaithfulnessResult.load(folder / "result")
    if step == "probe_noise":
        return [number_probe.NumberProbeResult.load(folder / f"seed{s}") for s in NOISE_SEEDS]
    if step.startswith("train_adder"):
        return TrainResult.load(folder / "result")
    return TrainResult.load(folder / "history")  # the train command's layout


def minutes(out: Path, step: str, dtype: str) -> str:
    path = out / dtype / step / "timing.json"
    if not path.exists():
        return "–"
    record = json.loads(path.read_text())
    notes = ["resumed"] if record["resumed"] else []
    if max(record.get("load_before", 0), record.get("load_after", 0)) > 3:
        notes.append(f"load {record['load_before']:.0f}–{record['load_after']:.0f} on 2 cores")
    return f"{record['seconds'] / 60:.1f} min" + (f" ({', '.join(notes)})" if notes else "")


def share(k: int, n: int) -> str:
    low, high = wilson_interval(k, n)
    return f"{k}/{n} = {100 * k / n:.1f}% (95% CI {100 * low:.1f}–{100 * high:.1f}%)"


def number_probe_rows(f32, bf16) -> list[tuple[str, str, str, str]]:
    (probe32, sweep32), (probe16, sweep16) = f32, bf16
    rows = []
    for position in probe32.config.positions:
        r32, r16 = probe32.r2(position), probe16.r2(position)
        gap = max(abs(a - b) for a, b in zip(r32, r16))
        layer = max(range(len(r32)), key=lambda i: abs(r32[i] - r16[i]))
        rows.append(
            (
                f"probe held-out R² per layer ({position} position)",
                f"best {max(r32):.4f} (layer {probe32.best_layer(position)})",
                f"best {max(r16):.4f} (layer {probe16.best_layer(position)})",
                f"largest gap {gap:.4f} (layer {probe32.layers[layer]}); target ≤ 0.01",
            )
        )
    base32, base16 = sweep32.tensors["base_correct"], sweep16.tensors["base_correct"]
    rows.append(
        (
            "unedited four-digit sums right (300)",
            f"{int(base32.sum())}",
            f"{int(base16.sum())}",
            f"same verdict on {share(int((base32 == base16).sum()), len(base32))}",
        )
    )
    layer32, layer16 = sweep32.layers[0], sweep16.layers[0]
    x32, (low, high), x16 = sweep32.x_star(), sweep32.x_star_interval(), sweep16.x_star()
    inside = "inside" if low <= x16 <= high else "OUTSIDE"
    rows.append(
        (
            "x* (probe units) with each dtype's own probe and best layer",
            f"{x32:.2f} (95% CI {low:.2f}–{high:.2f}; layer {layer32})",
            f"{x16:.2f} (layer {layer16})",
            f"bf16 x* {inside} the float32 interval",
        )
    )
    return rows


def sweep_rows(name: str, sweep32, sweep16) -> list[tuple[str, str, str, str]]:
    """Outcomes of the same (problem, strength) pairs, on problems both dtypes get right."""
    if sweep32.layers != sweep16.layers or sweep32.signed_strengths() != sweep16.signed_strengths():
        return [(name, "", "", "not comparable: other layers or strengths")]
    base32, base16 = sweep32.tensors["base_correct"], sweep16.tensors["base_correct"]
    both = base32 & base16  # problems both dtypes get right unedited: rows of both sweeps
    errors32 = sweep32.tensors["errors"][0][:, both[base32].nonzero().flatten()]
    errors16 = sweep16.tensors["errors"][0][:, both[base16].nonzero().flatten()]
    same = int((errors32 == errors16).sum())
    x32, (low, high), x16 = sweep32.x_star(), sweep32.x_star_interval(), sweep16.x_star()
    note = f"identical: {share(same, errors32.numel())}; target ≥ 99%"
    note += f"; unedited verdicts alike on {share(int((base32 == base16).sum()), len(base32))}"
    note += f"; bf16 x* {x16:.2f} {'inside' if low <= x16 <= high else 'OUTSIDE'} f32's interval"
    confirmation = sweep16.meta.get("float32_confirmation")
    if confirmation:
        recomputed = confirmation["recomputed_in_float32"]
        note += (
            f"; {share(recomputed, confirmation['outcomes'])} of outcomes decided again in "
            f"float32 (margin {confirmation['margin']}), {confirmation['changed_by_float32']} changed"
        )
    return [
        (
            f"{name}, layer {sweep32.layers[0]}",
            f"{int(errors32.sum())} errors; x* {x32:.2f} ({low:.2f}–{high:.2f})",
            f"{int(errors16.sum())} errors; x* {x16:.2f}",
            note,
        )
    ]


def gsm8k_rows(f32, bf16) -> list[tuple[str, str, str, str]]:
    by_id = {row["id"]: row for row in bf16.rows}
    pairs = [(row, by_id[row["id"]]) for row in f32.rows if row["id"] in by_id]
    n = len(pairs)
    right32 = sum(a["correct"] for a, _ in pairs)
    right16 = sum(b["correct"] for _, b in pairs)
    same_text = sum(a["output"] == b["output"] for a, b in pairs)
    same_answer = sum(a["extracted"] == b["extracted"] for a, b in pairs)
    same_verdict = sum(a["correct"] == b["correct"] for a, b in pairs)
    return [
        ("GSM8K greedy accuracy", share(right32, n), share(right16, n),
         f"difference {right16 - right32:+d} problems"),
        ("GSM8K identical answers", "", "",
         f"text {share(same_text, n)}; extracted answer {share(same_answer, n)}; "
         f"verdict {share(same_verdict, n)}"),
        ("GSM8K mean answer tokens", f"{f32.mean_tokens:.0f}", f"{bf16.mean_tokens:.0f}", ""),
    ]  # fmt: skip


def probe_noise_rows(f32, bf16, main32, main16) -> list[tuple[str, str, str, str]]:
    """Per layer 0-3: the float32 R² over four seeds (the main run's and three more) with its
    spread, and the bf16 - f32 gap on each seed."""
    import statistics

    rows = []
    for i, layer in enumerate(NOISE_LAYERS):
        r32 = [main32.r2()[layer]] + [probe.r2()[i] for probe in f32]
        r16 = [main16.r2()[layer]] + [probe.r2()[i] for probe in bf16]
        gaps = [b - a for a, b in zip(r32, r16, strict=True)]
        rows.append(
            (
                f"sum probe R², layer {layer}, seeds 0-3",
                f"{statistics.mean(r32):.4f} ± {statistics.stdev(r32):.4f} (sd over seeds)",
                f"{statistics.mean(r16):.4f} ± {statistics.stdev(r16):.4f}",
                "bf16 − f32 per seed: " + ", ".join(f"{g:+.4f}" for g in gaps),
            )
        )
    return rows


def per_layer_gap(f32_rows, bf16_rows, key: str) -> tuple[float, int]:
    gaps = [(abs(a[key] - b[key]), a["layer"]) for a, b in zip(f32_rows, bf16_rows)]
    return max(gaps)


def thought_state_rows(f32, bf16, name: str = "") -> list[tuple[str, str, str, str]]:
    rows32, rows16 = f32.tables["per_layer"], bf16.tables["per_layer"]
    key = "balanced_accuracy"  # plain accuracy sits at the majority baseline when one class rules
    gap, layer = per_layer_gap(rows32, rows16, key)
    best32, best16 = max(r[key] for r in rows32), max(r[key] for r in rows16)
    baseline = rows32[0]["majority_baseline"]
    binary = "binary_balanced_accuracy"  # execution against the rest, as the organism's README
    gap2, layer2 = per_layer_gap(rows32, rows16, binary)
    best2_32, best2_16 = max(r[binary] for r in rows32), max(r[binary] for r in rows16)
    return [
        (
            f"thought-state separability per layer (CV balanced accuracy){name}",
            f"3 classes best {best32:.3f}; execution vs rest best {best2_32:.3f}",
            f"3 classes best {best16:.3f}; execution vs rest best {best2_16:.3f}",
            f"largest gap {gap:.3f} (layer {layer}), execution vs rest {gap2:.3f} (layer "
            f"{layer2}); majority baseline {baseline:.3f}; "
            f"{f32.meta['n_boundaries']} boundaries, counts {f32.meta['counts']}",
        )
    ]


def faithfulness_rows(f32, bf16) -> list[tuple[str, str, str, str]]:
    rows32, rows16 = f32.tables["per_layer"], bf16.tables["per_layer"]
    gap, layer = per_layer_gap(rows32, rows16, "accuracy")
    n = f32.meta["n_test"]
    at = next(r for r in rows32 if r["layer"] == layer)
    low, high = wilson_interval(round(at["accuracy"] * n), n)
    likelihood = [r.meta["likelihood_accuracy"] for r in (f32, bf16)]
    return [
        (
            "faithfulness probe held-out accuracy per layer",
            f"best {max(r['accuracy'] for r in rows32):.3f}",
            f"best {max(r['accuracy'] for r in rows16):.3f}",
            f"largest gap {gap:.3f} = {round(gap * n)} of {n} held-out texts (layer {layer}; "
            f"float32's 95% CI there {100 * low:.0f}–{100 * high:.0f}%); likelihood score "
            f"accuracy {likelihood[0]:.3f} vs {likelihood[1]:.3f}",
        )
    ]


def training_rows(name: str, f32, bf16, noise=None) -> list[tuple[str, str, str, str]]:
    loss32 = [r["loss"] for r in f32.history]
    loss16 = [r["loss"] for r in bf16.history]
    gap = max(abs(a - b) for a, b in zip(loss32, loss16))
    note = f"largest per-step loss gap {gap:.4f} over {len(loss32)} steps"
    if noise is not None:
        seed_gap = abs(noise.history[-1]["loss"] - loss32[-1])
        note += (
            f"; last-step gap {abs(loss16[-1] - loss32[-1]):.4f} against {seed_gap:.4f} between "
            f"two data seeds in float32"
        )
    return [
        (
            f"RED training loss, {name} (first → last step)",
            f"{loss32[0]:.4f} → {loss32[-1]:.4f}",
            f"{loss16[0]:.4f} → {loss16[-1]:.4f}",
            note,
        )
    ]


def table(out: Path) -> str:
    """The agreement table (markdown) from whatever is done; also written as agreement.md."""
    lines = [
        f"| measure ({MODEL} unless named) | float32 | bfloat16 | agreement |",
        "| --- | --- | --- | --- |",
    ]
    makers = {
        "number_probe": number_probe_rows,
        "gsm8k": gsm8k_rows,
        "thought_states": thought_state_rows,
        "thought_states_organism": lambda a, b: thought_state_rows(
            a, b, ", the SEAL organism (reasoner) on its own sampled responses"
        ),
        "faithfulness": faithfulness_rows,
        "train_adder": lambda a, b: training_rows(
            "toy adder", a, b, loaded(out, "train_adder_seed1", "float32")
        ),
        "train_smollm2": lambda a, b: training_rows(
            "smollm2 on GSM8K", a, b, loaded(out, "train_smollm2_seed1", "float32")
        ),
    }
    f32_probe = loaded(out, "number_probe", "float32")
    for step, name in (
        ("sweep_raw", "sweep outcomes, bf16"),
        ("sweep_confirmed", "sweep outcomes, bf16 + float32 confirmation"),
    ):
        bf16 = loaded(out, step, "bfloat16")
        if f32_probe is None or bf16 is None:
            lines.append(f"| {step} | not done | not done | |")
            continue
        for row in sweep_rows(name, f32_probe[1], bf16):
            lines.append("| " + " | ".join(row) + " |")
        lines.append(f"| {step}: wall time | | {minutes(out, step, 'bfloat16')} | |")
    bf16_probe = loaded(out, "number_probe", "bfloat16")
    noise = [loaded(out, "probe_noise", dtype) for dtype in DTYPES]
    if None in (f32_probe, bf16_probe, *noise):
        lines.append("| probe_noise | not done | not done | |")
    else:
        for row in probe_noise_rows(*noise, f32_probe[0], bf16_probe[0]):
            lines.append("| " + " | ".join(row) + " |")
    for step, make in makers.items():
        f32, bf16 = loaded(out, step, "float32"), loaded(out, step, "bfloat16")
        if f32 is None or bf16 is None:
            lines.append(f"| {step} | not done | not done | |")
            continue
        for row in make(f32, bf16):
            lines.append("| " + " | ".join(row) + " |")
        lines.append(
            f"| {step}: wall time | {minutes(out, step, 'float32')} "
            f"| {minutes(out, step, 'bfloat16')} | |"
        )
    text = "\n".join(lines) + "\n"
    (out / "agreement.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "agreement")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--one", choices=sorted(ONE_PROCESS_STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--dtype", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        ONE_PROCESS_STEPS[args.one](args.dtype, args.out)
        return
    if not args.table_only:
        for step in args.steps.split(","):
            if step not in STEPS:
                parser.error(f"unknown step {step!r}: choose from {', '.join(STEPS)}")
            for dtype in args.dtypes.split(","):
                if step in FLOAT32_ONLY and dtype != "float32":
                    continue
                if step in BFLOAT16_ONLY and dtype != "bfloat16":
                    continue
                run_step(step, dtype, args.out)
    print(table(args.out))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
