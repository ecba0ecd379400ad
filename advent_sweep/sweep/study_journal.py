"""Where a sweep's Optuna study is journaled, and how a dashboard opens it (no Ray, so the dashboard starts fast).

The study lives in Optuna's JournalStorage with a file backend in the sweep folder:
``optuna-dashboard <sweep>/optuna-journal.log`` opens it as ``advent-sweep dashboard`` does.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.fs as pafs
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from advent_sweep.errors import ResultsError
from advent_sweep.storage import filesystem_and_path, write_atomically

logger = logging.getLogger(__name__)

JOURNAL_FILE = "optuna-journal.log"


def journal_storage(path: str) -> JournalStorage:
    """Optuna's JournalStorage on the file ``path``, locked with JournalFileSymlinkLock.

    Sweep folders are often on NFS, where fcntl locks (SQLite's) are unreliable. Creating a
    symlink is atomic on every NFS version, while JournalFileOpenLock's O_EXCL needs NFSv3 or
    later; a lock left by a killed driver is broken after its 30 s grace period. It is also the
    lock ``optuna-dashboard PATH`` takes: both use ``PATH.lock``.
    """
    return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileSymlinkLock(path)))


@dataclass(frozen=True)
class StudyJournal:
    """Where the Optuna study of the sweep in ``folder`` is journaled.

    A local sweep journals into its folder. An object store (s3://, gs://) can be neither
    appended to nor locked, so a sweep there journals to a local file under the user's cache
    folder, keyed by the sweep's URI, and copies it whole into the sweep folder (atomically) at
    each trial end and each time Ray saves the searcher: the copy is never older than Ray's saved
    state, and a resume starts from it (on any machine). A local path is computed where it is used,
    so a searcher restored on another machine journals into that machine's cache.
    """

    folder: str

    @property
    def remote(self) -> bool:
        return "://" in self.folder

    @property
    def folder_copy(self) -> str:
        return f"{self.folder.rstrip('/')}/{JOURNAL_FILE}"

    @property
    def path(self) -> str:
        """The file Optuna appends to."""
        if not self.remote:
            return os.path.join(self.folder, JOURNAL_FILE)
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        key = hashlib.sha256(self.folder.rstrip("/").encode()).hexdigest()[:16]
        return os.path.join(cache, "advent-sweep", "journals", key, JOURNAL_FILE)

    def storage(self) -> JournalStorage:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        return journal_storage(self.path)

    def start(self) -> None:
        """A new sweep in an object store: forget a local journal left by an earlier sweep at the same URI."""
        if self.remote:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)

    def fetch(self) -> None:
        """A resumed sweep: continue from the sweep folder's copy (object store) or journal (local).

        The folder is the one the sweep was launched in (Ray restores the searcher pickled then).
        """
        if self.remote:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            _download(self.folder_copy, self.path)
        elif not os.path.isfile(self.path):
            raise ResultsError(f"{self.path}: the sweep's Optuna journal is missing; a sweep resumes in the folder "
                               "it was launched in, with its files as they were")

    def publish(self) -> None:
        """Copy the local journal into the object store; a failed copy is retried at the next trial end."""
        if not self.remote:
            return
        with open(self.path, "rb") as handle:
            data = handle.read()
        whole_lines = data[: data.rfind(b"\n") + 1]  # optuna-dashboard may be appending
        try:
            write_atomically(self.folder_copy, whole_lines)
        except OSError as error:
            logger.warning("could not copy the Optuna journal to %s: %s", self.folder_copy, error)


def _download(uri: str, path: str) -> None:
    filesystem, source = filesystem_and_path(uri)
    with filesystem.open_input_stream(source) as stream:
        write_atomically(path, stream.read())


@contextlib.contextmanager
def open_sweep_journal(folder: str) -> Iterator[JournalStorage]:
    """The study journal of the sweep at ``folder``, for optuna-dashboard.

    A local sweep's live journal; for a URI, a snapshot of the sweep folder's copy (as of its
    last trial end) in a temporary folder, removed on exit.
    """
    journal = StudyJournal(folder)
    filesystem, copy = filesystem_and_path(journal.folder_copy)
    if filesystem.get_file_info(copy).type != pafs.FileType.File:
        raise ResultsError(f"{folder}: no Optuna study journal ({JOURNAL_FILE}) there; "
                           "allowed: a sweep folder (<storage>/<name>) that `advent-sweep launch` wrote")
    if not journal.remote:
        yield journal_storage(journal.path)
        return
    with tempfile.TemporaryDirectory() as snapshot:
        path = os.path.join(snapshot, JOURNAL_FILE)
        _download(journal.folder_copy, path)
        yield journal_storage(path)
