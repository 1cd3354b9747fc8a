"""Scorers: what says how good one run's outputs are for one example.

A scorer is any function ``(example, outputs) -> float | bool``: ``example`` is the data's
row (a dict of its columns), ``outputs`` the run's step values (an :class:`Outputs`, whose
``final`` is the flow's final step's value). ``True``/``False`` count as 1 and 0; a score of
at least 0.5 passes. The built-ins read the final value unless given ``step=``:

- :func:`exact` ``("label")``: the value equals the example's ``label`` column (as text, trimmed);
- :func:`contains` ``("refund")``: the value contains the text (or a column's value);
- :func:`regex` ``(r"^\\d+$")``: the pattern matches;
- :func:`valid_json` ``()``: the value is JSON text (or already a dict or list);
- :func:`valid_schema` ``(Model)``: the value validates against a pydantic model;
- :func:`close` ``("answer", tolerance=0.01)``: a number within the tolerance of the column's;
- :func:`judge` ``("Is {answer} polite? yes or no")``: a model answers; "yes" scores 1.

A judge is one more ``llm`` step, run and cached as any: ``{answer}`` is the final value,
other placeholders name columns of the example or steps of the run.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable
from typing import Any

Score = float | bool | None
Scorer = Callable[[dict[str, Any], "Outputs"], Score]


class Outputs(dict[str, Any]):
    """A run's step values by name; ``final`` is the final step's value (a dict if there are several)."""

    final: Any = None


def _got(outputs: Outputs, step: str | None) -> Any:
    if step is None:
        return outputs.final
    if step not in outputs:
        raise KeyError(f"the run has no value for step '{step}'")
    return outputs[step]


def _text(value: Any) -> str:
    return (
        value
        if isinstance(value, str)
        else json.dumps(value, default=str)
        if isinstance(value, (dict, list))
        else str(value)
    )


def exact(column: str, step: str | None = None, case: bool = False) -> Scorer:
    """The value equals the example's ``column``, as trimmed text (ignoring case unless ``case``)."""

    def score(example: dict[str, Any], outputs: Outputs) -> bool:
        got, want = _text(_got(outputs, step)).strip(), _text(example[column]).strip()
        return got == want if case else got.casefold() == want.casefold()

    score.__name__ = f"exact_{column}"
    return score


def contains(text: str, step: str | None = None) -> Scorer:
    """The value contains ``text`` (or, when ``text`` names a column, that column's value), ignoring case."""

    def score(example: dict[str, Any], outputs: Outputs) -> bool:
        wanted = _text(example[text]) if text in example else text
        return wanted.casefold() in _text(_got(outputs, step)).casefold()

    score.__name__ = "contains_" + re.sub(r"\W+", "_", text)[:20]
    return score


def regex(pattern: str, step: str | None = None) -> Scorer:
    """``pattern`` is found in the value (``re.search``)."""
    compiled = re.compile(pattern)

    def score(example: dict[str, Any], outputs: Outputs) -> bool:
        return compiled.search(_text(_got(outputs, step))) is not None

    score.__name__ = "regex"
    return score


def valid_json(step: str | None = None) -> Scorer:
    """The value is JSON text, or a dict or a list already."""

    def score(example: dict[str, Any], outputs: Outputs) -> bool:
        got = _got(outputs, step)
        if isinstance(got, (dict, list)):
            return True
        try:
            json.loads(str(got))
        except ValueError:
            return False
        return True

    score.__name__ = "valid_json"
    return score


def valid_schema(model: Any, step: str | None = None) -> Scorer:
    """The value validates against the pydantic ``model`` (an instance of it, a dict, or JSON text)."""

    def score(example: dict[str, Any], outputs: Outputs) -> bool:
        got = _got(outputs, step)
        if isinstance(got, model):
            return True
        try:
            if isinstance(got, (str, bytes)):
                model.model_validate_json(got)
            else:
                model.model_validate(got)
        except ValueError:  # pydantic's ValidationError is one
            return False
        return True

    score.__name__ = f"valid_{getattr(model, '__name__', 'schema')}"
    return score


def close(column: str, tolerance: float = 1e-6, step: str | None = None) -> Scorer:
    """The value, as a number, is within ``tolerance`` of the example's ``column``; not a number: 0."""

    def score(example: dict[str, Any], outputs: Outputs) -> bool:
        try:
            return abs(float(_got(outputs, step)) - float(example[column])) <= tolerance
        except (TypeError, ValueError):
            return False

    score.__name__ = f"close_{column}"
    return score


class Judge:
    """A model asked about each run: ``yes`` (at the start of its answer) scores 1, anything else 0."""

    def __init__(self, template: str, model: str | None = None, system: str | None = None) -> None:
        self.template = template
        self.model = model
        self.system = system
        self.names = [f for _, f, _, _ in string.Formatter().parse(template) if f]
        self.__name__ = "judge"
        self._flow: Any = None

    def flow(self) -> Any:
        """The one-step flow that asks: run and cached like any other."""
        if self._flow is None:
            from ..flow.flow import Flow

            system = f", system={self.system!r}" if self.system else ""
            self._flow = Flow.from_source(f"verdict = llm({self.template!r}{system})", name="judge", model=self.model)
        return self._flow

    def inputs(self, example: dict[str, Any], outputs: Outputs) -> dict[str, Any]:
        values = {**example, **outputs, "answer": outputs.final}
        heads = {name.split(".")[0].split("[")[0] for name in self.names}
        missing = [h for h in heads if h not in values]
        if missing:
            raise KeyError(f"the judge's template reads {', '.join(missing)}: neither a column nor a step")
        return {h: values[h] for h in heads}

    @staticmethod
    def verdict(answer: Any) -> bool:
        return str(answer).strip().lower().startswith("yes")

    def __call__(self, example: dict[str, Any], outputs: Outputs) -> bool:
        """Outside an evaluation: ask now (an evaluation asks on its own loop)."""
        run = self.flow().run(**self.inputs(example, outputs))
        return self.verdict(run["verdict"])


def judge(template: str, model: str | None = None, system: str | None = None) -> Judge:
    """An LLM judge: ``template`` asks about one run (``{answer}`` is its final value); yes scores 1."""
    return Judge(template, model, system)


__all__ = [
    "Judge",
    "Outputs",
    "Score",
    "Scorer",
    "close",
    "contains",
    "exact",
    "judge",
    "regex",
    "valid_json",
    "valid_schema",
]
