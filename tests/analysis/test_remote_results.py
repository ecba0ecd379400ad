"""Sweeps read where they lie: through a URI (file:// here, s3:// and gs:// the same way) or any pyarrow filesystem.

No network: file:// and a SubTreeFileSystem go through the same pyarrow calls as object storage.
"""

from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest

from advent_sweep.analysis import load_results
from advent_sweep.analysis import results as results_module
from advent_sweep.cli import main
from advent_sweep.errors import ResultsError
from tests.analysis.conftest import fake_trials, write_sweep


def assert_same_results(read, expected) -> None:
    pd.testing.assert_frame_equal(read.reports, expected.reports)
    pd.testing.assert_frame_equal(read.trials, expected.trials)
    assert read.sweeps == expected.sweeps and read.skipped.keys() == expected.skipped.keys()


def test_a_subtree_filesystem_reads_what_the_local_path_reads(sweep_dir: Path, results) -> None:
    filesystem = pafs.SubTreeFileSystem(str(sweep_dir.parent), pafs.LocalFileSystem())
    assert_same_results(load_results("fake", filesystem=filesystem), results)


def test_a_file_uri_to_a_running_folder_of_sweeps_reads_what_the_local_path_reads(tmp_path: Path) -> None:
    trials = fake_trials()
    write_sweep(tmp_path, "a", trials[:5], unlisted=trials[5:6])
    write_sweep(tmp_path, "b", fake_trials(1))
    (tmp_path / "c" / "reports").mkdir(parents=True)  # no reports yet: skipped
    (tmp_path / "a" / "reports" / ".part-x.parquet.0123.tmp").write_bytes(b"in flight")
    read = load_results(f"file://{tmp_path}", progress=True)
    assert_same_results(read, load_results(tmp_path))
    assert read.skipped == {"c": f"file://{tmp_path}/c: no reports yet"}


def test_a_part_file_that_vanishes_after_the_listing_is_left_out(sweep_dir: Path, results, monkeypatch: pytest.MonkeyPatch) -> None:
    listed = results_module._part_files
    monkeypatch.setattr(results_module, "_part_files", lambda folder: [*listed(folder), folder.join("reports/part-replaced.parquet")])
    assert_same_results(load_results(f"file://{sweep_dir}"), results)


def test_an_unreadable_part_file_is_named_by_its_uri(tmp_path: Path) -> None:
    folder = write_sweep(tmp_path, "broken", fake_trials()[:2])
    (folder / "reports" / "part-zz.parquet").write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match=f"file://{folder}/reports/part-zz.parquet: not a readable Parquet file"):
        load_results(f"file://{folder}")


def test_a_uri_that_holds_no_sweep_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ResultsError, match=f"file://{tmp_path}: no sweep results here"):
        load_results(f"file://{tmp_path}")
    with pytest.raises(ResultsError, match=f"file://{tmp_path}/notes.txt: not a folder"):
        load_results(f"file://{tmp_path}/notes.txt")


def test_an_unknown_scheme_is_named(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="nosuch://bucket/sweep: cannot be opened"):
        load_results("nosuch://bucket/sweep")


@pytest.mark.parametrize("command", ["best", "analyze"])
def test_a_file_uri_to_a_missing_folder_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"file://{tmp_path}/missing"
    assert main([command, uri]) == 2
    assert f"{uri}: no such folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_best_through_a_file_uri_picks_and_exports_what_the_local_path_does(sweep_dir: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    assert main(["best", str(sweep_dir), "--top", "3", "-o", str(tmp_path / "local" / "best.yaml")]) == 0
    local = capsys.readouterr().out
    assert main(["best", f"file://{sweep_dir}", "--top", "3", "-o", str(tmp_path / "remote" / "best.yaml")]) == 0
    remote = capsys.readouterr().out
    assert "trial spike of sweep fake" in local and remote.replace("/remote/", "/local/") == local
    assert (tmp_path / "remote" / "best.yaml").read_bytes() == (tmp_path / "local" / "best.yaml").read_bytes()


def test_analyze_through_a_file_uri_writes_the_same_tables_into_a_local_folder(sweep_dir: Path, tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["analyze", str(sweep_dir), "--output-dir", "local"]) == 0
    assert main(["analyze", f"file://{sweep_dir}"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"report: {tmp_path / 'fake-analysis' / 'report.html'}"
    assert not (sweep_dir / "analysis").exists()
    tables = sorted(p.name for p in (tmp_path / "local").glob("*.csv"))
    assert {"ranking.csv", "methods.csv", "label_free.csv"} <= set(tables)
    assert sorted(p.name for p in (tmp_path / "fake-analysis").glob("*.csv")) == tables
    for name in tables:
        assert (tmp_path / "fake-analysis" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


def test_analyze_of_a_folder_of_sweeps_behind_a_uri_is_named_after_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_sweep(tmp_path / "storage", "a", fake_trials(0))
    write_sweep(tmp_path / "storage", "b", fake_trials(1))
    monkeypatch.chdir(tmp_path)
    assert main(["analyze", f"file://{tmp_path}/storage/"]) == 0
    assert (tmp_path / "storage-analysis" / "report.html").is_file()
