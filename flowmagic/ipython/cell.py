"""What a ``%%flow`` cell does around its run, once its options are read.

Carrying on the flow an earlier cell defined under the same name, ``--export``, ``--eval``,
failing a ``--grid`` cell whose variant failed, and turning an interrupt that landed
anywhere in the cell into a cancelled run at ``NAME.last``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from ..errors import FlowError, FlowInterrupted, VariantsFailed
from ..flow.flow import Flow
from ..flow.variants import grid, parse_axes


def _fail_if_a_variant_did(flow: Flow) -> None:
    """A ``--grid`` cell fails, after its table, when a variant failed, as a single run's would."""
    variants = flow.variants
    assert variants is not None
    pairs = zip(variants.labels, variants.runs, strict=True)
    failed = [(label, run) for label, run in pairs if run.status != "succeeded"]
    if failed:
        raise VariantsFailed(flow.name, failed, len(variants.runs))


def _evaluate(flow: Flow, args: Any, user_ns: dict[str, Any]) -> Any:
    """``--eval DATA``: the evaluation, shown as the cell's result."""
    from ..evaluation.cli import scorer_of

    data = user_ns.get(args.eval, args.eval) if args.eval.isidentifier() else args.eval
    try:
        scorers = dict(scorer_of(spec, user_ns) for spec in args.scorer)
        combos = grid(parse_axes(args.grid)) if args.grid else []
        variants = {", ".join(f"{k}={v}" for k, v in combo.items()): combo for combo in combos} or None
    except (SystemExit, ValueError) as exc:
        raise UsageError(f"--eval: {str(exc).removeprefix('flowmagic: ')}") from None
    evaluation = flow.evaluate(data, scorers=scorers, variants=variants, progress=not args.quiet)
    return None if args.quiet else evaluation


def _carry_on(flow: Flow, earlier: Any, quiet: bool) -> None:
    """One session per flow name: a cell that defines ``flow`` again keeps the earlier one's runs
    (``NAME.last``, history), and first cancels its ``--background`` run if it is still going."""
    if not isinstance(earlier, Flow) or earlier.name != flow.name:
        return
    if earlier.cancel() and not quiet:
        print(
            f"cancelled the background run of '{flow.name}' that was still going; what it finished stays in "
            f"%flow history {flow.name}"
        )
    flow.takes_over(earlier)


def _interrupted(
    exc: KeyboardInterrupt,
    flow: Flow | None,
    execution: Any,
    name: str,
    cell: str,
    settings: dict[str, Any],
    user_ns: dict[str, Any],
) -> KeyboardInterrupt:
    """An interrupt that landed anywhere in a ``%%flow`` cell: ``NAME.last`` is then a cancelled run.

    Landing before the run existed (while the cell was parsed, or a module loaded for the
    first time), the flow is parsed again and its run made and cancelled at once, so the
    notebook is left as after any interrupted run. A cell that cannot run at all keeps
    the interrupt as it was.
    """
    if isinstance(exc, FlowInterrupted):
        return exc
    try:
        if flow is None:
            flow = Flow.from_source(cell, name=name, namespace=user_ns, **settings)
        if execution is None:
            execution = flow.execution()  # a run that has not begun, bound to flow.last
    except FlowError:
        return exc
    user_ns[name] = flow
    execution.cancel("interrupted")  # it ends at once: every step cancelled
    return FlowInterrupted(execution.run)


def _export(flow: Flow, path: str, quiet: bool) -> None:
    """``--export PATH``: write the flow as Agent Spec; a step it cannot express is an error naming it."""
    from ..interop.agentspec import format_of

    try:
        format = format_of(path)
    except ValueError as exc:
        raise UsageError(f"--export: {exc}") from None
    text = flow.to_agentspec(format)
    target = Path(path).expanduser()
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--export: cannot write {path!r}: {exc.strerror}") from None
    if not quiet:
        print(f"wrote {path} (Agent Spec {format}, {len(flow.steps)} steps)")
