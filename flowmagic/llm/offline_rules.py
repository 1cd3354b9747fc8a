"""The offline model's answers: a prompt read once, and the rules of ``offline_data`` filled in with its words.

The data's format is described in :mod:`flowmagic.llm.offline_data`; the code here reads what rules and
templates cannot: tone, labels, names, and a few answers that take more than a template (the literals and
sums written in a prompt are read by :mod:`flowmagic.llm.prompt_values`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flowmagic.llm.offline_data import vocab
from flowmagic.llm.prompt_values import HEAD, LITERAL_MAX, calculate, join, literals, readable, texts

ANSWER_MAX = 1_000  # characters: an answer is short, however long what it quotes
_T = TypeVar("_T")
_WORD = re.compile(r"\b[A-Za-z][A-Za-z'\-]{0,29}\b")  # a run of 31 letters or more is no word


class Dice(random.Random):
    """Choices from a seed, the same in every process (``random()`` is stable across Python versions too)."""

    def pick(self, options: Sequence[_T]) -> _T:
        """One of ``options``, drawn."""
        return options[int(self.random() * len(options))]


class _Declined(Exception):
    """A slot had nothing to say: the rule asking for it does not apply."""


def keywords(text: str) -> list[str]:
    """Content words in order, without repeats or the verb after who/that/which."""
    words, out, v = _WORD.findall(text), [], vocab()
    for i, word in enumerate(words):
        low = (word := re.sub(r"'s$", "", word).strip("'-")).lower()
        if len(low) > 1 and low not in v["stop"] and low not in out and words[i - 1].lower() not in v["relative"]:
            out.append(word if word[0].isupper() and i > 0 else low)
    return out


def cap(text: str) -> str:
    """``text`` with its first letter capitalised, the rest as it is."""
    return text[:1].upper() + text[1:]


def title_case(text: str) -> str:
    """'the robot of the sea' -> 'The Robot of the Sea'; a word with capitals inside stays as it is."""
    words, small = text.split(), vocab()["title_small"]
    for i, word in enumerate(words):
        low = i > 0 and word.lower() in small and words[i - 1][-1] != ":"
        words[i] = word if any(c.isupper() for c in word[1:]) else word.lower() if low else cap(word)
    return " ".join(words)


def find(name: str, text: str) -> str | None:
    """What the ``find`` regex ``name`` (its first group that took part) matched first in the head of ``text``."""
    m = re.search(vocab()["find"][name], text[:HEAD])
    return next((g.strip() for g in m.groups() or [m[0]] if g), None) if m else None


def first_clause(text: str, limit: int = 12) -> str:
    """The words of ``text`` before its first full stop, question mark or semicolon (at most ``limit``)."""
    words = re.split(r"[\n.!?;]", text.strip())[0].strip().rstrip(",:").split()
    return " ".join(words[:limit]) + ("..." if len(words) > limit else "")


def sentences(text: str) -> list[str]:
    """``text`` cut after each full stop, question mark or exclamation mark."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def shorten(sentence: str) -> str:
    """The sentence cut at its first clause of three words or more: 'Honey never spoils, and...' -> the first."""
    short = " ".join(sentence.split()[:25]).rstrip(".!?,;:")
    cuts = [m.start() for m in re.finditer(r",\s|\s(?:because|so that|so|while|which|and|but|as|when)\s", short)]
    return cap(short[: next((c for c in cuts if len(short[:c].split()) >= 3), len(short))]) + "."


def body(text: str) -> str:
    """What a prompt carries after its ask: the text after 'Ask:', else after the first line."""
    head, sep, rest = text.partition(":")
    ask = sep and "\n" not in head and len(head.split()) <= 15 and head.count('"') % 2 == 0  # not a colon in a name
    return rest.strip() if ask else text.strip().partition("\n")[2]


