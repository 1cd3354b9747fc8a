"""Drive a real IPython kernel over jupyter_client, recording what arrives and when.

Imported by ``tests/test_kernel.py``. Importing ipykernel and jupyter_client here is
unconditional on purpose: without them the kernel tests must fail, not skip.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import ipykernel  # noqa: F401 - the kernel process needs it; fail here, not in the kernel
import zmq
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

KERNEL_NAME = "python3"
STARTUP_TIMEOUT = 60.0
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


# -- starting a kernel that leaves nothing behind -------------------------------------------
def isolated_env(root: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment: every per-user directory inside ``root``."""
    dirs = {
        "HOME": root / "home",
        "XDG_CONFIG_HOME": root / "xdg" / "config",
        "XDG_DATA_HOME": root / "xdg" / "data",
        "XDG_CACHE_HOME": root / "xdg" / "cache",
        "XDG_STATE_HOME": root / "xdg" / "state",
        "XDG_RUNTIME_DIR": root / "xdg" / "runtime",
        "JUPYTER_CONFIG_DIR": root / "jupyter" / "config",
        "JUPYTER_DATA_DIR": root / "jupyter" / "data",
        "JUPYTER_RUNTIME_DIR": root / "jupyter" / "runtime",
        "IPYTHONDIR": root / "ipython",
        "MPLCONFIGDIR": root / "mpl",
    }
    env = dict(os.environ)
    for key, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[key] = str(path)
    os.chmod(dirs["XDG_RUNTIME_DIR"], 0o700)
    # only this root is searched, and no real LLM service is reached from the kernel
    for var in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "OPENAI_API_KEY", "OPENAI_BASE_URL", "FLOWMAGIC_MODEL"):
        env.pop(var, None)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def write_kernelspec(data_dir: Path) -> Path:
    """A ``python3`` kernelspec that runs this very interpreter (the one with flowmagic installed)."""
    spec_dir = data_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (flowmagic tests)",
        "language": "python",
        "interrupt_mode": "signal",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


def start_kernel(root: Path, extra_env: Mapping[str, str] | None = None) -> tuple[KernelManager, BlockingKernelClient]:
    """Start an ipykernel whose HOME, XDG_*, JUPYTER_* and IPYTHONDIR all live under ``root``.

    The kernelspec is written into the temporary JUPYTER_DATA_DIR and only that
    directory is searched, so the kernel runs ``sys.executable`` whatever is
    installed system-wide; the connection file goes to the temporary runtime dir.
    """
    env = isolated_env(root, extra_env)
    data_dir = Path(env["JUPYTER_DATA_DIR"])
    write_kernelspec(data_dir)
    ksm = KernelSpecManager(data_dir=str(data_dir), kernel_dirs=[str(data_dir / "kernels")])
    km = KernelManager(
        kernel_name=KERNEL_NAME,
        kernel_spec_manager=ksm,
        connection_file=str(Path(env["JUPYTER_RUNTIME_DIR"]) / "kernel-flowmagic-test.json"),
    )
    km.start_kernel(env=env, cwd=str(root))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
    except BaseException:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        raise
    return km, kc


def stop_kernel(km: KernelManager, kc: BlockingKernelClient) -> None:
    try:
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=False)
        km.cleanup_resources()


# -- executing and recording ----------------------------------------------------------------
@dataclass
class Output:
    """One iopub output of an execution, stamped with ``time.monotonic()`` at arrival."""

    kind: str  # stream | display_data | update_display_data | execute_result | error | comm_msg
    time: float
    text: str = ""  # stream text, text/plain of a display, or the error traceback (ANSI stripped)
    name: str | None = None  # stdout/stderr for streams
    display_id: str | None = None
    ename: str | None = None
    evalue: str | None = None
    traceback: list[str] = field(default_factory=list)
    parent_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  # a display's mime bundle, or a comm message's data


