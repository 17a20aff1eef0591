"""Hidden states at thought boundaries, their t-SNE maps and how separable the classes are (SEAL
step 2; SEAL: arXiv 2504.07986).

    states = thought_states.run(model, responses, layers=(8, 12, 16), span="think", store="runs/states")
    states.figure()                                # separability by layer + t-SNE per layer
    vector = states.steering_vector()              # execution - (reflection + transition), per layer

One forward over prompt + response per example (batched, left padded) reads `blocks.L.hook_resid_pre`
(Hugging Face's `hidden_states[L]`: the input of block L) at every boundary token inside the span,
for the chosen layers only, and stops after the last block it needs. States go to disk in chunks
(`interp.probes.state_chunks`: [layer, boundary, d], the boundary rows beside them), reused on a
rerun, so thousands of traces never sit in memory at once; the result keeps per-class sums and
counts (enough for every steering vector), t-SNE maps of a seeded subsample, and per layer a
cross-validated logistic-regression accuracy (`interp.probes.separability`; folds grouped by
response, so no response is in both train and test).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.core.layer_skip import stop_after_block
from interp.core.positions import boundary_tokens
from interp.core.runner import read_positions
from interp.core.tokens import left_pad, pad_token_id
from interp.distributed import Replica, WorkerPool, check_workers, run_units
from interp.figures.seal import thought_states_figure
from interp.interventions import check_hook
from interp.interventions.arms import Arm
from interp.interventions.steering_vector import SITE, VARIANTS, SteeringVector
from interp.models import model_name
from interp.models.fingerprint import model_fingerprint
from interp.probes.separability import separability, tsne_map
from interp.probes.state_chunks import (
    chunk_is_current,
    drop_chunks_from,
    iter_chunks,
    load_rows,
    load_states,
    write_chunk,
)
from interp.results import Result
from interp.text.thoughts import (
    CLASSES,
    EXECUTION,
    SEAL_KEYWORDS,
    Response,
    ThoughtKeywords,
    resolve_span,
    segment_response,
)

__all__ = [
    "ThoughtStatesConfig",
    "ThoughtStatesResult",
    "boundary_states",
    "load_rows",
    "load_states",
    "make_config",
    "responses_sha",
    "run",
    "summarise",
]


@dataclass(frozen=True)
class ThoughtStatesConfig:
    layers: tuple[int, ...] | None = None  # None: every layer
    span: str = "think"
    keywords: ThoughtKeywords = SEAL_KEYWORDS
    store: str | None = None  # chunk folder; None: a temporary folder
    batch_size: int = 4
    chunk_size: int = 64  # responses per chunk file
    tsne_layers: tuple[int, ...] | None = None  # None: up to 6 evenly spaced of `layers`
    max_points: int = 2000  # boundaries (seeded subsample) for t-SNE and separability
    perplexity: float = 30.0
    cv_folds: int = 5
    seed: int = 0
    responses_sha: str = ""  # fingerprint of the responses read (their prompts' template included)


@dataclass
class ThoughtStatesResult(Result):
    config_class = ThoughtStatesConfig

    @property
    def counts(self) -> dict[str, int]:
        return {name: int(n) for name, n in zip(CLASSES, self.tensors["class_counts"])}

    def class_means(self) -> Float[Tensor, "layer n_class d"]:
        counts = self.tensors["class_counts"].double().clamp_min(1)
        return self.tensors["class_sums"] / counts[None, :, None]

    def steering_vector(
        self,
        variant: str = "pooled",
        *,
        toward: tuple[str, ...] | None = None,
        away: tuple[str, ...] | None = None,
        pooling: str = "samples",
        normalization: str = "none",
    ) -> SteeringVector:
        """mean(toward) - mean(away) at every extracted layer; `variant` names SEAL's choices."""
        if toward is None or away is None:
            if variant not in VARIANTS:
                raise ValueError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}")
            toward, away = toward or VARIANTS[variant][0], away or VARIANTS[variant][1]
        return SteeringVector.from_class_stats(
            self.tensors["class_sums"],
            self.counts,
            tuple(self.layers),
            toward=tuple(toward),
            away=tuple(away),
            pooling=pooling,
            normalization=normalization,
            meta={
                "variant": variant,
                "model": self.meta.get("model"),
                "span": self.config.span,
                "n_responses": self.meta.get("n_responses"),
                "store": self.config.store,
            },
        )

    def figure(self):
        return thought_states_figure(self)


