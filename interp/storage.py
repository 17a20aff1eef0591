"""The one on-disk format: a folder with `interp.json` and `tensors.safetensors`, written atomically.

Everything interp saves (analysis results, edit checkpoints, LoRA adapters, steering vectors) is

    folder/
      interp.json          {"kind", "format_version", "config", "meta", "tables"}
      tensors.safetensors  every tensor, by name (may be empty)
      figure.html, ...     optional extras written beside them (never read back)

`kind` says what the folder holds (a result class name such as "MathEvalResult", or "edits",
"lora", "steering_vector"); `config` is what it was made with, `meta` small facts about it (the
model's name, counts), `tables` lists of row dicts. A folder is written into a temporary folder
(named after the writing process, so a later save removes what a killed writer left) that then
replaces the old one, so a crash never leaves half of one. Only an absent or empty folder or a
saved folder of the same kind is ever replaced: anything else (a user's files, another kind) is an
`OccupiedError` and stays as it was. Reading is strict: a
missing file, another kind, another format version, or missing or unknown keys are a
`StorageError` that says what is there and what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import socket
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT_VERSION = 1
RECORD_FILE = "interp.json"
TENSORS_FILE = "tensors.safetensors"
RECORD_KEYS = ("kind", "format_version", "config", "meta", "tables")

# Files that folders written before `interp.json` existed hold, and what they held.
_LEGACY_FILES = {
    "meta.json": "an analysis result",
    "edits.json": "an edit checkpoint",
    "lora.json": "a LoRA checkpoint",
    "vector.json": "a steering vector",
}


class StorageError(ValueError):
    """A saved folder that cannot be read as asked; the message says what is there and what to do."""


@dataclasses.dataclass(frozen=True)
class Stored:
    """The contents of one saved folder."""

    kind: str
    config: dict[str, Any]
    meta: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]]
    tensors: dict[str, torch.Tensor]


# --------------------------------------------------------------------------------------------------
# Atomic writes


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON next to `path` and rename it into place, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(path)
    tmp = temporary_path(path, suffix=".tmp")
    try:
        with tmp.open("w") as f:
            json.dump(data, f, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# Temporary files and folders are named `.NAME.<role>-<host>-<pid>-<random>`, so a later writer can
# tell the leftovers of a writer that died (SIGKILL, power cut) from those of one still running.
_TEMPORARY = re.compile(r"(?P<role>tmp|old)-(?P<host>.+)-(?P<pid>\d+)-[A-Za-z0-9_]+(\.tmp)?")


def temporary_path(path: str | os.PathLike, role: str = "tmp", suffix: str = "") -> Path:
    """A fresh hidden name beside `path` that records this host and process (nothing is created)."""
    path = Path(path)
    name = (
        f".{path.name}.{role}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"
    )
    return path.with_name(name)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return True
    return True


def remove_dead_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders beside `path` left by writers on this host that are
    no longer running; a moved-aside old folder whose replacement never arrived is put back.
    Returns what was removed or restored. Live writers' temporaries are never touched."""
    path = Path(path)
    prefix = f".{path.name}."
    host = socket.gethostname()
    cleaned = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return cleaned
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        match = _TEMPORARY.fullmatch(entry.name[len(prefix) :])
        if match is None or match["host"] != host or _alive(int(match["pid"])):
            continue
        if match["role"] == "old" and not path.exists() and not path.is_symlink():
            with contextlib.suppress(OSError):
                os.replace(entry, path)  # the writer died between moving it aside and replacing it
                cleaned.append(entry)
                continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        cleaned.append(entry)
    return cleaned


class OccupiedError(StorageError):
    """The place asked for holds something interp must not replace (a user's file or folder)."""


def check_replaceable(directory: str | os.PathLike, kind: str) -> None:
    """Raise `OccupiedError` unless saving a `kind` folder at `directory` loses nothing: it must not
    exist, be an empty folder, or hold a saved folder of the same kind."""
    directory = Path(directory)
    proceed = (
        "nothing was written and nothing there was touched: choose another output folder "
        "(--out), or delete it yourself if you no longer need it"
    )
    for parent in directory.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise OccupiedError(
                    f"{parent} is a file, so {directory} cannot be made inside it; {proceed}"
                )
            break
    if directory.is_symlink():
        raise OccupiedError(f"{directory} is a symbolic link; {proceed}")
    if not directory.exists():
        return
    if not directory.is_dir():
        raise OccupiedError(f"{directory} is a file, not a folder of saved results; {proceed}")
    names = sorted(p.name for p in directory.iterdir())
    if not names:
        return
    found = _saved_kind(directory)
    if found == kind:
        return
    if found is None and all(_written_by_interp(name) for name in names):
        return  # a broken saved folder (e.g. a corrupt record) with nothing of anyone else's
    if found is not None:
        raise OccupiedError(f"{directory} holds a saved {found!r}, not a {kind!r}; {proceed}")
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    raise OccupiedError(
        f"{directory} already exists and is not a saved {kind!r} (it holds {shown}); {proceed}"
    )


