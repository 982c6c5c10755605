"""The worker's side of the control channel: a thread that polls this worker's mailbox in the
broker, acts on each command and writes the reply back (wire format: mailbox.py).

A thread, like the keeper, so that a solo-pool task holding the event loop does not stop the
worker from answering (``ping`` still says pong; ``revoke --terminate`` still reaches the task).
It polls every ``POLL`` seconds — one key/value scan of a short key range — so a command is
acted on well within Celery's default one-second reply timeout.

What each command does here:

- ``ping``: replies ``pong``.
- ``shutdown``: replies, then drains like SIGTERM (``Worker.stop``). Under ``--processes`` the
  supervisor does not replace a child shut down this way (supervisor.py ``SHUT_DOWN``).
- ``add_consumer``/``cancel_consumer``: the fetcher starts/stops fetching from the queue at its
  next fetch; the next heartbeat lists the new queues (``inspect active_queues``). Tasks of a
  cancelled queue already prefetched still run: they are leased to this worker.
- ``rate_limit``: the task's rate limit becomes the new one (or none) from its next run on; the
  admin API stored it in the broker first, so workers started later honour it too.
- ``revoke``: the revoke is stored in the broker by the admin API (durable); here it takes
  effect at once among the tasks this worker holds, and with ``terminate`` stops the running
  ones (see runners.py: an exception raised in the task's thread).
- ``reserved``, ``scheduled``, ``revoked``, ``query_task``: what this worker holds.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..coordination.options import TaskCoordination
from ..coordination.rate_limit import parse_rate
from ..exceptions import TaskRevokedError
from ..message import decode_envelope, describe_message_args
from . import mailbox
from .mailbox import Reply

if TYPE_CHECKING:
    from ..brokers import Broker, Delivery
    from .worker import Worker

logger = logging.getLogger("conveyor.worker")

POLL = 0.2  # seconds between two looks at the mailbox
MAX_REVOKED = 10_000  # revoked ids remembered for ``inspect revoked`` (oldest forgotten first)

Handler = Callable[[dict[str, Any]], Any]


class CommandError(Exception):
    """A command this worker cannot carry out; its message is the reply's one-line error."""


