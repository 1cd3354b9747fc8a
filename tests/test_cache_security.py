"""The disk cache under attack, and the memory budgets.

Cache keys are no secret: anyone with the notebook can compute them, so anyone who
can write to a cache directory can plant a file under the very name a run looks
up. These tests plant pickles that would write a marker file, files of the wrong
shape, forged and moved envelopes, and check that each is a miss that the run
recomputes. The secret that authenticates entries lives outside the cache
directory (the fixtures point ``XDG_CONFIG_HOME`` at a temporary directory).
Then: what stays in memory is bounded in bytes, and what is dropped is freed.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import stat
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import weakref
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from pydantic import BaseModel

import flowmagic.engine.stepkeys as stepkeys_module
from flowmagic import Flow
from flowmagic.engine import seal, sizes, stored
from flowmagic.engine.cache import MISS, SUFFIX, StepCache, default_cache
from flowmagic.engine.cache_secret import ENV, Secret, resolve, secret_file
from flowmagic.engine.history import History, default_history
from flowmagic.engine.record import StepRecord
from flowmagic.engine.runner import run_blocking
from flowmagic.engine.stepkeys import RunKeys, step_keys

ROOT = Path(__file__).resolve().parent.parent
KEY = "ab" * 16  # keys are hex digests
OTHER_KEY = "cd" * 16
TEAM = "a team's shared secret, long enough"
SOURCE = "data = list(range(3))\nsummary = len(data)"


class Movie(BaseModel):
    title: str
    year: int
    tags: list[str] = []


class Point:
    """Not a plain value: it goes to disk pickled inside the envelope."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


class Blob:
    """A large value that can be watched with a weakref (bytes cannot)."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)


class Payload:
    """Unpickling this writes ``marker``: what a planted file would do with ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "owned"))


def hostile(marker: Path) -> bytes:
    data = pickle.dumps(Payload(marker))
    pickle.loads(data)  # the payload is real: loading it does write the marker
    assert marker.read_text() == "owned"
    marker.unlink()
    return data


def secret_for(directory: Path) -> bytes:
    return resolve(None, directory).value


def sealed(secret: bytes, key: str, kind: bytes, payload: bytes) -> bytes:
    return seal.header(secret, key, kind, payload) + payload


def entry(directory: Path, key: str) -> Path:
    return directory / key[:2] / f"{key}{SUFFIX}"


# -- a planted pickle, in a fresh process -----------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from flowmagic import Flow
    from flowmagic.engine.cache import default_cache
    default_cache.directory = Path(sys.argv[1])
    run = Flow.from_source(sys.argv[2], name="planted").run()
    cached = {n: r.cached for n, r in run.steps.items()}
    print(json.dumps({"status": run.status, "cached": cached, "data": run["data"], "summary": run["summary"]}))
    """
)


def fresh_run(directory: Path) -> dict[str, Any]:
    """Run the flow in a new process: an empty cache in memory, the same directory and secret location."""
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(directory), SOURCE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def planted_keys(flow: Flow, inputs: dict[str, Any]) -> dict[str, str | None]:
    """Each step's key, made as the engine makes it when the step starts (from the values it reads)."""
    values = {"data": [0, 1, 2]}
    records = {n: StepRecord(n) for n in flow.steps}
    keys = RunKeys(step_keys("planted", flow.compiled, inputs, "unused"), values, records, None)
    return {name: keys.key(name) for name in ("data", "summary")}


