"""Fuzzing the parser: whatever the text, it raises only the flow's own errors, pointing inside the text,
and never runs any of it.

CI runs a few hundred inputs per test; for a longer run set FLOWMAGIC_FUZZ_EXAMPLES, e.g.
``FLOWMAGIC_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz_parser.py``.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flowmagic import Flow
from flowmagic.dsl.lines import split_lines
from flowmagic.errors import FlowDefinitionError, FlowSyntaxError

VALID = [
    'title = llm("A title about {topic}")\nparallel:\n    song = llm("A song for {title}")\n    cast = boom(title)\n',
    'parallel research (workers=2):\n    branch web:\n        hits = boom(q)\n        notes = llm("Sum {hits}")\n'
    '    branch docs:\n        pages = boom(q)\n@retries(2) @timeout(5)\nanswer = llm("{research}", temperature=0)\n',
    "checks = [boom(x) for x in items if x]\ntotal = sum(checks)  # a comment\n",
    "a = (1 +\n     2)\nb = '''multi\nline'''\n@cache(False)\nc = a\n",
    "kind = boom(t)\nif kind == 'bug':\n    r = boom(t)\n    reply = llm(\"{r}\")\nelif kind:\n    reply = kind\n"
    "else:\n    parallel:\n        reply = boom(1)\n        x = boom(2)\nout = reply\n",
    "draft = boom(p)\nfor attempt in range(3):\n    verdict = llm(\"{draft}\")\n    if verdict.ok:\n        break\n"
    "    draft = boom(draft)\n    for i in items:\n        note = boom(i)\nfinal = draft\n",
]
PIECES = [*"()[]{}:=@,'\"#\n\t ", "parallel", "branch", "if ", "elif ", "else:", "llm(", "for ", " in ", "break"]
PIECES += ["__class__", "  ", "\r", "\x0c"]
EXAMPLES = int(os.environ.get("FLOWMAGIC_FUZZ_EXAMPLES", "400"))
calls: list[Any] = []


def boom(*args: Any) -> None:
    calls.append(args)
    raise AssertionError("the parser ran user code")


def check(text: str) -> None:
    try:
        Flow.from_source(text, name="fuzz", namespace={"boom": boom})
    except FlowSyntaxError as exc:
        _inside(text, exc.line, exc.col)
    except FlowDefinitionError as exc:
        _inside(text, exc.line, exc.col)
    assert not calls


def _inside(text: str, line: int, col: int) -> None:
    lines = split_lines(text) or [""]
    assert 1 <= line <= len(lines) + 1, (line, len(lines))
    width = len(lines[line - 1]) if line <= len(lines) else 0
    assert 0 <= col <= width + 1, (line, col, width)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        op = draw(st.sampled_from(["delete", "insert", "replace", "duplicate-line", "indent"]))
        piece = draw(st.sampled_from(PIECES))
        if op == "delete":
            text = text[:i] + text[i + 1 :]
        elif op == "insert":
            text = text[:i] + piece + text[i:]
        elif op == "replace":
            text = text[:i] + piece + text[i + 1 :]
        elif op == "duplicate-line":
            lines = text.splitlines(keepends=True)
            k = draw(st.integers(0, len(lines) - 1))
            text = "".join(lines[: k + 1] + lines[k:])
        else:
            lines = text.splitlines(keepends=True)
            k = draw(st.integers(0, len(lines) - 1))
            lines[k] = "    " + lines[k]
            text = "".join(lines)
    return text


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
@example("")
@example("\n\n\n")
@example("a = (")
@example("parallel:\n")
@example("x = llm('{a.__class__}')")
def test_mutated_cells_raise_only_flow_errors_inside_the_text(text: str) -> None:
    check(text)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_arbitrary_text_raises_only_flow_errors_inside_the_text(text: str) -> None:
    check(text)


# constructs that nest: prefix and suffix around the next one
NESTERS = [
    ("-", ""),
    ("not ", ""),
    ("lambda: ", ""),
    ("lambda p, q=1: ", ""),
    ("(", ")"),
    ("[", "]"),
    ("{1: ", "}"),
    ("f(x=", ")"),
    ("x[0, ", "]"),
    ("x if y else ", ""),
    ("1 + ", ""),
    ("2 ** ", ""),
    ("[y for y in ", "]"),
    ("x.y(", ")"),
    ("f'{", "}'"),
]


@settings(max_examples=max(50, EXAMPLES // 4), deadline=None)
@given(st.lists(st.sampled_from(NESTERS), max_size=300))
def test_deep_nesting_is_refused_before_python_recurses(pieces: list[tuple[str, str]]) -> None:
    # any mix, however deep: a flow error (never RecursionError or MemoryError), or a flow that parses
    check("a = " + "".join(p for p, _ in pieces) + "boom" + "".join(s for _, s in reversed(pieces)))
