"""``flowmagic eval``: an evaluation from a terminal, and a gate for CI.

    flowmagic eval examples/triage.flow --data examples/tickets.csv --tools examples/triage_tools.py \\
        --scorer exact:label:label --variant formal:tone=formal --variant friendly:tone=friendly \\
        --min exact_label=0.8

Scorers are written ``exact:COLUMN[:STEP]``, ``contains:TEXT``, ``regex:PATTERN``, ``valid_json``,
``close:COLUMN[:TOLERANCE]``, ``judge:TEMPLATE`` or the name of a function in a ``--tools``
file. ``--min SCORER=MEAN`` makes the command exit 1 when a variant's mean of that scorer is
below MEAN, or any of its runs failed.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path
from typing import Any

from . import scorers as built_in


def add_parser(sub: Any, workers: Any, tools_help: str) -> None:
    p = sub.add_parser("eval", help="run a flow file over a dataset, score every run, print variants x scorers")
    p.add_argument("file", help="a flow file: the body of a %%%%flow cell")
    p.add_argument("--data", required=True, metavar="DATA", help="a .csv or .jsonl file: one example per row")
    p.add_argument(
        "--scorer",
        action="append",
        default=[],
        metavar="SPEC",
        help="exact:COLUMN[:STEP], contains:TEXT, regex:PATTERN, valid_json, close:COLUMN[:TOLERANCE], "
        "judge:TEMPLATE, or a function NAME from --tools (repeatable); a scorer reads the final step "
        "unless given one",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE[,KEY=VALUE]",
        help="inputs or settings of one variant (repeatable; default: the flow as it is)",
    )
    p.add_argument("--tools", action="append", default=[], metavar="MODULE.py", help=tools_help)
    p.add_argument("--workers", type=workers, default=32, help="runs at once across the evaluation (default 32)")
    p.add_argument("--model", default=None, help="model for llm() steps (default: offline unless configured)")
    p.add_argument("--json", metavar="OUT", help="also write the table and every row as JSON to OUT")
    p.add_argument(
        "--min", action="append", default=[], metavar="SCORER=MEAN", help="exit 1 if a variant's mean is below MEAN"
    )


def scorer_of(spec: str, namespace: dict[str, Any]) -> tuple[str, Any]:
    """``(name, scorer)`` for one ``--scorer`` SPEC."""
    kind, _, rest = spec.partition(":")
    if kind == "exact" and rest:
        column, _, step = rest.partition(":")
        return f"exact_{column}", built_in.exact(column, step=step or None)
    if kind == "contains" and rest:
        return "contains", built_in.contains(rest)
    if kind == "regex" and rest:
        return "regex", built_in.regex(rest)
    if kind == "valid_json" and not rest:
        return "valid_json", built_in.valid_json()
    if kind == "close" and rest:
        column, _, tolerance = rest.partition(":")
        return f"close_{column}", built_in.close(column, float(tolerance) if tolerance else 1e-6)
    if kind == "judge" and rest:
        return "judge", built_in.judge(rest)
    if not rest and callable(namespace.get(kind)):
        return kind, namespace[kind]
    raise SystemExit(
        f"flowmagic: --scorer {spec!r} is not exact:COLUMN[:STEP], contains:TEXT, regex:PATTERN, valid_json, "
        "close:COLUMN[:TOLERANCE], judge:TEMPLATE or a function of a --tools file"
    )


def variant_of(spec: str) -> tuple[str, dict[str, Any]]:
    """``(name, values)`` for one ``--variant NAME:KEY=VALUE[,KEY=VALUE]``."""
    name, sep, pairs = spec.partition(":")
    values: dict[str, Any] = {}
    for pair in filter(None, pairs.split(",")):
        key, eq, text = pair.partition("=")
        if not eq or not key.strip().isidentifier():
            raise SystemExit(f"flowmagic: --variant takes NAME:KEY=VALUE[,KEY=VALUE], not {spec!r}")
        try:
            values[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[key.strip()] = text
    if not sep or not name.strip():
        raise SystemExit(f"flowmagic: --variant takes NAME:KEY=VALUE[,KEY=VALUE], not {spec!r}")
    return name.strip(), values


def minimums(specs: list[str]) -> dict[str, float]:
    found = {}
    for spec in specs:
        name, sep, text = spec.partition("=")
        try:
            found[name.strip()] = float(text)
        except ValueError:
            raise SystemExit(f"flowmagic: --min takes SCORER=MEAN, not {spec!r}") from None
        if not sep:
            raise SystemExit(f"flowmagic: --min takes SCORER=MEAN, not {spec!r}")
    return found


def command(args: argparse.Namespace, flow: Any, namespace: dict[str, Any]) -> int:
    named = dict(scorer_of(spec, namespace) for spec in args.scorer)
    lowest = minimums(args.min)
    unknown = [s for s in lowest if s not in named]
    if unknown:
        raise SystemExit(f"flowmagic: --min names {', '.join(unknown)}, not a --scorer (scorers: {', '.join(named)})")
    variants = dict(variant_of(spec) for spec in args.variant) or None
    ev = flow.evaluate(args.data, scorers=named, variants=variants, workers=args.workers, progress=False)
    print(ev.text())
    if args.json:
        Path(args.json).write_text(json.dumps(as_json(ev), indent=2, default=repr), encoding="utf-8")
    problems = []
    for t in ev.table_rows():
        for scorer, least in lowest.items():
            mean = t["cells"][scorer].mean
            if mean is None or mean < least or t["failed"]:
                shown = "-" if mean is None else f"{mean:.3f}"
                failed = f" ({t['failed']} runs failed)" if t["failed"] else ""
                problems.append(f"{t['variant']}: {scorer} mean {shown} is below {least:g}{failed}")
    for problem in problems:
        print(f"flowmagic eval: {problem}")
    return 1 if problems or (not lowest and ev.failures) else 0


def as_json(ev: Any) -> dict[str, Any]:
    return {
        "flow": ev.flow,
        "status": ev.status,
        "variants": {
            t["variant"]: {
                "runs": t["runs"],
                "failed": t["failed"],
                "tokens": t["tokens"],
                "cost": t["cost"],
                "scores": {s: vars(c) for s, c in t["cells"].items()},
            }
            for t in ev.table_rows()
        },
        "rows": [
            {
                "variant": r.variant,
                "example": r.index,
                "status": r.status,
                "outputs": r.outputs,
                "scores": r.scores,
                "error": r.error,
                "seconds": r.seconds,
            }
            for r in ev.rows
        ],
    }


__all__ = ["add_parser", "command"]