def test_a_planted_pickle_runs_nothing_and_the_step_is_recomputed(tmp_path: Path) -> None:
    directory, marker = tmp_path / "cache", tmp_path / "owned"
    payload = hostile(marker)
    first = fresh_run(directory)
    assert first == {
        "status": "succeeded",
        "cached": {"data": False, "summary": False},
        "data": [0, 1, 2],
        "summary": 3,
    }
    assert fresh_run(directory)["cached"] == {"data": True, "summary": True}  # these files are what a run reads

    # the file names a run looks up, computed as the engine does: the attacker knows them too
    flow = Flow.from_source(SOURCE, name="planted")
    inputs = flow.resolve_inputs({})
    keys = planted_keys(flow, inputs)
    assert {p.stem for p in directory.rglob(f"*{SUFFIX}")} == set(keys.values())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stepkeys_module, "VERSION", "flowmagic-step-1")  # the previous format's names
        old_keys = planted_keys(flow, inputs)
    assert set(old_keys.values()).isdisjoint(keys.values())

    attacker = sealed(b"the attacker's own secret, long", keys["data"], seal.PICKLE, payload)
    plantings = [
        {"data": payload, "summary": seal.MAGIC + os.urandom(32) + seal.PICKLE + payload},  # raw; forged tag
        {"data": attacker, "summary": payload},  # signed with another secret; raw again
    ]
    for planted in plantings:
        for step, data in planted.items():
            path = entry(directory, keys[step])
            path.write_bytes(data)
            # and a pickle where the previous format kept this step's value
            old = directory / old_keys[step][:2] / f"{old_keys[step]}.pickle"
            old.parent.mkdir(exist_ok=True)
            old.write_bytes(payload)
        again = fresh_run(directory)
        assert not marker.exists()
        assert again == first  # recomputed: the real values, nothing cached
    assert fresh_run(directory)["cached"] == {"data": True, "summary": True}  # the recomputed values were stored


# -- forged, moved and misshapen files ---------------------------------------------------------

SHAPES = [42, (1,), ("v", "x"), (["attacker", "chosen"], {}), ("v", {1: "not a str key"}), [["v"], {}]]


@pytest.mark.parametrize("shape", SHAPES, ids=repr)
@pytest.mark.parametrize("kind", [seal.JSON, seal.PICKLE], ids=["json", "pickle"])
def test_a_file_without_a_valid_mac_is_a_miss_whatever_it_holds(tmp_path: Path, shape: Any, kind: bytes) -> None:
    payload = stored.encode(shape) if kind == seal.JSON else pickle.dumps(shape)
    looks_right = seal.MAGIC + bytes(32) + kind + payload
    entry(tmp_path, KEY).parent.mkdir()
    for data in (looks_right, payload, pickle.dumps(shape)):
        entry(tmp_path, KEY).write_bytes(data)
        assert StepCache(directory=tmp_path).get(KEY) is MISS


@pytest.mark.parametrize("shape", [s for s in SHAPES if s != (["attacker", "chosen"], {})], ids=repr)
@pytest.mark.parametrize("kind", [seal.JSON, seal.PICKLE], ids=["json", "pickle"])
def test_a_signed_file_of_the_wrong_shape_is_a_miss_not_an_error(tmp_path: Path, shape: Any, kind: bytes) -> None:
    payload = stored.encode(shape) if kind == seal.JSON else pickle.dumps(shape)
    entry(tmp_path, KEY).parent.mkdir()
    entry(tmp_path, KEY).write_bytes(sealed(secret_for(tmp_path), KEY, kind, payload))
    assert StepCache(directory=tmp_path).get(KEY) is MISS


def test_a_signed_wrong_shape_makes_the_run_recompute_not_crash(tmp_path: Path) -> None:
    default_cache.directory = tmp_path
    try:
        flow = Flow.from_source(SOURCE, name="shapes")
        assert flow.run().status == "succeeded"
        files = list(tmp_path.rglob(f"*{SUFFIX}"))
        assert len(files) == 2
        for path in files:
            path.write_bytes(sealed(secret_for(tmp_path), path.stem, seal.JSON, stored.encode(42)))
        default_cache.clear()
        run = flow.run()
    finally:
        default_cache.directory = None
    assert run.status == "succeeded" and run.outputs == {"data": [0, 1, 2], "summary": 3}
    assert not any(r.cached for r in run.steps.values())


