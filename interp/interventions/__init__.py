"""Edits as hooks: functions of an activation, where they land, and the context that applies them."""

from interp.interventions.edits import Edit, EditError, check_edit, check_hook, edits
from interp.interventions.functions import RED, AddVector, DiReFT, EditFunction, LoReFT, PushAlong
from interp.interventions.serialization import load_edits, read_checkpoint_config, save_edits

__all__ = [
    "RED",
    "AddVector",
    "DiReFT",
    "Edit",
    "EditError",
    "EditFunction",
    "LoReFT",
    "PushAlong",
    "check_edit",
    "check_hook",
    "edits",
    "load_edits",
    "read_checkpoint_config",
    "save_edits",
]
