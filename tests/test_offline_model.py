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
from pathlib import Path
from typing import Literal, Optional

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