def test_a_valid_file_moved_to_another_key_or_altered_is_a_miss(tmp_path: Path) -> None:
    writer = StepCache(directory=tmp_path)
    assert writer.put(KEY, (["real"], {"llm": {"model": "offline"}})) is None
    assert writer.put("ef" * 16, (Point(1, 2), {})) is None
    good = entry(tmp_path, KEY).read_bytes()
    entry(tmp_path, OTHER_KEY).parent.mkdir()
    entry(tmp_path, OTHER_KEY).write_bytes(good)
    assert StepCache(directory=tmp_path).get(OTHER_KEY) is MISS
    assert StepCache(directory=tmp_path).get(KEY) == (["real"], {"llm": {"model": "offline"}})
    pickled = entry(tmp_path, "ef" * 16).read_bytes()
    assert pickled[len(seal.MAGIC) + 32 : len(seal.MAGIC) + 33] == seal.PICKLE
    for altered in (good[:-1], good + b" ", good[:-2] + bytes([good[-2] ^ 1]) + good[-1:], b""):
        entry(tmp_path, KEY).write_bytes(altered)
        assert StepCache(directory=tmp_path).get(KEY) is MISS
    middle = len(pickled) - 8  # inside the pickled object
    edited = pickled[:middle] + bytes([pickled[middle] ^ 1]) + pickled[middle + 1 :]
    entry(tmp_path, "ef" * 16).write_bytes(edited)
    assert StepCache(directory=tmp_path).get("ef" * 16) is MISS


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX pipes")
def test_a_pipe_planted_under_an_entry_name_is_a_miss_not_a_hang(tmp_path: Path) -> None:
    entry(tmp_path, KEY).parent.mkdir()
    os.mkfifo(entry(tmp_path, KEY))  # opening it for reading would wait for a writer forever
    assert StepCache(directory=tmp_path).get(KEY) is MISS


def test_a_signed_model_entry_makes_no_other_class(tmp_path: Path) -> None:
    # even a file signed with the secret only ever names an imported pydantic model
    entry(tmp_path, KEY).parent.mkdir()
    for path in ("os:system", "builtins:dict", "no_such_module_here:Movie", f"{__name__}:Point"):
        document = json.dumps({"~t": [{"~m": [path, {"title": "x"}]}, {}]}).encode()
        entry(tmp_path, KEY).write_bytes(sealed(secret_for(tmp_path), KEY, seal.JSON, document))
        assert StepCache(directory=tmp_path).get(KEY) is MISS
    invalid = json.dumps({"~t": [{"~m": [f"{__name__}:Movie", {"title": "x", "year": "no"}]}, {}]}).encode()
    entry(tmp_path, KEY).write_bytes(sealed(secret_for(tmp_path), KEY, seal.JSON, invalid))
    assert StepCache(directory=tmp_path).get(KEY) is MISS


# -- what goes to disk, and how it comes back --------------------------------------------------

PLAIN = [
    None,
    True,
    0,
    -(2**80),
    1.5,
    float("inf"),
    -0.0,
    "",
    "naïve ☕ \ud800",
    b"\x00\xff raw",
    [1, [2, "three"]],
    (1, ("nested",), ()),
    {"a": 1, "b": {"c": [None]}},
    {"~looks like a tag": 1},
    {1: "int key", (2, 3): "tuple key", None: b"x", 1.5: "float key"},
    Movie(title="Alien", year=1979, tags=["space", "cat"]),
    [Movie(title="Up", year=2009), {"inner": Movie(title="Heat", year=1995)}],
]


@pytest.mark.parametrize("value", PLAIN, ids=lambda v: type(v).__name__ + ":" + repr(v)[:20])
def test_plain_values_round_trip_through_json_on_disk(tmp_path: Path, value: Any) -> None:
    info = {"llm": {"prompt": "p", "model": "offline", "prompt_tokens": 3, "cost": None}}
    assert StepCache(directory=tmp_path).put(KEY, (value, info)) is None
    data = entry(tmp_path, KEY).read_bytes()
    assert data[len(seal.MAGIC) + 32 : len(seal.MAGIC) + 33] == seal.JSON
    assert b"pickle" not in data and b"\x80\x05" not in data[len(seal.MAGIC) + 33 :]
    back = StepCache(directory=tmp_path).get(KEY)
    assert back == (value, info) and type(back[0]) is type(value)
    assert repr(back[0]) == repr(value)  # nested types too: tuples stay tuples, -0.0 stays -0.0


