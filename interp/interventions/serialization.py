"""Save and load edits: tensors in safetensors, everything else in a JSON config beside them.

A checkpoint is a folder with `edits.safetensors` and `edits.json`. Loading checks every edit
against the model (hook names, widths) and loads tensors strictly, so a checkpoint that does not
fit the model is a clear error and nothing loads half-way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from interp.core.positions import PositionRule
from interp.interventions.edits import Edit, EditError, check_edit
from interp.interventions.functions import EDIT_FUNCTIONS
from interp.results import atomic_directory

FORMAT_VERSION = 1


def save_edits(directory: str | os.PathLike, edit_list: Sequence[Edit], **extra: Any) -> Path:
    """Write `edit_list` (and any JSON-ready `extra`, e.g. model name, training config) atomically."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
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
            tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
    with atomic_directory(directory) as tmp:
        save_file(tensors, str(tmp / "edits.safetensors"))
        config = {"format_version": FORMAT_VERSION, "edits": entries, **extra}
        (tmp / "edits.json").write_text(json.dumps(config, indent=1, default=str))
    return directory


def read_checkpoint_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The JSON half of a checkpoint (edit kinds, hooks, model name, training config)."""
    path = Path(directory) / "edits.json"
    if not path.exists():
        raise FileNotFoundError(f"{directory} is not an edit checkpoint (no edits.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise EditError(f"{path} is corrupt ({error}); re-save the checkpoint") from error


def load_edits(directory: str | os.PathLike, model=None) -> list[Edit]:
    """Rebuild the edits of a checkpoint; with `model`, check that they fit it first."""
    directory = Path(directory)
    config = read_checkpoint_config(directory)
    try:
        tensors = load_file(str(directory / "edits.safetensors"))
    except (SafetensorError, FileNotFoundError, OSError) as error:
        raise EditError(
            f"{directory / 'edits.safetensors'} is missing or corrupt ({error}); re-save the checkpoint"
        ) from error
    edit_list = []
    for index, entry in enumerate(config["edits"]):
        kind = entry["function"]["kind"]
        if kind not in EDIT_FUNCTIONS:
            raise EditError(
                f"unknown edit kind {kind!r} in {directory}; known: {sorted(EDIT_FUNCTIONS)}"
            )
        function = EDIT_FUNCTIONS[kind].from_config(entry["function"])
        prefix = f"{index}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
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
