"""Every page and action of the dashboard over HTTP, on SQLite and on Redis, against a real
server and a real worker: each action does what it says and lands in the action log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conveyor import Conveyor
from conveyor.dashboard.rerun import CannotRerun, rebuild_call

from ..procs import lines
from ..redis_server import RedisServer
from .server import DashboardServer, csrf_post, wait_until

NOTE = "tests.apps.dashboard_app.note"
GATED = "tests.apps.dashboard_app.gated"
REPORTING = "tests.apps.dashboard_app.reporting"
PAGES = ["/", "/queues", "/workers", "/tasks", "/scheduled", "/dead", "/periodic", "/locks", "/actions"]


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def dash_broker(request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    """Overrides conftest's: this module runs on both brokers (its own redis-server, so no other
    test's flush or worker meets this module's)."""
    if request.param == "sqlite":
        yield f"sqlite:///{workdir / 'actions.db'}"
        return
    redis = RedisServer().start()
    try:
        yield redis.url
    finally:
        redis.cleanup()


@pytest.fixture(scope="module")
def admin(server: DashboardServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def _done(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    return httpx.URL(location).params.get("done", "")


def test_every_page_renders_with_data(admin: httpx.Client, producer: Conveyor) -> None:
    sent = producer.send_task(NOTE, ["render"], {"customer": "<script>alert(1)</script>"}, queue="default")
    producer.send_task(NOTE, ["later"], queue="dash-b", countdown=3600)
    wait_until(lambda: producer.admin.tasks(state="succeeded", search="render").items)
    for path in [*PAGES, f"/tasks/{sent.id}", "/scheduled", "/tasks?state=scheduled"]:
        page = admin.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert "<script>alert(1)</script>" not in page.text  # arguments are escaped
    assert "later" in admin.get("/scheduled").text
    assert admin.get("/tasks?since=yesterday").status_code == 400
    assert admin.get("/tasks/no-such-id").status_code == 404
    assert admin.get(f"/tasks?id={sent.id}").headers["location"].endswith(f"/tasks/{sent.id}")


def test_purge_asks_for_confirmation_then_deletes_the_waiting_tasks(
    admin: httpx.Client, producer: Conveyor
) -> None:
    for i in range(3):  # a queue no worker consumes: the tasks wait there
        producer.send_task(NOTE, [f"purge-{i}"], queue="dash-purge")
    confirm = admin.get("/queues/dash-purge/purge")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    assert producer.admin.queue("dash-purge").ready == 3  # looking is not purging
    assert "purged 3 tasks" in _done(csrf_post(admin, "/queues/dash-purge/purge"))
    assert all(q.name != "dash-purge" or q.ready == 0 for q in producer.admin.queues())  # empty: forgotten
    assert producer.admin.actions(limit=1).items[0].action == "queue.purge"


def test_run_again_sends_a_new_task_with_the_same_arguments(
    admin: httpx.Client, producer: Conveyor, workdir: Path
) -> None:
    token = f"again-{time.monotonic_ns()}"
    first = producer.send_task(NOTE, [token], {"customer": "c-1"}, queue="default")
    wait_until(lambda: producer.admin.task(first.id).state == "succeeded")
    moved = csrf_post(admin, f"/tasks/{first.id}/rerun")
    assert moved.status_code == 303
    new_id = moved.headers["location"].split("/tasks/")[1].split("?")[0]
    assert new_id != first.id
    wait_until(lambda: lines(workdir / "notes.log").count(token) == 2)
    wait_until(lambda: producer.admin.task(new_id).state == "succeeded")
    again = producer.admin.task(new_id)
    assert (again.name, again.args) == (NOTE, f"'{token}', customer='c-1'")


def test_run_again_never_evaluates_code_and_refuses_what_it_cannot_rebuild() -> None:
    assert rebuild_call("1, 'x', [2.5, None], flag=True, d={'k': (1, 2)}") == (
        [1, "x", [2.5, None]],
        {"flag": True, "d": {"k": (1, 2)}},
    )
    for text in ("__import__('os').system('touch /tmp/owned')", "<object at 0x7f>", "*args", "'abc…"):
        with pytest.raises(CannotRerun):
            rebuild_call(text)


def test_dead_letters_matching_a_filter_are_retried_or_deleted_all_at_once(
    admin: httpx.Client, producer: Conveyor, workdir: Path
) -> None:
    tag = f"bulk-{time.monotonic_ns()}"
    ids = [producer.send_task(GATED, [f"{tag}-{i}"], queue="default").id for i in range(3)]
    wait_until(lambda: len(producer.admin.dead_letters(search=tag).items) == 3)
    listed = admin.get(f"/dead?search={tag}")
    assert all(i in listed.text for i in ids)
    assert "Retry the dead letter" in admin.get(f"/tasks/{ids[0]}").text  # also from its task page
    (workdir / f"allow-{tag}-0").touch()
    one = _done(csrf_post(admin, "/dead", {"action": "retry", "id": ids[0], "search": tag}))
    assert one == "retried 1 dead letters"
    wait_until(lambda: f"{tag}-0" in lines(workdir / "gated.log"))
    wait_until(lambda: len(producer.admin.dead_letters(search=tag).items) == 2)
    assert (
        csrf_post(admin, "/dead", {"action": "delete", "search": tag}).status_code == 400
    )  # nothing selected
    everything = _done(csrf_post(admin, "/dead", {"action": "delete", "all": "1", "search": tag}))
    assert everything == "deleted 2 dead letters"
    assert producer.admin.dead_letters(search=tag).items == ()
    assert producer.admin.actions(limit=1).items[0].target == f"all matching search={tag}"


def test_revoke_from_the_task_page(admin: httpx.Client, producer: Conveyor) -> None:
    later = producer.send_task(NOTE, ["revoked"], queue="default", countdown=3600)
    assert "revoked" in _done(csrf_post(admin, f"/tasks/{later.id}/revoke"))
    assert producer.admin.actions(limit=1).items[0].action == "task.revoke"
    odd = producer.send_task(NOTE, ["odd"], queue="default", countdown=3600, task_id="import/2026 #7?")
    page = admin.get("/scheduled").text
    assert 'href="/tasks/import%2F2026%20%237%3F"' in page  # an id with '/', '#', '?' still links
    assert "import/2026 #7?" in admin.get("/tasks/import%2F2026%20%237%3F").text
    moved = csrf_post(admin, "/tasks/import%2F2026%20%237%3F/revoke")
    assert moved.headers["location"].startswith("/tasks/import%2F2026%20%237%3F?done=")
    assert producer.admin.actions(limit=1).items[0].target == odd.id


def test_the_task_page_shows_the_progress_a_running_task_reported(
    admin: httpx.Client, producer: Conveyor, workdir: Path
) -> None:
    token = f"progress-{time.monotonic_ns()}"
    running = producer.send_task(REPORTING, [token], queue="default")
    try:
        wait_until(lambda: "rows of " + token in admin.get(f"/tasks/{running.id}").text, 30)
        page = admin.get(f"/tasks/{running.id}").text
        assert "PROGRESS" in page and "3/4" in page and 'value="75.0"' in page
    finally:
        (workdir / f"allow-{token}").touch()
    assert running.get(timeout=30) == token


def test_periodic_entries_enable_disable_run_now_and_edit(admin: httpx.Client, producer: Conveyor) -> None:
    producer.schedules.add("dash-entry", NOTE, 3600.0, args=["periodic"], check_task=False)
    page = admin.get("/periodic")
    assert "dash-entry" in page.text and "every 1h" in page.text
    assert "disabled" in _done(csrf_post(admin, "/periodic/dash-entry/disable"))
    assert not producer.admin.schedules()[0].enabled
    csrf_post(admin, "/periodic/dash-entry/enable")
    assert producer.admin.schedules()[0].enabled
    assert "sent" in _done(csrf_post(admin, "/periodic/dash-entry/run"))
    assert producer.admin.schedules()[0].total_runs == 1
    assert "every 5m" in _done(csrf_post(admin, "/periodic/dash-entry/edit", {"schedule": "5m"}))
    bad = csrf_post(admin, "/periodic/dash-entry/edit", {"schedule": "every tuesday"})
    assert bad.status_code == 400
    assert producer.admin.schedules()[0].schedule == "every 5m"  # bad input loses nothing


def test_a_lock_is_released_from_the_locks_page(admin: httpx.Client, producer: Conveyor) -> None:
    lock = producer.lock("dash-lock", timeout=600)
    assert lock.acquire()
    assert "dash-lock" in admin.get("/locks").text
    assert "released" in _done(csrf_post(admin, "/locks/dash-lock/release"))
    assert all(info.name != "dash-lock" for info in producer.locks())
    assert csrf_post(admin, "/locks/dash-lock/release").status_code == 400  # not held any more


def test_a_worker_is_shut_down_gracefully_from_the_workers_page(
    admin: httpx.Client, producer: Conveyor, server: DashboardServer, dash_broker: str, workdir: Path
) -> None:
    from ..procs import WorkerProcess
    from .server import APP

    extra = WorkerProcess(dash_broker, workdir, "-Q", "dash-extra", app=APP, name="extra").wait_ready()
    try:
        wait_until(lambda: any(w.hostname.startswith("extra@") for w in producer.admin.workers()))
        hostname = next(w.hostname for w in producer.admin.workers() if w.hostname.startswith("extra@"))
        # A running task shows on its worker's card, with the pid of the process running it.
        token = f"card-{dash_broker.partition(':')[0]}"  # the work directory is shared by the brokers
        running = producer.send_task(REPORTING, [token], queue="dash-extra")
        wait_until(lambda: any(t.id == running.id for w in producer.admin.workers() for t in w.running))
        page = admin.get("/workers").text
        assert hostname in page and running.id[:12] in page
        assert f"<td>{extra.pid}</td>" in page  # a thread of that worker process runs it
        (workdir / f"allow-{token}").touch()
        assert running.get(timeout=30) == token
        assert "shutting down" in _done(csrf_post(admin, f"/workers/{hostname}/shutdown"))
        assert extra.proc.wait(timeout=30) == 0
        assert any(w.hostname.startswith("dash@") for w in producer.admin.workers())  # the other stays
    finally:
        extra.stop()


def test_every_process_of_a_worker_command_is_shut_down_from_the_workers_page(
    admin: httpx.Client, producer: Conveyor, dash_broker: str, workdir: Path
) -> None:
    """A ``--processes 2`` command shows both processes, each with its own button, and one
    button for the command: that one stops every process, and with them the command."""
    from ..procs import WorkerProcess
    from .server import APP

    command = WorkerProcess(
        dash_broker, workdir, "-Q", "dash-group", "--processes", "2", app=APP, name="group"
    ).wait_ready()
    try:

        def processes() -> list[str]:
            return [w.group for w in producer.admin.workers() if w.hostname.startswith("group.")]

        wait_until(lambda: len(processes()) == 2)
        group = processes()[0]
        assert group.startswith("group@") and processes() == [group, group]
        page = admin.get("/workers").text
        assert page.count(f"Shut down every process of {group}") == 1
        assert page.count("Shut down this process") >= 2
        said = _done(csrf_post(admin, f"/workers/{group}/shutdown"))
        assert "shutting down" in said, said
        # Both processes got it (a reply later than the page's 2 s wait is still a shutdown):
        # the command exits only once every one of its processes has.
        assert command.proc.wait(timeout=30) == 0
    finally:
        command.stop()


def test_a_periodic_entry_whose_name_holds_a_slash_is_acted_on(
    admin: httpx.Client, producer: Conveyor
) -> None:
    name = "reports/daily"
    producer.schedules.add(name, NOTE, 3600.0, args=["slash"], check_task=False)
    try:
        page = admin.get("/periodic")
        assert "/periodic/reports%2Fdaily/disable" in page.text  # the link the page renders
        assert "disabled" in _done(csrf_post(admin, "/periodic/reports%2Fdaily/disable"))
        assert not next(e for e in producer.admin.schedules() if e.name == name).enabled
        assert "sent" in _done(csrf_post(admin, "/periodic/reports%2Fdaily/run"))
    finally:
        producer.schedules.remove(name)
