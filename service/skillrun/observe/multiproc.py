"""Metrics across several worker processes (prometheus-client's multiprocess mode).

prometheus-client picks its value store when it is first imported: the directory
must be in the environment before that, and before the workers start (they inherit
it). Each worker writes its values to files there; a scrape on any worker (or on
``--metrics-port``, served by the parent) sums every worker's. This module imports
no prometheus code for that reason.
"""

from __future__ import annotations

import os
import tempfile

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(workers: int) -> str | None:
    """With more than one worker and no ``PROMETHEUS_MULTIPROC_DIR`` given: a fresh
    directory for their values, in the environment the workers inherit. A directory
    the operator gives is used as it is (prometheus-client's rule: empty it before
    the server starts, or an earlier server's counts are summed in). Returns the
    directory in use, or None (one process: plain in-memory metrics)."""
    given = os.environ.get(ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        return given
    if workers <= 1:
        return None
    path = tempfile.mkdtemp(prefix="skillrun-metrics-")
    os.environ[ENV] = path
    return path
