"""Train edits (RED, LoReFT, DiReFT, ...) and/or a LoRA on a frozen model.

    red = [Edit(f"blocks.{l}.mlp.hook_pre_linear", RED(model.cfg.d_mlp)) for l in range(n_layers)]
    result = trainer.train(model, pairs, edit_list=red, config=TrainConfig(prefix_tokens=32))

AdamW with linear warm-up and a cosine decay, gradient accumulation and clipping, a seeded data
order; the loss is the cross-entropy of the answer tokens (all of them, or the first K with a share
of full-answer examples kept). Each forward runs through `interp.core.runner` with a `TokenState` whose prompt lengths mark the
answer as "generated", so position rules such as `PromptAndFirstGenerated(k)` touch in training
exactly what they touch when decoding. Optional bias-norm control (`interp.training.pid`). Every
optimizer step is logged (loss, learning rate, bias norms, controller weight); long runs save a
resumable state every `save_every` steps.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.core.runner import forward
from interp.core.tokens import pad_token_id
from interp.distributed.data_parallel import (
    all_reduce_gradients,
    all_reduce_sum,
    broadcast_parameters,
    rank,
    rank_slice,
    world_size,
)
from interp.interventions import Edit, edits
from interp.interventions.functions import RED
from interp.interventions.lora import LoRA
from interp.models import model_name
from interp.models.fingerprint import fingerprint_difference, model_fingerprint
from interp.results import Result
from interp.storage import differing_keys, remove_dead_temporaries, temporary_path
from interp.training.data import EncodedPair, Pair, encode_pairs
from interp.training.masks import (
    IGNORE,
    Batch,
    full_answer_examples,
    loss_token_counts,
    make_batch,
)
from interp.training.pid import BiasControl, PIDController, bias_norms


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Saved with every checkpoint and result (seed included)."""

    learning_rate: float = 1e-3
    weight_decay: float = 0.0  # decoupled decay would pull RED's scale towards 0, not 1
    warmup_ratio: float = 0.1
    epochs: int = 1
    max_steps: int | None = None  # optimizer steps; None: epochs decide
    batch_size: int = 4
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0
    seed: int = 0
    prefix_tokens: int | None = None  # None: loss on the whole answer; K: on its first K tokens
    full_share: float = 0.0  # with prefix_tokens: share of examples keeping the full answer
    max_answer_tokens: int | None = None
    max_length: int | None = None
    group_by_length: bool = True  # batch similar lengths together (less padding), order seeded
    bias_control: BiasControl | None = None
    save_every: int = 0  # optimizer steps between resumable states (0: never)

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be positive")
        if self.batch_size < 1 or self.grad_accum < 1 or self.epochs < 1:
            raise ValueError("batch_size, grad_accum and epochs must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(
                f"max_steps must be at least 1 (got {self.max_steps}); leave it unset (None) to "
                f"train for `epochs` full passes over the data"
            )
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("warmup_ratio must be in [0, 1)")
        if self.full_share and self.prefix_tokens is None:
            raise ValueError("full_share only applies to prefix training: set prefix_tokens too")
        if isinstance(self.bias_control, dict):  # rebuilt from JSON
            object.__setattr__(self, "bias_control", BiasControl(**self.bias_control))


@dataclass
class TrainResult(Result):
    """History of a training run: one row per optimizer step in `tables["history"]`."""

    config_class = TrainConfig

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.tables["history"]

    def figure(self):
        from interp.figures.training import training_figure

        return training_figure(self)


@contextlib.contextmanager
def frozen(model) -> Iterator[None]:
    """Switch off gradients for every model weight inside the block; restore the flags after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def attached(model, edit_list: Sequence[Edit] = (), lora: LoRA | None = None) -> Iterator[None]:
    """Attach the edits and the LoRA (if any) for the block; both are always detached after."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(edits(model, edit_list))
        if lora is not None:
            stack.enter_context(lora.applied(model))
        yield


def trainable_parameters(
    edit_list: Sequence[Edit] = (), lora: LoRA | None = None
) -> list[torch.nn.Parameter]:
    params = [p for e in edit_list for p in e.function.parameters()]
    if lora is not None:
        params += list(lora.parameters())
    if not params:
        raise ValueError(
            "nothing to train: give edits with parameters (RED, LoReFT, DiReFT) or a LoRA"
        )
    for p in params:
        # Trained parameters are float32 master copies on purpose, in any model dtype (the edit
        # casts them to the activation's dtype in its forward); AdamW's state follows them.
        if p.is_floating_point() and p.dtype != torch.float32:
            p.data = p.data.float()
    return params


