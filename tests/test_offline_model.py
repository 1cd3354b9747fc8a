"""The embedded offline model: deterministic, labelled offline, shaped like real answers."""

from __future__ import annotations

import asyncio
import enum
import json
import os
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Optional

import pytest
from pydantic import BaseModel, Field

from flowmagic.llm.offline import LATENCY_ENV, OfflineProvider
from flowmagic.llm.protocol import LLMError, LLMRequest, LLMResponse
from flowmagic.llm.template import render

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LATENCY_ENV, "0")


def ask(prompt: str, **kwargs: object) -> LLMResponse:
    request = LLMRequest(prompt=prompt, model="offline", **kwargs)  # type: ignore[arg-type]
    return asyncio.run(OfflineProvider().complete(request))


def test_same_request_same_answer_different_prompt_different_answer() -> None:
    first = ask("Title of a movie about a robot chef", temperature=0.7)
    again = ask("Title of a movie about a robot chef", temperature=0.7)
    other = ask("Title of a movie about a haunted lighthouse", temperature=0.7)
    assert first.text == again.text
    assert first.text != other.text


CROSS_PROCESS_PROMPTS = [
    "Title of a movie about a robot chef",
    "Two main characters of the movie The Lost Robot",
    "Give your opinion of the movie 'The Lost Robot'",
]


def test_deterministic_across_processes() -> None:
    code = (
        "import asyncio, json, sys\n"
        "from flowmagic.llm.offline import OfflineProvider\n"
        "from flowmagic.llm.protocol import LLMRequest\n"
        "p = OfflineProvider()\n"
        "out = [p.respond(LLMRequest(prompt=q, model='offline', system='a critic')).text\n"
        "       for q in json.loads(sys.argv[1])]\n"
        "print(json.dumps(out))\n"
    )
    # A fixed hash seed that differs from this process's random one: answers built on hash() would differ.
    env = {**os.environ, "PYTHONHASHSEED": "1", "PYTHONPATH": str(ROOT), LATENCY_ENV: "0"}
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(CROSS_PROCESS_PROMPTS)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    here = [ask(q, system="a critic").text for q in CROSS_PROCESS_PROMPTS]
    assert json.loads(result.stdout) == here


def test_response_is_labelled_offline_with_estimated_tokens() -> None:
    response = ask("Write a welcome message for the chess club", system="Be warm.")
    assert response.offline is True
    assert response.model == "offline"
    assert response.value == response.text
    assert not response.text.lower().startswith(("[offline", "offline"))
    assert response.extra == {"estimated_usage": True}
    assert response.prompt_tokens and response.prompt_tokens >= 8
    assert response.completion_tokens and response.completion_tokens >= len(response.text.split())


@pytest.mark.parametrize(
    ("prompt", "count"),
    [
        ("Two main characters of the movie The Lost Robot", 2),
        ("list three colors of the rainbow", 3),
        ("5 ideas for a birthday party", 5),
        ("Give me 7 names for a cat", 7),
        ("Suggest four title ideas for a movie about pirates", 4),
    ],
)
def test_asking_for_n_things_gives_a_numbered_list_of_n(prompt: str, count: int) -> None:
    lines = ask(prompt).text.splitlines()
    assert len(lines) == count
    items = []
    for number, line in enumerate(lines, 1):
        assert line.startswith(f"{number}. ")
        items.append(line.split(". ", 1)[1])
    assert all(items) and len(set(items)) == count


@pytest.mark.parametrize(
    ("prompt", "expected_words"),
    [
        ("Give me the title of a movie about a robot chef", {"robot", "chef"}),
        ("Write a song title for a summer road trip", {"summer", "road", "trip"}),
    ],
)
def test_titles_are_short_title_cased_and_from_the_prompt(prompt: str, expected_words: set[str]) -> None:
    title = ask(prompt).text
    assert "\n" not in title and '"' not in title and "'" not in title
    assert 1 <= len(title.split()) <= 8
    assert title[0].isupper()
    assert expected_words & set(re.findall(r"[a-z]+", title.lower()))


