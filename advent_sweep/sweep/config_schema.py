"""The JSON Schema of space.yaml and of a training config, and the reference docs/space-yaml.md, from the models.

One source, so that none of them can drift: the pydantic models (``spec_models.SweepFields``,
``TrainConfig``, ``DataConfig``), whose fields carry their types, bounds, allowed values, defaults
and descriptions. The Markdown is rendered from the JSON Schema, section by section of space.yaml.
The committed copies (docs/space-yaml.md, docs/schema/*.schema.json) are regenerated with
:data:`REGENERATE`, and a test fails when they differ from what the models give.

What JSON Schema cannot say (rules across fields and sections: a setting fixed or searched, bounds
valid for their setting, ASHA's rungs within the trainer's budget, ...) ``advent-sweep validate``
checks; the reference lists those rules.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from advent_sweep.advent.config import TrainConfig
from advent_sweep.storage import write_atomically
from advent_sweep.sweep.spec_checks import NOT_SEARCHABLE
from advent_sweep.sweep.spec_models import SweepFields

KINDS = ("space", "train")
DIALECT = "https://json-schema.org/draft/2020-12/schema"
REGENERATE = "python -m advent_sweep.sweep.config_schema docs"
# What each file under the docs folder holds.
DOC_FILES = {"space-yaml.md": "markdown", "schema/space.schema.json": "space", "schema/train.schema.json": "train"}
_TITLES = {
    "space": ("space.yaml", "A sweep of advent-sweep, as `advent-sweep validate` and `advent-sweep launch` read it."),
    "train": ("training config", "One ADVENT training run, as `advent-sweep train` reads it and `advent-sweep best` writes it."),
}
_MODELS = {"space": SweepFields, "train": TrainConfig}
# What a mapping's keys are, by the field's name (space.<setting>); "key" for others.
_KEY_NAMES = {"space": "setting", "weights": "backbone", "when": "parameter", "points_to_evaluate": "parameter"}
_TYPES = {"integer": "int", "number": "float", "string": "str", "boolean": "bool", "null": "null"}
_CROSS_RULES = """\
`advent-sweep validate` checks these too, before anything starts; JSON Schema cannot express them:

- A setting is either fixed in `trainer` or searched in `space`, not both; `space` keys are TrainConfig settings.
- Every bound and choice gives a valid TrainConfig with the fixed settings (e.g. a known backbone, `iterations` <= \
`poly_horizon`); choices are distinct.
- Ranges: `low` <= `high`; `log: true` needs `low` > 0 and no `step`; `step` divides `high` − `low`.
- `when` names categorical parameters of the space and their choices; conditions form no cycle.
- `entropy_low` <= `entropy_high` in every trial (e_lo <= e_hi): a searched `entropy_high` has its low bound raised to a \
sampled `entropy_low`, so its range must reach above every `entropy_low`.
- `num_samples` is required except with sampler `grid`, where every parameter needs finitely many values (categorical, \
int, float with `step`), no `when` and no `points_to_evaluate`, and `num_samples` is at most the grid's size.
- `points_to_evaluate`: at most `num_samples` points, each naming space parameters only, in range, active under `when`.
- `n_startup_trials` only with samplers tpe, gp, cmaes.
- ASHA: `trainer.eval_interval` <= `grace_period` <= `max_t` <= `trainer.iterations`; fifo takes none of these.
- `resources.gpu` is a fraction <= 1 or a whole number, > 0 with `trainer.device` cuda, 0 with cpu; `cpu` or `gpu` > 0.
- `mode` fits `metric` (min for target_entropy, else max); `trainer.weights` as a mapping has an entry for every \
backbone a trial can have.
"""


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``kind``: "space" (a space.yaml) or "train" (a training config)."""
    if kind not in _MODELS:
        raise ValueError(f"unknown schema {kind!r}; allowed: {', '.join(KINDS)}")
    schema = _MODELS[kind].model_json_schema()
    title, description = _TITLES[kind]
    return {"$schema": DIALECT, "title": title, "description": description,
            **{key: value for key, value in schema.items() if key not in ("title", "description")}}


def schema_text(kind: str) -> str:
    """``json_schema(kind)`` as the committed file holds it."""
    return json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n"


def markdown_reference() -> str:
    """docs/space-yaml.md: a section per part of space.yaml, each a table of field, type, default and description."""
    schema = json_schema("space")
    defs = schema["$defs"]
    lines = [
        "# space.yaml reference",
        "",
        f"Generated from the pydantic models by `{REGENERATE}` (run in the repository root): do not edit it by hand; "
        "a test fails when it differs from what the models give. The same source gives the JSON Schemas "
        "[schema/space.schema.json](schema/space.schema.json) and [schema/train.schema.json](schema/train.schema.json) "
        "(`advent-sweep schema space` and `advent-sweep schema train` print them).",
        "",
        "A space.yaml describes one sweep; `advent-sweep validate FILE` checks it and prints the resolved sweep. "
        "Editors with the YAML language server validate as you type when the file starts with "
        "`# yaml-language-server: $schema=<path>/docs/schema/space.schema.json`, as the files in search_spaces/ do.",
    ]
    for path, model in _sections("", schema, defs):
        lines += ["", f"## {f'`{path}`' if path else 'Top level'}", "", _one_line(model.get("description", ""))]
        if "properties" not in model:
            continue  # (a union: its members follow)
        lines += ["", "| field | type | default | description |", "| --- | --- | --- | --- |"]
        required = set(model.get("required", ()))
        for name, field in model.get("properties", {}).items():
            child = f"{path}.{name}" if path else name
            cells = (f"`{name}`", _type(field, child), _default(field, name in required), _one_line(field.get("description", "")))
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines += ["", "## Settings that cannot be searched", "", "| setting | why |", "| --- | --- |"]
    lines += [f"| `{name}` | {why} |" for name, why in NOT_SEARCHABLE.items()]
    lines += ["", "## Rules across fields", "", _CROSS_RULES.rstrip()]
    lines += [
        "", "## Training config", "",
        "A training config (the YAML `advent-sweep train` runs and `advent-sweep best` writes) holds the `trainer` "
        "settings above, with `weights` one value (not a mapping), and `data` as the `data` section above; every "
        "setting left out keeps its default. Its JSON Schema: [schema/train.schema.json](schema/train.schema.json).",
    ]
    return "\n".join(lines) + "\n"


