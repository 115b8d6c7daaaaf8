"""The SSE decoder against WHATWG HTML 9.2.6, fed every possible chunking."""

from __future__ import annotations

import pytest

from skillrun_client import ServerSentEvent, SSEDecoder


def decode(*chunks: bytes) -> tuple[list[ServerSentEvent], SSEDecoder]:
    decoder = SSEDecoder()
    events = [e for c in chunks for e in decoder.feed(c)]
    return events, decoder


def every_split(data: bytes) -> list[tuple[bytes, ...]]:
    """``data`` cut once at every offset, and into single bytes."""
    cuts: list[tuple[bytes, ...]] = [(data[:i], data[i:]) for i in range(len(data) + 1)]
    cuts.append(tuple(data[i : i + 1] for i in range(len(data))))
    return cuts


STREAM = (
    "\ufeff: hello\n"
    "id: 1\nevent: step_start\ndata: {\"a\": \"caf\u00e9 \u2603 \U0001f600\"}\n\n"
    "retry: 2500\n"
    ": ping\n\n"
    "data: line one\ndata:line two\ndata\n\n"
    "id: 7\nevent: done\ndata: {}\n\n"
)
EXPECTED = [
    ServerSentEvent("step_start", '{"a": "caf\u00e9 \u2603 \U0001f600"}', "1", True),
    ServerSentEvent("message", "line one\nline two\n", "1", False),
    ServerSentEvent("done", "{}", "7", True),
]


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"], ids=["LF", "CR", "CRLF"])
def test_every_chunking_gives_the_same_events(newline: str) -> None:
    data = STREAM.replace("\n", newline).encode()
    for chunks in every_split(data):
        events, decoder = decode(*chunks)
        assert events == EXPECTED, chunks
        assert decoder.retry == 2500
        assert decoder.last_event_id == "7"


def test_mixed_line_endings_in_one_stream() -> None:
    data = b"data: a\r\ndata: b\rdata: c\n\r\n"
    for chunks in every_split(data):
        assert decode(*chunks)[0] == [ServerSentEvent("message", "a\nb\nc", "")]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    events, _ = decode(b"data: x\r", b"\n", b"\r", b"\n")
    assert events == [ServerSentEvent("message", "x", "")]


def test_cr_then_cr_is_a_blank_line() -> None:
    assert decode(b"data: x\r", b"\r")[0] == [ServerSentEvent("message", "x", "")]


def test_empty_chunks_change_nothing() -> None:
    assert decode(b"", b"data: x\r", b"", b"\n\n", b"")[0] == [ServerSentEvent("message", "x", "")]


def test_multibyte_utf8_split_inside_a_character() -> None:
    text = "data: \u00e9\u2603\U0001f600\n\n".encode()
    for chunks in every_split(text):
        assert decode(*chunks)[0][0].data == "\u00e9\u2603\U0001f600"


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert decode(b"data: \xff\xfe\n\n")[0][0].data == "\ufffd\ufffd"


def test_only_a_leading_bom_is_dropped() -> None:
    events, _ = decode(b"\xef\xbb", b"\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\n")
    # The second BOM is not at the start of the stream: it is part of a field name.
    assert events == [ServerSentEvent("message", "a", "")]
    assert decode("\ufeffdata: \ufeff\n\n".encode())[0][0].data == "\ufeff"


def test_comments_are_never_events() -> None:
    assert decode(b": ping\n\n:\n\n: x\r\n\r\n")[0] == []


def test_spec_example_two_events_and_a_discarded_one() -> None:
    # WHATWG 9.2.6 example: the last block has no blank line, so it is never dispatched.
    data = b"data\n\ndata\ndata\n\ndata:"
    events, _ = decode(data)
    assert [e.data for e in events] == ["", "\n"]


def test_spec_example_leading_space() -> None:
    assert [e.data for e in decode(b"data:test\n\ndata: test\n\ndata:  test\n\n")[0]] == ["test", "test", " test"]


def test_event_without_data_is_not_dispatched_and_resets_type() -> None:
    events, _ = decode(b"event: a\n\ndata: x\n\n")
    assert events == [ServerSentEvent("message", "x", "")]


def test_empty_event_field_means_message() -> None:
    assert decode(b"event:\ndata: x\n\n")[0][0].event == "message"


