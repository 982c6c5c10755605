"""The dashboard's security promises against a real server: credentials, read-only users,
CSRF, the bearer token, the action log, the bind check, hashed passwords."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor import Conveyor
from conveyor.dashboard import WebUser, asgi_app
from conveyor.dashboard.auth import AuthConfigError, Security, hash_line, parse_auth_lines, verify_password

from ..procs import ROOT, WorkerProcess, wait_for
from ..redis_server import free_port
from .server import TOKEN, VIEWER, DashboardServer, csrf_post


def test_a_request_without_credentials_is_refused(server: DashboardServer) -> None:
    for path in ("/", "/queues", "/dead", "/static/dashboard.js"):
        response = httpx.get(server.url + path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Basic")
    assert httpx.get(server.url + "/", auth=("admin", "wrong")).status_code == 401
    assert httpx.get(server.url + "/", auth=("nobody", "admin-pw")).status_code == 401
    assert httpx.get(server.url + "/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(server.url + "/queues/dash-b/pause").status_code == 401


def test_a_read_only_user_sees_every_page_but_cannot_act(server: DashboardServer, producer: Conveyor) -> None:
    with server.client(VIEWER) as viewer:
        page = viewer.get("/queues")
        assert page.status_code == 200
        assert "read-only" in page.text
        assert ">Pause<" not in page.text and "Purge" not in page.text  # no action buttons
        refused = csrf_post(viewer, "/queues/dash-b/pause")
        assert refused.status_code == 403
        assert "read-only" in refused.text
    assert not any(q.paused for q in producer.admin.queues() if q.name == "dash-b")


def test_a_forged_action_without_the_csrf_token_is_refused(
    server: DashboardServer, producer: Conveyor
) -> None:
    with server.client() as admin:
        assert admin.post("/queues/dash-b/pause").status_code == 403  # the cookie alone
        assert admin.post("/queues/dash-b/pause", data={"csrf_token": "forged"}).status_code == 403
        bare = httpx.post(
            server.url + "/queues/dash-b/pause", auth=("admin", "admin-pw"), data={"csrf_token": "x"}
        )
        assert bare.status_code == 403  # no cookie at all
        assert not any(q.paused for q in producer.admin.queues() if q.name == "dash-b")
        # The JSON API refuses in JSON (every answer of it is), the pages in plain text.
        api = admin.post("/api/queues/dash-b/pause")
        assert (api.status_code, api.headers["content-type"]) == (403, "application/json")
        assert api.json() == {
            "error": "CSRF token missing or wrong: send a bearer token (conveyor dashboard --token), "
            "or the conveyor_csrf cookie's value in an X-CSRF-Token header"
        }
        assert admin.post("/queues/dash-b/pause").headers["content-type"].startswith("text/plain")
        anonymous = httpx.get(server.url + "/api/queues")
        assert (anonymous.status_code, anonymous.json()) == (401, {"error": "authentication required"})
        done = csrf_post(admin, "/queues/dash-b/pause")
        assert done.status_code == 303
        assert producer.admin.queue("dash-b").paused
        assert csrf_post(admin, "/queues/dash-b/resume").status_code == 303
        assert not producer.admin.queue("dash-b").paused


def test_a_bearer_token_client_needs_no_csrf_token(server: DashboardServer, producer: Conveyor) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(server.url + "/queues", headers=headers).status_code == 200
    assert httpx.post(server.url + "/queues/dash-b/pause", headers=headers).status_code == 303
    assert producer.admin.queue("dash-b").paused
    assert httpx.post(server.url + "/queues/dash-b/resume", headers=headers).status_code == 303


def test_every_action_is_written_to_the_action_log(server: DashboardServer, producer: Conveyor) -> None:
    with server.client() as admin:
        csrf_post(admin, "/queues/dash-a/pause")
        csrf_post(admin, "/queues/dash-a/resume")
        entries = producer.admin.actions(limit=2).items
        assert [(a.actor, a.action, a.target) for a in entries] == [
            ("admin", "queue.resume", "dash-a"),
            ("admin", "queue.pause", "dash-a"),
        ]
        page = admin.get("/actions")
        assert "queue.resume" in page.text and "dash-a" in page.text


def test_a_non_loopback_bind_without_authentication_is_refused(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "conveyor", "-b", f"sqlite:///{tmp_path / 'b.db'}", "dashboard"]
    refused = subprocess.run(
        [*cmd, "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "without authentication" in refused.stderr and "--insecure-no-auth" in refused.stderr
    bad = subprocess.run(
        [*cmd, "--auth", "no-password"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 2 and "USER:PASSWORD" in bad.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_an_every_interface_bind_prints_a_url_a_browser_can_open(tmp_path: Path, host: str) -> None:
    server = DashboardServer(f"sqlite:///{tmp_path / 'b.db'}", tmp_path, "--host", host)
    try:
        wait_for(lambda: "dashboard: " in server.log() or server.proc.poll() is not None, 30)
        [line] = [text for text in server.log().splitlines() if text.startswith("dashboard: ")]
        printed = line.split()[1]
        assert urlsplit(printed).hostname == ("::1" if host == "::" else "127.0.0.1"), line
        shown_host = "[::]" if host == "::" else host
        assert f"(listening on all interfaces, {shown_host}:{server.port}; " in line, line
        assert line.endswith(f"from another machine: http://{socket.gethostname()}:{server.port}/)"), line

        def answers() -> bool:
            assert server.proc.poll() is None, f"dashboard exited:\n{server.log()}"
            try:
                return httpx.get(printed, timeout=2).status_code == 401  # the login, not a dead end
            except httpx.HTTPError:
                return False

        wait_for(answers, 30, interval=0.1)
    finally:
        server.stop()


def test_hash_password_reads_a_piped_password_without_a_prompt_or_warning(tmp_path: Path) -> None:
    def hash_from(stdin: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "conveyor", "dashboard", "--hash-password", user],
            cwd=ROOT,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            start_new_session=True,  # no controlling terminal getpass could turn to instead of the pipe
        )

    piped = hash_from(" s3cret pw \nignored second line\n")
    assert piped.returncode == 0 and piped.stderr == "", piped
    [line] = piped.stdout.splitlines()
    account = parse_auth_lines([line])["alice"]
    assert account.verify(" s3cret pw ") and not account.verify("s3cret pw") and account.can_act
    empty = hash_from("")
    assert empty.returncode == 2 and empty.stdout == ""
    assert "--hash-password alice: no password on stdin" in empty.stderr and "Traceback" not in empty.stderr
    # A bad user name is refused before the password is read (stdin left unread: no password).
    bad = hash_from("", user="al:ice")
    assert bad.returncode != 0 and bad.stdout == "" and "bad user name 'al:ice'" in bad.stderr, bad
    assert "no password on stdin" not in bad.stderr


def test_passwords_are_kept_hashed() -> None:
    line = hash_line("ops", "s3cret", read_only=True)
    assert "s3cret" not in line and line.startswith("ops:scrypt$") and line.endswith(":read-only")
    account = parse_auth_lines(["# users", "", line])["ops"]
    assert account.verify("s3cret") and not account.verify("s3cret ") and not account.can_act
    pbkdf2 = "pbkdf2_sha256$1000$c2FsdA==$" + _pbkdf2("pw", b"salt", 1000)
    assert verify_password("pw", pbkdf2) and not verify_password("px", pbkdf2)
    with pytest.raises(AuthConfigError, match="line 2"):
        parse_auth_lines(["ok:" + pbkdf2, "ops:plaintext-password"])
    security = Security(parse_auth_lines([line]))
    basic = "Basic " + __import__("base64").b64encode(b"ops:s3cret").decode()
    user = security.authenticate(basic)
    assert user is not None and user.name == "ops" and not user.can_act
    assert security.authenticate(basic) == user  # remembered: no second scrypt
    assert security.authenticate("Basic " + "b3BzOnd yb25n") is None


def _pbkdf2(password: str, salt: bytes, iterations: int) -> str:
    import base64
    import hashlib

    return base64.b64encode(hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)).decode()


@contextlib.contextmanager
def _serve(web: Starlette) -> Iterator[str]:
    """Serve ``web`` with uvicorn in a thread on a free port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def mounted(dash_broker: str) -> Iterator[str]:
    """The dashboard mounted at /ops inside a host Starlette app (no auth of its own)."""
    app = Conveyor("host", broker=dash_broker)
    try:
        with _serve(Starlette(routes=[Mount("/ops", app=asgi_app(app))])) as url:
            yield url
    finally:
        app.close()


