"""``beat_init`` is sent when a scheduler starts, with the scheduler as sender."""

from __future__ import annotations

import threading
from typing import Any

from conveyor.beat.scheduler import Scheduler
from conveyor.signals import beat_init

from ..procs import wait_for
from .helpers import make_app


def test_beat_init_is_sent_when_the_scheduler_starts() -> None:
    app = make_app("memory://beat-signals")
    heard: list[Any] = []

    def on_init(sender: Any, **_: Any) -> None:
        heard.append(sender)

    beat_init.connect(on_init)
    scheduler = Scheduler(app, owner="b1")
    thread = threading.Thread(target=scheduler.run, daemon=True)
    try:
        thread.start()
        wait_for(lambda: heard, 10)
    finally:
        beat_init.disconnect(on_init)
        scheduler.stop()
        thread.join(timeout=10)
        app.close()
    assert heard == [scheduler]
