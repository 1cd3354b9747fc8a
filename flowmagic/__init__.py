"""flowmagic: build, run and watch parallel LLM and tool pipelines in Jupyter.

In a notebook::

    %load_ext flowmagic

    %%flow soundtrack
    title = llm("What is a good title of a movie about {topic}?")
    song  = llm("A song title for the soundtrack of a movie called {title}?")

Without IPython::

    from flowmagic import Flow
    run = Flow.from_source("a = 1\\nb = a + 1").run()

Importing is cheap: heavy modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import FlowDefinitionError, FlowError, FlowFailed, FlowSyntaxError, MapError, StepTimeout

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .engine.events import Event
    from .engine.record import Run, StepFailed, StepRecord
    from .engine.reuse import cacheable
    from .evaluation import Evaluation, close, contains, exact, judge, regex, valid_json, valid_schema
    from .flow.flow import Flow
    from .flow.model import RunSettings, Step
    from .flow.variants import Variants, grid
    from .llm.prices import set_price
    from .view.together import compare

_LAZY = {
    "Flow": ".flow.flow",
    "Step": ".flow.model",
    "RunSettings": ".flow.model",
    "Run": ".engine.record",
    "StepRecord": ".engine.record",
    "StepFailed": ".engine.record",
    "Event": ".engine.events",
    "Variants": ".flow.variants",
    "grid": ".flow.variants",
    "set_price": ".llm.prices",
    "cacheable": ".engine.reuse",
    "compare": ".view.together",
    **dict.fromkeys(
        ["Evaluation", "close", "contains", "exact", "judge", "regex", "valid_json", "valid_schema"], ".evaluation"
    ),
}

__all__ = [
    "Evaluation",
    "Event",
    "Flow",
    "FlowDefinitionError",
    "FlowError",
    "FlowFailed",
    "FlowSyntaxError",
    "MapError",
    "Run",
    "RunSettings",
    "Step",
    "StepFailed",
    "StepRecord",
    "StepTimeout",
    "Variants",
    "cacheable",
    "close",
    "compare",
    "contains",
    "exact",
    "grid",
    "judge",
    "load_ipython_extension",
    "regex",
    "set_price",
    "unload_ipython_extension",
    "valid_json",
    "valid_schema",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flowmagic' has no attribute {name!r}")


def _load_view() -> None:
    import importlib

    importlib.import_module(".view.present", __name__)


def _tell_the_core_where_the_view_is() -> None:
    # the core never imports the view; it asks flowmagic.flow.present, which loads it through this
    from .flow import present

    present.set_loader(_load_view)


_tell_the_core_where_the_view_is()


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext flowmagic``: register the ``%%flow`` cell magic."""
    from .ipython.extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext flowmagic``: remove what loading added."""
    from .ipython.extension import unload

    unload(ipython)
