"""Reading YAML files into validated pydantic models, with errors a user can act on.

Every config in the package (TrainConfig, DataConfig, SweepSpec) is a pydantic model
with ``extra="forbid"``; this module turns pydantic's errors into one
:class:`~advent_sweep.errors.ConfigError` that names the file, each field at fault
(as a dotted path) and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from advent_sweep.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)


def describe_validation_error(error: ValidationError) -> list[str]:
    """One line per problem: ``field.path: what is wrong (got value)``."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = "unknown key; remove it or check its spelling"
        got = problem.get("input")
        shown = "" if problem["type"] in ("missing", "extra_forbidden") or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{field}: {message}{shown}")
    return lines


def validate(model: type[Model], values: Any, source: str) -> Model:
    """Validate ``values`` as ``model``; raise ConfigError listing every problem found in ``source``."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        problems = "\n  ".join(describe_validation_error(error))
        raise ConfigError(f"{source}: invalid {model.__name__}:\n  {problems}") from None


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; ConfigError names the file otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}); allowed: a YAML file saved as UTF-8") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, got {type(values).__name__}")
    return values


def load_yaml(model: type[Model], path: str | Path) -> Model:
    """Read and validate a YAML file as ``model``."""
    return validate(model, read_yaml_mapping(path), str(path))
