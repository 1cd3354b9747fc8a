"""Start llama-cpp-python's own OpenAI-compatible server (``python tests/llama_serve.py ARGS``),
with the same arguments as ``python -m llama_cpp.server``.

One change: the model is loaded with ``use_extra_bufts`` off. On some CPUs the default weight
repacking crashes in ``llama_decode``; the server has no option for it, so it is set here.
"""

from __future__ import annotations

from typing import Any

import llama_cpp.llama_cpp as lib

_default_params = lib.llama_model_default_params


def _params() -> Any:
    params = _default_params()
    params.use_extra_bufts = False
    return params


lib.llama_model_default_params = _params

if __name__ == "__main__":
    from llama_cpp.server.__main__ import main

    main()
