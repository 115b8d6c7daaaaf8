"""Text capabilities: sentence splitting, keywords, extractive summary, HTML to text.

Every one is linear in its input by construction, because a key holder chooses the
input: no pattern here can backtrack over it (the ones that could run on RE2, whose
matching is linear; headings are parsed without a pattern), and HTML is parsed by
lexbor (selectolax), a state machine, not by ``html.parser`` (quadratic on
``"<!--" * n``, CVE-2025-6069). Each is a plain synchronous function of its args, so
the engine can run it in a worker process under the step's deadline.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import re2
from selectolax.lexbor import LexborHTMLParser

from ..engine.capability import CapabilityError, cpu_capability, emit_delta

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


# RE2: with Python's engine `\S+@\S+` is quadratic on a long word ending in "@".
_NOT_WORDS = re2.compile(r"(?i)\S+@\S+|\b(?:https?|ftp)://\S+")


def _content_words(text: str) -> list[str]:
    # Addresses and URLs are not words: their parts must not surface as keywords.
    if "@" in text or "://" in text:
        text = _NOT_WORDS.sub(" ", text)
    return [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in STOPWORDS]


def _split(args: dict[str, Any]) -> dict[str, Any]:
    sentences = split_sentences(args["text"])
    return {"sentences": sentences, "count": len(sentences)}


def _keywords(args: dict[str, Any]) -> dict[str, Any]:
    limit = int(args.get("limit", 8))
    counts = Counter(_content_words(args["text"]))
    # Most frequent first; ties in order of first appearance (Counter keeps insertion order).
    return {"keywords": [w for w, _ in counts.most_common(limit)]}


# Texts with at least this many sentences report progress while they are scored
# (``step_delta``), in at most PROGRESS_STEPS reports: shorter ones take well under
# a millisecond, where progress would only cost events.
PROGRESS_MIN_SENTENCES = 1000
PROGRESS_STEPS = 10


def _scan_words(sentences: list[str]) -> list[list[str]]:
    """Each sentence's content words; on long texts, progress as it goes (the costly part)."""
    if len(sentences) < PROGRESS_MIN_SENTENCES:
        return [_content_words(s) for s in sentences]
    every = -(-len(sentences) // PROGRESS_STEPS)
    words: list[list[str]] = []
    for start in range(0, len(sentences), every):
        words.extend(_content_words(s) for s in sentences[start:start + every])
        emit_delta(progress=round(len(words) / len(sentences), 4))
    return words


def _summary(args: dict[str, Any]) -> dict[str, Any]:
    sentences = args.get("sentences")
    if sentences is None:
        sentences = split_sentences(args.get("text", ""))
    k = int(args.get("max_sentences", 2))
    words = _scan_words(sentences)  # once per sentence
    freq = Counter(w for ws in words for w in ws)
    scored = []
    for pos, ws in enumerate(words):
        score = sum(freq[w] for w in ws) / (len(ws) + 1)
        scored.append((score, -pos, pos))
    best = sorted(p for _, _, p in sorted(scored, reverse=True)[:k])
    return {"summary": " ".join(sentences[p] for p in best)}


def _answer(args: dict[str, Any]) -> dict[str, Any]:
    """The context's sentences that share the most content words with the question
    (in their original order); its text also goes out as a delta, as a model's would."""
    sentences = split_sentences(args.get("context", ""))
    wanted = set(_content_words(args["question"]))
    k = int(args.get("max_sentences", 2))
    scored = []
    for pos, sentence in enumerate(sentences):
        hits = len(wanted & set(_content_words(sentence)))
        if hits:
            scored.append((-hits, pos))
    best = sorted(pos for _, pos in sorted(scored)[:k])
    text = " ".join(sentences[p] for p in best) if best else ""
    if not text:
        text = "No answer: the context says nothing about the question." if sentences else "No answer: no context was given."
    emit_delta(text)
    return {"text": text, "sentences": len(best)}


def heading(line: str) -> str | None:
    """The title of a Markdown ATX heading line (``## Title ##``), else None.

    What ``^\\s{0,3}#{1,6}\\s+(.*?)\\s*#*\\s*$`` matches, without the regex: that
    one backtracks worse than quadratically on ``"#" + " " * n + "###" + " " * n + "a"``.
    """
    rest = line.lstrip()
    if len(line) - len(rest) > 3:
        return None
    hashes = len(rest) - len(rest.lstrip("#"))
    rest = rest[hashes:]
    if not 1 <= hashes <= 6 or not rest[:1].isspace():
        return None
    return rest.strip().rstrip("#").rstrip()


def split_sections(text: str) -> list[dict[str, str]]:
    """Sections of a text: Markdown headings start one, else blank lines separate them."""
    sections: list[dict[str, str]] = []
    title = ""
    lines: list[str] = []

    def close() -> None:
        body = "\n".join(lines).strip()
        if body or title:
            sections.append({"title": title, "text": body})

    all_lines = text.splitlines()
    titles = [heading(line) for line in all_lines]
    has_headings = any(t is not None for t in titles)
    for line, found in zip(all_lines, titles):
        if found is not None:
            close()
            title, lines = found, []
        elif not has_headings and not line.strip():
            close()
            title, lines = "", []
        else:
            lines.append(line)
    close()
    return sections


def _sections(args: dict[str, Any]) -> dict[str, Any]:
    sections = split_sections(args["text"])
    return {"sections": sections, "count": len(sections)}


def _join(args: dict[str, Any]) -> dict[str, Any]:
    parts = [str(p) for p in args.get("parts", []) if p is not None and str(p) != ""]
    return {"text": args.get("separator", "\n").join(parts)}


# Elements whose content is never text a reader sees.
_HIDDEN = frozenset({"script", "style", "noscript", "template", "svg", "math", "iframe", "object"})
# Elements that end a line of text (HTML's block-level and table elements, and <br>).
_BREAKS = frozenset(
    """address article aside blockquote br dd details div dl dt fieldset figcaption figure footer
    form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary table td th tr ul""".split()
)


_SPACES = re.compile(r"[^\S\n]+")

# The most HTML `text.from_html` takes (characters): a page `http.request` may fetch
# (at most 2 MB by default) fits; parsing is linear, ~0.01 µs a character.
MAX_HTML_CHARS = 8_000_000


def html_to_text(html: str) -> tuple[str, str]:
    """(visible text, one line per block; title) of an HTML document (references decoded)."""
    if len(html) > MAX_HTML_CHARS:
        raise CapabilityError(f"the HTML is longer than {MAX_HTML_CHARS} characters", kind="input_too_large")
    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = title_node.text() if title_node is not None else ""
    tree.strip_tags([*_HIDDEN, "title"])  # the elements and everything in them
    for block in tree.css(",".join(sorted(_BREAKS))):
        block.insert_before("\n")
        block.insert_after("\n")
    root = tree.root
    raw = root.text() if root is not None else ""
    lines = (_SPACES.sub(" ", line).strip() for line in raw.split("\n"))
    return "\n".join(line for line in lines if line), _SPACES.sub(" ", title).strip()


def _from_html(args: dict[str, Any]) -> dict[str, Any]:
    ctype = str(args.get("content_type") or "text/html").lower()
    if "html" not in ctype:  # plain text (or JSON, ...) is already text
        return {"text": args["text"], "title": ""}
    text, title = html_to_text(args["text"])
    return {"text": text, "title": title}


_TEXT = {"type": "string", "maxLength": 10_000_000}

CAPABILITIES = [
    cpu_capability(
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
        error_kinds=frozenset({"input_too_large"}),
    ),
    cpu_capability(
        "text.split_sections",
        _sections,
        "Split a text into sections (Markdown headings, else blank lines); each has a title and text.",
        {"type": "object", "required": ["text"], "additionalProperties": False, "properties": {"text": _TEXT}},
        {"type": "object", "additionalProperties": False, "properties": {"sections": {"type": "array"}, "count": {"type": "integer"}}},
    ),
    cpu_capability(
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
    cpu_capability(
        "text.split_sentences",
        _split,
        "Split a text into sentences.",
        {"type": "object", "required": ["text"], "additionalProperties": False, "properties": {"text": _TEXT}},
        {"type": "object", "additionalProperties": False, "properties": {"sentences": {"type": "array"}, "count": {"type": "integer"}}},
    ),
    cpu_capability(
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
    cpu_capability(
        "text.extractive_answer",
        _answer,
        "Answer a question from a context without a model: its sentences sharing the most content words with"
        " the question, in their original order (a fixed sentence when none does); the text is also a `step_delta`.",
        {
            "type": "object",
            "required": ["question"],
            "additionalProperties": False,
            "properties": {
                "question": {"type": "string"},
                "context": _TEXT,
                "max_sentences": {"type": "integer", "minimum": 1, "maximum": 20},
            },
        },
        {"type": "object", "additionalProperties": False,
         "properties": {"text": {"type": "string"}, "sentences": {"type": "integer"}}},
    ),
    cpu_capability(
        "text.extractive_summary",
        _summary,
        "Pick the most representative sentences, in their original order"
        f" (texts of {PROGRESS_MIN_SENTENCES:,}+ sentences report progress as `step_delta` events).",
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
