"""Recorded answers: a run against a real model saved to a file, then replayed offline.

With ``record=FILE`` every ``llm`` call is answered by its model as usual, and its request, answer,
token counts and timing (seconds to the first text, seconds in all) are written to FILE. With
``replay=FILE`` the answers come from FILE instead, with no network and with the recorded
timings (a streamed answer arrives in pieces over its recorded time). A request that is not in
the file is an error naming it, or, with ``replay_fallback``, is answered by the offline model.

A request is found by what was asked (system message, prompt, temperature, max tokens, schema),
the model's name preferred but not required: a recording made with ``FLOWMAGIC_MODEL=llama``
replays in a room where no model is configured.

The file is plain JSON (``{"flowmagic": "recorded answers", "version": 1, "answers": [...]}``),
safe to commit and share: it holds what was asked and answered, never a key (every text is
redacted as it is written), and reading it runs no code: it is parsed as JSON, at most
:data:`MAX_BYTES`, checked field by field, and a ``schema=`` answer is validated like any answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .protocol import LLMError, LLMRequest, LLMResponse, TextCallback, validated
from .secrets import redact

MAX_BYTES = 64 * 2**20
KIND = "recorded answers"

Ask = Callable[[LLMRequest, TextCallback | None], Awaitable[LLMResponse]]


class Answer(BaseModel):
    """One recorded call."""

    model_config = ConfigDict(extra="forbid")

    model: str
    system: str | None = None
    prompt: str
    temperature: float | None = None
    max_tokens: int | None = None
    schema_: dict[str, Any] | None = None
    answer: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    estimated: bool = False
    seconds: float = 0.0
    first_text: float | None = None


class Recording:
    """The answers of one file, kept in memory; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._answers: dict[str, list[Answer]] = {}
        self._stamp: tuple[int, int] | None = None

    # -- replaying -----------------------------------------------------------------------------
    def find(self, request: LLMRequest) -> Answer | None:
        with self._lock:
            self._load()
            found = self._answers.get(_key(request), [])
        same_model = [a for a in found if a.model == request.model]
        chosen = same_model or found
        return chosen[0] if chosen else None

    def _load(self) -> None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            raise LLMError(f"no recording at {self.path} (record one with --record {self.path.name})") from None
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp == self._stamp:
            return
        if info.st_size > MAX_BYTES:
            raise LLMError(f"{self.path} is {info.st_size:,} bytes: a recording is at most {MAX_BYTES:,}")
        try:
            data = json.loads(self.path.read_bytes())
            if not isinstance(data, dict) or data.get("flowmagic") != KIND or data.get("version") != 1:
                raise ValueError(f'not a flowmagic recording ({{"flowmagic": "{KIND}", "version": 1}} expected)')
            answers = [Answer.model_validate(_renamed(a)) for a in data.get("answers", [])]
        except (ValueError, ValidationError, TypeError, RecursionError) as exc:
            raise LLMError(f"{self.path} cannot be replayed: {str(exc)[:500]}") from None
        self._answers = {}
        for answer in answers:
            self._answers.setdefault(_key(answer), []).append(answer)
        self._stamp = stamp

    # -- recording -----------------------------------------------------------------------------
    def add(self, answer: Answer) -> None:
        """Keep ``answer`` (in place of one to the same request by the same model) and write the file."""
        with self._lock:
            if self._stamp is None and self.path.exists():
                try:
                    self._load()  # add to what the file holds
                except LLMError:
                    self._answers = {}  # not a recording: replaced
            same = self._answers.setdefault(_key(answer), [])
            same[:] = [a for a in same if a.model != answer.model] + [answer]
            everything = [_plain(a) for group in self._answers.values() for a in group]
            text = json.dumps({"flowmagic": KIND, "version": 1, "answers": everything}, indent=1, ensure_ascii=False)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            temporary.write_text(text + "\n", encoding="utf-8")
            os.replace(temporary, self.path)
            info = self.path.stat()
            self._stamp = (info.st_mtime_ns, info.st_size)


