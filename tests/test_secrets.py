"""Secrets and hostile text: planted secrets show up in no output; templates and flow files run nothing.

Fake secrets are planted where a user's live: an API key in ``OPENAI_API_KEY``,
a key in the base URL's query string, and a password in its userinfo (or, in
the "query" variant, a second query value). The local server echoes them back
as careless servers and proxies do: whole, less their last character, split
across a sentence, in error messages, as the model's name, and as the answer's
``usage.prompt_tokens``. Flows then succeed and fail against it through the
real ``openai`` client (on aiohttp, or on the SDK's default transport when the
URL has a userinfo), and every output is scanned for any 8 characters in a row
of any planted secret (the redaction's run length) and for an Authorization
header or Bearer token that is not redacted: ``Run.to_json()``, the summary,
reprs of the run and its steps, the static HTML and the live widget's values
and state, every error's text and traceback (its whole chain), the events,
logs of every logger at DEBUG (the SDK's and the HTTP clients' too),
``%flow config`` and ``%config FlowMagics``, history and diff, every file of the
on-disk cache, Agent Spec exports, and the command line's output and JSON.
"""

from __future__ import annotations

import base64
import json
import logging
import re
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
from flowmagic.engine.history import default_history
from flowmagic.engine.record import Run, format_error
from flowmagic.engine.runner import run_blocking
from flowmagic.errors import FlowDefinitionError, FlowError, FlowFailed
from flowmagic.llm.openai_provider import OpenAIProvider
from flowmagic.llm.template import TemplateError, render
from flowmagic.view.picture import run_html
from flowmagic.view.widget import FlowView

KEY = "sk-proj-Q7vXb2LmZ9tRw4KpN8cYdH3s"  # the API key, in OPENAI_API_KEY
QUERY_KEY = "qk-5TgB1nM6sR0aW3eY8uJ4xC7v"  # in the base URL's query string, as api-key=
URL_SECRET = "pw-H2kD9fL4pQ6zV1bN7mX3cR8t"  # the base URL's userinfo password, or its sig= query value
RUN = 8  # any this many characters in a row of a secret count as showing it
ROOT = Path(__file__).resolve().parents[1]

server = pytest.fixture(llm_server_fixture, name="server")


class Person(BaseModel):
    name: str
    age: int


ECHO = "Your key {} works. The query said {}, then {}. The password ends {}."


def answer(body: dict[str, Any]) -> str:
    prompt = last_prompt(body)
    if prompt.startswith("[schema]"):
        return '{"name": "Ada", "age": "very old"}'  # does not validate
    if prompt.startswith("[echo]"):  # the key less its last character, a key split across a sentence
        return ECHO.format(KEY[:-1], QUERY_KEY[:12], QUERY_KEY[12:], URL_SECRET[3:])
    return default_answer(body)


def planted_url(server: LLMServer, where: str) -> str:
    """The server's base URL with QUERY_KEY in its query, and URL_SECRET in its userinfo or query."""
    host, port = server.address
    if where == "userinfo":
        return f"http://flow:{URL_SECRET}@{host}:{port}/v1?api-key={QUERY_KEY}"
    return f"http://{host}:{port}/v1?api-key={QUERY_KEY}&sig={URL_SECRET}"


def shown_url(server: LLMServer, where: str) -> str:
    """How the planted URL may be shown: userinfo password and query values masked."""
    host, port = server.address
    if where == "userinfo":
        return f"http://flow:***@{host}:{port}/v1?api-key=***"
    return f"http://{host}:{port}/v1?api-key=***&sig=***"


@pytest.fixture(params=["query", "userinfo"])
def where(request: pytest.FixtureRequest) -> str:
    """Where URL_SECRET is planted: a query value (sent by aiohttp), or the userinfo password
    (sent, by the SDK's default transport, as Basic auth in place of the key)."""
    return str(request.param)


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch, server: LLMServer, where: str) -> LLMServer:
    monkeypatch.setenv("OPENAI_BASE_URL", planted_url(server, where))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.answer = answer
    server.usage_fields = {"prompt_tokens": f"Bearer {KEY}"}  # a 200 whose usage carries the key
    server.head_fields = {"model": KEY[:-1]}  # and whose model name echoes it
    return server


def sent_credentials(where: str) -> tuple[str, dict[str, str]]:
    """The Authorization header and query every chat request carries."""
    if where == "userinfo":
        return "Basic " + base64.b64encode(f"flow:{URL_SECRET}".encode()).decode(), {"api-key": QUERY_KEY}
    return f"Bearer {KEY}", {"api-key": QUERY_KEY, "sig": URL_SECRET}


