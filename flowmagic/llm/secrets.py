"""The secrets in force, and text and URLs cleaned of them before anyone sees them.

The secrets in force are the API key in ``OPENAI_API_KEY`` and the URL secrets
of ``OPENAI_BASE_URL`` (read when needed, so a changed environment counts at
once), and the same of every live provider that called :func:`hold`. A URL's
secrets are the password of its userinfo (or the whole userinfo when it has no
password: a token, by convention), every query value, whatever its name
(``api-key``, ``sig``, ``api-version``...: the names stay, the values go), and
its fragment.

:func:`redact` cleans any text, replacing with ``***``:

- every secret, and any run of :data:`RUN` (8) or more characters in a row of a
  secret: a server that echoes a key less its last character, or split in two
  across a sentence, leaks no run of 8 of it. A secret shorter than :data:`RUN`
  is replaced where it appears whole; one shorter than :data:`MIN_SECRET` is
  not looked for in free text (it would blank ordinary words), only in URLs;
- the value of an ``Authorization:`` (``Proxy-Authorization``, ``api-key``,
  ``x-api-key``) header, and the token after ``Bearer``;
- in a URL: the userinfo password, and for the configured servers' URLs the
  query values and fragment (other URLs in an answer are left alone).

Why 8: a run that long of a random key (about 48 bits in base 62) does not turn
up in ordinary text, and fragments of at most 7 characters leave a 40-character
key about 200 bits short. A shorter run (6) would also catch smaller pieces, but
6-character runs of human-chosen passwords and of query values such as dates are
everyday words and numbers, and every false match blanks part of an answer.

Cost: linear in the text. A run of :data:`RUN` characters always covers one of
the :data:`HALF`-character pieces that start at a multiple of :data:`HALF`, so
only those (one in four) are looked up in a set of the secrets' pieces, and only
around a hit are the :data:`RUN`-character windows checked: about ``n / 4`` set
lookups for a text of ``n`` characters, whatever the number of secrets. Nothing
here imports a vendor SDK.
"""

from __future__ import annotations

import base64
import functools
import itertools
import os
import re
import weakref
from urllib.parse import unquote, urlsplit, urlunsplit

RUN = 8  # the shortest run of a secret's characters that is redacted wherever it appears
HALF = RUN // 2  # the sampling step: every RUN-character window covers an aligned HALF-piece
MIN_SECRET = 4  # shorter secrets are redacted in URLs only
MARK = "***"
URL_CHARS = 1024  # the longest URL read as one (longer ones: their secrets still go)
#: How far back a streamed answer's new text is checked (see StreamRedactor): longer than any match.
TAIL = URL_CHARS + 64

_URL_RE = re.compile(rf"[A-Za-z][A-Za-z0-9+.-]{{0,15}}://[^\s'\"<>\\`]{{1,{URL_CHARS}}}")
_HEADER_RE = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key|api-key)"  # the header's name...
    r"([\"']?\s{0,4}[:=]\s{0,4}[\"']?)"  # ...its separator, as in headers, JSON, repr and queries...
    r"((?:bearer|basic|token)\s{1,4})?"  # ...an optional scheme, kept...
    r"[^\s'\",;&]+"  # ...and the value, replaced
)
# A token has a digit or a symbol in its first 65 characters: "the bearer instrument" is prose.
_BEARER_RE = re.compile(r"(?i)\b(bearer\s{1,4})(?=[A-Za-z]{0,64}[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}")

# (secrets, hosts) of live owners. No lock: an owner's finalizer may run in the middle of any
# allocation, also one made while a lock is held, so only single, atomic dict operations are used.
_held: dict[int, tuple[frozenset[str], frozenset[str]]] = {}
_tickets = itertools.count()


def url_secrets(url: str) -> tuple[frozenset[str], str | None]:
    """The secrets written in ``url`` (userinfo password, query values, fragment) and its host.

    Each secret is taken as written and percent-decoded, since a server may echo
    either; a user and password also as the Basic auth token the HTTP client
    makes of them, which a server quoting its headers would echo.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return frozenset(), None
    found: set[str] = set()
    userinfo, at, host = parts.netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        found.add(password if colon else user)
        basic = f"{unquote(user)}:{unquote(password)}" if colon else f"{unquote(user)}:"
        found.add(base64.b64encode(basic.encode()).decode())
    for part in parts.query.split("&"):
        name, eq, value = part.partition("=")
        found.add(value if eq else name)  # a bare ?TOKEN is a value too
    found.add(parts.fragment)
    found |= {unquote(s.replace("+", " ")) for s in found} | {unquote(s) for s in found}
    return frozenset(s for s in found if s), host.lower() or None


def hold(owner: object, *, api_key: str | None = None, base_url: str | None = None) -> None:
    """Count ``api_key`` and ``base_url``'s secrets as in force while ``owner`` lives."""
    secrets, host = url_secrets(base_url) if base_url else (frozenset(), None)
    ticket = next(_tickets)
    _held[ticket] = (secrets | {api_key} if api_key else secrets, frozenset({host}) if host else frozenset())
    weakref.finalize(owner, _held.pop, ticket, None)