def test_summary_is_one_or_two_sentences_about_the_text() -> None:
    text = (
        "Summarize: The Industrial Revolution began in Britain in the late 18th century. "
        "It transformed manufacturing with steam power and new machines. "
        "Cities grew quickly as workers moved from farms."
    )
    summary = ask(text).text
    assert 1 <= len(re.findall(r"[.!?](?:\s|$)", summary)) <= 2
    assert "Industrial Revolution" in summary
    assert len(summary.split()) < len(text.split())


def test_lyrics_have_four_lines() -> None:
    lines = ask("Lyrics of a song about the ocean and lost love").text.splitlines()
    assert len(lines) == 4
    assert all(0 < len(line.split()) <= 10 for line in lines)


def test_critics_with_different_system_prompts_disagree() -> None:
    systems = [
        "You are a harsh critic.",
        "You are an enthusiastic fan.",
        "You are a film scholar.",
        "You are a teenager who loves action.",
        "You are a grumpy old critic.",
    ]
    answers = [ask("Give your opinion of the movie 'The Lost Robot'", system=s).text for s in systems]
    scores = []
    for answer in answers:
        assert "The Lost Robot" in answer
        match = re.search(r"Score: (\d+)/10\.$", answer)
        assert match, answer
        scores.append(int(match.group(1)))
    assert all(1 <= s <= 10 for s in scores)
    assert len(set(answers)) == len(systems)
    assert len(set(scores)) > 1


def test_marketing_message_mentions_the_prompt() -> None:
    message = ask("Write a short marketing message for our new coffee shop Bean There").text
    assert "Bean There" in message
    assert "\n" not in message


def test_other_prompts_get_a_sentence_with_key_words() -> None:
    answer = ask("Explain recursion to a child").text
    assert answer.endswith((".", "!", "?"))
    assert "recursion" in answer.lower()


def test_max_tokens_shortens_the_answer() -> None:
    prompt = "5 ideas for a birthday party"
    assert len(ask(prompt, max_tokens=4).text.split()) <= 3 < len(ask(prompt).text.split())


class Genre(enum.Enum):
    DRAMA = "drama"
    COMEDY = "comedy"


class Character(BaseModel):
    name: str
    age: int = Field(ge=18, le=30)


class Movie(BaseModel):
    title: str
    year: int
    rating: float
    sequel: bool
    genre: Genre
    audience: Literal["family", "adults"]
    characters: list[Character]
    tagline: Optional[str] = None  # noqa: UP045 - Optional spelled out on purpose
    budget: int = 1000


def test_schema_answers_are_valid_json_for_the_model() -> None:
    response = ask("A movie about pirates with three characters", schema=Movie)
    movie = response.value
    assert isinstance(movie, Movie)
    assert Movie.model_validate_json(response.text) == movie
    assert json.loads(response.text)["budget"] == 1000  # defaults respected and shown
    assert movie.tagline is None
    assert movie.genre is Genre.DRAMA and movie.audience == "family"  # first choice
    assert len(movie.characters) == 3
    assert all(18 <= c.age <= 30 and c.name for c in movie.characters)
    assert "pirates" in movie.title.lower()
    assert response.offline is True


def test_schema_answers_are_deterministic_and_recursive_models_terminate() -> None:
    class Node(BaseModel):
        value: int
        child: Node | None

    first = ask("a tree", schema=Node)
    assert first.text == ask("a tree", schema=Node).text
    depth, node = 0, first.value
    while node is not None:
        depth, node = depth + 1, node.child
    assert 1 <= depth <= 6


def test_schema_the_offline_model_cannot_satisfy_raises_with_the_error_and_the_raw_answer() -> None:
    class Ticket(BaseModel):
        code: str = Field(pattern=r"^[0-9]{3}$")  # the offline model writes words, never digits

    request = LLMRequest(prompt="A ticket for the concert", model="offline", schema=Ticket)
    provider = OfflineProvider()
    for streamed in (False, True):
        with pytest.raises(LLMError) as caught:
            asyncio.run(provider.stream(request, print) if streamed else provider.complete(request))
        message, raw = str(caught.value), caught.value.raw
        assert raw is not None and json.loads(raw).keys() == {"code"}
        assert "Ticket" in message and "String should match pattern" in message
        assert raw in message


