"""Tasks for the Redis broker tests (tests/brokers/test_redis.py). The broker URL comes from ``-b``.

``record`` appends ``<token> <delivery> <pid>`` to ``$CONVEYOR_TEST_DIR/runs`` each time it
runs, so a test can check across processes and Redis restarts that every task ran, and that
no task ran twice.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from conveyor import Conveyor

app = Conveyor("redis_tasks")
# A lease far longer than the Redis outages the tests cause: a task is rerun only if the
# broker lost something, never because its lease legitimately expired.
app.conf.worker_lease_timeout = float(os.environ.get("CONVEYOR_TEST_LEASE", "15.0"))


@app.task(bind=True)
def record(self: Any, token: str, seconds: float = 0.0) -> str:
    time.sleep(seconds)
    line = f"{token} {self.request.delivery} {os.getpid()}\n"
    with open(Path(os.environ.get("CONVEYOR_TEST_DIR", ".")) / "runs", "a") as f:
        f.write(line)
    return token
