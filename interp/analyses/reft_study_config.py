"""The ReFT study's settings: every field (seeds included), which fields key which phase, the arms
and the research note's anchors. Changing a field re-runs only the phases keyed by it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

PHASES = ("plan", "number", "train", "eval", "projection", "swap", "faithfulness", "summary")
TRAINABLE_ARMS = ("red_all", "red_prefix", "red_prefix_pid", "red_prefix_pid_reference", "lora")
PREFIX_ARMS = ("red_prefix", "red_prefix_pid", "red_prefix_pid_reference")
KL_ARM = "red_prefix_pid_kl"  # the red_prefix_pid edit, decoded with a KL budget
GSM8K_TRAIN_SIZE = 7473
# The research note's GSM8K accuracies (Llama-3-8B), the anchors our rows stand beside.
ANCHORS = {"base": 78.8, "red_all": 75.2, "red_prefix": 85.0, "lora": 80.4}
ARM_LABELS = {
    "base": "base",
    "red_all": "RED, whole answers",
    "red_prefix": "RED, first K answer tokens",
    "red_prefix_pid": "RED-prefix + PID (penalty form)",
    "red_prefix_pid_reference": "RED-prefix + PID (reference form: weight scales the CE)",
    KL_ARM: "RED-prefix + PID + KL-budget decoding",
    "lora": "LoRA",
}


# The whole chain at toy sizes on smollm2-135m-instruct, which adds one-digit numbers with NumProbe's
# prompt (7 of 40) but solves no GSM8K problem: for tests and the notebook when no study is saved.
TINY_SETTINGS: dict[str, Any] = dict(
    probe_problems=48,
    probe_digits=(1,),
    probe_style="numprobe",
    sweep_digits=1,
    sweep_problems=40,
    sweep_strengths=(1.0, 8.0),
    number_batch_size=48,
    steps=None,  # a pilot picks them
    pilot_steps=4,
    batch_size=1,
    max_answer_tokens=8,
    prefix_tokens=4,
    red_lr=1e-2,
    lora_lr=1e-2,
    decode_prefix=2,
    test_problems=3,
    max_new_tokens=6,
    eval_batch_size=3,
    kl_budget=0.05,
    n_bootstrap=100,
    projection_prompts=8,
    swap_ks=(0, 1, 4),
    swap_problems=2,
    swap_pool_max=6,
    swap_base_right=False,  # no base-right problems to be had in 6 tokens
    faith_triples=12,
    faith_facts=1,
    faith_heads=False,
    faith_layers=(0, 10, 20),
    faith_batch_size=12,
    timing_steps=1,
    timing_new_tokens=4,
)


@dataclass(frozen=True)
class ReftStudyConfig:
    """Every setting of the study (seeds included). Each phase is keyed by the fields it depends
    on (`PHASE_FIELDS`), so changing a decoding setting never retrains an arm."""

    seed: int = 0
    # 1: number probes and the push sweep (the number-probe command's settings)
    probe_dir: str | None = None  # a number-probe output folder (probe/, sweep/) to reuse
    probe_problems: int = 2000
    probe_digits: tuple[int, ...] = (1, 2, 3, 4)
    probe_style: str | None = None  # None: by model (chat for instruct models)
    sweep_digits: int = 4
    sweep_problems: int = 300
    sweep_strengths: tuple[float, ...] = (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
    number_batch_size: int = 32
    # 2: training (every arm: the same pairs, the same number of optimizer steps)
    steps: int | None = None  # None: chosen from the pilot's loss curve
    pilot_steps: int = 256
    pilot_fraction: float = (
        0.9  # steps = where the pilot's smoothed loss made this share of its drop
    )
    batch_size: int = 4
    grad_accum: int = 1
    max_answer_tokens: int | None = 256  # covers 99.7% of GSM8K train answers on qwen's tokenizer
    red_hook: str = "mlp.hook_pre_linear"
    red_lr: float = 1e-3
    prefix_tokens: int = 64  # K
    full_share: float = 0.1
    bias_target: float = 0.54
    lora_rank: int = 8
    lora_lr: float = 5e-4
    arms: tuple[str, ...] = TRAINABLE_ARMS
    decode_prefix: int = 64  # prefix arms edit the prompt + this many generated tokens
    # 3: GSM8K evaluation
    eval_dataset: str = "gsm8k"
    eval_split: str = "test"
    test_problems: int = 200
    eval_seed: int = 0
    max_new_tokens: int = 384
    eval_batch_size: int = 8
    kl_budget: float = 1.0
    n_bootstrap: int = 2000
    # 4: projection and edit_breaks
    projection_prompts: int = 64
    random_red_norm: float = 0.54
    # 5: prefix swap
    swap_ks: tuple[int, ...] = (0, 1, 4, 8, 16, 32, 64, 128)
    swap_problems: int = 60
    swap_pool_max: int | None = None  # None: the whole split
    swap_base_right: bool = True  # only problems the base solves alone (and the donor does not)
    # 6: faithfulness
    faith_arms: tuple[str, ...] = ("red_all", "red_prefix")
    faith_triples: int = 240
    faith_facts: int = 2
    faith_max_prompt_tokens: int | None = 56
    faith_heads: bool = True
    faith_layers: tuple[int, ...] | None = None
    faith_batch_size: int = 8
    # 0: plan (timing and assumptions of the budget)
    timing_steps: int = 2
    timing_new_tokens: int = 64
    expected_answer_share: float = 0.73
    expected_base_accuracy: float = 0.26
    # set only in the summary's key: which phases it covers; while GSM8K is still decoding,
    # each arm already decoded as "eval:<arm>" (an interim table)
    summary_phases: tuple[str, ...] = ()

    def check(self) -> ReftStudyConfig:
        """Raise ValueError naming the setting to change when the settings cannot work together.

        Not run on construction: a phase's key holds its own fields and defaults elsewhere, a mix
        that need not pass these checks."""
        for name in (
            "probe_problems",
            "sweep_problems",
            "pilot_steps",
            "batch_size",
            "grad_accum",
            "prefix_tokens",
            "test_problems",
            "max_new_tokens",
            "eval_batch_size",
            "swap_problems",
            "faith_triples",
            "timing_steps",
            "timing_new_tokens",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(
                f"steps must be at least 1 or None (chosen by a pilot), got {self.steps!r}"
            )
        unknown = set(self.arms) - set(TRAINABLE_ARMS)
        if unknown or "red_all" not in self.arms:
            raise ValueError(
                f"arms must include red_all and come from {TRAINABLE_ARMS}, got {self.arms}"
            )
        if set(self.faith_arms) - set(self.arms) - {"base"} or "lora" in self.faith_arms:
            raise ValueError(
                f"faith_arms must be RED arms among {self.arms}, got {self.faith_arms}"
            )
        if max(self.swap_ks) >= self.max_new_tokens:
            raise ValueError(
                f"the largest swap k ({max(self.swap_ks)}) must be below max_new_tokens "
                f"({self.max_new_tokens}), which caps prefix + continuation"
            )
        if not 0 < self.pilot_fraction <= 1:
            raise ValueError(f"pilot_fraction must lie in (0, 1], got {self.pilot_fraction}")
        most = max(self.steps or 0, self.pilot_steps if self.steps is None else 0)
        if most * self.batch_size * self.grad_accum > GSM8K_TRAIN_SIZE:
            raise ValueError(
                f"{most} steps x batch {self.batch_size} x accumulation {self.grad_accum} pairs "
                f"exceed GSM8K train ({GSM8K_TRAIN_SIZE}); every step sees new pairs here: lower "
                f"the steps or the batch"
            )
        return self

    @property
    def eval_arms(self) -> tuple[str, ...]:
        """Arms decoded on GSM8K: base, each trained arm, and the KL-budget arm after its edit."""
        arms = ["base"]
        for arm in self.arms:
            arms.append(arm)
            if arm == "red_prefix_pid":
                arms.append(KL_ARM)
        return tuple(arms)


_NUMBER = (
    "seed",
    "probe_dir",
    "probe_problems",
    "probe_digits",
    "probe_style",
    "sweep_digits",
    "sweep_problems",
    "sweep_strengths",
    "number_batch_size",
)
_TRAIN = (
    "seed",
    "steps",
    "pilot_steps",
    "pilot_fraction",
    "batch_size",
    "grad_accum",
    "max_answer_tokens",
    "red_hook",
    "red_lr",
    "prefix_tokens",
    "full_share",
    "bias_target",
    "lora_rank",
    "lora_lr",
    "arms",
)
_EVAL = (
    "decode_prefix",
    "eval_dataset",
    "eval_split",
    "test_problems",
    "eval_seed",
    "max_new_tokens",
    "eval_batch_size",
    "kl_budget",
    "n_bootstrap",
)
_SWAP = ("swap_ks", "swap_problems", "swap_pool_max", "swap_base_right")
_FAITH = (
    "decode_prefix",
    "faith_arms",
    "faith_triples",
    "faith_facts",
    "faith_max_prompt_tokens",
    "faith_heads",
    "faith_layers",
    "faith_batch_size",
)
_ALL = tuple(f.name for f in dataclasses.fields(ReftStudyConfig) if f.name != "summary_phases")
PHASE_FIELDS: dict[str, tuple[str, ...]] = {
    "plan": _ALL,
    # the plan's measurements alone: what a training step and a decoded batch look like
    "timing": (
        "seed",
        "batch_size",
        "max_answer_tokens",
        "red_hook",
        "prefix_tokens",
        "eval_batch_size",
        "eval_seed",
        "timing_steps",
        "timing_new_tokens",
    ),
    "number": _NUMBER,
    "train": _TRAIN,
    "eval": _TRAIN + _EVAL,
    "projection": _NUMBER + _TRAIN + ("projection_prompts", "random_red_norm"),
    "swap": _TRAIN + _EVAL + _SWAP,
    "faithfulness": _TRAIN + _FAITH,
    "summary": _ALL + ("summary_phases",),
}


def phase_key(config: ReftStudyConfig, phase: str) -> ReftStudyConfig:
    """The config a phase is saved under: its own fields as given, every other field at its
    default, so a saved phase is reused unless something it depends on changed."""
    fields = PHASE_FIELDS[phase]
    return dataclasses.replace(ReftStudyConfig(), **{f: getattr(config, f) for f in fields})
