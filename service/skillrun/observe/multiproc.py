"""Metrics across several worker processes (prometheus-client's multiprocess mode).

prometheus-client picks its value store when it is first imported: the directory
must be in the environment before that, and before the workers start (they inherit
it). Each worker writes its values to files there; a scrape on any worker (or on
``--metrics-port``, served by the parent) sums every worker's. This module imports
no prometheus code for that reason.
"""

from __future__ import annotations

import os
import shutil
import tempfile

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(workers: int) -> str | None:
    """With more than one worker: a fresh, empty directory for their values (an
    operator's own ``PROMETHEUS_MULTIPROC_DIR`` is emptied: stale files from an
    earlier server would be summed in). Returns the directory, or None (one worker)."""
    given = os.environ.get(ENV)
    if workers <= 1 and not given:
        return None
    if given:
        shutil.rmtree(given, ignore_errors=True)
        os.makedirs(given, exist_ok=True)
        return given
    path = tempfile.mkdtemp(prefix="skillrun-metrics-")
    os.environ[ENV] = path
    return path
