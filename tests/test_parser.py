"""The DSL: every valid form parses to the right steps, every mistake points at its line and column."""

from __future__ import annotations

import textwrap

import pytest

from flowmagic import Flow, FlowDefinitionError, FlowSyntaxError


def flow(text: str, **kw: object) -> Flow:
    return Flow.from_source(textwrap.dedent(text), name="t", **kw)


def error(text: str, kind: type[Exception] = FlowDefinitionError) -> Exception:
    with pytest.raises(kind) as info:
        flow(text)
    return info.value


def where(err: Exception) -> tuple[int, int]:
    """(line, 0-based column) of a flow error of either kind."""
    if isinstance(err, FlowSyntaxError):
        return err.lineno or 0, (err.offset or 1) - 1
    assert isinstance(err, FlowDefinitionError)
    return err.line, err.col


# -- valid forms ------------------------------------------------------------------


def test_steps_and_dependencies_from_names_and_placeholders() -> None:
    f = flow(
        """
        title = llm("A title about {topic}")
        n     = len(title)
        both  = llm("{title} has {n} letters", system="You count {n}")
        """
    )
    assert list(f.steps) == ["title", "n", "both"]
    assert f.steps["title"].kind == "llm" and f.steps["title"].deps == ()
    assert f.steps["n"].kind == "call" and f.steps["n"].deps == ("title",)
    assert set(f.steps["both"].deps) == {"title", "n"}
    assert f.inputs == ("topic",)


def test_forward_references_are_dependencies() -> None:
    f = flow("b = a + 1\na = 1\n")
    assert f.steps["b"].deps == ("a",)
    assert f.run()["b"] == 2


def test_parallel_group_with_name_workers_and_branches() -> None:
    f = flow(
        """
        parallel lookup (workers=2):
            x = f(1)
            branch web:
                hits  = f(2)
                notes = g(hits)
        total = g(lookup)
        """
    )
    group = f.groups["lookup"]
    assert group.named and group.workers == 2
    assert [b.name for b in group.branches] == ["x", "web"]
    assert group.branches[1].steps == ("hits", "notes")
    assert f.steps["notes"].branch == "web" and f.steps["notes"].group == "lookup"
    assert set(f.steps["total"].deps) == {"x", "hits", "notes"}


def test_group_value_is_dict_of_members_in_declaration_order() -> None:
    f = flow(
        """
        parallel info:
            b = 2
            a = 1
        both = info
        """
    )
    assert list(f.run()["both"].items()) == [("b", 2), ("a", 1)]


def test_unnamed_groups_get_distinct_names_and_nest_inside_branches() -> None:
    f = flow(
        """
        parallel:
            branch left:
                a = 1
                parallel:
                    b = a + 1
                    c = a + 2
            d = 4
        """
    )
    inner = f.steps["b"].group
    assert inner is not None and inner != f.steps["a"].group
    assert f.groups[inner].parent == f.steps["a"].group
    assert f.run().outputs == {"a": 1, "d": 4, "b": 2, "c": 3}


def test_map_with_condition_and_two_loops() -> None:
    f = flow(
        """
        xs    = [1, 2, 3, 4]
        evens = [x * 10 for x in xs if x % 2 == 0]
        pairs = [(a, b) for a in range(2) for b in "xy"]
        """
    )
    assert f.steps["evens"].kind == "map" and f.steps["evens"].deps == ("xs",)
    run = f.run()
    assert run["evens"] == [20, 40]
    assert run["pairs"] == [(0, "x"), (0, "y"), (1, "x"), (1, "y")]


def test_decorators_on_steps_and_blocks_and_stacked_on_one_line() -> None:
    f = flow(
        """
        @retries(3) @timeout(30)
        a = 1
        @cache(False)
        parallel:
            @timeout(5)
            b = 2
            c = 3
        @retries(2, backoff=0)
        d = 4
        """
    )
    assert (f.steps["a"].options.retries, f.steps["a"].options.timeout) == (3, 30.0)
    assert f.steps["b"].options.timeout == 5 and f.steps["b"].options.cache is False
    assert f.steps["c"].options.timeout is None and f.steps["c"].options.cache is False
    assert f.steps["d"].options.backoff == 0


def test_comments_blank_lines_and_line_continuation() -> None:
    f = flow(
        '''
        # a comment

        a = max(1,   # inside brackets
                2)
        b = llm("""A prompt
        over two lines about {a}""")  # trailing comment
        c = \\
            a + 1
        '''
    )
    assert list(f.steps) == ["a", "b", "c"]
    assert f.steps["b"].deps == ("a",)
    assert f.steps["c"].line == 8


def test_comprehension_and_lambda_variables_are_not_inputs() -> None:
    f = flow("a = sorted(xs, key=lambda v: -v)\nb = {k: v for k, v in zip(keys, a)}\n")
    assert set(f.inputs) == {"xs", "keys"}


def test_placeholders_with_attribute_and_index_access() -> None:
    f = flow('a = {"k": [5, 6]}\nb = llm("{a[k][1]} and {a}")\n')
    assert f.steps["b"].deps == ("a",)


def test_to_dot_is_deterministic_with_clusters() -> None:
    text = """
    a = 1
    parallel g:
        b = a
        branch w:
            c = a
            d = c
    e = g
    """
    first, second = flow(text).to_dot(), flow(text).to_dot()
    assert first == second
    assert 'subgraph "cluster_g"' in first and 'subgraph "cluster_g/w"' in first
    assert '"c" -> "d";' in first and '"a" -> "b";' in first
    assert first.index('subgraph "cluster_g/w"') < first.index('"c" [label=')


