"""Check a local Hugging Face folder before loading it, so a broken file is named in the error.

transformers reports a broken folder with errors that often name no file (a JSON error of some
tokenizer file, a safetensors header error). These checks read only small parts of each file
(JSON files, safetensors headers) and raise a `ModelLoadError` that names the file and says what
to do.
"""

from __future__ import annotations

import json
from pathlib import Path

from interp.models.errors import ModelLoadError

__all__ = [
    "TOKENIZER_FILES",
    "WEIGHT_PATTERNS",
    "check_config",
    "check_json_files",
    "check_weights",
    "has_tokenizer_files",
]

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
)
TOKENIZER_JSON_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
)
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json")
TOKENIZER_HINT = (
    "replace it with a working tokenizer (tokenizer.save_pretrained(folder)), or pass "
    "tokenizer=... to load_model"
)
RESAVE_HINT = "save the model there again (model.save_pretrained(folder)) or copy the file anew"


def check_config(folder: Path) -> None:
    """Require `folder/config.json` to exist and be a JSON object naming a ``model_type``."""
    path = folder / "config.json"
    if not path.is_file():
        raise ModelLoadError(
            f"{folder} is not a Hugging Face model folder: it has no config.json. Point to the "
            f"folder that holds config.json, the weights and the tokenizer files."
        )
    config = _read_json(path, RESAVE_HINT)
    if not isinstance(config, dict) or not config.get("model_type"):
        raise ModelLoadError(
            f'{path} is not a model config: it must be a JSON object with a "model_type" '
            f'(e.g. "qwen2"); {RESAVE_HINT}.'
        )


def has_tokenizer_files(folder: Path) -> bool:
    """True when `folder` holds at least one of the files a tokenizer is read from."""
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def check_json_files(folder: Path, names: tuple[str, ...] = TOKENIZER_JSON_FILES) -> None:
    """Require the tokenizer files present in `folder` to be valid JSON, tokenizer.json a tokenizer."""
    for name in names:
        path = folder / name
        if path.is_file():
            _read_json(path, TOKENIZER_HINT)
    fast = folder / "tokenizer.json"
    if "tokenizer.json" in names and fast.is_file():
        from tokenizers import Tokenizer

        try:
            Tokenizer.from_file(str(fast))
        except Exception as error:  # tokenizers raises bare Exceptions
            raise ModelLoadError(
                f"{fast} is not a tokenizer file ({error}); {TOKENIZER_HINT}."
            ) from error


def check_weights(folder: Path) -> None:
    """Require weight files in `folder` and every safetensors file to have a complete header.

    Opening a safetensors file reads only its header and checks that the file is long enough
    for every tensor the header lists, so a truncated or overwritten file is found here.
    """
    from safetensors import SafetensorError, safe_open

    found = sorted({path for pattern in WEIGHT_PATTERNS for path in folder.glob(pattern)})
    if not found:
        raise ModelLoadError(
            f"{folder} has no weights (none of model.safetensors, model-*.safetensors with their "
            f"index, pytorch_model.bin). Save the model there (model.save_pretrained(folder)) or "
            f"point to the folder that holds its weights."
        )
    for path in found:
        if path.suffix != ".safetensors":
            continue
        try:
            with safe_open(path, framework="pt"):
                pass
        except (SafetensorError, OSError) as error:
            raise ModelLoadError(
                f"{path} is not a complete safetensors file ({error}): it is truncated or "
                f"damaged; {RESAVE_HINT}."
            ) from error


def _read_json(path: Path, hint: str) -> object:
    """The parsed JSON of `path`, or a `ModelLoadError` naming the file, the place and `hint`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ModelLoadError(f"{path} is not UTF-8 text ({error}); {hint}.") from error
    except json.JSONDecodeError as error:
        raise ModelLoadError(
            f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            f"{hint}."
        ) from error
