"""How ``conveyor monitor`` draws a reading: a header line and four tables (workers, queues,
running tasks, last failures), made to fit an 80-column SSH terminal.

Long names are cut with an ellipsis rather than wrapped, so a row stays one line; when the
screen is too short, each table gets its share of the rows and says how many it left out.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ...admin.health import problem
from ..display import duration
from .sample import Rates, Reading, Snapshot

# Per table: a title, a header row, and a "... N more" row when cut.
TABLE_OVERHEAD = 3
HEADER_LINES = 2
COLUMN_GAP = 2  # rich pads each cell with a space on either side (not at the table's edges)
MIN_NAME = 6  # a name column is never cut narrower: "tests…" still tells something


def render(
    reading: Reading, broker: str, width: int = 80, height: int | None = None, live: bool = True
) -> RenderableType:
    """The whole view, ``width`` columns wide. ``height`` (the terminal's rows) limits the rows
    of each table; None shows every row (a one-off snapshot printed to a pipe)."""
    snap, now = reading.snapshot, time.time()
    sections = [
        _workers(snap, reading.rates, now),
        _queues(snap, reading.rates),
        _running(snap, now),
        _failures(snap, now),
    ]
    sizes = [len(rows) for _title, _columns, rows, _empty in sections]
    header = HEADER_LINES + (reading.error is not None)
    budget = None if height is None else max(0, height - header - TABLE_OVERHEAD * len(sections))
    shown = sizes if budget is None else allot(sizes, budget)
    tables = [_table(*section, limit, width) for section, limit in zip(sections, shown, strict=True)]
    return Group(_header(reading, broker, live), *tables)


def allot(sizes: Sequence[int], budget: int) -> list[int]:
    """Share ``budget`` rows among tables wanting ``sizes`` rows: one row at a time, in turn, so
    a long table cannot push the others off the screen.

    >>> allot([10, 1, 3, 0], 6)
    [3, 1, 2, 0]
    """
    shown = [0] * len(sizes)
    while budget > 0 and any(s < want for s, want in zip(shown, sizes, strict=True)):
        for i, want in enumerate(sizes):
            if budget > 0 and shown[i] < want:
                shown[i] += 1
                budget -= 1
    return shown


def _header(reading: Reading, broker: str, live: bool) -> Text:
    snap = reading.snapshot
    rate = reading.rates.processed
    dead = snap.failures_total if snap.failures_total is not None else len(snap.failures)
    text = Text.assemble(
        ("conveyor monitor", "bold"),
        f"  {broker}  ",
        (time.strftime("%H:%M:%S", time.localtime(snap.taken)), "dim"),
        "\n",
        f"{len(snap.workers)} worker(s)  {len(snap.running)} running  ",
        f"{'-' if rate is None else f'{rate:.1f}'} tasks/s  {dead} dead letter(s)",
        ("   q: quit" if live else "", "dim"),
    )
    if reading.error is not None:
        since = time.strftime("%H:%M:%S", time.localtime(reading.failing_since or snap.taken))
        text.append(f"\nbroker error since {since}, retrying (showing the last good view): ", "bold red")
        text.append(reading.error, "red")
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


Row = list[Text | str]
Section = tuple[str, list[tuple[str, int | None]], list[Row], str]  # title, columns, rows, empty


def _workers(snap: Snapshot, rates: Rates, now: float) -> Section:
    rows: list[Row] = []
    for w in snap.workers:
        rate = rates.workers.get(w.name)
        healthy = problem(w, now) is None
        rows.append(
            [
                Text(w.hostname, style="" if healthy else "bold red"),
                w.host,
                str(w.pid),
                f"{w.pool}/{w.concurrency}",
                f"{len(w.running)}",
                str(w.processed),
                Text(str(w.failed), style="red" if w.failed else ""),
                "-" if rate is None else f"{rate:.1f}",
                duration(now - w.heartbeat),
            ]
        )
    columns = [
        ("WORKER", None),
        ("HOST", None),
        ("PID", 7),
        ("POOL", 9),
        ("RUN", 3),
        ("DONE", 6),
        ("FAIL", 4),
        ("/s", 5),
        ("BEAT", 5),
    ]
    return "Workers", columns, rows, "no workers online"


def _queues(snap: Snapshot, rates: Rates) -> Section:
    rows: list[Row] = []
    for q in snap.queues:
        net = rates.queues.get(q.name)
        rows.append(
            [
                q.name,
                str(q.ready),
                str(q.delayed),
                str(q.running),
                str(q.leased),
                duration(q.latency),
                Text("yes", style="bold yellow") if q.paused else "no",
                "-" if net is None else f"{net:+.1f}",
            ]
        )
    columns = [
        ("QUEUE", None),
        ("READY", 6),
        ("DELAYED", 7),
        ("RUNNING", 7),
        ("LEASED", 6),
        ("LATENCY", 7),
        ("PAUSED", 6),
        ("NET/s", 6),
    ]
    return "Queues", columns, rows, "no queues"


def _running(snap: Snapshot, now: float) -> Section:
    # Longest-running first: a stuck task is the one an operator is looking for.
    rows: list[Row] = [
        [t.id[:8], t.name, t.worker, t.queue, str(t.attempt), duration(now - t.started)] for t in snap.running
    ]
    columns = [("ID", 8), ("TASK", None), ("WORKER", None), ("QUEUE", None), ("ATTEMPT", 7), ("RUNTIME", 7)]
    return "Running tasks", columns, rows, "nothing running"


def _failures(snap: Snapshot, now: float) -> Section:
    rows: list[Row] = [
        [duration(now - f.failed_at), f.id[:8], f.task, f.queue, Text(f.reason, style="red")]
        for f in snap.failures
    ]
    columns = [("AGO", 6), ("ID", 8), ("TASK", None), ("QUEUE", None), ("REASON", None)]
    return "Last failures (dead letters)", columns, rows, "no failures"


def _table(
    title: str, columns: list[tuple[str, int | None]], rows: list[Row], empty: str, limit: int, width: int
) -> RenderableType:
    if not rows:
        return Text.assemble((title, "bold"), "\n", (empty, "dim"), "\n")
    table = Table(title=title, title_justify="left", title_style="bold", box=None, pad_edge=False)
    table.header_style = "bold dim"
    shown = rows[:limit]
    for (name, _fixed), size in zip(columns, fit(columns, shown, width), strict=True):
        table.add_column(name, no_wrap=True, overflow="ellipsis", width=size)
    for row in shown:
        table.add_row(*row)
    if limit < len(rows):  # under the table, not in its first (narrow) column
        table.caption = f"... {len(rows) - limit} more"
        table.caption_justify = "left"
        table.caption_style = "dim"
    return table


def fit(columns: Sequence[tuple[str, int | None]], rows: Sequence[Row], width: int) -> list[int]:
    """Column widths that fit ``width``: numbers (columns with a minimum) keep their full
    width; names and reasons give up width, the widest first, down to ``MIN_NAME`` each.

    (rich's own shrinking drops whole columns of unbreakable text; this keeps every column and
    cuts the longest names instead.)
    """
    sizes = []
    for i, (name, minimum) in enumerate(columns):
        cells = [cell_len(c.plain if isinstance(c, Text) else c) for c in (r[i] for r in rows if i < len(r))]
        sizes.append(max([cell_len(name), minimum or 0, *cells]))
    flexible = [i for i, (_name, minimum) in enumerate(columns) if minimum is None]
    excess = sum(sizes) + COLUMN_GAP * (len(columns) - 1) - width
    while excess > 0:
        widest = max(flexible, key=lambda i: sizes[i], default=None)
        if widest is None or sizes[widest] <= MIN_NAME:
            break  # narrower than every number plus a stub of each name: let the line be cut
        sizes[widest] -= 1
        excess -= 1
    return sizes
