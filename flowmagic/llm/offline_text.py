"""What the offline model reads off a prompt: its literals, words, sentences, labels, tone and sums
(a sum is parsed and walked, never run), and its vocabulary (``offline_data``, read once)."""

from __future__ import annotations

import ast
import functools
import json
import operator
import random
import re
from collections.abc import Sequence
from fractions import Fraction
from importlib import resources
from typing import Any, TypeVar

_T = TypeVar("_T")
_LITERAL_TOKEN = re.compile(r"[\[\]{}()]|'(?:[^'\\\n]|\\.)*'" + r'|"(?:[^"\\\n]|\\.)*"')
_LITERAL_TRIES = 32  # brackets that turn out not to open a literal; bounds the work on odd prompts
_LITERAL_MAX = 200_000  # the most one literal may span, and the most of a prompt that is read at all
_HEAD = 2_000  # where questions, labels, names and sums are looked for
_CALC_TOKENS = 64  # numbers, operators and brackets in one sum
_ANSWER_MAX = 1_000  # characters: an answer is short, however long what it quotes
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_WORD = re.compile(r"\b[A-Za-z][A-Za-z'\-]{0,29}\b")  # a run of 31 letters or more is no word


@functools.cache
def vocab() -> dict[str, Any]:
    """The words, rules and templates of ``offline_data``, read and compiled once."""
    root, found = resources.files("flowmagic.llm.offline_data"), {}
    for name in ("words", "rules"):
        found.update(json.loads((root / f"{name}.json").read_text(encoding="utf-8")))
    numbers, ops = "|".join(found["number_words"]), sorted(found["operators"], key=len, reverse=True)
    for rule in found["rules"]:
        rule.update({key: re.compile(rule.get(key, "").replace("{numbers}", numbers), re.I) for key in ("when", "if")})
    found["counts"] = [re.compile(c.replace("{numbers}", numbers), re.I) for c in found["counts"]]
    found["ops"] = re.compile("|".join(("\\b" if k[0].isalnum() else "") + re.escape(k) + r"(?!\w)" for k in ops))
    return found | {"stop": frozenset(found["stopwords"].split())}


class Dice(random.Random):
    """Choices from a seed, the same in every process (``random()`` is stable across Python versions too)."""

    def pick(self, options: Sequence[_T]) -> _T:
        return options[int(self.random() * len(options))]


class _Declined(Exception):
    """A slot had nothing to say: the rule asking for it does not apply."""


def literals(text: str, tries: int = _LITERAL_TRIES) -> list[tuple[int, int, Any]]:
    """The lists, dicts and sets in ``text``, written as JSON or as Python prints them: (start, end, value).

    At most ``tries`` brackets that open no literal are tried, and no more than ``_LITERAL_MAX`` characters
    are scanned in all: the work is bounded however odd the prompt."""
    found: list[tuple[int, int, Any]] = []
    pos, budget = 0, _LITERAL_MAX
    while tries > 0 and budget > 0 and (opener := re.compile(r"[\[{]").search(text, pos)):
        start, depth, value, end = opener.start(), 0, None, 0
        for token in _LITERAL_TOKEN.finditer(text, start, min(len(text), start + budget)):
            depth += {"[": 1, "{": 1, "(": 1, "]": -1, "}": -1, ")": -1}.get(token.group(), 0)
            if depth == 0:
                end = token.end()
                break
        budget -= (end or min(len(text), start + budget)) - start
        for parse in (json.loads, ast.literal_eval) if end else ():  # JSON, or Python's repr of a value
            try:
                value = parse(text[start:end])
                break
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                value = None
        if isinstance(value, (list, tuple, dict, set)):
            found, pos = [*found, (start, end, value)], end
        else:
            pos, tries = start + 1, tries - 1
    return found


def texts(value: Any) -> list[str]:
    """The readable strings in a literal's value, in order (a dict's 'text'-like entry, else all its values)."""
    if isinstance(value, dict):
        keys = ("snippet", "text", "content", "body", "summary", "description", "answer", "quote", "note")
        parts = [value[k].strip() for k in keys if str(value.get(k) or "").strip()][:1] or texts(list(value.values()))
        prose = all(len(p.split()) >= 5 for p in parts)  # sentences each their own; else 'Broom (household)'
        return parts if prose else [parts[0] + (f" ({', '.join(parts[1:])})" if parts[1:] else "")]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [t for v in (sorted(value, key=str) if isinstance(value, (set, frozenset)) else value) for t in texts(v)]
    return [] if value is None or isinstance(value, bool) or not str(value).strip() else [str(value).strip()]


def listed(found: list[tuple[int, int, Any]]) -> list[str]:
    """The strings of the literal lists ``found`` in a prompt (search hits, notes...)."""
    return [t for _, _, value in found if not isinstance(value, dict) for t in texts(value)]


