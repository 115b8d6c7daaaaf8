"""Text capabilities: sentence splitting, keywords, extractive summary, HTML to text."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from html.parser import HTMLParser
from typing import Any

from ..engine.capability import Capability

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[^\s])")
_WORD = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves also may might must shall us""".split()
)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


_NOT_WORDS = re.compile(r"\S+@\S+|\b(?:https?|ftp)://\S+", re.IGNORECASE)


def _content_words(text: str) -> list[str]:
    # Addresses and URLs are not words: their parts must not surface as keywords.
    if "@" in text or "://" in text:
        text = _NOT_WORDS.sub(" ", text)
    return [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in STOPWORDS]


async def _split(args: dict[str, Any]) -> dict[str, Any]:
    sentences = split_sentences(args["text"])
    return {"sentences": sentences, "count": len(sentences)}


async def _keywords(args: dict[str, Any]) -> dict[str, Any]:
    limit = int(args.get("limit", 8))
    counts = Counter(_content_words(args["text"]))
    # Most frequent first; ties in order of first appearance (Counter keeps insertion order).
    return {"keywords": [w for w, _ in counts.most_common(limit)]}


async def _summary(args: dict[str, Any]) -> dict[str, Any]:
    sentences = args.get("sentences")
    if sentences is None:
        sentences = split_sentences(args.get("text", ""))
    k = int(args.get("max_sentences", 2))
    words = [_content_words(s) for s in sentences]  # once per sentence
    freq = Counter(w for ws in words for w in ws)
    scored = []
    for pos, ws in enumerate(words):
        score = sum(freq[w] for w in ws) / (len(ws) + 1)
        scored.append((score, -pos, pos))
    best = sorted(p for _, _, p in sorted(scored, reverse=True)[:k])
    return {"summary": " ".join(sentences[p] for p in best)}


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def split_sections(text: str) -> list[dict[str, str]]:
    """Sections of a text: Markdown headings start one, else blank lines separate them."""
    sections: list[dict[str, str]] = []
    title = ""
    lines: list[str] = []

    def close() -> None:
        body = "\n".join(lines).strip()
        if body or title:
            sections.append({"title": title, "text": body})

    has_headings = any(_HEADING.match(line) for line in text.splitlines())
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading:
            close()
            title, lines = heading.group(1), []
        elif not has_headings and not line.strip():
            close()
            title, lines = "", []
        else:
            lines.append(line)
    close()
    return sections


async def _sections(args: dict[str, Any]) -> dict[str, Any]:
    sections = split_sections(args["text"])
    return {"sections": sections, "count": len(sections)}


async def _join(args: dict[str, Any]) -> dict[str, Any]:
    parts = [str(p) for p in args.get("parts", []) if p is not None and str(p) != ""]
    return {"text": args.get("separator", "\n").join(parts)}


# Elements whose content is never text a reader sees.
_HIDDEN = frozenset({"script", "style", "noscript", "template", "svg", "math", "iframe", "object"})
# Elements that end a line of text (HTML's block-level and table elements, and <br>).
_BREAKS = frozenset(
    """address article aside blockquote br dd details div dl dt fieldset figcaption figure footer
    form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary table td th tr ul""".split()
)


class _HtmlText(HTMLParser):
    """Visible text and title of an HTML document (character references decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._hidden = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag == "title":
            self._in_title = True
        elif tag in _BREAKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: Any) -> None:
        if tag in _BREAKS:  # <br/>, <hr/>; a self-closed hidden element hides nothing
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in _BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._hidden:
            self.parts.append(data)


_SPACES = re.compile(r"[^\S\n]+")


# Parsing takes ~0.5 µs a byte: a 2 MB page is fed in pieces, giving the loop a turn
# between them (and a cancellation a place to land) instead of holding it for a second.
_HTML_CHUNK = 16_384


async def html_to_text(html: str) -> tuple[str, str]:
    """(visible text, one line per block; title) of an HTML document."""
    parser = _HtmlText()
    for start in range(0, len(html), _HTML_CHUNK):
        if start:
            await asyncio.sleep(0)
        parser.feed(html[start : start + _HTML_CHUNK])
    parser.close()
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line), _SPACES.sub(" ", "".join(parser.title)).strip()


async def _from_html(args: dict[str, Any]) -> dict[str, Any]:
    ctype = str(args.get("content_type") or "text/html").lower()
    if "html" not in ctype:  # plain text (or JSON, ...) is already text
        return {"text": args["text"], "title": ""}
    text, title = await html_to_text(args["text"])
    return {"text": text, "title": title}


_TEXT = {"type": "string", "maxLength": 10_000_000}

CAPABILITIES = [
    Capability(
        "text.from_html",
        _from_html,
        "The visible text of an HTML page (scripts, styles and tags dropped, one line per block) and its title;"
        " a `content_type` without `html` passes the text through unchanged.",
        {
            "type": "object",
            "required": ["text"],
            "additionalProperties": False,
            "properties": {"text": _TEXT, "content_type": {"type": "string"}},
        },
        {"type": "object", "additionalProperties": False, "properties": {"text": {"type": "string"}, "title": {"type": "string"}}},
    ),
    Capability(
        "text.split_sections",
        _sections,
        "Split a text into sections (Markdown headings, else blank lines); each has a title and text.",
        {"type": "object", "required": ["text"], "additionalProperties": False, "properties": {"text": _TEXT}},
        {"type": "object", "additionalProperties": False, "properties": {"sections": {"type": "array"}, "count": {"type": "integer"}}},
    ),
    Capability(
        "text.join",
        _join,
        "Join strings (empty and null parts are left out).",
        {
            "type": "object",
            "required": ["parts"],
            "additionalProperties": False,
            "properties": {"parts": {"type": "array"}, "separator": {"type": "string"}},
        },
        {"type": "object", "additionalProperties": False, "properties": {"text": {"type": "string"}}},
    ),
    Capability(
        "text.split_sentences",
        _split,
        "Split a text into sentences.",
        {"type": "object", "required": ["text"], "additionalProperties": False, "properties": {"text": _TEXT}},
        {"type": "object", "additionalProperties": False, "properties": {"sentences": {"type": "array"}, "count": {"type": "integer"}}},
    ),
    Capability(
        "text.keywords",
        _keywords,
        "The most frequent content words of a text.",
        {
            "type": "object",
            "required": ["text"],
            "additionalProperties": False,
            "properties": {"text": _TEXT, "limit": {"type": "integer", "minimum": 1}},
        },
        {"type": "object", "additionalProperties": False, "properties": {"keywords": {"type": "array", "items": {"type": "string"}}}},
    ),
    Capability(
        "text.extractive_summary",
        _summary,
        "Pick the most representative sentences, in their original order.",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "text": _TEXT,
                "sentences": {"type": "array", "items": {"type": "string"}},
                "max_sentences": {"type": "integer", "minimum": 1},
            },
        },
        {"type": "object", "additionalProperties": False, "properties": {"summary": {"type": "string"}}},
    ),
]
