"""The offline model's rules and vocabulary (package data, read by :mod:`flowmagic.llm.offline_rules`).

``rules.json`` and ``words.json`` are read once, on the first offline answer, into one dictionary:

* ``answers``: rules tried in order. A rule is ``{"when": regex, "if": regex, "say": [template, ...], "case":
  "title"}`` (all but ``say`` optional) or a lone template. It fits when ``when`` matches the prompt's ask (its
  instruction, lowercased) and ``if`` the ask and the prompt's start; then one of its templates, drawn from the
  request's seed, is filled in. A template with a slot that has nothing to say passes the prompt to the next rule.
* A template is text with ``{slot}``s: ``{Slot}`` is the slot capitalised, ``{a_slot}`` it after "a" or "an",
  ``{all_name}`` every match of the ``find`` regex ``name`` in the text the prompt carries. By its name, a slot
  is: a reader (``offline_rules.READERS``: a sum, a summary, a numbered list...); an entry of ``slots``, rules as
  above; a ``pick`` list, one of its words; a ``hints`` table ``{key: [word, ...]}``, the
  first key one of whose words starts a word of the prompt; a ``find`` regex, what it (or its first group)
  matched.
* ``lists``: rules for the items of "five ideas" or "three colours"; the first whose ``when`` matches the ask
  gives every item's templates (``order``: taken in turn, not drawn). ``fields``: rules for the values of a
  ``schema=`` answer, by the field's ``name`` and the value's ``types`` (see ``schema_instance.Leaves``).
* The other entries are the words and regexes the readers use, named for what they hold.

A new kind of prompt is a new rule in ``answers``, and maybe a few ``slots``, ``pick`` lists or ``find`` regexes.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any


@functools.cache
def vocab() -> dict[str, Any]:
    """``offline_data``'s words and rules as one dictionary: read once, when first used."""
    root, data = resources.files(__name__), {}
    for name in ("words", "rules"):
        data.update(json.loads((root / f"{name}.json").read_text(encoding="utf-8")))
    words = sorted(data["operators"], key=len, reverse=True)  # 'multiplied by' before 'by'
    data["ops"] = "|".join(("\\b" if w[0].isalnum() else "") + re.escape(w) + r"(?!\w)" for w in words)
    return data | {"stop": frozenset(data["stopwords"].split())}
