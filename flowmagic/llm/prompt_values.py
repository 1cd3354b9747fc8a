"""Values read out of a prompt's text: the lists, dicts and sets written in it (as JSON or as Python prints
them), their readable strings, and the first sum it asks for. Bounded work on any input; nothing is run as code.
Used by the offline model (:mod:`flowmagic.llm.offline_rules`); the words they know are in ``offline_data``.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from flowmagic.llm.offline_data import vocab

HEAD = 2_000  # characters where questions, labels, names and sums are looked for
LITERAL_MAX = 200_000  # the most one literal may span, and the most of a prompt that is read at all
LITERAL_TRIES = 32  # brackets that turn out to open no literal; bounds the work on odd prompts
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_NESTING = {"[": 1, "{": 1, "(": 1, "]": -1, "}": -1, ")": -1}
_LITERAL_TOKEN = re.compile(r"[\[\]{}()]|'(?:[^'\\\n]|\\.)*'" + r'|"(?:[^"\\\n]|\\.)*"')


def literals(text: str) -> list[tuple[int, int, Any]]:
    """The lists, dicts and sets in ``text``, written as JSON or as Python prints them: (start, end, value).

    At most ``LITERAL_TRIES`` brackets that open no literal are tried, and ``LITERAL_MAX`` characters scanned."""
    found, pos, budget, tries = [], 0, LITERAL_MAX, LITERAL_TRIES
    while tries > 0 and budget > 0 and (opener := re.compile(r"[\[{]").search(text, pos)):
        start, depth, end, value = opener.start(), 0, 0, None
        for token in _LITERAL_TOKEN.finditer(text, start, min(len(text), start + budget)):
            depth += _NESTING.get(token.group(), 0)
            if depth == 0:
                end = token.end()
                break
        budget -= (end or min(len(text), start + budget)) - start
        for parse in (json.loads, ast.literal_eval) if end else ():  # JSON, or Python's repr of a value
            try:
                value = parse(text[start:end])
                break
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
        if isinstance(value, (list, tuple, dict, set)):
            found.append((start, end, value))
        pos, tries = (end, tries) if isinstance(value, (list, tuple, dict, set)) else (start + 1, tries - 1)
    return found


def texts(value: Any) -> list[str]:
    """The readable strings in a literal's value, in order: of a dict, its 'text'-like entry, else its values
    (as 'Broom (household)' unless they are sentences)."""
    if isinstance(value, dict):
        parts = [str(value[k]).strip() for k in vocab()["text_keys"] if str(value.get(k) or "").strip()][:1]
        parts = parts or texts(list(value.values()))
        prose = all(len(p.split()) >= 5 for p in parts)
        return parts if prose else [parts[0] + (f" ({', '.join(parts[1:])})" if parts[1:] else "")]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [
            t for item in (value if isinstance(value, (list, tuple)) else sorted(value, key=str)) for t in texts(item)
        ]
    return [] if value is None or isinstance(value, bool) or not str(value).strip() else [str(value).strip()]


def readable(prompt: str, found: list[tuple[int, int, Any]]) -> str:
    """``prompt`` with its literals spelled out: ['tea', 'jam'] -> 'tea and jam'; a list of sentences as sentences."""
    out, pos = [], 0
    for start, end, value in found:
        items = texts(value)
        prose = bool(items) and all(len(i.split()) >= 5 for i in items)
        out += [prompt[pos:start], " ".join(i if i[-1] in ".!?" else f"{i}." for i in items) if prose else join(items)]
        pos = end + (prose and prompt[end : end + 1] == ".")
    return "".join([*out, prompt[pos:]])


def join(items: Sequence[str]) -> str:
    """['tea', 'jam', 'scones'] -> 'tea, jam and scones'."""
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def calculate(text: str) -> tuple[str | None, str | None]:
    """The first sum in ``text`` ('17*3', 'seven times six', '15% of 80') and its value (None: it divides by
    zero); (None, None) if there is none. Only numbers, + - * / and brackets are parsed, and the tree is walked
    here: nothing is run as code."""

    def value(node: ast.expr) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return Fraction(_OPS[type(node.op)](value(node.left), value(node.right)))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return Fraction(str(node.value))
        raise ValueError("not a sum")

    v = vocab()
    text = re.sub(r"\b\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}\b|\b\d{1,2}:\d{2}\b", " ", text[:HEAD].lower())  # dates, times
    text = re.sub(rf"\b(?:{'|'.join(v['number_words'])})\b", lambda m: str(v["number_words"][m[0]]), text)
    text = re.sub(r"(?<=\d)\s*[x\u00d7]\s*(?=[\d(])", "*", re.sub(v["ops"], lambda m: v["operators"][m[0]], text))
    for run in re.findall(r"[-+*/().\d\s]+", text.replace("\u00f7", "/")):
        tokens = re.findall(r"\d+(?:\.\d+)?|[-+*/()]", run)
        if len(tokens) > 64 or re.search(r"\d{16}", run) or not re.search(r"[\d)]\s*[-+*/]\s*[-+(]*\d", run):
            continue
        shown = " ".join(tokens).replace("( ", "(").replace(" )", ")")
        try:
            found = value(ast.parse("".join(tokens), mode="eval").body)
        except ZeroDivisionError:
            return shown, None
        except (SyntaxError, ValueError):
            continue
        return shown, str(found.numerator) if found.denominator == 1 else f"{float(found):.10g}"
    return None, None
