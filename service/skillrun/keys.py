"""API keys: plain keys from the environment or SHA-256 hashes from a file.

Only hashes are kept in memory after start, every comparison is constant-time,
and a key's identity (the run owner) is derived from its hash, never the key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Iterable


def check_keys(keys: Iterable[str], source: str = "SKILLRUN_API_KEYS") -> None:
    """Refuse keys no request can ever send: HTTP header values are ASCII
    (RFC 9110, section 5.5: others arrive as Latin-1 bytes, so they never match)."""
    for n, key in enumerate(keys, 1):
        if not key.isascii() or not key.isprintable():
            raise ValueError(
                f"{source}: key {n} holds a character that is not printable ASCII; "
                "an x-api-key header can only carry printable ASCII, so it could never match"
            )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> str:
    return "sk_" + secrets.token_urlsafe(32)


def read_hash_file(path: Path) -> list[str]:
    """One SHA-256 hex digest a line; blank lines and ``#`` comments are ignored."""
    hashes = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip().lower()
        if not line:
            continue
        if len(line) != 64 or any(c not in "0123456789abcdef" for c in line):
            raise ValueError(f"{path}:{n}: not a SHA-256 hex digest")
        hashes.append(line)
    return hashes


class KeyRing:
    def __init__(self, hashes: Iterable[str]) -> None:
        self._hashes = [bytes.fromhex(h) for h in hashes]

    def __len__(self) -> int:
        return len(self._hashes)

    def identify(self, key: str) -> str | None:
        """The key's identity (``key_<first 16 hex of its hash>``), or None if unknown."""
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        found = None
        for known in self._hashes:  # no early exit: timing must not tell which key matched
            if hmac.compare_digest(digest, known):
                found = known
        return None if found is None else "key_" + found.hex()[:16]
