"""The embedded offline model: deterministic, instant-ish, no network, no weights.

It is used when no API key or server is configured, so a workshop notebook runs
anywhere. Answers are built from the prompt's own words and a small vocabulary;
they are short and read like answers, but they are not intelligent. Every answer
is flagged ``offline=True`` so the display can label it.

How a prompt is read: values interpolated into it as Python literals (a list of
search hits, a dict of user info) are unpacked into plain text first; then the
*subject* is found (a quoted name, the name after "called", the topic after
"about" or "for") and the answer is built around it, not around the first
content word of the prompt.
"""

from __future__ import annotations

import ast
import asyncio
import datetime as _dt
import decimal
import enum
import hashlib
import json
import math
import os
import re
import types
import typing
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard, TypeVar

from pydantic import BaseModel, ValidationError

from flowmagic.llm.protocol import LLMError, LLMRequest, LLMResponse, TextCallback, invalid_answer

_T = TypeVar("_T")

LATENCY_ENV = "FLOWMAGIC_OFFLINE_LATENCY"
DEFAULT_LATENCY = 0.5  # mean seconds; the actual delay is 0.4x..1.6x of it
FIRST_TEXT_SHARE = 0.3  # a streamed answer's first words arrive after this share of the delay

# --------------------------------------------------------------------------- vocabulary


def _vocab(words: str) -> tuple[str, ...]:
    return tuple(words.split())


_ADJECTIVES = _vocab(
    "silver midnight hidden golden wild quiet broken electric endless little lost brave crimson secret"
)
_NOUNS = _vocab("journey secret promise dream night road legacy echo horizon storm kingdom summer heart shadow river")
_FIRST_NAMES = _vocab("Ava Leo Maya Noah Iris Theo Zara Felix Nina Oscar Luna Hugo Mira Elias Cleo Jonah")
_LAST_NAMES = _vocab(
    "Marlowe Quill Hart Vance Okafor Lindqvist Moreau Sato Reyes Blackwood Novak Castillo Ferris Adeyemi Holm Kaur"
)
_ROLES = _vocab("inventor detective pilot teacher rebel captain baker musician scientist sidekick explorer mechanic")
_TRAITS = _vocab("curious stubborn kind-hearted reckless witty shy fearless grumpy loyal dreamy clever restless")
_PROS = (
    "the lead performance is genuinely moving",
    "the visuals are striking",
    "the story takes real risks",
    "the humour lands more often than not",
    "the soundtrack carries every scene",
    "its central idea feels fresh",
)
_CONS = (
    "the middle act drags",
    "the ending feels rushed",
    "it leans too hard on familiar tricks",
    "some dialogue lands with a thud",
    "it plays things a little too safe",
)
_SONG_PROS = (
    "the melody lingers long after it ends",
    "the hook lands on the first listen",
    "the rhymes feel effortless",
    "the bridge builds to a real lift",
    "the imagery is vivid without trying too hard",
)
_SONG_CONS = (
    "the rhymes are a little predictable",
    "the second verse loses steam",
    "it repeats itself once too often",
    "some lines feel like filler",
    "the ending arrives too abruptly",
)
_OTHER_PROS = (
    "the core idea is clear",
    "it is carefully put together",
    "it has real personality",
    "the details are well chosen",
)
_OTHER_CONS = (
    "it tries to do too much at once",
    "parts of it feel unfinished",
    "it plays things a little too safe",
    "the finish feels rushed in places",
)
_VERDICTS = (  # indexed by score band: 1-3, 4-5, 6-7, 8-10
    ("A letdown", "Hard to recommend", "A missed chance"),
    ("A mixed bag", "Watchable but uneven", "Half there"),
    ("An enjoyable ride", "A solid effort", "Worth your time"),
    ("A triumph", "Simply wonderful", "A small masterpiece"),
)
_SONG_VERDICTS = (
    ("A letdown", "Hard to love", "A missed chance"),
    ("A mixed bag", "Pleasant but uneven", "Half there"),
    ("A solid effort", "Worth a listen", "Easy to like"),
    ("A triumph", "Simply wonderful", "A small masterpiece"),
)
# Critic openings about a quoted body (lyrics, a draft...): {part} chorus/verses/story,
# {verb} sings/reads, {topic} its key words, {line} its first line.
_CRITIC_UP = (
    "the {kind}'s {part} about {topic} really sticks.",
    'the opening line, "{line}", pulls you straight in.',
    "the way it {verb} about {topic} feels honest.",
)
_CRITIC_DOWN = (
    "the {kind}'s {part} about {topic} never quite takes off.",
    'the opening line, "{line}", promises more than the {kind} delivers.',
    "it {verb} about {topic} without saying much.",
)
# Movie titles around a subject phrase ('space cats'); {Place} is scenery that goes with it.
_TITLE_TEMPLATES = (
    "{Phrase}",
    "The {Phrase} Odyssey",
    "The {Adj} {Phrase}",
    "{Phrase} and the {Adj} {Noun}",
    "The {Noun} of the {Phrase}",
    "Return of the {Phrase}",
    "{Phrase}: The {Adj} {Noun}",
    "{Head} Among the {Place}",
)
_PROPER_TITLE_TEMPLATES = (  # the subject is a name ('Rome'): no 'the' in front of it
    "{Phrase}",
    "{Phrase} and the {Adj} {Noun}",
    "The {Noun} of {Phrase}",
    "{Phrase}: The {Adj} {Noun}",
    "{Adj} {Phrase}",
)
_SONG_TEMPLATES = (  # a song about a topic
    "{Phrase} Blues",
    "{Adj} {Phrase}",
    "{Phrase} (Tonight)",
    "Songs for the {Adj} {Phrase}",
    "Ballad of the {Phrase}",
)
_SONG_FOR_NAME = (  # a song for something with a name, usually a movie: {Name}, {Key} one of its words
    "Theme from {Name}",
    "{Name} (Main Theme)",
    "{Name}: End Credits",
    "Lullaby for {the}{Key}",
    "Ballad of the {Adj} {Key}",
    "Songs for the {Adj} {Key}",
    "{Adj} {Key} Serenade",
    "{Key} Lullaby",
    "{Image} Lullaby",
    "{Image} (Tonight)",
)
# word (singular) -> (scenery for 'X Among the <scenery>', an image for a song title)
_ASSOCIATIONS = {
    "space": ("Stars", "Stardust"),
    "star": ("Comets", "Stardust"),
    "planet": ("Stars", "Stardust"),
    "moon": ("Stars", "Moonlight"),
    "galaxy": ("Stars", "Stardust"),
    "alien": ("Stars", "Starlight"),
    "rocket": ("Stars", "Starlight"),
    "astronaut": ("Stars", "Starlight"),
    "ocean": ("Waves", "Moonlit Tide"),
    "sea": ("Waves", "Moonlit Tide"),
    "pirate": ("Waves", "Salt and Silver"),
    "ship": ("Waves", "Salt and Silver"),
    "island": ("Waves", "Island Breeze"),
    "beach": ("Waves", "Island Breeze"),
    "fish": ("Waves", "Deep Blue"),
    "shark": ("Waves", "Deep Blue"),
    "forest": ("Pines", "Wildwood"),
    "tree": ("Pines", "Wildwood"),
    "wolf": ("Pines", "Howling Moon"),
    "bear": ("Pines", "Wildwood"),
    "city": ("Skyscrapers", "Neon Nights"),
    "robot": ("Machines", "Electric Heart"),
    "computer": ("Machines", "Electric Heart"),
    "chef": ("Spices", "Midnight Kitchen"),
    "kitchen": ("Spices", "Midnight Kitchen"),
    "cook": ("Spices", "Midnight Kitchen"),
    "desert": ("Dunes", "Desert Wind"),
    "mountain": ("Clouds", "High Country"),
    "bird": ("Clouds", "Wings of Morning"),
    "dragon": ("Clouds", "Dragonfire"),
    "sky": ("Clouds", "Blue Horizon"),
    "winter": ("Snowflakes", "Snowfall"),
    "snow": ("Snowflakes", "Snowfall"),
    "ghost": ("Shadows", "Moonlight"),
    "haunted": ("Shadows", "Moonlight"),
    "vampire": ("Shadows", "Moonlight"),
    "detective": ("Shadows", "Rain on the Window"),
    "cat": ("Rooftops", "Purring Moon"),
    "dog": ("Meadows", "Good Boy Blues"),
    "garden": ("Roses", "Rosewater"),
    "summer": ("Fireflies", "Golden Hour"),
    "road": ("Milestones", "Open Road"),
    "train": ("Tracks", "Midnight Train"),
    "school": ("Lockers", "Last Bell"),
}
_LYRICS = (  # no characters named: {Hook} is the song or its topic, {k2} another topic word
    (
        "{Hook} under {a_adj} sky,",
        "we never ask the reason why,",
        "{k2} is calling out my name,",
        "and nothing ever feels the same.",
    ),
    (
        "I heard {Hook} in the morning rain,",
        "{adj} and burning once again,",
        "hold on to {k2} tonight,",
        "we'll be dancing in the light.",
    ),
    (
        "Every road leads back to {Hook},",
        "every {noun} is {adj} and weak,",
        "sing it loud for {k2} and me,",
        "{adj} hearts were born to be free.",
    ),
)
_LYRICS_WITH_CHARACTERS = (  # {A} and {B} are the characters' first names
    (
        "{Hook}, burning {adj} and bright,",
        "{A} is dancing through the night,",
        "{B} keeps every {noun} near,",
        "sing it loud so the stars can hear.",
    ),
    (
        "{A} looks up at {a_adj} sky,",
        "{B} never asks the reason why,",
        "{Hook}, play it one more time,",
        "every {noun} becomes a rhyme.",
    ),
    (
        "Every road leads back to you, {A},",
        "{B} sings along the whole night through,",
        "{Hook}, our {adj} refrain,",
        "and nothing ever feels the same.",
    ),
)
_WELCOME = (
    "Welcome to {Subject}! We're thrilled to have you here. Come in, look around and make yourself at home.",
    "Hello and welcome to {Subject}! Great things start here, and we can't wait to share them with you.",
    "Big news: {Subject} is ready for you! Drop by, say hello and see what everyone is talking about.",
)
# A welcome for a person: greeting, then what is on sale, then a nod to what they bought.
_HELLO_RETURNING = (
    "{Greeting}, {Name}, and welcome back!",
    "Welcome back, {Name}!",
    "Hi {Name}, great to see you again!",
)
_HELLO_NEW = ("{Greeting}, {Name}, and welcome!", "Welcome, {Name}!", "Hi {Name}, we're so glad you're here!")
_SALE = (
    "Good news: {sale} {be} on sale today.",
    "Today only, {sale} {be} on sale.",
    "Don't miss it: {sale} {be} on sale right now.",
)
_PAIRING = (
    "{They} would go perfectly with your {purchase}.",
    "{They}'d pair nicely with the {purchase} you picked up last time.",
    "A perfect match for your {purchase}!",
)
_NO_SALE = (
    "We hope you're enjoying your {purchase}, and there's plenty more to discover.",
    "Thanks for coming back; we've saved a few new things for you to explore.",
)
_CLOSING = ("Come by and take a look!", "We can't wait to see you.", "Treat yourself!")
_SUMMARIES = (
    "In short, {subject} follows {plot} and the people caught up in it.",
    "{Subject} comes down to {plot}, and what it costs everyone involved.",
    "At heart, {subject} is about {plot} that changes everything.",
)
_SUMMARY_MORE = ("It then turns to {topics}.", "It also covers {topics}.")
_SUMMARY_ITEMS = (
    "The other results cover {topics}.",
    "Beyond that, they touch on {topics}.",
    "Other points: {topics}.",
)
_PLOTS = (
    "a fateful journey",
    "an unlikely friendship",
    "a dangerous secret",
    "a bittersweet love story",
    "a long-buried mistake",
    "a desperate rescue",
    "a bitter rivalry",
    "a broken promise",
)
_ITEMS = (
    "{A_adj} {topic} with {a_noun} theme",
    "{Topic}, {adj} edition",
    "{A_adj} twist on the classic {topic}",
    "A {topic} inspired by the {adj} {noun}",
    "A small, {adj} {topic} for close friends",
)
_CATEGORIES = {
    "colors": _vocab("red orange yellow green blue indigo violet teal"),
    "fruits": _vocab("apple banana mango cherry pear kiwi peach plum"),
    "vegetables": _vocab("carrot spinach broccoli pepper leek pumpkin kale onion"),
    "animals": _vocab("fox otter owl tiger dolphin hedgehog penguin wolf"),
    "countries": _vocab("Japan Brazil Kenya Norway Mexico India Italy Canada"),
    "cities": _vocab("Lisbon Kyoto Nairobi Montreal Prague Lima Seoul Oslo"),
    "planets": _vocab("Mercury Venus Earth Mars Jupiter Saturn Uranus Neptune"),
    "sports": _vocab("football tennis swimming cycling basketball rowing judo climbing"),
    "languages": _vocab("Python Rust JavaScript Go Julia Haskell Kotlin Ruby"),
    "instruments": _vocab("piano violin guitar drums cello flute trumpet harp"),
    "flowers": _vocab("rose tulip daisy lily orchid sunflower lavender peony"),
}
_CATEGORIES["colours"] = _CATEGORIES["colors"]
_EPITHETS = (
    "with a hidden past",
    "on one last mission",
    "who never gives up",
    "who keeps a dangerous secret",
    "running from an old mistake",
    "with a plan nobody believes in",
)
_GENERIC = (
    "In short, {k} comes down to {k2} and {k3}.",
    "{K} is best understood through {k2}; start there and the rest follows.",
    "Good question: {k} is closely tied to {k2}, and that is the part worth remembering.",
    "The key point is that {k} shapes {k2} more than most people expect.",
)
_GENERIC_ONE = (  # only one key word in the prompt
    "In short, {k} is simpler than it looks: start small and the rest follows.",
    "{K} is best understood step by step; once the first step clicks, the rest follows.",
    "Good question: the heart of {k} is one simple idea, and everything else builds on it.",
)

