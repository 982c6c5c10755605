"""The dashboard's guards against guessing and forgery: user names cannot be told apart by a
401's cost, failed logins per address are bounded (429), CSRF tokens and action notes are
only the ones this server signed."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conveyor import Conveyor
from conveyor.dashboard import asgi_app, auth
from conveyor.dashboard.auth import MAX_FAILURES, Security, parse_plain
from conveyor.dashboard.signing import Signer

from ..procs import ROOT
from ..webserver import free_port, serving
from .server import ADMIN, VIEWER, DashboardServer, csrf_post


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_an_unknown_user_costs_the_same_password_check_as_a_wrong_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without it an unknown name got a fast 401 and a known one a scrypt-slow one: names could
    be enumerated by timing. Each attempt runs the real check once, against a real hash."""
    checked: list[str] = []
    real = auth.verify_password

    def counting(password: str, stored: str) -> bool:
        checked.append(stored)
        return real(password, stored)

    monkeypatch.setattr(auth, "verify_password", counting)
    account = parse_plain("ops:s3cret")
    security = Security({"ops": account})
    assert security.authenticate(_basic("nobody", "guess")) is None
    assert security.authenticate(_basic("ops", "guess")) is None
    assert len(checked) == 2
    assert checked[1] == account.password_hash
    assert checked[0] != account.password_hash and checked[0].startswith("scrypt$16384$8$1$")
    assert security.authenticate(_basic("ops", "s3cret")) is not None


@pytest.fixture
def guarded(dash_broker: str) -> Iterator[str]:
    """A dashboard with one account, served in this process (its own failed-login table)."""
    app = Conveyor("guarded", broker=dash_broker)
    try:
        with serving(asgi_app(app, accounts=[parse_plain("ops:right-pw")])) as url:
            yield url
    finally:
        app.close()


def test_too_many_failed_logins_from_one_address_get_429_with_retry_after(guarded: str) -> None:
    with httpx.Client(base_url=guarded, timeout=30) as client:
        assert client.get("/queues").status_code == 401  # no credentials: a browser's probe, no failure
        for _ in range(MAX_FAILURES):
            assert client.get("/queues", auth=("ops", "wrong")).status_code == 401
        for credentials in [("ops", "wrong"), ("ops", "right-pw"), ("someone", "x")]:
            limited = client.get("/queues", auth=credentials)
            assert limited.status_code == 429, credentials
            assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert client.get("/health").status_code in (200, 503)  # probes are never limited


def test_a_planted_csrf_cookie_and_matching_field_not_minted_by_the_server_is_refused(
    server: DashboardServer, producer: Conveyor
) -> None:
    """Another port or a sibling subdomain can set ``conveyor_csrf`` and post the same value: a
    value this server did not sign for this user is refused, even a token it minted for the
    attacker's own (read-only) account, or one signed under another secret."""
    with server.client(VIEWER) as viewer:
        viewers_token = viewer.cookies["conveyor_csrf"]
    planted = [
        "planted-by-a-sibling",
        "bm9uY2U.bWFj",  # the nonce.mac shape, made up
        Signer("another-secret-0123456789").csrf_token(ADMIN[0]),
        viewers_token,
    ]
    for value in planted:
        with httpx.Client(base_url=server.url, auth=ADMIN, timeout=30) as victim:
            victim.cookies.set("conveyor_csrf", value)
            forged = victim.post("/queues/dash-b/pause", data={"csrf_token": value})
            assert forged.status_code == 403, value
            assert "CSRF" in forged.text
    assert not producer.admin.queue("dash-b").paused
    with server.client() as admin:  # the server's own token still works, beside a planted one
        token = admin.cookies["conveyor_csrf"]
        admin.cookies.set("conveyor_csrf", "planted-by-a-sibling", path="/queues")  # sent first
        assert admin.post("/queues/dash-b/pause", data={"csrf_token": token}).status_code == 303
        assert admin.post("/queues/dash-b/resume", data={"csrf_token": token}).status_code == 303


def test_replicas_sharing_a_secret_accept_each_others_tokens(dash_broker: str) -> None:
    app = Conveyor("replicas", broker=dash_broker)
    secret = "shared-secret-for-every-replica"
    try:
        with (
            serving(asgi_app(app, secret=secret)) as one,
            serving(asgi_app(app, secret=secret)) as two,
            serving(asgi_app(app)) as other,
        ):
            token = httpx.get(one + "/", timeout=30).cookies["conveyor_csrf"]
            cookie = {"conveyor_csrf": token}
            answer = httpx.post(two + "/locks/none/release", data={"csrf_token": token}, cookies=cookie)
            assert answer.status_code == 400  # past the CSRF check: the lock is not held
            refused = httpx.post(other + "/locks/none/release", data={"csrf_token": token}, cookies=cookie)
            assert refused.status_code == 403
    finally:
        app.close()
    with pytest.raises(ValueError, match="at least 16"):
        Signer("short")


def test_a_note_the_server_did_not_sign_is_not_shown(server: DashboardServer) -> None:
    """``?done=`` once showed any text a link carried, as if the dashboard had said it."""
    lie = "Your password expired: call +1 555 0100"
    with server.client() as admin:
        assert lie not in admin.get("/queues", params={"done": lie}).text
        assert lie not in admin.get("/queues", params={"done": lie, "sig": "1.forged"}).text
        moved = csrf_post(admin, "/queues/dash-b/pause")
        assert moved.status_code == 303
        shown = admin.get(moved.headers["location"])
        assert "paused queue dash-b" in shown.text
        sig = httpx.URL(moved.headers["location"]).params["sig"]
        assert lie not in admin.get("/queues", params={"done": lie, "sig": sig}).text  # not its text
        csrf_post(admin, "/queues/dash-b/resume")
    with server.client(VIEWER) as viewer:  # a note signed for another user is not shown either
        assert "paused queue dash-b" not in viewer.get(moved.headers["location"]).text


def test_a_secret_too_short_to_sign_with_is_refused_at_start(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "conveyor", "-b", f"sqlite:///{tmp_path / 'b.db'}", "dashboard"]
    refused = subprocess.run(
        [*cmd, "--secret", "short", "--port", str(free_port())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "--secret" in refused.stderr and "at least 16" in refused.stderr
