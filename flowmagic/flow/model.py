"""The validated description of a flow: steps, their dependencies, groups and branches."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_EXECUTOR = re.compile(r"threads|dask|dask://[^\s/:]+:\d+")


class StepOptions(BaseModel):
    """Options set by decorators: ``@retries(N, backoff=S)``, ``@timeout(S)``, ``@cache`` / ``@cache(False)``.

    ``cache`` is None unless a decorator sets it: the cache policy then decides (an ``llm`` step
    or a pure expression is reused, a call of a Python function runs again)."""

    model_config = ConfigDict(frozen=True)

    retries: int = Field(0, ge=0)
    backoff: float = Field(0.5, ge=0)
    timeout: float | None = Field(None, gt=0)
    cache: bool | None = None
    temperature: float | None = Field(None, ge=0)  # for llm() steps that do not set their own


class Step(BaseModel):
    """One ``name = expression`` line of a flow.

    ``kind`` is ``"llm"`` for a prompt step, ``"map"`` for a list comprehension
    (one branch per element at run time) and ``"call"`` for any other expression;
    ``"if"`` for an ``if`` block's condition (``if@LINE``, its value the number of the arm
    it chose) and ``"join"`` for a name's value after the block, taken from that arm;
    ``"loop"`` for a ``for`` loop (``for@LINE``, its value a dict of the names its body
    assigns), and ``"join"`` for each of those names after it.
    ``deps`` are the steps it waits for; ``inputs`` the other names it reads.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Literal["call", "llm", "map", "if", "join", "loop"]
    source: str
    deps: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    options: StepOptions = StepOptions()
    group: str | None = None
    branch: str | None = None
    line: int
    col: int = 0
    index: int


class Branch(BaseModel):
    """A lane of a parallel group: one step, or the steps of a ``branch NAME:`` block."""

    model_config = ConfigDict(frozen=True)

    name: str
    steps: tuple[str, ...]


class Group(BaseModel):
    """A ``parallel`` block. ``named`` groups can be read by later steps as a dict."""

    model_config = ConfigDict(frozen=True)

    name: str
    named: bool
    workers: int | None = Field(None, ge=1)
    branches: tuple[Branch, ...]
    parent: str | None = None
    line: int

    @property
    def members(self) -> tuple[str, ...]:
        """Every step declared inside the group, in declaration order."""
        return tuple(s for b in self.branches for s in b.steps)


class RunSettings(BaseModel):
    """How a flow runs: the cell options and ``FlowMagics`` settings end up here."""

    model_config = ConfigDict(frozen=True)

    workers: int = Field(32, ge=1)
    model: str | None = None
    sequential: bool = False
    on_error: Literal["continue", "stop"] = "continue"
    timeout: float | None = Field(None, gt=0)
    cache: bool = True
    cache_calls: bool = False  # reuse calls of Python functions too, as if every step had @cache
    temperature: float | None = Field(None, ge=0)  # for llm() steps that do not set their own
    # where sync steps run: "threads" (the kernel's), "dask" (a local cluster) or "dask://HOST:PORT"
    executor: str = "threads"
    # recorded answers (see flowmagic.llm.recording): write every llm answer to this file, or
    # answer from it; with replay_fallback, what the file lacks goes to the offline model
    record: str | None = None
    replay: str | None = None
    replay_fallback: bool = False

    @field_validator("executor")
    @classmethod
    def _known_executor(cls, value: str) -> str:
        if not _EXECUTOR.fullmatch(value):
            raise ValueError("the executor is 'threads', 'dask' or 'dask://HOST:PORT' (e.g. dask://127.0.0.1:8786)")
        return value

    def changed(self, **settings: object) -> RunSettings:
        """A copy with some fields changed, validated (``model_copy`` would not check them).

        A bad value raises ``ValueError`` naming the setting, e.g.
        ``workers=0: Input should be greater than or equal to 1``.
        """
        unknown = [k for k in settings if k not in RunSettings.model_fields]
        if unknown:
            raise ValueError(f"no setting '{unknown[0]}'; settings: {', '.join(RunSettings.model_fields)}")
        try:
            return RunSettings.model_validate({**self.model_dump(), **settings})
        except ValidationError as exc:
            problems = [f"{e['loc'][0]}={e.get('input')!r}: {e['msg']}" for e in exc.errors()]
            raise ValueError("; ".join(problems)) from None
