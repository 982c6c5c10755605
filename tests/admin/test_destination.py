"""Which workers a ``-d/--destination NAME`` addresses, from what their heartbeats record.

The processes of ``conveyor worker --processes N -n w1@h`` are named ``w1.1@h``, ``w1.2@h``, …
and record ``group: "w1@h"``; a worker started alone records no group, whatever its name looks
like. (The same rule with real worker processes: tests/worker/test_usable_cpus.py.)
"""

from __future__ import annotations

import json
import time

from conveyor.admin import WorkerInfo
from conveyor.admin.parse import worker_info
from conveyor.brokers.records import WorkerRecord


def _heartbeat(hostname: str, **info: object) -> WorkerInfo:
    raw = json.dumps({"hostname": hostname, **info}).encode()
    now = time.time()
    return worker_info(WorkerRecord(f"{hostname}/123-abcdef", now, raw), 60.0, now)


def test_a_process_of_a_processes_command_answers_to_the_commands_name() -> None:
    one = _heartbeat("w1.1@h", group="w1@h")
    assert one.group == "w1@h"
    assert one.answers_to("w1@h") and one.answers_to("w1.1@h") and one.answers_to("w1.1@h/123-abcdef")
    assert not one.answers_to("w1.2@h") and not one.answers_to("w2@h") and not one.answers_to("w1@other")


def test_a_worker_started_alone_answers_only_to_its_own_names() -> None:
    alone = _heartbeat("w1.3@h")  # -n w1.3@h, no --processes: no group
    assert alone.group == ""
    assert alone.answers_to("w1.3@h")
    assert not alone.answers_to("w1@h") and not alone.answers_to("")


def test_a_group_that_is_not_text_is_ignored() -> None:
    for bad in (None, 7, ["w1@h"]):
        worker = _heartbeat("w1.1@h", group=bad)
        assert worker.group == "", bad
        assert not worker.answers_to("w1@h") and not worker.answers_to("None") and not worker.answers_to("7")
