"""Moved to ``skillrun.conformance.sse`` (shared with ``skillrun conformance``)."""

from skillrun.conformance.sse import (  # noqa: F401
    IN_STEP_EVENTS,
    Frame,
    check_order,
    item_keys,
    parse_sse,
    skipped_indices,
)
