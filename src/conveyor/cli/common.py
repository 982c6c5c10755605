"""What every ``conveyor`` subcommand shares: the lazily loaded app and logging setup."""

from __future__ import annotations

import logging
import sys

from ..app import Conveyor
from .loader import load_app

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


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="[%(asctime)s: %(levelname)s/%(processName)s] %(message)s",
        stream=sys.stderr,
    )