def test_a_non_plain_value_round_trips_pickled_inside_the_envelope(tmp_path: Path) -> None:
    from collections import OrderedDict

    for value in (Point(3, 4), {"point": Point(1, 1)}, OrderedDict(a=1), {1, 2}):
        assert StepCache(directory=tmp_path).put(KEY, (value, {})) is None
        assert entry(tmp_path, KEY).read_bytes()[len(seal.MAGIC) + 32 : len(seal.MAGIC) + 33] == seal.PICKLE
        back = StepCache(directory=tmp_path).get(KEY)
        assert back == (value, {}) and type(back[0]) is type(value)


def test_a_model_that_cannot_be_found_again_is_not_stored_as_json(tmp_path: Path) -> None:
    class Local(BaseModel):  # its class has no importable name
        a: int

    note = StepCache(directory=tmp_path).put(KEY, (Local(a=1), {}))
    assert note is not None and note.startswith("kept in memory only: Local cannot be pickled")
    assert StepCache(directory=tmp_path).get(KEY) is MISS


# -- the secret --------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX modes")
def test_the_secret_file_is_private_and_outside_the_cache_directory(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache = StepCache(directory=cache_dir)
    assert cache.put(KEY, ("v", {})) is None
    path = secret_file()
    assert path.parent.parent == Path(os.environ["XDG_CONFIG_HOME"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not path.resolve().is_relative_to(cache_dir.resolve())
    text = path.read_text().strip()
    assert len(text) == 64 and not list(path.parent.glob(".cache-secret-*"))
    for shown in (repr(cache), cache.secret_source, repr(resolve(None, cache_dir))):
        assert text not in shown
    assert str(path) in cache.secret_source

    # a secret file others may read is refused: the disk is not used, and the note says why
    path.chmod(0o644)
    note = StepCache(directory=cache_dir).put(OTHER_KEY, ("v", {}))
    assert note is not None and "other users may read or write" in note
    assert StepCache(directory=cache_dir).get(KEY) is MISS
    path.chmod(0o600)
    assert StepCache(directory=cache_dir).get(KEY) == ("v", {})


def test_a_cache_directory_that_holds_the_secret_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    cache = StepCache(directory=tmp_path)  # whoever reads the cache directory would read the secret
    note = cache.put(KEY, ("v", {}))
    assert note is not None and "inside the cache directory" in note
    assert not list(tmp_path.rglob(f"*{SUFFIX}")) and cache.get(KEY) == ("v", {})  # memory still works


def test_concurrent_first_uses_agree_on_one_secret(tmp_path: Path) -> None:
    script = "import hashlib, sys; from pathlib import Path; from flowmagic.engine.cache_secret import resolve; "
    script += "print(hashlib.sha256(resolve(None, Path(sys.argv[1])).value).hexdigest())"
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for _ in range(4)
    ]
    digests = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(digests) == 1 and len(next(iter(digests))) == 64


def test_caches_with_the_same_secret_share_entries_and_others_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = StepCache(directory=tmp_path, secret=TEAM)
    assert team.put(KEY, ("shared", {})) is None
    assert StepCache(directory=tmp_path, secret=TEAM).get(KEY) == ("shared", {})
    assert StepCache(directory=tmp_path, secret=TEAM + "!").get(KEY) is MISS
    assert StepCache(directory=tmp_path).get(KEY) is MISS  # the per-user secret is another one
    monkeypatch.setenv(ENV, TEAM)
    assert StepCache(directory=tmp_path).get(KEY) == ("shared", {})  # the same secret, from the environment
    assert StepCache(directory=tmp_path).secret_source == ENV
    monkeypatch.delenv(ENV)
    mine = StepCache(directory=tmp_path)
    assert mine.put(OTHER_KEY, ("mine", {})) is None
    assert StepCache(directory=tmp_path).get(OTHER_KEY) == ("mine", {})  # the user's kernels share
    assert StepCache(directory=tmp_path, secret=TEAM).get(OTHER_KEY) is MISS
    with pytest.raises(ValueError, match="at least 16"):
        StepCache(secret="short")
    assert TEAM not in repr(team) and TEAM not in repr(Secret(TEAM, "test"))


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX modes")
def test_a_team_secret_writes_files_the_directory_lets_the_team_read(tmp_path: Path) -> None:
    tmp_path.chmod(0o750)
    assert StepCache(directory=tmp_path, secret=TEAM).put(KEY, ("v", {})) is None
    assert stat.S_IMODE(entry(tmp_path, KEY).stat().st_mode) == 0o640
    assert StepCache(directory=tmp_path / "mine").put(KEY, ("v", {})) is None
    assert stat.S_IMODE(entry(tmp_path / "mine", KEY).stat().st_mode) == 0o600  # the per-user secret's files


def test_the_settings_set_the_secret_and_budgets_and_never_show_the_secret(
    shell: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(default_cache, "max_bytes", default_cache.max_bytes)  # put back afterwards
    monkeypatch.setattr(default_history, "max_bytes", default_history.max_bytes)
    shell.run_line_magic("config", f"FlowMagics.cache_secret = {TEAM!r}")
    shell.run_line_magic("flow", "config cache_memory_mb=64 history_memory_mb=32")
    shell.run_line_magic("config", "FlowMagics")
    out = capsys.readouterr().out
    assert TEAM not in out and "<hidden>" in out
    assert "FlowMagics.cache_secret (checks the files in cache_dir; never shown)" in out
    assert "of 64.0 MB" in out and "of 32.0 MB" in out
    assert default_cache.max_bytes == 64 * 2**20 and default_history.max_bytes == 32 * 2**20
    assert default_cache.secret_source == "FlowMagics.cache_secret"
    shell.run_line_magic("config", "FlowMagics.cache_secret = 'short'")  # refused: IPython logs why
    assert default_cache.secret_source == "FlowMagics.cache_secret"
    with pytest.raises(UsageError, match="at least 16") as refused:
        shell.run_line_magic("flow", "config cache_secret=nearly-right")
    assert "nearly-right" not in str(refused.value)
    shell.run_line_magic("config", "FlowMagics.cache_secret = ''")
    assert default_cache.secret_source.startswith("per user")


# -- memory budgets ----------------------------------------------------------------------------

MB = 2**20


def alive(refs: list[weakref.ref[Blob]]) -> list[int]:
    gc.collect()
    return [i for i, ref in enumerate(refs) if ref() is not None]


def test_the_cache_keeps_values_within_its_byte_budget() -> None:
    cache = StepCache(max_bytes=120 * MB)
    refs: list[weakref.ref[Blob]] = []
    for i in range(12):
        blob = Blob(50 * MB)
        refs.append(weakref.ref(blob))
        assert cache.put(f"{i:02d}" + "k" * 30, (blob, {})) is None
        del blob
        assert cache.bytes <= cache.max_bytes
    assert alive(refs) == [10, 11] and len(cache) == 2
    assert cache.get("00" + "k" * 30) is MISS
    cache.max_bytes = 60 * MB  # a smaller budget evicts at once
    assert alive(refs) == [11]
    note = cache.put("zz" + "k" * 30, (Blob(70 * MB), {}))  # alone over the budget: not kept at all
    assert note is not None and note.startswith("not cached: about 70 MB")
    assert cache.get("zz" + "k" * 30) is MISS and alive(refs) == [11]
    cache.clear()
    assert alive(refs) == [] and cache.bytes == 0


def test_runs_of_fifty_megabytes_do_not_all_stay_resident(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(default_cache, "max_bytes", 120 * MB)
    monkeypatch.setattr(default_history, "max_bytes", 60 * MB)
    refs: list[weakref.ref[Blob]] = []

    def make(i: int) -> Blob:
        blob = Blob(50 * MB)
        refs.append(weakref.ref(blob))
        return blob

    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        flow = Flow.from_source("@cache\nblob = make(i)\nsize = len(blob.data)", name="big", namespace={"make": make})
        for i in range(12):
            run = run_blocking(flow.execution({"i": i}))
            assert run.status == "succeeded" and run["size"] == 50 * MB
            note = run.steps["blob"].cache_note or ""
            assert not note.startswith("not cached"), note  # the cache holds it (as far as its budget goes)
        del run
        kept = alive(refs)
        held = tracemalloc.get_traced_memory()[0] - start
        # the cache's two newest, which are also the history's latest run and the one before it
        assert kept == [10, 11], kept
        assert held < 3 * 50 * MB, f"{held / MB:.0f} MB held"
        assert default_cache.bytes <= default_cache.max_bytes
        assert [e.number for e in default_history.entries("big")] == [11, 12]
        default_cache.clear()
        assert alive(refs) == [10, 11]  # the history still holds them
        default_history.clear()
        assert alive(refs) == [11]  # the flow object holds its last run
        del flow
        assert alive(refs) == []
        assert tracemalloc.get_traced_memory()[0] - start < 5 * MB
    finally:
        tracemalloc.stop()


def test_history_drops_oldest_runs_across_flows_but_keeps_each_flows_latest() -> None:
    history = History(max_bytes=100 * MB)
    refs: list[weakref.ref[Blob]] = []

    class FakeRun:  # what the history measures: the outputs of a run that is over
        def __init__(self) -> None:
            blob = Blob(30 * MB)
            refs.append(weakref.ref(blob))
            self.outputs = {"blob": blob}
            self.status = "succeeded"

    for name in ("a", "b", "a", "c"):
        history.add(name, FakeRun())  # type: ignore[arg-type]
    assert alive(refs) == [1, 2, 3]  # 120 MB: the oldest, a's first run, went
    history.add("a", FakeRun())  # type: ignore[arg-type]
    # b's only run is older than a's second, but it is b's latest: a's second goes instead
    assert [e.number for e in history.entries("a")] == [3] and [e.number for e in history.entries("b")] == [1]
    assert alive(refs) == [1, 3, 4]
    history.add("b", FakeRun())  # type: ignore[arg-type]
    assert alive(refs) == [3, 4, 5] and history.bytes <= 100 * MB
    history.max_bytes = 0
    assert alive(refs) == [3, 4, 5]  # the latest of each flow stays
    history.add("c", FakeRun())  # type: ignore[arg-type]
    assert alive(refs) == [4, 5, 6]
    history.clear()
    assert alive(refs) == []


def test_size_estimates_are_cheap_and_close() -> None:
    words = [f"word number {i}" for i in range(100_000)]
    true = sys.getsizeof(words) + sum(sys.getsizeof(w) for w in words)
    assert 0.8 * true < sizes.size_of(words) < 1.25 * true
    assert sizes.size_of({"blob": Blob(10 * MB)}) >= 10 * MB
    assert sizes.size_of(memoryview(bytes(5 * MB))) == 5 * MB
    looped: list[Any] = [1]
    looped.append(looped)
    assert sizes.size_of(looped) > 0

    calls = 0
    real = sys.getsizeof

    def counting(value: Any, *default: Any) -> int:
        nonlocal calls
        calls += 1
        return real(value, *default)

    huge = [[i, str(i), {"k": (i,)}] for i in range(200_000)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "getsizeof", counting)
        estimate = sizes.size_of(huge)
    assert calls <= sizes.VISITS  # never a walk of all 200,000 rows
    assert estimate > 200_000 * 100


def test_a_thread_safe_budget_under_concurrent_puts() -> None:
    cache = StepCache(max_bytes=10 * MB)

    def writer(n: int) -> None:
        for i in range(200):
            cache.put(f"{n}{i:04d}" + "k" * 20, (bytes(100_000), {}))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.bytes <= cache.max_bytes
    assert cache.bytes == sum(sizes.size_of(cache.get(k)) for k in list(cache._memory))
