"""Where files live (a local folder or a URI that pyarrow opens) and how they are replaced.

Checkpoints, ``metrics.json``, the Parquet results and exported configs are read while they
are being replaced (a resuming run, the analysis of a running sweep, a crash mid-write), so
every writer goes through a temporary file beside the target and renames it into place: a
reader sees the previous complete file or the new one, never part of one.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid

import pyarrow.fs as pafs


def filesystem_and_path(uri: str | os.PathLike[str]) -> tuple[pafs.FileSystem, str]:
    """A local path (made absolute) or a URI (s3://, gs://, file://) as pyarrow filesystem + path."""
    uri = str(uri)
    return pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), os.path.abspath(uri))


def write_atomically(path: str | os.PathLike[str], data: bytes | memoryview, filesystem: pafs.FileSystem | None = None) -> None:
    """Write ``data`` to ``path`` through ``.<name>.<random>.tmp`` in the same folder, then rename.

    ``filesystem`` is a pyarrow filesystem; without one, ``path`` is a local path or a URI. The
    folder must exist.
    """
    if filesystem is None:
        filesystem, path = filesystem_and_path(path)
    folder, name = posixpath.split(str(path))
    temporary = posixpath.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with filesystem.open_output_stream(temporary) as stream:
            stream.write(data)
        filesystem.move(temporary, str(path))
    except BaseException:
        with contextlib.suppress(OSError):
            filesystem.delete_file(temporary)
        raise
