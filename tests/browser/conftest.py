"""A real Jupyter server (JupyterLab or Notebook 7) and a real Chromium, both isolated in a temporary directory.

The server runs ``sys.executable -m jupyter lab`` (or ``jupyter notebook``) with every per-user directory
(HOME, XDG_*, JUPYTER_CONFIG/DATA/RUNTIME_DIR, IPYTHONDIR) inside pytest's
``tmp_path``, offline (no news feed, no update check, no PyPI extension manager),
and its ``python3`` kernelspec runs this very interpreter. Chromium is Debian's
``/usr/bin/chromium`` driven by Playwright; nothing is ever downloaded. A missing
browser, Playwright or Jupyter application fails these tests, it never skips them.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kernel_helpers import isolated_env, write_kernelspec  # the same isolation as the kernel tests

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1200, "height": 1000}
SERVER_STARTUP_TIMEOUT = 60.0

# app -> (the distribution that provides it, its lowest major version, the URL path of a notebook)
APPS = {
    "lab": ("jupyterlab", 4, "lab/tree/{name}"),
    "notebook": ("notebook", 7, "notebooks/{name}"),  # Notebook 7: JupyterLab components, one document a page
}


# -- the Jupyter server ---------------------------------------------------------------------
def _write_lab_settings(config_dir: Path) -> None:
    """No 'receive Jupyter news?' toast and no update check: nothing covers the output, nothing is fetched.

    Notebook 7 reads the same user settings directory (it has no news plugin, but the setting is harmless).
    """
    settings = config_dir / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class JupyterServer:
    app: str  # "lab" or "notebook", a key of APPS
    root: Path  # the server's root_dir: notebooks go here
    port: int
    token: str
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}?token={self.token}"

    def notebook_url(self, name: str) -> str:
        """Where the app opens the notebook ``name`` (relative to the root)."""
        return self.url(APPS[self.app][2].format(name=name))

    def api(self, path: str, method: str = "GET", timeout: float = 5.0) -> Any:
        request = urllib.request.Request(
            f"{self.base}/api/{path.lstrip('/')}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_for_kernel(self, notebook: str, timeout: float = 60.0) -> None:
        """Until the notebook's kernel is idle with a browser connected to it.

        The page's own "Idle" can show before its session has a kernel; running
        cells then opens a "Select Kernel" dialog instead of running them.
        """
        deadline = time.monotonic() + timeout
        kernel: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter {self.app} exited with {self.proc.returncode}")
            sessions = [s for s in self.api("sessions") if s.get("path") == notebook]
            kernel = (sessions[0].get("kernel") or {}) if sessions else {}
            if kernel.get("execution_state") == "idle" and kernel.get("connections", 0) >= 1:
                return
            time.sleep(0.1)
        raise TimeoutError(f"the kernel of {notebook} was not idle and connected within {timeout:.0f} s: {kernel}")

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as exc:
            return f"(no server log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def write_notebook(self, name: str, cells: list[str]) -> Path:
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        path = self.root / name
        nbformat.write(nb, path)
        return path


def _wait_until_up(server: JupyterServer) -> None:
    deadline = time.monotonic() + SERVER_STARTUP_TIMEOUT
    while True:
        if server.proc.poll() is not None:
            pytest.fail(f"jupyter {server.app} exited with {server.proc.returncode} at start-up:\n{server.log_tail()}")
        try:
            server.api("status", timeout=2.0)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(
                f"jupyter {server.app} did not answer within {SERVER_STARTUP_TIMEOUT:.0f} s:\n{server.log_tail()}"
            )
        time.sleep(0.2)


def _stop(server: JupyterServer) -> None:
    # shut the kernels down first: they run in their own process groups, not the server's
    try:
        for kernel in server.api("kernels"):
            server.api(f"kernels/{kernel['id']}", method="DELETE", timeout=10.0)
    except Exception:  # the server may already be gone; its own shutdown still stops kernels
        pass
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(server.proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            server.proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def _require_app(app: str) -> None:
    """Fail, never skip, when the app is not installed (or is an older major version)."""
    dist, major, _ = APPS[app]
    try:
        found = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"the {dist!r} package is needed to test the view in jupyter {app}: pip install -e '.[test]'")
    if int(found.split(".")[0]) < major:
        pytest.fail(f"jupyter {app} needs {dist}>={major}, found {found}: pip install -e '.[test]'")


@contextmanager
def _serve(tmp_path: Path, app: str) -> Iterator[JupyterServer]:
    """``jupyter APP`` rooted at ``tmp_path / 'notebooks'``, isolated and offline; stopped with its kernels.

    The server (and so the kernel) runs with the offline model slowed to 0.3 s a
    call, so a running step stays visible in the browser.
    """
    _require_app(app)
    root = tmp_path / "notebooks"
    root.mkdir()
    env = isolated_env(tmp_path / "user", {"FLOWMAGIC_OFFLINE_LATENCY": "0.3"})
    write_kernelspec(Path(env["JUPYTER_DATA_DIR"]))
    _write_lab_settings(Path(env["JUPYTER_CONFIG_DIR"]))
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        app,
        "--no-browser",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.open_browser=False",
        "--ServerApp.allow_root=True",  # containers and CI often run as root
        "--ServerApp.terminals_enabled=False",
        # offline: no announcements feed, no update check, no PyPI extension manager (the jupyterlab
        # server extension is loaded under `jupyter notebook` too, so the flags apply to both apps)
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    log = tmp_path / f"jupyter-{app}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = JupyterServer(app=app, root=root, port=port, token=token, log=log, proc=proc)
    try:
        _wait_until_up(server)
        yield server
    finally:
        _stop(server)


@pytest.fixture
def lab_server(tmp_path: Path) -> Iterator[JupyterServer]:
    """A running JupyterLab whose root is ``tmp_path / 'notebooks'``."""
    with _serve(tmp_path, "lab") as server:
        yield server


@pytest.fixture
def notebook_server(tmp_path: Path) -> Iterator[JupyterServer]:
    """A running Jupyter Notebook 7 whose root is ``tmp_path / 'notebooks'``."""
    with _serve(tmp_path, "notebook") as server:
        yield server


# -- the browser ----------------------------------------------------------------------------
@dataclass
class BrowserPage:
    page: Any  # playwright.sync_api.Page
    console: list[str] = field(default_factory=list)  # "type: text" of every console message
    page_errors: list[str] = field(default_factory=list)  # uncaught exceptions in the page, with their stack


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[BrowserPage]:
    """A Chromium page at 1200 px wide and a device scale factor of 2, recording its console.

    Chromium's own per-user files (crash reports, dconf) go to ``tmp_path``, not to HOME.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"the Python playwright package is needed for the browser test: {exc}")
    with sync_playwright() as pw:
        home = tmp_path / "browser-home"
        env = dict(os.environ)
        for key, sub in (
            ("HOME", ""),
            ("XDG_CONFIG_HOME", ".config"),
            ("XDG_CACHE_HOME", ".cache"),
            ("XDG_DATA_HOME", ".local/share"),
        ):
            (home / sub).mkdir(parents=True, exist_ok=True)
            env[key] = str(home / sub)
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, env=env)
        try:
            context = browser.new_context(viewport=VIEWPORT, device_scale_factor=2)
            page = context.new_page()
            recorded = BrowserPage(page)
            page.on("console", lambda msg: recorded.console.append(f"{msg.type}: {msg.text}"))
            page.on("pageerror", lambda exc: recorded.page_errors.append(exc.stack or str(exc)))
            yield recorded
            context.close()
        finally:
            browser.close()
