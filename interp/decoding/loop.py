"""One decoding loop for every experiment: batched, left padded, with or without the KV cache.

Before each forward the loop publishes a `TokenState` through the runner (tokens so far, where each prompt ends, which
positions this forward feeds, which sequences are still edited), so position-selective edits land
on exactly the positions their rule names, whatever the batching and caching. Logit processors see
the next-token logits and the state (a logits penalty is one). Greedy output with no edits equals
Hugging Face `generate` token for token. The forwards run the Hugging Face modules directly, with
the edits' hooks mirrored onto them (`interp.core.direct`), wherever every attached hook has
an exact counterpart there; otherwise they run through the bridge.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp.core.direct import direct_forward
from interp.core.kv_reuse import RowCache, stack_row_caches
from interp.core.runner import decode_step, decoding_state, keeps_last_logits
from interp.core.tokens import (
    GenerationError,
    check_continuation,
    context_length,
    encode_prompts,
    eos_token_ids,
    pad_token_id,
)
from interp.decoding.kl_budget import KLBudgetForward
from interp.decoding.processors import LogitProcessor
from interp.interventions import Edit, edits


@dataclass(frozen=True)
class GenerationConfig:
    """How to decode. Saved with every result that decodes."""

    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int = 0
    stop_strings: tuple[str, ...] = ()
    stop_at_eos: bool = True
    use_cache: bool = True
    batch_size: int = 8
    kl_budget: float | None = None  # stop editing a sequence once its summed KL passes this

    def __post_init__(self) -> None:
        """Refuse values that would fail mid-decoding or decode something other than asked.

        `temperature` only matters with `do_sample=True`, where it must be > 0 (for greedy
        decoding pass do_sample=False); it is never negative or NaN. `top_k` above the vocabulary
        keeps every token. A single stop string is taken as one stop string, not its characters.
        """
        for name in ("max_new_tokens", "batch_size"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("seed", self.seed, minimum=None)
        for name in ("do_sample", "stop_at_eos", "use_cache"):
            if not isinstance(getattr(self, name), bool):
                raise GenerationError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.top_k is not None:
            _check_int("top_k", self.top_k, minimum=1, hint=", or None to keep every token")
        if self.top_p is not None and not (_is_number(self.top_p) and 0 < self.top_p <= 1):
            raise GenerationError(
                f"top_p must be in (0, 1], got {self.top_p!r}: pass e.g. 0.9, or None to keep "
                f"every token"
            )
        if not (_is_number(self.temperature) and self.temperature >= 0):
            raise GenerationError(
                f"temperature must be a number >= 0, got {self.temperature!r}: pass e.g. 0.7"
            )
        if self.do_sample and self.temperature == 0:
            raise GenerationError(
                "temperature 0 with do_sample=True leaves nothing to sample: for greedy decoding "
                "pass do_sample=False, otherwise a temperature > 0"
            )
        stop = self.stop_strings
        if isinstance(stop, str):
            stop = (stop,)
        elif not isinstance(stop, (list, tuple)):
            raise GenerationError(
                f"stop_strings must be a list of strings, got {stop!r}: pass e.g. ['\\n\\n']"
            )
        stop = tuple(stop)
        for text in stop:
            if not isinstance(text, str) or not text:
                raise GenerationError(
                    f"stop strings must be non-empty strings, got {text!r} (an empty one would "
                    f"stop after the first token): leave it out"
                )
        object.__setattr__(self, "stop_strings", stop)
        budget = self.kl_budget
        if budget is not None and not (
            isinstance(budget, Real) and not isinstance(budget, bool) and budget >= 0
        ):  # inf is an unbounded budget; NaN fails `>= 0`
            raise GenerationError(
                f"kl_budget must be a non-negative number, got {self.kl_budget!r}: pass e.g. 0.5, "
                f"or None to edit every step"
            )


def _is_number(value: object) -> bool:
    """A real, finite number (not a bool)."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(name: str, value: object, minimum: int | None, hint: str = "") -> None:
    """Raise unless `value` is an int (not a bool, not a float) of at least `minimum`."""
    lowest = 0 if minimum is None else minimum
    if isinstance(value, bool) or not isinstance(value, Integral):
        whole = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
        example = max(lowest, int(value)) if whole else lowest
        raise GenerationError(
            f"{name} must be an int, got {value!r}: pass e.g. {name}={example}{hint}"
        )
    if minimum is not None and value < minimum:
        raise GenerationError(
            f"{name} must be at least {minimum}, got {value}: pass {name}={minimum} or more{hint}"
        )


