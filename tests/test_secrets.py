"""Secrets and hostile text: a planted API key shows up in no output; templates and flow files run nothing.

A fake key is planted where a user's key lives (``OPENAI_API_KEY``) and where a
server may echo it back (a 401's message quotes it, a proxy's 500 quotes the
Authorization header). Flows then succeed and fail against the local server
through the real ``openai`` client, and every output is scanned for the key and
for "Authorization" / "Bearer": ``Run.to_json()``, the summary, the static HTML
and the live widget's values, every error's text and traceback (its whole
chain), the events, logs of every logger at DEBUG (the SDK's and the HTTP
client's too), ``%flow config`` and ``%config FlowMagics``, history and diff,
the on-disk cache, and the command line's output and JSON.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from llm_server import LLMServer, default_answer, last_prompt, llm_server_fixture
from pydantic import BaseModel

from flowmagic import Flow
from flowmagic.engine import events as ev
from flowmagic.engine.cache import default_cache
from flowmagic.engine.record import Run, format_error
from flowmagic.engine.runner import run_blocking
from flowmagic.errors import FlowDefinitionError, FlowError
from flowmagic.llm.openai_provider import OpenAIProvider
from flowmagic.llm.template import TemplateError, render
from flowmagic.view.picture import run_html
from flowmagic.view.widget import FlowView

KEY = "sk-flowmagic-test-SECRET123"
ROOT = Path(__file__).resolve().parents[1]

server = pytest.fixture(llm_server_fixture, name="server")


class Person(BaseModel):
    name: str
    age: int


def answer(body: dict[str, Any]) -> str:
    if last_prompt(body).startswith("[schema]"):
        return '{"name": "Ada", "age": "very old"}'  # does not validate
    return default_answer(body)


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch, server: LLMServer) -> LLMServer:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.answer = answer
    return server


def plant_failures(server: LLMServer) -> None:
    """Errors whose server messages quote the key, as real servers and proxies do."""
    server.fail_next(401, message=f"Incorrect API key provided: {KEY}.", match="[401]", times=2)
    server.fail_next(500, retry_after=0.01, message=f"upstream refused the key {KEY}", match="[500]", times=6)
    server.fail_next(429, retry_after=0.01, message=f"rate limited for key {KEY}", match="[429]", times=6)
    # no view watches in a plain shell, so answers come whole: dropped before any byte, and the SDK
    # retries that twice, on each of the step's two attempts
    server.fail_next(drop=True, match="[drop]", times=6)


FLOW = """\
topic_line = "about " + topic
title = llm("A title {topic_line}")
person = llm("A person in {title}", schema=Person)
@retries(1, backoff=0.01)
parallel:
    denied = llm("[401] {title}")
    broken = llm("[500] {title}")
    limited = llm("[429] {title}")
    dropped = llm("[drop] {title}")
    invalid = llm("[schema] {title}", schema=Person)
after = llm("Summarise {denied}")
"""


def leaks(text: str) -> list[str]:
    """What of the secret ``text`` shows: the key itself, or an Authorization header's words."""
    lowered = text.lower()
    return [word for word in (KEY, "authorization", "bearer") if word.lower() in lowered]


def error_texts(error: BaseException) -> list[str]:
    """Every way an error can be shown: str, repr, the formatted traceback, and its whole chain,
    even the parts a traceback hides (``__suppress_context__``)."""
    texts = [str(error), repr(error), format_error(error), "".join(traceback.format_exception(error))]
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), repr(vars(current))]
        current = current.__cause__ or current.__context__
    return texts


def bundle_texts(captured: Any) -> list[str]:
    texts = [captured.stdout, captured.stderr]
    for output in captured.outputs:
        texts += [str(v) for v in output.data.values()]
    return texts


def view_texts(run: Run) -> list[str]:
    """The live widget's values once the run is over, with every step chosen in the detail."""
    assert run.shape is not None
    view = FlowView(run, run.shape)
    view.finish()
    texts = [view.status.value, view.dag.value, view.timeline.value, json.dumps(view.mimebundle(), default=str)]
    for name in view.select.options:
        view.select.value = name
        texts.append(view.detail.value)
    return texts


