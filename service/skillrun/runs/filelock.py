"""One process owns a SQLite run store: an OS lock on a file beside the database.

SQLite itself would let a second process write the same file, but the store keeps
each live run's tail, its wake-ups and its engine task in the memory of the process
that runs it. A second process would see those runs as left over by a crash, close
them ``interrupted`` while they still run, and the first would then lose its next
events. So the store takes ``flock(LOCK_EX | LOCK_NB)`` on ``<db>.lock`` and records
who holds it (pid, host, since when) in that file, for the message a second process
prints. The kernel drops the lock when its holder dies (even by ``kill -9``), so a
stale lock file never blocks a restart; it is never deleted (unlinking a lock file
while another process waits on it lets two processes hold "the" lock).

Python opens files close-on-exec, and the worker pool forks from a forkserver started
before any request, so no child process inherits the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from .store import utc_now


class StoreInUse(RuntimeError):
    """Another process holds the run store's lock."""

    def __init__(self, db: Path, lock: Path, holder: str) -> None:
        self.db, self.lock, self.holder = db, lock, holder
        super().__init__(
            f"the run store {db} is in use by another process ({holder}; lock file {lock}). "
            "A SQLite store serves one process: stop that process, give this one another --db, "
            "or share runs between processes with Redis (--db redis://HOST:6379/0)"
        )


def _describe(record: str) -> str:
    """``pid 1234 on host h since T`` from the lock file's JSON, or what is there."""
    try:
        holder = json.loads(record)
        return f"pid {int(holder['pid'])} on host {holder['host']} since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        # Being written right now, or not ours: say what we know.
        return "pid unknown: the lock file names no holder yet" if not record.strip() else record.strip()[:200]


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``<db>.lock``, held until ``release``."""

    def __init__(self, db: Path) -> None:
        self.db = db.resolve()
        self.path = self.db.with_name(self.db.name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (a no-op when this object holds it), or raise ``StoreInUse``."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # No O_TRUNC: the file names the current holder until we hold the lock ourselves.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            record = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)
            raise StoreInUse(self.db, self.path, _describe(record)) from None
        except BaseException:
            os.close(fd)
            raise
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, (record + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.close(fd)  # closing the last descriptor of the open file drops the flock