def test_zero_latency_is_fast() -> None:
    started = time.monotonic()
    for i in range(20):
        ask(f"Title of a movie about case {i}")
    assert time.monotonic() - started < 1.0
    assert OfflineProvider().delay_for(LLMRequest(prompt="x", model="offline")) == 0


def test_latency_env_var_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = OfflineProvider()
    request = LLMRequest(prompt="Title of a movie about a robot chef", model="offline")
    monkeypatch.delenv(LATENCY_ENV)
    assert 0.2 <= provider.delay_for(request) <= 0.8  # default: mean 0.5 s
    monkeypatch.setenv(LATENCY_ENV, "0.1")
    expected = provider.delay_for(request)
    assert 0.04 <= expected <= 0.16

    started = time.monotonic()
    asyncio.run(provider.complete(request))
    assert time.monotonic() - started >= expected * 0.9


def test_latency_does_not_block_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LATENCY_ENV, "0.1")
    provider = OfflineProvider()
    requests = [LLMRequest(prompt=f"Idea number {i}", model="offline") for i in range(10)]

    async def all_at_once() -> float:
        started = time.monotonic()
        await asyncio.gather(*(provider.complete(r) for r in requests))
        return time.monotonic() - started

    elapsed = asyncio.run(all_at_once())
    sequential = sum(provider.delay_for(r) for r in requests)
    assert max(provider.delay_for(r) for r in requests) * 0.9 <= elapsed < sequential / 2


# --------------------------------------------------------------------------- answers built on the prompt's subject


@pytest.mark.parametrize("temperature", [0.0, 0.3, 0.7, 1.0, 1.3, 2.0])
def test_movie_title_is_built_from_the_subject_after_about(temperature: float) -> None:
    title = ask("What is a good title of a movie about space cats?", temperature=temperature).text
    assert re.search(r"cat|space", title, re.IGNORECASE), title
    assert "good" not in title.lower()
    assert "\n" not in title and 1 <= len(title.split()) <= 8


@pytest.mark.parametrize("temperature", [0.0, 0.3, 0.7, 1.0, 1.3, 2.0])
def test_song_title_builds_on_the_movie_name_not_on_soundtrack(temperature: float) -> None:
    name = "The Lost Robot"
    song = ask(f"A song title for the soundtrack of a movie called {name}?", temperature=temperature).text
    assert "soundtrack" not in song.lower()
    assert "\n" not in song and 1 <= len(song.split()) <= 8
    assert song[0].isupper()


def test_song_titles_for_a_named_movie_mostly_reuse_its_words() -> None:
    name = "Return of the Space Cats"
    songs = [
        ask(f"A song title for the soundtrack of a movie called {name}?", temperature=t / 10).text for t in range(10)
    ]
    reusing = [s for s in songs if re.search(r"space|cat|return", s, re.IGNORECASE)]
    assert len(reusing) >= 5, songs
    assert not any("soundtrack" in s.lower() for s in songs)


def test_lyrics_use_the_song_title_and_the_listed_characters() -> None:
    prompt = (
        "Lyrics of a song called Stardust Lullaby. The main characters are "
        "1. Cleo Blackwood, a kind-hearted detective running from an old mistake\n"
        "2. Theo Sato, a grumpy inventor who keeps a dangerous secret"
    )
    lyrics = ask(prompt).text
    lines = lyrics.splitlines()
    assert len(lines) == 4
    assert "Stardust Lullaby" in lyrics
    assert "Cleo" in lyrics and "Theo" in lyrics
    assert "Soundtrack" not in lyrics and "Blackwood" not in lyrics


def test_lyrics_take_characters_from_an_interpolated_list() -> None:
    lyrics = ask("Lyrics of a song called Moonlit Tide. The main characters are ['Ada', 'Grace']").text
    assert "Moonlit Tide" in lyrics
    assert "Ada" in lyrics and "Grace" in lyrics
    assert "[" not in lyrics and "'Ada'" not in lyrics


SONG_LYRICS = (
    "Every road leads back to you, Noah,\n"
    "Theo sings along the whole night through,\n"
    "Stardust Lullaby, our quiet refrain,\n"
    "And nothing ever feels the same."
)


