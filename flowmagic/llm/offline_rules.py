"""The offline model's answers, filled from ``offline_data`` (package data, read once, on first use).

``rules.json`` says, in order, which asks (``when``: a regex over the prompt's instruction) get which templates
(``say``). In a template ``{slot}`` is read off the prompt by :class:`Reading`, ``{Slot}`` is it capitalised,
``{a_slot}`` it after 'a' or 'an', and the name of a ``pick`` list of ``words.json`` one of its words. A slot
with nothing to say passes the prompt on to the next rule."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .offline_text import (
    _ANSWER_MAX,
    _HEAD,
    _LITERAL_MAX,
    _WORD,
    Dice,
    _Declined,
    body,
    calculate,
    cap,
    choose,
    find,
    first_clause,
    join,
    keywords,
    labels,
    listed,
    literals,
    polarity,
    readable,
    sentences,
    shorten,
    subject,
    texts,
    title_case,
    vocab,
)


class Reading(dict[str, Any]):
    """A prompt read once: ``reading[slot]`` fills a template's slot (see the module's docstring)."""

    FRESH = frozenset({"person", "first_name", "title", "step", "about"})  # not kept: they differ each time

    def __init__(self, prompt: str, system: str | None, seed: bytes) -> None:
        super().__init__()
        self.raw, self.system, self.seed, self.index = prompt[:_LITERAL_MAX], system or "", seed, 0
        self.found = literals(self.raw)
        self.text, self.listed, self.dice, v = readable(self.raw, self.found), listed(self.found), Dice(seed), vocab()
        lines = [line.strip() for line in self.text.splitlines() if line.strip()] or [""]
        head, colon, data = lines[0].partition(": ")  # the ask, without the data it carries...
        ask = head if colon and len(data.split()) >= 4 and len(head.split()) > 1 else lines[0]
        if len(lines) > 1 and re.match(r"(?i)(?:summari[sz]e|tl;?dr|give|write|list|answer|suggest)\b", lines[-1]):
            ask = f"{ask[:300]} {lines[-1][:300]}"  # ...and a last line that asks: 'Summarize the above.'
        (about, kind), self.ask = subject(self.text), ask[:600].lower()
        self.words = keywords(about) + [w for w in keywords(self.text[:_HEAD]) if w.lower() not in about.lower()]
        self.words = self.words or ["idea", "story"]
        stops = " ".join("|" if w.lower() in v["stop"] and w != "and" else w for w in _WORD.findall(self.text[:600]))
        runs = [re.sub(r"^(?:and\b\s*)+|(?:\s*\band)+$", "", run.strip()) for run in stops.split("|")]
        names = re.findall(r"(?:^|\s)\d{1,2}[.)]\s+(?:The\s+)?([A-Z][a-z'\-]+)", self.text[: 5 * _HEAD])
        if not names and (m := re.search(v["characters"], self.text[: 5 * _HEAD])):
            names = re.findall(r"\b([A-Z][a-z'\-]+)(?:\s+[A-Z][a-z'\-]+)*", m[1])
        names = [n for n in dict.fromkeys(names) if n.lower() not in v["stop"]]
        keys = [w for w in keywords(about) if w.lower().rstrip("s") not in v["not_keys"]] or self.words
        hook = title_case(about) if kind == "name" and len(about.split()) <= 8 else keys[0]
        hook = hook if hook[0].isupper() else f"the {hook}"
        others = names[:1] * (len(names) == 1) + [w for w in self.words[::-1] if w.lower() not in hook.lower()]
        self.update(topic=about or find("question", self.text[:600]) or next(filter(None, runs), "this"))
        self.update(the_topic=find("quoted", self.text) or find("proper", self.text) or f"the {about or self.words[0]}")
        self.update(phrase=title_case(about if kind == "topic" and len(about.split()) <= 4 else " ".join(keys[:3])))
        self.update(key=title_case(keys[-1]), hook=hook, other=[*others, "love"][0], characters=names)
        self.update({"a": names[0], "b": names[1]} if len(names) >= 2 else {})
        self.update({"name": about} if kind == "name" and len(about) < 40 else {})

    def __missing__(self, key: str) -> Any:
        if key[0].isupper():
            return cap(str(self[key[0].lower() + key[1:]]))
        if key.startswith("a_"):
            return f"{'an' if str(self[key[2:]])[:1].lower() in 'aeiou' else 'a'} {self[key[2:]]}"
        if key in vocab()["pick"]:
            return self.dice.pick(vocab()["pick"][key])
        if (value := SLOTS[key](self) if key in SLOTS else None) is None:
            raise _Declined(key)
        if key not in self.FRESH:
            self[key] = value
        return value

    def render(self, template: str) -> str:
        """``template`` filled in; a slot's words can be as long as the prompt, the result not."""
        return template.format_map(self)[:_ANSWER_MAX]

    def answer(self, kind: str | None = None) -> str:
        """The first rule that fits (or of ``kind``) and whose slots all have something to say."""
        probe = f"{self.ask} {self.text[:600].lower()}"
        for rule in vocab()["rules"]:
            fits = rule["when"].search(self.ask) if kind is None else rule.get("kind") == kind
            try:
                if fits and rule["if"].search(probe):
                    text = self.render(self.dice.pick(rule["say"]))
                    return title_case(text) if rule.get("case") == "title" else text
            except _Declined:
                continue
        raise _Declined(kind or "answer")

    def yes(self) -> tuple[bool, list[str]]:
        """Yes when the text after the question shows what it asks about ('polite': 'thank', 'sorry'), or else has
        the tone the question asks about; a coin toss when it shows neither."""
        m = re.search(r"[^?.!\n]*\?", self.text[:_HEAD])
        question, rest = (m[0], self.text[m.end() :]) if m else (self.ask, "")
        hints = [h for w in re.findall(r"[a-z]+", question.lower()) for h in vocab()["label_hints"].get(w, ())]
        if hints:
            shown = [h for h in hints if re.search(rf"\b{re.escape(h)}", rest, re.I)]
            return bool(shown), shown
        asked, (told, evidence) = polarity(question, True)[0], polarity(rest)
        return (told == (asked or 1)) if told else self.dice.random() < 0.5, evidence if told else []

    def fields(self, label: str) -> list[str]:
        """The values after 'Label:' in the prompt: a literal's strings, or 'a, b and c'."""
        m = re.search(rf"\b(?:{vocab()['field_labels'][label]})\s*[:=]\s*", self.raw, re.I)
        rest = self.raw[m.end() : m.end() + 20 * _HEAD] if m else ""
        found = [texts(value) for start, _, value in literals(rest, tries=1) if start == 0]
        return found[0] if found else [x.strip(" '\"") for x in re.split(r",\s*|\s+and\s+", first_clause(rest)) if x]

    def summary(self) -> str:
        """The first sentence, and the second one's first clause if that stays well short of the text."""
        lines, items = self.text.strip().splitlines(), self.listed
        if len(lines) > 1 and re.search(r"(?i)\bsummari[sz]e|\bsummary\b|\btl;?dr\b", lines[-1]):
            text = re.sub(r"^\s*[A-Za-z ]{1,20}:\s*", "", "\n".join(lines[:-1]))  # 'Context: ...' then the ask
        else:
            text = body(self.text) or re.sub(r"(?i)^\s*(?:summari[sz]e|tl;?dr)\s+", "", self.text.strip())
        said = [s for i in items for s in sentences(i)] if len(items) >= 2 else sentences(text) or ["..."]
        first, second = " ".join(said[0].split()[:25]).rstrip(",;:"), shorten(said[-1] if len(said) == 1 else said[1])
        short = len(said) > 1 and len(f"{first} {second}".split()) < 0.75 * len(" ".join(said).split())
        return f"{first} {second}" if short else first if len(said) > 1 else second

    def sum(self) -> str | None:
        if (found := calculate(self.ask)) is None:
            return None
        t, value = vocab()["templates"], found[1]
        number = None if value is None else value.numerator if value.denominator == 1 else f"{float(value):.10g}"
        return str(t["sum"] if number is not None else t["divide_by_zero"]).format(sum=found[0], value=number)

    def extracted(self) -> str | None:
        for name, pattern in vocab()["extract"]:
            if m := re.search(rf"\b(?:{name})(s\b)?", self.ask):
                found = list(dict.fromkeys(re.findall(pattern, (body(self.text) or self.text)[: 10 * _HEAD])))
                return ", ".join(found if m[1] or " all " in self.ask else found[:1]) or None
        return None

    def answer_from_notes(self) -> str | None:
        """The note, quote or sentence sharing most words with the question, and the next one if it shares any."""
        if (question := find("question", self.text)) is None:
            return None
        asked, sources, found = {w.lower().rstrip("s") for w in keywords(question)}, self.listed[:50], []
        rest = re.sub("|".join(map(re.escape, [question, *sources])), " ", self.text[: 10 * _HEAD])
        for source in sources + re.split(vocab()["source_breaks"], rest)[:50]:
            text = cap(first_clause(re.sub(vocab()["source_noise"], r"\1", source.strip(), flags=re.I), 30))
            found += [text.rstrip(".!?,;:") + "."] if len(text.split()) >= 3 and text not in found else []
        shared = sorted(
            ((len(asked & {w.lower().rstrip("s") for w in keywords(s)}), s) for s in found), key=lambda x: -x[0]
        )
        if not shared or not (shared[0][0] or sources or self.ask.startswith("answer")):
            return None
        return shared[0][1] + (f" {shared[1][1]}" if len(shared) > 1 and (shared[1][0] or not shared[0][0]) else "")

    def numbered(self) -> str | None:
        """'Two main characters', 'five ideas for a party', 'list three colours': a numbered list of that many."""
        v, ask = vocab(), re.split(r"\b(?:called|named|titled|about)\b", self.ask, maxsplit=1)[0]
        if (m := next(filter(None, (count.search(ask) for count in v["counts"])), None)) is None:
            return None
        count = int(m[1]) if m[1].isdigit() else v["number_words"].get(m[1], 1 if m[1] else 3)
        say = next((say for p, say in v["list_kinds"] if re.fullmatch(p, m[2])), None)
        say = say or next(
            (say for p, say in v["list_kinds"][:2] if re.search(rf"\b(?:{p})\b", ask)), v["list_kinds"][-1][1]
        )
        items: list[str] = []
        for i in range(min(count, 20)):
            self.index = i
            for _ in range(8):  # a few re-rolls keep the items apart
                if (item := cap(self.render(self.dice.pick(say)))) not in items:
                    break
            items.append(item)
        return items[0] if len(items) == 1 else "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))

    def person(self) -> str:  # strides coprime to the lists' lengths keep a list's first names apart
        first, last, names = vocab()["first_names"], vocab()["last_names"], Dice(self.seed + b"names")
        i, j = int(names.random() * len(first)) + 5 * self.index, int(names.random() * len(last)) + 7 * self.index
        return f"{first[i % len(first)]} {last[j % len(last)]}"

    def review(self) -> str:
        """A critic's verdict on the work, a pro and a con, and a score out of 10 (a harsh critic's lower)."""
        t, d, kinds, piece = vocab()["templates"], self.dice, vocab()["critic_kinds"], body(self.text)
        said = re.findall(r"\b(?:the|this|that|a|an|my|our|your)\s+(?:new\s+)?(\w+)", self.ask)
        family = next((kinds[w] for w in said if w in kinds), "screen")
        moods = sum(shift for pattern, shift in t["critic_moods"].items() if re.search(pattern, self.system, re.I))
        score = max(1, min(10, 3 + int(d.random() * 7) + moods))
        verdict = d.pick(t["verdicts"][family][(score > 3) + (score > 5) + (score > 7)])
        pro, con, what = d.pick(t["pros"][family]), d.pick(t["cons"][family]), t["works"][family]
        work = d.pick(t["work"]).format(what=what, line=first_clause(piece)) if len(piece.split()) >= 4 else None
        work = work or find("quoted", self.text) or find("proper", self.text) or self["topic"]
        judged = f"{cap(pro)}, even if {con}." if score >= 6 else f"{cap(con)}, although {pro}."
        return f"{verdict}: {work}. {judged} Score: {score}/10."

    def welcome(self) -> str | None:
        """A named person greeted by the time of day, what is on sale, and a closing line."""
        t, v = vocab()["templates"], vocab()
        named = [x[k] for _, _, x in self.found if isinstance(x, dict) for k in v["name_keys"] if x.get(k)]
        name = str(named[0]).split()[0] if named else find("recipient", self.raw)
        if not name or name.lower() in v["stop"] | {"back", "everyone", "all"}:
            return None
        clock, sale = re.search(r"\b([01]?\d|2[0-3]):[0-5]\d\b", self.raw), self.fields("sale")[:2]
        self.update(
            recipient=cap(name), sale_items=join(sale), are="are" if join(sale)[-1:] == "s" or sale[1:] else "is"
        )
        self["greeting"] = next((g for h, g in t["greetings"] if clock and int(clock[1]) < h), "Hello")
        hello = self.dice.pick(t["hello_returning" if self.fields("purchase") else "hello_new"])
        return self.render(f"{hello} {self.dice.pick(t['on_sale']) if sale else ''}{{closing}}")

    def issue(self) -> str:
        """The first clause of what the prompt carries, told back to its writer: 'I export' -> 'you export'."""
        clause = first_clause(body(self.text) or self.text, 15)
        clause = re.sub(r"[A-Za-z']+", lambda m: vocab()["you_for_i"].get(m[0].lower(), m[0]), clause)
        return clause if clause.split(" ", 1)[0].isupper() else clause[:1].lower() + clause[1:]

    def label(self) -> str:
        """A label the prompt offers, a genre for a story, a kind the words hint at ('crash': bug), or a tone."""
        if (choice := self.choice()) or re.search(r"\b(?:movie|film|book|story|novel|show)\b", self.text[:_HEAD], re.I):
            return str(choice or self["genre"])
        low, hints = self.text[:_HEAD].lower(), vocab()["label_hints"].items()
        return str(next((k for k, hs in hints if any(re.search(rf"\b{re.escape(h)}", low) for h in hs)), self["tone"]))

    def choice(self) -> str | None:
        found, end = labels(self.text)
        return choose(found, self.text[end:]) if found else None

    def genre(self) -> str:
        low, genres = self.text[:_HEAD].lower(), vocab()["genres"].items()
        return next((g for g, words in genres if any(re.search(rf"\b{w}", low) for w in words)), "drama")

    def language(self) -> str:
        names = vocab()["languages"]
        m = re.search(rf"\b(?:to|into|in)\s+({'|'.join(names)})\b", self.text[:_HEAD], re.I)
        m = m or re.search(r"\b(?:in)?to (\w+)", self.ask)
        return str(names.get(m[1].lower(), m[1][:2].lower())) if m else "fr"

    def yes_no(self) -> str:
        yes, evidence = self.yes()
        why = str(vocab()["templates"]["why"]).format(evidence=join([f'"{w}"' for w in evidence[:2]]))
        return f"{'Yes' if yes else 'No'}{why if evidence else ''}."


