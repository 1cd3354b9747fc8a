"""Variants: one flow run over several inputs or settings side by side, and their outputs compared.

``flow.map([{"topic": "cats"}, {"topic": "dogs", "model": "gpt-4o-mini"}])`` runs
one run per dict, all at once. Keys that are :class:`RunSettings` fields
(``model``, ``temperature``, ``workers``...) change the settings; every other
key is an input. :func:`grid` builds the dicts for every combination, as the
cell option ``--grid model=a,b temperature=0,0.7`` does.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UnknownStepError
from . import present
from .model import RunSettings

if TYPE_CHECKING:
    from ..engine.record import Run

SETTINGS = frozenset(RunSettings.model_fields)


def split(variant: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A variant's ``(inputs, settings)``."""
    inputs = {k: v for k, v in variant.items() if k not in SETTINGS}
    settings = {k: v for k, v in variant.items() if k in SETTINGS}
    return inputs, settings


def grid(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, the first axis varying slowest."""
    for key, values in axes.items():
        if not values:
            raise ValueError(f"grid axis '{key}' has no values")
    keys = list(axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes.values())]


def parse_axes(words: Iterable[str]) -> dict[str, list[Any]]:
    """``["model=a,b", "temperature=0,0.7"]`` -> ``{"model": ["a", "b"], "temperature": [0, 0.7]}``.

    A value that reads as a Python literal (a number, True, None, a quoted
    string) is that literal; anything else is a string. Quote a whole word to
    put spaces in it: ``"topic=space cats,dogs"``.
    """
    axes: dict[str, list[Any]] = {}
    for word in words:
        if len(word) > 1 and word[0] == word[-1] and word[0] in "'\"":  # a quoted word, kept so by IPython
            word = word[1:-1]
        key, sep, values = word.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"'{word}' is not NAME=VALUE[,VALUE...], e.g. model=offline,gpt-4o-mini")
        if key in axes:
            raise ValueError(f"'{key}' is given twice in the grid")
        axes[key] = [_literal(v.strip()) for v in values.split(",")]
    return axes


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def label(variant: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in variant.items()) or "(as defined)"


@dataclass
class Variants:
    """The runs of one :meth:`Flow.map`, in the order the variants were given.

    ``variants[i]`` is the i-th :class:`Run`; ``table("step", ...)`` compares
    chosen outputs side by side (by default the flow's final steps).
    """

    flow: str
    variants: list[dict[str, Any]]
    runs: list[Run]
    final: tuple[str, ...] = ()  # steps nothing else reads: what a table shows by default

    def __getitem__(self, index: int) -> Run:
        return self.runs[index]

    def __len__(self) -> int:
        return len(self.runs)

    @property
    def labels(self) -> list[str]:
        return [label(v) for v in self.variants]

    def table(self, *steps: str) -> VariantTable:
        return VariantTable(self, steps or self.final)

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.table().text())

    def __repr__(self) -> str:
        statuses = ", ".join(r.status for r in self.runs)
        return f"<Variants of {self.flow!r}: {len(self.runs)} runs ({statuses})>"


class VariantTable:
    """Chosen outputs of each variant side by side: a row per step, a column per variant."""

    def __init__(self, variants: Variants, steps: Sequence[str]) -> None:
        from ..engine.diff import value_text

        for step in steps:
            if variants.runs and step not in variants.runs[0].steps:
                raise UnknownStepError(step, variants.flow, variants.runs[0].steps)
        counts: dict[str, int] = {}
        for run in variants.runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        states = ", ".join(f"{n} {status}" for status, n in counts.items())
        self.title = f"flow '{variants.flow}': {len(variants.runs)} variants, {states}"
        self.header = ["", *variants.labels]
        self.rows: list[list[str]] = [
            ["status", *(_status(r) for r in variants.runs)],
        ]
        for step in steps:
            self.rows.append([step, *(value_text(r, step) for r in variants.runs)])

    def text(self) -> str:
        blocks = []
        for column, name in enumerate(self.header[1:], start=1):
            lines = [f"== {name}"]
            lines += [f"{row[0]}: {row[column]}" for row in self.rows]
            blocks.append("\n".join(lines))
        return "\n\n".join([self.title, *blocks])

    def _repr_html_(self) -> str:
        return str(present.draw("variants", self))

    def __repr__(self) -> str:
        return self.text()


def _status(run: Run) -> str:
    wall = f" in {run.wall_time:.2f}s" if run.wall_time is not None else ""
    return f"{run.status}{wall}"
