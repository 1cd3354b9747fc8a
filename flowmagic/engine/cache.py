"""The step cache: a rerun reuses every step whose definition and inputs are unchanged.

A step's key is a digest of the flow's name, the step's name, its expression (parsed, so spacing and
comments do not count), the fingerprints of the inputs it reads (values, and
functions by source), the model for ``llm`` steps, and the *keys* of the steps
it reads. Keys chain like a build system's: a step is reused exactly when
nothing it transitively depends on changed, so editing one prompt reruns that
step and its descendants and nothing else. All keys are known before the run
starts, from the definitions and the inputs alone.

:class:`StepCache` keeps values in memory (least recently used dropped past
``size`` entries) and, with a ``directory``, also as pickle files that survive a
kernel restart. Files are written to a temporary name and renamed into place,
so two kernels sharing a directory never read half a file.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import os
import pickle
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..flow.compile import CompiledFlow
from .fingerprint import Unfingerprintable, digest, fingerprint

#: Bump when the key recipe changes, so old on-disk entries are never reused.
VERSION = "flowmagic-step-1"
_MISS = object()


class StepCache:
    """Step values by key, in memory and optionally on disk; safe to use from any thread."""

    def __init__(self, size: int = 4096, directory: str | os.PathLike[str] | None = None) -> None:
        self.size = size
        self.directory = Path(directory).expanduser() if directory else None
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        """The value stored under ``key``, or :data:`MISS`."""
        with self._lock:
            value = self._memory.get(key, _MISS)
            if value is not _MISS:
                self._memory.move_to_end(key)
                return value
        if self.directory is None:
            return _MISS
        try:
            with open(self._path(key), "rb") as file:
                value = pickle.load(file)
        except FileNotFoundError:
            return _MISS
        except Exception:  # a truncated or foreign file is a miss, never an error
            return _MISS
        self._remember(key, value)
        return value

    def put(self, key: str, value: Any) -> str | None:
        """Store a value; return why it could not be written to disk, or None."""
        self._remember(key, value)
        if self.directory is None:
            return None
        try:
            data = pickle.dumps(value, protocol=5)
        except Exception as exc:
            return f"kept in memory only: {type(value).__name__} cannot be pickled ({exc})"
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(temp, path)
        except OSError as exc:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(temp)
            return f"kept in memory only: {exc}"
        return None

    def clear(self) -> None:
        """Forget every value in memory (files on disk stay; delete the directory to drop them)."""
        with self._lock:
            self._memory.clear()

    def __len__(self) -> int:
        return len(self._memory)

    def _remember(self, key: str, value: Any) -> None:
        with self._lock:
            self._memory[key] = value
            self._memory.move_to_end(key)
            while len(self._memory) > self.size:
                self._memory.popitem(last=False)

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.pickle"

    def __repr__(self) -> str:
        where = f", directory={str(self.directory)!r}" if self.directory else ""
        return f"StepCache({len(self)} values{where})"


MISS = _MISS

#: The cache every run uses unless told otherwise (``%config FlowMagics.cache_dir`` sets its directory).
default_cache = StepCache()


@dataclass
class Keys:
    """Each step's cache key (None: not cached) and, for those, why not."""

    keys: dict[str, str | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # input name -> fingerprint


def step_keys(name: str, flow: CompiledFlow, inputs: Mapping[str, Any], llm_settings: str) -> Keys:
    """Every step's key, from its definition and its inputs, in dependency order.

    ``llm_settings`` describes what ``llm`` steps run with (model, temperature).
    A step that is not cached (``@cache(False)``, or it reads a value that cannot
    be fingerprinted) has no key, and neither has anything that reads it.
    """
    out = Keys()
    unprintable: dict[str, str] = {}  # input name -> why it has no fingerprint
    for input_name, value in inputs.items():
        try:
            out.inputs[input_name] = fingerprint(value)
        except Unfingerprintable as exc:
            unprintable[input_name] = f"input '{input_name}' cannot be fingerprinted: {exc}"
    steps = flow.steps
    for step_name in flow.order:
        step = steps[step_name]
        why = None if step.options.cache else "@cache(False)"
        parts = [VERSION, name, step_name, step.kind, _normal(step.source)]
        if step.kind == "llm" or "llm" in flow.code[step_name].reads:
            parts += ["llm", llm_settings]
        for read in flow.code[step_name].reads:
            if why:
                break
            if read == "llm":
                continue
            elif read in steps:
                dep = out.keys[read]
                if dep is None:
                    why = f"it reads '{read}', which is not cached"
                parts += ["step", read, dep or ""]
            elif read in flow.groups and flow.groups[read].named:
                members = flow.groups[read].members
                missing = [m for m in members if out.keys[m] is None]
                if missing:
                    why = f"it reads '{missing[0]}', which is not cached"
                parts += ["group", read, *(out.keys[m] or "" for m in members)]
            else:
                value_print = out.inputs.get(read)
                if value_print is None:
                    why = unprintable.get(read, f"input '{read}' is unknown")
                parts += ["input", read, value_print or ""]
        if why:
            out.keys[step_name] = None
            out.reasons[step_name] = why
        else:
            out.keys[step_name] = digest(*parts)
    return out


@functools.lru_cache(maxsize=4096)
def _normal(source: str) -> str:
    """The expression as parsed: spacing, comments and line breaks do not change a key."""
    try:
        return ast.dump(ast.parse(source.strip(), mode="eval"))
    except SyntaxError:
        return source