def run_texts(run: Run) -> list[str]:
    texts = [run.to_json(), run.summary(), repr(run), run_html(run), *run.show()._repr_mimebundle_().values()]
    texts += view_texts(run)
    for record in run.steps.values():
        texts.append(json.dumps(record.to_dict(), default=repr))
        if record.error is not None:
            texts += error_texts(record.error)
    return texts


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG, the SDK's and its HTTP client's included."""
    names = ["", "openai", "httpx", "httpcore", "httpx2", "httpcore2", "flowmagic", "asyncio"]
    for name in names:
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


def test_a_planted_key_shows_in_no_output_of_runs_that_succeed_and_fail(
    shell: InteractiveShell,
    keyed: LLMServer,
    debug_logs: pytest.LogCaptureFixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # %flow config cache_dir=... sets the process's cache directory, and unloading the
    # extension does not reset it: put it back after the test
    monkeypatch.setattr(default_cache, "directory", None)
    texts: list[str] = []
    shell.user_ns.update(topic="tea", Person=Person)
    with capture_output() as captured:
        shell.run_line_magic("flow", f"config model=gpt-4o-mini cache_dir={tmp_path / 'cache'}")
        shell.run_line_magic("config", "FlowMagics")
        shell.run_line_magic("flow", "config")
    texts += bundle_texts(captured)
    shown = "\n".join(texts)
    assert "API key" in shown and "never shown" in shown and "Current: 32" in shown  # the outputs are there

    runs: list[Run] = []
    for topic in ("tea", "coffee"):  # two runs, so history and diff have something to compare
        plant_failures(keyed)
        shell.user_ns["topic"] = topic
        with capture_output() as captured:
            assert shell.run_cell_magic("flow", "secret", FLOW) is None
        texts += bundle_texts(captured)
        run = shell.user_ns["secret"].last
        runs.append(run)
        texts += run_texts(run)
    with capture_output() as captured:
        shell.run_line_magic("flow", "history secret")
        shell.run_line_magic("flow", "diff secret")
        shell.run_line_magic("flow", "show secret")
    texts += bundle_texts(captured)

    run = runs[-1]
    statuses = {n: r.status for n, r in run.steps.items()}
    assert statuses == {
        "topic_line": "succeeded",
        "title": "succeeded",
        "person": "succeeded",
        "denied": "failed",
        "broken": "failed",
        "limited": "failed",
        "dropped": "failed",
        "invalid": "failed",
        "after": "skipped",
    }
    assert "Incorrect API key provided: ***" in str(run.steps["denied"].error)  # the message, redacted
    assert "very old" in str(run.steps["invalid"].error)  # a schema failure still shows its raw answer
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in keyed.chat_requests)  # it was sent

    # the run's events, as an observer sees them
    flow = Flow.from_source(FLOW, name="events", namespace={"topic": "tea", "Person": Person}, cache=False)
    events: list[ev.Event] = []
    plant_failures(keyed)
    texts += run_texts(run_blocking(flow.execution(observers=[events.append])))
    for event in events:
        texts.append(repr(event))
        if event.error is not None:
            texts += error_texts(event.error)

    cache_files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert cache_files  # the answers of the steps that succeeded are on disk
    texts += [p.read_bytes().decode("latin-1") for p in cache_files]
    texts += [record.getMessage() for record in debug_logs.records] + [debug_logs.text]
    assert any(record.name.startswith(("openai", "httpx")) for record in debug_logs.records)  # logs were on
    texts.append(repr(OpenAIProvider()))

    found = {word for text in texts for word in leaks(text)}
    assert not found, [text[:300] for text in texts if leaks(text)][:3]


def test_the_command_line_shows_no_key(keyed: LLMServer, tmp_path: Path) -> None:
    flow_file = tmp_path / "secret.flow"
    flow_file.write_text('title = llm("A title")\ndenied = llm("[401] {title}")\n', encoding="utf-8")
    out = tmp_path / "run.json"
    plant_failures(keyed)
    env = {"OPENAI_BASE_URL": keyed.base_url, "OPENAI_API_KEY": KEY, "PYTHONPATH": str(ROOT), "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-m", "flowmagic.cli", "run", str(flow_file), "--model", "gpt-4o-mini", "--json", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr  # a step failed
    assert "Incorrect API key provided: ***" in result.stdout + result.stderr
    for text in (result.stdout, result.stderr, out.read_text(encoding="utf-8")):
        assert not leaks(text), text


def test_a_server_quoting_the_authorization_header_gets_the_key_redacted(keyed: LLMServer) -> None:
    keyed.fail_next(500, retry_after=0.01, message=f"proxy refused 'Authorization: Bearer {KEY}'", times=3)
    run = Flow.from_source('a = llm("hi")', name="echoed", cache=False).run()
    for text in run_texts(run):
        assert KEY not in text
    assert "proxy refused 'Authorization: Bearer ***'" in str(run.steps["a"].error)


def shout(text: str) -> str:
    return text.upper()


EXPORTABLE = """\
loud = shout(topic)
title = llm("A title about {loud}")
parallel:
    a = llm("x {title}")
    b = llm("y {title}")
