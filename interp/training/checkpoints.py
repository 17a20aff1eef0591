"""Checkpoints of trained edits and LoRAs, in the one on-disk format, checked on load.

    save(folder, model, edit_list=red, result=train_result)       # an "edits" folder
    save(folder, model, lora=lora, result=train_result)           # a "lora" folder
    trained = load(folder, model, kind="red")                     # list[Edit] or LoRA

`interp.json` holds the edit kinds, hooks and shapes (or the LoRA's layers) under `config`, and
the model's name, the training config and summary under `meta`. Loading checks everything against
the model before returning: an unknown hook, another width, another edit kind than asked for, or a
checkpoint made for another model (its name, or its weights fingerprint at the same dtype) is an
`EditError` that says what differs; nothing is ever loaded half-way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interp.interventions import Edit, EditError, load_edits, save_edits
from interp.interventions.lora import LoRA, LoRAError, load_lora, save_lora
from interp.models import model_name
from interp.models.fingerprint import model_fingerprint, trained_model_difference
from interp.storage import StorageError, config_to_dict, read_record


def save(
    directory: str | os.PathLike,
    model,
    *,
    edit_list: Sequence[Edit] = (),
    lora: LoRA | None = None,
    result=None,
    **extra: Any,
) -> Path:
    """Write the trained edits or LoRA with the model's name and the training config (atomic)."""
    if bool(edit_list) == (lora is not None):
        raise ValueError("save either edits or a LoRA (one of them, not both or neither)")
    meta: dict[str, Any] = {
        "model": model_name(model),
        "fingerprint": model_fingerprint(model),
        **extra,
    }
    if result is not None:
        meta["training"] = config_to_dict(result.config)
        meta["training_summary"] = {
            k: v for k, v in result.meta.items() if k not in ("edits", "lora")
        }
        if result.history:
            meta["final"] = result.history[-1]
    if lora is not None:
        return save_lora(directory, lora, **meta)
    kinds = sorted({e.function.kind for e in edit_list})
    return save_edits(directory, edit_list, edit_kinds=kinds, **meta)


def checkpoint_record(directory: str | os.PathLike) -> dict[str, Any]:
    """The checked `interp.json` of either kind of checkpoint (`kind`, `config`, `meta`)."""
    try:
        record = read_record(directory)
    except StorageError as error:
        raise EditError(str(error)) from error
    if record["kind"] not in ("edits", "lora"):
        raise EditError(
            f"{directory} holds a {record['kind']!r}, not a checkpoint of edits or a LoRA; point "
            f"to the folder written by interp.training.checkpoints.save"
        )
    return record


def checkpoint_kind(directory: str | os.PathLike) -> str:
    """'lora', or the edit kind(s) of an edit checkpoint joined by '+' (e.g. 'red')."""
    return _kind_of(checkpoint_record(directory))


def _kind_of(record: dict[str, Any]) -> str:
    if record["kind"] == "lora":
        return "lora"
    return "+".join(sorted({entry["function"]["kind"] for entry in record["config"]["edits"]}))


def load(
    directory: str | os.PathLike,
    model,
    *,
    kind: str | None = None,
    allow_other_model: bool = False,
) -> list[Edit] | LoRA:
    """Load a checkpoint for `model`: a list of edits, or a LoRA.

    `kind` ("red", "loreft", "direft", "lora", ...) is checked when given. A checkpoint saved
    from another model is refused unless `allow_other_model` (shapes and hooks are checked anyway).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {directory}")
    record = checkpoint_record(directory)
    found = _kind_of(record)
    if kind is not None and found != kind:
        raise EditError(
            f"{directory} holds a {found!r} checkpoint, not {kind!r}; load it as {found!r} or "
            f"point to the {kind} checkpoint"
        )
    difference = "" if allow_other_model else trained_model_difference(record["meta"], model)
    if difference:
        raise EditError(
            f"{directory} does not belong to this model: {difference}; an edit learnt on one "
            f"model means nothing on another (pass allow_other_model=True to load it anyway when "
            f"the architectures match)"
        )
    if found == "lora":
        try:
            return load_lora(directory, model)
        except LoRAError as error:
            raise EditError(str(error)) from error
    return load_edits(directory, model, allow_other_model=allow_other_model)
