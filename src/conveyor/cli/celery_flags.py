"""Celery's worker and beat flags that runbooks carry over, and what Conveyor does with each.

Each one either works as in Celery or says, in one line at start-up, what Conveyor does
instead: a flag that is silently ignored hides a difference an operator relies on (a runbook
that says ``-P gevent -c 100`` expects 100-way I/O concurrency, and must not quietly get 8).
"""

from __future__ import annotations

import logging

import click

from ..worker.pools import pool_error
from ..worker.worker import POOL_ALIASES, POOLS

logger = logging.getLogger("conveyor.worker")


class Refused(click.ClickException):
    """A flag value Conveyor cannot honour: one line on stderr, exit code 2."""

    exit_code = 2


def check_pool(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None or value in POOLS or value in POOL_ALIASES:
        return value
    raise Refused(pool_error(value, POOLS))


def parse_autoscale(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """``--autoscale MAX[,MIN]`` -> MAX (the pool does not grow and shrink yet)."""
    if value is None:
        return None
    parts = value.split(",")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if (
        len(numbers) not in (1, 2)
        or numbers[0] < 1
        or (len(numbers) == 2 and not 0 <= numbers[1] <= numbers[0])
    ):
        raise Refused(
            f"--autoscale {value}: give MAX,MIN with MAX >= MIN >= 0 and MAX >= 1, e.g. --autoscale 10,3"
        )
    return numbers[0]


def check_optimization(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None or value == "fair":
        return value
    raise Refused(f"-O {value}: only -O fair is accepted (and is what Conveyor always does)")


def announce_schedule_file(path: str | None) -> None:
    """``beat -s FILE`` (and ``worker -B -s FILE``): Celery's local schedule state file."""
    if path:
        logger.warning("-s %s not used: the schedule state lives in the broker, not in a file", path)


def announce(
    autoscale: int | None, task_events: bool, optimization: str | None, schedule_file: str | None
) -> None:
    """One line per accepted-but-different flag, logged at start-up."""
    announce_schedule_file(schedule_file)
    if autoscale is not None:
        logger.warning(
            "--autoscale: the pool does not grow and shrink yet; running with concurrency %d", autoscale
        )
    if task_events:
        logger.warning("-E: not needed: task states and results are always recorded in the broker")
    if optimization == "fair":
        logger.warning(
            "-O fair: already how Conveyor works: prefetched jobs wait in one inbox that any free "
            "slot takes from, never queued behind a busy one"
        )
