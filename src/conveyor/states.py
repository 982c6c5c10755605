"""Task states, as Celery names them, plus ``UNKNOWN``.

``UNKNOWN`` is Conveyor's answer for an id that nobody ever enqueued (or whose result expired);
Celery says ``PENDING`` for those, which makes a typo'd id look like a stuck task.
"""

from __future__ import annotations

from typing import Final

PENDING: Final = "PENDING"  # enqueued, waiting for a worker (or for its eta)
STARTED: Final = "STARTED"  # a worker holds its lease
RETRY: Final = "RETRY"  # failed an attempt, waiting for the next one
SUCCESS: Final = "SUCCESS"
FAILURE: Final = "FAILURE"
REVOKED: Final = "REVOKED"  # revoked or expired; never ran (or was terminated)
UNKNOWN: Final = "UNKNOWN"  # no such task id

READY_STATES: Final = frozenset({SUCCESS, FAILURE, REVOKED})
UNREADY_STATES: Final = frozenset({PENDING, STARTED, RETRY})
EXCEPTION_STATES: Final = frozenset({FAILURE, RETRY, REVOKED})
ALL_STATES: Final = READY_STATES | UNREADY_STATES | {UNKNOWN}