def make_config(config: GenerationConfig | None, overrides: dict[str, Any]) -> GenerationConfig:
    """`config` (default: the defaults) with keyword overrides; an unknown name is a clear error."""
    names = [f.name for f in fields(GenerationConfig)]
    for name in overrides:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" Did you mean {close[0]}?" if close else f" Known: {', '.join(names)}."
            raise GenerationError(f"generate() got an unknown setting {name!r}.{hint}")
    return GenerationConfig(**{**(config.__dict__ if config else {}), **overrides})


@dataclass
class Generation:
    """What the loop returns, one entry per prompt in the order given."""

    prompt_tokens: list[list[int]]
    tokens: list[list[int]]
    texts: list[str]
    finish_reasons: list[str]
    logprobs: list[list[float]]
    edited: list[list[bool]]
    config: GenerationConfig
    step_info: list[dict[str, Any]] = field(default_factory=list)
    # With kl_budget: KL(edited || unedited) summed per sequence, and its first unedited token.
    kl_spent: list[float] | None = None
    edit_stops: list[int | None] | None = None

    @property
    def n_generated(self) -> list[int]:
        return [len(t) for t in self.tokens]


def generate(
    model,
    prompts: Sequence[str] | Sequence[Sequence[int]],
    *,
    edit_list: Sequence[Edit] = (),
    config: GenerationConfig | None = None,
    logit_processors: Sequence[LogitProcessor] = (),
    progress: bool = False,
    prompt_lengths: Sequence[int] | None = None,
    caches: Sequence[RowCache] | None = None,
    **overrides: Any,
) -> Generation:
    """Decode from every prompt; keyword overrides set `GenerationConfig` fields.

    `prompts` is a list, one entry per prompt: strings, or lists of token ids. A single string is
    refused (pass `[text]`), as are token ids outside the vocabulary. Every setting, prompt and
    edit is checked before any forward runs; a bad one raises `GenerationError` (a ValueError)
    or `EditError` saying what to pass instead.

    Sampling draws from one generator per prompt, seeded with `seed + index`, so a batch gives the
    same samples as decoding the prompts one by one with those seeds.

    Continuing an answer: `prompt_lengths[i]` says how many tokens of prompt i are the real prompt;
    the rest is a forced answer prefix that position rules count as generated. `caches[i]` (see
    `prefill_caches`) holds keys/values for all but the last token of prompt i, computed by any
    model/edits: the loop then feeds only that last token first (the prefix swap's donor cache).
    """
    config = make_config(config, overrides)
    if isinstance(edit_list, Edit):
        raise GenerationError("edit_list must be a list of edits: pass [edit] for one edit")
    encoded = encode_prompts(model, prompts)
    lengths = check_continuation(encoded, prompt_lengths, caches, config.use_cache)
    if config.kl_budget is not None and caches is not None:
        raise GenerationError(
            "kl_budget cannot be combined with initial caches; use one or the other"
        )
    limit = context_length(model)
    for index, ids in enumerate(encoded):
        if len(ids) + config.max_new_tokens > limit:
            raise GenerationError(
                f"prompt {index} has {len(ids)} tokens; with max_new_tokens={config.max_new_tokens} "
                f"that passes the model's context of {limit} tokens. Shorten the prompt or lower "
                f"max_new_tokens."
            )
    results: list[dict[str, Any] | None] = [None] * len(encoded)
    batches = range(0, len(encoded), config.batch_size)
    with edits(model, edit_list), direct_forward(model) as forward, torch.no_grad():
        for start in tqdm(batches, desc="decoding", disable=not progress):
            chunk = encoded[start : start + config.batch_size]
            seeds = [config.seed + start + i for i in range(len(chunk))]
            end = start + len(chunk)
            initial = None if caches is None else stack_row_caches(model, caches[start:end])
            for offset, item in enumerate(
                _decode_batch(
                    model,
                    forward,
                    chunk,
                    config,
                    logit_processors,
                    seeds,
                    None if lengths is None else lengths[start:end],
                    initial,
                )
            ):
                results[start + offset] = item
    tokenizer = model.tokenizer
    return Generation(
        prompt_tokens=encoded,
        tokens=[r["tokens"] for r in results],
        texts=[tokenizer.decode(r["tokens"]) if tokenizer else "" for r in results],
        finish_reasons=[r["finish"] for r in results],
        logprobs=[r["logprobs"] for r in results],
        edited=[r["edited"] for r in results],
        config=config,
        kl_spent=None if config.kl_budget is None else [r["kl_spent"] for r in results],
        edit_stops=None if config.kl_budget is None else [r["edit_stop"] for r in results],
    )


