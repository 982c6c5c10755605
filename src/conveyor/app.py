"""``Conveyor``: the application object — settings, the task registry and the broker.

>>> app = Conveyor("proj", broker="sqlite:///conveyor.db")
>>> @app.task
... def add(x: int, y: int) -> int:
...     return x + y
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, Protocol, TypeVar, Unpack, overload

from .brokers import Broker, LostContinuation, broker_from_url, redacted_url, resolve_broker_url
from .config import Settings
from .exceptions import NotRegistered
from .loading import Loader, Packages
from .options import EnqueueOptions
from .registry import activate, current_app, share
from .results import AsyncResult
from .task import Task, TaskOptions, create_task

if TYPE_CHECKING:
    from .admin import Admin
    from .beat.api import Schedules
    from .coordination.locks import Lock, LockInfo
    from .execution.guards import GuardFactory, RunGuard
    from .worker.worker import Worker

__all__ = ["Conveyor", "current_app", "shared_task"]

P = ParamSpec("P")
R = TypeVar("R")


class Conveyor:
    """The application: ``Conveyor(main, broker=url, **settings)``.

    ``broker`` defaults to ``$CONVEYOR_BROKER_URL``, else ``sqlite:///conveyor.db``. Extra keyword
    arguments are settings (``Conveyor("proj", task_default_queue="web")``).

    A relative SQLite path (the default's ``conveyor.db`` included) is relative to ``root``: by
    default the directory of the module that created the app, so the worker, beat, a Django
    view and a shell started anywhere all open the same file.

    ``include`` names modules the worker and beat import when they start (the tasks that live
    there), as Celery's does; see also ``autodiscover_tasks``. With ``DJANGO_SETTINGS_MODULE``
    set, the Django fix-up is switched on (docs/django.md).

    >>> app = Conveyor("proj", include=["proj.maintenance"])    # doctest: +SKIP
    """

    def __init__(
        self,
        main: str | None = None,
        *,
        broker: str | None = None,
        root: str | os.PathLike[str] | None = None,
        include: Sequence[str] | None = None,
        **settings: Any,
    ) -> None:
        self.main = main or "__main__"
        #: The directory relative SQLite broker paths resolve against (see resolved_broker_url).
        self.root = os.path.abspath(root) if root is not None else _creator_dir(self)
        self._conf = Settings(settings)
        # config_from_object("dotted.path") is read at the first use of conf, as Celery's.
        self._config_source: tuple[str, str | None] | None = None
        self._config_lock = threading.Lock()
        if broker is not None:
            self._conf.broker_url = broker
        if include is not None:
            self._conf.include = list(include)
        self._tasks: dict[str, Task[Any, Any]] = {}
        #: The modules that hold this app's tasks and when they are imported (loading.py).
        self.loader = Loader(lambda: self.conf)
        #: Factories of run guards (see conveyor.execution.guards), asked once per task.
        self.guard_factories: list[GuardFactory] = []
        from .coordination.guards import coordination_guard  # locks, rate and concurrency limits

        self.guard_factories.append(coordination_guard)
        self._broker: Broker | None = None
        self._broker_lock = threading.Lock()
        self._override_warned: tuple[str, str] | None = None  # (variable, setting) said once
        self._conf.on_change(self._setting_changed)
        activate(self)  # the current app from now on; shared tasks join it
        if os.environ.get("DJANGO_SETTINGS_MODULE"):  # a Django project: its fix-up, as Celery's
            from .contrib.django.fixup import install

            install(self)

    def __repr__(self) -> str:
        return f"<Conveyor {self.main} broker={redacted_url(self.resolved_broker_url())}>"

    def resolved_broker_url(self) -> str:
        """The broker URL this app opens: the setting, with a relative SQLite path made absolute
        against ``self.root``. Resolving against the app, never the working directory, is what
        lets processes started in different directories share one SQLite broker.

        >>> Conveyor("proj", broker="sqlite:///q.db", root="/srv/proj").resolved_broker_url()
        'sqlite:////srv/proj/q.db'
        """
        return resolve_broker_url(self.conf.broker(), self.root)

    def warn_if_broker_url_overridden(self) -> None:
        """The ``broker_url`` setting (or ``broker=``) comes before ``$CONVEYOR_BROKER_URL``:
        say so when both are set and differ, once per pair (not again when the broker is
        reopened, as each process of ``worker --processes N`` does). Otherwise a deploy that
        sets the variable for every process would leave the ones whose code names a broker on
        another broker, silently (producers enqueueing where no worker looks)."""
        setting, env = self.conf.broker_url, os.environ.get("CONVEYOR_BROKER_URL")
        if not setting or not env or (env, setting) == self._override_warned:
            return
        if resolve_broker_url(env, self.root) == self.resolved_broker_url():
            return
        self._override_warned = (env, setting)
        import logging

        logging.getLogger("conveyor").warning(
            "$CONVEYOR_BROKER_URL is %s, but app %r sets broker_url %s, which comes first and is "
            "the one used (unset one of them, or give the command -b URL)",
            redacted_url(env),
            self.main,
            redacted_url(setting),
        )

    def _setting_changed(self, key: str) -> None:
        if key in ("broker_url", "broker_transport_options") and self._broker is not None:
            with self._broker_lock:
                self._broker.close()
                self._broker = None

    # -- configuration -----------------------------------------------------------------------
    @property
    def conf(self) -> Settings:
        """The app's settings (config.py)."""
        if self._config_source is not None:
            self._read_config_source()
        return self._conf

    def _read_config_source(self) -> None:
        with self._config_lock:
            source, self._config_source = self._config_source, None
            if source is not None:
                self._conf.from_object(*source)

    def config_from_object(
        self, obj: object | str, namespace: str | None = None, force: bool = False
    ) -> None:
        """Load settings from a module or object, or its dotted path, as Celery's does.

        A dotted path (``"django.conf:settings"``, ``"proj.celeryconfig"``) is read at the first
        use of ``app.conf`` (``force=True``: now), because the module creating the app is often
        imported while Django is still loading that very settings module. With
        ``namespace="CELERY"`` only ``CELERY_``-prefixed names are read, as settings without the
        prefix (``CELERY_TASK_ROUTES`` is ``task_routes``); see ``Settings.from_object``.

        >>> app.config_from_object("django.conf:settings", namespace="CELERY")  # doctest: +SKIP
        """
        if self._config_source is not None:  # an earlier source is read first, in order
            self._read_config_source()
        if isinstance(obj, str) and not force:
            self._config_source = (obj, namespace)
        else:
            self._conf.from_object(obj, namespace)

    def autodiscover_tasks(
        self, packages: Packages = None, related_name: str | None = "tasks", force: bool = False
    ) -> None:
        """Import each package's ``tasks`` module (``related_name``) when the worker starts.

        With no packages, in a Django project: every installed app's. Lazy unless ``force``:
        see loading.py.

        >>> app.autodiscover_tasks()                          # Django: INSTALLED_APPS  # doctest: +SKIP
        >>> app.autodiscover_tasks(["proj.orders", "proj.billing"])              # doctest: +SKIP
        """
        self.loader.autodiscover(packages, related_name, force)

    @property
    def tasks(self) -> dict[str, Task[Any, Any]]:
        """The registered tasks by name; reading it runs pending task discovery (finalize)."""
        if self.loader.pending:
            self.loader.finalize()
        return self._tasks

    @property
    def broker(self) -> Broker:
        """The broker, connected on first use."""
        broker = self._broker
        if broker is None:
            opened = False
            with self._broker_lock:
                if self._broker is None:
                    options = self.conf.broker_transport_options
                    self._broker = broker_from_url(self.resolved_broker_url(), options)
                    opened = True
                broker = self._broker
            if opened:  # outside the lock: a log handler may use the app itself
                self.warn_if_broker_url_overridden()
        return broker

    @property
    def admin(self) -> Admin:
        """The admin API over this app's broker (queues, workers, dead letters): see admin/."""
        from .admin import Admin

        return Admin(
            self.broker,
            float(self.conf.worker_lease_timeout),
            self.conf.task_history,
            self.lost_continuation(),
        )

    def close(self) -> None:
        with self._broker_lock:
            if self._broker is not None:
                self._broker.close()
                self._broker = None

    # -- tasks -------------------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(self, *, bind: Literal[True], **options: Unpack[TaskOptions]) -> _BoundDecorator: ...
    @overload
    def task(self, *, bind: Literal[False] = False, **options: Unpack[TaskOptions]) -> _Decorator: ...

    # mypy rejects any implementation of overloads using Unpack[TypedDict] (even a catch-all).
    def task(  # type: ignore[misc]
        self, fn: Callable[..., Any] | None = None, /, *, bind: bool = False, **options: Any
    ) -> Any:
        """Register a function as a task. Use bare (``@app.task``) or with Celery's options
        (``@app.task(bind=True, max_retries=3, autoretry_for=(IOError,), queue="polling")``).
        ``base=`` a ``Task`` subclass gives the task that class's hooks (``on_failure``, ...)
        and the options set as its class attributes (docs/signals.md).
        """

        def register(func: Callable[..., Any]) -> Task[Any, Any]:
            task = create_task(func, self, bind, options)
            self._tasks[task.name] = task
            return task

        return register(fn) if fn is not None else register

    def run_guards(self, task: Task[Any, Any]) -> list[RunGuard]:
        """The guards that apply to ``task`` (cached on the task)."""
        guards: list[RunGuard] | None = task.__dict__.get("_guards")
        if guards is None:
            guards = [g for f in self.guard_factories if (g := f(self, task)) is not None]
            task.__dict__["_guards"] = guards
        return guards

    def register(self, task: Task[Any, Any]) -> None:
        self._tasks[task.name] = task

    def get_task(self, name: str) -> Task[Any, Any]:
        try:
            return self.tasks[name]
        except KeyError:
            raise NotRegistered(f"task {name!r} is not registered with app {self.main!r}") from None

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> AsyncResult[Any]:
        """Enqueue a task by name (the task need not be importable here).

        Unlike ``apply_async`` this cannot check the arguments against the function.
        """
        task = self.tasks.get(name)
        if task is None:
            task = Task(lambda *a, **k: None, self, options={"name": name, "typing": False})
        return task.apply_async(args, kwargs, **options)

    def AsyncResult(self, task_id: str) -> AsyncResult[Any]:  # noqa: N802 - Celery's name
        """A handle on any task id; an id nobody enqueued reports ``UNKNOWN``."""
        return AsyncResult(task_id, self)

    def lost_continuation(self) -> LostContinuation:
        """What the broker applies when it ends a workflow step itself (revoked while queued,
        dead-lettered after its worker died): the step's chain stops, its chord fails."""
        from .canvas.lost import lost_continuation

        return partial(lost_continuation, self)

    def revoke(
        self, task_id: str | Sequence[str], terminate: bool = False, signal: str | None = None
    ) -> None:
        """Revoke tasks durably: stored in the broker, so a worker that is down now still honours
        it; ``terminate`` also stops a running one at its worker's next heartbeat. A ``signal``
        ("SIGKILL", "SIGQUIT", ...; Celery's argument) with ``terminate`` goes through the control
        channel as well, which sends that very signal to the ``-P processes`` child running the
        task (waiting up to a second for the workers' replies); an unknown name raises
        ``ValueError`` before anything is revoked."""
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        if terminate and signal is not None:
            self.admin.control.revoke(ids, terminate=True, signal=signal, allow_unknown=True)
            return
        lost = self.lost_continuation()
        if not self.conf.task_history:
            self.broker.revoke(ids, terminate, self.conf.task_revoke_expires, lost)
            return
        from .worker.history import record_revoked
        from .worker.signalling import dropped

        # Tasks still in the broker are dropped right here: recorded, and signalled in this
        # process (docs/operations.md); workers do both for the ones they hold.
        for job in record_revoked(self.broker, ids, terminate, self.conf.task_revoke_expires, lost):
            dropped(self.tasks, job)

    # -- coordination (conveyor.coordination, docs/coordination.md) ----------------------------
    def lock(
        self,
        name: str,
        timeout: float = 3600,
        blocking_timeout: float | None = 10,
        auto_renew: bool = False,
    ) -> Lock:
        """A lock shared by every process on this app's broker, with expiry and fencing.

        >>> with app.lock("scrape", timeout=3600, blocking_timeout=10) as lock:  # doctest: +SKIP
        ...     save(scrape(), fence=lock.fence)
        >>> async with app.lock("scrape"):                                         # doctest: +SKIP
        ...     ...
        """
        from .coordination.locks import Lock

        return Lock(self.broker, name, timeout, blocking_timeout, auto_renew)

    def locks(self) -> list[LockInfo]:
        """Every held lock (name, holder, fence, acquired, expiry), as ``conveyor locks`` shows them."""
        from .coordination.locks import list_locks

        return list_locks(self.broker)

    def release_lock(self, name: str) -> bool:
        """Force-release a lock whoever holds it (for a stuck holder); returns whether it was held."""
        from .coordination.locks import force_release

        return force_release(self.broker, name)

    # -- periodic tasks (conveyor.beat, docs/beat.md) -----------------------------------------
    def add_periodic_task(
        self,
        schedule: object,
        sig: Task[Any, Any] | str | Mapping[str, Any],
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        *,
        options: Mapping[str, Any] | None = None,
        catch_up: str = "once",
        **opts: Unpack[EnqueueOptions],
    ) -> str:
        """Declare a periodic entry (it joins ``app.conf.beat_schedule``), as in Celery; extra
        keyword arguments are ``apply_async`` options. Validated now; returns the entry name.
        ``sig`` may be a signature (``poll.s("EU")``), as in Celery's examples.

        >>> app.add_periodic_task(  # doctest: +SKIP
        ...     2.0, poll, args=("EU",), name="poll", queue="polling", expires=2
        ... )
        'poll'
        """
        from .beat.api import declare_periodic

        if isinstance(sig, Mapping):
            from .canvas import maybe_signature

            one = maybe_signature(sig, self)
            if one.subtask_type is not None or {"link", "link_error"} & one.options.keys():
                raise TypeError(
                    "a periodic entry sends one task: a chain, group, chord or callbacks cannot be"
                    " an entry (send the workflow from a periodic task instead)"
                )
            sig, args, kwargs = one.task, [*one.args, *(args or ())], {**one.kwargs, **(kwargs or {})}
            options = {**one.options, **(options or {})}

        return declare_periodic(
            self,
            schedule,
            sig,
            args=args,
            kwargs=kwargs,
            name=name,
            options={**(options or {}), **opts},
            catch_up=catch_up,
        )

    def periodic_task(
        self,
        schedule: object,
        *,
        name: str | None = None,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        catch_up: str = "once",
        **task_options: Any,
    ) -> Callable[[Callable[P, R]], Task[P, R]]:
        """Decorator: register a task (with ``task_options``) and declare it periodic.

        >>> @app.periodic_task(  # doctest: +SKIP
        ...     crontab(minute=0, hour=4, day_of_week="sun"), queue="database"
        ... )
        ... def vacuum() -> None: ...
        """

        def register(fn: Callable[P, R]) -> Task[P, R]:
            task: Task[P, R] = fn if isinstance(fn, Task) else self.task(**task_options)(fn)
            self.add_periodic_task(schedule, task, args, kwargs, name, options=options, catch_up=catch_up)
            return task

        return register

    @property
    def schedules(self) -> Schedules:
        """Periodic entries stored in the broker, editable at runtime: ``app.schedules.add(...)``,
        ``.update``, ``.enable``, ``.disable``, ``.remove``, ``.run_now``, ``.entries()``."""
        from .beat.api import Schedules

        return Schedules(self)

    def Worker(self, **options: Any) -> Worker:  # noqa: N802 - Celery's name
        """A worker for this app, to run in this process: ``app.Worker(queues=["default"]).run()``."""
        from .worker.worker import Worker

        self.loader.import_default_modules()
        return Worker(self, **options)


def _creator_dir(app: Conveyor) -> str:
    """The directory of the module whose code called ``Conveyor(...)`` (skipping the
    ``__init__`` of subclasses); the working directory when there is no file (a REPL, ``-c``).

    It is taken once, at creation: a later ``os.chdir`` does not move the broker.
    """
    frame = sys._getframe(2)
    # Only __init__ frames are inspected, so f_locals is never read off the user's own code.
    while (
        frame.f_back is not None and frame.f_code.co_name == "__init__" and frame.f_locals.get("self") is app
    ):
        frame = frame.f_back
    file = frame.f_globals.get("__file__")
    return os.path.dirname(os.path.abspath(file)) if isinstance(file, str) else os.getcwd()


class _Decorator(Protocol):
    """Type of ``app.task(...)`` with options: a decorator keeping the function's signature."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    def __call__(self, fn: Callable[..., Any], /) -> Task[Any, Any]: ...


class _BoundDecorator(Protocol):
    """Type of ``app.task(bind=True, ...)``: the first parameter (``self``) is the task."""

    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], R], /) -> Task[P, R]: ...
    def __call__(self, fn: Callable[..., Any], /) -> Task[Any, Any]: ...


@overload
def shared_task(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
@overload
def shared_task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def shared_task(*, bind: Literal[True], **options: Unpack[TaskOptions]) -> _BoundDecorator: ...
@overload
def shared_task(*, bind: Literal[False] = False, **options: Unpack[TaskOptions]) -> _Decorator: ...


def shared_task(fn: Callable[..., Any] | None = None, /, *, bind: bool = False, **options: Any) -> Any:
    """A task not tied to one app (for reusable modules): it uses the current app when called,
    and every app created registers it."""

    def register(func: Callable[..., Any]) -> Task[Any, Any]:
        task = create_task(func, None, bind, options)
        share(task)
        return task

    return register(fn) if fn is not None else register
