"""Representation fine-tuning vs math reasoning: one table of arms on a seeded GSM8K subset.

    result = reft_compare.run(model, out="runs/reft_compare")
    result.tables["arms"]     # arm, accuracy (95% CI), mean tokens, bias norm, ...
    result.figure()           # accuracy and answer length per arm

Arms (each trained on the same seeded GSM8K training pairs, then decoded greedily on the same
seeded test problems through `interp.analyses.math_eval`):

| arm | training loss | edit positions when decoding |
| --- | --- | --- |
| base | - | - |
| red_all | whole answer | every token |
| red_prefix | first K answer tokens (a share of full answers kept) | prompt + first k generated |
| red_prefix_pid | as red_prefix, bias norm held by the PID (penalty form) | prompt + first k generated |
| red_prefix_pid_kl | the red_prefix_pid edit | every token until KL(edited, plain) passes the budget |
| lora | whole answer, LoRA on chosen linear layers | (weights: every token) |
| loreft | whole answer, LoReFT at chosen layers | every token |

`red_prefix_pid_reference` (the PID form of the BREP study's code, arXiv 2511.10707: the controlled
weight scales the cross-entropy) is trained too, for the bias-norm trajectories
(`interp.figures.training.bias_trajectories_figure`); add it to `eval_arms` to decode it as well. Everything lands in `out`: checkpoints and training histories
under `train/<arm>`, evaluations under `eval/<arm>`; a run started again reuses what is there
(a training interrupted mid-way resumes from its last saved state).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from interp.core.positions import AllPositions, PositionRule, PromptAndFirstGenerated
from interp.distributed import WorkerPool, check_workers, pool_for
from interp.figures.training import reft_compare_figure
from interp.interventions import RED, Edit, LoReFT
from interp.interventions.lora import LoRA
from interp.models import model_name
from interp.results import Result, check_saved_model, write_json_atomic
from interp.storage import is_saved
from interp.training import checkpoints
from interp.training.data import encode_pairs, gsm8k_pairs
from interp.training.pid import BiasControl
from interp.training.trainer import TrainConfig, TrainResult, train

TRAINED_ARMS = (
    "red_all",
    "red_prefix",
    "red_prefix_pid",
    "red_prefix_pid_reference",
    "lora",
    "loreft",
)
EVAL_ARMS = (
    "base",
    "red_all",
    "red_prefix",
    "red_prefix_pid",
    "red_prefix_pid_kl",
    "lora",
    "loreft",
)
# which trained edit each evaluated arm decodes with
SOURCE = {"red_prefix_pid_kl": "red_prefix_pid"}
# the order arms are trained and decoded in (the table grows in this order)
ORDER = (
    "base",
    "red_all",
    "red_prefix",
    "red_prefix_pid_reference",
    "red_prefix_pid",
    "red_prefix_pid_kl",
    "lora",
    "loreft",
)


@dataclass(frozen=True)
class ReftCompareConfig:
    """Everything that decides the table; saved with it (seeds included)."""

    n_train: int = 256
    train_seed: int = 0
    max_answer_tokens: int | None = 128
    epochs: int = 1
    batch_size: int = 4
    grad_accum: int = 1
    red_hook: str = "mlp.hook_pre_linear"  # BREP's code edits here (up_proj output, MLP width)
    red_lr: float = 1e-3
    prefix_tokens: int = 32  # K of prefix training
    full_share: float = 0.1  # share of full-answer examples kept in prefix training
    decode_prefix: int = 8  # k: prompt + first k generated tokens edited when decoding
    bias_target: float = 0.54
    kl_budget: float = 1.0
    lora_rank: int = 8
    lora_modules: tuple[str, ...] = ("q_proj", "v_proj")
    lora_lr: float = 5e-4
    loreft_rank: int = 4
    loreft_layers: tuple[int, ...] | None = None  # None: every 4th layer
    loreft_lr: float = 1e-3
    n_eval: int = 50
    eval_seed: int = 0
    eval_split: str = "test"
    max_new_tokens: int = 320
    eval_batch_size: int = 8
    prompt_style: str = "chat"  # math_eval's prompt: the model's chat template
    trained_arms: tuple[str, ...] = TRAINED_ARMS
    eval_arms: tuple[str, ...] = EVAL_ARMS


@dataclass
class ReftCompareResult(Result):
    config_class = ReftCompareConfig

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.tables["arms"]

    def markdown(self) -> str:
        """The table as markdown (accuracy with its 95% interval, tokens, bias norm)."""
        lines = [
            "| arm | accuracy (95% CI) | mean tokens | hit cap | mean bias norm | KL stop (mean) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in self.rows:
            norm = "-" if r.get("bias_norm") is None else f"{r['bias_norm']:.3f}"
            stop = "-" if r.get("mean_edit_stop") is None else f"{r['mean_edit_stop']:.1f}"
            lines.append(
                f"| {r['arm']} | {r['accuracy']:.1%} ({r['accuracy_low']:.1%}–"
                f"{r['accuracy_high']:.1%}) | {r['mean_tokens']:.0f} | {r['cap_rate']:.0%} | "
                f"{norm} | {stop} |"
            )
        return "\n".join(lines)

    def figure(self):
        return reft_compare_figure(self)


def _train_config(arm: str, config: ReftCompareConfig) -> TrainConfig:
    common = dict(
        epochs=config.epochs,
        batch_size=config.batch_size,
        grad_accum=config.grad_accum,
        seed=config.train_seed,
        max_answer_tokens=config.max_answer_tokens,
        save_every=4,
    )
    prefix = dict(prefix_tokens=config.prefix_tokens, full_share=config.full_share)
    if arm == "red_all":
        return TrainConfig(learning_rate=config.red_lr, **common)
    if arm == "red_prefix":
        return TrainConfig(learning_rate=config.red_lr, **prefix, **common)
    if arm in ("red_prefix_pid", "red_prefix_pid_reference"):
        form = "penalty" if arm == "red_prefix_pid" else "loss_scale"
        control = BiasControl(form=form, target=config.bias_target)
        return TrainConfig(learning_rate=config.red_lr, bias_control=control, **prefix, **common)
    if arm == "lora":
        return TrainConfig(learning_rate=config.lora_lr, **common)
    if arm == "loreft":
        return TrainConfig(learning_rate=config.loreft_lr, **common)
    raise ValueError(f"unknown arm {arm!r}; known: {TRAINED_ARMS}")


def _fresh_trainable(model, arm: str, config: ReftCompareConfig) -> list[Edit] | LoRA:
    """Untrained edits (or LoRA) of an arm; RED and LoReFT touch every position in training."""
    n_layers = int(model.cfg.n_layers)
    if arm.startswith("red"):
        hook = config.red_hook
        width = model.cfg.d_mlp if hook.startswith("mlp.") else model.cfg.d_model
        return [Edit(f"blocks.{layer}.{hook}", RED(width)) for layer in range(n_layers)]
    if arm == "loreft":
        layers = config.loreft_layers or tuple(range(0, n_layers, 4))
        return [
            Edit(f"blocks.{layer}.hook_resid_post", LoReFT(model.cfg.d_model, config.loreft_rank))
            for layer in layers
        ]
    if arm == "lora":
        return LoRA.for_model(
            model, modules=config.lora_modules, rank=config.lora_rank, seed=config.train_seed
        )
    raise ValueError(f"unknown arm {arm!r}")


def train_arm(model, arm: str, pairs, config: ReftCompareConfig, out: Path, progress=True):
    """Train one arm (or load it when `out/train/<arm>` holds it); returns (trained, history)."""
    folder = out / "train" / arm
    train_config = _train_config(arm, config)
    history_dir = folder / "history"
    if is_saved(history_dir):
        history = TrainResult.load(history_dir)
        check_saved_model(history, model, history_dir)
        if history.config == train_config:
            return checkpoints.load(folder / "checkpoint", model), history
    trainable = _fresh_trainable(model, arm, config)
    kwargs = {"lora": trainable} if isinstance(trainable, LoRA) else {"edit_list": trainable}
    history = train(
        model, pairs, config=train_config, state_dir=folder / "state", progress=progress, **kwargs
    )
    checkpoints.save(folder / "checkpoint", model, result=history, arm=arm, **kwargs)
    history.save(history_dir)
    return trainable, history


def _decoding_edits(arm: str, trained, config: ReftCompareConfig) -> list[Edit]:
    rule: PositionRule = AllPositions()
    if arm in ("red_prefix", "red_prefix_pid", "red_prefix_pid_reference"):
        rule = PromptAndFirstGenerated(config.decode_prefix)
    return [Edit(e.hook, e.function, rule) for e in trained]


def run(
    model,
    *,
    out: str | os.PathLike = "runs/reft_compare",
    probe_dir: str | os.PathLike | None = None,
    progress: bool = True,
    workers: int | WorkerPool = 1,
    ray_address: str | None = None,
    **overrides: Any,
) -> ReftCompareResult:
    """Train the arms, decode the GSM8K subset with each, and tabulate accuracy and tokens.

    With `probe_dir` (a `number-probe` output folder with `probe/` and `sweep/` for this model),
    each trained RED is also projected on the number direction (share of changes beyond x*).
    `workers` > 1 (or a `WorkerPool`): each edit arm's decoding runs on Ray workers that load the
    model once for all arms (`math_eval.run`'s `workers`); training, and decoding the LoRA arm
    (it changes the model's weights, which the workers do not hold), stay in this process.
    """
    check_workers(workers)
    config = ReftCompareConfig(**overrides)
    for name, value in (
        ("n_train", config.n_train),
        ("batch_size", config.batch_size),
        ("grad_accum", config.grad_accum),
        ("epochs", config.epochs),
        ("n_eval", config.n_eval),
        ("max_new_tokens", config.max_new_tokens),
        ("eval_batch_size", config.eval_batch_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    unknown = set(config.eval_arms) - set(EVAL_ARMS) - set(TRAINED_ARMS)
    if unknown:
        raise ValueError(f"unknown arms {sorted(unknown)}; known: {EVAL_ARMS + TRAINED_ARMS}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.partial.json", asdict(config))
    needed = set(config.trained_arms) | {SOURCE.get(a, a) for a in config.eval_arms if a != "base"}
    encoded = None
    trained: dict[str, Any] = {}
    histories: dict[str, TrainResult] = {}
    rows: list[dict[str, Any]] = []
    result = None
    with pool_for(model, workers, ray_address) as shared_workers:
        # train and decode arm by arm, writing the table after each, so a cut-short run keeps its rows
        for arm in ORDER:
            source = SOURCE.get(arm, arm)
            if arm != "base" and source in needed and source not in trained:
                if encoded is None:
                    pairs = gsm8k_pairs(model.tokenizer, n=config.n_train, seed=config.train_seed)
                    encoded = encode_pairs(
                        pairs, model.tokenizer, max_answer_tokens=config.max_answer_tokens
                    )
                trained[source], histories[source] = train_arm(
                    model, source, encoded, config, out, progress=progress
                )
            if arm not in config.eval_arms:
                continue
            evaluation = _evaluate(
                model, arm, trained.get(source), config, out, progress, shared_workers
            )
            rows.append(_row(arm, evaluation, histories.get(source)))
            result = _tabulate(model, config, rows, histories, probe_dir, out)
    if result is None:
        result = _tabulate(model, config, rows, histories, probe_dir, out)
    if probe_dir:
        projections = edit_projections(model, trained, probe_dir)
        for row in rows:
            row.update(projections.get(SOURCE.get(row["arm"], row["arm"]), {}))
        result = _tabulate(model, config, rows, histories, probe_dir, out)
    return result


def _evaluate(
    model,
    arm: str,
    trained,
    config: ReftCompareConfig,
    out: Path,
    progress: bool,
    workers: int | WorkerPool = 1,
):
    """Decode the GSM8K subset with one arm (math_eval resumes from `out/eval/<arm>`)."""
    from interp.analyses import math_eval

    kwargs: dict[str, Any] = dict(
        dataset="gsm8k",
        split=config.eval_split,
        n_problems=config.n_eval,
        seed=config.eval_seed,
        prompt_style=config.prompt_style,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.eval_batch_size,
        out=out / "eval" / arm,
        progress=progress,
    )
    if arm == "red_prefix_pid_kl":
        kwargs["kl_budget"] = config.kl_budget
    if isinstance(trained, LoRA):
        with trained.applied(model):
            return math_eval.run(model, **kwargs)
    kwargs["workers"] = workers
    if arm == "base":
        return math_eval.run(model, **kwargs)
    return math_eval.run(model, edit_list=_decoding_edits(arm, trained, config), **kwargs)


def _tabulate(model, config, rows, histories, probe_dir, out: Path) -> ReftCompareResult:
    trajectories = [
        {"arm": arm, **{k: h[k] for k in ("step", "loss", "bias_norm", "control_weight") if k in h}}
        for arm, history in histories.items()
        for h in history.history
    ]
    meta = {"model": model_name(model), "probe_dir": str(probe_dir) if probe_dir else None}
    result = ReftCompareResult(
        config=config, tables={"arms": list(rows), "trajectories": trajectories}, meta=meta
    )
    result.save(out / "table")
    (out / "table.md").write_text(result.markdown() + "\n")
    return result


def _row(arm: str, result, history: TrainResult | None) -> dict[str, Any]:
    low, high = result.accuracy_interval
    row = {
        "arm": arm,
        "n": result.n,
        "correct": result.n_correct,
        "accuracy": result.accuracy,
        "accuracy_low": low,
        "accuracy_high": high,
        "mean_tokens": result.mean_tokens,
        "cap_rate": result.cap_rate,
        "bias_norm": None,
        "final_train_loss": None,
        "mean_edit_stop": None,
    }
    if history is not None:
        last = history.history[-1]
        row["bias_norm"] = last.get("bias_norm")
        row["final_train_loss"] = sum(r["loss"] for r in history.history[-4:]) / min(
            4, len(history.history)
        )
        row["train_seconds"] = history.meta.get("seconds")
    stops = [r.get("edit_stop") for r in result.rows if "edit_stop" in r]
    if stops:
        n_generated = [r["n_tokens"] for r in result.rows]
        # a sequence that never passed the budget was edited to its end
        ends = [s if s is not None else n for s, n in zip(stops, n_generated)]
        row["mean_edit_stop"] = sum(ends) / len(ends)
        row["never_stopped"] = sum(s is None for s in stops)
    return row


def edit_projections(model, trained: dict[str, Any], probe_dir) -> dict[str, dict[str, Any]]:
    """Share of each trained RED's residual changes beyond x* at the sweep's layers."""
    from interp.analyses import number_probe, perturbation, projection

    probe_dir = Path(probe_dir)
    probe = number_probe.NumberProbeResult.load(probe_dir / "probe")
    sweep = perturbation.PerturbationResult.load(probe_dir / "sweep")
    if probe.meta.get("model") != model_name(model):
        raise ValueError(
            f"{probe_dir} holds probes of {probe.meta.get('model')!r}, not {model_name(model)!r}"
        )
    shares = {}
    for arm, edits_or_lora in trained.items():
        if not arm.startswith("red"):
            continue
        proj = projection.run(
            model,
            edits_or_lora,
            probe,
            perturbation=sweep,
            layers=tuple(sweep.layers),
            edit_description=arm,
        )
        share = proj.share_beyond_threshold()
        shares[arm] = {
            "share_beyond_x_star": json.dumps({str(k): v for k, v in share.items()}),
            "mean_abs_projection": float(proj.tensors["projections"].abs().mean()),
        }
    return shares


__all__ = [
    "EVAL_ARMS",
    "TRAINED_ARMS",
    "ReftCompareConfig",
    "ReftCompareResult",
    "run",
    "train_arm",
]
