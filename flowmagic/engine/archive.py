"""Run history on disk: each finished run of a flow as a sealed JSON file beside the step cache,
so ``%flow history``, ``%flow diff`` and "ran again: X changed" survive a kernel restart.

Files live in ``<cache_dir>/history/<flow>/``, one per run, named ``<number>-<random>.run``, and
follow the cache's rules (:mod:`.cache`): a file is read only if its MAC under the cache secret
verifies (:mod:`.seal`, with a key of its own for history), it is JSON only (never a pickle,
so no file can run code), and a file over :data:`MAX_FILE` bytes is not read at all. A run keeps
its steps' records (errors as their text), the fingerprints of its inputs, its definitions and
settings, and each output that is a plain value (:mod:`.stored`) of at most :data:`OUTPUT_LIMIT`
bytes; any other output is kept as its text (:class:`Shown`). Only the last ``keep`` runs of a
flow stay on disk.

Runs are written by a background thread (started when there is something to write, gone once
idle), so a run's end never waits for the disk; :meth:`Archive.flush` waits for what is queued
(and runs at exit). Two kernels sharing a directory each number their
runs from what was on disk when they first touched the flow, so their numbers may repeat.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import queue
import re
import secrets
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import seal, stored
from .cache import StepCache, read_regular
from .cache_secret import NoSecret, Secret
from .record import Run, StepRecord, format_error
from .vocabulary import RunStatus, Status

MAX_FILE = 8 * 2**20  # bytes of one run's file: a larger one is not read
OUTPUT_LIMIT = 256 * 2**10  # bytes of one output kept as a value; a larger one is kept as text
TEXT_LIMIT = 2000  # characters of the text of an output that is not kept as a value
SUFFIX = ".run"
IDLE = 0.25  # seconds the writer thread waits for another run before it ends
_FORMAT = 1
_SAFE = re.compile(r"[A-Za-z0-9_]{1,80}")
_FILE = re.compile(r"([0-9]{1,9})-[0-9a-f]{8}\.run")


class RecordedError(Exception):
    """A step's error in a run of an earlier kernel: only its text was kept."""


class Shown:
    """An output of a run of an earlier kernel that was not a plain value: only its text was kept."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Shown) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


Place = Callable[[], "tuple[Path, Secret] | None"]


def beside(cache: StepCache) -> Place:
    """Where runs are kept: in ``cache``'s directory under its secret, or nowhere (None)."""

    def place() -> tuple[Path, Secret] | None:
        if cache.directory is None:
            return None
        try:
            return cache.directory / "history", cache.disk_secret()
        except NoSecret:
            return None

    return place


class Archive:
    """The runs of each flow kept on disk at ``place()``; safe to use from any thread."""

    def __init__(self, place: Place, keep: int = 20) -> None:
        self.place = place
        self.keep = keep
        self._queue: queue.Queue[tuple[Path, Secret, str, int, Run]] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._at_exit = False
        self._lock = threading.Lock()

    def load(self, flow: str) -> list[tuple[int, Run]]:
        """The runs of ``flow`` on disk, oldest first, with their numbers; [] if there are none."""
        where = self.place()
        if where is None:
            return []
        folder, secret = where[0] / _folder(flow), where[1]
        runs: list[tuple[int, float, Run]] = []
        for path, number in _files(folder):
            run = _read(path, secret.value, flow)
            if run is not None:
                runs.append((number, run.started or 0.0, run))
        runs.sort(key=lambda found: found[:2])
        return [(number, run) for number, _, run in runs[-self.keep :]]

    def save(self, flow: str, number: int, run: Run) -> None:
        """Keep ``run`` (over) as run ``number`` of ``flow``, soon, on the writer thread."""
        where = self.place()
        if where is None:
            return
        self._queue.put((where[0], where[1], flow, number, run))
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_all, name="flowmagic-history", daemon=True)
                self._writer.start()
                if not self._at_exit:
                    self._at_exit = atexit.register(self.flush) is not None

    def flush(self) -> None:
        """Wait until every run handed to :meth:`save` is on disk (or could not be written)."""
        self._queue.join()

    def _write_all(self) -> None:
        """The writer thread: writes what is queued, and ends once nothing has come for a moment."""
        while True:
            try:
                root, secret, flow, number, run = self._queue.get(timeout=IDLE)
            except queue.Empty:
                with self._lock:  # (save() puts, then looks for a writer under this lock)
                    if self._queue.empty():
                        self._writer = None
                        return
                continue
            try:
                with contextlib.suppress(OSError, ValueError, RecursionError):
                    _write(root / _folder(flow), secret, flow, number, run, self.keep)
            finally:
                self._queue.task_done()


