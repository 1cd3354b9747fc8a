"""The embedded offline model: deterministic, instant-ish, no network, no weights.

It is used when no API key or server is configured, so a workshop notebook runs
anywhere. Answers are built from the prompt's own words and a small vocabulary;
they are short and read like answers, but they are not intelligent. Every answer
is flagged ``offline=True`` so the display can label it.
"""

from __future__ import annotations

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
from typing import Any, TypeGuard, TypeVar

from pydantic import BaseModel, ValidationError

from flowmagic.llm.protocol import LLMError, LLMRequest, LLMResponse

_T = TypeVar("_T")

LATENCY_ENV = "FLOWMAGIC_OFFLINE_LATENCY"
DEFAULT_LATENCY = 0.5  # mean seconds; the actual delay is 0.4x..1.6x of it

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
_VERDICTS = (  # indexed by score band: 1-3, 4-5, 6-7, 8-10
    ("A letdown", "Hard to recommend", "A missed chance"),
    ("A mixed bag", "Watchable but uneven", "Half there"),
    ("An enjoyable ride", "A solid effort", "Worth your time"),
    ("A triumph", "Simply wonderful", "A small masterpiece"),
)
_TITLE_TEMPLATES = (
    "{phrase}",
    "The {Adj} {K}",
    "{K} and the {Adj} {Noun}",
    "The {Noun} of {K2}",
    "{Adj} {K}",
    "Return of the {K}",
    "{K}: The {Adj} {Noun}",
)
_SONG_TEMPLATES = (
    "{K} Blues",
    "Dancing with {K}",
    "{Adj} {K}",
    "{K} (Tonight)",
    "Songs for the {Adj} {K}",
)
_LYRICS = (
    (
        "{K} under a {adj} sky,",
        "we never ask the reason why,",
        "{k2} is calling out my name,",
        "and nothing ever feels the same.",
    ),
    (
        "I saw {k} in the morning rain,",
        "{adj} and burning once again,",
        "hold on to {k2} tonight,",
        "we'll be dancing in the light.",
    ),
    (
        "Every road leads back to {k},",
        "every {noun} is {adj} and weak,",
        "sing it loud for {k2} and me,",
        "{adj} hearts were born to be free.",
    ),
)
_WELCOME = (
    "Welcome to {Subject}! We're thrilled to have you here. Come in, look around and make yourself at home.",
    "Hello and welcome to {Subject}! Great things start here, and we can't wait to share them with you.",
    "Big news: {Subject} is ready for you! Drop by, say hello and see what everyone is talking about.",
)
_SUMMARIES = (
    "In short, {subject} follows {plot} and the people caught up in it.",
    "{Subject} comes down to {plot}, and what it costs everyone involved.",
    "At heart, {subject} is about {plot} that changes everything.",
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
    "A {adj} {topic} with a {noun} theme",
    "{Topic}, {adj} edition",
    "A {adj} twist on the classic {topic}",
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
        paragraph story stories kind like get let find need want using based called something"""
    )
)
_RELATIVE = frozenset({"who", "that", "which"})
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_QUOTED_RE = re.compile(r"[\"\u201c\u2018']([^\"\u201d\u2019']{2,80})[\"\u201d\u2019']")
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
    small = {"a", "an", "the", "of", "and", "in", "on", "to", "for", "with", "at", "by"}
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


def _topic_phrase(prompt: str) -> str | None:
    """The short phrase after 'about'/'for'/'called' ('a cat that learns to fly')."""
    match = re.search(r"\babout\s+(.+)", prompt, re.IGNORECASE) or re.search(
        r"\b(?:for|on|called|named|featuring)\s+(.+)", prompt, re.IGNORECASE
    )
    if not match:
        return None
    phrase = re.split(r"[.?!,;:\n]", match.group(1))[0].strip()
    phrase = re.sub(r"^(?:a|an|the)\s+", "", phrase, flags=re.IGNORECASE)
    return phrase if 0 < len(phrase.split()) <= 6 else None


def _proper_nouns(prompt: str) -> str | None:
    """The first run of capitalised words inside a sentence ('Bean There'), if any."""
    match = re.search(r"(?<=[a-z,:] )([A-Z][\w'\-]*(?: (?:of |the |and )?[A-Z][\w'\-]*)*)", prompt)
    return match.group(1) if match else None


def _quoted(prompt: str) -> str | None:
    match = _QUOTED_RE.search(prompt)
    return match.group(1).strip() if match else None


class _Words:
    """Key words of a prompt with safe fallbacks, for filling templates."""

    def __init__(self, prompt: str, dice: _Dice) -> None:
        self.list = _keywords(prompt) or ["idea", "story"]
        self.dice = dice

    def at(self, i: int) -> str:
        return self.list[i % len(self.list)]

    def fill(self, template: str, **extra: str) -> str:
        k, k2, k3 = self.at(0), self.at(1 if len(self.list) > 1 else 0), self.at(2 if len(self.list) > 2 else -1)
        adj, noun = self.dice.pick(_ADJECTIVES), self.dice.pick(_NOUNS)
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
        }
        values.update(extra)
        return template.format(**values)


# --------------------------------------------------------------------------- answer kinds


def _title(prompt: str, words: _Words) -> str:
    song = bool(re.search(r"\b(song|album|track|band)\b", prompt, re.IGNORECASE))
    phrase = _topic_phrase(prompt)
    templates: tuple[str, ...] = _SONG_TEMPLATES if song else _TITLE_TEMPLATES
    if phrase is None or song:
        templates = tuple(t for t in templates if t != "{phrase}")
    elif any(w.lower() in _RELATIVE for w in phrase.split()):
        return _title_case(f"the {phrase}")  # 'The Cat That Learns to Fly'
    return _title_case(words.fill(words.dice.pick(templates), phrase=phrase or ""))


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
    topic = re.sub(r"^(?:our|your|my|their|his|her)\s+", "", topic, flags=re.IGNORECASE)
    return words.fill(dice.pick(_ITEMS), topic=topic, Topic=topic[:1].upper() + topic[1:])


def _numbered(count: int, noun: str, prompt: str, words: _Words) -> str:
    kind = _list_kind(noun, prompt)
    items: list[str] = []
    for i in range(count):
        item = _list_item(kind, prompt, words, i)
        for _ in range(8):  # a few re-rolls keep the items distinct
            if item not in items:
                break
            item = _list_item(kind, prompt, words, i)
        items.append(item[:1].upper() + item[1:])
    return "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))


def _summary(prompt: str, words: _Words) -> str:
    body = re.sub(r"^\s*summari[sz]e\b[^:\n]*[:\n]", "", prompt, count=1, flags=re.IGNORECASE).strip()
    if body == prompt.strip():  # 'Summarize the plot of Titanic': no separate body
        body = re.sub(r"^\s*summari[sz]e\s+", "", body, flags=re.IGNORECASE)
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", body) if s.strip()]
    if len(sentences) >= 2 or len(body.split()) > 25:
        first = " ".join(sentences[0].split()[:25]).rstrip(".!?,;:")
        seen = {w.lower() for w in _keywords(first)}
        # Longer words that are not -ed/-ly forms are mostly nouns: good topics to name.
        later = [
            w
            for w in _keywords(" ".join(sentences[1:]))
            if w.lower() not in seen and len(w) > 5 and not re.search(r"(ed|ly)$", w)
        ][:3]
        if not later:
            return f"{first}."
        topics = later[0] if len(later) == 1 else ", ".join(later[:-1]) + f" and {later[-1]}"
        return f"{first}. It then turns to {topics}."
    subject = body.rstrip(".!?") or "the text"
    return words.fill(
        words.dice.pick(_SUMMARIES),
        subject=subject[:1].lower() + subject[1:],
        Subject=subject[:1].upper() + subject[1:],
        plot=words.dice.pick(_PLOTS),
    )


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
    subject = _quoted(prompt) or _proper_nouns(prompt) or _title_case(" ".join(words.list[:3]))
    pro, con = dice.pick(_PROS), dice.pick(_CONS)
    if score >= 6:
        body = f"{pro[:1].upper() + pro[1:]}, even if {con}."
    else:
        body = f"{con[:1].upper() + con[1:]}, although {pro}."
    return f"{dice.pick(_VERDICTS[band])}: {subject}. {body} Score: {score}/10."


def _lyrics(words: _Words) -> str:
    lines = [words.fill(line) for line in words.dice.pick(_LYRICS)]
    return "\n".join(line[:1].upper() + line[1:] for line in lines)


def _welcome(prompt: str, words: _Words) -> str:
    subject = _quoted(prompt) or _proper_nouns(prompt) or _title_case(" ".join(words.list[-2:]))
    return words.fill(words.dice.pick(_WELCOME), Subject=subject)


def _generic(words: _Words) -> str:
    text = words.fill(words.dice.pick(_GENERIC))
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


def _compose_text(request: LLMRequest, dice: _Dice) -> str:
    """The offline answer to a plain-text request."""
    prompt = request.prompt
    low = prompt.lower()
    words = _Words(prompt, dice)
    if re.search(r"\bsummari[sz]e|\bsummary\b|\btl;?dr\b", low):
        return _summary(prompt, words)
    if re.search(r"\blyrics?\b", low) or re.search(r"\b(poem|verse)\b", low):
        return _lyrics(words)
    counted = _requested_count(prompt)
    if counted is not None:
        return _numbered(counted[0], counted[1], prompt, words)
    if re.search(r"\b(opinion|review|critic|critique|rate|verdict)", low):
        return _critique(prompt, request.system, words)
    if re.search(r"\btitle\b", low):
        return _title(prompt, words)
    if re.search(r"\b(marketing|welcome|slogan|tagline|advert|promo|announcement|greeting|invitation)", low):
        return _welcome(prompt, words)
    return _generic(words)


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
        raw = json.dumps(values, ensure_ascii=False)
        raise LLMError(f"offline model could not build a valid {schema.__name__}: {exc}", raw=raw) from exc


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
    disables it).

    Example::

        provider = OfflineProvider()
        response = asyncio.run(provider.complete(LLMRequest(
            prompt="Title of a movie about a cat that learns to fly", model="offline")))
        response.text     # 'The Cat That Learns to Fly'
        response.offline  # True
    """

    model_name = "offline"

    def delay_for(self, request: LLMRequest) -> float:
        """Seconds :meth:`complete` waits before answering ``request``."""
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
                raise LLMError(
                    f"offline model could not build a valid {request.schema.__name__}: {exc}", raw=text
                ) from exc
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
        delay = self.delay_for(request)
        if delay > 0:
            await asyncio.sleep(delay)
        return self.respond(request)

    async def aclose(self) -> None:
        """Nothing to release; present to satisfy :class:`Provider`."""

    def __repr__(self) -> str:
        return "OfflineProvider()"
