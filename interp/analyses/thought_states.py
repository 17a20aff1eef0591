"""Hidden states at thought boundaries, their t-SNE maps and how separable the classes are (SEAL).

    states = thought_states.run(model, responses, layers=(8, 12, 16), span="think", store="runs/states")
    states.figure()                                # separability by layer + t-SNE per layer
    vector = states.steering_vector()              # execution - (reflection + transition), per layer

One forward over prompt + response per example (batched, left padded) reads `blocks.L.hook_resid_pre`
(Hugging Face's `hidden_states[L]`: the input of block L) at every boundary token inside the span,
for the chosen layers only, and stops after the last block it needs. States go to disk in chunk
files (safetensors, [layer, boundary, d], the boundary rows in their metadata), written atomically
and reused on a rerun, so thousands of traces never sit in memory at once; the result keeps
per-class sums and counts (enough for every steering vector), t-SNE maps of a seeded subsample,
and per layer a cross-validated logistic-regression accuracy (folds grouped by response, so no
response is in both train and test).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm

from interp.analyses.thought_stats import keyword_fields
from interp.core.layer_skip import stop_after_block
from interp.core.positions import boundary_tokens
from interp.core.tokens import left_pad, pad_token_id
from interp.interventions import check_hook
from interp.interventions.steering_vector import SITE, VARIANTS, SteeringVector
from interp.models import model_name
from interp.results import Result
from interp.text.thoughts import (
    CLASSES,
    EXECUTION,
    SEAL_KEYWORDS,
    KeywordFields,
    Response,
    ThoughtKeywords,
    resolve_span,
    segment_response,
)


@dataclass(frozen=True)
class ThoughtStatesConfig(KeywordFields):
    layers: tuple[int, ...] | None = None  # None: every layer
    span: str = "think"
    reflection_prefixes: tuple[str, ...] = SEAL_KEYWORDS.reflection_prefixes
    reflection_phrases: tuple[str, ...] = SEAL_KEYWORDS.reflection_phrases
    transition_prefixes: tuple[str, ...] = SEAL_KEYWORDS.transition_prefixes
    transition_phrases: tuple[str, ...] = SEAL_KEYWORDS.transition_phrases
    store: str | None = None  # chunk folder; None: a temporary folder
    batch_size: int = 4
    chunk_size: int = 64  # responses per chunk file
    tsne_layers: tuple[int, ...] | None = None  # None: up to 6 evenly spaced of `layers`
    max_points: int = 2000  # boundaries (seeded subsample) for t-SNE and separability
    perplexity: float = 30.0
    cv_folds: int = 5
    seed: int = 0
    responses_sha: str = ""  # fingerprint of the responses read


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


def _fingerprint(config: ThoughtStatesConfig, model, chunk: Sequence[Response]) -> str:
    """What a chunk file was made from: model, layers, span, keywords and the chunk's tokens."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            [
                model_name(model),
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
        captured: dict[str, Tensor] = {}
        handles = []
        try:
            for name in hooks:
                hook_point = model.hook_dict[name]
                handles.append(
                    (
                        hook_point,
                        hook_point.add_hook(_capture(name, rows, cols, captured), dir="fwd"),
                    )
                )
            model(tokens, attention_mask=mask, return_type=None, stop_at_layer=stop_at_layer)
        finally:
            for hook_point, handle in reversed(handles):
                handle.hook.remove()
                if handle in hook_point.fwd_hooks:
                    hook_point.fwd_hooks.remove(handle)
        out.append(torch.stack([captured[name] for name in hooks]))
    if not out:
        d = model.cfg.d_model
        return torch.zeros(len(layers), 0, d)
    return torch.cat(out, dim=1)


def _capture(name: str, rows: Tensor, cols: Tensor, captured: dict[str, Tensor]):
    """A hook that keeps only the rows (batch row, column) wanted, under `name`."""

    def hook_fn(activation: Tensor, hook) -> None:
        captured[name] = activation[rows, cols].float().cpu()

    return hook_fn


def _write_chunk(path: Path, states: Tensor, rows: list[dict], fingerprint: str) -> None:
    """One chunk file, atomically: states [layer, n, d] and its rows + fingerprint as metadata."""
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(
        {"states": states.contiguous()},
        str(tmp),
        metadata={"rows": json.dumps(rows), "fingerprint": fingerprint},
    )
    os.replace(tmp, path)


def _chunk_fingerprint(path: Path) -> str | None:
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("fingerprint")
    except Exception:  # unreadable or partial file: recompute it
        return None


