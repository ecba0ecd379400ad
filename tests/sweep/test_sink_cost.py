"""The sink's flush cost does not grow with the sweep: finished trials' rows are converted once, big folds run
off the driver's loop; what readers see stays the same (stand-in trials, no Ray)."""

import pandas as pd

from advent_sweep.sweep import parquet_sink
from tests.sweep.test_compaction import report, sink_at, trial


def test_a_finished_trials_row_is_kept_converted_and_reconverted_when_it_changes(tmp_path):
    sink = sink_at(tmp_path)
    a, b = trial("a"), trial("b")
    for t in (a, b):
        sink.on_trial_start(0, [], t)
    for iteration in (2, 4, 6, 8):
        report(sink, a, iteration)
    sink.on_trial_complete(0, [], a)
    report(sink, b, 2)
    sink.get_state()
    assert sink._frozen_ids == {"a"}
    report(sink, b, 4)
    sink.get_state()
    rows = pd.read_parquet(tmp_path / "trials.parquet").set_index("trial_id")
    assert rows.loc["a", "status"] == "completed" and rows.loc["a", "best_value"] == 8.0 and rows.loc["a", "iterations"] == 8
    assert rows.loc["b", "status"] == "running" and rows.loc["b", "iterations"] == 4

    sink.on_trial_recover(0, [], a)  # a finished row changes again
    sink.get_state()
    rows = pd.read_parquet(tmp_path / "trials.parquet").set_index("trial_id")
    assert len(rows) == 2 and rows.loc["a", "status"] == "running" and rows.loc["a", "best_value"] == 8.0
    assert sink._frozen_ids == set()


def test_folds_on_the_background_thread_are_on_disk_after_ray_saves_its_state(tmp_path):
    sink = sink_at(tmp_path)
    t = trial("t")
    sink.on_trial_start(0, [], t)
    for iteration in range(1, parquet_sink.FANOUT + 1):
        report(sink, t, 2 * iteration)
        sink.get_state()
    names = sorted(path.name for path in (tmp_path / "reports").iterdir())
    assert [name.split("-")[1] for name in names] == ["1"]
    assert sorted(pd.read_parquet(tmp_path / "reports").iteration) == [2 * i for i in range(1, parquet_sink.FANOUT + 1)]
