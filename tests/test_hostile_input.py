"""Hostile input: every case ends in flowmagic's own error, pointing at the culprit, within a second and in
bounded memory; parsing is linear in the size of the text; real flows stay well inside the limits.

Each input is built here, from the shapes reported against the parser and the Agent Spec importer:
operator chains and nested blocks that made Python recurse or run out of memory, statements only the
compiler refuses, template fields that fail only when rendered, and documents whose aliases expand
exponentially or nest deeper than the loaders recurse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from flowmagic import Flow
from flowmagic.dsl.limits import MAX_BLOCK_DEPTH, MAX_EXPRESSION_DEPTH
from flowmagic.dsl.lines import split_lines
from flowmagic.errors import FlowDefinitionError, FlowError, FlowSyntaxError
from flowmagic.interop.agentspec import AgentSpecError
from flowmagic.interop.agentspec_bounds import MAX_DOCUMENT_DEPTH, MAX_DOCUMENT_VALUES
from flowmagic.llm.template import MAX_FORMAT_WIDTH

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 1.0  # the contract: a hostile input is refused within a second...
PEAK_BYTES = 100 * 2**20  # ...and without building anything big


def nth(text: str, sub: str, n: int) -> int:
    """The index of the n-th (1-based) occurrence of ``sub`` in ``text``."""
    at = -1
    for _ in range(n):
        at = text.index(sub, at + 1)
    return at


def nested_blocks(depth: int, body: str = "a = 1") -> str:
    """``depth`` ``parallel:`` blocks, each inside the one before."""
    return "".join("    " * i + "parallel:\n" for i in range(depth)) + "    " * depth + body + "\n"


@dataclass(frozen=True)
class Case:
    build: Callable[[], str]
    error: type[FlowError]
    where: Callable[[str], tuple[int, int]] | None = None  # (line, col) the error must point at


# the (MAX + 1)-th level is where the limit is passed, and where the caret goes
CELLS = {
    "a chain of 1,000 '+'": Case(
        lambda: "a = " + "+".join(["x"] * 1000),
        FlowSyntaxError,
        lambda t: (1, nth(t, "+", MAX_EXPRESSION_DEPTH + 1)),
    ),
    "1,000 calls of a call": Case(
        lambda: "a = f" + "(1)" * 1000, FlowSyntaxError, lambda t: (1, nth(t, "(", MAX_EXPRESSION_DEPTH + 1))
    ),
    "3,000 unary minus": Case(
        lambda: "a = " + "-" * 3000 + "1", FlowSyntaxError, lambda t: (1, nth(t, "-", MAX_EXPRESSION_DEPTH + 1))
    ),
    "30,000 'not'": Case(
        lambda: "a = " + "not " * 30000 + "x", FlowSyntaxError, lambda t: (1, nth(t, "not", MAX_EXPRESSION_DEPTH + 1))
    ),
    "5,000 lambdas": Case(
        lambda: "a = " + "lambda: " * 5000 + "1",
        FlowSyntaxError,
        lambda t: (1, nth(t, "lambda", MAX_EXPRESSION_DEPTH + 1)),
    ),
    "5,000 lambdas with parameters": Case(
        lambda: "a = " + "lambda p, q=1: " * 5000 + "1",
        FlowSyntaxError,
        lambda t: (1, nth(t, "lambda", MAX_EXPRESSION_DEPTH + 1)),
    ),
    "1,000 nested conditionals": Case(
        lambda: "a = " + "x if y else " * 1000 + "z",
        FlowSyntaxError,
        lambda t: (1, nth(t, "if", MAX_EXPRESSION_DEPTH + 1)),
    ),
    "330 nested parallel blocks": Case(
        lambda: nested_blocks(330),
        FlowSyntaxError,
        lambda t: (MAX_BLOCK_DEPTH + 1, 4 * MAX_BLOCK_DEPTH),
    ),
    "3,000 minus inside an f-string": Case(lambda: "a = f'{" + "-" * 3000 + "1}'", FlowSyntaxError),
    "a number of 5,000 digits": Case(lambda: "a = " + "9" * 5000, FlowSyntaxError),  # Python says where
    "a starred step": Case(lambda: "a = *b", FlowSyntaxError, lambda t: (1, t.index("*b"))),
    "a repeated keyword": Case(lambda: "a = f(x=1, x=2)", FlowSyntaxError, lambda t: (1, t.index("x=2"))),
    "a repeated keyword after text that is not ASCII": Case(
        lambda: "a = f('éé', x=1, x=2)", FlowSyntaxError, lambda t: (1, t.index("x=2"))
    ),
    "an async comprehension in a list": Case(
        lambda: "a = [[x async for x in y] for z in w]", FlowSyntaxError, lambda t: (1, t.index("[x async"))
    ),
    "an async comprehension on a later line": Case(
        lambda: "b = 1\na = (\n    'é',\n    [x async for x in y])\n",
        FlowSyntaxError,
        lambda t: (4, split_lines(t)[3].index("[x")),
    ),
    "an async loop in a map": Case(
        lambda: "a = [f(x) async for x in y]", FlowDefinitionError, lambda t: (1, t.index("x in y"))
    ),
    "a map's loop variable named __debug__": Case(
        lambda: "a = [f(__debug__) for __debug__ in xs]", FlowSyntaxError, lambda t: (1, t.index("__debug__ in"))
    ),
    "a step named __debug__": Case(lambda: "__debug__ = 1", FlowDefinitionError, lambda t: (1, 0)),
    "a group named __debug__": Case(
        lambda: "parallel __debug__:\n    a = 1\n    b = 2\n", FlowDefinitionError, lambda t: (1, t.index("__debug__"))
    ),
    "a step named with a keyword": Case(lambda: "x = 1\nNone = 1", FlowSyntaxError, lambda t: (2, 0)),
    "a template conversion !z": Case(lambda: "a = llm('Hi {x!z}')", FlowDefinitionError, lambda t: (1, t.index("'Hi"))),
    "a template width of a trillion": Case(
        lambda: "a = llm('{x:>999999999999}')", FlowDefinitionError, lambda t: (1, t.index("'{"))
    ),
    "a template precision past the limit": Case(
        lambda: f"a = llm('{{x:.{MAX_FORMAT_WIDTH + 1}f}}')", FlowDefinitionError, lambda t: (1, t.index("'{"))
    ),
    "an endless @timeout": Case(lambda: "@timeout(1e999)\na = 1", FlowDefinitionError, lambda t: (1, 1)),
    "an endless backoff": Case(lambda: "@retries(2, backoff=1e999)\na = 1", FlowDefinitionError, lambda t: (1, 1)),
    "a lone surrogate": Case(lambda: "a = 1\nb = 'x\ud800'", FlowSyntaxError, lambda t: (2, 6)),
}
if sys.version_info < (3, 12):  # before PEP 701, Python rescans an f-string from its start for each field
    CELLS["an f-string of 300,000 fields"] = Case(lambda: "a = f'" + "{b}" * 300_000 + "'", FlowSyntaxError)


def _parse(text: str) -> FlowError:
    try:
        Flow.from_source(text, namespace={})
    except FlowError as exc:
        return exc
    raise AssertionError("the hostile input was accepted")


def _position(error: FlowError) -> tuple[int, int]:
    assert isinstance(error, (FlowSyntaxError, FlowDefinitionError))
    return error.line, error.col


@pytest.mark.parametrize("name", list(CELLS))
def test_a_hostile_cell_is_a_flow_error_at_its_culprit_within_a_second(name: str) -> None:
    case = CELLS[name]
    text = case.build()
    started = time.perf_counter()
    error = _parse(text)
    took = time.perf_counter() - started
    assert type(error) is case.error, f"{type(error).__name__}: {error}"
    assert took < SECONDS, f"{name}: {took:.2f}s"
    line, col = _position(error)
    lines = split_lines(text)
    assert 1 <= line <= len(lines) and 0 <= col <= len(lines[line - 1]), (line, col)
    if case.where is not None:
        assert (line, col) == case.where(text), str(error)
    assert "^" in (str(error) if isinstance(error, FlowDefinitionError) else _caret(error))


def _caret(error: FlowError) -> str:
    from flowmagic.errors import caret_lines

    assert isinstance(error, SyntaxError) and error.text is not None and error.offset is not None
    return caret_lines(error.text, error.offset - 1)


@pytest.mark.parametrize("name", list(CELLS))
def test_a_hostile_cell_is_refused_in_bounded_memory(name: str) -> None:
    text = CELLS[name].build()
    tracemalloc.start()
    try:
        _parse(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"{name}: peak {peak / 2**20:.0f} MB"


# -- Agent Spec -------------------------------------------------------------------------------------------
def yaml_laughs(levels: int) -> str:
    """A flow whose nodes are an alias of 10 aliases of 10 aliases... ``levels`` deep (a few hundred bytes)."""
    lines = ["component_type: Flow", "name: laughs", "start_node: {component_type: StartNode, id: s, name: s}"]
    lines.append("l0: &l0 {component_type: EndNode, id: e, name: e}")
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    lines.append(f"nodes: *l{levels}")
    return "\n".join(lines) + "\n"


def json_reference_laughs(levels: int) -> str:
    """The same with ``$component_ref``: each parallel node runs the flow below it ten times."""
    components: dict[str, object] = {
        "start": {"component_type": "StartNode", "id": "start", "name": "start"},
        "end": {"component_type": "EndNode", "id": "end", "name": "end"},
        "ask": {
            "component_type": "LlmNode",
            "id": "ask",
            "name": "ask",
            "prompt_template": "hi",
            "outputs": [{"title": "o"}],
        },
    }

    def ref(name: str) -> dict[str, str]:
        return {"$component_ref": name}

    def flow(k: int) -> dict[str, object]:
        middle = f"p{k}" if k else "ask"
        return {
            "component_type": "Flow",
            "id": f"f{k}",
            "name": f"f{k}",
            "start_node": ref("start"),
            "nodes": [ref("start"), ref(middle), ref("end")],
            "control_flow_connections": [
                {
                    "component_type": "ControlFlowEdge",
                    "id": f"{a}{k}",
                    "name": a,
                    "from_node": ref(a),
                    "to_node": ref(b),
                }
                for a, b in (("start", middle), (middle, "end"))
            ],
        }

    for k in range(levels):
        components[f"f{k}"] = flow(k)
        if k:
            components[f"p{k}"] = {
                "component_type": "ParallelFlowNode",
                "id": f"p{k}",
                "name": f"p{k}",
                "subflows": [ref(f"f{k - 1}")] * 10,
            }
    top = {**flow(levels - 1), "$referenced_components": components}
    return json.dumps(top)


def yaml_merges(n: int) -> str:
    """Each mapping merges the one before (``<<: *m``): PyYAML copies every key again, n^2 in all."""
    lines = ["component_type: Flow", "name: merges", "m0: &m0 {k0: 0}"]
    lines += [f"m{i}: &m{i} {{<<: *m{i - 1}, k{i}: {i}}}" for i in range(1, n + 1)]
    return "\n".join(lines) + "\n"


def reference_chain(n: int) -> str:
    """A reference to a reference to a reference... ``n`` long."""
    components: dict[str, object] = {f"r{i}": {"$component_ref": f"r{i + 1}"} for i in range(n)}
    components[f"r{n}"] = {"component_type": "EndNode", "id": "e", "name": "e"}
    return json.dumps(
        {"component_type": "Flow", "name": "chain", "x": {"$component_ref": "r0"}, "$referenced_components": components}
    )


DOCUMENTS = {
    "YAML aliases 6 levels deep (10^6)": lambda: yaml_laughs(6),
    "YAML aliases 7 levels deep": lambda: yaml_laughs(7),
    "YAML aliases 10 levels deep": lambda: yaml_laughs(10),
    "references 12 levels deep (10^12)": lambda: json_reference_laughs(12),
    "YAML merge keys 5,000 long": lambda: yaml_merges(5000),
    "JSON nested 900 deep": lambda: '{"component_type": "Flow", "x": ' + "[" * 900 + "]" * 900 + "}",
    "JSON nested 100,000 deep": lambda: '{"component_type": "Flow", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "YAML nested 5,000 deep": lambda: "component_type: Flow\nx: " + "[" * 5000 + "]" * 5000 + "\n",
    "YAML indented 3,000 deep": lambda: "component_type: Flow\n" + "".join(" " * i + f"k{i}:\n" for i in range(3000)),
    "a YAML alias inside its own anchor": lambda: "component_type: Flow\nname: r\nx: &a [*a]\n",
    "a chain of 10,000 references": lambda: reference_chain(10_000),
    "a component that contains itself": lambda: json.dumps(
        {
            "component_type": "Flow",
            "x": {"$component_ref": "a"},
            "$referenced_components": {"a": {"y": {"$component_ref": "a"}}},
        }
    ),
    "a JSON number of 5,000 digits": lambda: '{"component_type": "Flow", "x": ' + "1" * 5000 + "}",
    "a YAML number of 5,000 digits": lambda: "component_type: Flow\nx: " + "1" * 5000 + "\n",
}


def _import(text: str) -> AgentSpecError:
    try:
        Flow.from_agentspec(text, model="offline")
    except AgentSpecError as exc:
        return exc
    raise AssertionError("the hostile document was accepted")


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_a_hostile_agent_spec_document_is_an_agent_spec_error_within_a_second(name: str) -> None:
    text = DOCUMENTS[name]()
    _import(yaml_laughs(1))  # loads PyYAML outside the measurement
    started = time.perf_counter()
    error = _import(text)
    took = time.perf_counter() - started
    assert took < SECONDS, f"{name}: {took:.2f}s"
    assert isinstance(error, FlowError) and str(error)


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_a_hostile_agent_spec_document_is_refused_in_bounded_memory(name: str) -> None:
    text = DOCUMENTS[name]()
    tracemalloc.start()
    try:
        _import(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"{name}: peak {peak / 2**20:.0f} MB"


def test_the_errors_name_the_limit_that_was_passed() -> None:
    assert f"{MAX_DOCUMENT_VALUES:,}" in str(_import(yaml_laughs(10)))
    assert f"{MAX_DOCUMENT_DEPTH}" in str(_import(DOCUMENTS["JSON nested 900 deep"]()))
    assert f"{MAX_DOCUMENT_DEPTH}" in str(_import(DOCUMENTS["YAML nested 5,000 deep"]()))
    assert f"{MAX_EXPRESSION_DEPTH}" in str(_parse(CELLS["3,000 unary minus"].build()))
    assert f"{MAX_BLOCK_DEPTH}" in str(_parse(nested_blocks(MAX_BLOCK_DEPTH + 1)))


def test_references_within_the_limits_still_expand() -> None:
    # the reference laughs, two levels deep, are a legitimate group of ten branches
    flow = Flow.from_agentspec(json_reference_laughs(2), model="offline")
    assert len(flow.steps) == 10 and len(flow.groups) == 1
    assert len(next(iter(flow.groups.values())).branches) == 10


def test_shared_components_within_the_limits_still_import() -> None:
    # a YAML alias used three times, and references to each node from several edges, are ordinary
    import yaml

    document = json.loads(Flow.from_source("a = llm('x {q}')\nb = llm('y {a}')\nc = llm('z {b}')\n").to_agentspec())
    nodes = [c for c in document["$referenced_components"].values() if "llm_config" in c]
    for node in nodes:
        node["llm_config"] = nodes[0]["llm_config"]  # one object: PyYAML writes an anchor and aliases
    text = yaml.safe_dump(document, sort_keys=False)
    assert text.count("*id001") == len(nodes) - 1 == 2
    flow = Flow.from_agentspec(text, model="offline")
    assert list(flow.steps) == ["a", "b", "c"]
    assert flow.run(q="?")["c"]


# -- linear time, and real flows inside the limits ------------------------------------------------------------
def _parse_seconds(text: str) -> float:
    """The quickest of three parses: what the parser costs, not what else the machine was doing."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        Flow.from_source(text)
        times.append(time.perf_counter() - started)
    return min(times)


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(lambda n: "x = '" + "a" * n + "'\n", id="a string literal"),
        pytest.param(lambda n: "a" * n + " = 1\n", id="a step name"),
        pytest.param(lambda n: "x = llm('" + "a" * n + " {t}')\n", id="a prompt"),
    ],
)
def test_a_10_mb_line_parses_in_linear_time(shape: Callable[[int], str]) -> None:
    # ast.get_source_segment rescans the text char by char: 19 s for 800 kB before
    small, big = (_parse_seconds(shape(n)) for n in (1_000_000, 10_000_000))
    assert big < 3.0, f"10 MB in {big:.2f}s"
    assert big < 30 * max(small, 0.01), f"1 MB in {small:.3f}s, 10 MB in {big:.3f}s"


