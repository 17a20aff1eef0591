"""The fast path of every forward: run the Hugging Face model under the bridge without its wrappers.

A TransformerBridge runs every module of the Hugging Face model through a wrapper (about 1,760
wrapper calls per step on a 30-layer model) and computes attention itself; for decoding that cost
1.2-1.3x the plain model, for a batch forward of qwen 0.5B over 32 prompts 1.4x. For the length of
one forward (or one `generate` call), `direct_forward(model)` builds a
plain copy of the model's module tree, with each wrapper replaced by the module it wraps, that
shares every parameter and buffer with the model (no weight is copied), and calls it the way the
bridge does. Every hook point of the bridge that has hooks attached (the edits', or any other) is
mirrored by a torch hook on the copy of the module the bridge wraps at that point, and that torch
hook calls the bridge's own hook point: the same hook functions run on the same tensors and read
the same `TokenState`. Torch hooks on the Hugging Face modules themselves (a LoRA's) come along
with the copy. Attention runs as PyTorch's fused kernel (`sdpa`, what a plain Hugging Face model
loads with) where the bridge's model was loaded with `eager` for TransformerLens.

Only hook points with an exact Hugging Face counterpart are mirrored: the input and output of a
block (`hook_resid_pre`, `hook_resid_post`), of its attention (`hook_attn_out`), of its MLP
(`hook_mlp_out`) and of a norm (`hook_resid_mid`, `ln1`/`ln2`, `ln_final`), and the output of each
projection of a gated MLP (`mlp.hook_pre` = gate, `mlp.hook_pre_linear` = up, where RED sits by
default; each is exactly its `nn.Linear`'s output). A hook anywhere else (attention internals, the
input of the MLP's down projection, the embedding, the unembedding), a torch hook on a
bridge wrapper, a bridge component of another kind, or a bridge in compatibility mode: the
bridge runs as before (`DirectForwardRefusal.reason` says why), never something that differs.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import inspect
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jaxtyping import Float, Int
from torch import Tensor, nn

# The module attributes that hold torch hooks; each copy gets copies of its original's.
_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)
# Hook dicts that change what a forward computes (the *_with_kwargs ones only flag entries).
_ACTIVE_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
)
# Bridge settings under which its attention or MLP compute something other than the plain model.
_BRIDGE_FLAGS = ("use_attn_result", "use_split_qkv_input", "use_attn_in")

_BRIDGE_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "interp_bridge_forwards_only", default=False
)


@contextlib.contextmanager
def bridge_forwards() -> Iterator[None]:
    """Run every forward through the bridge itself inside this block (to compare the two paths,
    or debug)."""
    token = _BRIDGE_ONLY.set(True)
    try:
        yield
    finally:
        _BRIDGE_ONLY.reset(token)


@dataclass(frozen=True)
class DirectForwardRefusal:
    """Why a model decodes through its bridge rather than directly."""

    reason: str


def _mirrored_hook_points() -> dict[type, tuple[str, ...]]:
    """Bridge component kinds whose `hook_in` / `hook_out` see exactly the wrapped Hugging Face
    module's first input and first output (read from the components' forwards); the hook points
    of each kind that may be mirrored."""
    from transformer_lens.model_bridge.generalized_components import (
        BlockBridge,
        GatedMLPBridge,
        RMSNormalizationBridge,
    )
    from transformer_lens.model_bridge.generalized_components.position_embeddings_attention import (
        PositionEmbeddingsAttentionBridge,
    )

    both = ("hook_in", "hook_out")
    return {
        BlockBridge: both,
        PositionEmbeddingsAttentionBridge: both,
        GatedMLPBridge: both,
        RMSNormalizationBridge: both,
    }


_MODULES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _bridge_modules(model) -> list[tuple[str, nn.Module]]:
    """The bridge's named modules, walked once per model (the walks cost a few milliseconds, and
    a forward checks them four times): interp adds no module to a loaded bridge, edits and LoRA
    are hooks, which every forward reads afresh."""
    if model not in _MODULES:
        _MODULES[model] = list(model.named_modules())
    return _MODULES[model]


def _mlp_projections(model) -> set[int]:
    """Ids of the linear components directly inside a gated MLP (gate, up, down): the bridge calls
    each as its wrapped `nn.Linear` with `hook_out` on the output, so that output may be mirrored."""
    from transformer_lens.model_bridge.generalized_components import GatedMLPBridge, LinearBridge

    return {
        id(child)
        for _, module in _bridge_modules(model)
        if type(module) is GatedMLPBridge
        for child in module.children()
        if type(child) is LinearBridge
    }


def _known_components() -> tuple[type, ...]:
    """Bridge component kinds whose forward is the wrapped module's, up to hooks (and, for
    attention, the bridge's own arithmetic of the same formula)."""
    from transformer_lens.model_bridge.generalized_components import (
        EmbeddingBridge,
        LinearBridge,
        RotaryEmbeddingBridge,
        UnembeddingBridge,
    )

    return (
        *_mirrored_hook_points(),
        LinearBridge,
        EmbeddingBridge,
        RotaryEmbeddingBridge,
        UnembeddingBridge,
    )