#: How each computed slot is filled (the others are read off the prompt when it is read, or picked from a list).
SLOTS: dict[str, Callable[[Reading], Any]] = {
    "summary": Reading.summary,
    "sum": Reading.sum,
    "extracted": Reading.extracted,
    "answer": Reading.answer_from_notes,
    "list": Reading.numbered,
    "person": Reading.person,
    "review": Reading.review,
    "welcome": Reading.welcome,
    "issue": Reading.issue,
    "label": Reading.label,
    "choice": Reading.choice,
    "genre": Reading.genre,
    "language": Reading.language,
    "yes_no": Reading.yes_no,
    "translated": lambda r: find("quoted", r.text) or body(r.text) or re.sub(r"(?i)^\s*translate\s+", "", r.text),
    "quote": lambda r: next(iter(r.listed or sentences(body(r.text))), None),
    "first_name": lambda r: r.person().split()[0],
    "step": lambda r: r.render(vocab()["templates"]["steps"][r.index % len(vocab()["templates"]["steps"])]),
    "title": lambda r: r.answer("title"),
    "about": lambda r: r.get("name") or " ".join(r.words[r.index % len(r.words) :][:2]),
    "improved": lambda r: shorten(re.sub(r"(?i)^\s*\w+:?\s+", "", r.text.strip(), count=1).rsplit(": ", 1)[0]),
    "text": lambda r: Reading(r.raw, r.system, r.seed + b"text").answer(),
    "tone": lambda r: {1: "positive", -1: "negative", 0: "neutral"}[polarity(r.text)[0]],
}
