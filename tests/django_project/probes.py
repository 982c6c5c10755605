"""Test-only: the project's app, with the parent holding a database connection before the fork.

``conveyor -A probes worker --processes 2``: each child records, from ``worker_process_init``,
whether the connection it would use is the one it inherited (it must not be).
"""

import json
import os

import django

django.setup()

from django.db import connection  # noqa: E402
from orders.models import Order  # noqa: E402
from proj.conveyor import app  # noqa: E402

from conveyor.signals import worker_process_init  # noqa: E402

Order.objects.exists()  # the parent (the supervisor, before it forks) opens a connection
PARENT = os.getpid()
PARENT_CONNECTION = id(connection.connection)


@worker_process_init.connect
def record(**_: object) -> None:
    path = os.path.join(os.environ["PROBE_DIR"], f"child-{os.getpid()}.json")
    with open(path, "w") as out:
        inherited = connection.connection is not None and id(connection.connection) == PARENT_CONNECTION
        json.dump({"forked": os.getpid() != PARENT, "inherited": inherited}, out)


__all__ = ["app"]
