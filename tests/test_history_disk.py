"""Run history kept beside an on-disk cache: it survives a restart (a new History, a new kernel),
and follows the cache's rules: only files sealed under the secret are read, never a pickle,
never a file moved from another flow, a pipe or an oversized file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from kernel_helpers import kernel_session

from flowmagic import Flow
from flowmagic.engine import archive as archive_module
from flowmagic.engine import seal
from flowmagic.engine.archive import Archive, RecordedError, Shown, beside
from flowmagic.engine.cache import StepCache
from flowmagic.engine.history import History, HistoryTable

SECRET = "a team secret of enough length"


class Opaque:
    """An output that JSON cannot hold: only its text is kept."""

    def __repr__(self) -> str:
        return "Opaque(7)"


def fail(value: int) -> int:
    raise ValueError(f"no {value}")


def kernel_of(tmp: Path) -> tuple[StepCache, History]:
    """A "kernel": its own cache and history over a shared directory (as a restart would make)."""
    cache = StepCache(directory=tmp, secret=SECRET)
    return cache, History(archive=Archive(beside(cache)))


def run_in(history: History, source: str, name: str = "demo", **ns: Any) -> Any:
    flow = Flow.from_source(source, name=name, namespace={"Opaque": Opaque, "fail": fail, **ns})
    number = history.add(name, run := flow.run())
    history.over(name, number, run)
    return run


def test_runs_come_back_in_a_new_kernel_numbered_on(tmp_path: Path) -> None:
    _, first = kernel_of(tmp_path)
    run_in(first, "a = 1 + 1\nb = Opaque()\nc = fail(a)")
    run_in(first, "a = 1 + 2\nb = Opaque()\nc = fail(a)")
    assert first.archive is not None
    first.archive.flush()

    _, second = kernel_of(tmp_path)
    entries = second.entries("demo")
    assert [e.number for e in entries] == [1, 2]
    past = entries[-1].run
    assert past.status == "failed" and past.outputs["a"] == 3
    assert past["b"] == Shown("Opaque(7)") and repr(past["b"]) == "Opaque(7)"
    with pytest.raises(RecordedError, match="ValueError: no 3"):
        past["c"]
    assert past.sources["a"] == "1 + 2" and past.steps["c"].deps == ("a",)
    number = second.add("demo", Flow.from_source("a = 2 + 2", name="demo").run())
    assert number == 3
    table = HistoryTable("demo", second.entries("demo")).text()
    assert "#1" in table and "first run" in table and "edited: a" in table and "removed: b, c" in table


def test_only_the_last_runs_stay_on_disk(tmp_path: Path) -> None:
    cache = StepCache(directory=tmp_path, secret=SECRET)
    history = History(archive=Archive(beside(cache), keep=3))
    for i in range(5):
        run_in(history, f"a = {i}")
    assert history.archive is not None
    history.archive.flush()
    files = sorted(p.name.split("-")[0] for p in (tmp_path / "history" / "demo").iterdir())
    assert files == ["3", "4", "5"]
    assert [e.number for e in History(archive=Archive(beside(cache), keep=3)).entries("demo")] == [3, 4, 5]


def saved(tmp_path: Path) -> Path:
    _, history = kernel_of(tmp_path)
    run_in(history, "a = 41 + 1")
    assert history.archive is not None
    history.archive.flush()
    (path,) = (tmp_path / "history" / "demo").iterdir()
    return path


def loads(tmp_path: Path, name: str = "demo") -> list[int]:
    return [e.number for e in kernel_of(tmp_path)[1].entries(name)]


def test_a_changed_or_moved_file_is_not_read(tmp_path: Path) -> None:
    path = saved(tmp_path)
    assert loads(tmp_path) == [1]
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))
    assert loads(tmp_path) == []

    path = saved(tmp_path / "two")
    other = tmp_path / "two" / "history" / "other"
    other.mkdir()
    path.rename(other / path.name)  # a valid file, under another flow's name
    assert loads(tmp_path / "two", "other") == []
    assert Archive(beside(StepCache(directory=tmp_path / "two", secret="another secret, long"))).load("demo") == []


def test_only_a_json_file_sealed_for_history_is_read(tmp_path: Path) -> None:
    path = saved(tmp_path)
    payload = path.read_bytes()[len(seal.header(b"x" * 16, "k", seal.JSON, b"")) :]
    key = archive_module._key("demo", path.name)

    def write(kind: bytes, purpose: bytes) -> None:
        path.write_bytes(seal.header(SECRET.encode(), key, kind, payload, purpose) + payload)

    write(seal.JSON, seal.HISTORY)
    assert loads(tmp_path) == [1]  # the same payload, sealed as the archive seals it
    write(seal.PICKLE, seal.HISTORY)  # marked as a pickle: never unpickled, not read
    assert loads(tmp_path) == []
    write(seal.JSON, seal.CACHE)  # sealed as a cache entry: not history
    assert loads(tmp_path) == []

    ran: list[str] = []

    class Boom:
        def __reduce__(self) -> Any:
            return (ran.append, ("pickle ran",))

    bomb = pickle.dumps(Boom())
    path.write_bytes(seal.header(SECRET.encode(), key, seal.PICKLE, bomb, seal.HISTORY) + bomb)
    assert loads(tmp_path) == [] and ran == []


def test_a_pipe_or_an_oversized_file_is_skipped_at_once(tmp_path: Path, monkeypatch: Any) -> None:
    path = saved(tmp_path)
    monkeypatch.setattr(archive_module, "MAX_FILE", 10)
    assert loads(tmp_path) == []
    monkeypatch.undo()
    path.unlink()
    os.mkfifo(path)  # reading it would block forever
    assert loads(tmp_path) == []


def test_without_a_directory_nothing_is_written(tmp_path: Path) -> None:
    history = History(archive=Archive(beside(StepCache())))
    run_in(history, "a = 1")
    assert history.archive is not None and history.archive._writer is None


def test_in_a_kernel_history_survives_a_restart(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    setup = f"%load_ext flowmagic\n%config FlowMagics.cache_dir = {str(cache)!r}"
    with kernel_session(tmp_path / "k") as k:
        k.ok(setup)
        k.ok("%%flow tagline --quiet\ntopic = 'tea'\nline = topic.upper()")
        k.ok("%%flow tagline --quiet\ntopic = 'coffee'\nline = topic.upper()")
    with kernel_session(tmp_path / "k") as k:
        k.ok(setup)
        k.ok("%%flow tagline --quiet\ntopic = 'coffee'\nline = topic.title()")
        shown = k.ok("%flow history tagline").text
        assert "#1" in shown and "#2" in shown and "#3" in shown and "first run" in shown, shown
        assert "edited: topic" in shown and "edited: line" in shown, shown
        assert k.value("[run.outputs['line'] for run in tagline.history]") == ["TEA", "COFFEE", "Coffee"]
