"""The errors and warnings of model loading, shared by the loader and the preset cache."""

from __future__ import annotations

__all__ = ["CacheRebuiltWarning", "ModelLoadError"]


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do about it."""


class CacheRebuiltWarning(UserWarning):
    """A cached model folder was incomplete or corrupt and is being rebuilt from its packages."""
