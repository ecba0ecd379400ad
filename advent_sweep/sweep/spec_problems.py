"""The collector the space.yaml checks report into, so that every problem is found before any is shown.

Both the search space's rules (``space_rules``) and the section checks (``spec_checks``) add
to one :class:`Problems`; ``spec.SweepSpec`` raises them as one ValidationError.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

NOTHING = object()  # no value at all (None is a value a space.yaml can hold)


class Problems:
    """Every problem found, as pydantic error details, so that one ValidationError carries them all.

    ``validation.describe_validation_error`` prints each as ``field.path: message`` and appends
    ``(got value)`` unless the input is a mapping; ``{}`` is used when there is no value to show.
    """

    def __init__(self) -> None:
        self.details: list[dict[str, Any]] = []

    def add(self, loc: tuple, message: str, got: Any = NOTHING, kind: str = "sweep_spec") -> None:
        self.details.append(
            {
                "type": PydanticCustomError(kind, "{message}", {"message": message}),
                "loc": tuple(loc),
                "input": {} if got is NOTHING else got,
            }
        )

    def add_validation_error(self, error: ValidationError, prefix: tuple, model: type[BaseModel] | None = None) -> None:
        for problem in error.errors(include_url=False):
            loc = prefix + tuple(problem["loc"])
            if problem["type"] == "extra_forbidden":
                allowed = _keys_at(model, problem["loc"][:-1]) if model else None
                self.add(loc, "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else ""))
            else:
                self.add(loc, problem["msg"].removeprefix("Value error, "), problem["input"], kind=problem["type"])


def _keys_at(model: type[BaseModel], path: tuple) -> list[str] | None:
    """The keys of the (nested) model at ``path``, if there is one."""
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _nested_model(field.annotation) if field else None
        if model is None:
            return None
    return list(model.model_fields)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if found := _nested_model(arg):
            return found
    return None