_NUMBER_WORDS = {word: n for n, word in enumerate(_vocab("one two three four five six seven eight nine ten"), 1)}
_NUMBER_WORDS |= {"eleven": 11, "twelve": 12, "couple": 2}
_STOPWORDS = frozenset(
    _vocab(
        """a an the and or but of to in on at by for with from into about as is are was were be
        been being it its this that these those there their them they he she his her we our you
        your i me my mine us who whom which what when where why how do does did doing can could
        would should will shall may might must not no yes so than then too very just also only
        some any each every all both few more most other such own same up down out over under
        again further once here please give write tell create make generate suggest describe
        explain provide show list short brief new one two three four five six seven eight nine ten
        eleven twelve couple title titles movie movies film films song songs lyrics lyric
        summarize summarise summary review reviews opinion opinions critic critics critique main
        character characters idea ideas item items thing things message marketing welcome email
        slogan tagline name names sentence sentences line lines word words following text
        paragraph story stories kind like get let find need want using based called something
        good great best nice soundtrack theme among through across between behind beyond within
        without around toward towards upon onto off via per while during until since after
        before am has have had having answer answers question questions notes note quotes quote
        expert assistant helpful friendly named titled entitled"""
    )
)
_RELATIVE = frozenset({"who", "that", "which"})
_FUNCTION_STARTS = frozenset(
    _vocab("the a an they it this these those there we you he she its their our some many most all each every his her")
)
_PRONOUNS = frozenset(_vocab("it they this these those he she we you i its their"))
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_QUOTED_RE = re.compile(
    r"[\"\u201c]([^\"\u201d\n]{2,80})[\"\u201d]|(?<![\w])['\u2018]([^'\u2019\n]{2,80}?)['\u2019](?![\w])"
)
_COUNT_RE = re.compile(
    r"\b(\d{1,2}|" + "|".join(_NUMBER_WORDS) + r")\s+(?:[a-z'\-]+\s+){0,3}?([a-z'\-]+s)\b",
    re.IGNORECASE,
)


