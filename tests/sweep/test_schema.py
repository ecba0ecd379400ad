"""The JSON Schemas and docs/space-yaml.md: generated from the models, committed as generated, and as strict as validate."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from advent_sweep.advent.config import TrainConfig
from advent_sweep.analysis import export_best, load_results
from advent_sweep.analysis.best import SCHEMA_COMMENT
from advent_sweep.cli import main
from advent_sweep.errors import ConfigError
from advent_sweep.sweep.config_schema import DOC_FILES, REGENERATE, json_schema, markdown_reference, schema_text
from advent_sweep.sweep.spec import SweepSpec
from advent_sweep.validation import validate
from tests.analysis.conftest import fake_trials, write_sweep
from tests.sweep.test_spec import SEARCH_SPACES, spec_values

ROOT = Path(__file__).parents[2]
MODELINE = "# yaml-language-server: $schema=../docs/schema/space.schema.json"


def schema_errors(kind: str, values: dict) -> list[jsonschema.ValidationError]:
    validator = jsonschema.Draft202012Validator(json_schema(kind))
    return list(validator.iter_errors(values))


# --- generated, committed, described ----------------------------------------------------------------


@pytest.mark.parametrize("name", DOC_FILES)
def test_committed_docs_are_what_the_models_generate(name):
    kind = DOC_FILES[name]
    expected = markdown_reference() if kind == "markdown" else schema_text(kind)
    committed = (ROOT / "docs" / name).read_text(encoding="utf-8")
    assert committed == expected, f"docs/{name} is out of date with the models; regenerate it with: {REGENERATE}"


def test_the_reference_says_how_it_is_generated():
    header = markdown_reference().split("\n## ")[0]
    assert REGENERATE in header and "do not edit it by hand" in header


@pytest.mark.parametrize("kind", ["space", "train"])
def test_every_field_is_described_with_its_default(kind):
    schema = json_schema(kind)
    undescribed = []
    for model_name, model in {"(top level)": schema, **schema["$defs"]}.items():
        required = set(model.get("required", ()))
        for name, field in model["properties"].items():
            description = field.get("description", "").lower()
            if not description or ("required" if name in required else "default") not in description:
                undescribed.append(f"{model_name}.{name}")
    assert undescribed == []
    assert {"DataConfig", "SyntheticConfig", "TargetStyle", "SourceWarmup"} <= set(schema["$defs"])  # (nested models are walked)


def test_the_trainer_section_is_typed_by_train_configs_settings():
    space, train = json_schema("space"), json_schema("train")
    trainer = space["$defs"]["TrainerSettings"]["properties"]
    assert set(trainer) == set(train["properties"]) - {"data"}
    for name in trainer.keys() - {"weights"}:
        assert trainer[name] == train["properties"][name]
    assert not schema_errors("space", spec_values(trainer={"weights": {"resnet18": None, "vgg16": "x.pth"}}))


# --- what the schemas accept ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", SEARCH_SPACES, ids=lambda p: p.name)
def test_every_search_space_starts_with_the_modeline_and_fits_the_schema(path):
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == MODELINE
    assert (path.parent / MODELINE.split("$schema=")[1]).resolve() == ROOT / "docs" / "schema" / "space.schema.json"
    assert schema_errors("space", yaml.safe_load(text)) == []


@pytest.mark.parametrize("kind", ["space", "train"])
def test_the_schemas_are_valid_draft_2020_12(kind):
    jsonschema.Draft202012Validator.check_schema(json_schema(kind))


ACCEPTED_SPACES = {
    "empty sections": spec_values(data=None, searcher=None, scheduler=None, resources=None, checkpoints=None, trainer=None),
    "grid without num_samples": spec_values(
        space={"method": {"type": "categorical", "choices": ["minent", "advent"]},
               "class_prior_mu": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25}},
        searcher={"sampler": "grid"}, scheduler={"type": "fifo"}, num_samples=None,
    ),
    "null and bool choices, mode and metric": spec_values(
        space={"bn_momentum": {"type": "categorical", "choices": [None, 0.01]},
               "multi_level": {"type": "categorical", "choices": [True, False]}},
        searcher={"points_to_evaluate": [{"bn_momentum": None}]}, metric="target_entropy", mode="min", max_failures=-1,
    ),
    "real data, GPUs, weights by backbone": spec_values(
        data={"source": "synthia", "target": "cityscapes", "source_root": "/d/s", "target_root": "/d/c", "protocol": 16},
        trainer={"weights": {"resnet101": "/w.pth", "vgg16": None}, "device": "cuda", "iterations": 300, "poly_horizon": 300,
                 "eval_interval": 50},
        space={"backbone": {"type": "categorical", "choices": ["resnet101", "vgg16"]}},
        searcher={}, resources={"cpu": 4, "gpu": 0.5}, checkpoints={"keep_stopped": True},
    ),
}


@pytest.mark.parametrize("values", ACCEPTED_SPACES.values(), ids=ACCEPTED_SPACES)
def test_the_schema_accepts_what_validate_accepts(values):
    SweepSpec.model_validate(values)
    assert schema_errors("space", values) == []


def test_a_config_best_exports_fits_the_train_schema(tmp_path):
    results = load_results(write_sweep(tmp_path, "fake", fake_trials()[:4]))
    path = tmp_path / "best.yaml"
    export_best(results, path)
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == SCHEMA_COMMENT and "advent-sweep schema train" in SCHEMA_COMMENT
    values = yaml.safe_load(text)
    assert schema_errors("train", values) == []
    assert TrainConfig.model_validate(values).iterations == 400  # (what validate reads is what the schema checked)


# --- what they reject: a corpus of broken files, each rejected by validate and by the schema -----------------


def changed(path: str, value=None, delete: bool = False) -> dict:
    """spec_values() with the value at the dotted ``path`` set (or deleted)."""
    values = spec_values()
    *parents, last = path.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
    if delete:
        del node[last]
    else:
        node[last] = copy.deepcopy(value)
    return values


BROKEN_SPACES = {
    # unknown keys
    "unknown top-level key": (changed("foo", 1), "foo"),
    "unknown searcher key": (changed("searcher.sed", 1), "searcher.sed"),
    "unknown scheduler key": (changed("scheduler.grace", 1), "scheduler.grace"),
    "unknown parameter key": (changed("space.lambda_adv_main.lowest", 0.1), "space.lambda_adv_main.lowest"),
    "unknown data key": (changed("data.synthetic.sise", [8, 8]), "data.synthetic.sise"),
    "unknown trainer key": (changed("trainer.lrr", 0.1), "trainer.lrr"),
    "data in trainer": (changed("trainer.data", {"source": "synthetic"}), "trainer.data"),
    "unknown source_warmup key": (changed("trainer.source_warmup", {"iterations": 10, "lr": 0.1, "lrr": 1}), "trainer.source_warmup.lrr"),
    # missing values
    "missing name": (changed("name", delete=True), "name"),
    "missing space": (changed("space", delete=True), "space"),
    "missing max_concurrent": (changed("max_concurrent", delete=True), "max_concurrent"),
    "missing parameter type": (changed("space.method.type", delete=True), "space.method.type"),
    "missing source_warmup lr": (changed("trainer.source_warmup", {"iterations": 10}), "trainer.source_warmup.lr"),
    # wrong types
    "num_samples a string": (changed("num_samples", "many"), "num_samples"),
    "trainer.lr a string": (changed("trainer.lr", "fast"), "trainer.lr"),
    "a bound a list": (changed("space.lambda_adv_main.high", [1]), "space.lambda_adv_main.high"),
    "a section a string": (changed("searcher", "tpe"), "searcher"),
    "a parameter a number": (changed("space.method", 3), "space.method"),
    "keep_stopped a string": (changed("checkpoints", {"keep_stopped": "yes"}), "checkpoints.keep_stopped"),
    "a size of one number": (changed("data.synthetic.size", [64]), "data.synthetic.size"),
    # out of range
    "max_concurrent 0": (changed("max_concurrent", 0), "max_concurrent"),
    "num_samples 0": (changed("num_samples", 0), "num_samples"),
    "max_failures -2": (changed("max_failures", -2), "max_failures"),
    "class_prior_mu 2": (changed("trainer.class_prior_mu", 2), "trainer.class_prior_mu"),
    "momentum 1": (changed("trainer.momentum", 1.0), "trainer.momentum"),
    "reduction_factor 1": (changed("scheduler.reduction_factor", 1), "scheduler.reduction_factor"),
    "negative cpu": (changed("resources", {"cpu": -1}), "resources.cpu"),
    "float step 0": (changed("space.lambda_adv_main.step", 0), "space.lambda_adv_main.step"),
    "no choices": (changed("space.method.choices", []), "space.method.choices"),
    "empty space": (changed("space", {}), "space"),
    "unsafe name": (changed("name", "../up"), "name"),
    # values outside an enumeration
    "unknown sampler": (changed("searcher.sampler", "bayes"), "searcher.sampler"),
    "unknown scheduler": (changed("scheduler.type", "hyperband"), "scheduler.type"),
    "unknown mode": (changed("mode", "maximise"), "mode"),
    "unknown source": (changed("data.source", "kitti"), "data.source"),
    "protocol 13": (changed("data.protocol", 13), "data.protocol"),
    "unknown method": (changed("trainer.method", "adventt"), "trainer.method"),
    "unknown amp": (changed("trainer.amp", "fp8"), "trainer.amp"),
    "unknown parameter type": (changed("space.method.type", "uniform"), "space.method.type"),
}


def test_the_corpus_starts_from_a_spec_both_accept():
    assert SweepSpec.model_validate(spec_values()).name == "unit"
    assert schema_errors("space", spec_values()) == []


@pytest.mark.parametrize(("values", "field"), BROKEN_SPACES.values(), ids=BROKEN_SPACES)
def test_the_schema_rejects_what_validate_rejects(values, field):
    with pytest.raises(ConfigError) as error:
        validate(SweepSpec, values, "space.yaml")
    assert any(_within(line.strip().split(":")[0], field) for line in str(error.value).splitlines()[1:]), str(error.value)
    errors = schema_errors("space", values)
    # The schema's error is at the field, or at the mapping that holds an unknown or missing key; inside a union
    # (a parameter's float / int / categorical, or a section that may be null) at one of its branches.
    where = {".".join(map(str, e.absolute_path)) for e in _with_branches(errors)}
    assert any(_within(field, w) and (w or "." not in field) for w in where), (where, field)


def _within(path: str, outer: str) -> bool:
    """Whether dotted ``path`` is ``outer`` or inside it."""
    return path == outer or path.startswith(outer + ".") or not outer


def _with_branches(errors: list[jsonschema.ValidationError]) -> list[jsonschema.ValidationError]:
    return [e for error in errors for e in [error, *_with_branches(list(error.context or ()))]]


BROKEN_CONFIGS = {
    "unknown key": ({"lrr": 0.1}, "lrr"),
    "negative lr": ({"lr": -1.0}, "lr"),
    "unknown method": ({"method": "adventt"}, "method"),
    "iterations a string": ({"iterations": "many"}, "iterations"),
    "unknown data key": ({"data": {"sorce": "gta5"}}, "data.sorce"),
    "bn_momentum 0": ({"bn_momentum": 0}, "bn_momentum"),
}


@pytest.mark.parametrize(("values", "field"), BROKEN_CONFIGS.values(), ids=BROKEN_CONFIGS)
def test_the_train_schema_rejects_what_train_config_rejects(values, field):
    with pytest.raises(ConfigError, match=rf"\n  {field}: "):
        validate(TrainConfig, values, "config.yaml")
    assert schema_errors("train", values)


# --- the command ---------------------------------------------------------------------------------------


def test_schema_command_prints_or_writes_each_schema(tmp_path, capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema("space")
    written = tmp_path / "out" / "train.schema.json"
    assert main(["schema", "train", "-o", str(written)]) == 0
    assert capsys.readouterr().out == f"written: {written}\n"
    assert written.read_text(encoding="utf-8") == (ROOT / "docs" / "schema" / "train.schema.json").read_text(encoding="utf-8")
    assert main(["schema", "--markdown"]) == 0
    assert capsys.readouterr().out == markdown_reference()
    assert main(["schema", "space", "-o", str(tmp_path)]) == 2  # a folder is not a file
