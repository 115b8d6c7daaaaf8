"""Server-Sent Events decoding (WHATWG HTML, section 9.2.6 "Interpreting an event stream").

Two layers, sans-IO: bytes → lines (:meth:`SSEDecoder.feed` cuts complete lines and keeps
the rest), then lines → events. Feed it any chunking of a stream and it yields the same
events: lines end in LF, CR or CRLF (a CRLF may be split across two chunks), a UTF-8
character may be split anywhere (bytes are only decoded up to the last line end, which
never falls inside a character), a leading BOM is dropped, comments (``: ping``) are
never events.
"""

from __future__ import annotations

from typing import NamedTuple

_LF = 0x0A
_CR = 0x0D


class ServerSentEvent(NamedTuple):
    """One dispatched event. ``id`` is the stream's last event ID at dispatch (9.2.6)."""

    event: str
    data: str
    id: str


class SSEDecoder:
    """Incremental decoder; one instance per connection.

    ``last_event_id`` seeds the last event ID buffer: the spec keeps it across
    reconnections, so a resumed connection starts from the one before.
    ``retry`` is the latest valid ``retry:`` field in milliseconds (None until one comes).
    """

    __slots__ = ("last_event_id", "retry", "_partial", "_cr_pending", "_bom_checked", "_event", "_data")

    def __init__(self, last_event_id: str = "") -> None:
        self.last_event_id = last_event_id
        self.retry: int | None = None
        self._partial: list[bytes] = []  # bytes of the current unfinished line
        self._cr_pending = False  # the last chunk ended in CR: a leading LF completes a CRLF
        self._bom_checked = False
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events completed by ``chunk``."""
        if self._cr_pending and chunk:
            self._cr_pending = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
        # A chunk without a line end only grows the current line (kept as a list, so a
        # huge event arriving in many chunks costs one join, not one copy per chunk).
        cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if cut < 0:
            self._partial.append(chunk)
            return []
        if self._partial:
            head = b"".join(self._partial)
            cut += len(head)
            chunk = head + chunk
        rest = chunk[cut + 1 :]
        self._partial = [rest] if rest else []
        self._cr_pending = not rest and chunk[cut] == _CR
        text = chunk[: cut + 1].decode("utf-8", "replace")
        if not self._bom_checked:
            self._bom_checked = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        lines.pop()  # the empty string after the final line end
        return self._lines(lines)

    def _lines(self, lines: list[str]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        event, data, last_id = self._event, self._data, self.last_event_id
        for line in lines:
            if not line:
                # A blank line dispatches, but only if a data field came (9.2.6, "dispatch the event").
                if data:
                    events.append(ServerSentEvent(event or "message", "\n".join(data), last_id))
                    data = []
                event = ""
                continue
            if line[0] == ":":  # a comment: heartbeats are never events
                continue
            name, colon, value = line.partition(":")
            if colon and value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id":
                if "\0" not in value:  # the spec ignores ids containing NULL
                    last_id = value
            elif name == "retry":
                if value.isascii() and value.isdigit():
                    self.retry = int(value)
            # Any other field is ignored (9.2.6).
        self._event, self._data, self.last_event_id = event, data, last_id
        return events
