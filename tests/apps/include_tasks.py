"""Tasks of tests/apps/include_app.py: nothing imports this module but the worker (include=)."""

from tests.apps.include_app import app


@app.task
def double(x: int) -> int:
    return 2 * x
