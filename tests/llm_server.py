"""A local OpenAI-compatible chat completions server for tests (stdlib only).

Serves ``POST /v1/chat/completions`` (and ``/chat/completions``) on 127.0.0.1
from a daemon thread, records every request, and can be told to misbehave.
A ``"stream": true`` request is answered with server-sent events in OpenAI's
format: the answer a word or so per chunk, a chunk with the finish reason, a
usage chunk (no choices) when ``stream_options.include_usage`` asks for one,
then ``data: [DONE]``.

Example::

    with LLMServer(answer=lambda body: "Hello!") as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="test")
        ...
        server.fail_next(status=429, retry_after=0.1)  # the next request is rate limited
        server.fail_next(drop=True, after_chunks=2)    # the next stream breaks after two chunks
        server.fail_next(slow=0.5, status=200, match="[a]")  # the next prompt starting "[a]" waits 0.5 s
        server.usage_fields = {"prompt_tokens": "many"}  # usage as a careless (or hostile) server sends it
        assert server.requests[0].body["model"] == "gpt-4o-mini"

As a pytest fixture::

    server = pytest.fixture(llm_server_fixture, name="server")
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Answer = Callable[[dict[str, Any]], str]

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")


@dataclass
class RecordedRequest:
    """One request the server received (``body`` is None when it was not JSON).

    ``path`` is without the query string, which is in ``query``. ``at`` is when
    its body had arrived (``time.monotonic()``): gaps between requests show how
    long a client waited before retrying. ``port`` is the client's port, one per
    connection: the same port again is a reused connection.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    at: float = 0.0
    port: int = 0
    query: dict[str, str] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The last user message ("" when there is none)."""
        return last_prompt(self.body)


@dataclass
class Fault:
    """How to spoil one response: an error status, a malformed body, a dropped connection, a wait.

    ``after_chunks`` (streamed requests only): stream that many answer chunks
    first, then spoil the rest of the stream. ``slow``: wait that many seconds
    first (then answer normally when ``status`` is 200). ``match``: strike only
    a request whose last user message starts with it.
    """

    status: int = 500
    retry_after: float | None = None
    malformed: bool = False
    drop: bool = False
    message: str = "simulated failure"
    headers: dict[str, str] = field(default_factory=dict)
    after_chunks: int | None = None
    slow: float | None = None
    match: str | None = None
    cut: bool = False

    @property
    def harmless(self) -> bool:
        """Only a wait: the answer itself is the normal one."""
        return self.status == 200 and not (self.drop or self.malformed or self.cut)


def last_prompt(body: dict[str, Any] | None) -> str:
    """The content of the last user message of a chat request body ("" when there is none)."""
    user = [m for m in (body or {}).get("messages", []) if m.get("role") == "user"]
    return str(user[-1].get("content", "")) if user else ""


def _words(body: dict[str, Any]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))


def example_for(schema: dict[str, Any], defs: dict[str, Any] | None = None, name: str = "value") -> Any:
    """A simple value valid for a JSON schema (objects, arrays, scalars, enums, refs)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return example_for(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return example_for(options[0], defs, name)
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {key: example_for(sub, defs, key) for key, sub in props.items()}
    if kind == "array":
        count = max(2, schema.get("minItems", 0))
        return [example_for(schema.get("items", {}), defs, name) for _ in range(count)]
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), min(42, int(schema.get("maximum", 42))))
    if kind == "number":
        return max(float(schema.get("minimum", 0.0)), min(4.5, float(schema.get("maximum", 4.5))))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return f"example {name}"


def split_answer(content: str) -> list[str]:
    """``content`` in word-sized pieces (each word with the space after it); they join back to it."""
    return [piece for piece in re.split(r"(?<=\s)(?=\S)", content) if piece]


def default_answer(body: dict[str, Any]) -> str:
    """JSON for a json_schema ``response_format``, else an echo of the last user message."""
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return json.dumps(example_for(response_format["json_schema"]["schema"]))
    user = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return f"echo: {user[-1]['content']}" if user else "echo:"


