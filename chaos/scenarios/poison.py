"""Poison messages: each must be dead-lettered after a bounded number of deliveries while the
innocent tasks around it all run.

- poison-unprintable: a task raising an exception whose ``__str__`` itself raises (anything
  that formats it — the dead-letter reason, the log line — raises too).
- poison-deep-json: a well-formed envelope whose ``args`` nest 100,000 levels of ``[``,
  written straight into the broker (the JSON decoder overflows its recursion limit).
- poison-expires: an envelope with ``"expires": -1e300`` (expired, but formatting its date
  overflows ``time_t``).
- bad-utf8-id: a job whose *broker* id is not valid UTF-8, enqueued with 5 valid tasks: the
  bad one must be dead-lettered on its own, the valid ones must all run.

Deliveries of a poison message are counted from the ledger when it reaches the task body,
else from the worker log (every delivery of it logs a line naming its id).
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import cast

from conveyor.brokers import JobSpec
from conveyor.message import Envelope, encode_envelope

from ..context import Ctx
from ..ledger import FINAL, Figures, count_innocents
from ..procs import wait_until
from ..tasks import app, unprintable

MAX_DELIVERIES = 5  # task_max_worker_deaths: more deliveries than this is a poison loop
INNOCENTS = 5


def _deep_json(task_id: str) -> bytes:
    head = b'{"id":"%s","task":"chaos.tasks.work","args":' % task_id.encode()
    return head + b"[" * 100_000 + b"]" * 100_000 + b"}"


def _expires_overflow(task_id: str) -> bytes:
    return encode_envelope(Envelope(id=task_id, task="chaos.tasks.work", expires=-1e300))


def _window(ctx: Ctx) -> float:
    return 5.0 if ctx.quick else 8.0


def _poison_run(ctx: Ctx, fig: Figures, kind: str) -> None:
    worker = ctx.worker("w1")
    if kind == "unprintable":
        poison_id = unprintable.delay().id
    else:
        poison_id = f"poison-{kind}"
        body = _deep_json(poison_id) if kind == "deep-json" else _expires_overflow(poison_id)
        app.broker.enqueue([JobSpec(poison_id, "default", body)])
    innocents = ctx.enqueue_many(INNOCENTS)
    # Observe for a fixed window, or less once the poison is dead and the innocents are done.
    wait_until(
        lambda: (
            app.AsyncResult(poison_id).state in FINAL
            and all(s == "SUCCESS" for s in ctx.states(list(innocents)).values())
        ),
        _window(ctx),
        0.25,
    )
    states = ctx.wait_final(list(innocents), 5.0)
    dead = ctx.dead_ids()
    runs = ctx.runs()
    count_innocents(fig, innocents, states, runs, dead)
    if kind == "unprintable":
        fig.poison = len(runs.get(poison_id, []))
    else:
        # Every delivery logs one line naming the id (the temp dir's name holds the scenario's
        # name too: skip lines quoting the path, like the broker URL in "ready").
        lines = worker.log().splitlines()
        fig.poison = sum(1 for line in lines if poison_id in line and str(ctx.workdir) not in line)
    state = app.AsyncResult(poison_id).state
    if kind == "expires":  # expired is expired: REVOKED (not run) ends the loop as well
        fig.check(poison_id in dead or state == "REVOKED", "poison neither dead-lettered nor REVOKED")
    else:
        fig.check(poison_id in dead, "poison not in the dead-letter set")
    fig.check(fig.poison <= MAX_DELIVERIES, f"poison delivered {fig.poison} times (> {MAX_DELIVERIES})")
    fig.check(worker.alive(), f"worker exited with code {worker.proc.poll()}")
    fig.notes.append(f"poison state {state} after the {_window(ctx):.0f} s window")


def poison_unprintable(ctx: Ctx, fig: Figures) -> None:
    _poison_run(ctx, fig, "unprintable")


def poison_deep_json(ctx: Ctx, fig: Figures) -> None:
    _poison_run(ctx, fig, "deep-json")


def poison_expires(ctx: Ctx, fig: Figures) -> None:
    _poison_run(ctx, fig, "expires")


BAD_ID = b"bad-\xff\xfe-id"  # not UTF-8
BAD_ENVELOPE_ID = "bad-utf8-id"  # what the task body would see (and record) if it ran


def _insert_bad_job(ctx: Ctx) -> None:
    body = encode_envelope(Envelope(id=BAD_ENVELOPE_ID, task="chaos.tasks.work"))
    if ctx.broker == "redis":
        # The enqueue script takes ids as bytes: exactly what a foreign producer could send.
        app.broker.enqueue([JobSpec(cast(str, BAD_ID), "default", body)])
        return
    app.broker.status("warm-up")  # creates the schema
    # A TEXT value that is not UTF-8 (a BLOB id would read back as bytes and be harmless).
    with contextlib.closing(sqlite3.connect(ctx.db_path, timeout=30)) as db:
        db.execute(
            "INSERT INTO jobs (id, queue, priority, seq, body) VALUES (CAST(? AS TEXT), 'default', 5, 0, ?)",
            (BAD_ID, body),
        )
        db.commit()


def bad_utf8_id(ctx: Ctx, fig: Figures) -> None:
    _insert_bad_job(ctx)  # first in line, so it shares a fetch batch with the valid ones
    innocents = ctx.enqueue_many(INNOCENTS)
    worker = ctx.worker("w1")
    states = ctx.wait_final(list(innocents), 6.0)
    wait_until(lambda: len(ctx.dead_ids() - set(innocents)) >= 1, 2.0, 0.25)
    dead = ctx.dead_ids()
    runs = ctx.runs()
    count_innocents(fig, innocents, states, runs, dead)
    fig.poison = len(runs.get(BAD_ENVELOPE_ID, []))
    fig.check(len(dead - set(innocents)) == 1, "the bad job is not in the dead-letter set")
    fig.check(worker.alive(), f"worker exited with code {worker.proc.poll()}")
    failures = worker.log().count("fetch failed")
    if failures:
        fig.notes.append(f"worker log: {failures} 'fetch failed' episode(s)")
    fig.notes.append("valid states: " + ",".join(sorted(set(states.values()))))
