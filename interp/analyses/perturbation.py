"""Push the residual stream along the number direction and measure n-digit addition errors.

    probe = number_probe.run(model)
    sweep = perturbation.run(model, probe, layers=(8, 12))
    sweep.x_star(12)     # push (in probe units) at which 5 in 1,000 answers go wrong, with a CI

Only problems the unedited model gets right are used, so every error is caused by the push.
Exact greedy correctness comes from one teacher-forced forward per (problem, strength), batched
(see `interp.core.digit_answers`); the direction of each error (answer larger or smaller) comes free.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Bool
from torch import Tensor
from tqdm.auto import tqdm

from interp.analyses import number_probe
from interp.analyses.number_probe import NumberProbeResult
from interp.core.digit_answers import GreedyOutcome, PushSweep, greedy_outcomes
from interp.core.float32_confirmation import Float32Confirmation
from interp.core.positions import AllPositions, PositionRule
from interp.data.arithmetic import (
    ArithmeticDataError,
    addition_problems,
    default_style,
    digit_token_ids,
    encode_problems,
    with_prompt_template,
)
from interp.distributed import Replica, WorkerPool, check_workers, run_units
from interp.interventions import Edit, EditError, PushAlong
from interp.interventions.arms import Arm
from interp.models import model_name
from interp.results import Result, reuse_or_run
from interp.stats import threshold_with_ci, wilson_interval


@dataclass(frozen=True)
class PerturbationConfig:
    layers: tuple[int, ...] | None = None  # None: the layer where the sum probe is best
    strengths: tuple[float, ...] | None = None  # probe units, both signs run; None: bracket first
    coarse_strengths: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
    coarse_problems: int = 32
    n_strengths: int = 8  # grid size after bracketing
    probe_position: str = "last"
    digits: int = 4
    n_problems: int = 300
    style: str | None = None
    prompt_template: str | None = None  # the prompt with {a}, {b} slots; set by run()
    push_positions: dict | None = None  # a PositionRule as dict; None: every position
    threshold: float = 0.005
    n_bootstrap: int = 500
    seed: int = 1
    batch_size: int = 32
    layer_skip: bool = True  # run only the blocks from the push layer up (False: full forwards)
    # a bfloat16 model's outcomes closer than this (logits) are decided again in float32
    # (interp.core.float32_confirmation; e.g. its DEFAULT_MARGIN); None: never. Unused in float32.
    float32_confirmation_margin: float | None = None


@dataclass
class PerturbationResult(Result):
    config_class = PerturbationConfig

    def signed_strengths(self, layer: int | None = None) -> list[float]:
        """The push strengths run at `layer` (its grid, when strengths were bracketed per layer)."""
        return self.tensors["signed_strengths"][self.nearest_layer_row(layer)].tolist()

    def x_star(self, layer: int | None = None) -> float:
        """Threshold push at `layer` (default: the first measured); nearest measured layer otherwise."""
        row = self.nearest_layer_row(layer)
        return float(self.tensors["x_star"][row, 0])

    def x_star_interval(self, layer: int | None = None) -> tuple[float, float]:
        row = self.nearest_layer_row(layer)
        return float(self.tensors["x_star"][row, 1]), float(self.tensors["x_star"][row, 2])

    def error_rate(self, layer: int | None = None) -> list[float]:
        return self.tensors["error_rate"][self.nearest_layer_row(layer)].tolist()

    def nearest_layer_row(self, layer: int | None) -> int:
        """Row of the swept layer closest to `layer` (the first one for None)."""
        if layer is None:
            return 0
        return int(np.argmin([abs(measured - layer) for measured in self.layers]))

    def figure(self):
        from interp.figures.number import error_curve_figure

        return error_curve_figure(self)


def run(
    model,
    probe: NumberProbeResult,
    *,
    float32_model=None,
    workers: int | WorkerPool = 1,
    ray_address: str | None = None,
    **overrides,
) -> PerturbationResult:
    """Sweep push strengths (both signs) at each layer; error rate, direction of errors, x*.

    On a bfloat16 model, outcomes within `float32_confirmation_margin` logits of going the other
    way are decided again by `float32_model` (loaded from the model's source when not given).
    `workers` > 1 (or a `WorkerPool`): one unit per layer (its bracketing and its whole strength
    grid, so the blocks below the layer still run once) on Ray workers (`interp.distributed`).
    """
    check_workers(workers)
    config = with_prompt_template(PerturbationConfig(**overrides), model.tokenizer)
    for name, value in (("n_problems", config.n_problems), ("batch_size", config.batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    if config.strengths is not None and not all(math.isfinite(s) for s in config.strengths):
        raise ValueError(f"strengths must be finite numbers, got {config.strengths}")
    if probe.d_model != model.cfg.d_model:
        raise EditError(
            f"the probe was fit on a model of width {probe.d_model}, this model has width "
            f"{model.cfg.d_model}: fit number_probe.run on this model first"
        )
    layers = list(config.layers) if config.layers else [probe.best_layer(config.probe_position)]
    for layer in layers:
        if not 0 <= layer < model.cfg.n_layers:
            raise EditError(
                f"layer {layer} is out of range: this model has layers 0..{model.cfg.n_layers - 1}"
            )
        probe.direction(layer, config.probe_position)  # a clear error if that layer was not probed
    rule = (
        PositionRule.from_dict(config.push_positions) if config.push_positions else AllPositions()
    )
    style = config.style
    encoded = encode_problems(
        addition_problems(config.n_problems, config.digits, seed=config.seed),
        model.tokenizer,
        style,
    )
    digit_ids = digit_token_ids(model.tokenizer)
    confirmation = Float32Confirmation.for_model(
        model, config.float32_confirmation_margin, float32_model
    )
    base = confirmed_outcomes(model, encoded, digit_ids, (), config.batch_size, confirmation)
    correct = [e for e, ok in zip(encoded, base.correct.tolist()) if ok]
    if not correct:
        raise ArithmeticDataError(
            f"the unedited model gets none of {len(encoded)} {config.digits}-digit problems right "
            f"({style} prompts): use fewer digits, another prompt style, or a stronger model"
        )
    n = len(correct)
    local = not isinstance(workers, WorkerPool) and workers == 1
    work = functools.partial(
        sweep_layer,
        probe=probe,
        rows=correct,
        digit_ids=digit_ids,
        rule=rule,
        config=config,
        # a worker makes its own float32 copy (from the model's source) where one is needed
        confirmation=confirmation if local else None,
        progress=local,
    )

    def record(_: int, swept: LayerSweep) -> None:
        if confirmation is not None and not local:
            confirmation.outcomes_seen += swept.confirmed[0]
            confirmation.checked += swept.confirmed[1]
            confirmation.changed += swept.confirmed[2]

    sweeps = run_units(
        layers,
        work,
        [Arm.of(model)],
        workers=workers,
        address=ray_address,
        on_result=record,
        progress=False,
        desc="push sweep",
    )
    grids = [swept.grid for swept in sweeps]
    coarse_rows = [row for swept in sweeps for row in swept.coarse_rows]
    signed_grid = [[-m for m in reversed(grid)] + grid for grid in grids]
    errors = torch.stack([swept.errors for swept in sweeps])
    moved = torch.stack([swept.moved for swept in sweeps])
    tensors, table = _summarise(layers, signed_grid, grids, errors, moved, config)
    tensors["base_correct"] = base.correct.clone()  # which problems the sweep's rows are
    meta = {
        "model": model_name(model),
        "style": style,
        "n_problems": len(encoded),
        "n_base_correct": n,
        "base_accuracy": n / len(encoded),
    }
    if confirmation is not None:
        meta["float32_confirmation"] = confirmation.summary()
    tables = {"sweep": table, "coarse": coarse_rows}
    return PerturbationResult(config=config, tensors=tensors, tables=tables, meta=meta)


def probe_and_sweep(
    model,
    folder: str | Path,
    probe_settings: dict,
    sweep_settings: dict,
    *,
    resume: bool = True,
    float32_model=None,
    workers: int | WorkerPool = 1,
    ray_address: str | None = None,
) -> tuple[NumberProbeResult, PerturbationResult]:
    """The number probe and the push sweep on it, into `folder`/probe and `folder`/sweep, each
    loaded instead when saved there for the same settings and model (the number-probe command's
    first two steps; the ReFT study's number phase)."""
    folder = Path(folder)
    probe_config = with_prompt_template(
        number_probe.NumberProbeConfig(**probe_settings), model.tokenizer
    )
    probe = reuse_or_run(
        folder / "probe",
        NumberProbeResult,
        probe_config,
        lambda: number_probe.run(model, **probe_config.__dict__),
        resume,
        model=model,
    )
    sweep_config = with_prompt_template(PerturbationConfig(**sweep_settings), model.tokenizer)
    sweep = reuse_or_run(
        folder / "sweep",
        PerturbationResult,
        sweep_config,
        lambda: run(
            model,
            probe,
            float32_model=float32_model,
            workers=workers,
            ray_address=ray_address,
            **sweep_settings,
        ),
        resume,
        model=model,
    )
    return probe, sweep


def edit_breaks(
    model,
    edit_list,
    digits: int = 4,
    n_problems: int = 300,
    seed: int = 1,
    style=None,
    batch_size: int = 32,
    float32_confirmation_margin: float | None = None,
    float32_model=None,
    unedited_correct: Bool[Tensor, " n_problems"] | None = None,
) -> dict:
    """How many problems the unedited model gets right does an edit break? (a direct check of x*)

    On a bfloat16 model, close calls are decided again in float32 as in `run`.
    `unedited_correct` (a sweep's `tensors["base_correct"]` on the same problems) saves the
    unedited forward, which the sweep already ran.
    """
    style = style or default_style(model.tokenizer)
    encoded = encode_problems(
        addition_problems(n_problems, digits, seed=seed), model.tokenizer, style
    )
    digit_ids = digit_token_ids(model.tokenizer)
    confirmation = Float32Confirmation.for_model(model, float32_confirmation_margin, float32_model)
    if unedited_correct is None:
        unedited_correct = confirmed_outcomes(
            model, encoded, digit_ids, (), batch_size, confirmation
        ).correct
    elif len(unedited_correct) != len(encoded):
        raise ValueError(
            f"unedited_correct has {len(unedited_correct)} entries for {len(encoded)} problems: "
            "pass the base_correct of a sweep run with the same digits, n_problems, seed and style"
        )
    correct = [e for e, ok in zip(encoded, unedited_correct.tolist()) if ok]
    if not correct:
        raise ArithmeticDataError(f"the unedited model gets none of {n_problems} problems right")
    edited = confirmed_outcomes(model, correct, digit_ids, edit_list, batch_size, confirmation)
    broken = int((~edited.correct).sum())
    low, high = wilson_interval(broken, len(correct))
    return {
        "n_base_correct": len(correct),
        "n_broken": broken,
        "broken_rate": broken / len(correct),
        "broken_low": low,
        "broken_high": high,
        **({"float32_confirmation": confirmation.summary()} if confirmation else {}),
    }


def confirmed_outcomes(model, rows, digit_ids, edit_list, batch_size, confirmation):
    """`greedy_outcomes`, with the close calls decided again in float32 when `confirmation` is set."""
    if confirmation is None:
        return greedy_outcomes(model, rows, digit_ids, edit_list, batch_size, progress=True)
    outcome = greedy_outcomes(
        model, rows, digit_ids, edit_list, batch_size, progress=True, margins=True
    )
    return confirmation.confirm(
        outcome,
        lambda close: greedy_outcomes(
            confirmation.model, [rows[i] for i in close], digit_ids, edit_list, batch_size
        ),
    )


@dataclass
class LayerSweep:
    """One layer's sweep: its strength grid, the coarse rows that chose it, and per signed
    strength and problem whether the answer broke and which way it moved."""

    grid: list[float]
    coarse_rows: list[dict]
    errors: torch.Tensor  # [2 * strengths, problems] bool
    moved: torch.Tensor  # [2 * strengths, problems] long
    confirmed: tuple[int, int, int] = (0, 0, 0)  # float32 confirmation counts of this unit


def sweep_layer(
    replica: Replica,
    layer: int,
    *,
    probe: NumberProbeResult,
    rows,
    digit_ids,
    rule: PositionRule,
    config: PerturbationConfig,
    confirmation: Float32Confirmation | None,
    progress: bool,
) -> LayerSweep:
    """One unit of work: bracket (unless strengths are fixed) and sweep the pushes at `layer`."""
    model = replica.model
    if confirmation is None:
        confirmation = Float32Confirmation.for_model(model, config.float32_confirmation_margin)
    before = _confirmation_counts(confirmation)
    coarse_rows: list[dict] = []
    if config.strengths:
        grid = sorted(set(abs(s) for s in config.strengths if s != 0))
    else:
        few = _pusher(
            model,
            probe,
            layer,
            rows[: config.coarse_problems],
            digit_ids,
            rule,
            config,
            confirmation,
        )
        grid, coarse_rows = _bracket(few, layer, config)
    signed = [-m for m in reversed(grid)] + grid
    pusher = _pusher(model, probe, layer, rows, digit_ids, rule, config, confirmation)
    outcomes = pusher(signed, progress=progress)
    after = _confirmation_counts(confirmation)
    return LayerSweep(
        grid=grid,
        coarse_rows=coarse_rows,
        errors=torch.stack([~outcome.correct for outcome in outcomes]),
        moved=torch.stack([outcome.moved.long() for outcome in outcomes]),
        confirmed=tuple(a - b for a, b in zip(after, before)),
    )


def _confirmation_counts(confirmation: Float32Confirmation | None) -> tuple[int, int, int]:
    if confirmation is None:
        return (0, 0, 0)
    return (confirmation.outcomes_seen, confirmation.checked, confirmation.changed)


def _pusher(model, probe, layer, rows, digit_ids, rule, config, confirmation=None):
    """A function strengths -> greedy outcomes of `rows` under pushes along the probe at `layer`.

    With `config.layer_skip` the residual entering the layer is computed once and each strength
    runs only the blocks from `layer` up (`interp.core.digit_answers.PushSweep`); otherwise every
    strength is a full forward with the push hooked in. Both give the same outcomes (tested).
    With `confirmation`, each strength's close calls are decided again in float32 the same way:
    by a float32 `PushSweep` over the same rows (built at the first close call), or by full
    float32 forwards without `layer_skip`.
    """
    direction = probe.direction(layer, config.probe_position)
    unit = probe.unit_length(layer, config.probe_position)
    hook = f"blocks.{layer}.{probe.config.site}"

    def push(amounts) -> Edit:
        return Edit(hook, PushAlong(direction, amounts, unit), rule)

    margins = confirmation is not None
    if config.layer_skip:
        sweep = PushSweep(
            model, rows, digit_ids, push, layer, config.batch_size, margins=margins
        ).outcomes
    else:

        def sweep(strengths, progress=False):
            return [
                greedy_outcomes(
                    model, rows, digit_ids, [push(s)], config.batch_size, margins=margins
                )
                for s in tqdm(strengths, disable=not progress, desc=f"pushes at layer {layer}")
            ]

    if confirmation is None:
        return sweep

    @functools.cache
    def float32_sweep() -> PushSweep:  # built at the first close call, then reused
        return PushSweep(confirmation.model, rows, digit_ids, push, layer, config.batch_size)

    def in_float32(strength: float, close: list[int]) -> GreedyOutcome:
        if not config.layer_skip:
            return greedy_outcomes(
                confirmation.model,
                [rows[i] for i in close],
                digit_ids,
                [push(strength)],
                config.batch_size,
            )
        return float32_sweep().outcomes_for(strength, close)

    def confirmed(strengths, progress=False):
        return [
            confirmation.confirm(outcome, functools.partial(in_float32, s))
            for s, outcome in zip(strengths, sweep(strengths, progress=progress))
        ]

    return confirmed


def _bracket(pusher, layer, config):
    """Find the push scale where errors start, on a few problems and a coarse geometric grid.

    Models differ by orders of magnitude in how far along a probe direction they tolerate a push,
    so a fixed grid either misses the threshold or wastes the sweep. The fine grid spans from half
    the largest coarse strength with no error at all (so x* is bracketed from below, not
    extrapolated from zero) to twice the first with at least 2% errors.
    """
    coarse = sorted(config.coarse_strengths)
    rows, first_hit = [], None
    for magnitude in tqdm(coarse, desc=f"bracketing layer {layer}"):
        outcomes = pusher([-magnitude, magnitude])
        wrong = sum(int((~o.correct).sum()) for o in outcomes)
        n = sum(len(o.correct) for o in outcomes)
        rate = wrong / n
        rows.append({"layer": layer, "strength": magnitude, "error_rate": rate, "n": n})
        if rate >= 0.02:
            first_hit = magnitude
            break
    clean = [r["strength"] for r in rows if r["error_rate"] == 0]
    high = coarse[-1] if first_hit is None else first_hit
    low = clean[-1] if clean else coarse[0] / 10
    grid = np.geomspace(low / 2, high * 2, config.n_strengths)
    return [float(f"{g:.3g}") for g in grid], rows


def _summarise(layers, signed_grid, grids, errors, moved, config):
    """Rates, Wilson intervals, the share of errors in the push's direction, and x* per layer."""
    n = errors.shape[-1]
    sign = torch.tensor(signed_grid).sign().long()[:, :, None]
    with_push = (moved == sign) & errors
    error_rate = errors.float().mean(-1)
    x_star = []
    table = []
    for li, layer in enumerate(layers):
        signed, magnitudes = signed_grid[li], grids[li]
        pooled = np.stack(
            [
                np.concatenate(
                    [errors[li, signed.index(m)].numpy(), errors[li, signed.index(-m)].numpy()]
                )
                for m in magnitudes
            ]
        )
        x_star.append(
            threshold_with_ci(
                np.array(magnitudes), pooled, config.threshold, config.n_bootstrap, config.seed
            )
        )
        for si, strength in enumerate(signed):
            n_errors = int(errors[li, si].sum())
            low, high = wilson_interval(n_errors, n)
            table.append(
                {
                    "layer": layer,
                    "strength": strength,
                    "error_rate": n_errors / n,
                    "error_low": low,
                    "error_high": high,
                    "moved_with_push": int(with_push[li, si].sum()) / n,
                    "n": n,
                }
            )
    tensors = {
        "layers": torch.tensor(layers),
        "signed_strengths": torch.tensor(signed_grid),
        "error_rate": error_rate,
        "moved_with_push_rate": with_push.float().mean(-1),
        "errors": errors,
        "moved": moved,
        "x_star": torch.tensor(x_star, dtype=torch.float64),
    }
    return tensors, table