def _saved_kind(directory: Path) -> str | None:
    """The kind a folder's record (or a record in a layout from before it) names, if readable."""
    legacy_kinds = {"edits.json": "edits", "lora.json": "lora", "vector.json": "steering_vector"}
    for name in (RECORD_FILE, "meta.json", *legacy_kinds):
        path = directory / name
        if not path.is_file():
            continue
        if name in legacy_kinds:
            return legacy_kinds[name]
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            return None
        found = (
            data.get("kind" if name == RECORD_FILE else "class") if isinstance(data, dict) else None
        )
        return found if isinstance(found, str) else None
    return None


def _written_by_interp(name: str) -> bool:
    return name in (RECORD_FILE, TENSORS_FILE) or name.startswith("figure.")


@contextmanager
def atomic_directory(directory: str | os.PathLike, kind: str) -> Iterator[Path]:
    """Yield an empty temporary folder beside `directory`; when the block ends without error it
    replaces `directory`, and on error it is removed, so readers never see half a folder.

    `directory` must be absent, empty, or a saved folder of the same `kind` (`check_replaceable`,
    checked before and again just before replacing): a user's files are never replaced.
    Temporaries left by writers killed earlier are removed first.
    """
    directory = Path(directory)
    check_replaceable(directory, kind)
    directory.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(directory)
    tmp = temporary_path(directory)
    tmp.mkdir()
    try:
        yield tmp
        check_replaceable(directory, kind)
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
        if directory.exists():
            old = temporary_path(directory, role="old")
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------------------------------
# Writing and reading a folder


def save_folder(
    directory: str | os.PathLike,
    kind: str,
    *,
    config: dict[str, Any],
    meta: dict[str, Any] | None = None,
    tables: dict[str, list[dict[str, Any]]] | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
    write_extras: Callable[[Path], None] | None = None,
) -> Path:
    """Write one folder atomically, replacing only an empty folder or a saved one of the same
    `kind` (else `OccupiedError`); `write_extras(tmp)` may add files such as figures, and if it
    fails the old folder stays as it was."""
    directory = Path(directory)
    record = {
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "config": config,
        "meta": dict(meta or {}),
        "tables": dict(tables or {}),
    }
    cpu = {name: t.detach().cpu().contiguous() for name, t in (tensors or {}).items()}
    with atomic_directory(directory, kind) as tmp:
        save_file(cpu, str(tmp / TENSORS_FILE))
        (tmp / RECORD_FILE).write_text(json.dumps(record, indent=1, default=str))
        if write_extras is not None:
            write_extras(tmp)
    return directory


def is_saved(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds a saved folder (of any kind or version)."""
    return (Path(directory) / RECORD_FILE).is_file()


def read_record(directory: str | os.PathLike, kind: str | None = None) -> dict[str, Any]:
    """The checked `interp.json` of a folder (no tensors): right kind (when given) and version,
    exactly the keys of `RECORD_KEYS`."""
    directory = Path(directory)
    path = directory / RECORD_FILE
    if not path.is_file():
        raise FileNotFoundError(_missing_message(directory, kind))
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StorageError(
            f"{path} is corrupt ({error}); delete {directory} and save or compute it again"
        ) from error
    if not isinstance(record, dict):
        raise StorageError(f"{path} holds a {type(record).__name__}, not a JSON object; re-save it")
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise StorageError(
            f"{path} is in format version {version!r} but this interp reads version "
            f"{FORMAT_VERSION}; recompute it (delete {directory}), or read it with the interp "
            f"version that wrote it"
        )
    check_keys(record, RECORD_KEYS, f"{path} (format version {FORMAT_VERSION})")
    if kind is not None and record["kind"] != kind:
        raise StorageError(
            f"{directory} holds a {record['kind']!r}, not a {kind!r}; load it as a "
            f"{record['kind']!r} or point to a folder that holds a {kind!r}"
        )
    return record


def load_folder(directory: str | os.PathLike, kind: str | None = None) -> Stored:
    """Read a folder written by `save_folder`, checked as in `read_record`, with its tensors."""
    directory = Path(directory)
    record = read_record(directory, kind)
    try:
        tensors = load_file(str(directory / TENSORS_FILE))
    except (SafetensorError, FileNotFoundError, OSError) as error:
        raise StorageError(
            f"{directory / TENSORS_FILE} is missing or corrupt ({error}); delete {directory} and "
            f"save or compute it again"
        ) from error
    return Stored(record["kind"], record["config"], record["meta"], record["tables"], tensors)


def check_keys(data: dict[str, Any], expected: tuple[str, ...], where: str) -> None:
    """Refuse a saved dict whose keys are not exactly `expected` (names what is missing/unknown)."""
    missing = [key for key in expected if key not in data]
    unknown = [key for key in data if key not in expected]
    if missing or unknown:
        raise StorageError(
            f"{where} has missing keys {missing or 'none'} and unknown keys {unknown or 'none'} "
            f"(expected {list(expected)}); it was written by other code: re-save it"
        )


def _missing_message(directory: Path, kind: str | None) -> str:
    what = f"a saved {kind!r}" if kind else "a saved interp folder"
    for name, held in _LEGACY_FILES.items():
        if (directory / name).is_file():
            return (
                f"{directory} holds {held} in the layout used before {RECORD_FILE} (it has "
                f"{name}); convert it once with interp.storage.upgrade_legacy({str(directory)!r}) "
                f"or compute it again"
            )
    if not directory.exists():
        return f"{directory} does not exist; pass the folder given to .save()"
    return f"{directory} does not hold {what} (no {RECORD_FILE}); pass the folder given to .save()"


# --------------------------------------------------------------------------------------------------
# Configs as JSON


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as JSON-ready data (nested dataclasses become dicts, tuples lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from `config_to_dict` output, strictly.

    A field declared as a dataclass (or `X | None`) is rebuilt as that dataclass; lists become
    tuples (lists again where the field is declared `list`). Missing or unknown keys are an error,
    so a config saved by other code never loads with silently filled-in defaults.
    """
    fields = dataclasses.fields(cls)
    check_keys(data, tuple(field.name for field in fields), f"the saved {cls.__name__}")
    hints = _type_hints(cls)
    return cls(**{f.name: _rebuild(hints.get(f.name), data[f.name]) for f in fields if f.init})


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # a hint naming something only imported for type checking
        return {f.name: f.type for f in dataclasses.fields(cls) if not isinstance(f.type, str)}


def _rebuild(hint: Any, value: Any) -> Any:
    """`value` read from JSON, turned back into the declared type where JSON lost it."""
    if isinstance(value, dict) and isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        dataclass_args = [a for a in args if isinstance(a, type) and dataclasses.is_dataclass(a)]
        if isinstance(value, dict) and len(dataclass_args) == 1:
            return config_from_dict(dataclass_args[0], value)
        others = [a for a in args if a is not type(None)]
        return _rebuild(others[0] if len(others) == 1 else None, value)
    if isinstance(value, list):
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_rebuild(args[0], v) for v in value)
        if origin is tuple and args and len(args) == len(value):
            return tuple(_rebuild(a, v) for a, v in zip(args, value))
        if origin is list:
            return [_rebuild(args[0] if args else None, v) for v in value]
        return tuple(_rebuild(None, v) for v in value)
    if isinstance(value, dict) and origin is dict and len(args) == 2:
        return {k: _rebuild(args[1], v) for k, v in value.items()}
    return value


