"""A local OpenAI-compatible chat server that answers every request after a fixed delay.

``python -m benchmarks.llm_server [--delay 0.2]`` serves ``POST .../chat/completions``
on 127.0.0.1 (any path ending so: clients build the URL differently), prints
``READY http://127.0.0.1:PORT/v1`` and serves until its stdin closes. It runs
in its own process so that its threads never share a GIL with the system being
measured. ``GET /stats`` returns ``{"requests": N}`` (chat requests so far).

Each request is answered ``delay`` seconds after it arrives, in one piece or
streamed (server-sent events, with a usage chunk when asked), on a keep-alive
connection. The listen backlog is large, so 32 clients connecting at once are
all accepted at once. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ANSWER = "A short answer from the local benchmark server."


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default, 5, drops simultaneous connects into SYN retries

    def __init__(self, delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay = delay
        self.requests = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as real servers do: no 40 ms delayed-ACK stall between writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/stats"):
            with self.server.lock:
                count = self.server.requests
            self._send(200, json.dumps({"requests": count}).encode())
        else:
            self._send(404, b'{"error": {"message": "not found"}}')

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        with self.server.lock:
            self.server.requests += 1
            number = self.server.requests
        time.sleep(self.server.delay)
        head = {"id": f"chatcmpl-{number}", "created": int(time.time()), "model": body.get("model", "local")}
        usage = {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}
        if body.get("stream"):
            self._stream(head, usage if (body.get("stream_options") or {}).get("include_usage") else None)
            return
        message = {"role": "assistant", "content": ANSWER}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        payload = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        self._send(200, json.dumps(payload).encode())

    def _stream(self, head: dict[str, Any], usage: dict[str, int] | None) -> None:
        head = {**head, "object": "chat.completion.chunk"}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        events = [chunk({"role": "assistant", "content": ""}), chunk({"content": ANSWER}), chunk({}, "stop")]
        if usage is not None:
            events.append({**head, "choices": [], "usage": usage})
        data = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        self._send(200, data.encode(), "text/event-stream")


class LLMServerProcess:
    """The server in a child process: ``with LLMServerProcess(0.2) as server: server.base_url``."""

    def __init__(self, delay: float = 0.2) -> None:
        self.delay = delay
        self.base_url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> LLMServerProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.llm_server", "--delay", str(self.delay)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("READY "):
            self._proc.kill()
            raise RuntimeError(f"the local LLM server did not start: {line!r}")
        self.base_url = line.split(" ", 1)[1]
        return self

    def requests(self) -> int:
        """How many chat requests the server has answered (or started answering)."""
        with urllib.request.urlopen(self.base_url + "/stats", timeout=10) as response:
            return int(json.load(response)["requests"])

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()  # the server's signal to stop
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.llm_server")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds before each answer (default 0.2)")
    args = parser.parse_args(argv)
    server = _Server(args.delay)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    port = server.server_address[1]
    print(f"READY http://127.0.0.1:{port}/v1", flush=True)
    sys.stdin.read()  # until the parent closes our stdin (or dies)
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
