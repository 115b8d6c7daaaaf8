"""The text and PII capabilities take time linear in their input, whatever the input.

A key holder chooses every input here, so one crafted text must not hold a worker (or,
inline, the event loop) for long. Timings are ratios within one run (the same code on
inputs of size n and 8n, or a hostile input against a plain one of the same size),
never absolute times.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skillrun.capabilities import builtin_registry

REGISTRY = builtin_registry()


def sync(name: str) -> Callable[[dict[str, Any]], Any]:
    cap = REGISTRY.get(name)
    assert cap is not None and cap.sync_fn is not None, f"{name} is not CPU-bound"
    return cap.sync_fn


def best_of(fn: Callable[[], Any], times: int = 3) -> float:
    best = float("inf")
    for _ in range(times):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def repeat(unit: str) -> Callable[[int], str]:
    return lambda n: (unit * (n // len(unit) + 1))[:n]


def growth(fn: Callable[[str], Any], shape: str | Callable[[int], str], n: int) -> float:
    """time(8n) / time(n) for inputs of ``shape`` (a unit repeated, or a builder) at sizes n and 8n."""
    build = repeat(shape) if isinstance(shape, str) else shape
    small, large = build(n), build(8 * n)
    fn(small)  # warm-up
    # The least of three measurements: another process taking the core during one
    # of them cannot make linear work look quadratic (quadratic work is 64x every time).
    ratios = []
    for _ in range(3):
        ratios.append(best_of(lambda: fn(large)) / max(best_of(lambda: fn(small)), 1e-5))
        if ratios[-1] < LINEAR:
            break
    return min(ratios)


# Linear work grows 8x; allow 3x for noise on a loaded machine. Quadratic work grows 64x.
LINEAR = 24

TEXT_CAPS = {
    "text.split_sections": lambda t: sync("text.split_sections")({"text": t}),
    "text.split_sentences": lambda t: sync("text.split_sentences")({"text": t}),
    "text.keywords": lambda t: sync("text.keywords")({"text": t}),
    "text.extractive_summary": lambda t: sync("text.extractive_summary")({"text": t}),
    "text.from_html": lambda t: sync("text.from_html")({"text": t}),
    "pii.detect": lambda t: sync("pii.detect")({"text": t}),
    "pii.redact": lambda t: sync("pii.redact")({"text": t}),
    "pii": lambda t: sync("pii")({"text": t}),
}

# The shapes that made the old patterns backtrack, and their relatives.
HOSTILE_SHAPES: dict[str, str | Callable[[int], str]] = {
    "heading": lambda n: "#" + " " * (n // 2) + "###" + " " * (n // 2) + "a",
    "word then @": lambda n: "a" * n + "@",
    "@ then dotted domain": lambda n: "x@" + "a." * (n // 2),
    "dotted then .!": lambda n: "." + " " * n,
    **{f"{u!r}*n": u for u in ["#" + " " * 50 + "###" + " " * 50, " ", "a", "<!--", "1", "1 ", "@", "a@", "+1 ", "<p>", "&#"]},
}


@pytest.mark.parametrize("shape", sorted(HOSTILE_SHAPES))
@pytest.mark.parametrize("cap", sorted(TEXT_CAPS))
def test_work_grows_linearly_on_hostile_shapes(cap: str, shape: str) -> None:
    ratio = growth(TEXT_CAPS[cap], HOSTILE_SHAPES[shape], 20_000)
    assert ratio < LINEAR, f"{cap} on {shape}: 8x the input took {ratio:.1f}x the time"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cap=st.sampled_from(sorted(TEXT_CAPS)),
    unit=st.text(alphabet=" \t\n#@.!?<>!-/a1+()&;:_%", min_size=1, max_size=12),
)
def test_work_grows_linearly_on_generated_shapes(cap: str, unit: str) -> None:
    ratio = growth(TEXT_CAPS[cap], unit, 10_000)
    assert ratio < LINEAR, f"{cap} on {unit!r}*n: 8x the input took {ratio:.1f}x the time"


def against_plain(fn: Callable[[str], Any], hostile: str) -> float:
    plain = ("Plain words. " * (len(hostile) // 13 + 1))[: len(hostile)]
    fn(plain)
    return best_of(lambda: fn(hostile), 1) / max(best_of(lambda: fn(plain)), 1e-4)


def test_a_heading_of_spaces_splits_at_once() -> None:
    """Finding: a 3 KB doc.pipeline document ``"#" + " "*1500 + "###" + " "*1500 + "a"``
    stalled the server 12.5 s in ``text.split_sections``'s ``_HEADING`` regex (4,000 spaces
    each side: 107 s)."""
    split = sync("text.split_sections")
    for spaces in (1500, 4000):
        hostile = "#" + " " * spaces + "###" + " " * spaces + "a"
        assert split({"text": hostile}) == {"sections": [{"title": "###" + " " * spaces + "a", "text": ""}], "count": 1}
        assert against_plain(lambda t: split({"text": t}), hostile) < 50


def test_headings_parse_as_before() -> None:
    split = sync("text.split_sections")
    text = "intro\n# One #\nbody 1\n   ## Two\nbody 2\n    # not a heading\n####### seven\n#no space\n### C#\n#"
    assert split({"text": text})["sections"] == [
        {"title": "", "text": "intro"},
        {"title": "One", "text": "body 1"},
        {"title": "Two", "text": "body 2\n    # not a heading\n####### seven\n#no space"},
        {"title": "C", "text": "#"},
    ]


def test_pii_on_a_long_word_is_linear() -> None:
    """Finding: the PII gate's regexes were quadratic: ``demo.showcase`` with
    ``"a" * 100000`` stalled the server 19.5 s (~8 min at 500 KB)."""
    gate = sync("pii")
    for n in (100_000, 500_000):
        hostile = "a" * n
        result = gate({"text": hostile})
        assert result.findings == [] and result.redacted == {"text": hostile}
        assert against_plain(lambda t: gate({"text": t}), hostile) < 50


def test_pii_finds_what_it_found_before() -> None:
    redact = sync("pii.redact")
    out = redact({"text": "Mail jo@example.com, call +1 555 123 4567 (or 030-1234-5678); card 4111 1111 1111 1111."})
    assert out["text"] == "Mail [REDACTED:email], call [REDACTED:phone] (or [REDACTED:phone]); card [REDACTED:credit_card]."
    assert {f["kind"]: f["count"] for f in out["findings"]} == {"email": 1, "phone": 2, "credit_card": 1}
    # The character before a number is kept (RE2 has no look-behind: it is captured and put back).
    assert redact({"text": "555 123 4567,+44 20 7946 0958"})["text"] == "[REDACTED:phone],[REDACTED:phone]"
    assert redact({"text": "x+1 555 123 4567"})["text"] == "x+1 [REDACTED:phone]"


def test_html_comment_openers_are_linear() -> None:
    """Finding: ``text.from_html`` used the standard library's ``html.parser``, quadratic on
    ``"<!--" * 30000`` (CVE-2025-6069): a hostile public page stalled the server 11.5 s."""
    from_html = sync("text.from_html")
    hostile = "<!--" * 30000
    assert from_html({"text": hostile}) == {"text": "", "title": ""}
    assert against_plain(lambda t: from_html({"text": t}), hostile) < 50


def test_html_text_keeps_blocks_drops_hidden_and_decodes() -> None:
    from_html = sync("text.from_html")
    page = (
        "<html><head><title> River &amp; valley </title><style>p{color:red}</style></head>"
        "<body><h1>Rivers</h1><p>The <b>big</b> river &#8212; wide.</p><script>var secret=1</script>"
        "<ul><li>one</li><li>two<br>three</li></ul><noscript>hidden</noscript>tail</body></html>"
    )
    assert from_html({"text": page}) == {"text": "Rivers\nThe big river \u2014 wide.\none\ntwo\nthree\ntail", "title": "River & valley"}


def test_html_over_the_cap_is_a_clear_failure() -> None:
    from skillrun.capabilities.text import MAX_HTML_CHARS
    from skillrun.engine.capability import CapabilityError

    with pytest.raises(CapabilityError) as err:
        sync("text.from_html")({"text": " " * (MAX_HTML_CHARS + 1)})
    assert err.value.kind == "input_too_large"
