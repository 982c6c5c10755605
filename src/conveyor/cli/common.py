"""What every ``conveyor`` subcommand shares: the lazily loaded app and logging setup."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from ..app import Conveyor
from ..config import DEFAULT_BROKER_URL
from .loader import load_app

if TYPE_CHECKING:
    from ..admin import Admin

LOG_LEVELS = ["debug", "info", "warning", "error", "critical"]


class State:
    """The ``-A``/``-b`` options; the app is imported only when a command needs it."""

    def __init__(self, app_spec: str | None, broker: str | None) -> None:
        self.app_spec = app_spec
        self.broker = broker
        self._app: Conveyor | None = None

    @property
    def app(self) -> Conveyor:
        if self._app is None:
            self._app = load_app(self.app_spec)
            if self.broker:
                self._app.conf.broker_url = self.broker
        return self._app

    def admin(self, import_app: bool = True) -> Admin:
        """The admin API. Without ``-A`` (or with ``import_app=False`` and a broker URL from
        ``-b`` or $CONVEYOR_BROKER_URL) no app module is imported: the operator commands only
        need the broker, and a health probe must not pay for importing the task modules."""
        from ..admin import Admin
        from ..brokers import broker_from_url

        url = self.broker or os.environ.get("CONVEYOR_BROKER_URL")
        if self.app_spec and (import_app or not url):
            return self.app.admin
        return Admin(broker_from_url(url or DEFAULT_BROKER_URL))


@contextlib.contextmanager
def lookups() -> Iterator[None]:
    """An unknown queue or worker is a usage error: one line, exit 2."""
    from ..admin import UnknownName

    try:
        yield
    except UnknownName as exc:
        raise click.UsageError(str(exc)) from exc


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="[%(asctime)s: %(levelname)s/%(processName)s] %(message)s",
        stream=sys.stderr,
    )
