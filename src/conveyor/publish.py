"""Sending jobs to the broker, retrying connection failures per Celery's publish-retry settings.

``task_publish_retry`` (default True) and ``task_publish_retry_policy`` (``max_retries``,
``interval_start``, ``interval_step``, ``interval_max``) mean what they mean in Celery. After the
last attempt the producer gets ``BrokerError``, one line naming the broker and the cause. Enqueue
is idempotent by job id, so an attempt that reached the broker before the connection dropped is
not enqueued twice by the retry.

``before_publish`` and ``after_publish`` send the ``before_task_publish`` and
``after_task_publish`` signals with the message in Celery's shape (task protocol 2: the id and
name in ``headers``, ``body = (args, kwargs, embed)``). Headers a handler adds travel with the
message: the task reads them in ``self.request.headers``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .brokers import Broker, JobSpec
from .exceptions import BrokerError
from .message import all_args
from .request import iso_time
from .signals import after_task_publish, before_task_publish

if TYPE_CHECKING:
    from .appproto import AppLike
    from .message import Envelope

DEFAULT_POLICY: dict[str, float] = {
    "max_retries": 3,
    "interval_start": 0.0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}


def retry_intervals(retry: bool, policy: Mapping[str, Any] | None) -> list[float]:
    """The pauses before each retry of a failed publish (empty: no retry), per the policy."""
    settings = {**DEFAULT_POLICY, **(policy or {})}
    retries = int(settings["max_retries"]) if retry else 0
    interval, out = float(settings["interval_start"]), []
    for _ in range(retries):
        out.append(interval)
        interval = min(interval + float(settings["interval_step"]), float(settings["interval_max"]))
    return out


def publish(broker: Broker, jobs: Sequence[JobSpec], retry: bool, policy: Mapping[str, Any] | None) -> None:
    """Enqueue ``jobs``, retrying ``BrokerError`` as the policy says (the async twin is in aio.py)."""
    try:
        broker.enqueue(jobs)  # the first attempt reads no policy: this is every .delay()'s path
        return
    except BrokerError:
        pauses = retry_intervals(retry, policy)
        if not pauses:
            raise
    for attempt, pause in enumerate(pauses, 1):
        time.sleep(pause)
        try:
            broker.enqueue(jobs)
            return
        except BrokerError:
            if attempt == len(pauses):
                raise


def send_in_chunks(app: AppLike, jobs: Sequence[JobSpec], chunk: int) -> None:
    """Send ``jobs`` in chunks of ``chunk`` (each chunk one broker round trip, atomic on its own)."""
    conf = app.conf
    broker, retry, policy = app.broker, conf.task_publish_retry, conf.task_publish_retry_policy
    for start in range(0, len(jobs), chunk):
        publish(broker, jobs[start : start + chunk], retry, policy)


#: Headers Conveyor fills from the message itself; a handler's changes to these are not kept.
MESSAGE_HEADERS = frozenset({"lang", "task", "id", "eta", "expires", "retries", "timelimit"})


def _headers(env: Envelope) -> dict[str, Any]:
    return {
        **env.headers,
        "lang": "py",
        "task": env.task,
        "id": env.id,
        "eta": iso_time(env.eta),
        "expires": iso_time(env.expires),
        "retries": env.retries,
        "timelimit": [env.time_limit, env.soft_time_limit],
    }


def _body(env: Envelope) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    # A packed message (msgpack, pickle, compressed) is this producer's own: decode it for the handler.
    args, kwargs = (env.args, env.kwargs) if env.payload is None else all_args(env)
    return args, kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def before_publish(env: Envelope, policy: Mapping[str, Any] | None) -> None:
    """Send ``before_task_publish`` for ``env`` (not yet encoded); keep the headers handlers add."""
    headers = _headers(env)
    before_task_publish.send(
        env.task,
        body=_body(env),
        exchange="",
        routing_key=env.queue,
        headers=headers,
        properties={"priority": env.priority, "correlation_id": env.id},
        declare=[],
        retry_policy={**DEFAULT_POLICY, **(policy or {})},
    )
    env.headers = {k: v for k, v in headers.items() if k not in MESSAGE_HEADERS}


def after_publish(env: Envelope) -> None:
    """Send ``after_task_publish`` for ``env``, now in the broker."""
    after_task_publish.send(
        env.task, body=_body(env), exchange="", routing_key=env.queue, headers=_headers(env)
    )