def plant_failures(server: LLMServer) -> None:
    """Errors whose server messages quote the secrets, whole and in part, as real servers and proxies do."""
    server.fail_next(401, message=f"Incorrect API key provided: {KEY[:-1]}.", match="[401]", times=2)
    refused = f"proxy refused 'Authorization: Bearer {KEY}' for ?api-key={QUERY_KEY[1:]}"
    server.fail_next(500, retry_after=0.01, message=refused, match="[500]", times=6)
    limited = f"rate limited for key {KEY[3:]} (sig {URL_SECRET[:-1]})"
    server.fail_next(429, retry_after=0.01, message=limited, match="[429]", times=6)
    # no view watches in a plain shell, so answers come whole: dropped before any byte, and the SDK
    # retries that twice, on each of the step's two attempts
    server.fail_next(drop=True, match="[drop]", times=6)


FLOW = """\
topic_line = "about " + topic
title = llm("A title {topic_line}")
echoed = llm("[echo] {title}")
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

SECRET_RUNS = {secret[i : i + RUN] for secret in (KEY, QUERY_KEY, URL_SECRET) for i in range(len(secret) - RUN + 1)}
# an Authorization header or Bearer token with a value (any token, even one nobody planted) other than ***
HEADER_VALUE = re.compile(
    r"(?i)(?:authorization\W{1,4}(?:(?:bearer|basic)\s{1,4})?|bearer\s{1,4})(?!\*\*\*)[A-Za-z0-9._~+/=-]{8,}"
)


def leaks(text: str) -> list[str]:
    """What of the secrets ``text`` shows: any RUN characters in a row of one, or the value of
    an Authorization header or Bearer token."""
    return sorted(run for run in SECRET_RUNS if run in text) + HEADER_VALUE.findall(text)


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
    """The live widget's values and state once the run is over, with every step chosen in the detail."""
    assert run.shape is not None
    view = FlowView(run, run.shape)
    view.finish()
    widget = view.widget
    texts = [json.dumps(widget.get_state(), default=str), json.dumps(view.mimebundle(), default=str)]
    details = json.loads(widget.details)
    texts += list(details.values())  # what a click on each step shows, map elements too
    assert set(details) == set(run.steps) or len(run.steps) > 200
    texts.append(json.dumps(view.final_bundle(), default=str))
    return texts


def run_texts(run: Run) -> list[str]:
    texts = [run.to_json(), run.summary(), repr(run), run_html(run), *run.show()._repr_mimebundle_().values()]
    texts += view_texts(run)
    for record in run.steps.values():
        texts += [json.dumps(record.to_dict(), default=repr), repr(record)]
        if record.error is not None:
            texts += error_texts(record.error)
    return texts