def differing_keys(saved: Any, now: Any, prefix: str = "") -> list[str]:
    """Dotted names of the entries that differ between two JSON-like dicts (e.g. `config.seed`)."""
    if not (isinstance(saved, dict) and isinstance(now, dict)):
        return [prefix or "(value)"] if saved != now else []
    found = []
    for key in sorted(set(saved) | set(now), key=str):
        name = f"{prefix}.{key}" if prefix else str(key)
        if key not in saved or key not in now:
            found.append(name)
        else:
            found.extend(differing_keys(saved[key], now[key], name))
    return found


# --------------------------------------------------------------------------------------------------
# Folders written before interp.json


def upgrade_legacy(directory: str | os.PathLike) -> str:
    """Rewrite a folder saved in a layout from before `interp.json` (results: config/meta/tables
    JSON; edits.json, lora.json or vector.json with their safetensors) in the current format, in
    place and atomically. Returns the kind it now holds."""
    directory = Path(directory)

    def read(name: str) -> Any:
        return json.loads((directory / name).read_text(encoding="utf-8"))

    def tensors_of(name: str) -> dict[str, torch.Tensor]:
        return load_file(str(directory / name))

    if (directory / "meta.json").is_file():
        meta = read("meta.json")
        kind = meta.pop("class")
        fields = dict(config=read("config.json"), meta=meta, tables=read("tables.json"))
        tensors = tensors_of("tensors.safetensors")
    elif (directory / "edits.json").is_file():
        extra = read("edits.json")
        extra.pop("format_version", None)
        kind, tensors = "edits", tensors_of("edits.safetensors")
        fields = dict(config={"edits": extra.pop("edits")}, meta=extra)
    elif (directory / "lora.json").is_file():
        extra = read("lora.json")
        extra.pop("kind", None)
        config = {key: extra.pop(key) for key in ("rank", "alpha", "modules")}
        kind, tensors, fields = (
            "lora",
            tensors_of("lora.safetensors"),
            dict(config=config, meta=extra),
        )
    elif (directory / "vector.json").is_file():
        info = read("vector.json")
        config = {
            key: info.pop(key)
            for key in ("layers", "toward", "away", "pooling", "normalization", "counts")
        }
        meta = {**info.pop("meta", {}), "description": info}
        kind, tensors = "steering_vector", tensors_of("vector.safetensors")
        fields = dict(config=config, meta=meta)
    else:
        raise FileNotFoundError(
            f"{directory} holds no folder in a layout from before {RECORD_FILE}"
        )
    extras = [p for p in directory.iterdir() if p.name.startswith("figure.")]

    def copy_extras(tmp: Path) -> None:
        for path in extras:
            shutil.copy2(path, tmp / path.name)

    save_folder(directory, kind, tensors=tensors, write_extras=copy_extras, **fields)
    return kind