def _fingerprint(
    config: ThoughtStatesConfig, weights: dict[str, str], chunk: Sequence[Response]
) -> str:
    """What a chunk was made from: the model (name, dtype and weights fingerprint, so a bfloat16
    run never reuses float32 states), layers, span, keywords and the chunk's tokens."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            [
                weights,
                config.layers,
                config.span,
                config.keywords.to_dict(),
            ]
        ).encode()
    )
    for response in chunk:
        digest.update(json.dumps([response.id, response.all_tokens]).encode())
    return digest.hexdigest()


@torch.no_grad()
def boundary_states(
    model,
    sequences: Sequence[Sequence[int]],
    positions: Sequence[Sequence[int]],
    layers: Sequence[int],
    batch_size: int = 4,
) -> Float[Tensor, "layer n d"]:
    """`blocks.L.hook_resid_pre` at the given positions of each sequence (rows in sequence order).

    Hooks keep only the wanted rows, so memory holds [layer, boundaries, d], never [layer, seq, d];
    the forward stops after the deepest block it needs and computes no logits then.
    """
    hooks = [f"blocks.{layer}.{SITE}" for layer in layers]
    for name in hooks:
        check_hook(model, name)
    stop_at_layer = stop_after_block(model, max(layers))
    pad_id = pad_token_id(model)
    device = next(model.parameters()).device
    out: list[Tensor] = []
    for start in range(0, len(sequences), batch_size):
        batch = [list(s) for s in sequences[start : start + batch_size]]
        wanted = positions[start : start + batch_size]
        if not any(len(p) for p in wanted):
            continue
        tokens, mask = left_pad(batch, pad_id, device)
        width = tokens.shape[1]
        rows = torch.tensor([r for r, pos in enumerate(wanted) for _ in pos], device=device)
        cols = torch.tensor(
            [width - len(batch[r]) + p for r, pos in enumerate(wanted) for p in pos], device=device
        )
        captured = read_positions(
            model, tokens, mask, hooks, rows, cols, stop_at_layer=stop_at_layer
        )
        out.append(torch.stack([captured[name] for name in hooks]))
    if not out:
        d = model.cfg.d_model
        return torch.zeros(len(layers), 0, d)
    return torch.cat(out, dim=1)


def chunk_states(
    replica: Replica,
    unit: tuple[Sequence[Sequence[int]], Sequence[Sequence[int]]],
    *,
    layers: Sequence[int],
    batch_size: int,
) -> Float[Tensor, "layer boundary d"]:
    """One unit of work: the boundary states of a chunk's (token sequences, boundary indices)."""
    sequences, boundary_indices = unit
    return boundary_states(replica.model, sequences, boundary_indices, layers, batch_size).cpu()


def responses_sha(responses: Sequence[Response]) -> str:
    """Fingerprint of the responses (ids and tokens), saved in the config to tell runs apart."""
    digest = hashlib.sha256()
    for response in responses:
        digest.update(json.dumps([response.id, response.all_tokens]).encode())
    return digest.hexdigest()[:16]


def make_config(
    model,
    responses: Sequence[Response],
    *,
    layers: Sequence[int] | None = None,
    span: str = "think",
    keywords: ThoughtKeywords = SEAL_KEYWORDS,
    store: str | os.PathLike | None = None,
    batch_size: int = 4,
    chunk_size: int = 64,
    tsne_layers: Sequence[int] | None = None,
    max_points: int = 2000,
    perplexity: float = 30.0,
    cv_folds: int = 5,
    seed: int = 0,
) -> ThoughtStatesConfig:
    """The config `run` will use (defaults resolved, inputs checked); a None store is a temp folder."""
    if not responses:
        raise ValueError("no responses given: generate some first (python -m interp thoughts)")
    n_layers = model.cfg.n_layers
    layers = tuple(range(n_layers)) if layers is None else tuple(int(x) for x in layers)
    if not layers:
        raise ValueError("layers is empty: give at least one layer")
    bad = [x for x in layers if not 0 <= x < n_layers]
    if bad:
        raise ValueError(f"layers {bad} out of range: this model has layers 0..{n_layers - 1}")
    if tsne_layers is None:  # up to 6 evenly spaced layers; () skips t-SNE
        picks = np.unique(np.linspace(0, len(layers) - 1, min(6, len(layers))).round().astype(int))
        tsne_layers = tuple(layers[i] for i in picks)
    missing = [x for x in tsne_layers if x not in layers]
    if missing:
        raise ValueError(f"tsne_layers {missing} are not among the extracted layers {layers}")
    if store is None:
        store = tempfile.mkdtemp(prefix="thought_states_")
    return ThoughtStatesConfig(
        layers=layers,
        span=resolve_span(model.tokenizer, span),
        keywords=keywords,
        store=str(store),
        batch_size=batch_size,
        chunk_size=chunk_size,
        tsne_layers=tuple(int(x) for x in tsne_layers),
        max_points=max_points,
        perplexity=perplexity,
        cv_folds=cv_folds,
        seed=seed,
        responses_sha=responses_sha(responses),
    )


