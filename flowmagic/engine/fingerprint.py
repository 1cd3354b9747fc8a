"""Fingerprints: a short digest of a value, equal for equal values, for the step cache.

Plain data is hashed by content (with its type, so ``1``, ``1.0`` and ``True``
differ). A function is hashed by its source (or bytecode), defaults, closure and
the globals it reads, so redefining it unchanged in a new cell keeps its
fingerprint, and editing it changes it. A list, dict or set among those globals
or its closure is the function's state (a call counter), hashed by identity. Other objects are hashed through
``pickle``; what cannot be pickled raises :class:`Unfingerprintable` with the
reason, and the step that read it is not cached.

An object reached only through a function (a client a tool closes over, say) is
hashed by identity when its content cannot be: equal within this process, never
equal to anything in another one, so an on-disk cache never confuses the two.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import inspect
import os
import pickle
import types
import weakref
from typing import Any

#: Distinguishes identity fingerprints of this process from any other's.
_PROCESS = os.urandom(8).hex()
_MAX_DEPTH = 64


class Unfingerprintable(TypeError):
    """A value whose content cannot be hashed; ``str()`` says why."""


def fingerprint(value: Any) -> str:
    """A hex digest of ``value``'s content; raise :class:`Unfingerprintable` when there is none."""
    hasher = hashlib.blake2b(digest_size=16)
    _Writer(hasher.update).value(value, 0)
    return hasher.hexdigest()


def digest(*parts: str) -> str:
    """A hex digest of some strings (already fingerprints or plain text)."""
    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part.encode()
        hasher.update(len(data).to_bytes(8, "little"))
        hasher.update(data)
    return hasher.hexdigest()


_ATOMS = (type(None), bool, int, float, complex, str, bytes, type(Ellipsis))
_STATE = (list, dict, set, bytearray)  # containers a function's globals hold as state


