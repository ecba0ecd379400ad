"""The paper's per-class table: each method's best trial at an equal budget, one column per class, mIoU last."""

from dataclasses import replace

import pandas as pd

from advent_sweep.analysis.ablation import equal_budget
from advent_sweep.analysis.per_class import JOINT_LABEL, MIOU, OURS, PUBLISHED, per_class_table


def test_each_methods_best_trial_with_its_per_class_iou_and_miou_last(results):
    table = per_class_table(results)
    classes = [c.removeprefix("iou.") for c in results.reports.columns if c.startswith("iou.")]
    assert list(table.columns) == ["method", "backbone", "benchmark", "sweep", "trial_id", "iteration", "source", *classes, MIOU]
    assert set(table["source"]) == {OURS}, "synthetic data: no published rows"
    assert table["method"].tolist()[:4] == ["Source only", "MinEnt", "AdvEnt", JOINT_LABEL]
    rows = equal_budget(results).rows
    for row in table.itertuples(index=False):
        same = rows[(rows["config.method"] == {"Source only": "source_only", "MinEnt": "minent", "AdvEnt": "advent",
                                              JOINT_LABEL: "advent_minent"}[row.method]) & (rows["config.backbone"] == row.backbone)]
        assert getattr(row, MIOU) == same["target_miou"].max(), "the method's best trial"
        report = results.reports[(results.reports["trial_id"] == row.trial_id) & (results.reports["iteration"] == row.iteration)]
        for name in classes:  # each cell is the Parquet's per-class IoU of that report
            cell, parquet = table.loc[table["trial_id"] == row.trial_id, name].item(), report[f"iou.{name}"].item()
            assert cell == parquet or (pd.isna(cell) and pd.isna(parquet)), (row.method, name)


def test_gta5_cityscapes_adds_the_published_rows_with_their_source(results):
    reports = results.reports.assign(**{"data.source": "gta5", "data.target": "cityscapes"})
    table = per_class_table(replace(results, reports=reports))
    published = table[table["source"] != OURS]
    assert published["method"].tolist() == [row.method for row in PUBLISHED[("gta5", "cityscapes")]]
    assert published[MIOU].tolist() == [36.6, 42.3, 43.8, 45.5]
    assert all(source.startswith("Vu et al., ADVENT, CVPR 2019") for source in published["source"])
    assert pd.isna(published.iloc[1]["road"]), "a total without per-class values leaves the cells empty"
