"""``GET /health``: 200 when the broker answers and every queue that needs a worker has a live,
fetching one; 503 with the reasons otherwise. And the API mounted inside another application."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from conveyor import Conveyor
from conveyor.httpapi import asgi_app

from ..apps.api_app import make_app
from ..procs import WorkerProcess, wait_for
from ..webserver import free_port, serving


def health(api: httpx.Client, **params: str) -> tuple[int, dict[str, object]]:
    answer = api.get("/health", params=params)
    return answer.status_code, answer.json()


def test_healthy_when_a_live_worker_consumes_every_queue_with_ready_tasks(
    api: httpx.Client, app: Conveyor, worker: WorkerProcess
) -> None:
    wait_for(lambda: health(api)[1]["queues"] != {}, 30)
    status, report = health(api)
    assert status == 200 and report["status"] == "ok" and report["broker"] == "ok"
    assert report["queues"]["default"]["workers"] == [worker_name(app)]  # type: ignore[index]


def worker_name(app: Conveyor) -> str:
    (found,) = app.admin.workers()
    return found.hostname


def test_unhealthy_when_ready_tasks_have_no_worker_and_not_when_their_queue_is_paused(
    api: httpx.Client, app: Conveyor
) -> None:
    assert health(api) == (
        200,
        {"status": "ok", "broker": "ok", "problems": [], "unhealthy_workers": [], "queues": {}},
    )
    app.tasks["api.add"].apply_async((1, 2), queue="emails")
    status, report = health(api)
    assert status == 503 and report["status"] == "unhealthy"
    assert report["problems"] == ["queue 'emails': 1 task(s) ready and no live worker consumes it"]
    app.admin.pause("emails")
    assert health(api)[0] == 200  # paused on purpose: its tasks wait for the resume, not a worker


def test_a_queue_named_in_the_request_must_have_a_worker(
    api: httpx.Client, app: Conveyor, worker: WorkerProcess
) -> None:
    wait_for(lambda: health(api, queue="default")[0] == 200, 30)
    status, report = health(api, queue="reports")
    assert status == 503 and report["problems"] == ["queue 'reports': no live worker consumes it"]


def test_unhealthy_when_the_broker_cannot_be_reached() -> None:
    unreachable = make_app(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with serving(asgi_app(unreachable)) as url:
            answer = httpx.get(url + "/health", timeout=30)
            assert answer.status_code == 503
            report = answer.json()
            assert report["broker"] == "unreachable" and "broker" in report["problems"][0]
            assert httpx.get(url + "/api/queues", timeout=30).status_code == 503
    finally:
        unreachable.close()


def test_the_api_mounts_under_a_path_of_another_application(app: Conveyor) -> None:
    host = Starlette(routes=[Mount("/ops", asgi_app(app))])
    with serving(host) as url:
        assert httpx.get(url + "/ops/api/queues").json() == []
        assert httpx.get(url + "/ops/health").status_code == 200
        assert "conveyor_broker_up 1.0" in httpx.get(url + "/ops/metrics").text
        described = httpx.get(url + "/ops/api/openapi.json").json()
        assert "/api/tasks" in described["paths"]
