"""``Flow``: a parsed, checked flow that can be run many times.

The flow is its definition (steps, groups, inputs, shape, DOT, Agent Spec); running it is
its session's (:mod:`flowmagic.engine.session`): the last run, the background run, variants
and batches. The run methods here only hand over to it.
"""

from __future__ import annotations

import builtins
import linecache
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr

from ..dsl.lines import split_lines
from ..errors import FlowDefinitionError, FlowFailed, UnknownStepError, did_you_mean
from . import present
from .calls import check_no_cycle
from .compile import compile_nodes
from .compiled import CompiledFlow
from .model import Group, RunSettings, Step

if TYPE_CHECKING:
    from ..engine.batch import Batch, RowResult
    from ..engine.driver import Execution
    from ..engine.events import Observer
    from ..engine.record import Run
    from ..engine.runner import RunHandle
    from ..engine.session import Session
    from .shape import Shape
    from .variants import Variants

_MISSING = object()


class Flow(BaseModel):
    """A flow of steps, parsed from the ``%%flow`` DSL.

    >>> from flowmagic import Flow
    >>> flow = Flow.from_source('''
    ... parallel:
    ...     a = x + 1
    ...     b = x * 2
    ... total = a + b
    ... ''', name="demo")
    >>> flow.inputs
    ('x',)
    >>> flow.run(x=10)["total"]
    31
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    source: str
    steps: dict[str, Step]
    groups: dict[str, Group]
    settings: RunSettings = RunSettings()

    _compiled: CompiledFlow = PrivateAttr()
    _namespace: Mapping[str, Any] | None = PrivateAttr(default=None)
    _shape: Shape | None = PrivateAttr(default=None)
    _session: Session | None = PrivateAttr(default=None)

    @classmethod
    def from_source(
        cls,
        text: str,
        name: str = "flow",
        namespace: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> Flow:
        """Parse and check ``text``; raise ``FlowSyntaxError`` or ``FlowDefinitionError``.

        ``namespace`` plays the notebook's part: names that are not steps are looked
        up in ``run(**inputs)`` first, then here, then in builtins. ``settings`` are
        :class:`RunSettings` fields (``workers``, ``model``, ``sequential``...).
        """
        from ..dsl.parser import parse

        compiled = compile_nodes(parse(text))
        filename = f"<flow {name}>"  # a traceback through a step shows its line of this text
        compiled.file_as(filename)
        linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
        flow = cls(
            name=name,
            source=text,
            steps=compiled.steps,
            groups=compiled.groups,
            settings=RunSettings(**settings),
        )
        flow._compiled = compiled
        flow._namespace = namespace
        return flow

    @classmethod
    def from_agentspec(
        cls,
        text: str,
        tools: Mapping[str, Callable[..., Any]] | None = None,
        model: str | None = None,
        name: str | None = None,
        **settings: Any,
    ) -> Flow:
        """Load an Agent Spec flow (JSON or YAML, e.g. exported by WayFlow) as a runnable flow.

        Tools come only from ``tools`` (name -> function); nothing in the file is run as
        code. ``model`` replaces the file's LLM configurations (e.g. ``"offline"``).
        ``flow.source`` is the flow as ``%%flow`` text. See :mod:`flowmagic.interop.agentspec`.

        >>> text = Flow.from_source("answer = llm('Hi {name}')").to_agentspec()
        >>> Flow.from_agentspec(text, model="offline").source
        "answer = llm('Hi {name}')\\n"
        """
        from ..interop.agentspec import import_source

        source, namespace, file_name = import_source(text, tools, model)
        return cls.from_source(source, name=name or file_name, namespace=namespace, model=model, **settings)

    def to_agentspec(self, format: Literal["json", "yaml"] = "json") -> str:
        """This flow as an Agent Spec document (JSON or YAML text) that WayFlow can run.

        Calls of functions become tools typed from their hints, ``llm`` steps LLM nodes
        (never with an API key), groups and independent branches parallel nodes. A step
        Agent Spec cannot express raises ``AgentSpecError`` naming it.

        >>> import json
        >>> document = json.loads(Flow.from_source("answer = llm('Hi {name}')").to_agentspec())
        >>> [node["component_type"] for node in document["$referenced_components"].values()]
        ['StartNode', 'LlmNode', 'EndNode']
        """
        from ..interop.agentspec import export_text

        return export_text(self, format, self._namespace)

    # -- what it is ---------------------------------------------------------------
    @property
    def compiled(self) -> CompiledFlow:
        """The checked steps, groups and code objects an engine runs."""
        return self._compiled

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names the flow reads that are not its own steps (builtins left out)."""
        seen: dict[str, None] = {}
        for step in self.steps.values():
            for name in step.inputs:
                if name not in vars(builtins):
                    seen[name] = None
        return tuple(seen)

    @property
    def shape(self) -> Shape:
        """What the DAG draws: nodes, edges and the clusters of groups and branches."""
        if self._shape is None:
            from .shape import shape_of

            self._shape = shape_of(self)
        return self._shape

    def to_dot(self) -> str:
        """Deterministic Graphviz DOT text of the DAG, groups and branches as clusters."""
        from .dot import shape_to_dot

        return shape_to_dot(self.shape)

    def show(self) -> Any:
        """The DAG without running: a picture in a notebook, a text outline in a terminal."""
        return present.draw("flow", self)

    def takes_over(self, earlier: Flow) -> None:
        """Carry on ``earlier``'s session (its last run, background run, variants and batch): a
        cell that defines a flow again under the same name is the same flow, edited."""
        if earlier._session is not None:
            self._session = earlier._session
            self._session.flow = self

    def with_settings(self, **settings: Any) -> Flow:
        """A copy of this flow with some :class:`RunSettings` changed."""
        flow = self.model_copy(update={"settings": self.settings.changed(**settings)})
        flow._compiled = self._compiled
        flow._namespace = self._namespace
        flow._session = None  # a flow of its own, with runs of its own
        return flow

    @property
    def final_steps(self) -> tuple[str, ...]:
        """The steps no other step reads: the flow's results."""
        read = {d for s in self.steps.values() for d in s.deps}
        return tuple(n for n in self.steps if n not in read)

    # -- running ------------------------------------------------------------------
    #: a flow called like a function in a step is a subflow (see flowmagic.engine.subflows)
    __flowmagic_subflow__ = True

    def __call__(self, *args: Any, **inputs: Any) -> Any:
        """Called in a step of another flow: a subflow, run nested in that run (the step awaits
        it); anywhere else: run it and return its final step's value (a dict of them if several)."""
        from ..engine import subflows

        if args:
            raise TypeError(f"a flow takes its inputs by name: {self.name}({', '.join(self.inputs) or '...'}=...)")
        nested = subflows.call(self, inputs)
        if nested is not subflows.OUTSIDE:
            return nested
        run = self.run(**inputs)
        if run.status != "succeeded":
            raise FlowFailed(run, self.name)
        return subflows.value_of(run, self.final_steps)

    def resolve_inputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Find every name the flow reads, or raise ``FlowDefinitionError`` before anything runs."""
        unknown = [n for n in inputs if n in self.steps]
        if unknown:
            step = self.steps[unknown[0]]
            raise FlowDefinitionError(
                f"'{unknown[0]}' is a step of this flow and cannot be passed as an input",
                line=step.line,
                col=step.col,
                end_col=step.col + len(step.name),
                text=split_lines(self.source)[step.line - 1],
            )
        namespace = self._namespace or {}
        resolved: dict[str, Any] = {}
        for code in self._compiled.code.values():
            for input_name, pos in code.input_pos.items():
                if input_name in resolved:
                    continue
                value = inputs.get(input_name, _MISSING)
                if value is _MISSING:
                    value = namespace.get(input_name, _MISSING)
                if value is _MISSING:
                    value = vars(builtins).get(input_name, _MISSING)
                if value is _MISSING:
                    known = [*self.steps, *inputs, *(k for k in namespace if not k.startswith("_"))]
                    known += [k for k in vars(builtins) if not k.startswith("_")]  # lenn -> len
                    hint = did_you_mean(input_name, known)
                    raise FlowDefinitionError(
                        f"name '{input_name}' is not defined: it is not a step, an input or a variable.{hint}",
                        line=pos.line,
                        col=pos.col,
                        end_col=pos.end_col,
                        text=pos.text,
                    )
                resolved[input_name] = value
        check_no_cycle(self, resolved)
        return resolved

    def descendants(self, *names: str) -> list[str]:
        """``names`` and every step that reads them, directly or not, in declaration order."""
        for name in names:
            if name not in self.steps:
                raise UnknownStepError(name, self.name, self.steps)
        found = set(names)
        for name in self._compiled.order:  # a step may read one declared after it
            if found.intersection(self.steps[name].deps):
                found.add(name)
        return [n for n in self.steps if n in found]

    # -- running: the flow's session (flowmagic.engine.session) ------------------------
    @property
    def session(self) -> Session:
        """The runs of this flow and how they start (created on first use)."""
        if self._session is None:
            from ..engine.session import Session

            self._session = Session(self)
        return self._session

    @property
    def last(self) -> Run | None:
        """The most recent :class:`Run` (live while a background run goes on)."""
        return self._session.last if self._session is not None else None

    @property
    def history(self) -> list[Run]:
        """The recent runs of every flow with this name, oldest first (``%flow history NAME``)."""
        from ..engine.history import default_history

        return [entry.run for entry in default_history.entries(self.name)]

    def execution(
        self,
        inputs: Mapping[str, Any] | None = None,
        observers: Sequence[Observer] = (),
        rerun: Sequence[str] = (),
        **settings: Any,
    ) -> Execution:
        """Prepare one run (inputs resolved now) without starting it, for adapters; it becomes
        :attr:`last`. ``rerun`` steps and their descendants run even when cached."""
        return self.session.execution(inputs, observers, rerun, **settings)

    def run(self, **inputs: Any) -> Run:
        """Run the flow and block until it ends; works in and out of Jupyter.

        A failed step does not raise here: the :class:`Run` records it, and
        ``run["step"]`` raises its error. An interrupt cancels the run (kept as
        ``flow.last``) and is re-raised.
        """
        return self.session.run(inputs)

    async def arun(self, **inputs: Any) -> Run:
        """Run the flow on the caller's event loop: ``run = await flow.arun()``."""
        return await self.session.arun(inputs)

    def rerun(self, *steps: str, **inputs: Any) -> Run:
        """Run ``steps`` and what depends on them again, even if cached; reuse the rest.

        For a step whose answer varies (an ``llm`` step with a temperature, say):
        ``flow.rerun("title")``. The new values replace the cached ones.
        """
        return self.session.run(inputs, rerun=steps)

    def start(self, **inputs: Any) -> RunHandle:
        """Start a run in the background and return its handle at once."""
        return self.session.start(self.execution(inputs))

    def cancel(self) -> bool:
        """Cancel the background run (:meth:`start`, ``--background``); keep what finished.

        Waits a moment for the run to settle, so ``flow.last.status`` is then
        ``"cancelled"``. Returns False when no background run was going on.
        """
        return self._session is not None and self._session.cancel()

    def map(self, variants: Iterable[Mapping[str, Any]], **inputs: Any) -> Variants:
        """Run the flow once per variant, all at once, and return the :class:`Variants` (``.table()``).

        A variant is a dict of inputs and :class:`RunSettings` fields, e.g.
        ``flow.map([{"topic": "cats"}, {"topic": "dogs", "model": "gpt-4o-mini"}])``;
        ``inputs`` apply to every variant. ``flowmagic.grid({"model": [...], "temperature": [...]})``
        builds every combination. For many rows of inputs, use :meth:`batch`.
        """
        if "executor" in inputs:
            raise TypeError("flow.map() runs variants side by side; for many rows use flow.batch(rows, executor=...)")
        return self.session.map(variants, inputs)

    @property
    def variants(self) -> Variants | None:
        """The runs of the last :meth:`map` (or ``--grid`` cell)."""
        return self._session.variants if self._session is not None else None

    def batch(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        executor: str = "threads",
        in_flight: int | None = None,
        chunk: int | None = None,
        progress: bool | None = None,
        **inputs: Any,
    ) -> Batch:
        """Run the flow once per row of inputs and return the :class:`~flowmagic.engine.batch.Batch`:
        each row's final values, or its error, in row order. A failed row never stops the rest.

        At most ``in_flight`` runs at once (on a cluster, ``executor="dask"`` or
        ``"dask://HOST:PORT"``: chunks of ``chunk`` rows), and a progress bar in a notebook.
        ``inputs`` apply to every row. :meth:`imap` streams the same rows as they finish.
        """
        return self.session.batch(rows, executor, in_flight, chunk, progress, inputs)

    def evaluate(
        self,
        data: Any,
        scorers: Any = None,
        variants: Any = None,
        workers: int | None = None,
        timeout: float | None = None,
        progress: bool | None = None,
    ) -> Any:
        """Run the flow on every example of ``data`` (a list of dicts, a DataFrame, a CSV or JSONL
        path) for every variant, score each run with ``scorers``, and return an ``Evaluation``:
        variants x scorers, with changes since the last evaluation of this flow.

        >>> ev = flow.evaluate("tickets.csv", scorers={"label": exact("label")},
        ...                    variants={"short": {"style": "short"}, "long": {"style": "long"}})
        """
        from ..evaluation import evaluate

        return evaluate(self, data, scorers, variants, workers, timeout, progress)

    @property
    def last_evaluation(self) -> Any:
        """The last ``evaluate()`` (filled in as runs finish; kept when it was interrupted)."""
        return self._session.last_evaluation if self._session is not None else None

    @property
    def last_batch(self) -> Batch | None:
        """The rows of the last :meth:`batch`, filled in as they finish."""
        return self._session.last_batch if self._session is not None else None

    def imap(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        executor: str = "threads",
        in_flight: int | None = None,
        chunk: int | None = None,
        **inputs: Any,
    ) -> Generator[RowResult, None, None]:
        """Run the flow once per row of inputs and yield each row's :class:`RowResult` in row order,
        as soon as it (and every row before it) is done. Nothing runs until the first ``next()``;
        every row is checked, and on a cluster pickled, before anything is sent."""
        return self.session.imap(rows, executor, in_flight, chunk, inputs)

    def __repr__(self) -> str:
        groups = len(self.groups)
        return f"<Flow {self.name!r}: {len(self.steps)} steps, {groups} parallel groups>"

    __str__ = __repr__

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))
