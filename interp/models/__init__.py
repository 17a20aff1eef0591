"""Models: presets, loading any Hugging Face causal LM into a `TransformerBridge`, the cache of
dequantized preset weights, and the toy adder the project trains itself.

`loading` loads and boots; `gguf_cache` builds and checks the cache of GGUF presets; `presets`
lists the models; `tokenizer_setup` readies tokenizers; `errors` holds the shared exceptions;
`dtypes` names the dtypes a model may run in and says which one the hardware computes natively.
"""

from interp.models.dtypes import dtype_name, native_dtype, resolve_dtype
from interp.models.errors import CacheRebuiltWarning, ModelLoadError
from interp.models.gguf_cache import MANIFEST_NAME, default_cache_dir
from interp.models.loading import load_model, model_name, preset_folder

__all__ = [
    "MANIFEST_NAME",
    "CacheRebuiltWarning",
    "ModelLoadError",
    "default_cache_dir",
    "dtype_name",
    "load_model",
    "model_name",
    "native_dtype",
    "preset_folder",
    "resolve_dtype",
]
