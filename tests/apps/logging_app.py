"""An app that takes over logging with a ``setup_logging`` handler (Celery's rule: then the
worker configures none). The handler records what it was given in ``$CONVEYOR_TEST_DIR``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from conveyor import Conveyor
from conveyor.signals import setup_logging

app = Conveyor("logging_app")


@setup_logging.connect
def my_logging(loglevel: int, logfile: str | None, format: str, **_: Any) -> None:
    seen = {"loglevel": loglevel, "logfile": logfile, "format": format}
    (Path(os.environ["CONVEYOR_TEST_DIR"]) / "setup_logging.json").write_text(json.dumps(seen))
