"""Tab completion for ``%%flow`` and ``%flow``, as a matcher of IPython's completer.

- ``%%flow NAME --wo<Tab>``: the cell's options; ``%%flow <Tab>``: the flows defined so far.
- ``%flow <Tab>``: the subcommands; ``%flow history <Tab>``: flow names;
  ``%flow rerun NAME <Tab>``: NAME's steps; ``%flow config <Tab>``: ``SETTING=``;
  ``%flow compare NAME <Tab>`` (or ``diff``): the numbers of NAME's runs in its history.

What it offers replaces the other matchers' guesses (Python keywords after ``%flow history``).
:func:`install` adds the matcher and :func:`uninstall` removes exactly it.
"""

from __future__ import annotations

from typing import Any

from IPython.core.completer import CompletionContext, SimpleCompletion, SimpleMatcherResult, context_matcher

from ..engine.history import default_history
from ..flow.flow import Flow
from .lines import COMMANDS, SETTINGS, flow_names


def install(shell: Any) -> None:
    matcher = _Matcher(shell)
    shell.Completer.custom_matchers.append(matcher.complete)


def uninstall(shell: Any) -> None:
    matchers = shell.Completer.custom_matchers
    matchers[:] = [m for m in matchers if not isinstance(getattr(m, "__self__", None), _Matcher)]


class _Matcher:
    def __init__(self, shell: Any) -> None:
        self.shell = shell

    @context_matcher(identifier="flowmagic")
    def complete(self, context: CompletionContext) -> SimpleMatcherResult:
        typed = context.text_until_cursor
        words = typed.split()
        at = len(words) if typed.endswith((" ", "\t")) else len(words) - 1
        token = "" if at == len(words) else words[-1]
        found: list[str] = []
        if words and words[0] == "%%flow" and context.cursor_line == 0:
            found = self.cell(token, at)
        elif words and words[0] == "%flow":
            found = self.line(words, at)
        found = [f for f in found if f.startswith(token)]
        completions = [SimpleCompletion(text=f, type="flowmagic") for f in found]
        # (only the completed word is replaced: the token IPython splits off may be shorter)
        return {
            "completions": completions,
            "suppress": bool(completions),
            "matched_fragment": token,
            "ordered": True,  # steps in the cell's order, subcommands as %flow? lists them
            "do_not_suppress": set(),
        }

    def cell(self, token: str, at: int) -> list[str]:
        if token.startswith("-"):
            from .magic import FlowMagics

            parser = FlowMagics.flow.parser
            return sorted(o for action in parser._actions for o in action.option_strings if o.startswith("--"))
        return self.flows() if at == 1 else []

    def line(self, words: list[str], at: int) -> list[str]:
        if at == 1:
            return list(COMMANDS)
        command = words[1]
        if command == "config":
            return [f"{setting}=" for setting in SETTINGS]
        if at == 2 and command in COMMANDS:
            return self.flows()
        if at >= 3 and command == "rerun":
            flow = self.shell.user_ns.get(words[2])
            return list(flow.steps) if isinstance(flow, Flow) else []
        if at >= 3 and command in ("compare", "diff"):
            flow = self.shell.user_ns.get(words[2])
            return [str(e.number) for e in default_history.entries(flow.name)] if isinstance(flow, Flow) else []
        return []

    def flows(self) -> list[str]:
        return sorted(flow_names(self.shell.user_ns))
