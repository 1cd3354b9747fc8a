"""The three example cells of DESIGN.md, run offline in a real IPython shell with notebook functions."""

from __future__ import annotations

from IPython.core.interactiveshell import InteractiveShell

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
    assert "'name': 'Ada'" in prompt and "2026-11-21 10:00" in prompt and "['jam', 'tea cups']" in prompt
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
