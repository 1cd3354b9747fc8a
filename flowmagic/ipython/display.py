"""What a ``%%flow`` cell shows while its run goes on and when it ends: the live view in a
kernel, a text status line for a background run in a terminal, else the summary."""

from __future__ import annotations

import threading
import time
from typing import Any

from IPython.display import display, update_display

from ..flow.flow import Flow
from .status import Text, TextStatus, progress_line


class Display:
    """What a running cell shows: the live view in a kernel, else a text status; then the end."""

    def __init__(self, view: Any = None, display_id: str | None = None, quiet: bool = False) -> None:
        self.view = view
        self.display_id = display_id
        self.quiet = quiet

    @classmethod
    def choose(cls, execution: Any, flow: Flow, quiet: bool, live: bool, background: bool) -> Display:
        if quiet:
            return cls(quiet=True)
        if live:
            from ..view.widget import FlowView  # ipywidgets loads on the first run, not at %load_ext

            view = FlowView(execution.run, flow.shape)
            execution.watch()  # the view polls the run's record: no observer
            handle = display(view.mimebundle(), raw=True, display_id=True)
            view.start()
            return cls(view, handle.display_id if handle is not None else None)
        if background:
            handle = display(Text(f"flow '{flow.name}' starting..."), display_id=True)
            display_id = handle.display_id if handle is not None else None
            execution.subscribe(TextStatus(lambda: progress_line(execution.run), display_id, update_display))
            return cls(None, display_id)
        return cls()

    def done(self, run: Any) -> None:
        if self.quiet:
            return
        if self.view is not None:  # the live widget gives way to the run's static picture
            update_display(self.view.final_bundle(), raw=True, display_id=self.display_id)
            return
        text = Text(run.summary())
        if self.display_id is not None:
            update_display(text, display_id=self.display_id)
        else:
            display(text)


class PrintedBlock:
    """What the steps of a background run print, under its own cell: one display, made when the
    cell runs and updated a few times a second as text comes (the cell running then may be
    another). Each step's own text is in its record and its detail too."""

    INTERVAL = 0.2
    SHOWN = 20_000  # the last characters shown; the records keep more

    def __init__(self) -> None:
        self.text = ""
        handle = display(Text(""), display_id=True)
        self.display_id = handle.display_id if handle is not None else None
        self._sent = 0.0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def __call__(self, label: str, stream: str, text: str) -> None:
        with self._lock:
            self.text = (self.text + text)[-self.SHOWN :]
            wait = self.INTERVAL - (time.monotonic() - self._sent)
            if self._timer is not None:
                return  # a send is due: it takes this text too
            if wait > 0:
                self._timer = threading.Timer(wait, self.send)
                self._timer.daemon = True
                self._timer.start()
                return
        self.send()

    def send(self) -> None:
        with self._lock:
            self._timer = None
            self._sent = time.monotonic()
            text = self.text
        if self.display_id is not None:
            update_display(Text(text), display_id=self.display_id)