def subject(text: str) -> tuple[str, str]:
    """(a quoted name or the name after 'called', "name"), or (the topic after 'about'/'for'/'on', "topic")."""
    name = find("quoted", text) or re.split(r"[?!;\n]|\.(?:\s|$)|,\s", find("called", text) or "")[0].strip("\"' ")
    if name and len(name.split()) <= 10:
        return name, "name"
    for m in filter(None, (re.search(p, text[:HEAD], re.I) for p in vocab()["subject"])):
        phrase = re.sub(r"(?i)^(?:(?:a|an|the|our|your|my|their|this|some)\s+)+", "", re.split(r"[.?!,;:\n]", m[1])[0])
        phrase = re.split(vocab()["count_tail"], phrase)[0].strip()  # 'pirates with three characters'
        if 0 < len(phrase.split()) <= 6 and keywords(phrase):
            return phrase, "topic"
    return "", ""


def polarity(text: str, labels: bool = False) -> tuple[int, list[str]]:
    """-1, 0 or 1 from the positive and negative words in ``text`` ('not' before one turns it), and those words."""
    v, score, seen = vocab(), 0, list[str]()
    words = re.findall(r"[a-z']+", text.lower())
    for i, w in enumerate(words):
        s = (w in v["positive"]) - (w in v["negative"]) or (v["label_polarity"].get(w, 0) if labels else 0)
        score, seen = score + (-s if i and words[i - 1] in v["negations"] else s), seen + [w] * bool(s)
    return (score > 0) - (score < 0), list(dict.fromkeys(seen))


def choose(options: Sequence[_T], text: str) -> _T:
    """The option ``text`` points at: named in it, hinted at ('crash' for bug), or of its tone; else the first."""
    v, low = vocab(), text.lower()
    tone = polarity(low)[0]

    def score(option: _T) -> int:
        words = str(getattr(option, "value", option)).lower().split()
        hints = [h for w in words for h in v["hints"]["label_hints"].get(w, ())]
        hits = sum(3 for w in words if re.search(rf"\b{re.escape(w)}\b", low))
        hits += sum(2 for h in hints if re.search(rf"\b{re.escape(h)}", low))
        moods = [v["label_polarity"][w] for w in words if w in v["label_polarity"]]
        return hits + (2 * (moods[0] == tone != 0) + (moods[0] == tone == 0) if moods else 0)

    return max(options, key=score)


