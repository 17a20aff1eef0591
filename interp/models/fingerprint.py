"""A cheap fingerprint of a loaded model's weights, saved with results and compared on reuse.

    model_fingerprint(model)  # {"model": "adder4", "weights": "3f2a9c0d1e7b4a61", "dtype": "float32"}

The digest hashes every parameter's name, shape and dtype and a fixed sample of its values (the
first and last values and evenly spaced ones in between), not all its bytes, so it costs little
even for large models. Equal weights give equal fingerprints; a changed shape, dtype, name or a
changed value at a sampled place gives another one.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from interp.models.loading import model_name

__all__ = [
    "SAMPLES_PER_TENSOR",
    "fingerprint_difference",
    "model_fingerprint",
    "trained_model_difference",
]

SAMPLES_PER_TENSOR = 512


@torch.no_grad()
def model_fingerprint(model: Any) -> dict[str, str]:
    """{"model": name, "weights": 16-hex-digit digest, "dtype": dtype of the weights}, and
    "float32_products" where `torch.set_float32_matmul_precision` lets float32 products round
    lower than float32 ("high", "medium")."""
    digest = hashlib.sha256()
    dtypes = set()
    for name, parameter in model.named_parameters():
        dtypes.add(str(parameter.dtype).removeprefix("torch."))
        digest.update(f"{name}:{tuple(parameter.shape)}:{parameter.dtype};".encode())
        flat = parameter.detach().reshape(-1)
        if flat.numel() == 0:
            continue
        count = min(SAMPLES_PER_TENSOR, flat.numel())
        # Integer spacing: a float linspace over tens of millions of values rounds past the end.
        places = torch.arange(count, device=flat.device) * (flat.numel() - 1) // max(count - 1, 1)
        sample = flat[places]
        digest.update(sample.float().cpu().numpy().tobytes())
    fingerprint = {
        "model": model_name(model),
        "weights": digest.hexdigest()[:16],
        "dtype": "+".join(sorted(dtypes)) or "none",
    }
    products = torch.get_float32_matmul_precision()
    if "float32" in dtypes and products != "highest":
        # float32 products rounded lower (set_float32_matmul_precision): not float32's answers
        fingerprint["float32_products"] = products
    return fingerprint


def fingerprint_difference(saved: Any, now: dict[str, str]) -> str:
    """'' when `saved` (as read back from disk) is the fingerprint `now`, else what differs."""
    if not isinstance(saved, dict):
        return "it records no model fingerprint (saved by an older interp)"
    parts = []
    if saved.get("model") != now["model"]:
        parts.append(f"model {saved.get('model')!r}, not {now['model']!r}")
    if saved.get("dtype") != now["dtype"]:
        parts.append(f"dtype {saved.get('dtype')!r}, not {now['dtype']!r}")
    # absent: full float32 products (or no float32 weights), as every earlier result was made
    saved_products = saved.get("float32_products", "highest")
    now_products = now.get("float32_products", "highest")
    if saved_products != now_products:
        parts.append(f"float32 matmul precision {saved_products!r}, not {now_products!r}")
    if saved.get("weights") != now["weights"]:
        parts.append(f"weights {saved.get('weights')!r}, not {now['weights']!r}")
    return "it was made with " + ", ".join(parts) if parts else ""


def trained_model_difference(meta: dict[str, Any], model: Any) -> str:
    """'' when a checkpoint whose `meta` records the model it was trained on ("model" name and
    "fingerprint") fits `model`, else what differs. Weights are compared only at the same dtype
    (an edit trained in float32 may run on the same model loaded in bfloat16)."""
    now = model_fingerprint(model)
    saved_name = meta.get("model")
    if saved_name and saved_name != now["model"]:
        return f"it was trained on {saved_name!r}, not on {now['model']!r}"
    saved = meta.get("fingerprint")
    if (
        isinstance(saved, dict)
        and saved.get("dtype") == now["dtype"]
        and saved.get("weights") != now["weights"]
    ):
        return (
            f"it was trained on {now['model']!r} with weights {saved.get('weights')!r}, but the "
            f"loaded {now['model']!r} has weights {now['weights']!r}"
        )
    return ""
