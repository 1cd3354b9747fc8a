"""How the core's objects are drawn: the view registers here, and the core only asks.

The core (``dsl``, ``flow``, ``engine``) never imports the view, IPython or widgets.
What a notebook draws of it (a flow's DAG, a run's picture, a history, a diff, a table
of variants, a batch and its progress bar) is asked of this registry by kind. The view
fills it when it loads (:mod:`flowmagic.view.present`), and importing the ``flowmagic``
package tells the registry how to load the view, so ``run.show()`` works in a script too.

>>> from flowmagic.flow import present
>>> present.register("shout", lambda text: text.upper())
>>> present.draw("shout", "hi")
'HI'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_drawers: dict[str, Callable[..., Any]] = {}
_loader: Callable[[], None] | None = None


def register(kind: str, drawer: Callable[..., Any]) -> None:
    """Draw objects of ``kind`` with ``drawer`` (the view does this for its kinds)."""
    _drawers[kind] = drawer


def set_loader(loader: Callable[[], None]) -> None:
    """What to call, once, the first time something is drawn before any drawer was registered."""
    global _loader
    _loader = loader


def draw(kind: str, *args: Any) -> Any:
    """What ``kind``'s drawer makes of ``args``; LookupError when nothing draws that kind."""
    global _loader
    drawer = _drawers.get(kind)
    if drawer is None and _loader is not None:
        loader, _loader = _loader, None
        loader()
        drawer = _drawers.get(kind)
    if drawer is None:
        raise LookupError(f"nothing draws a {kind!r} here: the view (flowmagic.view) did not register one")
    return drawer(*args)


__all__ = ["draw", "register", "set_loader"]
