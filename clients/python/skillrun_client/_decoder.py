"""Server-Sent Events decoding (WHATWG HTML, section 9.2.6 "Interpreting an event stream").

Two layers, sans-IO: bytes → lines (:meth:`SSEDecoder.feed` cuts complete lines and keeps
the rest), then lines → events. Feed it any chunking of a stream and it yields the same
events: lines end in LF, CR or CRLF (a CRLF may be split across two chunks), a UTF-8
character may be split anywhere (bytes are only decoded up to the last line end, which
never falls inside a character), a leading BOM is dropped, comments (``: ping``) are
never events.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_LF = 0x0A
_CR = 0x0D
# One whole frame: optional `id`, optional `event`, one `data` line, a blank line. One
# optional space after each colon is not part of the value (9.2.6); an id with NULL is
# left to the line-by-line path, which ignores it.
_FRAME = re.compile(r"(?:id: ?([^\n\0]*)\n)?(?:event: ?([^\n]*)\n)?data: ?([^\n]*)\n\n")


class ServerSentEvent(NamedTuple):
    """One dispatched event. ``id`` is the stream's last event ID at dispatch (9.2.6);
    ``has_id`` says whether the event's own lines set it (else it is inherited from an
    earlier event, or from the reconnection's ``Last-Event-ID``)."""

    event: str
    data: str
    id: str
    has_id: bool = False


class SSEDecoder:
    """Incremental decoder; one instance per connection.

    ``last_event_id`` seeds the last event ID buffer: the spec keeps it across
    reconnections, so a resumed connection starts from the one before.
    ``retry`` is the latest valid ``retry:`` field in milliseconds (None until one comes).
    """

    __slots__ = ("last_event_id", "retry", "_partial", "_cr_pending", "_bom_checked", "_event", "_data", "_has_id")

    def __init__(self, last_event_id: str = "") -> None:
        self.last_event_id = last_event_id
        self.retry: int | None = None
        self._partial: list[bytes] = []  # bytes of the current unfinished line
        self._cr_pending = False  # the last chunk ended in CR: a leading LF completes a CRLF
        self._bom_checked = False
        self._event = ""
        self._data: list[str] = []
        self._has_id = False  # the frame in progress has an `id:` line of its own

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
        return self._text(text)

    def _text(self, text: str) -> list[ServerSentEvent]:
        """Events from complete lines (``text`` ends with a line end)."""
        events: list[ServerSentEvent] = []
        pos = 0
        if self._data or self._event or self._has_id:  # finish the frame in progress line by line
            blank = 0 if text[0] == "\n" else text.find("\n\n")
            if blank < 0:
                self._lines(text, events)
                return events
            pos = blank + 1 if blank == 0 else blank + 2
            self._lines(text[:pos], events)
        # Fast path for what servers send nearly always: whole frames of one data line
        # (optionally after id and event), comments and blank lines. Anything else goes
        # line by line, with the same result.
        match, last_id, end = _FRAME.match, self.last_event_id, len(text)
        while pos < end:
            m = match(text, pos)
            if m is not None:
                event_id, event, data = m.groups()
                if event_id is not None:
                    last_id = event_id
                events.append(ServerSentEvent(event or "message", data, last_id, event_id is not None))
                pos = m.end()
            elif text[pos] == ":":
                pos = text.index("\n", pos) + 1
            elif text[pos] == "\n":
                pos += 1
            else:
                break
        self.last_event_id = last_id
        if pos < end:
            self._lines(text[pos:], events)
        return events

    def _lines(self, text: str, events: list[ServerSentEvent]) -> None:
        lines = text.split("\n")
        lines.pop()  # the empty string after the final line end
        event, data, last_id, has_id = self._event, self._data, self.last_event_id, self._has_id
        for line in lines:
            if not line:
                # A blank line dispatches, but only if a data field came (9.2.6, "dispatch the event").
                if data:
                    events.append(ServerSentEvent(event or "message", "\n".join(data), last_id, has_id))
                    data = []
                event, has_id = "", False
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
                    last_id, has_id = value, True
            elif name == "retry":
                if value.isascii() and value.isdigit():
                    self.retry = int(value)
            # Any other field is ignored (9.2.6).
        self._event, self._data, self.last_event_id, self._has_id = event, data, last_id, has_id