@pytest.mark.parametrize(
    "unit",
    [
        pytest.param(lambda i: f"a{i}, ", id="names read in one step"),
        pytest.param(lambda i: f"{{a{i}}}", id="placeholders in one prompt"),
        pytest.param(lambda i: f"'é', a{i}, ", id="names on a line that is not ASCII"),
    ],
)
def test_many_names_on_one_line_parse_in_linear_time(unit: Callable[[int], str]) -> None:
    # each name's caret position used to re-encode (or re-search) the line from its start
    def text(n: int) -> str:
        body = "".join(unit(i) for i in range(n))
        return f"x = llm('{body}')\n" if body.startswith("{") else f"x = f({body})\n"

    small, big = (_parse_seconds(text(n)) for n in (2_000, 20_000))
    assert big < 30 * max(small, 0.01), f"2,000 in {small:.3f}s, 20,000 in {big:.3f}s"


def test_real_nesting_stays_well_inside_the_limits() -> None:
    brackets = "a = " + "[" * 20 + "1" + "]" * 20
    calls = "b = " + "f(" * 20 + "1" + ")" * 20
    chain = "c = " + " + ".join(["x"] * 50)
    lambdas = "d = (lambda p: lambda q: p + q)(1)(2)"
    text = "\n".join([brackets, calls, chain, lambdas, nested_blocks(10, "e = a")])
    flow = Flow.from_source(text, namespace={"f": lambda v: v + 1, "x": 2})
    outputs = flow.run()
    value: object = outputs["a"]
    for _ in range(20):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert (value, outputs["b"], outputs["c"], outputs["d"], outputs["e"]) == (1, 21, 100, 3, outputs["a"])


