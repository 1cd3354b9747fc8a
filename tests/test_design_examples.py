"""The example cells of DESIGN.md, run offline in a real IPython shell with notebook functions, and the
control-flow ones in a real kernel with the view too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
from IPython.core.interactiveshell import InteractiveShell
from test_conditions import DESIGN_SUPPORT
from test_notebooks import execute

SOUNDTRACK = """%%flow soundtrack
title      = llm("What is a good title of a movie about {topic}?")
song       = llm("A song title for the soundtrack of a movie called {title}?")
characters = llm("Two main characters for a movie called {title}?")
lyrics     = llm("Lyrics of a song called {song}. The main characters are {characters}")
reviews    = [llm("Your opinion on this song: {lyrics}", system="You are music critic #{i}")
              for i in range(5)]
"""

MARKETING_TOOLS = """
import time
username = "ada"
def get_current_time():
    time.sleep(0.2)
    return "2026-11-21 10:00"
def get_user_information(username):
    time.sleep(0.2)
    return {"name": username.title(), "email": f"{username}@example.com"}
def get_user_last_purchases(username):
    time.sleep(0.2)
    return ["tea", "scones"]
def get_items_on_sale():
    time.sleep(0.2)
    return ["jam", "tea cups"]
"""

MARKETING = '''%%flow marketing --workers 4
parallel lookup:
    current_time   = get_current_time()
    user_info      = get_user_information(username)
    user_purchases = get_user_last_purchases(username)
    items_on_sale  = get_items_on_sale()

@retries(3) @timeout(30)
message = llm("""You are a marketing expert. Welcome {user_info} ...
Time: {current_time}. Purchases: {user_purchases}. On sale: {items_on_sale}.""")
'''

RESEARCH_TOOLS = """
import time
question = "Why is the sky blue?"
def web_search(q):
    time.sleep(0.2)
    return [f"Rayleigh scattering explains: {q}", "Blue light scatters more than red light"]
def search_docs(q):
    time.sleep(0.3)
    return ["Physics notes, chapter 4: scattering of sunlight in the atmosphere"]
"""

RESEARCH = """%%flow research
parallel:
    branch web:
        hits  = web_search(question)
        notes = llm("Summarize {hits}")
    branch docs:
        pages  = search_docs(question)
        quotes = llm("Quote the relevant lines of {pages}")
answer = llm("Answer {question} from {notes} and {quotes}")
"""


def test_soundtrack(shell: InteractiveShell) -> None:
    shell.user_ns["topic"] = "space cats"
    assert shell.run_cell(SOUNDTRACK).success
    run = shell.user_ns["soundtrack"].last
    assert run.status == "succeeded"
    assert all(isinstance(run[n], str) and run[n] for n in ("title", "song", "characters", "lyrics"))
    reviews = run["reviews"]
    assert isinstance(reviews, list) and len(reviews) == 5 and len(set(reviews)) == 5
    # song and characters both wait only for the title, so they overlap
    s, c = run.steps["song"], run.steps["characters"]
    assert max(s.started, c.started) < min(s.finished, c.finished)
    assert run.steps["lyrics"].started >= max(s.finished, c.finished)
    assert run.steps["title"].llm["prompt"] == "What is a good title of a movie about space cats?"
    assert run["title"] in run.steps["song"].llm["prompt"]
    assert [run.steps[f"reviews[{i}]"].llm["system"] for i in range(5)] == [
        f"You are music critic #{i}" for i in range(5)
    ]


def test_marketing(shell: InteractiveShell) -> None:
    assert shell.run_cell(MARKETING_TOOLS).success
    assert shell.run_cell(MARKETING).success
    flow = shell.user_ns["marketing"]
    run = flow.last
    assert run.status == "succeeded"
    members = ["current_time", "user_info", "user_purchases", "items_on_sale"]
    assert [b.name for b in flow.groups["lookup"].branches] == members
    assert max(run.steps[m].started for m in members) < min(run.steps[m].finished for m in members)
    assert flow.steps["message"].options.retries == 3 and flow.steps["message"].options.timeout == 30
    prompt = run.steps["message"].llm["prompt"]
    assert '"name": "Ada"' in prompt and "2026-11-21 10:00" in prompt and '["jam", "tea cups"]' in prompt
    assert isinstance(run["message"], str) and run["message"]


def test_research(shell: InteractiveShell) -> None:
    assert shell.run_cell(RESEARCH_TOOLS).success
    assert shell.run_cell(RESEARCH).success
    flow = shell.user_ns["research"]
    run = flow.last
    assert run.status == "succeeded"
    group = flow.groups[flow.steps["hits"].group]
    assert [(b.name, b.steps) for b in group.branches] == [("web", ("hits", "notes")), ("docs", ("pages", "quotes"))]
    assert run.steps["notes"].branch == "web" and run.steps["quotes"].branch == "docs"
    # each branch runs its own chain; the branches overlap
    assert run.steps["hits"].started < run.steps["pages"].finished
    assert run.steps["pages"].started < run.steps["hits"].finished
    assert run.steps["answer"].started >= max(run.steps["notes"].finished, run.steps["quotes"].finished)
    assert "Why is the sky blue?" in run.steps["answer"].llm["prompt"]
    assert isinstance(run["answer"], str) and run["answer"]


# -- the three control-flow examples ("Control flow: conditions, loops, subflows") ---------------
CONTROL_TOOLS = """
from pydantic import BaseModel