def test_music_critics_talk_about_this_song_and_still_disagree() -> None:
    reviews = [
        ask(f"Your opinion on this song: {SONG_LYRICS}", system=f"You are music critic #{i}").text for i in range(5)
    ]
    assert len(set(reviews)) == 5
    scores = set()
    for review in reviews:
        match = re.search(r"Score: (\d+)/10\.$", review)
        assert match, review
        scores.add(int(match.group(1)))
        assert not review.split(":")[1].strip().startswith("Every.")  # not the first word as the subject
        assert re.search(r"song|Every road leads back to you, Noah|Noah|Theo", review), review
    assert len(scores) > 1


def test_soundtrack_flow_builds_each_answer_on_the_previous_one() -> None:
    from flowmagic import Flow

    source = (ROOT / "examples" / "soundtrack.flow").read_text(encoding="utf-8")
    run = Flow.from_source(source, name="soundtrack", model="offline").run(topic="space cats")
    title, song, characters, lyrics = (run[k] for k in ("title", "song", "characters", "lyrics"))
    assert re.search(r"cat|space", title, re.IGNORECASE), title
    assert "soundtrack" not in song.lower()
    assert song in lyrics
    names = re.findall(r"^\d+\. ([A-Z][a-z]+)", characters, re.MULTILINE)
    assert len(names) == 2 and all(name in lyrics for name in names), (characters, lyrics)
    reviews = run["reviews"]
    assert len(reviews) == 5 and len(set(reviews)) == 5
    assert all(re.search(r"Score: \d+/10\.$", r) for r in reviews)
    first_line = lyrics.splitlines()[0].rstrip(",")
    assert all(re.search("song|" + "|".join(map(re.escape, [first_line, *names])), r) for r in reviews), reviews


MARKETING = """You are a marketing expert. Welcome {user_info} ...
Time: {current_time}. Purchases: {user_purchases}. On sale: {items_on_sale}."""


@pytest.mark.parametrize(
    ("user_info", "name"),
    [
        ("Ada (ada@example.com)", "Ada"),
        ({"name": "Ada Lovelace", "email": "ada@example.com"}, "Ada"),
        ("ada@example.com", "Ada"),
    ],
)
def test_marketing_message_welcomes_the_person_and_names_an_item_on_sale(user_info: object, name: str) -> None:
    prompt = render(
        MARKETING,
        {
            "user_info": user_info,
            "current_time": "2026-11-21 10:00",
            "user_purchases": ["tea", "scones"],
            "items_on_sale": ["jam", "tea cups"],
        },
    )
    message = ask(prompt).text
    assert name in message
    assert "jam" in message or "tea cups" in message
    assert not re.search(r"\b(Time|Purchases)\b", message)
    assert not re.search(
        r"[\[\]{}']", message.replace("'d ", " ").replace("n't", "").replace("'re", "").replace("'s", "")
    )
    assert "\n" not in message and len(re.findall(r"[.!?](?:\s|$)", message)) <= 4


HITS = [
    "Python 3.13 adds an experimental JIT compiler and a free-threaded build.",
    "The new REPL supports multi-line editing and colour.",
    "Deprecated modules were removed from the standard library.",
]


def test_summary_of_a_list_of_hits_reads_as_a_summary() -> None:
    summary = ask(render("Summarize {hits}", {"hits": HITS})).text
    assert 1 <= len(re.findall(r"[.!?](?:\s|$)", summary)) <= 2
    assert "JIT compiler" in summary
    assert re.search(r"editing|colour|library|modules", summary)
    assert "[" not in summary and "'" not in summary