class ControlThread:
    """Answers the control commands sent to ``worker``: ``ControlThread(worker).start()``."""

    def __init__(self, worker: Worker, poll: float = POLL) -> None:
        self.worker = worker
        self.broker: Broker = worker.app.broker
        self.poll = poll
        self.revoked: OrderedDict[str, bool] = OrderedDict()  # id -> terminate, newest last
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-control", daemon=True)
        self._after: Callable[[], None] | None = None
        self.handlers: dict[str, Handler] = {
            "ping": lambda _args: "pong",
            "shutdown": self._shutdown,
            "add_consumer": self._add_consumer,
            "cancel_consumer": self._cancel_consumer,
            "rate_limit": self._rate_limit,
            "revoke": self._revoke,
            "reserved": lambda _args: self._reserved(),
            "scheduled": lambda _args: [],  # see docs/operations.md: eta tasks wait in the broker
            "revoked": lambda _args: list(self.revoked) + sorted(self._processor_revoked()),
            "query_task": self._query_task,
        }

    def start(self) -> None:
        """Apply the cluster's rate-limit overrides, then answer commands in the background."""
        try:
            self.apply_rate_overrides()
        except Exception as exc:  # the broker is down: the first fetch will say so too
            logger.warning("%s: could not read rate-limit overrides: %s", self.worker.hostname, exc)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        failing = False
        while not self._stop.wait(self.poll):
            try:
                self.poll_once()
                failing = False
            except Exception as exc:
                if not failing:  # once per outage: the keeper logs the broker's state anyway
                    logger.error("%s: control mailbox unreachable: %s", self.worker.hostname, exc)
                    failing = True

    def poll_once(self) -> None:
        """Take every command waiting in the mailbox, answer each, then run what follows a reply
        (a shutdown starts only once its reply is written)."""
        waiting = self.broker.kv_scan(mailbox.mailbox(self.worker.owner))
        # In the order they were sent (command ids are random): add_consumer then cancel_consumer
        # sent in one poll interval must end with the queue cancelled.
        for key, entry in sorted(waiting.items(), key=lambda item: _sent(item[1].value)):
            if not self.broker.kv_compare_and_set(key, entry.value, None):
                continue  # taken by an overlapping poll, or expired meanwhile
            reply = self.answer(entry.value)
            if reply is None:
                continue
            command_id = key.rsplit(":", 1)[1]
            after, self._after = self._after, None
            try:
                self.broker.kv_put(
                    mailbox.replies(command_id) + self.worker.owner,
                    mailbox.encode(reply),
                    ttl=mailbox.REPLY_TTL,
                )
            finally:  # the command was taken: act on it even if its reply could not be written
                if after is not None:
                    after()

    def answer(self, raw: bytes) -> Reply | None:
        """The reply to one command (None: not a command at all)."""
        owner, hostname = self.worker.owner, self.worker.hostname
        try:
            command = mailbox.decode_command(raw)
        except Exception as exc:
            logger.warning("%s: ignored a malformed control command: %s", hostname, exc)
            return None
        handler = self.handlers.get(command.name)
        if handler is None:
            return Reply(owner, hostname, ok=False, error=f"unknown control command {command.name!r}")
        try:
            return Reply(owner, hostname, data=handler(command.args))
        except CommandError as exc:
            return Reply(owner, hostname, ok=False, error=str(exc))
        except Exception as exc:
            logger.exception("%s: control command %s failed", hostname, command.name)
            return Reply(owner, hostname, ok=False, error=f"{type(exc).__name__}: {exc}")

    # -- the commands ------------------------------------------------------------------------
    def _shutdown(self, _args: dict[str, Any]) -> str:
        logger.warning("%s: shutdown requested by control command; draining", self.worker.hostname)
        self._after = self.worker.shutdown_by_control
        return "shutting down"

    def _add_consumer(self, args: dict[str, Any]) -> str:
        queue = _queue(args)
        if queue in self.worker.queues:
            return f"already consuming from {queue!r}"
        self.worker.set_queues([*self.worker.queues, queue])
        logger.warning("%s: started consuming from %s (control command)", self.worker.hostname, queue)
        return f"add consumer {queue!r}"

    def _cancel_consumer(self, args: dict[str, Any]) -> str:
        queue = _queue(args)
        if queue not in self.worker.queues:
            raise CommandError(f"not consuming from {queue!r}")
        self.worker.set_queues([q for q in self.worker.queues if q != queue])
        logger.warning("%s: stopped consuming from %s (control command)", self.worker.hostname, queue)
        return f"no longer consuming from {queue!r}"

    def _rate_limit(self, args: dict[str, Any]) -> str:
        name, rate = str(args.get("task")), args.get("rate")
        if name not in self.worker.app.tasks:
            raise CommandError(f"task {name!r} is not registered here")
        self.set_rate(name, None if rate is None else str(rate))
        return f"new rate limit set successfully: {rate or 'none'}"

    def _revoke(self, args: dict[str, Any]) -> dict[str, list[str]]:
        ids = [str(i) for i in args.get("ids", [])]
        terminate = bool(args.get("terminate"))
        for task_id in ids:
            self.revoked[task_id] = terminate
            self.revoked.move_to_end(task_id)
        while len(self.revoked) > MAX_REVOKED:
            self.revoked.popitem(last=False)
        fetcher, processor = self.worker._fetcher, self.worker._processor
        if fetcher is None or processor is None:
            return {"revoked": [], "terminated": []}
        held = {i: terminate for i in ids if i in fetcher.leases or i in processor.revoked}
        running = [i for i in held if i in processor.active]
        for task_id in running if terminate else []:
            active = processor.active.get(task_id)
            if active is not None:  # before the loop stops waiting for it: -P processes sends it
                active.signal = str(args.get("signal") or "SIGTERM")
        if held:
            processor.on_revoked(held, self.worker._loop)
        for task_id in running if terminate else []:
            # Raised from here too, not only from the loop (processor._terminate): under the solo
            # pool the task runs on the loop thread, so the loop cannot get to it until it ends.
            active = processor.active.get(task_id)
            if active is not None and active.call is not None:
                if active.stopped_at is None:  # where it is, before the exception unwinds it
                    active.stopped_at = active.call.stack()
                active.call.interrupt(TaskRevokedError)
        return {
            "revoked": sorted(held),
            "terminated": sorted(running) if terminate else [],
            "running": sorted(running),  # without terminate these run on to their end
        }

    def _reserved(self) -> list[dict[str, Any]]:
        fetcher = self.worker._fetcher
        if fetcher is None:
            return []
        waiting = fetcher.inbox.waiting()
        return [_describe(d) for d in waiting]

    def _query_task(self, args: dict[str, Any]) -> dict[str, dict[str, Any]]:
        ids = {str(i) for i in args.get("ids", [])}
        found: dict[str, dict[str, Any]] = {}
        processor = self.worker._processor
        if processor is not None:
            for active in list(processor.active.values()):
                if active.id in ids:
                    found[active.id] = {"state": "active", "name": active.task, "started": active.started}
        for reserved in self._reserved():
            if reserved["id"] in ids and reserved["id"] not in found:
                found[reserved["id"]] = {"state": "reserved", **reserved}
        return found

    def _processor_revoked(self) -> set[str]:
        processor = self.worker._processor
        return set(processor.revoked) - set(self.revoked) if processor is not None else set()

    # -- rate limits -------------------------------------------------------------------------
    def apply_rate_overrides(self) -> None:
        """Honour the rate limits set at run time (stored in the broker) for our tasks."""
        for key, entry in self.broker.kv_scan(mailbox.RATE_PREFIX).items():
            name = key[len(mailbox.RATE_PREFIX) :]
            if name in self.worker.app.tasks:
                try:
                    self.set_rate(name, mailbox.decode_rate(entry.value).rate)
                except ValueError as exc:
                    logger.warning("%s: bad rate limit override of %s: %s", self.worker.hostname, name, exc)

    def set_rate(self, name: str, rate: str | None) -> None:
        """Give task ``name`` a new rate limit (None: none) from its next run on."""
        task = self.worker.app.tasks[name]
        spec = task.coordination or TaskCoordination()
        task.coordination = dataclasses.replace(spec, rate=None if rate is None else parse_rate(rate))
        # The run guards and the run plan were built from the old options (app.run_guards,
        # processor.plans): drop both, so the next run builds them afresh.
        task.__dict__.pop("_guards", None)
        if self.worker._processor is not None:
            self.worker._processor.plans.pop(name, None)
        logger.warning("%s: rate limit of %s is now %s", self.worker.hostname, name, rate or "none")


def _sent(raw: bytes) -> float:
    try:
        return mailbox.decode_command(raw).sent
    except Exception:
        return 0.0  # malformed: answered (ignored) first


def _queue(args: dict[str, Any]) -> str:
    queue = args.get("queue")
    if not isinstance(queue, str) or not queue:
        raise CommandError(f"a queue name is needed, got {queue!r}")
    return queue


def _describe(d: Delivery) -> dict[str, Any]:
    """A prefetched delivery as ``inspect reserved`` shows it."""
    described: dict[str, Any] = {"id": d.id, "queue": d.queue, "delivery": d.delivery}
    try:
        env = decode_envelope(d.body)
        described.update(name=env.task, args=describe_message_args(env), eta=env.eta)
    except Exception:
        described.update(name="<malformed>", args="", eta=None)
    return described
