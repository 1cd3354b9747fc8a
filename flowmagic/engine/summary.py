"""A plain-text summary of a run: each step's status and time, wall time, speed-up."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .record import Run, StepRecord

_MARK = {
    "succeeded": "ok",
    "failed": "FAILED",
    "skipped": "skipped",
    "cancelled": "cancelled",
    "running": "running",
    "pending": "pending",
}


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _error_line(record: StepRecord) -> str:
    if record.error is not None:
        text = str(record.error).splitlines()[0] if str(record.error) else ""
        return f"{type(record.error).__name__}: {text}"[:100]
    return record.reason or ""


def model_label(run: Run) -> str:
    replay = run.settings.get("replay")
    if replay:  # the answers of the model that was recorded, from a file
        models = sorted({str(r.llm["model"]) for r in run.steps.values() if r.llm and r.llm.get("replayed")})
        file = str(replay).replace("\\", "/").rsplit("/", 1)[-1]
        return f"{', '.join(models) or run.model} (replayed from {file}: no network)"
    offline = run.model == "offline" or any(r.llm and r.llm.get("offline") for r in run.steps.values())
    return f"{run.model} (offline: embedded model, no network)" if offline else str(run.model)


def token_line(run: Run) -> str:
    """``tokens 1,200 in, 340 out, $0.0004`` for what this run's llm steps spent, or ``""``."""
    prompt, completion = run.tokens
    if not prompt and not completion:
        return ""
    cost = run.cost
    return f"tokens {prompt:,} in, {completion:,} out" + (f", ${cost:.4f}" if cost is not None else "")


def facts(run: Run) -> list[str]:
    """Short notes for a run's title line: how many steps came from the cache, tokens and cost."""
    top = run.top_steps
    cached = sum(r.cached for r in top)
    notes = [f"{cached} of {len(top)} steps cached"] if cached else []
    spent = token_line(run)
    return [*notes, spent] if spent else notes


def summary(run: Run) -> str:
    """The text the magic and the CLI print at the end of a run."""
    head = f"flow '{run.flow}' {run.status}"
    if run.reason:
        head += f" ({run.reason})"
    uses_llm = any(r.kind == "llm" or (r.llm is not None) for r in run.steps.values())
    if uses_llm:
        head += f"  [model: {model_label(run)}]"
    top = run.top_steps
    width = max((len(r.name) for r in top), default=4)
    elements: dict[str, list[StepRecord]] = {}
    for r in run.steps.values():
        if r.map is not None:
            elements.setdefault(r.map, []).append(r)
    lines = [head]
    for r in top:
        note = _error_line(r) if r.status != "succeeded" else ""
        if r.cached:
            note = "cached"
        if r.attempts > 1:
            note = (note + f" after {r.attempts} attempts").strip()
        if r.waited is not None and r.waited >= 0.05:
            note = (note + f" (waited {r.waited:.2f}s for a worker)").strip()
        if r.kind == "loop":
            rounds = r.elements
            if rounds is None:  # still running: the iterations begun so far
                rounds = len({e.name.partition("#")[2].partition("#")[0] for e in elements.get(r.name, [])})
            note = (f"{rounds} iteration{'s' if rounds != 1 else ''} " + note).strip()
        elif r.name in elements:
            items = elements[r.name]
            ok = sum(1 for e in items if e.status == "succeeded")
            what = "steps of its subflow" if items[0].name.startswith(r.name + "/") else "elements"
            note = (f"{ok}/{len(items)} {what} " + note).strip()
        lines.append(
            f"  {r.name:<{width}}  {_MARK.get(r.status, r.status):<9}  {_seconds(r.duration):>7}  {note}".rstrip()
        )
        for e in elements.get(r.name, []):
            if e.status == "failed":
                lines.append(f"    {e.name}  FAILED  {_error_line(e)}")
    speedup = run.speedup
    tail = f"wall {_seconds(run.wall_time)}, step time {run.step_time:.2f}s"
    queued = run.step_time - run.served_time
    if queued >= 0.05:  # llm steps waited in a server's queue: not time they ran in parallel
        tail += f" ({queued:.2f}s of it queued at the server)"
    if top and all(r.cached for r in top):
        tail += ", every step reused from the cache"
    elif speedup is not None and run.step_time >= 0.01:  # (a speed-up of a few cached microseconds is noise)
        tail += f", speed-up {speedup:.1f}x"
    path = run.critical_path
    if path:
        tail += f", critical path: {' -> '.join(path)}"
    lines.append(tail)
    spent = token_line(run)
    if uses_llm and spent:
        lines.append(spent)
    if run.abandoned_threads:
        n = run.abandoned_threads
        plural = "s" if n != 1 else ""
        lines.append(f"{n} thread{plural} left to finish steps the run let go (threads cannot be stopped)")
    if run.pool_waits:
        lines.append(
            f"{run.pool_waits} step(s) waited for a worker thread: the pool is at its cap, most of it held by "
            "abandoned steps (FLOWMAGIC_MAX_THREADS)"
        )
    # why steps were not reused: what changed; that a call runs every time, once something was
    # reused (not on every first run); why a value was not cached, where it starts (what reads it
    # inherits it)
    reused = any(r.cached for r in top)
    for r in top:
        why = r.cache_note
        if not why or (why.startswith("runs every time") and not reused):
            continue
        if why.startswith("ran again") or not any(run.steps[d].cache_note for d in r.deps if d in run.steps):
            lines.append(f"  {r.name}: {why}"[:160])
    return "\n".join(lines)