def test_summary_of_short_hits_and_of_dict_hits() -> None:
    titles = ask(render("Summarize {hits}", {"hits": ["Otters - Wikipedia", "Sea otter facts and photos"]})).text
    assert "otter" in titles.lower() and "[" not in titles
    dicts = [
        {"title": "Otters", "snippet": "Otters are semiaquatic mammals in the weasel family."},
        {"title": "Sea otters", "snippet": "Sea otters have the densest fur of any animal."},
    ]
    summary = ask(render("Summarize {hits}", {"hits": dicts})).text
    assert "weasel family" in summary and "{" not in summary and "snippet" not in summary


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {
                "question": "Why do otters hold hands?",
                "notes": ["Otters sleep floating on water.", "Currents can separate them."],
                "quotes": ["'They hold hands so they don't drift apart' - a marine biologist"],
            },
            ["otters", "drift apart"],
        ),
        (
            {
                "question": "What is the capital of France?",
                "notes": "Paris is the capital and largest city of France.",
                "quotes": ["Paris is always a good idea"],
            },
            ["Paris", "France"],
        ),
        (
            {
                "question": "When did the Berlin Wall fall",
                "notes": ["The Berlin Wall fell on 9 November 1989."],
                "quotes": [],
            },
            ["Berlin Wall", "1989"],
        ),
    ],
)
def test_answer_from_notes_and_quotes_mentions_the_question_subject(
    values: dict[str, object], expected: list[str]
) -> None:
    answer = ask(render("Answer {question} from {notes} and {quotes}", values)).text
    for word in expected:
        assert word.lower() in answer.lower(), answer
    assert not re.search(r"[\[\]]", answer)
    assert answer.endswith((".", "!"))
    assert len(answer.split()) <= 40


# --------------------------------------------------------------------------- plain prompts get answers on topic


def numbered(text: str) -> list[str]:
    """The items of a numbered list ('1. a', '2. b'), checking the numbering."""
    lines = text.splitlines()
    assert [line.split(". ", 1)[0] for line in lines] == [str(i) for i in range(1, len(lines) + 1)], text
    return [line.split(". ", 1)[1] for line in lines]


class Feedback(BaseModel):
    sentiment: str
    verdict: Literal["good", "bad", "mixed"]
    stars: int = Field(ge=1, le=5)


SUMMARISED = (
    "The Industrial Revolution began in Britain in the late 18th century. It transformed manufacturing "
    "with steam power and new machines. Cities grew quickly as workers moved from farms."
)
LABELS = ("positive", "negative", "neutral")

PLAIN_PROMPTS: list[tuple[str, Any, Callable[[Any], object]]] = [
    ("What is 17*3?", None, lambda a: re.search(r"\b51\b", a)),
    ("Calculate (12 + 8) / 4", None, lambda a: re.search(r"= 5\b", a)),
    ("What is seven times six?", None, lambda a: "42" in a),
    ("What is 15% of 80?", None, lambda a: re.search(r"= 12\b", a)),
    ("Is this review positive? I loved this film, it was wonderful.", None, lambda a: a.startswith("Yes")),
    ("Is this message friendly? You are an idiot and I hate this.", None, lambda a: a.startswith("No")),
    (
        "Classify the sentiment as positive, negative or neutral: The food was terrible and the staff were rude.",
        None,
        lambda a: a == "negative",
    ),
    ("Classify the sentiment as positive, negative or neutral: I love this phone.", None, lambda a: a == "positive"),
    (
        "Is this a bug report, a feature request or a question? The app crashes when I export my data.",
        None,
        lambda a: a == "bug report",
    ),
    (
        "Extract the email address from: Write to Ada Lovelace at ada.lovelace@example.com before Friday.",
        None,
        lambda a: a == "ada.lovelace@example.com",
    ),
    ("Extract the date from: The meeting moved to 2024-03-15 in room 4.", None, lambda a: a == "2024-03-15"),
    ("Translate to French: Hello world", None, lambda a: a == "[fr] Hello world"),
    (
        f"Summarize: {SUMMARISED}",
        None,
        lambda a: "Industrial Revolution" in a and len(a.split()) < len(SUMMARISED.split()),
    ),
    ("List three benefits of exercise", None, lambda a: len(set(numbered(a))) == 3),
    (
        "Give me five ideas for a birthday party",
        None,
        lambda a: len(set(items := numbered(a))) == 5 and all("party" in i.lower() for i in items),
    ),
    (
        "Customer feedback: the service was terrible and the soup was cold.",
        Feedback,
        lambda a: a.sentiment == "negative" and a.verdict == "bad" and 1 <= a.stars <= 5,
    ),
    (
        "What is a good title of a movie about space cats?",
        None,
        lambda a: re.search(r"cat|space", a, re.I) and a == a.strip() and len(a.split()) <= 8 and a[0].isupper(),
    ),
    (
        "Two main characters for a movie called The Lost Robot?",
        None,
        lambda a: len({i.split()[0] for i in numbered(a)}) == 2,
    ),
    (
        "Your opinion on the movie 'The Lost Robot'?",
        "a harsh critic",
        lambda a: "The Lost Robot" in a and re.search(r"Score: ([1-9]|10)/10\.$", a),
    ),
    ("Write a welcome message for the chess club", None, lambda a: "chess club" in a and "\n" not in a),
]