@dataclass
class _Plain:
    """The plain module tree and what it was copied from."""

    model: nn.Module
    wrapped: dict[int, nn.Module]  # id(bridge component) -> copy of the module it wraps
    copied: set[int]  # ids of the Hugging Face modules copied (their hooks came along)


def _plain_copy(hf_model: nn.Module) -> _Plain | DirectForwardRefusal:
    """A copy of `hf_model`'s module tree with every bridge wrapper replaced by the module it wraps.

    Each copy shares its parameter and buffer dicts with the original (no weight is copied, and a
    weight assigned later shows in both) and starts with copies of its torch hook dicts, so a hook
    on a Hugging Face module (a LoRA delta) runs in both; hooks added to a copy stay on the copy.
    """
    from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

    known = _known_components()
    wrapped: dict[int, nn.Module] = {}
    copied: set[int] = set()

    def plain(module: nn.Module, path: str) -> nn.Module | DirectForwardRefusal:
        if "forward" in module.__dict__:
            return DirectForwardRefusal(f"{path or 'the model'} has a replaced forward method")
        clone = object.__new__(type(module))
        clone.__dict__.update(module.__dict__)
        for name in _HOOK_DICTS:
            clone.__dict__[name] = OrderedDict(getattr(module, name, {}))
        copied.add(id(module))
        children: dict[str, nn.Module | None] = {}
        for name, child in module._modules.items():
            child_path = f"{path}.{name}" if path else name
            component = None
            if isinstance(child, GeneralizedComponent):
                if type(child) not in known:
                    return DirectForwardRefusal(
                        f"{child_path} is a {type(child).__name__}, a bridge component the fast "
                        f"path has not been checked against"
                    )
                component, child = child, child.original_component
                if child is None:
                    return DirectForwardRefusal(f"{child_path} wraps no module")
            if child is None:
                children[name] = None
                continue
            copy_of_child = plain(child, child_path)
            if isinstance(copy_of_child, DirectForwardRefusal):
                return copy_of_child
            if component is not None:
                wrapped[id(component)] = copy_of_child
            children[name] = copy_of_child
        clone.__dict__["_modules"] = children
        return clone

    root = plain(hf_model, "")
    if isinstance(root, DirectForwardRefusal):
        return root
    return _Plain(root, wrapped, copied)


def _use_sdpa(plain: nn.Module, config: Any) -> None:
    """Give the plain tree a config copy asking for PyTorch's fused attention (as a plain Hugging
    Face model loads by default) where the model supports it; the bridge keeps its own config."""
    if config is None or not getattr(type(plain), "_supports_sdpa", False):
        return
    if getattr(config, "_attn_implementation", None) != "eager":
        return  # another choice made on purpose (or none to change)
    if getattr(config, "sub_configs", None):
        return  # composite configs: leave the whole tree as it is
    fused = copy.copy(config)
    fused._attn_implementation = "sdpa"
    for module in plain.modules():
        for key, value in list(module.__dict__.items()):
            if value is config:
                module.__dict__[key] = fused


def _bridge_refusal(model) -> DirectForwardRefusal | None:
    """Why `model` must decode through its bridge, or None when it need not."""
    if _BRIDGE_ONLY.get():
        return DirectForwardRefusal("bridge_forwards() is in effect")
    if getattr(model, "original_model", None) is None:
        return DirectForwardRefusal(
            "the model is not a TransformerBridge over a Hugging Face model"
        )
    if getattr(model, "compatibility_mode", False):
        return DirectForwardRefusal("the bridge is in compatibility mode (processed weights)")
    for flag in _BRIDGE_FLAGS:
        if getattr(model.cfg, flag, False):
            return DirectForwardRefusal(f"the bridge's cfg.{flag} is set")
    for name, module in _bridge_modules(model):
        if getattr(module, "_use_processed_weights", False):
            return DirectForwardRefusal(f"{name} runs on processed weights")
    return None


