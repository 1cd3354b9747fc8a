"""How a ``schema=`` answer is asked for, on servers that support different things.

Three ways, best first:

- ``json_schema``: OpenAI's structured outputs (``response_format`` of type ``json_schema``);
- ``json_object``: JSON mode with the schema beside it (llama.cpp's server constrains its
  answer to that schema; other servers at least answer JSON);
- ``prompt``: plain text, the schema in the system message.

Whichever way, the answer is validated against the schema, so a server's support only decides
how likely the first answer is to fit. A server that refuses a way with an error about the
format (an error status whose message names ``response_format``, ``json_schema`` or
``json_object``) is asked the next way at once; the provider remembers, per model, the way that
worked, so a refusal costs one request, once. A request in a way not yet known to work goes out
without the SDK's own retries (a refusal is not transient, and retrying it only makes the user
wait); an error that is not about the format is then sent once more with them.
"""

from __future__ import annotations

import json
import re
from typing import Any

WAYS = ("json_schema", "json_object", "prompt")

_FORMAT_WORDS = re.compile(r"response_format|json_schema|json_object|response format", re.IGNORECASE)


def schema_name(schema: type[Any]) -> str:
    """The schema's name as the API accepts it (``^[a-zA-Z0-9_-]{1,64}$``)."""
    return (re.sub(r"[^A-Za-z0-9_-]", "_", schema.__name__) or "Answer")[:64]


def shaped(params: dict[str, Any], way: str, schema: type[Any]) -> dict[str, Any]:
    """``params`` (chat completion arguments) asking for a ``schema`` answer in ``way``."""
    body = schema.model_json_schema()
    if way == "json_schema":
        return {
            **params,
            "response_format": {"type": "json_schema", "json_schema": {"name": schema_name(schema), "schema": body}},
        }
    if way == "json_object":
        return {**params, "response_format": {"type": "json_object", "schema": body}}
    ask = (
        "Answer with one JSON object and nothing else (no prose, no code fence) that is valid "
        f"against this JSON schema:\n{json.dumps(body)}"
    )
    messages = [dict(m) for m in params["messages"]]
    if messages[0]["role"] == "system":
        messages[0]["content"] = f"{messages[0]['content']}\n\n{ask}"
    else:
        messages.insert(0, {"role": "system", "content": ask})
    return {**params, "messages": messages}


def refuses_format(status: int | None, message: str) -> bool:
    """Whether an error status says the server does not support the requested response format.

    >>> refuses_format(500, "response_format type must be one of 'text' or 'json_object', but got: json_schema")
    True
    >>> refuses_format(500, "simulated failure"), refuses_format(None, "json_schema")
    (False, False)
    """
    return status is not None and 400 <= status < 600 and status != 429 and bool(_FORMAT_WORDS.search(message))


def transient(status: int | None) -> bool:
    """Whether the SDK would have retried an error with this status (no status: a dropped connection)."""
    return status is None or status in (408, 409, 429) or status >= 500


def ways_from(learned: str | None) -> tuple[str, ...]:
    """The ways to try, in order, for a model whose known way is ``learned`` (None: not known yet)."""
    return WAYS[WAYS.index(learned) :] if learned in WAYS else WAYS


__all__ = ["WAYS", "refuses_format", "schema_name", "shaped", "transient", "ways_from"]