@pytest.mark.parametrize(("prompt", "extra", "on_topic"), PLAIN_PROMPTS, ids=[p[0][:40] for p in PLAIN_PROMPTS])
def test_plain_prompts_get_answers_on_topic(prompt: str, extra: Any, on_topic: Callable[[Any], object]) -> None:
    schema, system = (extra, None) if isinstance(extra, type) else (None, extra)
    response = ask(prompt, schema=schema, system=system)
    assert on_topic(response.value), response.text
    assert response.text == ask(prompt, schema=schema, system=system).text  # the same request, the same answer


def test_there_are_twenty_distinct_plain_prompts() -> None:
    assert len(PLAIN_PROMPTS) == 20
    assert len({prompt for prompt, _, _ in PLAIN_PROMPTS}) == 20


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("What is 2 + 2 * 3?", "8"),
        ("What is 100 - 58?", "42"),
        ("What is 7 divided by 2?", "3.5"),
        ("What is (1 + 2) * (3 + 4)?", "21"),
        ("What is 1.5 + 2.25?", "3.75"),
        ("19 * 23", "437"),
    ],
)
def test_sums_are_worked_out(prompt: str, expected: str) -> None:
    assert ask(prompt).text.endswith(f"= {expected}")


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Extract the email from: Write to ann@example.org, or to bob@example.com.", "ann@example.org"),
        ("Extract all the emails from: ann@example.org, or bob@example.com.", "ann@example.org, bob@example.com"),
        ("List the dates in: moved from 2024-03-15 to 2024-04-02.", "2024-03-15, 2024-04-02"),
    ],
)
def test_extraction_gives_one_match_or_every_one_asked_for(prompt: str, expected: str) -> None:
    assert ask(prompt).text == expected


def test_sums_are_parsed_never_run_as_code() -> None:
    assert "no value" in ask("What is 1/0?").text and "divides by zero" in ask("What is 1/0?").text
    assert "1024" not in ask("What is 2**10?").text  # a power is not a sum: refused, not computed
    assert ask("What is the capital of France?").text != ask("What is 1 + 1?").text
    assert not re.search(r"=\s*\d", ask("What is the date 2024-03-15?").text)  # a date is not a subtraction


def test_literal_and_enum_fields_take_the_value_the_prompt_names() -> None:
    class Pick(BaseModel):
        genre: Genre
        audience: Literal["family", "adults"]
        mood: Literal["happy", "sad", "neutral"]

    pick = ask("A comedy for adults that leaves everyone sad", schema=Pick).value
    assert (pick.genre, pick.audience, pick.mood) == (Genre.COMEDY, "adults", "sad")
    happy = ask("A wonderful, happy story I loved", schema=Pick).value
    assert happy.mood == "happy" and happy.genre is Genre.DRAMA  # no genre named: the first


def test_label_like_string_fields_get_a_sensible_label_never_random_words() -> None:
    class Ticket(BaseModel):
        sentiment: str
        category: str
        label: str

    ticket = ask("Ticket: the app crashes and I hate it", schema=Ticket).value
    assert ticket.sentiment == "negative" and ticket.category == "bug" and ticket.label == "bug"
    offered = ask("Is this a bug report, a feature request or a question? Could you add a dark mode?", schema=Ticket)
    assert offered.value.label == "feature request"
    calm = ask("Ticket: the parcel arrived on Tuesday", schema=Ticket).value
    assert calm.sentiment == "neutral"


def test_schema_numbers_and_names_come_from_the_prompt() -> None:
    class Sum(BaseModel):
        answer: int
        year: int
        people: list[str]

    value = ask("What is 17*3, for a film from 1999 with four people?", schema=Sum).value
    assert value.answer == 51 and value.year == 1999
    assert len(value.people) == 4 and len({p.split()[0] for p in value.people}) == 4


# --------------------------------------------------------------------------- bounded work, data as package data