def _hook_point_owners(model) -> dict[int, tuple[nn.Module, str]]:
    """id(hook point) -> (the bridge component it belongs to, its name there)."""
    from transformer_lens.hook_points import HookPoint
    from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

    owners: dict[int, tuple[nn.Module, str]] = {}
    for _, module in _bridge_modules(model):
        if isinstance(module, GeneralizedComponent):
            for name, child in module._modules.items():
                if isinstance(child, HookPoint):
                    owners.setdefault(id(child), (module, name))
    return owners


def _bridge_capture_hooks(model) -> set[int]:
    """Ids of the torch hooks the bridge's blocks put on their norms for themselves (they pass
    tensors through unless a setting checked elsewhere is on)."""
    ids: set[int] = set()
    for _, module in _bridge_modules(model):
        for handle in getattr(module, "_capture_hook_handles", ()):
            ids.add(handle.id)
    return ids


def _pre_hook(hook_point: nn.Module, where: str) -> Callable:
    """A forward pre-hook passing the module's hidden-state input through `hook_point`."""

    def pre_hook(module, args, kwargs):
        if args and isinstance(args[0], Tensor):
            return (hook_point(args[0]), *args[1:]), kwargs
        if isinstance(kwargs.get("hidden_states"), Tensor):
            return args, {**kwargs, "hidden_states": hook_point(kwargs["hidden_states"])}
        raise RuntimeError(f"{where} was called without a hidden-state tensor to hook")

    return pre_hook


def _post_hook(hook_point: nn.Module, where: str) -> Callable:
    """A forward hook passing the module's (first) output through `hook_point`."""

    def post_hook(module, args, output):
        if isinstance(output, Tensor):
            return hook_point(output)
        if isinstance(output, tuple) and output and isinstance(output[0], Tensor):
            return (hook_point(output[0]), *output[1:])
        raise RuntimeError(f"{where} returned {type(output).__name__}, not a tensor to hook")

    return post_hook


def _mirror_hooks(model, plain: _Plain) -> list[Any] | DirectForwardRefusal:
    """Attach to the plain tree one torch hook per bridge hook point that has hooks; the handles."""
    from transformer_lens.hook_points import HookPoint

    mirrored = _mirrored_hook_points()
    projections = _mlp_projections(model)
    owners = _hook_point_owners(model)
    own_hooks = _bridge_capture_hooks(model)
    handles: list[Any] = []
    seen: set[int] = set()
    for path, module in _bridge_modules(model):
        if id(module) in plain.copied:
            continue  # a Hugging Face module: its hooks were copied with it
        if not isinstance(module, HookPoint):
            others = [
                key
                for name in _ACTIVE_HOOK_DICTS
                for key in getattr(module, name, {})
                if key not in own_hooks
            ]
            if others:
                return DirectForwardRefusal(f"a torch hook is attached to {path}")
            continue
        if id(module) in seen or not any(getattr(module, n) for n in _ACTIVE_HOOK_DICTS):
            continue
        seen.add(id(module))
        name = module.name or path
        owner, local = owners.get(id(module), (None, ""))
        exact = local in mirrored.get(type(owner), ()) or (
            local == "hook_out" and id(owner) in projections
        )
        if owner is None or not exact:
            return DirectForwardRefusal(
                f"{name} has hooks and no exact Hugging Face counterpart the fast path mirrors"
            )
        target = plain.wrapped.get(id(owner))
        if target is None:
            return DirectForwardRefusal(f"{name} belongs to a component outside the model's tree")
        # In the bridge, hook_in runs before the wrapped module's own hooks and hook_out after.
        if local == "hook_in":
            handle = target.register_forward_pre_hook(
                _pre_hook(module, name), with_kwargs=True, prepend=True
            )
        else:
            handle = target.register_forward_hook(_post_hook(module, name))
        handles.append(handle)
    return handles


@contextlib.contextmanager
def layers_between(stack: nn.Module, start: int = 0, stop: int | None = None) -> Iterator[None]:
    """Within the block, `stack` (a Hugging Face decoder with a `.layers` list) runs only layers
    `start`..`stop`-1 (restored after). Each layer keeps its own index, so a key/value cache stays
    laid out per layer."""
    layers = stack.layers
    stack.layers = nn.ModuleList(list(layers)[start:stop])
    try:
        yield
    finally:
        stack.layers = layers


