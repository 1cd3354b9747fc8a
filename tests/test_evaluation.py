"""Evaluation: a flow over data, each run scored, variants side by side, regressions marked; cached
re-evaluation asks the model only for what an edit touched (counted at a local OpenAI-compatible
server); failures are rows; bad data is an error before anything runs; `flowmagic eval --min`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
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
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-eval-test")
    data = [{"topic": f"topic {i}"} for i in range(20)]
    source = 'title = llm("TITLE for {topic}")\nline = llm("LINE for {title}")\nblurb = llm("BLURB of {topic}")'
    edited = source.replace("BLURB of", "BLURB, short, of")
    scorers = {"has title": contains("TITLE", step="title"), "polite": judge("JUDGE: is {line} polite?")}
    first = Flow.from_source(source, name="eval-llm", model="gpt-4o-mini").evaluate(
        data, scorers=scorers, progress=False
    )
    assert first.status == "succeeded"
    asked = {p: len(server.requests_for(p)) for p in ("TITLE", "LINE", "BLURB", "JUDGE")}
    assert asked == {"TITLE": 20, "LINE": 20, "BLURB": 20, "JUDGE": 20}
    second = Flow.from_source(edited, name="eval-llm", model="gpt-4o-mini").evaluate(
        data, scorers=scorers, progress=False
    )
    assert second.status == "succeeded"
    again = {p: len(server.requests_for(p)) - asked[p] for p in ("TITLE", "LINE", "BLURB", "JUDGE")}
    assert again == {"TITLE": 0, "LINE": 0, "BLURB": 20, "JUDGE": 0}  # only the edited prompt's step


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
