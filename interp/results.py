"""Saving and loading analysis results: config JSON + tensors (safetensors) + tables (JSON) + figures.

Every analysis returns a subclass of `Result`. A result directory holds

    config.json      the frozen config dataclass the analysis ran with (seeds included)
    meta.json        the result's class, the model name, anything small and scalar
    tensors.safetensors
    tables.json      lists of row dicts (per layer, per problem, ...)
    figure.html      the figure, rebuilt from the data above (plus figure.png when kaleido works)

Writes go to a temporary directory that is renamed into place, so a crash never leaves half a result.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Self

import torch
from safetensors.torch import load_file, save_file


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as JSON-ready data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass, turning lists back into tuples where the field default is a tuple."""
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in data:
            continue
        value = data[field.name]
        if isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[field.name] = value
    return cls(**kwargs)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON next to `path` and rename it into place, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, default=str)
    os.replace(tmp, path)


@contextmanager
def atomic_directory(directory: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `directory`; when the block ends without error it
    replaces `directory` in one rename, and on error it is removed, so readers never see half."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        yield tmp
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@dataclasses.dataclass
class Result:
    """Base of every analysis result: a config, tensors, tables, and small metadata.

    Subclasses set `config_class` and implement `figure()`; they may add properties that read
    from `tensors` / `tables`, but keep all data in those three containers so save/load is generic.
    """

    config: Any
    tensors: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    config_class: ClassVar[type]

    @property
    def layers(self) -> list[int]:
        """The layers this result covers (its `layers` tensor), for results computed per layer."""
        if "layers" not in self.tensors:
            raise AttributeError(f"a {type(self).__name__} is not computed per layer")
        return [int(x) for x in self.tensors["layers"]]

    def figure(self):  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def save(self, directory: str | os.PathLike, figures: bool = True) -> Path:
        """Write the result to `directory` atomically (replacing an older result there)."""
        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            write_json_atomic(tmp / "config.json", config_to_dict(self.config))
            write_json_atomic(tmp / "meta.json", {"class": type(self).__name__, **self.meta})
            write_json_atomic(tmp / "tables.json", self.tables)
            tensors = {k: v.detach().cpu().contiguous() for k, v in self.tensors.items()}
            save_file(tensors, str(tmp / "tensors.safetensors"))
            if figures:
                fig = self.figure()
                fig.write_html(tmp / "figure.html", include_plotlyjs="cdn")
                _try_write_png(fig, tmp / "figure.png")
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Self:
        """Read a result written by `save`; a missing or foreign directory is a clear error."""
        directory = Path(directory)
        meta_path = directory / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(
                f"{directory} holds no saved result (no meta.json); pass the directory given to .save()"
            )
        meta = json.loads(meta_path.read_text())
        if meta.get("class") != cls.__name__:
            raise ValueError(
                f"{directory} holds a {meta.get('class')} result, not a {cls.__name__}; "
                f"load it with that class"
            )
        meta.pop("class")
        config = config_from_dict(
            cls.config_class, json.loads((directory / "config.json").read_text())
        )
        tables = json.loads((directory / "tables.json").read_text())
        tensors = load_file(str(directory / "tensors.safetensors"))
        return cls(config=config, tensors=tensors, tables=tables, meta=meta)


def _try_write_png(fig, path: Path) -> None:
    """Static export needs kaleido and a browser; skip silently where they are missing."""
    try:
        fig.write_image(path, scale=2)
    except Exception:
        pass


def reuse_or_run(
    directory: str | os.PathLike,
    result_class: type[Result],
    config: Any,
    compute,
    resume: bool = True,
) -> Result:
    """Load the result saved in `directory` if it ran with the same config; else compute and save it."""
    directory = Path(directory)
    if resume and (directory / "meta.json").exists():
        try:
            saved = result_class.load(directory)
        except (ValueError, OSError) as error:
            print(f"[resume] ignoring {directory}: {error}")
        else:
            if saved.config == config:
                print(f"[resume] {directory} already holds this result; reusing it")
                return saved
    result = compute()
    result.save(directory)
    print(f"wrote {directory}")
    return result
