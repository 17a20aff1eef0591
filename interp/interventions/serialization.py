"""Save and load edits as an "edits" folder of the one on-disk format (`interp.storage`).

`interp.json` holds the edits (hook, function config, position rule of each) under `config` and
anything the caller adds (model name, training config) under `meta`; the tensors are named
`<index>.<parameter>`. Loading checks every edit against the model (hook names, widths) and loads
tensors strictly, so a checkpoint that does not fit the model is a clear error and nothing loads
half-way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interp.core.positions import PositionRule
from interp.interventions.edits import Edit, EditError, check_edit
from interp.interventions.functions import EDIT_FUNCTIONS
from interp.models.fingerprint import trained_model_difference
from interp.storage import StorageError, check_keys, load_folder, read_record, save_folder

KIND = "edits"
ENTRY_KEYS = ("hook", "function", "positions")


def save_edits(directory: str | os.PathLike, edit_list: Sequence[Edit], **meta: Any) -> Path:
    """Write `edit_list` (and JSON-ready `meta`, e.g. model name, training config) atomically."""
    tensors = {}
    entries = []
    for index, edit in enumerate(edit_list):
        entries.append(
            {
                "hook": edit.hook,
                "function": edit.function.config(),
                "positions": edit.positions.to_dict(),
            }
        )
        for name, value in edit.function.state_dict().items():
            tensors[f"{index}.{name}"] = value
    return save_folder(directory, KIND, config={"edits": entries}, meta=meta, tensors=tensors)


def read_checkpoint_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The checked `interp.json` of an edit checkpoint: `config["edits"]`, `meta` (model name,
    training config), without reading the tensors."""
    try:
        return read_record(directory, KIND)
    except StorageError as error:
        raise EditError(str(error)) from error


def load_edits(
    directory: str | os.PathLike, model=None, *, allow_other_model: bool = False
) -> list[Edit]:
    """Rebuild the edits of a checkpoint; with `model`, check that they fit it first.

    A checkpoint that records another model (name, or weights at the same dtype) than `model` is
    refused unless `allow_other_model` (hooks and widths are checked anyway).
    """
    directory = Path(directory)
    try:
        stored = load_folder(directory, KIND)
        check_keys(stored.config, ("edits",), f"the config of {directory}")
        for index, entry in enumerate(stored.config["edits"]):
            check_keys(entry, ENTRY_KEYS, f"edit {index} of {directory}")
    except StorageError as error:
        raise EditError(str(error)) from error
    if model is not None and not allow_other_model:
        difference = trained_model_difference(stored.meta, model)
        if difference:
            raise EditError(
                f"{directory} does not belong to this model: {difference}; an edit learnt on one "
                f"model means nothing on another (pass allow_other_model=True to load it anyway "
                f"when the architectures match)"
            )
    edit_list = []
    for index, entry in enumerate(stored.config["edits"]):
        kind = entry["function"]["kind"]
        if kind not in EDIT_FUNCTIONS:
            raise EditError(
                f"unknown edit kind {kind!r} in {directory}; known: {sorted(EDIT_FUNCTIONS)}"
            )
        function = EDIT_FUNCTIONS[kind].from_config(entry["function"])
        prefix = f"{index}."
        state = {k[len(prefix) :]: v for k, v in stored.tensors.items() if k.startswith(prefix)}
        try:
            function.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise EditError(
                f"edit {index} ({kind}) in {directory} does not load: {error}"
            ) from error
        edit = Edit(entry["hook"], function, PositionRule.from_dict(entry["positions"]))
        if model is not None:
            check_edit(model, edit)
        edit_list.append(edit)
    return edit_list