def chunk_files(store: str | os.PathLike) -> list[Path]:
    files = sorted(Path(store).glob("chunk_*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{store} holds no thought-state chunks; run thought_states.run")
    return files


def load_rows(store: str | os.PathLike) -> list[dict]:
    """The boundary rows of every chunk, in order (response id, thought index, class, ...)."""
    rows: list[dict] = []
    for path in chunk_files(store):
        with safe_open(str(path), framework="pt") as f:
            rows.extend(json.loads(f.metadata()["rows"]))
    return rows


def load_states(
    store: str | os.PathLike, layer_index: int, rows: Sequence[int] | None = None
) -> Float[Tensor, "n d"]:
    """States of one extracted layer (by its index in the result's layers), all or chosen rows."""
    parts, offset = [], 0
    wanted = None if rows is None else np.asarray(rows)
    for path in chunk_files(store):
        with safe_open(str(path), framework="pt") as f:
            layer = f.get_slice("states")[layer_index]
            n = layer.shape[0]
            if wanted is None:
                parts.append(layer)
            else:
                local = wanted[(wanted >= offset) & (wanted < offset + n)] - offset
                if len(local):
                    parts.append(layer[torch.as_tensor(local)])
            offset += n
    return torch.cat(parts) if parts else torch.zeros(0)


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
    import tempfile

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
        store=str(store),
        batch_size=batch_size,
        chunk_size=chunk_size,
        tsne_layers=tuple(int(x) for x in tsne_layers),
        max_points=max_points,
        perplexity=perplexity,
        cv_folds=cv_folds,
        seed=seed,
        responses_sha=responses_sha(responses),
        **keyword_fields(keywords),
    )


def run(
    model, responses: Iterable[Response], *, progress: bool = True, **options
) -> ThoughtStatesResult:
    """Read boundary states, store them in chunks, then class sums, t-SNE and separability per layer.

    Options (see `make_config`): layers, span ("think" | "response" | "auto"), keywords, store,
    batch_size, chunk_size, tsne_layers, max_points, perplexity, cv_folds, seed.
    """
    tokenizer = model.tokenizer
    responses = list(responses)
    config = make_config(model, responses, **options)
    span, chunk_size = config.span, config.chunk_size
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

    for stale in store.glob("chunk_*.safetensors"):
        index = int(stale.stem.split("_")[1])
        if index * chunk_size >= len(responses):
            stale.unlink()  # left from an earlier, larger run
    chunks = [responses[i : i + chunk_size] for i in range(0, len(responses), chunk_size)]
    for number, chunk in enumerate(tqdm(chunks, desc="thought states", disable=not progress)):
        path = store / f"chunk_{number:05d}.safetensors"
        fingerprint = _fingerprint(config, model, chunk)
        if path.exists() and _chunk_fingerprint(path) == fingerprint:
            continue
        rows, positions = [], []
        for response in chunk:
            thoughts = segment_response(
                response, tokenizer, span=span, keywords=config.keywords, boundaries=boundaries
            )
            here = [t for t in thoughts if t.boundary is not None]
            positions.append([t.boundary for t in here])
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
        states = boundary_states(
            model, [r.all_tokens for r in chunk], positions, config.layers, config.batch_size
        )
        _write_chunk(path, states, rows, fingerprint)
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
    for path in chunk_files(store):
        with safe_open(str(path), framework="pt") as f:
            states = f.get_tensor("states").double()  # [layer, n, d]
            chunk_rows = json.loads(f.metadata()["rows"])
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
        scores = separability(x, point_labels, groups, config.cv_folds, config.seed)
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