class Reading:
    """A prompt read once: ``reading[slot]`` is a template's slot filled (see :mod:`flowmagic.llm.offline_data`).
    It is also the :class:`~flowmagic.llm.schema_instance.Leaves` of a ``schema=`` answer."""

    def __init__(self, prompt: str, system: str | None, seed: bytes) -> None:
        self.raw, self.system, self.seed, self.index = prompt[:LITERAL_MAX], system or "", seed, 0
        self.found = literals(self.raw)
        self.text, self.dice = readable(self.raw, self.found), Dice(seed)
        self.listed = [t for _, _, value in self.found if not isinstance(value, dict) for t in texts(value)]
        lines = [line.strip() for line in self.text.splitlines() if line.strip()] or [""]
        head, colon, data = lines[0].partition(": ")  # the ask, without the data it carries...
        ask = head if colon and len(data.split()) >= 4 and len(head.split()) > 1 else lines[0]
        if len(lines) > 1 and re.match(vocab()["asking"], lines[-1]):
            ask = f"{ask[:300]} {lines[-1][:300]}"  # ...and a last line that asks: 'Summarize the above.'
        self.ask, (self.about, self.kind) = ask[:600].lower(), subject(self.text)
        others = [w for w in keywords(self.text[:HEAD]) if w.lower() not in self.about.lower()]
        self.words = keywords(self.about) + others or ["idea", "story"]
        self.keys = [w for w in keywords(self.about) if w.lower().rstrip("s") not in vocab()["not_keys"]] or self.words

    def __getitem__(self, key: str) -> Any:
        """The words for ``{key}`` (see :meth:`read`); raises :class:`_Declined` when there are none."""
        if key[:1].isupper():
            return cap(str(self[key[0].lower() + key[1:]]))
        if key.startswith("a_"):
            word = str(self[key[2:]])
            return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"
        if key.startswith("all_"):  # every match of a find regex in what the prompt carries, once each
            found = re.findall(vocab()["find"][key[4:]], (body(self.text) or self.text)[: 10 * HEAD])
            value: Any = ", ".join(dict.fromkeys(found))
        else:
            value = self.read(key)
        if value is None or value == "":
            raise _Declined(key)
        return value

    def read(self, key: str) -> Any:
        """The slot ``key`` by the first of: a reader, ``slots``, ``pick``, ``hints`` and ``find``."""
        v = vocab()
        if key in READERS:
            return READERS[key](self)
        if key in v["slots"]:
            return self.first(v["slots"][key])
        if key in v["pick"]:
            return self.dice.pick(v["pick"][key])
        if key not in v["hints"]:
            return find(key, self.text)
        low = self.text[:HEAD].lower()
        hits = (k for k, words in v["hints"][key].items() if any(re.search(rf"\b{re.escape(w)}", low) for w in words))
        return next(hits, None)

    def render(self, template: str) -> str:
        """``template`` filled in; a slot's words can be as long as the prompt, the result not."""
        return template.format_map(self)[:ANSWER_MAX]

    def first(self, rules: Sequence[str | dict[str, Any]]) -> str:
        """The first of ``rules`` that fits and whose template, drawn from the seed, has words for every slot."""
        probe = f"{self.ask} {self.text[:600].lower()}"
        for spec in rules:
            rule: dict[str, Any] = {"say": [spec]} if isinstance(spec, str) else spec  # a lone template is a rule
            if not (re.search(rule.get("when", ""), self.ask, re.I) and re.search(rule.get("if", ""), probe, re.I)):
                continue
            try:
                text = self.render(self.dice.pick(rule["say"]))
            except _Declined:
                continue
            return title_case(text) if rule.get("case") == "title" else text
        raise _Declined("no rule fits")

    def answer(self) -> str:
        """The answer to the prompt: the first of the ``answers`` rules that fits."""
        return self.first(vocab()["answers"])

    def summary(self) -> str:
        """The first sentence, and the second one's first clause if that stays well short of the text."""
        text = body(self.text) or re.sub(r"(?i)^\s*(?:summari[sz]e|tl;?dr)\s+", "", self.text.strip())
        notes = [s for item in self.listed for s in sentences(item)]  # search hits, a list of notes...
        said = notes if len(self.listed) >= 2 else sentences(text) or ["..."]
        first = " ".join(said[0].split()[:25]).rstrip(",;:")
        second = shorten(said[-1] if len(said) == 1 else said[1])
        short = len(said) > 1 and len(f"{first} {second}".split()) < 0.75 * len(" ".join(said).split())
        return f"{first} {second}" if short else first if len(said) > 1 else second

    def from_notes(self) -> str | None:
        """The note, quote or sentence sharing most words with the question, and the next one if it shares any."""
        if (question := find("question", self.text)) is None:
            return None
        v, sources, found = vocab(), self.listed[:50], list[str]()
        rest = re.sub("|".join(map(re.escape, [question, *sources])), " ", self.text[: 10 * HEAD])
        for source in sources + re.split(v["source_breaks"], rest)[:50]:
            text = cap(first_clause(re.sub(v["source_noise"], r"\1", source.strip(), flags=re.I), 30))
            text = text.rstrip(".!?,;:") + "."
            found += [text] if len(text.split()) >= 3 and text not in found else []
        asked = {w.lower().rstrip("s") for w in keywords(question)}
        shared = [len(asked & {w.lower().rstrip("s") for w in keywords(s)}) for s in found]
        ranked = sorted(zip(shared, found, strict=True), key=lambda x: -x[0])  # the text's order among equals
        if not ranked or not (ranked[0][0] or sources or self.ask.startswith("answer")):
            return None
        more = len(ranked) > 1 and (ranked[1][0] or not ranked[0][0])
        return " ".join(s for _, s in ranked[: 1 + more])

    def numbered(self) -> str | None:
        """'Two main characters', 'five ideas for a party', 'list three colours': a numbered list of that many."""
        v, ask = vocab(), re.split(r"\b(?:called|named|titled|about)\b", self.ask, maxsplit=1)[0]
        if (m := next(filter(None, (re.search(count, ask, re.I) for count in v["counts"])), None)) is None:
            return None
        count = int(m[1]) if m[1].isdigit() else v["number_words"].get(m[1], 1 if m[1] else 3)
        kind, items = next(k for k in v["lists"] if re.search(k.get("when", ""), ask, re.I)), list[str]()
        for self.index in range(min(count, 20)):
            for _ in range(8):  # a few draws keep the items apart
                say = kind["say"][self.index % len(kind["say"])] if kind.get("order") else self.dice.pick(kind["say"])
                if (item := cap(self.render(say))) not in items:
                    break
            items.append(item)
        return items[0] if len(items) == 1 else "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))

    def person(self) -> str:
        """A full name; strides coprime to the lists' lengths keep a list's first names apart."""
        first, last, draw = vocab()["first_names"], vocab()["last_names"], Dice(self.seed + b"names")
        i = int(draw.random() * len(first)) + 5 * self.index
        j = int(draw.random() * len(last)) + 7 * self.index
        return f"{first[i % len(first)]} {last[j % len(last)]}"

    def review(self) -> str:
        """A critic's verdict on the work, a pro and a con, and a score out of 10 (a harsh critic's lower)."""
        t, d, piece = vocab()["review"], self.dice, body(self.text)
        said = re.findall(r"\b(?:the|this|that|a|an|my|our|your)\s+(?:new\s+)?(\w+)", self.ask)
        family = next((f for w in said for f, words in t["kinds"].items() if w in words), "screen")
        moods = sum(shift for pattern, shift in t["moods"].items() if re.search(pattern, self.system, re.I))
        score = max(1, min(10, 3 + int(d.random() * 7) + moods))
        verdict = d.pick(t["verdicts"][family][(score > 3) + (score > 5) + (score > 7)])
        pro, con, what = d.pick(t["pros"][family]), d.pick(t["cons"][family]), t["works"][family]
        work = d.pick(t["work"]).format(what=what, line=first_clause(piece)) if len(piece.split()) >= 4 else None
        work = work or find("quoted", self.text) or find("proper", self.text) or self["topic"]
        judged = f"{cap(pro)}, even if {con}." if score >= 6 else f"{cap(con)}, although {pro}."
        return f"{verdict}: {work}. {judged} Score: {score}/10."

    def choice(self) -> str | None:
        """The label, of those the prompt offers ('as positive, negative or neutral'), that its text points at."""
        m = re.search(vocab()["labels"], self.text[:600], re.I)
        parts = re.split(r",|\bor\b", m[1]) if m else []
        parts = [re.sub(r"(?i)^(?:a|an|the|either)\s+", "", p.strip()) for p in parts]
        offered = [p for p in parts if p and len(p.split()) <= 3]
        return choose(offered, self.text[m.end() :]) if m and len(offered) >= 2 else None

    def yes(self) -> tuple[bool, list[str]]:
        """Yes when the text after the question shows what it asks about ('polite': 'thank', 'sorry'), or else has
        the tone the question asks about; a coin toss when it shows neither. And the words that show it."""
        m = re.search(r"[^?.!\n]*\?", self.text[:HEAD])
        question, rest = (m[0], self.text[m.end() :]) if m else (self.ask, "")
        hints = [h for w in re.findall(r"[a-z]+", question.lower()) for h in vocab()["hints"]["label_hints"].get(w, ())]
        if hints:
            shown = [h for h in hints if re.search(rf"\b{re.escape(h)}", rest, re.I)]
            return bool(shown), shown
        asked, (told, evidence) = polarity(question, True)[0], polarity(rest)
        return (told == (asked or 1)) if told else self.dice.random() < 0.5, evidence if told else []

    def issue(self) -> str:
        """The first clause of what the prompt carries, told back to its writer: 'I export' -> 'you export'."""
        clause = first_clause(body(self.text) or self.text, 15)
        clause = re.sub(r"[A-Za-z']+", lambda m: vocab()["you_for_i"].get(m[0].lower(), m[0]), clause)
        return clause if clause.split(" ", 1)[0].isupper() else clause[:1].lower() + clause[1:]

    def run(self) -> str | None:
        """The first run of content words: 'Compare cats and dogs' -> 'cats and dogs'."""
        marks = ["|" if w.lower() in vocab()["stop"] and w != "and" else w for w in _WORD.findall(self.text[:600])]
        runs = [re.sub(r"^(?:and\b\s*)+|(?:\s*\band)+$", "", run.strip()) for run in " ".join(marks).split("|")]
        return next(filter(None, runs), None)

    # As the Leaves of a schema= answer (flowmagic.llm.schema_instance).

    def leaf(self, kind: str, name: str, index: int) -> str:
        """The value of a ``kind`` of leaf for the field ``name``: the first ``fields`` rule for both that fits."""
        fields = [f for f in vocab()["fields"] if kind in f["types"] and re.search(f.get("name", ""), name, re.I)]
        self.index = index
        return self.first(fields)

    def option(self, options: Sequence[_T]) -> _T:
        """The one of a literal's or an enum's ``options`` that the prompt points at (see :func:`choose`)."""
        return choose(options, self.text)

    def count(self) -> int:
        """How many items a list should have: as many as the prompt asks for ('three characters'), else 2."""
        m, numbers = re.search(vocab()["counts"][0], self.text[:HEAD], re.I), vocab()["number_words"]
        return (int(m[1]) if m[1].isdigit() else int(numbers[m[1].lower()])) if m else 2


