"""The cache secret: the key that authenticates every file of an on-disk step cache.

Where it comes from, first found wins:

1. one given to the cache (``StepCache(secret=...)``, ``%config FlowMagics.cache_secret``);
2. the ``FLOWMAGIC_CACHE_SECRET`` environment variable;
3. the per-user file ``flowmagic/cache-secret`` in the user's configuration directory
   (``$XDG_CONFIG_HOME``, else ``~/.config``; ``%APPDATA%`` on Windows), made on first
   use with 32 random bytes, readable by its owner only.

So every kernel of one user shares entries, and a team shares them by giving each
member the same secret. The file is refused if it lies inside the cache directory
(whoever can read that directory could forge entries) or if other users may read
or write it. A secret is never shown: :class:`Secret`'s repr names only its source.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import stat
import sys
import tempfile
from pathlib import Path

ENV = "FLOWMAGIC_CACHE_SECRET"
#: Shorter secrets are refused: a team secret must not be guessable.
MIN_LENGTH = 16


class NoSecret(Exception):
    """Why there is no usable secret, so the disk cache is not used (values stay in memory)."""


class Secret:
    """A secret's bytes and where they came from; printing it never shows the bytes.

    ``shared``: whether others may hold it too (one given or from the environment),
    as opposed to the per-user file's.
    """

    __slots__ = ("shared", "source", "value")

    def __init__(self, value: str | bytes, source: str, shared: bool = True) -> None:
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        if len(data.strip()) < MIN_LENGTH:
            raise ValueError(f"a cache secret needs at least {MIN_LENGTH} characters ({source})")
        self.value = data.strip()
        self.source = source
        self.shared = shared

    def __repr__(self) -> str:
        return f"Secret(from {self.source}, never shown)"


def secret_file() -> Path:
    """Where the per-user secret lives (it need not exist yet)."""
    home = os.environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(home):  # the XDG spec says a relative path is to be ignored
        appdata = os.environ.get("APPDATA", "")
        home = appdata if sys.platform == "win32" and appdata else str(Path.home() / ".config")
    return Path(home) / "flowmagic" / "cache-secret"


def describe(given: Secret | None) -> str:
    """Where the secret in use comes from, for ``%flow config``; never the secret itself."""
    if given is not None:
        return given.source
    if os.environ.get(ENV):
        return ENV
    return f"per user, in {secret_file()}"


def resolve(given: Secret | None, directory: Path) -> Secret:
    """The secret for a cache in ``directory``, or raise :class:`NoSecret`."""
    if given is not None:
        return given
    env = os.environ.get(ENV)
    if env:
        try:
            return Secret(env, ENV)
        except ValueError as exc:
            raise NoSecret(str(exc)) from None
    path = secret_file()
    if _inside(str(path), str(directory)):
        raise NoSecret(f"the secret file {path} is inside the cache directory; choose another cache_dir")
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise NoSecret(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        _create(path)
        return _read(path)
    except OSError as exc:
        raise NoSecret(f"cannot make {path}: {exc.strerror or exc}") from None


def _read(path: Path) -> Secret:
    # non-blocking, so that a pipe put in its place fails the checks below instead of hanging
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)  # of the file opened, not of whatever the name points to later
        if not stat.S_ISREG(info.st_mode):
            raise NoSecret(f"{path} is not a regular file")
        if hasattr(os, "getuid"):
            if info.st_uid != os.getuid():
                raise NoSecret(f"{path} is not a file of yours")
            if info.st_mode & 0o077:
                mode = oct(info.st_mode & 0o777)
                raise NoSecret(f"other users may read or write {path} (mode {mode}); run chmod 600 on it")
        data = file.read(4096)
    try:
        return Secret(data, f"per user, in {path}", shared=False)
    except ValueError:
        raise NoSecret(f"{path} holds fewer than {MIN_LENGTH} characters") from None


def _create(path: Path) -> None:
    """Write a new random secret, readable by its owner only, unless another process just did."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".cache-secret-")  # made with mode 0600
    try:
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            # a link appears whole and never replaces a secret another kernel made meanwhile
            os.link(temp, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: create-exclusive, then write
            _create_in_place(path, temp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)


def _create_in_place(path: Path, temp: str) -> None:
    with open(temp, "rb") as source:
        data = source.read()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as file:
        file.write(data)


@functools.lru_cache(maxsize=64)  # resolving links costs more than the rest of a cache read
def _inside(path: str, directory: str) -> bool:
    try:
        Path(path).resolve().relative_to(Path(directory).resolve())
    except ValueError:
        return False
    return True
