"""analyze(): tables, PNGs and a report.html that opens from disk."""

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from advent_sweep.analysis import analyze


@pytest.fixture(scope="module")
def report(sweep_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("copy") / "fake"
    shutil.copytree(sweep_dir, copy)
    return analyze(copy, rule="target_entropy", progress=False)


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
    assert "Metric: target_miou (max). Selection rule: target_entropy — label-free" in html
    for table in ("ranking", "selection_rules", "trials", "methods", "importance", "marginal_class_prior_mu"):
        assert (report.parent / f"{table}.csv").is_file()
        assert (report.parent / f"{table}.md").read_text().startswith("| ")
    assert "AdvEnt+MinEnt" in (report.parent / "methods.md").read_text()
    assert "min_entropy_value" in (report.parent / "trials.md").read_text()


def test_report_ranks_each_label_free_validator(report: Path) -> None:
    html = report.read_text()
    assert "<h2>Label-free selection</h2>" in html and "no values for: source_val_miou" in html
    assert html.index("Selection rules compared") < html.index("Label-free selection") < html.index("<h2>Methods</h2>")
    table = pd.read_csv(report.parent / "label_free.csv")
    assert table["validator"].tolist() == ["target_entropy", "target_im", "target_bnm", "target_snd"]
    assert table[["spearman", "weighted_spearman"]].notna().all().all() and (table["sweep_regret"] >= 0).all()
    assert len(pd.read_csv(report.parent / "label_free_trials.csv")) == 17
    for name in table["validator"]:
        assert f"src='validator_{name}.png'" in html


def test_report_has_the_cost_section_with_the_anytime_plot(report: Path) -> None:
    html = report.read_text()
    assert "<h2>Cost</h2>" in html and "anytime.png" in html and (report.parent / "anytime.png").is_file()
    costs = pd.read_csv(report.parent / "cost_by_method.csv")
    trials = pd.read_parquet(report.parent.parent / "trials.parquet")
    total = costs[costs["method"] == "all"]["cpu_hours"].sum()
    assert total == pytest.approx((trials["wall_time_s"] * trials["resources_cpu"]).sum() / 3600)
    assert "first reported target_miou" in html