class _Dice:
    """Deterministic choices from a seed: sha256(seed + counter), stable across processes."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def integer(self) -> int:
        self._counter += 1
        digest = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
        return int.from_bytes(digest[:8], "big")

    def below(self, n: int) -> int:
        return self.integer() % n

    def unit(self) -> float:
        return self.integer() / 2**64

    def pick(self, options: Sequence[_T]) -> _T:
        return options[self.below(len(options))]


def _schema_key(schema: Any) -> Any:
    if schema is None:
        return None
    try:
        return [schema.__name__, schema.model_json_schema()]
    except Exception:  # not a pydantic model: the name still keys the answer
        return getattr(schema, "__name__", repr(schema))


def request_seed(request: LLMRequest) -> bytes:
    """The hash every offline answer and delay is derived from."""
    key = [request.model, request.system, request.prompt, request.temperature, _schema_key(request.schema)]
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).digest()


def estimate_tokens(text: str | None) -> int:
    """A rough token count (about 4 tokens per 3 words), good enough for display."""
    return math.ceil(len((text or "").split()) * 4 / 3)


# --------------------------------------------------------------------------- interpolated values

_OPENERS = re.compile(r"[\[{]")
# Brackets and complete one-line string literals: a lone apostrophe ("don't") is not a token.
_LITERAL_TOKEN = re.compile(r"[\[\]{}()]|'(?:[^'\\\n]|\\.)*'" + r'|"(?:[^"\\\n]|\\.)*"')
_LITERAL_TRIES = 32  # brackets that turn out not to open a literal; bounds the work on odd prompts
_LITERAL_MAX = 200_000
_TEXT_KEYS = ("snippet", "text", "content", "body", "summary", "description", "answer", "quote", "note")
_NAME_KEYS = ("name", "first_name", "firstname", "full_name", "fullname", "user", "username", "customer")


def _literal_end(text: str, start: int) -> int | None:
    """The index just after the bracketed span opening at ``text[start]`` (quoted strings skipped)."""
    depth = 0
    for token in _LITERAL_TOKEN.finditer(text, start, min(len(text), start + _LITERAL_MAX)):
        char = token.group()
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
            if depth == 0:
                return token.end()
    return None


def _literals(text: str) -> list[tuple[int, int, Any]]:
    """Python list/dict/set literals in ``text`` (how f-strings print them): (start, end, value)."""
    found: list[tuple[int, int, Any]] = []
    pos = tries = 0
    while tries < _LITERAL_TRIES and (match := _OPENERS.search(text, pos)) is not None:
        start = match.start()
        end = _literal_end(text, start)
        if end is not None:
            try:
                value = ast.literal_eval(text[start:end])
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                value = None
            if isinstance(value, (list, tuple, dict, set)):
                found.append((start, end, value))
                pos = end
                continue
        pos = start + 1
        tries += 1
    return found


def _texts(value: Any) -> list[str]:
    """The readable strings inside a literal value, in order."""
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, dict):
        for key in _TEXT_KEYS:
            if isinstance(value.get(key), str) and value[key].strip():
                return [value[key].strip()]
        parts = [t for v in value.values() for t in _texts(v)]
        if not parts:
            return []
        return [parts[0] + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")]
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [t for item in items for t in _texts(item)]
    if value is None:
        return []
    return [str(value)]


def _join(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" and {items[-1]}"


def _is_sentence(text: str) -> bool:
    return len(text.split()) >= 5


def _as_sentences(items: Sequence[str]) -> str:
    return " ".join(i if i[-1] in ".!?" else f"{i}." for i in items)


def _readable(prompt: str) -> str:
    """``prompt`` with list/dict literals spelled out: ['tea', 'jam'] -> 'tea and jam'."""
    spans = _literals(prompt)
    if not spans:
        return prompt
    out: list[str] = []
    pos = 0
    for start, end, value in spans:
        out.append(prompt[pos:start])
        items = _texts(value)
        if items and all(_is_sentence(i) for i in items):
            text = _as_sentences(items)
            if prompt[end : end + 1] == ".":
                end += 1  # 'Notes: [...].' must not end in '..'
        else:
            text = _join(items)
        out.append(text)
        pos = end
    out.append(prompt[pos:])
    return "".join(out)


def _listed(prompt: str) -> list[str]:
    """The strings of the literal lists in ``prompt`` (search hits, notes...)."""
    return [t for _, _, value in _literals(prompt) if not isinstance(value, dict) for t in _texts(value)]


# --------------------------------------------------------------------------- text helpers


def _keywords(text: str) -> list[str]:
    """Content words in order of appearance, without duplicates or the verb after who/that."""
    words = _WORD_RE.findall(text)
    seen: set[str] = set()
    out: list[str] = []
    for i, word in enumerate(words):
        word = re.sub(r"'s$", "", word).strip("'-")
        low = word.lower()
        if not word or low in _STOPWORDS or low in seen or len(low) < 2:
            continue
        if i > 0 and words[i - 1].lower() in _RELATIVE:
            continue
        seen.add(low)
        out.append(word if word[0].isupper() and i > 0 else low)
    return out


def _title_case(text: str) -> str:
    small = {"a", "an", "the", "of", "and", "in", "on", "to", "for", "with", "at", "by", "from"}
    words = text.split()
    out: list[str] = []
    for i, word in enumerate(words):
        starts = i == 0 or words[i - 1].endswith(":")
        if any(c.isupper() for c in word[1:]):
            out.append(word)  # keep 'iPhone', 'NASA'
        elif not starts and word.lower() in small:
            out.append(word.lower())
        else:
            out.append(word[:1].upper() + word[1:])
    return " ".join(out)


def _singular(word: str) -> str:
    low = word.lower()
    if low.endswith("ies") and len(low) > 4:
        return low[:-3] + "y"
    if low.endswith("s") and not low.endswith(("ss", "us", "is")) and len(low) > 3:
        return low[:-1]
    return low


def _is_plural(text: str) -> bool:
    words = text.split()
    if len(words) > 1 and " and " in f" {text} ":
        return True
    last = words[-1].lower() if words else ""
    return last.endswith("s") and not last.endswith(("ss", "us", "is"))


@dataclass(frozen=True)
class _Subject:
    """What a prompt is about: a ``name`` ('Return of the Good') or a ``topic`` ('space cats')."""

    text: str
    kind: str  # "name" | "topic"


def _clean_topic(phrase: str) -> str:
    phrase = re.split(r"[.?!,;:\n]", phrase)[0].strip()
    phrase = re.sub(r"^(?:(?:a|an|the|our|your|my|their|his|her|this|that|some)\s+)+", "", phrase, flags=re.I)
    # 'pirates with three characters': the count belongs to the request, not the topic
    counts = "|".join(_NUMBER_WORDS)
    phrase = re.split(rf"\s+(?:with|and|in)\s+(?:\d+|{counts}|a few|some)\b", phrase, flags=re.I)[0]
    return phrase.strip()


def _subject(prompt: str) -> _Subject | None:
    """The quoted name, the name after 'called', or the topic after 'about'/'for'/'on'."""
    quoted = _quoted(prompt)
    if quoted:
        return _Subject(quoted, "name")
    match = re.search(r"\b(?:called|named|titled|entitled)\s+(.+)", prompt, re.IGNORECASE)
    if match:
        name = re.split(r"[?!;\n]|\.(?:\s|$)|,\s", match.group(1))[0].strip().strip("\"'\u201c\u201d\u2018\u2019")
        if 0 < len(name.split()) <= 10:
            return _Subject(name, "name")
    for pattern in (r"\babout\s+(.+)", r"\b(?:for|on|featuring)\s+(.+)"):
        match = re.search(pattern, prompt, re.IGNORECASE)
        if match:
            phrase = _clean_topic(match.group(1))
            if 0 < len(phrase.split()) <= 6 and _keywords(phrase):
                return _Subject(phrase, "topic")
    return None


def _topic_phrase(prompt: str) -> str | None:
    """The short topic phrase after 'about'/'for'/'called' ('a cat that learns to fly')."""
    subject = _subject(prompt)
    return subject.text if subject else None


def _proper_nouns(prompt: str) -> str | None:
    """The first run of capitalised words inside a sentence ('Bean There'), if any."""
    match = re.search(r"(?<=[a-z,:] )([A-Z][\w'\-]*(?: (?:of |the |and )?[A-Z][\w'\-]*)*)", prompt)
    return match.group(1) if match else None


def _quoted(prompt: str) -> str | None:
    match = _QUOTED_RE.search(prompt)
    if not match:
        return None
    return (match.group(1) or match.group(2)).strip()


def _associated(words: Sequence[str]) -> tuple[str, str] | None:
    """(scenery, song image) for the first word of ``words`` the vocabulary knows."""
    for word in words:
        found = _ASSOCIATIONS.get(_singular(word))
        if found:
            return found
    return None


def _first_clause(text: str, limit: int = 12) -> str:
    clause = re.split(r"[\n.!?;]", text.strip())[0].strip().rstrip(",:")
    words = clause.split()
    return " ".join(words[:limit]) + ("..." if len(words) > limit else "")


def _sentence_start(text: str) -> str:
    """``text`` ready to follow a colon: 'They hold...' -> 'they hold...', 'Paris is...' kept."""
    first = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if first.lower() in _FUNCTION_STARTS else text


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


class _Words:
    """Key words of a prompt (its subject's words first) with safe fallbacks, for filling templates."""

    def __init__(self, prompt: str, dice: _Dice) -> None:
        self.subject = _subject(prompt)
        words = _keywords(self.subject.text) if self.subject else []
        seen = {w.lower() for w in words}
        words += [w for w in _keywords(prompt) if w.lower() not in seen]
        self.list = words or ["idea", "story"]
        self.dice = dice

    def at(self, i: int) -> str:
        return self.list[i % len(self.list)]

    def fill(self, template: str, **extra: str) -> str:
        k, k2, k3 = self.at(0), self.at(1 if len(self.list) > 1 else 0), self.at(2 if len(self.list) > 2 else -1)
        adj, noun = self.dice.pick(_ADJECTIVES), self.dice.pick(_NOUNS)
        a_adj = f"{_article(adj)} {adj}"
        values = {
            "k": k,
            "k2": k2,
            "k3": k3,
            "K": _title_case(k),
            "K2": _title_case(k2),
            "adj": adj,
            "Adj": adj.capitalize(),
            "noun": noun,
            "Noun": noun.capitalize(),
            "a_adj": a_adj,
            "A_adj": a_adj.capitalize(),
            "a_noun": f"{_article(noun)} {noun}",
        }
        values.update(extra)
        return template.format(**values)


# --------------------------------------------------------------------------- answer kinds


def _title(prompt: str, words: _Words) -> str:
    """A movie title around the subject ('space cats'), or a song title for a topic or a named movie."""
    song = bool(re.search(r"\b(song|album|track|band)\b", prompt, re.IGNORECASE))
    subject = words.subject
    dice = words.dice
    if song and subject is not None and subject.kind == "name":
        return _song_for(subject.text, words)
    relative = subject is not None and any(w.lower() in _RELATIVE for w in subject.text.split())
    if subject is not None and subject.kind == "topic" and not song and relative:
        return _title_case(f"the {subject.text}")  # 'The Cat That Learns to Fly'
    phrase_words = _keywords(subject.text) if subject else words.list[:2]
    if subject is not None and 0 < len(subject.text.split()) <= 4 and not song:
        phrase = subject.text
    else:
        phrase = " ".join(phrase_words[:3])
    proper = any(w[:1].isupper() for w in phrase.split())  # 'Rome', 'time travel in Paris': no 'the' before it
    head = phrase_words[-1] if phrase_words else phrase  # 'cats' in 'space cats'
    place = _associated([w for w in phrase_words if w != head] + [head])
    if song:
        templates: tuple[str, ...] = _SONG_TEMPLATES
        if proper:
            templates = tuple(t.replace("the ", "") for t in templates)
    else:
        templates = _PROPER_TITLE_TEMPLATES if proper else _TITLE_TEMPLATES
        if place is None or _singular(place[0]) == _singular(head):
            templates = tuple(t for t in templates if "{Place}" not in t)
        if len(phrase.split()) == 1 or dice.below(3) == 0:
            templates = tuple(t for t in templates if t != "{Phrase}")  # the bare topic is a weak title
    text = words.fill(
        dice.pick(templates),
        Phrase=_title_case(phrase),
        Head=_title_case(head),
        Place=place[0] if place else "Stars",
    )
    return _title_case(text)


def _song_for(name: str, words: _Words) -> str:
    """A song title built on a movie's (or anything's) name."""
    dice = words.dice
    keys = [w for w in _keywords(name) if _singular(w) not in {"return", "odyssey", "legacy", "lullaby", "ballad"}]
    keys = keys or _keywords(name) or [name]
    key = keys[-1]  # the head noun: 'Cats' in 'Return of the Space Cats'
    image = _associated(keys)
    templates = list(_SONG_FOR_NAME)
    if image is None:
        templates = [t for t in templates if "{Image}" not in t]
    if len(name.split()) > 5 or re.search(r"[:()]", name):
        templates = [t for t in templates if "{Name}" not in t]
    if not _is_plural(key):  # 'Lullaby for the Cats' reads well; 'for the Rome' or 'for Lighthouse' would not
        templates = [t for t in templates if "{the}" not in t]
    text = words.fill(
        dice.pick(templates), Name=name, Key=_title_case(key), Image=image[1] if image else "", the="the "
    )
    return _title_case(text)


def _name(dice: _Dice, index: int) -> str:
    # Stepping through the lists by coprime strides keeps names distinct within a list.
    first = _FIRST_NAMES[(dice.below(len(_FIRST_NAMES)) + 5 * index) % len(_FIRST_NAMES)]
    last = _LAST_NAMES[(dice.below(len(_LAST_NAMES)) + 7 * index) % len(_LAST_NAMES)]
    return f"{first} {last}"


def _list_kind(noun: str, prompt: str) -> str:
    if noun in _CATEGORIES:
        return noun
    for kind, pattern in (
        ("titles", r"\btitles?\b"),
        ("characters", r"\b(characters?|heroes|villains|protagonists|people)\b"),
        ("names", r"\bnames?\b"),
        ("questions", r"\bquestions?\b"),
    ):
        if re.search(pattern, noun) or re.search(pattern, prompt, re.IGNORECASE):
            return kind
    return "items"


def _list_item(kind: str, prompt: str, words: _Words, index: int) -> str:
    dice = words.dice
    if kind == "titles":
        return _title(prompt, words)
    if kind == "characters":
        return f"{_name(dice, index)}, a {dice.pick(_TRAITS)} {dice.pick(_ROLES)} {dice.pick(_EPITHETS)}"
    if kind == "names":
        return _name(dice, index).split()[0]
    if kind in _CATEGORIES:
        options = _CATEGORIES[kind]
        return options[(dice.below(len(options)) + index) % len(options)]
    if kind == "questions":
        return f"What makes {words.at(index)} so {dice.pick(_ADJECTIVES)}?"
    topic = _topic_phrase(prompt) or " ".join(words.list[:2])
    return words.fill(dice.pick(_ITEMS), topic=topic, Topic=topic[:1].upper() + topic[1:])


def _numbered(count: int, noun: str, prompt: str, words: _Words) -> str:
    kind = _list_kind(noun, prompt)
    items: list[str] = []
    for i in range(count):
        item = _list_item(kind, prompt, words, i)
        for _ in range(8):  # a few re-rolls keep the items (and characters' first names) distinct
            if item not in items and not (kind == "characters" and item.split()[0] in {x.split()[0] for x in items}):
                break
            item = _list_item(kind, prompt, words, i)
        items.append(item[:1].upper() + item[1:])
    return "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))


def _final_phrase(sentence: str) -> str | None:
    """The content words that end a sentence, usually its object: '... from the standard library'."""
    tokens = re.findall(r"[A-Za-z][A-Za-z'\-]*|[^\sA-Za-z]", sentence.strip().rstrip(".!?"))
    run: list[str] = []
    before = ""
    for position in range(len(tokens) - 1, -1, -1):
        token = tokens[position]
        low = token.lower()
        content = [w for w in run if w.lower() != "and"]
        if low == "and" and run and "and" not in run and len(content) < 3:
            run.insert(0, token)
            continue
        if not token[0].isalpha() or low in _STOPWORDS or low.endswith("ly") or len(content) >= 3:
            before = low
            break
        run.insert(0, token)
    while run and run[0].lower() == "and":
        run.pop(0)
    if before == "to" and len(run) > 1:
        run.pop(0)  # 'to open shellfish': the verb is not the topic
    if run and before == "the":
        run.insert(0, "the")
    return " ".join(run) if run else None


_AUXILIARIES = frozenset(_vocab("is are was were have has had can could will would may might must should do does did"))


def _lower_start(phrase: str, text: str) -> str:
    """Lower-case a phrase's first word unless ``text`` shows it is a name ('Sea otters' -> 'sea otters')."""
    first = phrase.split(" ", 1)[0]
    if (first.isupper() and len(first) > 1) or re.search(rf"(?<=[a-z,;] ){re.escape(first)}\b", text):
        return phrase
    return phrase[:1].lower() + phrase[1:]


def _sentence_topic(sentence: str, text: str) -> str | None:
    """What one sentence adds: its subject ('Sea otters have ...') or else its closing words."""
    tokens = re.findall(r"[A-Za-z0-9][\w.'\-]*", sentence)
    i = 0
    while i < len(tokens) and tokens[i].lower() in {"the", "a", "an", "new", "some", "many", "most"}:
        i += 1
    run: list[str] = []
    while i < len(tokens) and tokens[i].lower() not in _STOPWORDS and len(run) < 3:
        run.append(tokens[i].rstrip("."))
        i += 1
    if run and len(run) <= 2 and i < len(tokens) and tokens[i].lower() in _AUXILIARIES:
        return _lower_start(" ".join(run), text)
    phrase = _final_phrase(sentence)
    return _lower_start(phrase, text) if phrase else None


def _summary(prompt: str, words: _Words, items: Sequence[str] = ()) -> str:
    lines = prompt.strip().splitlines()
    if len(lines) > 1 and re.search(r"\bsummari[sz]e|\bsummary\b|\btl;?dr\b", lines[-1], re.IGNORECASE):
        # 'Context: <text>' then 'Summarize the above.': the text is everything before the ask
        prompt = re.sub(r"^\s*[A-Za-z ]{1,20}:\s*", "", "\n".join(lines[:-1]))
    body = re.sub(r"^\s*summari[sz]e\b[^:\n]*[:\n]", "", prompt, count=1, flags=re.IGNORECASE).strip()
    if body == prompt.strip():  # 'Summarize the plot of Titanic': no separate body
        body = re.sub(r"^\s*summari[sz]e\s+", "", body, flags=re.IGNORECASE)
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", body) if s.strip()]
    if len(items) >= 2:  # a list of hits or notes: lead with the first, name what the others add
        if sum(len(i.split()) for i in items) < 5 * len(items):  # titles, not sentences
            titles = [re.sub(r"\s+[-|\u2013\u2014]\s+[^-|\u2013\u2014]{1,30}$", "", i).strip() for i in items]
            titles = [_lower_start(t, " ".join(items)) for t in dict.fromkeys(titles) if t]
            return f"The results cover {_join(titles[:3])}."
        sentences = [s.strip() for item in items for s in re.split(r"(?<=[.!?])\s+", item) if s.strip()]
    if len(sentences) >= 2 or len(body.split()) > 25:
        first = " ".join(sentences[0].split()[:25]).rstrip(".!?,;:")
        first = first[:1].upper() + first[1:]
        seen = {w.lower() for w in _keywords(first)}
        later: list[str] = []
        for sentence in sentences[1:]:
            phrase = _sentence_topic(sentence, body)
            if phrase and not {w.lower() for w in _keywords(phrase)} <= seen:
                later.append(phrase)
                seen |= {w.lower() for w in _keywords(phrase)}
        later = later[:3]
        if not later:
            return f"{first}."
        more = words.dice.pick(_SUMMARY_ITEMS if len(items) >= 2 else _SUMMARY_MORE)
        if any(" and " in phrase for phrase in later) and len(later) > 1:
            topics = ", ".join(later[:-1]) + f", and {later[-1]}"
        else:
            topics = _join(later)
        return f"{first}. {more.format(topics=topics)}"
    if len(body.split()) >= 6 or body.endswith("."):  # one sentence of text: say it shorter
        return f"In short: {_first_clause(body, 20).rstrip('.')}."
    subject = body.rstrip(".!?") or "the text"
    return words.fill(
        words.dice.pick(_SUMMARIES),
        subject=subject[:1].lower() + subject[1:],
        Subject=subject[:1].upper() + subject[1:],
        plot=words.dice.pick(_PLOTS),
    )


_KIND_RE = re.compile(
    r"\b(?:this|the|that|my|our|your|a|an)\s+(?:new\s+|latest\s+|first\s+)?"
    r"(song|track|album|poem|lyrics|movie|film|show|series|play|book|novel|story|article|essay|"
    r"game|app|product|design|idea|plan|code|painting|restaurant|recipe|draft|script)\b",
    re.IGNORECASE,
)
_MUSIC = {"song", "track", "album", "lyrics", "poem"}
_SCREEN = {"movie", "film", "show", "series", "play", "book", "novel", "story", "script"}


def _critique(prompt: str, system: str | None, words: _Words) -> str:
    dice = words.dice
    score = 3 + dice.below(7)  # 3..9
    mood = (system or "").lower()
    if re.search(r"harsh|strict|grumpy|cynic|tough|severe|picky", mood):
        score -= 2
    if re.search(r"enthusias|kind|generous|fan|positive|cheerful", mood):
        score += 1
    score = max(1, min(10, score))
    band = 0 if score <= 3 else 1 if score <= 5 else 2 if score <= 7 else 3
    kind_match = _KIND_RE.search(prompt)
    kind = kind_match.group(1).lower() if kind_match else ""
    kind = "song" if kind == "lyrics" else kind
    music = kind in _MUSIC or (not kind and bool(re.search(r"\b(song|lyrics|music|album)\b", prompt, re.I)))
    pros: tuple[str, ...]
    cons: tuple[str, ...]
    if music:
        pros, cons = _SONG_PROS, _SONG_CONS
    elif not kind or kind in _SCREEN:
        pros, cons = _PROS, _CONS
    else:
        pros, cons = _OTHER_PROS, _OTHER_CONS
    pro, con = dice.pick(pros), dice.pick(cons)
    if score >= 6:
        body = f"{pro[:1].upper() + pro[1:]}, even if {con}."
    else:
        body = f"{con[:1].upper() + con[1:]}, although {pro}."
    verdict = dice.pick((_SONG_VERDICTS if music else _VERDICTS)[band])
    # 'Your opinion on this song: <lyrics>': the thing itself follows the colon.
    head, sep, quoted_body = prompt.partition(":")
    if not sep or len(quoted_body.split()) < 4:
        head, sep, quoted_body = prompt.partition("\n")
    name = _quoted(head) if sep else None
    if sep and len(quoted_body.split()) >= 4 and name is None and not music:
        name = _lower_start(_first_clause(quoted_body, 14), quoted_body).rstrip(".")
    if sep and len(quoted_body.split()) >= 4 and name is None:
        line = _first_clause(quoted_body)
        topic = _join(_talking_points(quoted_body)[:2]) or "love"
        values = {
            "kind": kind or ("song" if music else "piece"),
            "part": "chorus" if music else "story" if kind in _SCREEN else "idea",
            "verb": "sings" if music else "talks",
            "topic": topic,
            "line": line,
        }
        opening = dice.pick(_CRITIC_UP if score >= 6 else _CRITIC_DOWN).format(**values)
        return f"{verdict}: {opening} {body} Score: {score}/10."
    subject = name or _quoted(prompt) or _proper_nouns(prompt)
    if subject is None:
        subject = words.subject.text if words.subject else _title_case(" ".join(words.list[:3]))
    return f"{verdict}: {subject}. {body} Score: {score}/10."


_COMMON_ADJECTIVES = frozenset(
    _vocab("whole old young big small long dark bright blue red green first last open deep cold warm sweet")
)
_TITLE_RUN_RE = re.compile(r"[A-Z][\w'\-]*(?:(?:\s+(?:of|the|and|from|for|with|in|on|a|an|to))*\s+[A-Z][\w'\-]*)+")


def _talking_points(text: str) -> list[str]:
    """What a piece of text is about: titles ('Cats Among the Stars'), names, then 'the night'-style nouns."""
    points: list[str] = []
    seen: set[str] = set()

    def add(phrase: str) -> None:
        key = phrase.lower().removeprefix("the ")
        if key not in seen and key not in _STOPWORDS:
            seen.add(key)
            points.append(phrase)

    titles = []
    for run in (run for line in text.splitlines() for run in _TITLE_RUN_RE.findall(line)):
        run_words = run.split()
        while run_words and run_words[0].lower() in _STOPWORDS:
            run_words.pop(0)
        if len(run_words) > 1:
            titles.append(" ".join(run_words))
    in_titles = {word for title in titles for word in title.split()}
    # A capitalised word inside a line is a name ('back to you, Noah'), and so is a known first name.
    for match in re.finditer(r"(?:(?<=[\w,] )|^)([A-Z][a-z'\-]+)\b", text, re.MULTILINE):
        name = match.group(1)
        at_start = match.start() == 0 or text[match.start() - 1] == "\n"
        if (name in _FIRST_NAMES or not at_start) and name not in in_titles:
            add(name)
    for match in re.finditer(r"\b(?i:the|every|our|my|your|a|an)\s+([a-z'\-]+)(?:\s+([a-z'\-]+))?", text):
        noun = match.group(1)
        if (noun in _ADJECTIVES or noun in _COMMON_ADJECTIVES) and noun not in _NOUNS and match.group(2):
            noun = match.group(2)
        if len(noun) > 2 and noun not in _STOPWORDS and not noun.endswith(("ly", "ing", "ed")):
            add(f"the {noun}")
    for title in titles:
        add(title)
    return points


def _characters(prompt: str) -> list[str]:
    """First names of the characters a prompt lists ('1. Cleo Blackwood, a ...' or 'are Ada and Bob')."""
    found = re.findall(r"(?:^|\s)\d{1,2}[.)]\s+(?:The\s+)?([A-Z][a-z'\-]+)", prompt)
    if not found:
        match = re.search(r"\bcharacters?\b[^.:\n]*?(?:\bare\b|\bis\b|:)\s+([^.\n]+)", prompt, re.IGNORECASE)
        if match:
            found = re.findall(r"\b([A-Z][a-z'\-]+)(?:\s+[A-Z][a-z'\-]+)*", match.group(1))
    names: list[str] = []
    for name in found:
        if name.lower() not in _STOPWORDS and name not in names:
            names.append(name)
    return names


def _lyrics(prompt: str, words: _Words) -> str:
    subject = words.subject
    dice = words.dice
    names = _characters(prompt)
    if subject is not None and subject.kind == "name" and len(subject.text.split()) <= 8:
        hook = _title_case(subject.text)  # the song's own title
        others = [w for w in words.list if w.lower() not in {k.lower() for k in _keywords(subject.text)}]
    else:
        topic = _keywords(subject.text) if subject else words.list
        topic = topic or words.list
        hook = topic[0] if topic[0][:1].isupper() or _is_plural(topic[0]) else f"the {topic[0]}"
        others = [w for w in reversed(topic) if w != hook] or [w for w in words.list if w != hook]
    k2 = others[0] if others else dice.pick(_NOUNS)
    if len(names) >= 2:
        lines = [words.fill(line, Hook=hook, A=names[0], B=names[1]) for line in dice.pick(_LYRICS_WITH_CHARACTERS)]
    else:
        k2 = names[0] if names else k2
        lines = [words.fill(line, Hook=hook, k2=k2) for line in dice.pick(_LYRICS)]
    return "\n".join(line[:1].upper() + line[1:] for line in lines)


def _recipient(raw: str, prompt: str) -> str | None:
    """The first name of the person a welcome is for ('Welcome Ada (ada@...)', {'name': 'Ada'})."""
    for _, _, value in _literals(raw):
        if isinstance(value, dict):
            for key in _NAME_KEYS:
                name = value.get(key)
                if isinstance(name, str) and name.strip():
                    return name.split()[0]
    for pattern in (
        r"(?i:\b(?:welcome|greet|hello|hi|dear|thank)\s+(?:back\s+)?)([a-z]+)[._\-a-z0-9]*@",  # ada@example.com
        r"(?i:\b(?:message|email|note|letter|greeting|text)\s+(?:for|to)\s+)([A-Z][a-z'\-]+)\b",
        r"(?i:\b(?:welcome|greet|hello|hi|dear|thank)\s+(?:back\s+)?)"
        r"(?:(?i:our|the|new|user|customer|member|guest|client)\s+)*([A-Z][a-z'\-]+)\b(?!\s*[:.]?\s*$)",
        r"(?i:\b(?:name|user|customer|client|member|guest|recipient)\s*[:=]\s*)([A-Z][a-z'\-]+)",
    ):
        match = re.search(pattern, prompt)
        if match and match.group(1).lower() not in _STOPWORDS | {"back", "everyone", "all", "message"}:
            return match.group(1).capitalize() if match.group(1).islower() else match.group(1)
    return None


def _field(raw: str, label: str) -> list[str]:
    """The values after 'Label:' (a spelled-out list, or 'a, b and c')."""
    match = re.search(rf"\b(?:{label})(?:\s*[:=]|\s+(?:are|is|include|includes)\b|(?=\s+[\[{{]))\s*", raw, re.I)
    if not match:
        before = re.search(rf"(\[[^\[\]]*\])\s+(?:are|is)\s+(?:now\s+)?(?:{label})\b", raw, re.IGNORECASE)
        if before is None:
            return []
        try:
            return _texts(ast.literal_eval(before.group(1)))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return []
    rest = raw[match.end() :]
    if rest[:1] in "[{":
        end = _literal_end(rest, 0)
        if end is not None:
            try:
                return _texts(ast.literal_eval(rest[:end]))
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                pass
    text = re.split(r"\.(?:\s|$)|[\n;]", rest)[0]
    return [p.strip(" '\"") for p in re.split(r",\s*|\s+and\s+", text) if p.strip(" '\"")]


def _welcome(prompt: str, words: _Words, raw: str | None = None) -> str:
    raw = prompt if raw is None else raw
    person = _recipient(raw, prompt)
    if person is None:
        subject = _quoted(prompt) or _proper_nouns(prompt) or _title_case(" ".join(words.list[-2:]))
        return words.fill(words.dice.pick(_WELCOME), Subject=subject)
    dice = words.dice
    sale = _field(raw, r"on sale|for sale|sale items?|sales?|offers?|deals?|discounts?|specials?|promotions?")[:2]
    bought = _field(raw, r"(?:past |previous |recent )?purchases|purchased|bought|orders?|order history")
    clock = re.search(r"\b([01]?\d|2[0-3]):[0-5]\d\b", raw)
    hour = int(clock.group(1)) if clock else None
    if hour is None:
        greeting = "Hello"
    else:
        greeting = "Good morning" if hour < 12 else "Good afternoon" if hour < 18 else "Good evening"
    parts = [dice.pick(_HELLO_RETURNING if bought else _HELLO_NEW).format(Greeting=greeting, Name=person)]
    purchase = dice.pick(bought) if bought else ""
    if sale:
        text = _join(sale)
        plural = len(sale) > 1 or _is_plural(text)
        parts.append(dice.pick(_SALE).format(sale=text, be="are" if plural else "is"))
        if purchase:
            parts.append(dice.pick(_PAIRING).format(They="They" if plural else "It", purchase=purchase))
        else:
            parts.append(dice.pick(_CLOSING))
    elif purchase:
        parts.append(dice.pick(_NO_SALE).format(purchase=purchase))
    else:
        parts.append(dice.pick(_CLOSING))
    text = " ".join(parts)
    return text[:1].upper() + text[1:]


_QUESTION_RE = re.compile(
    r"\b(?i:why|what|how|who|when|where|which)\b[^?\n\[{]*?(?:\?|(?=\s+(?i:from|using|based on|given)\b)|(?=\s*$))"
)
_AUX = r"is|are|was|were|do|does|did|can|could|should|would|will|has|have"


def _answer(prompt: str, raw: str, words: _Words) -> str | None:
    """A short answer to the question in ``prompt`` from the notes/quotes/context it carries."""
    match = _QUESTION_RE.search(prompt)
    if not match:
        return None
    question = match.group(0).rstrip("?").strip()
    parts = re.match(rf"(?i)(why|what|how|who|when|where|which)\s+(?:({_AUX})\s+)?(.*)", question)
    if not parts:
        return None
    wh, aux, rest = parts.group(1).lower(), (parts.group(2) or "").lower(), parts.group(3).strip()
    asked = {_singular(w) for w in _keywords(rest)}
    # Sources: the listed values, then the other sentences of the prompt.
    sources = list(_listed(raw))
    leftover = _readable(raw).replace(match.group(0), " ")
    for _, _, value in _literals(raw):
        for text in _texts(value):
            leftover = leftover.replace(text, " ")
    for sentence in re.split(r"(?<=[.!?])\s+|\n", leftover):
        sentence = re.sub(
            r"^\W*(?:(?:answer|from|using|based on|given|and|with|notes?|quotes?|context)\b\W*)+",
            "",
            sentence.strip(),
            flags=re.IGNORECASE,
        )
        sentence = re.sub(r"\s+and\W*$", "", sentence).strip()
        if len(sentence.split()) >= 3 and sentence not in sources:
            sources.append(sentence)
    cleaned: list[str] = []
    for source in sources:
        text = re.sub(r"^['\"\u2018\u201c](.+?)['\"\u2019\u201d]\s*(?:[-\u2013\u2014]\s*.*)?$", r"\1", source.strip())
        text = " ".join(re.split(r"(?<=[.!?])\s", text.strip())[0].split()[:30]).rstrip(".!?,;:")
        if len(text.split()) >= 2:
            cleaned.append(text[:1].upper() + text[1:] + ".")
    if not cleaned:
        return None

    def overlap(text: str) -> int:
        return len(asked & {_singular(w) for w in _keywords(text)})

    ranked = sorted(range(len(cleaned)), key=lambda i: (-overlap(cleaned[i]), i))
    best = cleaned[ranked[0]]
    second = cleaned[ranked[1]] if len(ranked) > 1 else ""
    if second and not overlap(second) and wh != "how":
        second = ""  # an unrelated note would only muddle a short answer
    # 'did the Berlin Wall fall' -> 'the Berlin Wall'; 'is the capital of France' -> 'the capital of France'
    topic = re.sub(r"\s+\w+$", "", rest) if aux in ("do", "does", "did") and len(rest.split()) > 1 else rest
    if wh == "how" and re.search(r"\s(?:work|works|happen|happens|function|operate)$", rest):
        text = f"{topic[:1].upper() + topic[1:]} works like this: {_sentence_start(best)}"
        return f"{text} {second}".strip()
    if wh == "how" and re.match(r"(?i)(?:i|we|you|one|to)\s+", rest):  # 'How can I sleep better?'
        goal = re.sub(r"(?i)^(?:i|we|you|one|to)\s+", "", rest)
        return f"To {goal}: {_sentence_start(best)} {second}".strip()
    if wh == "why" and aux in ("do", "does", "did", ""):
        return f"The short answer on why {rest}: {_sentence_start(best)} {second}".strip()
    if wh == "why":
        return f"Why {aux} {rest}? In short: {_sentence_start(best)} {second}".strip()
    if overlap(best) and best.split()[0].lower() not in _PRONOUNS:
        return best if not second or words.dice.below(2) else f"{best} {second}"
    return f"On {topic}: {_sentence_start(best)}"


def _generic(words: _Words) -> str:
    templates = _GENERIC if len(words.list) > 1 else _GENERIC_ONE
    text = words.fill(words.dice.pick(templates))
    return text[:1].upper() + text[1:]


def _requested_count(prompt: str) -> tuple[int, str] | None:
    match = _COUNT_RE.search(prompt)
    if match:
        raw = match.group(1).lower()
        count = int(raw) if raw.isdigit() else _NUMBER_WORDS[raw]
        if 1 <= count <= 20:
            return count, match.group(2).lower()
    if re.search(r"^\s*list\b|\blist of\b", prompt, re.IGNORECASE):
        plural = re.search(r"\blist(?: of)?(?: \w+){0,3}? (\w+s)\b", prompt, re.IGNORECASE)
        return 3, plural.group(1).lower() if plural else "items"
    return None


def _instruction(prompt: str) -> str:
    """The ask of a prompt without the data it carries, lower-cased: the kind of answer is chosen from it.

    'Your opinion on this song: <lyrics>' -> 'your opinion on this song'; otherwise the first line; plus
    a last line that reads like an ask ('Context: ...' then 'Summarize the above.').
    """
    lines = [line.strip() for line in prompt.splitlines() if line.strip()] or [""]
    head, colon, data = lines[0].partition(": ")
    ask = head if colon and len(data.split()) >= 4 and len(head.split()) > 1 else lines[0]
    last = lines[-1] if len(lines) > 1 else ""
    if re.match(r"(?i)(?:summari[sz]e|tl;?dr|give|write|list|answer|suggest|rate|review|please)\b", last):
        ask = f"{ask[:300]} {last[:300]}"
    return ask[:600].lower()


def _compose_text(request: LLMRequest, dice: _Dice) -> str:
    """The offline answer to a plain-text request."""
    raw = request.prompt
    prompt = _readable(raw)
    low = prompt.lower()
    words = _Words(prompt, dice)
    instruction = _instruction(prompt)
    if re.search(r"\bsummari[sz]e|\bsummary\b|\btl;?dr\b", instruction) or re.search(r"^\s*tl;?dr\b", low):
        return _summary(prompt, words, _listed(raw))
    if re.search(r"^\s*answer\b|\bquestion\s*:", low):
        answered = _answer(prompt, raw, words)
        if answered:
            return answered
    if re.search(r"\blyrics?\b", instruction) or re.search(r"\b(poem|verse)\b", instruction):
        return _lyrics(prompt, words)
    counted = _requested_count(instruction)
    if counted is not None:
        return _numbered(counted[0], counted[1], prompt, words)
    if re.search(r"\b(opinion|review|critic|critique|rate|verdict)", instruction):
        return _critique(prompt, request.system, words)
    if re.search(r"\btitle\b", instruction):
        return _title(prompt, words)
    if re.search(r"\b(marketing|welcome|slogan|tagline|advert|promo|announcement|greeting|invitation)", low):
        return _welcome(prompt, words, raw)
    answered = _answer(prompt, raw, words) if _listed(raw) else None
    return answered or _generic(words)


def _truncate(text: str, max_tokens: int | None) -> str:
    if max_tokens is None:
        return text
    keep = max(1, int(max_tokens * 3 / 4))
    words = text.split(" ")
    return text if len(words) <= keep else " ".join(words[:keep])


# --------------------------------------------------------------------------- structured output

_SCHEMA_DEPTH = 4


def _bounds(metadata: Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in metadata:
        for attr in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            value = getattr(item, attr, None)
            if value is not None:
                out[attr] = value
    return out


def _number(name: str, dice: _Dice, bounds: dict[str, Any], *, integer: bool) -> float | int:
    low_name = name.lower()
    if "year" in low_name:
        value: float = 1980 + dice.below(45)
    elif re.search(r"score|rating|stars|grade", low_name):
        value = 1 + dice.below(10) if integer else round(1 + dice.unit() * 9, 1)
    elif re.search(r"prob|confidence|ratio|share|percent", low_name) and not integer:
        value = round(dice.unit(), 2)
    else:
        value = 1 + dice.below(99) if integer else round(dice.unit() * 100, 2)
    low = bounds.get("ge", bounds.get("gt"))
    high = bounds.get("le", bounds.get("lt"))
    step = 1 if integer else 0.01
    if low is not None and value < low + (step if "gt" in bounds else 0):
        value = low + (step if "gt" in bounds else 0)
    if high is not None and value > high - (step if "lt" in bounds else 0):
        value = high - (step if "lt" in bounds else 0)
    return int(value) if integer else float(value)


def _string(name: str, words: _Words, bounds: dict[str, Any], prompt: str) -> str:
    low_name = name.lower()
    dice = words.dice
    if re.search(r"title|headline", low_name):
        text = _title(prompt, words)
    elif re.search(r"name|character|author|person|who", low_name):
        text = f"{dice.pick(_FIRST_NAMES)} {dice.pick(_LAST_NAMES)}"
    elif re.search(r"summary|description|plot|text|review|body|content|reason|explanation", low_name):
        text = _generic(words)
    elif re.search(r"genre|category|kind|type|mood|tone", low_name):
        text = dice.pick(("drama", "comedy", "adventure", "mystery", "romance", "science fiction"))
    elif len(words.list) > 1:
        text = words.at(dice.below(len(words.list)))
    else:
        text = f"{dice.pick(_ADJECTIVES)} {words.at(0)}"
    if "max_length" in bounds:
        text = text[: bounds["max_length"]]
    if "min_length" in bounds and len(text) < bounds["min_length"]:
        text = text.ljust(bounds["min_length"], ".")
    return text


def _is_model(tp: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _value_for(tp: Any, name: str, words: _Words, prompt: str, depth: int, metadata: Sequence[Any] = ()) -> Any:
    """A JSON-ready value for annotation ``tp`` (field ``name`` gives realistic content)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    dice = words.dice
    if origin is typing.Annotated:
        return _value_for(args[0], name, words, prompt, depth, [*metadata, *args[1:]])
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in args if a is not type(None)]
        if not options or depth >= _SCHEMA_DEPTH:
            return None
        return _value_for(options[0], name, words, prompt, depth, metadata)
    if origin is typing.Literal:
        return args[0].value if isinstance(args[0], enum.Enum) else args[0]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return next(iter(tp)).value
    if _is_model(tp):
        return _model_values(tp, words, prompt, depth + 1)
    bounds = _bounds(metadata)
    if origin in (list, set, frozenset, Sequence, typing.Sequence) or tp in (list, set, frozenset):
        item_type = args[0] if args else str
        counted = _requested_count(prompt)
        count = counted[0] if counted else 2 + dice.below(2)
        count = max(bounds.get("min_length", 0), min(count, bounds.get("max_length", count)))
        if depth >= _SCHEMA_DEPTH:
            count = bounds.get("min_length", 0)
        singular = re.sub(r"s$", "", name)
        items: list[Any] = []
        for _ in range(count):
            item = _value_for(item_type, singular, words, prompt, depth)
            for _ in range(4):  # re-roll repeats: lists of identical items look broken
                if item not in items:
                    break
                item = _value_for(item_type, singular, words, prompt, depth)
            items.append(item)
        if origin in (set, frozenset) or tp in (set, frozenset):  # sets must not repeat
            items = list(dict.fromkeys(json.dumps(i, sort_keys=True) for i in items))
            items = [json.loads(i) for i in items]
        return items
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return [_value_for(args[0], name, words, prompt, depth) for _ in range(2)]
        return [_value_for(a, name, words, prompt, depth) for a in args]
    if origin is dict or tp is dict:
        value_type = args[1] if len(args) == 2 else str
        return {words.at(i): _value_for(value_type, name, words, prompt, depth) for i in range(2)}
    if tp is bool:
        return dice.below(2) == 1
    if tp is int:
        return _number(name, dice, bounds, integer=True)
    if tp is float or tp is decimal.Decimal:
        return _number(name, dice, bounds, integer=False)
    if tp is _dt.datetime:
        return "2024-05-17T10:30:00"
    if tp is _dt.date:
        return "2024-05-17"
    if tp is _dt.time:
        return "10:30:00"
    if tp is uuid.UUID:
        return str(uuid.UUID(bytes=hashlib.sha256(name.encode()).digest()[:16]))
    return _string(name, words, bounds, prompt)


def _model_values(model: type[BaseModel], words: _Words, prompt: str, depth: int) -> dict[str, Any]:
    """Values for the required fields; fields with a default are left for pydantic to fill."""
    return {
        field.alias or name: _value_for(field.annotation, name, words, prompt, depth, field.metadata)
        for name, field in model.model_fields.items()
        if field.is_required()
    }


def _compose_json(request: LLMRequest, dice: _Dice) -> str:
    """Offline JSON for ``request.schema`` (a pydantic model class), defaults included."""
    schema = request.schema
    if not _is_model(schema):
        raise LLMError(f"offline model: schema must be a pydantic BaseModel class, got {schema!r}")
    values = _model_values(schema, _Words(request.prompt, dice), request.prompt, 0)
    try:
        return schema.model_validate(values).model_dump_json(by_alias=True)
    except ValidationError as exc:
        raise invalid_answer(request.model, schema, json.dumps(values, ensure_ascii=False), exc) from exc


# --------------------------------------------------------------------------- provider


def configured_latency() -> float:
    """Mean offline latency in seconds from ``FLOWMAGIC_OFFLINE_LATENCY`` (read on every call)."""
    raw = os.environ.get(LATENCY_ENV, "").strip()
    if not raw:
        return DEFAULT_LATENCY
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_LATENCY
    return value if math.isfinite(value) and value > 0 else 0.0


class OfflineProvider:
    """The embedded offline model, used when no API key or server is configured.

    The same request always gets the same answer, in any process, after a short
    seeded delay (mean ``FLOWMAGIC_OFFLINE_LATENCY`` seconds, default 0.5; ``0``
    disables it). :meth:`stream` hands out the same answer a word at a time over
    the same delay.

    Example::

        provider = OfflineProvider()
        response = asyncio.run(provider.complete(LLMRequest(
            prompt="Title of a movie about a cat that learns to fly", model="offline")))
        response.text     # 'The Cat That Learns to Fly'
        response.offline  # True
    """

    model_name = "offline"

    def delay_for(self, request: LLMRequest) -> float:
        """Seconds :meth:`complete` waits before answering ``request`` (:meth:`stream` spreads its words over them)."""
        mean = configured_latency()
        if mean == 0:
            return 0.0
        return mean * (0.4 + 1.2 * _Dice(request_seed(request) + b"latency").unit())

    def respond(self, request: LLMRequest) -> LLMResponse:
        """The answer to ``request``, without the simulated delay."""
        dice = _Dice(request_seed(request))
        if request.schema is None:
            text = _truncate(_compose_text(request, dice), request.max_tokens)
            value: Any = text
        else:
            text = _compose_json(request, dice)
            try:
                value = request.schema.model_validate_json(text)
            except ValidationError as exc:
                raise invalid_answer(request.model, request.schema, text, exc) from exc
        return LLMResponse(
            text=text,
            value=value,
            model=self.model_name,
            offline=True,
            prompt_tokens=estimate_tokens(f"{request.system or ''} {request.prompt}"),
            completion_tokens=estimate_tokens(text),
            extra={"estimated_usage": True},
        )

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """The answer to ``request`` after its seeded delay (see :meth:`delay_for`)."""
        delay = self.delay_for(request)
        if delay > 0:
            await asyncio.sleep(delay)
        return self.respond(request)

    async def stream(self, request: LLMRequest, on_text: TextCallback) -> LLMResponse:
        """The answer :meth:`complete` gives, handed to ``on_text(text_so_far)`` a word at a time.

        The first word arrives after ``FIRST_TEXT_SHARE`` of the seeded delay and
        the rest are spread over what remains of it, so the whole answer takes as
        long as :meth:`complete`. An answer that cannot be built raises at once.
        """
        response = self.respond(request)
        delay = self.delay_for(request)
        words = [w for w in re.split(r"(?<=\s)(?=\S)", response.text) if w]
        loop = asyncio.get_running_loop()
        started, end = loop.time(), 0
        for i, word in enumerate(words):
            share = FIRST_TEXT_SHARE + (1 - FIRST_TEXT_SHARE) * i / max(1, len(words) - 1)
            wait = started + delay * share - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            end += len(word)
            on_text(response.text[:end])
        rest = started + delay - loop.time()  # an answer of one word, or none, still takes the delay
        if rest > 0:
            await asyncio.sleep(rest)
        return response

    async def aclose(self) -> None:
        """Nothing to release; present to satisfy :class:`Provider`."""

    def __repr__(self) -> str:
        return "OfflineProvider()"