class DirectForward:
    """Stands in for the bridge: the plain Hugging Face model over the same parameters, called the
    way the bridge calls it (positions from the attention mask)."""

    def __init__(self, plain: nn.Module):
        self.plain = plain
        self.keeps_logits = "logits_to_keep" in inspect.signature(type(plain).forward).parameters

    def __call__(
        self,
        input_ids: Int[Tensor, "batch fed"],
        *,
        attention_mask: Int[Tensor, "batch total"] | None = None,
        return_type: str | None = "logits",
        past_key_values: Any = None,
        use_cache: bool = False,
        logits_to_keep: int | Int[Tensor, " kept"] = 0,
        stop_at_layer: int | None = None,
    ) -> Float[Tensor, "batch kept vocab"] | tuple[Float[Tensor, "batch kept vocab"], Any] | None:
        """Logits of the fed tokens (or the last `logits_to_keep`, or the columns it lists), and with
        `return_type="logits_and_cache"` the Hugging Face cache after them. `return_type=None`
        runs no unembedding and returns None (hooks read the activations), ending before block
        `stop_at_layer` when given (a stack without a layer list runs whole: the same activations)."""
        if return_type not in ("logits", "logits_and_cache", None):
            raise ValueError(f"the direct forward returns logits or nothing, not {return_type!r}")
        if stop_at_layer is not None and return_type is not None:
            raise ValueError("a forward stopped at a layer returns nothing: pass return_type=None")
        positions = None  # without a mask: Hugging Face's own, counted from the cache
        if attention_mask is not None:
            positions = attention_mask.long().cumsum(-1) - 1
            positions = positions.masked_fill(attention_mask == 0, 1)[:, -input_ids.shape[1] :]
        inputs = dict(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            past_key_values=past_key_values,
            use_cache=use_cache or past_key_values is not None,
        )
        if return_type is None:
            stack = self.plain.base_model
            cut = stop_at_layer is not None and isinstance(
                getattr(stack, "layers", None), nn.ModuleList
            )
            with layers_between(stack, 0, stop_at_layer) if cut else contextlib.nullcontext():
                stack(**inputs)
            return None
        everything = isinstance(logits_to_keep, int) and logits_to_keep == 0
        keep = {} if everything or not self.keeps_logits else {"logits_to_keep": logits_to_keep}
        output = self.plain(**inputs, **keep)
        if return_type == "logits_and_cache":
            return output.logits, output.past_key_values
        return output.logits


def _plain_with_hooks(model) -> tuple[nn.Module, list[Any]] | DirectForwardRefusal:
    """The plain copy of `model` with its current hooks mirrored (and their handles), or why not."""
    refusal = _bridge_refusal(model)
    if refusal is not None:
        return refusal
    plain = _plain_copy(model.original_model)
    if isinstance(plain, DirectForwardRefusal):
        return plain
    handles = _mirror_hooks(model, plain)
    if isinstance(handles, DirectForwardRefusal):
        return handles
    _use_sdpa(plain.model, getattr(model.original_model, "config", None))
    return plain.model, handles


def direct_forward_or_refusal(model) -> tuple[DirectForward, list[Any]] | DirectForwardRefusal:
    """A direct forward for `model` with its current hooks mirrored (and their handles), or why not."""
    found = _plain_with_hooks(model)
    if isinstance(found, DirectForwardRefusal):
        return found
    plain, handles = found
    return DirectForward(plain), handles


@contextlib.contextmanager
def _mirrored(model) -> Iterator[nn.Module | None]:
    """The plain copy with the hooks attached now mirrored (None where refused); the mirrored
    hooks are removed on exit, on error too."""
    found = _plain_with_hooks(model)
    if isinstance(found, DirectForwardRefusal):
        yield None
        return
    plain, handles = found
    try:
        yield plain
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def plain_module(model) -> Iterator[nn.Module]:
    """The Hugging Face module tree to call inside this block: the plain copy with every hook
    attached now mirrored where each has an exact counterpart, else the bridge's `original_model`,
    whose wrappers run every hook. Attach the edits first; the bridge is never modified."""
    with _mirrored(model) as plain:
        yield model.original_model if plain is None else plain


@contextlib.contextmanager
def direct_forward(model) -> Iterator[Callable[..., Any]]:
    """What to call for forwards inside this block: the direct forward when every hook attached
    to `model` now has an exact counterpart, else the bridge itself.

    Attach the edits first. The mirrored hooks live on the plain copy only and are removed on
    exit, on error too; the bridge is never modified.
    """
    with _mirrored(model) as plain:
        if plain is None:
            yield model
            return
        direct = DirectForward(plain)
        try:
            yield direct
        finally:
            direct.plain = None  # the copy holds the hook functions: let them go with the block