def in_force() -> tuple[frozenset[str], frozenset[str]]:
    """The secrets in force and the configured servers' hosts (``host:port``, lower case)."""
    secrets: set[str] = set()
    hosts: set[str] = set()
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if key:
        secrets.add(key)
    url = os.environ.get("OPENAI_BASE_URL", "").strip()
    if url:
        found, host = url_secrets(url)
        secrets |= found
        if host:
            hosts.add(host)
    for held, held_hosts in _held.copy().values():
        secrets |= held
        hosts |= held_hosts
    return frozenset(secrets), frozenset(hosts)


def redact(text: str) -> str:
    """``text`` with the secrets in force, header values and URL secrets replaced (see the module)."""
    if not text:
        return text
    return _redactor(*in_force())(text)


def safe_url(url: str) -> str:
    """``url`` as it may be shown: userinfo password (or password-less userinfo), query values
    and fragment replaced with ``***``; names and the rest stay.

    >>> safe_url("http://me:pw@host:8000/v1?api-key=sk-123&mode=")
    'http://me:***@host:8000/v1?api-key=***&mode='
    """
    try:
        return _mask_url(url.strip(), query=True)
    except ValueError:  # not a URL we can take apart: show nothing of it
        return MARK


class StreamRedactor:
    """Redacts the text of an answer as it streams in, at a cost linear in the answer.

    Each call gets the whole text so far (every call's a prefix of the next).
    While none of it needs redacting, only the part that could complete a match
    (the new text and :data:`TAIL` characters before it: every match is shorter)
    is checked. Once anything needs redacting, the whole text is redacted each
    time, which costs more but only happens when a server echoes a secret.
    """

    def __init__(self) -> None:
        self._clean = 0  # text[:_clean] is known to hold nothing to redact

    def __call__(self, text: str) -> str:
        start = max(0, self._clean - TAIL)
        if self._clean > len(text) or redact(text[start:]) != text[start:]:
            self._clean = 0
            return redact(text)
        self._clean = len(text)
        return text


def _mask_url(url: str, *, query: bool) -> str:
    """``url`` with its userinfo password masked, and its query values and fragment when ``query``."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        parts = parts._replace(netloc=f"{user}:{MARK}@{host}" if colon else f"{MARK}@{host}")
    if query:
        parts = parts._replace(query=_mask_query(parts.query), fragment=MARK if parts.fragment else "")
    return urlunsplit(parts)


def _mask_query(query: str) -> str:
    masked = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        masked.append(f"{name}={MARK if value else ''}" if eq else (MARK if part else part))
    return "&".join(masked)


@functools.lru_cache(maxsize=16)
def _redactor(secrets: frozenset[str], hosts: frozenset[str]) -> _Redactor:
    return _Redactor(secrets, hosts)


class _Redactor:
    """Redaction for one set of secrets and hosts, its lookup tables built once."""

    def __init__(self, secrets: frozenset[str], hosts: frozenset[str]) -> None:
        long = [s for s in secrets if len(s) >= RUN]
        self.runs = {s[i : i + RUN] for s in long for i in range(len(s) - RUN + 1)}
        self.pieces = {s[i : i + HALF] for s in long for i in range(len(s) - HALF + 1)}
        self.short = [s for s in secrets if MIN_SECRET <= len(s) < RUN]
        self.hosts = hosts

    def __call__(self, text: str) -> str:
        if "://" in text:
            text = _URL_RE.sub(self._url, text)
        text = _HEADER_RE.sub(lambda m: f"{m[1]}{m[2]}{m[3] or ''}{MARK}", text)
        text = _BEARER_RE.sub(lambda m: f"{m[1]}{MARK}", text)
        spans = self._spans(text)
        if not spans:
            return text
        pieces, end = [], 0
        for start, stop in spans:
            pieces += [text[end:start], MARK]
            end = stop
        pieces.append(text[end:])
        return "".join(pieces)

    def _url(self, match: re.Match[str]) -> str:
        url = match[0]
        try:
            host = urlsplit(url).netloc.rpartition("@")[2].lower()
            return _mask_url(url, query=host in self.hosts)
        except ValueError:  # not a URL after all: the secrets in it still go, below
            return url

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """The stretches of ``text`` to replace, in order, overlapping ones merged."""
        found: list[tuple[int, int]] = []
        runs, pieces = self.runs, self.pieces
        last = len(text) - RUN  # the last place a run can start
        if runs and last >= 0:
            # a run at i covers the aligned piece at the multiple of HALF in [i, i + HALF]
            for j in range(0, last + HALF + 1, HALF):
                if text[j : j + HALF] in pieces:
                    starts = range(max(0, j - HALF), min(j, last) + 1)
                    found += [(i, i + RUN) for i in starts if text[i : i + RUN] in runs]
        for secret in self.short:
            at = text.find(secret)
            while at >= 0:
                found.append((at, at + len(secret)))
                at = text.find(secret, at + 1)
        merged: list[tuple[int, int]] = []
        for start, stop in sorted(found):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(stop, merged[-1][1]))
            else:
                merged.append((start, stop))
        return merged
