"""Serve TensorBoard on a sweep's or a run's event files, on 127.0.0.1 only: what ``advent-sweep tensorboard`` does.

A sweep folder holds one event-file folder per trial (Ray's trial folder, whose name carries the trial's
parameters), so TensorBoard shows each trial as one run; a run folder of ``advent-sweep train`` is one run.
TensorBoard rereads the files as they grow, so a running sweep can be watched. For a sweep on s3:// or
gs:// (or file://), the event files are copied into a local folder first and copied again every
``resync_s`` seconds (only those whose size changed): TensorBoard itself reads only local files here.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
import threading

import pyarrow.fs as pafs

from advent_sweep.errors import InputError
from advent_sweep.storage import filesystem_and_path, write_atomically

EVENT_FILE_PREFIX = "events.out.tfevents."


def sync_event_files(filesystem: pafs.FileSystem, root: str, local: str) -> int:
    """Copy every event file under ``root`` whose size changed into the same relative path under ``local``; how many."""
    copied = 0
    for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.type != pafs.FileType.File or not info.base_name.startswith(EVENT_FILE_PREFIX):
            continue
        target = os.path.join(local, posixpath.relpath(info.path, root))
        if os.path.exists(target) and os.path.getsize(target) == info.size:
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with filesystem.open_input_stream(info.path) as stream:
            write_atomically(target, stream.read())
        copied += 1
    return copied


def serve(location: str, port: int, resync_s: float = 30.0, stop: threading.Event | None = None) -> None:
    """Serve TensorBoard on http://127.0.0.1:PORT for ``location`` (a folder or a URI) until ``stop`` is set or Ctrl-C."""
    from tensorboard import program

    filesystem, root = filesystem_and_path(location)
    if filesystem.get_file_info(root).type != pafs.FileType.Directory:
        raise InputError(f"{location}: no such folder; allowed: a sweep folder (<storage>/<name>) or a run folder of `advent-sweep train`")
    remote = "://" in str(location)
    with tempfile.TemporaryDirectory(prefix="advent-sweep-tensorboard-") as copy:
        if remote:
            sync_event_files(filesystem, root, copy)
        board = program.TensorBoard()
        board.configure(argv=[None, "--logdir", copy if remote else root, "--host", "127.0.0.1", "--port", str(port)])
        try:
            url = board.launch()
        except program.TensorBoardServerException as error:
            raise InputError(f"--port {port}: TensorBoard cannot serve there ({error.msg})") from None
        shown = f" (a local copy of its event files, refreshed every {resync_s:.0f} s)" if remote else ""
        print(f"TensorBoard for {location}{shown}: {url} (this machine only; Ctrl-C stops it)", flush=True)
        stop = stop or threading.Event()
        while not stop.wait(resync_s if remote else None):
            sync_event_files(filesystem, root, copy)