@dataclass
class Result:
    msg_id: str
    sent: float
    reply: dict[str, Any] | None = None  # the execute_reply content
    reply_time: float | None = None
    busy_time: float | None = None
    idle_time: float | None = None
    outputs: list[Output] = field(default_factory=list)

    @property
    def status(self) -> str | None:
        return None if self.reply is None else self.reply.get("status")

    @property
    def stdout(self) -> str:
        return "".join(o.text for o in self.outputs if o.kind == "stream" and o.name == "stdout")

    @property
    def text(self) -> str:
        """Everything shown, as plain text (streams, displays, results, tracebacks)."""
        return "\n".join(o.text for o in self.outputs)

    @property
    def errors(self) -> list[Output]:
        return [o for o in self.outputs if o.kind == "error"]

    def of_kind(self, kind: str) -> list[Output]:
        return [o for o in self.outputs if o.kind == kind]


def _plain(data: Mapping[str, Any]) -> str:
    return str(data.get("text/plain", ""))


def to_output(msg: Mapping[str, Any], when: float) -> Output | None:
    kind = msg["header"]["msg_type"]
    content = msg["content"]
    parent = (msg.get("parent_header") or {}).get("msg_id")
    if kind == "stream":
        return Output(kind, when, text=content.get("text", ""), name=content.get("name"), parent_id=parent)
    if kind in ("display_data", "update_display_data", "execute_result"):
        display_id = (content.get("transient") or {}).get("display_id")
        data = content.get("data", {})
        return Output(kind, when, text=_plain(data), display_id=display_id, parent_id=parent, data=data)
    if kind == "comm_msg":  # a widget update: its new state is in data["state"]
        data = content.get("data", {})
        value = (data.get("state") or {}).get("value")
        return Output(kind, when, text=value if isinstance(value, str) else "", parent_id=parent, data=data)
    if kind == "comm_close":  # a widget closed
        return Output(kind, when, text=str(content.get("comm_id", "")), parent_id=parent)
    if kind == "error":
        tb = [strip_ansi(line) for line in content.get("traceback", [])]
        return Output(
            kind,
            when,
            text="\n".join(tb),
            ename=content.get("ename"),
            evalue=content.get("evalue"),
            traceback=tb,
            parent_id=parent,
        )
    return None


def _ready(channel: Any) -> list[dict[str, Any]]:
    """Every message already received on ``channel``, without blocking.

    (``get_msgs()`` would block: it polls with no timeout once the queue is empty.)
    """
    msgs = []
    while True:
        try:
            msgs.append(channel.get_msg(timeout=0))
        except Empty:
            return msgs


