"""The dashboard in a real browser (chromium through Playwright), against a real server, a real
worker process and a SQLite broker: what an operator clicks does what it says."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor

from ..procs import WorkerProcess, lines
from .browser import launch, needs_chromium
from .server import ADMIN, VIEWER, DashboardServer, wait_until

pytestmark = needs_chromium

GATED = "tests.apps.dashboard_app.gated"
NOTE = "tests.apps.dashboard_app.note"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch()


def _context(browser: Any, server: DashboardServer, user: tuple[str, str] | None) -> Any:
    credentials = {"username": user[0], "password": user[1]} if user else None
    return browser.new_context(base_url=server.url, http_credentials=credentials)


@pytest.fixture
def errors() -> list[str]:
    return []


def _watch(page: Any, errors: list[str]) -> Any:
    page.on(
        "console",
        lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None,
    )
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    return page


@pytest.fixture
def admin_page(browser: Any, server: DashboardServer, errors: list[str]) -> Iterator[Any]:
    context = _context(browser, server, ADMIN)
    try:
        yield _watch(context.new_page(), errors)
    finally:
        context.close()


def _token() -> str:
    return uuid.uuid4().hex[:10]


def _dead_letter(producer: Conveyor, token: str) -> str:
    sent = producer.send_task(GATED, [token], queue="default")
    wait_until(lambda: any(d.id == sent.id for d in producer.admin.dead_letters(search=token).items))
    return sent.id


def test_each_page_loads_with_no_console_error(
    admin_page: Any, errors: list[str], server: DashboardServer, producer: Conveyor, workdir: Path
) -> None:
    dead_id = _dead_letter(producer, _token())
    done = producer.send_task(NOTE, [_token()], {"customer": "page-load"}, queue="default")
    wait_until(lambda: producer.admin.tasks(state="succeeded", search="page-load").items)
    paths = ["/", "/queues", "/workers", "/tasks", "/scheduled", "/dead", "/periodic", "/locks", "/actions"]
    paths += [f"/tasks/{dead_id}", f"/tasks/{done.id}", "/queues/default/purge", "/tasks?state=failed"]
    for path in paths:
        response = admin_page.goto(path)
        assert response.status == 200, path
        assert admin_page.locator("h1").count() == 1, path
    admin_page.goto("/")
    admin_page.wait_for_timeout(4000)  # one live refresh (every 3 s) happens with no error either
    assert errors == []


def test_a_page_updates_by_itself_without_a_reload(
    admin_page: Any, errors: list[str], producer: Conveyor
) -> None:
    from playwright.sync_api import expect

    admin_page.goto("/queues")
    state = admin_page.locator("tr[data-queue='dash-b'] .queue-state")
    assert "active" in state.inner_text()
    admin_page.evaluate("window.notReloaded = true")
    producer.admin.pause("dash-b")  # out of band: another operator, or the CLI
    try:
        expect(state).to_contain_text("paused", timeout=30_000)
        assert admin_page.evaluate("window.notReloaded") is True  # swapped in place, not reloaded
    finally:
        producer.admin.resume("dash-b")
    assert errors == []


def test_a_dead_letter_retried_from_the_page_runs(
    admin_page: Any, errors: list[str], producer: Conveyor, workdir: Path
) -> None:
    token = _token()
    dead_id = _dead_letter(producer, token)
    (workdir / f"allow-{token}").touch()
    admin_page.goto(f"/dead?search={token}")
    admin_page.check("#select-all")  # selects every row of the page
    assert admin_page.locator("input[name=id]:not(:checked)").count() == 0
    admin_page.uncheck("#select-all")
    assert admin_page.locator("input[name=id]:checked").count() == 0
    admin_page.check(f"input[name=id][value='{dead_id}']")
    admin_page.click("button[value=retry]")
    admin_page.wait_for_url("**/dead?**")
    assert "retried 1 dead letters" in admin_page.locator(".note").inner_text()
    wait_until(lambda: token in lines(workdir / "gated.log"))
    wait_until(lambda: producer.admin.task(dead_id).state == "succeeded")
    assert errors == []


def test_a_paused_queue_shows_paused_and_its_tasks_wait(
    admin_page: Any, errors: list[str], producer: Conveyor, workdir: Path, worker: WorkerProcess
) -> None:
    admin_page.goto("/queues")
    row = admin_page.locator("tr[data-queue='dash-a']")
    row.locator("button", has_text="Pause").click()
    admin_page.wait_for_url("**/queues?done=*")
    assert "paused" in admin_page.locator("tr[data-queue='dash-a'] .queue-state").inner_text()
    # The worker hears of the pause at its next heartbeat (a fetch already under way when the
    # pause lands gives its jobs back, not runs them); wait until it says so.
    wait_until(lambda: "queue dash-a is paused" in worker.log())
    token = _token()
    producer.send_task(NOTE, [token], queue="dash-a")
    wait_until(lambda: producer.admin.queue("dash-a").ready == 1)
    admin_page.wait_for_timeout(3000)  # a live worker consumes dash-a: it had time to take the task
    assert token not in lines(workdir / "notes.log")
    assert producer.admin.queue("dash-a").ready == 1
    admin_page.reload()
    row = admin_page.locator("tr[data-queue='dash-a']")
    row.locator("button", has_text="Resume").click()
    admin_page.wait_for_url("**/queues?done=*")
    wait_until(lambda: token in lines(workdir / "notes.log"))
    assert "active" in admin_page.locator("tr[data-queue='dash-a'] .queue-state").inner_text()
    assert errors == []


def test_search_finds_a_task_by_a_text_in_its_arguments(
    admin_page: Any, errors: list[str], producer: Conveyor
) -> None:
    customer = f"ACME-{_token()}"
    wanted = producer.send_task(NOTE, [_token()], {"customer": customer}, queue="default")
    producer.send_task(NOTE, [_token()], {"customer": "someone-else"}, queue="default")
    wait_until(lambda: producer.admin.tasks(state="succeeded", search=customer).items)
    admin_page.goto("/tasks")
    admin_page.fill("input[name=search]", customer.lower())  # case-insensitive
    admin_page.click("#task-search button[type=submit]")
    admin_page.wait_for_url("**/tasks?**")
    rows = admin_page.locator("#live table tbody tr")
    assert rows.count() == 1
    assert customer in rows.first.inner_text()
    rows.first.locator("a").click()
    admin_page.wait_for_url(f"**/tasks/{wanted.id}")
    assert "succeeded" in admin_page.locator("main").inner_text()
    assert errors == []


def test_a_request_without_credentials_is_refused(browser: Any, server: DashboardServer) -> None:
    from playwright.sync_api import Error

    for user in (None, ("admin", "not-the-password")):
        context = _context(browser, server, user)
        try:
            assert context.request.get("/queues").status == 401
            # Headless chromium shows the 401 page, or (after wrong credentials were offered)
            # fails the navigation: either way nothing of the dashboard.
            try:
                response = context.new_page().goto("/")
            except Error as exc:
                assert "AUTH" in str(exc)
            else:
                assert response is not None and response.status == 401
        finally:
            context.close()


def test_a_read_only_user_cannot_act(browser: Any, server: DashboardServer, producer: Conveyor) -> None:
    _dead_letter(producer, _token())
    context = _context(browser, server, VIEWER)
    try:
        page = context.new_page()
        page.goto("/queues")
        assert page.locator("tr[data-queue='dash-b']").count() == 1
        assert page.locator("main form[method=post]").count() == 0  # no action button at all
        page.goto("/dead")
        assert page.locator("input[name=id]").count() == 0
        token = next(c["value"] for c in context.cookies() if c["name"] == "conveyor_csrf")
        refused = page.request.post("/queues/dash-b/pause", form={"csrf_token": token})
        assert refused.status == 403
    finally:
        context.close()
    assert not producer.admin.queue("dash-b").paused


def test_a_forged_action_without_the_csrf_token_is_refused(
    admin_page: Any, server: DashboardServer, producer: Conveyor
) -> None:
    admin_page.goto("/queues")  # logged in, with the CSRF cookie
    # Another site's page that posts to the dashboard: the browser adds the credentials, but the
    # page cannot know the token.
    admin_page.set_content(
        f'<form id="f" method="post" action="{server.url}/queues/dash-b/pause">'
        '<input name="csrf_token" value="guess"></form>'
    )
    with admin_page.expect_navigation() as navigation:
        admin_page.eval_on_selector("#f", "f => f.submit()")
    assert navigation.value.status == 403
    assert not producer.admin.queue("dash-b").paused
