"""The one forward runner: every forward whose edits must know their positions runs through here.

Edits read a `TokenState` (the tokens so far, where each prompt ends, which columns this forward
feeds). This module is the only place that builds one for a forward, sets which columns are fed
and publishes it, so a position rule lands on the same tokens whatever the batching, padding or
caching. The forwards it runs:

    forward(model, tokens, mask, prompt_lengths=...)          logits (grad kept: training uses it)
    forward(..., return_type="logits_and_cache", use_cache=True)   logits and the KV cache
    forward(model, tokens, mask, fed_from=k, past_key_values=past)  columns k.. on top of a cache
    activations(model, tokens, mask, names_filter=...)        activations (stop_at_layer to cut)
    read_positions(model, tokens, mask, hooks, rows, columns)  activations at chosen positions only
    decoding_state(model, prompts, prompt_lengths)              the state the decoding loop grows
    decode_step(forward_fn, state, past, use_cache, last_only)  one step of the decoding loop
    shared_prefix_batches(model, sequences, ...)               [shared prefix | padding | own tokens]

Each forward runs the plain Hugging Face model under the bridge, the attached hooks mirrored onto
it, where every hook has an exact counterpart there (`interp.core.direct`: 1.4x faster than the
bridge's wrappers on a batch of 32 prompts of qwen 0.5B), and the bridge itself otherwise.

`tokens` and `mask` always cover every position the state describes, cached ones included; with
`fed_from=k` only columns k.. are fed. Padding may sit anywhere (left, or between a cached part and
new tokens): positions are counted from the mask, so each row computes what it would alone.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.core.direct import direct_forward
from interp.core.positions import TokenState, token_state
from interp.core.tokens import left_pad, pad_token_id
from interp.interventions import Edit, edits

PromptLengths = Sequence[int] | Int[Tensor, " batch"] | None


@contextlib.contextmanager
def feeding(state: TokenState, fed_from: int = 0) -> Iterator[TokenState]:
    """Publish `state` to the edits of the forwards inside, which feed its columns `fed_from`..."""
    state.chunk_start = fed_from
    with token_state(state):
        yield state


@contextlib.contextmanager
def feeding_tokens(
    tokens: Int[Tensor, "batch total"],
    attention_mask: Int[Tensor, "batch total"] | None = None,
    prompt_lengths: PromptLengths = None,
    fed_from: int = 0,
) -> Iterator[TokenState]:
    """Build the state of `tokens` (prompts of `prompt_lengths`, else all prompt) and publish it."""
    with feeding(TokenState.for_tokens(tokens, attention_mask, prompt_lengths), fed_from) as state:
        yield state


def _model_inputs(tokens, attention_mask, fed_from, past_key_values) -> tuple[Tensor, dict]:
    """The columns fed and the keyword arguments every forward passes to the model."""
    kwargs: dict[str, Any] = {}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    if past_key_values is not None:
        kwargs["past_key_values"] = past_key_values
    return tokens[:, fed_from:], kwargs


def forward(
    model,
    tokens: Int[Tensor, "batch total"],
    attention_mask: Int[Tensor, "batch total"] | None = None,
    *,
    prompt_lengths: PromptLengths = None,
    fed_from: int = 0,
    past_key_values: Any = None,
    **model_kwargs: Any,
) -> Any:
    """`model(...)` over columns `fed_from`.. of `tokens` with the token state set; returns its output."""
    feed, kwargs = _model_inputs(tokens, attention_mask, fed_from, past_key_values)
    with (
        feeding_tokens(tokens, attention_mask, prompt_lengths, fed_from),
        direct_forward(model) as run,
    ):
        return run(feed, **kwargs, **model_kwargs)


def activations(
    model,
    tokens: Int[Tensor, "batch total"],
    attention_mask: Int[Tensor, "batch total"] | None = None,
    *,
    names_filter: Callable[[str], bool],
    prompt_lengths: PromptLengths = None,
    fed_from: int = 0,
    past_key_values: Any = None,
    **model_kwargs: Any,
) -> tuple[Any, dict[str, Tensor]]:
    """`forward` that also returns the activations of the fed columns at the hooks `names_filter`
    keeps (detached, like `run_with_cache`)."""
    names = [name for name in model.hook_dict if names_filter(name)]
    with _reading(model, names, Tensor.detach) as cache:
        output = forward(
            model,
            tokens,
            attention_mask,
            prompt_lengths=prompt_lengths,
            fed_from=fed_from,
            past_key_values=past_key_values,
            **model_kwargs,
        )
    return output, cache


@contextlib.contextmanager
def _reading(
    model, names: Sequence[str], take: Callable[[Tensor], Tensor]
) -> Iterator[dict[str, Tensor]]:
    """Within the block, each forward stores `take(activation)` of every hook in `names` in the
    dict yielded (the hooks are removed on exit, on error too)."""
    read: dict[str, Tensor] = {}

    def keeper(name: str) -> Callable[[Tensor, Any], None]:
        def keep(activation: Tensor, hook: Any) -> None:
            read[name] = take(activation)

        return keep

    with model.hooks(fwd_hooks=[(name, keeper(name)) for name in names]):
        yield read


def read_positions(
    model,
    tokens: Int[Tensor, "batch total"],
    attention_mask: Int[Tensor, "batch total"] | None,
    hooks: Sequence[str],
    rows: Int[Tensor, " n"],
    columns: Int[Tensor, " n"],
    *,
    prompt_lengths: PromptLengths = None,
    stop_at_layer: int | None = None,
) -> dict[str, Float[Tensor, "n ..."]]:
    """Activations at `hooks` at the (row, column) pairs of one forward, in float32 on the CPU.

    The hooks keep only those positions, so memory never holds [batch, positions, d] per hook;
    no logits are computed, and the forward ends before block `stop_at_layer`.
    """
    with _reading(model, hooks, lambda a: a[rows, columns].float().cpu()) as captured:
        forward(
            model,
            tokens,
            attention_mask,
            prompt_lengths=prompt_lengths,
            return_type=None,
            stop_at_layer=stop_at_layer,
        )
    return captured


def decoding_state(
    model, prompts: Sequence[Sequence[int]], prompt_lengths: Sequence[int] | None = None
) -> TokenState:
    """The state the decoding loop starts from and grows: the prompts, left padded."""
    device = next(model.parameters()).device
    tokens, mask = left_pad(prompts, pad_token_id(model), device)
    return TokenState.for_tokens(tokens, mask, prompt_lengths)


def unembedding_hooks(model) -> list[str]:
    """Hook names on the unembedding: with `logits_to_keep` they see fewer positions."""
    return [n for n in model.hook_dict if n.startswith("unembed.") or n == "hook_unembed"]


def keeps_last_logits(model) -> bool:
    """Whether a decoding step may unembed the last position only: the Hugging Face model takes
    `logits_to_keep` (every recent causal LM does) and no hook is attached to the unembedding,
    whose activations would then cover fewer positions than the token state describes."""
    hf_model = getattr(model, "original_model", None)
    if hf_model is None:
        return False
    if any(model.hook_dict[name].fwd_hooks for name in unembedding_hooks(model)):
        return False
    return "logits_to_keep" in inspect.signature(type(hf_model).forward).parameters


def decode_step(
    forward_fn: Callable[..., Any],
    state: TokenState,
    past: Any,
    use_cache: bool,
    last_only: bool = False,
) -> tuple[Float[Tensor, "batch fed vocab"], Any]:
    """One step of the decoding loop over `state.tokens`: the logits and the cache (None without).

    With the cache, only the tokens the cache lacks are fed (all of them first, then the last).
    `forward_fn` is the model, or a stand-in with its call signature: the direct Hugging Face
    forward of `interp.core.direct` (the loop's fast path), KL-budget decoding.
    `last_only` computes the logits of the last position only (`logits_to_keep=1`, as Hugging
    Face `generate` does): the unembedding of every prompt position is most of a prefill's cost
    for a small model with a large vocabulary.
    """
    tokens, attention_mask = state.tokens, state.real.long()
    keep = {"logits_to_keep": 1} if last_only else {}
    if not use_cache:
        with feeding(state, 0):
            return forward_fn(tokens, attention_mask=attention_mask, **keep), None
    fed_from = 0 if past is None else tokens.shape[1] - 1
    with feeding(state, fed_from):
        return forward_fn(
            tokens[:, fed_from:],
            return_type="logits_and_cache",
            attention_mask=attention_mask,
            past_key_values=past,
            use_cache=True,
            **keep,
        )


def shared_prefix_length(sequences: Sequence[Sequence[int]], limit: int | None = None) -> int:
    """Length of the longest common prefix, leaving at least one own token in every sequence."""
    if not sequences:
        return 0
    shortest = min(len(s) for s in sequences)
    cap = shortest - 1 if limit is None else min(shortest - 1, limit)
    length = 0
    first = sequences[0]
    while length < cap and all(s[length] == first[length] for s in sequences):
        length += 1
    return length


@dataclass
class SharedPrefixBatch:
    """One batch run on top of the shared prefix: the full layout and what the forward returned."""

    tokens: Int[Tensor, "batch total"]  # [shared prefix | padding | own tokens]
    mask: Int[Tensor, "batch total"]
    shared_length: int  # tokens in the shared prefix
    logits: Float[Tensor, "batch own vocab"] | None
    cache: dict[str, Tensor]  # activations of the columns after the shared prefix only
    rows: slice
    logits_start: int = 0  # own column of the first logits row (> 0 when only the last are kept)

    def index(self, row: int, position: int) -> int:
        """Column in `cache` (and in full `logits`) of an unpadded position past the shared prefix."""
        real = torch.nonzero(self.mask[row]).flatten()
        column = int(real[position]) - self.shared_length
        if column < 0:
            raise IndexError(f"position {position} lies in the shared prefix")
        return column

    def logits_column(self, row: int, position: int) -> int:
        """Column in `logits` of an unpadded position, also when only the last columns were kept."""
        column = self.index(row, position) - self.logits_start
        if column < 0:
            raise IndexError(f"position {position} lies before the logits kept for this batch")
        return column


@torch.no_grad()
def shared_prefix_batches(
    model,
    sequences: Sequence[Sequence[int]],
    prompt_lengths: Sequence[int] | None = None,
    edit_list: Sequence[Edit] = (),
    names_filter: Callable[[str], bool] | None = None,
    batch_size: int = 32,
    min_position: int | None = None,
    stop_at_layer: int | None = None,
    logits_to_keep: int = 0,
) -> Iterator[SharedPrefixBatch]:
    """Run `sequences` in batches over their shared prefix, which runs once; yield each batch.

    The shared prefix runs at batch size one with the edits on; its KV cache is copied across
    each batch and the rows' own tokens run on top of it. `min_position` caps the shared prefix
    so that position (and every later one) is computed in the batch forward, where its
    activations can be read. With `names_filter`, the cache holds those hooks' activations and no
    logits are kept; `stop_at_layer` then ends the forward before that block. Otherwise
    `logits_to_keep` > 0 unembeds only the last that many columns where the model allows it
    (`keeps_last_logits`; each batch's `logits_start` says where its logits begin): with left
    padding every row ends at the last column, so the answer of a teacher-forced row lies there.
    """
    if len(sequences) == 0:
        raise ValueError("no sequences given")
    limit = min(prompt_lengths) if prompt_lengths is not None else None
    if min_position is not None:
        limit = min_position if limit is None else min(limit, min_position)
    shared = shared_prefix_length(sequences, limit)
    device = next(model.parameters()).device
    pad_id = pad_token_id(model)
    shared_tokens = torch.tensor([list(sequences[0][:shared])], dtype=torch.long, device=device)
    with edits(model, edit_list):
        # The shared prefix's logits, and every logit of a forward that only reads activations,
        # are thrown away: unembed one position (a quarter of a forward over a 150k vocabulary).
        last_only = {"logits_to_keep": 1} if keeps_last_logits(model) else {}
        reads_unembedding = names_filter is not None and any(
            names_filter(name) for name in unembedding_hooks(model)
        )
        shared_cache = None
        if shared > 0:
            _, shared_cache = forward(
                model,
                shared_tokens,
                prompt_lengths=[shared],
                return_type="logits_and_cache",
                use_cache=True,
                **last_only,
            )
        for start in range(0, len(sequences), batch_size):
            rows = slice(start, min(start + batch_size, len(sequences)))
            own_tokens, own_mask = left_pad([s[shared:] for s in sequences[rows]], pad_id, device)
            batch = own_tokens.shape[0]
            tokens = torch.cat([shared_tokens.expand(batch, -1), own_tokens], dim=1)
            mask = torch.cat([torch.ones_like(tokens[:, :shared]), own_mask], dim=1)
            past = None
            if shared_cache is not None:
                past = copy.deepcopy(shared_cache)
                past.batch_repeat_interleave(batch)
            run = dict(
                prompt_lengths=None if prompt_lengths is None else prompt_lengths[rows],
                fed_from=shared,
                past_key_values=past,
            )
            start = 0
            if names_filter is None:
                keep = {"logits_to_keep": logits_to_keep} if logits_to_keep and last_only else {}
                logits, cache = forward(model, tokens, mask, **run, **keep), {}
                start = tokens.shape[1] - shared - logits.shape[1]
            else:
                logits = None
                _, cache = activations(
                    model,
                    tokens,
                    mask,
                    names_filter=names_filter,
                    return_type=None,
                    stop_at_layer=stop_at_layer,
                    **run,
                    **({} if reads_unembedding else last_only),
                )
            yield SharedPrefixBatch(tokens, mask, shared, logits, cache, rows, start)
