"""``flowmagic``: run, check and draw flow files from a terminal.

flowmagic run examples/soundtrack.flow --set topic="space cats"
flowmagic check examples/soundtrack.flow
flowmagic graph examples/soundtrack.flow -o soundtrack.svg
flowmagic export examples/soundtrack.flow -o soundtrack.json
flowmagic eval examples/triage.flow --data examples/tickets.csv --tools examples/triage_tools.py \
    --scorer exact:label:label --min exact_label=0.8
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .engine import events as ev
from .errors import FlowError, caret_lines


def _value(text: str) -> Any:
    """``--set n=3`` gives an int, ``--set xs=[1,2]`` a list, anything else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _workers(text: str) -> int:
    """``--workers``: a whole number of at least 1 (argparse turns the error into a usage message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


def _seconds(text: str) -> float:
    """``--timeout``: a finite number of seconds above 0 (leave the option out for no timeout)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds above 0, not {text!r} (leave --timeout out for no timeout)"
        )
    return value


def _assignments(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip().isidentifier():
            raise SystemExit(f"flowmagic: --set takes NAME=VALUE, not {pair!r}")
        values[name.strip()] = _value(text)
    return values


def _tools(paths: list[str]) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    for path in paths:
        file = Path(path)
        if not file.is_file():
            raise SystemExit(f"flowmagic: no tools file {path!r}")
        spec = importlib.util.spec_from_file_location(file.stem, file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(file.stem, module)
        spec.loader.exec_module(module)
        namespace.update({k: v for k, v in vars(module).items() if not k.startswith("_")})
    return namespace


def _read(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SystemExit(f"flowmagic: cannot read {path!r}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:  # say where, as for any error in a flow
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise SystemExit(
            f"flowmagic: {path!r} is not UTF-8 text: line {line}, column {column} (byte {exc.start})"
        ) from None


def _report(error: FlowError, path: str) -> int:
    text = str(error)
    if isinstance(error, SyntaxError):
        where = f'File "{path}", line {error.lineno or 0}, column {error.offset or 1}'
        text = f"{error.msg}\n  {where}\n{caret_lines(error.text or '', (error.offset or 1) - 1)}"
    else:
        text = text.replace('File "<flow>"', f'File "{path}"')
        if "to read its parameters from" in text:  # an export that needs the functions' signatures
            text = text.replace("parameters from", "parameters from: pass its file with --tools FILE.py", 1)
        if "is not defined" in text:
            text = text.replace(" or a variable.", " or a tool (pass it with --set NAME=VALUE or --tools FILE.py).", 1)
    print(f"{type(error).__name__}: {text}", file=sys.stderr)
    return 2


class _Progress:
    """Prints a line per step as it ends, so a terminal run shows life."""

    MARKS = {ev.FINISHED: "done", ev.FAILED: "FAILED", ev.SKIPPED: "skipped", ev.CANCELLED: "cancelled"}

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.started: dict[str, float] = {}

    def __call__(self, event: ev.Event) -> None:
        if event.step is None or "[" in event.step:
            return
        if event.kind == ev.STARTED:
            self.started.setdefault(event.step, event.time)
        mark = self.MARKS.get(event.kind)
        if mark is None:
            return
        took = event.time - self.started[event.step] if event.step in self.started else None
        extra = f"  {took:.2f}s" if took is not None else ""
        if event.error is not None:
            extra += f"  {type(event.error).__name__}: {event.error}"
        print(f"  {mark:<9} {event.step}{extra}", file=self.stream, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flowmagic", description="Run and check flowmagic flow files.")
    parser.add_argument("--version", action="version", version=f"flowmagic {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run a flow file and print a summary")
    run_p.add_argument("file", help="a flow file: the body of a %%%%flow cell")
    run_p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="an input value")
    run_p.add_argument("--tools", action="append", default=[], metavar="MODULE.py", help="a Python file of tools")
    run_p.add_argument("--workers", type=_workers, default=32, help="steps that may run at once (default 32)")
    run_p.add_argument("--model", default=None, help="model for llm() steps (default: offline unless configured)")
    run_p.add_argument(
        "--sequential", action="store_true", help="one step at a time in declaration order (a baseline to compare)"
    )
    run_p.add_argument(
        "--on-error",
        choices=["continue", "stop"],
        default="continue",
        help="after a failed step: finish what does not depend on it (continue, the default) or cancel the rest",
    )
    run_p.add_argument(
        "--timeout", type=_seconds, default=None, help="cancel the run after this many seconds, keeping what finished"
    )
    recorded = run_p.add_mutually_exclusive_group()
    recorded.add_argument("--record", metavar="FILE", help="also write every llm answer to FILE, to replay it")
    recorded.add_argument("--replay", metavar="FILE", help="answer llm() steps from FILE, offline, as recorded")
    run_p.add_argument(
        "--replay-fallback", action="store_true", help="with --replay: the offline model answers the rest"
    )
    run_p.add_argument("--json", metavar="OUT", help="also write the Run as JSON to OUT")
    run_p.add_argument("--quiet", action="store_true", help="print only the summary")
    check_p = sub.add_parser("check", help="check a flow file without running it")
    check_p.add_argument("file")
    graph_p = sub.add_parser("graph", help="draw a flow file's DAG without running it")
    graph_p.add_argument("file")
    graph_p.add_argument("-o", "--output", metavar="OUT", help="an .svg, .html or .dot file (default: FILE.svg)")
    export_p = sub.add_parser("export", help="write a flow file as an Agent Spec document (JSON or YAML)")
    export_p.add_argument("file")
    export_p.add_argument("-o", "--output", metavar="OUT", help="a .json, .yaml or .yml file, or - (default FILE.json)")
    export_p.add_argument("--format", choices=["json", "yaml"], default=None, help="default: from OUT's extension")
    export_p.add_argument(
        "--tools", action="append", default=[], metavar="MODULE.py", help="the functions the flow calls (typed tools)"
    )
    export_p.add_argument("--model", default=None, help="model written for llm() steps (default: as configured)")
    from .evaluation.cli import add_parser as add_eval

    add_eval(sub, _workers, "a Python file of tools (and scorer functions)")
    args = parser.parse_args(argv)

    from .flow.flow import Flow

    text = _read(args.file)
    name = Path(args.file).stem
    try:
        if args.command == "check":
            flow = Flow.from_source(text, name=name)
            print(flow.show())
            return 0
        if args.command == "graph":
            return _graph(Flow.from_source(text, name=name), args.output or str(Path(args.file).with_suffix(".svg")))
        if args.command == "export":
            flow = Flow.from_source(text, name=name, namespace=_tools(args.tools), model=args.model)
            return _export(flow, args.output or str(Path(args.file).with_suffix(".json")), args.format)
        if args.command == "eval":
            from .evaluation.cli import command as evaluate

            namespace = _tools(args.tools)
            return evaluate(args, Flow.from_source(text, name=name, namespace=namespace, model=args.model), namespace)
        namespace = _tools(args.tools)
        flow = Flow.from_source(
            text,
            name=name,
            namespace=namespace,
            workers=args.workers,
            model=args.model,
            sequential=args.sequential,
            on_error=args.on_error,
            timeout=args.timeout,
            record=args.record,
            replay=args.replay,
            replay_fallback=args.replay_fallback,
        )
        execution = flow.execution(_assignments(args.set))
    except FlowError as error:
        return _report(error, args.file)
    if not args.quiet:
        execution.subscribe(_Progress(sys.stderr))
    from .engine.runner import FlowInterrupted, run_blocking

    try:
        run = run_blocking(execution)
    except FlowInterrupted as exc:
        print(exc.run.summary())
        return 130
    print(run.summary())
    if not args.quiet:
        from .view.text import text_timeline

        print("\n" + text_timeline(run))
    for step, value in run.outputs.items():
        if flow.steps[step].kind in ("llm", "map") or step == list(flow.steps)[-1]:
            print(f"\n{step}:\n{_show_value(value)}")
    if args.json:
        Path(args.json).write_text(run.to_json(), encoding="utf-8")
    return 0 if run.status == "succeeded" else 1


def _write(output: str, text: str) -> None:
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SystemExit(f"flowmagic: cannot write {output!r}: {exc.strerror}") from None


def _graph(flow: Any, output: str) -> int:
    suffix = Path(output).suffix.lower()
    if suffix == ".dot":
        text = flow.to_dot()
    elif suffix in (".svg", ".html"):
        from .view.picture import flow_html, painter

        title = f"flow '{flow.name}': {len(flow.steps)} steps"
        text = painter(flow.shape).paint({}) if suffix == ".svg" else flow_html(flow.shape, title)
    else:
        raise SystemExit(f"flowmagic: graph writes .svg, .html or .dot files, not {output!r}")
    _write(output, text)
    print(f"wrote {output} ({len(flow.steps)} steps)")
    return 0


def _export(flow: Any, output: str, format: str | None) -> int:
    from .interop.agentspec import format_of

    try:
        chosen = format or format_of(output, default="json" if output == "-" else None)
    except ValueError as exc:
        raise SystemExit(f"flowmagic: {exc}") from None
    text = flow.to_agentspec(chosen)  # an AgentSpecError names the step it cannot express
    if output == "-":
        sys.stdout.write(text)
        return 0
    _write(output, text)
    print(f"wrote {output} (Agent Spec {chosen}, {len(flow.steps)} steps)")
    return 0


def _show_value(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(f"  [{i}] {_show_value(v)}" for i, v in enumerate(value))
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())
