"""The validated description of a flow: steps, their dependencies, groups and branches."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StepOptions(BaseModel):
    """Options set by decorators: ``@retries(N, backoff=S)``, ``@timeout(S)``, ``@cache(False)``."""

    model_config = ConfigDict(frozen=True)

    retries: int = Field(0, ge=0)
    backoff: float = Field(0.5, ge=0)
    timeout: float | None = Field(None, gt=0)
    cache: bool = True
    temperature: float | None = Field(None, ge=0)  # for llm() steps that do not set their own


class Step(BaseModel):
    """One ``name = expression`` line of a flow.

    ``kind`` is ``"llm"`` for a prompt step, ``"map"`` for a list comprehension
    (one branch per element at run time) and ``"call"`` for any other expression.
    ``deps`` are the steps it waits for; ``inputs`` the other names it reads.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Literal["call", "llm", "map"]
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
    temperature: float | None = Field(None, ge=0)  # for llm() steps that do not set their own