class _Writer:
    def __init__(self, write: Any) -> None:
        self.write = write
        self.active: set[int] = set()  # containers on the current path: a cycle is refused

    def tag(self, text: str) -> None:
        data = text.encode()
        self.write(len(data).to_bytes(4, "little") + data)

    def value(self, value: Any, depth: int, lenient: bool = False) -> None:
        kind = type(value)
        if kind in _ATOMS:
            self.tag(kind.__name__)
            self.tag(value.hex() if kind is bytes else repr(value))
            return
        if depth > _MAX_DEPTH:
            raise Unfingerprintable(f"it nests more than {_MAX_DEPTH} levels deep")
        key = id(value)
        if key in self.active:
            if isinstance(value, types.FunctionType):  # recursion through its globals
                self.tag(f"again:{value.__qualname__}")
                return
            raise Unfingerprintable(f"a {kind.__name__} that contains itself")
        self.active.add(key)
        try:
            self.compound(value, kind, depth + 1, lenient)
        except Unfingerprintable:
            if not lenient:
                raise
            self.tag("identity")
            self.tag(f"{_PROCESS}:{id(value)}")
        finally:
            self.active.discard(key)

    def compound(self, value: Any, kind: type, depth: int, lenient: bool) -> None:
        if kind in (list, tuple):
            self.tag(kind.__name__)
            self.tag(str(len(value)))
            for item in value:
                self.value(item, depth, lenient)
        elif kind is dict:
            self.tag("dict")
            self.unordered([(k, v) for k, v in value.items()], depth, lenient)
        elif kind in (set, frozenset):
            self.tag(kind.__name__)
            self.unordered([(item, None) for item in value], depth, lenient)
        elif isinstance(value, (types.FunctionType, types.MethodType)):
            self.function(value, depth)
        elif isinstance(value, types.BuiltinFunctionType):
            self.named(value)
            owner = value.__self__
            if owner is not None and not isinstance(owner, types.ModuleType):  # a bound method: whose?
                self.value(owner, depth, lenient=True)
        elif isinstance(value, type) or kind is types.ModuleType:
            self.named(value)
        elif isinstance(value, enum.Enum):
            self.named(kind)
            self.tag(value.name)
        elif hasattr(value, "__pydantic_fields__") and not isinstance(value, type):
            self.named(kind)
            self.value(dict(value), depth, lenient)
        elif dataclasses.is_dataclass(value):
            self.named(kind)
            self.value({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth, lenient)
        elif kind.__module__ == "functools" and kind.__name__ == "partial":
            self.tag("partial")
            self.value((value.func, value.args, value.keywords), depth, lenient)
        else:
            self.pickled(value, kind)

    def unordered(self, pairs: list[tuple[Any, Any]], depth: int, lenient: bool) -> None:
        """Entries hashed one by one, then written in digest order (insertion order does not matter)."""
        parts = []
        for k, v in pairs:
            hasher = hashlib.blake2b(digest_size=16)
            sub = _Writer(hasher.update)
            sub.active = self.active
            sub.value(k, depth, lenient)
            sub.value(v, depth, lenient)
            parts.append(hasher.digest())
        self.tag(str(len(parts)))
        for part in sorted(parts):
            self.write(part)

    def named(self, obj: Any) -> None:
        module = getattr(obj, "__module__", None) or getattr(obj, "__name__", "?")
        self.tag("named")
        self.tag(f"{module}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}")

    def function(self, fn: Any, depth: int) -> None:
        if isinstance(fn, types.MethodType):
            self.tag("method")
            self.value(fn.__self__, depth, lenient=True)
            fn = fn.__func__
        self.tag("function")
        self.tag(f"{fn.__module__}.{fn.__qualname__}")
        code = fn.__code__
        source = _source(fn)
        if source is not None:
            self.tag(source)
        else:  # no source (e.g. exec'd text): the bytecode, without line numbers
            self.code(code)
        self.value(fn.__defaults__, depth, lenient=True)
        self.value(fn.__kwdefaults__, depth, lenient=True)
        cells = fn.__closure__ or ()
        for cell in cells:
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell: a name not yet bound
                self.tag("empty")
                continue
            self.state_or_value(contents, depth)
        # the globals it reads, so editing a constant or a helper it calls counts as a change; a
        # list, dict or set it reads (here or in its closure) is its state (a call counter, a log):
        # the same object counts as unchanged, whatever it holds now; a new one is a change
        for name in sorted(_global_names(code)):
            if name in fn.__globals__:
                self.tag(name)
                self.state_or_value(fn.__globals__[name], depth)

    def state_or_value(self, value: Any, depth: int) -> None:
        if type(value) in _STATE:
            self.tag(f"state:{_PROCESS}:{id(value)}")
        else:
            self.value(value, depth, lenient=True)

    def code(self, code: types.CodeType) -> None:
        self.write(code.co_code)
        self.tag(repr(code.co_names))
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.code(const)
            else:
                self.tag(repr(const))

    def pickled(self, value: Any, kind: type) -> None:
        module = kind.__module__
        if module == "numpy" and hasattr(value, "tobytes"):
            self.named(kind)
            self.tag(f"{getattr(value, 'dtype', '')}{getattr(value, 'shape', '')}")
            self.write(value.tobytes())
            return
        try:
            data = pickle.dumps(value, protocol=5)
        except Exception as exc:
            raise Unfingerprintable(f"a {module}.{kind.__qualname__} cannot be pickled ({exc})") from None
        self.named(kind)
        self.write(data)


#: A function's source by its code object: the same code object always has the same source, and
#: reading it (tokenizing the file) is most of what fingerprinting a run's inputs costs.
_sources: weakref.WeakKeyDictionary[types.CodeType, str | None] = weakref.WeakKeyDictionary()


def _source(fn: types.FunctionType) -> str | None:
    code = fn.__code__
    try:
        return _sources[code]
    except KeyError:
        pass
    try:
        source: str | None = inspect.getsource(fn)
    except (OSError, TypeError):
        source = None
    _sources[code] = source
    return source


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names
