"""The step cache: step values by key (:mod:`.stepkeys` makes the keys, :mod:`.reuse` says
which steps have one).

:class:`StepCache` keeps ``(value, info)`` pairs in memory (least recently used
dropped past ``size`` entries or ``max_bytes`` of estimated size) and, with a
``directory``, also as files that survive a kernel restart. Keys are no secret
(anyone with the notebook can compute them), so a file is trusted only if it
carries a MAC under the cache secret (:mod:`.cache_secret`) over its key and
contents, checked before anything in it is decoded (:mod:`.seal`). Plain values
are stored as JSON (:mod:`.stored`); others are pickled inside that envelope, or
kept in memory only. Any file that does not verify, or holds anything but a
``(value, dict)`` pair, is a miss. Files are written to a temporary name and
renamed into place, so two kernels sharing a directory never read half a file.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import stat
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from . import seal, stored
from .cache_secret import NoSecret, Secret, describe, resolve
from .sizes import size_of

#: What the step cache keeps in memory by default. Values are the very objects steps
#: returned, so this is memory the kernel holds on to; a laptop's kernel can spare it,
#: and with a ``directory`` an evicted value is still one file read away.
MEMORY = 512 * 2**20
SUFFIX = ".entry"
_MISS = object()
_NAME = re.compile(r"[A-Za-z0-9_-]{2,200}")  # a key is a hex digest: never a path


class StepCache:
    """Step values by key, in memory and optionally on disk; safe to use from any thread.

    ``size`` and ``max_bytes`` bound what stays in memory (entries, estimated bytes).
    ``secret`` (at least 16 characters) authenticates the files in ``directory``;
    without it, ``FLOWMAGIC_CACHE_SECRET`` or the per-user secret file is used.
    """

    def __init__(
        self,
        size: int = 4096,
        directory: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int = MEMORY,
        secret: str | bytes | None = None,
    ) -> None:
        self.size = size
        self.directory = Path(directory).expanduser() if directory else None
        self._max_bytes = max_bytes
        self._secret: Secret | None = None
        self.set_secret(secret, "StepCache(secret=...)")
        self._memory: OrderedDict[str, tuple[tuple[Any, dict[str, Any]], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    # -- settings ------------------------------------------------------------------
    @property
    def max_bytes(self) -> int:
        """The estimated bytes of values kept in memory; setting it evicts at once."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        with self._lock:
            self._max_bytes = value
            self._evict()

    def set_secret(self, secret: str | bytes | None, source: str = "StepCache.set_secret") -> None:
        """Authenticate files with ``secret`` (shared by a team); None: the environment or per-user one."""
        self._secret = Secret(secret, source) if secret else None

    @property
    def secret_source(self) -> str:
        """Where the secret in use comes from (never the secret)."""
        return describe(self._secret)

    def disk_secret(self) -> Secret:
        """The secret that authenticates the files in :attr:`directory` (raises :class:`NoSecret`)."""
        assert self.directory is not None
        return resolve(self._secret, self.directory)

    @property
    def bytes(self) -> int:
        """The estimated bytes of the values in memory."""
        return self._bytes

    # -- reading and writing -------------------------------------------------------
    def get(self, key: str) -> Any:
        """The ``(value, info)`` pair stored under ``key``, or :data:`MISS`."""
        with self._lock:
            entry = self._memory.get(key)
            if entry is not None:
                self._memory.move_to_end(key)
                return entry[0]
        if self.directory is None or not _NAME.fullmatch(key):
            return _MISS
        try:
            data = read_regular(self._path(key))
            secret = self.disk_secret()
        except (OSError, NoSecret):
            return _MISS
        # the MAC first: nothing of a file the secret's holders did not write is decoded
        opened = seal.unseal(secret.value, key, data)
        if opened is None:
            return _MISS
        pair = _load(*opened)
        if pair is None:
            return _MISS
        self._remember(key, pair)
        return pair

    def put(self, key: str, pair: tuple[Any, dict[str, Any]]) -> str | None:
        """Store a ``(value, info)`` pair; return why it could not be written to disk, or None."""
        if not _is_pair(pair):
            raise TypeError("StepCache.put takes a (value, info dict) pair")
        size = size_of(pair)
        kept = self._remember(key, pair, size)
        note = None if self.directory is None else self._write(key, pair)
        if kept:
            return note
        over = f"about {size / 2**20:,.0f} MB, more than the cache keeps in memory ({self._max_bytes / 2**20:,.0f} MB)"
        if self.directory is None:
            return f"not cached: {over}"
        return None if note is None else f"not cached: {over}; and not on disk: {note.partition(': ')[2]}"

    def _write(self, key: str, pair: tuple[Any, dict[str, Any]]) -> str | None:
        assert self.directory is not None
        if not _NAME.fullmatch(key):
            return f"kept in memory only: the key {key!r} cannot name a file"
        try:
            secret = self.disk_secret()
        except NoSecret as exc:
            return f"kept in memory only: no cache secret ({exc})"
        try:
            kind, payload = seal.JSON, stored.encode(pair)
        except stored.NotPlain:
            try:
                kind, payload = seal.PICKLE, pickle.dumps(pair, protocol=5)
            except Exception as exc:
                return f"kept in memory only: {type(pair[0]).__name__} cannot be pickled ({exc})"
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600
            with os.fdopen(fd, "wb") as file:
                if secret.shared and hasattr(os, "fchmod"):
                    # a team's secret: its members may read what the directory lets them
                    os.fchmod(file.fileno(), stat.S_IMODE(os.stat(self.directory).st_mode) & 0o666)
                file.write(seal.header(secret.value, key, kind, payload))
                file.write(payload)
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
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._memory)

    def _remember(self, key: str, pair: tuple[Any, dict[str, Any]], size: int | None = None) -> bool:
        """Keep ``pair`` in memory, evicting the least recently used; False if it alone is over budget."""
        if size is None:
            size = size_of(pair)
        with self._lock:
            old = self._memory.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self._max_bytes:
                return False
            self._memory[key] = (pair, size)
            self._bytes += size
            self._evict()
        return True

    def _evict(self) -> None:
        while self._memory and (len(self._memory) > self.size or self._bytes > self._max_bytes):
            _, (_, size) = self._memory.popitem(last=False)
            self._bytes -= size

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}{SUFFIX}"

    def __repr__(self) -> str:
        where = f", directory={str(self.directory)!r}" if self.directory else ""
        held = f"{self._bytes / 2**20:,.1f} of {self._max_bytes / 2**20:,.0f} MB"
        return f"StepCache({len(self)} values, {held}{where})"


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """A regular file's bytes; a pipe or device planted under an entry's name raises at once, never
    blocks; a file over ``limit`` bytes raises before it is read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        if limit is not None and info.st_size > limit:
            raise OSError(f"{path} is over {limit} bytes")
        return file.read()


def _is_pair(pair: Any) -> bool:
    """The only shape the executor accepts: ``(value, info)`` with ``info`` a dict of str keys."""
    return type(pair) is tuple and len(pair) == 2 and type(pair[1]) is dict and all(type(k) is str for k in pair[1])


def _load(kind: bytes, payload: memoryview) -> tuple[Any, dict[str, Any]] | None:
    """The pair in a verified file; None if it is not one (a model class not imported, say)."""
    try:
        pair = stored.decode(payload) if kind == seal.JSON else pickle.loads(payload)
    except Exception:
        return None
    return pair if _is_pair(pair) else None


MISS = _MISS

#: The cache every run uses unless told otherwise (``%config FlowMagics.cache_dir`` sets its directory).
default_cache = StepCache()