def write_docs(folder: str | Path) -> list[Path]:
    """Write every file of :data:`DOC_FILES` under ``folder`` (each atomically); return their paths."""
    written = []
    for name, kind in DOC_FILES.items():
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, (markdown_reference() if kind == "markdown" else schema_text(kind)).encode())
        written.append(path)
    return written


# --- rendering the JSON Schema as Markdown ------------------------------------------------------------


def _sections(path: str, model: dict[str, Any], defs: dict[str, Any], seen: set[str] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each model of the schema with its path in the YAML (data.synthetic, space.<setting>), parents first."""
    seen = set() if seen is None else seen
    yield path, model
    for name, field in model.get("properties", {}).items():
        child = f"{path}.{name}" if path else name
        values = field.get("additionalProperties")
        if isinstance(values, dict):
            child = f"{child}.<{_KEY_NAMES.get(name, 'key')}>"
            field = values
        if "oneOf" in field:  # a union told apart by its type (space.<setting>): the union, then each member
            members = [defs[_ref_name(option)] for option in field["oneOf"]]
            types = [member["properties"]["type"]["const"] for member in members]
            yield child, {"description": f"Each is one of {', '.join(f'`type: {t}`' for t in types)}, as follows."}
            for member, kind in zip(members, types):
                yield from _sections(f"{child} with type: {kind}", member, defs, seen)
            continue
        for option in [field, *field.get("anyOf", [])]:
            if "$ref" in option and _ref_name(option) not in seen:
                seen.add(_ref_name(option))
                yield from _sections(child, defs[_ref_name(option)], defs, seen)


def _ref_name(field: dict[str, Any]) -> str:
    return field["$ref"].rsplit("/", 1)[-1]


def _type(field: dict[str, Any], path: str) -> str:
    """A field's type as a reader writes it: int ≥ 1, [int, int], mapping str → ..., or null."""
    if "$ref" in field:
        return f"mapping (`{path}`)"
    options = field.get("anyOf") or field.get("oneOf")
    if options:
        return " or ".join(dict.fromkeys(_type(option, path) for option in options))
    if "const" in field:
        return json.dumps(field["const"])
    if "enum" in field:
        return " or ".join(json.dumps(value, ensure_ascii=False) for value in field["enum"])
    kind = field.get("type")
    if kind == "array":
        if "prefixItems" in field:
            items = [_type(item, path) for item in field["prefixItems"]]
            return f"[{items[0]}] × {len(items)}" if len(set(items)) == 1 else f"[{', '.join(items)}]"
        at_least = f", at least {field['minItems']}" if field.get("minItems") else ""
        return f"list of ({_type(field.get('items', {}), path)}){at_least}"
    if kind == "object":
        values = field.get("additionalProperties")
        key = _KEY_NAMES.get(path.rsplit(".", 1)[-1], "key")
        return f"mapping {key} → ({_type(values, f'{path}.<{key}>')})" if isinstance(values, dict) else "mapping"
    if kind is None:
        return "any"
    return " ".join(filter(None, [_TYPES[kind], _range(field), f"matching `{field['pattern']}`" if "pattern" in field else ""]))


def _range(field: dict[str, Any]) -> str:
    """in [0, 1], in (0, 1], ≥ 1, > 0, ... as the bounds of a number say."""
    low = ("[", field["minimum"]) if "minimum" in field else ("(", field["exclusiveMinimum"]) if "exclusiveMinimum" in field else None
    high = ("]", field["maximum"]) if "maximum" in field else (")", field["exclusiveMaximum"]) if "exclusiveMaximum" in field else None
    if low and high:
        return f"in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    if low:
        return f"{'≥' if low[0] == '[' else '>'} {low[1]:g}"
    if high:
        return f"{'≤' if high[0] == ']' else '<'} {high[1]:g}"
    return ""


def _default(field: dict[str, Any], required: bool) -> str:
    if "default" not in field:
        return "required" if required else ""
    value = field["default"]
    if isinstance(value, dict) and value:
        return "each field's default"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _one_line(text: str) -> str:
    """A description on one line, docstring markup (``x``) as Markdown (`x`)."""
    return " ".join(text.replace("``", "`").split())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m advent_sweep.sweep.config_schema docs``: regenerate the reference and the schemas in the docs folder."""
    parser = argparse.ArgumentParser(prog="python -m advent_sweep.sweep.config_schema", description=main.__doc__)
    parser.add_argument("folder", help=f"the docs folder: writes {', '.join(DOC_FILES)} in it")
    for path in write_docs(parser.parse_args(argv).folder):
        print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
