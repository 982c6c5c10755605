"""The Django fix-up: what a worker of a Django project needs, switched on by ``DJANGO_SETTINGS_MODULE``.

``Conveyor(...)`` calls :func:`install` when ``DJANGO_SETTINGS_MODULE`` is set (Celery's rule),
so a ported ``proj/celery.py`` needs no extra line. It:

- runs ``django.setup()`` before the worker or beat imports task modules (``app.loader``), so a
  ``tasks.py`` may import its models;
- gives ``app.autodiscover_tasks()`` the installed apps as its default package list;
- in a worker (from ``worker_init``): closes the database connections that are unusable or past
  ``CONN_MAX_AGE`` before and after every task, as Django does around every request. A task that
  met a dead connection (a database restart, a dropped TCP connection) fails, and the next one
  gets a fresh connection instead of failing the same way forever;
- in each ``-P processes`` child (``worker_process_init``): closes unusable or old connections
  around every task too (a spawned child imported the app afresh and saw no ``worker_init``);
- in each ``--processes`` child (``worker_process_init`` after the fork): drops any database
  connection inherited from the parent that the child can reach, without closing it. Closing
  would talk on the socket the parent still owns (a PostgreSQL "terminate" message) and break
  the parent's connection. (The worker's loop and task threads start with Django connection
  state of their own, so today nothing reaches one; this keeps it so, as Celery's fix-up does.);
- with ``-P solo`` (tasks run on the event loop's thread): allows Django's ORM there
  (``DJANGO_ALLOW_ASYNC_UNSAFE``), since blocking that thread is what the solo pool is for.

Eager runs (``apply()``, ``task_always_eager``) are left alone: they run inside the caller's
request and transaction, whose connection is not the task's to close.
"""

from __future__ import annotations

import asyncio
import logging
import os
import warnings
from typing import TYPE_CHECKING, Any

from ...exceptions import ConfigurationWarning
from ...request import current_request
from ...signals import task_postrun, task_prerun, worker_init, worker_process_init

if TYPE_CHECKING:
    from ...app import Conveyor

logger = logging.getLogger("conveyor.contrib.django")

DISPATCH_UID = "conveyor.contrib.django.fixup"
# The process that installed the fix-up (imported the app): a worker process with another pid
# is a fork of it, holding copies of its connections.
_installed_in: int | None = None


def install(app: Conveyor) -> bool:
    """Switch the fix-up on for ``app``; False (with a warning) when Django is not installed."""
    global _installed_in
    try:
        import django  # noqa: F401
    except ImportError:
        warnings.warn(
            "DJANGO_SETTINGS_MODULE is set but Django is not installed: the Django fix-up is off",
            ConfigurationWarning,
            stacklevel=3,
        )
        return False
    _installed_in = os.getpid()
    if setup_django not in app.loader.before_import:
        app.loader.before_import.append(setup_django)
    app.loader.default_packages = installed_apps
    worker_init.connect(_on_worker_init, dispatch_uid=DISPATCH_UID)
    worker_process_init.connect(_on_worker_process_init, dispatch_uid=DISPATCH_UID)
    return True


def setup_django() -> None:
    """``django.setup()`` unless Django is set up or being set up (then the caller is Django)."""
    from django.apps import apps

    if apps.ready or apps.loading:
        return
    import django

    django.setup()


def installed_apps() -> list[str] | None:
    """The installed apps' packages, or None while Django's app registry is not ready."""
    from django.apps import apps

    if not apps.ready:
        return None
    return [config.name for config in apps.get_app_configs()]


def _on_worker_init(sender: Any, **_: Any) -> None:
    setup_django()
    if getattr(sender, "pool", None) == "solo":
        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    task_prerun.connect(_around_task, dispatch_uid=DISPATCH_UID)
    task_postrun.connect(_around_task, dispatch_uid=DISPATCH_UID)


def _around_task(**_: Any) -> None:
    request = current_request.get()
    if request is not None and request.is_eager:
        return
    if _on_event_loop() and not os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):
        return  # an async def task on the loop: no sync ORM connection here, and Django forbids it
    close_old_connections()


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def close_old_connections() -> None:
    """Close every connection of this thread that is unusable or past ``CONN_MAX_AGE``.

    Django's own ``close_old_connections``, except that a connection whose close fails (its
    server is gone) is logged and dropped instead of failing the task that comes next.
    """
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        try:
            conn.close_if_unusable_or_obsolete()
        except Exception as exc:  # a dead connection may fail even to close: it is gone anyway
            logger.info("database connection %r closed with an error: %s", conn.alias, exc)
            conn.connection = None


def _on_worker_process_init(**_: Any) -> None:
    # A spawned child imported the app afresh: no worker_init ran in it, so the connection
    # check around its tasks is connected here (a no-op in a forked child, which inherited it).
    task_prerun.connect(_around_task, dispatch_uid=DISPATCH_UID)
    task_postrun.connect(_around_task, dispatch_uid=DISPATCH_UID)
    if _installed_in is None or os.getpid() == _installed_in:
        return  # not a fork: the connections are this process's own
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            # Keep the inherited handle referenced so that garbage collection never closes it
            # (a close would act on the parent's socket); this process opens its own.
            _inherited.append(conn.connection)
            conn.connection = None


_inherited: list[Any] = []
