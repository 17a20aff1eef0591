"""The ReFT study on one model: trained REDs against GSM8K, the number direction, the prefix swap
and faithfulness, phase by phase, every phase resumable from its outputs on disk.

    study = reft_study.Study(model, out="runs/reft_study/qwen2.5-coder-0.5b-instruct")
    study.plan()          # 0: measured step and decoding times -> plan.json (budget per phase)
    study.number()        # 1: number probes and the push sweep (x*), or a number-probe run reused
    study.train()         # 2: RED-all, RED-prefix, + PID (both forms), LoRA: same data and steps
    study.evaluate()      # 3: greedy GSM8K of base and every arm (+ KL-budget decoding), paired
    study.project()       # 4: the trained RED-all on the sum direction vs x*, and edit_breaks
    study.swap()          # 5: prefix swap, trained RED-all donor, base continuer
    study.faithfulness()  # 6: base vs RED-all and RED-prefix, difference heatmaps
    study.summary()       # 7: one table beside the research note's anchors, every figure
    study.run()           # all of them (or `phases=("plan", "train")`)

Each phase is saved under `out/phases/<phase>` through `interp.results.reuse_or_run`, keyed by the
settings that decide it (and the model's weights fingerprint, dtype included), so a second call
loads it. Inside a phase the analyses resume on their own: training from its saved state
(`interp.training`), decoding from `<out>.partial.jsonl` (`PartialRun`), so a run stopped in the
middle of a phase goes on where it stopped. A phase asks for what it needs from the phases before
it, which load (or, never run, compute) it.

The settings and which phase each keys live in `reft_study_config`, the phase results in
`reft_study_phases`, the timing and plan in `reft_study_budget`, the summary in
`reft_study_report`; every public name is reachable from here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from interp.analyses import (
    faithfulness,
    faithfulness_difference,
    math_eval,
    number_probe,
    perturbation,
    prefix_swap,
    projection,
    reft_compare,
)
from interp.analyses import reft_study_budget as budget
from interp.analyses.reft_study_config import (
    ANCHORS,
    ARM_LABELS,
    KL_ARM,
    PHASES,
    PREFIX_ARMS,
    TINY_SETTINGS,
    TRAINABLE_ARMS,
    ReftStudyConfig,
    phase_key,
)
from interp.analyses.reft_study_phases import (
    PHASE_RESULTS,
    EvaluationPhase,
    FaithfulnessPhase,
    NumberPhase,
    ProjectionPhase,
    StudyPlan,
    StudySummary,
    StudyTiming,
    SwapPhase,
    TrainingPhase,
)
from interp.core.positions import AllPositions, PromptAndFirstGenerated
from interp.data.arithmetic import with_prompt_template
from interp.data.math_sets import load_problems, subset
from interp.interventions import RED, Edit
from interp.interventions.arms import Arm
from interp.interventions.lora import LoRA
from interp.interventions.random_red import random_red_edits
from interp.models import model_name
from interp.models.loading import reload_as
from interp.results import Result, check_saved_model, reuse_or_run, write_json_atomic
from interp.stats import detectable_difference, paired_comparison
from interp.storage import is_saved
from interp.training import checkpoints
from interp.training.data import encode_pairs, gsm8k_pairs
from interp.training.pid import bias_norms

# --------------------------------------------------------------------------------------------------
# Pure helpers


def choose_steps(losses: Sequence[float], fraction: float = 0.9, window: int | None = None) -> dict:
    """The step count read off a pilot's loss curve: the first step at which the loss, averaged
    over the `window` steps before it, has made `fraction` of the drop from its first window to
    its last one; rounded up to a multiple of 4 (the arms' save interval).

    With one epoch every step sees pairs it never saw, so the curve is a held-out estimate.
    A curve that does not fall gives all its steps.
    """
    n = len(losses)
    if n == 0:
        raise ValueError("the pilot logged no steps")
    window = window or max(4, n // 16)
    window = min(window, n)
    smoothed = [sum(losses[i + 1 - window : i + 1]) / window for i in range(window - 1, n)]
    start, end = smoothed[0], smoothed[-1]
    if not start > end:
        chosen = n
    else:
        goal = end + (1 - fraction) * (start - end)
        first = next(i for i, value in enumerate(smoothed) if value <= goal)
        chosen = first + window  # smoothed[i] ends at step index i + window - 1
    chosen = min(n, max(window, 4 * math.ceil(chosen / 4)))
    return {
        "steps": chosen,
        "window": window,
        "start_loss": start,
        "end_loss": end,
        "smoothed": smoothed,
    }


def swap_selection(
    base_rows: Sequence[dict[str, Any]],
    donor_rows: Sequence[dict[str, Any]],
    base_right: bool = True,
) -> list[str]:
    """Ids of the problems the donor gets wrong (and, with `base_right`, the base gets right),
    in the pool's order."""
    base = {r["id"]: bool(r["correct"]) for r in base_rows}
    return [
        r["id"]
        for r in donor_rows
        if not r["correct"] and (not base_right or base.get(r["id"], False))
    ]


def against_base(
    base: math_eval.MathEvalResult,
    arm: math_eval.MathEvalResult,
    n_bootstrap: int,
    seed: int,
    name: str = "arm",
) -> dict[str, Any]:
    """`arm` minus `base` on the same problems (`name` is the arm in errors): the paired
    comparison (difference, bootstrap interval, McNemar) and the difference these problems detect
    with 80% power at their share of discordant problems."""
    if [r["id"] for r in arm.rows] != [r["id"] for r in base.rows]:
        raise RuntimeError(f"{name} was decoded on other problems than base")
    paired = paired_comparison(
        [bool(r["correct"]) for r in base.rows],
        [bool(r["correct"]) for r in arm.rows],
        n_bootstrap,
        seed,
    )
    paired["detectable_difference"] = (
        detectable_difference(arm.n, base.accuracy, paired["discordant_share"])
        if paired["discordant_share"] > 0
        else None
    )
    return paired


def pool_sizes(start: int, most: int) -> list[int]:
    """Pool sizes tried for the prefix swap: `start`, doubled until `most` (included)."""
    sizes = [min(start, most)]
    while sizes[-1] < most:
        sizes.append(min(2 * sizes[-1], most))
    return sizes


# --------------------------------------------------------------------------------------------------
# The study


class Study:
    """The whole chain on one model; each method is one phase (see the module docstring)."""

    def __init__(
        self,
        model,
        out: str | Path,
        *,
        resume: bool = True,
        progress: bool = True,
        config: ReftStudyConfig | None = None,
        **overrides: Any,
    ):
        self.model = model
        self.out = Path(out)
        self.resume = resume
        self.progress = progress
        self.config = dataclasses.replace(config or ReftStudyConfig(), **overrides).check()
        self._done: dict[str, Result] = {}
        self._trained: dict[str, Any] = {}
        self._float32_model = model if next(model.parameters()).dtype == torch.float32 else None

    @property
    def float32_model(self):
        """The model in float32, for the phases where precision decides: the number probe and
        sweep, and projections on their direction (bfloat16 activations tip the probe's ridge
        penalty and so x*: README, the agreement table). The model itself when it is float32;
        otherwise loaded again from its source once, on first use."""
        if self._float32_model is None:
            self._float32_model = reload_as(self.model, torch.float32)
        return self._float32_model

    # ---------------------------------------------------------------------------------------------
    # Running phases

    def run(self, phases: Sequence[str] | None = None) -> dict[str, Result]:
        """Run the phases asked for (default: all, in order); each is loaded when already saved."""
        phases = tuple(phases or PHASES)
        unknown = set(phases) - set(PHASES)
        if unknown:
            raise ValueError(f"unknown phases {sorted(unknown)}; the phases are {PHASES}")
        methods = {
            "plan": self.plan,
            "number": self.number,
            "train": self.train,
            "eval": self.evaluate,
            "projection": self.project,
            "swap": self.swap,
            "faithfulness": self.faithfulness,
            "summary": lambda: self.summary(phases),
        }
        return {phase: methods[phase]() for phase in PHASES if phase in phases}

    def _phase(self, phase: str, compute: Callable[[], Result], key=None) -> Result:
        """Load phase `phase` from `out/phases/<phase>` or compute and save it (timed)."""
        if phase in self._done:
            return self._done[phase]
        key = key or phase_key(self.config, phase)

        def timed() -> Result:
            started = time.perf_counter()
            result = compute()
            result.meta["seconds"] = time.perf_counter() - started
            result.meta.setdefault("model", model_name(self.model))
            return result

        result = reuse_or_run(
            self.out / "phases" / phase,
            PHASE_RESULTS[phase],
            key,
            timed,
            self.resume,
            model=self.model,
        )
        self._done[phase] = result
        return result

    # ---------------------------------------------------------------------------------------------
    # 0. plan

    def plan(self) -> StudyPlan:
        """Measure a RED step (whole answers and prefix-K) and GSM8K decoding, write the budget to
        `out/plan.json` before anything else runs, and print it."""
        result = self._phase("plan", self._plan)
        print(json.dumps(result.meta["plan"], indent=2))
        return result

    def _plan(self) -> StudyPlan:
        c = self.config
        from interp.models.dtypes import dtype_name

        def measure() -> StudyTiming:
            timing = budget.measure(
                self.model,
                self._pairs(c.batch_size * c.timing_steps),
                hook=c.red_hook,
                batch_size=c.batch_size,
                prefix_tokens=c.prefix_tokens,
                steps=c.timing_steps,
                decode_batch=c.eval_batch_size,
                decode_tokens=c.timing_new_tokens,
                seed=c.eval_seed + 1,  # not the evaluated problems' subset order
            )
            return StudyTiming(config=phase_key(c, "timing"), meta={"timing": timing})

        timing = reuse_or_run(
            self.out / "phases" / "timing",
            StudyTiming,
            phase_key(c, "timing"),
            measure,
            self.resume,
            model=self.model,
        ).meta["timing"]
        arm_steps = c.steps or c.pilot_steps
        sample = self._pairs(min(1000, arm_steps * c.batch_size * c.grad_accum))
        tokens = budget.training_tokens(
            sample, c.batch_size * c.grad_accum, c.prefix_tokens, c.full_share
        )
        reused = self._number_reusable() is not None
        estimated = budget.estimate(timing, c, tokens, arm_steps, reused)
        quiet = budget.estimate(timing, c, tokens, arm_steps, reused, basis="quiet")
        p = c.expected_base_accuracy
        power = {
            "n": c.test_problems,
            "assumed_base_accuracy": p,
            "unpaired": detectable_difference(c.test_problems, p),
            "paired_discordance_0.1": detectable_difference(c.test_problems, p, 0.1),
            "paired_discordance_0.2": detectable_difference(c.test_problems, p, 0.2),
            "paired_discordance_0.3": detectable_difference(c.test_problems, p, 0.3),
            "how": "smallest true accuracy difference found with 80% power at two-sided 5%: "
            "unpaired two proportions, or McNemar with the given share of discordant problems",
        }
        plan = {
            "model": model_name(self.model),
            "dtype": dtype_name(next(self.model.parameters()).dtype),
            "number_and_projection_dtype": "float32",  # precision decides there (README)
            "steps_per_arm": c.steps
            if c.steps is not None
            else f"chosen by a {c.pilot_steps}-step pilot (at most {c.pilot_steps})",
            "pairs_per_arm": arm_steps * c.batch_size * c.grad_accum,
            "batch_size": c.batch_size,
            "grad_accum": c.grad_accum,
            "prefix_tokens": c.prefix_tokens,
            "test_problems": c.test_problems,
            "max_new_tokens": c.max_new_tokens,
            "swap_problems": c.swap_problems,
            "faith_triples": c.faith_triples,
            "training_tokens": dataclasses.asdict(tokens),
            "timing": timing,
            "budget": estimated,
            "budget_if_quiet": {
                k: quiet[k]
                for k in (
                    "total_hours",
                    "total_hours_without_pool_growth",
                    "train_seconds_per_step_full",
                    "train_seconds_per_step_prefix",
                    "decode_tokens_per_second",
                )
            },
            "power": power,
        }
        self.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.out / "plan.json", plan)
        return StudyPlan(
            config=phase_key(c, "plan"),
            tables={"budget": estimated["rows"]},
            meta={"plan": plan, "model": model_name(self.model)},
        )

    # ---------------------------------------------------------------------------------------------
    # 1. number probe and push sweep

    def _number_reusable(self) -> Path | None:
        """`probe_dir` when it holds a probe and a sweep of this very model (dtype included)."""
        folder = self.config.probe_dir
        if folder is None:
            return None
        folder = Path(folder)
        if not (is_saved(folder / "probe") and is_saved(folder / "sweep")):
            return None
        for part, kind in (
            ("probe", number_probe.NumberProbeResult),
            ("sweep", perturbation.PerturbationResult),
        ):
            try:
                check_saved_model(kind.load(folder / part), self.float32_model, folder / part)
            except ValueError as error:
                print(f"[reft-study] not reusing {folder}: {error}")
                return None
        return folder

    def number(self) -> NumberPhase:
        """The number probes and the push sweep (x*): a number-probe run of this model reused, or
        computed here with the number-probe command's functions and settings."""
        return self._phase("number", self._number)

    def _number(self) -> NumberPhase:
        c = self.config
        model = self.float32_model
        folder = self._number_reusable()
        reused = folder is not None
        if folder is None:
            folder = self.out / "number"
            perturbation.probe_and_sweep(
                model,
                folder,
                dict(
                    n_problems=c.probe_problems,
                    digits=c.probe_digits,
                    style=c.probe_style,
                    seed=c.seed,
                    batch_size=c.number_batch_size,
                ),
                dict(
                    digits=c.sweep_digits,
                    n_problems=c.sweep_problems,
                    style=c.probe_style,
                    seed=c.seed + 1,
                    batch_size=c.number_batch_size,
                    strengths=c.sweep_strengths,
                ),
                resume=self.resume,
            )
        sweep = perturbation.PerturbationResult.load(folder / "sweep")
        rows = []
        for layer in sweep.layers:
            low, high = sweep.x_star_interval(layer)
            rows.append(
                {
                    "layer": layer,
                    "x_star": sweep.x_star(layer),
                    "x_star_low": low,
                    "x_star_high": high,
                }
            )
        return NumberPhase(
            config=phase_key(c, "number"),
            tables={"x_star": rows, "sweep": sweep.tables["sweep"]},
            meta={
                "folder": str(folder),
                "reused": reused,
                "base_accuracy": sweep.meta.get("base_accuracy"),
                "n_base_correct": sweep.meta.get("n_base_correct"),
                "style": sweep.config.style,
            },
        )

    def probe_and_sweep(
        self,
    ) -> tuple[number_probe.NumberProbeResult, perturbation.PerturbationResult]:
        folder = Path(self.number().meta["folder"])
        return (
            number_probe.NumberProbeResult.load(folder / "probe"),
            perturbation.PerturbationResult.load(folder / "sweep"),
        )

    # ---------------------------------------------------------------------------------------------
    # 2. training

    def _pairs(self, n: int):
        c = self.config
        pairs = gsm8k_pairs(self.model.tokenizer, n=n, seed=c.seed)
        return encode_pairs(pairs, self.model.tokenizer, max_answer_tokens=c.max_answer_tokens)

    def arm_config(self, steps: int) -> reft_compare.ReftCompareConfig:
        """The training comparison's config for `steps` optimizer steps of one epoch: every arm
        sees the same `steps x batch x accumulation` pairs once."""
        c = self.config
        return reft_compare.ReftCompareConfig(
            n_train=steps * c.batch_size * c.grad_accum,
            train_seed=c.seed,
            max_answer_tokens=c.max_answer_tokens,
            epochs=1,
            batch_size=c.batch_size,
            grad_accum=c.grad_accum,
            red_hook=c.red_hook,
            red_lr=c.red_lr,
            prefix_tokens=c.prefix_tokens,
            full_share=c.full_share,
            decode_prefix=c.decode_prefix,
            bias_target=c.bias_target,
            lora_rank=c.lora_rank,
            lora_lr=c.lora_lr,
        )

    def train(self) -> TrainingPhase:
        """Train every arm on the same GSM8K pairs for the same steps (a pilot picks the steps when
        `steps` is None); checkpoints and histories under `out/train/<arm>`."""
        return self._phase("train", self._train)

    def _train(self) -> TrainingPhase:
        c = self.config
        pilot_rows: list[dict[str, Any]] = []
        meta: dict[str, Any] = {}
        steps = c.steps
        if steps is None:
            pilot_config = self.arm_config(c.pilot_steps)
            _, history = reft_compare.train_arm(
                self.model,
                "red_all",
                self._pairs(pilot_config.n_train),
                pilot_config,
                self.out / "pilot",
                progress=self.progress,
            )
            losses = [r["loss"] for r in history.history]
            choice = choose_steps(losses, c.pilot_fraction)
            steps = choice["steps"]
            window = choice["window"]
            pilot_rows = [
                {
                    "step": i,
                    "loss": loss,
                    "smoothed": choice["smoothed"][i - window + 1] if i >= window - 1 else None,
                }
                for i, loss in enumerate(losses)
            ]
            meta["steps_rule"] = (
                f"pilot: red_all for {c.pilot_steps} steps (one epoch, so every step's loss is on "
                f"unseen pairs); loss averaged over {window} steps went from {choice['start_loss']:.3f} "
                f"to {choice['end_loss']:.3f}; steps = first step where it made "
                f"{c.pilot_fraction:.0%} of that drop, rounded up to a multiple of 4 (all the "
                f"pilot's steps when it did not fall): {steps}"
            )
            meta["pilot_seconds"] = history.meta.get("seconds")
        else:
            meta["steps_rule"] = f"given: {steps} steps"
        config = self.arm_config(steps)
        pairs = self._pairs(config.n_train)
        rows, curves = [], []
        folders = {}
        for arm in c.arms:
            # a pilot that ran exactly the chosen steps is the red_all arm: same pairs, same config
            root = (
                self.out / "pilot"
                if arm == "red_all" and c.steps is None and steps == c.pilot_steps
                else self.out
            )
            folders[arm] = str(root / "train" / arm)
            _, history = reft_compare.train_arm(
                self.model, arm, pairs, config, root, progress=self.progress
            )
            last = history.history[-1]
            tail = history.history[-max(1, len(history.history) // 8) :]
            rows.append(
                {
                    "arm": arm,
                    "steps": len(history.history),
                    "final_loss": sum(r["loss"] for r in tail) / len(tail),
                    "bias_norm": last.get("bias_norm"),
                    "control_weight": last.get("control_weight"),
                    "seconds": history.meta.get("seconds"),
                    "loss_tokens": history.meta.get("n_loss_tokens"),
                }
            )
            curves += [
                {
                    "arm": arm,
                    **{k: h.get(k) for k in ("step", "loss", "bias_norm", "control_weight")},
                }
                for h in history.history
            ]
        meta.update(steps=steps, n_train=config.n_train, bias_target=c.bias_target, folders=folders)
        return TrainingPhase(
            config=phase_key(c, "train"),
            tables={"arms": rows, "curves": curves, "pilot": pilot_rows},
            meta=meta,
        )

    def trained(self, arm: str) -> list[Edit] | LoRA:
        """An arm's trained edits (as trained: every position) or LoRA, loaded from its checkpoint."""
        if arm not in self._trained:
            folder = Path(self.train().meta["folders"][arm])
            self._trained[arm] = checkpoints.load(folder / "checkpoint", self.model)
        return self._trained[arm]

    def decoding_edits(self, arm: str) -> list[Edit] | LoRA:
        """What an arm decodes with: prefix arms edit the prompt and the first `decode_prefix`
        generated tokens; RED-all and the KL-budget arm every token (the KL arm until its budget)."""
        source = "red_prefix_pid" if arm == KL_ARM else arm
        trained = self.trained(source)
        if isinstance(trained, LoRA):
            return trained
        rule = (
            PromptAndFirstGenerated(self.config.decode_prefix)
            if arm in PREFIX_ARMS
            else AllPositions()
        )
        return [Edit(e.hook, e.function, rule) for e in trained]

    # ---------------------------------------------------------------------------------------------
    # 3. GSM8K evaluation

    def _decode(self, arm: str, out: Path, **settings: Any) -> math_eval.MathEvalResult:
        """Greedy GSM8K answers of one arm (resumes from `out`)."""
        c = self.config
        kwargs: dict[str, Any] = dict(
            dataset=c.eval_dataset,
            split=c.eval_split,
            n_problems=c.test_problems,
            seed=c.eval_seed,
            max_new_tokens=c.max_new_tokens,
            batch_size=c.eval_batch_size,
            out=out,
            progress=self.progress,
        )
        kwargs.update(settings)
        if arm == KL_ARM:
            kwargs["kl_budget"] = c.kl_budget
        if arm == "base":
            return math_eval.run(Arm.plain(self.model, "base"), **kwargs)
        edits = self.decoding_edits(arm)
        if isinstance(edits, LoRA):
            with edits.applied(self.model):
                return math_eval.run(Arm.plain(self.model, arm), **kwargs)
        return math_eval.run(Arm.edited(self.model, edits, arm), **kwargs)

    def evaluate(self) -> EvaluationPhase:
        """Greedy GSM8K of base and every arm on the same seeded problems; accuracy with Wilson
        intervals, length, cap share, and each arm against base (paired bootstrap, McNemar)."""
        return self._phase("eval", self._evaluate)

    def _evaluate(self) -> EvaluationPhase:
        return self._evaluation(self.config.eval_arms)

    def interim_arms(self) -> tuple[str, ...]:
        """While the eval phase is not saved: the arms whose decoding has finished (saved under
        `out/eval/<arm>`), when base and at least one other are among them; else ()."""
        if is_saved(self.out / "phases" / "eval"):
            return ()
        arms = tuple(a for a in self.config.eval_arms if is_saved(self.out / "eval" / a))
        return arms if "base" in arms and len(arms) >= 2 else ()

    def interim_evaluation(self) -> EvaluationPhase | None:
        """The eval phase's tables over `interim_arms()`, marked interim and not saved as the
        phase (the phase itself needs every arm); None when there is nothing to compare yet."""
        arms = self.interim_arms()
        return self._interim_evaluation(arms) if arms else None

    def _interim_evaluation(self, arms: Sequence[str]) -> EvaluationPhase:
        result = self._evaluation(arms)
        result.meta.update(interim_arms=list(arms), model=model_name(self.model))
        return result

    def _evaluation(self, arms: Sequence[str]) -> EvaluationPhase:
        """Accuracy, length, cap share of `arms` (base first), each against base, paired."""
        c = self.config
        training = self.train()
        norms = {r["arm"]: r["bias_norm"] for r in training.tables["arms"]}
        results = {arm: self._decode(arm, self.out / "eval" / arm) for arm in arms}
        base = results["base"]
        rows, problems = [], []
        for index, (arm, result) in enumerate(results.items()):
            low, high = result.accuracy_interval
            row = {
                "arm": arm,
                "label": ARM_LABELS[arm],
                "n": result.n,
                "correct": result.n_correct,
                "accuracy": result.accuracy,
                "accuracy_low": low,
                "accuracy_high": high,
                "mean_tokens": result.mean_tokens,
                "cap_rate": result.cap_rate,
                "bias_norm": norms.get("red_prefix_pid" if arm == KL_ARM else arm),
                "anchor": ANCHORS.get(arm),
            }
            if arm != "base":
                row.update(against_base(base, result, c.n_bootstrap, c.seed + index, f"arm {arm}"))
            stops = [r.get("edit_stop") for r in result.rows if "edit_stop" in r]
            if stops:
                ends = [s if s is not None else r["n_tokens"] for s, r in zip(stops, result.rows)]
                row["mean_edit_stop"] = sum(ends) / len(ends)
                row["never_stopped"] = sum(s is None for s in stops)
            rows.append(row)
            problems += [
                {
                    "arm": arm,
                    "id": r["id"],
                    "correct": bool(r["correct"]),
                    "n_tokens": r["n_tokens"],
                    "hit_cap": bool(r["hit_cap"]),
                    "edit_stop": r.get("edit_stop"),
                }
                for r in result.rows
            ]
        power = {
            "n": base.n,
            "base_accuracy": base.accuracy,
            "unpaired": detectable_difference(base.n, base.accuracy),
        }
        return EvaluationPhase(
            config=phase_key(c, "eval"),
            tables={"arms": rows, "problems": problems},
            meta={"power": power},
        )

    # ---------------------------------------------------------------------------------------------
    # 4. projection on the number direction, and edit_breaks

    def projection_edits(self) -> dict[str, tuple[list[Edit], str]]:
        """The trained RED-all, a random RED with the same hook and per-layer bias norms, and the
        README's random RED (bias norm `random_red_norm` on every hook_mlp_out)."""
        c = self.config
        trained = [Edit(e.hook, e.function) for e in self.trained("red_all")]
        with torch.no_grad():
            norms = bias_norms([e.function for e in trained]).tolist()
        matched = [
            Edit(e.hook, RED.random(e.function.width, norm, seed=c.seed + i))
            for i, (e, norm) in enumerate(zip(trained, norms, strict=True))
        ]
        mean = sum(norms) / len(norms)
        return {
            "red_all": (trained, f"trained RED-all ({c.red_hook}, mean bias norm {mean:.3f})"),
            "random_matched": (
                matched,
                f"random RED, same hook and per-layer bias norms as RED-all (mean {mean:.3f})",
            ),
            "random_reference": (
                random_red_edits(self.model, c.random_red_norm, seed=c.seed),
                f"random RED, bias norm {c.random_red_norm} on every hook_mlp_out (the README's)",
            ),
        }

    def project(self) -> ProjectionPhase:
        """Each edit's per-token projection on the sum direction at the probed layers vs x*, and
        how many sums the base model gets right it breaks (`perturbation.edit_breaks`)."""
        return self._phase("projection", self._project)

    def _project(self) -> ProjectionPhase:
        c = self.config
        model = self.float32_model  # x* and the direction are float32's
        probe, sweep = self.probe_and_sweep()
        layer = sweep.layers[0]
        rows, per_layer, tensors = [], [], {}
        for name, (edits, description) in self.projection_edits().items():
            overrides = dict(
                n_prompts=c.projection_prompts,
                digits=sweep.config.digits,
                seed=c.seed + 2,
                edit_description=description,
            )
            key = with_prompt_template(projection.ProjectionConfig(**overrides), model.tokenizer)
            proj = reuse_or_run(
                self.out / "projection" / name,
                projection.ProjectionResult,
                key,
                lambda edits=edits, overrides=overrides: projection.run(
                    model, edits, probe, perturbation=sweep, **overrides
                ),
                self.resume,
                model=model,
            )
            try:
                breaks = perturbation.edit_breaks(
                    model,
                    edits,
                    digits=sweep.config.digits,
                    n_problems=sweep.config.n_problems,
                    seed=sweep.config.seed,
                    style=sweep.config.style,
                    batch_size=c.number_batch_size,
                    unedited_correct=sweep.tensors["base_correct"],
                )
            except ValueError as error:  # the base model solves none of the sums
                breaks = {"note": str(error)}
            at = proj.projections(layer)
            x_star = sweep.x_star(layer)
            with torch.no_grad():
                norms = bias_norms([e.function for e in edits])
            rows.append(
                {
                    "edit": name,
                    "description": description,
                    "mean_bias_norm": float(norms.mean()),
                    "layer": layer,
                    "x_star": x_star,
                    "mean_abs_projection": float(at.abs().mean()),
                    "max_abs_projection": float(at.abs().max()),
                    "share_beyond_x_star": float((at.abs() > x_star).float().mean()),
                    **breaks,
                }
            )
            per_layer += [{"edit": name, **r} for r in proj.tables["per_layer"]]
            tensors[f"projections_{name}"] = at.float()
        return ProjectionPhase(
            config=phase_key(c, "projection"),
            tensors=tensors,
            tables={"edits": rows, "per_layer": per_layer},
            meta={
                "layer": layer,
                "x_star": sweep.x_star(layer),
                "x_star_interval": list(sweep.x_star_interval(layer)),
            },
        )

    # ---------------------------------------------------------------------------------------------
    # 5. prefix swap

    def swap(self) -> SwapPhase:
        """The trained RED-all writes the first k tokens, the base model continues, on problems the
        donor gets wrong and the base gets right alone; the pool of test problems grows (doubling,
        nested seeded subsets) until `swap_problems` such problems are found or the split ends."""
        return self._phase("swap", self._swap)

    def _swap(self) -> SwapPhase:
        c = self.config
        self.evaluate()
        pool_rows = []
        previous: dict[str, list[math_eval.MathEvalResult]] = {}
        for size in self._pool_sizes():
            results, chosen = self._decoded_pool(size, reuse=previous)
            previous = {arm: [result] for arm, result in results.items()}
            pool_rows.append(self._pool_row(size, results, found=len(chosen)))
            if len(chosen) >= c.swap_problems:
                break
        meta: dict[str, Any] = {"pool": size, "found": len(chosen)}
        if not chosen:
            meta["note"] = f"no problem of {size} fits the selection: nothing to swap"
            return SwapPhase(
                config=phase_key(c, "swap"), tables={"pool": pool_rows, "accuracy": []}, meta=meta
            )
        chosen = chosen[: c.swap_problems]
        by_id = {
            p.id: p for p in subset(load_problems(c.eval_dataset, c.eval_split), size, c.eval_seed)
        }
        donor = Arm.edited(self.model, self.decoding_edits("red_all"), "red_all")
        result = prefix_swap.run(
            self.model,
            donor=donor,
            continuer=Arm.plain(self.model, "base"),
            problems=[by_id[i] for i in chosen],
            ks=c.swap_ks,
            only_donor_wrong=True,
            n_problems=len(chosen),
            seed=c.eval_seed,
            max_new_tokens=c.max_new_tokens,
            batch_size=c.eval_batch_size,
            out=self.out / "swap" / "run",
            progress=self.progress,
            reuse=[results["base"], results["red_all"]],
        )
        if len(chosen) < c.swap_problems:
            meta["note"] = (
                f"asked for {c.swap_problems} problems, the whole pool of {size} gave {len(chosen)}"
            )
        meta.update(
            {k: result.meta[k] for k in ("donor_accuracy", "continuer_accuracy", "n_problems")}
        )
        closeness = result.tables.get("closeness", [])
        return SwapPhase(
            config=phase_key(c, "swap"),
            tables={
                "pool": pool_rows,
                "accuracy": result.tables["accuracy"],
                # from the rows, not result.tables["own_prefix"]: a swap saved before that
                # table existed is reused as it is, and its rows hold everything the control needs
                "own_prefix": prefix_swap.own_prefix_table(result.tables["continuations"]),
                "closeness": closeness,
            },
            meta=meta,
        )

    def _pool_sizes(self) -> list[int]:
        c = self.config
        available = len(load_problems(c.eval_dataset, c.eval_split))
        return pool_sizes(c.test_problems, min(c.swap_pool_max or available, available))

    def _pool_folder(self, size: int) -> Path:
        """Where base and RED-all are decoded on a pool: the first pool is the eval's problems."""
        return self.out / ("eval" if size == self.config.test_problems else f"swap/pool_{size}")

    def _decoded_pool(
        self, size: int, reuse: dict[str, list[math_eval.MathEvalResult]] | None = None
    ) -> tuple[dict[str, math_eval.MathEvalResult], list[str]]:
        """Base and RED-all decoded on the first `size` problems (resumed or loaded from disk;
        `reuse`: a smaller pool's results per arm), and the ids the swap may use, in pool order."""
        results = {
            arm: self._decode(
                arm,
                self._pool_folder(size) / arm,
                n_problems=size,
                reuse=(reuse or {}).get(arm, []),
            )
            for arm in ("base", "red_all")
        }
        chosen = swap_selection(
            results["base"].rows, results["red_all"].rows, self.config.swap_base_right
        )
        return results, chosen

    def _pool_row(
        self, size: int, results: dict[str, math_eval.MathEvalResult], found: int
    ) -> dict[str, Any]:
        """One row of the swap's pool table: what the pool gave, and claim 1 again on it — RED-all
        against base, paired, with the seed of the eval phase's red_all row (so the first pool's
        row repeats that row's numbers)."""
        c = self.config
        base, donor = results["base"], results["red_all"]
        return {
            "pool": size,
            "found": found,
            "base_correct": base.n_correct,
            "donor_correct": donor.n_correct,
            "base_accuracy": base.accuracy,
            "donor_accuracy": donor.accuracy,
            **against_base(base, donor, c.n_bootstrap, c.seed + 1, "red_all"),
        }

    def interim_pools(self) -> tuple[int, ...]:
        """While the swap's pool grows (eval saved, swap not): the pool sizes whose base and RED-all
        decodes have finished, when one beyond the first is among them; else ()."""
        if is_saved(self.out / "phases" / "swap") or not is_saved(self.out / "phases" / "eval"):
            return ()
        sizes = tuple(
            size
            for size in self._pool_sizes()
            if all(is_saved(self._pool_folder(size) / arm) for arm in ("base", "red_all"))
        )
        return sizes if len(sizes) >= 2 else ()

    def _interim_pool(self, sizes: Sequence[int]) -> SwapPhase:
        """The swap phase's pool table over `sizes` (their saved decodes, nothing decoded), marked
        interim: the swap itself has not run, and it is not saved as the phase."""
        rows = []
        for size in sizes:
            results, chosen = self._decoded_pool(size)
            rows.append(self._pool_row(size, results, found=len(chosen)))
        return SwapPhase(
            config=phase_key(self.config, "swap"),
            tables={"pool": rows, "accuracy": []},
            meta={"interim_pools": list(sizes), "model": model_name(self.model)},
        )

    # ---------------------------------------------------------------------------------------------
    # 6. faithfulness

    def faithfulness(self) -> FaithfulnessPhase:
        """Number-faithfulness probes of base and each of `faith_arms` (their decoding edits) on the
        same triples; edited minus base per layer (and head)."""
        return self._phase("faithfulness", self._faithfulness)

    def _faithfulness(self) -> FaithfulnessPhase:
        c = self.config
        common = dict(
            n_triples=c.faith_triples,
            facts_per_question=c.faith_facts,
            max_prompt_tokens=c.faith_max_prompt_tokens,
            seed=c.seed,
            layers=c.faith_layers,
            heads=c.faith_heads,
            batch_size=c.faith_batch_size,
        )
        folder = self.out / "faithfulness"

        def probe(arm: Arm, description: str, reference=None):
            key = faithfulness.FaithfulnessConfig(
                **common, arm=arm.name, edit_description=description
            )
            return reuse_or_run(
                folder / arm.name,
                faithfulness.FaithfulnessResult,
                key,
                lambda: faithfulness.run(
                    arm,
                    reference=reference,
                    progress=self.progress,
                    **{k: v for k, v in key.__dict__.items() if k != "arm"},
                ),
                self.resume,
                model=self.model,
            )

        base = probe(Arm.plain(self.model, "base"), "none")
        rows, likelihood, tensors = [], [], {}
        for arm in c.faith_arms:
            edits = self.decoding_edits(arm)
            rule = "prompt + first k" if arm in PREFIX_ARMS else "every token"
            edited = probe(
                Arm.edited(self.model, edits, arm), f"trained {arm} ({c.red_hook}, {rule})", base
            )
            comparison = faithfulness_difference.run(base, edited)
            comparison.save(folder / f"difference_{arm}")
            rows += [{"arm": arm, **r} for r in comparison.tables["per_layer"]]
            likelihood.append(
                {
                    "arm": arm,
                    **{
                        k: v
                        for k, v in comparison.meta.items()
                        if k.endswith(("likelihood_accuracy", "likelihood_margin"))
                    },
                }
            )
            if "delta_head_accuracy" in comparison.tensors:
                tensors[f"delta_head_accuracy_{arm}"] = comparison.tensors["delta_head_accuracy"]
        return FaithfulnessPhase(
            config=phase_key(c, "faithfulness"),
            tensors=tensors,
            tables={"per_layer": rows, "likelihood": likelihood},
            meta={"base_best_layer": base.best_layer(), "n_test": base.meta.get("n_test")},
        )

    # ---------------------------------------------------------------------------------------------
    # 7. summary

    def summary(self, phases: Sequence[str] = PHASES) -> StudySummary:
        """One table per claim (ours with 95% intervals beside the research note's anchors) as
        `summary.json` and `summary.md`, and every figure under `out/figures/`. Covers the phases
        asked for in this run and those already saved; while GSM8K is still decoding, the arms
        decoded so far as an interim table, and while the swap's pool grows, the pools decoded so
        far (so a run that spans days reports as it goes)."""
        from interp.analyses.reft_study_report import build_summary, write_figures

        included = tuple(p for p in PHASES[:-1] if p in phases or is_saved(self.out / "phases" / p))
        interim = () if "eval" in included else self.interim_arms()
        pools = () if "swap" in included else self.interim_pools()
        key = dataclasses.replace(
            phase_key(self.config, "summary"),
            summary_phases=included
            + tuple(f"eval:{arm}" for arm in interim)
            + tuple(f"pool:{size}" for size in pools),
        )
        methods = {
            "plan": self.plan,
            "number": self.number,
            "train": self.train,
            "eval": self.evaluate,
            "projection": self.project,
            "swap": self.swap,
            "faithfulness": self.faithfulness,
        }

        def compute() -> StudySummary:
            done = {p: methods[p]() for p in included}
            if interim:  # the arms the key names, even if another finishes meanwhile
                done["eval"] = self._interim_evaluation(interim)
            if pools:  # likewise the pools: claim 1 on more problems while the swap waits
                done["swap"] = self._interim_pool(pools)
            summary = build_summary(done, key)
            write_json_atomic(
                self.out / "summary.json", {"tables": summary.tables, "meta": summary.meta}
            )
            (self.out / "summary.md").write_text(summary.markdown() + "\n")
            write_figures({**done, "summary": summary}, self.out)
            return summary

        result = self._phase("summary", compute, key=key)
        print(result.markdown())
        return result


def run(
    model, out: str | Path, phases: Sequence[str] | None = None, **overrides: Any
) -> dict[str, Result]:
    """Run the study's phases on `model` into `out` (see `Study`)."""
    return Study(model, out, **overrides).run(phases)


def load(out: str | Path) -> dict[str, Result]:
    """Every saved phase of a study folder, by phase name (no model needed): what the notebook
    draws the figures from."""
    out = Path(out)
    return {
        phase: kind.load(out / "phases" / phase)
        for phase, kind in PHASE_RESULTS.items()
        if is_saved(out / "phases" / phase)
    }


# The study's public names: its settings and phase results live in reft_study_config and
# reft_study_phases and are reachable from here, so `reft_study.X` is all a notebook needs.
__all__ = [
    "ANCHORS",
    "KL_ARM",
    "PHASES",
    "TINY_SETTINGS",
    "TRAINABLE_ARMS",
    "EvaluationPhase",
    "FaithfulnessPhase",
    "NumberPhase",
    "ProjectionPhase",
    "ReftStudyConfig",
    "Study",
    "StudyPlan",
    "StudySummary",
    "StudyTiming",
    "SwapPhase",
    "TrainingPhase",
    "against_base",
    "choose_steps",
    "load",
    "phase_key",
    "pool_sizes",
    "run",
    "swap_selection",
]