"""


def test_exports_hold_no_key_and_loading_one_runs_only_the_tools_given(keyed: LLMServer) -> None:
    flow = Flow.from_source(EXPORTABLE, name="exported", namespace={"shout": shout, "topic": "tea"}, model="m")
    exports = [flow.to_agentspec("json"), flow.to_agentspec("yaml")]
    assert keyed.base_url in exports[0]  # the server is named, its key is not
    for text in exports:
        assert not leaks(text), text
    calls: list[str] = []

    def spy(text: str) -> str:
        calls.append(text)
        return text.upper()

    loaded = Flow.from_agentspec(exports[0], tools={"shout": spy}, model="offline")
    loaded.execution({"topic": "tea"})  # prepared, nothing run
    assert calls == []
    assert loaded.run(topic="tea")["loud"] == "TEA" and calls == ["tea"]  # the one tool given, and only it
    document = json.loads(exports[0])
    tool = document["$referenced_components"]["ToolNode:loud"]["tool"]
    for name in ("__import__", "eval", "os.system", "exec"):
        tool["name"] = name
        with pytest.raises(FlowError, match="not among the tools given"):
            Flow.from_agentspec(json.dumps(document), tools={"shout": spy}, model="offline")
    tool["name"] = "shout"
    document["$referenced_components"]["LlmNode:title"]["prompt_template"] = "A title about {{loud.__class__}}"
    with pytest.raises(FlowError, match="__class__"):  # refused, naming what it refuses
        Flow.from_agentspec(json.dumps(document), tools={"shout": spy}, model="offline")
    assert calls == ["tea"]


# -- templates cannot reach dunders ------------------------------------------------------------


class Thing:
    secret = "dunder-free"

    def __init__(self) -> None:
        self.items = [self]


@pytest.mark.parametrize(
    "template",
    [
        "{x.__class__}",
        "{x.__init__.__globals__}",
        "{x[__class__]}",
        "{x['__dict__']}",
        "{x.items[0].__class__}",
        "{x.secret:{x.__class__}}",
        "{__builtins__}",
    ],
)
def test_templates_cannot_reach_dunders(template: str) -> None:
    with pytest.raises(TemplateError, match="dunder"):
        render(template, {"x": Thing(), "__builtins__": __builtins__})
    with pytest.raises(FlowDefinitionError, match=r"dunder|nested placeholders") as caught:
        Flow.from_source(f'a = llm("{template}")', namespace={"x": Thing()})
    assert caught.value.line == 1 and caught.value.col >= 8  # the caret is on the template, not the step
    with pytest.raises(FlowDefinitionError, match=r"dunder|nested placeholders"):
        Flow.from_source(f'a = llm("hi", system="{template}")', namespace={"x": Thing()})


def test_plain_placeholders_still_render() -> None:
    assert render("{x.secret} {x.items[0].secret}", {"x": Thing()}) == "dunder-free dunder-free"


def test_a_prompt_built_at_run_time_is_sent_as_it_is(keyed: LLMServer) -> None:
    # only literal templates are rendered: text made by a step is never formatted
    flow = Flow.from_source('made = "{x.__class__} " + word\na = llm(made)\n', namespace={"word": "hi"}, cache=False)
    run = flow.run()
    assert run["a"] == "echo: {x.__class__} hi"
    assert keyed.chat_requests[0].prompt == "{x.__class__} hi"


# -- loading a flow file runs nothing -----------------------------------------------------------


def hostile_flow(markers: Path) -> str:
    """A flow whose steps would leave a marker file if any of them ran."""
    return (
        f'imported = __import__("pathlib").Path("{markers / "import"}").write_text("ran")\n'
        f'opened = open("{markers / "open"}", "w").write("ran")\n'
        f'shelled = __import__("os").system("touch {markers / "shell"}")\n'
        f'code = eval(compile("open(\'{markers / "eval"}\', \'w\')", "x", "eval"))\n'
        'told = llm("{imported} {opened} {shelled} {code}")\n'
    )


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "", "FLOWMAGIC_OFFLINE_LATENCY": "0"}
    return subprocess.run(
        [sys.executable, "-m", "flowmagic.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_checking_drawing_and_preparing_a_flow_file_runs_none_of_its_code(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    flow_file = tmp_path / "hostile.flow"
    flow_file.write_text(hostile_flow(markers), encoding="utf-8")
    assert cli("check", str(flow_file)).returncode == 0
    assert cli("graph", str(flow_file), "-o", str(tmp_path / "dag.svg")).returncode == 0
    assert cli("graph", str(flow_file), "-o", str(tmp_path / "dag.dot")).returncode == 0
    flow = Flow.from_source(flow_file.read_text(encoding="utf-8"), name="hostile")
    flow.show()._repr_mimebundle_()
    flow.to_dot()
    flow.execution()  # resolves every name and computes the cache keys, but runs nothing
    assert (tmp_path / "dag.svg").is_file() and list(markers.iterdir()) == []


def test_a_flow_file_reaches_only_the_names_passed_in(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    flow_file = tmp_path / "hostile.flow"
    # the first step would write a marker; the second needs `os`, which nobody passed in
    flow_file.write_text(
        f'first = __import__("pathlib").Path("{markers / "first"}").write_text("ran")\n'
        f'second = os.system("touch {markers / "second"}")\n',
        encoding="utf-8",
    )
    result = cli("run", str(flow_file))
    assert result.returncode == 2
    assert "name 'os' is not defined" in result.stderr and "--set NAME=VALUE or --tools FILE.py" in result.stderr
    # --set values are literals, never code
    value = f"__import__('os').system('touch {markers / 'set'}')"
    flow_file.write_text("echo = str(value)\n", encoding="utf-8")
    result = cli("run", str(flow_file), "--set", f"value={value}", "--quiet")
    assert result.returncode == 0 and value in result.stdout
    assert list(markers.iterdir()) == []
