"""What the layers below the app need from it: ``AppLike``.

Beat, the worker, coordination, ``publish`` and ``results`` are handed the app but use only
this much of it. Typing them against this protocol instead of ``Conveyor`` keeps their imports
pointing down (docs/architecture.md): ``Conveyor`` satisfies it, and so does any stand-in a
test builds.

Nothing here runs: the names below are imported for the type checker only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Unpack

if TYPE_CHECKING:
    from .brokers import Broker
    from .config import Settings
    from .execution.guards import RunGuard
    from .options import EnqueueOptions
    from .results import AsyncResult
    from .task import Task


class AppLike(Protocol):
    """The app as the layers below it see it.

    >>> def pending(app: AppLike) -> int:                                  # doctest: +SKIP
    ...     return sum(s.ready for s in app.broker.queue_stats().values())
    """

    @property
    def main(self) -> str:
        """The app's name (``Conveyor("proj")``); beat records it as an entry's origin."""

    @property
    def conf(self) -> Settings:
        """The app's settings."""

    @property
    def broker(self) -> Broker:
        """The broker, connected on first use."""

    @property
    def tasks(self) -> Mapping[str, Task[Any, Any]]:
        """The registered tasks by name."""

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> AsyncResult[Any]:
        """Enqueue a task by name (it need not be registered here)."""

    def run_guards(self, task: Task[Any, Any]) -> list[RunGuard]:
        """The run guards that apply to ``task`` (locks, rate and concurrency limits)."""

    def revoke(
        self, task_id: str | Sequence[str], terminate: bool = False, signal: str | None = None
    ) -> None:
        """Revoke tasks durably (stored in the broker)."""
