"""Logging: the task's id and name on every record, ``get_task_logger``, the worker's formats.

    from conveyor.log import get_task_logger
    logger = get_task_logger(__name__)

    @app.task
    def refresh(city_id: int) -> None:
        logger.info("refreshing %s", city_id)   # record.task_id, record.task_name are set

While a task runs, *every* log record -- from any logger: the task's, a library's, the
worker's own -- carries ``task_id``, ``task_name`` and ``worker`` attributes (None outside a
task). They come from a log-record factory that reads the running task's ``Request`` from its
context variable, so they are right in worker threads and in asyncio tasks alike, without a
filter on every handler.

Conveyor's loggers (docs/signals.md#logging has the Celery equivalents):

==========================  ====================================================================
``conveyor``                parent of them all
``conveyor.worker``         worker lifecycle, fetching, settling
``conveyor.worker.outcome`` one line per task outcome: succeeded, retry, failed, dead letter
``conveyor.task``           parent of every ``get_task_logger`` logger (Celery's ``celery.task``)
``conveyor.signals``        a signal handler that raised
``conveyor.supervisor``     ``worker --processes``: children started, died, replaced
``conveyor.beat``           the periodic scheduler
``conveyor.coordination``   locks, rate and concurrency limits
==========================  ====================================================================
"""

from __future__ import annotations

import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import msgspec

from .request import current_request
from .signals import setup_logging

TASK_LOGGER = "conveyor.task"
OUTCOME_LOGGER = "conveyor.worker.outcome"  # one line per task outcome (worker/reporter.py)
RESERVED = frozenset({"conveyor", TASK_LOGGER})
LOG_FORMATS = ("text", "json")

#: Celery's worker formats: a record inside a task names it.
WORKER_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
TASK_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"

_lock = threading.Lock()
_installed = False
_worker_name: str | None = None  # this process's worker, for records outside a task


def install_task_context() -> None:
    """Give every log record made from now on ``task_id``, ``task_name`` and ``worker``.

    Idempotent; the worker and ``get_task_logger`` call it. The previous record factory is
    kept and called first, so another library's factory still applies.
    """
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            request = current_request.get()
            if request is None:
                record.task_id = record.task_name = None
                record.worker = _worker_name
            else:
                record.task_id, record.task_name = request.id, request.task
                record.worker = request.hostname or _worker_name
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def set_worker_name(name: str) -> None:
    """The worker running in this process (the ``worker`` of records outside a task)."""
    global _worker_name
    _worker_name = name


def get_task_logger(name: str) -> logging.Logger:
    """A logger for task code, a child of ``conveyor.task`` (as Celery's is of ``celery.task``),
    so configuring ``conveyor.task`` configures the logging of every task module.

    >>> get_task_logger("proj.tasks").parent.name
    'conveyor.task'
    """
    if name in RESERVED:
        raise ValueError(f"logger name {name!r} is Conveyor's own: use your module's __name__")
    install_task_context()
    logger = logging.getLogger(name)
    logger.parent = logging.getLogger(TASK_LOGGER)
    return logger


class TaskFormatter(logging.Formatter):
    """A formatter whose format may use ``%(task_id)s`` and ``%(task_name)s`` (``???`` outside a
    task), like Celery's ``celery.app.log.TaskFormatter``: usable from a Django ``LOGGING`` dict
    as ``{"()": "conveyor.log.TaskFormatter", "fmt": "..."}``."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "task_id", None) is None:
            # A copy: the same record may go on to a JSON handler, which wants null there.
            record = logging.makeLogRecord({**record.__dict__, "task_id": "???", "task_name": "???"})
        return super().format(record)


class WorkerFormatter(logging.Formatter):
    """The worker's text format: Celery's task format inside a task, the plain one outside."""

    def __init__(self) -> None:
        super().__init__(WORKER_FORMAT)
        self._in_task = logging.Formatter(TASK_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        # An outcome line names its task in its own words ("task add[id] succeeded"), and
        # carries task_id only for a TaskFormatter or the JSON format: the plain format here.
        if getattr(record, "task_id", None) is not None and record.name != OUTCOME_LOGGER:
            return self._in_task.format(record)
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time`` (ISO 8601, UTC), ``level``,
    ``logger``, ``message``, ``task_id``, ``task_name``, ``worker`` (null when not known),
    ``process``, and ``exc_info`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "task_id": getattr(record, "task_id", None),
            "task_name": getattr(record, "task_name", None),
            "worker": getattr(record, "worker", None),
            "process": record.process,
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return msgspec.json.encode(entry, enc_hook=str).decode()


def configure(loglevel: str, logfile: str | None = None, fmt: str = "text") -> None:
    """Set up logging for ``conveyor worker``/``beat``: ``loglevel`` on the root logger, and a
    handler writing ``fmt`` (text or json) to ``logfile`` or stderr.

    If a ``setup_logging`` handler is connected, Conveyor configures nothing and calls it
    instead (Celery's rule). Without ``logfile``, a root logger that already has handlers
    (Django's ``LOGGING``) is left as it is. Raises ``OSError`` if ``logfile`` cannot be opened.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    install_task_context()
    level = getattr(logging, loglevel.upper())
    if setup_logging.receivers:
        setup_logging.send(None, loglevel=level, logfile=logfile, format=fmt, colorize=False)
        return
    root = logging.getLogger()
    root.setLevel(level)
    if logfile is None and root.handlers:
        return
    handler: logging.Handler
    if logfile:
        # WatchedFileHandler reopens the file when logrotate moves it away. Imported here only:
        # logging.handlers (with pickle and socket) is no cost to a process that logs to stderr.
        from logging.handlers import WatchedFileHandler

        handler = WatchedFileHandler(logfile)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else WorkerFormatter())
    root.addHandler(handler)
