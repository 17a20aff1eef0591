"""An arm of an experiment: a model plus the edits applied while it runs (none for the plain model).

Analyses that compare conditions (prefix swap, SEAL steering, KL-budget decoding) take arms, so
"the model with a RED" and "the plain model" are values that can be passed around, named and saved.
`Arm.of(model_or_arm, edit_list)` is the one way an analysis turns what it was given into an arm.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from interp.interventions import Edit
from interp.models import model_name


@dataclass(frozen=True, eq=False)
class Arm:
    """A named condition: `model` run with `edit_list` hooked in (an empty tuple is the plain model).

    Arms compare by identity (models and edit modules have no useful equality); compare
    `describe()` outputs to ask whether two arms are the same condition.
    """

    name: str
    model: Any = field(repr=False)
    edit_list: tuple[Edit, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError(
                "an Arm needs a non-empty name (used in tables, figures and file names)"
            )
        if not isinstance(self.edit_list, tuple):
            object.__setattr__(self, "edit_list", tuple(self.edit_list))
        for edit in self.edit_list:
            if not isinstance(edit, Edit):
                raise TypeError(
                    f"Arm {self.name!r}: edits must be interp.interventions.Edit, got {type(edit).__name__}"
                )

    @classmethod
    def of(cls, model_or_arm: Any, edit_list: Iterable[Edit] = (), name: str | None = None) -> Arm:
        """What analyses accept as "a model or an arm": an Arm comes back as it is; a model
        becomes an Arm carrying `edit_list` (named `name`, else "plain" / "edited").

        Giving edits with an Arm is an error, since it is unclear which edits should run.
        """
        edit_list = tuple(edit_list)
        if isinstance(model_or_arm, Arm):
            if edit_list:
                raise ValueError(
                    f"pass edits through the Arm ({model_or_arm.name!r}) or through edit_list=, not both"
                )
            return model_or_arm
        if name is None:
            name = "edited" if edit_list else "plain"
        return cls(name, model_or_arm, edit_list)

    @classmethod
    def plain(cls, model, name: str = "plain") -> Arm:
        """The model with no edits."""
        return cls(name, model)

    @classmethod
    def edited(cls, model, edit_list: Iterable[Edit], name: str = "edited") -> Arm:
        """The model with `edit_list` applied everywhere its position rules say."""
        return cls(name, model, tuple(edit_list))

    @property
    def is_plain(self) -> bool:
        return not self.edit_list

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for saving with a result: name, model, and each edit's hook, kind and positions."""
        return {
            "name": self.name,
            "model": model_name(self.model),
            "edits": [describe_edit(edit) for edit in self.edit_list],
        }


def describe_edit(edit: Edit) -> dict[str, Any]:
    """Hook, function config, position rule and the norms of the function's tensors."""
    norms = {
        name: round(float(value.float().norm()), 6)
        for name, value in edit.function.state_dict().items()
    }
    return {
        "hook": edit.hook,
        "function": edit.function.config(),
        "positions": edit.positions.to_dict(),
        "tensor_norms": norms,
    }
