"""Evaluation: a flow over a dataset, each run scored, variants side by side, regressions shown.

``flow.evaluate(data, scorers=..., variants=...)`` returns an :class:`Evaluation`. The data
(:mod:`.data`), the scorers (:mod:`.scorers`), the runs (:mod:`.running`) and what the user
reads (:mod:`.report`) each have a module.
"""

from __future__ import annotations

from .report import Evaluation
from .running import evaluate
from .scorers import close, contains, exact, judge, regex, valid_json, valid_schema

__all__ = ["Evaluation", "close", "contains", "evaluate", "exact", "judge", "regex", "valid_json", "valid_schema"]