def answer_loss(
    model, batch: Batch, reduction: str = "mean"
) -> Float[Tensor, ""] | Float[Tensor, " batch"]:
    """Cross-entropy of the target tokens: mean per example, then over the batch ("mean")."""
    mask = batch.loss_mask
    # The unembedding runs only at positions where some row has a loss (most prompt positions
    # have none): a large share of the compute for big vocabularies.
    keep = mask.any(0).nonzero()[:, 0]
    run = dict(prompt_lengths=batch.prompt_lengths)
    try:
        logits = forward(model, batch.tokens, batch.attention_mask, **run, logits_to_keep=keep)
    except TypeError:  # a Hugging Face model without `logits_to_keep`: every position
        logits = forward(model, batch.tokens, batch.attention_mask, **run)[:, keep]
    mask, targets = mask[:, keep], batch.targets[:, keep]
    # Only the positions with a loss go through the softmax, in float32 on purpose whatever the
    # model's dtype: the loss and its log-softmax decide the gradients.
    picked = logits[mask].float()
    token_loss = torch.nn.functional.cross_entropy(picked, targets[mask], reduction="none")
    rows = mask.nonzero()[:, 0]
    per_example = torch.zeros(batch.tokens.shape[0], device=token_loss.device).index_add(
        0, rows, token_loss
    ) / mask.sum(-1).clamp(min=1)
    return per_example.mean() if reduction == "mean" else per_example


def learning_rate_at(step: int, total: int, base: float, warmup_ratio: float) -> float:
    """Linear warm-up over the first `warmup_ratio` of the steps, then cosine decay to zero."""
    warmup = int(math.ceil(warmup_ratio * total))
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _batches(
    encoded: list[EncodedPair], counts: list[int], config: TrainConfig, epoch: int
) -> list[list[int]]:
    """Example indices per micro-batch for one epoch: a seeded order, similar lengths grouped."""
    order = list(range(len(encoded)))
    rng = random.Random(config.seed * 1000 + epoch)
    rng.shuffle(order)
    size = config.batch_size
    if config.group_by_length:
        window = size * 16
        grouped = []
        for start in range(0, len(order), window):
            chunk = order[start : start + window]
            chunk.sort(key=lambda i: len(encoded[i].prompt_ids) + counts[i])
            grouped.extend(chunk)
        batches = [grouped[i : i + size] for i in range(0, len(grouped), size)]
        rng.shuffle(batches)
        return batches
    return [order[i : i + size] for i in range(0, len(order), size)]


def _bias_functions(edit_list: Sequence[Edit]) -> list[RED]:
    return [e.function for e in edit_list if isinstance(e.function, RED)]


