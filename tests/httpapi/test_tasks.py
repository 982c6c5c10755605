"""Tasks through the HTTP API: send (checked against the signature), read, list, revoke."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from conveyor import Conveyor

from ..procs import ConveyorProcess, WorkerProcess, wait_for
from ..redis_server import free_port


def state_of(api: httpx.Client, task_id: str) -> str | None:
    answer = api.get(f"/api/tasks/{task_id}")
    return answer.json()["state"] if answer.status_code == 200 else None


def test_a_task_sent_through_the_api_runs_and_shows_succeeded(
    api: httpx.Client, app: Conveyor, worker: WorkerProcess
) -> None:
    answer = api.post("/api/tasks", json={"task": "api.add", "args": [2], "kwargs": {"y": 40}})
    assert answer.status_code == 202, answer.text
    task_id = answer.json()["id"]
    wait_for(lambda: state_of(api, task_id) == "succeeded", 30)
    record = api.get(f"/api/tasks/{task_id}").json()
    assert (record["name"], record["result"], record["queue"]) == ("api.add", 42, "default")
    assert record["worker"].startswith("w@")
    listed = api.get("/api/tasks", params={"state": "succeeded", "name": "api.add"}).json()
    assert [t["id"] for t in listed["items"]] == [task_id]
    (minute,) = api.get("/api/counters", params={"name": "api.add"}).json()
    assert (minute["name"], minute["processed"], minute["failed"]) == ("api.add", 1, 0)
    action = app.admin.actions().items[0]
    assert (action.actor, action.action, action.target, action.detail) == (
        "anonymous",
        "task.send",
        task_id,
        "api.add",
    )


def test_a_bound_task_is_checked_without_its_self(api: httpx.Client) -> None:
    ok = api.post("/api/tasks", json={"task": "api.scale", "args": [3], "options": {"countdown": 60}})
    assert ok.status_code == 202, ok.text
    bad = api.post("/api/tasks", json={"task": "api.scale", "args": [1, 2, 3]})
    assert bad.status_code == 400
    assert "api.scale(x: int, factor: int = 2)" in bad.json()["error"]


def test_send_refuses_arguments_that_do_not_fit_the_signature_and_sends_nothing(
    api: httpx.Client, app: Conveyor
) -> None:
    for body in (
        {"task": "api.add", "args": [1]},
        {"task": "api.add", "args": [1, 2], "kwargs": {"z": 3}},
        {"task": "api.add", "args": [1, 2, 3]},
    ):
        answer = api.post("/api/tasks", json=body)
        assert answer.status_code == 400, body
        assert "arguments do not fit api.add" in answer.json()["error"]
    assert app.admin.queues() == [] and app.admin.actions().items == ()


def test_send_refuses_bad_input_with_a_clear_json_error(api: httpx.Client, app: Conveyor) -> None:
    cases = [
        (b"{not json", "malformed JSON body"),
        (b"[1, 2]", "must be an object"),
        (b'{"args": [1, 2]}', "'task' (the task's name) is required"),
        (b'{"task": "api.add", "args": {"x": 1}}', "'args' must be an array"),
        (b'{"task": "api.add", "args": [1, 2], "options": {"countdwn": 5}}', "did you mean 'countdown'"),
        (b'{"task": "api.add", "args": [1, 2], "options": {"priority": 42}}', "priority"),
        (b'{"task": "api.add", "args": [1, 2], "options": {"eta": "tomorrow"}}', "option 'eta'"),
        (b'{"task": "api.add", "argz": [1, 2]}', "unknown field(s) 'argz'"),
        (
            b'{"task": "api.add", "args": [1, 2], "options": {"task_id": 7}}',
            "option 'task_id' must be a string",
        ),
        (
            b'{"task": "api.add", "args": [1, 2], "options": {"countdown": "soon"}}',
            "'countdown' must be a number",
        ),
        (b'{"task": "api.add", "args": [1, 2], "options": {"max_retries": true}}', "must be an integer"),
        (b'{"task": "api.add", "args": [1, 2], "options": {"headers": [1]}}', "must be an object"),
        (b'{"task": "api.add", "args": [1, 2], "options": {"serializer": "pickle"}}', "accept_content"),
    ]
    for raw, message in cases:
        answer = api.post("/api/tasks", content=raw, headers={"content-type": "application/json"})
        assert answer.status_code == 400, (raw, answer.text)
        assert message in answer.json()["error"], (raw, answer.json())
    assert app.admin.queues() == []  # nothing was sent


def test_a_body_too_large_is_refused_before_it_is_read(api: httpx.Client, app: Conveyor) -> None:
    huge = b'{"task": "api.add", "args": ["' + b"x" * (2 * 1024 * 1024) + b'", 1]}'
    answer = api.post("/api/tasks", content=huge, headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "request body over 1024 KiB" in answer.json()["error"]
    assert app.admin.queues() == []


def test_send_an_unknown_task_is_404(api: httpx.Client) -> None:
    answer = api.post("/api/tasks", json={"task": "api.nope", "args": []})
    assert answer.status_code == 404
    assert answer.json() == {"error": "unknown task 'api.nope': not registered in this application"}


def test_an_eta_in_iso_8601_or_epoch_seconds_delays_the_task(api: httpx.Client, app: Conveyor) -> None:
    eta = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 3600))
    sent = []
    for when in (eta, time.time() + 7200):
        answer = api.post("/api/tasks", json={"task": "api.add", "args": [1, 2], "options": {"eta": when}})
        assert answer.status_code == 202
        sent.append(answer.json()["id"])
    assert [(q.name, q.ready, q.delayed) for q in app.admin.queues()] == [("default", 0, 2)]
    scheduled = api.get("/api/tasks", params={"state": "scheduled"}).json()["items"]
    assert [t["id"] for t in scheduled] == sent  # soonest due first


def test_reading_an_unknown_task_or_a_bad_filter_is_a_json_error(api: httpx.Client) -> None:
    unknown = api.get("/api/tasks/no-such-id")
    assert unknown.status_code == 404 and "no-such-id" in unknown.json()["error"]
    assert api.get("/api/tasks", params={"state": "sleeping"}).status_code == 400
    assert api.get("/api/tasks", params={"limit": "ten"}).json() == {
        "error": "query parameter 'limit' must be an integer, not 'ten'"
    }
    assert api.get("/api/tasks", params={"limit": 0}).status_code == 400
    assert api.get("/api/tasks", params={"since": "yesterday"}).status_code == 400
    assert api.get("/api/no-such-thing").status_code == 404
    assert api.get("/api/tasks/x/revoke").status_code == 405


def test_revoke_with_terminate_stops_a_running_task(
    api: httpx.Client, app: Conveyor, worker: WorkerProcess
) -> None:
    task_id = api.post("/api/tasks", json={"task": "api.sleeper", "args": [60]}).json()["id"]
    wait_for(lambda: state_of(api, task_id) == "running", 30)
    answer = api.post(f"/api/tasks/{task_id}/revoke", json={"terminate": True})
    assert answer.status_code == 200, answer.text
    assert answer.json()["terminate"] is True
    wait_for(lambda: state_of(api, task_id) == "revoked", 30)
    action = app.admin.actions().items[0]
    assert (action.action, action.target) == ("task.revoke", task_id)
    assert "terminate=True" in action.detail


def test_revoke_an_unknown_id_is_404_and_a_bad_signal_400(api: httpx.Client) -> None:
    assert api.post("/api/tasks/no-such-id/revoke", json={}).status_code == 404
    task_id = api.post("/api/tasks", json={"task": "api.add", "args": [1, 2]}).json()["id"]
    bad = api.post(f"/api/tasks/{task_id}/revoke", json={"terminate": True, "signal": "SIGBOGUS"})
    assert bad.status_code == 400


def test_the_dashboard_sends_a_task_of_a_module_named_by_include(tmp_path: Path) -> None:
    """`conveyor -A APP dashboard` imports the app's task modules as a worker does: a task
    in a module named only by ``include=`` (the layout the migration guide shows) is
    registered, so ``POST /api/tasks`` sends it instead of answering 404 "unknown task"."""
    url, port, token = f"sqlite:///{tmp_path / 'inc.db'}", free_port(), "include-token-0123456789"
    command = ["dashboard", "--port", str(port), "--token", token]
    server = ConveyorProcess(url, tmp_path, command, "tests.apps.include_app", "dash-include")
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert server.proc.poll() is None, server.log()
        try:
            return httpx.get(base + "/api/workers", timeout=2).status_code in (200, 401)
        except httpx.HTTPError:
            return False

    try:
        wait_for(answers, 30, interval=0.1)
        sent = httpx.post(
            base + "/api/tasks",
            json={"task": "tests.apps.include_tasks.double", "args": [21]},
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert sent.status_code == 202, sent.text
        reader = Conveyor("inc", broker=url)
        assert [(q.name, q.ready) for q in reader.admin.queues()] == [("default", 1)]
        reader.close()
    finally:
        server.stop()