HOSTILE_PROMPTS = {
    "a million brackets": "Summarize: " + "[" * 1_000_000,
    "a million braces": "{" * 1_000_000,
    "deeply nested brackets": "Summarize " + "[" * 5_000 + "]" * 5_000,
    "a deeply bracketed sum": "What is " + "(" * 100_000 + "1" + ")" * 100_000 + "?",
    "a sum of 300,000 terms": "What is " + "1+" * 300_000 + "1?",
    "a tower of powers": "What is 9**9**9**9?",
    "a number of 5,000 digits": "What is " + "9" * 5_000 + " * 9?",
    "200,000 question words": "Answer why " + "why " * 200_000 + "?",
    "300,000 labels": "Classify as " + "a, " * 300_000 + "or b: text",
    "an address that never ends": "Extract the email from: " + "a" * 1_000_000,
    "a phone number that never ends": "Extract the phone number from: " + "1 " * 1_000_000,
    "a million quotes": "Your opinion on " + "'x " * 1_000_000,
    "100,000 notes": "Answer why is the sky blue? from " + repr([f"note {i}" for i in range(100_000)]),
    "50,000 people": "Welcome " + repr([{"name": "x" * 10}] * 50_000),
    "a sale that never closes": "Welcome Ada. On sale: " + "[" * 100_000,
    "a million characters": "Lyrics of a song. The characters are " + "Ada " * 1_000_000,
}


class Hostile(BaseModel):
    title: str
    sentiment: str
    items: list[str]


@pytest.mark.parametrize("name", list(HOSTILE_PROMPTS))
def test_a_huge_or_hostile_prompt_is_answered_within_a_second(name: str) -> None:
    for schema in (None, Hostile):
        started = time.monotonic()
        response = ask(HOSTILE_PROMPTS[name], schema=schema)
        assert time.monotonic() - started < 1.0, name
        assert response.offline and len(response.text) < (5_000 if schema else 2_000)  # short, however long the prompt


@pytest.mark.parametrize("name", list(HOSTILE_PROMPTS))
def test_a_huge_or_hostile_prompt_is_answered_in_bounded_memory(name: str) -> None:
    prompt = HOSTILE_PROMPTS[name]
    tracemalloc.start()
    try:
        ask(prompt)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20 + 4 * len(prompt), f"{name}: {peak / 2**20:.1f} MB"


def test_the_vocabulary_and_rules_are_package_data_read_once_on_first_use() -> None:
    data = resources.files("flowmagic.llm.offline_data")
    assert {"words.json", "rules.json"} <= {f.name for f in data.iterdir()}
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'(?m)^"flowmagic\.llm\.offline_data" = \["\*\.json"\]', pyproject)
    code = (
        "import asyncio\n"
        "from flowmagic.llm import offline_data\n"
        "from flowmagic.llm.offline import OfflineProvider\n"
        "from flowmagic.llm.protocol import LLMRequest\n"
        "before = offline_data.vocab.cache_info().currsize\n"
        "p = OfflineProvider()\n"
        "for q in ('What is 17*3?', 'Title of a movie about cats'):\n"
        "    asyncio.run(p.complete(LLMRequest(prompt=q, model='offline')))\n"
        "info = offline_data.vocab.cache_info()\n"
        "print(before, info.currsize, info.misses)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), LATENCY_ENV: "0"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["0", "1", "1"]  # nothing read at import, then once for both answers


@pytest.mark.parametrize("dump", [repr, json.dumps], ids=["python", "json"])
def test_values_in_a_prompt_read_the_same_written_as_python_or_as_json(dump: Callable[[object], str]) -> None:
    info = {"name": "Ada Lovelace", "vip": True, "email": "ada@example.com", "note": None}
    message = ask(
        f"You are a marketing expert. Welcome {dump(info)} ...\n"
        f"Time: 2026-11-21 10:00. Purchases: {dump(['tea', 'scones'])}. On sale: {dump(['jam', 'tea cups'])}."
    ).text
    assert "Ada" in message and ("jam" in message or "tea cups" in message)
    assert not re.search(r"[\[\]{}\"]|\bTrue\b|\btrue\b|\bNone\b|\bnull\b", message), message
    summary = ask(f"Summarize {dump(HITS)}").text
    assert "JIT compiler" in summary and not re.search(r"[\[\]\"]", summary)