def train(
    model,
    pairs: Sequence[Pair] | Sequence[EncodedPair],
    *,
    edit_list: Sequence[Edit] = (),
    lora: LoRA | None = None,
    config: TrainConfig | None = None,
    state_dir: str | os.PathLike | None = None,
    progress: bool = True,
    **overrides: Any,
) -> TrainResult:
    """Train the edits' (and LoRA's) parameters on `pairs`; the model's weights never change.

    `state_dir` keeps a resumable state (every `config.save_every` steps); a run started again with
    the same config, model (name and weights fingerprint), trainable shapes and data continues from
    it; anything else is refused with a message saying what differs.

    Data parallel: inside a torch.distributed process group of N ranks (torchrun, or
    `interp.distributed.data_parallel.spawn`), each rank computes its slice of every global batch
    and the edits' gradients are summed over ranks, so every rank takes the one-process step (to
    float rounding) and logs, clips and controls the same values; rank 0 writes the state.
    """
    config = TrainConfig(**{**(asdict(config) if config else {}), **overrides})
    if not pairs:
        raise ValueError("no training pairs given")
    encoded = (
        list(pairs)
        if isinstance(pairs[0], EncodedPair)
        else encode_pairs(
            pairs,
            model.tokenizer,
            max_answer_tokens=config.max_answer_tokens,
            max_length=config.max_length,
        )
    )
    _check_context(model, encoded)
    full = (
        full_answer_examples(len(encoded), config.full_share, config.seed)
        if config.prefix_tokens is not None
        else [True] * len(encoded)
    )
    counts = loss_token_counts(encoded, config.prefix_tokens, full)
    params = trainable_parameters(edit_list, lora)
    reds = _bias_functions(edit_list)
    controller = None
    if config.bias_control is not None:
        bias_norms(reds)  # clear error when there is no RED to control
        controller = PIDController(config.bias_control)
    broadcast_parameters(params)  # data parallel: every rank starts from rank 0's edits
    torch.manual_seed(config.seed)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    n_micro = math.ceil(len(encoded) / config.batch_size)
    steps_per_epoch = math.ceil(n_micro / config.grad_accum)
    total = config.max_steps or steps_per_epoch * config.epochs
    history: list[dict[str, Any]] = []
    start_step, seconds = 0, 0.0
    state_path = Path(state_dir) / "train_state.pt" if state_dir else None
    run_identity = {
        "fingerprint": model_fingerprint(model),
        "data": _data_fingerprint(encoded),
        "shapes": [list(p.shape) for p in params],
    }
    if state_path is not None and state_path.exists():
        saved = torch.load(state_path, weights_only=False)
        _check_resumable(state_path, saved, asdict(config), run_identity)
        for p, value in zip(params, saved["params"], strict=True):
            p.data.copy_(value)
        optimizer.load_state_dict(saved["optimizer"])
        if controller is not None:
            controller.load_state_dict(saved["controller"])
        history, start_step, seconds = saved["history"], saved["step"], saved["seconds"]
    device = next(model.parameters()).device
    pad = pad_token_id(model)
    micro_batches = [
        b for epoch in range(config.epochs) for b in _batches(encoded, counts, config, epoch)
    ]
    leader = rank() == 0  # the one rank that shows progress and writes the resumable state
    bar = tqdm(total=total, initial=start_step, desc="training", disable=not progress or not leader)
    started = time.perf_counter() - seconds
    with frozen(model), attached(model, edit_list, lora):
        for step in range(start_step, total):
            lr = learning_rate_at(step, total, config.learning_rate, config.warmup_ratio)
            weight = controller.weight if controller is not None else 1.0
            form = config.bias_control.form if controller is not None else None
            if form == "lr":
                lr *= weight
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            losses = []
            for micro in range(config.grad_accum):
                index = (step * config.grad_accum + micro) % len(micro_batches)
                chosen = micro_batches[index]
                # data parallel: this rank's slice, its loss summed and divided by the global
                # batch, so the gradients summed over ranks are the one-process gradients
                mine = rank_slice(chosen)
                loss_sum = 0.0
                if mine:
                    batch = make_batch([encoded[i] for i in mine], [counts[i] for i in mine], pad)
                    summed = answer_loss(model, batch.to(device), reduction="none").sum()
                    loss = summed / len(chosen)
                    loss_sum = float(summed.detach())
                    objective = loss * weight if form == "loss_scale" else loss
                    (objective / config.grad_accum).backward()
                losses.append(all_reduce_sum(loss_sum, device) / len(chosen))
            all_reduce_gradients(params)
            penalty = 0.0
            if form == "penalty":
                # a hinge: no pull while the mean norm is below the target, so no undershoot
                norms = bias_norms(reds)
                excess = norms.sum() - config.bias_control.target * len(norms)
                term = weight * torch.relu(excess)
                if term.requires_grad:
                    term.backward()
                penalty = float(term.detach())
            grad_norm = _clip(params, config.max_grad_norm)
            optimizer.step()
            row = {
                "step": step,
                "loss": sum(losses) / len(losses),
                "lr": lr,
                "grad_norm": grad_norm,
                "penalty": penalty,
            }
            if reds:
                with torch.no_grad():
                    norms = bias_norms(reds)
                row["bias_norm"] = float(norms.mean())
                row["bias_norm_max"] = float(norms.max())
            if controller is not None:
                info = controller.step(step, row["bias_norm"])
                row["control_weight"] = info["weight"]
                row["control_updated"] = bool(info["updated"])
            history.append(row)
            bar.update(1)
            postfix = {"loss": f"{row['loss']:.3f}"}
            if "bias_norm" in row:
                postfix["bias"] = f"{row['bias_norm']:.3f}"
            bar.set_postfix(postfix)
            saving = (
                state_path is not None and config.save_every and (step + 1) % config.save_every == 0
            )
            if saving and leader:
                _save_state(
                    state_path,
                    config,
                    run_identity,
                    params,
                    optimizer,
                    controller,
                    history,
                    step + 1,
                    time.perf_counter() - started,
                )
    bar.close()
    seconds = time.perf_counter() - started
    tensors = {"loss": torch.tensor([r["loss"] for r in history])}
    if reds:
        tensors["bias_norm"] = torch.tensor([r["bias_norm"] for r in history])
    meta = {
        "model": model_name(model),
        "fingerprint": run_identity["fingerprint"],
        "data": run_identity["data"],
        "n_examples": len(encoded),
        "n_full_answer": sum(full),
        "n_truncated": sum(p.truncated for p in encoded),
        "n_loss_tokens": sum(counts),
        "n_trainable": sum(p.numel() for p in params),
        "steps": total,
        "seconds": seconds,
        "world_size": world_size(),
        "edits": [{"hook": e.hook, **e.function.config()} for e in edit_list],
        "lora": lora.config() if lora is not None else None,
    }
    return TrainResult(config=config, tensors=tensors, tables={"history": history}, meta=meta)


