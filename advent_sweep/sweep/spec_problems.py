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

    def add_validation_error(
        self, error: ValidationError, prefix: tuple, model: type[BaseModel] | None = None, messages: dict[str, str] | None = None
    ) -> None:
        """Each of pydantic's problems under ``prefix``; ``model`` (what was validated) names the allowed keys, and
        ``messages`` replaces pydantic's message for an error type (e.g. a pattern, as a sentence a user reads)."""
        self.add_errors(error.errors(include_url=False), prefix, model, messages)

    def add_errors(
        self, errors: list[Any], prefix: tuple, model: type[BaseModel] | None = None, messages: dict[str, str] | None = None
    ) -> None:
        """As :meth:`add_validation_error`, from the error details (``ValidationError.errors()``)."""
        for problem in errors:
            loc = prefix + tuple(problem["loc"])
            at = _model_at(model, problem["loc"][:-1] if problem["type"] == "extra_forbidden" else problem["loc"])
            if problem["type"] == "extra_forbidden":
                self.add(loc, "unknown key" + (f"; allowed: {', '.join(at.model_fields)}" if at else ""))
            elif problem["type"] in ("model_type", "model_attributes_type") and at:
                self.add(loc, f"expected a mapping; allowed keys: {', '.join(at.model_fields)}", problem["input"], kind=problem["type"])
            else:
                message = (messages or {}).get(problem["type"], problem["msg"].removeprefix("Value error, "))
                self.add(loc, message, problem["input"], kind=problem["type"])


def _model_at(model: type[BaseModel] | None, path: tuple) -> type[BaseModel] | None:
    """The (nested) model at ``path`` in ``model``, if there is one."""
    for part in path:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = nested_model(field.annotation) if field else None
    return model


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds (``DataConfig``, ``SourceWarmup | None``, ``Annotated[...]``), if one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if found := nested_model(arg):
            return found
    return None
