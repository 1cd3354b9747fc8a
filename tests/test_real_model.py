"""The real-model tier: flowmagic against llama-cpp-python's own server running SmolLM2-135M.

The server is nobody's here: it serves one request at a time, cuts off the stream being
generated when another request arrives (its default, ``--interrupt_requests``), takes
``response_format`` ``text`` or ``json_object`` only, and sends no usage in its streams. Every
run here has an observer attached, as the view does, so its answers stream. The server starts
once per module and per mode; nothing here skips (see :mod:`real_model`).
"""

from __future__ import annotations

import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from kernel_helpers import Kernel, interrupt_now, kernel_session
from pydantic import BaseModel
from real_model import MODEL, LlamaServer, llama_server

from flowmagic import Flow
from flowmagic.engine import events as ev
from flowmagic.engine.runner import run_blocking
from flowmagic.llm.openai_provider import LLMTruncated

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The server answering requests one after another, none cut off."""
    with llama_server(tmp_path_factory.mktemp("llama"), interrupt_requests=False) as server:
        yield server


@pytest.fixture(scope="module")
def interrupting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The server as it starts by default: a new request cuts off the stream being generated."""
    with llama_server(tmp_path_factory.mktemp("llama"), interrupt_requests=True) as server:
        yield server


def use(monkeypatch: pytest.MonkeyPatch, server: LlamaServer) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def watched(flow: Flow, **inputs: Any) -> tuple[Any, list[ev.Event]]:
    """Run ``flow`` with an observer attached (answers stream, as under the view); its events."""
    events: list[ev.Event] = []
    run = run_blocking(flow.execution(inputs, observers=[events.append], cache=False))
    return run, events


def test_the_soundtrack_flow_streams_whole_answers_and_counts_tokens(
    monkeypatch: pytest.MonkeyPatch, serving: LlamaServer
) -> None:
    use(monkeypatch, serving)
    source = (EXAMPLES / "soundtrack.flow").read_text().replace('")', '", max_tokens=48)')
    flow = Flow.from_source(source, name="soundtrack", model=MODEL)
    run, events = watched(flow, topic="space cats")
    assert run.status == "succeeded", run.summary()
    assert all(isinstance(r, str) and r.strip() for r in run["reviews"]) and len(run["reviews"]) == 5
    assert run["title"].strip() and run["lyrics"].strip()
    assert any(e.kind == ev.TEXT for e in events)  # it streamed
    prompt, completion = run.tokens
    assert prompt > 0 and completion > 0  # counted: the server's streams carry no usage
    assert run.steps["title"].llm["tokens_estimated"] is True
    assert run.steps["title"].llm["model"] == MODEL
    # one request at a time: the critics queued behind each other, and the speed-up says so
    assert len([n for n in run.queued() if n.startswith("reviews[")]) >= 4
    assert run.speedup is not None and run.speedup < 1.3, (run.speedup, run.step_time, run.wall_time)


def test_the_marketing_flow_runs_its_tools_and_one_llm_step(
    monkeypatch: pytest.MonkeyPatch, serving: LlamaServer
) -> None:
    use(monkeypatch, serving)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import marketing_tools

    tools = {n: getattr(marketing_tools, n) for n in dir(marketing_tools) if n.startswith("get_")}
    source = (EXAMPLES / "marketing.flow").read_text().replace('""")', '""", max_tokens=64)')
    flow = Flow.from_source(source, name="marketing", model=MODEL, namespace=tools)
    run, _ = watched(flow, username="alice")
    assert run.status == "succeeded", run.summary()
    assert run["message"].strip() and "Alice" in run.steps["message"].llm["prompt"]


class Review(BaseModel):
    verdict: Literal["good", "bad"]
    stars: int


def test_schema_returns_a_validated_instance_from_a_server_without_json_schema(
    monkeypatch: pytest.MonkeyPatch, serving: LlamaServer
) -> None:
    use(monkeypatch, serving)
    flow = Flow.from_source(
        'first = llm("Review the song Yellow Submarine.", schema=Review, max_tokens=40)\n'
        'second = llm("Review the song Hey Jude: {first.verdict}?", schema=Review, max_tokens=40)',
        name="schema",
        model=MODEL,
        namespace={"Review": Review},
    )
    run, _ = watched(flow)
    assert run.status == "succeeded", run.summary()
    assert isinstance(run["first"], Review) and isinstance(run["second"], Review)
    log = serving.log()
    assert "Input should be 'text' or 'json_object'" in log
    refused = log.count('"POST /v1/chat/completions HTTP/1.1" 500')
    assert refused == 1  # asked with json_schema once, refused, not retried; then json_object, learned


def test_five_parallel_streams_on_an_interrupting_server_never_succeed_cut(
    monkeypatch: pytest.MonkeyPatch, interrupting: LlamaServer
) -> None:
    use(monkeypatch, interrupting)
    flow = Flow.from_source(
        'reviews = [llm("Your opinion on this song: {lyrics}", system="You are music critic #{i}", max_tokens=48)\n'
        "           for i in range(5)]",
        name="critics",
        model=MODEL,
    )
    run, _ = watched(flow, lyrics="Space cats drift past the moon, purring at the quiet stars")
    elements = [r for r in run.steps.values() if r.map == "reviews"]
    assert len(elements) == 5
    cut = [r for r in elements if r.status == "failed"]
    for record in elements:
        if record.status == "succeeded":
            assert record.llm["answer"].strip(), record.name  # whole: it ended with a finish reason
        else:
            assert isinstance(record.error, LLMTruncated), (record.name, record.error)
            assert record.llm["answer"] is not None  # what came before the cut is kept
    assert cut, "five requests at once on an interrupting server: at least one stream is cut off"
    print(f"\n{len(cut)} of 5 streams cut off by the server, each a failed step, none a success")


