"""Finding the app named by ``-A``: ``proj``, ``proj.tasks``, or ``proj.tasks:app``.

For a package with no app of its own (a Django project's ``proj``), its ``proj.conveyor`` or
``proj.celery`` module is tried, as Celery's ``-A proj`` finds ``proj/celery.py``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import click

from ..app import Conveyor


def load_app(spec: str | None) -> Conveyor:
    """Import the module and find its ``Conveyor`` instance; raise a one-line ``UsageError`` otherwise."""
    if not spec:
        raise click.UsageError("no app given: pass -A module (or -A module:attribute), or set CONVEYOR_APP")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the project directory is importable
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.UsageError(f"cannot import app module {module_name!r}: {exc}") from exc
    if attr:
        app = getattr(module, attr, None)
        if not isinstance(app, Conveyor):
            apps = sorted(name for name, value in vars(module).items() if isinstance(value, Conveyor))
            hint = f"; its apps: {', '.join(f'{module_name}:{name}' for name in apps)}" if apps else ""
            if not hasattr(module, attr):
                raise click.UsageError(f"module {module_name!r} has no attribute {attr!r}{hint}")
            kind = type(app).__name__
            raise click.UsageError(f"{module_name}:{attr} is not a Conveyor app (it is a {kind}){hint}")
        return app
    for name in ("app", "conveyor", "celery"):
        candidate = getattr(module, name, None)
        if isinstance(candidate, Conveyor):
            return candidate
    found = [v for v in vars(module).values() if isinstance(v, Conveyor)]
    if len(found) == 1:
        return found[0]
    if not found:
        # A Django project's package: its app module, named as Celery's (proj/celery.py) or ours.
        for submodule in (f"{module_name}.conveyor", f"{module_name}.celery"):
            if hasattr(module, "__path__") and importlib.util.find_spec(submodule) is not None:
                return load_app(submodule)
        raise click.UsageError(f"module {module_name!r} has no Conveyor app (use -A module:attribute)")
    raise click.UsageError(
        f"module {module_name!r} has several Conveyor apps; name one with -A {module_name}:NAME"
    )
