"""The HTTP API mounted on its own has no CSRF token: every POST must say
``Content-Type: application/json``, which a cross-site HTML form (or a "simple" fetch) cannot
send, so a forged one is refused with 415 before it acts."""

from __future__ import annotations

import httpx
import pytest

from conveyor import Conveyor


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/x-www-form-urlencoded"},  # <form method=post>
        {"Content-Type": "multipart/form-data; boundary=x"},  # <form enctype=multipart/form-data>
        {"Content-Type": "text/plain"},  # <form enctype=text/plain>, fetch(no-cors) with a string
        {},  # fetch(no-cors) with no body
    ],
    ids=["form", "multipart", "text", "none"],
)
def test_a_post_that_is_not_json_is_refused_with_415_and_does_nothing(
    api: httpx.Client, app: Conveyor, headers: dict[str, str]
) -> None:
    app.tasks["api.add"].apply_async((1, 2), queue="emails")
    forged = [
        api.post("/api/queues/emails/pause", content=b"x=1" if headers else b"", headers=headers),
        api.post("/api/tasks", content=b"task=api.add&args=1", headers=headers),
        api.post("/api/dead-letters/delete", content=b"matching=", headers=headers),
    ]
    for answer in forged:
        assert answer.status_code == 415, answer.text
        assert "application/json" in answer.json()["error"]
    assert not app.admin.queue("emails").paused
    assert not app.admin.actions().items
    assert api.post("/api/queues/emails/pause", json={}).status_code == 200
    charset = {"Content-Type": "application/json; charset=utf-8"}
    assert api.post("/api/queues/emails/resume", content=b"", headers=charset).status_code == 200


def test_the_openapi_description_lists_415_on_every_post(api: httpx.Client) -> None:
    paths = api.get("/api/openapi.json").json()["paths"]
    posts = [ops["post"] for ops in paths.values() if "post" in ops]
    assert posts and all("415" in op["responses"] for op in posts)
