"""Models: presets, loading any Hugging Face causal LM into a `TransformerBridge`, the cache of
dequantized preset weights, and the toy adder the project trains itself."""

from interp.models.loading import (
    MANIFEST_NAME,
    CacheRebuiltWarning,
    ModelLoadError,
    default_cache_dir,
    load_model,
    model_name,
    preset_folder,
)

__all__ = [
    "MANIFEST_NAME",
    "CacheRebuiltWarning",
    "ModelLoadError",
    "default_cache_dir",
    "load_model",
    "model_name",
    "preset_folder",
]