def test_each_limit_is_exactly_where_it_says() -> None:
    Flow.from_source("a = " + "-" * MAX_EXPRESSION_DEPTH + "1")
    Flow.from_source("a = " + "[" * MAX_EXPRESSION_DEPTH + "]" * MAX_EXPRESSION_DEPTH)
    Flow.from_source(nested_blocks(MAX_BLOCK_DEPTH))
    Flow.from_source(f"a = llm('{{x:>{MAX_FORMAT_WIDTH}}}')")
    for past in (
        "a = " + "-" * (MAX_EXPRESSION_DEPTH + 1) + "1",
        "a = " + "[" * (MAX_EXPRESSION_DEPTH + 1) + "]" * (MAX_EXPRESSION_DEPTH + 1),
        nested_blocks(MAX_BLOCK_DEPTH + 1),
        f"a = llm('{{x:>{MAX_FORMAT_WIDTH + 1}}}')",
    ):
        with pytest.raises((FlowSyntaxError, FlowDefinitionError)):
            Flow.from_source(past)


# -- the terminal and the notebook show the error, never a traceback ------------------------------------------
def flowmagic(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "flowmagic.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "name",
    ["a chain of 1,000 '+'", "330 nested parallel blocks", "a repeated keyword", "a step named __debug__"],
)
def test_check_prints_the_caret_and_no_traceback(tmp_path: Path, name: str) -> None:
    case = CELLS[name]
    (tmp_path / "bad.flow").write_text(case.build(), encoding="utf-8")
    result = flowmagic("check", "bad.flow", cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{case.error.__name__}:" in result.stderr and "^" in result.stderr
    assert case.where is not None
    line, _ = case.where(case.build())
    assert f'File "bad.flow", line {line}, column' in result.stderr


def test_check_says_where_a_file_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "bad.flow").write_bytes(b'a = 1\nb = "\xff"\n')
    result = flowmagic("check", "bad.flow", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "not UTF-8 text: line 2, column 6" in result.stderr


@pytest.mark.parametrize(
    "option",
    [
        ["--workers", "0"],
        ["--workers", "-1"],
        ["--timeout", "0"],
        ["--timeout", "-1"],
        ["--timeout", "nan"],
        ["--timeout", "inf"],
    ],
)
def test_bad_run_options_are_usage_errors(tmp_path: Path, option: list[str]) -> None:
    (tmp_path / "ok.flow").write_text("a = 1\n")
    result = flowmagic("run", "ok.flow", *option, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "ValidationError" not in result.stderr
    assert "usage:" in result.stderr and f"argument {option[0]}:" in result.stderr


@pytest.mark.parametrize("name", ["a chain of 1,000 '+'", "330 nested parallel blocks", "a template conversion !z"])
def test_the_magic_shows_a_hostile_cell_without_a_traceback(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    result = shell.run_cell("%%flow hostile\n" + CELLS[name].build())
    assert isinstance(result.error_in_exec, CELLS[name].error)
    out = capsys.readouterr().out
    assert "^" in out and "Traceback" not in out and "hostile" not in shell.user_ns


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_the_magic_refuses_a_timeout_that_is_not_a_number_of_seconds(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    from IPython.core.error import UsageError

    result = shell.run_cell(f"%%flow f --timeout {value}\na = 1\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert "--timeout must be" in str(result.error_in_exec)
    assert "Traceback" not in capsys.readouterr().out
