"""``skillrun validate``: every error path of the skill format, named as ``file:line: message``."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from skillrun.cli import main
from skillrun.settings import BUNDLED_SKILLS

HEAD = 'id: t\nversion: "1"\n'


def _validate(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, list[str], str]:
    code = main(["validate", *map(str, paths)])
    out = capsys.readouterr()
    problems = [line for line in out.err.splitlines() if ": " in line and not line.startswith(("INFO", "WARNING", "ERROR"))]
    return code, problems, out.out


def _file(tmp_path: Path, text: str, name: str = "skill.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


CASES = [
    # (name, file text, [(line, message)])
    # The wording is the parser's (libyaml or PyYAML); the line is ours.
    ("yaml_syntax", HEAD + "steps:\n  - {id: a, uses: util.echo\n", [(4, "invalid YAML: ")]),
    ("yaml_duplicate_key", HEAD + "steps:\n  - id: a\n    id: b\n    uses: util.echo\n", [(5, "invalid YAML: duplicate key 'id'")]),
    ("not_a_mapping", "- just\n- a list\n", [(1, "a skill file must be a YAML mapping")]),
    ("schema_unknown_key", HEAD + "colour: red\nsteps:\n  - {id: a, uses: util.echo}\n",
     [(1, "(top level): Additional properties are not allowed ('colour' was unexpected)")]),
    ("schema_step_key", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    retries: 3\n",
     [(4, "steps.0: Additional properties are not allowed ('retries' was unexpected)")]),
    ("schema_step_id", HEAD + "steps:\n  - id: Bad-Id\n    uses: util.echo\n",
     [(4, "steps.0.id: 'Bad-Id' does not match '^[a-z][a-z0-9_]{0,63}$'")]),
    ("schema_timeout", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    timeout: soon\n",
     [(6, "steps.0.timeout: 'soon' is not valid under any of the given schemas")]),
    ("schema_on_error", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    on_error: ignore\n",
     [(6, "steps.0.on_error: 'ignore' is not valid under any of the given schemas")]),
    ("schema_retry", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    retry: {max_attempts: 0}\n",
     [(6, "steps.0.retry.max_attempts: 0 is less than the minimum of 1")]),
    ("schema_gate_policy", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    gate: {uses: pii, policy: shout}\n",
     [(6, "steps.0.gate: {'uses': 'pii', 'policy': 'shout'} is not valid under any of the given schemas")]),
    ("timeout_zero", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    timeout: 0ms\n", [(6, "step 'a': timeout must be more than 0")]),
    ("duplicate_step", HEAD + "steps:\n  - {id: a, uses: util.echo}\n  - {id: a, uses: util.echo}\n", [(5, "duplicate step id 'a'")]),
    ("needs_unknown", HEAD + "steps:\n  - {id: a, uses: util.echo}\n  - id: b\n    uses: util.echo\n    needs: [a, nope]\n",
     [(7, "step 'b' needs 'nope', which is no step")]),
    ("needs_itself", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    needs: [a]\n", [(6, "step 'a' needs itself")]),
    ("needs_cycle", HEAD + "steps:\n  - {id: a, uses: util.echo, needs: [c]}\n  - {id: b, uses: util.echo, needs: [a]}\n  - {id: c, uses: util.echo, needs: [b]}\n",
     [(4, "needs form a cycle: a -> c -> b -> a")]),
    ("reads_later_step", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    input: {x: '${steps.b.y}'}\n  - {id: b, uses: util.echo}\n",
     [(6, "step 'a' reads steps.b, which is a later step")]),
    ("reads_unneeded_step", HEAD + "steps:\n  - {id: a, uses: util.echo}\n  - id: b\n    uses: util.echo\n    needs: []\n    input: {x: '${steps.a.y}'}\n",
     [(8, "step 'b' reads steps.a but does not need it (add 'a' to its needs)")]),
    ("reads_no_step", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    when: steps.zz.ok\n", [(6, "step 'a' reads steps.zz, which is no step")]),
    ("unknown_capability", HEAD + "steps:\n  - id: a\n    uses: util.nothing\n", [(5, "unknown capability 'util.nothing'")]),
    ("gate_as_capability", HEAD + "steps:\n  - id: a\n    uses: pii\n", [(5, "unknown capability 'pii'")]),
    ("unknown_gate", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    gate: text.keywords\n", [(6, "unknown gate 'text.keywords'")]),
    ("cel_when", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    when: inputs.x ==\n",
     [(6, "invalid CEL expression: ")]),
    ("cel_input", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    input:\n      x: ${1 +}\n",
     [(7, "invalid CEL expression: ")]),
    ("cel_foreach", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    foreach: '[1, 2'\n",
     [(6, "invalid CEL expression: ")]),
    ("cel_output", HEAD + "outputs:\n  x: {value: '${)(}'}\nsteps:\n  - {id: a, uses: util.echo}\n",
     [(4, "invalid CEL expression: ")]),
    ("input_missing_required", HEAD + "steps:\n  - id: a\n    uses: text.keywords\n    input: {limit: 3}\n",
     [(6, "input: missing 'text', which the capability requires")]),
    ("input_unknown_key", HEAD + "steps:\n  - id: a\n    uses: util.sleep\n    input:\n      ms: 5\n      seconds: 1\n",
     [(8, "input: the capability takes no 'seconds'")]),
    ("input_literal_type", HEAD + "steps:\n  - id: a\n    uses: util.sleep\n    input:\n      ms: soon\n",
     [(7, "input.ms: 'soon' is not of type 'integer'")]),
    ("max_parallel_without_foreach", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    max_parallel: 3\n",
     [(6, "step 'a': max_parallel bounds foreach items; the step has no foreach")]),
    ("backoff_bounds", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    retry:\n      backoff: {initial_ms: 500, max_ms: 100}\n",
     [(7, "retry.backoff.max_ms is less than initial_ms")]),
    ("fallback_unknown", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    on_error:\n      fallback: {uses: util.nope}\n",
     [(7, "unknown fallback capability 'util.nope'")]),
    ("fallback_input", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    on_error:\n      fallback:\n        uses: util.sleep\n        input: {hours: 1}\n",
     [(9, "input: the capability takes no 'hours'")]),
    ("nested_bad_form", HEAD + "steps:\n  - id: a\n    uses: 'skill:'\n", [(5, "'skill:': a nested skill is `skill:<skill id>`")]),
    ("nested_unknown", HEAD + "steps:\n  - id: a\n    uses: skill:no.such.skill\n", [(5, "step 'a' uses skill 'no.such.skill', which is not loaded")]),
    ("nested_input", HEAD + "steps:\n  - id: a\n    uses: skill:text.summarize\n    input: {words: 3}\n",
     [(4, "step 'a': input: missing 'text', which skill 'text.summarize' requires"),
      (4, "step 'a': input: skill 'text.summarize' takes no 'words'")]),
    ("nested_self_cycle", 'id: selfie\nversion: "1"\nsteps:\n  - id: a\n    uses: skill:selfie\n',
     [(5, "nested skills form a cycle: selfie -> selfie")]),
    ("reads_own_output", HEAD + "steps:\n  - id: a\n    uses: util.echo\n    input: {x: '${steps.a.y}'}\n",
     [(6, "step 'a' reads its own output steps.a")]),
    ("fallback_reads_unneeded_step", HEAD + "steps:\n  - {id: a, uses: util.echo}\n  - id: b\n    uses: util.fail\n    needs: []\n"
     "    on_error:\n      fallback: {uses: util.echo, input: {x: '${steps.a.y}'}}\n",
     [(9, "step 'b' reads steps.a but does not need it (add 'a' to its needs)")]),
    ("reads_unknown_output_field", HEAD + "steps:\n  - {id: split, uses: text.split_sentences, input: {text: hi}}\n"
     "  - id: b\n    uses: util.echo\n    input: {n: '${steps.split.cnt}'}\n",
     [(7, "step 'b' reads steps.split.cnt, but text.split_sentences gives no 'cnt' (did you mean 'count'?) (it gives count, sentences)")]),
    ("output_reads_unknown_field", HEAD + "outputs:\n  x: {value: '${size(steps.split.sentence)}'}\n"
     "steps:\n  - {id: split, uses: text.split_sentences, input: {text: hi}}\n",
     [(4, "output 'x' reads steps.split.sentence, but text.split_sentences gives no 'sentence' (did you mean 'sentences'?) (it gives count, sentences)")]),
    ("skill_timeout_zero", HEAD + "timeout: 0s\nsteps:\n  - {id: a, uses: util.echo}\n", [(3, "timeout must be more than 0")]),
    ("output_unknown_step", HEAD + "outputs:\n  x: {value: '${steps.nope.v}'}\nsteps:\n  - {id: a, uses: util.echo}\n",
     [(4, "output 'x' reads steps.nope, which is no step")]),
    ("inputs_not_object", HEAD + "inputs: {type: string}\nsteps:\n  - {id: a, uses: util.echo}\n",
     [(3, "inputs: must be a JSON Schema with type: object")]),
    ("inputs_bad_schema", HEAD + "inputs:\n  type: object\n  properties:\n    x: {type: colour}\nsteps:\n  - {id: a, uses: util.echo}\n",
     [(6, "inputs: not a valid JSON Schema: ")]),
]


@pytest.mark.parametrize("name, text, expected", CASES, ids=[c[0] for c in CASES])
def test_each_problem_is_named_by_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, expected: list[tuple[int, str]]
) -> None:
    path = _file(tmp_path, text, f"{name}.yaml")
    code, problems, _ = _validate(capsys, path)
    assert code == 1
    assert len(problems) == len(expected), problems
    for got, (line, message) in zip(sorted(problems), sorted(expected)):
        prefix = f"{path}:{line}: "
        assert got.startswith(prefix), (got, prefix)
        assert got[len(prefix):].startswith(message), (got, message)


def test_all_problems_of_a_file_are_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(
        tmp_path,
        """
        id: many
        version: "1"
        steps:
          - id: a
            uses: util.nope
          - id: b
            uses: util.echo
            needs: [zz]
            when: "1 +"
        """,
    )
    code, problems, _ = _validate(capsys, path)
    assert code == 1
    assert [p.split(": ", 1)[0] for p in problems] == [f"{path}:5", f"{path}:8", f"{path}:9"]


def test_nested_cycle_across_two_files_names_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _file(tmp_path, 'id: cyc.a\nversion: "1"\nsteps:\n  - {id: s, uses: util.echo}\n  - {id: go, uses: "skill:cyc.b"}\n', "a.yaml")
    b = _file(tmp_path, 'id: cyc.b\nversion: "1"\nsteps:\n  - id: go\n    uses: skill:cyc.a\n', "b.yaml")
    code, problems, _ = _validate(capsys, a, b)
    assert code == 1
    assert sorted(problems) == sorted([
        f"{a}:5: nested skills form a cycle: cyc.a -> cyc.b -> cyc.a",
        f"{b}:5: nested skills form a cycle: cyc.a -> cyc.b -> cyc.a",
    ]) or sorted(problems) == sorted([
        f"{a}:5: nested skills form a cycle: cyc.b -> cyc.a -> cyc.b",
        f"{b}:5: nested skills form a cycle: cyc.b -> cyc.a -> cyc.b",
    ])


def test_duplicate_skill_ids_across_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _file(tmp_path, HEAD + "steps:\n  - {id: a, uses: util.echo}\n", "a.yaml")
    b = _file(tmp_path, HEAD + "steps:\n  - {id: a, uses: util.echo}\n", "b.yaml")
    code, problems, out = _validate(capsys, a, b)
    assert code == 1
    assert problems == [f"{b}:1: skill id 't' is also the id of {a}"]
    assert f"{a}: ok" in out


def test_a_directory_without_skill_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, problems, _ = _validate(capsys, tmp_path)
    assert code == 1 and problems == [f"{tmp_path}:1: a directory without skill files (*.yaml, *.yml)"]


def test_fields_of_outputs_whose_shape_is_open_are_not_guessed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """util.echo, foreach lists, fallbacks and nested skills have no closed output schema."""
    path = _file(
        tmp_path,
        """
        id: open
        version: "1"
        steps:
          - {id: e, uses: util.echo, input: {x: 1}}
          - {id: f, uses: text.keywords, foreach: "['a']", input: {text: "${item}"}}
          - {id: g, uses: util.fail, on_error: {fallback: {uses: util.echo, input: {anything: 1}}}}
          - id: last
            uses: util.echo
            needs: [e, f, g]
            input: {a: "${steps.e.x}", b: "${steps.f.map(r, r.keywords)}", c: "${steps.g.anything}"}
        """,
    )
    code, problems, _ = _validate(capsys, path)
    assert (code, problems) == (0, [])


def test_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.yaml"
    code, problems, _ = _validate(capsys, missing)
    assert code == 1 and len(problems) == 1 and problems[0].startswith(f"{missing}:1: cannot read:")


def test_good_files_pass_with_exit_0_and_nested_refs_to_each_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    child = _file(tmp_path, 'id: my.child\nversion: "1"\ninputs: {type: object, required: [x], properties: {x: {type: string}}}\nsteps:\n  - {id: a, uses: util.echo, input: {x: "${inputs.x}"}}\n', "child.yaml")
    parent = _file(
        tmp_path,
        """
        id: my.parent
        version: "1"
        steps:
          - id: call
            uses: skill:my.child
            input: {x: hi}
            retry: {max_attempts: 2, on: [timeout]}
          - id: sum
            uses: skill:text.summarize
            needs: []
            input: {text: "A. B."}
        """,
        "parent.yaml",
    )
    code, problems, out = _validate(capsys, child, parent)
    assert (code, problems) == (0, [])
    assert f"{parent}: ok (my.parent 1, 2 steps)" in out


def test_yaml_reads_on_as_a_key_not_true(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, HEAD + "steps:\n  - id: a\n    uses: util.echo\n    retry:\n      on: [timeout]\n")
    code, problems, _ = _validate(capsys, path)
    assert (code, problems) == (0, [])


def test_bundled_skills_validate_and_a_directory_stands_for_its_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, problems, out = _validate(capsys, BUNDLED_SKILLS)
    assert (code, problems) == (0, [])
    for skill_id in ("doc.pipeline", "web.summarize", "demo.ticker", "text.summarize", "demo.showcase"):
        assert f"({skill_id} " in out


def test_bundled_examples_use_every_feature() -> None:
    import yaml

    keys: set[str] = set()
    uses: list[str] = []
    for path in BUNDLED_SKILLS.glob("*.yaml"):
        for step in yaml.safe_load(path.read_text())["steps"]:
            keys |= set(step)
            uses.append(step["uses"])
    assert {"needs", "retry", "foreach", "timeout", "on_error", "gate", "when", "max_parallel"} <= keys
    assert any(u.startswith("skill:") for u in uses)


def test_validate_is_a_command_line_program(tmp_path: Path) -> None:
    bad = _file(tmp_path, HEAD + "steps:\n  - {id: a, uses: util.nope}\n")
    proc = subprocess.run([sys.executable, "-m", "skillrun", "validate", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"{bad}:4: unknown capability 'util.nope' (did you mean 'util.echo'?)" in proc.stderr.splitlines()


def test_server_load_skips_bad_files_and_skills_nesting_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from skillrun.capabilities import builtin_registry
    from skillrun.engine import load_skills

    _file(tmp_path, 'id: good\nversion: "1"\nsteps:\n  - {id: a, uses: util.echo}\n', "good.yaml")
    _file(tmp_path, 'id: broken\nversion: "1"\nsteps:\n  - {id: a, uses: util.nope}\n', "broken.yaml")
    _file(tmp_path, 'id: wrapper\nversion: "1"\nsteps:\n  - {id: a, uses: "skill:broken"}\n', "wrapper.yaml")
    with caplog.at_level(logging.ERROR):
        catalog, problems = load_skills([tmp_path], builtin_registry())
    assert [s.id for s in catalog.all()] == ["good"]
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'broken.yaml'}:4: unknown capability 'util.nope' (did you mean 'util.echo'?)",
        f"{tmp_path / 'wrapper.yaml'}:4: step 'a' uses skill 'broken', which is not loaded",
    ]
    assert "skipped skill file" in caplog.text


def test_validate_calls_ok_exactly_what_the_server_serves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Finding: `skillrun validate` builds its catalog differently from the server. A skill
    nesting a skill that is itself left out (it nests a skill that is not loaded) was
    "ok" to validate, yet the server skipped it; both now build the same catalog."""
    from skillrun.capabilities import default_registry
    from skillrun.engine import load_skills

    outer = _file(tmp_path, 'id: outer\nversion: "1"\nsteps:\n  - {id: a, uses: "skill:mid"}\n', "outer.yaml")
    mid = _file(tmp_path, 'id: mid\nversion: "1"\nsteps:\n  - {id: a, uses: "skill:nowhere"}\n', "mid.yaml")
    good = _file(tmp_path, 'id: good\nversion: "1"\nsteps:\n  - {id: a, uses: util.echo}\n', "good.yaml")
    code, problems, out = _validate(capsys, tmp_path)
    assert code == 1
    assert sorted(problems) == [
        f"{mid}:4: step 'a' uses skill 'nowhere', which is not loaded",
        f"{outer}:4: step 'a' uses skill 'mid', which is not loaded",
    ]
    assert out.splitlines() == [f"{good}: ok (good 1, 1 steps)"]
    catalog, _ = load_skills([BUNDLED_SKILLS, tmp_path], default_registry())
    assert "good" in catalog and "mid" not in catalog and "outer" not in catalog


