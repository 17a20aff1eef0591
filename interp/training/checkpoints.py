"""Checkpoints of trained edits and LoRAs: safetensors plus a JSON config, checked on load.

    save(folder, model, edit_list=red, result=train_result)       # edits.safetensors + edits.json
    save(folder, model, lora=lora, result=train_result)           # lora.safetensors + lora.json
    trained = load(folder, model, kind="red")                     # list[Edit] or LoRA

The JSON holds the edit kinds, hooks and shapes (or the LoRA's layers), the model's name and the
training config and summary. Loading checks everything against the model before returning: an
unknown hook, another width, another edit kind than asked for, or a checkpoint made for another
model is an `EditError` that says what differs; nothing is ever loaded half-way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interp.interventions import Edit, EditError, load_edits, read_checkpoint_config, save_edits
from interp.interventions.lora import LoRA, LoRAError, load_lora, read_lora_config, save_lora
from interp.models import model_name
from interp.results import config_to_dict


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
    info: dict[str, Any] = {"model": model_name(model), **extra}
    if result is not None:
        info["training"] = config_to_dict(result.config)
        info["training_summary"] = {
            k: v for k, v in result.meta.items() if k not in ("edits", "lora")
        }
        if result.history:
            info["final"] = result.history[-1]
    if lora is not None:
        return save_lora(directory, lora, **info)
    kinds = sorted({e.function.kind for e in edit_list})
    return save_edits(directory, edit_list, edit_kinds=kinds, **info)


def checkpoint_kind(directory: str | os.PathLike) -> str:
    """'lora', or the edit kind(s) of an edit checkpoint joined by '+' (e.g. 'red')."""
    directory = Path(directory)
    if (directory / "lora.json").exists():
        return "lora"
    config = read_checkpoint_config(directory)
    return "+".join(sorted({entry["function"]["kind"] for entry in config["edits"]}))


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The JSON half of either kind of checkpoint."""
    directory = Path(directory)
    if (directory / "lora.json").exists():
        return read_lora_config(directory)
    return read_checkpoint_config(directory)


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
    found = checkpoint_kind(directory)
    if kind is not None and found != kind:
        raise EditError(
            f"{directory} holds a {found!r} checkpoint, not {kind!r}; load it as {found!r} or "
            f"point to the {kind} checkpoint"
        )
    config = read_config(directory)
    saved_model = config.get("model")
    if saved_model and not allow_other_model and saved_model != model_name(model):
        raise EditError(
            f"{directory} was trained on {saved_model!r}, not on {model_name(model)!r}; an edit "
            f"learnt on one model means nothing on another (pass allow_other_model=True to load "
            f"it anyway when the architectures match)"
        )
    if found == "lora":
        try:
            return load_lora(directory, model)
        except LoRAError as error:
            raise EditError(str(error)) from error
    return load_edits(directory, model)
