"""Edits as hooks: where (a hook), what (an `EditFunction`), and on which positions (a rule).

    with edits(model, [Edit("blocks.6.hook_resid_pre", AddVector(v, alpha=2.0), boundary)]):
        logits = model(tokens)

Everything is checked before any forward runs (unknown hook, layer out of range, wrong width), and
the hooks are always removed when the block ends, on error too (the bridge's `model.hooks`
context attaches and removes them). A rule other than `AllPositions` reads the token state that
`interp.core.runner` (and the decoding loop, through it) publishes; without one it raises.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from interp.core.positions import AllPositions, PositionRule, current_state
from interp.interventions.functions import EditError, EditFunction


@dataclass
class Edit:
    """One edit: apply `function` at `hook` on the positions chosen by `positions`."""

    hook: str
    function: EditFunction
    positions: PositionRule = field(default_factory=AllPositions)

    @property
    def layer(self) -> int | None:
        """The block index in the hook name, if it has one."""
        match = re.match(r"blocks\.(\d+)\.", self.hook)
        return int(match.group(1)) if match else None


# Hook-name endings and the model dimension their activation has as its last axis.
_RESIDUAL_WIDTH_HOOKS = (
    "hook_resid_pre",
    "hook_resid_mid",
    "hook_resid_post",
    "hook_mlp_out",
    "hook_attn_out",
    "hook_in",
    "hook_out",
    "mlp.hook_in",
    "mlp.hook_out",
    "mlp.out.hook_out",
    "attn.hook_out",
)
_MLP_WIDTH_HOOKS = (
    "mlp.hook_pre",
    "mlp.hook_pre_linear",
    "mlp.hook_post",
    "mlp.in.hook_out",
    "mlp.gate.hook_out",
    "mlp.out.hook_in",
)


def expected_width(model, hook: str) -> int | None:
    """The last-axis width of the activation at `hook`, when the name tells it."""
    tail = hook.split(".", 2)[-1] if hook.startswith("blocks.") else hook
    if tail in _MLP_WIDTH_HOOKS:
        return int(model.cfg.d_mlp)
    if tail in _RESIDUAL_WIDTH_HOOKS:
        return int(model.cfg.d_model)
    return None


def check_hook(model, hook: str) -> None:
    """Raise a clear error if `hook` does not exist on `model` or names a layer it lacks."""
    n_layers = int(model.cfg.n_layers)
    match = re.match(r"blocks\.(-?\d+)\.", hook)
    if match and not 0 <= int(match.group(1)) < n_layers:
        raise EditError(
            f"layer {match.group(1)} is out of range in hook {hook!r}: this model has layers "
            f"0..{n_layers - 1}"
        )
    if hook not in model.hook_dict:
        close = difflib.get_close_matches(hook, list(model.hook_dict), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise EditError(
            f"unknown hook {hook!r} for this model.{hint} "
            f"List the hooks with `sorted(model.hook_dict)`."
        )


def check_edit(model, edit: Edit) -> None:
    """Validate an edit against a model without running it."""
    check_hook(model, edit.hook)
    width = expected_width(model, edit.hook)
    if width is not None and edit.function.width != width:
        raise EditError(
            f"{type(edit.function).__name__} has width {edit.function.width} but {edit.hook} "
            f"carries width {width} on this model; build it with width {width}"
        )


def check_activation_width(edit: Edit, activation: Tensor) -> None:
    """Raise if the activation's last axis is not the function's width.

    Catches hooks whose width the name does not tell (`expected_width` is None) at the first
    forward, before the function's arithmetic fails or broadcasts into something else.
    """
    found = activation.shape[-1] if activation.ndim else None
    if found != edit.function.width:
        raise EditError(
            f"{type(edit.function).__name__} at {edit.hook} has width {edit.function.width}, but "
            f"the activation there has shape {tuple(activation.shape)} (width {found}): build the "
            f"function with width {found}, or edit a hook of width {edit.function.width} such as "
            f"a blocks.L.hook_resid_pre"
        )


def _make_hook(edit: Edit):
    """The TransformerLens hook function that applies `edit` on its positions."""

    def hook_fn(activation: Float[Tensor, "batch pos ..."], hook) -> Tensor:
        check_activation_width(edit, activation)
        state = current_state()
        if state is None:
            if not isinstance(edit.positions, AllPositions):
                raise EditError(
                    f"the position rule {edit.positions.to_dict()['kind']!r} needs to know where "
                    f"each prompt ends and which tokens this forward feeds, and no token state is "
                    f"set: decode with interp.generate, or run the forward through "
                    f"interp.core.runner (e.g. runner.forward(model, tokens, mask, "
                    f"prompt_lengths=...)). Only AllPositions edits run in a bare forward."
                )
            return edit.function(activation).to(activation.dtype)
        n_chunk = state.tokens.shape[1] - state.chunk_start
        if activation.shape[1] != n_chunk or activation.shape[0] != state.tokens.shape[0]:
            raise EditError(
                f"the token state covers {tuple(state.tokens.shape[:1]) + (n_chunk,)} positions but "
                f"{hook.name} sees activations of shape {tuple(activation.shape)}; run the forward "
                f"through interp.core.runner with the tokens it actually feeds"
            )
        mask = edit.positions.mask(state)
        if state.active is not None:
            mask = mask & state.active[:, None]
        state.record(mask)
        if not bool(mask.any()):
            return activation
        edited = edit.function(activation).to(activation.dtype)
        mask = mask.reshape(mask.shape + (1,) * (activation.ndim - 2))
        return torch.where(mask, edited, activation)

    return hook_fn


@contextlib.contextmanager
def edits(model, edit_list: Sequence[Edit]) -> Iterator[list[Edit]]:
    """Attach `edit_list` to `model` for the duration of the block; always detach them."""
    if isinstance(edit_list, Edit):
        raise EditError("edits() takes a list of edits: pass [edit] for one edit")
    edit_list = list(edit_list)
    for edit in edit_list:
        if not isinstance(edit, Edit):
            raise EditError(
                f"expected Edit objects, got {type(edit).__name__}: wrap a function as "
                f"Edit(hook, function), e.g. Edit('blocks.0.hook_resid_pre', function)"
            )
        check_edit(model, edit)
    device = next(model.parameters()).device
    for edit in edit_list:
        edit.function.to(device)
    # The bridge's own hook context attaches them and removes exactly these, on error too.
    with model.hooks(fwd_hooks=[(edit.hook, _make_hook(edit)) for edit in edit_list]):
        yield edit_list