_recordings: dict[Path, Recording] = {}
_recordings_lock = threading.Lock()


def recording(path: str | os.PathLike[str]) -> Recording:
    """The one :class:`Recording` of ``path`` in this process."""
    resolved = Path(path).expanduser().resolve()
    with _recordings_lock:
        found = _recordings.get(resolved)
        if found is None:
            found = _recordings[resolved] = Recording(resolved)
        return found


async def recorded(path: str, request: LLMRequest, on_text: TextCallback | None, ask: Ask) -> LLMResponse:
    """``ask(request, on_text)``, with its answer and timing written to ``path``."""
    began = time.perf_counter()
    first: list[float] = []

    def seen(text: str) -> None:
        if not first:
            first.append(time.perf_counter() - began)
        if on_text is not None:
            on_text(text)

    response = await ask(request, seen)
    recording(path).add(
        Answer(
            model=redact(response.model or request.model),
            system=redact(request.system) if request.system is not None else None,
            prompt=redact(request.prompt),
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            schema_=_schema(request),
            answer=redact(response.text),
            prompt_tokens=response.prompt_tokens,
            completion_tokens=response.completion_tokens,
            estimated=bool(response.extra.get("estimated_usage")),
            seconds=round(time.perf_counter() - began, 4),
            first_text=round(first[0], 4) if first else None,
        )
    )
    return response


async def replayed(
    path: str, request: LLMRequest, on_text: TextCallback | None, fallback: Ask | None = None
) -> LLMResponse:
    """The recorded answer to ``request``, after its recorded time (streamed over it to ``on_text``)."""
    tape = recording(path)
    answer = tape.find(request)
    if answer is None:
        if fallback is not None:
            return await fallback(dataclasses.replace(request, model="offline"), on_text)
        shown = request.prompt if len(request.prompt) <= 80 else request.prompt[:77] + "..."
        raise LLMError(
            f"{request.model}: no recorded answer in {tape.path.name} for the prompt {shown!r}"
            f"{' (with its system message)' if request.system else ''}; record it again, or replay with "
            "--replay-fallback to let the offline model answer what is missing"
        )
    text = answer.answer
    if on_text is not None and text:
        first = answer.first_text if answer.first_text is not None else 0.0
        pieces = text.split(" ")
        rest = max(answer.seconds - first, 0.0)
        step = rest / (len(pieces) - 1) if len(pieces) > 1 else 0.0
        await asyncio.sleep(first if len(pieces) > 1 else first + rest)
        for i in range(1, len(pieces) + 1):  # the first piece at first_text, the last at seconds
            on_text(" ".join(pieces[:i]))
            if i < len(pieces):
                await asyncio.sleep(step)
    else:
        await asyncio.sleep(answer.seconds)
    value = validated(request, text)
    extra: dict[str, Any] = {"replayed": tape.path.name}
    if answer.estimated:
        extra["estimated_usage"] = True
    return LLMResponse(
        text=text,
        value=value,
        model=answer.model,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        extra=extra,
    )


def _schema(request: LLMRequest) -> dict[str, Any] | None:
    return request.schema.model_json_schema() if request.schema is not None else None


def _key(item: LLMRequest | Answer) -> str:
    schema = item.schema_ if isinstance(item, Answer) else _schema(item)
    asked = [item.system, item.prompt, item.temperature, item.max_tokens, schema]
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


def _plain(answer: Answer) -> dict[str, Any]:
    data = answer.model_dump()
    data["schema"] = data.pop("schema_")
    return data


def _renamed(raw: Any) -> Any:
    if isinstance(raw, dict) and "schema" in raw:
        raw = {**raw, "schema_": raw["schema"]}
        del raw["schema"]
    return raw


__all__ = ["MAX_BYTES", "Answer", "Recording", "recorded", "recording", "replayed"]
