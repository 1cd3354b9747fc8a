"""The command-line runner: the README's main job, and check's caret errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def flowmagic(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWMAGIC_OFFLINE_LATENCY": "0.01"}
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "flowmagic.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_run_the_example_offline_and_write_json(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = flowmagic("run", "examples/soundtrack.flow", "--set", "topic=space cats", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "flow 'soundtrack' succeeded" in result.stdout and "offline" in result.stdout
    for step in ("title", "song", "characters", "lyrics", "reviews"):
        assert f"done      {step}" in result.stderr
    data = json.loads(out.read_text())
    assert data["status"] == "succeeded" and len(data["outputs"]["reviews"]) == 5


def test_run_with_tools_and_typed_values(tmp_path: Path) -> None:
    (tmp_path / "tools.py").write_text("def double(xs):\n    return [x * 2 for x in xs]\n")
    (tmp_path / "f.flow").write_text("ys = double(xs)\ntotal = sum(ys)\n")
    result = flowmagic("run", "f.flow", "--tools", "tools.py", "--set", "xs=[1, 2, 3]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "total:\n12" in result.stdout


def test_missing_input_says_how_to_pass_it() -> None:
    result = flowmagic("run", "examples/soundtrack.flow")
    assert result.returncode == 2
    assert "name 'topic' is not defined" in result.stderr and "--set" in result.stderr


def test_failed_step_exits_non_zero(tmp_path: Path) -> None:
    (tmp_path / "f.flow").write_text("a = 1 / 0\nb = 2\n")
    result = flowmagic("run", "f.flow", cwd=tmp_path)
    assert result.returncode == 1
    assert "ZeroDivisionError" in result.stdout and "FAILED" in result.stdout


def test_check_accepts_a_good_file_and_rejects_a_broken_one_with_its_line(tmp_path: Path) -> None:
    ok = flowmagic("check", "examples/soundtrack.flow")
    assert ok.returncode == 0 and "flow 'soundtrack': 5 steps" in ok.stdout
    (tmp_path / "bad.flow").write_text("a = 1\nparallel:\n    b = a\n    c = b\n")
    bad = flowmagic("check", "bad.flow", cwd=tmp_path)
    assert bad.returncode == 2
    assert 'File "bad.flow", line 4' in bad.stderr and "'c' depends on 'b'" in bad.stderr
    assert bad.stderr.rstrip().endswith("^")


def test_run_ends_with_a_text_timeline_marking_the_critical_path(tmp_path: Path) -> None:
    (tmp_path / "f.flow").write_text(
        "t = __import__('time')\nparallel:\n    slow = t.sleep(0.3)\n    fast = t.sleep(0.05)\nlast = (slow, fast)\n"
    )
    result = flowmagic("run", "f.flow", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lanes = {line.split()[0]: line for line in result.stdout.splitlines() if "│" in line and line.split()[0] != "│"}
    assert list(lanes) == ["t", "slow", "fast", "last"] or list(lanes) == ["t", "fast", "slow", "last"]  # a row a step
    assert "█" in lanes["slow"] and "█" not in lanes["fast"] and "▒" in lanes["fast"]
    # fast's bar is shorter than slow's: the bars are drawn to scale
    assert lanes["fast"].count("▒") < lanes["slow"].count("█") / 2


def test_graph_draws_svg_html_and_dot_and_refuses_other_files(tmp_path: Path) -> None:
    for suffix in ("svg", "html", "dot"):
        out = tmp_path / f"dag.{suffix}"
        result = flowmagic("graph", "examples/soundtrack.flow", "-o", str(out))
        assert result.returncode == 0, result.stderr
        text = out.read_text()
        for step in ("title", "song", "characters", "lyrics", "reviews"):
            assert (f'data-step="{step}"' if suffix != "dot" else f'"{step}" [label=') in text
    assert (tmp_path / "dag.svg").read_text().startswith("<svg xmlns=")
    bad = flowmagic("graph", "examples/soundtrack.flow", "-o", str(tmp_path / "dag.png"))
    assert bad.returncode != 0 and ".svg, .html or .dot" in bad.stderr
    broken = tmp_path / "broken.flow"
    broken.write_text("a = (\n")
    failed = flowmagic("graph", str(broken))
    assert failed.returncode == 2 and "line 1" in failed.stderr
