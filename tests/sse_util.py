"""Moved to ``skillrun.conformance.sse`` (shared with ``skillrun conformance``)."""

from skillrun.conformance.sse import IN_STEP_EVENTS, Frame, check_order, parse_sse  # noqa: F401