#: The slots that take more than a template to fill, and how each is read off a :class:`Reading`.
READERS: dict[str, Callable[[Reading], Any]] = {
    "summary": Reading.summary,
    "from_notes": Reading.from_notes,
    "list": Reading.numbered,
    "person": Reading.person,
    "review": Reading.review,
    "choice": Reading.choice,
    "issue": Reading.issue,
    "run": Reading.run,
    "subject": lambda r: r.about,
    "named": lambda r: r.about if r.kind == "name" else None,
    "name": lambda r: r.about if r.kind == "name" and len(r.about) < 40 else None,
    "phrase": lambda r: r.about if r.kind == "topic" and len(r.about.split()) <= 4 else " ".join(r.keys[:3]),
    "key": lambda r: r.keys[-1],
    "sum": lambda r: calculate(r.ask)[0],
    "sum_value": lambda r: calculate(r.ask)[1],
    "yes": lambda r: "Yes" if r.yes()[0] else "No",
    "evidence": lambda r: join([f'"{w}"' for w in r.yes()[1][:2]]),
    "tone": lambda r: {1: "positive", -1: "negative", 0: "neutral"}[polarity(r.text)[0]],
    "first_name": lambda r: r.person().split()[0],
    "quote": lambda r: next(iter(r.listed or sentences(body(r.text))), None),
    "body": lambda r: body(r.text),
    "word": lambda r: r.words[0],
    "nth_word": lambda r: r.words[r.index % len(r.words)],
    "last_word": lambda r: r.words[-1] if len(r.words) > 1 else None,
    "two_words": lambda r: " ".join(r.words[r.index % len(r.words) :][:2]),
    "improved": lambda r: shorten(re.sub(r"(?i)^\s*\w+:?\s+", "", r.text.strip(), count=1).rsplit(": ", 1)[0]),
    "answer": lambda r: Reading(r.raw, r.system, r.seed + b"text").answer(),
}
