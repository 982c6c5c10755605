"""JSON schemas of the admin records, generated from their dataclass fields, for the OpenAPI
description: the answers are ``to_json`` of these records (endpoint.py), field for field, so
the schema cannot drift from them (a test compares real answers with it)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def components(records: list[type]) -> dict[str, Any]:
    """``{name: schema}`` for these records and every record their fields hold."""
    found: dict[str, Any] = {}
    pending = list(records)
    while pending:
        record = pending.pop()
        if record.__name__ in found:
            continue
        hints = typing.get_type_hints(record)
        properties = {f.name: field_schema(hints[f.name], pending) for f in dataclasses.fields(record)}
        required = [
            f.name
            for f in dataclasses.fields(record)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        found[record.__name__] = {
            "type": "object",
            "description": (record.__doc__ or "").strip().split("\n\n")[0],
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
    return dict(sorted(found.items()))


def ref(record: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{record.__name__}"}


def field_schema(hint: Any, pending: list[type]) -> dict[str, Any]:
    """The schema of one field's type; records it names are added to ``pending``."""
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if hint is Any or hint is object:
        return {}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        options = [field_schema(a, pending) for a in args if a is not type(None)]
        schema = options[0] if len(options) == 1 else {"anyOf": options}
        if type(None) in args:
            return {"anyOf": [schema, {"type": "null"}]} if "type" not in schema else _nullable(schema)
        return schema
    if origin in (tuple, list):
        return {"type": "array", "items": field_schema(args[0], pending) if args else {}}
    if origin is dict:
        return {"type": "object", "additionalProperties": field_schema(args[1], pending) if args else {}}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        pending.append(hint)
        return ref(hint)
    return {}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}