# -- syntax errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("a = f(1\n", 1, 5, "'(' was never closed"),
        ("a = 1\nb = [1,\n  2\n", 2, 4, "'[' was never closed"),
        ("a = 1 +\n", 1, 7, "invalid syntax"),
        ('a = """open\n', 1, 4, "unterminated triple-quoted string"),
        ("a = 1\n  b = 2\n", 2, 2, "unexpected indent"),
        ("parallel:\nb = 2\n", 1, 0, "expected an indented block after 'parallel'"),
        ("parallel foo bar:\n    b = 2\n", 1, 13, "expected 'parallel [NAME] [(workers=N)]:'"),
        ("branch:\n    b = 2\n", 1, 6, "expected 'branch NAME:'"),
        ("parallel\n", 1, 8, "expected ':'"),
        ("while x:\n    b = 2\n", 1, 0, "'while' loops are not part of a flow"),
        ("a = 1 )\n", 1, 6, "unmatched ')'"),
    ],
)
def test_syntax_errors_point_at_line_and_column(text: str, line: int, col: int, message: str) -> None:
    err = error(text, FlowSyntaxError)
    assert isinstance(err, SyntaxError)
    assert where(err) == (line, col)
    assert message in str(err)


# -- definition errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("a = 1\na = 2\n", 2, 0, "step 'a' is already defined on line 1"),
        ("a = b\nb = a\n", 2, 0, "cycle: a -> b -> a"),
        ("a = a + 1\n", 1, 4, "reads itself"),
        ("parallel:\n    a = 1\n    b = a\n", 3, 4, "'b' depends on 'a' (line 2)"),
        ("parallel g:\n    a = 1\n    b = g\n", 3, 8, "cannot read it"),
        ("parallel g:\n    a = 1\ng = 2\n", 1, 9, "group 'g' has the same name as the step on line 3"),
        ("@retrys(3)\na = 1\n", 1, 1, "unknown option '@retrys'. Did you mean 'retries'?"),
        ("@retries(-1)\na = 1\n", 1, 1, "@retries takes a whole number"),
        ("@timeout(0)\na = 1\n", 1, 1, "@timeout takes a number of seconds above 0"),
        ("@cache(1)\na = 1\n", 1, 1, "@cache reuses the step's value, @cache(False) never does"),
        ("@retries(3)\n", 1, 1, "must be followed by a step"),
        ("parallel (worker=2):\n    a = 1\n", 1, 10, "Did you mean 'workers'?"),
        ("parallel (workers=0):\n    a = 1\n", 1, 18, "workers must be a whole number"),
        ("f(1)\n", 1, 0, "a step needs a name"),
        ("a, b = 1, 2\n", 1, 0, "exactly one name"),
        ("a += 1\n", 1, 0, "'name = expression'"),
        ("import os\n", 1, 0, "only steps"),
        ("branch b:\n    a = 1\n", 1, 7, "'branch' belongs directly inside a 'parallel' block"),
        ("llm = 1\n", 1, 0, "'llm' is a keyword"),
        ('a = llm("x", temprature=0)\n', 1, 13, "Did you mean 'temperature'?"),
        ('a = llm("x", "y")\n', 1, 13, "llm() takes one prompt template"),
        ('a = llm("{x.__class__}")\n', 1, 8, "dunder"),
        ('a = llm("{0}")\n', 1, 8, "placeholders must name a value"),
        ("a = (b := 2)\n", 1, 5, "':=' is not allowed"),
        ("parallel g:\n    a = 1\nparallel g:\n    b = 1\n", 3, 9, "group 'g' is already defined on line 1"),
    ],
)
def test_definition_errors_point_at_line_and_column(text: str, line: int, col: int, message: str) -> None:
    err = error(text)
    assert where(err) == (line, col), str(err)
    assert message in str(err)
    assert "^" in str(err).splitlines()[-1]


def test_unknown_name_is_found_before_anything_runs_with_did_you_mean() -> None:
    ran: list[str] = []
    f = flow("a = record('a')\nb = fetch_usr(a)\n", namespace={"record": ran.append, "fetch_user": len})
    with pytest.raises(FlowDefinitionError) as info:
        f.run()
    assert "name 'fetch_usr' is not defined" in str(info.value)
    assert "Did you mean 'fetch_user'?" in str(info.value)
    assert (info.value.line, info.value.col) == (2, 4)
    assert ran == []


def test_unknown_placeholder_points_inside_the_template() -> None:
    f = flow('a = llm("Say hi to {usr}")\n')
    with pytest.raises(FlowDefinitionError) as info:
        f.run(user="Ada")
    assert (info.value.line, info.value.col) == (1, 19)
    assert "Did you mean 'user'?" in str(info.value)


def test_step_names_cannot_be_passed_as_inputs() -> None:
    with pytest.raises(FlowDefinitionError, match="is a step of this flow"):
        flow("a = 1\n").run(a=2)


def test_caret_is_under_the_offending_text() -> None:
    with pytest.raises(FlowDefinitionError) as info:
        flow("a = 1\n    # indented comment\nb = nope +  1\n").run()
    *_, source, caret = str(info.value).splitlines()
    assert source == "    b = nope +  1"
    assert caret == "        ^^^^"


def test_errors_are_exceptions_of_the_documented_kinds() -> None:
    assert issubclass(FlowSyntaxError, SyntaxError)
    assert issubclass(FlowDefinitionError, ValueError)
