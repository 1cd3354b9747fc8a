"""Cache keys: what a step's key is made of before the run, and the key itself when it starts.

A step's key is a digest of the flow's name, the step's name, its expression (parsed, so spacing
and comments do not count), the fingerprints of the inputs it reads (values, and functions by
source), the model for ``llm`` steps, and the fingerprints of the *values* of the steps it reads,
taken when it starts. So editing one prompt reruns that step, and a step downstream is reused
again as soon as what it reads comes out equal (early cut-off, as in a build system): a clock read
again but unchanged costs no new ``llm`` call. Which steps have a key at all is the cache policy
(:mod:`.reuse`).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..flow.compiled import CompiledFlow
from .fingerprint import Unfingerprintable, digest, fingerprint
from .record import KeyParts, Run, StepRecord
from .reuse import not_reused

#: Bump when the key recipe changes: old entries are then never looked up.
VERSION = "flowmagic-step-3"


@dataclass
class Keys:
    """What each step's cache key is made of, before the run: its definition and the inputs it
    reads (None: the step is not reused, and ``reasons`` says why); the values it reads complete
    the key when it starts (:func:`key_of`)."""

    parts: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    reads: dict[str, tuple[str, ...]] = field(default_factory=dict)  # the steps whose values it reads
    reasons: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # input name -> fingerprint


def step_keys(
    name: str, flow: CompiledFlow, inputs: Mapping[str, Any], llm_settings: str, cache_calls: bool = False
) -> Keys:
    """What each step's key is made of, from its definition and its inputs.

    ``llm_settings`` describes what ``llm`` steps run with (model, temperature). A step the cache
    policy runs every time (:func:`.reuse.not_reused`), or one that reads an input that cannot be
    fingerprinted, has no parts. The steps a step reads count by their *values*, fingerprinted
    when it starts, so a step whose inputs come out equal after an upstream rerun is still
    reused (early cut-off).
    """
    out = Keys()
    unprintable: dict[str, str] = {}  # input name -> why it has no fingerprint
    for input_name, value in inputs.items():
        try:
            out.inputs[input_name] = fingerprint(value)
        except Unfingerprintable as exc:
            unprintable[input_name] = f"not cached: input '{input_name}' cannot be fingerprinted: {exc}"
    steps = flow.steps
    for step_name in flow.order:
        step = steps[step_name]
        compiled = flow.code[step_name]
        if step.kind == "join":  # settled from the chosen arm's value as soon as it is known
            out.parts[step_name] = None
            continue
        why = not_reused(step, compiled, inputs, cache_calls)
        if why is None:
            why = _parts(out, step_name, name, flow, llm_settings, unprintable)
        if why is not None:
            out.parts[step_name] = None
            out.reasons[step_name] = why
    return out


def _parts(
    out: Keys, step_name: str, name: str, flow: CompiledFlow, llm_settings: str, unprintable: dict[str, str]
) -> str | None:
    """Fill in what the key of a step the policy lets be reused is made of; or say why it has none
    (an input it reads cannot be fingerprinted)."""
    step, compiled = flow.steps[step_name], flow.code[step_name]
    # a step in an if block's arm is named after its line (reply@7): its key is not, so a line
    # added above it changes nothing; what it computes and reads is all that counts
    parts = [VERSION, name, _unlined(step_name), step.kind, _normal(step.source)]
    if step.kind == "llm" or "llm" in compiled.reads:
        parts += ["llm", llm_settings]
    reads: list[str] = []
    for read in compiled.reads:
        if read == "llm":
            continue
        unit = compiled.unit_of(read)
        if unit in flow.steps:
            reads.append(unit)
        elif read in flow.groups and flow.groups[read].named:
            reads.extend(flow.groups[read].members)
        else:
            value_print = out.inputs.get(read)
            if value_print is None:
                return unprintable.get(read, f"not cached: input '{read}' is unknown")
            parts += ["input", read, value_print]
    out.parts[step_name] = tuple(parts)
    out.reads[step_name] = tuple(reads)
    return None


def key_of(parts: tuple[str, ...], prints: list[str]) -> str:
    """A step's key: what it is made of before the run, and the fingerprints of the values it reads."""
    return digest(*parts, *prints)


def _unlined(name: str) -> str:
    """A step's name without the line an if block's arm adds to it (``reply@7``, ``if@3``)."""
    return name.partition("@")[0]


@functools.lru_cache(maxsize=4096)
def _normal(source: str) -> str:
    """The expression as parsed: spacing, comments and line breaks do not change a key."""
    try:
        return ast.dump(ast.parse(source.strip(), mode="eval"))
    except SyntaxError:
        return source


class RunKeys:
    """One run's keys, each completed when its step starts from the values it reads; and, when
    a step finds nothing, what changed since the flow's previous run."""

    def __init__(self, keys: Keys, values: dict[str, Any], steps: dict[str, StepRecord], previous: Run | None):
        self.parts = keys.parts
        self.reads = keys.reads
        self._values = values
        self._steps = steps
        self._previous = previous
        self._prints: dict[str, str] = {}  # each step value's fingerprint, taken once, when first read
        self.made: dict[str, str] = {}  # the key of each step that started with one

    def reused(self, unit: str) -> bool:
        """Whether the policy lets ``unit`` be reused (it has a key once it starts)."""
        return self.parts.get(unit) is not None

    def key(self, unit: str) -> str | None:
        """``unit``'s key, now that what it reads is known; None if a value it reads has no
        fingerprint (its record then says so)."""
        parts = self.parts.get(unit)
        if parts is None:
            return None
        reads = self.reads[unit]
        prints = []
        for read in reads:
            value_print = self._prints.get(read)
            if value_print is None:
                try:
                    value_print = self._prints[read] = fingerprint(self._values[read])
                except Unfingerprintable as exc:
                    why = f"the value of '{_unlined(read)}' cannot be fingerprinted: {exc}"
                    self._steps[unit].cache_note = f"not cached: {why}"
                    return None
            prints.append(value_print)
        self._steps[unit].key_parts = (parts, tuple(zip(map(_unlined, reads), prints, strict=True)))
        key = self.made[unit] = key_of(parts, prints)
        return key

    def missed(self, unit: str) -> None:
        """``unit`` found nothing under its key: say why in its record, if the previous run of
        the flow had a key for it."""
        before = self._previous.steps.get(unit) if self._previous is not None else None
        now = self._steps[unit].key_parts
        if before is None or before.key_parts is None or now is None:
            return
        self._steps[unit].cache_note = f"ran again: {what_changed(before.key_parts, now)}"


def what_changed(before: KeyParts, now: KeyParts) -> str:
    """What differs between two versions of a step's key, in the user's words."""
    (old, old_reads), (new, new_reads) = before, now
    if old[:5] != new[:5]:
        return "its expression changed"
    old_labels, new_labels = _labelled(old), _labelled(new)
    for label, value in new_labels.items():
        if old_labels.get(label) != value:
            return "the model or its settings changed" if label == "llm" else f"'{label}' changed"
    read_before = dict(old_reads)
    for name, value_print in new_reads:
        if read_before.get(name) != value_print:
            return f"'{name}' changed"
    return "it was not in the cache any more"


def _labelled(parts: tuple[str, ...]) -> dict[str, str]:
    """The llm settings and the inputs among a key's parts (after its five fixed ones), by name."""
    out, rest = {}, list(parts[5:])
    while rest:
        tag = rest.pop(0)
        if tag == "llm":
            out["llm"] = rest.pop(0)
        else:  # "input", NAME, PRINT
            name = rest.pop(0)
            out[name] = rest.pop(0)
    return out
