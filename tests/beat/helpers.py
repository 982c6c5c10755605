"""Helpers for scheduler tests: an app with one recording task, and reading what was enqueued."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from conveyor import Conveyor
from conveyor.brokers import Broker
from conveyor.message import Envelope, decode_envelope

QUEUES = ["default", "polling", "database"]


def make_app(broker_url: str, name: str = "beattest") -> Conveyor:
    app = Conveyor(name, broker=broker_url)

    @app.task(name="t.ping")
    def ping(*args: object, **kwargs: object) -> None:
        return None

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def drain(broker: Broker, queues: list[str] | None = None) -> list[Envelope]:
    """Every job enqueued so far (leased to the test, so each is returned once)."""
    out: list[Envelope] = []
    while batch := broker.fetch(queues or QUEUES, "test-drain", 1000, 3600, 0):
        out.extend(decode_envelope(d.body) for d in batch)
    return out


def slots_of(envelopes: list[Envelope], entry: str) -> list[float]:
    """Slot times of an entry's runs, sorted (duplicates kept, so a test can see them)."""
    return sorted(e.headers["beat_slot"] for e in envelopes if e.headers.get("beat_entry") == entry)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def duplicates(values: list[float]) -> dict[float, int]:
    return {v: n for v, n in Counter(values).items() if n > 1}
