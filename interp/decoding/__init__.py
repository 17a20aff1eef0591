"""Decoding: the one loop every experiment decodes through, KL-budget decoding, logit processors."""

from interp.core.tokens import GenerationError
from interp.decoding.loop import Generation, GenerationConfig, generate
from interp.decoding.processors import LogitProcessor, TokenPenalty

__all__ = [
    "Generation",
    "GenerationConfig",
    "GenerationError",
    "LogitProcessor",
    "TokenPenalty",
    "generate",
]
