"""What each serializer and compression costs a producer: enqueues per second of one task whose
argument is about 2 KB of JSON, on the in-memory broker (no network, so the encoding is all
that differs), and the size each encoding leaves in the broker.

Usage (with the project's virtualenv)::

    .venv/bin/python bench/serialization_cost.py [--calls 5000] [--rounds 3]

On Redis or SQLite the broker round trip dominates, so these rates are upper bounds on what
the encoding can cost; the sizes are what the broker stores (docs/user-guide.md,
"Serialisation and compression").
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from conveyor import Conveyor

ENCODINGS: list[tuple[str, dict[str, Any]]] = [
    ("json", {}),
    ("msgpack", {"serializer": "msgpack"}),
    ("json+gzip", {"compression": "gzip"}),
    ("msgpack+zlib", {"serializer": "msgpack", "compression": "zlib"}),
]
ROWS = [f"KJFK {i} 21.5" for i in range(150)]  # about 2 KB as JSON


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    app = Conveyor("bench-serialization", broker="memory://bench-serialization")
    app.conf.task_history = False

    @app.task(name="bench.echo")
    def echo(rows: list[str]) -> list[str]:
        return rows

    for label, encoding in ENCODINGS:
        best = 0.0
        for _ in range(options.rounds):
            started = time.perf_counter()
            for _ in range(options.calls):
                echo.apply_async((ROWS,), **encoding)
            best = max(best, options.calls / (time.perf_counter() - started))
        app.broker.purge(["default"])
        echo.apply_async((ROWS,), **encoding)
        size = len(app.broker.pending(False, 1, 0)[0].body)
        app.broker.purge(["default"])
        print(f"{label:13s} {best:9,.0f} enqueues/s   {size:6,d} bytes in the broker")
    app.close()


if __name__ == "__main__":
    main()
