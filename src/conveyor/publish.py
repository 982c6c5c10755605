"""Sending jobs to the broker, retrying connection failures per Celery's publish-retry settings.

``task_publish_retry`` (default True) and ``task_publish_retry_policy`` (``max_retries``,
``interval_start``, ``interval_step``, ``interval_max``) mean what they mean in Celery. After the
last attempt the producer gets ``BrokerError``, one line naming the broker and the cause. Enqueue
is idempotent by job id, so an attempt that reached the broker before the connection dropped is
not enqueued twice by the retry.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .brokers import Broker, JobSpec
from .exceptions import BrokerError

if TYPE_CHECKING:
    from .appproto import AppLike

DEFAULT_POLICY: dict[str, float] = {
    "max_retries": 3,
    "interval_start": 0.0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}


def publish(broker: Broker, jobs: Sequence[JobSpec], retry: bool, policy: Mapping[str, Any] | None) -> None:
    """Enqueue ``jobs``, retrying ``BrokerError`` as the policy says."""
    settings = {**DEFAULT_POLICY, **(policy or {})}
    attempts = int(settings["max_retries"]) + 1 if retry else 1
    interval = float(settings["interval_start"])
    for attempt in range(attempts):
        try:
            broker.enqueue(jobs)
            return
        except BrokerError:
            if attempt == attempts - 1:
                raise
        time.sleep(interval)
        interval = min(interval + float(settings["interval_step"]), float(settings["interval_max"]))


def send_in_chunks(app: AppLike, jobs: Sequence[JobSpec], chunk: int) -> None:
    """Send ``jobs`` in chunks of ``chunk`` (each chunk one broker round trip, atomic on its own)."""
    conf = app.conf
    broker, retry, policy = app.broker, conf.task_publish_retry, conf.task_publish_retry_policy
    for start in range(0, len(jobs), chunk):
        publish(broker, jobs[start : start + chunk], retry, policy)