def test_one_duration_grammar_for_skill_timeouts_and_settings() -> None:
    """Finding: several grammars for durations (skill timeouts took `250ms, 5s, 2m`;
    SKILLRUN_RUN_RETENTION took `3600, 90s, 15m, 12h, 7d`): one grammar now reads both."""
    from skillrun.capabilities import default_registry
    from skillrun.engine.loader import parse_skill
    from skillrun.settings import parse_duration

    for text, seconds in [("250ms", 0.25), ("90s", 90.0), ("2m", 120.0), ("1.5m", 90.0)]:
        skill = parse_skill(HEAD + f"timeout: {text}\nsteps:\n  - {{id: a, uses: util.echo}}\n", "t.yaml", default_registry())
        assert skill.timeout_s == pytest.approx(seconds)
        assert parse_duration(text, "SKILLRUN_RUN_RETENTION") == pytest.approx(seconds)
    for text, seconds in [("3600", 3600.0), ("12h", 43200.0), ("7d", 604800.0), (" 15M ", 900.0)]:
        assert parse_duration(text, "SKILLRUN_RUN_RETENTION") == seconds
    for bad in ["soon", "5 parsecs", "-5s", "1e3", ""]:
        with pytest.raises(ValueError, match="SKILLRUN_RUN_RETENTION: .* is not a duration like"):
            parse_duration(bad, "SKILLRUN_RUN_RETENTION")


