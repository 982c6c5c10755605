"""The workflow side of a job the broker ends without a worker's settle: revoked while still
queued (``revoke``), or moved to the dead letters after its worker died on it too often
(``reclaim``). Such a job would otherwise leave its chord incomplete for ever and its chain's
later steps pending; the broker asks this for the job's failure continuation and applies it in
the same atomic step as the drop or dead-lettering (docs/workflows.md, "Lost steps").

Only those rare paths call it (an operator's revoke, a worker's death), never the drain: a
plain job is skipped on a substring test of its body, before any decoding.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..brokers import Continuation, Outcome
from ..brokers.records import WORKFLOW_MARK
from ..message import decode_envelope
from ..request import Request
from .continuations import failed_continuation

if TYPE_CHECKING:
    from ..appproto import AppLike

logger = logging.getLogger("conveyor.worker")


def lost_continuation(
    app: AppLike, task_id: str, body: bytes, state: str, payload: bytes
) -> Continuation | None:
    """What follows ``body``'s job ending in ``state`` (REVOKED or FAILURE) with ``payload``
    without a worker: its chain's later steps get that failure, its ``link_error`` callbacks
    are enqueued, and a chord header joins its group as a failed member. None outside a
    workflow, or if the body cannot be read (the drop goes on: nothing is lost by it)."""
    if WORKFLOW_MARK not in body:
        return None
    try:
        env = decode_envelope(body)
    except Exception:
        logger.exception("task %s: unreadable message; its workflow cannot be continued", task_id)
        return None
    wf = env.workflow
    if wf is None:
        return None
    request = Request(id=env.id, task=env.task, retries=env.retries, queue=env.queue, workflow=wf)
    try:
        return failed_continuation(app, wf, request, Outcome("ack", task_id, 0, state, payload))
    except Exception:
        logger.exception("task %s: the failure of its workflow could not be built", task_id)
        return None