def _decode_batch(
    model,
    model_forward: Callable[..., Any],
    prompts: list[list[int]],
    config: GenerationConfig,
    logit_processors: Sequence[LogitProcessor],
    seeds: list[int],
    prompt_lengths: list[int] | None = None,
    initial_cache: Any = None,
) -> list[dict[str, Any]]:
    """Decode one left-padded batch; returns per-sequence tokens, logprobs and touched positions.

    `model_forward` runs the forwards: the direct Hugging Face forward where every attached hook
    has an exact counterpart (`interp.core.direct`), else `model` itself. With
    `initial_cache` (keys/values of every position but the last) the first step feeds only the
    last token of each prompt.
    """
    device = next(model.parameters()).device
    pad_id = pad_token_id(model)
    state = decoding_state(model, prompts, prompt_lengths)
    batch = state.tokens.shape[0]
    eos = eos_token_ids(model) if config.stop_at_eos else set()
    eos_tensor = torch.tensor(sorted(eos) or [-1], device=device)
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    finish = ["length"] * batch
    generated: list[list[int]] = [[] for _ in range(batch)]
    logprobs: list[list[float]] = [[] for _ in range(batch)]
    past = initial_cache
    budget = None
    if config.kl_budget is not None:
        budget = KLBudgetForward(model_forward, config.kl_budget, batch)
    forward = model_forward if budget is None else budget
    last_only = keeps_last_logits(model)  # only the last position's logits are ever read

    for _ in range(config.max_new_tokens):
        logits, past = decode_step(forward, state, past, config.use_cache, last_only)
        model_logits = logits[:, -1, :].float()
        next_logits = model_logits
        for processor in logit_processors:
            next_logits = processor(next_logits, state)
        next_tokens = _choose(next_logits, config, generators)
        next_tokens = torch.where(finished, torch.full_like(next_tokens, pad_id), next_tokens)
        # The model's own log-probability of each chosen token (before any logit processor).
        step_logprobs = torch.log_softmax(model_logits, -1).gather(-1, next_tokens[:, None])[:, 0]

        # One copy to Python per step, not one per row and value.
        chosen, chosen_logprobs, done = (
            next_tokens.tolist(),
            step_logprobs.tolist(),
            finished.tolist(),
        )
        for row in range(batch):
            if done[row]:
                continue
            generated[row].append(chosen[row])
            logprobs[row].append(chosen_logprobs[row])
        newly_eos = torch.isin(next_tokens, eos_tensor) & ~finished
        for row in torch.nonzero(newly_eos).flatten().tolist():
            finish[row] = "eos"
        finished |= newly_eos
        if config.stop_strings:
            for row in range(batch):
                if not finished[row] and _hit_stop_string(
                    model, generated[row], config.stop_strings
                ):
                    finished[row] = True
                    finish[row] = "stop_string"
        if bool(finished.all()):
            break
        state.extend(next_tokens)

    touched = state.touched
    out = []
    for row in range(batch):
        n_positions = len(prompts[row]) + len(generated[row])
        if touched is None:
            edited = [False] * n_positions
        else:
            row_touched = touched[row][state.real[row, : touched.shape[1]]].tolist()
            edited = (row_touched + [False] * n_positions)[:n_positions]
        out.append(
            {
                "tokens": generated[row],
                "finish": finish[row],
                "logprobs": logprobs[row],
                "edited": edited,
                **(budget.report(row, len(generated[row])) if budget is not None else {}),
            }
        )
    return out


def _choose(
    logits: Float[Tensor, "batch vocab"],
    config: GenerationConfig,
    generators: list[torch.Generator],
) -> Int[Tensor, " batch"]:
    """Greedy argmax, or a sample per sequence from its own generator (top-k / top-p / temperature)."""
    if not config.do_sample:
        return logits.argmax(-1)
    scaled = logits / config.temperature
    if config.top_k is not None and config.top_k < scaled.shape[-1]:
        kth = scaled.topk(config.top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if config.top_p is not None:
        sorted_logits, order = scaled.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) > config.top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        scaled = torch.full_like(scaled, float("-inf")).scatter(-1, order, sorted_logits)
    probs = scaled.softmax(-1)
    return torch.stack(
        [
            torch.multinomial(probs[row], 1, generator=generators[row])[0]
            for row in range(len(probs))
        ]
    )


def _hit_stop_string(model, generated: list[int], stop_strings: tuple[str, ...]) -> bool:
    """Whether the text of the last few tokens contains a stop string."""
    tail = model.tokenizer.decode(generated[-16:])
    return any(s in tail for s in stop_strings)
