"""``Task``: a function registered with an app, callable in the background.

``@app.task`` turns a function into a ``Task``. Calling the task runs the function here;
``.delay()`` / ``.apply_async()`` enqueue it; ``.apply()`` runs it here through the same retry
logic a worker uses. The task is generic over the function's parameters, so a type checker
checks ``.delay(...)`` arguments against the function's signature.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Literal,
    NoReturn,
    ParamSpec,
    TypedDict,
    TypeVar,
    Unpack,
    cast,
)

import msgspec

from . import aio, states
from .brokers.base import JobSpec
from .codecs import check_compression, check_sendable, check_serializer
from .coordination.options import TaskCoordination, pop_coordination
from .einfo import ExceptionInfo
from .exceptions import ConfigurationWarning, Retry, did_you_mean
from .execution import check_retry_allowed, decide, failure_payload
from .execution.trace import run_traced
from .message import Envelope, ResultPayload, all_args, encode_envelope, new_task_id, pack_args
from .options import MESSAGE_OPTIONS, EnqueueOptions, MessageOptions, check_options, enqueue_options
from .progress import (
    PROGRESS_STATE,
    Progress,
    check_state,
    encode_progress,
    end_eager,
    progress_meta,
    set_eager,
    writer,
)
from .publish import after_publish, before_publish, publish, send_in_chunks
from .registry import current_app
from .request import Request, current_request
from .results import AsyncResult, EagerResult
from .routing import resolve_route
from .signals import after_task_publish, before_task_publish

if TYPE_CHECKING:  # the type of ``task.app`` users see; nothing from app.py runs here
    from .app import Conveyor
    from .canvas import Signature

P = ParamSpec("P")
R = TypeVar("R")

BULK_CHUNK = 1000
_UNSET: Any = object()


class TaskOptions(TypedDict, total=False):
    """Options of ``@app.task(...)``, with Celery's names and meanings."""

    name: str
    queue: str
    priority: int
    max_retries: int | None
    default_retry_delay: float
    autoretry_for: tuple[type[BaseException], ...]
    dont_autoretry_for: tuple[type[BaseException], ...]
    retry_backoff: bool | float
    retry_backoff_max: float
    retry_jitter: bool
    time_limit: float | None
    soft_time_limit: float | None
    expires: float | timedelta | datetime | None
    acks_late: bool
    ignore_result: bool
    serializer: str  # "json", "msgpack", or "pickle" where accept_content names it
    compression: str | None  # "gzip" or "zlib": arguments of 1 KiB or more are compressed
    typing: bool
    base: type[Task[Any, Any]]  # a Task subclass whose hooks and class attributes apply
    # coordination across workers (conveyor.coordination, docs/coordination.md)
    lock: str | Callable[[dict[str, Any]], str]
    lock_timeout: float
    on_locked: Literal["skip", "retry", "wait"]
    unique_for: float
    unique_key: str | Callable[[dict[str, Any]], str]
    rate_limit: str | float | None
    concurrency_key: str | Callable[[dict[str, Any]], str]
    concurrency_limit: int


OPTION_NAMES = frozenset(TaskOptions.__annotations__) - {"base"}

#: Celery task options Conveyor accepts but has no use for: name -> what it does instead. Given
#: one, a task still registers (a ported module imports), with a ``ConfigurationWarning``
#: saying so — as the settings of the same names do (config.INSTEAD).
CELERY_OPTIONS_INSTEAD = {
    "track_started": "not needed: a task a worker holds is always STARTED",
    "reject_on_worker_lost": (
        "not needed: a task whose worker dies always runs again (leases), and goes to the dead "
        "letters after task_max_worker_deaths deaths"
    ),
    "acks_on_failure_or_timeout": (
        "not needed: a task that fails or passes its hard time limit is always settled, its "
        "failure recorded; it is retried only by its retry policy"
    ),
    "send_events": "not needed: task states are always recorded in the broker",
    "throws": (
        "not supported: every failure is logged with its traceback; catch an expected error in "
        "the task (or raise Reject) if it should not count as a failure"
    ),
}
HOOKS = ("before_start", "on_success", "on_failure", "on_retry", "after_return")


def _classes(value: Any) -> tuple[Any, ...]:
    """``autoretry_for``: a tuple of exception classes, or one class (as ``except`` takes it)."""
    return (value,) if isinstance(value, type) else tuple(value)