def test_a_call_after_a_timed_out_one_is_not_held_behind_its_generation(
    monkeypatch: pytest.MonkeyPatch, serving: LlamaServer
) -> None:
    use(monkeypatch, serving)
    before = serving.log()
    long = Flow.from_source(
        '@timeout(1)\nstory = llm("Write a very long story about a lighthouse keeper.", max_tokens=1500)',
        name="long",
        model=MODEL,
        cache=False,
    )
    run = long.run(raise_on_error=False)  # no view: the step streams because it has a timeout
    assert run.steps["story"].status == "failed" and "timed out" in str(run.steps["story"].error)
    short = Flow.from_source('hi = llm("Say hi.", max_tokens=8)', name="short", model=MODEL, cache=False)
    began = time.monotonic()
    assert short.run().status == "succeeded"
    print(f"\nthe call after the timed-out one took {time.monotonic() - began:.2f} s")
    # The server serves one request at a time and logs each generation that ends with its token
    # count. Only the short call's is there: the timed-out one was stopped when its stream closed,
    # not generated to its end while the short call waited.
    runs = [int(n) for n in re.findall(r"\beval time =.*?/\s*(\d+) runs", serving.log()[len(before) :])]
    assert len(runs) == 1 and runs[0] <= 8, runs


def test_an_interrupt_in_a_real_kernel_cancels_a_streaming_call(tmp_path: Path, serving: LlamaServer) -> None:
    env = {"OPENAI_BASE_URL": serving.base_url, "FLOWMAGIC_MODEL": MODEL}
    with kernel_session(tmp_path, env) as kernel:
        kernel.ok("%load_ext flowmagic")
        cell = textwrap.dedent(
            """\
            %%flow story --no-cache
            story = llm("Write a very long story about a lighthouse keeper.", max_tokens=1500)
            """
        )
        result = kernel.send(cell)
        wait_for_text(kernel, result)
        interrupt_now(kernel, result)
        assert result.reply is not None and result.reply.get("ename") == "FlowInterrupted", result.reply
        assert kernel.value("str(story.last.status)") == "cancelled"
        assert kernel.value("story.last.steps['story'].llm.get('answer') or ''")  # it had begun to stream
        after = kernel.execute('%%flow hi --no-cache\nhi = llm("Say hi.", max_tokens=8)\n', timeout=60)
        assert after.status == "ok", after.text


NOTEBOOK_CELLS = [
    "%load_ext flowmagic",
    "%%flow story --MODE answers.json\n"
    'title = llm("A short title for a story about a lighthouse.", max_tokens=16)\n'
    'line = llm("One line for a story called {title}", max_tokens=24)',
    "import json\nshown = {**story.last.outputs, 'replayed': story.last.steps['line'].llm.get('replayed')}\n"
    "print(json.dumps(shown))",
]


def run_notebook(folder: Path, mode: str, extra_env: dict[str, str]) -> dict[str, Any]:
    """Write and execute the notebook in ``folder`` (``--record`` or ``--replay``); what it printed."""
    import json

    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from kernel_helpers import KERNEL_NAME, isolated_env, write_kernelspec
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c.replace("MODE", mode)) for c in NOTEBOOK_CELLS]
    env = {k: v for k, v in isolated_env(folder, extra_env).items() if not k.startswith("OPENAI_")}
    env.update(extra_env)
    data_dir = Path(env["JUPYTER_DATA_DIR"])
    write_kernelspec(data_dir)
    km = KernelManager(
        kernel_name=KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(data_dir=str(data_dir), kernel_dirs=[str(data_dir / "kernels")]),
    )
    NotebookClient(nb, km=km, timeout=300, store_widget_state=False).execute(env=env, cwd=str(folder))
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    return dict(json.loads(printed.strip().splitlines()[-1]))


def test_a_notebook_recorded_against_the_server_replays_offline_to_the_same_outputs(
    tmp_path: Path, serving: LlamaServer
) -> None:
    recorded = run_notebook(tmp_path, "record", {"OPENAI_BASE_URL": serving.base_url, "FLOWMAGIC_MODEL": MODEL})
    assert recorded["title"].strip() and recorded["line"].strip() and recorded["replayed"] is None
    assert (tmp_path / "answers.json").exists()
    replayed = run_notebook(tmp_path, "replay", {})  # no server, no model configured: offline
    assert replayed == {**recorded, "replayed": "answers.json"}


def wait_for_text(kernel: Kernel, result: Any) -> None:
    """Wait until the view shows the answer arriving (the call is streaming)."""
    kernel.wait_until(lambda: result.busy_time is not None, 30, "the cell to start")
    kernel.drain(3.0)
