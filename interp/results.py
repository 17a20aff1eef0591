"""Analysis results and the one resume path: `Result`, `reuse_or_run`, `PartialRun`.

Every analysis returns a subclass of `Result`: a frozen config, tensors, tables and small metadata.
`result.save(folder)` writes it in the one on-disk format of `interp.storage` (kind = the result's
class name) plus `figure.html` (and `figure.png` where static export works).

Resuming, one way for every analysis:
- `reuse_or_run(folder, ResultClass, config, compute, model=model)` loads the saved result when
  its config and model (name and weights fingerprint, `interp.models.fingerprint`) match, and
  otherwise computes and saves it, saying why. It never replaces anything but a saved result of
  the same class (see `interp.storage.check_replaceable`), and checks that before computing.
- `PartialRun(folder, header, model=model)` streams the finished rows of a long run to
  `<folder>.partial.jsonl` so an interrupted run picks up where it stopped; the header records
  what decides the rows, the model's fingerprint included.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import torch

from interp.models.fingerprint import fingerprint_difference, model_fingerprint
from interp.storage import (
    StorageError,
    atomic_directory,
    check_replaceable,
    config_from_dict,
    config_to_dict,
    differing_keys,
    load_folder,
    save_folder,
    write_json_atomic,
)

__all__ = [
    "PartialRun",
    "Result",
    "atomic_directory",
    "check_saved_model",
    "config_from_dict",
    "config_to_dict",
    "reuse_or_run",
    "write_json_atomic",
]


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

    def save(self, directory: str | os.PathLike, figures: bool = True, model: Any = None) -> Path:
        """Write the result to `directory` atomically (replacing only an older result of this
        class there); with `model`, its fingerprint is recorded in `meta["fingerprint"]`."""
        if model is not None:
            self.meta["fingerprint"] = model_fingerprint(model)

        def write_figures(tmp: Path) -> None:
            fig = self.figure()
            fig.write_html(tmp / "figure.html", include_plotlyjs="cdn")
            _try_write_png(fig, tmp / "figure.png")

        return save_folder(
            directory,
            type(self).__name__,
            config=config_to_dict(self.config),
            meta=self.meta,
            tables=self.tables,
            tensors=self.tensors,
            write_extras=write_figures if figures else None,
        )

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Self:
        """Read a result written by `save`; another kind, version or a broken folder is a clear error."""
        stored = load_folder(directory, kind=cls.__name__)
        try:
            config = config_from_dict(cls.config_class, stored.config)
        except StorageError as error:
            raise StorageError(f"{directory}: {error}") from error
        return cls(config=config, tensors=stored.tensors, tables=stored.tables, meta=stored.meta)


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
    compute: Callable[[], Result],
    resume: bool = True,
    model_name: str | None = None,
    *,
    model: Any = None,
) -> Result:
    """Load the result saved in `directory` if it ran with the same config and on the same model
    (with `model`: its name, dtype and weights fingerprint; with only `model_name`: the name);
    else compute it, save it (with the model's fingerprint) and say why.

    Anything in `directory` other than a saved `result_class` is refused before computing
    (`interp.storage.OccupiedError`), so a user's files are never replaced.
    """
    directory = Path(directory)
    check_replaceable(directory, result_class.__name__)
    fingerprint = model_fingerprint(model) if model is not None else None
    if resume and directory.is_dir():
        saved, reason = _load_if_reusable(directory, result_class, config, model_name, fingerprint)
        if saved is not None:
            print(f"[resume] {directory} already holds this result; reusing it")
            return saved
        if reason:
            print(f"[resume] recomputing {directory}: {reason}")
    result = compute()
    if fingerprint is not None:
        result.meta["fingerprint"] = fingerprint
    result.save(directory)
    print(f"wrote {directory}")
    return result


def _load_if_reusable(
    directory: Path,
    result_class: type[Result],
    config: Any,
    model_name: str | None,
    fingerprint: dict[str, str] | None,
) -> tuple[Result | None, str]:
    """The saved result when it can stand for a fresh one, else None and the reason why not."""
    if not any(directory.iterdir()):
        return None, ""
    try:
        saved = result_class.load(directory)
    except (ValueError, OSError) as error:
        return None, f"the saved result does not load ({error})"
    if saved.config != config:
        changed = differing_keys(config_to_dict(saved.config), config_to_dict(config))
        return None, f"it was computed with another config ({', '.join(changed) or 'types differ'})"
    if fingerprint is not None:
        difference = fingerprint_difference(saved.meta.get("fingerprint"), fingerprint)
        if difference:
            return None, difference
    saved_model = saved.meta.get("model")
    if model_name is not None and saved_model != model_name:
        return None, f"it was computed on model {saved_model!r}, not {model_name!r}"
    return saved, ""


def check_saved_model(saved: Result, model: Any, directory: str | os.PathLike) -> None:
    """Raise ValueError unless `saved` was computed on `model` (name, dtype, weights fingerprint)."""
    difference = fingerprint_difference(saved.meta.get("fingerprint"), model_fingerprint(model))
    if difference:
        raise ValueError(
            f"{directory} holds a {type(saved).__name__} that does not belong to this model: "
            f"{difference}; choose another output folder, or delete it to recompute"
        )


PARTIAL_KIND = "partial_run"


class PartialRun:
    """The finished rows of an unfinished run, as JSONL in `<directory>.partial.jsonl`.

        partial = PartialRun(out, {"config": config_to_dict(config)}, model=model)
        todo = [p for p in problems if p.id not in partial.by_key("id")]
        ... partial.append(rows) after each batch ...
        result.save(out); partial.finish()

    The first line records `header` (what decides the rows) and, with `model`, the model's
    fingerprint under "fingerprint". Opening a file whose header differs raises ValueError naming
    the differing keys, or starts over when `resume=False`. A last line
    cut off by a crash is dropped; rows are flushed to disk at every `append`.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        header: dict[str, Any],
        resume: bool = True,
        *,
        model: Any = None,
    ):
        self.path = Path(f"{Path(directory)}.partial.jsonl")
        if model is not None:
            header = {**header, "fingerprint": model_fingerprint(model)}
        self.header = json.loads(json.dumps(header, default=str))
        self.rows: list[dict[str, Any]] = []
        if resume and self.path.exists() and self._read():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        first = {"kind": PARTIAL_KIND, "format_version": 1, "header": self.header}
        self.path.write_text(json.dumps(first) + "\n", encoding="utf-8")

    def _read(self) -> bool:
        """Load the rows of an existing file; False when it holds nothing to resume."""
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):  # the last line was cut off by a crash
            data = data[: data.rfind(b"\n") + 1]
            self.path.write_bytes(data)
        lines = data.decode("utf-8").splitlines()
        if not lines:
            return False
        try:
            first = json.loads(lines[0])
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{self.path}, line 1 is not a partial-run header ({error})"
            ) from error
        if not isinstance(first, dict) or first.get("kind") != PARTIAL_KIND:
            raise ValueError(
                f"{self.path} does not start with a partial-run header; it was not written by "
                f"PartialRun: delete it, or pass resume=False to start over"
            )
        if first.get("header") != self.header:
            changed = differing_keys(first.get("header"), self.header)
            raise ValueError(
                f"{self.path} holds a partial run made with other settings ({', '.join(changed)} "
                f"differ); delete it, choose another output folder, or pass resume=False to start over"
            )
        for number, line in enumerate(lines[1:], start=2):
            try:
                self.rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{self.path}, line {number} is corrupt ({error}); delete the file to start over"
                ) from error
        return True

    def by_key(self, key: str | tuple[str, ...]) -> dict[Any, dict[str, Any]]:
        """The finished rows by `row[key]` (or by the tuple of the given keys' values)."""
        if isinstance(key, tuple):
            return {tuple(row[k] for k in key): row for row in self.rows}
        return {row[key]: row for row in self.rows}

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Add finished rows, on disk (flushed and synced) and in `rows`."""
        rows = [json.loads(json.dumps(row, default=str)) for row in rows]
        with self.path.open("a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rows.extend(rows)

    def finish(self) -> None:
        """Remove the file, once the complete result is saved."""
        self.path.unlink(missing_ok=True)