def test_mounted_under_a_path_inside_another_application(
    mounted: str, producer: Conveyor, worker: WorkerProcess
) -> None:
    """(``worker``: its heartbeat makes queue dash-b known, which a pause requires; without it
    the test passed only when xdist had run another test of the module on this process first.)"""
    with httpx.Client(base_url=mounted, timeout=30) as client:
        page = client.get("/ops/queues")
        assert page.status_code == 200
        assert 'href="/ops/workers"' in page.text and 'src="/ops/static/dashboard.js"' in page.text
        assert client.get("/ops/static/dashboard.css").status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]  # no inline script runs
        assert page.headers["set-cookie"].count("Path=/ops") == 1
        token = client.cookies.get("conveyor_csrf")
        assert client.post("/ops/queues/dash-b/pause").status_code == 403
        moved = client.post("/ops/queues/dash-b/pause", data={"csrf_token": token or ""})
        assert moved.status_code == 303 and moved.headers["location"].startswith("/ops/queues")
        assert producer.admin.queue("dash-b").paused
        client.post("/ops/queues/dash-b/resume", data={"csrf_token": token or ""})
        assert producer.admin.actions(limit=1).items[0].actor == "anonymous"


class HostAuth:
    """A host application's own auth: it names the user in the scope (``X-User``, role from
    ``X-Role``) before the mounted dashboard sees the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            name = headers.get(b"x-user", b"").decode()
            if name:
                scope["conveyor.user"] = WebUser(name, can_act=headers.get(b"x-role") != b"viewer")
        await self.app(scope, receive, send)


def test_a_host_application_names_the_user_of_a_mounted_dashboard(
    dash_broker: str, producer: Conveyor, worker: WorkerProcess
) -> None:
    app = Conveyor("host", broker=dash_broker)
    host = Starlette(routes=[Mount("/ops", app=asgi_app(app))], middleware=[Middleware(HostAuth)])
    with _serve(host) as url, httpx.Client(base_url=url, timeout=30) as client:
        viewer = {"X-User": "vera", "X-Role": "viewer"}
        assert "read-only" in client.get("/ops/queues", headers=viewer).text
        token = client.cookies.get("conveyor_csrf") or ""
        refused = client.post("/ops/queues/dash-b/pause", data={"csrf_token": token}, headers=viewer)
        assert refused.status_code == 403
        client.get("/ops/", headers={"X-User": "alice"})  # a CSRF token is minted for each user
        token = client.cookies.get("conveyor_csrf") or ""
        done = client.post(
            "/ops/queues/dash-b/pause", data={"csrf_token": token}, headers={"X-User": "alice"}
        )
        assert done.status_code == 303, done.text
        resumed = client.post(
            "/ops/queues/dash-b/resume", data={"csrf_token": token}, headers={"X-User": "alice"}
        )
        assert resumed.status_code == 303, resumed.text
    app.close()
    assert [(a.actor, a.action) for a in producer.admin.actions(limit=2).items] == [
        ("alice", "queue.resume"),
        ("alice", "queue.pause"),
    ]


def test_a_page_says_when_the_broker_is_unreachable(tmp_path: Path) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    server = DashboardServer(closed, tmp_path).wait_serving()
    try:
        with server.client() as admin:
            page = admin.get("/queues")
            assert page.status_code == 503
            assert "broker unreachable" in page.text
            assert admin.get("/health").status_code == 503
    finally:
        server.stop()


def test_users_from_an_auth_file_log_in_on_a_non_loopback_address(tmp_path: Path, dash_broker: str) -> None:
    users = tmp_path / "users"
    users.write_text(f"# ops team\n{hash_line('filer', 'file-pw', read_only=True)}\n")
    server = DashboardServer(dash_broker, tmp_path, "--host", "0.0.0.0", "--auth-file", str(users))
    try:
        server.wait_serving()
        assert httpx.get(server.url + "/queues", auth=("filer", "file-pw"), timeout=30).status_code == 200
        assert httpx.get(server.url + "/queues", auth=("filer", "wrong"), timeout=30).status_code == 401
        with server.client(("filer", "file-pw")) as filer:
            assert csrf_post(filer, "/queues/dash-b/pause").status_code == 403  # :read-only
    finally:
        server.stop()
    users.write_text("filer:plain-text-password\n")
    broken = subprocess.run(
        [sys.executable, "-m", "conveyor", "-b", dash_broker, "dashboard", "--auth-file", str(users)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert broken.returncode == 2 and "line 1" in broken.stderr