def _folder(flow: str) -> str:
    """A flow's folder name: the name itself when it is a plain identifier, else a digest of it."""
    if _SAFE.fullmatch(flow):
        return flow
    return "flow-" + hashlib.sha256(flow.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _files(folder: Path) -> list[tuple[Path, int]]:
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        match = _FILE.fullmatch(name)
        if match:
            found.append((folder / name, int(match.group(1))))
    return found


def _write(folder: Path, secret: Secret, flow: str, number: int, run: Run, keep: int) -> None:
    payload = stored.encode(_plain(flow, number, run))
    name = f"{number}-{secrets.token_hex(4)}{SUFFIX}"
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".tmp-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(seal.header(secret.value, _key(flow, name), seal.JSON, payload, seal.HISTORY))
            file.write(payload)
        os.replace(temp, folder / name)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    for path, _ in sorted(_files(folder), key=lambda found: found[1])[:-keep]:
        with contextlib.suppress(OSError):
            path.unlink()


def _key(flow: str, name: str) -> str:
    """What a file's MAC covers besides its contents: a file moved to another flow or name does not verify."""
    return f"{flow}\0{name}"


def _read(path: Path, secret: bytes, flow: str) -> Run | None:
    try:
        data = read_regular(path, MAX_FILE)
    except OSError:
        return None
    opened = seal.unseal(secret, _key(flow, path.name), data, seal.HISTORY)
    if opened is None or opened[0] != seal.JSON:
        return None
    try:
        return _run(flow, stored.decode(opened[1]))
    except (stored.Unreadable, KeyError, TypeError, ValueError):
        return None


# -- a run as plain data, and back -----------------------------------------------------------------
_RECORD = ("kind", "status", "started", "finished", "attempts", "cached", "cache_note", "group", "branch", "map")
_MORE = ("elements", "reason", "llm", "waited", "stdout", "stderr")


def _plain(flow: str, number: int, run: Run) -> dict[str, Any]:
    steps = {}
    for name, record in list(run.steps.items()):
        data: dict[str, Any] = {key: getattr(record, key) for key in _RECORD}
        data["status"] = str(record.status)
        data["deps"] = list(record.deps)
        data["key_parts"] = _lists(record.key_parts)
        data["error"] = None if record.error is None else format_error(record.error)
        for key in _MORE:
            value = getattr(record, key, None)
            if value is not None:
                data[key] = value if key != "llm" else _json_only(value)
        steps[name] = data
    outputs: dict[str, Any] = {}
    shown: dict[str, str] = {}
    for name, value in list(run.outputs.items()):
        try:
            if len(stored.encode(value)) <= OUTPUT_LIMIT:
                outputs[name] = value
                continue
        except stored.NotPlain:
            pass
        shown[name] = _text(value)
    return {
        "format": _FORMAT,
        "flow": flow,
        "number": number,
        "status": str(run.status),
        "reason": run.reason,
        "started": run.started,
        "finished": run.finished,
        "model": run.model,
        "inputs": dict(run.inputs),
        "sources": dict(run.sources),
        "settings": _json_only(run.settings),
        "steps": steps,
        "outputs": outputs,
        "shown": shown,
    }


def _run(flow: str, data: dict[str, Any]) -> Run:
    if data["format"] != _FORMAT or data["flow"] != flow:
        raise ValueError("not a run of this flow in this format")
    steps = {}
    for name, step in data["steps"].items():
        record = StepRecord(str(name), deps=tuple(str(d) for d in step["deps"]))
        for key in (*_RECORD, *_MORE):
            if key in step:
                setattr(record, key, step[key])
        record.status = Status(step["status"])
        record.key_parts = _tuples(step.get("key_parts"))
        record.error = RecordedError(step["error"]) if step.get("error") else None
        steps[record.name] = record
    outputs = dict(data["outputs"])
    outputs.update({name: Shown(str(text)) for name, text in data["shown"].items()})
    return Run(
        flow=flow,
        steps=steps,
        outputs=outputs,
        status=RunStatus(data["status"]),
        started=data["started"],
        finished=data["finished"],
        model=data["model"],
        reason=data["reason"],
        inputs={str(k): str(v) for k, v in data["inputs"].items()},
        sources={str(k): str(v) for k, v in data["sources"].items()},
        settings=dict(data["settings"]),
    )


def _lists(parts: Any) -> Any:
    return None if parts is None else [list(parts[0]), [list(pair) for pair in parts[1]]]


def _tuples(parts: Any) -> Any:
    if parts is None:
        return None
    return (tuple(str(p) for p in parts[0]), tuple((str(a), str(b)) for a, b in parts[1]))


def _json_only(value: Any) -> Any:
    """``value`` with whatever JSON cannot hold written as its text (llm records, settings)."""
    return json.loads(json.dumps(value, default=_text))


def _text(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<{type(value).__name__}: repr failed: {exc}>"
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + f"... ({len(text):,} characters)"
