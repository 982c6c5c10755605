"""Queues, workers, dead letters, schedules and the action log through the HTTP API; a
read-only user refused on every action; the OpenAPI description lists every route."""

from __future__ import annotations

import re

import httpx
from starlette.routing import Route

from conveyor import Conveyor
from conveyor.httpapi import api_routes, endpoints

from ..procs import WorkerProcess, wait_for

READ_ONLY = {"X-Test-User": "viewer:read-only"}


def test_queues_are_listed_paused_and_resumed_with_the_actor_logged(api: httpx.Client, app: Conveyor) -> None:
    for _ in range(3):
        app.tasks["api.add"].apply_async((1, 2), queue="emails")
    queues = api.get("/api/queues").json()
    assert [(q["name"], q["ready"], q["paused"]) for q in queues] == [("emails", 3, False)]
    answer = api.post("/api/queues/emails/pause", json={}, headers={"X-Test-User": "alice"})
    assert answer.json() == {"queue": "emails", "paused": True, "changed": True}
    assert api.get("/api/queues/emails").json()["paused"] is True
    assert app.admin.queue("emails").paused
    assert api.post("/api/queues/emails/resume", json={}).json()["changed"] is True
    assert not app.admin.queue("emails").paused
    assert api.get("/api/queues/nope").status_code == 404
    assert api.post("/api/queues/nope/pause", json={}).status_code == 404
    log = api.get("/api/actions").json()["items"]
    assert [(a["actor"], a["action"], a["target"]) for a in log] == [
        ("anonymous", "queue.resume", "emails"),
        ("alice", "queue.pause", "emails"),
    ]


def test_workers_are_listed_with_their_queues(api: httpx.Client, worker: WorkerProcess) -> None:
    wait_for(lambda: api.get("/api/workers").json() != [], 30)
    (found,) = api.get("/api/workers").json()
    assert found["hostname"].startswith("w@") and found["queues"] == ["default"]
    assert api.get(f"/api/workers/{found['hostname']}").json()["pid"] == worker.pid
    assert api.get("/api/workers/nobody@nowhere").status_code == 404


def test_a_dead_letter_retried_through_the_api_runs_again(
    api: httpx.Client, app: Conveyor, worker: WorkerProcess
) -> None:
    task_id = app.tasks["api.fail_once"].delay("first").id
    wait_for(lambda: api.get("/api/dead-letters").json()["items"] != [], 30)
    page = api.get("/api/dead-letters", params={"task": "api.*", "search": "fails its first"}).json()
    assert [(d["id"], d["task"]) for d in page["items"]] == [(task_id, "api.fail_once")]
    assert api.get("/api/dead-letters", params={"queue": "other"}).json()["items"] == []
    answer = api.post("/api/dead-letters/retry", json={"ids": [task_id]})
    assert answer.json() == {"retried": 1}
    wait_for(lambda: api.get(f"/api/tasks/{task_id}").json()["state"] == "succeeded", 30)
    assert api.get("/api/dead-letters").json()["items"] == []
    action = app.admin.actions().items[0]
    assert (action.action, action.target, action.detail) == ("dead.retry", task_id, "1 dead letter(s)")


def test_dead_letters_are_retried_or_deleted_by_filter(api: httpx.Client, app: Conveyor) -> None:
    app.admin.pause("default", allow_unknown=True)  # retried letters stay queued, countable
    for name in ("a", "b"):
        _dead_letter(app, name)
    assert api.post("/api/dead-letters/retry", json={"matching": {"search": "dead a"}}).json() == {
        "retried": 1
    }
    assert api.post("/api/dead-letters/delete", json={"matching": {}}).json() == {"deleted": 1}
    assert api.get("/api/dead-letters").json()["total"] == 0
    assert app.admin.queue("default").ready == 1
    for body in ({}, {"ids": ["x"], "matching": {}}, {"ids": "x"}, {"matching": {"colour": "red"}}):
        assert api.post("/api/dead-letters/retry", json=body).status_code == 400, body


