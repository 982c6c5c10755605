"""Worker names: ``-n w1@%h`` as in Celery."""

from __future__ import annotations

import os
import secrets
import socket


def expand_name(template: str | None) -> str:
    """Expand ``%h`` (hostname), ``%n`` (short hostname), ``%d`` (domain) and ``%i`` (pid).

    >>> expand_name("w1@%i") == f"w1@{os.getpid()}"
    True
    """
    host = socket.gethostname()
    short, _, domain = host.partition(".")
    name = template or "worker@%h"
    return name.replace("%h", host).replace("%n", short).replace("%d", domain).replace("%i", str(os.getpid()))


def lease_owner(name: str) -> str:
    """A unique lease-owner id: two processes started with the same ``-n`` never share leases."""
    return f"{name}/{os.getpid()}-{secrets.token_hex(3)}"