def _clip(params: list[torch.nn.Parameter], max_norm: float | None) -> float:
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        raise RuntimeError(
            "no gradient reached the trainable parameters: do the edits' positions cover the "
            "tokens of the batch, and do their hooks exist on this model?"
        )
    if max_norm is None:
        return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in with_grad])))
    return float(torch.nn.utils.clip_grad_norm_(with_grad, max_norm))


def _check_context(model, encoded: list[EncodedPair]) -> None:
    limit = int(model.cfg.n_ctx)
    for pair in encoded:
        if pair.length > limit:
            raise ValueError(
                f"pair {pair.id!r} has {pair.length} tokens, more than the model's context of "
                f"{limit}; set max_length or max_answer_tokens"
            )


def _data_fingerprint(encoded: Sequence[EncodedPair]) -> str:
    """A short digest of the encoded training pairs (prompt and answer token ids, in order)."""
    digest = hashlib.sha256()
    for pair in encoded:
        digest.update(f"{list(pair.prompt_ids)}|{list(pair.answer_ids)};".encode())
    return digest.hexdigest()[:16]


def _check_resumable(
    path: Path, saved: dict[str, Any], config: dict[str, Any], identity: dict[str, Any]
) -> None:
    """Refuse a saved training state that another config, model, trainable set or data made."""
    proceed = "delete it to start over, or pass another state folder"
    if saved.get("config") != config:
        changed = differing_keys(saved.get("config"), config)
        raise ValueError(
            f"{path} holds a run with another config ({', '.join(changed)} differ); {proceed}"
        )
    difference = fingerprint_difference(saved.get("fingerprint"), identity["fingerprint"])
    if difference:
        raise ValueError(f"{path} holds a training run of another model: {difference}; {proceed}")
    if saved.get("shapes") != identity["shapes"]:
        raise ValueError(
            f"{path} holds a run that trained parameters of shapes {saved.get('shapes')}, not "
            f"{identity['shapes']} (other edits or LoRA); {proceed}"
        )
    if saved.get("data") != identity["data"]:
        raise ValueError(
            f"{path} holds a run on other training data (data fingerprint "
            f"{saved.get('data')!r}, not {identity['data']!r}); {proceed}"
        )


def _save_state(
    path: Path, config, identity, params, optimizer, controller, history, step, seconds
):
    """Write the resumable state next to `path` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(path)
    state = {
        "config": asdict(config),
        **identity,
        "params": [p.detach().cpu().clone() for p in params],
        "optimizer": optimizer.state_dict(),
        "controller": controller.state_dict() if controller is not None else None,
        "history": history,
        "step": step,
        "seconds": seconds,
    }
    tmp = temporary_path(path, suffix=".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@torch.no_grad()
def held_out_loss(
    model,
    pairs: Sequence[Pair] | Sequence[EncodedPair],
    *,
    edit_list: Sequence[Edit] = (),
    lora: LoRA | None = None,
    batch_size: int = 4,
    max_answer_tokens: int | None = None,
) -> float:
    """Mean per-example answer cross-entropy (whole answer) with the edits / LoRA attached."""
    encoded = (
        list(pairs)
        if isinstance(pairs[0], EncodedPair)
        else encode_pairs(pairs, model.tokenizer, max_answer_tokens=max_answer_tokens)
    )
    device = next(model.parameters()).device
    pad = pad_token_id(model)
    total, count = 0.0, 0
    with attached(model, edit_list, lora):
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            batch = make_batch(chunk, [len(p.answer_ids) for p in chunk], pad).to(device)
            total += float(answer_loss(model, batch, reduction="none").sum())
            count += len(chunk)
    return total / count


__all__ = [
    "IGNORE",
    "TrainConfig",
    "TrainResult",
    "answer_loss",
    "attached",
    "frozen",
    "held_out_loss",
    "learning_rate_at",
    "train",
    "trainable_parameters",
]