def test_id_persists_until_changed_and_empty_id_clears_it() -> None:
    events, _ = decode(b"id: 5\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [e.id for e in events] == ["5", "5", ""]


def test_an_event_says_whether_its_own_lines_set_the_id() -> None:
    """An event without its own ``id:`` line inherits the last event ID (9.2.6), and says so,
    also when the ``id:`` line and the rest of its frame arrive in different chunks."""
    events, _ = decode(b"id: 5\ndata: a\n\ndata: b\n\nid: 6\n", b"data: c\n\n")
    assert [(e.id, e.has_id) for e in events] == [("5", True), ("5", False), ("6", True)]


def test_id_with_null_is_ignored() -> None:
    events, decoder = decode(b"id: 3\n\nid: 4\x00\ndata: a\n\n")
    assert events[0].id == "3" and decoder.last_event_id == "3"


def test_initial_last_event_id_is_kept() -> None:
    decoder = SSEDecoder(last_event_id="41")
    assert decoder.feed(b"data: a\n\n")[0].id == "41"


@pytest.mark.parametrize("value", ["", "abc", "1.5", "-1", "\u0661\u0662", "  10"])
def test_invalid_retry_is_ignored(value: str) -> None:
    _, decoder = decode(f"retry: 100\nretry:{value}\n\n".encode())
    assert decoder.retry == 100


def test_unknown_fields_and_lines_without_colon_are_ignored() -> None:
    assert decode(b"foo: bar\nbaz\ndata: x\n\n")[0] == [ServerSentEvent("message", "x", "")]


def test_huge_event_in_many_chunks() -> None:
    payload = ("x" * 1023 + "\u00e9") * 4096  # about 4 MiB of data in one line
    data = f"id: 1\ndata: {payload}\n\n".encode()
    size = 1000  # odd, so chunks end inside the two-byte character
    decoder = SSEDecoder()
    events = [e for i in range(0, len(data), size) for e in decoder.feed(data[i : i + size])]
    assert len(events) == 1 and events[0].data == payload


def test_many_events_in_one_chunk() -> None:
    data = b"".join(f"id: {i}\ndata: {i}\n\n".encode() for i in range(1000))
    events, _ = decode(data)
    assert [e.data for e in events] == [str(i) for i in range(1000)]


# --- the decoder against a plain reading of the spec, on generated streams ----------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def reference_decode(data: bytes) -> tuple[list[ServerSentEvent], str, int | None]:
    """WHATWG 9.2.6 read literally, one line at a time, on the whole stream at once."""
    text = data.decode("utf-8", "replace")
    text = text[1:] if text.startswith("\ufeff") else text
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines.pop()  # an unterminated last line is never processed
    events, event, buf, last_id, retry, has_id = [], "", "", "", None, False
    for line in lines:
        if line == "":
            if buf:
                events.append(ServerSentEvent(event or "message", buf[:-1], last_id, has_id))
            event, buf, has_id = "", "", False
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            buf += value + "\n"
        elif field == "id" and "\0" not in value:
            last_id, has_id = value, True
        elif field == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events, last_id, retry


TOKENS = [
    "id: 1", "id:22", "id", "id: 3\0", "event: step", "event:", "data: {\"a\": 1}", "data:x", "data",
    "data:  two spaces", ": ping", ":", "retry: 250", "retry: x", "foo: bar", "é☃😀", "\ufeff",
]  # fmt: skip
LINE_ENDS = ["\n", "\r", "\r\n", "\n\n", "\r\n\r\n"]


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    parts = draw(st.lists(st.tuples(st.sampled_from(TOKENS), st.sampled_from(LINE_ENDS)), max_size=30))
    prefix = draw(st.sampled_from(["", "\ufeff"]))
    data = (prefix + "".join(t + e for t, e in parts)).encode()
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    return data, cuts


@settings(max_examples=400, deadline=None)
@given(streams())
def test_any_stream_any_chunking_matches_the_spec_reading(case: tuple[bytes, list[int]]) -> None:
    data, cuts = case
    bounds = [0, *cuts, len(data)]
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    events, decoder = decode(*chunks)
    expected, last_id, retry = reference_decode(data)
    assert events == expected
    assert decoder.last_event_id == last_id and decoder.retry == retry
