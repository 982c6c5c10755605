"""The admin side of the control channel: send a command to named workers (or all live ones)
through the broker and collect their replies (``app.admin.control``).

Each destination worker gets its own copy of the command in its mailbox (worker/mailbox.py has
the keys); the worker's control thread answers within about ``worker/control.py`` ``POLL``
seconds. The sender waits at most ``timeout`` seconds (Celery's default: 1 s) and names every
worker that did not answer instead of waiting on: a worker that is gone — no heartbeat for a
lease — is reported at once without sending it anything.

>>> control = app.admin.control                                  # doctest: +SKIP
>>> [(r.hostname, r.ok, r.data) for r in control.ping(timeout=1.0)]  # doctest: +SKIP
[('w1@web-1', True, 'pong')]
>>> control.shutdown(destination=["w2@web-2"])                    # doctest: +SKIP
[Reply(hostname='w2@web-2', ok=True, data='shutting down', ...)]
"""

from __future__ import annotations

import signal as _signal  # `signal` is the name of the revoke argument here
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..coordination.rate_limit import parse_rate
from ..coordination.retime import retime
from ..message import new_task_id
from ..worker import mailbox
from ..worker.history import record_revoked
from ..worker.mailbox import Command, RateOverride
from .errors import UnknownQueue, UnknownTask, UnknownWorker

if TYPE_CHECKING:
    from .api import Admin
    from .records import WorkerInfo

DEFAULT_TIMEOUT = 1.0  # Celery's
REVOKE_TTL = 7 * 86400.0  # task_revoke_expires' default: how long a revoke is remembered
REPLY_POLL = 0.05  # how often the sender looks for replies


@dataclass(frozen=True, slots=True)
class Reply:
    """One worker's answer to a command. ``replied`` False: it did not answer in time (or is
    gone), and ``error`` says which; ``ok`` False with ``replied``: it answered with an error."""

    worker: str  # the unique lease-owner id
    hostname: str  # the -n name
    replied: bool
    ok: bool
    data: Any = None
    error: str | None = None