def run(
    model,
    responses: Iterable[Response],
    *,
    progress: bool = True,
    workers: int | WorkerPool = 1,
    ray_address: str | None = None,
    **options,
) -> ThoughtStatesResult:
    """Read boundary states, store them in chunks, then class sums, t-SNE and separability per layer.

    Options (see `make_config`): layers, span ("think" | "response" | "auto"), keywords, store,
    batch_size, chunk_size, tsne_layers, max_points, perplexity, cv_folds, seed. `workers` > 1
    (or a `WorkerPool`): the chunks' forwards run on Ray workers (`interp.distributed`), each
    chunk written here as it arrives.
    """
    check_workers(workers)
    tokenizer = model.tokenizer
    responses = list(responses)
    config = make_config(model, responses, **options)
    span, chunk_size = config.span, config.chunk_size
    for name, value in (("batch_size", config.batch_size), ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    store = Path(config.store)
    store.mkdir(parents=True, exist_ok=True)
    boundaries = boundary_tokens(tokenizer)
    limit = model.cfg.n_ctx
    too_long = [r.id for r in responses if len(r.all_tokens) > limit]
    if too_long:
        raise ValueError(
            f"{len(too_long)} responses pass the model's context of {limit} tokens "
            f"(e.g. {too_long[:3]}); drop them or cap generation shorter"
        )

    chunks = [responses[i : i + chunk_size] for i in range(0, len(responses), chunk_size)]
    drop_chunks_from(store, len(chunks))  # left from an earlier, larger run
    weights = model_fingerprint(model)
    pending = []  # (chunk number, fingerprint, rows, tokens, boundary indices) still to read
    for number, chunk in enumerate(chunks):
        fingerprint = _fingerprint(config, weights, chunk)
        if chunk_is_current(store, number, fingerprint):
            continue
        rows, boundary_indices = [], []
        for response in chunk:
            thoughts = segment_response(
                response, tokenizer, span=span, keywords=config.keywords, boundaries=boundaries
            )
            here = [t for t in thoughts if t.boundary is not None]
            boundary_indices.append([t.boundary for t in here])
            rows.extend(
                {
                    "id": response.id,
                    "thought": t.index,
                    "position": t.boundary,
                    "class": t.label,
                    "correct": response.correct,
                    "difficulty": response.group,
                }
                for t in here
            )
        pending.append((number, fingerprint, rows, [r.all_tokens for r in chunk], boundary_indices))

    def record(index: int, states: Tensor) -> None:
        number, fingerprint, rows, _, _ = pending[index]
        write_chunk(store, number, states, rows, fingerprint)

    run_units(
        [(tokens, indices) for _, _, _, tokens, indices in pending],
        functools.partial(chunk_states, layers=config.layers, batch_size=config.batch_size),
        [Arm.of(model)],
        workers=workers,
        address=ray_address,
        on_result=record,
        progress=progress,
        desc="thought states",
    )
    return summarise(model_name(model), config, len(responses), progress=progress)


def summarise(
    model: str, config: ThoughtStatesConfig, n_responses: int, progress: bool = False
) -> ThoughtStatesResult:
    """Class sums and counts, t-SNE and separability from the chunks in `config.store`."""
    store = Path(config.store)
    rows = load_rows(store)
    if not rows:
        raise ValueError(
            f"no boundary inside the span ({config.span!r}) in any response: nothing to read. "
            f"For a model without <think>..</think> use span='response'"
        )
    labels = np.array([CLASSES.index(r["class"]) for r in rows])
    layers = list(config.layers)
    d = None
    sums = None
    for states, chunk_rows in iter_chunks(store):
        states = states.double()  # [layer, n, d]
        chunk_labels = torch.tensor([CLASSES.index(r["class"]) for r in chunk_rows])
        if sums is None:
            d = states.shape[-1]
            sums = torch.zeros(len(layers), len(CLASSES), d, dtype=torch.float64)
        if len(chunk_rows):
            one_hot = torch.nn.functional.one_hot(chunk_labels, len(CLASSES)).double()
            sums += torch.einsum("lnd,nc->lcd", states, one_hot)
    counts = torch.tensor([int((labels == c).sum()) for c in range(len(CLASSES))])

    rng = np.random.default_rng(config.seed)
    points = np.arange(len(rows))
    if len(points) > config.max_points:
        points = np.sort(rng.choice(points, config.max_points, replace=False))
    groups = np.array([rows[i]["id"] for i in points])
    point_labels = labels[points]

    per_layer, tsne = [], []
    for index, layer in enumerate(tqdm(layers, desc="separability", disable=not progress)):
        x = load_states(store, index, points).numpy()
        scores = separability(
            x, point_labels, groups, config.cv_folds, config.seed, CLASSES.index(EXECUTION)
        )
        per_layer.append({"layer": layer, **scores})
        if layer in config.tsne_layers:
            tsne.append(tsne_map(x, config.perplexity, config.seed))
    tensors = {
        "layers": torch.tensor(layers),
        "class_sums": sums,
        "class_counts": counts,
        "tsne_layers": torch.tensor(list(config.tsne_layers)),
        "tsne": torch.tensor(
            np.stack(tsne) if tsne else np.zeros((0, len(points), 2)), dtype=torch.float32
        ),
        "point_labels": torch.tensor(point_labels),
        "point_rows": torch.tensor(points),
    }
    meta = {
        "model": model,
        "n_responses": n_responses,
        "n_boundaries": len(rows),
        "responses_with_boundaries": len({r["id"] for r in rows}),
        "counts": {name: int(n) for name, n in zip(CLASSES, counts)},
        "site": f"blocks.L.{SITE}",
    }
    tables = {"per_layer": per_layer}
    return ThoughtStatesResult(config=config, tensors=tensors, tables=tables, meta=meta)
