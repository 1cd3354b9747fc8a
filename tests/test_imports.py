"""The core imports none of IPython, ipywidgets or openai, and importing flowmagic stays cheap."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("IPython", "ipywidgets", "openai", "graphviz")


def modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {m.split(".")[0] for m in out.split()}


def test_import_flowmagic_loads_nothing_heavy() -> None:
    loaded = modules_after("import flowmagic")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert "pydantic" not in loaded


def test_parsing_and_running_a_flow_needs_no_ipython_widgets_or_openai() -> None:
    code = (
        "import os; os.environ['FLOWMAGIC_OFFLINE_LATENCY'] = '0'\n"
        "os.environ.pop('OPENAI_API_KEY', None); os.environ.pop('OPENAI_BASE_URL', None)\n"
        "from flowmagic import Flow\n"
        "run = Flow.from_source('a = 1\\nb = llm(\"Say {a}\")').run()\n"
        "assert run.status == 'succeeded', run\n"
    )
    loaded = modules_after(code)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_drawing_a_run_as_static_svg_needs_no_ipython_or_widgets() -> None:
    code = (
        "import os; os.environ['FLOWMAGIC_OFFLINE_LATENCY'] = '0'\n"
        "from flowmagic import Flow\n"
        "run = Flow.from_source('a = 1\\nparallel:\\n    b = a\\n    c = a').run()\n"
        "html = run.show()._repr_mimebundle_()['text/html']\n"
        "assert html.count('class=\"fm-node\"') == 3, html\n"
    )
    loaded = modules_after(code)
    assert not loaded & {"IPython", "ipywidgets", "openai"}, loaded & {"IPython", "ipywidgets", "openai"}


def test_running_a_flow_on_threads_never_loads_dask() -> None:
    code = (
        "from flowmagic import Flow\n"
        "run = Flow.from_source('a = 1\\nparallel:\\n    b = abs(a)\\n    c = abs(-a)').run()\n"
        "assert run.status == 'succeeded' and run['c'] == 1, run\n"
    )
    loaded = modules_after(code)
    assert not loaded & {"dask", "distributed", "cloudpickle"}, loaded & {"dask", "distributed", "cloudpickle"}


def test_load_ext_imports_neither_the_driver_nor_the_offline_model() -> None:
    code = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "InteractiveShell.instance().run_line_magic('load_ext', 'flowmagic')\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code + "import sys\nprint('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert "flowmagic.ipython.magic" in loaded  # it did load the extension
    heavy = {"flowmagic.engine.driver", "flowmagic.engine.scheduler", "flowmagic.llm.offline", "ipywidgets", "openai"}
    assert not heavy & set(loaded), heavy & set(loaded)
