"""Load and unload the IPython extension: exactly what load adds, unload removes.

Besides the magic, loading installs a handler so a flow's own errors (syntax,
definition, interrupt) show as a short message with a caret, never a traceback,
while still failing the cell (so "Run All" stops there).
"""

from __future__ import annotations

from typing import Any

from ..errors import FlowError, FlowInterrupted
from . import complete

_HANDLED = (FlowError, FlowInterrupted)
_saved: dict[int, tuple[tuple[type[BaseException], ...], Any]] = {}


def _show_flow_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    # syntax and definition errors alike: the message, then line, column and a caret
    render = getattr(value, "_render_traceback_", None)
    stb = render() if render is not None else [f"{etype.__name__}: {value}"]
    shell._showtraceback(etype, value, stb)
    return list(stb)


def load(ipython: Any) -> None:
    from .magic import FlowMagics

    ipython.register_magics(FlowMagics)
    complete.install(ipython)
    previous_types = tuple(ipython.custom_exceptions)
    previous_handler = ipython.CustomTB if previous_types else None
    _saved[id(ipython)] = (previous_types, previous_handler)

    def handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> Any:
        if isinstance(value, _HANDLED) or previous_handler is None:
            return _show_flow_error(shell, etype, value, tb, tb_offset)
        return previous_handler(etype, value, tb, tb_offset=tb_offset)

    ipython.set_custom_exc(previous_types + _HANDLED, handler)


def unload(ipython: Any) -> None:
    from .magic import FlowMagics

    complete.uninstall(ipython)
    manager = ipython.magics_manager
    instance = manager.registry.pop(FlowMagics.__name__, None)
    if instance is None:
        return
    for kind, names in FlowMagics.magics.items():
        table = manager.magics[kind]
        for name in names:
            bound = table.get(name)
            if getattr(bound, "__self__", None) is instance:
                del table[name]
    if instance in ipython.configurables:
        ipython.configurables.remove(instance)
    types, handler = _saved.pop(id(ipython), ((), None))
    if handler is None:
        ipython.set_custom_exc((), None)
        ipython.custom_exceptions = ()
    else:
        ipython.CustomTB = handler
        ipython.custom_exceptions = types