class Control:
    """Commands to workers; every method returns one ``Reply`` per destination worker."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self.broker = admin.broker

    # -- the commands ------------------------------------------------------------------------
    def ping(self, destination: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
        """Ask workers to answer: a reply proves the worker reads its mailbox now.

        >>> [r.data for r in app.admin.control.ping()]               # doctest: +SKIP
        ['pong']
        """
        return self.send("ping", {}, destination, timeout)

    def shutdown(self, destination: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
        """Drain workers gracefully, as SIGTERM does (under ``--processes`` the child is not
        replaced). Without a destination: every live worker.

        >>> app.admin.control.shutdown(destination=["w1@web-1"])   # doctest: +SKIP
        """
        return self.send("shutdown", {}, destination, timeout)

    def add_consumer(
        self, queue: str, destination: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT
    ) -> list[Reply]:
        """Workers start fetching from ``queue`` too (any name: a queue need not exist yet).

        >>> app.admin.control.add_consumer("emails", destination=["w1@web-1"])  # doctest: +SKIP
        """
        if not queue:
            raise ValueError("a queue name is needed")
        return self.send("add_consumer", {"queue": queue}, destination, timeout)

    def cancel_consumer(
        self, queue: str, destination: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT
    ) -> list[Reply]:
        """Workers stop fetching from ``queue``; ``UnknownQueue`` if no destination worker
        consumes it.

        >>> app.admin.control.cancel_consumer("emails")             # doctest: +SKIP
        """
        workers = self.destinations(destination)
        if not any(queue in w.queues for w in workers if not w.gone):
            names = sorted({q for w in workers for q in w.queues})
            consumed = ", ".join(names) or "none"
            raise UnknownQueue(f"unknown queue {queue!r}: no such worker consumes it (consumed: {consumed})")
        return self._send_to("cancel_consumer", {"queue": queue}, workers, timeout)

    def rate_limit(
        self,
        task: str,
        rate: str | None,
        destination: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
        known: Collection[str] = (),
    ) -> list[Reply]:
        """Change ``task``'s rate limit cluster-wide at run time (``rate`` None or "0": no
        limit). Stored in the broker, so workers started later honour it too; the live workers
        are told at once, and the runs the old limit held back take the new one
        (coordination/retime.py). ``ValueError`` for a bad rate, ``UnknownTask`` if no live worker
        registers the task (nor is it in ``known``: the caller's own task names).

        >>> app.admin.control.rate_limit("proj.tasks.scrape", "10/m")  # doctest: +SKIP
        """
        text = normalise_rate(rate)
        registered = {name for w in self.admin.workers() for name in w.registered} | set(known)
        if task not in registered:
            raise UnknownTask(f"unknown task {task!r}: no live worker registers it")
        override = RateOverride(text, time.time())
        self.broker.kv_put(mailbox.RATE_PREFIX + task, mailbox.encode(override))
        replies = self.send("rate_limit", {"task": task, "rate": text}, destination, timeout)
        # After the workers were told (or the reply timeout passed): a run brought forward
        # before its worker knew the new limit would only reserve again under the old one.
        retime(self.broker, task, None if text is None else parse_rate(text))
        return replies

    def rate_limits(self) -> dict[str, str | None]:
        """The rate limits set at run time, by task name (None: the limit was removed)."""
        found = {}
        for key, entry in self.broker.kv_scan(mailbox.RATE_PREFIX).items():
            found[key[len(mailbox.RATE_PREFIX) :]] = mailbox.decode_rate(entry.value).rate
        return found

    def revoke(
        self,
        ids: Sequence[str],
        terminate: bool = False,
        signal: str = "SIGTERM",
        destination: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
        allow_unknown: bool = False,
    ) -> list[Reply]:
        """Revoke tasks durably (stored in the broker first: a worker that is down now still
        honours it), then tell the live workers, which skip them if prefetched and, with
        ``terminate``, stop them if running. Each reply lists the ids that worker held
        (``revoked``) and the running ones it stopped (``terminated``). An id the broker has
        never heard of raises ``UnknownTask`` (nothing is revoked) unless ``allow_unknown``
        (to revoke an id before it is sent).

        >>> app.admin.control.revoke(["5b1e..."], terminate=True)     # doctest: +SKIP
        """
        signal = normalise_signal(signal)
        if not allow_unknown:
            self._check_ids(ids)
        # Stored without terminate first: the heartbeats would otherwise race the command to the
        # running task, and a worker's reply could not say that it was the one that stopped it.
        if self.admin.task_history:  # the ones dropped from the queues get a "revoked" record
            record_revoked(self.broker, list(ids), False, REVOKE_TTL, self.admin.lost)
        else:
            self.broker.revoke(list(ids), False, REVOKE_TTL, self.admin.lost)
        args = {"ids": list(ids), "terminate": terminate, "signal": signal}
        try:
            return self.send("revoke", args, destination, timeout)
        finally:
            if terminate:  # now durable: a worker that did not reply stops it at its next heartbeat
                self.broker.revoke(list(ids), True, REVOKE_TTL)

    def reserved(self, destination: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
        """The tasks each worker has prefetched and not started yet."""
        return self.send("reserved", {}, destination, timeout)

    def scheduled(self, destination: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
        """The eta/countdown tasks each worker holds: always none (they wait in the broker's
        delayed set until due, so a worker crash cannot lose them; ``queues`` counts them)."""
        return self.send("scheduled", {}, destination, timeout)

    def revoked(self, destination: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT) -> list[Reply]:
        """The revoked task ids each worker knows of (told by control or among its leases)."""
        return self.send("revoked", {}, destination, timeout)

    def query_task(
        self, ids: Sequence[str], destination: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT
    ) -> list[Reply]:
        """Which worker holds these tasks: each reply maps id to ``{"state": "active" |
        "reserved", ...}``. ``UnknownTask`` for an id the broker has never heard of."""
        self._check_ids(ids)
        return self.send("query_task", {"ids": list(ids)}, destination, timeout)

    def _check_ids(self, ids: Sequence[str]) -> None:
        if not ids:
            raise ValueError("at least one task id is needed")
        for task_id in ids:
            if self.broker.status(task_id) is None:
                raise UnknownTask(f"unknown task id {task_id!r} (never sent, or its record expired)")

    # -- sending -----------------------------------------------------------------------------
    def send(
        self, name: str, args: dict[str, Any], destination: Sequence[str], timeout: float
    ) -> list[Reply]:
        """Send command ``name`` to ``destination`` (-n names or lease-owner ids; empty: every
        live worker) and wait up to ``timeout`` seconds for the replies."""
        return self._send_to(name, args, self.destinations(destination), timeout)

    def destinations(self, names: Sequence[str]) -> list[WorkerInfo]:
        """The workers these names mean (all live ones for none); ``UnknownWorker`` for a name
        no recent heartbeat carries. A worker gone but still listed is kept, to be reported."""
        if not names:
            return self.admin.workers()
        known = self.admin.workers(include_gone=True)
        chosen: list[WorkerInfo] = []
        for name in names:
            found = [w for w in known if w.answers_to(name)]
            if not found:
                live = ", ".join(sorted({w.hostname for w in known if not w.gone})) or "none"
                raise UnknownWorker(f"unknown worker {name!r} (live: {live})")
            chosen.extend(w for w in found if w not in chosen)
        return chosen

    def _send_to(
        self, name: str, args: dict[str, Any], workers: Sequence[WorkerInfo], timeout: float
    ) -> list[Reply]:
        if name not in mailbox.COMMANDS:
            known = ", ".join(sorted(mailbox.COMMANDS))
            raise ValueError(f"unknown control command {name!r} (known: {known})")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        command_id = new_task_id()
        raw = mailbox.encode(Command(command_id, name, args, time.time()))
        waiting: dict[str, WorkerInfo] = {}
        answered: dict[str, Reply] = {}
        for w in workers:
            if w.gone:
                age = time.time() - w.heartbeat
                gone = f"gone (no heartbeat for {age:.1f} s)"
                answered[w.name] = Reply(w.name, w.hostname, replied=False, ok=False, error=gone)
                continue
            self.broker.kv_put(mailbox.mailbox(w.name) + command_id, raw, ttl=timeout)
            waiting[w.name] = w
        deadline = time.monotonic() + timeout
        while waiting:
            for key, entry in self.broker.kv_scan(mailbox.replies(command_id)).items():
                owner = key[len(mailbox.replies(command_id)) :]
                if owner in waiting:
                    got = mailbox.decode_reply(entry.value)
                    answered[owner] = Reply(owner, got.hostname, True, got.ok, got.data, got.error)
                    del waiting[owner]
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(REPLY_POLL)
        for owner, w in waiting.items():
            silent = f"did not reply within {timeout:g} s"
            answered[owner] = Reply(owner, w.hostname, replied=False, ok=False, error=silent)
        return [answered[w.name] for w in workers]


def normalise_rate(rate: str | None) -> str | None:
    """A rate string checked (``ValueError`` naming the accepted forms); "0"/"none": no limit."""
    if rate is None or str(rate).strip().lower() in ("0", "none", "off"):
        return None
    parse_rate(rate)
    return str(rate).strip()


SIGNALS = ("SIGTERM", "SIGKILL", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1")  # the usual ones, for help texts


def normalise_signal(signal: str) -> str:
    """Celery's signal names: ``TERM`` or ``SIGTERM`` (any case) -> ``SIGTERM``. Any signal this
    platform has, as in Celery (a -P processes child that outlives it a second gets SIGKILL)."""
    name = signal.strip().upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name not in _signal.Signals.__members__ or name.startswith("SIGRT"):
        raise ValueError(f"unknown signal {signal!r} (a signal name such as {', '.join(SIGNALS)})")
    return name
