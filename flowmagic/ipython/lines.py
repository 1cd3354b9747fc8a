"""``%flow COMMAND ...``: the line magics around a flow's runs (rerun, cancel, history, diff, compare, show,
config).

Each command checks its words and raises ``UsageError`` with its usage line;
``%flow help`` (or ``%flow``) lists them.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.display import display

from ..engine.cache import default_cache
from ..engine.diff import diff_runs
from ..engine.history import HistoryTable, default_history
from ..errors import did_you_mean
from ..flow.flow import Flow
from ..llm import resolve_model
from ..llm.secrets import safe_url
from ..view.compare import table
from ..view.together import compare as compare_runs

if TYPE_CHECKING:
    from .magic import FlowMagics

USAGE = {
    "rerun": "%flow rerun NAME STEP [STEP ...]",
    "cancel": "%flow cancel NAME",
    "history": "%flow history NAME",
    "diff": "%flow diff NAME [A B]",
    "compare": "%flow compare NAME [A B ...]",
    "show": "%flow show NAME",
    "config": "%flow config [SETTING=VALUE ...]",
}
HELP = {
    "rerun": "run STEP and everything that depends on it again, even if cached; reuse the rest",
    "cancel": "stop NAME's --background run; what finished stays in NAME.last (interrupt the kernel for a cell's run)",
    "history": "the recent runs of NAME: when, status, wall time, steps run and cached, what changed",
    "diff": "outputs that differ between runs A and B of NAME (numbers from %flow history; default: the last two)",
    "compare": "the timelines of runs A, B ... of NAME on one time axis (default: the last two)",
    "show": "the DAG and timeline of NAME's last run (the DAG alone if it has not run)",
    "config": "the model, server, workers, cache and executor; SETTING=VALUE changes one (as %config FlowMagics does)",
}
SETTINGS = (
    "model",
    "workers",
    "on_error",
    "cache_dir",
    "cache_secret",
    "cache_memory_mb",
    "history_memory_mb",
    "executor",
)
_WHOLE = ("workers", "cache_memory_mb", "history_memory_mb")  # settings that are whole numbers


def run_line(magics: FlowMagics, line: str) -> Any:
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%flow: {exc}") from None
    if not words or words[0] in ("help", "-h", "--help"):
        return _help()
    command, args = words[0], words[1:]
    handler = COMMANDS.get(command)
    if handler is None:
        hint = did_you_mean(command, COMMANDS)
        raise UsageError(f"%flow has no command '{command}'.{hint} Commands: {', '.join(COMMANDS)}; %%flow runs a cell")
    if "-h" in args or "--help" in args:
        return _help(command)
    return handler(magics, args)


def _help(command: str | None = None) -> None:
    names = [command] if command else list(USAGE)
    print("\n".join(f"{USAGE[n]:<36} {HELP[n]}" for n in names))
    if command is None:
        print("%%flow NAME [options]                a cell: declare and run a flow (%%flow? for the options)")


def _usage(command: str, problem: str) -> UsageError:
    return UsageError(f"{problem}\nusage: {USAGE[command]}  ({HELP[command]})")


def flow_names(user_ns: dict[str, Any]) -> list[str]:
    """The names the notebook's flows are bound to (not IPython's numbered outputs, ``_8``)."""
    return [k for k, v in user_ns.items() if isinstance(v, Flow) and not k.startswith("_")]


def _flow(magics: FlowMagics, command: str, args: list[str]) -> Flow:
    if not args:
        raise _usage(command, f"%flow {command} needs the name of a flow")
    assert magics.shell is not None
    user_ns = magics.shell.user_ns
    name = args[0]
    flow = user_ns.get(name)
    if isinstance(flow, Flow):
        return flow
    flows = flow_names(user_ns)
    if name in user_ns:
        raise UsageError(f"'{name}' is a {type(flow).__name__}, not a flow; flows here: {', '.join(flows) or 'none'}")
    hint = did_you_mean(name, flows)
    raise UsageError(f"no flow named '{name}' in this notebook.{hint} Flows here: {', '.join(flows) or 'none yet'}")


def rerun(magics: FlowMagics, args: list[str]) -> None:
    flow = _flow(magics, "rerun", args)
    if len(args) < 2:
        steps = ", ".join(flow.steps)
        raise _usage("rerun", f"%flow rerun {args[0]} needs the step to run again, one of: {steps}")
    execution = flow.execution(rerun=args[1:])  # an unknown step raises UnknownStepError, shown in short
    magics.run_and_show(flow, execution)


def cancel(magics: FlowMagics, args: list[str]) -> None:
    flow = _flow(magics, "cancel", args)
    if len(args) > 1:
        raise _usage("cancel", f"%flow cancel takes one flow name, not {len(args)} words")
    if not flow.cancel():
        last = "it has not run yet" if flow.last is None else f"its last run {flow.last.status}"
        print(f"nothing to cancel: flow '{flow.name}' has no run going on in the background ({last})")
        return
    run = flow.last
    assert run is not None  # a background run is recorded as the flow's last run
    if run.status == "cancelled":
        kept = sum(r.status == "succeeded" for r in run.top_steps)
        print(f"flow '{flow.name}' cancelled: {kept} finished step(s) kept in {flow.name}.last")
    else:  # it ended on its own meanwhile, or its loop is busy and it settles later
        print(f"flow '{flow.name}' was asked to stop; its run is {run.status} (see {flow.name}.last)")


def history(magics: FlowMagics, args: list[str]) -> None:
    flow = _flow(magics, "history", args)
    if len(args) > 1:
        raise _usage("history", f"%flow history takes one flow name, not {len(args)} words")
    display(HistoryTable(flow.name, default_history.entries(flow.name)))


def diff(magics: FlowMagics, args: list[str]) -> None:
    flow = _flow(magics, "diff", args)
    if len(args) - 1 not in (0, 2):
        raise _usage("diff", "%flow diff takes two run numbers, or none for the last two runs")
    picked = _run_numbers(flow, "diff", args[1:], "diff compares two runs: edit the cell and rerun it")
    try:
        before, after = (default_history.get(flow.name, n) for n in picked)
    except LookupError as exc:
        raise UsageError(str(exc.args[0])) from None
    display(diff_runs(before, after, (f"#{picked[0]}", f"#{picked[1]}")))


def _run_numbers(flow: Flow, command: str, numbers: list[str], too_few: str) -> list[int]:
    """The run numbers asked for (``3`` or ``#3``), or the last two runs' when none are."""
    if numbers:
        try:
            return [int(n.lstrip("#")) for n in numbers]
        except ValueError:
            raise _usage(command, f"run numbers are whole numbers like 3 or #3, not {' '.join(numbers)}") from None
    entries = default_history.entries(flow.name)
    if len(entries) < 2:
        raise UsageError(f"flow '{flow.name}' has run {len(entries)} time(s); {too_few}")
    return [entries[-2].number, entries[-1].number]


def compare(magics: FlowMagics, args: list[str]) -> None:
    flow = _flow(magics, "compare", args)
    if len(args) == 2:
        raise _usage("compare", "%flow compare takes two or more run numbers, or none for the last two runs")
    picked = _run_numbers(flow, "compare", args[1:], "compare needs two runs: run the cell again")
    try:  # each is labelled "flow NAME #N" and how it was run (sequential, workers)
        together = compare_runs(*(default_history.get(flow.name, n) for n in picked))
    except (LookupError, ValueError) as exc:  # no such run, or one still going on
        raise UsageError(str(exc.args[0])) from None
    display(together)


def show(magics: FlowMagics, args: list[str]) -> None:
    flow = _flow(magics, "show", args)
    if len(args) > 1:
        raise _usage("show", f"%flow show takes one flow name, not {len(args)} words")
    display(flow.last.show() if flow.last is not None else flow.show())


def config(magics: FlowMagics, args: list[str]) -> None:
    for word in args:
        key, sep, value = word.partition("=")
        if not sep:
            raise _usage("config", f"'{word}' is not SETTING=VALUE")
        if key not in SETTINGS:
            raise _usage("config", f"no setting '{key}'.{did_you_mean(key, SETTINGS)} Settings: {', '.join(SETTINGS)}")
        if key == "workers" and not (value.isdigit() and int(value) >= 1):
            raise _usage("config", f"workers must be a whole number of at least 1, not {value!r}")
        if key in _WHOLE and not value.isdigit():
            raise _usage("config", f"{key} must be a whole number, not {value!r}")
        try:
            setattr(magics, key, int(value) if key in _WHOLE else value)
        except Exception as exc:  # traitlets says what it expected
            shown = "<hidden>" if key == "cache_secret" else value  # even a refused secret may be nearly right
            raise UsageError(f"{key}={shown}: {exc}") from None
    display(Settings(_config_rows(magics)))


class Settings:
    """The settings as a table in a notebook, as lines in a terminal."""

    def __init__(self, rows: list[list[str]]) -> None:
        self.rows = rows

    def _repr_html_(self) -> str:
        return table(["setting", "value"], self.rows, "fm-config")

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text("\n".join(f"{k:<10} {v}" for k, v in self.rows))


def _config_rows(magics: FlowMagics) -> list[list[str]]:
    model = resolve_model(magics.model or None)
    where = "default"
    if magics.model:
        where = "FlowMagics.model"
    elif os.environ.get("FLOWMAGIC_MODEL"):
        where = "FLOWMAGIC_MODEL"
    configured = os.environ.get("OPENAI_BASE_URL", "").strip()
    # a password or key written in the URL is never shown; the server's address is
    base_url = safe_url(configured) if configured else ("-" if model == "offline" else "the SDK's default, OpenAI")
    key = "set" if os.environ.get("OPENAI_API_KEY") else "not set"
    cache = f"{len(default_cache)} results in memory ({_mb(default_cache.bytes)} of {_mb(default_cache.max_bytes)})"
    if default_cache.directory is not None:
        cache += f", and on disk in {default_cache.directory}"
    runs = sum(len(default_history.entries(name)) for name in default_history.names())
    history = f"{runs} runs kept ({_mb(default_history.bytes)} of {_mb(default_history.max_bytes)})"
    return [
        ["model", f"{model} ({where})"],
        ["base URL", f"{base_url} (OPENAI_BASE_URL)"],
        ["API key", f"{key} (OPENAI_API_KEY; never shown)"],
        ["workers", str(magics.workers)],
        ["on_error", magics.on_error],
        ["cache", cache],
        ["cache_dir", magics.cache_dir or "- (memory only)"],
        ["cache_secret", f"{default_cache.secret_source} (checks the files in cache_dir; never shown)"],
        ["history", history],
        ["executor", magics.executor],
    ]


def _mb(size: int) -> str:
    return f"{size / 2**20:,.1f} MB"


COMMANDS: dict[str, Callable[[FlowMagics, list[str]], Any]] = {
    "rerun": rerun,
    "cancel": cancel,
    "history": history,
    "diff": diff,
    "compare": compare,
    "show": show,
    "config": config,
}