class Kind(BaseModel):
    label: str

class Verdict(BaseModel):
    ok: bool
    notes: str

ticket = "The app crashes when I export my data."
product = "a lamp that reads bedtime stories aloud"

def search_faq(ticket):
    return "See the FAQ: File > Export."
"""

SUPPORT = DESIGN_SUPPORT  # the cell of DESIGN.md, as test_conditions reads it

TAGLINE = """%%flow tagline
draft = llm("A tagline for {product}")
for attempt in range(3):
    verdict = llm("Is this tagline good? {draft}", schema=Verdict)
    if verdict.ok:
        break
    draft = llm("Improve {draft}: {verdict.notes}")
"""

REPORT = """%%flow report
parallel:
    cats = research(question="cats")      # research is a Flow from another cell: a subflow
    dogs = research(question="dogs")
both = llm("Compare {cats} and {dogs}")
"""


def check_support(run: Any) -> None:
    assert run.status == "succeeded", run.summary()
    chosen = [n for n in ("reply@5", "reply@7", "reply@9") if run.steps[n].status == "succeeded"]
    assert len(chosen) == 1 and run["reply"] == run[chosen[0]]
    skipped = [n for n in ("reply@5", "reply@7", "reply@9") if n not in chosen]
    assert all(run.steps[n].status == "skipped" and "if@3" in (run.steps[n].reason or "") for n in skipped)


def check_tagline(run: Any) -> None:
    assert run.status == "succeeded", run.summary()
    rounds = run.steps["for@3"].elements
    assert 1 <= rounds <= 3 and f"verdict#{rounds}" in run.steps and f"verdict#{rounds + 1}" not in run.steps
    last = run.steps[f"draft#{rounds}"]
    assert (last.status == "skipped") == run["verdict"].ok  # a good verdict broke the loop before its draft
    if rounds > 1:  # a carried draft: the second judge read the first improvement
        assert run.steps["verdict#2"].llm["prompt"].endswith(str(run.steps["draft#1"].llm["answer"]))


def check_report(run: Any) -> None:
    assert run.status == "succeeded", run.summary()
    assert {"cats/hits", "cats/answer", "dogs/answer"} <= set(run.steps)
    cats, dogs = run.steps["cats/hits"], run.steps["dogs/hits"]
    assert max(cats.started, dogs.started) < min(cats.finished, dogs.finished)  # the two subflows overlapped
    assert run["cats"] in run.steps["both"].llm["prompt"]


def test_control_flow_examples(shell: InteractiveShell) -> None:
    for cell in (RESEARCH_TOOLS, RESEARCH, CONTROL_TOOLS, SUPPORT, TAGLINE, REPORT):
        assert shell.run_cell(cell).success, cell
    check_support(shell.user_ns["support"].last)
    check_tagline(shell.user_ns["tagline"].last)
    check_report(shell.user_ns["report"].last)


def test_control_flow_examples_in_a_kernel_with_the_view(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cells = ["%load_ext flowmagic", RESEARCH_TOOLS, RESEARCH, CONTROL_TOOLS, SUPPORT, TAGLINE, REPORT]
    checks = "import json\nprint(json.dumps([support.last.status, tagline.last.status, report.last.status]))"
    nb.cells = [nbformat.v4.new_code_cell(c) for c in [*cells, checks]]
    path = tmp_path / "control.ipynb"
    nbformat.write(nb, path)
    done = execute(path, tmp_path / "kernel")
    assert json.loads(done.cells[-1].outputs[0]["text"]) == ["succeeded"] * 3
    for cell, node in ((done.cells[4], "if@3"), (done.cells[5], "for@3"), (done.cells[6], "cats")):
        html = "".join(str(o.get("data", {}).get("text/html", "")) for o in cell.outputs)
        assert f'data-step="{node}"' in html, cell.source
