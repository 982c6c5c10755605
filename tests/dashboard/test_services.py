"""The JSON API, /health and /metrics served by ``conveyor dashboard``: the same auth and CSRF
as the pages, /health open to load balancers."""

from __future__ import annotations

import httpx

from conveyor import Conveyor

from .server import ADMIN, TOKEN, VIEWER, DashboardServer


def test_health_is_open_to_load_balancers_and_the_rest_is_not(server: DashboardServer) -> None:
    health = httpx.get(server.url + "/health", timeout=30)
    assert health.status_code == 200, health.text  # a worker is alive, the broker answers
    assert httpx.get(server.url + "/api/queues", timeout=30).status_code == 401
    assert httpx.get(server.url + "/metrics", timeout=30).status_code == 401
    scraped = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert scraped.status_code == 200 and "conveyor_" in scraped.text


def test_the_api_takes_the_same_users_and_csrf_token_as_the_pages(
    server: DashboardServer, producer: Conveyor
) -> None:
    with server.client(ADMIN) as admin:
        listed = admin.get("/api/queues")
        assert listed.status_code == 200 and "dash-b" in listed.text
        assert admin.post("/api/queues/dash-b/pause").status_code == 403  # no CSRF token
        token = admin.cookies.get("conveyor_csrf") or ""
        paused = admin.post("/api/queues/dash-b/pause", json={}, headers={"X-CSRF-Token": token})
        assert paused.status_code == 200, paused.text
        assert producer.admin.queue("dash-b").paused
        admin.post("/api/queues/dash-b/resume", json={}, headers={"X-CSRF-Token": token})
    with server.client(VIEWER) as viewer:
        token = viewer.cookies.get("conveyor_csrf") or ""
        assert viewer.post("/api/queues/dash-b/pause", headers={"X-CSRF-Token": token}).status_code == 403
    bearer = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    assert httpx.post(server.url + "/api/queues/dash-b/pause", headers=bearer, timeout=30).status_code == 200
    assert httpx.post(server.url + "/api/queues/dash-b/resume", headers=bearer, timeout=30).status_code == 200
    assert not producer.admin.queue("dash-b").paused
    assert producer.admin.actions(limit=1).items[0].actor == "token"
