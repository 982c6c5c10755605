"""Signals with Celery's names: call your code when something happens to a task or a worker.

    from conveyor.signals import task_failure

    @task_failure.connect
    def alert(sender, task_id, exception, args, kwargs, einfo, **extra):
        ...

    @task_success.connect(sender=add)        # only for this task (the task or its name)
    def counted(sender, result, **extra): ...

Every signal, who sends it and with which keyword arguments, is listed in docs/signals.md. Like
Celery's, a handler should accept ``**kwargs``: later versions may pass more.

What Conveyor promises beyond Celery: a handler that raises is logged (logger
``conveyor.signals``, with the task id when there is one) and the next handler still runs; it
never changes the outcome of a task, never loses one, and never stops a worker. ``send`` returns
each handler's answer (or the exception it raised), as Celery's does.

Handlers are kept by strong reference (Celery keeps weak ones by default, so a handler defined
in a function silently disappears when it is garbage collected); ``dispatch_uid`` or
connecting the same function twice keeps one copy.

This module is in the core layer: anything may send a signal, and sending one to no handler
costs one check of a list.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar, overload

from .request import current_request

logger = logging.getLogger("conveyor.signals")

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)


def _same_sender(wanted: object, sender: object) -> bool:
    """Whether a handler connected for ``wanted`` hears a signal sent by ``sender``.

    The same object, or the same task name: a task signal is sent by the task object and a
    publish signal by the task's name, and ``connect(sender=add)`` and
    ``connect(sender="proj.add")`` both work for either (in Celery only the one the signal
    uses works, a well-known surprise).
    """
    if wanted is sender:
        return True
    return _name_of(wanted) is not None and _name_of(wanted) == _name_of(sender)


def _name_of(obj: object) -> str | None:
    if isinstance(obj, str):
        return obj
    name = getattr(obj, "name", None) if hasattr(obj, "apply_async") else None
    return name if isinstance(name, str) else None


class Signal:
    """A named event that handlers connect to.

    >>> ping = Signal("ping")
    >>> @ping.connect
    ... def pong(sender, **kwargs):
    ...     return "pong"
    >>> ping.send(sender=None)[0][1]
    'pong'
    """

    def __init__(self, name: str, providing_args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.providing_args = providing_args
        # (key, handler, sender filter); replaced whole on change, so send() iterates a
        # snapshot without a lock and a handler may connect or disconnect while being called.
        self.receivers: tuple[tuple[object, Handler, object], ...] = ()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"

    @overload
    def connect(
        self, receiver: H, /, *, sender: object = None, weak: bool = True, dispatch_uid: object = None
    ) -> H: ...
    @overload
    def connect(
        self,
        receiver: None = None,
        /,
        *,
        sender: object = None,
        weak: bool = True,
        dispatch_uid: object = None,
    ) -> Callable[[H], H]: ...

    def connect(
        self,
        receiver: Handler | None = None,
        /,
        *,
        sender: object = None,
        weak: bool = True,
        dispatch_uid: object = None,
    ) -> Any:
        """Connect ``receiver``: ``sig.connect(fn)``, ``@sig.connect`` or
        ``@sig.connect(sender=task)``. ``weak`` is accepted for Celery's signature; handlers
        are always kept (see the module docstring)."""
        del weak

        def register(fn: H) -> H:
            if not callable(fn):
                raise TypeError(f"{self.name}.connect() takes a callable, got {fn!r}")
            key = dispatch_uid if dispatch_uid is not None else fn
            with self._lock:
                kept = [r for r in self.receivers if not (r[0] == key and r[2] is sender)]
                self.receivers = (*kept, (key, fn, sender))
            return fn

        return register(receiver) if receiver is not None else register

    def disconnect(
        self, receiver: Handler | None = None, sender: object = None, dispatch_uid: object = None
    ) -> bool:
        """Disconnect a handler (by function or ``dispatch_uid``); True if it was connected."""
        key = dispatch_uid if dispatch_uid is not None else receiver
        with self._lock:
            kept = tuple(r for r in self.receivers if not (r[0] == key and r[2] is sender))
            found = len(kept) != len(self.receivers)
            self.receivers = kept
        return found

    def send(self, sender: object, **named: Any) -> list[tuple[Handler, Any]]:
        """Call every handler connected for ``sender``; return ``[(handler, answer), ...]``.

        A handler that raises is logged and its answer is the exception; the others still run.
        """
        answers: list[tuple[Handler, Any]] = []
        for _key, fn, wanted in self.receivers:
            if wanted is not None and not _same_sender(wanted, sender):
                continue
            try:
                answers.append((fn, fn(signal=self, sender=sender, **named)))
            except (Exception, SystemExit) as exc:
                logger.exception(
                    "signal handler %s for %s raised%s; ignored",
                    getattr(fn, "__qualname__", repr(fn)),
                    self.name,
                    _context(named),
                )
                answers.append((fn, exc))
        return answers

    send_robust = send  # Django's name: send is already robust


def _context(named: dict[str, Any]) -> str:
    """`` (task <id>)`` when the signal concerns one task, for the log line."""
    task_id = named.get("task_id")
    if task_id is None:
        request = named.get("request")
        task_id = getattr(request, "id", None)
    if task_id is None:
        headers = named.get("headers")
        task_id = headers.get("id") if isinstance(headers, dict) else None
    if task_id is None:  # sent from inside a run (task_success): the run's own id
        running = current_request.get()
        task_id = running.id if running is not None else None
    return f" (task {task_id})" if task_id else ""


# -- task signals: the producer side -----------------------------------------------------------
before_task_publish = Signal(
    "before_task_publish",
    ("body", "exchange", "routing_key", "headers", "properties", "declare", "retry_policy"),
)
after_task_publish = Signal("after_task_publish", ("body", "exchange", "routing_key", "headers"))

# -- task signals: the worker side (and eager apply()) ------------------------------------------
task_prerun = Signal("task_prerun", ("task_id", "task", "args", "kwargs"))
task_postrun = Signal("task_postrun", ("task_id", "task", "args", "kwargs", "retval", "state"))
task_success = Signal("task_success", ("result", "runtime"))
task_failure = Signal("task_failure", ("task_id", "exception", "args", "kwargs", "traceback", "einfo"))
task_retry = Signal("task_retry", ("request", "reason", "einfo"))
task_revoked = Signal("task_revoked", ("request", "terminated", "signum", "expired"))
task_unknown = Signal("task_unknown", ("name", "id", "message", "exc"))
task_rejected = Signal("task_rejected", ("message", "exc"))

# -- worker, beat and logging -------------------------------------------------------------------
worker_init = Signal("worker_init")
worker_process_init = Signal("worker_process_init")
worker_ready = Signal("worker_ready")
worker_shutdown = Signal("worker_shutdown")
beat_init = Signal("beat_init")
setup_logging = Signal("setup_logging", ("loglevel", "logfile", "format", "colorize"))

__all__ = [
    "Signal",
    "after_task_publish",
    "beat_init",
    "before_task_publish",
    "setup_logging",
    "task_failure",
    "task_postrun",
    "task_prerun",
    "task_rejected",
    "task_retry",
    "task_revoked",
    "task_success",
    "task_unknown",
    "worker_init",
    "worker_process_init",
    "worker_ready",
    "worker_shutdown",
]
