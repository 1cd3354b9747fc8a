"""The examples an evaluation runs over: a list of dicts, a pandas DataFrame, or a CSV or JSONL file."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: More examples than this is an error before anything runs (a run is kept per example and variant).
MAX_EXAMPLES = 100_000


def load(data: Any) -> list[dict[str, Any]]:
    """Every example of ``data`` as a dict (column -> value), in order."""
    if isinstance(data, (str, os.PathLike)):
        rows = _read(Path(data))
    elif hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        rows = data.to_dict("records")
    else:
        rows = list(data)
    if len(rows) > MAX_EXAMPLES:
        raise ValueError(f"an evaluation takes at most {MAX_EXAMPLES:,} examples, not {len(rows):,}")
    checked = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"example {index} is a {type(row).__name__}; each example is a dict of column values")
        checked.append({str(k): v for k, v in row.items()})
    if not checked:
        raise ValueError("the evaluation has no examples")
    return checked


def _read(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as file:
            return list(csv.DictReader(file))
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        with path.open(encoding="utf-8") as file:
            for number, line in enumerate(file, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}, line {number}: not JSON ({exc.msg})") from None
        return rows
    raise ValueError(f"{path}: an evaluation reads .csv or .jsonl files, not {suffix or 'a file without a suffix'}")


__all__ = ["MAX_EXAMPLES", "load"]