class LLMServer:
    """An OpenAI-compatible test server; see the module docstring."""

    def __init__(self, answer: Answer = default_answer, *, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.usage: tuple[int, int] | None = None  # (prompt, completion) tokens to report
        self.usage_fields: dict[str, Any] = {}  # sent in usage as they are, over the counts: any JSON value
        self.head_fields: dict[str, Any] = {}  # sent over the answer's id, model, created: any JSON value
        self.stream_usage = True  # False: ignore stream_options.include_usage, like some local servers
        # the response_format types it takes; another is refused with a 500, as llama.cpp's server does
        self.formats: tuple[str, ...] = ("text", "json_object", "json_schema")
        self.chunk_delay = 0.0  # seconds between two chunks of a stream
        self.cut_off = 0  # streams whose client went away before the end (the server stopped writing)
        self.serial = False  # True: one request answered at a time, the others wait (as llama.cpp's server)
        self._serial_lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()  # wakes handlers that wait (delay, slow faults)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- configuration -------------------------------------------------------------

    def fail_next(
        self,
        status: int = 500,
        *,
        retry_after: float | None = None,
        malformed: bool = False,
        drop: bool = False,
        message: str = "simulated failure",
        times: int = 1,
        after_chunks: int | None = None,
        slow: float | None = None,
        match: str | None = None,
        headers: dict[str, str] | None = None,
        cut: bool = False,
    ) -> None:
        """Queue a fault for the next ``times`` chat requests.

        ``status`` with an OpenAI-shaped error body (and a ``Retry-After`` header
        when ``retry_after`` is given); ``malformed=True``: a 200 whose body is not
        JSON; ``drop=True``: close the connection without any response, before
        any byte of it. ``slow=S``: wait S seconds first (``stop()`` cuts the wait
        short); with ``status=200`` the answer after the wait is the normal one.
        ``match``: the fault waits for a request whose last user message starts
        with it (requests that do not match pass it by), so concurrent steps
        can each get their own faults. ``headers`` go with an error status's response
        (e.g. ``{"retry-after-ms": "50"}``).

        With ``after_chunks=N`` a streamed request gets N answer chunks first, then:
        ``drop`` closes the connection mid-stream, ``malformed`` sends an event that
        is not JSON, and otherwise an OpenAI-shaped error event carries ``message``
        (the HTTP status, 200, is already sent). A request that does not stream
        gets the fault at once, as if ``after_chunks`` were not given. ``cut=True`` (with
        ``after_chunks``): the stream ends there, well formed but with no finish reason, as
        llama.cpp's server ends a stream it interrupts for another request.
        """
        with self._lock:
            self._faults.extend(
                Fault(
                    status=status,
                    retry_after=retry_after,
                    malformed=malformed,
                    drop=drop,
                    message=message,
                    after_chunks=after_chunks,
                    slow=slow,
                    match=match,
                    headers=dict(headers or {}),
                    cut=cut,
                )
                for _ in range(times)
            )

    def requests_for(self, prefix: str) -> list[RecordedRequest]:
        """The chat requests whose last user message starts with ``prefix``, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.path in CHAT_PATHS and r.prompt.startswith(prefix)]

    @property
    def base_url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/v1"

    @property
    def address(self) -> tuple[str, int]:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path in CHAT_PATHS]

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> LLMServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._stopping.clear()
        self._httpd = _Server(("127.0.0.1", 0), handler)
        # Track handler threads so server_close() joins them: nothing outlives stop().
        self._httpd.daemon_threads = False
        self._httpd.block_on_close = True
        # A short poll interval keeps shutdown() (and so every test teardown) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name="llm-test-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # wake handlers blocked on idle keep-alive connections
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- used by the handler -------------------------------------------------------

    def _next_fault(self, body: dict[str, Any] | None) -> Fault | None:
        prompt = last_prompt(body)
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.match is None or prompt.startswith(fault.match):
                    return self._faults.pop(i)
            return None

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


def llm_server_fixture() -> Iterator[LLMServer]:
    """Generator for ``pytest.fixture``: a started server, stopped after the test."""
    with LLMServer() as server:
        yield server


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that gave up (a step's timeout, a dropped stream) is expected here, not news
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real API servers
    disable_nagle_algorithm = True  # like real servers: no 40 ms delayed-ACK stall after the head
    server_state: LLMServer

    def setup(self) -> None:
        super().setup()
        self.server_state._track(self.connection, add=True)

    def finish(self) -> None:
        self.server_state._track(self.connection, add=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_POST(self) -> None:
        state = self.server_state
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path, _, query = self.path.partition("?")
        with state._lock:
            state.requests.append(
                RecordedRequest(
                    "POST",
                    path,
                    dict(self.headers.items()),
                    body,
                    at=time.monotonic(),
                    port=self.client_address[1],
                    query=dict(urllib.parse.parse_qsl(query, keep_blank_values=True)),
                )
            )
        if path not in CHAT_PATHS:  # the message quotes the whole target, query and all, as servers do
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        with state._serial_lock if state.serial else contextlib.nullcontext():
            self._answer(state, body, path)

    def _answer(self, state: LLMServer, body: dict[str, Any] | None, path: str) -> None:
        if state.delay:
            state._stopping.wait(state.delay)
        fault = state._next_fault(body)
        if fault is not None and fault.slow:
            state._stopping.wait(fault.slow)
        if fault is not None and fault.harmless:
            fault = None
        streamed = body is not None and body.get("stream") is True
        if fault is not None and streamed and fault.after_chunks is not None:
            pass  # strikes in the middle of the stream, in _send_stream
        elif fault is not None and fault.drop:
            self.close_connection = True  # finish() closes the socket without a response
            return
        elif fault is not None and fault.malformed:
            self._send_bytes(200, b'{"id": "chatcmpl-broken", "choices": [', {})
            return
        elif fault is not None:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            headers.update(fault.headers)
            kind = "rate_limit_exceeded" if fault.status == 429 else "server_error"
            self._send_json(fault.status, {"error": {"message": fault.message, "type": kind, "code": kind}}, headers)
            return
        if body is None:
            self._send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        asked = (body.get("response_format") or {}).get("type", "text")
        if asked not in state.formats:
            taken = " or ".join(f'"{f}"' for f in state.formats)
            message = f"response_format type must be one of {taken}, but got: {asked}"
            self._send_json(500, {"error": {"code": 500, "message": message, "type": "server_error"}})
            return
        content = state.answer(body)
        prompt_tokens, completion_tokens = state.usage or (_words(body) * 4 // 3 + 1, len(content.split()) * 4 // 3 + 1)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            **state.usage_fields,
        }
        head = {
            "id": f"chatcmpl-{len(state.requests)}",
            "created": int(time.time()),
            "model": body.get("model", "unknown"),
            **state.head_fields,
        }
        if streamed:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and state.stream_usage
            self._send_stream(head, content, usage if include_usage else None, fault)
            return
        self._send_json(
            200,
            {
                **head,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
        )

    def _send_stream(
        self, head: dict[str, Any], content: str, usage: dict[str, Any] | None, fault: Fault | None
    ) -> None:
        """Stream ``content`` as chat.completion.chunk events (chunked transfer encoding).

        ``usage`` is sent in a last chunk without choices when given; ``fault`` (one
        with ``after_chunks`` set) cuts the stream short after that many pieces.
        """
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        head = {**head, "object": "chat.completion.chunk"}

        def event(data: str) -> None:
            payload = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> None:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            event(json.dumps({**head, "choices": [choice]}))

        chunk({"role": "assistant", "content": "", "refusal": None})
        try:
            for piece in split_answer(content)[: fault.after_chunks if fault is not None else None]:
                if self.server_state.chunk_delay:
                    time.sleep(self.server_state.chunk_delay)
                chunk({"content": piece})
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client went away: stop generating
            with self.server_state._lock:
                self.server_state.cut_off += 1
            self.close_connection = True
            return
        if fault is not None and fault.cut:
            pass  # no finish reason, no usage: the stream just ends
        elif fault is None:
            chunk({}, finish_reason="stop")
            if usage is not None:
                event(json.dumps({**head, "choices": [], "usage": usage}))
        elif fault.drop:
            self.close_connection = True  # finish() closes the socket in the middle of the body
            return
        elif fault.malformed:
            event('{"id": "chatcmpl-broken", "choices": [')
        else:
            kind = "rate_limit_exceeded" if fault.status == 429 else "server_error"
            event(json.dumps({"error": {"message": fault.message, "type": kind, "code": kind}}))
        event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), headers or {})

    def _send_bytes(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