def create_task(
    fn: Callable[..., Any], app: Conveyor | None, bind: bool, options: Mapping[str, Any]
) -> Task[Any, Any]:
    """The task for ``@app.task(**options)``: an instance of ``base=`` (a ``Task`` subclass).

    >>> class Audited(Task):                                              # doctest: +SKIP
    ...     def on_failure(self, exc, task_id, args, kwargs, einfo): alert(task_id, exc)
    >>> @app.task(base=Audited)                                           # doctest: +SKIP
    ... def charge(order_id: int) -> None: ...
    """
    options = dict(options)
    base = options.pop("base", None) or Task
    if not (isinstance(base, type) and issubclass(base, Task)):
        raise TypeError(f"base= takes a subclass of conveyor.Task, got {base!r}")
    return base(fn, app, bind=bind, options=options)


def _class_options(cls: type) -> dict[str, Any]:
    """Task options set as class attributes of a ``Task`` subclass (``max_retries = 5``,
    ``autoretry_for = (IOError,)``), as a Celery base class sets them. Not ``name``: a base
    class is shared by many tasks."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__[: cls.__mro__.index(Task)]):
        for key, value in vars(klass).items():
            if key in OPTION_NAMES and key != "name" and not _is_code(value):
                found[key] = value
    return found


def _is_code(value: object) -> bool:
    return isinstance(value, property | staticmethod | classmethod) or inspect.isfunction(value)


def _validate_priority(priority: Any) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise ValueError(f"priority must be an integer from 0 to 9 (9 runs first), got {priority!r}")
    return priority


def _positive(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _timestamp(value: datetime) -> float:
    if value.tzinfo is None:  # naive datetimes are UTC, as with Celery's enable_utc
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _expiry(expires: float | timedelta | datetime | None, now: float) -> float | None:
    if expires is None:
        return None
    if isinstance(expires, datetime):
        return _timestamp(expires)
    if isinstance(expires, timedelta):
        return now + expires.total_seconds()
    if isinstance(expires, int | float) and not isinstance(expires, bool):
        return now + float(expires)
    raise TypeError(f"expires must be seconds, a timedelta or a datetime, got {expires!r}")


class Task(Generic[P, R]):
    """A registered task. Created by ``@app.task`` or ``@shared_task``; not instantiated directly."""

    def __init__(
        self,
        fn: Callable[..., Any],
        app: Conveyor | None,
        bind: bool = False,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if type(self) is not Task:
            options = {**_class_options(type(self)), **(options or {})}
        options = dict(options or {})
        for name in sorted(options.keys() & CELERY_OPTIONS_INSTEAD.keys()):
            value = options.pop(name)
            warnings.warn(
                f"task option {name}={value!r} ({getattr(fn, '__qualname__', fn)}) is "
                f"{CELERY_OPTIONS_INSTEAD[name]}",
                ConfigurationWarning,
                stacklevel=4,
            )
        unknown = sorted(set(options) - OPTION_NAMES)
        if unknown:
            hint = did_you_mean(unknown[0], OPTION_NAMES) if len(unknown) == 1 else ""
            raise TypeError(f"unknown task option(s) {unknown}{hint}; valid options: {sorted(OPTION_NAMES)}")
        self.run = fn
        self.bind = bind
        self._app = app
        self.name: str = options.pop("name", None) or f"{fn.__module__}.{fn.__qualname__}"
        self.is_async = inspect.iscoroutinefunction(fn)
        self.queue: str | None = options.pop("queue", None)
        self.priority: int | None = options.pop("priority", None)
        if self.priority is not None:
            _validate_priority(self.priority)
        self._max_retries: int | None = options.pop("max_retries", _UNSET)
        self._default_retry_delay: float | None = options.pop("default_retry_delay", None)
        self.autoretry_for: tuple[type[BaseException], ...] = _classes(options.pop("autoretry_for", ()))
        self.dont_autoretry_for: tuple[type[BaseException], ...] = _classes(
            options.pop("dont_autoretry_for", ())
        )
        for cls in self.autoretry_for + self.dont_autoretry_for:
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                raise TypeError(f"autoretry_for/dont_autoretry_for take exception classes, got {cls!r}")
        self.retry_backoff: bool | float = options.pop("retry_backoff", False)
        self.retry_backoff_max: float = float(options.pop("retry_backoff_max", 600))
        self.retry_jitter: bool = options.pop("retry_jitter", True)
        self._time_limit = _positive("time_limit", options.pop("time_limit", None))
        self._soft_time_limit = _positive("soft_time_limit", options.pop("soft_time_limit", None))
        self.expires: float | timedelta | datetime | None = options.pop("expires", None)
        self._acks_late: bool | None = options.pop("acks_late", None)
        self._ignore_result: bool | None = options.pop("ignore_result", None)
        self._serializer: str | None = options.pop("serializer", None)
        if self._serializer is not None:
            check_serializer(self._serializer)
        self._compression: str | None = options.pop("compression", _UNSET)
        if self._compression is not _UNSET:
            check_compression(self._compression)
        self.typing: bool = options.pop("typing", True)
        self.coordination: TaskCoordination | None = pop_coordination(fn, bind, self.name, options)
        self._signature: inspect.Signature | None = None
        self._good_shapes: set[tuple[int, tuple[str, ...]]] = set()
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        # Whether a subclass overrides a hook: a task without any skips them per run.
        self.hooked = any(getattr(type(self), h) is not getattr(Task, h) for h in HOOKS)

    # -- settings resolved at use, so app.conf changes after declaration still apply ---------
    @property
    def app(self) -> Conveyor:
        if self._app is not None:
            return self._app
        return current_app()

    @property
    def max_retries(self) -> int | None:
        return self.app.conf.task_max_retries if self._max_retries is _UNSET else self._max_retries

    @property
    def default_retry_delay(self) -> float:
        value = self._default_retry_delay
        return self.app.conf.task_default_retry_delay if value is None else float(value)

    @property
    def time_limit(self) -> float | None:
        return self._time_limit if self._time_limit is not None else self.app.conf.task_time_limit

    @property
    def soft_time_limit(self) -> float | None:
        value = self._soft_time_limit
        return value if value is not None else self.app.conf.task_soft_time_limit

    @property
    def acks_late(self) -> bool:
        return self.app.conf.task_acks_late if self._acks_late is None else bool(self._acks_late)

    @property
    def ignore_result(self) -> bool:
        value = self._ignore_result
        return self.app.conf.task_ignore_result if value is None else bool(value)

    @property
    def request(self) -> Request:
        """The current run's context (inside a running task)."""
        return current_request.get() or Request(id="", task=self.name, is_eager=True, called_directly=True)

    # -- hooks: override them in a base class (``base=``), with Celery's signatures ------------
    # They run where the task runs, after its body (docs/signals.md); one that raises is logged
    # and ignored: it never changes the task's outcome.
    def before_start(self, task_id: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Called before the body runs (after the ``task_prerun`` signal)."""

    def on_success(self, retval: Any, task_id: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Called when the body returned ``retval``."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: list[Any], kwargs: dict[str, Any], einfo: ExceptionInfo
    ) -> None:
        """Called when the run failed for good (no retry left); ``str(einfo)`` is the traceback."""

    def on_retry(
        self, exc: BaseException, task_id: str, args: list[Any], kwargs: dict[str, Any], einfo: ExceptionInfo
    ) -> None:
        """Called when the run will be retried (``self.retry()`` or ``autoretry_for``)."""

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: list[Any],
        kwargs: dict[str, Any],
        einfo: ExceptionInfo | None,
    ) -> None:
        """Called after ``on_success``/``on_failure`` with the state (``SUCCESS``/``FAILURE``)
        and the return value or exception."""

    def __repr__(self) -> str:
        return f"<@task: {self.name}>"

    # -- running here ------------------------------------------------------------------------
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function in this process, now (no broker involved)."""
        if self.bind:
            return self.run(self, *args, **kwargs)  # type: ignore[no-any-return]
        return self.run(*args, **kwargs)  # type: ignore[no-any-return]

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        retries: int = 0,
        throw: bool | None = None,
        **options: Any,
    ) -> EagerResult[R]:
        """Run the task here and now (eagerly), retries included (without waiting out countdowns).

        >>> add.apply(args=(2, 2)).get()    # doctest: +SKIP
        4
        """
        args, kwargs = list(args or ()), dict(kwargs or {})
        self._check_args(args, kwargs)
        check_options(options, MESSAGE_OPTIONS, "apply")
        checked = cast(MessageOptions, {**options, "task_id": task_id or "eager"})
        self._prepare(args, kwargs, checked)  # the same checks as enqueue
        request = Request(
            id=task_id or new_task_id(),
            task=self.name,
            args=args,
            kwargs=kwargs,
            retries=retries,
            is_eager=True,
            max_retries=options.get("max_retries"),
        )
        while True:
            try:
                value = self._run_here(request)
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    raise
                decision = decide(self, request, exc)
                if decision.verdict == "retry":
                    request.retries += 1
                    request.args = decision.args if decision.args is not None else request.args
                    request.kwargs = decision.kwargs if decision.kwargs is not None else request.kwargs
                    continue
                failed = decision.exc or exc
                propagate = self.app.conf.task_eager_propagates if throw is None else throw
                if propagate:
                    raise failed from None
                payload = failure_payload(failed, decision.traceback, None, request.retries)
                return EagerResult(request.id, self.app, states.FAILURE, payload)
            payload = ResultPayload(result=value, retries=request.retries, date_done=time.time())
            return EagerResult(request.id, self.app, states.SUCCESS, payload)

    def _run_here(self, request: Request) -> Any:
        token = current_request.set(request)
        try:
            call_args = [self, *request.args] if self.bind else request.args
            if self.is_async:
                return run_traced(self, request, lambda: asyncio.run(self.run(*call_args, **request.kwargs)))
            return run_traced(self, request, lambda: self.run(*call_args, **request.kwargs))
        finally:
            current_request.reset(token)
            end_eager(request.id)

    def retry(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> NoReturn:
        """Ask for this run to be retried later; call it as ``raise self.retry(exc=e)`` or just
        ``self.retry(exc=e)`` inside a ``bind=True`` task.

        Past ``max_retries`` it raises ``exc`` (or ``MaxRetriesExceededError``) instead.
        ``countdown`` defaults to the task's ``default_retry_delay``.
        """
        request = self.request
        check_retry_allowed(self, request, exc, max_retries)
        when = countdown if countdown is not None else (_timestamp(eta) - time.time() if eta else None)
        raise Retry(
            f"retry in {when if when is not None else self.default_retry_delay}s",
            exc=exc,
            when=when,
            args_override=list(args) if args is not None else None,
            kwargs_override=dict(kwargs) if kwargs is not None else None,
        )

    # -- progress (progress.py) ---------------------------------------------------------------
    def update_state(
        self, task_id: str | None = None, state: str | None = None, meta: Any = None, **_: Any
    ) -> None:
        """Report this run's state and meta while it runs (Celery's signature): polled with
        ``AsyncResult(id).state`` / ``.info`` and shown by ``conveyor task ID``.

        >>> self.update_state(state="PROGRESS", meta={"done": 3, "total": 10})  # doctest: +SKIP

        ``state`` defaults to ``PROGRESS``; ``meta`` is any JSON value. Writes are throttled to
        one per 100 ms per task (the last value is always written); kept as long as results.
        """
        request = current_request.get()
        task_id = task_id or (request.id if request is not None else None)
        if not task_id:
            raise RuntimeError("update_state() outside a running task needs task_id=")
        retries = request.retries if request is not None and request.id == task_id else 0
        value = Progress(check_state(PROGRESS_STATE if state is None else state), meta, time.time(), retries)
        if request is not None and request.is_eager and request.id == task_id:
            encode_progress(value)  # the same error for meta that is not JSON
            set_eager(task_id, value)
            return
        writer.write(self.app.broker, task_id, value, self.app.conf.result_expires)

    def progress(self, done: float, total: float, message: str | None = None) -> None:
        """Report how far this run got: state ``PROGRESS`` with meta ``{"done", "total",
        "percent", "message"}`` (see ``update_state``).

        >>> for i, row in enumerate(rows):                       # doctest: +SKIP
        ...     self.progress(i + 1, len(rows), f"imported {row.id}")
        """
        self.update_state(state=PROGRESS_STATE, meta=progress_meta(done, total, message))

    # -- enqueueing --------------------------------------------------------------------------
    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Enqueue with these arguments: ``add.delay(2, 2)``. Shortcut for ``apply_async``."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> AsyncResult[R]:
        """Enqueue the task with Celery's options (:class:`conveyor.options.EnqueueOptions`:
        countdown, eta, expires, queue, priority, task_id, time_limit, soft_time_limit,
        max_retries, headers, serializer, unique_key, unique_for). Raises ``EncodeError``
        (nothing enqueued) if an argument does not serialise, ``TypeError`` if the arguments do
        not fit the function or an option is unknown.

        ``priority`` runs from 0 to 9 and **9 runs first** (default 5) on every broker -- the
        reverse of Celery on Redis, where 0 runs first: a ported ``priority=0`` becomes ``9``.

        >>> refresh.apply_async(args=(1,), countdown=10, expires=60, queue="polling")  # doctest: +SKIP
        >>> alert.apply_async(args=(1,), priority=9)  # runs before waiting priority-5 jobs  # doctest: +SKIP
        """
        if options:
            options = enqueue_options(options)
        args, kwargs = list(args or ()), dict(kwargs or {})
        app = self.app  # a property: read once on this hot path
        conf = app.conf
        if conf.task_always_eager:
            return self.apply(
                args, kwargs, task_id=options.get("task_id"), max_retries=options.get("max_retries")
            )
        env, spec, duplicate = self._outgoing(args, kwargs, options)
        if duplicate is not None:  # the same job is already pending: return it
            return AsyncResult(duplicate, app)
        publish(app.broker, [spec], conf.task_publish_retry, conf.task_publish_retry_policy)
        if after_task_publish.receivers:
            after_publish(env)
        return AsyncResult(spec.id, app)

    def _outgoing(
        self, args: list[Any], kwargs: dict[str, Any], options: EnqueueOptions
    ) -> tuple[Envelope, JobSpec, str | None]:
        """One call as the job to send, for ``apply_async`` and ``aapply_async`` alike: the
        arguments checked, the message built, ``before_task_publish`` sent, the unique key
        claimed. The third item is the pending duplicate's id (then nothing is to be sent)."""
        self._check_args(args, kwargs)
        env = self._envelope(args, kwargs, options)
        if before_task_publish.receivers:
            before_publish(env, self.app.conf.task_publish_retry_policy)
        spec = JobSpec(env.id, env.queue, encode_envelope(env), env.priority, env.eta, 0)
        unique_key, unique_for = options.get("unique_key"), options.get("unique_for")
        if self.coordination is not None or unique_key is not None or unique_for is not None:
            from .coordination.unique import before_enqueue

            return env, spec, before_enqueue(self, spec.id, args, kwargs, unique_key, unique_for)
        return env, spec, None

    def delay_many(
        self, calls: Iterable[Sequence[Any] | Mapping[str, Any]], **options: Unpack[MessageOptions]
    ) -> list[AsyncResult[R]]:
        """Enqueue many runs in few round trips (bulk fan-out). Each item is a tuple of positional
        arguments or a dict of keyword arguments; ``options`` (queue, countdown, priority, …)
        apply to all. Bulk enqueue does not check uniqueness (no ``unique_key``/``unique_for``).

        >>> refresh.delay_many((city_id,) for city_id in range(1000))  # doctest: +SKIP
        """
        check_options(options, MESSAGE_OPTIONS, "delay_many")
        sent: list[Envelope] | None = [] if after_task_publish.receivers else None
        specs = list(self._bulk_specs(calls, options, sent))  # every argument is checked before sending
        if self.app.conf.task_always_eager:
            return [self.apply(s_args, s_kwargs) for s_args, s_kwargs in _calls_of(specs)]
        send_in_chunks(self.app, specs, BULK_CHUNK)
        for env in sent or ():
            after_publish(env)
        return [AsyncResult(spec.id, self.app) for spec in specs]

    # -- enqueueing from async code (aio.py; docs/user-guide.md "Async producers") -------------
    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """``delay`` for async code: ``await add.adelay(2, 2)``. See ``aapply_async``."""
        return await self.aapply_async(args, kwargs)

    async def aapply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> AsyncResult[R]:
        """``apply_async`` for async code, with the same options, message and errors, on the
        broker's asyncio client. Calls made together on one event loop share one broker round
        trip (each still gets its own result, or its own ``BrokerError``).

        >>> results = await asyncio.gather(*(resize.adelay(i) for i in range(100)))  # doctest: +SKIP

        With ``task_always_eager`` the task runs here: a plain function on the event loop, an
        ``async def`` one in a thread with its own loop, as ``apply()`` runs it. A unique key
        (``unique_key``/``unique_for``) is claimed in a thread: a broker call of its own.
        """
        if options:
            options = enqueue_options(options, "aapply_async")
        call_args, call_kwargs = list(args or ()), dict(kwargs or {})
        if self.app.conf.task_always_eager:
            task_id, max_retries = options.get("task_id"), options.get("max_retries")
            if self.is_async:
                return await asyncio.to_thread(
                    self.apply, call_args, call_kwargs, task_id=task_id, max_retries=max_retries
                )
            return self.apply(call_args, call_kwargs, task_id=task_id, max_retries=max_retries)
        coordination = self.coordination
        claims = options.get("unique_key") is not None or options.get("unique_for") is not None
        if claims or (coordination is not None and coordination.unique_for is not None):
            env, spec, duplicate = await asyncio.to_thread(self._outgoing, call_args, call_kwargs, options)
        else:
            env, spec, duplicate = self._outgoing(call_args, call_kwargs, options)
        if duplicate is not None:
            return AsyncResult(duplicate, self.app)
        await aio.enqueue(self.app, spec)
        if after_task_publish.receivers:
            after_publish(env)
        return AsyncResult(spec.id, self.app)

    # -- Django: enqueue when the surrounding transaction commits (docs/django.md) -------------
    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """``delay`` once the current Django transaction commits; nothing on rollback.

        >>> with transaction.atomic():                       # doctest: +SKIP
        ...     order = Order.objects.create(...)
        ...     send_receipt.delay_on_commit(order.pk)       # sent after COMMIT, never before
        """
        return self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        using: str | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> AsyncResult[R]:
        """``apply_async`` once the transaction of database ``using`` (Django's alias, default
        ``"default"``) commits, through ``django.db.transaction.on_commit``: nothing is sent on
        rollback, and outside a transaction it is sent at once, as Django runs the callback.

        The arguments, options and message are checked now, in the caller's code, not at commit.
        The task id is chosen now: the returned result is the task's once it is sent (an id
        whose transaction rolled back stays ``UNKNOWN``, and so does one run eagerly, under
        ``task_always_eager``: an eager run stores nothing in the broker). Celery's version
        returns None.
        """
        from django.db import transaction

        options = enqueue_options(options, "apply_async_on_commit")
        call_args, call_kwargs = list(args or ()), dict(kwargs or {})
        self._check_args(call_args, call_kwargs)
        task_id = options["task_id"] = options.get("task_id") or new_task_id()
        encode_envelope(self._envelope(call_args, call_kwargs, options))  # raises now if it cannot
        transaction.on_commit(lambda: self.apply_async(call_args, call_kwargs, **options), using=using)
        return AsyncResult(task_id, self.app)

    # -- workflows (conveyor.canvas, docs/workflows.md) ---------------------------------------
    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature of this task with partial arguments: ``add.s(2)`` in a chain gets the
        previous result first, ``add(<result>, 2)``."""
        from .canvas import Signature

        return Signature(self.name, args, kwargs, app=self._app)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: it runs with exactly these arguments, ignoring any result
        a workflow would give it."""
        from .canvas import Signature

        return Signature(self.name, args, kwargs, immutable=True, app=self._app)

    def signature(
        self, args: Sequence[Any] | None = None, kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> Signature:
        """``add.signature((2,), {}, queue="math")``: Celery's long form of ``s``."""
        from .canvas import Signature

        return Signature(self.name, args, kwargs, options, app=self._app)

    subtask = signature

    def AsyncResult(self, task_id: str) -> AsyncResult[R]:  # noqa: N802 - Celery's name
        return AsyncResult(task_id, self.app)

    # -- helpers -----------------------------------------------------------------------------
    def _check_args(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        if not self.typing:
            return
        # Whether arguments bind depends only on their count and keyword names, not on their
        # values: remember the shapes that bound, so a hot loop of .delay() pays once.
        shape = (len(args), tuple(kwargs))
        if shape in self._good_shapes:
            return
        if self._signature is None:
            sig = inspect.signature(self.run)
            if self.bind:
                params = list(sig.parameters.values())[1:]
                sig = sig.replace(parameters=params)
            self._signature = sig
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}() called with wrong arguments: {exc}") from None
        if len(self._good_shapes) < 64:
            self._good_shapes.add(shape)

    def _prepare(self, args: list[Any], kwargs: dict[str, Any], options: MessageOptions) -> JobSpec:
        """The job to enqueue for one call (see ``_envelope``)."""
        env = self._envelope(args, kwargs, options)
        return JobSpec(env.id, env.queue, encode_envelope(env), env.priority, env.eta, 0)

    def _envelope(self, args: list[Any], kwargs: dict[str, Any], options: MessageOptions) -> Envelope:
        """The message for one call: ``options`` over the routes, the task's options and the
        app's settings, in Celery's order of precedence."""
        conf = self.app.conf
        now = time.time()
        route = resolve_route(conf.task_routes, self.name, args, kwargs) if conf.task_routes else None
        queue = (
            options.get("queue")
            or (route.get("queue") if route else None)
            or self.queue
            or conf.task_default_queue
        )
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"queue must be a non-empty string, got {queue!r}")
        priority = options.get("priority")
        if priority is None:
            priority = route.get("priority") if route else None
        if priority is None:
            priority = self.priority if self.priority is not None else conf.task_default_priority
        _validate_priority(priority)
        countdown, eta, expires = options.get("countdown"), options.get("eta"), options.get("expires")
        if countdown is not None and eta is not None:
            raise ValueError("give countdown or eta, not both")
        when = now + float(countdown) if countdown is not None else (_timestamp(eta) if eta else None)
        headers = options.get("headers")
        env = Envelope(
            id=options.get("task_id") or new_task_id(),
            task=self.name,
            args=args,
            kwargs=kwargs,
            queue=queue,
            priority=priority,
            eta=when,
            expires=_expiry(expires if expires is not None else self.expires, now),
            time_limit=_positive("time_limit", options.get("time_limit")),
            soft_time_limit=_positive("soft_time_limit", options.get("soft_time_limit")),
            max_retries=options.get("max_retries"),
            created=now,
            headers=dict(headers) if headers else {},
        )
        packing = self._packing(options)
        if packing != ("json", None):
            pack_args(env, args, kwargs, *packing)
        return env

    def _packing(self, options: MessageOptions) -> tuple[str, str | None]:
        """(serializer, compression) of the arguments: the call's option, else the task's, else
        the app's ``task_serializer``/``task_compression``; refused in one line when unknown or,
        for a serializer, when this app's ``accept_content`` does not name it (pickle above all)."""
        conf = self.app.conf
        serializer = check_serializer(options.get("serializer") or self._serializer or conf.task_serializer)
        compression = options.get("compression", _UNSET)
        if compression is _UNSET:
            compression = self._compression if self._compression is not _UNSET else conf.task_compression
        if serializer != "json":
            check_sendable(serializer, conf.accept_content)
        return serializer, check_compression(compression)

    def _bulk_specs(
        self,
        calls: Iterable[Sequence[Any] | Mapping[str, Any]],
        options: MessageOptions,
        sent: list[Envelope] | None = None,
    ) -> Iterator[JobSpec]:
        """JobSpecs for ``delay_many``. Everything but the id and the arguments is the same for
        every call, so it is worked out once and the envelope is copied (unless routes are
        callables, which may look at the arguments); the arguments are packed per call."""
        conf = self.app.conf
        routes = conf.task_routes
        per_call = bool(routes) and any(
            callable(r) for r in (routes if isinstance(routes, list | tuple) else [routes])
        )
        template: Envelope | None = None
        packing = self._packing(options)
        for call in calls:
            if isinstance(call, Mapping):
                args, kwargs = [], dict(call)
            else:
                args, kwargs = list(call), {}
            self._check_args(args, kwargs)
            if template is None or per_call:
                env = self._envelope(args, kwargs, options)
                if "task_id" not in options:
                    template = env
            else:
                env = msgspec.structs.replace(template, id=new_task_id())
                pack_args(env, args, kwargs, *packing)
            if before_task_publish.receivers:
                before_publish(env, conf.task_publish_retry_policy)
            if sent is not None:
                sent.append(env)
            yield JobSpec(env.id, env.queue, encode_envelope(env), env.priority, env.eta, 0)


def _calls_of(specs: Sequence[JobSpec]) -> list[tuple[list[Any], dict[str, Any]]]:
    from .message import decode_envelope

    return [all_args(decode_envelope(s.body)) for s in specs]
