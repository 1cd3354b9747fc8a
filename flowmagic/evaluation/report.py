"""What an evaluation gives back: one row per (variant, example), and a table of variants x scorers.

The table has, per variant and scorer, the mean score, its spread (standard deviation) and the
pass rate (scores of at least 0.5), then the failed examples, tokens, cost and mean time of the
variant's runs. Against the previous evaluation of the same flow in this kernel, a mean that
rose is marked ``▲`` and one that fell ``▼`` (a regression). ``ev.df`` is the rows as a pandas
DataFrame; ``ev.examples(...)`` picks rows; ``ev.show(i)`` draws row ``i``'s run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..flow import present

PASS = 0.5  # a score at least this passes (True counts as 1)


@dataclass
class Row:
    """One run of the evaluation: a variant on an example."""

    variant: str
    index: int  # the example's position in the data
    example: dict[str, Any]
    status: str = "pending"  # then succeeded, failed or cancelled
    outputs: dict[str, Any] = field(default_factory=dict)  # the run's step values
    scores: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None
    tokens: tuple[int, int] = (0, 0)
    cost: float | None = None
    seconds: float = 0.0
    cached: int = 0  # steps reused from the cache
    run: Any = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return self.status == "succeeded" and all(s is not None and s >= PASS for s in self.scores.values())


@dataclass(frozen=True)
class Cell:
    """One variant's aggregate of one scorer."""

    mean: float | None
    spread: float | None
    pass_rate: float | None
    change: float | None = None  # against the previous evaluation's mean, when there was one