# ---------------------------------------------------------------- the first hour (issue 17)


def test_validate_names_schema_and_semantic_problems_in_one_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Finding: `skillrun validate` stopped at the schema errors and hid the semantic
    ones (2 errors, then 7 more after fixing them). Now one run names both kinds, and
    the refused parts add no guesses of their own."""
    path = _file(tmp_path, HEAD + textwrap.dedent("""\
        inputs:
          type: object
          properties: {name: {type: string}}
        steps:
          - id: a
            uses: util.echo
            retries: 3
          - id: b
            uses: text.sumarize
            input: {text: "${inputs.nme}"}
          - id: c
            uses: util.echo
            needs: [a, bb]
        """))
    code, problems, _ = _validate(capsys, path)
    assert code == 1
    text = "\n".join(problems)
    assert "steps.0: Additional properties are not allowed ('retries' was unexpected)" in text
    assert "unknown capability 'text.sumarize' (did you mean 'text.summarize'?)" not in text  # not a capability
    assert "unknown capability 'text.sumarize'" in text
    assert "step 'b' reads inputs.nme, which is no declared input (did you mean 'name'?)" in text
    assert "step 'c' needs 'bb', which is no step (did you mean 'b'?)" in text
    assert len(problems) == 4, problems
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)


def test_an_undeclared_input_is_named_with_the_closest_declared_one(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Finding: `${inputs.nme}` (an input that is not declared) loaded, and failed only when run."""
    path = _file(tmp_path, HEAD + textwrap.dedent("""\
        inputs:
          type: object
          properties: {name: {type: string}}
        steps:
          - id: a
            uses: util.echo
            input: {x: "${inputs.name}"}
        outputs:
          greeting: {value: "hello ${inputs.nme}"}
        """))
    code, problems, _ = _validate(capsys, path)
    assert code == 1
    assert [p.split(": ", 1)[1] for p in problems] == [
        "output 'greeting' reads inputs.nme, which is no declared input (did you mean 'name'?) (declare it under inputs.properties)"
    ]


