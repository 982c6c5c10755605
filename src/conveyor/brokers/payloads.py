"""Result payloads a broker writes itself (revoked, worker lost), shared by every broker."""

from __future__ import annotations

import time

from ..message import ResultPayload, encode_result


def revoked_payload(reason: str = "revoked") -> bytes:
    return encode_result(
        ResultPayload(
            exc_type="conveyor.exceptions.TaskRevokedError", exc_message=reason, date_done=time.time()
        )
    )


def worker_lost_reason(deaths: int) -> str:
    if deaths < 0:
        return (
            "worker lost while running it; not run again because the task is at-most-once (acks_late=False)"
        )
    return f"worker lost {deaths} times while running it (lease expired each time)"


def worker_lost_payload(reason: str, retries: int = 0) -> bytes:
    return encode_result(
        ResultPayload(
            exc_type="conveyor.exceptions.WorkerLostError",
            exc_message=reason,
            retries=retries,
            date_done=time.time(),
        )
    )


def malformed_id_payload(reason: str) -> bytes:
    """The FAILURE result of a job dead-lettered by the broker because its id is not UTF-8."""
    return encode_result(
        ResultPayload(exc_type="conveyor.exceptions.DecodeError", exc_message=reason, date_done=time.time())
    )
