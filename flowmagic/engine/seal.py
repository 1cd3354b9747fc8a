"""The envelope of a cache file: a MAC over its key and contents, checked before anything is decoded.

A file is ``MAGIC | tag | kind | payload``:

- ``MAGIC``: ``b"flowmagic-cache-2\\n"``, the format (files of other formats are misses);
- ``tag``: 32 bytes, HMAC-SHA256 under a key derived from the cache secret, over
  ``MAGIC``, the entry's key and ``kind | payload``; the key is in it so that a
  valid file copied to another entry's name does not verify;
- ``kind``: one byte, :data:`JSON` (the plain encoding of :mod:`.stored`) or
  :data:`PICKLE` (a value JSON cannot hold);
- ``payload``: the encoded ``(value, info)`` pair.

Only someone who holds the secret can make a file that :func:`unseal` accepts, so a
pickle is only ever loaded from a file written by a holder of the secret.
"""

from __future__ import annotations

import hashlib
import hmac

MAGIC = b"flowmagic-cache-2\n"
JSON = b"j"
PICKLE = b"p"
KINDS = (JSON, PICKLE)
_TAG = hashlib.sha256().digest_size
_HEAD = len(MAGIC) + _TAG + 1


#: What a file is for: the secret derives one MAC key per purpose, so a file made for one is
#: never accepted as the other.
CACHE = b"flowmagic step cache"
HISTORY = b"flowmagic run history"


def header(secret: bytes, key: str, kind: bytes, payload: bytes, purpose: bytes = CACHE) -> bytes:
    """What goes before ``payload`` in the file of entry ``key``."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    return MAGIC + _tag(secret, key, kind, payload, purpose) + kind


def unseal(secret: bytes, key: str, data: bytes, purpose: bytes = CACHE) -> tuple[bytes, memoryview] | None:
    """The kind and payload of a file that ``secret``'s holder wrote for ``key``; None for any other file."""
    if len(data) < _HEAD or not data.startswith(MAGIC):
        return None
    view = memoryview(data)
    tag = view[len(MAGIC) : len(MAGIC) + _TAG]
    kind = bytes(view[_HEAD - 1 : _HEAD])
    payload = view[_HEAD:]
    if kind not in KINDS or not hmac.compare_digest(tag, _tag(secret, key, kind, payload, purpose)):
        return None
    return kind, payload


def _tag(secret: bytes, key: str, kind: bytes, payload: bytes | memoryview, purpose: bytes) -> bytes:
    derived = hmac.digest(secret, purpose, "sha256")  # a key of its own for each purpose
    mac = hmac.new(derived, MAGIC, "sha256")
    name = key.encode("utf-8")
    mac.update(len(name).to_bytes(4, "big") + name)
    mac.update(kind)
    mac.update(payload)
    return mac.digest()