class Evaluation:
    """Rows and aggregates of one evaluation; see the module's docstring."""

    def __init__(
        self,
        flow: str,
        variants: Sequence[str],
        scorers: Sequence[str],
        examples: Sequence[dict[str, Any]],
        previous: Evaluation | None = None,
    ) -> None:
        self.flow = flow
        self.variants = list(variants)
        self.scorers = list(scorers)
        self.examples_data = list(examples)
        self.previous = previous
        self.rows: list[Row] = []
        self.total = len(self.variants) * len(self.examples_data)
        self.status = "running"

    # -- progress (what a progress bar reads) --------------------------------------------------
    @property
    def done(self) -> int:
        return len(self.rows)

    @property
    def failures(self) -> int:
        return sum(r.status != "succeeded" for r in self.rows)

    def progress(self) -> str:
        prompt, completion = (sum(r.tokens[i] for r in self.rows) for i in (0, 1))
        cost = sum(r.cost or 0.0 for r in self.rows)
        parts = [
            f"{self.done:,}/{self.total:,} runs",
            f"{self.failures:,} failed",
            f"{sum(r.cached for r in self.rows):,} steps cached",
        ]
        parts.append(f"{prompt + completion:,} tokens" + (f", ${cost:.4f}" if cost else ""))
        return ", ".join(parts)

    # -- aggregates ------------------------------------------------------------------------------
    def cell(self, variant: str, scorer: str) -> Cell:
        scores = [r.scores.get(scorer) for r in self.rows if r.variant == variant and r.status == "succeeded"]
        values = [float(s) for s in scores if s is not None]
        if not values:
            return Cell(None, None, None)
        mean = statistics.fmean(values)
        spread = statistics.pstdev(values) if len(values) > 1 else 0.0
        passed = sum(v >= PASS for v in values) / len(values)
        change = None
        if self.previous is not None and variant in self.previous.variants and scorer in self.previous.scorers:
            before = self.previous.cell(variant, scorer).mean
            change = None if before is None else mean - before
        return Cell(mean, spread, passed, change)

    def table_rows(self) -> list[dict[str, Any]]:
        """Per variant: its cells, failures, tokens, cost and mean seconds."""
        out = []
        for variant in self.variants:
            rows = [r for r in self.rows if r.variant == variant]
            costs = [r.cost for r in rows if r.cost is not None]
            out.append(
                {
                    "variant": variant,
                    "cells": {s: self.cell(variant, s) for s in self.scorers},
                    "runs": len(rows),
                    "failed": sum(r.status != "succeeded" for r in rows),
                    "tokens": sum(sum(r.tokens) for r in rows),
                    "cost": sum(costs) if costs else None,
                    "seconds": statistics.fmean(r.seconds for r in rows) if rows else 0.0,
                }
            )
        return out

    def regressions(self) -> list[tuple[str, str, float]]:
        """(variant, scorer, change) for every mean that fell since the previous evaluation."""
        return [
            (t["variant"], s, c.change)
            for t in self.table_rows()
            for s, c in t["cells"].items()
            if c.change is not None and c.change < -1e-9
        ]

    # -- reading rows ----------------------------------------------------------------------------
    def examples(self, where: str | Callable[[Row], bool] | None = None, variant: str | None = None) -> list[Row]:
        """Rows to look at: by default those that failed or did not pass a scorer; ``where`` a
        scorer's name (the rows it did not pass) or a function of a :class:`Row`."""
        if where is None:
            keep: Callable[[Row], bool] = lambda r: not r.passed  # noqa: E731
        elif isinstance(where, str):
            if where not in self.scorers:
                raise KeyError(f"no scorer '{where}'; the scorers: {', '.join(self.scorers)}")
            keep = lambda r: r.status != "succeeded" or (r.scores.get(where) or 0.0) < PASS  # noqa: E731
        else:
            keep = where
        return [r for r in self.rows if (variant is None or r.variant == variant) and keep(r)]

    def show(self, i: int) -> Any:
        """Row ``i``'s run: its DAG and timeline in a notebook, its summary in a terminal."""
        return self.rows[i].run.show()

    @property
    def df(self) -> Any:
        """One row per (variant, example): inputs and expected columns, outputs, scores, tokens,
        cost, seconds, error (needs pandas)."""
        import pandas as pd

        records = []
        for r in sorted(self.rows, key=lambda r: (self.variants.index(r.variant), r.index)):
            record: dict[str, Any] = {"variant": r.variant, "example": r.index, **r.example}
            record.update({f"out.{k}": v for k, v in r.outputs.items()})
            record.update({f"score.{k}": v for k, v in r.scores.items()})
            record.update(
                status=r.status,
                prompt_tokens=r.tokens[0],
                completion_tokens=r.tokens[1],
                cost=r.cost,
                seconds=r.seconds,
                cached_steps=r.cached,
                error=r.error,
            )
            records.append(record)
        return pd.DataFrame.from_records(records)

    # -- showing ---------------------------------------------------------------------------------
    def text(self) -> str:
        head = ["variant", *self.scorers, "failed", "tokens", "cost", "mean time"]
        lines = [head]
        for t in self.table_rows():
            cells = [_cell_text(t["cells"][s]) for s in self.scorers]
            cost = "-" if t["cost"] is None else f"${t['cost']:.4f}"
            lines.append(
                [t["variant"], *cells, f"{t['failed']}/{t['runs']}", f"{t['tokens']:,}", cost, f"{t['seconds']:.2f}s"]
            )
        widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
        body = "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in lines)
        title = (
            f"evaluation of flow '{self.flow}': {len(self.examples_data):,} examples x {len(self.variants)} variants"
        )
        title += f" ({self.status})" if self.status != "succeeded" else ""
        notes = []
        if self.previous is None:
            notes.append(
                "mean (spread) pass rate per scorer; the next evaluation of this flow is compared with this one"
            )
        else:
            fell = self.regressions()
            notes.append(
                "▲/▼: the mean against the previous evaluation" + (f"; {len(fell)} regression(s)" if fell else "")
            )
        return "\n".join([title, body, *notes])

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    def _repr_html_(self) -> str:
        return str(present.draw("evaluation", self))


def _cell_text(c: Cell) -> str:
    if c.mean is None:
        return "-"
    text = f"{c.mean:.2f} ({c.spread:.2f}) {c.pass_rate:.0%}"
    if c.change is not None and not math.isclose(c.change, 0.0, abs_tol=1e-9):
        text += f" {'▲' if c.change > 0 else '▼'}{c.change:+.2f}"
    return text


__all__ = ["PASS", "Cell", "Evaluation", "Row"]
