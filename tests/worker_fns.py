"""Module-level (picklable) synchronous capability functions for the worker-pool tests."""

from __future__ import annotations

import os
import time
from typing import Any

from skillrun.engine.capability import CapabilityError


def spin(args: dict[str, Any]) -> dict[str, Any]:
    """A runaway computation: never returns."""
    while True:
        pass


def where(args: dict[str, Any]) -> dict[str, Any]:
    """The process that ran it; sleeps ``ms`` first (holding its worker)."""
    time.sleep(args.get("ms", 0) / 1000)
    return {"pid": os.getpid(), "tag": args.get("tag", ""), "done_at": time.monotonic()}


def refuse(args: dict[str, Any]) -> dict[str, Any]:
    raise CapabilityError("refused on purpose", kind="custom_kind")


def hog(args: dict[str, Any]) -> dict[str, Any]:
    """Asks for far more memory than a worker may have."""
    block = bytearray(4 * 1024**3)
    return {"size": len(block)}
