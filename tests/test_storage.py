import pyarrow.fs as pafs
import pytest

from advent_sweep.storage import filesystem_and_path, write_atomically


def test_replaces_the_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old, and longer than the new content")
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"previous complete checkpoint")
    with pytest.raises(TypeError):
        write_atomically(target, 12345)  # not bytes: fails after the temporary file was opened
    assert target.read_bytes() == b"previous complete checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_writes_through_a_pyarrow_filesystem(tmp_path):
    (tmp_path / "sweep").mkdir()
    filesystem = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    write_atomically("sweep/trials.parquet", memoryview(b"\x00\x01parquet"), filesystem)
    assert (tmp_path / "sweep" / "trials.parquet").read_bytes() == b"\x00\x01parquet"
    assert len(list((tmp_path / "sweep").iterdir())) == 1


def test_a_relative_local_path_lands_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_atomically("best.yaml", b"lr: 0.005\n")
    assert (tmp_path / "best.yaml").read_text() == "lr: 0.005\n"


def test_filesystem_and_path_for_a_folder_and_a_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    filesystem, path = filesystem_and_path("results/sweep")
    assert isinstance(filesystem, pafs.LocalFileSystem) and path == f"{tmp_path}/results/sweep"
    filesystem, path = filesystem_and_path(f"file://{tmp_path}/results")
    assert path == f"{tmp_path}/results"
    write_atomically(f"file://{tmp_path}/via-uri.json", b"{}")
    assert (tmp_path / "via-uri.json").read_bytes() == b"{}"