def separability(
    x: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int, seed: int
) -> dict[str, float]:
    """Cross-validated accuracy of a logistic classifier of the thought class from the state.

    Three-class and execution-vs-rest, each with balanced accuracy (the classes are very unequal)
    and the majority-class baseline. Folds are grouped by response; a class with fewer members
    than folds is left out of the three-class fit. NaN where no fit is possible.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def score(y: np.ndarray, keep: np.ndarray) -> tuple[float, float, float, int]:
        y, xs, g = y[keep], x[keep], groups[keep]
        values, sizes = np.unique(y, return_counts=True)
        n_groups = len(np.unique(g))
        k = min(folds, int(sizes.min()) if len(sizes) else 0, n_groups)
        if len(values) < 2 or k < 2:
            return math.nan, math.nan, math.nan, 0
        predicted = np.empty_like(y)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        for train, test in splitter.split(xs, y, g):
            if len(np.unique(y[train])) < 2:
                return math.nan, math.nan, math.nan, 0
            classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
            classifier.fit(xs[train], y[train])
            predicted[test] = classifier.predict(xs[test])
        majority = float(sizes.max() / sizes.sum())
        return (
            float(accuracy_score(y, predicted)),
            float(balanced_accuracy_score(y, predicted)),
            majority,
            len(values),
        )

    present, sizes = np.unique(labels, return_counts=True)
    keep3 = np.isin(labels, present[sizes >= 2])
    acc3, bal3, base3, n_classes = score(labels, keep3)
    binary = (labels != CLASSES.index(EXECUTION)).astype(int)
    acc2, bal2, base2, _ = score(binary, np.ones(len(labels), dtype=bool))
    return {
        "accuracy": acc3,
        "balanced_accuracy": bal3,
        "majority_baseline": base3,
        "classes_fitted": n_classes,
        "binary_accuracy": acc2,
        "binary_balanced_accuracy": bal2,
        "binary_majority_baseline": base2,
        "n_points": int(len(labels)),
    }


def tsne_map(x: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
    """2-D t-SNE (scikit-learn) after PCA to at most 50 dimensions; perplexity capped for few points."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(x)
    if n < 5:
        return np.full((n, 2), np.nan)
    reduced = PCA(n_components=min(50, n, x.shape[1]), random_state=seed).fit_transform(x)
    perplexity = min(perplexity, (n - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        reduced
    )


CLASS_COLOURS = {"execution": "#4c78a8", "reflection": "#e45756", "transition": "#f58518"}


def thought_states_figure(result: ThoughtStatesResult):
    """Separability by layer (top) and a t-SNE map per chosen layer, coloured by class."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from interp.figures.common import TEMPLATE

    tsne_layers = [int(x) for x in result.tensors["tsne_layers"]]
    cols = min(3, max(1, len(tsne_layers)))
    tsne_rows = math.ceil(len(tsne_layers) / cols)
    specs = [[{"colspan": cols}] + [None] * (cols - 1)] + [[{}] * cols for _ in range(tsne_rows)]
    titles = ["cross-validated accuracy of the thought class by layer"] + [
        f"t-SNE, layer {layer}" for layer in tsne_layers
    ]
    fig = make_subplots(
        rows=1 + tsne_rows, cols=cols, specs=specs, subplot_titles=titles, vertical_spacing=0.14
    )
    table = result.tables["per_layer"]
    x = [r["layer"] for r in table]
    for key, name, dash in (
        ("majority_baseline", "majority-class accuracy", "dashdot"),
        ("accuracy", "3 classes, accuracy", "dot"),
        ("balanced_accuracy", "3 classes, balanced accuracy", "solid"),
        ("binary_balanced_accuracy", "execution vs rest, balanced accuracy", "dash"),
    ):
        fig.add_trace(
            go.Scatter(x=x, y=[r[key] for r in table], name=name, line_dash=dash),
            row=1,
            col=1,
        )
    labels = result.tensors["point_labels"].tolist()
    for i in range(len(tsne_layers)):
        coords = result.tensors["tsne"][i]
        row, col = 2 + i // cols, 1 + i % cols
        for c, name in enumerate(CLASSES):
            mask = [label == c for label in labels]
            pts = coords[torch.tensor(mask, dtype=torch.bool)] if any(mask) else coords[:0]
            fig.add_trace(
                go.Scattergl(
                    x=pts[:, 0].tolist(),
                    y=pts[:, 1].tolist(),
                    mode="markers",
                    marker=dict(size=4, color=CLASS_COLOURS[name], opacity=0.7),
                    name=f"{name} (n={result.counts[name]})",
                    legendgroup=name,
                    showlegend=i == 0,
                ),
                row=row,
                col=col,
            )
        fig.update_xaxes(showticklabels=False, row=row, col=col)
        fig.update_yaxes(showticklabels=False, row=row, col=col)
    fig.update_layout(
        template=TEMPLATE,
        title=(
            f"Thought states at boundaries ({result.meta.get('model', '')}, span: "
            f"{result.config.span}, {result.meta.get('n_boundaries', 0)} boundaries)"
        ),
        height=350 + 300 * tsne_rows,
    )
    fig.update_yaxes(range=[0, 1.02], title_text="accuracy", row=1, col=1)
    fig.update_xaxes(tickmode="array", tickvals=x, row=1, col=1)  # the subplot title names the axis
    return fig
