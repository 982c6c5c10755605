"""The FastAPI example (examples/fastapi_app) over an ASGI client, with a real worker process.

The web app runs in the test's event loop through httpx's ``ASGITransport``; the tasks run in a
``conveyor worker`` subprocess on the same broker (a SQLite file, a throwaway redis-server).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from examples.fastapi_app import tasks
from examples.fastapi_app.main import api

from conveyor import aio

from ..procs import WorkerProcess


@pytest.fixture
def worker(process_broker_url: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    tasks.app.conf.broker_url = process_broker_url
    tasks.app.close()  # the next use opens the test's broker
    proc = WorkerProcess(process_broker_url, tmp_path, "-c", "4", app="examples.fastapi_app.tasks")
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()
        tasks.app.close()


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://example")


async def poll(http: httpx.AsyncClient, task_id: str, until: Any, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = (await http.get(f"/tasks/{task_id}")).json()
        if until(body):
            return body
        assert time.monotonic() < deadline, f"last status: {body}"
        await asyncio.sleep(0.05)


def test_fastapi_example_triggers_a_task_polls_its_progress_and_awaits_its_result(
    worker: WorkerProcess,
) -> None:
    async def main() -> None:
        async with client() as http:
            started = await http.post("/reports", json={"rows": 40, "seconds_per_row": 0.1})
            assert started.status_code == 202
            task_id = started.json()["task_id"]
            running = await poll(http, task_id, lambda b: b["state"] == "PROGRESS")
            assert running["info"]["total"] == 40 and 0 < running["info"]["done"] <= 40
            assert "of 40" in running["info"]["message"]
            early = await http.get(f"/tasks/{task_id}/result", params={"timeout": 0.1})
            assert early.status_code == 504
            done = await http.get(f"/tasks/{task_id}/result", params={"timeout": 30})
            assert done.status_code == 200, done.text
            assert done.json()["result"] == {"rows": 40}
            final = await poll(http, task_id, lambda b: b["state"] == "SUCCESS")
            assert final["info"] == {"rows": 40}
        await aio.close_producers()

    asyncio.run(main())


def test_fastapi_example_answers_100_concurrent_requests_each_enqueueing_and_awaiting_a_task(
    worker: WorkerProcess,
) -> None:
    async def main() -> list[httpx.Response]:
        async with client() as http:
            replies = await asyncio.gather(
                *(http.post("/add", params={"x": i, "y": 1000, "timeout": 60}) for i in range(100))
            )
        await aio.close_producers()
        return replies

    replies = asyncio.run(main())
    assert [r.status_code for r in replies] == [200] * 100
    assert [r.json()["result"] for r in replies] == [i + 1000 for i in range(100)]


def test_fastapi_example_reports_a_failed_task(worker: WorkerProcess) -> None:
    async def main() -> None:
        async with client() as http:
            task_id = (await http.post("/fail", params={"reason": "no such city"})).json()["task_id"]
            reply = await http.get(f"/tasks/{task_id}/result", params={"timeout": 30})
            assert reply.status_code == 500
            assert reply.json()["detail"] == "ValueError: no such city"
            status = await poll(http, task_id, lambda b: b["state"] == "FAILURE")
            assert status["info"] == {"error": "ValueError", "message": "no such city"}
        await aio.close_producers()

    asyncio.run(main())
