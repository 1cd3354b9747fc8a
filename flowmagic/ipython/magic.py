"""The ``%%flow`` cell magic: parse the cell, bind the flow, run it, show what happened.

Settings are traitlets, so ``%config FlowMagics.workers = 8`` and
``%config FlowMagics.model = "gpt-4o-mini"`` work. Parsing and running live in
the core; this adapter only turns options into settings and results into output.
What a cell does around its run (``--export``, ``--eval``, interrupts) is in ``cell.py``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display, update_display
from traitlets import Enum, Int, TraitError, Unicode, observe, validate

from ..engine.cache import default_cache
from ..engine.cache_secret import MIN_LENGTH
from ..engine.history import default_history
from ..errors import FlowFailed, FlowInterrupted, did_you_mean
from ..flow.flow import Flow
from ..flow.model import RunSettings
from ..flow.variants import grid, parse_axes
from .cell import _carry_on, _evaluate, _export, _fail_if_a_variant_did, _interrupted
from .display import Display, PrintedBlock
from .status import Text, TextStatus, variants_line


@magics_class
class FlowMagics(Magics):
    """Declare and run a parallel flow of steps in a notebook cell."""

    workers = Int(32, help="Steps that may run at once (threads and coroutines together).").tag(config=True)
    model = Unicode(
        "",
        help="Model for llm() steps. Empty: 'offline' unless OPENAI_API_KEY or OPENAI_BASE_URL is set.",
    ).tag(config=True)
    on_error = Enum(
        ["continue", "stop"], "continue", help="After a failed step: 'continue' the rest, or 'stop' and cancel it."
    ).tag(config=True)
    executor = Unicode(
        "threads",
        help="Where sync steps run: 'threads' (this kernel), 'dask' (a local cluster of worker processes, "
        "started once) or 'dask://HOST:PORT' (an existing Dask scheduler).",
    ).tag(config=True)
    cache_dir = Unicode(
        "",
        help="Also keep cached step results in this directory, so they survive a kernel restart. Empty: memory only.",
    ).tag(config=True)
    cache_secret = Unicode(
        "",
        help="A secret shared by a team whose kernels share cache_dir: it authenticates every cached file. "
        "Empty: FLOWMAGIC_CACHE_SECRET, else a per-user secret. Never shown.",
    ).tag(config=True)
    cache_memory_mb = Int(
        default_cache.max_bytes // 2**20, help="Megabytes of step results the cache keeps in memory (estimated)."
    ).tag(config=True)
    history_memory_mb = Int(
        default_history.max_bytes // 2**20,
        help="Megabytes of outputs of past runs kept for %flow history and diff (the latest run of each flow stays).",
    ).tag(config=True)

    @validate("executor")
    def _valid_executor(self, proposal: Any) -> str:
        value: str = proposal["value"]
        try:
            RunSettings().changed(executor=value)
        except ValueError:
            raise TraitError(f"executor must be 'threads', 'dask' or 'dask://HOST:PORT', not {value!r}") from None
        return value

    @observe("cache_dir")
    def _cache_dir_changed(self, change: Any) -> None:
        default_cache.directory = Path(change["new"]).expanduser() if change["new"] else None

    @validate("cache_secret")
    def _hidden_secret(self, proposal: Any) -> str:
        value: str = proposal["value"]
        if value and len(value.strip()) < MIN_LENGTH:
            raise TraitError(f"cache_secret needs at least {MIN_LENGTH} characters")
        return _Hidden(value)  # so %config FlowMagics shows it masked

    @observe("cache_secret")
    def _cache_secret_changed(self, change: Any) -> None:
        default_cache.set_secret(str(change["new"]) or None, "FlowMagics.cache_secret")

    @validate("cache_memory_mb", "history_memory_mb")
    def _valid_megabytes(self, proposal: Any) -> int:
        value: int = proposal["value"]
        if value < 0:
            raise TraitError(f"{proposal['trait'].name} must be 0 or more megabytes, not {value}")
        return value

    @observe("cache_memory_mb")
    def _cache_memory_changed(self, change: Any) -> None:
        default_cache.max_bytes = change["new"] * 2**20

    @observe("history_memory_mb")
    def _history_memory_changed(self, change: Any) -> None:
        default_history.max_bytes = change["new"] * 2**20

    @magic_arguments()
    @argument("name", help="Name the flow is bound to in the notebook; its last run is NAME.last.")
    @argument("--workers", type=int, default=None, help="Steps that may run at once (default: FlowMagics.workers).")
    @argument("--model", default=None, help="Model for llm() steps, e.g. offline or gpt-4o-mini.")
    @argument("--no-cache", action="store_true", help="Do not reuse results of earlier runs.")
    @argument(
        "--cache-calls",
        action="store_true",
        help="Reuse calls of Python functions too, as if every step had @cache (by default only llm() "
        "steps and pure expressions are reused).",
    )
    @argument("--sequential", action="store_true", help="Run one step at a time in declaration order (a baseline).")
    @argument("--dry-run", action="store_true", help="Check and draw the flow without running it.")
    @argument("--background", action="store_true", help="Return at once; the run goes on and NAME.last updates.")
    @argument("--quiet", action="store_true", help="Show nothing; the run is still at NAME.last.")
    @argument("--on-error", choices=["continue", "stop"], default=None, help="After a failed step: continue or stop.")
    @argument("--timeout", type=float, default=None, help="Cancel the run after this many seconds.")
    @argument(
        "--executor",
        default=None,
        help="Where sync steps run: threads, dask (a local cluster) or dask://HOST:PORT (default: FlowMagics.executor)",
    )
    @argument(
        "--grid",
        nargs="+",
        metavar="NAME=V1,V2",
        default=None,
        help="Run one variant per combination of inputs or settings, side by side, e.g. "
        "--grid model=offline,gpt-4o-mini temperature=0,0.7; then compare outputs in a table.",
    )
    @argument(
        "--eval",
        metavar="DATA",
        default=None,
        help="Evaluate instead of one run: the flow on every example of DATA (a .csv or .jsonl path, or a "
        "notebook variable holding a list of dicts or a DataFrame), scored by each --scorer; with --grid, "
        "per variant. The result is NAME.last_evaluation.",
    )
    @argument(
        "--scorer",
        action="append",
        default=[],
        metavar="SPEC",
        help="With --eval: exact:COLUMN[:STEP], contains:TEXT, regex:PATTERN, valid_json, "
        "close:COLUMN[:TOLERANCE], judge:TEMPLATE, or the name of a scorer function in the notebook.",
    )
    @argument(
        "--export",
        metavar="PATH",
        default=None,
        help="Also write the flow as an Agent Spec document (PATH ending .json, .yaml or .yml), "
        "then run it as usual; with --dry-run, only write it.",
    )
    @argument("--record", metavar="FILE", default=None, help="Also write every llm answer to FILE (JSON) to replay.")
    @argument("--replay", metavar="FILE", default=None, help="Answer llm() steps from FILE, offline, as recorded.")
    @argument(
        "--replay-fallback", action="store_true", help="With --replay: the offline model answers what FILE lacks."
    )
    @line_cell_magic
    def flow(self, line: str, cell: str | None = None) -> Any:
        """Run a flow: steps are ``name = expression`` lines; ``parallel:`` groups run side by side.

        Example::

            %%flow soundtrack
            title = llm("What is a good title of a movie about {topic}?")
            parallel:
                song       = llm("A song title for a movie called {title}?")
                characters = llm("Two main characters for a movie called {title}?")
            if "space" in topic:
                tagline = llm("A tagline for {title}, set in space")
            else:
                tagline = llm("A tagline for {title}")

        In an ``if``/``elif``/``else`` block only the chosen arm runs; the other arms' steps are
        skipped, and a name assigned in every arm (``tagline``) is one value after the block.

        ``for NAME in ITERABLE:`` runs its body once per element, in order (at most 1,000), each
        iteration's steps recorded as ``step#k``; a name read before the body assigns it carries
        the previous iteration's value, and ``break`` (the last line of an ``if`` arm) ends it::

            for attempt in range(3):
                verdict = llm("Is this tagline good? {draft}", schema=Verdict)
                if verdict.ok:
                    break
                draft = llm("Improve {draft}: {verdict.notes}")

        A flow from another cell called like a function, ``cats = research(question="cats")``,
        runs as a subflow: nested in this run, its steps recorded as ``cats/...``.

        A rerun reuses ``llm`` steps and pure expressions whose inputs are unchanged; calls of
        Python functions run again (they may read the clock or the network) unless the step has
        ``@cache``, the function ``@flowmagic.cacheable``, or the cell ``--cache-calls``. A step
        reading a value that came out the same is reused; the summary says why others ran again.

        Running a cell that defines NAME again edits the same flow: ``NAME.last`` carries on
        (also with ``--dry-run``), and a ``--background`` run still going is cancelled first.
        With ``FlowMagics.cache_dir`` set, the history is kept there and survives a restart.

        The view draws the run live; click a node or a bar for that step's detail. When the run
        ends, the view gives way to its static picture, with every step's detail, which saved and
        exported notebooks keep.

        What a step prints goes under its own cell (a ``--background`` run's, in a block that
        updates) and into its record: ``NAME.last.steps["x"].stdout``, and the step's detail.

        ``--eval DATA --scorer exact:label`` evaluates instead: the flow over every example of DATA
        (with ``--grid``, per variant), each run scored; ``NAME.last_evaluation`` keeps the table.

        A run that fails or is cancelled fails the cell (``FlowFailed``, in short) once its view
        is drawn and ``NAME.last`` is set (with ``--grid``: once a variant did, after the table);
        tag a cell ``raises-exception`` to show a failure.

        ``--record answers.json`` writes each ``llm`` answer (request, answer, tokens, timing) to a
        plain JSON file, asking the model anew; ``--replay answers.json`` answers from it with no
        network and the recorded timings (a missing request is an error naming it, or the offline
        model's with ``--replay-fallback``). A teacher records once; the room replays.

        ``--export flow.json`` (or ``.yaml``) also writes the flow as Agent Spec, for WayFlow
        and other runtimes, then runs it; ``--export flow.json --dry-run`` only writes it.

        Tab completes options, subcommands, flow names and (after ``%flow rerun NAME``) steps.

        As a line magic, ``%flow COMMAND``:

            %flow rerun NAME STEP [STEP ...]   run STEP and what depends on it again, even if cached
            %flow cancel NAME                  stop NAME's --background run, keeping what finished
            %flow history NAME                 the runs of NAME: when, status, wall time, what changed
            %flow diff NAME [A B]              outputs that differ between runs A and B (default: the last two)
            %flow compare NAME [A B ...]       the timelines of runs A, B ... on one time axis (default: the last two)
            %flow show NAME                    the DAG and timeline of NAME's last run
            %flow config [SETTING=VALUE ...]   the model, server, workers, cache, executor; or change them
        """
        if cell is None:
            from .lines import run_line

            return run_line(self, line)
        assert self.shell is not None
        user_ns = self.shell.user_ns
        try:
            args = self._parse(line)
            settings = self._settings(args)
        except KeyboardInterrupt as exc:  # even while the options are read: NAME.last is a cancelled run
            words = line.split()
            if not words or not words[0].isidentifier():
                raise
            raise _interrupted(exc, None, None, words[0], "\n" + cell, {}, user_ns) from None
        name = args.name
        if not name.isidentifier():
            raise UsageError(f"%%flow needs a name that is a Python identifier, not {name!r}")
        cell = "\n" + cell  # a leading newline makes error line numbers match the cell, whose line 1 is %%flow
        flow: Flow | None = None
        execution = None
        try:
            flow = Flow.from_source(cell, name=name, namespace=user_ns, **settings)
            _carry_on(flow, user_ns.get(name), quiet=args.quiet)
            if args.export:
                _export(flow, args.export, quiet=args.quiet)
            if args.eval and not args.dry_run:
                user_ns[name] = flow
                return _evaluate(flow, args, user_ns)
            if args.grid and not args.dry_run:
                user_ns[name] = self._run_grid(flow, args)
                _fail_if_a_variant_did(flow)
                return None
            if args.dry_run:
                user_ns[name] = flow  # inputs need not exist yet: a dry run only draws
                if not args.quiet:
                    display(flow.show())
                return None
            execution = flow.execution()  # resolves every name: nothing is bound or shown if that fails
            user_ns[name] = flow
            self.run_and_show(flow, execution, quiet=args.quiet, background=args.background)
            return None
        except KeyboardInterrupt as exc:
            if args.dry_run or args.grid:
                raise
            raise _interrupted(exc, flow, execution, name, cell, settings, user_ns) from None

    def _run_grid(self, flow: Flow, args: Any) -> Flow:
        """Run one variant per grid combination at once; show progress, then the outputs side by side."""
        if args.background:
            raise UsageError("--grid runs its variants in this cell; it cannot also run in the --background")
        try:
            # every variant is checked before any runs
            variants, executions = flow.session.prepare_variants(grid(parse_axes(args.grid)))
        except ValueError as exc:  # pydantic's ValidationError is one too
            raise UsageError(f"--grid: {exc}") from None
        handle = None if args.quiet else display(Text(variants_line(flow.name, variants.runs)), display_id=True)
        if handle is not None:
            status = TextStatus(lambda: variants_line(flow.name, variants.runs), handle.display_id, update_display)
            for execution in executions:
                execution.subscribe(status)
        from ..engine.runner import run_all_blocking

        try:
            run_all_blocking(executions)
        finally:
            if handle is not None:
                update_display(variants, display_id=handle.display_id)
        return flow

    def run_and_show(self, flow: Flow, execution: Any, quiet: bool = False, background: bool = False) -> None:
        """Run a prepared execution with the live view (in a kernel) or a text summary.

        An interrupt, wherever it lands (while the view is made, say), cancels the run and
        shows it as it ended. A run that failed or was cancelled raises :class:`FlowFailed`
        once it is shown, so the cell fails.
        """
        from ..engine.runner import run_blocking

        in_kernel = getattr(self.shell, "kernel", None) is not None
        show: Display | None = None
        try:
            show = Display.choose(execution, flow, quiet=quiet, live=in_kernel, background=background)
            if background:  # what its steps print goes under this cell, whichever cell runs then
                execution.printed.forward = PrintedBlock()
                flow.session.start(execution, on_done=show.done)
                return
            run = run_blocking(execution)
        except KeyboardInterrupt as exc:
            if not isinstance(exc, FlowInterrupted):
                execution.cancel("interrupted")  # before it began: it ends at once
                execution.end_now()
                exc = FlowInterrupted(execution.run)
            if show is not None:
                show.done(exc.run)
            raise exc from None
        show.done(run)
        if run.status != "succeeded":  # after the view and NAME.last: the cell fails, as any would
            raise FlowFailed(run, flow.name)

    def _parse(self, line: str) -> Any:
        try:
            return parse_argstring(self.flow, line)
        except UsageError as exc:
            message = str(exc)
            words = [w for w in line.split() if w.startswith("--")]
            options = [a.option_strings[0] for a in self.flow.parser._actions if a.option_strings]
            hints = [did_you_mean(w.split("=")[0], options) for w in words if w.split("=")[0] not in options]
            raise UsageError(message + "".join(h for h in hints if h) + "  (see %%flow? for the options)") from None

    def _settings(self, args: Any) -> dict[str, Any]:
        workers = args.workers if args.workers is not None else self.workers
        if workers < 1:
            raise UsageError("--workers must be at least 1")
        # 'nan' and 'inf' parse as floats: neither is a deadline (leave --timeout out for none)
        if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
            raise UsageError("--timeout must be a number of seconds above 0")
        if args.record and args.replay:
            raise UsageError(
                "--record asks the model and writes its answers; --replay answers from a file: one or the other"
            )
        if args.replay_fallback and not args.replay:
            raise UsageError("--replay-fallback goes with --replay FILE")
        if args.background and args.dry_run:
            raise UsageError("--dry-run draws the flow without running it; it cannot also run in the --background")
        executor = args.executor or self.executor
        try:
            RunSettings().changed(executor=executor)
        except ValueError as exc:
            raise UsageError(f"--executor: {str(exc).partition('Value error, ')[2] or exc}") from None
        return {
            "workers": workers,
            "model": args.model or self.model or None,
            "sequential": args.sequential,
            "on_error": args.on_error or self.on_error,
            "timeout": args.timeout,
            "cache": not args.no_cache,
            "cache_calls": args.cache_calls,
            "executor": executor,
            "record": args.record,
            "replay": args.replay,
            "replay_fallback": args.replay_fallback,
        }


class _Hidden(str):
    """A secret setting's value: itself, but its repr never shows it."""

    def __repr__(self) -> str:
        return "'<hidden>'" if self else "''"


__all__ = ["FlowMagics"]
