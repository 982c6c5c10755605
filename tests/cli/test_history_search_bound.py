"""A text search of a Redis history larger than the search bound: ``conveyor tasks --search``
and the dashboard's tasks page list what the newest 100,000 records hold and say how far back
they searched; a narrower search (a state) finds the older match."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import states
from conveyor.brokers import HistoryEntry, broker_from_url
from conveyor.brokers.redis.history import SEARCH_SCAN
from conveyor.taskrecord import TaskRecord, encode_record

from ..dashboard.server import DashboardServer
from ..redis_server import RedisServer
from .helpers import conveyor


def _entry(task_id: str, state: str, args: str, at: float) -> tuple[str, HistoryEntry, bytes]:
    rec = encode_record(TaskRecord("proj.charge", "q", state, args=args, finished=at))
    return task_id, HistoryEntry("proj.charge", "q", state, at, 0.1, args, rec), b'{"result":1}'


@pytest.fixture
def big_history(redis_server: RedisServer) -> Iterator[str]:
    """SEARCH_SCAN + 100 records: a failed 'needle-old' the oldest, a 'needle-new' the newest."""
    url = redis_server.url + "?prefix=bound"
    broker = broker_from_url(url)
    start = time.time() - SEARCH_SCAN
    broker.record_history([_entry("old", states.FAILURE, "'needle-old'", start)])
    batch = 2000
    for first in range(0, SEARCH_SCAN + 100, batch):
        broker.record_history(
            [
                _entry(f"t{i}", states.SUCCESS, "'hay'", start + 1 + i * 0.001)
                for i in range(first, first + batch)
            ]
        )
    broker.record_history([_entry("new", states.SUCCESS, "'needle-new'", time.time())])
    broker.close()
    try:
        yield url
    finally:
        broker = broker_from_url(url)
        broker.trim_history(0, time.time() + 60)
        broker.close()


def test_a_redis_search_says_how_far_back_it_searched_in_the_cli_and_the_dashboard(
    big_history: str, tmp_path: Path
) -> None:
    url = big_history
    out = conveyor("tasks", "--search", "needle", url=url, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "new" in out.stdout and "needle-old" not in out.stdout
    assert f"searched the last {SEARCH_SCAN:,} records (back to " in out.stdout
    page = json.loads(conveyor("tasks", "--search", "needle", "--json", url=url, timeout=60).stdout)
    assert page["searched_records"] == SEARCH_SCAN and page["searched_until"] is not None
    narrowed = conveyor("tasks", "--search", "needle", "--state", "failed", url=url, timeout=60)
    assert "needle-old" in narrowed.stdout and "searched the last" not in narrowed.stdout
    server = DashboardServer(url, tmp_path).wait_serving()
    try:
        with server.client() as client:
            html = client.get("/tasks", params={"search": "needle"}, timeout=60).text
        assert 'id="search-bound"' in html and f"searched the last {SEARCH_SCAN:,} records" in html
    finally:
        server.stop()
