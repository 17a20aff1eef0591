"""What a worker computes with: a model and the arms that run on it, described by picklable specs.

A worker never receives a bridge. It receives a `ModelSpec` (the model's name or folder, dtype and
device), loads the model once and checks that its weights fingerprint equals the driver's, so
every worker computes with the weights the driver would have used. Each run then names its arms
(`ArmSpecs`: each arm's edits as a checkpoint folder or that folder's bytes), which the worker
loads on its model once and keeps, so one worker serves every arm of a comparison.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from interp.interventions.arms import Arm
from interp.interventions.edits import Edit
from interp.interventions.serialization import load_edits, save_edits
from interp.models import dtype_name, load_model, model_name
from interp.models.fingerprint import fingerprint_difference, model_fingerprint

__all__ = [
    "SPEC_ATTRIBUTE",
    "ArmSpecs",
    "EditsSpec",
    "ModelSpec",
    "Replica",
    "set_model_spec",
    "shared_model",
    "unique_arms",
]

# A model may carry its own spec under this attribute (models not loaded by `load_model`).
SPEC_ATTRIBUTE = "interp_model_spec"


@dataclass(frozen=True)
class ModelSpec:
    """How a worker loads the model: `load_model(name, device, dtype, cache_dir)`, or
    `factory` ("module:function") called with `factory_kwargs` for a model built in code."""

    name: str = ""
    dtype: str = "float32"
    device: str = "cpu"
    cache_dir: str | None = None
    factory: str = ""
    factory_kwargs: tuple[tuple[str, Any], ...] = ()
    fingerprint: tuple[tuple[str, str], ...] = ()  # the driver's model_fingerprint, checked on load

    def __post_init__(self) -> None:
        if bool(self.name) == bool(self.factory):
            raise ValueError(
                "a ModelSpec needs exactly one of `name` (for load_model) or `factory`"
            )

    @property
    def needs_gpu(self) -> bool:
        return torch.device(self.device).type == "cuda"

    @classmethod
    def of(cls, model: Any) -> ModelSpec:
        """The spec that reloads `model`: the one it carries (`set_model_spec`), else the name it
        was loaded by with its dtype and device, and its fingerprint either way."""
        fingerprint = tuple(sorted(model_fingerprint(model).items()))
        carried = getattr(model, SPEC_ATTRIBUTE, None)
        if carried is not None:
            return _replace(carried, fingerprint=fingerprint)
        name = getattr(model, "interp_name", None)
        if not name:
            raise ValueError(
                f"the model {model_name(model)!r} was not loaded by interp.load_model, so a worker "
                f"cannot load it again: load it with interp.load_model, or attach a spec with "
                f"interp.distributed.set_model_spec(model, ModelSpec(factory=..., ...))"
            )
        parameter = next(model.parameters())
        return cls(
            name=str(name),
            dtype=dtype_name(parameter.dtype),
            device=str(parameter.device),
            fingerprint=fingerprint,
        )

    def load(self) -> Any:
        """Load the model in this process (a CUDA device becomes the GPU Ray gave this worker)."""
        device = "cuda" if self.needs_gpu else self.device
        if self.factory:
            module, _, function = self.factory.partition(":")
            build = getattr(importlib.import_module(module), function)
            model = build(**dict(self.factory_kwargs)).to(device)
        else:
            model = load_model(self.name, device=device, dtype=self.dtype, cache_dir=self.cache_dir)
        if self.fingerprint:
            difference = fingerprint_difference(dict(self.fingerprint), model_fingerprint(model))
            if difference:
                raise RuntimeError(
                    f"a worker loaded {self.name or self.factory} with other weights than the "
                    f"driver's model ({difference.replace('it was made with', 'the driver has')}); "
                    f"make the same model files visible to every worker (same preset cache, "
                    f"INTERP_CACHE or folder path)"
                )
        setattr(model, SPEC_ATTRIBUTE, self)
        return model


def set_model_spec(model: Any, spec: ModelSpec) -> Any:
    """Tell workers how to rebuild `model` (one built in code, not by `load_model`); returns it."""
    setattr(model, SPEC_ATTRIBUTE, spec)
    return model


def _replace(spec: ModelSpec, **changes: Any) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, **changes)


@dataclass(frozen=True)
class EditsSpec:
    """An arm's edits for a worker: a checkpoint folder every worker can read (`checkpoint`), or
    the files of one saved here (`files`, shipped with the spec, so no shared disk is needed)."""

    checkpoint: str = ""
    files: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, edit_list: Sequence[Edit]) -> EditsSpec:
        """The edits saved in the one checkpoint format, as bytes (empty for the plain model)."""
        if not edit_list:
            return cls()
        with tempfile.TemporaryDirectory(prefix="interp-edits-") as tmp:
            folder = Path(tmp) / "edits"
            save_edits(folder, list(edit_list))
            files = tuple(sorted((p.name, p.read_bytes()) for p in folder.iterdir()))
        return cls(files=files)

    def load(self, model: Any) -> list[Edit]:
        if self.checkpoint:
            return load_edits(self.checkpoint, model)
        if not self.files:
            return []
        with tempfile.TemporaryDirectory(prefix="interp-edits-") as tmp:
            folder = Path(tmp) / "edits"
            folder.mkdir()
            for name, data in self.files:
                (folder / name).write_bytes(data)
            return load_edits(folder, model)


@dataclass
class Replica:
    """A loaded model and its arms by name: what a unit of work computes with."""

    model: Any
    arms: dict[str, Arm] = field(default_factory=dict)

    @classmethod
    def of_arms(cls, arms: Sequence[Arm]) -> Replica:
        """The replica of arms that share one model (the driver's own, for one process)."""
        return cls(shared_model(arms), {arm.name: arm for arm in unique_arms(arms)})

    def arm(self, name: str) -> Arm:
        return self.arms[name]


@dataclass(frozen=True)
class ArmSpecs:
    """Each arm's name and edits, picklable: what a worker adds to its model for one run."""

    arms: tuple[tuple[str, EditsSpec], ...]

    @classmethod
    def of(cls, arms: Sequence[Arm]) -> ArmSpecs:
        return cls(tuple((a.name, EditsSpec.of(a.edit_list)) for a in unique_arms(arms)))

    def load(self, model: Any, cache: dict[EditsSpec, list[Edit]] | None = None) -> Replica:
        """The replica on `model`; edits already in `cache` (a worker's, across runs) are reused."""
        cache = {} if cache is None else cache
        arms = {}
        for name, edits in self.arms:
            if edits not in cache:
                cache[edits] = edits.load(model)
            arms[name] = Arm(name, model, tuple(cache[edits]))
        return Replica(model, arms)


def shared_model(arms: Sequence[Arm]) -> Any:
    """The one model object every arm runs on (arms differ by edits, never by weights)."""
    if not arms:
        raise ValueError("a replica needs at least one arm")
    model = arms[0].model
    if any(arm.model is not model for arm in arms):
        raise ValueError(
            "the arms of one sharded run must share one model object (edits differ, weights "
            "do not); give arms built on the same loaded model"
        )
    return model


def unique_arms(arms: Sequence[Arm]) -> list[Arm]:
    """The arms, each once, refusing two different arms of one name."""
    by_name: dict[str, Arm] = {}
    for arm in arms:
        if arm.name in by_name and by_name[arm.name] is not arm:
            raise ValueError(f"two different arms are named {arm.name!r}; name them apart")
        by_name[arm.name] = arm
    return list(by_name.values())
