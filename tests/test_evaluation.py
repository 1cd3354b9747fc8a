"""Evaluation: a flow over data, each run scored, variants side by side, regressions marked; cached
re-evaluation asks the model only for what an edit touched (counted at a local OpenAI-compatible
server); failures are rows; bad data is an error before anything runs; `flowmagic eval --min`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kernel_helpers import interrupt_now, kernel_session
from llm_server import LLMServer, llm_server_fixture
from pydantic import BaseModel

from flowmagic import Flow, close, contains, exact, judge, regex, valid_json, valid_schema
from flowmagic.errors import FlowDefinitionError
from flowmagic.evaluation import running
from flowmagic.evaluation.scorers import Outputs

ROOT = Path(__file__).resolve().parent.parent
server = pytest.fixture(llm_server_fixture, name="server")

DATA = [
    {"ticket": "The app crashes on save", "label": "bug"},
    {"ticket": "Please add dark mode", "label": "feature"},
    {"ticket": "How do I export?", "label": "question"},
    {"ticket": "Upload fails with an error", "label": "bug"},
]


def classify(ticket: str, rules: dict[str, list[str]]) -> str:
    text = ticket.lower()
    for label, words in rules.items():
        if any(w in text for w in words):
            return label
    return "question"


def triage(**namespace: Any) -> Flow:
    ns = {"classify": classify, "rules": {"bug": ["crash"], "feature": ["please"]}, **namespace}
    return Flow.from_source("label = classify(ticket, rules)", name="triage-test", namespace=ns)


@pytest.fixture(autouse=True)
def fresh() -> Any:
    running.previous.clear()
    yield
    running.previous.clear()


def outputs(final: Any, **steps: Any) -> Outputs:
    out = Outputs(steps)
    out.final = final
    return out


class Verdict(BaseModel):
    ok: bool


def test_the_built_in_scorers() -> None:
    example = {"label": "Bug", "want": 3.0, "word": "refund"}
    assert exact("label")(example, outputs(" bug ")) is True
    assert exact("label", case=True)(example, outputs("bug")) is False
    assert exact("label", step="kind")(example, outputs("x", kind="bug")) is True
    assert (
        contains("word")(example, outputs("A REFUND is due")) is True
        and contains("nope")(example, outputs("x")) is False
    )
    assert regex(r"^\d+$")(example, outputs("123")) is True and regex(r"^\d+$")(example, outputs("12a")) is False
    assert valid_json()(example, outputs('{"a": 1}')) and valid_json()(example, outputs({"a": 1}))
    assert not valid_json()(example, outputs("{a"))
    assert valid_schema(Verdict)(example, outputs('{"ok": true}')) and not valid_schema(Verdict)(
        example, outputs({"ok": "maybe"})
    )
    assert close("want", 0.1)(example, outputs("3.05")) and not close("want", 0.01)(example, outputs(3.05))
    assert not close("want")(example, outputs("three"))


def test_aggregates_pass_rates_and_regressions_against_the_last_evaluation() -> None:
    flow = triage()
    scorers = {"label": exact("label"), "bugs": lambda ex, out: None if ex["label"] != "bug" else out["label"] == "bug"}
    first = flow.evaluate(DATA, scorers=scorers, progress=False)
    assert first.status == "succeeded" and len(first.rows) == 4
    cell = first.cell("base", "label")
    assert (cell.mean, cell.pass_rate, cell.change) == (0.75, 0.75, None)  # "Upload fails" is missed
    assert first.cell("base", "bugs").mean == 0.5  # None is not scored: two bug examples
    assert round(cell.spread or 0, 3) == 0.433

    wider = triage(rules={"bug": ["crash", "fail", "export"], "feature": ["please"]})
    second = wider.evaluate(DATA, scorers=scorers, progress=False)
    assert second.previous is first
    assert second.cell("base", "bugs").change == pytest.approx(0.5)  # both bugs found now
    assert second.cell("base", "label").change == pytest.approx(0.0)  # one found, one question lost
    assert [(v, s) for v, s, _ in second.regressions()] == []
    text = second.text()
    assert "▲+0.50" in text and "1.00 (0.00) 100%" in text
    third = triage(rules={"bug": ["e"], "feature": []}).evaluate(DATA, scorers=scorers, progress=False)
    assert [(v, s) for v, s, _ in third.regressions()] == [("base", "label")]
    assert "▼" in third.text() and "fm-change" in third._repr_html_()


def test_data_from_a_dataframe_csv_and_jsonl_and_variants(tmp_path: Path) -> None:
    csv_path, jsonl_path = tmp_path / "d.csv", tmp_path / "d.jsonl"
    pd.DataFrame(DATA).to_csv(csv_path, index=False)
    jsonl_path.write_text("\n".join(json.dumps(row) for row in DATA) + "\n")
    flow = triage()
    variants = {"narrow": {"rules": {"bug": ["crash"]}}, "wide": {"rules": {"bug": ["crash", "fail"]}}}
    for data in (pd.DataFrame(DATA), str(csv_path), jsonl_path):
        ev = flow.evaluate(data, scorers=[exact("label")], variants=variants, progress=False)
        assert [t["variant"] for t in ev.table_rows()] == ["narrow", "wide"] and len(ev.rows) == 8
    df = ev.df
    assert list(df["variant"].unique()) == ["narrow", "wide"] and "score.exact_label" in df and "out.label" in df
    assert ev.examples("exact_label", variant="narrow")[0].example["ticket"] == "Please add dark mode"


def test_what_is_wrong_with_the_data_is_an_error_before_anything_runs() -> None:
    calls: list[str] = []

    def counted(ticket: str, rules: Any) -> str:
        calls.append(ticket)
        return "bug"

    flow = Flow.from_source(
        "label = classify(ticket, rules)\nnote = tone", namespace={"classify": counted, "rules": {}}
    )
    with pytest.raises(FlowDefinitionError) as caught:  # `tone` is neither a column nor a variable
        flow.evaluate(DATA, scorers=[exact("label")], progress=False)
    assert "'tone' is not defined" in str(caught.value) and caught.value.line == 2
    with pytest.raises(ValueError, match="neither an input"):
        flow.evaluate(DATA, variants={"v": {"tonne": "x"}}, progress=False)
    with pytest.raises(ValueError, match=r"\.csv or \.jsonl"):
        flow.evaluate("data.txt", progress=False)
    assert calls == []


def test_each_example_runs_with_its_own_columns_and_a_row_missing_one_is_an_error() -> None:
    seen: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def noted(ticket: str, rules: Any) -> str:
        with lock:
            seen.append((ticket, rules))
        return classify(ticket, rules)

    flow = triage(classify=noted)
    rows = [{"ticket": "crash"}, {"ticket": "please", "rules": {"feature": ["please"]}}, {"ticket": "export"}]
    ev = flow.evaluate(rows, variants={"own": {}, "mine": {"rules": {"x": ["y"]}}}, workers=2, progress=False)
    assert ev.status == "succeeded"
    default = {"bug": ["crash"], "feature": ["please"]}
    assert sorted(seen, key=str) == sorted(
        [
            ("crash", default),
            ("please", {"feature": ["please"]}),  # a column the example has
            ("export", default),
            *((t, {"x": ["y"]}) for t in ("crash", "please", "export")),  # a variant's input wins
        ],
        key=str,
    )
    seen.clear()
    with pytest.raises(FlowDefinitionError, match="'ticket' is not defined"):  # the third row lacks it
        flow.evaluate([{"ticket": "a"}, {"ticket": "b"}, {"label": "c"}], progress=False)
    assert seen == []


def test_at_most_workers_runs_at_once_across_the_whole_evaluation() -> None:
    events: list[tuple[str, int]] = []
    lock = threading.Lock()

    def step(i: int) -> int:
        with lock:
            events.append(("in", i))
        time.sleep(0.01)  # long enough for the workers' runs to overlap
        with lock:
            events.append(("out", i))
        return i

    flow = Flow.from_source("x = step(i)\ny = step(x + 100)", name="bounded", namespace={"step": step})
    ev = flow.evaluate([{"i": i} for i in range(12)], variants=[{}, {}], workers=3, progress=False)
    assert ev.status == "succeeded" and len(ev.rows) == 24
    at_once = most = 0
    for kind, _ in events:
        at_once += 1 if kind == "in" else -1
        most = max(most, at_once)
    assert 2 <= most <= 3  # runs overlapped, never more than the limit (a run's two steps are a chain)
    for r in ev.rows:  # within a run, its steps kept their order
        i = r.example["i"]
        assert r.outputs == {"x": i, "y": i + 100}


def test_a_timeout_keeps_the_finished_rows() -> None:
    release = threading.Event()

    def slow(i: int) -> int:
        if i >= 2:
            release.wait(30)
        return i

    flow = Flow.from_source("x = slow(i)", name="slowish", namespace={"slow": slow})
    try:
        ev = flow.evaluate([{"i": i} for i in range(6)], scorers=[exact("i", step="x")], workers=2, timeout=0.5)
    finally:
        release.set()
    assert ev.status == "cancelled" and flow.last_evaluation is ev
    assert sorted(r.index for r in ev.rows) == [0, 1]
    assert all(r.status == "succeeded" and r.scores == {"exact_i": 1.0} for r in ev.rows)
    assert "slowish" not in running.previous  # a cancelled evaluation is not what the next one compares with


def test_a_failing_example_is_a_failed_row_and_the_table_stays() -> None:
    def picky(ticket: str, rules: Any) -> str:
        if "export" in ticket:
            raise ValueError("cannot read this one")
        return classify(ticket, rules)

    ev = triage(classify=picky).evaluate(DATA, scorers=[exact("label")], progress=False)
    assert ev.status == "failed" and ev.failures == 1
    (bad,) = [r for r in ev.rows if r.status != "succeeded"]
    assert bad.index == 2 and "ValueError: cannot read this one" in (bad.error or "")
    assert ev.cell("base", "exact_label").mean == pytest.approx(2 / 3)
    assert "1/4" in ev.text()


def test_re_evaluating_after_one_edit_asks_the_model_only_for_what_it_touched(
    server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 examples, counted at the server: an edited leaf prompt asks again for its own step
    only; an edited prompt that another step reads asks for it and what reads it (the judge too,
    which reads that step), and nothing else."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-eval-test")
    data = [{"topic": f"topic {i}"} for i in range(1000)]
    source = 'title = llm("TITLE for {topic}")\nline = llm("LINE for {title}")\nblurb = llm("BLURB of {topic}")'
    scorers = {"has title": contains("TITLE", step="title"), "polite": judge("JUDGE: is {line} polite?")}
    prompts = ("TITLE", "LINE", "BLURB", "JUDGE")
    asked = dict.fromkeys(prompts, 0)

    def evaluate(text: str) -> dict[str, int]:
        ev = Flow.from_source(text, name="eval-llm", model="gpt-4o-mini").evaluate(
            data, scorers=scorers, progress=False
        )
        assert ev.status == "succeeded" and len(ev.rows) == 1000
        now = {p: len(server.requests_for(p)) for p in prompts}
        sent = {p: now[p] - asked[p] for p in prompts}
        asked.update(now)
        return sent

    assert evaluate(source) == dict.fromkeys(prompts, 1000)
    leaf = source.replace("BLURB of", "BLURB, short, of")
    assert evaluate(leaf) == {"TITLE": 0, "LINE": 0, "BLURB": 1000, "JUDGE": 0}  # only the edited step
    read = leaf.replace("TITLE for", "TITLE, plain, for")
    assert evaluate(read) == {"TITLE": 1000, "LINE": 1000, "BLURB": 0, "JUDGE": 1000}  # and what reads it


def test_flowmagic_eval_gates_on_min_and_writes_json(tmp_path: Path) -> None:
    def cli(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "flowmagic.cli",
                "eval",
                "examples/triage.flow",
                "--data",
                "examples/tickets.csv",
                "--tools",
                "examples/triage_tools.py",
                "--scorer",
                "exact:label:label",
                "--scorer",
                "bug_found",
                *extra,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**__import__("os").environ, "FLOWMAGIC_OFFLINE_LATENCY": "0.005"},
        )

    ok = cli("--min", "exact_label=0.7", "--json", str(tmp_path / "ev.json"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "exact_label" in ok.stdout and "0.80" in ok.stdout
    saved = json.loads((tmp_path / "ev.json").read_text())
    assert saved["variants"]["base"]["scores"]["exact_label"]["mean"] == pytest.approx(0.8) and len(saved["rows"]) == 30
    gated = cli("--min", "bug_found=0.5")
    assert gated.returncode == 1 and "bug_found mean 0.400 is below 0.5" in gated.stdout
    wrong = cli("--min", "nosuch=1")
    assert wrong.returncode != 0 and "not a --scorer" in wrong.stderr


def test_in_a_kernel_an_interrupt_keeps_the_finished_rows(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    setup = textwrap.dedent(
        f"""
        %load_ext flowmagic
        import time
        from pathlib import Path
        def slow(i):
            if i >= 3:
                time.sleep(30)
            (Path({str(marks)!r}) / str(i)).touch()
            return i
        data = [{{"i": i}} for i in range(8)]
        """
    )
    with kernel_session(tmp_path / "k") as k:
        k.ok(setup)
        k.ok("%%flow slowly --quiet --dry-run\nx = slow(i)")
        cell = k.send("ev = slowly.evaluate(data, scorers=[lambda ex, out: out['x'] == ex['i']], workers=4)")
        k.wait_until(lambda: len(list(marks.iterdir())) >= 3, 20, "three rows to finish")
        assert interrupt_now(k, cell) < 5
        assert cell.reply is not None and cell.reply.get("ename") == "KeyboardInterrupt", cell.reply
        status, rows = k.value(
            "[slowly.last_evaluation.status, [(r.index, r.status, r.scores) for r in slowly.last_evaluation.rows]]"
        )
        assert status == "cancelled" and 1 <= len(rows) <= 3
        assert all(i < 3 and s == "succeeded" and list(scores.values()) == [1.0] for i, s, scores in rows), rows


def test_a_flow_cell_with_eval_shows_the_table(shell: Any, capsys: Any) -> None:
    shell.user_ns.update(classify=classify, rules={"bug": ["crash"]}, data=DATA)
    result = shell.run_cell(
        "%%flow cellular --eval data --scorer exact:label --grid rules={'bug':['crash']},{}\n"
        "label = classify(ticket, rules)"
    )
    assert result.success, result.error_in_exec
    ev = shell.user_ns["cellular"].last_evaluation
    assert ev is result.result and [t["variant"] for t in ev.table_rows()] == ["rules={'bug': ['crash']}", "rules={}"]
    assert ev.cell("rules={}", "exact_label").mean == 0.25  # only the question is right
    bad = shell.run_cell("%%flow cellular --eval data --scorer nosuch\nlabel = classify(ticket, rules)")
    assert "--eval: --scorer 'nosuch'" in str(bad.error_in_exec)
