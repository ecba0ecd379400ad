"""Reading sweep folders: one sweep, several, a running one, and every kind of bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from advent_sweep.analysis import load_results
from advent_sweep.errors import ResultsError
from tests.analysis.conftest import ITERATIONS, FakeTrial, fake_trials, write_sweep


def test_reads_every_report_and_trial(results, trials: list[FakeTrial]) -> None:
    assert len(results.reports) == sum(len(t.miou) for t in trials)
    assert set(results.trials["trial_id"]) == {t.trial_id for t in trials}
    assert results.reports["iteration"].dtype == "int64"
    assert results.sweeps["fake"]["metric"] == "target_miou"
    assert {"target_miou", "target_entropy", "iou.road", "loss_d_main"} <= set(results.metrics)
    assert not any(m.startswith(("config.", "data.")) for m in results.metrics)


def test_several_sweeps_at_once(tmp_path: Path) -> None:
    write_sweep(tmp_path, "a", fake_trials(0))
    write_sweep(tmp_path, "b", fake_trials(1))
    (tmp_path / "c" / "reports").mkdir(parents=True)  # a sweep that has not reported yet
    results = load_results(tmp_path)
    assert set(results.sweeps) == {"a", "b"}
    assert set(results.reports["sweep"]) == set(results.trials["sweep"]) == {"a", "b"}
    assert "no reports yet" in results.skipped["c"]


def test_running_sweep_counts_unlisted_trials_as_running_and_skips_temporary_files(tmp_path: Path) -> None:
    trials = fake_trials()
    folder = write_sweep(tmp_path, "live", trials[:3], unlisted=trials[3:4])
    (folder / "reports" / ".part-x.parquet").write_bytes(b"half written")
    (folder / "reports" / "part-y.parquet.tmp").write_bytes(b"half written")
    results = load_results(folder)
    status = results.trials.set_index("trial_id")["status"]
    assert status[trials[3].trial_id] == "running"
    assert status[trials[0].trial_id] == "completed"


def test_progress_line_goes_to_stderr(sweep_dir: Path, capsys: pytest.CaptureFixture) -> None:
    load_results(sweep_dir, progress=True)
    captured = capsys.readouterr()
    assert "reading results" in captured.err and captured.out == ""


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no such folder"):
        load_results(tmp_path / "nowhere")


def test_folder_with_no_results(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ResultsError, match="no sweep results here"):
        load_results(tmp_path)


def test_empty_sweep(tmp_path: Path) -> None:
    (tmp_path / "empty" / "reports").mkdir(parents=True)
    (tmp_path / "empty" / "sweep.json").write_text(json.dumps({"name": "empty", "schema_version": 1}))
    with pytest.raises(ResultsError, match="no reports yet"):
        load_results(tmp_path / "empty")


def test_a_file_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ResultsError, match=f"{tmp_path}/notes.txt: not a folder"):
        load_results(tmp_path / "notes.txt")


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    folder = write_sweep(tmp_path, "broken", fake_trials()[:2])
    (folder / "trials.parquet").write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match=f"{folder}/trials.parquet: not a readable Parquet file"):
        load_results(folder)
    (folder / "sweep.json").write_text("{not json")
    with pytest.raises(ResultsError, match=f"{folder}/sweep.json: cannot be read as JSON"):
        load_results(folder)


def test_unknown_metric_names_the_available_ones(results) -> None:
    with pytest.raises(ResultsError, match="unknown metric 'miou'.*target_miou.*target_entropy"):
        results.resolve("miou", None)


def test_unknown_schema_version_in_a_part_file(tmp_path: Path) -> None:
    folder = write_sweep(tmp_path, "future", fake_trials()[:2])
    part = next((folder / "reports").glob("*.parquet"))
    table = pq.read_table(part)
    pq.write_table(table.replace_schema_metadata({b"advent_sweep.schema_version": b"2"}), part)
    with pytest.raises(ResultsError, match="schema_version 2"):
        load_results(folder)


def test_unknown_schema_version_in_sweep_json(tmp_path: Path) -> None:
    folder = write_sweep(tmp_path, "future", fake_trials()[:2])
    (folder / "sweep.json").write_text(json.dumps({"name": "future", "schema_version": 7}))
    with pytest.raises(ResultsError, match="schema_version 7"):
        load_results(folder)


def test_mode_comes_from_sweep_json_else_from_the_metric(results) -> None:
    assert results.resolve(None, None) == ("target_miou", "max")
    assert results.resolve("target_entropy", None) == ("target_entropy", "min")
    assert results.resolve("iou.car", None) == ("iou.car", "max")
    with pytest.raises(ResultsError, match="unknown mode"):
        results.resolve("target_miou", "maximum")


def test_analysis_imports_neither_ray_nor_torch() -> None:
    modules = ", ".join(f"advent_sweep.analysis.{m}" for m in ("results", "best", "ablation", "importance", "plots", "report"))
    code = f"import sys, advent_sweep.analysis, {modules}; bad = {{'ray', 'torch', 'torchvision'}} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_fixture_iterations_are_the_reported_ones(results) -> None:
    assert set(results.reports["iteration"]) == set(ITERATIONS)


def test_a_conditional_parameter_a_trial_did_not_sample_reads_empty(tmp_path, trials) -> None:
    """sweep.json's space samples λ_adv only for AdvEnt methods: other trials' λ_adv (the default they trained with) is NaN."""
    from tests.analysis.conftest import write_sweep

    folder = write_sweep(tmp_path, "conditional", trials)
    saved = json.loads((folder / "sweep.json").read_text())
    saved["spec"]["space"] = {"lambda_adv_main": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True,
                                                  "when": {"method": ["advent", "advent_minent"]}}}
    (folder / "sweep.json").write_text(json.dumps(saved))
    results = load_results(folder)
    for frame in (results.reports, results.trials):
        adversarial = frame["config.method"].isin(["advent", "advent_minent"])
        assert frame.loc[~adversarial, "config.lambda_adv_main"].isna().all()
        assert frame.loc[adversarial, "config.lambda_adv_main"].notna().all() and adversarial.any()
        assert frame["config.lambda_ent_main"].notna().all()  # not conditional in this space
