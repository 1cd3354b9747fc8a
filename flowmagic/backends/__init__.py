"""Where a flow's sync steps run: the kernel's threads (the default) or a cluster.

``executor`` is a :class:`~flowmagic.flow.model.RunSettings` field: ``"threads"``,
``"dask"`` (a local cluster of worker processes, started once and reused) or
``"dask://HOST:PORT"`` (an existing Dask scheduler).
"""

from __future__ import annotations

from ..engine.remote import Remote


def remote_for(executor: str) -> Remote | None:
    """The cluster behind ``executor``, connected (or started) on first use; None for threads."""
    if executor == "threads":
        return None
    from .dask import connect  # distributed loads only when a flow asks for it

    return connect(executor)
