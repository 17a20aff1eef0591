"""Load a model as a booted `TransformerBridge`: a preset, a local Hugging Face folder, or a hub name.

Presets come from `interp.models.presets`: a folder shipped inside the package, or GGUF parts
turned into a cached Hugging Face folder by `interp.models.gguf_cache`. Every source ends as a
Hugging Face model and tokenizer that are booted into a bridge and named (see `model_name`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from interp.models.dtypes import DEFAULT_DTYPE, resolve_dtype
from interp.models.errors import ModelLoadError
from interp.models.folder_checks import (
    TOKENIZER_FILES,
    check_config,
    check_json_files,
    check_weights,
    has_tokenizer_files,
)
from interp.models.gguf_cache import cached_preset_folder, default_cache_dir
from interp.models.presets import DEFAULT_MODEL, PRESETS, Preset, close_presets, get_preset
from interp.models.tokenizer_setup import prepare_tokenizer

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "DEFAULT_MODEL",
    "check_device",
    "load_model",
    "looks_like_path",
    "model_name",
    "preset_folder",
]

HUB_PROBE_TIMEOUT_S = 10.0


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def load_model(
    name_or_path: str | Path = DEFAULT_MODEL,
    device: str = "cpu",
    dtype: torch.dtype | str = DEFAULT_DTYPE,
    cache_dir: str | Path | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> TransformerBridge:
    """Load a preset, a local Hugging Face folder or (online) a hub name as a booted bridge.

    The bridge is in eval mode, carries its tokenizer (pad token set, left padding), and records
    the name it was loaded by in ``bridge.interp_name`` (see `model_name`). A preset name wins
    over a folder of the same name. `tokenizer` overrides the tokenizer found with the weights.
    A name that is no preset, no folder and no hub id (``owner/name``) fails at once, with the
    closest presets; a hub id is looked up in the local Hugging Face cache, then on the hub.
    `dtype` is a torch dtype, a name ("float32", "bfloat16", "float16") or "auto", which follows
    the hardware (`interp.models.dtypes.native_dtype`); the default stays float32.
    """
    name = str(name_or_path)
    check_device(device)
    try:
        dtype = resolve_dtype(dtype, device)
    except ValueError as error:
        raise ModelLoadError(str(error)) from None
    preset = get_preset(name)
    if preset is not None and preset.kind == "merged_adapter":
        return load_with_adapter(
            preset.base, adapter_folder(preset, cache_dir), preset.name, device, dtype, cache_dir
        )
    if preset is not None:
        folder = _preset_source_folder(preset, cache_dir)
        hf_model, tok = _load_hf_folder(folder, dtype, tokenizer)
        bridge = _boot(hf_model, tok, preset.name, device, dtype, tl_name=preset.upstream)
        bridge.interp_cache_dir = cache_dir  # where `reload_as` finds the same weights
        return bridge
    folder = Path(name).expanduser()
    if folder.is_dir():
        hf_model, tok = _load_hf_folder(folder, dtype, tokenizer)
        return _boot(hf_model, tok, str(folder.resolve()), device, dtype)
    if looks_like_path(name):
        raise ModelLoadError(
            f"No model folder at {folder.resolve()}: the path does not exist. Pass an existing "
            f"Hugging Face folder (config.json, weights, tokenizer files) or a preset: "
            f"{_preset_list()}."
        )
    hf_model, tok = _load_from_hub(name, dtype, tokenizer)
    return _boot(hf_model, tok, name, device, dtype)


def reload_as(model: TransformerBridge, dtype: torch.dtype | str) -> TransformerBridge:
    """The same model loaded again from its source in another dtype, on the same device.

    A float32 twin of a bfloat16 model must hold the source's float32 weights (casting the bf16
    copy up would keep its rounding), so it is loaded again by the name it was loaded by.
    """
    name = getattr(model, "interp_name", None)
    if not name:
        raise ModelLoadError(
            "this model was not loaded by interp.load_model, so it cannot be loaded again in "
            "another dtype: load that copy yourself and pass it in"
        )
    device = next(model.parameters()).device
    return load_model(
        name,
        device=str(device),
        dtype=dtype,
        cache_dir=getattr(model, "interp_cache_dir", None),
        tokenizer=model.tokenizer,
    )


def check_device(device: str | torch.device) -> None:
    """Require `device` to name a device this torch can use; say what to do otherwise (the CLI's
    `--device` check is this one)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ModelLoadError(
            f"Unknown device {device!r}: use cpu, cuda, cuda:N or mps (an unknown device "
            f"{device!r} cannot hold the model)."
        ) from None
    if parsed.type == "cuda":
        if torch.version.cuda is None:
            raise ModelLoadError(
                f"Device {device!r} needs CUDA, but this torch ({torch.__version__}) is built "
                f"without CUDA. Use device 'cpu' (--device cpu), or install a CUDA build of torch "
                f"on a machine with a GPU (e.g. `pip install torch --index-url "
                f"https://download.pytorch.org/whl/cu124`)."
            )
        if not torch.cuda.is_available():
            raise ModelLoadError(
                f"Device {device!r} needs CUDA, but this torch ({torch.__version__}, CUDA "
                f"{torch.version.cuda}) sees no GPU (check the driver and CUDA_VISIBLE_DEVICES). "
                f"Use device 'cpu' (--device cpu)."
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ModelLoadError(
                f"Device {device!r} does not exist: this machine has {count} CUDA device(s), "
                f"cuda:0 to cuda:{count - 1}."
            )
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(
            f"Device {device!r} needs Apple's MPS, which this torch cannot use here. Use 'cpu'."
        )


def model_name(model: Any) -> str:
    """A stable name for a loaded model, for saved results: the preset, folder or hub name.

    Bridges not loaded by `load_model` fall back to their TransformerLens ``cfg.model_name``.
    """
    name = getattr(model, "interp_name", None)
    if name:
        return str(name)
    cfg = getattr(model, "cfg", None)
    fallback = getattr(cfg, "model_name", None)
    if fallback:
        return str(fallback)
    raise ValueError("this model has no name: load it with interp.models.load_model")


def preset_folder(name: str, cache_dir: str | Path | None = None) -> Path:
    """The Hugging Face folder of a preset, building its cache first when needed.

    Handy to load the same weights with plain transformers (e.g. to compare against HF).
    """
    preset = get_preset(name)
    if preset is None:
        raise ModelLoadError(f"Unknown preset {name!r}. The presets are: {_preset_list()}.")
    return _preset_source_folder(preset, cache_dir)


# ----------------------------------------------------------------------------------------------
# Where a preset's Hugging Face folder is
# ----------------------------------------------------------------------------------------------


def _preset_source_folder(preset: Preset, cache_dir: str | Path | None) -> Path:
    """The HF folder to load a preset from: its shipped folder, or its (re)built cache folder."""
    if preset.unloadable_reason:
        raise ModelLoadError(f"Preset {preset.name!r} cannot be loaded: {preset.unloadable_reason}")
    if preset.kind == "merged_adapter":
        raise ModelLoadError(
            f"Preset {preset.name!r} has no folder of its own: it is {preset.base} with the LoRA in "
            f"{adapter_folder(preset, cache_dir)} merged in when loaded; use load_model"
        )
    if preset.kind == "shipped_folder":
        return _shipped_folder(preset)
    return cached_preset_folder(preset, Path(cache_dir) if cache_dir else default_cache_dir())


def adapter_folder(preset: Preset, cache_dir: str | Path | None = None) -> Path:
    """A "merged_adapter" preset's LoRA checkpoint: shipped in the package, else in the cache."""
    for folder in (preset.assets_path, Path(cache_dir or default_cache_dir()) / preset.folder):
        if (folder / "interp.json").is_file():
            return folder
    hint = preset.missing_hint or "reinstall interp"
    raise ModelLoadError(
        f"Preset {preset.name!r} is {preset.base} with an adapter, but neither {preset.assets_path} "
        f"nor the cache holds the adapter: {hint}."
    )


def load_with_adapter(
    base: str,
    adapter: str | Path,
    name: str,
    device: str = "cpu",
    dtype: torch.dtype | str = DEFAULT_DTYPE,
    cache_dir: str | Path | None = None,
) -> TransformerBridge:
    """`base` with the LoRA checkpoint in `adapter` merged into its weights, named `name`.

    The merge runs on the float32 weights and the sum is cast to `dtype` afterwards: adding the
    adapter's small changes to bfloat16 weights would round most of them away.
    """
    from interp.interventions.lora import merge_lora
    from interp.training import checkpoints

    dtype = resolve_dtype(dtype, device)
    bridge = load_model(base, device=device, dtype=torch.float32, cache_dir=cache_dir)
    merge_lora(bridge, checkpoints.load(adapter, bridge, kind="lora"))
    if dtype != torch.float32:
        bridge = bridge.to(dtype)
    bridge.interp_name = name
    bridge.interp_cache_dir = cache_dir
    return bridge


def _shipped_folder(preset: Preset) -> Path:
    """The folder a preset ships inside the package, or a clear error saying how to make it."""
    folder = preset.assets_path
    if not (folder / "config.json").is_file():
        hint = preset.missing_hint or "reinstall interp"
        raise ModelLoadError(
            f"Preset {preset.name!r} is a model folder shipped inside the package, but "
            f"{folder} {'has no config.json' if folder.exists() else 'does not exist'}: {hint}."
        )
    return folder


# ----------------------------------------------------------------------------------------------
# Hugging Face folders, the hub, booting
# ----------------------------------------------------------------------------------------------


def _load_hf_folder(
    folder: Path, dtype: torch.dtype, tokenizer: PreTrainedTokenizerBase | None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the model and tokenizer of a local Hugging Face folder, with clear errors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_config(folder)
    check_weights(folder)
    if tokenizer is None:
        if not has_tokenizer_files(folder):
            raise ModelLoadError(
                f"{folder} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}). Add the "
                f"tokenizer files to the folder (tokenizer.save_pretrained(folder)), or pass "
                f"tokenizer=... to load_model."
            )
        check_json_files(folder)
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except Exception as error:  # tokenizers raises bare Exceptions for unreadable files
            present = [name for name in TOKENIZER_FILES if (folder / name).is_file()]
            raise ModelLoadError(
                f"Cannot read the tokenizer of {folder} (files: {', '.join(present)}): {error}. "
                f"Replace them with a working tokenizer (tokenizer.save_pretrained(folder)), or "
                f"pass tokenizer=... to load_model."
            ) from error
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=dtype, attn_implementation="eager"
        )
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise ModelLoadError(
            f"Cannot load the model in {folder} (config.json and the weight files): {error}. "
            f"Save the model there again (model.save_pretrained(folder))."
        ) from error
    return hf_model, prepare_tokenizer(tokenizer, str(folder))


def _load_from_hub(
    name: str, dtype: torch.dtype, tokenizer: PreTrainedTokenizerBase | None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a hub id from the local Hugging Face cache, else from the hub; fail fast otherwise.

    Names close to a preset, and names that are not ``owner/name``, never reach the network.
    Before downloading, one quick request asks the hub whether the model exists, so a typo or an
    unreachable hub is an error at once instead of a minute of retries.
    """
    if name.count("/") != 1:
        from_cache = None if close_presets(name) else _from_local_hub_cache(name, dtype, tokenizer)
        if from_cache is not None:
            return from_cache
        raise _unknown_name_error(
            name,
            reason="it is no hub id (hub ids have the form owner/name, e.g. "
            f"{PRESETS[DEFAULT_MODEL].upstream})",
        )
    from_cache = _from_local_hub_cache(name, dtype, tokenizer)
    if from_cache is not None:
        return from_cache
    if _hub_disabled():
        raise _unknown_name_error(
            name,
            reason="it is not in the local Hugging Face cache, and HF_HUB_OFFLINE is set, "
            "so no hub is tried",
        )
    _require_on_hub(name)
    return _from_pretrained(name, dtype, tokenizer, local_files_only=False)


def _from_pretrained(
    name: str,
    dtype: torch.dtype,
    tokenizer: PreTrainedTokenizerBase | None,
    local_files_only: bool,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a hub model and its tokenizer with transformers; errors become `ModelLoadError`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_files_only)
        hf_model = AutoModelForCausalLM.from_pretrained(
            name, dtype=dtype, attn_implementation="eager", local_files_only=local_files_only
        )
    except OSError as error:
        raise _unknown_name_error(
            name, reason=f"loading it from the hub failed ({error})"
        ) from error
    return hf_model, prepare_tokenizer(tokenizer, name)


def _from_local_hub_cache(
    name: str, dtype: torch.dtype, tokenizer: PreTrainedTokenizerBase | None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase] | None:
    """The model from the local Hugging Face cache (no network), or None when it is not there."""
    from huggingface_hub import try_to_load_from_cache

    try:
        cached_config = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid repository id
        return None
    if not isinstance(cached_config, str):
        return None
    return _from_pretrained(name, dtype, tokenizer, local_files_only=True)


def _require_on_hub(name: str) -> None:
    """Ask the hub once, with a short timeout, whether `name` exists; raise a clear error if not."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        HfApi().model_info(name, timeout=HUB_PROBE_TIMEOUT_S)
    except HfHubHTTPError as error:
        raise _unknown_name_error(
            name, reason=f"the hub has no such model, or it is gated ({error})"
        ) from error
    except Exception as error:  # the HTTP client's own connection and timeout errors
        raise _unknown_name_error(
            name, reason=f"no model hub is reachable ({type(error).__name__}: {error})"
        ) from error


def _boot(
    hf_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    name: str,
    device: str,
    dtype: torch.dtype,
    tl_name: str = "",
) -> TransformerBridge:
    """Boot a TransformerBridge over a loaded HF model (modified in place) and name it.

    `tl_name` (a preset's upstream repository) becomes ``cfg.model_name``; passing the official
    name avoids TransformerLens's deprecated-alias warning for names such as ``gemma-3-270m``.
    """
    from transformer_lens.model_bridge import TransformerBridge

    hf_model = hf_model.to(device).eval()
    bridge = TransformerBridge.boot_transformers(
        tl_name or name, hf_model=hf_model, tokenizer=tokenizer, dtype=dtype, device=device
    )
    bridge.eval()
    bridge.interp_name = name
    return bridge


def _hub_disabled() -> bool:
    """True when the environment forbids hub access (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def looks_like_path(name: str) -> bool:
    """True for names that can only mean a local path (hub names are ``org/model`` at most)."""
    if name.startswith((".", "~", "/")) or name.endswith("/") or name.count("/") > 1:
        return True
    return os.sep != "/" and os.sep in name


def _preset_list() -> str:
    """The preset names, comma separated, for error messages."""
    return ", ".join(PRESETS)


def _unknown_name_error(name: str, reason: str) -> ModelLoadError:
    """The error for a name that is no preset and no folder and could not come from a hub."""
    close = close_presets(name)
    suggestion = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ModelLoadError(
        f"Cannot load {name!r}: it is not a preset, not a local folder, and {reason}.{suggestion} "
        f"Pass a preset ({_preset_list()}), the path of a local Hugging Face folder, or a hub "
        f"id (owner/name)."
    )
