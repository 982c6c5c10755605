"""The ``>>>`` examples in Conveyor's docstrings run, and print what they show.

An example that needs a live app or broker is marked ``# doctest: +SKIP`` on every line; the
rest (pure helpers: parsing, formatting, schedules, error messages) are checked here, so a
docstring cannot drift from the code it documents.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import conveyor

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(conveyor.__path__, "conveyor.")
    if not info.name.endswith(".__main__")  # importing it runs the command line
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run_as_shown(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(module, name):
        runner.run(test, out=lambda _text: None)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} docstring examples in {name} fail: run " + (
        f"python -m pytest --doctest-modules {module.__file__}"
    )


def test_every_module_is_walked() -> None:
    # The walk reaches subpackages (a module missing here would have its examples unchecked).
    assert {"conveyor.registry", "conveyor.brokers.redis.codec", "conveyor.worker.pools"} <= set(MODULES)
