"""The key ``skillrun serve`` generates when none is configured, kept per data directory.

Runs belong to the key that started them and survive a restart (they are in the
database), so a key generated afresh at every start would hide them all (404) and
turn the old key into a 401. The generated key is therefore written once, beside
the database, readable by its owner only (0600), and read again at the next start.
With ``SKILLRUN_DB=:memory:`` runs do not survive a restart, and neither does the key.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .keys import check_keys, generate_key

log = logging.getLogger(__name__)

KEY_FILE_NAME = "api-key"


@dataclass(frozen=True, slots=True)
class DevKey:
    key: str
    path: Path | None  # None: not kept (in-memory store)
    created: bool


def key_file_for(db: str) -> Path | None:
    """Where the generated key of the store ``db`` lives: beside it (None for ``:memory:``)."""
    if db == ":memory:":
        return None
    return Path(db).parent / KEY_FILE_NAME


def load_or_create(db: str) -> DevKey:
    """The data directory's key: read it if it is there, else generate and write it (0600).

    Raises ``ValueError`` for a key file that holds no usable key (the user's to fix).
    """
    path = key_file_for(db)
    if path is None:
        return DevKey(generate_key(), None, True)
    try:
        return DevKey(_read(path), path, False)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    try:
        # O_EXCL: two servers starting at once on one directory cannot each write their own.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return DevKey(_read(path), path, False)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key + "\n")
    return DevKey(key, path, True)


def _read(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s is readable by others (mode %o); chmod 600 it", path, mode)
    key = path.read_text(encoding="ascii", errors="replace").strip()
    if not key:
        raise ValueError(f"{path}: empty; delete it to have a new key generated")
    check_keys([key], str(path))
    return key
