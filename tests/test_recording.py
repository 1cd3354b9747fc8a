"""Recorded answers: record a run against a model server, replay it offline, exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from llm_server import LLMServer, llm_server_fixture
from pydantic import BaseModel

from flowmagic import Flow
from flowmagic.engine import events as ev
from flowmagic.engine.runner import run_blocking
from flowmagic.llm.protocol import LLMError
from flowmagic.llm.recording import MAX_BYTES
from flowmagic.view.detail import step_html

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-recording-test-0123456789abcdef"

server = pytest.fixture(llm_server_fixture, name="server")


class Mood(BaseModel):
    mood: str
    score: int


SOURCE = 'title = llm("A title about {topic}")\nmood = llm("The mood of {title}", schema=Mood)'


def answers(body: dict) -> str:
    prompt = body["messages"][-1]["content"]
    return '{"mood": "calm", "score": 7}' if prompt.startswith("The mood") else f"Notes on {prompt}"


def flow_for(**settings: object) -> Flow:
    return Flow.from_source(SOURCE, name="recorded", model="served", namespace={"Mood": Mood}, **settings)


def record(server: LLMServer, monkeypatch: pytest.MonkeyPatch, path: Path) -> dict[str, object]:
    """Record a run of the flow against ``server``; its outputs."""
    server.answer = answers
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    run = flow_for(record=str(path)).run(topic="tea")
    assert run.status == "succeeded", run.summary()
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    return dict(run.outputs)


def test_a_recorded_run_replays_offline_to_the_same_outputs(
    server: LLMServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "answers.json"
    outputs = record(server, monkeypatch, path)
    sent = len(server.chat_requests)
    data = json.loads(path.read_text())
    assert data["flowmagic"] == "recorded answers" and len(data["answers"]) == 2
    entry = next(a for a in data["answers"] if a["prompt"] == "A title about tea")
    assert entry["answer"] == "Notes on A title about tea" and entry["completion_tokens"] > 0 and entry["seconds"] > 0
    assert SECRET not in path.read_text() and SECRET[:12] not in path.read_text()

    run = flow_for(replay=str(path)).run(topic="tea")  # no server configured: it would be the offline model
    assert run.status == "succeeded" and dict(run.outputs) == outputs
    assert run["mood"] == Mood(mood="calm", score=7)
    assert len(server.chat_requests) == sent  # nothing went out
    assert run.steps["title"].llm["replayed"] == "answers.json"
    assert run.tokens == (entry["prompt_tokens"] + 0 + run.steps["mood"].llm["prompt_tokens"], run.tokens[1])
    assert "replayed from answers.json" in step_html(run, "title")
    assert "served (replayed from answers.json: no network)" in run.summary()


def test_a_recording_asks_the_model_even_when_the_cache_has_the_answer(
    server: LLMServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server.answer = answers
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    flow_for().run(topic="tea")  # cached now
    path = tmp_path / "answers.json"
    run = flow_for(record=str(path)).run(topic="tea")
    assert not any(r.cached for r in run.top_steps)
    assert len(json.loads(path.read_text())["answers"]) == 2 and len(server.chat_requests) == 4


def test_replay_streams_the_answer_over_its_recorded_time(tmp_path: Path) -> None:
    path = tmp_path / "answers.json"
    entry = {"model": "m", "prompt": "Count", "answer": "one two three four", "seconds": 0.4, "first_text": 0.2}
    path.write_text(json.dumps({"flowmagic": "recorded answers", "version": 1, "answers": [entry]}))
    events: list[ev.Event] = []
    flow = Flow.from_source('n = llm("Count")', name="timed", replay=str(path))
    run = run_blocking(flow.execution(observers=[events.append]))
    texts = [e.detail["answer"] for e in events if e.kind == ev.TEXT]
    assert texts == ["one", "one two", "one two three", "one two three four"] and run["n"] == "one two three four"
    record = run.steps["n"]
    assert record.finished is not None and record.started is not None
    assert record.finished - record.started >= 0.4  # it waited as long as the recorded answer took


def test_a_request_missing_from_the_recording_is_an_error_naming_it_or_goes_offline(tmp_path: Path) -> None:
    path = tmp_path / "answers.json"
    entry = {"model": "m", "prompt": "Known", "answer": "yes"}
    path.write_text(json.dumps({"flowmagic": "recorded answers", "version": 1, "answers": [entry]}))
    flow = Flow.from_source('a = llm("Known")\nb = llm("Unknown prompt")', name="missing", replay=str(path))
    run = flow.run()
    assert run["a"] == "yes" and run.steps["b"].status == "failed"
    assert "no recorded answer in answers.json for the prompt 'Unknown prompt'" in str(run.steps["b"].error)
    run = Flow.from_source(flow.source, name="fallback", replay=str(path), replay_fallback=True).run()
    assert run.status == "succeeded" and run["a"] == "yes" and run.steps["b"].llm["offline"] is True


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("not json at all", "cannot be replayed"),
        ('{"flowmagic": "something else", "version": 1}', "not a flowmagic recording"),
        ('{"flowmagic": "recorded answers", "version": 1, "answers": [{"prompt": "x"}]}', "cannot be replayed"),
        (
            '{"flowmagic": "recorded answers", "version": 1, "answers": [{"model": "m", "prompt": "x", '
            '"answer": "y", "__class__": "os.system"}]}',
            "cannot be replayed",
        ),
        ("[" * 100_000 + "]" * 100_000, "cannot be replayed"),
    ],
)
def test_a_file_that_is_not_a_recording_is_refused_and_runs_nothing(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "answers.json"
    path.write_text(content)
    run = Flow.from_source('a = llm("x")', name="hostile", replay=str(path)).run()
    assert run.steps["a"].status == "failed" and isinstance(run.steps["a"].error, LLMError)
    assert says in str(run.steps["a"].error)


def test_a_recording_too_large_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "answers.json"
    with path.open("wb") as out:
        out.truncate(MAX_BYTES + 1)
    run = Flow.from_source('a = llm("x")', name="huge", replay=str(path)).run()
    assert f"a recording is at most {MAX_BYTES:,}" in str(run.steps["a"].error)


def test_the_magic_records_and_replays(
    shell: InteractiveShell, server: LLMServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server.answer = answers
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    path = tmp_path / "cell.json"
    shell.user_ns["topic"] = "rain"
    shell.user_ns["Mood"] = Mood
    shell.run_cell_magic("flow", f"moods --quiet --model served --record {path}", SOURCE)
    recorded = dict(shell.user_ns["moods"].last.outputs)
    monkeypatch.delenv("OPENAI_BASE_URL")
    shell.run_cell_magic("flow", f"moods --quiet --model served --replay {path}", SOURCE)
    assert dict(shell.user_ns["moods"].last.outputs) == recorded and len(server.chat_requests) == 2
    with pytest.raises(UsageError, match="one or the other"):
        shell.run_cell_magic("flow", f"moods --record {path} --replay {path}", SOURCE)
    with pytest.raises(UsageError, match="goes with --replay"):
        shell.run_cell_magic("flow", "moods --replay-fallback", SOURCE)


def test_the_command_line_replays(server: LLMServer, tmp_path: Path) -> None:
    server.answer = answers
    flow_file = tmp_path / "moods.flow"
    flow_file.write_text('title = llm("A title about {topic}")\n')
    path = tmp_path / "cli.json"

    def cli(*args: str, base_url: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        if base_url:
            env["OPENAI_BASE_URL"] = base_url
        command = [sys.executable, "-m", "flowmagic.cli", "run", str(flow_file), "--set", "topic=snow", *args]
        return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)

    first = cli("--model", "served", "--record", str(path), base_url=server.base_url)
    assert first.returncode == 0, first.stderr
    again = cli("--model", "served", "--replay", str(path))
    assert again.returncode == 0, again.stderr
    assert "Notes on A title about snow" in again.stdout and len(server.chat_requests) == 1