class Kernel:
    """A kernel client that records, per execution, every iopub message with its arrival time.

    iopub messages whose parent is not the execution being waited for (output a
    background run sends after its cell finished) are kept in ``self.stray``.
    """

    def __init__(self, km: KernelManager, kc: BlockingKernelClient, root: Path | None = None) -> None:
        self.km = km
        self.kc = kc
        self.root = root  # the temporary directory the kernel's HOME etc. live in
        self.results: dict[str, Result] = {}
        self.stray: list[Output] = []
        self.poller = zmq.Poller()
        self.poller.register(kc.iopub_channel.socket, zmq.POLLIN)
        self.poller.register(kc.shell_channel.socket, zmq.POLLIN)

    # -- low level: send, then pump both channels ---------------------------------------
    def send(self, code: str, **kwargs: Any) -> Result:
        msg_id = self.kc.execute(code, **kwargs)
        result = Result(msg_id=msg_id, sent=time.monotonic())
        self.results[msg_id] = result
        return result

    def _pump(self, timeout: float) -> None:
        """Read whatever arrives within ``timeout`` seconds on iopub and shell, stamping it."""
        events = dict(self.poller.poll(int(timeout * 1000)))
        now = time.monotonic()
        if self.kc.iopub_channel.socket in events:
            for msg in _ready(self.kc.iopub_channel):
                self._on_iopub(msg, now)
        if self.kc.shell_channel.socket in events:
            for msg in _ready(self.kc.shell_channel):
                self._on_shell(msg, now)

    def _on_iopub(self, msg: Mapping[str, Any], when: float) -> None:
        parent = (msg.get("parent_header") or {}).get("msg_id")
        result = self.results.get(parent) if parent else None
        kind = msg["header"]["msg_type"]
        if kind == "status":
            if result is not None:
                state = msg["content"].get("execution_state")
                if state == "busy" and result.busy_time is None:
                    result.busy_time = when
                elif state == "idle":
                    result.idle_time = when
            return
        out = to_output(msg, when)
        if out is None:
            return
        if result is not None and result.idle_time is None:
            result.outputs.append(out)
        else:
            self.stray.append(out)

    def _on_shell(self, msg: Mapping[str, Any], when: float) -> None:
        parent = (msg.get("parent_header") or {}).get("msg_id")
        result = self.results.get(parent) if parent else None
        if result is not None and msg["header"]["msg_type"] == "execute_reply":
            result.reply = msg["content"]
            result.reply_time = when

    def wait_until(self, predicate: Any, timeout: float, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
            self._pump(min(left, 0.05))

    def wait_busy(self, result: Result, timeout: float = 10.0) -> float:
        self.wait_until(lambda: result.busy_time is not None, timeout, "the kernel to start the cell")
        assert result.busy_time is not None
        return result.busy_time

    def wait_reply(self, result: Result, timeout: float = 30.0) -> Result:
        self.wait_until(lambda: result.reply is not None, timeout, f"the reply to {result.msg_id}")
        return result

    def finish(self, result: Result, timeout: float = 30.0) -> Result:
        """Wait for the execute reply and for iopub status idle of this execution."""
        self.wait_until(
            lambda: result.reply is not None and result.idle_time is not None,
            timeout,
            "the reply and status idle",
        )
        return result

    def drain(self, seconds: float) -> None:
        """Keep reading for ``seconds`` (for output that arrives after a cell ended)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pump(min(left, 0.05))

    # -- high level --------------------------------------------------------------------
    def execute(self, code: str, timeout: float = 30.0) -> Result:
        """Run ``code`` and return its reply and outputs (whatever the status)."""
        return self.finish(self.send(code), timeout)

    def ok(self, code: str, timeout: float = 30.0) -> Result:
        """Run ``code``; fail the test with the kernel's traceback if it raised."""
        result = self.execute(code, timeout)
        if result.status != "ok":
            detail = "\n".join(o.text for o in result.errors) or repr(result.reply)
            raise AssertionError(f"cell failed:\n{code}\n---\n{detail}")
        return result

    def value(self, expr: str, timeout: float = 30.0) -> Any:
        """Evaluate ``expr`` in the kernel and bring back its JSON value."""
        marker = "@@flowmagic-test@@"
        result = self.ok(f"import json as _j; print({marker!r} + _j.dumps({expr}))", timeout)
        for line in result.stdout.splitlines():
            if line.startswith(marker):
                return json.loads(line[len(marker) :])
        raise AssertionError(f"no value printed for {expr!r}: {result.text!r}")


def interrupt_now(kernel: Kernel, result: Result) -> float:
    """Interrupt the kernel; the seconds until ``result``'s execute_reply arrives."""
    sent = time.monotonic()
    kernel.km.interrupt_kernel()
    kernel.wait_reply(result, timeout=20)
    assert result.reply_time is not None
    waited = result.reply_time - sent
    kernel.finish(result, timeout=10)
    return waited


@contextmanager
def kernel_session(root: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[Kernel]:
    km, kc = start_kernel(root, extra_env)
    try:
        yield Kernel(km, kc, root)
    finally:
        stop_kernel(km, kc)


__all__ = [
    "Empty",
    "Kernel",
    "Output",
    "Result",
    "isolated_env",
    "kernel_session",
    "start_kernel",
    "stop_kernel",
    "strip_ansi",
    "write_kernelspec",
]