def check_tokens(run: Run) -> None:
    """The server's prompt_tokens (the key, as text) was dropped; its completion tokens kept and summed."""
    infos = [r.llm for r in run.steps.values() if r.status == "succeeded" and r.llm is not None]
    assert infos and all(i["prompt_tokens"] is None and type(i["completion_tokens"]) is int for i in infos)
    assert all(i["usage_note"].startswith("prompt_tokens dropped") for i in infos), infos  # and the record says so
    prompt, completion = run.tokens
    assert prompt == 0 and completion == sum(i["completion_tokens"] for i in infos) > 0
    assert json.loads(run.to_json())["tokens"] == {"prompt": 0, "completion": completion}
    assert f"tokens 0 in, {completion:,} out" in run.summary()


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG, the SDK's and its HTTP clients' included."""
    names = ["", "openai", "httpx", "httpcore", "httpx2", "httpcore2", "aiohttp", "flowmagic", "asyncio"]
    for name in names:
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


def test_planted_secrets_show_in_no_output_of_runs_that_succeed_and_fail(
    shell: InteractiveShell,
    keyed: LLMServer,
    where: str,
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
    assert f"base URL   {shown_url(keyed, where)} (OPENAI_BASE_URL)" in shown  # the server, not its secrets

    runs: list[Run] = []
    for topic in ("tea", "coffee"):  # two runs, so history and diff have something to compare
        plant_failures(keyed)
        shell.user_ns["topic"] = topic
        with capture_output() as captured:
            failed = shell.run_cell("%%flow secret\n" + FLOW).error_in_exec
        assert isinstance(failed, FlowFailed)  # the run failed, so its cell fails, in short
        texts += bundle_texts(captured) + failed._render_traceback_()
        run = shell.user_ns["secret"].last
        runs.append(run)
        texts += run_texts(run)
    with capture_output() as captured:
        shell.run_line_magic("flow", "history secret")
        shell.run_line_magic("flow", "diff secret")
        shell.run_line_magic("flow", "show secret")
    texts += bundle_texts(captured)
    texts.append(repr(default_history.entries("secret")))

    run = runs[-1]
    statuses = {n: r.status for n, r in run.steps.items()}
    assert statuses == {
        "topic_line": "succeeded",
        "title": "succeeded",
        "echoed": "succeeded",
        "person": "succeeded",
        "denied": "failed",
        "broken": "failed",
        "limited": "failed",
        "dropped": "failed",
        "invalid": "failed",
        "after": "skipped",
    }
    # the server did echo the secrets, and what it said is kept with each of them replaced
    assert run["echoed"] == ECHO.format("***", "***", "***", "***")
    assert str(run.steps["denied"].error).endswith("Incorrect API key provided: ***.")
    assert "proxy refused 'Authorization: Bearer ***' for ?api-key=***" in str(run.steps["broken"].error)
    assert "rate limited for key *** (sig ***)" in str(run.steps["limited"].error)
    assert "very old" in str(run.steps["invalid"].error)  # a schema failure still shows its raw answer
    check_tokens(run)
    authorization, query = sent_credentials(where)
    sent = [{k.lower(): v for k, v in r.headers.items()}["authorization"] for r in keyed.chat_requests]
    assert set(sent) == {authorization}  # they were sent
    assert all(r.query == query for r in keyed.chat_requests)

    # the run's events, as an observer sees them (answers stream then, as they do to a view)
    flow = Flow.from_source(FLOW, name="events", namespace={"topic": "tea", "Person": Person}, cache=False)
    events: list[ev.Event] = []
    plant_failures(keyed)
    watched = run_blocking(flow.execution(observers=[events.append]))
    assert watched["echoed"] == ECHO.format("***", "***", "***", "***") and keyed.chat_requests[-1].body["stream"]
    check_tokens(watched)
    texts += run_texts(watched)
    for event in events:
        texts.append(repr(event))
        if event.error is not None:
            texts += error_texts(event.error)

    assert default_history.archive is not None
    default_history.archive.flush()  # the runs kept beside the cache are written, and read below too
    cache_files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert cache_files  # the answers of the steps that succeeded are on disk
    texts += [p.read_bytes().decode("latin-1") for p in cache_files]
    texts += [record.getMessage() for record in debug_logs.records] + [debug_logs.text]
    requests = [r.getMessage() for r in debug_logs.records if r.name.startswith("httpx")]
    assert any("/v1/chat/completions?api-key=***" in message for message in requests)  # the URL was logged
    texts.append(repr(OpenAIProvider()))

    found = {word for text in texts for word in leaks(text)}
    assert not found, [text[:300] for text in texts if leaks(text)][:3]


def test_the_command_line_shows_no_secret(keyed: LLMServer, where: str, tmp_path: Path) -> None:
    flow_file = tmp_path / "secret.flow"
    flow_file.write_text('title = llm("A title")\necho = llm("[echo]")\ndenied = llm("[401] {title}")\n')
    out = tmp_path / "run.json"
    plant_failures(keyed)
    env = {"OPENAI_BASE_URL": planted_url(keyed, where), "OPENAI_API_KEY": KEY, "PYTHONPATH": str(ROOT), "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-m", "flowmagic.cli", "run", str(flow_file), "--model", "gpt-4o-mini", "--json", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr  # a step failed
    assert "Incorrect API key provided: ***" in result.stdout + result.stderr
    written = out.read_text(encoding="utf-8")
    assert ECHO.format("***", "***", "***", "***") in written  # the echo was there, redacted
    for text in (result.stdout, result.stderr, written):
        assert not leaks(text), text


def test_a_server_quoting_the_authorization_header_gets_the_key_redacted(keyed: LLMServer) -> None:
    keyed.fail_next(500, retry_after=0.01, message=f"proxy refused 'Authorization: Bearer {KEY}'", times=3)
    run = Flow.from_source('a = llm("hi")', name="echoed", cache=False).run()
    for text in run_texts(run):
        assert not leaks(text), text
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


def test_exports_hold_no_secret_and_loading_one_runs_only_the_tools_given(keyed: LLMServer, where: str) -> None:
    flow = Flow.from_source(EXPORTABLE, name="exported", namespace={"shout": shout, "topic": "tea"}, model="m")
    exports = [flow.to_agentspec("json"), flow.to_agentspec("yaml")]
    host, port = keyed.address
    # the server is named, without its userinfo, its query's names kept and values masked
    assert json.loads(exports[0])["$referenced_components"]["LlmNode:title"]["llm_config"]["url"] == (
        f"http://{host}:{port}/v1?api-key=***" + ("&sig=***" if where == "query" else "")
    )
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
