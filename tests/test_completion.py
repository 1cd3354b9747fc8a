"""Tab completion of %%flow and %flow, asked of a real kernel the way JupyterLab asks it
(a complete_request with the cell and the cursor), and in a plain IPython shell."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernel_helpers import Kernel, kernel_session

CASES = [
    ("%%flow movie --wo", ["--workers"]),
    ("%%flow movie --no", ["--no-cache"]),
    ("%%flow mo", ["movie"]),
    ("%flow hi", ["history"]),
    ("%flow history ", ["movie"]),
    ("%flow rerun movie ", ["title", "song"]),
    ("%flow rerun movie s", ["song"]),
    ("%flow config work", ["workers="]),
]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    with kernel_session(tmp_path_factory.mktemp("complete")) as k:
        k.ok("%load_ext flowmagic")
        k.ok("%%flow movie --quiet\ntitle = 1\nsong = title + 1")
        yield k


def complete(kernel: Kernel, code: str, cursor: int | None = None) -> list[str]:
    msg_id = kernel.kc.complete(code, len(code) if cursor is None else cursor)
    while True:
        reply = kernel.kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            assert reply["content"]["status"] == "ok", reply["content"]
            return list(reply["content"]["matches"])


@pytest.mark.parametrize(("code", "expected"), CASES)
def test_the_kernel_completes_options_subcommands_flows_and_steps(
    kernel: Kernel, code: str, expected: list[str]
) -> None:
    assert complete(kernel, code) == expected


def test_the_cell_options_complete_on_the_first_line_of_a_whole_cell(kernel: Kernel) -> None:
    cell = "%%flow movie --seq\ntitle = 1\n"
    assert complete(kernel, cell, cursor=len("%%flow movie --seq")) == ["--sequential"]


def test_unloading_removes_the_completers(shell: Any, tmp_path: Path) -> None:
    shell.run_cell("%%flow movie --quiet\na = 1")
    assert shell.complete(None, "%flow hi", 8)[1] == ["history"]
    shell.run_line_magic("unload_ext", "flowmagic")
    assert "history" not in shell.complete(None, "%flow hi", 8)[1]
    shell.run_line_magic("load_ext", "flowmagic")  # (the fixture unloads it again)
