"""Moved to ``skillrun.conformance.schemas`` (shared with ``skillrun conformance``)."""

from skillrun.conformance.schemas import (  # noqa: F401
    EVENT_UNION,
    SchemaValidator,
    event_validator,
    rename_content_keywords,
    schema_validator,
    to_json_schema,
)