def test_a_field_read_from_a_foreach_list_or_an_undeclared_output_field_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Finding: `steps.c.valu` was not caught on a step whose output the old check saw
    as open (a fallback's, a foreach's list, pii.detect's)."""
    path = _file(tmp_path, HEAD + textwrap.dedent("""\
        steps:
          - id: c
            uses: util.flaky
            input: {key: k}
            on_error: {fallback: {uses: util.sleep, input: {ms: 1}}}
          - id: d
            uses: pii.detect
            input: {text: x}
          - id: e
            uses: util.echo
            foreach: "${[1, 2]}"
          - id: f
            uses: util.echo
            needs: [c, d, e]
            input: {a: "${steps.c.valu}", b: "${steps.d.has_pi}", n: "${steps.e.size()}", m: "${steps.e.x}"}
        """))
    code, problems, _ = _validate(capsys, path)
    assert code == 1
    said = [p.split(": ", 1)[1] for p in problems]
    assert "step 'f' reads steps.c.valu, but util.flaky gives no 'valu' (did you mean 'value'?) (it gives attempts, slept_ms, value)" in said
    assert "step 'f' reads steps.d.has_pi, but pii.detect gives no 'has_pi' (did you mean 'has_pii'?) (it gives findings, has_pii)" in said
    assert any(s.startswith("step 'f' reads steps.e.x, but steps.e is a list") for s in said)
    assert len(said) == 3, said  # steps.e.size() is a method call, not a field


def test_retry_on_names_only_kinds_the_step_can_fail_with(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Finding: `retry.on: [bogus_kind]` loaded and silently never retried anything."""
    path = _file(tmp_path, HEAD + textwrap.dedent("""\
        steps:
          - id: a
            uses: http.request
            input: {url: "http://example.com"}
            retry: {on: [http_eror, timeout]}
          - id: b
            uses: util.fail
            retry: {on: [my_own_kind]}
        """))
    code, problems, _ = _validate(capsys, path)
    assert code == 1
    assert len(problems) == 1, problems
    assert problems[0].endswith(":7: retry.on: http.request never fails with 'http_eror' (did you mean 'http_error'?)"
                                " (its kinds: capability_error, expression_error, gate_failed, http_error, http_refused,"
                                " http_status, http_too_large, http_too_many_redirects, http_unsupported, input_invalid,"
                                " internal, timeout)")


def test_an_unquoted_expression_with_a_colon_is_explained(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Finding: an unquoted `${…}` containing `:` gave a bare YAML error."""
    path = _file(tmp_path, HEAD + "steps:\n  - id: a\n    uses: util.echo\n    input:\n      x: ${ true ? 'y: z' : 'w' }\n")
    code, problems, _ = _validate(capsys, path)
    assert code == 1
    assert len(problems) == 1
    assert ":7: invalid YAML: " in problems[0]
    assert "quote the whole value" in problems[0]
