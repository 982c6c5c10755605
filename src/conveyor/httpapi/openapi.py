"""The OpenAPI 3.1 description of the HTTP API, generated from the endpoints' own descriptions
(endpoint.py) — the same objects the routes are built from, so every route is in it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .. import __version__
from . import schemas
from .endpoint import Endpoint

_PATH_PARAM = re.compile(r"{(\w+)}")


def describe(endpoints: Sequence[Endpoint], prefix: str = "/api") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        operation: dict[str, Any] = {
            "summary": e.summary,
            "operationId": e.summary.replace(" ", "_"),
            "parameters": [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in _PATH_PARAM.findall(e.path)
            ]
            + [
                {
                    "name": p.name,
                    "in": "query",
                    "description": p.description,
                    "schema": _schema(p.type, p.repeated),
                }
                for p in e.params
            ],
            "responses": {
                str(status): {
                    "description": text,
                    "content": {"application/json": {"schema": _answer(e) if status < 400 else ERROR}},
                }
                for status, text in e.responses.items()
            },
        }
        if e.body is not None:
            operation["requestBody"] = {"content": {"application/json": {"schema": e.body}}}
        operation["responses"]["503"] = {
            "description": "the broker cannot be reached",
            "content": {"application/json": {"schema": ERROR}},
        }
        if e.acts:
            operation["responses"]["403"] = {
                "description": "the user is read-only",
                "content": {"application/json": {"schema": ERROR}},
            }
        if e.method not in ("GET", "HEAD"):
            operation["responses"]["415"] = {
                "description": "Content-Type is not application/json (required on every POST)",
                "content": {"application/json": {"schema": ERROR}},
            }
        paths.setdefault(prefix + e.path, {})[e.method.lower()] = operation
    paths["/health"] = {
        "get": {
            "summary": "health",
            "operationId": "health",
            "description": "200 when the broker answers and every queue with ready tasks (and every "
            "queue named by ?queue=) has a live fetching worker; 503 with the reasons otherwise. "
            "Needs no credentials.",
            "parameters": [
                {
                    "name": "queue",
                    "in": "query",
                    "description": "a queue that must have a worker",
                    "schema": _schema("string", True),
                }
            ],
            "responses": {"200": {"description": "healthy"}, "503": {"description": "unhealthy"}},
        }
    }
    records = sorted({e.returns for e in endpoints if e.returns is not None}, key=lambda r: r.__name__)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Conveyor HTTP API",
            "version": __version__,
            "description": "Read and control a Conveyor cluster; see docs/http-api.md. "
            'Errors are {"error": "..."} with the status.',
        },
        "paths": paths,
        "components": {"schemas": schemas.components(records)},
    }


ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}


def _answer(e: Endpoint) -> dict[str, Any]:
    if e.returns is None:
        return {"type": "object"}
    one = schemas.ref(e.returns)
    if e.shape == "list":
        return {"type": "array", "items": one}
    if e.shape == "page":
        return {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": one},
                "offset": {"type": "integer"},
                "limit": {"type": "integer"},
                "next_offset": {
                    "type": ["integer", "null"],
                    "description": "the next page's offset; null: last",
                },
                "total": {"type": ["integer", "null"], "description": "matching items, when known"},
                "searched_records": {
                    "type": ["integer", "null"],
                    "description": "a bounded history search (Redis) read only this many newest records",
                },
                "searched_until": {
                    "type": ["number", "null"],
                    "description": "the time of the oldest record that bounded search read",
                },
            },
            "required": ["items", "offset", "limit", "next_offset", "total"],
        }
    return one


def _schema(kind: str, repeated: bool) -> dict[str, Any]:
    return {"type": "array", "items": {"type": kind}} if repeated else {"type": kind}