def join(items: Sequence[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def readable(prompt: str, found: list[tuple[int, int, Any]]) -> str:
    """``prompt`` with its literals spelled out: ['tea', 'jam'] -> 'tea and jam'; a list of sentences as sentences."""
    out, pos = [], 0
    for start, end, value in found:
        items = texts(value)
        prose = bool(items) and all(len(i.split()) >= 5 for i in items)
        out += [prompt[pos:start], " ".join(i if i[-1] in ".!?" else f"{i}." for i in items) if prose else join(items)]
        pos = end + (prose and prompt[end : end + 1] == ".")
    return "".join([*out, prompt[pos:]])


def keywords(text: str) -> list[str]:
    """Content words in order, without repeats or the verb after who/that/which."""
    words, out, v = _WORD.findall(text), [], vocab()
    for i, word in enumerate(words):
        low = (word := re.sub(r"'s$", "", word).strip("'-")).lower()
        if len(low) > 1 and low not in v["stop"] and low not in out and words[i - 1].lower() not in v["relative"]:
            out.append(word if word[0].isupper() and i > 0 else low)
    return out


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def title_case(text: str) -> str:
    words, small = text.split(), vocab()["title_small"]
    low = [i and w.lower() in small and words[i - 1][-1] != ":" for i, w in enumerate(words)]
    return " ".join(
        w if any(c.isupper() for c in w[1:]) else w.lower() if k else cap(w) for w, k in zip(words, low, strict=True)
    )


def find(name: str, text: str) -> str | None:
    """What the regex ``name`` of ``rules.json``'s ``find`` matched first in the head of ``text``."""
    m = re.search(vocab()["find"][name], text[:_HEAD])
    return next((g.strip() for g in m.groups() if g), None) if m else None


def first_clause(text: str, limit: int = 12) -> str:
    words = re.split(r"[\n.!?;]", text.strip())[0].strip().rstrip(",:").split()
    return " ".join(words[:limit]) + ("..." if len(words) > limit else "")


def sentences(text: str) -> list[str]:
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
    for m in filter(None, (re.search(p, text[:_HEAD], re.I) for p in (r"\babout\s+(.+)", r"\b(?:for|on)\s+(.+)"))):
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


def labels(text: str) -> tuple[list[str], int]:
    """The labels a prompt offers ('as positive, negative or neutral') and where they end."""
    m = re.search(vocab()["labels"], text[:600], re.I)
    found = [re.sub(r"(?i)^(?:a|an|the|either)\s+", "", o.strip()) for o in re.split(r",|\bor\b", m[1])] if m else []
    found = [o for o in found if o and len(o.split()) <= 3]
    return (found, m.end()) if m and len(found) >= 2 else ([], 0)


def choose(options: Sequence[_T], text: str) -> _T:
    """The option ``text`` points at: named in it, hinted at ('crash' for bug), or of its tone; else the first."""
    v, low = vocab(), text.lower()
    tone = polarity(low)[0]

    def score(option: _T) -> int:
        words = str(getattr(option, "value", option)).lower().split()
        hits = sum(3 for w in words if re.search(rf"\b{re.escape(w)}\b", low))
        hits += sum(2 for w in words for h in v["label_hints"].get(w, ()) if re.search(rf"\b{re.escape(h)}", low))
        moods = [v["label_polarity"][w] for w in words if w in v["label_polarity"]]
        return hits + (2 * (moods[0] == tone != 0) + (moods[0] == tone == 0) if moods else 0)

    return max(options, key=score)


def calculate(text: str) -> tuple[str, Fraction | None] | None:
    """The first sum in ``text`` ('17*3', 'seven times six', '15% of 80') and its value (None: it divides by
    zero). Only numbers, + - * / and brackets are parsed, and the tree is walked here: nothing is run as code."""

    def value(node: ast.expr) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return Fraction(_OPS[type(node.op)](value(node.left), value(node.right)))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return Fraction(str(node.value))
        raise ValueError("not a sum")

    v = vocab()
    text = re.sub(r"\b\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}\b|\b\d{1,2}:\d{2}\b", " ", text[:_HEAD].lower())  # dates, times
    text = re.sub(rf"\b(?:{'|'.join(v['number_words'])})\b", lambda m: str(v["number_words"][m[0]]), text)
    text = re.sub(r"(?<=\d)\s*[x\u00d7]\s*(?=[\d(])", "*", v["ops"].sub(lambda m: v["operators"][m[0]], text))
    for run in re.findall(r"[-+*/().\d\s]+", text.replace("\u00f7", "/")):
        tokens = re.findall(r"\d+(?:\.\d+)?|[-+*/()]", run)
        if len(tokens) > _CALC_TOKENS or re.search(r"\d{16}", run) or not re.search(r"[\d)]\s*[-+*/]\s*[-+(]*\d", run):
            continue
        shown = " ".join(tokens).replace("( ", "(").replace(" )", ")")
        try:
            return shown, value(ast.parse("".join(tokens), mode="eval").body)
        except ZeroDivisionError:
            return shown, None
        except (SyntaxError, ValueError):
            continue
    return None
