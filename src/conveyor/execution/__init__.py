"""How one run of a task ends, shared by everything that runs tasks.

Below both the worker and coordination (docs/architecture.md), so either can build outcomes
and guards without importing the other:

* :mod:`.decision` -- what a task body's exception means: retry, reject or failure (the worker
  and eager ``apply()`` decide alike);
* :mod:`.outcomes` -- the ``Outcome`` the broker settles for each of those endings;
* :mod:`.guards` -- the ``RunGuard`` protocol: checks around a run that need the broker.
"""

from .decision import Decision, Verdict, check_retry_allowed, decide, describe, exc_qualname, failure_payload

__all__ = [
    "Decision",
    "Verdict",
    "check_retry_allowed",
    "decide",
    "describe",
    "exc_qualname",
    "failure_payload",
]
