"""A task's settings as this worker applies them, resolved once per task name (not per run).

The plan also fixes *how* the task runs: which runner (runners.py), and whether it may take
the inline fast path (solo pool, sync, no guards, at-least-once), which runs with no await, or
join a slot thread's streak (threads pool, the same conditions; streaks.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..execution.guards import RunGuard
    from ..task import Task
    from .procpool import ProcessRunner
    from .runners import AsyncRunner, InlineRunner, ThreadRunner


@dataclass(frozen=True, slots=True)
class Plan:
    acks_late: bool
    store_result: bool
    soft_time_limit: float | None
    time_limit: float | None
    guards: list[RunGuard]
    runner: InlineRunner | ThreadRunner | ProcessRunner | AsyncRunner
    inline: bool  # the inline runner and nothing to await around it: see Processor.consume
    streak: bool  # a slot thread and nothing to await around it: see streaks.py


def make_plan(
    task: Task[Any, Any],
    guards: list[RunGuard],
    sync_runner: InlineRunner | ThreadRunner | ProcessRunner,
    async_runner: AsyncRunner,
    inline_pool: bool,
    streaks: bool = False,
) -> Plan:
    """``inline_pool``: the pool runs sync bodies on the loop thread (``-P solo``);
    ``streaks``: slot threads run streaks (threads pool)."""
    runner = async_runner if task.is_async else sync_runner
    awaits_nothing = not task.is_async and not guards and task.acks_late
    inline = inline_pool and awaits_nothing
    return Plan(
        acks_late=task.acks_late,
        store_result=not task.ignore_result,
        soft_time_limit=task.soft_time_limit,
        time_limit=task.time_limit,
        guards=guards,
        runner=runner,
        inline=inline,
        streak=streaks and awaits_nothing,
    )
