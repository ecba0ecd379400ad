"""analyze(): tables, PNGs and a report.html that opens from disk."""

import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from advent_sweep.analysis import analyze


@pytest.fixture(scope="module")
def report(sweep_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("copy") / "fake"
    shutil.copytree(sweep_dir, copy)
    return analyze(copy, rule="min_entropy", progress=False)


def test_default_output_folder_is_inside_the_sweep(report: Path) -> None:
    assert report.name == "report.html" and report.parent.name == "analysis" and report.parent.parent.name == "fake"


def test_every_png_is_an_image(report: Path) -> None:
    pngs = sorted(report.parent.glob("*.png"))
    assert {"learning_curves.png", "importance.png", "metric_vs_lambda_ent_main.png"} <= {p.name for p in pngs}
    for png in pngs:
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width > 0 and image.height > 0


def test_report_references_only_files_that_exist(report: Path) -> None:
    html = report.read_text()
    sources = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", html)
    assert len(sources) >= 3
    for source in sources:
        assert "/" not in source and (report.parent / source).is_file(), source


def test_report_states_the_selection_rule_and_holds_the_tables(report: Path) -> None:
    html = report.read_text()
    assert "Metric: target_miou (max). Selection rule: min_entropy — label-free" in html
    for table in ("ranking", "selection_rules", "trials", "methods", "importance", "marginal_class_prior_mu"):
        assert (report.parent / f"{table}.csv").is_file()
        assert (report.parent / f"{table}.md").read_text().startswith("| ")
    assert "AdvEnt+MinEnt" in (report.parent / "methods.md").read_text()
    assert "min_entropy_value" in (report.parent / "trials.md").read_text()
