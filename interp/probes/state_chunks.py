"""Activations on disk in chunks, so thousands of traces never sit in memory at once.

A store is a folder of `chunk_00000.safetensors`, `chunk_00001.safetensors`, ...; each holds
`states` [layer, row, d] and, as metadata, its rows (one dict per state row: which example,
which token, its label, ...) and a fingerprint of what it was made from. Chunks are written
atomically; a chunk whose fingerprint matches is kept on a rerun, any other is recomputed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

__all__ = [
    "chunk_path",
    "chunk_is_current",
    "write_chunk",
    "drop_chunks_from",
    "chunk_files",
    "iter_chunks",
    "load_rows",
    "load_states",
]


def chunk_path(store: str | os.PathLike, number: int) -> Path:
    return Path(store) / f"chunk_{number:05d}.safetensors"


def chunk_is_current(store: str | os.PathLike, number: int, fingerprint: str) -> bool:
    """Whether chunk `number` exists and was made from what `fingerprint` describes."""
    path = chunk_path(store, number)
    if not path.exists():
        return False
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("fingerprint") == fingerprint
    except Exception:  # unreadable or partial file: recompute it
        return False


def write_chunk(
    store: str | os.PathLike,
    number: int,
    states: Float[Tensor, "layer row d"],
    rows: Sequence[dict],
    fingerprint: str,
) -> None:
    """Chunk `number`, atomically: its states and, as metadata, its rows and fingerprint."""
    path = chunk_path(store, number)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(
        {"states": states.contiguous()},
        str(tmp),
        metadata={"rows": json.dumps(list(rows)), "fingerprint": fingerprint},
    )
    os.replace(tmp, path)


def drop_chunks_from(store: str | os.PathLike, number: int) -> None:
    """Remove chunks numbered `number` and above (left by an earlier, larger run)."""
    for path in Path(store).glob("chunk_*.safetensors"):
        if int(path.stem.split("_")[1]) >= number:
            path.unlink()


def chunk_files(store: str | os.PathLike) -> list[Path]:
    files = sorted(Path(store).glob("chunk_*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{store} holds no state chunks; run the analysis that writes them")
    return files


def iter_chunks(store: str | os.PathLike) -> Iterator[tuple[Float[Tensor, "layer row d"], list]]:
    """(states, rows) of every chunk, in order, one chunk in memory at a time."""
    for path in chunk_files(store):
        with safe_open(str(path), framework="pt") as f:
            yield f.get_tensor("states"), json.loads(f.metadata()["rows"])


def load_rows(store: str | os.PathLike) -> list[dict]:
    """The rows of every chunk, in order."""
    rows: list[dict] = []
    for path in chunk_files(store):
        with safe_open(str(path), framework="pt") as f:
            rows.extend(json.loads(f.metadata()["rows"]))
    return rows


def load_states(
    store: str | os.PathLike, layer_index: int, rows: Sequence[int] | None = None
) -> Float[Tensor, "row d"]:
    """States of one stored layer (by its index among the stored layers), all or chosen rows."""
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
