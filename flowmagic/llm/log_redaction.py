"""A logging filter that redacts secrets from the records of the HTTP stack's loggers and flowmagic's.

At DEBUG the SDK and its HTTP clients log request lines with the full URL (a key
in the base URL's query string with it) and server messages. A filter on a
logger sees only the records made on that very logger, not those its children
pass up, so :func:`install` puts one on every logger of those packages that
exists; a provider calls it when it makes its client, after the SDK and its
transport are imported and their loggers made.
"""

from __future__ import annotations

import logging

from flowmagic.llm.secrets import redact

#: The packages whose loggers are filtered: the SDK, its HTTP clients, and flowmagic itself.
PACKAGES = ("openai", "httpx", "httpx2", "httpcore", "httpcore2", "aiohttp", "flowmagic")


class RedactingFilter(logging.Filter):
    """Redacts a record's message (formatted with its arguments), traceback and stack; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit: the handler would print them raw, so they go
            message = f"{record.msg} (arguments hidden: they did not fit the message)"
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:  # formatted now so the text can be redacted
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            record.exc_info = None  # else a formatter without the cached text would format it again
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


FILTER = RedactingFilter()


def install() -> None:
    """Put :data:`FILTER` on every existing logger of :data:`PACKAGES` (once each)."""
    names = set(PACKAGES) | {n for n in list(logging.Logger.manager.loggerDict) if n.split(".")[0] in PACKAGES}
    for name in sorted(names):
        logger = logging.getLogger(name)
        if FILTER not in logger.filters:
            logger.addFilter(FILTER)
