"""Subprocesses that may start Ray (``advent-sweep launch``/``confirm``/``train``): each in a session of its own,
its whole process tree stopped when the test ends, also on a timeout or a failed assertion.

A driver's Ray (GCS, raylet, workers) outlives a killed driver and is re-parented, and Ray gives some of its
processes a process group of their own; they all stay in the driver's session, so the session finds them.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

TERMINATE_GRACE_S = 10


@contextmanager
def process_tree(args: list[str], **popen_kwargs) -> Iterator[subprocess.Popen]:
    """``subprocess.Popen(args)`` in a new session; on leaving, everything in that session is stopped."""
    process = subprocess.Popen(args, start_new_session=True, **popen_kwargs)
    try:
        yield process
    finally:
        stop_process_tree(process)


def run_process_tree(args: list[str], timeout: float, **popen_kwargs) -> subprocess.CompletedProcess:
    """Like ``subprocess.run(args, capture_output=True, text=True, timeout=...)``, but a timeout stops Ray too."""
    with process_tree(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen_kwargs) as process:
        stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def session_members(leader: int) -> list[psutil.Process]:
    """The process ``leader`` and every process in its session (its pid is the session id), children first."""
    members = []
    try:
        members = psutil.Process(leader).children(recursive=True)
    except psutil.NoSuchProcess:
        pass
    for candidate in psutil.process_iter():
        try:
            if candidate.pid != leader and os.getsid(candidate.pid) == leader and candidate not in members:
                members.append(candidate)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def stop_process_tree(process: subprocess.Popen) -> None:
    """SIGTERM the leader and its session, SIGKILL what is left after a grace period; reap the leader.

    Done while the leader is unreaped, so its pid (the session id) cannot have been reused.
    """
    for _ in range(2):  # again, for anything started meanwhile
        tree = session_members(process.pid)
        if process.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                tree.append(psutil.Process(process.pid))
        if not tree:
            break
        for member in tree:
            try:
                member.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(tree, timeout=TERMINATE_GRACE_S)
        for member in alive:
            try:
                member.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=TERMINATE_GRACE_S)
    process.wait(timeout=TERMINATE_GRACE_S)