def _dead_letter(app: Conveyor, name: str) -> None:
    from conveyor import states
    from conveyor.brokers import Outcome

    app.tasks["api.boom"].apply_async(task_id=f"dead-{name}")
    (delivery,) = app.broker.fetch(["default"], "test-owner", 1, 30.0, 0)
    app.broker.settle(
        [Outcome("dead", delivery.id, delivery.delivery, states.FAILURE, None, reason=f"dead {name}")], 60
    )


def test_schedules_are_listed(api: httpx.Client, app: Conveyor) -> None:
    app.schedules.add("every-minute", "api.add", 60.0, args=[1, 2])
    (entry,) = api.get("/api/schedules").json()
    assert (entry["name"], entry["task"], entry["args"], entry["enabled"]) == (
        "every-minute",
        "api.add",
        [1, 2],
        True,
    )


def test_a_read_only_user_is_refused_every_action_and_nothing_changes(
    api: httpx.Client, app: Conveyor
) -> None:
    task_id = app.tasks["api.add"].apply_async((1, 2)).id
    acting = [e for e in endpoints(app) if e.acts]
    assert {e.path for e in acting} >= {"/tasks", "/tasks/{task_id}/revoke", "/queues/{queue}/pause"}
    for e in acting:
        path = "/api" + e.path.format(task_id=task_id, queue="default")
        answer = api.request(
            e.method, path, json={"ids": [task_id]} if "dead" in path else {}, headers=READ_ONLY
        )
        assert answer.status_code == 403, path
        assert answer.json() == {"error": "user 'viewer' is read-only: cannot act"}
    assert app.admin.queue("default").ready == 1 and not app.admin.queue("default").paused
    assert app.admin.actions().items == ()
    assert api.get("/api/queues", headers=READ_ONLY).status_code == 200  # reading is allowed


def test_the_openapi_description_lists_every_route(api: httpx.Client, app: Conveyor) -> None:
    described = api.get("/api/openapi.json").json()
    assert described["openapi"].startswith("3.")
    served = {
        (method.lower(), "/api" + route.path)
        for route in api_routes(app)
        if isinstance(route, Route) and "{rest:path}" not in route.path and route.path != "/openapi.json"
        for method in (route.methods or ()) - {"HEAD"}
    }
    listed = {(method, path) for path, ops in described["paths"].items() for method in ops}
    assert served and served <= listed
    assert ("get", "/health") in listed
    for path, ops in described["paths"].items():
        for op in ops.values():
            names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", path))


def test_real_answers_match_the_schemas_in_the_openapi_description(
    api: httpx.Client, app: Conveyor, worker: WorkerProcess
) -> None:
    import jsonschema

    done = app.tasks["api.add"].delay(1, 2)
    assert done.get(timeout=30) == 3
    app.tasks["api.fail_once"].delay("schema")
    wait_for(lambda: api.get("/api/dead-letters").json()["items"] != [], 30)
    app.tasks["api.add"].apply_async((1, 2), queue="emails")
    api.post("/api/queues/emails/pause", json={})
    described = api.get("/api/openapi.json").json()
    wait_for(lambda: api.get("/api/workers").json() != [], 30)
    hostname = api.get("/api/workers").json()[0]["hostname"]
    checked = 0
    for e in endpoints(app):
        if e.method != "GET" or e.returns is None:
            continue
        path = "/api" + e.path.format(task_id=done.id, queue="emails", worker=hostname)
        answer = api.get(path)
        assert answer.status_code == 200, (path, answer.text)
        schema = described["paths"]["/api" + e.path]["get"]["responses"]["200"]["content"]["application/json"]
        # a schema with $refs into the description's components, validated as the description
        jsonschema.validate(answer.json(), {**schema["schema"], "components": described["components"]})
        checked += 1
    assert checked >= 7
    missing = api.get("/api/tasks/no-such-id")
    error_schema = described["paths"]["/api/tasks/{task_id}"]["get"]["responses"]["404"]["content"]
    jsonschema.validate(missing.json(), error_schema["application/json"]["schema"])
    sent = api.post("/api/tasks", json={"task": "api.add", "args": [1, 1]})
    sent_schema = described["paths"]["/api/tasks"]["post"]["responses"]["202"]["content"]
    jsonschema.validate(sent.json(), sent_schema["application/json"]["schema"])
