"""interp: interpretability of representation edits (ReFT, steering) on TransformerLens bridges.

import interp
model = interp.load_model("qwen2.5-coder-0.5b-instruct")
from interp.analyses import number_probe
result = number_probe.run(model)
"""

from interp.decoding import Generation, GenerationConfig, generate
from interp.interventions import Edit, edits, load_edits, save_edits
from interp.models import load_model

__all__ = [
    "Edit",
    "Generation",
    "GenerationConfig",
    "edits",
    "generate",
    "load_edits",
    "load_model",
    "save_edits",
]
__version__ = "0.1.0"
